//! The access log: one line per exchange on stdout, written by a thread of its own so
//! that serving never waits for it.
//!
//! A leaf: depends on no other module of wharf.

pub mod access;
