//! The kernel log from the lockless printk ring buffer (Linux 5.10+) or from the older
//! `printk_log` records in `log_buf` (3.5 to 5.9), located and decoded through VMCOREINFO
//! alone, printed as makedumpfile's `--dump-dmesg` prints it: `[%5u.%06u] text`,
//! with the caller column (`[      T0] `) when the kernel exports the caller id,
//! continuation lines indented to the text, unprintable bytes as `\xNN` (`\xffffffNN` from
//! 0x80 on, as makedumpfile's signed chars print).
//!
//! Every size and index comes from a kernel that just crashed: ring sizes are bounded,
//! positions are taken modulo the ring, and a record that does not fit is skipped.

use super::vmcoreinfo::VmcoreInfo;
use crate::arch::KernelMemory;
use crate::input::bytes::Endian;

/// Descriptor state bits and id mask of `state_var` (64-bit `unsigned long`).
const SV_STATE_SHIFT: u32 = 62;
const ID_MASK: u64 = !(3u64 << SV_STATE_SHIFT);
const COMMITTED: u64 = 1;
const FINALIZED: u64 = 2;
/// The largest rings accepted: 2^22 descriptors, 2^28 bytes of text (the kernel's maximum
/// log_buf_len is 2^25).
const MAX_COUNT_BITS: u32 = 22;
const MAX_SIZE_BITS: u32 = 28;

/// A member's offset: inside a structure, so below `MAX_STRUCT` (sums of a few offsets
/// and sizes then cannot overflow).
fn off(info: &VmcoreInfo, name: &str) -> Result<u64, String> {
    let v = info
        .offset(name)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| format!("VMCOREINFO has no OFFSET({name})"))?;
    if v >= MAX_STRUCT {
        return Err(format!("VMCOREINFO OFFSET({name})={v} is implausible"));
    }
    Ok(v)
}

fn size(info: &VmcoreInfo, name: &str) -> Result<u64, String> {
    let v = info
        .size(name)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| format!("VMCOREINFO has no SIZE({name})"))?;
    if v == 0 || v > MAX_STRUCT {
        return Err(format!("VMCOREINFO SIZE({name})={v} is implausible"));
    }
    Ok(v)
}

/// The kernel's `n`-byte integer (2, 4 or 8) at `at` of `b`, in its byte order `e`; 0
/// past the end.
fn word(e: Endian, b: &[u8], at: u64, n: usize) -> u64 {
    let at = at as usize;
    match n {
        2 => e.u16(b, at).map(u64::from),
        4 => e.u32(b, at).map(u64::from),
        _ => e.u64(b, at),
    }
    .unwrap_or(0)
}

/// The most kernel memory one structure of the log may take (the text ring is at most
/// 2^28 bytes; descriptors and infos are smaller).
const MAX_READ: u64 = 1 << 28;
/// Sizes of the ring's structures beyond these are corrupt VMCOREINFO.
const MAX_STRUCT: u64 = 4096;

/// Reads `len` bytes of kernel memory, refusing absurd sizes.
fn read(km: &mut KernelMemory, va: u64, len: u64, what: &str) -> Result<Vec<u8>, String> {
    if len > MAX_READ {
        return Err(format!(
            "{what} would be {len} bytes: corrupt VMCOREINFO or ring"
        ));
    }
    // Up to 256 MiB, claimed by the crashed kernel's memory: read a piece at a time, so
    // that memory grows only with what the dump really holds (a claim beyond it fails
    // at its first unreadable piece, not after allocating it all).
    const PIECE: u64 = 1 << 20;
    let cannot = || format!("cannot read {what} ({len} bytes at {va:#x})");
    let mut buf = Vec::new();
    let mut piece = vec![0u8; len.min(PIECE) as usize];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(PIECE) as usize;
        let at = va.checked_add(done).ok_or_else(cannot)?;
        km.read(at, &mut piece[..n]).ok_or_else(cannot)?;
        buf.try_reserve(n).map_err(|_| {
            format!("{what} would need {len} bytes of memory, more than this process can have")
        })?;
        buf.extend_from_slice(&piece[..n]);
        done += n as u64;
    }
    Ok(buf)
}

/// Appends one record: the timestamp prefix, the caller column when the kernel exports
/// the caller id (`[      T0] ` for a task's pid, `[      C1] ` for a CPU outside task
/// context: the id's top bit; the column widens for longer ids), then the text with
/// continuation lines indented under it and bytes that are neither printable nor spaces
/// escaped.
fn format_record(out: &mut Vec<u8>, ts_nsec: u64, caller: Option<u32>, text: &[u8]) {
    let mut prefix = format!(
        "[{:5}.{:06}] ",
        ts_nsec / 1_000_000_000,
        ts_nsec % 1_000_000_000 / 1000
    );
    if let Some(id) = caller {
        let kind = if id & CALLER_CPU != 0 { 'C' } else { 'T' };
        let id = format!("{kind}{}", id & !CALLER_CPU);
        prefix += &format!("[{id:>8}] ");
    }
    out.extend_from_slice(prefix.as_bytes());
    for &c in text {
        match c {
            b'\n' => {
                out.push(b'\n');
                out.extend(std::iter::repeat_n(b' ', prefix.len()));
            }
            0x20..=0x7e | b'\t' | 0x0b | 0x0c | b'\r' => out.push(c),
            // makedumpfile formats a (signed) char widened to int: bytes from 0x80 on come
            // out as `\xffffffNN`; scripts that diff the two logs see the same text.
            0x80.. => out.extend_from_slice(format!("\\xffffff{c:02x}").as_bytes()),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'\n');
}

/// The caller id's top bit: the record was logged by a CPU, not a task.
const CALLER_CPU: u32 = 0x8000_0000;

/// The offset of the caller id in a record, if the kernel exports it (always on 5.10+;
/// before, with CONFIG_PRINTK_CALLER only).
fn caller_off(info: &VmcoreInfo, name: &str) -> Result<Option<u64>, String> {
    match info.offset(name) {
        None => Ok(None),
        Some(_) => off(info, name).map(Some),
    }
}

/// The log of whichever ring buffer this kernel has.
pub fn read_log(
    km: &mut KernelMemory,
    info: &VmcoreInfo,
    partial: bool,
) -> Result<Vec<u8>, String> {
    if info.symbol("prb").is_some() {
        return lockless(km, info, partial);
    }
    if info.symbol("log_buf").is_some() {
        return printk_log(km, info, partial);
    }
    Err("VMCOREINFO has neither SYMBOL(prb) nor SYMBOL(log_buf): no kernel log to read".into())
}

fn read_u32(km: &mut KernelMemory, va: u64, what: &str) -> Result<u32, String> {
    km.read_u32(va)
        .ok_or_else(|| format!("cannot read {what} at {va:#x}"))
}

/// The log of a 3.5–5.9 kernel: variable-length `printk_log` records in `log_buf`, from
/// `log_first_idx` (with `partial`, from `clear_idx` when VMCOREINFO has it, as
/// makedumpfile does) to `log_next_idx`; a record of length 0 sends the reader back to
/// the start of the buffer.
pub fn printk_log(
    km: &mut KernelMemory,
    info: &VmcoreInfo,
    partial: bool,
) -> Result<Vec<u8>, String> {
    let e = km.endian();
    let sym = |name: &str| {
        info.symbol(name)
            .ok_or_else(|| format!("VMCOREINFO has no SYMBOL({name})"))
    };
    let buf_va = km
        .read_u64(sym("log_buf")?)
        .ok_or("cannot read the log_buf pointer")?;
    let len = u64::from(read_u32(km, sym("log_buf_len")?, "log_buf_len")?);
    let first = match info.symbol("clear_idx").filter(|_| partial) {
        Some(at) => read_u32(km, at, "clear_idx")?,
        None => read_u32(km, sym("log_first_idx")?, "log_first_idx")?,
    };
    let first = u64::from(first);
    let next = u64::from(read_u32(km, sym("log_next_idx")?, "log_next_idx")?);
    let hdr = size(info, "printk_log")?;
    let ts_off = off(info, "printk_log.ts_nsec")?;
    let len_off = off(info, "printk_log.len")?;
    let text_off = off(info, "printk_log.text_len")?;
    let caller = caller_off(info, "printk_log.caller_id")?;
    let buf = read(km, buf_va, len, "the log buffer")?;
    let mut out = Vec::new();
    let mut idx = first;
    // Every record takes at least a header: a corrupt index cannot make this loop forever.
    for _ in 0..=len / hdr + 1 {
        if idx == next {
            return Ok(out);
        }
        let rec_len = if idx + hdr <= len {
            word(e, &buf, idx + len_off, 2)
        } else {
            0
        };
        if rec_len == 0 {
            if idx == 0 {
                break; // an empty record at the start: nothing more is readable
            }
            idx = 0;
            continue;
        }
        let text_len = word(e, &buf, idx + text_off, 2).min(rec_len.saturating_sub(hdr));
        let start = (idx + hdr) as usize;
        if let Some(text) = buf.get(start..start + text_len as usize) {
            let cid = caller.map(|c| word(e, &buf, idx + c, 4) as u32);
            format_record(&mut out, word(e, &buf, idx + ts_off, 8), cid, text);
        }
        idx += rec_len;
        if idx > len {
            break;
        }
    }
    Err(format!(
        "the log buffer's records never reach log_next_idx {next:#x} (corrupt log?); {} bytes of log read",
        out.len()
    ))
}

/// `clear_seq`: the sequence number of the first record after the last `dmesg --clear`
/// (a `latched_seq` since 5.14: the value of the pair the latch count points at).
fn clear_seq(km: &mut KernelMemory, info: &VmcoreInfo) -> Result<u64, String> {
    let at = info
        .symbol("clear_seq")
        .ok_or("VMCOREINFO has no SYMBOL(clear_seq): --partial-dmesg needs it")?;
    let at = if info.size("latched_seq").is_some() {
        let latch = read_u32(km, at, "clear_seq")?;
        at + off(info, "latched_seq.val")? + 8 * u64::from(latch & 1)
    } else {
        at
    };
    km.read_u64(at)
        .ok_or_else(|| format!("cannot read clear_seq at {at:#x}"))
}

/// The whole log, oldest record first (with `partial`, only the records after the last
/// `dmesg --clear`). `Err` says what is missing or unreadable.
pub fn lockless(
    km: &mut KernelMemory,
    info: &VmcoreInfo,
    partial: bool,
) -> Result<Vec<u8>, String> {
    let e = km.endian();
    let prb_sym = info
        .symbol("prb")
        .ok_or("VMCOREINFO has no SYMBOL(prb): not a lockless printk ring buffer (Linux < 5.10)")?;
    let prb = km
        .read_u64(prb_sym)
        .ok_or_else(|| format!("cannot read the prb pointer at {prb_sym:#x}"))?;
    let rb = read(
        km,
        prb,
        size(info, "printk_ringbuffer")?,
        "the printk ring buffer",
    )?;
    let desc_ring = off(info, "printk_ringbuffer.desc_ring")?;
    let text_ring = off(info, "printk_ringbuffer.text_data_ring")?;
    let counter = off(info, "atomic_long_t.counter")?;
    let count_bits = word(
        e,
        &rb,
        desc_ring + off(info, "prb_desc_ring.count_bits")?,
        4,
    ) as u32;
    let descs_va = word(e, &rb, desc_ring + off(info, "prb_desc_ring.descs")?, 8);
    let infos_va = word(e, &rb, desc_ring + off(info, "prb_desc_ring.infos")?, 8);
    let head_id = word(
        e,
        &rb,
        desc_ring + off(info, "prb_desc_ring.head_id")? + counter,
        8,
    );
    let tail_id = word(
        e,
        &rb,
        desc_ring + off(info, "prb_desc_ring.tail_id")? + counter,
        8,
    );
    let size_bits = word(e, &rb, text_ring + off(info, "prb_data_ring.size_bits")?, 4) as u32;
    let data_va = word(e, &rb, text_ring + off(info, "prb_data_ring.data")?, 8);
    if count_bits > MAX_COUNT_BITS || size_bits > MAX_SIZE_BITS {
        return Err(format!(
            "implausible printk ring sizes (2^{count_bits} descriptors, 2^{size_bits} bytes)"
        ));
    }
    let count = 1u64 << count_bits;
    let ring_size = 1u64 << size_bits;
    let desc_size = size(info, "prb_desc")?;
    let info_size = size(info, "printk_info")?;
    let descs = read(km, descs_va, count * desc_size, "the printk descriptors")?;
    let infos = read(km, infos_va, count * info_size, "the printk records' info")?;
    let data = read(km, data_va, ring_size, "the printk text ring")?;
    let sv_off = off(info, "prb_desc.state_var")? + counter;
    let lpos = off(info, "prb_desc.text_blk_lpos")?;
    let begin_off = lpos + off(info, "prb_data_blk_lpos.begin")?;
    let next_off = lpos + off(info, "prb_data_blk_lpos.next")?;
    let ts_off = off(info, "printk_info.ts_nsec")?;
    let len_off = off(info, "printk_info.text_len")?;
    let caller = caller_off(info, "printk_info.caller_id")?;
    let from_seq = if partial {
        Some((clear_seq(km, info)?, off(info, "printk_info.seq")?))
    } else {
        None
    };

    let mut out = Vec::new();
    let mut id = tail_id & ID_MASK;
    let head = head_id & ID_MASK;
    // At most one lap of the ring: a corrupt head cannot make this loop forever.
    for _ in 0..=count {
        let slot = id % count;
        let d = slot * desc_size;
        let sv = word(e, &descs, d + sv_off, 8);
        let state = sv >> SV_STATE_SHIFT;
        if sv & ID_MASK == id && (state == COMMITTED || state == FINALIZED) {
            let mut begin = word(e, &descs, d + begin_off, 8) % ring_size;
            let next = word(e, &descs, d + next_off, 8) % ring_size;
            if begin != next {
                if begin > next {
                    begin = 0; // the block wrapped to the start of the ring
                }
                // The block starts with the record's id (an unsigned long).
                let avail = (next - begin).saturating_sub(8);
                let i = slot * info_size;
                let cleared =
                    from_seq.is_some_and(|(first, seq)| word(e, &infos, i + seq, 8) < first);
                let text_len = word(e, &infos, i + len_off, 2).min(avail);
                let ts = word(e, &infos, i + ts_off, 8);
                let start = (begin + 8) as usize;
                if let (false, Some(text)) = (cleared, data.get(start..start + text_len as usize)) {
                    let cid = caller.map(|c| word(e, &infos, i + c, 4) as u32);
                    format_record(&mut out, ts, cid, text);
                }
            }
        }
        if id == head {
            break;
        }
        id = id.wrapping_add(1) & ID_MASK;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
