//! The `ssh://` dump target against a real OpenSSH server: a private sshd on 127.0.0.1 with
//! its own host key, configuration and authorized key under target/ (the machine's own sshd
//! and /root/.ssh are not touched). sshd needs root, so these run from tests/run-all.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use vmsift::synth::{MINIMAL_VMCOREINFO, SynthVmcore, mixed_pages};

const PS: usize = 4096;

fn vmsift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmsift"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
}

struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Starts sshd in a fresh directory; `extra` is appended to its configuration.
    fn start(name: &str, extra: &str) -> Sshd {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ssh-{name}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("out")).expect("dir");
        keygen(&dir.join("host_key"));
        keygen(&dir.join("client_key"));
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).expect("keys");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.display();
        fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 StrictModes no\nUsePAM no\nPermitRootLogin yes\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication yes\n{extra}\n"
            ),
        )
        .expect("config");
        fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stderr(fs::File::create(dir.join("sshd.log")).expect("log"))
            .spawn()
            .expect("sshd (tests/install-deps installs openssh-server)");
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "sshd did not start; see {d}/sshd.log"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let host = fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host}"),
        )
        .expect("known_hosts");
        Sshd { child, port, dir }
    }

    fn url(&self, name: &str) -> String {
        format!(
            "ssh://root@127.0.0.1:{}{}/out/{name}",
            self.port,
            self.dir.display()
        )
    }

    /// vmsift with the test's key and known_hosts (and nothing from ~/.ssh).
    fn dump(&self, vmcore: &Path, name: &str, extra: &[&str]) -> Output {
        vmsift()
            .args(["-l", "-d", "1", "--ssh-key"])
            .arg(self.dir.join("client_key"))
            .arg("--ssh-option")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.join("known_hosts").display()
            ))
            .args(extra)
            .arg(vmcore)
            .arg(self.url(name))
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run vmsift")
    }

    fn out_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.dir.join("out"))
            .expect("out")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn vmcore(dir: &Path) -> PathBuf {
    let s = SynthVmcore::new()
        .prstatus(1)
        .vmcoreinfo(MINIMAL_VMCOREINFO)
        .load(0, mixed_pages(3, 300, PS), 0);
    let path = dir.join("vmcore.elf");
    fs::write(&path, s.to_bytes()).expect("vmcore");
    path
}

/// The same dump written to a local file, for comparison.
fn direct(vmcore: &Path, dir: &Path) -> Vec<u8> {
    let path = dir.join("direct");
    let _ = fs::remove_file(&path);
    let out = vmsift()
        .args(["-l", "-d", "1"])
        .arg(vmcore)
        .arg(&path)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    fs::read(&path).expect("direct dump")
}

#[test]
#[ignore = "runs a private sshd: needs root"]
fn ssh_target_renames_the_dump_only_when_complete() {
    // Without vmsift on the remote PATH: the stream is stored as PATH.flat.
    let plain = Sshd::start("plain", "");
    let vmcore = vmcore(&plain.dir);
    let want = direct(&vmcore, &plain.dir);
    let out = plain.dump(&vmcore, "vmcore", &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let said = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(said.contains("Sent ") && said.contains("MB/s"), "{said}");
    assert_eq!(plain.out_files(), vec!["vmcore.flat"]);
    let rebuilt = plain.dir.join("rebuilt");
    let st = vmsift()
        .arg("-R")
        .arg(&rebuilt)
        .stdin(fs::File::open(plain.dir.join("out/vmcore.flat")).expect("flat"))
        .output()
        .expect("-R");
    assert!(st.status.success(), "{}", stderr(&st));
    assert!(fs::read(&rebuilt).expect("rebuilt") == want);
    // The file exists now: refused without -f, nothing else written.
    let again = plain.dump(&vmcore, "vmcore", &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(plain.out_files(), vec!["vmcore.flat"]);

    // With vmsift on the remote PATH: rebuilt there into the kdump file itself.
    let bindir = Path::new(env!("CARGO_BIN_EXE_vmsift"))
        .parent()
        .expect("bin dir");
    let with = Sshd::start(
        "with-vmsift",
        &format!("SetEnv PATH={}:/usr/bin:/bin", bindir.display()),
    );
    let out = with.dump(&vmcore, "vmcore", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(with.out_files(), vec!["vmcore"]);
    assert!(fs::read(with.dir.join("out/vmcore")).expect("dump") == want);
}

#[test]
#[ignore = "runs a private sshd: needs root"]
fn ssh_target_refuses_unknown_host_keys_and_never_prompts() {
    let sshd = Sshd::start("refuse", "");
    let vmcore = vmcore(&sshd.dir);

    // An unknown host key is refused, even when an option asks to accept it.
    fs::write(sshd.dir.join("known_hosts"), "").expect("empty known_hosts");
    let out = sshd.dump(
        &vmcore,
        "vmcore",
        &["--ssh-option", "StrictHostKeyChecking=no"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Host key verification failed"), "{err}");
    assert!(sshd.out_files().is_empty());

    // No usable key and a server that offers passwords: ssh must fail, not ask.
    let host = fs::read_to_string(sshd.dir.join("host_key.pub")).expect("host key");
    fs::write(
        sshd.dir.join("known_hosts"),
        format!("[127.0.0.1]:{} {host}", sshd.port),
    )
    .expect("known_hosts");
    let started = Instant::now();
    let out = vmsift()
        .args(["-l", "-d", "1", "--ssh-option"])
        .arg(format!(
            "UserKnownHostsFile={}",
            sshd.dir.join("known_hosts").display()
        ))
        .arg(&vmcore)
        .arg(sshd.url("vmcore"))
        .env("HOME", sshd.dir.join("out"))
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(sshd.out_files().is_empty(), "{:?}", sshd.out_files());
}

/// A compression worker that panics in the middle of an upload (the debug build's
/// `VMSIFT_FAULT` hook): the run ends within 10 s with exit status 1 and one error line,
/// and the remote file keeps its `.incomplete` name.
#[test]
#[cfg(debug_assertions)]
#[ignore = "runs a private sshd: needs root"]
fn a_worker_panic_ends_an_upload_as_incomplete() {
    let sshd = Sshd::start("panic", "");
    let vmcore = vmcore(&sshd.dir);
    let mut child = vmsift()
        .args(["-l", "-d", "0", "--num-threads", "2", "--ssh-key"])
        .arg(sshd.dir.join("client_key"))
        .arg("--ssh-option")
        .arg(format!(
            "UserKnownHostsFile={}",
            sshd.dir.join("known_hosts").display()
        ))
        .arg(&vmcore)
        .arg(sshd.url("vmcore"))
        .env("HOME", &sshd.dir)
        .env("VMSIFT_FAULT", "compress:panic:200")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(sshd.dir.join("vmsift.err")).expect("stderr file"))
        .spawn()
        .expect("run vmsift");
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = fs::read_to_string(sshd.dir.join("vmsift.err")).expect("stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("vmsift: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("internal error: a compression thread panicked"),
        "{err}"
    );
    assert!(errors[0].contains("injected fault: compress #200"), "{err}");
    assert_eq!(sshd.out_files(), vec!["vmcore.flat.incomplete"], "{err}");
}
