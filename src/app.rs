//! Runs a `Job`: the glue between the command line and the layers that do the work
//! (`input`, `filter`, `pipeline`, `target`), and the one place that turns an error into a
//! message and an exit status (0 success, 1 any failure).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use crate::arch::{Arch, KernelMemory};
use crate::budget::{self, Budget};
use crate::cli::{self, Job, Mode};
use crate::codec::Codec;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::filter::{DumpLevel, Filter, filter_for};
use crate::format::flat;
use crate::input::{PhysPages, Source, Vmcore};
use crate::kernel::{dmesg, iomem, uts};
use crate::pipeline::{self, FileTarget, WriteOptions};
use crate::report;
use crate::target::ssh::{Remote, Upload};
use crate::target::{self, FileSink, Sink, StreamSink};
use crate::{common, debug, warn};

/// vmsift's version, as `--version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Entry point of the binary: parses `args`, runs the job, returns the exit status.
pub fn main<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // Every panic becomes the run's one error line (exit status 1), never Rust's
    // multi-line message and status 101: see `error::catch`.
    crate::error::quiet_panics();
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let job = match crate::error::catch("the command line parser", || {
        cli::parse(args.iter().cloned())
    }) {
        Ok(job) => job,
        Err(e) => {
            // Before the message level is known: always said.
            report::always(format_args!("vmsift: {e}"));
            return 1;
        }
    };
    report::set_level(job.message_level);
    // The no-progress watchdog: this process may only supervise a child doing the work.
    if let Some(limit) = crate::watchdog::limit(&job)
        && let crate::watchdog::Role::Supervised(code) = crate::watchdog::start(limit, &args)
    {
        return code;
    }
    let code = match crate::error::catch("the main thread", || run(&job)) {
        Ok(()) => 0,
        Err(e) => {
            if crate::watchdog::fired() {
                // The watchdog says why and ends the process.
                return crate::watchdog::exit_status(1);
            }
            report::emit(report::ML_ERROR, format_args!("vmsift: error: {e}"));
            1
        }
    };
    crate::watchdog::exit_status(code)
}

/// Runs the job (see `Mode`).
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
        Mode::Rearrange { dumpfile } => rearrange(dumpfile, job),
        Mode::Split { vmcore, dumpfiles } => split(job, vmcore, dumpfiles),
        Mode::MemUsage { kcore } => mem_usage(job, kcore),
        Mode::Reassemble { parts, dumpfile } => reassemble(parts, dumpfile, job.force),
        Mode::DumpDmesg { vmcore, logfile } => dump_dmesg(job, vmcore, logfile.as_deref()),
        Mode::Dump { vmcore, dumpfile } => dump(job, vmcore, dumpfile.as_deref()),
    }
}

/// `-R`: flattened stream on stdin → seekable file (with `--dry-run`, the stream is read
/// and checked, nothing is written).
fn rearrange(dumpfile: &Path, job: &Job) -> Result<()> {
    // An existing file is refused before stdin is read, but the file is created only with
    // the first record: a stream that carries no dump (empty, not flattened) leaves none.
    if !job.force && !job.dry_run && dumpfile.symlink_metadata().is_ok() {
        return Err(Error::new(
            ErrorKind::Exists,
            format!(
                "{} already exists (use -f to overwrite it)",
                dumpfile.display()
            ),
        ));
    }
    let open = || -> Result<Box<dyn Sink>> {
        if job.dry_run {
            return Ok(Box::new(target::NullSink));
        }
        let file = target::create_output(dumpfile, job.force)?;
        Ok(Box::new(FileSink::new(file, dumpfile)))
    };
    let mut sink: Option<Box<dyn Sink>> = None;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let n = flat::replay(&mut input, |at, data| {
        let out = match &mut sink {
            Some(out) => out,
            None => sink.insert(open()?),
        };
        out.write_at(at, data)
    })
    .with_context(|| format!("rebuilding {} from stdin", dumpfile.display()))?;
    match &mut sink {
        Some(out) => out.finish()?,
        None => open()?.finish()?,
    }
    if job.dry_run {
        common!("The flattened stream holds {n} bytes of data (dry run: nothing written).");
        common!("\nvmsift Completed (dry run: nothing written).");
        return Ok(());
    }
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
    // An ELF vmcore, a kdump-compressed dump or a flattened one.
    let vm = Vmcore::open(input, job.use_mmap)?;
    let pages: Box<dyn PhysPages> = Box::new(vm.memory.duplicate()?);
    let info = vm.info;
    for (key, value) in info.lines() {
        debug!("  {key}={value}");
    }
    let arch = Arch::new(vm.elf.machine, vm.elf.endian, &info, vm.page_size as u64)
        .map_err(|why| Error::unsupported(format!("{shown}: {why}")))?;
    let mut km = KernelMemory::new(pages, arch, vm.elf.endian);
    let log = dmesg::read_log(&mut km, &info, job.partial_dmesg)
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

/// A dump of `vmcore_path` into `dumpfile` (a file, `ssh://...`, or stdout when `None`).
fn dump(job: &Job, vmcore_path: &Path, dumpfile: Option<&Path>) -> Result<()> {
    // Check the input, then claim the output, before any other work or message: bad input
    // leaves no file, and an existing file is refused before anything else is said.
    let mut vm = Vmcore::open(vmcore_path, job.use_mmap)?;
    crate::signals::install()?;
    let levels: &[DumpLevel] = if job.levels.is_empty() {
        &[DumpLevel(0)]
    } else {
        &job.levels
    };
    if job.dry_run {
        let done = write_dump(job, levels[0], &mut vm, &mut target::NullSink)?;
        debug!(
            "dry run: {} bytes would have been written",
            done.stats.file_size
        );
        common!("\nvmsift Completed (dry run: nothing written).");
        return Ok(());
    }
    let Some(path) = dumpfile else {
        // A stream cannot be taken back, so there is no second level to fall back to.
        let mut sink = StreamSink::new(std::io::stdout().lock(), "stdout");
        let done = write_dump(job, levels[0], &mut vm, &mut sink)?;
        return finish(done, None);
    };
    if let Some(remote) = Remote::parse(path)? {
        return dump_ssh(job, levels[0], &mut vm, remote);
    }
    let to = FileTarget {
        path,
        atomic: job.atomic,
        force: job.force,
        size_limit: job.size_limit,
    };
    let (done, at) = pipeline::write_with_fallback(&to, levels, |level, sink| {
        write_dump(job, level, &mut vm, sink)
    })?;
    finish(done, Some(&at))
}

/// A dump streamed to `ssh://...`; the remote file gets its final name only when the
/// stream is complete.
fn dump_ssh(job: &Job, level: DumpLevel, vm: &mut Vmcore, remote: Remote) -> Result<()> {
    let shown = remote.display();
    let (upload, out) = Upload::start(remote, job.ssh_key.as_deref(), &job.ssh_options, job.force)?;
    let mut sink = StreamSink::new(out, shown.clone());
    let result = write_dump(job, level, vm, &mut sink);
    drop(sink); // end of stream: the remote side finishes
    let complete = matches!(&result, Ok(d) if d.failure.is_none());
    let remote_result = upload.finish(complete);
    match (result, remote_result) {
        (Ok(done), Ok(name)) => {
            let name = format!("{shown} ({name} on the remote host)");
            finish(done, Some(Path::new(&name)))
        }
        // The stream broke because ssh ended: say both.
        (Err(e), Err(r)) => Err(Error::new(e.kind(), format!("{e}; {r}"))),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
    }
}

/// The closing messages; an incomplete dump is a failure (exit status 1), but its file is
/// kept: every page it has can be read.
fn finish(done: pipeline::Dumped, path: Option<&Path>) -> Result<()> {
    let s = &done.stats;
    debug!(
        "pages: {} in the input, {} dumped ({} zero, {} compressed, {} raw, {} lost)",
        s.pages_in_input, s.dumpable, s.zero, s.compressed, s.raw, s.lost
    );
    match (done.failure, path) {
        (None, Some(path)) => {
            common!("The dumpfile is saved to {}.", path.display());
            common!("\nvmsift Completed.");
            Ok(())
        }
        (None, None) => {
            common!("\nvmsift Completed.");
            Ok(())
        }
        (Some(e), Some(path)) => {
            common!(
                "The dumpfile {} is incomplete: {} of its {} pages are missing (marked lost, the header says incomplete).",
                path.display(),
                s.lost,
                s.dumpable
            );
            Err(e.context(format!("writing {}", path.display())))
        }
        (Some(e), None) => Err(e),
    }
}

/// A whole dump at `level` into `sink`.
fn write_dump(
    job: &Job,
    level: DumpLevel,
    vm: &mut Vmcore,
    sink: &mut dyn Sink,
) -> Result<pipeline::Dumped> {
    write_part(job, level, vm, sink, None, None)
}

/// A dump, or with `range` one file of a split set; `threads` caps the thread count.
fn write_part(
    job: &Job,
    level: DumpLevel,
    vm: &mut Vmcore,
    sink: &mut dyn Sink,
    range: Option<(u64, u64)>,
    threads: Option<usize>,
) -> Result<pipeline::Dumped> {
    // Re-filtering: what the input dump left out stays out, and its level is kept.
    let level = match &vm.source {
        Source::Elf => level,
        Source::Dump { level: was, .. } => {
            if job.elf {
                return Err(Error::unsupported(
                    "-E needs an ELF vmcore as input; re-filter into a kdump-compressed file",
                ));
            }
            let merged = DumpLevel(level.0 | (*was & 31) as u8);
            debug!("re-filtering a dump made at level {was}: level {merged}");
            merged
        }
    };
    for (key, value) in vm.info.lines() {
        debug!("  {key}={value}");
    }
    let uts = uts::read(vm);
    if let Some(why) = &uts.fallback {
        warn!("{why}; the header's utsname is built from VMCOREINFO instead");
    }
    let (budget, limit) = memory_budget(job);
    debug!(
        "memory budget: {} KiB cycle bitmap ({} pfns per cycle), up to {} KiB of kept bitmaps",
        budget.cycle_bitmap >> 10,
        budget.pfns_per_cycle(),
        budget.bitmap_cache >> 10
    );
    let requested = threads.unwrap_or_else(|| requested_threads(job));
    // -e tracks the vmemmap in at most the bitmap cache's size (`Filter::exclude_vmemmap`).
    let vmemmap = match job.exclude_vmemmap && !job.elf {
        true => budget.bitmap_cache,
        false => 0,
    };
    let threads = budget::threads_within(requested, &budget, vmemmap, limit);
    if let (true, Some(l)) = (threads < requested, limit) {
        warn!(
            "only {} MiB can be used ({}): {threads} compression thread{} instead of {requested}",
            l.bytes >> 20,
            l.by,
            if threads == 1 { "" } else { "s" }
        );
    }
    let opts = WriteOptions {
        codec: job.codec,
        level,
        pfns_per_cycle: budget.pfns_per_cycle(),
        bitmap_cache: budget.bitmap_cache,
        threads,
        range,
    };
    let mut filter = checked_filter(vm, level)?;
    if job.exclude_vmemmap && !job.elf {
        filter.exclude_vmemmap(vm, budget.bitmap_cache);
        report::diagnostics(filter.take_diagnostics());
    }
    // A panic before the first page (the pipelines catch their own after it) is an
    // error like any other here: the caller removes the file, which holds nothing yet.
    let done = crate::error::catch("the writer thread", || {
        if job.elf {
            pipeline::write_elf(vm, &mut filter, sink, &opts)
        } else {
            let header = pipeline::base_header(vm, uts.name, &opts);
            pipeline::write_kdump(vm, &mut filter, header, sink, &opts)
        }
    })?;
    report::show_stats(&done.stats);
    Ok(done)
}

/// The threads asked for: `--num-threads`, else the CPUs available to the process.
fn requested_threads(job: &Job) -> usize {
    job.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The memory budget of a run and the limit it was sized from.
fn memory_budget(job: &Job) -> (Budget, Option<budget::Limit>) {
    let limit = budget::limit();
    (
        Budget::new(limit.map(|l| l.bytes), job.cyclic_buffer_kib),
        limit,
    )
}

/// The page filter of `vm` at `level`, once what the kernel layer found assembling it is
/// reported.
fn checked_filter(vm: &Vmcore, level: DumpLevel) -> Result<Filter> {
    let mut filter = filter_for(vm, level)?;
    report::diagnostics(filter.take_diagnostics());
    Ok(filter)
}

/// `--split`: the page frames are cut into ranges of about as many dumpable pages each,
/// and every file is written by its own thread (with its own reader and filter). With
/// `--dry-run` every part is written to nowhere.
fn split(job: &Job, vmcore_path: &Path, outs: &[std::path::PathBuf]) -> Result<()> {
    let vm = Vmcore::open(vmcore_path, job.use_mmap)?;
    crate::signals::install()?;
    if job.elf {
        return Err(Error::usage(
            "--split writes kdump-compressed files; -E cannot be used with it",
        ));
    }
    let level = job.levels.first().copied().unwrap_or_default();
    let ranges = {
        let mut filter = checked_filter(&vm, level)?;
        let (budget, _) = memory_budget(job);
        pipeline::split_points(
            &mut filter,
            vm.max_mapnr(),
            budget.pfns_per_cycle(),
            outs.len(),
        )
    };
    let mut files = Vec::new();
    for path in outs {
        if job.dry_run {
            files.push(None);
            continue;
        }
        match target::create_output(path, job.force) {
            Ok(f) => files.push(Some(f)),
            Err(e) => {
                for p in &outs[..files.len()] {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        }
    }
    let per_file = (requested_threads(job) / outs.len()).max(1);
    let results: Vec<Result<pipeline::Dumped>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .into_iter()
            .zip(outs)
            .zip(&ranges)
            .map(|((file, path), &range)| {
                scope.spawn(move || {
                    let mut vm = Vmcore::open(vmcore_path, job.use_mmap)?;
                    let mut sink: Box<dyn Sink> = match file {
                        Some(file) => Box::new(FileSink::new(file, path)),
                        None => Box::new(target::NullSink),
                    };
                    write_part(job, level, &mut vm, &mut *sink, Some(range), Some(per_file))
                        .map_err(|e| e.context(format!("writing {}", path.display())))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|payload| {
                    Err(Error::from_panic("a --split writer thread", &*payload))
                })
            })
            .collect()
    });
    split_finish(job, results, outs, &ranges)
}

/// The closing messages of a split set, one per file; the first failure is the run's.
fn split_finish(
    job: &Job,
    results: Vec<Result<pipeline::Dumped>>,
    outs: &[std::path::PathBuf],
    ranges: &[(u64, u64)],
) -> Result<()> {
    let mut first_error = None;
    for ((result, path), (start, end)) in results.into_iter().zip(outs).zip(ranges) {
        match result {
            Ok(done) => match done.failure {
                None if job.dry_run => common!(
                    "{} would hold pfns {start:#x}-{end:#x}, {} pages.",
                    path.display(),
                    done.stats.dumpable
                ),
                None => common!(
                    "The dumpfile is saved to {} (pfns {start:#x}-{end:#x}, {} pages).",
                    path.display(),
                    done.stats.dumpable
                ),
                Some(e) => {
                    common!(
                        "The dumpfile {} (pfns {start:#x}-{end:#x}) is incomplete: {} of its {} pages are missing (marked lost, the header says incomplete).",
                        path.display(),
                        done.stats.lost,
                        done.stats.dumpable
                    );
                    first_error.get_or_insert(e.context(format!("writing {}", path.display())));
                }
            },
            Err(e) => {
                if !job.dry_run {
                    let _ = std::fs::remove_file(path);
                }
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => {
            common!("\nvmsift Completed.");
            Ok(())
        }
        Some(e) => Err(e),
    }
}

/// `--mem-usage`: run on the live kernel's /proc/kcore (without its crashkernel
/// reservation, which a dump would not contain); a vmcore works too.
fn mem_usage(job: &Job, path: &Path) -> Result<()> {
    let mut exclude = Vec::new();
    if path == Path::new("/proc/kcore") {
        exclude = iomem::crash_kernel_ranges();
        if exclude.is_empty() {
            warn!("no crashkernel reservation in /proc/iomem: counting all memory");
        }
    }
    let (mut vm, repeated) = if is_kcore(path) {
        Vmcore::open_kcore(path, &exclude)?
    } else {
        (Vmcore::open(path, job.use_mmap)?, 0)
    };
    let (budget, _) = memory_budget(job);
    let mut filter = checked_filter(&vm, DumpLevel(31))?;
    let usage = pipeline::mem_usage(&mut vm, &mut filter, budget.pfns_per_cycle(), repeated)?;
    let mut out = std::io::stdout().lock();
    out.write_all(pipeline::usage_report(&usage).as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io(e, "cannot write to stdout"))
}

/// An ELF file whose PT_LOADs say -1 for non-RAM segments, as /proc/kcore does.
fn is_kcore(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "kcore")
}

/// `--reassemble`: a split set back into one file.
fn reassemble(parts: &[std::path::PathBuf], dumpfile: &Path, force: bool) -> Result<()> {
    let file = target::create_output(dumpfile, force)?;
    let mut sink = FileSink::new(file, dumpfile);
    match pipeline::reassemble(parts, &mut sink) {
        Ok(stats) => {
            common!(
                "The dumpfile is saved to {} ({} pages from {} files).",
                dumpfile.display(),
                stats.dumpable,
                parts.len()
            );
            common!("\nvmsift Completed.");
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(dumpfile);
            Err(e.context(format!("reassembling {}", dumpfile.display())))
        }
    }
}
