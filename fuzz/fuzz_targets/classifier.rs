//! The struct-page classifier on a synthetic kernel (real page tables, mem_section and
//! mem_map) whose struct pages, mem_section entry and VMCOREINFO numbers come from the
//! input, at every dump level. Whatever the bytes, it must not panic or loop, and cycles of
//! any size must give the bitmap one whole pass gives.
//!
//! Flags: bit 0 and bit 3 pick the flavor (6.1, 6.12, 7.1, 7.1 with the mask encoding),
//! bit 1 mmap, bit 2 a section_mem_map from the input.
//!
//! Input: [flags] [cycle / 64 - 1] [n] n × [key, mode, (8 value bytes if mode & 1)]
//!        [8 bytes of section_mem_map if flags & 4] [struct page bytes from pfn 0 ...]
#![no_main]

use std::io::Write;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vmsift::filter::filter_for;
use vmsift::filter::DumpLevel;
use vmsift::input::Vmcore;
use vmsift::synth::{Flavor, SynthKernel, SynthVmcore};

const PAGES: u64 = 256;

/// VMCOREINFO numbers the classifier and the mem_map reader use.
const KEYS: &[&str] = &[
    "SIZE(page)",
    "OFFSET(page.flags)",
    "OFFSET(page.mapping)",
    "OFFSET(page.private)",
    "OFFSET(page._mapcount)",
    "OFFSET(page.compound_head)",
    "OFFSET(page.compound_info)",
    "OFFSET(page.compound_order)",
    "OFFSET(page.compound_dtor)",
    "OFFSET(folio._folio_order)",
    "OFFSET(folio._folio_dtor)",
    "NUMBER(PG_head_mask)",
    "NUMBER(PG_lru)",
    "NUMBER(PG_private)",
    "NUMBER(PG_swapcache)",
    "NUMBER(PG_swapbacked)",
    "NUMBER(PG_hwpoison)",
    "NUMBER(PG_slab)",
    "NUMBER(PG_hugetlb)",
    "NUMBER(HUGETLB_PAGE_DTOR)",
    "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)",
    "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)",
    "NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)",
    "NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)",
    "NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)",
    "LENGTH(zone.free_area)",
    "SYMBOL(mem_section)",
    "LENGTH(mem_section)",
    "SIZE(mem_section)",
    "OFFSET(mem_section.section_mem_map)",
    "NUMBER(SECTION_SIZE_BITS)",
    "NUMBER(MAX_PHYSMEM_BITS)",
    "SYMBOL(init_top_pgt)",
    "NUMBER(phys_base)",
    "NUMBER(pgtable_l5_enabled)",
    "NUMBER(sme_mask)",
];

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("vmsift-fuzz-classifier-{}", std::process::id()))
}

/// Reads `n` bytes from the front of `data`, or none if it has fewer.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = data.split_at_checked(n)?;
    *data = rest;
    Some(head)
}

/// VMCOREINFO with keys replaced (mode bit 1 clear) or removed (set); values are small
/// (mode's upper bits, biased) or 8 raw bytes (mode bit 0).
fn vmcoreinfo(base: &str, data: &mut &[u8]) -> Option<String> {
    let mut lines: Vec<(String, String)> = base
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let n = take(data, 1)?[0] % 8;
    for _ in 0..n {
        let [key, mode] = take(data, 2)?.try_into().ok()?;
        let key = KEYS[key as usize % KEYS.len()];
        lines.retain(|(k, _)| k != key);
        if mode & 2 != 0 {
            continue;
        }
        let v = if mode & 1 != 0 {
            i64::from_le_bytes(take(data, 8)?.try_into().ok()?)
        } else {
            (mode >> 2) as i64 - 8
        };
        let v = if key.starts_with("SYMBOL") {
            format!("{:x}", v as u64)
        } else {
            v.to_string()
        };
        lines.push((key.to_string(), v));
    }
    Some(lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect())
}

fn run(mut data: &[u8]) -> Option<()> {
    let [flags, cycle] = take(&mut data, 2)?.try_into().ok()?;
    let flavor = match (flags & 1, flags & 8) {
        (0, 0) => Flavor::Linux6_1,
        (_, 0) => Flavor::Linux6_12,
        (0, _) => Flavor::Linux7_1,
        _ => Flavor::Linux7_1Hvo,
    };
    let use_mmap = flags & 2 != 0;
    let mut k = SynthKernel::new(flavor, PAGES);
    let base = k.vmcoreinfo();
    let info = vmcoreinfo(&base, &mut data)?;
    if flags & 4 != 0 {
        let at = k.section_mem_map_at();
        k.mem[at..at + 8].copy_from_slice(take(&mut data, 8)?);
    }
    let map = k.mem_map_range();
    let n = data.len().min(map.len());
    k.mem[map.start..map.start + n].copy_from_slice(&data[..n]);
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(&info)
        .load(0, k.mem, 0);
    let path = scratch();
    let mut f = std::fs::File::create(&path).ok()?;
    f.write_all(&s.to_bytes()).ok()?;
    drop(f);
    let vm = Vmcore::open(&path, use_mmap).ok()?;
    // Cycles are whole bitmap words (64 pfns), as the pipeline's are.
    let per_cycle = 64 * (1 + cycle as u64 % 4);
    // Bit 1 (zero pages) is not the classifier's: every other combination is tried.
    for level in (0..32).step_by(2) {
        let level = DumpLevel(level);
        let bitmap = |per_cycle: u64| {
            let mut f = filter_for(&vm, level).ok()?;
            f.begin_pass();
            let mut set = Vec::new();
            let mut start = 0;
            while start < PAGES {
                let end = (start + per_cycle).min(PAGES);
                set.extend(f.bitmap2(start, end).iter_set());
                start = end;
            }
            Some((set, f.counts()))
        };
        let whole = bitmap(PAGES);
        if per_cycle < PAGES {
            let cycled = bitmap(per_cycle);
            assert_eq!(
                whole, cycled,
                "level {level}: cycles of {per_cycle} pfns differ"
            );
        }
    }
    Some(())
}

fuzz_target!(|data: &[u8]| {
    vmsift::report::set_level(0);
    let _ = run(data);
});
