//! Reading kdump-compressed files: our own output in tests, and later the input of
//! re-filtering and `--dump-dmesg` on finished dumps. Untrusted like any input: every field
//! is checked before it sizes an allocation or an offset.

use std::fs::File;

use super::bytes::Endian;
use super::elf::ReadAt;
use crate::codec::{self, Codec};
use crate::error::{Error, Result};
use crate::format::kdump::{Model, PAGE_DESC_SIZE, PageDesc, SIGNATURE, Utsname};

/// What a reader finds for one page frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The page's bytes.
    Data(Vec<u8>),
    /// In the input's memory but left out of the dump (2nd bitmap clear).
    Excluded,
    /// Not memory of the crashed machine (1st bitmap clear).
    Hole,
    /// Has a descriptor whose data never made it to the file (incomplete dump).
    Lost,
}

#[derive(Debug, Clone)]
pub struct KdumpHeader {
    pub model: Model,
    pub endian: Endian,
    pub version: i32,
    pub utsname: Utsname,
    pub status: u32,
    pub block_size: u64,
    pub sub_hdr_size: u64,
    pub bitmap_blocks: u64,
    pub max_mapnr: u64,
    pub nr_cpus: u32,
    pub phys_base: u64,
    pub dump_level: i32,
    pub offset_note: u64,
    pub size_note: u64,
    pub offset_vmcoreinfo: u64,
    pub size_vmcoreinfo: u64,
    /// `Some((start_pfn, end_pfn))` for one file of a `--split` set: its descriptors
    /// cover only those pfns, counted from `start_pfn`.
    pub split: Option<(u64, u64)>,
}

/// A kdump-compressed file read through `R`: a `File`, or bytes in memory (`&[u8]`).
pub struct KdumpFile<R = File> {
    file: R,
    pub header: KdumpHeader,
    file_len: u64,
    bitmap1: Vec<u8>,
    bitmap2: Vec<u8>,
    /// Number of set bits in the 2nd bitmap before each 4096-bit block.
    rank: Vec<u64>,
    /// Set bits in the whole 2nd bitmap.
    dumpable: u64,
}

fn read_at<R: ReadAt>(file: &R, len: usize, offset: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io(e, format!("cannot read {what} at offset {offset:#x}")))?;
    Ok(buf)
}

impl<R: ReadAt> KdumpFile<R> {
    /// Opens a kdump-compressed file written for a 64-bit little-endian machine (the
    /// layouts vmsift writes today are checked in full; others are refused clearly).
    pub fn open(file: R) -> Result<KdumpFile<R>> {
        let file_len = file
            .size()
            .map_err(|e| Error::io(e, "cannot stat the dump"))?;
        let head = read_at(&file, 464.min(file_len as usize), 0, "the kdump header")?;
        if head.len() < 464 || &head[..8] != SIGNATURE {
            return Err(Error::bad_input(
                "not a kdump-compressed file (no \"KDUMP   \" signature)",
            ));
        }
        let e = Endian::Little;
        let short = || Error::bad_input("the kdump header is cut short");
        let u32_at = |o| e.u32(&head, o).ok_or_else(short);
        let version = u32_at(8)? as i32;
        let block_size = u32_at(428)? as u64;
        if !block_size.is_power_of_two() || !(1024..=1 << 20).contains(&block_size) {
            return Err(Error::bad_input(format!(
                "implausible block size {block_size}"
            )));
        }
        let sub = read_at(&file, 104, block_size, "the kdump sub-header")?;
        let sub_u64 = |o| e.u64(&sub, o).ok_or_else(short);
        let max_mapnr = if version >= 6 {
            sub_u64(96)?
        } else {
            u32_at(440)? as u64
        };
        let header = KdumpHeader {
            model: Model::Lp64,
            endian: e,
            version,
            utsname: Utsname::from_raw(&head[12..12 + 6 * 65]).ok_or_else(short)?,
            status: u32_at(424)?,
            block_size,
            sub_hdr_size: u32_at(432)? as u64,
            bitmap_blocks: u32_at(436)? as u64,
            max_mapnr,
            nr_cpus: u32_at(460)?,
            phys_base: sub_u64(0)?,
            dump_level: e.u32(&sub, 8).ok_or_else(short)? as i32,
            offset_vmcoreinfo: sub_u64(32)?,
            size_vmcoreinfo: sub_u64(40)?,
            offset_note: sub_u64(48)?,
            size_note: sub_u64(56)?,
            split: match e.u32(&sub, 12).ok_or_else(short)? {
                0 => None,
                _ if version >= 6 => Some((sub_u64(80)?, sub_u64(88)?)),
                _ => Some((sub_u64(16)?, sub_u64(24)?)),
            },
        };
        let bitmap_len = header.bitmap_blocks * block_size / 2;
        if header.bitmap_blocks == 0 || bitmap_len * 8 < max_mapnr {
            return Err(Error::bad_input(format!(
                "{} bitmap blocks cannot cover {max_mapnr} page frames",
                header.bitmap_blocks
            )));
        }
        let bitmap_off = (1 + header.sub_hdr_size) * block_size;
        if bitmap_off + 2 * bitmap_len > file_len {
            return Err(Error::bad_input(
                "the bitmaps run past the end of the file: truncated?",
            ));
        }
        let bitmap1 = read_at(&file, bitmap_len as usize, bitmap_off, "the 1st bitmap")?;
        let bitmap2 = read_at(
            &file,
            bitmap_len as usize,
            bitmap_off + bitmap_len,
            "the 2nd bitmap",
        )?;
        let mut rank = Vec::with_capacity(bitmap2.len() / 512 + 1);
        let mut total = 0u64;
        for chunk in bitmap2.chunks(512) {
            rank.push(total);
            total += chunk.iter().map(|b| b.count_ones() as u64).sum::<u64>();
        }
        Ok(KdumpFile {
            file,
            header,
            file_len,
            bitmap1,
            bitmap2,
            rank,
            dumpable: total,
        })
    }

    fn bit(map: &[u8], pfn: u64) -> bool {
        usize::try_from(pfn / 8)
            .ok()
            .and_then(|i| map.get(i))
            .is_some_and(|b| b >> (pfn % 8) & 1 == 1)
    }

    /// The raw notes copied from the vmcore.
    pub fn notes(&self) -> Result<Vec<u8>> {
        if self.header.size_note > 64 << 20 {
            return Err(Error::bad_input("implausibly large notes"));
        }
        read_at(
            &self.file,
            self.header.size_note as usize,
            self.header.offset_note,
            "the notes",
        )
    }

    /// Whether `pfn` has a descriptor in the dump (2nd bitmap).
    pub fn in_dump(&self, pfn: u64) -> bool {
        Self::bit(&self.bitmap2, pfn)
    }

    /// Set bits of the 2nd bitmap before `pfn` (0 past the end of the bitmap).
    fn rank_before(&self, pfn: u64) -> u64 {
        let Some(byte) = usize::try_from(pfn / 8)
            .ok()
            .filter(|&b| b < self.bitmap2.len())
        else {
            return self.dumpable;
        };
        let block = byte / 512;
        self.rank[block]
            + self.bitmap2[block * 512..byte]
                .iter()
                .map(|b| b.count_ones() as u64)
                .sum::<u64>()
            + (self.bitmap2[byte] & ((1u8 << (pfn % 8)) - 1)).count_ones() as u64
    }

    /// Runs `[start, end)` of set bits in the 1st bitmap (`second`: the 2nd), up to
    /// `max_mapnr`: the memory the dump describes, or the pages it holds.
    pub fn runs(&self, second: bool) -> Vec<(u64, u64)> {
        let map = if second { &self.bitmap2 } else { &self.bitmap1 };
        let max = self.header.max_mapnr;
        let mut out = Vec::new();
        let mut open: Option<u64> = None;
        for (i, &byte) in map.iter().enumerate() {
            let base = i as u64 * 8;
            if base >= max {
                break;
            }
            match (byte, open) {
                (0xff, Some(_)) | (0, None) => continue,
                _ => {}
            }
            for bit in 0..8 {
                let pfn = base + bit;
                let set = byte >> bit & 1 == 1 && pfn < max;
                match (set, open) {
                    (true, None) => open = Some(pfn),
                    (false, Some(start)) => {
                        out.push((start, pfn));
                        open = None;
                    }
                    _ => {}
                }
            }
        }
        if let Some(start) = open {
            out.push((start, max.min(map.len() as u64 * 8)));
        }
        out
    }

    /// Pages with a descriptor in the whole dump (set bits of the 2nd bitmap).
    pub fn dumpable(&self) -> u64 {
        self.dumpable
    }

    /// Reads `len` bytes at `offset` as they are in the file.
    pub fn raw(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if offset.saturating_add(len as u64) > self.file_len {
            return Err(Error::bad_input(format!(
                "{len} bytes at offset {offset:#x} run past the end of the file"
            )));
        }
        read_at(&self.file, len, offset, "dump data")
    }

    pub fn descriptor(&self, pfn: u64) -> Result<Option<PageDesc>> {
        if !Self::bit(&self.bitmap2, pfn) {
            return Ok(None);
        }
        let mut idx = self.rank_before(pfn);
        if let Some((start, end)) = self.header.split {
            if pfn < start || pfn >= end {
                return Err(Error::bad_input(format!(
                    "pfn {pfn:#x} is outside this split file's range {start:#x}-{end:#x}"
                )));
            }
            idx -= self.rank_before(start);
        }
        let h = &self.header;
        let at = (1 + h.sub_hdr_size + h.bitmap_blocks) * h.block_size + idx * PAGE_DESC_SIZE;
        let raw = read_at(&self.file, PAGE_DESC_SIZE as usize, at, "a page descriptor")?;
        Ok(PageDesc::read(h.endian, &raw))
    }

    pub fn read_page(&self, pfn: u64) -> Result<Page> {
        if !Self::bit(&self.bitmap1, pfn) {
            return Ok(Page::Hole);
        }
        let Some(desc) = self.descriptor(pfn)? else {
            return Ok(Page::Excluded);
        };
        if desc.offset == 0 {
            return Ok(Page::Lost);
        }
        let bs = self.header.block_size;
        if desc.size as u64 > bs || desc.offset.saturating_add(desc.size as u64) > self.file_len {
            return Err(Error::bad_input(format!(
                "pfn {pfn:#x}: descriptor {desc:?} points outside the file"
            )));
        }
        let data = read_at(&self.file, desc.size as usize, desc.offset, "page data")?;
        let mut page = vec![0u8; bs as usize];
        if desc.flags == 0 {
            codec::decompress(Codec::None, &data, &mut page)?;
        } else {
            let c = Codec::from_flag(desc.flags).ok_or_else(|| {
                Error::bad_input(format!(
                    "pfn {pfn:#x}: unknown page flags {:#x}",
                    desc.flags
                ))
            })?;
            codec::decompress(c, &data, &mut page)
                .map_err(|e| e.context(format!("pfn {pfn:#x}")))?;
        }
        Ok(Page::Data(page))
    }
}

/// A kdump file's pages as physical memory (for `--dump-dmesg` and re-filtering): pages
/// left out of the dump are errors.
pub struct KdumpPages<R = File> {
    pub file: KdumpFile<R>,
    buf: Vec<u8>,
}

impl<R: ReadAt> KdumpPages<R> {
    pub fn new(file: KdumpFile<R>) -> KdumpPages<R> {
        KdumpPages {
            file,
            buf: Vec::new(),
        }
    }
}

impl<R: ReadAt> super::PhysPages for KdumpPages<R> {
    fn page_size(&self) -> usize {
        self.file.header.block_size as usize
    }

    fn read_page(&mut self, pfn: u64) -> Result<&[u8]> {
        match self.file.read_page(pfn)? {
            Page::Data(d) => {
                self.buf = d;
                Ok(&self.buf)
            }
            other => Err(Error::bad_input(format!(
                "pfn {pfn:#x} is not in the dump ({other:?})"
            ))),
        }
    }
}
