//! libFuzzer target: see `wharf::properties::header_fields`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::header_fields(data));
