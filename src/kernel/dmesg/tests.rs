//! Tests of the kernel log readers on synthetic printk rings of both kinds.

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
    let (vars, rb, descs, infos, data) = (base, base + 256, base + 512, base + 1024, base + 2048);
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
