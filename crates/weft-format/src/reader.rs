//! Reading a trace: scan the chunk framing once, decode metadata eagerly and
//! events lazily, merge events chunks into one timestamp-ordered stream.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{mpsc, Arc};

use crate::chunk::{ChunkHeader, ChunkKind, Compression, CHUNK_HEADER_LEN, CHUNK_MAGIC};
use crate::error::{FormatError, Problem};
use crate::record::{decode_head, Record};
use crate::schema::{decode_schemas, Schema, SchemaId, SyscallTable};
use crate::view::{check, decode, Encoding, Head, RecordView, Visit};
use crate::wire::Cursor;
use crate::{FILE_HEADER_LEN, FILE_MAGIC, VERSION_MAJOR};

enum Source {
    File(File),
    Bytes(Vec<u8>),
}

impl Source {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), FormatError> {
        match self {
            Source::File(f) => f.read_exact_at(buf, offset).map_err(|e| FormatError::Io {
                offset,
                message: e.to_string(),
            }),
            Source::Bytes(b) => {
                let start = usize::try_from(offset).ok();
                match start.and_then(|s| b.get(s..s.checked_add(buf.len())?)) {
                    Some(s) => {
                        buf.copy_from_slice(s);
                        Ok(())
                    }
                    None => Err(FormatError::Io {
                        offset,
                        message: "read past the end".into(),
                    }),
                }
            }
        }
    }
}

/// Where a chunk sits in the file and what its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    pub offset: u64,
    pub header: ChunkHeader,
}

impl ChunkInfo {
    pub fn end(&self) -> u64 {
        self.offset + CHUNK_HEADER_LEN as u64 + u64::from(self.header.stored_len)
    }
}

/// An opened trace. Opening fails only when the file is not a weft trace at
/// all; damage further in is collected in `problems` and reading goes on.
pub struct Trace {
    source: Arc<Source>,
    pub len: u64,
    pub version: (u16, u16),
    /// Every chunk whose header is intact and whose payload is within the file.
    pub chunks: Vec<ChunkInfo>,
    pub problems: Vec<Problem>,
    pub info: Vec<(String, String)>,
    /// Present only when the recorder finished cleanly.
    pub end: Option<Vec<(String, String)>>,
    schemas: HashMap<u32, Schema>,
    pub syscalls: SyscallTable,
    /// The file ends inside a chunk (the writer was stopped mid-write).
    pub truncated: bool,
}

impl Trace {
    pub fn open(path: &Path) -> Result<Trace, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::Io {
            offset: 0,
            message: format!("{}: {e}", path.display()),
        })?;
        let len = file
            .metadata()
            .map_err(|e| FormatError::Io {
                offset: 0,
                message: e.to_string(),
            })?
            .len();
        Self::scan(Source::File(file), len)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Trace, FormatError> {
        let len = bytes.len() as u64;
        Self::scan(Source::Bytes(bytes), len)
    }

    fn scan(source: Source, len: u64) -> Result<Trace, FormatError> {
        if len < FILE_HEADER_LEN as u64 {
            if len >= 8 {
                let mut m = [0u8; 8];
                source.read_at(0, &mut m)?;
                if m != FILE_MAGIC {
                    return Err(FormatError::BadFileMagic { found: m.to_vec() });
                }
            }
            return Err(FormatError::ShortFile {
                len,
                need: FILE_HEADER_LEN,
            });
        }
        let mut h = [0u8; FILE_HEADER_LEN];
        source.read_at(0, &mut h)?;
        if h[0..8] != FILE_MAGIC {
            return Err(FormatError::BadFileMagic {
                found: h[0..8].to_vec(),
            });
        }
        let stored = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
        if stored != crc32c::crc32c(&h[0..28]) {
            return Err(FormatError::BadFileHeader);
        }
        let major = u16::from_le_bytes([h[8], h[9]]);
        let minor = u16::from_le_bytes([h[10], h[11]]);
        if major != VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                major,
                minor,
                supported: VERSION_MAJOR,
            });
        }
        let mut t = Trace {
            source: Arc::new(source),
            len,
            version: (major, minor),
            chunks: Vec::new(),
            problems: Vec::new(),
            info: Vec::new(),
            end: None,
            schemas: HashMap::new(),
            syscalls: SyscallTable::default(),
            truncated: false,
        };
        t.scan_chunks()?;
        t.load_metadata();
        Ok(t)
    }

    fn read_header(&self, offset: u64) -> Result<Result<ChunkHeader, String>, FormatError> {
        let mut b = [0u8; CHUNK_HEADER_LEN];
        self.source.read_at(offset, &mut b)?;
        Ok(ChunkHeader::decode(&b))
    }

    fn scan_chunks(&mut self) -> Result<(), FormatError> {
        let mut offset = FILE_HEADER_LEN as u64;
        while offset < self.len {
            let left = self.len - offset;
            if left < CHUNK_HEADER_LEN as u64 {
                self.truncated = true;
                self.problems.push(Problem {
                    error: FormatError::Truncated {
                        offset,
                        reason: format!("{left} bytes left, a chunk header needs {CHUNK_HEADER_LEN}"),
                    },
                    skipped_bytes: left,
                });
                break;
            }
            match self.read_header(offset)? {
                Ok(header) => {
                    let need = CHUNK_HEADER_LEN as u64 + u64::from(header.stored_len);
                    if need > left {
                        self.truncated = true;
                        self.problems.push(Problem {
                            error: FormatError::Truncated {
                                offset,
                                reason: format!("chunk {} needs {need} bytes, {left} are left", header.seq),
                            },
                            skipped_bytes: left,
                        });
                        break;
                    }
                    self.chunks.push(ChunkInfo { offset, header });
                    offset += need;
                }
                Err(reason) => {
                    let next = self.resync(offset + 1)?;
                    let skipped = next.unwrap_or(self.len) - offset;
                    self.problems.push(Problem {
                        error: FormatError::BadChunkHeader { offset, reason },
                        skipped_bytes: skipped,
                    });
                    match next {
                        Some(n) => offset = n,
                        None => break,
                    }
                }
            }
        }
        Ok(())
    }

    /// Finds the next offset at or after `from` holding a valid chunk header.
    fn resync(&self, from: u64) -> Result<Option<u64>, FormatError> {
        const BLOCK: u64 = 1 << 20;
        let mut pos = from;
        let mut buf = Vec::new();
        while pos + CHUNK_HEADER_LEN as u64 <= self.len {
            let n = BLOCK.min(self.len - pos) as usize;
            buf.resize(n, 0);
            self.source.read_at(pos, &mut buf)?;
            for i in 0..n.saturating_sub(3) {
                if buf[i..i + 4] == CHUNK_MAGIC {
                    let cand = pos + i as u64;
                    if cand + CHUNK_HEADER_LEN as u64 <= self.len && self.read_header(cand)?.is_ok() {
                        return Ok(Some(cand));
                    }
                }
            }
            // Overlap by 3 bytes so a magic split across blocks is found.
            pos += (n as u64).saturating_sub(3).max(1);
        }
        Ok(None)
    }

    fn load_metadata(&mut self) {
        let chunks: Vec<ChunkInfo> = self
            .chunks
            .iter()
            .copied()
            .filter(|c| !c.header.kind.has_records())
            .collect();
        for c in chunks {
            let payload = match self.payload(&c) {
                Ok(p) => p,
                Err(e) => {
                    self.problems.push(Problem {
                        error: e,
                        skipped_bytes: c.end() - c.offset,
                    });
                    continue;
                }
            };
            let mut cur = Cursor::new(&payload);
            let res = match c.header.kind {
                ChunkKind::Info => decode_kv(&mut cur).map(|kv| self.info.extend(kv)),
                ChunkKind::End => decode_kv(&mut cur).map(|kv| self.end = Some(kv)),
                ChunkKind::Schemas => decode_schemas(&mut cur).map(|v| {
                    for s in v {
                        self.schemas.insert(s.id.0, s);
                    }
                }),
                ChunkKind::SyscallTable => SyscallTable::decode(&mut cur).map(|t| self.syscalls = t),
                ChunkKind::Events | ChunkKind::Probe | ChunkKind::ProbeDelta | ChunkKind::Unknown(_) => Ok(()),
            };
            if let Err((at, reason)) = res {
                self.problems.push(Problem {
                    error: FormatError::Malformed {
                        offset: c.offset,
                        seq: c.header.seq,
                        at,
                        reason,
                    },
                    skipped_bytes: c.end() - c.offset,
                });
            }
        }
    }

    /// The checked, decompressed payload of a chunk.
    pub fn payload(&self, c: &ChunkInfo) -> Result<Vec<u8>, FormatError> {
        let mut scratch = Scratch::default();
        payload(&self.source, c, &mut scratch)?;
        Ok(scratch.raw)
    }

    /// Decodes one events chunk. Records before a malformed one are returned
    /// together with the error; records of unknown schemas are skipped and
    /// reported.
    pub fn decode_events(&self, c: &ChunkInfo) -> (Vec<Record>, Vec<FormatError>) {
        decode_events(&self.source, &self.schemas, c, &mut Scratch::default())
    }

    pub fn schema(&self, id: SchemaId) -> Option<&Schema> {
        self.schemas.get(&id.0)
    }

    pub fn schemas(&self) -> impl Iterator<Item = &Schema> {
        self.schemas.values()
    }

    /// The schema of that name declared first: a traced program that
    /// declares one of the same name later cannot take its place.
    pub fn schema_by_name(&self, name: &str) -> Option<&Schema> {
        self.schemas.values().filter(|s| s.name == name).min_by_key(|s| s.id.0)
    }

    pub fn info(&self, key: &str) -> Option<&str> {
        self.info.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn end_value(&self, key: &str) -> Option<&str> {
        self.end
            .as_ref()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Byte offset up to which the file was readable framing.
    pub fn recovered_bytes(&self) -> u64 {
        self.chunks.last().map_or(FILE_HEADER_LEN as u64, ChunkInfo::end)
    }

    /// The chunks that hold records: Events and Probe chunks.
    pub fn event_chunks(&self) -> impl Iterator<Item = &ChunkInfo> {
        self.chunks.iter().filter(|c| c.header.kind.has_records())
    }

    /// All records of the file in timestamp order (ties keep file order).
    /// Damaged chunks show up as `Err` items; iteration goes on after them.
    pub fn records(&self) -> Records<'_> {
        self.records_in(|_| true)
    }

    /// All records in timestamp order, as `records`, read in place: nothing
    /// is allocated per record. A lending iterator: `while let Some(r) =
    /// views.next() { ... }`.
    pub fn views(&self) -> Views<'_> {
        let mut pending: Vec<ChunkInfo> = self.event_chunks().copied().collect();
        pending.sort_by_key(|c| Reverse((c.header.min_ts, c.header.seq, c.offset)));
        let max_id = self.schemas.keys().copied().max().unwrap_or(0);
        // A table by id when ids are small (they are numbered from 1).
        let dense = if max_id < 1 << 16 {
            let mut d = vec![None; max_id as usize + 1];
            for (id, sc) in &self.schemas {
                d[*id as usize] = Some(sc);
            }
            d
        } else {
            Vec::new()
        };
        let (recycle, spare) = mpsc::channel::<Indexed>();
        let indexer = (pending.len() > 1).then(|| {
            let (source, schemas) = (self.source.clone(), self.schemas.clone());
            let mut scratch = Scratch::default();
            Ahead::spawn(move |c| {
                let into = spare.try_recv().unwrap_or_default();
                index_chunk(&source, &schemas, c, into, &mut scratch)
            })
        });
        Views {
            trace: self,
            vforks: Vforks::of(self),
            dense,
            pending,
            live: Vec::new(),
            active: BinaryHeap::new(),
            errors: VecDeque::new(),
            loaded: 0,
            recycle: indexer.is_some().then_some(recycle),
            indexer,
            spent: None,
            run: None,
        }
    }

    /// As `records`, reading only the chunks `keep` accepts (an index said
    /// the rest holds nothing the reader needs).
    pub fn records_in(&self, keep: impl Fn(&ChunkInfo) -> bool) -> Records<'_> {
        let mut pending: Vec<ChunkInfo> = self.event_chunks().copied().filter(|c| keep(c)).collect();
        pending.sort_by_key(|c| Reverse((c.header.min_ts, c.header.seq, c.offset)));
        // Decoding runs one chunk ahead on another thread, when there is more than one.
        let worker = (pending.len() > 1).then(|| {
            let (source, schemas) = (self.source.clone(), self.schemas.clone());
            let mut scratch = Scratch::default();
            Ahead::spawn(move |c| decode_events(&source, &schemas, c, &mut scratch))
        });
        Records {
            trace: self,
            vforks: Vforks::of(self),
            pending,
            active: BinaryHeap::new(),
            errors: VecDeque::new(),
            loaded: 0,
            worker,
        }
    }
}

/// Buffers and a decompression context reused from chunk to chunk, so that
/// reading a file does not allocate (and fault in) two payloads per chunk.
#[derive(Default)]
struct Scratch {
    stored: Vec<u8>,
    /// The payload of the last chunk read.
    raw: Vec<u8>,
    dctx: Option<zstd::bulk::Decompressor<'static>>,
}

/// Reads, checks and decompresses a chunk's payload into `scratch.raw`.
fn payload(source: &Source, c: &ChunkInfo, scratch: &mut Scratch) -> Result<(), FormatError> {
    let h = &c.header;
    let stored = &mut scratch.stored;
    stored.clear();
    stored.resize(h.stored_len as usize, 0);
    source.read_at(c.offset + CHUNK_HEADER_LEN as u64, stored)?;
    let computed = crc32c::crc32c(stored);
    if computed != h.payload_crc {
        return Err(FormatError::BadPayloadChecksum {
            offset: c.offset,
            seq: h.seq,
            stored: h.payload_crc,
            computed,
        });
    }
    raw_payload(c, scratch)?;
    if h.kind == ChunkKind::ProbeDelta {
        // How it was filtered is in the header's flags (docs/format.md §5.6).
        crate::delta::decode_probe(&mut scratch.raw, h.flags).map_err(|reason| FormatError::Malformed {
            offset: c.offset,
            seq: h.seq,
            at: 0,
            reason,
        })?;
    }
    Ok(())
}

/// The stored payload of `scratch.stored` into `scratch.raw`, decompressed.
fn raw_payload(c: &ChunkInfo, scratch: &mut Scratch) -> Result<(), FormatError> {
    let h = &c.header;
    let stored = &mut scratch.stored;
    match h.compression {
        Compression::None => {
            std::mem::swap(&mut scratch.raw, stored);
            Ok(())
        }
        Compression::Zstd => {
            let failed = |reason: String| FormatError::Decompress {
                offset: c.offset,
                seq: h.seq,
                reason,
            };
            if scratch.dctx.is_none() {
                scratch.dctx = Some(zstd::bulk::Decompressor::new().map_err(|e| failed(e.to_string()))?);
            }
            let raw = &mut scratch.raw;
            raw.clear();
            raw.reserve(h.raw_len as usize);
            let Some(dctx) = scratch.dctx.as_mut() else {
                return Err(failed("no decompression context".into()));
            };
            // Decompresses into the spare capacity: at most raw_len bytes.
            dctx.decompress_to_buffer(stored.as_slice(), raw)
                .map_err(|e| failed(e.to_string()))?;
            if raw.len() != h.raw_len as usize {
                return Err(failed(format!(
                    "{} bytes decompressed, header says {}",
                    raw.len(),
                    h.raw_len
                )));
            }
            Ok(())
        }
    }
}

/// Decodes one events chunk (see [`Trace::decode_events`]).
fn decode_events(
    source: &Source,
    schemas: &HashMap<u32, Schema>,
    c: &ChunkInfo,
    scratch: &mut Scratch,
) -> (Vec<Record>, Vec<FormatError>) {
    let mut out = Vec::with_capacity(c.header.records.min(1 << 20) as usize);
    let encoding = Encoding::of(c.header.kind);
    let errors = index_events(source, schemas, c, scratch, &mut |schema, h, body| {
        out.push(Record {
            schema: schema.id,
            ts: h.ts,
            cpu: h.cpu.checked_sub(1),
            pid: h.pid,
            tid: h.tid,
            fields: decode(schema, encoding, body)?,
        });
        Ok(())
    });
    (out, errors)
}

/// Reads one events chunk's payload into `scratch.raw` and hands each
/// record of a known schema to `visit`, in file order. Records before a
/// malformed one are kept; records of unknown schemas are skipped and
/// reported.
fn index_events(
    source: &Source,
    schemas: &HashMap<u32, Schema>,
    c: &ChunkInfo,
    scratch: &mut Scratch,
    visit: &mut impl Visit,
) -> Vec<FormatError> {
    let mut errors = Vec::new();
    if let Err(e) = payload(source, c, scratch) {
        return vec![e];
    }
    let payload = scratch.raw.as_slice();
    let malformed = |at: usize, reason: String| FormatError::Malformed {
        offset: c.offset,
        seq: c.header.seq,
        at,
        reason,
    };
    if c.header.kind.is_probe() {
        let mut bad = Vec::new();
        crate::probe::index(payload, schemas, visit, &mut bad);
        errors.extend(bad.into_iter().map(|(at, why)| malformed(at, why)));
        return errors;
    }
    let mut cur = Cursor::new(payload);
    let mut prev_ts = 0u64;
    let mut unknown = 0u64;
    // Records of a few schemas alternate (a syscall's enter and exit):
    // remember the schemas met, by the low bits of their ids.
    let mut seen: [Option<&Schema>; 16] = [None; 16];
    while !cur.is_empty() {
        let start = cur.pos();
        let (head, len) = match decode_head(&mut cur, prev_ts) {
            Ok(h) => h,
            Err((at, reason)) => {
                errors.push(malformed(at, reason));
                break;
            }
        };
        let body_start = cur.pos();
        let body = match cur.take(len) {
            Ok(b) => b,
            Err((at, reason)) => {
                errors.push(malformed(at, reason));
                break;
            }
        };
        prev_ts = head.ts;
        let way = head.schema.0 as usize % seen.len();
        let schema = match seen[way] {
            Some(s) if s.id == head.schema => s,
            _ => match schemas.get(&head.schema.0) {
                Some(s) => {
                    seen[way] = Some(s);
                    s
                }
                None => {
                    unknown += 1;
                    continue;
                }
            },
        };
        let h = Head {
            ts: head.ts,
            schema: head.schema.0,
            pid: head.pid,
            tid: head.tid,
            cpu: head.cpu.map_or(0, |c| c.saturating_add(1)),
            start: body_start as u32,
            len: body.len() as u32,
        };
        match visit(schema, h, body) {
            Ok(()) => {}
            Err((at, reason)) => errors.push(malformed(start + at, format!("record of {}: {reason}", schema.name))),
        }
    }
    if unknown > 0 {
        errors.push(malformed(
            0,
            format!("{unknown} records refer to schemas missing from the file (skipped)"),
        ));
    }
    errors
}

/// What a merge by time does next (format.md §7).
enum Step {
    /// Hand out the earliest loaded record.
    Yield,
    /// Load the next pending chunk first: it may hold an earlier record.
    Load,
    Done,
}

/// `top`: the time of the earliest loaded record; `pending`: the chunks not
/// yet loaded, the next one last.
fn step(top: Option<u64>, pending: &[ChunkInfo]) -> Step {
    match (top, pending.last().map(|c| c.header.min_ts)) {
        (Some(t), Some(m)) if t < m => Step::Yield,
        (Some(_), None) => Step::Yield,
        (_, Some(_)) => Step::Load,
        (None, None) => Step::Done,
    }
}

/// The unread records of one loaded chunk, sorted by time.
struct Run {
    next_ts: u64,
    /// Load order: ties between chunks go to the one loaded first.
    order: u64,
    recs: std::vec::IntoIter<Record>,
}

impl PartialEq for Run {
    fn eq(&self, o: &Self) -> bool {
        (self.next_ts, self.order) == (o.next_ts, o.order)
    }
}
impl Eq for Run {}
impl PartialOrd for Run {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Run {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.next_ts, self.order).cmp(&(o.next_ts, o.order))
    }
}

/// vfork windows met so far (`kernel:vfork`): the weft-probe events a
/// thread's stream holds from inside one are its child's, and are handed
/// out as the child's.
struct Vforks {
    /// The file's `kernel:vfork` schema.
    id: Option<u32>,
    /// Whether a schema id is a weft-probe event's (not the kernel's or
    /// the recorder's own records).
    probe: HashMap<u32, bool>,
    /// Thread -> (child, end of the window).
    open: HashMap<u32, (u32, u64)>,
}

impl Vforks {
    fn of(trace: &Trace) -> Vforks {
        let probe = trace
            .schemas
            .iter()
            .map(|(&id, s)| (id, !s.name.starts_with("kernel:") && !s.name.starts_with("weft:probe_")))
            .collect();
        Vforks {
            id: trace.schema_by_name(crate::std_schemas::VFORK).map(|s| s.id.0),
            probe,
            open: HashMap::new(),
        }
    }

    /// Who wrote a record of `schema` at `ts` in thread `tid`'s stream:
    /// `Some(child)` when a vfork child did. `window` gives a
    /// `kernel:vfork` record's child and end.
    #[inline(always)]
    fn writer(&mut self, schema: u32, ts: u64, tid: u32, window: impl FnOnce() -> (u64, u64)) -> Option<u32> {
        if Some(schema) == self.id {
            let (child, end) = window();
            if let Ok(child) = u32::try_from(child) {
                self.open.insert(tid, (child, end));
            }
            return None;
        }
        if self.open.is_empty() {
            return None;
        }
        self.slow_writer(schema, ts, tid)
    }

    #[inline(never)]
    fn slow_writer(&mut self, schema: u32, ts: u64, tid: u32) -> Option<u32> {
        let &(child, end) = self.open.get(&tid)?;
        if ts > end {
            self.open.remove(&tid);
            return None;
        }
        self.probe.get(&schema).copied().unwrap_or(false).then_some(child)
    }
}

/// Merges events chunks by time: each loaded chunk is sorted once (records
/// within a chunk are nearly in order) and the chunks are merged through a
/// heap of their heads. Holds in memory only the chunks whose time ranges
/// overlap the current position.
pub struct Records<'a> {
    trace: &'a Trace,
    vforks: Vforks,
    pending: Vec<ChunkInfo>,
    active: BinaryHeap<Reverse<Run>>,
    errors: VecDeque<FormatError>,
    loaded: u64,
    /// Decodes the next chunk while the caller works on this one.
    worker: Option<Ahead<Decoded>>,
}

type Decoded = (Vec<Record>, Vec<FormatError>);

/// A thread that works on the chunks it is sent, in order, one chunk ahead
/// of the reader that takes its results.
struct Ahead<T> {
    send: Option<mpsc::Sender<ChunkInfo>>,
    recv: mpsc::Receiver<T>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The chunk the thread is working on.
    ahead: Option<ChunkInfo>,
}

impl<T: Send + 'static> Ahead<T> {
    fn spawn(mut work: impl FnMut(&ChunkInfo) -> T + Send + 'static) -> Ahead<T> {
        let (send, jobs) = mpsc::channel::<ChunkInfo>();
        let (done, recv) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            // Ends when the reader (and with it the sender) is dropped.
            for c in jobs {
                if done.send(work(&c)).is_err() {
                    break;
                }
            }
        });
        Ahead {
            send: Some(send),
            recv,
            thread: Some(thread),
            ahead: None,
        }
    }

    /// The result for `c` if it was sent ahead; then sends `next` ahead.
    fn take(&mut self, c: &ChunkInfo, next: Option<&ChunkInfo>) -> Option<T> {
        let got = match self.ahead.take() {
            Some(a) if a == *c => self.recv.recv().ok(),
            // Not expected (chunks are taken in order), but never mix up results.
            Some(_) => {
                drop(self.recv.recv());
                None
            }
            None => None,
        };
        if let (Some(next), Some(send)) = (next, self.send.as_ref()) {
            if send.send(*next).is_ok() {
                self.ahead = Some(*next);
            }
        }
        got
    }
}

impl<T> Drop for Ahead<T> {
    /// Waits for the thread (at most the chunk it is working on), so that a
    /// reader leaves nothing running behind it.
    fn drop(&mut self) {
        drop(self.send.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Records<'_> {
    /// Decodes `c`: from the worker if it was sent there, and sends the
    /// worker the chunk that comes next.
    fn load(&mut self, c: &ChunkInfo) -> Decoded {
        let got = self.worker.as_mut().and_then(|w| w.take(c, self.pending.last()));
        got.unwrap_or_else(|| self.trace.decode_events(c))
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.errors.pop_front() {
                return Some(Err(e));
            }
            match step(self.active.peek().map(|Reverse(r)| r.next_ts), &self.pending) {
                Step::Yield => {}
                Step::Load => {
                    let Some(c) = self.pending.pop() else {
                        continue;
                    };
                    let (mut recs, errs) = self.load(&c);
                    self.errors.extend(errs);
                    // Stable: equal times keep their order in the file.
                    if !recs.is_sorted_by_key(|r| r.ts) {
                        recs.sort_by_key(|r| r.ts);
                    }
                    self.loaded += 1;
                    let it = recs.into_iter();
                    if let Some(first) = it.as_slice().first() {
                        self.active.push(Reverse(Run {
                            next_ts: first.ts,
                            order: self.loaded,
                            recs: it,
                        }));
                    }
                    continue;
                }
                Step::Done => return None,
            }
            let mut run = self.active.peek_mut()?;
            let rec = run.0.recs.next();
            match run.0.recs.as_slice().first() {
                Some(n) => run.0.next_ts = n.ts,
                None => {
                    std::collections::binary_heap::PeekMut::pop(run);
                }
            }
            return rec.map(|mut r| {
                if let Some(child) = self.vforks.writer(r.schema.0, r.ts, r.tid, || (r.u64(0), r.u64(1))) {
                    (r.pid, r.tid) = (child, child);
                }
                Ok(r)
            });
        }
    }
}

fn decode_kv(c: &mut Cursor) -> Result<Vec<(String, String)>, (usize, String)> {
    let n = c.u32v()?;
    let mut v = Vec::new();
    for _ in 0..n {
        let k = c.string()?;
        let val = c.string()?;
        v.push((k, val));
    }
    Ok(v)
}

/// A chunk indexed for reading in place: its payload, and its records'
/// heads sorted by time.
#[derive(Default)]
struct Indexed {
    payload: Vec<u8>,
    encoding: Encoding,
    heads: Vec<Head>,
    next: usize,
}

type IndexedChunk = (Indexed, Vec<FormatError>);

fn index_chunk(
    source: &Source,
    schemas: &HashMap<u32, Schema>,
    c: &ChunkInfo,
    mut into: Indexed,
    scratch: &mut Scratch,
) -> IndexedChunk {
    std::mem::swap(&mut scratch.raw, &mut into.payload);
    let heads = &mut into.heads;
    heads.clear();
    heads.reserve(c.header.records.min(1 << 20) as usize);
    into.encoding = Encoding::of(c.header.kind);
    let encoding = into.encoding;
    let errors = index_events(source, schemas, c, scratch, &mut |schema, h, body| {
        check(schema, encoding, body)?;
        heads.push(h);
        Ok(())
    });
    std::mem::swap(&mut scratch.raw, &mut into.payload);
    // Stable: equal times keep their order in the file.
    if !into.heads.is_sorted_by_key(|h| h.ts) {
        into.heads.sort_by_key(|h| h.ts);
    }
    into.next = 0;
    (into, errors)
}

/// Records in timestamp order, read in place (see [`Trace::views`]). Holds
/// in memory only the chunks whose time ranges overlap the current position.
pub struct Views<'a> {
    trace: &'a Trace,
    vforks: Vforks,
    /// Schemas by id, when ids are small; else `trace.schemas` is asked.
    dense: Vec<Option<&'a Schema>>,
    pending: Vec<ChunkInfo>,
    live: Vec<Option<Indexed>>,
    /// (next time, load order, slot in `live`).
    active: BinaryHeap<Reverse<(u64, u64, usize)>>,
    errors: VecDeque<FormatError>,
    loaded: u64,
    /// Indexes the next chunk while the caller reads this one.
    indexer: Option<Ahead<IndexedChunk>>,
    /// Chunks read to the end go back to the indexer, to be filled again.
    recycle: Option<mpsc::Sender<Indexed>>,
    /// A slot whose last record was handed out: freed on the next call.
    spent: Option<usize>,
    /// The slot at the top of `active` and the time before which its
    /// records come before every other chunk's, loaded or not: they are
    /// handed out without touching the heap, whose key for that slot is
    /// brought up to date when the run ends.
    run: Option<(usize, u64)>,
}

impl<'a> Views<'a> {
    #[inline]
    fn schema_of(&self, id: u32) -> Option<&'a Schema> {
        match self.dense.get(id as usize) {
            Some(s) => *s,
            None if self.dense.is_empty() => self.trace.schemas.get(&id),
            None => None,
        }
    }

    fn load(&mut self, c: &ChunkInfo) -> IndexedChunk {
        let got = self.indexer.as_mut().and_then(|w| w.take(c, self.pending.last()));
        got.unwrap_or_else(|| {
            index_chunk(
                &self.trace.source,
                &self.trace.schemas,
                c,
                Indexed::default(),
                &mut Scratch::default(),
            )
        })
    }

    /// The next record in time order, or a problem met on the way.
    #[allow(clippy::should_implement_trait)]
    #[inline(always)]
    pub fn next(&mut self) -> Option<Result<RecordView<'_>, FormatError>> {
        // Inlined, with the view made in one place, the common case keeps
        // it in registers: a view returned through memory had its fields
        // written in pieces and read back whole, which stalls.
        loop {
            let (slot, head) = match self.next_in_run() {
                Some(next) => next,
                None => match self.next_merged()? {
                    Ok(next) => next,
                    Err(e) => return Some(Err(e)),
                },
            };
            // Indexing kept only records of known schemas.
            if self.viewable(slot, &head) {
                let writer = if self.vforks.id.is_none() {
                    None
                } else {
                    let window = if Some(head.schema) == self.vforks.id {
                        self.view(slot, &head).map_or((0, 0), |v| (v.u64(0), v.u64(1)))
                    } else {
                        (0, 0)
                    };
                    self.vforks.writer(head.schema, head.ts, head.tid, || window)
                };
                return self.view(slot, &head).map(|mut v| {
                    if let Some(child) = writer {
                        (v.pid, v.tid) = (child, child);
                    }
                    Ok(v)
                });
            }
        }
    }

    /// Whether `head` in `slot` can be viewed (its schema is known; indexing
    /// kept only such records).
    #[inline(always)]
    fn viewable(&self, slot: usize, head: &Head) -> bool {
        self.schema_of(head.schema).is_some() && matches!(self.live.get(slot), Some(Some(_)))
    }

    #[inline(always)]
    fn view(&self, slot: usize, head: &Head) -> Option<RecordView<'_>> {
        let chunk = self.live.get(slot)?.as_ref()?;
        Some(RecordView::new(
            self.schema_of(head.schema)?,
            head,
            chunk.encoding,
            &chunk.payload,
        ))
    }

    /// The next record of the current run, if it goes on.
    #[inline(always)]
    fn next_in_run(&mut self) -> Option<(usize, Head)> {
        let (slot, before) = self.run?;
        if let Some(chunk) = self.live.get_mut(slot).and_then(Option::as_mut) {
            let head = chunk.heads.get(chunk.next).copied();
            // Never the chunk's last record: handing that one out frees the slot.
            match head {
                Some(head) if head.ts < before && chunk.next + 1 < chunk.heads.len() => {
                    chunk.next += 1;
                    return Some((slot, head));
                }
                Some(head) => {
                    if let Some(mut top) = self.active.peek_mut() {
                        if top.0 .2 == slot {
                            top.0 .0 = head.ts;
                        }
                    }
                }
                None => {}
            }
        }
        self.run = None;
        None
    }

    /// The next record by the merge of the loaded chunks, loading the next
    /// one when it may hold earlier records.
    #[inline(never)]
    fn next_merged(&mut self) -> Option<Result<(usize, Head), FormatError>> {
        if let Some(next) = self.next_in_run() {
            return Some(Ok(next));
        }
        loop {
            if let Some(slot) = self.spent.take() {
                if let Some(done) = self.live.get_mut(slot).and_then(Option::take) {
                    if let Some(r) = &self.recycle {
                        let _ = r.send(done);
                    }
                }
            }
            if let Some(e) = self.errors.pop_front() {
                return Some(Err(e));
            }
            match step(self.active.peek().map(|Reverse((t, _, _))| *t), &self.pending) {
                Step::Yield => {}
                Step::Load => {
                    let Some(c) = self.pending.pop() else {
                        continue;
                    };
                    let (chunk, errs) = self.load(&c);
                    self.errors.extend(errs);
                    self.loaded += 1;
                    if let Some(first) = chunk.heads.first() {
                        let slot = match self.live.iter().position(Option::is_none) {
                            Some(i) => i,
                            None => {
                                self.live.push(None);
                                self.live.len() - 1
                            }
                        };
                        self.active.push(Reverse((first.ts, self.loaded, slot)));
                        self.live[slot] = Some(chunk);
                    }
                    continue;
                }
                Step::Done => return None,
            }
            // The head of the earliest chunk moves on in place (one sift,
            // not a pop and a push).
            let mut top = self.active.peek_mut()?;
            let Reverse((_, _, slot)) = *top;
            let Some(chunk) = self.live.get_mut(slot).and_then(Option::as_mut) else {
                std::collections::binary_heap::PeekMut::pop(top);
                continue;
            };
            let Some(&head) = chunk.heads.get(chunk.next) else {
                std::collections::binary_heap::PeekMut::pop(top);
                continue;
            };
            chunk.next += 1;
            match chunk.heads.get(chunk.next) {
                Some(n) => {
                    top.0 .0 = n.ts;
                    drop(top);
                    // Until the next chunk to load or the next loaded chunk
                    // starts, this chunk's records come first.
                    let others = self.active.iter().filter(|Reverse((_, _, s))| *s != slot);
                    let others = others.map(|Reverse((t, _, _))| *t).min();
                    let load = self.pending.last().map(|c| c.header.min_ts);
                    let before = others.unwrap_or(u64::MAX).min(load.unwrap_or(u64::MAX));
                    self.run = Some((slot, before));
                }
                None => {
                    std::collections::binary_heap::PeekMut::pop(top);
                    self.spent = Some(slot);
                }
            }
            return Some(Ok((slot, head)));
        }
    }
}
