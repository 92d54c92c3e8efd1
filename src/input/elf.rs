//! ELF core files: /proc/vmcore, and later /proc/kcore and `-E` output read back.
//!
//! Only what a core collector needs is decoded: the file header, the program headers
//! (PT_LOAD: physical range → file range; PT_NOTE: the notes) and the notes themselves.
//! Every field comes from untrusted bytes, so every offset and size is checked against the
//! buffer and the file length before use.

use super::bytes::Endian;
use crate::error::{Error, Result};
use crate::format::elf::{NOTE_HEADER_SIZE, NoteHeader};
use crate::format::record::Model;

pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
const ET_CORE: u16 = 4;
const PN_XNUM: u16 = 0xffff;
/// More program headers than any real vmcore has (one per memory range, a few hundred on
/// large machines); a bound so a corrupt count cannot make us allocate without limit.
pub const MAX_PHDRS: usize = 1 << 16;
/// Program headers are 56 bytes (32 for ELF32); a larger entry size is allowed by the ELF
/// specification, but not a size that would make the table larger than a few MiB.
const MAX_PHENTSIZE: usize = 256;
/// The notes of a real vmcore are a few KiB per CPU; 64 MiB covers 8192 CPUs with room.
const MAX_NOTES_SIZE: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

impl Class {
    pub fn is_64(self) -> bool {
        self == Class::Elf64
    }
}

/// One PT_LOAD: a range of physical memory and where its bytes are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub phys_start: u64,
    pub virt_start: u64,
    pub file_offset: u64,
    /// Bytes present in the file (p_filesz).
    pub file_size: u64,
    /// Bytes of memory the segment describes (p_memsz ≥ p_filesz).
    pub mem_size: u64,
}

impl Load {
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
    pub class: Class,
    pub endian: Endian,
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

/// Field offsets of the ELF file header and program header for one class.
struct Layout {
    ehdr_size: usize,
    phoff: usize,
    shoff: usize,
    phentsize: usize,
    phnum: usize,
    shentsize: usize,
    phdr_size: usize,
}

const LAYOUT64: Layout = Layout {
    ehdr_size: 64,
    phoff: 32,
    shoff: 40,
    phentsize: 54,
    phnum: 56,
    shentsize: 58,
    phdr_size: 56,
};

const LAYOUT32: Layout = Layout {
    ehdr_size: 52,
    phoff: 28,
    shoff: 32,
    phentsize: 42,
    phnum: 44,
    shentsize: 46,
    phdr_size: 32,
};

fn short(what: &str) -> Error {
    Error::bad_input(format!("{what} is cut short"))
}

impl ElfCore {
    /// Parses the headers and notes of an ELF core file, checking every segment against the
    /// file's length so that a truncated vmcore is reported here, not as a read error later.
    pub fn parse<R: ReadAt + ?Sized>(input: &R) -> Result<ElfCore> {
        let file_len = input
            .size()
            .map_err(|e| Error::io(e, "cannot get the input's size"))?;
        let mut ident = [0u8; 64];
        let head_len = ident.len().min(usize::try_from(file_len).unwrap_or(64));
        input
            .read_exact_at(&mut ident[..head_len], 0)
            .map_err(|e| Error::io(e, "cannot read the ELF header"))?;
        if head_len < 16 || &ident[..4] != b"\x7fELF" {
            return Err(Error::bad_input("not an ELF file (no \\x7fELF magic)"));
        }
        let class = match ident[4] {
            1 => Class::Elf32,
            2 => Class::Elf64,
            c => return Err(Error::bad_input(format!("unknown ELF class {c}"))),
        };
        let endian = match ident[5] {
            1 => Endian::Little,
            2 => Endian::Big,
            d => return Err(Error::bad_input(format!("unknown ELF data encoding {d}"))),
        };
        let lay = if class.is_64() { &LAYOUT64 } else { &LAYOUT32 };
        let eh = &ident[..head_len];
        if head_len < lay.ehdr_size {
            return Err(short("the ELF header"));
        }
        let wide = class.is_64();
        let e_type = endian.u16(eh, 16).ok_or_else(|| short("the ELF header"))?;
        if e_type != ET_CORE {
            return Err(Error::bad_input(format!(
                "ELF type {e_type} is not a core file (ET_CORE = 4)"
            )));
        }
        let machine = endian.u16(eh, 18).ok_or_else(|| short("the ELF header"))?;
        let phoff = endian
            .word(eh, lay.phoff, wide)
            .ok_or_else(|| short("the ELF header"))?;
        let shoff = endian
            .word(eh, lay.shoff, wide)
            .ok_or_else(|| short("the ELF header"))?;
        let phentsize = endian
            .u16(eh, lay.phentsize)
            .ok_or_else(|| short("the ELF header"))? as usize;
        let shentsize = endian
            .u16(eh, lay.shentsize)
            .ok_or_else(|| short("the ELF header"))? as usize;
        let mut phnum = endian
            .u16(eh, lay.phnum)
            .ok_or_else(|| short("the ELF header"))? as usize;
        if phnum == PN_XNUM as usize {
            // The real count is in section header 0's sh_info.
            let sh_info_off = if wide { 44 } else { 28 };
            if shoff == 0 || shentsize < sh_info_off + 4 {
                return Err(Error::bad_input(
                    "e_phnum is PN_XNUM but there is no section header 0",
                ));
            }
            let mut sh0 = [0u8; 4];
            input
                .read_exact_at(&mut sh0, shoff.saturating_add(sh_info_off as u64))
                .map_err(|e| Error::io(e, "cannot read section header 0 (PN_XNUM)"))?;
            phnum = endian.u32(&sh0, 0).unwrap_or(0) as usize;
        }
        if !(lay.phdr_size..=MAX_PHENTSIZE).contains(&phentsize) {
            return Err(Error::bad_input(format!(
                "program header size {phentsize} is not between {} and {MAX_PHENTSIZE}",
                lay.phdr_size
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

        let mut loads = Vec::new();
        let mut notes = Vec::new();
        for i in 0..phnum {
            let ph = &table[i * phentsize..(i + 1) * phentsize];
            let p_type = endian.u32(ph, 0).ok_or_else(|| short("a program header"))?;
            // ELF64: type, flags, offset, vaddr, paddr, filesz, memsz, align.
            // ELF32: type, offset, vaddr, paddr, filesz, memsz, flags, align.
            let (off, vaddr, paddr, filesz, memsz) = if wide {
                (8, 16, 24, 32, 40)
            } else {
                (4, 8, 12, 16, 20)
            };
            let field = |o: usize| {
                endian
                    .word(ph, o, wide)
                    .ok_or_else(|| short("a program header"))
            };
            let p_offset = field(off)?;
            let p_filesz = field(filesz)?;
            let end = p_offset.checked_add(p_filesz);
            if matches!(p_type, PT_LOAD | PT_NOTE) && end.is_none_or(|end| end > file_len) {
                return Err(Error::bad_input(format!(
                    "program header {i} needs bytes up to offset {} but the file has only {file_len}: the vmcore is truncated",
                    end.map_or_else(|| "beyond 2^64".to_string(), |e| format!("{e:#x}"))
                )));
            }
            match p_type {
                PT_LOAD => {
                    let p_memsz = field(memsz)?;
                    loads.push(Load {
                        phys_start: field(paddr)?,
                        virt_start: field(vaddr)?,
                        file_offset: p_offset,
                        file_size: p_filesz,
                        mem_size: p_memsz.max(p_filesz),
                    });
                }
                PT_NOTE => {
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
        }
        if loads.is_empty() {
            return Err(Error::bad_input("the ELF file has no PT_LOAD segment"));
        }
        Ok(ElfCore {
            class,
            endian,
            machine,
            loads,
            notes,
        })
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
