//! The hot path: for each cycle of page frames, write its two bitmaps, then read every
//! dumpable page, check it for zero, compress it and append its descriptor and data, in pfn
//! order. The descriptor table has to be sized before the first page is placed, so a first
//! pass counts the dumpable pages cycle by cycle (and keeps the cycles' bitmaps when they
//! fit a small budget, so mem_map is scanned once).
//!
//! Pages travel in batches. With one thread the batches are processed inline; with N, N
//! workers (each with its own input reader and codec context) read, zero-check and compress
//! batches while this thread plans cycles and writes finished batches strictly in sequence.
//! A fixed pool of batch buffers bounds memory, and the output is byte-identical whatever
//! the thread count.

mod elf;
mod reassemble;
mod usage;
pub use elf::write_elf;
pub use reassemble::reassemble;
pub use usage::{Usage, mem_usage, report as usage_report};

use crate::codec::{Codec, Compressor};
use crate::error::{Error, ErrorKind, Result};
use crate::filter::{Bitmap, ClassCounts, DumpLevel, Filter, is_zero_page};
use crate::format::kdump::{Header, Layout, Model, PAGE_DESC_SIZE, PageDesc, STATUS_INCOMPLETE};
use crate::input::Vmcore;
use crate::input::{Memory, PhysPages};
use crate::report::Progress;
use crate::target::{SeqWriter, Sink};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the buffered writes of descriptors and of page data.
const WRITE_BUFFER: usize = 1 << 20;

pub struct WriteOptions {
    pub codec: Codec,
    pub level: DumpLevel,
    pub pfns_per_cycle: u64,
    /// Bytes of pass-1 bitmaps that may be kept for pass 2.
    pub bitmap_cache: u64,
    /// Threads that read and compress (1: everything on the calling thread).
    pub threads: usize,
    /// `--split`: this file holds the pages of pfns `[start, end)` only (its bitmaps and
    /// layout are the whole dump's).
    pub range: Option<(u64, u64)>,
}

/// Pages per batch handed to a worker (512 KiB of page data at most with 4 KiB pages).
const BATCH_PAGES: usize = 128;

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
    pub stats: Stats,
    /// Why the dump is incomplete (`None`: complete). An incomplete kdump file has the
    /// header's incomplete flag set and descriptor offset 0 for every page it lacks.
    pub failure: Option<Error>,
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
        phys_base: crate::arch::Machine::from_e_machine(vm.elf.machine)
            .map_or(0, |m| m.header_phys_base(&vm.info)),
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

/// The cycles `[start, end)` covering `0..max_mapnr`, `per_cycle` pfns each.
#[derive(Debug, Clone)]
struct Cycles {
    next: u64,
    max_mapnr: u64,
    per_cycle: u64,
}

impl Iterator for Cycles {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        if self.next >= self.max_mapnr {
            return None;
        }
        let start = self.next;
        self.next = start.saturating_add(self.per_cycle).min(self.max_mapnr);
        Some((start, self.next))
    }
}

fn cycles(max_mapnr: u64, per_cycle: u64) -> Cycles {
    Cycles {
        next: 0,
        max_mapnr,
        per_cycle,
    }
}

/// One page's result in a batch.
#[derive(Debug, Clone, Copy)]
enum Stored {
    /// All zero, and zero pages share one blob (level bit 1).
    Zero,
    /// `len` bytes in the batch's data with these descriptor flags (0: raw page).
    Bytes { len: u32, flags: u32 },
    /// The input could not be read (I/O error): recorded as lost.
    Lost,
}

/// A run of dumpable pfns and, once processed, what to store for each.
struct Batch {
    seq: u64,
    pfns: Vec<u64>,
    out: Vec<Stored>,
    data: Vec<u8>,
    /// The first read error in this batch, for the message.
    read_error: Option<String>,
}

impl Batch {
    /// An empty batch with room for BATCH_PAGES pages stored raw.
    fn new(page_size: usize) -> Batch {
        Batch {
            seq: 0,
            pfns: Vec::with_capacity(BATCH_PAGES),
            out: Vec::with_capacity(BATCH_PAGES),
            data: Vec::with_capacity(BATCH_PAGES * page_size),
            read_error: None,
        }
    }
}

/// Reads, zero-checks and compresses batches: one per thread.
struct Worker {
    mem: Memory,
    compressor: Compressor,
    shared_zero: bool,
    /// Runs of consecutive pages are read into this buffer with one pread each, when the
    /// input prefers that (`ElfMemory::bulk_reads`): at most BATCH_PAGES pages.
    run_buf: Vec<u8>,
}

/// Zero-checks and compresses one page into the batch.
fn store_page(
    compressor: &mut Compressor,
    shared_zero: bool,
    batch: &mut Batch,
    page: &[u8],
) -> Result<()> {
    if shared_zero && is_zero_page(page) {
        batch.out.push(Stored::Zero);
        return Ok(());
    }
    let flag = compressor.codec().flag();
    crate::fault!(Compress);
    let (bytes, flags) = match compressor.compress(page)? {
        Some(c) => (c, flag),
        None => (page, 0),
    };
    batch.data.extend_from_slice(bytes);
    batch.out.push(Stored::Bytes {
        len: bytes.len() as u32,
        flags,
    });
    Ok(())
}

impl Worker {
    fn process(&mut self, batch: &mut Batch) -> Result<()> {
        batch.out.clear();
        batch.data.clear();
        batch.read_error = None;
        let pfns = std::mem::take(&mut batch.pfns);
        let result = (|| -> Result<()> {
            let mut i = 0;
            while i < pfns.len() {
                let mut j = i + 1;
                while j < pfns.len() && pfns[j] == pfns[j - 1].wrapping_add(1) {
                    j += 1;
                }
                if !self.run(&pfns[i..j], batch)? {
                    for &pfn in &pfns[i..j] {
                        self.page(pfn, batch, false)?;
                    }
                }
                i = j;
            }
            Ok(())
        })();
        batch.pfns = pfns;
        result?;
        if let Some(msg) = self.mem.take_warning() {
            crate::warn!("{msg}");
        }
        Ok(())
    }

    /// Consecutive pages with one pread, when the input is read that way
    /// (`ElfMemory::bulk_reads`). `false`: not whole pages of one segment, go page by page.
    fn run(&mut self, pfns: &[u64], batch: &mut Batch) -> Result<bool> {
        let Memory::Elf(m) = &mut self.mem else {
            return Ok(false);
        };
        if !m.bulk_reads() {
            return Ok(false);
        }
        let ps = m.page_size();
        self.run_buf.resize(pfns.len() * ps, 0);
        crate::fault!(Read);
        match m.read_run(pfns[0], &mut self.run_buf) {
            Ok(true) => {
                for page in self.run_buf.chunks_exact(ps) {
                    store_page(&mut self.compressor, self.shared_zero, batch, page)?;
                }
            }
            Ok(false) => return Ok(false),
            // Some page of the run is unreadable: find which, one pread each (never
            // through a mapping, where a bad page is a SIGBUS).
            Err(_) => {
                for &pfn in pfns {
                    self.page(pfn, batch, true)?;
                }
            }
        }
        Ok(true)
    }

    /// One page, with pread when `pread` (and the input has it whole); stored as lost
    /// when it cannot be read.
    fn page(&mut self, pfn: u64, batch: &mut Batch, pread: bool) -> Result<()> {
        let ps = self.mem.page_size();
        crate::fault!(Read);
        let page = match &mut self.mem {
            Memory::Elf(m) if pread && self.run_buf.len() >= ps => {
                let buf = &mut self.run_buf[..ps];
                match m.read_run(pfn, buf) {
                    Ok(true) => Ok(&*buf),
                    Ok(false) => m.read_page(pfn),
                    Err(e) => Err(e),
                }
            }
            mem => mem.read_page(pfn),
        };
        match page {
            Ok(page) => store_page(&mut self.compressor, self.shared_zero, batch, page),
            // The rest of the dump is worth more than this page.
            Err(e) if e.kind() == ErrorKind::Io => {
                batch.out.push(Stored::Lost);
                batch.read_error.get_or_insert_with(|| e.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Appends descriptors and page data in pfn order, and keeps track of which descriptors
/// have their data safely written, so that a run that stops early can leave a file whose
/// every descriptor is either right or says "lost".
struct Writer {
    descs: SeqWriter,
    data: SeqWriter,
    zero_desc: Option<PageDesc>,
    endian: crate::input::bytes::Endian,
    page_size: u64,
    stats: Stats,
    progress: Progress,
    /// Descriptors handed to `descs` so far.
    described: u64,
    /// Of those, how many have their data known to be written.
    committed: u64,
    /// `(described, data end)` after each batch, oldest first, until committed.
    checkpoints: std::collections::VecDeque<(u64, u64)>,
    /// Page data placed for other threads to write and not confirmed yet: start → end.
    in_flight: std::collections::BTreeMap<u64, u64>,
    /// The first page read error, for the final message.
    read_error: Option<String>,
    /// `described` and `committed`, for the watchdog's marking from another thread.
    shared: Arc<[AtomicU64; 2]>,
}

impl Writer {
    /// Writes the batch: its stored bytes (contiguous in the file, in one write) and the
    /// descriptors of its pages.
    fn write(&mut self, sink: &mut dyn Sink, b: &Batch) -> Result<()> {
        let offset = self.data.position();
        crate::fault!(Write);
        self.data.write_through(sink, &b.data)?;
        self.describe(sink, b, offset)
    }

    /// Places the batch's bytes at the next data offset without writing them (another
    /// thread will, then `confirm`s), writes its descriptors, and returns the offset.
    fn place(&mut self, sink: &mut dyn Sink, b: &Batch) -> Result<u64> {
        let offset = self.data.reserve(sink, b.data.len() as u64)?;
        self.in_flight.insert(offset, offset + b.data.len() as u64);
        self.describe(sink, b, offset)?;
        Ok(offset)
    }

    /// The placed data at `offset` has been written.
    fn confirm(&mut self, offset: u64) {
        self.in_flight.remove(&offset);
        self.commit();
    }

    /// Every byte of page data below this offset is in the file.
    fn data_written_up_to(&self) -> u64 {
        match self.in_flight.keys().next() {
            Some(&start) => start,
            None => self.data.flushed(),
        }
    }

    fn commit(&mut self) {
        let safe = self.data_written_up_to();
        while let Some(&(n, end)) = self.checkpoints.front() {
            if end > safe {
                break;
            }
            self.committed = n;
            self.checkpoints.pop_front();
        }
        self.shared[1].store(self.committed, Ordering::Relaxed);
    }

    fn describe(&mut self, sink: &mut dyn Sink, b: &Batch, mut offset: u64) -> Result<()> {
        let mut desc_bytes = [0u8; PAGE_DESC_SIZE as usize];
        for s in &b.out {
            let desc = match *s {
                Stored::Zero => {
                    self.stats.zero += 1;
                    self.zero_desc.unwrap_or_default()
                }
                Stored::Bytes { len, flags } => {
                    if flags == 0 {
                        self.stats.raw += 1;
                    } else {
                        self.stats.compressed += 1;
                    }
                    let desc = PageDesc {
                        offset,
                        size: len,
                        flags,
                    };
                    offset += len as u64;
                    desc
                }
                Stored::Lost => {
                    self.stats.unreadable += 1;
                    PageDesc::default()
                }
            };
            desc.write(self.endian, &mut desc_bytes);
            crate::fault!(Describe);
            self.descs.push(sink, &desc_bytes)?;
            self.progress.page(self.page_size);
        }
        if self.read_error.is_none() {
            self.read_error.clone_from(&b.read_error);
        }
        self.described += b.out.len() as u64;
        self.shared[0].store(self.described, Ordering::Relaxed);
        self.checkpoints.push_back((self.described, offset));
        self.commit();
        Ok(())
    }

    /// After `failure` in the middle of the pages: writes what can still be written, then
    /// makes every descriptor whose data is not known to be in the file say "lost"
    /// (offset 0). A descriptor that cannot be written stays a hole, which reads as zero,
    /// which is "lost" too. When an error says the output is unreachable (a soft NFS
    /// mount timed out, see `Error::is_unreachable`), salvage stops (or does not start):
    /// each further write would only wait for the same timeout, minutes in all. Returns
    /// how many described pages lost their data this way, and whether the output still
    /// takes writes.
    fn salvage(&mut self, sink: &mut dyn Sink, desc_start: u64, failure: &Error) -> (u64, bool) {
        // A failure (a panic) in the middle of `describe` leaves descriptors pushed beyond
        // `described`: they are covered too.
        let pushed = (self.descs.position() - desc_start) / PAGE_DESC_SIZE;
        self.described = self.described.max(pushed);
        let takes_writes = |r: Result<()>| !r.is_err_and(|e| e.is_unreachable());
        let mut alive = !failure.is_unreachable() && takes_writes(self.data.flush(sink));
        self.commit();
        alive = alive && takes_writes(self.descs.flush(sink));
        let zeros = vec![0u8; WRITE_BUFFER];
        let mut at = desc_start + self.committed * PAGE_DESC_SIZE;
        let end = desc_start + self.described * PAGE_DESC_SIZE;
        while alive && at < end {
            let n = (end - at).min(zeros.len() as u64);
            alive = takes_writes(sink.write_at(at, &zeros[..n as usize]));
            at += n;
        }
        (self.described - self.committed, alive)
    }
}

/// What the watchdog does to a kdump file it gives up on (see `watchdog`): the page
/// descriptors whose data is not known to be written say "lost" (as `Writer::salvage`
/// makes them), then the header says incomplete. Descriptors never written are holes and
/// read as lost already.
fn mark_on_stall(
    out: crate::target::ParallelWriter,
    header: &Header,
    desc_start: u64,
    shared: &Arc<[AtomicU64; 2]>,
) -> crate::watchdog::MarkGuard {
    let mut h = header.clone();
    h.status |= STATUS_INCOMPLETE;
    let header_bytes = h.main_bytes();
    let shared = Arc::clone(shared);
    crate::watchdog::on_stall(move || {
        let described = shared[0].load(Ordering::Relaxed);
        let committed = shared[1].load(Ordering::Relaxed).min(described);
        let zeros = vec![0u8; WRITE_BUFFER];
        let mut at = desc_start + committed * PAGE_DESC_SIZE;
        let end = desc_start + described * PAGE_DESC_SIZE;
        while at < end {
            let n = (end - at).min(zeros.len() as u64);
            out.write_at_anyway(at, &zeros[..n as usize])?;
            at += n;
        }
        out.write_at_anyway(0, &header_bytes)
    })
}

/// Writes a kdump-compressed dump of `vm` to `sink`.
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

    // Pass 1: how many pages get a descriptor; keep the bitmaps if they are small.
    let step = std::time::Instant::now();
    let keep = max_mapnr / 8 <= opts.bitmap_cache;
    let mut kept: Vec<Bitmap> = Vec::new();
    let mut num_dumpable = 0u64;
    let (lo, hi) = opts.range.unwrap_or((0, max_mapnr));
    // The pages this file describes (all of them, except in a split set).
    let mut described = 0u64;
    filter.begin_pass();
    for (start, end) in cycles(max_mapnr, per_cycle) {
        crate::signals::check()?;
        crate::fault!(Scan);
        crate::watchdog::progress();
        if !filter.has_memory(start, end) {
            if keep {
                kept.push(Bitmap::new(start, end - start));
            }
            continue;
        }
        let b2 = filter.bitmap2(start, end);
        num_dumpable += b2.count();
        described += b2.count_in(lo, hi);
        if keep {
            kept.push(b2);
        }
    }
    let pass1_counts = filter.counts();
    crate::debug!(
        "STEP [Excluding unnecessary pages] : {:.6} seconds",
        step.elapsed().as_secs_f64()
    );
    let step = std::time::Instant::now();

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
    header.split = opts.range;
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
    sink.reserve(layout.desc_offset(), described * PAGE_DESC_SIZE)?;

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
    let mut writer = Writer {
        descs: SeqWriter::new(layout.desc_offset(), WRITE_BUFFER),
        data,
        zero_desc,
        endian: header.endian,
        page_size: ps,
        stats: Stats {
            max_mapnr,
            dumpable: described,
            ..Stats::default()
        },
        progress: Progress::new("Copying data", described),
        described: 0,
        committed: 0,
        checkpoints: Default::default(),
        in_flight: Default::default(),
        read_error: None,
        shared: Default::default(),
    };
    let _mark = sink
        .parallel_writer()
        .map(|out| mark_on_stall(out, &header, layout.desc_offset(), &writer.shared));

    // Pass 2: bitmaps and pages, cycle by cycle.
    let mut planner = Planner {
        filter,
        kept: kept.into_iter(),
        reuse: keep,
        cycles: cycles(max_mapnr, per_cycle),
        layout,
        pending: None,
        range: (lo, hi),
        pages_in_input: 0,
        dumpable: 0,
        bitmaps_done: 0,
    };
    if !planner.reuse {
        planner.filter.begin_pass();
    }
    let threads = opts.threads.max(1);
    let make_worker = |mem: Memory| -> Result<Worker> {
        Ok(Worker {
            mem,
            compressor: Compressor::new(opts.codec, vm.page_size)?,
            shared_zero: zero_desc.is_some(),
            run_buf: Vec::new(),
        })
    };
    // A panic on this thread (the planner and writer) or in the single-thread path becomes
    // an internal error here, so that the file is salvaged like after any other failure.
    let pages = crate::error::catch("the writer thread", || -> Result<()> {
        if threads == 1 {
            let mut worker = make_worker(vm.memory.duplicate()?)?;
            let mut batch = Batch::new(vm.page_size);
            while planner.next_batch(sink, &mut batch.pfns)? {
                crate::error::catch("the compressing thread", || worker.process(&mut batch))?;
                writer.write(sink, &batch)?;
            }
        } else {
            let workers = (0..threads)
                .map(|_| make_worker(vm.memory.duplicate()?))
                .collect::<Result<Vec<_>>>()?;
            run_parallel(workers, &mut planner, &mut writer, sink, vm.page_size)?;
        }
        if planner.dumpable != described {
            return Err(Error::internal(format!(
                "the page filter gave {} dumpable pages on the second pass but {described} on the first",
                planner.dumpable
            )));
        }
        writer.descs.flush(sink)?;
        writer.data.flush(sink)
    });

    let counts = if planner.reuse {
        pass1_counts
    } else {
        planner.filter.counts()
    };
    let mut output_alive = true;
    let mut failure = match pages {
        Ok(()) => None,
        // A stream cannot be patched afterwards: the reader sees it end early.
        Err(e) if !sink.seekable() => return Err(e),
        Err(e) => {
            let (unwritten, alive) = writer.salvage(sink, layout.desc_offset(), &e);
            writer.stats.lost = unwritten + (described - writer.described);
            if alive && let Err(e) = planner.salvage_bitmaps(sink) {
                crate::warn!("cannot write the bitmaps of the cycles not reached: {e}");
            }
            output_alive = alive;
            Some(e)
        }
    };
    writer.stats.lost += writer.stats.unreadable;
    if failure.is_none() && writer.stats.unreadable > 0 {
        failure = Some(Error::new(
            ErrorKind::Io,
            format!(
                "{} pages could not be read and are marked lost in the dump (first: {})",
                writer.stats.unreadable,
                writer.read_error.as_deref().unwrap_or("unknown error")
            ),
        ));
    }
    let mut stats = writer.stats;
    stats.pages_in_input = planner.pages_in_input;
    stats.excluded = counts;
    stats.file_size = writer.data.position();
    if failure.is_some() && !output_alive {
        crate::warn!("cannot mark the dump incomplete in its header: the output is unreachable");
    } else if failure.is_some() {
        header.status |= STATUS_INCOMPLETE;
        if let Err(e) = sink.write_at(0, &header.main_bytes()) {
            crate::warn!("cannot mark the dump incomplete in its header: {e}");
        }
    }
    sink.finish()?;
    writer.progress.finish();
    crate::debug!(
        "STEP [Copying data               ] : {:.6} seconds",
        step.elapsed().as_secs_f64()
    );
    Ok(Dumped { stats, failure })
}

/// Walks the cycles of pass 2: writes each cycle's bitmaps, then hands out its dumpable
/// pfns in batches.
struct Planner<'f> {
    filter: &'f mut Filter,
    /// Pass 1's bitmaps, when kept (then `reuse` is set and mem_map is not read again).
    kept: std::vec::IntoIter<Bitmap>,
    reuse: bool,
    cycles: Cycles,
    layout: Layout,
    /// The current cycle's dumpable pfns not handed out yet.
    pending: Option<crate::filter::IntoSetBits>,
    /// Only pfns in `[start, end)` are handed out (a file of a split set).
    range: (u64, u64),
    pages_in_input: u64,
    dumpable: u64,
    /// The bitmaps of pfns below this are written.
    bitmaps_done: u64,
}

impl Planner<'_> {
    /// After a failure: writes the bitmaps of the cycles not reached, when pass 1 kept
    /// them (no mem_map is read now), so that their pages read as lost (their descriptors
    /// are zero, see `Writer::salvage`), as the final message counts them, rather than as
    /// absent. Without kept bitmaps those cycles stay unwritten.
    fn salvage_bitmaps(&mut self, sink: &mut dyn Sink) -> Result<()> {
        for b2 in self.kept.by_ref() {
            if b2.start() < self.bitmaps_done {
                continue;
            }
            let b1 = self.filter.bitmap1(b2.start(), b2.end());
            sink.write_at(
                self.layout.bitmap1_offset() + b2.start() / 8,
                &b1.file_bytes(),
            )?;
            sink.write_at(
                self.layout.bitmap2_offset() + b2.start() / 8,
                &b2.file_bytes(),
            )?;
            if b2.end() == self.layout.max_mapnr {
                Self::pad_bitmap2(&self.layout, sink, b2.end().div_ceil(8))?;
            }
        }
        Ok(())
    }

    /// Writes zeros from byte `from` of the 2nd bitmap to the end of its last block: when
    /// no descriptor or page follows the bitmaps, nothing else makes the file reach their
    /// end, and readers take it as truncated.
    fn pad_bitmap2(layout: &Layout, sink: &mut dyn Sink, from: u64) -> Result<()> {
        let len = layout.bitmap_len.saturating_sub(from);
        if len == 0 {
            return Ok(());
        }
        sink.write_at(layout.bitmap2_offset() + from, &vec![0u8; len as usize])
    }

    /// Fills `pfns` with the next batch (at most BATCH_PAGES, within one cycle). Returns
    /// false when every cycle is done.
    fn next_batch(&mut self, sink: &mut dyn Sink, pfns: &mut Vec<u64>) -> Result<bool> {
        pfns.clear();
        crate::signals::check()?;
        loop {
            if let Some(p) = self.pending.as_mut() {
                while pfns.len() < BATCH_PAGES {
                    match p.next() {
                        Some(pfn) if pfn < self.range.0 => {}
                        Some(pfn) if pfn < self.range.1 => pfns.push(pfn),
                        _ => break,
                    }
                }
                if !pfns.is_empty() {
                    self.dumpable += pfns.len() as u64;
                    return Ok(true);
                }
                self.pending = None;
            }
            let Some((start, end)) = self.cycles.next() else {
                return Ok(false);
            };
            crate::fault!(Scan);
            if !self.filter.has_memory(start, end) {
                // Both bitmaps are zero there: a file has zeros where nothing is written,
                // a stream gets them written out (its readers need not treat holes so).
                let _ = self.kept.next();
                if !sink.seekable() {
                    let zeros = vec![0u8; (end - start).div_ceil(8) as usize];
                    sink.write_at(self.layout.bitmap1_offset() + start / 8, &zeros)?;
                    sink.write_at(self.layout.bitmap2_offset() + start / 8, &zeros)?;
                }
                if end == self.layout.max_mapnr {
                    let from = if sink.seekable() {
                        self.layout.bitmap_len - 1
                    } else {
                        end.div_ceil(8)
                    };
                    Self::pad_bitmap2(&self.layout, sink, from)?;
                }
                self.bitmaps_done = end;
                continue;
            }
            let b1 = self.filter.bitmap1(start, end);
            self.pages_in_input += b1.count();
            sink.write_at(self.layout.bitmap1_offset() + start / 8, &b1.file_bytes())?;
            let b2 = match self.kept.next() {
                Some(b) => b,
                None => self.filter.bitmap2(start, end),
            };
            sink.write_at(self.layout.bitmap2_offset() + start / 8, &b2.file_bytes())?;
            if end == self.layout.max_mapnr {
                Self::pad_bitmap2(&self.layout, sink, end.div_ceil(8))?;
            }
            self.bitmaps_done = end;
            self.pending = Some(b2.into_iter_set());
        }
    }
}

/// Work for a helper thread.
enum Job {
    Compress(Batch),
    /// Write the batch's bytes at this offset (files only; the writer placed them).
    Write(u64, Batch),
}

enum Done {
    Compressed(Result<Batch>),
    /// The batch's data is written at this offset (or not).
    Written(u64, Result<Batch>),
}

/// Runs pass 2 with one worker thread per `workers` entry: the calling thread plans
/// batches, places finished ones in sequence and writes their descriptors; the workers
/// compress, and for a file they also write the placed page data, so the copies into the
/// page cache do not all fall on one thread. A fixed pool of batches (two per worker, plus
/// one) bounds memory.
fn run_parallel(
    workers: Vec<Worker>,
    planner: &mut Planner<'_>,
    writer: &mut Writer,
    sink: &mut dyn Sink,
    page_size: usize,
) -> Result<()> {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, mpsc};

    let pool_size = 2 * workers.len() + 1;
    let parallel_out = sink.parallel_writer();
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(pool_size);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for mut worker in workers {
            let rx = Arc::clone(&job_rx);
            let tx = done_tx.clone();
            let out = parallel_out.clone();
            scope.spawn(move || {
                loop {
                    // The lock is held only to take the next job.
                    let next = rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|r| r.recv().map_err(|_| ()));
                    // A panic is caught and sent as this job's error like any other, so
                    // that the writer stops at once instead of waiting for the batch.
                    let done = match next {
                        Err(()) => break,
                        Ok(Job::Compress(mut b)) => Done::Compressed(
                            crate::error::catch("a compression thread", || worker.process(&mut b))
                                .map(|()| b),
                        ),
                        Ok(Job::Write(at, b)) => Done::Written(
                            at,
                            crate::error::catch("a page-data writer thread", || {
                                crate::fault!(Write);
                                match &out {
                                    Some(out) => out.write_at(at, &b.data),
                                    None => Err(Error::internal("no parallel output")),
                                }
                            })
                            .map(|()| b),
                        ),
                    };
                    let failed =
                        matches!(done, Done::Compressed(Err(_)) | Done::Written(_, Err(_)));
                    if tx.send(done).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        // Only the workers hold the queue's receiving end: if they all stopped, sending
        // fails instead of blocking.
        drop(job_rx);

        let mut free: Vec<Batch> = (0..pool_size).map(|_| Batch::new(page_size)).collect();
        let mut waiting: BTreeMap<u64, Batch> = BTreeMap::new();
        let (mut next_seq, mut next_write, mut planned_all) = (0u64, 0u64, false);
        let mut writes_out = 0usize;
        // Set when every worker has stopped: the reason is then in `done_rx`, below.
        let mut gone = false;
        let mut stopped = || {
            gone = true;
            Error::internal("the compression threads stopped")
        };
        // Caught here as well as by the caller, so that the workers' finished writes are
        // still confirmed below after a panic on this thread.
        let result = crate::error::catch("the writer thread", || -> Result<()> {
            loop {
                // Hand out batches while buffers are free.
                while !planned_all && let Some(mut b) = free.pop() {
                    if planner.next_batch(sink, &mut b.pfns)? {
                        b.seq = next_seq;
                        next_seq += 1;
                        job_tx.send(Job::Compress(b)).map_err(|_| stopped())?;
                    } else {
                        free.push(b);
                        planned_all = true;
                    }
                }
                if planned_all && next_write == next_seq && writes_out == 0 {
                    return Ok(());
                }
                match done_rx.recv() {
                    Ok(Done::Compressed(b)) => {
                        let b = b?;
                        waiting.insert(b.seq, b);
                    }
                    Ok(Done::Written(at, b)) => {
                        writes_out -= 1;
                        free.push(b?);
                        writer.confirm(at);
                    }
                    Err(_) => return Err(stopped()),
                }
                // Place every batch whose turn has come.
                while let Some(b) = waiting.remove(&next_write) {
                    next_write += 1;
                    if parallel_out.is_some() && !b.data.is_empty() {
                        let at = writer.place(sink, &b)?;
                        writes_out += 1;
                        job_tx.send(Job::Write(at, b)).map_err(|_| stopped())?;
                    } else {
                        writer.write(sink, &b)?;
                        free.push(b);
                    }
                }
            }
        });
        drop(job_tx);
        let mut first_failure = None;
        if result.is_err() {
            // Stopping early: page data the workers did write still counts, so that the
            // incomplete dump keeps it. They end once the job queue is closed.
            for done in done_rx.iter() {
                match done {
                    Done::Written(at, Ok(_)) => writer.confirm(at),
                    Done::Written(_, Err(e)) | Done::Compressed(Err(e)) => {
                        first_failure.get_or_insert(e);
                    }
                    Done::Compressed(Ok(_)) => {}
                }
            }
        }
        // When the workers had all stopped, what stopped them is the run's failure.
        match (result, first_failure) {
            (Err(_), Some(e)) if gone => Err(e),
            (result, _) => result,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts write attempts; every write fails with `errno`.
    struct Refusing {
        errno: i32,
        writes: usize,
    }
    impl Sink for Refusing {
        fn write_at(&mut self, _offset: u64, _data: &[u8]) -> Result<()> {
            self.writes += 1;
            Err(os_error(self.errno))
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
    }

    fn os_error(errno: i32) -> Error {
        Error::io(std::io::Error::from_raw_os_error(errno), "refused")
    }

    /// A writer that described 4 MiB worth of descriptors (several salvage writes), none
    /// committed, with some page data still buffered.
    fn stopped_writer() -> Writer {
        let described = 4 * WRITE_BUFFER as u64 / PAGE_DESC_SIZE;
        let mut data = SeqWriter::new(1 << 30, WRITE_BUFFER);
        let mut never = Refusing {
            errno: nix::libc::EIO,
            writes: 0,
        };
        data.push(&mut never, &[1u8; 4096])
            .expect("buffered, not written");
        Writer {
            descs: SeqWriter::new(4096, WRITE_BUFFER),
            data,
            zero_desc: None,
            endian: crate::input::bytes::Endian::Little,
            page_size: 4096,
            stats: Stats::default(),
            progress: Progress::new("test", 0),
            described,
            committed: 0,
            checkpoints: Default::default(),
            in_flight: Default::default(),
            read_error: None,
            shared: Default::default(),
        }
    }

    /// Salvage after a first failure `first` on a sink failing with `errno`: (write
    /// attempts, output still alive).
    fn salvage_with(first: i32, errno: i32) -> (usize, bool) {
        let mut w = stopped_writer();
        let mut sink = Refusing { errno, writes: 0 };
        let (lost, alive) = w.salvage(&mut sink, 4096, &os_error(first));
        assert_eq!(lost, w.described);
        (sink.writes, alive)
    }

    #[test]
    fn salvage_does_not_wait_on_an_unreachable_output() {
        use nix::libc::{EIO, ESTALE, ETIMEDOUT};
        // A timed-out soft NFS mount: not one more write.
        assert_eq!(salvage_with(ETIMEDOUT, ETIMEDOUT), (0, false));
        // It goes away during salvage: the first timeout ends it.
        assert_eq!(salvage_with(EIO, ESTALE), (1, false));
    }

    #[test]
    fn salvage_goes_on_after_media_errors_and_a_full_disk() {
        use nix::libc::{EIO, ENOSPC};
        // The data, then every descriptor chunk: some of them may be writable.
        assert_eq!(salvage_with(EIO, EIO), (1 + 4, true));
        assert_eq!(salvage_with(ENOSPC, ENOSPC), (1 + 4, true));
    }

    /// Records the extent of every write.
    struct Extents(Vec<(u64, usize)>);
    impl Sink for Extents {
        fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
            self.0.push((offset, data.len()));
            Ok(())
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn salvage_covers_descriptors_pushed_by_an_unfinished_batch() {
        let mut w = stopped_writer();
        let mut sink = Extents(Vec::new());
        // 10 described and committed, then a failure after 5 more were pushed.
        w.described = 10;
        w.committed = 10;
        for _ in 0..15 {
            w.descs
                .push(&mut sink, &[7u8; PAGE_DESC_SIZE as usize])
                .expect("buffered");
        }
        let (lost, _) = w.salvage(&mut sink, 4096, &os_error(nix::libc::EIO));
        assert_eq!(lost, 5);
        let zeroed = 4096 + 10 * PAGE_DESC_SIZE;
        assert_eq!(sink.0.last(), Some(&(zeroed, 5 * PAGE_DESC_SIZE as usize)));
    }
}
