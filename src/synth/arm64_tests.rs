//! The synthetic arm64 kernel reads back through vmsift's own readers.

use super::*;
use crate::arch::{Arch, KernelMemory, Machine};
use crate::input::Vmcore;
use crate::kernel::memmap::MemMap;
use crate::synth::Flavor;

#[test]
fn struct_pages_and_utsname_read_back_for_every_granule() {
    let mut k = SynthKernel::new(Flavor::Linux6_12, 2048);
    k.buddy(1024, 3);
    for (ps, va, actual, pbits) in [(4096, 48, 48, 48), (16384, 52, 47, 52), (65536, 52, 52, 52)] {
        let a = Arm64Kernel::from_synth(&k, Arm64Config::new(ps, va, actual, pbits), 2048);
        let path = std::env::temp_dir().join(format!("vmsift-arm64-{}-{ps}", std::process::id()));
        a.write_vmcore(&path).expect("write vmcore");
        let mut vm = Vmcore::open(&path, false).expect("open");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            Machine::from_e_machine(vm.elf.machine),
            Some(Machine::Arm64)
        );
        let arch = Arch::new(vm.elf.machine, vm.elf.endian, &vm.info, ps).expect("arch");
        let mem = Box::new(vm.memory.duplicate().expect("dup"));
        let mut km = KernelMemory::new(mem, arch, Endian::Little);
        let memmap = MemMap::discover(&mut km, Machine::Arm64, &vm.info, ps, vm.max_mapnr())
            .expect("mem_map");
        assert_eq!(memmap.unusable, 0);
        let pfn = a.base_pfn() + 1024;
        let s = memmap.overlapping(pfn, pfn + 1).next().expect("section");
        assert_eq!(memmap.page_va(s, pfn), a.cfg.page_va(pfn));
        let private = km.read_u64(a.cfg.page_va(pfn) + k.o.private);
        assert_eq!(private, Some(3), "{ps}");
        let uts = crate::kernel::uts::read(&mut vm);
        assert_eq!(uts.fallback, None, "{ps}");
        assert_eq!(
            uts.name.get(crate::format::kdump::Utsname::MACHINE),
            "aarch64"
        );
    }
}
