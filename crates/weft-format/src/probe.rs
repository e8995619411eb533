//! Probe chunks: weft-probe records kept as the program wrote them.
//!
//! The recorder copies committed records out of a process's shared memory
//! and stores them unchanged, with what a reader needs to turn them into
//! [`Record`]s: the process and thread, a linear tick-to-CLOCK_MONOTONIC
//! conversion, and which schema each event id of the run uses
//! (docs/format.md §5.5). Decoding happens here, when the trace is read,
//! so that recording a flat-out program costs a copy per record, not an
//! encode.

use std::collections::HashMap;

use weft_probe_abi::layout::{committed_record, RECORD_HEADER_LEN};
use weft_probe_abi::payload::{self, ValueRef};

use crate::schema::{Schema, SchemaId};
use crate::view::{FieldRef, Head, Visit};
use crate::wire::{put_uvarint, Cursor, WireResult};

/// Ticks to CLOCK_MONOTONIC nanoseconds on one straight line:
/// `ts = mono0 + (tick − tick0) × slope / 2³²`, signed, saturating at the
/// ends of `u64`. `slope` is nanoseconds per tick in 32.32 fixed point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeClock {
    pub tick0: u64,
    pub mono0: u64,
    pub slope: u64,
}

impl ProbeClock {
    /// For writers whose ticks already are CLOCK_MONOTONIC nanoseconds.
    pub const IDENTITY: ProbeClock = ProbeClock {
        tick0: 0,
        mono0: 0,
        slope: 1 << 32,
    };

    #[inline]
    pub fn ts(&self, tick: u64) -> u64 {
        let dt = i128::from(tick) - i128::from(self.tick0);
        let ns = (dt * i128::from(self.slope)) >> 32;
        (i128::from(self.mono0) + ns).clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// Probe runs waiting to become one probe chunk: the runs' records back
/// to back, then an index saying whose they are (docs/format.md §5.5). The
/// records come first so that a collector can copy them straight from a
/// process's buffer to their place in the chunk.
#[derive(Default)]
pub struct ProbeBuf {
    /// The records of every run so far (the index is appended when the
    /// chunk is cut).
    pub(crate) bytes: Vec<u8>,
    index: Vec<u8>,
    pub(crate) count: u32,
    pub(crate) min_ts: u64,
    pub(crate) max_ts: u64,
}

/// Who wrote a run of probe records, and how to read them.
#[derive(Debug, Clone, Copy)]
pub struct ProbeRunInfo<'a> {
    pub pid: u32,
    pub tid: u32,
    pub clock: ProbeClock,
    /// The schema of every event id the run uses.
    pub map: &'a [(u32, SchemaId)],
    pub count: u32,
    /// Smallest and largest timestamp of its records, by `clock`.
    pub min_ts: u64,
    pub max_ts: u64,
}

impl ProbeBuf {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Payload bytes so far.
    pub fn byte_len(&self) -> usize {
        self.bytes.len() + self.index.len() + 4
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.index.clear();
        self.count = 0;
    }

    /// The records area, for a caller that appends a run's records itself
    /// and then calls [`add_run`](Self::add_run) with their length.
    pub fn records_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Appends one run: its records are the last `len` bytes of the records
    /// area, `count` committed records of one thread, back to back, whose
    /// checks hold or are cleared (a collector clears each once checked:
    /// the writer computes them again where it needs them).
    pub fn add_run(&mut self, run: &ProbeRunInfo<'_>, len: usize) {
        if run.count == 0 {
            return;
        }
        if self.count == 0 {
            (self.min_ts, self.max_ts) = (run.min_ts, run.max_ts);
        }
        self.min_ts = self.min_ts.min(run.min_ts);
        self.max_ts = self.max_ts.max(run.max_ts);
        self.count += run.count;
        let b = &mut self.index;
        put_uvarint(b, u64::from(run.pid));
        put_uvarint(b, u64::from(run.tid));
        put_uvarint(b, run.clock.tick0);
        put_uvarint(b, run.clock.mono0);
        put_uvarint(b, run.clock.slope);
        put_uvarint(b, run.map.len() as u64);
        for &(event, schema) in run.map {
            put_uvarint(b, u64::from(event));
            put_uvarint(b, u64::from(schema.0));
        }
        put_uvarint(b, u64::from(run.count));
        put_uvarint(b, len as u64);
    }

    /// Appends one run whose records are in `records`.
    pub fn run(&mut self, run: &ProbeRunInfo<'_>, records: &[u8]) {
        if run.count == 0 {
            return;
        }
        self.bytes.extend_from_slice(records);
        self.add_run(run, records.len());
    }

    /// Finishes the payload in place: the index and its length go after
    /// the records. The buffer must be cleared afterwards.
    pub(crate) fn seal(&mut self) {
        self.bytes.extend_from_slice(&self.index);
        self.bytes.extend_from_slice(&(self.index.len() as u32).to_le_bytes());
    }
}

/// What went wrong in a probe chunk: (offset in the payload, why).
pub(crate) type Bad = (usize, String);

/// Decodes a probe chunk's payload. Runs before a malformed run head are
/// kept; a record that fails its checks is skipped (its length frames the
/// next one, else the rest of the run is given up).
pub(crate) fn index(payload: &[u8], schemas: &HashMap<u32, Schema>, visit: &mut impl Visit, errors: &mut Vec<Bad>) {
    let Some(split) = payload.len().checked_sub(4) else {
        errors.push((0, "probe chunk shorter than its index length".into()));
        return;
    };
    let index_len = u32::from_le_bytes([
        payload[split],
        payload[split + 1],
        payload[split + 2],
        payload[split + 3],
    ]);
    let Some(records_end) = split.checked_sub(index_len as usize) else {
        errors.push((
            split,
            format!(
                "probe chunk index of {index_len} bytes in a {} byte payload",
                payload.len()
            ),
        ));
        return;
    };
    let records = &payload[..records_end];
    let mut cur = Cursor::new(&payload[records_end..split]);
    let mut unknown = 0u64;
    let mut at = 0usize;
    while !cur.is_empty() {
        match decode_run(&mut cur, records, &mut at, schemas, visit, errors, &mut unknown) {
            Ok(()) => {}
            Err((pos, why)) => {
                errors.push((records_end + pos, why));
                break;
            }
        }
    }
    if unknown > 0 {
        errors.push((
            0,
            format!("{unknown} records use event ids or schemas missing from the file (skipped)"),
        ));
    }
}

fn decode_run(
    cur: &mut Cursor,
    area: &[u8],
    at: &mut usize,
    schemas: &HashMap<u32, Schema>,
    visit: &mut impl Visit,
    errors: &mut Vec<Bad>,
    unknown: &mut u64,
) -> WireResult<()> {
    let pid = cur.u32v()?;
    let tid = cur.u32v()?;
    let clock = ProbeClock {
        tick0: cur.uvarint()?,
        mono0: cur.uvarint()?,
        slope: cur.uvarint()?,
    };
    let here = cur.pos();
    let nmap = cur.u32v()? as usize;
    // Each entry takes at least two bytes: bound the allocation.
    if nmap > cur.remaining() / 2 {
        return Err((
            here,
            format!("event map of {nmap} entries in {} bytes", cur.remaining()),
        ));
    }
    let mut map = Vec::with_capacity(nmap);
    for _ in 0..nmap {
        map.push((cur.u32v()?, cur.u32v()?));
    }
    map.sort_unstable();
    let _count = cur.u32v()?;
    let here = cur.pos();
    let len = cur.uvarint()?;
    let base = *at;
    let records = usize::try_from(len)
        .ok()
        .and_then(|l| area.get(base..base.checked_add(l)?))
        .ok_or_else(|| {
            (
                here,
                format!("run of {len} bytes at {base} past the {} bytes of records", area.len()),
            )
        })?;
    *at += records.len();
    let mut pos = 0usize;
    // A run holds few events, most often the same one again and again.
    let mut last: Option<(u32, &Schema)> = None;
    while pos < records.len() {
        let rest = &records[pos..];
        let Some(h) = committed_record(rest) else {
            errors.push((
                base + pos,
                "probe record header fails its check; rest of the run skipped".into(),
            ));
            break;
        };
        let body = &rest[RECORD_HEADER_LEN..h.len as usize];
        pos += h.len as usize;
        let schema = match last {
            Some((event, schema)) if event == h.event => Some(schema),
            _ => {
                let found = map
                    .binary_search_by_key(&h.event, |&(e, _)| e)
                    .ok()
                    .and_then(|i| schemas.get(&map[i].1));
                last = found.map(|s| (h.event, s));
                found
            }
        };
        let Some(schema) = schema else {
            *unknown += 1;
            continue;
        };
        let head = Head {
            ts: clock.ts(h.tsc),
            schema: schema.id.0,
            pid,
            tid,
            cpu: 0,
            start: (base + pos - h.len as usize + RECORD_HEADER_LEN) as u32,
            len: body.len() as u32,
        };
        match visit(schema, head, body) {
            Ok(()) => {}
            Err((_, e)) => errors.push((
                base + pos - h.len as usize,
                format!("probe record of {}: {e}", schema.name),
            )),
        }
    }
    Ok(())
}

/// Each field of a probe record's body, as its schema types them.
pub(crate) fn for_each_field<'a>(
    schema: &Schema,
    body: &'a [u8],
    mut f: impl FnMut(FieldRef<'a>),
) -> Result<(), String> {
    let types = schema.fields.iter().map(|f| f.ty);
    for_each_typed(types, body, |v| {
        f(match v {
            ValueRef::U(x) => FieldRef::U64(x),
            ValueRef::I(x) => FieldRef::I64(x),
            ValueRef::F(x) => FieldRef::F64(x),
            ValueRef::B(x) => FieldRef::Bool(x),
            ValueRef::Str(s) => FieldRef::Str(s),
            ValueRef::Bytes(s) => FieldRef::Bytes(s),
        })
    })
}

/// `payload::for_each` over a schema's types without collecting them first.
fn for_each_typed<'a>(
    types: impl Iterator<Item = payload::FieldType> + Clone,
    b: &'a [u8],
    f: impl FnMut(ValueRef<'a>),
) -> Result<(), String> {
    let mut small = [payload::FieldType::U8; 16];
    let n = types.clone().count();
    if n <= small.len() {
        for (slot, t) in small.iter_mut().zip(types) {
            *slot = t;
        }
        payload::for_each(&small[..n], b, f)
    } else {
        let all: Vec<_> = types.collect();
        payload::for_each(&all, b, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_probe_abi::layout::{record_word0, STATE_COMMITTED};

    /// One committed record as weft-probe writes it.
    pub(crate) fn raw_record(event: u32, seq: u64, tick: u64, payload: &[u8]) -> Vec<u8> {
        let len = ((RECORD_HEADER_LEN + payload.len() + 7) & !7) as u32;
        let mut r = Vec::new();
        r.extend_from_slice(&record_word0(len, event, seq, tick).to_le_bytes());
        r.extend_from_slice(&((seq << 8) | u64::from(STATE_COMMITTED)).to_le_bytes());
        r.extend_from_slice(&tick.to_le_bytes());
        r.extend_from_slice(payload);
        r.resize(len as usize, 0);
        r
    }

    #[test]
    fn the_clock_is_linear_both_ways_and_saturates() {
        let c = ProbeClock {
            tick0: 1000,
            mono0: 5000,
            slope: 3 << 31, // 1.5 ns per tick
        };
        assert_eq!(c.ts(1000), 5000);
        assert_eq!(c.ts(1100), 5150);
        assert_eq!(c.ts(900), 4850);
        assert_eq!(c.ts(0), 3500);
        let far = ProbeClock { mono0: 10, ..c };
        assert_eq!(far.ts(0), 0);
        assert_eq!(ProbeClock::IDENTITY.ts(u64::MAX), u64::MAX);
    }

    #[test]
    fn a_flipped_header_byte_is_not_a_committed_record() {
        let r = raw_record(3, 9, 77, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(committed_record(&r).is_some());
        for i in 0..RECORD_HEADER_LEN {
            let mut bad = r.clone();
            bad[i] ^= 0x10;
            assert!(committed_record(&bad).is_none(), "byte {i}");
        }
        assert!(committed_record(&r[..r.len() - 8]).is_none());
    }
}
