//! The admin endpoint of a running instance (`admin: {listen: 127.0.0.1:0}`): health and
//! readiness, metrics that move with traffic, `gatehouse status` and `gatehouse observe`
//! against it, the bearer token, reloads that start, keep and stop it, and the status page as
//! headless Chromium renders it.
//!
//! The Chromium test needs root (network namespaces: two gateways with VRRP on a LAN of
//! their own) and Debian's `chromium`; `.ci/run` installs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gatehouse_testkit::{Backend, Gatehouse, Lan, Netns, TempDir, connect_from};

use crate::{BIN, WAIT, sleep};

/// A token long enough not to draw the "short enough to guess" warning.
const TOKEN: &str = "e2e-admin-token-0123456789abcdef";

/// HTTP listener `web/http` on 127.0.0.1:0 in front of backend `pool` (TCP health checks
/// every 100 ms, down after 2 failures), and the admin endpoint on 127.0.0.1:0 with
/// `admin_extra` (`, token: ...`) in its flow mapping.
fn config(endpoints: &[SocketAddr], admin_extra: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    format!(
        "gateways:
  - name: web
    addresses: [127.0.0.1]
    listeners:
      - {{name: http, port: 0, protocol: HTTP, backend: pool}}
backends:
  - name: pool
    endpoints: [{}]
    healthCheck: {{interval: 100ms, timeout: 80ms, fall: 2, rise: 2}}
admin: {{listen: \"127.0.0.1:0\"{admin_extra}}}
",
        list.join(", ")
    )
}

/// `GET path` over a fresh connection (optionally from `from`), with `Authorization:
/// auth` when given; the status and the body.
fn get_from(
    from: Option<IpAddr>,
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> (u16, String) {
    let mut s = match from {
        Some(ip) => connect_from(ip, addr).unwrap(),
        None => TcpStream::connect_timeout(&addr, WAIT).unwrap(),
    };
    s.set_read_timeout(Some(WAIT)).unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

pub(crate) fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    get_from(None, addr, path, auth)
}

/// The value of the sample `series` (`name{labels}`, exactly as exposed), 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

pub(crate) fn scrape(admin: SocketAddr) -> String {
    let (status, body) = get(admin, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    body
}

/// Runs `gatehouse ARGS`; exit code, stdout, stderr.
fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("GATEHOUSE_ADMIN_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn health_readiness_and_metrics_that_move_with_traffic() {
    let a = Backend::start("a");
    let g = Gatehouse::start(BIN, &config(&[a.addr()], ""));
    let admin = g.addr("admin");
    let gw = g.addr("web/http");
    assert_eq!(get(admin, "/healthz", None), (200, "ok\n".to_owned()));
    assert_eq!(get(admin, "/readyz", None), (200, "ready\n".to_owned()));
    assert_eq!(get(admin, "/nope", None).0, 404);

    let requests = "gatehouse_requests_total{listener=\"web/http\",route=\"default\",backend=\"pool\",code=\"200\"}";
    let histogram_count =
        "gatehouse_request_duration_seconds_count{listener=\"web/http\",route=\"default\"}";
    let bytes_down = "gatehouse_bytes_total{listener=\"web/http\",direction=\"down\"}";
    let before = scrape(admin);
    assert_eq!(metric(&before, requests), 0.0, "{before}");
    assert_eq!(
        metric(
            &before,
            &format!(
                "gatehouse_endpoint_up{{backend=\"pool\",endpoint=\"{}\"}}",
                a.addr()
            )
        ),
        1.0,
        "{before}"
    );
    assert!(before.contains("# TYPE gatehouse_request_duration_seconds histogram"));
    assert_eq!(metric(&before, "gatehouse_ready"), 1.0);

    for _ in 0..3 {
        let (status, body) = get(gw, "/counted", None);
        assert_eq!((status, body.as_str()), (200, "a\n"));
    }
    // A request's line (and its counters) comes when its response body ends, just after the
    // client has it.
    let deadline = Instant::now() + WAIT;
    let after = loop {
        let now = scrape(admin);
        if metric(&now, requests) >= 3.0 || Instant::now() > deadline {
            break now;
        }
        sleep(Duration::from_millis(20));
    };
    assert_eq!(metric(&after, requests), 3.0, "{after}");
    assert_eq!(metric(&after, histogram_count), 3.0, "{after}");
    assert_eq!(
        metric(&after, bytes_down),
        6.0,
        "three bodies of `a\\n`: {after}"
    );
    sleep(Duration::from_millis(200));
    assert_eq!(
        metric(&scrape(admin), requests),
        3.0,
        "no more than the 3 requests"
    );
}

#[test]
fn status_shows_a_killed_backend_as_down() {
    let alive = Backend::start("alive");
    let doomed = Backend::start("doomed");
    let g = Gatehouse::start(BIN, &config(&[alive.addr(), doomed.addr()], ""));
    let url = format!("http://{}", g.addr("admin"));
    let gw = g.addr("web/http").to_string();

    let mark = g.mark();
    doomed.stop();
    assert!(
        g.wait_for_all(&["endpoint down", &doomed.addr().to_string()], mark, WAIT)
            .is_some(),
        "log:\n{}",
        g.logs()
    );
    let (code, out, err) = cli(&["status", "--admin", &url], &[]);
    assert_eq!(code, 0, "{err}");
    let row = |endpoint: SocketAddr| {
        out.lines()
            .find(|l| l.contains(&endpoint.to_string()))
            .unwrap_or_else(|| panic!("no row for {endpoint}:\n{out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<String>>()
    };
    // BACKEND  ENDPOINT  HEALTH  CONNS  LAST CHANGE (date time (N ago))
    let down = row(doomed.addr());
    assert_eq!(
        down[..4],
        ["pool", &doomed.addr().to_string(), "down", "0"],
        "{out}"
    );
    assert!(down[6].starts_with('(') && out.contains("ago)"), "{out}");
    let up = row(alive.addr());
    assert_eq!(up[..3], ["pool", &alive.addr().to_string(), "up"], "{out}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["web/http", "HTTP", gw.as_str(), "0", "pool"]),
        "the listener row, with its real port:\n{out}"
    );
    assert!(out.contains(": ready,"), "{out}");
    assert!(
        out.contains("endpoint down"),
        "recent problems are listed:\n{out}"
    );

    // Nothing listening there: a clear error, exit 1.
    let closed = gatehouse_testkit::free_port();
    let (code, out, err) = cli(
        &["status", "--admin", &format!("http://127.0.0.1:{closed}")],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(&format!(
            "no Gatehouse admin endpoint at http://127.0.0.1:{closed}: connection refused; is `admin:` set in the config?"
        )),
        "{err}"
    );
}

#[test]
fn observe_streams_the_records_that_pass_its_filters() {
    let a = Backend::start("a");
    let g = Gatehouse::start(BIN, &config(&[a.addr()], ""));
    let gw = g.addr("web/http");
    let mut child = Command::new(BIN)
        .args(["observe", "--admin", &format!("http://{}", g.addr("admin"))])
        .args(["--listener", "web/http", "--client", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let banner = lines.recv_timeout(WAIT).expect("observe printed nothing");
    assert!(
        banner.starts_with("observing access records at http://")
            && banner.contains("(listener=web/http, client=127.0.0.1)"),
        "{banner}"
    );
    // Subscribed (the banner comes after): one request from another client address (filtered
    // out), then one from 127.0.0.1.
    assert_eq!(
        get_from(
            Some("127.0.0.2".parse().unwrap()),
            gw,
            "/other-client",
            None
        )
        .0,
        200
    );
    assert_eq!(get(gw, "/observed?x=1", None).0, 200);
    let line = lines.recv_timeout(WAIT).expect("no record streamed");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains(" web/http 127.0.0.1:")
            && line.contains(&format!(
                "GET 127.0.0.1/observed?x=1 -> route default, backend pool ({}): 200 2B",
                a.addr()
            )),
        "{line}"
    );
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        !rest
            .iter()
            .chain([&line])
            .any(|l| l.contains("/other-client")),
        "the other client was filtered out: {rest:?}"
    );
}

#[test]
fn the_token_is_enforced_everywhere_but_healthz() {
    let a = Backend::start("a");
    let g = Gatehouse::start(BIN, &config(&[a.addr()], &format!(", token: {TOKEN}")));
    let admin = g.addr("admin");
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(get(admin, "/healthz", None).0, 200, "health needs no token");
    for path in ["/readyz", "/status", "/metrics", "/", "/observe"] {
        assert_eq!(get(admin, path, None).0, 401, "{path} without a token");
        assert_eq!(
            get(admin, path, Some("Bearer wrong-token")).0,
            401,
            "{path} with a wrong token"
        );
    }
    assert_eq!(get(admin, "/status", Some(&bearer)).0, 200);
    assert_eq!(
        get(admin, "/readyz", Some(&bearer)),
        (200, "ready\n".into())
    );
    // What a browser sends after asking (Basic, the token as the password): `curl -u x:TOKEN`.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
        .arg(format!("anyone:{TOKEN}"))
        .arg(format!("http://{admin}/metrics"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");

    let url = format!("http://{admin}");
    let (code, _, err) = cli(&["status", "--admin", &url], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("needs its token: pass --token TOKEN"), "{err}");
    let (code, _, err) = cli(&["status", "--admin", &url, "--token", "wrong"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("refused the token"), "{err}");
    let (code, out, err) = cli(&["status", "--admin", &url, "--token", TOKEN], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&a.addr().to_string()), "{out}");
    let (code, _, err) = cli(
        &["status", "--admin", &url],
        &[("GATEHOUSE_ADMIN_TOKEN", TOKEN)],
    );
    assert_eq!(code, 0, "the token from the environment: {err}");
}

#[test]
fn a_reload_starts_keeps_and_stops_the_admin_endpoint() {
    let a = Backend::start("a");
    let without = config(&[a.addr()], "");
    let without = without
        .lines()
        .filter(|l| !l.starts_with("admin:"))
        .collect::<Vec<_>>()
        .join("\n");
    let g = Gatehouse::start(BIN, &without);
    assert!(g.lines_with("listener=admin", 0).is_empty());

    let mark = g.mark();
    g.write_config(&config(&[a.addr()], ""));
    let admin = g.addr_after("admin", mark);
    assert_eq!(get(admin, "/status", None).0, 200);

    // Same address, a token now: the endpoint stays where it is and asks for it.
    let mark = g.mark();
    g.write_config(&config(&[a.addr()], &format!(", token: {TOKEN}")));
    assert!(
        g.wait_for("config reloaded", mark, WAIT).is_some(),
        "{}",
        g.logs()
    );
    assert_eq!(get(admin, "/status", None).0, 401);
    assert_eq!(
        get(admin, "/status", Some(&format!("Bearer {TOKEN}"))).0,
        200
    );
    assert!(
        g.lines_with("listener=admin", mark).is_empty(),
        "not rebound"
    );

    let mark = g.mark();
    g.write_config(&without);
    assert!(
        g.wait_for("admin endpoint stopped", mark, WAIT).is_some(),
        "{}",
        g.logs()
    );
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(admin).is_ok() && Instant::now() < deadline {
        sleep(Duration::from_millis(20));
    }
    assert!(TcpStream::connect(admin).is_err(), "{admin} still answers");
}

/// Runs `chromium ARGS URL` in `ns` (stdout to `stdout`), killed after 30 s.
fn chromium(ns: &Netns, profile: &TempDir, args: &[String], url: &str, stdout: &std::path::Path) {
    let mut child = ns
        .command("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .arg(url)
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} {url}: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium {args:?} {url} did not finish within 30 s");
        }
        sleep(Duration::from_millis(50));
    }
}

/// The text a person reads in each table row of `html`: cells separated by ` | `.
fn visible_rows(html: &str) -> Vec<String> {
    html.split("<tr>")
        .skip(1)
        .map(|row| {
            let row = row.split("</tr>").next().unwrap_or("");
            let mut cells = Vec::new();
            for cell in row.split("<td").skip(1) {
                let mut text = String::new();
                let mut in_tag = true;
                for c in cell.chars() {
                    match c {
                        '<' => in_tag = true,
                        '>' => in_tag = false,
                        c if !in_tag => text.push(c),
                        _ => {}
                    }
                }
                cells.push(
                    text.replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&amp;", "&"),
                );
            }
            cells.join(" | ")
        })
        .collect()
}

#[test]
fn the_status_page_in_headless_chromium_shows_the_vip_holder_and_a_down_backend() {
    let _serial = crate::netns_serial();
    assert!(
        Command::new("chromium")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "this test needs Debian's `chromium` (apt-get install chromium; .ci/run installs it)"
    );
    // Two gateways on a LAN of their own: gw1 (priority 150) holds the VIP, gw2 backs it
    // up. Each has a backend with nothing behind it, so it shows as down.
    let lan = Lan::new(&["gw1", "gw2"]);
    let yaml = |priority: u8| {
        format!(
            "gateways:
  - name: web
    addresses: [\"192.0.2.100\"]
    listeners:
      - {{name: http, port: 80, protocol: HTTP, backend: app}}
backends:
  - name: app
    endpoints: [127.0.0.1:1]
    healthCheck: {{interval: 100ms, timeout: 80ms, fall: 1, rise: 1}}
vrrp:
  - {{name: lan, interface: eth0, vrid: 51, priority: {priority}, addresses: [\"192.0.2.100/24\"]}}
admin: {{listen: \"127.0.0.1:0\"}}
"
        )
    };
    let gw1 = Gatehouse::start_in(lan.host("gw1").ns.name(), BIN, &yaml(150));
    assert!(
        gw1.wait_for("-> master", 0, WAIT).is_some(),
        "gw1 never became master:\n{}",
        gw1.logs()
    );
    let gw2 = Gatehouse::start_in(lan.host("gw2").ns.name(), BIN, &yaml(100));
    assert!(
        gw2.wait_for("-> backup", 0, WAIT).is_some(),
        "gw2:\n{}",
        gw2.logs()
    );
    assert!(gw2.wait_for("endpoint down", 0, WAIT).is_some());
    // The backup has heard the master's adverts (it knows its address) once it is in Backup
    // with a master: wait for the page to say so, as the refresh would.
    let url = format!("http://{}/", gw2.addr("admin"));
    let ns = &lan.host("gw2").ns;
    let dir = TempDir::new();
    let gw1_addr = lan.host("gw1").v4.to_string();
    let dom = dir.path().join("dom.html");
    let deadline = Instant::now() + WAIT;
    let rows = loop {
        chromium(ns, &TempDir::new(), &["--dump-dom".into()], &url, &dom);
        let rows = visible_rows(&std::fs::read_to_string(&dom).unwrap());
        if rows.iter().any(|r| r.contains(&gw1_addr)) || Instant::now() > deadline {
            break rows;
        }
        sleep(Duration::from_millis(200));
    };
    let vip = rows
        .iter()
        .find(|r| r.starts_with("lan | "))
        .unwrap_or_else(|| panic!("no row for the VRRP instance: {rows:#?}"));
    let cells: Vec<&str> = vip.split(" | ").collect();
    assert_eq!(
        cells[..4],
        ["lan", "192.0.2.100/24", gw1_addr.as_str(), "backup"],
        "Instance | Addresses | Held by | State: {rows:#?}"
    );
    let backend = rows
        .iter()
        .find(|r| r.starts_with("app | 127.0.0.1:1 | "))
        .unwrap_or_else(|| panic!("no row for the dead endpoint: {rows:#?}"));
    assert!(
        backend.starts_with("app | 127.0.0.1:1 | down | 0 | "),
        "{backend}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("web/http | HTTP | 192.0.2.100:80 | ")),
        "{rows:#?}"
    );

    let png = dir.path().join("status.png");
    chromium(
        ns,
        &TempDir::new(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,900".into(),
        ],
        &url,
        &dir.path().join("screenshot.out"),
    );
    let image = std::fs::read(&png).unwrap();
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        image.len() > 20_000,
        "a 1200x900 page with tables is more than a blank image: {} bytes",
        image.len()
    );
    if let Ok(keep) = std::env::var("GATEHOUSE_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
    // The master's own page says it holds the address.
    let master_dom = dir.path().join("master.html");
    chromium(
        &lan.host("gw1").ns,
        &TempDir::new(),
        &["--dump-dom".into()],
        &format!("http://{}/", gw1.addr("admin")),
        &master_dom,
    );
    let rows = visible_rows(&std::fs::read_to_string(&master_dom).unwrap());
    assert!(
        rows.iter()
            .any(|r| r.starts_with("lan | 192.0.2.100/24 | this node | master | ")),
        "{rows:#?}"
    );
    drop(gw2);
    drop(gw1);
}
