//! Where each page frame's `struct page` is: SPARSEMEM (and SPARSEMEM_EXTREME, with or
//! without VMEMMAP) through the `mem_section` table, as VMCOREINFO describes it.

use super::vmcoreinfo::VmcoreInfo;
use crate::arch::{KernelMemory, Machine};

/// Bit 0 of `section_mem_map`: the section has memory.
const SECTION_MARKED_PRESENT: u64 = 1 << 0;
/// Bit 1: the section has a mem_map.
const SECTION_HAS_MEM_MAP: u64 = 1 << 1;
/// The low bits of `section_mem_map` carry flags (5 up to 6.14; a 6th with
/// SPARSEMEM_VMEMMAP_PREINIT). The encoded pointer is at least 64-byte aligned, so
/// clearing six bits is right for every version.
const SECTION_MAP_MASK: u64 = !0x3f;

/// A section with a mem_map: pfns `[start, end)`, struct page of pfn p at `map + p * size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// First pfn of the section.
    pub start: u64,
    /// One past its last pfn.
    pub end: u64,
    map: u64,
}

/// Where the struct pages of all present sections are.
#[derive(Debug, Clone)]
pub struct MemMap {
    /// The sections with a usable mem_map, in pfn order.
    pub sections: Vec<Section>,
    /// `SIZE(page)`.
    pub page_struct_size: u64,
    /// Sections marked present whose mem_map could not be used (pages there are kept).
    pub unusable: u64,
}

/// The sparsemem geometry of the crashed kernel, as VMCOREINFO gives it (or the machine's
/// fixed one for kernels that do not export it).
struct Geometry {
    /// `SYMBOL(mem_section)`.
    root_va: u64,
    /// `SIZE(mem_section)`.
    ms_size: u64,
    /// `OFFSET(mem_section.section_mem_map)`.
    map_off: u64,
    /// `SIZE(page)`.
    page_struct_size: u64,
    pfns_per_section: u64,
    /// Sections below `max_pfn`.
    nr_sections: u64,
    /// Sections per page of the table (per root with SPARSEMEM_EXTREME).
    per_root: u64,
    /// SPARSEMEM_EXTREME: `mem_section` is an array of pointers to pages of sections.
    extreme: bool,
}

impl Geometry {
    /// Reads and checks the geometry for the pfns below `max_pfn`.
    fn read(
        machine: Machine,
        info: &VmcoreInfo,
        page_size: u64,
        max_pfn: u64,
    ) -> Result<Geometry, String> {
        let need = |v: Option<i64>, key: &str| {
            v.and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| format!("VMCOREINFO has no usable {key}"))
        };
        let root_va = info
            .symbol("mem_section")
            .ok_or("VMCOREINFO has no SYMBOL(mem_section)")?;
        let ms_size = need(info.size("mem_section"), "SIZE(mem_section)")?;
        let map_off = need(
            info.offset("mem_section.section_mem_map"),
            "OFFSET(mem_section.section_mem_map)",
        )?;
        // Kernels before 5.9 (MAX_PHYSMEM_BITS) and 5.13 (SECTION_SIZE_BITS), unless their
        // stable series took the backport, do not export the geometry: the machine knows it.
        let section_bits = need(
            Some(machine.section_size_bits(info)),
            "NUMBER(SECTION_SIZE_BITS)",
        )?;
        let phys_bits = need(
            Some(machine.max_physmem_bits(info, page_size)),
            "NUMBER(MAX_PHYSMEM_BITS)",
        )?;
        let page_struct_size = need(info.size("page"), "SIZE(page)")?;
        let page_shift = page_size.trailing_zeros() as u64;
        if !(page_shift < section_bits && section_bits < phys_bits && phys_bits <= 64)
            || ms_size < map_off + 8
            || ms_size > page_size
        {
            return Err(format!(
                "implausible sparsemem geometry (SECTION_SIZE_BITS={section_bits}, MAX_PHYSMEM_BITS={phys_bits}, SIZE(mem_section)={ms_size})"
            ));
        }
        let pfns_per_section = 1u64 << (section_bits - page_shift);
        let nr_sections = max_pfn.div_ceil(pfns_per_section);
        let all_sections = 1u64 << (phys_bits - section_bits);
        if nr_sections > all_sections {
            return Err(format!(
                "{max_pfn:#x} page frames exceed MAX_PHYSMEM_BITS={phys_bits}"
            ));
        }
        let per_root = page_size / ms_size;
        // SPARSEMEM_EXTREME: an array of pointers to pages of sections. Otherwise one
        // static array of all sections (LENGTH(mem_section) = number of sections).
        let extreme = info
            .length("mem_section")
            .is_none_or(|l| l as u64 != all_sections);
        Ok(Geometry {
            root_va,
            ms_size,
            map_off,
            page_struct_size,
            pfns_per_section,
            nr_sections,
            per_root,
            extreme,
        })
    }
}

impl MemMap {
    /// The virtual address of pfn's struct page; the caller checks `pfn` is in the section.
    pub fn page_va(&self, s: &Section, pfn: u64) -> u64 {
        s.map.wrapping_add(pfn.wrapping_mul(self.page_struct_size))
    }

    /// Reads the mem_section table for the pfns below `max_pfn`. `Err` says why the
    /// kernel's metadata cannot be used at all.
    pub fn discover(
        km: &mut KernelMemory,
        machine: Machine,
        info: &VmcoreInfo,
        page_size: u64,
        max_pfn: u64,
    ) -> Result<MemMap, String> {
        let Geometry {
            root_va,
            ms_size,
            map_off,
            page_struct_size,
            pfns_per_section,
            nr_sections,
            per_root,
            extreme,
        } = Geometry::read(machine, info, page_size, max_pfn)?;

        let endian = km.endian();
        let mut words = Vec::new();
        let read_sections = |km: &mut KernelMemory, va: u64, count: u64, words: &mut Vec<u64>| {
            let mut buf = vec![0u8; (count * ms_size) as usize];
            let ok = km.read(va, &mut buf).is_some();
            words.clear();
            for i in 0..count {
                let at = (i * ms_size + map_off) as usize;
                let w = if ok {
                    endian.u64(&buf, at).unwrap_or(0)
                } else {
                    0
                };
                words.push(w);
            }
            ok
        };

        let mut map = MemMap {
            sections: Vec::new(),
            page_struct_size,
            unusable: 0,
        };
        let push = |map: &mut MemMap, nr: u64, raw: u64, km: &mut KernelMemory| {
            if raw & SECTION_MARKED_PRESENT == 0 {
                return;
            }
            let start = nr * pfns_per_section;
            let section = Section {
                start,
                end: (start + pfns_per_section).min(max_pfn),
                map: raw & SECTION_MAP_MASK,
            };
            // The section's struct pages must be mapped; otherwise the section is unusable
            // (corrupt pointer) and its pages are kept.
            let first = map.page_va(&section, start);
            if raw & SECTION_HAS_MEM_MAP == 0 || km.translate(first).is_none() {
                map.unusable += 1;
                return;
            }
            map.sections.push(section);
        };

        // The tables read are proportional to the memory the vmcore claims; a corrupt
        // PT_LOAD size must not turn into a huge allocation.
        if nr_sections > 1 << 24 {
            return Err(format!(
                "{nr_sections} memory sections for {max_pfn:#x} page frames is implausible"
            ));
        }
        if extreme {
            let nr_roots = nr_sections.div_ceil(per_root);
            let mut roots = vec![0u8; (nr_roots * 8) as usize];
            km.read(root_va, &mut roots).ok_or_else(|| {
                format!("the mem_section root array at {root_va:#x} cannot be read")
            })?;
            for r in 0..nr_roots {
                let root = endian.u64(&roots, (r * 8) as usize).unwrap_or(0);
                if root == 0 {
                    continue;
                }
                let first_nr = r * per_root;
                let count = per_root.min(nr_sections - first_nr);
                if !read_sections(km, root, count, &mut words) {
                    map.unusable += count;
                    continue;
                }
                for (i, &w) in words.clone().iter().enumerate() {
                    push(&mut map, first_nr + i as u64, w, km);
                }
            }
        } else {
            // Read the static array a page at a time.
            let mut nr = 0;
            while nr < nr_sections {
                let count = per_root.min(nr_sections - nr);
                if !read_sections(km, root_va.wrapping_add(nr * ms_size), count, &mut words) {
                    return Err(format!(
                        "the mem_section array at {root_va:#x} cannot be read"
                    ));
                }
                for (i, &w) in words.clone().iter().enumerate() {
                    push(&mut map, nr + i as u64, w, km);
                }
                nr += count;
            }
        }
        if map.sections.is_empty() {
            return Err("no usable mem_map section found in mem_section".into());
        }
        Ok(map)
    }

    /// The sections that overlap `[start, end)`, in order.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Section> {
        let i = self.sections.partition_point(|s| s.end <= start);
        self.sections[i..].iter().take_while(move |s| s.start < end)
    }
}
