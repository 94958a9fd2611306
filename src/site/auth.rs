//! HTTP Basic authentication (RFC 7617) against argon2 password hashes.
//!
//! Passwords are checked with argon2 on the blocking pool (a verification takes tens
//! of milliseconds by design). A successful check is remembered for a few minutes,
//! keyed by a SHA-256 of the credentials and the stored hash, so a page and its assets
//! cost one verification, and a changed password invalidates it. Unknown users are
//! checked against a dummy hash so that timing does not reveal which users exist.
//! Each client address may fail a bounded number of times per window, then gets 429.
//! Credentials are never logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use http::header::{self, HeaderMap, HeaderValue};

/// Failed attempts a client may make per [`FAIL_WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The window for [`MAX_FAILURES`].
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// How long a successful verification is remembered.
const REMEMBER: Duration = Duration::from_secs(300);
const REMEMBERED_MAX: usize = 4096;

/// The users of the site: name → argon2 PHC hash string.
#[derive(Debug, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
    remembered: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Clone for Users {
    fn clone(&self) -> Self {
        Users {
            hashes: self.hashes.clone(),
            ..Users::default()
        }
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user.
    User(String),
    /// Missing or wrong credentials: 401.
    Denied,
    /// Too many failures from this client: 429.
    Throttled,
}

/// The user a request authenticated as, put in its response's extensions for the
/// access log (nginx's `$remote_user`). Never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUser(pub String);

/// The `WWW-Authenticate` challenge.
pub fn challenge() -> HeaderValue {
    HeaderValue::from_static("Basic realm=\"wharf\", charset=\"UTF-8\"")
}

impl Users {
    /// Validates every hash (PHC format, argon2) up front; the error names the user.
    pub fn new(hashes: HashMap<String, String>) -> Result<Users, String> {
        for (user, hash) in &hashes {
            check_hash(user, hash)?;
        }
        Ok(Users {
            hashes,
            ..Users::default()
        })
    }

    /// The users whose hash is [`EXAMPLE_HASH`], sorted.
    pub fn with_example_hash(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .hashes
            .iter()
            .filter(|(_, hash)| hash.as_str() == EXAMPLE_HASH)
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Whether any user is defined.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `name` is a defined user.
    pub fn contains(&self, name: &str) -> bool {
        self.hashes.contains_key(name)
    }

    /// Checks the request's `Authorization` header for `client`. Blocks (argon2);
    /// call it on the blocking pool.
    pub fn verify(&self, headers: &HeaderMap, client: IpAddr) -> Verdict {
        if self.throttled(client) {
            return Verdict::Throttled;
        }
        let Some((user, password)) = basic_credentials(headers) else {
            // No credentials is the normal first request, not a failure.
            return Verdict::Denied;
        };
        let stored = self.hashes.get(&user);
        let key = remember_key(&user, &password, stored.map(String::as_str));
        if stored.is_some() && self.remembered(&key) {
            return Verdict::User(user);
        }
        let hash = stored.map_or(DUMMY_HASH, String::as_str);
        let ok = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        if ok && stored.is_some() {
            self.remember(key);
            Verdict::User(user)
        } else {
            self.record_failure(client);
            Verdict::Denied
        }
    }

    /// Whether `client` has failed too often lately; cheap, so callers can refuse
    /// before spending a verification.
    pub fn throttled(&self, client: IpAddr) -> bool {
        let client = failure_key(client);
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(&client)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < FAIL_WINDOW)
    }

    fn record_failure(&self, client: IpAddr) {
        let client = failure_key(client);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| since.elapsed() < FAIL_WINDOW);
        }
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAIL_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn remembered(&self, key: &[u8; 32]) -> bool {
        let remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        remembered
            .get(key)
            .is_some_and(|at| at.elapsed() < REMEMBER)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if remembered.len() >= REMEMBERED_MAX {
            remembered.retain(|_, at| at.elapsed() < REMEMBER);
            if remembered.len() >= REMEMBERED_MAX {
                remembered.clear();
            }
        }
        remembered.insert(key, Instant::now());
    }
}

/// Checks that `user` can log in (Basic credentials split at the first `:`, so a
/// name with one never matches, RFC 7617 §2; nor does an empty or control-character
/// name) and that `hash` is an argon2 password hash (PHC string).
pub fn check_hash(user: &str, hash: &str) -> Result<(), String> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err(format!(
            "user {user:?}: a user name cannot be empty or contain \":\" or control characters (RFC 7617)"
        ));
    }
    let parsed = PasswordHash::new(hash).map_err(|e| {
        format!("user \"{user}\": not a password hash ({e}); make one with `wharf hash-password`")
    })?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!("user \"{user}\": only argon2 hashes are accepted"));
    }
    Ok(())
}

/// The hash in `wharf.example.toml`, whose password that file prints: a site using it
/// is open to anyone who has read the example.
pub const EXAMPLE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bzBbXuTeqoof7ZHvwCPXQg$/XkfcwCQCm4bgi4u/ULHoinGWKSNKuYKNLru7JYdWtg";

/// Failures are counted per IPv4 address and per IPv6 /64 (one subscriber's block), so
/// an attacker cannot get fresh attempts by rotating through one network's addresses.
fn failure_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// A valid argon2id hash of a random password, checked for unknown users.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0+Qhk6Jd6eMbAqCwTd0gqMZV0S5M8ZdrJ0CdnwA2rM0";

fn remember_key(user: &str, password: &str, hash: Option<&str>) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [user, "\0", password, "\0", hash.unwrap_or("")] {
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `Authorization: Basic base64(user:password)`, decoded.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// An argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| "no randomness available for a salt".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(user: &str, password: &str) -> HeaderMap {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn the_dummy_hash_is_valid() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn verifies_users_and_throttles_failures() {
        let hash = hash_password("s3cret").unwrap();
        let users = Users::new([("alice".to_string(), hash)].into()).unwrap();
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            users.verify(&headers("alice", "s3cret"), me),
            Verdict::User("alice".into())
        );
        // Remembered: the same credentials pass again without argon2.
        assert_eq!(
            users.verify(&headers("alice", "s3cret"), me),
            Verdict::User("alice".into())
        );
        assert_eq!(
            users.verify(&headers("alice", "wrong"), me),
            Verdict::Denied
        );
        assert_eq!(users.verify(&headers("bob", "s3cret"), me), Verdict::Denied);
        assert_eq!(users.verify(&HeaderMap::new(), me), Verdict::Denied);
        for _ in 0..MAX_FAILURES {
            users.verify(&headers("alice", "wrong"), me);
        }
        assert_eq!(
            users.verify(&headers("alice", "s3cret"), me),
            Verdict::Throttled
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            users.verify(&headers("alice", "s3cret"), other),
            Verdict::User("alice".into())
        );
    }

    #[test]
    fn the_example_hash_is_the_one_the_example_file_ships() {
        let example = include_str!("../../wharf.example.toml");
        assert!(example.contains(&format!("\"{EXAMPLE_HASH}\"")));
        let users = Users::new(
            [
                ("b".to_string(), EXAMPLE_HASH.to_string()),
                ("a".to_string(), EXAMPLE_HASH.to_string()),
                ("c".to_string(), hash_password("x").unwrap()),
            ]
            .into(),
        )
        .unwrap();
        assert_eq!(users.with_example_hash(), ["a", "b"]);
    }

    #[test]
    fn rejects_hashes_that_are_not_argon2() {
        let err = Users::new([("a".to_string(), "plaintext".to_string())].into()).unwrap_err();
        assert!(err.contains("user \"a\""), "{err}");
    }
}
