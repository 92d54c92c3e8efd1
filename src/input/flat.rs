//! A flattened dump (`-F`) read in place: one pass over the stream indexes its records,
//! then reads at an offset of the dump it carries are served from the records that cover
//! it (a later record wins over an earlier one at the same offset; bytes no record covers
//! read as zeros, like a file's holes). This is what lets `--dump-dmesg` and re-filtering
//! take a `.flat` file as it came off ssh, as crash does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::elf::ReadAt;
use crate::error::{Error, Result};
use crate::format::flat::{HEADER_SIZE, RECORD_HEADER_SIZE, Record, RecordHeader, check_header};

/// Pieces of the dump: dump offset → (end, position of the bytes in the stream file).
pub struct FlatFile {
    file: File,
    pieces: BTreeMap<u64, (u64, u64)>,
    size: u64,
}

/// Records a flattened stream may hold before it is called implausible (a 1 TiB dump in
/// 1 MiB records is a million).
const MAX_RECORDS: u64 = 1 << 24;
/// What one record costs in the index (a B-tree entry of three words, with its share of
/// the nodes), for the memory check.
const INDEX_BYTES_PER_RECORD: u64 = 64;

impl FlatFile {
    /// Indexes the records of the flattened stream in `file`: an incomplete stream (no end
    /// marker, a record cut short) is refused.
    pub fn open(file: File) -> Result<FlatFile> {
        let mut head = vec![0u8; HEADER_SIZE];
        FileExt::read_exact_at(&file, &mut head, 0)
            .map_err(|e| Error::io(e, "cannot read the flattened header"))?;
        check_header(&head)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(e, "cannot stat the flattened dump"))?
            .len();
        let mut flat = FlatFile {
            file,
            pieces: BTreeMap::new(),
            size: 0,
        };
        // The index grows with the records the file really has; it may take half of what
        // this process may use (the rest is the dump's own budget).
        let max_records = crate::budget::limit()
            .map_or(MAX_RECORDS, |l| l.bytes / 2 / INDEX_BYTES_PER_RECORD)
            .min(MAX_RECORDS);
        let mut pos = HEADER_SIZE as u64;
        for record in 0.. {
            if record > max_records {
                return Err(Error::bad_input(format!(
                    "the flattened dump has more than {max_records} records, more than this process has memory to index: rebuild it with -R first"
                )));
            }
            let mut rh = [0u8; RECORD_HEADER_SIZE];
            FileExt::read_exact_at(&flat.file, &mut rh, pos).map_err(|_| {
                Error::bad_input(format!(
                    "the flattened dump ends after {record} records without its end marker: it is incomplete"
                ))
            })?;
            let (offset, size) = match RecordHeader::decode(&rh, record)? {
                Record::End => return Ok(flat),
                Record::Data { offset, size } => (offset, size),
            };
            let data = pos + RECORD_HEADER_SIZE as u64;
            if data.saturating_add(size) > len {
                return Err(Error::bad_input(format!(
                    "flattened record {record} runs past the end of the file: it is incomplete"
                )));
            }
            flat.insert(offset, offset + size, data);
            pos = data + size;
        }
        unreachable!("the loop returns")
    }

    /// Adds a record, cutting away what it overwrites of earlier ones.
    fn insert(&mut self, start: u64, end: u64, at: u64) {
        if start == end {
            return;
        }
        let overlapping: Vec<(u64, (u64, u64))> = self
            .pieces
            .range(..end)
            .rev()
            .take_while(|(_, (e, _))| *e > start)
            .map(|(&s, &v)| (s, v))
            .collect();
        for (s, (e, p)) in overlapping {
            self.pieces.remove(&s);
            if s < start {
                self.pieces.insert(s, (start, p));
            }
            if e > end {
                self.pieces.insert(end, (e, p + (end - s)));
            }
        }
        self.pieces.insert(start, (end, at));
        self.size = self.size.max(end);
    }
}

impl FlatFile {
    /// Bytes of `[start, end)` that some record covers.
    fn covered(&self, start: u64, end: u64) -> u64 {
        let first = self.pieces.range(..=start).next_back().map(|(&s, _)| s);
        self.pieces
            .range(first.unwrap_or(start)..end)
            .map(|(&s, &(e, _))| e.min(end).saturating_sub(s.max(start)))
            .sum()
    }
}

impl ReadAt for FlatFile {
    /// Only what the records carry: a header that places its bitmaps in a hole of the
    /// stream (far beyond the data) describes nothing that is there.
    fn holds(&self, offset: u64, len: u64) -> bool {
        offset
            .checked_add(len)
            .is_some_and(|end| end <= self.size && self.covered(offset, end) == len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.fill(0);
        // The piece that starts at or before `offset`, then every later one up to `end`.
        let first = self.pieces.range(..=offset).next_back().map(|(&s, _)| s);
        let from = first.unwrap_or(offset);
        for (&s, &(e, at)) in self.pieces.range(from..end) {
            let lo = s.max(offset);
            let hi = e.min(end);
            if lo >= hi {
                continue;
            }
            let dst = &mut buf[(lo - offset) as usize..(hi - offset) as usize];
            FileExt::read_exact_at(&self.file, dst, at + (lo - s))?;
        }
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::flat::FlatWriter;

    #[test]
    fn reads_what_a_rebuilt_file_would_hold() {
        let dir = std::env::temp_dir().join(format!("vmsift-flat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.flat");
        let mut w = FlatWriter::new(File::create(&path).expect("create"));
        // Out of order, overlapping, with a hole: the last write wins.
        w.write_at(100, &[1; 50]).expect("w");
        w.write_at(0, &[2; 20]).expect("w");
        w.write_at(120, &[3; 10]).expect("w");
        w.write_at(90, &[4; 15]).expect("w");
        w.finish().expect("finish");
        drop(w);
        let mut want = [0u8; 150];
        want[100..150].fill(1);
        want[0..20].fill(2);
        want[120..130].fill(3);
        want[90..105].fill(4);
        let f = FlatFile::open(File::open(&path).expect("open")).expect("index");
        assert_eq!(f.size().expect("size"), 150);
        for (a, b) in [(0, 150), (95, 125), (20, 90), (149, 150), (0, 0)] {
            let mut buf = vec![9u8; b - a];
            f.read_exact_at(&mut buf, a as u64).expect("read");
            assert_eq!(buf, want[a..b], "{a}..{b}");
        }
        let mut past = [0u8; 2];
        assert!(f.read_exact_at(&mut past, 149).is_err());
        // Stored: 0..20 and 90..150; 20..90 is a hole.
        assert!(f.holds(0, 20) && f.holds(90, 60) && f.holds(95, 10));
        assert!(!f.holds(0, 21) && !f.holds(19, 72) && !f.holds(140, 11) && !f.holds(30, 1));
        assert!(f.holds(40, 0) && !f.holds(u64::MAX, 2));
        // Cut short: refused, not half-read.
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 16]).expect("cut");
        assert!(FlatFile::open(File::open(&path).expect("open")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
