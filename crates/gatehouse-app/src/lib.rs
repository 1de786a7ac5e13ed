//! Assembles Gatehouse from a compiled config and keeps it running:
//!
//! - [`Supervisor`] owns the listening sockets and backend pools and applies a new config as a
//!   diff: new sockets are bound first, and if any bind fails nothing changes; unchanged
//!   sockets are never closed; open connections keep the settings they started with.
//! - [`run`] is `gatehouse run`: load, serve, reload on SIGHUP or when the file changes (the
//!   directory is watched, so editors' atomic renames and Kubernetes ConfigMap symlink swaps
//!   are seen), drain on SIGTERM/SIGINT.
//! - [`demo`] is `gatehouse demo`: the same, on an embedded config with built-in backends.
//! - [`admin`] is the admin endpoint (health, readiness, metrics, status, the status page,
//!   the access stream) the supervisor runs when the config has `admin`, and the clients of
//!   `gatehouse status` and `gatehouse observe`; [`Telemetry`] holds what it reports besides
//!   live state, fed by the binary's tracing layer.

pub mod admin;
mod cluster;
pub mod demo;
mod reload;
mod shutdown;
mod supervisor;
pub mod telemetry;
pub mod trace;
mod vips;

pub use reload::{RunError, RunOptions, run};
pub use shutdown::Signals;
pub use supervisor::{ApplyError, Supervisor};
pub use telemetry::Telemetry;
pub use vips::interface_report;
