//! Per-page compression on one core: vmsift's codecs, and the candidate crates they were
//! chosen against, on the same 4 KiB pages.
//!
//!     cargo bench --bench codecs                       # synthetic pages
//!     VMSIFT_BENCH_VMCORE=target/vmcores/deb61.elf cargo bench --bench codecs
//!     VMSIFT_BENCH_DUMP=dump-of-d31 cargo bench --bench codecs   # pages a dump keeps
//!     VMSIFT_BENCH_SAVE=pages.raw ...   # also writes the corpus as raw pages
//!     VMSIFT_BENCH_ONLY=lzo ...         # only the candidates whose name has this
//!
//! With a vmcore or a dump, the corpus is up to 8192 non-zero pages spread evenly over it
//! (what a dump compresses). Prints pages/s, MB/s of input and the mean stored size per page
//! (a page that does not shrink is stored whole, as in the dump).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use vmsift::codec::{Codec, Compressor};
use vmsift::filter::is_zero_page;
use vmsift::input::{PhysPages, Vmcore};
use vmsift::synth::{Fill, page};

const PS: usize = 4096;

/// A compressor under test: returns the stored size of one page.
type Candidate = Box<dyn FnMut(&[u8]) -> usize>;

fn stored(n: usize) -> usize {
    if n < PS { n } else { PS }
}

fn vmsift(codec: Codec) -> Candidate {
    let mut c = Compressor::new(codec, PS).expect("codec context");
    Box::new(move |p| c.compress(p).expect("compress").map_or(PS, |d| d.len()))
}

fn lzo1x_crate() -> Candidate {
    Box::new(|p| stored(lzo1x::compress(p, lzo1x::CompressLevel::new(3)).len()))
}

fn rust_lzo_crate() -> Candidate {
    let mut ctx = rust_lzo::LZOContext::new();
    let mut out = vec![0u8; rust_lzo::worst_compress(PS)];
    Box::new(move |p| {
        let (c, _) = ctx.compress_to_slice(p, &mut out);
        stored(c.len())
    })
}

fn miniz(level: u8) -> Candidate {
    Box::new(move |p| stored(miniz_oxide::deflate::compress_to_vec_zlib(p, level).len()))
}

fn zlib_rs(level: u32) -> Candidate {
    let mut z = flate2::Compress::new(flate2::Compression::new(level), true);
    let mut out = Vec::with_capacity(2 * PS);
    Box::new(move |p| {
        z.reset();
        out.clear();
        let _ = z.compress_vec(p, &mut out, flate2::FlushCompress::Finish);
        stored(out.len())
    })
}

fn libdeflate(level: i32) -> Candidate {
    let mut c =
        libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level"));
    let mut out = vec![0u8; 2 * PS];
    Box::new(move |p| stored(c.zlib_compress(p, &mut out).unwrap_or(PS)))
}

fn corpus() -> (String, Vec<Vec<u8>>) {
    if let Ok(path) = std::env::var("VMSIFT_BENCH_DUMP") {
        // The pages a filtered dump keeps (e.g. -d 31: mostly kernel data).
        let f = std::fs::File::open(&path).expect("open VMSIFT_BENCH_DUMP");
        let dump = vmsift::input::kdump::KdumpFile::open(f).expect("a kdump file");
        let mut pages = Vec::new();
        for pfn in 0..dump.header.max_mapnr {
            if let Ok(vmsift::input::kdump::Page::Data(p)) = dump.read_page(pfn)
                && !is_zero_page(&p)
            {
                pages.push(p);
            }
        }
        // Evenly spread, so the sample has the dump's mix (low pfns are not typical).
        let step = pages.len().div_ceil(8192).max(1);
        let pages: Vec<_> = pages.into_iter().step_by(step).collect();
        return (
            format!("{} non-zero pages kept in {path}", pages.len()),
            pages,
        );
    }
    if let Ok(path) = std::env::var("VMSIFT_BENCH_VMCORE") {
        let mut vm = Vmcore::open(Path::new(&path), true).expect("open VMSIFT_BENCH_VMCORE");
        let max = vm.max_mapnr();
        let step = (max / 65536).max(1);
        let mut pages = Vec::new();
        let mut pfn = 0;
        while pfn < max && pages.len() < 8192 {
            if let Ok(p) = vm.memory.read_page(pfn)
                && !is_zero_page(p)
            {
                pages.push(p.to_vec());
            }
            pfn += step;
        }
        (format!("{} non-zero pages of {path}", pages.len()), pages)
    } else {
        let kinds = [Fill::Text, Fill::Random, Fill::Text, Fill::Text];
        let pages = (0..1024)
            .map(|i| page(kinds[i as usize % 4], i, PS))
            .collect();
        ("1024 synthetic pages (3/4 text, 1/4 random)".into(), pages)
    }
}

fn measure(mut f: Candidate, pages: &[Vec<u8>]) -> (f64, f64) {
    // Warm up, then run for at least a second.
    for p in pages.iter().take(64) {
        black_box(f(p));
    }
    let (mut n, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        for p in pages {
            bytes += black_box(f(black_box(p))) as u64;
            n += 1;
        }
    }
    (
        n as f64 / start.elapsed().as_secs_f64(),
        bytes as f64 / n as f64,
    )
}

fn main() {
    let (what, pages) = corpus();
    println!("corpus: {what}");
    if let Ok(path) = std::env::var("VMSIFT_BENCH_SAVE") {
        // The corpus as raw pages, to measure other implementations (e.g. liblzo2 from C)
        // on exactly the same input.
        std::fs::write(&path, pages.concat()).expect("write VMSIFT_BENCH_SAVE");
        println!("corpus saved to {path}");
    }
    let candidates: Vec<(&str, Candidate)> = vec![
        ("vmsift -l (lzo)", vmsift(Codec::Lzo)),
        ("  lzo1x crate, level 3 (LZO1X-1)", lzo1x_crate()),
        ("  rust-lzo crate (kernel lzo1x_1)", rust_lzo_crate()),
        ("vmsift -c (zlib)", vmsift(Codec::Zlib)),
        ("  flate2/zlib-rs level 1", zlib_rs(1)),
        ("  flate2/zlib-rs level 2", zlib_rs(2)),
        ("  miniz_oxide level 1", miniz(1)),
        ("  libdeflate level 1", libdeflate(1)),
        ("  libdeflate level 2", libdeflate(2)),
        ("vmsift -p (snappy)", vmsift(Codec::Snappy)),
        ("vmsift -z (zstd level 1)", vmsift(Codec::Zstd)),
    ];
    println!(
        "{:<36} {:>11} {:>9} {:>11}",
        "codec", "pages/s", "MB/s", "bytes/page"
    );
    let only = std::env::var("VMSIFT_BENCH_ONLY").unwrap_or_default();
    for (name, f) in candidates {
        if !name.contains(only.as_str()) {
            continue;
        }
        let (rate, mean) = measure(f, &pages);
        println!(
            "{name:<36} {rate:>11.0} {:>9.1} {mean:>11.0}",
            rate * PS as f64 / 1e6
        );
    }
}
