//! libFuzzer target: see `wharf::properties::byte_ranges`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::byte_ranges(data));
