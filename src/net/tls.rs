//! TLS with rustls: certificates from PEM files or made on the spot, reloaded without a
//! restart.
//!
//! A [`Tls`] holds the rustls configuration. Its certificate comes from a
//! [`ReloadingCert`] resolver, so a reload (SIGHUP, or the files changing) swaps the
//! certificate for new handshakes while open connections carry on. A certificate that
//! fails to load — missing file, bad PEM, a key that does not match — is refused with
//! a message and the previous one stays in use; at startup the same failure is fatal.

use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::aws_lc_rs as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// TLS sessions remembered for resumption.
const SESSION_CACHE: usize = 4096;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files given by the operator.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
        key: PathBuf,
    },
    /// A self-signed certificate for local names, kept in a per-user state directory.
    SelfSigned,
}

/// The TLS side of a listener.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certs: Arc<ReloadingCert>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("certs", &self.certs).finish()
    }
}

impl Tls {
    /// Loads the certificate and builds the rustls configuration (TLS 1.2 and 1.3,
    /// ALPN `h2`, `http/1.1`, `http/1.0`). `names` are the hosts a self-signed certificate must
    /// cover. Returns a one-line error for startup.
    pub fn new(source: &CertSource, names: &[String]) -> Result<Tls, String> {
        let (cert, key, expires) = match source {
            CertSource::Files { cert, key } => (cert.clone(), key.clone(), None),
            CertSource::SelfSigned => {
                let (cert, key, expires) = self_signed(names)?;
                (cert, key, Some(expires))
            }
        };
        let certs = Arc::new(ReloadingCert {
            current: RwLock::new(Arc::new(load(&cert, &key)?)),
            cert,
            key,
            seen: RwLock::new(file_times(source)),
            source: source.clone(),
            self_signed: expires.map(|at| (names.to_vec(), RwLock::new(at))),
        });
        let mut config = ServerConfig::builder_with_provider(crate::net::tls_crypto::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        // http/1.0 too: a client offering only that would otherwise get a fatal
        // no_application_protocol alert; it is served by the HTTP/1 side.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
        // Resumption, as nginx offers by default: stateless tickets (keys rotate every
        // 6 hours) and a session cache, so returning clients skip the full handshake.
        config.ticketer =
            provider::Ticketer::new().map_err(|e| format!("TLS session tickets: {e}"))?;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The certificate resolver, for reloads.
    pub fn certs(&self) -> &Arc<ReloadingCert> {
        &self.certs
    }

    /// SHA-256 fingerprint of the leaf certificate, as browsers show it.
    pub fn fingerprint(&self) -> String {
        let current = self.certs.current();
        current
            .cert
            .first()
            .map_or_else(String::new, |leaf| fingerprint(leaf))
    }
}

/// The certificate in use, and how to load it again.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
    source: CertSource,
    /// Modification times of the files when last loaded.
    seen: RwLock<Option<(SystemTime, SystemTime)>>,
    /// For a self-signed certificate: the names it covers and when it expires.
    self_signed: Option<(Vec<String>, RwLock<SystemTime>)>,
}

impl ReloadingCert {
    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Loads the files again; on success new handshakes use the new certificate, on
    /// failure the old one stays and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        // Taken before reading: a change made while loading is seen at the next
        // check. Recorded even when loading fails, so a pair of files that does not
        // load is tried again when one of them changes, not at every check.
        let times = file_times(&self.source);
        let loaded = load(&self.cert, &self.key);
        *self.seen.write().unwrap_or_else(|p| p.into_inner()) = times;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded?);
        Ok(())
    }

    /// Makes a self-signed certificate again when fewer than
    /// [`SELF_SIGNED_RENEW_BEFORE`] remain, and loads it: `None` when nothing was due.
    pub fn renew_if_due(&self) -> Option<Result<(), String>> {
        let (names, expires) = self.self_signed.as_ref()?;
        if !renewal_due(*expires.read().unwrap_or_else(|p| p.into_inner())) {
            return None;
        }
        let renewed = self_signed(names).and_then(|(_, _, at)| {
            *expires.write().unwrap_or_else(|p| p.into_inner()) = at;
            self.reload()
        });
        if renewed.is_err() {
            // Tried again in an hour, not at every check.
            *expires.write().unwrap_or_else(|p| p.into_inner()) =
                SystemTime::now() + SELF_SIGNED_RENEW_BEFORE + std::time::Duration::from_secs(3600);
        }
        Some(renewed)
    }

    /// Whether the certificate or key file changed since the last attempt to load them.
    pub fn files_changed(&self) -> bool {
        let now = file_times(&self.source);
        now.is_some() && now != *self.seen.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn file_times(source: &CertSource) -> Option<(SystemTime, SystemTime)> {
    let CertSource::Files { cert, key } = source else {
        return None;
    };
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((mtime(cert)?, mtime(key)?))
}

/// Loads a certificate chain and its key, checking that they belong together.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, String> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("TLS {what} file {} does not exist", path.display()),
            _ => format!("cannot read TLS {what} file {}: {e}", path.display()),
        })
    };
    let cert_pem = read(cert_path, "certificate")?;
    let key_pem = read(key_path, "key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "TLS certificate file {} is not valid PEM: {e}",
                cert_path.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate file {} holds no certificate",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "TLS key file {} holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            key_path.display()
        )
    })?;
    let signing_key = provider::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("TLS key file {}: unsupported key: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        format!(
            "TLS key {} does not match certificate {}: {e}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok(certified)
}

/// The names a self-signed certificate covers: loopback names plus the bound address.
pub fn local_names(bound: &[IpAddr]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for ip in bound {
        if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
            names.push(ip.to_string());
        }
    }
    names
}

/// The per-user directory where the self-signed certificate is kept, so a browser's
/// exception for it survives restarts: `$XDG_STATE_HOME/wharf`, else
/// `~/.local/state/wharf`.
fn state_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("wharf"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/wharf")),
        None => {
            Err("--tls-self-signed needs HOME or XDG_STATE_HOME to keep its certificate".into())
        }
    }
}

/// The folder the self-signed certificate is kept in, or why there is none.
pub fn self_signed_dir() -> Result<PathBuf, String> {
    state_dir()
}

/// Where the self-signed certificate's private key is kept, when there is a place.
pub fn self_signed_key_path() -> Option<PathBuf> {
    state_dir().ok().map(|dir| dir.join(SELF_SIGNED_KEY))
}

/// File name of the self-signed certificate's key in [`state_dir`].
const SELF_SIGNED_KEY: &str = "self-signed-key.pem";

/// How long a self-signed certificate is valid: about a year. Apple platforms refuse
/// TLS server certificates valid for more than 825 days.
const SELF_SIGNED_VALIDITY: std::time::Duration = std::time::Duration::from_secs(365 * 86400);
/// A kept self-signed certificate with less than this left is made again.
pub const SELF_SIGNED_RENEW_BEFORE: std::time::Duration =
    std::time::Duration::from_secs(30 * 86400);
/// The subject's common name of a self-signed certificate.
pub const SELF_SIGNED_SUBJECT: &str = "wharf local certificate";

/// Returns the paths of a self-signed certificate for `names` and when it expires,
/// made now unless one for exactly these names is already kept with more than
/// [`SELF_SIGNED_RENEW_BEFORE`] left. Its expiry is kept beside it
/// (`self-signed-expires.txt`, seconds since the epoch); a certificate without that
/// record (made by an earlier wharf, valid for centuries) is made again.
fn self_signed(names: &[String]) -> Result<(PathBuf, PathBuf, SystemTime), String> {
    let dir = state_dir()?;
    let cert = dir.join("self-signed-cert.pem");
    let key = dir.join(SELF_SIGNED_KEY);
    let names_file = dir.join("self-signed-names.txt");
    let expires_file = dir.join("self-signed-expires.txt");
    let wanted = names.join("\n");
    let kept = std::fs::read_to_string(&names_file).ok();
    let expires = std::fs::read_to_string(&expires_file)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(|secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    let fresh = expires.filter(|&at| !renewal_due(at));
    if let Some(at) = fresh {
        if kept.as_deref() == Some(wanted.as_str()) && load(&cert, &key).is_ok() {
            return Ok((cert, key, at));
        }
    }
    let (made, key_pair, not_after) = make_self_signed(names)?;
    let fail = |e: io::Error| {
        format!(
            "cannot store the self-signed certificate in {}: {e}",
            dir.display()
        )
    };
    std::fs::create_dir_all(&dir).map_err(fail)?;
    write_private(&key, key_pair.serialize_pem().as_bytes()).map_err(fail)?;
    std::fs::write(&cert, made.pem()).map_err(fail)?;
    std::fs::write(&names_file, wanted).map_err(fail)?;
    let secs = not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::fs::write(&expires_file, format!("{secs}\n")).map_err(fail)?;
    Ok((cert, key, not_after))
}

/// Whether a self-signed certificate expiring at `expires` should be made again now.
fn renewal_due(expires: SystemTime) -> bool {
    expires
        .duration_since(SystemTime::now())
        .map_or(true, |left| left < SELF_SIGNED_RENEW_BEFORE)
}

/// A self-signed certificate for `names`: subject [`SELF_SIGNED_SUBJECT`] (with the
/// first name), valid from a day ago (clocks differ) for [`SELF_SIGNED_VALIDITY`].
fn make_self_signed(
    names: &[String],
) -> Result<(rcgen::Certificate, rcgen::KeyPair, SystemTime), String> {
    let fail = |e: rcgen::Error| format!("cannot make a self-signed certificate: {e}");
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(fail)?;
    let mut subject = rcgen::DistinguishedName::new();
    let host = names.first().map_or("localhost", String::as_str);
    subject.push(
        rcgen::DnType::CommonName,
        format!("{SELF_SIGNED_SUBJECT} ({host})"),
    );
    subject.push(rcgen::DnType::OrganizationName, "wharf");
    params.distinguished_name = subject;
    // An end-entity certificate for TLS servers, as Apple platforms require of one
    // (extended key usage serverAuth) and as browsers expect.
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + SELF_SIGNED_VALIDITY;
    let not_after = SystemTime::now() + SELF_SIGNED_VALIDITY;
    let key_pair = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key_pair).map_err(fail)?;
    Ok((cert, key_pair, not_after))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// `AB:CD:…` SHA-256 of a DER certificate.
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    let mut out = String::with_capacity(95);
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&c, made.cert.pem()).unwrap();
        std::fs::write(&k, made.key_pair.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn loads_a_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path());
        assert!(load(&c, &k).is_ok());
    }

    #[test]
    fn refuses_bad_inputs_with_clear_messages() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (_, k2) = write_pair(other.path());
        let err = |r: Result<CertifiedKey, String>| r.err().unwrap();
        assert!(err(load(&dir.path().join("no.pem"), &k)).contains("does not exist"));
        assert!(err(load(&c, &k2)).contains("does not match"));
        let garbage = dir.path().join("g.pem");
        std::fs::write(&garbage, "not pem at all").unwrap();
        assert!(err(load(&garbage, &k)).contains("holds no certificate"));
        assert!(err(load(&c, &garbage)).contains("no usable private key"));
        let broken = dir.path().join("b.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(err(load(&broken, &k)).contains("not valid PEM"));
    }

    /// Files that do not load are tried again when they change, not at every check
    /// (which would log a failure a second for as long as they stay broken).
    #[test]
    fn a_failed_reload_waits_for_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path());
        let source = CertSource::Files {
            cert: c.clone(),
            key: k.clone(),
        };
        let tls = Tls::new(&source, &[]).unwrap();
        let certs = tls.certs();
        assert!(!certs.files_changed());
        let other = tempfile::tempdir().unwrap();
        let (c2, _) = write_pair(other.path());
        let set_mtime = |path: &Path, secs: u64| {
            let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        };
        // A certificate of another key: changed, and it does not load.
        std::fs::copy(&c2, &c).unwrap();
        set_mtime(&c, 1_700_000_000);
        assert!(certs.files_changed());
        assert!(certs.reload().is_err());
        assert!(!certs.files_changed(), "the same broken files, tried again");
        // Its key arrives: changed again, and now it loads.
        std::fs::copy(other.path().join("k.pem"), &k).unwrap();
        set_mtime(&k, 1_700_000_100);
        assert!(certs.files_changed());
        assert!(certs.reload().is_ok());
        assert!(!certs.files_changed());
    }

    #[test]
    fn fingerprints_look_like_browsers_show_them() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let fp = fingerprint(made.cert.der());
        assert_eq!(fp.len(), 95);
        assert_eq!(fp.matches(':').count(), 31);
    }

    #[test]
    fn local_names_cover_loopback_and_the_bound_address() {
        let names = local_names(&["0.0.0.0".parse().unwrap(), "192.0.2.7".parse().unwrap()]);
        assert_eq!(names, ["localhost", "127.0.0.1", "::1", "192.0.2.7"]);
    }
}
