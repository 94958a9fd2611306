//! The request body as handlers receive it: a stream of chunks read from the
//! connection only as the handler asks for them.
//!
//! hyper reads a body's bytes from the socket when the body is polled, not before, so
//! a handler that writes each chunk somewhere before asking for the next one holds at
//! most one chunk in memory, and a slow consumer slows the client through TCP's flow
//! control (HTTP/1) or the stream's window (HTTP/2). Dropping the body unread is how a
//! handler says it does not want it: on HTTP/1 hyper then closes the connection after
//! the response instead of reading what is left.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

/// The length a request announces for its body (`Content-Length`), if any.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A request's body, or nothing (no body, or one already read and dropped).
#[derive(Default)]
pub struct RequestBody {
    incoming: Option<Incoming>,
    /// Told once the body has been read to its end.
    on_end: Option<Box<dyn FnOnce() + Send>>,
    /// Told of each piece of the body read (see [`RequestBody::on_data`]).
    on_data: Option<Box<dyn Fn() + Send>>,
    /// An HTTP/2 stream, whose body ends only with END_STREAM.
    http2: bool,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("incoming", &self.incoming)
            .finish_non_exhaustive()
    }
}

impl RequestBody {
    /// The body hyper is receiving (over HTTP/2 with `http2`); `on_end` runs when it
    /// has been read to its end (the connection then knows no request bytes are
    /// pending).
    pub fn new(
        incoming: Incoming,
        http2: bool,
        on_end: impl FnOnce() + Send + 'static,
    ) -> RequestBody {
        RequestBody {
            incoming: Some(incoming),
            on_end: Some(Box::new(on_end)),
            on_data: None,
            http2,
        }
    }

    /// Runs `on_data` at each piece of the body read: on HTTP/2, where bytes
    /// arriving on the connection may be anything (a PING), the pieces a handler
    /// takes are what shows an upload is under way.
    pub fn on_data(mut self, on_data: impl Fn() + Send + 'static) -> RequestBody {
        self.on_data = Some(Box::new(on_data));
        self
    }

    /// No body: the request had none, or it was already read.
    pub fn empty() -> RequestBody {
        RequestBody::default()
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.incoming {
            Some(incoming) => Pin::new(incoming).poll_frame(cx),
            None => Poll::Ready(None),
        };
        match polled {
            Poll::Ready(None) => {
                // hyper ends the body quietly when the client resets its stream with
                // NO_ERROR or CANCEL; without END_STREAM the request is cut short
                // (RFC 9113 §8.1), and must not pass for whole.
                let ended = this.incoming.as_ref().is_none_or(|b| b.is_end_stream());
                if this.http2 && !ended {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the client reset its stream before the body's end",
                    ))));
                }
                if let Some(on_end) = this.on_end.take() {
                    on_end();
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(std::io::Error::other(e)))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(on_data) = &this.on_data {
                    on_data();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}
