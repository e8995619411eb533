//! Schemas: the self-description that lets a reader decode records without
//! knowing who produced them (kernel collector, weft-probe, future uprobes).

use crate::wire::{put_bytes, put_uvarint, Cursor, WireResult};

/// Identifies a schema within one file. Assigned by the writer, dense from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaId(pub u32);

/// Type of one record field; fixes how the field is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F64,
    Bool,
    /// An address in the traced program; shown in hex.
    Ptr,
    /// Text; bytes are stored as given and decoded lossily as UTF-8.
    Str,
    Bytes,
    /// A list of u64 (e.g. call-chain addresses).
    U64Array,
}

impl FieldType {
    pub fn code(self) -> u8 {
        use FieldType::*;
        match self {
            U8 => 1,
            U16 => 2,
            U32 => 3,
            U64 => 4,
            I8 => 5,
            I16 => 6,
            I32 => 7,
            I64 => 8,
            F64 => 9,
            Bool => 10,
            Ptr => 11,
            Str => 12,
            Bytes => 13,
            U64Array => 14,
        }
    }

    pub fn from_code(c: u8) -> Option<Self> {
        use FieldType::*;
        Some(match c {
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
            14 => U64Array,
            _ => return None,
        })
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
}

/// A record type: a `provider:name` and its ordered fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub id: SchemaId,
    pub name: String,
    pub fields: Vec<Field>,
}

impl Schema {
    pub fn new(name: &str, fields: &[(&str, FieldType)]) -> Self {
        Schema {
            id: SchemaId(u32::MAX),
            name: name.to_owned(),
            fields: fields.iter().map(|&(n, ty)| Field { name: n.to_owned(), ty }).collect(),
        }
    }

    /// Index of a field by name.
    pub fn field(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

pub(crate) fn encode_schemas(schemas: &[Schema], out: &mut Vec<u8>) {
    put_uvarint(out, schemas.len() as u64);
    for s in schemas {
        put_uvarint(out, u64::from(s.id.0));
        put_bytes(out, s.name.as_bytes());
        put_uvarint(out, s.fields.len() as u64);
        for f in &s.fields {
            put_bytes(out, f.name.as_bytes());
            out.push(f.ty.code());
        }
    }
}

/// Most fields one schema may declare, and one Schemas chunk in total:
/// bounds what a hostile chunk can make a reader allocate.
pub const MAX_FIELDS_PER_SCHEMA: u32 = 1024;
const MAX_FIELDS_PER_CHUNK: u32 = 1 << 20;

pub(crate) fn decode_schemas(c: &mut Cursor) -> WireResult<Vec<Schema>> {
    let n = c.u32v()?;
    let mut v = Vec::new();
    let mut total = 0u32;
    for _ in 0..n {
        let id = SchemaId(c.u32v()?);
        let name = c.string()?;
        let at = c.pos();
        let nf = c.u32v()?;
        total = total.saturating_add(nf);
        if nf > MAX_FIELDS_PER_SCHEMA || total > MAX_FIELDS_PER_CHUNK {
            return Err((at, format!("schema {name} declares {nf} fields (limit {MAX_FIELDS_PER_SCHEMA} per schema, {MAX_FIELDS_PER_CHUNK} per chunk)")));
        }
        let mut fields = Vec::new();
        for _ in 0..nf {
            let fname = c.string()?;
            let at = c.pos();
            let code = c.u8()?;
            let ty = FieldType::from_code(code).ok_or((at, format!("unknown field type {code}")))?;
            fields.push(Field { name: fname, ty });
        }
        v.push(Schema { id, name, fields });
    }
    Ok(v)
}

/// One argument of a system call as the kernel declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallArg {
    /// C type as written in the tracepoint format (`unsigned long`, `const char *`).
    pub ctype: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallEntry {
    pub nr: u32,
    pub name: String,
    pub args: Vec<SyscallArg>,
}

/// The recording machine's system calls, so a trace decodes on another machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyscallTable {
    pub entries: Vec<SyscallEntry>,
}

impl SyscallTable {
    pub fn get(&self, nr: u32) -> Option<&SyscallEntry> {
        // Entries are written sorted by number.
        self.entries
            .binary_search_by_key(&nr, |e| e.nr)
            .ok()
            .map(|i| &self.entries[i])
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.entries.len() as u64);
        for e in &self.entries {
            put_uvarint(out, u64::from(e.nr));
            put_bytes(out, e.name.as_bytes());
            put_uvarint(out, e.args.len() as u64);
            for a in &e.args {
                put_bytes(out, a.ctype.as_bytes());
                put_bytes(out, a.name.as_bytes());
            }
        }
    }

    pub(crate) fn decode(c: &mut Cursor) -> WireResult<Self> {
        let n = c.u32v()?;
        let mut entries = Vec::new();
        for _ in 0..n {
            let nr = c.u32v()?;
            let name = c.string()?;
            let na = c.u32v()?;
            let mut args = Vec::new();
            for _ in 0..na {
                let ctype = c.string()?;
                let name = c.string()?;
                args.push(SyscallArg { ctype, name });
            }
            entries.push(SyscallEntry { nr, name, args });
        }
        entries.sort_by_key(|e| e.nr);
        Ok(SyscallTable { entries })
    }
}
