//! HTTP pieces any handler uses: the response [`body::Body`], the request body stream,
//! error and redirect responses, preconditions, ranges, content negotiation, media
//! types, entity tags, and [`path::SitePath`], the one parsed form of a request path.
//!
//! The bottom layer: it depends on no other module of wharf and knows nothing of
//! sockets, configuration, rules or handlers.

pub mod body;
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
