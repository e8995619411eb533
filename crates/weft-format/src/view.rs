//! Records read in place: a record's fields are decoded from its chunk's
//! payload when they are asked for, so reading a trace this way allocates
//! nothing per record. [`crate::Trace::views`] yields them in time order.
//!
//! Every field of a record was checked when its chunk was indexed: a view
//! only ever sees records that decode, and a damaged one is reported there,
//! as [`crate::Trace::records`] reports it.

use std::borrow::Cow;

use crate::record::{Record, Value};
use crate::schema::{FieldType, Schema};
use crate::wire::{skip_varint, Cursor, WireResult};

/// One field of a record, borrowed from the chunk's payload.
#[derive(Debug, Clone, Copy)]
pub enum FieldRef<'a> {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Str(&'a [u8]),
    Bytes(&'a [u8]),
    U64s(U64s<'a>),
}

impl FieldRef<'_> {
    /// The owned value.
    pub fn to_value(self) -> Value {
        match self {
            FieldRef::U64(v) => Value::U64(v),
            FieldRef::I64(v) => Value::I64(v),
            FieldRef::F64(v) => Value::F64(v),
            FieldRef::Bool(v) => Value::Bool(v),
            FieldRef::Str(s) => Value::Str(String::from_utf8_lossy(s).into_owned()),
            FieldRef::Bytes(b) => Value::Bytes(b.to_vec()),
            FieldRef::U64s(a) => Value::U64s(a.collect()),
        }
    }
}

/// A `U64Array` field: its elements are decoded as they are iterated.
#[derive(Debug, Clone, Copy)]
pub struct U64s<'a> {
    left: usize,
    bytes: &'a [u8],
}

impl U64s<'_> {
    pub const EMPTY: U64s<'static> = U64s { left: 0, bytes: &[] };
}

impl Iterator for U64s<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.left == 0 {
            return None;
        }
        let mut c = Cursor::new(self.bytes);
        let v = c.uvarint().ok()?;
        self.bytes = &self.bytes[c.pos()..];
        self.left -= 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for U64s<'_> {}

/// How a record's body is encoded.
// A word wide: a one-byte store read back with the view's other words
// stalled the reader's hottest loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u64)]
pub(crate) enum Encoding {
    /// Varints and length-prefixed bytes (events chunks).
    #[default]
    Wire,
    /// As weft-probe wrote it: little-endian, u16-prefixed bytes (probe chunks).
    Probe,
}

impl Encoding {
    pub(crate) fn of(kind: crate::chunk::ChunkKind) -> Encoding {
        match kind {
            crate::chunk::ChunkKind::Probe | crate::chunk::ChunkKind::ProbeDelta => Encoding::Probe,
            _ => Encoding::Wire,
        }
    }
}

/// A record whose fields are read from the chunk it lives in.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub schema: &'a Schema,
    pub ts: u64,
    /// `None` for sources that do not know it (in-process probes).
    pub cpu: Option<u32>,
    pub pid: u32,
    pub tid: u32,
    body: &'a [u8],
    encoding: Encoding,
}

impl<'a> RecordView<'a> {
    pub(crate) fn new(schema: &'a Schema, head: &Head, encoding: Encoding, payload: &'a [u8]) -> RecordView<'a> {
        let body = payload
            .get(head.start as usize..head.start as usize + head.len as usize)
            .unwrap_or(&[]);
        RecordView {
            schema,
            ts: head.ts,
            cpu: head.cpu.checked_sub(1),
            pid: head.pid,
            tid: head.tid,
            body,
            encoding,
        }
    }

    /// Field `i`, decoded from the payload (the ones before it are skipped).
    #[inline]
    pub fn field(&self, i: usize) -> Option<FieldRef<'a>> {
        match self.encoding {
            Encoding::Wire => {
                let (mut c, ty) = self.seek(i)?;
                wire_field(&mut c, ty, self.body).ok()
            }
            Encoding::Probe => {
                let mut got = None;
                let _ = walk(self.schema, self.encoding, self.body, |at, v| {
                    if at == i {
                        got = Some(v);
                        return false;
                    }
                    true
                });
                got
            }
        }
    }

    /// A standard-encoded body's cursor at field `i`, and the field's type.
    #[inline(always)]
    fn seek(&self, i: usize) -> Option<(Cursor<'a>, FieldType)> {
        let (before, rest) = self.schema.fields.split_at_checked(i)?;
        let ty = rest.first()?.ty;
        let mut c = Cursor::new(self.body);
        for f in before {
            wire_skip(&mut c, f.ty)?;
        }
        Some((c, ty))
    }

    /// An integer or bool field of a standard-encoded body, decoded without
    /// going through `FieldRef` (the hot path of most analyses).
    #[inline(always)]
    fn wire_int(&self, i: usize) -> Option<i128> {
        let (mut c, ty) = self.seek(i)?;
        match ty {
            FieldType::U8 | FieldType::U16 | FieldType::U32 | FieldType::U64 | FieldType::Ptr => {
                c.uvarint().ok().map(i128::from)
            }
            FieldType::I8 | FieldType::I16 | FieldType::I32 | FieldType::I64 => c.ivarint().ok().map(i128::from),
            FieldType::Bool => c.u8().ok().map(|b| i128::from(b != 0)),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn u64(&self, i: usize) -> u64 {
        if self.encoding == Encoding::Wire {
            return self.wire_int(i).map_or(0, |v| v as u64);
        }
        match self.field(i) {
            Some(FieldRef::U64(v)) => v,
            Some(FieldRef::I64(v)) => v as u64,
            Some(FieldRef::Bool(b)) => u64::from(b),
            _ => 0,
        }
    }

    #[inline(always)]
    pub fn i64(&self, i: usize) -> i64 {
        if self.encoding == Encoding::Wire {
            return self.wire_int(i).map_or(0, |v| v as i64);
        }
        match self.field(i) {
            Some(FieldRef::U64(v)) => v as i64,
            Some(FieldRef::I64(v)) => v,
            Some(FieldRef::Bool(b)) => i64::from(b),
            _ => 0,
        }
    }

    #[inline]
    pub fn bool(&self, i: usize) -> bool {
        matches!(self.field(i), Some(FieldRef::Bool(true)))
    }

    /// A string field (invalid UTF-8 replaced, as `Record` has it).
    #[inline]
    pub fn str(&self, i: usize) -> Cow<'a, str> {
        match self.field(i) {
            Some(FieldRef::Str(s)) => String::from_utf8_lossy(s),
            _ => Cow::Borrowed(""),
        }
    }

    /// A `Bytes` (or string) field's bytes; empty when it is missing.
    #[inline]
    pub fn bytes(&self, i: usize) -> &'a [u8] {
        match self.field(i) {
            Some(FieldRef::Str(s) | FieldRef::Bytes(s)) => s,
            _ => &[],
        }
    }

    /// A `U64Array` field; empty when it is missing or of another type.
    #[inline]
    pub fn u64s(&self, i: usize) -> U64s<'a> {
        match self.field(i) {
            Some(FieldRef::U64s(a)) => a,
            _ => U64s::EMPTY,
        }
    }

    /// Each field in order, borrowed, until `f` returns false.
    pub fn for_each_field(&self, f: impl FnMut(usize, FieldRef<'a>) -> bool) {
        // Indexing checked every field: a walk cannot fail here.
        let _ = walk(self.schema, self.encoding, self.body, f);
    }

    /// The record with every field decoded and owned.
    pub fn to_record(&self) -> Record {
        let mut fields = Vec::with_capacity(self.schema.fields.len());
        let _ = walk(self.schema, self.encoding, self.body, |_, v| {
            fields.push(v.to_value());
            true
        });
        Record {
            schema: self.schema.id,
            ts: self.ts,
            cpu: self.cpu,
            pid: self.pid,
            tid: self.tid,
            fields,
        }
    }
}

/// Where a record is in its chunk's payload, and its fixed part.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub ts: u64,
    pub schema: u32,
    pub pid: u32,
    pub tid: u32,
    /// CPU + 1; 0 when unknown.
    pub cpu: u32,
    pub start: u32,
    pub len: u32,
}

/// What indexing a chunk does with each record of a known schema: check
/// it, or decode it. An error is (offset in the body, why).
/// (Generic, not `dyn`: it runs once per record.)
pub(crate) trait Visit: FnMut(&Schema, Head, &[u8]) -> Result<(), (usize, String)> {}
impl<F: FnMut(&Schema, Head, &[u8]) -> Result<(), (usize, String)>> Visit for F {}

/// Every field of a body, owned; an error says where it stopped decoding.
pub(crate) fn decode(schema: &Schema, encoding: Encoding, body: &[u8]) -> Result<Vec<Value>, (usize, String)> {
    let mut fields = Vec::with_capacity(schema.fields.len());
    if encoding == Encoding::Probe {
        walk(schema, encoding, body, |_, v| {
            fields.push(v.to_value());
            true
        })?;
        return Ok(fields);
    }
    // As `walk_wire`, but arrays are decoded once, straight into place
    // (through `wire_field` they would be walked, then decoded).
    let mut c = Cursor::new(body);
    for f in &schema.fields {
        let v = match f.ty {
            FieldType::U64Array => {
                let at = c.pos();
                let n = c.uvarint()?;
                // Each element takes at least one byte: bound the allocation.
                if n > body.len() as u64 {
                    return Err((at, format!("array of {n} elements in a {} byte record", body.len())));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(c.uvarint()?);
                }
                Value::U64s(v)
            }
            ty => wire_field(&mut c, ty, body)?.to_value(),
        };
        fields.push(v);
    }
    Ok(fields)
}

/// Calls `f` with each field of a body in order, until it returns false.
/// An error says where the body stopped decoding.
pub(crate) fn walk<'a>(
    schema: &Schema,
    encoding: Encoding,
    body: &'a [u8],
    mut f: impl FnMut(usize, FieldRef<'a>) -> bool,
) -> Result<(), (usize, String)> {
    match encoding {
        Encoding::Wire => walk_wire(schema, body, f),
        Encoding::Probe => {
            let mut i = 0;
            let mut going = true;
            crate::probe::for_each_field(schema, body, |v| {
                if going {
                    going = f(i, v);
                }
                i += 1;
            })
            .map_err(|e| (0, e))
        }
    }
}

fn walk_wire<'a>(schema: &Schema, body: &'a [u8], mut f: impl FnMut(usize, FieldRef<'a>) -> bool) -> WireResult<()> {
    let mut c = Cursor::new(body);
    for (i, field) in schema.fields.iter().enumerate() {
        if !f(i, wire_field(&mut c, field.ty, body)?) {
            break;
        }
    }
    Ok(())
}

/// Moves `c` past a standard-encoded field of type `ty`.
#[inline(always)]
fn wire_skip(c: &mut Cursor, ty: FieldType) -> Option<()> {
    match ty {
        FieldType::F64 => c.take(8).ok().map(drop),
        FieldType::Bool => c.take(1).ok().map(drop),
        FieldType::Str | FieldType::Bytes => c.bytes().ok().map(drop),
        FieldType::U64Array => {
            let n = c.uvarint().ok()?;
            (0..n).try_for_each(|_| c.uvarint().ok().map(drop))
        }
        _ => c.uvarint().ok().map(drop),
    }
}

/// The standard-encoded field of type `ty` at `c` (in `body`).
#[inline]
fn wire_field<'a>(c: &mut Cursor<'a>, ty: FieldType, body: &'a [u8]) -> WireResult<FieldRef<'a>> {
    Ok(match ty {
        FieldType::U8 | FieldType::U16 | FieldType::U32 | FieldType::U64 | FieldType::Ptr => {
            FieldRef::U64(c.uvarint()?)
        }
        FieldType::I8 | FieldType::I16 | FieldType::I32 | FieldType::I64 => FieldRef::I64(c.ivarint()?),
        FieldType::F64 => {
            let b = c.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            FieldRef::F64(f64::from_le_bytes(a))
        }
        FieldType::Bool => FieldRef::Bool(c.u8()? != 0),
        FieldType::Str => FieldRef::Str(c.bytes()?),
        FieldType::Bytes => FieldRef::Bytes(c.bytes()?),
        FieldType::U64Array => {
            let at = c.pos();
            let n = c.uvarint()?;
            // Each element takes at least one byte.
            if n > body.len() as u64 {
                return Err((at, format!("array of {n} elements in a {} byte record", body.len())));
            }
            let start = c.pos();
            for _ in 0..n {
                c.uvarint()?;
            }
            FieldRef::U64s(U64s {
                left: n as usize,
                bytes: &body[start..c.pos()],
            })
        }
    })
}

/// Checks that every field of a body decodes.
#[inline(always)]
pub(crate) fn check(schema: &Schema, encoding: Encoding, body: &[u8]) -> Result<(), (usize, String)> {
    match encoding {
        // Skipping a varint is cheaper than decoding it; on any doubt the
        // full walk says what is wrong.
        Encoding::Wire if skips(schema, body) => Ok(()),
        // Fixed-size fields fit if the body is long enough (it is padded).
        Encoding::Probe if fixed_size(schema).is_some_and(|n| body.len() >= n) => Ok(()),
        _ => walk(schema, encoding, body, |_, _| true),
    }
}

/// The bytes a probe record's fields take when none has a variable size.
#[inline(always)]
fn fixed_size(schema: &Schema) -> Option<usize> {
    schema.fields.iter().try_fold(0usize, |n, f| {
        let size = match f.ty {
            FieldType::U8 | FieldType::I8 | FieldType::Bool => 1,
            FieldType::U16 | FieldType::I16 => 2,
            FieldType::U32 | FieldType::I32 => 4,
            FieldType::U64 | FieldType::I64 | FieldType::Ptr | FieldType::F64 => 8,
            FieldType::Str | FieldType::Bytes | FieldType::U64Array => return None,
        };
        Some(n + size)
    })
}

/// Whether every field of a standard-encoded body can be skipped over.
#[inline(always)]
fn skips(schema: &Schema, body: &[u8]) -> bool {
    let mut pos = 0usize;
    // A length or count: its value is needed.
    let value = |pos: &mut usize| -> Option<u64> {
        let mut c = Cursor::at(body, *pos);
        let v = c.uvarint().ok()?;
        *pos = c.pos();
        Some(v)
    };
    for f in &schema.fields {
        let ok = match f.ty {
            FieldType::U8
            | FieldType::U16
            | FieldType::U32
            | FieldType::U64
            | FieldType::Ptr
            | FieldType::I8
            | FieldType::I16
            | FieldType::I32
            | FieldType::I64 => skip_varint(body, pos).map(|end| pos = end).is_some(),
            FieldType::F64 => {
                pos += 8;
                pos <= body.len()
            }
            FieldType::Bool => {
                pos += 1;
                pos <= body.len()
            }
            FieldType::Str | FieldType::Bytes => match value(&mut pos) {
                Some(n) if n <= (body.len() - pos) as u64 => {
                    pos += n as usize;
                    true
                }
                _ => false,
            },
            FieldType::U64Array => match value(&mut pos) {
                Some(n) if n <= body.len() as u64 => {
                    (0..n).all(|_| skip_varint(body, pos).map(|end| pos = end).is_some())
                }
                _ => false,
            },
        };
        if !ok {
            return false;
        }
    }
    true
}
