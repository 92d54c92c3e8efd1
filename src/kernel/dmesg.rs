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
mod tests {
    use super::*;
    use crate::synth::kernel_memory;
    use crate::synth::{Flavor, LogRecord, PAGE_OFFSET, SynthKernel};

    /// A log_buf of 4 KiB holding three records, the oldest wrapped around, on a kernel
    /// with 4.18's VMCOREINFO (and its printk_log keys); `--partial-dmesg` starts at
    /// `clear_idx`.
    #[test]
    fn printk_log_records_are_read_in_order_across_the_wrap() {
        let k = SynthKernel::new(Flavor::Linux4_18, 1024);
        let mut mem = k.mem.clone();
        let vars = k.first_free_pfn * 4096;
        let buf = vars + 4096;
        let put = |mem: &mut Vec<u8>, at: u64, b: &[u8]| {
            mem[at as usize..at as usize + b.len()].copy_from_slice(b)
        };
        let record = |mem: &mut Vec<u8>, at: u64, ts: u64, text: &[u8]| -> u64 {
            let len = (16 + text.len() as u64).div_ceil(8) * 8;
            put(mem, buf + at, &ts.to_le_bytes());
            put(mem, buf + at + 8, &(len as u16).to_le_bytes());
            put(mem, buf + at + 10, &(text.len() as u16).to_le_bytes());
            put(mem, buf + at + 16, text);
            len
        };
        // First record near the end, then a zero-length marker, then two at the start.
        let first = 4096 - 48;
        record(&mut mem, first, 1_000_000, b"oldest");
        put(&mut mem, buf + first + 24 + 8, &0u16.to_le_bytes()); // wrap marker
        let a = record(&mut mem, 0, 2_500_000_000, b"two\nlines");
        let b = record(&mut mem, a, 3_000_001_000, b"\x01last");
        put(&mut mem, vars, &(PAGE_OFFSET + buf).to_le_bytes());
        put(&mut mem, vars + 8, &4096u32.to_le_bytes());
        put(&mut mem, vars + 12, &(first as u32).to_le_bytes());
        put(&mut mem, vars + 16, &((a + b) as u32).to_le_bytes());
        // The last `dmesg --clear` was before the second record.
        put(&mut mem, vars + 20, &0u32.to_le_bytes());
        let text = format!(
            "{}SYMBOL(log_buf)={:x}\nSYMBOL(log_buf_len)={:x}\nSYMBOL(log_first_idx)={:x}\n\
             SYMBOL(clear_idx)={:x}\nSYMBOL(log_next_idx)={:x}\nSIZE(printk_log)=16\n\
             OFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\n\
             OFFSET(printk_log.text_len)=10\nOFFSET(printk_log.dict_len)=12\n",
            k.vmcoreinfo(),
            PAGE_OFFSET + vars,
            PAGE_OFFSET + vars + 8,
            PAGE_OFFSET + vars + 12,
            PAGE_OFFSET + vars + 20,
            PAGE_OFFSET + vars + 16,
        );
        let info = VmcoreInfo::parse(text.as_bytes());
        let mut km = kernel_memory(mem.clone(), &info);
        let log = read_log(&mut km, &info, false).expect("log");
        let mut want = Vec::new();
        format_record(&mut want, 1_000_000, None, b"oldest");
        format_record(&mut want, 2_500_000_000, None, b"two\nlines");
        format_record(&mut want, 3_000_001_000, None, b"\x01last");
        assert_eq!(
            String::from_utf8_lossy(&log),
            String::from_utf8_lossy(&want)
        );
        // --partial-dmesg: from clear_idx.
        let partial = read_log(&mut km, &info, true).expect("partial log");
        let tail = &want[want.len() - partial.len()..];
        assert_eq!(
            String::from_utf8_lossy(&partial),
            String::from_utf8_lossy(tail)
        );
        assert!(String::from_utf8_lossy(&partial).starts_with("[    2.500000] two"));
        // Without SYMBOL(clear_idx), the whole log (as makedumpfile prints it).
        let no_clear: String = text
            .lines()
            .filter(|l| !l.starts_with("SYMBOL(clear_idx)"))
            .map(|l| format!("{l}\n"))
            .collect();
        let no_clear = VmcoreInfo::parse(no_clear.as_bytes());
        assert_eq!(read_log(&mut km, &no_clear, true).expect("log"), want);
        // A next index no record reaches: an error, not a loop.
        let mut bad = mem;
        put(&mut bad, vars + 16, &7u32.to_le_bytes());
        let mut km = kernel_memory(bad, &info);
        assert!(read_log(&mut km, &info, false).is_err());
    }

    /// A lockless ring (5.10+) of 4 descriptors on their second lap and a 512-byte text
    /// ring whose last block wrapped to its start; `clear_seq` as the plain u64 of 5.10
    /// to 5.13 and as the `latched_seq` of later kernels.
    #[test]
    fn lockless_ring_wraps_and_both_clear_seqs() {
        let k = SynthKernel::new(Flavor::Linux6_1, 1024);
        let mut mem = k.mem.clone();
        let base = k.first_free_pfn * 4096;
        let (vars, rb, descs, infos, data) =
            (base, base + 256, base + 512, base + 1024, base + 2048);
        let va = |pa: u64| PAGE_OFFSET + pa;
        let put = |mem: &mut Vec<u8>, at: u64, b: &[u8]| {
            mem[at as usize..at as usize + b.len()].copy_from_slice(b)
        };
        // printk_ringbuffer: desc_ring {count_bits, descs, infos, head_id, tail_id} at 0,
        // text_data_ring {size_bits, data} at 40 (x86_64 5.10's offsets).
        put(&mut mem, vars, &va(rb).to_le_bytes());
        put(&mut mem, rb, &2u32.to_le_bytes());
        put(&mut mem, rb + 8, &va(descs).to_le_bytes());
        put(&mut mem, rb + 16, &va(infos).to_le_bytes());
        put(&mut mem, rb + 24, &6u64.to_le_bytes());
        put(&mut mem, rb + 32, &4u64.to_le_bytes());
        put(&mut mem, rb + 40, &9u32.to_le_bytes());
        put(&mut mem, rb + 48, &va(data).to_le_bytes());
        // Records 4, 5, 6 (seq = id): logical text positions on the ring's third lap; the
        // last one did not fit before the end, so its data starts at the ring's start.
        let records: [(u64, u64, u64, &[u8]); 3] = [
            (4, 1024 + 300, 1024 + 340, b"four"),
            (5, 1024 + 340, 1024 + 400, b"five\nlines"),
            (6, 1024 + 480, 1024 + 512 + 32, b"six"),
        ];
        for (id, begin, next, text) in records {
            let d = descs + (id % 4) * 24;
            put(&mut mem, d, &((2u64 << 62) | id).to_le_bytes());
            put(&mut mem, d + 8, &begin.to_le_bytes());
            put(&mut mem, d + 16, &next.to_le_bytes());
            let i = infos + (id % 4) * 88;
            put(&mut mem, i, &id.to_le_bytes());
            put(&mut mem, i + 8, &(id * 1_000_000_000).to_le_bytes());
            put(&mut mem, i + 16, &(text.len() as u16).to_le_bytes());
            let wrapped = begin % 512 > next % 512;
            let at = data + if wrapped { 0 } else { begin % 512 };
            put(&mut mem, at, &id.to_le_bytes());
            put(&mut mem, at + 8, text);
        }
        // A stale descriptor in slot 3 (id 3, before the tail): not printed.
        put(&mut mem, descs + 3 * 24, &((2u64 << 62) | 3).to_le_bytes());
        // clear_seq: a plain u64 = 5 at vars + 64; a latched_seq at vars + 128 whose latch
        // (odd) points at val[1] = 6.
        put(&mut mem, vars + 64, &5u64.to_le_bytes());
        put(&mut mem, vars + 128, &1u32.to_le_bytes());
        put(&mut mem, vars + 136, &4u64.to_le_bytes());
        put(&mut mem, vars + 144, &6u64.to_le_bytes());
        let keys = |clear: u64, latched: bool| {
            let mut t = format!(
                "{}SYMBOL(prb)={:x}\nSYMBOL(clear_seq)={:x}\nSIZE(printk_ringbuffer)=80\n\
                 OFFSET(printk_ringbuffer.desc_ring)=0\nOFFSET(printk_ringbuffer.text_data_ring)=40\n\
                 OFFSET(prb_desc_ring.count_bits)=0\nOFFSET(prb_desc_ring.descs)=8\n\
                 OFFSET(prb_desc_ring.infos)=16\nOFFSET(prb_desc_ring.head_id)=24\n\
                 OFFSET(prb_desc_ring.tail_id)=32\nSIZE(prb_desc)=24\nOFFSET(prb_desc.state_var)=0\n\
                 OFFSET(prb_desc.text_blk_lpos)=8\nOFFSET(prb_data_blk_lpos.begin)=0\n\
                 OFFSET(prb_data_blk_lpos.next)=8\nSIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\n\
                 OFFSET(printk_info.ts_nsec)=8\nOFFSET(printk_info.text_len)=16\n\
                 OFFSET(prb_data_ring.size_bits)=0\nOFFSET(prb_data_ring.data)=8\n\
                 OFFSET(atomic_long_t.counter)=0\n",
                k.vmcoreinfo(),
                va(vars),
                va(clear),
            );
            if latched {
                t += "SIZE(latched_seq)=24\nOFFSET(latched_seq.val)=8\n";
            }
            VmcoreInfo::parse(t.as_bytes())
        };
        let log = |info: &VmcoreInfo, partial: bool| {
            let mut km = kernel_memory(mem.clone(), info);
            String::from_utf8(read_log(&mut km, info, partial).expect("log")).expect("utf-8")
        };
        let mut all = Vec::new();
        format_record(&mut all, 4_000_000_000, None, b"four");
        format_record(&mut all, 5_000_000_000, None, b"five\nlines");
        format_record(&mut all, 6_000_000_000, None, b"six");
        let all = String::from_utf8(all).expect("utf-8");
        let from_five = &all[all.find("[    5.").expect("five")..];
        let from_six = &all[all.find("[    6.").expect("six")..];
        assert_eq!(log(&keys(vars + 64, false), false), all);
        assert_eq!(log(&keys(vars + 64, false), true), from_five);
        assert_eq!(log(&keys(vars + 128, true), false), all);
        assert_eq!(log(&keys(vars + 128, true), true), from_six);
    }

    #[test]
    fn records_are_formatted_like_makedumpfile() {
        let mut out = Vec::new();
        format_record(
            &mut out,
            5_833_299_123,
            None,
            b"R10: 1\nsecond line\x01\xff",
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "[    5.833299] R10: 1\n               second line\\x01\\xffffffff\n"
        );
        out.clear();
        format_record(&mut out, 123_456_000_000_000, None, b"late");
        assert_eq!(String::from_utf8_lossy(&out), "[123456.000000] late\n");
    }

    #[test]
    fn caller_column_is_printed_when_the_kernel_exports_the_caller_id() {
        let mut out = Vec::new();
        format_record(&mut out, 0, Some(0), b"Linux version");
        format_record(&mut out, 1_500_000, Some(0x8000_0001), b"cpu\nsecond");
        format_record(&mut out, 2_000_000, Some(123_456_789), b"long pid");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "[    0.000000] [      T0] Linux version\n\
             [    0.001500] [      C1] cpu\n\
             \x20                         second\n\
             [    0.002000] [T123456789] long pid\n"
        );
    }

    /// A lockless ring (5.10+) read whole, with and without the caller id exported: the
    /// records in order across the lap of the descriptors and the wrap of the text ring.
    #[test]
    fn lockless_ring_is_read_with_and_without_the_caller_column() {
        let records = [
            LogRecord {
                ts_nsec: 0,
                caller_id: 0,
                text: b"Linux version 7.2.13",
            },
            LogRecord {
                ts_nsec: 1_234_567_891,
                caller_id: 0x8000_0002,
                text: b"two\nlines",
            },
            LogRecord {
                ts_nsec: 61_000_000_000,
                caller_id: 4321,
                text: b"wrapped \x01",
            },
        ];
        for caller_id in [true, false] {
            let mut k = SynthKernel::new(Flavor::Linux6_12, 1024);
            let lines = k.printk_ring(&records, caller_id);
            let info = VmcoreInfo::parse(format!("{}{lines}", k.vmcoreinfo()).as_bytes());
            let mut km = kernel_memory(k.mem.clone(), &info);
            let log = read_log(&mut km, &info, false).expect("log");
            let want = if caller_id {
                "[    0.000000] [      T0] Linux version 7.2.13\n\
                 [    1.234567] [      C2] two\n\
                 \x20                         lines\n\
                 [   61.000000] [   T4321] wrapped \\x01\n"
            } else {
                "[    0.000000] Linux version 7.2.13\n\
                 [    1.234567] two\n\
                 \x20              lines\n\
                 [   61.000000] wrapped \\x01\n"
            };
            assert_eq!(String::from_utf8_lossy(&log), want, "caller_id {caller_id}");
            // --partial-dmesg: clear_seq 0 keeps every record.
            assert_eq!(read_log(&mut km, &info, true).expect("partial"), log);
        }
    }

    /// A 5.1–5.9 kernel built with CONFIG_PRINTK_CALLER: `printk_log` records carry the
    /// caller id (header of 24 bytes) and the log has the caller column.
    #[test]
    fn printk_log_records_with_the_caller_id() {
        let k = SynthKernel::new(Flavor::Linux6_1, 1024);
        let mut mem = k.mem.clone();
        let vars = k.first_free_pfn * 4096;
        let buf = vars + 4096;
        let put = |mem: &mut Vec<u8>, at: u64, b: &[u8]| {
            mem[at as usize..at as usize + b.len()].copy_from_slice(b)
        };
        let mut at = 0;
        for (ts, caller, text) in [
            (0u64, 0u32, &b"Linux version 5.4"[..]),
            (7_000_001_000, 0x8000_0001, b"from a cpu\nnext"),
        ] {
            let len = (24 + text.len() as u64).div_ceil(8) * 8;
            put(&mut mem, buf + at, &ts.to_le_bytes());
            put(&mut mem, buf + at + 8, &(len as u16).to_le_bytes());
            put(&mut mem, buf + at + 10, &(text.len() as u16).to_le_bytes());
            put(&mut mem, buf + at + 16, &caller.to_le_bytes());
            put(&mut mem, buf + at + 24, text);
            at += len;
        }
        put(&mut mem, vars, &(PAGE_OFFSET + buf).to_le_bytes());
        put(&mut mem, vars + 8, &4096u32.to_le_bytes());
        put(&mut mem, vars + 16, &(at as u32).to_le_bytes());
        let text = format!(
            "{}SYMBOL(log_buf)={:x}\nSYMBOL(log_buf_len)={:x}\nSYMBOL(log_first_idx)={:x}\n\
             SYMBOL(log_next_idx)={:x}\nSIZE(printk_log)=24\nOFFSET(printk_log.ts_nsec)=0\n\
             OFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10\n\
             OFFSET(printk_log.caller_id)=16\n",
            k.vmcoreinfo(),
            PAGE_OFFSET + vars,
            PAGE_OFFSET + vars + 8,
            PAGE_OFFSET + vars + 12,
            PAGE_OFFSET + vars + 16,
        );
        let info = VmcoreInfo::parse(text.as_bytes());
        let mut km = kernel_memory(mem, &info);
        assert_eq!(
            String::from_utf8_lossy(&read_log(&mut km, &info, false).expect("log")),
            "[    0.000000] [      T0] Linux version 5.4\n\
             [    7.000001] [      C1] from a cpu\n\
             \x20                         next\n"
        );
    }
}
