//! Schemas: the self-description that lets a reader decode records without
//! knowing who produced them (kernel collector, weft-probe, future uprobes).

use crate::wire::{put_bytes, put_uvarint, Cursor, WireResult};
use std::sync::OnceLock;

/// Identifies a schema within one file. Assigned by the writer, dense from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaId(pub u32);

/// Type of one record field; fixes how the field is encoded. One enum with
/// the probe ABI's, which owns it (it must stay dependency-free).
pub use weft_probe_abi::payload::FieldType;

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

/// One schema's entry of a Schemas chunk (after the chunk's count).
pub(crate) fn encode_schema(s: &Schema, out: &mut Vec<u8>) {
    put_uvarint(out, u64::from(s.id.0));
    put_bytes(out, s.name.as_bytes());
    put_uvarint(out, s.fields.len() as u64);
    for f in &s.fields {
        put_bytes(out, f.name.as_bytes());
        out.push(f.ty.code());
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
            let ty = FieldType::from_code(code).ok_or_else(|| (at, format!("unknown field type {code}")))?;
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

impl SyscallEntry {
    /// An entry from its arguments' (C type, name) pairs, as tracefs lists them.
    pub fn new(nr: u32, name: &str, args: &[(&str, &str)]) -> SyscallEntry {
        SyscallEntry {
            nr,
            name: name.into(),
            args: args
                .iter()
                .map(|(ctype, name)| SyscallArg {
                    ctype: (*ctype).into(),
                    name: (*name).into(),
                })
                .collect(),
        }
    }
}

/// The recording machine's system calls, so a trace decodes on another machine.
#[derive(Debug, Clone, Default)]
pub struct SyscallTable {
    pub entries: Vec<SyscallEntry>,
    /// Position in `entries` by number, built on first use: a dump looks
    /// up every record's syscall, and a binary search showed in profiles.
    by_nr: OnceLock<Vec<u16>>,
}

impl PartialEq for SyscallTable {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for SyscallTable {}

/// Numbers up to this are found through `by_nr`; any above (none on
/// today's architectures) by a search.
const DIRECT_NRS: usize = 4096;
const NO_ENTRY: u16 = u16::MAX;

impl SyscallTable {
    pub fn new(entries: Vec<SyscallEntry>) -> SyscallTable {
        SyscallTable {
            entries,
            by_nr: OnceLock::new(),
        }
    }

    /// The syscall's name, or `syscall_NR` for a number the table lacks.
    pub fn name(&self, nr: u32) -> String {
        self.get(nr).map_or_else(|| format!("syscall_{nr}"), |e| e.name.clone())
    }

    #[inline]
    pub fn get(&self, nr: u32) -> Option<&SyscallEntry> {
        let by_nr = self.by_nr.get_or_init(|| {
            let mut t = Vec::new();
            for (i, e) in self.entries.iter().enumerate() {
                let n = e.nr as usize;
                if n < DIRECT_NRS && i < usize::from(NO_ENTRY) {
                    if t.len() <= n {
                        t.resize(n + 1, NO_ENTRY);
                    }
                    if t[n] == NO_ENTRY {
                        t[n] = i as u16;
                    }
                }
            }
            t
        });
        if let Some(&i) = by_nr.get(nr as usize) {
            // Checked, since `entries` is public and may have changed.
            if let Some(e) = self.entries.get(usize::from(i)).filter(|e| e.nr == nr) {
                return Some(e);
            }
        }
        self.search(nr)
    }

    #[cold]
    fn search(&self, nr: u32) -> Option<&SyscallEntry> {
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
        Ok(SyscallTable::new(entries))
    }
}
