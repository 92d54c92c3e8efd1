//! The kernel's `init_uts_ns.name` (sysname, nodename, release, version, machine,
//! domainname), which makedumpfile copies into the dump header.

use crate::format::kdump::{UTS_LEN, Utsname};
use crate::input::Vmcore;

/// The crashed kernel's utsname, and how it was found.
pub struct Uts {
    /// The six fields, as the dump header stores them.
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
        // Where `name` is in struct uts_namespace: exported since 6.0; before, it is first
        // (5.11 on) or behind a 4-byte kref (up to 5.10). The kref's small count is not
        // text, so the first offset that holds kernel strings is the right one.
        let offsets = match vmcore.info.offset("uts_namespace.name") {
            Some(off) => vec![off.max(0) as u64],
            None => vec![0, 4],
        };
        for off in offsets {
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
    }
    let mut name = Utsname::default();
    name.set(Utsname::SYSNAME, "Linux");
    if let Some(r) = vmcore.info.osrelease() {
        name.set(Utsname::RELEASE, r);
    }
    if let Some(m) = crate::arch::machine_name(vmcore.elf.machine) {
        name.set(Utsname::MACHINE, m);
    }
    Uts {
        name,
        fallback: Some(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{MINIMAL_VMCOREINFO, SynthVmcore};

    /// A vmcore whose kernel text holds `init_uts_ns` at physical 0x1000, with `name`
    /// at `name_at` inside it (behind `lead`), and VMCOREINFO with `extra` lines.
    fn uts_of(lead: &[u8], extra: &str) -> Uts {
        let mut mem = vec![0u8; 0x3000];
        mem[0x1000..0x1000 + lead.len()].copy_from_slice(lead);
        let name_at = 0x1000 + lead.len();
        for (i, f) in [
            "Linux",
            "crashed",
            "5.10.0-32-amd64",
            "#1 SMP",
            "x86_64",
            "(none)",
        ]
        .iter()
        .enumerate()
        {
            let at = name_at + i * UTS_LEN;
            mem[at..at + f.len()].copy_from_slice(f.as_bytes());
        }
        let info = format!("{MINIMAL_VMCOREINFO}SYMBOL(init_uts_ns)=ffffffff80001000\n{extra}");
        let bytes = SynthVmcore::new()
            .prstatus(1)
            .vmcoreinfo(&info)
            .load(0, mem, 0)
            .to_bytes();
        let path =
            std::env::temp_dir().join(format!("vmsift-uts-{}-{}", std::process::id(), lead.len()));
        std::fs::write(&path, bytes).expect("write vmcore");
        let mut vm = Vmcore::open(&path, false).expect("open");
        let _ = std::fs::remove_file(&path);
        read(&mut vm)
    }

    #[test]
    fn utsname_without_the_exported_offset() {
        // 5.10: a kref (count 3) before the name; 5.11 to 5.19: the name first.
        for lead in [&[3u8, 0, 0, 0][..], &[][..]] {
            let uts = uts_of(lead, "");
            assert_eq!(uts.fallback, None, "{} bytes before the name", lead.len());
            assert_eq!(uts.name.get(Utsname::NODENAME), "crashed");
        }
        // With the offset exported, only that one is read.
        let uts = uts_of(&[3, 0, 0, 0], "OFFSET(uts_namespace.name)=0\n");
        assert!(uts.fallback.is_some());
        assert_eq!(uts.name.get(Utsname::NODENAME), "");
        let uts = uts_of(&[3, 0, 0, 0], "OFFSET(uts_namespace.name)=4\n");
        assert_eq!(uts.name.get(Utsname::NODENAME), "crashed");
    }
}
