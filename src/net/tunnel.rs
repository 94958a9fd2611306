//! Tunnels: once an app has switched protocols (a WebSocket through the proxy),
//! bytes go both ways between the client and the app, unread and unchanged, until
//! either side closes, nothing moves for the idle timeout, or wharf shuts down.
//!
//! On HTTP/1 the client's end is the connection itself, taken back from hyper
//! after the `101`. On HTTP/2 it is one stream: the client asked with an extended
//! CONNECT (RFC 8441), was answered `200`, and the stream's DATA frames carry the
//! tunnel while the connection's other streams go on; the connection counts the
//! tunnel as a response under way, so it neither idles out nor parks beneath it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::net::clock::Clock;

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
/// (bytes the client sent behind its request), until either side closes, nothing
/// moves for `limits.idle`, or shutdown.
pub async fn relay<C>(client: &mut C, early: Bytes, other_end: OnUpgrade, limits: &TunnelLimits)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(upgraded) = other_end.await else {
        return;
    };
    let mut other = TokioIo::new(upgraded);
    if !early.is_empty() && other.write_all(&early).await.is_err() {
        return;
    }
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_other = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => match read {
                Ok(n) if n > 0 => {
                    if other.write_all(&from_client[..n]).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = other.shutdown().await;
                    return;
                }
            },
            read = other.read(&mut from_other) => match read {
                Ok(n) if n > 0 => {
                    if client.write_all(&from_other[..n]).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = client.shutdown().await;
                    return;
                }
            },
            _ = tokio::time::sleep(limits.idle) => return,
            _ = limits.shutdown.cancelled() => return,
        }
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
            let mut stream = TokioIo::new(stream);
            relay(&mut stream, Bytes::new(), other_end, &limits).await;
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
