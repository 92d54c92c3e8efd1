//! Reading the crashed kernel's memory: ELF vmcores (/proc/vmcore), and for re-filtering and
//! `--dump-dmesg` on finished dumps, kdump-compressed files and flattened streams.

pub mod bytes;
pub mod elf;
pub mod flat;
pub mod kdump;
pub mod memory;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::arch::Machine;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::filter::{PfnRanges, Present};
use crate::format::record::Model;
use crate::kernel::vmcoreinfo::VmcoreInfo;
use elf::{Class, ElfCore, Load, NT_PRSTATUS, ReadAt};
use kdump::KdumpFile;
use memory::ElfMemory;

/// A kdump-compressed input, as a file or a flattened stream, shared by every reader.
pub type DumpInput = Arc<KdumpFile<Box<dyn ReadAt + Send + Sync>>>;

/// Where the pages come from.
pub enum Memory {
    /// An ELF vmcore's PT_LOADs.
    Elf(ElfMemory),
    /// A kdump-compressed dump (re-filtering): each reader decompresses into its buffer.
    Dump {
        /// The input, shared by every reader.
        file: DumpInput,
        /// This reader's page buffer.
        buf: Vec<u8>,
        /// This reader's window on the input's bitmaps.
        cursor: kdump::Cursor,
    },
}

impl Memory {
    /// Another reader of the same input (one per thread).
    pub fn duplicate(&self) -> Result<Memory> {
        Ok(match self {
            Memory::Elf(m) => Memory::Elf(m.duplicate()?),
            Memory::Dump { file, .. } => Memory::Dump {
                file: Arc::clone(file),
                buf: Vec::new(),
                cursor: kdump::Cursor::default(),
            },
        })
    }

    /// A problem worth one warning that reading ran into (an mmap that fell back to pread).
    pub fn take_warning(&mut self) -> Option<String> {
        match self {
            Memory::Elf(m) => m.mmap_failure.take(),
            Memory::Dump { .. } => None,
        }
    }
}

impl PhysPages for Memory {
    fn page_size(&self) -> usize {
        match self {
            Memory::Elf(m) => m.page_size(),
            Memory::Dump { file, .. } => file.header.block_size as usize,
        }
    }

    fn read_page(&mut self, pfn: u64) -> Result<&[u8]> {
        match self {
            Memory::Elf(m) => m.read_page(pfn),
            Memory::Dump { file, buf, cursor } => match file.read_page_with(cursor, pfn) {
                Ok(kdump::Page::Data(d)) => {
                    *buf = d;
                    Ok(buf)
                }
                // The input dump lost it (or it does not decode): lost in ours too.
                Ok(kdump::Page::Lost) => Err(Error::new(
                    ErrorKind::Io,
                    format!("pfn {pfn:#x} is lost in the input dump"),
                )),
                Err(e) => Err(Error::new(ErrorKind::Io, e.to_string())),
                // Only after the input's 2nd bitmap could not be read (see `Filter`).
                Ok(other) => Err(Error::new(
                    ErrorKind::Io,
                    format!("pfn {pfn:#x} is not in the input dump ({other:?})"),
                )),
            },
        }
    }

    fn span(&mut self, pa: u64, len: usize) -> Option<&[u8]> {
        match self {
            Memory::Elf(m) => m.span(pa, len),
            Memory::Dump { .. } => None,
        }
    }

    fn read_small(&mut self, pa: u64, buf: &mut [u8]) -> Option<()> {
        match self {
            Memory::Elf(m) => m.read_small(pa, buf),
            Memory::Dump { .. } => small_from_page(self, pa, buf),
        }
    }
}

/// What kind of file the input is, and what that changes.
pub enum Source {
    /// An ELF vmcore: every page of its PT_LOADs can be read.
    Elf,
    /// A kdump-compressed file (or flattened stream) and its dump level; only the pages
    /// it holds (its 2nd bitmap, read a cycle at a time) can be written again.
    Dump {
        /// The dump level the input was written with.
        level: u32,
        /// The input left out unused vmemmap (`-e`, its header's `DUMP_DH_EXCLUDED_VMEMMAP`):
        /// those pages stay out, so a dump written from it says so too.
        excluded_vmemmap: bool,
    },
}

/// Physical memory read a page at a time, from whatever holds it (an ELF vmcore, a
/// kdump-compressed file).
pub trait PhysPages {
    /// Bytes of a page.
    fn page_size(&self) -> usize;
    /// The page's bytes; an error when the input does not have them.
    fn read_page(&mut self, pfn: u64) -> Result<&[u8]>;
    /// `len` bytes at `pa` without copying, when the input can hand them out in one piece.
    fn span(&mut self, _pa: u64, _len: usize) -> Option<&[u8]> {
        None
    }
    /// A few bytes (a page-table entry) at `pa`, within one page; `None` if unreadable.
    /// Readers with an mmap window override this to leave the window where it is.
    fn read_small(&mut self, pa: u64, buf: &mut [u8]) -> Option<()> {
        small_from_page(self, pa, buf)
    }
}

/// `read_small` through `read_page`: the bytes copied out of the whole page.
pub fn small_from_page<P: PhysPages + ?Sized>(mem: &mut P, pa: u64, buf: &mut [u8]) -> Option<()> {
    let ps = mem.page_size() as u64;
    let at = (pa % ps) as usize;
    let page = mem.read_page(pa / ps).ok()?;
    buf.copy_from_slice(page.get(at..at.checked_add(buf.len())?)?);
    Some(())
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
    fn read_small(&mut self, pa: u64, buf: &mut [u8]) -> Option<()> {
        ElfMemory::read_small(self, pa, buf)
    }
}

/// An opened input: its layout (PT_LOADs, or the runs of a dump's 1st bitmap), its notes
/// and its memory.
pub struct Vmcore {
    /// The input's path, for messages.
    pub path: PathBuf,
    /// The ELF layout (for a dump: one PT_LOAD per run of its 1st bitmap) and the notes.
    pub elf: ElfCore,
    /// The parsed VMCOREINFO.
    pub info: VmcoreInfo,
    /// Offset and size of the VMCOREINFO note's descriptor inside `elf.notes`.
    pub vmcoreinfo_at: (usize, usize),
    /// Number of CORE/NT_PRSTATUS notes: one per CPU that was online.
    pub nr_cpus: u32,
    /// Bytes of a page (VMCOREINFO's PAGESIZE).
    pub page_size: usize,
    /// Where the pages come from.
    pub memory: Memory,
    /// What kind of file the input is.
    pub source: Source,
}

impl Vmcore {
    /// Opens an ELF vmcore, a kdump-compressed file or a flattened dump.
    pub fn open(path: &Path, use_mmap: bool) -> Result<Vmcore> {
        let shown = path.display();
        let file = File::open(path).map_err(|e| Error::io(e, format!("cannot open {shown}")))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::bad_input(format!("{shown} is a directory")));
        }
        let mut head = [0u8; 16];
        let n = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).unwrap_or(0);
        let head = &head[..n];
        if head.starts_with(crate::format::kdump::SIGNATURE) {
            return Self::from_dump(path, Box::new(file));
        }
        if head.starts_with(crate::format::flat::SIGNATURE) {
            let flat = flat::FlatFile::open(file).context(&shown)?;
            return Self::from_dump(path, Box::new(flat));
        }
        let elf = ElfCore::parse(&file).map_err(|e| e.context(&shown))?;
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
        Self::from_elf(path, file, elf, use_mmap)
    }

    /// An ELF input once its PT_LOADs are settled: notes, then memory.
    fn from_elf(path: &Path, file: File, elf: ElfCore, use_mmap: bool) -> Result<Vmcore> {
        let (info, vmcoreinfo_at, nr_cpus, page_size) = read_notes(&elf, path)?;
        // The kernel says how far physical memory can reach; a PT_LOAD beyond that is not
        // memory of this machine (and would size bitmaps and cycles for nothing).
        if let Some(bits) = info
            .number("MAX_PHYSMEM_BITS")
            .filter(|b| (32..52).contains(b))
            && let Some(l) = elf.loads.iter().find(|l| l.phys_end() > 1 << bits)
        {
            return Err(Error::bad_input(format!(
                "{}: a PT_LOAD claims memory up to {:#x}, beyond the kernel's MAX_PHYSMEM_BITS={bits}",
                path.display(),
                l.phys_end()
            )));
        }
        let memory = Memory::Elf(ElfMemory::new(file, &elf.loads, page_size, use_mmap));
        Ok(Vmcore {
            path: path.to_path_buf(),
            elf,
            info,
            vmcoreinfo_at,
            nr_cpus,
            page_size,
            memory,
            source: Source::Elf,
        })
    }

    /// The running kernel's /proc/kcore (`--mem-usage`): only the PT_LOADs with a physical
    /// address (RAM and kernel text; the others say -1), less `exclude` (the crashkernel
    /// reservation, which a dump would not contain). kcore cannot be mmapped. Also returns
    /// how many pages (of the kernel's page size) the kernel-text segment repeats
    /// (makedumpfile counts them twice).
    pub fn open_kcore(path: &Path, exclude: &[(u64, u64)]) -> Result<(Vmcore, u64)> {
        let shown = path.display();
        let file = File::open(path).map_err(|e| Error::io(e, format!("cannot open {shown}")))?;
        let mut elf = ElfCore::parse(&file).map_err(|e| e.context(&shown))?;
        let mut loads = Vec::new();
        // The kernel image is in kcore twice: in the direct map (KCORE_RAM) and as kernel
        // text, whose mapping no longer covers what was freed after boot (it reads as
        // zeros there). Read it through the direct map only.
        let image = crate::arch::kernel_image_segments(elf.machine, &elf.loads);
        let ram: Vec<&Load> = elf
            .loads
            .iter()
            .zip(&image)
            .filter(|(l, image)| !**image && l.phys_end() <= 1 << 52)
            .map(|(l, _)| l)
            .collect();
        let covered = |l: &Load| {
            ram.iter()
                .any(|r| r.phys_start <= l.phys_start && l.phys_end() <= r.phys_end())
        };
        // In bytes until the page size is known from VMCOREINFO.
        let mut repeated: u64 = 0;
        for (l, &image) in elf.loads.iter().zip(&image) {
            if l.phys_end() > 1 << 52 {
                continue;
            }
            if image && covered(l) {
                repeated = repeated.saturating_add(l.mem_size);
                continue;
            }
            // Cut the excluded physical ranges out of this segment.
            let mut pieces = vec![(l.phys_start, l.phys_end())];
            for &(xa, xb) in exclude {
                pieces = pieces
                    .into_iter()
                    .flat_map(|(a, b)| {
                        let mut out = Vec::new();
                        if xb <= a || xa >= b {
                            out.push((a, b));
                        } else {
                            if a < xa {
                                out.push((a, xa));
                            }
                            if xb < b {
                                out.push((xb, b));
                            }
                        }
                        out
                    })
                    .collect();
            }
            for (a, b) in pieces {
                let delta = a - l.phys_start;
                loads.push(Load {
                    phys_start: a,
                    virt_start: l.virt_start.wrapping_add(delta),
                    file_offset: l.file_offset + delta,
                    file_size: (b - a).min(l.file_size.saturating_sub(delta)),
                    mem_size: b - a,
                });
            }
        }
        elf.loads = loads;
        let vm = Self::from_elf(path, file, elf, false)?;
        let repeated = repeated.div_ceil(vm.page_size as u64);
        Ok((vm, repeated))
    }

    /// A kdump-compressed dump as input: its 1st bitmap's runs stand for PT_LOADs.
    fn from_dump(path: &Path, file: Box<dyn ReadAt + Send + Sync>) -> Result<Vmcore> {
        let shown = path.display();
        let dump = KdumpFile::open(file).context(&shown)?;
        if dump.header.split.is_some() {
            return Err(Error::unsupported(format!(
                "{shown} is one part of a split dump: join the parts with --reassemble first"
            )));
        }
        let ps = dump.header.block_size;
        let loads = dump
            .memory_runs()
            .context(&shown)?
            .into_iter()
            .map(|(a, b)| Load {
                phys_start: a * ps,
                virt_start: 0,
                file_offset: 0,
                file_size: (b - a) * ps,
                mem_size: (b - a) * ps,
            })
            .collect::<Vec<_>>();
        // As for an ELF vmcore without memory: nothing to read, and a dump of it would
        // have no bitmap block.
        if loads.is_empty() {
            return Err(Error::bad_input(format!(
                "{shown}: its 1st bitmap describes no memory"
            )));
        }
        let machine =
            Machine::from_uts_machine(&dump.header.utsname.fields[4]).map_or(0, Machine::e_machine);
        // The output follows the input's model (an i386 dump stays i386).
        let class = match dump.header.model {
            Model::Lp64 => Class::Elf64,
            Model::Ilp32Packed => Class::Elf32,
        };
        let elf = ElfCore {
            class,
            endian: dump.header.endian,
            machine,
            loads,
            notes: dump.notes().context(&shown)?,
        };
        let (info, vmcoreinfo_at, nr_cpus, page_size) = read_notes(&elf, path)?;
        if page_size as u64 != ps {
            return Err(Error::bad_input(format!(
                "{shown}: block size {ps} but VMCOREINFO says PAGESIZE={page_size}"
            )));
        }
        let source = Source::Dump {
            level: dump.header.dump_level as u32 & 31,
            excluded_vmemmap: dump.header.status & crate::format::kdump::STATUS_EXCLUDED_VMEMMAP
                != 0,
        };
        Ok(Vmcore {
            path: path.to_path_buf(),
            elf,
            info,
            vmcoreinfo_at,
            nr_cpus,
            page_size,
            memory: Memory::Dump {
                file: Arc::new(dump),
                buf: Vec::new(),
                cursor: kdump::Cursor::default(),
            },
            source,
        })
    }

    /// The pfns that are memory (1st bitmap) and those whose bytes the input has.
    pub fn ranges(&self) -> (PfnRanges, Present) {
        let (memory, file) = crate::filter::load_ranges(&self.elf.loads, self.page_size as u64);
        match &self.memory {
            Memory::Dump { file, .. } => (memory, Present::Dumped(Arc::clone(file))),
            Memory::Elf(_) => (memory, Present::Ranges(file)),
        }
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

/// VMCOREINFO, where it is in the notes, the CPU count and the page size.
fn read_notes(elf: &ElfCore, path: &Path) -> Result<(VmcoreInfo, (usize, usize), u32, usize)> {
    let shown = path.display();
    let mut nr_cpus = 0u32;
    let mut vmcoreinfo = None;
    let mut notes = elf.notes();
    // A malformed note ends the notes; what came before it is used.
    let mut malformed = false;
    loop {
        let note = match notes.next() {
            Ok(Some(note)) => note,
            Ok(None) => break,
            Err(_) => {
                malformed = true;
                break;
            }
        };
        match (note.name, note.n_type) {
            (b"CORE", NT_PRSTATUS) => nr_cpus += 1,
            (b"VMCOREINFO", _) => vmcoreinfo = Some((note.desc_offset, note.desc.len())),
            _ => {}
        }
    }
    let Some((at, len)) = vmcoreinfo else {
        let why = if malformed {
            " (the notes are malformed)"
        } else {
            ""
        };
        return Err(Error::bad_input(format!(
            "{shown}: no VMCOREINFO note{why}; vmsift needs the kernel's VMCOREINFO to know its page size and layout"
        )));
    };
    let info = VmcoreInfo::parse(&elf.notes[at..at + len]);
    let page_size = info.page_size().map_err(|e| e.context(&shown))?;
    Ok((info, (at, len), nr_cpus, page_size))
}

#[cfg(test)]
#[path = "kcore_tests.rs"]
mod kcore_tests;
