//! Writing a dump: for each cycle of page frames, write its two bitmaps, then read every
//! dumpable page, check it for zero, compress it and append its descriptor and data, in pfn
//! order. The descriptor table has to be sized before the first page is placed, so a first
//! pass counts the dumpable pages cycle by cycle (and keeps the cycles' bitmaps when they
//! fit a small budget, so mem_map is scanned once).
//!
//! One module per job: `plan` (cycles, the two passes' walk, split points), `kdump` (the
//! file's layout and headers), `worker` (read, zero-check, compress a batch), `writer`
//! (descriptors and data in pfn order), `parallel` (workers on threads), `salvage` (what
//! a run that stops early leaves), `levels` (dump level fallback and `--atomic` staging);
//! `elf`, `usage` and `reassemble` are the ELF output, `--mem-usage` and `--reassemble`.
//!
//! Pages travel in batches. With one thread the batches are processed inline; with N, N
//! workers (each with its own input reader and codec context) read, zero-check and compress
//! batches while this thread plans cycles and writes finished batches strictly in sequence.
//! A fixed pool of batch buffers bounds memory, and the output is byte-identical whatever
//! the thread count.

mod elf;
mod kdump;
mod levels;
mod parallel;
mod plan;
mod reassemble;
mod salvage;
mod usage;
mod worker;
mod writer;
pub use elf::write_elf;
pub use kdump::base_header;
pub use levels::{FileTarget, write_with_fallback};
pub use plan::split_points;
pub use reassemble::reassemble;
pub use usage::{Usage, mem_usage, report as usage_report};

use crate::codec::{Codec, Compressor};
use crate::error::{Error, Result};
use crate::filter::{ClassCounts, DumpLevel, Filter};
use crate::format::kdump::{Header, PageDesc};
use crate::input::{Memory, Vmcore};
use crate::target::{SeqWriter, Sink};
use plan::{Planner, cycles};
use worker::{Batch, Worker};
use writer::Writer;

/// Size of the buffered writes of descriptors and of page data.
const WRITE_BUFFER: usize = 1 << 20;

/// How to write a dump.
pub struct WriteOptions {
    /// The codec for page data.
    pub codec: Codec,
    /// The dump level (`-d`).
    pub level: DumpLevel,
    /// Page frames per cycle (the cycle bitmap's budget).
    pub pfns_per_cycle: u64,
    /// Bytes of pass-1 bitmaps that may be kept for pass 2.
    pub bitmap_cache: u64,
    /// Threads that read and compress (1: everything on the calling thread).
    pub threads: usize,
    /// `--split`: this file holds the pages of pfns `[start, end)` only (its bitmaps and
    /// layout are the whole dump's).
    pub range: Option<(u64, u64)>,
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
    /// Dumpable pages found all zero (stored as the one shared zero page).
    pub zero: u64,
    /// Pages stored compressed.
    pub compressed: u64,
    /// Pages stored as they are (compression did not make them smaller).
    pub raw: u64,
    /// Pages that could not be read (descriptor offset 0: "data lost").
    pub unreadable: u64,
    /// Pages with a descriptor whose data did not make it into the file (a run that
    /// stopped early: disk full, size limit, signal); includes `unreadable`.
    pub lost: u64,
    /// Size of the dump file.
    pub file_size: u64,
    /// Pages left out per class.
    pub excluded: ClassCounts,
}

/// A dump that was written, completely or not.
#[derive(Debug)]
pub struct Dumped {
    /// What the run did.
    pub stats: Stats,
    /// Why the dump is incomplete (`None`: complete). An incomplete kdump file has the
    /// header's incomplete flag set and descriptor offset 0 for every page it lacks.
    pub failure: Option<Error>,
}

/// Writes a kdump-compressed dump of `vm` to `sink`: pass 1 counts the dumpable pages
/// (see `plan`), the layout follows (see `kdump`), pass 2 writes the bitmaps, descriptors
/// and page data (see `worker`, `writer`, `parallel`), and a run that stops in the middle
/// leaves an incomplete file whose every page is either right or marked lost (see
/// `salvage`).
pub fn write_kdump(
    vm: &mut Vmcore,
    filter: &mut Filter,
    mut header: Header,
    sink: &mut dyn Sink,
    opts: &WriteOptions,
) -> Result<Dumped> {
    let ps = vm.page_size as u64;
    let max_mapnr = vm.max_mapnr();
    let per_cycle = opts.pfns_per_cycle.max(64) / 64 * 64;
    let range = opts.range.unwrap_or((0, max_mapnr));

    let step = std::time::Instant::now();
    let pass1 = plan::count_dumpable(filter, max_mapnr, per_cycle, range, opts.bitmap_cache)?;
    crate::debug!(
        "STEP [Excluding unnecessary pages] : {:.6} seconds",
        step.elapsed().as_secs_f64()
    );
    let step = std::time::Instant::now();

    // Unused vmemmap pages are missing when this run leaves them out (`-e`) or the input
    // dump already had (re-filtering an `-e` dump cannot bring them back).
    let refiltered_e = matches!(
        vm.source,
        crate::input::Source::Dump {
            excluded_vmemmap: true,
            ..
        }
    );
    if refiltered_e || filter.vmemmap.as_ref().is_some_and(|v| v.armed()) {
        header.status |= crate::format::kdump::STATUS_EXCLUDED_VMEMMAP;
    }
    let layout = kdump::lay_out(vm, &mut header, pass1.num_dumpable, opts.range)?;
    let described = pass1.described;
    kdump::write_headers(sink, &header, &layout, &vm.elf.notes, described)?;

    let mut data = SeqWriter::new(layout.data_offset(), WRITE_BUFFER);
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
    let stats = Stats {
        max_mapnr,
        dumpable: described,
        ..Stats::default()
    };
    let mut writer = Writer::new(
        layout.desc_offset(),
        data,
        zero_desc,
        header.endian,
        ps,
        stats,
    );
    let _mark = sink
        .parallel_writer()
        .map(|out| salvage::mark_on_stall(out, &header, layout.desc_offset(), &writer.shared));

    let pass1_counts = pass1.counts;
    let desc_offset = layout.desc_offset();
    let mut planner = Planner::new(filter, pass1, layout, per_cycle, range);
    let pages = copy_pages(vm, opts, &mut planner, &mut writer, sink, described);

    let counts = if planner.reuse {
        pass1_counts
    } else {
        planner.filter.counts()
    };
    let outcome = salvage::salvage(
        pages,
        &mut writer,
        &mut planner,
        sink,
        desc_offset,
        described,
    )?;
    let mut stats = writer.stats;
    stats.pages_in_input = planner.pages_in_input;
    stats.excluded = counts;
    stats.file_size = writer.data.position();
    salvage::mark_incomplete(&outcome, &mut header, sink);
    sink.finish()?;
    writer.progress.finish();
    crate::debug!(
        "STEP [Copying data               ] : {:.6} seconds",
        step.elapsed().as_secs_f64()
    );
    Ok(Dumped {
        stats,
        failure: outcome.failure,
    })
}

/// Pass 2's pages, on this thread or on `opts.threads` workers; `described`: how many
/// pass 1 counted. A panic on this thread (the planner and writer) or in the single-thread
/// path becomes an internal error here, so that the file is salvaged like after any other
/// failure.
fn copy_pages(
    vm: &Vmcore,
    opts: &WriteOptions,
    planner: &mut Planner<'_>,
    writer: &mut Writer,
    sink: &mut dyn Sink,
    described: u64,
) -> Result<()> {
    let threads = opts.threads.max(1);
    let shared_zero = writer.zero_desc.is_some();
    let make_worker = |mem: Memory| -> Result<Worker> {
        Ok(Worker {
            mem,
            compressor: Compressor::new(opts.codec, vm.page_size)?,
            shared_zero,
            run_buf: Vec::new(),
        })
    };
    crate::error::catch("the writer thread", || -> Result<()> {
        if threads == 1 {
            let mut worker = make_worker(vm.memory.duplicate()?)?;
            let mut batch = Batch::new(vm.page_size);
            while planner.next_batch(sink, &mut batch.pfns)? {
                crate::error::catch("the compressing thread", || worker.process(&mut batch))?;
                crate::report::diagnostics(batch.take_diagnostic());
                writer.write(sink, &batch)?;
            }
        } else {
            let workers = (0..threads)
                .map(|_| make_worker(vm.memory.duplicate()?))
                .collect::<Result<Vec<_>>>()?;
            parallel::run_parallel(workers, planner, writer, sink, vm.page_size)?;
        }
        if planner.dumpable != described {
            return Err(Error::internal(format!(
                "the page filter gave {} dumpable pages on the second pass but {described} on the first",
                planner.dumpable
            )));
        }
        writer.descs.flush(sink)?;
        writer.data.flush(sink)
    })
}
