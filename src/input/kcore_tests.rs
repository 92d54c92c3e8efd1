//! `open_kcore` on kcore-shaped files: the kernel image's second segment counted once, in
//! pages of the kernel's own size, and the crashkernel reservation cut out.

use super::*;
use crate::synth::{SynthLoad, SynthVmcore};

const MIB: u64 = 1 << 20;
/// `e_machine` of an AArch64 ELF.
const EM_AARCH64: u16 = 183;

/// An arm64 kcore of `page_size`: 8 MiB of RAM at 1 GiB in the linear map, the 1 MiB
/// kernel image inside it at 0x4020_0000 again in the image's own mapping, and a
/// vmalloc segment without a physical address. Written to a file named `kcore`.
fn arm64_kcore(page_size: u64, tag: &str) -> std::path::PathBuf {
    let info = format!("OSRELEASE=6.1.0-synthetic\nPAGESIZE={page_size}\n");
    let mut vm = SynthVmcore::new()
        .vmcoreinfo(&info)
        .load(0x4000_0000, vec![0x5a; (8 * MIB) as usize], 8 * MIB)
        .load(0x4020_0000, vec![0x5a; MIB as usize], MIB);
    vm.loads[0].virt_start = 0xffff_0000_0000_0000;
    vm.loads[1].virt_start = 0xffff_8000_0820_0000;
    vm.loads.push(SynthLoad {
        phys_start: u64::MAX,
        virt_start: 0xffff_8000_8000_0000,
        data: Vec::new(),
        mem_size: 64 * MIB,
    });
    let mut bytes = vm.to_bytes();
    bytes[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
    let dir = std::env::temp_dir().join(format!("vmsift-kcore-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kcore");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn the_arm64_image_is_read_once_and_counted_in_kernel_pages() {
    for page_size in [4096u64, 16384, 65536] {
        let path = arm64_kcore(page_size, &page_size.to_string());
        let (vm, repeated) = Vmcore::open_kcore(&path, &[]).unwrap();
        assert_eq!(vm.page_size as u64, page_size);
        assert_eq!(repeated, MIB / page_size, "page size {page_size}");
        // Only the linear map's RAM is left to read.
        let loads: Vec<_> = vm
            .elf
            .loads
            .iter()
            .map(|l| (l.phys_start, l.mem_size))
            .collect();
        assert_eq!(loads, [(0x4000_0000, 8 * MIB)]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}

#[test]
fn the_crashkernel_reservation_is_cut_out_of_ram() {
    let path = arm64_kcore(4096, "resv");
    let resv = (0x4040_0000, 0x4060_0000);
    let (vm, repeated) = Vmcore::open_kcore(&path, &[resv]).unwrap();
    assert_eq!(repeated, MIB / 4096);
    let loads: Vec<_> = vm
        .elf
        .loads
        .iter()
        .map(|l| (l.phys_start, l.virt_start, l.mem_size, l.file_size))
        .collect();
    assert_eq!(
        loads,
        [
            (0x4000_0000, 0xffff_0000_0000_0000, 4 * MIB, 4 * MIB),
            (0x4060_0000, 0xffff_0000_0060_0000, 2 * MIB, 2 * MIB),
        ]
    );
    // The piece after the hole reads from its own place in the file.
    assert_eq!(
        vm.elf.loads[1].file_offset,
        vm.elf.loads[0].file_offset + 6 * MIB
    );
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
