//! The VMCOREINFO note: `KEY=VALUE` lines the crashed kernel exported about itself.
//!
//! `SYMBOL(x)` values are hexadecimal addresses without `0x`; `SIZE`, `OFFSET`, `LENGTH` and
//! `NUMBER` are decimal and may be negative, with a hexadecimal fallback (`0x...`) for values
//! such as `NUMBER(VMALLOC_START)`. A missing key is "not known", never an error by itself.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// A parsed VMCOREINFO note: typed lookups by key.
#[derive(Debug, Clone, Default)]
pub struct VmcoreInfo {
    /// Lines in their original order (echoed at debug message level, as makedumpfile does).
    lines: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

/// Decimal (possibly negative), or hexadecimal when it does not parse as decimal.
fn parse_number(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    // Values above i64::MAX (kernel addresses as NUMBER) keep their bit pattern.
    let v = parse_hex(body)? as i64;
    Some(if neg { v.wrapping_neg() } else { v })
}

impl VmcoreInfo {
    /// Parses the note text. Lines without `=` are ignored (and kept out of the table); a
    /// repeated key keeps its last value, like the kernel readers.
    pub fn parse(text: &[u8]) -> VmcoreInfo {
        let text = String::from_utf8_lossy(text);
        let mut info = VmcoreInfo::default();
        for line in text.split('\n') {
            let line = line.trim_end_matches(['\r', '\0']);
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.is_empty() {
                continue;
            }
            match info.index.get(key) {
                Some(&i) => info.lines[i].1 = value.to_string(),
                None => {
                    info.index.insert(key.to_string(), info.lines.len());
                    info.lines.push((key.to_string(), value.to_string()));
                }
            }
        }
        info
    }

    /// Every `KEY=VALUE` line, in the note's order.
    pub fn lines(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.index.get(key).map(|&i| self.lines[i].1.as_str())
    }

    /// `SYMBOL(name)`: a kernel virtual address.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        parse_hex(self.get(&format!("SYMBOL({name})"))?)
    }

    /// `SIZE(name)`: the size of a type in bytes.
    pub fn size(&self, name: &str) -> Option<i64> {
        parse_number(self.get(&format!("SIZE({name})"))?)
    }

    /// `OFFSET(type.member)`.
    pub fn offset(&self, member: &str) -> Option<i64> {
        parse_number(self.get(&format!("OFFSET({member})"))?)
    }

    /// `LENGTH(name)`: the number of elements of an array.
    pub fn length(&self, name: &str) -> Option<i64> {
        parse_number(self.get(&format!("LENGTH({name})"))?)
    }

    /// `NUMBER(name)`: a constant.
    pub fn number(&self, name: &str) -> Option<i64> {
        parse_number(self.get(&format!("NUMBER({name})"))?)
    }

    /// `OSRELEASE`: the kernel release.
    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    /// `CRASHTIME`: seconds since the epoch.
    pub fn crashtime(&self) -> Option<i64> {
        self.get("CRASHTIME")?.trim().parse().ok()
    }

    /// `KERNELOFFSET`: the KASLR slide of the kernel text (hex without `0x`).
    pub fn kernel_offset(&self) -> Option<u64> {
        parse_hex(self.get("KERNELOFFSET")?)
    }

    /// `PAGESIZE`, checked: a power of two between 1 KiB and 1 MiB.
    pub fn page_size(&self) -> Result<usize> {
        let raw = self
            .get("PAGESIZE")
            .ok_or_else(|| Error::bad_input("VMCOREINFO has no PAGESIZE"))?;
        let size: usize = raw
            .trim()
            .parse()
            .map_err(|_| Error::bad_input(format!("VMCOREINFO PAGESIZE={raw} is not a number")))?;
        if !size.is_power_of_two() || !(1024..=1 << 20).contains(&size) {
            return Err(Error::bad_input(format!(
                "VMCOREINFO PAGESIZE={size} is not a plausible page size"
            )));
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values() {
        let info = VmcoreInfo::parse(
            b"OSRELEASE=6.1.0-56-amd64\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82dfb000\n\
              NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nNUMBER(VMALLOC_START)=0xffffc90000000000\n\
              OFFSET(page._mapcount)=48\nLENGTH(zone.free_area)=11\nKERNELOFFSET=200000\n\
              CRASHTIME=1795263890\nnonsense line\n=novalue\nNUMBER(bad)=zz\n",
        );
        assert_eq!(info.osrelease(), Some("6.1.0-56-amd64"));
        assert_eq!(info.page_size().ok(), Some(4096));
        assert_eq!(info.symbol("init_uts_ns"), Some(0xffff_ffff_82df_b000));
        assert_eq!(info.number("PAGE_BUDDY_MAPCOUNT_VALUE"), Some(-129));
        assert_eq!(
            info.number("VMALLOC_START"),
            Some(0xffff_c900_0000_0000u64 as i64)
        );
        assert_eq!(info.offset("page._mapcount"), Some(48));
        assert_eq!(info.length("zone.free_area"), Some(11));
        assert_eq!(info.kernel_offset(), Some(0x200000));
        assert_eq!(info.crashtime(), Some(1_795_263_890));
        assert_eq!(info.number("bad"), None);
        assert_eq!(info.number("absent"), None);
        assert_eq!(info.lines().count(), 10);
    }

    #[test]
    fn page_size_is_checked() {
        assert!(VmcoreInfo::parse(b"PAGESIZE=4095\n").page_size().is_err());
        assert!(VmcoreInfo::parse(b"PAGESIZE=x\n").page_size().is_err());
        assert!(VmcoreInfo::parse(b"OSRELEASE=1\n").page_size().is_err());
        assert_eq!(
            VmcoreInfo::parse(b"PAGESIZE=65536\n").page_size().ok(),
            Some(65536)
        );
    }
}
