//! libFuzzer target: see `wharf::properties::fastcgi_records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::fastcgi_records(data));
