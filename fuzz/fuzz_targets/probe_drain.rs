//! Arbitrary bytes as the shared memory of an instrumented process: the
//! collector must never panic, hang or read out of bounds, whatever a
//! program writes there.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_probe_collect::fuzzing::drain_image(data);
});
