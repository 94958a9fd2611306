//! Tunnels: once an app has switched protocols (a WebSocket through the proxy),
//! bytes go both ways between the client and the app, unread and unchanged, until
//! both sides have finished, nothing moves for the idle timeout, or wharf shuts
//! down.
//!
//! On HTTP/1 the client's end is the connection itself, taken back from hyper
//! after the `101`. On HTTP/2 it is one stream: the client asked with an extended
//! CONNECT (RFC 8441), was answered `200`, and the stream's DATA frames carry the
//! tunnel while the connection's other streams go on; the connection counts the
//! tunnel as a response under way, so it neither idles out nor parks beneath it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::net::clock::Clock;

/// Tunnels relaying right now, in the whole process: what a shutdown says it cuts
/// and an upgrade's old process waits for.
static OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many tunnels are relaying.
pub fn open_tunnels() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// One tunnel's share of [`open_tunnels`], for as long as it relays.
struct OpenTunnel;

impl OpenTunnel {
    fn count() -> OpenTunnel {
        OPEN.fetch_add(1, Ordering::Relaxed);
        OpenTunnel
    }
}

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection's tunnels need to know: when to give up on a quiet one, and
/// wharf's shutdown.
#[derive(Debug, Clone)]
pub struct TunnelLimits {
    /// Nothing moved either way for this long: the tunnel ends.
    pub idle: Duration,
    /// Cancelled when wharf stops.
    pub shutdown: CancellationToken,
}

/// Joins `client` to the other end of its protocol switch, first passing on `early`
/// (bytes the client sent behind its request). Each direction runs on its own, so a
/// side that stops reading stalls only the bytes meant for it, and a side that has
/// finished sending (a FIN, or an HTTP/2 stream's END_STREAM) is passed on as such
/// while the other direction goes on. It ends when both directions have, when no
/// byte has moved either way for `limits.idle` (a write blocked on a side that does
/// not read counts as no movement), at an error on either side (the other is then
/// closed rather than finished), or at shutdown.
pub async fn relay<C>(client: C, early: Bytes, other_end: OnUpgrade, limits: &TunnelLimits)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(upgraded) = other_end.await else {
        return;
    };
    let _open = OpenTunnel::count();
    let mut other = TokioIo::new(upgraded);
    if !early.is_empty() && other.write_all(&early).await.is_err() {
        return;
    }
    let started = Instant::now();
    let moved = AtomicU64::new(0);
    let (mut client_reads, mut client_writes) = tokio::io::split(client);
    let (mut other_reads, mut other_writes) = tokio::io::split(other);
    // Both directions to their ends; an error on either ends the tunnel at once
    // (both sides then see it broken off, not finished).
    let both = async {
        tokio::try_join!(
            pump(&mut client_reads, &mut other_writes, &moved, started),
            pump(&mut other_reads, &mut client_writes, &moved, started),
        )
    };
    let quiet = async {
        loop {
            let last = started + Duration::from_millis(moved.load(Ordering::Relaxed));
            let until = last + limits.idle;
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until.into()).await;
        }
    };
    tokio::select! {
        _ = both => {}
        () = quiet => {}
        () = limits.shutdown.cancelled() => {}
    }
}

/// Copies `from` to `to` until `from` ends (then `to` is shut down for writing);
/// records in `moved` when bytes last went through either way (milliseconds after
/// `started`), after every read and every partial write, so that a slow but steady
/// reader is not taken for an idle one.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    moved: &AtomicU64,
    started: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mark = || {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        moved.store(ms, Ordering::Relaxed);
    };
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        mark();
        let mut sent = 0;
        while sent < n {
            let wrote = to.write(&buf[sent..n]).await?;
            if wrote == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            sent += wrote;
            mark();
        }
        to.flush().await?;
    }
}

/// Starts the tunnel of an HTTP/2 stream whose extended CONNECT was answered
/// `200`: `client_end` is the stream, `other_end` the app's switched connection.
/// The connection's `clock` counts it as a response under way until it ends.
pub fn spawn_h2(
    client_end: OnUpgrade,
    other_end: OnUpgrade,
    clock: Arc<Clock>,
    limits: TunnelLimits,
) {
    clock.tunnel_opened();
    let open = Open(clock);
    tokio::spawn(async move {
        let _open = open;
        if let Ok(stream) = client_end.await {
            relay(TokioIo::new(stream), Bytes::new(), other_end, &limits).await;
        }
    });
}

/// A tunnel counted on its connection's clock; however its task ends, the count
/// goes with it.
struct Open(Arc<Clock>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}
