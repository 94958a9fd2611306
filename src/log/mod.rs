//! The access log: one line per exchange on stdout, written by a thread of its own so
//! that serving never waits for it; and with `--verbose`, each request head on
//! stderr.
//!
//! A leaf: depends on no other module of wharf.

pub mod access;
pub mod verbose;
