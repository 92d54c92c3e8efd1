//! A lockless printk ring buffer (Linux 5.10 and later) in a synthetic kernel's memory.

use super::SynthKernel;
use super::kernel::PAGE_OFFSET;

impl SynthKernel {
    /// Writes a lockless printk ring buffer (the x86_64 layout of Linux 5.10 and later)
    /// holding `records`, oldest first, in the pages from `first_free_pfn` on (which it moves
    /// past them): 16 descriptors whose ids lap the ring, and a 1 KiB text ring in which the
    /// last record wraps to the start. Returns the VMCOREINFO lines that describe it, with
    /// `OFFSET(printk_info.caller_id)` only if `caller_id` (kernels before 5.10 built without
    /// CONFIG_PRINTK_CALLER have no caller id; 5.10 and later always export it).
    pub fn printk_ring(&mut self, records: &[LogRecord], caller_id: bool) -> String {
        const COUNT: u64 = 16;
        const RING: u64 = 1024;
        const DESC: u64 = 24;
        const INFO: u64 = 88;
        assert!(!records.is_empty() && records.len() < COUNT as usize);
        let base = self.first_free_pfn * 4096;
        self.first_free_pfn += 3;
        let (prb_ptr, clear_seq, rb) = (base, base + 8, base + 64);
        let (descs, infos, data) = (base + 4096, base + 4096 + 1024, base + 2 * 4096);
        let va = |pa: u64| PAGE_OFFSET + pa;
        let size = |r: &LogRecord| (8 + r.text.len() as u64).div_ceil(8) * 8;
        let before_last: u64 = records[..records.len() - 1].iter().map(size).sum();
        assert!(before_last + 8 + size(&records[records.len() - 1]) <= RING);
        // Logical positions: the records before the last fill the ring's end but 8 bytes.
        let mut lpos = 5 * RING + RING - before_last - 8;
        let first_id = 3 * COUNT + 13;
        for (i, r) in records.iter().enumerate() {
            let id = first_id + i as u64;
            let len = size(r);
            let (begin, next) = if lpos % RING + len > RING {
                (lpos, lpos - lpos % RING + RING + len)
            } else {
                (lpos, lpos + len)
            };
            lpos = next;
            let at = data + (next - len) % RING;
            self.put_u64(at, id);
            let t = (at + 8) as usize;
            self.mem[t..t + r.text.len()].copy_from_slice(r.text);
            let d = descs + (id % COUNT) * DESC;
            // The last record committed, the others finalized.
            let state: u64 = if i + 1 == records.len() { 1 } else { 2 };
            self.put_u64(d, state << 62 | id);
            self.put_u64(d + 8, begin);
            self.put_u64(d + 16, next);
            let f = (infos + (id % COUNT) * INFO) as usize;
            self.mem[f..f + 8].copy_from_slice(&(i as u64).to_le_bytes());
            self.mem[f + 8..f + 16].copy_from_slice(&r.ts_nsec.to_le_bytes());
            self.mem[f + 16..f + 18].copy_from_slice(&(r.text.len() as u16).to_le_bytes());
            self.mem[f + 20..f + 24].copy_from_slice(&r.caller_id.to_le_bytes());
        }
        self.put_u64(prb_ptr, va(rb));
        self.put_u64(clear_seq, 0);
        self.mem[rb as usize..rb as usize + 4].copy_from_slice(&4u32.to_le_bytes());
        self.put_u64(rb + 8, va(descs));
        self.put_u64(rb + 16, va(infos));
        self.put_u64(rb + 24, first_id + records.len() as u64 - 1);
        self.put_u64(rb + 32, first_id);
        self.mem[rb as usize + 40..rb as usize + 44].copy_from_slice(&10u32.to_le_bytes());
        self.put_u64(rb + 48, va(data));
        self.put_u64(rb + 56, lpos);
        self.put_u64(rb + 64, 5 * RING + RING - before_last - 8);
        let mut v = format!(
            "SYMBOL(prb)={:x}\nSYMBOL(printk_rb_static)={:x}\nSYMBOL(clear_seq)={:x}\n",
            va(prb_ptr),
            va(rb),
            va(clear_seq)
        );
        v += "SIZE(printk_ringbuffer)=80\nOFFSET(printk_ringbuffer.desc_ring)=0\n\
              OFFSET(printk_ringbuffer.text_data_ring)=40\nOFFSET(printk_ringbuffer.fail)=72\n\
              SIZE(prb_desc_ring)=40\nOFFSET(prb_desc_ring.count_bits)=0\n\
              OFFSET(prb_desc_ring.descs)=8\nOFFSET(prb_desc_ring.infos)=16\n\
              OFFSET(prb_desc_ring.head_id)=24\nOFFSET(prb_desc_ring.tail_id)=32\n\
              SIZE(prb_desc)=24\nOFFSET(prb_desc.state_var)=0\nOFFSET(prb_desc.text_blk_lpos)=8\n\
              SIZE(prb_data_blk_lpos)=16\nOFFSET(prb_data_blk_lpos.begin)=0\n\
              OFFSET(prb_data_blk_lpos.next)=8\nSIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\n\
              OFFSET(printk_info.ts_nsec)=8\nOFFSET(printk_info.text_len)=16\n\
              OFFSET(printk_info.dev_info)=24\nSIZE(dev_printk_info)=64\n\
              OFFSET(dev_printk_info.subsystem)=0\nLENGTH(printk_info_subsystem)=16\n\
              OFFSET(dev_printk_info.device)=16\nLENGTH(printk_info_device)=48\n\
              SIZE(prb_data_ring)=32\nOFFSET(prb_data_ring.size_bits)=0\n\
              OFFSET(prb_data_ring.data)=8\nOFFSET(prb_data_ring.head_lpos)=16\n\
              OFFSET(prb_data_ring.tail_lpos)=24\nSIZE(atomic_long_t)=8\n\
              OFFSET(atomic_long_t.counter)=0\n";
        if caller_id {
            v += "OFFSET(printk_info.caller_id)=20\n";
        }
        v
    }
}

/// One record of a synthetic kernel log.
pub struct LogRecord<'a> {
    /// The record's timestamp.
    pub ts_nsec: u64,
    /// The task's pid, or `0x80000000 | cpu` for a record logged outside task context.
    pub caller_id: u32,
    /// The message, without a newline.
    pub text: &'a [u8],
}
