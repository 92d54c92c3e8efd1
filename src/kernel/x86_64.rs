//! x86_64 virtual → physical translation by walking the crashed kernel's page tables from
//! `init_top_pgt`, with 4- or 5-level paging, 1 GiB and 2 MiB pages and the AMD SME mask.
//! Everything comes from VMCOREINFO (KASLR needs nothing more: SYMBOL values are runtime
//! addresses). A walk has a fixed depth, so a corrupt table can give a wrong answer or none,
//! but never a loop.

use super::vmcoreinfo::VmcoreInfo;
use crate::input::PhysPages;

const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
const PRESENT: u64 = 0x1;
const PSE: u64 = 0x80;
/// Physical address bits 12–51 of an entry.
const ENTRY_ADDR: u64 = 0x000f_ffff_ffff_f000;

#[derive(Debug, Clone)]
pub struct X86_64 {
    /// Physical address of the top-level table.
    root: u64,
    five_level: bool,
    entry_mask: u64,
}

/// One translated mapping: `len` bytes from `va` (aligned to the mapping size) are at `pa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub va: u64,
    pub pa: u64,
    pub len: u64,
}

/// x86_64's `SECTION_SIZE_BITS`, for kernels whose VMCOREINFO lacks it.
pub const SECTION_SIZE_BITS: i64 = 27;

/// x86_64's `MAX_PHYSMEM_BITS`, for kernels whose VMCOREINFO lacks it: 52 with 5-level
/// paging, 46 with 4-level.
pub fn max_physmem_bits(info: &VmcoreInfo) -> i64 {
    if info.number("pgtable_l5_enabled") == Some(1) {
        52
    } else {
        46
    }
}

impl X86_64 {
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
        Some(u64::from_le_bytes(e))
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

/// Reads the crashed kernel's virtual memory, remembering the last mapping so that reading
/// a large contiguous area (mem_map) walks the tables once per mapped page, not per read.
pub struct KernelMemory {
    pub mem: Box<dyn PhysPages>,
    arch: X86_64,
    last: Option<Mapping>,
}

impl KernelMemory {
    pub fn new(mem: Box<dyn PhysPages>, arch: X86_64) -> KernelMemory {
        KernelMemory {
            mem,
            arch,
            last: None,
        }
    }

    pub fn translate(&mut self, va: u64) -> Option<u64> {
        if let Some(m) = self.last
            && va >= m.va
            && va - m.va < m.len
        {
            return Some(m.pa + (va - m.va));
        }
        let m = self.arch.translate(self.mem.as_mut(), va)?;
        self.last = Some(m);
        Some(m.pa + (va - m.va))
    }

    /// Fills `buf` from virtual address `va`; `None` if any byte is unmapped or not in the
    /// dump.
    pub fn read(&mut self, va: u64, buf: &mut [u8]) -> Option<()> {
        let ps = self.mem.page_size() as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let pa = self.translate(va.checked_add(done as u64)?)?;
            let at = (pa % ps) as usize;
            let n = (ps as usize - at).min(buf.len() - done);
            let page = self.mem.read_page(pa / ps).ok()?;
            buf[done..done + n].copy_from_slice(page.get(at..at + n)?);
            done += n;
        }
        Some(())
    }

    /// `len` bytes at `va` without copying, when they are physically contiguous and in one
    /// window of the input; `None` means "use `read`".
    pub fn slice(&mut self, va: u64, len: usize) -> Option<&[u8]> {
        let pa = self.translate(va)?;
        let m = self.last?;
        if va.checked_add(len as u64)? > m.va + m.len {
            return None;
        }
        self.mem.span(pa, len)
    }

    pub fn read_u64(&mut self, va: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Some(u64::from_le_bytes(b))
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
