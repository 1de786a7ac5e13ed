//! Active health checks: every `interval`, probe every endpoint of a pool (TCP connect, a TLS
//! handshake, an HTTP GET expecting a status range, or a UDP datagram expecting a reply);
//! `fall` consecutive failures take an endpoint down, `rise` consecutive successes bring it
//! back. A check with a `port` probes that port of the endpoint's address instead of the
//! endpoint's own (a UDP service checked through its TCP side, say).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_config::{HealthCheck, HealthCheckKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bind::{connect_udp, readable_or_error};
use crate::front::wire_version;
use crate::pool::{Endpoint, Pool};
use crate::proxy_protocol::encode_local;
use crate::upstream::probe_tls;

/// Rise/fall bookkeeping for one endpoint. Pure, so the thresholds are tested without sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCounter {
    up: bool,
    streak: u32,
}

impl HealthCounter {
    /// A counter for an endpoint that starts up (endpoints are trusted until a check fails).
    pub fn new_up() -> Self {
        HealthCounter {
            up: true,
            streak: 0,
        }
    }

    /// Records one probe result; returns the new state when it changes.
    pub fn observe(&mut self, success: bool, rise: u32, fall: u32) -> Option<bool> {
        if success == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { fall } else { rise };
        if self.streak >= needed {
            self.up = success;
            self.streak = 0;
            return Some(success);
        }
        None
    }
}

/// Probes every endpoint of `pool` until `stop`.
pub(crate) async fn run(pool: Arc<Pool>, stop: CancellationToken) {
    let Some(check) = pool.spec().health_check.clone() else {
        return;
    };
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut probes = JoinSet::new();
        for endpoint in pool.endpoints() {
            let check = check.clone();
            let pool = Arc::clone(&pool);
            probes.spawn(async move {
                let sni = match &check.kind {
                    HealthCheckKind::Tls { server_name } => Some(server_name.as_deref()),
                    _ => None,
                };
                // A backend that expects a PROXY header gets one without addresses.
                let preamble = pool
                    .spec()
                    .proxy_protocol
                    .map(|v| encode_local(wire_version(v)));
                let target = probe_target(endpoint.addr, &check);
                let result = match sni {
                    Some(sni) => {
                        let tls = probe_tls(&pool, &endpoint, target, sni, check.timeout).await;
                        on_port(tls, target, &check)
                    }
                    None => probe_with(endpoint.addr, &check, preamble.as_deref()).await,
                };
                (endpoint, result)
            });
        }
        loop {
            let joined = tokio::select! {
                () = stop.cancelled() => return,
                joined = probes.join_next() => joined,
            };
            let Some(joined) = joined else { break };
            if let Ok((endpoint, result)) = joined {
                record(&pool, &endpoint, &check, result);
            }
        }
    }
}

fn record(pool: &Pool, endpoint: &Endpoint, check: &HealthCheck, result: Result<(), String>) {
    if result.is_ok() {
        endpoint.clear_ejection();
    }
    let change = match endpoint.counter.lock() {
        Ok(mut counter) => counter.observe(result.is_ok(), check.rise, check.fall),
        Err(_) => None,
    };
    match (change, result) {
        (Some(true), _) => {
            endpoint.set_up(true);
            tracing::info!(
                backend = pool.name(),
                endpoint = %endpoint.addr,
                rise = check.rise,
                "endpoint up: health check passed {} times in a row",
                check.rise
            );
        }
        (Some(false), Err(reason)) => {
            endpoint.set_up(false);
            tracing::warn!(
                backend = pool.name(),
                endpoint = %endpoint.addr,
                fall = check.fall,
                reason = %reason,
                "endpoint down: health check failed {} times in a row",
                check.fall
            );
        }
        (None, Err(reason)) => {
            tracing::debug!(backend = pool.name(), endpoint = %endpoint.addr, reason = %reason, "health check failed");
        }
        _ => {}
    }
}

/// One TCP, HTTP or UDP probe of the endpoint at `addr` (of `check.port` on its address, when
/// set); `Err` says why it failed. (A TLS probe needs the pool's TLS settings, so the checker
/// runs it through the pool instead.)
pub async fn probe(addr: SocketAddr, check: &HealthCheck) -> Result<(), String> {
    probe_with(addr, check, None).await
}

/// [`probe`], writing `preamble` (a PROXY header) first on a TCP or HTTP probe.
async fn probe_with(
    addr: SocketAddr,
    check: &HealthCheck,
    preamble: Option<&[u8]>,
) -> Result<(), String> {
    let target = probe_target(addr, check);
    let (attempt, silence) = match &check.kind {
        HealthCheckKind::Udp { send, expect } => (
            tokio::time::timeout(check.timeout, probe_udp(target, send, expect)).await,
            "no reply",
        ),
        kind => (
            tokio::time::timeout(check.timeout, probe_inner(target, kind, preamble)).await,
            "no answer",
        ),
    };
    let result = attempt.unwrap_or_else(|_| Err(format!("{silence} within {:?}", check.timeout)));
    on_port(result, target, check)
}

/// Where a check probes the endpoint at `addr`.
fn probe_target(addr: SocketAddr, check: &HealthCheck) -> SocketAddr {
    check
        .port
        .map_or(addr, |port| SocketAddr::new(addr.ip(), port))
}

/// Names the probed address in a failure when it is not the endpoint's own (which the log line
/// names already).
fn on_port(
    result: Result<(), String>,
    target: SocketAddr,
    check: &HealthCheck,
) -> Result<(), String> {
    match check.port {
        Some(_) => result.map_err(|e| format!("{target}: {e}")),
        None => result,
    }
}

/// A TCP connect, and for HTTP a GET whose status must be in range.
async fn probe_inner(
    addr: SocketAddr,
    kind: &HealthCheckKind,
    preamble: Option<&[u8]>,
) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if let Some(bytes) = preamble {
        stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("sending the PROXY header: {e}"))?;
    }
    let (path, host, expect_status) = match kind {
        // (UDP never gets here: `probe` sends it to `probe_udp`.)
        HealthCheckKind::Tcp | HealthCheckKind::Tls { .. } | HealthCheckKind::Udp { .. } => {
            return Ok(());
        }
        HealthCheckKind::Http {
            path,
            host,
            expect_status,
        } => (path, host, expect_status),
    };
    let host = host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gatehouse-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = read_status(&mut stream).await?;
    if expect_status.contains(&status) {
        Ok(())
    } else {
        Err(format!(
            "status {status}, expected {}-{}",
            expect_status.start(),
            expect_status.end()
        ))
    }
}

/// Sends `send` to `addr` from a connected socket and waits for one reply starting with
/// `expect` (the caller bounds the wait). The socket being connected, an ICMP "port
/// unreachable" comes back as `ECONNREFUSED`.
async fn probe_udp(addr: SocketAddr, send: &[u8], expect: &[u8]) -> Result<(), String> {
    let explain = |step: &str, e: std::io::Error| {
        if e.kind() == ErrorKind::ConnectionRefused {
            "port unreachable (ICMP): nothing listens on this UDP port".to_owned()
        } else {
            format!("{step}: {e}")
        }
    };
    let socket = connect_udp(addr).map_err(|e| explain("socket", e))?;
    socket.send(send).await.map_err(|e| explain("send", e))?;
    // Only the start of the reply matters; the kernel discards the rest of a longer one.
    let mut buf = vec![0u8; expect.len().max(64)];
    let n = loop {
        readable_or_error(&socket)
            .await
            .map_err(|e| explain("receive", e))?;
        match socket.try_recv(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(explain("receive", e)),
        }
    };
    let reply = &buf[..n];
    if reply.starts_with(expect) {
        Ok(())
    } else {
        Err(format!(
            "reply \"{}\" does not start with \"{}\"",
            reply.escape_ascii(),
            expect.escape_ascii()
        ))
    }
}

/// Reads just enough of a response to get the status code from `HTTP/1.x NNN`.
async fn read_status(stream: &mut TcpStream) -> Result<u16, String> {
    let mut buf = [0u8; 512];
    let mut len = 0;
    loop {
        let n = stream
            .read(&mut buf[len..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].contains(&b'\n') || len == buf.len() {
            break;
        }
    }
    parse_status_line(&buf[..len])
}

/// Extracts the status from the first line of an HTTP/1 response.
pub fn parse_status_line(head: &[u8]) -> Result<u16, String> {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = line.split_ascii_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| format!("bad status line `{}`", line.trim())),
        _ if head.is_empty() => Err("connection closed before a response".to_owned()),
        _ => Err(format!(
            "not an HTTP response: `{}`",
            line.trim().chars().take(40).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_thresholds() {
        let mut c = HealthCounter::new_up();
        // fall = 3: two failures are not enough, and a success in between resets the streak.
        assert_eq!(c.observe(false, 2, 3), None);
        assert_eq!(c.observe(false, 2, 3), None);
        assert_eq!(c.observe(true, 2, 3), None);
        assert_eq!(c.observe(false, 2, 3), None);
        assert_eq!(c.observe(false, 2, 3), None);
        assert_eq!(c.observe(false, 2, 3), Some(false));
        // Down: further failures change nothing; rise = 2 successes bring it up.
        assert_eq!(c.observe(false, 2, 3), None);
        assert_eq!(c.observe(true, 2, 3), None);
        assert_eq!(c.observe(true, 2, 3), Some(true));
        assert_eq!(c.observe(true, 2, 3), None);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\r\n"), Ok(204));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 Busy\r\n\r\n"), Ok(503));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 999 x\r\n").is_err());
        assert!(parse_status_line(b"").is_err());
    }
}
