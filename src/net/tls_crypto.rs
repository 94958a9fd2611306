//! The TLS crypto provider: rustls's aws-lc-rs provider, with TLS 1.3's HKDF done
//! on a keyed HMAC.
//!
//! The provider's own HKDF keeps the secret and salt and runs extract *and* expand for
//! every derived key, setting an HMAC key up twice each time. A TLS 1.3 handshake
//! derives about twenty keys, and with SHA-384 (what most clients put first) that
//! hashing was a quarter of the CPU of a full handshake. rustls's [`HkdfUsingHmac`]
//! extracts once and expands with an HMAC key prepared once per secret; aws-lc-rs
//! copies a prepared HMAC context instead of hashing the key again. Everything else
//! (AEADs, key exchange, signatures, tickets) is the provider's, unchanged.

use std::sync::{Arc, OnceLock};

use rustls::crypto::aws_lc_rs as provider;
use rustls::crypto::hmac;
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuiteCommon, SupportedCipherSuite, Tls13CipherSuite};

/// An aws-lc-rs HMAC algorithm as rustls's [`hmac::Hmac`].
struct Hmac(aws_lc_rs::hmac::Algorithm);

impl hmac::Hmac for Hmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn hmac::Key> {
        Box::new(Key(aws_lc_rs::hmac::Key::new(self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }
}

/// A prepared HMAC key; each tag starts from a copy of its context.
struct Key(aws_lc_rs::hmac::Key);

impl hmac::Key for Key {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> hmac::Tag {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.0);
        ctx.update(first);
        for part in middle {
            ctx.update(part);
        }
        ctx.update(last);
        hmac::Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
    }
}

static HMAC_SHA256: Hmac = Hmac(aws_lc_rs::hmac::HMAC_SHA256);
static HMAC_SHA384: Hmac = Hmac(aws_lc_rs::hmac::HMAC_SHA384);
static HKDF_SHA256: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA256);
static HKDF_SHA384: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SHA384);

/// `suite` with its HKDF replaced, when it is a TLS 1.3 suite with a hash handled here.
fn with_keyed_hkdf(suite: SupportedCipherSuite) -> SupportedCipherSuite {
    static SUITES: OnceLock<Vec<(&'static Tls13CipherSuite, &'static Tls13CipherSuite)>> =
        OnceLock::new();
    let Some(base) = suite.tls13() else {
        return suite;
    };
    let replaced = SUITES.get_or_init(|| {
        provider::ALL_CIPHER_SUITES
            .iter()
            .filter_map(|s| s.tls13())
            .filter_map(|base| {
                let hkdf: &'static HkdfUsingHmac<'static> =
                    match base.common.hash_provider.algorithm() {
                        rustls::crypto::hash::HashAlgorithm::SHA256 => &HKDF_SHA256,
                        rustls::crypto::hash::HashAlgorithm::SHA384 => &HKDF_SHA384,
                        _ => return None,
                    };
                let suite: &'static Tls13CipherSuite = Box::leak(Box::new(Tls13CipherSuite {
                    common: CipherSuiteCommon {
                        suite: base.common.suite,
                        hash_provider: base.common.hash_provider,
                        confidentiality_limit: base.common.confidentiality_limit,
                    },
                    hkdf_provider: hkdf,
                    aead_alg: base.aead_alg,
                    quic: base.quic,
                }));
                Some((base, suite))
            })
            .collect()
    });
    replaced
        .iter()
        .find(|(b, _)| std::ptr::eq(*b, base))
        .map_or(suite, |(_, s)| SupportedCipherSuite::Tls13(s))
}

/// The provider every TLS listener uses.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = provider::default_provider();
    provider.cipher_suites = provider
        .cipher_suites
        .into_iter()
        .map(with_keyed_hkdf)
        .collect();
    Arc::new(provider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::tls13::Hkdf;

    /// RFC 5869 test case 1 (SHA-256), and SHA-384 against the provider's own HKDF.
    #[test]
    fn keyed_hkdf_matches_the_rfc_and_the_provider() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        HKDF_SHA256
            .extract_from_secret(Some(&salt), &ikm)
            .expand_slice(&[&info], &mut okm)
            .unwrap();
        let expected = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
                        34007208d5b887185865";
        let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);

        let base = provider::cipher_suite::TLS13_AES_256_GCM_SHA384
            .tls13()
            .unwrap();
        let mut theirs = [0u8; 48];
        let mut ours = [0u8; 48];
        base.hkdf_provider
            .extract_from_secret(Some(b"salt"), b"secret")
            .expand_slice(&[b"label", b"context"], &mut theirs)
            .unwrap();
        HKDF_SHA384
            .extract_from_secret(Some(b"salt"), b"secret")
            .expand_slice(&[b"label", b"context"], &mut ours)
            .unwrap();
        assert_eq!(theirs, ours);
    }

    #[test]
    fn every_tls13_suite_gets_the_keyed_hkdf() {
        let provider = provider();
        let tls13: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter_map(|s| s.tls13())
            .collect();
        assert!(!tls13.is_empty());
        for suite in tls13 {
            let hkdf = suite.hkdf_provider as *const dyn Hkdf as *const ();
            let ours = [
                &HKDF_SHA256 as *const HkdfUsingHmac as *const (),
                &HKDF_SHA384 as *const HkdfUsingHmac as *const (),
            ];
            assert!(ours.contains(&hkdf), "{:?}", suite.common.suite);
        }
    }
}
