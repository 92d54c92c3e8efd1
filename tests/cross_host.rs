//! Any vmcore on any host: a vmsift built for another machine (an aarch64 binary under
//! qemu-user on this x86_64 host, say) writes the same bytes as this one, for x86_64 and
//! arm64 vmcores alike. `VMSIFT_CROSS` is the command that runs the other binary, words
//! separated by spaces (`qemu-aarch64-static target/aarch64-unknown-linux-musl/release/vmsift`).
//! Synthetic kernels of both machines, arm64 in each granule; `tests/cross-host` does the
//! same with the real vmcores.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmsift::synth::arm64::{Arm64Config, Arm64Kernel};
use vmsift::synth::{Flavor, SynthKernel};

fn run(cmd: &[String], args: &[&str], vmcore: &Path, out: &Path) -> Vec<u8> {
    let _ = fs::remove_file(out);
    common::succeed(
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .args(args)
            .arg(vmcore)
            .arg(out),
        &format!("{cmd:?} {args:?} {}", vmcore.display()),
    );
    let bytes = fs::read(out).expect("read dump");
    fs::remove_file(out).expect("clean up");
    bytes
}

/// Synthetic vmcores of both machines, with some pages of every class.
fn synthetic(dir: &Path) -> Vec<PathBuf> {
    let mut k = SynthKernel::new(Flavor::Linux7_1Hvo, 4096);
    k.buddy(1024, 3);
    let lru = k.flag("lru");
    let o = k.o;
    k.set_u64(1090, o.flags, lru);
    k.set_u64(1090, o.mapping, 0xffff_8880_0000_9000);
    let x86 = dir.join("x86_64");
    fs::write(&x86, k.vmcore().to_bytes()).expect("write");
    let mut out = vec![x86];
    for (ps, va, actual, pbits) in [(4096, 52, 52, 52), (16384, 48, 48, 48), (65536, 52, 48, 52)] {
        let a = Arm64Kernel::from_synth(&k, Arm64Config::new(ps, va, actual, pbits), 2048);
        let path = dir.join(format!("arm64-{ps}-{va}-{actual}"));
        a.write_vmcore(&path).expect("write");
        out.push(path);
    }
    out
}

#[test]
#[ignore = "needs VMSIFT_CROSS: a vmsift built for another machine"]
fn another_hosts_binary_writes_the_same_bytes() {
    let cross: Vec<String> = std::env::var("VMSIFT_CROSS")
        .expect("VMSIFT_CROSS names the other machine's vmsift")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(!cross.is_empty(), "VMSIFT_CROSS is empty");
    let native = vec![env!("CARGO_BIN_EXE_vmsift").to_string()];
    let dir = common::scratch_at("cross-host");
    let inputs = synthetic(&dir);
    let out = dir.join("dump");
    for vmcore in &inputs {
        for args in [
            &["-l", "-d", "31"][..],
            &["-z", "-d", "31"],
            &["-c", "-d", "1"],
            &["-E", "-d", "31"],
        ] {
            let a = run(&native, args, vmcore, &out);
            let b = run(&cross, args, vmcore, &out);
            assert!(
                a == b,
                "{args:?} {}: the two hosts differ",
                vmcore.display()
            );
        }
    }
}
