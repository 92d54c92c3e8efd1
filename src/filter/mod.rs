//! Which pages go into the dump. The dump level (`-d`) is a bitmask of page classes to drop;
//! for a range of page frames (a cycle) the filter produces the two bitmaps of the
//! kdump format: the 1st says which pfns the input backs, the 2nd which ones get a page
//! descriptor. Zero pages (bit 1) keep their bit: they are found while copying and point at
//! the one shared zero page. Page classes read from mem_map (bits 2, 4, 8, 16) plug in
//! here through `PageClasses`, which clears bits of the 2nd bitmap. What the filter and
//! the kernel layer run into is kept as `Diagnostic`s for the pipeline to report.

use std::fmt;

use crate::error::Result;
use crate::input::Vmcore;
use crate::input::elf::Load;
use crate::report::Diagnostic;

mod bitmap;
pub mod vmemmap;
pub use bitmap::{BitIter, Bitmap, IntoSetBits, PfnRanges};

/// The `-d` bitmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpLevel(pub u8);

impl DumpLevel {
    /// Bit 1: zero pages.
    pub const ZERO: u8 = 1;
    /// Bit 2: page cache without private data.
    pub const CACHE: u8 = 2;
    /// Bit 4: page cache, with private data or not.
    pub const CACHE_PRIVATE: u8 = 4;
    /// Bit 8: user process pages.
    pub const USER: u8 = 8;
    /// Bit 16: free pages.
    pub const FREE: u8 = 16;
    /// The highest level: every class.
    pub const MAX: u8 = 31;

    /// A level written in decimal, 0 to 31.
    pub fn parse(s: &str) -> Option<DumpLevel> {
        let v: u8 = s.trim().parse().ok()?;
        (v <= Self::MAX).then_some(DumpLevel(v))
    }

    /// Whether zero pages are left out (bit 1).
    pub fn excludes_zero(self) -> bool {
        self.0 & Self::ZERO != 0
    }

    /// Whether any class that needs the kernel's mem_map is asked for.
    pub fn needs_mem_map(self) -> bool {
        self.0 & (Self::CACHE | Self::CACHE_PRIVATE | Self::USER | Self::FREE) != 0
    }
}

impl fmt::Display for DumpLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The pfns that PT_LOADs touch: `memory` (any byte inside p_memsz: the 1st bitmap) and
/// `file` (any byte inside p_filesz: candidates for the 2nd bitmap).
pub fn load_ranges(loads: &[Load], page_size: u64) -> (PfnRanges, PfnRanges) {
    let pfns = |start: u64, end: u64| (start / page_size, end.div_ceil(page_size));
    let memory = loads
        .iter()
        .map(|l| pfns(l.phys_start, l.phys_end()))
        .collect();
    let file = loads
        .iter()
        .filter(|l| l.file_size > 0)
        .map(|l| pfns(l.phys_start, l.file_phys_end()))
        .collect();
    (
        PfnRanges::from_unsorted(memory),
        PfnRanges::from_unsorted(file),
    )
}

/// Classes of pages the kernel's own metadata can rule out of the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Page cache without private data (level bit 2, or 4).
    Cache,
    /// Page cache with private data (level bit 4).
    CachePrivate,
    /// Anonymous and hugetlb pages of processes (bit 8).
    User,
    /// Free pages of the buddy allocator (bit 16).
    Free,
    /// Poisoned by a memory failure: always left out (reading them can fault).
    Hwpoison,
    /// Offline (ballooned, unplugged): always left out.
    Offline,
}

/// Pages excluded per class in one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounts {
    /// Page cache without private data.
    pub cache: u64,
    /// Page cache with private data.
    pub cache_private: u64,
    /// User process pages.
    pub user: u64,
    /// Free pages.
    pub free: u64,
    /// Poisoned pages.
    pub hwpoison: u64,
    /// Offline pages.
    pub offline: u64,
}

impl ClassCounts {
    /// Counts `n` more pages of `class`.
    pub fn add(&mut self, class: Class, n: u64) {
        let slot = match class {
            Class::Cache => &mut self.cache,
            Class::CachePrivate => &mut self.cache_private,
            Class::User => &mut self.user,
            Class::Free => &mut self.free,
            Class::Hwpoison => &mut self.hwpoison,
            Class::Offline => &mut self.offline,
        };
        *slot += n;
    }

    /// Pages excluded in all.
    pub fn total(&self) -> u64 {
        self.cache + self.cache_private + self.user + self.free + self.hwpoison + self.offline
    }
}

/// Page classes decided from the kernel's own metadata (mem_map), implemented by the kernel
/// layer. It clears the bits of excluded pages, one cycle at a time, cycles in order.
pub trait PageClasses {
    /// Starts a pass over all cycles from pfn 0 (the counts restart).
    fn begin_pass(&mut self);
    /// Clears the bits of the cycle's pages that belong to an excluded class.
    fn exclude(&mut self, cycle: &mut Bitmap);
    /// Pages excluded per class so far in this pass.
    fn counts(&self) -> ClassCounts;
    /// What was found since the last call (corrupt or unreadable struct pages).
    fn take_diagnostics(&mut self) -> Vec<Diagnostic>;
}

/// The pfns whose bytes the input has: candidates for the 2nd bitmap.
pub enum Present {
    /// What the PT_LOADs of an ELF vmcore hold.
    Ranges(PfnRanges),
    /// What a kdump-compressed input holds (its own 2nd bitmap), read a cycle at a time:
    /// its memory does not grow with the size of the dump.
    Dumped(crate::input::DumpInput),
}

/// Builds the bitmaps of one cycle at a time.
pub struct Filter {
    /// The dump level.
    pub level: DumpLevel,
    /// The pfns the input backs (the 1st bitmap).
    pub memory: PfnRanges,
    /// The pfns whose bytes the input has.
    pub file: Present,
    /// The page classes from mem_map (`None`: only zero pages can be excluded).
    pub classes: Option<Box<dyn PageClasses>>,
    /// Found and not reported yet (see `take_diagnostics`).
    pub diagnostics: Vec<Diagnostic>,
    /// `-e`: the vmemmap pages to leave out, once pass 1 has found them.
    pub vmemmap: Option<vmemmap::Vmemmap>,
}

/// The page filter of `vm` at `level`: its memory and page ranges, and the mem_map reader
/// the kernel layer assembles. What that found (why classes cannot be excluded) is in the
/// filter's diagnostics.
pub fn filter_for(vm: &Vmcore, level: DumpLevel) -> Result<Filter> {
    let (memory, file) = vm.ranges();
    let (classes, diagnostics) = crate::kernel::page_classes(vm, level)?;
    Ok(Filter {
        level,
        memory,
        file,
        classes,
        diagnostics,
        vmemmap: None,
    })
}

impl Filter {
    /// `-e`: leave out the vmemmap pages whose struct pages all describe left-out pages
    /// (see `vmemmap`), within `allowance` bytes. When the vmemmap cannot be found or
    /// tracked in that memory, a warning says why and the dump keeps them.
    pub fn exclude_vmemmap(&mut self, vm: &Vmcore, allowance: u64) {
        let max_runs = allowance as usize / std::mem::size_of::<vmemmap::Run>();
        let tracked = crate::kernel::vmemmap_runs(vm, max_runs).and_then(|(runs, size)| {
            vmemmap::Vmemmap::new(runs, size, vm.page_size as u64, vm.max_mapnr(), allowance)
        });
        match tracked {
            Ok(v) => {
                self.diagnostics.push(Diagnostic::Debug(format!(
                    "-e: the vmemmap is tracked in {} KiB",
                    v.bytes().div_ceil(1024)
                )));
                self.vmemmap = Some(v);
            }
            Err(why) => self.diagnostics.push(Diagnostic::Warning(format!(
                "-e: {why}; the dump keeps every vmemmap page"
            ))),
        }
    }

    /// What the filter and the page classes found since the last call, in order.
    pub fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        let mut found = std::mem::take(&mut self.diagnostics);
        if let Some(c) = self.classes.as_mut() {
            found.extend(c.take_diagnostics());
        }
        found
    }

    /// Starts a pass over the cycles from pfn 0.
    pub fn begin_pass(&mut self) {
        if let Some(c) = self.classes.as_mut() {
            c.begin_pass();
        }
    }

    /// Pages excluded per class in the current pass.
    pub fn counts(&self) -> ClassCounts {
        self.classes
            .as_ref()
            .map(|c| c.counts())
            .unwrap_or_default()
    }

    /// Whether `[start, end)` holds any memory: a cycle without any has two empty bitmaps
    /// and nothing to read, and is skipped (a vmcore whose memory lies far apart, or
    /// claims to, has many such cycles).
    pub fn has_memory(&self, start: u64, end: u64) -> bool {
        self.memory.any_in(start, end)
    }

    /// The 1st bitmap for `[start, end)`.
    pub fn bitmap1(&self, start: u64, end: u64) -> Bitmap {
        let mut b = Bitmap::new(start, end - start);
        for (a, z) in self.memory.iter() {
            b.set_range(a, z, true);
        }
        b
    }

    /// The 2nd bitmap for `[start, end)`: pages with bytes in the input, minus the classes
    /// the dump level excludes.
    pub fn bitmap2(&mut self, start: u64, end: u64) -> Bitmap {
        let mut b = Bitmap::new(start, end - start);
        match &self.file {
            Present::Ranges(r) => {
                for (a, z) in r.iter() {
                    b.set_range(a, z, true);
                }
            }
            Present::Dumped(dump) => {
                if let Err(e) = dump.mark_dumpable(&mut b) {
                    // Then every page of the cycle is tried: those the input cannot give
                    // are recorded as lost, and the run says so.
                    self.diagnostics.push(Diagnostic::Warning(format!(
                        "{e}; the pages of pfns {start:#x}-{end:#x} are read one by one"
                    )));
                    for (a, z) in self.memory.iter() {
                        b.set_range(a, z, true);
                    }
                }
            }
        }
        if let Some(classes) = self.classes.as_mut() {
            classes.exclude(&mut b);
        }
        b
    }
}

/// True when every byte of the page is zero, checked a word at a time.
///
/// It reads the whole page even after a non-zero word: a page that is not zero is
/// compressed next, and this independent streaming scan brings it into the cache much
/// faster than the compressor's data-dependent reads would (measured: `benches/README.md`).
pub fn is_zero_page(page: &[u8]) -> bool {
    let mut chunks = page.chunks_exact(64);
    let mut acc = 0u64;
    for c in &mut chunks {
        for w in c.chunks_exact(8) {
            acc |= u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        }
    }
    acc == 0 && chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_partial_pages_count() {
        let l = |p: u64, f: u64, m: u64| Load {
            phys_start: p,
            virt_start: 0,
            file_offset: 0,
            file_size: f,
            mem_size: m,
        };
        let (mem, file) = load_ranges(&[l(0x1000, 0x2000, 0x2000), l(0x2800, 0x800, 0x3000)], 4096);
        assert_eq!(mem.iter().collect::<Vec<_>>(), vec![(1, 6)]);
        assert_eq!(file.iter().collect::<Vec<_>>(), vec![(1, 3)]);
        assert_eq!(mem.count_in(2, 100), 4);
        let r = PfnRanges::from_unsorted(vec![(10, 20), (30, 40), (100, 101)]);
        for (from, to, any) in [
            (0, 10, false),
            (0, 11, true),
            (19, 30, true),
            (20, 30, false),
            (40, 100, false),
            (40, 101, true),
            (101, u64::MAX, false),
            (35, 36, true),
        ] {
            assert_eq!(r.any_in(from, to), any, "{from}..{to}");
        }
    }

    #[test]
    fn zero_page_check() {
        let mut p = vec![0u8; 4096];
        assert!(is_zero_page(&p));
        p[4095] = 1;
        assert!(!is_zero_page(&p));
        p[4095] = 0;
        p[7] = 0x80;
        assert!(!is_zero_page(&p));
        assert!(is_zero_page(&[0u8; 100]));
        assert!(!is_zero_page(&[0, 0, 0, 1]));
    }

    /// Page classes that exclude nothing and find one thing per cycle.
    struct Noting(u64);
    impl PageClasses for Noting {
        fn begin_pass(&mut self) {}
        fn exclude(&mut self, cycle: &mut Bitmap) {
            self.0 += 1;
            let _ = cycle;
        }
        fn counts(&self) -> ClassCounts {
            ClassCounts::default()
        }
        fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
            let n = std::mem::take(&mut self.0);
            (0..n)
                .map(|i| Diagnostic::Debug(format!("cycle {i}")))
                .collect()
        }
    }

    #[test]
    fn diagnostics_come_out_once_and_in_order() {
        let ranges = PfnRanges::from_unsorted(vec![(0, 100)]);
        let mut f = Filter {
            level: DumpLevel(0),
            memory: ranges.clone(),
            file: Present::Ranges(ranges),
            classes: Some(Box::new(Noting(0))),
            diagnostics: vec![Diagnostic::Warning("assembling".into())],
            vmemmap: None,
        };
        assert_eq!(f.bitmap2(0, 64).count(), 64);
        assert_eq!(f.bitmap2(64, 128).count(), 36);
        assert_eq!(
            f.take_diagnostics(),
            [
                Diagnostic::Warning("assembling".into()),
                Diagnostic::Debug("cycle 0".into()),
                Diagnostic::Debug("cycle 1".into()),
            ]
        );
        assert!(f.take_diagnostics().is_empty());
    }

    #[test]
    fn dump_levels() {
        assert_eq!(DumpLevel::parse("31"), Some(DumpLevel(31)));
        assert_eq!(DumpLevel::parse("32"), None);
        assert_eq!(DumpLevel::parse("-1"), None);
        assert!(DumpLevel(1).excludes_zero() && !DumpLevel(1).needs_mem_map());
        assert!(DumpLevel(16).needs_mem_map());
    }
}
