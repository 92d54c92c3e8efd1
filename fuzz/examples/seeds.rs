//! Writes the seed corpora: `cargo run --example seeds -- VMSIFT_BINARY CORPUS_DIR [VMCORE...]`.
//!
//! A small synthetic vmcore is dumped by the binary with every codec, as a file and as a
//! flattened stream; synthetic kernels give VMCOREINFO texts and struct pages of every class.
//! Of each real VMCORE only the headers and notes are kept (its memory is not), once cut
//! as they are and once with the PT_LOADs emptied so that the cut parses.

use std::fs;
use std::path::Path;
use std::process::Command;

use vmsift::input::elf::{ElfCore, PT_LOAD};
use vmsift::synth::{
    Flavor, MINIMAL_VMCOREINFO, PAGE_OFFSET, SynthKernel, SynthVmcore, mixed_pages,
};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).expect("corpus dir");
    fs::write(d.join(name), bytes).expect("write seed");
}

/// Struct pages of every class from pfn 32 (as tests/filter.rs builds them, in a kernel
/// small enough for the classifier target).
fn classes(flavor: Flavor) -> Vec<u8> {
    let mut k = SynthKernel::new(flavor, 256);
    assert!(k.first_free_pfn <= 32);
    let anon = (PAGE_OFFSET + 0x7000) | 1;
    let file = PAGE_OFFSET + 0x9000;
    let (lru, private) = (k.flag("lru"), k.flag("private"));
    let (swapcache, swapbacked) = (k.flag("swapcache"), k.flag("swapbacked"));
    k.buddy(32, 3);
    k.buddy(64, 6);
    k.folio(48, 3, lru | swapbacked, anon, false);
    k.set_u64(40, 24, anon);
    k.folio(44, 2, 0, file, true);
    k.set_u64(56, 0, lru);
    k.set_u64(56, 24, file);
    k.set_u64(57, 0, lru | private);
    k.set_u64(57, 24, file);
    k.set_u64(58, 0, swapcache | swapbacked);
    k.set_u64(58, 24, file);
    k.set_u64(59, 0, k.flag("hwpoison"));
    let offline = k.page_type("offline");
    k.set_u32(60, 48, offline);
    k.buddy(61, 30);
    let map = k.mem_map_range();
    k.mem[map.start..map.start + 128 * 64].to_vec()
}

/// The headers and notes of a real ELF64 little-endian vmcore, and its VMCOREINFO text.
fn real(dir: &Path, path: &Path) {
    let name = path.file_stem().expect("a file name").to_string_lossy();
    let file = fs::File::open(path).expect("open the vmcore");
    let core = ElfCore::parse(&file).expect("a vmcore");
    let memory = core
        .loads
        .iter()
        .map(|l| l.file_offset)
        .min()
        .expect("PT_LOADs");
    let mut cut = vec![0u8; memory as usize];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut cut, 0).expect("read the headers");
    write(dir, "elf_notes", &format!("{name}-cut"), &cut);
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let phoff = u64_at(&cut, 32) as usize;
    let phnum = u16::from_le_bytes([cut[56], cut[57]]) as usize;
    for i in 0..phnum {
        let ph = phoff + 56 * i;
        if u32::from_le_bytes(cut[ph..ph + 4].try_into().expect("4 bytes")) == PT_LOAD {
            cut[ph + 8..ph + 16].copy_from_slice(&memory.to_le_bytes()); // p_offset
            cut[ph + 32..ph + 40].copy_from_slice(&0u64.to_le_bytes()); // p_filesz
        }
    }
    write(dir, "elf_notes", &format!("{name}-headers"), &cut);
    let info = core
        .notes()
        .find(|n| n.name == b"VMCOREINFO")
        .expect("VMCOREINFO");
    write(dir, "vmcoreinfo", &name, info.desc);
}

/// A printk ring of three records for the dmesg target: its layout in VMCOREINFO lines,
/// a NUL, then memory from pfn 32 (prb pointer, ring, descriptors, infos, text).
fn printk_ring() -> Vec<u8> {
    const LAYOUT: &str = "SYMBOL(prb)=ffff888000020000\nSIZE(printk_ringbuffer)=128\n\
        OFFSET(printk_ringbuffer.desc_ring)=0\nOFFSET(printk_ringbuffer.text_data_ring)=64\n\
        OFFSET(atomic_long_t.counter)=0\nOFFSET(prb_desc_ring.count_bits)=0\n\
        OFFSET(prb_desc_ring.descs)=8\nOFFSET(prb_desc_ring.infos)=16\n\
        OFFSET(prb_desc_ring.head_id)=24\nOFFSET(prb_desc_ring.tail_id)=32\n\
        OFFSET(prb_data_ring.size_bits)=0\nOFFSET(prb_data_ring.data)=8\nSIZE(prb_desc)=24\n\
        OFFSET(prb_desc.state_var)=0\nOFFSET(prb_desc.text_blk_lpos)=8\n\
        OFFSET(prb_data_blk_lpos.begin)=0\nOFFSET(prb_data_blk_lpos.next)=8\n\
        SIZE(printk_info)=16\nOFFSET(printk_info.ts_nsec)=0\nOFFSET(printk_info.text_len)=8\n";
    let va = |at: usize| PAGE_OFFSET + 0x20000 + at as u64;
    let (descs, infos, text) = (0x1000, 0x1100, 0x1200);
    let mut m = vec![0u8; text + 256];
    let mut put = |at: usize, v: u64| m[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(0, va(0x40));
    put(0x40, 2); // 4 descriptors
    put(0x48, va(descs));
    put(0x50, va(infos));
    put(0x58, 2); // head id
    put(0x80, 8); // 256 bytes of text
    put(0x88, va(text));
    for id in 0..3u64 {
        let at = id as usize;
        put(descs + 24 * at, 2 << 62 | id); // finalized
        put(descs + 24 * at + 8, id * 64);
        put(descs + 24 * at + 16, (id + 1) * 64);
        put(infos + 16 * at, 1_000_000 * (id + 1));
        put(infos + 16 * at + 8, 17);
        put(text + 64 * at, id);
    }
    for id in 0..3 {
        let line = format!("record {id}\nsecond \x01");
        let at = text + 64 * id + 8;
        m[at..at + line.len()].copy_from_slice(line.as_bytes());
    }
    [LAYOUT.as_bytes(), &[0], &m].concat()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bin, dir, vmcores @ ..] = &args[..] else {
        panic!("usage: seeds VMSIFT_BINARY CORPUS_DIR [VMCORE...]");
    };
    let dir = Path::new(dir);
    for v in vmcores {
        real(dir, Path::new(v));
    }
    let tmp = std::env::temp_dir().join(format!("vmsift-seeds-{}", std::process::id()));
    fs::create_dir_all(&tmp).expect("tmp dir");

    let vmcore = SynthVmcore::new()
        .prstatus(2)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0x1000, mixed_pages(1, 6, 4096), 8 * 4096)
        .load(
            0x10000,
            mixed_pages(9, 2, 4096)[..4096 + 100].to_vec(),
            3 * 4096,
        )
        .to_bytes();
    let elf = tmp.join("vmcore");
    fs::write(&elf, &vmcore).expect("write vmcore");
    let small = SynthVmcore::new()
        .prstatus(2)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0x1000, vec![0xaa; 64], 0x8000);
    write(dir, "elf_notes", "synthetic", &small.to_bytes());
    write(dir, "dmesg", "ring", &printk_ring());
    // pipeline: [dump level] [codec index] ELF.
    let pages = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, mixed_pages(3, 3, 4096), 4 * 4096);
    write(
        dir,
        "pipeline",
        "small",
        &[&[1u8, 3][..], &small.to_bytes()].concat(),
    );
    write(
        dir,
        "pipeline",
        "pages",
        &[&[31u8, 0][..], &pages.to_bytes()].concat(),
    );
    write(dir, "vmcoreinfo", "minimal", MINIMAL_VMCOREINFO.as_bytes());
    let codecs = [
        ("-c", "zlib"),
        ("-l", "lzo"),
        ("-p", "snappy"),
        ("-z", "zstd"),
        ("", "raw"),
    ];
    for (codec, name) in codecs {
        for (flat, target) in [(false, "kdump_reader"), (true, "flat_reader")] {
            let out = tmp.join(format!("{name}-{flat}"));
            let _ = fs::remove_file(&out);
            let mut cmd = Command::new(bin);
            cmd.args(["-d", "1"])
                .args((!codec.is_empty()).then_some(codec))
                .arg(&elf);
            let o = if flat {
                cmd.arg("-F").output().expect("run vmsift")
            } else {
                cmd.arg(&out).output().expect("run vmsift")
            };
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let bytes = if flat {
                o.stdout
            } else {
                fs::read(&out).expect("dump")
            };
            write(dir, target, name, &bytes);
        }
    }
    for (flavor, name) in [
        (Flavor::Linux6_1, "6.1"),
        (Flavor::Linux6_12, "6.12"),
        (Flavor::Linux7_1, "7.1"),
        (Flavor::Linux7_1Hvo, "7.1-hvo"),
    ] {
        let k = SynthKernel::new(flavor, 256);
        write(
            dir,
            "vmcoreinfo",
            &format!("synthetic-{name}"),
            k.vmcoreinfo().as_bytes(),
        );
        // [flags: flavor, mmap] [cycle / 64 - 1] [no VMCOREINFO change] struct pages.
        let flavor_bit = match flavor {
            Flavor::Linux6_1 => 0,
            Flavor::Linux6_12 => 1,
            Flavor::Linux7_1 => 8,
            _ => 9,
        };
        let mut seed = vec![flavor_bit | 2, 0, 0];
        seed.extend(classes(flavor));
        write(dir, "classifier", &format!("classes-{name}"), &seed);
    }
    fs::remove_dir_all(&tmp).expect("clean up");
}
