//! What the crashed kernel says about itself: VMCOREINFO, reading its virtual addresses,
//! its utsname. Address translation by page-table walk, mem_map and page classes, and the
//! printk ring buffer join this layer as the filter and `--dump-dmesg` need them.

pub mod dmesg;
pub mod layout;
pub mod memmap;
pub mod page;
pub mod uts;
pub mod vmcoreinfo;

use crate::arch::Machine;
use crate::input::{PhysPages, Vmcore};

/// Translates a kernel virtual address without walking page tables: through the virtual
/// ranges the vmcore's PT_LOADs declare (kernel image and the direct map), then through
/// the machine's fixed kernel mappings. Enough for statically allocated kernel data.
pub fn virt_to_phys_static(vmcore: &Vmcore, vaddr: u64) -> Option<u64> {
    for l in &vmcore.elf.loads {
        if l.virt_start != 0 && vaddr >= l.virt_start && vaddr - l.virt_start < l.mem_size {
            return Some(l.phys_start + (vaddr - l.virt_start));
        }
    }
    Machine::from_e_machine(vmcore.elf.machine)?.kernel_static_to_phys(&vmcore.info, vaddr)
}

/// Reads `buf.len()` bytes of kernel memory at `vaddr` (statically mapped data only).
pub fn read_static(vmcore: &mut Vmcore, vaddr: u64, buf: &mut [u8]) -> Option<()> {
    let ps = vmcore.page_size as u64;
    let mut done = 0usize;
    while done < buf.len() {
        let pa = virt_to_phys_static(vmcore, vaddr.checked_add(done as u64)?)?;
        let in_page = (pa % ps) as usize;
        let n = (vmcore.page_size - in_page).min(buf.len() - done);
        let page = vmcore.memory.read_page(pa / ps).ok()?;
        buf[done..done + n].copy_from_slice(&page[in_page..in_page + n]);
        done += n;
    }
    Some(())
}
