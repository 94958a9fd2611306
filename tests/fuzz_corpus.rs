//! The fuzz targets' inputs, replayed: every file under `fuzz/corpus/TARGET/` (the
//! corpus the fuzzers built, minimised, and any input that once broke a property)
//! goes through the same property as the target, so each `cargo test` checks again
//! what fuzzing found. The fuzzers themselves run with `cargo +nightly fuzz run
//! TARGET` (see `fuzz/`).

use std::path::Path;

use wharf::properties;

type Property = fn(&[u8]);

const TARGETS: [(&str, Property); 10] = [
    ("request_path", properties::request_path),
    ("byte_ranges", properties::byte_ranges),
    ("header_fields", properties::header_fields),
    ("zip_layout", properties::zip_layout),
    ("config_file", properties::config_file),
    ("glob", properties::glob),
    ("program_output", properties::program_output),
    ("fastcgi_records", properties::fastcgi_records),
    ("multipart_form", properties::multipart_form),
    ("proxy_response", properties::proxy_response),
];

#[test]
fn every_corpus_input_keeps_its_property() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, property) in TARGETS {
        let dir = corpus.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        inputs.sort();
        assert!(inputs.len() >= 5, "{target}: only {} inputs", inputs.len());
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| property(&data));
            assert!(outcome.is_ok(), "{target}: {} breaks it", input.display());
        }
    }
}

/// The properties can fail: inputs that break them are caught.
#[test]
fn the_properties_are_checked() {
    // A range check that accepted an empty result would be vacuous: a real range
    // passes, and the property holds for it.
    properties::byte_ranges(b"bytes=0-10,20-30,-5");
    properties::request_path(b"/a/b/../c/%2e%2e/d");
    properties::header_fields(b"If-None-Match: \"a\", W/\"b\"\nRange: bytes=1-\n");
    properties::zip_layout(&[7, 1, 1, 9, 3, 0, 15, 2, 3, 0, 1, 1]);
    properties::program_output(b"\x08Status: 200\nContent-Length: 2\n\nokay");
    properties::proxy_response(
        b"\x04HTTP/1.1 200 OK\r\nConnection: x\r\nx: 1\r\nContent-Length: 2\r\n\r\nok",
    );
    properties::fastcgi_records(b"\x02\x01\x06\x00\x01\x00\x0c\x04\x00Status: 204\n\n\0\0\0\0");
    let boundary = properties::MULTIPART_BOUNDARY;
    let form = format!("\x03--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../a\"\r\n\r\nx\r\n--{boundary}--\r\n");
    properties::multipart_form(form.as_bytes());
}
