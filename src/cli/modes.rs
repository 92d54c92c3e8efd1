//! Which task a command line asks for, and the option pairs that cannot go together.

use std::path::PathBuf;

use clap::ArgMatches;

use super::Mode;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::filter::DumpLevel;

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
        "exclude-vmemmap",
        "elf",
        "-e and -E cannot be used together: -e leaves vmemmap pages out of kdump-compressed dumps only",
    ),
    (
        "exclude-vmemmap",
        "reassemble",
        "-e cannot be used with --reassemble: the split files are joined as they are",
    ),
    (
        "exclude-vmemmap",
        "rearrange",
        "-e cannot be used with -R: the stream's dump is rebuilt as it is",
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
pub(super) fn check_modes(m: &ArgMatches, codec: Codec, levels: &[DumpLevel]) -> Result<()> {
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
pub(super) fn task(m: &ArgMatches, files: &[PathBuf]) -> Result<Mode> {
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
