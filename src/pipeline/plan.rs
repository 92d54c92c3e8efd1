//! Planning: the cycles of page frames, the first pass that counts the dumpable pages (and
//! keeps the cycles' bitmaps when they fit), the second pass's walk that writes each
//! cycle's bitmaps and hands out its dumpable pfns in batches, and the cut points of a
//! split set.

use crate::error::Result;
use crate::filter::{Bitmap, ClassCounts, Filter, IntoSetBits};
use crate::format::kdump::Layout;
use crate::report;
use crate::target::Sink;

/// Pages per batch handed to a worker (512 KiB of page data at most with 4 KiB pages).
pub(super) const BATCH_PAGES: usize = 128;

/// The cycles `[start, end)` covering `0..max_mapnr`, `per_cycle` pfns each.
#[derive(Debug, Clone)]
pub(super) struct Cycles {
    next: u64,
    max_mapnr: u64,
    per_cycle: u64,
}

impl Iterator for Cycles {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        if self.next >= self.max_mapnr {
            return None;
        }
        let start = self.next;
        self.next = start.saturating_add(self.per_cycle).min(self.max_mapnr);
        Some((start, self.next))
    }
}

/// The cycles of `per_cycle` pfns that cover `0..max_mapnr`.
pub(super) fn cycles(max_mapnr: u64, per_cycle: u64) -> Cycles {
    Cycles {
        next: 0,
        max_mapnr,
        per_cycle,
    }
}

/// The 2nd bitmap of `[start, end)`; what the filter and the kernel layer found on the
/// way is reported here, on the thread that plans.
pub(super) fn bitmap2(filter: &mut Filter, start: u64, end: u64) -> Bitmap {
    let b = filter.bitmap2(start, end);
    report::diagnostics(filter.take_diagnostics());
    b
}

/// What the first pass found.
pub(super) struct Pass1 {
    /// The cycles' 2nd bitmaps, when they fit the budget (empty otherwise).
    pub kept: Vec<Bitmap>,
    /// Whether `kept` holds every cycle's bitmap (then mem_map is not read again).
    pub reuse: bool,
    /// Pages with a descriptor in the whole dump.
    pub num_dumpable: u64,
    /// Of those, the pages this file describes (all of them, except in a split set).
    pub described: u64,
    /// Pages excluded per class.
    pub counts: ClassCounts,
}

/// Pass 1: how many pages get a descriptor (in the whole dump and in `[lo, hi)`); the
/// bitmaps are kept when all of them take at most `bitmap_cache` bytes.
pub(super) fn count_dumpable(
    filter: &mut Filter,
    max_mapnr: u64,
    per_cycle: u64,
    (lo, hi): (u64, u64),
    bitmap_cache: u64,
) -> Result<Pass1> {
    let reuse = max_mapnr / 8 <= bitmap_cache;
    let mut pass = Pass1 {
        kept: Vec::new(),
        reuse,
        num_dumpable: 0,
        described: 0,
        counts: ClassCounts::default(),
    };
    filter.begin_pass();
    if let Some(v) = filter.vmemmap.as_mut() {
        v.begin();
    }
    for (start, end) in cycles(max_mapnr, per_cycle) {
        crate::signals::check()?;
        crate::fault!(Scan);
        crate::watchdog::progress();
        if !filter.has_memory(start, end) {
            if reuse {
                pass.kept.push(Bitmap::new(start, end - start));
            }
            continue;
        }
        let b2 = bitmap2(filter, start, end);
        if let Some(v) = filter.vmemmap.as_mut() {
            v.record(&b2);
        }
        pass.num_dumpable += b2.count();
        pass.described += b2.count_in(lo, hi);
        if reuse {
            pass.kept.push(b2);
        }
    }
    pass.counts = filter.counts();
    if let Some(v) = filter.vmemmap.as_mut() {
        let (total, within) = v.finish((lo, hi));
        pass.num_dumpable = pass.num_dumpable.saturating_sub(total);
        pass.described = pass.described.saturating_sub(within);
        for b2 in &mut pass.kept {
            v.apply(b2);
        }
        crate::debug!("-e: {total} vmemmap pages left out");
    }
    Ok(pass)
}

/// Walks the cycles of pass 2: writes each cycle's bitmaps, then hands out its dumpable
/// pfns in batches.
pub(super) struct Planner<'f> {
    pub filter: &'f mut Filter,
    /// Pass 1's bitmaps, when kept (then `reuse` is set and mem_map is not read again).
    pub kept: std::vec::IntoIter<Bitmap>,
    pub reuse: bool,
    pub cycles: Cycles,
    pub layout: Layout,
    /// The current cycle's dumpable pfns not handed out yet.
    pub pending: Option<IntoSetBits>,
    /// Only pfns in `[start, end)` are handed out (a file of a split set).
    pub range: (u64, u64),
    pub pages_in_input: u64,
    pub dumpable: u64,
    /// The bitmaps of pfns below this are written.
    pub bitmaps_done: u64,
}

impl<'f> Planner<'f> {
    /// The planner of pass 2 over `layout`'s page frames, after pass 1 found `pass`.
    pub fn new(
        filter: &'f mut Filter,
        pass: Pass1,
        layout: Layout,
        per_cycle: u64,
        range: (u64, u64),
    ) -> Planner<'f> {
        if !pass.reuse {
            filter.begin_pass();
        }
        Planner {
            filter,
            kept: pass.kept.into_iter(),
            reuse: pass.reuse,
            cycles: cycles(layout.max_mapnr, per_cycle),
            layout,
            pending: None,
            range,
            pages_in_input: 0,
            dumpable: 0,
            bitmaps_done: 0,
        }
    }

    /// Writes zeros from byte `from` of the 2nd bitmap to the end of its last block: when
    /// no descriptor or page follows the bitmaps, nothing else makes the file reach their
    /// end, and readers take it as truncated.
    pub fn pad_bitmap2(layout: &Layout, sink: &mut dyn Sink, from: u64) -> Result<()> {
        let len = layout.bitmap_len.saturating_sub(from);
        if len == 0 {
            return Ok(());
        }
        sink.write_at(layout.bitmap2_offset() + from, &vec![0u8; len as usize])
    }

    /// Fills `pfns` with the next batch (at most BATCH_PAGES, within one cycle). Returns
    /// false when every cycle is done.
    pub fn next_batch(&mut self, sink: &mut dyn Sink, pfns: &mut Vec<u64>) -> Result<bool> {
        pfns.clear();
        crate::signals::check()?;
        loop {
            if let Some(p) = self.pending.as_mut() {
                while pfns.len() < BATCH_PAGES {
                    match p.next() {
                        Some(pfn) if pfn < self.range.0 => {}
                        Some(pfn) if pfn < self.range.1 => pfns.push(pfn),
                        _ => break,
                    }
                }
                if !pfns.is_empty() {
                    self.dumpable += pfns.len() as u64;
                    return Ok(true);
                }
                self.pending = None;
            }
            let Some((start, end)) = self.cycles.next() else {
                return Ok(false);
            };
            crate::fault!(Scan);
            if self.filter.has_memory(start, end) {
                self.write_bitmaps(sink, start, end)?;
            } else {
                self.skip_empty(sink, start, end)?;
            }
            self.bitmaps_done = end;
        }
    }

    /// A cycle without memory: both bitmaps are zero there. A file has zeros where
    /// nothing is written, a stream gets them written out (its readers need not treat
    /// holes so).
    fn skip_empty(&mut self, sink: &mut dyn Sink, start: u64, end: u64) -> Result<()> {
        let _ = self.kept.next();
        if !sink.seekable() {
            let zeros = vec![0u8; (end - start).div_ceil(8) as usize];
            sink.write_at(self.layout.bitmap1_offset() + start / 8, &zeros)?;
            sink.write_at(self.layout.bitmap2_offset() + start / 8, &zeros)?;
        }
        if end == self.layout.max_mapnr {
            let from = if sink.seekable() {
                self.layout.bitmap_len - 1
            } else {
                end.div_ceil(8)
            };
            Self::pad_bitmap2(&self.layout, sink, from)?;
        }
        Ok(())
    }

    /// Writes the cycle's two bitmaps and makes its dumpable pfns the pending ones.
    fn write_bitmaps(&mut self, sink: &mut dyn Sink, start: u64, end: u64) -> Result<()> {
        let b1 = self.filter.bitmap1(start, end);
        self.pages_in_input += b1.count();
        sink.write_at(self.layout.bitmap1_offset() + start / 8, &b1.file_bytes())?;
        let b2 = match self.kept.next() {
            Some(b) => b,
            None => {
                let mut b2 = bitmap2(self.filter, start, end);
                if let Some(v) = self.filter.vmemmap.as_ref() {
                    v.apply(&mut b2);
                }
                b2
            }
        };
        sink.write_at(self.layout.bitmap2_offset() + start / 8, &b2.file_bytes())?;
        if end == self.layout.max_mapnr {
            Self::pad_bitmap2(&self.layout, sink, end.div_ceil(8))?;
        }
        self.pending = Some(b2.into_iter_set());
        Ok(())
    }
}

/// Where to cut a split set of `n` files: one pass of the filter counts the dumpable pages
/// per block of page frames; the cuts fall on block edges, near equal counts. Returns the
/// `n` ranges `[start, end)` of pfns.
pub fn split_points(
    filter: &mut Filter,
    max: u64,
    pfns_per_cycle: u64,
    n: usize,
) -> Vec<(u64, u64)> {
    let block = (max / 4096).max(64).div_ceil(64) * 64;
    filter.begin_pass();
    let per_cycle = pfns_per_cycle.div_ceil(block) * block;
    let mut counts = Vec::new();
    for (start, end) in cycles(max, per_cycle) {
        let b2 = match filter.has_memory(start, end) {
            true => bitmap2(filter, start, end),
            false => Bitmap::new(start, end - start),
        };
        let mut at = start;
        while at < end {
            let to = (at + block).min(end);
            counts.push(b2.count_in(at, to));
            at = to;
        }
    }
    let total: u64 = counts.iter().sum();
    let mut cuts = vec![0u64];
    let mut acc = 0u64;
    for (i, c) in counts.iter().enumerate() {
        acc += c;
        let k = cuts.len() as u64; // the next cut ends part k
        if k < n as u64 && acc * n as u64 >= total * k {
            cuts.push(((i as u64 + 1) * block).min(max));
        }
    }
    while cuts.len() < n {
        cuts.push(max);
    }
    cuts.push(max);
    cuts.windows(2).map(|w| (w[0], w[1])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{DumpLevel, PfnRanges, Present};

    fn filter(ranges: Vec<(u64, u64)>) -> Filter {
        let ranges = PfnRanges::from_unsorted(ranges);
        Filter {
            level: DumpLevel(0),
            memory: ranges.clone(),
            file: Present::Ranges(ranges),
            classes: None,
            diagnostics: Vec::new(),
            vmemmap: None,
        }
    }

    #[test]
    fn cycles_cover_every_pfn_once() {
        let c: Vec<_> = cycles(1000, 256).collect();
        assert_eq!(c, [(0, 256), (256, 512), (512, 768), (768, 1000)]);
        assert_eq!(cycles(0, 256).count(), 0);
    }

    #[test]
    fn split_points_cut_on_blocks_near_equal_counts() {
        // Pages at 0..1000 and 3000..4000 of 8192: two parts of 1000 pages each.
        let mut f = filter(vec![(0, 1000), (3000, 4000)]);
        let parts = split_points(&mut f, 8192, 512, 2);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, 0);
        assert_eq!(parts[1].1, 8192);
        assert_eq!(parts[0].1, parts[1].0);
        assert_eq!(parts[0].1 % 64, 0);
        let count = |(a, b): (u64, u64)| f.memory.count_in(a, b);
        assert!(count(parts[0]).abs_diff(count(parts[1])) <= 64, "{parts:?}");
        // More parts than pages: the rest are empty, at the end.
        let mut f = filter(vec![(0, 64)]);
        let parts = split_points(&mut f, 128, 64, 3);
        assert_eq!(parts, [(0, 64), (64, 128), (128, 128)]);
    }
}
