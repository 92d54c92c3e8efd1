//! Per-page compression throughput of each codec on one core, on the page kinds a dump
//! holds (kernel-text-like, patterned user data, random). Run: `cargo bench --bench codecs`.
//! Prints pages/s, MB/s and the mean compressed size per page kind and codec.

use std::hint::black_box;
use std::time::{Duration, Instant};

use vmsift::codec::{Codec, Compressor};
use vmsift::synth::{Fill, page};

const PS: usize = 4096;

fn measure(codec: Codec, pages: &[Vec<u8>]) -> (f64, f64) {
    let mut c = Compressor::new(codec, PS).expect("codec context");
    let mut n = 0u64;
    let mut bytes = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(700) {
        for p in pages {
            let size = c
                .compress(black_box(p))
                .expect("compress")
                .map_or(PS, |d| d.len());
            bytes += size as u64;
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    (n as f64 / secs, bytes as f64 / n as f64)
}

fn main() {
    let kinds: [(&str, Vec<Vec<u8>>); 3] = [
        ("text", (0..256).map(|i| page(Fill::Text, i, PS)).collect()),
        (
            "mixed",
            (0..256)
                .map(|i| {
                    page(
                        [Fill::Text, Fill::Random, Fill::Text, Fill::Text][i as usize % 4],
                        i,
                        PS,
                    )
                })
                .collect(),
        ),
        (
            "random",
            (0..256).map(|i| page(Fill::Random, i, PS)).collect(),
        ),
    ];
    println!(
        "{:<8} {:<7} {:>12} {:>10} {:>12}",
        "codec", "pages", "pages/s", "MB/s", "bytes/page"
    );
    for codec in Codec::ALL {
        for (name, pages) in &kinds {
            let (rate, mean) = measure(codec, pages);
            println!(
                "{:<8} {:<7} {:>12.0} {:>10.1} {:>12.0}",
                codec.name(),
                name,
                rate,
                rate * PS as f64 / 1e6,
                mean
            );
        }
    }
}
