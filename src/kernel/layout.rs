//! Everything vmsift knows about how a kernel version lays out `struct page`, as one table
//! filled from which VMCOREINFO keys exist. Kernel versions are never compared: each rule
//! below names the keys that select it, so a new kernel is a data change here.
//!
//! | what | selected by (first that exists) | kernels |
//! |---|---|---|
//! | compound order | `OFFSET(page.compound_order)` in the first tail page | ≤ 6.2 |
//! | | `OFFSET(folio._folio_order)` − `SIZE(page)` in the first tail page | 6.3 – 6.8 |
//! | | low byte of the first tail page's flags (`PAGE_HUGETLB_MAPCOUNT_VALUE` exists) | ≥ 6.9 |
//! | hugetlb folio | `OFFSET(page.compound_dtor)` == `NUMBER(HUGETLB_PAGE_DTOR)` | ≤ 6.2 |
//! | | `OFFSET(folio._folio_dtor)` == `NUMBER(HUGETLB_PAGE_DTOR)` | 6.3 – 6.5 |
//! | | `NUMBER(PG_hugetlb)` set in the first tail page's flags | 6.6 – 6.8 |
//! | | head's page_type == `PAGE_HUGETLB_MAPCOUNT_VALUE` | ≥ 6.9 |
//! | slab | `NUMBER(PG_slab)` flag | ≤ 6.9 |
//! | | page_type == `PAGE_SLAB_MAPCOUNT_VALUE` | ≥ 6.10 |
//! | page_type encoding | value with bits 0–23 clear: compare the top byte only | ≥ 6.12 |
//! | | otherwise compare the whole word (inverted-bit types) | ≤ 6.11 |

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
    TailDtor { offset: u64, value: u8 },
    /// This flag bit is set in the first tail page's flags.
    TailFlag(u64),
    /// The head's page_type.
    PageType(PageType),
}

/// How to tell a slab page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlabTest {
    Flag(u64),
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

/// The struct page layout and the tests built from it.
#[derive(Debug, Clone)]
pub struct PageLayout {
    pub size: u64,
    pub flags: u64,
    pub mapping: u64,
    pub private: u64,
    pub mapcount: u64,
    pub compound_head: u64,
    /// Mask of PG_head in flags.
    pub head_mask: u64,
    pub lru: Option<u64>,
    pub private_flag: Option<u64>,
    pub swapcache: Option<u64>,
    pub swapbacked: Option<u64>,
    pub hwpoison: Option<u64>,
    pub buddy: Option<PageType>,
    pub offline: Option<PageType>,
    pub unaccepted: Option<PageType>,
    pub slab: Option<SlabTest>,
    pub order: Option<CompoundOrder>,
    pub hugetlb: Option<HugetlbTest>,
    /// Orders of the buddy allocator: `LENGTH(zone.free_area)`.
    pub free_area_orders: Option<u32>,
}

/// Why a page class cannot be told apart on this kernel (for one warning per missing piece).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub Vec<&'static str>);

fn bit(info: &VmcoreInfo, name: &str) -> Option<u64> {
    let v = info.number(name)?;
    (0..64).contains(&v).then(|| 1u64 << v)
}

fn off(info: &VmcoreInfo, name: &str) -> Option<u64> {
    info.offset(name).and_then(|v| u64::try_from(v).ok())
}

impl PageLayout {
    /// Reads the table from VMCOREINFO. `Err` lists the keys without which no struct page
    /// can be decoded at all.
    pub fn from_vmcoreinfo(info: &VmcoreInfo) -> Result<PageLayout, Missing> {
        let mut missing = Vec::new();
        let mut need = |v: Option<u64>, key: &'static str| {
            if v.is_none() {
                missing.push(key);
            }
            v.unwrap_or(0)
        };
        let size = need(
            info.size("page").and_then(|v| u64::try_from(v).ok()),
            "SIZE(page)",
        );
        let flags = need(off(info, "page.flags"), "OFFSET(page.flags)");
        let mapping = need(off(info, "page.mapping"), "OFFSET(page.mapping)");
        let private = need(off(info, "page.private"), "OFFSET(page.private)");
        let mapcount = need(off(info, "page._mapcount"), "OFFSET(page._mapcount)");
        let compound_head = need(
            off(info, "page.compound_head"),
            "OFFSET(page.compound_head)",
        );
        let head_mask = need(
            info.number("PG_head_mask").map(|v| v as u64),
            "NUMBER(PG_head_mask)",
        );
        if !missing.is_empty() {
            return Err(Missing(missing));
        }
        // The fields read must lie inside struct page (the first tail page is read through
        // the same offsets); anything else is a corrupt table.
        let fields = [
            flags + 8,
            mapping + 8,
            private + 8,
            mapcount + 4,
            compound_head + 8,
        ];
        if !(32..=4096).contains(&size) || size % 8 != 0 || fields.iter().any(|&end| end > size) {
            return Err(Missing(vec!["a plausible SIZE(page) and OFFSET(page.*)"]));
        }

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
            compound_head,
            head_mask,
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
        })
    }

    /// For each dump-level bit, what this kernel's table lacks to honour it.
    pub fn missing_for(&self, level_bit: u8) -> Vec<&'static str> {
        let mut m = Vec::new();
        match level_bit {
            2 | 4 => {
                if self.lru.is_none() {
                    m.push("NUMBER(PG_lru)");
                }
                if level_bit == 2 && self.private_flag.is_none() {
                    m.push("NUMBER(PG_private)");
                }
            }
            8 if self.slab.is_none() => {
                m.push("NUMBER(PG_slab) or NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)");
            }
            16 => {
                if self.buddy.is_none() {
                    m.push("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)");
                }
                if self.free_area_orders.is_none() {
                    m.push("LENGTH(zone.free_area)");
                }
            }
            _ => {}
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON: &str = "SIZE(page)=64\nOFFSET(page.flags)=0\nOFFSET(page.mapping)=24\n\
        OFFSET(page.private)=40\nOFFSET(page._mapcount)=48\nOFFSET(page.compound_head)=8\n\
        OFFSET(page.lru)=8\nLENGTH(zone.free_area)=11\nNUMBER(PG_lru)=4\nNUMBER(PG_private)=13\n";

    #[test]
    fn linux_6_1_table() {
        let text = format!(
            "{COMMON}NUMBER(PG_head_mask)=65536\nOFFSET(page.compound_dtor)=16\n\
             OFFSET(page.compound_order)=17\nNUMBER(HUGETLB_PAGE_DTOR)=2\nNUMBER(PG_slab)=9\n\
             NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nNUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257\n"
        );
        let l = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(text.as_bytes())).expect("layout");
        assert_eq!(l.order, Some(CompoundOrder::TailByte(17)));
        assert_eq!(
            l.hugetlb,
            Some(HugetlbTest::TailDtor {
                offset: 16,
                value: 2
            })
        );
        assert_eq!(l.slab, Some(SlabTest::Flag(1 << 9)));
        let buddy = l.buddy.expect("buddy");
        assert!(buddy.matches(0xffff_ff7f));
        assert!(!buddy.matches(0xffff_ff7e) && !buddy.matches(0xffff_ffff));
        assert!(l.missing_for(16).is_empty() && l.missing_for(8).is_empty());
    }

    #[test]
    fn linux_6_12_table() {
        let text = format!(
            "{COMMON}NUMBER(PG_head_mask)=64\nNUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456\n\
             NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=-201326592\nNUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=-184549376\n\
             NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-251658240\n"
        );
        let l = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(text.as_bytes())).expect("layout");
        assert_eq!(l.order, Some(CompoundOrder::TailFlagsLowByte));
        assert_eq!(
            l.hugetlb,
            Some(HugetlbTest::PageType(PageType(0xf400_0000)))
        );
        assert_eq!(l.slab, Some(SlabTest::PageType(PageType(0xf500_0000))));
        let buddy = l.buddy.expect("buddy");
        // The low 24 bits may carry data; only the type byte decides.
        assert!(buddy.matches(0xf000_0000) && buddy.matches(0xf000_0123));
        assert!(!buddy.matches(0xf500_0000) && !buddy.matches(0xffff_ffff) && !buddy.matches(0));
    }

    #[test]
    fn folio_era_and_missing_keys() {
        let text = format!(
            "{COMMON}NUMBER(PG_head_mask)=65536\nOFFSET(folio._folio_order)=82\nNUMBER(PG_hugetlb)=6\n"
        );
        let l = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(text.as_bytes())).expect("layout");
        assert_eq!(l.order, Some(CompoundOrder::TailByte(18)));
        assert_eq!(l.hugetlb, Some(HugetlbTest::TailFlag(1 << 6)));
        assert!(!l.missing_for(8).is_empty() && !l.missing_for(16).is_empty());
        let err = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(b"SIZE(page)=64\n"))
            .expect_err("missing");
        assert!(err.0.contains(&"OFFSET(page.flags)"));
        let bad = COMMON.replace("OFFSET(page._mapcount)=48", "OFFSET(page._mapcount)=4000");
        let bad = format!("{bad}NUMBER(PG_head_mask)=64\n");
        assert!(PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(bad.as_bytes())).is_err());
    }
}
