//! Runs a `Job`: the glue between the command line and the pipeline, and the one place that
//! turns an error into a message and an exit status (0 success, 1 any failure).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use crate::budget::{self, Budget};
use crate::cli::{self, Job, Mode};
use crate::codec::Codec;
use crate::error::{Context, Error, Result};
use crate::filter::{DumpLevel, Filter, PageClasses, load_ranges};
use crate::format::flat;
use crate::input::kdump::{KdumpFile, KdumpPages};
use crate::input::{PhysPages, Vmcore};
use crate::kernel::dmesg;
use crate::kernel::layout::PageLayout;
use crate::kernel::memmap::MemMap;
use crate::kernel::page::Classifier;
use crate::kernel::uts;
use crate::kernel::vmcoreinfo::VmcoreInfo;
use crate::kernel::x86_64::{KernelMemory, X86_64};
use crate::pipeline::{self, WriteOptions};
use crate::report;
use crate::target::{self, FileSink, Sink, StreamSink};
use crate::{common, debug, stats, warn};

const EM_X86_64: u16 = 62;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Entry point of the binary: parses `args`, runs the job, returns the exit status.
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let job = match cli::parse(args) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("vmsift: {e}");
            return 1;
        }
    };
    report::set_level(job.message_level);
    match run(&job) {
        Ok(()) => 0,
        Err(e) => {
            report::emit(report::ML_ERROR, format_args!("vmsift: error: {e}"));
            1
        }
    }
}

pub fn run(job: &Job) -> Result<()> {
    if job.check_params {
        // The command line parsed into a job: that is all --check-params asks.
        return Ok(());
    }
    match &job.mode {
        Mode::Help => {
            print!("{}", cli::help());
            Ok(())
        }
        Mode::Version => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "vmsift: version {VERSION} (makedumpfile-compatible)");
            for c in Codec::ALL {
                let _ = writeln!(out, "{}\tenabled", c.name());
            }
            Ok(())
        }
        Mode::Rearrange { dumpfile } => rearrange(dumpfile, job.force),
        Mode::DumpDmesg { vmcore, logfile } => dump_dmesg(job, vmcore, logfile.as_deref()),
        Mode::Dump { vmcore, dumpfile } => dump(job, vmcore, dumpfile.as_deref()),
    }
}

/// `-R`: flattened stream on stdin → seekable file.
fn rearrange(dumpfile: &Path, force: bool) -> Result<()> {
    let file = target::create_output(dumpfile, force)?;
    let mut sink = FileSink::new(file, dumpfile);
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let n = flat::replay(&mut input, |at, data| sink.write_at(at, data))
        .with_context(|| format!("rebuilding {} from stdin", dumpfile.display()))?;
    common!(
        "The dumpfile is saved to {} ({n} bytes of data).",
        dumpfile.display()
    );
    common!("\nvmsift Completed.");
    Ok(())
}

/// `--dump-dmesg`: the kernel log of an ELF vmcore or a kdump-compressed dump.
fn dump_dmesg(job: &Job, input: &Path, logfile: Option<&Path>) -> Result<()> {
    let shown = input.display();
    let mut head = [0u8; 16];
    {
        use std::io::Read;
        let mut f =
            std::fs::File::open(input).map_err(|e| Error::io(e, format!("cannot open {shown}")))?;
        let _ = f.read(&mut head);
    }
    let (info, pages): (VmcoreInfo, Box<dyn PhysPages>) = if head.starts_with(b"\x7fELF") {
        let vm = Vmcore::open(input, job.use_mmap)?;
        let mem = Box::new(vm.memory.duplicate()?);
        (vm.info, mem)
    } else if head.starts_with(crate::format::kdump::SIGNATURE) {
        let file =
            std::fs::File::open(input).map_err(|e| Error::io(e, format!("cannot open {shown}")))?;
        let dump = KdumpFile::open(file).map_err(|e| e.context(&shown))?;
        let notes = dump.notes().map_err(|e| e.context(&shown))?;
        let endian = crate::input::bytes::Endian::Little;
        let text = crate::input::elf::Notes::new(&notes, endian)
            .find(|n| n.name == b"VMCOREINFO")
            .map(|n| n.desc.to_vec())
            .ok_or_else(|| Error::bad_input(format!("{shown}: the dump has no VMCOREINFO note")))?;
        (VmcoreInfo::parse(&text), Box::new(KdumpPages::new(dump)))
    } else if head.starts_with(flat::SIGNATURE) {
        return Err(Error::unsupported(format!(
            "{shown} is a flattened dump: rebuild it first with vmsift -R FILE < {shown}"
        )));
    } else {
        return Err(Error::bad_input(format!(
            "{shown} is neither an ELF vmcore nor a kdump file"
        )));
    };
    for (key, value) in info.lines() {
        debug!("  {key}={value}");
    }
    let arch = X86_64::from_vmcoreinfo(&info).ok_or_else(|| {
        Error::unsupported(format!(
            "{shown}: VMCOREINFO lacks what x86_64 address translation needs"
        ))
    })?;
    let mut km = KernelMemory::new(pages, arch);
    let log = dmesg::lockless(&mut km, &info)
        .map_err(|why| Error::bad_input(format!("{shown}: {why}")))?;
    match logfile {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&log)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io(e, "cannot write the log to stdout"))?;
        }
        Some(path) => {
            let file = target::create_output(path, job.force)?;
            let mut sink = FileSink::new(file, path);
            sink.write_at(0, &log)?;
            common!("The dmesg log is saved to {}.", path.display());
        }
    }
    common!("\nvmsift Completed.");
    Ok(())
}

fn dump(job: &Job, vmcore_path: &Path, dumpfile: Option<&Path>) -> Result<()> {
    // Check the input, then claim the output, before any other work or message: bad input
    // leaves no file, and an existing file is refused before anything else is said.
    let mut vm = Vmcore::open(vmcore_path, job.use_mmap)?;
    if job.dry_run {
        let stats = write_dump(job, &mut vm, &mut target::NullSink)?;
        debug!("dry run: {} bytes would have been written", stats.file_size);
        common!("\nvmsift Completed (dry run: nothing written).");
        return Ok(());
    }
    let output = match dumpfile {
        Some(path) => Some((target::create_output(path, job.force)?, path)),
        None => None,
    };
    let result = match output {
        None => {
            let mut sink = StreamSink::new(std::io::stdout().lock(), "stdout");
            write_dump(job, &mut vm, &mut sink)
        }
        Some((file, path)) => {
            let mut sink = FileSink::new(file, path);
            write_dump(job, &mut vm, &mut sink).map_err(|e| {
                // Nothing of a failed run may look like a finished dump.
                let _ = std::fs::remove_file(path);
                e.context(format!("writing {}", path.display()))
            })
        }
    };
    let stats = result?;
    debug!(
        "pages: {} in the input, {} dumped ({} zero, {} compressed, {} raw)",
        stats.pages_in_input, stats.dumpable, stats.zero, stats.compressed, stats.raw
    );
    if let Some(path) = dumpfile {
        common!("The dumpfile is saved to {}.", path.display());
    }
    common!("\nvmsift Completed.");
    Ok(())
}

fn write_dump(job: &Job, vm: &mut Vmcore, sink: &mut dyn Sink) -> Result<pipeline::Stats> {
    for (key, value) in vm.info.lines() {
        debug!("  {key}={value}");
    }
    let level = job.levels.first().copied().unwrap_or_default();
    if job.levels.len() > 1 {
        debug!("dump level fallbacks after {level} are not used yet");
    }
    if let Some(n) = job.threads
        && n > 1
    {
        debug!("--num-threads {n}: pages are compressed on one thread in this version");
    }
    let uts = uts::read(vm);
    if let Some(why) = &uts.fallback {
        warn!("{why}; the header's utsname is built from VMCOREINFO instead");
    }
    let budget = Budget::new(budget::mem_available(), job.cyclic_buffer_kib);
    debug!(
        "memory budget: {} KiB cycle bitmap ({} pfns per cycle), up to {} KiB of kept bitmaps",
        budget.cycle_bitmap >> 10,
        budget.pfns_per_cycle(),
        budget.bitmap_cache >> 10
    );
    let opts = WriteOptions {
        codec: job.codec,
        level,
        pfns_per_cycle: budget.pfns_per_cycle(),
        bitmap_cache: budget.bitmap_cache,
        threads: job
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let (memory, file) = load_ranges(&vm.elf.loads, vm.page_size as u64);
    let classes = page_classes(vm, level)?;
    let mut filter = Filter {
        level,
        memory,
        file,
        classes,
    };
    let header = pipeline::base_header(vm, uts.name, &opts);
    let stats = pipeline::write_kdump(vm, &mut filter, header, sink, &opts)?;
    report_stats(&stats);
    Ok(stats)
}

/// The mem_map reader for page classes. Without it only zero pages can be excluded: that
/// is said (as a warning when the dump level asked for more) and the dump goes on.
pub fn page_classes(vm: &Vmcore, level: DumpLevel) -> Result<Option<Box<dyn PageClasses>>> {
    let say = |why: &str| {
        if level.needs_mem_map() {
            warn!("{why}; cache, user and free pages are kept (dump level {level})");
        } else {
            debug!("{why}; hwpoison and offline pages cannot be excluded");
        }
    };
    if vm.elf.machine != EM_X86_64 {
        say("reading page classes is only implemented for x86_64");
        return Ok(None);
    }
    let layout = match PageLayout::from_vmcoreinfo(&vm.info) {
        Ok(l) => l,
        Err(missing) => {
            say(&format!("VMCOREINFO lacks {}", missing.0.join(", ")));
            return Ok(None);
        }
    };
    let Some(arch) = X86_64::from_vmcoreinfo(&vm.info) else {
        say("VMCOREINFO lacks SYMBOL(init_top_pgt) or NUMBER(phys_base) for address translation");
        return Ok(None);
    };
    let mut km = KernelMemory::new(Box::new(vm.memory.duplicate()?), arch);
    let memmap = match MemMap::discover(&mut km, &vm.info, vm.page_size as u64, vm.max_mapnr()) {
        Ok(m) => m,
        Err(why) => {
            say(&format!("the kernel's mem_map is unusable: {why}"));
            return Ok(None);
        }
    };
    if memmap.unusable > 0 {
        warn!(
            "{} memory sections have no readable mem_map; their pages are kept",
            memmap.unusable
        );
    }
    debug!(
        "mem_map: {} sections with struct pages, first pfn {:#x}, last pfn {:#x}",
        memmap.sections.len(),
        memmap.sections.first().map_or(0, |s| s.start),
        memmap.sections.last().map_or(0, |s| s.end)
    );
    let (classifier, notes) = Classifier::new(km, layout, memmap, level);
    for n in notes {
        warn!("{n}");
    }
    Ok(Some(Box::new(classifier)))
}

/// makedumpfile's `--show-stats` report (message level bit 16).
fn report_stats(s: &pipeline::Stats) {
    let e = &s.excluded;
    let excluded = s.zero + e.total();
    let remaining = s.pages_in_input.saturating_sub(excluded);
    stats!("\nOriginal pages  : {:#018x}", s.pages_in_input);
    stats!("  Excluded pages   : {excluded:#018x}");
    stats!("    Pages filled with zero  : {:#018x}", s.zero);
    stats!("    Non-private cache pages : {:#018x}", e.cache);
    stats!("    Private cache pages     : {:#018x}", e.cache_private);
    stats!("    User process data pages : {:#018x}", e.user);
    stats!("    Free pages              : {:#018x}", e.free);
    stats!("    Hwpoison pages          : {:#018x}", e.hwpoison);
    stats!("    Offline pages           : {:#018x}", e.offline);
    stats!("  Remaining pages  : {remaining:#018x}");
    if let Some(pct) = (remaining * 100).checked_div(s.pages_in_input) {
        stats!("  (The number of pages is reduced to {pct}%.)");
    }
    stats!(
        "Memory Hole     : {:#018x}",
        s.max_mapnr.saturating_sub(s.pages_in_input)
    );
    stats!("--------------------------------------------------");
    stats!("Total pages     : {:#018x}", s.max_mapnr);
    stats!("Write bytes     : {}\n", s.file_size);
}
