//! Arbitrary bytes into the trace reader: it must never panic, hang or
//! allocate without bound, whatever the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_format::Trace;

mod common;
use common::exercise;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Trace::from_bytes(data.to_vec()) {
        exercise(&t);
    }
});
