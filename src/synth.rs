//! Synthetic ELF vmcores for tests, benches and fuzzing: the edge cases real vmcores cannot
//! show (partial pages, holes, odd notes, corruption). Real vmcores come from the QEMU
//! harness under `tests/harness/`.

use crate::input::bytes::Endian;

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;

/// One ELF note, 4-byte aligned, little-endian.
pub fn note(name: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((name.len() + 1) as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&n_type.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(desc);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

/// A PT_LOAD of the synthetic vmcore.
#[derive(Debug, Clone)]
pub struct SynthLoad {
    pub phys_start: u64,
    pub virt_start: u64,
    /// The file bytes (p_filesz = len).
    pub data: Vec<u8>,
    /// p_memsz (≥ data.len()).
    pub mem_size: u64,
}

/// An x86_64 ELF64 little-endian core file under construction.
#[derive(Debug, Clone, Default)]
pub struct SynthVmcore {
    pub notes: Vec<u8>,
    pub loads: Vec<SynthLoad>,
}

/// A minimal VMCOREINFO for a 4 KiB-page x86_64 kernel.
pub const MINIMAL_VMCOREINFO: &str =
    "OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\nNUMBER(phys_base)=0\nCRASHTIME=1700000000\n";

impl SynthVmcore {
    pub fn new() -> SynthVmcore {
        SynthVmcore::default()
    }

    /// Adds `n` CORE/NT_PRSTATUS notes (336 bytes each, as on x86_64).
    pub fn prstatus(mut self, n: usize) -> Self {
        for cpu in 0..n {
            let mut desc = vec![0u8; 336];
            desc[32] = cpu as u8; // pr_pid
            self.notes.extend(note("CORE", 1, &desc));
        }
        self
    }

    pub fn vmcoreinfo(mut self, text: &str) -> Self {
        self.notes.extend(note("VMCOREINFO", 0, text.as_bytes()));
        self
    }

    pub fn load(mut self, phys_start: u64, data: Vec<u8>, mem_size: u64) -> Self {
        let mem_size = mem_size.max(data.len() as u64);
        self.loads.push(SynthLoad {
            phys_start,
            virt_start: 0xffff_8880_0000_0000 + phys_start,
            data,
            mem_size,
        });
        self
    }

    /// The file: ELF header, program headers, notes, then each segment's bytes. Segments
    /// start page-aligned in the file (as in /proc/vmcore) when their physical start is.
    pub fn to_bytes(&self) -> Vec<u8> {
        let e = Endian::Little;
        let phnum = 1 + self.loads.len();
        let mut out = vec![0u8; 64 + 56 * phnum];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // little-endian
        out[6] = 1;
        out[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
        out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        e.put_u64(&mut out, 32, 64);
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let put_ph =
            |out: &mut Vec<u8>, i: usize, t: u32, off: u64, v: u64, p: u64, fs: u64, ms: u64| {
                let b = 64 + 56 * i;
                e.put_u32(out, b, t);
                e.put_u32(out, b + 4, 7);
                e.put_u64(out, b + 8, off);
                e.put_u64(out, b + 16, v);
                e.put_u64(out, b + 24, p);
                e.put_u64(out, b + 32, fs);
                e.put_u64(out, b + 40, ms);
            };
        let note_off = out.len() as u64;
        put_ph(
            &mut out,
            0,
            PT_NOTE,
            note_off,
            0,
            0,
            self.notes.len() as u64,
            self.notes.len() as u64,
        );
        out.extend_from_slice(&self.notes);
        for (i, l) in self.loads.iter().enumerate() {
            // Keep the page offset of the physical address in the file offset.
            let in_page = l.phys_start % 4096;
            while out.len() as u64 % 4096 != in_page {
                out.push(0);
            }
            let off = out.len() as u64;
            put_ph(
                &mut out,
                i + 1,
                PT_LOAD,
                off,
                l.virt_start,
                l.phys_start,
                l.data.len() as u64,
                l.mem_size,
            );
            out.extend_from_slice(&l.data);
        }
        out
    }
}

/// Page contents of a few kinds, deterministic from `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Zero,
    /// Compressible: a repeating text with the seed in it.
    Text,
    /// Incompressible: xorshift noise.
    Random,
}

pub fn page(fill: Fill, seed: u64, page_size: usize) -> Vec<u8> {
    match fill {
        Fill::Zero => vec![0; page_size],
        Fill::Text => format!("page {seed:016x} of a synthetic vmcore; ")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(page_size)
            .collect(),
        Fill::Random => noise(seed, page_size),
    }
}

/// `n` incompressible bytes (xorshift), deterministic from `seed`.
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `n` pages cycling through zero, text and random contents.
pub fn mixed_pages(first_seed: u64, n: usize, page_size: usize) -> Vec<u8> {
    let kinds = [Fill::Zero, Fill::Text, Fill::Random, Fill::Text];
    (0..n)
        .flat_map(|i| page(kinds[i % kinds.len()], first_seed + i as u64, page_size))
        .collect()
}

/// Which kernel generation's VMCOREINFO and struct page encoding a synthetic kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Linux 6.1: PG_slab, compound order and destructor bytes in the first tail page,
    /// inverted-bit page types.
    Linux6_1,
    /// Linux 6.12: page types in the top byte, order in the first tail's flags.
    Linux6_12,
    /// Linux 7.1: as 6.12, with `compound_head` renamed `compound_info` (tails hold head + 1).
    Linux7_1,
    /// Linux 7.1 with the hugetlb vmemmap optimisation configured: every tail's
    /// `compound_info` is `GENMASK(63, order + log2(SIZE(page))) | 1`.
    Linux7_1Hvo,
    /// A kernel after the newest this project knows: 7.1's mask encoding, but the
    /// compound word exported under a new name (`OFFSET(page.memdesc)`) and a page type
    /// no table has (0xf9, exported as `PAGE_MEMDESC_MAPCOUNT_VALUE`).
    NextKernel,
}

impl Flavor {
    /// Whether page types are 6.12's top byte (and flags numbered as there).
    pub fn typed_slab(self) -> bool {
        self != Flavor::Linux6_1
    }

    /// Whether compound tails hold 7.1's mask rather than head + 1.
    pub fn tail_mask(self) -> bool {
        matches!(self, Flavor::Linux7_1Hvo | Flavor::NextKernel)
    }
}

/// Field offsets of the synthetic struct page (those of x86_64 6.x).
pub mod sp {
    pub const SIZE: u64 = 64;
    pub const FLAGS: u64 = 0;
    /// `compound_head`, called `compound_info` from 7.1.
    pub const COMPOUND_HEAD: u64 = 8;
    pub const COMPOUND_DTOR_6_1: u64 = 16;
    pub const COMPOUND_ORDER_6_1: u64 = 17;
    pub const MAPPING: u64 = 24;
    pub const PRIVATE: u64 = 40;
    pub const MAPCOUNT: u64 = 48;
}

/// A tiny x86_64 kernel in physical memory: 4-level page tables (direct map, kernel text
/// map, vmemmap), a SPARSEMEM_EXTREME mem_section with one section, and a struct page for
/// every page frame, all reachable from the VMCOREINFO it writes. Tests set struct pages to
/// build the page classes they need.
pub struct SynthKernel {
    pub flavor: Flavor,
    pub pages: u64,
    pub mem: Vec<u8>,
    next_table: u64,
    /// First pfn free for test pages (below it: tables, mem_section, mem_map).
    pub first_free_pfn: u64,
    mem_map_pfn: u64,
    roots_pfn: u64,
    sections_pfn: u64,
}

pub const PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
pub const VMEMMAP: u64 = 0xffff_ea00_0000_0000;
const PGD_PFN: u64 = 1;

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
            k.set_u32(pfn, sp::MAPCOUNT, u32::MAX);
        }
        assert!(k.next_table < k.roots_pfn, "page tables overflowed");
        k
    }

    fn put_u64(&mut self, pa: u64, v: u64) {
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
    fn map(&mut self, va: u64, pa: u64) {
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

    pub fn set_u64(&mut self, pfn: u64, off: u64, v: u64) {
        let pa = self.sp_pa(pfn) + off;
        self.put_u64(pa, v);
    }

    pub fn set_u32(&mut self, pfn: u64, off: u64, v: u32) {
        let pa = (self.sp_pa(pfn) + off) as usize;
        self.mem[pa..pa + 4].copy_from_slice(&v.to_le_bytes());
    }

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
        let n = match (self.flavor, name) {
            (Flavor::Linux6_1, "lru") => 4,
            (Flavor::Linux6_1, "private") => 13,
            (Flavor::Linux6_1, "swapcache") => 10,
            (Flavor::Linux6_1, "swapbacked") => 19,
            (Flavor::Linux6_1, "slab") => 9,
            (Flavor::Linux6_1, "hwpoison") => 23,
            (Flavor::Linux6_1, "head") => 16,
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
        match (self.flavor, name) {
            (Flavor::Linux6_1, "buddy") => !0x80,
            (Flavor::Linux6_1, "offline") => !0x100,
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
        self.set_u32(pfn, sp::MAPCOUNT, t);
        self.set_u64(pfn, sp::PRIVATE, order);
    }

    /// A compound page (folio) of 2^order pages at `pfn` with the given head flags and
    /// mapping; `hugetlb` marks it as a hugetlb folio.
    pub fn folio(&mut self, pfn: u64, order: u64, flags: u64, mapping: u64, hugetlb: bool) {
        let head = self.flag("head");
        self.set_u64(pfn, sp::FLAGS, flags | head);
        self.set_u64(pfn, sp::MAPPING, mapping);
        let link = if self.flavor.tail_mask() {
            (u64::MAX << (order + sp::SIZE.trailing_zeros() as u64)) | 1
        } else {
            Self::page_va(pfn) | 1
        };
        for t in pfn + 1..pfn + (1 << order) {
            self.set_u64(t, sp::COMPOUND_HEAD, link);
        }
        match self.flavor {
            Flavor::Linux6_1 => {
                self.set_u8(pfn + 1, sp::COMPOUND_ORDER_6_1, order as u8);
                self.set_u8(pfn + 1, sp::COMPOUND_DTOR_6_1, if hugetlb { 2 } else { 1 });
            }
            _ => {
                self.set_u64(pfn + 1, sp::FLAGS, order);
                // The first tail's mapping word holds folio counters (here: one page
                // mapped), so it looks anonymous to a reader that misses the tail.
                self.set_u64(pfn + 1, sp::MAPPING, 1);
                if hugetlb {
                    let t = self.page_type("hugetlb");
                    self.set_u32(pfn, sp::MAPCOUNT, t);
                }
            }
        }
    }

    pub fn vmcoreinfo(&self) -> String {
        let mut v = format!(
            "OSRELEASE=synthetic\nPAGESIZE=4096\nSYMBOL(init_top_pgt)={:x}\nNUMBER(phys_base)=0\n\
             NUMBER(pgtable_l5_enabled)=0\nNUMBER(sme_mask)=0\nSYMBOL(mem_section)={:x}\n\
             LENGTH(mem_section)=4096\nSIZE(mem_section)=32\nOFFSET(mem_section.section_mem_map)=0\n\
             NUMBER(SECTION_SIZE_BITS)=27\nNUMBER(MAX_PHYSMEM_BITS)=46\nSIZE(page)=64\n\
             OFFSET(page.flags)=0\nOFFSET(page._refcount)=52\nOFFSET(page.mapping)=24\n\
             OFFSET(page.lru)=8\nOFFSET(page._mapcount)=48\nOFFSET(page.private)=40\n\
             OFFSET(page.compound_head)=8\nLENGTH(zone.free_area)=11\nCRASHTIME=1700000000\n",
            START_KERNEL_MAP + PGD_PFN * 4096,
            PAGE_OFFSET + self.roots_pfn * 4096,
        );
        let flags = ["lru", "private", "swapcache", "swapbacked", "hwpoison"];
        for f in flags {
            v += &format!("NUMBER(PG_{f})={}\n", self.flag(f).trailing_zeros());
        }
        v += &format!("NUMBER(PG_head_mask)={}\n", self.flag("head"));
        match self.flavor {
            Flavor::Linux6_1 => {
                v += "OFFSET(page.compound_dtor)=16\nOFFSET(page.compound_order)=17\n\
                      NUMBER(HUGETLB_PAGE_DTOR)=2\nNUMBER(PG_slab)=9\n\
                      NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nNUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257\n";
            }
            _ => {
                v += "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456\n\
                      NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=-201326592\n\
                      NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-251658240\n\
                      NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=-184549376\n";
            }
        }
        match self.flavor {
            Flavor::Linux7_1 | Flavor::Linux7_1Hvo => {
                v = v.replace("OFFSET(page.compound_head)", "OFFSET(page.compound_info)");
            }
            Flavor::NextKernel => {
                v = v.replace("OFFSET(page.compound_head)", "OFFSET(page.memdesc)");
                v += "NUMBER(PAGE_MEMDESC_MAPCOUNT_VALUE)=-117440512\n";
            }
            _ => {}
        }
        v
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

/// Physical memory held in a buffer, page 0 at its start (unit tests of the kernel
/// readers).
pub struct RamPages(pub Vec<u8>);

impl crate::input::PhysPages for RamPages {
    fn page_size(&self) -> usize {
        4096
    }

    fn read_page(&mut self, pfn: u64) -> crate::error::Result<&[u8]> {
        let at = usize::try_from(pfn).ok().and_then(|p| p.checked_mul(4096));
        at.and_then(|at| self.0.get(at..at + 4096))
            .ok_or_else(|| crate::error::Error::bad_input(format!("no page {pfn:#x}")))
    }
}
