//! What the running kernel says in /proc/iomem: the crashkernel reservation, which a dump
//! of the live system (`--mem-usage` on /proc/kcore) would not contain.

/// The `Crash kernel` ranges of /proc/iomem, as physical `[start, end)` (none when the
/// file cannot be read).
pub fn crash_kernel_ranges() -> Vec<(u64, u64)> {
    match std::fs::read_to_string("/proc/iomem") {
        Ok(text) => parse_crash_kernel(&text),
        Err(_) => Vec::new(),
    }
}

/// The `Crash kernel` ranges of the text of /proc/iomem ("start-end : name" lines, the
/// end inclusive, nested ones indented), as `[start, end)`.
fn parse_crash_kernel(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter(|l| l.trim_end().ends_with(": Crash kernel"))
        .filter_map(|l| {
            let (range, _) = l.trim().split_once(" : ")?;
            let (a, b) = range.split_once('-')?;
            let a = u64::from_str_radix(a, 16).ok()?;
            let b = u64::from_str_radix(b, 16).ok()?;
            (a <= b).then_some((a, b + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_kernel_ranges_are_found_at_any_depth() {
        let text = "\
00000000-00000fff : Reserved
00100000-bffdffff : System RAM
  01000000-01ffffff : Kernel code
  a5000000-b4ffffff : Crash kernel
100000000-13fffffff : System RAM
  13f000000-13fffffff : Crash kernel
zzzz-0fff : Crash kernel
2000-1000 : Crash kernel
";
        assert_eq!(
            parse_crash_kernel(text),
            vec![(0xa500_0000, 0xb500_0000), (0x1_3f00_0000, 0x1_4000_0000)]
        );
    }
}
