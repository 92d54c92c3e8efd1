//! vmsift on real vmcores of crashed Debian kernels, checked by real readers: libkdumpfile
//! page by page, crash 8.0.2 (6.1), sid's crash 9.0.2 (5.10, 6.12) and drgn (5.10, 6.1,
//! 6.12 and 7.2) against the ELF input, and compared with Debian 12's makedumpfile 1.7.2 and
//! sid's 1.7.8 (`tests/harness/sid-peers` makes the sid root, `tests/harness/sid-run` runs it).
//!
//! The vmcores come from the QEMU harness (`tests/harness/make-vmcore`), the debug vmlinux
//! files from `tests/harness/fetch-vmlinux`; `tests/run-all` prepares both and runs these
//! tests with `--include-ignored`. Under a plain `cargo test` they are listed as ignored.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{Kernel, oracle, require, root, scratch, succeed, vmsift};

const DEB61: Kernel = Kernel {
    name: "deb61",
    kver: "6.1.0-56-amd64",
    options: "",
};
const DEB612: Kernel = Kernel {
    name: "deb612",
    kver: "6.12.117+deb12-amd64",
    options: "",
};
/// Debian 11's kernel (bullseye, 5.10.223): PG_slab, u8 compound_dtor/order in page[1],
/// page types as cleared bits under 0xf0000000.
const DEB510: Kernel = Kernel {
    name: "deb510",
    kver: "5.10.0-32-amd64",
    options: "",
};
/// Debian sid's kernel: `page.compound_info` whose tails all hold the 7.1 mask encoding.
const DEB72: Kernel = Kernel {
    name: "deb72",
    kver: "7.2.13+deb14-amd64",
    options: "",
};
/// 1 GiB guests whose workload's 192 MiB of anonymous memory is in transparent huge pages.
const THP61: Kernel = Kernel {
    name: "thp61",
    kver: "6.1.0-56-amd64",
    options: "--mem 1024 --workload 192 --thp",
};
const THP612: Kernel = Kernel {
    name: "thp612",
    kver: "6.12.117+deb12-amd64",
    options: "--mem 1024 --workload 192 --thp",
};
/// 4-level paging (QEMU -cpu qemu64); the others have 5-level paging (-cpu max).
const L4_612: Kernel = Kernel {
    name: "deb612-l4",
    kver: "6.12.117+deb12-amd64",
    options: "--cpu qemu64",
};
const L4_72: Kernel = Kernel {
    name: "deb72-l4",
    kver: "7.2.13+deb14-amd64",
    options: "--cpu qemu64",
};
/// "Rich" 1 GiB guests (`make-vmcore --rich`): besides the THP workload, hugetlb folios under
/// the vmemmap optimisation (6.12's fake heads, 7.2's tail masks), hwpoison, balloon pages,
/// two NUMA nodes and block-device page cache with buffer heads.
const RICH612: Kernel = Kernel {
    name: "rich612",
    kver: "6.12.117+deb12-amd64",
    options: "--mem 1024 --workload 192 --thp --rich",
};
const RICH72: Kernel = Kernel {
    name: "rich72",
    kver: "7.2.13+deb14-amd64",
    options: "--mem 1024 --workload 192 --thp --rich",
};

/// `vmsift -F args vmcore > out`.
fn vmsift_flat(args: &[&str], vmcore: &Path, out: &Path) {
    let file = std::fs::File::create(out).expect("create flat file");
    succeed(
        Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .arg("-F")
            .args(args)
            .arg(vmcore)
            .stdout(file),
        "vmsift -F",
    );
}

/// `makedumpfile args vmcore out` (Debian's 1.7.2, the peer we compare with).
fn makedumpfile(args: &[&str], vmcore: &Path, out: &Path) {
    succeed(
        Command::new("makedumpfile").args(args).arg(vmcore).arg(out),
        &format!("makedumpfile {args:?} (Debian package makedumpfile)"),
    );
}

/// A tool of the Debian sid root that `tests/harness/sid-peers` makes (makedumpfile 1.7.8,
/// crash 9.0.2, python3 with libkdumpfile 0.5.5), run through `tests/harness/sid-run`.
fn sid(tool: &str) -> Command {
    require(
        root().join("target/cache/sid/.complete"),
        "run tests/harness/sid-peers (or tests/run-all)",
    );
    let mut c = Command::new(root().join("tests/harness/sid-run"));
    c.arg(tool);
    c
}

/// `makedumpfile args vmcore out` with sid's makedumpfile 1.7.8.
fn makedumpfile_178(args: &[&str], vmcore: &Path, out: &Path) {
    succeed(
        sid("makedumpfile").args(args).arg(vmcore).arg(out),
        &format!("makedumpfile 1.7.8 {args:?}"),
    );
}

/// crash in batch mode on `dump` with `commands`; returns what it printed on stdout.
fn crash(options: &[&str], vmlinux: &Path, dump: &Path, commands: &str) -> String {
    let mut child = Command::new("crash")
        .args(["-s", "--no_crashrc", "--no_scroll"])
        .args(options)
        .arg(vmlinux)
        .arg(dump)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run crash");
    let script = format!("{commands}\nquit\n");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), script.as_bytes())
        .expect("talk to crash");
    let out = child.wait_with_output().expect("crash");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a checker (a path under tests/) and asserts it reports a match (exit 0).
fn check(script: &str, args: &[&Path]) {
    check_with(script, &[], args)
}

fn check_with(script: &str, options: &[&str], args: &[&Path]) {
    let o = Command::new(root().join("tests").join(script))
        .args(options)
        .args(args)
        .output()
        .expect("run checker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    println!("{script}: {}", text.trim_end());
    assert!(
        o.status.success(),
        "{script} {args:?} found a difference:\n{text}"
    );
}

fn every_codec_reads_back(k: &Kernel) {
    let vmcore = k.vmcore();
    let dir = scratch(&format!("{}-codecs", k.name));
    for codec in ["-l", "-c", "-p", "-z"] {
        let out = dir.join(format!("dump{codec}"));
        vmsift(&[codec, "-d", "1"], &vmcore, &out);
        check("readers/pages-identical", &[&vmcore, &out]);
        std::fs::remove_file(&out).expect("clean up");
    }
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb61_every_codec_reads_back_identical() {
    every_codec_reads_back(&DEB61);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb612_every_codec_reads_back_identical() {
    every_codec_reads_back(&DEB612);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb510_every_codec_reads_back_identical() {
    every_codec_reads_back(&DEB510);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb72_every_codec_reads_back_identical() {
    every_codec_reads_back(&DEB72);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb61_crash_sees_the_same_kernel() {
    let k = DEB61;
    let vmcore = k.vmcore();
    let dir = scratch("deb61-crash");
    let lzo = dir.join("dump-l");
    let zlib = dir.join("dump-c");
    let flat = dir.join("dump-l.flat");
    vmsift(&["-l", "-d", "1"], &vmcore, &lzo);
    vmsift(&["-c", "-d", "1"], &vmcore, &zlib);
    vmsift_flat(&["-l", "-d", "1"], &vmcore, &flat);
    check(
        "readers/crash-same",
        &[&k.vmlinux(), &vmcore, &lzo, &zlib, &flat],
    );
}

fn drgn_sees_the_same_kernel(k: &Kernel) {
    let vmcore = k.vmcore();
    let dir = scratch(&format!("{}-drgn", k.name));
    let zstd = dir.join("dump-z");
    let lzo = dir.join("dump-l");
    vmsift(&["-z", "-d", "1"], &vmcore, &zstd);
    vmsift(&["-l", "-d", "1"], &vmcore, &lzo);
    check("readers/drgn-same", &[&k.vmlinux(), &vmcore, &zstd, &lzo]);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb612_drgn_sees_the_same_kernel() {
    drgn_sees_the_same_kernel(&DEB612);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb61_drgn_sees_the_same_kernel() {
    drgn_sees_the_same_kernel(&DEB61);
}

/// `vmsift -F | vmsift -R` gives the very file a direct write gives, on a real vmcore.
fn flat_rebuild_is_identical(k: &Kernel) {
    let vmcore = k.vmcore();
    let dir = scratch(&format!("{}-flat", k.name));
    let direct = dir.join("direct");
    let flat = dir.join("dump.flat");
    let rebuilt = dir.join("rebuilt");
    vmsift(&["-c", "-d", "1"], &vmcore, &direct);
    vmsift_flat(&["-c", "-d", "1"], &vmcore, &flat);
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .arg("-R")
        .arg(&rebuilt)
        .stdin(std::fs::File::open(&flat).expect("open flat"))
        .output()
        .expect("run vmsift -R");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (
        std::fs::read(&direct).expect("read direct"),
        std::fs::read(&rebuilt).expect("read rebuilt"),
    );
    assert!(a == b, "{}: -F | -R differs from the direct write", k.name);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb61_flat_rebuild_is_identical() {
    flat_rebuild_is_identical(&DEB61);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb612_flat_rebuild_is_identical() {
    flat_rebuild_is_identical(&DEB612);
}

/// crash on a `-d 31` dump of 6.1 prints what it prints on the ELF, with no excluded page.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb61_level31_crash_sees_the_same_kernel() {
    for k in [&DEB61, &THP61] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-31-crash", k.name));
        let dump = dir.join("dump-l31");
        vmsift(&["-l", "-d", "31"], &vmcore, &dump);
        let cmds = ["sys", "log", "bt -a", "ps", "kmem -i"];
        let options: Vec<&str> = cmds.iter().flat_map(|c| ["--cmd", c]).collect();
        check_with(
            "readers/crash-same",
            &options,
            &[&k.vmlinux(), &vmcore, &dump],
        );
    }
}

/// drgn on `-d 31` dumps: release, dmesg, tasks, every thread's stack, vm_zone_stat; and
/// libkdumpfile 0.5.1 and 0.5.5 read every kept page identical.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn level31_drgn_sees_the_same_kernel() {
    for k in [
        &DEB61, &DEB612, &THP61, &THP612, &L4_612, &DEB510, &DEB72, &L4_72, &RICH612, &RICH72,
    ] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-31-drgn", k.name));
        let dump = dir.join("dump-z31");
        vmsift(&["-z", "-d", "31"], &vmcore, &dump);
        check("readers/drgn-same", &[&k.vmlinux(), &vmcore, &dump]);
        check_with(
            "readers/pages-identical",
            &["--allow-excluded"],
            &[&vmcore, &dump],
        );
        // libkdumpfile 0.5.5 (sid) as well as Debian 12's 0.5.1.
        let o = sid("python3")
            .arg(root().join("tests/readers/pages-identical"))
            .arg("--allow-excluded")
            .arg(&vmcore)
            .arg(&dump)
            .output()
            .expect("run pages-identical with sid's python3");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("OK:"),
            "{}: libkdumpfile 0.5.5: {text}{}",
            k.name,
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Where makedumpfile 1.7.2 classifies correctly (6.1), our `-d 31 -l` dump is within 1%
/// of its size.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb61_level31_size_matches_makedumpfile() {
    for k in [&DEB61, &THP61] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-31-size", k.name));
        let ours = dir.join("vmsift");
        let theirs = dir.join("makedumpfile");
        vmsift(&["-l", "-d", "31"], &vmcore, &ours);
        makedumpfile(&["-l", "-d", "31"], &vmcore, &theirs);
        // The header's utsname is init_uts_ns, as makedumpfile writes it.
        let head = |p: &Path| std::fs::read(p).expect("read dump")[12..402].to_vec();
        assert!(head(&ours) == head(&theirs), "{}: utsname differs", k.name);
        let a = std::fs::metadata(&ours).expect("ours").len() as f64;
        let b = std::fs::metadata(&theirs).expect("theirs").len() as f64;
        println!("{}: vmsift {a} bytes, makedumpfile {b} bytes", k.name);
        assert!((a - b).abs() / b <= 0.01, "{}: {a} vs {b} bytes", k.name);
    }
}

/// Acceptance of the newer peer: on 5.10, 6.1 and 6.12 (where makedumpfile 1.7.8 classifies
/// correctly) our `-l -d 31` dump is within 1% of the size of sid's makedumpfile 1.7.8's,
/// with the same utsname in the header.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn level31_size_matches_makedumpfile_178() {
    for k in [&DEB510, &DEB61, &DEB612, &THP61, &THP612] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-31-size-178", k.name));
        let ours = dir.join("vmsift");
        let theirs = dir.join("makedumpfile");
        vmsift(&["-l", "-d", "31"], &vmcore, &ours);
        makedumpfile_178(&["-l", "-d", "31"], &vmcore, &theirs);
        let head = |p: &Path| std::fs::read(p).expect("read dump")[12..402].to_vec();
        assert!(head(&ours) == head(&theirs), "{}: utsname differs", k.name);
        let a = std::fs::metadata(&ours).expect("ours").len() as f64;
        let b = std::fs::metadata(&theirs).expect("theirs").len() as f64;
        println!("{}: vmsift {a} bytes, makedumpfile 1.7.8 {b} bytes", k.name);
        assert!((a - b).abs() / b <= 0.01, "{}: {a} vs {b} bytes", k.name);
    }
}

/// crash 9.0.2 (sid), which reads 6.12 where Debian 12's 8.0.2 cannot, prints the same
/// `sys`, `log`, `bt -a`, `ps` and `kmem -i` for our `-d 31` dump (kdump file, lzo) as for
/// the ELF, with no excluded page read, on 6.12 and 5.10.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn crash_902_sees_the_same_kernel_in_level31_dumps() {
    let crash = root().join("tests/harness/sid-crash");
    let crash = crash.to_str().expect("utf-8 path");
    sid("crash");
    for k in [&DEB612, &DEB510] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-31-crash902", k.name));
        let dump = dir.join("dump-l31");
        vmsift(&["-l", "-d", "31"], &vmcore, &dump);
        let mut options = vec!["--crash", crash];
        for c in ["sys", "log", "bt -a", "ps", "kmem -i"] {
            options.extend(["--cmd", c]);
        }
        check_with(
            "readers/crash-same",
            &options,
            &[&k.vmlinux(), &vmcore, &dump],
        );
    }
}

/// Our exclusion at `level` against the oracle: no page wrongly excluded, at most 0.1% of
/// the excludable pages kept.
fn filter_matches_oracle(k: &Kernel, levels: &[u8]) {
    let vmcore = k.vmcore();
    let oracle = oracle(k);
    let dir = scratch(&format!("{}-oracle", k.name));
    for level in levels {
        let dump = dir.join(format!("dump-d{level}"));
        vmsift(&["-l", "-d", &level.to_string()], &vmcore, &dump);
        check("oracle/check-dump", &[&oracle, &dump]);
        std::fs::remove_file(&dump).expect("clean up");
    }
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb61_filter_matches_the_debug_info_oracle() {
    filter_matches_oracle(&DEB61, &[31, 2, 4, 8, 16]);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb612_filter_matches_the_debug_info_oracle() {
    filter_matches_oracle(&DEB612, &[31, 2, 4, 8, 16]);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb510_filter_matches_the_debug_info_oracle() {
    filter_matches_oracle(&DEB510, &[31, 2, 4, 8, 16]);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb72_filter_matches_the_debug_info_oracle() {
    filter_matches_oracle(&DEB72, &[31, 2, 4, 8, 16]);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn deb72_4level_filter_matches_the_debug_info_oracle() {
    filter_matches_oracle(&L4_72, &[31, 2, 4, 8, 16]);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn rich612_filter_matches_the_debug_info_oracle() {
    filter_matches_oracle(&RICH612, &[31, 2, 4, 8, 16]);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn rich72_filter_matches_the_debug_info_oracle() {
    filter_matches_oracle(&RICH72, &[31, 2, 4, 8, 16]);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn thp_filter_matches_the_debug_info_oracle() {
    filter_matches_oracle(&THP61, &[31]);
    filter_matches_oracle(&THP612, &[31]);
    filter_matches_oracle(&L4_612, &[31]);
}

/// Threads change the speed, never the bytes: 1 and 2 threads give the same file.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn thread_count_does_not_change_the_dump() {
    let k = THP612;
    let vmcore = k.vmcore();
    let dir = scratch("threads");
    let one = dir.join("one");
    let two = dir.join("two");
    vmsift(&["-c", "-d", "31", "--num-threads", "1"], &vmcore, &one);
    vmsift(&["-c", "-d", "31", "--num-threads", "2"], &vmcore, &two);
    let (a, b) = (
        std::fs::read(&one).expect("read"),
        std::fs::read(&two).expect("read"),
    );
    assert!(a == b, "--num-threads 2 wrote a different dump than 1");
}

/// `--dump-dmesg` on the ELF and on our own `-d 31` dump (kdump file and flattened stream)
/// prints exactly what makedumpfile 1.7.8 (sid) prints for the ELF: every kernel here exports
/// the caller id, so every line has the caller column.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn dump_dmesg_matches_makedumpfile() {
    for k in [
        &DEB510, &DEB61, &DEB612, &DEB72, &THP61, &THP612, &L4_612, &L4_72, &RICH612, &RICH72,
    ] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-dmesg", k.name));
        let theirs = dir.join("makedumpfile.txt");
        makedumpfile_178(&["--dump-dmesg"], &vmcore, &theirs);
        let want = std::fs::read(&theirs).expect("read");
        assert!(want.len() > 10_000, "{}: a real log", k.name);
        assert!(
            want.starts_with(b"[    0.000000] [      T0] Linux version "),
            "{}: the caller column",
            k.name
        );

        let ours = dir.join("vmsift.txt");
        let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .arg("--dump-dmesg")
            .arg(&vmcore)
            .arg(&ours)
            .output()
            .expect("run vmsift");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            std::fs::read(&ours).expect("read") == want,
            "{}: ELF log differs",
            k.name
        );

        let dump = dir.join("dump-d31");
        vmsift(&["-l", "-d", "31"], &vmcore, &dump);
        let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .args(["-F", "--dump-dmesg"])
            .arg(&dump)
            .output()
            .expect("run vmsift");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            o.stdout == want,
            "{}: log from our -d 31 dump differs",
            k.name
        );
        // ... and from the same dump as a flattened stream, as RHEL's tests run it.
        let flat = dir.join("dump-d31.flat");
        vmsift_flat(&["-l", "-d", "31"], &vmcore, &flat);
        let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .args(["-F", "--dump-dmesg"])
            .arg(&flat)
            .output()
            .expect("run vmsift");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            o.stdout == want,
            "{}: log from the flattened dump differs",
            k.name
        );
    }
}

/// `--dump-dmesg` on synthetic lockless rings, with and without the caller id exported
/// (kernels before 5.10 built without CONFIG_PRINTK_CALLER), is makedumpfile 1.7.8's output
/// byte for byte: continuation lines, a wrapped record, an unprintable byte.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn synthetic_dump_dmesg_matches_makedumpfile_178() {
    use vmsift::synth::{Flavor, LogRecord, PAGE_OFFSET, SynthKernel, SynthVmcore};
    let records = [
        LogRecord {
            ts_nsec: 0,
            caller_id: 0,
            text: b"Linux version 6.12.0-synthetic",
        },
        LogRecord {
            ts_nsec: 1_234_567_891,
            caller_id: 0x8000_0003,
            text: b"two\nlines\tand a tab",
        },
        LogRecord {
            ts_nsec: 98_765_432_100_000,
            caller_id: 1_234_567_890,
            text: b"long caller \x01\x7f\xe2\x80",
        },
        LogRecord {
            ts_nsec: 99_000_000_000_000,
            caller_id: 4321,
            text: b"wrapped record\nat the ring's start",
        },
    ];
    let dir = scratch("synthetic-dmesg");
    for caller_id in [false, true] {
        let mut k = SynthKernel::new(Flavor::Linux6_12, 1024);
        // makedumpfile checks OSRELEASE against init_uts_ns (name at offset 0 here).
        let uts = (k.first_free_pfn * 4096) as usize;
        k.first_free_pfn += 1;
        let release = b"6.12.0-synthetic";
        k.mem[uts..uts + 5].copy_from_slice(b"Linux");
        k.mem[uts + 130..uts + 130 + release.len()].copy_from_slice(release);
        let lines = k.printk_ring(&records, caller_id);
        let info = format!(
            "{}SYMBOL(init_uts_ns)={:x}\nOFFSET(uts_namespace.name)=0\n{lines}",
            k.vmcoreinfo()
                .replace("OSRELEASE=synthetic", "OSRELEASE=6.12.0-synthetic"),
            PAGE_OFFSET + uts as u64
        );
        let mut elf = SynthVmcore::new()
            .prstatus(1)
            .vmcoreinfo(&info)
            .load(0, k.mem.clone(), 0);
        elf.loads[0].virt_start = PAGE_OFFSET;
        let vmcore = dir.join(format!("caller-{caller_id}.elf"));
        std::fs::write(&vmcore, elf.to_bytes()).expect("write vmcore");
        let theirs = dir.join(format!("caller-{caller_id}.makedumpfile.txt"));
        makedumpfile_178(&["--dump-dmesg"], &vmcore, &theirs);
        let ours = dir.join(format!("caller-{caller_id}.vmsift.txt"));
        vmsift(&["--dump-dmesg"], &vmcore, &ours);
        let want = std::fs::read_to_string(&theirs).expect("read");
        assert_eq!(
            want.lines().count(),
            6,
            "makedumpfile read the ring: {want}"
        );
        assert_eq!(
            std::fs::read_to_string(&ours).expect("read"),
            want,
            "caller id exported: {caller_id}"
        );
    }
}

/// Re-filtering: a `-d 1` dump (kdump file, or flattened stream) written again at
/// `-d 31` is the `-d 31` dump of the vmcore, byte for byte; another codec reads back the
/// same pages.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn refiltering_a_dump_gives_the_direct_dump() {
    for k in [&DEB61, &DEB612] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-refilter", k.name));
        let (first, flat, direct) = (dir.join("d1"), dir.join("d1.flat"), dir.join("d31"));
        vmsift(&["-c", "-d", "1"], &vmcore, &first);
        vmsift_flat(&["-l", "-d", "1"], &vmcore, &flat);
        vmsift(&["-l", "-d", "31"], &vmcore, &direct);
        let want = std::fs::read(&direct).expect("direct");
        for input in [&first, &flat] {
            let again = dir.join("again");
            let _ = std::fs::remove_file(&again);
            vmsift(&["-l", "-d", "31"], input, &again);
            let same = std::fs::read(&again).expect("again") == want;
            assert!(same, "{}: re-filtering {} differs", k.name, input.display());
        }
        let zstd = dir.join("d1-zstd");
        vmsift(&["-z", "-d", "1"], &first, &zstd);
        check("readers/pages-identical", &[&vmcore, &zstd]);
    }
}

/// `-E`: byte for byte makedumpfile 1.7.2's ELF file where both keep the same pages (6.1 at
/// -d 1 and -d 31; at -d 0 1.7.2 drops a partial page we keep), and crash (6.1) and drgn
/// (6.12) read it as they read the vmcore.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn elf_output_matches_makedumpfile_and_reads_the_same() {
    let k = DEB61;
    let vmcore = k.vmcore();
    let dir = scratch("deb61-elf");
    for level in ["1", "31"] {
        let ours = dir.join(format!("vmsift-E{level}"));
        let theirs = dir.join(format!("makedumpfile-E{level}"));
        vmsift(&["-E", "-d", level], &vmcore, &ours);
        makedumpfile(&["-E", "-d", level], &vmcore, &theirs);
        let same = std::fs::read(&ours).expect("ours") == std::fs::read(&theirs).expect("theirs");
        assert!(same, "-E -d {level}: not makedumpfile's file");
        std::fs::remove_file(&theirs).expect("clean up");
    }
    let cmds = ["sys", "log", "bt -a", "ps", "kmem -i"];
    let options: Vec<&str> = cmds.iter().flat_map(|c| ["--cmd", c]).collect();
    let ours = dir.join("vmsift-E31");
    check_with(
        "readers/crash-same",
        &options,
        &[&k.vmlinux(), &vmcore, &ours],
    );

    let k = DEB612;
    let vmcore = k.vmcore();
    let dump = dir.join("vmsift-612-E31");
    vmsift(&["-E", "-d", "31"], &vmcore, &dump);
    check("readers/drgn-same", &[&k.vmlinux(), &vmcore, &dump]);
}

/// Under a 64 MiB address-space limit (`ulimit -v`), one thread dumps the 1 GiB THP
/// vmcore completely, and libkdumpfile reads it back. (The 6 GiB vmcore of the benchmarks
/// does the same inside a 64 MiB memory cgroup: see the README.)
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn dumps_within_a_64_mib_address_space() {
    let k = THP61;
    let vmcore = k.vmcore();
    let dir = scratch("ulimit");
    let dump = dir.join("dump");
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 65536 && exec \"$0\" -l -d 31 --num-threads 1 \"$1\" \"$2\"")
        .arg(env!("CARGO_BIN_EXE_vmsift"))
        .arg(&vmcore)
        .arg(&dump)
        .output()
        .expect("sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_with(
        "readers/pages-identical",
        &["--allow-excluded"],
        &[&vmcore, &dump],
    );
}

/// `--split`: three files written in parallel; crash reads the set as it reads the vmcore,
/// and `--reassemble` gives the direct dump byte for byte (6.1 for crash, 6.12 too).
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn split_sets_read_the_same_and_reassemble_exactly() {
    for k in [&DEB61, &DEB612] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-split", k.name));
        let direct = dir.join("direct");
        vmsift(&["-l", "-d", "31"], &vmcore, &direct);
        let parts: Vec<PathBuf> = (1..=3).map(|i| dir.join(format!("part{i}"))).collect();
        let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .args(["--split", "-l", "-d", "31"])
            .arg(&vmcore)
            .args(&parts)
            .output()
            .expect("run vmsift --split");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let joined = dir.join("joined");
        let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .arg("--reassemble")
            .args(&parts)
            .arg(&joined)
            .output()
            .expect("run vmsift --reassemble");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let same =
            std::fs::read(&joined).expect("joined") == std::fs::read(&direct).expect("direct");
        assert!(
            same,
            "{}: the reassembled file differs from the direct dump",
            k.name
        );
        if k.name == "deb61" {
            let set: Vec<String> = parts.iter().map(|p| p.display().to_string()).collect();
            let set = PathBuf::from(set.join(","));
            check("readers/crash-same", &[&k.vmlinux(), &vmcore, &set]);
        }
    }
}

/// `--mem-usage` on the vmcores themselves: the class counts are those of the `-d 31` dump
/// (`--show-stats`), and each codec's estimate is within 25% of the real dump's size.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn mem_usage_counts_and_estimates_match_real_dumps() {
    for k in [&DEB61, &DEB612, &THP61] {
        let vmcore = k.vmcore();
        let dir = scratch(&format!("{}-usage", k.name));
        let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .arg("--mem-usage")
            .arg(&vmcore)
            .output()
            .expect("run vmsift --mem-usage");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let table = String::from_utf8_lossy(&o.stdout).into_owned();
        println!("{}:{table}", k.name);
        let row = |name: &str| -> u64 {
            table
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} row in:\n{table}"))
        };
        // The same counts as the -d 31 dump's report.
        let dump = dir.join("dump");
        let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .args(["-l", "-d", "31", "--show-stats"])
            .arg(&vmcore)
            .arg(&dump)
            .output()
            .expect("run vmsift");
        let stats = String::from_utf8_lossy(&o.stderr).into_owned();
        let stat = |label: &str| -> u64 {
            stats
                .lines()
                .find(|l| l.trim_start().starts_with(label))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok())
                .unwrap_or_else(|| panic!("no {label} in:\n{stats}"))
        };
        assert_eq!(row("ZERO"), stat("Pages filled with zero"), "{}", k.name);
        assert_eq!(row("USER"), stat("User process data pages"), "{}", k.name);
        assert_eq!(row("FREE"), stat("Free pages"), "{}", k.name);
        assert_eq!(
            row("NON_PRI_CACHE"),
            stat("Non-private cache pages"),
            "{}",
            k.name
        );
        // Each estimate against a real dump with that codec.
        for (flag, name) in [
            ("-l", "lzo"),
            ("-c", "zlib"),
            ("-p", "snappy"),
            ("-z", "zstd"),
        ] {
            let est: f64 = table
                .lines()
                .find(|l| l.starts_with(flag) && l.contains(name))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} estimate in:\n{table}"));
            let out = dir.join(format!("dump{flag}"));
            vmsift(&[flag, "-d", "31"], &vmcore, &out);
            let real = std::fs::metadata(&out).expect("dump").len() as f64;
            println!("{}: {name} estimate {est} bytes, real {real}", k.name);
            assert!(
                (est - real).abs() / real <= 0.25,
                "{}: {name} {est} vs {real}",
                k.name
            );
        }
    }
}

/// crash reads the whole log the way dmesg does: `--dump-dmesg` has the same lines as
/// crash's `log` on the 6.1 vmcore (crash 8.0.2 cannot read 6.12).
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn dump_dmesg_has_the_lines_of_crashs_log() {
    let k = DEB61;
    let vmcore = k.vmcore();
    let dir = scratch("deb61-crash-log");
    let ours = dir.join("dmesg.txt");
    vmsift(&["--dump-dmesg"], &vmcore, &ours);
    let crash = crash(&[], &k.vmlinux(), &vmcore, "log");
    let text = std::fs::read_to_string(&ours).expect("our log");
    // crash 8.0.2's `log` has no caller column (crash 9's `log -c` prints a narrower one):
    // ours is compared without it, and without the indentation of continuation lines that
    // follows from its width.
    let lines = |s: &str, caller: bool| -> Vec<String> {
        s.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("WARNING:"))
            .map(|l| {
                let column = l.get(15..).and_then(|r| r.strip_prefix('['));
                match column.and_then(|r| r.split_once("] ")) {
                    Some((_, text)) if caller && l.starts_with('[') => {
                        format!("{}{text}", &l[..15])
                    }
                    _ => l.trim_start().to_string(),
                }
            })
            .collect()
    };
    let (a, b) = (lines(&text, true), lines(&crash, false));
    assert!(a.len() > 100, "a real log");
    let first = a.iter().zip(&b).position(|(x, y)| x != y);
    assert!(
        a.len() == b.len() && first.is_none(),
        "our --dump-dmesg and crash's log differ ({} and {} lines), first at {first:?}: {:?}",
        a.len(),
        b.len(),
        first.map(|i| (&a[i], &b[i]))
    );
}

/// `-L`: the dump stops at the limit; libkdumpfile reads every page that was written and
/// finds the rest lost, and crash (with --zero_excluded) opens it when the kernel's own
/// data made it in.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn size_limited_dump_is_a_readable_incomplete_dump() {
    let k = DEB61;
    let vmcore = k.vmcore();
    let dir = scratch("deb61-limit");
    // 99% of the full dump's size: the last pages (the highest pfns) do not fit.
    let full = dir.join("full");
    vmsift(&["-l", "-d", "31"], &vmcore, &full);
    let limit = std::fs::metadata(&full).expect("full").len() / 100 * 99;
    let dump = dir.join("dump");
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(["-l", "-d", "31", "-L", &limit.to_string()])
        .arg(&vmcore)
        .arg(&dump)
        .output()
        .expect("run vmsift");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    let (lost, of): (u64, u64) = err
        .split(" of its ")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .zip(
            err.split(" of its ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .and_then(|n| n.parse().ok()),
        )
        .unwrap_or_else(|| panic!("no lost-page count in: {err}"));
    assert!(lost > 0 && lost * 10 < of, "{lost} of {of} lost");
    assert!(std::fs::metadata(&dump).expect("dump").len() <= limit);
    check_with(
        "readers/pages-identical",
        &["--allow-excluded", "--lost", &lost.to_string()],
        &[&vmcore, &dump],
    );
    let text = crash(&["--zero_excluded"], &k.vmlinux(), &dump, "sys\nbt");
    assert!(text.contains("[INCOMPLETE]"), "{text}");
    assert!(text.contains("RELEASE: 6.1.0-56-amd64"), "{text}");
    assert!(text.contains("machine_kexec"), "{text}");
}

/// The pfns with a page in `dump` (both bitmaps set), and its header status.
fn dumped_pfns(dump: &Path) -> (vmsift::filter::Bitmap, u32) {
    let f = vmsift::input::kdump::KdumpFile::open(std::fs::File::open(dump).expect("open"))
        .expect("parse dump");
    let mut b = vmsift::filter::Bitmap::new(0, f.header.max_mapnr);
    f.mark_dumpable(&mut b).expect("bitmaps");
    (b, f.header.status)
}

/// `-e -l -d 31` against `-l -d 31`: the dumps differ by exactly the physical pages of the
/// vmemmap whose every struct page describes a pfn the plain dump leaves out (counted here
/// page by page from a translation of the whole struct page array), every page the `-e`
/// dump keeps still has its struct page in it, and its header says so.
fn exclude_vmemmap_keeps_what_crash_needs(k: &Kernel) -> (u64, u64, u64) {
    use std::collections::BTreeMap;
    use vmsift::arch::{Arch, KernelMemory, Machine};
    use vmsift::kernel::memmap::MemMap;
    let vmcore = k.vmcore();
    let dir = scratch(&format!("{}-vmemmap", k.name));
    let (plain, with_e) = (dir.join("dump-l31"), dir.join("dump-e-l31"));
    vmsift(&["-l", "-d", "31"], &vmcore, &plain);
    vmsift(&["-e", "-l", "-d", "31"], &vmcore, &with_e);
    let ((kept, plain_status), (kept_e, status)) = (dumped_pfns(&plain), dumped_pfns(&with_e));
    assert_eq!(plain_status & 0x10, 0);
    assert_eq!(status & 0x10, 0x10, "{}: DUMP_DH_EXCLUDED_VMEMMAP", k.name);

    let vm = vmsift::input::Vmcore::open(&vmcore, true).expect("open vmcore");
    let (machine, endian) = (vm.elf.machine, vm.elf.endian);
    let arch = Arch::new(machine, endian, &vm.info, 4096).expect("translation");
    let memory = Box::new(vm.memory.duplicate().expect("reader"));
    let mut km = KernelMemory::new(memory, arch, endian);
    let machine = Machine::from_e_machine(machine).expect("a known machine");
    let map = MemMap::discover(&mut km, machine, &vm.info, 4096, vm.max_mapnr()).expect("mem_map");
    let size = map.page_struct_size;
    let page_va = |pfn: u64| map.page_va(&map.sections[0], pfn);
    // Backing pfn -> whether every vmemmap page on it describes only left-out pfns.
    let mut unused: BTreeMap<u64, bool> = BTreeMap::new();
    for i in 0..(vm.max_mapnr() * size).div_ceil(4096) {
        let Some(pa) = km.translate(page_va(0) + i * 4096) else {
            continue;
        };
        let (p0, p1) = (i * 4096 / size, ((i + 1) * 4096).div_ceil(size));
        let all_out = (p0..p1).all(|p| !kept.get(p));
        *unused.entry(pa / 4096).or_insert(true) &= all_out;
    }
    let want: Vec<u64> = unused
        .into_iter()
        .filter(|&(q, all_out)| all_out && kept.get(q))
        .map(|(q, _)| q)
        .collect();
    let gone: Vec<u64> = kept.iter_set().filter(|&p| !kept_e.get(p)).collect();
    assert!(kept_e.iter_set().all(|p| kept.get(p)), "{}", k.name);
    assert_eq!(gone, want, "{}", k.name);
    // Every kept page's struct page is in the -e dump.
    for p in kept_e.iter_set() {
        for va in [page_va(p), page_va(p) + size - 1] {
            if let Some(pa) = km.translate(va) {
                assert!(
                    kept_e.get(pa / 4096),
                    "{}: struct page of pfn {p:#x}",
                    k.name
                );
            }
        }
    }
    let len = |p: &Path| std::fs::metadata(p).expect("dump").len();
    (len(&plain), len(&with_e), gone.len() as u64)
}

/// crash's view of a dump with the lines an `-e` dump legitimately adds taken out: the
/// warning that struct pages of excluded pages may be missing and the DUMPFILE suffix,
/// and `kmem -i`'s SHARED line (shared pages are counted from every struct page).
fn crash_view(k: &Kernel, dump: &Path) -> String {
    let out = crash(&[], &k.vmlinux(), dump, "sys\nlog\nbt -a\nps\nkmem -i");
    let mut lines = Vec::new();
    let mut warning = false;
    for line in out.lines() {
        if line.starts_with("WARNING: ") && line.ends_with(':') {
            warning = true;
            continue;
        }
        if warning && line.starts_with("         ") {
            continue;
        }
        warning = false;
        if line.trim_start().starts_with("SHARED") {
            continue;
        }
        lines.push(
            line.replace(" [EXCLUDED VMEMMAP]", "")
                .replace(dump.to_str().unwrap_or(""), "<dump>"),
        );
    }
    lines.join("\n").trim_start().to_string()
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn exclude_vmemmap_leaves_out_only_unused_struct_pages() {
    for k in [
        &DEB61, &DEB612, &DEB510, &DEB72, &THP61, &L4_72, &RICH612, &RICH72,
    ] {
        let (plain, with_e, gone) = exclude_vmemmap_keeps_what_crash_needs(k);
        println!(
            "{}: -l -d 31 {plain} bytes, with -e {with_e} bytes, {gone} vmemmap pages left out",
            k.name
        );
        assert!(gone > 0 && with_e < plain, "{}", k.name);
    }
    // crash (8.0.2, 6.1) reads the -e dump as it reads the plain one.
    let dir = scratch("deb61-vmemmap");
    let vmcore = DEB61.vmcore();
    let (plain, with_e) = (dir.join("plain"), dir.join("with-e"));
    vmsift(&["-l", "-d", "31"], &vmcore, &plain);
    vmsift(&["-e", "-l", "-d", "31"], &vmcore, &with_e);
    let (a, b) = (crash_view(&DEB61, &plain), crash_view(&DEB61, &with_e));
    assert!(
        a.contains("TOTAL MEM") && a.contains("Linux version"),
        "{a}"
    );
    let differ: Vec<(&str, &str)> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect();
    assert!(
        differ.is_empty() && a.lines().count() == b.lines().count(),
        "{differ:?}"
    );
    // drgn too, and libkdumpfile reads every kept page as the ELF has it.
    check("readers/drgn-same", &[&DEB61.vmlinux(), &vmcore, &with_e]);
    check_with(
        "readers/pages-identical",
        &["--allow-excluded"],
        &[&vmcore, &with_e],
    );
}
