//! What the crashed kernel says about itself: VMCOREINFO, reading its virtual addresses,
//! its utsname, address translation by page-table walk, mem_map and page classes
//! (assembled by `page_classes`), the printk ring buffer; and what the running kernel says
//! in /proc/iomem (`iomem`). This layer returns what it finds as values (`Diagnostic`s);
//! it prints nothing.

pub mod dmesg;
pub mod iomem;
pub mod layout;
pub mod memmap;
pub mod page;
pub mod uts;
pub mod vmcoreinfo;
pub mod vmemmap;

pub use vmemmap::vmemmap_runs;

use crate::arch::{Arch, KernelMemory, Machine};
use crate::error::Result;
use crate::filter::{DumpLevel, PageClasses};
use crate::input::{PhysPages, Vmcore};
use crate::report::Diagnostic;
use layout::PageLayout;
use memmap::MemMap;
use page::Classifier;

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

/// What `page_classes` assembles: the page classes (`None`: they cannot be read) and what
/// was found on the way.
pub type Assembled = (Option<Box<dyn PageClasses>>, Vec<Diagnostic>);

/// The mem_map reader for page classes, and what was found on the way. Without it only
/// zero pages can be excluded: the diagnostics say why (as a warning when the dump level
/// asked for more) and the dump goes on.
pub fn page_classes(vm: &Vmcore, level: DumpLevel) -> Result<Assembled> {
    let mut found = Vec::new();
    let without = |why: String, mut found: Vec<Diagnostic>| {
        found.push(if level.needs_mem_map() {
            Diagnostic::Warning(format!(
                "{why}; cache, user and free pages are kept (dump level {level})"
            ))
        } else {
            Diagnostic::Debug(format!(
                "{why}; hwpoison and offline pages cannot be excluded"
            ))
        });
        Ok((None, found))
    };
    let Some(machine) = Machine::from_e_machine(vm.elf.machine) else {
        return without(
            "reading page classes is not implemented for this machine".into(),
            found,
        );
    };
    let layout = match PageLayout::from_vmcoreinfo(&vm.info) {
        Ok(l) => l,
        Err(missing) => {
            return without(format!("VMCOREINFO lacks {}", missing.0.join(", ")), found);
        }
    };
    let ps = vm.page_size as u64;
    let arch = match Arch::new(vm.elf.machine, vm.elf.endian, &vm.info, ps) {
        Ok(a) => a,
        Err(why) => return without(why, found),
    };
    let mut km = KernelMemory::new(Box::new(vm.memory.duplicate()?), arch, vm.elf.endian);
    let memmap = match MemMap::discover(&mut km, machine, &vm.info, ps, vm.max_mapnr()) {
        Ok(m) => m,
        Err(why) => return without(format!("the kernel's mem_map is unusable: {why}"), found),
    };
    if memmap.unusable > 0 {
        found.push(Diagnostic::Warning(format!(
            "{} memory sections have no readable mem_map; their pages are kept",
            memmap.unusable
        )));
    }
    found.push(Diagnostic::Debug(format!(
        "mem_map: {} sections with struct pages, first pfn {:#x}, last pfn {:#x}",
        memmap.sections.len(),
        memmap.sections.first().map_or(0, |s| s.start),
        memmap.sections.last().map_or(0, |s| s.end)
    )));
    let mut classifier = Classifier::new(km, layout, memmap, level);
    found.extend(classifier.take_diagnostics());
    Ok((Some(Box::new(classifier)), found))
}
