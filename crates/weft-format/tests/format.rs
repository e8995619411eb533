//! Round trips, truncation at every offset, and mutated files: the reader
//! must return what is intact and never panic.

use proptest::prelude::*;
use weft_format::*;

fn sample_file(chunks: usize, per_chunk: usize) -> (Vec<u8>, usize) {
    let mut w = TraceWriter::new(
        Vec::new(),
        &[("clock", "CLOCK_MONOTONIC".into()), ("hostname", "h".into())],
        3,
    )
    .unwrap();
    let s = w.add_schema(Schema::new(
        "test:ev",
        &[
            ("n", FieldType::U64),
            ("d", FieldType::I32),
            ("s", FieldType::Str),
            ("a", FieldType::U64Array),
            ("f", FieldType::F64),
        ],
    ));
    w.write_syscall_table(&SyscallTable::new(vec![SyscallEntry {
        nr: 9,
        name: "mmap".into(),
        args: vec![SyscallArg {
            ctype: "unsigned long".into(),
            name: "addr".into(),
        }],
    }]))
    .unwrap();
    let mut buf = RecordBuf::new();
    let mut n = 0u64;
    for c in 0..chunks {
        for i in 0..per_chunk {
            let ts = 1_000 + (c * per_chunk + i) as u64 * 10;
            buf.record(s, ts, Some((i % 2) as u32), 100, 100 + i as u32)
                .u64(n)
                .i64(-(n as i64))
                .bytes(format!("event {n}").as_bytes())
                .u64s(&[n, n + 1])
                .f64(n as f64 / 2.0)
                .finish();
            n += 1;
        }
        w.write_events(&mut buf).unwrap();
    }
    let out = w.finish(&[("records", n.to_string())]).unwrap();
    (out, n as usize)
}

/// Read in place, a trace gives what `records` gives: the same records in
/// the same order (every accessor agreeing), and the same problems.
fn views_agree_with_records(t: &Trace) {
    let owned: Vec<Result<Record, String>> = t.records().map(|r| r.map_err(|e| e.to_string())).collect();
    let mut viewed: Vec<Result<Record, String>> = Vec::new();
    let mut v = t.views();
    while let Some(r) = v.next() {
        viewed.push(match r {
            Ok(r) => {
                let rec = r.to_record();
                for (i, f) in rec.fields.iter().enumerate() {
                    match f {
                        Value::U64(x) => assert_eq!(r.u64(i), *x),
                        Value::I64(x) => assert_eq!(r.i64(i), *x),
                        Value::Bool(x) => assert_eq!(r.bool(i), *x),
                        Value::Str(x) => assert_eq!(r.str(i), x.as_str()),
                        Value::Bytes(x) => assert_eq!(r.bytes(i), x.as_slice()),
                        Value::U64s(x) => assert_eq!(r.u64s(i).collect::<Vec<_>>(), *x),
                        Value::F64(_) => {}
                    }
                }
                assert_eq!(r.schema.id, rec.schema);
                Ok(rec)
            }
            Err(e) => Err(e.to_string()),
        });
    }
    assert_eq!(viewed, owned);
}

#[test]
fn round_trip() {
    let (bytes, n) = sample_file(5, 100);
    let t = Trace::from_bytes(bytes).unwrap();
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert!(!t.truncated);
    assert_eq!(t.info("clock"), Some("CLOCK_MONOTONIC"));
    assert_eq!(t.end_value("records"), Some(n.to_string().as_str()));
    assert_eq!(t.syscalls.get(9).unwrap().name, "mmap");
    views_agree_with_records(&t);
    let recs: Vec<Record> = t.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), n);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.u64(0), i as u64);
        assert_eq!(r.i64(1), -(i as i64));
        assert_eq!(r.str(2), format!("event {i}"));
        assert_eq!(r.fields[3], Value::U64s(vec![i as u64, i as u64 + 1]));
        assert_eq!(r.fields[4], Value::F64(i as f64 / 2.0));
    }
}

#[test]
fn bodies_of_every_length_class_round_trip() {
    // Body lengths whose length prefix takes one, two and three bytes.
    let lens = [0usize, 1, 120, 126, 127, 128, 129, 300, 16_380, 16_384, 20_000];
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    let s = w.add_schema(Schema::new("t:b", &[("v", FieldType::U64), ("b", FieldType::Bytes)]));
    let mut buf = RecordBuf::new();
    for (i, &n) in lens.iter().enumerate() {
        let body = vec![i as u8; n];
        buf.record(s, 10 + i as u64, None, 1, 1)
            .u64(i as u64)
            .bytes(&body)
            .finish();
    }
    w.write_events(&mut buf).unwrap();
    let t = Trace::from_bytes(w.finish(&[]).unwrap()).unwrap();
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let recs: Vec<Record> = t.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), lens.len());
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.u64(0), i as u64);
        assert_eq!(r.fields[1], Value::Bytes(vec![i as u8; lens[i]]));
    }
}

#[test]
fn merge_orders_overlapping_chunks() {
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    let s = w.add_schema(Schema::new("t:x", &[("v", FieldType::U64)]));
    let mut buf = RecordBuf::new();
    // Two chunks whose time ranges interleave, as two CPUs' batches do.
    for ts in [10u64, 30, 50] {
        buf.record(s, ts, Some(0), 1, 1).u64(ts).finish();
    }
    w.write_events(&mut buf).unwrap();
    for ts in [20u64, 40, 60] {
        buf.record(s, ts, Some(1), 1, 1).u64(ts).finish();
    }
    w.write_events(&mut buf).unwrap();
    let t = Trace::from_bytes(w.finish(&[]).unwrap()).unwrap();
    let ts: Vec<u64> = t.records().map(|r| r.unwrap().ts).collect();
    assert_eq!(ts, vec![10, 20, 30, 40, 50, 60]);
    views_agree_with_records(&t);
}

/// A vfork window (`kernel:vfork`) hands the weft-probe events its thread's
/// stream holds from inside it to the child, through both iterators, even
/// when the window was written after them; the thread's kernel records,
/// other threads' events and events outside the window stay as they are.
#[test]
fn events_in_a_vfork_window_are_the_childs() {
    use weft_format::std_schemas as s;
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    let probe = w.add_schema(Schema::new("app:tick", &[("v", FieldType::U64)]));
    let marker = w.add_schema(Schema::new(
        s::MARKER,
        &[("text", FieldType::Str), ("value", FieldType::I64)],
    ));
    let exit = w.add_schema(Schema::new(s::SYSCALL_EXIT, s::syscall_exit::FIELDS));
    let vfork = w.add_schema(Schema::new(s::VFORK, s::vfork::FIELDS));
    let mut buf = RecordBuf::new();
    for (ts, tid) in [(100u64, 7u32), (150, 7), (160, 8), (300, 7)] {
        buf.record(probe, ts, None, 7, tid).u64(ts).finish();
    }
    buf.record(marker, 170, None, 7, 7).bytes(b"child").i64(1).finish();
    w.write_events(&mut buf).unwrap();
    s::syscall_exit::put(buf.record(exit, 199, Some(0), 7, 7), 58, 9, &[]).finish();
    s::vfork::put(buf.record(vfork, 120, None, 7, 7), 9, 200).finish();
    w.write_events(&mut buf).unwrap();
    let t = Trace::from_bytes(w.finish(&[]).unwrap()).unwrap();
    let who: Vec<(u64, u32, u32)> = t.records().map(|r| r.unwrap()).map(|r| (r.ts, r.pid, r.tid)).collect();
    assert_eq!(
        who,
        vec![
            (100, 7, 7),
            (120, 7, 7),
            (150, 9, 9),
            (160, 7, 8),
            (170, 9, 9),
            (199, 7, 7),
            (300, 7, 7)
        ]
    );
    views_agree_with_records(&t);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Chunks whose time ranges overlap, nest and tie (as per-CPU batches
    /// do): views hand out runs of one chunk without the merge heap, and
    /// must still give the order `records` gives, which is sorted by time.
    #[test]
    fn overlapping_chunks_merge_alike(chunks in proptest::collection::vec(proptest::collection::vec(0u64..40, 1..30), 1..8)) {
        let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
        let s = w.add_schema(Schema::new("t:x", &[("c", FieldType::U64), ("i", FieldType::U64)]));
        let mut buf = RecordBuf::new();
        for (c, times) in chunks.iter().enumerate() {
            let mut times = times.clone();
            times.sort_unstable();
            for (i, ts) in times.iter().enumerate() {
                buf.record(s, *ts, Some(c as u32), 1, 1).u64(c as u64).u64(i as u64).finish();
            }
            w.write_events(&mut buf).unwrap();
        }
        let t = Trace::from_bytes(w.finish(&[]).unwrap()).unwrap();
        views_agree_with_records(&t);
        let ts: Vec<u64> = t.records().map(|r| r.unwrap().ts).collect();
        prop_assert!(ts.is_sorted());
        prop_assert_eq!(ts.len(), chunks.iter().map(Vec::len).sum::<usize>());
    }
}

#[test]
fn unsorted_chunk_decodes_exactly() {
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    let s = w.add_schema(Schema::new("t:x", &[("v", FieldType::U64)]));
    let mut buf = RecordBuf::new();
    // A later batch can hold a record older than the chunk's first one.
    for ts in [50u64, 60, 10, 70] {
        buf.record(s, ts, None, 1, 1).u64(ts).finish();
    }
    w.write_events(&mut buf).unwrap();
    let t = Trace::from_bytes(w.finish(&[]).unwrap()).unwrap();
    let recs: Vec<Record> = t.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.iter().map(|r| r.ts).collect::<Vec<_>>(), vec![10, 50, 60, 70]);
    assert!(recs.iter().all(|r| r.u64(0) == r.ts && r.cpu.is_none()));
    views_agree_with_records(&t);
}

#[test]
fn every_truncation_keeps_complete_chunks() {
    let (bytes, _) = sample_file(4, 20);
    let full = Trace::from_bytes(bytes.clone()).unwrap();
    let ends: Vec<u64> = full.chunks.iter().map(|c| c.end()).collect();
    // A longer prefix never yields fewer events.
    let mut read_before = 0usize;
    for cut in 0..bytes.len() {
        match Trace::from_bytes(bytes[..cut].to_vec()) {
            Err(e) => assert!(cut < FILE_HEADER_LEN, "cut {cut}: {e}"),
            Ok(t) => {
                let read = t.records().filter(Result::is_ok).count();
                assert!(
                    read >= read_before,
                    "cut at {cut}: {read} events, {read_before} with less"
                );
                read_before = read;
                let complete = ends.iter().filter(|&&e| e <= cut as u64).count();
                assert_eq!(t.chunks.len(), complete, "cut at {cut}");
                assert_eq!(
                    t.truncated,
                    !ends.contains(&(cut as u64)) && cut != FILE_HEADER_LEN,
                    "cut at {cut}"
                );
                for r in t.records() {
                    r.unwrap();
                }
                views_agree_with_records(&t);
            }
        }
    }
}

#[test]
fn damaged_chunk_is_skipped_and_later_chunks_read() {
    let (mut bytes, _) = sample_file(4, 20);
    let t = Trace::from_bytes(bytes.clone()).unwrap();
    let events: Vec<ChunkInfo> = t.event_chunks().copied().collect();
    // Damage the payload of the second events chunk and the header of the third.
    bytes[events[1].offset as usize + CHUNK_HEADER_LEN + 3] ^= 0x40;
    bytes[events[2].offset as usize + 10] ^= 0x01;
    let t = Trace::from_bytes(bytes).unwrap();
    let (mut ok, mut errs) = (0, Vec::new());
    for r in t.records() {
        match r {
            Ok(_) => ok += 1,
            Err(e) => errs.push(e),
        }
    }
    assert_eq!(ok, 40, "chunks 0 and 3 survive");
    views_agree_with_records(&t);
    assert!(matches!(errs[0], FormatError::BadPayloadChecksum { .. }), "{errs:?}");
    assert!(t
        .problems
        .iter()
        .any(|p| matches!(p.error, FormatError::BadChunkHeader { offset, .. } if offset == events[2].offset)));
}

#[test]
fn foreign_files_get_clear_errors() {
    assert!(matches!(
        Trace::from_bytes(b"hello world, this is not a weft trace".to_vec()),
        Err(FormatError::BadFileMagic { .. })
    ));
    let (mut bytes, _) = sample_file(1, 1);
    bytes[8] = 9; // major version
    let e = Trace::from_bytes(bytes).err().unwrap();
    assert!(matches!(e, FormatError::BadFileHeader), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutated_files_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..20), cut in any::<prop::sample::Index>()) {
        let (mut bytes, _) = sample_file(3, 15);
        for (i, b) in &flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b | 1;
        }
        let cut = cut.index(bytes.len() + 1);
        bytes.truncate(cut.max(bytes.len() / 2));
        if let Ok(t) = Trace::from_bytes(bytes) {
            for r in t.records() {
                let _ = r;
            }
            views_agree_with_records(&t);
            let _ = t.recovered_bytes();
        }
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..4096), with_header in any::<bool>()) {
        if with_header {
            let (good, _) = sample_file(0, 0);
            let mut v = good[..FILE_HEADER_LEN].to_vec();
            v.append(&mut bytes);
            bytes = v;
        }
        if let Ok(t) = Trace::from_bytes(bytes) {
            for r in t.records() {
                let _ = r;
            }
        }
    }
}

/// docs/format.md §12 documents each standard schema in a table of its
/// fields; the table and the definition in `std_schemas` must agree, field
/// by field, name and type.
#[test]
fn format_md_tables_match_the_standard_schemas() {
    use weft_format::FieldType as T;
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/format.md")).expect("docs/format.md");
    let word = |t: T| match t {
        T::U32 => "u32",
        T::U64 => "u64",
        T::I32 => "i32",
        T::I64 => "i64",
        T::Bool => "bool",
        T::Ptr => "ptr",
        T::Str => "string",
        T::Bytes => "bytes",
        T::U64Array => "u64[]",
        other => panic!("no doc word for {other:?}"),
    };
    for schema in weft_format::std_schemas::all() {
        let heading = format!("`{}`\n", schema.name);
        let at = doc
            .match_indices("\n### 12.")
            .map(|(i, _)| i)
            .find(|&i| doc[i..].lines().nth(1).is_some_and(|l| l.ends_with(heading.trim_end())))
            .unwrap_or_else(|| panic!("no §12 section for {}", schema.name));
        let section = &doc[at + 1..];
        let section = &section[..section[4..].find("\n### ").map_or(section.len(), |e| e + 4)];
        let rows: Vec<(String, String)> = section
            .lines()
            .filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit()))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[2].trim_matches('`').to_owned(), cells[3].to_owned())
            })
            .collect();
        let want: Vec<(String, String)> = schema
            .fields
            .iter()
            .map(|f| (f.name.clone(), word(f.ty).to_owned()))
            .collect();
        assert_eq!(
            rows, want,
            "docs/format.md's table for {} differs from std_schemas",
            schema.name
        );
    }
}

/// Schemas too many for one chunk are written in several; none is lost.
#[test]
fn a_flood_of_schemas_is_split_across_chunks() {
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    let name = "x".repeat(1000);
    let ids: Vec<SchemaId> = (0..20_000)
        .map(|i| w.add_schema(Schema::new(&format!("p:{i}{name}"), &[("v", FieldType::U64)])))
        .collect();
    w.record(ids[19_999], 5, None, 1, 1).u64(42).finish();
    let bytes = w.finish(&[]).unwrap();
    let t = Trace::from_bytes(bytes).unwrap();
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(t.schemas().count(), 20_000);
    let r: Vec<Record> = t.records().map(Result::unwrap).collect();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].u64(0), 42);
}

/// One committed record as weft-probe writes it (docs/probe-buffers.md §5.1).
fn probe_record(event: u32, seq: u64, tick: u64, payload: &[u8]) -> Vec<u8> {
    use weft_probe_abi::layout::{record_word0, STATE_COMMITTED};
    let len = (24 + payload.len() + 7) & !7;
    let mut r = Vec::new();
    r.extend_from_slice(&record_word0(len as u32, event, seq, tick).to_le_bytes());
    r.extend_from_slice(&((seq << 8) | u64::from(STATE_COMMITTED)).to_le_bytes());
    r.extend_from_slice(&tick.to_le_bytes());
    r.extend_from_slice(payload);
    r.resize(len, 0);
    r
}

fn tick_payload(a: u64, s: &str) -> Vec<u8> {
    let mut p = a.to_le_bytes().to_vec();
    p.extend_from_slice(&(s.len() as u16).to_le_bytes());
    p.extend_from_slice(s.as_bytes());
    p
}

/// Probe chunks: runs of two threads, with a clock that is not the
/// identity, read back merged by time with an Events chunk; ids missing
/// from a run's map and damaged records are skipped and said, the rest kept.
#[test]
fn probe_chunks_read_back_merged_with_events() {
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    let tick = w.add_schema(Schema::new("app:tick", &[("a", FieldType::U64), ("s", FieldType::Str)]));
    let other = w.add_schema(Schema::new("kernel:other", &[("x", FieldType::U64)]));
    // 2 ns per tick from tick 1000 at 50 000 ns.
    let clock = ProbeClock {
        tick0: 1000,
        mono0: 50_000,
        slope: 2 << 32,
    };
    let map = [(7, tick)];
    let run = |tid: u32, first: u64, n: u64| -> (Vec<u8>, ProbeRunInfo<'static>) {
        let mut bytes = Vec::new();
        for i in 0..n {
            bytes.extend(probe_record(
                7,
                first + i,
                1000 + (first + i) * 10,
                &tick_payload(first + i, "hé"),
            ));
        }
        let map: &'static [(u32, SchemaId)] = Box::leak(Box::new(map));
        let info = ProbeRunInfo {
            pid: 42,
            tid,
            clock,
            map,
            count: n as u32,
            min_ts: clock.ts(1000 + first * 10),
            max_ts: clock.ts(1000 + (first + n - 1) * 10),
        };
        (bytes, info)
    };
    let (b1, i1) = run(42, 0, 5);
    w.probe_run(&i1, &b1);
    let (b2, i2) = run(43, 100, 3);
    // Appended in place, as the collector does.
    w.probe_records(b2.len()).extend_from_slice(&b2);
    w.probe_run_added(&i2, b2.len());
    let mut buf = RecordBuf::new();
    buf.record(other, 50_045, Some(0), 1, 1).u64(9).finish();
    w.write_events(&mut buf).unwrap();
    let bytes = w.finish(&[]).unwrap();

    let t = Trace::from_bytes(bytes.clone()).unwrap();
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(t.event_chunks().count(), 2);
    views_agree_with_records(&t);
    let recs: Vec<Record> = t.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 9);
    let ts: Vec<u64> = recs.iter().map(|r| r.ts).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    // tick 1000 + 2*10 → 50 000 + 40 ns; the kernel record at 50 045 follows it.
    assert_eq!(recs[2].ts, 50_040);
    assert_eq!(recs[3].schema, other);
    let r = &recs[0];
    assert_eq!((r.schema, r.pid, r.tid, r.cpu), (tick, 42, 42, None));
    assert_eq!(r.fields, vec![Value::U64(0), Value::Str("hé".into())]);
    let last = recs.last().unwrap();
    assert_eq!((last.tid, last.u64(0), last.ts), (43, 102, 50_000 + 1_020 * 2));

    // A flipped byte in a record header ends its run, with one error; the
    // other run and the events chunk are intact.
    let probe = t.event_chunks().find(|c| c.header.kind.is_probe()).copied().unwrap();
    let payload = t.payload(&probe).unwrap();
    let mut damaged = payload.clone();
    damaged[32 + 16] ^= 1; // the second record's tick
    let (ok, errs) = decode_probe_payload(&t, &probe, damaged);
    assert_eq!(ok, 1 + 3, "{errs:?}");
    assert_eq!(errs.len(), 1, "{errs:?}");
    // A map without the event: its records are skipped and counted.
    let mut unmapped = payload.clone();
    let idx_len = u32::from_le_bytes(unmapped[unmapped.len() - 4..].try_into().unwrap()) as usize;
    let idx_start = unmapped.len() - 4 - idx_len;
    // The first run's map entry (7, tick) follows pid and tid (1 byte each),
    // tick0, mono0 and slope (2, 3 and 5 bytes) and nmap (1).
    let pos = idx_start + 1 + 1 + 2 + 3 + 5 + 1;
    assert_eq!(unmapped[pos], 7);
    unmapped[pos] = 8;
    let (ok, errs) = decode_probe_payload(&t, &probe, unmapped);
    assert_eq!(ok, 3, "{errs:?}");
    assert!(errs.iter().any(|e| e.to_string().contains("5 records")), "{errs:?}");
    // Every truncation of the payload is survived.
    for cut in 0..payload.len() {
        let _ = decode_probe_payload(&t, &probe, payload[..cut].to_vec());
    }

    // Stored word-delta filtered (a ProbeDelta chunk, docs/format.md §5.6):
    // the same records; a stride the format does not allow is one error,
    // and a wrong one garbles records that then fail their checks.
    let delta = |stride: u16, said: u16| {
        let k = usize::from(stride) * 8;
        let mut f = payload.clone();
        let words = f.len() / 8 * 8;
        for at in (k..words).step_by(8).rev() {
            let v = u64::from_le_bytes(f[at..at + 8].try_into().unwrap())
                .wrapping_sub(u64::from_le_bytes(f[at - k..at - k + 8].try_into().unwrap()));
            f[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        decode_chunk(&t, &probe, ChunkKind::ProbeDelta, said, f)
    };
    let (ok, errs) = delta(4, 4);
    assert_eq!((ok, errs.len()), (5 + 3, 0), "{errs:?}");
    for bad in [0, 513] {
        let (ok, errs) = delta(4, bad);
        assert_eq!(ok, 0);
        assert!(errs.len() == 1 && errs[0].to_string().contains("stride"), "{errs:?}");
    }
    let (ok, errs) = delta(4, 3);
    assert!(ok < 8 && !errs.is_empty(), "{ok} {errs:?}");
}

/// Decodes a probe payload as if it were the chunk's (stored raw).
fn decode_probe_payload(t: &Trace, c: &ChunkInfo, payload: Vec<u8>) -> (usize, Vec<FormatError>) {
    decode_chunk(t, c, ChunkKind::Probe, 0, payload)
}

/// Decodes a payload of `kind` with `flags`, in place of the chunk `c`.
fn decode_chunk(t: &Trace, c: &ChunkInfo, kind: ChunkKind, flags: u16, payload: Vec<u8>) -> (usize, Vec<FormatError>) {
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    for s in t.schemas() {
        let fields: Vec<(&str, FieldType)> = s.fields.iter().map(|f| (f.name.as_str(), f.ty)).collect();
        w.add_schema(Schema::new(&s.name, &fields));
    }
    let mut bytes = w.finish(&[]).unwrap();
    // End chunk last: a Probe chunk with this payload before it is as good.
    let header = ChunkHeader {
        kind,
        compression: Compression::None,
        flags,
        stored_len: payload.len() as u32,
        raw_len: payload.len() as u32,
        seq: 99,
        records: c.header.records,
        min_ts: c.header.min_ts,
        max_ts: c.header.max_ts,
        payload_crc: crc32c_of(&payload),
    };
    bytes.extend_from_slice(&header.encode());
    bytes.extend_from_slice(&payload);
    let t2 = Trace::from_bytes(bytes).unwrap();
    views_agree_with_records(&t2);
    let chunk = t2.event_chunks().copied().next().unwrap();
    let (recs, errs) = t2.decode_events(&chunk);
    (recs.len(), errs)
}

fn crc32c_of(b: &[u8]) -> u32 {
    // CRC-32C, bitwise (a test needs no speed).
    let mut crc = !0u32;
    for &x in b {
        crc ^= u32::from(x);
        for _ in 0..8 {
            crc = (crc >> 1) ^ if crc & 1 != 0 { 0x82F6_3B78 } else { 0 };
        }
    }
    !crc
}

/// A writer thread says how many bytes each chunk took, on that thread:
/// together with what was written before it started, they are the file.
#[test]
fn a_background_writer_reports_every_byte_it_wrote() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    let s = w.add_schema(Schema::new("t:x", &[("v", FieldType::U64)]));
    let before = w.bytes_written();
    let (sum, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s2, c2) = (Arc::clone(&sum), Arc::clone(&calls));
    let main = std::thread::current().id();
    let mut w = w
        .in_background(
            64 << 20,
            || {},
            move |out: &mut Vec<u8>, n| {
                assert_ne!(std::thread::current().id(), main, "called on the writer thread");
                s2.fetch_add(n, Ordering::Relaxed);
                c2.store(out.len() as u64, Ordering::Relaxed);
            },
        )
        .unwrap();
    let mut buf = RecordBuf::new();
    for chunk in 0..5u64 {
        for i in 0..1000 {
            buf.record(s, chunk * 1000 + i, None, 1, 1).u64(i).finish();
        }
        w.write_events(&mut buf).unwrap();
    }
    let bytes = w.finish(&[]).unwrap();
    // The last call saw the file as long as every byte reported so far.
    assert_eq!(calls.load(Ordering::Relaxed), before + sum.load(Ordering::Relaxed));
    assert_eq!(bytes.len() as u64, before + sum.load(Ordering::Relaxed));
    let t = Trace::from_bytes(bytes).unwrap();
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(t.records().count(), 5000);
}

/// Records as a collector hands them over (check bytes cleared once
/// checked) come back whole, whatever their length: records longer than
/// the filter's largest stride, and records of two lengths in one run.
#[test]
fn probe_records_with_cleared_checks_read_back_at_any_length() {
    let mut w = TraceWriter::new(Vec::new(), &[], 1).unwrap();
    let fields = [
        ("a", FieldType::U64),
        ("b", FieldType::Bytes),
        ("c", FieldType::Bytes),
        ("d", FieldType::Bytes),
    ];
    let blob = w.add_schema(Schema::new("app:blob", &fields));
    let map = [(7, blob)];
    let mut recs = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..40u64 {
        // 3 x 3000 bytes: records of 9 KiB, longer than 512 words.
        let n = if i % 3 == 2 { 5 } else { 3000 };
        let mut p = i.to_le_bytes().to_vec();
        for _ in 0..3 {
            p.extend_from_slice(&(n as u16).to_le_bytes());
            p.extend(std::iter::repeat_n(b'x', n));
        }
        let mut r = probe_record(7, i, 1000 + i * 10, &p);
        r[3] = 0; // the check byte, as the collector leaves it
        recs.extend(r);
        sizes.push(n);
    }
    let info = ProbeRunInfo {
        pid: 5,
        tid: 5,
        clock: ProbeClock::IDENTITY,
        map: &map,
        count: 40,
        min_ts: 1000,
        max_ts: 1000 + 39 * 10,
    };
    w.probe_run(&info, &recs);
    let t = Trace::from_bytes(w.finish(&[]).unwrap()).unwrap();
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let c = t.event_chunks().next().copied().unwrap();
    assert_eq!((c.header.kind, c.header.flags & 0x7fff), (ChunkKind::ProbeDelta, 512));
    let recs: Vec<Record> = t.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 40);
    for (i, r) in recs.iter().enumerate() {
        let b = Value::Bytes(vec![b'x'; sizes[i]]);
        assert_eq!(r.fields, vec![Value::U64(i as u64), b.clone(), b.clone(), b]);
    }
}
