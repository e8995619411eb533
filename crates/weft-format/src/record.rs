//! Records: the timestamped, typed events inside events chunks.

use crate::schema::SchemaId;
use crate::wire::{Cursor, WireResult};

/// One decoded field value. Unsigned integers and pointers widen to `U64`,
/// signed integers to `I64`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    U64s(Vec<u64>),
}

impl Value {
    /// The value as an unsigned integer, reinterpreting signed ones.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            Value::I64(v) => Some(v as u64),
            Value::Bool(b) => Some(u64::from(b)),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U64(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            Value::Bool(b) => Some(i64::from(b)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A decoded record. `cpu` is `None` for sources that do not know it
/// (in-process probes).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub schema: SchemaId,
    pub ts: u64,
    pub cpu: Option<u32>,
    pub pid: u32,
    pub tid: u32,
    pub fields: Vec<Value>,
}

impl Record {
    pub fn u64(&self, i: usize) -> u64 {
        self.fields.get(i).and_then(Value::as_u64).unwrap_or(0)
    }

    pub fn i64(&self, i: usize) -> i64 {
        self.fields.get(i).and_then(Value::as_i64).unwrap_or(0)
    }

    pub fn str(&self, i: usize) -> &str {
        self.fields.get(i).and_then(Value::as_str).unwrap_or("")
    }

    /// A `Bytes` (or `String`) field's bytes; empty when it is missing.
    pub fn bytes(&self, i: usize) -> &[u8] {
        match self.fields.get(i) {
            Some(Value::Bytes(b)) => b,
            Some(Value::Str(s)) => s.as_bytes(),
            _ => &[],
        }
    }

    /// A `U64Array` field; empty when it is missing or of another type.
    pub fn u64s(&self, i: usize) -> &[u64] {
        match self.fields.get(i) {
            Some(Value::U64s(a)) => a,
            _ => &[],
        }
    }
}

/// The fixed part every record starts with.
pub(crate) struct RecordHead {
    pub schema: SchemaId,
    pub ts: u64,
    pub cpu: Option<u32>,
    pub pid: u32,
    pub tid: u32,
}

#[inline(always)]
pub(crate) fn decode_head(c: &mut Cursor, prev_ts: u64) -> WireResult<(RecordHead, usize)> {
    let schema = SchemaId(c.u32v()?);
    let at = c.pos();
    let delta = c.ivarint()?;
    let ts = prev_ts
        .checked_add_signed(delta)
        .ok_or_else(|| (at, "timestamp delta out of range".to_string()))?;
    let cpu = c.u32v()?;
    let pid = c.u32v()?;
    let tid = c.u32v()?;
    let len = c.uvarint()?;
    let len = usize::try_from(len).map_err(|_| (c.pos(), "record length too large".to_string()))?;
    Ok((
        RecordHead {
            schema,
            ts,
            cpu: cpu.checked_sub(1),
            pid,
            tid,
        },
        len,
    ))
}
