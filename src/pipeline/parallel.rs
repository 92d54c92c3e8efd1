//! Pass 2 on several threads: the calling thread plans batches, places finished ones in
//! sequence and writes their descriptors; the workers compress, and for a file they also
//! write the placed page data, so the copies into the page cache do not all fall on one
//! thread. A fixed pool of batches (two per worker, plus one) bounds memory, and the
//! output is the same bytes whatever the thread count.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use super::plan::Planner;
use super::worker::{Batch, Worker};
use super::writer::Writer;
use crate::error::{Error, Result};
use crate::target::{ParallelWriter, Sink};

/// Work for a helper thread.
enum Job {
    Compress(Batch),
    /// Write the batch's bytes at this offset (files only; the writer placed them).
    Write(u64, Batch),
}

/// What a helper thread did.
enum Done {
    Compressed(Result<Batch>),
    /// The batch's data is written at this offset (or not).
    Written(u64, Result<Batch>),
}

/// A helper thread: takes jobs until the queue closes or one fails. A panic is caught and
/// sent as this job's error like any other, so that the writer stops at once instead of
/// waiting for the batch.
fn work(
    mut worker: Worker,
    rx: &Mutex<Receiver<Job>>,
    tx: &Sender<Done>,
    out: Option<&ParallelWriter>,
) {
    loop {
        // The lock is held only to take the next job.
        let next = rx
            .lock()
            .map_err(|_| ())
            .and_then(|r| r.recv().map_err(|_| ()));
        let done = match next {
            Err(()) => break,
            Ok(Job::Compress(mut b)) => Done::Compressed(
                crate::error::catch("a compression thread", || worker.process(&mut b)).map(|()| b),
            ),
            Ok(Job::Write(at, b)) => Done::Written(
                at,
                crate::error::catch("a page-data writer thread", || {
                    crate::fault!(Write);
                    match out {
                        Some(out) => out.write_at(at, &b.data),
                        None => Err(Error::internal("no parallel output")),
                    }
                })
                .map(|()| b),
            ),
        };
        let failed = matches!(done, Done::Compressed(Err(_)) | Done::Written(_, Err(_)));
        if tx.send(done).is_err() || failed {
            break;
        }
    }
}

/// The calling thread's side: hands out batches, takes finished ones, and places them in
/// sequence.
struct Dispatch<'a, 'f> {
    planner: &'a mut Planner<'f>,
    writer: &'a mut Writer,
    sink: &'a mut dyn Sink,
    jobs: SyncSender<Job>,
    done: &'a Receiver<Done>,
    /// Whether the workers write the page data (a file).
    parallel_out: bool,
    free: Vec<Batch>,
    waiting: BTreeMap<u64, Batch>,
    next_seq: u64,
    next_write: u64,
    planned_all: bool,
    writes_out: usize,
    /// Set when every worker has stopped: the reason is then in `done`.
    gone: bool,
}

impl Dispatch<'_, '_> {
    /// Every worker has stopped.
    fn stopped(&mut self) -> Error {
        self.gone = true;
        Error::internal("the compression threads stopped")
    }

    /// Runs until every batch is written, or the first failure.
    fn run(&mut self) -> Result<()> {
        loop {
            self.hand_out()?;
            if self.planned_all && self.next_write == self.next_seq && self.writes_out == 0 {
                return Ok(());
            }
            match self.done.recv() {
                Ok(Done::Compressed(b)) => {
                    let mut b = b?;
                    crate::report::diagnostics(b.take_diagnostic());
                    self.waiting.insert(b.seq, b);
                }
                Ok(Done::Written(at, b)) => {
                    self.writes_out -= 1;
                    self.free.push(b?);
                    self.writer.confirm(at);
                }
                Err(_) => return Err(self.stopped()),
            }
            self.place_ready()?;
        }
    }

    /// Hands out batches while buffers are free.
    fn hand_out(&mut self) -> Result<()> {
        while !self.planned_all
            && let Some(mut b) = self.free.pop()
        {
            if self.planner.next_batch(self.sink, &mut b.pfns)? {
                b.seq = self.next_seq;
                self.next_seq += 1;
                if self.jobs.send(Job::Compress(b)).is_err() {
                    return Err(self.stopped());
                }
            } else {
                self.free.push(b);
                self.planned_all = true;
            }
        }
        Ok(())
    }

    /// Places every batch whose turn has come.
    fn place_ready(&mut self) -> Result<()> {
        while let Some(b) = self.waiting.remove(&self.next_write) {
            self.next_write += 1;
            if self.parallel_out && !b.data.is_empty() {
                let at = self.writer.place(self.sink, &b)?;
                self.writes_out += 1;
                if self.jobs.send(Job::Write(at, b)).is_err() {
                    return Err(self.stopped());
                }
            } else {
                self.writer.write(self.sink, &b)?;
                self.free.push(b);
            }
        }
        Ok(())
    }
}

/// Runs pass 2 with one worker thread per `workers` entry (see the module's header).
pub(super) fn run_parallel(
    workers: Vec<Worker>,
    planner: &mut Planner<'_>,
    writer: &mut Writer,
    sink: &mut dyn Sink,
    page_size: usize,
) -> Result<()> {
    let pool_size = 2 * workers.len() + 1;
    let parallel_out = sink.parallel_writer();
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(pool_size);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for worker in workers {
            let rx = Arc::clone(&job_rx);
            let tx = done_tx.clone();
            let out = parallel_out.clone();
            scope.spawn(move || work(worker, &rx, &tx, out.as_ref()));
        }
        drop(done_tx);
        // Only the workers hold the queue's receiving end: if they all stopped, sending
        // fails instead of blocking.
        drop(job_rx);
        let mut dispatch = Dispatch {
            planner,
            writer,
            sink,
            jobs: job_tx,
            done: &done_rx,
            parallel_out: parallel_out.is_some(),
            free: (0..pool_size).map(|_| Batch::new(page_size)).collect(),
            waiting: BTreeMap::new(),
            next_seq: 0,
            next_write: 0,
            planned_all: false,
            writes_out: 0,
            gone: false,
        };
        // Caught here as well as by the caller, so that the workers' finished writes are
        // still confirmed below after a panic on this thread.
        let result = crate::error::catch("the writer thread", || dispatch.run());
        let Dispatch {
            writer, jobs, gone, ..
        } = dispatch;
        drop(jobs);
        let mut first_failure = None;
        if result.is_err() {
            // Stopping early: page data the workers did write still counts, so that the
            // incomplete dump keeps it. They end once the job queue is closed.
            for done in done_rx.iter() {
                match done {
                    Done::Written(at, Ok(_)) => writer.confirm(at),
                    Done::Written(_, Err(e)) | Done::Compressed(Err(e)) => {
                        first_failure.get_or_insert(e);
                    }
                    Done::Compressed(Ok(mut b)) => crate::report::diagnostics(b.take_diagnostic()),
                }
            }
        }
        // When the workers had all stopped, what stopped them is the run's failure.
        match (result, first_failure) {
            (Err(_), Some(e)) if gone => Err(e),
            (result, _) => result,
        }
    })
}
