//! wharf: serve a folder over HTTP, safely.
//!
//! A request flows one way: [`server`] (listeners) → [`connection`] (protocol, limits,
//! timeouts) → [`router`] (request checks, path parsing, one handler) →
//! [`static_files`] / [`listing`] → a [`body::Body`]. Only [`fs`] opens anything under
//! the served root. ARCHITECTURE.md describes the whole.

#[cfg(not(unix))]
compile_error!("wharf needs a Unix-like system (it resolves paths with openat/openat2)");

pub mod access_log;
pub mod body;
pub mod cache;
pub mod compress;
pub mod conditional;
pub mod config;
pub mod connection;
pub mod etag;
pub mod fs;
pub mod listing;
pub mod mime;
pub mod negotiate;
pub mod path;
pub mod range;
pub mod representation;
pub mod response;
pub mod router;
pub mod server;
pub mod static_files;
pub mod zero_copy;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::connection::Limits;
use crate::router::Router;

/// Blocking-pool threads per worker (file I/O, listings, compression).
const BLOCKING_THREADS_PER_WORKER: usize = 64;

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
///
/// Each of `config.workers` threads runs its own single-threaded event loop and
/// accepts from its own duplicate of every listening socket, so a connection lives on
/// one thread from accept to close with no cross-thread hand-offs. Returns an error
/// message (for one line on stderr) when startup fails.
pub fn run(config: Config) -> Result<(), String> {
    raise_fd_limit();
    let log = if config.quiet {
        AccessLog::quiet()
    } else {
        AccessLog::stdout(config.log_format)
    };
    let router = Arc::new(Router::new(config.clone(), log.clone())?);
    // Signal handlers go in first, on the runtime that will poll them, so a signal sent
    // as soon as the URL is printed already means "shut down".
    let main_runtime = build_runtime()?;
    let signals = {
        let _guard = main_runtime.enter();
        Signals::install()?
    };
    let mut listeners = Vec::new();
    for addr in &config.listen {
        listeners.push(server::bind(*addr)?);
    }
    for listener in &listeners {
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        eprintln!(
            "wharf: serving {} at http://{}/",
            router.root.path().display(),
            local
        );
    }
    let limits = Limits {
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        max_header_size: config.max_header_size,
    };
    let shutdown = CancellationToken::new();
    let worker = |listeners: Vec<TcpListener>| Worker {
        listeners,
        router: Arc::clone(&router),
        limits: limits.clone(),
        shutdown: shutdown.clone(),
        grace: config.grace_period,
    };

    let mut threads = Vec::new();
    for i in 1..config.workers {
        let dups = listeners
            .iter()
            .map(TcpListener::try_clone)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot share the listening socket: {e}"))?;
        let w = worker(dups);
        let thread = std::thread::Builder::new()
            .name(format!("wharf-worker-{i}"))
            .spawn(move || w.run(build_runtime()?, None))
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        threads.push(thread);
    }
    let result = worker(listeners).run(main_runtime, Some(signals));
    for thread in threads {
        if let Ok(Err(e)) = thread.join() {
            eprintln!("wharf: {e}");
        }
    }
    log.flush(Duration::from_secs(2));
    result
}

/// One worker thread: an event loop serving connections from its listeners.
struct Worker {
    listeners: Vec<TcpListener>,
    router: Arc<Router>,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
}

impl Worker {
    /// Serves until shutdown, then lets open responses finish within the grace period.
    /// The worker given `signals` is the one that turns SIGINT/SIGTERM into shutdown.
    fn run(self, runtime: tokio::runtime::Runtime, signals: Option<Signals>) -> Result<(), String> {
        runtime.block_on(async move {
            let tasks = TaskTracker::new();
            for listener in self.listeners {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| format!("cannot register the listening socket: {e}"))?;
                tokio::spawn(server::accept_loop(
                    listener,
                    Arc::clone(&self.router),
                    self.limits.clone(),
                    self.shutdown.clone(),
                    tasks.clone(),
                ));
            }
            if let Some(signals) = signals {
                let trimmer = tokio::spawn(async {
                    let mut every = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        every.tick().await;
                        connection::release_parked_memory();
                    }
                });
                signals.wait().await;
                trimmer.abort();
                eprintln!(
                    "wharf: shutting down; waiting up to {} for open responses",
                    humantime::format_duration(self.grace)
                );
                self.shutdown.cancel();
            } else {
                self.shutdown.cancelled().await;
            }
            tasks.close();
            if tokio::time::timeout(self.grace, tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("grace period over; closing remaining connections");
            }
            Ok::<(), String>(())
        })?;
        // Connections still open after the grace period are dropped here.
        runtime.shutdown_timeout(Duration::from_millis(100));
        Ok(())
    }
}

fn build_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// SIGINT and SIGTERM, installed before serving so neither can kill the process.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers on the runtime entered by the caller.
    fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate())
            .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
        Ok(Signals { term, int })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Lets the process use as many file descriptors as its hard limit allows: each
/// connection is one, and the default soft limit (often 1024) is far below what a
/// server needs.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
