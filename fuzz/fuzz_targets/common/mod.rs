//! What every reader fuzz target does with a trace that opened: touch every
//! public path of the reader.

use weft_format::{ChunkInfo, Trace};

pub fn exercise(t: &Trace) {
    let _ = t.recovered_bytes();
    for s in t.schemas() {
        let _ = (&s.name, s.fields.len());
    }
    let _ = (&t.info, &t.end, t.syscalls.entries.len());
    for r in t.records() {
        let _ = r;
    }
    // Read in place, every field of every record.
    let mut v = t.views();
    while let Some(r) = v.next() {
        if let Ok(r) = r {
            for i in 0..r.schema.fields.len() + 1 {
                let _ = (r.field(i), r.u64s(i).count(), r.str(i));
            }
            let _ = r.to_record();
        }
    }
    let events: Vec<ChunkInfo> = t.event_chunks().copied().collect();
    for c in &events {
        let _ = t.decode_events(c);
    }
    for c in &t.chunks {
        let _ = t.payload(c);
    }
}
