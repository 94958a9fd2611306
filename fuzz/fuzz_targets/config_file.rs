//! libFuzzer target: see `wharf::properties::config_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf::properties::config_file(data));
