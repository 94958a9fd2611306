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

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::connection::Limits;
use crate::router::Router;

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
///
/// Returns an error message (for one line on stderr) when startup fails.
pub async fn run(config: Config) -> Result<(), String> {
    let log = if config.quiet {
        AccessLog::quiet()
    } else {
        AccessLog::stdout(config.log_format)
    };
    let router = Arc::new(Router::new(config.clone(), log.clone())?);
    let mut listeners = Vec::new();
    for addr in &config.listen {
        listeners.push(server::bind(*addr)?);
    }
    let limits = Limits {
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        max_header_size: config.max_header_size,
    };
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    for listener in listeners {
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        eprintln!(
            "wharf: serving {} at http://{}/",
            router.root.path().display(),
            local
        );
        tokio::spawn(server::accept_loop(
            listener,
            Arc::clone(&router),
            limits.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
    }

    wait_for_signal().await?;
    eprintln!(
        "wharf: shutting down; waiting up to {} for open responses",
        humantime::format_duration(config.grace_period)
    );
    shutdown.cancel();
    tasks.close();
    if tokio::time::timeout(config.grace_period, tasks.wait())
        .await
        .is_err()
    {
        eprintln!("wharf: grace period over; closing remaining connections");
    }
    log.flush(std::time::Duration::from_secs(2));
    Ok(())
}

async fn wait_for_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| format!("cannot install the SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
