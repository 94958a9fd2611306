//! HTTPS: certificate loading (key formats, chains, startup errors), TLS versions,
//! ALPN, handshake timeouts, plain HTTP on the TLS port, `--redirect-http`,
//! certificate reloads, and `--tls-self-signed`.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::client::*;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const A_TXT: &str = "hello over TLS\n";
/// How long a certificate reload may take to show up on stderr.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A served root with `a.txt`, next to a `tls/` folder for certificate files.
fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, root) = temp_root();
    write_file(&root, "a.txt", A_TXT);
    write_file(&root, "dir/b.txt", "bee");
    let tls = tmp.path().join("tls");
    fs::create_dir(&tls).unwrap();
    (tmp, root, tls)
}

fn tls_args<'a>(cert: &'a Path, key: &'a Path) -> Vec<&'a str> {
    vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]
}

/// Start wharf over HTTPS with `cert` written to `tls_dir`.
fn start_with_cert(root: &Path, tls_dir: &Path, cert: &TestCert, extra: &[&str]) -> Server {
    let (c, k) = write_cert(tls_dir, cert);
    let mut args = tls_args(&c, &k);
    args.extend_from_slice(extra);
    Server::start_https(root, &args)
}

fn roots(cert: &TestCert) -> Vec<CertificateDer<'static>> {
    vec![cert.der.clone()]
}

/// GET `path` over HTTP/1.1 on an established TLS stream.
async fn h1_get_over(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    server: &Server,
    path: &str,
) -> Reply {
    let mut sender = h1_handshake(stream).await;
    let host = format!("localhost:{}", server.port());
    h1_send(
        &mut sender,
        build_request("GET", path, &[("host", &host)], b""),
    )
    .await
}

/// GET `path` over HTTP/2 on an established TLS stream.
async fn h2_get_over(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    server: &Server,
    path: &str,
) -> Reply {
    let mut sender = h2_handshake(stream).await;
    let uri = format!("https://localhost:{}{path}", server.port());
    h2_send(&mut sender, build_request("GET", &uri, &[], b"")).await
}

/// Connect as "localhost" trusting `cert`, GET /a.txt over HTTP/1.1, check the body,
/// and return the leaf certificate the server presented.
async fn handshake_and_get(server: &Server, trust: &[CertificateDer<'static>]) -> Vec<u8> {
    let config = client_config(trust, &[b"http/1.1"], &[]);
    let stream = tls_connect(server.addr(), config, "localhost").await;
    let leaf = peer_leaf(&stream);
    let reply = h1_get_over(stream, server, "/a.txt").await;
    assert_eq!(reply.status, 200, "GET /a.txt over TLS");
    assert_eq!(reply.text(), A_TXT, "GET /a.txt over TLS body");
    leaf
}

// --- banner, ALPN, versions -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_announces_https() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &[]);
    assert!(
        server.banner().contains("https://127.0.0.1:"),
        "banner should announce an https:// URL: {:?}",
        server.banner()
    );
    assert!(
        !server.banner().contains("http://"),
        "banner should not announce http:// when TLS is on: {:?}",
        server.banner()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_negotiates_http2() {
    let (_tmp, root, tls) = fixture();
    let cert = localhost_cert();
    let server = start_with_cert(&root, &tls, &cert, &[]);
    let config = client_config(&roots(&cert), &[b"h2"], &[]);
    let stream = tls_connect(server.addr(), config, "localhost").await;
    assert_eq!(
        alpn(&stream).as_deref(),
        Some(&b"h2"[..]),
        "ALPN with only h2 offered"
    );
    let reply = h2_get_over(stream, &server, "/a.txt").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.text(), A_TXT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_http11_negotiates_http11() {
    let (_tmp, root, tls) = fixture();
    let cert = localhost_cert();
    let server = start_with_cert(&root, &tls, &cert, &[]);
    let config = client_config(&roots(&cert), &[b"http/1.1"], &[]);
    let stream = tls_connect(server.addr(), config, "localhost").await;
    assert_eq!(
        alpn(&stream).as_deref(),
        Some(&b"http/1.1"[..]),
        "ALPN with only http/1.1 offered"
    );
    let reply = h1_get_over(stream, &server, "/a.txt").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_11);
    assert_eq!(reply.text(), A_TXT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_http10_alone_is_served_over_http1() {
    let (_tmp, root, tls) = fixture();
    let cert = localhost_cert();
    let server = start_with_cert(&root, &tls, &cert, &[]);
    let config = client_config(&roots(&cert), &[b"http/1.0"], &[]);
    let stream = tls_connect(server.addr(), config, "localhost").await;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"http/1.0"[..]));
    let reply = h1_get_over(stream, &server, "/a.txt").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), A_TXT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_prefers_h2_when_both_offered() {
    let (_tmp, root, tls) = fixture();
    let cert = localhost_cert();
    let server = start_with_cert(&root, &tls, &cert, &[]);
    let config = client_config(&roots(&cert), &[b"http/1.1", b"h2"], &[]);
    let stream = tls_connect(server.addr(), config, "localhost").await;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]));
    let reply = h2_get_over(stream, &server, "/dir/b.txt").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "bee");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_and_tls13_are_accepted() {
    let (_tmp, root, tls) = fixture();
    let cert = localhost_cert();
    let server = start_with_cert(&root, &tls, &cert, &[]);
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let config = client_config(&roots(&cert), &[b"http/1.1"], &[version]);
        let stream = try_tls_connect(server.addr(), config, "localhost")
            .await
            .unwrap_or_else(|e| panic!("{expected:?} handshake failed: {e}"));
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(expected),
            "negotiated version"
        );
        let reply = h1_get_over(stream, &server, "/a.txt").await;
        assert_eq!(reply.status, 200, "{expected:?}");
        assert_eq!(reply.text(), A_TXT, "{expected:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_clients_resume_their_session() {
    let (_tmp, root, tls) = fixture();
    let cert = localhost_cert();
    let server = start_with_cert(&root, &tls, &cert, &[]);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        // One configuration, so one session store, for both connections; with each
        // of the server's key-schedule hashes in TLS 1.3.
        for suite in [
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        ] {
            let mut provider = rustls::crypto::CryptoProvider::get_default()
                .map(|p| (**p).clone())
                .unwrap_or_else(|| (**client_config(&[], &[], &[]).crypto_provider()).clone());
            provider
                .cipher_suites
                .retain(|s| s.version() != &rustls::version::TLS13 || s.suite() == suite);
            let mut store = rustls::RootCertStore::empty();
            store.add(cert.der.clone()).unwrap();
            let mut config =
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
                    .with_protocol_versions(&[version])
                    .unwrap()
                    .with_root_certificates(store)
                    .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let config = std::sync::Arc::new(config);
            let mut kinds = Vec::new();
            for _ in 0..2 {
                let stream = tls_connect(server.addr(), config.clone(), "localhost").await;
                kinds.push(stream.get_ref().1.handshake_kind());
                // Reading the answer also takes in the session tickets (TLS 1.3).
                let reply = h1_get_over(stream, &server, "/a.txt").await;
                assert_eq!(reply.text(), A_TXT);
            }
            assert_eq!(
                kinds,
                [
                    Some(rustls::HandshakeKind::Full),
                    Some(rustls::HandshakeKind::Resumed)
                ],
                "{version:?} {suite:?}"
            );
            if version == &rustls::version::TLS12 {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_rejected_by_the_client() {
    // Guards the tests above: the client really verifies what the server presents.
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &[]);
    let other = localhost_cert();
    let config = client_config(&roots(&other), &[b"http/1.1"], &[]);
    let result = try_tls_connect(server.addr(), config, "localhost").await;
    assert!(
        result.is_err(),
        "a client trusting a different certificate must fail the handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_key_inside_the_served_folder_is_never_served() {
    let (_tmp, root, _tls) = fixture();
    let cert = localhost_cert();
    // `wharf --tls-cert cert.pem --tls-key key.pem .`: both files in the folder served.
    let server = start_with_cert(&root, &root, &cert, &[]);
    let trust = roots(&cert);
    let get = |path: &'static str| {
        let config = client_config(&trust, &[b"http/1.1"], &[]);
        let server = &server;
        async move {
            let stream = tls_connect(server.addr(), config, "localhost").await;
            h1_get_over(stream, server, path).await
        }
    };
    assert!(root.join("key.pem").is_file());
    assert_eq!(get("/key.pem").await.status, 404, "GET /key.pem");
    let listing = get("/").await;
    assert_eq!(listing.status, 200);
    assert!(
        !listing.text().contains("key.pem"),
        "the key is listed: {}",
        listing.text()
    );
    // The certificate is public and stays served.
    assert_eq!(get("/cert.pem").await.status, 200);
    assert_eq!(get("/a.txt").await.status, 200);
}

/// Clients that name the server by IP address in SNI (which RFC 6066 forbids, and
/// rustls ignores) are served, without a stderr line per connection.
#[test]
fn an_ip_address_as_server_name_costs_no_stderr_line() {
    let (_tmp, root, tls) = fixture();
    let mut server = start_with_cert(&root, &tls, &localhost_cert(), &[]);
    let port = server.addr().rsplit(':').next().unwrap().to_string();
    let Ok(mut client) = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "127.0.0.1", "-quiet"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var_os("CI").is_none(), "CI must have openssl");
        eprintln!("skipped: openssl is not installed");
        return;
    };
    {
        use std::io::Write;
        let mut stdin = client.stdin.take().unwrap();
        stdin
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    let output = client.wait_with_output().unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with(A_TXT),
        "{answer} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.signal("TERM");
    assert!(server.expect_exit().success());
    let lines = server.stderr_lines();
    assert!(
        !lines.iter().any(|l| l.contains("SNI")),
        "stderr: {lines:?}"
    );
}

// --- key formats and chains -----------------------------------------------------

/// Run openssl in `dir`. `None` when openssl cannot be started at all; panics when it
/// runs and fails.
fn openssl(dir: &Path, args: &[&str]) -> Option<()> {
    let output = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(e) => {
            eprintln!("SKIPPED: openssl is not available ({e}); cannot make this key format");
            return None;
        }
    };
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(())
}

/// With openssl, make `key.pem` (by `keygen`) and a self-signed end-entity
/// certificate `cert.pem` for localhost and 127.0.0.1 from it. Returns the
/// certificate's DER, or `None` when openssl is not installed.
fn openssl_cert(dir: &Path, keygen: &[&str], key_header: &str) -> Option<CertificateDer<'static>> {
    openssl(dir, keygen)?;
    let key = fs::read_to_string(dir.join("key.pem")).unwrap();
    assert!(
        key.contains(key_header),
        "openssl made a key without {key_header:?}: {key}"
    );
    fs::write(
        dir.join("req.cnf"),
        "[req]\n\
         distinguished_name = dn\n\
         x509_extensions = v3\n\
         prompt = no\n\
         [dn]\n\
         CN = localhost\n\
         [v3]\n\
         basicConstraints = critical,CA:FALSE\n\
         keyUsage = critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req", "-new", "-x509", "-key", "key.pem", "-config", "req.cnf", "-days", "1", "-out",
            "cert.pem",
        ],
    )?;
    let pem = fs::read(dir.join("cert.pem")).unwrap();
    Some(CertificateDer::from_pem_slice(&pem).expect("openssl wrote a PEM certificate"))
}

async fn serves_with_openssl_key(keygen: &[&str], key_header: &str) {
    let (_tmp, root, tls) = fixture();
    // When openssl is missing the key cannot be made here (neither rcgen nor ring
    // write PKCS#1 or SEC1 keys), so the test is skipped with a message.
    let Some(der) = openssl_cert(&tls, keygen, key_header) else {
        return;
    };
    let (c, k) = (tls.join("cert.pem"), tls.join("key.pem"));
    let server = Server::start_https(&root, &tls_args(&c, &k));
    let leaf = handshake_and_get(&server, std::slice::from_ref(&der)).await;
    assert_eq!(
        leaf,
        der.to_vec(),
        "server presents the openssl certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_pkcs1_key_loads() {
    serves_with_openssl_key(
        &["genrsa", "-traditional", "-out", "key.pem", "2048"],
        "-----BEGIN RSA PRIVATE KEY-----",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec_sec1_key_loads() {
    serves_with_openssl_key(
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            "key.pem",
        ],
        "-----BEGIN EC PRIVATE KEY-----",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs8_key_loads() {
    let (_tmp, root, tls) = fixture();
    let cert = localhost_cert();
    assert!(
        cert.key_pem.contains("-----BEGIN PRIVATE KEY-----"),
        "rcgen key is PKCS#8"
    );
    let server = start_with_cert(&root, &tls, &cert, &[]);
    let leaf = handshake_and_get(&server, &roots(&cert)).await;
    assert_eq!(leaf, cert.der.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_chain_with_intermediate_ca_loads() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let (_tmp, root, tls) = fixture();

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wharf test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();

    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf_params.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();

    let chain = format!("{}{}", leaf_cert.pem(), ca_cert.pem());
    let (c, k) = (tls.join("chain.pem"), tls.join("key.pem"));
    fs::write(&c, chain).unwrap();
    fs::write(&k, leaf_key.serialize_pem()).unwrap();
    let server = Server::start_https(&root, &tls_args(&c, &k));

    // The client trusts only the CA: the handshake works because the leaf is signed
    // by it, and the server sends the whole chain, leaf first.
    let config = client_config(std::slice::from_ref(ca_cert.der()), &[b"http/1.1"], &[]);
    let stream = tls_connect(server.addr(), config, "localhost").await;
    let presented: Vec<Vec<u8>> = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")
        .iter()
        .map(|c| c.to_vec())
        .collect();
    assert_eq!(
        presented,
        vec![leaf_cert.der().to_vec(), ca_cert.der().to_vec()],
        "server should present leaf then CA"
    );
    let reply = h1_get_over(stream, &server, "/a.txt").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), A_TXT);
}

// --- startup errors -------------------------------------------------------------

/// Run wharf on `root` with `extra` and expect a clean one-line `wharf: ` error
/// containing `needle`.
fn assert_startup_error(root: &Path, extra: &[&str], needle: &str) {
    let run = run_to_exit(&loopback_args(root, extra), None);
    let what = format!("wharf {extra:?}");
    assert!(
        !run.status.success(),
        "{what}: expected a non-zero exit, got {}",
        run.status
    );
    assert!(
        !run.stderr.contains("panicked"),
        "{what}: stderr looks like a panic: {:?}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("wharf: serving"),
        "{what}: server announced it was serving: {:?}",
        run.stderr
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one stderr line: {lines:?}"
    );
    assert!(
        lines[0].starts_with("wharf: "),
        "{what}: error should start with 'wharf: ': {:?}",
        lines[0]
    );
    assert!(
        lines[0].contains(needle),
        "{what}: error should contain {needle:?}: {:?}",
        lines[0]
    );
}

#[test]
fn missing_certificate_file_is_a_startup_error() {
    let (_tmp, root, tls) = fixture();
    let (_, k) = write_cert(&tls, &localhost_cert());
    let missing = tls.join("nope.pem");
    assert_startup_error(&root, &tls_args(&missing, &k), "does not exist");
}

#[test]
fn missing_key_file_is_a_startup_error() {
    let (_tmp, root, tls) = fixture();
    let (c, _) = write_cert(&tls, &localhost_cert());
    let missing = tls.join("no-key.pem");
    assert_startup_error(&root, &tls_args(&c, &missing), "does not exist");
    // The message names the key file, not the certificate.
    assert_startup_error(&root, &tls_args(&c, &missing), "no-key.pem");
}

#[test]
fn garbage_certificate_file_is_a_startup_error() {
    let (_tmp, root, tls) = fixture();
    let (c, k) = write_cert(&tls, &localhost_cert());
    fs::write(&c, "this is not a certificate\n").unwrap();
    assert_startup_error(&root, &tls_args(&c, &k), "holds no certificate");
}

#[test]
fn certificate_with_invalid_base64_is_a_startup_error() {
    let (_tmp, root, tls) = fixture();
    let (c, k) = write_cert(&tls, &localhost_cert());
    fs::write(
        &c,
        "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert_startup_error(&root, &tls_args(&c, &k), "not valid PEM");
}

#[test]
fn key_not_matching_the_certificate_is_a_startup_error() {
    let (_tmp, root, tls) = fixture();
    let (c, _) = write_cert(&tls, &localhost_cert());
    let other = localhost_cert();
    let k = tls.join("other-key.pem");
    fs::write(&k, &other.key_pem).unwrap();
    assert_startup_error(&root, &tls_args(&c, &k), "does not match");
}

#[test]
fn tls_cert_without_tls_key_is_refused() {
    let (_tmp, root, tls) = fixture();
    let (c, _) = write_cert(&tls, &localhost_cert());
    let args: Vec<&OsStr> = vec![
        root.as_os_str(),
        OsStr::new("--port"),
        OsStr::new("0"),
        OsStr::new("--tls-cert"),
        c.as_os_str(),
    ];
    let run = run_to_exit(&args, None);
    // Checked once every layer is in (the key may come from the file or the
    // environment), as the other settings that need one another are: exit 1.
    assert_eq!(
        run.status.code(),
        Some(1),
        "--tls-cert alone should be refused; stderr: {:?}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{:?}", run.stderr);
    assert!(
        run.stderr.contains("--tls-key"),
        "usage error should name --tls-key: {:?}",
        run.stderr
    );
}

#[test]
fn redirect_http_without_tls_is_a_startup_error() {
    let (_tmp, root, _tls) = fixture();
    assert_startup_error(&root, &["--redirect-http", "0"], "needs HTTPS");
}

#[test]
fn redirect_port_in_use_fails_before_announcing_anything() {
    let (_tmp, root, tls) = fixture();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (cert, key) = write_cert(&tls, &localhost_cert());
    let mut args = tls_args(&cert, &key);
    args.extend(["--redirect-http", &port]);
    assert_startup_error(&root, &args, "address already in use");
}

#[test]
fn admin_port_in_use_fails_before_announcing_anything() {
    let (_tmp, root, _tls) = fixture();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = taken.local_addr().unwrap().to_string();
    assert_startup_error(&root, &["--admin", &admin], "address already in use");
}

// --- hostile and confused clients -----------------------------------------------

#[test]
fn silent_client_is_dropped_after_the_header_timeout() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &["--header-timeout", "1"]);
    let mut conn = Conn::open(&server);
    assert!(
        conn.wait_for_close(),
        "a TLS client that sends nothing should be disconnected (read timed out after {IO_TIMEOUT:?})"
    );
}

#[test]
fn silent_client_gets_the_header_timeout_from_when_it_connected() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &["--header-timeout", "1"]);
    let mut conn = Conn::open(&server);
    // Not the kernel's second of deferred accept plus the timeout.
    assert!(
        conn.wait_for_close_within(Duration::from_millis(1700)),
        "a silent TLS client was kept past its header timeout"
    );
}

#[test]
fn partial_client_hello_is_dropped_after_the_header_timeout() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &["--header-timeout", "1"]);
    let mut conn = Conn::open(&server);
    // The first byte of a TLS handshake record, and nothing more.
    conn.send(&[0x16]);
    assert!(
        conn.wait_for_close(),
        "a client stuck inside its ClientHello should be disconnected (read timed out after {IO_TIMEOUT:?})"
    );
}

#[test]
fn truncated_client_hello_record_is_dropped_after_the_header_timeout() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &["--header-timeout", "1"]);
    let mut conn = Conn::open(&server);
    // A handshake record header announcing 512 bytes, followed by only a few.
    conn.send(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]);
    assert!(
        conn.wait_for_close(),
        "a client that never finishes its ClientHello record should be disconnected"
    );
}

#[test]
fn plain_http_on_the_tls_port_is_redirected_to_https() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &[]);
    let port = server.port();
    let mut conn = Conn::open(&server);
    conn.send(format!("GET /a.txt HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes());
    let response = conn
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("plain HTTP on the TLS port got no HTTP answer: {e}"));
    assert_eq!(response.status, 308, "plain HTTP on the TLS port");
    assert_eq!(
        response.header("location"),
        Some(format!("https://localhost:{port}/a.txt")),
        "Location of the redirect"
    );
}

#[test]
fn plain_http_on_the_tls_port_keeps_the_query() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &[]);
    let port = server.port();
    let response = server.exchange(
        b"GET /dir/b.txt?x=1&y=2 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        false,
    );
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some(format!("https://example.test:{port}/dir/b.txt?x=1&y=2"))
    );
}

// --- --redirect-http ------------------------------------------------------------

/// `(redirect listener address, announced HTTPS port)` from
/// `wharf: redirecting http://127.0.0.1:PORT/ to HTTPS on port N`.
fn redirect_banner(server: &Server) -> (String, u16) {
    let line = server.wait_for_stderr(
        |l| l.starts_with("wharf: redirecting http://"),
        Duration::from_secs(10),
    );
    let rest = line
        .strip_prefix("wharf: redirecting http://")
        .unwrap_or_else(|| panic!("redirect banner {line:?}"));
    let (addr, tail) = rest
        .split_once('/')
        .unwrap_or_else(|| panic!("redirect banner {line:?}"));
    let port = tail
        .trim()
        .strip_prefix("to HTTPS on port ")
        .unwrap_or_else(|| panic!("redirect banner {line:?}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("redirect banner {line:?}: {e}"));
    (addr.to_string(), port)
}

#[test]
fn redirect_http_listener_answers_308_to_https() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &["--redirect-http", "0"]);
    let (redirect_addr, https_port) = redirect_banner(&server);
    assert_eq!(https_port, server.port(), "announced HTTPS port");
    assert!(
        redirect_addr.starts_with("127.0.0.1:"),
        "redirect listener {redirect_addr:?}"
    );
    assert_ne!(redirect_addr, server.addr());

    for (method, target, host) in [
        ("GET", "/a.txt", "localhost"),
        ("GET", "/dir/b.txt?q=1&r=two", "localhost:8080"),
        ("HEAD", "/missing", "example.test"),
        ("POST", "/form", "localhost"),
    ] {
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut conn = Conn::new(connect(&redirect_addr));
        conn.send(request.as_bytes());
        let response = conn.read_response(method == "HEAD");
        assert_eq!(response.status, 308, "{method} {target}");
        let host_only = host.split(':').next().unwrap();
        assert_eq!(
            response.header("location"),
            Some(format!("https://{host_only}:{https_port}{target}")),
            "{method} {target} with Host {host}"
        );
    }
}

#[test]
fn redirect_http_listener_checks_the_request_first() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &["--redirect-http", "0"]);
    let (redirect_addr, _) = redirect_banner(&server);
    let ask = |request: &str| {
        let mut conn = Conn::new(connect(&redirect_addr));
        conn.send(request.as_bytes());
        conn.read_response(false)
    };
    for (request, why) in [
        (
            "GET /a HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            "two Hosts",
        ),
        (
            "GET /a HTTP/1.1\r\nHost: x:abc\r\n\r\n",
            "a port that is no number",
        ),
        ("GET /a HTTP/1.1\r\n\r\n", "no Host"),
        ("OPTIONS * HTTP/1.1\r\n\r\n", "no Host, asterisk form"),
    ] {
        let response = ask(request);
        assert_eq!(response.status, 400, "{why}: {response:?}");
        assert_eq!(response.header("location"), None, "{why}");
    }
    // The asterisk form is about the server, not a resource: answered, not redirected.
    let response = ask("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("location"), None);
    assert!(response.header("allow").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_http_listener_redirects_h2c_too() {
    let (_tmp, root, tls) = fixture();
    let server = start_with_cert(&root, &tls, &localhost_cert(), &["--redirect-http", "0"]);
    let (redirect_addr, https_port) = redirect_banner(&server);
    let mut sender = h2_handshake(tcp(&redirect_addr).await).await;
    let url = format!(
        "http://localhost:{}/dir/b.txt?x=1",
        redirect_addr.rsplit(':').next().unwrap()
    );
    let reply = h2_send(&mut sender, build_request("GET", &url, &[], b"")).await;
    assert_eq!(reply.status, 308);
    assert_eq!(
        reply.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("https://localhost:{https_port}/dir/b.txt?x=1").as_str())
    );
}

// --- reloading ------------------------------------------------------------------

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

/// Replace `path` atomically with `contents`, its mtime set to `time` before it
/// appears under the name (so a watcher never sees a half-written file).
fn replace_file(path: &Path, contents: &str, time: SystemTime) {
    let staging = path.with_extension("staging");
    fs::write(&staging, contents).unwrap();
    set_mtime(&staging, time);
    fs::rename(&staging, path).unwrap();
    assert_eq!(mtime(path), time, "mtime of replaced {path:?}");
}

fn count_lines(server: &Server, needle: &str) -> usize {
    server
        .stderr_lines()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_replaced_certificate() {
    let (_tmp, root, tls) = fixture();
    let old = localhost_cert();
    let new = localhost_cert();
    let (c, k) = write_cert(&tls, &old);
    let server = Server::start_https(&root, &tls_args(&c, &k));
    let trust = vec![old.der.clone(), new.der.clone()];

    // A connection opened before the reload.
    let config = client_config(&trust, &[b"http/1.1"], &[]);
    let early = tls_connect(server.addr(), config, "localhost").await;
    assert_eq!(peer_leaf(&early), old.der.to_vec(), "before the reload");
    let mut early = h1_handshake(early).await;
    let host = format!("localhost:{}", server.port());
    let first = h1_send(
        &mut early,
        build_request("GET", "/a.txt", &[("host", &host)], b""),
    )
    .await;
    assert_eq!(first.status, 200);

    // Same mtimes as before, so only the signal (not the file watcher) can reload.
    let (cert_time, key_time) = (mtime(&c), mtime(&k));
    replace_file(&k, &new.key_pem, key_time);
    replace_file(&c, &new.cert_pem, cert_time);
    assert_eq!(
        count_lines(&server, "reloaded the TLS certificate"),
        0,
        "no reload before SIGHUP; stderr: {:?}",
        server.stderr_lines()
    );
    server.signal("HUP");
    server.wait_for_stderr(
        |l| l.contains("reloaded the TLS certificate"),
        RELOAD_TIMEOUT,
    );

    let leaf = handshake_and_get(&server, &trust).await;
    assert_eq!(
        leaf,
        new.der.to_vec(),
        "new handshakes present the new certificate"
    );

    // The connection from before the reload still serves requests.
    let again = h1_send(
        &mut early,
        build_request("GET", "/dir/b.txt", &[("host", &host)], b""),
    )
    .await;
    assert_eq!(again.status, 200, "old connection after the reload");
    assert_eq!(again.text(), "bee");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_certificate_keeps_the_old_one() {
    let (_tmp, root, tls) = fixture();
    let old = localhost_cert();
    let (c, k) = write_cert(&tls, &old);
    let mut args = tls_args(&c, &k);
    args.extend(["--admin", "127.0.0.1:0"]);
    let server = Server::start_https(&root, &args);
    assert_eq!(
        handshake_and_get(&server, &roots(&old)).await,
        old.der.to_vec()
    );

    replace_file(&c, "garbage, not a certificate\n", mtime(&c));
    server.signal("HUP");
    let line = server.wait_for_stderr(
        |l| l.contains("kept the current TLS certificate"),
        RELOAD_TIMEOUT,
    );
    assert!(line.starts_with("wharf: "), "{line:?}");
    assert_eq!(
        count_lines(&server, "reloaded the TLS certificate"),
        0,
        "a broken certificate must not count as reloaded; stderr: {:?}",
        server.stderr_lines()
    );
    assert_eq!(
        handshake_and_get(&server, &roots(&old)).await,
        old.der.to_vec(),
        "new handshakes still present the old certificate"
    );
    // Still running.
    assert_eq!(get(&server, "/a.txt").status, 308);
    // The metrics tell the configuration (unchanged) from the certificate (kept).
    let admin = server
        .stderr_lines()
        .iter()
        .find_map(|l| {
            let rest = l.split("admin (metrics, health) at http://").nth(1)?;
            Some(rest.trim_end_matches("/metrics").to_string())
        })
        .expect("the admin address is printed");
    let metrics = String::from_utf8_lossy(&send_raw_to(
        &admin,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ))
    .into_owned();
    for series in [
        "wharf_tls_certificate_reloads_total{outcome=\"failed\"} 1",
        "wharf_tls_certificate_reloads_total{outcome=\"applied\"} 0",
        "wharf_config_reloads_total{outcome=\"applied\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_files_are_reloaded_without_a_signal() {
    let (_tmp, root, tls) = fixture();
    let old = localhost_cert();
    let new = localhost_cert();
    let (c, k) = write_cert(&tls, &old);
    let server = Server::start_https(&root, &tls_args(&c, &k));
    let trust = vec![old.der.clone(), new.der.clone()];
    assert_eq!(handshake_and_get(&server, &trust).await, old.der.to_vec());

    // A clearly different mtime (an hour earlier than the old one): key first, so no
    // intermediate state pairs the new certificate with the old key.
    let when = mtime(&c) - Duration::from_secs(3600);
    replace_file(&k, &new.key_pem, when);
    replace_file(&c, &new.cert_pem, when);
    server.wait_for_stderr(
        |l| l.contains("reloaded the TLS certificate"),
        RELOAD_TIMEOUT,
    );
    assert_eq!(
        handshake_and_get(&server, &trust).await,
        new.der.to_vec(),
        "after the files changed, new handshakes present the new certificate"
    );
}

// --- --tls-self-signed ----------------------------------------------------------

/// The fingerprint from `wharf: TLS certificate SHA-256 fingerprint AB:CD:...`,
/// checked for shape.
fn fingerprint_line(server: &Server) -> String {
    const PREFIX: &str = "wharf: TLS certificate SHA-256 fingerprint ";
    let line = server.wait_for_stderr(|l| l.starts_with(PREFIX), Duration::from_secs(10));
    let fp = line[PREFIX.len()..].trim().to_string();
    let groups: Vec<&str> = fp.split(':').collect();
    assert_eq!(groups.len(), 32, "32 colon-separated bytes: {fp:?}");
    assert!(
        groups.iter().all(|g| g.len() == 2
            && g.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))),
        "uppercase hex bytes: {fp:?}"
    );
    fp
}

fn sha256_fingerprint(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_certificate_is_made_kept_and_reused() {
    let (tmp, root, _tls) = fixture();
    let state = tmp.path().join("state");
    fs::create_dir(&state).unwrap();
    let env = [("XDG_STATE_HOME", state.as_os_str())];
    let dir = state.join("wharf");
    let cert_file = dir.join("self-signed-cert.pem");

    let first_fp;
    let first_pem;
    {
        let server = Server::start_with_env(&root, &["--tls-self-signed"], &env);
        assert!(
            server.banner().contains("https://"),
            "banner {:?}",
            server.banner()
        );
        first_fp = fingerprint_line(&server);
        for name in [
            "self-signed-cert.pem",
            "self-signed-key.pem",
            "self-signed-names.txt",
        ] {
            assert!(dir.join(name).is_file(), "{name} not created in {dir:?}");
        }
        let names = fs::read_to_string(dir.join("self-signed-names.txt")).unwrap();
        for name in ["localhost", "127.0.0.1", "::1"] {
            assert!(
                names.lines().any(|l| l.trim() == name),
                "names file lacks {name}: {names:?}"
            );
        }
        first_pem = fs::read(&cert_file).unwrap();
        let der = CertificateDer::from_pem_slice(&first_pem).expect("stored cert is PEM");

        for server_name in ["localhost", "127.0.0.1"] {
            let config = client_config(std::slice::from_ref(&der), &[b"h2"], &[]);
            let stream = tls_connect(server.addr(), config, server_name).await;
            assert_eq!(peer_leaf(&stream), der.to_vec(), "as {server_name}");
            let reply = h2_get_over(stream, &server, "/a.txt").await;
            assert_eq!(reply.status, 200, "as {server_name}");
            assert_eq!(reply.text(), A_TXT, "as {server_name}");
        }
        assert_eq!(
            first_fp,
            sha256_fingerprint(&der),
            "printed fingerprint is the SHA-256 of the served certificate"
        );
    }

    let server = Server::start_with_env(&root, &["--tls-self-signed"], &env);
    assert_eq!(
        fingerprint_line(&server),
        first_fp,
        "a second start reuses the kept certificate"
    );
    assert_eq!(
        fs::read(&cert_file).unwrap(),
        first_pem,
        "the kept certificate file is unchanged"
    );
    let der = CertificateDer::from_pem_slice(&first_pem).unwrap();
    let config = client_config(&[der], &[b"http/1.1"], &[]);
    let stream = tls_connect(server.addr(), config, "localhost").await;
    let reply = h1_get_over(stream, &server, "/a.txt").await;
    assert_eq!(reply.status, 200);
}

/// Validity of the PEM certificate at `path`: (subject, not before, not after).
fn certificate_validity(path: &std::path::Path) -> (String, i64, i64) {
    let pem = fs::read(path).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).expect("stored cert is PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("X.509");
    let validity = cert.validity();
    // An end-entity certificate for a TLS server, as Apple platforms require.
    let eku = cert
        .extended_key_usage()
        .expect("EKU parses")
        .expect("an EKU");
    assert!(eku.value.server_auth, "serverAuth");
    let usage = cert
        .key_usage()
        .expect("key usage parses")
        .expect("a key usage");
    assert!(usage.value.digital_signature());
    let constraints = cert
        .basic_constraints()
        .expect("parses")
        .expect("basicConstraints");
    assert!(!constraints.value.ca, "not a CA");
    (
        cert.subject().to_string(),
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    )
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn self_signed_certificate_has_a_subject_and_a_validity_clients_accept() {
    let (tmp, root, _tls) = fixture();
    let state = tmp.path().join("state");
    let env = [("XDG_STATE_HOME", state.as_os_str())];
    let _server = Server::start_with_env(&root, &["--tls-self-signed"], &env);
    let (subject, not_before, not_after) =
        certificate_validity(&state.join("wharf/self-signed-cert.pem"));
    assert!(subject.contains("wharf local certificate"), "{subject}");
    assert!(subject.contains("localhost"), "{subject}");
    const DAY: i64 = 86400;
    // Apple platforms refuse server certificates valid for more than 825 days.
    assert!(
        not_after - not_before <= 825 * DAY,
        "{not_before}..{not_after}"
    );
    let left = not_after - unix_now();
    assert!((300 * DAY..=400 * DAY).contains(&left), "{left} s left");
}

#[test]
fn a_self_signed_certificate_near_its_end_is_made_again() {
    let (tmp, root, _tls) = fixture();
    let state = tmp.path().join("state");
    let dir = state.join("wharf");
    let env = [("XDG_STATE_HOME", state.as_os_str())];
    // What a first start keeps: certificate, key, names, expiry.
    drop(Server::start_with_env(&root, &["--tls-self-signed"], &env));
    let kept = fs::read(dir.join("self-signed-cert.pem")).unwrap();
    // Ten days left (as recorded), well inside the 30 days that call for a new one.
    let soon = unix_now() + 10 * 86400;
    fs::write(dir.join("self-signed-expires.txt"), format!("{soon}\n")).unwrap();
    drop(Server::start_with_env(&root, &["--tls-self-signed"], &env));
    let renewed = fs::read(dir.join("self-signed-cert.pem")).unwrap();
    assert_ne!(renewed, kept, "the certificate was not made again");
    let (_, _, not_after) = certificate_validity(&dir.join("self-signed-cert.pem"));
    assert!(not_after - unix_now() > 300 * 86400);
    // A certificate kept by an earlier wharf, with no expiry record, is made again too.
    fs::remove_file(dir.join("self-signed-expires.txt")).unwrap();
    drop(Server::start_with_env(&root, &["--tls-self-signed"], &env));
    assert_ne!(fs::read(dir.join("self-signed-cert.pem")).unwrap(), renewed);
    // One with most of its year left is kept.
    let current = fs::read(dir.join("self-signed-cert.pem")).unwrap();
    drop(Server::start_with_env(&root, &["--tls-self-signed"], &env));
    assert_eq!(fs::read(dir.join("self-signed-cert.pem")).unwrap(), current);
}
