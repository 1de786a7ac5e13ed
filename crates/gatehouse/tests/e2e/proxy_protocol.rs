//! PROXY protocol with a real peer (HAProxy from Debian) both ways, its refusals, and access
//! lists. Clients pick their source address inside 127.0.0.0/8, so "who is the client" is
//! something the test controls.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};

use gatehouse_testkit::{
    Backend, Gatehouse, Haproxy, KeyType, TempDir, TestCa, ask, ask_from, connect_from, curl_get,
    free_port,
};

use crate::{BIN, WAIT};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An HAProxy frontend on a free port that takes a PROXY header (`accept-proxy`) and answers
/// every HTTP request with what the header said.
fn haproxy_echoing_the_header() -> (Haproxy, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend echo
  bind {addr} accept-proxy
  http-request return status 200 content-type text/plain lf-string \"src=%[src] dst=%[dst]:%[dst_port] authority=%[fc_pp_authority]\\n\"
"
    );
    (Haproxy::start(&config, &[addr]), addr)
}

/// `curl http://ADDR/` from the source address `from`, HTTP/1.1.
fn curl_from(from: &str, addr: SocketAddr, path: &str) -> gatehouse_testkit::Curl {
    curl_get(
        &format!("http://app.example.test{path}"),
        &[("app.example.test", 80, addr)],
        None,
        &["--interface", from],
    )
}

#[test]
fn backends_get_the_clients_address_in_v1_and_v2_headers_that_haproxy_reads() {
    let (_haproxy, echo) = haproxy_echoing_the_header();
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let cert = ca.issue(dir.path(), "app", &["app.example.test"], KeyType::Ecdsa);
    let ca_file = dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let g = Gatehouse::start(
        BIN,
        &format!(
            "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - {{name: v1, port: 0, backend: v1}}
      - {{name: v2, port: 0, backend: v2}}
      - {{name: http, port: 0, protocol: HTTP, backend: v2}}
      - name: tls
        port: 0
        protocol: TLS
        tls:
          mode: Terminate
          certificates: [{{certFile: \"{}\", keyFile: \"{}\"}}]
        backend: v2
backends:
  - {{name: v1, proxyProtocol: v1, endpoints: [{echo}], healthCheck: {{protocol: HTTP, interval: 100ms, fall: 1}}}}
  - {{name: v2, proxyProtocol: v2, endpoints: [{echo}], healthCheck: {{protocol: HTTP, interval: 100ms, fall: 1}}}}
",
            cert.cert_path.display(),
            cert.key_path.display()
        ),
    );
    // TCP listeners: the header is the first thing on the backend connection.
    for (listener, from) in [("t/v1", "127.0.0.7"), ("t/v2", "127.0.0.8")] {
        let gw = g.addr(listener);
        let c = curl_from(from, gw, "/");
        assert_eq!(c.status, Some(200), "{listener}: {}", c.stderr);
        let expected = format!("src={from} dst=127.0.0.1:{}", gw.port());
        assert!(c.body.starts_with(&expected), "{listener}: {:?}", c.body);
    }
    // HTTP: each client connection gets its own backend connection with its own header.
    let gw = g.addr("t/http");
    for from in ["127.0.0.9", "127.0.0.10", "127.0.0.9"] {
        let c = curl_from(from, gw, "/");
        assert_eq!(c.status, Some(200), "{}", c.stderr);
        assert!(c.body.starts_with(&format!("src={from} ")), "{:?}", c.body);
    }
    // TLS terminated here: v2 carries the server name the client asked for.
    let tls = g.addr("t/tls");
    let c = curl_get(
        "https://app.example.test/",
        &[("app.example.test", 443, tls)],
        Some(&ca_file),
        &["--interface", "127.0.0.11"],
    );
    assert_eq!(c.status, Some(200), "{}", c.stderr);
    assert!(
        c.body.starts_with("src=127.0.0.11 ") && c.body.contains("authority=app.example.test"),
        "{:?}",
        c.body
    );
    // Health checks send a header too (with no addresses), or HAProxy would refuse them and
    // the endpoints would go down.
    let down = g.wait_for("endpoint down", 0, std::time::Duration::from_millis(500));
    assert!(down.is_none(), "{down:?}");
}

#[test]
fn a_header_from_haproxy_send_proxy_gives_the_real_client_to_logs_and_x_forwarded_for() {
    let backend = Backend::start("app");
    let g = Gatehouse::start(
        BIN,
        &format!(
            "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - name: http
        port: 0
        protocol: HTTP
        backend: app
        proxyProtocol: {{trustedSources: [127.0.0.1]}}
backends:
  - {{name: app, endpoints: [{}]}}
",
            backend.addr()
        ),
    );
    let gw = g.addr("t/http");
    let (v1, v2) = (free_port(), free_port());
    let front: [SocketAddr; 2] = [
        format!("127.0.0.1:{v1}").parse().unwrap(),
        format!("127.0.0.1:{v2}").parse().unwrap(),
    ];
    let _haproxy = Haproxy::start(
        &format!(
            "defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
listen v1
  bind {}
  server gatehouse {gw} send-proxy
listen v2
  bind {}
  server gatehouse {gw} send-proxy-v2
",
            front[0], front[1]
        ),
        &front,
    );
    for (addr, from) in [(front[0], "127.0.0.21"), (front[1], "127.0.0.22")] {
        let mark = g.mark();
        let c = curl_from(from, addr, "/echo");
        assert_eq!(c.status, Some(200), "{}", c.stderr);
        let xff = c
            .body
            .lines()
            .find_map(|l| l.strip_prefix("x-forwarded-for: "))
            .unwrap_or_default();
        assert_eq!(xff, from, "{}", c.body);
        let line = g.wait_for(&format!("client={from}:"), mark, WAIT).unwrap();
        assert!(line.contains("path=/echo"), "{line}");
    }
}

/// A TCP listener that accepts PROXY headers from 127.0.0.2 only (timeout 300 ms), in front
/// of `backend`, with `extra` listener keys.
fn trusting_listener(backend: SocketAddr, extra: &str) -> String {
    format!(
        "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - name: in
        port: 0
        backend: app
        proxyProtocol: {{trustedSources: [127.0.0.2], timeout: 300ms}}{extra}
backends:
  - {{name: app, endpoints: [{backend}]}}
"
    )
}

/// Connects from `from`, writes `bytes`, and returns what came back before the connection
/// closed (or the read timed out).
fn exchange(from: &str, addr: SocketAddr, bytes: &[u8], close_write: bool) -> String {
    let mut s = connect_from(ip(from), addr).unwrap();
    s.write_all(bytes).unwrap();
    if close_write {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn headers_are_refused_from_untrusted_sources_and_bad_ones_from_trusted_sources() {
    let backend = Backend::start("app");
    let g = Gatehouse::start(BIN, &trusting_listener(backend.addr(), ""));
    let gw = g.addr("t/in");

    // A trusted source: the header's address is the client's.
    let mark = g.mark();
    let answer = exchange(
        "127.0.0.2",
        gw,
        b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 80\r\nhello\n",
        false,
    );
    assert!(answer.starts_with("app"), "{answer:?}");
    let line = g.wait_for("connection closed", mark, WAIT).unwrap();
    assert!(line.contains("client=198.51.100.7:40000"), "{line}");

    // Anyone else: no header is served as it is; a header is refused before the backend
    // sees a byte of it.
    assert_eq!(ask(gw).unwrap(), "app");
    let mark = g.mark();
    let answer = exchange(
        "127.0.0.1",
        gw,
        b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 80\r\nhello\n",
        false,
    );
    assert_eq!(answer, "", "an untrusted header got an answer");
    let line = g.wait_for("connection refused", mark, WAIT).unwrap();
    assert!(line.contains("not in `trustedSources`"), "{line}");
    assert!(line.contains("client=127.0.0.1:"), "{line}");
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 7, 127, 0, 0, 1, 0x9c, 0x40, 0, 80]);
    assert_eq!(exchange("127.0.0.1", gw, &v2, false), "");

    // A trusted source that sends something wrong is refused, each with its reason.
    let mut oversized = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    oversized.extend_from_slice(&5000u16.to_be_bytes());
    oversized.extend_from_slice(&[0; 64]);
    let cases: [(&[u8], bool, &str); 4] = [
        (
            b"PROXY TCP4 198.51.100.7",
            true,
            "closed before a complete PROXY header",
        ),
        (b"PROXY TCP4 198.51.100.7", false, "before the timeout"),
        (b"hello\n", false, "not a PROXY protocol header"),
        (&oversized, false, "refused: PROXY header:"),
    ];
    for (bytes, close, reason) in cases {
        let mark = g.mark();
        let answer = exchange("127.0.0.2", gw, bytes, close);
        assert_eq!(answer, "", "{reason}: got an answer");
        // Log lines come in batches: look for this case's own line.
        let line = g.wait_for(reason, mark, WAIT).unwrap();
        assert!(line.contains("connection refused"), "{line}");
        assert!(line.contains("client=127.0.0.2:"), "{line}");
    }
    assert!(g.logs().contains("before the timeout (23 bytes received)"));
}

#[test]
fn access_lists_refuse_tcp_connections_and_answer_http_requests_with_403() {
    let backend = Backend::start("app");
    let g = Gatehouse::start(
        BIN,
        &format!(
            "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - {{name: tcp, port: 0, backend: app, allow: [127.0.0.0/8], deny: [127.0.0.3]}}
      - {{name: http, port: 0, protocol: HTTP, deny: [127.0.0.4]}}
      - name: proxied
        port: 0
        backend: app
        deny: [198.51.100.0/24]
        proxyProtocol: {{trustedSources: [127.0.0.2]}}
routes:
  - name: internal
    kind: HTTPRoute
    parentRefs: [t/http]
    allow: [127.0.0.5, 127.0.0.4]
    rules: [{{matches: [{{path: {{type: PathPrefix, value: /admin}}}}], backendRefs: [{{name: app}}]}}]
  - name: public
    kind: HTTPRoute
    parentRefs: [t/http]
    rules: [{{backendRefs: [{{name: app}}]}}]
backends:
  - {{name: app, endpoints: [{}]}}
",
            backend.addr()
        ),
    );
    let tcp = g.addr("t/tcp");
    assert_eq!(ask_from(ip("127.0.0.4"), tcp).unwrap(), "app");
    let mark = g.mark();
    assert!(
        ask_from(ip("127.0.0.3"), tcp).is_err(),
        "a denied client was served"
    );
    let line = g.wait_for("connection refused", mark, WAIT).unwrap();
    assert!(
        line.contains("refused: client address not allowed"),
        "{line}"
    );

    let http = g.addr("t/http");
    let status = |from: &str, path: &str| curl_from(from, http, path).status;
    assert_eq!(status("127.0.0.5", "/admin"), Some(200));
    assert_eq!(
        status("127.0.0.6", "/admin"),
        Some(403),
        "the route allows .5 only"
    );
    assert_eq!(status("127.0.0.6", "/"), Some(200));
    // The listener's deny comes first, whatever the route allows.
    assert_eq!(status("127.0.0.4", "/admin"), Some(403));
    assert_eq!(status("127.0.0.4", "/"), Some(403));
    let mark = g.mark();
    let c = curl_from("127.0.0.6", http, "/admin/x");
    assert_eq!(c.status, Some(403));
    assert!(c.body.contains("client address not allowed"), "{}", c.body);
    let line = g.wait_for("path=/admin/x", mark, WAIT).unwrap();
    assert!(
        line.contains("status=403") && line.contains("route=internal"),
        "{line}"
    );

    // Behind a trusted front, the header's address is the one the lists judge.
    let proxied = g.addr("t/proxied");
    let denied = exchange(
        "127.0.0.2",
        proxied,
        b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 80\r\nhello\n",
        false,
    );
    assert_eq!(denied, "");
    let allowed = exchange(
        "127.0.0.2",
        proxied,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\nhello\n",
        false,
    );
    assert!(allowed.starts_with("app"), "{allowed:?}");
}
