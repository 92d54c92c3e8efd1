//! Command lines as distributions' kdump scripts write them, and the ones refused.

use super::*;

fn p(args: &[&str]) -> Result<Job> {
    parse(std::iter::once("vmsift").chain(args.iter().copied()))
}

#[test]
fn distro_command_lines() {
    // RHEL's default, with the thread count kdump.sh appends.
    let j = p(&[
        "-l",
        "--message-level",
        "7",
        "-d",
        "31",
        "--num-threads=2",
        "/proc/vmcore",
        "out",
    ])
    .expect("rhel");
    assert_eq!(j.codec, Codec::Lzo);
    assert_eq!(j.levels, vec![DumpLevel(31)]);
    assert_eq!(j.threads, Some(2));
    assert_eq!(j.message_level, 7);
    // Debian's: flattened to stdout, options glued together.
    let j = p(&["-F", "-c", "-d31", "/proc/vmcore"]).expect("debian");
    assert_eq!(
        j.mode,
        Mode::Dump {
            vmcore: "/proc/vmcore".into(),
            dumpfile: None
        }
    );
    assert_eq!(j.codec, Codec::Zlib);
    // SUSE's, space form of --num-threads, combined short flags.
    let j = p(&[
        "-Fz",
        "--num-threads",
        "4",
        "--message-level",
        "6",
        "-d",
        "31",
        "/proc/vmcore",
    ])
    .expect("suse");
    assert_eq!(
        (j.codec, j.threads, j.message_level),
        (Codec::Zstd, Some(4), 6)
    );
    // Debian's and SUSE's dmesg calls.
    let j = p(&["--dump-dmesg", "/proc/vmcore", "/var/crash/dmesg.1"]).expect("dmesg");
    assert!(matches!(
        j.mode,
        Mode::DumpDmesg {
            logfile: Some(_),
            ..
        }
    ));
    let j = p(&["-F", "--message-level", "8", "--dump-dmesg", "/proc/vmcore"]).expect("-F");
    assert!(matches!(j.mode, Mode::DumpDmesg { logfile: None, .. }));
    // RHEL's mkdumprd: `makedumpfile --check-params <core_collector options> vmcore dumpfile`.
    let j = p(&[
        "--check-params",
        "-l",
        "--message-level",
        "7",
        "-d",
        "31",
        "vmcore",
        "dumpfile",
    ])
    .expect("check-params");
    assert!(j.check_params && !j.dry_run);
    let j = p(&["-R", "dump"]).expect("-R");
    assert_eq!(
        j.mode,
        Mode::Rearrange {
            dumpfile: "dump".into()
        }
    );
    assert_eq!(p(&["-d", "31,1", "a", "b"]).expect("list").levels.len(), 2);
    let j = p(&["-d", "1", "-l", "-d", "31", "-l", "a", "b"]).expect("repeats");
    assert_eq!((j.levels[0], j.codec), (DumpLevel(31), Codec::Lzo));
    assert_eq!(p(&["-D", "a", "b"]).expect("-D").message_level, 15);
    assert_eq!(
        p(&["--show-stats", "a", "b"]).expect("stats").message_level,
        23
    );
}

#[test]
fn help_and_version_answer_whatever_else_is_given() {
    assert_eq!(p(&["-h", "-R", "-F", "a"]).expect("-h").mode, Mode::Help);
    assert_eq!(p(&["-v", "-x", "vmlinux"]).expect("-v").mode, Mode::Version);
    // Values are checked as they are read, before -h answers (as makedumpfile does).
    assert!(p(&["-h", "-d", "x"]).is_err());
}

#[test]
fn bad_command_lines() {
    for bad in [
        &["-l", "-c", "a", "b"][..],
        &["-d", "32", "a", "b"],
        &["-d", "x", "a", "b"],
        &["a"],
        &["-F", "a", "b"],
        &["-R"],
        &["--bogus", "a", "b"],
        &["--message-level", "99", "a", "b"],
        &["-R", "-F", "a"],
        &["--check-params", "--split", "--reassemble", "a", "b", "c"],
        &["--split", "--dump-dmesg", "v", "a", "b"],
        &["-E", "--split", "v", "a", "b"],
        &["--dry-run", "--reassemble", "a", "b", "c"],
        &["-R", "-l", "a"],
    ] {
        let e = p(bad).expect_err("must fail");
        assert!(!e.to_string().contains('\n'), "{bad:?}: {e}");
    }
}
