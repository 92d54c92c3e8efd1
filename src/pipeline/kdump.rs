//! The kdump file's layout for a run: the header fields that come from the vmcore and the
//! options, those that come from the layout once pass 1 has counted the dumpable pages,
//! and the writing of the main header, sub-header and notes.

use super::WriteOptions;
use crate::error::{Error, Result};
use crate::format::kdump::{Header, Layout, Model, Utsname};
use crate::input::Vmcore;
use crate::target::Sink;

/// The header fields that come from the vmcore and the options, before the layout is known.
pub fn base_header(vm: &Vmcore, utsname: Utsname, opts: &WriteOptions) -> Header {
    Header {
        model: if vm.elf.class.is_64() {
            Model::Lp64
        } else {
            Model::Ilp32Packed
        },
        endian: vm.elf.endian,
        utsname,
        crashtime: vm.info.crashtime().unwrap_or(0),
        status: opts.codec.flag(),
        block_size: vm.page_size as u32,
        sub_hdr_size: 0,
        bitmap_blocks: 0,
        max_mapnr: 0,
        nr_cpus: vm.nr_cpus,
        phys_base: crate::arch::Machine::from_e_machine(vm.elf.machine)
            .map_or(0, |m| m.header_phys_base(&vm.info)),
        dump_level: opts.level.0 as i32,
        split: None,
        offset_vmcoreinfo: 0,
        size_vmcoreinfo: 0,
        offset_note: 0,
        size_note: 0,
        offset_eraseinfo: 0,
        size_eraseinfo: 0,
    }
}

/// The file's layout for `num_dumpable` pages of `vm`, and the header fields it decides
/// (`range`: the pfns of one file of a split set).
pub(super) fn lay_out(
    vm: &Vmcore,
    header: &mut Header,
    num_dumpable: u64,
    range: Option<(u64, u64)>,
) -> Result<Layout> {
    let ps = vm.page_size as u64;
    let max_mapnr = vm.max_mapnr();
    let notes = &vm.elf.notes;
    let layout = Layout::new(
        header.model,
        ps,
        max_mapnr,
        notes.len() as u64,
        num_dumpable,
    );
    header.block_size = ps as u32;
    header.max_mapnr = max_mapnr;
    header.split = range;
    header.sub_hdr_size = u32::try_from(layout.sub_hdr_blocks)
        .map_err(|_| Error::bad_input("the notes are too large for a kdump header"))?;
    header.bitmap_blocks = u32::try_from(layout.bitmap_blocks()).map_err(|_| {
        Error::unsupported(format!(
            "{max_mapnr} page frames need more bitmap blocks than the kdump header can count"
        ))
    })?;
    header.offset_note = layout.sub_header_offset() + header.model.sub_header_size() as u64;
    header.size_note = notes.len() as u64;
    header.offset_vmcoreinfo = header.offset_note + vm.vmcoreinfo_at.0 as u64;
    header.size_vmcoreinfo = vm.vmcoreinfo_at.1 as u64;
    Ok(layout)
}

/// Writes the main header, the sub-header with the vmcore's notes after it, and reserves
/// room for `described` page descriptors.
pub(super) fn write_headers(
    sink: &mut dyn Sink,
    header: &Header,
    layout: &Layout,
    notes: &[u8],
    described: u64,
) -> Result<()> {
    sink.write_at(0, &header.main_bytes())?;
    let mut sub = header.sub_bytes();
    sub.extend_from_slice(notes);
    sink.write_at(layout.sub_header_offset(), &sub)?;
    sink.reserve(
        layout.desc_offset(),
        described * crate::format::kdump::PAGE_DESC_SIZE,
    )
}
