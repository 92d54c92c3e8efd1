//! x86_64: virtual → physical translation by walking the crashed kernel's page tables from
//! `init_top_pgt`, with 4- or 5-level paging, 1 GiB and 2 MiB pages and the AMD SME mask;
//! the fixed kernel-text mapping; the sparsemem geometry of kernels that do not export it.
//! Everything comes from VMCOREINFO (KASLR needs nothing more: SYMBOL values are runtime
//! addresses). A walk has a fixed depth, so a corrupt table can give a wrong answer or none,
//! but never a loop.

use super::Mapping;
use crate::input::PhysPages;
use crate::input::bytes::Endian;
use crate::kernel::vmcoreinfo::VmcoreInfo;

/// ELF `e_machine` of x86_64 (EM_X86_64).
pub const EM_X86_64: u16 = 62;

/// `__START_KERNEL_map`: kernel text, data and bss are mapped at
/// `vaddr - START_KERNEL_MAP + phys_base`.
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
const PRESENT: u64 = 0x1;
const PSE: u64 = 0x80;
/// Physical address bits 12–51 of an entry.
const ENTRY_ADDR: u64 = 0x000f_ffff_ffff_f000;

/// The x86_64 page-table walker of one crashed kernel.
#[derive(Debug, Clone)]
pub struct X86_64 {
    /// Physical address of the top-level table.
    root: u64,
    five_level: bool,
    entry_mask: u64,
}

/// `SECTION_SIZE_BITS`, for kernels whose VMCOREINFO lacks it.
pub const SECTION_SIZE_BITS: i64 = 27;

/// `MAX_PHYSMEM_BITS`, for kernels whose VMCOREINFO lacks it: 52 with 5-level
/// paging, 46 with 4-level.
pub fn max_physmem_bits(info: &VmcoreInfo) -> i64 {
    if info.number("pgtable_l5_enabled") == Some(1) {
        52
    } else {
        46
    }
}

/// The kernel-text mapping, which needs no page table: `None` below it.
pub fn kernel_text_to_phys(info: &VmcoreInfo, vaddr: u64) -> Option<u64> {
    if vaddr < START_KERNEL_MAP {
        return None;
    }
    let phys_base = info.number("phys_base").unwrap_or(0) as u64;
    Some((vaddr - START_KERNEL_MAP).wrapping_add(phys_base))
}

/// Whether `vaddr` is in the kernel-text mapping (a /proc/kcore segment there repeats part
/// of the direct map).
pub fn is_kernel_text(vaddr: u64) -> bool {
    vaddr >= START_KERNEL_MAP
}

impl X86_64 {
    /// The walker from `SYMBOL(init_top_pgt)` (or 4.12's `init_level4_pgt`),
    /// `NUMBER(phys_base)`, `NUMBER(pgtable_l5_enabled)` and `NUMBER(sme_mask)`.
    pub fn from_vmcoreinfo(info: &VmcoreInfo) -> Option<X86_64> {
        let top = info
            .symbol("init_top_pgt")
            .or_else(|| info.symbol("init_level4_pgt"))?;
        let phys_base = info.number("phys_base")? as u64;
        let root = top.checked_sub(START_KERNEL_MAP)?.wrapping_add(phys_base);
        let sme = info.number("sme_mask").unwrap_or(0) as u64;
        Some(X86_64 {
            root,
            five_level: info.number("pgtable_l5_enabled") == Some(1),
            entry_mask: ENTRY_ADDR & !sme,
        })
    }

    fn entry(mem: &mut dyn PhysPages, table: u64, index: u64) -> Option<u64> {
        let pa = table.checked_add(index * 8)?;
        let mut e = [0u8; 8];
        mem.read_small(pa, &mut e)?;
        Endian::Little.u64(&e, 0)
    }

    /// Translates `va`, returning the whole page (4 KiB, 2 MiB or 1 GiB) that holds it.
    pub fn translate(&self, mem: &mut dyn PhysPages, va: u64) -> Option<Mapping> {
        let mut table = self.root;
        let shifts: &[u32] = if self.five_level {
            &[48, 39, 30, 21, 12]
        } else {
            &[39, 30, 21, 12]
        };
        // Tables already walked through: an entry that leads back to one of them is a
        // corrupt loop, not a mapping (the walk is bounded anyway; this keeps page-table
        // contents from being read as struct pages).
        let mut seen = [u64::MAX; 5];
        for (level, &shift) in shifts.iter().enumerate() {
            if seen[..level].contains(&table) {
                return None;
            }
            seen[level] = table;
            let e = Self::entry(mem, table, (va >> shift) & 0x1ff)?;
            if e & PRESENT == 0 {
                return None;
            }
            let last = level == shifts.len() - 1;
            let huge = (shift == 30 || shift == 21) && e & PSE != 0;
            if last || huge {
                let len = 1u64 << shift;
                // A large page's address field keeps its low bits for flags (PAT): mask them.
                let pa = e & self.entry_mask & !(len - 1);
                return Some(Mapping {
                    va: va & !(len - 1),
                    pa,
                    len,
                });
            }
            table = e & self.entry_mask;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::RamPages;

    #[test]
    fn a_page_table_loop_is_not_a_mapping() {
        // Table at 0x1000 whose every entry is present and points back at itself: without
        // the loop check the walk would "find" a 4 KiB page at 0x1000 for any address.
        let mut ram = RamPages(vec![0u8; 4 * 4096]);
        for i in 0..512 {
            ram.0[0x1000 + i * 8..0x1000 + i * 8 + 8]
                .copy_from_slice(&(0x1000u64 | 0x63).to_le_bytes());
        }
        let arch = X86_64 {
            root: 0x1000,
            five_level: false,
            entry_mask: ENTRY_ADDR,
        };
        assert_eq!(arch.translate(&mut ram, 0xffff_ea00_0000_0000), None);
        // A proper chain of four different tables still translates.
        for (table, next) in [(0x1000u64, 0x2000u64), (0x2000, 0x3000), (0x3000, 0x0)] {
            ram.0[table as usize..table as usize + 8].copy_from_slice(&(next | 0x63).to_le_bytes());
        }
        ram.0[0x1000..0x1008].copy_from_slice(&(0x2000u64 | 0x63).to_le_bytes());
        ram.0[0x0..0x8].copy_from_slice(&(0x5000u64 | 0x63).to_le_bytes());
        let m = arch.translate(&mut ram, 0).expect("mapped");
        assert_eq!((m.pa, m.len), (0x5000, 4096));
    }
}
