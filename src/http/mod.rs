//! HTTP pieces any handler uses: the response [`body::Body`], the request body stream,
//! error and redirect responses, preconditions, ranges, content negotiation, media
//! types, entity tags, and [`path::SitePath`], the one parsed form of a request path.
//!
//! The bottom layer: it depends on no other module of wharf and knows nothing of
//! configuration, rules or handlers, nor of sockets beyond noticing that a client's
//! has closed ([`client::Client`]).

pub mod body;
pub mod client;
pub mod conditional;
pub mod etag;
pub mod mime;
pub mod negotiate;
pub mod path;
pub mod range;
pub mod representation;
pub mod request_body;
pub mod response;
pub mod zero_copy;
