//! Active health checks: every `interval`, probe every endpoint of a pool (TCP connect, a TLS
//! handshake, or an HTTP GET expecting a status range); `fall` consecutive failures take an endpoint down,
//! `rise` consecutive successes bring it back.

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_config::{HealthCheck, HealthCheckKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::pool::{Endpoint, Pool};
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
                let result = match &check.kind {
                    HealthCheckKind::Tls { server_name } => {
                        probe_tls(&pool, &endpoint, server_name.as_deref(), check.timeout).await
                    }
                    _ => probe(endpoint.addr, &check).await,
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

/// One TCP or HTTP probe of one endpoint; `Err` says why it failed. (A TLS probe needs the
/// pool's TLS settings, so the checker runs it through the pool instead.)
pub async fn probe(addr: SocketAddr, check: &HealthCheck) -> Result<(), String> {
    match tokio::time::timeout(check.timeout, probe_inner(addr, &check.kind)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}

async fn probe_inner(addr: SocketAddr, kind: &HealthCheckKind) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (path, host, expect_status) = match kind {
        HealthCheckKind::Tcp | HealthCheckKind::Tls { .. } => return Ok(()),
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
