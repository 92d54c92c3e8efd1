//! Where the vmemmap's pages are: the physical page behind each page of the virtually
//! mapped struct page array, found by translating it through the kernel's page tables
//! once (for `-e`, see `filter::vmemmap`).

use super::memmap::MemMap;
use super::x86_64::{KernelMemory, X86_64};
use crate::filter::vmemmap::Run;
use crate::input::Vmcore;

/// The backing of every mapped vmemmap page (vmemmap page `k` holds bytes
/// `[k * PS, (k + 1) * PS)` of the struct page array, whose pfn 0 is at its start), and
/// `SIZE(page)`. `Err` says why the vmemmap cannot be told apart: not x86_64, no
/// translation, no mem_map, a mem_map that is not one virtually contiguous array, or more
/// than `max_runs` runs.
pub fn vmemmap_runs(vm: &Vmcore, max_runs: usize) -> Result<(Vec<Run>, u64), String> {
    if vm.elf.machine != super::EM_X86_64 {
        return Err("the vmemmap is only found on x86_64".into());
    }
    let arch = X86_64::from_vmcoreinfo(&vm.info)
        .ok_or("VMCOREINFO lacks what address translation needs")?;
    let memory = vm.memory.duplicate().map_err(|e| e.to_string())?;
    let mut km = KernelMemory::new(Box::new(memory), arch);
    let ps = vm.page_size as u64;
    let map = MemMap::discover(&mut km, &vm.info, ps, vm.max_mapnr())?;
    let size = map.page_struct_size;
    if !(8..=ps).contains(&size) || vm.max_mapnr().checked_mul(size).is_none() {
        return Err(format!("SIZE(page)={size} is implausible"));
    }
    let first = map.sections.first().ok_or("no mem_map section")?;
    let base = map.page_va(first, 0);
    if !base.is_multiple_of(ps) || map.sections.iter().any(|s| map.page_va(s, 0) != base) {
        return Err("the mem_map is not one virtually mapped array (SPARSEMEM_VMEMMAP)".into());
    }
    let mut runs: Vec<Run> = Vec::new();
    let mut next = 0u64;
    for s in &map.sections {
        let from = (s.start * size / ps).max(next);
        let to = (s.end * size).div_ceil(ps);
        for k in from..to {
            let Some(pa) = km.translate(base.wrapping_add(k * ps)) else {
                continue;
            };
            let pfn = pa / ps;
            if runs.last_mut().is_none_or(|r| !r.extend(k, pfn)) {
                if runs.len() >= max_runs {
                    return Err(format!(
                        "the vmemmap is mapped in more than {max_runs} pieces"
                    ));
                }
                runs.push(Run {
                    first: k,
                    len: 1,
                    pfn,
                    shared: false,
                });
            }
        }
        next = next.max(to);
    }
    Ok((runs, size))
}
