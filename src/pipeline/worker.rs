//! The workers: each reads a batch of dumpable pages, checks each for zero and compresses
//! it, with its own input reader and codec context. What a worker runs into that is worth
//! a warning travels back with the batch; the thread that plans reports it.

use super::plan::BATCH_PAGES;
use crate::codec::Compressor;
use crate::error::{ErrorKind, Result};
use crate::filter::is_zero_page;
use crate::input::{Memory, PhysPages};
use crate::report::Diagnostic;

/// One page's result in a batch.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stored {
    /// All zero, and zero pages share one blob (level bit 1).
    Zero,
    /// `len` bytes in the batch's data with these descriptor flags (0: raw page).
    Bytes { len: u32, flags: u32 },
    /// The input could not be read (I/O error): recorded as lost.
    Lost,
}

/// A run of dumpable pfns and, once processed, what to store for each.
pub(super) struct Batch {
    pub seq: u64,
    pub pfns: Vec<u64>,
    pub out: Vec<Stored>,
    pub data: Vec<u8>,
    /// The first read error in this batch, for the message.
    pub read_error: Option<String>,
    /// A problem of the worker's reader worth one warning (an mmap that fell back to
    /// pread), to be reported by the thread that plans.
    pub warning: Option<String>,
}

impl Batch {
    /// An empty batch with room for BATCH_PAGES pages stored raw.
    pub fn new(page_size: usize) -> Batch {
        Batch {
            seq: 0,
            pfns: Vec::with_capacity(BATCH_PAGES),
            out: Vec::with_capacity(BATCH_PAGES),
            data: Vec::with_capacity(BATCH_PAGES * page_size),
            read_error: None,
            warning: None,
        }
    }

    /// The worker's warning this batch carries, if any, for the planning thread to report.
    pub fn take_diagnostic(&mut self) -> Option<Diagnostic> {
        self.warning.take().map(Diagnostic::Warning)
    }
}

/// Reads, zero-checks and compresses batches: one per thread.
pub(super) struct Worker {
    pub mem: Memory,
    pub compressor: Compressor,
    pub shared_zero: bool,
    /// Runs of consecutive pages are read into this buffer with one pread each, when the
    /// input prefers that (`ElfMemory::bulk_reads`): at most BATCH_PAGES pages.
    pub run_buf: Vec<u8>,
}

/// Zero-checks and compresses one page into the batch.
fn store_page(
    compressor: &mut Compressor,
    shared_zero: bool,
    batch: &mut Batch,
    page: &[u8],
) -> Result<()> {
    if shared_zero && is_zero_page(page) {
        batch.out.push(Stored::Zero);
        return Ok(());
    }
    let flag = compressor.codec().flag();
    crate::fault!(Compress);
    let (bytes, flags) = match compressor.compress(page)? {
        Some(c) => (c, flag),
        None => (page, 0),
    };
    batch.data.extend_from_slice(bytes);
    batch.out.push(Stored::Bytes {
        len: bytes.len() as u32,
        flags,
    });
    Ok(())
}

impl Worker {
    /// Reads and stores every page of the batch, runs of consecutive pfns together.
    pub fn process(&mut self, batch: &mut Batch) -> Result<()> {
        batch.out.clear();
        batch.data.clear();
        batch.read_error = None;
        batch.warning = None;
        let pfns = std::mem::take(&mut batch.pfns);
        let result = (|| -> Result<()> {
            let mut i = 0;
            while i < pfns.len() {
                let mut j = i + 1;
                while j < pfns.len() && pfns[j] == pfns[j - 1].wrapping_add(1) {
                    j += 1;
                }
                if !self.run(&pfns[i..j], batch)? {
                    for &pfn in &pfns[i..j] {
                        self.page(pfn, batch, false)?;
                    }
                }
                i = j;
            }
            Ok(())
        })();
        batch.pfns = pfns;
        result?;
        batch.warning = self.mem.take_warning();
        Ok(())
    }

    /// Consecutive pages in one go, when the input is read that way
    /// (`ElfMemory::bulk_reads`): mapped and populated with one call, else with one pread.
    /// `false`: not whole pages of one segment, go page by page.
    fn run(&mut self, pfns: &[u64], batch: &mut Batch) -> Result<bool> {
        let Memory::Elf(m) = &mut self.mem else {
            return Ok(false);
        };
        if !m.bulk_reads() {
            return Ok(false);
        }
        let ps = m.page_size();
        crate::fault!(Read);
        let read = match m.map_run(pfns[0], pfns.len()) {
            Ok(Some(run)) => {
                for page in run.chunks_exact(ps) {
                    store_page(&mut self.compressor, self.shared_zero, batch, page)?;
                }
                return Ok(true);
            }
            Ok(None) => {
                self.run_buf.resize(pfns.len() * ps, 0);
                m.read_run(pfns[0], &mut self.run_buf)
            }
            Err(e) => Err(e),
        };
        match read {
            Ok(true) => {
                for page in self.run_buf.chunks_exact(ps) {
                    store_page(&mut self.compressor, self.shared_zero, batch, page)?;
                }
            }
            Ok(false) => return Ok(false),
            // Some page of the run is unreadable: find which, one pread each (never
            // through a mapping, where a bad page is a SIGBUS).
            Err(_) => {
                for &pfn in pfns {
                    self.page(pfn, batch, true)?;
                }
            }
        }
        Ok(true)
    }

    /// One page, with pread when `pread` (and the input has it whole); stored as lost
    /// when it cannot be read.
    fn page(&mut self, pfn: u64, batch: &mut Batch, pread: bool) -> Result<()> {
        let ps = self.mem.page_size();
        crate::fault!(Read);
        let page = match &mut self.mem {
            Memory::Elf(m) if pread => {
                if self.run_buf.len() < ps {
                    self.run_buf.resize(ps, 0);
                }
                let buf = &mut self.run_buf[..ps];
                match m.read_run(pfn, buf) {
                    Ok(true) => Ok(&*buf),
                    Ok(false) => m.read_page(pfn),
                    Err(e) => Err(e),
                }
            }
            mem => mem.read_page(pfn),
        };
        match page {
            Ok(page) => store_page(&mut self.compressor, self.shared_zero, batch, page),
            // The rest of the dump is worth more than this page.
            Err(e) if e.kind() == ErrorKind::Io => {
                batch.out.push(Stored::Lost);
                batch.read_error.get_or_insert_with(|| e.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
