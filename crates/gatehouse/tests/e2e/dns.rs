//! Gatehouse's DNS server through the real binary, asked with `dig`: records that fill
//! themselves from the routes, answers that follow backend health, reloads.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_testkit::{Backend, Gatehouse};

use crate::{WAIT, sleep};

/// `dig @server name type +short`, the answer lines sorted.
fn dig(server: SocketAddr, name: &str, kind: &str) -> Vec<String> {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            name,
            kind,
            "+short",
            "+time=2",
            "+tries=1",
        ])
        .output()
        .expect("dig is not installed (Debian package bind9-dnsutils)");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.starts_with(";;"))
        .collect();
    lines.sort();
    lines
}

/// Asks until the answer is `expected` (health checks and reloads take a moment).
fn wait_for_answer(server: SocketAddr, name: &str, expected: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = dig(server, name, "A");
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {got:?}, expected {expected:?}"
        );
        sleep(Duration::from_millis(100));
    }
}

fn config(a: SocketAddr, b: SocketAddr, extra_route: &str) -> String {
    format!(
        "gateways:
  - name: a
    addresses: [127.0.0.1]
    listeners:
      - {{name: web, port: 0, protocol: HTTP, hostname: \"*.home.arpa\", backend: app-a}}
  - name: b
    addresses: [127.0.0.2]
    listeners:
      - {{name: web, port: 0, protocol: HTTP, hostname: app.home.arpa, backend: app-b}}
      - {{name: db, port: 0, backend: app-b, dnsName: db.home.arpa}}
routes:
  - {{name: grafana, kind: HTTPRoute, parentRefs: [a/web], hostnames: [grafana.home.arpa], backend: app-a}}
  - {{name: app, kind: HTTPRoute, parentRefs: [a/web], hostnames: [app.home.arpa], backend: app-a}}
{extra_route}backends:
  - name: app-a
    endpoints: [{a}]
    healthCheck: {{interval: 100ms, rise: 1, fall: 1}}
  - name: app-b
    endpoints: [{b}]
    healthCheck: {{interval: 100ms, rise: 1, fall: 1}}
dns:
  listen: [127.0.0.1:0]
  zones:
    - name: home.arpa
      records:
        - {{name: nas, type: A, value: 192.0.2.10}}
        - {{name: files, type: CNAME, value: nas}}
"
    )
}

#[test]
fn names_follow_the_routes_their_health_and_reloads() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Gatehouse::start(crate::BIN, &config(a.addr(), b.addr(), ""));
    let dns = g.addr("dns");

    // Static records, a CNAME followed, automatic records from a route, a listener's wildcard
    // hostname and a TCP listener's dnsName.
    assert_eq!(dig(dns, "nas.home.arpa", "A"), ["192.0.2.10"]);
    assert_eq!(
        dig(dns, "files.home.arpa", "A"),
        ["192.0.2.10", "nas.home.arpa."]
    );
    assert_eq!(dig(dns, "grafana.home.arpa", "A"), ["127.0.0.1"]);
    assert_eq!(dig(dns, "anything.home.arpa", "A"), ["127.0.0.1"]);
    assert_eq!(dig(dns, "db.home.arpa", "A"), ["127.0.0.2"]);
    // Two gateways serve app.home.arpa (a route on one, the listener's own name on the
    // other): both addresses, while both are healthy. (The wildcard does not apply to a name
    // that has records of its own.)
    assert_eq!(dig(dns, "app.home.arpa", "A"), ["127.0.0.1", "127.0.0.2"]);

    // The backend behind 127.0.0.1 dies: only 127.0.0.2 is given out; it comes back: both.
    let a_addr = a.addr();
    a.stop();
    g.wait_for("endpoint down", 0, WAIT).unwrap();
    wait_for_answer(dns, "app.home.arpa", &["127.0.0.2"]);
    // When no address is healthy, all are given (an answer beats none).
    b.stop();
    wait_for_answer(dns, "app.home.arpa", &["127.0.0.1", "127.0.0.2"]);
    let _a = Backend::start_on("a", a_addr);
    wait_for_answer(dns, "app.home.arpa", &["127.0.0.1"]);

    // A reload that adds a route makes its name resolve; a name outside the zone does not.
    assert_eq!(dig(dns, "photos.example.test", "A"), Vec::<String>::new());
    let mark = g.mark();
    g.write_config(&config(
        a_addr,
        b.addr(),
        "  - {name: photos, kind: HTTPRoute, parentRefs: [a/web], hostnames: [photos.home.arpa], backend: app-a}\n",
    ));
    g.wait_for("config reloaded", mark, WAIT).unwrap();
    wait_for_answer(dns, "photos.home.arpa", &["127.0.0.1"]);
    // The same server kept answering: its address did not change.
    assert_eq!(g.addr("dns"), dns);
}

#[test]
fn check_refuses_a_static_record_that_clashes_with_a_route() {
    let dir = gatehouse_testkit::TempDir::new();
    let path = dir.path().join("gatehouse.yaml");
    std::fs::write(
        &path,
        "gateways:
  - name: a
    addresses: [127.0.0.1]
    listeners:
      - {name: web, port: 8080, protocol: HTTP, hostname: app.home.arpa, backend: app}
backends:
  - {name: app, endpoints: [127.0.0.1:9000]}
dns:
  listen: [127.0.0.1:5353]
  zones:
    - name: home.arpa
      records:
        - {name: app, type: A, value: 192.0.2.10}
",
    )
    .unwrap();
    let out = Command::new(crate::BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("static record `app.home.arpa` A conflicts with the automatic record for listener `a/web`"),
        "{err}"
    );
    // Both places are named: the record (line 13) and the listener (line 5).
    assert!(err.contains("gatehouse.yaml:13:"), "{err}");
    assert!(err.contains("gatehouse.yaml:5:"), "{err}");
}
