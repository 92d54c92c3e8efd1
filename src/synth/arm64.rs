//! Synthetic arm64 kernels for tests: the struct pages of a synthetic x86_64 kernel
//! ([`SynthKernel`], whose flavors say how each page class is encoded) moved into the
//! physical memory of an arm64 kernel with 4, 16 or 64 KiB pages, with page tables built
//! as the arm64 kernel builds them: `swapper_pg_dir` in the kernel image, indexed with the
//! configured `VA_BITS` (a top level folded at run time when fewer bits are in use), the
//! linear map, the kernel image at its KASLR address, and vmemmap. Descriptors carry what
//! the kernel puts in them: the access flag, shareability in bits 9:8 (which hold output
//! address bits 51:50 under LPA2), execute-never bits.
//!
//! Memory is kept as a map of the pages that are not zero, and the vmcore is written as a
//! sparse file, so a kernel of 64 KiB pages costs little.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::arch::arm64::EM_AARCH64;
use crate::input::PhysPages;
use crate::input::bytes::Endian;
use crate::kernel::vmcoreinfo::VmcoreInfo;
use crate::synth::{SynthKernel, VMEMMAP, kernel_memory, note, sp};

/// Descriptor bits the kernel sets besides the address: valid, table/page, inner
/// shareable (bits 9:8, not with LPA2), access flag.
const VALID_TABLE: u64 = 0b11;
const SHARED: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
/// PXN and UXN: kernel data is not executable.
const XN: u64 = 0b11 << 53;

/// The shape of a synthetic arm64 kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arm64Config {
    /// 4096, 16384 or 65536.
    pub page_size: u64,
    /// `CONFIG_ARM64_VA_BITS`.
    pub va_bits: u32,
    /// The size in use (`64 - TCR_EL1_T1SZ`).
    pub va_bits_actual: u32,
    /// `MAX_PHYSMEM_BITS`.
    pub phys_bits: u32,
    /// Where RAM starts (the QEMU virt machine's is 1 GiB).
    pub ram_start: u64,
    /// The KASLR offset of the kernel image.
    pub kaslr: u64,
}

impl Arm64Config {
    /// A config with RAM at 1 GiB and a KASLR offset that fits the address size.
    pub fn new(page_size: u64, va_bits: u32, va_bits_actual: u32, phys_bits: u32) -> Self {
        let room = (1u64 << (va_bits_actual.min(48) - 4)) - 1;
        Arm64Config {
            page_size,
            va_bits,
            va_bits_actual,
            phys_bits,
            ram_start: 0x4000_0000,
            kaslr: 0x2a_bc00_0000 & room & !(page_size.max(0x20_0000) - 1),
        }
    }

    fn page_shift(&self) -> u32 {
        self.page_size.trailing_zeros()
    }

    /// `PAGE_OFFSET`: the start of the linear map for the configured size.
    pub fn page_offset(&self) -> u64 {
        u64::MAX << self.va_bits
    }

    /// `PHYS_OFFSET` (`memstart_addr`): negative when fewer bits are in use than
    /// configured, so that linear addresses of the size in use land on RAM.
    pub fn phys_offset(&self) -> u64 {
        let in_use = u64::MAX << self.va_bits_actual;
        self.ram_start
            .wrapping_sub(in_use.wrapping_sub(self.page_offset()))
    }

    /// The linear-map address of physical `pa`.
    pub fn linear(&self, pa: u64) -> u64 {
        pa.wrapping_sub(self.phys_offset())
            .wrapping_add(self.page_offset())
    }

    /// The kernel image's virtual base: the end of the linear map of the smallest size
    /// the kernel supports, past the modules area, plus the KASLR offset.
    pub fn image_va(&self) -> u64 {
        let min = self.va_bits_actual.min(48);
        (u64::MAX << (min - 1)) + 0x800_0000 + self.kaslr
    }

    /// `VMEMMAP_START`: struct pages of the whole linear map fit below 0.
    pub fn vmemmap_start(&self) -> u64 {
        u64::MAX << (self.va_bits - (self.page_shift() - sp::SIZE.trailing_zeros()))
    }

    /// The virtual address of pfn's struct page (`vmemmap` is `VMEMMAP_START` less the
    /// struct pages of the pfns below `memstart_addr`, shifted as a signed value).
    pub fn page_va(&self, pfn: u64) -> u64 {
        let memstart_pfn = ((self.phys_offset() as i64) >> self.page_shift()) as u64;
        self.vmemmap_start()
            .wrapping_add(pfn.wrapping_sub(memstart_pfn).wrapping_mul(sp::SIZE))
    }

    /// Whether descriptors use the FEAT_LPA2 layout (4 and 16 KiB pages with 52 bits in
    /// use).
    pub fn lpa2(&self) -> bool {
        self.page_size != 65536 && self.va_bits_actual == 52
    }

    /// A descriptor pointing at `pa` with `attrs`.
    pub fn descriptor(&self, pa: u64, attrs: u64) -> u64 {
        if self.lpa2() {
            (pa & ((1 << 50) - 1)) | ((pa >> 50) & 3) << 8 | attrs
        } else if self.page_size == 65536 && self.phys_bits == 52 {
            (pa & ((1 << 48) - 1)) | ((pa >> 48) & 0xf) << 12 | attrs | SHARED
        } else {
            pa | attrs | SHARED
        }
    }
}

/// Physical memory of the pages that are not all zero, by pfn.
#[derive(Debug, Clone)]
pub struct SparsePages {
    /// Page size in bytes.
    pub page_size: usize,
    /// The pages held.
    pub pages: BTreeMap<u64, Vec<u8>>,
    zero: Vec<u8>,
}

impl SparsePages {
    /// Empty memory of `page_size` pages.
    pub fn new(page_size: usize) -> SparsePages {
        SparsePages {
            page_size,
            pages: BTreeMap::new(),
            zero: vec![0; page_size],
        }
    }

    /// Writes the 64-bit little-endian word `v` at `pa`.
    pub fn put_u64(&mut self, pa: u64, v: u64) {
        self.put(pa, &v.to_le_bytes());
    }

    /// Writes `bytes` at `pa` (within one page).
    pub fn put(&mut self, pa: u64, bytes: &[u8]) {
        let ps = self.page_size as u64;
        let page = self
            .pages
            .entry(pa / ps)
            .or_insert_with(|| vec![0; ps as usize]);
        let at = (pa % ps) as usize;
        page[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// The 64-bit little-endian word at `pa`.
    pub fn get_u64(&self, pa: u64) -> u64 {
        let ps = self.page_size as u64;
        let at = (pa % ps) as usize;
        self.pages.get(&(pa / ps)).map_or(0, |p| {
            u64::from_le_bytes(p[at..at + 8].try_into().unwrap_or([0; 8]))
        })
    }
}

impl PhysPages for SparsePages {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn read_page(&mut self, pfn: u64) -> crate::Result<&[u8]> {
        Ok(self.pages.get(&pfn).unwrap_or(&self.zero))
    }
}

/// Page tables under construction, as the kernel builds them from `swapper_pg_dir`.
#[derive(Debug, Clone)]
pub struct Tables {
    /// The kernel's shape.
    pub cfg: Arm64Config,
    /// Physical address of `swapper_pg_dir`.
    pub root: u64,
    /// The next free physical page for a table.
    pub next: u64,
}

impl Tables {
    /// Levels of the configured size, and how many of them are folded at run time.
    fn levels(&self) -> (u32, u32) {
        let s = self.cfg.page_shift();
        let of = |bits: u32| (bits - 4) / (s - 3);
        let configured = of(self.cfg.va_bits);
        (configured, configured - of(self.cfg.va_bits_actual))
    }

    /// Maps `len` bytes (`pa` and `va` aligned to it) at `va`: a page, or a block of the
    /// size of a level's entry.
    pub fn map(&mut self, mem: &mut SparsePages, va: u64, pa: u64, len: u64) {
        let s = self.cfg.page_shift();
        let ps = self.cfg.page_size;
        let (levels, folded) = self.levels();
        let mut table = self.root;
        for level in 0..levels {
            let shift = s + (s - 3) * (levels - 1 - level);
            if level < folded {
                // pgd_to_folded_p4d(): the next level is the page of this table.
                table &= !(ps - 1);
                continue;
            }
            let bits = if level == 0 {
                self.cfg.va_bits - shift
            } else {
                s - 3
            };
            let slot = table + ((va >> shift) & ((1 << bits) - 1)) * 8;
            if 1u64 << shift == len {
                let kind = if level == levels - 1 { VALID_TABLE } else { 1 };
                mem.put_u64(slot, self.cfg.descriptor(pa, kind | AF | XN));
                return;
            }
            let e = mem.get_u64(slot);
            if e & 1 == 0 {
                let next = self.next;
                self.next += ps;
                mem.put_u64(slot, self.cfg.descriptor(next, VALID_TABLE));
                table = next;
            } else {
                table = self.decode(e);
            }
        }
        panic!("no level maps {len:#x} bytes");
    }

    /// The table address in descriptor `e` (as `descriptor` encoded it).
    fn decode(&self, e: u64) -> u64 {
        let low = e & ((1 << 48) - 1) & !(self.cfg.page_size - 1);
        if self.cfg.lpa2() {
            (e & ((1 << 50) - 1) & !(self.cfg.page_size - 1)) | ((e >> 8) & 3) << 50
        } else if self.cfg.page_size == 65536 && self.cfg.phys_bits == 52 {
            low | ((e >> 12) & 0xf) << 48
        } else {
            low
        }
    }
}

/// A synthetic arm64 kernel: RAM of `frames` pages from `cfg.ram_start`.
pub struct Arm64Kernel {
    /// Its shape.
    pub cfg: Arm64Config,
    /// Page frames of RAM.
    pub frames: u64,
    /// Its physical memory.
    pub mem: SparsePages,
    /// The kernel image: physical start and length.
    pub image: (u64, u64),
    swapper: u64,
    uts: u64,
    roots: u64,
    /// VMCOREINFO lines of the page-class encoding (those of the x86_64 kernel moved in).
    layout_info: String,
}

/// VMCOREINFO keys that belong to the machine or the memory layout, not to the page-class
/// encoding: an x86_64 synthetic kernel's are left out when its struct pages move.
const MACHINE_KEYS: &[&str] = &[
    "PAGESIZE",
    "SYMBOL(init_top_pgt)",
    "SYMBOL(init_level4_pgt)",
    "NUMBER(phys_base)",
    "NUMBER(pgtable_l5_enabled)",
    "NUMBER(sme_mask)",
    "SYMBOL(mem_section)",
    "LENGTH(mem_section)",
    "SIZE(mem_section)",
    "NUMBER(SECTION_SIZE_BITS)",
    "NUMBER(MAX_PHYSMEM_BITS)",
    "KERNELOFFSET",
];

impl Arm64Kernel {
    /// The struct pages of `k`'s first `frames` page frames (as `k`'s own page tables
    /// show them), in an arm64 kernel of shape `cfg`: pfn i of `k` is the i-th page frame
    /// of RAM here, compound-head pointers moved to this kernel's vmemmap.
    pub fn from_synth(k: &SynthKernel, cfg: Arm64Config, frames: u64) -> Arm64Kernel {
        let ps = cfg.page_size;
        let base_pfn = cfg.ram_start / ps;
        let mut a = Arm64Kernel {
            cfg,
            frames,
            mem: SparsePages::new(ps as usize),
            // The image at 2 MiB into RAM: swapper_pg_dir, then init_uts_ns.
            image: (cfg.ram_start + 0x20_0000.max(ps), 2 * ps),
            swapper: 0,
            uts: 0,
            roots: 0,
            layout_info: String::new(),
        };
        a.swapper = a.image.0;
        a.uts = a.image.0 + ps;
        let mut t = Tables {
            cfg,
            root: a.swapper,
            next: a.image.0 + a.image.1,
        };
        let mut map = |mem: &mut SparsePages, va: u64, pa: u64| t.map(mem, va, pa, ps);
        for pa in (a.image.0..a.image.0 + a.image.1).step_by(ps as usize) {
            map(&mut a.mem, cfg.image_va() + (pa - a.image.0), pa);
        }
        // The linear map in blocks of the level above pages where they fit (the kernel
        // maps RAM with blocks), pages for the rest.
        let block = ps << (cfg.page_shift() - 3);
        let end = cfg.ram_start + frames * ps;
        let mut pa = cfg.ram_start;
        while pa < end {
            let len = if pa.is_multiple_of(block) && pa + block <= end {
                block
            } else {
                ps
            };
            t.map(&mut a.mem, cfg.linear(pa), pa, len);
            pa += len;
        }
        // mem_section: roots, one page of sections, then mem_map in pages of vmemmap.
        let mut next = t.next.max(a.image.0 + a.image.1);
        a.roots = next;
        let sections = next + ps;
        let mem_map = next + 2 * ps;
        // One page more than the struct pages need, for a mem_map not starting a page.
        let mem_map_pages = (frames * sp::SIZE).div_ceil(ps) + 1;
        next = mem_map + mem_map_pages * ps;
        t.next = next;
        let first_va = cfg.page_va(base_pfn) & !(ps - 1);
        for i in 0..mem_map_pages {
            t.map(&mut a.mem, first_va + i * ps, mem_map + i * ps, ps);
        }
        assert!(
            (t.next - cfg.ram_start) / ps < 1024,
            "tables and mem_map reach the test pages"
        );
        a.place_sections(sections, base_pfn);
        a.move_struct_pages(k, mem_map + (cfg.page_va(base_pfn) - first_va));
        a.write_uts();
        a.layout_info = k
            .vmcoreinfo()
            .lines()
            .filter(|l| {
                !MACHINE_KEYS
                    .iter()
                    .any(|key| l.starts_with(&format!("{key}=")))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        a
    }

    /// Section roots and the one page of sections that holds RAM's.
    fn place_sections(&mut self, sections: u64, base_pfn: u64) {
        let per_root = self.cfg.page_size / 16;
        let section = self.cfg.ram_start >> self.section_bits();
        let root = section / per_root;
        self.mem
            .put_u64(self.roots + root * 8, self.cfg.linear(sections));
        let pfns = 1u64 << (self.section_bits() - self.cfg.page_shift() as u64);
        let ram_end = base_pfn + self.frames;
        let mut nr = section;
        while nr * pfns < ram_end {
            // section_mem_map: the struct page of pfn 0 as if the section's were an array
            // from there, with "present" and "has mem_map".
            let map = self.cfg.page_va(0);
            self.mem.put_u64(sections + (nr % per_root) * 16, map | 0x3);
            nr += 1;
        }
    }

    /// Copies the struct pages of `k` (read through its page tables) to `at`.
    fn move_struct_pages(&mut self, k: &SynthKernel, at: u64) {
        let info = VmcoreInfo::parse(k.vmcoreinfo().as_bytes());
        let mut km = kernel_memory(k.mem.clone(), &info);
        let base_pfn = self.cfg.ram_start / self.cfg.page_size;
        let old = VMEMMAP..VMEMMAP + k.pages * sp::SIZE;
        let mut sp_bytes = vec![0u8; sp::SIZE as usize];
        for i in 0..self.frames.min(k.pages) {
            let ok = km.read(VMEMMAP + i * sp::SIZE, &mut sp_bytes);
            assert!(ok.is_some(), "struct page {i} unreadable");
            // A compound head pointer (bit 0 set) into the old vmemmap moves.
            let o = k.o.compound_head as usize;
            let w = u64::from_le_bytes(sp_bytes[o..o + 8].try_into().unwrap_or([0; 8]));
            if w & 1 == 1 && old.contains(&(w - 1)) {
                let head = (w - 1 - VMEMMAP) / sp::SIZE;
                let moved = self.cfg.page_va(base_pfn + head) | 1;
                sp_bytes[o..o + 8].copy_from_slice(&moved.to_le_bytes());
            }
            self.mem.put(at + i * sp::SIZE, &sp_bytes);
        }
    }

    /// `init_uts_ns` (5.11+: the name first) in the image.
    fn write_uts(&mut self) {
        for (i, f) in [
            "Linux",
            "synthetic",
            "6.12.0-synthetic",
            "#1 SMP",
            "aarch64",
            "(none)",
        ]
        .iter()
        .enumerate()
        {
            self.mem.put(self.uts + i as u64 * 65, f.as_bytes());
        }
    }

    fn section_bits(&self) -> u64 {
        if self.cfg.page_size == 65536 { 29 } else { 27 }
    }

    /// The pfn of RAM's first page frame.
    pub fn base_pfn(&self) -> u64 {
        self.cfg.ram_start / self.cfg.page_size
    }

    /// Its VMCOREINFO: the arm64 keys, then those of the page-class encoding.
    pub fn vmcoreinfo(&self) -> String {
        let c = &self.cfg;
        let image_va = c.image_va();
        let voffset = image_va.wrapping_sub(self.image.0);
        let nr_roots = (1u64 << (c.phys_bits as u64 - self.section_bits())) / (c.page_size / 16);
        format!(
            "OSRELEASE=6.12.0-synthetic\nPAGESIZE={}\nSYMBOL(init_uts_ns)={:x}\n\
             SYMBOL(swapper_pg_dir)={:x}\nSYMBOL(mem_section)={:x}\nLENGTH(mem_section)={nr_roots}\n\
             SIZE(mem_section)=16\nNUMBER(SECTION_SIZE_BITS)={}\nNUMBER(MAX_PHYSMEM_BITS)={}\n\
             NUMBER(VA_BITS)={}\nNUMBER(kimage_voffset)={voffset:#x}\nNUMBER(PHYS_OFFSET)={:#x}\n\
             KERNELOFFSET={:x}\nNUMBER(KERNELPACMASK)=0x0\nNUMBER(TCR_EL1_T1SZ)={:#x}\n\
             NUMBER(VMEMMAP_START)={:#x}\n{}",
            c.page_size,
            image_va + c.page_size,
            image_va,
            c.linear(self.roots),
            self.section_bits(),
            c.phys_bits,
            c.va_bits,
            c.phys_offset(),
            c.kaslr,
            64 - c.va_bits_actual,
            c.vmemmap_start(),
            self.layout_info,
        )
    }

    /// Writes the ELF vmcore to `path` as /proc/vmcore shows it: a PT_LOAD for the
    /// kernel image (overlapping the linear map's), then one for RAM; a sparse file.
    pub fn write_vmcore(&self, path: &Path) -> std::io::Result<()> {
        let e = Endian::Little;
        let ps = self.cfg.page_size;
        let mut notes = note("CORE", 1, &[0u8; 392]);
        notes.extend(note("VMCOREINFO", 0, self.vmcoreinfo().as_bytes()));
        let ram = (self.cfg.ram_start, self.frames * ps);
        let loads = [
            (self.cfg.image_va(), self.image.0, self.image.1),
            (self.cfg.linear(ram.0), ram.0, ram.1),
        ];
        let mut head = vec![0u8; 64 + 56 * 3];
        head[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        e.put_u16(&mut head, 16, 4);
        e.put_u16(&mut head, 18, EM_AARCH64);
        e.put_u32(&mut head, 20, 1);
        e.put_u64(&mut head, 32, 64);
        e.put_u16(&mut head, 52, 64);
        e.put_u16(&mut head, 54, 56);
        e.put_u16(&mut head, 56, 3);
        let mut ph = |i: usize, t: u32, off: u64, va: u64, pa: u64, size: u64| {
            let b = 64 + 56 * i;
            e.put_u32(&mut head, b, t);
            e.put_u32(&mut head, b + 4, 7);
            e.put_u64(&mut head, b + 8, off);
            e.put_u64(&mut head, b + 16, va);
            e.put_u64(&mut head, b + 24, pa);
            e.put_u64(&mut head, b + 32, size);
            e.put_u64(&mut head, b + 40, size);
        };
        let notes_at = 64 + 56 * 3;
        ph(0, 4, notes_at, 0, 0, notes.len() as u64);
        let mut off = (notes_at + notes.len() as u64).div_ceil(ps) * ps;
        let file = File::create(path)?;
        for (i, &(va, pa, size)) in loads.iter().enumerate() {
            ph(i + 1, 1, off, va, pa, size);
            for (&pfn, page) in self.mem.pages.range(pa / ps..(pa + size) / ps) {
                file.write_all_at(page, off + pfn * ps - pa)?;
            }
            off += size;
        }
        file.write_all_at(&head, 0)?;
        file.write_all_at(&notes, notes_at)?;
        file.set_len(off)
    }
}

#[cfg(test)]
#[path = "arm64_tests.rs"]
mod tests;
