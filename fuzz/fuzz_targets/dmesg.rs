//! The printk ring reader (`--dump-dmesg`) on a synthetic kernel: the input is VMCOREINFO
//! lines (added to the kernel's own, a repeated key wins), a NUL, then the bytes of memory
//! from pfn 32 on (where the ring and its pointers are, reachable through the direct map).
#![no_main]

use std::fs;

use libfuzzer_sys::fuzz_target;
use vmsift::input::Vmcore;
use vmsift::kernel::dmesg;
use vmsift::arch::{Arch, KernelMemory};
use vmsift::synth::{Flavor, SynthKernel, SynthVmcore};

const PAGES: u64 = 256;
const FIRST: usize = 32 * 4096;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (text, mem) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let mut k = SynthKernel::new(Flavor::Linux6_12, PAGES);
    assert!(k.first_free_pfn <= 32);
    let info = k.vmcoreinfo() + &String::from_utf8_lossy(text);
    let n = mem.len().min(k.mem.len() - FIRST);
    k.mem[FIRST..FIRST + n].copy_from_slice(&mem[..n]);
    let s = SynthVmcore::new().vmcoreinfo(&info).load(0, k.mem, 0);
    let path = std::env::temp_dir().join(format!("vmsift-fuzz-dmesg-{}", std::process::id()));
    fs::write(&path, s.to_bytes()).expect("write the vmcore");
    let Ok(vm) = Vmcore::open(&path, true) else {
        return;
    };
    let Ok(arch) = Arch::new(vm.elf.machine, vm.elf.endian, &vm.info, vm.page_size as u64) else {
        return;
    };
    let Ok(mem) = vm.memory.duplicate() else {
        return;
    };
    let mut km = KernelMemory::new(Box::new(mem), arch, vm.elf.endian);
    if let Ok(log) = dmesg::read_log(&mut km, &vm.info, false) {
        std::hint::black_box(log);
    }
});
