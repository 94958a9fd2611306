//! Compression: which types are worth it, encoding, and the cache of encoded variants.
//!
//! Variants made on the fly are produced once and kept in a cache bounded in bytes,
//! keyed by the identity content's ETag (a content hash) and the coding, so a file
//! restored to earlier content reuses its old variant and a changed file can never be
//! answered with a stale one. Because whole variants are cached, Content-Length and
//! byte ranges work on compressed representations exactly as on identity ones.
//! Compression runs on the blocking pool (the static handler's one trip there), never
//! on an async worker.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Mutex;

use bytes::Bytes;
use http::HeaderValue;

use crate::http::etag::EntityTag;
use crate::http::negotiate::Encoding;

/// Smaller files are sent as they are: the coding's framing would eat the gain.
pub const MIN_SIZE: u64 = 256;
/// Larger files are not compressed on the fly (their variants would crowd the cache);
/// precompressed sidecars still serve them.
pub const MAX_SIZE: u64 = 16 * 1024 * 1024;

/// Whether a media type gains from compression: text, scripts, JSON, XML, SVG,
/// WebAssembly, and uncompressed font formats; never images, audio, video, archives,
/// or WOFF/WOFF2 (already compressed).
pub fn is_compressible(content_type: &HeaderValue) -> bool {
    let Ok(value) = content_type.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (ty, sub) = essence.split_once('/').unwrap_or((&essence, ""));
    match ty {
        "text" => true,
        "image" => {
            sub == "svg+xml" || sub == "x-icon" || sub == "vnd.microsoft.icon" || sub == "bmp"
        }
        "font" => sub == "ttf" || sub == "otf" || sub == "collection",
        "application" => {
            matches!(
                sub,
                "javascript"
                    | "x-javascript"
                    | "ecmascript"
                    | "json"
                    | "ld+json"
                    | "manifest+json"
                    | "xml"
                    | "xhtml+xml"
                    | "rss+xml"
                    | "atom+xml"
                    | "wasm"
                    | "x-font-ttf"
                    | "x-font-otf"
                    | "vnd.ms-fontobject"
                    | "x-sh"
                    | "toml"
                    | "yaml"
                    | "x-yaml"
                    | "sql"
                    | "graphql"
                    | "rtf"
                    | "postscript"
            ) || sub.ends_with("+json")
                || sub.ends_with("+xml")
        }
        _ => false,
    }
}

/// Encodes `data` with `encoding` (not identity) at a level balanced for one-off work
/// whose result is cached.
pub fn encode(data: &[u8], encoding: Encoding) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    match encoding {
        Encoding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
            enc.write_all(data)?;
            out = enc.finish()?;
        }
        Encoding::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: 6,
                lgwin: 22,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
        }
        Encoding::Zstd => {
            out = zstd::encode_all(data, 6)?;
        }
        Encoding::Identity => out.extend_from_slice(data),
    }
    Ok(out)
}

/// A coding applied as the content is produced (streamed listings), with the same
/// levels as [`encode`]: bytes go in with [`StreamEncoder::write`], compressed output
/// is taken as it accumulates with [`StreamEncoder::take`], and [`StreamEncoder::finish`]
/// ends the stream.
pub enum StreamEncoder {
    /// No coding: the bytes themselves.
    Identity(Vec<u8>),
    /// `gzip`.
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    /// `br`.
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// `zstd`.
    Zstd(zstd::Encoder<'static, Vec<u8>>),
}

impl StreamEncoder {
    /// An encoder for `encoding`.
    pub fn new(encoding: Encoding) -> io::Result<StreamEncoder> {
        Ok(match encoding {
            Encoding::Identity => StreamEncoder::Identity(Vec::new()),
            Encoding::Gzip => StreamEncoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(6),
            )),
            Encoding::Brotli => StreamEncoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                64 * 1024,
                6,
                22,
            ))),
            Encoding::Zstd => StreamEncoder::Zstd(zstd::Encoder::new(Vec::new(), 6)?),
        })
    }

    /// Feeds `data` in.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            StreamEncoder::Identity(out) => {
                out.extend_from_slice(data);
                Ok(())
            }
            StreamEncoder::Gzip(e) => e.write_all(data),
            StreamEncoder::Brotli(e) => e.write_all(data),
            StreamEncoder::Zstd(e) => e.write_all(data),
        }
    }

    /// Bytes of output waiting to be taken.
    pub fn pending(&mut self) -> usize {
        self.output().len()
    }

    /// Takes the output produced so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.output())
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            StreamEncoder::Identity(out) => out,
            StreamEncoder::Gzip(e) => e.get_mut(),
            StreamEncoder::Brotli(e) => e.get_mut(),
            StreamEncoder::Zstd(e) => e.get_mut(),
        }
    }

    /// Ends the stream; returns the rest of the output.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            StreamEncoder::Identity(out) => Ok(out),
            StreamEncoder::Gzip(e) => e.finish(),
            StreamEncoder::Brotli(e) => Ok(e.into_inner()),
            StreamEncoder::Zstd(e) => e.finish(),
        }
    }
}

type Key = (EntityTag, Encoding);

/// Encoded variants, bounded in total bytes; oldest inserted are evicted first.
#[derive(Debug)]
pub struct VariantCache {
    inner: Mutex<Variants>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Variants {
    /// `None` records that compressing did not make the content smaller.
    map: HashMap<Key, Option<Bytes>>,
    order: VecDeque<Key>,
    bytes: usize,
}

impl VariantCache {
    /// A cache holding at most `capacity` bytes of encoded content.
    pub fn new(capacity: usize) -> VariantCache {
        VariantCache {
            inner: Mutex::new(Variants::default()),
            capacity,
        }
    }

    /// The `encoding` variant of the content tagged `tag`, produced by `encode` from
    /// `identity()` on a miss. `None` when the encoded form would not be smaller.
    /// Blocks (compresses) on a miss.
    pub fn get_or_encode(
        &self,
        tag: &EntityTag,
        encoding: Encoding,
        identity: impl FnOnce() -> io::Result<Bytes>,
    ) -> io::Result<Option<Bytes>> {
        let key = (tag.clone(), encoding);
        if let Some(hit) = self.lock().map.get(&key) {
            crate::metrics::metrics().compression_cache(crate::metrics::Lookup::Hit);
            return Ok(hit.clone());
        }
        crate::metrics::metrics().compression_cache(crate::metrics::Lookup::Miss);
        let data = identity()?;
        let encoded = encode(&data, encoding)?;
        let variant = (encoded.len() < data.len()).then(|| Bytes::from(encoded));
        self.insert(key, variant.clone());
        Ok(variant)
    }

    fn insert(&self, key: Key, variant: Option<Bytes>) {
        let size = variant.as_ref().map_or(0, Bytes::len);
        if size > self.capacity {
            return;
        }
        let mut v = self.lock();
        if v.map.contains_key(&key) {
            return;
        }
        while v.bytes + size > self.capacity || v.order.len() >= 100_000 {
            let Some(old) = v.order.pop_front() else {
                break;
            };
            if let Some(Some(bytes)) = v.map.remove(&old) {
                v.bytes -= bytes.len();
            }
        }
        v.bytes += size;
        v.order.push_back(key.clone());
        v.map.insert(key, variant);
        crate::metrics::metrics().compression_cache_size(v.bytes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Variants> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn tag(n: u8) -> EntityTag {
        EntityTag::of_content(&[n])
    }

    #[test]
    fn types() {
        let c = |s: &'static str| is_compressible(&HeaderValue::from_static(s));
        for yes in [
            "text/html; charset=utf-8",
            "text/javascript; charset=utf-8",
            "application/json",
            "image/svg+xml",
            "application/wasm",
            "font/ttf",
            "application/vnd.api+json",
        ] {
            assert!(c(yes), "{yes}");
        }
        for no in [
            "image/png",
            "image/jpeg",
            "video/mp4",
            "audio/mpeg",
            "application/zip",
            "application/gzip",
            "font/woff2",
            "application/octet-stream",
        ] {
            assert!(!c(no), "{no}");
        }
    }

    #[test]
    fn every_coding_round_trips() {
        let data = "hello wharf ".repeat(1000).into_bytes();
        let gz = encode(&data, Encoding::Gzip).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let br = encode(&data, Encoding::Brotli).unwrap();
        let mut out = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let zs = encode(&data, Encoding::Zstd).unwrap();
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), data);
    }

    #[test]
    fn streamed_codings_decode_to_what_went_in() {
        let data = "streamed listing row\n".repeat(5000).into_bytes();
        for encoding in Encoding::ALL {
            let mut enc = StreamEncoder::new(encoding).unwrap();
            let mut out = Vec::new();
            for piece in data.chunks(777) {
                enc.write(piece).unwrap();
                if enc.pending() > 1000 {
                    out.extend(enc.take());
                }
            }
            out.extend(enc.finish().unwrap());
            let decoded = match encoding {
                Encoding::Identity => out.clone(),
                Encoding::Gzip => {
                    let mut d = Vec::new();
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut d)
                        .unwrap();
                    d
                }
                Encoding::Brotli => {
                    let mut d = Vec::new();
                    brotli::Decompressor::new(&out[..], 4096)
                        .read_to_end(&mut d)
                        .unwrap();
                    d
                }
                Encoding::Zstd => zstd::decode_all(&out[..]).unwrap(),
            };
            assert_eq!(decoded, data, "{encoding:?}");
        }
    }

    #[test]
    fn cache_encodes_once_and_stays_bounded() {
        let cache = VariantCache::new(10_000);
        let data = Bytes::from("abc".repeat(10_000));
        let mut calls = 0;
        for _ in 0..3 {
            let v = cache
                .get_or_encode(&tag(1), Encoding::Gzip, || {
                    calls += 1;
                    Ok(data.clone())
                })
                .unwrap();
            assert!(v.unwrap().len() < data.len());
        }
        assert_eq!(calls, 1);
        // Incompressible content is remembered as such.
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()) as u8)
            .collect();
        let v = cache
            .get_or_encode(&tag(2), Encoding::Gzip, || Ok(Bytes::from(noise.clone())))
            .unwrap();
        assert!(v.is_none());
        for n in 3..50 {
            let _ = cache.get_or_encode(&tag(n), Encoding::Gzip, || Ok(data.clone()));
        }
        assert!(cache.lock().bytes <= 10_000);
    }
}
