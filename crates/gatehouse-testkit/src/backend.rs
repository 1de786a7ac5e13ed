//! A TCP backend for tests.
//!
//! Protocol: the client speaks first. If its first bytes are an HTTP request for `/healthz`,
//! the backend answers with the status the test set (200 by default) and closes; any other
//! HTTP request gets `200 OK` with the backend's name as the body (for `curl`). Otherwise it
//! writes its own name and a newline, then echoes everything, starting with what the client
//! already sent. It counts the connections it served (health checks excluded).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Shared {
    name: String,
    stopped: AtomicBool,
    health_status: AtomicU16,
    served: AtomicUsize,
    open: Mutex<Vec<TcpStream>>,
}

/// A named echo backend on 127.0.0.1.
pub struct Backend {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Backend {
    /// Starts a backend on a free port of 127.0.0.1.
    pub fn start(name: &str) -> Backend {
        Backend::start_on(name, "127.0.0.1:0".parse().unwrap())
    }

    /// Starts a backend on `addr` (a port used before, to restart it).
    pub fn start_on(name: &str, addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            stopped: AtomicBool::new(false),
            health_status: AtomicU16::new(200),
            served: AtomicUsize::new(0),
            open: Mutex::new(Vec::new()),
        });
        accept_in_background(listener, &shared, |s| &s.stopped, serve);
        Backend { shared, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Proxied connections served so far.
    pub fn served(&self) -> usize {
        self.shared.served.load(SeqCst)
    }

    /// The status `/healthz` answers with from now on.
    pub fn set_health_status(&self, status: u16) {
        self.shared.health_status.store(status, SeqCst);
    }

    /// Stops listening and resets every open connection.
    pub fn stop(&self) {
        if self.shared.stopped.swap(true, SeqCst) {
            return;
        }
        stop_listening(self.addr, self.shared.open.lock().unwrap().drain(..));
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts on `listener` in a thread of its own, serving each connection in a thread of its
/// own, until the flag `stopped` picks out of `shared` is set (and one more connection wakes
/// the loop: see [`stop_listening`]).
pub(crate) fn accept_in_background<S: Send + Sync + 'static>(
    listener: TcpListener,
    shared: &Arc<S>,
    stopped: fn(&S) -> &AtomicBool,
    serve: fn(TcpStream, &S),
) {
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopped(&shared).load(SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let conn_shared = Arc::clone(&shared);
            std::thread::spawn(move || serve(stream, &conn_shared));
        }
    });
}

/// After the stop flag is set: wakes the accept loop (so it drops the listener), resets the
/// `open` connections, and waits until `addr` really refuses connections.
pub(crate) fn stop_listening(addr: SocketAddr, open: impl Iterator<Item = TcpStream>) {
    let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    for s in open {
        let _ = s.shutdown(Shutdown::Both);
    }
    for _ in 0..100 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            return;
        }
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    if shared.stopped.load(SeqCst) {
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    if let Ok(clone) = stream.try_clone() {
        shared.open.lock().unwrap().push(clone);
    }
    let _ = converse(
        &mut stream,
        &shared.name,
        &shared.health_status,
        &shared.served,
        |s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
        },
    );
    let _ = stream.shutdown(Shutdown::Write);
}

const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// What a test backend says, over any stream (plain or TLS), the client speaking first:
/// - `GET /healthz`: the health status, `Content-Length: 0`, and the end (not counted as
///   served);
/// - any other HTTP/1 request: `200 OK` with body `{name}\n` and `Connection: close`; for a
///   path starting with `/echo`, the body goes on with the request head as received;
/// - anything else: `{name}\n`, then an echo of everything, starting with those first bytes.
///
/// `echoing` is called before the echo starts (to lengthen a read timeout, say). Returns when
/// the exchange is over; the caller closes the stream.
pub(crate) fn converse<S: Read + Write>(
    stream: &mut S,
    name: &str,
    health_status: &AtomicU16,
    served: &AtomicUsize,
    echoing: impl FnOnce(&mut S),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buf)?;
    if n == 0 {
        return Ok(());
    }
    let mut first = buf[..n].to_vec();
    if HTTP_METHODS.iter().any(|m| first.starts_with(m)) {
        // Read the whole head, so that closing does not reset an unread request.
        while !contains(&first, b"\r\n\r\n") && !contains(&first, b"\n\n") && first.len() < 65536 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => first.extend_from_slice(&buf[..n]),
            }
        }
        let response = if first.starts_with(b"GET /healthz") {
            let status = health_status.load(SeqCst);
            format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                if status == 200 { "OK" } else { "Status" }
            )
        } else {
            served.fetch_add(1, SeqCst);
            // `/echo...`: the request head as received follows the name, so a test can see
            // the path and headers a proxy sent.
            let body = if first
                .split(|&b| b == b' ')
                .nth(1)
                .is_some_and(|p| p.starts_with(b"/echo"))
            {
                let end = first
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(first.len(), |i| i + 4);
                format!("{name}\n{}", String::from_utf8_lossy(&first[..end]))
            } else {
                format!("{name}\n")
            };
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        return stream.write_all(response.as_bytes());
    }
    served.fetch_add(1, SeqCst);
    echoing(stream);
    let mut greeting = format!("{name}\n").into_bytes();
    greeting.extend_from_slice(&first);
    stream.write_all(&greeting)?;
    loop {
        match stream.read(&mut buf)? {
            0 => return Ok(()),
            n => stream.write_all(&buf[..n])?,
        }
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
