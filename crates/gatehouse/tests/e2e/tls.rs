//! TLS listeners with real clients (`openssl s_client`, `curl`, rustls): passthrough by server
//! name, termination with certificates chosen by server name, both on one port, hellos that
//! arrive in pieces or not at all, certificates replaced on disk, TLS to backends, TLS checks.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_testkit::{
    Backend, Gatehouse, KeyType, TempDir, TestCa, TestCert, TlsBackend, client_hello_bytes,
    connect, curl_get, finish_handshake, read_line, s_client, send_hello_slowly, tls_ask,
    tls_connect,
};

use crate::{BIN, WAIT, sleep};

/// A port that was free a moment ago (for listeners that must share one port).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The YAML of one certificate list entry.
fn cert_entry(c: &TestCert) -> String {
    format!(
        "            - {{certFile: \"{}\", keyFile: \"{}\"}}\n",
        path(&c.cert_path),
        path(&c.key_path)
    )
}

/// Waits until a `connection refused` access line with `outcome` appears after `mark`.
fn refused_with(g: &Gatehouse, mark: usize, outcome: &str) -> String {
    g.wait_for_all(&["connection refused", outcome], mark, WAIT)
        .unwrap_or_else(|| panic!("no refusal {outcome:?}; log:\n{}", g.logs()))
}

/// The connection is closed by the other side (EOF or reset) within `within`.
fn closes_within(s: &mut std::net::TcpStream, within: Duration) -> Duration {
    s.set_read_timeout(Some(within)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("still open after {within:?}")
            }
            Err(_) => return start.elapsed(),
        }
    }
}

#[test]
fn passthrough_routes_by_server_name_and_the_client_sees_the_backends_certificate() {
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let git = TlsBackend::start(
        "git",
        &ca.issue(
            dir.path(),
            "git-cert",
            &["git.int.example.test"],
            KeyType::Ecdsa,
        ),
    );
    let apps = TlsBackend::start(
        "apps",
        &ca.issue(
            dir.path(),
            "apps-cert",
            &["*.apps.example.test"],
            KeyType::Rsa,
        ),
    );
    let other = TlsBackend::start(
        "other",
        &ca.issue(
            dir.path(),
            "other-cert",
            &["other.example.test"],
            KeyType::Ed25519,
        ),
    );
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - name: tls
        port: 0
        protocol: TLS
        tls: {{mode: Passthrough}}
routes:
  - {{name: git, kind: TLSRoute, parentRefs: [edge/tls], hostnames: [git.int.example.test], backend: git}}
  - {{name: apps, kind: TLSRoute, parentRefs: [edge], hostnames: [\"*.apps.example.test\"], backend: apps}}
  - {{name: other, kind: TLSRoute, parentRefs: [edge/tls], hostnames: [Other.Example.Test], backend: other}}
backends:
  - {{name: git, endpoints: [{}]}}
  - {{name: apps, endpoints: [{}]}}
  - {{name: other, endpoints: [{}]}}
",
        git.addr(),
        apps.addr(),
        other.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("edge/tls");

    // The real openssl client: the certificate it is shown is the backend's own.
    let s = s_client(gw, Some("git.int.example.test"), &[]);
    assert!(s.handshake_ok, "{}", s.raw);
    assert_eq!(s.peer_cn.as_deref(), Some("git-cert"), "{}", s.raw);
    assert!(s.stdout.starts_with("git\n"), "{}", s.raw);
    let s = s_client(gw, Some("a.b.apps.example.test"), &[]);
    assert_eq!(s.peer_cn.as_deref(), Some("apps-cert"), "{}", s.raw);
    assert!(s.stdout.starts_with("apps\n"), "{}", s.raw);
    // Server names compare without regard to case.
    let s = s_client(gw, Some("OTHER.example.test"), &[]);
    assert_eq!(s.peer_cn.as_deref(), Some("other-cert"), "{}", s.raw);

    // curl, verifying the backend's certificate against the CA: end to end TLS.
    let ca_file = dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let c = curl_get(
        "https://git.int.example.test/",
        &[("git.int.example.test", 443, gw)],
        Some(&ca_file),
        &[],
    );
    assert_eq!(c.status, Some(200), "{}", c.stderr);
    assert_eq!(c.body, "git\n");
    assert_eq!(c.peer_cn.as_deref(), Some("git-cert"));
    assert_eq!(c.verify_result, Some(0));

    // The backend saw the client's own server name: the hello reached it untouched.
    assert!(
        git.handshakes()
            .iter()
            .all(|h| h.sni.as_deref() == Some("git.int.example.test"))
    );

    // A name no route serves, and no name at all: closed before any backend is involved.
    let mark = g.mark();
    let s = s_client(gw, Some("unknown.example.test"), &[]);
    assert!(!s.handshake_ok, "{}", s.raw);
    let line = refused_with(&g, mark, "no route for this server name");
    assert!(line.contains("sni=unknown.example.test"), "{line}");
    let s = s_client(gw, None, &[]);
    assert!(!s.handshake_ok, "{}", s.raw);
    refused_with(&g, mark, "no server name");
    // The access log of a routed connection names the route and the name.
    let line = g
        .wait_for_all(
            &["connection closed", "route=git", "tls=passthrough"],
            0,
            WAIT,
        )
        .unwrap_or_else(|| panic!("{}", g.logs()));
    assert!(line.contains("sni=git.int.example.test"), "{line}");
}

#[test]
fn termination_presents_the_certificate_for_each_name_and_proxies_the_plain_stream() {
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let default = ca.issue(
        dir.path(),
        "default-cert",
        &["default.example.test"],
        KeyType::Ecdsa,
    );
    let exact = ca.issue(dir.path(), "api-cert", &["api.example.test"], KeyType::Rsa);
    let wild = ca.issue(
        dir.path(),
        "wild-cert",
        &["*.example.test"],
        KeyType::Ed25519,
    );
    let plain = Backend::start("plain");
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - name: tls
        port: 0
        protocol: TLS
        tls:
          alpn: [h2, http/1.1]
          certificates:
{}{}{}        backend: plain
backends:
  - {{name: plain, endpoints: [{}]}}
",
        cert_entry(&default),
        cert_entry(&exact),
        cert_entry(&wild),
        plain.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("edge/tls");

    for (sni, cn) in [
        (Some("api.example.test"), "api-cert"),
        (Some("wiki.example.test"), "wild-cert"),
        // A wildcard covers one label only: the default certificate.
        (Some("a.b.example.test"), "default-cert"),
        (Some("elsewhere.test"), "default-cert"),
        (None, "default-cert"),
    ] {
        let s = s_client(gw, sni, &[]);
        assert!(s.handshake_ok, "{sni:?}: {}", s.raw);
        assert_eq!(s.peer_cn.as_deref(), Some(cn), "{sni:?}: {}", s.raw);
        // Decrypted, the bytes reach the plain backend and its answer comes back encrypted.
        assert_eq!(s.stdout, "plain\nhello\n", "{sni:?}: {}", s.raw);
    }

    // TLS 1.2 and 1.3 both work; ALPN is negotiated.
    let s = s_client(gw, Some("api.example.test"), &["-tls1_2"]);
    assert_eq!(s.protocol.as_deref(), Some("TLSv1.2"), "{}", s.raw);
    let s = s_client(
        gw,
        Some("api.example.test"),
        &["-tls1_3", "-alpn", "h2,http/1.1"],
    );
    assert_eq!(s.protocol.as_deref(), Some("TLSv1.3"), "{}", s.raw);
    assert_eq!(s.alpn.as_deref(), Some("h2"), "{}", s.raw);
    let (name, info) = tls_ask(gw, Some("api.example.test")).unwrap();
    assert_eq!(name, "plain");
    assert_eq!(info.peer_cn.as_deref(), Some("api-cert"));

    // The chain verifies with the CA as a client would check it.
    let (mut tls, _) =
        tls_connect(gw, Some("wiki.example.test"), &["http/1.1"], Some(&ca)).unwrap();
    tls.write_all(b"ping\n").unwrap();
    assert_eq!(read_line(&mut tls).unwrap(), "plain");
    assert_eq!(read_line(&mut tls).unwrap(), "ping");
    let line = g
        .wait_for_all(
            &["connection closed", "tls=terminate", "sni=api.example.test"],
            0,
            WAIT,
        )
        .unwrap_or_else(|| panic!("{}", g.logs()));
    assert!(line.contains("backend=plain"), "{line}");
}

#[test]
fn one_port_passes_some_names_through_and_terminates_the_others() {
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let inner = TlsBackend::start(
        "inner",
        &ca.issue(
            dir.path(),
            "inner-cert",
            &["*.int.example.test"],
            KeyType::Ecdsa,
        ),
    );
    let plain = Backend::start("plain");
    let edge_cert = ca.issue(dir.path(), "edge-cert", &["*.example.test"], KeyType::Ecdsa);
    let port = free_port();
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - name: pass
        port: {port}
        protocol: TLS
        hostname: \"*.int.example.test\"
        tls: {{mode: Passthrough}}
        backend: inner
      - name: term
        port: {port}
        protocol: TLS
        tls:
          certificates:
{}        backend: plain
backends:
  - {{name: inner, endpoints: [{}]}}
  - {{name: plain, endpoints: [{}]}}
",
        cert_entry(&edge_cert),
        inner.addr(),
        plain.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    assert_eq!(g.addr("edge/pass"), g.addr("edge/term"), "one socket");
    let gw = g.addr("edge/pass");

    let (name, info) = tls_ask(gw, Some("git.int.example.test")).unwrap();
    assert_eq!(
        (name.as_str(), info.peer_cn.as_deref()),
        ("inner", Some("inner-cert"))
    );
    let (name, info) = tls_ask(gw, Some("wiki.example.test")).unwrap();
    assert_eq!(
        (name.as_str(), info.peer_cn.as_deref()),
        ("plain", Some("edge-cert"))
    );
    let (name, info) = tls_ask(gw, None).unwrap();
    assert_eq!(
        (name.as_str(), info.peer_cn.as_deref()),
        ("plain", Some("edge-cert"))
    );
}

#[test]
fn a_client_hello_in_many_small_pieces_still_routes() {
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let git = TlsBackend::start(
        "git",
        &ca.issue(
            dir.path(),
            "git-cert",
            &["git.example.test"],
            KeyType::Ecdsa,
        ),
    );
    let plain = Backend::start("plain");
    let cert = ca.issue(dir.path(), "edge-cert", &["*.example.test"], KeyType::Ecdsa);
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - {{name: pass, port: 0, protocol: TLS, tls: {{mode: Passthrough}}, backend: git}}
      - name: term
        port: 0
        protocol: TLS
        tls:
          certificates:
{}        backend: plain
backends:
  - {{name: git, endpoints: [{}]}}
  - {{name: plain, endpoints: [{}]}}
",
        cert_entry(&cert),
        git.addr(),
        plain.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    for (listener, expect_name, expect_cn) in [
        ("edge/pass", "git", "git-cert"),
        ("edge/term", "plain", "edge-cert"),
    ] {
        // A large hello (many ALPN names), sent 7 bytes at a time with pauses.
        let alpn: Vec<String> = (0..120).map(|i| format!("proto-{i:03}")).collect();
        let mut alpn: Vec<&str> = alpn.iter().map(String::as_str).collect();
        alpn.push("http/1.1");
        let (hello, conn) = client_hello_bytes("git.example.test", &alpn);
        assert!(hello.len() > 1200, "hello is {} bytes", hello.len());
        let tcp = send_hello_slowly(g.addr(listener), &hello, 7, Duration::from_millis(1)).unwrap();
        let (mut tls, info) = finish_handshake(conn, tcp).unwrap();
        assert_eq!(info.peer_cn.as_deref(), Some(expect_cn), "{listener}");
        tls.write_all(b"x\n").unwrap();
        assert_eq!(read_line(&mut tls).unwrap(), expect_name, "{listener}");
    }
}

#[test]
fn what_is_not_a_tls_hello_is_closed_cleanly_and_logged() {
    let plain = Backend::start("plain");
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - name: tls
        port: 0
        protocol: TLS
        tls: {{mode: Passthrough, handshakeTimeout: 400ms}}
        backend: plain
backends:
  - {{name: plain, endpoints: [{}]}}
",
        plain.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("edge/tls");
    let (hello, _) = client_hello_bytes("git.example.test", &[]);

    // Plaintext HTTP on the TLS port.
    let mark = g.mark();
    let mut s = connect(gw).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    closes_within(&mut s, Duration::from_secs(2));
    refused_with(&g, mark, "not TLS");

    // An SSL 2.0-style hello.
    let mark = g.mark();
    let mut s = connect(gw).unwrap();
    s.write_all(&[
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
    ])
    .unwrap();
    closes_within(&mut s, Duration::from_secs(2));
    refused_with(&g, mark, "SSL");

    // Half a hello, then the client closes its side.
    let mark = g.mark();
    let mut s = connect(gw).unwrap();
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    closes_within(&mut s, Duration::from_secs(2));
    refused_with(&g, mark, "closed before a complete ClientHello");

    // Half a hello, then nothing: closed when the handshake timeout passes, not before.
    let mark = g.mark();
    let mut s = connect(gw).unwrap();
    s.write_all(&hello[..hello.len() - 1]).unwrap();
    let took = closes_within(&mut s, Duration::from_secs(5));
    assert!(took >= Duration::from_millis(300), "closed after {took:?}");
    refused_with(&g, mark, "not complete");

    // Nothing of this reached the backend, and Gatehouse still serves.
    assert_eq!(plain.served(), 0);
    let tcp = send_hello_slowly(gw, &hello, 4096, Duration::ZERO).unwrap();
    let mut tcp = tcp;
    let mut first = [0u8; 6];
    tcp.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"plain\n", "the hello was replayed to the backend");
    let mut echoed = vec![0u8; hello.len()];
    tcp.read_exact(&mut echoed).unwrap();
    assert_eq!(
        echoed, hello,
        "every byte of the hello reached the backend unchanged"
    );
}

#[test]
fn replaced_certificate_files_change_new_handshakes_and_keep_open_connections() {
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let plain = Backend::start("plain");
    let cert = dir.path().join("site.crt");
    let key = dir.path().join("site.key");
    ca.issue_at(&cert, &key, "first", &["site.example.test"], KeyType::Ecdsa);
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - name: tls
        port: 0
        protocol: TLS
        tls:
          certificates:
            - {{certFile: \"{}\", keyFile: \"{}\"}}
        backend: plain
backends:
  - {{name: plain, endpoints: [{}]}}
",
        path(&cert),
        path(&key),
        plain.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("edge/tls");
    let (mut open, info) = tls_connect(gw, Some("site.example.test"), &[], None).unwrap();
    assert_eq!(info.peer_cn.as_deref(), Some("first"));
    open.write_all(b"a\n").unwrap();
    assert_eq!(read_line(&mut open).unwrap(), "plain");
    assert_eq!(read_line(&mut open).unwrap(), "a");

    // What an ACME client or cert-manager does: new files written aside, renamed over.
    let mark = g.mark();
    let (new_cert, new_key) = (dir.path().join("new.crt"), dir.path().join("new.key"));
    ca.issue_at(
        &new_cert,
        &new_key,
        "second",
        &["site.example.test"],
        KeyType::Rsa,
    );
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    assert!(
        g.wait_for("config reloaded", mark, WAIT).is_some(),
        "log:\n{}",
        g.logs()
    );
    let s = s_client(gw, Some("site.example.test"), &[]);
    assert_eq!(s.peer_cn.as_deref(), Some("second"), "{}", s.raw);
    // The connection opened under the old certificate carries on.
    open.write_all(b"b\n").unwrap();
    assert_eq!(read_line(&mut open).unwrap(), "b");

    // A broken replacement (a key from another certificate) is refused; the last good
    // certificate stays.
    let mark = g.mark();
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let stray = ca.issue(&other, "stray", &["x.example.test"], KeyType::Ecdsa);
    std::fs::copy(&stray.key_path, &key).unwrap();
    assert!(
        g.wait_for_all(&["reload failed", "does not match"], mark, WAIT)
            .is_some(),
        "log:\n{}",
        g.logs()
    );
    let s = s_client(gw, Some("site.example.test"), &[]);
    assert_eq!(s.peer_cn.as_deref(), Some("second"), "{}", s.raw);
    open.write_all(b"c\n").unwrap();
    assert_eq!(read_line(&mut open).unwrap(), "c");
}

#[test]
fn tls_to_the_backend_is_verified_against_the_ca_file() {
    let dir = TempDir::new();
    let ca = TestCa::new("backend CA");
    let api = TlsBackend::start(
        "api",
        &ca.issue(
            dir.path(),
            "api-cert",
            &["api.internal.test"],
            KeyType::Ecdsa,
        ),
    );
    let ca_file = dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let config = |server_name: &str| {
        format!(
            "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - {{name: in, port: 0, backend: api}}
backends:
  - name: api
    endpoints: [{}]
    retries: 0
    tls: {{caFile: \"{}\", serverName: {server_name}}}
",
            api.addr(),
            path(&ca_file)
        )
    };
    let g = Gatehouse::start(BIN, &config("api.internal.test"));
    let gw = g.addr("edge/in");
    // Plain TCP in, TLS out: the backend answers through the verified connection.
    let mut s = connect(gw).unwrap();
    s.write_all(b"hi\n").unwrap();
    assert_eq!(read_line(&mut s).unwrap(), "api");
    assert_eq!(
        api.handshakes()[0].sni.as_deref(),
        Some("api.internal.test")
    );

    // A name the certificate does not hold: the handshake fails verification, the client is
    // closed, and the log says why.
    let mark = g.mark();
    g.write_config(&config("wrong.internal.test"));
    assert!(
        g.wait_for("config reloaded", mark, WAIT).is_some(),
        "{}",
        g.logs()
    );
    let mut s = connect(gw).unwrap();
    s.write_all(b"hi\n").unwrap();
    closes_within(&mut s, Duration::from_secs(5));
    assert!(
        g.wait_for_all(&["connect to endpoint failed", "TLS handshake"], mark, WAIT)
            .is_some(),
        "{}",
        g.logs()
    );
}

#[test]
fn a_tls_health_check_takes_down_an_endpoint_that_does_not_complete_a_handshake() {
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let good = TlsBackend::start(
        "good",
        &ca.issue(dir.path(), "good-cert", &["app.test"], KeyType::Ecdsa),
    );
    let not_tls = Backend::start("not-tls");
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - {{name: tls, port: 0, protocol: TLS, tls: {{mode: Passthrough}}, backend: app}}
backends:
  - name: app
    endpoints: [{}, {}]
    healthCheck: {{protocol: TLS, host: app.test, interval: 100ms, timeout: 500ms, fall: 2, rise: 1}}
",
        good.addr(),
        not_tls.addr()
    );
    let g = Gatehouse::start(BIN, &yaml);
    let down = g
        .wait_for_all(&["endpoint down", &not_tls.addr().to_string()], 0, WAIT)
        .unwrap_or_else(|| panic!("{}", g.logs()));
    assert!(down.contains("TLS handshake"), "{down}");
    assert!(g.lines_with("endpoint down", 0).len() == 1, "{}", g.logs());
    // Every connection now goes to the endpoint that speaks TLS.
    let gw = g.addr("edge/tls");
    for _ in 0..4 {
        let (name, _) = tls_ask(gw, Some("app.test")).unwrap();
        assert_eq!(name, "good");
    }
    // The check sent the configured server name.
    assert!(
        good.handshakes()
            .iter()
            .any(|h| h.sni.as_deref() == Some("app.test"))
    );
    // Stopping the good one takes it down too.
    let mark = g.mark();
    good.stop();
    sleep(Duration::from_millis(50));
    assert!(
        g.wait_for_all(&["endpoint down", &good.addr().to_string()], mark, WAIT)
            .is_some(),
        "{}",
        g.logs()
    );
}

/// `gatehouse check` reads the certificates: what it prints names them.
#[test]
fn check_reports_certificates_and_routes() {
    let dir = TempDir::new();
    let ca = TestCa::new("test CA");
    let cert = ca.issue(
        dir.path(),
        "site",
        &["site.example.test", "*.site.example.test"],
        KeyType::Ecdsa,
    );
    let config = dir.path().join("gatehouse.yaml");
    std::fs::write(
        &config,
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - name: tls
        port: 8443
        protocol: TLS
        tls:
          certificates:
            - {certFile: site.crt, keyFile: site.key}
        backend: app
routes:
  - {name: api, kind: TLSRoute, parentRefs: [edge/tls], hostnames: [api.site.example.test], backend: app}
backends:
  - {name: app, endpoints: [127.0.0.1:9000]}
",
    )
    .unwrap();
    assert!(cert.cert_path.ends_with("site.crt"));
    let out = std::process::Command::new(BIN)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("site.example.test, *.site.example.test"),
        "{stdout}"
    );
    assert!(stdout.contains("ECDSA"), "{stdout}");
    assert!(stdout.contains("route api"), "{stdout}");

    // A missing key file is an error naming the file, line and column.
    std::fs::remove_file(&cert.key_path).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read key file"), "{stderr}");
    assert!(stderr.contains("gatehouse.yaml:10:"), "{stderr}");
}
