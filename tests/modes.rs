//! The mode-conflict table: every pair of makedumpfile's modes (and a few more lines), run
//! through vmsift and compared with makedumpfile 1.7.2.
//!
//! What is compared is the *mode check*: the exit status of `TOOL --check-params ARGS`
//! (ARGS as they are when they hold --check-params already). makedumpfile 1.7.2's
//! --check-params runs the same option checks as a real run and stops before it opens any
//! file (-h and -v answer before any check, exit 0), so that status says "accepted" (0) or
//! "refused" (1), whatever the files. Real runs are not compared: with dummy files both
//! tools fail later for reasons that have nothing to do with the modes, and makedumpfile
//! -R with an empty stdin never ends.
//!
//! makedumpfile's column is the recorded status, and when makedumpfile 1.7.2 is installed
//! (tests/install-deps) it is also run live on every row and must agree with the record;
//! `VMSIFT_MAKEDUMPFILE=PATH` names it and makes it required. vmsift's status must equal
//! makedumpfile's unless the row says why not.
//!
//! Then vmsift runs each row for real (ARGS as given) in a fresh empty directory with
//! stdin from /dev/null and a deadline: a refused row exits 1 with one `vmsift: ` line on
//! stderr and creates nothing; an accepted one ends with 0 (-h, -v, --check-params) or with
//! 1 and one line (the files named do not exist), and creates nothing either.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vmsift::synth::{MINIMAL_VMCOREINFO, SynthVmcore, mixed_pages};

/// makedumpfile's modes, each with the files it takes (V vmcore, D/L/Dn outputs, Pn split
/// files, K /proc/kcore; none of them exists). A plain dump is `V D` with no option.
const MODES: &[(&str, &str)] = &[
    ("-F", "V"),
    ("-E", "V D"),
    ("-R", "D"),
    ("--split", "V D1 D2"),
    ("--reassemble", "P1 P2 D"),
    ("--dump-dmesg", "V L"),
    ("--mem-usage", "K"),
    ("--check-params", "V D"),
    ("--dry-run", "V D"),
    ("-h", ""),
    ("-v", ""),
    ("-g VI", ""),
];

/// Lines beyond the pairs: the issue's own examples and the options makedumpfile refuses
/// with a mode (codecs and -d with -R or --reassemble, --partial-dmesg alone).
const MORE: &[&str] = &[
    "--check-params --split --reassemble A B C",
    "-R -F A",
    "-R -l D",
    "-R -d 31 D",
    "-R -d 0 D",
    "--reassemble -c P1 P2 D",
    "--reassemble -d 1 P1 P2 D",
    "--partial-dmesg V D",
    "--dump-dmesg --partial-dmesg V L",
    "-E -c V D",
    "-h -R -F A",
    "-v -x VM V D",
    "-e V D",
    "-e --work-dir W V D",
    "-e -F --work-dir W V",
    "-e --split --work-dir W V D1 D2",
    "-e -E --work-dir W V D",
    "-e -R --work-dir W D",
    "-e --reassemble --work-dir W P1 P2 D",
];

/// Two of -R, --split, --reassemble, --dump-dmesg, --mem-usage: makedumpfile refuses some
/// of these pairs and, for the others, runs the first of -R, --reassemble, --dump-dmesg,
/// --mem-usage and ignores the other option. vmsift refuses them all (cli::check_modes): a
/// collector line that names two tasks is a mistake better caught by --check-params when
/// kdump is set up than half carried out in the capture kernel.
const TWO_TASKS: &str = "two tasks";
/// makedumpfile takes `--mem-usage K D` and ignores D; vmsift's --mem-usage takes one file
/// (as before this table existed).
const ONE_KCORE: &str = "one kcore";
/// makedumpfile's -e keeps bitmaps of all memory in files and needs --work-dir for them;
/// vmsift's -e keeps what it needs in memory (1/64 of a pfn bitmap) and needs none.
const NO_WORK_DIR: &str = "no work dir";
/// vmsift leaves vmemmap pages out of the kdump-compressed dumps it writes only: with -E,
/// and with -R and --reassemble (which copy a dump as it is), -e is refused, not ignored.
const KDUMP_ONLY: &str = "-e kdump only";

/// (ARGS, makedumpfile 1.7.2's --check-params status, vmsift's, why they differ).
/// Recorded with Debian's makedumpfile 1:1.7.2 (/usr/bin/makedumpfile).
#[rustfmt::skip]
const TABLE: &[(&str, i32, i32, &str)] = &[
    ("V D",                                       0, 0, ""),
    ("-F V",                                      0, 0, ""),
    ("-E V D",                                    0, 0, ""),
    ("-R D",                                      0, 0, ""),
    ("--split V D1 D2",                           0, 0, ""),
    ("--reassemble P1 P2 D",                      0, 0, ""),
    ("--dump-dmesg V L",                          0, 0, ""),
    ("--mem-usage K",                             0, 0, ""),
    ("--check-params V D",                        0, 0, ""),
    ("--dry-run V D",                             0, 0, ""),
    ("-h",                                        0, 0, ""),
    ("-v",                                        0, 0, ""),
    ("-g VI",                                     1, 1, ""),
    ("-F -E V",                                   0, 0, ""),
    ("-F -E V D",                                 1, 1, ""),
    ("-F -R V",                                   1, 1, ""),
    ("-F -R D",                                   1, 1, ""),
    ("-F --split V",                              1, 1, ""),
    ("-F --split V D1 D2",                        1, 1, ""),
    ("-F --reassemble V",                         1, 1, ""),
    ("-F --reassemble P1 P2 D",                   1, 1, ""),
    ("-F --dump-dmesg V",                         0, 0, ""),
    ("-F --dump-dmesg V L",                       1, 1, ""),
    ("-F --mem-usage V",                          0, 0, ""),
    ("-F --mem-usage K",                          0, 0, ""),
    ("-F --check-params V",                       0, 0, ""),
    ("-F --check-params V D",                     1, 1, ""),
    ("-F --dry-run V",                            0, 0, ""),
    ("-F --dry-run V D",                          1, 1, ""),
    ("-F -h V",                                   0, 0, ""),
    ("-F -h",                                     0, 0, ""),
    ("-F -v V",                                   0, 0, ""),
    ("-F -v",                                     0, 0, ""),
    ("-F -g VI V",                                1, 1, ""),
    ("-F -g VI",                                  1, 1, ""),
    ("-E -R V D",                                 1, 1, ""),
    ("-E -R D",                                   1, 1, ""),
    ("-E --split V D",                            1, 1, ""),
    ("-E --split V D1 D2",                        1, 1, ""),
    ("-E --reassemble V D",                       1, 1, ""),
    ("-E --reassemble P1 P2 D",                   1, 1, ""),
    ("-E --dump-dmesg V D",                       0, 0, ""),
    ("-E --dump-dmesg V L",                       0, 0, ""),
    ("-E --mem-usage V D",                        0, 1, ONE_KCORE),
    ("-E --mem-usage K",                          0, 0, ""),
    ("-E --check-params V D",                     0, 0, ""),
    ("-E --dry-run V D",                          0, 0, ""),
    ("-E -h V D",                                 0, 0, ""),
    ("-E -h",                                     0, 0, ""),
    ("-E -v V D",                                 0, 0, ""),
    ("-E -v",                                     0, 0, ""),
    ("-E -g VI V D",                              1, 1, ""),
    ("-E -g VI",                                  1, 1, ""),
    ("-R --split D",                              0, 1, TWO_TASKS),
    ("-R --split V D1 D2",                        1, 1, ""),
    ("-R --reassemble D",                         0, 1, TWO_TASKS),
    ("-R --reassemble P1 P2 D",                   1, 1, ""),
    ("-R --dump-dmesg D",                         0, 1, TWO_TASKS),
    ("-R --dump-dmesg V L",                       1, 1, ""),
    ("-R --mem-usage D",                          0, 1, TWO_TASKS),
    ("-R --mem-usage K",                          0, 1, TWO_TASKS),
    ("-R --check-params D",                       0, 0, ""),
    ("-R --check-params V D",                     1, 1, ""),
    ("-R --dry-run D",                            0, 0, ""),
    ("-R --dry-run V D",                          1, 1, ""),
    ("-R -h D",                                   0, 0, ""),
    ("-R -h",                                     0, 0, ""),
    ("-R -v D",                                   0, 0, ""),
    ("-R -v",                                     0, 0, ""),
    ("-R -g VI D",                                1, 1, ""),
    ("-R -g VI",                                  1, 1, ""),
    ("--split --reassemble V D1 D2",              1, 1, ""),
    ("--split --reassemble P1 P2 D",              1, 1, ""),
    ("--split --dump-dmesg V D1 D2",              0, 1, TWO_TASKS),
    ("--split --dump-dmesg V L",                  1, 1, ""),
    ("--split --mem-usage V D1 D2",               0, 1, TWO_TASKS),
    ("--split --mem-usage K",                     0, 1, TWO_TASKS),
    ("--split --check-params V D1 D2",            0, 0, ""),
    ("--split --check-params V D",                1, 1, ""),
    ("--split --dry-run V D1 D2",                 0, 0, ""),
    ("--split --dry-run V D",                     1, 1, ""),
    ("--split -h V D1 D2",                        0, 0, ""),
    ("--split -h",                                0, 0, ""),
    ("--split -v V D1 D2",                        0, 0, ""),
    ("--split -v",                                0, 0, ""),
    ("--split -g VI V D1 D2",                     1, 1, ""),
    ("--split -g VI",                             1, 1, ""),
    ("--reassemble --dump-dmesg P1 P2 D",         0, 1, TWO_TASKS),
    ("--reassemble --dump-dmesg V L",             0, 1, TWO_TASKS),
    ("--reassemble --mem-usage P1 P2 D",          0, 1, TWO_TASKS),
    ("--reassemble --mem-usage K",                0, 1, TWO_TASKS),
    ("--reassemble --check-params P1 P2 D",       0, 0, ""),
    ("--reassemble --check-params V D",           0, 0, ""),
    ("--reassemble --dry-run P1 P2 D",            1, 1, ""),
    ("--reassemble --dry-run V D",                1, 1, ""),
    ("--reassemble -h P1 P2 D",                   0, 0, ""),
    ("--reassemble -h",                           0, 0, ""),
    ("--reassemble -v P1 P2 D",                   0, 0, ""),
    ("--reassemble -v",                           0, 0, ""),
    ("--reassemble -g VI P1 P2 D",                1, 1, ""),
    ("--reassemble -g VI",                        1, 1, ""),
    ("--dump-dmesg --mem-usage V L",              0, 1, TWO_TASKS),
    ("--dump-dmesg --mem-usage K",                0, 1, TWO_TASKS),
    ("--dump-dmesg --check-params V L",           0, 0, ""),
    ("--dump-dmesg --check-params V D",           0, 0, ""),
    ("--dump-dmesg --dry-run V L",                1, 1, ""),
    ("--dump-dmesg --dry-run V D",                1, 1, ""),
    ("--dump-dmesg -h V L",                       0, 0, ""),
    ("--dump-dmesg -h",                           0, 0, ""),
    ("--dump-dmesg -v V L",                       0, 0, ""),
    ("--dump-dmesg -v",                           0, 0, ""),
    ("--dump-dmesg -g VI V L",                    1, 1, ""),
    ("--dump-dmesg -g VI",                        1, 1, ""),
    ("--mem-usage --check-params K",              0, 0, ""),
    ("--mem-usage --check-params V D",            0, 1, ONE_KCORE),
    ("--mem-usage --dry-run K",                   0, 0, ""),
    ("--mem-usage --dry-run V D",                 0, 1, ONE_KCORE),
    ("--mem-usage -h K",                          0, 0, ""),
    ("--mem-usage -h",                            0, 0, ""),
    ("--mem-usage -v K",                          0, 0, ""),
    ("--mem-usage -v",                            0, 0, ""),
    ("--mem-usage -g VI K",                       1, 1, ""),
    ("--mem-usage -g VI",                         1, 1, ""),
    ("--check-params --dry-run V D",              0, 0, ""),
    ("--check-params -h V D",                     0, 0, ""),
    ("--check-params -h",                         0, 0, ""),
    ("--check-params -v V D",                     0, 0, ""),
    ("--check-params -v",                         0, 0, ""),
    ("--check-params -g VI V D",                  1, 1, ""),
    ("--check-params -g VI",                      1, 1, ""),
    ("--dry-run -h V D",                          0, 0, ""),
    ("--dry-run -h",                              0, 0, ""),
    ("--dry-run -v V D",                          0, 0, ""),
    ("--dry-run -v",                              0, 0, ""),
    ("--dry-run -g VI V D",                       1, 1, ""),
    ("--dry-run -g VI",                           1, 1, ""),
    ("-h -v",                                     0, 0, ""),
    ("-h -g VI",                                  0, 0, ""),
    ("-v -g VI",                                  0, 0, ""),
    ("--check-params --split --reassemble A B C", 1, 1, ""),
    ("-R -F A",                                   1, 1, ""),
    ("-R -l D",                                   1, 1, ""),
    ("-R -d 31 D",                                1, 1, ""),
    ("-R -d 0 D",                                 0, 0, ""),
    ("--reassemble -c P1 P2 D",                   1, 1, ""),
    ("--reassemble -d 1 P1 P2 D",                 1, 1, ""),
    ("--partial-dmesg V D",                       1, 1, ""),
    ("--dump-dmesg --partial-dmesg V L",          0, 0, ""),
    ("-E -c V D",                                 1, 1, ""),
    ("-h -R -F A",                                0, 0, ""),
    ("-v -x VM V D",                              0, 0, ""),
    ("-e V D",                                    1, 0, NO_WORK_DIR),
    ("-e --work-dir W V D",                       0, 0, ""),
    ("-e -F --work-dir W V",                      0, 0, ""),
    ("-e --split --work-dir W V D1 D2",           0, 0, ""),
    ("-e -E --work-dir W V D",                    0, 1, KDUMP_ONLY),
    ("-e -R --work-dir W D",                      0, 1, KDUMP_ONLY),
    ("-e --reassemble --work-dir W P1 P2 D",      0, 1, KDUMP_ONLY),
];

/// Every line the table must have: each mode alone, each pair of modes with the files of
/// either, and `MORE`.
fn expected_rows() -> Vec<String> {
    let join = |parts: &[&str]| {
        parts
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut rows = vec!["V D".to_string()];
    rows.extend(MODES.iter().map(|(opt, files)| join(&[opt, files])));
    for (i, (a, fa)) in MODES.iter().enumerate() {
        for (b, fb) in &MODES[i + 1..] {
            rows.push(join(&[a, b, fa]));
            if fb != fa {
                rows.push(join(&[a, b, fb]));
            }
        }
    }
    rows.extend(MORE.iter().map(|s| s.to_string()));
    rows
}

struct Ran {
    out: Output,
    /// What the run left in its directory.
    left: Vec<String>,
}

/// Runs `program args` in a fresh empty directory, stdin from /dev/null, killed (and the
/// test failed) if it has not ended within 20 s.
fn run_in_empty_dir(program: &Path, args: &[&str], n: usize) -> Ran {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("modes-{n}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    let mut child = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {args:?} did not end within 20 s", program.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    let mut left: Vec<String> = fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let _ = fs::remove_dir_all(&dir);
    Ran { out, left }
}

/// `args` with --check-params in front unless they hold it already.
fn checked(args: &[&'static str]) -> Vec<&'static str> {
    if args.contains(&"--check-params") {
        args.to_vec()
    } else {
        std::iter::once("--check-params")
            .chain(args.iter().copied())
            .collect()
    }
}

/// makedumpfile 1.7.2 to compare with live, if installed.
fn makedumpfile() -> Option<PathBuf> {
    let required = std::env::var_os("VMSIFT_MAKEDUMPFILE").map(PathBuf::from);
    let candidates = match &required {
        Some(p) => vec![p.clone()],
        None => [
            "/usr/sbin/makedumpfile",
            "/usr/bin/makedumpfile",
            "/sbin/makedumpfile",
        ]
        .iter()
        .map(PathBuf::from)
        .collect(),
    };
    for path in candidates {
        let Ok(o) = Command::new(&path).arg("-v").stdin(Stdio::null()).output() else {
            continue;
        };
        let text = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
        if text.contains("makedumpfile: version 1.7.2 ") {
            return Some(path);
        }
    }
    assert!(
        required.is_none(),
        "VMSIFT_MAKEDUMPFILE={required:?} is not makedumpfile 1.7.2"
    );
    None
}

#[test]
fn mode_pairs_are_refused_as_makedumpfile_1_7_2_does() {
    let expected = expected_rows();
    let listed: Vec<&str> = TABLE.iter().map(|r| r.0).collect();
    for row in &expected {
        assert!(listed.contains(&row.as_str()), "the table lacks {row:?}");
    }
    for row in &listed {
        assert!(
            expected.iter().any(|e| e == row),
            "the table has {row:?}, no pair of modes"
        );
        assert_eq!(
            listed.iter().filter(|r| *r == row).count(),
            1,
            "{row:?} is listed twice"
        );
    }

    let vmsift = Path::new(env!("CARGO_BIN_EXE_vmsift"));
    let live = makedumpfile();
    match &live {
        Some(p) => eprintln!("comparing with {} live", p.display()),
        None => eprintln!("makedumpfile 1.7.2 is not installed: comparing with the table"),
    }
    let mut wrong = Vec::new();
    for (n, &(line, mdf, vms, why)) in TABLE.iter().enumerate() {
        let args: Vec<&str> = line.split_whitespace().collect();
        assert!(
            (mdf == vms) == why.is_empty(),
            "{line:?}: a difference with makedumpfile needs a reason, and only a difference"
        );
        if let Some(path) = &live {
            let got = run_in_empty_dir(path, &checked(&args), n).out.status.code();
            if got != Some(mdf) {
                wrong.push(format!(
                    "{line:?}: makedumpfile --check-params gives {got:?}, the table {mdf}"
                ));
            }
        }

        let check = run_in_empty_dir(vmsift, &checked(&args), n);
        if check.out.status.code() != Some(vms) {
            wrong.push(format!(
                "{line:?}: vmsift --check-params gives {:?}, the table {vms}: {}",
                check.out.status.code(),
                String::from_utf8_lossy(&check.out.stderr).trim()
            ));
        }

        // The real run.
        let ran = run_in_empty_dir(vmsift, &args, n);
        let err = String::from_utf8_lossy(&ran.out.stderr).into_owned();
        let informational = ["-h", "-v", "--check-params"]
            .iter()
            .any(|o| args.contains(o));
        let want = if vms == 0 && informational { 0 } else { 1 };
        if ran.out.status.code() != Some(want) {
            wrong.push(format!(
                "{line:?}: vmsift exits {:?}, not {want}: {}",
                ran.out.status.code(),
                err.trim()
            ));
        }
        if want == 1 && (err.lines().count() != 1 || !err.starts_with("vmsift: ")) {
            wrong.push(format!("{line:?}: not one `vmsift: ` line: {err:?}"));
        }
        if want == 0 && !err.is_empty() {
            wrong.push(format!("{line:?}: exit 0 with messages: {err:?}"));
        }
        if !ran.left.is_empty() {
            wrong.push(format!("{line:?}: vmsift left {:?}", ran.left));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// vmsift with `input` on stdin.
fn feed(args: &[&std::ffi::OsStr], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // vmsift may refuse before it reads anything: a broken pipe is its answer, not ours.
    let _ = child.stdin.take().expect("stdin").write_all(input);
    child.wait_with_output().expect("wait")
}

/// The two pairs with --dry-run that makedumpfile accepts and that write files: nothing
/// is written, and -R creates its file only once the stream has given a record.
#[test]
fn dry_run_with_split_or_rearrange_writes_nothing() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("modes-dry-run");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    let vmcore = dir.join("vmcore");
    let synth = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0x1000, mixed_pages(1, 40, 4096), 40 * 4096);
    fs::write(&vmcore, synth.to_bytes()).expect("vmcore");
    let os = |p: &Path| p.as_os_str().to_owned();
    let text = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let parts = [dir.join("part1"), dir.join("part2")];
    let mut args = vec![
        "--dry-run".into(),
        "--split".into(),
        "-l".into(),
        os(&vmcore),
    ];
    args.extend(parts.iter().map(|p| os(p)));
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let o = feed(&args, b"");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !parts[0].exists() && !parts[1].exists(),
        "--dry-run --split wrote"
    );

    let flat = feed(&["-F".as_ref(), "-l".as_ref(), vmcore.as_os_str()], b"");
    assert!(flat.status.success(), "{}", text(&flat));
    let out = dir.join("rebuilt");
    let o = feed(
        &["-R".as_ref(), "--dry-run".as_ref(), out.as_os_str()],
        &flat.stdout,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!out.exists(), "-R --dry-run wrote");
    // The stream is still read and checked: one cut short fails.
    let half = &flat.stdout[..flat.stdout.len() / 2];
    let o = feed(
        &["-R".as_ref(), "--dry-run".as_ref(), out.as_os_str()],
        half,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!out.exists(), "-R --dry-run wrote");

    for (what, stream) in [
        ("an empty stdin", &b""[..]),
        (
            "text",
            &b"this is not a flattened stream, only words\n".repeat(20)[..],
        ),
    ] {
        let o = feed(&["-R".as_ref(), out.as_os_str()], stream);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o));
        assert_eq!(text(&o).lines().count(), 1, "{what}: {}", text(&o));
        assert!(!out.exists(), "-R made a file from {what}");
    }

    // An existing file is refused before the stream is read, and kept.
    fs::write(&out, b"keep").expect("write");
    let o = feed(&["-R".as_ref(), out.as_os_str()], &flat.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    assert_eq!(fs::read(&out).expect("read"), b"keep");
    let o = feed(
        &["-R".as_ref(), "-f".as_ref(), out.as_os_str()],
        &flat.stdout,
    );
    assert!(o.status.success(), "{}", text(&o));
    let direct = dir.join("direct");
    let o = feed(
        &["-l".as_ref(), vmcore.as_os_str(), direct.as_os_str()],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(fs::read(&out).expect("rebuilt") == fs::read(&direct).expect("direct"));
}
