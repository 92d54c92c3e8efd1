//! The ordered writer: appends descriptors and page data in pfn order, batch after batch,
//! and keeps track of which descriptors have their data safely written (see `salvage`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Stats;
use super::worker::{Batch, Stored};
use crate::error::Result;
use crate::format::kdump::{PAGE_DESC_SIZE, PageDesc};
use crate::input::bytes::Endian;
use crate::report::Progress;
use crate::target::{SeqWriter, Sink};

/// Appends descriptors and page data in pfn order, and keeps track of which descriptors
/// have their data safely written, so that a run that stops early can leave a file whose
/// every descriptor is either right or says "lost".
pub(super) struct Writer {
    pub descs: SeqWriter,
    pub data: SeqWriter,
    pub zero_desc: Option<PageDesc>,
    pub endian: Endian,
    pub page_size: u64,
    pub stats: Stats,
    pub progress: Progress,
    /// Descriptors handed to `descs` so far.
    pub described: u64,
    /// Of those, how many have their data known to be written.
    pub committed: u64,
    /// `(described, data end)` after each batch, oldest first, until committed.
    pub checkpoints: VecDeque<(u64, u64)>,
    /// Page data placed for other threads to write and not confirmed yet: start → end.
    pub in_flight: BTreeMap<u64, u64>,
    /// The first page read error, for the final message.
    pub read_error: Option<String>,
    /// `described` and `committed`, for the watchdog's marking from another thread.
    pub shared: Arc<[AtomicU64; 2]>,
}

impl Writer {
    /// A writer whose descriptors start at `desc_offset` and page data at `data` (which
    /// may hold the shared zero page, `zero_desc`); `stats` starts the run's statistics.
    pub fn new(
        desc_offset: u64,
        data: SeqWriter,
        zero_desc: Option<PageDesc>,
        endian: Endian,
        page_size: u64,
        stats: Stats,
    ) -> Writer {
        let progress = Progress::new("Copying data", stats.dumpable);
        Writer {
            descs: SeqWriter::new(desc_offset, super::WRITE_BUFFER),
            data,
            zero_desc,
            endian,
            page_size,
            stats,
            progress,
            described: 0,
            committed: 0,
            checkpoints: VecDeque::new(),
            in_flight: BTreeMap::new(),
            read_error: None,
            shared: Arc::default(),
        }
    }

    /// Writes the batch: its stored bytes (contiguous in the file, in one write) and the
    /// descriptors of its pages.
    pub fn write(&mut self, sink: &mut dyn Sink, b: &Batch) -> Result<()> {
        let offset = self.data.position();
        crate::fault!(Write);
        self.data.write_through(sink, &b.data)?;
        self.describe(sink, b, offset)
    }

    /// Places the batch's bytes at the next data offset without writing them (another
    /// thread will, then `confirm`s), writes its descriptors, and returns the offset.
    pub fn place(&mut self, sink: &mut dyn Sink, b: &Batch) -> Result<u64> {
        let offset = self.data.reserve(sink, b.data.len() as u64)?;
        self.in_flight.insert(offset, offset + b.data.len() as u64);
        self.describe(sink, b, offset)?;
        Ok(offset)
    }

    /// The placed data at `offset` has been written.
    pub fn confirm(&mut self, offset: u64) {
        self.in_flight.remove(&offset);
        self.commit();
    }

    /// Every byte of page data below this offset is in the file.
    fn data_written_up_to(&self) -> u64 {
        match self.in_flight.keys().next() {
            Some(&start) => start,
            None => self.data.flushed(),
        }
    }

    /// Counts as committed every batch whose data is all below what is written.
    pub fn commit(&mut self) {
        let safe = self.data_written_up_to();
        while let Some(&(n, end)) = self.checkpoints.front() {
            if end > safe {
                break;
            }
            self.committed = n;
            self.checkpoints.pop_front();
        }
        self.shared[1].store(self.committed, Ordering::Relaxed);
    }

    /// Writes the descriptors of the batch's pages, whose data starts at `offset`.
    fn describe(&mut self, sink: &mut dyn Sink, b: &Batch, mut offset: u64) -> Result<()> {
        let mut desc_bytes = [0u8; PAGE_DESC_SIZE as usize];
        for s in &b.out {
            let desc = match *s {
                Stored::Zero => {
                    self.stats.zero += 1;
                    self.zero_desc.unwrap_or_default()
                }
                Stored::Bytes { len, flags } => {
                    if flags == 0 {
                        self.stats.raw += 1;
                    } else {
                        self.stats.compressed += 1;
                    }
                    let desc = PageDesc {
                        offset,
                        size: len,
                        flags,
                    };
                    offset += len as u64;
                    desc
                }
                Stored::Lost => {
                    self.stats.unreadable += 1;
                    PageDesc::default()
                }
            };
            desc.write(self.endian, &mut desc_bytes);
            crate::fault!(Describe);
            self.descs.push(sink, &desc_bytes)?;
            self.progress.page(self.page_size);
        }
        if self.read_error.is_none() {
            self.read_error.clone_from(&b.read_error);
        }
        self.described += b.out.len() as u64;
        self.shared[0].store(self.described, Ordering::Relaxed);
        self.checkpoints.push_back((self.described, offset));
        self.commit();
        Ok(())
    }
}
