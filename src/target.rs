//! Where the bytes go. The writers produce positioned writes (`write_at`); a `Sink` either
//! applies them to a seekable file or turns them into a flattened stream on stdout.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::format::flat::FlatWriter;

pub mod ssh;

/// Where the dump's bytes go: positioned writes into a file, or a flattened stream.
pub trait Sink {
    /// Writes `data` at `offset` of the output.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// Flushes everything; the output is complete only if this succeeds.
    fn finish(&mut self) -> Result<()>;
    /// A handle other threads can write through at known offsets (files only).
    fn parallel_writer(&self) -> Option<ParallelWriter> {
        None
    }
    /// Claims disk space for `len` bytes at `offset` now, so that writing them later
    /// cannot fail for lack of space (the page descriptors: a dump whose disk fills up
    /// must still be able to describe the pages it holds). Best effort where the
    /// filesystem cannot.
    fn reserve(&mut self, _offset: u64, _len: u64) -> Result<()> {
        Ok(())
    }
    /// Whether bytes already written can be written again (a file, not a stream): what
    /// marking a failed dump incomplete needs.
    fn seekable(&self) -> bool {
        true
    }
}

/// Positional writes into the output file from worker threads (pwrite on a shared fd).
#[derive(Clone)]
pub struct ParallelWriter {
    file: std::sync::Arc<File>,
    path: std::sync::Arc<PathBuf>,
    limit: Option<u64>,
}

impl ParallelWriter {
    /// Writes `data` at `offset` of the output file.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        crate::watchdog::check()?;
        check_limit(self.limit, offset, data.len())?;
        write_all_at(&self.file, &self.path, offset, data)
    }

    /// A write that goes through even after the watchdog gave up: its own marking of the
    /// dump as incomplete.
    pub(crate) fn write_at_anyway(&self, offset: u64, data: &[u8]) -> Result<()> {
        write_all_at(&self.file, &self.path, offset, data)
    }
}

/// `-L`: a write that would end past the limit fails like a full disk, so the same
/// fallback (next dump level, or an incomplete dump) follows.
fn check_limit(limit: Option<u64>, offset: u64, len: usize) -> Result<()> {
    match limit {
        Some(max) if offset.saturating_add(len as u64) > max => Err(Error::new(
            ErrorKind::NoSpace,
            format!("the dump reached its size limit of {max} bytes (-L)"),
        )),
        _ => Ok(()),
    }
}

/// Creates the output file the way makedumpfile does, and more carefully: mode 0600 (dumps
/// hold keys and passwords), O_EXCL unless `force`, and never through a symlink planted at
/// the final path component.
pub fn create_output(path: &Path, force: bool) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(path).map_err(|e| {
        let shown = path.display();
        let err = Error::io(e, format!("cannot create the dump file {shown}"));
        match err.kind() {
            ErrorKind::Exists => Error::new(
                ErrorKind::Exists,
                format!("{shown} already exists (use -f to overwrite it)"),
            ),
            _ if path.is_symlink() => Error::new(
                ErrorKind::Io,
                format!("{shown} is a symbolic link; refusing to write a dump through it"),
            ),
            _ => err,
        }
    })
}

/// A seekable output file.
pub struct FileSink {
    file: File,
    path: PathBuf,
    limit: Option<u64>,
}

impl FileSink {
    /// Writes into `file`, named `path` in messages.
    pub fn new(file: File, path: &Path) -> FileSink {
        FileSink {
            file,
            path: path.to_path_buf(),
            limit: None,
        }
    }

    /// No write may end past `limit` bytes (`-L`).
    pub fn with_limit(mut self, limit: Option<u64>) -> FileSink {
        self.limit = limit;
        self
    }
}

/// pwrite of all of `data`, with an error that says where; progress for the watchdog.
fn write_all_at(file: &File, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    file.write_all_at(data, offset).map_err(|e| {
        Error::io(
            e,
            format!(
                "cannot write {} bytes at offset {offset:#x} of {}",
                data.len(),
                path.display()
            ),
        )
    })?;
    crate::watchdog::progress();
    Ok(())
}

impl Sink for FileSink {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        crate::watchdog::check()?;
        check_limit(self.limit, offset, data.len())?;
        write_all_at(&self.file, &self.path, offset, data)
    }

    /// The data reaches the disk before the run says it is saved (a capture kernel
    /// reboots right after).
    /// The watchdog sees no progress during the fsync: what is left to write then is
    /// bounded by the kernel's dirty page limits (tens of MiB in a capture kernel).
    fn finish(&mut self) -> Result<()> {
        crate::watchdog::check()?;
        match self.file.sync_all() {
            // Not a file that can be synced (/dev/null, some pipes and devices).
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => Ok(()),
            r => {
                r.map_err(|e| Error::io(e, format!("cannot flush {} to disk", self.path.display())))
            }
        }
    }

    fn reserve(&mut self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let end = offset.saturating_add(len);
        check_limit(self.limit, offset, len as usize)?;
        let (Ok(start), Ok(size)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(Error::unsupported(format!(
                "cannot reserve up to offset {end}"
            )));
        };
        use nix::errno::Errno;
        use nix::fcntl::{FallocateFlags, fallocate};
        match fallocate(&self.file, FallocateFlags::empty(), start, size) {
            Ok(()) => {
                crate::watchdog::progress();
                Ok(())
            }
            // NFS, some FUSE filesystems, devices: nothing to reserve with.
            Err(Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL | Errno::ENODEV) => Ok(()),
            Err(e) => Err(Error::io(
                std::io::Error::from(e),
                format!(
                    "cannot reserve {len} bytes for page descriptors in {}",
                    self.path.display()
                ),
            )),
        }
    }

    fn parallel_writer(&self) -> Option<ParallelWriter> {
        Some(ParallelWriter {
            file: std::sync::Arc::new(self.file.try_clone().ok()?),
            path: std::sync::Arc::new(self.path.clone()),
            limit: self.limit,
        })
    }
}

/// `--atomic`: moves the finished dump at `from` to `to` (refusing to replace an existing
/// file unless `force`) and makes the rename durable.
pub fn publish(from: &Path, to: &Path, force: bool) -> Result<()> {
    use nix::errno::Errno;
    // A dump the watchdog gave up on is marked incomplete: it keeps its staged name.
    crate::watchdog::check()?;
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    let cannot = |e: io::Error| {
        Error::io(
            e,
            format!("cannot rename {} to {}", from.display(), to.display()),
        )
    };
    if force {
        std::fs::rename(from, to).map_err(cannot)?;
    } else {
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => {}
            // NFS (and other filesystems) have no RENAME_NOREPLACE.
            Err(Errno::EINVAL | Errno::ENOSYS) => publish_by_link(from, to).map_err(cannot)?,
            Err(e) => return Err(cannot(io::Error::from(e))),
        }
    }
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A rename that never replaces, without RENAME_NOREPLACE: a hard link refuses an existing
/// name just as atomically (also over NFS), then the staged name goes. Where there are no
/// hard links either, an existence check and a plain rename.
fn publish_by_link(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {
            if let Err(e) = std::fs::remove_file(from) {
                // The dump is complete under its final name; the other name is only extra.
                crate::warn!(
                    "the dump is {}, but {} stays: {e}",
                    to.display(),
                    from.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if to.symlink_metadata().is_ok() => {
            Err(io::Error::from_raw_os_error(nix::libc::EEXIST))
        }
        Err(_) => std::fs::rename(from, to),
    }
}

/// Discards everything (`--dry-run`).
pub struct NullSink;

impl Sink for NullSink {
    fn write_at(&mut self, _offset: u64, _data: &[u8]) -> Result<()> {
        crate::watchdog::progress();
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A flattened stream on stdout (or any writer).
pub struct StreamSink<W: Write> {
    flat: FlatWriter<io::BufWriter<W>>,
    what: String,
}

impl<W: Write> StreamSink<W> {
    /// A flattened stream into `out`, named `what` in messages.
    pub fn new(out: W, what: impl Into<String>) -> Self {
        StreamSink {
            flat: FlatWriter::new(io::BufWriter::with_capacity(1 << 20, out)),
            what: what.into(),
        }
    }
}

impl<W: Write> Sink for StreamSink<W> {
    fn seekable(&self) -> bool {
        false
    }

    /// Bytes taken into the buffer count as progress: once it is full, a stalled reader
    /// stops the writes (and the progress) within 1 MiB.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        crate::watchdog::check()?;
        self.flat.write_at(offset, data).map_err(|e| {
            Error::io(
                e,
                format!("cannot write the flattened dump to {}", self.what),
            )
        })?;
        crate::watchdog::progress();
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.flat.finish().map_err(|e| {
            Error::io(
                e,
                format!("cannot write the flattened dump to {}", self.what),
            )
        })
    }
}

/// Accumulates bytes that go to consecutive offsets and hands them to the sink in large
/// writes (one syscall or one flattened record per `capacity` bytes).
pub struct SeqWriter {
    next: u64,
    buf: Vec<u8>,
    capacity: usize,
}

impl SeqWriter {
    /// A writer whose first byte lands at `start`, in writes of up to `capacity` bytes.
    pub fn new(start: u64, capacity: usize) -> SeqWriter {
        SeqWriter {
            next: start,
            buf: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// Everything before this offset has been handed to the sink.
    pub fn flushed(&self) -> u64 {
        self.next
    }

    /// The offset the next byte will land at.
    pub fn position(&self) -> u64 {
        self.next + self.buf.len() as u64
    }

    /// Appends `data`.
    pub fn push(&mut self, sink: &mut dyn Sink, data: &[u8]) -> Result<()> {
        if self.buf.len() + data.len() > self.capacity {
            self.flush(sink)?;
        }
        if data.len() >= self.capacity {
            sink.write_at(self.next, data)?;
            self.next += data.len() as u64;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(())
    }

    /// Writes `data` at the current position straight from the caller's buffer (after
    /// what is pending), saving a copy for large pieces.
    pub fn write_through(&mut self, sink: &mut dyn Sink, data: &[u8]) -> Result<()> {
        if data.len() < self.capacity / 4 {
            return self.push(sink, data);
        }
        self.flush(sink)?;
        sink.write_at(self.next, data)?;
        self.next += data.len() as u64;
        Ok(())
    }

    /// Reserves `len` bytes at the current position for someone else to write (after
    /// what is pending); returns their offset.
    pub fn reserve(&mut self, sink: &mut dyn Sink, len: u64) -> Result<u64> {
        self.flush(sink)?;
        let at = self.next;
        self.next += len;
        Ok(at)
    }

    /// Hands what is pending to the sink.
    pub fn flush(&mut self, sink: &mut dyn Sink) -> Result<()> {
        if !self.buf.is_empty() {
            sink.write_at(self.next, &self.buf)?;
            self.next += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<(u64, Vec<u8>)>);
    impl Sink for Recorder {
        fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
            self.0.push((offset, data.to_vec()));
            Ok(())
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn seq_writer_coalesces_in_order() {
        let mut r = Recorder(Vec::new());
        let mut w = SeqWriter::new(100, 8);
        for chunk in [&b"abc"[..], b"defg", b"hi", b"0123456789", b"z"] {
            w.push(&mut r, chunk).expect("push");
        }
        assert_eq!(w.position(), 100 + 20);
        w.flush(&mut r).expect("flush");
        let mut flat = Vec::new();
        let mut expect_at = 100;
        for (at, d) in &r.0 {
            assert_eq!(*at, expect_at);
            expect_at += d.len() as u64;
            flat.extend_from_slice(d);
        }
        assert_eq!(flat, b"abcdefghi0123456789z");
    }

    #[test]
    fn output_is_private_exclusive_and_refuses_symlinks() {
        let dir = std::env::temp_dir().join(format!("vmsift-target-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("dump");
        let f = create_output(&path, false).expect("create");
        drop(f);
        let mode = std::fs::metadata(&path).expect("meta").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let again = create_output(&path, false).expect_err("exists");
        assert_eq!(again.kind(), ErrorKind::Exists);
        assert!(again.to_string().contains("-f"));
        create_output(&path, true).expect("forced");
        let link = dir.join("link");
        std::os::unix::fs::symlink(dir.join("elsewhere"), &link).expect("symlink");
        assert!(create_output(&link, true).is_err());
        assert!(!dir.join("elsewhere").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn publish_without_noreplace_links_and_never_replaces() {
        let dir = std::env::temp_dir().join(format!("vmsift-publish-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (staged, done) = (dir.join("vmcore.incomplete"), dir.join("vmcore"));
        std::fs::write(&staged, b"dump").expect("write");
        publish_by_link(&staged, &done).expect("publish");
        assert!(!staged.exists());
        assert_eq!(std::fs::read(&done).expect("read"), b"dump");
        std::fs::write(&staged, b"second").expect("write");
        let e = publish_by_link(&staged, &done).expect_err("exists");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&done).expect("read"), b"dump");
        assert!(staged.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
