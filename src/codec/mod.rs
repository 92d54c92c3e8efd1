//! Per-page compression: zlib (deflate with the zlib wrapper, level 1), LZO1X-1, raw
//! snappy and zstd (one frame, level 1), exactly the streams makedumpfile writes and
//! crash/libkdumpfile decode. Each `Compressor` owns its context and output buffer and
//! reuses them for every page: per-page allocation of codec state is a known cost in
//! makedumpfile's history.
//!
//! The implementations were chosen by measurement on real vmcore pages (`benches/codecs.rs`;
//! the figures are in `benches/README.md`): zlib is libdeflate at level 1, LZO our own
//! LZO1X-1 (`lzo`), snappy the snap crate, zstd the zstd crate's bulk API.

pub mod lzo;

use std::fmt;

use crate::error::{Error, Result};

/// A page codec of the kdump format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// No compression (no codec option given).
    None,
    /// `-c`: zlib (deflate with the zlib wrapper), level 1.
    Zlib,
    /// `-l`: LZO1X-1.
    Lzo,
    /// `-p`: raw snappy.
    Snappy,
    /// `-z`: one zstd frame, level 1.
    Zstd,
}

impl Codec {
    /// The page-descriptor flag and header status bit for pages stored with this codec.
    pub fn flag(self) -> u32 {
        match self {
            Codec::None => 0,
            Codec::Zlib => 0x1,
            Codec::Lzo => 0x2,
            Codec::Snappy => 0x4,
            Codec::Zstd => 0x20,
        }
    }

    /// The codec of a page-descriptor flag (`None` for an unknown flag).
    pub fn from_flag(flag: u32) -> Option<Codec> {
        Some(match flag {
            0 => Codec::None,
            0x1 => Codec::Zlib,
            0x2 => Codec::Lzo,
            0x4 => Codec::Snappy,
            0x20 => Codec::Zstd,
            _ => return None,
        })
    }

    /// The name `-v` and messages use.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zlib => "zlib",
            Codec::Lzo => "lzo",
            Codec::Snappy => "snappy",
            Codec::Zstd => "zstd",
        }
    }

    /// Every compressing codec, all built in.
    pub const ALL: [Codec; 4] = [Codec::Zlib, Codec::Lzo, Codec::Snappy, Codec::Zstd];
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

enum State {
    None,
    Zlib(Box<libdeflater::Compressor>),
    /// The LZO output buffer keeps its full length between pages (no clearing per page).
    Lzo(Box<lzo::Lzo1x1>, Vec<u8>),
    Snappy(Box<snap::raw::Encoder>),
    Zstd(zstd::bulk::Compressor<'static>),
}

/// A reusable compressor for one codec.
pub struct Compressor {
    codec: Codec,
    state: State,
    out: Vec<u8>,
}

impl Compressor {
    /// A compressor for pages of `page_size` bytes.
    pub fn new(codec: Codec, page_size: usize) -> Result<Compressor> {
        let state = match codec {
            Codec::None => State::None,
            Codec::Zlib => {
                // Level 1, as makedumpfile's Z_BEST_SPEED (libdeflate's level 0 is
                // "stored", no compression at all).
                let level = libdeflater::CompressionLvl::new(1)
                    .map_err(|e| Error::internal(format!("libdeflate level 1: {e:?}")))?;
                State::Zlib(Box::new(libdeflater::Compressor::new(level)))
            }
            Codec::Lzo => State::Lzo(
                Box::default(),
                vec![0; lzo::worst_case(page_size) + lzo::SLACK],
            ),
            Codec::Snappy => State::Snappy(Box::new(snap::raw::Encoder::new())),
            Codec::Zstd => State::Zstd(
                zstd::bulk::Compressor::new(1)
                    .map_err(|e| Error::io(e, "cannot create a zstd compression context"))?,
            ),
        };
        // Worst cases: snappy 32 + n + n/6, zstd/zlib/lzo a little above n.
        let bound = page_size + page_size / 6 + 1024;
        Ok(Compressor {
            codec,
            state,
            out: Vec::with_capacity(bound),
        })
    }

    /// The codec this compressor writes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Compresses one page. Returns the compressed bytes only when they are strictly smaller
    /// than the page (the rule readers rely on: `size == page size` means raw); `None` means
    /// "store the page raw".
    pub fn compress(&mut self, page: &[u8]) -> Result<Option<&[u8]>> {
        self.out.clear();
        match &mut self.state {
            State::None => return Ok(None),
            State::Zlib(z) => {
                // Room for a page that does not shrink; anything larger is stored raw.
                self.out.resize(page.len() + 64, 0);
                match z.zlib_compress(page, &mut self.out) {
                    Ok(n) => self.out.truncate(n),
                    Err(_) => return Ok(None),
                }
            }
            State::Lzo(l, buf) => {
                if buf.len() < lzo::worst_case(page.len()) + lzo::SLACK {
                    buf.resize(lzo::worst_case(page.len()) + lzo::SLACK, 0);
                }
                let n = l.compress_into(page, buf);
                return Ok((n < page.len()).then(|| &buf[..n]));
            }
            State::Snappy(s) => {
                let need = snap::raw::max_compress_len(page.len());
                self.out.resize(need, 0);
                let n = s
                    .compress(page, &mut self.out)
                    .map_err(|e| Error::internal(format!("snappy compression failed: {e}")))?;
                self.out.truncate(n);
            }
            State::Zstd(z) => {
                let need = zstd::zstd_safe::compress_bound(page.len());
                self.out.resize(need, 0);
                let n = z
                    .compress_to_buffer(page, &mut self.out)
                    .map_err(|e| Error::internal(format!("zstd compression failed: {e}")))?;
                self.out.truncate(n);
            }
        }
        if self.out.len() < page.len() {
            Ok(Some(&self.out))
        } else {
            Ok(None)
        }
    }
}

/// Decompresses one stored page (re-filtering, `--dump-dmesg` on dumps, tests). `out` must be
/// exactly one page long; anything else the data decodes to is an error.
pub fn decompress(codec: Codec, data: &[u8], out: &mut [u8]) -> Result<()> {
    let bad = |what: String| Error::bad_input(format!("{codec} page does not decompress: {what}"));
    match codec {
        Codec::None => {
            if data.len() != out.len() {
                return Err(bad(format!("raw page of {} bytes", data.len())));
            }
            out.copy_from_slice(data);
        }
        Codec::Zlib => {
            let n = libdeflater::Decompressor::new()
                .zlib_decompress(data, out)
                .map_err(|e| bad(e.to_string()))?;
            if n != out.len() {
                return Err(bad(format!("{n} bytes out")));
            }
        }
        Codec::Lzo => {
            lzo1x::decompress(data, out).map_err(|e| bad(format!("{e:?}")))?;
        }
        Codec::Snappy => {
            let n = snap::raw::decompress_len(data).map_err(|e| bad(e.to_string()))?;
            if n != out.len() {
                return Err(bad(format!("{n} bytes out")));
            }
            snap::raw::Decoder::new()
                .decompress(data, out)
                .map_err(|e| bad(e.to_string()))?;
        }
        Codec::Zstd => {
            let n = zstd::bulk::decompress_to_buffer(data, out).map_err(|e| bad(e.to_string()))?;
            if n != out.len() {
                return Err(bad(format!("{n} bytes out")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> Vec<Vec<u8>> {
        let mut random = vec![0u8; 4096];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in random.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let text: Vec<u8> = b"kernel text page "
            .iter()
            .copied()
            .cycle()
            .take(4096)
            .collect();
        vec![vec![0u8; 4096], text, random]
    }

    #[test]
    fn every_codec_round_trips_and_refuses_to_grow() {
        for codec in Codec::ALL {
            let mut c = Compressor::new(codec, 4096).expect("context");
            let [zero, text, random] = <[Vec<u8>; 3]>::try_from(pages()).expect("3 pages");
            for page in [&zero, &text] {
                let packed = c
                    .compress(page)
                    .expect("compress")
                    .expect("smaller")
                    .to_vec();
                assert!(packed.len() < 4096, "{codec}");
                let mut back = vec![0u8; 4096];
                decompress(codec, &packed, &mut back).expect("decompress");
                assert_eq!(&back, page, "{codec}");
            }
            assert!(c.compress(&random).expect("compress").is_none(), "{codec}");
            // The context is reused after an incompressible page.
            assert!(c.compress(&text).expect("compress").is_some(), "{codec}");
        }
    }

    #[test]
    fn decompress_rejects_garbage() {
        let mut out = vec![0u8; 4096];
        for codec in Codec::ALL {
            assert!(decompress(codec, &[0xff; 40], &mut out).is_err(), "{codec}");
        }
        assert!(decompress(Codec::None, &[0; 10], &mut out).is_err());
    }

    #[test]
    fn zlib_stream_has_zlib_wrapper() {
        let mut c = Compressor::new(Codec::Zlib, 4096).expect("ctx");
        let p = c.compress(&[0u8; 4096]).expect("ok").expect("smaller");
        // CMF 0x78, FLG for level 1 (fastest) = 0x01.
        assert_eq!(&p[..2], &[0x78, 0x01]);
        let mut z = Compressor::new(Codec::Zstd, 4096).expect("ctx");
        let p = z.compress(&[0u8; 4096]).expect("ok").expect("smaller");
        assert_eq!(&p[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }
}
