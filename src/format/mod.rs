//! Output formats: kdump-compressed, its flattened stream, and ELF (`-E`).

pub mod elf;
pub mod flat;
pub mod kdump;
pub mod record;
