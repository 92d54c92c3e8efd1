//! vmsift on real vmcores of crashed Debian arm64 kernels (made under qemu-system-aarch64 by
//! `tests/harness/make-vmcore`, debug vmlinux files from `tests/harness/fetch-vmlinux`):
//! drgn and libkdumpfile read the `-d 31` dump as the ELF, and the exclusion at every level
//! matches the page classes that `tests/oracle/classify` computes from the debug info.
//!
//! The four kernels cover what arm64 translation has to get right: 48-bit VA (6.1), 52-bit VA
//! with LPA2 (6.12 on QEMU's `-cpu max`, and sid's 7.2), and a 52-bit kernel on a CPU without
//! LPA2, which uses 48 bits and has a negative PHYS_OFFSET (6.12, `--cpu max-nolpa2`).
//! Every mode (codecs, `-F`/`-R`, `--split`/`--reassemble`, `-E`, re-filtering,
//! `--dump-dmesg`) reads back as the direct dump does.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{Kernel, oracle, require, root, scratch, succeed, vmsift};

/// `NUMBER(VA_BITS)=48`, `TCR_EL1_T1SZ=0x10`, 4 levels.
const DEB61: Kernel = Kernel {
    name: "deb61-arm64",
    kver: "6.1.0-56-arm64",
    options: "--mem 1024 --crashkernel 256M",
};
/// `VA_BITS=52`, `TCR_EL1_T1SZ=0xc`: 5 levels with LPA2 descriptors.
const DEB612: Kernel = Kernel {
    name: "deb612-arm64",
    kver: "6.12.117+deb12-arm64",
    options: "--mem 1024 --crashkernel 256M",
};
/// `VA_BITS=52` but `TCR_EL1_T1SZ=0x10` (48 bits in use), `PHYS_OFFSET=0xfff1000040000000`.
const NOLPA2_612: Kernel = Kernel {
    name: "deb612-arm64-nolpa2",
    kver: "6.12.117+deb12-arm64",
    options: "--mem 1024 --crashkernel 256M --cpu max-nolpa2",
};
/// Debian sid's kernel: `VA_BITS=52` with LPA2, `page.compound_info`.
const DEB72: Kernel = Kernel {
    name: "deb72-arm64",
    kver: "7.2.13+deb14-arm64",
    options: "--mem 1024 --crashkernel 256M",
};

/// Runs a checker (a path under tests/, through `program` if given) and asserts it reports a
/// match (exit 0, and "OK:" in its output when `program` is given).
fn check(program: Option<&Path>, script: &str, options: &[&str], args: &[&Path]) {
    let path = root().join("tests").join(script);
    let mut c = match program {
        Some(p) => {
            let mut c = Command::new(p);
            if p.ends_with("sid-run") {
                c.arg("python3");
            }
            c.arg(&path);
            c
        }
        None => Command::new(&path),
    };
    let o = c.args(options).args(args).output().expect("run checker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    println!("{script}: {}", text.trim_end());
    assert!(
        o.status.success() && (program.is_none() || text.contains("OK:")),
        "{script} {args:?} found a difference:\n{text}"
    );
}

/// drgn on the `-d 31` dump: release, dmesg, tasks, every thread's stack, vm_zone_stat;
/// libkdumpfile 0.5.1 (Debian 12) and 0.5.5 (sid) read every kept page identical.
fn level31_reads_the_same(k: &Kernel) {
    let vmcore = k.vmcore();
    let dir = scratch(&format!("{}-31-drgn", k.name));
    let dump = dir.join("dump-z31");
    vmsift(&["-z", "-d", "31"], &vmcore, &dump);
    check(
        None,
        "readers/drgn-same",
        &[],
        &[&k.vmlinux(), &vmcore, &dump],
    );
    check(
        Some(Path::new("/usr/bin/python3")),
        "readers/pages-identical",
        &["--allow-excluded"],
        &[&vmcore, &dump],
    );
    require(
        root().join("target/cache/sid/.complete"),
        "run tests/harness/sid-peers (or tests/run-all)",
    );
    check(
        Some(&root().join("tests/harness/sid-run")),
        "readers/pages-identical",
        &["--allow-excluded"],
        &[&vmcore, &dump],
    );
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_level31_drgn_sees_the_same_kernel_61() {
    level31_reads_the_same(&DEB61);
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_level31_drgn_sees_the_same_kernel_612() {
    level31_reads_the_same(&DEB612);
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_level31_drgn_sees_the_same_kernel_612_nolpa2() {
    level31_reads_the_same(&NOLPA2_612);
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_level31_drgn_sees_the_same_kernel_72() {
    level31_reads_the_same(&DEB72);
}

/// Our exclusion at each level against the oracle: no page wrongly excluded, and no
/// excludable page kept.
fn filter_matches_oracle(k: &Kernel) {
    let vmcore = k.vmcore();
    let oracle = oracle(k);
    let dir = scratch(&format!("{}-oracle", k.name));
    for level in [31, 2, 4, 8, 16] {
        let dump = dir.join(format!("dump-d{level}"));
        vmsift(&["-l", "-d", &level.to_string()], &vmcore, &dump);
        check(
            None,
            "oracle/check-dump",
            &["--max-kept", "0"],
            &[&oracle, &dump],
        );
        std::fs::remove_file(&dump).expect("clean up");
    }
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_oracle_61_filter_matches_the_debug_info() {
    filter_matches_oracle(&DEB61);
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_oracle_612_filter_matches_the_debug_info() {
    filter_matches_oracle(&DEB612);
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_oracle_612_nolpa2_filter_matches_the_debug_info() {
    filter_matches_oracle(&NOLPA2_612);
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_oracle_72_filter_matches_the_debug_info() {
    filter_matches_oracle(&DEB72);
}

/// Runs vmsift with `args` (the caller gives inputs and outputs); returns stdout.
fn vmsift_raw(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    succeed(
        Command::new(env!("CARGO_BIN_EXE_vmsift")).args(args),
        &format!("vmsift {args:?}"),
    )
    .stdout
}

fn same_file(a: &Path, b: &Path, what: &str) {
    let (x, y) = (
        std::fs::read(a).expect("read"),
        std::fs::read(b).expect("read"),
    );
    assert!(x == y, "{what}: {} and {} differ", a.display(), b.display());
}

/// Every mode on an arm64 vmcore: each codec's `-d 31` dump read back page for page by
/// libkdumpfile; drgn sees the same kernel in the `-E` dump (libkdumpfile reads the last page
/// of an ELF segment's zero-filled tail as zeros rather than as missing, on x86_64 dumps
/// that are makedumpfile's byte for byte too, so it cannot check `-E` page by page); `-F` then `-R`, `--split` then `--reassemble`, and a
/// `-d 1` dump re-filtered to `-d 31` are the direct dump byte for byte; `--dump-dmesg` of
/// the ELF and of the dump are the same log, which has the kernel's banner.
fn every_mode(k: &Kernel) {
    let vmcore = k.vmcore();
    let dir = scratch(&format!("{}-modes", k.name));
    let os = |p: &Path| p.as_os_str().to_owned();
    let elf = dir.join("dump-E");
    vmsift(&["-E", "-d", "31"], &vmcore, &elf);
    check(
        None,
        "readers/drgn-same",
        &[],
        &[&k.vmlinux(), &vmcore, &elf],
    );
    std::fs::remove_file(&elf).expect("clean up");
    for codec in ["-l", "-c", "-p", "-z"] {
        let dump = dir.join(format!("dump{codec}"));
        vmsift(&[codec, "-d", "31"], &vmcore, &dump);
        let pages = root().join("tests/readers/pages-identical");
        let o = Command::new("/usr/bin/python3")
            .arg(&pages)
            .arg("--allow-excluded")
            .arg(&vmcore)
            .arg(&dump)
            .output()
            .expect("run pages-identical");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("OK:"),
            "{codec}: {text}"
        );
        if codec != "-l" {
            std::fs::remove_file(&dump).expect("clean up");
        }
    }
    let direct = dir.join("dump-l");
    let flat = dir.join("flat");
    std::fs::write(
        &flat,
        vmsift_raw(&[
            "-F".as_ref(),
            "-l".as_ref(),
            "-d".as_ref(),
            "31".as_ref(),
            &os(&vmcore),
        ]),
    )
    .expect("write the stream");
    let rebuilt = dir.join("rebuilt");
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .arg("-R")
        .arg(&rebuilt)
        .stdin(std::fs::File::open(&flat).expect("open the stream"))
        .output()
        .expect("run vmsift -R");
    assert!(
        o.status.success(),
        "-R: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    same_file(&direct, &rebuilt, "-F then -R");
    let parts: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("part{i}"))).collect();
    let mut args = vec![
        "--split".into(),
        "-l".into(),
        "-d".into(),
        "31".into(),
        os(&vmcore),
    ];
    args.extend(parts.iter().map(|p| os(p)));
    vmsift_raw(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let joined = dir.join("joined");
    let mut args = vec![std::ffi::OsString::from("--reassemble")];
    args.extend(parts.iter().map(|p| os(p)));
    args.push(os(&joined));
    vmsift_raw(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    same_file(&direct, &joined, "--split then --reassemble");
    let d1 = dir.join("d1");
    vmsift(&["-l", "-d", "1"], &vmcore, &d1);
    let again = dir.join("again");
    vmsift(&["-l", "-d", "31"], &d1, &again);
    same_file(&direct, &again, "-d 1 re-filtered to -d 31");
    let (log_elf, log_dump) = (dir.join("log-elf"), dir.join("log-dump"));
    vmsift(&["--dump-dmesg"], &vmcore, &log_elf);
    vmsift(&["--dump-dmesg"], &direct, &log_dump);
    same_file(
        &log_elf,
        &log_dump,
        "--dump-dmesg of the ELF and of the dump",
    );
    let log = std::fs::read_to_string(&log_elf).expect("read the log");
    assert!(
        log.contains("Linux version"),
        "no banner in the log of {}",
        k.name
    );
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_every_mode_61() {
    every_mode(&DEB61);
}

#[test]
#[ignore = "needs real arm64 vmcores: run tests/run-all"]
fn real_arm64_every_mode_612_nolpa2() {
    every_mode(&NOLPA2_612);
}
