//! Compiling what a listener knows about its clients and how it talks to them besides TCP:
//! access lists (`allow`, `deny`), PROXY protocol (accepted by listeners, sent by backends),
//! UDP flow settings, and the UDP side of health checks.

use std::time::Duration;

use crate::compile::{Compiler, pos};
use crate::model::{RawAcceptProxy, RawHealthCheck, RawListener, RawUdpSettings, S, Scalar};
use crate::parse::parse_cidr;
use crate::types::*;

/// Default limit on receiving a whole PROXY header.
pub const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(5);

impl Compiler {
    /// Parses a list of networks; bad entries are reported and left out.
    fn cidrs(&mut self, list: &[S<String>], what: &str) -> Vec<Cidr> {
        let mut out = Vec::new();
        for item in list {
            match parse_cidr(&item.value) {
                Ok(c) => out.push(c),
                Err(msg) => {
                    self.error(pos(item), msg).hint(format!(
                        "`{what}` lists networks such as `192.168.1.0/24`, `2001:db8::/32` or single addresses such as `10.0.0.5`"
                    ));
                }
            }
        }
        out
    }

    /// `allow` and `deny` of a listener, route or forward.
    pub(crate) fn access(&mut self, allow: &[S<String>], deny: &[S<String>]) -> Access {
        Access {
            allow: self.cidrs(allow, "allow"),
            deny: self.cidrs(deny, "deny"),
        }
    }

    /// A listener's `proxyProtocol`: whom to accept PROXY headers from.
    pub(crate) fn accept_proxy(
        &mut self,
        raw: &RawListener,
        protocol: Option<Protocol>,
    ) -> Option<AcceptProxy> {
        let p: &S<RawAcceptProxy> = raw.proxy_protocol.as_ref()?;
        if protocol == Some(Protocol::Udp) {
            self.error(pos(p), "UDP listeners do not accept PROXY headers")
                .hint("PROXY protocol is read at the start of a TCP connection; remove this key");
            return None;
        }
        if p.value.trusted_sources.is_empty() {
            self.error(pos(p), "`proxyProtocol` has no `trustedSources`")
                .hint("list the addresses allowed to send PROXY headers (a tunnel, a front load balancer), e.g. `trustedSources: [10.0.0.5]`; from any other source a header is refused");
        }
        let trusted = self.cidrs(&p.value.trusted_sources, "trustedSources");
        let timeout = self.duration(
            &p.value.timeout,
            DEFAULT_PROXY_TIMEOUT,
            Duration::from_millis(1),
            "timeout",
        );
        Some(AcceptProxy { trusted, timeout })
    }

    /// A UDP listener's `udp`; `None` (and an error if the key is there) for other protocols.
    pub(crate) fn listener_udp(
        &mut self,
        raw: &RawListener,
        protocol: Option<Protocol>,
    ) -> Option<UdpSettings> {
        let udp: Option<&S<RawUdpSettings>> = raw.udp.as_ref();
        if protocol != Some(Protocol::Udp) {
            if let (Some(u), Some(_)) = (udp, protocol) {
                self.error(pos(u), "`udp` only applies to UDP listeners")
                    .hint("add `protocol: UDP` to the listener, or remove this key");
            }
            return None;
        }
        for (key, present, instead) in [
            (
                "maxConnections",
                raw.max_connections.as_ref().map(pos),
                "udp.maxFlows",
            ),
            (
                "idleTimeout",
                raw.idle_timeout.as_ref().map(pos),
                "udp.idleTimeout",
            ),
        ] {
            if let Some(at) = present {
                self.error(at, format!("`{key}` does not apply to UDP listeners"))
                    .hint(format!("UDP has flows, not connections: use `{instead}`"));
            }
        }
        if let Some(t) = &raw.tls {
            self.error(pos(t), "`tls` does not apply to UDP listeners")
                .hint("remove this key (DTLS and QUIC are passed through as datagrams)");
        }
        if let Some(h) = &raw.hostname {
            self.error(pos(h), "`hostname` does not apply to UDP listeners")
                .hint("a UDP listener sends every datagram to its `backend`: remove this key");
        }
        let d = UdpSettings::default();
        let Some(u) = udp else { return Some(d) };
        let idle_timeout = self.duration(
            &u.value.idle_timeout,
            d.idle_timeout,
            Duration::from_millis(1),
            "idleTimeout",
        );
        let max_flows = u
            .value
            .max_flows
            .as_ref()
            .and_then(|m| self.int_in(m, 1, 1_000_000, "maxFlows"))
            .map_or(d.max_flows, |v| v as usize);
        Some(UdpSettings {
            idle_timeout,
            max_flows,
        })
    }

    /// A backend's `proxyProtocol`: `v1` or `v2` (also `1`, `2`).
    pub(crate) fn proxy_version(&mut self, v: &Option<S<Scalar>>) -> Option<ProxyProtocolVersion> {
        let v = v.as_ref()?;
        match v.value.0.trim() {
            "v1" | "1" => Some(ProxyProtocolVersion::V1),
            "v2" | "2" => Some(ProxyProtocolVersion::V2),
            other => {
                self.error(pos(v), format!("`{other}` is not a PROXY protocol version"))
                    .hint("write `v1` (text) or `v2` (binary; carries the TLS server name)");
                None
            }
        }
    }

    /// The UDP probe of a health check: `send`/`sendHex` and `expect`/`expectHex`.
    pub(crate) fn udp_probe(&mut self, raw: &RawHealthCheck, at: crate::Pos) -> HealthCheckKind {
        let mut bytes = |text: &Option<S<String>>, hex: &Option<S<String>>, what: &str| match (
            text, hex,
        ) {
            (Some(t), Some(_)) => {
                self.error(pos(t), format!("give `{what}` or `{what}Hex`, not both"));
                Vec::new()
            }
            (Some(t), None) => t.value.as_bytes().to_vec(),
            (None, Some(h)) => match parse_hex(&h.value) {
                Some(b) => b,
                None => {
                    self.error(pos(h), format!("`{}` is not hexadecimal bytes", h.value))
                            .hint("write pairs of hex digits, optionally separated by spaces: `de ad be ef`");
                    Vec::new()
                }
            },
            (None, None) => Vec::new(),
        };
        let send = bytes(&raw.send, &raw.send_hex, "send");
        let expect = bytes(&raw.expect, &raw.expect_hex, "expect");
        if raw.send.is_none() && raw.send_hex.is_none() {
            self.error(at, "a UDP health check needs a payload to send")
                .hint("set `send` (text) or `sendHex`, and `expect` with the start of the reply; or check the service's TCP side with `protocol: TCP` and `port`");
        }
        HealthCheckKind::Udp { send, expect }
    }

    /// Keys that only a UDP check takes, found on another kind: reported.
    pub(crate) fn udp_only_keys(&mut self, raw: &RawHealthCheck) {
        for (key, present) in [
            ("send", raw.send.as_ref().map(pos)),
            ("sendHex", raw.send_hex.as_ref().map(pos)),
            ("expect", raw.expect.as_ref().map(pos)),
            ("expectHex", raw.expect_hex.as_ref().map(pos)),
        ] {
            if let Some(at) = present {
                self.error(at, format!("`{key}` only applies to UDP health checks"))
                    .hint("add `protocol: UDP` to the health check, or remove this key");
            }
        }
    }
}

/// `de ad be ef` or `deadbeef` as bytes.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}
