//! The whole dump: an arbitrary (small) ELF vmcore through `vmsift -d LEVEL [codec]` into a
//! temporary file, which is then read back page by page; and `--dump-dmesg` of the same
//! input. Input: [level] [codec] ELF bytes.
#![no_main]

use std::fs;

use libfuzzer_sys::fuzz_target;
use vmsift::input::elf::ElfCore;
use vmsift::input::kdump::KdumpFile;

/// Inputs claiming more memory than this are skipped: dumping them is slow by nature
/// (bitmaps and descriptors grow with it), which is no bug.
const MAX_PFNS: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some(([level, codec], elf)) = data.split_first_chunk() else {
        return;
    };
    let Ok(core) = ElfCore::parse(elf) else {
        return;
    };
    if core.loads.iter().any(|l| l.phys_end() > MAX_PFNS * 4096) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vmsift-fuzz-pipeline-{}", std::process::id()));
    let _ = fs::create_dir_all(&dir);
    let (vmcore, dump, log) = (dir.join("vmcore"), dir.join("dump"), dir.join("log"));
    fs::write(&vmcore, elf).expect("write the input");
    let _ = fs::remove_file(&dump);
    let _ = fs::remove_file(&log);
    let codec = ["-c", "-l", "-p", "-z", "--non-mmap"][*codec as usize % 5];
    let level = (level % 32).to_string();
    let status = vmsift::app::main([
        "vmsift".as_ref(),
        "--message-level".as_ref(),
        "0".as_ref(),
        "-d".as_ref(),
        level.as_ref(),
        codec.as_ref(),
        vmcore.as_os_str(),
        dump.as_os_str(),
    ]);
    if status == 0 {
        let file = fs::File::open(&dump).expect("a finished dump exists");
        let dump = KdumpFile::open(file).expect("a finished dump opens");
        for pfn in 0..dump.header.max_mapnr {
            dump.read_page(pfn).expect("a finished dump's pages read");
        }
    }
    let _ = vmsift::app::main([
        "vmsift".as_ref(),
        "--message-level".as_ref(),
        "0".as_ref(),
        "--dump-dmesg".as_ref(),
        vmcore.as_os_str(),
        log.as_os_str(),
    ]);
});
