//! Endian-aware, bounds-checked reads from untrusted byte slices. Every accessor returns an
//! `Option` so a short or malformed buffer becomes an error at the caller, never a panic.

/// Byte order of the input (and of the dump we write: the crashed machine's own order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Least significant byte first (x86, arm64 as run by Linux, riscv).
    Little,
    /// Most significant byte first (s390x, ppc64).
    Big,
}

impl Endian {
    /// The u16 at `off`; `None` if `b` is too short.
    pub fn u16(self, b: &[u8], off: usize) -> Option<u16> {
        let a: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        })
    }

    /// The u32 at `off`; `None` if `b` is too short.
    pub fn u32(self, b: &[u8], off: usize) -> Option<u32> {
        let a: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        })
    }

    /// The u64 at `off`; `None` if `b` is too short.
    pub fn u64(self, b: &[u8], off: usize) -> Option<u64> {
        let a: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        })
    }

    /// The `n`-byte (1 to 8) unsigned integer at `off`, as C reads a field of that size;
    /// `None` if `b` is too short or `n` is not a size.
    pub fn uint(self, b: &[u8], off: usize, n: usize) -> Option<u64> {
        let bytes = b
            .get(off..off.checked_add(n)?)
            .filter(|_| (1..=8).contains(&n))?;
        let mut a = [0u8; 8];
        Some(match self {
            Endian::Little => {
                a[..n].copy_from_slice(bytes);
                u64::from_le_bytes(a)
            }
            Endian::Big => {
                a[8 - n..].copy_from_slice(bytes);
                u64::from_be_bytes(a)
            }
        })
    }

    /// Stores `v` at `off` (`out` must hold it).
    pub fn put_u16(self, out: &mut [u8], off: usize, v: u16) {
        let bytes = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        out[off..off + 2].copy_from_slice(&bytes);
    }

    /// Stores `v` at `off` (`out` must hold it).
    pub fn put_u32(self, out: &mut [u8], off: usize, v: u32) {
        let bytes = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        out[off..off + 4].copy_from_slice(&bytes);
    }

    /// Stores `v` at `off` (`out` must hold it).
    pub fn put_u64(self, out: &mut [u8], off: usize, v: u64) {
        let bytes = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        out[off..off + 8].copy_from_slice(&bytes);
    }
}

/// A zeroed buffer of `len` bytes whose size came from an input: a failed allocation is an
/// error naming `what`, not an abort (the capture kernel may have little memory, and a
/// `ulimit -v` or cgroup limit makes large allocations fail).
pub fn zeroed(len: usize, what: &str) -> crate::Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        crate::Error::bad_input(format!(
            "{what} would need {len} bytes of memory, more than this process can have"
        ))
    })?;
    v.resize(len, 0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders_and_refuses_short_buffers() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(Endian::Little.u32(&b, 0), Some(0x0403_0201));
        assert_eq!(Endian::Big.u32(&b, 0), Some(0x0102_0304));
        assert_eq!(Endian::Little.u64(&b, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(Endian::Little.u64(&b, 1), None);
        assert_eq!(Endian::Little.u16(&b, usize::MAX), None);
        assert_eq!(Endian::Big.u32(&b, 4), Some(0x0506_0708));
        assert_eq!(Endian::Little.uint(&b, 1, 3), Some(0x04_0302));
        assert_eq!(Endian::Big.uint(&b, 1, 3), Some(0x02_0304));
        assert_eq!(Endian::Big.uint(&b, 0, 8), Endian::Big.u64(&b, 0));
        assert_eq!(Endian::Little.uint(&b, 6, 3), None);
        assert_eq!(Endian::Little.uint(&b, 0, 0), None);
    }
}
