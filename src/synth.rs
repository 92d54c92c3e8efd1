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
/// Each exports the key set its kernel's `crash_save_vmcoreinfo_init` (kernel/kexec.c
/// before 4.11, kernel/crash_core.c after, 6.9+ kernel/vmcore_info.c) and x86_64's
/// `arch_crash_save_vmcoreinfo` export, with flag numbers from that version's
/// `enum pageflags`; facts marked "unconfirmed" in [`SynthKernel::vmcoreinfo`] were not
/// checked against the exact release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Linux 4.4 (below the range vmsift is tested on): struct page before the 4.18
    /// rearrangement (mapping at 8, _mapcount at 24, compound_head at 32, private at 48,
    /// as a real 4.16 VMCOREINFO shows), compound_dtor
    /// and compound_order as u16 at 40 and 42 of the first tail page (x86_64 switched them
    /// to u32 in 4.5 or 4.6, unconfirmed which; 32-bit kept u16 until 4.15), a free page
    /// is `_mapcount == -128`, no offline type, `init_level4_pgt`, `_count`.
    Linux4_4,
    /// Linux 4.9 (Debian 9's, below the tested range): 4.4's struct page and types, with
    /// compound_dtor and compound_order as u32 at 40 and 44 (x86_64 from 4.5 or 4.6 to
    /// 4.15) and `_refcount`.
    Linux4_9,
    /// RHEL 8's 4.18: page_type (base 0xf0000000, a type is a cleared bit: buddy 0x80),
    /// dtor and order as u8 at 16 and 17 of the first tail, PG_slab, flags numbered before
    /// PG_workingset (4.20). PAGE_OFFLINE_MAPCOUNT_VALUE is a 5.0 key that RHEL 8 carries
    /// with its virtio-mem backport (unconfirmed for every RHEL 8 minor release).
    Linux4_18,
    /// 4.19 as Kylin V10 and openEuler ship it: 4.18's encoding; 0x100 is still PG_balloon,
    /// so no offline type is exported.
    Linux4_19,
    /// Linux 5.4: flags numbered as in 6.1, PAGE_OFFLINE_MAPCOUNT_VALUE (exported only with
    /// CONFIG_HUGETLB_PAGE, as HUGETLB_PAGE_DTOR is).
    Linux5_4,
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
        matches!(
            self,
            Flavor::Linux6_12 | Flavor::Linux7_1 | Flavor::Linux7_1Hvo | Flavor::NextKernel
        )
    }

    /// Whether compound tails hold 7.1's mask rather than head + 1.
    pub fn tail_mask(self) -> bool {
        matches!(self, Flavor::Linux7_1Hvo | Flavor::NextKernel)
    }

    /// Whether the kernel exports an offline page type.
    pub fn has_offline(self) -> bool {
        !matches!(
            self,
            Flavor::Linux4_4 | Flavor::Linux4_9 | Flavor::Linux4_19
        )
    }

    /// Where this flavor's struct page keeps each field.
    pub fn offsets(self) -> Offsets {
        match self {
            Flavor::Linux4_4 => Offsets {
                flags: 0,
                mapping: 8,
                mapcount: 24,
                compound_head: 32,
                compound_dtor: 40,
                compound_order: 42,
                dtor_width: 2,
                private: 48,
            },
            Flavor::Linux4_9 => Offsets {
                compound_order: 44,
                dtor_width: 4,
                ..Flavor::Linux4_4.offsets()
            },
            _ => Offsets {
                flags: sp::FLAGS,
                mapping: sp::MAPPING,
                mapcount: sp::MAPCOUNT,
                compound_head: sp::COMPOUND_HEAD,
                compound_dtor: sp::COMPOUND_DTOR_6_1,
                compound_order: sp::COMPOUND_ORDER_6_1,
                dtor_width: 1,
                private: sp::PRIVATE,
            },
        }
    }
}

/// Field offsets of one flavor's 64-byte struct page (x86_64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub flags: u64,
    pub mapping: u64,
    pub mapcount: u64,
    /// `compound_head` (`compound_info` from 7.1).
    pub compound_head: u64,
    /// compound_dtor and compound_order in the first tail page (kernels before 6.3), each
    /// `dtor_width` bytes.
    pub compound_dtor: u64,
    pub compound_order: u64,
    pub dtor_width: u64,
    pub private: u64,
}

/// Field offsets of the synthetic struct page (those of x86_64 4.18 to 7.x).
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
    /// Where this flavor's struct page keeps each field.
    pub o: Offsets,
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

    pub fn vmcoreinfo(&self) -> String {
        if matches!(
            self.flavor,
            Flavor::Linux4_4
                | Flavor::Linux4_9
                | Flavor::Linux4_18
                | Flavor::Linux4_19
                | Flavor::Linux5_4
        ) {
            return self.old_vmcoreinfo();
        }
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

    /// The VMCOREINFO of a 4.4 to 5.4 kernel: the keys those kernels export, no more.
    fn old_vmcoreinfo(&self) -> String {
        let f = self.flavor;
        let o = self.o;
        let release = match f {
            Flavor::Linux4_4 => "4.4.0-synthetic",
            Flavor::Linux4_9 => "4.9.0-synthetic",
            Flavor::Linux4_18 => "4.18.0-synthetic.el8",
            Flavor::Linux4_19 => "4.19.90-synthetic",
            _ => "5.4.0-synthetic",
        };
        // init_level4_pgt was renamed init_top_pgt in 4.13. A real 4.16 VMCOREINFO has
        // neither pgtable_l5_enabled nor sme_mask; 4.18 is taken to have the first
        // (unconfirmed), 5.4 both.
        let arch = match f {
            Flavor::Linux4_4 | Flavor::Linux4_9 => "SYMBOL(init_level4_pgt)",
            Flavor::Linux5_4 => {
                "NUMBER(pgtable_l5_enabled)=0\nNUMBER(sme_mask)=0\nSYMBOL(init_top_pgt)"
            }
            _ => "NUMBER(pgtable_l5_enabled)=0\nSYMBOL(init_top_pgt)",
        };
        let mut v = format!(
            "OSRELEASE={release}\nPAGESIZE={}\n{arch}={:x}\nNUMBER(phys_base)=0\nKERNELOFFSET=0\n\
             SYMBOL(mem_section)={:x}\nLENGTH(mem_section)=2048\nSIZE(mem_section)=16\n\
             OFFSET(mem_section.section_mem_map)=0\nSIZE(page)=64\n",
            4096,
            START_KERNEL_MAP + PGD_PFN * 4096,
            PAGE_OFFSET + self.roots_pfn * 4096,
        );
        // SECTION_SIZE_BITS (5.13) and MAX_PHYSMEM_BITS (5.9) reached 5.4.y through
        // stable; 4.19.90 (Kylin, openEuler) and RHEL 8's 4.18 are taken to lack them
        // (unconfirmed for RHEL 8, which may carry the backport).
        if f == Flavor::Linux5_4 {
            v += "NUMBER(SECTION_SIZE_BITS)=27\nNUMBER(MAX_PHYSMEM_BITS)=46\n";
        }
        // _refcount was _count before 4.6; lru shares its word with compound_head. For 4.4,
        // compound_head, compound_dtor/order and PG_head_mask are exported as a 4.6-era
        // kernel/kexec.c exports them (unconfirmed for 4.4 itself).
        let refcount = match f {
            Flavor::Linux4_4 => "page._count)=28",
            Flavor::Linux4_9 => "page._refcount)=28",
            _ => "page._refcount)=52",
        };
        v += &format!(
            "OFFSET(page.flags)={}\nOFFSET({refcount}\nOFFSET(page.mapping)={}\n\
             OFFSET(page.lru)={}\nOFFSET(page._mapcount)={}\nOFFSET(page.private)={}\n\
             OFFSET(page.compound_dtor)={}\nOFFSET(page.compound_order)={}\n\
             OFFSET(page.compound_head)={}\nLENGTH(zone.free_area)=11\n",
            o.flags,
            o.mapping,
            o.compound_head,
            o.mapcount,
            o.private,
            o.compound_dtor,
            o.compound_order,
            o.compound_head,
        );
        // No PG_swapbacked: its export is later than these kernels (unconfirmed when).
        for flag in ["lru", "private", "swapcache", "slab", "hwpoison"] {
            v += &format!("NUMBER(PG_{flag})={}\n", self.flag(flag).trailing_zeros());
        }
        v += &format!(
            "NUMBER(PG_head_mask)={}\nNUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)={}\n\
             NUMBER(HUGETLB_PAGE_DTOR)=2\n",
            self.flag("head"),
            self.page_type("buddy") as i32,
        );
        if f.has_offline() {
            let t = self.page_type("offline") as i32;
            v += &format!("NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)={t}\n");
        }
        v + "CRASHTIME=1700000000\n"
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

    /// Writes a lockless printk ring buffer (the x86_64 layout of Linux 5.10 and later)
    /// holding `records`, oldest first, in the pages from `first_free_pfn` on (which it moves
    /// past them): 16 descriptors whose ids lap the ring, and a 1 KiB text ring in which the
    /// last record wraps to the start. Returns the VMCOREINFO lines that describe it, with
    /// `OFFSET(printk_info.caller_id)` only if `caller_id` (kernels before 5.10 built without
    /// CONFIG_PRINTK_CALLER have no caller id; 5.10 and later always export it).
    pub fn printk_ring(&mut self, records: &[LogRecord], caller_id: bool) -> String {
        const COUNT: u64 = 16;
        const RING: u64 = 1024;
        const DESC: u64 = 24;
        const INFO: u64 = 88;
        assert!(!records.is_empty() && records.len() < COUNT as usize);
        let base = self.first_free_pfn * 4096;
        self.first_free_pfn += 3;
        let (prb_ptr, clear_seq, rb) = (base, base + 8, base + 64);
        let (descs, infos, data) = (base + 4096, base + 4096 + 1024, base + 2 * 4096);
        let va = |pa: u64| PAGE_OFFSET + pa;
        let size = |r: &LogRecord| (8 + r.text.len() as u64).div_ceil(8) * 8;
        let before_last: u64 = records[..records.len() - 1].iter().map(size).sum();
        assert!(before_last + 8 + size(&records[records.len() - 1]) <= RING);
        // Logical positions: the records before the last fill the ring's end but 8 bytes.
        let mut lpos = 5 * RING + RING - before_last - 8;
        let first_id = 3 * COUNT + 13;
        for (i, r) in records.iter().enumerate() {
            let id = first_id + i as u64;
            let len = size(r);
            let (begin, next) = if lpos % RING + len > RING {
                (lpos, lpos - lpos % RING + RING + len)
            } else {
                (lpos, lpos + len)
            };
            lpos = next;
            let at = data + (next - len) % RING;
            self.put_u64(at, id);
            let t = (at + 8) as usize;
            self.mem[t..t + r.text.len()].copy_from_slice(r.text);
            let d = descs + (id % COUNT) * DESC;
            // The last record committed, the others finalized.
            let state: u64 = if i + 1 == records.len() { 1 } else { 2 };
            self.put_u64(d, state << 62 | id);
            self.put_u64(d + 8, begin);
            self.put_u64(d + 16, next);
            let f = (infos + (id % COUNT) * INFO) as usize;
            self.mem[f..f + 8].copy_from_slice(&(i as u64).to_le_bytes());
            self.mem[f + 8..f + 16].copy_from_slice(&r.ts_nsec.to_le_bytes());
            self.mem[f + 16..f + 18].copy_from_slice(&(r.text.len() as u16).to_le_bytes());
            self.mem[f + 20..f + 24].copy_from_slice(&r.caller_id.to_le_bytes());
        }
        self.put_u64(prb_ptr, va(rb));
        self.put_u64(clear_seq, 0);
        self.mem[rb as usize..rb as usize + 4].copy_from_slice(&4u32.to_le_bytes());
        self.put_u64(rb + 8, va(descs));
        self.put_u64(rb + 16, va(infos));
        self.put_u64(rb + 24, first_id + records.len() as u64 - 1);
        self.put_u64(rb + 32, first_id);
        self.mem[rb as usize + 40..rb as usize + 44].copy_from_slice(&10u32.to_le_bytes());
        self.put_u64(rb + 48, va(data));
        self.put_u64(rb + 56, lpos);
        self.put_u64(rb + 64, 5 * RING + RING - before_last - 8);
        let mut v = format!(
            "SYMBOL(prb)={:x}\nSYMBOL(printk_rb_static)={:x}\nSYMBOL(clear_seq)={:x}\n",
            va(prb_ptr),
            va(rb),
            va(clear_seq)
        );
        v += "SIZE(printk_ringbuffer)=80\nOFFSET(printk_ringbuffer.desc_ring)=0\n\
              OFFSET(printk_ringbuffer.text_data_ring)=40\nOFFSET(printk_ringbuffer.fail)=72\n\
              SIZE(prb_desc_ring)=40\nOFFSET(prb_desc_ring.count_bits)=0\n\
              OFFSET(prb_desc_ring.descs)=8\nOFFSET(prb_desc_ring.infos)=16\n\
              OFFSET(prb_desc_ring.head_id)=24\nOFFSET(prb_desc_ring.tail_id)=32\n\
              SIZE(prb_desc)=24\nOFFSET(prb_desc.state_var)=0\nOFFSET(prb_desc.text_blk_lpos)=8\n\
              SIZE(prb_data_blk_lpos)=16\nOFFSET(prb_data_blk_lpos.begin)=0\n\
              OFFSET(prb_data_blk_lpos.next)=8\nSIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\n\
              OFFSET(printk_info.ts_nsec)=8\nOFFSET(printk_info.text_len)=16\n\
              OFFSET(printk_info.dev_info)=24\nSIZE(dev_printk_info)=64\n\
              OFFSET(dev_printk_info.subsystem)=0\nLENGTH(printk_info_subsystem)=16\n\
              OFFSET(dev_printk_info.device)=16\nLENGTH(printk_info_device)=48\n\
              SIZE(prb_data_ring)=32\nOFFSET(prb_data_ring.size_bits)=0\n\
              OFFSET(prb_data_ring.data)=8\nOFFSET(prb_data_ring.head_lpos)=16\n\
              OFFSET(prb_data_ring.tail_lpos)=24\nSIZE(atomic_long_t)=8\n\
              OFFSET(atomic_long_t.counter)=0\n";
        if caller_id {
            v += "OFFSET(printk_info.caller_id)=20\n";
        }
        v
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

/// One record of a synthetic kernel log.
pub struct LogRecord<'a> {
    pub ts_nsec: u64,
    /// The task's pid, or `0x80000000 | cpu` for a record logged outside task context.
    pub caller_id: u32,
    pub text: &'a [u8],
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

/// Kernel memory of a synthetic x86_64 kernel: `mem` is physical memory from address 0,
/// read through the page tables this VMCOREINFO names (unit tests of the kernel readers).
pub fn kernel_memory(
    mem: Vec<u8>,
    info: &crate::kernel::vmcoreinfo::VmcoreInfo,
) -> crate::arch::KernelMemory {
    let arch = crate::arch::Arch::new(crate::arch::x86_64::EM_X86_64, Endian::Little, info, 4096);
    match arch {
        Ok(arch) => crate::arch::KernelMemory::new(Box::new(RamPages(mem)), arch, Endian::Little),
        Err(why) => panic!("synthetic kernel without translation: {why}"),
    }
}
