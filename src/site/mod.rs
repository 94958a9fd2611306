//! The site: what every request goes through between the connection and its one
//! handler — the request checks RFC 9112 asks of a server, the method policy, and,
//! with a configuration file, the rules around the handler (address lists, Basic
//! auth, CORS, redirects, rewrites, SPA fallback, error pages, headers).
//!
//! Reaches handlers only through [`crate::handlers`]' seam, and knows nothing of
//! sockets or protocols (the network layer gives it parsed requests).

pub mod auth;
pub mod checks;
pub mod cors;
pub mod cross_origin;
pub mod dev;
pub mod https_redirect;
pub mod methods;
pub mod router;
pub mod rules;

pub use router::Router;
