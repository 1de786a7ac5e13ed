//! End-to-end tests: the real `gatehouse` binary, real sockets on 127.0.0.0/8, port 0.
// A test crate: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod balancing;
mod cli;
mod demo;
mod dns;
mod examples;
mod health;
mod http;
mod http_hardening;
mod kubernetes;
mod lifecycle;
mod proxy_protocol;
mod reload;
mod seeds;
mod tls;
mod trace;
mod udp;
mod vrrp;

use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// Generous upper bound for anything the tests wait for (slow CI machines).
pub const WAIT: Duration = Duration::from_secs(10);

/// A config with one gateway listener on 127.0.0.1:0 named `t/in`, in front of backend
/// `pool` with the given endpoints. `backend_extra` is YAML appended right after the endpoint
/// list: more endpoint lines (indented 6, for forms `endpoints` cannot write) and/or backend
/// keys (indented 4).
pub fn one_listener(endpoints: &[std::net::SocketAddr], backend_extra: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("      - {e}\n")).collect();
    format!(
        "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - name: in
        port: 0
        backend: pool
backends:
  - name: pool
    endpoints:
{}{backend_extra}",
        list.concat()
    )
}

/// One test with network namespaces at a time: they measure takeover times and run several
/// gateways each, which other such tests running at the same time on a small machine would
/// distort.
pub fn netns_serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Blocking sleep (tests run on plain threads).
#[allow(clippy::disallowed_methods)]
pub fn sleep(d: Duration) {
    std::thread::sleep(d);
}
