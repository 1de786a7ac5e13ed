//! Gatehouse's configuration pipeline, with no IO beyond reading the files it names (the config,
//! certificates, CA bundles) and no async runtime:
//!
//! ```text
//! YAML text --model--> RawConfig (every value carries its line:column)
//!           --compile--> Config (typed, validated, immutable; what the proxy runs on)
//!           --diff-----> ConfigDiff (what a reload has to change)
//! ```
//!
//! Validation never stops at the first problem: [`compile`] returns every [`Diagnostic`] it
//! finds, each naming the file, line and column, what is wrong and, where we can tell, how to
//! fix it. The hot path never sees YAML types: it gets a [`Config`].

mod admin;
mod clients;
mod compile;
mod diag;
mod diff;
mod dns;
mod gateway_api;
mod http_routes;
mod kubernetes;
mod model;
mod overlay;
mod parse;
mod pools;
mod routes;
mod summary;
mod types;
mod vrrp;

pub use compile::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, Loaded, compile, load_file, load_str,
};
pub use diag::{Diagnostic, Diagnostics, Pos, Severity, Source};
pub use diff::{ConfigDiff, diff};
pub use kubernetes::LabelSelector;
pub use overlay::{DocumentKind, MEMORY_PREFIX, Overlay, OverlayDocument, Rejected, load_with};
pub use parse::{
    parse_cidr, parse_duration, parse_endpoint_target, parse_host_pattern, parse_listen_address,
};
pub use routes::DEFAULT_HANDSHAKE_TIMEOUT;
pub use types::*;
