//! Helpers shared by the test crates that run vmsift with injected system-call faults
//! (`mod common;` in each).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fault-injection library tests/faults/preload.c, built once per test crate with the
/// system C compiler, as `CARGO_TARGET_TMPDIR/NAME-preload.so` (each crate its own file:
/// test crates run at the same time).
pub fn preload(name: &str) -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let so = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-preload.so"));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/preload.c");
        let st = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&so)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("gcc (tests/install-deps installs it)");
        assert!(st.success(), "building {}", src.display());
        so
    })
}
