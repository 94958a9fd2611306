//! The network layer: listening sockets, the accept loop, one task per connection,
//! TLS, protocol detection, timeouts, parking of idle connections, and the hyper
//! service that hands each parsed request to the site.
//!
//! Owns sockets and time. Knows the site only as [`crate::site::Router`], whose
//! answers it frames and sends; knows nothing of rules, handlers or files.

pub mod admin;
pub mod clock;
pub mod connection;
pub mod deferred_accept;
pub mod detect;
pub mod exchange;
pub mod io;
pub mod lazy_tcp;
pub mod listener;
pub mod parking;
pub mod service;
pub mod systemd;
pub mod tls;
pub mod tls_crypto;
pub mod tunnel;
pub mod upgrade;
