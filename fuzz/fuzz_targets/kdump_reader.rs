//! KdumpFile::open on arbitrary bytes, then the notes and every page frame's descriptor
//! and page.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmsift::input::kdump::{KdumpFile, Page};

fuzz_target!(|data: &[u8]| {
    let Ok(dump) = KdumpFile::open(data) else {
        return;
    };
    let _ = dump.notes();
    // The bitmaps come from the input, so max_mapnr is at most 8 bits per input byte.
    assert!(dump.header.max_mapnr <= 8 * data.len() as u64);
    for pfn in 0..dump.header.max_mapnr {
        let _ = dump.descriptor(pfn);
        if let Ok(Page::Data(page)) = dump.read_page(pfn) {
            assert_eq!(page.len() as u64, dump.header.block_size);
        }
    }
});
