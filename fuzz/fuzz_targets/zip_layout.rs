//! libFuzzer target: see `wharf::properties::zip_layout`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::zip_layout(data));
