//! Salvage: what a kdump file becomes when the run stops in the middle of the pages. Every
//! descriptor whose data is not known to be in the file says "lost" (offset 0), the
//! bitmaps of cycles not reached are written when pass 1 kept them, lost pages are
//! counted, and the header says incomplete. The watchdog does the same from its own
//! thread when the run stalls (`mark_on_stall`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::WRITE_BUFFER;
use super::plan::Planner;
use super::writer::Writer;
use crate::error::{Error, ErrorKind, Result};
use crate::format::kdump::{Header, PAGE_DESC_SIZE, STATUS_INCOMPLETE};
use crate::target::{ParallelWriter, Sink};

impl Writer {
    /// After `failure` in the middle of the pages: writes what can still be written, then
    /// makes every descriptor whose data is not known to be in the file say "lost"
    /// (offset 0). A descriptor that cannot be written stays a hole, which reads as zero,
    /// which is "lost" too. When an error says the output is unreachable (a soft NFS
    /// mount timed out, see `Error::is_unreachable`), salvage stops (or does not start):
    /// each further write would only wait for the same timeout, minutes in all. Returns
    /// how many described pages lost their data this way, and whether the output still
    /// takes writes.
    pub fn salvage(
        &mut self,
        sink: &mut dyn Sink,
        desc_start: u64,
        failure: &Error,
    ) -> (u64, bool) {
        // A failure (a panic) in the middle of `describe` leaves descriptors pushed beyond
        // `described`: they are covered too.
        let pushed = (self.descs.position() - desc_start) / PAGE_DESC_SIZE;
        self.described = self.described.max(pushed);
        let takes_writes = |r: Result<()>| !r.is_err_and(|e| e.is_unreachable());
        let mut alive = !failure.is_unreachable() && takes_writes(self.data.flush(sink));
        self.commit();
        alive = alive && takes_writes(self.descs.flush(sink));
        let zeros = vec![0u8; WRITE_BUFFER];
        let mut at = desc_start + self.committed * PAGE_DESC_SIZE;
        let end = desc_start + self.described * PAGE_DESC_SIZE;
        while alive && at < end {
            let n = (end - at).min(zeros.len() as u64);
            alive = takes_writes(sink.write_at(at, &zeros[..n as usize]));
            at += n;
        }
        (self.described - self.committed, alive)
    }
}

impl Planner<'_> {
    /// After a failure: writes the bitmaps of the cycles not reached, when pass 1 kept
    /// them (no mem_map is read now), so that their pages read as lost (their descriptors
    /// are zero, see `Writer::salvage`), as the final message counts them, rather than as
    /// absent. Without kept bitmaps those cycles stay unwritten.
    pub fn salvage_bitmaps(&mut self, sink: &mut dyn Sink) -> Result<()> {
        for b2 in self.kept.by_ref() {
            if b2.start() < self.bitmaps_done {
                continue;
            }
            let b1 = self.filter.bitmap1(b2.start(), b2.end());
            sink.write_at(
                self.layout.bitmap1_offset() + b2.start() / 8,
                &b1.file_bytes(),
            )?;
            sink.write_at(
                self.layout.bitmap2_offset() + b2.start() / 8,
                &b2.file_bytes(),
            )?;
            if b2.end() == self.layout.max_mapnr {
                Self::pad_bitmap2(&self.layout, sink, b2.end().div_ceil(8))?;
            }
        }
        Ok(())
    }
}

/// How pass 2 ended, once salvaged.
pub(super) struct Outcome {
    /// Why the dump is incomplete (`None`: complete).
    pub failure: Option<Error>,
    /// Whether the output still takes writes (the header can be marked).
    pub alive: bool,
}

/// After pass 2 ended with `pages`, of `described` pages in all: salvages a seekable
/// output after a failure and counts the lost pages in `writer.stats`. Pages that could
/// not be read make a complete run incomplete too. A stream cannot be patched
/// afterwards: its failure is returned as is, and the reader sees it end early.
pub(super) fn salvage(
    pages: Result<()>,
    writer: &mut Writer,
    planner: &mut Planner<'_>,
    sink: &mut dyn Sink,
    desc_offset: u64,
    described: u64,
) -> Result<Outcome> {
    let mut alive = true;
    let mut failure = match pages {
        Ok(()) => None,
        Err(e) if !sink.seekable() => return Err(e),
        Err(e) => {
            let (unwritten, out_alive) = writer.salvage(sink, desc_offset, &e);
            writer.stats.lost = unwritten + (described - writer.described);
            if out_alive && let Err(e) = planner.salvage_bitmaps(sink) {
                crate::warn!("cannot write the bitmaps of the cycles not reached: {e}");
            }
            alive = out_alive;
            Some(e)
        }
    };
    writer.stats.lost += writer.stats.unreadable;
    if failure.is_none() && writer.stats.unreadable > 0 {
        failure = Some(Error::new(
            ErrorKind::Io,
            format!(
                "{} pages could not be read and are marked lost in the dump (first: {})",
                writer.stats.unreadable,
                writer.read_error.as_deref().unwrap_or("unknown error")
            ),
        ));
    }
    Ok(Outcome { failure, alive })
}

/// Sets the incomplete flag in the header of a dump that `outcome` says is incomplete
/// (when the output still takes writes; a failure to is a warning).
pub(super) fn mark_incomplete(outcome: &Outcome, header: &mut Header, sink: &mut dyn Sink) {
    if outcome.failure.is_some() && !outcome.alive {
        crate::warn!("cannot mark the dump incomplete in its header: the output is unreachable");
    } else if outcome.failure.is_some() {
        header.status |= STATUS_INCOMPLETE;
        if let Err(e) = sink.write_at(0, &header.main_bytes()) {
            crate::warn!("cannot mark the dump incomplete in its header: {e}");
        }
    }
}

/// What the watchdog does to a kdump file it gives up on (see `watchdog`): the page
/// descriptors whose data is not known to be written say "lost" (as `Writer::salvage`
/// makes them), then the header says incomplete. Descriptors never written are holes and
/// read as lost already.
pub(super) fn mark_on_stall(
    out: ParallelWriter,
    header: &Header,
    desc_start: u64,
    shared: &Arc<[AtomicU64; 2]>,
) -> crate::watchdog::MarkGuard {
    let mut h = header.clone();
    h.status |= STATUS_INCOMPLETE;
    let header_bytes = h.main_bytes();
    let shared = Arc::clone(shared);
    crate::watchdog::on_stall(move || {
        let described = shared[0].load(Ordering::Relaxed);
        let committed = shared[1].load(Ordering::Relaxed).min(described);
        let zeros = vec![0u8; WRITE_BUFFER];
        let mut at = desc_start + committed * PAGE_DESC_SIZE;
        let end = desc_start + described * PAGE_DESC_SIZE;
        while at < end {
            let n = (end - at).min(zeros.len() as u64);
            out.write_at_anyway(at, &zeros[..n as usize])?;
            at += n;
        }
        out.write_at_anyway(0, &header_bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::super::Stats;
    use super::*;
    use crate::target::SeqWriter;

    /// Counts write attempts; every write fails with `errno`.
    struct Refusing {
        errno: i32,
        writes: usize,
    }
    impl Sink for Refusing {
        fn write_at(&mut self, _offset: u64, _data: &[u8]) -> Result<()> {
            self.writes += 1;
            Err(os_error(self.errno))
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
    }

    fn os_error(errno: i32) -> Error {
        Error::io(std::io::Error::from_raw_os_error(errno), "refused")
    }

    /// A writer that described 4 MiB worth of descriptors (several salvage writes), none
    /// committed, with some page data still buffered.
    fn stopped_writer() -> Writer {
        let described = 4 * WRITE_BUFFER as u64 / PAGE_DESC_SIZE;
        let mut data = SeqWriter::new(1 << 30, WRITE_BUFFER);
        let mut never = Refusing {
            errno: nix::libc::EIO,
            writes: 0,
        };
        data.push(&mut never, &[1u8; 4096])
            .expect("buffered, not written");
        let endian = crate::input::bytes::Endian::Little;
        let mut w = Writer::new(4096, data, None, endian, 4096, Stats::default());
        w.described = described;
        w
    }

    /// Salvage after a first failure `first` on a sink failing with `errno`: (write
    /// attempts, output still alive).
    fn salvage_with(first: i32, errno: i32) -> (usize, bool) {
        let mut w = stopped_writer();
        let mut sink = Refusing { errno, writes: 0 };
        let (lost, alive) = w.salvage(&mut sink, 4096, &os_error(first));
        assert_eq!(lost, w.described);
        (sink.writes, alive)
    }

    #[test]
    fn salvage_does_not_wait_on_an_unreachable_output() {
        use nix::libc::{EIO, ESTALE, ETIMEDOUT};
        // A timed-out soft NFS mount: not one more write.
        assert_eq!(salvage_with(ETIMEDOUT, ETIMEDOUT), (0, false));
        // It goes away during salvage: the first timeout ends it.
        assert_eq!(salvage_with(EIO, ESTALE), (1, false));
    }

    #[test]
    fn salvage_goes_on_after_media_errors_and_a_full_disk() {
        use nix::libc::{EIO, ENOSPC};
        // The data, then every descriptor chunk: some of them may be writable.
        assert_eq!(salvage_with(EIO, EIO), (1 + 4, true));
        assert_eq!(salvage_with(ENOSPC, ENOSPC), (1 + 4, true));
    }

    /// Records the extent of every write.
    struct Extents(Vec<(u64, usize)>);
    impl Sink for Extents {
        fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
            self.0.push((offset, data.len()));
            Ok(())
        }
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn salvage_covers_descriptors_pushed_by_an_unfinished_batch() {
        let mut w = stopped_writer();
        let mut sink = Extents(Vec::new());
        // 10 described and committed, then a failure after 5 more were pushed.
        w.described = 10;
        w.committed = 10;
        for _ in 0..15 {
            w.descs
                .push(&mut sink, &[7u8; PAGE_DESC_SIZE as usize])
                .expect("buffered");
        }
        let (lost, _) = w.salvage(&mut sink, 4096, &os_error(nix::libc::EIO));
        assert_eq!(lost, 5);
        let zeroed = 4096 + 10 * PAGE_DESC_SIZE;
        assert_eq!(sink.0.last(), Some(&(zeroed, 5 * PAGE_DESC_SIZE as usize)));
    }
}
