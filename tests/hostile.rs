//! Hostile inputs: for every header field of the kdump, flattened and ELF readers that
//! places or sizes anything, a copy of a small valid input with an absurd value there. vmsift
//! reads each one (re-filtering or dumping it, and `--dump-dmesg`) inside a 64 MiB address
//! space, as a capture kernel would give it: it must end with exit status 0 or 1 (with
//! one error line), never abort on a failed allocation (134), never die of a signal, and
//! never run on for long.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmsift::input::kdump::KdumpFile;
use vmsift::synth::{MINIMAL_VMCOREINFO, SynthVmcore, mixed_pages};

const PS: usize = 4096;
/// The address space each run gets (`ulimit -v`, KiB).
const ADDRESS_SPACE_KIB: u32 = 64 << 10;
/// Longer than any of these runs takes; a run past it has hung.
const TIME_LIMIT: Duration = Duration::from_secs(60);

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The VMCOREINFO of the inputs: the minimal one, and the limit of physical addresses that
/// every x86_64 kernel since 5.x exports (a PT_LOAD beyond it is refused).
fn vmcoreinfo() -> String {
    format!("{MINIMAL_VMCOREINFO}NUMBER(MAX_PHYSMEM_BITS)=46\n")
}

/// A 64-page ELF vmcore (some pages zero) with `vmcoreinfo`.
fn elf_vmcore(vmcoreinfo: &str) -> Vec<u8> {
    SynthVmcore::new()
        .prstatus(2)
        .vmcoreinfo(vmcoreinfo)
        .load(0, mixed_pages(3, 64, PS), 0)
        .to_bytes()
}

fn vmsift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmsift"))
}

/// Runs vmsift with `args` inside the address-space limit; returns its exit code and
/// stderr, or fails the test on a signal, an abort or a hang.
fn run_limited(what: &str, args: &[&Path]) -> (i32, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_vmsift"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vmsift");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let Some(code) = status.code() else {
        panic!("{what}: killed by a signal ({status}); stderr:\n{err}");
    };
    assert!(
        code == 0 || code == 1,
        "{what}: exit status {code} (134: an aborted allocation); stderr:\n{err}"
    );
    if code == 1 {
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("vmsift: error: ") || last.starts_with("vmsift: "),
            "{what}: exit 1 without an error line; stderr:\n{err}"
        );
    }
    (code, err)
}

/// Re-filters (or dumps) `input` at level 31 and reads its kernel log, each inside the
/// limit. Returns the exit codes.
fn read_both_ways(dir: &Path, name: &str, input: &[u8]) -> (i32, i32) {
    let path = dir.join(name);
    fs::write(&path, input).expect("write input");
    let out = dir.join(format!("{name}.out"));
    let log = dir.join(format!("{name}.log"));
    let _ = fs::remove_file(&out);
    let _ = fs::remove_file(&log);
    let (dump, _) = run_limited(
        &format!("{name}: -l -d 31"),
        &[
            Path::new("-l"),
            Path::new("-d"),
            Path::new("31"),
            &path,
            &out,
        ],
    );
    let (dmesg, _) = run_limited(
        &format!("{name}: --dump-dmesg"),
        &[Path::new("--dump-dmesg"), &path, &log],
    );
    let _ = fs::remove_file(&path);
    let _ = fs::remove_file(&out);
    (dump, dmesg)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A kdump-compressed dump of `vmcore` made by vmsift (`-d 1`, raw pages, so that the
/// descriptors are easy to find).
fn kdump_of(dir: &Path, vmcore: &[u8]) -> Vec<u8> {
    let input = dir.join("base.elf");
    let out = dir.join("base.kdump");
    fs::write(&input, vmcore).expect("write vmcore");
    let _ = fs::remove_file(&out);
    let st = vmsift()
        .args(["-d", "1"])
        .arg(&input)
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .expect("vmsift");
    assert!(st.success(), "the base dump");
    fs::read(&out).expect("read dump")
}

/// A flattened record as it is in the stream: offset, size (both as read, signed) and data.
type Record<'a> = (i64, i64, &'a [u8]);

/// A flattened stream of `image` (one record of the whole file), then `extra` records.
fn flattened(image: &[u8], extra: &[Record]) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    out[..12].copy_from_slice(b"makedumpfile");
    out[16..24].copy_from_slice(&1i64.to_be_bytes()); // type: flattened
    out[24..32].copy_from_slice(&1i64.to_be_bytes()); // version
    let mut record = |offset: i64, size: i64, data: &[u8]| {
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(data);
    };
    record(0, image.len() as i64, image);
    for &(offset, size, data) in extra {
        record(offset, size, data);
    }
    record(-1, -1, &[]);
    out
}

/// Where things are in a kdump file written with 4 KiB blocks.
struct Offsets {
    bitmaps: usize,
    bitmap_len: usize,
    descs: usize,
}

fn offsets(image: &[u8]) -> Offsets {
    let u32_at = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().expect("4 bytes"));
    let bs = u32_at(428) as usize;
    let sub_blocks = u32_at(432) as usize;
    let bitmap_blocks = u32_at(436) as usize;
    Offsets {
        bitmaps: (1 + sub_blocks) * bs,
        bitmap_len: bitmap_blocks * bs / 2,
        descs: (1 + sub_blocks + bitmap_blocks) * bs,
    }
}

/// Every header field of the kdump reader that places or sizes something, each with
/// absurd values, read as a file and as a flattened stream (with and without a record far
/// beyond the data, which makes the stream's apparent size huge).
#[test]
fn absurd_kdump_header_fields_end_in_0_or_1_within_64_mib() {
    let dir = scratch("kdump");
    let good = kdump_of(&dir, &elf_vmcore(&vmcoreinfo()));
    assert!(KdumpFile::open(&good[..]).is_ok());
    assert_eq!(
        read_both_ways(&dir, "intact", &good),
        (0, 1),
        "no log in it"
    );
    let bs = PS;
    let o = offsets(&good);
    // (name, offset, width in bytes) of the main header and the sub-header (block 1).
    let fields: &[(&str, usize, usize)] = &[
        ("version", 8, 4),
        ("status", 424, 4),
        ("block_size", 428, 4),
        ("sub_hdr_size", 432, 4),
        ("bitmap_blocks", 436, 4),
        ("max_mapnr", 440, 4),
        ("nr_cpus", 460, 4),
        ("split", bs + 12, 4),
        ("start_pfn", bs + 16, 8),
        ("end_pfn", bs + 24, 8),
        ("offset_vmcoreinfo", bs + 32, 8),
        ("size_vmcoreinfo", bs + 40, 8),
        ("offset_note", bs + 48, 8),
        ("size_note", bs + 56, 8),
        ("offset_eraseinfo", bs + 64, 8),
        ("size_eraseinfo", bs + 72, 8),
        ("start_pfn_64", bs + 80, 8),
        ("end_pfn_64", bs + 88, 8),
        ("max_mapnr_64", bs + 96, 8),
    ];
    let values: &[u64] = &[
        0,
        1,
        0x7fff_ffff,
        0xffff_ffff,
        1 << 40,
        (1 << 52) / PS as u64,
        1 << 62,
        u64::MAX,
    ];
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for &(name, at, width) in fields {
        for &v in values {
            if width == 4 && v > u32::MAX as u64 {
                continue;
            }
            let mut b = good.clone();
            match width {
                4 => put_u32(&mut b, at, v as u32),
                _ => put_u64(&mut b, at, v),
            }
            variants.push((format!("{name}={v:#x}"), b));
        }
    }
    // A split file whose range is inside the dump but whose descriptors are not there.
    let mut b = good.clone();
    put_u32(&mut b, bs + 12, 1);
    put_u64(&mut b, bs + 80, 1);
    put_u64(&mut b, bs + 88, 2);
    variants.push(("split 1-2".into(), b));
    // Bitmaps: the 1st alternating bits (as many runs of memory as it can hold), the 2nd
    // all set (more descriptors than the file has).
    let mut b = good.clone();
    b[o.bitmaps..o.bitmaps + o.bitmap_len].fill(0x55);
    variants.push(("bitmap1 alternating".into(), b));
    let mut b = good.clone();
    b[o.bitmaps + o.bitmap_len..o.descs].fill(0xff);
    variants.push(("bitmap2 all set".into(), b));
    // Descriptors: offsets and sizes far outside the file, unknown flags.
    for (name, field, v) in [
        ("desc offset", 0, u64::MAX),
        ("desc offset", 0, 1 << 40),
        ("desc size", 8, 0xffff_ffff),
        ("desc size", 8, 1 << 20),
        ("desc flags", 12, 0xffff_ffff),
    ] {
        let mut b = good.clone();
        for i in 0..8 {
            let at = o.descs + 24 * i + field;
            match field {
                0 => put_u64(&mut b, at, v),
                _ => put_u32(&mut b, at, v as u32),
            }
        }
        variants.push((format!("{name}={v:#x}"), b));
    }
    // A header that claims bitmaps of 16 GiB: as a file it is refused (the file is
    // short); a flattened stream reaches that size with one record far beyond the data.
    let mut huge = good.clone();
    put_u32(&mut huge, 436, 1 << 22);
    put_u64(&mut huge, bs + 96, 1 << 36);
    for (name, b) in &variants {
        read_both_ways(&dir, &format!("file {name}"), b);
        read_both_ways(&dir, &format!("flat {name}"), &flattened(b, &[]));
    }
    for (name, b) in [("intact", &good), ("huge bitmaps", &huge)] {
        let far = [(1i64 << 42, 8, &[7u8; 8][..])];
        read_both_ways(&dir, &format!("flat far {name}"), &flattened(b, &far));
    }
}

/// Flattened records with absurd offsets and sizes, and more records than the index may
/// hold in the memory a capture kernel has.
#[test]
fn absurd_flattened_records_end_in_0_or_1_within_64_mib() {
    let dir = scratch("flat");
    let good = kdump_of(&dir, &elf_vmcore(&vmcoreinfo()));
    let cases: Vec<(&str, Vec<Record>)> = vec![
        ("size past the end", vec![(0, i64::MAX, &[1u8; 8][..])]),
        (
            "offset + size overflows",
            vec![(i64::MAX - 4, 8, &[1u8; 8][..])],
        ),
        ("negative offset", vec![(-5, 8, &[1u8; 8][..])]),
        ("negative size", vec![(0, -8, &[][..])]),
        ("far record", vec![(1 << 50, 8, &[1u8; 8][..])]),
        ("empty far record", vec![(1 << 62, 0, &[][..])]),
    ];
    for (name, extra) in &cases {
        read_both_ways(&dir, name, &flattened(&good, extra));
    }
    // 1.2 million one-byte records (20 MB of stream) rewriting the dump's header: more
    // than half of 64 MiB can index.
    let tiny: Vec<Record> = (0..1_200_000)
        .map(|i| ((i % 464) as i64, 1, &good[i % 464..i % 464 + 1]))
        .collect();
    let refused = read_both_ways(&dir, "many records", &flattened(&good, &tiny));
    assert_eq!(
        refused,
        (1, 1),
        "more records than the index may hold are refused"
    );
    // Without the end marker: an incomplete stream is refused.
    let mut cut = flattened(&good, &[]);
    cut.truncate(cut.len() - 16);
    let (dump, dmesg) = read_both_ways(&dir, "no end marker", &cut);
    assert_eq!((dump, dmesg), (1, 1), "an incomplete stream is refused");
}

/// Every field of the ELF header and the program headers that places or sizes anything,
/// the notes' sizes, and VMCOREINFO values.
#[test]
fn absurd_elf_fields_end_in_0_or_1_within_64_mib() {
    let dir = scratch("elf");
    let good = elf_vmcore(&vmcoreinfo());
    assert_eq!(
        read_both_ways(&dir, "intact", &good),
        (0, 1),
        "no log in it"
    );
    let phoff = u64::from_le_bytes(good[32..40].try_into().expect("8")) as usize;
    let phnum = u16::from_le_bytes(good[56..58].try_into().expect("2")) as usize;
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, at, width, v) in [
        ("e_phoff", 32, 8, u64::MAX),
        ("e_phoff", 32, 8, 1 << 40),
        ("e_shoff", 40, 8, u64::MAX),
        ("e_phentsize", 54, 2, 0xffff),
        ("e_phentsize", 54, 2, 57),
        ("e_phnum", 56, 2, 0xffff),
        ("e_phnum", 56, 2, 0xfffe),
        ("e_phnum", 56, 2, 0),
    ] {
        let mut b = good.clone();
        match width {
            2 => b[at..at + 2].copy_from_slice(&(v as u16).to_le_bytes()),
            _ => put_u64(&mut b, at, v),
        }
        variants.push((format!("{name}={v:#x}"), b));
    }
    // PN_XNUM with section header 0 claiming 2^32 - 1 program headers.
    let mut b = good.clone();
    b[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    put_u64(&mut b, 40, 64); // e_shoff: the ELF header's own bytes stand for sh0
    b[58..60].copy_from_slice(&64u16.to_le_bytes());
    put_u32(&mut b, 64 + 44, u32::MAX);
    variants.push(("PN_XNUM sh_info=0xffffffff".into(), b));
    for i in 0..phnum {
        let ph = phoff + 56 * i;
        for (name, field, v) in [
            ("p_offset", 8, u64::MAX),
            ("p_offset", 8, 1 << 40),
            ("p_vaddr", 16, u64::MAX),
            ("p_paddr", 24, u64::MAX - 4095),
            ("p_paddr", 24, (1 << 52) - 4096),
            ("p_paddr", 24, 1 << 51),
            ("p_filesz", 32, u64::MAX),
            ("p_filesz", 32, 1 << 40),
            ("p_memsz", 40, u64::MAX),
            ("p_memsz", 40, 1 << 51),
        ] {
            let mut b = good.clone();
            put_u64(&mut b, ph + field, v);
            variants.push((format!("phdr {i} {name}={v:#x}"), b));
        }
    }
    // The first note's sizes (namesz, descsz) as large as they go.
    let note_at = (0..phnum)
        .map(|i| phoff + 56 * i)
        .find(|&ph| u32::from_le_bytes(good[ph..ph + 4].try_into().expect("4")) == 4)
        .map(|ph| u64::from_le_bytes(good[ph + 8..ph + 16].try_into().expect("8")) as usize)
        .expect("a PT_NOTE");
    for (name, field) in [("namesz", 0), ("descsz", 4)] {
        for v in [u32::MAX, 0x7fff_fff0, 1 << 20] {
            let mut b = good.clone();
            put_u32(&mut b, note_at + field, v);
            variants.push((format!("note {name}={v:#x}"), b));
        }
    }
    // VMCOREINFO values that size things.
    for (key, value) in [
        ("PAGESIZE", "1099511627776"),
        ("PAGESIZE", "0"),
        ("PAGESIZE", "18446744073709551615"),
        ("PAGESIZE", "65536"),
        ("NUMBER(phys_base)", "18446744073709551615"),
    ] {
        let info = vmcoreinfo()
            .lines()
            .map(|l| match l.split_once('=') {
                Some((k, _)) if k == key => format!("{k}={value}\n"),
                _ => format!("{l}\n"),
            })
            .collect::<String>();
        variants.push((format!("{key}={value}"), elf_vmcore(&info)));
    }
    // Without MAX_PHYSMEM_BITS, memory up to 2^52 is believed: 1 TiB of it, all but 64
    // pages absent from the file, is dumped cyclically in the same 64 MiB.
    let mut b = elf_vmcore(MINIMAL_VMCOREINFO);
    let load = (0..phnum)
        .map(|i| phoff + 56 * i)
        .find(|&ph| u32::from_le_bytes(b[ph..ph + 4].try_into().expect("4")) == 1)
        .expect("a PT_LOAD");
    put_u64(&mut b, load + 40, 1 << 40);
    let (dump, _) = read_both_ways(&dir, "1 TiB of memory, 64 pages of it in the file", &b);
    assert_eq!(dump, 0);
    for (name, b) in &variants {
        read_both_ways(&dir, name, b);
    }
}

/// `--reassemble` of a split set whose parts claim absurd sizes (the parts are read by the
/// same reader, then copied: the sub-header and bitmaps must be copied in pieces).
#[test]
fn absurd_split_sets_end_in_0_or_1_within_64_mib() {
    let dir = scratch("split");
    let input = dir.join("vmcore");
    fs::write(&input, elf_vmcore(&vmcoreinfo())).expect("write");
    let parts = [dir.join("p1"), dir.join("p2")];
    let st = vmsift()
        .args(["-d", "1", "--split"])
        .arg(&input)
        .args(&parts)
        .stderr(Stdio::null())
        .status()
        .expect("vmsift --split");
    assert!(st.success());
    let p1 = fs::read(&parts[0]).expect("p1");
    let out = dir.join("joined");
    for (name, at, v) in [
        ("sub_hdr_size", 432, 0xffff_ffffu64),
        ("sub_hdr_size", 432, 0x7000),
        ("bitmap_blocks", 436, 0xffff_ffff),
        ("bitmap_blocks", 436, 0x7000),
        ("end_pfn_64", PS + 88, u64::MAX),
        ("start_pfn_64", PS + 80, 1 << 40),
    ] {
        let mut b = p1.clone();
        if at == 432 || at == 436 {
            put_u32(&mut b, at, v as u32);
        } else {
            put_u64(&mut b, at, v);
        }
        // Sparse to 1 GiB, so the claimed sizes fit inside the file's length.
        let bad = dir.join("bad");
        fs::write(&bad, &b).expect("write part");
        fs::OpenOptions::new()
            .write(true)
            .open(&bad)
            .and_then(|f| f.set_len(1 << 30))
            .expect("sparse");
        let _ = fs::remove_file(&out);
        let (code, _) = run_limited(
            &format!("reassemble {name}={v:#x}"),
            &[Path::new("--reassemble"), &bad, &parts[1], &out],
        );
        assert_eq!(code, 1, "reassemble {name}={v:#x} is refused");
    }
}
