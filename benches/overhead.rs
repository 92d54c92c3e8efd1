//! How much a whole dump costs beyond compression itself: vmsift's wall time for `-l -d 1`
//! and `-c -d 1` on one thread, against the time to compress the very same pages (every
//! non-zero page of the vmcore, as `-d 1` compresses them) with the same codec in a tight
//! loop over pages already in memory.
//!
//!     VMSIFT_BENCH_VMCORE=target/vmcores/big61.elf cargo bench --bench overhead
//!
//! Each dump is taken twice: to /dev/shm (a tmpfs, so disk speed stays out of the
//! comparison), and as a flattened stream (`-F`) into /dev/null, which leaves out the cost
//! of the output's storage too (on a VM whose host reclaims freed memory, the kernel's
//! first touch of new tmpfs pages can cost more than compressing them).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmsift::codec::{Codec, Compressor};
use vmsift::filter::is_zero_page;
use vmsift::input::{PhysPages, Vmcore};

/// Compresses every non-zero file-backed page; returns (pages, seconds compressing).
fn tight_loop(path: &Path, codec: Codec) -> (u64, f64) {
    let mut vm = Vmcore::open(path, true).expect("open vmcore");
    let ps = vm.page_size;
    let (_, vmsift::filter::Present::Ranges(file)) = vm.ranges() else {
        panic!("the benchmark reads an ELF vmcore");
    };
    let mut c = Compressor::new(codec, ps).expect("codec");
    let mut chunk: Vec<u8> = Vec::with_capacity(16384 * ps);
    let (mut pages, mut busy) = (0u64, Duration::ZERO);
    let mut flush = |chunk: &mut Vec<u8>, pages: &mut u64| {
        let t = Instant::now();
        for p in chunk.chunks_exact(ps) {
            std::hint::black_box(c.compress(p).expect("compress"));
            *pages += 1;
        }
        busy += t.elapsed();
        chunk.clear();
    };
    for (a, b) in file.iter() {
        for pfn in a..b {
            let page = vm.memory.read_page(pfn).expect("read page");
            if is_zero_page(page) {
                continue;
            }
            chunk.extend_from_slice(page);
            if chunk.len() == chunk.capacity() {
                flush(&mut chunk, &mut pages);
            }
        }
    }
    flush(&mut chunk, &mut pages);
    (pages, busy.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time of three `vmsift FLAG -d 1` runs (one thread) on `path`, writing
/// the dump to `/dev/shm` or, with `null`, as a flattened stream (`-F`) into /dev/null.
fn vmsift_wall(path: &str, flag: &str, null: bool) -> f64 {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/vmsift");
    let out = Path::new("/dev/shm/vmsift-overhead.kdump");
    let mut walls = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_file(out);
        let mut cmd = Command::new(&bin);
        cmd.args([
            flag,
            "-d",
            "1",
            "--num-threads",
            "1",
            "--message-level",
            "0",
        ]);
        if null {
            cmd.arg("-F").arg(path).stdout(Stdio::null());
        } else {
            cmd.arg(path).arg(out);
        }
        let t = Instant::now();
        let st = cmd
            .status()
            .expect("run target/release/vmsift (cargo build --release first)");
        assert!(st.success());
        walls.push(t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_file(out);
    median(walls)
}

fn main() {
    let Ok(path) = std::env::var("VMSIFT_BENCH_VMCORE") else {
        println!("overhead: set VMSIFT_BENCH_VMCORE to a vmcore (e.g. target/vmcores/big61.elf)");
        return;
    };
    println!("vmcore: {path}");
    println!(
        "{:<10} {:>9} {:>11} {:>11} {:>7} {:>11} {:>7}",
        "flags", "pages", "compress s", "to tmpfs s", "ratio", "to null s", "ratio"
    );
    for (flag, codec) in [("-l", Codec::Lzo), ("-c", Codec::Zlib)] {
        let (pages, compress) = tight_loop(Path::new(&path), codec);
        let file = vmsift_wall(&path, flag, false);
        let null = vmsift_wall(&path, flag, true);
        println!(
            "{flag:<5} -d 1 {pages:>9} {compress:>11.2} {file:>11.2} {:>7.2} {null:>11.2} {:>7.2}",
            file / compress,
            null / compress
        );
    }
}
