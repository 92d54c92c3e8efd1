//! Reading the crashed kernel's memory: ELF vmcores (/proc/vmcore) today; kcore and
//! kdump-compressed files as inputs come with `--mem-usage` and re-filtering.

pub mod bytes;
pub mod elf;
pub mod kdump;
pub mod memory;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernel::vmcoreinfo::VmcoreInfo;
use elf::{ElfCore, NT_PRSTATUS};
use memory::ElfMemory;

/// Physical memory read a page at a time, from whatever holds it (an ELF vmcore, a
/// kdump-compressed file).
pub trait PhysPages {
    fn page_size(&self) -> usize;
    /// The page's bytes; an error when the input does not have them.
    fn read_page(&mut self, pfn: u64) -> Result<&[u8]>;
    /// `len` bytes at `pa` without copying, when the input can hand them out in one piece.
    fn span(&mut self, _pa: u64, _len: usize) -> Option<&[u8]> {
        None
    }
}

impl PhysPages for ElfMemory {
    fn page_size(&self) -> usize {
        ElfMemory::page_size(self)
    }
    fn read_page(&mut self, pfn: u64) -> Result<&[u8]> {
        ElfMemory::read_page(self, pfn)
    }
    fn span(&mut self, pa: u64, len: usize) -> Option<&[u8]> {
        ElfMemory::span(self, pa, len)
    }
}

/// An opened ELF vmcore: its layout, its notes and its memory.
pub struct Vmcore {
    pub path: PathBuf,
    pub elf: ElfCore,
    pub info: VmcoreInfo,
    /// Offset and size of the VMCOREINFO note's descriptor inside `elf.notes`.
    pub vmcoreinfo_at: (usize, usize),
    /// Number of CORE/NT_PRSTATUS notes: one per CPU that was online.
    pub nr_cpus: u32,
    pub page_size: usize,
    pub memory: ElfMemory,
}

impl Vmcore {
    pub fn open(path: &Path, use_mmap: bool) -> Result<Vmcore> {
        let shown = path.display();
        let file = File::open(path).map_err(|e| Error::io(e, format!("cannot open {shown}")))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::bad_input(format!("{shown} is a directory")));
        }
        let elf = ElfCore::parse(&file).map_err(|e| e.context(&shown))?;
        let mut nr_cpus = 0u32;
        let mut vmcoreinfo = None;
        let mut notes = elf.notes();
        for note in &mut notes {
            match (note.name, note.n_type) {
                (b"CORE", NT_PRSTATUS) => nr_cpus += 1,
                (b"VMCOREINFO", _) => vmcoreinfo = Some((note.desc_offset, note.desc.len())),
                _ => {}
            }
        }
        let malformed = notes.malformed;
        let Some(vmcoreinfo_at) = vmcoreinfo else {
            let why = if malformed {
                " (the notes are malformed)"
            } else {
                ""
            };
            return Err(Error::bad_input(format!(
                "{shown}: no VMCOREINFO note{why}; vmsift needs the kernel's VMCOREINFO to know its page size and layout"
            )));
        };
        // A dump of no memory could not even be read back (it has no bitmap block).
        if elf.loads.iter().all(|l| l.mem_size == 0) {
            return Err(Error::bad_input(format!(
                "{shown}: its PT_LOADs describe no memory"
            )));
        }
        // No machine has 2^52 bytes of physical address space in use (x86_64's and
        // arm64's limit); a PT_LOAD reaching beyond is corrupt, and would ask for bitmaps
        // of hundreds of GiB.
        if let Some(l) = elf.loads.iter().find(|l| l.phys_end() > 1 << 52) {
            return Err(Error::bad_input(format!(
                "{shown}: a PT_LOAD claims memory up to {:#x}, beyond any machine's physical address space",
                l.phys_end()
            )));
        }
        let (at, len) = vmcoreinfo_at;
        let info = VmcoreInfo::parse(&elf.notes[at..at + len]);
        let page_size = info.page_size().map_err(|e| e.context(&shown))?;
        let memory = ElfMemory::new(file, &elf.loads, page_size, use_mmap);
        Ok(Vmcore {
            path: path.to_path_buf(),
            elf,
            info,
            vmcoreinfo_at,
            nr_cpus,
            page_size,
            memory,
        })
    }

    /// One past the highest pfn any PT_LOAD describes.
    pub fn max_mapnr(&self) -> u64 {
        let ps = self.page_size as u64;
        self.elf
            .loads
            .iter()
            .map(|l| l.phys_end().div_ceil(ps))
            .max()
            .unwrap_or(0)
    }
}
