//! Everything vmsift knows about how a kernel version lays out `struct page`, as one table
//! filled from which VMCOREINFO keys exist. Kernel versions are never compared: each rule
//! below names the keys that select it, so a new kernel is a data change here.
//!
//! | what | selected by (first that exists) | kernels |
//! |---|---|---|
//! | tail page | `OFFSET(page.compound_info)`: bit 0 set; the word is head + 1, or `GENMASK(63, order + log2(SIZE(page))) \| 1` (head = the tail's own address & mask), told apart by the value | ≥ 7.1 |
//! | | `OFFSET(page.compound_head)`: bit 0 set; the word is head + 1 | ≤ 7.0 |
//! | flags | `OFFSET(page.flags)` (a `memdesc_flags_t` from 6.18: the same word) | all |
//! | compound order | `OFFSET(page.compound_order)` in the first tail page: its low byte (a u8 from 4.16; a u32, or a u16 in 4.4, before; little-endian) | ≤ 6.2 |
//! | | `OFFSET(folio._folio_order)` − `SIZE(page)` in the first tail page | 6.3 – 6.8 |
//! | | low byte of the first tail page's flags (`PAGE_HUGETLB_MAPCOUNT_VALUE` exists) | ≥ 6.9 |
//! | hugetlb folio | `OFFSET(page.compound_dtor)` == `NUMBER(HUGETLB_PAGE_DTOR)` | ≤ 6.2 |
//! | | `OFFSET(folio._folio_dtor)` == `NUMBER(HUGETLB_PAGE_DTOR)` | 6.3 – 6.5 |
//! | | `NUMBER(PG_hugetlb)` set in the first tail page's flags | 6.6 – 6.8 |
//! | | head's page_type == `PAGE_HUGETLB_MAPCOUNT_VALUE` | ≥ 6.9 |
//! | slab | `NUMBER(PG_slab)` flag | ≤ 6.9 |
//! | | page_type == `PAGE_SLAB_MAPCOUNT_VALUE` | ≥ 6.10 |
//! | page_type encoding | value with bits 0–23 clear: compare the top byte only | ≥ 6.12 |
//! | | otherwise compare the whole word (inverted-bit types, base 0xf0000000; before 4.18 `_mapcount` == -128 for buddy) | ≤ 6.11 |
//!
//! A word with a type's bit cleared and other bits cleared too (which the kernel of
//! 4.18–6.11 would also call that type) does not match: such a page is kept.
//!
//! Each rule of the filter reads only some of these ([`NEEDS`]): when a key is missing or
//! unusable, only the rules that read it are off (their pages are kept), and the others
//! still filter. Only `SIZE(page)` is needed by all.
//!
//! | rule | keys |
//! |---|---|
//! | cache (levels 2, 4) | flags, mapping, _mapcount, compound_info/compound_head, PG_lru; level 2 without 4 also PG_private |
//! | user (level 8) | flags, mapping, _mapcount, compound_info/compound_head, PG_slab/PAGE_SLAB_MAPCOUNT_VALUE |
//! | hugetlb folios as user pages | PG_head_mask and the hugetlb test above |
//! | whole large folios (cache, user) | PG_head_mask and the compound order above (else the head only) |
//! | free (level 16) | _mapcount, private, PAGE_BUDDY_MAPCOUNT_VALUE, LENGTH(zone.free_area); the slab test when types are inverted bits |
//! | unaccepted (level 16) | _mapcount, PAGE_UNACCEPTED_MAPCOUNT_VALUE, LENGTH(zone.free_area) |
//! | hwpoison (always) | flags, PG_hwpoison |
//! | offline (always) | _mapcount, PAGE_OFFLINE_MAPCOUNT_VALUE; the slab test when types are inverted bits |
//!
//! The tail test guards cache and user: a tail page's words belong to its folio (the
//! first tail's mapping word holds counters, odd or even), so without it those rules would
//! read tails as pages of their own. Free, unaccepted and offline pages are typed pages,
//! never tails, and hwpoison marks the very page. User pages need the slab test even when
//! slab pages are typed: from 6.2 a slab's fields overlay `mapping` with bit 0 set, and a
//! kernel that stopped exporting the slab key may have stopped typing slab pages too.

use super::vmcoreinfo::VmcoreInfo;

/// How to read a compound page's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompoundOrder {
    /// A byte at this offset of the first tail page's struct page.
    TailByte(u64),
    /// The low byte of the first tail page's flags word.
    TailFlagsLowByte,
}

/// How to tell that a compound head is a hugetlb folio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugetlbTest {
    /// A destructor id byte at this offset of the first tail page equals the value.
    TailDtor {
        /// Offset of the destructor byte in the first tail page's struct page.
        offset: u64,
        /// `NUMBER(HUGETLB_PAGE_DTOR)`.
        value: u8,
    },
    /// This flag bit is set in the first tail page's flags.
    TailFlag(u64),
    /// The head's page_type.
    PageType(PageType),
}

/// How to tell a slab page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlabTest {
    /// This flag bit is set in the page's flags.
    Flag(u64),
    /// The page_type word holds this type.
    PageType(PageType),
}

/// A page type value as VMCOREINFO exports it (`PAGE_*_MAPCOUNT_VALUE`), with the rule to
/// compare it with a struct page's `_mapcount`/`page_type` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageType(pub u32);

impl PageType {
    fn from_number(v: i64) -> PageType {
        PageType(v as u32)
    }

    /// Since 6.12 a type is the top byte and bits 0–23 may carry data: compare the byte.
    /// Before, a type is a cleared bit in an otherwise all-ones word: compare exactly.
    pub fn matches(self, word: u32) -> bool {
        if self.0 & 0x00ff_ffff == 0 {
            word & 0xff00_0000 == self.0
        } else {
            word == self.0
        }
    }
}

/// What a tail page's `compound_info`/`compound_head` word says about its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailLink {
    /// The head's struct page address (the word was head + 1).
    Pointer(u64),
    /// The word `GENMASK(63, order + log2(SIZE(page))) | 1` (7.1+ with the hugetlb vmemmap
    /// optimisation): head = the tail's own struct page address & mask.
    Mask(u64),
}

impl TailLink {
    /// The address of the head's struct page, for a tail whose struct page is at `own`.
    pub fn head(self, own: u64) -> u64 {
        match self {
            TailLink::Pointer(h) => h,
            TailLink::Mask(m) => own & m,
        }
    }

    /// The folio's order, which only the mask encoding carries.
    pub fn order(self, page_struct_size: u64) -> Option<u64> {
        match self {
            TailLink::Pointer(_) => None,
            TailLink::Mask(m) => {
                let bits = u64::from((m & !1).trailing_zeros());
                bits.checked_sub(u64::from(page_struct_size.trailing_zeros()))
            }
        }
    }
}

/// A VMCOREINFO entry (or a choice of entries) that a rule of the filter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// `OFFSET(page.flags)`.
    Flags,
    /// `OFFSET(page.mapping)`.
    Mapping,
    /// `OFFSET(page.private)`.
    Private,
    /// `OFFSET(page._mapcount)`.
    Mapcount,
    /// `OFFSET(page.compound_info)` or `OFFSET(page.compound_head)`.
    Compound,
    /// `NUMBER(PG_head_mask)`.
    HeadMask,
    /// `NUMBER(PG_lru)`.
    Lru,
    /// `NUMBER(PG_private)`.
    PrivateFlag,
    /// `NUMBER(PG_slab)` or `NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)`.
    Slab,
    /// `NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)`.
    Buddy,
    /// `LENGTH(zone.free_area)`.
    FreeArea,
    /// Where a compound page's order is (see `CompoundOrder`).
    Order,
    /// How a hugetlb folio is told (see `HugetlbTest`).
    Hugetlb,
    /// `NUMBER(PG_hwpoison)`.
    Hwpoison,
    /// `NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)`.
    Offline,
    /// `NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)`.
    Unaccepted,
}

impl Key {
    /// The entry's name as VMCOREINFO spells it.
    pub fn name(self) -> &'static str {
        match self {
            Key::Flags => "OFFSET(page.flags)",
            Key::Mapping => "OFFSET(page.mapping)",
            Key::Private => "OFFSET(page.private)",
            Key::Mapcount => "OFFSET(page._mapcount)",
            Key::Compound => "OFFSET(page.compound_info) or OFFSET(page.compound_head)",
            Key::HeadMask => "NUMBER(PG_head_mask)",
            Key::Lru => "NUMBER(PG_lru)",
            Key::PrivateFlag => "NUMBER(PG_private)",
            Key::Slab => "NUMBER(PG_slab) or NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)",
            Key::Buddy => "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)",
            Key::FreeArea => "LENGTH(zone.free_area)",
            Key::Order => {
                "OFFSET(page.compound_order), OFFSET(folio._folio_order) or NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)"
            }
            Key::Hugetlb => {
                "NUMBER(HUGETLB_PAGE_DTOR), NUMBER(PG_hugetlb) or NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)"
            }
            Key::Hwpoison => "NUMBER(PG_hwpoison)",
            Key::Offline => "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)",
            Key::Unaccepted => "NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)",
        }
    }
}

/// A rule of the filter that needs its own VMCOREINFO keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Page cache (levels 2 and 4).
    Cache,
    /// Telling cache pages with private data apart (level 2 without 4).
    NonPrivateCache,
    /// Anonymous pages (level 8).
    User,
    /// Hugetlb folios, as user pages.
    Hugetlb,
    /// A large folio's tail pages, excluded with its head.
    LargeFolios,
    /// Free buddy blocks (level 16).
    Free,
    /// Unaccepted memory (level 16).
    Unaccepted,
    /// Hwpoison pages (always).
    Hwpoison,
    /// Offline pages (always).
    Offline,
}

/// The keys each rule reads, beyond `SIZE(page)` (see the module's second table).
pub const NEEDS: &[(Rule, &[Key])] = &[
    (
        Rule::Cache,
        &[
            Key::Flags,
            Key::Mapping,
            Key::Mapcount,
            Key::Compound,
            Key::Lru,
        ],
    ),
    (Rule::NonPrivateCache, &[Key::PrivateFlag]),
    (
        Rule::User,
        &[
            Key::Flags,
            Key::Mapping,
            Key::Mapcount,
            Key::Compound,
            Key::Slab,
        ],
    ),
    (Rule::Hugetlb, &[Key::HeadMask, Key::Hugetlb]),
    (Rule::LargeFolios, &[Key::HeadMask, Key::Order]),
    (
        Rule::Free,
        &[Key::Mapcount, Key::Private, Key::Buddy, Key::FreeArea],
    ),
    (
        Rule::Unaccepted,
        &[Key::Mapcount, Key::Unaccepted, Key::FreeArea],
    ),
    (Rule::Hwpoison, &[Key::Flags, Key::Hwpoison]),
    (Rule::Offline, &[Key::Mapcount, Key::Offline]),
];

/// The struct page layout and the tests built from it. A field is `None` when VMCOREINFO
/// lacks it or its value is unusable; the rules that read it are then off.
#[derive(Debug, Clone)]
pub struct PageLayout {
    /// `SIZE(page)`: bytes of one struct page.
    pub size: u64,
    /// Offset of the flags word.
    pub flags: Option<u64>,
    /// Offset of `mapping` (bit 0 set: an anonymous page).
    pub mapping: Option<u64>,
    /// Offset of `private` (a free block's order).
    pub private: Option<u64>,
    /// Offset of `_mapcount` (the page type word of typed pages).
    pub mapcount: Option<u64>,
    /// `compound_info` (7.1+) or `compound_head`: bit 0 marks a tail page.
    pub compound: Option<u64>,
    /// Mask of PG_head in flags.
    pub head_mask: Option<u64>,
    /// Mask of PG_lru in flags.
    pub lru: Option<u64>,
    /// Mask of PG_private in flags.
    pub private_flag: Option<u64>,
    /// Mask of PG_swapcache in flags.
    pub swapcache: Option<u64>,
    /// Mask of PG_swapbacked in flags.
    pub swapbacked: Option<u64>,
    /// Mask of PG_hwpoison in flags.
    pub hwpoison: Option<u64>,
    /// The page type of a free buddy block's first page.
    pub buddy: Option<PageType>,
    /// The page type of an offline page.
    pub offline: Option<PageType>,
    /// The page type of an unaccepted block's first page.
    pub unaccepted: Option<PageType>,
    /// How a slab page is told.
    pub slab: Option<SlabTest>,
    /// Where a compound page's order is.
    pub order: Option<CompoundOrder>,
    /// How a hugetlb folio is told.
    pub hugetlb: Option<HugetlbTest>,
    /// Orders of the buddy allocator: `LENGTH(zone.free_area)`.
    pub free_area_orders: Option<u32>,
    /// Keys present in VMCOREINFO with a value that cannot be used (an offset beyond
    /// struct page).
    pub unusable: Vec<Key>,
}

/// Why no struct page can be decoded on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub Vec<&'static str>);

fn bit(info: &VmcoreInfo, name: &str) -> Option<u64> {
    let v = info.number(name)?;
    (0..64).contains(&v).then(|| 1u64 << v)
}

fn off(info: &VmcoreInfo, name: &str) -> Option<u64> {
    info.offset(name).and_then(|v| u64::try_from(v).ok())
}

/// A page type whose value has bits 0–23 clear: one type per page (6.12+), so a page of
/// this type cannot also be a slab page.
fn one_type_per_page(t: Option<PageType>) -> bool {
    t.is_some_and(|t| t.0 & 0x00ff_ffff == 0)
}

impl PageLayout {
    /// Reads the table from VMCOREINFO. `Err` only when `SIZE(page)` is missing or
    /// implausible: then no struct page can be decoded at all.
    pub fn from_vmcoreinfo(info: &VmcoreInfo) -> Result<PageLayout, Missing> {
        let Some(size) = info.size("page").and_then(|v| u64::try_from(v).ok()) else {
            return Err(Missing(vec!["SIZE(page)"]));
        };
        if !(32..=4096).contains(&size) || size % 8 != 0 {
            return Err(Missing(vec!["a plausible SIZE(page)"]));
        }
        // A field read must lie inside struct page (the first tail page is read through
        // the same offsets); an offset beyond it is unusable.
        let mut unusable = Vec::new();
        let mut field = |name: &str, width: u64, key: Key| {
            let v = info.offset(name)?;
            let o = u64::try_from(v)
                .ok()
                .filter(|&o| o.saturating_add(width) <= size);
            if o.is_none() {
                unusable.push(key);
            }
            o
        };
        let flags = field("page.flags", 8, Key::Flags);
        let mapping = field("page.mapping", 8, Key::Mapping);
        let private = field("page.private", 8, Key::Private);
        let mapcount = field("page._mapcount", 4, Key::Mapcount);
        let compound = match info.offset("page.compound_info") {
            Some(_) => field("page.compound_info", 8, Key::Compound),
            None => field("page.compound_head", 8, Key::Compound),
        };

        let page_type = |name: &str| info.number(name).map(PageType::from_number);
        let hugetlb_dtor = info.number("HUGETLB_PAGE_DTOR").map(|v| v as u8);
        let in_tail = |folio_off: i64| u64::try_from(folio_off).ok()?.checked_sub(size);

        let order = if let Some(o) = off(info, "page.compound_order") {
            Some(CompoundOrder::TailByte(o))
        } else if let Some(o) = info.offset("folio._folio_order").and_then(in_tail) {
            Some(CompoundOrder::TailByte(o))
        } else if info.number("PAGE_HUGETLB_MAPCOUNT_VALUE").is_some() {
            Some(CompoundOrder::TailFlagsLowByte)
        } else {
            None
        };
        let hugetlb = if let (Some(o), Some(v)) = (off(info, "page.compound_dtor"), hugetlb_dtor) {
            Some(HugetlbTest::TailDtor {
                offset: o,
                value: v,
            })
        } else if let (Some(o), Some(v)) = (
            info.offset("folio._folio_dtor").and_then(in_tail),
            hugetlb_dtor,
        ) {
            Some(HugetlbTest::TailDtor {
                offset: o,
                value: v,
            })
        } else if let Some(b) = bit(info, "PG_hugetlb") {
            Some(HugetlbTest::TailFlag(b))
        } else {
            page_type("PAGE_HUGETLB_MAPCOUNT_VALUE").map(HugetlbTest::PageType)
        };
        let slab = match bit(info, "PG_slab") {
            Some(b) => Some(SlabTest::Flag(b)),
            None => page_type("PAGE_SLAB_MAPCOUNT_VALUE").map(SlabTest::PageType),
        };
        Ok(PageLayout {
            size,
            flags,
            mapping,
            private,
            mapcount,
            compound,
            head_mask: info.number("PG_head_mask").map(|v| v as u64),
            lru: bit(info, "PG_lru"),
            private_flag: bit(info, "PG_private"),
            swapcache: bit(info, "PG_swapcache"),
            swapbacked: bit(info, "PG_swapbacked"),
            hwpoison: bit(info, "PG_hwpoison"),
            buddy: page_type("PAGE_BUDDY_MAPCOUNT_VALUE"),
            offline: page_type("PAGE_OFFLINE_MAPCOUNT_VALUE"),
            unaccepted: page_type("PAGE_UNACCEPTED_MAPCOUNT_VALUE"),
            slab,
            order,
            hugetlb,
            free_area_orders: info
                .length("zone.free_area")
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&v| (1..=64).contains(&v)),
            unusable,
        })
    }

    fn has(&self, key: Key) -> bool {
        match key {
            Key::Flags => self.flags.is_some(),
            Key::Mapping => self.mapping.is_some(),
            Key::Private => self.private.is_some(),
            Key::Mapcount => self.mapcount.is_some(),
            Key::Compound => self.compound.is_some(),
            Key::HeadMask => self.head_mask.is_some(),
            Key::Lru => self.lru.is_some(),
            Key::PrivateFlag => self.private_flag.is_some(),
            Key::Slab => self.slab.is_some(),
            Key::Buddy => self.buddy.is_some(),
            Key::FreeArea => self.free_area_orders.is_some(),
            Key::Order => self.order.is_some(),
            Key::Hugetlb => self.hugetlb.is_some(),
            Key::Hwpoison => self.hwpoison.is_some(),
            Key::Offline => self.offline.is_some(),
            Key::Unaccepted => self.unaccepted.is_some(),
        }
    }

    /// The keys this kernel's VMCOREINFO lacks (or has unusable) for a rule: empty when
    /// the rule can be applied.
    pub fn missing(&self, rule: Rule) -> Vec<Key> {
        let needs = NEEDS
            .iter()
            .filter(|(r, _)| *r == rule)
            .flat_map(|(_, keys)| keys.iter().copied());
        let mut m: Vec<Key> = needs.filter(|&k| !self.has(k)).collect();
        // With inverted-bit types a slab page's word could equal a type's value: the
        // slab test must be known. With one type per page it cannot.
        let typed = match rule {
            Rule::Free => Some(self.buddy),
            Rule::Offline => Some(self.offline),
            _ => None,
        };
        if let Some(t) = typed
            && t.is_some()
            && !one_type_per_page(t)
            && self.slab.is_none()
        {
            m.push(Key::Slab);
        }
        m
    }

    /// Why a key cannot be used, for a warning.
    pub fn why(&self, key: Key) -> String {
        if self.unusable.contains(&key) {
            format!("VMCOREINFO's {} is unusable", key.name())
        } else {
            format!("VMCOREINFO lacks {}", key.name())
        }
    }

    /// What a tail page's compound word says, `None` when the page is not a tail. The two
    /// encodings of 7.1+ are told apart by the value: a mask is ones from some bit above
    /// log2(SIZE(page)) up to bit 63, which no struct page address + 1 is (vmemmap is never
    /// at the very top of the address space).
    pub fn tail_link(&self, word: u64) -> Option<TailLink> {
        if word & 1 == 0 {
            return None;
        }
        let m = word & !1;
        let shift = self.size.trailing_zeros();
        let mask = self.size.is_power_of_two()
            && m != 0
            && m.leading_ones() + m.trailing_zeros() == 64
            && m.trailing_zeros() > shift;
        Some(if mask {
            TailLink::Mask(word)
        } else {
            TailLink::Pointer(word - 1)
        })
    }
}

#[cfg(test)]
mod tests;
