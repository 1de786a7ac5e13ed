//! The HTTP gateway with real clients (`curl`, raw sockets): Gateway API routing and filters,
//! HTTP/1.1, h2 over TLS and h2c, forwarding headers, upgrades, and the errors a user sees.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use gatehouse_testkit::{Backend, Gatehouse, KeyType, TempDir, TestCa, connect, curl_get};

use crate::{BIN, WAIT};

/// `curl http://HOST/PATH` through `gw` (Host header = `host`), HTTP/1.1.
fn get(gw: SocketAddr, host: &str, path: &str, extra: &[&str]) -> gatehouse_testkit::Curl {
    curl_get(
        &format!("http://{host}{path}"),
        &[(host, 80, gw)],
        None,
        extra,
    )
}

/// A header value from the request head a `/echo` backend sent back.
fn echoed_header(body: &str, name: &str) -> Option<String> {
    body.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The request line a `/echo` backend saw.
fn echoed_request_line(body: &str) -> String {
    body.lines().nth(1).unwrap_or("").to_owned()
}

/// One HTTP listener, `web/http` on 127.0.0.1:0, whose `backend` is `site` at `addr`; `extra`
/// is more keys for the listener's flow mapping (`, http: {...}`).
fn http_listener(addr: SocketAddr, extra: &str) -> String {
    format!(
        "gateways:
  - name: web
    addresses: [127.0.0.1]
    listeners:
      - {{name: http, port: 0, protocol: HTTP, backend: site{extra}}}
backends:
  - {{name: site, endpoints: [{addr}]}}
"
    )
}

fn routing_config(backends: &[(&str, SocketAddr)]) -> String {
    let mut yaml = "gateways:
  - name: web
    addresses: [127.0.0.1]
    listeners:
      - {name: http, port: 0, protocol: HTTP}
routes:
  - name: app
    kind: HTTPRoute
    parentRefs: [web/http]
    hostnames: [app.example.test]
    rules:
      - matches: [{path: {type: PathPrefix, value: /api}}]
        backendRefs: [{name: api}]
      - matches: [{path: {type: Exact, value: /api/special}}]
        backendRefs: [{name: special}]
      - matches:
          - path: {type: PathPrefix, value: /}
            headers: [{name: X-Canary, value: \"yes\"}]
        backendRefs: [{name: canary}]
      - matches: [{path: {type: PathPrefix, value: /old}}]
        filters:
          - type: URLRewrite
            urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /echo}}
          - type: RequestHeaderModifier
            requestHeaderModifier: {set: [{name: X-From, value: gatehouse}], remove: [X-Secret]}
          - type: ResponseHeaderModifier
            responseHeaderModifier: {add: [{name: X-Served-By, value: gatehouse}]}
        backendRefs: [{name: site}]
      - backendRefs: [{name: site}]
  - name: wild
    kind: HTTPRoute
    parentRefs: [web]
    hostnames: [\"*.example.test\"]
    backend: wild
backends:
"
    .to_owned();
    for (name, addr) in backends {
        yaml.push_str(&format!("  - {{name: {name}, endpoints: [{addr}]}}\n"));
    }
    yaml
}

#[test]
fn requests_are_routed_by_host_path_and_headers_with_gateway_api_precedence() {
    let names = ["api", "special", "canary", "site", "wild"];
    let backends: Vec<Backend> = names.iter().map(|n| Backend::start(n)).collect();
    let pairs: Vec<(&str, SocketAddr)> = names
        .iter()
        .zip(&backends)
        .map(|(n, b)| (*n, b.addr()))
        .collect();
    let g = Gatehouse::start(BIN, &routing_config(&pairs));
    let gw = g.addr("web/http");
    let who = |host: &str, path: &str, extra: &[&str]| {
        let c = get(gw, host, path, extra);
        assert_eq!(c.status, Some(200), "{host}{path}: {}", c.stderr);
        c.body.lines().next().unwrap_or("").to_owned()
    };
    assert_eq!(who("app.example.test", "/api", &[]), "api");
    assert_eq!(who("app.example.test", "/api/v1/users", &[]), "api");
    // Exact beats the prefix even though the prefix rule is listed first.
    assert_eq!(who("app.example.test", "/api/special", &[]), "special");
    // Prefixes match whole segments only.
    assert_eq!(who("app.example.test", "/apiv2", &[]), "site");
    // A header match beats a bare `/` prefix.
    assert_eq!(
        who("app.example.test", "/anything", &["-H", "X-Canary: yes"]),
        "canary"
    );
    assert_eq!(who("app.example.test", "/anything", &[]), "site");
    // Host names compare without case; other names under the wildcard go to its route.
    assert_eq!(who("APP.example.test", "/api", &[]), "api");
    assert_eq!(who("blog.example.test", "/api", &[]), "wild");
    // Nothing serves this host: 404, with a body that says so.
    let c = get(gw, "other.test", "/", &[]);
    assert_eq!(c.status, Some(404), "{}", c.stderr);
    assert!(c.body.contains("no route"), "{}", c.body);

    // Filters: the path is rewritten, request headers changed, a response header added.
    let c = get(
        gw,
        "app.example.test",
        "/old/x?x=1",
        &["-H", "X-Secret: hunter2", "-i"],
    );
    assert_eq!(c.status, Some(200), "{}", c.stderr);
    assert!(c.body.contains("x-served-by: gatehouse"), "{}", c.body);
    let body = c.body.split("\r\n\r\n").nth(1).unwrap_or("");
    assert_eq!(
        echoed_request_line(body),
        "GET /echo/x?x=1 HTTP/1.1",
        "{body}"
    );
    assert_eq!(echoed_header(body, "x-from").as_deref(), Some("gatehouse"));
    assert_eq!(echoed_header(body, "x-secret"), None);

    // One access-log line per request, naming the route and the backend.
    let line = g
        .wait_for_all(
            &["request", "route=app", "status=200", "backend=special"],
            0,
            WAIT,
        )
        .unwrap_or_else(|| panic!("{}", g.logs()));
    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains("path=/api/special"), "{line}");
    assert!(line.contains("host=app.example.test"), "{line}");
    assert!(line.contains("bytes="), "{line}");
}

#[test]
fn the_backend_learns_who_asked_and_hop_by_hop_headers_stop_at_the_gateway() {
    let site = Backend::start("site");
    let yaml = http_listener(site.addr(), "");
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("web/http");
    let c = get(
        gw,
        "app.example.test",
        "/echo",
        &[
            "-H",
            "X-Forwarded-For: 203.0.113.7",
            "-H",
            "Connection: keep-alive, X-Drop-Me",
            "-H",
            "X-Drop-Me: 1",
            "-H",
            "Keep-Alive: timeout=5",
        ],
    );
    assert_eq!(c.status, Some(200), "{}", c.stderr);
    let body = &c.body;
    assert_eq!(
        echoed_header(body, "x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(
        echoed_header(body, "x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(
        echoed_header(body, "x-forwarded-host").as_deref(),
        Some("app.example.test")
    );
    assert_eq!(
        echoed_header(body, "forwarded").as_deref(),
        Some("for=127.0.0.1;proto=http;host=\"app.example.test\"")
    );
    assert_eq!(
        echoed_header(body, "host").as_deref(),
        Some("app.example.test")
    );
    assert_eq!(echoed_header(body, "x-drop-me"), None, "{body}");
    assert_eq!(echoed_header(body, "keep-alive"), None, "{body}");
}

#[test]
fn http_redirects_to_https_and_https_serves_h2_and_http1() {
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let cert = ca.issue(dir.path(), "site-cert", &["*.example.test"], KeyType::Ecdsa);
    let ca_file = dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let site = Backend::start("site");
    let yaml = format!(
        "gateways:
  - name: web
    addresses: [127.0.0.1]
    listeners:
      - {{name: http, port: 0, protocol: HTTP}}
      - name: https
        port: 0
        protocol: HTTPS
        tls:
          certificates: [{{certFile: \"{}\", keyFile: \"{}\"}}]
routes:
  - name: to-https
    kind: HTTPRoute
    parentRefs: [web/http]
    rules:
      - filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, statusCode: 301}}}}]
  - {{name: app, kind: HTTPRoute, parentRefs: [web/https], hostnames: [app.example.test], backend: site}}
backends:
  - {{name: site, endpoints: [{}]}}
",
        cert.cert_path.display(),
        cert.key_path.display(),
        site.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    let http = g.addr("web/http");
    let https = g.addr("web/https");

    let c = get(http, "app.example.test", "/docs?page=2", &[]);
    assert_eq!(c.status, Some(301), "{}", c.stderr);
    let c = get(http, "app.example.test", "/docs?page=2", &["-i"]);
    assert!(
        c.body
            .contains("location: https://app.example.test/docs?page=2"),
        "{}",
        c.body
    );

    for (flag, version) in [("--http2", "HTTP/2 200"), ("--http1.1", "HTTP/1.1 200")] {
        let c = curl_get(
            "https://app.example.test/echo",
            &[("app.example.test", 443, https)],
            Some(&ca_file),
            &[flag, "-i"],
        );
        assert_eq!(c.status, Some(200), "{flag}: {}", c.stderr);
        assert!(c.body.starts_with(version), "{flag}: {}", c.body);
        assert!(c.body.contains("\r\n\r\nsite\n"), "{}", c.body);
        assert_eq!(
            echoed_header(&c.body, "x-forwarded-proto").as_deref(),
            Some("https")
        );
        assert_eq!(
            echoed_header(&c.body, "host").as_deref(),
            Some("app.example.test")
        );
    }
    // A name no route serves on HTTPS: the handshake succeeds (the certificate covers it) and
    // the request gets 404.
    let c = curl_get(
        "https://nope.example.test/",
        &[("nope.example.test", 443, https)],
        Some(&ca_file),
        &[],
    );
    assert_eq!(c.status, Some(404), "{}", c.stderr);
}

#[test]
fn h2c_with_prior_knowledge_works_on_a_plain_listener() {
    let site = Backend::start("site");
    let yaml = http_listener(site.addr(), "");
    let g = Gatehouse::start(BIN, &yaml);
    let c = get(
        g.addr("web/http"),
        "app.example.test",
        "/echo",
        &["--http2-prior-knowledge", "-i"],
    );
    assert_eq!(c.status, Some(200), "{}", c.stderr);
    assert!(c.body.starts_with("HTTP/2 200"), "{}", c.body);
    // HTTP/2 carries the host as :authority; the backend still gets a Host header.
    assert_eq!(
        echoed_header(&c.body, "host").as_deref(),
        Some("app.example.test")
    );
}

/// A backend that accepts connections and never answers.
fn silent_backend() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

#[test]
fn errors_are_502_503_504_with_a_reason() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_silent, silent) = silent_backend();
    let down = Backend::start("down");
    let yaml = format!(
        "gateways:
  - name: web
    addresses: [127.0.0.1]
    listeners:
      - {{name: http, port: 0, protocol: HTTP}}
routes:
  - name: r
    kind: HTTPRoute
    parentRefs: [web/http]
    rules:
      - matches: [{{path: {{value: /dead}}}}]
        backendRefs: [{{name: dead}}]
      - matches: [{{path: {{value: /slow}}}}]
        backendRefs: [{{name: slow}}]
        timeouts: {{request: 500ms}}
      - matches: [{{path: {{value: /down}}}}]
        backendRefs: [{{name: down}}]
backends:
  - {{name: dead, endpoints: [{dead}], retries: 0}}
  - {{name: slow, endpoints: [{silent}]}}
  - name: down
    endpoints: [{}]
    healthCheck: {{protocol: HTTP, path: /healthz, interval: 100ms, fall: 1}}
",
        down.addr()
    );
    down.set_health_status(500);
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("web/http");
    assert!(
        g.wait_for("endpoint down", 0, WAIT).is_some(),
        "{}",
        g.logs()
    );

    let c = get(gw, "x.test", "/dead", &[]);
    assert_eq!(c.status, Some(502), "{}", c.stderr);
    assert!(c.body.contains("could not connect"), "{}", c.body);
    let c = get(gw, "x.test", "/down", &[]);
    assert_eq!(c.status, Some(503), "{}", c.stderr);
    assert!(c.body.contains("no healthy endpoint"), "{}", c.body);
    let started = Instant::now();
    let c = get(gw, "x.test", "/slow", &[]);
    assert_eq!(c.status, Some(504), "{}", c.stderr);
    assert!(started.elapsed() < Duration::from_secs(5));
    for status in ["status=502", "status=503", "status=504"] {
        let line = g
            .wait_for_all(&["request", status], 0, WAIT)
            .unwrap_or_else(|| panic!("{}", g.logs()));
        assert!(line.contains("reason="), "{line}");
    }
}

#[test]
fn oversized_and_slow_request_heads_are_refused() {
    let site = Backend::start("site");
    let yaml = http_listener(
        site.addr(),
        ", http: {headerTimeout: 500ms, maxHeaderBytes: 16384, maxHeaders: 20}",
    );
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("web/http");
    let big = format!("X-Big: {}", "a".repeat(20_000));
    let c = get(gw, "a.test", "/", &["-H", &big]);
    assert_eq!(c.status, Some(431), "{}", c.stderr);
    let mut many: Vec<String> = Vec::new();
    for i in 0..30 {
        many.push("-H".into());
        many.push(format!("X-H{i}: {i}"));
    }
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let c = get(gw, "a.test", "/", &many);
    assert_eq!(c.status, Some(431), "{}", c.stderr);

    // A client that sends half a request head and stalls is cut off at headerTimeout.
    let mut s = connect(gw).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    assert_eq!(site.served(), 0);
}

#[test]
fn weighted_backends_share_requests_by_weight() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let yaml = format!(
        "gateways:
  - name: web
    addresses: [127.0.0.1]
    listeners:
      - {{name: http, port: 0, protocol: HTTP}}
routes:
  - name: split
    kind: HTTPRoute
    parentRefs: [web]
    rules:
      - backendRefs: [{{name: a, weight: 3}}, {{name: b, weight: 1}}]
backends:
  - {{name: a, endpoints: [{}]}}
  - {{name: b, endpoints: [{}]}}
",
        a.addr(),
        b.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("web/http");
    for _ in 0..40 {
        let c = get(gw, "x.test", "/", &[]);
        assert_eq!(c.status, Some(200), "{}", c.stderr);
    }
    assert_eq!((a.served(), b.served()), (30, 10));
}

/// An upgrade (WebSocket-style): the backend answers 101, then both sides talk raw bytes.
#[test]
fn upgraded_connections_are_tunnelled() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in backend.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !head.contains("upgrade: echo") {
                    let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
                    return;
                }
                let _ = s.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
                );
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let yaml = http_listener(backend_addr, "");
    let g = Gatehouse::start(BIN, &yaml);
    let mut s = connect(g.addr("web/http")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: x.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed during the 101 head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for msg in [&b"ping"[..], b"and more bytes"] {
        s.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
}

/// A body that stops moving, either way, is cut off after the listener's `idleTimeout`.
#[test]
fn stalled_bodies_are_cut_off_after_the_idle_timeout() {
    // A backend that reads the request (head and body), answers with headers and half a body,
    // then stalls without closing.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in backend.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            if s.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf");
            held.push(s);
        }
    });
    let yaml = http_listener(backend_addr, ", idleTimeout: 300ms");
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("web/http");

    // The response body stalls: the client's connection is closed once 300 ms pass.
    let mut s = connect(gw).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let took = started.elapsed();
    assert!(
        String::from_utf8_lossy(&got).ends_with("half"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    let line = g
        .wait_for_all(&["request", "no body bytes"], 0, WAIT)
        .unwrap_or_else(|| panic!("{}", g.logs()));
    assert!(line.contains("bytes=4"), "{line}");

    // The request body stalls: the backend is not kept waiting, the client gets a 502.
    let mut s = connect(gw).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x.test\r\nContent-Length: 100\r\n\r\nten bytes!")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 502"), "{got}");
}
