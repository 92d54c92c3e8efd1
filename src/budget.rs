//! How much memory a run may use, decided once at start from what the machine has (the
//! capture kernel often has 100–200 MiB in all), never from the size of the vmcore.

/// makedumpfile's default and maximum per-cycle bitmap: 4 MiB, 32 Mi pfns per cycle.
pub const MAX_CYCLE_BITMAP: u64 = 4 << 20;
/// The smallest cycle bitmap: 8 KiB (64 Ki pfns, 256 MiB of 4 KiB pages).
pub const MIN_CYCLE_BITMAP: u64 = 8 << 10;
/// Pass-1 bitmaps are kept for pass 2 up to this much (and 10% of available memory).
pub const MAX_BITMAP_CACHE: u64 = 16 << 20;

/// What one more reading/compressing thread costs: its input window (4 MiB mapped), its
/// stack, two batches of pages and a codec context. Measured: 2–4 MiB resident, up to 8
/// MiB of address space.
pub const PER_THREAD: u64 = 8 << 20;
/// What a run needs besides its bitmaps and threads (binary, mem_map batches, buffers).
pub const BASE: u64 = 12 << 20;

/// `NAME:  123 kB` from a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
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
}

/// `MemAvailable` from /proc/meminfo, in bytes (falls back to `MemFree`).
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&text, "MemAvailable:").or_else(|| kib_field(&text, "MemFree:"))
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn stat_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Room left under this process's cgroup memory limit (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), counting only anonymous memory as used: page cache is
/// reclaimed before the limit bites.
fn cgroup_headroom() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let (limit, stat, anon_key) = if controllers.is_empty() {
            let dir = format!("/sys/fs/cgroup{path}");
            (
                format!("{dir}/memory.max"),
                format!("{dir}/memory.stat"),
                "anon",
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            let dir = format!("/sys/fs/cgroup/memory{path}");
            (
                format!("{dir}/memory.limit_in_bytes"),
                format!("{dir}/memory.stat"),
                "total_rss",
            )
        } else {
            continue;
        };
        let Some(limit) = read_u64(&limit) else {
            continue; // "max", or not mounted here
        };
        if limit >= 1 << 60 {
            continue; // v1's "no limit"
        }
        let used = std::fs::read_to_string(&stat)
            .ok()
            .and_then(|t| stat_field(&t, anon_key))
            .unwrap_or(0);
        return Some(limit.saturating_sub(used));
    }
    None
}

/// Room left under `ulimit -v` (RLIMIT_AS).
fn address_space_headroom() -> Option<u64> {
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_AS).ok()?;
    if soft == nix::sys::resource::RLIM_INFINITY {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(soft.saturating_sub(kib_field(&status, "VmSize:").unwrap_or(0)))
}

/// The memory a run may count on, and what limits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Bytes the run may use.
    pub bytes: u64,
    /// What sets the limit (for messages): "available memory", the cgroup's or the address-space limit.
    pub by: &'static str,
}

/// The tightest of free memory, the cgroup limit and the address-space limit.
pub fn limit() -> Option<Limit> {
    [
        (mem_available(), "available memory"),
        (cgroup_headroom(), "the cgroup's memory limit"),
        (
            address_space_headroom(),
            "the address-space limit (ulimit -v)",
        ),
    ]
    .into_iter()
    .filter_map(|(b, by)| b.map(|bytes| Limit { bytes, by }))
    .min_by_key(|l| l.bytes)
}

/// How many threads fit `limit` next to the bitmaps of `budget` and `held` bytes more
/// (`-e`'s vmemmap tracking, up to the bitmap cache's size again); at least one.
pub fn threads_within(requested: usize, budget: &Budget, held: u64, limit: Option<Limit>) -> usize {
    let Some(limit) = limit else {
        return requested.max(1);
    };
    let fixed = BASE + 2 * budget.cycle_bitmap + budget.bitmap_cache + held;
    let fit = limit.bytes.saturating_sub(fixed) / PER_THREAD;
    requested.clamp(1, usize::try_from(fit).unwrap_or(usize::MAX).max(1))
}

/// How the memory of a run is spent on bitmaps.
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
        assert!(limit().is_some_and(|l| l.bytes > 0));
    }

    #[test]
    fn threads_shrink_to_fit_a_limit() {
        let tight = Some(Limit {
            bytes: 40 << 20,
            by: "test",
        });
        let b = Budget::new(tight.map(|l| l.bytes), None);
        let n = threads_within(8, &b, 0, tight);
        assert!((1..8).contains(&n), "{n}");
        assert!(BASE + 2 * b.cycle_bitmap + b.bitmap_cache + n as u64 * PER_THREAD <= 40 << 20);
        // -e holds up to another bitmap cache: fewer threads.
        let e = threads_within(8, &b, b.bitmap_cache, tight);
        assert!(e < n, "{e} {n}");
        assert!(
            BASE + 2 * b.cycle_bitmap + 2 * b.bitmap_cache + e as u64 * PER_THREAD <= 40 << 20
                || e == 1
        );
        let none = Some(Limit {
            bytes: 1 << 20,
            by: "test",
        });
        assert_eq!(threads_within(8, &b, 0, none), 1);
        assert_eq!(threads_within(8, &b, 0, None), 8);
        let roomy = Some(Limit {
            bytes: 16 << 30,
            by: "test",
        });
        assert_eq!(
            threads_within(8, &Budget::new(Some(16 << 30), None), 0, roomy),
            8
        );
    }
}
