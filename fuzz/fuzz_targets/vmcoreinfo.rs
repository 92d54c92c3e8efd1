//! VmcoreInfo::parse on arbitrary bytes, every accessor on every key it found, and the
//! readers built from it (struct page layout, each architecture's translation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::hint::black_box;
use vmsift::kernel::layout::{NEEDS, PageLayout};
use vmsift::kernel::vmcoreinfo::VmcoreInfo;
use vmsift::arch::Arch;
use vmsift::arch::{arm64::EM_AARCH64, x86_64::EM_X86_64};
use vmsift::input::bytes::Endian;

fuzz_target!(|data: &[u8]| {
    let info = VmcoreInfo::parse(data);
    for (key, value) in info.lines() {
        assert_eq!(info.get(key), Some(value));
        let Some((kind, rest)) = key.split_once('(') else {
            continue;
        };
        let name = rest.strip_suffix(')').unwrap_or(rest);
        match kind {
            "SYMBOL" => _ = black_box(info.symbol(name)),
            "SIZE" => _ = black_box(info.size(name)),
            "OFFSET" => _ = black_box(info.offset(name)),
            "LENGTH" => _ = black_box(info.length(name)),
            _ => _ = black_box(info.number(name)),
        }
    }
    black_box((info.osrelease(), info.crashtime(), info.kernel_offset()));
    if let Ok(size) = info.page_size() {
        assert!(size.is_power_of_two() && (1024..=1 << 20).contains(&size));
    }
    if let Ok(layout) = PageLayout::from_vmcoreinfo(&info) {
        for (rule, _) in NEEDS {
            for key in layout.missing(*rule) {
                black_box(layout.why(key));
            }
        }
    }
    for machine in [EM_X86_64, EM_AARCH64] {
        for page_size in [4096, 16384, 65536] {
            _ = black_box(Arch::new(machine, Endian::Little, &info, page_size));
        }
    }
});
