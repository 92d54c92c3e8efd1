//! The VMCOREINFO a synthetic kernel exports, per kernel generation.

use super::kernel::{PAGE_OFFSET, PGD_PFN, START_KERNEL_MAP};
use super::{Flavor, SynthKernel};

impl SynthKernel {
    /// The VMCOREINFO this kernel's generation exports, describing its page tables, mem_section and struct pages.
    pub fn vmcoreinfo(&self) -> String {
        if matches!(
            self.flavor,
            Flavor::Linux4_4
                | Flavor::Linux4_9
                | Flavor::Linux4_18
                | Flavor::Linux4_19
                | Flavor::Linux5_4
        ) {
            return self.old_vmcoreinfo();
        }
        let mut v = format!(
            "OSRELEASE=synthetic\nPAGESIZE=4096\nSYMBOL(init_top_pgt)={:x}\nNUMBER(phys_base)=0\n\
             NUMBER(pgtable_l5_enabled)=0\nNUMBER(sme_mask)=0\nSYMBOL(mem_section)={:x}\n\
             LENGTH(mem_section)=4096\nSIZE(mem_section)=32\nOFFSET(mem_section.section_mem_map)=0\n\
             NUMBER(SECTION_SIZE_BITS)=27\nNUMBER(MAX_PHYSMEM_BITS)=46\nSIZE(page)=64\n\
             OFFSET(page.flags)=0\nOFFSET(page._refcount)=52\nOFFSET(page.mapping)=24\n\
             OFFSET(page.lru)=8\nOFFSET(page._mapcount)=48\nOFFSET(page.private)=40\n\
             OFFSET(page.compound_head)=8\nLENGTH(zone.free_area)=11\nCRASHTIME=1700000000\n",
            START_KERNEL_MAP + PGD_PFN * 4096,
            PAGE_OFFSET + self.roots_pfn * 4096,
        );
        let flags = ["lru", "private", "swapcache", "swapbacked", "hwpoison"];
        for f in flags {
            v += &format!("NUMBER(PG_{f})={}\n", self.flag(f).trailing_zeros());
        }
        v += &format!("NUMBER(PG_head_mask)={}\n", self.flag("head"));
        match self.flavor {
            Flavor::Linux6_1 => {
                v += "OFFSET(page.compound_dtor)=16\nOFFSET(page.compound_order)=17\n\
                      NUMBER(HUGETLB_PAGE_DTOR)=2\nNUMBER(PG_slab)=9\n\
                      NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nNUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257\n";
            }
            _ => {
                v += "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-268435456\n\
                      NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=-201326592\n\
                      NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-251658240\n\
                      NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=-184549376\n";
            }
        }
        match self.flavor {
            Flavor::Linux7_1 | Flavor::Linux7_1Hvo => {
                v = v.replace("OFFSET(page.compound_head)", "OFFSET(page.compound_info)");
            }
            Flavor::NextKernel => {
                v = v.replace("OFFSET(page.compound_head)", "OFFSET(page.memdesc)");
                v += "NUMBER(PAGE_MEMDESC_MAPCOUNT_VALUE)=-117440512\n";
            }
            _ => {}
        }
        v
    }

    /// The VMCOREINFO of a 4.4 to 5.4 kernel: the keys those kernels export, no more.
    fn old_vmcoreinfo(&self) -> String {
        let f = self.flavor;
        let o = self.o;
        let release = match f {
            Flavor::Linux4_4 => "4.4.0-synthetic",
            Flavor::Linux4_9 => "4.9.0-synthetic",
            Flavor::Linux4_18 => "4.18.0-synthetic.el8",
            Flavor::Linux4_19 => "4.19.90-synthetic",
            _ => "5.4.0-synthetic",
        };
        // init_level4_pgt was renamed init_top_pgt in 4.13. A real 4.16 VMCOREINFO has
        // neither pgtable_l5_enabled nor sme_mask; 4.18 is taken to have the first
        // (unconfirmed), 5.4 both.
        let arch = match f {
            Flavor::Linux4_4 | Flavor::Linux4_9 => "SYMBOL(init_level4_pgt)",
            Flavor::Linux5_4 => {
                "NUMBER(pgtable_l5_enabled)=0\nNUMBER(sme_mask)=0\nSYMBOL(init_top_pgt)"
            }
            _ => "NUMBER(pgtable_l5_enabled)=0\nSYMBOL(init_top_pgt)",
        };
        let mut v = format!(
            "OSRELEASE={release}\nPAGESIZE={}\n{arch}={:x}\nNUMBER(phys_base)=0\nKERNELOFFSET=0\n\
             SYMBOL(mem_section)={:x}\nLENGTH(mem_section)=2048\nSIZE(mem_section)=16\n\
             OFFSET(mem_section.section_mem_map)=0\nSIZE(page)=64\n",
            4096,
            START_KERNEL_MAP + PGD_PFN * 4096,
            PAGE_OFFSET + self.roots_pfn * 4096,
        );
        // SECTION_SIZE_BITS (5.13) and MAX_PHYSMEM_BITS (5.9) reached 5.4.y through
        // stable; 4.19.90 (Kylin, openEuler) and RHEL 8's 4.18 are taken to lack them
        // (unconfirmed for RHEL 8, which may carry the backport).
        if f == Flavor::Linux5_4 {
            v += "NUMBER(SECTION_SIZE_BITS)=27\nNUMBER(MAX_PHYSMEM_BITS)=46\n";
        }
        // _refcount was _count before 4.6; lru shares its word with compound_head. For 4.4,
        // compound_head, compound_dtor/order and PG_head_mask are exported as a 4.6-era
        // kernel/kexec.c exports them (unconfirmed for 4.4 itself).
        let refcount = match f {
            Flavor::Linux4_4 => "page._count)=28",
            Flavor::Linux4_9 => "page._refcount)=28",
            _ => "page._refcount)=52",
        };
        v += &format!(
            "OFFSET(page.flags)={}\nOFFSET({refcount}\nOFFSET(page.mapping)={}\n\
             OFFSET(page.lru)={}\nOFFSET(page._mapcount)={}\nOFFSET(page.private)={}\n\
             OFFSET(page.compound_dtor)={}\nOFFSET(page.compound_order)={}\n\
             OFFSET(page.compound_head)={}\nLENGTH(zone.free_area)=11\n",
            o.flags,
            o.mapping,
            o.compound_head,
            o.mapcount,
            o.private,
            o.compound_dtor,
            o.compound_order,
            o.compound_head,
        );
        // No PG_swapbacked: its export is later than these kernels (unconfirmed when).
        for flag in ["lru", "private", "swapcache", "slab", "hwpoison"] {
            v += &format!("NUMBER(PG_{flag})={}\n", self.flag(flag).trailing_zeros());
        }
        v += &format!(
            "NUMBER(PG_head_mask)={}\nNUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)={}\n\
             NUMBER(HUGETLB_PAGE_DTOR)=2\n",
            self.flag("head"),
            self.page_type("buddy") as i32,
        );
        if f.has_offline() {
            let t = self.page_type("offline") as i32;
            v += &format!("NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)={t}\n");
        }
        v + "CRASHTIME=1700000000\n"
    }
}
