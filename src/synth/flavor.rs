//! Kernel generations of the synthetic kernel: which struct page layout, flag numbers and
//! page types each uses.

/// Which kernel generation's VMCOREINFO and struct page encoding a synthetic kernel uses.
/// Each exports the key set its kernel's `crash_save_vmcoreinfo_init` (kernel/kexec.c
/// before 4.11, kernel/crash_core.c after, 6.9+ kernel/vmcore_info.c) and x86_64's
/// `arch_crash_save_vmcoreinfo` export, with flag numbers from that version's
/// `enum pageflags`; facts marked "unconfirmed" in [`SynthKernel::vmcoreinfo`] were not
/// checked against the exact release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Linux 4.4 (below the range vmsift is tested on): struct page before the 4.18
    /// rearrangement (mapping at 8, _mapcount at 24, compound_head at 32, private at 48,
    /// as a real 4.16 VMCOREINFO shows), compound_dtor
    /// and compound_order as u16 at 40 and 42 of the first tail page (x86_64 switched them
    /// to u32 in 4.5 or 4.6, unconfirmed which; 32-bit kept u16 until 4.15), a free page
    /// is `_mapcount == -128`, no offline type, `init_level4_pgt`, `_count`.
    Linux4_4,
    /// Linux 4.9 (Debian 9's, below the tested range): 4.4's struct page and types, with
    /// compound_dtor and compound_order as u32 at 40 and 44 (x86_64 from 4.5 or 4.6 to
    /// 4.15) and `_refcount`.
    Linux4_9,
    /// RHEL 8's 4.18: page_type (base 0xf0000000, a type is a cleared bit: buddy 0x80),
    /// dtor and order as u8 at 16 and 17 of the first tail, PG_slab, flags numbered before
    /// PG_workingset (4.20). PAGE_OFFLINE_MAPCOUNT_VALUE is a 5.0 key that RHEL 8 carries
    /// with its virtio-mem backport (unconfirmed for every RHEL 8 minor release).
    Linux4_18,
    /// 4.19 as Kylin V10 and openEuler ship it: 4.18's encoding; 0x100 is still PG_balloon,
    /// so no offline type is exported.
    Linux4_19,
    /// Linux 5.4: flags numbered as in 6.1, PAGE_OFFLINE_MAPCOUNT_VALUE (exported only with
    /// CONFIG_HUGETLB_PAGE, as HUGETLB_PAGE_DTOR is).
    Linux5_4,
    /// Linux 6.1: PG_slab, compound order and destructor bytes in the first tail page,
    /// inverted-bit page types.
    Linux6_1,
    /// Linux 6.12: page types in the top byte, order in the first tail's flags.
    Linux6_12,
    /// Linux 7.1: as 6.12, with `compound_head` renamed `compound_info` (tails hold head + 1).
    Linux7_1,
    /// Linux 7.1 with the hugetlb vmemmap optimisation configured: every tail's
    /// `compound_info` is `GENMASK(63, order + log2(SIZE(page))) | 1`.
    Linux7_1Hvo,
    /// A kernel after the newest this project knows: 7.1's mask encoding, but the
    /// compound word exported under a new name (`OFFSET(page.memdesc)`) and a page type
    /// no table has (0xf9, exported as `PAGE_MEMDESC_MAPCOUNT_VALUE`).
    NextKernel,
}

impl Flavor {
    /// Whether page types are 6.12's top byte (and flags numbered as there).
    pub fn typed_slab(self) -> bool {
        matches!(
            self,
            Flavor::Linux6_12 | Flavor::Linux7_1 | Flavor::Linux7_1Hvo | Flavor::NextKernel
        )
    }

    /// Whether compound tails hold 7.1's mask rather than head + 1.
    pub fn tail_mask(self) -> bool {
        matches!(self, Flavor::Linux7_1Hvo | Flavor::NextKernel)
    }

    /// Whether the kernel exports an offline page type.
    pub fn has_offline(self) -> bool {
        !matches!(
            self,
            Flavor::Linux4_4 | Flavor::Linux4_9 | Flavor::Linux4_19
        )
    }

    /// Where this flavor's struct page keeps each field.
    pub fn offsets(self) -> Offsets {
        match self {
            Flavor::Linux4_4 => Offsets {
                flags: 0,
                mapping: 8,
                mapcount: 24,
                compound_head: 32,
                compound_dtor: 40,
                compound_order: 42,
                dtor_width: 2,
                private: 48,
            },
            Flavor::Linux4_9 => Offsets {
                compound_order: 44,
                dtor_width: 4,
                ..Flavor::Linux4_4.offsets()
            },
            _ => Offsets {
                flags: sp::FLAGS,
                mapping: sp::MAPPING,
                mapcount: sp::MAPCOUNT,
                compound_head: sp::COMPOUND_HEAD,
                compound_dtor: sp::COMPOUND_DTOR_6_1,
                compound_order: sp::COMPOUND_ORDER_6_1,
                dtor_width: 1,
                private: sp::PRIVATE,
            },
        }
    }
}

/// Field offsets of one flavor's 64-byte struct page (x86_64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    /// `flags`.
    pub flags: u64,
    /// `mapping`.
    pub mapping: u64,
    /// `_mapcount` (the page type word).
    pub mapcount: u64,
    /// `compound_head` (`compound_info` from 7.1).
    pub compound_head: u64,
    /// compound_dtor and compound_order in the first tail page (kernels before 6.3), each
    /// `dtor_width` bytes.
    pub compound_dtor: u64,
    /// See `compound_dtor`.
    pub compound_order: u64,
    /// Bytes of compound_dtor and of compound_order.
    pub dtor_width: u64,
    /// `private`.
    pub private: u64,
}

/// Field offsets of the synthetic struct page (those of x86_64 4.18 to 7.x).
pub mod sp {
    /// `SIZE(page)`.
    pub const SIZE: u64 = 64;
    /// `flags`.
    pub const FLAGS: u64 = 0;
    /// `compound_head`, called `compound_info` from 7.1.
    pub const COMPOUND_HEAD: u64 = 8;
    /// compound_dtor in the first tail page (kernels before 6.3).
    pub const COMPOUND_DTOR_6_1: u64 = 16;
    /// compound_order in the first tail page (kernels before 6.3).
    pub const COMPOUND_ORDER_6_1: u64 = 17;
    /// `mapping`.
    pub const MAPPING: u64 = 24;
    /// `private`.
    pub const PRIVATE: u64 = 40;
    /// `_mapcount` (the page type word).
    pub const MAPCOUNT: u64 = 48;
}
