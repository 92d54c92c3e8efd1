//! Page classes from the kernel's own `struct page`s: free buddy blocks, page cache, user
//! pages (anonymous and hugetlb, whole folios), hwpoison and offline pages. mem_map is read
//! in batches of struct pages per section; each decision looks at one struct page and, for
//! a compound head, its first tail page. When the data looks wrong (an order beyond the
//! allocator's, a misaligned block, an order the first tail's 7.1 mask contradicts,
//! unreadable struct pages) the pages are kept and the problem is reported once: a dump
//! may be bigger than needed, never missing a page the kernel still used. Problems are
//! returned as `Diagnostic`s (`PageClasses::take_diagnostics`), not printed.

use super::layout::{CompoundOrder, HugetlbTest, Key, PageLayout, Rule, SlabTest, TailLink};
use super::memmap::MemMap;
use crate::arch::KernelMemory;
use crate::filter::{Bitmap, Class, ClassCounts, DumpLevel, PageClasses};
use crate::input::bytes::Endian;
use crate::report::Diagnostic;

/// struct pages read per batch (512 × 64 bytes = 32 KiB).
const BATCH: u64 = 512;
/// Orders of compound pages beyond this are treated as corrupt (1 GiB pages are order 18
/// with 4 KiB pages).
const MAX_COMPOUND_ORDER: u64 = 20;
/// An untyped page's _mapcount is its number of mappings minus one; beyond this the word
/// is garbage (a typed page whose type was overwritten, say), and the page is kept.
const MAX_PLAUSIBLE_MAPCOUNT: i32 = 1 << 22;

/// What the dump level asks for, reduced to what this kernel's table can answer.
#[derive(Debug, Clone, Copy, Default)]
struct Wanted {
    cache: bool,
    cache_private: bool,
    user: bool,
    hugetlb: bool,
    free: bool,
    unaccepted: bool,
    hwpoison: bool,
    offline: bool,
}

/// The kinds of corrupt data already reported (each is reported once).
#[derive(Debug, Default)]
struct Warned {
    bad_order: bool,
    bad_buddy: bool,
    unreadable: bool,
    bad_mapcount: bool,
}

/// Decides page classes from the kernel's struct pages, one cycle at a time.
pub struct Classifier {
    km: KernelMemory,
    memmap: MemMap,
    rules: Rules,
    counts: ClassCounts,
    /// An excluded block that runs past the end of the previous cycle.
    carry: Option<(u64, Class)>,
    buf: Vec<u8>,
    /// Per struct page of `buf`, whether it could not be read (empty: all were).
    unreadable: Vec<bool>,
}

/// The per-page decision: the kernel's table, what is asked for, and what was reported.
struct Rules {
    layout: PageLayout,
    wanted: Wanted,
    warned: Warned,
    /// What was found since the last `take_diagnostics`.
    found: Vec<Diagnostic>,
    /// The size of the pages vmemmap is mapped in (the base page size).
    vmemmap_page: u64,
    /// The kernel's byte order.
    endian: Endian,
}

impl Rules {
    /// Records a warning about corrupt data.
    fn warn(&mut self, text: String) {
        self.found.push(Diagnostic::Warning(text));
    }
}

/// The kernel's word at `off` of a struct page; 0 past its end.
fn u64_at(e: Endian, b: &[u8], off: u64) -> u64 {
    e.u64(b, off as usize).unwrap_or(0)
}

/// The kernel's 32-bit integer at `off` of a struct page; 0 past its end.
fn u32_at(e: Endian, b: &[u8], off: u64) -> u32 {
    e.u32(b, off as usize).unwrap_or(0)
}

impl Classifier {
    /// The classifier for `level`. Its first diagnostics (`take_diagnostics`) are a
    /// warning for each VMCOREINFO key this kernel lacks that an asked-for class needs,
    /// naming the key and the classes kept for it.
    pub fn new(
        km: KernelMemory,
        layout: PageLayout,
        memmap: MemMap,
        level: DumpLevel,
    ) -> Classifier {
        let asked = |bit: u8| level.0 & bit != 0;
        let ok = |rule: Rule| layout.missing(rule).is_empty();
        let any_cache = asked(DumpLevel::CACHE) || asked(DumpLevel::CACHE_PRIVATE);
        // Level 2 without 4 must tell private cache apart to keep it.
        let cache_ok =
            ok(Rule::Cache) && (asked(DumpLevel::CACHE_PRIVATE) || ok(Rule::NonPrivateCache));
        let wanted = Wanted {
            cache: any_cache && cache_ok,
            cache_private: asked(DumpLevel::CACHE_PRIVATE) && ok(Rule::Cache),
            user: asked(DumpLevel::USER) && ok(Rule::User),
            hugetlb: asked(DumpLevel::USER) && ok(Rule::User) && ok(Rule::Hugetlb),
            free: asked(DumpLevel::FREE) && ok(Rule::Free),
            unaccepted: asked(DumpLevel::FREE) && ok(Rule::Unaccepted),
            hwpoison: ok(Rule::Hwpoison),
            offline: ok(Rule::Offline),
        };
        // The asked-for classes each rule serves (unaccepted memory exists only on some
        // kernels and machines: its keys are optional).
        let mut classes: Vec<(Rule, &str)> = Vec::new();
        if any_cache {
            classes.push((Rule::Cache, "cache"));
            if !asked(DumpLevel::CACHE_PRIVATE) {
                classes.push((Rule::NonPrivateCache, "cache"));
            }
        }
        if asked(DumpLevel::USER) {
            classes.push((Rule::User, "user"));
            if wanted.user {
                classes.push((Rule::Hugetlb, "hugetlb"));
            }
        }
        if wanted.cache || wanted.user {
            classes.push((Rule::LargeFolios, "large folio tail"));
        }
        if asked(DumpLevel::FREE) {
            classes.push((Rule::Free, "free"));
        }
        classes.push((Rule::Hwpoison, "hwpoison"));
        classes.push((Rule::Offline, "offline"));
        // One message per key, naming every class kept for it.
        let mut by_key: Vec<(Key, Vec<&str>)> = Vec::new();
        for (rule, name) in classes {
            // A kernel without CONFIG_MEMORY_FAILURE or offline pages exports no such
            // type: not worth a warning.
            let optional = |k: &Key| matches!(k, Key::Hwpoison | Key::Offline);
            for key in layout.missing(rule).into_iter().filter(|k| !optional(k)) {
                match by_key.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, names)) if names.contains(&name) => {}
                    Some((_, names)) => names.push(name),
                    None => by_key.push((key, vec![name])),
                }
            }
        }
        let notes = by_key
            .into_iter()
            .map(|(key, names)| {
                let names = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} and {last}", rest.join(", "))
                    }
                    _ => names.concat(),
                };
                Diagnostic::Warning(format!("{names} pages are kept: {}", layout.why(key)))
            })
            .collect();
        let buf = Vec::with_capacity(((BATCH + 1) * layout.size) as usize);
        let (vmemmap_page, endian) = (km.mem.page_size() as u64, km.endian());
        Classifier {
            km,
            memmap,
            rules: Rules {
                layout,
                wanted,
                warned: Warned::default(),
                found: notes,
                vmemmap_page,
                endian,
            },
            counts: ClassCounts::default(),
            carry: None,
            buf,
            unreadable: Vec::new(),
        }
    }
}

impl Rules {
    fn is_slab(&self, flags: u64, mapcount: u32) -> bool {
        match self.layout.slab {
            Some(SlabTest::Flag(m)) => flags & m != 0,
            Some(SlabTest::PageType(t)) => t.matches(mapcount),
            None => false,
        }
    }

    /// The order and hugetlb-ness of the compound page whose head is `head`, from the
    /// first tail page `tail`.
    fn compound(&mut self, pfn: u64, head: &[u8], tail: Option<&[u8]>) -> (u64, bool) {
        let (l, e) = (&self.layout, self.endian);
        let Some(tail) = tail else {
            return (0, false);
        };
        let flags = |sp: &[u8]| l.flags.map_or(0, |o| u64_at(e, sp, o));
        let order = match l.order {
            Some(CompoundOrder::TailByte(off)) => {
                tail.get(off as usize).copied().unwrap_or(0) as u64
            }
            Some(CompoundOrder::TailFlagsLowByte) => flags(tail) & 0xff,
            None => 0,
        };
        let hugetlb = match l.hugetlb {
            Some(HugetlbTest::TailDtor { offset, value }) => {
                tail.get(offset as usize) == Some(&value)
            }
            Some(HugetlbTest::TailFlag(m)) => flags(tail) & m != 0,
            Some(HugetlbTest::PageType(t)) => {
                l.mapcount.is_some_and(|o| t.matches(u32_at(e, head, o)))
            }
            None => false,
        };
        // A tail in the mask encoding (7.1+) carries the order too: both must agree.
        let link = l.compound.and_then(|o| l.tail_link(u64_at(e, tail, o)));
        let mask_order = link.and_then(|t| t.order(l.size));
        let disagrees = l.order.is_some() && mask_order.is_some_and(|m| m != order);
        if disagrees || order > MAX_COMPOUND_ORDER || pfn & ((1u64 << order.min(63)) - 1) != 0 {
            if !self.warned.bad_order {
                self.warned.bad_order = true;
                let also = match (disagrees, mask_order) {
                    (true, Some(m)) => format!(" (its first tail's compound_info says {m})"),
                    _ => String::new(),
                };
                self.warn(format!(
                    "pfn {pfn:#x}: compound order {order}{also} is impossible there; such pages are kept (corrupt struct page?)"
                ));
            }
            return (0, hugetlb);
        }
        (order, hugetlb)
    }

    /// Whether the PG_head struct page at `va` is a "fake head": with the hugetlb vmemmap
    /// optimisation of Linux 5.18 to 7.0, the vmemmap pages of a hugetlb folio's tails are
    /// all mapped onto the head's, so the first struct page of each of them reads as a copy
    /// of the head. As the kernel's page_fixed_fake_head() tells: such a struct page starts
    /// a page of vmemmap and the struct page after it is a tail of another head (a real
    /// head's first tail names the head itself). It is a tail, decided with its head.
    fn is_fake_head(&self, va: u64, next: Option<&[u8]>) -> bool {
        let (l, e) = (&self.layout, self.endian);
        let (Some(o), Some(next)) = (l.compound, next) else {
            return false;
        };
        // vmemmap is mapped in base pages.
        va.is_multiple_of(self.vmemmap_page)
            && matches!(l.tail_link(u64_at(e, next, o)), Some(TailLink::Pointer(h)) if h != va)
    }

    /// Decides one page frame, whose struct page `sp` is at `va`. `None`: keep it (or it
    /// is a tail, handled with its head).
    fn decide(
        &mut self,
        pfn: u64,
        va: u64,
        sp: &[u8],
        next: Option<&[u8]>,
    ) -> Option<(Class, u64)> {
        let (l, e) = (&self.layout, self.endian);
        // A field VMCOREINFO lacks reads as what excludes nothing: the rules that need it
        // are off (see `Classifier::new`).
        let word = |o: Option<u64>| o.map_or(0, |o| u64_at(e, sp, o));
        let flags = word(l.flags);
        let mapping = word(l.mapping);
        let private = word(l.private);
        let mapcount = l.mapcount.map_or(u32::MAX, |o| u32_at(e, sp, o));
        if l.compound.is_some_and(|o| u64_at(e, sp, o) & 1 == 1) {
            return None;
        }
        let slab = self.is_slab(flags, mapcount);
        let w = self.wanted;
        let head = l.head_mask.is_some_and(|m| flags & m != 0);
        if head && self.is_fake_head(va, next) {
            return None;
        }
        let (order, hugetlb) = if head {
            self.compound(pfn, sp, next)
        } else {
            (0, false)
        };
        let l = &self.layout;

        if w.free && !slab && l.buddy.is_some_and(|t| t.matches(mapcount)) {
            let max = l.free_area_orders.unwrap_or(0) as u64;
            if private < max && pfn & ((1u64 << private) - 1) == 0 {
                return Some((Class::Free, 1 << private));
            }
            if !self.warned.bad_buddy {
                self.warned.bad_buddy = true;
                self.warn(format!(
                    "pfn {pfn:#x}: free block of order {private} is impossible there; such pages are kept (corrupt struct page?)"
                ));
            }
            return None;
        }
        if w.unaccepted && l.unaccepted.is_some_and(|t| t.matches(mapcount)) {
            let max = l.free_area_orders.unwrap_or(1) as u64 - 1;
            if pfn & ((1u64 << max) - 1) == 0 {
                return Some((Class::Free, 1 << max));
            }
            return None;
        }
        // A typed page (buddy, offline, table, guard, ... in either encoding, and types
        // this table does not know) has a _mapcount/page_type word below -1; a mapped or
        // unmapped user page never does.
        let typed = (mapcount as i32) < -1;
        if !typed && !slab && mapcount as i32 >= MAX_PLAUSIBLE_MAPCOUNT {
            if !self.warned.bad_mapcount {
                self.warned.bad_mapcount = true;
                self.warn(format!(
                    "pfn {pfn:#x}: _mapcount/page_type {mapcount:#x} is neither a count nor a page type; such pages are kept (corrupt struct page?)"
                ));
            }
            return None;
        }
        let anon = mapping & 1 != 0 && !slab && !typed;
        let has = |m: Option<u64>| m.is_some_and(|m| flags & m != 0);
        let cache =
            has(l.lru) || (has(l.swapcache) && (l.swapbacked.is_none() || has(l.swapbacked)));
        // Page-cache pages point at their address_space; LRU pages without one are in
        // transition (being truncated or migrated): keep them.
        if (w.cache || w.cache_private) && cache && !anon && !slab && !typed && mapping != 0 {
            if has(l.private_flag) {
                if w.cache_private {
                    return Some((Class::CachePrivate, 1 << order));
                }
            } else if w.cache {
                return Some((Class::Cache, 1 << order));
            }
        }
        if w.user && (anon || (w.hugetlb && hugetlb)) {
            return Some((Class::User, 1 << order));
        }
        if w.hwpoison && has(l.hwpoison) {
            return Some((Class::Hwpoison, 1));
        }
        if w.offline && !slab && l.offline.is_some_and(|t| t.matches(mapcount)) {
            return Some((Class::Offline, 1));
        }
        None
    }
}

/// Clears `[from, to)` in the cycle, counts the pages that were dumpable, and remembers
/// the part beyond the cycle for the next one.
fn exclude_range(
    counts: &mut ClassCounts,
    carry: &mut Option<(u64, Class)>,
    cycle: &mut Bitmap,
    (from, to): (u64, u64),
    class: Class,
) {
    counts.add(class, cycle.clear_range_count(from, to));
    if to > cycle.end() {
        *carry = Some((to, class));
    }
}

impl PageClasses for Classifier {
    fn begin_pass(&mut self) {
        self.counts = ClassCounts::default();
        self.carry = None;
    }

    fn exclude(&mut self, cycle: &mut Bitmap) {
        let (start, end) = (cycle.start(), cycle.end());
        let mut skip_until = start;
        if let Some((carry_end, class)) = self.carry.take() {
            exclude_range(
                &mut self.counts,
                &mut self.carry,
                cycle,
                (start, carry_end),
                class,
            );
            skip_until = carry_end;
        }
        let sections: Vec<_> = self.memmap.overlapping(start, end).copied().collect();
        let size = self.rules.layout.size;
        for s in sections {
            let mut chunk = s.start.max(start);
            let stop = s.end.min(end);
            while chunk < stop {
                let chunk_end = (chunk + BATCH).min(stop);
                // The first pass writes nothing for a long while on huge machines.
                crate::watchdog::progress();
                if chunk_end <= skip_until || !cycle.any_in(chunk, chunk_end) {
                    chunk = chunk_end;
                    continue;
                }
                // One struct page more than the chunk: the first tail of a head at its end.
                let with_next = if chunk_end < s.end {
                    chunk_end + 1
                } else {
                    chunk_end
                };
                let len = ((with_next - chunk) * size) as usize;
                let va = self.memmap.page_va(&s, chunk);
                // Straight from the input's mmap window when the struct pages are
                // contiguous there; otherwise copied page by page into `buf`. When part of
                // the batch cannot be read, each struct page is read on its own: a page's
                // decision must not depend on where batches and cycles happen to end.
                self.unreadable.clear();
                let pages: &[u8] = match self.km.slice(va, len) {
                    Some(p) => p,
                    None => {
                        self.buf.resize(len, 0);
                        if self.km.read(va, &mut self.buf).is_none() {
                            for (i, sp) in self.buf.chunks_mut(size as usize).enumerate() {
                                let at = va.wrapping_add(i as u64 * size);
                                self.unreadable.push(self.km.read(at, sp).is_none());
                            }
                            if !self.rules.warned.unreadable {
                                self.rules.warned.unreadable = true;
                                self.rules.warn(format!(
                                    "some struct pages of pfns {chunk:#x}..{chunk_end:#x} cannot be read (from {va:#x}); their pages are kept"
                                ));
                            }
                        }
                        &self.buf
                    }
                };
                let readable = |i: u64| !self.unreadable.get(i as usize).is_some_and(|&u| u);
                for pfn in chunk..chunk_end {
                    if pfn < skip_until || !cycle.get(pfn) || !readable(pfn - chunk) {
                        continue;
                    }
                    let i = ((pfn - chunk) * size) as usize;
                    let sp = &pages[i..i + size as usize];
                    let next = pages
                        .get(i + size as usize..i + 2 * size as usize)
                        .filter(|_| readable(pfn - chunk + 1));
                    let at = va.wrapping_add((pfn - chunk) * size);
                    if let Some((class, n)) = self.rules.decide(pfn, at, sp, next) {
                        let to = pfn.saturating_add(n);
                        exclude_range(&mut self.counts, &mut self.carry, cycle, (pfn, to), class);
                        skip_until = to;
                        if skip_until >= chunk_end {
                            break;
                        }
                    }
                }
                chunk = chunk_end.max(skip_until.min(stop));
            }
        }
    }

    fn counts(&self) -> ClassCounts {
        self.counts
    }

    fn take_diagnostics(&mut self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.rules.found)
    }
}
