//! Where the vmemmap's pages are: the physical page behind each page of the virtually
//! mapped struct page array, found by translating it through the kernel's page tables
//! once (for `-e`, see `filter::vmemmap`).

use super::memmap::MemMap;
use crate::arch::{Arch, KernelMemory, Machine};
use crate::filter::vmemmap::Run;
use crate::input::Vmcore;

/// The backing of every mapped vmemmap page (vmemmap page `k` holds bytes
/// `[k * PS, (k + 1) * PS)` of the struct page array, whose pfn 0 is at its start), and
/// `SIZE(page)`. `Err` says why the vmemmap cannot be told apart: no translation for the
/// machine, no mem_map, a mem_map that is not one virtually contiguous array, or more
/// than `max_runs` runs.
pub fn vmemmap_runs(vm: &Vmcore, max_runs: usize) -> Result<(Vec<Run>, u64), String> {
    let machine = Machine::from_e_machine(vm.elf.machine)
        .ok_or("reading kernel memory of this machine is not implemented")?;
    let ps = vm.page_size as u64;
    let arch = Arch::new(vm.elf.machine, vm.elf.endian, &vm.info, ps)?;
    let memory = vm.memory.duplicate().map_err(|e| e.to_string())?;
    let mut km = KernelMemory::new(Box::new(memory), arch, vm.elf.endian);
    let map = MemMap::discover(&mut km, machine, &vm.info, ps, vm.max_mapnr())?;
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
