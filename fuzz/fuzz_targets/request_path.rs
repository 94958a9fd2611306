//! libFuzzer target: see `wharf::properties::request_path`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::request_path(data));
