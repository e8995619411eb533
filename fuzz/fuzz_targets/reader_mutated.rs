//! Starts from a valid trace built in-process and damages it as the fuzzer's
//! bytes say, optionally repairing the checksums afterwards so that the
//! damage reaches the payload decoders instead of stopping at a CRC.
//!
//! Input layout:
//! - byte 0, flags: bit 0 = start from the uncompressed copy of the trace
//!   (so payload mutations reach the record decoders, not zstd); bit 1 =
//!   recompute the file header, chunk header and payload checksums after
//!   mutating; bit 2 = truncate (the next 2 bytes, LE, modulo len + 1, give
//!   the new length).
//! - then 3-byte mutations: offset (u16 LE, modulo len) and a byte to XOR in.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

mod common;
use weft_format::{
    ChunkHeader, ChunkInfo, ChunkKind, Compression, FieldType, ProbeClock, ProbeRunInfo, RecordBuf, Schema, SyscallArg,
    SyscallEntry, SyscallTable, Trace, TraceWriter, CHUNK_HEADER_LEN, CHUNK_MAGIC, FILE_HEADER_LEN,
};

struct Bases {
    zstd: Vec<u8>,
    flat: Vec<u8>,
}

fn bases() -> &'static Bases {
    static B: OnceLock<Bases> = OnceLock::new();
    B.get_or_init(|| {
        let zstd = build_trace();
        let flat = uncompressed_copy(&zstd);
        Bases { zstd, flat }
    })
}

/// A small trace with every chunk kind and every field type.
fn build_trace() -> Vec<u8> {
    let mut w = TraceWriter::new(
        Vec::new(),
        &[("clock", "CLOCK_MONOTONIC".into()), ("hostname", "fuzz".into())],
        1,
    )
    .expect("writer");
    let all = w.add_schema(Schema::new(
        "test:all",
        &[
            ("u8", FieldType::U8),
            ("u16", FieldType::U16),
            ("u32", FieldType::U32),
            ("u64", FieldType::U64),
            ("i8", FieldType::I8),
            ("i16", FieldType::I16),
            ("i32", FieldType::I32),
            ("i64", FieldType::I64),
            ("f", FieldType::F64),
            ("b", FieldType::Bool),
            ("p", FieldType::Ptr),
            ("s", FieldType::Str),
            ("y", FieldType::Bytes),
            ("a", FieldType::U64Array),
        ],
    ));
    let small = w.add_schema(Schema::new("test:small", &[("v", FieldType::U64)]));
    w.write_syscall_table(&SyscallTable::new(vec![
        SyscallEntry {
            nr: 0,
            name: "read".into(),
            args: vec![SyscallArg {
                ctype: "unsigned int".into(),
                name: "fd".into(),
            }],
        },
        SyscallEntry {
            nr: 9,
            name: "mmap".into(),
            args: vec![],
        },
    ]))
    .expect("syscall table");
    let mut buf = RecordBuf::new();
    // Three chunks; the second overlaps the first in time, as two CPUs' do.
    for (chunk, start) in [(0u64, 100u64), (1, 150), (2, 400)] {
        for i in 0..4u64 {
            let ts = start + i * 30;
            if i % 2 == 0 {
                buf.record(all, ts, Some(chunk as u32), 10, 11)
                    .u64(i)
                    .u64(300)
                    .u64(70_000)
                    .u64(u64::MAX - i)
                    .i64(-1)
                    .i64(-300)
                    .i64(i64::MIN + 1)
                    .i64(i as i64)
                    .f64(1.5)
                    .bool(true)
                    .u64(0x7fff_0000)
                    .bytes(b"hello")
                    .bytes(&[0, 0xff])
                    .u64s(&[1, 2, 3])
                    .finish();
            } else {
                buf.record(small, ts, None, 10, 12).u64(ts).finish();
            }
        }
        w.write_events(&mut buf).expect("events");
    }
    // A probe chunk: two runs of weft-probe records as a program writes them.
    let probe = w.add_schema(Schema::new("app:tick", &[("a", FieldType::U64), ("s", FieldType::Str)]));
    let clock = ProbeClock {
        tick0: 1000,
        mono0: 120,
        slope: 3 << 31,
    };
    for (tid, first) in [(11u32, 0u64), (12, 100)] {
        let mut recs = Vec::new();
        for seq in first..first + 30 {
            recs.extend(probe_record(5, seq, 1000 + seq * 20, seq, "hi"));
        }
        let map = [(5, probe)];
        let info = ProbeRunInfo {
            pid: 10,
            tid,
            clock,
            map: &map,
            count: 30,
            min_ts: clock.ts(1000 + first * 20),
            max_ts: clock.ts(1000 + (first + 29) * 20),
        };
        w.probe_run(&info, &recs);
    }
    w.finish(&[("records", "72".into())]).expect("finish")
}

/// A committed weft-probe record of `{a: u64, s: str}`.
fn probe_record(event: u32, seq: u64, tick: u64, a: u64, s: &str) -> Vec<u8> {
    use weft_probe_abi::layout::{record_word0, STATE_COMMITTED};
    let mut payload = a.to_le_bytes().to_vec();
    payload.extend_from_slice(&(s.len() as u16).to_le_bytes());
    payload.extend_from_slice(s.as_bytes());
    let len = (24 + payload.len() + 7) & !7;
    let mut r = Vec::new();
    r.extend_from_slice(&record_word0(len as u32, event, seq, tick).to_le_bytes());
    r.extend_from_slice(&((seq << 8) | u64::from(STATE_COMMITTED)).to_le_bytes());
    r.extend_from_slice(&tick.to_le_bytes());
    r.extend_from_slice(&payload);
    r.resize(len, 0);
    r
}

/// The same trace with every payload stored uncompressed (a ProbeDelta
/// chunk's still filtered, so that mutations reach its unfiltering).
fn uncompressed_copy(bytes: &[u8]) -> Vec<u8> {
    let t = Trace::from_bytes(bytes.to_vec()).expect("valid base trace");
    let mut out = bytes[..FILE_HEADER_LEN].to_vec();
    let chunks: Vec<ChunkInfo> = t.chunks.clone();
    assert!(
        chunks.iter().any(|c| c.header.kind == ChunkKind::ProbeDelta),
        "the base trace has a ProbeDelta chunk"
    );
    for c in &chunks {
        let p = match (c.header.kind, c.header.compression) {
            (ChunkKind::ProbeDelta, Compression::Zstd) => {
                let at = c.offset as usize + CHUNK_HEADER_LEN;
                let stored = &bytes[at..at + c.header.stored_len as usize];
                zstd::bulk::decompress(stored, c.header.raw_len as usize).expect("valid payload")
            }
            _ => t.payload(c).expect("valid payload"),
        };
        let h = ChunkHeader {
            compression: Compression::None,
            stored_len: p.len() as u32,
            raw_len: p.len() as u32,
            payload_crc: crc32c::crc32c(&p),
            ..c.header
        };
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(&p);
    }
    out
}

/// Rewrites the file header CRC and, along the (possibly mutated) chunk
/// framing, each payload CRC and header CRC.
fn fix_checksums(b: &mut [u8]) {
    if b.len() < FILE_HEADER_LEN {
        return;
    }
    let crc = crc32c::crc32c(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut off = FILE_HEADER_LEN;
    while off + CHUNK_HEADER_LEN <= b.len() && b[off..off + 4] == CHUNK_MAGIC {
        let stored_len = u32::from_le_bytes([b[off + 8], b[off + 9], b[off + 10], b[off + 11]]);
        let end = (off + CHUNK_HEADER_LEN).checked_add(stored_len as usize);
        let in_file = end.filter(|&e| e <= b.len());
        if let Some(e) = in_file {
            let crc = crc32c::crc32c(&b[off + CHUNK_HEADER_LEN..e]);
            b[off + 40..off + 44].copy_from_slice(&crc.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b[off..off + 44]);
        b[off + 44..off + 48].copy_from_slice(&crc.to_le_bytes());
        match in_file {
            Some(e) => off = e,
            None => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let base = if flags & 1 != 0 { &bases().flat } else { &bases().zstd };
    let mut bytes = base.clone();
    let mut cut = None;
    if flags & 4 != 0 && rest.len() >= 2 {
        cut = Some(usize::from(u16::from_le_bytes([rest[0], rest[1]])) % (bytes.len() + 1));
        rest = &rest[2..];
    }
    for m in rest.chunks_exact(3) {
        let off = usize::from(u16::from_le_bytes([m[0], m[1]])) % bytes.len();
        bytes[off] ^= m[2];
    }
    if let Some(cut) = cut {
        bytes.truncate(cut);
    }
    if flags & 2 != 0 {
        fix_checksums(&mut bytes);
    }
    if let Ok(t) = Trace::from_bytes(bytes) {
        common::exercise(&t);
    }
});
