//! The `vmsift` binary on synthetic vmcores: every page comes back, the flattened path
//! rebuilds the same file, and bad input ends with exit status 1 and one clear line.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vmsift::input::PhysPages;
use vmsift::input::kdump::{KdumpFile, Page};
use vmsift::synth::{Fill, MINIMAL_VMCOREINFO, SynthVmcore, mixed_pages, page};

const PS: usize = 4096;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmsift"))
}

/// A fresh directory under target/ for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Two RAM ranges with a hole, a segment that starts and ends mid-page, and a segment whose
/// p_memsz is larger than its p_filesz.
fn synthetic() -> SynthVmcore {
    SynthVmcore::new()
        .prstatus(3)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0x1000, mixed_pages(1, 40, PS), 40 * PS as u64)
        .load(
            0x40000 + 0x400,
            mixed_pages(100, 6, PS)[..6 * PS - 0x800].to_vec(),
            0,
        )
        .load(0x100000, mixed_pages(200, 20, PS), 30 * PS as u64)
}

/// The byte at physical address `pa` according to the ELF (0 where it has none).
fn elf_page(s: &SynthVmcore, pfn: u64) -> Option<Vec<u8>> {
    let start = pfn * PS as u64;
    let mut out = vec![0u8; PS];
    let mut any = false;
    for l in &s.loads {
        let lo = l.phys_start.max(start);
        let hi = (l.phys_start + l.mem_size).min(start + PS as u64);
        if lo >= hi {
            continue;
        }
        any = true;
        let file_hi = (l.phys_start + l.data.len() as u64).min(hi);
        if lo < file_hi {
            let src = &l.data[(lo - l.phys_start) as usize..(file_hi - l.phys_start) as usize];
            out[(lo - start) as usize..(file_hi - start) as usize].copy_from_slice(src);
        }
    }
    any.then_some(out)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run vmsift")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_page_comes_back_with_every_codec() {
    let dir = scratch("codecs");
    let s = synthetic();
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, s.to_bytes()).expect("write vmcore");
    for (flag, bit) in [("", 0), ("-c", 1), ("-l", 2), ("-p", 4), ("-z", 0x20)] {
        for level in ["0", "1"] {
            let out = dir.join(format!("dump{flag}-{level}"));
            let mut cmd = bin();
            if !flag.is_empty() {
                cmd.arg(flag);
            }
            let o = run(cmd.args(["-d", level]).arg(&vmcore).arg(&out));
            assert!(o.status.success(), "{flag} -d {level}: {}", stderr(&o));
            let dump =
                KdumpFile::open(fs::File::open(&out).expect("open dump")).expect("parse dump");
            let h = &dump.header;
            assert_eq!((h.version, h.nr_cpus, h.status), (6, 3, bit));
            assert_eq!(h.dump_level, level.parse::<i32>().expect("level"));
            assert_eq!(h.max_mapnr, 0x100 + 30);
            assert_eq!(h.utsname.get(2), "6.1.0-synthetic");
            let mut zero_pages = 0;
            for pfn in 0..h.max_mapnr + 10 {
                let got = dump.read_page(pfn).expect("read page");
                match (elf_page(&s, pfn), got) {
                    (None, Page::Hole) => {}
                    (Some(want), Page::Data(data)) => {
                        assert!(want == data, "{flag} -d {level}: pfn {pfn:#x} differs");
                        if want.iter().all(|&b| b == 0) {
                            zero_pages += 1;
                        }
                    }
                    // p_memsz beyond p_filesz: memory without bytes in the input.
                    (Some(_), Page::Excluded) if (0x114..0x11e).contains(&pfn) => {}
                    (want, got) => panic!("{flag} -d {level}: pfn {pfn:#x}: {want:?} vs {got:?}"),
                }
            }
            assert!(zero_pages > 10);
        }
    }
}

#[test]
fn zero_pages_share_one_blob_and_incompressible_pages_are_raw() {
    let dir = scratch("zero");
    let mut data = Vec::new();
    for i in 0..8 {
        data.extend(page(
            if i % 2 == 0 { Fill::Zero } else { Fill::Random },
            i,
            PS,
        ));
    }
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, data, 0);
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, s.to_bytes()).expect("write");
    let out = dir.join("dump");
    let o = run(bin().args(["-z", "-d", "1"]).arg(&vmcore).arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let dump = KdumpFile::open(fs::File::open(&out).expect("open")).expect("parse");
    let d: Vec<_> = (0..8)
        .map(|p| dump.descriptor(p).expect("desc").expect("dumpable"))
        .collect();
    for p in [0, 2, 4, 6] {
        assert_eq!(d[p], d[0], "zero pages share the blob");
        assert_eq!((d[p].size, d[p].flags), (PS as u32, 0));
    }
    for p in [1, 3, 5, 7] {
        assert_eq!(
            (d[p].size, d[p].flags),
            (PS as u32, 0),
            "random pages stay raw"
        );
        assert_ne!(d[p].offset, d[0].offset);
    }
    // Without level 1, the zero pages are compressed one by one.
    let out0 = dir.join("dump0");
    let o = run(bin().args(["-z", "-d", "0"]).arg(&vmcore).arg(&out0));
    assert!(o.status.success(), "{}", stderr(&o));
    let dump0 = KdumpFile::open(fs::File::open(&out0).expect("open")).expect("parse");
    let z0 = dump0.descriptor(0).expect("desc").expect("dumpable");
    let z2 = dump0.descriptor(2).expect("desc").expect("dumpable");
    assert_ne!(z0.offset, z2.offset);
    assert_eq!(z0.flags, 0x20);
}

#[test]
fn flattened_stream_rebuilds_the_same_file() {
    let dir = scratch("flat");
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, synthetic().to_bytes()).expect("write");
    let direct = dir.join("direct");
    let o = run(bin().args(["-l", "-d", "1"]).arg(&vmcore).arg(&direct));
    assert!(o.status.success(), "{}", stderr(&o));
    let flat = run(bin().args(["-F", "-l", "-d", "1"]).arg(&vmcore));
    assert!(flat.status.success(), "{}", stderr(&flat));
    assert_eq!(&flat.stdout[..12], b"makedumpfile");
    let rebuilt = dir.join("rebuilt");
    let mut child = bin()
        .arg("-R")
        .arg(&rebuilt)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn -R");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&flat.stdout)
        .expect("feed");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fs::read(&direct).expect("direct") == fs::read(&rebuilt).expect("rebuilt"));

    // A stream cut short is an error, not a silently shorter dump.
    let cut = dir.join("cut");
    let mut child = bin()
        .arg("-R")
        .arg(&cut)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn -R");
    let half = flat.stdout.len() / 2;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&flat.stdout[..half])
        .expect("feed");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("incomplete"), "{}", stderr(&o));
}

/// Runs vmsift expecting failure: exit status 1 and exactly one line that contains `needle`.
fn expect_one_line_failure(args: &[&std::ffi::OsStr], needle: &str) {
    let o = run(bin().args(args));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err:?}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_gives_exit_1_and_one_clear_line() {
    let dir = scratch("bad");
    let good = synthetic().to_bytes();
    let out = dir.join("out");
    let os = |p: &Path| p.as_os_str().to_owned();

    let truncated = dir.join("truncated");
    fs::write(&truncated, &good[..good.len() - 5000]).expect("write");
    expect_one_line_failure(&[os(&truncated).as_ref(), os(&out).as_ref()], "truncated");
    assert!(!out.exists(), "no output for bad input");

    let not_elf = dir.join("not-elf");
    fs::write(
        &not_elf,
        b"this is not a vmcore at all, just text\n".repeat(100),
    )
    .expect("write");
    expect_one_line_failure(
        &[os(&not_elf).as_ref(), os(&out).as_ref()],
        "not an ELF file",
    );

    let no_info = dir.join("no-vmcoreinfo");
    let s = SynthVmcore::new()
        .prstatus(2)
        .load(0, mixed_pages(0, 4, PS), 0);
    fs::write(&no_info, s.to_bytes()).expect("write");
    expect_one_line_failure(&[os(&no_info).as_ref(), os(&out).as_ref()], "no VMCOREINFO");

    // A PT_LOAD claiming 2^60 bytes of memory (p_memsz) with 4 pages in the file.
    let huge = dir.join("huge-memsz");
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, mixed_pages(0, 4, PS), 1 << 60);
    fs::write(&huge, s.to_bytes()).expect("write");
    expect_one_line_failure(
        &[os(&huge).as_ref(), os(&out).as_ref()],
        "physical address space",
    );
    assert!(!out.exists());

    let empty = dir.join("empty");
    fs::write(&empty, b"").expect("write");
    expect_one_line_failure(&[os(&empty).as_ref(), os(&out).as_ref()], "not an ELF file");

    let missing = dir.join("missing");
    expect_one_line_failure(&[os(&missing).as_ref(), os(&out).as_ref()], "cannot open");
    assert!(!out.exists());

    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, &good).expect("write");
    let existing = dir.join("existing");
    fs::write(&existing, b"precious").expect("write");
    expect_one_line_failure(
        &[os(&vmcore).as_ref(), os(&existing).as_ref()],
        "already exists",
    );
    assert_eq!(fs::read(&existing).expect("read"), b"precious");
    let o = run(bin().arg("-f").arg(&vmcore).arg(&existing));
    assert!(o.status.success(), "-f overwrites: {}", stderr(&o));

    // An output directory nobody can write: /proc refuses new files even to root.
    let unwritable = Path::new("/proc/vmsift-test-dump");
    expect_one_line_failure(
        &[os(&vmcore).as_ref(), unwritable.as_os_str()],
        "cannot create the dump file",
    );
    let no_dir = dir.join("no/such/dir/dump");
    expect_one_line_failure(
        &[os(&vmcore).as_ref(), os(&no_dir).as_ref()],
        "cannot create the dump file",
    );

    expect_one_line_failure(
        &["--no-such-option".as_ref(), os(&vmcore).as_ref()],
        "no-such-option",
    );
    expect_one_line_failure(
        &[
            "-d".as_ref(),
            "99".as_ref(),
            os(&vmcore).as_ref(),
            os(&out).as_ref(),
        ],
        "dump level",
    );
}

#[test]
fn version_lists_every_codec() {
    let o = run(bin().arg("-v"));
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for codec in ["zlib", "lzo", "snappy", "zstd"] {
        assert!(text.contains(&format!("{codec}\tenabled")), "{text}");
    }
    let o = run(bin().arg("-h"));
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("--message-level"));
}

#[test]
fn unsupported_makedumpfile_options_are_refused_with_the_alternative() {
    for (args, needle) in [
        (&["-x", "vmlinux", "a", "b"][..], "VMCOREINFO note"),
        (&["-i", "info", "a", "b"], "drop -i"),
        (&["-g", "info"], "/sys/kernel/vmcoreinfo"),
        (
            &["--config", "f", "a", "b"],
            "makedumpfile -x VMLINUX --config",
        ),
        (
            &["--eppic", "f", "a", "b"],
            "makedumpfile -x VMLINUX --eppic",
        ),
        (&["-e", "-E", "a", "b"], "-e and -E"),
        (&["--xen-syms", "x", "a", "b"], "Xen"),
        (
            &["--no-such-option", "a", "b"],
            "unexpected argument '--no-such-option'",
        ),
    ] {
        let o = run(bin().args(args));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // Accepted for compatibility, and without effect on the dump.
    let dir = scratch("accepted");
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, synthetic().to_bytes()).expect("vmcore");
    let (a, b) = (dir.join("a"), dir.join("b"));
    assert!(
        run(bin().args(["-l", "-d", "1"]).arg(&vmcore).arg(&a))
            .status
            .success()
    );
    let o = run(bin()
        .args(["-l", "-d", "1", "-b", "8", "--non-cyclic", "--work-dir"])
        .arg(&dir)
        .arg(&vmcore)
        .arg(&b));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&a).expect("a"), fs::read(&b).expect("b"));
}

#[test]
fn elf_output_holds_every_kept_page() {
    let dir = scratch("elf");
    let s = synthetic();
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, s.to_bytes()).expect("vmcore");
    for level in ["0", "1"] {
        let out = dir.join(format!("elf-{level}"));
        let o = run(bin().args(["-E", "-d", level]).arg(&vmcore).arg(&out));
        assert!(o.status.success(), "{}", stderr(&o));
        let mut back = vmsift::input::Vmcore::open(&out, true).expect("the ELF dump opens");
        let mut input = vmsift::input::Vmcore::open(&vmcore, true).expect("input");
        for pfn in 0..0x130u64 {
            // Pages the input has bytes for (not holes, not beyond p_filesz).
            let Ok(want) = input.memory.read_page(pfn).map(<[u8]>::to_vec) else {
                continue;
            };
            match back.memory.read_page(pfn) {
                Ok(got) => assert!(got == want.as_slice(), "-d {level}: pfn {pfn:#x} differs"),
                // Only zero pages may be left out, and only at -d 1.
                Err(e) => assert!(
                    level == "1" && want.iter().all(|&b| b == 0),
                    "-d {level}: pfn {pfn:#x}: {e}"
                ),
            }
        }
    }
    let o = run(bin().args(["-E", "-c"]).arg(&vmcore).arg(dir.join("x")));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("-E cannot be used with"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn split_set_reassembles_into_the_direct_dump() {
    let dir = scratch("split");
    let s = synthetic();
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, s.to_bytes()).expect("vmcore");
    for (codec, level, parts) in [("-l", "1", 3), ("-c", "0", 2), ("-z", "1", 5)] {
        let direct = dir.join("direct");
        let _ = fs::remove_file(&direct);
        assert!(
            run(bin().args([codec, "-d", level]).arg(&vmcore).arg(&direct))
                .status
                .success()
        );
        let names: Vec<PathBuf> = (0..parts).map(|i| dir.join(format!("part{i}"))).collect();
        for n in &names {
            let _ = fs::remove_file(n);
        }
        let o = run(bin()
            .args(["--split", codec, "-d", level])
            .arg(&vmcore)
            .args(&names));
        assert!(o.status.success(), "{}", stderr(&o));
        // Each part reads back the pages of its own range.
        let mut covered = 0;
        for n in &names {
            let d = KdumpFile::open(fs::File::open(n).expect("part")).expect("a kdump file");
            let (start, end) = d.header.split.expect("a split part");
            for pfn in start..end {
                if let Ok(Page::Data(got)) = d.read_page(pfn) {
                    assert_eq!(Some(got), elf_page(&s, pfn), "{codec}: pfn {pfn:#x}");
                    covered += 1;
                }
            }
        }
        assert!(covered > 40, "{covered}");
        // Reassembled in any order: the direct dump, byte for byte.
        let joined = dir.join("joined");
        let _ = fs::remove_file(&joined);
        let mut shuffled = names.clone();
        shuffled.reverse();
        let o = run(bin().arg("--reassemble").args(&shuffled).arg(&joined));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            fs::read(&joined).expect("joined") == fs::read(&direct).expect("direct"),
            "{codec} -d {level}, {parts} parts: not the direct dump"
        );
    }
    // A missing part, or a file that is no part, is refused.
    let o = run(bin()
        .arg("--reassemble")
        .arg(dir.join("part0"))
        .arg(dir.join("part2"))
        .arg(dir.join("x")));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    assert!(!dir.join("x").exists());
    let o = run(bin()
        .arg("--reassemble")
        .arg(dir.join("direct"))
        .arg(dir.join("x")));
    assert!(
        stderr(&o).contains("not part of a split dump"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_dump_can_be_filtered_again() {
    let dir = scratch("refilter");
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, synthetic().to_bytes()).expect("vmcore");
    let (d0, flat, d1, again) = (
        dir.join("d0"),
        dir.join("d0.flat"),
        dir.join("d1"),
        dir.join("again"),
    );
    assert!(
        run(bin().args(["-c", "-d", "0"]).arg(&vmcore).arg(&d0))
            .status
            .success()
    );
    assert!(
        run(bin().args(["-l", "-d", "1"]).arg(&vmcore).arg(&d1))
            .status
            .success()
    );
    let o = run(bin()
        .args(["-F", "-d", "0"])
        .arg(&vmcore)
        .stdout(fs::File::create(&flat).expect("flat")));
    assert!(o.status.success());
    for input in [&d0, &flat] {
        let _ = fs::remove_file(&again);
        let o = run(bin().args(["-l", "-d", "1"]).arg(input).arg(&again));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            fs::read(&again).expect("again"),
            fs::read(&d1).expect("d1"),
            "{}",
            input.display()
        );
    }
    // What the input dump left out cannot come back: its level stays in the new one.
    let _ = fs::remove_file(&again);
    assert!(
        run(bin().args(["-l", "-d", "0"]).arg(&d1).arg(&again))
            .status
            .success()
    );
    let back = KdumpFile::open(fs::File::open(&again).expect("again")).expect("dump");
    assert_eq!(back.header.dump_level, 1);
    let o = run(bin().args(["-E", "-d", "1"]).arg(&d1).arg(dir.join("elf")));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("-E needs an ELF vmcore"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn man_page_and_completions_come_from_the_options() {
    let gen_docs = || Command::new(env!("CARGO_BIN_EXE_vmsift-gen-docs"));
    let o = run(gen_docs().arg("--man-page"));
    assert!(o.status.success());
    let man = String::from_utf8_lossy(&o.stdout);
    assert!(
        man.starts_with(".ie") && man.contains(".TH vmsift 8"),
        "{man}"
    );
    for opt in [
        r"message\-level",
        r"num\-threads",
        r"dump\-dmesg",
        r"ssh\-key",
    ] {
        assert!(man.contains(opt), "{opt} missing from the man page");
    }
    for shell in ["bash", "zsh", "fish"] {
        let o = run(gen_docs().args(["--completions", shell]));
        assert!(o.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("num-threads"),
            "{shell}"
        );
    }
    let o = run(gen_docs().args(["--completions", "tcsh"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown shell \"tcsh\""),
        "{}",
        stderr(&o)
    );
    // The collector itself no longer carries the generators.
    assert_eq!(run(bin().arg("--man-page")).status.code(), Some(1));
}

#[test]
fn output_is_identical_whatever_the_thread_count_or_read_method() {
    let dir = scratch("threads");
    let vmcore = dir.join("vmcore");
    // Enough pages for many batches, so workers finish out of order.
    let s = SynthVmcore::new()
        .prstatus(2)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, mixed_pages(7, 3000, PS), 0)
        .load(0x1000_0000, mixed_pages(9000, 500, PS), 0);
    fs::write(&vmcore, s.to_bytes()).expect("write");
    for codec in ["-c", "-z"] {
        let mut first: Option<Vec<u8>> = None;
        for threads in ["1", "2", "3", "8"] {
            let out = dir.join(format!("dump{codec}-{threads}"));
            // --non-mmap (pread only) must not change a byte either.
            let mmap = if threads == "3" { "--non-mmap" } else { "-f" };
            let o = run(bin()
                .args([codec, "-d", "1", mmap, "--num-threads", threads])
                .arg(&vmcore)
                .arg(&out));
            assert!(o.status.success(), "{}", stderr(&o));
            let bytes = fs::read(&out).expect("read");
            match &first {
                None => first = Some(bytes),
                Some(f) => assert!(*f == bytes, "{codec} with {threads} threads differs"),
            }
        }
    }
}

#[test]
fn check_params_and_dry_run_write_nothing() {
    let dir = scratch("check");
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, synthetic().to_bytes()).expect("write");
    let out = dir.join("dump");
    let o = run(bin()
        .args(["--check-params", "-l", "--message-level", "7", "-d", "31"])
        .arg(&vmcore)
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(bin()
        .args(["--check-params", "-l", "-c"])
        .arg(&vmcore)
        .arg(&out));
    assert_eq!(o.status.code(), Some(1), "bad options fail --check-params");
    let o = run(bin()
        .args(["--dry-run", "-z", "-d", "1"])
        .arg(&vmcore)
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.exists(), "nothing written");
}
