//! The flattened format (`-F`): a seekable file turned into a stream of positioned writes,
//! for pipes and ssh. A 4096-byte header ("makedumpfile", type 1, version 1, big-endian),
//! then records `{be64 offset, be64 size, data}` in write order, then `{-1, -1}`. `-R`
//! replays the records into a file; the result equals what a direct write produces.

use std::io::{self, Read, Write};

use crate::error::{Error, Result};

pub const HEADER_SIZE: usize = 4096;
pub const SIGNATURE: &[u8] = b"makedumpfile";
const TYPE: i64 = 1;
const VERSION: i64 = 1;
const END: i64 = -1;

pub fn header() -> Vec<u8> {
    let mut h = vec![0u8; HEADER_SIZE];
    h[..SIGNATURE.len()].copy_from_slice(SIGNATURE);
    h[16..24].copy_from_slice(&TYPE.to_be_bytes());
    h[24..32].copy_from_slice(&VERSION.to_be_bytes());
    h
}

pub fn record_header(offset: u64, size: u64) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&offset.to_be_bytes());
    r[8..].copy_from_slice(&size.to_be_bytes());
    r
}

pub fn end_marker() -> [u8; 16] {
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&END.to_be_bytes());
    r[8..].copy_from_slice(&END.to_be_bytes());
    r
}

/// Checks the 4096-byte stream header.
pub fn check_header(h: &[u8]) -> Result<()> {
    let sig_ok = h.len() >= 32
        && &h[..SIGNATURE.len()] == SIGNATURE
        && h[SIGNATURE.len()..16].iter().all(|&b| b == 0);
    if !sig_ok {
        return Err(Error::bad_input(
            "not a flattened dump (no \"makedumpfile\" signature)",
        ));
    }
    let ty = i64::from_be_bytes(h[16..24].try_into().unwrap_or([0; 8]));
    let ver = i64::from_be_bytes(h[24..32].try_into().unwrap_or([0; 8]));
    if ty != TYPE || ver != VERSION {
        return Err(Error::unsupported(format!(
            "flattened dump of type {ty} version {ver} (only type 1 version 1 exists)"
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
        let mut rh = [0u8; 16];
        let n = read_full(input, &mut rh)
            .map_err(|e| Error::io(e, "cannot read the flattened stream"))?;
        if n < rh.len() {
            return Err(Error::bad_input(format!(
                "the flattened stream ends after {records} records without its end marker: the dump is incomplete"
            )));
        }
        let offset = i64::from_be_bytes(rh[..8].try_into().unwrap_or([0; 8]));
        let size = i64::from_be_bytes(rh[8..].try_into().unwrap_or([0; 8]));
        if offset == END && size == END {
            return Ok(total);
        }
        if offset < 0 || size < 0 {
            return Err(Error::bad_input(format!(
                "flattened record {records} has offset {offset} and size {size}"
            )));
        }
        let mut at = offset as u64;
        let mut left = size as u64;
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
        total += size as u64;
        records += 1;
    }
}

/// Writes positioned writes as flattened records to a stream.
pub struct FlatWriter<W: Write> {
    out: W,
    started: bool,
}

impl<W: Write> FlatWriter<W> {
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

    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.start()?;
        self.out
            .write_all(&record_header(offset, data.len() as u64))?;
        self.out.write_all(data)
    }

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
