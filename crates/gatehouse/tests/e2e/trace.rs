//! `gatehouse trace -c FILE`: the real binary explains, offline, how a request would travel,
//! on configs written to temporary directories. Nothing listens on the configured listener
//! ports (trace never binds them); backends are real sockets on 127.0.0.1, or closed ports,
//! or non-loopback addresses that trace must not contact (it only probes loopback).

use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use gatehouse_testkit::{Backend, KeyType, TempDir, TestCa};

use crate::BIN;

/// What one run printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Panics (with the whole output) unless stdout has every one of `wanted`.
    fn shows(&self, wanted: &[&str]) -> &Self {
        for w in wanted {
            assert!(
                self.stdout.contains(w),
                "output lacks `{w}`:\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr
            );
        }
        self
    }

    /// The verdict: the last line.
    fn verdict(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }
}

/// Writes `yaml` into `dir` and runs `gatehouse trace ARGS -c FILE`.
fn trace_in(dir: &TempDir, yaml: &str, args: &[&str]) -> Run {
    let path = dir.path().join("gatehouse.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(BIN)
        .arg("trace")
        .args(args)
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn trace(yaml: &str, args: &[&str]) -> Run {
    trace_in(&TempDir::new(), yaml, args)
}

/// A loopback port with nothing listening on it (bound a moment ago, then closed).
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn names_the_winning_http_route_and_rule_exact_before_prefix() {
    let api = Backend::start("api");
    let cart = Backend::start("cart");
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - {{ name: web, port: 8080, protocol: HTTP }}
routes:
  - name: shop
    kind: HTTPRoute
    parentRefs: [edge/web]
    hostnames: [shop.example.test]
    rules:
      - matches: [{{ path: {{ type: PathPrefix, value: /api }} }}]
        backendRefs: [{{ name: api }}]
      - matches: [{{ path: {{ type: Exact, value: /api/cart }} }}]
        backendRefs: [{{ name: cart }}]
backends:
  - {{ name: api, endpoints: [\"{}\"] }}
  - {{ name: cart, endpoints: [\"{}\"] }}
",
        api.addr(),
        cart.addr()
    );
    let exact = trace(&yaml, &["http://shop.example.test:8080/api/cart"]);
    assert_eq!(exact.code, 0, "{}", exact.stdout);
    exact.shows(&[
        "edge/web, HTTP on 127.0.0.1:8080",
        "HTTPRoute shop rule 1: Exact /api/cart",
        "also matches, lower precedence: route shop rule 0: PathPrefix /api",
        &format!("{}  weight 1  up (TCP connect", cart.addr()),
    ]);
    assert_eq!(
        exact.verdict(),
        format!(
            "OK: http://shop.example.test:8080/api/cart would reach {} through route shop rule 1",
            cart.addr()
        )
    );

    let prefix = trace(&yaml, &["http://shop.example.test:8080/api/items?page=2"]);
    assert_eq!(prefix.code, 0, "{}", prefix.stdout);
    prefix.shows(&["HTTPRoute shop rule 0: PathPrefix /api"]);
    assert!(
        prefix.verdict().ends_with(&format!(
            "would reach {} through route shop rule 0",
            api.addr()
        )),
        "{}",
        prefix.stdout
    );
}

#[test]
fn follows_a_redirect_to_https() {
    let app = Backend::start("app");
    let dir = TempDir::new();
    let ca = TestCa::new("trace-ca");
    let cert = ca.issue(dir.path(), "wild", &["*.example.test"], KeyType::Ecdsa);
    let yaml = format!(
        "gateways:
  - name: www
    addresses: [127.0.0.1]
    listeners:
      - {{ name: http, port: 8080, protocol: HTTP }}
      - name: https
        port: 8443
        protocol: HTTPS
        tls: {{ certificates: [{{ certFile: \"{}\", keyFile: \"{}\" }}] }}
routes:
  - name: to-https
    kind: HTTPRoute
    parentRefs: [www/http]
    rules:
      - filters: [{{ type: RequestRedirect, requestRedirect: {{ scheme: https, port: 8443, statusCode: 301 }} }}]
  - name: app
    kind: HTTPRoute
    parentRefs: [www/https]
    hostnames: [app.example.test]
    backend: app
backends:
  - {{ name: app, endpoints: [\"{}\"] }}
",
        cert.cert_path.display(),
        cert.key_path.display(),
        app.addr()
    );
    let run = trace_in(&dir, &yaml, &["http://app.example.test:8080/login?next=1"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.shows(&[
        "HTTPRoute to-https rule 0",
        "RequestRedirect: 301 Location: https://app.example.test:8443/login?next=1",
        "is answered by Gatehouse with a 301 redirect to https://app.example.test:8443/login?next=1 (route to-https rule 0)",
        "following the 301 redirect to https://app.example.test:8443/login?next=1",
        "trace https://app.example.test:8443/login?next=1",
        "terminated here, on www/https",
        "HTTPRoute app rule 0",
    ]);
    assert_eq!(
        run.verdict(),
        format!(
            "OK: https://app.example.test:8443/login?next=1 would reach {} through route app rule 0",
            app.addr()
        )
    );
}

#[test]
fn tells_tls_passthrough_from_termination_and_names_the_certificate() {
    let dir = TempDir::new();
    let ca = TestCa::new("trace-ca");
    let default = ca.issue(dir.path(), "default", &["www.example.test"], KeyType::Ecdsa);
    let apps = ca.issue(dir.path(), "apps", &["*.apps.example.test"], KeyType::Ecdsa);
    let git = Backend::start("git");
    let web = Backend::start("web");
    let yaml = format!(
        "gateways:
  - name: tls
    addresses: [127.0.0.1]
    listeners:
      - name: passthrough
        port: 9443
        protocol: TLS
        hostname: \"*.int.example.test\"
        tls: {{ mode: Passthrough }}
      - name: terminate
        port: 9443
        protocol: TLS
        tls:
          certificates:
            - {{ certFile: \"{}\", keyFile: \"{}\" }}
            - {{ certFile: \"{}\", keyFile: \"{}\" }}
          alpn: [http/1.1]
        backend: web
routes:
  - name: git
    kind: TLSRoute
    parentRefs: [tls/passthrough]
    hostnames: [git.int.example.test]
    backend: git
backends:
  - {{ name: git, endpoints: [\"{}\"] }}
  - {{ name: web, endpoints: [\"{}\"] }}
",
        default.cert_path.display(),
        default.key_path.display(),
        apps.cert_path.display(),
        apps.key_path.display(),
        git.addr(),
        web.addr()
    );

    let pass = trace_in(&dir, &yaml, &["git.int.example.test:9443"]);
    assert_eq!(pass.code, 0, "{}", pass.stdout);
    pass.shows(&[
        "shared by tls/passthrough, tls/terminate",
        "server name (SNI): git.int.example.test",
        "passthrough on tls/passthrough",
        "TLSRoute git (exact name git.int.example.test) -> backend git",
    ]);
    assert!(!pass.stdout.contains("certificate "), "{}", pass.stdout);
    assert!(
        pass.verdict()
            .ends_with(&format!("would reach {} through TLSRoute git", git.addr()))
    );

    let term = trace_in(&dir, &yaml, &["wiki.apps.example.test:9443"]);
    assert_eq!(term.code, 0, "{}", term.stdout);
    term.shows(&[
        "terminated here, on tls/terminate",
        &format!("certificate {} (CN apps", apps.cert_path.display()),
        "wildcard SAN *.apps.example.test",
        "ALPN offered: http/1.1",
        "no TLSRoute claims wiki.apps.example.test: the listener's own backend web takes it",
    ]);
    assert!(term.verdict().ends_with(&format!(
        "would reach {} through listener tls/terminate",
        web.addr()
    )));

    // A name no certificate covers gets the default (first) one, and a warning.
    let other = trace_in(&dir, &yaml, &["https://other.example.test:9443/"]);
    other.shows(&[
        &format!("certificate {} (CN default", default.cert_path.display()),
        "the default (first) certificate",
        "warning: the certificate does not cover other.example.test",
    ]);
}

#[test]
fn an_unknown_host_gets_404_and_the_no_route_warning() {
    let app = Backend::start("app");
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - {{ name: web, port: 8080, protocol: HTTP }}
routes:
  - {{ name: app, kind: HTTPRoute, parentRefs: [edge/web], hostnames: [app.example.test], backend: app }}
backends:
  - {{ name: app, endpoints: [\"{}\"] }}
",
        app.addr()
    );
    let run = trace(&yaml, &["http://nope.example.test:8080/"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.shows(&[
        "404: no HTTPRoute on edge/web serves host nope.example.test",
        "warning: no route serves this hostname: nope.example.test (routes on edge/web serve: app.example.test)",
    ]);
    assert_eq!(
        run.verdict(),
        "FAILS: 404: no route serves nope.example.test on edge/web"
    );
}

#[test]
fn a_closed_backend_port_is_reported_down() {
    let up = Backend::start("up");
    let closed = closed_port();
    let yaml = format!(
        "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - {{ name: in, port: 15432, backend: db }}
      - {{ name: dead, port: 15433, backend: dead }}
backends:
  - {{ name: db, endpoints: [\"{closed}\", \"{}\"] }}
  - {{ name: dead, endpoints: [\"{closed}\"] }}
",
        up.addr()
    );
    // One endpoint down, one up: the trace goes on, and warns.
    let run = trace(&yaml, &["tcp://127.0.0.1:15432"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.shows(&[
        "t/in, TCP on 127.0.0.1:15432",
        &format!("{closed}  weight 1  DOWN: connection refused: nothing listens on {closed}"),
        &format!("{}  weight 1  up (TCP connect", up.addr()),
        &format!("warning: backend port not open: {closed} of backend db"),
        &format!("pick: in turn among {}", up.addr()),
    ]);
    assert_eq!(
        run.verdict(),
        format!(
            "OK: tcp://127.0.0.1:15432 would reach {} through listener t/in",
            up.addr()
        )
    );
    // Its only endpoint down: the verdict fails.
    let run = trace(&yaml, &["127.0.0.1:15433"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.verdict(),
        "FAILS: backend dead: no endpoint is up: connections are closed"
    );
}

/// A zone with an automatic record (from a route) and a static record pointing at an
/// address no listener binds.
fn dns_config(app: SocketAddr) -> String {
    format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - {{ name: web, port: 8080, protocol: HTTP }}
routes:
  - {{ name: app, kind: HTTPRoute, parentRefs: [edge/web], hostnames: [app.home.arpa], backend: app }}
backends:
  - {{ name: app, endpoints: [\"{app}\"] }}
dns:
  listen: [\"127.0.0.1:5354\"]
  zones:
    - name: home.arpa
      records:
        - {{ name: nas, type: A, value: 127.0.0.9 }}
        - {{ name: files, type: CNAME, value: nas }}
"
    )
}

#[test]
fn the_dns_answer_comes_from_the_zone_with_its_automatic_record() {
    let app = Backend::start("app");
    let run = trace(&dns_config(app.addr()), &["http://app.home.arpa:8080/"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    run.shows(&[
        "Gatehouse's DNS answers for zone home.arpa:",
        "app.home.arpa A 127.0.0.1 (automatic record: listener edge/web serves it, TTL 30s)",
        "127.0.0.1: loopback, on this node",
        "edge/web, HTTP on 127.0.0.1:8080",
        "HTTPRoute app rule 0",
    ]);
    assert!(!run.stdout.contains("warning:"), "{}", run.stdout);
    assert!(run.verdict().starts_with("OK: "), "{}", run.stdout);
}

#[test]
fn a_static_record_to_an_address_no_listener_binds_is_flagged() {
    let app = Backend::start("app");
    let run = trace(&dns_config(app.addr()), &["http://files.home.arpa:8080/"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.shows(&[
        "files.home.arpa CNAME nas.home.arpa (static record, TTL 300s)",
        "nas.home.arpa A 127.0.0.9 (static record, TTL 300s)",
        "warning: files.home.arpa resolves to 127.0.0.9, which no listener binds: a stale DNS record or override?",
        "warning: a listener bound to one address where clients use another: edge/web listens on 127.0.0.1:8080, but files.home.arpa resolves to 127.0.0.9",
    ]);
    assert_eq!(
        run.verdict(),
        "FAILS: no listener on 127.0.0.9:8080: http://files.home.arpa:8080/ would be refused or time out"
    );
    // A name outside every zone: resolved elsewhere.
    let run = trace(&dns_config(app.addr()), &["http://app.example.org:8080/"]);
    run.shows(&["app.example.org is not in a local zone: clients resolve it elsewhere"]);
}

#[test]
fn from_is_refused_by_a_deny_list() {
    let app = Backend::start("app");
    let yaml = format!(
        "gateways:
  - name: edge
    addresses: [127.0.0.1]
    listeners:
      - {{ name: db, port: 15432, backend: app, allow: [10.0.0.0/8], deny: [10.9.0.0/16] }}
backends:
  - {{ name: app, endpoints: [\"{}\"] }}
",
        app.addr()
    );
    let refused = trace(&yaml, &["tcp://127.0.0.1:15432", "--from", "10.9.1.1"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    refused.shows(&["trace tcp://127.0.0.1:15432 from 10.9.1.1"]);
    assert_eq!(
        refused.verdict(),
        "FAILS: client 10.9.1.1 is refused by edge/db's deny list (10.9.0.0/16): the connection is closed"
    );
    let outside = trace(&yaml, &["tcp://127.0.0.1:15432", "--from", "192.168.1.7"]);
    assert_eq!(
        outside.verdict(),
        "FAILS: client 192.168.1.7 is not in edge/db's allow list (allow 10.0.0.0/8; deny 10.9.0.0/16): the connection is closed"
    );
    let allowed = trace(&yaml, &["tcp://127.0.0.1:15432", "--from", "10.1.2.3"]);
    assert_eq!(allowed.code, 0, "{}", allowed.stdout);
    allowed.shows(&["client 10.1.2.3 allowed"]);
}

#[test]
fn a_consistent_hash_pick_is_stable_for_a_client() {
    // Documentation addresses: trace must not connect to them (not loopback, no --probe).
    let yaml = "gateways:
  - name: t
    addresses: [127.0.0.1]
    listeners:
      - { name: in, port: 15432, backend: db }
backends:
  - name: db
    balance: ConsistentHash
    endpoints: [192.0.2.1:5432, 192.0.2.2:5432, 192.0.2.3:5432, 192.0.2.4:5432]
";
    let dir = TempDir::new();
    let pick = |from: &str| {
        let run = trace_in(&dir, yaml, &["tcp://127.0.0.1:15432", "--from", from]);
        assert_eq!(run.code, 0, "{}", run.stdout);
        run.shows(&["unknown (offline: not a loopback address, not probed"]);
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains("pick: "))
            .unwrap()
            .to_owned();
        assert!(
            line.contains(&format!("for client {from} (consistent hash")),
            "{line}"
        );
        let endpoint = line.split_whitespace().nth(1).unwrap().to_owned();
        assert!(
            run.verdict().starts_with(&format!(
                "OK: tcp://127.0.0.1:15432 would reach {endpoint} through listener t/in"
            )),
            "{}",
            run.stdout
        );
        endpoint
    };
    let clients = [
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6",
    ];
    let first: Vec<String> = clients.iter().map(|c| pick(c)).collect();
    let again: Vec<String> = clients.iter().map(|c| pick(c)).collect();
    assert_eq!(first, again, "the same client, the same endpoint");
    let distinct: std::collections::BTreeSet<&String> = first.iter().collect();
    assert!(
        distinct.len() > 1,
        "every client on one endpoint: {first:?}"
    );
    // Without --from the trace says it depends on the client.
    let run = trace_in(&dir, yaml, &["tcp://127.0.0.1:15432"]);
    run.shows(&["by a consistent hash of the client address (pass --from to compute it)"]);
}

#[test]
fn bad_configs_and_targets_exit_2() {
    let run = trace(
        "backends:\n  - { name: app, endpoints: [127.0.0.1] }\n",
        &["tcp://127.0.0.1:1"],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("has no port"), "{}", run.stderr);
    let run = trace("{}\n", &["ftp://x"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("unknown scheme"), "{}", run.stderr);
}

#[test]
fn without_a_file_it_asks_the_running_instance_for_its_config_and_live_health() {
    let up = Backend::start("up");
    let down = Backend::start("down");
    let g = gatehouse_testkit::Gatehouse::start(
        BIN,
        &format!(
            "admin: {{listen: 127.0.0.1:0}}
gateways:
  - name: web
    addresses: [127.0.0.1]
    listeners:
      - {{name: http, port: 0, protocol: HTTP, backend: app}}
backends:
  - name: app
    endpoints: [{}, {}]
    healthCheck: {{interval: 100ms, fall: 1}}
",
            up.addr(),
            down.addr()
        ),
    );
    let admin = format!("http://{}", g.addr("admin"));
    let http = g.addr("web/http");
    down.stop();
    g.wait_for("endpoint down", 0, crate::WAIT).unwrap();
    let out = Command::new(BIN)
        .args(["trace", &format!("http://{http}/x"), "--admin", &admin])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The endpoint the running instance took down is down here too, said by whom.
    assert!(
        stdout.contains(&format!("{}", down.addr()))
            && stdout.contains("the running instance's health checks say down"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or("")
            .contains(&format!("would reach {}", up.addr())),
        "{stdout}"
    );
}
