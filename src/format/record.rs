//! On-disk records defined once: each record is a table of fields, each field an offset per
//! C data model and a width, and the same table decodes (readers) and encodes (writers) it
//! in either byte order. [`record!`](crate::record) declares a record's struct and its table
//! together, so a field's offset is written in exactly one place.

use crate::input::bytes::Endian;

/// Which C data model a record follows (for ELF headers: `Lp64` is ELFCLASS64, `Ilp32Packed`
/// ELFCLASS32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// x86_64, arm64, ppc64, s390x, riscv64: 8-byte `long`, timeval of two i64.
    Lp64,
    /// i386: 4-byte `long`, timeval of two i32, 64-bit fields packed on 4 bytes.
    Ilp32Packed,
}

impl Model {
    /// Both models, LP64 first.
    pub const ALL: [Model; 2] = [Model::Lp64, Model::Ilp32Packed];

    /// Bytes of a C `long` (and of a pointer).
    pub const fn long(self) -> usize {
        match self {
            Model::Lp64 => 8,
            Model::Ilp32Packed => 4,
        }
    }
}

/// How a field is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// 2 bytes in every model (`Elf64_Half`).
    U16,
    /// 4 bytes in every model (`int`, `unsigned int`, `uint32_t`).
    U32,
    /// 8 bytes in every model (`off_t`, `uint64_t`, `int64_t`).
    U64,
    /// A C `long`: 8 bytes in LP64, 4 in ILP32 (values are truncated to 32 bits there, as
    /// the C assignment does).
    Long,
}

/// One field of an on-disk record: its offset in each model and its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    width: Width,
    lp64: usize,
    ilp32: usize,
}

impl Field {
    /// A field at `lp64` in the LP64 layout and `ilp32` in the packed ILP32 one.
    pub const fn new(width: Width, lp64: usize, ilp32: usize) -> Field {
        Field { width, lp64, ilp32 }
    }

    /// Where the field starts in `model`'s layout.
    pub const fn offset(self, model: Model) -> usize {
        match model {
            Model::Lp64 => self.lp64,
            Model::Ilp32Packed => self.ilp32,
        }
    }

    /// Bytes the field takes in `model`'s layout.
    pub const fn size(self, model: Model) -> usize {
        match self.width {
            Width::U16 => 2,
            Width::U32 => 4,
            Width::U64 => 8,
            Width::Long => model.long(),
        }
    }

    /// Where the field ends (the record's size, for its last field).
    pub const fn end(self, model: Model) -> usize {
        self.offset(model) + self.size(model)
    }

    /// The field's value in `b` (the record's bytes); `None` if `b` is too short.
    pub fn get(self, model: Model, endian: Endian, b: &[u8]) -> Option<u64> {
        let at = self.offset(model);
        match self.size(model) {
            2 => endian.u16(b, at).map(u64::from),
            4 => endian.u32(b, at).map(u64::from),
            _ => endian.u64(b, at),
        }
    }

    /// Stores `v` (truncated to the field's width) into `b`, which must hold the record.
    pub fn put(self, model: Model, endian: Endian, b: &mut [u8], v: u64) {
        let at = self.offset(model);
        match self.size(model) {
            2 => endian.put_u16(b, at, v as u16),
            4 => endian.put_u32(b, at, v as u32),
            _ => endian.put_u64(b, at, v),
        }
    }
}

/// Declares an on-disk record: a struct of its fields, a struct of their [`Field`]s, and the
/// one constant table of offsets; `parse` and `put` both read that table.
///
/// ```ignore
/// record! {
///     /// doc of the record
///     PageDesc, PageDescFields, PAGE_DESC {
///         /// doc of the field
///         offset: u64 = U64(0, 0),
///     }
/// }
/// ```
#[macro_export]
macro_rules! record {
    (
        $(#[$doc:meta])*
        $name:ident, $fields:ident, $table:ident {
            $( $(#[$fdoc:meta])* $field:ident: $ty:ty = $width:ident($lp:expr, $ip:expr), )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: $ty, )*
        }

        #[doc = concat!("Where each field of [`", stringify!($name), "`] lies.")]
        #[derive(Debug, Clone, Copy)]
        pub struct $fields {
            $( #[doc = concat!("`", stringify!($field), "`")] pub $field: $crate::format::record::Field, )*
        }

        #[doc = concat!("The field offsets of [`", stringify!($name), "`], for every model.")]
        pub const $table: $fields = $fields {
            $( $field: $crate::format::record::Field::new(
                $crate::format::record::Width::$width, $lp, $ip), )*
        };

        impl $name {
            /// Decodes the record from `b` (its bytes); `None` if `b` is too short.
            pub fn parse(
                model: $crate::format::record::Model,
                endian: $crate::input::bytes::Endian,
                b: &[u8],
            ) -> Option<$name> {
                Some($name {
                    $( $field: $table.$field.get(model, endian, b)? as $ty, )*
                })
            }

            /// Encodes the record into `b`, which must hold it; bytes between fields are
            /// left as they are.
            pub fn put(
                &self,
                model: $crate::format::record::Model,
                endian: $crate::input::bytes::Endian,
                b: &mut [u8],
            ) {
                $( $table.$field.put(model, endian, b, self.$field as u64); )*
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_follow_the_model_and_truncate() {
        let f = Field::new(Width::Long, 8, 4);
        let mut b = [0u8; 16];
        f.put(Model::Ilp32Packed, Endian::Big, &mut b, 0x1_2345_6789);
        assert_eq!(&b[4..8], &[0x23, 0x45, 0x67, 0x89]);
        assert_eq!(
            f.get(Model::Ilp32Packed, Endian::Big, &b),
            Some(0x2345_6789)
        );
        assert_eq!(f.end(Model::Ilp32Packed), 8);
        f.put(Model::Lp64, Endian::Little, &mut b, 0x1_2345_6789);
        assert_eq!(f.get(Model::Lp64, Endian::Little, &b), Some(0x1_2345_6789));
        assert_eq!(f.get(Model::Lp64, Endian::Little, &b[..15]), None);
    }
}
