//! libFuzzer target: see `wharf::properties::glob`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::glob(data));
