//! Where finished chunk payloads go: compressed and written in the caller's
//! thread, or handed to a writer thread that compresses and writes them in
//! the order they came.
//!
//! A recorder draining a fast producer must not spend milliseconds on zstd
//! and `write` between two drains: a probe ring written flat out fills in
//! a fraction of a millisecond. With a writer thread, the caller only
//! moves the payload into a queue; what is queued and not yet written is
//! the backlog, which the caller can watch and bound.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::chunk::{ChunkHeader, ChunkKind, Compression, CHUNK_HEADER_LEN, MAX_CHUNK_RAW_LEN};
use crate::delta;

/// A payload ready to be stored.
pub(crate) struct Chunk {
    pub kind: ChunkKind,
    pub payload: Vec<u8>,
    pub seq: u32,
    pub records: u32,
    pub min_ts: u64,
    pub max_ts: u64,
}

/// Compresses and writes chunks, one `write` per chunk so that a writer
/// killed at any moment leaves at most one partial chunk at the end.
pub(crate) struct Encoder {
    compressor: zstd::bulk::Compressor<'static>,
    /// The compressor's level now, and the one asked for.
    level: i32,
    asked: i32,
    /// Header and compressed payload of the chunk being written, and a
    /// probe payload filtered (docs/format.md §5.6), reused from chunk to
    /// chunk without being cleared (fresh or re-zeroed megabytes per chunk
    /// cost more than zstd).
    scratch: Vec<u8>,
    filtered: Vec<u8>,
}

impl Encoder {
    fn new(level: i32) -> io::Result<Encoder> {
        Ok(Encoder {
            compressor: zstd::bulk::Compressor::new(level)?,
            level,
            asked: level,
            scratch: Vec::new(),
            filtered: Vec::new(),
        })
    }

    /// Bytes written, compressed as `effort` says.
    fn write_with(&mut self, out: &mut impl Write, c: &mut Chunk, effort: Effort) -> io::Result<u64> {
        let level = match effort.for_kind(c.kind) {
            Effort::Asked => Some(self.asked),
            Effort::Fast => Some(FAST_LEVEL.min(self.asked)),
            Effort::Store => None,
        };
        if let Some(level) = level.filter(|&l| l != self.level) {
            self.compressor.set_compression_level(level)?;
            self.level = level;
        }
        let raw = &mut c.payload;
        let raw_len = u32::try_from(raw.len())
            .ok()
            .filter(|&l| l <= MAX_CHUNK_RAW_LEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "chunk payload exceeds the format's limit"))?;
        let (mut kind, mut flags) = (c.kind, 0);
        let probe = c.kind == ChunkKind::Probe;
        // Probe records compress faster and smaller filtered (§5.6).
        let filter = match level {
            Some(_) if probe => delta::encode_probe(raw, &mut self.filtered),
            _ => None,
        };
        if probe && filter.is_none() {
            // Stored as a Probe chunk, its records need the check bytes
            // the collector cleared.
            delta::restore_checks(raw);
        }
        let mut compressed = None;
        if level.is_some() {
            let input = match filter {
                Some(_) => self.filtered.as_slice(),
                None => raw.as_slice(),
            };
            let need = CHUNK_HEADER_LEN + zstd::zstd_safe::compress_bound(raw.len());
            if self.scratch.len() < need {
                self.scratch.resize(need, 0);
            }
            let n = self
                .compressor
                .compress_to_buffer(input, &mut self.scratch[CHUNK_HEADER_LEN..need])?;
            // Stored compressed only when that is smaller (docs/format.md §4.3).
            if n < raw.len() {
                compressed = Some(n);
                if let Some(f) = filter {
                    (kind, flags) = (ChunkKind::ProbeDelta, f);
                }
            } else if filter.is_some() {
                // Stored raw after all, as a Probe chunk.
                delta::restore_checks(raw);
            }
        }
        let (compression, stored) = match compressed {
            Some(n) => (Compression::Zstd, &self.scratch[CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + n]),
            None => (Compression::None, raw.as_slice()),
        };
        let header = ChunkHeader {
            kind,
            compression,
            flags,
            stored_len: stored.len() as u32,
            raw_len,
            seq: c.seq,
            records: c.records,
            min_ts: c.min_ts,
            max_ts: c.max_ts,
            payload_crc: crc32c::crc32c(stored),
        };
        let header = header.encode();
        let len = (CHUNK_HEADER_LEN + stored.len()) as u64;
        match compressed {
            Some(n) => {
                self.scratch[..CHUNK_HEADER_LEN].copy_from_slice(&header);
                out.write_all(&self.scratch[..CHUNK_HEADER_LEN + n])?;
            }
            // Header and payload in one call, without copying the payload.
            None => write_both(out, &header, raw)?,
        }
        out.flush()?;
        Ok(len)
    }
}

/// `a` then `b`, in one `writev` unless the output takes less.
fn write_both(out: &mut impl Write, a: &[u8], b: &[u8]) -> io::Result<()> {
    let mut slices = [io::IoSlice::new(a), io::IoSlice::new(b)];
    let mut left = &mut slices[..];
    while !left.is_empty() {
        match out.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How hard the writer thread compresses a chunk: as asked while it keeps
/// up, faster when chunks queue up, not at all when they queue up so far
/// that the recorder would soon stop taking events (a chunk stored as it
/// is costs a checksum and a write: events kept are worth more than bytes
/// saved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effort {
    Asked,
    Fast,
    Store,
}

/// zstd's fast mode (negative levels trade ratio for speed).
const FAST_LEVEL: i32 = -5;

impl Effort {
    /// For `queued` payload bytes when the caller stops queueing at `cap`:
    /// fast from a quarter of it, stored raw from five eighths (256 and 640
    /// MiB of the recorder's 1 GiB). Lower, a burst that the thread would
    /// compress well after it ends is stored larger; higher, the cap is
    /// reached first.
    fn for_backlog(queued: usize, cap: usize) -> Effort {
        if queued >= cap / 8 * 5 {
            Effort::Store
        } else if queued >= cap / 4 {
            Effort::Fast
        } else {
            Effort::Asked
        }
    }

    /// Probe records are compressed, filtered, rather than stored: that
    /// goes at about 3 GB/s, three times faster than their raw bytes go
    /// into the page cache.
    fn for_kind(self, kind: ChunkKind) -> Effort {
        match self {
            Effort::Store if kind == ChunkKind::Probe => Effort::Fast,
            e => e,
        }
    }
}

/// What the caller and the writer thread share.
pub(crate) struct Shared {
    /// Payload bytes queued and not written yet.
    backlog: AtomicUsize,
    written: AtomicU64,
    /// The first write error, taken by the caller.
    failed: Mutex<Option<io::Error>>,
    /// Nanoseconds since `epoch` when a chunk was last written, or queued
    /// into an empty queue: how long the thread has made no progress.
    epoch: Instant,
    progress: AtomicU64,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            backlog: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            failed: Mutex::new(None),
            epoch: Instant::now(),
            progress: AtomicU64::new(0),
        }
    }
}

impl Shared {
    fn mark_progress(&self) {
        self.progress
            .store(self.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

pub(crate) enum Output<W: Write> {
    Inline {
        out: W,
        enc: Encoder,
        written: u64,
    },
    Thread {
        tx: Option<mpsc::Sender<Chunk>>,
        handle: Option<JoinHandle<io::Result<W>>>,
        shared: Arc<Shared>,
        /// Payload buffers the thread is done with, for reuse.
        spare: mpsc::Receiver<Vec<u8>>,
        /// Bytes written before the thread started.
        before: u64,
    },
}

/// Spare payload buffers kept at most.
const SPARES: usize = 8;

impl<W: Write> Output<W> {
    /// Stands in while the output is being moved; stores nothing.
    pub fn placeholder() -> Output<W> {
        let (tx, spare) = mpsc::sync_channel(0);
        drop(tx);
        Output::Thread {
            tx: None,
            handle: None,
            shared: Arc::new(Shared::default()),
            spare,
            before: 0,
        }
    }

    pub fn inline(out: W, level: i32, written: u64) -> io::Result<Output<W>> {
        Ok(Output::Inline {
            out,
            enc: Encoder::new(level)?,
            written,
        })
    }

    /// Stores a chunk (queues it, with a writer thread).
    pub fn put(&mut self, mut c: Chunk) -> io::Result<()> {
        match self {
            Output::Inline { out, enc, written } => {
                *written += enc.write_with(out, &mut c, Effort::Asked)?;
                Ok(())
            }
            Output::Thread { tx, shared, .. } => {
                if let Some(e) = shared.failed.lock().ok().and_then(|mut f| f.take()) {
                    return Err(e);
                }
                if shared.backlog.fetch_add(c.payload.len(), Ordering::Relaxed) == 0 {
                    shared.mark_progress();
                }
                let len = c.payload.len();
                match tx.as_ref().map(|t| t.send(c)) {
                    Some(Ok(())) => Ok(()),
                    _ => {
                        shared.backlog.fetch_sub(len, Ordering::Relaxed);
                        Err(io::Error::other("the trace writer thread has stopped"))
                    }
                }
            }
        }
    }

    /// An empty buffer for the next payload, reused when one is spare.
    pub fn spare(&mut self) -> Vec<u8> {
        match self {
            Output::Thread { spare, .. } => spare.try_recv().unwrap_or_default(),
            Output::Inline { .. } => Vec::new(),
        }
    }

    pub fn written(&self) -> u64 {
        match self {
            Output::Inline { written, .. } => *written,
            Output::Thread { shared, before, .. } => before + shared.written.load(Ordering::Relaxed),
        }
    }

    /// How long chunks have been waiting without the writer thread
    /// writing any (zero when nothing waits).
    pub fn stalled(&self) -> Duration {
        match self {
            Output::Thread { shared, .. } if shared.backlog.load(Ordering::Relaxed) > 0 => {
                let since = shared.progress.load(Ordering::Relaxed);
                shared.epoch.elapsed().saturating_sub(Duration::from_nanos(since))
            }
            _ => Duration::ZERO,
        }
    }

    pub fn backlog(&self) -> usize {
        match self {
            Output::Inline { .. } => 0,
            Output::Thread { shared, .. } => shared.backlog.load(Ordering::Relaxed),
        }
    }

    /// Writes everything queued, stops the thread, and returns the output.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Output::Inline { mut out, .. } => {
                out.flush()?;
                Ok(out)
            }
            Output::Thread {
                mut tx,
                mut handle,
                shared,
                ..
            } => {
                drop(tx.take());
                let out = match handle.take().map(|h| h.join()) {
                    Some(Ok(r)) => r,
                    _ => Err(io::Error::other("the trace writer thread panicked")),
                };
                match shared.failed.lock().ok().and_then(|mut f| f.take()) {
                    Some(e) => Err(e),
                    None => out,
                }
            }
        }
    }
}

impl<W: Write + Send + 'static> Output<W> {
    /// Moves writing to a thread that first runs `setup` (to lower its
    /// priority, say).
    /// `cap`: the backlog at which the caller stops queueing (see `Effort`).
    /// `written`: called on that thread after each chunk with the bytes
    /// just written (to start their writeback there, say). An output that
    /// is a thread already stays as it is, hooks included.
    pub fn into_thread(
        self,
        level: i32,
        cap: usize,
        setup: impl FnOnce() + Send + 'static,
        mut written: impl FnMut(&mut W, u64) + Send + 'static,
    ) -> io::Result<Output<W>> {
        let (mut out, before) = match self {
            Output::Inline { out, written, .. } => (out, written),
            t @ Output::Thread { .. } => return Ok(t),
        };
        let mut enc = Encoder::new(level)?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel::<Chunk>();
        let (spare_tx, spare) = mpsc::sync_channel(SPARES);
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("weft-writer".into())
            .spawn(move || -> io::Result<W> {
                setup();
                let mut failed = false;
                for mut c in rx {
                    if !failed {
                        let effort = Effort::for_backlog(s.backlog.load(Ordering::Relaxed), cap);
                        match enc.write_with(&mut out, &mut c, effort) {
                            Ok(n) => {
                                written(&mut out, n);
                                s.written.fetch_add(n, Ordering::Relaxed);
                                s.mark_progress();
                            }
                            Err(e) => {
                                failed = true;
                                if let Ok(mut f) = s.failed.lock() {
                                    f.get_or_insert(e);
                                }
                            }
                        }
                    }
                    s.backlog.fetch_sub(c.payload.len(), Ordering::Relaxed);
                    let mut p = c.payload;
                    p.clear();
                    let _ = spare_tx.try_send(p);
                }
                out.flush()?;
                Ok(out)
            })?;
        Ok(Output::Thread {
            tx: Some(tx),
            handle: Some(handle),
            shared,
            spare,
            before,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkHeader;

    /// Each effort writes a chunk that reads back as the same payload:
    /// compressed at either level, or stored as it is.
    #[test]
    fn every_effort_writes_a_chunk_that_reads_back() {
        let payload: Vec<u8> = (0..200_000u32).flat_map(|i| (i / 7).to_le_bytes()).collect();
        let mut chunk = Chunk {
            kind: ChunkKind::Events,
            payload: payload.clone(),
            seq: 1,
            records: 1,
            min_ts: 0,
            max_ts: 0,
        };
        let mut enc = Encoder::new(3).unwrap();
        let mut sizes = Vec::new();
        for (effort, compressed) in [
            (Effort::Asked, true),
            (Effort::Fast, true),
            (Effort::Store, false),
            (Effort::Asked, true),
        ] {
            let mut out = Vec::new();
            let n = enc.write_with(&mut out, &mut chunk, effort).unwrap();
            assert_eq!(n as usize, out.len());
            let head: &[u8; CHUNK_HEADER_LEN] = out[..CHUNK_HEADER_LEN].try_into().unwrap();
            let h = ChunkHeader::decode(head).unwrap();
            let stored = &out[CHUNK_HEADER_LEN..];
            assert_eq!(h.payload_crc, crc32c::crc32c(stored));
            let raw = match h.compression {
                Compression::Zstd => zstd::bulk::decompress(stored, payload.len()).unwrap(),
                Compression::None => stored.to_vec(),
            };
            assert_eq!(raw, payload, "{effort:?}");
            assert_eq!(h.compression == Compression::Zstd, compressed, "{effort:?}");
            sizes.push(stored.len());
        }
        // The fast level gives up some ratio; the asked one comes back.
        assert!(sizes[0] <= sizes[1] && sizes[1] < sizes[2], "{sizes:?}");
        assert_eq!(sizes[0], sizes[3]);
    }

    /// A probe payload is stored word-delta filtered when compressed
    /// (smaller than compressed as it is), and as it is when stored raw.
    #[test]
    fn probe_chunks_are_filtered_when_compressed() {
        let payload = delta::tests::payload(20_000);
        let write = |kind, effort| {
            let mut chunk = Chunk {
                kind,
                payload: payload.clone(),
                seq: 1,
                records: 20_000,
                min_ts: 0,
                max_ts: 0,
            };
            let mut out = Vec::new();
            Encoder::new(1)
                .unwrap()
                .write_with(&mut out, &mut chunk, effort)
                .unwrap();
            let head: &[u8; CHUNK_HEADER_LEN] = out[..CHUNK_HEADER_LEN].try_into().unwrap();
            let h = ChunkHeader::decode(head).unwrap();
            (h, out[CHUNK_HEADER_LEN..].to_vec())
        };
        let (h, stored) = write(ChunkKind::Probe, Effort::Asked);
        assert_eq!(
            (h.kind, h.compression, h.flags),
            (ChunkKind::ProbeDelta, Compression::Zstd, 5 | delta::CHECKS_CLEARED)
        );
        let mut raw = zstd::bulk::decompress(&stored, payload.len()).unwrap();
        delta::decode_probe(&mut raw, h.flags).unwrap();
        assert_eq!(raw, payload);
        let (plain, plain_stored) = write(ChunkKind::Events, Effort::Asked);
        assert_eq!((plain.kind, plain.flags), (ChunkKind::Events, 0));
        assert!(
            stored.len() * 2 < plain_stored.len(),
            "{} against {}",
            stored.len(),
            plain_stored.len()
        );
        // Records of random bytes do not compress: stored as they are,
        // with the check bytes the collector cleared computed again.
        let mut random = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0u64..200 {
            random.extend_from_slice(&weft_probe_abi::layout::record_word0(4000, 3, i, i).to_le_bytes());
            random.extend_from_slice(&(i << 8 | 0xc3).to_le_bytes());
            random.extend_from_slice(&i.to_le_bytes());
            for _ in 0..(4000 - 24) / 8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                random.extend_from_slice(&x.to_le_bytes());
            }
        }
        random.extend_from_slice(&0u32.to_le_bytes());
        let mut cleared = random.clone();
        for i in 0..200 {
            cleared[i * 4000 + 3] = 0;
        }
        let mut chunk = Chunk {
            kind: ChunkKind::Probe,
            payload: cleared,
            seq: 1,
            records: 200,
            min_ts: 0,
            max_ts: 0,
        };
        let mut out = Vec::new();
        Encoder::new(1)
            .unwrap()
            .write_with(&mut out, &mut chunk, Effort::Asked)
            .unwrap();
        let h = ChunkHeader::decode(out[..CHUNK_HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(
            (h.kind, h.compression, h.flags),
            (ChunkKind::Probe, Compression::None, 0)
        );
        assert!(out[CHUNK_HEADER_LEN..] == random[..]);
        // Compressed even when the writer thread falls far behind.
        let (h, _) = write(ChunkKind::Probe, Effort::Store);
        assert_eq!(
            (h.kind, h.compression, h.flags),
            (ChunkKind::ProbeDelta, Compression::Zstd, 5 | delta::CHECKS_CLEARED)
        );
    }

    #[test]
    fn the_effort_drops_as_chunks_queue_up() {
        for cap in [64 << 20, 1 << 30] {
            assert_eq!(Effort::for_backlog(0, cap), Effort::Asked);
            assert_eq!(Effort::for_backlog(cap / 4 - 1, cap), Effort::Asked);
            assert_eq!(Effort::for_backlog(cap / 4, cap), Effort::Fast);
            assert_eq!(Effort::for_backlog(cap / 8 * 5, cap), Effort::Store);
            assert_eq!(Effort::for_backlog(cap, cap), Effort::Store);
        }
        assert_eq!(Effort::for_backlog(256 << 20, 1 << 30), Effort::Fast);
        assert_eq!(Effort::for_backlog(640 << 20, 1 << 30), Effort::Store);
    }
}
