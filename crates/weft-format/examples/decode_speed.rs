//! How fast the reader turns a chunk into records: the same weft-probe
//! events stored as a Probe chunk (as written, format.md §5.5) and as an
//! Events chunk (encoded, §5.4), both zstd-compressed as `weft record`
//! writes them. Run by bench/decode.sh:
//!
//! `cargo run --release -p weft-format --example decode_speed [RECORDS] [ROUNDS]`
//!
//! Prints, per kind, the median over ROUNDS of ns per record for
//! `Trace::decode_events` (checksum, decompression and decoding), the
//! stored bytes per record, and the ratio of the two speeds.

use std::time::Instant;

use weft_format::{
    ChunkKind, FieldType, ProbeClock, ProbeRunInfo, RecordBuf, Schema, SchemaId, Trace, TraceWriter, EVENTS_CHUNK_BYTES,
};
use weft_probe_abi::layout::{record_word0, STATE_COMMITTED};

fn main() {
    let mut args = std::env::args().skip(1);
    let records: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let (probe, events) = (build(records, true), build(records, false));
    println!("records per file: {records}; rounds: {rounds}");
    let p = measure("Probe chunks (as written)", &probe, rounds);
    let e = measure("Events chunks (encoded)", &events, rounds);
    println!("probe / events decode time per record: {:.2}", p / e);
}

/// A file of `n` events `bench:tick {a: u64, b: u64}` of one thread, as
/// Probe chunks or as Events chunks.
fn build(n: u64, raw: bool) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &[], 1).expect("writer");
    let tick = w.add_schema(Schema::new(
        "bench:tick",
        &[("a", FieldType::U64), ("b", FieldType::U64)],
    ));
    // 2.5 ns per tick, ticks 40 apart (a write every 100 ns).
    let clock = ProbeClock {
        tick0: 1_000_000,
        mono0: 5_000_000_000,
        slope: 5 << 31,
    };
    let map: [(u32, SchemaId); 1] = [(3, tick)];
    let mut run = Vec::new();
    let mut buf = RecordBuf::new();
    let mut first = 0u64;
    for seq in 0..n {
        let t = 1_000_000 + seq * 40;
        if raw {
            let mut rec = Vec::with_capacity(40);
            rec.extend_from_slice(&record_word0(40, 3, seq, t).to_le_bytes());
            rec.extend_from_slice(&((seq << 8) | u64::from(STATE_COMMITTED)).to_le_bytes());
            rec.extend_from_slice(&t.to_le_bytes());
            rec.extend_from_slice(&seq.to_le_bytes());
            rec.extend_from_slice(&7u64.to_le_bytes());
            run.extend_from_slice(&rec);
            // Runs of one 64 KiB sub-buffer, as the collector copies them.
            if run.len() >= 64 << 10 || seq + 1 == n {
                let count = (seq + 1 - first) as u32;
                let info = ProbeRunInfo {
                    pid: 100,
                    tid: 101,
                    clock,
                    map: &map,
                    count,
                    min_ts: clock.ts(1_000_000 + first * 40),
                    max_ts: clock.ts(t),
                };
                w.probe_run(&info, &run);
                run.clear();
                first = seq + 1;
            }
        } else {
            buf.record(tick, clock.ts(t), None, 100, 101).u64(seq).u64(7).finish();
            if buf.byte_len() >= EVENTS_CHUNK_BYTES {
                w.write_events(&mut buf).expect("events");
            }
        }
    }
    w.write_events(&mut buf).expect("events");
    w.finish(&[]).expect("finish")
}

/// Median ns per record of decoding every records chunk of `file`.
fn measure(what: &str, file: &[u8], rounds: usize) -> f64 {
    let t = Trace::from_bytes(file.to_vec()).expect("trace");
    let chunks: Vec<_> = t.event_chunks().copied().collect();
    let kinds: Vec<ChunkKind> = chunks.iter().map(|c| c.header.kind).collect();
    let mut per = Vec::new();
    let mut n = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        n = 0;
        for c in &chunks {
            let (recs, errs) = t.decode_events(c);
            assert!(errs.is_empty(), "{errs:?}");
            n += recs.len();
            std::hint::black_box(recs);
        }
        per.push(t0.elapsed().as_nanos() as f64 / n as f64);
    }
    per.sort_by(f64::total_cmp);
    let med = per[per.len() / 2];
    let stored: u64 = chunks.iter().map(|c| u64::from(c.header.stored_len) + 48).sum();
    println!(
        "{what}: {n} records in {} chunks ({:?}), {med:.1} ns/record (median), {:.2} stored bytes/record",
        chunks.len(),
        kinds.first(),
        stored as f64 / n as f64
    );
    med
}
