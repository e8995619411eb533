//! Arbitrary control-socket frame bodies: what a peer sends is decoded
//! without panicking or allocating without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_probe_collect::fuzzing::decode_frame(data);
});
