//! `gatehouse status` and `gatehouse observe`: clients of a running instance's admin
//! endpoint (plain HTTP/1.1 over TCP, with the bearer token when given). What they print is
//! made by pure functions ([`render_status`], [`observe_line`]) over what the endpoint sends.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::StatusDoc;
use crate::telemetry::{ObserveFilter, parse_rfc3339};

/// The default admin address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9100";
/// Connecting, and each answer, may take this long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `/status` document read.
const MAX_STATUS: usize = 16 * 1024 * 1024;

/// Where the admin endpoint is: `http://HOST:PORT` (or just `HOST:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUrl {
    host: String,
    port: u16,
}

impl std::fmt::Display for AdminUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for AdminUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<AdminUrl, String> {
        let t = text.trim();
        if t.starts_with("https://") {
            return Err(format!(
                "`{t}`: the admin endpoint speaks plain HTTP (keep it on loopback, or put a TLS listener in front)"
            ));
        }
        let rest = t.strip_prefix("http://").unwrap_or(t);
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{t}`: a `]` is missing"))?;
            let port = after.strip_prefix(':').unwrap_or("");
            (host, port)
        } else {
            authority.rsplit_once(':').unwrap_or((authority, ""))
        };
        if host.is_empty() {
            return Err(format!(
                "`{t}` is not an admin address such as `http://127.0.0.1:9100`"
            ));
        }
        let port = if port.is_empty() {
            80
        } else {
            port.parse()
                .map_err(|_| format!("`{port}` in `{t}` is not a port"))?
        };
        Ok(AdminUrl {
            host: host.to_owned(),
            port,
        })
    }
}

/// GETs `path` (with its query); anything but 200 is an error in the user's words.
async fn get(
    url: &AdminUrl,
    path: &str,
    token: Option<&str>,
) -> Result<hyper::Response<Incoming>, String> {
    let connect = TcpStream::connect((url.host.as_str(), url.port));
    let stream = match tokio::time::timeout(TIMEOUT, connect).await {
        Err(_) => {
            return Err(format!(
                "no Gatehouse admin endpoint at {url}: no answer within {}s",
                TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(format!(
                "no Gatehouse admin endpoint at {url}: connection refused; is `admin:` set in the config?"
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot reach the admin endpoint at {url}: {e}")),
        Ok(Ok(s)) => s,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("the admin endpoint at {url}: {e}"))?;
    tokio::spawn(conn);
    let mut request = Request::get(path)
        .header(header::HOST, url.to_string().trim_start_matches("http://"))
        .header(
            header::USER_AGENT,
            concat!("gatehouse/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot make the request: {e}"))?;
    let response = tokio::time::timeout(TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| {
            format!(
                "the admin endpoint at {url} did not answer within {}s",
                TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("the admin endpoint at {url}: {e}"))?;
    match response.status() {
        StatusCode::OK => Ok(response),
        StatusCode::UNAUTHORIZED if token.is_some() => {
            Err(format!("the admin endpoint at {url} refused the token"))
        }
        StatusCode::UNAUTHORIZED => Err(format!(
            "the admin endpoint at {url} needs its token: pass --token TOKEN (or set GATEHOUSE_ADMIN_TOKEN)"
        )),
        status => {
            let body = tokio::time::timeout(TIMEOUT, response.into_body().collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
                .unwrap_or_default();
            Err(format!("{url}{path} answered {status}: {body}"))
        }
    }
}

/// Fetches `/status`.
pub async fn fetch_status(url: &AdminUrl, token: Option<&str>) -> Result<StatusDoc, String> {
    let response = get(url, "/status", token).await?;
    let body = tokio::time::timeout(
        TIMEOUT,
        http_body_util::Limited::new(response.into_body(), MAX_STATUS).collect(),
    )
    .await
    .map_err(|_| {
        format!(
            "{url}/status: the document did not arrive within {}s",
            TIMEOUT.as_secs()
        )
    })?
    .map_err(|e| format!("{url}/status: {e}"))?
    .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| format!("{url}/status is not a Gatehouse status document: {e}"))
}

/// Streams `/observe` with `filter`, calling `line` with one readable line per record (and
/// once with the banner), until the endpoint closes the stream.
pub async fn observe(
    url: &AdminUrl,
    token: Option<&str>,
    filter: &ObserveFilter,
    mut line: impl FnMut(&str),
) -> Result<(), String> {
    let mut query = Vec::new();
    for (k, v) in [
        ("listener", filter.listener.clone()),
        ("route", filter.route.clone()),
        ("client", filter.client.map(|c| c.to_string())),
        ("backend", filter.backend.clone()),
    ] {
        if let Some(v) = v {
            query.push(format!("{k}={}", percent_encode(&v)));
        }
    }
    let path = if query.is_empty() {
        "/observe".to_owned()
    } else {
        format!("/observe?{}", query.join("&"))
    };
    let mut body = get(url, &path, token).await?.into_body();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the stream from {url} broke: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw);
            if let Some(readable) = observe_line(text.trim(), url) {
                line(&readable);
            }
        }
    }
    Err(format!(
        "{url} closed the stream (the process stopped, or its admin endpoint moved)"
    ))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One line of `/observe` as a person reads it (`None` for what is not a record).
pub fn observe_line(json: &str, url: &AdminUrl) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    if let Some(o) = v.get("observing") {
        let filters: Vec<String> = ["listener", "route", "client", "backend"]
            .iter()
            .filter_map(|k| {
                o.get(*k)
                    .and_then(Value::as_str)
                    .map(|v| format!("{k}={v}"))
            })
            .collect();
        return Some(format!(
            "observing access records at {url}{}; Ctrl-C to stop",
            if filters.is_empty() {
                String::new()
            } else {
                format!(" ({})", filters.join(", "))
            }
        ));
    }
    if let Some(n) = v.get("dropped").and_then(Value::as_u64) {
        return Some(format!("... {n} records dropped: this reader fell behind"));
    }
    let obj = v.as_object()?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let n = |k: &str| obj.get(k).and_then(Value::as_u64);
    let time = s("time");
    let time = time.get(11..23).unwrap_or(time);
    let mut out = format!("{time} {:<5} {} {}", s("level"), s("listener"), s("client"));
    match s("event") {
        "request" => {
            let _ = write!(out, " {} {}{}", s("method"), s("host"), s("path"));
            let _ = write!(
                out,
                " -> {}",
                match (s("route"), s("backend")) {
                    ("", "") => "-".to_owned(),
                    (r, "") => format!("route {r}"),
                    ("", b) => format!("backend {b}"),
                    (r, b) => format!("route {r}, backend {b}"),
                }
            );
            if !s("endpoint").is_empty() {
                let _ = write!(out, " ({})", s("endpoint"));
            }
            let _ = write!(
                out,
                ": {} {}B {}ms",
                n("status").unwrap_or(0),
                n("bytes").unwrap_or(0),
                n("duration_ms").unwrap_or(0)
            );
            if !s("reason").is_empty() {
                let _ = write!(out, " ({})", s("reason"));
            }
        }
        "connection refused" => {
            let _ = write!(out, " {}", s("outcome"));
        }
        event => {
            let kind = if event == "flow closed" {
                "udp flow"
            } else {
                "connection"
            };
            if !s("sni").is_empty() {
                let _ = write!(out, " sni {}", s("sni"));
            }
            if !s("route").is_empty() {
                let _ = write!(out, " route {}", s("route"));
            }
            let _ = write!(
                out,
                " -> {}",
                if s("backend").is_empty() {
                    "-"
                } else {
                    s("backend")
                }
            );
            if !s("endpoint").is_empty() {
                let _ = write!(out, " ({})", s("endpoint"));
            }
            let _ = write!(
                out,
                ": {kind} {}, up {}B down {}B {}ms",
                s("outcome"),
                n("bytes_up").unwrap_or(0),
                n("bytes_down").unwrap_or(0),
                n("duration_ms").unwrap_or(0)
            );
        }
    }
    Some(out)
}

/// `2024-05-01 12:03:04Z` from an RFC 3339 time.
pub fn short_time(t: &str) -> String {
    match (t.get(..10), t.get(11..19)) {
        (Some(date), Some(time)) => format!("{date} {time}Z"),
        _ => t.to_owned(),
    }
}

/// How long before `now` the time `t` was: `3s ago`, `5m 2s ago`, `2h 3m ago`, `4d 1h ago`.
pub fn ago(t: &str, now: &str) -> String {
    let (Some(t), Some(now)) = (parse_rfc3339(t), parse_rfc3339(now)) else {
        return "?".to_owned();
    };
    let s = now.duration_since(t).unwrap_or_default().as_secs();
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m {}s ago", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m ago", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h ago", s / 86_400, s % 86_400 / 3600),
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn table(out: &mut String, title: &str, head: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "\n{title}");
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::from(" ");
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(l, " {cell:<w$} ");
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&mut head.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// `gatehouse status`: the document as tables.
pub fn render_status(doc: &StatusDoc, url: &AdminUrl) -> String {
    let now = &doc.now;
    let when = |t: &str| {
        if t.is_empty() {
            "-".to_owned()
        } else {
            format!("{} ({})", short_time(t), ago(t, now))
        }
    };
    let mut out = format!(
        "Gatehouse {} at {url}: {}, running since {}\n",
        doc.version,
        if doc.ready { "ready" } else { "NOT READY" },
        when(&doc.started)
    );
    if let Some(file) = &doc.config.file {
        let _ = write!(out, "config {file}");
        if let Some(loaded) = &doc.config.loaded {
            let _ = write!(out, ", loaded {}", when(loaded));
        }
        out.push('\n');
    }
    if let Some(r) = &doc.config.last_reload {
        let _ = write!(
            out,
            "last reload: {} ({}, {})",
            r.outcome,
            r.trigger,
            when(&r.time)
        );
        if let Some(e) = &r.error {
            let _ = write!(out, ": {e}");
        }
        out.push('\n');
    }
    let rows: Vec<Vec<String>> = doc
        .vips
        .iter()
        .map(|v| {
            vec![
                v.instance.clone(),
                v.addresses.join(", "),
                v.holder.clone(),
                v.state.clone(),
                format!("{}/{}", v.priority, v.configured_priority),
                when(&v.since),
                v.reason.clone(),
            ]
        })
        .collect();
    table(
        &mut out,
        "VIPs",
        &[
            "INSTANCE",
            "ADDRESSES",
            "HELD BY",
            "STATE",
            "PRIORITY",
            "SINCE",
            "WHY",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = doc
        .listeners
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.protocol.clone(),
                l.address.clone(),
                l.open_connections.to_string(),
                l.backends.join(", "),
            ]
        })
        .collect();
    table(
        &mut out,
        "LISTENERS",
        &["LISTENER", "PROTOCOL", "ADDRESS", "OPEN", "BACKENDS"],
        &rows,
    );
    let rows: Vec<Vec<String>> = doc
        .routes
        .iter()
        .map(|r| {
            vec![
                r.listener.clone(),
                r.route.clone(),
                r.hosts.join(", "),
                r.rule.clone(),
            ]
        })
        .collect();
    table(
        &mut out,
        "ROUTES",
        &["LISTENER", "ROUTE", "HOSTS", "RULE"],
        &rows,
    );
    let mut rows = Vec::new();
    for b in &doc.backends {
        if b.endpoints.is_empty() {
            rows.push(vec![
                b.name.clone(),
                "(no endpoint resolved)".to_owned(),
                "down".to_owned(),
                String::new(),
                String::new(),
            ]);
        }
        for e in &b.endpoints {
            let endpoint = if e.target == e.address {
                e.address.clone()
            } else {
                format!("{} ({})", e.address, e.target)
            };
            rows.push(vec![
                b.name.clone(),
                endpoint,
                e.health.clone(),
                e.active_connections.to_string(),
                when(&e.last_change),
            ]);
        }
    }
    table(
        &mut out,
        "BACKENDS",
        &["BACKEND", "ENDPOINT", "HEALTH", "CONNS", "LAST CHANGE"],
        &rows,
    );
    if let Some(dns) = &doc.dns {
        let answered: u64 = dns.answers.iter().map(|a| a.count).sum();
        let zones: Vec<String> = dns
            .zones
            .iter()
            .map(|z| format!("{} ({} records)", z.name, z.records))
            .collect();
        let _ = writeln!(
            out,
            "\nDNS on {}: zones {}; {answered} queries answered, {} dropped",
            dns.listen.join(", "),
            if zones.is_empty() {
                "none".to_owned()
            } else {
                zones.join(", ")
            },
            dns.dropped
        );
    }
    if let Some(k) = &doc.kubernetes {
        let state = match (k.connected, k.synced) {
            (true, true) => "API server reachable",
            (true, false) => "API server reachable, still listing",
            (false, true) => "API SERVER UNREACHABLE: serving the last known state",
            (false, false) => "API SERVER UNREACHABLE: nothing listed yet",
        };
        let _ = writeln!(
            out,
            "\nKUBERNETES: {state}{}; {}; this node {} status",
            k.since
                .as_deref()
                .map(|s| format!(" (since {})", when(s)))
                .unwrap_or_default(),
            k.objects_summary(),
            k.writes(),
        );
        if let Some(t) = &k.from_cache {
            let _ = writeln!(
                out,
                "  serving the objects of the cache file (read {}) until the API server is listed",
                when(t)
            );
        }
        if let Some(e) = &k.last_error {
            let _ = writeln!(out, "  last error: {e}");
        }
        let rows: Vec<Vec<String>> = k
            .services
            .iter()
            .map(|(name, ips)| vec![name.clone(), ips.join(", ")])
            .chain(k.rejected.iter().map(|r| {
                vec![
                    r.object.clone(),
                    format!("LEFT OUT: {}", r.errors.join("; ")),
                ]
            }))
            .collect();
        if !rows.is_empty() {
            table(
                &mut out,
                "KUBERNETES OBJECTS",
                &["OBJECT", "ADDRESSES / WHY"],
                &rows,
            );
        }
    }
    if !doc.recent.is_empty() {
        let rows: Vec<Vec<String>> = doc
            .recent
            .iter()
            .rev()
            .take(10)
            .map(|r| {
                vec![
                    when(&r.time),
                    r.level.clone(),
                    r.message.clone(),
                    r.fields.clone(),
                ]
            })
            .collect();
        table(
            &mut out,
            "RECENT WARNINGS AND ERRORS (newest first)",
            &["WHEN", "LEVEL", "WHAT", "DETAILS"],
            &rows,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::admin::{BackendDoc, EndpointDoc};

    #[test]
    fn admin_urls() {
        let url: AdminUrl = "http://127.0.0.1:9100".parse().unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:9100");
        let url: AdminUrl = "[::1]:9200/".parse().unwrap();
        assert_eq!(url.to_string(), "http://[::1]:9200");
        assert!("https://x:1".parse::<AdminUrl>().is_err());
        assert!("http://:9".parse::<AdminUrl>().is_err());
        assert!("http://a:b".parse::<AdminUrl>().is_err());
    }

    #[test]
    fn ago_reads_like_a_person_would_say_it() {
        let now = "2024-05-01T12:00:00.000Z";
        assert_eq!(ago("2024-05-01T11:59:57.000Z", now), "3s ago");
        assert_eq!(ago("2024-05-01T11:54:58.000Z", now), "5m 2s ago");
        assert_eq!(ago("2024-04-27T11:00:00.000Z", now), "4d 1h ago");
        assert_eq!(ago("later", now), "?");
    }

    #[test]
    fn records_become_one_readable_line() {
        let url: AdminUrl = DEFAULT_URL.parse().unwrap();
        let request = r#"{"time":"2024-05-01T12:00:00.123Z","event":"request","level":"INFO","listener":"web/http","client":"127.0.0.1:5000","method":"GET","host":"a.test","path":"/x","route":"app","backend":"pool","endpoint":"127.0.0.1:9001","status":200,"bytes":12,"duration_ms":3}"#;
        assert_eq!(
            observe_line(request, &url).unwrap(),
            "12:00:00.123 INFO  web/http 127.0.0.1:5000 GET a.test/x -> route app, backend pool (127.0.0.1:9001): 200 12B 3ms"
        );
        let closed = r#"{"time":"2024-05-01T12:00:00.123Z","event":"connection closed","level":"WARN","listener":"t/in","client":"127.0.0.1:5000","backend":"pool","outcome":"no healthy endpoint","bytes_up":0,"bytes_down":0,"duration_ms":1}"#;
        assert_eq!(
            observe_line(closed, &url).unwrap(),
            "12:00:00.123 WARN  t/in 127.0.0.1:5000 -> pool: connection no healthy endpoint, up 0B down 0B 1ms"
        );
        assert_eq!(
            observe_line(r#"{"observing":{"listener":"t/in"}}"#, &url).unwrap(),
            "observing access records at http://127.0.0.1:9100 (listener=t/in); Ctrl-C to stop"
        );
        assert!(observe_line("not json", &url).is_none());
    }

    #[test]
    fn status_tables_show_each_endpoint_with_its_health() {
        let doc = StatusDoc {
            now: "2024-05-01T12:00:10.000Z".into(),
            backends: vec![BackendDoc {
                name: "pool".into(),
                endpoints: vec![
                    EndpointDoc {
                        address: "127.0.0.1:9001".into(),
                        target: "127.0.0.1:9001".into(),
                        health: "up".into(),
                        last_change: "2024-05-01T12:00:00.000Z".into(),
                        ..EndpointDoc::default()
                    },
                    EndpointDoc {
                        address: "127.0.0.1:9002".into(),
                        target: "127.0.0.1:9002".into(),
                        health: "down".into(),
                        last_change: "2024-05-01T12:00:08.000Z".into(),
                        ..EndpointDoc::default()
                    },
                ],
                ..BackendDoc::default()
            }],
            ..StatusDoc::default()
        };
        let out = render_status(&doc, &DEFAULT_URL.parse().unwrap());
        assert!(
            out.lines()
                .any(|l| l
                    == "  pool     127.0.0.1:9002  down    0      2024-05-01 12:00:08Z (2s ago)"),
            "{out}"
        );
        assert!(out.contains("\nVIPs\n  (none)\n"), "{out}");
    }
}
