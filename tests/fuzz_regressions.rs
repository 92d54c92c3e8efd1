//! Inputs the fuzz targets (fuzz/) found wrong, each checked through the same entry point
//! as the target that found it, so plain `cargo test` keeps them fixed.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmsift::filter::{ClassCounts, DumpLevel};
use vmsift::input::Vmcore;
use vmsift::synth::{Flavor, SynthKernel, SynthVmcore};

mod common;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The 2nd bitmap and class counts of all `pages`, built `per_cycle` pfns at a time.
fn bitmap2(vm: &Vmcore, level: u8, pages: u64, per_cycle: u64) -> (Vec<u64>, ClassCounts) {
    let mut f = vmsift::filter::filter_for(vm, DumpLevel(level)).expect("filter");
    assert!(
        f.classes.is_some(),
        "the synthetic kernel's mem_map is usable"
    );
    f.begin_pass();
    let mut set = Vec::new();
    for start in (0..pages).step_by(per_cycle as usize) {
        set.extend(f.bitmap2(start, (start + per_cycle).min(pages)).iter_set());
    }
    (set, f.counts())
}

/// classifier: with SIZE(page) = 67 (found by the fuzzer; now refused as not a multiple of
/// 8, so 72 here) the end of mem_map lies beyond the pages that map it.
/// A batch that reaches there was kept whole, so which pages were classified depended on
/// where the cycles ended: one 256-pfn cycle excluded nothing, 64-pfn cycles excluded the
/// hwpoison pages of the first three. Now each readable struct page decides, whatever the
/// cycle.
#[test]
fn classifier_partly_unreadable_mem_map_is_cycle_independent() {
    let dir = scratch("classifier-unreadable");
    let mut k = SynthKernel::new(Flavor::Linux6_12, 256);
    let size = 72;
    let map = k.mem_map_range();
    let hwpoison = k.flag("hwpoison").to_le_bytes();
    // 16 KiB of mapped mem_map hold 227 struct pages of 72 bytes, all zero but pfns 100
    // and 200 (hwpoison).
    k.mem[map.clone()].fill(0);
    for pfn in [100, 200] {
        let at = map.start + pfn * size;
        k.mem[at..at + 8].copy_from_slice(&hwpoison);
    }
    let info = k
        .vmcoreinfo()
        .replace("SIZE(page)=64", &format!("SIZE(page)={size}"));
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(&info)
        .load(0, k.mem, 0);
    let path = dir.join("vmcore");
    fs::write(&path, s.to_bytes()).expect("write");
    let vm = Vmcore::open(&path, true).expect("open");
    let (whole, counts) = bitmap2(&vm, 0, 256, 256);
    assert!(
        !whole.contains(&100) && !whole.contains(&200),
        "hwpoison pfns dumped"
    );
    assert_eq!(counts.hwpoison, 2);
    for per_cycle in [64, 128, 192] {
        assert_eq!(bitmap2(&vm, 0, 256, per_cycle), (whole.clone(), counts));
    }
}

/// pipeline: a vmcore whose only PT_LOAD has no size was dumped into a file with no bitmap
/// block, which the kdump reader (rightly) refuses. Such an input is now refused itself.
#[test]
fn pipeline_vmcore_without_memory_is_refused() {
    let dir = scratch("pipeline-no-memory");
    let s = SynthVmcore::new()
        .vmcoreinfo(vmsift::synth::MINIMAL_VMCOREINFO)
        .load(0x1000, Vec::new(), 0);
    let (vmcore, dump) = (dir.join("vmcore"), dir.join("dump"));
    fs::write(&vmcore, s.to_bytes()).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(["-d", "1", "-z"])
        .arg(&vmcore)
        .arg(&dump)
        .output()
        .expect("run vmsift");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("PT_LOADs describe no memory"), "{err}");
    assert!(!dump.exists(), "a dump was left behind");
}

/// dmesg: OFFSETs of the printk ring come from VMCOREINFO; two huge ones added together
/// overflowed (a panic in builds with overflow checks, a wild read otherwise). Offsets
/// beyond any structure's size are now refused.
#[test]
fn dmesg_huge_ring_offsets_are_refused() {
    let dir = scratch("dmesg-offsets");
    let mut k = SynthKernel::new(Flavor::Linux6_12, 256);
    // SYMBOL(prb) at pfn 32 points at the ring right after it.
    let prb = vmsift::synth::PAGE_OFFSET + 0x20000;
    k.mem[0x20000..0x20008].copy_from_slice(&(prb + 0x40).to_le_bytes());
    let huge = i64::MAX;
    let info = k.vmcoreinfo()
        + &format!(
            "SYMBOL(prb)={prb:x}\nSIZE(printk_ringbuffer)=128\nOFFSET(atomic_long_t.counter)=0\n\
             OFFSET(printk_ringbuffer.desc_ring)={huge}\nOFFSET(printk_ringbuffer.text_data_ring)=64\n\
             OFFSET(prb_desc_ring.count_bits)={huge}\n"
        );
    let s = SynthVmcore::new().vmcoreinfo(&info).load(0, k.mem, 0);
    let (vmcore, log) = (dir.join("vmcore"), dir.join("log"));
    fs::write(&vmcore, s.to_bytes()).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .arg("--dump-dmesg")
        .arg(&vmcore)
        .arg(&log)
        .output()
        .expect("run vmsift");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("OFFSET(printk_ringbuffer.desc_ring)=9223372036854775807 is implausible"),
        "{err}"
    );
}

/// Runs the vmsift binary; returns its exit code and stderr.
fn vmsift(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(args)
        .output()
        .expect("run vmsift");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A kdump file dumped by vmsift from a small synthetic vmcore, then `edit`ed in place.
/// `edit` gets the file, the block size and the offset and length of one bitmap.
fn edited_dump(dir: &Path, edit: impl FnOnce(&mut Vec<u8>, usize, usize, usize)) -> PathBuf {
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(vmsift::synth::MINIMAL_VMCOREINFO)
        .load(0, vmsift::synth::mixed_pages(1, 64, 4096), 0);
    let (vmcore, dump) = (dir.join("vmcore"), dir.join("dump"));
    fs::write(&vmcore, s.to_bytes()).expect("write");
    let (code, err) = vmsift(&["-d".as_ref(), "0".as_ref(), vmcore.as_ref(), dump.as_ref()]);
    assert_eq!(code, Some(0), "{err}");
    let mut bytes = fs::read(&dump).expect("read the dump");
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4"));
    let block = u32_at(&bytes, 428) as usize;
    let sub_hdr_size = u32_at(&bytes, 432) as usize;
    let bitmap_len = u32_at(&bytes, 436) as usize * block / 2;
    edit(&mut bytes, block, (1 + sub_hdr_size) * block, bitmap_len);
    fs::write(&dump, bytes).expect("write the edited dump");
    dump
}

/// kdump_struct: a kdump file whose 1st bitmap is empty (no pfn is memory) was re-filtered
/// into a dump of no page frames and no bitmap block, which the kdump reader (rightly)
/// refuses. Such an input is refused itself, as an ELF vmcore without memory is.
#[test]
fn kdump_struct_dump_without_memory_is_refused() {
    let dir = scratch("kdump-no-memory");
    let input = edited_dump(&dir, |b, _, bitmaps, len| {
        b[bitmaps..bitmaps + 2 * len].fill(0);
    });
    let out = dir.join("out");
    for args in [
        vec![
            "-d".as_ref(),
            "1".as_ref(),
            input.as_os_str(),
            out.as_os_str(),
        ],
        vec!["--dump-dmesg".as_ref(), input.as_os_str(), out.as_os_str()],
    ] {
        let (code, err) = vmsift(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains("its 1st bitmap describes no memory"), "{err}");
        assert!(!out.exists(), "{args:?} left a file behind");
    }
}

/// kdump_struct: re-filtering a dump none of whose pages has a descriptor (2nd bitmap
/// empty) wrote the 2nd bitmap only up to its last pfn's byte; with no descriptor and no
/// page after it, the file ended inside the bitmap's block and the kdump reader refused
/// it as truncated. (An ELF input whose pages are all excluded at a level without bit 1
/// would do the same.) The bitmap's last block is now written whole, to a file or a
/// flattened stream.
#[test]
fn kdump_struct_dump_of_no_page_is_whole() {
    let dir = scratch("kdump-no-page");
    let input = edited_dump(&dir, |b, _, bitmaps, len| {
        b[bitmaps + len..bitmaps + 2 * len].fill(0);
    });
    let (out, flat, rebuilt) = (dir.join("out"), dir.join("flat"), dir.join("rebuilt"));
    let (code, err) = vmsift(&["-d".as_ref(), "0".as_ref(), input.as_ref(), out.as_ref()]);
    assert_eq!(code, Some(0), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(["-F", "-d", "0"])
        .arg(&input)
        .stdout(fs::File::create(&flat).expect("create"))
        .output()
        .expect("run vmsift -F");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .arg("-R")
        .arg(&rebuilt)
        .stdin(fs::File::open(&flat).expect("open"))
        .output()
        .expect("run vmsift -R");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for path in [&out, &rebuilt] {
        let file = fs::File::open(path).expect("open the dump");
        let dump = vmsift::input::kdump::KdumpFile::open(file).expect("the dump opens");
        assert_eq!(dump.header.max_mapnr, 64);
        for pfn in 0..64 {
            assert_eq!(
                dump.read_page(pfn).expect("read"),
                vmsift::input::kdump::Page::Excluded
            );
        }
    }
}

/// vmsift under a 64 MiB address-space limit (as tests/real_vmcores.rs runs it); returns
/// the exit code and stderr.
fn vmsift_in_64_mib(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 65536 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_vmsift"))
        .args(args)
        .output()
        .expect("run vmsift");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Found while choosing the fuzzing malloc limit: a kdump header's note size was trusted
/// up to 64 MiB, and a buffer of that size allocated before the read found the file far
/// shorter: a 64-page dump claiming 60 MiB of notes aborted a run limited to 64 MiB of
/// address space (exit 134). The notes must now lie within the file.
#[test]
fn kdump_notes_larger_than_the_file_are_refused() {
    let dir = scratch("kdump-huge-notes");
    let input = edited_dump(&dir, |b, block, _, _| {
        b[block + 56..block + 64].copy_from_slice(&(60u64 << 20).to_le_bytes());
    });
    let out = dir.join("out");
    for args in [
        vec![
            "-d".as_ref(),
            "1".as_ref(),
            input.as_os_str(),
            out.as_os_str(),
        ],
        vec!["--dump-dmesg".as_ref(), input.as_os_str(), out.as_os_str()],
    ] {
        let (code, err) = vmsift_in_64_mib(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} left a file behind");
    }
}

/// dmesg, under the capture-kernel limits: the 3.5–5.9 log buffer's length is read from
/// the crashed kernel's memory (`log_buf_len`, up to 2^28 accepted), and a buffer that
/// large was allocated and zeroed before any of it was read. A vmcore of 1 MiB claiming a
/// 256 MiB log made `--dump-dmesg` touch 256 MiB (an OOM kill in a capture kernel) only
/// to find the buffer unmapped. The buffer now grows only with what is actually read.
#[test]
fn dmesg_log_buffer_larger_than_the_dump_stays_small() {
    let dir = scratch("dmesg-log-buf");
    let mut k = SynthKernel::new(Flavor::Linux6_12, 256);
    // At pfn 32: the log_buf pointer (to pfn 33), log_buf_len, log_first_idx, log_next_idx.
    let base = vmsift::synth::PAGE_OFFSET + 0x20000;
    k.mem[0x20000..0x20008].copy_from_slice(&(base + 0x1000).to_le_bytes());
    k.mem[0x20008..0x2000c].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
    let info = k.vmcoreinfo()
        + &format!(
            "SYMBOL(log_buf)={base:x}\nSYMBOL(log_buf_len)={:x}\nSYMBOL(log_first_idx)={:x}\n\
             SYMBOL(log_next_idx)={:x}\nSIZE(printk_log)=16\nOFFSET(printk_log.ts_nsec)=0\n\
             OFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10\n",
            base + 8,
            base + 16,
            base + 20
        );
    let s = SynthVmcore::new().vmcoreinfo(&info).load(0, k.mem, 0);
    let (vmcore, log, rss) = (dir.join("vmcore"), dir.join("log"), dir.join("rss"));
    fs::write(&vmcore, s.to_bytes()).expect("write");
    let args = [
        OsStr::new("--dump-dmesg"),
        vmcore.as_os_str(),
        log.as_os_str(),
    ];
    let (o, kib) = common::vmsift_measured(&args, &rss);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot read the log buffer"), "{err}");
    assert!(kib < 64 << 10, "peak RSS {kib} KiB");
}
