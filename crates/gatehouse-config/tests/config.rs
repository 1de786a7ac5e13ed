//! The config pipeline from the outside, as tables of YAML in -> expected outcome:
//! refused configs name the exact line and column (and say what is wrong and how to fix it),
//! accepted ones compile to the expected values, with the documented defaults. Also: `diff`,
//! the rendering of diagnostics, and every file in `examples/`.

// A test crate: a failed expectation should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_config::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The YAML of a table entry, written indented inside the Rust source: drops the first line
/// break and the common indentation, so that line 1 is the first line of YAML.
fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line.get(indent..).unwrap_or("").trim_end());
        out.push('\n');
    }
    out
}

/// Compiles YAML that must be accepted.
fn ok(yaml: &str) -> Loaded {
    match load_str("test.yaml", &dedent(yaml)) {
        Ok(loaded) => loaded,
        Err(d) => panic!("expected the config to compile, got:\n{d}\n--- yaml:\n{yaml}"),
    }
}

/// Compiles YAML that must be refused.
fn refused(yaml: &str) -> Diagnostics {
    match load_str("test.yaml", &dedent(yaml)) {
        Ok(loaded) => panic!(
            "expected errors, the config compiled:\n{}\n--- yaml:\n{yaml}",
            loaded.config.summary()
        ),
        Err(d) => d,
    }
}

fn first_error(d: &Diagnostics) -> &Diagnostic {
    d.items
        .iter()
        .find(|i| i.severity == Severity::Error)
        .expect("a refused config has at least one error")
}

fn at(d: &Diagnostic) -> (u64, u64) {
    (d.pos.line, d.pos.column)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn listener<'a>(c: &'a Config, name: &str) -> &'a Listener {
    c.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener `{name}` in\n{}", c.summary()))
}

fn backend<'a>(c: &'a Config, name: &str) -> &'a Backend {
    c.backends
        .get(name)
        .unwrap_or_else(|| panic!("no backend `{name}` in\n{}", c.summary()))
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

// ---------------------------------------------------------------------------------------------
// Refused configs: where, what, and how to fix it

/// A case's YAML: an HTTP listener `edge/web` on port 80, a backend `app`, and an HTTPRoute
/// `r` attached to the gateway, with the `rules:` given (written at the table's indentation,
/// items at column 7 once dedented). The first rule line is line 12.
macro_rules! http_rules {
    ($rules:literal) => {
        concat!(
            "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, protocol: HTTP}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
            routes:
              - name: r
                kind: HTTPRoute
                parentRefs: [edge]
                rules:",
            $rules
        )
    };
}

struct Bad {
    what: &'static str,
    yaml: &'static str,
    /// Line and column of the first error.
    at: (u64, u64),
    /// A part of its message.
    message: &'static str,
    /// A part of its hint, when it matters.
    hint: Option<&'static str>,
    /// Where the related note points (the first definition of a duplicate).
    related: Option<(u64, u64)>,
}

const BAD: &[Bad] = &[
    // --- the shape of the file (serde-saphyr) ---
    Bad {
        what: "unknown key, with a did-you-mean hint",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backnd: app
        ",
        at: (6, 9),
        message: "unknown key `backnd`",
        hint: Some("did you mean `backend`?"),
        related: None,
    },
    Bad {
        what: "unknown top-level key",
        yaml: "
            gateway:
              - name: edge
        ",
        at: (1, 1),
        message: "unknown key `gateway`",
        hint: Some("did you mean `gateways`?"),
        related: None,
    },
    Bad {
        what: "unknown key far from any known one lists the allowed keys",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                passive:
                  maxFails: 2
                  colour: blue
        ",
        at: (6, 7),
        message: "unknown key `colour`",
        hint: Some("the keys allowed here are: maxFails, failTimeout"),
        related: None,
    },
    Bad {
        what: "unknown key in the long form of an endpoint",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - address: 127.0.0.1:8080
                    wieght: 3
        ",
        at: (5, 9),
        message: "unknown key `wieght`",
        hint: Some("did you mean `weight`?"),
        related: None,
    },
    Bad {
        what: "unknown key in settings",
        yaml: "
            settings:
              drainTimout: 5s
        ",
        at: (2, 3),
        message: "unknown key `drainTimout`",
        hint: Some("did you mean `drainTimeout`?"),
        related: None,
    },
    Bad {
        what: "duplicate key",
        yaml: "
            backends:
              - name: app
                name: api
                endpoints: [127.0.0.1:8080]
        ",
        at: (3, 5),
        message: "duplicate key `name`",
        hint: Some("a key may appear once in each mapping"),
        related: None,
    },
    Bad {
        what: "missing required key",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    backend: app
        ",
        // serde-saphyr reports a missing key where the mapping ends: at its last key.
        at: (5, 9),
        message: "missing required key `port`",
        hint: Some("add `port:`"),
        related: None,
    },
    Bad {
        what: "a number where a whole number is expected",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80.5
                    backend: app
        ",
        at: (5, 15),
        message: "expected a whole number",
        hint: Some("a plain integer"),
        related: None,
    },
    Bad {
        what: "an empty section is not a list",
        yaml: "
            gateways:
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (1, 9),
        message: "expected a list here",
        hint: Some("`[]` for none"),
        related: None,
    },
    Bad {
        what: "an endpoint that is neither a string nor a mapping",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - [127.0.0.1, 8080]
        ",
        at: (4, 9),
        message: "expected \"host:port\" or a mapping",
        hint: None,
        related: None,
    },
    Bad {
        what: "YAML syntax error",
        yaml: "
            gateways:
              - name: edge
               listeners: []
        ",
        at: (3, 4),
        message: "did not find expected '-' indicator",
        hint: None,
        related: None,
    },
    // --- names ---
    Bad {
        what: "duplicate backend name",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
              - name: app
                endpoints: [127.0.0.1:8081]
        ",
        at: (4, 11),
        message: "backend `app` is defined twice",
        hint: Some("unique name"),
        related: Some((2, 11)),
    },
    Bad {
        what: "duplicate gateway name",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: a, port: 80, backend: app}
              - name: edge
                listeners:
                  - {name: b, port: 81, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (5, 11),
        message: "gateway `edge` is defined twice",
        hint: Some("unique name"),
        related: Some((2, 11)),
    },
    Bad {
        what: "duplicate listener name within a gateway",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backend: app
                  - name: web
                    port: 81
                    backend: app
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (7, 15),
        message: "gateway `edge` has two listeners named `web`",
        hint: Some("unique within a gateway"),
        related: Some((4, 15)),
    },
    Bad {
        what: "invalid name",
        yaml: "
            backends:
              - name: my app
                endpoints: [127.0.0.1:8080]
        ",
        at: (2, 11),
        message: "`my app` is not a valid backend name",
        hint: Some("letters, digits"),
        related: None,
    },
    Bad {
        what: "two forwards with the same name",
        yaml: "
            forwards:
              - name: redis
                listen: 127.0.0.1:16379
                to: 127.0.0.1:6379
              - name: redis
                listen: 127.0.0.1:16380
                to: 127.0.0.1:6380
        ",
        at: (5, 11),
        message: "two forwards are named `redis`",
        hint: Some("unique `name`"),
        related: Some((2, 11)),
    },
    // --- listeners ---
    Bad {
        what: "listener address that is not an IP",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    address: localhost
                    port: 80
                    backend: app
        ",
        at: (5, 18),
        message: "`localhost` is not an IP address",
        hint: Some("`127.0.0.1`"),
        related: None,
    },
    Bad {
        what: "listener address with a port",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    address: 127.0.0.1:80
                    port: 80
                    backend: app
        ",
        at: (5, 18),
        message: "has a port; a listener's address is an IP address only",
        hint: None,
        related: None,
    },
    Bad {
        what: "a gateway address listed twice",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1, 127.0.0.1]
                listeners:
                  - {name: web, port: 8080, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:9000]
        ",
        at: (5, 27),
        message: "listeners `edge/web` and `edge/web` both listen on TCP 127.0.0.1:8080",
        hint: None,
        related: Some((5, 27)),
    },
    Bad {
        what: "gateway address that is not an IP",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1, 127.0.0.256]
                listeners:
                  - {name: web, port: 80, backend: app}
        ",
        at: (3, 28),
        message: "`127.0.0.256` is not an IP address",
        hint: Some("`127.0.0.1` or `::1`"),
        related: None,
    },
    Bad {
        what: "out-of-range port",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 70000
                    backend: app
        ",
        at: (5, 15),
        message: "`70000` is not a port",
        hint: Some("1 to 65535"),
        related: None,
    },
    Bad {
        what: "negative port",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: -1
                    backend: app
        ",
        at: (5, 15),
        message: "`-1` is not a port",
        hint: None,
        related: None,
    },
    Bad {
        what: "a UDP listener takes flows, not connections",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: dns
                    port: 53
                    protocol: UDP
                    backend: app
                    maxConnections: 10
            backends:
              - name: app
                endpoints: [127.0.0.1:5353]
        ",
        at: (8, 25),
        message: "`maxConnections` does not apply to UDP listeners",
        hint: Some("use `udp.maxFlows`"),
        related: None,
    },
    Bad {
        what: "udp settings on a TCP listener",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backend: app
                    udp: {maxFlows: 10}
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (7, 14),
        message: "`udp` only applies to UDP listeners",
        hint: Some("add `protocol: UDP`"),
        related: None,
    },
    Bad {
        what: "a UDP listener without a backend",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: dns, port: 53, protocol: UDP}
        ",
        at: (4, 16),
        message: "listener `dns` has no `backend`",
        hint: None,
        related: None,
    },
    Bad {
        what: "a UDP listener cannot send PROXY headers to its backend",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: dns, port: 53, protocol: UDP, backend: app}
            backends:
              - name: app
                proxyProtocol: v2
                endpoints: [127.0.0.1:5353]
        ",
        at: (4, 27),
        message: "UDP listener `edge/dns` sends datagrams to backend `app`, which has `proxyProtocol`",
        hint: Some("TCP connections only"),
        related: None,
    },
    Bad {
        what: "a UDP listener does not accept PROXY headers",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: dns
                    port: 53
                    protocol: UDP
                    backend: app
                    proxyProtocol: {trustedSources: [10.0.0.1]}
            backends:
              - name: app
                endpoints: [127.0.0.1:5353]
        ",
        at: (8, 24),
        message: "UDP listeners do not accept PROXY headers",
        hint: None,
        related: None,
    },
    Bad {
        what: "a network with host bits set",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backend: app
                    allow: [10.0.0.0/8, 192.168.1.1/16]
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (7, 29),
        message: "`192.168.1.1/16` has host bits set: the network is `192.168.0.0/16`",
        hint: None,
        related: None,
    },
    Bad {
        what: "not a network",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backend: app
                    deny: [10.0.0.0/33]
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (7, 16),
        message: "the prefix length must be 0 to 32",
        hint: Some("`deny` lists networks"),
        related: None,
    },
    Bad {
        what: "PROXY protocol accepted from nobody",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backend: app
                    proxyProtocol: {timeout: 3s}
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (7, 24),
        message: "`proxyProtocol` has no `trustedSources`",
        hint: Some("from any other source a header is refused"),
        related: None,
    },
    Bad {
        what: "an unknown PROXY protocol version",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: app}
            backends:
              - name: app
                proxyProtocol: v3
                endpoints: [127.0.0.1:8080]
        ",
        at: (7, 20),
        message: "`v3` is not a PROXY protocol version",
        hint: Some("`v1`"),
        related: None,
    },
    Bad {
        what: "a UDP health check with nothing to send",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: dns, port: 53, protocol: UDP, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:5353]
                healthCheck: {protocol: UDP, expect: pong}
        ",
        at: (8, 18),
        message: "a UDP health check needs a payload to send",
        hint: None,
        related: None,
    },
    Bad {
        what: "a payload on a TCP health check",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck: {send: ping}
        ",
        at: (8, 25),
        message: "`send` only applies to UDP health checks",
        hint: None,
        related: None,
    },
    Bad {
        what: "bad hex payload",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: dns, port: 53, protocol: UDP, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:5353]
                healthCheck: {protocol: UDP, sendHex: abc}
        ",
        at: (8, 43),
        message: "`abc` is not hexadecimal bytes",
        hint: None,
        related: None,
    },
    Bad {
        what: "a static record that conflicts with an automatic one",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: web, port: 80, protocol: HTTP, hostname: app.home.arpa, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
            dns:
              listen: [127.0.0.1:5353]
              zones:
                - name: home.arpa
                  records:
                    - {name: app, type: A, value: 192.168.1.5}
        ",
        at: (13, 18),
        message: "static record `app.home.arpa` A conflicts with the automatic record for listener `edge/web`",
        hint: Some("remove the static record, or set `auto: false`"),
        related: Some((5, 27)),
    },
    Bad {
        what: "a CNAME beside other records",
        yaml: "
            dns:
              listen: [127.0.0.1:5353]
              zones:
                - name: home.arpa
                  records:
                    - {name: www, type: A, value: 192.168.1.5}
                    - {name: www, type: CNAME, value: nas}
        ",
        at: (7, 18),
        message: "`www.home.arpa` has a CNAME and other records",
        hint: Some("RFC 1034"),
        related: Some((6, 18)),
    },
    Bad {
        what: "a record outside its zone",
        yaml: "
            dns:
              listen: [127.0.0.1:5353]
              zones:
                - name: home.arpa
                  records:
                    - {name: nas.example.com., type: A, value: 192.168.1.5}
        ",
        at: (6, 18),
        message: "`nas.example.com` is not in zone `home.arpa`",
        hint: None,
        related: None,
    },
    Bad {
        what: "an A record with an IPv6 address",
        yaml: "
            dns:
              listen: [127.0.0.1:5353]
              zones:
                - name: home.arpa
                  records:
                    - {name: nas, type: A, value: \"fd00::5\"}
        ",
        at: (6, 39),
        message: "`fd00::5` is not an IPv4 address",
        hint: Some("use AAAA for IPv6"),
        related: None,
    },
    Bad {
        what: "an unknown record type",
        yaml: "
            dns:
              listen: [127.0.0.1:5353]
              zones:
                - name: home.arpa
                  records:
                    - {name: nas, type: MX, value: 10 mail}
        ",
        at: (6, 29),
        message: "`MX` is not a record type this version serves",
        hint: None,
        related: None,
    },
    Bad {
        what: "bad SRV data",
        yaml: "
            dns:
              listen: [127.0.0.1:5353]
              zones:
                - name: home.arpa
                  records:
                    - {name: _ldap._tcp, type: SRV, value: 389 ldap}
        ",
        at: (6, 48),
        message: "`389 ldap` is not SRV data",
        hint: Some("PRIORITY WEIGHT PORT TARGET"),
        related: None,
    },
    Bad {
        what: "a DNS server that listens nowhere",
        yaml: "
            dns:
              zones: [{name: home.arpa}]
        ",
        at: (2, 3),
        message: "`dns` has no `listen` addresses",
        hint: None,
        related: None,
    },
    Bad {
        what: "a forward zone inside a local zone",
        yaml: "
            dns:
              listen: [127.0.0.1:5353]
              zones: [{name: home.arpa}]
              forwardZones: [{zone: k8s.home.arpa, to: [127.0.0.1:5300]}]
        ",
        at: (4, 25),
        message: "forward zone `k8s.home.arpa` overlaps local zone `home.arpa`",
        hint: None,
        related: None,
    },
    Bad {
        what: "dnsName on an HTTP listener",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, protocol: HTTP, backend: app, dnsName: web.home.arpa}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (4, 70),
        message: "`dnsName` only applies to TCP and UDP listeners",
        hint: None,
        related: None,
    },
    Bad {
        what: "a TTL with a fraction of a second",
        yaml: "
            dns:
              listen: [127.0.0.1:5353]
              zones: [{name: home.arpa, ttl: 1.5s}]
        ",
        at: (3, 34),
        message: "`ttl` must be whole seconds",
        hint: None,
        related: None,
    },
    Bad {
        what: "two clusters' pools overlap",
        yaml: "
            pools:
              - {name: cluster-a, addresses: [10.0.10.0/24]}
              - {name: cluster-b, addresses: [10.0.10.200-10.0.11.50]}
        ",
        at: (3, 12),
        message: "pools `cluster-b` and `cluster-a` overlap (both hold 10.0.10.200)",
        hint: Some("its own range"),
        related: Some((2, 12)),
    },
    Bad {
        what: "an address pinned twice",
        yaml: "
            pools: [{name: lan, addresses: [192.168.1.60-192.168.1.70]}]
            gateways:
              - {name: plex, addresses: [pool:lan/192.168.1.62], listeners: [{name: web, port: 80, backend: app}]}
              - {name: jelly, addresses: [pool:lan/192.168.1.62], listeners: [{name: web, port: 80, backend: app}]}
            backends: [{name: app, endpoints: [127.0.0.1:8080]}]
        ",
        at: (4, 31),
        message: "192.168.1.62 is pinned twice: by `plex` and `jelly`",
        hint: None,
        related: Some((3, 30)),
    },
    Bad {
        what: "a pinned address outside its pool",
        yaml: "
            pools: [{name: lan, addresses: [192.168.1.60-192.168.1.70]}]
            gateways:
              - {name: plex, addresses: [pool:lan/192.168.1.99], listeners: [{name: web, port: 80, backend: app}]}
            backends: [{name: app, endpoints: [127.0.0.1:8080]}]
        ",
        at: (3, 30),
        message: "192.168.1.99 is not in pool `lan`",
        hint: None,
        related: None,
    },
    Bad {
        what: "a pool that runs out",
        yaml: "
            pools: [{name: lan, addresses: [192.168.1.60]}]
            gateways:
              - {name: a, addresses: [pool:lan], listeners: [{name: web, port: 80, backend: app}]}
              - {name: b, addresses: [pool:lan], listeners: [{name: web, port: 80, backend: app}]}
            backends: [{name: app, endpoints: [127.0.0.1:8080]}]
        ",
        at: (4, 27),
        message: "pool `lan` has no free address left for `b`",
        hint: None,
        related: None,
    },
    Bad {
        what: "a VRRP instance with both families",
        yaml: "
            vrrp:
              - {name: lan, interface: eth0, vrid: 51, addresses: [192.168.1.250/24, \"fd00::250/64\"]}
        ",
        at: (2, 12),
        message: "VRRP instance `lan` mixes IPv4 and IPv6 addresses",
        hint: Some("make a second instance"),
        related: None,
    },
    Bad {
        what: "a VRID out of range",
        yaml: "
            vrrp:
              - {name: lan, interface: eth0, vrid: 300, addresses: [192.168.1.250/24]}
        ",
        at: (2, 40),
        message: "`vrid` is 300, outside 1..=255",
        hint: None,
        related: None,
    },
    Bad {
        what: "an advertisement interval finer than centiseconds",
        yaml: "
            vrrp:
              - {name: lan, interface: eth0, vrid: 5, advertInterval: 15ms, addresses: [192.168.1.250/24]}
        ",
        at: (2, 59),
        message: "`advertInterval` is sent in centiseconds",
        hint: None,
        related: None,
    },
    Bad {
        what: "tracking a backend that does not exist",
        yaml: "
            vrrp:
              - name: lan
                interface: eth0
                vrid: 5
                addresses: [192.168.1.250/24]
                track: [{backend: web, weight: 50}]
        ",
        at: (6, 23),
        message: "VRRP instance `lan` refers to backend `web`, which is not defined",
        hint: None,
        related: None,
    },
    Bad {
        what: "a VRRP instance without an interface",
        yaml: "
            vrrp:
              - {name: lan, vrid: 5, addresses: [192.168.1.250/24]}
        ",
        at: (2, 12),
        message: "VRRP instance `lan` has no `interface`",
        hint: Some("interfacePattern"),
        related: None,
    },
    Bad {
        what: "protocol in the wrong case",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    protocol: tcp
                    backend: app
        ",
        at: (6, 19),
        message: "`tcp` is not a listener protocol",
        hint: Some("did you mean `TCP`?"),
        related: None,
    },
    Bad {
        what: "listener without a backend",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
        ",
        at: (4, 15),
        message: "listener `web` has no `backend`",
        hint: Some("`backend: NAME`"),
        related: None,
    },
    Bad {
        what: "two listeners on the same address, port and protocol",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 8080, backend: app}
              - name: side
                listeners:
                  - {name: b, address: 127.0.0.1, port: 8080, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:9000]
        ",
        at: (8, 45),
        message: "listeners `edge/a` and `side/b` both listen on TCP 127.0.0.1:8080",
        hint: Some("use another port"),
        related: Some((5, 25)),
    },
    Bad {
        what: "a wildcard listener overlaps a specific one on the same port",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: local
                    address: 127.0.0.1
                    port: 8080
                    backend: app
                  - name: all
                    address: 0.0.0.0
                    port: 8080
                    backend: app
            backends:
              - name: app
                endpoints: [127.0.0.1:9000]
        ",
        at: (10, 15),
        message: "listener `edge/all` on 0.0.0.0:8080 overlaps listener `edge/local` on 127.0.0.1:8080",
        hint: None,
        related: Some((6, 15)),
    },
    Bad {
        what: "maxConnections out of range",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backend: app
                    maxConnections: 0
            backends:
              - name: app
                endpoints: [127.0.0.1:9000]
        ",
        at: (7, 25),
        message: "`maxConnections` is 0, outside 1..=1000000",
        hint: Some("a whole number from 1 to 1000000"),
        related: None,
    },
    // --- durations ---
    Bad {
        what: "duration without a unit",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backend: app
                    idleTimeout: 30
            backends:
              - name: app
                endpoints: [127.0.0.1:9000]
        ",
        at: (7, 22),
        message: "the duration `30` has no unit",
        hint: Some("write `idleTimeout` as a number and a unit"),
        related: None,
    },
    Bad {
        what: "duration with an unknown unit",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                connectTimeout: 5 sec
        ",
        at: (4, 21),
        message: "`sec` is not a duration unit",
        hint: Some("`250ms`, `2s`, `5m`, `1h`"),
        related: None,
    },
    Bad {
        what: "duration below the minimum",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: app, idleTimeout: 0s}
            backends:
              - name: app
                endpoints: [127.0.0.1:9000]
        ",
        at: (4, 58),
        message: "`idleTimeout` must be at least 1ms",
        hint: None,
        related: None,
    },
    Bad {
        what: "settings: drainTimeout without a unit",
        yaml: "
            settings:
              drainTimeout: 30
        ",
        at: (2, 17),
        message: "the duration `30` has no unit",
        hint: Some("`drainTimeout`"),
        related: None,
    },
    // --- backends and endpoints ---
    Bad {
        what: "reference to a missing backend, with did-you-mean",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    backend: ap
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (6, 18),
        message: "listener `edge/web` refers to backend `ap`, which is not defined",
        hint: Some("did you mean `app`?"),
        related: None,
    },
    Bad {
        what: "reference to a missing backend, nothing close",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: database}
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
        ",
        at: (4, 40),
        message: "refers to backend `database`, which is not defined",
        hint: Some("defined backends: app"),
        related: None,
    },
    Bad {
        what: "unknown balance algorithm, with a hint",
        yaml: "
            backends:
              - name: app
                balance: RoundRobbin
                endpoints: [127.0.0.1:8080]
        ",
        at: (3, 14),
        message: "`RoundRobbin` is not a balancing algorithm",
        hint: Some("did you mean `RoundRobin`?"),
        related: None,
    },
    Bad {
        what: "unknown balance algorithm, nothing close",
        yaml: "
            backends:
              - name: app
                balance: Random
                endpoints: [127.0.0.1:8080]
        ",
        at: (3, 14),
        message: "`Random` is not a balancing algorithm",
        hint: Some("use one of: RoundRobin, LeastConnections, ConsistentHash"),
        related: None,
    },
    Bad {
        what: "backend without endpoints",
        yaml: "
            backends:
              - name: app
        ",
        at: (2, 11),
        message: "backend `app` has no endpoints",
        hint: Some("`- 127.0.0.1:8080`"),
        related: None,
    },
    Bad {
        what: "endpoint without a port",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - 127.0.0.1
        ",
        at: (4, 9),
        message: "`127.0.0.1` has no port; write it as `host:port`",
        hint: Some("`ip:port`, `[ipv6]:port` or `hostname:port`"),
        related: None,
    },
    Bad {
        what: "bracketed IPv6 endpoint without a port",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - address: '[::1]'
        ",
        at: (4, 18),
        message: "`[::1]` has no port",
        hint: None,
        related: None,
    },
    Bad {
        what: "endpoint with port 0",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - 127.0.0.1:0
        ",
        at: (4, 9),
        message: "`0` is not a port (1-65535)",
        hint: None,
        related: None,
    },
    Bad {
        what: "endpoint with a bad IP",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - 999.1.1.1:80
        ",
        at: (4, 9),
        message: "`999.1.1.1` is not a valid IP address",
        hint: None,
        related: None,
    },
    Bad {
        what: "IPv6 endpoint without brackets",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - '::1:80'
        ",
        at: (4, 9),
        message: "write an IPv6 endpoint in brackets, e.g. `[::1]:80`",
        hint: None,
        related: None,
    },
    Bad {
        what: "endpoint host name with a space",
        yaml: "
            backends:
              - name: app
                endpoints: ['app server:80']
        ",
        at: (3, 17),
        message: "`app server` is neither an IP address nor a host name",
        hint: None,
        related: None,
    },
    Bad {
        what: "duplicate endpoint (short and long form)",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - 127.0.0.1:8080
                  - address: 127.0.0.1:8080
                    weight: 2
        ",
        at: (5, 18),
        message: "endpoint `127.0.0.1:8080` is listed twice in backend `app`",
        hint: Some("use `weight`"),
        related: Some((4, 9)),
    },
    Bad {
        what: "weight out of range",
        yaml: "
            backends:
              - name: app
                endpoints:
                  - address: 127.0.0.1:8080
                    weight: 1001
        ",
        at: (5, 17),
        message: "`weight` is 1001, outside 0..=1000",
        hint: None,
        related: None,
    },
    Bad {
        what: "retries out of range",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                retries: 11
        ",
        at: (4, 14),
        message: "`retries` is 11, outside 0..=10",
        hint: Some("set `retries` to a whole number from 0 to 10"),
        related: None,
    },
    Bad {
        what: "negative retries",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                retries: -1
        ",
        at: (4, 14),
        message: "`retries` is -1, outside 0..=10",
        hint: None,
        related: None,
    },
    // --- health checks ---
    Bad {
        what: "HTTP-only keys on a TCP health check",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck:
                  protocol: TCP
                  path: /healthz
        ",
        at: (6, 13),
        message: "`path` only applies to HTTP health checks",
        hint: Some("add `protocol: HTTP`"),
        related: None,
    },
    Bad {
        what: "HTTP-only key on a health check with the default protocol",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck:
                  expectStatus: 200
        ",
        at: (5, 21),
        message: "`expectStatus` only applies to HTTP health checks",
        hint: None,
        related: None,
    },
    Bad {
        what: "bad expectStatus",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck:
                  protocol: HTTP
                  expectStatus: 2xx
        ",
        at: (6, 21),
        message: "`2xx` is not an HTTP status (100-599)",
        hint: Some("`200` or `200-399`"),
        related: None,
    },
    Bad {
        what: "empty expectStatus range",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck:
                  protocol: HTTP
                  expectStatus: 399-200
        ",
        at: (6, 21),
        message: "the range `399-200` is empty",
        hint: None,
        related: None,
    },
    Bad {
        what: "health check path without a slash",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck:
                  protocol: HTTP
                  path: healthz
        ",
        at: (6, 13),
        message: "`healthz` is not a request path",
        hint: Some("starts with `/`"),
        related: None,
    },
    Bad {
        what: "empty Host header",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck:
                  protocol: HTTP
                  host: ''
        ",
        at: (6, 13),
        message: "`` is not a valid Host header",
        hint: Some("a host name"),
        related: None,
    },
    Bad {
        what: "unknown health check protocol",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck:
                  protocol: HTTTP
        ",
        at: (5, 17),
        message: "`HTTTP` is not a health check protocol",
        hint: Some("did you mean `HTTP`?"),
        related: None,
    },
    Bad {
        what: "health check rise out of range",
        yaml: "
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck: {rise: 0}
        ",
        at: (4, 25),
        message: "`rise` is 0, outside 1..=100",
        hint: None,
        related: None,
    },
    // --- forwards ---
    Bad {
        what: "forward with a `to` without a port",
        yaml: "
            forwards:
              - listen: 127.0.0.1:16379
                to: localhost
        ",
        at: (3, 9),
        message: "`localhost` has no port",
        hint: Some("write the destination as `host:port`"),
        related: None,
    },
    Bad {
        what: "forward with a `to` that is not an address",
        yaml: "
            forwards:
              - listen: 127.0.0.1:16379
                to: 'redis server:6379'
        ",
        at: (3, 9),
        message: "`redis server` is neither an IP address nor a host name",
        hint: None,
        related: None,
    },
    Bad {
        what: "forward listening on a name",
        yaml: "
            forwards:
              - listen: localhost:16379
                to: 127.0.0.1:6379
        ",
        at: (2, 13),
        message: "`localhost:16379` is not an address and port",
        hint: None,
        related: None,
    },
    // --- TLS listeners, routes, backend TLS ---
    Bad {
        what: "a TLS listener needs tls settings",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (4, 16),
        message: "TLS listener `edge/tls` has no `tls` settings",
        hint: Some("`tls: {mode: Passthrough}`"),
        related: None,
    },
    Bad {
        what: "terminating without certificates",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: tls
                    port: 443
                    protocol: TLS
                    tls: {mode: Terminate}
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (4, 15),
        message: "terminates TLS but has no `certificates`",
        hint: Some("`tls.mode: Passthrough`"),
        related: None,
    },
    Bad {
        what: "a certificate file that does not exist",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: tls
                    port: 443
                    protocol: TLS
                    tls:
                      certificates:
                        - certFile: ../../examples/tls/missing.crt
                          keyFile: ../../examples/tls/example.key
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (9, 25),
        message: "cannot read certificate file `../../examples/tls/missing.crt`",
        hint: Some("relative to the config file's directory"),
        related: None,
    },
    Bad {
        what: "a key that does not belong to the certificate",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: tls
                    port: 443
                    protocol: TLS
                    tls:
                      certificates:
                        - certFile: ../../examples/tls/ca.crt
                          keyFile: ../../examples/tls/example.key
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (9, 25),
        message: "does not match",
        hint: None,
        related: None,
    },
    Bad {
        what: "a PEM file that holds no certificate",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: tls
                    port: 443
                    protocol: TLS
                    tls:
                      certificates:
                        - certFile: ../../examples/tls/example.key
                          keyFile: ../../examples/tls/example.key
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (9, 25),
        message: "no certificate",
        hint: None,
        related: None,
    },
    Bad {
        what: "certificates in passthrough mode",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: tls
                    port: 443
                    protocol: TLS
                    tls:
                      mode: Passthrough
                      certificates:
                        - {certFile: a.crt, keyFile: a.key}
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (10, 15),
        message: "`certificates` does not apply in Passthrough mode",
        hint: None,
        related: None,
    },
    Bad {
        what: "a TLS mode that does not exist",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: passthru}, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (4, 59),
        message: "`passthru` is not a TLS mode",
        hint: Some("did you mean `Passthrough`?"),
        related: None,
    },
    Bad {
        what: "tls on a TCP listener",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, tls: {mode: Passthrough}, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (4, 36),
        message: "`tls` only applies to TLS and HTTPS listeners",
        hint: Some("`protocol: TLS`"),
        related: None,
    },
    Bad {
        what: "a hostname with a wildcard in the middle",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: tls
                    port: 443
                    protocol: TLS
                    hostname: \"git.*.example.com\"
                    tls: {mode: Passthrough}
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (7, 19),
        message: "a wildcard must be the whole first label",
        hint: None,
        related: None,
    },
    Bad {
        what: "two TLS listeners on one port without distinct hostnames",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 443, protocol: TLS, tls: {mode: Passthrough}, backend: app}
                  - {name: b, port: 443, protocol: TLS, tls: {mode: Passthrough}, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (6, 25),
        message: "TLS listeners `edge/a` and `edge/b` both listen on 127.0.0.1:443 with the same hostname",
        hint: Some("each has its own `hostname`"),
        related: Some((5, 25)),
    },
    Bad {
        what: "a TCP and a TLS listener on one port",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 443, backend: app}
                  - {name: b, port: 443, protocol: TLS, hostname: x.example.com, tls: {mode: Passthrough}, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (6, 25),
        message: "listeners `edge/a` (TCP) and `edge/b` (TLS) both listen on 127.0.0.1:443",
        hint: None,
        related: Some((5, 25)),
    },
    Bad {
        what: "a route to a gateway that does not exist",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}
            routes:
              - name: git
                kind: TLSRoute
                parentRefs: [{name: edg, sectionName: tls}]
                backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (8, 25),
        message: "route `git` attaches to gateway `edg`, which is not defined",
        hint: Some("did you mean `edge`?"),
        related: None,
    },
    Bad {
        what: "a route to a listener that does not exist (short form)",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}
            routes:
              - name: git
                kind: TLSRoute
                parentRefs:
                  - edge/tlss
                backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (9, 9),
        message: "route `git` attaches to listener `edge/tlss`, which is not defined",
        hint: Some("did you mean `tls`?"),
        related: None,
    },
    Bad {
        what: "a TLSRoute on a TCP listener",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: app}
            routes:
              - name: git
                kind: TLSRoute
                parentRefs: [{name: edge, sectionName: web}]
                backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (8, 44),
        message: "TLSRoute `git` attaches to `edge/web`, which is not a TLS listener",
        hint: None,
        related: None,
    },
    Bad {
        what: "a GRPCRoute is not supported yet",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 443, protocol: HTTP, backend: app}
            routes:
              - {name: web, kind: GRPCRoute, parentRefs: [edge], backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (6, 23),
        message: "route kind `GRPCRoute` is not supported by this version yet",
        hint: Some("and HTTP requests (`HTTPRoute`)"),
        related: None,
    },
    Bad {
        what: "a misspelt route kind",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}, backend: app}
            routes:
              - {name: web, kind: TlsRoute, parentRefs: [edge], backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (6, 23),
        message: "`TlsRoute` is not a route kind",
        hint: Some("did you mean `TLSRoute`?"),
        related: None,
    },
    Bad {
        what: "a route's backend that does not exist",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}, backend: app}
            routes:
              - {name: git, kind: TLSRoute, parentRefs: [edge], backend: gt}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
              - {name: git, endpoints: [127.0.0.1:3443]}
        ",
        at: (6, 62),
        message: "route `git` refers to backend `gt`, which is not defined",
        hint: Some("did you mean `git`?"),
        related: None,
    },
    Bad {
        what: "a passthrough listener cannot send to a TLS backend",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:8443]
                tls: {insecureSkipVerify: true}
        ",
        at: (4, 27),
        message: "Passthrough listener `edge/tls` sends connections to backend `app`, which has `tls`",
        hint: None,
        related: None,
    },
    Bad {
        what: "caFile and insecureSkipVerify together",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:8443]
                tls: {caFile: ../../examples/tls/ca.crt, insecureSkipVerify: true}
        ",
        at: (8, 19),
        message: "`caFile` and `insecureSkipVerify: true` contradict each other",
        hint: None,
        related: None,
    },
    Bad {
        what: "a CA file that holds no certificate",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:8443]
                tls: {caFile: ../../examples/tls/README.md}
        ",
        at: (8, 19),
        message: "CA file `../../examples/tls/README.md`",
        hint: None,
        related: None,
    },
    Bad {
        what: "path on a TLS health check",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:8443]
                healthCheck: {protocol: TLS, path: /healthz}
        ",
        at: (8, 40),
        message: "`path` only applies to HTTP health checks",
        hint: None,
        related: None,
    },
    // --- HTTP and HTTPS listeners ---
    Bad {
        what: "tls on an HTTP listener",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, protocol: HTTP, tls: {mode: Terminate}, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (4, 52),
        message: "`tls` does not apply to HTTP listeners",
        hint: Some("`protocol: HTTPS`"),
        related: None,
    },
    Bad {
        what: "an HTTPS listener needs tls settings",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 443, protocol: HTTPS, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (4, 16),
        message: "HTTPS listener `edge/web` has no `tls` settings",
        hint: Some("with `certificates`"),
        related: None,
    },
    Bad {
        what: "an HTTPS listener cannot pass TLS through",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 443
                    protocol: HTTPS
                    tls: {mode: Passthrough}
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (7, 21),
        message: "HTTPS listener `edge/web` cannot pass TLS through",
        hint: Some("use `protocol: TLS` with `mode: Passthrough`"),
        related: None,
    },
    Bad {
        what: "an HTTPS listener without certificates",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 443, protocol: HTTPS, tls: {}, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (4, 16),
        message: "HTTPS listener `edge/web` terminates TLS but has no `certificates`",
        hint: Some("`tls.certificates`"),
        related: None,
    },
    Bad {
        what: "an HTTPS listener offers only h2 and http/1.1",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 443
                    protocol: HTTPS
                    tls:
                      certificates:
                        - {certFile: ../../examples/tls/example.crt, keyFile: ../../examples/tls/example.key}
                      alpn: [h2, h3]
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (10, 22),
        message: "an HTTPS listener speaks `h2` and `http/1.1`, not `h3`",
        hint: Some("the default is both"),
        related: None,
    },
    Bad {
        what: "http settings on a TCP listener",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, backend: app, http: {maxHeaders: 10}}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (4, 51),
        message: "`http` only applies to HTTP and HTTPS listeners",
        hint: Some("add `protocol: HTTP`"),
        related: None,
    },
    Bad {
        what: "hostname on a TCP listener",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, hostname: a.example.test, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (4, 41),
        message: "`hostname` only applies to TLS, HTTP and HTTPS listeners",
        hint: Some("cannot tell names apart"),
        related: None,
    },
    Bad {
        what: "maxHeaderBytes out of range",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    protocol: HTTP
                    backend: app
                    http: {maxHeaderBytes: 512}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (8, 32),
        message: "`maxHeaderBytes` is 512, outside 1024..=1048576",
        hint: Some("from 1024 to 1048576"),
        related: None,
    },
    Bad {
        what: "maxHeaders out of range",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    protocol: HTTP
                    backend: app
                    http:
                      maxHeaders: 1001
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (9, 23),
        message: "`maxHeaders` is 1001, outside 1..=1000",
        hint: None,
        related: None,
    },
    Bad {
        what: "headerTimeout without a unit",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    protocol: HTTP
                    backend: app
                    http:
                      headerTimeout: 10
                      keepaliveTimeout: 1m
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (9, 26),
        message: "the duration `10` has no unit",
        hint: Some("write `headerTimeout` as a number and a unit"),
        related: None,
    },
    Bad {
        what: "an unknown key in http settings",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - name: web
                    port: 80
                    protocol: HTTP
                    http: {keepAliveTimeout: 1m}
        ",
        at: (7, 16),
        message: "unknown key `keepAliveTimeout`",
        hint: Some("did you mean `keepaliveTimeout`?"),
        related: None,
    },
    // --- HTTP sockets ---
    Bad {
        what: "HTTP and HTTPS on one port",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 8080, protocol: HTTP, hostname: a.example.test, backend: app}
                  - name: b
                    port: 8080
                    protocol: HTTPS
                    hostname: b.example.test
                    tls:
                      certificates:
                        - {certFile: ../../examples/tls/example.crt, keyFile: ../../examples/tls/example.key}
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:9000]}
        ",
        at: (7, 15),
        message: "listeners `edge/a` (HTTP) and `edge/b` (HTTPS) both listen on 127.0.0.1:8080",
        hint: Some("cleartext HTTP and TLS cannot share a port"),
        related: Some((5, 25)),
    },
    Bad {
        what: "HTTP and TLS on one port",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 8080, protocol: TLS, tls: {mode: Passthrough}, backend: app}
                  - {name: b, port: 8080, protocol: HTTP, hostname: b.example.test, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:9000]}
        ",
        at: (6, 25),
        message: "listeners `edge/a` (TLS) and `edge/b` (HTTP) both listen on 127.0.0.1:8080",
        hint: Some("cleartext HTTP and TLS cannot share a port"),
        related: Some((5, 25)),
    },
    Bad {
        what: "TCP and HTTP on one port",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 8080, backend: app}
                  - {name: b, port: 8080, protocol: HTTP, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:9000]}
        ",
        at: (6, 25),
        message: "listeners `edge/a` (TCP) and `edge/b` (HTTP) both listen on 127.0.0.1:8080",
        hint: Some("use another port"),
        related: Some((5, 25)),
    },
    Bad {
        what: "two HTTP listeners on one port with the same hostname",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 80, protocol: HTTP, hostname: a.example.test, backend: app}
                  - {name: b, port: 80, protocol: HTTP, hostname: A.example.test, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:9000]}
        ",
        at: (6, 25),
        message: "HTTP listeners `edge/a` and `edge/b` both listen on 127.0.0.1:80 with the same hostname",
        hint: Some("each has its own `hostname`"),
        related: Some((5, 25)),
    },
    Bad {
        what: "a TLS and an HTTPS listener on one port with the same hostname",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 443, protocol: TLS, tls: {mode: Passthrough}, backend: app}
                  - name: b
                    port: 443
                    protocol: HTTPS
                    tls:
                      certificates:
                        - {certFile: ../../examples/tls/example.crt, keyFile: ../../examples/tls/example.key}
                    backend: app
            backends:
              - {name: app, endpoints: [127.0.0.1:9000]}
        ",
        at: (7, 15),
        message: "listeners `edge/a` (TLS) and `edge/b` (HTTPS) both listen on 127.0.0.1:443 with the same hostname",
        hint: Some("each has its own `hostname`"),
        related: Some((5, 25)),
    },
    Bad {
        what: "HTTP listeners sharing a socket must read requests alike",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: a, port: 80, protocol: HTTP, backend: app}
                  - {name: b, port: 80, protocol: HTTP, hostname: b.example.test, backend: app, http: {maxHeaders: 50}}
            backends:
              - {name: app, endpoints: [127.0.0.1:9000]}
        ",
        at: (6, 25),
        message: "HTTP listeners `edge/a` and `edge/b` share 127.0.0.1:80 but not their `http` settings",
        hint: Some("the same `http` settings"),
        related: Some((5, 25)),
    },
    // --- HTTPRoutes: attaching ---
    Bad {
        what: "an HTTPRoute on a TLS listener",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}, backend: app}
            routes:
              - {name: web, kind: HTTPRoute, parentRefs: [edge/tls], backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (6, 47),
        message: "HTTPRoute `web` attaches to `edge/tls`, which is not an HTTP or HTTPS listener",
        hint: Some("attaches to `protocol: HTTP` and `HTTPS` listeners"),
        related: None,
    },
    Bad {
        what: "an HTTPRoute on a gateway without HTTP listeners",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}, backend: app}
            routes:
              - {name: web, kind: HTTPRoute, parentRefs: [edge], backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (6, 47),
        message: "route `web` attaches to no HTTP or HTTPS listener of gateway `edge`",
        hint: Some("`protocol: HTTP` or `HTTPS`"),
        related: None,
    },
    Bad {
        what: "a misspelt HTTPRoute kind",
        yaml: "
            routes:
              - {name: web, kind: HttpRoute, parentRefs: [edge], backend: app}
        ",
        at: (2, 23),
        message: "`HttpRoute` is not a route kind",
        hint: Some("did you mean `HTTPRoute`?"),
        related: None,
    },
    Bad {
        what: "an HTTPRoute with neither backend nor rules",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, protocol: HTTP}
            routes:
              - {name: web, kind: HTTPRoute, parentRefs: [edge]}
        ",
        at: (6, 12),
        message: "HTTPRoute `web` has no `backend` and no `rules`",
        hint: Some("`backend: NAME`"),
        related: None,
    },
    Bad {
        what: "an HTTPRoute with both backend and rules",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, protocol: HTTP}
            routes:
              - name: web
                kind: HTTPRoute
                parentRefs: [edge]
                backend: app
                rules:
                  - backendRefs: [{name: app}]
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
        ",
        at: (11, 7),
        message: "HTTPRoute `web` has both `backend` and `rules`",
        hint: Some("keep one of the two"),
        related: None,
    },
    Bad {
        what: "an HTTPRoute with an empty rules list",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 80, protocol: HTTP}
            routes:
              - {name: web, kind: HTTPRoute, parentRefs: [edge], rules: []}
        ",
        at: (6, 61),
        message: "HTTPRoute `web` has no rules",
        hint: None,
        related: None,
    },
    Bad {
        what: "rules on a TLSRoute",
        yaml: "
            gateways:
              - name: edge
                listeners:
                  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}
            routes:
              - name: git
                kind: TLSRoute
                parentRefs: [edge]
                backend: app
                rules:
                  - backendRefs: [{name: app}]
            backends:
              - {name: app, endpoints: [127.0.0.1:8443]}
        ",
        at: (11, 7),
        message: "`rules` only applies to HTTPRoutes",
        hint: Some("attach an `HTTPRoute`"),
        related: None,
    },
    // --- HTTPRoutes: backendRefs and timeouts ---
    Bad {
        what: "a backendRef to a backend that does not exist",
        yaml: http_rules!("
                  - backendRefs: [{name: ap}]
        "),
        at: (12, 30),
        message: "HTTPRoute `r` refers to backend `ap`, which is not defined",
        hint: Some("did you mean `app`?"),
        related: None,
    },
    Bad {
        what: "a backendRef with a port",
        yaml: http_rules!("
                  - backendRefs:
                      - {name: app, port: 8080}
        "),
        at: (13, 31),
        message: "`port` is for Kubernetes Services; name a Gatehouse backend",
        hint: Some("remove `port`"),
        related: None,
    },
    Bad {
        what: "a backendRef weight out of range",
        yaml: http_rules!("
                  - backendRefs:
                      - name: app
                        weight: 1000001
        "),
        at: (14, 21),
        message: "`weight` is 1000001, outside 0..=1000000",
        hint: None,
        related: None,
    },
    Bad {
        what: "a backendRequest timeout longer than the request timeout",
        yaml: http_rules!("
                  - backendRefs: [{name: app}]
                    timeouts: {request: 5s, backendRequest: 10s}
        "),
        at: (13, 49),
        message: "`backendRequest` (10s) is longer than `request` (5s)",
        hint: Some("at most `request`"),
        related: None,
    },
    Bad {
        what: "a request timeout without a unit",
        yaml: http_rules!("
                  - backendRefs: [{name: app}]
                    timeouts:
                      request: 30
        "),
        at: (14, 20),
        message: "the duration `30` has no unit",
        hint: Some("write `request` as a number and a unit"),
        related: None,
    },
    // --- HTTPRoutes: matches ---
    Bad {
        what: "an Exact path without a leading slash",
        yaml: http_rules!("
                  - matches:
                      - path: {type: Exact, value: api}
                    backendRefs: [{name: app}]
        "),
        at: (13, 40),
        message: "the path `api` does not start with `/`",
        hint: Some("starts with `/`"),
        related: None,
    },
    Bad {
        what: "a PathPrefix with a query",
        yaml: http_rules!("
                  - matches:
                      - path:
                          value: /search?q=x
                    backendRefs: [{name: app}]
        "),
        at: (14, 22),
        message: "the path `/search?q=x` contains `?`",
        hint: Some("`?` or `#`"),
        related: None,
    },
    Bad {
        what: "a path with a fragment",
        yaml: http_rules!("
                  - matches: [{path: {type: Exact, value: '/a#b'}}]
                    backendRefs: [{name: app}]
        "),
        at: (12, 47),
        message: "the path `/a#b` contains `#`",
        hint: None,
        related: None,
    },
    Bad {
        what: "a path match type in the wrong case",
        yaml: http_rules!("
                  - matches: [{path: {type: pathPrefix, value: /api}}]
                    backendRefs: [{name: app}]
        "),
        at: (12, 33),
        message: "`pathPrefix` is not a path match type",
        hint: Some("did you mean `PathPrefix`?"),
        related: None,
    },
    Bad {
        what: "a path regular expression that does not compile",
        yaml: http_rules!("
                  - matches: [{path: {type: RegularExpression, value: '/v[0-9+/.*'}}]
                    backendRefs: [{name: app}]
        "),
        at: (12, 59),
        message: "`/v[0-9+/.*` is not a valid regular expression: ",
        hint: Some("regex-lite"),
        related: None,
    },
    Bad {
        what: "a header name with a space",
        yaml: http_rules!("
                  - matches:
                      - headers: [{name: X Env, value: prod}]
                    backendRefs: [{name: app}]
        "),
        at: (13, 30),
        message: "`X Env` is not a valid header name",
        hint: Some("no spaces"),
        related: None,
    },
    Bad {
        what: "the same header matched twice, in two cases",
        yaml: http_rules!("
                  - matches:
                      - headers:
                          - {name: X-Env, value: prod}
                          - {name: x-env, value: dev}
                    backendRefs: [{name: app}]
        "),
        at: (15, 24),
        message: "header `x-env` is matched twice in one match",
        hint: Some("only use the first"),
        related: Some((14, 24)),
    },
    Bad {
        what: "an empty header value",
        yaml: http_rules!("
                  - matches:
                      - headers: [{name: X-Env, value: ''}]
                    backendRefs: [{name: app}]
        "),
        at: (13, 44),
        message: "the header value is empty",
        hint: Some("printable ASCII"),
        related: None,
    },
    Bad {
        what: "a header regular expression that does not compile",
        yaml: http_rules!("
                  - matches:
                      - headers: [{name: User-Agent, type: RegularExpression, value: '(curl'}]
                    backendRefs: [{name: app}]
        "),
        at: (13, 74),
        message: "`(curl` is not a valid regular expression",
        hint: None,
        related: None,
    },
    Bad {
        what: "a header match type that does not exist",
        yaml: http_rules!("
                  - matches:
                      - headers: [{name: X-Env, type: Prefix, value: p}]
                    backendRefs: [{name: app}]
        "),
        at: (13, 43),
        message: "`Prefix` is not a header match type",
        hint: Some("`Exact` (the default) or `RegularExpression`"),
        related: None,
    },
    Bad {
        what: "the same query parameter matched twice",
        yaml: http_rules!("
                  - matches:
                      - queryParams:
                          - {name: page, value: '1'}
                          - {name: page, type: RegularExpression, value: '[0-9]+'}
                    backendRefs: [{name: app}]
        "),
        at: (15, 24),
        message: "query parameter `page` is matched twice in one match",
        hint: None,
        related: Some((14, 24)),
    },
    Bad {
        what: "a method in lower case",
        yaml: http_rules!("
                  - matches: [{method: post}]
                    backendRefs: [{name: app}]
        "),
        at: (12, 28),
        message: "`post` is not an HTTP method a route can match",
        hint: Some("did you mean `POST`? (methods are upper case)"),
        related: None,
    },
    Bad {
        what: "a method that does not exist",
        yaml: http_rules!("
                  - matches: [{method: FETCH}]
                    backendRefs: [{name: app}]
        "),
        at: (12, 28),
        message: "`FETCH` is not an HTTP method a route can match",
        hint: Some("use one of GET, HEAD, POST"),
        related: None,
    },
    Bad {
        what: "a query value with a space (values are compared as sent)",
        yaml: http_rules!("
                  - matches:
                      - queryParams: [{name: q, value: 'a b'}]
                    backendRefs: [{name: app}]
        "),
        at: (13, 44),
        message: "`a b` is not a valid query parameter value",
        hint: Some("percent-encoded"),
        related: None,
    },
    // --- HTTPRoutes: filters ---
    Bad {
        what: "a misspelt filter type",
        yaml: http_rules!("
                  - filters:
                      - type: RequestRedirection
                        requestRedirect: {scheme: https}
        "),
        at: (13, 19),
        message: "`RequestRedirection` is not an HTTPRoute filter type",
        hint: Some("did you mean `RequestRedirect`?"),
        related: None,
    },
    Bad {
        what: "RequestMirror is refused, not ignored",
        yaml: http_rules!("
                  - filters:
                      - type: RequestMirror
                        requestMirror: {backendRef: {name: app}}
                    backendRefs: [{name: app}]
        "),
        at: (13, 19),
        message: "filter type `RequestMirror` is not supported by this version",
        hint: Some("refused rather than skipped"),
        related: None,
    },
    Bad {
        what: "CORS is refused, not ignored",
        yaml: http_rules!("
                  - filters: [{type: CORS, cors: {allowOrigins: ['*']}}]
                    backendRefs: [{name: app}]
        "),
        at: (12, 26),
        message: "filter type `CORS` is not supported by this version",
        hint: None,
        related: None,
    },
    Bad {
        what: "ExtensionRef is refused, not ignored",
        yaml: http_rules!("
                  - filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}]
                    backendRefs: [{name: app}]
        "),
        at: (12, 26),
        message: "filter type `ExtensionRef` is not supported by this version",
        hint: None,
        related: None,
    },
    Bad {
        what: "a filter with the settings of another type",
        yaml: http_rules!("
                  - filters:
                      - type: RequestRedirect
                        requestRedirect: {scheme: https}
                        urlRewrite: {hostname: a.example.test}
        "),
        at: (15, 25),
        message: "`urlRewrite` does not belong in a `RequestRedirect` filter",
        hint: Some("`requestRedirect` here"),
        related: None,
    },
    Bad {
        what: "a filter without its settings",
        yaml: http_rules!("
                  - filters: [{type: RequestHeaderModifier}]
                    backendRefs: [{name: app}]
        "),
        at: (12, 26),
        message: "a `RequestHeaderModifier` filter needs its `requestHeaderModifier` settings",
        hint: Some("add `requestHeaderModifier:`"),
        related: None,
    },
    Bad {
        what: "a filter type twice in one rule",
        yaml: http_rules!("
                  - filters:
                      - {type: ResponseHeaderModifier, responseHeaderModifier: {remove: [server]}}
                      - {type: ResponseHeaderModifier, responseHeaderModifier: {remove: [x-powered-by]}}
                    backendRefs: [{name: app}]
        "),
        at: (14, 20),
        message: "rule 1 of HTTPRoute `r` has two `ResponseHeaderModifier` filters",
        hint: Some("merge them"),
        related: Some((13, 20)),
    },
    Bad {
        what: "a redirect and a rewrite in one rule",
        yaml: http_rules!("
                  - backendRefs: [{name: app}]
                  - filters:
                      - {type: URLRewrite, urlRewrite: {hostname: a.example.test}}
                      - {type: RequestRedirect, requestRedirect: {scheme: https}}
        "),
        at: (15, 20),
        message: "rule 2 of HTTPRoute `r` both redirects and rewrites",
        hint: Some("keep one of the two filters"),
        related: Some((14, 20)),
    },
    Bad {
        what: "a redirect with backendRefs",
        yaml: http_rules!("
                  - filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
                    backendRefs: [{name: app}]
        "),
        at: (13, 23),
        message: "rule 1 of HTTPRoute `r` redirects, so it cannot have `backendRefs`",
        hint: Some("answers the request itself"),
        related: Some((12, 26)),
    },
    Bad {
        what: "a redirect scheme in upper case",
        yaml: http_rules!("
                  - filters: [{type: RequestRedirect, requestRedirect: {scheme: HTTPS}}]
        "),
        at: (12, 69),
        message: "`HTTPS` is not a redirect scheme",
        hint: Some("did you mean `https`? (schemes are lower case)"),
        related: None,
    },
    Bad {
        what: "a redirect status that is not a redirect",
        yaml: http_rules!("
                  - filters:
                      - type: RequestRedirect
                        requestRedirect:
                          scheme: https
                          statusCode: 200
        "),
        at: (16, 27),
        message: "`200` is not a redirect status code",
        hint: Some("use 301 (permanent) or 302"),
        related: None,
    },
    Bad {
        what: "a redirect to port 0",
        yaml: http_rules!("
                  - filters: [{type: RequestRedirect, requestRedirect: {port: 0}}]
        "),
        at: (12, 67),
        message: "`0` is not a port",
        hint: None,
        related: None,
    },
    Bad {
        what: "a redirect to a wildcard host",
        yaml: http_rules!("
                  - filters: [{type: RequestRedirect, requestRedirect: {hostname: '*.example.test'}}]
        "),
        at: (12, 71),
        message: "`*.example.test` is a wildcard, not a host name",
        hint: Some("names one host"),
        related: None,
    },
    Bad {
        what: "a misspelt path modifier type",
        yaml: http_rules!("
                  - filters:
                      - type: URLRewrite
                        urlRewrite:
                          path: {type: ReplacePrefix, replacePrefixMatch: /}
                    backendRefs: [{name: app}]
        "),
        at: (15, 28),
        message: "`ReplacePrefix` is not a path modifier type",
        hint: Some("did you mean `ReplacePrefixMatch`?"),
        related: None,
    },
    Bad {
        what: "a path modifier without its value",
        yaml: http_rules!("
                  - filters:
                      - type: URLRewrite
                        urlRewrite:
                          path: {type: ReplaceFullPath}
                    backendRefs: [{name: app}]
        "),
        at: (15, 28),
        message: "`type: ReplaceFullPath` needs `replaceFullPath`",
        hint: Some("add the new path"),
        related: None,
    },
    Bad {
        what: "a path modifier with the other type's value",
        yaml: http_rules!("
                  - filters:
                      - type: URLRewrite
                        urlRewrite:
                          path: {type: ReplaceFullPath, replaceFullPath: /a, replacePrefixMatch: /b}
                    backendRefs: [{name: app}]
        "),
        at: (15, 86),
        message: "`replacePrefixMatch` does not go with `type: ReplaceFullPath`",
        hint: Some("change `type` to `ReplacePrefixMatch`"),
        related: None,
    },
    Bad {
        what: "a replacement path without a leading slash",
        yaml: http_rules!("
                  - filters:
                      - {type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: index.html}}}
        "),
        at: (13, 102),
        message: "the path `index.html` does not start with `/`",
        hint: None,
        related: None,
    },
    Bad {
        what: "ReplacePrefixMatch after an Exact match",
        yaml: http_rules!("
                  - matches: [{path: {type: Exact, value: /old}}]
                    filters:
                      - type: URLRewrite
                        urlRewrite:
                          path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
                    backendRefs: [{name: app}]
        "),
        at: (16, 28),
        message: "`ReplacePrefixMatch` in rule 1 of HTTPRoute `r` needs the rule to have exactly one match, with a `PathPrefix` path",
        hint: Some("or use `ReplaceFullPath`"),
        related: None,
    },
    Bad {
        what: "ReplacePrefixMatch with two matches",
        yaml: http_rules!("
                  - matches:
                      - path: {value: /old}
                      - path: {value: /older}
                    filters:
                      - type: RequestRedirect
                        requestRedirect:
                          path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
        "),
        at: (18, 28),
        message: "needs the rule to have exactly one match, with a `PathPrefix` path",
        hint: None,
        related: None,
    },
    Bad {
        what: "a header set and removed by one filter",
        yaml: http_rules!("
                  - filters:
                      - type: RequestHeaderModifier
                        requestHeaderModifier:
                          set: [{name: X-Forwarded-Proto, value: https}]
                          remove: [x-forwarded-proto]
                    backendRefs: [{name: app}]
        "),
        at: (16, 24),
        message: "header `x-forwarded-proto` is changed twice by one filter",
        hint: Some("one action per header name"),
        related: Some((15, 28)),
    },
    Bad {
        what: "a header value with a line break",
        yaml: http_rules!("
                  - filters:
                      - type: ResponseHeaderModifier
                        responseHeaderModifier:
                          add: [{name: X-Note, value: \"a\\r\\nSet-Cookie: b\"}]
                    backendRefs: [{name: app}]
        "),
        at: (15, 43),
        message: "is not a valid header value",
        hint: Some("no line breaks"),
        related: None,
    },
    // --- admin ---
    Bad {
        what: "an admin endpoint beyond loopback without a token",
        yaml: "
            admin:
              listen: 0.0.0.0:9100
        ",
        at: (2, 11),
        message: "would show every backend and client to anyone who can reach it",
        hint: Some("set `token`"),
        related: None,
    },
    Bad {
        what: "an admin listen address without the address",
        yaml: "
            admin: {listen: 9100}
        ",
        at: (1, 17),
        message: "`9100` is not an address and port",
        hint: Some("`127.0.0.1:9100`"),
        related: None,
    },
    Bad {
        what: "an admin token with a space",
        yaml: "
            admin:
              listen: 127.0.0.1:9100
              token: \"not a token\"
        ",
        at: (3, 10),
        message: "`token` must be visible ASCII characters",
        hint: Some("openssl rand -hex 32"),
        related: None,
    },
    Bad {
        what: "the admin endpoint on a listener's port",
        yaml: "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {name: web, port: 9100, backend: app}
            backends:
              - {name: app, endpoints: [127.0.0.1:8080]}
            admin: {}
        ",
        at: (8, 8),
        message: "the admin endpoint and listener `edge/web` both listen on 127.0.0.1:9100",
        hint: Some("a port of its own"),
        related: Some((5, 27)),
    },
    Bad {
        what: "unknown key in admin",
        yaml: "
            admin:
              listen: 127.0.0.1:9100
              tokn: abc
        ",
        at: (3, 3),
        message: "unknown key `tokn`",
        hint: Some("did you mean `token`?"),
        related: None,
    },
];

#[test]
fn refused_configs_say_where_and_why() {
    let mut failures = Vec::new();
    for case in BAD {
        let d = refused(case.yaml);
        let e = first_error(&d);
        let mut problems = Vec::new();
        if at(e) != case.at {
            problems.push(format!("at {:?}, expected {:?}", at(e), case.at));
        }
        if !e.message.contains(case.message) {
            problems.push(format!("message does not contain {:?}", case.message));
        }
        if let Some(hint) = case.hint
            && !e.hint.as_deref().unwrap_or("").contains(hint)
        {
            problems.push(format!("hint does not contain {hint:?}"));
        }
        if let Some(related) = case.related {
            let got = e.related.as_ref().map(|(p, _)| (p.line, p.column));
            if got != Some(related) {
                problems.push(format!("related {got:?}, expected {related:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n{}",
                case.what,
                problems.join("; "),
                d.render()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        BAD.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let d = refused(
        "
        settings:
          drainTimeout: 30
        gateways:
          - name: edge
            listeners:
              - name: web
                port: 70000
                protocol: tcp
                backend: ap
                idleTimeout: 5
              - name: web
                address: 127.0.0.1:80
                port: 80
                backend: app
        backends:
          - name: app
            balance: Fastest
            endpoints:
              - 127.0.0.1
              - address: '::1:80'
            retries: 20
            healthCheck:
              interval: 2
              path: /
          - name: app
            endpoints: [127.0.0.1:0]
        forwards:
          - listen: 127.0.0.1:6379
            to: nowhere
        ",
    );
    let errors: Vec<(u64, u64, &str)> = d
        .items
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| (i.pos.line, i.pos.column, i.message.as_str()))
        .collect();
    let expected: &[(u64, u64, &str)] = &[
        (2, 17, "the duration `30` has no unit"),
        (7, 15, "`70000` is not a port"),
        (8, 19, "`tcp` is not a listener protocol"),
        (9, 18, "refers to backend `ap`"),
        (10, 22, "the duration `5` has no unit"),
        (11, 15, "two listeners named `web`"),
        (12, 18, "has a port"),
        (17, 14, "`Fastest` is not a balancing algorithm"),
        (19, 9, "`127.0.0.1` has no port"),
        (20, 18, "write an IPv6 endpoint in brackets"),
        (21, 14, "`retries` is 20"),
        (23, 17, "the duration `2` has no unit"),
        (24, 13, "`path` only applies to HTTP health checks"),
        (25, 11, "backend `app` is defined twice"),
        (26, 17, "`0` is not a port"),
        (29, 9, "`nowhere` has no port"),
    ];
    assert_eq!(
        d.error_count(),
        expected.len(),
        "every error, once:\n{}",
        d.render()
    );
    for (got, want) in errors.iter().zip(expected) {
        assert!(
            got.0 == want.0 && got.1 == want.1 && got.2.contains(want.2),
            "got {got:?}, expected {want:?}\n{}",
            d.render()
        );
    }
    // The positions are in file order, whichever check found them.
    let positions: Vec<(u64, u64)> = d.items.iter().map(at).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted);
    assert!(
        d.render().ends_with("test.yaml: 16 errors in config\n"),
        "{}",
        d.render()
    );
}

#[test]
fn a_listener_that_fails_does_not_make_its_backend_unused() {
    let d = refused(
        "
        gateways:
          - name: edge
            listeners:
              - {name: dns, port: 53, protocol: QUIC, backend: app}
        backends:
          - name: app
            endpoints: [127.0.0.1:5353]
        ",
    );
    assert_eq!(d.items.len(), 1, "{}", d.render());
}

// ---------------------------------------------------------------------------------------------
// Warnings: the config runs, but probably not as meant

#[test]
fn warnings() {
    let cases: &[(&str, &str, (u64, u64), &str)] = &[
        (
            "an empty file",
            "",
            (1, 1),
            "the config defines no listeners",
        ),
        (
            "only comments",
            "
            # nothing yet
            ",
            (1, 1),
            "the config defines no listeners",
        ),
        (
            "an unused backend",
            "
            forwards:
              - {listen: 127.0.0.1:16379, to: 127.0.0.1:6379}
            backends:
              - name: spare
                endpoints: [127.0.0.1:8080]
            ",
            (4, 11),
            "backend `spare` is not used by any listener",
        ),
        (
            "a gateway without listeners",
            "
            gateways:
              - name: edge
            forwards:
              - {listen: 127.0.0.1:16379, to: 127.0.0.1:6379}
            ",
            (2, 11),
            "gateway `edge` has no listeners",
        ),
        (
            "every weight 0",
            "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 0, backend: app}
            backends:
              - name: app
                endpoints:
                  - {address: 127.0.0.1:8080, weight: 0}
            ",
            (6, 11),
            "every endpoint of backend `app` has weight 0",
        ),
        (
            "a health check timeout longer than its interval",
            "
            gateways:
              - name: edge
                listeners:
                  - {name: web, port: 0, backend: app}
            backends:
              - name: app
                endpoints: [127.0.0.1:8080]
                healthCheck:
                  interval: 1s
                  timeout: 2s
            ",
            (10, 16),
            "the health check timeout is longer than its interval",
        ),
    ];
    for (what, yaml, pos, message) in cases {
        let loaded = ok(yaml);
        let w: Vec<&Diagnostic> = loaded.warnings.warnings().collect();
        assert_eq!(w.len(), 1, "{what}: one warning\n{}", loaded.warnings);
        assert_eq!(at(w[0]), *pos, "{what}");
        assert!(w[0].message.contains(message), "{what}: {}", w[0].message);
        assert!(!loaded.warnings.has_errors(), "{what}");
    }
}

#[test]
fn an_empty_file_is_a_warning_not_an_error() {
    let loaded = load_str("empty.yaml", "").unwrap();
    assert!(loaded.config.listeners.is_empty());
    assert!(loaded.config.backends.is_empty());
    assert_eq!(loaded.config.drain_timeout, secs(30));
    assert_eq!(loaded.warnings.error_count(), 0);
    assert_eq!(loaded.warnings.items.len(), 1);
    assert_eq!(loaded.warnings.items[0].severity, Severity::Warning);
    let whitespace = load_str("blank.yaml", "\n  \n").unwrap();
    assert_eq!(whitespace.warnings.items.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// load_file

#[test]
fn an_unreadable_path_is_one_clear_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gatehouse-config-tests");
    let missing = dir.join("no-such-dir").join("gatehouse.yaml");
    let d = load_file(&missing).unwrap_err();
    assert_eq!(d.error_count(), 1);
    let e = &d.items[0];
    assert!(
        e.message.starts_with("cannot read the config file: "),
        "{}",
        e.message
    );
    assert!(
        e.hint.as_deref().unwrap().contains("check the path"),
        "{e:?}"
    );
    let rendered = d.render();
    assert!(
        rendered.contains(&format!("--> {}\n", missing.display())),
        "{rendered}"
    );
    assert!(
        !rendered.contains(":0:0"),
        "no made-up position: {rendered}"
    );
    assert!(
        d.one_line()
            .starts_with(&format!("{}: error: cannot read", missing.display())),
        "{}",
        d.one_line()
    );

    // A directory is not a config file either.
    std::fs::create_dir_all(&dir).unwrap();
    let d = load_file(&dir).unwrap_err();
    assert_eq!(d.error_count(), 1);
    assert!(
        d.items[0]
            .message
            .starts_with("cannot read the config file")
    );

    // Nor is a file that is not UTF-8.
    let binary = dir.join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let d = load_file(&binary).unwrap_err();
    assert!(d.items[0].hint.as_deref().unwrap().contains("UTF-8"), "{d}");
}

#[test]
fn load_file_names_the_file_in_diagnostics() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gatehouse-config-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "settings:\n  drainTimeout: 5\n").unwrap();
    let d = load_file(&path).unwrap_err();
    assert!(
        d.render().contains(&format!("--> {}:2:17", path.display())),
        "{d}"
    );
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "forwards:\n  - {listen: '127.0.0.1:0', to: '127.0.0.1:1'}\n",
    )
    .unwrap();
    let loaded = load_file(&good).unwrap();
    assert_eq!(loaded.config.listeners.len(), 1);
    assert_eq!(&*loaded.warnings.source.name, good.display().to_string());
}

// ---------------------------------------------------------------------------------------------
// Accepted configs: compiled values and defaults

#[test]
fn defaults() {
    let c = ok("
        gateways:
          - name: edge
            listeners:
              - name: web
                port: 8080
                backend: app
        backends:
          - name: app
            endpoints: [127.0.0.1:9000]
        ")
    .config;
    assert_eq!(
        c.listeners
            .iter()
            .map(|l| (**l).clone())
            .collect::<Vec<_>>(),
        vec![Listener {
            name: "edge/web".into(),
            bind: addr("0.0.0.0:8080"),
            protocol: Protocol::Tcp,
            routes: vec![RouteEntry {
                route: "default".into(),
                hosts: vec![HostMatch::Any],
                backend: "app".into(),
                access: Access::default(),
            }],
            hostname: None,
            tls: None,
            http_routes: vec![],
            http: None,
            max_connections: 10_000,
            idle_timeout: secs(600),
            access: Access::default(),
            accept_proxy: None,
            udp: None,
        }]
    );
    assert_eq!(DEFAULT_MAX_CONNECTIONS, 10_000);
    assert_eq!(DEFAULT_IDLE_TIMEOUT, secs(600));
    assert_eq!(
        *backend(&c, "app"),
        Backend {
            name: "app".into(),
            balance: Balance::RoundRobin,
            endpoints: vec![EndpointSpec {
                target: Target::Addr(addr("127.0.0.1:9000")),
                weight: 1,
            }],
            connect_timeout: secs(5),
            retries: 2,
            resolve_interval: secs(30),
            passive: Passive {
                max_fails: 1,
                fail_timeout: secs(10),
            },
            health_check: None,
            tls: None,
            proxy_protocol: None,
        }
    );
    assert_eq!(c.drain_timeout, secs(30));
}

#[test]
fn health_check_defaults() {
    let cases: &[(&str, HealthCheck)] = &[
        (
            "{}",
            HealthCheck {
                kind: HealthCheckKind::Tcp,
                port: None,
                interval: secs(2),
                timeout: secs(1),
                rise: 2,
                fall: 3,
            },
        ),
        (
            "{protocol: HTTP}",
            HealthCheck {
                kind: HealthCheckKind::Http {
                    path: "/".into(),
                    host: None,
                    expect_status: 200..=399,
                },
                port: None,
                interval: secs(2),
                timeout: secs(1),
                rise: 2,
                fall: 3,
            },
        ),
        (
            // A timeout defaults to the interval when that is shorter than 1s.
            "{interval: 500ms}",
            HealthCheck {
                kind: HealthCheckKind::Tcp,
                port: None,
                interval: Duration::from_millis(500),
                timeout: Duration::from_millis(500),
                rise: 2,
                fall: 3,
            },
        ),
        (
            "{protocol: HTTP, path: /healthz, host: App.Local, expectStatus: 204, \
             interval: 10s, timeout: 3s, rise: 1, fall: 5}",
            HealthCheck {
                kind: HealthCheckKind::Http {
                    path: "/healthz".into(),
                    host: Some("App.Local".into()),
                    expect_status: 204..=204,
                },
                port: None,
                interval: secs(10),
                timeout: secs(3),
                rise: 1,
                fall: 5,
            },
        ),
        (
            "{protocol: HTTP, expectStatus: 200-299}",
            HealthCheck {
                kind: HealthCheckKind::Http {
                    path: "/".into(),
                    host: None,
                    expect_status: 200..=299,
                },
                port: None,
                interval: secs(2),
                timeout: secs(1),
                rise: 2,
                fall: 3,
            },
        ),
    ];
    for (hc, want) in cases {
        let yaml = format!(
            "
            forwards:
              - {{listen: 127.0.0.1:0, to: 127.0.0.1:1}}
            gateways:
              - name: edge
                listeners:
                  - {{name: web, port: 0, backend: app}}
            backends:
              - name: app
                endpoints: [127.0.0.1:9000]
                healthCheck: {hc}
            "
        );
        let c = ok(&yaml).config;
        assert_eq!(backend(&c, "app").health_check.as_ref(), Some(want), "{hc}");
    }
}

#[test]
fn backend_settings() {
    let c = ok("
        gateways:
          - name: edge
            listeners:
              - {name: web, port: 0, backend: app}
              - {name: api, port: 1, backend: api}
        backends:
          - name: app
            balance: LeastConnections
            connectTimeout: 250ms
            retries: 0
            resolveInterval: 1m
            passive: {maxFails: 0, failTimeout: 1.5s}
            endpoints: [127.0.0.1:9000]
          - name: api
            balance: ConsistentHash
            passive: {maxFails: 5}
            endpoints: [127.0.0.1:9001]
        ")
    .config;
    let app = backend(&c, "app");
    assert_eq!(app.balance, Balance::LeastConnections);
    assert_eq!(app.connect_timeout, Duration::from_millis(250));
    assert_eq!(app.retries, 0);
    assert_eq!(app.resolve_interval, secs(60));
    assert_eq!(
        app.passive,
        Passive {
            max_fails: 0,
            fail_timeout: Duration::from_millis(1500),
        }
    );
    let api = backend(&c, "api");
    assert_eq!(api.balance, Balance::ConsistentHash);
    assert_eq!(
        api.passive,
        Passive {
            max_fails: 5,
            fail_timeout: secs(10),
        }
    );
}

#[test]
fn endpoint_forms_and_weights() {
    let c = ok("
        gateways:
          - name: edge
            listeners:
              - {name: web, port: 0, backend: app}
        backends:
          - name: app
            endpoints:
              - 127.0.0.1:9000
              - '[::1]:9001'
              - App.Home.Arpa:9002
              - address: 127.0.0.1:9003
              - address: '[::1]:9004'
                weight: 5
              - {address: localhost:9005, weight: 0}
        ")
    .config;
    let got: Vec<(String, u32)> = backend(&c, "app")
        .endpoints
        .iter()
        .map(|e| (e.target.to_string(), e.weight))
        .collect();
    let want = [
        ("127.0.0.1:9000", 1),
        ("[::1]:9001", 1),
        ("app.home.arpa:9002", 1),
        ("127.0.0.1:9003", 1),
        ("[::1]:9004", 5),
        ("localhost:9005", 0),
    ];
    assert_eq!(
        got,
        want.map(|(t, w)| (t.to_owned(), w)).to_vec(),
        "short and long forms"
    );
    let app = backend(&c, "app");
    assert_eq!(
        app.endpoints[2].target,
        Target::Host {
            host: "app.home.arpa".into(),
            port: 9002
        }
    );
    assert!(app.has_hostnames());
}

#[test]
fn listeners_fan_out_over_gateway_addresses() {
    // (yaml, [(listener name, bind)]) in the order the config lists them.
    let b = "
        backends:
          - name: app
            endpoints: [127.0.0.1:9000]
        ";
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "
            gateways:
              - name: edge
                addresses: [127.0.0.1, '::1']
                listeners:
                  - {name: web, port: 8080, backend: app}
                  - {name: tls, port: 8443, backend: app}
            ",
            &[
                ("edge/web", "127.0.0.1:8080"),
                ("edge/web", "[::1]:8080"),
                ("edge/tls", "127.0.0.1:8443"),
                ("edge/tls", "[::1]:8443"),
            ],
        ),
        (
            "
            gateways:
              - name: edge
                addresses: ['[::1]', 127.0.0.2]
                listeners:
                  - {name: web, port: 8080, backend: app}
                  - {name: only, address: 127.0.0.3, port: 8080, backend: app}
            ",
            &[
                ("edge/web", "[::1]:8080"),
                ("edge/web", "127.0.0.2:8080"),
                ("edge/only", "127.0.0.3:8080"),
            ],
        ),
        (
            // The IPv4 and IPv6 wildcards are two separate sockets (IPV6_V6ONLY).
            "
            gateways:
              - name: edge
                addresses: [0.0.0.0, '::']
                listeners:
                  - {name: web, port: 8080, backend: app}
            ",
            &[("edge/web", "0.0.0.0:8080"), ("edge/web", "[::]:8080")],
        ),
        (
            // Port 0 (a free port each) never conflicts.
            "
            gateways:
              - name: a
                addresses: [127.0.0.1]
                listeners:
                  - {name: x, port: 0, backend: app}
                  - {name: y, port: 0, backend: app}
            ",
            &[("a/x", "127.0.0.1:0"), ("a/y", "127.0.0.1:0")],
        ),
    ];
    for (gateways, want) in cases {
        let yaml = format!("{}{}", dedent(gateways), dedent(b));
        let c = load_str("test.yaml", &yaml)
            .unwrap_or_else(|d| panic!("{d}"))
            .config;
        let got: Vec<(String, SocketAddr)> = c
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.bind))
            .collect();
        let want: Vec<(String, SocketAddr)> = want
            .iter()
            .map(|(n, a)| ((*n).to_owned(), addr(a)))
            .collect();
        assert_eq!(got, want, "{gateways}");
    }
}

#[test]
fn listener_settings() {
    let c = ok("
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - name: web
                port: 8080
                protocol: TCP
                backend: app
                maxConnections: 5
                idleTimeout: 90s
        backends:
          - name: app
            endpoints: [127.0.0.1:9000]
        ")
    .config;
    let web = listener(&c, "edge/web");
    assert_eq!(web.max_connections, 5);
    assert_eq!(web.idle_timeout, secs(90));
    assert_eq!(web.protocol, Protocol::Tcp);
}

#[test]
fn forwards() {
    let c = ok("
        forwards:
          - name: redis
            listen: 127.0.0.1:16379
            to: 127.0.0.1:6379
            idleTimeout: 1h
            maxConnections: 100
          - listen: '[::1]:15432'
            to: db.home.arpa:5432
          - listen: 17000
            to: '[::1]:7000'
        settings:
          drainTimeout: 0s
        ")
    .config;
    assert_eq!(
        *listener(&c, "forward/redis"),
        Listener {
            name: "forward/redis".into(),
            bind: addr("127.0.0.1:16379"),
            protocol: Protocol::Tcp,
            routes: vec![RouteEntry {
                route: "default".into(),
                hosts: vec![HostMatch::Any],
                backend: "forward/redis".into(),
                access: Access::default(),
            }],
            hostname: None,
            tls: None,
            http_routes: vec![],
            http: None,
            max_connections: 100,
            idle_timeout: secs(3600),
            access: Access::default(),
            accept_proxy: None,
            udp: None,
        }
    );
    assert_eq!(
        *backend(&c, "forward/redis"),
        Backend {
            name: "forward/redis".into(),
            balance: Balance::RoundRobin,
            endpoints: vec![EndpointSpec {
                target: Target::Addr(addr("127.0.0.1:6379")),
                weight: 1,
            }],
            connect_timeout: secs(5),
            retries: 0,
            resolve_interval: secs(30),
            passive: Passive {
                max_fails: 1,
                fail_timeout: secs(10),
            },
            health_check: None,
            tls: None,
            proxy_protocol: None,
        }
    );
    // Without a name, a forward is named by what it listens on.
    let db = listener(&c, "forward/[::1]:15432");
    assert_eq!(db.bind, addr("[::1]:15432"));
    assert_eq!(db.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(db.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert_eq!(
        backend(&c, "forward/[::1]:15432").endpoints[0].target,
        Target::Host {
            host: "db.home.arpa".into(),
            port: 5432
        }
    );
    // A bare port listens on every IPv4 address.
    assert_eq!(listener(&c, "forward/17000").bind, addr("0.0.0.0:17000"));
    assert_eq!(c.listeners.len(), 3);
    assert_eq!(c.backends.len(), 3);
    assert_eq!(c.drain_timeout, Duration::ZERO);
}

#[test]
fn durations_accepted() {
    let cases: &[(&str, Duration)] = &[
        ("250ms", Duration::from_millis(250)),
        ("2s", secs(2)),
        ("1.5s", Duration::from_millis(1500)),
        ("10m", secs(600)),
        ("1h", secs(3600)),
        ("'2 s'", secs(2)),
    ];
    for (text, want) in cases {
        let c = ok(&format!(
            "
            forwards:
              - {{listen: 127.0.0.1:0, to: 127.0.0.1:1, idleTimeout: {text}}}
            "
        ))
        .config;
        assert_eq!(c.listeners[0].idle_timeout, *want, "{text}");
    }
}

#[test]
fn format_and_parse_duration_round_trip() {
    let cases: &[(Duration, &str)] = &[
        (Duration::ZERO, "0s"),
        (Duration::from_millis(250), "250ms"),
        (Duration::from_millis(1500), "1500ms"),
        (secs(2), "2s"),
        (secs(90), "90s"),
        (secs(600), "10m"),
        (secs(7200), "2h"),
    ];
    for (d, text) in cases {
        assert_eq!(format_duration(*d), *text);
        assert_eq!(parse_duration(text), Ok(*d), "{text}");
    }
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("-1s").is_err());
    assert!(parse_duration("100000h").is_err());
}

// ---------------------------------------------------------------------------------------------
// diff

fn compiled(yaml: &str) -> Config {
    ok(yaml).config
}

fn key(name: &str, bind: &str) -> ListenerKey {
    ListenerKey {
        transport: Transport::Tcp,
        bind: addr(bind),
        ephemeral_name: addr(bind).port().eq(&0).then(|| name.to_owned()),
    }
}

const BASE: &str = "
    gateways:
      - name: edge
        addresses: [127.0.0.1]
        listeners:
          - {name: web, port: 8080, backend: app}
          - {name: api, port: 8081, backend: api}
          - {name: old, port: 8082, backend: app}
    backends:
      - name: app
        endpoints: [127.0.0.1:9000]
      - name: api
        endpoints: [127.0.0.1:9001]
      - name: gone
        endpoints: [127.0.0.1:9002]
    ";

#[test]
fn diff_of_identical_configs_is_empty() {
    let a = compiled(BASE);
    let d = diff(&a, &compiled(BASE));
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        d.keep,
        vec![
            key("", "127.0.0.1:8080"),
            key("", "127.0.0.1:8081"),
            key("", "127.0.0.1:8082"),
        ]
    );
}

#[test]
fn diff_binds_closes_updates_and_keeps() {
    let old = compiled(BASE);
    let new = compiled(
        "
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - {name: web, port: 8080, backend: app}
              - {name: api, port: 8081, backend: app, idleTimeout: 1m}
              - {name: new, port: 8083, backend: api}
        backends:
          - name: app
            endpoints: [127.0.0.1:9000]
          - name: api
            endpoints: [127.0.0.1:9001, 127.0.0.1:9003]
          - name: fresh
            endpoints: [127.0.0.1:9004]
        ",
    );
    assert_eq!(
        diff(&old, &new),
        ConfigDiff {
            bind: vec![key("", "127.0.0.1:8083")],
            close: vec![key("", "127.0.0.1:8082")],
            update: vec![key("", "127.0.0.1:8081")],
            keep: vec![key("", "127.0.0.1:8080")],
            backends_added: vec!["fresh".into()],
            backends_removed: vec!["gone".into()],
            backends_changed: vec!["api".into()],
        }
    );
    // And back again.
    let back = diff(&new, &old);
    assert_eq!(back.bind, vec![key("", "127.0.0.1:8082")]);
    assert_eq!(back.close, vec![key("", "127.0.0.1:8083")]);
    assert_eq!(back.backends_added, vec!["gone".to_owned()]);
    assert_eq!(back.backends_removed, vec!["fresh".to_owned()]);
}

#[test]
fn diff_a_rename_keeps_the_socket() {
    // The socket is identified by protocol and address: a rename is an update, not a rebind.
    let old = compiled(
        "
        forwards:
          - {name: a, listen: 127.0.0.1:16379, to: 127.0.0.1:6379}
        ",
    );
    let new = compiled(
        "
        forwards:
          - {name: b, listen: 127.0.0.1:16379, to: 127.0.0.1:6379}
        ",
    );
    let d = diff(&old, &new);
    assert_eq!(d.update, vec![key("", "127.0.0.1:16379")]);
    assert!(d.bind.is_empty() && d.close.is_empty());
    assert_eq!(d.backends_added, vec!["forward/b".to_owned()]);
    assert_eq!(d.backends_removed, vec!["forward/a".to_owned()]);
}

#[test]
fn diff_port_zero_listeners_are_keyed_by_name() {
    let old = compiled(
        "
        forwards:
          - {name: a, listen: 127.0.0.1:0, to: 127.0.0.1:6379}
          - {name: b, listen: 127.0.0.1:0, to: 127.0.0.1:6380}
        ",
    );
    let keys: Vec<ListenerKey> = old.listeners.iter().map(|l| l.key()).collect();
    assert_eq!(
        keys,
        vec![
            key("forward/a", "127.0.0.1:0"),
            key("forward/b", "127.0.0.1:0"),
        ]
    );
    let new = compiled(
        "
        forwards:
          - {name: a, listen: 127.0.0.1:0, to: 127.0.0.1:6379, maxConnections: 7}
          - {name: c, listen: 127.0.0.1:0, to: 127.0.0.1:6380}
        ",
    );
    let d = diff(&old, &new);
    assert_eq!(d.update, vec![key("forward/a", "127.0.0.1:0")]);
    assert_eq!(d.bind, vec![key("forward/c", "127.0.0.1:0")]);
    assert_eq!(d.close, vec![key("forward/b", "127.0.0.1:0")]);
    assert!(d.keep.is_empty());
    // A specific port is not keyed by name.
    let l = compiled(
        "
        forwards:
          - {name: a, listen: 127.0.0.1:16379, to: 127.0.0.1:6379}
        ",
    );
    assert_eq!(l.listeners[0].key().ephemeral_name, None);
}

// ---------------------------------------------------------------------------------------------
// Rendering

#[test]
fn render_points_at_the_line_and_column() {
    let yaml = dedent(
        "
        gateways:
          - name: edge
            listeners:
              - name: web
                port: 80
                backend: ap
        backends:
          - name: app
            endpoints: [127.0.0.1:8080]
        ",
    );
    let d = load_str("gatehouse.yaml", &yaml).unwrap_err();
    assert_eq!(d.error_count(), 1, "{d}");
    let e = first_error(&d);
    let rendered = e.render(&d.source);
    let want = "\
error: listener `edge/web` refers to backend `ap`, which is not defined
  --> gatehouse.yaml:6:18
   |
 6 |         backend: ap
   |                  ^
   = hint: did you mean `app`?
";
    assert_eq!(rendered, want);
    // The caret is under the column.
    let lines: Vec<&str> = rendered.lines().collect();
    let quoted = lines[3].split_once(" | ").unwrap().1;
    let caret = lines[4].split_once(" | ").unwrap().1;
    assert_eq!(caret.find('^'), Some(17));
    assert_eq!(&quoted[17..], "ap");
    assert_eq!(
        e.one_line(&d.source),
        "gatehouse.yaml:6:18: error: listener `edge/web` refers to backend `ap`, which is \
         not defined (hint: did you mean `app`?)"
    );
}

#[test]
fn render_shows_the_first_definition_and_a_count() {
    let yaml = dedent(
        "
        backends:
          - name: app
            endpoints: [127.0.0.1:8080]
          - name: app
            endpoints: ['127.0.0.1']
        ",
    );
    let d = load_str("g.yaml", &yaml).unwrap_err();
    let all = d.render();
    assert!(all.contains("  --> g.yaml:4:11\n"), "{all}");
    assert!(
        all.contains("   = note: first defined at g.yaml:2:11\n"),
        "{all}"
    );
    assert!(all.contains(" 5 |     endpoints: ['127.0.0.1']\n"), "{all}");
    assert!(
        all.contains(&format!("   | {}^\n", " ".repeat(16))),
        "caret under column 17: {all}"
    );
    assert!(all.ends_with("g.yaml: 2 errors in config\n"), "{all}");
    assert_eq!(d.to_string(), all);
    // One line holds every diagnostic, the warning too.
    assert_eq!(
        d.one_line().split("; g.yaml:").count(),
        3,
        "{}",
        d.one_line()
    );
}

#[test]
fn render_widens_the_gutter_for_long_files() {
    let mut yaml = String::from("backends:\n");
    for i in 0..60 {
        yaml.push_str(&format!(
            "  - {{name: b{i}, endpoints: ['127.0.0.1:{}']}}\n",
            1000 + i
        ));
    }
    yaml.push_str("  - {name: late, endpoints: ['127.0.0.1'], retries: 1}\n");
    yaml.push_str(&"# padding\n".repeat(50));
    yaml.push_str(
        "gateways:\n  - name: g\n    listeners:\n      - {name: l, port: 0, backend: lat}\n",
    );
    let d = load_str("long.yaml", &yaml).unwrap_err();
    let e = d.items.iter().find(|i| i.pos.line == 116).expect("{d}");
    let rendered = e.render(&d.source);
    assert!(rendered.contains("\n   --> long.yaml:116:"), "{rendered}");
    assert!(rendered.contains("\n116 |       - {name: l"), "{rendered}");
    assert!(rendered.contains("did you mean `late`?"), "{rendered}");
}

// ---------------------------------------------------------------------------------------------
// The examples directory

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("the examples directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_compiles() {
    let files = example_files();
    assert!(
        files.iter().any(|p| p.ends_with("gatehouse.yaml")),
        "examples/gatehouse.yaml exists: {files:?}"
    );
    for path in files {
        // `NAME.refused.yaml` shows an error `check` gives: it must not compile.
        let refused = path.to_string_lossy().ends_with(".refused.yaml");
        match (load_file(&path), refused) {
            (Ok(loaded), false) => {
                assert!(!loaded.config.listeners.is_empty(), "{}", path.display())
            }
            (Err(d), false) => panic!("{} does not compile:\n{d}", path.display()),
            (Ok(_), true) => panic!("{} compiles but is meant to be refused", path.display()),
            (Err(d), true) => assert!(d.has_errors(), "{}", path.display()),
        }
    }
}

#[test]
fn the_main_example_compiles_without_warnings_and_binds_loopback_only() {
    let loaded = load_file(&examples_dir().join("gatehouse.yaml")).unwrap();
    assert_eq!(
        loaded.warnings.items.len(),
        0,
        "{}",
        loaded.warnings.render()
    );
    let c = &loaded.config;
    for l in &c.listeners {
        assert!(l.bind.ip().is_loopback(), "{} binds {}", l.name, l.bind);
    }
    for b in c.backends.values() {
        for e in &b.endpoints {
            match &e.target {
                Target::Addr(a) => assert!(a.ip().is_loopback(), "{}: {a}", b.name),
                Target::Host { host, .. } => assert_eq!(host, "localhost", "{}", b.name),
            }
        }
    }
}

#[test]
fn the_reference_shows_the_example_verbatim() {
    let example = std::fs::read_to_string(examples_dir().join("gatehouse.yaml")).unwrap();
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md"))
            .unwrap();
    assert!(
        docs.contains(&format!("```yaml\n{example}```\n")),
        "docs/config.md ends with examples/gatehouse.yaml, verbatim"
    );
}

/// `key: value` on one line (or `- key: value`), with a scalar value: the column (1-based)
/// where the key starts. Comment lines, `key:` opening a block, and list items that are
/// plain scalars (`- 127.0.0.1:80`) are not pairs.
fn scalar_pair_column(line: &str) -> Option<usize> {
    let indent = line.len() - line.trim_start().len();
    let mut rest = line.trim_start();
    let mut column = indent + 1;
    if let Some(item) = rest.strip_prefix("- ") {
        column += 2 + (item.len() - item.trim_start().len());
        rest = item.trim_start();
    }
    let key_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    if key_len == 0 || !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let after = rest[key_len..].strip_prefix(':')?;
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    let value = after.split(" #").next().unwrap_or("").trim();
    (!value.is_empty()).then_some(column)
}

#[test]
fn a_bogus_key_is_refused_everywhere_in_the_example() {
    let path = examples_dir().join("gatehouse.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut tried = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(column) = scalar_pair_column(line) else {
            continue;
        };
        tried += 1;
        let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        edited.insert(i + 1, format!("{}bogusKey: 1", " ".repeat(column - 1)));
        let yaml = edited.join("\n");
        let inserted_line = (i + 2) as u64;
        match load_str("gatehouse.yaml", &yaml) {
            Ok(_) => panic!("bogusKey after line {} was accepted:\n{yaml}", i + 1),
            Err(d) => {
                let e = first_error(&d);
                assert_eq!(
                    (e.pos.line, e.pos.column, e.message.as_str()),
                    (inserted_line, column as u64, "unknown key `bogusKey`"),
                    "after line {}: {line}\n{d}",
                    i + 1
                );
                assert_eq!(d.error_count(), 1, "{d}");
                assert!(e.hint.is_some(), "{d}");
            }
        }
    }
    assert!(
        tried >= 30,
        "the example should exercise most keys; tried {tried}"
    );
}

#[test]
fn scalar_pairs_are_recognised() {
    let cases: &[(&str, Option<usize>)] = &[
        ("gateways:", None),
        ("  - name: edge", Some(5)),
        ("    addresses: [\"127.0.0.1\", \"::1\"]", Some(5)),
        ("        port: 8443", Some(9)),
        ("        protocol: TCP            # comment", Some(9)),
        ("      - 127.0.0.1:9001                # short form", None),
        ("      - localhost:5432", None),
        ("      - address: \"[::1]:9003\"", Some(9)),
        ("    passive:", None),
        ("    healthCheck:   # a comment", None),
        ("# name: commented", None),
        ("", None),
    ];
    for (line, want) in cases {
        assert_eq!(scalar_pair_column(line), *want, "{line:?}");
    }
}

#[test]
fn unquoted_ipv6_endpoint_gets_a_quoting_hint() {
    let yaml = "backends:\n  - name: a\n    endpoints:\n      - [::1]:8080\n";
    let err = gatehouse_config::load_str("t.yaml", yaml).unwrap_err();
    let d = &err.items[0];
    assert_eq!((d.pos.line, d.pos.column), (4, 9));
    assert!(
        d.message
            .contains("quote an IPv6 endpoint, e.g. \"[::1]:8080\""),
        "{}",
        d.message
    );
}

/// Bad input gets diagnostics, never a panic: prefixes of the example file, and the example
/// with characters replaced by characters that break YAML or values. The cost grows with the
/// square of the file's length, so the samples thin out as the example grows: every other
/// prefix and every fourth character for a 5000-byte file, proportionally fewer beyond.
#[test]
fn no_input_derived_from_the_example_panics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gatehouse.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let n = text.len();
    let stride = |base: usize| (base * n * n).div_ceil(5000 * 5000).max(base);
    for &end in boundaries.iter().step_by(stride(2)) {
        let _ = gatehouse_config::load_str("prefix.yaml", &text[..end]);
    }
    let mut checked = 0;
    for &at in boundaries.iter().step_by(stride(4)) {
        let next = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
        for replacement in ["", ":", "[", "-", "\"", "9", "\t", "{", "*a", "&a", "é"] {
            let mutated = format!("{}{}{}", &text[..at], replacement, &text[next..]);
            if let Err(d) = gatehouse_config::load_str("mutated.yaml", &mutated) {
                // Every error points somewhere inside the file (or at its start).
                let lines = mutated.lines().count() as u64 + 1;
                assert!(
                    d.items.iter().all(|i| i.pos.line <= lines),
                    "{}",
                    d.render()
                );
                let _ = d.render();
            }
            checked += 1;
        }
    }
    assert!(checked > 1000);
}

// ---------------------------------------------------------------------------------------------
// TLS listeners and routes

fn hosts(entry: &RouteEntry) -> Vec<String> {
    entry.hosts.iter().map(ToString::to_string).collect()
}

fn route_table(l: &Listener) -> Vec<(String, Vec<String>, String)> {
    l.routes
        .iter()
        .map(|r| (r.route.clone(), hosts(r), r.backend.clone()))
        .collect()
}

fn owned(rows: &[(&str, &[&str], &str)]) -> Vec<(String, Vec<String>, String)> {
    rows.iter()
        .map(|(r, h, b)| {
            (
                r.to_string(),
                h.iter().map(ToString::to_string).collect(),
                b.to_string(),
            )
        })
        .collect()
}

#[test]
fn tls_routes_attach_with_hostname_intersection_and_default_last() {
    let loaded = ok(r#"
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - name: pass
                port: 443
                protocol: TLS
                hostname: "*.Int.Example.TEST."
                tls: {mode: Passthrough}
              - name: term
                port: 443
                protocol: TLS
                tls:
                  certificates:
                    - {certFile: ../../examples/tls/example.crt, keyFile: ../../examples/tls/example.key}
                  alpn: [h2, http/1.1]
                  minVersion: "1.3"
                backend: web
        routes:
          - name: git
            kind: TLSRoute
            parentRefs: [edge/pass]
            hostnames: [git.int.example.test, other.example.test]
            backend: git
          - {name: all-int, kind: TLSRoute, parentRefs: [{name: edge, sectionName: pass}], backend: int}
          - {name: api, kind: TLSRoute, parentRefs: [edge], hostnames: ["*.example.test"], backend: api}
        backends:
          - {name: web, endpoints: [127.0.0.1:8080]}
          - {name: git, endpoints: [127.0.0.1:3443]}
          - {name: int, endpoints: [127.0.0.1:4443]}
          - {name: api, endpoints: [127.0.0.1:5443]}
    "#);
    let c = &loaded.config;
    let pass = listener(c, "edge/pass");
    assert_eq!(pass.protocol, Protocol::Tls);
    assert_eq!(
        pass.hostname,
        Some(HostPattern::Wildcard("int.example.test".into()))
    );
    assert_eq!(
        route_table(pass),
        owned(&[
            ("git", &["git.int.example.test"], "git"),
            ("all-int", &["*.int.example.test"], "int"),
            ("api", &["*.int.example.test"], "api"),
        ])
    );
    let term = listener(c, "edge/term");
    assert_eq!(
        route_table(term),
        owned(&[
            ("api", &["*.example.test"], "api"),
            ("default", &["*"], "web")
        ])
    );
    let Some(TlsMode::Terminate(t)) = term.tls.as_ref().map(|t| &t.mode) else {
        panic!("edge/term terminates")
    };
    assert_eq!(t.alpn, ["h2", "http/1.1"]);
    assert!(t.tls13_only);
    assert_eq!(
        t.certificates[0].loaded.names(),
        ["example.test", "*.example.test"]
    );
    assert_eq!(term.tls.as_ref().unwrap().handshake_timeout, secs(10));
    // Both listeners share one socket.
    let sockets = c.sockets();
    assert_eq!(sockets.len(), 1);
    assert_eq!(sockets.values().next().unwrap().len(), 2);
    // The certificate files are watched.
    let files: Vec<String> = c
        .files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["example.crt", "example.key"]);
    // Two routes claim `*.int.example.test` on edge/pass: the first wins, with a warning.
    let warnings: Vec<String> = loaded
        .warnings
        .warnings()
        .map(|w| w.message.clone())
        .collect();
    assert_eq!(
        warnings,
        [
            "routes `all-int` and `api` both serve `*.int.example.test` on `edge/pass`; `all-int`, listed first, wins"
        ]
    );
}

#[test]
fn tls_warnings() {
    let loaded = ok(r#"
        gateways:
          - name: edge
            listeners:
              - {name: empty, port: 443, protocol: TLS, tls: {mode: Passthrough}}
              - {name: git, port: 8443, protocol: TLS, hostname: git.example.test, tls: {mode: Passthrough}}
        routes:
          - {name: wiki, kind: TLSRoute, parentRefs: [edge/git], hostnames: [wiki.example.test], backend: app}
        backends:
          - name: app
            endpoints: [127.0.0.1:8443]
          - name: secure
            endpoints: [127.0.0.1:9443]
            tls: {insecureSkipVerify: true}
          - name: tcp
            endpoints: [127.0.0.1:9444]
        forwards:
          - {listen: "127.0.0.1:9000", to: "127.0.0.1:9001"}
    "#);
    let warnings: Vec<String> = loaded
        .warnings
        .warnings()
        .map(|w| w.message.clone())
        .collect();
    for expected in [
        "TLS listener `edge/empty` has no routes and no `backend`: it closes every connection",
        "route `wiki` serves no name on `edge/git`",
        "backend certificates will not be verified",
        "backend `secure` is not used by any listener, route or VRRP track",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "no warning {expected:?} in {warnings:#?}"
        );
    }
}

#[test]
fn backend_tls_and_tls_health_checks() {
    let c = ok(r#"
        gateways:
          - name: edge
            listeners:
              - {name: web, port: 80, backend: app}
              - {name: other, port: 81, backend: sys}
        backends:
          - name: app
            endpoints: [127.0.0.1:8443]
            tls: {caFile: ../../examples/tls/ca.crt, serverName: API.example.test}
            healthCheck: {protocol: TLS, host: api.example.test}
          - name: sys
            endpoints: [127.0.0.1:8444]
            tls: {}
    "#)
    .config;
    let app = backend(&c, "app");
    let tls = app.tls.as_ref().unwrap();
    assert_eq!(tls.server_name.as_deref(), Some("api.example.test"));
    assert!(matches!(&tls.verify, BackendVerify::Ca { path, .. } if path.ends_with("ca.crt")));
    assert_eq!(
        app.health_check.as_ref().unwrap().kind,
        HealthCheckKind::Tls {
            server_name: Some("api.example.test".into())
        }
    );
    // `tls: {}` verifies against the system bundle.
    let sys = backend(&c, "sys").tls.as_ref().unwrap();
    assert!(matches!(&sys.verify, BackendVerify::Ca { path, .. } if path.starts_with("/etc")));
}

#[test]
fn host_patterns_match_and_intersect_as_gateway_api_says() {
    let p = |s: &str| parse_host_pattern(s).unwrap();
    assert!(p("*.example.com").matches("a.example.com"));
    assert!(p("*.example.com").matches("a.b.example.com"));
    assert!(!p("*.example.com").matches("example.com"));
    assert!(!p("*.example.com").matches("aexample.com"));
    assert!(p("git.example.com").matches("git.example.com"));
    assert_eq!(
        p("*.example.com").intersect(&p("git.example.com")),
        Some(p("git.example.com"))
    );
    assert_eq!(
        p("*.example.com").intersect(&p("*.int.example.com")),
        Some(p("*.int.example.com"))
    );
    assert_eq!(
        p("*.int.example.com").intersect(&p("*.example.com")),
        Some(p("*.int.example.com"))
    );
    assert_eq!(p("*.example.com").intersect(&p("*.example.org")), None);
    assert_eq!(p("a.example.com").intersect(&p("b.example.com")), None);
    for bad in [
        "",
        "*",
        "a.*.com",
        "1.2.3.4",
        "under_score.com",
        "-a.com",
        "a..com",
    ] {
        assert!(parse_host_pattern(bad).is_err(), "{bad:?} accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP and HTTPS listeners, HTTPRoutes

const CERT: &str =
    "{certFile: ../../examples/tls/example.crt, keyFile: ../../examples/tls/example.key}";

/// The rule `backend: NAME` stands for: every request to NAME.
fn to_backend(name: &str) -> HttpRule {
    HttpRule {
        matches: vec![],
        filters: vec![],
        backends: vec![WeightedBackend {
            backend: name.into(),
            weight: 1,
        }],
        timeouts: HttpTimeouts::default(),
    }
}

fn http_table(l: &Listener) -> Vec<(String, Vec<String>)> {
    l.http_routes
        .iter()
        .map(|r| {
            let hosts = r.hosts.iter().map(ToString::to_string).collect();
            (r.route.clone(), hosts)
        })
        .collect()
}

fn owned_hosts(rows: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    rows.iter()
        .map(|(r, h)| (r.to_string(), h.iter().map(ToString::to_string).collect()))
        .collect()
}

#[test]
fn an_http_listener_with_a_backend_is_one_default_route() {
    let loaded = ok("
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - name: web
                port: 8080
                protocol: HTTP
                backend: app
        backends:
          - name: app
            endpoints: [127.0.0.1:9000]
        ");
    assert_eq!(loaded.warnings.items.len(), 0, "{}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(
        *listener(c, "edge/web"),
        Listener {
            name: "edge/web".into(),
            bind: addr("127.0.0.1:8080"),
            protocol: Protocol::Http,
            routes: vec![],
            hostname: None,
            tls: None,
            http_routes: vec![HttpRouteEntry {
                route: "default".into(),
                hosts: vec![HostMatch::Any],
                rules: std::sync::Arc::new(vec![to_backend("app")]),
                access: Access::default(),
            }],
            http: Some(HttpSettings {
                header_timeout: secs(10),
                max_header_bytes: 65_536,
                max_headers: 100,
                keepalive_timeout: secs(60),
            }),
            max_connections: 10_000,
            idle_timeout: secs(600),
            access: Access::default(),
            accept_proxy: None,
            udp: None,
        }
    );
    assert_eq!(
        HttpSettings::default(),
        listener(c, "edge/web").http.clone().unwrap()
    );
    assert_eq!(listener(c, "edge/web").backends(), ["app"]);
}

#[test]
fn http_settings_are_read() {
    let c = ok("
        gateways:
          - name: edge
            listeners:
              - name: web
                port: 0
                protocol: HTTP
                backend: app
                http:
                  headerTimeout: 2500ms
                  maxHeaderBytes: 1024
                  maxHeaders: 1000
                  keepaliveTimeout: 5m
        backends:
          - name: app
            endpoints: [127.0.0.1:9000]
        ")
    .config;
    assert_eq!(
        listener(&c, "edge/web").http,
        Some(HttpSettings {
            header_timeout: Duration::from_millis(2500),
            max_header_bytes: 1024,
            max_headers: 1000,
            keepalive_timeout: secs(300),
        })
    );
}

#[test]
fn https_listeners_terminate_with_h2_and_http11_by_default() {
    let c = ok(&format!(
        r#"
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - name: default-alpn
                port: 8443
                protocol: HTTPS
                hostname: a.example.test
                tls:
                  certificates: [{CERT}]
                backend: app
              - name: h1
                port: 8443
                protocol: HTTPS
                hostname: b.example.test
                tls:
                  certificates: [{CERT}]
                  alpn: [http/1.1]
                  minVersion: "1.3"
                  handshakeTimeout: 3s
                backend: app
              - name: none
                port: 8443
                protocol: HTTPS
                hostname: c.example.test
                tls:
                  certificates: [{CERT}]
                  alpn: []
                backend: app
        backends:
          - name: app
            endpoints: [127.0.0.1:9000]
        "#
    ))
    .config;
    let terminate = |name: &str| {
        let l = listener(&c, name);
        assert_eq!(l.protocol, Protocol::Https);
        assert_eq!(l.http, Some(HttpSettings::default()), "{name}");
        match l.tls.as_ref().map(|t| (&t.mode, t.handshake_timeout)) {
            Some((TlsMode::Terminate(t), timeout)) => (t.alpn.clone(), t.tls13_only, timeout),
            other => panic!("{name} terminates TLS: {other:?}"),
        }
    };
    assert_eq!(
        terminate("edge/default-alpn"),
        (
            vec!["h2".to_owned(), "http/1.1".to_owned()],
            false,
            secs(10)
        )
    );
    assert_eq!(
        terminate("edge/h1"),
        (vec!["http/1.1".to_owned()], true, secs(3))
    );
    assert_eq!(terminate("edge/none"), (vec![], false, secs(10)));
    // The certificate files of HTTPS listeners are watched like those of TLS ones.
    let files: Vec<String> = c
        .files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["example.crt", "example.key"]);
    // One socket for all three: the server name decides.
    assert_eq!(c.sockets().len(), 1);
    // A TLS listener still offers no ALPN unless told to.
    let tls = ok(&format!(
        "
        gateways:
          - name: edge
            listeners:
              - {{name: t, port: 0, protocol: TLS, tls: {{certificates: [{CERT}]}}, backend: app}}
        backends:
          - {{name: app, endpoints: [127.0.0.1:9000]}}
        "
    ))
    .config;
    let Some(TlsMode::Terminate(t)) = tls.listeners[0].tls.as_ref().map(|t| &t.mode) else {
        panic!("terminates")
    };
    assert!(t.alpn.is_empty());
}

#[test]
fn http_routes_compile_to_rules() {
    let loaded = ok(r#"
        gateways:
          - name: edge
            listeners:
              - {name: web, port: 0, protocol: HTTP}
        routes:
          - name: api
            kind: HTTPRoute
            parentRefs: [edge/web]
            rules:
              - matches:
                  - path: {type: Exact, value: /api/health}
                    method: GET
                  - path: {value: /api}
                    headers:
                      - {name: X-Env, value: prod}
                      - {name: User-Agent, type: RegularExpression, value: "^curl/.*"}
                    queryParams:
                      - {name: Debug, value: "1"}
                  - {path: {type: RegularExpression, value: "/v[0-9]+/.*"}}
                  - headers: [{name: x-canary, value: "true"}]
                filters:
                  - type: RequestHeaderModifier
                    requestHeaderModifier:
                      set: [{name: X-Forwarded-Proto, value: https}]
                      add: [{name: Via, value: gatehouse}]
                      remove: [X-Debug]
                  - type: ResponseHeaderModifier
                    responseHeaderModifier:
                      remove: [server]
                  - type: URLRewrite
                    urlRewrite:
                      hostname: API.internal
                      path: {type: ReplaceFullPath, replaceFullPath: /}
                backendRefs:
                  - {name: app}
                  - {name: api2, weight: 3}
                  - {name: old, weight: 0}
                timeouts: {request: 10s, backendRequest: 2s}
              - matches: [{path: {type: PathPrefix, value: /old}}]
                filters:
                  - type: URLRewrite
                    urlRewrite:
                      path: {type: ReplacePrefixMatch, replacePrefixMatch: ""}
                backendRefs: [{name: old}]
                timeouts: {request: 0s, backendRequest: 1m}
              - filters:
                  - type: RequestRedirect
                    requestRedirect:
                      scheme: https
                      hostname: www.example.test
                      port: 8443
                      path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
                      statusCode: 308
              - filters: [{type: RequestRedirect, requestRedirect: {scheme: http}}]
        backends:
          - {name: app, endpoints: [127.0.0.1:9000]}
          - {name: api2, endpoints: [127.0.0.1:9001]}
          - {name: old, endpoints: [127.0.0.1:9002]}
    "#);
    assert_eq!(loaded.warnings.items.len(), 0, "{}", loaded.warnings);
    let web = listener(&loaded.config, "edge/web");
    assert!(web.routes.is_empty(), "an HTTP listener has no TLS routes");
    assert_eq!(http_table(web), owned_hosts(&[("api", &["*"])]));
    let exact = |s: &str| StringMatch::Exact(s.into());
    let want = vec![
        HttpRule {
            matches: vec![
                HttpMatch {
                    path: PathMatch::Exact("/api/health".into()),
                    headers: vec![],
                    query: vec![],
                    method: Some("GET".into()),
                },
                HttpMatch {
                    path: PathMatch::Prefix("/api".into()),
                    headers: vec![
                        HeaderMatch {
                            name: "x-env".into(),
                            value: exact("prod"),
                        },
                        HeaderMatch {
                            name: "user-agent".into(),
                            value: StringMatch::Regex("^curl/.*".into()),
                        },
                    ],
                    query: vec![QueryMatch {
                        name: "Debug".into(),
                        value: exact("1"),
                    }],
                    method: None,
                },
                HttpMatch {
                    path: PathMatch::Regex("/v[0-9]+/.*".into()),
                    headers: vec![],
                    query: vec![],
                    method: None,
                },
                // No path: the default, PathPrefix `/`.
                HttpMatch {
                    path: PathMatch::Prefix("/".into()),
                    headers: vec![HeaderMatch {
                        name: "x-canary".into(),
                        value: exact("true"),
                    }],
                    query: vec![],
                    method: None,
                },
            ],
            filters: vec![
                HttpFilter::RequestHeaderModifier(HeaderModifier {
                    set: vec![("x-forwarded-proto".into(), "https".into())],
                    add: vec![("via".into(), "gatehouse".into())],
                    remove: vec!["x-debug".into()],
                }),
                HttpFilter::ResponseHeaderModifier(HeaderModifier {
                    set: vec![],
                    add: vec![],
                    remove: vec!["server".into()],
                }),
                HttpFilter::UrlRewrite(UrlRewrite {
                    hostname: Some("api.internal".into()),
                    path: Some(PathModifier::ReplaceFullPath("/".into())),
                }),
            ],
            backends: vec![
                WeightedBackend {
                    backend: "app".into(),
                    weight: 1,
                },
                WeightedBackend {
                    backend: "api2".into(),
                    weight: 3,
                },
                WeightedBackend {
                    backend: "old".into(),
                    weight: 0,
                },
            ],
            timeouts: HttpTimeouts {
                request: Some(secs(10)),
                backend_request: Some(secs(2)),
            },
        },
        HttpRule {
            matches: vec![HttpMatch {
                path: PathMatch::Prefix("/old".into()),
                headers: vec![],
                query: vec![],
                method: None,
            }],
            filters: vec![HttpFilter::UrlRewrite(UrlRewrite {
                hostname: None,
                path: Some(PathModifier::ReplacePrefixMatch(String::new())),
            })],
            backends: vec![WeightedBackend {
                backend: "old".into(),
                weight: 1,
            }],
            // `0s` turns a timeout off, and a backendRequest may then be anything.
            timeouts: HttpTimeouts {
                request: None,
                backend_request: Some(secs(60)),
            },
        },
        HttpRule {
            matches: vec![],
            filters: vec![HttpFilter::RequestRedirect(Redirect {
                scheme: Some("https".into()),
                hostname: Some("www.example.test".into()),
                port: Some(8443),
                path: Some(PathModifier::ReplacePrefixMatch("/new".into())),
                status: 308,
            })],
            backends: vec![],
            timeouts: HttpTimeouts::default(),
        },
        HttpRule {
            matches: vec![],
            filters: vec![HttpFilter::RequestRedirect(Redirect {
                scheme: Some("http".into()),
                hostname: None,
                port: None,
                path: None,
                status: 302,
            })],
            backends: vec![],
            timeouts: HttpTimeouts::default(),
        },
    ];
    let rules = &web.http_routes[0].rules;
    assert_eq!(rules.len(), want.len());
    for (i, (got, want)) in rules.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "rule {}", i + 1);
    }
    assert_eq!(web.backends(), ["app", "api2", "old"]);
}

#[test]
fn http_routes_attach_with_hostname_intersection_and_default_last() {
    let loaded = ok(&format!(
        r#"
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - {{name: plain, port: 80, protocol: HTTP}}
              - {{name: www, port: 80, protocol: HTTP, hostname: "*.example.test", backend: www}}
              - name: secure
                port: 443
                protocol: HTTPS
                hostname: api.example.test
                tls: {{certificates: [{CERT}]}}
              - {{name: pass, port: 443, protocol: TLS, tls: {{mode: Passthrough}}, backend: www}}
              - {{name: tcp, port: 22, backend: www}}
        routes:
          - name: to-https
            kind: HTTPRoute
            parentRefs: [{{name: edge, sectionName: plain}}]
            rules:
              - filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, statusCode: 301}}}}]
          - name: api
            kind: HTTPRoute
            parentRefs: [edge]
            hostnames: ["*.example.test", other.test]
            backend: api
          - name: app
            kind: HTTPRoute
            parentRefs: [{{name: edge, port: 443}}]
            backend: app
        backends:
          - {{name: www, endpoints: [127.0.0.1:9000]}}
          - {{name: api, endpoints: [127.0.0.1:9001]}}
          - {{name: app, endpoints: [127.0.0.1:9002]}}
    "#
    ));
    assert_eq!(loaded.warnings.items.len(), 0, "{}", loaded.warnings);
    let c = &loaded.config;
    // A bare gateway reference attaches to every HTTP and HTTPS listener, in config order;
    // route hostnames are intersected with the listener's; the listener's own backend is last.
    assert_eq!(
        http_table(listener(c, "edge/plain")),
        owned_hosts(&[
            ("to-https", &["*"]),
            ("api", &["*.example.test", "other.test"])
        ])
    );
    assert_eq!(
        http_table(listener(c, "edge/www")),
        owned_hosts(&[
            ("api", &["*.example.test"]),
            ("default", &["*.example.test"])
        ])
    );
    assert_eq!(
        http_table(listener(c, "edge/secure")),
        owned_hosts(&[
            ("api", &["api.example.test"]),
            ("app", &["api.example.test"])
        ])
    );
    let api = &listener(c, "edge/secure").http_routes[0];
    assert_eq!(*api.rules, vec![to_backend("api")]);
    // One route compiles once: its listeners share the rules.
    assert!(std::sync::Arc::ptr_eq(
        &api.rules,
        &listener(c, "edge/www").http_routes[0].rules
    ));
    assert!(listener(c, "edge/pass").http_routes.is_empty());
    assert!(listener(c, "edge/tcp").http_routes.is_empty());
    assert_eq!(listener(c, "edge/pass").http, None);
    assert_eq!(
        route_table(listener(c, "edge/pass")),
        owned(&[("default", &["*"], "www")])
    );
}

#[test]
fn http_listeners_share_a_socket_by_host_and_https_shares_with_tls() {
    let c = ok(&format!(
        r#"
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - {{name: a, port: 80, protocol: HTTP, hostname: a.example.test, backend: app}}
              - {{name: b, port: 80, protocol: HTTP, hostname: "*.example.test", backend: app}}
              - {{name: rest, port: 80, protocol: HTTP, backend: app}}
              - {{name: git, port: 443, protocol: TLS, hostname: git.example.test, tls: {{mode: Passthrough}}, backend: app}}
              - name: web
                port: 443
                protocol: HTTPS
                tls: {{certificates: [{CERT}]}}
                backend: app
          - name: side
            addresses: [127.0.0.1]
            listeners:
              - {{name: c, port: 80, protocol: HTTP, hostname: c.example.test, backend: app}}
        backends:
          - {{name: app, endpoints: [127.0.0.1:9000]}}
    "#
    ))
    .config;
    let sockets: Vec<(SocketAddr, Vec<String>)> = c
        .sockets()
        .into_iter()
        .map(|(k, ls)| (k.bind, ls.iter().map(|l| l.name.clone()).collect()))
        .collect();
    assert_eq!(
        sockets,
        vec![
            (
                addr("127.0.0.1:80"),
                vec![
                    "edge/a".into(),
                    "edge/b".into(),
                    "edge/rest".into(),
                    "side/c".into()
                ]
            ),
            (
                addr("127.0.0.1:443"),
                vec!["edge/git".into(), "edge/web".into()]
            ),
        ]
    );
}

#[test]
fn http_warnings() {
    let loaded = ok(r#"
        gateways:
          - name: edge
            listeners:
              - {name: empty, port: 80, protocol: HTTP}
              - {name: api, port: 81, protocol: HTTP, hostname: api.example.test}
        routes:
          - name: r
            kind: HTTPRoute
            parentRefs: [edge/api]
            rules:
              - matches: [{path: {value: /nowhere}}]
              - backendRefs: [{name: app, weight: 0}]
              - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 301}}]
          - {name: wiki, kind: HTTPRoute, parentRefs: [edge/api], hostnames: [wiki.example.test], backend: app}
        backends:
          - name: app
            endpoints: [127.0.0.1:8080]
    "#);
    let got: Vec<(u64, u64, &str)> = loaded
        .warnings
        .warnings()
        .map(|w| (w.pos.line, w.pos.column, w.message.as_str()))
        .collect();
    let want: &[(u64, u64, &str)] = &[
        (
            4,
            29,
            "HTTP listener `edge/empty` has no routes and no `backend`: it answers every request with 404",
        ),
        (
            11,
            9,
            "rule 1 of HTTPRoute `r` has no `backendRefs`: requests it matches are answered with 500",
        ),
        (
            12,
            9,
            "every backendRef of rule 2 of HTTPRoute `r` has weight 0: requests it matches are answered with 500",
        ),
        (
            13,
            60,
            "this redirect sends clients back to the URL they asked for",
        ),
        (
            14,
            48,
            "route `wiki` serves no name on `edge/api`: none of its hostnames is within the listener's hostname `api.example.test`",
        ),
    ];
    assert_eq!(got.len(), want.len(), "{}", loaded.warnings);
    for (got, want) in got.iter().zip(want) {
        assert_eq!(got, want, "{}", loaded.warnings);
    }
    assert!(!loaded.warnings.has_errors());
}

#[test]
fn backends_named_only_by_backend_refs_are_used() {
    // A backendRef counts as a use, even in a route with an error elsewhere.
    let d = refused(
        "
        gateways:
          - name: edge
            listeners:
              - {name: web, port: 80, protocol: HTTP}
        routes:
          - name: r
            kind: HTTPRoute
            parentRefs: [edge]
            rules:
              - matches: [{method: get}]
                backendRefs: [{name: app}]
        backends:
          - {name: app, endpoints: [127.0.0.1:8080]}
        ",
    );
    assert_eq!(d.items.len(), 1, "{}", d.render());
    let loaded = ok("
        gateways:
          - name: edge
            listeners:
              - {name: web, port: 80, protocol: HTTP}
        routes:
          - name: r
            kind: HTTPRoute
            parentRefs: [edge]
            rules: [{backendRefs: [{name: app}, {name: api, weight: 2}]}]
        backends:
          - {name: app, endpoints: [127.0.0.1:8080]}
          - {name: api, endpoints: [127.0.0.1:8081]}
          - {name: spare, endpoints: [127.0.0.1:8082]}
        ");
    let warnings: Vec<&str> = loaded
        .warnings
        .warnings()
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(
        warnings,
        ["backend `spare` is not used by any listener, route or VRRP track"]
    );
}

#[test]
fn the_summary_shows_http_routes_compactly() {
    let c = ok(&format!(
        r#"
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - {{name: http, port: 80, protocol: HTTP}}
              - name: web
                port: 443
                protocol: HTTPS
                hostname: "*.example.test"
                tls: {{certificates: [{CERT}]}}
                backend: app
        routes:
          - name: to-https
            kind: HTTPRoute
            parentRefs: [edge/http]
            rules:
              - filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, statusCode: 301}}}}]
          - name: api
            kind: HTTPRoute
            parentRefs: [edge/web]
            hostnames: [api.example.test]
            rules:
              - matches:
                  - path: {{value: /api}}
                    method: GET
                    headers: [{{name: a, value: "1"}}, {{name: b, value: "2"}}]
                backendRefs: [{{name: app}}, {{name: api2, weight: 3}}]
                timeouts: {{request: 10s}}
        backends:
          - {{name: app, endpoints: [127.0.0.1:9000]}}
          - {{name: api2, endpoints: [127.0.0.1:9001]}}
    "#
    ))
    .config;
    let summary = c.summary();
    for line in [
        "  edge/http                HTTP  127.0.0.1:80           ->                  max 10000 conns, idle 10m\n",
        "http: headers within 10s, at most 65536 bytes and 100 headers; keep-alive 1m\n",
        "route to-https         *\n",
        "  PathPrefix / -> redirect 301 https://<host><path>\n",
        "  edge/web                 HTTPS 127.0.0.1:443          -> app, api2        max",
        "tls: terminate, TLS 1.2-1.3, ALPN h2, http/1.1; hostname *.example.test\n",
        "route api              api.example.test\n",
        "  PathPrefix /api, GET, 2 headers -> app (w1), api2 (w3); request timeout 10s\n",
        "route default          *.example.test\n",
        "  PathPrefix / -> app (w1)\n",
    ] {
        assert!(summary.contains(line), "no {line:?} in\n{summary}");
    }
}

#[test]
fn diff_an_http_route_change_updates_the_socket() {
    let yaml = |path: &str| {
        format!(
            "
            gateways:
              - name: edge
                addresses: [127.0.0.1]
                listeners:
                  - {{name: web, port: 8080, protocol: HTTP}}
            routes:
              - name: r
                kind: HTTPRoute
                parentRefs: [edge]
                rules: [{{matches: [{{path: {{value: {path}}}}}], backendRefs: [{{name: app}}]}}]
            backends:
              - {{name: app, endpoints: [127.0.0.1:9000]}}
            "
        )
    };
    let old = compiled(&yaml("/a"));
    assert!(diff(&old, &compiled(&yaml("/a"))).is_empty());
    let d = diff(&old, &compiled(&yaml("/b")));
    assert_eq!(d.update, vec![key("", "127.0.0.1:8080")]);
    assert!(d.bind.is_empty() && d.close.is_empty());
}

#[test]
fn every_http_route_error_is_reported_once() {
    let d = refused(
        "
        gateways:
          - name: edge
            listeners:
              - {name: web, port: 80, protocol: HTTP}
        routes:
          - name: r
            kind: HTTPRoute
            parentRefs: [edge/web]
            rules:
              - matches:
                  - path: {type: Exact, value: nope}
                    method: get
                filters:
                  - {type: RequestMirror, requestMirror: {}}
                  - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}
                backendRefs: [{name: ap, weight: -1}]
                timeouts: {request: 1s, backendRequest: 2s}
        backends:
          - {name: app, endpoints: [127.0.0.1:8080]}
        ",
    );
    let got: Vec<(u64, u64, &str)> = d
        .items
        .iter()
        .map(|i| (i.pos.line, i.pos.column, i.message.as_str()))
        .collect();
    let want: &[(u64, u64, &str)] = &[
        (11, 40, "the path `nope` does not start with `/`"),
        (12, 21, "`get` is not an HTTP method"),
        (14, 20, "filter type `RequestMirror` is not supported"),
        (
            15,
            58,
            "`ReplacePrefixMatch` in rule 1 of HTTPRoute `r` needs",
        ),
        (16, 30, "refers to backend `ap`, which is not defined"),
        (16, 42, "`weight` is -1, outside 0..=1000000"),
        (
            17,
            49,
            "`backendRequest` (2s) is longer than `request` (1s)",
        ),
        (19, 12, "backend `app` is not used"),
    ];
    assert_eq!(got.len(), want.len(), "{}", d.render());
    for (got, want) in got.iter().zip(want) {
        assert!(
            (got.0, got.1) == (want.0, want.1) && got.2.contains(want.2),
            "got {got:?}, expected {want:?}\n{}",
            d.render()
        );
    }
}

#[test]
fn udp_access_lists_and_proxy_protocol_are_read() {
    let c = ok("
        gateways:
          - name: edge
            addresses: [127.0.0.1]
            listeners:
              - name: dns
                port: 53
                protocol: UDP
                backend: dns
                udp: {idleTimeout: 30s, maxFlows: 500}
                deny: [10.0.0.13]
              - name: dns-tcp
                port: 53
                backend: dns-tcp
                allow: [10.0.0.0/8, \"2001:db8::/32\"]
                proxyProtocol: {trustedSources: [192.168.1.10]}
              - name: web
                port: 80
                protocol: HTTP
        routes:
          - name: internal
            kind: HTTPRoute
            parentRefs: [edge/web]
            allow: [192.168.0.0/16]
            rules: [{backendRefs: [{name: dns-tcp}]}]
        backends:
          - name: dns
            endpoints: [127.0.0.1:5353]
            healthCheck: {protocol: UDP, sendHex: '00 01', expect: ok, port: 5354}
          - name: dns-tcp
            proxyProtocol: v2
            endpoints: [127.0.0.1:5353]
            healthCheck: {protocol: TCP, port: 5355}
        ")
    .config;
    let dns = listener(&c, "edge/dns");
    assert_eq!(dns.protocol, Protocol::Udp);
    assert_eq!(
        dns.udp,
        Some(UdpSettings {
            idle_timeout: secs(30),
            max_flows: 500
        })
    );
    assert!(!dns.access.allows("10.0.0.13".parse().unwrap()));
    assert!(dns.access.allows("10.0.0.14".parse().unwrap()));
    let tcp = listener(&c, "edge/dns-tcp");
    assert!(tcp.access.allows("10.1.2.3".parse().unwrap()));
    // A dual-stack socket reports an IPv4 client as IPv4-mapped IPv6.
    assert!(tcp.access.allows("::ffff:10.1.2.3".parse().unwrap()));
    assert!(tcp.access.allows("2001:db8::1".parse().unwrap()));
    assert!(!tcp.access.allows("192.168.1.1".parse().unwrap()));
    assert_eq!(
        tcp.accept_proxy,
        Some(AcceptProxy {
            trusted: vec![parse_cidr("192.168.1.10/32").unwrap()],
            timeout: secs(5),
        })
    );
    assert_eq!(
        c.sockets().len(),
        3,
        "TCP and UDP on port 53 are two sockets"
    );
    let route = &listener(&c, "edge/web").http_routes[0];
    assert!(route.access.allows("192.168.7.7".parse().unwrap()));
    assert!(!route.access.allows("10.0.0.1".parse().unwrap()));
    let b = backend(&c, "dns");
    let h = b.health_check.as_ref().unwrap();
    assert_eq!(
        h.kind,
        HealthCheckKind::Udp {
            send: vec![0, 1],
            expect: b"ok".to_vec()
        }
    );
    assert_eq!(h.port, Some(5354));
    assert_eq!(
        backend(&c, "dns-tcp").proxy_protocol,
        Some(ProxyProtocolVersion::V2)
    );
    let summary = c.summary();
    assert!(
        summary.contains("max 500 flows, flow idle 30s"),
        "{summary}"
    );
    assert!(summary.contains("clients: deny 10.0.0.13/32"), "{summary}");
    assert!(
        summary.contains("PROXY headers accepted from 192.168.1.10/32 (within 5s)"),
        "{summary}"
    );
    assert!(summary.contains("on port 5354"), "{summary}");
    assert!(
        summary.contains("sends a PROXY protocol v2 header first"),
        "{summary}"
    );
}

#[test]
fn networks_contain_what_they_should() {
    let cases = [
        ("10.0.0.0/8", "10.255.255.255", true),
        ("10.0.0.0/8", "11.0.0.0", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("192.168.1.13", "192.168.1.13", true),
        ("192.168.1.13", "192.168.1.14", false),
        ("2001:db8::/32", "2001:db8:ffff::1", true),
        ("2001:db8::/32", "2001:db9::1", false),
        ("::/0", "::1", true),
        ("::/0", "127.0.0.1", false),
        ("127.0.0.0/8", "::ffff:127.0.0.1", true),
    ];
    for (net, ip, inside) in cases {
        let cidr = parse_cidr(net).unwrap();
        assert_eq!(
            cidr.contains(ip.parse().unwrap()),
            inside,
            "{net} contains {ip}"
        );
    }
}

#[test]
fn dns_zones_hold_static_records_and_the_names_listeners_serve() {
    let c = ok("
        gateways:
          - name: edge
            addresses: [127.0.0.1, \"::1\"]
            listeners:
              - {name: web, port: 80, protocol: HTTP, hostname: \"*.home.arpa\", backend: app}
              - {name: dns, port: 5300, protocol: UDP, backend: app, dnsName: resolver.home.arpa}
        routes:
          - {name: grafana, kind: HTTPRoute, parentRefs: [edge/web], hostnames: [grafana.home.arpa], backend: grafana}
          - {name: outside, kind: HTTPRoute, parentRefs: [edge/web], hostnames: [x.example.com], backend: app}
        backends:
          - {name: app, endpoints: [127.0.0.1:8080]}
          - {name: grafana, endpoints: [127.0.0.1:3000]}
        dns:
          listen: [127.0.0.1:5353, \"::1\"]
          autoTtl: 10s
          zones:
            - name: home.arpa
              ttl: 1h
              records:
                - {name: nas, type: A, value: 192.168.1.10}
                - {name: \"@\", type: TXT, value: hello}
                - {name: www, type: CNAME, value: nas, ttl: 5m}
          forwarders: [127.0.0.1:5301, \"::1\"]
          forwardZones: [{zone: cluster.local, to: [127.0.0.1:5302]}]
          recursion: {allow: [192.168.0.0/16]}
          cacheSize: 500
        ")
    .config;
    let dns = c.dns.as_ref().unwrap();
    assert_eq!(dns.listen, [addr("127.0.0.1:5353"), addr("[::1]:53")]);
    assert_eq!(dns.forwarders, [addr("127.0.0.1:5301"), addr("[::1]:53")]);
    assert_eq!(dns.forward_zones[0].zone, "cluster.local");
    assert_eq!(dns.recursion_allow, [parse_cidr("192.168.0.0/16").unwrap()]);
    assert_eq!(dns.cache_size, 500);
    let zone = &dns.zones[0];
    assert_eq!(zone.name, "home.arpa");
    assert_eq!(zone.ttl, 3600);
    assert_eq!(zone.ns, ["ns.home.arpa"]);
    let find = |name: &str| -> Vec<&DnsRecord> {
        zone.records.iter().filter(|r| r.name == name).collect()
    };
    assert_eq!(
        find("nas.home.arpa")[0].data,
        RecordData::A("192.168.1.10".parse().unwrap())
    );
    assert_eq!(
        find("www.home.arpa")[0].data,
        RecordData::Cname("nas.home.arpa".into())
    );
    assert_eq!(find("www.home.arpa")[0].ttl, 300);
    assert_eq!(
        find("home.arpa")[0].data,
        RecordData::Txt(vec!["hello".into()])
    );
    // The route's name, and the listener's wildcard, on both of the listener's addresses.
    let grafana = find("grafana.home.arpa");
    assert_eq!(grafana.len(), 2, "{grafana:?}");
    assert!(grafana.iter().all(|r| r.ttl == 10));
    assert_eq!(
        grafana[0].source,
        RecordSource::Auto {
            listener: "edge/web".into(),
            backends: vec!["grafana".into()]
        }
    );
    assert_eq!(find("*.home.arpa").len(), 2);
    assert_eq!(find("resolver.home.arpa").len(), 2);
    // A name in no local zone gets no record.
    assert!(
        zone.records
            .iter()
            .all(|r| !r.name.ends_with("example.com"))
    );
    let summary = c.summary();
    assert!(
        summary.contains("(auto: edge/web, healthy if grafana is up)"),
        "{summary}"
    );

    // The default: recursion for loopback clients only.
    let c = ok("
        dns:
          listen: [127.0.0.1:5353]
          zones: [{name: home.arpa}]
        ");
    let dns = c.config.dns.unwrap();
    assert_eq!(
        dns.recursion_allow,
        [
            parse_cidr("127.0.0.0/8").unwrap(),
            parse_cidr("::1").unwrap()
        ]
    );
}

#[test]
fn pools_hand_out_addresses_deterministically_and_vrrp_holds_them() {
    let yaml = "
        pools:
          - {name: lan, addresses: [192.168.1.60-192.168.1.70], prefix: 24}
          - {name: lab, addresses: [10.0.0.0/29]}
        gateways:
          - {name: plex, addresses: [pool:lan/192.168.1.62], listeners: [{name: web, port: 32400, backend: app}]}
          - name: edge
            addresses: [pool:lan]
            listeners:
              - {name: web, port: 80, backend: app}
              - {name: dns, port: 53, protocol: UDP, backend: app, address: pool:lab}
          - {name: alpha, addresses: [pool:lan], listeners: [{name: web, port: 80, backend: app}]}
        backends: [{name: app, endpoints: [127.0.0.1:9000]}]
        vrrp:
          - name: lan
            interfacePattern: \"^eth[0-9]+\"
            vrid: 51
            priority: 150
            advertInterval: 100ms
            addresses: [192.168.1.250/24, pool:lan]
            track: [{backend: app, weight: 60}, {listener: edge/web}]
        ";
    let c = ok(yaml).config;
    let bind = |name: &str| listener(&c, name).bind.ip().to_string();
    // Sorted by owner: alpha, then edge; plex pinned .62; a network's own address is skipped.
    assert_eq!(bind("alpha/web"), "192.168.1.60");
    assert_eq!(bind("edge/web"), "192.168.1.61");
    assert_eq!(bind("plex/web"), "192.168.1.62");
    assert_eq!(bind("edge/dns"), "10.0.0.1");
    // Every node computes the same: the same config twice gives the same answer.
    assert_eq!(ok(yaml).config, c);
    let v = &c.vrrp[0];
    assert_eq!(v.interface, InterfaceMatch::Pattern("^eth[0-9]+".into()));
    assert_eq!((v.vrid, v.priority), (51, 150));
    assert_eq!(v.advert_interval, Duration::from_millis(100));
    assert!(v.preempt);
    let addresses: Vec<String> = v
        .addresses
        .iter()
        .map(|(ip, p)| format!("{ip}/{p}"))
        .collect();
    assert_eq!(
        addresses,
        [
            "192.168.1.60/24",
            "192.168.1.61/24",
            "192.168.1.62/24",
            "192.168.1.250/24"
        ]
    );
    assert_eq!(v.checksum, VrrpChecksum::Rfc5798);
    assert_eq!(
        v.track,
        [
            Track {
                target: TrackTarget::Backend("app".into()),
                weight: Some(60)
            },
            Track {
                target: TrackTarget::Listener("edge/web".into()),
                weight: None
            },
        ]
    );
    let summary = c.summary();
    assert!(
        summary.contains("192.168.1.62             plex"),
        "{summary}"
    );
    assert!(
        summary.contains("vrrp lan on the first interface matching ^eth[0-9]+"),
        "{summary}"
    );
    assert!(
        summary.contains("when listener edge/web is down: gives the addresses up"),
        "{summary}"
    );
}

#[test]
fn admin_is_off_unless_present_and_loopback_by_default() {
    let base = "forwards:\n  - {name: app, listen: 127.0.0.1:8081, to: 127.0.0.1:8080}\n";
    let off = ok(base);
    assert!(off.config.admin.is_none(), "no `admin`: no admin endpoint");
    for present in ["admin:\n", "admin: {}\n"] {
        let on = ok(&format!("{base}{present}"));
        let admin = on.config.admin.as_ref().unwrap();
        assert_eq!(admin.listen, addr("127.0.0.1:9100"), "{present}");
        assert_eq!(admin.token, None);
    }
    let token = "0123456789abcdef0123456789abcdef";
    let wide = ok(&format!(
        "{base}admin: {{listen: \"0.0.0.0:9100\", token: {token}}}\n"
    ));
    let admin = wide.config.admin.as_ref().unwrap();
    assert_eq!(admin.listen, addr("0.0.0.0:9100"));
    assert_eq!(admin.token.as_deref(), Some(token));
    assert!(
        !format!("{:?}", wide.config).contains(token),
        "the token stays out of debug output"
    );
    assert!(
        wide.config
            .summary()
            .contains("admin on http://0.0.0.0:9100"),
        "{}",
        wide.config.summary()
    );
    // Port 0 (tests) and IPv6 loopback need no token; a short token is a warning.
    assert_eq!(
        ok(&format!("{base}admin: {{listen: \"[::1]:0\"}}\n"))
            .config
            .admin
            .unwrap()
            .listen,
        addr("[::1]:0")
    );
    let short = ok(&format!("{base}admin: {{token: abc}}\n"));
    assert_eq!(short.warnings.items.len(), 1, "{}", short.warnings.render());
    assert!(
        short.warnings.items[0]
            .message
            .contains("short enough to guess")
    );
}
