//! The option definitions: every option vmsift takes or refuses, with its help text. The
//! help, and the manual page and completions of `vmsift-gen-docs`, are generated from them.

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::error::{Error, Result};

/// The command line: every option with its help text, in the order `-h` lists them.
pub fn command() -> Command {
    Command::new("vmsift")
        .about("Saves a crashed kernel's memory as a kdump-compressed dump (makedumpfile-compatible)")
        .disable_help_flag(true)
        // getopt semantics: a repeated option is allowed, and the last one counts.
        .args_override_self(true)
        .disable_version_flag(true)
        .override_usage(
            "vmsift [-c|-l|-p|-z] [-d DL] [-f] [--message-level ML] VMCORE DUMPFILE\n       \
             vmsift [-c|-l|-p|-z] [-d DL] [--ssh-key FILE] VMCORE ssh://[USER@]HOST[:PORT]/PATH\n       \
             vmsift -F [-c|-l|-p|-z] [-d DL] VMCORE > FLATTENED\n       \
             vmsift -R DUMPFILE < FLATTENED\n       \
             vmsift --split [-c|-l|-p|-z] [-d DL] VMCORE DUMPFILE1 DUMPFILE2 ...\n       \
             vmsift --reassemble DUMPFILE1 DUMPFILE2 ... DUMPFILE\n       \
             vmsift -v | -h",
        )
        .args(dump_args())
        .args(task_args())
        .args(compat_args())
        .args(REFUSED.iter().map(|r| {
            let a = Arg::new(r.id).help(r.help).hide(true);
            let a = match r.short {
                Some(c) => a.short(c),
                None => a.long(r.id),
            };
            if r.takes_value {
                a.value_name("ARG")
            } else {
                a.action(ArgAction::SetTrue)
            }
        }))
        .arg(Arg::new("files").action(ArgAction::Append).value_name("FILE").num_args(0..))
}

/// makedumpfile options vmsift does not implement, each refused with what to do instead.
struct Refused {
    id: &'static str,
    short: Option<char>,
    takes_value: bool,
    help: &'static str,
    why: &'static str,
}

/// A flag with a short name.
fn flag(name: &'static str, short: char, help: &'static str) -> Arg {
    Arg::new(name)
        .short(short)
        .action(ArgAction::SetTrue)
        .help(help)
}

/// How the dump is written: codec, dump level, output form, messages, threads.
fn dump_args() -> Vec<Arg> {
    vec![
        flag("zlib", 'c', "Compress each page with zlib (deflate level 1)"),
        flag("lzo", 'l', "Compress each page with LZO1X-1"),
        flag("snappy", 'p', "Compress each page with snappy"),
        flag("zstd", 'z', "Compress each page with zstd (level 1)"),
        Arg::new("dump-level")
            .short('d')
            .value_name("DL")
            .help("Dump level: bitmask of page classes to exclude (1 zero, 2 cache, 4 cache with private, 8 user, 16 free); a comma list gives fallbacks"),
        flag("flatten", 'F', "Write the dump in the flattened format to stdout"),
        flag("elf", 'E', "Write an ELF core file (uncompressed) instead of a kdump-compressed one"),
        flag("rearrange", 'R', "Rebuild DUMPFILE from a flattened dump read on stdin"),
        flag("force", 'f', "Overwrite an existing DUMPFILE"),
        flag("exclude-vmemmap", 'e', "Also leave out the vmemmap pages (struct pages) that describe only pages the dump leaves out; no --work-dir is needed"),
        flag("debug", 'D', "Print debugging messages (adds 8 to the message level)"),
        flag("version", 'v', "Print the version and the built-in codecs"),
        flag("help", 'h', "Print this help"),
        Arg::new("size-limit")
            .short('L')
            .value_name("SIZE")
            .help("Limit the dump file to SIZE bytes (suffixes K, M, G, T, P, E); reaching it is handled like a full disk"),
        Arg::new("message-level")
            .long("message-level")
            .value_name("ML")
            .help("Messages to print: 1 progress, 2 common, 4 error, 8 debug, 16 report (default 7)"),
        Arg::new("num-threads")
            .long("num-threads")
            .short('j')
            .value_name("N")
            .help("Threads that read and compress pages (default: the CPUs available)"),
    ]
}

/// The other tasks (dmesg, split, reassemble, memory usage), and output and safety options.
fn task_args() -> Vec<Arg> {
    vec![
        Arg::new("dump-dmesg")
            .long("dump-dmesg")
            .action(ArgAction::SetTrue)
            .help("Write the kernel log of VMCOREINFO's kernel to LOGFILE (with -F, to stdout)"),
        Arg::new("mem-usage")
            .long("mem-usage")
            .action(ArgAction::SetTrue)
            .help("Print the pages of each class a dump of the running kernel (VMCORE = /proc/kcore) would hold, and its estimated size per codec"),
        Arg::new("partial-dmesg")
            .long("partial-dmesg")
            .action(ArgAction::SetTrue)
            .help("With --dump-dmesg: only the messages after the last `dmesg --clear`"),
        Arg::new("cyclic-buffer")
            .long("cyclic-buffer")
            .value_name("KB")
            .help("Bitmap buffer per cycle in KiB (default: 4096, less when memory is short)"),
        Arg::new("check-params")
            .long("check-params")
            .action(ArgAction::SetTrue)
            .help("Only check the options and files given, then exit 0 (valid) or 1"),
        Arg::new("dry-run")
            .long("dry-run")
            .action(ArgAction::SetTrue)
            .help("Do everything but write the dump"),
        Arg::new("show-stats")
            .long("show-stats")
            .action(ArgAction::SetTrue)
            .help("Print the report of excluded pages per class (adds 16 to the message level)"),
        Arg::new("split")
            .long("split")
            .action(ArgAction::SetTrue)
            .help("Write the dump as several files, VMCORE F1 F2 ..., one per range of page frames, in parallel"),
        Arg::new("reassemble")
            .long("reassemble")
            .action(ArgAction::SetTrue)
            .help("Join the files of a split dump, F1 F2 ... DUMPFILE, into one dump file"),
        Arg::new("atomic")
            .long("atomic")
            .action(ArgAction::SetTrue)
            .help("Write DUMPFILE.incomplete and rename it to DUMPFILE only when the dump is complete"),
        Arg::new("ssh-key")
            .long("ssh-key")
            .value_name("FILE")
            .help("Identity file for an ssh://[USER@]HOST[:PORT]/PATH dump file"),
        Arg::new("ssh-option")
            .long("ssh-option")
            .value_name("OPT")
            .action(ArgAction::Append)
            .help("An ssh -o option for an ssh:// dump file (repeatable)"),
        Arg::new("watchdog")
            .long("watchdog")
            .value_name("SECONDS")
            .help("Give up (exit 1, the dump marked incomplete) when the output takes no byte for SECONDS; 0 turns it off (default: 120 when VMCORE is /proc/vmcore, else off)"),
        Arg::new("non-mmap")
            .long("non-mmap")
            .action(ArgAction::SetTrue)
            .help("Read the vmcore with pread only, never mmap"),
    ]
}

/// makedumpfile options accepted for compatibility that change nothing here.
fn compat_args() -> Vec<Arg> {
    vec![
        Arg::new("block-order")
            .short('b')
            .value_name("ORDER")
            .help("Accepted for compatibility (makedumpfile's write cache of 2^ORDER pages); writes are sized by vmsift"),
        Arg::new("work-dir")
            .long("work-dir")
            .value_name("DIR")
            .help("Accepted for compatibility: vmsift keeps its bitmaps in memory, within a fixed budget, and needs no work file"),
        Arg::new("non-cyclic")
            .long("non-cyclic")
            .action(ArgAction::SetTrue)
            .help("Accepted and ignored (removed from makedumpfile in 1.5.9)"),
    ]
}

/// The refused options; hidden from `-h`, each answered with its `why`.
const REFUSED: &[Refused] = &[
    Refused {
        id: "vmlinux",
        short: Some('x'),
        takes_value: true,
        help: "Refused: debug info is not used",
        why: "-x VMLINUX is not supported: vmsift reads everything it needs from the vmcore's VMCOREINFO note (kernels since 2.6.24 export it); drop -x. Erase filters (--config, --eppic) need makedumpfile",
    },
    Refused {
        id: "vmcoreinfo-in",
        short: Some('i'),
        takes_value: true,
        help: "Refused: VMCOREINFO comes from the vmcore",
        why: "-i VMCOREINFO is not supported: vmsift takes VMCOREINFO from the vmcore's own note; drop -i",
    },
    Refused {
        id: "vmcoreinfo-out",
        short: Some('g'),
        takes_value: true,
        help: "Refused: no debug info is read",
        why: "-g is not supported: vmsift cannot build VMCOREINFO from a vmlinux; the kernel exports it in /proc/vmcore (and /sys/kernel/vmcoreinfo)",
    },
    Refused {
        id: "config",
        short: None,
        takes_value: true,
        help: "Refused: erase filters need debug info",
        why: "--config (erase filter) is not supported: it needs the kernel's debug info; use makedumpfile -x VMLINUX --config FILE, or re-filter vmsift's dump with it",
    },
    Refused {
        id: "eppic",
        short: None,
        takes_value: true,
        help: "Refused: eppic macros need debug info",
        why: "--eppic is not supported: it needs the kernel's debug info; use makedumpfile -x VMLINUX --eppic FILE",
    },
    Refused {
        id: "xen-vmcoreinfo",
        short: None,
        takes_value: true,
        help: "Refused: Xen",
        why: "Xen dumps (--xen-syms, --xen-vmcoreinfo) are not supported; use makedumpfile",
    },
    Refused {
        id: "xen-syms",
        short: None,
        takes_value: true,
        help: "Refused: Xen",
        why: "Xen dumps (--xen-syms, --xen-vmcoreinfo) are not supported; use makedumpfile",
    },
];

/// The help text (`-h`).
pub fn help() -> String {
    command().render_help().to_string()
}

/// Fails with the reason of the first refused option given.
pub(super) fn refuse(m: &ArgMatches) -> Result<()> {
    for r in REFUSED {
        let given = if r.takes_value {
            m.contains_id(r.id) && m.get_one::<String>(r.id).is_some()
        } else {
            m.get_flag(r.id)
        };
        if given {
            return Err(Error::usage(r.why));
        }
    }
    Ok(())
}
