//! `-E`: the kept memory as an ELF core file (see `format::elf` for the layout). Two
//! passes: the first decides page by page what is kept (the filter's bitmap, then a read
//! of every kept page when zero pages are excluded, as the program headers come before the
//! data), the second copies the segments' bytes. One thread: this is a compatibility
//! format, not the fast path.

use super::plan::bitmap2;
use super::{Dumped, Stats, WRITE_BUFFER, WriteOptions, cycles};
use crate::error::{Error, ErrorKind, Result};
use crate::filter::{Filter, is_zero_page};
use crate::format::elf::{ElfLayout, FLAG_INCOMPLETE, SegmentBuilder};
use crate::input::{Memory, PhysPages, Vmcore};
use crate::report::Progress;
use crate::target::{SeqWriter, Sink};

/// Writes an ELF dump of `vm` (`-E`) to `sink`: the PT_LOADs of the kept pages, runs of
/// left-out pages cut out of the segments.
pub fn write_elf(
    vm: &mut Vmcore,
    filter: &mut Filter,
    sink: &mut dyn Sink,
    opts: &WriteOptions,
) -> Result<Dumped> {
    if !vm.elf.class.is_64() {
        return Err(Error::unsupported(
            "-E writes ELF64 files; this vmcore is ELF32 (write a kdump-compressed file instead)",
        ));
    }
    let ps = vm.page_size as u64;
    let mut mem = vm.memory.duplicate()?;
    let mut stats = Stats {
        max_mapnr: vm.max_mapnr(),
        ..Stats::default()
    };
    let layout = lay_out(vm, filter, &mut mem, opts, &mut stats)?;
    let (endian, machine) = (vm.elf.endian, vm.elf.machine);
    sink.write_at(0, &layout.header_bytes(endian, machine, 0))?;
    sink.write_at(layout.phdr_offset(), &layout.phdr_bytes(endian))?;
    sink.write_at(layout.notes_offset(), &vm.elf.notes)?;

    // Pass 2: the segments' bytes, in program header order.
    let total: u64 = layout
        .segments
        .iter()
        .map(|s| s.file_size.div_ceil(ps))
        .sum();
    let mut progress = Progress::new("Copying data", total);
    let mut data = SeqWriter::new(layout.data_offset(), WRITE_BUFFER);
    let zeros = vec![0u8; vm.page_size];
    let mut read_error = None;
    let copied = crate::error::catch("the writer thread", || -> Result<()> {
        for s in &layout.segments {
            crate::signals::check()?;
            let (mut pa, end) = (s.phys_start, s.phys_start + s.file_size);
            while pa < end {
                let off = (pa % ps) as usize;
                let n = (ps - off as u64).min(end - pa) as usize;
                crate::fault!(Read);
                match mem.read_page(pa / ps) {
                    Ok(page) => data.push(sink, &page[off..off + n])?,
                    Err(e) if e.kind() == ErrorKind::Io => {
                        stats.unreadable += 1;
                        read_error.get_or_insert_with(|| e.to_string());
                        data.push(sink, &zeros[..n])?;
                    }
                    Err(e) => return Err(e),
                }
                pa += n as u64;
                progress.page(ps);
            }
        }
        data.flush(sink)
    });
    stats.file_size = data.position();
    stats.lost = stats.unreadable;
    let failure = match copied {
        Ok(()) if stats.unreadable == 0 => None,
        Ok(()) => Some(Error::new(
            ErrorKind::Io,
            format!(
                "{} pages could not be read and are zeros in the ELF dump (first: {})",
                stats.unreadable,
                read_error.as_deref().unwrap_or("unknown error")
            ),
        )),
        Err(e) if !sink.seekable() => return Err(e),
        Err(e) => {
            let _ = data.flush(sink);
            Some(e)
        }
    };
    if failure.is_some() {
        // What an ELF dump has for "incomplete"; the lost count is not per page here.
        if let Err(e) = sink.write_at(0, &layout.header_bytes(endian, machine, FLAG_INCOMPLETE)) {
            crate::warn!("cannot mark the dump incomplete in its ELF header: {e}");
        }
    }
    sink.finish()?;
    progress.finish();
    Ok(Dumped { stats, failure })
}

/// Pass 1: what is kept (counted in `stats`), and so where the segments are.
fn lay_out(
    vm: &Vmcore,
    filter: &mut Filter,
    mem: &mut Memory,
    opts: &WriteOptions,
    stats: &mut Stats,
) -> Result<ElfLayout> {
    let ps = vm.page_size as u64;
    let max_mapnr = vm.max_mapnr();
    let per_cycle = opts.pfns_per_cycle.max(64) / 64 * 64;
    let mut builders: Vec<SegmentBuilder> = vm
        .elf
        .loads
        .iter()
        .map(|l| SegmentBuilder::new(*l, ps))
        .collect();
    filter.begin_pass();
    for (start, end) in cycles(max_mapnr, per_cycle) {
        crate::signals::check()?;
        if !filter.has_memory(start, end) {
            continue;
        }
        stats.pages_in_input += filter.bitmap1(start, end).count();
        let mut kept = bitmap2(filter, start, end);
        if opts.level.excludes_zero() {
            for pfn in kept.clone().into_iter_set() {
                // A page that cannot be read is kept: the copy will say so.
                if mem.read_page(pfn).is_ok_and(is_zero_page) {
                    kept.set_range(pfn, pfn + 1, false);
                    stats.zero += 1;
                }
            }
        }
        stats.dumpable += kept.count();
        for b in &mut builders {
            let (first, last) = b.pfns();
            for pfn in first.max(start)..last.min(end) {
                b.page(pfn, kept.get(pfn));
            }
        }
    }
    stats.excluded = filter.counts();
    let segments = builders
        .into_iter()
        .flat_map(|mut b| {
            b.finish();
            b.segments
        })
        .collect();
    Ok(ElfLayout {
        segments,
        notes_size: vm.elf.notes.len() as u64,
    })
}
