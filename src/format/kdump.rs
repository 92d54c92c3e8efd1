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

pub use crate::format::record::Model;
use crate::input::bytes::Endian;

/// The main header's signature, at its start.
pub const SIGNATURE: &[u8; 8] = b"KDUMP   ";
/// The header version vmsift writes (64-bit pfn fields in the sub-header).
pub const HEADER_VERSION: i32 = 6;
/// Bytes of one `page_desc`; its last 8 (`page_flags`) are always written as zero.
pub const PAGE_DESC_SIZE: u64 = 24;
/// Bytes of each of the six `new_utsname` strings.
pub const UTS_LEN: usize = 65;
/// Where `new_utsname` starts in the main header (after the signature and the version).
const UTSNAME_AT: usize = 12;

/// Header status bits besides the codec flag.
pub const STATUS_INCOMPLETE: u32 = 0x8;
/// Header status bit: the vmemmap of excluded pages is excluded too.
pub const STATUS_EXCLUDED_VMEMMAP: u32 = 0x10;

crate::record! {
    /// `disk_dump_header` after its signature and `utsname` (which are at the same place
    /// in every model): the i386 layout aligns the timeval to 4 bytes, LP64 to 8.
    MainHeader, MainHeaderFields, DISK_DUMP_HEADER {
        /// Dump header version.
        header_version: i32 = U32(8, 8),
        /// Crash time, seconds.
        tv_sec: i64 = Long(408, 404),
        /// Crash time, microseconds.
        tv_usec: i64 = Long(416, 408),
        /// Codec and incomplete bits.
        status: u32 = U32(424, 412),
        /// Page size.
        block_size: u32 = U32(428, 416),
        /// Blocks of the sub-header and the notes.
        sub_hdr_size: u32 = U32(432, 420),
        /// Blocks of both bitmaps.
        bitmap_blocks: u32 = U32(436, 424),
        /// Page frames, truncated to 32 bits (see `max_mapnr_64`).
        max_mapnr: u32 = U32(440, 428),
        /// Unused by kdump (zero).
        total_ram_blocks: u32 = U32(444, 432),
        /// Unused by kdump (zero).
        device_blocks: u32 = U32(448, 436),
        /// Unused by kdump (zero).
        written_blocks: u32 = U32(452, 440),
        /// Unused by kdump (zero).
        current_cpu: u32 = U32(456, 444),
        /// CPUs of the crashed machine.
        nr_cpus: u32 = U32(460, 448),
    }
}

crate::record! {
    /// `kdump_sub_header`: `long` fields follow the model, 64-bit ones are packed on 4
    /// bytes in the i386 layout.
    SubHeader, SubHeaderFields, KDUMP_SUB_HEADER {
        /// `phys_base` from VMCOREINFO.
        phys_base: u64 = Long(0, 0),
        /// The dump level (`-d`).
        dump_level: i32 = U32(8, 4),
        /// Non-zero in a file of a `--split` set.
        split: i32 = U32(12, 8),
        /// First pfn of a split file, as a `long` (see `start_pfn_64`).
        start_pfn: u64 = Long(16, 12),
        /// End pfn of a split file, as a `long` (see `end_pfn_64`).
        end_pfn: u64 = Long(24, 16),
        /// File offset of the VMCOREINFO note's descriptor.
        offset_vmcoreinfo: u64 = U64(32, 20),
        /// Bytes of VMCOREINFO.
        size_vmcoreinfo: u64 = Long(40, 28),
        /// File offset of the notes.
        offset_note: u64 = U64(48, 32),
        /// Bytes of the notes.
        size_note: u64 = Long(56, 40),
        /// File offset of the erase information (none: zero).
        offset_eraseinfo: u64 = U64(64, 44),
        /// Bytes of the erase information.
        size_eraseinfo: u64 = Long(72, 52),
        /// First pfn of a split file.
        start_pfn_64: u64 = U64(80, 56),
        /// End pfn of a split file.
        end_pfn_64: u64 = U64(88, 64),
        /// Page frames the bitmaps cover.
        max_mapnr_64: u64 = U64(96, 72),
    }
}

crate::record! {
    /// One `page_desc`, the same in every model.
    PageDesc, PageDescFields, PAGE_DESC {
        /// Absolute file offset of the page's data; 0 means "lost" in an incomplete dump.
        offset: u64 = U64(0, 0),
        /// Bytes of the page's data in the file.
        size: u32 = U32(8, 8),
        /// Codec flag of the data (0: stored as is).
        flags: u32 = U32(12, 12),
    }
}

impl Model {
    /// Bytes of `disk_dump_header` (the rest of block 0 is a hole).
    pub fn header_size(self) -> usize {
        DISK_DUMP_HEADER.nr_cpus.end(self)
    }

    /// Bytes of `kdump_sub_header`.
    pub fn sub_header_size(self) -> usize {
        KDUMP_SUB_HEADER.max_mapnr_64.end(self)
    }
}

impl MainHeader {
    /// The main header's bytes: signature, these fields and `utsname`.
    pub fn to_bytes(&self, model: Model, endian: Endian, utsname: &Utsname) -> Vec<u8> {
        let mut b = vec![0u8; model.header_size()];
        b[..SIGNATURE.len()].copy_from_slice(SIGNATURE);
        for (i, f) in utsname.fields.iter().enumerate() {
            b[UTSNAME_AT + i * UTS_LEN..UTSNAME_AT + (i + 1) * UTS_LEN].copy_from_slice(f);
        }
        self.put(model, endian, &mut b);
        b
    }

    /// The `utsname` of main header bytes `b`; `None` if `b` is too short.
    pub fn utsname(b: &[u8]) -> Option<Utsname> {
        Utsname::from_raw(b.get(UTSNAME_AT..)?)
    }
}

impl SubHeader {
    /// The sub-header's bytes.
    pub fn to_bytes(&self, model: Model, endian: Endian) -> Vec<u8> {
        let mut b = vec![0u8; model.sub_header_size()];
        self.put(model, endian, &mut b);
        b
    }
}

/// `new_utsname`: six NUL-padded 65-byte strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utsname {
    /// sysname, nodename, release, version, machine, domainname.
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
    /// Index of `sysname` ("Linux").
    pub const SYSNAME: usize = 0;
    /// Index of `nodename`.
    pub const NODENAME: usize = 1;
    /// Index of `release` ("6.1.0-13-amd64").
    pub const RELEASE: usize = 2;
    /// Index of `version`.
    pub const VERSION: usize = 3;
    /// Index of `machine` ("x86_64").
    pub const MACHINE: usize = 4;
    /// Index of `domainname`.
    pub const DOMAINNAME: usize = 5;

    /// Takes 6×65 bytes as the kernel stores them.
    pub fn from_raw(raw: &[u8]) -> Option<Utsname> {
        let mut u = Utsname::default();
        for (i, f) in u.fields.iter_mut().enumerate() {
            f.copy_from_slice(raw.get(i * UTS_LEN..(i + 1) * UTS_LEN)?);
        }
        Some(u)
    }

    /// Sets one field, cut to 64 bytes and NUL-padded.
    pub fn set(&mut self, field: usize, value: &str) {
        let f = &mut self.fields[field];
        *f = [0; UTS_LEN];
        let n = value.len().min(UTS_LEN - 1);
        f[..n].copy_from_slice(&value.as_bytes()[..n]);
    }

    /// One field up to its NUL, lossily as UTF-8.
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
    /// The crashed machine's C data model.
    pub model: Model,
    /// The crashed machine's byte order.
    pub endian: Endian,
    /// The crashed kernel's `utsname`.
    pub utsname: Utsname,
    /// Crash time, seconds since the epoch.
    pub crashtime: i64,
    /// Codec and incomplete bits.
    pub status: u32,
    /// Page size.
    pub block_size: u32,
    /// Blocks of the sub-header and the notes.
    pub sub_hdr_size: u32,
    /// Blocks of both bitmaps.
    pub bitmap_blocks: u32,
    /// Page frames the bitmaps cover.
    pub max_mapnr: u64,
    /// CPUs of the crashed machine.
    pub nr_cpus: u32,
    /// `phys_base` from VMCOREINFO.
    pub phys_base: u64,
    /// The dump level (`-d`).
    pub dump_level: i32,
    /// `Some((start_pfn, end_pfn))` in the files of a split set.
    pub split: Option<(u64, u64)>,
    /// File offset of the VMCOREINFO note's descriptor.
    pub offset_vmcoreinfo: u64,
    /// Bytes of VMCOREINFO.
    pub size_vmcoreinfo: u64,
    /// File offset of the notes.
    pub offset_note: u64,
    /// Bytes of the notes.
    pub size_note: u64,
    /// File offset of the erase information (none: zero).
    pub offset_eraseinfo: u64,
    /// Bytes of the erase information.
    pub size_eraseinfo: u64,
}

impl Header {
    /// The `disk_dump_header` fields.
    pub fn main_record(&self) -> MainHeader {
        MainHeader {
            header_version: HEADER_VERSION,
            tv_sec: self.crashtime,
            tv_usec: 0,
            status: self.status,
            block_size: self.block_size,
            sub_hdr_size: self.sub_hdr_size,
            bitmap_blocks: self.bitmap_blocks,
            max_mapnr: self.max_mapnr.min(u32::MAX as u64) as u32,
            nr_cpus: self.nr_cpus,
            ..MainHeader::default()
        }
    }

    /// The `kdump_sub_header` fields.
    pub fn sub_record(&self) -> SubHeader {
        let (split, start, end) = match self.split {
            Some((s, e)) => (1, s, e),
            None => (0, 0, 0),
        };
        SubHeader {
            phys_base: self.phys_base,
            dump_level: self.dump_level,
            split,
            start_pfn: start,
            end_pfn: end,
            offset_vmcoreinfo: self.offset_vmcoreinfo,
            size_vmcoreinfo: self.size_vmcoreinfo,
            offset_note: self.offset_note,
            size_note: self.size_note,
            offset_eraseinfo: self.offset_eraseinfo,
            size_eraseinfo: self.size_eraseinfo,
            start_pfn_64: start,
            end_pfn_64: end,
            max_mapnr_64: self.max_mapnr,
        }
    }

    /// `disk_dump_header` bytes.
    pub fn main_bytes(&self) -> Vec<u8> {
        self.main_record()
            .to_bytes(self.model, self.endian, &self.utsname)
    }

    /// `kdump_sub_header` bytes.
    pub fn sub_bytes(&self) -> Vec<u8> {
        self.sub_record().to_bytes(self.model, self.endian)
    }
}

/// Where everything goes in the file, computed from the page size, the number of pfns, the
/// notes and the number of pages with a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Page size.
    pub block_size: u64,
    /// Page frames the bitmaps cover.
    pub max_mapnr: u64,
    /// Blocks holding the sub-header and the notes.
    pub sub_hdr_blocks: u64,
    /// Bytes of one bitmap (a whole number of blocks).
    pub bitmap_len: u64,
    /// Pages with a descriptor.
    pub num_dumpable: u64,
}

impl Layout {
    /// The layout of a dump of `max_mapnr` pfns with `notes_len` bytes of notes and
    /// `num_dumpable` descriptors.
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

    /// The layout a header read back describes: `sub_hdr_blocks` and `bitmap_blocks` as
    /// stored (the two bitmaps share the bitmap blocks equally).
    pub fn of_header(
        block_size: u64,
        max_mapnr: u64,
        sub_hdr_blocks: u64,
        bitmap_blocks: u64,
        num_dumpable: u64,
    ) -> Layout {
        Layout {
            block_size,
            max_mapnr,
            sub_hdr_blocks,
            bitmap_len: bitmap_blocks * block_size / 2,
            num_dumpable,
        }
    }

    /// Where the sub-header starts (block 1).
    pub fn sub_header_offset(&self) -> u64 {
        self.block_size
    }

    /// Blocks of both bitmaps.
    pub fn bitmap_blocks(&self) -> u64 {
        2 * self.bitmap_len / self.block_size
    }

    /// Where the 1st bitmap (memory) starts.
    pub fn bitmap1_offset(&self) -> u64 {
        (1 + self.sub_hdr_blocks) * self.block_size
    }

    /// Where the 2nd bitmap (pages with a descriptor) starts.
    pub fn bitmap2_offset(&self) -> u64 {
        self.bitmap1_offset() + self.bitmap_len
    }

    /// Where the descriptors start.
    pub fn desc_offset(&self) -> u64 {
        (1 + self.sub_hdr_blocks + self.bitmap_blocks()) * self.block_size
    }

    /// Where the page data starts.
    pub fn data_offset(&self) -> u64 {
        self.desc_offset() + PAGE_DESC_SIZE * self.num_dumpable
    }
}

impl PageDesc {
    /// Writes the descriptor into `out` (at least [`PAGE_DESC_SIZE`] bytes), `page_flags`
    /// zero.
    pub fn write(&self, endian: Endian, out: &mut [u8]) {
        out[..PAGE_DESC_SIZE as usize].fill(0);
        self.put(Model::Lp64, endian, out);
    }

    /// Reads a descriptor from `b`; `None` if `b` is too short.
    pub fn read(endian: Endian, b: &[u8]) -> Option<PageDesc> {
        PageDesc::parse(Model::Lp64, endian, b)
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
