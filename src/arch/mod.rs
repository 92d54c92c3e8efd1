//! The architecture layer: everything that differs between the machines vmsift reads.
//! The machine is chosen once, from the ELF `e_machine` (or the `machine` field of a
//! dump's utsname) as [`Machine`]; with VMCOREINFO it gives an [`Arch`], the crashed
//! kernel's virtual → physical translation by page-table walk. Both answer the other
//! machine-dependent questions: the kernel-image mapping that needs no table, the
//! sparsemem geometry of kernels that do not export it, and what the kdump header says
//! (`phys_base`, the utsname machine). No module outside this one names an architecture;
//! byte order is the input's [`Endian`], read through `input::bytes`.

pub mod arm64;
pub mod x86_64;

use crate::input::PhysPages;
use crate::input::bytes::Endian;
use crate::input::elf::Load;
use crate::kernel::vmcoreinfo::VmcoreInfo;

/// One translated mapping: `len` bytes from `va` (aligned to the mapping size) are at `pa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// First virtual address of the page or block.
    pub va: u64,
    /// Its physical address.
    pub pa: u64,
    /// Its size in bytes.
    pub len: u64,
}

/// A machine whose kernels vmsift can read beyond their physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// x86_64 (EM_X86_64).
    X86_64,
    /// arm64 (EM_AARCH64).
    Arm64,
}

impl Machine {
    /// The machine of an ELF `e_machine`.
    pub fn from_e_machine(e_machine: u16) -> Option<Machine> {
        match e_machine {
            x86_64::EM_X86_64 => Some(Machine::X86_64),
            arm64::EM_AARCH64 => Some(Machine::Arm64),
            _ => None,
        }
    }

    /// The machine of a utsname `machine` field (`uname -m`, NUL-padded), as a
    /// kdump-compressed dump's header carries it.
    pub fn from_uts_machine(field: &[u8]) -> Option<Machine> {
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        match &field[..end] {
            b"x86_64" => Some(Machine::X86_64),
            b"aarch64" | b"arm64" => Some(Machine::Arm64),
            _ => None,
        }
    }

    /// Its ELF `e_machine`.
    pub fn e_machine(self) -> u16 {
        match self {
            Machine::X86_64 => x86_64::EM_X86_64,
            Machine::Arm64 => arm64::EM_AARCH64,
        }
    }

    /// Translation of statically mapped kernel addresses without page tables: x86_64's
    /// kernel-text map, arm64's kernel image and linear map.
    pub fn kernel_static_to_phys(self, info: &VmcoreInfo, va: u64) -> Option<u64> {
        match self {
            Machine::X86_64 => x86_64::kernel_text_to_phys(info, va),
            Machine::Arm64 => arm64::kernel_static_to_phys(info, va),
        }
    }

    /// The kdump header's `phys_base`: x86_64's `NUMBER(phys_base)`, arm64's
    /// `NUMBER(PHYS_OFFSET)` (as makedumpfile writes them); 0 when VMCOREINFO lacks it.
    pub fn header_phys_base(self, info: &VmcoreInfo) -> u64 {
        let key = match self {
            Machine::X86_64 => "phys_base",
            Machine::Arm64 => "PHYS_OFFSET",
        };
        info.number(key).unwrap_or(0) as u64
    }

    /// `SECTION_SIZE_BITS`, from VMCOREINFO or this machine's value for kernels that do
    /// not export it.
    pub fn section_size_bits(self, info: &VmcoreInfo) -> i64 {
        match self {
            Machine::X86_64 => info
                .number("SECTION_SIZE_BITS")
                .unwrap_or(x86_64::SECTION_SIZE_BITS),
            Machine::Arm64 => arm64::section_size_bits(info),
        }
    }

    /// `MAX_PHYSMEM_BITS`, from VMCOREINFO or this machine's value for kernels that do
    /// not export it.
    pub fn max_physmem_bits(self, info: &VmcoreInfo, page_size: u64) -> i64 {
        match self {
            Machine::X86_64 => info
                .number("MAX_PHYSMEM_BITS")
                .unwrap_or_else(|| x86_64::max_physmem_bits(info)),
            Machine::Arm64 => arm64::max_physmem_bits(info, page_size),
        }
    }
}

/// `uname -m` for an ELF e_machine: the utsname machine a dump of it says when the
/// kernel's own utsname cannot be read.
pub fn machine_name(e_machine: u16) -> Option<&'static str> {
    Some(match e_machine {
        3 => "i686",
        x86_64::EM_X86_64 => "x86_64",
        arm64::EM_AARCH64 => "aarch64",
        21 => "ppc64le",
        22 => "s390x",
        243 => "riscv64",
        _ => return None,
    })
}

/// Which of a /proc/kcore's PT_LOADs map the kernel image (which repeats part of the
/// linear map): on x86_64 those in the kernel-text map; on arm64 those whose virtual to
/// physical offset is not that of the largest segment (the linear map's).
pub fn kernel_image_segments(e_machine: u16, loads: &[Load]) -> Vec<bool> {
    match Machine::from_e_machine(e_machine) {
        Some(Machine::X86_64) => loads
            .iter()
            .map(|l| x86_64::is_kernel_text(l.virt_start))
            .collect(),
        Some(Machine::Arm64) => {
            let delta = |l: &Load| l.virt_start.wrapping_sub(l.phys_start);
            let linear = loads
                .iter()
                .filter(|l| l.phys_end() <= 1 << 52)
                .max_by_key(|l| l.mem_size)
                .map(delta);
            loads.iter().map(|l| Some(delta(l)) != linear).collect()
        }
        None => vec![false; loads.len()],
    }
}

/// The crashed kernel's address translation, chosen once from its machine and VMCOREINFO.
#[derive(Debug, Clone)]
pub enum Arch {
    /// x86_64's 4- or 5-level walk.
    X86_64(x86_64::X86_64),
    /// arm64's walk for its granule and address sizes.
    Arm64(arm64::Arm64),
}

impl Arch {
    /// The translation of a kernel of `machine` (an ELF e_machine) with this VMCOREINFO
    /// and page size; `Err` says why there is none.
    pub fn new(
        machine: u16,
        endian: Endian,
        info: &VmcoreInfo,
        page_size: u64,
    ) -> Result<Arch, String> {
        match Machine::from_e_machine(machine) {
            Some(Machine::X86_64) => x86_64::X86_64::from_vmcoreinfo(info)
                .map(Arch::X86_64)
                .ok_or_else(|| {
                    "VMCOREINFO lacks SYMBOL(init_top_pgt) or NUMBER(phys_base) for address translation"
                        .to_string()
                }),
            Some(Machine::Arm64) => {
                arm64::Arm64::from_vmcoreinfo(info, page_size, endian).map(Arch::Arm64)
            }
            None => Err(match machine_name(machine) {
                Some(m) => format!("reading kernel memory of {m} is not implemented"),
                None => format!("reading kernel memory of machine {machine} is not implemented"),
            }),
        }
    }

    /// Translates `va`, returning the whole page or block that holds it.
    pub fn translate(&self, mem: &mut dyn PhysPages, va: u64) -> Option<Mapping> {
        match self {
            Arch::X86_64(a) => a.translate(mem, va),
            Arch::Arm64(a) => a.translate(mem, va),
        }
    }
}

/// Reads the crashed kernel's virtual memory, remembering the last mapping so that reading
/// a large contiguous area (mem_map) walks the tables once per mapped page, not per read.
pub struct KernelMemory {
    /// The physical memory the tables and data are read from.
    pub mem: Box<dyn PhysPages>,
    arch: Arch,
    endian: Endian,
    last: Option<Mapping>,
}

impl KernelMemory {
    /// Kernel memory read through `arch`'s translation, its words in `endian` order.
    pub fn new(mem: Box<dyn PhysPages>, arch: Arch, endian: Endian) -> KernelMemory {
        KernelMemory {
            mem,
            arch,
            endian,
            last: None,
        }
    }

    /// The byte order of the kernel's words.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The physical address of `va`, if it is mapped.
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

    /// The kernel's 64-bit word at `va`.
    pub fn read_u64(&mut self, va: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        self.endian.u64(&b, 0)
    }

    /// The kernel's 32-bit word at `va`.
    pub fn read_u32(&mut self, va: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(va, &mut b)?;
        self.endian.u32(&b, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(virt_start: u64, phys_start: u64, mem_size: u64) -> Load {
        Load {
            phys_start,
            virt_start,
            file_offset: 0,
            file_size: mem_size,
            mem_size,
        }
    }

    #[test]
    fn the_machine_from_an_elf_or_a_dump_header() {
        assert_eq!(Machine::from_e_machine(62), Some(Machine::X86_64));
        assert_eq!(Machine::from_e_machine(183), Some(Machine::Arm64));
        assert_eq!(Machine::from_e_machine(3), None);
        let mut field = [0u8; 65];
        field[..7].copy_from_slice(b"aarch64");
        assert_eq!(Machine::from_uts_machine(&field), Some(Machine::Arm64));
        field[..7].copy_from_slice(b"x86_64\0");
        assert_eq!(Machine::from_uts_machine(&field), Some(Machine::X86_64));
        assert_eq!(Machine::from_uts_machine(b"x86_64x"), None);
        for m in [Machine::X86_64, Machine::Arm64] {
            assert_eq!(Machine::from_e_machine(m.e_machine()), Some(m));
        }
    }

    #[test]
    fn the_kernel_image_segments_of_a_kcore() {
        // x86_64: RAM in the direct map, text in the kernel-text map, vmalloc without a
        // physical address.
        let x86 = [
            load(0xffff_8880_0010_0000, 0x10_0000, 0x3ff0_0000),
            load(0xffff_ffff_8100_0000, 0x100_0000, 0x200_0000),
        ];
        assert_eq!(kernel_image_segments(62, &x86), [false, true]);
        // arm64 (5.4+): RAM in the lower half's linear map, the image above it; before 5.4
        // the image was below. Either way its offset is not the linear map's.
        let arm64 = [
            load(0xffff_8000_0800_0000, 0x4020_0000, 0x200_0000),
            load(0xffff_0000_0000_0000, 0x4000_0000, 0x2000_0000),
            load(0xffff_0000_2000_0000, 0x6000_0000, 0x1000_0000),
        ];
        assert_eq!(kernel_image_segments(183, &arm64), [true, false, false]);
        let old = [
            load(0xffff_8000_0000_0000, 0x4000_0000, 0x4000_0000),
            load(0xffff_0000_0820_0000, 0x4020_0000, 0x200_0000),
        ];
        assert_eq!(kernel_image_segments(183, &old), [false, true]);
        assert_eq!(kernel_image_segments(3, &old), [false, false]);
    }
}
