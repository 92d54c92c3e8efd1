//! `-E`: an ELF64 core file of the kept memory, laid out as makedumpfile does: the ELF
//! header, the program headers (PT_NOTE first, then the PT_LOADs), the notes copied from the
//! input, then each segment's bytes packed back to back.
//!
//! Segments follow the input's PT_LOADs page by page: a run of at least
//! `EXCLUDED_RUN` excluded pages ends a segment (its p_memsz still covers the run, its
//! p_filesz stops at the last kept page); shorter runs are written with their real
//! contents. A PT_LOAD with no kept page stays as a segment without data (p_offset 0).
//! An incomplete file has bit 0 of e_flags set.

use crate::format::record::Model;
use crate::input::bytes::Endian;
use crate::input::elf::Load;

/// Runs of excluded pages shorter than this are kept inside a segment.
pub const EXCLUDED_RUN: u64 = 256;
/// e_flags bit makedumpfile sets on an incomplete ELF dump.
pub const FLAG_INCOMPLETE: u32 = 1;
/// The ELF magic, at the start of `e_ident`.
pub const ELFMAG: &[u8; 4] = b"\x7fELF";
/// Bytes of `e_ident`; its class, data encoding and version bytes follow the magic.
pub const EI_NIDENT: usize = 16;
/// Index of the class in `e_ident` (1: ELF32, 2: ELF64).
pub const EI_CLASS: usize = 4;
/// Index of the data encoding in `e_ident` (1: little-endian, 2: big-endian).
pub const EI_DATA: usize = 5;
/// Index of the version in `e_ident` (1).
pub const EI_VERSION: usize = 6;
/// `e_type` of a core file.
pub const ET_CORE: u16 = 4;
/// `e_phnum` saying the count is in section header 0's `sh_info`.
pub const PN_XNUM: u16 = 0xffff;
/// Program header type of a memory segment.
pub const PT_LOAD: u32 = 1;
/// Program header type of the notes.
pub const PT_NOTE: u32 = 4;

crate::record! {
    /// The ELF file header after `e_ident`: `Elf64_Ehdr` in [`Model::Lp64`], `Elf32_Ehdr`
    /// in [`Model::Ilp32Packed`].
    FileHeader, FileHeaderFields, ELF_HEADER {
        /// Object file type (`ET_CORE`).
        e_type: u16 = U16(16, 16),
        /// Machine (`EM_X86_64`, `EM_AARCH64`, ...).
        e_machine: u16 = U16(18, 18),
        /// Object file version (1).
        e_version: u32 = U32(20, 20),
        /// Entry point (none in a core file).
        e_entry: u64 = Long(24, 24),
        /// File offset of the program headers.
        e_phoff: u64 = Long(32, 28),
        /// File offset of the section headers.
        e_shoff: u64 = Long(40, 32),
        /// Processor-specific flags (bit 0: incomplete dump, from makedumpfile).
        e_flags: u32 = U32(48, 36),
        /// Bytes of this header.
        e_ehsize: u16 = U16(52, 40),
        /// Bytes of a program header.
        e_phentsize: u16 = U16(54, 42),
        /// Program headers (or `PN_XNUM`).
        e_phnum: u16 = U16(56, 44),
        /// Bytes of a section header.
        e_shentsize: u16 = U16(58, 46),
        /// Section headers.
        e_shnum: u16 = U16(60, 48),
        /// Index of the section name table.
        e_shstrndx: u16 = U16(62, 50),
    }
}

crate::record! {
    /// A program header: `Elf64_Phdr` or `Elf32_Phdr` (whose flags come after the sizes).
    ProgramHeader, ProgramHeaderFields, PROGRAM_HEADER {
        /// Segment type (`PT_LOAD`, `PT_NOTE`).
        p_type: u32 = U32(0, 0),
        /// Segment permissions.
        p_flags: u32 = U32(4, 24),
        /// File offset of the segment's bytes.
        p_offset: u64 = Long(8, 4),
        /// Virtual address.
        p_vaddr: u64 = Long(16, 8),
        /// Physical address.
        p_paddr: u64 = Long(24, 12),
        /// Bytes in the file.
        p_filesz: u64 = Long(32, 16),
        /// Bytes in memory.
        p_memsz: u64 = Long(40, 20),
        /// Alignment.
        p_align: u64 = Long(48, 28),
    }
}

crate::record! {
    /// A section header: `Elf64_Shdr` or `Elf32_Shdr`. A core file has one only when its
    /// program headers number `PN_XNUM` or more: section header 0, whose `sh_info` holds
    /// the count.
    SectionHeader, SectionHeaderFields, SECTION_HEADER {
        /// Name (index in the name table).
        sh_name: u32 = U32(0, 0),
        /// Section type.
        sh_type: u32 = U32(4, 4),
        /// Section flags.
        sh_flags: u64 = Long(8, 8),
        /// Address.
        sh_addr: u64 = Long(16, 12),
        /// File offset.
        sh_offset: u64 = Long(24, 16),
        /// Bytes.
        sh_size: u64 = Long(32, 20),
        /// Link to another section.
        sh_link: u32 = U32(40, 24),
        /// Extra information (the program header count, in section header 0).
        sh_info: u32 = U32(44, 28),
        /// Alignment.
        sh_addralign: u64 = Long(48, 32),
        /// Bytes of an entry.
        sh_entsize: u64 = Long(56, 36),
    }
}

/// Bytes of the ELF64 file header.
pub const EHDR_SIZE: u64 = ELF_HEADER.e_shstrndx.end(Model::Lp64) as u64;
/// Bytes of an ELF64 program header.
pub const PHDR_SIZE: u64 = PROGRAM_HEADER.p_align.end(Model::Lp64) as u64;
/// Bytes of an ELF64 section header.
const SHDR_SIZE: u64 = SECTION_HEADER.sh_entsize.end(Model::Lp64) as u64;

/// Bytes of an ELF note header.
pub const NOTE_HEADER_SIZE: usize = NOTE_HEADER.n_type.end(Model::Lp64);

crate::record! {
    /// An ELF note's header (`Elf32_Nhdr` and `Elf64_Nhdr` are the same); the name and the
    /// descriptor follow, each padded to 4 bytes.
    NoteHeader, NoteHeaderFields, NOTE_HEADER {
        /// Bytes of the name, its NUL included.
        namesz: u32 = U32(0, 0),
        /// Bytes of the descriptor.
        descsz: u32 = U32(4, 4),
        /// The note's type.
        n_type: u32 = U32(8, 8),
    }
}

/// One whole note: header, NUL-terminated `name` and `desc`, each padded to 4 bytes.
pub fn note(endian: Endian, name: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let pad4 = |n: usize| n.next_multiple_of(4);
    let mut out = vec![0u8; NOTE_HEADER_SIZE];
    let h = NoteHeader {
        namesz: (name.len() + 1) as u32,
        descsz: desc.len() as u32,
        n_type,
    };
    h.put(Model::Lp64, endian, &mut out);
    out.extend_from_slice(name.as_bytes());
    out.resize(pad4(NOTE_HEADER_SIZE + name.len() + 1), 0);
    out.extend_from_slice(desc);
    out.resize(pad4(out.len()), 0);
    out
}

/// One output PT_LOAD, in physical bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Physical address of its first byte (p_paddr).
    pub phys_start: u64,
    /// Kernel virtual address of its first byte (p_vaddr).
    pub virt_start: u64,
    /// Bytes with data (p_filesz).
    pub file_size: u64,
    /// Bytes described (p_memsz).
    pub mem_size: u64,
}

/// Cuts one input PT_LOAD into segments, fed its pages in increasing pfn order. A segment
/// starts at the PT_LOAD's start or at the first kept page after a long excluded run; its
/// data runs to its last kept page (a leading short run is data too, a leading long run
/// makes a segment without data), its p_memsz to where the next segment starts.
#[derive(Debug)]
pub struct SegmentBuilder {
    load: Load,
    page_size: u64,
    /// First pfn of the open segment and the end of its data.
    start: u64,
    data_end: u64,
    /// Excluded pages since the last kept one.
    run: u64,
    /// The segments closed so far.
    pub segments: Vec<Segment>,
}

impl SegmentBuilder {
    /// A builder for the segments of `load`, whose pages are `page_size` bytes.
    pub fn new(load: Load, page_size: u64) -> SegmentBuilder {
        let first = load.phys_start / page_size;
        SegmentBuilder {
            load,
            page_size,
            start: first,
            data_end: first,
            run: 0,
            segments: Vec::new(),
        }
    }

    /// The pfns this PT_LOAD covers.
    pub fn pfns(&self) -> (u64, u64) {
        (
            self.load.phys_start / self.page_size,
            self.load.phys_end().div_ceil(self.page_size),
        )
    }

    /// The next page of the PT_LOAD, kept in the dump or excluded.
    pub fn page(&mut self, pfn: u64, kept: bool) {
        if !kept {
            self.run += 1;
            return;
        }
        if self.run >= EXCLUDED_RUN {
            self.close(self.start, self.data_end, pfn);
            self.start = pfn;
        }
        self.data_end = pfn + 1;
        self.run = 0;
    }

    /// Ends the PT_LOAD: the last segment's p_memsz reaches the PT_LOAD's end.
    pub fn finish(&mut self) {
        let end = self.pfns().1;
        self.close(self.start, self.data_end, end);
    }

    fn close(&mut self, start: u64, data_end: u64, mem_end: u64) {
        let ps = self.page_size;
        let l = &self.load;
        let lo = (start * ps).max(l.phys_start);
        let data_hi = (data_end * ps).min(l.file_phys_end()).max(lo);
        let mem_hi = (mem_end * ps).min(l.phys_end()).max(data_hi);
        self.segments.push(Segment {
            phys_start: lo,
            virt_start: l.virt_start.wrapping_add(lo - l.phys_start),
            file_size: data_hi - lo,
            mem_size: mem_hi - lo,
        });
    }
}

/// Where everything goes in the output file.
#[derive(Debug, Clone)]
pub struct ElfLayout {
    /// The output PT_LOADs, in file order.
    pub segments: Vec<Segment>,
    /// Bytes of the notes.
    pub notes_size: u64,
}

impl ElfLayout {
    fn phnum(&self) -> u64 {
        1 + self.segments.len() as u64
    }
    fn xnum(&self) -> bool {
        self.phnum() >= PN_XNUM as u64
    }
    /// Where the program headers start.
    pub fn phdr_offset(&self) -> u64 {
        EHDR_SIZE + if self.xnum() { SHDR_SIZE } else { 0 }
    }
    /// Where the notes start.
    pub fn notes_offset(&self) -> u64 {
        self.phdr_offset() + self.phnum() * PHDR_SIZE
    }
    /// Where the first segment's data starts.
    pub fn data_offset(&self) -> u64 {
        self.notes_offset() + self.notes_size
    }

    /// The ELF header, with section header 0 after it when the count needs PN_XNUM.
    pub fn header_bytes(&self, endian: Endian, machine: u16, flags: u32) -> Vec<u8> {
        let mut h = vec![0u8; self.phdr_offset() as usize];
        h[..ELFMAG.len()].copy_from_slice(ELFMAG);
        h[EI_CLASS] = 2;
        h[EI_DATA] = match endian {
            Endian::Little => 1,
            Endian::Big => 2,
        };
        h[EI_VERSION] = 1;
        let xnum = self.xnum();
        let mut fh = FileHeader {
            e_type: ET_CORE,
            e_machine: machine,
            e_version: 1,
            e_phoff: self.phdr_offset(),
            e_flags: flags,
            e_ehsize: EHDR_SIZE as u16,
            e_phentsize: PHDR_SIZE as u16,
            e_phnum: self.phnum() as u16,
            ..FileHeader::default()
        };
        if xnum {
            fh.e_phnum = PN_XNUM;
            fh.e_shoff = EHDR_SIZE;
            fh.e_shentsize = SHDR_SIZE as u16;
            fh.e_shnum = 1;
            // Section header 0: sh_info holds the real program header count.
            let sh0 = SectionHeader {
                sh_info: u32::try_from(self.phnum()).unwrap_or(u32::MAX),
                ..SectionHeader::default()
            };
            sh0.put(Model::Lp64, endian, &mut h[EHDR_SIZE as usize..]);
        }
        fh.put(Model::Lp64, endian, &mut h);
        h
    }

    /// The program headers: PT_NOTE, then every segment with its data offset.
    pub fn phdr_bytes(&self, endian: Endian) -> Vec<u8> {
        let mut out = vec![0u8; (self.phnum() * PHDR_SIZE) as usize];
        let notes = ProgramHeader {
            p_type: PT_NOTE,
            p_offset: self.notes_offset(),
            p_filesz: self.notes_size,
            p_memsz: self.notes_size,
            ..ProgramHeader::default()
        };
        notes.put(Model::Lp64, endian, &mut out);
        let mut at = self.data_offset();
        for (i, s) in self.segments.iter().enumerate() {
            // RWX as the kernel's; p_align 0 as makedumpfile writes (the data is packed).
            let load = ProgramHeader {
                p_type: PT_LOAD,
                p_flags: 7,
                p_offset: if s.file_size == 0 { 0 } else { at },
                p_vaddr: s.virt_start,
                p_paddr: s.phys_start,
                p_filesz: s.file_size,
                p_memsz: s.mem_size,
                p_align: 0,
            };
            load.put(
                Model::Lp64,
                endian,
                &mut out[(i + 1) * PHDR_SIZE as usize..],
            );
            at += s.file_size;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(start: u64, size: u64) -> Load {
        Load {
            phys_start: start,
            virt_start: 0xffff_8880_0000_0000 + start,
            file_offset: 0,
            file_size: size,
            mem_size: size,
        }
    }

    fn build(l: Load, kept: impl Fn(u64) -> bool) -> Vec<Segment> {
        let mut b = SegmentBuilder::new(l, 4096);
        let (a, z) = b.pfns();
        for pfn in a..z {
            b.page(pfn, kept(pfn));
        }
        b.finish();
        b.segments
    }

    #[test]
    fn short_runs_stay_long_runs_split() {
        // 1000 pages; 10..20 excluded (short), 300..600 excluded (long), tail excluded.
        let segs = build(load(0, 1000 * 4096), |p| {
            !((10..20).contains(&p) || (300..600).contains(&p) || p >= 900)
        });
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].phys_start, segs[0].file_size), (0, 300 * 4096));
        assert_eq!(segs[0].mem_size, 600 * 4096, "memsz covers the long run");
        assert_eq!(segs[1].phys_start, 600 * 4096);
        assert_eq!(segs[1].file_size, 300 * 4096);
        assert_eq!(segs[1].mem_size, 400 * 4096, "to the PT_LOAD's end");
        assert_eq!(segs[1].virt_start, 0xffff_8880_0000_0000 + 600 * 4096);
    }

    #[test]
    fn leading_excluded_pages_and_empty_loads() {
        // A short leading run is data; a long one is a segment of its own without data.
        let segs = build(load(0x10_0000, 10 * 4096), |p| p >= 0x105);
        assert_eq!(segs.len(), 1);
        assert_eq!(
            (segs[0].phys_start, segs[0].file_size),
            (0x10_0000, 10 * 4096)
        );
        let segs = build(load(0x10_0000, 400 * 4096), |p| p >= 0x100 + 300);
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].file_size, segs[0].mem_size), (0, 300 * 4096));
        assert_eq!(
            (segs[1].phys_start, segs[1].file_size),
            (0x10_0000 + 300 * 4096, 100 * 4096)
        );
        let none = build(load(0x10_0000, 10 * 4096), |_| false);
        assert_eq!(
            none,
            vec![Segment {
                phys_start: 0x10_0000,
                virt_start: 0xffff_8880_0010_0000,
                file_size: 0,
                mem_size: 10 * 4096
            }]
        );
        // A PT_LOAD that starts and ends mid-page keeps its exact bounds.
        let odd = build(load(0x400, 2 * 4096), |_| true);
        assert_eq!((odd[0].phys_start, odd[0].file_size), (0x400, 2 * 4096));
    }

    #[test]
    fn header_counts_with_and_without_pn_xnum() {
        let seg = Segment {
            phys_start: 0,
            virt_start: 0,
            file_size: 4096,
            mem_size: 4096,
        };
        let small = ElfLayout {
            segments: vec![seg; 3],
            notes_size: 100,
        };
        let h = small.header_bytes(Endian::Little, 62, 0);
        assert_eq!(u16::from_le_bytes([h[56], h[57]]), 4);
        assert_eq!(small.data_offset(), 64 + 4 * 56 + 100);
        let big = ElfLayout {
            segments: vec![seg; 70000],
            notes_size: 0,
        };
        let h = big.header_bytes(Endian::Little, 62, FLAG_INCOMPLETE);
        assert_eq!(u16::from_le_bytes([h[56], h[57]]), 0xffff);
        assert_eq!(u32::from_le_bytes([h[108], h[109], h[110], h[111]]), 70001);
        assert_eq!(u32::from_le_bytes([h[48], h[49], h[50], h[51]]), 1);
    }

    /// The headers written in either byte order, read back by the ELF reader.
    #[test]
    fn headers_read_back_in_either_byte_order() {
        use crate::input::elf::ElfCore;
        for endian in [Endian::Little, Endian::Big] {
            let notes = note(endian, "VMCOREINFO", 0, b"PAGESIZE=4096\n");
            let seg = |phys_start: u64, file_size| Segment {
                phys_start,
                virt_start: 0xffff_8880_0000_0000 + phys_start,
                file_size,
                mem_size: 2 * 4096,
            };
            let layout = ElfLayout {
                segments: vec![seg(0x1000, 4096), seg(0x10_0000, 0)],
                notes_size: notes.len() as u64,
            };
            let mut f = layout.header_bytes(endian, 62, FLAG_INCOMPLETE);
            f.extend(layout.phdr_bytes(endian));
            f.extend(&notes);
            f.resize((layout.data_offset() + 4096) as usize, 0xaa);
            let core = ElfCore::parse(&f[..]).expect("our own header");
            assert_eq!((core.endian, core.machine), (endian, 62));
            assert_eq!(core.notes, notes);
            let want: Vec<_> = layout
                .segments
                .iter()
                .map(|s| Load {
                    phys_start: s.phys_start,
                    virt_start: s.virt_start,
                    file_offset: if s.file_size == 0 {
                        0
                    } else {
                        layout.data_offset()
                    },
                    file_size: s.file_size,
                    mem_size: s.mem_size,
                })
                .collect();
            assert_eq!(core.loads, want);
            let n = core.notes().next().expect("a note").expect("one");
            assert_eq!(
                (n.name, n.desc),
                (&b"VMCOREINFO"[..], &b"PAGESIZE=4096\n"[..])
            );
        }
    }
}
