//! Writes a sparse x86_64 ELF vmcore of a machine with a lot of RAM (a Linux 6.1-like kernel,
//! the layout of `vmsift::synth::Flavor::Linux6_1`), streaming: memory stays a few MiB
//! whatever the RAM size. Used by `benches/terabyte`, which times vmsift and makedumpfile
//! at `-d 31` on it.
//!
//!     cargo bench --bench terabyte -- --out target/terabyte/256.elf [--gib 256] [--kernel-permille N]
//!
//! Physical memory: RAM in [0, 2 GiB) and [4 GiB, GIB + 2 GiB) (a PCI hole between, whose
//! memory sections are absent), direct map in 1 GiB pages, vmemmap in 2 MiB pages (one per
//! present 128 MiB section), mem_map at the top of RAM, SPARSEMEM_EXTREME mem_section.
//! Every page frame has a struct page: free buddy blocks of orders 0 to 10, anonymous pages
//! and THP folios, page-cache pages (some with PG_private) and large cache folios, slab
//! pages (some compound) and other kernel pages, and reserved pages (page tables,
//! mem_section, the kernel image, mem_map itself). Only the pages kept at `-d 31` (kernel
//! pages) have contents in the file; all others are holes (zero). The generator's own count
//! of each class is printed as `key=value` lines (and written beside the vmcore as
//! `.counts`), to be compared with what the collectors report.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use vmsift::synth::{
    Fill, Flavor, PAGE_OFFSET, START_KERNEL_MAP, SynthKernel, SynthVmcore, VMEMMAP, noise, page, sp,
};

const PS: u64 = 4096;
const GIB: u64 = 1 << 30;
/// Pages per 128 MiB memory section (SECTION_SIZE_BITS 27).
const SECTION_PAGES: u64 = 1 << 15;
/// Sections per mem_section root page (4096 / SIZE(mem_section)).
const SECTIONS_PER_ROOT: u64 = 128;
/// LENGTH(mem_section): roots for MAX_PHYSMEM_BITS 46.
const NR_ROOTS: u64 = 4096;
/// 6.1's TAIL_MAPPING (0x400 + POISON_POINTER_DELTA) in the mapping of later tails.
const TAIL_MAPPING: u64 = 0xdead_0000_0000_0400;
/// Where the kernel image is (kept, with contents).
const IMAGE: std::ops::Range<u64> = 4096..12288;

/// xorshift64*: deterministic, fast.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

/// What each class of page frame counts (the collectors' report, from the generator's side).
#[derive(Default, Debug)]
struct Counts {
    free: u64,
    user: u64,
    cache: u64,
    cache_private: u64,
    /// Kernel pages with contents: what `-d 31` keeps.
    kernel_kept: u64,
    /// Kernel pages that are all zero (`-d 1` leaves them out).
    kernel_zero: u64,
    thp_folios: u64,
    cache_folios: u64,
    slab_pages: u64,
    reserved: u64,
}

/// Flag bits and page types of the 6.1 flavor, from the synthetic kernel that tests use.
struct Bits {
    lru: u64,
    private: u64,
    swapbacked: u64,
    slab: u64,
    head: u64,
    buddy: u32,
}

const PG_UPTODATE: u64 = 1 << 2;
const PG_ACTIVE: u64 = 1 << 5;
const PG_RESERVED: u64 = 1 << 12;

/// The physical layout.
struct Layout {
    low_end: u64,
    high_start: u64,
    high_end: u64,
    /// First pfn of mem_map (it runs to `high_end`).
    mm_pfn: u64,
    sections: u64,
    present: Vec<bool>,
    /// File offsets of the two PT_LOADs.
    low_off: u64,
    high_off: u64,
}

impl Layout {
    fn ram(&self, pfn: u64) -> bool {
        pfn < self.low_end || (self.high_start..self.high_end).contains(&pfn)
    }
    fn file_off(&self, pfn: u64) -> u64 {
        if pfn < self.low_end {
            self.low_off + pfn * PS
        } else {
            self.high_off + (pfn - self.high_start) * PS
        }
    }
    /// mem_map's physical address of a present section's struct pages.
    fn section_mm_pa(&self, section: u64) -> u64 {
        let index = self.present[..section as usize]
            .iter()
            .filter(|p| **p)
            .count() as u64;
        self.mm_pfn * PS + index * SECTION_PAGES * sp::SIZE
    }
}

/// Batches contiguous page writes into one pwrite each.
struct Out {
    file: File,
    at: u64,
    buf: Vec<u8>,
}
impl Out {
    fn put(&mut self, off: u64, bytes: &[u8]) {
        if self.at + self.buf.len() as u64 != off || self.buf.len() >= 8 << 20 {
            self.flush();
            self.at = off;
        }
        self.buf.extend_from_slice(bytes);
    }
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.at).expect("write");
            self.buf.clear();
        }
    }
}

/// One section's struct pages under construction, and what the pages hold.
struct Section<'a> {
    first: u64,
    sp: Vec<u8>,
    bits: &'a Bits,
    counts: &'a mut Counts,
    rng: &'a mut Rng,
    /// Kernel pages to write with contents (pfns of this section).
    kernel: Vec<u64>,
}

impl Section<'_> {
    fn at(&self, pfn: u64, off: u64) -> usize {
        ((pfn - self.first) * sp::SIZE + off) as usize
    }
    fn u64(&mut self, pfn: u64, off: u64, v: u64) {
        let a = self.at(pfn, off);
        self.sp[a..a + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, pfn: u64, off: u64, v: u32) {
        let a = self.at(pfn, off);
        self.sp[a..a + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn u8(&mut self, pfn: u64, off: u64, v: u8) {
        let a = self.at(pfn, off);
        self.sp[a] = v;
    }
    /// A struct page in use: flags, mapping, refcount, _mapcount.
    fn used(&mut self, pfn: u64, flags: u64, mapping: u64, mapcount: u32) {
        self.u64(pfn, sp::FLAGS, flags | zone(pfn));
        self.u64(pfn, sp::MAPPING, mapping);
        self.u64(pfn, 32, pfn & 0xfff_ffff); // index
        self.u32(pfn, sp::MAPCOUNT, mapcount);
        self.u32(pfn, 52, 1); // _refcount
        if flags & self.bits.lru != 0 {
            // lru: list neighbours, struct page addresses (bit 0 clear: not a tail).
            let n = self.rng.next() % (1 << 26);
            self.u64(pfn, 8, VMEMMAP + n * sp::SIZE);
            self.u64(pfn, 16, VMEMMAP + (n + 1) * sp::SIZE);
        }
    }
    /// A free buddy block of 2^order pages.
    fn buddy(&mut self, pfn: u64, order: u64) {
        self.u64(pfn, sp::FLAGS, zone(pfn));
        let n = self.rng.next() % (1 << 26);
        self.u64(pfn, 8, VMEMMAP + n * sp::SIZE);
        self.u64(pfn, 16, VMEMMAP + (n + 7) * sp::SIZE);
        self.u64(pfn, sp::PRIVATE, order);
        self.u32(pfn, sp::MAPCOUNT, self.bits.buddy);
        for p in pfn + 1..pfn + (1 << order) {
            self.u64(p, sp::FLAGS, zone(p));
            self.u32(p, sp::MAPCOUNT, u32::MAX);
        }
        self.counts.free += 1 << order;
    }
    /// Free buddy blocks covering [a, b), each as large as its alignment allows.
    fn free_range(&mut self, mut a: u64, b: u64) {
        while a < b {
            let mut order = a.trailing_zeros().min(10) as u64;
            while a + (1 << order) > b {
                order -= 1;
            }
            self.buddy(a, order);
            a += 1 << order;
        }
    }
    /// Free blocks from one of 2^order pages, split at random as an allocator leaves them.
    fn free_split(&mut self, pfn: u64, order: u64) {
        if order == 0 || self.rng.pct(55) {
            self.buddy(pfn, order);
        } else {
            self.free_split(pfn, order - 1);
            self.free_split(pfn + (1 << (order - 1)), order - 1);
        }
    }
    /// A compound folio: head with `flags` and `mapping`, tails linked to it (6.1: order and
    /// destructor bytes in the first tail, TAIL_MAPPING in the later ones).
    fn folio(&mut self, pfn: u64, order: u64, flags: u64, mapping: u64, dtor: u8) {
        let mapcount = if mapping & 1 != 0 { 0 } else { u32::MAX };
        self.used(pfn, flags | self.bits.head, mapping, mapcount);
        self.u32(pfn, 52, 1 << order);
        let link = SynthKernel::page_va(pfn) | 1;
        for t in pfn + 1..pfn + (1 << order) {
            self.u64(t, sp::FLAGS, zone(t));
            self.u64(t, sp::COMPOUND_HEAD, link);
            self.u32(t, sp::MAPCOUNT, u32::MAX);
            if t > pfn + 1 {
                self.u64(t, sp::MAPPING, TAIL_MAPPING);
            }
        }
        self.u8(pfn + 1, sp::COMPOUND_DTOR_6_1, dtor);
        self.u8(pfn + 1, sp::COMPOUND_ORDER_6_1, order as u8);
        self.u32(pfn + 1, 20, u32::MAX); // compound_mapcount
        self.u32(pfn + 1, 28, 1 << order); // compound_nr
    }
    fn anon(&mut self) -> u64 {
        PAGE_OFFSET + 0x1_0000_0000 + (self.rng.next() % 4096) * 0xa0 + 1
    }
    fn address_space(&mut self) -> u64 {
        PAGE_OFFSET + 0x2_0000_0000 + (self.rng.next() % 4096) * 0x1f8
    }
    /// Every 4 MiB unit of the section: reserved pages as they are with free blocks between
    /// them, or a unit of free, user, cache or (one in 1000/`kpm`) kernel memory.
    fn units(&mut self, reserved: impl Fn(u64) -> bool, kpm: u64) {
        for unit in (self.first..self.first + SECTION_PAGES).step_by(1024) {
            if (unit..unit + 1024).any(&reserved) {
                // Reserved pages as they are, free blocks between them.
                let mut p = unit;
                while p < unit + 1024 {
                    if reserved(p) {
                        self.used(p, PG_RESERVED, 0, u32::MAX);
                        self.counts.reserved += 1;
                        self.kernel.push(p);
                        p += 1;
                    } else {
                        let end = (p..unit + 1024)
                            .find(|q| reserved(*q))
                            .unwrap_or(unit + 1024);
                        self.free_range(p, end);
                        p = end;
                    }
                }
                continue;
            }
            let r = self.rng.next() % 1000;
            if r < kpm {
                self.kernel_unit(unit);
            } else if r < kpm + 400 {
                self.free_split(unit, 10);
            } else if r < kpm + 700 {
                self.user_unit(unit);
            } else {
                self.cache_unit(unit);
            }
        }
    }
    /// A 4 MiB unit of anonymous memory: THP folios and single pages.
    fn user_unit(&mut self, pfn: u64) {
        let b = self.bits;
        for half in [pfn, pfn + 512] {
            if self.rng.pct(40) {
                let m = self.anon();
                self.folio(half, 9, b.lru | b.swapbacked | PG_UPTODATE, m, 3);
                self.counts.user += 512;
                self.counts.thp_folios += 1;
                continue;
            }
            for p in half..half + 512 {
                let m = self.anon();
                let active = if self.rng.pct(50) { PG_ACTIVE } else { 0 };
                self.used(p, b.lru | b.swapbacked | PG_UPTODATE | active, m, 0);
                self.counts.user += 1;
            }
        }
    }
    /// A 4 MiB unit of page cache: single pages (a quarter with buffer heads) and folios.
    fn cache_unit(&mut self, pfn: u64) {
        let b = self.bits;
        for group in (pfn..pfn + 1024).step_by(16) {
            let m = self.address_space();
            match self.rng.next() % 100 {
                0..60 => {
                    for p in group..group + 16 {
                        if self.rng.pct(25) {
                            self.used(p, b.lru | b.private | PG_UPTODATE, m, u32::MAX);
                            self.u64(p, sp::PRIVATE, PAGE_OFFSET + (p << 7));
                            self.counts.cache_private += 1;
                        } else {
                            self.used(p, b.lru | PG_UPTODATE, m, u32::MAX);
                            self.counts.cache += 1;
                        }
                    }
                }
                60..85 => {
                    for f in (group..group + 16).step_by(4) {
                        self.folio(f, 2, b.lru | PG_UPTODATE, m, 1);
                        self.counts.cache += 4;
                        self.counts.cache_folios += 1;
                    }
                }
                _ => {
                    self.folio(group, 4, b.lru | b.private | PG_UPTODATE, m, 1);
                    self.u64(group, sp::PRIVATE, PAGE_OFFSET + (group << 7));
                    self.counts.cache_private += 16;
                    self.counts.cache_folios += 1;
                }
            }
        }
    }
    /// A 4 MiB unit of kernel memory: slabs (orders 0 to 3), other kernel pages, and some
    /// free and user pages between them.
    fn kernel_unit(&mut self, pfn: u64) {
        let b = self.bits;
        for group in (pfn..pfn + 1024).step_by(8) {
            match self.rng.next() % 100 {
                0..45 => {
                    let order = self.rng.next() % 4;
                    for s in (group..group + 8).step_by(1 << order) {
                        let cache = PAGE_OFFSET + 0x3_0000_0000 + (self.rng.next() % 512) * 0x100;
                        if order == 0 {
                            self.used(s, b.slab, 0, u32::MAX);
                        } else {
                            self.folio(s, order, b.slab, 0, 1);
                        }
                        self.u64(s, 8, cache); // slab_cache
                        self.counts.slab_pages += 1 << order;
                    }
                    self.kernel.extend(group..group + 8);
                }
                45..80 => {
                    for p in group..group + 8 {
                        self.used(p, 0, 0, u32::MAX);
                    }
                    self.kernel.extend(group..group + 8);
                }
                80..90 => {
                    for p in group..group + 8 {
                        let m = self.anon();
                        self.used(p, b.lru | b.swapbacked | PG_UPTODATE, m, 0);
                    }
                    self.counts.user += 8;
                }
                _ => self.free_split(group, 3),
            }
        }
    }
}

/// The zone in the flags' top bits (node 0; DMA32 below 4 GiB, Normal above).
fn zone(pfn: u64) -> u64 {
    if pfn < (4 * GIB) / PS {
        1 << 56
    } else {
        2 << 56
    }
}

/// Contents of a kept kernel page: a mix of what kernel memory holds (structures of
/// pointers and small numbers, text, incompressible data).
fn kernel_page(pfn: u64, buf: &mut [u8]) {
    let h = pfn.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56;
    match h % 8 {
        0 => buf.copy_from_slice(&noise(pfn, PS as usize)),
        1 | 2 => buf.copy_from_slice(&page(Fill::Text, pfn, PS as usize)),
        _ => {
            let mut r = Rng(pfn | 1);
            for w in buf.chunks_exact_mut(8) {
                let v = match r.next() % 8 {
                    0..3 => 0,
                    3 | 4 => PAGE_OFFSET + ((r.next() % (1 << 30)) & !7),
                    5 => r.next() % 256,
                    6 => VMEMMAP + (r.next() % (1 << 26)) * 64,
                    _ => 0xffff_ffff_8100_0000 + (r.next() % (1 << 24)),
                };
                w.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// The small kernel structures at the bottom of RAM: page tables, mem_section, init_uts_ns.
/// Returns them by pfn and the VMCOREINFO that points at them.
fn metadata(l: &Layout) -> (BTreeMap<u64, Vec<u8>>, String) {
    let mut pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut next = 1u64;
    let mut alloc = |pages: &mut BTreeMap<u64, Vec<u8>>| {
        let pfn = next;
        next += 1;
        pages.insert(pfn, vec![0; PS as usize]);
        pfn
    };
    let put = |pages: &mut BTreeMap<u64, Vec<u8>>, pfn: u64, slot: u64, v: u64| {
        let p = pages.get_mut(&pfn).expect("allocated");
        p[slot as usize * 8..slot as usize * 8 + 8].copy_from_slice(&v.to_le_bytes());
    };
    let idx = |va: u64, shift: u32| (va >> shift) & 0x1ff;
    let pgd = alloc(&mut pages);
    // Direct map: 1 GiB pages of present RAM.
    let mut puds: BTreeMap<u64, u64> = BTreeMap::new();
    for gib in 0..l.high_end * PS / GIB {
        if !l.ram(gib * GIB / PS) {
            continue;
        }
        let va = PAGE_OFFSET + gib * GIB;
        let pud = *puds.entry(idx(va, 39)).or_insert_with(|| alloc(&mut pages));
        put(&mut pages, pud, idx(va, 30), (gib * GIB) | 0xe3);
    }
    for (slot, pud) in &puds {
        put(&mut pages, pgd, *slot, (pud * PS) | 0x63);
    }
    // Kernel text map: one 1 GiB page at phys_base 0.
    let text = alloc(&mut pages);
    put(
        &mut pages,
        pgd,
        idx(START_KERNEL_MAP, 39),
        (text * PS) | 0x63,
    );
    put(&mut pages, text, idx(START_KERNEL_MAP, 30), 0xe3);
    // vmemmap: a 2 MiB page of struct pages per present section.
    let vpud = alloc(&mut pages);
    put(&mut pages, pgd, idx(VMEMMAP, 39), (vpud * PS) | 0x63);
    let mut pmds: BTreeMap<u64, u64> = BTreeMap::new();
    for s in 0..l.sections {
        if !l.present[s as usize] {
            continue;
        }
        let va = VMEMMAP + s * SECTION_PAGES * sp::SIZE;
        let pmd = *pmds.entry(idx(va, 30)).or_insert_with(|| alloc(&mut pages));
        put(&mut pages, pmd, idx(va, 21), l.section_mm_pa(s) | 0xe3);
    }
    for (slot, pmd) in &pmds {
        put(&mut pages, vpud, *slot, (pmd * PS) | 0x63);
    }
    // mem_section: NR_ROOTS root pointers, each to a page of 128 sections.
    let roots: Vec<u64> = (0..NR_ROOTS * 8 / PS).map(|_| alloc(&mut pages)).collect();
    for r in 0..l.sections.div_ceil(SECTIONS_PER_ROOT) {
        let page = alloc(&mut pages);
        put(
            &mut pages,
            roots[(r / 512) as usize],
            r % 512,
            PAGE_OFFSET + page * PS,
        );
        for i in 0..SECTIONS_PER_ROOT {
            let s = r * SECTIONS_PER_ROOT + i;
            if s < l.sections && l.present[s as usize] {
                // SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP, vmemmap's encoded mem_map.
                put(&mut pages, page, i * 4, VMEMMAP | 0x3);
            }
        }
    }
    let uts = alloc(&mut pages);
    let release = b"6.1.0-synthetic";
    let u = pages.get_mut(&uts).expect("allocated");
    u[..5].copy_from_slice(b"Linux");
    u[130..130 + release.len()].copy_from_slice(release);
    assert!(next < IMAGE.start, "metadata overflowed");

    let k = SynthKernel::new(Flavor::Linux6_1, 256);
    let mut v = format!(
        "OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\nSYMBOL(init_uts_ns)={:x}\n\
         OFFSET(uts_namespace.name)=0\nSYMBOL(init_top_pgt)={:x}\nNUMBER(phys_base)=0\n\
         NUMBER(pgtable_l5_enabled)=0\nNUMBER(sme_mask)=0\nSYMBOL(mem_section)={:x}\n\
         LENGTH(mem_section)={NR_ROOTS}\nSIZE(mem_section)=32\n\
         OFFSET(mem_section.section_mem_map)=0\nNUMBER(SECTION_SIZE_BITS)=27\n\
         NUMBER(MAX_PHYSMEM_BITS)=46\nSIZE(page)=64\nOFFSET(page.flags)=0\n\
         OFFSET(page._refcount)=52\nOFFSET(page.mapping)=24\nOFFSET(page.lru)=8\n\
         OFFSET(page._mapcount)=48\nOFFSET(page.private)=40\nOFFSET(page.compound_head)=8\n\
         OFFSET(page.compound_dtor)=16\nOFFSET(page.compound_order)=17\n\
         LENGTH(zone.free_area)=11\nNUMBER(HUGETLB_PAGE_DTOR)=2\n\
         NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nNUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257\n\
         CRASHTIME=1700000000\n",
        PAGE_OFFSET + uts * PS,
        START_KERNEL_MAP + pgd * PS,
        PAGE_OFFSET + roots[0] * PS,
    );
    for f in [
        "lru",
        "private",
        "swapcache",
        "swapbacked",
        "slab",
        "hwpoison",
    ] {
        v += &format!("NUMBER(PG_{f})={}\n", k.flag(f).trailing_zeros());
    }
    v += &format!("NUMBER(PG_head_mask)={}\n", k.flag("head"));
    (pages, v)
}

/// Arguments: `--out PATH`, `--gib N` (RAM, default 256), `--kernel-permille N` (share of
/// RAM in kernel units, about three quarters of which are kernel pages; default 10).
fn args() -> (String, u64, u64) {
    let mut out = String::from("target/terabyte/vmcore.elf");
    let (mut gib, mut kpm) = (256, 10);
    let mut a = std::env::args().skip(1);
    while let Some(x) = a.next() {
        match x.as_str() {
            "--out" => out = a.next().expect("--out PATH"),
            "--gib" => gib = a.next().and_then(|v| v.parse().ok()).expect("--gib N"),
            "--kernel-permille" => {
                kpm = a
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--kernel-permille N");
            }
            _ => {} // cargo bench passes --bench
        }
    }
    assert!(gib >= 4, "at least 4 GiB");
    (out, gib, kpm)
}

/// RAM in [0, 2 GiB) and [4 GiB, GIB + 2 GiB), mem_map at the top.
fn layout(gib: u64) -> Layout {
    let low_end = 2 * GIB / PS;
    let high_start = 4 * GIB / PS;
    let high_end = high_start + (gib - 2) * GIB / PS;
    let sections = high_end / SECTION_PAGES;
    let present: Vec<bool> = (0..sections)
        .map(|s| {
            let p = s * SECTION_PAGES;
            p < low_end || p >= high_start
        })
        .collect();
    let n_present = present.iter().filter(|p| **p).count() as u64;
    let mm_pfn = high_end - n_present * SECTION_PAGES * sp::SIZE / PS;

    Layout {
        low_end,
        high_start,
        high_end,
        mm_pfn,
        sections,
        present,
        low_off: 0,
        high_off: 0,
    }
}

/// The ELF header, PT_NOTE and two PT_LOADs, and the notes; sets the loads' file offsets
/// (page-aligned after the notes). Returns the header bytes and the file's size.
fn elf_header(l: &mut Layout, notes: &[u8]) -> (Vec<u8>, u64) {
    let (low_end, high_start, high_end) = (l.low_end, l.high_start, l.high_end);
    let head_len = 64 + 56 * 3;
    l.low_off = (head_len + notes.len() as u64).div_ceil(PS) * PS;
    l.high_off = l.low_off + low_end * PS;
    let total = l.high_off + (high_end - high_start) * PS;
    let mut h = vec![0u8; head_len as usize];
    h[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    h[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
    h[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[32..40].copy_from_slice(&64u64.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes());
    h[54..56].copy_from_slice(&56u16.to_le_bytes());
    h[56..58].copy_from_slice(&3u16.to_le_bytes());
    let phdrs = [
        (4u32, head_len, 0, 0, notes.len() as u64),
        (1, l.low_off, PAGE_OFFSET, 0, low_end * PS),
        (
            1,
            l.high_off,
            PAGE_OFFSET + high_start * PS,
            high_start * PS,
            (high_end - high_start) * PS,
        ),
    ];
    for (i, (t, off, va, pa, size)) in phdrs.into_iter().enumerate() {
        let b = 64 + 56 * i;
        h[b..b + 4].copy_from_slice(&t.to_le_bytes());
        h[b + 4..b + 8].copy_from_slice(&7u32.to_le_bytes());
        for (j, v) in [off, va, pa, size, size].into_iter().enumerate() {
            h[b + 8 + 8 * j..b + 16 + 8 * j].copy_from_slice(&v.to_le_bytes());
        }
    }
    h.extend_from_slice(notes);
    (h, total)
}

/// The generator's counts as `key=value` lines; checks that every page frame is in one class.
fn report(l: &Layout, c: &Counts) -> String {
    let (mm_pfn, high_start, high_end, low_end) = (l.mm_pfn, l.high_start, l.high_end, l.low_end);
    let ram = (low_end + high_end - high_start) as f64;
    let report = format!(
        "ram_pages={}\nmax_pfn={high_end}\nfree={}\nuser={}\ncache={}\ncache_private={}\n\
         kernel_kept={}\nkernel_zero={}\nreserved={}\nslab_pages={}\nthp_folios={}\n\
         cache_folios={}\nkept_percent={:.2}\nmem_map_file_offsets={}-{}\n",
        low_end + high_end - high_start,
        c.free,
        c.user,
        c.cache,
        c.cache_private,
        c.kernel_kept,
        c.kernel_zero,
        c.reserved,
        c.slab_pages,
        c.thp_folios,
        c.cache_folios,
        c.kernel_kept as f64 * 100.0 / ram,
        l.file_off(mm_pfn),
        l.file_off(high_end - 1) + PS,
    );
    assert_eq!(
        c.free + c.user + c.cache + c.cache_private + c.kernel_kept + c.kernel_zero,
        low_end + high_end - high_start,
        "every page frame in one class"
    );
    report
}

fn main() {
    let (path, gib, kpm) = args();
    let mut l = layout(gib);
    let (meta, info) = metadata(&l);
    let notes = SynthVmcore::new().prstatus(1).vmcoreinfo(&info).notes;
    let (h, total) = elf_header(&mut l, &notes);
    let (mm_pfn, high_end) = (l.mm_pfn, l.high_end);
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    let tmp = format!("{path}.tmp");
    let file = File::create(&tmp).expect("create");
    file.set_len(total).expect("set_len");
    file.write_all_at(&h, 0).expect("write header");
    let mut out = Out {
        file,
        at: 0,
        buf: Vec::new(),
    };

    let k = SynthKernel::new(Flavor::Linux6_1, 256);
    let bits = Bits {
        lru: k.flag("lru"),
        private: k.flag("private"),
        swapbacked: k.flag("swapbacked"),
        slab: k.flag("slab"),
        head: k.flag("head"),
        buddy: k.page_type("buddy"),
    };
    let mut counts = Counts::default();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut data = vec![0u8; PS as usize];
    for s in 0..l.sections {
        if !l.present[s as usize] {
            continue;
        }
        let first = s * SECTION_PAGES;
        let mut sec = Section {
            first,
            sp: vec![0; (SECTION_PAGES * sp::SIZE) as usize],
            bits: &bits,
            counts: &mut counts,
            rng: &mut rng,
            kernel: Vec::new(),
        };
        let reserved =
            |p: u64| meta.contains_key(&p) || p == 0 || IMAGE.contains(&p) || p >= mm_pfn;
        sec.units(reserved, kpm);
        let kernel = std::mem::take(&mut sec.kernel);
        let mm = sec.sp;
        // Kernel pages' contents: metadata, mem_map itself, or generated.
        for p in kernel {
            let zero = if let Some(m) = meta.get(&p) {
                data.copy_from_slice(m);
                m.iter().all(|b| *b == 0)
            } else if p == 0 {
                true
            } else if p >= mm_pfn {
                continue; // written below, never zero (every struct page has a field set)
            } else {
                kernel_page(p, &mut data);
                false
            };
            if zero {
                counts.kernel_zero += 1;
            } else {
                counts.kernel_kept += 1;
                out.put(l.file_off(p), &data);
            }
        }
        out.flush();
        let at = l.section_mm_pa(s) / PS;
        for (i, chunk) in mm.chunks_exact(PS as usize).enumerate() {
            assert!(chunk.iter().any(|b| *b != 0), "an all-zero mem_map page");
            out.put(l.file_off(at + i as u64), chunk);
        }
        // mem_map pages are counted as kept when their own section is generated.
        out.flush();
    }
    // mem_map pages were pushed as kernel pages and skipped above: count them here.
    counts.kernel_kept += high_end - mm_pfn;
    out.flush();
    std::fs::rename(&tmp, &path).expect("rename");
    let report = report(&l, &counts);
    let mut f = File::create(format!("{path}.counts")).expect("counts");
    f.write_all(report.as_bytes()).expect("write counts");
    print!("{report}");
}
