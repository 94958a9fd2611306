//! libFuzzer target: see `wharf::properties::multipart_form`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::multipart_form(data));
