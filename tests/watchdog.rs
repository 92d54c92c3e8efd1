//! The no-progress watchdog (`--watchdog SECONDS`, src/watchdog.rs): an output that stops
//! taking bytes ends the run with one error line and exit status 1 within the watchdog's
//! time (plus its few seconds of marking), the kdump file marked incomplete with every page
//! it has readable; the process ends even when its worker cannot; a dump that is slow but
//! moving is left alone.
//!
//! Stalls are injected by tests/faults/preload.c (LD_PRELOAD into this dynamically linked
//! build): FAULT_WRITE_HANG (pwrite never returns past an offset), FAULT_WRITE_SLOW_US,
//! FAULT_EXIT_HANG (the supervised worker's exit never ends it).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vmsift::format::kdump::STATUS_INCOMPLETE;
use vmsift::input::kdump::{KdumpFile, Page};
use vmsift::synth::{MINIMAL_VMCOREINFO, SynthVmcore, mixed_pages};

mod common;

const PS: usize = 4096;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("watchdog-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn preload() -> &'static Path {
    common::preload("watchdog")
}

/// `n` pages at physical address 0 (a quarter of them zero); the path and the pages.
fn vmcore(dir: &Path, n: usize) -> (PathBuf, Vec<u8>) {
    let pages = mixed_pages(11, n, PS);
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, pages.clone(), 0);
    let path = dir.join("vmcore");
    fs::write(&path, s.to_bytes()).expect("write vmcore");
    (path, pages)
}

fn vmsift() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vmsift"));
    c.env("LD_PRELOAD", preload())
        .env_remove("VMSIFT_WATCHDOG_FD");
    c
}

/// Runs `cmd` to its end; its output and how long it took.
fn timed(cmd: &mut Command) -> (Output, Duration) {
    let start = Instant::now();
    let out = cmd.output().expect("run vmsift");
    (out, start.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The stderr lines that are errors.
fn error_lines(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.starts_with("vmsift: error:"))
        .collect()
}

/// Reads the dump back: every page is either the vmcore's or lost. Returns how many are
/// lost and whether the header says incomplete.
fn read_back(dump: &Path, pages: &[u8]) -> (usize, bool) {
    let d = KdumpFile::open(fs::File::open(dump).expect("open dump")).expect("the dump opens");
    let mut lost = 0;
    for pfn in 0..(pages.len() / PS) as u64 {
        let want = &pages[pfn as usize * PS..][..PS];
        match d.read_page(pfn).expect("read page") {
            Page::Data(got) => assert!(got == want, "pfn {pfn} differs"),
            Page::Lost => lost += 1,
            Page::Excluded if want.iter().all(|&b| b == 0) => {}
            other => panic!("pfn {pfn}: {other:?}"),
        }
    }
    (lost, d.header.status & STATUS_INCOMPLETE != 0)
}

const WATCHDOG: u64 = 2;

/// Ends within the watchdog's time plus its tick, the marking and a margin for a loaded
/// machine, and not before the watchdog's time.
fn assert_ended_by_watchdog(out: &Output, took: Duration, within: Duration) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        took >= Duration::from_secs(WATCHDOG) && took <= within,
        "took {took:?}: {err}"
    );
    let errors = error_lines(&err);
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with(&format!(
            "vmsift: error: no progress on the output for {WATCHDOG} s (--watchdog {WATCHDOG})"
        )),
        "{err}"
    );
}

#[test]
fn a_write_that_never_returns_ends_the_run_with_the_dump_marked_incomplete() {
    let dir = scratch("hang");
    // 600 pages stored raw: the first MiB of page data is written, the next write hangs.
    let (vmcore, pages) = vmcore(&dir, 600);
    for threads in ["1", "2"] {
        let dump = dir.join(format!("dump-{threads}"));
        let (out, took) = timed(
            vmsift()
                .args(["-d", "0", "--num-threads", threads])
                .args(["--watchdog", &WATCHDOG.to_string()])
                .arg(&vmcore)
                .arg(&dump)
                .env("FAULT_WRITE_HANG", (3 << 19).to_string()),
        );
        assert_ended_by_watchdog(&out, took, Duration::from_secs(WATCHDOG + 8));
        let err = stderr(&out);
        assert!(err.contains("the dump is marked incomplete"), "{err}");
        // Pages whose descriptors or data did not make it are lost (with one thread the
        // descriptors of so small a dump are all still buffered).
        let (lost, incomplete) = read_back(&dump, &pages);
        assert!(incomplete, "threads {threads}");
        assert!(lost > 0, "threads {threads}");
    }
}

#[test]
fn the_run_ends_even_when_its_worker_process_cannot() {
    let dir = scratch("exit-hang");
    let (vmcore, _) = vmcore(&dir, 600);
    let dump = dir.join("dump");
    let (out, took) = timed(
        vmsift()
            .args(["-l", "-d", "0", "--watchdog", &WATCHDOG.to_string()])
            .arg(&vmcore)
            .arg(&dump)
            .env("FAULT_WRITE_HANG", "65536")
            .env("FAULT_EXIT_HANG", "1"),
    );
    // The worker gives up and says so, its exit hangs; the process kdump waits for ends
    // 3 s (its grace) after that.
    assert_ended_by_watchdog(&out, took, Duration::from_secs(WATCHDOG + 12));
    assert!(took >= Duration::from_secs(WATCHDOG + 3), "took {took:?}");
}

#[test]
fn a_stream_nobody_reads_ends_the_run() {
    let dir = scratch("pipe");
    // 2.4 MiB stored raw: more than the pipe and the stream's 1 MiB buffer hold.
    let (vmcore, _) = vmcore(&dir, 600);
    let start = Instant::now();
    let mut child = vmsift()
        .args(["-F", "-d", "0", "--watchdog", &WATCHDOG.to_string()])
        .arg(&vmcore)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmsift");
    // Hold the pipe, read nothing.
    let _reader = child.stdout.take();
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    let out = Output {
        status,
        stdout: Vec::new(),
        stderr: err.into_bytes(),
    };
    assert_ended_by_watchdog(&out, start.elapsed(), Duration::from_secs(WATCHDOG + 8));
}

#[test]
fn a_slow_but_moving_dump_is_not_stopped() {
    let dir = scratch("slow");
    let (vmcore, pages) = vmcore(&dir, 600);
    for threads in ["1", "2"] {
        let dump = dir.join(format!("dump-{threads}"));
        // Every write takes 0.6 s with a 1 s watchdog: the whole dump takes longer than
        // the watchdog's time, but no gap between two writes does.
        let (out, took) = timed(
            vmsift()
                .args(["-d", "0", "--num-threads", threads, "--watchdog", "1"])
                .arg(&vmcore)
                .arg(&dump)
                .env("FAULT_WRITE_SLOW_US", "600000"),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            took > Duration::from_secs(2),
            "took {took:?}: too fast to tell"
        );
        assert_eq!(read_back(&dump, &pages), (0, false));
    }
}

/// A stop signal for the whole process group (Ctrl-C, a cgroup kill) reaches the worker
/// once, not once more through the supervisor (a second signal would end it at once,
/// without an incomplete dump); one sent to the supervisor alone (kdump's timeout) is
/// passed on. Either way the dump stops cleanly: incomplete, readable, exit 1.
#[test]
fn stop_signals_reach_the_worker_once() {
    use std::os::unix::process::CommandExt;
    let dir = scratch("signals");
    let (vmcore, _) = vmcore(&dir, 600);
    for group in [true, false] {
        let dump = dir.join(format!("dump-{group}"));
        let mut child = vmsift()
            .args(["-d", "0", "--num-threads", "1", "--watchdog", "30"])
            .arg(&vmcore)
            .arg(&dump)
            // Slower than the supervisor's second before it passes a signal on: a
            // signal that reached the worker twice would end it without its error line.
            .env("FAULT_WRITE_SLOW_US", "1500000")
            .process_group(0)
            .stderr(Stdio::piped())
            .spawn()
            .expect("run vmsift");
        // Ready when the worker has created the dump file.
        let until = Instant::now() + Duration::from_secs(20);
        while !dump.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(dump.exists(), "the dump file never appeared");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let sig = nix::sys::signal::Signal::SIGTERM;
        if group {
            nix::sys::signal::killpg(pid, sig).expect("killpg");
        } else {
            nix::sys::signal::kill(pid, sig).expect("kill");
        }
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read stderr");
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(1), "group {group}: {err}");
        let errors = error_lines(&err);
        assert_eq!(errors.len(), 1, "group {group}: {err}");
        assert!(
            errors[0].contains("stopped by SIGTERM"),
            "group {group}: {err}"
        );
        let d = KdumpFile::open(fs::File::open(&dump).expect("open")).expect("the dump opens");
        assert!(d.header.status & STATUS_INCOMPLETE != 0, "group {group}");
    }
}

/// The worker killed from outside (the OOM killer): the supervisor says so, exit 1.
#[test]
fn a_killed_worker_is_reported() {
    let dir = scratch("killed");
    let (vmcore, _) = vmcore(&dir, 600);
    let dump = dir.join("dump");
    let mut child = vmsift()
        .args(["-d", "0", "--num-threads", "1", "--watchdog", "30"])
        .arg(&vmcore)
        .arg(&dump)
        .env("FAULT_WRITE_SLOW_US", "300000")
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmsift");
    let until = Instant::now() + Duration::from_secs(20);
    while !dump.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The worker is the supervisor's only child.
    let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
        .expect("the supervisor's children");
    let worker: i32 = children.trim().parse().expect("one worker");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the worker");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert_eq!(child.wait().expect("wait").code(), Some(1), "{err}");
    assert_eq!(
        error_lines(&err),
        ["vmsift: error: the working process was killed by signal 9"],
        "{err}"
    );
}
