//! Arbitrary bytes into the trace reader: it must never panic, hang or
//! allocate without bound, whatever the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_format::{ChunkInfo, Trace};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Trace::from_bytes(data.to_vec()) {
        exercise(&t);
    }
});

fn exercise(t: &Trace) {
    let _ = t.recovered_bytes();
    for s in t.schemas() {
        let _ = (&s.name, s.fields.len());
    }
    let _ = (&t.info, &t.end, t.syscalls.entries.len());
    for r in t.records() {
        let _ = r;
    }
    let events: Vec<ChunkInfo> = t.event_chunks().copied().collect();
    for c in &events {
        let _ = t.decode_events(c);
    }
    for c in &t.chunks {
        let _ = t.payload(c);
    }
}
