//! Helpers shared by test crates (`mod common;` in each). Each crate uses some of them.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Runs vmsift with `args` under /usr/bin/time (Debian's `time` package), which writes
/// the peak RSS to `rss_file`: what vmsift did, and that peak in KiB.
pub fn vmsift_measured<S: AsRef<OsStr>>(args: &[S], rss_file: &Path) -> (Output, u64) {
    let o = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss_file)
        .arg(env!("CARGO_BIN_EXE_vmsift"))
        .args(args)
        .output()
        .expect("run /usr/bin/time (Debian package time)");
    let kib = std::fs::read_to_string(rss_file)
        .expect("rss file")
        .trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .expect("a number");
    (o, kib)
}

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

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `path`, which must exist; `how` says how to make it.
pub fn require(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.exists(), "{} is missing: {how}", path.display());
    path
}

/// A directory for a real-vmcore test's dumps (`CARGO_TARGET_TMPDIR/real-NAME`), emptied
/// first and removed when the test passes: all real-vmcore tests' dumps together come to
/// several GB, more than a CI machine may have free. A failing test (the guard dropped while
/// panicking) keeps its files for a look, and so does every test with VMSIFT_KEEP_SCRATCH=1.
pub fn scratch(name: &str) -> Scratch {
    scratch_at(&format!("real-{name}"))
}

/// [`scratch`] for a directory named `name` under `CARGO_TARGET_TMPDIR`.
pub fn scratch_at(name: &str) -> Scratch {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Scratch(dir)
}

/// A test's scratch directory; see [`scratch`].
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("VMSIFT_KEEP_SCRATCH").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `cmd` (described as `what` in messages); asserts it succeeded and returns what it
/// did.
pub fn succeed(cmd: &mut Command, what: &str) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Runs vmsift with `args` and the input, writing `out`; asserts success.
pub fn vmsift(args: &[&str], vmcore: &Path, out: &Path) {
    succeed(
        Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .args(args)
            .arg(vmcore)
            .arg(out),
        &format!("vmsift {args:?}"),
    );
}

/// A real vmcore of `tests/run-all` and the kernel it comes from.
pub struct Kernel {
    /// Name of the vmcore under target/vmcores/.
    pub name: &'static str,
    /// The Debian kernel's version (`uname -r`).
    pub kver: &'static str,
    /// make-vmcore's options for it (as in tests/run-all).
    pub options: &'static str,
}

impl Kernel {
    /// The vmcore, which must exist.
    pub fn vmcore(&self) -> PathBuf {
        let make = format!(
            "run tests/harness/make-vmcore {} {} {}",
            self.name, self.kver, self.options
        );
        require(
            root()
                .join("target/vmcores")
                .join(format!("{}.elf", self.name)),
            &format!("{} (or tests/run-all)", make.trim_end()),
        )
    }

    /// The kernel's debug vmlinux, which must exist.
    pub fn vmlinux(&self) -> PathBuf {
        require(
            root()
                .join("target/cache/vmlinux")
                .join(format!("vmlinux-{}", self.kver)),
            &format!(
                "run tests/harness/fetch-vmlinux {} (or tests/run-all)",
                self.kver
            ),
        )
    }
}

/// The page-by-page classification of `k`'s vmcore, made from the kernel's debug info by
/// drgn (tests/oracle/classify), independently of VMCOREINFO and of our filter.
pub fn oracle(k: &Kernel) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("oracle-{}.json", k.name));
    let vmcore = k.vmcore();
    let fresh = |p: &Path| {
        let (o, v) = (std::fs::metadata(p), std::fs::metadata(&vmcore));
        matches!((o.and_then(|m| m.modified()), v.and_then(|m| m.modified())), (Ok(o), Ok(v)) if o > v)
    };
    if !fresh(&out) {
        let o = Command::new(root().join("tests/oracle/classify"))
            .arg("--quiet")
            .arg(k.vmlinux())
            .arg(&vmcore)
            .arg(&out)
            .output()
            .expect("run tests/oracle/classify");
        assert!(
            o.status.success(),
            "classify {}: {}{}",
            k.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    out
}
