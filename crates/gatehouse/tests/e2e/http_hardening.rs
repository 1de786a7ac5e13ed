//! Request smuggling and malformed input, sent as raw bytes (HTTP/1.1 over TCP, HTTP/2 as
//! hand-made frames) to the real binary.
//!
//! Behind Gatehouse sits a *recording backend*: a strict HTTP/1.1 reader that frames each
//! request by `Content-Length` or chunked, answers `200 ok`, and records every request it
//! saw and every framing rule a request broke. Gatehouse keeps its upstream connections
//! alive and pooled, so a request smuggled inside another would reach the backend as a
//! request of its own. Each case names its request `/c/<case>`, and every attack carries a
//! recognisable request `GET /smuggled` where a confused parser would find a second request.
//! For every case: the client is refused (400, 404, 431) and nothing reaches the backend, or
//! exactly one well-formed request does, in the normalised form the case states; and
//! `/smuggled` never reaches the backend.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_testkit::{Gatehouse, connect, curl_get};

use crate::{BIN, WAIT};

/// The request an ambiguous message hides where a confused parser would see a second one.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";

// ---------------------------------------------------------------------------------------
// The recording backend
// ---------------------------------------------------------------------------------------

/// The recorder's answer to every request.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// One request as the backend read it.
#[derive(Clone, Debug)]
struct Seen {
    /// Which upstream connection it came on (1, 2, ... in accept order).
    conn: usize,
    line: String,
    /// Names in lower case, values trimmed, in the order received.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// False while (or if, forever) the body is still to come.
    complete: bool,
}

impl Seen {
    fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The header's value; `None` if absent. Panics if it was sent more than once.
    fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} sent {} times: {self:?}", all.len());
        all.first().copied()
    }
}

#[derive(Default)]
struct Record {
    requests: Vec<Seen>,
    /// Framing rules broken (the bytes of the stream no longer make sense after these).
    violations: Vec<String>,
    conns: AtomicUsize,
}

/// A strict HTTP/1.1 server on 127.0.0.1 that records what it reads.
struct Recorder {
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Mutex::new(Record::default()));
        let shared = Arc::clone(&record);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let conn = shared.lock().unwrap().conns.fetch_add(1, SeqCst) + 1;
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    // Held open until the outcome is recorded, so a peer that sees the
                    // connection close can rely on the record.
                    let hold = stream.try_clone();
                    if let Err(why) = serve(stream, conn, &shared) {
                        let mut r = shared.lock().unwrap();
                        r.violations.push(format!("connection {conn}: {why}"));
                    }
                    drop(hold);
                });
            }
        });
        Recorder { addr, record }
    }

    fn requests(&self) -> Vec<Seen> {
        self.record.lock().unwrap().requests.clone()
    }

    /// The requests for `/c/<case>` (query strings aside).
    fn for_case(&self, case: &str) -> Vec<Seen> {
        let path = format!("/c/{case}");
        self.requests()
            .into_iter()
            .filter(|s| s.target().split('?').next() == Some(path.as_str()))
            .collect()
    }

    /// What every test checks at the end: no framing violation, no `/smuggled`, nothing but
    /// the `/c/<case>` requests of `cases`, and each of those complete unless in `may_be_cut`.
    fn assert_clean(&self, cases: &[&str], may_be_cut: &[&str]) {
        let r = self.record.lock().unwrap();
        assert!(
            r.violations.is_empty(),
            "backend saw broken framing: {:#?}",
            r.violations
        );
        for s in &r.requests {
            assert!(
                !s.line.contains("smuggled"),
                "a smuggled request reached the backend: {s:?}"
            );
            let case = s.target().split('?').next().unwrap_or("");
            let case = case.strip_prefix("/c/").unwrap_or(case);
            assert!(
                cases.contains(&case),
                "the backend got a request no case sent: {s:?}"
            );
            assert!(
                s.complete || may_be_cut.contains(&case),
                "backend got an unfinished request: {s:?}"
            );
        }
    }
}

/// Why the reading of a connection stopped.
enum Stop {
    /// The peer closed the connection.
    Eof,
    /// The bytes broke HTTP/1.1 framing.
    Bad(String),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Stop {
        Stop::Bad(format!("read error: {e}"))
    }
}

/// A buffered reader that hands out CRLF lines and exact byte counts.
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    fn more(&mut self) -> Result<(), Stop> {
        let mut chunk = [0u8; 8192];
        match self.s.read(&mut chunk)? {
            0 => Err(Stop::Eof),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// One line, which must end with CRLF (a bare CR or LF is a violation).
    fn line(&mut self) -> Result<String, Stop> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let Some(text) = line.strip_suffix(b"\r\n") else {
                    return Err(Stop::Bad(format!("bare LF in {line:?}")));
                };
                if text.contains(&b'\r') {
                    return Err(Stop::Bad(format!("bare CR in {line:?}")));
                }
                return String::from_utf8(text.to_vec())
                    .map_err(|_| Stop::Bad(format!("not UTF-8: {text:?}")));
            }
            if self.buf.len() > 64 * 1024 {
                return Err(Stop::Bad("line longer than 64 KiB".into()));
            }
            self.more()?;
        }
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, Stop> {
        while self.buf.len() < n {
            self.more()?;
        }
        Ok(self.buf.drain(..n).collect())
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Serves one upstream connection: request after request until the peer closes.
fn serve(s: TcpStream, conn: usize, record: &Mutex<Record>) -> Result<(), String> {
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut out = s.try_clone().map_err(|e| e.to_string())?;
    let mut wire = Wire { s, buf: Vec::new() };
    loop {
        let line = match wire.line() {
            Ok(l) => l,
            Err(Stop::Eof) if wire.buf.is_empty() => return Ok(()),
            Err(Stop::Eof) => return Err("closed in a request line".into()),
            Err(Stop::Bad(why)) => return Err(why),
        };
        let mut head = read_head(&mut wire, line).map_err(|s| match s {
            Stop::Eof => "closed in a request head".to_owned(),
            Stop::Bad(why) => why,
        })?;
        head.conn = conn;
        let index = {
            let mut r = record.lock().unwrap();
            r.requests.push(head.clone());
            r.requests.len() - 1
        };
        let head_request = head.line.starts_with("HEAD ");
        match read_body(&mut wire, &head) {
            Ok(body) => {
                let mut r = record.lock().unwrap();
                r.requests[index].body = body;
                r.requests[index].complete = true;
            }
            // The proxy gave up on the request (its client's body broke): it must not reuse
            // this connection, and the request stays marked unfinished.
            Err(Stop::Eof) => return Ok(()),
            Err(Stop::Bad(why)) => return Err(why),
        }
        let response = if head_request {
            RESPONSE.strip_suffix(b"ok").unwrap_or(RESPONSE)
        } else {
            RESPONSE
        };
        if out.write_all(response).is_err() {
            return Ok(());
        }
    }
}

/// The request line and headers, checked strictly.
fn read_head(wire: &mut Wire, line: String) -> Result<Seen, Stop> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(Stop::Bad(format!("request line {line:?}")));
    };
    if method.is_empty() || !method.chars().all(is_tchar) {
        return Err(Stop::Bad(format!("method in {line:?}")));
    }
    if !target.starts_with('/') || target.chars().any(|c| c.is_ascii_control()) {
        return Err(Stop::Bad(format!("target in {line:?}")));
    }
    if version != "HTTP/1.1" {
        return Err(Stop::Bad(format!("version in {line:?}")));
    }
    let mut headers = Vec::new();
    loop {
        let h = wire.line()?;
        if h.is_empty() {
            break;
        }
        if h.starts_with([' ', '\t']) {
            return Err(Stop::Bad(format!("obs-fold: {h:?}")));
        }
        let Some((name, value)) = h.split_once(':') else {
            return Err(Stop::Bad(format!("header without colon: {h:?}")));
        };
        if name.is_empty() || !name.chars().all(is_tchar) {
            return Err(Stop::Bad(format!("header name {name:?}")));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
            return Err(Stop::Bad(format!("control byte in {h:?}")));
        }
        headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    Ok(Seen {
        conn: 0,
        line,
        headers,
        body: Vec::new(),
        complete: false,
    })
}

/// The body, framed by the one `Content-Length` or `Transfer-Encoding: chunked` (never
/// both, nothing else).
fn read_body(wire: &mut Wire, head: &Seen) -> Result<Vec<u8>, Stop> {
    let te = head.all("transfer-encoding");
    let cl = head.all("content-length");
    match (&te[..], &cl[..]) {
        ([], []) => Ok(Vec::new()),
        ([], [n]) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            let n: usize = n
                .parse()
                .map_err(|_| Stop::Bad(format!("Content-Length {n}")))?;
            wire.bytes(n)
        }
        ([t], []) if t.eq_ignore_ascii_case("chunked") => {
            let mut body = Vec::new();
            loop {
                let size_line = wire.line()?;
                let size = size_line.split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| Stop::Bad(format!("chunk size {size_line:?}")))?;
                if size == 0 {
                    // Trailer fields, then the empty line.
                    while !wire.line()?.is_empty() {}
                    return Ok(body);
                }
                body.extend(wire.bytes(size)?);
                if !wire.line()?.is_empty() {
                    return Err(Stop::Bad("chunk data longer than its size".into()));
                }
            }
        }
        _ => Err(Stop::Bad(format!(
            "framing: transfer-encoding {te:?}, content-length {cl:?} in {:?}",
            head.line
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Gatehouse and the client side
// ---------------------------------------------------------------------------------------

/// Gatehouse with one plain HTTP listener (`gw/web`, small header limits) whose route for
/// `app.test` goes to the recorder; other hosts get 404.
fn setup() -> (Gatehouse, Recorder, SocketAddr) {
    let rec = Recorder::start();
    let yaml = format!(
        "gateways:
  - name: gw
    addresses: [127.0.0.1]
    listeners:
      - name: web
        port: 0
        protocol: HTTP
        http: {{maxHeaderBytes: 8192, maxHeaders: 20}}
routes:
  - {{name: app, kind: HTTPRoute, parentRefs: [gw/web], hostnames: [app.test], backend: rec}}
backends:
  - {{name: rec, endpoints: [{}]}}
",
        rec.addr
    );
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("gw/web");
    (g, rec, gw)
}

/// What a client got back on one connection.
#[derive(Debug)]
struct Reply {
    statuses: Vec<u16>,
    /// The server closed the connection (rather than keeping it open for more).
    closed: bool,
}

/// Sends `raw` on a new connection and reads responses until the server closes or stays
/// quiet for a moment (a keep-alive connection with nothing more to say).
fn exchange(gw: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = connect(gw).unwrap();
    // The server may refuse before reading everything; what it answered is still readable.
    let _ = s.write_all(raw);
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true,
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    Reply {
        statuses: statuses(&got),
        closed,
    }
}

/// The status codes of the HTTP/1.1 responses in `bytes` (bodies framed by Content-Length).
fn statuses(mut bytes: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        out.push(status);
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        bytes = bytes.get(end + 4 + len..).unwrap_or(&[]);
    }
    out
}

/// What a case must come to.
enum Expect {
    /// The client gets this status and nothing reaches the backend.
    Refused(u16),
    /// The client gets 200 and the backend exactly one complete request, with this body and
    /// these headers (`None`: absent). `closes`: the server closes the client connection after
    /// the response (hyper does so after an ambiguous message).
    Forwarded {
        body: &'static str,
        headers: &'static [(&'static str, Option<&'static str>)],
        closes: bool,
    },
    /// The head reached the backend, then the client's body turned out to be broken: the
    /// request never completes there, and the client gets this status or a closed connection.
    Cut(Option<u16>),
}

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    expect: Expect,
}

/// A request for `/c/<name>` with `Host: app.test`, more header lines (each ending CRLF)
/// and a body.
fn request(method: &str, name: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("{method} /c/{name} HTTP/1.1\r\nHost: app.test\r\n{headers}\r\n{body}").into_bytes()
}

fn refused(name: &'static str, raw: Vec<u8>, status: u16) -> Case {
    Case {
        name,
        raw,
        expect: Expect::Refused(status),
    }
}

fn forwarded(
    name: &'static str,
    raw: Vec<u8>,
    body: &'static str,
    headers: &'static [(&'static str, Option<&'static str>)],
) -> Case {
    Case {
        name,
        raw,
        expect: Expect::Forwarded {
            body,
            headers,
            closes: false,
        },
    }
}

/// The framing the backend must see for a chunked request whose body is `body`.
const CHUNKED: &[(&str, Option<&str>)] = &[
    ("transfer-encoding", Some("chunked")),
    ("content-length", None),
];

/// Runs every case at once (each on its own client connection), then checks each against
/// what its client got and what the backend recorded.
fn run(gw: SocketAddr, rec: &Recorder, cases: Vec<Case>) {
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| scope.spawn(|| exchange(gw, &c.raw)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for (case, reply) in cases.iter().zip(&replies) {
        let seen = rec.for_case(case.name);
        if let Err(why) = check(&case.expect, reply, &seen) {
            failures.push(format!(
                "{}: {why}\n    sent {:?}\n    client got {reply:?}\n    backend saw {seen:#?}",
                case.name,
                String::from_utf8_lossy(&case.raw)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    let cut: Vec<&str> = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Cut(_)))
        .map(|c| c.name)
        .collect();
    rec.assert_clean(&names, &cut);
}

fn check(expect: &Expect, reply: &Reply, seen: &[Seen]) -> Result<(), String> {
    match expect {
        Expect::Refused(status) => {
            if reply.statuses != [*status] {
                return Err(format!("expected only a {status}"));
            }
            if !seen.is_empty() {
                return Err("a refused request reached the backend".into());
            }
        }
        Expect::Forwarded {
            body,
            headers,
            closes,
        } => {
            if reply.statuses != [200] {
                return Err("expected exactly one 200".into());
            }
            if *closes && !reply.closed {
                return Err("expected the connection to be closed after the response".into());
            }
            let [one] = seen else {
                return Err(format!("backend got {} requests, not 1", seen.len()));
            };
            if !one.complete || one.body != body.as_bytes() {
                return Err(format!(
                    "backend body {:?}",
                    String::from_utf8_lossy(&one.body)
                ));
            }
            for (name, want) in headers.iter() {
                let all = one.all(name);
                if all.len() > 1 || all.first().copied() != *want {
                    return Err(format!("backend header {name}: {all:?}, expected {want:?}"));
                }
            }
        }
        Expect::Cut(status) => {
            if reply.statuses.contains(&200) {
                return Err("a broken request got 200".into());
            }
            if let Some(status) = status
                && reply.statuses != [*status]
            {
                return Err(format!("expected a {status}"));
            }
            if seen.len() > 1 || seen.iter().any(|s| s.complete) {
                return Err("the backend got a complete request".into());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 cases
// ---------------------------------------------------------------------------------------

/// The harness itself: sent straight to the recorder (no Gatehouse), a pipelined request
/// shows up as a second request, and an ambiguous message as a violation.
#[test]
fn the_recorder_notices_what_a_confused_proxy_would_pass_on() {
    let rec = Recorder::start();
    let mut s = connect(rec.addr).unwrap();
    s.write_all(&request("GET", "first", "", SMUGGLED)).unwrap();
    let mut got = vec![0u8; 2 * RESPONSE.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(statuses(&got), [200, 200]);
    let lines: Vec<String> = rec.requests().into_iter().map(|r| r.line).collect();
    assert_eq!(lines, ["GET /c/first HTTP/1.1", "GET /smuggled HTTP/1.1"]);
    let mut s = connect(rec.addr).unwrap();
    s.write_all(&request(
        "POST",
        "both",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "0\r\n\r\n",
    ))
    .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let violations = rec.record.lock().unwrap().violations.clone();
    assert!(
        violations.len() == 1 && violations[0].contains("framing"),
        "{violations:?}"
    );
}

/// Content-Length against Transfer-Encoding, and Transfer-Encoding values a naive parser
/// reads differently: chunked wins (Content-Length removed), anything else is refused.
#[test]
fn content_length_and_transfer_encoding_never_split_a_request() {
    let (_g, rec, gw) = setup();
    let s = SMUGGLED;
    // CL.TE: Content-Length covers the smuggled request, chunked ends before it.
    let cl_te_body = format!("0\r\n\r\n{s}");
    let cl_te = |name, te: &str| {
        request(
            "POST",
            name,
            &format!(
                "Content-Length: {}\r\nTransfer-Encoding: {te}\r\n",
                cl_te_body.len()
            ),
            &cl_te_body,
        )
    };
    // TE.CL: chunked covers the smuggled request (as data), Content-Length ends before it.
    let te_cl_body = format!("{:x}\r\n{s}\r\n0\r\n\r\n", s.len());
    let cases = vec![
        Case {
            name: "cl_then_te",
            raw: cl_te("cl_then_te", "chunked"),
            expect: Expect::Forwarded {
                body: "",
                headers: CHUNKED,
                closes: true,
            },
        },
        Case {
            name: "te_then_cl",
            raw: request(
                "POST",
                "te_then_cl",
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                &te_cl_body,
            ),
            expect: Expect::Forwarded {
                body: SMUGGLED,
                headers: CHUNKED,
                closes: true,
            },
        },
        refused("te_chunked_identity", cl_te("te_chunked_identity", "chunked, identity"), 400),
        refused("te_xchunked", cl_te("te_xchunked", "xchunked"), 400),
        refused("te_chunked_trailing_comma", cl_te("te_chunked_trailing_comma", "chunked,"), 400),
        refused("te_quoted", cl_te("te_quoted", "\"chunked\""), 400),
        refused("te_empty", cl_te("te_empty", ""), 400),
        refused("te_vertical_tab", cl_te("te_vertical_tab", "\x0bchunked"), 400),
        refused(
            "te_space_before_colon",
            request(
                "POST",
                "te_space_before_colon",
                &format!(
                    "Content-Length: {}\r\nTransfer-Encoding : chunked\r\n",
                    cl_te_body.len()
                ),
                &cl_te_body,
            ),
            400,
        ),
        refused(
            "te_twice_last_not_chunked",
            request(
                "POST",
                "te_twice_last_not_chunked",
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
                &cl_te_body,
            ),
            400,
        ),
        refused(
            "te_in_http10",
            format!(
                "POST /c/te_in_http10 HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n{cl_te_body}"
            )
            .into_bytes(),
            400,
        ),
        forwarded(
            "te_tab_before_value",
            request("POST", "te_tab_before_value", "Transfer-Encoding:\tchunked\r\n", "0\r\n\r\n"),
            "",
            CHUNKED,
        ),
        forwarded(
            "te_tab_after_value",
            request("POST", "te_tab_after_value", "Transfer-Encoding: chunked\t\r\n", "0\r\n\r\n"),
            "",
            CHUNKED,
        ),
        forwarded(
            "te_upper_case",
            request("POST", "te_upper_case", "Transfer-Encoding: CHUNKED\r\n", "0\r\n\r\n"),
            "",
            CHUNKED,
        ),
        // A coding before chunked: the body is coded, and the coding could not be passed on
        // (the header is hop-by-hop, the body is re-framed): 501, as RFC 9112 says.
        refused(
            "te_gzip_chunked",
            request("POST", "te_gzip_chunked", "Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
            501,
        ),
    ];
    run(gw, &rec, cases);
}

/// Content-Length must be one run of digits, or repeated with the same value.
#[test]
fn content_length_must_be_one_plain_number() {
    let (_g, rec, gw) = setup();
    let cl = |name, value: &str| {
        request(
            "POST",
            name,
            &format!("Content-Length: {value}\r\n"),
            &format!("hello{SMUGGLED}"),
        )
    };
    let cases = vec![
        refused(
            "cl_two_different",
            request(
                "POST",
                "cl_two_different",
                "Content-Length: 5\r\nContent-Length: 48\r\n",
                &format!("hello{SMUGGLED}"),
            ),
            400,
        ),
        forwarded(
            "cl_two_same",
            request(
                "POST",
                "cl_two_same",
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                "hello",
            ),
            "hello",
            &[("content-length", Some("5")), ("transfer-encoding", None)],
        ),
        refused("cl_plus", cl("cl_plus", "+5"), 400),
        refused("cl_minus", cl("cl_minus", "-1"), 400),
        refused("cl_list", cl("cl_list", "5, 48"), 400),
        refused("cl_list_same", cl("cl_list_same", "5, 5"), 400),
        refused("cl_hex", cl("cl_hex", "0x5"), 400),
        refused("cl_space_inside", cl("cl_space_inside", "5 5"), 400),
        refused("cl_empty", cl("cl_empty", ""), 400),
        refused(
            "cl_overflow",
            cl("cl_overflow", "18446744073709551621"),
            400,
        ),
        forwarded(
            "cl_leading_zeros",
            request(
                "POST",
                "cl_leading_zeros",
                "Content-Length: 0005\r\n",
                "hello",
            ),
            "hello",
            &[("content-length", Some("0005"))],
        ),
    ];
    run(gw, &rec, cases);
}

/// Header lines: obs-fold, bad names, stray CR, LF and NUL.
#[test]
fn malformed_header_lines_are_refused() {
    let (_g, rec, gw) = setup();
    let get = |name, headers: &str| request("GET", name, headers, SMUGGLED);
    let cases = vec![
        refused("obs_fold", get("obs_fold", "X-A: a\r\n b\r\n"), 400),
        refused(
            "obs_fold_te",
            request(
                "POST",
                "obs_fold_te",
                "Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        refused(
            "first_line_folded",
            b"GET /c/first_line_folded HTTP/1.1\r\n Host: app.test\r\n\r\n".to_vec(),
            400,
        ),
        refused("name_with_space", get("name_with_space", "X A: b\r\n"), 400),
        refused("name_with_ctl", get("name_with_ctl", "X\x01A: b\r\n"), 400),
        refused(
            "name_with_paren",
            get("name_with_paren", "X(A): b\r\n"),
            400,
        ),
        refused("name_with_nul", get("name_with_nul", "X\0A: b\r\n"), 400),
        refused("name_empty", get("name_empty", ": b\r\n"), 400),
        refused("no_colon", get("no_colon", "X-A b\r\n"), 400),
        refused(
            "value_with_nul",
            get("value_with_nul", "X-A: a\0b\r\n"),
            400,
        ),
        refused(
            "value_with_del",
            get("value_with_del", "X-A: a\x7fb\r\n"),
            400,
        ),
        refused(
            "value_with_bare_cr",
            get(
                "value_with_bare_cr",
                "X-A: a\rTransfer-Encoding: chunked\r\n",
            ),
            400,
        ),
        // httparse takes a bare LF as a line end: the lines are read as separate headers,
        // and the backend gets them on proper CRLF lines.
        forwarded(
            "bare_lf_line_ends",
            b"GET /c/bare_lf_line_ends HTTP/1.1\nHost: app.test\nX-A: a\n\n".to_vec(),
            "",
            &[("x-a", Some("a")), ("host", Some("app.test"))],
        ),
        forwarded(
            "bare_lf_splits_a_header",
            request(
                "POST",
                "bare_lf_splits_a_header",
                "X-A: a\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
            "",
            CHUNKED,
        ),
    ];
    run(gw, &rec, cases);
}

/// The request line: method token, separators, version, and the target's forms.
#[test]
fn request_lines_and_targets_are_checked() {
    let (g, rec, gw) = setup();
    let line = |l: &str| format!("{l}\r\nHost: app.test\r\n\r\n").into_bytes();
    let cases =
        vec![
        refused("bad_method", line("G@T /c/bad_method HTTP/1.1"), 400),
        refused("method_with_nul", line("G\0T /c/method_with_nul HTTP/1.1"), 400),
        refused("double_space", line("GET  /c/double_space HTTP/1.1"), 400),
        refused("tab_separator", line("GET\t/c/tab_separator HTTP/1.1"), 400),
        refused("space_in_target", line("GET /c/space_in_target x HTTP/1.1"), 400),
        refused("version_1_2", line("GET /c/version_1_2 HTTP/1.2"), 400),
        refused("version_2", line("GET /c/version_2 HTTP/2.0"), 400),
        refused("lower_case_version", line("GET /c/lower_case_version http/1.1"), 400),
        // Absolute form: the target's authority wins over Host (RFC 9112 section 3.2.2),
        // for routing and for what the backend is told.
        forwarded(
            "absolute_form",
            b"GET http://app.test/c/absolute_form HTTP/1.1\r\nHost: evil.test\r\n\r\n".to_vec(),
            "",
            &[("host", Some("app.test")), ("x-forwarded-host", Some("app.test"))],
        ),
        refused(
            "absolute_form_other_host",
            b"GET http://evil.test/c/absolute_form_other_host HTTP/1.1\r\nHost: app.test\r\n\r\n"
                .to_vec(),
            404,
        ),
        // Two Host headers: the first routes, and the backend gets that one only.
        forwarded(
            "two_hosts",
            b"GET /c/two_hosts HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\n\r\n".to_vec(),
            "",
            &[("host", Some("app.test"))],
        ),
        // The fragment is not part of the target a server sees.
        forwarded(
            "fragment",
            line("GET /c/fragment#top HTTP/1.1"),
            "",
            &[],
        ),
        // Targets that are not a path: refused (they used to count as a failed connect
        // and eject the endpoint, see below).
        refused("authority_form", line("GET app.test:80 HTTP/1.1"), 400),
        refused("asterisk_form", line("OPTIONS * HTTP/1.1"), 400),
        forwarded(
            "leading_empty_line",
            b"\r\nGET /c/leading_empty_line HTTP/1.1\r\nHost: app.test\r\n\r\n".to_vec(),
            "",
            &[],
        ),
    ];
    run(gw, &rec, cases);
    // No request of a client, however odd, counts against the backend's health.
    assert_eq!(
        g.lines_with("connect to endpoint failed", 0),
        Vec::<String>::new()
    );
}

/// `maxHeaderBytes` and `maxHeaders` (8192 and 20 here): 431, nothing forwarded.
#[test]
fn oversized_and_too_many_headers_get_431() {
    let (_g, rec, gw) = setup();
    let many: String = (0..25).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let cases = vec![
        refused(
            "one_big_header",
            request(
                "GET",
                "one_big_header",
                &format!("X-Big: {}\r\n", "a".repeat(9000)),
                "",
            ),
            431,
        ),
        refused(
            "too_many_headers",
            request("GET", "too_many_headers", &many, ""),
            431,
        ),
        forwarded(
            "just_under_the_limits",
            request(
                "GET",
                "just_under_the_limits",
                &format!("X-Big: {}\r\n", "a".repeat(7000)),
                "",
            ),
            "",
            &[],
        ),
    ];
    run(gw, &rec, cases);
}

/// Chunked bodies: sizes, extensions, line ends and trailers. A broken body is found only
/// after the head went to the backend: that request must never complete there, and the
/// upstream connection must not be reused (the recorder would see the next request's bytes
/// as the rest of the body, then garbage). Today the client gets 502 and a closed
/// connection (hyper reports the client's broken body as a failed upstream request); a 400
/// would be fairer, so the status is not pinned.
#[test]
fn chunked_bodies_are_decoded_strictly() {
    let (_g, rec, gw) = setup();
    let te = "Transfer-Encoding: chunked\r\n";
    let post = |name, body: &str| request("POST", name, te, body);
    let cut = |name, body: &str| Case {
        name,
        raw: post(name, body),
        expect: Expect::Cut(None),
    };
    let cases = vec![
        forwarded(
            "chunk_extension",
            post("chunk_extension", "5;name=value\r\nhello\r\n0\r\n\r\n"),
            "hello",
            CHUNKED,
        ),
        forwarded(
            "trailer_fields",
            post("trailer_fields", "5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
            "hello",
            CHUNKED,
        ),
        cut(
            "chunk_size_overflow",
            &format!("ffffffffffffffffff\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        cut(
            "chunk_size_not_hex",
            &format!("zz\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        cut(
            "chunk_size_negative",
            &format!("-5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        cut(
            "chunk_data_longer_than_size",
            &format!("3\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        cut("chunk_bare_lf", &format!("5\nhello\n0\n\n{SMUGGLED}")),
    ];
    run(gw, &rec, cases);
}

/// The client leaves in the middle of a body: the upstream connection that carried the head
/// is closed, never handed to the next request.
#[test]
fn an_unfinished_body_never_poisons_a_pooled_connection() {
    let (_g, rec, gw) = setup();
    // A first request leaves an idle pooled connection to the backend.
    let warm = exchange(gw, &request("GET", "warm", "", ""));
    assert_eq!(warm.statuses, [200]);
    let mut s = connect(gw).unwrap();
    s.write_all(&request(
        "POST",
        "unfinished",
        "Content-Length: 40\r\n",
        "hello",
    ))
    .unwrap();
    let deadline = Instant::now() + WAIT;
    while rec.for_case("unfinished").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the head never reached the backend"
        );
        crate::sleep(Duration::from_millis(10));
    }
    drop(s);
    crate::sleep(Duration::from_millis(100));
    // The next request must arrive on its own: on a reused connection its bytes would be
    // read as the 35 missing body bytes, and what followed as a broken request.
    let next = exchange(gw, &request("GET", "next", "X-Pad: 0123456789\r\n", ""));
    assert_eq!(next.statuses, [200]);
    let [unfinished] = &rec.for_case("unfinished")[..] else {
        panic!("{:#?}", rec.requests())
    };
    assert!(!unfinished.complete, "{unfinished:?}");
    let [next] = &rec.for_case("next")[..] else {
        panic!("{:#?}", rec.requests())
    };
    assert!(next.complete && next.body.is_empty(), "{next:?}");
    // The unfinished request did get the pooled connection, and the next one a new one.
    let [warm] = &rec.for_case("warm")[..] else {
        panic!("{:#?}", rec.requests())
    };
    assert_eq!(unfinished.conn, warm.conn, "{:#?}", rec.requests());
    assert_ne!(next.conn, unfinished.conn, "{:#?}", rec.requests());
    rec.assert_clean(&["warm", "unfinished", "next"], &["unfinished"]);
}

/// `Upgrade: h2c` is not passed on: a backend that took it would give the client a raw
/// HTTP/2 connection, past routing, filters and forwarding headers (h2c smuggling).
#[test]
fn an_h2c_upgrade_is_not_forwarded() {
    let (_g, rec, gw) = setup();
    let cases = vec![forwarded(
        "h2c_upgrade",
        request(
            "GET",
            "h2c_upgrade",
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
            "",
        ),
        "",
        &[
            ("upgrade", None),
            ("connection", None),
            ("http2-settings", None),
        ],
    )];
    run(gw, &rec, cases);
}

// ---------------------------------------------------------------------------------------
// HTTP/2 (h2c, prior knowledge) to an HTTP/1.1 backend
// ---------------------------------------------------------------------------------------

/// How an HTTP/2 exchange on stream 1 ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum H2 {
    /// A response with this status.
    Status(u16),
    /// RST_STREAM with this error code (1: PROTOCOL_ERROR).
    Reset(u32),
    /// GOAWAY with this (non-zero) error code.
    GoAway(u32),
    Closed,
}

const PROTOCOL_ERROR: u32 = 1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix, the first byte's other bits set to `flags`.
fn hpack_int(out: &mut Vec<u8>, flags: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literal fields without indexing, names and values as given (so any
/// byte, upper case and pseudo-header order can be sent).
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The `:status` at the start of a response header block (as h2 encodes it: an indexed
/// static entry, or a literal with the `:status` name and a raw or Huffman-coded value).
fn status_of(block: &[u8]) -> Option<u16> {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let mut i = 0;
    // Dynamic table size updates.
    while block.get(i)? & 0xe0 == 0x20 {
        i += 1;
    }
    let first = *block.get(i)?;
    if first & 0x80 != 0 {
        return STATIC
            .get(usize::from(first & 0x7f).checked_sub(8)?)
            .copied();
    }
    let name_index = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    if !(8..=14).contains(&name_index) {
        return None;
    }
    let len_byte = *block.get(i + 1)?;
    let value = block.get(i + 2..i + 2 + usize::from(len_byte & 0x7f))?;
    let digits = if len_byte & 0x80 == 0 {
        String::from_utf8(value.to_vec()).ok()?
    } else {
        // Huffman: '0'-'2' are 00000-00010, '3'-'9' are 011001-011111.
        let bits: Vec<u8> = value
            .iter()
            .flat_map(|b| (0..8).rev().map(move |k| (b >> k) & 1))
            .collect();
        let mut digits = String::new();
        let mut at = 0;
        while digits.len() < 3 {
            let five = bits.get(at..at + 5)?.iter().fold(0, |a, b| a * 2 + b);
            if five < 3 {
                digits.push(char::from(b'0' + five));
                at += 5;
            } else {
                let six = bits.get(at..at + 6)?.iter().fold(0, |a, b| a * 2 + b);
                digits.push(char::from(b'0' + 3 + six.checked_sub(0x19)?));
                at += 6;
            }
        }
        digits
    };
    digits.parse().ok()
}

/// Sends one request on stream 1 of a new h2c connection: `fields` as one HEADERS frame,
/// then `data` (if any) as one DATA frame ending the stream. Reads until stream 1 gets a
/// response head or a reset, or the connection goes away.
fn h2_exchange(gw: SocketAddr, fields: &[(&str, &str)], data: Option<&str>) -> H2 {
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    let mut s = connect(gw).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    let flags = if data.is_some() {
        END_HEADERS
    } else {
        END_HEADERS | END_STREAM
    };
    out.extend(frame(0x1, flags, 1, &header_block(fields)));
    if let Some(d) = data {
        out.extend(frame(0x0, END_STREAM, 1, d.as_bytes()));
    }
    let _ = s.write_all(&out);
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).is_err() {
            return H2::Closed;
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).is_err() {
            return H2::Closed;
        }
        let code = |at: usize| {
            payload
                .get(at..at + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match (kind, stream) {
            // SETTINGS from the server: acknowledge.
            (0x4, 0) if flags & 0x1 == 0 => {
                let _ = s.write_all(&frame(0x4, 0x1, 0, &[]));
            }
            (0x1, 1) => {
                return status_of(&payload).map_or(H2::Closed, H2::Status);
            }
            (0x3, 1) => return H2::Reset(code(0)),
            (0x7, 0) if code(4) != 0 => return H2::GoAway(code(4)),
            _ => {}
        }
    }
}

/// One HTTP/2 case: the header fields of stream 1, in order, and an optional body.
struct H2Case {
    name: &'static str,
    fields: Vec<(String, String)>,
    data: Option<&'static str>,
    expect: H2,
}

/// A GET for `/c/<name>` on `app.test`, changed by `edits`: `("name", Some(value))` sets the
/// first field of that name (or appends it), `("name", None)` removes it, and a name
/// starting with `+` is always appended (for repeats and for fields after regular ones).
fn h2_case(
    name: &'static str,
    edits: &[(&str, Option<&str>)],
    data: Option<&'static str>,
    expect: H2,
) -> H2Case {
    let mut fields: Vec<(String, String)> = [
        (":method", "GET".to_owned()),
        (":scheme", "http".to_owned()),
        (":authority", "app.test".to_owned()),
        (":path", format!("/c/{name}")),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v))
    .collect();
    for (field, value) in edits {
        match (field.strip_prefix('+'), value) {
            (Some(field), Some(v)) => fields.push((field.to_owned(), (*v).to_owned())),
            (None, Some(v)) => match fields.iter_mut().find(|(n, _)| n == field) {
                Some(f) => f.1 = (*v).to_owned(),
                None => fields.push(((*field).to_owned(), (*v).to_owned())),
            },
            (_, None) => fields.retain(|(n, _)| n != field),
        }
    }
    H2Case {
        name,
        fields,
        data,
        expect,
    }
}

/// Runs the cases at once, each on its own connection; returns what each got.
fn h2_run(gw: SocketAddr, cases: &[H2Case]) -> Vec<H2> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| {
                scope.spawn(move || {
                    let f: Vec<(&str, &str)> = c
                        .fields
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    h2_exchange(gw, &f, c.data)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// HTTP/2 requests that HTTP/1.1 cannot carry, or that are malformed: connection-specific
/// fields, bad pseudo-header fields, bytes that would end a line in HTTP/1.1, broken
/// content-length. The h2 library refuses them (the stream, or the whole connection when
/// the header block cannot be decoded) or Gatehouse answers; none reaches the backend
/// (a body that breaks its content-length may let the head through, never the request).
#[test]
fn malformed_h2_requests_never_reach_an_h1_backend() {
    let (g, rec, gw) = setup();
    const RESET: H2 = H2::Reset(PROTOCOL_ERROR);
    const GOAWAY: H2 = H2::GoAway(PROTOCOL_ERROR);
    let post = |name, edits: &[(&str, Option<&str>)], data, expect| {
        let mut all = vec![(":method", Some("POST"))];
        all.extend_from_slice(edits);
        h2_case(name, &all, Some(data), expect)
    };
    let cases = vec![
        // Connection-specific fields (RFC 9113 section 8.2.2).
        h2_case(
            "h2_connection",
            &[("connection", Some("keep-alive"))],
            None,
            RESET,
        ),
        h2_case(
            "h2_keep_alive",
            &[("keep-alive", Some("timeout=5"))],
            None,
            RESET,
        ),
        h2_case(
            "h2_proxy_connection",
            &[("proxy-connection", Some("a"))],
            None,
            RESET,
        ),
        h2_case("h2_upgrade", &[("upgrade", Some("h2c"))], None, RESET),
        h2_case("h2_te_gzip", &[("te", Some("gzip"))], None, RESET),
        post(
            "h2_transfer_encoding",
            &[("transfer-encoding", Some("chunked"))],
            "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
            RESET,
        ),
        // Pseudo-header fields.
        h2_case("h2_no_method", &[(":method", None)], None, RESET),
        h2_case("h2_no_scheme", &[(":scheme", None)], None, RESET),
        h2_case("h2_no_path", &[(":path", None)], None, RESET),
        h2_case("h2_empty_path", &[(":path", Some(""))], None, RESET),
        h2_case(
            "h2_space_in_path",
            &[(":path", Some("/c/h2_space_in_path x"))],
            None,
            RESET,
        ),
        h2_case(
            "h2_crlf_in_path",
            &[(":path", Some("/c/h2_crlf_in_path\r\nX: y"))],
            None,
            RESET,
        ),
        h2_case(
            "h2_relative_path",
            &[(":path", Some("0/c/h2_relative_path"))],
            None,
            RESET,
        ),
        h2_case(
            "h2_userinfo_path",
            &[(":path", Some("@evil.test/c/x"))],
            None,
            RESET,
        ),
        h2_case(
            "h2_absolute_path",
            &[(":path", Some("http://evil.test/c/x"))],
            None,
            RESET,
        ),
        h2_case(
            "h2_two_paths",
            &[("+:path", Some("/smuggled"))],
            None,
            RESET,
        ),
        h2_case(
            "h2_pseudo_after_field",
            &[
                (":path", None),
                ("+x-a", Some("1")),
                ("+:path", Some("/c/h2_pseudo_after_field")),
            ],
            None,
            RESET,
        ),
        h2_case(
            "h2_status_in_request",
            &[(":status", Some("200"))],
            None,
            RESET,
        ),
        // `*` is valid HTTP/2 for OPTIONS, but there is no path to proxy: Gatehouse says 400.
        h2_case(
            "h2_asterisk",
            &[(":method", Some("OPTIONS")), (":path", Some("*"))],
            None,
            H2::Status(400),
        ),
        // Fields HTTP/1.1 could not carry: the header block is refused as a whole, so the
        // connection goes (its HPACK state is suspect).
        h2_case("h2_unknown_pseudo", &[(":foo", Some("1"))], None, GOAWAY),
        h2_case(
            "h2_upper_case_name",
            &[("X-Upper", Some("1"))],
            None,
            GOAWAY,
        ),
        h2_case("h2_space_in_name", &[("x a", Some("b"))], None, GOAWAY),
        h2_case(
            "h2_crlf_in_value",
            &[("x-a", Some("a\r\ntransfer-encoding: chunked"))],
            None,
            GOAWAY,
        ),
        h2_case("h2_nul_in_value", &[("x-a", Some("a\0b"))], None, GOAWAY),
        // Content-length (checked against the DATA frames by the h2 library).
        post(
            "h2_two_content_lengths",
            &[
                ("content-length", Some("5")),
                ("+content-length", Some("48")),
            ],
            "hello",
            RESET,
        ),
        post(
            "h2_signed_content_length",
            &[("content-length", Some("+5"))],
            "hello",
            RESET,
        ),
        post(
            "h2_content_length_short",
            &[("content-length", Some("2"))],
            "hello",
            RESET,
        ),
        post(
            "h2_content_length_long",
            &[("content-length", Some("10"))],
            "hello",
            RESET,
        ),
        // Limits: the header list is over maxHeaderBytes.
        h2_case(
            "h2_big_header",
            &[("x-big", Some(&"a".repeat(9000)))],
            None,
            H2::Status(431),
        ),
    ];
    let results = h2_run(gw, &cases);
    let mut failures = Vec::new();
    for (case, got) in cases.iter().zip(&results) {
        let seen = rec.for_case(case.name);
        let reached = if case.data.is_some() {
            seen.iter().any(|s| s.complete)
        } else {
            !seen.is_empty()
        };
        if *got != case.expect || reached {
            failures.push(format!(
                "{}: got {got:?}, expected {:?}; backend saw {seen:#?}",
                case.name, case.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let with_body: Vec<&str> = cases
        .iter()
        .filter(|c| c.data.is_some())
        .map(|c| c.name)
        .collect();
    rec.assert_clean(&with_body, &with_body);
    assert_eq!(
        g.lines_with("connect to endpoint failed", 0),
        Vec::<String>::new()
    );
}

/// Valid HTTP/2 requests translated for an HTTP/1.1 backend: one request each, with a Host
/// (from `:authority`, over any `host` field), a body framed by its content-length, and no
/// HTTP/2-only or connection-specific field.
#[test]
fn h2_requests_are_translated_for_an_h1_backend() {
    let (_g, rec, gw) = setup();
    let ok = H2::Status(200);
    let cases = vec![
        h2_case("h2_plain", &[], None, ok),
        h2_case("h2_host_field", &[("host", Some("evil.test"))], None, ok),
        h2_case(
            "h2_host_without_authority",
            &[(":authority", None), ("host", Some("app.test"))],
            None,
            ok,
        ),
        h2_case("h2_te_trailers", &[("te", Some("trailers"))], None, ok),
        h2_case(
            "h2_body",
            &[(":method", Some("POST")), ("content-length", Some("5"))],
            Some("hello"),
            ok,
        ),
        h2_case(
            "h2_body_without_length",
            &[(":method", Some("POST"))],
            Some("hello"),
            ok,
        ),
    ];
    let results = h2_run(gw, &cases);
    for (case, got) in cases.iter().zip(&results) {
        let name = case.name;
        assert_eq!(*got, case.expect, "{name}: {:#?}", rec.requests());
        let [one] = &rec.for_case(name)[..] else {
            panic!("{name}: {:#?}", rec.requests())
        };
        assert!(one.complete, "{one:?}");
        assert_eq!(one.body, case.data.unwrap_or("").as_bytes(), "{one:?}");
        assert_eq!(one.header("host"), Some("app.test"), "{one:?}");
        for name in ["connection", "te", "upgrade", "keep-alive"] {
            assert_eq!(one.header(name), None, "{one:?}");
        }
        // Exactly one framing: the stated length, or chunked when there was none.
        let framing = (
            one.header("content-length"),
            one.header("transfer-encoding"),
        );
        let want = match (
            case.data,
            case.fields.iter().any(|(n, _)| n == "content-length"),
        ) {
            (None, _) => (None, None),
            (Some(d), true) => (Some(d.len().to_string()), None),
            (Some(_), false) => (None, Some("chunked".to_owned())),
        };
        assert_eq!(
            (framing.0.map(str::to_owned), framing.1.map(str::to_owned)),
            want,
            "{one:?}"
        );
    }

    // curl with connection-specific headers over h2c: whatever curl puts on the wire, the
    // backend gets one request without them.
    let c = curl_get(
        "http://app.test/c/h2_curl",
        &[("app.test", 80, gw)],
        None,
        &[
            "--http2-prior-knowledge",
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Connection: keep-alive",
            "-H",
            "Keep-Alive: timeout=5",
        ],
    );
    assert_eq!(c.status, Some(200), "{}", c.stderr);
    let [one] = &rec.for_case("h2_curl")[..] else {
        panic!("{:#?}", rec.requests())
    };
    for name in ["transfer-encoding", "connection", "keep-alive"] {
        assert_eq!(one.header(name), None, "{one:?}");
    }
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.push("h2_curl");
    rec.assert_clean(&names, &[]);
}
