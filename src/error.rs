//! One error type for the whole crate: a kind (what went wrong) plus a chain of context
//! strings (where), printed as one line: `context: context: cause`.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::io;

/// What kind of failure this is; callers branch on it (for example the writer treats
/// `NoSpace` differently from other I/O errors), users only see the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is not what it claims to be (bad ELF, truncated, missing notes).
    BadInput,
    /// The input is valid but uses something vmsift does not handle.
    Unsupported,
    /// The command line is wrong.
    Usage,
    /// The output file exists and `-f` was not given.
    Exists,
    /// The output device is full (or a size limit was reached).
    NoSpace,
    /// Any other I/O failure.
    Io,
    /// A signal (SIGTERM, SIGINT) asked the run to stop.
    Interrupted,
    /// A bug in vmsift: a thread panicked, or an invariant between threads broke.
    Internal,
}

/// A failure: its kind, the message with its context, and the I/O error behind it if any.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The input is not what it claims to be (`ErrorKind::BadInput`).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }

    /// Something valid that vmsift does not handle (`ErrorKind::Unsupported`).
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// A bug in vmsift (see `ErrorKind::Internal`): `internal error: <message>`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Internal,
            format!("internal error: {}", message.into()),
        )
    }

    /// The internal error for a panic of `who` ("a compression thread"), with the panic's
    /// message on one line and, when the panic happened on this thread, where.
    pub fn from_panic(who: &str, payload: &(dyn Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("no message");
        let one_line: Vec<&str> = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let at = PANICKED_AT.with(|p| p.borrow_mut().take());
        let at = at.map(|at| format!(" at {at}")).unwrap_or_default();
        Self::internal(format!("{who} panicked{at}: {}", one_line.join(" ")))
    }

    /// A bad command line (`ErrorKind::Usage`).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    /// Wraps an I/O error, classifying "disk full" and "file exists" so callers can react.
    pub fn io(err: io::Error, message: impl Into<String>) -> Self {
        let kind = match err.raw_os_error() {
            Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EFBIG => {
                ErrorKind::NoSpace
            }
            Some(code) if code == nix::libc::EEXIST => ErrorKind::Exists,
            _ => ErrorKind::Io,
        };
        Error {
            kind,
            message: message.into(),
            source: Some(err),
        }
    }

    /// Whether the OS error behind this says the output's server or connection is gone
    /// (a soft NFS mount that timed out, with `softerr`; a stale NFS handle; a dropped
    /// connection): every further write there would wait for the same timeout and fail
    /// the same way. A media error (EIO) or a full disk is not that.
    pub fn is_unreachable(&self) -> bool {
        use nix::libc::{
            ECONNABORTED, ECONNRESET, EHOSTDOWN, EHOSTUNREACH, ENETDOWN, ENETUNREACH, ENOTCONN,
            ESTALE, ETIMEDOUT,
        };
        matches!(
            self.source.as_ref().and_then(io::Error::raw_os_error),
            Some(
                ETIMEDOUT
                    | ENOTCONN
                    | ECONNRESET
                    | ECONNABORTED
                    | ENETDOWN
                    | ENETUNREACH
                    | EHOSTDOWN
                    | EHOSTUNREACH
                    | ESTALE
            )
        )
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Adds an outer context: `context: <previous message>`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `result.context("reading the ELF header")` for any of our results.
pub trait Context<T> {
    /// Adds `context` in front of the error's message.
    fn context<C: fmt::Display>(self, context: C) -> Result<T>;
    /// Adds the context `f` returns (computed only on failure).
    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context<C: fmt::Display>(self, context: C) -> Result<T> {
        self.map_err(|e| e.context(context))
    }

    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

thread_local! {
    /// Where this thread's last panic happened (set by the hook of `quiet_panics`).
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the process's panic hook: it prints nothing (the panic becomes an internal
/// error, printed as the run's one error line, see `catch`) and records where the panic
/// happened. With debug messages on (`--message-level` bit 8) it also prints the panic
/// as Rust would.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            PANICKED_AT.with(|p| *p.borrow_mut() = at);
            crate::debug!("{info}");
        }));
    });
}

/// Runs `f` and turns a panic in it into an internal error naming `who`.
///
/// vmsift unwinds on panic (the release profile says `panic = "unwind"`) rather than
/// aborting: an abort would end the process with SIGABRT, leaving a dump whose header
/// does not say incomplete and whose descriptors may point at page data that was never
/// written. Unwinding lets the writer salvage the file (every descriptor either right or
/// "lost", the header marked incomplete), print one error line and exit 1. A panic
/// cannot corrupt the output this way: a panicking worker's batch is dropped, never
/// written, and the writer's own state only ever claims data that was confirmed written.
pub fn catch<T>(who: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(Error::from_panic(who, &*payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_one_line_internal_error() {
        // (`quiet_panics` is not installed here: it would silence the other tests'
        // failures. tests/faults.rs checks the location it adds.)
        let e = catch::<()>("a test thread", || panic!("bad\n  state {}", 7))
            .expect_err("the panic is an error");
        assert_eq!(e.kind(), ErrorKind::Internal);
        let text = e.to_string();
        assert!(
            text.starts_with("internal error: a test thread panicked"),
            "{text}"
        );
        assert!(text.ends_with(": bad state 7"), "{text}");
        assert_eq!(catch("a test thread", || Ok(5)).expect("no panic"), 5);
    }
}
