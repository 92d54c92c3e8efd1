//! Messages and progress, filtered by makedumpfile's `--message-level` bits. Everything goes
//! to stderr: stdout may carry a flattened dump. The layers below the pipeline (the kernel
//! layer, the filter, the workers) do not print: they return `Diagnostic`s, and the thread
//! that runs the pipeline hands them to `diagnostics` here.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Message level bit: the progress line.
pub const ML_PROGRESS: u32 = 1;
/// Message level bit: the common messages (where the dump is saved, completion).
pub const ML_COMMON: u32 = 2;
/// Message level bit: errors and warnings.
pub const ML_ERROR: u32 = 4;
/// Message level bit: debugging detail.
pub const ML_DEBUG: u32 = 8;
/// Message level bit: the `--show-stats` report.
pub const ML_REPORT: u32 = 16;
/// The message level without `--message-level`.
pub const DEFAULT_LEVEL: u32 = ML_PROGRESS | ML_COMMON | ML_ERROR;

static LEVEL: AtomicU32 = AtomicU32::new(DEFAULT_LEVEL);

/// A progress line is drawn on a terminal and not ended yet.
static LINE_OPEN: AtomicBool = AtomicBool::new(false);

/// Ends a progress line left open on a terminal, so that a message from another thread
/// (the watchdog's) starts a line of its own.
pub fn close_line() {
    if LINE_OPEN.swap(false, Ordering::Relaxed) {
        let _ = writeln!(std::io::stderr().lock());
    }
}

/// Sets the message level (`--message-level`) for the whole process.
pub fn set_level(level: u32) {
    LEVEL.store(level, Ordering::Relaxed);
}

/// Whether messages of this level bit are printed.
fn enabled(bit: u32) -> bool {
    LEVEL.load(Ordering::Relaxed) & bit != 0
}

/// Prints one line whatever the message level (a command line that cannot be parsed has
/// no message level yet).
pub fn always(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{args}");
}

/// Prints one line when the given message-level bit is on.
pub fn emit(bit: u32, args: std::fmt::Arguments<'_>) {
    if enabled(bit) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{args}");
    }
}

/// Prints a common message (level bit 2).
#[macro_export]
macro_rules! common { ($($t:tt)*) => { $crate::report::emit($crate::report::ML_COMMON, format_args!($($t)*)) } }
/// Prints `vmsift: warning: ...` (level bit 4).
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::report::emit($crate::report::ML_ERROR, format_args!("vmsift: warning: {}", format_args!($($t)*))) } }
/// Prints a debugging message (level bit 8).
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::report::emit($crate::report::ML_DEBUG, format_args!($($t)*)) } }
/// Prints a line of the `--show-stats` report (level bit 16).
#[macro_export]
macro_rules! stats { ($($t:tt)*) => { $crate::report::emit($crate::report::ML_REPORT, format_args!($($t)*)) } }

/// Something a layer found that is worth a message, returned as a value for the reporter
/// to print (see `diagnostics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// Printed as `vmsift: warning: <text>` (level bit 4).
    Warning(String),
    /// Printed as is at level bit 8.
    Debug(String),
}

/// Prints the diagnostics, in order.
pub fn diagnostics(list: impl IntoIterator<Item = Diagnostic>) {
    for d in list {
        match d {
            Diagnostic::Warning(text) => crate::warn!("{text}"),
            Diagnostic::Debug(text) => crate::debug!("{text}"),
        }
    }
}

/// makedumpfile's `--show-stats` report (message level bit 16) of a run.
pub fn show_stats(s: &crate::pipeline::Stats) {
    let e = &s.excluded;
    let excluded = s.zero + e.total();
    let remaining = s.pages_in_input.saturating_sub(excluded);
    crate::stats!("\nOriginal pages  : {:#018x}", s.pages_in_input);
    crate::stats!("  Excluded pages   : {excluded:#018x}");
    crate::stats!("    Pages filled with zero  : {:#018x}", s.zero);
    crate::stats!("    Non-private cache pages : {:#018x}", e.cache);
    crate::stats!("    Private cache pages     : {:#018x}", e.cache_private);
    crate::stats!("    User process data pages : {:#018x}", e.user);
    crate::stats!("    Free pages              : {:#018x}", e.free);
    crate::stats!("    Hwpoison pages          : {:#018x}", e.hwpoison);
    crate::stats!("    Offline pages           : {:#018x}", e.offline);
    crate::stats!("  Remaining pages  : {remaining:#018x}");
    if let Some(pct) = (remaining * 100).checked_div(s.pages_in_input) {
        crate::stats!("  (The number of pages is reduced to {pct}%.)");
    }
    crate::stats!(
        "Memory Hole     : {:#018x}",
        s.max_mapnr.saturating_sub(s.pages_in_input)
    );
    crate::stats!("--------------------------------------------------");
    crate::stats!("Total pages     : {:#018x}", s.max_mapnr);
    crate::stats!("Write bytes     : {}\n", s.file_size);
}

/// A progress line for long runs. On a terminal it redraws one line a few times a second;
/// elsewhere (a serial console, a log file) it prints a plain new line every few seconds,
/// with no cursor movement. Checking the clock only every 1024 pages keeps its cost per page
/// to a counter increment.
pub struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    bytes: u64,
    start: Instant,
    last: Instant,
    next_check: u64,
    tty: bool,
    enabled: bool,
    interval: Duration,
    printed: bool,
}

impl Progress {
    /// A progress line labelled `label` for `total` pages.
    pub fn new(label: &'static str, total: u64) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let now = Instant::now();
        Progress {
            label,
            total,
            done: 0,
            bytes: 0,
            start: now,
            last: now,
            next_check: 1024,
            tty,
            enabled: enabled(ML_PROGRESS),
            interval: if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            },
            printed: false,
        }
    }

    /// Counts one page of `bytes` input bytes.
    #[inline]
    pub fn page(&mut self, bytes: u64) {
        self.done += 1;
        self.bytes += bytes;
        if self.done >= self.next_check {
            self.next_check = self.done + 1024;
            if self.enabled && self.last.elapsed() >= self.interval {
                self.print(false);
            }
        }
    }

    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-6);
        let pct = if self.total == 0 {
            100.0
        } else {
            self.done as f64 * 100.0 / self.total as f64
        };
        let rate = self.bytes as f64 / secs / 1e6;
        let eta = if self.done > 0 && self.done < self.total {
            let left = (self.total - self.done) as f64 * secs / self.done as f64;
            format!(", ETA {}s", left.ceil() as u64)
        } else {
            String::new()
        };
        format!(
            "{}: {pct:5.1}% ({} of {} pages, {rate:.1} MB/s{eta})",
            self.label, self.done, self.total
        )
    }

    fn print(&mut self, last: bool) {
        self.last = Instant::now();
        let line = self.line();
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            LINE_OPEN.store(!last, Ordering::Relaxed);
            write!(err, "\r{line}\x1b[K{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        self.printed = true;
    }

    /// Prints the final line (only if a line was printed before or the run took a while).
    pub fn finish(&mut self) {
        if self.enabled && (self.printed || self.start.elapsed() >= Duration::from_secs(1)) {
            self.print(true);
        }
    }
}
