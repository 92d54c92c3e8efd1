//! The synthetic x86_64 kernel: page tables, mem_section and struct pages in a buffer of
//! physical memory.

use super::{Flavor, Offsets, SynthVmcore, sp};

/// A tiny x86_64 kernel in physical memory: 4-level page tables (direct map, kernel text
/// map, vmemmap), a SPARSEMEM_EXTREME mem_section with one section, and a struct page for
/// every page frame, all reachable from the VMCOREINFO it writes. Tests set struct pages to
/// build the page classes they need.
pub struct SynthKernel {
    /// Which kernel generation this kernel imitates.
    pub flavor: Flavor,
    /// Where this flavor's struct page keeps each field.
    pub o: Offsets,
    /// Page frames of RAM, from pfn 0.
    pub pages: u64,
    /// All of physical memory, page 0 first.
    pub mem: Vec<u8>,
    pub(super) next_table: u64,
    /// First pfn free for test pages (below it: tables, mem_section, mem_map).
    pub first_free_pfn: u64,
    pub(super) mem_map_pfn: u64,
    pub(super) roots_pfn: u64,
    pub(super) sections_pfn: u64,
}

/// Start of the direct map (4-level paging, no KASLR).
pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
/// Start of the kernel text map (`__START_KERNEL_map`).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Start of the vmemmap (4-level paging, no KASLR).
pub const VMEMMAP: u64 = 0xffff_ea00_0000_0000;
pub(super) const PGD_PFN: u64 = 1;

impl SynthKernel {
    /// `pages` page frames of RAM from pfn 0 (at most 32768: one memory section). Test
    /// pages go at `first_free_pfn` and above.
    pub fn new(flavor: Flavor, pages: u64) -> SynthKernel {
        assert!((256..=32768).contains(&pages));
        let mem_map_pages = (pages * sp::SIZE).div_ceil(4096);
        // Page tables first (PTE tables for the direct map, the text map and vmemmap, and
        // a few upper-level tables), then mem_section, then mem_map.
        let tables = pages / 512 + mem_map_pages / 512 + 12;
        let roots_pfn = PGD_PFN + 1 + tables;
        let mut k = SynthKernel {
            flavor,
            o: flavor.offsets(),
            pages,
            mem: vec![0; (pages * 4096) as usize],
            next_table: PGD_PFN + 1,
            first_free_pfn: 0,
            mem_map_pfn: roots_pfn + 2,
            roots_pfn,
            sections_pfn: roots_pfn + 1,
        };
        k.first_free_pfn = k.mem_map_pfn + mem_map_pages;
        // Direct map of all RAM and the kernel text map of the first 2 MiB, 4 KiB pages.
        for pfn in 0..pages {
            k.map(PAGE_OFFSET + pfn * 4096, pfn * 4096);
        }
        for pfn in 0..512.min(pages) {
            k.map(START_KERNEL_MAP + pfn * 4096, pfn * 4096);
        }
        for i in 0..mem_map_pages {
            k.map(VMEMMAP + i * 4096, (k.mem_map_pfn + i) * 4096);
        }
        // mem_section: root 0 → a page of sections; section 0 → vmemmap.
        let roots = k.roots_pfn * 4096;
        k.put_u64(roots, PAGE_OFFSET + k.sections_pfn * 4096);
        k.put_u64(k.sections_pfn * 4096, VMEMMAP | 0x3);
        // Every struct page starts as a plain unmapped page (_mapcount -1).
        for pfn in 0..pages {
            k.set_u32(pfn, k.o.mapcount, u32::MAX);
        }
        assert!(k.next_table < k.roots_pfn, "page tables overflowed");
        k
    }

    pub(super) fn put_u64(&mut self, pa: u64, v: u64) {
        self.mem[pa as usize..pa as usize + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn get_u64(&self, pa: u64) -> u64 {
        u64::from_le_bytes(
            self.mem[pa as usize..pa as usize + 8]
                .try_into()
                .unwrap_or([0; 8]),
        )
    }

    /// Maps one 4 KiB page, allocating tables from the pool before mem_section.
    pub(super) fn map(&mut self, va: u64, pa: u64) {
        let mut table = PGD_PFN * 4096;
        for shift in [39u32, 30, 21] {
            let slot = table + ((va >> shift) & 0x1ff) * 8;
            let mut e = self.get_u64(slot);
            if e & 1 == 0 {
                e = (self.next_table * 4096) | 0x63;
                self.next_table += 1;
                self.put_u64(slot, e);
            }
            table = e & 0x000f_ffff_ffff_f000;
        }
        self.put_u64(table + ((va >> 12) & 0x1ff) * 8, pa | 0x63);
    }

    fn sp_pa(&self, pfn: u64) -> u64 {
        self.mem_map_pfn * 4096 + pfn * sp::SIZE
    }

    /// Writes the u64 at `off` of pfn's struct page.
    pub fn set_u64(&mut self, pfn: u64, off: u64, v: u64) {
        let pa = self.sp_pa(pfn) + off;
        self.put_u64(pa, v);
    }

    /// Writes the u32 at `off` of pfn's struct page.
    pub fn set_u32(&mut self, pfn: u64, off: u64, v: u32) {
        let pa = (self.sp_pa(pfn) + off) as usize;
        self.mem[pa..pa + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Writes the byte at `off` of pfn's struct page.
    pub fn set_u8(&mut self, pfn: u64, off: u64, v: u8) {
        let pa = (self.sp_pa(pfn) + off) as usize;
        self.mem[pa] = v;
    }

    /// Where the struct pages of all page frames are in `mem`.
    pub fn mem_map_range(&self) -> std::ops::Range<usize> {
        let start = self.sp_pa(0) as usize;
        start..start + (self.pages * sp::SIZE) as usize
    }

    /// Where mem_section entry 0's `section_mem_map` word is in `mem`.
    pub fn section_mem_map_at(&self) -> usize {
        (self.sections_pfn * 4096) as usize
    }

    /// The virtual address of pfn's struct page.
    pub fn page_va(pfn: u64) -> u64 {
        VMEMMAP + pfn * sp::SIZE
    }

    /// Flag bit numbers of this flavor.
    pub fn flag(&self, name: &str) -> u64 {
        let old = matches!(self.flavor, Flavor::Linux4_18 | Flavor::Linux4_19);
        let v6_1 = matches!(self.flavor, Flavor::Linux5_4 | Flavor::Linux6_1);
        let n = match (self.flavor, name) {
            // 4.4's enum pageflags (unconfirmed: PG_swapcache a flag of its own, before it
            // became an alias of PG_owner_priv_1).
            (Flavor::Linux4_4 | Flavor::Linux4_9, "lru") => 5,
            (Flavor::Linux4_4 | Flavor::Linux4_9, "private") => 11,
            (Flavor::Linux4_4 | Flavor::Linux4_9, "swapcache") => 15,
            (Flavor::Linux4_4 | Flavor::Linux4_9, "swapbacked") => 18,
            (Flavor::Linux4_4 | Flavor::Linux4_9, "slab") => 7,
            (Flavor::Linux4_4 | Flavor::Linux4_9, "hwpoison") => 22,
            (Flavor::Linux4_4 | Flavor::Linux4_9, "head") => 14,
            // 4.10 to 4.19: PG_error at 1, PG_waiters at 7; PG_workingset (4.20) moved
            // PG_error to 8. RHEL 8 may carry that change with its PSI backport (then its
            // numbers are 5.4's; unconfirmed).
            (_, "lru") if old => 5,
            (_, "private") if old => 12,
            (_, "swapcache") if old => 9,
            (_, "swapbacked") if old => 18,
            (_, "slab") if old => 8,
            (_, "hwpoison") if old => 22,
            (_, "head") if old => 15,
            (_, "lru") if v6_1 => 4,
            (_, "private") if v6_1 => 13,
            (_, "swapcache") if v6_1 => 10,
            (_, "swapbacked") if v6_1 => 19,
            (_, "slab") if v6_1 => 9,
            (_, "hwpoison") if v6_1 => 23,
            (_, "head") if v6_1 => 16,
            (f, "lru") if f.typed_slab() => 5,
            (f, "private") if f.typed_slab() => 14,
            (f, "swapcache") if f.typed_slab() => 10,
            (f, "swapbacked") if f.typed_slab() => 17,
            (f, "hwpoison") if f.typed_slab() => 20,
            (f, "head") if f.typed_slab() => 6,
            _ => panic!("no flag {name} in {:?}", self.flavor),
        };
        1 << n
    }

    /// The page_type word of a type ("buddy", "offline", "slab", "hugetlb").
    pub fn page_type(&self, name: &str) -> u32 {
        let before_4_18 = matches!(self.flavor, Flavor::Linux4_4 | Flavor::Linux4_9);
        let inverted = !self.flavor.typed_slab() && !before_4_18;
        match (self.flavor, name) {
            // Before 4.18 a free page's _mapcount is -128 (PAGE_BUDDY_MAPCOUNT_VALUE).
            (_, "buddy") if before_4_18 => -128i32 as u32,
            (_, "buddy") if inverted => !0x80,
            // 4.18 and 4.19: 0x100 is PG_balloon, not exported; 5.0 renamed it PG_offline.
            (f, "offline") if inverted && f.has_offline() => !0x100,
            // A balloon page where no offline type is exported: -256 before 4.18, then
            // PG_balloon (0x100) cleared.
            (_, "balloon") if before_4_18 => -256i32 as u32,
            (Flavor::Linux4_18 | Flavor::Linux4_19, "balloon") => !0x100,
            (f, "buddy") if f.typed_slab() => 0xf000_0000,
            (f, "offline") if f.typed_slab() => 0xf100_0000,
            (f, "hugetlb") if f.typed_slab() => 0xf400_0000,
            (f, "slab") if f.typed_slab() => 0xf500_0000,
            (Flavor::NextKernel, "new") => 0xf900_0000,
            _ => panic!("no page type {name} in {:?}", self.flavor),
        }
    }

    /// A free buddy block of 2^order pages at `pfn`.
    pub fn buddy(&mut self, pfn: u64, order: u64) {
        let t = self.page_type("buddy");
        self.set_u32(pfn, self.o.mapcount, t);
        self.set_u64(pfn, self.o.private, order);
    }

    /// A compound page (folio) of 2^order pages at `pfn` with the given head flags and
    /// mapping; `hugetlb` marks it as a hugetlb folio.
    pub fn folio(&mut self, pfn: u64, order: u64, flags: u64, mapping: u64, hugetlb: bool) {
        let head = self.flag("head");
        let o = self.o;
        self.set_u64(pfn, o.flags, flags | head);
        self.set_u64(pfn, o.mapping, mapping);
        let link = if self.flavor.tail_mask() {
            (u64::MAX << (order + sp::SIZE.trailing_zeros() as u64)) | 1
        } else {
            Self::page_va(pfn) | 1
        };
        for t in pfn + 1..pfn + (1 << order) {
            self.set_u64(t, o.compound_head, link);
        }
        if !self.flavor.typed_slab() {
            // HUGETLB_PAGE_DTOR is 2, COMPOUND_PAGE_DTOR 1, as little-endian integers of
            // dtor_width bytes (the high byte of a u16 is 0).
            let dtor = if hugetlb { 2u64 } else { 1 };
            for (at, v) in [(o.compound_order, order), (o.compound_dtor, dtor)] {
                for b in 0..o.dtor_width {
                    self.set_u8(pfn + 1, at + b, (v >> (8 * b)) as u8);
                }
            }
            if self.flavor != Flavor::Linux6_1 {
                // 4.5 to 4.17 overlay the first tail's mapping with compound_mapcount
                // (-1: odd); odd here in every old flavor, so a reader that misses the
                // tail test reads the tail as anonymous.
                self.set_u64(pfn + 1, o.mapping, 0xffff_ffff);
            }
        } else {
            {
                self.set_u64(pfn + 1, o.flags, order);
                // The first tail's mapping word holds folio counters (here: one page
                // mapped), so it looks anonymous to a reader that misses the tail.
                self.set_u64(pfn + 1, o.mapping, 1);
                if hugetlb {
                    let t = self.page_type("hugetlb");
                    self.set_u32(pfn, o.mapcount, t);
                }
            }
        }
    }

    /// The hugetlb vmemmap optimisation on the folio of 2^order pages at `pfn`: the
    /// vmemmap pages of its struct pages after the second one are remapped onto the
    /// second (all tails alike), and the struct pages no longer mapped are overwritten
    /// with stale free-page contents, which a reader that goes around the kernel's page
    /// tables would misread.
    pub fn optimize_vmemmap(&mut self, pfn: u64, order: u64) {
        let per_page = 4096 / sp::SIZE;
        assert!(pfn.is_multiple_of(per_page) && (1 << order) > 2 * per_page);
        let first = pfn / per_page;
        let shared = (self.mem_map_pfn + first + 1) * 4096;
        for i in first + 2..first + (1 << order) / per_page {
            self.map(VMEMMAP + i * 4096, shared);
        }
        let buddy = self.page_type("buddy");
        for p in pfn + 2 * per_page..pfn + (1 << order) {
            self.set_u64(p, sp::COMPOUND_HEAD, 0);
            self.set_u32(p, sp::MAPCOUNT, buddy);
            self.set_u64(p, sp::PRIVATE, 0);
        }
    }

    /// The hugetlb vmemmap optimisation of Linux 5.18 to 7.0 on the folio of 2^order pages
    /// at `pfn`: every vmemmap page of its struct pages after the first is remapped onto
    /// the first, so the first struct page of each reads as a copy of the head (PG_head
    /// included: a "fake head"), and the struct pages no longer mapped are overwritten
    /// with stale free-page contents.
    pub fn optimize_vmemmap_fake_heads(&mut self, pfn: u64, order: u64) {
        let per_page = 4096 / sp::SIZE;
        assert!(pfn.is_multiple_of(per_page) && (1 << order) > per_page);
        let first = pfn / per_page;
        let shared = (self.mem_map_pfn + first) * 4096;
        for i in first + 1..first + (1 << order) / per_page {
            self.map(VMEMMAP + i * 4096, shared);
        }
        let buddy = self.page_type("buddy");
        for p in pfn + per_page..pfn + (1 << order) {
            self.set_u64(p, sp::COMPOUND_HEAD, 0);
            self.set_u32(p, sp::MAPCOUNT, buddy);
            self.set_u64(p, sp::PRIVATE, 0);
        }
    }
    /// The ELF vmcore of this kernel: one PT_LOAD over all RAM, mapped at PAGE_OFFSET.
    pub fn vmcore(&self) -> SynthVmcore {
        let mut s = SynthVmcore::new()
            .prstatus(1)
            .vmcoreinfo(&self.vmcoreinfo());
        s = s.load(0, self.mem.clone(), 0);
        if let Some(l) = s.loads.last_mut() {
            l.virt_start = PAGE_OFFSET;
        }
        s
    }
}
