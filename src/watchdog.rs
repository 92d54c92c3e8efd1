//! The no-progress watchdog: a capture kernel reboots only when its collector exits, so a
//! dump whose output stops taking bytes (an NFS hard mount whose server is gone, an ssh
//! server whose disk hangs, a pipe nobody reads) must not keep it waiting forever.
//!
//! Progress is a counter (`progress`) that every write the output accepts adds to (the
//! `Sink`s of `target`), and so does the mem_map scan, one tick per chunk of struct pages:
//! the first pass over mem_map writes nothing for a while on machines with terabytes of
//! memory, yet it is progress, and a dump that is slow but moving is never stopped. When
//! the counter stays still for the configured time, the run gives up:
//!
//! 1. New writes are refused (`check`), so nothing races with the marking below.
//! 2. A kdump file being written is marked incomplete (header status bit, and "lost" for
//!    every page descriptor whose data is not known to be written), from a detached thread
//!    given `MARK_DEADLINE`: on a dead hard mount that write blocks too, and the exit must
//!    not wait for it. Streams (`-F`, ssh) cannot be patched: the reader sees them end.
//! 3. One line on stderr (`vmsift: error: no progress on the output for N s ...`).
//! 4. Exit status 1.
//!
//! A thread blocked in an NFS write can keep its process from ending at all. On a hard
//! mount whose server is gone, the capture-target test (tests/targets, nfs-hard) finds
//! the writer in `nfs_write_begin` → `folio_wait_writeback`, an uninterruptible sleep that
//! not even SIGKILL ends; an exiting process also flushes its open NFS files; and a
//! process's exit is reported only once its last thread is gone. So when the watchdog is
//! on, vmsift runs as two processes (`supervise`): the one kdump started runs the same
//! command again as its child, never opens the output itself, and follows the child's
//! heartbeat through a pipe (one byte per tick with progress). When the child has given up
//! and does not end within `GIVEN_UP_GRACE`, or goes silent for the configured time plus
//! `GRACE`, the parent exits with status 1 on its own, killing the child, which may stay
//! behind in the kernel until the server returns or the machine reboots (what kdump does
//! next). Stop signals sent to the parent alone (kdump's own timeout) are passed on.
//!
//! Default: on, `DEFAULT_SECS`, when the input is `/proc/vmcore` (a capture kernel, where
//! no one watches); off otherwise (an interactive user can press Ctrl-C, and a re-filtering
//! run into a slow pipe should not be cut short). `--watchdog SECONDS` sets it, 0 turns it
//! off.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::cli::{Job, Mode};
use crate::error::{Error, ErrorKind, Result};

/// Seconds without progress before giving up, when the input is `/proc/vmcore`. Longer
/// than what a healthy output can go without taking a byte (an NFS server failing over,
/// the kernel's own "server not responding" after 3 minutes of a hard mount being the
/// outer bound: that is for servers worth waiting for, not for a capture kernel), and
/// longer than the ways the targets fail by themselves (ssh's keepalives end a dead
/// connection in about 40 s; a `softerr` NFS mount fails its writes in 20-60 s), so those
/// keep their own, more precise, error messages and salvage.
pub const DEFAULT_SECS: u64 = 120;

/// How long marking the dump incomplete may take before the process exits anyway.
const MARK_DEADLINE: Duration = Duration::from_secs(5);

/// How long the parent waits for a child that said its exit status (or closed the
/// heartbeat pipe) to end, and how much longer than the watchdog's time it waits for a
/// child gone silent.
const GRACE: Duration = Duration::from_secs(10);

/// How long the parent waits for a child that gave up and said so to end: it only
/// has to exit, but a thread stuck in an NFS write can keep it from ever ending.
const GIVEN_UP_GRACE: Duration = Duration::from_secs(3);

/// How often the watchdog looks at the progress counter.
const TICK: Duration = Duration::from_millis(250);

/// In the child: the heartbeat pipe's file descriptor, inherited from the parent.
const CHILD_ENV: &str = "VMSIFT_WATCHDOG_FD";

/// Heartbeat bytes from the child: progress, a stop signal arrived, the watchdog fired
/// (its line is printed), and the exit status about to be returned.
const BEAT: u8 = b'.';
const SIGNALLED: u8 = b'T';
const FIRED_BYTE: u8 = b'F';
const EXIT_OK: u8 = b'0';
const EXIT_FAILED: u8 = b'1';

static PROGRESS: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicBool = AtomicBool::new(false);
static PIPE: OnceLock<File> = OnceLock::new();

/// Something to do to the output when the watchdog fires (mark a kdump file incomplete).
type Marker = Arc<dyn Fn() -> Result<()> + Send + Sync>;
static MARKERS: Mutex<Vec<(u64, Marker)>> = Mutex::new(Vec::new());
static NEXT_MARKER: AtomicU64 = AtomicU64::new(0);

/// The output accepted bytes, or the page filter got further: the run is alive.
pub fn progress() {
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// Whether the watchdog has given up on the run.
pub fn fired() -> bool {
    FIRED.load(Ordering::Relaxed)
}

/// Refuses further writes once the watchdog has given up (the sinks call this first).
pub fn check() -> Result<()> {
    if fired() {
        return Err(Error::new(
            ErrorKind::Interrupted,
            "stopped by the no-progress watchdog",
        ));
    }
    Ok(())
}

/// Registers what to do to the output if the watchdog fires; undone when the returned
/// guard is dropped (the dump is finished, or another one begins).
pub fn on_stall(marker: impl Fn() -> Result<()> + Send + Sync + 'static) -> MarkGuard {
    let id = NEXT_MARKER.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut m) = MARKERS.lock() {
        m.push((id, Arc::new(marker)));
    }
    MarkGuard(id)
}

/// Keeps a marker of `on_stall` registered until it is dropped.
pub struct MarkGuard(u64);

impl Drop for MarkGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = MARKERS.lock() {
            m.retain(|(id, _)| *id != self.0);
        }
    }
}

/// The watchdog's time for `job`: `--watchdog`, else `DEFAULT_SECS` for `/proc/vmcore`;
/// `None` when off, and for the modes that write no output.
pub fn limit(job: &Job) -> Option<Duration> {
    if job.check_params || job.dry_run {
        return None;
    }
    let input = match &job.mode {
        Mode::Dump { vmcore, .. } | Mode::Split { vmcore, .. } | Mode::DumpDmesg { vmcore, .. } => {
            Some(vmcore.as_path())
        }
        Mode::Rearrange { .. } | Mode::Reassemble { .. } => None,
        _ => return None,
    };
    let secs = job.watchdog.unwrap_or_else(|| {
        if input == Some(Path::new("/proc/vmcore")) {
            DEFAULT_SECS
        } else {
            0
        }
    });
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// What `start` decided.
pub enum Role {
    /// Do the work in this process (the watchdog thread runs, if one was asked for).
    Work,
    /// This process was the supervisor; the child did the work and ended with this status.
    Supervised(i32),
}

/// Starts the watchdog for a run of `args` with `limit`: in the process kdump started,
/// runs the command again as a supervised child and returns its status; in that child (or
/// where a child cannot be started), starts the watchdog thread and returns `Work`.
pub fn start(limit: Duration, args: &[OsString]) -> Role {
    if let Some(fd) = std::env::var_os(CHILD_ENV) {
        if let Some(pipe) = fd.to_str().and_then(|s| s.parse().ok()).and_then(open_pipe) {
            let _ = PIPE.set(pipe);
        }
    } else if let Some(code) = supervise(limit, args) {
        return Role::Supervised(code);
    }
    let _ = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || watch(limit));
    Role::Work
}

/// The exit status of a run that ended by itself. After the watchdog fired it never
/// returns: the watchdog thread ends the process (with status 1) once it has marked the
/// output, so a run that got unstuck in the meantime cannot report success.
pub fn exit_status(code: i32) -> i32 {
    if fired() {
        loop {
            std::thread::park();
        }
    }
    tell(if code == 0 { EXIT_OK } else { EXIT_FAILED });
    code
}

/// The inherited heartbeat pipe: reopened through /proc with close-on-exec (so ssh does
/// not inherit it) and non-blocking (a full pipe must not stop the watchdog), then the
/// inherited descriptor is closed. Anything but a pipe there is left alone.
fn open_pipe(fd: RawFd) -> Option<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let path = format!("/proc/self/fd/{fd}");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(&path)
        .ok()?;
    if !file.metadata().ok()?.file_type().is_fifo() {
        return None;
    }
    if fd != file.as_raw_fd() {
        let _ = nix::unistd::close(fd);
    }
    Some(file)
}

/// One heartbeat byte to the supervisor, if there is one (never blocks).
fn tell(byte: u8) {
    if let Some(mut p) = PIPE.get() {
        let _ = p.write(&[byte]);
    }
}

/// The watchdog thread: gives up on the run when the progress counter stays still for
/// `limit`.
fn watch(limit: Duration) {
    let mut last = PROGRESS.load(Ordering::Relaxed);
    let mut since = Instant::now();
    let mut told_signal = false;
    loop {
        std::thread::sleep(TICK);
        let now = PROGRESS.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
            tell(BEAT);
        }
        if !told_signal && crate::signals::caught().is_some() {
            told_signal = true;
            tell(SIGNALLED);
        }
        if since.elapsed() >= limit {
            give_up(limit);
        }
    }
}

/// Marks what can be marked, within `MARK_DEADLINE`, says so and ends the process.
fn give_up(limit: Duration) -> ! {
    FIRED.store(true, Ordering::SeqCst);
    let markers: Vec<Marker> = MARKERS
        .lock()
        .map(|m| m.iter().map(|(_, f)| Arc::clone(f)).collect())
        .unwrap_or_default();
    let outcome = if markers.is_empty() {
        String::new()
    } else {
        let (tx, rx) = mpsc::channel();
        // Detached: on a dead hard mount this write blocks as the others do.
        let _ = std::thread::Builder::new()
            .name("watchdog-mark".into())
            .spawn(move || {
                let r = markers.iter().try_for_each(|m| m());
                let _ = tx.send(r);
            });
        match rx.recv_timeout(MARK_DEADLINE) {
            Ok(Ok(())) => "; the dump is marked incomplete".to_string(),
            Ok(Err(e)) => format!("; cannot mark the dump incomplete: {e}"),
            Err(_) => format!(
                "; the dump could not be marked incomplete either (no answer in {} s)",
                MARK_DEADLINE.as_secs()
            ),
        }
    };
    let secs = limit.as_secs();
    crate::report::close_line();
    crate::report::emit(
        crate::report::ML_ERROR,
        format_args!(
            "vmsift: error: no progress on the output for {secs} s (--watchdog {secs}): giving up{outcome}"
        ),
    );
    tell(FIRED_BYTE);
    // std's exit only try-locks stdout (held by a writer stuck in a -F stream), and
    // ends every thread, blocked ones included, as far as the kernel lets it.
    std::process::exit(1)
}

/// Runs `args` again as a child that does the work, and follows its heartbeat. `None`
/// when no child can be started (no /proc, for instance): then this process works under
/// its own watchdog thread.
fn supervise(limit: Duration, args: &[OsString]) -> Option<i32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().ok()?;
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let (rx, tx) = nix::unistd::pipe().ok()?;
    let cloexec = nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC);
    nix::fcntl::fcntl(&rx, cloexec).ok()?;
    let mut cmd = std::process::Command::new(exe);
    if let Some(argv0) = args.first() {
        cmd.arg0(argv0);
    }
    cmd.args(args.iter().skip(1))
        .env(CHILD_ENV, tx.as_raw_fd().to_string());
    let mut child = cmd.spawn().ok()?;
    drop(tx);
    // This process never writes to stdout; were it a file on the dead mount, closing it
    // at exit would wait for the child's unwritten data.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    let stop = StopSignals::install();
    let beats = heartbeat_reader(File::from(rx));
    let mut last_beat = Instant::now();
    let mut child_signalled = false;
    let mut reported: Option<i32> = None;
    // After the child gave up or closed the pipe: the time by which it must have ended.
    let mut end_by: Option<Instant> = None;
    let mut forward: Option<(i32, Instant)> = None;
    let kill = |child: &mut std::process::Child| {
        let _ = child.kill();
    };
    loop {
        match beats.recv_timeout(TICK) {
            Ok(Some(BEAT)) => last_beat = Instant::now(),
            Ok(Some(SIGNALLED)) => child_signalled = true,
            Ok(Some(FIRED_BYTE)) => {
                reported = Some(1);
                end_by = Some(Instant::now() + GIVEN_UP_GRACE);
            }
            Ok(Some(code @ (EXIT_OK | EXIT_FAILED))) => {
                reported = Some(i32::from(code == EXIT_FAILED));
                end_by.get_or_insert(Instant::now() + GRACE);
            }
            Ok(Some(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                end_by.get_or_insert(Instant::now() + GRACE);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            use std::os::unix::process::ExitStatusExt;
            if let (Some(sig), None) = (status.signal(), reported) {
                // Killed before it could say anything (the OOM killer, for one).
                crate::report::emit(
                    crate::report::ML_ERROR,
                    format_args!("vmsift: error: the working process was killed by signal {sig}"),
                );
            }
            return Some(status.code().or(reported).unwrap_or(1));
        }
        if let Some(sig) = stop.take() {
            if forward.is_some() {
                // A second stop signal ends the run at once, as in a single process.
                stop.send(child.id(), sig);
                return Some(1);
            }
            forward = Some((sig, Instant::now()));
        }
        // A signal for this process alone (not for its process group or cgroup, which
        // the child gets too and says so) is passed on.
        if let Some((sig, at)) = forward
            && !child_signalled
            && at.elapsed() >= Duration::from_secs(1)
        {
            stop.send(child.id(), sig);
            child_signalled = true;
        }
        if end_by.is_some_and(|t| Instant::now() >= t) {
            kill(&mut child);
            return Some(reported.unwrap_or(1));
        }
        if end_by.is_none() && last_beat.elapsed() >= limit + GRACE {
            let secs = limit.as_secs();
            crate::report::emit(
                crate::report::ML_ERROR,
                format_args!(
                    "vmsift: error: no progress on the output for {secs} s (--watchdog {secs}): giving up; the working process does not answer"
                ),
            );
            kill(&mut child);
            return Some(1);
        }
    }
}

/// A thread that hands on the child's heartbeat bytes (`None`: end of the pipe).
fn heartbeat_reader(mut pipe: File) -> mpsc::Receiver<Option<u8>> {
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        if buf[..n].iter().any(|&b| tx.send(Some(b)).is_err()) {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                }
            }
        });
    rx
}

/// The supervisor's SIGTERM, SIGINT and SIGHUP: recorded, to be passed on.
struct StopSignals {
    got: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl StopSignals {
    fn install() -> StopSignals {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let got = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            let _ = signal_hook::flag::register_usize(sig, Arc::clone(&which), sig as usize);
            let _ = signal_hook::flag::register(sig, Arc::clone(&got));
        }
        StopSignals { got, which }
    }

    /// The signal that arrived since the last call, if any.
    fn take(&self) -> Option<i32> {
        if !self.got.swap(false, Ordering::SeqCst) {
            return None;
        }
        i32::try_from(self.which.load(Ordering::SeqCst)).ok()
    }

    fn send(&self, pid: u32, sig: i32) {
        let (Ok(pid), Ok(sig)) = (i32::try_from(pid), nix::sys::signal::Signal::try_from(sig))
        else {
            return;
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_of(args: &[&str]) -> Option<u64> {
        let job = crate::cli::parse(std::iter::once("vmsift").chain(args.iter().copied()))
            .expect("parses");
        limit(&job).map(|d| d.as_secs())
    }

    #[test]
    fn on_in_the_capture_kernel_off_elsewhere_unless_asked() {
        let dflt = Some(DEFAULT_SECS);
        assert_eq!(limit_of(&["-l", "-d", "31", "/proc/vmcore", "out"]), dflt);
        assert_eq!(limit_of(&["-F", "-c", "-d", "31", "/proc/vmcore"]), dflt);
        assert_eq!(limit_of(&["--split", "/proc/vmcore", "a", "b"]), dflt);
        assert_eq!(limit_of(&["--watchdog", "0", "/proc/vmcore", "out"]), None);
        assert_eq!(
            limit_of(&["--watchdog", "30", "/proc/vmcore", "out"]),
            Some(30)
        );
        assert_eq!(limit_of(&["vmcore.copy", "out"]), None);
        assert_eq!(
            limit_of(&["--watchdog", "5", "vmcore.copy", "out"]),
            Some(5)
        );
        assert_eq!(limit_of(&["-R", "out"]), None);
        assert_eq!(limit_of(&["--watchdog", "5", "-R", "out"]), Some(5));
        // Nothing written: nothing to watch.
        assert_eq!(limit_of(&["--check-params", "/proc/vmcore", "out"]), None);
        assert_eq!(limit_of(&["--dry-run", "/proc/vmcore", "out"]), None);
        assert_eq!(limit_of(&["--mem-usage", "/proc/kcore"]), None);
        assert!(crate::cli::parse(["vmsift", "--watchdog", "soon", "a", "b"]).is_err());
    }
}
