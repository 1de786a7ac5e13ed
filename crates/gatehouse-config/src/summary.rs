//! The short summary `gatehouse check` prints: what would be served.

use std::fmt::Write as _;

use crate::types::{Config, HealthCheckKind, format_duration};

impl Config {
    /// Listeners, backends and health checks, as a few aligned lines.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "listeners ({}):", self.listeners.len());
        for l in &self.listeners {
            let _ = writeln!(
                out,
                "  {:<24} {} {:<22} -> {:<16} max {} conns, idle {}",
                l.name,
                l.protocol,
                l.bind.to_string(),
                l.backend,
                l.max_connections,
                format_duration(l.idle_timeout)
            );
        }
        let _ = writeln!(out, "backends ({}):", self.backends.len());
        for b in self.backends.values() {
            let endpoints: Vec<String> = b
                .endpoints
                .iter()
                .map(|e| {
                    if e.weight == 1 {
                        e.target.to_string()
                    } else {
                        format!("{} w{}", e.target, e.weight)
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "  {:<24} {} [{}]",
                b.name,
                b.balance,
                endpoints.join(", ")
            );
            let health = match &b.health_check {
                None => "passive only".to_owned(),
                Some(h) => {
                    let probe = match &h.kind {
                        HealthCheckKind::Tcp => "TCP connect".to_owned(),
                        HealthCheckKind::Http {
                            path,
                            expect_status,
                            ..
                        } => format!(
                            "HTTP GET {path} expecting {}-{}",
                            expect_status.start(),
                            expect_status.end()
                        ),
                    };
                    format!(
                        "{probe} every {} (timeout {}, rise {}, fall {})",
                        format_duration(h.interval),
                        format_duration(h.timeout),
                        h.rise,
                        h.fall
                    )
                }
            };
            let passive = if b.passive.max_fails == 0 {
                "no passive ejection".to_owned()
            } else {
                format!(
                    "eject for {} after {} failed connect{}",
                    format_duration(b.passive.fail_timeout),
                    b.passive.max_fails,
                    if b.passive.max_fails == 1 { "" } else { "s" }
                )
            };
            let _ = writeln!(
                out,
                "  {:<24} health: {health}; {passive}; connect timeout {}, {} retr{}",
                "",
                format_duration(b.connect_timeout),
                b.retries,
                if b.retries == 1 { "y" } else { "ies" }
            );
        }
        out
    }
}
