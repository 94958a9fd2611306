//! CGI (RFC 3875): programs under the root whose output is the page — `--cgi`
//! (`/cgi-bin/` and `/htbin/`, as CPython's server had) or `handler = "cgi"` rules.
//!
//! The program is found by the one resolver ([`Root::locate`]): confined to the
//! root, no dotfiles, a regular file; the longest prefix of the path that is a file
//! is the program and the rest is `PATH_INFO`. It must be executable unless its rule
//! names an interpreter for its extension. The request body is received whole first
//! (as the proxy does), so a slow client holds no process; then the program runs
//! (see [`process`]) with the meta-variables of [`meta`] as its whole environment,
//! and its output is parsed and streamed by [`output`], which FastCGI shares.
//!
//! Statuses: no such program 404, not executable (or a folder) 403, too many running
//! 503 with `Retry-After`, cannot start or malformed output 502, no header block in
//! time 504.

pub mod locate;
pub mod meta;
pub mod output;
pub mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use tokio::sync::Semaphore;

use crate::fs::Root;
use crate::handlers::spool::{spool, Spooled};
use crate::handlers::Request;
use crate::http::body::Body;
use crate::http::path::SitePath;
use crate::http::response;

/// How long a request waits for a free program slot before 503.
const SLOT_WAIT: Duration = Duration::from_secs(2);
/// Largest request body by default.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024 * 1024;

/// What `--cgi-timeout` and `--cgi-max` set, for every CGI program.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a program may take to start its answer, or pause in it.
    pub timeout: Duration,
    /// How many programs run at once.
    pub max: usize,
    /// Largest request body where a rule sets none (`--max-upload-size`).
    pub max_body: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Settings {
            timeout: Duration::from_secs(60),
            max: 4 * cpus,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// The state every CGI rule shares: the program slots.
#[derive(Debug)]
pub struct Cgi {
    settings: Settings,
    slots: Arc<Semaphore>,
    /// Programs found before, for CGI and FastCGI alike.
    known: locate::KnownPrograms,
}

/// Which program names a rule covers: its path pattern, applied by the site.
pub type ScriptPattern = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// One CGI rule's options.
#[derive(Clone, Default)]
pub struct Route {
    /// Programs run by an interpreter, by extension (`.py` → `/usr/bin/python3`).
    pub interpreters: Vec<(String, PathBuf)>,
    /// Largest request body; `None`: the server's (`--max-upload-size`).
    pub max_body: Option<u64>,
    /// The rule's pattern, which the program's own path (`SCRIPT_NAME`) must match
    /// too: the rule matched the whole request path, and a shorter prefix of it (an
    /// executable `/tool.bin` in `/tool.bin/x.cgi`) is not what `**/*.cgi` names.
    /// `None`: any program the path leads to.
    pub scripts: Option<ScriptPattern>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("interpreters", &self.interpreters)
            .field("max_body", &self.max_body)
            .field("scripts", &self.scripts.is_some())
            .finish()
    }
}

impl Route {
    /// The interpreter for the program `name`, if its extension has one.
    fn interpreter(&self, name: &[u8]) -> Option<&std::path::Path> {
        self.interpreters
            .iter()
            .find(|(ext, _)| name.ends_with(ext.as_bytes()))
            .map(|(_, path)| path.as_path())
    }
}

/// Finds `name` (`python3`) on the programs' `PATH`, for an `interpreter` setting; an
/// absolute path is taken as it is, if it exists.
pub fn find_interpreter(name: &str) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        meta::SAFE_PATH
            .split(':')
            .map(|dir| PathBuf::from(dir).join(name))
            .collect()
    };
    candidates
        .into_iter()
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            format!(
                "interpreter {name:?} not found (looked in {})",
                meta::SAFE_PATH
            )
        })
}

/// 503 with `Retry-After`: every slot is taken.
pub fn busy() -> Response<Body> {
    let mut res = response::error(StatusCode::SERVICE_UNAVAILABLE);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// What `req` (with its received `body`, under `root`) contributes to the
/// meta-variables besides its head.
pub fn exchange<'a>(
    req: &'a Request<'_>,
    root: &'a Root,
    body: Option<&Spooled>,
) -> meta::Exchange<'a> {
    meta::Exchange {
        remote: req.remote,
        tls: req.tls,
        local_port: req.local_port,
        user: req.user,
        document_root: root.path(),
        content_length: body
            .map(Spooled::len)
            .or_else(|| crate::http::request_body::declared_length(&req.head.headers)),
    }
}

/// Receives a request's body whole (413 past `max`), or `None` when it has none;
/// `Err` is the response to give instead.
pub async fn receive_body(
    req: &mut Request<'_>,
    max: u64,
    idle: Duration,
) -> Result<Option<Spooled>, Response<Body>> {
    if crate::http::request_body::declared_length(&req.head.headers).is_some_and(|n| n > max) {
        return Err(response::error(StatusCode::PAYLOAD_TOO_LARGE));
    }
    if http_body::Body::is_end_stream(&req.body) {
        return Ok(None);
    }
    match spool(&mut req.body, max, idle).await {
        Ok(spooled) => Ok(Some(spooled)),
        Err(status) => Err(response::error(status)),
    }
}

impl Cgi {
    /// The shared state for `settings`.
    pub fn new(settings: Settings) -> Cgi {
        Cgi {
            settings,
            slots: Arc::new(Semaphore::new(settings.max.max(1))),
            known: locate::KnownPrograms::default(),
        }
    }

    /// The same state for another served folder: the same slots (the programs
    /// running now still hold theirs), none of the programs found in the old one.
    pub fn for_another_folder(&self) -> Cgi {
        Cgi {
            settings: self.settings,
            slots: Arc::clone(&self.slots),
            known: locate::KnownPrograms::default(),
        }
    }

    /// The program `path` names under `root`, through no hidden name unless
    /// `hidden` (see [`locate::KnownPrograms::find`]).
    pub fn find(
        &self,
        root: &Root,
        path: &SitePath,
        hidden: bool,
    ) -> Result<Arc<locate::Found>, StatusCode> {
        self.known.find(root, path, hidden)
    }

    /// How long a program may take to answer, or pause.
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }

    /// Runs the program `req` names under `root` (`hidden`: whether dotfiles are
    /// served), as `route` says, with a body of at most `max_body` where the route
    /// sets no limit.
    pub async fn respond(
        &self,
        route: &Route,
        (root, hidden): (&Arc<Root>, bool),
        max_body: u64,
        mut req: Request<'_>,
    ) -> Response<Body> {
        let found = match self.find(root, &req.path, hidden) {
            Ok(found) => found,
            Err(status) => return response::error(status),
        };
        if route
            .scripts
            .as_ref()
            .is_some_and(|allows| !allows(&found.script_name))
        {
            return response::error(StatusCode::NOT_FOUND);
        }
        let interpreter = route.interpreter(&found.file_name);
        if interpreter.is_none() && !found.executable {
            return response::error(StatusCode::FORBIDDEN);
        }
        let timeout = self.settings.timeout;
        let max_body = route.max_body.unwrap_or(max_body);
        let body = match receive_body(&mut req, max_body, timeout).await {
            Ok(body) => body,
            Err(res) => return res,
        };
        let permit =
            match tokio::time::timeout(SLOT_WAIT, Arc::clone(&self.slots).acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return busy(),
            };
        let script = meta::Script {
            name: found.script_name.clone(),
            path_info: found.path_info.clone(),
            filename: &found.filename,
        };
        let env = meta::meta_variables(req.head, &script, exchange(&req, root, body.as_ref()));
        let name = found.filename.display().to_string();
        let invocation = process::Invocation {
            program: &found.filename,
            interpreter,
            env,
        };
        let out = match process::spawn(invocation, body, permit, timeout, name.clone()) {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return response::error(StatusCode::FORBIDDEN)
            }
            // The request's fields made a meta-variable longer than the kernel
            // passes to a program (128 KiB each): the request's fault, as Apache
            // answers it.
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {
                tracing::warn!("{name:?} could not be started: {e}");
                return response::error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            }
            Err(e) => {
                tracing::warn!("{name:?} could not be started: {e}");
                return response::error(StatusCode::BAD_GATEWAY);
            }
        };
        let framing = if found.file_name.starts_with(b"nph-") {
            output::Framing::Nph
        } else {
            output::Framing::Cgi
        };
        let head_request = req.head.method == http::Method::HEAD;
        output::respond(out, framing, head_request, (timeout, req.client), &name).await
    }
}
