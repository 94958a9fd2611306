//! One exchange's bookkeeping: the access-log record, filled in from the request and
//! completed when the response body is dropped, and the connection clock told that
//! the request is over — whether the response was sent or the client went away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header;
use http::{Method, Request, Response, Version};

use crate::http::body::{Body, Finish};
use crate::log::access::{AccessLog, Record};
use crate::net::clock::Clock;
use crate::site::auth::RemoteUser;

/// What is known of an exchange from its request; completed when its body is dropped.
pub struct Exchange {
    pub(super) clock: Arc<Clock>,
    /// When the request arrived.
    started: Instant,
    /// Its method and the answer's status, for the metrics.
    method: Method,
    status: u16,
    /// The handler that answered, as the site marked the response.
    handler: crate::metrics::HandlerKind,
    record: Option<Record>,
    log: AccessLog,
}

impl Exchange {
    /// The exchange of `req` from `remote` on the connection timed by `clock`.
    pub fn begin<B>(
        log: &AccessLog,
        req: &Request<B>,
        remote: SocketAddr,
        clock: Arc<Clock>,
    ) -> Self {
        let record = log.enabled().then(|| Record {
            remote: remote.ip(),
            time: SystemTime::now(),
            method: req.method().clone(),
            // HTTP/2 has no request line; log what an HTTP/1 client would have sent.
            target: match (req.version(), req.uri().path_and_query()) {
                (Version::HTTP_2, Some(pq)) => pq.as_str().to_string(),
                _ => req.uri().to_string(),
            },
            version: req.version(),
            status: 0,
            bytes: 0,
            referer: header_bytes(req, header::REFERER),
            user_agent: header_bytes(req, header::USER_AGENT),
            user: None,
            upstream: None,
            duration: Default::default(),
            complete: false,
        });
        Exchange {
            clock,
            started: Instant::now(),
            method: req.method().clone(),
            status: 0,
            handler: crate::metrics::HandlerKind::Static,
            record,
            log: log.clone(),
        }
    }

    /// Hands the exchange to `res`'s body, which completes it when dropped. The user
    /// the site authenticated (a [`RemoteUser`] in the response's extensions) goes
    /// into the record.
    pub fn attach(mut self, res: &mut Response<Body>) {
        self.status = res.status().as_u16();
        self.handler = res
            .extensions()
            .get::<crate::metrics::HandlerKind>()
            .copied()
            .unwrap_or_default();
        if let Some(record) = &mut self.record {
            record.status = res.status().as_u16();
            record.user = res
                .extensions_mut()
                .remove::<RemoteUser>()
                .map(|RemoteUser(user)| user);
            record.upstream = res
                .extensions_mut()
                .remove::<crate::http::response::Upstream>()
                .map(|u| (u.address, u.head_time));
        }
        res.body_mut().on_finish(Box::new(self));
    }
}

impl Finish for Exchange {
    fn finish(mut self: Box<Self>, bytes_sent: u64, complete: bool) {
        let took = self.started.elapsed();
        crate::metrics::metrics().request(
            &self.method,
            self.status,
            self.handler,
            bytes_sent,
            took,
        );
        if let Some(mut record) = self.record.take() {
            record.bytes = bytes_sent;
            record.complete = complete;
            record.duration = took;
            self.log.log(&record);
        }
    }
}

impl Drop for Exchange {
    /// Runs whether the exchange completed, or its future was dropped before a
    /// response existed (the client went away), so the clock never leaks a request.
    fn drop(&mut self) {
        self.clock.request_finished();
    }
}

fn header_bytes<B>(req: &Request<B>, name: header::HeaderName) -> Option<Vec<u8>> {
    req.headers().get(name).map(|v| v.as_bytes().to_vec())
}
