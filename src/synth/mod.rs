//! Synthetic ELF vmcores for tests, benches and fuzzing: the edge cases real vmcores cannot
//! show (partial pages, holes, odd notes, corruption). Real vmcores come from the QEMU
//! harness under `tests/harness/`.

pub mod arm64;
mod flavor;
mod kernel;
mod printk;
mod vmcoreinfo;

pub use flavor::{Flavor, Offsets, sp};
pub use kernel::{PAGE_OFFSET, START_KERNEL_MAP, SynthKernel, VMEMMAP};
pub use printk::LogRecord;

use crate::input::bytes::Endian;

/// `p_type` of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_type` of the notes segment.
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
    /// `p_paddr`.
    pub phys_start: u64,
    /// `p_vaddr` (the direct map's address of `phys_start`).
    pub virt_start: u64,
    /// The file bytes (p_filesz = len).
    pub data: Vec<u8>,
    /// p_memsz (≥ data.len()).
    pub mem_size: u64,
}

/// An x86_64 ELF64 little-endian core file under construction.
#[derive(Debug, Clone, Default)]
pub struct SynthVmcore {
    /// The PT_NOTE segment's bytes.
    pub notes: Vec<u8>,
    /// The PT_LOADs, in order.
    pub loads: Vec<SynthLoad>,
}

/// A minimal VMCOREINFO for a 4 KiB-page x86_64 kernel.
pub const MINIMAL_VMCOREINFO: &str =
    "OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\nNUMBER(phys_base)=0\nCRASHTIME=1700000000\n";

impl SynthVmcore {
    /// A core file with no notes and no segments.
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

    /// Adds a VMCOREINFO note with `text`.
    pub fn vmcoreinfo(mut self, text: &str) -> Self {
        self.notes.extend(note("VMCOREINFO", 0, text.as_bytes()));
        self
    }

    /// Adds a PT_LOAD of `data` at `phys_start`, `mem_size` bytes in memory (at least the
    /// data's).
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
    /// All zero bytes.
    Zero,
    /// Compressible: a repeating text with the seed in it.
    Text,
    /// Incompressible: xorshift noise.
    Random,
}

/// One page of `fill`, `page_size` bytes.
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
