//! The flattened format (`-F`): a seekable file turned into a stream of positioned writes,
//! for pipes and ssh. A 4096-byte header ("makedumpfile", type 1, version 1, big-endian),
//! then records `{be64 offset, be64 size, data}` in write order, then `{-1, -1}`. `-R`
//! replays the records into a file; the result equals what a direct write produces.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};
use crate::format::record::Model;
use crate::input::bytes::Endian;

/// Bytes of the stream header (the rest after its fields is zero).
pub const HEADER_SIZE: usize = 4096;
/// The stream header's signature, NUL-padded to 16 bytes.
pub const SIGNATURE: &[u8] = b"makedumpfile";
/// Bytes of the NUL-padded signature field.
const SIGNATURE_LEN: usize = 16;
/// Bytes of a record header.
pub const RECORD_HEADER_SIZE: usize = 16;
const TYPE: i64 = 1;
const VERSION: i64 = 1;
const END: i64 = -1;
/// Both records are big-endian 64-bit fields, the same in every model.
const BE: (Model, Endian) = (Model::Lp64, Endian::Big);

crate::record! {
    /// `makedumpfile_header` after its 16-byte signature.
    FlatHeader, FlatHeaderFields, FLAT_HEADER {
        /// Stream type (1).
        kind: i64 = U64(16, 16),
        /// Stream version (1).
        version: i64 = U64(24, 24),
    }
}

crate::record! {
    /// `makedumpfile_data_header`: where the record's bytes go and how many follow.
    RecordHeader, RecordHeaderFields, RECORD_HEADER {
        /// Offset in the dump (-1 in the end marker).
        offset: i64 = U64(0, 0),
        /// Bytes of data after this header (-1 in the end marker).
        size: i64 = U64(8, 8),
    }
}

/// What one record header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// `size` bytes follow, to be written at `offset` of the dump.
    Data {
        /// Offset in the dump.
        offset: u64,
        /// Bytes of data.
        size: u64,
    },
    /// The end marker: the stream is complete.
    End,
}

impl RecordHeader {
    /// Decodes record header number `index` of a stream: a negative offset or size (other
    /// than the end marker), or a range past 2^64, is an error.
    pub fn decode(raw: &[u8; RECORD_HEADER_SIZE], index: u64) -> Result<Record> {
        let (model, endian) = BE;
        let r = RecordHeader::parse(model, endian, raw).unwrap_or_default();
        if r.offset == END && r.size == END {
            return Ok(Record::End);
        }
        match (u64::try_from(r.offset), u64::try_from(r.size)) {
            (Ok(offset), Ok(size)) if offset.checked_add(size).is_some() => {
                Ok(Record::Data { offset, size })
            }
            _ => Err(Error::bad_input(format!(
                "flattened record {index} has offset {} and size {}",
                r.offset, r.size
            ))),
        }
    }

    fn bytes(self) -> [u8; RECORD_HEADER_SIZE] {
        let mut r = [0u8; RECORD_HEADER_SIZE];
        self.put(BE.0, BE.1, &mut r);
        r
    }
}

/// The 4096-byte stream header.
pub fn header() -> Vec<u8> {
    let mut h = vec![0u8; HEADER_SIZE];
    h[..SIGNATURE.len()].copy_from_slice(SIGNATURE);
    let fields = FlatHeader {
        kind: TYPE,
        version: VERSION,
    };
    fields.put(BE.0, BE.1, &mut h);
    h
}

/// The header of a record of `size` bytes at `offset`.
pub fn record_header(offset: u64, size: u64) -> [u8; RECORD_HEADER_SIZE] {
    RecordHeader {
        offset: offset as i64,
        size: size as i64,
    }
    .bytes()
}

/// The record header that ends a stream.
pub fn end_marker() -> [u8; RECORD_HEADER_SIZE] {
    RecordHeader {
        offset: END,
        size: END,
    }
    .bytes()
}

/// Checks the 4096-byte stream header.
pub fn check_header(h: &[u8]) -> Result<()> {
    let sig_ok = h.len() >= SIGNATURE_LEN
        && &h[..SIGNATURE.len()] == SIGNATURE
        && h[SIGNATURE.len()..SIGNATURE_LEN].iter().all(|&b| b == 0);
    let Some(f) = FlatHeader::parse(BE.0, BE.1, h).filter(|_| sig_ok) else {
        return Err(Error::bad_input(
            "not a flattened dump (no \"makedumpfile\" signature)",
        ));
    };
    if f.kind != TYPE || f.version != VERSION {
        return Err(Error::unsupported(format!(
            "flattened dump of type {} version {} (only type 1 version 1 exists)",
            f.kind, f.version
        )));
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Replays a flattened stream into positioned writes (`-R`). Returns the number of bytes of
/// data written. A stream that ends before its end marker is an error: the dump it carried
/// is incomplete, and saying so matters more than the bytes already written.
pub fn replay(
    input: &mut dyn Read,
    mut write_at: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let mut head = vec![0u8; HEADER_SIZE];
    let n = read_full(input, &mut head)
        .map_err(|e| Error::io(e, "cannot read the flattened stream"))?;
    if n < HEADER_SIZE {
        return Err(Error::bad_input(format!(
            "the flattened stream is only {n} bytes: no complete header"
        )));
    }
    check_header(&head)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut records = 0u64;
    loop {
        let mut rh = [0u8; RECORD_HEADER_SIZE];
        let n = read_full(input, &mut rh)
            .map_err(|e| Error::io(e, "cannot read the flattened stream"))?;
        if n < rh.len() {
            return Err(Error::bad_input(format!(
                "the flattened stream ends after {records} records without its end marker: the dump is incomplete"
            )));
        }
        let (offset, size) = match RecordHeader::decode(&rh, records)? {
            Record::End => return Ok(total),
            Record::Data { offset, size } => (offset, size),
        };
        let mut at = offset;
        let mut left = size;
        while left > 0 {
            let chunk = left.min(buf.len() as u64) as usize;
            let got = read_full(input, &mut buf[..chunk])
                .map_err(|e| Error::io(e, "cannot read the flattened stream"))?;
            if got < chunk {
                return Err(Error::bad_input(format!(
                    "the flattened stream ends inside record {records} (offset {offset:#x}): the dump is incomplete"
                )));
            }
            write_at(at, &buf[..chunk])?;
            at += chunk as u64;
            left -= chunk as u64;
        }
        total += size;
        records += 1;
    }
}

/// Writes positioned writes as flattened records to a stream.
pub struct FlatWriter<W: Write> {
    out: W,
    started: bool,
}

impl<W: Write> FlatWriter<W> {
    /// A writer whose stream header goes out with the first record.
    pub fn new(out: W) -> Self {
        FlatWriter {
            out,
            started: false,
        }
    }

    fn start(&mut self) -> io::Result<()> {
        if !self.started {
            self.out.write_all(&header())?;
            self.started = true;
        }
        Ok(())
    }

    /// One record: `data` to be written at `offset`.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.start()?;
        self.out
            .write_all(&record_header(offset, data.len() as u64))?;
        self.out.write_all(data)
    }

    /// The end marker, then a flush.
    pub fn finish(&mut self) -> io::Result<()> {
        self.start()?;
        self.out.write_all(&end_marker())?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = FlatWriter::new(Vec::new());
        w.write_at(4096, b"hello").expect("write");
        w.write_at(0, b"KDUMP").expect("write");
        w.write_at(4098, b"XY").expect("write");
        w.finish().expect("finish");
        let stream = w.out;
        let mut file = vec![0u8; 0];
        let mut write = |at: u64, d: &[u8]| {
            let end = at as usize + d.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[at as usize..end].copy_from_slice(d);
            Ok(())
        };
        let n = replay(&mut &stream[..], &mut write).expect("replay");
        assert_eq!(n, 12);
        assert_eq!(&file[..5], b"KDUMP");
        assert_eq!(&file[4096..4101], b"heXYo");
        // Every truncation of the stream is reported, none panics.
        for cut in 0..stream.len() {
            let r = replay(&mut &stream[..cut], |_, _| Ok(()));
            assert!(r.is_err(), "cut at {cut} accepted");
        }
        let mut bad = stream.clone();
        bad[0] = b'M';
        assert!(replay(&mut &bad[..], |_, _| Ok(())).is_err());
    }
}
