//! The kdump-compressed ("diskdump") file format, header version 6, as makedumpfile writes it
//! and crash, libkdumpfile and drgn read it.
//!
//! ```text
//! block 0                 disk_dump_header (464 bytes LP64, 452 i386; rest of block is a hole)
//! block 1..               kdump_sub_header (104 / 80 bytes), then the ELF notes verbatim
//! 1 + sub_hdr_size        1st bitmap (pfn backed by the input), then 2nd (pfn has a descriptor)
//! + bitmap_blocks         page_desc[num_dumpable] {i64 offset, u32 size, u32 flags, u64 0}
//! right after             page data, unaligned; the shared zero page first when level & 1
//! ```
//! Everything is in the crashed machine's byte order and C struct layout.

use crate::input::bytes::Endian;

pub const SIGNATURE: &[u8; 8] = b"KDUMP   ";
pub const HEADER_VERSION: i32 = 6;
pub const PAGE_DESC_SIZE: u64 = 24;
pub const UTS_LEN: usize = 65;

/// Header status bits besides the codec flag.
pub const STATUS_INCOMPLETE: u32 = 0x8;
pub const STATUS_EXCLUDED_VMEMMAP: u32 = 0x10;

/// Which C data model the header structs follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// x86_64, arm64, ppc64, s390x, riscv64: 8-byte `long`, timeval of two i64.
    Lp64,
    /// i386: 4-byte `long`, timeval of two i32, 64-bit fields packed on 4 bytes.
    Ilp32Packed,
}

impl Model {
    fn long(self) -> usize {
        match self {
            Model::Lp64 => 8,
            Model::Ilp32Packed => 4,
        }
    }

    pub fn header_size(self) -> usize {
        match self {
            Model::Lp64 => 464,
            Model::Ilp32Packed => 452,
        }
    }

    pub fn sub_header_size(self) -> usize {
        match self {
            Model::Lp64 => 104,
            Model::Ilp32Packed => 80,
        }
    }
}

/// `new_utsname`: six NUL-padded 65-byte strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utsname {
    pub fields: [[u8; UTS_LEN]; 6],
}

impl Default for Utsname {
    fn default() -> Self {
        Utsname {
            fields: [[0; UTS_LEN]; 6],
        }
    }
}

impl Utsname {
    pub const SYSNAME: usize = 0;
    pub const NODENAME: usize = 1;
    pub const RELEASE: usize = 2;
    pub const VERSION: usize = 3;
    pub const MACHINE: usize = 4;
    pub const DOMAINNAME: usize = 5;

    /// Takes 6×65 bytes as the kernel stores them.
    pub fn from_raw(raw: &[u8]) -> Option<Utsname> {
        let mut u = Utsname::default();
        for (i, f) in u.fields.iter_mut().enumerate() {
            f.copy_from_slice(raw.get(i * UTS_LEN..(i + 1) * UTS_LEN)?);
        }
        Some(u)
    }

    pub fn set(&mut self, field: usize, value: &str) {
        let f = &mut self.fields[field];
        *f = [0; UTS_LEN];
        let n = value.len().min(UTS_LEN - 1);
        f[..n].copy_from_slice(&value.as_bytes()[..n]);
    }

    pub fn get(&self, field: usize) -> String {
        let f = &self.fields[field];
        let end = f.iter().position(|&b| b == 0).unwrap_or(UTS_LEN);
        String::from_utf8_lossy(&f[..end]).into_owned()
    }

    /// Plausible kernel strings: every field NUL-terminated, printable ASCII before the NUL,
    /// and a non-empty release. Guards against reading garbage from a bad translation.
    pub fn looks_sane(&self) -> bool {
        let ok = self.fields.iter().all(|f| {
            let end = f.iter().position(|&b| b == 0);
            end.is_some_and(|e| f[..e].iter().all(|&b| (0x20..0x7f).contains(&b)))
        });
        ok && !self.get(Self::RELEASE).is_empty()
    }
}

/// Everything that goes into the main header and the sub-header.
#[derive(Debug, Clone)]
pub struct Header {
    pub model: Model,
    pub endian: Endian,
    pub utsname: Utsname,
    pub crashtime: i64,
    pub status: u32,
    pub block_size: u32,
    pub sub_hdr_size: u32,
    pub bitmap_blocks: u32,
    pub max_mapnr: u64,
    pub nr_cpus: u32,
    pub phys_base: u64,
    pub dump_level: i32,
    /// `Some((start_pfn, end_pfn))` in the files of a split set.
    pub split: Option<(u64, u64)>,
    pub offset_vmcoreinfo: u64,
    pub size_vmcoreinfo: u64,
    pub offset_note: u64,
    pub size_note: u64,
    pub offset_eraseinfo: u64,
    pub size_eraseinfo: u64,
}

/// Appends fields one after another with the model's sizes (both models are packed:
/// LP64 fields fall on natural alignment in this order, i386 aligns 8-byte values to 4).
struct Packer {
    buf: Vec<u8>,
    endian: Endian,
}

impl Packer {
    fn u32(&mut self, v: u32) {
        let at = self.buf.len();
        self.buf.resize(at + 4, 0);
        self.endian.put_u32(&mut self.buf, at, v);
    }

    fn u64(&mut self, v: u64) {
        let at = self.buf.len();
        self.buf.resize(at + 8, 0);
        self.endian.put_u64(&mut self.buf, at, v);
    }

    fn long(&mut self, v: u64, model: Model) {
        if model.long() == 8 {
            self.u64(v)
        } else {
            self.u32(v as u32)
        }
    }
}

impl Header {
    /// `disk_dump_header` bytes.
    pub fn main_bytes(&self) -> Vec<u8> {
        let mut p = Packer {
            buf: Vec::with_capacity(self.model.header_size()),
            endian: self.endian,
        };
        p.buf.extend_from_slice(SIGNATURE);
        p.u32(HEADER_VERSION as u32);
        for f in &self.utsname.fields {
            p.buf.extend_from_slice(f);
        }
        // struct timeval is aligned to its `long` members.
        let align = self.model.long();
        while !p.buf.len().is_multiple_of(align) {
            p.buf.push(0);
        }
        p.long(self.crashtime as u64, self.model);
        p.long(0, self.model); // tv_usec
        p.u32(self.status);
        p.u32(self.block_size);
        p.u32(self.sub_hdr_size);
        p.u32(self.bitmap_blocks);
        p.u32(self.max_mapnr.min(u32::MAX as u64) as u32);
        for _ in 0..4 {
            p.u32(0); // total_ram_blocks, device_blocks, written_blocks, current_cpu
        }
        p.u32(self.nr_cpus);
        debug_assert_eq!(p.buf.len(), self.model.header_size());
        p.buf
    }

    /// `kdump_sub_header` bytes.
    pub fn sub_bytes(&self) -> Vec<u8> {
        let m = self.model;
        let mut p = Packer {
            buf: Vec::with_capacity(m.sub_header_size()),
            endian: self.endian,
        };
        let (split, start, end) = match self.split {
            Some((s, e)) => (1, s, e),
            None => (0, 0, 0),
        };
        p.long(self.phys_base, m);
        p.u32(self.dump_level as u32);
        p.u32(split);
        // The legacy pfn fields are `unsigned long`: truncated as the C assignment does.
        let trunc = |v: u64| if m.long() == 8 { v } else { v & 0xffff_ffff };
        p.long(trunc(start), m);
        p.long(trunc(end), m);
        p.u64(self.offset_vmcoreinfo);
        p.long(self.size_vmcoreinfo, m);
        p.u64(self.offset_note);
        p.long(self.size_note, m);
        p.u64(self.offset_eraseinfo);
        p.long(self.size_eraseinfo, m);
        p.u64(start);
        p.u64(end);
        p.u64(self.max_mapnr);
        debug_assert_eq!(p.buf.len(), m.sub_header_size());
        p.buf
    }
}

/// Where everything goes in the file, computed from the page size, the number of pfns, the
/// notes and the number of pages with a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub block_size: u64,
    pub max_mapnr: u64,
    /// Blocks holding the sub-header and the notes.
    pub sub_hdr_blocks: u64,
    /// Bytes of one bitmap (a whole number of blocks).
    pub bitmap_len: u64,
    pub num_dumpable: u64,
}

impl Layout {
    pub fn new(
        model: Model,
        block_size: u64,
        max_mapnr: u64,
        notes_len: u64,
        num_dumpable: u64,
    ) -> Layout {
        let sub = model.sub_header_size() as u64 + notes_len;
        Layout {
            block_size,
            max_mapnr,
            sub_hdr_blocks: sub.div_ceil(block_size),
            bitmap_len: max_mapnr.div_ceil(8).div_ceil(block_size) * block_size,
            num_dumpable,
        }
    }

    pub fn sub_header_offset(&self) -> u64 {
        self.block_size
    }

    pub fn bitmap_blocks(&self) -> u64 {
        2 * self.bitmap_len / self.block_size
    }

    pub fn bitmap1_offset(&self) -> u64 {
        (1 + self.sub_hdr_blocks) * self.block_size
    }

    pub fn bitmap2_offset(&self) -> u64 {
        self.bitmap1_offset() + self.bitmap_len
    }

    pub fn desc_offset(&self) -> u64 {
        (1 + self.sub_hdr_blocks + self.bitmap_blocks()) * self.block_size
    }

    pub fn data_offset(&self) -> u64 {
        self.desc_offset() + PAGE_DESC_SIZE * self.num_dumpable
    }
}

/// One `page_desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PageDesc {
    /// Absolute file offset of the page's data; 0 means "lost" in an incomplete dump.
    pub offset: u64,
    pub size: u32,
    pub flags: u32,
}

impl PageDesc {
    pub fn write(&self, endian: Endian, out: &mut [u8]) {
        endian.put_u64(out, 0, self.offset);
        endian.put_u32(out, 8, self.size);
        endian.put_u32(out, 12, self.flags);
        endian.put_u64(out, 16, 0);
    }

    pub fn read(endian: Endian, b: &[u8]) -> Option<PageDesc> {
        Some(PageDesc {
            offset: endian.u64(b, 0)?,
            size: endian.u32(b, 8)?,
            flags: endian.u32(b, 12)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(model: Model) -> Header {
        let mut uts = Utsname::default();
        uts.set(Utsname::SYSNAME, "Linux");
        uts.set(Utsname::MACHINE, "x86_64");
        Header {
            model,
            endian: Endian::Little,
            utsname: uts,
            crashtime: 1_795_263_890,
            status: 2,
            block_size: 4096,
            sub_hdr_size: 2,
            bitmap_blocks: 10,
            max_mapnr: 163_805,
            nr_cpus: 2,
            phys_base: 0x3e0_0000,
            dump_level: 1,
            split: None,
            offset_vmcoreinfo: 0x1348,
            size_vmcoreinfo: 0xce2,
            offset_note: 0x1068,
            size_note: 0xfc4,
            offset_eraseinfo: 0,
            size_eraseinfo: 0,
        }
    }

    /// Offsets from makedumpfile's own LP64 output (diskdump_mod.h layout).
    #[test]
    fn lp64_offsets_match_makedumpfile() {
        let h = header(Model::Lp64);
        let m = h.main_bytes();
        assert_eq!(m.len(), 464);
        assert_eq!(&m[0..8], b"KDUMP   ");
        assert_eq!(i32::from_le_bytes(m[8..12].try_into().expect("4")), 6);
        assert_eq!(&m[12..17], b"Linux");
        assert_eq!(&m[12 + 4 * 65..12 + 4 * 65 + 6], b"x86_64");
        assert_eq!(
            u64::from_le_bytes(m[408..416].try_into().expect("8")),
            1_795_263_890
        );
        let u32_at = |o: usize| u32::from_le_bytes(m[o..o + 4].try_into().expect("4"));
        assert_eq!(u32_at(424), 2);
        assert_eq!(u32_at(428), 4096);
        assert_eq!(u32_at(432), 2);
        assert_eq!(u32_at(436), 10);
        assert_eq!(u32_at(440), 163_805);
        assert_eq!(u32_at(460), 2);
        let s = h.sub_bytes();
        assert_eq!(s.len(), 104);
        let u64_at = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().expect("8"));
        assert_eq!(u64_at(0), 0x3e0_0000);
        assert_eq!(u64_at(32), 0x1348);
        assert_eq!(u64_at(40), 0xce2);
        assert_eq!(u64_at(48), 0x1068);
        assert_eq!(u64_at(56), 0xfc4);
        assert_eq!(u64_at(96), 163_805);
    }

    #[test]
    fn i386_offsets() {
        let h = header(Model::Ilp32Packed);
        let m = h.main_bytes();
        assert_eq!(m.len(), 452);
        assert_eq!(
            u32::from_le_bytes(m[404..408].try_into().expect("4")),
            1_795_263_890
        );
        assert_eq!(u32::from_le_bytes(m[412..416].try_into().expect("4")), 2);
        assert_eq!(u32::from_le_bytes(m[448..452].try_into().expect("4")), 2);
        let s = h.sub_bytes();
        assert_eq!(s.len(), 80);
        assert_eq!(u64::from_le_bytes(s[20..28].try_into().expect("8")), 0x1348);
        assert_eq!(u64::from_le_bytes(s[32..40].try_into().expect("8")), 0x1068);
        assert_eq!(
            u64::from_le_bytes(s[72..80].try_into().expect("8")),
            163_805
        );
    }

    #[test]
    fn layout_matches_makedumpfile_6_1() {
        // makedumpfile 1.7.2 on the Debian 6.1 vmcore: sub_hdr_size 2, bitmap_blocks 10.
        let l = Layout::new(Model::Lp64, 4096, 163_805, 0xfc4, 1000);
        assert_eq!(l.sub_hdr_blocks, 2);
        assert_eq!(l.bitmap_blocks(), 10);
        assert_eq!(l.bitmap1_offset(), 3 * 4096);
        assert_eq!(l.desc_offset(), 13 * 4096);
        assert_eq!(l.data_offset(), 13 * 4096 + 24_000);
    }
}
