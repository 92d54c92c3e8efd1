//! Real vmcores, patched. Damaged copies of the 6.1 and 6.12 vmcores with corrupt kernel
//! metadata (impossible buddy orders, garbage page types, a mem_section pointer into a hole,
//! a page-table loop, nonsense VMCOREINFO values): every run must finish, write a dump, say
//! what it distrusted once per kind, and never leave out a page that the dump of the
//! intact vmcore keeps. And copies with a moved `clear_seq`, for `--partial-dmesg`.
//!
//! Needs the real vmcores of tests/run-all (ignored under a plain `cargo test`).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmsift::arch::{Arch, KernelMemory, Machine};
use vmsift::input::Vmcore;
use vmsift::input::kdump::{KdumpFile, Page};
use vmsift::kernel::memmap::MemMap;

fn vmcore(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/vmcores")
        .join(format!("{name}.elf"));
    assert!(p.exists(), "{} is missing: run tests/run-all", p.display());
    p
}

/// `CARGO_TARGET_TMPDIR/damaged-NAME`, removed when the test passes (copies of real
/// vmcores: hundreds of MB).
fn scratch(name: &str) -> common::Scratch {
    common::scratch_at(&format!("damaged-{name}"))
}

/// Dumps at -d 31; returns the pfns left out (in memory, without a descriptor) and stderr.
fn dump(vmcore: &Path, out: &Path) -> (BTreeSet<u64>, String) {
    let _ = fs::remove_file(out);
    let o = Command::new(env!("CARGO_BIN_EXE_vmsift"))
        .args(["-l", "-d", "31"])
        .arg(vmcore)
        .arg(out)
        .output()
        .expect("run vmsift");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{}: {err}", vmcore.display());
    let d = KdumpFile::open(fs::File::open(out).expect("dump")).expect("the dump opens");
    let left_out = (0..d.header.max_mapnr)
        .filter(|&pfn| {
            d.descriptor(pfn).expect("descriptor").is_none()
                && matches!(d.read_page(pfn), Ok(Page::Excluded))
        })
        .collect();
    (left_out, err)
}

/// Where things are in the vmcore file: struct pages and kernel virtual addresses.
struct Map {
    vm: Vmcore,
    km: KernelMemory,
    memmap: MemMap,
}

impl Map {
    fn new(path: &Path) -> Map {
        let vm = Vmcore::open(path, true).expect("open vmcore");
        let ps = vm.page_size as u64;
        let arch = Arch::new(vm.elf.machine, vm.elf.endian, &vm.info, ps).expect("translation");
        let machine = Machine::from_e_machine(vm.elf.machine).expect("machine");
        let mem = Box::new(vm.memory.duplicate().expect("dup"));
        let mut km = KernelMemory::new(mem, arch, vm.elf.endian);
        let memmap =
            MemMap::discover(&mut km, machine, &vm.info, ps, vm.max_mapnr()).expect("mem_map");
        Map { vm, km, memmap }
    }

    /// The file offset of physical address `pa`.
    fn file_offset(&self, pa: u64) -> u64 {
        let l = self
            .vm
            .elf
            .loads
            .iter()
            .find(|l| l.phys_start <= pa && pa < l.file_phys_end())
            .expect("pa in a PT_LOAD");
        l.file_offset + (pa - l.phys_start)
    }

    /// The file offset of kernel virtual address `va`.
    fn va_offset(&mut self, va: u64) -> u64 {
        let pa = self.km.translate(va).expect("mapped");
        self.file_offset(pa)
    }

    /// The file offset of field `off` of pfn's struct page.
    fn field(&mut self, pfn: u64, off: i64) -> u64 {
        let s = *self
            .memmap
            .overlapping(pfn, pfn + 1)
            .next()
            .expect("pfn in a section");
        let va = self.memmap.page_va(&s, pfn) + off as u64;
        self.va_offset(va)
    }

    fn offset(&self, member: &str) -> i64 {
        self.vm.info.offset(member).expect(member)
    }
}

fn read_u32(f: &fs::File, at: u64) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, at).expect("read");
    u32::from_le_bytes(b)
}

/// A patch: where, and the bytes it replaced (to undo it for the next kind).
struct Patch(u64, Vec<u8>);

fn apply(f: &fs::File, at: u64, new: &[u8]) -> Patch {
    let mut old = vec![0u8; new.len()];
    f.read_exact_at(&mut old, at).expect("read");
    f.write_all_at(new, at).expect("write");
    Patch(at, old)
}

fn undo(f: &fs::File, patches: Vec<Patch>) {
    for Patch(at, old) in patches.into_iter().rev() {
        f.write_all_at(&old, at).expect("undo");
    }
}

/// One past the highest section with a page in `pfns`.
fn max_section(pfns: &BTreeSet<u64>, per_section: u64) -> u64 {
    pfns.iter().next_back().map_or(0, |p| p / per_section + 1)
}

/// A copy of a real vmcore being damaged, and the dump of the intact one.
struct Damage {
    name: String,
    dir: common::Scratch,
    copy: PathBuf,
    f: fs::File,
    m: Map,
    info: vmsift::kernel::vmcoreinfo::VmcoreInfo,
    reference: BTreeSet<u64>,
}

impl Damage {
    /// Asserts that no page the intact dump keeps was left out of `left`.
    fn left_out(&self, what: &str, err: &str, left: &BTreeSet<u64>) {
        let name = &self.name;
        let wrong: Vec<_> = left.difference(&self.reference).take(10).collect();
        assert!(
            wrong.is_empty(),
            "{name}, {what}: pages the intact dump keeps were left out: {wrong:x?}\n{err}"
        );
    }
}

/// Damage: Free blocks with an order no kernel has.
fn damage_free_orders(d: &mut Damage) {
    let name = &d.name;
    let buddy = d
        .info
        .number("PAGE_BUDDY_MAPCOUNT_VALUE")
        .expect("PAGE_BUDDY_MAPCOUNT_VALUE") as u32;
    let (mapcount, private) = (d.m.offset("page._mapcount"), d.m.offset("page.private"));
    let is_buddy = |v: u32| {
        if buddy & 0x00ff_ffff == 0 {
            v & 0xff00_0000 == buddy & 0xff00_0000 && v & 0x00ff_ffff == 0
        } else {
            v == buddy
        }
    };
    // 1. Free blocks with an order no kernel has: kept, one warning.
    let heads: Vec<u64> = d
        .reference
        .iter()
        .copied()
        .filter(|&pfn| {
            d.m.memmap.overlapping(pfn, pfn + 1).next().is_some()
                && is_buddy(read_u32(&d.f, d.m.field(pfn, mapcount)))
        })
        .take(20)
        .collect();
    assert_eq!(heads.len(), 20, "{name}: free blocks to damage");
    let patches: Vec<Patch> = heads
        .iter()
        .map(|&pfn| apply(&d.f, d.m.field(pfn, private), &50u64.to_le_bytes()))
        .collect();
    let (left, err) = dump(&d.copy, &d.dir.join("orders"));
    d.left_out("impossible orders", &err, &left);
    for pfn in &heads {
        assert!(
            !left.contains(pfn),
            "{name}: damaged free block {pfn:#x} left out"
        );
    }
    assert_eq!(err.matches("is impossible there").count(), 1, "{err}");
    undo(&d.f, patches);
}

/// Damage: Garbage page types.
fn damage_page_types(d: &mut Damage) {
    let mapcount = d.m.offset("page._mapcount");
    // 2. Garbage page types on pages the dump keeps: still kept.
    let kept: Vec<u64> = (0x1000u64..)
        .filter(|pfn| !d.reference.contains(pfn))
        .step_by(97)
        .take(50)
        .collect();
    let patches: Vec<Patch> = kept
        .iter()
        .map(|&pfn| {
            apply(
                &d.f,
                d.m.field(pfn, mapcount),
                &0x1234_5678u32.to_le_bytes(),
            )
        })
        .collect();
    let (left, err) = dump(&d.copy, &d.dir.join("types"));
    d.left_out("garbage page types", &err, &left);
    undo(&d.f, patches);
}

/// Damage: A mem_section entry pointing into a hole.
fn damage_section(d: &mut Damage) {
    let name = &d.name;
    // 3. A mem_section entry pointing into a hole: that section's pages are all kept.
    let root = d.info.symbol("mem_section").expect("mem_section");
    let ms_size = d.info.size("mem_section").expect("SIZE(mem_section)") as u64;
    let map_off = d.m.offset("mem_section.section_mem_map") as u64;
    let mut first_root = [0u8; 8];
    let at = d.m.va_offset(root);
    d.f.read_exact_at(&mut first_root, at).expect("read root");
    let sections = u64::from_le_bytes(first_root);
    // The section with the most pages the intact dump leaves out (where the crashkernel
    // reservation or a hole falls changes from one crash to the next).
    let per_section = 1u64 << (d.info.number("SECTION_SIZE_BITS").expect("bits") - 12);
    let victim = (0..max_section(&d.reference, per_section))
        .max_by_key(|s| {
            d.reference
                .iter()
                .filter(|&&p| p / per_section == *s)
                .count()
        })
        .expect("a section");
    let range = victim * per_section..(victim + 1) * per_section;
    assert!(
        d.reference.iter().any(|p| range.contains(p)),
        "{name}: the intact dump leaves nothing out of any section"
    );
    let entry = d.m.va_offset(sections + victim * ms_size + map_off);
    let mut raw = [0u8; 8];
    d.f.read_exact_at(&mut raw, entry).expect("read entry");
    let bad = (u64::from_le_bytes(raw) & 0x3f) | 0xffff_ea7f_0000_0000;
    let patches = vec![apply(&d.f, entry, &bad.to_le_bytes())];
    let (left, err) = dump(&d.copy, &d.dir.join("section"));
    d.left_out("a mem_section pointer into a hole", &err, &left);
    assert!(err.contains("have no readable mem_map"), "{err}");
    assert!(
        !left.iter().any(|p| range.contains(p)),
        "{name}: section {victim}: {err}"
    );
    undo(&d.f, patches);
}

/// Damage: A page-table loop.
fn damage_page_tables(d: &mut Damage) {
    // 4. A page-table loop: the top-level entry for the struct pages points back to the
    // top table. Nothing can be classified; only zero pages are left out, and it says so.
    let top = d.m.vm.info.symbol("init_top_pgt").expect("init_top_pgt");
    let top_pa = d.m.km.translate(top).expect("init_top_pgt is mapped");
    let first_page = d.m.memmap.page_va(&d.m.memmap.sections[0], 0);
    let shift = if d.m.vm.info.number("pgtable_l5_enabled") == Some(1) {
        48
    } else {
        39
    };
    let slot = top_pa + ((first_page >> shift) & 0x1ff) * 8;
    let loop_entry = top_pa | 0x63; // present, writable, accessed, dirty
    // The page tables may be in two PT_LOADs (the kernel image's and RAM's): patch both.
    let patches: Vec<Patch> =
        d.m.vm
            .elf
            .loads
            .iter()
            .filter(|l| l.phys_start <= slot && slot < l.file_phys_end())
            .map(|l| l.file_offset + (slot - l.phys_start))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|at| apply(&d.f, at, &loop_entry.to_le_bytes()))
            .collect();
    let (left, err) = dump(&d.copy, &d.dir.join("loop"));
    d.left_out("a page-table loop", &err, &left);
    assert!(err.contains("cache, user and free pages are kept"), "{err}");
    undo(&d.f, patches);
}

/// Damage: Nonsense VMCOREINFO values.
fn damage_vmcoreinfo(d: &mut Damage) {
    // 5. Nonsense VMCOREINFO values (same length, edited in the note): zero pages only.
    let notes_at = {
        // The notes follow the program headers, near the start of the file.
        let mut head = vec![0u8; 1 << 20];
        d.f.read_exact_at(&mut head, 0).expect("read");
        let needle = b"SIZE(page)=64";
        head.windows(needle.len())
            .position(|w| w == needle)
            .expect("SIZE(page)=64 in the note") as u64
    };
    let patches = vec![apply(&d.f, notes_at, b"SIZE(page)=99")];
    let (left, err) = dump(&d.copy, &d.dir.join("vmcoreinfo"));
    d.left_out("SIZE(page)=99", &err, &left);
    assert!(err.contains("plausible SIZE(page)"), "{err}");
    undo(&d.f, patches);
}

fn check(name: &str) {
    let intact = vmcore(name);
    let dir = scratch(name);
    let (reference, _) = dump(&intact, &dir.join("intact"));
    let copy = dir.join("vmcore");
    fs::copy(&intact, &copy).expect("copy the vmcore");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&copy)
        .expect("open copy");
    let m = Map::new(&copy);
    let info = m.vm.info.clone();
    let mut d = Damage {
        name: name.to_string(),
        dir,
        copy,
        f,
        m,
        info,
        reference,
    };
    damage_free_orders(&mut d);
    damage_page_types(&mut d);
    damage_section(&mut d);
    damage_page_tables(&mut d);
    damage_vmcoreinfo(&mut d);
    let _ = fs::remove_file(&d.copy);
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn damaged_6_1_vmcore_keeps_what_it_cannot_trust() {
    check("deb61");
}

#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn damaged_6_12_vmcore_keeps_what_it_cannot_trust() {
    check("deb612");
}

/// `--partial-dmesg`: in a copy of the vmcore whose `clear_seq` says 100 records were
/// cleared, the log starts at record 100, exactly as makedumpfile 1.7.8 prints it.
#[test]
#[ignore = "needs real vmcores: run tests/run-all"]
fn partial_dmesg_starts_after_the_last_clear() {
    for name in ["deb61", "deb612"] {
        let dir = scratch(&format!("{name}-partial"));
        let copy = dir.join("vmcore");
        fs::copy(vmcore(name), &copy).expect("copy");
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&copy)
            .expect("open");
        let mut m = Map::new(&copy);
        let at = m.vm.info.symbol("clear_seq").expect("clear_seq");
        let val = m.offset("latched_seq.val") as u64;
        for slot in [at + val, at + val + 8] {
            let pa = m.km.translate(slot).expect("mapped");
            for l in
                m.vm.elf
                    .loads
                    .iter()
                    .filter(|l| l.phys_start <= pa && pa < l.file_phys_end())
            {
                f.write_all_at(&100u64.to_le_bytes(), l.file_offset + (pa - l.phys_start))
                    .expect("patch");
            }
        }
        let run = |tool: &str, extra: &[&str], out: &Path| {
            let o = Command::new(tool)
                .args(["--dump-dmesg"])
                .args(extra)
                .arg(&copy)
                .arg(out)
                .output()
                .expect("run");
            assert!(
                o.status.success(),
                "{tool}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            fs::read(out).expect("log")
        };
        let vmsift = env!("CARGO_BIN_EXE_vmsift");
        let whole = run(vmsift, &[], &dir.join("whole"));
        let ours = run(vmsift, &["--partial-dmesg"], &dir.join("ours"));
        // makedumpfile 1.7.8 (tests/harness/sid-peers): its lines have the caller column.
        let sid = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/sid-makedumpfile");
        let theirs = run(
            &sid.to_string_lossy(),
            &["--partial-dmesg"],
            &dir.join("theirs"),
        );
        assert!(
            ours == theirs,
            "{name}: not makedumpfile 1.7.8's partial log"
        );
        let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
        assert!(lines(&ours) > 10 && lines(&ours) < lines(&whole), "{name}");
        assert!(
            whole.ends_with(&ours),
            "{name}: the partial log is the whole log's tail"
        );
        let _ = fs::remove_file(&copy);
    }
}
