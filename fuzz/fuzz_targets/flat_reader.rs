//! Flattened-format replay of arbitrary bytes into an in-memory file (bounded), then that
//! file read back as a kdump-compressed dump.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsift::Error;
use vmsift::format::flat;
use vmsift::input::kdump::KdumpFile;

/// The replayed file lives in memory: writes past this are refused (a real -R writes a
/// sparse file, which has no such limit).
const MAX_FILE: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = flat::check_header(data);
    let mut file = Vec::new();
    let mut written = 0u64;
    let result = flat::replay(&mut &data[..], |at, bytes| {
        let end = at
            .checked_add(bytes.len() as u64)
            .filter(|&e| e <= MAX_FILE)
            .ok_or_else(|| Error::bad_input("beyond the fuzzing sink"))?;
        if file.len() < end as usize {
            file.resize(end as usize, 0);
        }
        file[at as usize..end as usize].copy_from_slice(bytes);
        written += bytes.len() as u64;
        Ok(())
    });
    if let Ok(total) = result {
        assert_eq!(total, written);
        if let Ok(dump) = KdumpFile::open(&file[..]) {
            for pfn in 0..dump.header.max_mapnr.min(1 << 16) {
                let _ = dump.read_page(pfn);
            }
        }
    }
});
