//! Every kdump layout the writer can emit (LP64 and i386, either byte order) read back by
//! the kdump reader: both headers field by field, the notes, both bitmaps, every descriptor
//! and every page. The file is put together from the writer's pieces (`Header`, `Layout`,
//! `PageDesc`), as the pipeline does.

use vmsift::codec::{Codec, Compressor};
use vmsift::format::elf::note;
use vmsift::format::kdump::{
    Header, Layout, Model, PAGE_DESC_SIZE, PageDesc, STATUS_INCOMPLETE, Utsname,
};
use vmsift::input::bytes::Endian;
use vmsift::input::kdump::{KdumpFile, Page};

const BS: u64 = 4096;
/// Three blocks per bitmap.
const MAPNR: u64 = 70_000;
/// Memory: two runs, the second near the end of the bitmaps.
const MEMORY: [(u64, u64); 2] = [(0, 40), (65_000, 65_010)];
/// Memory left out of the dump.
const EXCLUDED: (u64, u64) = (5, 9);
/// A page with a descriptor but no data (an incomplete dump).
const LOST: u64 = 20;

fn memory(pfn: u64) -> bool {
    MEMORY.iter().any(|&(a, b)| (a..b).contains(&pfn))
}

fn dumped(pfn: u64) -> bool {
    memory(pfn) && !(EXCLUDED.0..EXCLUDED.1).contains(&pfn)
}

/// Page `pfn`: zero every 3rd, else compressible when even, noise (stored raw) when odd.
fn content(pfn: u64) -> Vec<u8> {
    let mut x = pfn.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut noise = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    };
    match pfn % 3 {
        0 => vec![0; BS as usize],
        _ if pfn.is_multiple_of(2) => (0..BS).map(|i| (i / 512 + pfn) as u8).collect(),
        _ => (0..BS).map(|_| noise()).collect(),
    }
}

fn header(model: Model, endian: Endian, split: Option<(u64, u64)>) -> Header {
    let mut utsname = Utsname::default();
    utsname.set(Utsname::SYSNAME, "Linux");
    utsname.set(Utsname::RELEASE, "6.1.0-layout");
    utsname.set(
        Utsname::MACHINE,
        ["x86_64", "i686"][(model != Model::Lp64) as usize],
    );
    Header {
        model,
        endian,
        utsname,
        crashtime: 1_795_263_890,
        status: Codec::Zlib.flag() | STATUS_INCOMPLETE,
        block_size: BS as u32,
        sub_hdr_size: 0,
        bitmap_blocks: 0,
        max_mapnr: MAPNR,
        nr_cpus: 3,
        phys_base: 0x3e0_0000,
        dump_level: 1,
        split,
        offset_vmcoreinfo: 0,
        size_vmcoreinfo: 0,
        offset_note: 0,
        size_note: 0,
        offset_eraseinfo: 0,
        size_eraseinfo: 0,
    }
}

fn put(file: &mut Vec<u8>, at: u64, bytes: &[u8]) {
    let end = at as usize + bytes.len();
    if file.len() < end {
        file.resize(end, 0);
    }
    file[at as usize..end].copy_from_slice(bytes);
}

/// The dump's file, its header and the descriptor of each dumped pfn.
fn write(model: Model, endian: Endian, split: Option<(u64, u64)>) -> (Vec<u8>, Header, Vec<u8>) {
    let info = b"OSRELEASE=6.1.0-layout\nPAGESIZE=4096\n";
    let mut notes = note(endian, "CORE", 1, &[0xab; 148]);
    let info_at = notes.len() + 12 + 12;
    notes.extend(note(endian, "VMCOREINFO", 0, info));
    let dumpable: Vec<u64> = (0..MAPNR).filter(|&p| dumped(p)).collect();
    let layout = Layout::new(model, BS, MAPNR, notes.len() as u64, dumpable.len() as u64);
    let mut h = header(model, endian, split);
    h.sub_hdr_size = layout.sub_hdr_blocks as u32;
    h.bitmap_blocks = layout.bitmap_blocks() as u32;
    h.offset_note = layout.sub_header_offset() + model.sub_header_size() as u64;
    h.size_note = notes.len() as u64;
    h.offset_vmcoreinfo = h.offset_note + info_at as u64;
    h.size_vmcoreinfo = info.len() as u64;

    let mut file = Vec::new();
    put(&mut file, 0, &h.main_bytes());
    put(&mut file, layout.sub_header_offset(), &h.sub_bytes());
    put(&mut file, h.offset_note, &notes);
    let (mut map1, mut map2) = (vec![0u8; layout.bitmap_len as usize], Vec::new());
    map2.resize(map1.len(), 0);
    for pfn in 0..MAPNR {
        map1[pfn as usize / 8] |= (memory(pfn) as u8) << (pfn % 8);
        map2[pfn as usize / 8] |= (dumped(pfn) as u8) << (pfn % 8);
    }
    put(&mut file, layout.bitmap1_offset(), &map1);
    put(&mut file, layout.bitmap2_offset(), &map2);
    // The shared zero page first (dump level 1), then every other page.
    let mut at = layout.data_offset();
    put(&mut file, at, &vec![0; BS as usize]);
    let zero = PageDesc {
        offset: at,
        size: BS as u32,
        flags: 0,
    };
    at += BS;
    let mut zlib = Compressor::new(Codec::Zlib, BS as usize).expect("zlib");
    let mut descs = vec![0u8; dumpable.len() * PAGE_DESC_SIZE as usize];
    for (i, &pfn) in dumpable.iter().enumerate() {
        let page = content(pfn);
        let desc = if pfn == LOST {
            PageDesc::default()
        } else if page.iter().all(|&b| b == 0) {
            zero
        } else {
            let (data, flags) = match zlib.compress(&page).expect("compress") {
                Some(c) => (c.to_vec(), Codec::Zlib.flag()),
                None => (page, 0),
            };
            put(&mut file, at, &data);
            at += data.len() as u64;
            PageDesc {
                offset: at - data.len() as u64,
                size: data.len() as u32,
                flags,
            }
        };
        desc.write(endian, &mut descs[i * PAGE_DESC_SIZE as usize..]);
    }
    put(&mut file, layout.desc_offset(), &descs);
    (file, h, notes)
}

fn read_back(model: Model, endian: Endian, split: Option<(u64, u64)>) {
    let what = format!("{model:?} {endian:?} split {split:?}");
    let (file, h, notes) = write(model, endian, split);
    let d = KdumpFile::open(&file[..]).unwrap_or_else(|e| panic!("{what}: {e}"));
    let r = &d.header;
    assert_eq!((r.model, r.endian, r.version), (model, endian, 6), "{what}");
    assert_eq!(r.main, h.main_record(), "{what}: main header");
    assert_eq!(r.sub, h.sub_record(), "{what}: sub-header");
    assert_eq!(r.utsname, h.utsname, "{what}");
    assert_eq!(
        (r.block_size, r.max_mapnr, r.split, r.status, r.nr_cpus),
        (BS, MAPNR, split, h.status, 3),
        "{what}"
    );
    assert_eq!(r.dump_level, 1);
    assert_eq!(r.phys_base, h.phys_base);
    assert_eq!(d.notes().expect("notes"), notes, "{what}");
    assert_eq!(d.memory_runs().expect("runs"), MEMORY.to_vec(), "{what}");
    let dumpable = (0..MAPNR).filter(|&p| dumped(p)).count() as u64;
    assert_eq!(d.dumpable(), dumpable, "{what}");
    let descs_at = h.sub_hdr_size as u64 + 1 + h.bitmap_blocks as u64;
    let mut n = 0;
    let mut flags = std::collections::BTreeSet::new();
    for pfn in 0..MAPNR {
        let page = d.read_page(pfn).expect("read");
        let want = match (memory(pfn), dumped(pfn)) {
            (false, _) => Page::Hole,
            (true, false) => Page::Excluded,
            _ if pfn == LOST => Page::Lost,
            _ => Page::Data(content(pfn)),
        };
        assert_eq!(page, want, "{what}: pfn {pfn}");
        let desc = d.descriptor(pfn).expect("descriptor");
        assert_eq!(desc.is_some(), dumped(pfn), "{what}: pfn {pfn}");
        if let Some(desc) = desc {
            let at = (descs_at * BS + n * PAGE_DESC_SIZE) as usize;
            let stored = PageDesc::read(endian, &file[at..]).expect("stored");
            assert_eq!(desc, stored, "{what}: descriptor of pfn {pfn}");
            flags.insert((desc.offset == 0, desc.flags));
            n += 1;
        }
    }
    // Lost, raw and compressed descriptors were all read back.
    let want = [(false, 0), (false, Codec::Zlib.flag()), (true, 0)];
    assert_eq!(flags.into_iter().collect::<Vec<_>>(), want, "{what}");
}

#[test]
fn every_layout_reads_back() {
    for model in [Model::Lp64, Model::Ilp32Packed] {
        for endian in [Endian::Little, Endian::Big] {
            read_back(model, endian, None);
            read_back(model, endian, Some((0, MAPNR)));
        }
    }
}

/// The same dump in another layout differs in its headers only where the layout says.
#[test]
fn layouts_differ_in_their_headers() {
    let sizes: Vec<(usize, usize)> = [Model::Lp64, Model::Ilp32Packed]
        .iter()
        .map(|&m| (m.header_size(), m.sub_header_size()))
        .collect();
    assert_eq!(sizes, [(464, 104), (452, 80)]);
    let (le, _, _) = write(Model::Lp64, Endian::Little, None);
    let (be, _, _) = write(Model::Lp64, Endian::Big, None);
    assert_eq!(le.len(), be.len());
    assert_eq!(&le[428..432], &4096u32.to_le_bytes());
    assert_eq!(&be[428..432], &4096u32.to_be_bytes());
    let (i386, _, _) = write(Model::Ilp32Packed, Endian::Little, None);
    assert_eq!(&i386[416..420], &4096u32.to_le_bytes());
}
