//! The short summary `gatehouse check` prints: what would be served.

use std::fmt::Write as _;

use crate::types::{
    BackendVerify, Config, HeaderModifier, HealthCheckKind, HttpFilter, HttpMatch, HttpRule,
    PathMatch, PathModifier, Redirect, TlsMode, format_duration,
};

impl Config {
    /// Listeners, backends and health checks, as a few aligned lines.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "listeners ({}):", self.listeners.len());
        for l in &self.listeners {
            let limits = match &l.udp {
                Some(u) => format!(
                    "max {} flows, flow idle {}",
                    u.max_flows,
                    format_duration(u.idle_timeout)
                ),
                None => format!(
                    "max {} conns, idle {}",
                    l.max_connections,
                    format_duration(l.idle_timeout)
                ),
            };
            let _ = writeln!(
                out,
                "  {:<24} {:<5} {:<22} -> {:<16} {limits}",
                l.name,
                l.protocol.to_string(),
                l.bind.to_string(),
                l.backends().join(", "),
            );
            if !l.access.is_open() {
                let _ = writeln!(out, "  {:<24} clients: {}", "", l.access);
            }
            if let Some(p) = &l.accept_proxy {
                let trusted: Vec<String> = p.trusted.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    out,
                    "  {:<24} PROXY headers accepted from {} (within {})",
                    "",
                    trusted.join(", "),
                    format_duration(p.timeout)
                );
            }
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
                    if !r.access.is_open() {
                        let _ = writeln!(out, "  {:<24}   clients: {}", "", r.access);
                    }
                }
            }
            if let Some(h) = &l.http {
                let _ = writeln!(
                    out,
                    "  {:<24} http: headers within {}, at most {} bytes and {} headers; keep-alive {}",
                    "",
                    format_duration(h.header_timeout),
                    h.max_header_bytes,
                    h.max_headers,
                    format_duration(h.keepalive_timeout)
                );
            }
            for r in &l.http_routes {
                let hosts: Vec<String> = r.hosts.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    out,
                    "  {:<24} route {:<16} {}",
                    "",
                    r.route,
                    hosts.join(", ")
                );
                if !r.access.is_open() {
                    let _ = writeln!(out, "  {:<24}   clients: {}", "", r.access);
                }
                for rule in r.rules.iter() {
                    let _ = writeln!(out, "  {:<24}   {}", "", rule_line(rule));
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
                        HealthCheckKind::Udp { send, expect } => format!(
                            "UDP datagram of {} bytes expecting a reply{}",
                            send.len(),
                            if expect.is_empty() {
                                String::new()
                            } else {
                                format!(" starting with {} given bytes", expect.len())
                            }
                        ),
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
                    let probe = match h.port {
                        Some(port) => format!("{probe} on port {port}"),
                        None => probe,
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
            if let Some(v) = b.proxy_protocol {
                let v = match v {
                    crate::types::ProxyProtocolVersion::V1 => "v1",
                    crate::types::ProxyProtocolVersion::V2 => "v2",
                };
                let _ = writeln!(out, "  {:<24} sends a PROXY protocol {v} header first", "");
            }
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
        for p in self.pools.values() {
            let ranges: Vec<String> = p
                .ranges
                .iter()
                .map(|r| format!("{}-{}", r.first, r.last))
                .collect();
            let _ = writeln!(out, "pool {} ({}):", p.name, ranges.join(", "));
            for (ip, owner) in &p.allocated {
                let _ = writeln!(out, "  {ip:<24} {owner}");
            }
        }
        for v in &self.vrrp {
            let interface = match &v.interface {
                crate::types::InterfaceMatch::Name(n) => n.clone(),
                crate::types::InterfaceMatch::Pattern(p) => {
                    format!("the first interface matching {p}")
                }
            };
            let addresses: Vec<String> = v
                .addresses
                .iter()
                .map(|(ip, p)| format!("{ip}/{p}"))
                .collect();
            let _ = writeln!(
                out,
                "vrrp {} on {interface}: VRID {}, priority {}, advert every {}{}{}",
                v.name,
                v.vrid,
                v.priority,
                format_duration(v.advert_interval),
                if v.preempt { ", preempts" } else { "" },
                if v.unicast_peers.is_empty() {
                    String::new()
                } else {
                    let peers: Vec<String> =
                        v.unicast_peers.iter().map(ToString::to_string).collect();
                    format!(", unicast to {}", peers.join(", "))
                }
            );
            let _ = writeln!(out, "  addresses {}", addresses.join(", "));
            for t in &v.track {
                let what = match &t.target {
                    crate::types::TrackTarget::Backend(b) => format!("backend {b}"),
                    crate::types::TrackTarget::Listener(l) => format!("listener {l}"),
                };
                let effect = match t.weight {
                    Some(w) => format!("priority -{w}"),
                    None => "gives the addresses up".to_owned(),
                };
                let _ = writeln!(out, "  when {what} is down: {effect}");
            }
        }
        if let Some(dns) = &self.dns {
            dns_summary(&mut out, dns);
        }
        if let Some(k) = &self.kubernetes {
            let _ = writeln!(
                out,
                "kubernetes: {}, namespaces {}; LoadBalancer Services of {}{} take addresses from {}; Gateways of class `{}`; endpoints: {}; status written by {}",
                k.kubeconfig.as_ref().map_or(
                    "$KUBECONFIG or ~/.kube/config, else in-cluster credentials".to_owned(),
                    |p| format!("kubeconfig {}", p.display())
                ),
                if k.namespaces.is_empty() {
                    "all".to_owned()
                } else {
                    k.namespaces.join(", ")
                },
                k.load_balancer_class
                    .as_ref()
                    .map_or("no class".to_owned(), |c| format!("class `{c}`")),
                k.label_selector
                    .as_ref()
                    .map(|s| format!(" with labels `{s}`"))
                    .unwrap_or_default(),
                k.pool
                    .as_ref()
                    .map_or("no pool".to_owned(), |p| format!("pool `{p}`")),
                k.gateway_class_name,
                match k.endpoints {
                    crate::types::EndpointsMode::Pods => "pod addresses",
                    crate::types::EndpointsMode::NodePorts => "node ports",
                },
                k.status_instance
                    .as_ref()
                    .map_or("this node".to_owned(), |i| format!(
                        "the master of VRRP instance `{i}`"
                    )),
            );
        }
        if let Some(admin) = &self.admin {
            let _ = writeln!(
                out,
                "admin on http://{}: /healthz /readyz /metrics /status /observe and the status page{}",
                admin.listen,
                if admin.token.is_some() {
                    "; a bearer token is required (not for /healthz)"
                } else {
                    ""
                }
            );
        }
        out
    }
}

/// The DNS part of the summary: where it answers, each zone's records (automatic ones with
/// the listener they follow), forwarding.
fn dns_summary(out: &mut String, dns: &crate::types::DnsConfig) {
    use crate::types::{RecordData, RecordSource};
    let listen: Vec<String> = dns.listen.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "dns on {} (UDP and TCP):", listen.join(", "));
    for z in &dns.zones {
        let _ = writeln!(
            out,
            "  zone {:<19} ttl {}s, {} record{}, NS {}",
            z.name,
            z.ttl,
            z.records.len(),
            if z.records.len() == 1 { "" } else { "s" },
            z.ns.join(", ")
        );
        for r in &z.records {
            let data = match &r.data {
                RecordData::A(ip) => format!("A {ip}"),
                RecordData::Aaaa(ip) => format!("AAAA {ip}"),
                RecordData::Cname(t) => format!("CNAME {t}"),
                RecordData::Txt(t) => format!("TXT {:?}", t.concat()),
                RecordData::Srv {
                    priority,
                    weight,
                    port,
                    target,
                } => format!("SRV {priority} {weight} {port} {target}"),
                RecordData::Ptr(t) => format!("PTR {t}"),
            };
            let source = match &r.source {
                RecordSource::Static => String::new(),
                RecordSource::Auto { listener, backends } if backends.is_empty() => {
                    format!(" (auto: {listener}, always given: no backend behind it)")
                }
                RecordSource::Auto { listener, backends } => {
                    format!(
                        " (auto: {listener}, healthy if {} is up)",
                        backends.join(" or ")
                    )
                }
            };
            let _ = writeln!(out, "    {:<30} {:>5}s {data}{source}", r.name, r.ttl);
        }
    }
    for f in &dns.forward_zones {
        let to: Vec<String> = f.to.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  forward {} to {}", f.zone, to.join(", "));
    }
    if dns.forwarders.is_empty() {
        let _ = writeln!(out, "  other names: REFUSED (no forwarders)");
    } else {
        let to: Vec<String> = dns.forwarders.iter().map(ToString::to_string).collect();
        let allow: Vec<String> = dns
            .recursion_allow
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "  other names: forwarded to {} for {} (cache {})",
            to.join(", "),
            allow.join(", "),
            dns.cache_size
        );
    }
}

impl HttpRule {
    /// The rule on one line, as `check` prints it (`PathPrefix /api -> app (w1)`).
    pub fn describe(&self) -> String {
        rule_line(self)
    }
}

/// One HTTP rule on one line: `PathPrefix /api, GET, 2 headers -> app (w1), api2 (w3)`, or
/// `-> redirect 301 https://<host><path>`, then what its other filters and timeouts do.
fn rule_line(rule: &HttpRule) -> String {
    let matches = if rule.matches.is_empty() {
        "PathPrefix /".to_owned()
    } else {
        let each: Vec<String> = rule.matches.iter().map(match_text).collect();
        each.join(" | ")
    };
    let redirect = rule.filters.iter().find_map(|f| match f {
        HttpFilter::RequestRedirect(r) => Some(r),
        _ => None,
    });
    let target = match redirect {
        Some(r) => redirect_text(r),
        None if rule.backends.is_empty() => "500 (no backends)".to_owned(),
        None => {
            let each: Vec<String> = rule
                .backends
                .iter()
                .map(|b| format!("{} (w{})", b.backend, b.weight))
                .collect();
            each.join(", ")
        }
    };
    let mut line = format!("{matches} -> {target}");
    for f in &rule.filters {
        match f {
            HttpFilter::RequestRedirect(_) => {}
            HttpFilter::UrlRewrite(u) => {
                line.push_str("; rewrite");
                if let Some(h) = &u.hostname {
                    let _ = write!(line, " host {h}");
                }
                match &u.path {
                    Some(PathModifier::ReplaceFullPath(p)) => {
                        let _ = write!(line, " path {p}");
                    }
                    Some(PathModifier::ReplacePrefixMatch(p)) => {
                        let _ = write!(line, " prefix to {p:?}");
                    }
                    None => {}
                }
            }
            HttpFilter::RequestHeaderModifier(m) => {
                let _ = write!(line, "; request headers {}", modifier_text(m));
            }
            HttpFilter::ResponseHeaderModifier(m) => {
                let _ = write!(line, "; response headers {}", modifier_text(m));
            }
        }
    }
    if let Some(t) = rule.timeouts.request {
        let _ = write!(line, "; request timeout {}", format_duration(t));
    }
    if let Some(t) = rule.timeouts.backend_request {
        let _ = write!(line, "; backend timeout {}", format_duration(t));
    }
    line
}

fn match_text(m: &HttpMatch) -> String {
    let mut parts = vec![match &m.path {
        PathMatch::Exact(p) => format!("Exact {p}"),
        PathMatch::Prefix(p) => format!("PathPrefix {p}"),
        PathMatch::Regex(r) => format!("RegularExpression {r}"),
    }];
    if let Some(method) = &m.method {
        parts.push(method.clone());
    }
    for (n, what) in [(m.headers.len(), "header"), (m.query.len(), "query param")] {
        if n > 0 {
            parts.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
        }
    }
    parts.join(", ")
}

/// The `Location` a redirect builds; `<...>` stands for what the request's own URL gives.
fn redirect_text(r: &Redirect) -> String {
    let scheme = r.scheme.as_deref().unwrap_or("<scheme>");
    let host = r.hostname.as_deref().unwrap_or("<host>");
    let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
    let path = match &r.path {
        None => "<path>".to_owned(),
        Some(PathModifier::ReplaceFullPath(p)) => p.clone(),
        Some(PathModifier::ReplacePrefixMatch(p)) => format!("{p}<rest>"),
    };
    format!("redirect {} {scheme}://{host}{port}{path}", r.status)
}

fn modifier_text(m: &HeaderModifier) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (m.set.len(), "set"),
        (m.add.len(), "add"),
        (m.remove.len(), "remove"),
    ] {
        if n > 0 {
            parts.push(format!("{what} {n}"));
        }
    }
    if parts.is_empty() {
        "unchanged".to_owned()
    } else {
        parts.join(", ")
    }
}
