//! arm64 translation against tables built as the kernel builds them (`synth::arm64`), for
//! each granule, level count, folded level and output-address layout.

use super::*;
use crate::synth::arm64::{Arm64Config, SparsePages, Tables};

/// Page size, VA_BITS, bits in use, MAX_PHYSMEM_BITS, and the levels the MMU walks.
const SHAPES: &[(u64, u32, u32, u32, u32)] = &[
    (4096, 39, 39, 48, 3),
    (4096, 48, 48, 48, 4),
    (4096, 52, 52, 52, 5), // LPA2
    (4096, 52, 48, 52, 4), // LPA2 kernel on a CPU without it: the top level folded
    (16384, 36, 36, 48, 2),
    (16384, 47, 47, 48, 3),
    (16384, 48, 48, 48, 4),
    (16384, 52, 52, 52, 4), // LPA2
    (16384, 52, 47, 52, 3), // folded
    (65536, 42, 42, 48, 2),
    (65536, 48, 48, 48, 3),
    (65536, 52, 52, 52, 3), // LVA + LPA
    (65536, 52, 48, 52, 3), // LVA kernel on a 48-bit CPU: same levels, offset root
];

fn geometry(c: &Arm64Config) -> Geometry {
    Geometry {
        page_size: c.page_size,
        va_bits: c.va_bits,
        va_bits_actual: c.va_bits_actual,
        phys_bits: c.phys_bits,
    }
}

/// A physical address with the top bits the descriptors can hold set: 51:48 with LPA2 or
/// 64 KiB pages and 52-bit physical addresses (so LPA2's bits 9:8 and LPA's bits 15:12
/// are exercised), else 47.
fn high(c: &Arm64Config, low: u64) -> u64 {
    let pa52 = c.lpa2() || (c.page_size == 65536 && c.phys_bits == 52);
    let top = if pa52 { 0xd << 48 } else { 0x8 << 44 };
    (top | low) & !(c.page_size - 1)
}

#[test]
fn every_granule_level_and_output_layout() {
    for &(ps, va, actual, pbits, levels) in SHAPES {
        let mut c = Arm64Config::new(ps, va, actual, pbits);
        c.ram_start = high(&c, 0x4000_0000);
        let what = format!("{ps} bytes, VA_BITS {va}, {actual} in use, PA {pbits}");
        let mut mem = SparsePages::new(ps as usize);
        let mut t = Tables {
            cfg: c,
            root: high(&c, 0x123_0000_0000),
            next: high(&c, 0x456_0000_0000),
        };
        // A page of the linear map, a page of the kernel image, and a block of the level
        // above pages.
        let page_pa = c.ram_start + (5 << (actual - 6)) + 7 * ps;
        let lin = c.linear(page_pa);
        t.map(&mut mem, lin, page_pa, ps);
        let img_pa = high(&c, 0x40_0000 * ps);
        t.map(&mut mem, c.image_va(), img_pa, ps);
        let block = ps << (ps.trailing_zeros() - 3);
        let block_pa = c.ram_start + (3 << (actual - 6));
        let block_va = c.linear(block_pa);
        t.map(&mut mem, block_va, block_pa, block);

        let a = Arm64::new(t.root, geometry(&c), Endian::Little).expect(&what);
        assert_eq!(a.levels, levels, "{what}");
        assert_eq!(a.lpa2, ps != 65536 && actual == 52, "{what}");
        let m = a.translate(&mut mem, lin + 0x18).expect(&what);
        assert_eq!((m.va, m.pa, m.len), (lin, page_pa, ps), "{what}");
        let m = a.translate(&mut mem, c.image_va() + 8).expect(&what);
        assert_eq!((m.pa, m.len), (img_pa, ps), "{what}");
        let m = a.translate(&mut mem, block_va + block - 8).expect(&what);
        assert_eq!((m.va, m.pa, m.len), (block_va, block_pa, block), "{what}");
        // Next to what is mapped: nothing.
        assert_eq!(a.translate(&mut mem, lin + ps), None, "{what}");
        assert_eq!(a.translate(&mut mem, c.image_va() - ps), None, "{what}");
    }
}

/// The same tables through VMCOREINFO: swapper_pg_dir from the image's virtual address
/// and kimage_voffset, the size in use from TCR_EL1_T1SZ, not VA_BITS.
#[test]
fn from_vmcoreinfo_uses_the_size_in_use() {
    for &(ps, va, actual, pbits, levels) in SHAPES {
        let mut c = Arm64Config::new(ps, va, actual, pbits);
        c.ram_start = 0x4000_0000;
        let mut mem = SparsePages::new(ps as usize);
        let swapper_pa = 0x4020_0000u64.next_multiple_of(ps);
        let mut t = Tables {
            cfg: c,
            root: swapper_pa,
            next: swapper_pa + ps,
        };
        t.map(&mut mem, c.image_va(), swapper_pa, ps);
        let lin = c.linear(0x4000_0000);
        t.map(&mut mem, lin, 0x4000_0000, ps);
        let voffset = c.image_va().wrapping_sub(swapper_pa);
        let text = format!(
            "NUMBER(VA_BITS)={va}\nNUMBER(TCR_EL1_T1SZ)={:#x}\nNUMBER(kimage_voffset)={voffset:#x}\n\
             SYMBOL(swapper_pg_dir)={:x}\nNUMBER(MAX_PHYSMEM_BITS)={pbits}\nNUMBER(PHYS_OFFSET)={:#x}\n",
            64 - actual,
            c.image_va(),
            c.phys_offset(),
        );
        let info = VmcoreInfo::parse(text.as_bytes());
        let what = format!("{ps} bytes, VA_BITS {va}, {actual} in use");
        let a = Arm64::from_vmcoreinfo(&info, ps, Endian::Little).expect(&what);
        assert_eq!(a.levels, levels, "{what}");
        let m = a.translate(&mut mem, lin).expect(&what);
        assert_eq!(m.pa, 0x4000_0000, "{what}");
        // The static mappings agree with the tables.
        assert_eq!(
            kernel_static_to_phys(&info, lin + 5),
            Some(0x4000_0005),
            "{what}"
        );
        let img = kernel_static_to_phys(&info, c.image_va() + 5);
        assert_eq!(img, Some(swapper_pa + 5), "{what}");
        if actual < va {
            // PHYS_OFFSET is negative: linear addresses of the size in use still land on RAM.
            assert!((c.phys_offset() as i64) < 0, "{what}");
        }
        // Without TCR_EL1_T1SZ (kernels before 5.13) VA_BITS is the size in use.
        let old = VmcoreInfo::parse(text.replace("NUMBER(TCR_EL1_T1SZ)", "X").as_bytes());
        let a = Arm64::from_vmcoreinfo(&old, ps, Endian::Little).expect(&what);
        if actual == va {
            assert_eq!(a.translate(&mut mem, lin).map(|m| m.pa), Some(0x4000_0000));
        }
    }
}

#[test]
fn lpa2_descriptors_are_not_read_with_another_layout() {
    // 4 KiB pages, 52 bits in use: a table at a physical address above 2^50 is only
    // reached when bits 9:8 are read as address bits 51:50.
    let c = Arm64Config::new(4096, 52, 52, 52);
    let mut mem = SparsePages::new(4096);
    let mut t = Tables {
        cfg: c,
        root: 0x1000,
        next: 0x000c_0000_0000_0000,
    };
    let va = c.linear(0x4000_0000);
    t.map(&mut mem, va, 0x000c_0000_8000_0000, 4096);
    let g = geometry(&c);
    let lpa2 = Arm64::new(0x1000, g, Endian::Little).expect("lpa2");
    assert_eq!(
        lpa2.translate(&mut mem, va).map(|m| m.pa),
        Some(0x000c_0000_8000_0000)
    );
    let plain = Arm64 {
        lpa2: false,
        ..lpa2
    };
    assert_eq!(plain.translate(&mut mem, va), None);
}

#[test]
fn bad_geometry_and_loops_are_refused() {
    let g = |page_size, va_bits, va_bits_actual| Geometry {
        page_size,
        va_bits,
        va_bits_actual,
        phys_bits: 48,
    };
    assert!(Arm64::new(0, g(8192, 48, 48), Endian::Little).is_none());
    assert!(Arm64::new(0, g(4096, 56, 48), Endian::Little).is_none());
    assert!(Arm64::new(0, g(4096, 48, 52), Endian::Little).is_none());
    // A table whose every entry points back at itself.
    let mut mem = SparsePages::new(4096);
    for i in 0..512 {
        mem.put_u64(0x1000 + i * 8, 0x1000 | 3);
    }
    let a = Arm64::new(0x1000, g(4096, 48, 48), Endian::Little).expect("4 KiB");
    assert_eq!(a.translate(&mut mem, 0xffff_0000_0000_0000), None);
    // A block descriptor at the last level is reserved.
    let mut mem = SparsePages::new(4096);
    for (table, next) in [(0x1000u64, 0x2000u64), (0x2000, 0x3000), (0x3000, 0x4000)] {
        mem.put_u64(table + 511 * 8, next | 3);
    }
    mem.put_u64(0x4000 + 511 * 8, 0x9000 | 1);
    assert_eq!(a.translate(&mut mem, u64::MAX), None);
    mem.put_u64(0x4000 + 511 * 8, 0x9000 | 3);
    assert_eq!(a.translate(&mut mem, u64::MAX).map(|m| m.pa), Some(0x9000));
}

#[test]
fn hostile_vmcoreinfo_is_an_error_not_a_panic() {
    let base = "SYMBOL(swapper_pg_dir)=ffff800009a30000\nNUMBER(kimage_voffset)=0xffff7fffc7e00000\n\
                NUMBER(PHYS_OFFSET)=0x40000000\n";
    for extra in [
        "NUMBER(VA_BITS)=48\nNUMBER(TCR_EL1_T1SZ)=-9223372036854775808\n",
        "NUMBER(VA_BITS)=48\nNUMBER(TCR_EL1_T1SZ)=99\n",
        "NUMBER(VA_BITS)=1000\n",
        "NUMBER(VA_BITS)=-1\n",
        "NUMBER(VA_BITS)=48\nNUMBER(MAX_PHYSMEM_BITS)=-3\n",
        "NUMBER(VA_BITS)=48\nNUMBER(TCR_EL1_T1SZ)=8\n",
    ] {
        let info = VmcoreInfo::parse(format!("{base}{extra}").as_bytes());
        assert!(
            Arm64::from_vmcoreinfo(&info, 4096, Endian::Little).is_err(),
            "{extra}"
        );
        let _ = kernel_static_to_phys(&info, 0xffff_8000_0800_0000);
    }
    let info = VmcoreInfo::parse(format!("{base}NUMBER(VA_BITS)=48\n").as_bytes());
    assert!(Arm64::from_vmcoreinfo(&info, 4096, Endian::Little).is_ok());
    assert!(Arm64::from_vmcoreinfo(&info, 8192, Endian::Little).is_err());
}
