//! `ssh://[user@]host[:port]/path`: the dump streamed in the flattened format through the
//! system's ssh client, as kdump's ssh targets do with `makedumpfile -F | ssh ... dd`, but
//! with the end of the story handled here: the remote file is `PATH.incomplete` until the
//! stream is complete, then renamed. When the remote host has vmsift on its PATH the stream
//! is rebuilt there (`vmsift -R`) into a kdump file; otherwise it is kept as `PATH.flat`.
//!
//! ssh runs non-interactively: BatchMode (no password or passphrase prompts),
//! StrictHostKeyChecking=yes (an unknown or changed host key is refused), a connect
//! timeout, and keepalives so a dead network ends the run in about 30 s.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};

/// Options every ssh invocation gets (before the user's `--ssh-option`s, which ssh lets
/// override nothing set earlier: the first value of an option wins).
const FIXED_OPTIONS: [&str; 6] = [
    "BatchMode=yes",
    "StrictHostKeyChecking=yes",
    "ConnectTimeout=30",
    "ServerAliveInterval=10",
    "ServerAliveCountMax=3",
    "PasswordAuthentication=no",
];

/// An `ssh://[USER@]HOST[:PORT]/PATH` dump file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// `user@host` or `host`, as ssh takes it.
    pub destination: String,
    /// `:PORT`, when given.
    pub port: Option<u16>,
    /// The dump's path on the remote host.
    pub path: String,
}

impl Remote {
    /// `Some` for an `ssh://` dump file name, `None` for a local path.
    pub fn parse(name: &Path) -> Result<Option<Remote>> {
        let Some(rest) = name.to_str().and_then(|s| s.strip_prefix("ssh://")) else {
            return Ok(None);
        };
        let bad = |why: &str| Error::usage(format!("{}: {why}", name.display()));
        let (authority, path) = rest
            .find('/')
            .map(|i| rest.split_at(i))
            .ok_or_else(|| bad("expected ssh://[USER@]HOST[:PORT]/PATH"))?;
        let (destination, port) = match authority.rsplit_once(':') {
            Some((d, p)) => (
                d,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number"))?,
                ),
            ),
            None => (authority, None),
        };
        let host = destination.rsplit('@').next().unwrap_or("");
        if host.is_empty() || destination.starts_with('-') {
            return Err(bad("no host name"));
        }
        if path.len() < 2 || path.ends_with('/') {
            return Err(bad("the path must name a file"));
        }
        Ok(Some(Remote {
            destination: destination.to_string(),
            port,
            path: path.to_string(),
        }))
    }

    /// The `ssh://` name, for messages.
    pub fn display(&self) -> String {
        match self.port {
            Some(p) => format!("ssh://{}:{p}{}", self.destination, self.path),
            None => format!("ssh://{}{}", self.destination, self.path),
        }
    }

    fn command(&self, key: Option<&Path>, options: &[String], remote_cmd: &str) -> Command {
        let mut c = Command::new("ssh");
        for o in FIXED_OPTIONS
            .iter()
            .copied()
            .map(str::to_string)
            .chain(options.iter().cloned())
        {
            c.arg("-o").arg(o);
        }
        if let Some(k) = key {
            c.arg("-i").arg(k);
        }
        if let Some(p) = self.port {
            c.arg("-p").arg(p.to_string());
        }
        c.arg("--").arg(&self.destination).arg(remote_cmd);
        c
    }
}

/// A shell word for the remote `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An open connection receiving the flattened stream.
pub struct Upload {
    remote: Remote,
    key: Option<PathBuf>,
    options: Vec<String>,
    child: Child,
    sent: Arc<AtomicU64>,
    started: Instant,
}

/// The stream's writer: ssh's stdin, counting what goes through.
pub struct Counted {
    inner: ChildStdin,
    sent: Arc<AtomicU64>,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Upload {
    /// Starts ssh with the receiving command: refuses an existing PATH unless `force`,
    /// then rebuilds the stream into `PATH.incomplete` with vmsift, or stores it raw in
    /// `PATH.flat.incomplete`. The first line it prints says which.
    pub fn start(
        remote: Remote,
        key: Option<&Path>,
        options: &[String],
        force: bool,
    ) -> Result<(Upload, Counted)> {
        let p = quote(&remote.path);
        let refuse = if force {
            String::new()
        } else {
            format!(
                "for f in {p} {p}.flat; do if [ -e \"$f\" ]; then echo \"$f already exists (use -f to overwrite it)\" >&2; exit 3; fi; done; "
            )
        };
        let receive = format!(
            "umask 077; {refuse}if command -v vmsift >/dev/null 2>&1; then echo rebuilt; exec vmsift -f -R {p}.incomplete >/dev/null; else echo flat; exec cat > {p}.flat.incomplete; fi"
        );
        let mut cmd = remote.command(key, options, &receive);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(e, "cannot run ssh (the ssh client must be on the PATH)"))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::internal("ssh has no stdin"))?;
        let sent = Arc::new(AtomicU64::new(0));
        let upload = Upload {
            remote,
            key: key.map(Path::to_path_buf),
            options: options.to_vec(),
            child,
            sent: Arc::clone(&sent),
            started: Instant::now(),
        };
        Ok((upload, Counted { inner: stdin, sent }))
    }

    /// After the stream was closed: waits for the remote side, and when it accepted the
    /// whole stream and `complete` is true, renames the file to its final name. Returns
    /// the final name.
    pub fn finish(mut self, complete: bool) -> Result<String> {
        let mut said = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut said);
        }
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io(e, "waiting for ssh"))?;
        let shown = self.remote.display();
        let suffix = if said.starts_with("rebuilt") {
            ""
        } else {
            ".flat"
        };
        let tmp = format!("{}{suffix}.incomplete", self.remote.path);
        let done = format!("{}{suffix}", self.remote.path);
        if !status.success() {
            // Before the remote side said which, it may have been either.
            let partial = if said.is_empty() {
                format!("{0}.incomplete or {0}.flat.incomplete", self.remote.path)
            } else {
                tmp
            };
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                format!(
                    "{shown}: the remote side failed ({status}); the partial dump, if any, is {partial}"
                ),
            ));
        }
        if !complete {
            return Ok(tmp);
        }
        let rename = format!("mv -f {} {}", quote(&tmp), quote(&done));
        let st = self
            .remote
            .command(self.key.as_deref(), &self.options, &rename)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| Error::io(e, "cannot run ssh"))?;
        if !st.success() {
            return Err(Error::new(
                crate::error::ErrorKind::Io,
                format!("{shown}: cannot rename {tmp} to {done} ({st})"),
            ));
        }
        let bytes = self.sent.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        crate::common!(
            "Sent {bytes} bytes to {} in {secs:.1} s ({:.1} MB/s).",
            self.remote.destination,
            bytes as f64 / secs / 1e6
        );
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssh_urls() {
        let r = |s: &str| Remote::parse(Path::new(s));
        assert_eq!(r("/var/crash/vmcore").expect("local"), None);
        assert_eq!(
            r("ssh://kdump@backup.example:2222/var/crash/vmcore").expect("ok"),
            Some(Remote {
                destination: "kdump@backup.example".into(),
                port: Some(2222),
                path: "/var/crash/vmcore".into(),
            })
        );
        assert_eq!(
            r("ssh://host/d/vmcore").expect("ok").map(|r| r.port),
            Some(None)
        );
        for bad in [
            "ssh://",
            "ssh://host",
            "ssh://host/",
            "ssh:///x",
            "ssh://host:port/x",
            "ssh://-oProxyCommand=x/y",
        ] {
            assert!(r(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quotes_for_the_remote_shell() {
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
