//! Page classes on a synthetic kernel (real page tables, mem_section and struct pages in
//! the 6.1 and 6.12 encodings): every rule of the filter, per dump level, through the
//! binary; corrupt struct pages keep their pages; cycles of any size give the same bitmap.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmsift::filter::DumpLevel;
use vmsift::input::Vmcore;
use vmsift::input::kdump::{KdumpFile, Page};
use vmsift::synth::arm64::{Arm64Config, Arm64Kernel};
use vmsift::synth::{Flavor, PAGE_OFFSET, SynthKernel};

const ANON: u64 = (PAGE_OFFSET + 0x7000) | 1;
const FILE: u64 = PAGE_OFFSET + 0x9000;

/// The pfns excluded at each level bit, plus those always excluded.
#[derive(Clone)]
struct Expect {
    cache: Vec<u64>,
    cache_private: Vec<u64>,
    user: Vec<u64>,
    free: Vec<u64>,
    always: Vec<u64>,
}

fn range(a: u64, n: u64) -> Vec<u64> {
    (a..a + n).collect()
}

/// Builds a kernel with one page of every class (and some corrupt ones) from pfn 1024.
fn kernel(flavor: Flavor) -> (SynthKernel, Expect) {
    let mut k = SynthKernel::new(flavor, 4096);
    assert!(k.first_free_pfn < 1024);
    let o = k.o;
    let f = |k: &SynthKernel, n: &str| k.flag(n);
    // Free: a buddy block of order 3, and one of order 7 (crosses small cycles).
    k.buddy(1024, 3);
    k.buddy(1152, 7);
    // User: an anonymous THP of order 4, a single anon page, an anon page in swap cache.
    k.folio(1056, 4, f(&k, "lru") | f(&k, "swapbacked"), ANON, false);
    k.set_u64(1080, o.mapping, ANON);
    k.set_u64(1081, o.flags, f(&k, "swapcache") | f(&k, "swapbacked"));
    k.set_u64(1081, o.mapping, ANON);
    // A hugetlb folio of order 2 (its mapping is a hugetlbfs file).
    k.folio(1084, 2, 0, FILE, true);
    // Cache: plain, with private data, a large file folio, a shmem page in swap cache.
    let lru = f(&k, "lru");
    k.set_u64(1090, o.flags, lru);
    k.set_u64(1090, o.mapping, FILE);
    k.set_u64(1091, o.flags, lru | f(&k, "private"));
    k.set_u64(1091, o.mapping, FILE);
    k.folio(1092, 2, lru, FILE, false);
    k.set_u64(1096, o.flags, f(&k, "swapcache") | f(&k, "swapbacked"));
    k.set_u64(1096, o.mapping, FILE);
    // Always excluded: hwpoison and offline (a balloon page, kept, where the kernel
    // exports no offline type).
    k.set_u64(1100, o.flags, f(&k, "hwpoison"));
    let offline = if flavor.has_offline() {
        k.page_type("offline")
    } else {
        k.page_type("balloon")
    };
    k.set_u32(1101, o.mapcount, offline);
    // Kept whatever the level: a slab page whose mapping word has bit 0 set (as 6.12's
    // slab fields do), an LRU page without mapping, a buddy order beyond MAX_ORDER, a
    // misaligned compound head (its tails are kept), a typed page with an odd mapping.
    if flavor.typed_slab() {
        let t = k.page_type("slab");
        k.set_u32(1102, o.mapcount, t);
    } else {
        k.set_u64(1102, o.flags, f(&k, "slab"));
    }
    k.set_u64(1102, o.mapping, ANON);
    k.set_u64(1103, o.flags, lru);
    k.buddy(1104, 30);
    k.folio(1105, 3, 0, ANON, false);
    k.set_u32(1120, o.mapcount, 0xf200_0000);
    k.set_u64(1120, o.mapping, ANON);
    let mut e = Expect {
        cache: [vec![1090], range(1092, 4), vec![1096]].concat(),
        cache_private: vec![1091],
        user: [
            range(1056, 16),
            vec![1080, 1081],
            range(1084, 4),
            vec![1105],
        ]
        .concat(),
        free: [range(1024, 8), range(1152, 128)].concat(),
        always: if flavor.has_offline() {
            vec![1100, 1101]
        } else {
            vec![1100]
        },
    };
    if flavor.typed_slab() {
        // A page type no table knows (data in the owner's bits), on an LRU page with an
        // odd mapping: kept.
        k.set_u32(1121, o.mapcount, 0xf900_1234);
        k.set_u64(1121, o.flags, lru);
        k.set_u64(1121, o.mapping, ANON);
    } else {
        // Before 6.10 a slab page's _mapcount word holds the allocator's counters, which
        // may equal a page type's value: slab pages that look free or offline are kept.
        let slab = f(&k, "slab");
        let buddy = k.page_type("buddy");
        k.set_u64(1122, o.flags, slab);
        k.set_u32(1122, o.mapcount, buddy);
        k.set_u32(1123, o.mapcount, offline);
        k.set_u64(1123, o.flags, slab);
    }
    if flavor.tail_mask() {
        // An order-9 hugetlb folio under the vmemmap optimisation: its struct pages are
        // read through the kernel's page tables, and all its tails hold the same mask.
        k.folio(1536, 9, 0, FILE, true);
        k.optimize_vmemmap(1536, 9);
        e.user.extend(range(1536, 512));
        // An anonymous folio whose flags say order 2 but whose tails' mask says order 3:
        // corrupt, so only the head page is taken as a user page.
        k.folio(1124, 3, lru | f(&k, "swapbacked"), ANON, false);
        k.set_u64(1125, o.flags, 2);
        e.user.push(1124);
    }
    if matches!(flavor, Flavor::Linux6_1 | Flavor::Linux6_12) {
        // An order-9 hugetlb folio under 5.18-7.0's vmemmap optimisation: read through the
        // kernel's page tables, every 64th struct page is a "fake head", a copy of the
        // head; they are tails, not misaligned heads.
        k.folio(1536, 9, 0, FILE, true);
        k.optimize_vmemmap_fake_heads(1536, 9);
        e.user.extend(range(1536, 512));
    }
    (k, e)
}

fn expected(e: &Expect, level: u8) -> BTreeSet<u64> {
    let mut s: BTreeSet<u64> = e.always.iter().copied().collect();
    if level & (2 | 4) != 0 {
        s.extend(&e.cache);
    }
    if level & 4 != 0 {
        s.extend(&e.cache_private);
    }
    if level & 8 != 0 {
        s.extend(&e.user);
    }
    if level & 16 != 0 {
        s.extend(&e.free);
    }
    s
}

/// What differs between two sets of excluded pfns, short enough for an assertion message.
fn diff(got: &BTreeSet<u64>, want: &BTreeSet<u64>) -> String {
    let wrongly_excluded: Vec<_> = got.difference(want).collect();
    let wrongly_kept: Vec<_> = want.difference(got).collect();
    format!("wrongly excluded {wrongly_excluded:?}, wrongly kept {wrongly_kept:?}")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("filter-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn excluded_by_binary(vmcore: &Path, out: &Path, level: u8, pages: u64) -> (BTreeSet<u64>, String) {
    excluded_from(vmcore, out, level, 0, pages)
}

/// The pfns the dump excludes among `first..first + pages`, counted from `first`.
fn excluded_from(
    vmcore: &Path,
    out: &Path,
    level: u8,
    first: u64,
    pages: u64,
) -> (BTreeSet<u64>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(["-l", "--show-stats", "-d", &level.to_string()])
        .arg(vmcore)
        .arg(out)
        .output()
        .expect("run vmsift");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "-d {level}: {err}");
    let dump = KdumpFile::open(fs::File::open(out).expect("open")).expect("parse dump");
    let mut set = BTreeSet::new();
    for pfn in first..first + pages {
        match dump.read_page(pfn).expect("read") {
            Page::Excluded => {
                set.insert(pfn - first);
            }
            Page::Data(_) => {}
            other => panic!("pfn {pfn}: {other:?}"),
        }
    }
    fs::remove_file(out).expect("clean up");
    (set, err)
}

fn every_level(flavor: Flavor, name: &str) {
    let dir = scratch(name);
    let (k, e) = kernel(flavor);
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, k.vmcore().to_bytes()).expect("write vmcore");
    levels_match(&vmcore, &dir, 0, k.pages, &e, name);
}

/// Every dump level of `vmcore` excludes exactly what `e` expects among its `pages` page
/// frames from `first`, and reports each corrupt kind once.
fn levels_match(vmcore: &Path, dir: &Path, first: u64, pages: u64, e: &Expect, name: &str) {
    for level in [0u8, 1, 2, 4, 8, 16, 31] {
        let (got, stderr) = excluded_from(vmcore, &dir.join("dump"), level, first, pages);
        let want = expected(e, level);
        assert!(
            got == want,
            "{name} -d {level}: {}\n{stderr}",
            diff(&got, &want)
        );
        if level == 31 {
            // Each corrupt kind is reported once.
            assert_eq!(
                stderr.matches("free block of order 30").count(),
                1,
                "{stderr}"
            );
            assert_eq!(stderr.matches("compound order 3").count(), 1, "{stderr}");
            let user = format!("User process data pages : {:#018x}", e.user.len());
            let free = format!("Free pages              : {:#018x}", e.free.len());
            assert!(stderr.contains(&user) && stderr.contains(&free), "{stderr}");
        }
    }
}

/// Under 5.18-7.0's hugetlb vmemmap optimisation, the "fake heads" (copies of the head
/// that every 64th struct page of the folio reads as) are tails: the folio goes as a whole
/// where hugetlb pages are excluded, and is kept whole, without a word about corrupt
/// compound orders, everywhere else.
#[test]
fn vmemmap_fake_heads_are_tails() {
    for flavor in [Flavor::Linux6_1, Flavor::Linux6_12] {
        let dir = scratch(&format!("fake-heads-{flavor:?}"));
        let mut k = SynthKernel::new(flavor, 4096);
        k.folio(1536, 9, 0, FILE, true);
        k.optimize_vmemmap_fake_heads(1536, 9);
        let vmcore = dir.join("vmcore");
        fs::write(&vmcore, k.vmcore().to_bytes()).expect("write vmcore");
        for level in [2u8, 4, 8, 16, 31] {
            let (got, stderr) = excluded_by_binary(&vmcore, &dir.join("dump"), level, k.pages);
            let want: BTreeSet<u64> = if level & 8 != 0 {
                (1536..2048).collect()
            } else {
                BTreeSet::new()
            };
            assert!(got == want, "{flavor:?} -d {level}: {}", diff(&got, &want));
            assert!(
                !stderr.contains("compound order"),
                "{flavor:?} -d {level}: {stderr}"
            );
        }
    }
}

#[test]
fn linux_6_1_every_class_at_every_level() {
    every_level(Flavor::Linux6_1, "6.1");
}

#[test]
fn linux_6_12_every_class_at_every_level() {
    every_level(Flavor::Linux6_12, "6.12");
}

#[test]
fn linux_7_1_every_class_at_every_level() {
    every_level(Flavor::Linux7_1, "7.1");
}

#[test]
fn linux_7_1_vmemmap_optimised_every_class_at_every_level() {
    every_level(Flavor::Linux7_1Hvo, "7.1-hvo");
}

/// Linux 4.4's encodings (below the tested range, kept for the rules): compound_dtor and
/// compound_order as u16, a free page's `_mapcount == -128`, struct page before 4.18's
/// rearrangement, and no SECTION_SIZE_BITS or MAX_PHYSMEM_BITS in VMCOREINFO.
#[test]
fn linux_4_4_every_class_at_every_level() {
    every_level(Flavor::Linux4_4, "4.4");
}

/// Linux 4.9 (below the tested range): 4.4's encodings with compound_dtor and
/// compound_order as u32.
#[test]
fn linux_4_9_every_class_at_every_level() {
    every_level(Flavor::Linux4_9, "4.9");
}

/// RHEL 8's 4.18: page_type with base 0xf0000000 and cleared bits, u8 dtor and order,
/// PG_slab, an offline type, no sparsemem geometry keys.
#[test]
fn linux_4_18_every_class_at_every_level() {
    every_level(Flavor::Linux4_18, "4.18");
}

/// 4.19 (Kylin V10, openEuler): as 4.18, with no offline type exported (its balloon
/// page is kept).
#[test]
fn linux_4_19_every_class_at_every_level() {
    every_level(Flavor::Linux4_19, "4.19");
}

/// 5.4: flags renumbered around PG_workingset, sparsemem geometry exported.
#[test]
fn linux_5_4_every_class_at_every_level() {
    every_level(Flavor::Linux5_4, "5.4");
}

/// A 5.4 kernel without CONFIG_HUGETLB_PAGE exports neither HUGETLB_PAGE_DTOR nor
/// PAGE_OFFLINE_MAPCOUNT_VALUE: hugetlb-looking folios and offline pages are kept, the
/// rest still filters, and only the hugetlb key is warned about.
#[test]
fn linux_5_4_without_hugetlb_keeps_hugetlb_and_offline() {
    let (k, e) = kernel(Flavor::Linux5_4);
    let info = without(&k.vmcoreinfo(), "NUMBER(HUGETLB_PAGE_DTOR)");
    let info = without(&info, "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)");
    let (got, stderr) = excluded_with_info("5.4-nohugetlb", &k, &info, 31);
    let want = expected(
        &Expect {
            user: e
                .user
                .iter()
                .copied()
                .filter(|p| !(1084..1088).contains(p))
                .collect(),
            always: vec![1100],
            ..e
        },
        31,
    );
    assert!(got == want, "{}\n{stderr}", diff(&got, &want));
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("are kept: VMCOREINFO"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("hugetlb pages are kept"), "{stderr}");
}

/// `kernel(flavor)`'s memory with another VMCOREINFO, excluded at `-d level`.
fn excluded_with_info(
    name: &str,
    k: &SynthKernel,
    info: &str,
    level: u8,
) -> (BTreeSet<u64>, String) {
    let dir = scratch(name);
    let mut s = vmsift::synth::SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(info);
    s = s.load(0, k.mem.clone(), 0);
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, s.to_bytes()).expect("write");
    excluded_by_binary(&vmcore, &dir.join("dump"), level, k.pages)
}

fn without(info: &str, key: &str) -> String {
    let kept: String = info
        .lines()
        .filter(|l| !l.starts_with(key))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(kept.len(), info.len(), "{key} not in VMCOREINFO");
    kept
}

/// A kernel newer than any this project knows: the compound word is exported under a
/// new name and there is a new page type. Cache and user pages are kept (one warning
/// says why); free, hwpoison and offline pages are still left out, and the new type's
/// page is kept.
#[test]
fn next_kernel_keeps_only_what_it_cannot_tell() {
    let (mut k, e) = kernel(Flavor::NextKernel);
    let t = k.page_type("new");
    k.set_u32(1122, k.o.mapcount, t);
    k.set_u64(1122, k.o.mapping, ANON);
    let info = k.vmcoreinfo();
    assert!(info.contains("OFFSET(page.memdesc)=8") && !info.contains("compound_"));
    for level in [8u8, 16, 31] {
        let (got, stderr) = excluded_with_info("next", &k, &info, level);
        let want = expected(
            &Expect {
                cache: vec![],
                cache_private: vec![],
                user: vec![],
                ..e.clone()
            },
            level,
        );
        assert!(got == want, "-d {level}: {}\n{stderr}", diff(&got, &want));
        let say = match level {
            8 => "user pages are kept: ",
            16 => "",
            _ => "cache and user pages are kept: ",
        };
        let note = format!(
            "{say}VMCOREINFO lacks OFFSET(page.compound_info) or OFFSET(page.compound_head)"
        );
        assert_eq!(
            stderr.matches("VMCOREINFO lacks").count(),
            usize::from(level != 16),
            "{stderr}"
        );
        assert!(level == 16 || stderr.contains(&note), "{stderr}");
        assert!(!got.contains(&1122) && !got.contains(&1121));
    }
}

/// One VMCOREINFO edit of `each_missing_key_keeps_only_the_classes_that_need_it`.
struct Case {
    /// The key removed, or "KEY=VALUE" to set.
    edit: &'static str,
    /// The classes still excluded.
    e: Expect,
    /// The warning expected.
    note: Option<&'static str>,
}

/// The edits, and what each leaves excluded, of a 7.1 kernel whose full exclusion is `e`.
fn missing_key_cases(e: &Expect) -> Vec<Case> {
    let none = Vec::new;
    let mut cases = vec![
        Case {
            edit: "OFFSET(page.compound_info)",
            e: Expect {
                cache: none(),
                cache_private: none(),
                user: none(),
                ..e.clone()
            },
            note: Some(
                "cache and user pages are kept: VMCOREINFO lacks OFFSET(page.compound_info) or OFFSET(page.compound_head)",
            ),
        },
        Case {
            edit: "OFFSET(page.mapping)=4000",
            e: Expect {
                cache: none(),
                cache_private: none(),
                user: none(),
                ..e.clone()
            },
            note: Some(
                "cache and user pages are kept: VMCOREINFO's OFFSET(page.mapping) is unusable",
            ),
        },
        Case {
            edit: "OFFSET(page.flags)",
            e: Expect {
                cache: none(),
                cache_private: none(),
                user: none(),
                always: vec![1101],
                ..e.clone()
            },
            note: Some(
                "cache, user and hwpoison pages are kept: VMCOREINFO lacks OFFSET(page.flags)",
            ),
        },
        Case {
            edit: "OFFSET(page._mapcount)",
            e: Expect {
                cache: none(),
                cache_private: none(),
                user: none(),
                free: none(),
                always: vec![1100],
            },
            note: Some(
                "cache, user, free and offline pages are kept: VMCOREINFO lacks OFFSET(page._mapcount)",
            ),
        },
        Case {
            edit: "OFFSET(page.private)",
            e: Expect {
                free: none(),
                ..e.clone()
            },
            note: Some("free pages are kept: VMCOREINFO lacks OFFSET(page.private)"),
        },
    ];
    cases.extend(missing_number_cases(e));
    cases
}

/// The cases of `missing_key_cases` that remove a NUMBER.
fn missing_number_cases(e: &Expect) -> Vec<Case> {
    let folio_tails: Vec<u64> = [range(1057, 15), range(1085, 3), range(1537, 511)].concat();
    let file_tails = range(1093, 3);
    let hugetlb = [range(1084, 4), range(1536, 512)].concat();
    let minus = |a: &[u64], b: &[u64]| -> Vec<u64> {
        a.iter().copied().filter(|p| !b.contains(p)).collect()
    };
    let none = Vec::new;
    vec![
        Case {
            edit: "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)",
            e: Expect {
                free: none(),
                ..e.clone()
            },
            note: Some("free pages are kept: VMCOREINFO lacks NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)"),
        },
        Case {
            edit: "LENGTH(zone.free_area)",
            e: Expect {
                free: none(),
                ..e.clone()
            },
            note: Some("free pages are kept: VMCOREINFO lacks LENGTH(zone.free_area)"),
        },
        Case {
            edit: "NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)",
            e: Expect {
                user: none(),
                ..e.clone()
            },
            note: Some(
                "user pages are kept: VMCOREINFO lacks NUMBER(PG_slab) or NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)",
            ),
        },
        Case {
            edit: "NUMBER(PG_lru)",
            e: Expect {
                cache: none(),
                cache_private: none(),
                ..e.clone()
            },
            note: Some("cache pages are kept: VMCOREINFO lacks NUMBER(PG_lru)"),
        },
        Case {
            // Heads are still told by their own words; tails and hugetlb folios are kept.
            edit: "NUMBER(PG_head_mask)",
            e: Expect {
                cache: minus(&e.cache, &file_tails),
                user: minus(&e.user, &[folio_tails.clone(), hugetlb.clone()].concat()),
                ..e.clone()
            },
            note: Some(
                "hugetlb and large folio tail pages are kept: VMCOREINFO lacks NUMBER(PG_head_mask)",
            ),
        },
        Case {
            // On 6.9+ this key also selects where the order is: hugetlb folios are kept
            // whole, other large folios but their head.
            edit: "NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)",
            e: Expect {
                cache: minus(&e.cache, &file_tails),
                user: minus(&e.user, &[folio_tails.clone(), hugetlb.clone()].concat()),
                ..e.clone()
            },
            note: Some(
                "hugetlb pages are kept: VMCOREINFO lacks NUMBER(HUGETLB_PAGE_DTOR), NUMBER(PG_hugetlb) or NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)",
            ),
        },
        Case {
            // Optional on a kernel without CONFIG_MEMORY_FAILURE: no warning.
            edit: "NUMBER(PG_hwpoison)",
            e: Expect {
                always: vec![1101],
                ..e.clone()
            },
            note: None,
        },
    ]
}

/// Each key removed (or made unusable) from a 7.1 kernel's VMCOREINFO turns off exactly
/// the rules that read it: their pages are kept, one warning names the key and the
/// classes, and every other class is still left out.
#[test]
fn each_missing_key_keeps_only_the_classes_that_need_it() {
    let (k, e) = kernel(Flavor::Linux7_1Hvo);
    let info = k.vmcoreinfo();
    let cases = missing_key_cases(&e);
    for c in cases {
        let edited = match c.edit.split_once('=') {
            Some((key, v)) => {
                let old = info.lines().find(|l| l.starts_with(key)).expect("key");
                info.replace(old, &format!("{key}={v}"))
            }
            None => without(&info, c.edit),
        };
        let (got, stderr) = excluded_with_info("keys", &k, &edited, 31);
        let want = expected(&c.e, 31);
        assert!(
            got == want,
            "without {}: {}\n{stderr}",
            c.edit,
            diff(&got, &want)
        );
        let warnings = stderr
            .lines()
            .filter(|l| l.contains("pages are kept: VMCOREINFO"))
            .count();
        match c.note {
            Some(note) => {
                assert!(stderr.contains(note), "without {}: {stderr}", c.edit);
                let also = usize::from(c.edit.contains("HUGETLB"));
                assert_eq!(warnings, 1 + also, "without {}: {stderr}", c.edit);
            }
            None => assert_eq!(warnings, 0, "without {}: {stderr}", c.edit),
        }
    }
}

/// With inverted-bit page types (6.1) a slab page's word could equal a type's value, so
/// without the slab test free and offline pages are kept too; cache still filters.
#[test]
fn inverted_bit_types_need_the_slab_test() {
    let (k, e) = kernel(Flavor::Linux6_1);
    let info = without(&k.vmcoreinfo(), "NUMBER(PG_slab)");
    let (got, stderr) = excluded_with_info("no-pg-slab", &k, &info, 31);
    let want = expected(
        &Expect {
            user: vec![],
            free: vec![],
            always: vec![1100],
            ..e
        },
        31,
    );
    assert!(got == want, "{}\n{stderr}", diff(&got, &want));
    assert!(
        stderr.contains(
            "user, free and offline pages are kept: VMCOREINFO lacks NUMBER(PG_slab) or NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)"
        ),
        "{stderr}"
    );
}

/// The 2nd bitmap is the same whatever the cycle size: blocks that cross a cycle's end
/// carry over into the next one.
#[test]
fn cycles_of_any_size_give_the_same_bitmap() {
    let dir = scratch("cycles");
    let (k, _) = kernel(Flavor::Linux6_12);
    let path = dir.join("vmcore");
    fs::write(&path, k.vmcore().to_bytes()).expect("write");
    let vm = Vmcore::open(&path, true).expect("open");
    let bitmap = |per_cycle: u64| {
        let mut f = vmsift::filter::filter_for(&vm, DumpLevel(31)).expect("filter");
        assert!(f.classes.is_some());
        f.begin_pass();
        let mut set = Vec::new();
        let mut start = 0;
        while start < k.pages {
            let end = (start + per_cycle).min(k.pages);
            set.extend(f.bitmap2(start, end).iter_set());
            start = end;
        }
        (set, f.counts())
    };
    let (whole, counts) = bitmap(1 << 20);
    for per_cycle in [64, 128, 192, 1024] {
        let (got, c) = bitmap(per_cycle);
        assert!(got == whole, "cycles of {per_cycle} pfns differ");
        assert_eq!(c, counts, "cycles of {per_cycle}: counts differ");
    }
    assert_eq!(counts.free, 8 + 128);
}

/// Without what a level needs in VMCOREINFO, those pages are kept and a warning says which
/// key is missing; the rest of the filter still works.
#[test]
fn missing_vmcoreinfo_keys_keep_pages_and_say_why() {
    let dir = scratch("missing");
    let (k, e) = kernel(Flavor::Linux6_12);
    let info: String = k
        .vmcoreinfo()
        .lines()
        .filter(|l| !l.starts_with("NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut s = vmsift::synth::SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(&info);
    s = s.load(0, k.mem.clone(), 0);
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, s.to_bytes()).expect("write");
    let (got, stderr) = excluded_by_binary(&vmcore, &dir.join("dump"), 31, k.pages);
    let mut want = expected(&e, 31);
    for pfn in &e.free {
        want.remove(pfn);
    }
    assert_eq!(got, want, "{stderr}");
    assert!(
        stderr.contains("free pages are kept: VMCOREINFO lacks NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)"),
        "{stderr}"
    );

    // No usable mem_section at all: only zero pages are excluded, and the dump is written.
    let info = k
        .vmcoreinfo()
        .replace("SYMBOL(mem_section)=", "SYMBOL(mem_section_gone)=");
    let mut s = vmsift::synth::SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(&info);
    s = s.load(0, k.mem.clone(), 0);
    fs::write(&vmcore, s.to_bytes()).expect("write");
    let (got, stderr) = excluded_by_binary(&vmcore, &dir.join("dump"), 31, k.pages);
    assert!(got.is_empty(), "{got:?}");
    assert!(
        stderr.contains("cache, user and free pages are kept"),
        "{stderr}"
    );
}

/// The classes of a synthetic kernel moved into an arm64 kernel of this shape: 2048 page
/// frames of RAM from 1 GiB, page tables built as the arm64 kernel builds them.
fn arm64_every_level(flavor: Flavor, cfg: Arm64Config, name: &str) {
    let dir = scratch(name);
    let (k, e) = kernel(flavor);
    let a = Arm64Kernel::from_synth(&k, cfg, 2048);
    let vmcore = dir.join("vmcore");
    a.write_vmcore(&vmcore).expect("write vmcore");
    levels_match(&vmcore, &dir, a.base_pfn(), 2048, &e, name);
}

#[test]
fn arm64_4k_48bit_every_class_at_every_level() {
    let cfg = Arm64Config::new(4096, 48, 48, 48);
    arm64_every_level(Flavor::Linux6_1, cfg, "arm64-4k-48-6.1");
    arm64_every_level(Flavor::Linux6_12, cfg, "arm64-4k-48-6.12");
    arm64_every_level(Flavor::Linux7_1Hvo, cfg, "arm64-4k-48-7.1-hvo");
}

#[test]
fn arm64_4k_52bit_lpa2_every_class_at_every_level() {
    let cfg = Arm64Config::new(4096, 52, 52, 52);
    arm64_every_level(Flavor::Linux6_12, cfg, "arm64-4k-52-6.12");
    // The same kernel on a CPU without LPA2: 48 bits, the top level folded, a negative
    // PHYS_OFFSET.
    let cfg = Arm64Config::new(4096, 52, 48, 52);
    arm64_every_level(Flavor::Linux7_1Hvo, cfg, "arm64-4k-52on48-7.1-hvo");
}

#[test]
fn arm64_16k_every_class_at_every_level() {
    for (va, actual) in [(47, 47), (48, 48), (52, 52), (52, 47)] {
        let cfg = Arm64Config::new(16384, va, actual, if va == 52 { 52 } else { 48 });
        arm64_every_level(
            Flavor::Linux7_1Hvo,
            cfg,
            &format!("arm64-16k-{va}-{actual}"),
        );
    }
    let cfg = Arm64Config::new(16384, 48, 48, 48);
    arm64_every_level(Flavor::Linux7_1, cfg, "arm64-16k-48-7.1");
}

#[test]
fn arm64_64k_every_class_at_every_level() {
    for (va, actual) in [(42, 42), (48, 48), (52, 52), (52, 48)] {
        let cfg = Arm64Config::new(65536, va, actual, if va == 52 { 52 } else { 48 });
        arm64_every_level(
            Flavor::Linux7_1Hvo,
            cfg,
            &format!("arm64-64k-{va}-{actual}"),
        );
    }
    let cfg = Arm64Config::new(65536, 48, 48, 48);
    arm64_every_level(Flavor::Linux7_1, cfg, "arm64-64k-48-7.1");
}

/// An arm64 dump's header says what readers expect of one: utsname machine `aarch64`
/// (read from the kernel's init_uts_ns), `phys_base` = PHYS_OFFSET (negative for a 52-bit
/// kernel that ran with 48 bits), the block size of its pages; the kernel image's PT_LOAD,
/// inside the linear map's, is not counted twice.
#[test]
fn arm64_dump_header_machine_fields() {
    let dir = scratch("arm64-header");
    let (k, _) = kernel(Flavor::Linux7_1Hvo);
    for cfg in [
        Arm64Config::new(4096, 52, 48, 52),
        Arm64Config::new(65536, 48, 48, 48),
    ] {
        let a = Arm64Kernel::from_synth(&k, cfg, 2048);
        let vmcore = dir.join("vmcore");
        a.write_vmcore(&vmcore).expect("write vmcore");
        let out = dir.join("dump");
        let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
            .args(["-l", "-d", "31", "--show-stats"])
            .arg(&vmcore)
            .arg(&out)
            .output()
            .expect("run vmsift");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{stderr}");
        assert!(
            stderr.contains("Original pages  : 0x0000000000000800"),
            "{stderr}"
        );
        let dump = KdumpFile::open(fs::File::open(&out).expect("open")).expect("parse dump");
        let h = &dump.header;
        assert!(h.utsname.fields[4].starts_with(b"aarch64\0"));
        assert!(h.utsname.fields[2].starts_with(b"6.12.0-synthetic\0"));
        assert_eq!(h.phys_base, cfg.phys_offset());
        assert_eq!(h.block_size, cfg.page_size);
        fs::remove_file(&out).expect("clean up");
    }
}
