//! makedumpfile's command line, parsed into one `Job`. Nothing else looks at argv.
//!
//! Forms: `vmsift [OPTIONS] VMCORE DUMPFILE`, `vmsift -F [OPTIONS] VMCORE` (flattened dump on
//! stdout), `vmsift -R DUMPFILE` (flattened stream on stdin rebuilt into a file), `-v`, `-h`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::ArgMatches;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::filter::DumpLevel;
use crate::report;

mod modes;
mod options;
#[cfg(test)]
mod tests;

use modes::{check_modes, task};
use options::refuse;
pub use options::{command, help};

/// What a command line asks vmsift to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Write a dump (to a file, or flattened to stdout).
    Dump {
        /// The vmcore (or dump, or flattened stream) to read.
        vmcore: PathBuf,
        /// `None` with `-F`: the dump goes to stdout.
        dumpfile: Option<PathBuf>,
    },
    /// `-R DUMPFILE`: rebuild a file from a flattened stream on stdin.
    Rearrange {
        /// The file to write.
        dumpfile: PathBuf,
    },
    /// `--dump-dmesg VMCORE LOGFILE` (`None`: with -F, the log goes to stdout).
    DumpDmesg {
        /// The vmcore (or dump) whose kernel log is read.
        vmcore: PathBuf,
        /// The file to write the log to.
        logfile: Option<PathBuf>,
    },
    /// `-v`: the version and the built-in codecs.
    Version,
    /// `-h`: the help text.
    Help,
    /// `--split VMCORE F1 F2 ...`: one dump in several files, written in parallel.
    Split {
        /// The vmcore to read.
        vmcore: PathBuf,
        /// The files of the set, in pfn order.
        dumpfiles: Vec<PathBuf>,
    },
    /// `--reassemble F1 F2 ... DUMPFILE`: a split set back into one file.
    Reassemble {
        /// The files of the split set.
        parts: Vec<PathBuf>,
        /// The file to write.
        dumpfile: PathBuf,
    },
    /// `--mem-usage /proc/kcore`: what a dump of the running kernel would hold.
    MemUsage {
        /// The running kernel's memory (`/proc/kcore`).
        kcore: PathBuf,
    },
}

/// Everything a command line asks for, checked: what `app` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The task.
    pub mode: Mode,
    /// `-c`/`-l`/`-p`/`-z` (`Codec::None`: pages stored raw).
    pub codec: Codec,
    /// `-d` levels in order of preference (a comma list falls back to the next on ENOSPC).
    pub levels: Vec<DumpLevel>,
    /// `-f`: overwrite an existing dump file.
    pub force: bool,
    /// `-e`: leave out the vmemmap pages that describe only left-out pages.
    pub exclude_vmemmap: bool,
    /// `--message-level` bits (`report::ML_*`), `-D` and `--show-stats` included.
    pub message_level: u32,
    /// `false` with `--non-mmap`: read the vmcore with pread only.
    pub use_mmap: bool,
    /// `--num-threads N` (`None`: the CPUs available).
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
    /// For `ssh://` dump files: `--ssh-key FILE`.
    pub ssh_key: Option<PathBuf>,
    /// `--ssh-option OPT`s, in order.
    pub ssh_options: Vec<String>,
    /// `--watchdog SECONDS`: give up when the output takes no byte for this long (0: off;
    /// `None`: the default, see `watchdog::limit`).
    pub watchdog: Option<u64>,
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

/// The `-d` levels, in order of preference.
fn levels(m: &ArgMatches) -> Result<Vec<DumpLevel>> {
    Ok(match m.get_one::<String>("dump-level") {
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
    })
}

/// `--message-level`, with `-D` and `--show-stats` added in.
fn message_level(m: &ArgMatches) -> Result<u32> {
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
    if m.get_flag("debug") {
        message_level |= report::ML_DEBUG;
    }
    if m.get_flag("show-stats") {
        message_level |= report::ML_REPORT;
    }
    Ok(message_level)
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
    let levels = levels(&m)?;
    let message_level = message_level(&m)?;

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

    let watchdog = match m.get_one::<String>("watchdog") {
        None => None,
        Some(s) => Some(parse_number("--watchdog", s)?.min(1 << 32)),
    };

    let files: Vec<PathBuf> = m
        .get_many::<String>("files")
        .map(|v| v.map(PathBuf::from).collect())
        .unwrap_or_default();

    // -h and -v answer whatever else is given, as makedumpfile's do.
    let informational = if on("help") {
        Some(Mode::Help)
    } else if on("version") {
        Some(Mode::Version)
    } else {
        None
    };
    let (mode, codec) = match informational {
        Some(mode) => (mode, Codec::None),
        None => {
            refuse(&m)?;
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
        exclude_vmemmap: on("exclude-vmemmap"),
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
        watchdog,
    })
}
