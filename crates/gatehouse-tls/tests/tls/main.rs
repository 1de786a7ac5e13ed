//! Tests of `gatehouse-tls` through its public API: one test crate (one link), a module per
//! concern.

// Helpers outside `#[test]` functions unwrap too (clippy.toml allows it only inside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod certs;
mod common;
mod handshake;
mod hello;
mod read;
mod resolver;
