//! Arbitrary perf ring records (zero, short, huge sizes inside): the kernel
//! tracer's decoder never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(mut decode) = weft_kernel::fuzzing::decoder() {
        let _ = decode(data);
    }
});
