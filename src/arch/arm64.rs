//! arm64: virtual → physical translation by walking the crashed kernel's page tables from
//! `swapper_pg_dir`, for 4, 16 and 64 KiB granules with 2 to 5 levels; the linear map and
//! the kernel image (`kimage_voffset`) without tables; the sparsemem geometry of kernels
//! that do not export it.
//!
//! The walk is the one the MMU made for the crashed kernel: as many levels as the virtual
//! address size in use (`64 - TCR_EL1_T1SZ`) needs. A kernel built for 52-bit addresses
//! that ran with 48 (no LVA/LPA2 on the CPU) keeps its configured levels when the count is
//! the same, and indexes its top table with all the bits of the configured size (the
//! upper ones are the sign extension, so the walk lands where the MMU's offset root did);
//! with 4 KiB pages 52 bits take one level more than 48, and that level is folded at run
//! time: the top table is then the page of `swapper_pg_dir` itself.
//!
//! Output addresses: bits 47 to the page shift; with FEAT_LPA2 (4 and 16 KiB granules with
//! 52-bit addresses in use) also bits 49:48, and bits 51:50 from descriptor bits 9:8; with
//! 64 KiB pages and 52-bit physical addresses (FEAT_LPA), bits 51:48 from bits 15:12.

use super::Mapping;
use crate::input::PhysPages;
use crate::input::bytes::Endian;
use crate::kernel::vmcoreinfo::VmcoreInfo;

/// ELF `e_machine` of arm64 (EM_AARCH64).
pub const EM_AARCH64: u16 = 183;

/// Descriptor bit 0: valid.
const VALID: u64 = 1;
/// Descriptor bit 1: a table (or, at the last level, a page); clear, a block.
const TABLE: u64 = 2;

/// The arm64 page-table walker of one crashed kernel.
#[derive(Debug, Clone)]
pub struct Arm64 {
    /// Physical address of the top-level table the walk starts from.
    root: u64,
    page_shift: u32,
    /// Levels walked (2 to 5).
    levels: u32,
    /// Index bits of the top-level table.
    top_bits: u32,
    /// Descriptors in the FEAT_LPA2 layout (output address bits 51:50 in bits 9:8).
    lpa2: bool,
    /// 64 KiB descriptors carry output address bits 51:48 in bits 15:12 (FEAT_LPA).
    pa52: bool,
    endian: Endian,
}

/// What decides the shape of an arm64 walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Page size in bytes: 4096, 16384 or 65536.
    pub page_size: u64,
    /// `CONFIG_ARM64_VA_BITS`: what the kernel's tables are built for.
    pub va_bits: u32,
    /// The virtual address size in use (`64 - TCR_EL1_T1SZ`), at most `va_bits`.
    pub va_bits_actual: u32,
    /// `MAX_PHYSMEM_BITS`: 48 or 52.
    pub phys_bits: u32,
}

/// Levels of translation for `va_bits` with pages of `1 << page_shift` bytes: each level
/// resolves `page_shift - 3` bits (as the kernel's `ARM64_HW_PGTABLE_LEVELS`).
fn levels_for(va_bits: u32, page_shift: u32) -> u32 {
    (va_bits - 4) / (page_shift - 3)
}

/// The lowest address bit the table of the `n`th level from the bottom (0 = last) indexes.
fn shift_of(page_shift: u32, n: u32) -> u32 {
    page_shift + (page_shift - 3) * n
}

impl Arm64 {
    /// The walker for the tables at physical `root` (the top table as the kernel laid it
    /// out: `swapper_pg_dir`). `None` if the geometry is not one arm64 has.
    pub fn new(root: u64, g: Geometry, endian: Endian) -> Option<Arm64> {
        let page_shift = match g.page_size {
            4096 => 12,
            16384 => 14,
            65536 => 16,
            _ => return None,
        };
        let min = page_shift + (page_shift - 3) + 1;
        if !(min..=52).contains(&g.va_bits)
            || !(min..=g.va_bits).contains(&g.va_bits_actual)
            || !(32..=52).contains(&g.phys_bits)
        {
            return None;
        }
        let configured = levels_for(g.va_bits, page_shift);
        let actual = levels_for(g.va_bits_actual, page_shift);
        let (levels, bits, root) = if actual == configured {
            (configured, g.va_bits, root)
        } else {
            // A level folded at run time: the walk starts at the page of the top table.
            (actual, g.va_bits_actual, root & !(g.page_size - 1))
        };
        if !(2..=5).contains(&levels) {
            return None;
        }
        let top_bits = bits - shift_of(page_shift, levels - 1);
        Some(Arm64 {
            root,
            page_shift,
            levels,
            top_bits,
            lpa2: page_shift != 16 && g.va_bits_actual == 52,
            pa52: page_shift == 16 && g.phys_bits == 52,
            endian,
        })
    }

    /// The walker from VMCOREINFO: `SYMBOL(swapper_pg_dir)` less `NUMBER(kimage_voffset)`,
    /// `NUMBER(VA_BITS)`, `NUMBER(TCR_EL1_T1SZ)` (absent before 5.13: `VA_BITS` is then the
    /// size in use) and `NUMBER(MAX_PHYSMEM_BITS)`. `Err` names what is missing or wrong.
    pub fn from_vmcoreinfo(
        info: &VmcoreInfo,
        page_size: u64,
        endian: Endian,
    ) -> Result<Arm64, String> {
        let swapper = info
            .symbol("swapper_pg_dir")
            .ok_or("VMCOREINFO has no SYMBOL(swapper_pg_dir)")?;
        let voffset = info
            .number("kimage_voffset")
            .ok_or("VMCOREINFO has no NUMBER(kimage_voffset)")? as u64;
        let va_bits = info
            .number("VA_BITS")
            .and_then(|v| u32::try_from(v).ok())
            .ok_or("VMCOREINFO has no usable NUMBER(VA_BITS)")?;
        let va_bits_actual = match info.number("TCR_EL1_T1SZ") {
            Some(t1sz) => size_from_t1sz(t1sz)
                .ok_or_else(|| format!("VMCOREINFO NUMBER(TCR_EL1_T1SZ)={t1sz} is implausible"))?,
            None => va_bits,
        };
        let phys_bits = max_physmem_bits(info, page_size) as u32;
        let g = Geometry {
            page_size,
            va_bits,
            va_bits_actual,
            phys_bits,
        };
        Arm64::new(swapper.wrapping_sub(voffset), g, endian).ok_or_else(|| {
            format!(
                "no arm64 translation for {page_size}-byte pages with VA_BITS={va_bits}, \
                 {va_bits_actual} bits in use, MAX_PHYSMEM_BITS={phys_bits}"
            )
        })
    }

    /// The output address of descriptor `e`, before alignment to its mapping size.
    fn output_address(&self, e: u64) -> u64 {
        let low = e & ((1 << 48) - 1) & !((1 << self.page_shift) - 1);
        if self.lpa2 {
            (e & ((1 << 50) - 1) & !((1 << self.page_shift) - 1)) | ((e >> 8) & 3) << 50
        } else if self.pa52 {
            low | ((e >> 12) & 0xf) << 48
        } else {
            low
        }
    }

    fn entry(&self, mem: &mut dyn PhysPages, table: u64, index: u64) -> Option<u64> {
        let pa = table.checked_add(index * 8)?;
        let mut e = [0u8; 8];
        mem.read_small(pa, &mut e)?;
        self.endian.u64(&e, 0)
    }

    /// Translates `va`, returning the whole page or block that holds it.
    pub fn translate(&self, mem: &mut dyn PhysPages, va: u64) -> Option<Mapping> {
        let mut table = self.root;
        // Tables already walked through: an entry leading back to one is a corrupt loop.
        let mut seen = [u64::MAX; 5];
        for level in 0..self.levels {
            if seen[..level as usize].contains(&table) {
                return None;
            }
            seen[level as usize] = table;
            let n = self.levels - 1 - level;
            let shift = shift_of(self.page_shift, n);
            let bits = if level == 0 {
                self.top_bits
            } else {
                self.page_shift - 3
            };
            let e = self.entry(mem, table, (va >> shift) & ((1 << bits) - 1))?;
            if e & VALID == 0 {
                return None;
            }
            let last = n == 0;
            if last && e & TABLE == 0 {
                // A block descriptor where only pages can be: reserved.
                return None;
            }
            if last || e & TABLE == 0 {
                let len = 1u64 << shift;
                return Some(Mapping {
                    va: va & !(len - 1),
                    pa: self.output_address(e) & !(len - 1),
                    len,
                });
            }
            table = self.output_address(e);
        }
        None
    }
}

/// The virtual address size TCR_EL1.T1SZ gives: 64 less it.
fn size_from_t1sz(t1sz: i64) -> Option<u32> {
    u32::try_from(64i64.checked_sub(t1sz)?).ok()
}

/// `SECTION_SIZE_BITS` for kernels whose VMCOREINFO lacks it (before 5.13): 30 up to
/// 5.11; 5.12 made it 27, or 29 with 64 KiB pages, and also exports it from 5.13.
pub fn section_size_bits(info: &VmcoreInfo) -> i64 {
    info.number("SECTION_SIZE_BITS").unwrap_or(30)
}

/// `MAX_PHYSMEM_BITS`, 48 for kernels whose VMCOREINFO lacks it (before 5.9; 52-bit
/// physical addresses needed 64 KiB pages then, and such kernels export it).
pub fn max_physmem_bits(info: &VmcoreInfo, _page_size: u64) -> i64 {
    info.number("MAX_PHYSMEM_BITS").unwrap_or(48)
}

/// The kernel's own mapping of a static address, without page tables: the kernel image at
/// `va - kimage_voffset`, the linear map at `va - PAGE_OFFSET + PHYS_OFFSET` (wrapping:
/// `PHYS_OFFSET` is negative when a 52-bit kernel ran with 48 bits). Which half of the
/// kernel's address space is which follows from where `swapper_pg_dir` (in the image) is:
/// since 5.4 the linear map is the lower half, before it the upper.
pub fn kernel_static_to_phys(info: &VmcoreInfo, va: u64) -> Option<u64> {
    let voffset = info.number("kimage_voffset")? as u64;
    let phys_offset = info.number("PHYS_OFFSET")? as u64;
    let va_bits = u32::try_from(info.number("VA_BITS")?).ok()?;
    let actual = match info.number("TCR_EL1_T1SZ") {
        Some(t) => size_from_t1sz(t)?,
        None => va_bits,
    };
    if !(36..=52).contains(&va_bits) || !(36..=va_bits).contains(&actual) {
        return None;
    }
    // Kernel addresses have every bit above the size in use set.
    if va >> actual != u64::MAX >> actual {
        return None;
    }
    let half = |a: u64| (a >> (actual - 1)) & 1;
    let image_half = info.symbol("swapper_pg_dir").map_or(1, half);
    if half(va) == image_half {
        return Some(va.wrapping_sub(voffset));
    }
    let page_offset = if image_half == 1 {
        u64::MAX << va_bits
    } else {
        u64::MAX << (va_bits - 1)
    };
    Some(va.wrapping_sub(page_offset).wrapping_add(phys_offset))
}

#[cfg(test)]
#[path = "arm64_tests.rs"]
mod tests;
