//! Field types and the payload encoding of probe records: fixed-size
//! little-endian scalars, `u16` length + bytes for strings and byte arrays.

/// Longest string or byte array stored; longer ones are cut.
pub const MAX_VAR: usize = 4095;

/// The type of a field, and its code: one enum for the records a program
/// writes into shared memory and for the trace file's schemas (weft-format
/// re-exports it), so the two sets of numbers cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FieldType {
    U8 = 1,
    U16 = 2,
    U32 = 3,
    U64 = 4,
    I8 = 5,
    I16 = 6,
    I32 = 7,
    I64 = 8,
    F64 = 9,
    Bool = 10,
    Ptr = 11,
    /// Text; bytes are stored as given and decoded lossily as UTF-8.
    Str = 12,
    Bytes = 13,
    /// A list of u64 (call-chain addresses): trace files only, not a type a
    /// program may declare for a probe field (`from_u8` refuses it).
    U64Array = 14,
}

impl FieldType {
    /// The code written in a trace file's schema.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Any trace-file field type, by code.
    pub fn from_code(c: u8) -> Option<FieldType> {
        if c == FieldType::U64Array as u8 {
            return Some(FieldType::U64Array);
        }
        FieldType::from_u8(c)
    }

    /// Name used in docs and by `weft info`.
    pub fn name(self) -> &'static str {
        use FieldType::*;
        match self {
            U8 => "u8",
            U16 => "u16",
            U32 => "u32",
            U64 => "u64",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            F64 => "f64",
            Bool => "bool",
            Ptr => "ptr",
            Str => "string",
            Bytes => "bytes",
            U64Array => "u64[]",
        }
    }

    /// A probe field type, by code (what a program may declare).
    pub fn from_u8(v: u8) -> Option<FieldType> {
        use FieldType::*;
        Some(match v {
            1 => U8,
            2 => U16,
            3 => U32,
            4 => U64,
            5 => I8,
            6 => I16,
            7 => I32,
            8 => I64,
            9 => F64,
            10 => Bool,
            11 => Ptr,
            12 => Str,
            13 => Bytes,
            _ => return None,
        })
    }

    /// Encoded size of a fixed-size field; None for variable ones.
    pub fn fixed_size(self) -> Option<usize> {
        use FieldType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 => Some(4),
            U64 | I64 | F64 | Ptr => Some(8),
            Str | Bytes | U64Array => None,
        }
    }

    /// The type name used in user_events format strings.
    pub fn user_events_type(self) -> &'static str {
        use FieldType::*;
        match self {
            U8 | Bool => "u8",
            U16 => "u16",
            U32 => "u32",
            U64 | Ptr => "u64",
            I8 => "s8",
            I16 => "s16",
            I32 => "s32",
            I64 => "s64",
            F64 => "u64",
            Str => "__rel_loc char[]",
            // Never a probe field (from_u8 refuses it); bytes if it were.
            Bytes | U64Array => "__rel_loc u8[]",
        }
    }
}

/// A decoded field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    Str(Vec<u8>),
    Bytes(Vec<u8>),
}

/// Decodes a copied payload by its event's field list. Trailing bytes (the
/// record's 8-byte padding) are ignored.
pub fn decode(fields: &[FieldType], b: &[u8]) -> Result<Vec<Value>, String> {
    let mut out = Vec::with_capacity(fields.len());
    decode_into(fields, b, &mut out)?;
    Ok(out)
}

/// A decoded value that borrows strings and byte arrays from the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    Str(&'a [u8]),
    Bytes(&'a [u8]),
}

impl ValueRef<'_> {
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::U(x) => Value::U(x),
            ValueRef::I(x) => Value::I(x),
            ValueRef::F(x) => Value::F(x),
            ValueRef::B(x) => Value::B(x),
            ValueRef::Str(s) => Value::Str(s.to_vec()),
            ValueRef::Bytes(s) => Value::Bytes(s.to_vec()),
        }
    }
}

/// [`decode`] into any collection. On error, `out` may hold the fields
/// decoded before it.
pub fn decode_into(fields: &[FieldType], b: &[u8], out: &mut impl Extend<Value>) -> Result<(), String> {
    for_each(fields, b, |v| out.extend(std::iter::once(v.to_owned())))
}

/// Walks a payload field by field without allocating: the check a collector
/// makes before it keeps a record, and the way it then reads it.
pub fn for_each<'a>(fields: &[FieldType], b: &'a [u8], mut f: impl FnMut(ValueRef<'a>)) -> Result<(), String> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&'a [u8], String> {
        let s = b
            .get(pos..pos + n)
            .ok_or_else(|| format!("payload ends at byte {} of {n} needed at {pos}", b.len()))?;
        pos += n;
        Ok(s)
    };
    for &t in fields {
        let v = match t {
            FieldType::U8 => ValueRef::U(u64::from(take(1)?[0])),
            FieldType::Bool => ValueRef::B(take(1)?[0] != 0),
            FieldType::I8 => ValueRef::I(i64::from(take(1)?[0] as i8)),
            FieldType::U16 => ValueRef::U(u64::from(u16::from_le_bytes(take(2)?.try_into().unwrap_or_default()))),
            FieldType::I16 => ValueRef::I(i64::from(i16::from_le_bytes(take(2)?.try_into().unwrap_or_default()))),
            FieldType::U32 => ValueRef::U(u64::from(u32::from_le_bytes(take(4)?.try_into().unwrap_or_default()))),
            FieldType::I32 => ValueRef::I(i64::from(i32::from_le_bytes(take(4)?.try_into().unwrap_or_default()))),
            FieldType::U64 | FieldType::Ptr => ValueRef::U(u64::from_le_bytes(take(8)?.try_into().unwrap_or_default())),
            FieldType::I64 => ValueRef::I(i64::from_le_bytes(take(8)?.try_into().unwrap_or_default())),
            FieldType::F64 => ValueRef::F(f64::from_le_bytes(take(8)?.try_into().unwrap_or_default())),
            FieldType::Str | FieldType::Bytes => {
                let n = u16::from_le_bytes(take(2)?.try_into().unwrap_or_default()) as usize;
                if n > MAX_VAR {
                    return Err(format!("string of {n} bytes exceeds {MAX_VAR}"));
                }
                let s = take(n)?;
                if t == FieldType::Str {
                    ValueRef::Str(s)
                } else {
                    ValueRef::Bytes(s)
                }
            }
            FieldType::U64Array => return Err("u64[] is not a probe field type".into()),
        };
        f(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_checks_bounds() {
        let mut b = Vec::new();
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&(-2i32).to_le_bytes());
        b.extend_from_slice(&3u16.to_le_bytes());
        b.extend_from_slice(b"abc");
        let f = [FieldType::U64, FieldType::I32, FieldType::Str];
        assert_eq!(
            decode(&f, &b).unwrap(),
            vec![Value::U(7), Value::I(-2), Value::Str(b"abc".to_vec())]
        );
        assert!(decode(&f, &b[..b.len() - 1]).is_err());
        let mut big = vec![0xff, 0xff];
        big.extend_from_slice(&[0; 10]);
        assert!(decode(&[FieldType::Bytes], &big).is_err());
    }
}
