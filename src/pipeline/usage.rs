//! `--mem-usage`: what a dump of the running kernel would hold, from /proc/kcore. The
//! pages of each class at dump level 31 (a mem_map pass, then a read of every remaining
//! page for the zero check), and, beyond makedumpfile, an estimate of the dump's size per
//! codec from compressing a sample of those pages.

use super::cycles;
use super::plan::bitmap2;
use crate::codec::{Codec, Compressor};
use crate::error::Result;
use crate::filter::{ClassCounts, Filter, is_zero_page};
use crate::format::kdump::{Layout, Model};
use crate::input::{PhysPages, Vmcore};

/// Pages compressed per codec for the estimate, at most.
const SAMPLES: usize = 4096;

/// What `--mem-usage` found.
pub struct Usage {
    /// Bytes per page.
    pub page_size: u64,
    /// Pages of memory (1st bitmap).
    pub total: u64,
    /// Pages found all zero.
    pub zero: u64,
    /// Pages a -d 31 dump would leave out, per class.
    pub classes: ClassCounts,
    /// Pages a -d 31 dump would store (not zero, not excluded).
    pub kept: u64,
    /// Estimated size of a -d 31 dump file per codec (none: stored raw).
    pub estimates: Vec<(Codec, u64)>,
    /// Pages compressed for the estimates.
    pub sampled: usize,
    /// Pages covered by more than one segment (kcore maps the kernel image twice: in the
    /// direct map and as kernel text). Counted once here; makedumpfile counts them twice.
    pub overlap: u64,
}

/// `repeated`: pages the input lists twice (see `Usage::overlap`).
pub fn mem_usage(
    vm: &mut Vmcore,
    filter: &mut Filter,
    pfns_per_cycle: u64,
    repeated: u64,
) -> Result<Usage> {
    let ps = vm.page_size as u64;
    let max_mapnr = vm.max_mapnr();
    let codecs = [Codec::Lzo, Codec::Zlib, Codec::Snappy, Codec::Zstd];
    let mut compressors = codecs
        .iter()
        .map(|&c| Compressor::new(c, vm.page_size))
        .collect::<Result<Vec<_>>>()?;
    let mut mem = vm.memory.duplicate()?;
    let (mut total, mut zero, mut kept) = (0u64, 0u64, 0u64);
    // Stored bytes per codec of every `stride`-th kept page; halved when full.
    let mut samples: Vec<[u32; 4]> = Vec::new();
    let mut stride = 1u64;
    filter.begin_pass();
    for (start, end) in cycles(max_mapnr, pfns_per_cycle.max(64) / 64 * 64) {
        crate::signals::check()?;
        if !filter.has_memory(start, end) {
            continue;
        }
        total += filter.bitmap1(start, end).count();
        for pfn in bitmap2(filter, start, end).into_iter_set() {
            let Ok(page) = mem.read_page(pfn) else {
                kept += 1; // unreadable here, but a dump would try to keep it
                continue;
            };
            if is_zero_page(page) {
                zero += 1;
                continue;
            }
            kept += 1;
            if kept % stride != 0 {
                continue;
            }
            let mut sizes = [0u32; 4];
            for (size, c) in sizes.iter_mut().zip(&mut compressors) {
                *size = c.compress(page)?.map_or(ps, |d| d.len() as u64) as u32;
            }
            samples.push(sizes);
            if samples.len() == 2 * SAMPLES {
                samples = samples.into_iter().step_by(2).collect();
                stride *= 2;
            }
        }
    }
    let classes = filter.counts();
    let dumpable = zero + kept;
    let layout = Layout::new(
        Model::Lp64,
        ps,
        max_mapnr,
        vm.elf.notes.len() as u64,
        dumpable,
    );
    let fixed = layout.data_offset() + if zero > 0 { ps } else { 0 };
    let mut estimates = vec![(Codec::None, fixed + kept * ps)];
    for (i, &c) in codecs.iter().enumerate() {
        let sum: u64 = samples.iter().map(|s| u64::from(s[i])).sum();
        let mean = sum.checked_div(samples.len() as u64).unwrap_or(ps);
        estimates.push((c, fixed + kept * mean));
    }
    Ok(Usage {
        page_size: ps,
        total,
        zero,
        classes,
        kept,
        estimates,
        sampled: samples.len(),
        overlap: repeated,
    })
}

/// makedumpfile's table, then the estimates.
pub fn report(u: &Usage) -> String {
    let c = &u.classes;
    let kern_data = u.total.saturating_sub(u.zero + c.total());
    let mut s = String::new();
    s += "\nTYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION\n";
    s += "----------------------------------------------------------------------\n";
    s += &format!("ZERO\t\t{:<16}\tyes\t\tPages filled with zero\n", u.zero);
    s += &format!(
        "NON_PRI_CACHE\t{:<16}\tyes\t\tCache pages without private flag\n",
        c.cache
    );
    s += &format!(
        "PRI_CACHE\t{:<16}\tyes\t\tCache pages with private flag\n",
        c.cache_private
    );
    s += &format!("USER\t\t{:<16}\tyes\t\tUser process pages\n", c.user);
    s += &format!("FREE\t\t{:<16}\tyes\t\tFree pages\n", c.free);
    s += &format!("KERN_DATA\t{kern_data:<16}\tno\t\tDumpable kernel data \n");
    s += &format!("\npage size:\t\t{:<16}\n", u.page_size);
    s += &format!("Total pages on system:\t{:<16}\n", u.total);
    s += &format!(
        "Total size on system:\t{:<16} Byte\n",
        u.total * u.page_size
    );
    if u.overlap > 0 {
        s += &format!(
            "(Pages in two segments, counted once here and twice by makedumpfile: {})\n",
            u.overlap
        );
    }
    s += &format!(
        "\nEstimated size of a -d 31 dump ({} pages kept, sizes from {} of them compressed):\n",
        u.kept, u.sampled
    );
    for (codec, bytes) in &u.estimates {
        let flag = match codec {
            Codec::None => "(none)",
            Codec::Lzo => "-l",
            Codec::Zlib => "-c",
            Codec::Snappy => "-p",
            Codec::Zstd => "-z",
        };
        s += &format!(
            "{flag:<7} {:<7} {bytes:>16} Byte ({:.1} MiB)\n",
            codec.name(),
            *bytes as f64 / (1 << 20) as f64
        );
    }
    s
}
