//! How much memory a run may use, decided once at start from what the machine has (the
//! capture kernel often has 100–200 MiB in all), never from the size of the vmcore.

/// makedumpfile's default and maximum per-cycle bitmap: 4 MiB, 32 Mi pfns per cycle.
pub const MAX_CYCLE_BITMAP: u64 = 4 << 20;
/// The smallest cycle bitmap: 8 KiB (64 Ki pfns, 256 MiB of 4 KiB pages).
pub const MIN_CYCLE_BITMAP: u64 = 8 << 10;
/// Pass-1 bitmaps are kept for pass 2 up to this much (and 10% of available memory).
pub const MAX_BITMAP_CACHE: u64 = 16 << 20;

/// `MemAvailable` from /proc/meminfo, in bytes (falls back to `MemFree`).
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
    };
    field("MemAvailable:").or_else(|| field("MemFree:"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Bytes of one cycle's bitmap (pfns per cycle = 8 × this).
    pub cycle_bitmap: u64,
    /// Bytes of pass-1 bitmaps that may be kept to avoid reading mem_map twice.
    pub bitmap_cache: u64,
}

impl Budget {
    /// `cyclic_buffer_kib` is `--cyclic-buffer` (it wins, within the bounds); otherwise
    /// the cycle bitmap is 4 MiB or less when memory is short (both bitmaps of a cycle
    /// within 60% of what is available, as makedumpfile sizes it).
    pub fn new(available: Option<u64>, cyclic_buffer_kib: Option<u64>) -> Budget {
        let avail = available.unwrap_or(256 << 20);
        let cycle_bitmap = match cyclic_buffer_kib {
            Some(kib) => kib.saturating_mul(1024),
            None => (avail / 10 * 6 / 2).min(MAX_CYCLE_BITMAP),
        }
        .clamp(
            MIN_CYCLE_BITMAP,
            MAX_CYCLE_BITMAP.max(cyclic_buffer_kib.unwrap_or(0) * 1024),
        );
        Budget {
            cycle_bitmap,
            bitmap_cache: (avail / 10).min(MAX_BITMAP_CACHE),
        }
    }

    /// pfns per cycle: a multiple of 64 so cycle bitmaps are whole words and bytes.
    pub fn pfns_per_cycle(&self) -> u64 {
        (self.cycle_bitmap * 8).max(64) / 64 * 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_memory_and_override() {
        let big = Budget::new(Some(16 << 30), None);
        assert_eq!(big.cycle_bitmap, 4 << 20);
        assert_eq!(big.pfns_per_cycle(), 32 << 20);
        assert_eq!(big.bitmap_cache, 16 << 20);
        let small = Budget::new(Some(8 << 20), None);
        assert!(small.cycle_bitmap < 4 << 20 && small.cycle_bitmap >= MIN_CYCLE_BITMAP);
        assert!(small.bitmap_cache <= 1 << 20);
        assert_eq!(
            Budget::new(Some(16 << 30), Some(1024)).cycle_bitmap,
            1 << 20
        );
        assert_eq!(
            Budget::new(Some(16 << 30), Some(1)).cycle_bitmap,
            MIN_CYCLE_BITMAP
        );
        // A larger --cyclic-buffer than the default is honoured.
        assert_eq!(
            Budget::new(Some(16 << 30), Some(8192)).cycle_bitmap,
            8 << 20
        );
        assert!(mem_available().is_some_and(|m| m > 0));
    }
}
