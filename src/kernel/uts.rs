//! The kernel's `init_uts_ns.name` (sysname, nodename, release, version, machine,
//! domainname), which makedumpfile copies into the dump header.

use crate::format::kdump::{UTS_LEN, Utsname};
use crate::input::Vmcore;

pub struct Uts {
    pub name: Utsname,
    /// Why the name had to be built from VMCOREINFO instead of read from memory.
    pub fallback: Option<String>,
}

/// Reads utsname from the dump. When that is impossible (no symbol, unreadable page, or
/// bytes that do not look like kernel strings) it falls back to what VMCOREINFO and the ELF
/// header say, so readers still find the release and the machine.
pub fn read(vmcore: &mut Vmcore) -> Uts {
    let mut why = String::from("VMCOREINFO has no SYMBOL(init_uts_ns)");
    if let Some(sym) = vmcore.info.symbol("init_uts_ns") {
        let off = vmcore.info.offset("uts_namespace.name").unwrap_or(0).max(0) as u64;
        let mut raw = [0u8; 6 * UTS_LEN];
        match super::read_static(vmcore, sym.wrapping_add(off), &mut raw) {
            Some(()) => match Utsname::from_raw(&raw) {
                Some(name) if name.looks_sane() => {
                    return Uts {
                        name,
                        fallback: None,
                    };
                }
                _ => why = format!("init_uts_ns at {sym:#x} does not hold kernel strings"),
            },
            None => why = format!("init_uts_ns at {sym:#x} cannot be read"),
        }
    }
    let mut name = Utsname::default();
    name.set(Utsname::SYSNAME, "Linux");
    if let Some(r) = vmcore.info.osrelease() {
        name.set(Utsname::RELEASE, r);
    }
    if let Some(m) = machine_name(vmcore.elf.machine) {
        name.set(Utsname::MACHINE, m);
    }
    Uts {
        name,
        fallback: Some(why),
    }
}

/// `uname -m` for an ELF e_machine.
pub fn machine_name(e_machine: u16) -> Option<&'static str> {
    Some(match e_machine {
        3 => "i686",
        62 => "x86_64",
        183 => "aarch64",
        21 => "ppc64le",
        22 => "s390x",
        243 => "riscv64",
        _ => return None,
    })
}
