//! The kernel log from the lockless printk ring buffer (Linux 5.10+), located and decoded
//! through VMCOREINFO alone, printed as makedumpfile's `--dump-dmesg` prints it:
//! `[%5u.%06u] text`, continuation lines indented to the text, unprintable bytes as `\xNN`.
//!
//! Every size and index comes from a kernel that just crashed: ring sizes are bounded,
//! positions are taken modulo the ring, and a record that does not fit is skipped.

use super::vmcoreinfo::VmcoreInfo;
use super::x86_64::KernelMemory;

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

fn le(b: &[u8], at: u64, n: usize) -> u64 {
    let at = at as usize;
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + n) {
        v[..n].copy_from_slice(s);
    }
    u64::from_le_bytes(v)
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
    let mut buf = vec![0u8; len as usize];
    km.read(va, &mut buf)
        .ok_or_else(|| format!("cannot read {what} ({len} bytes at {va:#x})"))?;
    Ok(buf)
}

/// Appends one record: the timestamp prefix, then the text with continuation lines
/// indented under it and bytes that are neither printable nor spaces escaped.
fn format_record(out: &mut Vec<u8>, ts_nsec: u64, text: &[u8]) {
    let prefix = format!(
        "[{:5}.{:06}] ",
        ts_nsec / 1_000_000_000,
        ts_nsec % 1_000_000_000 / 1000
    );
    out.extend_from_slice(prefix.as_bytes());
    for &c in text {
        match c {
            b'\n' => {
                out.push(b'\n');
                out.extend(std::iter::repeat_n(b' ', prefix.len()));
            }
            0x20..=0x7e | b'\t' | 0x0b | 0x0c | b'\r' => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'\n');
}

/// The whole log, oldest record first. `Err` says what is missing or unreadable.
pub fn lockless(km: &mut KernelMemory, info: &VmcoreInfo) -> Result<Vec<u8>, String> {
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
    let count_bits = le(&rb, desc_ring + off(info, "prb_desc_ring.count_bits")?, 4) as u32;
    let descs_va = le(&rb, desc_ring + off(info, "prb_desc_ring.descs")?, 8);
    let infos_va = le(&rb, desc_ring + off(info, "prb_desc_ring.infos")?, 8);
    let head_id = le(
        &rb,
        desc_ring + off(info, "prb_desc_ring.head_id")? + counter,
        8,
    );
    let tail_id = le(
        &rb,
        desc_ring + off(info, "prb_desc_ring.tail_id")? + counter,
        8,
    );
    let size_bits = le(&rb, text_ring + off(info, "prb_data_ring.size_bits")?, 4) as u32;
    let data_va = le(&rb, text_ring + off(info, "prb_data_ring.data")?, 8);
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

    let mut out = Vec::new();
    let mut id = tail_id & ID_MASK;
    let head = head_id & ID_MASK;
    // At most one lap of the ring: a corrupt head cannot make this loop forever.
    for _ in 0..=count {
        let slot = id % count;
        let d = slot * desc_size;
        let sv = le(&descs, d + sv_off, 8);
        let state = sv >> SV_STATE_SHIFT;
        if sv & ID_MASK == id && (state == COMMITTED || state == FINALIZED) {
            let mut begin = le(&descs, d + begin_off, 8) % ring_size;
            let next = le(&descs, d + next_off, 8) % ring_size;
            if begin != next {
                if begin > next {
                    begin = 0; // the block wrapped to the start of the ring
                }
                // The block starts with the record's id (an unsigned long).
                let avail = (next - begin).saturating_sub(8);
                let i = slot * info_size;
                let text_len = le(&infos, i + len_off, 2).min(avail);
                let ts = le(&infos, i + ts_off, 8);
                let start = (begin + 8) as usize;
                if let Some(text) = data.get(start..start + text_len as usize) {
                    format_record(&mut out, ts, text);
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

    #[test]
    fn records_are_formatted_like_makedumpfile() {
        let mut out = Vec::new();
        format_record(&mut out, 5_833_299_123, b"R10: 1\nsecond line\x01\xff");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "[    5.833299] R10: 1\n               second line\\x01\\xff\n"
        );
        out.clear();
        format_record(&mut out, 123_456_000_000_000, b"late");
        assert_eq!(String::from_utf8_lossy(&out), "[123456.000000] late\n");
    }
}
