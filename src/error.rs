//! One error type for the whole crate: a kind (what went wrong) plus a chain of context
//! strings (where), printed as one line: `context: context: cause`.

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
}

#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

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
    fn context<C: fmt::Display>(self, context: C) -> Result<T>;
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
