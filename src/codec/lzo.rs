//! LZO1X-1 compression, written for vmsift: the stream format liblzo's `lzo1x_1_compress`
//! produces and every LZO1X decompressor (crash, libkdumpfile, the kernel) reads.
//!
//! Why not a crate: the safe port allocates its output and clears a 32 KiB dictionary on
//! every call. Here the table is kept between calls and invalidated by a moving base: an
//! entry is `base + position`, valid only if it is at least this call's base. Pages (up to
//! 4 KiB) use 2-byte entries, cleared once every 16 calls, and a stale entry turns into
//! position 0 by a conditional move rather than a branch (what a cleared table would give;
//! clearing the table per page, or a branch on stale entries, were both measurably slower).
//! The output buffer keeps its length between calls, short literal runs are copied 16
//! bytes at a time, matches are extended 16 bytes at a time, and the common match codes
//! (M2 and short M3) are chosen by a conditional move and written by one 4-byte store.
//! Speed against liblzo2 and the other crates: `benches/README.md`. Output depends only on
//! the input, never on earlier calls, so threads cannot change the dump.
//!
//! Stream summary (instruction byte t):
//! - first byte > 17: a literal run of t − 17 bytes (stream start only);
//! - t < 16 after a match: a literal run of t + 3 bytes (t = 0: 18 + extension bytes);
//! - 64 ≤ t: match of 3–8 bytes at distance ≤ 2 KiB (M2), 2 bytes;
//! - 32 ≤ t < 64: match, distance ≤ 16 KiB (M3); 16 ≤ t < 32: distance ≤ 48 KiB (M4);
//! - the low 2 bits of the second-to-last byte of a match carry 0–3 following literals;
//! - end of stream: M4 with distance 0 (`0x11 0x00 0x00`).

/// Dictionary size for inputs over 48 KiB: 2^14 entries at most (liblzo's LZO1X-1).
const D_BITS: u32 = 14;
const MIN_D_BITS: u32 = 10;
/// Inputs up to 4 KiB (x86 pages) use 2^12 two-byte entries (8 KiB, in the L1 cache),
/// in `EPOCHS` generations between clearings.
const PAGE: usize = 4096;
const PAGE_D_BITS: u32 = 12;
const EPOCHS: usize = 16;
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

/// An LZO1X-1 compressor with its dictionary, reused from page to page.
pub struct Lzo1x1 {
    /// Inputs up to `PAGE` bytes.
    small: Box<[u16; 1 << PAGE_D_BITS]>,
    epoch: usize,
    /// Larger inputs: `base + position`, invalidated by moving the base.
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

fn read_u128(b: &[u8], at: usize) -> u128 {
    let mut w = [0u8; 16];
    w.copy_from_slice(&b[at..at + 16]);
    u128::from_le_bytes(w)
}

/// Extra room `compress_into` wants past `worst_case`: short literal runs are copied 16
/// bytes at a time, which may write (never read) past the run's end.
pub const SLACK: usize = 16;

/// The output cursor. Every write is bounds-checked by the slice; `out` holds
/// `worst_case + SLACK` bytes, so the checks never fail.
struct Out<'a> {
    buf: &'a mut [u8],
    op: usize,
}

impl Out<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.buf[self.op] = b;
        self.op += 1;
    }

    /// A run-length extension: zero bytes for each 255, then the rest (1..=255).
    #[inline(always)]
    fn extension(&mut self, mut n: usize) {
        while n > 255 {
            self.byte(0);
            n -= 255;
        }
        self.byte(n as u8);
    }

    /// The literal run `src[ii..ip]`; `ip + 16 <= src.len()` when `fast` (the main loop,
    /// where matches start at least `TAIL` bytes before the end).
    #[inline(always)]
    fn literals(&mut self, src: &[u8], ii: usize, ip: usize) {
        let t = ip - ii;
        if t == 0 {
            return;
        }
        if self.op == 0 && t <= 238 {
            self.byte(17 + t as u8);
        } else if t <= 3 {
            // Carried in the low bits of the previous match's second-to-last byte.
            self.buf[self.op - 2] |= t as u8;
        } else if t <= 18 {
            self.byte((t - 3) as u8);
        } else {
            self.byte(0);
            self.extension(t - 18);
        }
        if t <= 16 && ii + 16 <= src.len() {
            self.buf[self.op..self.op + 16].copy_from_slice(&src[ii..ii + 16]);
        } else {
            self.buf[self.op..self.op + t].copy_from_slice(&src[ii..ip]);
        }
        self.op += t;
    }

    /// The low `n` (at most 4) bytes of `v`: one store of 4 bytes, which the slack allows.
    #[inline(always)]
    fn bytes(&mut self, v: u32, n: usize) {
        self.buf[self.op..self.op + 4].copy_from_slice(&v.to_le_bytes());
        self.op += n;
    }

    #[inline(always)]
    fn matched(&mut self, len: usize, off: usize) {
        // The M3/M4 distance field: 14 bits, low 6 first, shifted left by 2.
        let dist = |o: usize| (((o & 0x3f) << 2) | ((o >> 6) << 8)) as u32;
        if len <= M3_MAX_LEN && off <= M3_MAX_OFFSET {
            // The common case, M2 or short M3, chosen without a branch: both encodings are
            // computed and one 4-byte store writes the one that applies.
            let o = off - 1;
            let m2 = (((len - 1) << 5) | ((o & 7) << 2) | ((o >> 3) << 8)) as u32;
            let m3 = u32::from(M3_MARKER) | (len - 2) as u32 | dist(o) << 8;
            let short = len <= M2_MAX_LEN && off <= M2_MAX_OFFSET;
            self.bytes(if short { m2 } else { m3 }, 3 - short as usize);
            return;
        }
        if off <= M3_MAX_OFFSET {
            // M3 longer than 33 bytes.
            self.byte(M3_MARKER);
            self.extension(len - M3_MAX_LEN);
            self.bytes(dist(off - 1), 2);
        } else {
            let o = off - 0x4000;
            let high = ((o >> 11) & 8) as u32;
            let o = o & 0x3fff;
            if len <= M4_MAX_LEN {
                self.bytes(
                    u32::from(M4_MARKER) | high | (len - 2) as u32 | dist(o) << 8,
                    3,
                );
            } else {
                self.byte(M4_MARKER | high as u8);
                self.extension(len - M4_MAX_LEN);
                self.bytes(dist(o), 2);
            }
        }
    }
}

impl Lzo1x1 {
    /// A compressor with an empty dictionary.
    pub fn new() -> Lzo1x1 {
        Lzo1x1 {
            small: Box::new([0; 1 << PAGE_D_BITS]),
            epoch: 0,
            dict: Box::new([0; D_SIZE]),
            base: 1,
        }
    }

    /// Compresses `src` into `out` (replacing its contents). Inputs larger than 4 GiB are
    /// not supported (pages are at most 1 MiB).
    pub fn compress(&mut self, src: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.resize(worst_case(src.len()) + SLACK, 0);
        let n = self.compress_into(src, out);
        out.truncate(n);
    }

    /// Compresses `src` into `out`, which must hold at least `worst_case(src.len()) + SLACK`
    /// bytes (shorter panics), and returns the compressed length.
    pub fn compress_into(&mut self, src: &[u8], out: &mut [u8]) -> usize {
        let n = src.len();
        if n <= PAGE {
            // Pages: 2-byte entries `epoch * PAGE + position`. Sixteen calls share one
            // clearing of the table; entries of earlier epochs wrap to a huge position and
            // fail `< ip`. Clearing 8 KiB for every page cost a tenth of a -d 1 dump.
            if self.epoch == EPOCHS {
                self.small.fill(0);
                self.epoch = 0;
            }
            let base = self.epoch * PAGE;
            self.epoch += 1;
            let dict = &mut self.small;
            let probe = |h: usize, ip: usize| {
                // h < 2^PAGE_D_BITS; the mask only spares the bounds check.
                let h = h & ((1 << PAGE_D_BITS) - 1);
                let m = (dict[h] as usize).wrapping_sub(base);
                dict[h] = (base + ip) as u16;
                // A stale entry becomes position 0 (always a valid distance) instead of a
                // branch: this conditional move is what clearing the table would give.
                Some(if m < ip { m } else { 0 })
            };
            // A whole 4 KiB page: with the length a constant, the compiler drops most
            // bounds checks of the loop.
            if let Ok(page) = <&[u8; PAGE]>::try_from(src) {
                return run(page.as_slice(), out, PAGE_D_BITS, probe);
            }
            return run(src, out, PAGE_D_BITS, probe);
        }
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
        let dict = &mut self.dict;
        run(src, out, bits, |h, ip| {
            let h = h & (D_SIZE - 1);
            let cand = dict[h];
            dict[h] = base + ip as u32;
            // Entries from earlier calls wrap to a huge position and fail `< ip`.
            let m_pos = cand.wrapping_sub(base) as usize;
            (m_pos < ip && ip - m_pos <= M4_MAX_OFFSET).then_some(m_pos)
        })
    }
}

/// The LZO1X-1 loop. `probe(hash, ip)` records `ip` under `hash` and returns the earlier
/// position stored there if it may be matched (before `ip`, within `M4_MAX_OFFSET`).
#[inline(always)]
fn run(
    src: &[u8],
    out: &mut [u8],
    bits: u32,
    mut probe: impl FnMut(usize, usize) -> Option<usize>,
) -> usize {
    let n = src.len();
    let mut o = Out { buf: out, op: 0 };
    let mut ii = 0; // first byte not yet emitted
    if n > TAIL {
        let ip_end = n - TAIL;
        let mut ip = 1;
        while ip < ip_end {
            let dv = read_u32(src, ip);
            let h = (dv.wrapping_mul(0x1824_429d) >> (32 - bits)) as usize;
            let m_pos = match probe(h, ip) {
                Some(m) if read_u32(src, m) == dv => m,
                _ => {
                    // No match: step further the longer the literal run (skips fast over
                    // incompressible data, as LZO1X-1 does).
                    ip += 1 + ((ip - ii) >> 5);
                    continue;
                }
            };
            o.literals(src, ii, ip);
            // Extend the match 16 bytes at a time, then byte by byte near the end.
            let mut len = 4;
            loop {
                if ip + len + 16 > n {
                    while ip + len < n && src[ip + len] == src[m_pos + len] {
                        len += 1;
                    }
                    break;
                }
                let x = read_u128(src, ip + len) ^ read_u128(src, m_pos + len);
                if x != 0 {
                    len += (x.trailing_zeros() / 8) as usize;
                    break;
                }
                len += 16;
            }
            o.matched(len, ip - m_pos);
            ip += len;
            ii = ip;
        }
    }
    o.literals(src, ii, n);
    for b in [M4_MARKER | 1, 0, 0] {
        o.byte(b);
    }
    o.op
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
        // Across every page-table epoch and its clearing.
        for i in 0..(3 * EPOCHS as u64) {
            used.compress(&page(Fill::Text, 100 + i, 4096), &mut y);
            used.compress(&b, &mut y);
            assert_eq!(x, y, "call {i}");
        }
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
