//! Structure-aware: a kdump-compressed file, and on request the flattened stream of it,
//! built from typed fields (`Spec`). Every header, sub-header, bitmap, descriptor and
//! flattened-record field is either the value the writer would put there (the default, so
//! short inputs give consistent files) or a perturbed one: off by a little, scaled, a power
//! of two, near a type's limit, or anything. Byte-level fuzzing rarely gets a header whose
//! fields agree with each other far enough to reach the bitmaps, descriptors and pages.
//! The file is in any layout the writer emits (LP64 or i386, either byte order).
//!
//! Each input goes through
//! - `KdumpFile::open` on the bytes in memory, the notes, then `descriptor` and `read_page`
//!   of every pfn (up to 2^14) and of a few far ones;
//! - with a flattened stream: `flat::replay` into a bounded sink and `FlatFile::open` on the
//!   stream, which must agree byte for byte, and `KdumpFile::open` on both, which must
//!   agree page for page;
//! - the file (or stream) as vmsift's input: re-filtering (`-d LEVEL CODEC IN OUT`, the
//!   result read back and compared page by page with the input) and `--dump-dmesg`, through
//!   `app::main`.
//!
//! A consistent file must open and read back exactly the pages it was built from.
#![no_main]

use std::fs::{self, File};
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vmsift::Error;
use vmsift::codec::{Codec, Compressor};
use vmsift::format::flat;
use vmsift::format::kdump::{
    DISK_DUMP_HEADER, Header, KDUMP_SUB_HEADER, Layout, Model, PAGE_DESC_SIZE, PageDesc, Utsname,
};
use vmsift::input::bytes::Endian;
use vmsift::input::elf::ReadAt;
use vmsift::input::flat::FlatFile;
use vmsift::input::kdump::{KdumpFile, Page};
use vmsift::synth::{self, Flavor, MINIMAL_VMCOREINFO, SynthKernel};

/// The built file's memory image is at most this big (pfns × block size), but for the
/// synthetic kernel's 256 pages.
const MAX_IMAGE: usize = 256 << 10;
/// The replayed flattened stream lives in memory up to this size.
const MAX_SINK: u64 = 16 << 20;
/// pfns read one by one from a dump (plus a few far ones).
const MAX_PFNS_READ: u64 = 1 << 14;

/// A field's value: the consistent one, or a perturbation of it.
#[derive(Arbitrary, Debug, Clone, Copy, Default)]
enum V {
    #[default]
    Same,
    Delta(i16),
    Times(u8),
    Pow2(u8),
    /// u64::MAX, i64::MAX, u32::MAX, i32::MAX or 2^40 (minus a little).
    Limit(u8),
    Any(u64),
}

impl V {
    fn get(self, c: u64, dirty: &mut bool) -> u64 {
        let v = match self {
            V::Same => c,
            V::Delta(d) => c.wrapping_add(d as i64 as u64),
            V::Times(n) => c.wrapping_mul(n as u64),
            V::Pow2(n) => 1u64 << (n % 64),
            V::Limit(n) => {
                let base = [
                    u64::MAX,
                    i64::MAX as u64,
                    u32::MAX as u64,
                    i32::MAX as u64,
                    1 << 40,
                ];
                base[n as usize % base.len()] - (n as u64 / 5)
            }
            V::Any(v) => v,
        };
        *dirty |= v != c;
        v
    }

    fn get32(self, c: u32, dirty: &mut bool) -> u32 {
        let mut d = false;
        let v = self.get(c as u64, &mut d) as u32;
        *dirty |= v != c;
        v
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, Default)]
enum Info {
    #[default]
    Minimal,
    /// A synthetic kernel's VMCOREINFO and memory (page tables, mem_section, mem_map).
    Kernel6_1,
    Kernel6_12,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Fill {
    Zero,
    Byte(u8),
    Noise(u32),
    /// Zeros but one u64 at an offset (a struct page field, a pointer).
    Word(u16, u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum DescFault {
    Offset(V),
    Size(V),
    Flags(V),
    Reserved(u64),
}

#[derive(Arbitrary, Debug, Default)]
struct HeaderSpec {
    signature: Option<(u8, u8)>,
    version: V,
    status: V,
    block_size: V,
    sub_hdr_size: V,
    bitmap_blocks: V,
    max_mapnr32: V,
    nr_cpus: V,
    phys_base: V,
    dump_level: V,
    /// A split file covering [start, end) (consistently: every pfn).
    split: Option<(V, V)>,
    split_flag: V,
    offset_vmcoreinfo: V,
    size_vmcoreinfo: V,
    offset_note: V,
    size_note: V,
    offset_eraseinfo: V,
    size_eraseinfo: V,
    max_mapnr64: V,
}

#[derive(Arbitrary, Debug, Clone, Copy, Default)]
enum Order {
    #[default]
    AsWritten,
    Reverse,
    /// Odd records first, then even ones.
    Interleave,
    /// Rotated by n.
    Rotate(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Extra {
    /// Where among the records it goes.
    at: u8,
    /// Dump offset; consistently the end of the dump.
    offset: V,
    /// Size field; consistently the payload's length.
    size: V,
    /// Payload: 8 × len bytes of `byte`.
    len: u8,
    byte: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy, Default)]
enum End {
    #[default]
    Marker,
    Missing,
    Other(i64, i64),
}

#[derive(Arbitrary, Debug, Default)]
struct FlatSpec {
    signature: Option<(u8, u8)>,
    kind: V,
    version: V,
    /// Records cut into pieces of (chunk × 64) bytes when non-zero.
    chunk: u8,
    order: Order,
    extra: Vec<Extra>,
    /// Record index → its offset and size fields (the payload stays as it is).
    faults: Vec<(u8, V, V)>,
    end: End,
    cut: V,
}

#[derive(Arbitrary, Debug)]
struct Spec {
    info: Info,
    /// 4096, 1024, 2048, 8192 or 16384 (4096 with a kernel's VMCOREINFO).
    block: u8,
    /// pfns of memory: 1 + pfns % (MAX_IMAGE / block size); 256 with a kernel.
    pfns: u16,
    /// Appended to VMCOREINFO.
    info_extra: String,
    cpus: u8,
    holes: Vec<(u16, u8)>,
    excluded: Vec<(u16, u8)>,
    fills: Vec<(u16, Fill)>,
    codec: u8,
    codecs: Vec<(u16, u8)>,
    /// One stored zero page for every zero page (makedumpfile does with level & 1).
    share_zero: bool,
    level: u8,
    header: HeaderSpec,
    /// Bits flipped after the descriptors were laid out: (pfn, which bitmap).
    flips: Vec<(u16, bool)>,
    descs: Vec<(u16, DescFault)>,
    /// The file's length (only shortened, or lengthened by up to 64 KiB of zeros).
    cut: V,
    flat: Option<FlatSpec>,
    /// The run: output dump level (31 + n), codec (none and --non-mmap, lzo, snappy, zstd,
    /// zlib).
    run_level: u8,
    run_codec: u8,
    /// The layout written: LP64 or i386, little- or big-endian (LP64 little-endian by
    /// default, the one vmsift writes for the machines it filters).
    layout: u8,
}

fn codec_of(n: u8) -> Codec {
    [
        Codec::None,
        Codec::Zlib,
        Codec::Lzo,
        Codec::Snappy,
        Codec::Zstd,
    ][n as usize % 5]
}

fn kernel(flavor: Flavor) -> &'static (Vec<u8>, String) {
    static K61: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    static K612: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    let cell = match flavor {
        Flavor::Linux6_1 => &K61,
        _ => &K612,
    };
    cell.get_or_init(|| {
        let mut k = SynthKernel::new(flavor, 256);
        let (lru, anon) = (k.flag("lru"), (synth::PAGE_OFFSET + 0x7000) | 1);
        k.buddy(64, 4);
        k.folio(96, 2, lru, anon, false);
        k.set_u64(120, 0, k.flag("hwpoison"));
        (k.mem.clone(), k.vmcoreinfo())
    })
}

fn set_bits(map: &mut [u8], runs: &[(u16, u8)], value: bool) {
    for &(start, len) in runs {
        for pfn in start as usize..start as usize + len as usize + 1 {
            if let Some(b) = map.get_mut(pfn / 8) {
                if value {
                    *b |= 1 << (pfn % 8);
                } else {
                    *b &= !(1 << (pfn % 8));
                }
            }
        }
    }
}

fn bit(map: &[u8], pfn: u64) -> bool {
    map.get(pfn as usize / 8)
        .is_some_and(|b| b >> (pfn % 8) & 1 == 1)
}

/// The built file: its bytes, the regions in the order the writer writes them, and what
/// every pfn holds when everything is consistent.
struct Built {
    bytes: Vec<u8>,
    regions: Vec<(u64, u64)>,
    image: Vec<u8>,
    bitmap1: Vec<u8>,
    bitmap2: Vec<u8>,
    block_size: u64,
    max_mapnr: u64,
    consistent: bool,
}

fn build(s: &Spec) -> Built {
    let mut dirty = false;
    let (model, e) = [
        (Model::Lp64, Endian::Little),
        (Model::Lp64, Endian::Big),
        (Model::Ilp32Packed, Endian::Little),
        (Model::Ilp32Packed, Endian::Big),
    ][s.layout as usize % 4];
    let kernel = match s.info {
        Info::Minimal => None,
        Info::Kernel6_1 => Some(kernel(Flavor::Linux6_1)),
        Info::Kernel6_12 => Some(kernel(Flavor::Linux6_12)),
    };
    let bs: u64 = if kernel.is_some() {
        4096
    } else {
        [4096, 1024, 2048, 8192, 16384][s.block as usize % 5]
    };
    let pfns = match kernel {
        Some(_) => 256,
        None => 1 + s.pfns as u64 % (MAX_IMAGE as u64 / bs),
    };
    let mut image = match kernel {
        Some((mem, _)) => mem.clone(),
        None => vec![0u8; (pfns * bs) as usize],
    };
    for &(pfn, fill) in &s.fills {
        let Some(page) = image.chunks_mut(bs as usize).nth(pfn as usize) else {
            continue;
        };
        match fill {
            Fill::Zero => page.fill(0),
            Fill::Byte(b) => page.fill(b),
            Fill::Noise(seed) => page.copy_from_slice(&synth::noise(seed as u64, bs as usize)),
            Fill::Word(at, v) => {
                let at = (at as usize % (bs as usize / 8)) * 8;
                page[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }

    // Notes: VMCOREINFO, then one NT_PRSTATUS per CPU.
    let info = match kernel {
        Some((_, text)) => text.clone(),
        None => MINIMAL_VMCOREINFO.replace("PAGESIZE=4096", &format!("PAGESIZE={bs}")),
    } + &s.info_extra;
    let mut notes = vmsift::format::elf::note(e, "VMCOREINFO", 0, info.as_bytes());
    let info_desc_at = 12 + "VMCOREINFO\0".len().next_multiple_of(4);
    let cpus = s.cpus % 4;
    match e {
        Endian::Little => notes.extend(synth::SynthVmcore::new().prstatus(cpus as usize).notes),
        Endian::Big => {
            for _ in 0..cpus {
                notes.extend(vmsift::format::elf::note(e, "CORE", 1, &[0u8; 336]));
            }
        }
    }

    // Bitmaps: every pfn but the holes is memory; every memory pfn but the excluded ones
    // has a descriptor.
    let mapnr = pfns;
    let bytes_per_map = mapnr.div_ceil(8) as usize;
    let mut bitmap1 = vec![0u8; bytes_per_map];
    for pfn in 0..mapnr as usize {
        bitmap1[pfn / 8] |= 1 << (pfn % 8);
    }
    set_bits(&mut bitmap1, &s.holes, false);
    let mut bitmap2 = bitmap1.clone();
    set_bits(&mut bitmap2, &s.excluded, false);
    let dumpable: Vec<u64> = (0..mapnr).filter(|&p| bit(&bitmap2, p)).collect();

    let layout = Layout::new(
        model,
        bs,
        mapnr,
        notes.len() as u64,
        dumpable.len() as u64,
    );
    let global = codec_of(s.codec);
    let sub_size = model.sub_header_size() as u64;
    let mut header = Header {
        model,
        endian: e,
        utsname: Utsname::default(),
        crashtime: 1_700_000_000,
        status: s.header.status.get32(global.flag(), &mut dirty),
        block_size: s.header.block_size.get32(bs as u32, &mut dirty),
        sub_hdr_size: s
            .header
            .sub_hdr_size
            .get32(layout.sub_hdr_blocks as u32, &mut dirty),
        bitmap_blocks: s
            .header
            .bitmap_blocks
            .get32(layout.bitmap_blocks() as u32, &mut dirty),
        max_mapnr: mapnr,
        nr_cpus: s.header.nr_cpus.get32(cpus as u32, &mut dirty),
        phys_base: s.header.phys_base.get(0, &mut dirty),
        dump_level: s.header.dump_level.get32(s.level as u32 % 32, &mut dirty) as i32,
        split: s
            .header
            .split
            .map(|(a, b)| (a.get(0, &mut dirty), b.get(mapnr, &mut dirty))),
        offset_vmcoreinfo: s
            .header
            .offset_vmcoreinfo
            .get(bs + sub_size + info_desc_at as u64, &mut dirty),
        size_vmcoreinfo: s.header.size_vmcoreinfo.get(info.len() as u64, &mut dirty),
        offset_note: s.header.offset_note.get(bs + sub_size, &mut dirty),
        size_note: s.header.size_note.get(notes.len() as u64, &mut dirty),
        offset_eraseinfo: s.header.offset_eraseinfo.get(0, &mut dirty),
        size_eraseinfo: s.header.size_eraseinfo.get(0, &mut dirty),
    };
    header.utsname.set(Utsname::SYSNAME, "Linux");
    header.utsname.set(Utsname::RELEASE, "6.1.0-synthetic");
    header.utsname.set(Utsname::MACHINE, "x86_64");
    let mut main = header.main_bytes();
    if let Some((at, x)) = s.header.signature {
        main[at as usize % 8] ^= x;
        dirty |= x != 0;
    }
    let version = s.header.version.get32(6, &mut dirty);
    DISK_DUMP_HEADER.header_version.put(model, e, &mut main, version as u64);
    let max32 = s.header.max_mapnr32.get32(mapnr as u32, &mut dirty);
    DISK_DUMP_HEADER.max_mapnr.put(model, e, &mut main, max32 as u64);
    let mut sub = header.sub_bytes();
    let flag = s
        .header
        .split_flag
        .get32(header.split.is_some() as u32, &mut dirty);
    KDUMP_SUB_HEADER.split.put(model, e, &mut sub, flag as u64);
    let max64 = s.header.max_mapnr64.get(mapnr, &mut dirty);
    KDUMP_SUB_HEADER.max_mapnr_64.put(model, e, &mut sub, max64);

    // Pages: the shared zero page first if asked, then each dumpable page in pfn order.
    let mut data = Vec::new();
    let mut descs = Vec::with_capacity(dumpable.len());
    let mut compressors: Vec<Option<Compressor>> = (0..5).map(|_| None).collect();
    let zero = vec![0u8; bs as usize];
    let mut zero_desc = None;
    let data_at = layout.data_offset();
    for &pfn in &dumpable {
        let page = &image[(pfn * bs) as usize..((pfn + 1) * bs) as usize];
        if s.share_zero && page == &zero[..] {
            if let Some(d) = zero_desc {
                descs.push(d);
                continue;
            }
        }
        let codec = s
            .codecs
            .iter()
            .rev()
            .find(|&&(p, _)| p as u64 == pfn)
            .map_or(global, |&(_, c)| codec_of(c));
        let slot = &mut compressors[codec as usize];
        if slot.is_none() {
            *slot = Compressor::new(codec, bs as usize).ok();
        }
        let packed = slot
            .as_mut()
            .and_then(|c| c.compress(page).ok().flatten().map(|b| b.to_vec()));
        let (bytes, flags) = match &packed {
            Some(b) => (&b[..], codec.flag()),
            None => (page, 0),
        };
        let d = PageDesc {
            offset: data_at + data.len() as u64,
            size: bytes.len() as u32,
            flags,
        };
        data.extend_from_slice(bytes);
        if s.share_zero && page == &zero[..] {
            zero_desc = Some(d);
        }
        descs.push(d);
    }
    for &(i, fault) in &s.descs {
        let Some(d) = descs.get_mut(i as usize) else {
            continue;
        };
        match fault {
            DescFault::Offset(v) => d.offset = v.get(d.offset, &mut dirty),
            DescFault::Size(v) => d.size = v.get32(d.size, &mut dirty),
            DescFault::Flags(v) => d.flags = v.get32(d.flags, &mut dirty),
            DescFault::Reserved(_) => {}
        }
    }

    // The file, region by region as the writer writes them.
    let len = data_at + data.len() as u64;
    let mut bytes = vec![0u8; len as usize];
    let mut regions = Vec::new();
    let mut put = |bytes: &mut Vec<u8>, at: u64, b: &[u8]| {
        bytes[at as usize..at as usize + b.len()].copy_from_slice(b);
        if !b.is_empty() {
            regions.push((at, at + b.len() as u64));
        }
    };
    put(&mut bytes, 0, &main);
    let mut sub_notes = sub;
    sub_notes.extend_from_slice(&notes);
    put(&mut bytes, bs, &sub_notes);
    let mut maps = (bitmap1.clone(), bitmap2.clone());
    for &(pfn, second) in &s.flips {
        let m = if second { &mut maps.1 } else { &mut maps.0 };
        if let Some(b) = m.get_mut(pfn as usize / 8) {
            *b ^= 1 << (pfn % 8);
            dirty = true;
        }
    }
    let mut map1 = maps.0;
    map1.resize(layout.bitmap_len as usize, 0);
    put(&mut bytes, layout.bitmap1_offset(), &map1);
    let mut map2 = maps.1;
    map2.resize(layout.bitmap_len as usize, 0);
    put(&mut bytes, layout.bitmap2_offset(), &map2);
    let mut table = vec![0u8; descs.len() * PAGE_DESC_SIZE as usize];
    for (i, d) in descs.iter().enumerate() {
        let out = &mut table[i * PAGE_DESC_SIZE as usize..(i + 1) * PAGE_DESC_SIZE as usize];
        d.write(e, out);
        if let Some((_, DescFault::Reserved(v))) = s.descs.iter().find(|(j, _)| *j as usize == i) {
            e.put_u64(out, 16, *v);
        }
    }
    put(&mut bytes, layout.desc_offset(), &table);
    // Page data in pieces of a page or less, as the writer's batches land.
    let mut at = data_at;
    for piece in data.chunks(bs as usize) {
        put(&mut bytes, at, piece);
        at += piece.len() as u64;
    }
    let want = s.cut.get(len, &mut dirty);
    if want < len {
        bytes.truncate(want as usize);
    } else if want - len <= 1 << 16 {
        bytes.resize(want as usize, 0);
    }
    Built {
        bytes,
        regions,
        image,
        bitmap1,
        bitmap2,
        block_size: bs,
        max_mapnr: mapnr,
        consistent: !dirty,
    }
}

/// The flattened stream of `b`, and whether it is consistent.
fn flatten(b: &Built, f: &FlatSpec) -> (Vec<u8>, bool) {
    let mut dirty = false;
    let mut head = flat::header();
    if let Some((at, x)) = f.signature {
        head[at as usize % 16] ^= x;
        dirty |= x != 0;
    }
    let kind = f.kind.get(1, &mut dirty);
    let be = vmsift::input::bytes::Endian::Big;
    flat::FLAT_HEADER.kind.put(Model::Lp64, be, &mut head, kind);
    let version = f.version.get(1, &mut dirty);
    flat::FLAT_HEADER.version.put(Model::Lp64, be, &mut head, version);

    // Records: (offset field, size field, payload).
    let mut records: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    let chunk = if f.chunk == 0 {
        u64::MAX
    } else {
        f.chunk as u64 * 64
    };
    for &(start, end) in &b.regions {
        let end = end.min(b.bytes.len() as u64);
        let mut at = start;
        while at < end {
            let n = (end - at).min(chunk);
            let payload = b.bytes[at as usize..(at + n) as usize].to_vec();
            records.push((at, n, payload));
            at += n;
        }
    }
    // The writer's last record reaches the end of the file; a longer file (cut grew it)
    // gets its zeros written, so the replay has the same length.
    let covered = b.regions.iter().map(|r| r.1).max().unwrap_or(0);
    if (b.bytes.len() as u64) > covered {
        let tail = b.bytes[covered as usize..].to_vec();
        records.push((covered, tail.len() as u64, tail));
    }
    let n = records.len();
    match f.order {
        Order::AsWritten => {}
        Order::Reverse => {
            records.reverse();
            dirty |= n > 1;
        }
        Order::Interleave => {
            let (odd, even): (Vec<_>, Vec<_>) = records
                .into_iter()
                .enumerate()
                .partition(|(i, _)| i % 2 == 1);
            records = odd.into_iter().chain(even).map(|(_, r)| r).collect();
            dirty |= n > 1;
        }
        Order::Rotate(k) => {
            if n > 0 {
                records.rotate_left(k as usize % n);
                dirty |= k as usize % n != 0;
            }
        }
    }
    for x in &f.extra {
        let payload = vec![x.byte; x.len as usize * 8];
        let offset = x.offset.get(b.bytes.len() as u64, &mut dirty);
        let size = x.size.get(payload.len() as u64, &mut dirty);
        let at = (x.at as usize).min(records.len());
        records.insert(at, (offset, size, payload));
        dirty = true;
    }
    for &(i, off, size) in &f.faults {
        let n = records.len();
        if n == 0 {
            continue;
        }
        let r = &mut records[i as usize % n];
        r.0 = off.get(r.0, &mut dirty);
        r.1 = size.get(r.1, &mut dirty);
    }
    let mut out = head;
    for (offset, size, payload) in &records {
        out.extend_from_slice(&flat::record_header(*offset, *size));
        out.extend_from_slice(payload);
    }
    match f.end {
        End::Marker => out.extend_from_slice(&flat::end_marker()),
        End::Missing => dirty = true,
        End::Other(a, b) => {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&b.to_be_bytes());
            dirty |= (a, b) != (-1, -1);
        }
    }
    let len = out.len() as u64;
    let want = f.cut.get(len, &mut dirty);
    if want < len {
        out.truncate(want as usize);
    } else if want - len <= 1 << 16 {
        out.resize(want as usize, 0);
    }
    (out, !dirty)
}

/// What a dump reader finds for each of `pfns`.
fn pages<R: ReadAt>(dump: &KdumpFile<R>, pfns: &[u64]) -> Vec<Option<Page>> {
    let _ = dump.notes();
    pfns.iter()
        .map(|&pfn| {
            let _ = dump.descriptor(pfn);
            let page = dump.read_page(pfn).ok();
            if let Some(Page::Data(d)) = &page {
                assert_eq!(d.len() as u64, dump.header.block_size);
            }
            page
        })
        .collect()
}

/// Every pfn below max_mapnr (up to MAX_PFNS_READ) and a few far ones.
fn pfns_of(max_mapnr: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..max_mapnr.min(MAX_PFNS_READ)).collect();
    for p in [
        max_mapnr.wrapping_sub(1),
        max_mapnr,
        1 << 32,
        1 << 52,
        u64::MAX / 8,
        u64::MAX,
    ] {
        if p >= MAX_PFNS_READ {
            v.push(p);
        }
    }
    v
}

fn run_vmsift(args: &[&std::ffi::OsStr]) -> i32 {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["vmsift".as_ref(), "--message-level".as_ref(), "0".as_ref()];
    all.extend_from_slice(args);
    vmsift::app::main(all)
}

/// The input as vmsift's input: re-filtered (the result read back and compared with
/// `input`'s pages) and --dump-dmesg.
fn run_app<R: ReadAt>(dir: &Path, input_path: &Path, input: Option<&KdumpFile<R>>, s: &Spec) {
    let (out, log) = (dir.join("out"), dir.join("log"));
    let _ = fs::remove_file(&out);
    let _ = fs::remove_file(&log);
    // By default (0) the cheapest: level 31, no compression.
    let level = (s.run_level.wrapping_add(31) % 32).to_string();
    let codec = ["--non-mmap", "-l", "-p", "-z", "-c"][s.run_codec as usize % 5];
    let status = run_vmsift(&[
        "-d".as_ref(),
        level.as_ref(),
        codec.as_ref(),
        input_path.as_os_str(),
        out.as_os_str(),
    ]);
    if status == 0 {
        let file = File::open(&out).expect("a finished dump exists");
        let dump = KdumpFile::open(file).expect("a finished dump opens");
        for pfn in 0..dump.header.max_mapnr.min(MAX_PFNS_READ) {
            let got = dump.read_page(pfn).expect("a finished dump's pages read");
            if let (Page::Data(got), Some(input)) = (&got, input) {
                if let Ok(Page::Data(was)) = input.read_page(pfn) {
                    assert!(got == &was, "pfn {pfn:#x} changed in re-filtering");
                }
            }
        }
    }
    let _ = run_vmsift(&[
        "--dump-dmesg".as_ref(),
        input_path.as_os_str(),
        log.as_os_str(),
    ]);
}

fuzz_target!(|s: Spec| {
    let b = build(&s);
    let dir = std::env::temp_dir().join(format!("vmsift-fuzz-kdump_struct-{}", std::process::id()));
    let _ = fs::create_dir_all(&dir);

    // The file in memory.
    let opened = KdumpFile::open(&b.bytes[..]);
    if b.consistent {
        let dump = opened.as_ref().expect("a consistent dump opens");
        for pfn in 0..b.max_mapnr {
            let want = if !bit(&b.bitmap1, pfn) {
                Page::Hole
            } else if !bit(&b.bitmap2, pfn) {
                Page::Excluded
            } else {
                let bs = b.block_size as usize;
                Page::Data(b.image[pfn as usize * bs..(pfn as usize + 1) * bs].to_vec())
            };
            let got = dump.read_page(pfn).expect("a consistent dump's page reads");
            assert!(got == want, "pfn {pfn:#x} of a consistent dump reads wrong");
        }
    }
    if let Ok(dump) = &opened {
        pages(dump, &pfns_of(dump.header.max_mapnr));
    }

    let Some(f) = &s.flat else {
        let path = dir.join("in.kdump");
        fs::write(&path, &b.bytes).expect("write the dump");
        run_app(&dir, &path, opened.as_ref().ok(), &s);
        return;
    };

    // The flattened stream: replayed in memory, and read in place; both must agree.
    let (stream, flat_consistent) = flatten(&b, f);
    let path = dir.join("in.flat");
    fs::write(&path, &stream).expect("write the stream");
    let mut sink = Vec::new();
    let replayed = flat::replay(&mut &stream[..], |at, bytes| {
        let end = at
            .checked_add(bytes.len() as u64)
            .filter(|&e| e <= MAX_SINK)
            .ok_or_else(|| Error::bad_input("beyond the fuzzing sink"))?;
        if sink.len() < end as usize {
            sink.resize(end as usize, 0);
        }
        sink[at as usize..end as usize].copy_from_slice(bytes);
        Ok(())
    });
    if flat_consistent {
        assert!(
            replayed.is_ok(),
            "a consistent stream replays: {replayed:?}"
        );
        assert!(sink == b.bytes, "a consistent stream replays into its file");
    }
    let in_place = FlatFile::open(File::open(&path).expect("open the stream"));
    if flat_consistent {
        assert!(in_place.is_ok(), "a consistent stream opens");
    }
    let in_place_dump = match in_place {
        Ok(ff) => {
            if replayed.is_ok() {
                let size = ff.size().expect("size");
                assert_eq!(
                    size,
                    sink.len() as u64,
                    "replayed and in-place sizes differ"
                );
                let mut all = vec![0u8; sink.len()];
                ff.read_exact_at(&mut all, 0)
                    .expect("read the whole stream");
                assert!(all == sink, "replayed and in-place bytes differ");
            }
            KdumpFile::open(ff).ok()
        }
        Err(_) => None,
    };
    if let Some(dump) = &in_place_dump {
        let pfns = pfns_of(dump.header.max_mapnr);
        let read = pages(dump, &pfns);
        if replayed.is_ok() {
            let other = KdumpFile::open(&sink[..]).expect("the replayed dump opens as well");
            assert!(
                read == pages(&other, &pfns),
                "replayed and in-place pages differ"
            );
        }
    }
    run_app(&dir, &path, in_place_dump.as_ref(), &s);
});
