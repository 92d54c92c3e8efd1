//! `--reassemble`: the files of a `--split` set back into one dump, byte for byte the file
//! a single run would have written. Every split file has the whole dump's header, notes,
//! bitmaps and layout; each holds the descriptors and data of its own pfn range, with its
//! own copy of the shared zero page at the start of the data area. So: the headers, notes
//! and bitmaps come from the first file (split fields cleared; the main header from the
//! first file marked incomplete, else the last), the descriptors are concatenated in pfn
//! order, the page data is copied behind one zero page, and offsets are rewritten.

use std::path::PathBuf;

use super::{Stats, WRITE_BUFFER};
use crate::error::{Context, Error, Result};
use crate::format::kdump::{KDUMP_SUB_HEADER, Layout, PAGE_DESC_SIZE, PageDesc, STATUS_INCOMPLETE};
use crate::input::kdump::KdumpFile;
use crate::target::{SeqWriter, Sink};

/// One file of the set: its pfn range, the file, and its name for messages.
type Part = ((u64, u64), KdumpFile, String);

/// Opens the parts, in pfn order, checking that they are one whole set.
fn open_parts(parts: &[PathBuf]) -> Result<Vec<Part>> {
    let mut files = Vec::new();
    for p in parts {
        let shown = p.display();
        let f = std::fs::File::open(p).map_err(|e| Error::io(e, format!("cannot open {shown}")))?;
        let d = KdumpFile::open(f).context(&shown)?;
        let Some(range) = d.header.split else {
            return Err(Error::bad_input(format!(
                "{shown} is not part of a split dump"
            )));
        };
        files.push((range, d, shown.to_string()));
    }
    files.sort_by_key(|(r, _, _)| *r);
    let Some((_, first, name)) = files.first() else {
        return Err(Error::usage("--reassemble needs the files of a split dump"));
    };
    let first = &first.header;
    let (bs, max_mapnr) = (first.block_size, first.max_mapnr);
    if first.sub_hdr_size == 0 {
        return Err(Error::bad_input(format!("{name} has no sub-header")));
    }
    let mut expect = 0;
    for ((start, end), d, shown) in &files {
        let h = &d.header;
        if *start != expect || end < start {
            return Err(Error::bad_input(format!(
                "{shown} holds pfns {start:#x}-{end:#x}, but the set continues at {expect:#x} (a part missing or repeated?)"
            )));
        }
        if h.block_size != bs
            || h.max_mapnr != max_mapnr
            || h.bitmap_blocks != first.bitmap_blocks
            || h.sub_hdr_size != first.sub_hdr_size
            || (h.model, h.endian) != (first.model, first.endian)
        {
            return Err(Error::bad_input(format!(
                "{shown} is not from the same dump as the other parts"
            )));
        }
        expect = *end;
    }
    if expect != max_mapnr {
        return Err(Error::bad_input(format!(
            "the parts end at pfn {expect:#x}, not at the dump's end {max_mapnr:#x}: a part is missing"
        )));
    }
    Ok(files)
}

/// Writes the headers, the notes and the bitmaps of the set (`files`, at least one) and
/// returns the layout of the whole dump.
fn copy_headers(files: &[Part], sink: &mut dyn Sink) -> Result<Layout> {
    let base = &files[0].1;
    let first = &base.header;
    let bs = first.block_size;
    let main_from = files
        .iter()
        .find(|(_, d, _)| d.header.status & STATUS_INCOMPLETE != 0)
        .unwrap_or(&files[files.len() - 1]);
    let (model, endian) = (first.model, first.endian);
    let main = main_from.1.raw(0, model.header_size())?;
    sink.write_at(0, &main)?;
    // The sub-header block, then the rest of its blocks (the notes) and the bitmaps, copied
    // a piece at a time: their sizes come from the input.
    let mut sub = base.raw(bs, bs as usize)?;
    let f = &KDUMP_SUB_HEADER;
    for field in [
        f.split,
        f.start_pfn,
        f.end_pfn,
        f.start_pfn_64,
        f.end_pfn_64,
    ] {
        field.put(model, endian, &mut sub, 0);
    }
    sink.write_at(bs, &sub)?;
    let layout = first.layout(base.dumpable());
    let mut at = 2 * bs;
    while at < layout.desc_offset() {
        let n = (layout.desc_offset() - at).min(WRITE_BUFFER as u64);
        sink.write_at(at, &base.raw(at, n as usize)?)?;
        at += n;
    }
    Ok(layout)
}

/// Writes the split dump `parts` (in any order) to `sink` as the one dump a run without
/// `--split` writes.
pub fn reassemble(parts: &[PathBuf], sink: &mut dyn Sink) -> Result<Stats> {
    let files = open_parts(parts)?;
    let layout = copy_headers(&files, sink)?;
    let first = &files[0].1.header;
    let (bs, max_mapnr, num_dumpable) = (layout.block_size, layout.max_mapnr, layout.num_dumpable);
    let (desc_at, data_at) = (layout.desc_offset(), layout.data_offset());
    // Descriptors in pfn order; data behind one shared zero page.
    let zero_blob = first.dump_level & 1 != 0;
    let mut descs = SeqWriter::new(desc_at, WRITE_BUFFER);
    let mut data = SeqWriter::new(data_at, WRITE_BUFFER);
    if zero_blob {
        data.push(sink, &vec![0u8; bs as usize])?;
    }
    let mut stats = Stats {
        max_mapnr,
        dumpable: num_dumpable,
        ..Stats::default()
    };
    let mut bytes = [0u8; PAGE_DESC_SIZE as usize];
    for ((start, end), d, shown) in &files {
        for pfn in *start..*end {
            let Some(mut desc) = d.descriptor(pfn).context(shown)? else {
                continue;
            };
            if desc.offset == 0 {
                stats.lost += 1;
            } else if zero_blob && desc.offset == data_at && desc.flags == 0 {
                stats.zero += 1;
            } else {
                let page = d.raw(desc.offset, desc.size as usize).context(shown)?;
                desc = PageDesc {
                    offset: data.position(),
                    ..desc
                };
                data.push(sink, &page)?;
                if desc.flags == 0 {
                    stats.raw += 1;
                } else {
                    stats.compressed += 1;
                }
            }
            desc.write(first.endian, &mut bytes);
            descs.push(sink, &bytes)?;
        }
    }
    descs.flush(sink)?;
    stats.file_size = data.position();
    data.flush(sink)?;
    sink.finish()?;
    Ok(stats)
}
