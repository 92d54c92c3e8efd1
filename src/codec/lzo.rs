//! LZO1X-1 compression, written for vmsift: the stream format liblzo's `lzo1x_1_compress`
//! produces and every LZO1X decompressor (crash, libkdumpfile, the kernel) reads.
//!
//! Why not a crate: the safe port allocates its output and clears a 32 KiB dictionary on
//! every call, which costs a quarter of the time on 4 KiB pages. Here the dictionary is
//! kept between calls and invalidated by a moving base instead of being cleared: an entry
//! is `base + position`, valid only if it is at least this call's base. Output depends only
//! on the input page, never on earlier pages (so threads cannot change the dump).
//!
//! Stream summary (instruction byte t):
//! - first byte > 17: a literal run of t − 17 bytes (stream start only);
//! - t < 16 after a match: a literal run of t + 3 bytes (t = 0: 18 + extension bytes);
//! - 64 ≤ t: match of 3–8 bytes at distance ≤ 2 KiB (M2), 2 bytes;
//! - 32 ≤ t < 64: match, distance ≤ 16 KiB (M3); 16 ≤ t < 32: distance ≤ 48 KiB (M4);
//! - the low 2 bits of the second-to-last byte of a match carry 0–3 following literals;
//! - end of stream: M4 with distance 0 (`0x11 0x00 0x00`).

/// Dictionary size: 2^14 entries at most (liblzo's LZO1X-1); a page of 2^k bytes uses
/// 2^k entries (k ≥ 10), so a 4 KiB page's table stays in the L1 cache (16 KiB).
const D_BITS: u32 = 14;
const MIN_D_BITS: u32 = 10;
const M2_MAX_LEN: usize = 8;
const M2_MAX_OFFSET: usize = 0x0800;
const M3_MAX_LEN: usize = 33;
const M3_MAX_OFFSET: usize = 0x4000;
const M4_MAX_LEN: usize = 9;
const M4_MAX_OFFSET: usize = 0xbfff;
const M3_MARKER: u8 = 32;
const M4_MARKER: u8 = 16;
/// Matches start no later than this many bytes before the end (as liblzo).
const TAIL: usize = 20;

/// The most bytes `compress` can produce for `n` input bytes.
pub fn worst_case(n: usize) -> usize {
    n + n / 16 + 64 + 3
}

const D_SIZE: usize = 1 << D_BITS;

pub struct Lzo1x1 {
    /// A fixed-size table, so that masked indexes need no bounds check.
    dict: Box<[u32; D_SIZE]>,
    base: u32,
}

impl Default for Lzo1x1 {
    fn default() -> Self {
        Self::new()
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Appends a run-length extension: zero bytes for each 255, then the rest (1..=255).
fn push_extension(out: &mut Vec<u8>, mut n: usize) {
    while n > 255 {
        out.push(0);
        n -= 255;
    }
    out.push(n as u8);
}

fn push_literals(out: &mut Vec<u8>, lit: &[u8]) {
    let t = lit.len();
    if t == 0 {
        return;
    }
    if out.is_empty() && t <= 238 {
        out.push(17 + t as u8);
    } else if t <= 3 {
        // Carried in the low bits of the previous match's second-to-last byte.
        let at = out.len() - 2;
        out[at] |= t as u8;
    } else if t <= 18 {
        out.push((t - 3) as u8);
    } else {
        out.push(0);
        push_extension(out, t - 18);
    }
    out.extend_from_slice(lit);
}

fn push_match(out: &mut Vec<u8>, len: usize, off: usize) {
    if len <= M2_MAX_LEN && off <= M2_MAX_OFFSET {
        let o = off - 1;
        out.push((((len - 1) << 5) | ((o & 7) << 2)) as u8);
        out.push((o >> 3) as u8);
        return;
    }
    let o = if off <= M3_MAX_OFFSET {
        if len <= M3_MAX_LEN {
            out.push(M3_MARKER | (len - 2) as u8);
        } else {
            out.push(M3_MARKER);
            push_extension(out, len - M3_MAX_LEN);
        }
        off - 1
    } else {
        let o = off - 0x4000;
        let high = ((o >> 11) & 8) as u8;
        if len <= M4_MAX_LEN {
            out.push(M4_MARKER | high | (len - 2) as u8);
        } else {
            out.push(M4_MARKER | high);
            push_extension(out, len - M4_MAX_LEN);
        }
        o
    };
    out.push(((o & 0x3f) << 2) as u8);
    out.push((o >> 6) as u8);
}

impl Lzo1x1 {
    pub fn new() -> Lzo1x1 {
        Lzo1x1 {
            dict: Box::new([0; D_SIZE]),
            base: 1,
        }
    }

    /// Compresses `src` into `out` (cleared first). Inputs larger than 4 GiB are not
    /// supported (pages are at most 1 MiB).
    pub fn compress(&mut self, src: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(worst_case(src.len()));
        let n = src.len();
        // A fresh base for this call; entries below it are from earlier calls.
        let span = n as u32 + 1;
        if self
            .base
            .checked_add(span)
            .is_none_or(|b| b.checked_add(span).is_none())
        {
            self.dict.fill(0);
            self.base = 1;
        }
        let base = self.base;
        self.base += span;

        let bits = (n.next_power_of_two().trailing_zeros()).clamp(MIN_D_BITS, D_BITS);
        let mut ii = 0; // first byte not yet emitted
        if n > TAIL {
            let ip_end = n - TAIL;
            let mut ip = 1;
            while ip < ip_end {
                let dv = read_u32(src, ip);
                let h = (dv.wrapping_mul(0x1824_429d) >> (32 - bits)) as usize & (D_SIZE - 1);
                let cand = self.dict[h];
                self.dict[h] = base + ip as u32;
                let m_pos = cand.wrapping_sub(base) as usize;
                if cand < base
                    || m_pos >= ip
                    || ip - m_pos > M4_MAX_OFFSET
                    || read_u32(src, m_pos) != dv
                {
                    // No match: step further the longer the literal run (skips fast over
                    // incompressible data, as LZO1X-1 does).
                    ip += 1 + ((ip - ii) >> 5);
                    continue;
                }
                push_literals(out, &src[ii..ip]);
                // Extend the match 8 bytes at a time, then byte by byte.
                let mut len = 4;
                while ip + len + 8 <= n {
                    let x = read_u64(src, ip + len) ^ read_u64(src, m_pos + len);
                    if x != 0 {
                        len += (x.trailing_zeros() / 8) as usize;
                        break;
                    }
                    len += 8;
                }
                if ip + len + 8 > n {
                    while ip + len < n && src[ip + len] == src[m_pos + len] {
                        len += 1;
                    }
                }
                push_match(out, len, ip - m_pos);
                ip += len;
                ii = ip;
            }
        }
        push_literals(out, &src[ii..]);
        out.extend_from_slice(&[M4_MARKER | 1, 0, 0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Fill, mixed_pages, noise, page};

    fn round_trip(c: &mut Lzo1x1, data: &[u8]) -> usize {
        let mut out = Vec::new();
        c.compress(data, &mut out);
        assert!(out.len() <= worst_case(data.len()));
        let mut back = vec![0u8; data.len()];
        lzo1x::decompress(&out, &mut back)
            .unwrap_or_else(|e| panic!("{} bytes: {e:?}", data.len()));
        assert!(back == data, "{} bytes: round trip differs", data.len());
        out.len()
    }

    #[test]
    fn round_trips_every_shape() {
        let mut c = Lzo1x1::new();
        for n in (0..300).chain([4095, 4096, 4097, 20000, 65536, 70000]) {
            round_trip(&mut c, &noise(n as u64, n));
            round_trip(&mut c, &vec![0u8; n]);
            let text: Vec<u8> = b"abcdefgh".iter().copied().cycle().take(n).collect();
            round_trip(&mut c, &text);
        }
        for fill in [Fill::Zero, Fill::Text, Fill::Random] {
            for seed in 0..50 {
                round_trip(&mut c, &page(fill, seed, 4096));
            }
        }
        // Literal runs of every length between matches, and long matches.
        let mut mixed = Vec::new();
        for i in 0..600usize {
            mixed.extend(noise(i as u64, i % 40));
            mixed.extend(std::iter::repeat_n((i % 7) as u8, i % 300));
        }
        round_trip(&mut c, &mixed);
        round_trip(&mut c, &mixed_pages(3, 64, 4096));
    }

    #[test]
    fn output_depends_on_the_input_only() {
        let a = page(Fill::Text, 1, 4096);
        let b = page(Fill::Text, 2, 4096);
        let mut fresh = Lzo1x1::new();
        let mut used = Lzo1x1::new();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        used.compress(&a, &mut x);
        fresh.compress(&b, &mut x);
        used.compress(&b, &mut y);
        assert_eq!(x, y);
        // Wrapping the base clears the dictionary instead of misreading it.
        used.base = u32::MAX - 10;
        used.compress(&b, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn ratio_close_to_liblzo() {
        let mut c = Lzo1x1::new();
        let (mut ours, mut theirs) = (0usize, 0usize);
        for seed in 0..64 {
            let p = &mixed_pages(seed * 4, 4, 4096);
            ours += round_trip(&mut c, p);
            theirs += lzo1x::compress(p, lzo1x::CompressLevel::new(3)).len();
        }
        let ratio = ours as f64 / theirs as f64;
        assert!((0.98..=1.02).contains(&ratio), "{ours} vs {theirs}");
    }
}
