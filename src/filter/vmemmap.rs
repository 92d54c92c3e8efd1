//! `-e`: leaving out the pages of the vmemmap (the virtually mapped array of struct pages)
//! whose struct pages all describe pages the dump leaves out.
//!
//! Vmemmap page `k` holds the struct pages of the pfns whose `[p * S, p * S + S)` bytes
//! (`S` = `SIZE(page)`) meet `[k * PS, (k + 1) * PS)`. Pass 1 records, per vmemmap page,
//! whether any of its pfns is kept (one bit per vmemmap page: 1/64 of a pfn bitmap with
//! 64-byte struct pages), and which of the physical pages backing the vmemmap are dumpable
//! (one bit per backing page). A pfn outside every cycle with memory is never marked kept:
//! holes count as left out. When pass 1 is done, a backing page is left out when it is
//! dumpable and no vmemmap page mapped onto it describes a kept pfn (several vmemmap pages
//! share one backing page under the hugetlb vmemmap optimisation). Pass 2 clears those
//! pfns in the 2nd bitmap of the cycles they fall in.

use super::{Bitmap, PfnRanges};

/// Vmemmap pages `[first, first + len)` are backed by physical pages from `pfn`: the
/// next ones in order, or all by the one page `pfn` when `shared`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The first vmemmap page (its index from the start of the vmemmap).
    pub first: u64,
    /// How many vmemmap pages.
    pub len: u64,
    /// The physical page backing `first`.
    pub pfn: u64,
    /// Whether every vmemmap page of the run is backed by `pfn` itself.
    pub shared: bool,
}

impl Run {
    /// The backing pfn of the run's `i`th vmemmap page.
    fn backing(&self, i: u64) -> u64 {
        if self.shared { self.pfn } else { self.pfn + i }
    }

    /// Appends vmemmap page `k` backed by `pfn` when it continues the run.
    pub fn extend(&mut self, k: u64, pfn: u64) -> bool {
        if k != self.first + self.len {
            return false;
        }
        let fits = if self.len == 1 {
            self.shared = pfn == self.pfn;
            pfn == self.pfn || pfn == self.pfn + 1
        } else {
            pfn == self.backing(self.len)
        };
        if fits {
            self.len += 1;
        }
        fits
    }
}

/// Sets bit `i` of a plain bit array.
fn set(bits: &mut [u64], i: u64) {
    if let Some(w) = bits.get_mut((i / 64) as usize) {
        *w |= 1 << (i % 64);
    }
}

/// Whether bit `i` of a plain bit array is set.
fn get(bits: &[u64], i: u64) -> bool {
    bits.get((i / 64) as usize)
        .is_some_and(|w| w >> (i % 64) & 1 == 1)
}

/// Bit arrays of `n` bits.
fn bits(n: u64) -> Vec<u64> {
    vec![0; n.div_ceil(64) as usize]
}

/// The backing pages in `[start, end)` of the sorted `backing` ranges, each with its
/// slot (`slots`: the first slot of each range).
fn backing_in<'a>(
    backing: &'a [(u64, u64)],
    slots: &'a [u64],
    start: u64,
    end: u64,
) -> impl Iterator<Item = (u64, u64)> + 'a {
    let i = backing.partition_point(|&(_, z)| z <= start);
    backing[i..]
        .iter()
        .zip(&slots[i..])
        .take_while(move |&(&(a, _), _)| a < end)
        .flat_map(move |(&(a, z), &slot)| {
            (a.max(start)..z.min(end)).map(move |q| (q, slot + q - a))
        })
}

/// The state of `-e` across the two passes.
#[derive(Debug)]
pub struct Vmemmap {
    /// `SIZE(page)`.
    struct_size: u64,
    page_size: u64,
    /// The backing of every mapped vmemmap page.
    runs: Vec<Run>,
    /// The physical pages backing the vmemmap, and the first slot of each range.
    backing: Vec<(u64, u64)>,
    slots: Vec<u64>,
    /// Per vmemmap page: it describes a pfn pass 1 kept.
    kept: Vec<u64>,
    /// Per backing slot: dumpable in pass 1; after `finish`, left out.
    left: Vec<u64>,
    /// Whether `finish` ran: pass 2 then leaves the pages out.
    armed: bool,
}

impl Vmemmap {
    /// The tracker for `max_mapnr` pfns whose struct pages of `struct_size` bytes are
    /// backed as `runs` say. `Err` says why not when it would take more than `allowance`
    /// bytes (or the geometry makes no sense).
    pub fn new(
        runs: Vec<Run>,
        struct_size: u64,
        page_size: u64,
        max_mapnr: u64,
        allowance: u64,
    ) -> Result<Vmemmap, String> {
        if struct_size == 0 || page_size == 0 || runs.is_empty() {
            return Err("no vmemmap pages are mapped".into());
        }
        let pages = max_mapnr
            .checked_mul(struct_size)
            .ok_or("the vmemmap is implausibly large")?
            .div_ceil(page_size);
        let backing: Vec<(u64, u64)> = PfnRanges::from_unsorted(
            runs.iter()
                .map(|r| (r.pfn, r.pfn + if r.shared { 1 } else { r.len }))
                .collect(),
        )
        .iter()
        .collect();
        let mut slots = Vec::new();
        let mut total = 0u64;
        for &(a, z) in &backing {
            slots.push(total);
            total += z - a;
        }
        let bytes = pages.div_ceil(8)
            + total.div_ceil(8)
            + (runs.len() * std::mem::size_of::<Run>()) as u64
            + (slots.len() * 24) as u64;
        if bytes > allowance {
            return Err(format!(
                "tracking the vmemmap would take {} KiB, more than the {} KiB allowed",
                bytes >> 10,
                allowance >> 10
            ));
        }
        Ok(Vmemmap {
            struct_size,
            page_size,
            runs,
            backing,
            slots,
            kept: bits(pages),
            left: bits(total),
            armed: false,
        })
    }

    /// Bytes this tracker holds.
    pub fn bytes(&self) -> u64 {
        ((self.kept.len() + self.left.len()) * 8
            + self.runs.len() * std::mem::size_of::<Run>()
            + self.slots.len() * 24) as u64
    }

    /// Whether pass 2 leaves vmemmap pages out (`finish` ran).
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// The slot of backing pfn `q` (None: `q` backs no vmemmap page).
    fn slot(&self, q: u64) -> Option<u64> {
        let i = self.backing.partition_point(|&(_, z)| z <= q);
        let &(a, _) = self.backing.get(i).filter(|&&(a, _)| a <= q)?;
        Some(self.slots.get(i)? + q - a)
    }

    /// Starts pass 1 over all cycles from pfn 0.
    pub fn begin(&mut self) {
        self.kept.fill(0);
        self.left.fill(0);
        self.armed = false;
    }

    /// Pass 1: records what the cycle's 2nd bitmap keeps.
    pub fn record(&mut self, b2: &Bitmap) {
        let (start, end) = (b2.start(), b2.end());
        if start >= end {
            return;
        }
        let (s, ps) = (self.struct_size, self.page_size);
        let first = start * s / ps;
        let last = (end * s - 1) / ps;
        for k in first..=last {
            let p0 = k * ps / s;
            let p1 = ((k + 1) * ps).div_ceil(s);
            if b2.any_in(p0.max(start), p1.min(end)) {
                set(&mut self.kept, k);
            }
        }
        for (q, slot) in backing_in(&self.backing, &self.slots, start, end) {
            if b2.get(q) {
                set(&mut self.left, slot);
            }
        }
    }

    /// Ends pass 1: decides which backing pages are left out. Returns how many, in all
    /// and within `[lo, hi)`.
    pub fn finish(&mut self, (lo, hi): (u64, u64)) -> (u64, u64) {
        for r in &self.runs {
            let Some(base) = self.slot(r.pfn) else {
                continue;
            };
            for i in 0..r.len {
                if get(&self.kept, r.first + i) {
                    let slot = if r.shared { base } else { base + i };
                    if let Some(w) = self.left.get_mut((slot / 64) as usize) {
                        *w &= !(1 << (slot % 64));
                    }
                }
            }
        }
        self.armed = true;
        let mut total = 0;
        let mut within = 0;
        for (&(a, z), &slot) in self.backing.iter().zip(&self.slots) {
            for q in a..z {
                if get(&self.left, slot + q - a) {
                    total += 1;
                    within += u64::from(q >= lo && q < hi);
                }
            }
        }
        (total, within)
    }

    /// Pass 2 (once `finish` ran): clears the left-out backing pages in a 2nd bitmap.
    pub fn apply(&self, b2: &mut Bitmap) {
        if !self.armed {
            return;
        }
        for (q, slot) in backing_in(&self.backing, &self.slots, b2.start(), b2.end()) {
            if get(&self.left, slot) {
                b2.set_range(q, q + 1, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(first: u64, len: u64, pfn: u64, shared: bool) -> Run {
        Run {
            first,
            len,
            pfn,
            shared,
        }
    }

    #[test]
    fn runs_extend_in_order_or_shared() {
        let mut r = run(0, 1, 100, false);
        assert!(r.extend(1, 101) && r.extend(2, 102) && !r.extend(3, 102));
        assert!(!r.extend(4, 103));
        let mut s = run(5, 1, 7, false);
        assert!(s.extend(6, 7) && s.extend(7, 7) && !s.extend(8, 8));
        assert!(s.shared && s.len == 3);
    }

    #[test]
    fn only_pages_describing_left_out_pfns_go() {
        // 64-byte struct pages, 4 KiB pages: vmemmap page k describes pfns 64k..64k+64.
        // 1024 pfns = 16 vmemmap pages backed by pfns 2000.., except pages 12..16, which
        // all share pfn 3000 (with page 12 kept, 3000 stays).
        let runs = vec![run(0, 12, 2000, false), run(12, 4, 3000, true)];
        let mut v = Vmemmap::new(runs, 64, 4096, 1024, 1 << 20).expect("fits");
        v.begin();
        let mut b = Bitmap::new(0, 1024);
        b.set_range(0, 64, true); // page 0 kept
        b.set_range(200, 201, true); // page 3 kept
        b.set_range(12 * 64 + 5, 12 * 64 + 6, true); // page 12 kept: 3000 stays
        let mut backing = Bitmap::new(1984, 1024 + 64);
        backing.set_range(2000, 2012, true);
        backing.set_range(3000, 3001, true);
        v.record(&b);
        v.record(&backing);
        let (total, within) = v.finish((2000, 2006));
        assert_eq!(total, 10);
        assert_eq!(within, 4);
        v.apply(&mut backing);
        let left: Vec<u64> = backing.iter_set().collect();
        assert_eq!(left, [2000, 2003, 3000]);
        assert!(Vmemmap::new(vec![run(0, 1, 1, false)], 64, 4096, 1 << 30, 1024).is_err());
    }
}
