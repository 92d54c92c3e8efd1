//! The kdump format's page bitmaps as the filter builds them, and sets of pfn ranges.

/// A bitmap over the pfns `[start, start + len)`; bit order is the kdump file's
/// (pfn p in byte p/8, bit p%8) once written out little-endian word by word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    start: u64,
    len: u64,
    words: Vec<u64>,
}

impl Bitmap {
    /// `start` must be a multiple of 64 so words line up with file bytes.
    pub fn new(start: u64, len: u64) -> Bitmap {
        debug_assert_eq!(start % 64, 0);
        Bitmap {
            start,
            len,
            words: vec![0; len.div_ceil(64) as usize],
        }
    }

    /// The first pfn.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// One past the last pfn.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Whether `pfn`'s bit is set (false outside the bitmap).
    pub fn get(&self, pfn: u64) -> bool {
        if pfn < self.start || pfn >= self.end() {
            return false;
        }
        let i = pfn - self.start;
        self.words[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    /// The words covering `[from, to)` (non-empty, inside the bitmap) and, for each, the
    /// mask of the range's bits in it.
    fn word_masks(&self, from: u64, to: u64) -> impl Iterator<Item = (usize, u64)> + use<> {
        let (a, b) = (from - self.start, to - self.start);
        let (wa, wb) = ((a / 64) as usize, ((b - 1) / 64) as usize);
        (wa..=wb).map(move |w| {
            let lo = if w == wa { a % 64 } else { 0 };
            let hi = if w == wb { (b - 1) % 64 + 1 } else { 64 };
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            (w, mask)
        })
    }

    /// Sets or clears the bits of `[from, to)` clipped to the bitmap.
    pub fn set_range(&mut self, from: u64, to: u64, value: bool) {
        let from = from.max(self.start);
        let to = to.min(self.end());
        if from >= to {
            return;
        }
        for (w, mask) in self.word_masks(from, to) {
            if value {
                self.words[w] |= mask;
            } else {
                self.words[w] &= !mask;
            }
        }
    }

    /// Number of set bits.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// Number of set bits in `[from, to)` (clipped to the bitmap).
    pub fn count_in(&self, from: u64, to: u64) -> u64 {
        let from = from.max(self.start);
        let to = to.min(self.end());
        if from >= to {
            return 0;
        }
        self.word_masks(from, to)
            .map(|(w, mask)| (self.words[w] & mask).count_ones() as u64)
            .sum()
    }

    /// Whether any bit of `[from, to)` is set.
    pub fn any_in(&self, from: u64, to: u64) -> bool {
        self.count_in(from, to) > 0
    }

    /// Clears `[from, to)` and returns how many bits were set there.
    pub fn clear_range_count(&mut self, from: u64, to: u64) -> u64 {
        let n = self.count_in(from, to);
        self.set_range(from, to, false);
        n
    }

    /// The set pfns in increasing order.
    pub fn iter_set(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(move |(i, &w)| {
            let base = self.start + 64 * i as u64;
            BitIter(w).map(move |b| base + b as u64)
        })
    }

    /// The set pfns in increasing order, consuming the bitmap.
    pub fn into_iter_set(self) -> IntoSetBits {
        IntoSetBits {
            start: self.start,
            words: self.words,
            index: 0,
            current: 0,
        }
    }

    /// The bytes of this bitmap as they appear in the file.
    pub fn file_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(self.len.div_ceil(8) as usize);
        out
    }
}

/// Owning iterator over the set pfns of a [`Bitmap`].
pub struct IntoSetBits {
    start: u64,
    words: Vec<u64>,
    /// Index of the next word to load.
    index: usize,
    /// Bits of word `index - 1` not yet returned.
    current: u64,
}

impl Iterator for IntoSetBits {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        while self.current == 0 {
            self.current = *self.words.get(self.index)?;
            self.index += 1;
        }
        let b = self.current.trailing_zeros() as u64;
        self.current &= self.current - 1;
        Some(self.start + 64 * (self.index as u64 - 1) + b)
    }
}

/// The set bits of a word, lowest first.
pub struct BitIter(pub u64);

impl Iterator for BitIter {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(b)
    }
}

/// A set of pfn ranges `[start, end)`, sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PfnRanges(Vec<(u64, u64)>);

impl PfnRanges {
    /// The set of the ranges `v`, in any order, overlapping or empty.
    pub fn from_unsorted(mut v: Vec<(u64, u64)>) -> PfnRanges {
        v.retain(|(a, b)| a < b);
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        PfnRanges(out)
    }

    /// The ranges, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().copied()
    }

    /// Whether any pfn of `[from, to)` is in the set (a binary search: the set may have
    /// many ranges, and this is asked once per cycle).
    pub fn any_in(&self, from: u64, to: u64) -> bool {
        let i = self.0.partition_point(|&(_, end)| end <= from);
        self.0.get(i).is_some_and(|&(start, _)| start < to)
    }

    /// Number of pfns of `[from, to)` in the set.
    pub fn count_in(&self, from: u64, to: u64) -> u64 {
        self.0
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_ranges_and_bytes() {
        let mut b = Bitmap::new(64, 200);
        b.set_range(0, 70, true); // clipped to 64..70
        b.set_range(100, 228, true);
        b.set_range(130, 131, false);
        assert!(b.get(64) && b.get(69) && !b.get(70) && b.get(100) && !b.get(130));
        assert!(b.get(227) && !b.get(264) && !b.get(10));
        assert_eq!(b.count(), 6 + 128 - 1);
        assert_eq!(b.count_in(0, 1000), b.count());
        assert_eq!(b.count_in(66, 101), 4 + 1);
        assert!(b.any_in(227, 228) && !b.any_in(70, 100));
        let mut c = b.clone();
        assert_eq!(c.clear_range_count(60, 102), 6 + 2);
        assert_eq!(c.count(), b.count() - 8);
        let set: Vec<u64> = b.iter_set().collect();
        assert_eq!(b.clone().into_iter_set().collect::<Vec<_>>(), set);
        assert_eq!(set.len() as u64, b.count());
        assert!(set.windows(2).all(|w| w[0] < w[1]));
        let bytes = b.file_bytes();
        assert_eq!(bytes.len(), 25);
        assert_eq!(bytes[0], 0b0011_1111);
        // pfn 100 = bit 36 of the bitmap = byte 4, bit 4.
        assert_eq!(bytes[4] & 0x10, 0x10);
    }
}
