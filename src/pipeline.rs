//! The hot path: for each cycle of page frames, write its two bitmaps, then read every
//! dumpable page, check it for zero, compress it and append its descriptor and data, in pfn
//! order. The descriptor table has to be sized before the first page is placed, so a first
//! pass counts the dumpable pages cycle by cycle.

use crate::codec::{Codec, Compressor};
use crate::error::{Error, Result};
use crate::filter::{Bitmap, ClassCounts, DumpLevel, Filter, is_zero_page};
use crate::format::kdump::{Header, Layout, Model, PAGE_DESC_SIZE, PageDesc};
use crate::input::Vmcore;
use crate::report::Progress;
use crate::target::{SeqWriter, Sink};

/// pfns handled per cycle: 32 Mi pfns (128 GiB of 4 KiB pages), a 4 MiB bitmap per cycle,
/// as makedumpfile's default. A multiple of 64 so cycle bitmaps are whole words and bytes.
pub const PFNS_PER_CYCLE: u64 = 32 << 20;
/// Size of the buffered writes of descriptors and of page data.
const WRITE_BUFFER: usize = 1 << 20;

pub struct WriteOptions {
    pub codec: Codec,
    pub level: DumpLevel,
    pub pfns_per_cycle: u64,
}

/// What a run did, for the final messages and `--show-stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// One past the highest pfn (the bitmaps' length).
    pub max_mapnr: u64,
    /// pfns the input backs (set in the 1st bitmap).
    pub pages_in_input: u64,
    /// pfns with a descriptor (set in the 2nd bitmap).
    pub dumpable: u64,
    pub zero: u64,
    pub compressed: u64,
    pub raw: u64,
    /// Size of the dump file.
    pub file_size: u64,
    /// Pages left out per class.
    pub excluded: ClassCounts,
}

/// The header fields that come from the vmcore and the options, before the layout is known.
pub fn base_header(
    vm: &Vmcore,
    utsname: crate::format::kdump::Utsname,
    opts: &WriteOptions,
) -> Header {
    Header {
        model: if vm.elf.class.is_64() {
            Model::Lp64
        } else {
            Model::Ilp32Packed
        },
        endian: vm.elf.endian,
        utsname,
        crashtime: vm.info.crashtime().unwrap_or(0),
        status: opts.codec.flag(),
        block_size: vm.page_size as u32,
        sub_hdr_size: 0,
        bitmap_blocks: 0,
        max_mapnr: 0,
        nr_cpus: vm.nr_cpus,
        phys_base: vm.info.number("phys_base").unwrap_or(0) as u64,
        dump_level: opts.level.0 as i32,
        split: None,
        offset_vmcoreinfo: 0,
        size_vmcoreinfo: 0,
        offset_note: 0,
        size_note: 0,
        offset_eraseinfo: 0,
        size_eraseinfo: 0,
    }
}

fn cycles(max_mapnr: u64, per_cycle: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..max_mapnr.div_ceil(per_cycle)).map(move |i| {
        let start = i * per_cycle;
        (start, (start + per_cycle).min(max_mapnr))
    })
}

/// Writes a kdump-compressed dump of `vm` to `sink`.
pub fn write_kdump(
    vm: &mut Vmcore,
    filter: &mut Filter,
    mut header: Header,
    sink: &mut dyn Sink,
    opts: &WriteOptions,
) -> Result<Stats> {
    let ps = vm.page_size as u64;
    let max_mapnr = vm.max_mapnr();
    let per_cycle = opts.pfns_per_cycle.max(64) / 64 * 64;

    // Pass 1: how many pages get a descriptor.
    let mut num_dumpable = 0u64;
    filter.begin_pass();
    for (start, end) in cycles(max_mapnr, per_cycle) {
        num_dumpable += filter.bitmap2(start, end).count();
    }

    let notes = &vm.elf.notes;
    let layout = Layout::new(
        header.model,
        ps,
        max_mapnr,
        notes.len() as u64,
        num_dumpable,
    );
    header.block_size = ps as u32;
    header.max_mapnr = max_mapnr;
    header.sub_hdr_size = u32::try_from(layout.sub_hdr_blocks)
        .map_err(|_| Error::bad_input("the notes are too large for a kdump header"))?;
    header.bitmap_blocks = u32::try_from(layout.bitmap_blocks()).map_err(|_| {
        Error::unsupported(format!(
            "{max_mapnr} page frames need more bitmap blocks than the kdump header can count"
        ))
    })?;
    header.offset_note = layout.sub_header_offset() + header.model.sub_header_size() as u64;
    header.size_note = notes.len() as u64;
    header.offset_vmcoreinfo = header.offset_note + vm.vmcoreinfo_at.0 as u64;
    header.size_vmcoreinfo = vm.vmcoreinfo_at.1 as u64;

    sink.write_at(0, &header.main_bytes())?;
    let mut sub = header.sub_bytes();
    sub.extend_from_slice(notes);
    sink.write_at(layout.sub_header_offset(), &sub)?;

    let mut descs = SeqWriter::new(layout.desc_offset(), WRITE_BUFFER);
    let mut data = SeqWriter::new(layout.data_offset(), WRITE_BUFFER);
    let endian = header.endian;
    let zero_desc = if opts.level.excludes_zero() {
        let at = data.position();
        data.push(sink, &vec![0u8; vm.page_size])?;
        Some(PageDesc {
            offset: at,
            size: ps as u32,
            flags: 0,
        })
    } else {
        None
    };

    let mut stats = Stats {
        max_mapnr,
        dumpable: num_dumpable,
        ..Stats::default()
    };
    let mut compressor = Compressor::new(opts.codec, vm.page_size)?;
    let mut progress = Progress::new("Copying data", num_dumpable);
    let mut desc_bytes = [0u8; PAGE_DESC_SIZE as usize];
    let mut written = 0u64;
    filter.begin_pass();
    for (start, end) in cycles(max_mapnr, per_cycle) {
        let b1 = filter.bitmap1(start, end);
        stats.pages_in_input += b1.count();
        sink.write_at(layout.bitmap1_offset() + start / 8, &b1.file_bytes())?;
        let b2: Bitmap = filter.bitmap2(start, end);
        sink.write_at(layout.bitmap2_offset() + start / 8, &b2.file_bytes())?;
        for pfn in b2.iter_set() {
            written += 1;
            if written > num_dumpable {
                break;
            }
            let page = vm.memory.read_page(pfn)?;
            let desc = match zero_desc {
                Some(z) if is_zero_page(page) => {
                    stats.zero += 1;
                    z
                }
                _ => {
                    let at = data.position();
                    let (bytes, flags) = match compressor.compress(page)? {
                        Some(c) => {
                            stats.compressed += 1;
                            (c, opts.codec.flag())
                        }
                        None => {
                            stats.raw += 1;
                            (page, 0)
                        }
                    };
                    data.push(sink, bytes)?;
                    PageDesc {
                        offset: at,
                        size: bytes.len() as u32,
                        flags,
                    }
                }
            };
            desc.write(endian, &mut desc_bytes);
            descs.push(sink, &desc_bytes)?;
            progress.page(ps);
        }
    }
    stats.excluded = filter.counts();
    if written != num_dumpable {
        return Err(Error::bad_input(format!(
            "the page filter gave {written} dumpable pages on the second pass but {num_dumpable} on the first"
        )));
    }
    if let Some(msg) = vm.memory.mmap_failure.take() {
        crate::warn!("{msg}");
    }
    descs.flush(sink)?;
    stats.file_size = data.position();
    data.flush(sink)?;
    sink.finish()?;
    progress.finish();
    Ok(stats)
}
