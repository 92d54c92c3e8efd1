//! Writes the seed corpora that do not come from the real vmcores:
//! `cargo run --example seeds -- VMSIFT_BINARY CORPUS_DIR`.
//!
//! A small synthetic vmcore is dumped by the binary with every codec, as a file and as a
//! flattened stream; synthetic kernels give VMCOREINFO texts and struct pages of every class.

use std::fs;
use std::path::Path;
use std::process::Command;

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bin, dir] = &args[..] else {
        panic!("usage: seeds VMSIFT_BINARY CORPUS_DIR");
    };
    let dir = Path::new(dir);
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
    for (flavor, name) in [(Flavor::Linux6_1, "6.1"), (Flavor::Linux6_12, "6.12")] {
        let k = SynthKernel::new(flavor, 256);
        write(
            dir,
            "vmcoreinfo",
            &format!("synthetic-{name}"),
            k.vmcoreinfo().as_bytes(),
        );
        // [flags: flavor, mmap] [cycle / 64 - 1] [no VMCOREINFO change] struct pages.
        let flavor_bit = u8::from(flavor == Flavor::Linux6_12);
        let mut seed = vec![flavor_bit | 2, 0, 0];
        seed.extend(classes(flavor));
        write(dir, "classifier", &format!("classes-{name}"), &seed);
    }
    fs::remove_dir_all(&tmp).expect("clean up");
}
