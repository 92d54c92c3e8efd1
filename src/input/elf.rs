//! ELF core files: /proc/vmcore, and later /proc/kcore and `-E` output read back.
//!
//! Only what a core collector needs is decoded: the file header, the program headers
//! (PT_LOAD: physical range → file range; PT_NOTE: the notes) and the notes themselves.
//! Every field comes from untrusted bytes, so every offset and size is checked against the
//! buffer and the file length before use.

use super::bytes::Endian;
use crate::error::{Error, Result};
use crate::format::elf::{
    EHDR_SIZE, EI_CLASS, EI_DATA, EI_NIDENT, ELFMAG, ET_CORE, FileHeader, NOTE_HEADER_SIZE,
    NoteHeader, PN_XNUM, PROGRAM_HEADER, ProgramHeader, SECTION_HEADER,
};
use crate::format::record::Model;

pub use crate::format::elf::{PT_LOAD, PT_NOTE};
/// More program headers than any real vmcore has (one per memory range, a few hundred on
/// large machines); a bound so a corrupt count cannot make us allocate without limit.
pub const MAX_PHDRS: usize = 1 << 16;
/// Program headers are 56 bytes (32 for ELF32); a larger entry size is allowed by the ELF
/// specification, but not a size that would make the table larger than a few MiB.
const MAX_PHENTSIZE: usize = 256;
/// The notes of a real vmcore are a few KiB per CPU; 64 MiB covers 8192 CPUs with room.
const MAX_NOTES_SIZE: u64 = 64 << 20;

/// ELFCLASS32 or ELFCLASS64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 32-bit headers (i386 vmcores).
    Elf32,
    /// 64-bit headers.
    Elf64,
}

impl Class {
    /// Whether this is ELFCLASS64.
    pub fn is_64(self) -> bool {
        self == Class::Elf64
    }

    /// The record layout of the class's headers.
    pub fn model(self) -> Model {
        match self {
            Class::Elf64 => Model::Lp64,
            Class::Elf32 => Model::Ilp32Packed,
        }
    }
}

/// One PT_LOAD: a range of physical memory and where its bytes are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Physical address of the first byte (p_paddr).
    pub phys_start: u64,
    /// Virtual address of the first byte (p_vaddr).
    pub virt_start: u64,
    /// Where its bytes start in the file (p_offset).
    pub file_offset: u64,
    /// Bytes present in the file (p_filesz).
    pub file_size: u64,
    /// Bytes of memory the segment describes (p_memsz ≥ p_filesz).
    pub mem_size: u64,
}

impl Load {
    /// End of the physical range the segment describes.
    pub fn phys_end(&self) -> u64 {
        self.phys_start.saturating_add(self.mem_size)
    }

    /// End of the part of the range that has bytes in the file.
    pub fn file_phys_end(&self) -> u64 {
        self.phys_start.saturating_add(self.file_size)
    }
}

/// The parsed layout of an ELF core file.
#[derive(Debug, Clone)]
pub struct ElfCore {
    /// ELF32 or ELF64.
    pub class: Class,
    /// Byte order of every header and note.
    pub endian: Endian,
    /// `e_machine`.
    pub machine: u16,
    /// PT_LOADs in file order.
    pub loads: Vec<Load>,
    /// The bytes of every PT_NOTE segment, concatenated in file order (a vmcore has one).
    pub notes: Vec<u8>,
}

/// Something we can read bytes from at an offset (a file, or a buffer in tests and fuzzing).
pub trait ReadAt {
    /// Reads exactly `buf.len()` bytes at `offset`, or fails.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
    /// The input's apparent size.
    fn size(&self) -> std::io::Result<u64>;
    /// Whether the `len` bytes at `offset` are stored in the input (not only below its
    /// apparent size: a flattened stream's holes hold nothing).
    fn holds(&self, offset: u64, len: u64) -> bool {
        let end = offset.checked_add(len);
        self.size()
            .is_ok_and(|size| end.is_some_and(|end| end <= size))
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn size(&self) -> std::io::Result<u64> {
        (**self).size()
    }

    fn holds(&self, offset: u64, len: u64) -> bool {
        (**self).holds(offset, len)
    }
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    fn size(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl<R: ReadAt + ?Sized> ReadAt for &R {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }

    fn size(&self) -> std::io::Result<u64> {
        (**self).size()
    }

    fn holds(&self, offset: u64, len: u64) -> bool {
        (**self).holds(offset, len)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).ok();
        let src = start
            .and_then(|s| Some((s, s.checked_add(buf.len())?)))
            .and_then(|(s, e)| self.get(s..e));
        match src {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }

    fn size(&self) -> std::io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
}

fn short(what: &str) -> Error {
    Error::bad_input(format!("{what} is cut short"))
}

/// Class and byte order from `e_ident`.
fn ident(head: &[u8]) -> Result<(Class, Endian)> {
    if head.len() < EI_NIDENT || !head.starts_with(ELFMAG) {
        return Err(Error::bad_input("not an ELF file (no \\x7fELF magic)"));
    }
    let class = match head[EI_CLASS] {
        1 => Class::Elf32,
        2 => Class::Elf64,
        c => return Err(Error::bad_input(format!("unknown ELF class {c}"))),
    };
    let endian = match head[EI_DATA] {
        1 => Endian::Little,
        2 => Endian::Big,
        d => return Err(Error::bad_input(format!("unknown ELF data encoding {d}"))),
    };
    Ok((class, endian))
}

/// The number of program headers: `e_phnum`, or section header 0's `sh_info` when
/// `e_phnum` is `PN_XNUM`.
fn phnum<R: ReadAt + ?Sized>(input: &R, model: Model, e: Endian, fh: &FileHeader) -> Result<usize> {
    if fh.e_phnum != PN_XNUM {
        return Ok(fh.e_phnum as usize);
    }
    let sh_info = SECTION_HEADER.sh_info;
    if fh.e_shoff == 0 || (fh.e_shentsize as usize) < sh_info.end(model) {
        return Err(Error::bad_input(
            "e_phnum is PN_XNUM but there is no section header 0",
        ));
    }
    let mut sh0 = [0u8; 64];
    let sh0 = &mut sh0[..sh_info.end(model)];
    let at = fh.e_shoff.saturating_add(sh_info.offset(model) as u64);
    input
        .read_exact_at(&mut sh0[sh_info.offset(model)..], at)
        .map_err(|e| Error::io(e, "cannot read section header 0 (PN_XNUM)"))?;
    Ok(sh_info.get(model, e, sh0).unwrap_or(0) as usize)
}

impl ElfCore {
    /// Parses the headers and notes of an ELF core file, checking every segment against the
    /// file's length so that a truncated vmcore is reported here, not as a read error later.
    pub fn parse<R: ReadAt + ?Sized>(input: &R) -> Result<ElfCore> {
        let file_len = input
            .size()
            .map_err(|e| Error::io(e, "cannot get the input's size"))?;
        let mut head = [0u8; EHDR_SIZE as usize];
        let head_len = head
            .len()
            .min(usize::try_from(file_len).unwrap_or(head.len()));
        input
            .read_exact_at(&mut head[..head_len], 0)
            .map_err(|e| Error::io(e, "cannot read the ELF header"))?;
        let (class, endian) = ident(&head[..head_len])?;
        let model = class.model();
        let fh = FileHeader::parse(model, endian, &head[..head_len])
            .ok_or_else(|| short("the ELF header"))?;
        if fh.e_type != ET_CORE {
            return Err(Error::bad_input(format!(
                "ELF type {} is not a core file (ET_CORE = 4)",
                fh.e_type
            )));
        }
        let phnum = phnum(input, model, endian, &fh)?;
        let (phoff, phentsize) = (fh.e_phoff, fh.e_phentsize as usize);
        let phdr_size = PROGRAM_HEADER.p_align.end(model);
        if !(phdr_size..=MAX_PHENTSIZE).contains(&phentsize) {
            return Err(Error::bad_input(format!(
                "program header size {phentsize} is not between {phdr_size} and {MAX_PHENTSIZE}"
            )));
        }
        if phnum == 0 || phnum > MAX_PHDRS {
            return Err(Error::bad_input(format!(
                "implausible number of program headers: {phnum}"
            )));
        }
        let table_len = (phnum * phentsize) as u64;
        if phoff
            .checked_add(table_len)
            .is_none_or(|end| end > file_len)
        {
            return Err(Error::bad_input(format!(
                "the program header table ({phnum} entries at offset {phoff:#x}) runs past the end of the file ({file_len} bytes): truncated?"
            )));
        }
        let mut table = super::bytes::zeroed(phnum * phentsize, "the program header table")?;
        input
            .read_exact_at(&mut table, phoff)
            .map_err(|e| Error::io(e, "cannot read the program headers"))?;
        let mut core = ElfCore {
            class,
            endian,
            machine: fh.e_machine,
            loads: Vec::new(),
            notes: Vec::new(),
        };
        for (i, raw) in table.chunks_exact(phentsize).enumerate() {
            let ph = ProgramHeader::parse(model, endian, raw)
                .ok_or_else(|| short("a program header"))?;
            core.add_segment(input, file_len, i, &ph)?;
        }
        if core.loads.is_empty() {
            return Err(Error::bad_input("the ELF file has no PT_LOAD segment"));
        }
        Ok(core)
    }

    /// Takes in program header `i`: a PT_LOAD as a [`Load`], a PT_NOTE's bytes into the
    /// notes; other types are ignored.
    fn add_segment<R: ReadAt + ?Sized>(
        &mut self,
        input: &R,
        file_len: u64,
        i: usize,
        ph: &ProgramHeader,
    ) -> Result<()> {
        let (p_offset, p_filesz) = (ph.p_offset, ph.p_filesz);
        let end = p_offset.checked_add(p_filesz);
        if matches!(ph.p_type, PT_LOAD | PT_NOTE) && end.is_none_or(|end| end > file_len) {
            return Err(Error::bad_input(format!(
                "program header {i} needs bytes up to offset {} but the file has only {file_len}: the vmcore is truncated",
                end.map_or_else(|| "beyond 2^64".to_string(), |e| format!("{e:#x}"))
            )));
        }
        match ph.p_type {
            PT_LOAD => self.loads.push(Load {
                phys_start: ph.p_paddr,
                virt_start: ph.p_vaddr,
                file_offset: p_offset,
                file_size: p_filesz,
                mem_size: ph.p_memsz.max(p_filesz),
            }),
            PT_NOTE => {
                let notes = &mut self.notes;
                if notes.len() as u64 + p_filesz > MAX_NOTES_SIZE {
                    return Err(Error::bad_input(format!(
                        "PT_NOTE segments larger than {MAX_NOTES_SIZE} bytes"
                    )));
                }
                let start = notes.len();
                notes.try_reserve_exact(p_filesz as usize).map_err(|_| {
                    Error::bad_input(format!(
                        "no memory for a PT_NOTE segment of {p_filesz} bytes"
                    ))
                })?;
                notes.resize(start + p_filesz as usize, 0);
                input
                    .read_exact_at(&mut notes[start..], p_offset)
                    .map_err(|e| Error::io(e, "cannot read the PT_NOTE segment"))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Iterates over the notes in the PT_NOTE bytes.
    pub fn notes(&self) -> Notes<'_> {
        Notes::new(&self.notes, self.endian)
    }
}

/// One ELF note: `name` without its terminating NUL, and where its descriptor lies in the
/// notes blob (the kdump sub-header points at the VMCOREINFO descriptor).
#[derive(Debug, Clone, Copy)]
pub struct Note<'a> {
    /// The owner's name ("CORE", "VMCOREINFO"), without its NULs.
    pub name: &'a [u8],
    /// The note's type.
    pub n_type: u32,
    /// The descriptor's bytes.
    pub desc: &'a [u8],
    /// Where `desc` starts in the notes blob.
    pub desc_offset: usize,
}

/// Note type of a CPU's registers (`NT_PRSTATUS`), one note per CPU.
pub const NT_PRSTATUS: u32 = 1;

/// The notes of a PT_NOTE blob, one at a time: 4-byte aligned names and descriptors. Not an
/// [`Iterator`]: each step says whether the blob ended cleanly or a note is malformed, and
/// after an error there is nothing more.
pub struct Notes<'a> {
    data: &'a [u8],
    endian: Endian,
    pos: usize,
}

impl<'a> Notes<'a> {
    /// The notes of `data`, whose headers are in `endian` order.
    pub fn new(data: &'a [u8], endian: Endian) -> Self {
        Notes {
            data,
            endian,
            pos: 0,
        }
    }

    /// The next note; `Ok(None)` at the end of the blob or at the zero padding the kernel
    /// leaves after the last note; an error for a note that does not fit.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Note<'a>>> {
        let d = self.data;
        let p = self.pos;
        let rest = d.get(p..).unwrap_or(&[]);
        let Some(h) = NoteHeader::parse(Model::Lp64, self.endian, rest) else {
            // Trailing padding (fewer than a header's bytes, all zero) is not an error.
            self.pos = d.len();
            return match rest.iter().all(|&b| b == 0) {
                true => Ok(None),
                false => Err(Error::bad_input(
                    "bytes after the last ELF note are not a note",
                )),
            };
        };
        if h == NoteHeader::default() {
            // Zero padding at the end of the segment (the kernel leaves room for more notes).
            self.pos = d.len();
            return Ok(None);
        }
        self.pos = d.len();
        let name_start = p + NOTE_HEADER_SIZE;
        let desc_start = name_start.checked_add(h.namesz as usize).and_then(align4);
        let desc_end = desc_start.and_then(|s| s.checked_add(h.descsz as usize));
        let (Some(desc_start), Some(desc_end)) = (desc_start, desc_end.filter(|&e| e <= d.len()))
        else {
            return Err(Error::bad_input(
                "an ELF note runs past the end of its segment",
            ));
        };
        let mut name = &d[name_start..name_start + h.namesz as usize];
        while let [rest @ .., 0] = name {
            name = rest;
        }
        self.pos = align4(desc_end).map_or(d.len(), |next| next.min(d.len()));
        Ok(Some(Note {
            name,
            n_type: h.n_type,
            desc: &d[desc_start..desc_end],
            desc_offset: desc_start,
        }))
    }
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthVmcore, note};

    fn build_elf64(notes: &[u8], loads: &[(u64, Vec<u8>, u64)]) -> Vec<u8> {
        let mut s = SynthVmcore::new();
        s.notes = notes.to_vec();
        for (p, d, m) in loads {
            s = s.load(*p, d.clone(), *m);
        }
        s.to_bytes()
    }

    #[test]
    fn parses_loads_and_notes() {
        let mut notes = note("CORE", NT_PRSTATUS, &[0u8; 336]);
        notes.extend(note("CORE", NT_PRSTATUS, &[0u8; 336]));
        notes.extend(note("VMCOREINFO", 0, b"PAGESIZE=4096\n"));
        let elf = build_elf64(
            &notes,
            &[
                (0x1000, vec![1u8; 0x2000], 0x2000),
                (0x10000, vec![2u8; 0x800], 0x1000),
            ],
        );
        let core = ElfCore::parse(&elf[..]).expect("valid");
        assert_eq!(core.class, Class::Elf64);
        assert_eq!(core.loads.len(), 2);
        assert_eq!(core.loads[1].file_size, 0x800);
        assert_eq!(core.loads[1].mem_size, 0x1000);
        let mut it = core.notes();
        let mut all = Vec::new();
        while let Some(n) = it.next().expect("well-formed notes") {
            all.push(n);
        }
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].name, b"VMCOREINFO");
        assert_eq!(all[2].desc, b"PAGESIZE=4096\n");
        assert_eq!(
            &notes[all[2].desc_offset..all[2].desc_offset + 14],
            b"PAGESIZE=4096\n"
        );
    }

    #[test]
    fn rejects_truncation_and_garbage_without_panicking() {
        let notes = note("VMCOREINFO", 0, b"PAGESIZE=4096\n");
        let elf = build_elf64(&notes, &[(0, vec![7u8; 0x3000], 0x3000)]);
        // Every prefix of a valid file is either a clean error or (the full file) success.
        for cut in 0..elf.len() {
            assert!(
                ElfCore::parse(&elf[..cut]).is_err(),
                "prefix {cut} accepted"
            );
        }
        assert!(ElfCore::parse(&b"hello world, not an ELF"[..]).is_err());
        // Flip every byte of the headers: no panic, whatever the outcome.
        for i in 0..64 + 56 * 2 {
            let mut bad = elf.clone();
            bad[i] ^= 0xff;
            let _ = ElfCore::parse(&bad[..]);
        }
    }

    /// An i386 (ELF32) core: 52-byte header, 32-byte program headers.
    #[test]
    fn parses_elf32() {
        let notes = note("VMCOREINFO", 0, b"PAGESIZE=4096\n");
        let e = Endian::Little;
        let mut f = vec![0u8; 52 + 2 * 32];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1; // ELFCLASS32
        f[5] = 1;
        f[16..18].copy_from_slice(&4u16.to_le_bytes());
        f[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
        e.put_u32(&mut f, 28, 52); // e_phoff
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&2u16.to_le_bytes());
        let notes_off = f.len() as u32;
        let load_off = notes_off + notes.len() as u32;
        // PT_NOTE, then PT_LOAD of 2 pages at phys 0x100000 (vaddr 0xc0100000).
        for (i, (t, off, v, p, sz)) in [
            (PT_NOTE, notes_off, 0, 0, notes.len() as u32),
            (PT_LOAD, load_off, 0xc010_0000, 0x10_0000, 0x2000),
        ]
        .into_iter()
        .enumerate()
        {
            let b = 52 + 32 * i;
            for (o, v) in [(0, t), (4, off), (8, v), (12, p), (16, sz), (20, sz)] {
                e.put_u32(&mut f, b + o, v);
            }
        }
        f.extend_from_slice(&notes);
        f.extend(std::iter::repeat_n(0xabu8, 0x2000));
        let core = ElfCore::parse(&f[..]).expect("ELF32 core");
        assert_eq!(core.class, Class::Elf32);
        assert_eq!(core.machine, 3);
        assert_eq!(
            core.loads,
            vec![Load {
                phys_start: 0x10_0000,
                virt_start: 0xc010_0000,
                file_offset: load_off as u64,
                file_size: 0x2000,
                mem_size: 0x2000,
            }]
        );
        assert_eq!(
            core.notes().next().ok().flatten().map(|n| n.desc),
            Some(&b"PAGESIZE=4096\n"[..])
        );
        assert!(ElfCore::parse(&f[..f.len() - 1]).is_err());
    }

    #[test]
    fn notes_iterator_stops_on_bad_sizes() {
        let mut blob = note("CORE", 1, &[0u8; 8]);
        blob.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
        blob.extend_from_slice(&4u32.to_le_bytes());
        blob.extend_from_slice(&0u32.to_le_bytes());
        let mut it = Notes::new(&blob, Endian::Little);
        assert!(matches!(it.next(), Ok(Some(n)) if n.name == b"CORE"));
        assert!(it.next().is_err());
        assert!(matches!(it.next(), Ok(None)), "nothing after an error");
        // Zero padding after the last note ends the notes; other short garbage is an error.
        let mut padded = note("CORE", 1, &[0u8; 8]);
        padded.extend_from_slice(&[0u8; 20]);
        let mut it = Notes::new(&padded, Endian::Little);
        assert!(matches!(it.next(), Ok(Some(_))));
        assert!(matches!(it.next(), Ok(None)));
        let mut tail = note("CORE", 1, &[0u8; 8]);
        tail.extend_from_slice(&[0, 0, 1]);
        let mut it = Notes::new(&tail, Endian::Little);
        assert!(matches!(it.next(), Ok(Some(_))));
        assert!(it.next().is_err());
    }
}
