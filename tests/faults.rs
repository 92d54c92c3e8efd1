//! Faults during a dump: pages that cannot be read, a size limit, a full disk, a stop
//! signal, a closed pipe. Each run that stops early or loses pages must end with exit
//! status 1 and a clear message, and a seekable dump must stay readable: every page it
//! has is right, every page it lacks is marked lost (descriptor offset 0), and the header
//! says incomplete.
//!
//! Read errors and slowness are injected by tests/faults/preload.c (LD_PRELOAD into this
//! dynamically linked build, which reads with pread under --non-mmap). Panics and
//! internal errors in each thread role are injected by vmsift's own test-only hook
//! (`VMSIFT_FAULT`, src/fault.rs), which only debug builds have.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vmsift::format::kdump::STATUS_INCOMPLETE;
use vmsift::input::elf::ElfCore;
use vmsift::input::kdump::{KdumpFile, Page};
use vmsift::synth::{MINIMAL_VMCOREINFO, SynthVmcore, mixed_pages};

mod common;

const PS: usize = 4096;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn preload() -> &'static Path {
    common::preload("faults")
}

/// `n` pages at physical address 0 (a quarter of them zero) and the ELF's bytes.
fn vmcore(dir: &Path, n: usize) -> (PathBuf, Vec<u8>, u64) {
    let pages = mixed_pages(7, n, PS);
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, pages.clone(), 0);
    let bytes = s.to_bytes();
    let elf = ElfCore::parse(&bytes[..]).expect("synthetic ELF");
    let data_at = elf.loads[0].file_offset;
    let path = dir.join("vmcore");
    fs::write(&path, &bytes).expect("write vmcore");
    (path, pages, data_at)
}

fn vmsift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmsift"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads the dump back: every page is either identical to the vmcore's or lost. Returns
/// the lost pfns and whether the header says incomplete.
fn read_back(dump: &Path, pages: &[u8]) -> (Vec<u64>, bool) {
    let f = fs::File::open(dump).expect("open dump");
    let d = KdumpFile::open(f).expect("the dump opens");
    let mut lost = Vec::new();
    for pfn in 0..(pages.len() / PS) as u64 {
        let want = &pages[pfn as usize * PS..][..PS];
        match d.read_page(pfn).expect("read page") {
            Page::Data(got) => assert!(got == want, "pfn {pfn} differs"),
            Page::Lost => lost.push(pfn),
            Page::Excluded if want.iter().all(|&b| b == 0) => {}
            other => panic!("pfn {pfn}: {other:?}"),
        }
    }
    (lost, d.header.status & STATUS_INCOMPLETE != 0)
}

/// The number in "... N of its M pages are missing".
fn reported_lost(err: &str) -> u64 {
    let at = err.find(" of its ").expect("the incomplete-dump message");
    let head = &err[..at];
    let digits = head.rsplit(' ').next().unwrap_or("");
    digits.parse().expect("a page count")
}

#[test]
fn unreadable_pages_are_marked_lost_and_the_rest_is_written() {
    let dir = scratch("eio");
    let (vmcore, pages, data_at) = vmcore(&dir, 64);
    // Pages 10, 11 and 12 sit on a bad stretch of the input.
    let bad = format!("{}:{}", data_at + 10 * PS as u64, data_at + 13 * PS as u64);
    // `-l -d 0 HOW [--num-threads THREADS]` into `dump`, with the variable FAULT (if any)
    // set, and pages 10 to 12 unreadable when `eio`.
    let run = |dump: &Path, how: &str, threads: Option<&str>, fault: &str, eio: bool| {
        let mut cmd = vmsift();
        cmd.args(["-l", "-d", "0", how]);
        if let Some(n) = threads {
            cmd.args(["--num-threads", n]);
        }
        cmd.arg(&vmcore).arg(dump).env("LD_PRELOAD", preload());
        if !fault.is_empty() {
            cmd.env(fault, "1");
        }
        if eio {
            cmd.env("FAULT_EIO", &bad);
        }
        cmd.output().expect("run")
    };
    // Read with pread (--non-mmap), and mapped: a run's MADV_POPULATE_READ fails there,
    // before any byte of the mapping is touched, and the run is read again page by page;
    // and where the kernel has no MADV_POPULATE_READ (EINVAL before 5.14), runs are preads.
    for (threads, how, populate) in [
        ("1", "--non-mmap", ""),
        ("2", "--non-mmap", ""),
        ("1", "-f", ""),
        ("2", "-f", ""),
        ("1", "-f", "FAULT_NO_POPULATE"),
    ] {
        let dump = dir.join(format!("dump-{threads}{how}{populate}"));
        let out = run(&dump, how, Some(threads), populate, true);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("3 pages could not be read"), "{err}");
        assert!(err.contains("Input/output error"), "{err}");
        let (lost, incomplete) = read_back(&dump, &pages);
        assert_eq!(lost, vec![10, 11, 12], "threads {threads} {how} {populate}");
        assert!(incomplete);
    }
    // The same input without the fault is a complete dump, read either way: the check
    // above can tell.
    for (how, populate) in [("--non-mmap", ""), ("-f", ""), ("-f", "FAULT_NO_POPULATE")] {
        let dump = dir.join(format!("clean{how}{populate}"));
        let out = run(&dump, how, None, populate, false);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            read_back(&dump, &pages),
            (vec![], false),
            "{how} {populate}"
        );
    }
}

#[test]
fn size_limit_leaves_an_incomplete_dump_and_levels_fall_back() {
    let dir = scratch("limit");
    let (vmcore, pages, _) = vmcore(&dir, 256);
    let size = |level: &str| {
        let dump = dir.join(format!("full-{level}"));
        let out = vmsift()
            .args(["-d", level])
            .arg(&vmcore)
            .arg(&dump)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
        fs::metadata(&dump).expect("dump").len()
    };
    // Uncompressed: level 0 stores the 64 zero pages, level 1 shares one.
    let (at0, at1) = (size("0"), size("1"));
    assert!(at1 + 60 * PS as u64 <= at0, "{at0} vs {at1}");
    let limit = (at0 + at1) / 2;

    let dump = dir.join("limited");
    let out = vmsift()
        .args(["-d", "0", "-L", &limit.to_string()])
        .arg(&vmcore)
        .arg(&dump)
        .output()
        .expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("size limit"), "{err}");
    assert!(fs::metadata(&dump).expect("kept").len() <= limit);
    let (lost, incomplete) = read_back(&dump, &pages);
    assert!(incomplete);
    assert!(!lost.is_empty() && lost.len() < 256, "{} lost", lost.len());
    assert_eq!(lost.len() as u64, reported_lost(&err), "{err}");
    // Lost pages are the tail: everything before the limit was written.
    let first = lost[0];
    assert_eq!(lost, (first..256).collect::<Vec<_>>());

    // With a fallback level that fits, the dump is complete at that level.
    let dump = dir.join("fallback");
    let out = vmsift()
        .args(["-d", "0,1", "-L", &limit.to_string()])
        .arg(&vmcore)
        .arg(&dump)
        .output()
        .expect("run");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("trying dump level 1")
            || err.contains("trying dump level 1"),
        "{err}"
    );
    assert_eq!(fs::metadata(&dump).expect("dump").len(), at1);
    assert_eq!(read_back(&dump, &pages), (vec![], false));
}

/// vmsift dumping `vmcore` to `dump` at -d 0 with `threads` threads, every write that
/// reaches past 2 MiB failing (with EIO unless FAULT_WRITE_ERRNO says otherwise): the
/// header, bitmaps, descriptors and the first batches of pages make it, the rest does not.
fn writes_fail_past_2_mib(vmcore: &Path, dump: &Path, threads: &str) -> Command {
    let mut c = vmsift();
    c.args(["-d", "0", "--num-threads", threads])
        .arg(vmcore)
        .arg(dump)
        .env("LD_PRELOAD", preload())
        .env("FAULT_WRITE_EIO", "2097152");
    c
}

#[test]
fn a_write_error_leaves_a_readable_incomplete_dump() {
    let dir = scratch("write-eio");
    let (vmcore, pages, _) = vmcore(&dir, 1024);
    for threads in ["1", "2"] {
        let dump = dir.join(format!("dump-{threads}"));
        let out = writes_fail_past_2_mib(&vmcore, &dump, threads)
            .output()
            .expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("Input/output error"), "{err}");
        let (lost, incomplete) = read_back(&dump, &pages);
        assert!(incomplete);
        assert!(!lost.is_empty() && lost.len() < 1024, "{} lost", lost.len());
        assert_eq!(lost.len() as u64, reported_lost(&err), "{err}");
    }
}

#[test]
fn an_unreachable_output_ends_the_run_without_more_writes() {
    let dir = scratch("write-etimedout");
    let (vmcore, _, _) = vmcore(&dir, 1024);
    for threads in ["1", "2"] {
        let dump = dir.join(format!("dump-{threads}"));
        let count = dir.join(format!("failed-writes-{threads}"));
        // As a soft NFS mount with softerr whose server went away: each write past 2 MiB
        // times out. Every further write would wait for that timeout again.
        let out = writes_fail_past_2_mib(&vmcore, &dump, threads)
            .env("FAULT_WRITE_ERRNO", "110")
            .env("FAULT_WRITE_COUNT", &count)
            .output()
            .expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("Connection timed out"), "{err}");
        assert!(err.contains("the output is unreachable"), "{err}");
        let failed = std::fs::read(&count).expect("count").len();
        // The failing write of each thread that had one in flight, and nothing after.
        assert!(
            failed <= threads.parse().expect("n"),
            "{failed} failed writes: {err}"
        );
    }
}

/// The run is stopped once it has written its first batch: the debug build's fault hook
/// prints a mark when the writer starts on the second one (no sleeping on a guess).
#[test]
#[cfg(debug_assertions)]
fn a_stop_signal_leaves_a_readable_incomplete_dump() {
    use std::io::{BufRead, BufReader, Read};
    let dir = scratch("signal");
    let (vmcore, pages, _) = vmcore(&dir, 4096);
    for sig in ["TERM", "INT"] {
        let dump = dir.join(format!("dump-{sig}"));
        // 40 ms per read: a few reads of the headers, then one per batch of 128 pages
        // (32 of them): after the mark, 1.2 s of reads are left to be stopped in.
        let mut child = vmsift()
            .args(["-c", "-d", "1", "--non-mmap", "--num-threads", "1"])
            .arg(&vmcore)
            .arg(&dump)
            .env("LD_PRELOAD", preload())
            .env("FAULT_SLOW_US", "40000")
            .env("VMSIFT_FAULT", "write:mark:2")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut err = String::new();
        while !err.contains("vmsift: fault mark: write 2") {
            if stderr.read_line(&mut err).expect("read stderr") == 0 {
                break;
            }
        }
        assert!(err.contains("fault mark"), "no mark before the end: {err}");
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        stderr.read_to_string(&mut err).expect("read stderr");
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("stopped by SIG{sig}")), "{err}");
        let (lost, incomplete) = read_back(&dump, &pages);
        assert!(incomplete);
        assert!(!lost.is_empty() && lost.len() < 4096, "{} lost", lost.len());
        assert_eq!(lost.len() as u64, reported_lost(&err), "{err}");
    }
}

#[test]
fn a_closed_pipe_ends_a_flattened_dump_with_a_clear_message() {
    let dir = scratch("pipe");
    let (vmcore, _, _) = vmcore(&dir, 256);
    let mut child = vmsift()
        .args(["-F", "-d", "0"])
        .arg(&vmcore)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The reader goes away after the first bytes (ssh died, the disk on the other end
    // filled up): 1 MiB of dump cannot fit in a pipe.
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().expect("stdout"), &mut first)
        .expect("some output");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write the flattened dump to stdout"),
        "{err}"
    );
    assert!(err.contains("Broken pipe"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );
}

/// A real full filesystem: a 4 MiB tmpfs (needs root to mount; run by tests/run-all).
#[test]
#[ignore = "mounts a tmpfs: needs root"]
fn a_full_disk_leaves_a_readable_incomplete_dump_and_levels_fall_back() {
    let dir = scratch("enospc");
    // 4 MiB of pages, a quarter of them zero: level 0 cannot fit, level 1 can.
    let (vmcore, pages, _) = vmcore(&dir, 1024);
    let mnt = dir.join("small");
    fs::create_dir_all(&mnt).expect("mount point");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(st.success(), "mounting a tmpfs needs root");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());

    let dump = mnt.join("dump");
    let out = vmsift()
        .args(["-d", "0"])
        .arg(&vmcore)
        .arg(&dump)
        .output()
        .expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let (lost, incomplete) = read_back(&dump, &pages);
    assert!(incomplete);
    assert!(!lost.is_empty() && lost.len() < 1024, "{} lost", lost.len());
    assert_eq!(lost.len() as u64, reported_lost(&err), "{err}");
    fs::remove_file(&dump).expect("rm");

    let out = vmsift()
        .args(["-d", "0,1"])
        .arg(&vmcore)
        .arg(&dump)
        .output()
        .expect("run");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("trying dump level 1")
            || err.contains("trying dump level 1"),
        "{err}"
    );
    assert_eq!(read_back(&dump, &pages), (vec![], false));
}

#[test]
fn atomic_output_is_renamed_only_when_complete() {
    let dir = scratch("atomic");
    let (vmcore, pages, _) = vmcore(&dir, 128);
    let dump = dir.join("dump");
    let staged = dir.join("dump.incomplete");
    let run = |extra: &[&str]| {
        vmsift()
            .args(["-l", "-d", "1", "--atomic"])
            .args(extra)
            .arg(&vmcore)
            .arg(&dump)
            .output()
            .expect("run")
    };
    // Stopped by -L: the readable incomplete dump keeps the .incomplete name.
    let out = run(&["-L", "60000"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!dump.exists());
    let (lost, incomplete) = read_back(&staged, &pages);
    assert!(incomplete && !lost.is_empty());
    // That leftover is someone's evidence: not overwritten without -f.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    // Complete: only the final name remains.
    let out = run(&["-f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!staged.exists());
    assert_eq!(read_back(&dump, &pages), (vec![], false));
    // An existing dump is not replaced without -f.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(!staged.exists());
}

/// Failures injected into each thread role with the debug build's `VMSIFT_FAULT` hook.
#[cfg(debug_assertions)]
mod injected {
    use super::*;
    use std::time::{Duration, Instant};

    /// Runs `cmd` with its stdout going to `stdout` and its stderr to a file, and fails the
    /// test if it is still running after 10 s (killing it, so that a hang fails instead of
    /// hanging the test). Returns the exit code and stderr.
    fn within_10_s(mut cmd: Command, stdout: &Path) -> (Option<i32>, String) {
        let err_path = stdout.with_extension("stderr");
        let mut child = cmd
            .stdout(fs::File::create(stdout).expect("stdout file"))
            .stderr(fs::File::create(&err_path).expect("stderr file"))
            .spawn()
            .expect("spawn");
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "still running after 10 s: {}",
                    fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let err = fs::read_to_string(&err_path).expect("stderr");
        (status.code(), err)
    }

    /// tests/readers/pages-identical: libkdumpfile reads every page of `dump` identical to
    /// `vmcore`'s except exactly `lost` pages, and the header says incomplete.
    fn libkdumpfile_reads(vmcore: &Path, dump: &Path, lost: usize) {
        let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/pages-identical");
        let o = Command::new(check)
            .args(["--lost", &lost.to_string()])
            .arg(vmcore)
            .arg(dump)
            .output()
            .expect("run pages-identical");
        assert!(
            o.status.success(),
            "libkdumpfile: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The one error line of a run that failed with an injected fault: it names the fault,
    /// and no other line speaks of a panic (Rust's own panic message is not printed).
    fn one_error_line(err: &str, fault: &str, action: &str) {
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("vmsift: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{err}");
        let line = errors[0];
        assert!(line.contains("internal error"), "{err}");
        assert!(line.contains(&format!("injected fault: {fault}")), "{err}");
        if action == "panic" {
            assert!(line.contains("panicked at src/"), "{err}");
        }
        assert_eq!(
            err.lines().filter(|l| l.contains("panicked")).count(),
            usize::from(action == "panic"),
            "{err}"
        );
    }

    /// Each failing call, in each role, with one and two threads, to a file and as a
    /// flattened stream: the run ends within 10 s with exit status 1 and one error line naming
    /// the failure; the file is a readable incomplete dump (vmsift's reader and libkdumpfile
    /// read every page it has and find the rest lost, as many as the message says).
    fn injected(role: &str, nth: u32, pages_written: bool) {
        let dir = scratch(&format!("inject-{role}"));
        let (vmcore, pages, _) = vmcore(&dir, 1024);
        for action in ["panic", "error"] {
            for threads in ["1", "2"] {
                let fault = format!("{role}:{action}:{nth}");
                let run = |flat: bool, out: &Path| {
                    let mut c = vmsift();
                    c.args(["-l", "-d", "0", "--num-threads", threads])
                        .env("VMSIFT_FAULT", &fault);
                    if flat {
                        c.args(["-F"]).arg(&vmcore);
                    } else {
                        c.arg(&vmcore).arg(out);
                    }
                    c
                };
                let what = format!("{fault} with {threads} threads");
                let dump = dir.join(format!("dump-{action}-{threads}"));
                let stdout = dir.join(format!("out-{action}-{threads}"));
                let (code, err) = within_10_s(run(false, &dump), &stdout);
                assert_eq!(code, Some(1), "{what}: {err}");
                one_error_line(&err, &format!("{role} #{nth}"), action);
                if pages_written {
                    let (lost, incomplete) = read_back(&dump, &pages);
                    assert!(incomplete, "{what}");
                    assert!(!lost.is_empty(), "{what}");
                    if threads == "1" {
                        assert!(lost.len() < 1024, "{what}: {} lost", lost.len());
                    }
                    assert_eq!(lost.len() as u64, reported_lost(&err), "{what}: {err}");
                    libkdumpfile_reads(&vmcore, &dump, lost.len());
                } else {
                    // Failed before the first page: the file held nothing worth keeping.
                    assert!(!dump.exists(), "{what}: {err}");
                }

                let flat = dir.join(format!("flat-{action}-{threads}"));
                let (code, err) = within_10_s(run(true, &flat), &flat);
                assert_eq!(code, Some(1), "{what}, -F: {err}");
                one_error_line(&err, &format!("{role} #{nth}"), action);
            }
        }
    }

    #[test]
    fn a_failing_compression_worker_ends_the_run() {
        injected("compress", 300, true);
    }

    #[test]
    fn a_failing_page_read_ends_the_run() {
        // Default (mmap) reads of a regular file: one read per run of pages, here a batch.
        injected("read", 3, true);
    }

    /// Page data written by the writer (one thread, and streams) or by the workers.
    #[test]
    fn a_failing_page_data_write_ends_the_run() {
        injected("write", 3, true);
    }

    /// In the middle of a batch's descriptors: the ones already handed to the output are
    /// made "lost" too.
    #[test]
    fn a_failing_descriptor_write_ends_the_run() {
        injected("describe", 300, true);
    }

    /// The planner's first pass over the page filter: nothing is written yet, so no file is
    /// left (as for a bad input).
    #[test]
    fn a_failing_page_filter_ends_the_run() {
        injected("scan", 1, false);
    }

    /// `--split`: each file has its own writer thread (one worker each); the one that
    /// fails is kept as an incomplete dump and named in the one error line.
    #[test]
    fn a_failing_split_writer_ends_the_run() {
        let dir = scratch("inject-split");
        let (vmcore, _, _) = vmcore(&dir, 1024);
        let parts: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("part{i}"))).collect();
        for action in ["panic", "error"] {
            let mut c = vmsift();
            c.args(["-l", "-d", "0", "-f", "--split"])
                .arg(&vmcore)
                .args(&parts)
                .env("VMSIFT_FAULT", format!("compress:{action}:300"));
            let (code, err) = within_10_s(c, &dir.join(format!("out-{action}")));
            assert_eq!(code, Some(1), "{err}");
            one_error_line(&err, "compress #300", action);
            let incomplete: Vec<&PathBuf> = parts
                .iter()
                .filter(|p| {
                    let d = KdumpFile::open(fs::File::open(p).expect("part")).expect("opens");
                    d.header.status & STATUS_INCOMPLETE != 0
                })
                .collect();
            assert_eq!(incomplete.len(), 1, "{err}");
            assert!(
                err.contains(&format!("writing {}", incomplete[0].display())),
                "{err}"
            );
        }
    }

    /// `-E` (one thread): the ELF file is kept, its header flagged incomplete.
    #[test]
    fn a_failing_read_ends_an_elf_dump() {
        let dir = scratch("inject-elf");
        let (vmcore, _, _) = vmcore(&dir, 1024);
        for action in ["panic", "error"] {
            let dump = dir.join(format!("dump-{action}"));
            let mut c = vmsift();
            c.args(["-E", "-d", "0"])
                .arg(&vmcore)
                .arg(&dump)
                .env("VMSIFT_FAULT", format!("read:{action}:300"));
            let (code, err) = within_10_s(c, &dir.join(format!("out-{action}")));
            assert_eq!(code, Some(1), "{err}");
            one_error_line(&err, "read #300", action);
            let bytes = fs::read(&dump).expect("the ELF dump is kept");
            let flags = u32::from_le_bytes(bytes[0x30..0x34].try_into().expect("e_flags"));
            assert_eq!(flags, vmsift::format::elf::FLAG_INCOMPLETE, "{err}");
        }
    }

    /// Cycles of 65536 pfns (`--cyclic-buffer 1`, the smallest): 256 pages at pfn 0 and 256 at
    /// pfn 131072,
    /// so the second stretch is in the third cycle. A failure in the first cycle leaves
    /// the bitmaps of the cycles not reached to the salvage, which writes them (pass 1
    /// kept them): their pages read as lost, as many as the message says, not as absent.
    #[test]
    fn a_failure_before_the_last_cycle_marks_the_later_cycles_lost() {
        let dir = scratch("inject-cycles");
        let low = mixed_pages(3, 256, PS);
        let high = mixed_pages(5, 256, PS);
        let s = SynthVmcore::new()
            .prstatus(1)
            .vmcoreinfo(MINIMAL_VMCOREINFO)
            .load(0, low.clone(), 0)
            .load(131_072 * PS as u64, high, 0);
        let vmcore = dir.join("vmcore");
        fs::write(&vmcore, s.to_bytes()).expect("write vmcore");
        for (fault, threads) in [("compress:panic:200", "1"), ("scan:error:5", "2")] {
            let dump = dir.join(format!("dump-{threads}"));
            let mut c = vmsift();
            c.args([
                "-l",
                "-d",
                "0",
                "--cyclic-buffer",
                "1",
                "--num-threads",
                threads,
            ])
            .arg(&vmcore)
            .arg(&dump)
            .env("VMSIFT_FAULT", fault);
            let (code, err) = within_10_s(c, &dir.join(format!("out-{threads}")));
            assert_eq!(code, Some(1), "{fault}: {err}");
            // The third cycle's 256 pages at least; with one thread the first batch (128
            // pages) was written before the 200th page failed.
            let reported = reported_lost(&err);
            let most = if threads == "1" { 384 } else { 512 };
            assert!((256..=most).contains(&reported), "{fault}: {err}");
            libkdumpfile_reads(&vmcore, &dump, reported as usize);
        }
    }
}
