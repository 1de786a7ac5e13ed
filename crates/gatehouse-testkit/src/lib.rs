//! Test harness for Gatehouse, on real sockets on 127.0.0.0/8 only.
//!
//! - [`Gatehouse`] runs the real binary on a config written to a fresh directory, reads its
//!   log, and learns the ports of its listeners from their `listening` lines (listeners use
//!   port 0, so tests never collide).
//! - [`Backend`] is a TCP backend that names itself, echoes, answers HTTP health checks with a
//!   status the test controls, and can be stopped and restarted on the same port.
//! - [`ask`] and friends are clients: connect (optionally from a chosen 127.x source address),
//!   learn which backend answered.
//!
//! Everything is blocking std code with timeouts: a hung test fails, it does not hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod backend;
mod client;
mod process;

pub use backend::Backend;
pub use client::{ask, ask_from, connect, connect_from, open, read_line};
pub use process::{Gatehouse, TempDir, field};
