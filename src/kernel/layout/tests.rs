//! Tests of the struct page tables: each kernel generation's VMCOREINFO gives the layout
//! and rules its kernel needs.

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
    // Everything but the optional page types this text does not export.
    for (rule, _) in NEEDS {
        let want = match rule {
            Rule::Unaccepted => vec![Key::Unaccepted],
            Rule::Hwpoison => vec![Key::Hwpoison],
            _ => vec![],
        };
        assert_eq!(l.missing(*rule), want, "{rule:?}");
    }
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
    assert_eq!(l.missing(Rule::User), vec![Key::Slab]);
    assert_eq!(l.missing(Rule::Free), vec![Key::Buddy]);
    assert_eq!(l.missing(Rule::Cache), vec![]);
    // Without SIZE(page) nothing can be read; without anything else, rules are off one
    // by one.
    let err = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(b"OFFSET(page.flags)=0\n"))
        .expect_err("missing");
    assert_eq!(err.0, vec!["SIZE(page)"]);
    let bare = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(b"SIZE(page)=64\n"))
        .expect("only SIZE(page)");
    assert!(bare.missing(Rule::Cache).contains(&Key::Flags));
    assert_eq!(
        bare.missing(Rule::Hwpoison),
        vec![Key::Flags, Key::Hwpoison]
    );
    assert_eq!(bare.why(Key::Flags), "VMCOREINFO lacks OFFSET(page.flags)");
    // An offset beyond struct page turns off only the rules that read it.
    let bad = COMMON.replace("OFFSET(page._mapcount)=48", "OFFSET(page._mapcount)=4000");
    let bad = format!("{bad}NUMBER(PG_head_mask)=64\nNUMBER(PG_hwpoison)=20\n");
    let l = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(bad.as_bytes())).expect("layout");
    assert_eq!(l.mapcount, None);
    assert_eq!(l.missing(Rule::Cache), vec![Key::Mapcount]);
    assert_eq!(l.missing(Rule::Hwpoison), vec![]);
    assert_eq!(
        l.why(Key::Mapcount),
        "VMCOREINFO's OFFSET(page._mapcount) is unusable"
    );
    let odd = COMMON.replace("SIZE(page)=64", "SIZE(page)=99");
    assert!(PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(odd.as_bytes())).is_err());
}

/// Inverted-bit types need the slab test to tell a free page; one type per page does
/// not.
#[test]
fn slab_guard_only_for_inverted_bit_types() {
    let old = format!("{COMMON}NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\n");
    let l = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(old.as_bytes())).expect("layout");
    assert_eq!(l.missing(Rule::Free), vec![Key::Slab]);
    let new = format!("{COMMON}NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456\n");
    let l = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(new.as_bytes())).expect("layout");
    assert_eq!(l.missing(Rule::Free), vec![]);
}

/// The 4.4 to 5.4 key sets of the synthetic kernels: where order and destructor are,
/// the exact buddy value, and which rules have their keys.
#[test]
fn linux_4_x_tables() {
    use crate::synth::{Flavor, SynthKernel};
    for (flavor, order, dtor, buddy) in [
        (Flavor::Linux4_4, 42, 40, 0xffff_ff80u32),
        (Flavor::Linux4_9, 44, 40, 0xffff_ff80),
        (Flavor::Linux4_18, 17, 16, 0xffff_ff7f),
        (Flavor::Linux4_19, 17, 16, 0xffff_ff7f),
        (Flavor::Linux5_4, 17, 16, 0xffff_ff7f),
    ] {
        let k = SynthKernel::new(flavor, 256);
        let info = VmcoreInfo::parse(k.vmcoreinfo().as_bytes());
        let l = PageLayout::from_vmcoreinfo(&info).expect("layout");
        assert_eq!(l.order, Some(CompoundOrder::TailByte(order)), "{flavor:?}");
        let hugetlb = HugetlbTest::TailDtor {
            offset: dtor,
            value: 2,
        };
        assert_eq!(l.hugetlb, Some(hugetlb), "{flavor:?}");
        assert_eq!(l.slab, Some(SlabTest::Flag(k.flag("slab"))), "{flavor:?}");
        let b = l.buddy.expect("buddy");
        // Exactly the one cleared bit (or -128): not a plain page, not another type.
        assert!(b.matches(buddy) && !b.matches(u32::MAX), "{flavor:?}");
        assert!(
            !b.matches(buddy & !0x200) && !b.matches(!0x100),
            "{flavor:?}"
        );
        assert_eq!(l.swapbacked, None);
        for (rule, _) in NEEDS {
            let want = match rule {
                Rule::Unaccepted => vec![Key::Unaccepted],
                Rule::Offline if !flavor.has_offline() => vec![Key::Offline],
                _ => vec![],
            };
            assert_eq!(l.missing(*rule), want, "{flavor:?} {rule:?}");
        }
    }
}

/// 7.1 renamed compound_head to compound_info; either encoding of it marks tails.
#[test]
fn linux_7_1_compound_info() {
    let text = COMMON.replace("page.compound_head", "page.compound_info");
    let text = format!(
        "{text}NUMBER(PG_head_mask)=64\nNUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456\n\
         NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=-201326592\nNUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=-184549376\n"
    );
    let l = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(text.as_bytes())).expect("layout");
    assert_eq!(l.compound, Some(8));
    for rule in [
        Rule::Cache,
        Rule::User,
        Rule::Hugetlb,
        Rule::LargeFolios,
        Rule::Free,
    ] {
        assert_eq!(l.missing(rule), vec![], "{rule:?}");
    }
    // Order 9 with 64-byte struct pages: GENMASK(63, 15) | 1.
    let mask = 0xffff_ffff_ffff_8001;
    let link = l.tail_link(mask).expect("a tail");
    assert_eq!(link, TailLink::Mask(mask));
    assert_eq!(link.order(64), Some(9));
    let head = 0xffff_ea00_0004_0000u64; // pfn 0x1000, aligned to 512 pages
    assert_eq!(link.head(head + 300 * 64), head);
    // head + 1 is a pointer, even for a head aligned far beyond any order.
    let link = l.tail_link(head + 1).expect("a tail");
    assert_eq!(link, TailLink::Pointer(head));
    assert_eq!((link.head(head + 64), link.order(64)), (head, None));
    assert_eq!(l.tail_link(head), None);
    // A mask must reach above log2(SIZE(page)): ones down to bit 6 are order 0, no
    // folio, so that word is read as a pointer.
    assert_eq!(l.tail_link(!0x3f | 1), Some(TailLink::Pointer(!0x3f)));
    // With both keys, compound_info (the newer name) is the one read.
    let both = format!("{text}OFFSET(page.compound_head)=16\n");
    let l = PageLayout::from_vmcoreinfo(&VmcoreInfo::parse(both.as_bytes())).expect("layout");
    assert_eq!(l.compound, Some(8));
}
