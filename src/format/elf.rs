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
use crate::input::elf::{Load, PT_LOAD, PT_NOTE};

/// Runs of excluded pages shorter than this are kept inside a segment.
pub const EXCLUDED_RUN: u64 = 256;
pub const EHDR_SIZE: u64 = 64;
pub const PHDR_SIZE: u64 = 56;
const SHDR_SIZE: u64 = 64;
const PN_XNUM: u64 = 0xffff;
const ET_CORE: u16 = 4;
/// e_flags bit makedumpfile sets on an incomplete ELF dump.
pub const FLAG_INCOMPLETE: u32 = 1;

/// Bytes of an ELF note header.
pub const NOTE_HEADER_SIZE: usize = 12;

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
    pub phys_start: u64,
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
    pub segments: Vec<Segment>,
}

impl SegmentBuilder {
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
    pub segments: Vec<Segment>,
    pub notes_size: u64,
}

impl ElfLayout {
    fn phnum(&self) -> u64 {
        1 + self.segments.len() as u64
    }
    fn xnum(&self) -> bool {
        self.phnum() >= PN_XNUM
    }
    pub fn phdr_offset(&self) -> u64 {
        EHDR_SIZE + if self.xnum() { SHDR_SIZE } else { 0 }
    }
    pub fn notes_offset(&self) -> u64 {
        self.phdr_offset() + self.phnum() * PHDR_SIZE
    }
    pub fn data_offset(&self) -> u64 {
        self.notes_offset() + self.notes_size
    }

    /// The ELF header, with section header 0 after it when the count needs PN_XNUM.
    pub fn header_bytes(&self, endian: Endian, machine: u16, flags: u32) -> Vec<u8> {
        let mut h = vec![0u8; self.phdr_offset() as usize];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // ELFCLASS64
        h[5] = match endian {
            Endian::Little => 1,
            Endian::Big => 2,
        };
        h[6] = 1; // EV_CURRENT
        endian.put_u16(&mut h, 16, ET_CORE);
        endian.put_u16(&mut h, 18, machine);
        endian.put_u32(&mut h, 20, 1);
        endian.put_u64(&mut h, 32, self.phdr_offset()); // e_phoff
        endian.put_u32(&mut h, 48, flags);
        endian.put_u16(&mut h, 52, EHDR_SIZE as u16);
        endian.put_u16(&mut h, 54, PHDR_SIZE as u16);
        if self.xnum() {
            endian.put_u16(&mut h, 56, PN_XNUM as u16);
            endian.put_u64(&mut h, 40, EHDR_SIZE); // e_shoff
            endian.put_u16(&mut h, 58, SHDR_SIZE as u16);
            endian.put_u16(&mut h, 60, 1); // e_shnum
            // Section header 0: sh_info holds the real program header count.
            let count = u32::try_from(self.phnum()).unwrap_or(u32::MAX);
            endian.put_u32(&mut h, EHDR_SIZE as usize + 44, count);
        } else {
            endian.put_u16(&mut h, 56, self.phnum() as u16);
        }
        h
    }

    /// The program headers: PT_NOTE, then every segment with its data offset.
    pub fn phdr_bytes(&self, endian: Endian) -> Vec<u8> {
        let mut out = vec![0u8; (self.phnum() * PHDR_SIZE) as usize];
        let mut put =
            |i: usize, kind: u32, offset: u64, vaddr: u64, paddr: u64, file: u64, mem: u64| {
                let p = &mut out[i * PHDR_SIZE as usize..(i + 1) * PHDR_SIZE as usize];
                endian.put_u32(p, 0, kind);
                endian.put_u32(p, 4, if kind == PT_LOAD { 7 } else { 0 }); // RWX, as the kernel's
                endian.put_u64(p, 8, offset);
                endian.put_u64(p, 16, vaddr);
                endian.put_u64(p, 24, paddr);
                endian.put_u64(p, 32, file);
                endian.put_u64(p, 40, mem);
                // p_align 0, as makedumpfile writes (the data is packed, not aligned).
            };
        put(
            0,
            PT_NOTE,
            self.notes_offset(),
            0,
            0,
            self.notes_size,
            self.notes_size,
        );
        let mut at = self.data_offset();
        for (i, s) in self.segments.iter().enumerate() {
            let offset = if s.file_size == 0 { 0 } else { at };
            put(
                i + 1,
                PT_LOAD,
                offset,
                s.virt_start,
                s.phys_start,
                s.file_size,
                s.mem_size,
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
}
