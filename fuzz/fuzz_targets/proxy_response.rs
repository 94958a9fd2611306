//! libFuzzer target: see `wharf::properties::proxy_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::proxy_response(data));
