//! `vmsift-gen-docs`: writes vmsift's manual page or a shell completion script on stdout,
//! generated from the collector's own option definitions (`vmsift::cli::command`), for
//! installers and packagers. A program of its own so that the collector, which goes into
//! every capture-kernel initramfs, does not carry the generators.
//!
//! usage: `vmsift-gen-docs --man-page` | `vmsift-gen-docs --completions bash|zsh|fish`

use std::io::Write;

use clap_complete::Shell;

/// What to write, from argv; `Err` holds the message for a bad command line.
enum Output {
    ManPage,
    Completions(Shell),
}

fn output(args: &[String]) -> Result<Output, String> {
    match args {
        [flag] if flag == "--man-page" => Ok(Output::ManPage),
        [flag, shell] if flag == "--completions" => match shell.as_str() {
            "bash" => Ok(Output::Completions(Shell::Bash)),
            "zsh" => Ok(Output::Completions(Shell::Zsh)),
            "fish" => Ok(Output::Completions(Shell::Fish)),
            _ => Err(format!(
                "--completions: unknown shell \"{shell}\" (bash, zsh or fish)"
            )),
        },
        _ => Err("usage: vmsift-gen-docs --man-page | --completions bash|zsh|fish".into()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let written = match output(&args) {
        Err(why) => {
            eprintln!("vmsift-gen-docs: error: {why}");
            std::process::exit(1);
        }
        Ok(Output::ManPage) => {
            let cmd = vmsift::cli::command().version(env!("CARGO_PKG_VERSION"));
            clap_mangen::Man::new(cmd).section("8").render(&mut out)
        }
        Ok(Output::Completions(shell)) => {
            clap_complete::generate(shell, &mut vmsift::cli::command(), "vmsift", &mut out);
            Ok(())
        }
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        eprintln!("vmsift-gen-docs: error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
