//! makedumpfile's command line, parsed into one `Job`. Nothing else looks at argv.
//!
//! Forms: `vmsift [OPTIONS] VMCORE DUMPFILE`, `vmsift -F [OPTIONS] VMCORE` (flattened dump on
//! stdout), `vmsift -R DUMPFILE` (flattened stream on stdin rebuilt into a file), `-v`, `-h`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::filter::DumpLevel;
use crate::report;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Write a dump (to a file, or flattened to stdout).
    Dump {
        vmcore: PathBuf,
        /// `None` with `-F`: the dump goes to stdout.
        dumpfile: Option<PathBuf>,
    },
    /// `-R DUMPFILE`: rebuild a file from a flattened stream on stdin.
    Rearrange {
        dumpfile: PathBuf,
    },
    /// `--dump-dmesg VMCORE LOGFILE` (`None`: with -F, the log goes to stdout).
    DumpDmesg {
        vmcore: PathBuf,
        logfile: Option<PathBuf>,
    },
    Version,
    Help,
    /// `--split VMCORE F1 F2 ...`: one dump in several files, written in parallel.
    Split {
        vmcore: PathBuf,
        dumpfiles: Vec<PathBuf>,
    },
    /// `--reassemble F1 F2 ... DUMPFILE`: a split set back into one file.
    Reassemble {
        parts: Vec<PathBuf>,
        dumpfile: PathBuf,
    },
    /// `--mem-usage /proc/kcore`: what a dump of the running kernel would hold.
    MemUsage {
        kcore: PathBuf,
    },
    /// `--man-page`: the manual page (roff) on stdout, for installers.
    ManPage,
    /// `--completions SHELL`: a completion script on stdout, for installers.
    Completions(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub mode: Mode,
    pub codec: Codec,
    /// `-d` levels in order of preference (a comma list falls back to the next on ENOSPC).
    pub levels: Vec<DumpLevel>,
    pub force: bool,
    pub message_level: u32,
    pub use_mmap: bool,
    pub threads: Option<usize>,
    /// `--cyclic-buffer KB`: bytes of one cycle's bitmap, in KiB.
    pub cyclic_buffer_kib: Option<u64>,
    /// `--check-params`: validate the command line only (RHEL's mkdumprd calls this).
    pub check_params: bool,
    /// `--dry-run`: do all the work, write nothing.
    pub dry_run: bool,
    /// `-L SIZE`: the dump file may not grow past this many bytes.
    pub size_limit: Option<u64>,
    /// `-E`: ELF output.
    pub elf: bool,
    /// `--partial-dmesg`: with `--dump-dmesg`, only what follows the last clear.
    pub partial_dmesg: bool,
    /// `--atomic`: write `DUMPFILE.incomplete`, rename it to DUMPFILE only on success.
    pub atomic: bool,
    /// For `ssh://` dump files: `--ssh-key FILE` and `--ssh-option OPT`s.
    pub ssh_key: Option<PathBuf>,
    pub ssh_options: Vec<String>,
}

fn command() -> Command {
    let flag = |name: &'static str, short: char, help: &'static str| {
        Arg::new(name)
            .short(short)
            .action(ArgAction::SetTrue)
            .help(help)
    };
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
        .arg(flag("zlib", 'c', "Compress each page with zlib (deflate level 1)"))
        .arg(flag("lzo", 'l', "Compress each page with LZO1X-1"))
        .arg(flag("snappy", 'p', "Compress each page with snappy"))
        .arg(flag("zstd", 'z', "Compress each page with zstd (level 1)"))
        .arg(
            Arg::new("dump-level")
                .short('d')
                .value_name("DL")
                .help("Dump level: bitmask of page classes to exclude (1 zero, 2 cache, 4 cache with private, 8 user, 16 free); a comma list gives fallbacks"),
        )
        .arg(flag("flatten", 'F', "Write the dump in the flattened format to stdout"))
        .arg(flag("elf", 'E', "Write an ELF core file (uncompressed) instead of a kdump-compressed one"))
        .arg(flag("rearrange", 'R', "Rebuild DUMPFILE from a flattened dump read on stdin"))
        .arg(flag("force", 'f', "Overwrite an existing DUMPFILE"))
        .arg(flag("debug", 'D', "Print debugging messages (adds 8 to the message level)"))
        .arg(flag("version", 'v', "Print the version and the built-in codecs"))
        .arg(flag("help", 'h', "Print this help"))
        .arg(
            Arg::new("size-limit")
                .short('L')
                .value_name("SIZE")
                .help("Limit the dump file to SIZE bytes (suffixes K, M, G, T, P, E); reaching it is handled like a full disk"),
        )
        .arg(
            Arg::new("message-level")
                .long("message-level")
                .value_name("ML")
                .help("Messages to print: 1 progress, 2 common, 4 error, 8 debug, 16 report (default 7)"),
        )
        .arg(
            Arg::new("num-threads")
                .long("num-threads")
                .short('j')
                .value_name("N")
                .help("Threads that read and compress pages (default: the CPUs available)"),
        )
        .arg(
            Arg::new("dump-dmesg")
                .long("dump-dmesg")
                .action(ArgAction::SetTrue)
                .help("Write the kernel log of VMCOREINFO's kernel to LOGFILE (with -F, to stdout)"),
        )
        .arg(
            Arg::new("mem-usage")
                .long("mem-usage")
                .action(ArgAction::SetTrue)
                .help("Print the pages of each class a dump of the running kernel (VMCORE = /proc/kcore) would hold, and its estimated size per codec"),
        )
        .arg(
            Arg::new("partial-dmesg")
                .long("partial-dmesg")
                .action(ArgAction::SetTrue)
                .help("With --dump-dmesg: only the messages after the last `dmesg --clear`"),
        )
        .arg(
            Arg::new("cyclic-buffer")
                .long("cyclic-buffer")
                .value_name("KB")
                .help("Bitmap buffer per cycle in KiB (default: 4096, less when memory is short)"),
        )
        .arg(
            Arg::new("check-params")
                .long("check-params")
                .action(ArgAction::SetTrue)
                .help("Only check the options and files given, then exit 0 (valid) or 1"),
        )
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .help("Do everything but write the dump"),
        )
        .arg(
            Arg::new("show-stats")
                .long("show-stats")
                .action(ArgAction::SetTrue)
                .help("Print the report of excluded pages per class (adds 16 to the message level)"),
        )
        .arg(
            Arg::new("split")
                .long("split")
                .action(ArgAction::SetTrue)
                .help("Write the dump as several files, VMCORE F1 F2 ..., one per range of page frames, in parallel"),
        )
        .arg(
            Arg::new("reassemble")
                .long("reassemble")
                .action(ArgAction::SetTrue)
                .help("Join the files of a split dump, F1 F2 ... DUMPFILE, into one dump file"),
        )
        .arg(
            Arg::new("atomic")
                .long("atomic")
                .action(ArgAction::SetTrue)
                .help("Write DUMPFILE.incomplete and rename it to DUMPFILE only when the dump is complete"),
        )
        .arg(
            Arg::new("ssh-key")
                .long("ssh-key")
                .value_name("FILE")
                .help("Identity file for an ssh://[USER@]HOST[:PORT]/PATH dump file"),
        )
        .arg(
            Arg::new("ssh-option")
                .long("ssh-option")
                .value_name("OPT")
                .action(ArgAction::Append)
                .help("An ssh -o option for an ssh:// dump file (repeatable)"),
        )
        .arg(
            Arg::new("non-mmap")
                .long("non-mmap")
                .action(ArgAction::SetTrue)
                .help("Read the vmcore with pread only, never mmap"),
        )
        // Accepted for compatibility; they change nothing here.
        .arg(
            Arg::new("block-order")
                .short('b')
                .value_name("ORDER")
                .help("Accepted for compatibility (makedumpfile's write cache of 2^ORDER pages); writes are sized by vmsift"),
        )
        .arg(
            Arg::new("work-dir")
                .long("work-dir")
                .value_name("DIR")
                .help("Accepted for compatibility: vmsift keeps its bitmaps in memory, within a fixed budget, and needs no work file"),
        )
        .arg(
            Arg::new("non-cyclic")
                .long("non-cyclic")
                .action(ArgAction::SetTrue)
                .help("Accepted and ignored (removed from makedumpfile in 1.5.9)"),
        )
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
        .arg(
            Arg::new("man-page")
                .long("man-page")
                .action(ArgAction::SetTrue)
                .hide(true),
        )
        .arg(Arg::new("completions").long("completions").value_name("SHELL").hide(true))
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
        id: "exclude-vmemmap",
        short: Some('e'),
        takes_value: false,
        help: "Refused: vmemmap exclusion",
        why: "-e (exclude the vmemmap pages of excluded pages) is not supported; drop -e (the dump keeps those pages)",
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

/// The manual page, generated from the option definitions (`--man-page`).
pub fn man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(command().name("vmsift").version(env!("CARGO_PKG_VERSION")))
        .section("8")
        .render(out)
}

/// A completion script for `shell` (bash, zsh, fish) (`--completions SHELL`).
pub fn completions(shell: &str, out: &mut dyn std::io::Write) -> Result<()> {
    use clap_complete::Shell;
    let sh = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        _ => {
            return Err(Error::usage(format!(
                "--completions: unknown shell \"{shell}\" (bash, zsh or fish)"
            )));
        }
    };
    clap_complete::generate(sh, &mut command(), "vmsift", out);
    Ok(())
}

fn parse_number(what: &str, value: &str) -> Result<u64> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::usage(format!("{what} must be a number, not \"{value}\"")))
}

/// `-L` sizes: a number with an optional binary suffix K, M, G, T, P or E.
fn parse_size(value: &str) -> Result<u64> {
    let v = value.trim();
    let (digits, shift) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                'P' => 50,
                'E' => 60,
                _ => {
                    return Err(Error::usage(format!(
                        "-L: unknown size suffix in \"{value}\""
                    )));
                }
            };
            (&v[..i], shift)
        }
        _ => (v, 0),
    };
    parse_number("-L", digits)?
        .checked_mul(1u64 << shift)
        .ok_or_else(|| Error::usage(format!("-L: {value} is too large")))
}

/// The `-c`/`-l`/`-p`/`-z` codec (none: pages stored raw).
fn codec(m: &ArgMatches) -> Result<Codec> {
    let codecs: Vec<Codec> = [
        ("zlib", Codec::Zlib),
        ("lzo", Codec::Lzo),
        ("snappy", Codec::Snappy),
        ("zstd", Codec::Zstd),
    ]
    .into_iter()
    .filter(|(id, _)| m.get_flag(id))
    .map(|(_, c)| c)
    .collect();
    if codecs.len() > 1 {
        return Err(Error::usage("only one of -c, -l, -p and -z can be given"));
    }
    let codec = codecs.first().copied().unwrap_or(Codec::None);
    if m.get_flag("elf") && codec != Codec::None {
        return Err(Error::usage(
            "-E cannot be used with -c, -l, -p or -z: ELF dumps are not compressed",
        ));
    }
    Ok(codec)
}

/// The options that each select a task of their own (a dump is what runs without them).
const TASKS: &[(&str, &str)] = &[
    ("rearrange", "-R"),
    ("split", "--split"),
    ("reassemble", "--reassemble"),
    ("dump-dmesg", "--dump-dmesg"),
    ("mem-usage", "--mem-usage"),
];

/// Other pairs that cannot go together; makedumpfile refuses each of them too.
const CONFLICTS: &[(&str, &str, &str)] = &[
    (
        "flatten",
        "rearrange",
        "-F and -R cannot be used together: -R reads a flattened stream on stdin, -F writes one to stdout",
    ),
    (
        "flatten",
        "split",
        "-F and --split cannot be used together: a split set is written to files",
    ),
    (
        "flatten",
        "reassemble",
        "-F and --reassemble cannot be used together: a split set is joined into a file",
    ),
    (
        "elf",
        "rearrange",
        "-E and -R cannot be used together: -R rebuilds the stream's dump as it is",
    ),
    (
        "elf",
        "split",
        "-E and --split cannot be used together: a split set is kdump-compressed",
    ),
    (
        "elf",
        "reassemble",
        "-E and --reassemble cannot be used together: a split set is kdump-compressed",
    ),
    (
        "dry-run",
        "reassemble",
        "--dry-run cannot be used with --reassemble",
    ),
    (
        "dry-run",
        "dump-dmesg",
        "--dry-run cannot be used with --dump-dmesg",
    ),
];

/// Refuses options that contradict each other, before anything is opened or created.
///
/// makedumpfile refuses every pair of `CONFLICTS`. Of two `TASKS` it refuses some and, for
/// the others, runs the first of -R, --reassemble, --dump-dmesg, --mem-usage, ignoring the
/// other one. vmsift refuses any two: the ignored one was asked for, and a collector line
/// that names two tasks is better refused by `--check-params` when kdump is set up than
/// half done in the capture kernel.
fn check_modes(m: &ArgMatches, codec: Codec, levels: &[DumpLevel]) -> Result<()> {
    let on = |id: &str| m.get_flag(id);
    let given: Vec<&str> = TASKS
        .iter()
        .filter(|(id, _)| on(id))
        .map(|&(_, name)| name)
        .collect();
    if let [a, b, ..] = given.as_slice() {
        return Err(Error::usage(format!(
            "{a} and {b} cannot be used together: each is a task of its own"
        )));
    }
    for &(a, b, why) in CONFLICTS {
        if on(a) && on(b) {
            return Err(Error::usage(why));
        }
    }
    let recompress = codec != Codec::None || levels.iter().any(|l| l.0 != 0);
    if recompress && on("rearrange") {
        return Err(Error::usage(
            "-R copies the stream's dump as it is: -c, -l, -p, -z and -d cannot be used with it",
        ));
    }
    if recompress && on("reassemble") {
        return Err(Error::usage(
            "--reassemble joins the split files as they are: -c, -l, -p, -z and -d cannot be used with it",
        ));
    }
    if on("partial-dmesg") && !on("dump-dmesg") {
        return Err(Error::usage("--partial-dmesg works only with --dump-dmesg"));
    }
    Ok(())
}

/// The task and its files, once `check_modes` has let at most one task through.
fn task(m: &ArgMatches, files: &[PathBuf]) -> Result<Mode> {
    let on = |id: &str| m.get_flag(id);
    let mode = if on("dump-dmesg") {
        match (files, on("flatten")) {
            ([vmcore], true) => Mode::DumpDmesg {
                vmcore: vmcore.clone(),
                logfile: None,
            },
            ([vmcore, logfile], false) => Mode::DumpDmesg {
                vmcore: vmcore.clone(),
                logfile: Some(logfile.clone()),
            },
            _ => {
                return Err(Error::usage(
                    "--dump-dmesg takes VMCORE and LOGFILE (or VMCORE alone with -F)",
                ));
            }
        }
    } else if on("mem-usage") {
        match files {
            [kcore] => Mode::MemUsage {
                kcore: kcore.clone(),
            },
            _ => return Err(Error::usage("--mem-usage takes one file: /proc/kcore")),
        }
    } else if on("split") {
        match files {
            [vmcore, dumpfiles @ ..] if dumpfiles.len() >= 2 => Mode::Split {
                vmcore: vmcore.clone(),
                dumpfiles: dumpfiles.to_vec(),
            },
            _ => {
                return Err(Error::usage(
                    "--split takes VMCORE and at least two dump files",
                ));
            }
        }
    } else if on("reassemble") {
        match files {
            [parts @ .., dumpfile] if !parts.is_empty() => Mode::Reassemble {
                parts: parts.to_vec(),
                dumpfile: dumpfile.clone(),
            },
            _ => {
                return Err(Error::usage(
                    "--reassemble takes the split files and then the dump file to write",
                ));
            }
        }
    } else if on("rearrange") {
        match files {
            [dumpfile] => Mode::Rearrange {
                dumpfile: dumpfile.clone(),
            },
            _ => {
                return Err(Error::usage(
                    "-R takes exactly one DUMPFILE (the stream comes on stdin)",
                ));
            }
        }
    } else if on("flatten") {
        match files {
            [vmcore] => Mode::Dump {
                vmcore: vmcore.clone(),
                dumpfile: None,
            },
            _ => {
                return Err(Error::usage(
                    "-F takes exactly one VMCORE (the dump goes to stdout)",
                ));
            }
        }
    } else {
        match files {
            [vmcore, dumpfile] => Mode::Dump {
                vmcore: vmcore.clone(),
                dumpfile: Some(dumpfile.clone()),
            },
            _ => return Err(Error::usage("expected VMCORE and DUMPFILE (see vmsift -h)")),
        }
    };
    Ok(mode)
}

/// Parses makedumpfile's arguments (argv[0] included).
pub fn parse<I, T>(args: I) -> Result<Job>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let m: ArgMatches = command().try_get_matches_from(args).map_err(|e| {
        // clap's own message is several lines; keep the first, which names the problem.
        let text = e.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("bad arguments")
            .trim_start_matches("error: ");
        Error::usage(format!("{first} (see vmsift -h)"))
    })?;
    let on = |id: &str| m.get_flag(id);

    // Values are checked as they are read (makedumpfile does so for -d, -L and
    // --message-level): a bad one fails even with -h or -v.
    if let Some(order) = m.get_one::<String>("block-order") {
        parse_number("-b", order)?;
    }
    let levels = match m.get_one::<String>("dump-level") {
        None => vec![DumpLevel(0)],
        Some(s) => {
            let mut v = Vec::new();
            for part in s.split(',') {
                v.push(DumpLevel::parse(part).ok_or_else(|| {
                    Error::usage(format!(
                        "dump level \"{part}\" is not a number from 0 to 31"
                    ))
                })?);
            }
            if v.len() > 32 {
                return Err(Error::usage("at most 32 dump levels can be given"));
            }
            v
        }
    };

    let mut message_level = match m.get_one::<String>("message-level") {
        None => report::DEFAULT_LEVEL,
        Some(s) => {
            let v = parse_number("--message-level", s)?;
            if v > 31 {
                return Err(Error::usage(format!(
                    "message level {v} is not from 0 to 31"
                )));
            }
            v as u32
        }
    };
    if on("debug") {
        message_level |= report::ML_DEBUG;
    }
    if on("show-stats") {
        message_level |= report::ML_REPORT;
    }

    let threads = match m.get_one::<String>("num-threads") {
        None => None,
        Some(s) => Some(parse_number("--num-threads", s)?.clamp(0, 1024) as usize),
    };

    let size_limit = match m.get_one::<String>("size-limit") {
        None => None,
        Some(s) => Some(parse_size(s)?),
    };

    let cyclic_buffer_kib = match m.get_one::<String>("cyclic-buffer") {
        None => None,
        Some(s) => Some(parse_number("--cyclic-buffer", s)?),
    };

    let files: Vec<PathBuf> = m
        .get_many::<String>("files")
        .map(|v| v.map(PathBuf::from).collect())
        .unwrap_or_default();

    // -h and -v answer whatever else is given, as makedumpfile's do.
    let informational = if on("help") {
        Some(Mode::Help)
    } else if on("man-page") {
        Some(Mode::ManPage)
    } else if let Some(shell) = m.get_one::<String>("completions") {
        Some(Mode::Completions(shell.clone()))
    } else if on("version") {
        Some(Mode::Version)
    } else {
        None
    };
    let (mode, codec) = match informational {
        Some(mode) => (mode, Codec::None),
        None => {
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
            let codec = codec(&m)?;
            check_modes(&m, codec, &levels)?;
            (task(&m, &files)?, codec)
        }
    };

    Ok(Job {
        mode,
        codec,
        levels,
        force: on("force"),
        message_level,
        use_mmap: !on("non-mmap"),
        threads,
        cyclic_buffer_kib,
        size_limit,
        elf: on("elf"),
        partial_dmesg: on("partial-dmesg"),
        atomic: on("atomic"),
        ssh_key: m.get_one::<String>("ssh-key").map(PathBuf::from),
        ssh_options: m
            .get_many::<String>("ssh-option")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        check_params: on("check-params"),
        dry_run: on("dry-run"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Job> {
        parse(std::iter::once("vmsift").chain(args.iter().copied()))
    }

    #[test]
    fn distro_command_lines() {
        // RHEL's default, with the thread count kdump.sh appends.
        let j = p(&[
            "-l",
            "--message-level",
            "7",
            "-d",
            "31",
            "--num-threads=2",
            "/proc/vmcore",
            "out",
        ])
        .expect("rhel");
        assert_eq!(j.codec, Codec::Lzo);
        assert_eq!(j.levels, vec![DumpLevel(31)]);
        assert_eq!(j.threads, Some(2));
        assert_eq!(j.message_level, 7);
        // Debian's: flattened to stdout, options glued together.
        let j = p(&["-F", "-c", "-d31", "/proc/vmcore"]).expect("debian");
        assert_eq!(
            j.mode,
            Mode::Dump {
                vmcore: "/proc/vmcore".into(),
                dumpfile: None
            }
        );
        assert_eq!(j.codec, Codec::Zlib);
        // SUSE's, space form of --num-threads, combined short flags.
        let j = p(&[
            "-Fz",
            "--num-threads",
            "4",
            "--message-level",
            "6",
            "-d",
            "31",
            "/proc/vmcore",
        ])
        .expect("suse");
        assert_eq!(
            (j.codec, j.threads, j.message_level),
            (Codec::Zstd, Some(4), 6)
        );
        // Debian's and SUSE's dmesg calls.
        let j = p(&["--dump-dmesg", "/proc/vmcore", "/var/crash/dmesg.1"]).expect("dmesg");
        assert!(matches!(
            j.mode,
            Mode::DumpDmesg {
                logfile: Some(_),
                ..
            }
        ));
        let j = p(&["-F", "--message-level", "8", "--dump-dmesg", "/proc/vmcore"]).expect("-F");
        assert!(matches!(j.mode, Mode::DumpDmesg { logfile: None, .. }));
        // RHEL's mkdumprd: `makedumpfile --check-params <core_collector options> vmcore dumpfile`.
        let j = p(&[
            "--check-params",
            "-l",
            "--message-level",
            "7",
            "-d",
            "31",
            "vmcore",
            "dumpfile",
        ])
        .expect("check-params");
        assert!(j.check_params && !j.dry_run);
        let j = p(&["-R", "dump"]).expect("-R");
        assert_eq!(
            j.mode,
            Mode::Rearrange {
                dumpfile: "dump".into()
            }
        );
        assert_eq!(p(&["-d", "31,1", "a", "b"]).expect("list").levels.len(), 2);
        let j = p(&["-d", "1", "-l", "-d", "31", "-l", "a", "b"]).expect("repeats");
        assert_eq!((j.levels[0], j.codec), (DumpLevel(31), Codec::Lzo));
        assert_eq!(p(&["-D", "a", "b"]).expect("-D").message_level, 15);
        assert_eq!(
            p(&["--show-stats", "a", "b"]).expect("stats").message_level,
            23
        );
    }

    #[test]
    fn help_and_version_answer_whatever_else_is_given() {
        assert_eq!(p(&["-h", "-R", "-F", "a"]).expect("-h").mode, Mode::Help);
        assert_eq!(p(&["-v", "-x", "vmlinux"]).expect("-v").mode, Mode::Version);
        // Values are checked as they are read, before -h answers (as makedumpfile does).
        assert!(p(&["-h", "-d", "x"]).is_err());
    }

    #[test]
    fn bad_command_lines() {
        for bad in [
            &["-l", "-c", "a", "b"][..],
            &["-d", "32", "a", "b"],
            &["-d", "x", "a", "b"],
            &["a"],
            &["-F", "a", "b"],
            &["-R"],
            &["--bogus", "a", "b"],
            &["--message-level", "99", "a", "b"],
            &["-R", "-F", "a"],
            &["--check-params", "--split", "--reassemble", "a", "b", "c"],
            &["--split", "--dump-dmesg", "v", "a", "b"],
            &["-E", "--split", "v", "a", "b"],
            &["--dry-run", "--reassemble", "a", "b", "c"],
            &["-R", "-l", "a"],
        ] {
            let e = p(bad).expect_err("must fail");
            assert!(!e.to_string().contains('\n'), "{bad:?}: {e}");
        }
    }
}
