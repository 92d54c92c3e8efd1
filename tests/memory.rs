//! Memory bounded by a constant: a synthetic vmcore whose RAM spans more than 1 TiB of
//! physical addresses (bitmaps of 32 MiB each, far beyond one cycle) is dumped cyclically
//! in little memory, and the result reads back page for page, by our reader and by
//! libkdumpfile.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmsift::input::kdump::{KdumpFile, Page};
use vmsift::synth::{MINIMAL_VMCOREINFO, SynthVmcore, mixed_pages};

mod common;

const PS: usize = 4096;
const TIB: u64 = 1 << 40;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("memory-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs vmsift under /usr/bin/time, which must succeed; returns the peak RSS in KiB.
fn run_measured(args: &[&str], vmcore: &Path, out: &Path) -> u64 {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    all.extend([vmcore.as_os_str(), out.as_os_str()]);
    let (o, kib) = common::vmsift_measured(&all, &out.with_extension("rss"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    kib
}

#[test]
fn one_tib_sparse_vmcore_is_dumped_cyclically_in_bounded_memory() {
    let dir = scratch("tib");
    let low = mixed_pages(1, 2048, PS);
    let high = mixed_pages(5000, 2048, PS);
    let s = SynthVmcore::new()
        .prstatus(4)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, low.clone(), 0)
        .load(TIB + (64 << 20), high.clone(), 0);
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, s.to_bytes()).expect("write");

    let out = dir.join("dump");
    let rss = run_measured(&["-l", "-d", "31", "--num-threads", "1"], &vmcore, &out);
    println!("1 TiB sparse: peak RSS {rss} KiB");
    assert!(rss <= 64 * 1024, "peak RSS {rss} KiB > 64 MiB");

    let dump = KdumpFile::open(fs::File::open(&out).expect("open")).expect("parse");
    let max = dump.header.max_mapnr;
    assert_eq!(max, (TIB + (64 << 20)) / PS as u64 + 2048);
    assert!(max / 8 > 4 << 20, "the bitmaps must exceed one 4 MiB cycle");
    let high_pfn = (TIB + (64 << 20)) / PS as u64;
    for (first, bytes) in [(0u64, &low), (high_pfn, &high)] {
        for i in 0..2048u64 {
            let want = &bytes[i as usize * PS..(i as usize + 1) * PS];
            match dump.read_page(first + i).expect("read") {
                Page::Data(d) => assert!(d == want, "pfn {:#x} differs", first + i),
                other => panic!("pfn {:#x}: {other:?}", first + i),
            }
        }
    }
    for pfn in [2048, 1 << 20, high_pfn - 1, (1 << 27) + 5] {
        assert_eq!(
            dump.read_page(pfn).expect("read"),
            Page::Hole,
            "pfn {pfn:#x}"
        );
    }

    // Smaller cycles (--cyclic-buffer, KiB per cycle bitmap) give the same file.
    let small = dir.join("dump-small-cycles");
    let rss_small = run_measured(
        &[
            "-l",
            "-d",
            "31",
            "--num-threads",
            "2",
            "--cyclic-buffer",
            "512",
        ],
        &vmcore,
        &small,
    );
    assert!(
        rss_small <= 68 * 1024,
        "peak RSS {rss_small} KiB with 2 threads"
    );
    assert!(fs::read(&out).expect("read") == fs::read(&small).expect("read"));

    // Filtering a dump of it again reads the input's bitmaps (32 MiB each) a window and a
    // cycle at a time: memory stays as small, and the result is the direct dump.
    let d1 = dir.join("dump-d1");
    run_measured(&["-d", "1", "--num-threads", "1"], &vmcore, &d1);
    let again = dir.join("dump-again");
    let rss_again = run_measured(&["-l", "-d", "31", "--num-threads", "1"], &d1, &again);
    println!("1 TiB sparse, filtered again: peak RSS {rss_again} KiB");
    assert!(
        rss_again <= 40 * 1024,
        "peak RSS {rss_again} KiB filtering the dump again"
    );
    assert!(fs::read(&out).expect("read") == fs::read(&again).expect("read"));

    // A real reader agrees page for page.
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/pages-identical");
    let o = Command::new(check)
        .arg(&vmcore)
        .arg(&out)
        .output()
        .expect("run pages-identical");
    assert!(
        o.status.success(),
        "libkdumpfile: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Under an address-space limit too small for the threads asked for, vmsift uses fewer
/// threads, says so, and writes the same dump (instead of failing to allocate).
#[test]
fn a_tight_memory_limit_means_fewer_threads_not_a_failure() {
    let dir = scratch("limit");
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, mixed_pages(9, 512, PS), 0);
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, s.to_bytes()).expect("vmcore");
    let bin = env!("CARGO_BIN_EXE_vmsift");
    let run = |name: &str, prefix: &str| {
        let out = dir.join(name);
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{prefix} exec \"$0\" -c -d 1 --num-threads 8 \"$1\" \"$2\"",
            ))
            .arg(bin)
            .arg(&vmcore)
            .arg(&out)
            .output()
            .expect("sh");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{name}: {err}");
        (fs::read(&out).expect("dump"), err)
    };
    let (free, said) = run("free", "");
    assert!(!said.contains("instead of 8"), "{said}");
    // 40 MiB of address space: room for the program and a thread or two, not eight.
    let (tight, said) = run("tight", "ulimit -v 40960 &&");
    assert!(said.contains("ulimit -v"), "{said}");
    assert!(said.contains("instead of 8"), "{said}");
    assert!(tight == free, "the dump depends on the thread count");
}
