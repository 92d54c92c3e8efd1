//! Reading kdump-compressed files: our own output in tests, and later the input of
//! re-filtering and `--dump-dmesg` on finished dumps. Untrusted like any input: every field
//! is checked before it sizes an allocation or an offset.

use std::fs::File;

use std::sync::Mutex;

use super::bytes::{self, Endian};
use super::elf::ReadAt;
use crate::codec::{self, Codec};
use crate::error::{Error, Result};
use crate::filter::{BitIter, Bitmap};
use crate::format::kdump::{
    Layout, MainHeader, Model, PAGE_DESC_SIZE, PageDesc, SIGNATURE, SubHeader, Utsname,
};

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

/// The headers of a kdump-compressed file, decoded: what the reader uses, and both records
/// as they are stored.
#[derive(Debug, Clone)]
pub struct KdumpHeader {
    /// The C data model the headers follow.
    pub model: Model,
    /// The byte order of every field.
    pub endian: Endian,
    /// `header_version`.
    pub version: i32,
    /// The crashed kernel's `utsname`.
    pub utsname: Utsname,
    /// Codec and incomplete bits.
    pub status: u32,
    /// Page size.
    pub block_size: u64,
    /// Blocks of the sub-header and the notes.
    pub sub_hdr_size: u64,
    /// Blocks of both bitmaps.
    pub bitmap_blocks: u64,
    /// Page frames the bitmaps cover (the 64-bit field from version 6 on).
    pub max_mapnr: u64,
    /// CPUs of the crashed machine.
    pub nr_cpus: u32,
    /// `phys_base` of the crashed kernel.
    pub phys_base: u64,
    /// The dump level the file was written with.
    pub dump_level: i32,
    /// File offset of the notes.
    pub offset_note: u64,
    /// Bytes of the notes.
    pub size_note: u64,
    /// File offset of VMCOREINFO.
    pub offset_vmcoreinfo: u64,
    /// Bytes of VMCOREINFO.
    pub size_vmcoreinfo: u64,
    /// `Some((start_pfn, end_pfn))` for one file of a `--split` set: its descriptors
    /// cover only those pfns, counted from `start_pfn`.
    pub split: Option<(u64, u64)>,
    /// The main header as stored.
    pub main: MainHeader,
    /// The sub-header as stored.
    pub sub: SubHeader,
}

impl KdumpHeader {
    /// Where the bitmaps, the descriptors (`num_dumpable` of them) and the data are.
    pub fn layout(&self, num_dumpable: u64) -> Layout {
        Layout::of_header(
            self.block_size,
            self.max_mapnr,
            self.sub_hdr_size,
            self.bitmap_blocks,
            num_dumpable,
        )
    }
}

/// Bytes of a bitmap read at a time (a [`Cursor`]'s window), and the granularity of the
/// counts of set bits kept for the whole 2nd bitmap: 64 KiB of bitmap covers 512 Ki page
/// frames (2 GiB of memory with 4 KiB pages), so a dump of 1 TiB keeps 512 counts.
const WINDOW: u64 = 64 << 10;
/// Counts of set bits inside a window, one per this many bytes of it.
const BLOCK: usize = 512;
/// Runs of memory (set bits of the 1st bitmap) a dump may describe: as many as the program
/// headers of an ELF vmcore (`elf::MAX_PHDRS`), which is where they came from.
pub const MAX_MEMORY_RUNS: usize = super::elf::MAX_PHDRS;
/// No machine vmsift knows has physical addresses beyond 2^52 (x86_64's and arm64's limit).
pub const MAX_PHYS_ADDR: u64 = 1 << 52;
/// The notes of a real vmcore are a few KiB per CPU.
const MAX_NOTES_SIZE: u64 = 64 << 20;
/// Header versions a reader accepts: 1 to 6 exist; a byte-swapped one is beyond this.
const MAX_HEADER_VERSION: i32 = 0xffff;

/// A kdump-compressed file read through `R`: a `File`, a flattened stream read in place, or
/// bytes in memory (`&[u8]`). The bitmaps are not loaded: each reader reads them a window
/// at a time through its own [`Cursor`] (the `&self` methods share one behind a lock).
pub struct KdumpFile<R = File> {
    file: R,
    /// The decoded headers.
    pub header: KdumpHeader,
    file_len: u64,
    /// Offsets of the two bitmaps and of the descriptor table.
    bitmap1_at: u64,
    bitmap2_at: u64,
    desc_at: u64,
    /// Bytes of each bitmap that cover pfns below `max_mapnr`.
    bitmap_used: u64,
    /// Set bits of the 2nd bitmap (below `max_mapnr`) before each window.
    rank: Vec<u64>,
    /// Set bits of the whole 2nd bitmap below `max_mapnr`.
    dumpable: u64,
    /// In a split file, the set bits before its first pfn (its descriptors start there).
    split_base: u64,
    /// The window of the `&self` readers.
    shared: Mutex<Cursor>,
}

/// One reader's window on both bitmaps: consecutive pfns cost one read per 512 Ki pfns.
#[derive(Debug, Default)]
pub struct Cursor {
    /// Index of the window held (`None`: nothing read yet).
    window: Option<u64>,
    map1: Vec<u8>,
    map2: Vec<u8>,
    /// Set bits of `map2` before each BLOCK-byte block of the window.
    sub: Vec<u64>,
}

fn read_at<R: ReadAt + ?Sized>(file: &R, len: usize, offset: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = bytes::zeroed(len, what)?;
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io(e, format!("cannot read {what} at offset {offset:#x}")))?;
    Ok(buf)
}

/// Reads the `len` bytes at `from` a window at a time, handing `f` each window and its
/// offset from `from`.
fn each_window<R: ReadAt + ?Sized>(
    file: &R,
    from: u64,
    len: u64,
    what: &str,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut at = 0;
    while at < len {
        buf.resize(WINDOW.min(len - at) as usize, 0);
        file.read_exact_at(&mut buf, from + at)
            .map_err(|e| Error::io(e, format!("cannot read {what}")))?;
        f(at, &buf)?;
        at += buf.len() as u64;
    }
    Ok(())
}

/// Set bits of `bytes` whose pfn (counted from `first_pfn`) is below `max`.
fn count_below(bytes: &[u8], first_pfn: u64, max: u64) -> u64 {
    let whole = (max.saturating_sub(first_pfn) / 8).min(bytes.len() as u64) as usize;
    let mut n: u64 = bytes[..whole].iter().map(|b| b.count_ones() as u64).sum();
    if let Some(&last) = bytes.get(whole) {
        let bits = max.saturating_sub(first_pfn + whole as u64 * 8).min(8);
        n += (last & ((1u16 << bits) - 1) as u8).count_ones() as u64;
    }
    n
}

/// The (model, byte order) whose main header is plausible, tried LP64 then i386, little
/// then big endian: a header version from 1 to 0xffff, a page size, and bitmap blocks that
/// cover `max_mapnr`. Read in the wrong byte order such a version is at least 0x10000; an
/// i386 header read as LP64 has its bitmap blocks on the unused `device_blocks` (zero as
/// makedumpfile and vmsift write it). So one reading passes.
fn detect(head: &[u8]) -> Option<(Model, Endian, MainHeader)> {
    let plausible = |m: &MainHeader| {
        let bs = m.block_size as u64;
        (1..=MAX_HEADER_VERSION).contains(&m.header_version)
            && bs.is_power_of_two()
            && (1024..=1 << 20).contains(&bs)
            && m.bitmap_blocks > 0
            && m.bitmap_blocks as u64 * bs / 2 * 8 >= m.max_mapnr as u64
    };
    Model::ALL.into_iter().find_map(|model| {
        [Endian::Little, Endian::Big]
            .into_iter()
            .find_map(|endian| {
                MainHeader::parse(model, endian, head)
                    .filter(plausible)
                    .map(|m| (model, endian, m))
            })
    })
}

/// Reads and decodes the main header and the sub-header of either model and byte order.
fn read_header<R: ReadAt>(file: &R, file_len: u64) -> Result<KdumpHeader> {
    let len = Model::Lp64.header_size().min(file_len as usize);
    let head = read_at(file, len, 0, "the kdump header")?;
    if head.len() < Model::Ilp32Packed.header_size() || !head.starts_with(SIGNATURE) {
        return Err(Error::bad_input(
            "not a kdump-compressed file (no \"KDUMP   \" signature)",
        ));
    }
    let Some((model, e, main)) = detect(&head) else {
        return Err(Error::bad_input(
            "the kdump header has no plausible version, block size and bitmap size in any layout (64- or 32-bit, either byte order)",
        ));
    };
    let short = || Error::bad_input("the kdump header is cut short");
    let block_size = main.block_size as u64;
    let raw = read_at(
        file,
        model.sub_header_size(),
        block_size,
        "the kdump sub-header",
    )?;
    let sub = SubHeader::parse(model, e, &raw).ok_or_else(short)?;
    let version = main.header_version;
    Ok(KdumpHeader {
        model,
        endian: e,
        version,
        utsname: MainHeader::utsname(&head).ok_or_else(short)?,
        status: main.status,
        block_size,
        sub_hdr_size: main.sub_hdr_size as u64,
        bitmap_blocks: main.bitmap_blocks as u64,
        max_mapnr: match version >= 6 {
            true => sub.max_mapnr_64,
            false => main.max_mapnr as u64,
        },
        nr_cpus: main.nr_cpus,
        phys_base: sub.phys_base,
        dump_level: sub.dump_level,
        offset_vmcoreinfo: sub.offset_vmcoreinfo,
        size_vmcoreinfo: sub.size_vmcoreinfo,
        offset_note: sub.offset_note,
        size_note: sub.size_note,
        split: match (sub.split, version >= 6) {
            (0, _) => None,
            (_, true) => Some((sub.start_pfn_64, sub.end_pfn_64)),
            (_, false) => Some((sub.start_pfn, sub.end_pfn)),
        },
        main,
        sub,
    })
}

impl<R: ReadAt> KdumpFile<R> {
    /// Opens a kdump-compressed file of either model (LP64, i386) and byte order. Every
    /// header field that places or sizes something is checked against the others and the
    /// file: a header that claims more than the file holds is refused here.
    pub fn open(file: R) -> Result<KdumpFile<R>> {
        let file_len = file
            .size()
            .map_err(|e| Error::io(e, "cannot stat the dump"))?;
        let header = read_header(&file, file_len)?;
        let (block_size, max_mapnr) = (header.block_size, header.max_mapnr);
        // u32 counts of blocks of at most 1 MiB: none of these products overflows.
        let bitmap_len = header.bitmap_blocks * block_size / 2;
        if header.bitmap_blocks == 0 || bitmap_len * 8 < max_mapnr {
            return Err(Error::bad_input(format!(
                "{} bitmap blocks cannot cover {max_mapnr} page frames",
                header.bitmap_blocks
            )));
        }
        if max_mapnr
            .checked_mul(block_size)
            .is_none_or(|end| end > MAX_PHYS_ADDR)
        {
            return Err(Error::bad_input(format!(
                "the header claims {max_mapnr} page frames of {block_size} bytes, beyond any machine's physical address space"
            )));
        }
        let layout = header.layout(0);
        let (bitmap1_at, bitmap2_at) = (layout.bitmap1_offset(), layout.bitmap2_offset());
        let desc_at = layout.desc_offset();
        // The bytes that cover max_mapnr must be stored (a flattened stream need not carry
        // the padding after them).
        let bitmap_used = max_mapnr.div_ceil(8);
        if desc_at > file_len
            || !file.holds(bitmap1_at, bitmap_used)
            || !file.holds(bitmap2_at, bitmap_used)
        {
            return Err(Error::bad_input(format!(
                "the header places {bitmap_len}-byte bitmaps at offset {bitmap1_at:#x}, but the file does not hold them: truncated?"
            )));
        }
        if let Some((start, end)) = header.split
            && (start > end || end > max_mapnr)
        {
            return Err(Error::bad_input(format!(
                "split range {start:#x}-{end:#x} is not inside the dump's {max_mapnr:#x} page frames"
            )));
        }
        let windows = bitmap_used.div_ceil(WINDOW);
        let mut rank = Vec::new();
        rank.try_reserve_exact(windows as usize)
            .map_err(|_| Error::bad_input("no memory for the counts of the 2nd bitmap"))?;
        let mut total = 0u64;
        each_window(
            &file,
            bitmap2_at,
            bitmap_used,
            "the 2nd bitmap",
            |at, window| {
                rank.push(total);
                total += count_below(window, at * 8, max_mapnr);
                Ok(())
            },
        )?;
        // Descriptors are read one at a time: one past the end of the file (a dump cut
        // short) is an error for its page only, and the rest stays readable.
        let mut dump = KdumpFile {
            file,
            header,
            file_len,
            bitmap1_at,
            bitmap2_at,
            desc_at,
            bitmap_used,
            rank,
            dumpable: total,
            split_base: 0,
            shared: Mutex::new(Cursor::default()),
        };
        if let Some((start, _)) = dump.header.split {
            let mut cur = Cursor::default();
            dump.split_base = match start < max_mapnr {
                true => {
                    dump.load(&mut cur, start)?;
                    dump.rank_before(&cur, start)
                }
                false => total,
            };
        }
        Ok(dump)
    }

    /// The raw notes copied from the vmcore: they lie in the sub-header's blocks.
    pub fn notes(&self) -> Result<Vec<u8>> {
        let h = &self.header;
        let inside = h.offset_note >= h.block_size
            && h.offset_note
                .checked_add(h.size_note)
                .is_some_and(|end| end <= self.bitmap1_at);
        if !inside || h.size_note > MAX_NOTES_SIZE {
            return Err(Error::bad_input(format!(
                "the notes ({} bytes at offset {:#x}) are not inside the sub-header's blocks",
                h.size_note, h.offset_note
            )));
        }
        read_at(&self.file, h.size_note as usize, h.offset_note, "the notes")
    }

    /// Loads the window holding `pfn` (below `max_mapnr`) into `cur`.
    fn load(&self, cur: &mut Cursor, pfn: u64) -> Result<()> {
        let w = pfn / 8 / WINDOW;
        if cur.window == Some(w) {
            return Ok(());
        }
        cur.window = None;
        let at = w * WINDOW;
        let len = WINDOW.min(self.bitmap_used - at) as usize;
        for (map, from) in [
            (&mut cur.map1, self.bitmap1_at),
            (&mut cur.map2, self.bitmap2_at),
        ] {
            map.resize(len, 0);
            self.file
                .read_exact_at(map, from + at)
                .map_err(|e| Error::io(e, format!("cannot read a bitmap at {:#x}", from + at)))?;
        }
        cur.sub.clear();
        let mut n = 0;
        for block in cur.map2.chunks(BLOCK) {
            cur.sub.push(n);
            n += block.iter().map(|b| b.count_ones() as u64).sum::<u64>();
        }
        cur.window = Some(w);
        Ok(())
    }

    /// Whether `pfn` is memory (1st bitmap) and whether it has a descriptor (2nd).
    fn bits(&self, cur: &mut Cursor, pfn: u64) -> Result<(bool, bool)> {
        if pfn >= self.header.max_mapnr {
            return Ok((false, false));
        }
        self.load(cur, pfn)?;
        let byte = (pfn / 8 % WINDOW) as usize;
        let bit = |map: &[u8]| map.get(byte).is_some_and(|b| b >> (pfn % 8) & 1 == 1);
        Ok((bit(&cur.map1), bit(&cur.map2)))
    }

    /// Set bits of the 2nd bitmap before `pfn`, whose window `cur` holds.
    fn rank_before(&self, cur: &Cursor, pfn: u64) -> u64 {
        let w = pfn / 8 / WINDOW;
        let byte = (pfn / 8 % WINDOW) as usize;
        let block = byte / BLOCK;
        let before = cur.map2.get(block * BLOCK..byte).unwrap_or(&[]);
        let partial = cur
            .map2
            .get(byte)
            .map_or(0, |b| b & ((1u8 << (pfn % 8)) - 1));
        self.rank.get(w as usize).copied().unwrap_or(self.dumpable)
            + cur.sub.get(block).copied().unwrap_or(0)
            + before.iter().map(|b| b.count_ones() as u64).sum::<u64>()
            + partial.count_ones() as u64
    }

    /// Runs `[start, end)` of set bits in the 1st bitmap: the memory the dump describes.
    /// More than [`MAX_MEMORY_RUNS`] is refused (no machine's memory map is that broken).
    pub fn memory_runs(&self) -> Result<Vec<(u64, u64)>> {
        let max = self.header.max_mapnr;
        let mut out = Vec::new();
        let mut open: Option<u64> = None;
        each_window(
            &self.file,
            self.bitmap1_at,
            self.bitmap_used,
            "the 1st bitmap",
            |at, window| {
                for (i, &byte) in window.iter().enumerate() {
                    if matches!((byte, open), (0xff, Some(_)) | (0, None)) {
                        continue;
                    }
                    let base = (at + i as u64) * 8;
                    for bit in 0..8 {
                        let pfn = base + bit;
                        match (byte >> bit & 1 == 1 && pfn < max, open) {
                            (true, None) => open = Some(pfn),
                            (false, Some(start)) => {
                                if out.len() == MAX_MEMORY_RUNS {
                                    return Err(Error::bad_input(format!(
                                        "the 1st bitmap describes more than {MAX_MEMORY_RUNS} separate ranges of memory"
                                    )));
                                }
                                out.push((start, pfn));
                                open = None;
                            }
                            _ => {}
                        }
                    }
                }
                Ok(())
            },
        )?;
        if let Some(start) = open {
            out.push((start, max));
        }
        Ok(out)
    }

    /// Sets in `b` the bits of the pfns that are memory and have a descriptor (both
    /// bitmaps), for the pfns `b` covers (its start is a multiple of 64, as for every
    /// cycle).
    pub fn mark_dumpable(&self, b: &mut Bitmap) -> Result<()> {
        let from = b.start() / 8;
        let to = b.end().min(self.header.max_mapnr).div_ceil(8);
        let mut map1 = vec![0u8; WINDOW as usize];
        let mut map2 = vec![0u8; WINDOW as usize];
        let mut at = from;
        while at < to {
            let len = WINDOW.min(to - at) as usize;
            for (map, base) in [(&mut map1, self.bitmap1_at), (&mut map2, self.bitmap2_at)] {
                self.file
                    .read_exact_at(&mut map[..len], base + at)
                    .map_err(|e| Error::io(e, "cannot read the dump's bitmaps"))?;
            }
            for (i, (&m1, &m2)) in map1[..len].iter().zip(&map2[..len]).enumerate() {
                let base = (at + i as u64) * 8;
                for bit in BitIter(u64::from(m1 & m2)) {
                    let pfn = base + u64::from(bit);
                    if pfn < self.header.max_mapnr {
                        b.set_range(pfn, pfn + 1, true);
                    }
                }
            }
            at += len as u64;
        }
        Ok(())
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

    /// The shared window, whatever a panic elsewhere left in it (it is only a cache).
    fn shared(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.shared.lock().unwrap_or_else(|poisoned| {
            let mut cur = poisoned.into_inner();
            cur.window = None;
            cur
        })
    }

    /// The descriptor of `pfn` (`None`: not in the dump), through the shared window.
    pub fn descriptor(&self, pfn: u64) -> Result<Option<PageDesc>> {
        self.descriptor_with(&mut self.shared(), pfn)
    }

    /// The descriptor of `pfn` (`None`: not in the dump), read through `cur`.
    pub fn descriptor_with(&self, cur: &mut Cursor, pfn: u64) -> Result<Option<PageDesc>> {
        if !self.bits(cur, pfn)?.1 {
            return Ok(None);
        }
        self.descriptor_of(cur, pfn).map(Some)
    }

    /// The descriptor of `pfn`, whose 2nd-bitmap bit is set and whose window `cur` holds.
    fn descriptor_of(&self, cur: &mut Cursor, pfn: u64) -> Result<PageDesc> {
        let mut idx = self.rank_before(cur, pfn);
        if let Some((start, end)) = self.header.split {
            if pfn < start || pfn >= end {
                return Err(Error::bad_input(format!(
                    "pfn {pfn:#x} is outside this split file's range {start:#x}-{end:#x}"
                )));
            }
            idx -= self.split_base.min(idx);
        }
        let at = self.desc_at + idx * PAGE_DESC_SIZE;
        let mut raw = [0u8; PAGE_DESC_SIZE as usize];
        self.file
            .read_exact_at(&mut raw, at)
            .map_err(|e| Error::io(e, format!("cannot read a page descriptor at {at:#x}")))?;
        PageDesc::read(self.header.endian, &raw)
            .ok_or_else(|| Error::bad_input("a page descriptor is cut short"))
    }

    /// What the dump holds for `pfn`, through the shared window.
    pub fn read_page(&self, pfn: u64) -> Result<Page> {
        self.read_page_with(&mut self.shared(), pfn)
    }

    /// What the dump holds for `pfn`, read through `cur`.
    pub fn read_page_with(&self, cur: &mut Cursor, pfn: u64) -> Result<Page> {
        let (memory, dumped) = self.bits(cur, pfn)?;
        if !memory {
            return Ok(Page::Hole);
        }
        if !dumped {
            return Ok(Page::Excluded);
        }
        let desc = self.descriptor_of(cur, pfn)?;
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
