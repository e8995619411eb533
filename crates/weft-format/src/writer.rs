//! Writing a trace: append-only, one `write` per chunk so that a recorder
//! killed at any moment leaves at most one partial chunk at the end.

use std::io::{self, Write};

use crate::chunk::{ChunkKind, MAX_CHUNK_RAW_LEN};
use crate::output::{Chunk, Output};
use crate::probe::{ProbeBuf, ProbeRunInfo};
use crate::schema::{encode_schema, Schema, SchemaId, SyscallTable};
use crate::wire::{put_bytes, put_ivarint, put_uvarint};
use crate::{FILE_HEADER_LEN, FILE_MAGIC, VERSION_MAJOR, VERSION_MINOR};

/// A batch of encoded records that becomes one events chunk.
///
/// Records may come in any order (the reader merges by timestamp using each
/// chunk's min/max); mostly sorted input keeps the deltas small.
#[derive(Default)]
pub struct RecordBuf {
    bytes: Vec<u8>,
    /// Where the open record's body starts in `bytes` (its length byte is
    /// just before).
    body: usize,
    count: u32,
    min_ts: u64,
    max_ts: u64,
    last_ts: u64,
}

impl RecordBuf {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size so far.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.count = 0;
    }

    /// Starts a record; add its fields in schema order, then call `finish`.
    #[inline]
    pub fn record(&mut self, schema: SchemaId, ts: u64, cpu: Option<u32>, pid: u32, tid: u32) -> RecordBuilder<'_> {
        if self.count == 0 {
            self.min_ts = ts;
            self.max_ts = ts;
            // The first record's delta is from 0: the chunk's minimum is not
            // known until the chunk is complete.
            self.last_ts = 0;
        }
        put_uvarint(&mut self.bytes, u64::from(schema.0));
        put_ivarint(&mut self.bytes, ts.wrapping_sub(self.last_ts) as i64);
        put_uvarint(&mut self.bytes, cpu.map_or(0, |c| u64::from(c) + 1));
        put_uvarint(&mut self.bytes, u64::from(pid));
        put_uvarint(&mut self.bytes, u64::from(tid));
        self.last_ts = ts;
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        // The body goes straight after a one-byte length, widened in
        // `finish` for the rare body of 128 bytes or more.
        self.bytes.push(0);
        self.body = self.bytes.len();
        RecordBuilder { buf: self }
    }
}

/// Appends one record's fields. Types must follow the schema: the reader
/// decodes by the schema, not by tags.
pub struct RecordBuilder<'a> {
    buf: &'a mut RecordBuf,
}

impl RecordBuilder<'_> {
    /// Any unsigned integer or pointer field.
    #[inline]
    pub fn u64(self, v: u64) -> Self {
        put_uvarint(&mut self.buf.bytes, v);
        self
    }

    /// Any signed integer field.
    #[inline]
    pub fn i64(self, v: i64) -> Self {
        put_ivarint(&mut self.buf.bytes, v);
        self
    }

    #[inline]
    pub fn f64(self, v: f64) -> Self {
        self.buf.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    #[inline]
    pub fn bool(self, v: bool) -> Self {
        self.buf.bytes.push(u8::from(v));
        self
    }

    /// A `Str` or `Bytes` field.
    #[inline]
    pub fn bytes(self, v: &[u8]) -> Self {
        put_bytes(&mut self.buf.bytes, v);
        self
    }

    pub fn u64s(self, v: &[u64]) -> Self {
        put_uvarint(&mut self.buf.bytes, v.len() as u64);
        for &x in v {
            put_uvarint(&mut self.buf.bytes, x);
        }
        self
    }

    #[inline]
    pub fn finish(self) {
        let b = self.buf;
        let len = (b.bytes.len() - b.body) as u64;
        if len < 0x80 {
            b.bytes[b.body - 1] = len as u8;
        } else {
            let mut prefix = Vec::with_capacity(10);
            put_uvarint(&mut prefix, len);
            b.bytes.splice(b.body - 1..b.body, prefix);
        }
        b.count += 1;
    }
}

/// Events chunks are cut once about this much is encoded: big enough for
/// zstd to do well, small enough that a reader and a crash lose little (the
/// format allows up to `MAX_CHUNK_RAW_LEN`).
pub const EVENTS_CHUNK_BYTES: usize = 1 << 20;

/// Writes a trace file chunk by chunk. Records go in through `record`, and
/// the writer cuts them into events chunks itself; `write_events` writes a
/// caller's own batch as one chunk, for callers that choose the boundaries.
pub struct TraceWriter<W: Write> {
    output: Output<W>,
    level: i32,
    seq: u32,
    next_schema: u32,
    pending_schemas: Vec<Schema>,
    /// Records not written yet.
    events: RecordBuf,
    /// Probe runs not written yet.
    probe: ProbeBuf,
    /// A write error met while cutting a chunk inside `record`, returned by
    /// the next `flush` or `finish`.
    error: Option<io::Error>,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the file header and the Info chunk.
    pub fn new(mut out: W, info: &[(&str, String)], zstd_level: i32) -> io::Result<Self> {
        let mut h = [0u8; FILE_HEADER_LEN];
        h[0..8].copy_from_slice(&FILE_MAGIC);
        h[8..10].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
        h[10..12].copy_from_slice(&VERSION_MINOR.to_le_bytes());
        // 12..16 flags, 16..28 reserved: zero.
        let crc = crc32c::crc32c(&h[0..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        out.write_all(&h)?;
        let mut w = TraceWriter {
            output: Output::inline(out, zstd_level, FILE_HEADER_LEN as u64)?,
            level: zstd_level,
            seq: 0,
            next_schema: 0,
            pending_schemas: Vec::new(),
            events: RecordBuf::new(),
            probe: ProbeBuf::new(),
            error: None,
        };
        let mut p = Vec::new();
        encode_kv(info, &mut p);
        w.write_chunk(ChunkKind::Info, p, 0, 0, 0)?;
        Ok(w)
    }

    /// Declares a record type; it is written before the next events chunk.
    pub fn add_schema(&mut self, mut schema: Schema) -> SchemaId {
        schema.id = SchemaId(self.next_schema);
        self.next_schema += 1;
        let id = schema.id;
        self.pending_schemas.push(schema);
        id
    }

    /// Writes the pending schemas, in as many chunks as their size needs;
    /// each leaves the list only once its chunk is written.
    fn flush_schemas(&mut self) -> io::Result<()> {
        while !self.pending_schemas.is_empty() {
            let (mut body, mut n) = (Vec::new(), 0);
            for s in &self.pending_schemas {
                let before = body.len();
                encode_schema(s, &mut body);
                // Half a chunk at most (the count's varint and slack aside).
                if n > 0 && body.len() > MAX_CHUNK_RAW_LEN as usize / 2 {
                    body.truncate(before);
                    break;
                }
                n += 1;
            }
            let mut p = Vec::with_capacity(body.len() + 10);
            put_uvarint(&mut p, n as u64);
            p.extend_from_slice(&body);
            self.write_chunk(ChunkKind::Schemas, p, 0, 0, 0)?;
            self.pending_schemas.drain(..n);
        }
        Ok(())
    }

    pub fn write_syscall_table(&mut self, table: &SyscallTable) -> io::Result<()> {
        let mut p = Vec::new();
        table.encode(&mut p);
        self.write_chunk(ChunkKind::SyscallTable, p, 0, 0, 0)
    }

    /// Writes the batch as one events chunk (after any pending schemas) and clears it.
    pub fn write_events(&mut self, buf: &mut RecordBuf) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        self.flush_schemas()?;
        let bytes = std::mem::replace(&mut buf.bytes, self.output.spare());
        let r = self.write_chunk(ChunkKind::Events, bytes, buf.count, buf.min_ts, buf.max_ts);
        buf.clear();
        r
    }

    /// Appends a run of weft-probe records (see [`ProbeBuf::run`]); they
    /// are written as a probe chunk when enough are buffered. Every
    /// record's check byte must hold or be 0 (cleared once checked): the
    /// writer computes them again.
    pub fn probe_run(&mut self, run: &ProbeRunInfo<'_>, records: &[u8]) {
        self.make_room(records.len());
        self.probe.run(run, records);
    }

    /// Where to append the records of a run directly (then call
    /// [`probe_run_added`](Self::probe_run_added), or truncate what was
    /// appended): the records area of the probe chunk being filled, with
    /// room made for `max` more bytes.
    pub fn probe_records(&mut self, max: usize) -> &mut Vec<u8> {
        self.make_room(max);
        let r = self.probe.records_mut();
        if r.capacity() == 0 {
            r.reserve(EVENTS_CHUNK_BYTES + max);
        }
        r
    }

    /// Takes back the last `len` bytes appended through `probe_records`.
    pub fn probe_unappend(&mut self, len: usize) -> Vec<u8> {
        let r = self.probe.records_mut();
        r.split_off(r.len().saturating_sub(len))
    }

    /// Declares the last `len` bytes appended through `probe_records` a run.
    pub fn probe_run_added(&mut self, run: &ProbeRunInfo<'_>, len: usize) {
        self.probe.add_run(run, len);
        if self.probe.byte_len() >= EVENTS_CHUNK_BYTES {
            self.cut_probe();
        }
    }

    /// Cuts the probe chunk being filled if `more` bytes would take it past
    /// the chunk size.
    fn make_room(&mut self, more: usize) {
        if !self.probe.is_empty() && self.probe.byte_len() + more > EVENTS_CHUNK_BYTES {
            self.cut_probe();
        }
    }

    #[cold]
    fn cut_probe(&mut self) {
        if let Err(e) = self.write_probe() {
            self.error.get_or_insert(e);
        }
    }

    fn write_probe(&mut self) -> io::Result<()> {
        if self.probe.is_empty() {
            return Ok(());
        }
        self.flush_schemas()?;
        self.probe.seal();
        let bytes = std::mem::replace(&mut self.probe.bytes, self.output.spare());
        let (count, min_ts, max_ts) = (self.probe.count, self.probe.min_ts, self.probe.max_ts);
        self.probe.clear();
        self.write_chunk(ChunkKind::Probe, bytes, count, min_ts, max_ts)
    }

    /// Moves compressing and writing to a thread of its own, which first
    /// runs `setup` (to lower its priority, say) and calls `written` with
    /// the bytes of each chunk it wrote: the caller then only queues
    /// payloads. Errors are returned by a later call. The thread
    /// compresses less as its backlog nears `max_backlog`, where the
    /// caller says it stops queueing.
    pub fn in_background(
        mut self,
        max_backlog: usize,
        setup: impl FnOnce() + Send + 'static,
        written: impl FnMut(&mut W, u64) + Send + 'static,
    ) -> io::Result<Self>
    where
        W: Send + 'static,
    {
        let out = std::mem::replace(&mut self.output, Output::placeholder());
        self.output = out.into_thread(self.level, max_backlog, setup, written)?;
        Ok(self)
    }

    /// How long the writer thread has had chunks waiting and written none
    /// (zero without a writer thread or a backlog).
    pub fn stalled(&self) -> std::time::Duration {
        self.output.stalled()
    }

    /// Payload bytes handed to the writer thread and not written yet.
    pub fn backlog(&self) -> usize {
        self.output.backlog()
    }

    /// Starts a record (add its fields in schema order, then `finish` it).
    /// When enough records are buffered they are written as an events
    /// chunk first; a write error there is returned by the next `flush`.
    #[inline]
    pub fn record(&mut self, schema: SchemaId, ts: u64, cpu: Option<u32>, pid: u32, tid: u32) -> RecordBuilder<'_> {
        if self.events.byte_len() >= EVENTS_CHUNK_BYTES {
            self.cut();
        }
        self.events.record(schema, ts, cpu, pid, tid)
    }

    #[cold]
    fn cut(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        if let Err(e) = self.write_events(&mut events) {
            self.error.get_or_insert(e);
        }
        self.events = events;
    }

    /// Writes the buffered records as an events chunk, or returns the
    /// error an earlier automatic write met.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut events = std::mem::take(&mut self.events);
        let r = self.write_events(&mut events);
        self.events = events;
        r.and_then(|()| self.write_probe())
    }

    /// Bytes of records buffered and not written yet.
    pub fn buffered(&self) -> usize {
        self.events.byte_len() + self.probe.byte_len()
    }

    /// A write error met while cutting a chunk inside `record`, if any
    /// (it is also returned by the next `flush`).
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// Writes what is buffered, then the End chunk, which marks a cleanly
    /// finished recording. After a write error it still tries to write the
    /// End chunk, and returns the first error.
    pub fn finish(mut self, end: &[(&str, String)]) -> io::Result<W> {
        let earlier = self.error.take();
        let rest = self.flush().and_then(|()| self.flush_schemas());
        let mut p = Vec::new();
        encode_kv(end, &mut p);
        let closed = self.write_chunk(ChunkKind::End, p, 0, 0, 0);
        let out = self.output.finish();
        match earlier {
            Some(e) => Err(e),
            None => rest.and(closed).and(out),
        }
    }

    /// Bytes in the file so far (not counting what is still queued).
    pub fn bytes_written(&self) -> u64 {
        self.output.written()
    }

    fn write_chunk(
        &mut self,
        kind: ChunkKind,
        payload: Vec<u8>,
        records: u32,
        min_ts: u64,
        max_ts: u64,
    ) -> io::Result<()> {
        if payload.len() > MAX_CHUNK_RAW_LEN as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "chunk payload exceeds the format's limit",
            ));
        }
        self.output.put(Chunk {
            kind,
            payload,
            seq: self.seq,
            records,
            min_ts,
            max_ts,
        })?;
        self.seq += 1;
        Ok(())
    }
}

pub(crate) fn encode_kv(kv: &[(&str, String)], out: &mut Vec<u8>) {
    put_uvarint(out, kv.len() as u64);
    for (k, v) in kv {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
}
