//! Test harness for Gatehouse, on real sockets on 127.0.0.0/8 only.
//!
//! - [`Gatehouse`] runs the real binary on a config written to a fresh directory, reads its
//!   log, and learns the ports of its listeners from their `listening` lines (listeners use
//!   port 0, so tests never collide).
//! - [`Backend`] is a TCP backend that names itself, echoes, answers HTTP health checks with a
//!   status the test controls, and can be stopped and restarted on the same port.
//! - [`ask`] and friends are clients: connect (optionally from a chosen 127.x source address),
//!   learn which backend answered.
//! - [`TestCa`] issues certificates (ECDSA, RSA, Ed25519; CN = file stem) to PEM files,
//!   [`TlsBackend`] is a [`Backend`] behind TLS (with an HTTP mode for curl), and
//!   [`s_client`], [`curl_get`] and [`tls_connect`] are TLS clients: the real `openssl` and
//!   `curl` tools (Debian packages `openssl` and `curl`, required), and rustls (aws-lc-rs).
//!
//! - [`Haproxy`] runs the real HAProxy as a peer (a PROXY protocol sender or receiver).
//!
//! - [`Netns`] and [`Lan`] are hosts in network namespaces on one bridged LAN with no route
//!   out (root only), for the binary on several nodes ([`Gatehouse::start_in`]): [`Prober`]
//!   records who answers a client there every 10 ms, [`PyBackend`] is a tiny backend inside a
//!   namespace, [`Keepalived`] the real keepalived as a VRRP peer.
//!
//! - [`kube::FakeApiServer`] is a fake Kubernetes API server (HTTPS, list/watch with
//!   resourceVersions, bookmarks and 410 Expired, patches) for the Kubernetes provider's tests;
//!   unlike the rest, it is async (tokio).
//!
//! Everything else is blocking std code with timeouts: a hung test fails, it does not hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod backend;
mod client;
pub mod kube;
mod netns;
mod peers;
mod process;
mod tls;

pub use backend::Backend;
pub use client::{ask, ask_from, connect, connect_from, open, read_line};
pub use netns::{Keepalived, Lan, LanHost, Netns, Prober, PyBackend, Sample};
pub use peers::{Haproxy, free_port};
pub use process::{Gatehouse, TempDir, field};
pub use tls::{
    Curl, Handshake, KeyType, SClient, TestCa, TestCert, TlsBackend, TlsInfo, TlsStream,
    client_hello_bytes, cn_of, curl_get, finish_handshake, s_client, send_hello_slowly, tls_ask,
    tls_connect,
};
