//! Assembles Gatehouse from a compiled config and keeps it running:
//!
//! - [`Supervisor`] owns the listening sockets and backend pools and applies a new config as a
//!   diff: new sockets are bound first, and if any bind fails nothing changes; unchanged
//!   sockets are never closed; open connections keep the settings they started with.
//! - [`run`] is `gatehouse run`: load, serve, reload on SIGHUP or when the file changes (the
//!   directory is watched, so editors' atomic renames and Kubernetes ConfigMap symlink swaps
//!   are seen), drain on SIGTERM/SIGINT.
//! - [`demo`] is `gatehouse demo`: the same, on an embedded config with built-in backends.

pub mod demo;
mod reload;
mod shutdown;
mod supervisor;
mod vips;

pub use reload::{RunError, RunOptions, run};
pub use shutdown::Signals;
pub use supervisor::{ApplyError, Supervisor};
pub use vips::interface_report;
