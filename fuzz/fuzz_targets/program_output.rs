//! libFuzzer target: see `wharf::properties::program_output`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::program_output(data));
