//! Settings: the command line ([`cli`]), the `WHARF_*` environment and the TOML file
//! ([`file`](mod@file), with the site's tables in [`site_tables`]), layered into one validated
//! [`cli::Config`]; and `--explain` ([`explain`]).
//!
//! The top of the tree beside `lib.rs`: it builds the settings of every layer, and no
//! layer below depends on it.

pub mod cli;
pub mod explain;
pub mod file;
pub mod lines;
pub mod site_tables;
