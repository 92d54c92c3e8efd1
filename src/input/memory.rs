//! Physical memory of the crashed machine as stored in an ELF vmcore: page frame number in,
//! page bytes out.
//!
//! Whole pages inside one PT_LOAD are served zero-copy from a read-only mmap window (4 MiB
//! by default, 1 MiB over a regular file; never crossing a segment's end), which is how
//! /proc/vmcore is read fast: its read() path maps and unmaps the old kernel's memory on
//! every call. Pages at segment edges, pages whose file offset is not page-aligned, and
//! every page after an mmap failure (or with `--non-mmap`) are assembled with pread,
//! zero-filled where the input has nothing.
//!
//! The page copy reads a regular file a run of consecutive whole pages at a time: mapped
//! and populated by one MADV_POPULATE_READ (`map_run`), which neither copies the pages
//! (as pread does) nor faults them in one by one (as reading a plain mapping does); on
//! this project's VM each of those two was the slower on some day. Without
//! MADV_POPULATE_READ (Linux < 5.14) and under `--non-mmap`, a run is one pread
//! (`read_run`). A run that cannot be read is read again page by page with pread, never
//! through the mapping, where an unreadable page is a SIGBUS. Page-table
//! entries come from the window when it holds them, else from pread (`read_small`), so a
//! walk never moves the window away from the data being read.

use std::fs::File;
use std::os::unix::fs::FileExt;

use memmap2::{Mmap, MmapOptions};

use super::elf::Load;
use crate::error::{Error, Result};

/// Default size of one mmap window, as makedumpfile's MAP_REGION.
pub const DEFAULT_WINDOW: usize = 4 << 20;
/// The window over a regular file, whose pages count in the peak RSS while mapped: 1 MiB
/// windows took the same time as 4 MiB ones (big61, `-l -d 31` and `-l -d 1`) and cut the
/// peak RSS from 14 to 8 MiB.
const FILE_WINDOW: usize = 1 << 20;

struct Window {
    map: Mmap,
    /// File offset of the first mapped byte.
    start: u64,
}

/// The memory of an ELF vmcore, read through mmap windows or pread.
pub struct ElfMemory {
    file: File,
    page_size: usize,
    /// PT_LOADs with file bytes, sorted by physical start.
    loads: Vec<Load>,
    /// Index into `loads` of the last segment used (accesses are mostly sequential).
    last: usize,
    use_mmap: bool,
    /// Page data in runs (`map_run`, else `read_run`): regular files, and any input under
    /// `--non-mmap`. /proc/vmcore is mapped page by page instead: the kernel maps its
    /// pages once per window there, while each read() of it maps and unmaps every page.
    bulk: bool,
    /// Runs of a regular file are mapped and populated with one MADV_POPULATE_READ each
    /// (`map_run`); off under `--non-mmap`, and from the first kernel without it (< 5.14).
    populate: bool,
    window_size: usize,
    window: Option<Window>,
    scratch: Vec<u8>,
    /// Set when mmap failed and we fell back to pread; reported once by the caller.
    pub mmap_failure: Option<String>,
}

impl ElfMemory {
    /// Memory read from `file` through its PT_LOADs `loads` (those without file bytes
    /// are dropped), mapped when `use_mmap`.
    pub fn new(file: File, loads: &[Load], page_size: usize, use_mmap: bool) -> ElfMemory {
        let mut loads: Vec<Load> = loads.iter().copied().filter(|l| l.file_size > 0).collect();
        loads.sort_by_key(|l| l.phys_start);
        // A regular file not on procfs: /proc/vmcore is a regular file too, and stays mapped
        // page by page.
        let regular = file.metadata().is_ok_and(|m| m.file_type().is_file())
            && !nix::sys::statfs::fstatfs(&file)
                .is_ok_and(|f| f.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC);
        ElfMemory {
            file,
            page_size,
            loads,
            last: 0,
            use_mmap,
            bulk: regular || !use_mmap,
            populate: regular && use_mmap,
            // A window is a whole number of pages (page sizes up to 1 MiB are accepted).
            window_size: if regular { FILE_WINDOW } else { DEFAULT_WINDOW }.max(page_size),
            window: None,
            scratch: vec![0; page_size],
            mmap_failure: None,
        }
    }

    /// Another reader of the same input with its own window (for a second consumer, such
    /// as the mem_map scan beside the page copy, or a worker thread).
    pub fn duplicate(&self) -> Result<ElfMemory> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io(e, "cannot duplicate the input's file descriptor"))?;
        Ok(ElfMemory::new(
            file,
            &self.loads,
            self.page_size,
            self.use_mmap,
        ))
    }

    /// Bytes of a page.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Whether page data should be read in runs with `read_run` (see `bulk`).
    pub fn bulk_reads(&self) -> bool {
        self.bulk
    }

    /// The segment whose file-backed part holds the whole page at `pa`, if there is one.
    fn whole_page_segment(&mut self, pa: u64) -> Option<Load> {
        let end = pa.checked_add(self.page_size as u64)?;
        let fits = |l: &Load| l.phys_start <= pa && end <= l.file_phys_end();
        if let Some(l) = self.loads.get(self.last)
            && fits(l)
        {
            return Some(*l);
        }
        // Segments are sorted by start: the candidate is the last one starting at or below
        // pa. Segments may overlap (the kernel text segment lies inside the RAM segment of
        // a vmcore), so when that one does not hold the page, an earlier one may.
        let i = self.loads.partition_point(|l| l.phys_start <= pa);
        let found = self.loads[..i].iter().rposition(fits)?;
        self.last = found;
        Some(self.loads[found])
    }

    /// Maps the window that starts at the page holding `offset` (reads go forward: pages in
    /// pfn order, mem_map in spans that may cross any alignment) within the segment `seg`.
    fn map_window(&mut self, seg: &Load, offset: u64) -> std::io::Result<()> {
        let ps = self.page_size as u64;
        let w = self.window_size as u64;
        // Page-aligned file range of the segment's whole pages.
        let seg_lo = seg.file_offset.div_ceil(ps) * ps;
        let seg_hi = (seg.file_offset + seg.file_size) / ps * ps;
        let start = (offset - offset % ps).max(seg_lo);
        let end = (start + w).min(seg_hi);
        self.window = None;
        // SAFETY: the mapping is private and read-only, and the slices we hand out borrow
        // `self`, so they cannot outlive it. The remaining hazard of any file mmap is another
        // process truncating or rewriting the file while we read it; /proc/vmcore cannot be
        // changed, and for a regular input file this is the same contract makedumpfile has.
        let map = unsafe {
            MmapOptions::new()
                .offset(start)
                .len((end - start) as usize)
                .map_copy_read_only(&self.file)?
        };
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::Sequential);
        self.window = Some(Window { map, start });
        Ok(())
    }

    /// Where the `len` bytes at `pa` start in the mmap window, mapping the window if
    /// needed; `None` when they are not all file bytes of one segment within one window,
    /// or mmap is off. An mmap failure turns mmap off for the rest of the run (reported
    /// once through `mmap_failure`).
    fn window_index(&mut self, pa: u64, len: usize) -> Option<usize> {
        if !self.use_mmap || len == 0 {
            return None;
        }
        let ps = self.page_size as u64;
        let end = pa.checked_add(len as u64)?;
        let seg = self.whole_page_segment(pa - pa % ps)?;
        if end > seg.file_phys_end() {
            return None;
        }
        let offset = seg.file_offset + (pa - seg.phys_start);
        let inside =
            |w: &Window| offset >= w.start && offset + len as u64 <= w.start + w.map.len() as u64;
        if !self.window.as_ref().is_some_and(inside)
            && let Err(e) = self.map_window(&seg, offset)
        {
            self.use_mmap = false;
            self.mmap_failure = Some(format!(
                "mmap of the input failed at offset {offset:#x} ({e}); reading with pread instead"
            ));
            return None;
        }
        let w = self.window.as_ref().filter(|w| inside(w))?;
        Some((offset - w.start) as usize)
    }

    /// `len` bytes of physical memory at `pa` straight from the mmap window, when they lie
    /// in one segment and one window (no copy); `None` otherwise (read them page by page).
    pub fn span(&mut self, pa: u64, len: usize) -> Option<&[u8]> {
        let at = self.window_index(pa, len)?;
        self.window.as_ref()?.map.get(at..at + len)
    }

    /// Returns the bytes of page frame `pfn`: zeros where the input has none of the page's
    /// bytes but some; an error when it has none at all.
    pub fn read_page(&mut self, pfn: u64) -> Result<&[u8]> {
        let pa = pfn
            .checked_mul(self.page_size as u64)
            .ok_or_else(|| Error::bad_input(format!("pfn {pfn:#x} is out of range")))?;
        let mapped_at = self.window_index(pa, self.page_size);
        // Decided first, borrowed after: returning a borrow from inside a branch would keep
        // `self` borrowed on the fallback path too.
        if mapped_at.is_none() {
            self.assemble_page(pa)?;
        }
        match (mapped_at, &self.window) {
            (Some(at), Some(w)) => Ok(&w.map[at..at + self.page_size]),
            _ => Ok(&self.scratch),
        }
    }

    /// `buf.len()` bytes at `pa` within one page: from the mmap window when it holds them,
    /// else with pread, without moving the window. Walking the page tables this way keeps
    /// the window on the data being read (mem_map) instead of remapping 4 MiB twice for
    /// every table entry.
    pub fn read_small(&mut self, pa: u64, buf: &mut [u8]) -> Option<()> {
        let ps = self.page_size as u64;
        let end = pa.checked_add(buf.len() as u64)?;
        if buf.len() as u64 > ps || pa / ps != (end - 1) / ps {
            return None;
        }
        if let Some(seg) = self.whole_page_segment(pa / ps * ps) {
            let offset = seg.file_offset + (pa - seg.phys_start);
            let in_window = self.window.as_ref().and_then(|w| {
                let at = usize::try_from(offset.checked_sub(w.start)?).ok()?;
                w.map.get(at..at.checked_add(buf.len())?)
            });
            match in_window {
                Some(b) => buf.copy_from_slice(b),
                None => self.file.read_exact_at(buf, offset).ok()?,
            }
            return Some(());
        }
        // Pages the input has only part of: assembled with pread, as always.
        super::small_from_page(self, pa, buf)
    }

    /// The physical address of pfn `pfn` and where the `len` bytes from it start in the
    /// file, when all of them are file bytes of one segment that no other segment starts
    /// inside (`read_run` and `map_run` read such runs in one go).
    fn run_offset(&mut self, pfn: u64, len: usize) -> Option<(u64, u64)> {
        let pa = pfn.checked_mul(self.page_size as u64)?;
        let end = pa.checked_add(len as u64)?;
        let seg = self.whole_page_segment(pa)?;
        let starting_inside = self.loads.partition_point(|l| l.phys_start < end)
            - self.loads.partition_point(|l| l.phys_start <= pa);
        if end > seg.file_phys_end() || starting_inside != 0 {
            return None;
        }
        Some((pa, seg.file_offset + (pa - seg.phys_start)))
    }

    /// The `pages` whole pages from `pfn`, straight from the mmap window after one
    /// MADV_POPULATE_READ has mapped them all (no copy as with pread, no page fault per
    /// page as with plain mmap reads; on this project's VM each of those two was the slower
    /// one on some day). `Ok(None)` when the run cannot be mapped whole or populating is
    /// unavailable (read it with `read_run`). A read error while populating is returned as
    /// an error, before any byte of the mapping is touched (touching a page the file cannot
    /// deliver would be a SIGBUS): the caller finds the unreadable pages with pread.
    pub fn map_run(&mut self, pfn: u64, pages: usize) -> Result<Option<&[u8]>> {
        if !self.populate {
            return Ok(None);
        }
        let Some(len) = pages.checked_mul(self.page_size) else {
            return Ok(None);
        };
        let Some((pa, offset)) = self.run_offset(pfn, len) else {
            return Ok(None);
        };
        let Some(at) = self.window_index(pa, len) else {
            return Ok(None);
        };
        let Some(w) = &self.window else {
            return Ok(None);
        };
        match w.map.advise_range(memmap2::Advice::PopulateRead, at, len) {
            Ok(()) => Ok(w.map.get(at..at + len)),
            // Kernels before 5.14 do not know MADV_POPULATE_READ: pread from now on.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::EINVAL | nix::libc::ENOSYS)
                ) =>
            {
                self.populate = false;
                Ok(None)
            }
            Err(e) => Err(Error::io(
                e,
                format!("cannot read physical address {pa:#x} (file offset {offset:#x})"),
            )),
        }
    }

    /// Reads the whole pages from `pfn` on that fill `buf` with one pread, when all of them
    /// are file bytes of one segment that no other segment starts inside; `Ok(false)` when
    /// they are not (read them page by page). An I/O error is returned as such: the caller
    /// goes page by page to find out which pages are unreadable.
    pub fn read_run(&mut self, pfn: u64, buf: &mut [u8]) -> Result<bool> {
        let Some((pa, offset)) = self.run_offset(pfn, buf.len()) else {
            return Ok(false);
        };
        self.file.read_exact_at(buf, offset).map_err(|e| {
            Error::io(
                e,
                format!("cannot read physical address {pa:#x} (file offset {offset:#x})"),
            )
        })?;
        Ok(true)
    }

    /// Builds the page at `pa` piece by piece from every segment that has bytes of it.
    fn assemble_page(&mut self, pa: u64) -> Result<()> {
        let end = pa.saturating_add(self.page_size as u64);
        self.scratch.fill(0);
        let mut any = false;
        for l in &self.loads {
            let lo = l.phys_start.max(pa);
            let hi = l.file_phys_end().min(end);
            if lo >= hi {
                continue;
            }
            any = true;
            let dst = &mut self.scratch[(lo - pa) as usize..(hi - pa) as usize];
            let offset = l.file_offset + (lo - l.phys_start);
            self.file.read_exact_at(dst, offset).map_err(|e| {
                Error::io(
                    e,
                    format!("cannot read physical address {lo:#x} (file offset {offset:#x})"),
                )
            })?;
        }
        if any {
            Ok(())
        } else {
            Err(Error::bad_input(format!(
                "physical address {pa:#x} is not in the vmcore"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(bytes: &[u8]) -> File {
        let mut f = tempfile();
        f.write_all(bytes).expect("write temp");
        f
    }

    fn tempfile() -> File {
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "vmsift-mem-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create temp");
        let _ = std::fs::remove_file(&path);
        f
    }

    #[test]
    fn proc_files_are_mapped_regular_files_read_in_runs() {
        // /proc/vmcore's read() maps and unmaps every page: procfs files stay on mmap.
        let proc = File::open("/proc/self/stat").expect("a procfs file");
        assert!(!ElfMemory::new(proc, &[], 4096, true).bulk_reads());
        let proc = File::open("/proc/self/stat").expect("a procfs file");
        assert!(
            ElfMemory::new(proc, &[], 4096, false).bulk_reads(),
            "--non-mmap"
        );
        assert!(ElfMemory::new(temp_file(&[0; 16]), &[], 4096, true).bulk_reads());
    }

    #[test]
    fn overlapping_segments() {
        // A vmcore's kernel text segment lies inside its RAM segment: RAM 0..0x4000 at
        // offset 0, "text" 0x1000..0x2000 again at offset 0x4000.
        let mut bytes: Vec<u8> = (0..0x4000u32).map(|i| (i / 7) as u8).collect();
        bytes.extend_from_within(0x1000..0x2000);
        let load = |phys_start, file_offset, size| Load {
            phys_start,
            virt_start: 0,
            file_offset,
            file_size: size,
            mem_size: size,
        };
        let loads = [load(0, 0, 0x4000), load(0x1000, 0x4000, 0x1000)];
        let mut mem = ElfMemory::new(temp_file(&bytes), &loads, 4096, true);
        for pfn in [3, 1, 2, 0] {
            let want = &bytes[pfn as usize * 4096..(pfn as usize + 1) * 4096];
            assert_eq!(mem.read_page(pfn).expect("page"), want, "pfn {pfn}");
        }
        // Runs: whole pages of one segment in one pread; a run that another segment
        // starts inside, or that leaves the file bytes, goes page by page.
        assert!(mem.bulk_reads(), "a regular file is read in runs");
        let mut buf = vec![0u8; 0x2000];
        assert!(mem.read_run(2, &mut buf).expect("run"));
        assert_eq!(buf, bytes[0x2000..0x4000]);
        assert!(
            !mem.read_run(0, &mut buf).expect("run"),
            "the text segment starts inside"
        );
        let mut three = vec![0u8; 0x3000];
        assert!(
            !mem.read_run(2, &mut three).expect("run"),
            "past the segment"
        );
        let mut one = vec![0u8; 0x1000];
        assert!(mem.read_run(1, &mut one).expect("run"));
        assert_eq!(
            one,
            bytes[0x4000..0x5000],
            "pfn 1 from the text segment, as read_page"
        );
        let mut e = [0u8; 8];
        mem.read_small(0x1ff8, &mut e).expect("entry");
        assert_eq!(
            e,
            bytes[0x4ff8..0x5000],
            "page-table reads agree with read_page"
        );
        assert!(mem.read_small(0x1ffc, &mut e).is_none(), "crosses a page");
    }

    #[test]
    fn whole_partial_and_missing_pages_both_paths() {
        let ps = 4096usize;
        // File: 2 pages of segment A (phys 0x0..0x2000) at offset 0, then segment B with
        // 0x1800 bytes at phys 0x3800 (starts mid-page, ends mid-page) at offset 0x2000.
        let mut bytes = vec![0u8; 0x2000 + 0x1800];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        let loads = [
            Load {
                phys_start: 0,
                virt_start: 0,
                file_offset: 0,
                file_size: 0x2000,
                mem_size: 0x2000,
            },
            Load {
                phys_start: 0x3800,
                virt_start: 0,
                file_offset: 0x2000,
                file_size: 0x1800,
                mem_size: 0x1800,
            },
        ];
        for use_mmap in [true, false] {
            let mut mem = ElfMemory::new(temp_file(&bytes), &loads, ps, use_mmap);
            assert_eq!(mem.read_page(1).expect("page 1"), &bytes[0x1000..0x2000]);
            // pfn 3: bytes 0x3000..0x3800 missing (zero), 0x3800..0x4000 from offset 0x2000.
            let p3 = mem.read_page(3).expect("page 3").to_vec();
            assert!(p3[..0x800].iter().all(|&b| b == 0));
            assert_eq!(&p3[0x800..], &bytes[0x2000..0x2800]);
            // pfn 4: first 0x1000 of B's remaining bytes; offset 0x2800 is not page-aligned.
            assert_eq!(mem.read_page(4).expect("page 4"), &bytes[0x2800..0x3800]);
            // pfn 2 has nothing at all: not a page of the vmcore.
            assert!(mem.read_page(2).is_err());

            assert!(mem.read_page(2).is_err());
            assert!(mem.read_page(u64::MAX).is_err());
        }
    }
}
