//! Output formats: kdump-compressed and its flattened stream today; ELF (`-E`) and split
//! sets join here.

pub mod flat;
pub mod kdump;
