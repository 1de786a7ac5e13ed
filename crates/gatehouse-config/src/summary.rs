//! The short summary `gatehouse check` prints: what would be served.

use std::fmt::Write as _;

use crate::types::{BackendVerify, Config, HealthCheckKind, TlsMode, format_duration};

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
                l.backends().join(", "),
                l.max_connections,
                format_duration(l.idle_timeout)
            );
            if let Some(tls) = &l.tls {
                let mode = match &tls.mode {
                    TlsMode::Passthrough => "passthrough (the backend terminates)".to_owned(),
                    TlsMode::Terminate(t) => {
                        let alpn = if t.alpn.is_empty() {
                            "no ALPN".to_owned()
                        } else {
                            format!("ALPN {}", t.alpn.join(", "))
                        };
                        let versions = if t.tls13_only {
                            "TLS 1.3"
                        } else {
                            "TLS 1.2-1.3"
                        };
                        format!("terminate, {versions}, {alpn}")
                    }
                };
                let host = l
                    .hostname
                    .as_ref()
                    .map_or("any name".to_owned(), |h| h.to_string());
                let _ = writeln!(out, "  {:<24} tls: {mode}; hostname {host}", "");
                if let TlsMode::Terminate(t) = &tls.mode {
                    for (i, c) in t.certificates.iter().enumerate() {
                        let names = c.loaded.names();
                        let names = if names.is_empty() {
                            "no DNS names".to_owned()
                        } else {
                            names.join(", ")
                        };
                        let _ = writeln!(
                            out,
                            "  {:<24} certificate {} ({}{}): {names}",
                            "",
                            c.cert_path.display(),
                            c.loaded.key_type(),
                            if i == 0 { ", default" } else { "" }
                        );
                    }
                }
                for r in &l.routes {
                    let hosts: Vec<String> = r.hosts.iter().map(ToString::to_string).collect();
                    let _ = writeln!(
                        out,
                        "  {:<24} route {:<16} {} -> {}",
                        "",
                        r.route,
                        hosts.join(", "),
                        r.backend
                    );
                }
            }
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
                        HealthCheckKind::Tls { server_name } => match server_name {
                            Some(n) => format!("TLS handshake (SNI {n})"),
                            None => "TLS handshake".to_owned(),
                        },
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
            if let Some(tls) = &b.tls {
                let verify = match &tls.verify {
                    BackendVerify::Ca { path, .. } => {
                        format!("verified against {}", path.display())
                    }
                    BackendVerify::Insecure => "NOT verified (insecureSkipVerify)".to_owned(),
                };
                let name = tls
                    .server_name
                    .as_ref()
                    .map_or("the endpoint's name".to_owned(), |n| format!("`{n}`"));
                let _ = writeln!(
                    out,
                    "  {:<24} tls to endpoints: {verify}, server name {name}",
                    ""
                );
            }
        }
        out
    }
}
