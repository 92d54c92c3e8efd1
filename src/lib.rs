//! vmsift: a makedumpfile-compatible kdump core collector.
//!
//! The modules follow the data: `input` (ELF vmcores, kdump files and flattened streams;
//! page reads) → `arch` (the machine: address translation, the kernel's fixed mappings,
//! header fields; x86_64 and arm64) → `kernel` (VMCOREINFO, mem_map, page classes, utsname,
//! the kernel log) → `filter` (dump level → bitmaps) → `pipeline` (planning, workers, the
//! ordered writer, salvage) → `format` (each on-disk record defined once: kdump, flattened,
//! ELF) → `target` (file, stream or ssh). `cli` turns argv into a `Job`; `app` wires it to
//! the pipeline; `report` prints. `synth` builds synthetic vmcores for tests, benches and
//! fuzzing.

#![warn(missing_docs)]
#![warn(clippy::too_many_lines)]

pub mod app;
pub mod arch;
pub mod budget;
pub mod cli;
pub mod codec;
pub mod error;
#[cfg(debug_assertions)]
pub mod fault;
pub mod filter;
pub mod format;
pub mod input;
pub mod kernel;
pub mod pipeline;
pub mod report;
pub mod signals;
pub mod synth;
pub mod target;
pub mod watchdog;

pub use error::{Error, ErrorKind, Result};

/// A fault injection point of `role` (a `fault::Role` variant), in a function returning
/// `Result`: in debug builds it fails when `VMSIFT_FAULT` says so (see `src/fault.rs`);
/// in release builds it is nothing at all.
#[macro_export]
macro_rules! fault {
    ($role:ident) => {
        #[cfg(debug_assertions)]
        $crate::fault::hit($crate::fault::Role::$role)?;
    };
}
