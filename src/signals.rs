//! SIGTERM, SIGINT and SIGHUP stop a dump cleanly: the handler only records the signal;
//! the pipeline checks between batches, stops, and leaves a readable incomplete dump (a
//! kdump script that times out must not leave a file that looks complete, nor nothing). A
//! second stop signal ends the process at once (exit status 1), as users expect of Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{Error, ErrorKind, Result};

/// The number of the first stop signal (0: none yet).
static CAUGHT: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the handlers (once per process; later calls do nothing).
pub fn install() -> Result<()> {
    if CAUGHT.get().is_some() {
        return Ok(());
    }
    let caught = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT, SIGHUP] {
        let fail = |e| Error::io(e, format!("cannot install a handler for {}", name(sig)));
        // Registered first, so it sees `stopping` as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stopping))
            .map_err(fail)?;
        signal_hook::flag::register(sig, Arc::clone(&stopping)).map_err(fail)?;
        signal_hook::flag::register_usize(sig, Arc::clone(&caught), sig as usize).map_err(fail)?;
    }
    let _ = CAUGHT.set(caught);
    Ok(())
}

/// The signal that asked the run to stop, if any.
pub fn caught() -> Option<i32> {
    match CAUGHT.get().map_or(0, |c| c.load(Ordering::Relaxed)) {
        0 => None,
        n => i32::try_from(n).ok(),
    }
}

/// An `Interrupted` error once a stop signal has arrived.
pub fn check() -> Result<()> {
    match caught() {
        None => Ok(()),
        Some(sig) => Err(Error::new(
            ErrorKind::Interrupted,
            format!("stopped by {}", name(sig)),
        )),
    }
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
