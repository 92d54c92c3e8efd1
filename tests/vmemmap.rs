//! `-e` on a synthetic kernel: the dump with `-e` leaves out exactly the vmemmap pages
//! (the physical pages behind the struct page array) whose every struct page describes a
//! page the dump without `-e` leaves out, counted here from the synthetic kernel's own
//! layout (struct page of pfn p at byte 64 p of the mem_map, vmemmap page i backed by
//! mem_map page i unless the hugetlb vmemmap optimisation remapped it), and sets the
//! header's excluded-vmemmap flag; without `-e` nothing changes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmsift::format::kdump::STATUS_EXCLUDED_VMEMMAP;
use vmsift::input::kdump::{KdumpFile, Page};
use vmsift::synth::{Flavor, PAGE_OFFSET, SynthKernel};

const ANON: u64 = (PAGE_OFFSET + 0x7000) | 1;
const FILE: u64 = PAGE_OFFSET + 0x9000;
const PAGES: u64 = 16384;
/// Struct pages per vmemmap page (64-byte struct pages, 4 KiB pages).
const PER_PAGE: u64 = 64;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vmemmap-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A kernel whose upper pages are mostly free, user or hugetlb, with kept pages among
/// them; returns it and the hugetlb folio whose vmemmap is optimised.
fn kernel(flavor: Flavor) -> (SynthKernel, u64) {
    let mut k = SynthKernel::new(flavor, PAGES);
    assert!(k.first_free_pfn < 4096);
    let lru = k.flag("lru");
    let swapbacked = k.flag("swapbacked");
    let mut pfn = 4096;
    while pfn < PAGES {
        match pfn {
            // A free block around a kept stretch: vmemmap page 96 stays.
            6144 => {
                k.buddy(6144, 5);
                k.buddy(6208, 6);
                k.buddy(6272, 7);
                k.buddy(6400, 8);
            }
            8192 => k.folio(8192, 9, lru | swapbacked, ANON, false),
            9216 => {
                k.folio(9216, 9, 0, FILE, true);
                k.optimize_vmemmap_fake_heads(9216, 9);
            }
            // One kept page among free ones: its vmemmap page stays.
            9728 => {
                for p in 9728..10240 {
                    if p != 10000 {
                        k.buddy(p, 0);
                    }
                }
            }
            // Kernel pages: kept.
            12288 => {}
            _ => k.buddy(pfn, 9),
        }
        pfn += 512;
    }
    (k, 9216)
}

/// Runs vmsift; returns the dump's left-out pfns and its header status.
fn dump(vmcore: &Path, out: &Path, extra: &[&str]) -> (BTreeSet<u64>, u32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(["-l", "-d", "31", "--message-level", "31"])
        .args(extra)
        .arg(vmcore)
        .arg(out)
        .output()
        .expect("run vmsift");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{extra:?}: {err}");
    let dump = KdumpFile::open(fs::File::open(out).expect("open")).expect("parse dump");
    let mut set = BTreeSet::new();
    for pfn in 0..PAGES {
        match dump.read_page(pfn).expect("read") {
            Page::Excluded => {
                set.insert(pfn);
            }
            Page::Data(_) => {}
            other => panic!("pfn {pfn}: {other:?}"),
        }
    }
    fs::remove_file(out).expect("clean up");
    (set, dump.header.status, err)
}

/// The backing pages `-e` must leave out, from the kernel's own layout and the pages
/// the dump without `-e` leaves out.
fn expected(k: &SynthKernel, hvo: u64, left_out: &BTreeSet<u64>) -> BTreeSet<u64> {
    let mem_map_pfn = k.mem_map_range().start as u64 / 4096;
    let hvo_first = hvo / PER_PAGE;
    // Backing page -> whether every vmemmap page mapped onto it describes only
    // left-out pages.
    let mut unused: BTreeMap<u64, bool> = BTreeMap::new();
    for i in 0..(PAGES * 64).div_ceil(4096) {
        let backing = if (hvo_first + 1..hvo_first + 8).contains(&i) {
            mem_map_pfn + hvo_first
        } else {
            mem_map_pfn + i
        };
        let all_out =
            (i * PER_PAGE..(i + 1) * PER_PAGE).all(|p| p >= PAGES || left_out.contains(&p));
        *unused.entry(backing).or_insert(true) &= all_out;
    }
    unused
        .into_iter()
        .filter(|&(q, all_out)| all_out && !left_out.contains(&q))
        .map(|(q, _)| q)
        .collect()
}

#[test]
fn e_leaves_out_exactly_the_vmemmap_pages_of_left_out_pages() {
    // With one more page at 1 TiB, the bitmaps of all pfns (32 MiB) are more than pass 1
    // ever keeps (16 MiB at most): pass 2 builds them again, and leaves the vmemmap pages
    // out there.
    for (flavor, far) in [
        (Flavor::Linux6_1, false),
        (Flavor::Linux6_12, false),
        (Flavor::Linux6_1, true),
    ] {
        let dir = scratch(&format!("{flavor:?}-{far}"));
        let (k, hvo) = kernel(flavor);
        let vmcore = dir.join("vmcore");
        let mut synth = k.vmcore();
        if far {
            synth = synth.load(1 << 40, vec![0x5a; 4096], 0);
        }
        fs::write(&vmcore, synth.to_bytes()).expect("write vmcore");
        let out = dir.join("dump");
        let (plain, plain_status, _) = dump(&vmcore, &out, &[]);
        assert_eq!(plain_status & STATUS_EXCLUDED_VMEMMAP, 0);
        let want = expected(&k, hvo, &plain);
        // Free blocks of 8 vmemmap pages each, minus the two kept ones, and the 8 pages
        // of the user folio; the optimised folio's shared page goes too.
        assert!(want.len() > 100, "{flavor:?}: {}", want.len());
        let mem_map_pfn = k.mem_map_range().start as u64 / 4096;
        for stays in [96, 10000 / PER_PAGE, 12288 / PER_PAGE] {
            assert!(!want.contains(&(mem_map_pfn + stays)), "{stays}");
        }
        assert!(want.contains(&(mem_map_pfn + hvo / PER_PAGE)));
        for extra in [&["-e"][..], &["-e", "--num-threads", "2"]] {
            let (with_e, status, err) = dump(&vmcore, &out, extra);
            assert_ne!(status & STATUS_EXCLUDED_VMEMMAP, 0, "{flavor:?}");
            let gone: BTreeSet<u64> = with_e.difference(&plain).copied().collect();
            assert!(plain.is_subset(&with_e), "{flavor:?}");
            assert_eq!(gone, want, "{flavor:?} {extra:?}");
            assert!(
                err.contains(&format!("-e: {} vmemmap pages left out", want.len())),
                "{err}"
            );
        }
    }
}

/// Re-filtering an `-e` dump, with or without `-e`, cannot bring its vmemmap pages back:
/// the new dump leaves out the same pages and carries the excluded-vmemmap flag too (crash
/// reads the flag to know those struct pages are missing).
#[test]
fn refiltering_an_e_dump_keeps_its_excluded_vmemmap_flag() {
    let dir = scratch("refilter");
    let (k, _) = kernel(Flavor::Linux6_1);
    let vmcore = dir.join("vmcore");
    fs::write(&vmcore, k.vmcore().to_bytes()).expect("write vmcore");
    let e_dump = dir.join("e-dump");
    common::vmsift(&["-e", "-l", "-d", "31"], &vmcore, &e_dump);
    let out = dir.join("dump");
    let (with_e, status, _) = dump(&vmcore, &out, &["-e"]);
    assert_ne!(status & STATUS_EXCLUDED_VMEMMAP, 0);
    for extra in [&[][..], &["-e"][..], &["--num-threads", "2"][..]] {
        let (again, status, err) = dump(&e_dump, &out, extra);
        assert_ne!(status & STATUS_EXCLUDED_VMEMMAP, 0, "{extra:?}: {err}");
        assert_eq!(again, with_e, "{extra:?}");
    }
}

#[test]
fn e_is_refused_with_e_elf_and_accepted_without_a_work_dir() {
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(["--check-params", "-e", "-d", "31", "V", "D"])
        .output()
        .expect("run vmsift");
    assert!(o.status.success());
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(["--check-params", "-e", "-E", "-d", "31", "V", "D"])
        .output()
        .expect("run vmsift");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("-e and -E"));
}

/// Memory at 32 TiB makes the vmemmap 512 GiB long: tracking it takes over 16 MiB, more
/// than a run may spend on it, so the dump keeps every vmemmap page, says why, and has
/// no excluded-vmemmap flag.
#[test]
fn e_keeps_the_vmemmap_with_a_warning_when_tracking_it_does_not_fit() {
    let dir = scratch("too-large");
    let (k, _) = kernel(Flavor::Linux6_1);
    let vmcore = dir.join("vmcore");
    let synth = k.vmcore().load(1 << 45, vec![0x5a; 4096], 0);
    fs::write(&vmcore, synth.to_bytes()).expect("write vmcore");
    let out = dir.join("dump");
    let (plain, _, _) = dump(&vmcore, &out, &[]);
    let (with_e, status, err) = dump(&vmcore, &out, &["-e"]);
    assert_eq!(status & STATUS_EXCLUDED_VMEMMAP, 0);
    assert_eq!(plain, with_e);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("-e: ")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("more than") && warnings[0].contains("keeps every vmemmap page"),
        "{err}"
    );
}
