//! Reading a ClientHello without terminating TLS, for SNI routing and passthrough.
//!
//! The bytes are parsed by rustls itself ([`rustls::server::Acceptor`]), so what we route on is
//! exactly what a terminating rustls would see: records are reassembled, a hello split over
//! several records or several reads is handled, and a malformed one is refused with rustls's
//! reason. Every byte is also kept, in order, so a passthrough route can replay them to the
//! backend unchanged.
//!
//! The [`Accepted`] that comes out can continue a terminated handshake:
//! `tokio_rustls::StartHandshake::from_parts(accepted, stream).into_stream(config)`. It holds
//! (in rustls's record buffer) every byte fed after the hello, so nothing the client sent
//! early is lost; tokio-rustls processes those bytes together with the next read from the
//! socket (in a handshake the client always sends more).
//!
//! What rustls refuses here, and so cannot be routed by SNI even for passthrough: hellos
//! without a `signature_algorithms` extension (every TLS 1.0/1.1-only client), without null
//! compression, or with an SNI that is not a valid DNS name. An IP address sent as SNI
//! (which RFC 6066 forbids) is read as no SNI. rustls's alert for a refused hello is dropped:
//! the caller just closes the connection.
//!
//! Before rustls sees anything, the first byte is checked: a TLS handshake record starts with
//! `0x16`; anything else is [`HelloError::NotTls`] (with a hint when it looks like plaintext
//! HTTP), and an SSL 2.0-style hello is [`HelloError::SslV2`]. rustls would refuse both too,
//! but with a less useful "invalid content type".

use std::fmt;
use std::time::Duration;

use rustls::server::{Accepted, Acceptor};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The default bound on buffered ClientHello bytes.
///
/// Real hellos are well under 2 KiB (about 1.8 KiB with a post-quantum key share); a client
/// that needs more than this is broken or hostile.
pub const MAX_HELLO: usize = 16 * 1024;

/// TLS record content type of a handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

/// How many leading bytes a [`HelloError::NotTls`] keeps, for the log.
const FIRST_BYTES: usize = 8;

/// What the hello says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloInfo {
    /// The SNI host name, lower case, without a trailing dot. `None` when the client sent none
    /// (rustls also maps an IP address sent as SNI, which RFC 6066 forbids, to `None`).
    pub server_name: Option<String>,
    /// The ALPN protocols offered, in the client's order; empty when none.
    pub alpn: Vec<Vec<u8>>,
}

/// Why the bytes are not an acceptable ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloError {
    /// The first byte is not a TLS handshake record (`0x16`).
    NotTls {
        /// Up to the first 8 bytes received, for the log.
        first_bytes: Vec<u8>,
    },
    /// An SSL 2.0-style hello (high bit set in the first byte, message type 1): refused.
    SslV2,
    /// More than `limit` bytes without a complete ClientHello.
    TooLarge {
        /// The bound that was passed.
        limit: usize,
    },
    /// rustls could not parse it (its error text).
    Malformed(String),
}

impl HelloError {
    /// Whether a [`HelloError::NotTls`] starts like a plaintext HTTP request (an upper-case
    /// method name): someone sent `http://` to a TLS port.
    pub fn looks_like_http(&self) -> bool {
        match self {
            HelloError::NotTls { first_bytes } => looks_like_http(first_bytes),
            _ => false,
        }
    }
}

/// The first byte is the initial of an HTTP method (GET, HEAD, POST, PUT, PATCH, PRI for the
/// h2c preface, DELETE, OPTIONS, CONNECT, TRACE) and the bytes up to the first space are
/// upper-case letters.
fn looks_like_http(first_bytes: &[u8]) -> bool {
    let Some(first) = first_bytes.first() else {
        return false;
    };
    b"GHPDOCT".contains(first)
        && first_bytes
            .iter()
            .take_while(|&&b| b != b' ')
            .all(u8::is_ascii_uppercase)
}

impl fmt::Display for HelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelloError::NotTls { first_bytes } if looks_like_http(first_bytes) => {
                f.write_str("not TLS (looks like plaintext HTTP)")
            }
            HelloError::NotTls { first_bytes } => {
                f.write_str("not TLS (first bytes")?;
                for b in first_bytes {
                    write!(f, " {b:02x}")?;
                }
                f.write_str(")")
            }
            HelloError::SslV2 => f.write_str("SSL 2.0 ClientHello refused"),
            HelloError::TooLarge { limit } => write!(f, "ClientHello larger than {limit} bytes"),
            HelloError::Malformed(why) => write!(f, "malformed ClientHello: {why}"),
        }
    }
}

impl std::error::Error for HelloError {}

/// Where a [`HelloReader`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for more bytes.
    Reading,
    /// Returned the hello or an error; further pushes are refused.
    Finished,
}

/// Feeds bytes to a [`rustls::server::Acceptor`], keeping every byte fed (for replay to a
/// passthrough backend), bounded by a limit.
pub struct HelloReader {
    acceptor: Acceptor,
    limit: usize,
    /// Every byte pushed, in order.
    buffer: Vec<u8>,
    /// How much of `buffer` the acceptor has taken.
    fed: usize,
    state: State,
}

impl fmt::Debug for HelloReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelloReader")
            .field("limit", &self.limit)
            .field("buffered", &self.buffer.len())
            .field("fed", &self.fed)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl HelloReader {
    /// A reader that refuses to buffer more than `limit` bytes (see [`MAX_HELLO`]).
    pub fn new(limit: usize) -> HelloReader {
        HelloReader {
            acceptor: Acceptor::default(),
            limit,
            buffer: Vec::new(),
            fed: 0,
            state: State::Reading,
        }
    }

    /// The bound given to [`HelloReader::new`].
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Appends `bytes` and feeds them to the acceptor.
    ///
    /// - `Ok(None)`: the hello is not complete yet; push more.
    /// - `Ok(Some(accepted))`: the ClientHello is complete. Bytes pushed after it are in
    ///   [`HelloReader::buffered`] and also inside `accepted` (see [`HelloReader::unfed`] for
    ///   the one exception).
    /// - `Err(TooLarge)` when the total pushed would pass the limit, even if this push would
    ///   have completed the hello: push at most `limit - buffered().len()` bytes at a time.
    ///
    /// After `Some` or an error, every push is an error (`Malformed`), never a panic.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<Accepted>, HelloError> {
        if self.state == State::Finished {
            return Err(HelloError::Malformed(
                "the ClientHello reader has already finished".into(),
            ));
        }
        let result = self.push_inner(bytes);
        if !matches!(result, Ok(None)) {
            self.state = State::Finished;
        }
        result
    }

    fn push_inner(&mut self, bytes: &[u8]) -> Result<Option<Accepted>, HelloError> {
        if self.buffer.len().saturating_add(bytes.len()) > self.limit {
            return Err(HelloError::TooLarge { limit: self.limit });
        }
        self.buffer.extend_from_slice(bytes);

        // Nothing goes to rustls until the first bytes say this is TLS (at most 3 bytes are
        // needed to tell, for an SSL 2.0 hello).
        if self.fed == 0 {
            match self.buffer.as_slice() {
                [] => return Ok(None),
                [HANDSHAKE_RECORD, ..] => {}
                // SSL 2.0 record header: a 2-byte length with the high bit set, then the
                // message type, 1 for CLIENT-HELLO. Clients sent this for compatibility
                // until around 2010; rustls does not speak it.
                [first, _, 1, ..] if first & 0x80 != 0 => return Err(HelloError::SslV2),
                [first] | [first, _] if first & 0x80 != 0 => return Ok(None),
                other => {
                    return Err(HelloError::NotTls {
                        first_bytes: other.iter().take(FIRST_BYTES).copied().collect(),
                    });
                }
            }
        }

        loop {
            // Give the acceptor everything it will take. `read_tls` from a slice may take less
            // than all of it: rustls grows its buffer 4 KiB per read and refuses ("message
            // buffer full") beyond one maximal record until a partial handshake message is
            // being joined; `accept` below processes what it has, which makes room.
            let before = self.fed;
            let mut refused = None;
            while self.fed < self.buffer.len() {
                let mut rest = &self.buffer[self.fed..];
                match self.acceptor.read_tls(&mut rest) {
                    Ok(0) => break,
                    Ok(n) => self.fed += n,
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            match self.acceptor.accept() {
                Ok(Some(accepted)) => return Ok(Some(accepted)),
                // Everything pushed so far is in; wait for more.
                Ok(None) if self.fed == self.buffer.len() => return Ok(None),
                // rustls took nothing more and processing made no room: stuck.
                Ok(None) if self.fed == before => {
                    let why = refused.map_or_else(
                        || "rustls stopped taking bytes".to_owned(),
                        |e| e.to_string(),
                    );
                    return Err(HelloError::Malformed(why));
                }
                Ok(None) => continue,
                // The alert is dropped: for passthrough we never speak TLS to the client, and
                // a terminating caller learns the reason here.
                Err((e, _alert)) => return Err(HelloError::Malformed(e.to_string())),
            }
        }
    }

    /// Every byte pushed so far, in order.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }

    /// Every byte pushed so far, in order, without a copy.
    pub fn into_buffered(self) -> Vec<u8> {
        self.buffer
    }

    /// Bytes pushed but not given to the acceptor, so not inside the [`Accepted`]: the tail
    /// of a push that completed the hello and carried more than rustls's record buffer takes
    /// (about 18 KiB) beyond it. Always empty with a limit of at most [`MAX_HELLO`]. A
    /// terminating caller with a larger limit must replay these ahead of the socket.
    pub fn unfed(&self) -> &[u8] {
        &self.buffer[self.fed..]
    }
}

/// What the hello says: SNI (lower case, without a trailing dot) and ALPN.
pub fn info(accepted: &Accepted) -> HelloInfo {
    let hello = accepted.client_hello();
    // rustls already lower-cases the SNI, but keeps a trailing dot.
    let server_name = hello
        .server_name()
        .map(|name| name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase());
    let alpn = hello
        .alpn()
        .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    HelloInfo { server_name, alpn }
}

/// Why reading a hello from a socket failed.
#[derive(Debug)]
pub enum ReadHelloError {
    /// The bytes are not an acceptable ClientHello.
    Hello(HelloError),
    /// The deadline passed before the hello was complete.
    Timeout {
        /// Bytes received by then.
        received: usize,
        /// The timeout that passed.
        after: Duration,
    },
    /// The client closed before a complete hello.
    Eof {
        /// Bytes received before the close.
        received: usize,
    },
    /// Reading the socket failed.
    Io(std::io::Error),
}

impl fmt::Display for ReadHelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadHelloError::Hello(e) => e.fmt(f),
            ReadHelloError::Timeout { received, after } => write!(
                f,
                "ClientHello not complete after {} ({received} bytes received)",
                DisplayDuration(*after)
            ),
            ReadHelloError::Eof { received } => write!(
                f,
                "client closed before a complete ClientHello ({received} bytes)"
            ),
            ReadHelloError::Io(e) => write!(f, "reading the ClientHello: {e}"),
        }
    }
}

impl std::error::Error for ReadHelloError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadHelloError::Hello(e) => Some(e),
            ReadHelloError::Io(e) => Some(e),
            ReadHelloError::Timeout { .. } | ReadHelloError::Eof { .. } => None,
        }
    }
}

impl From<HelloError> for ReadHelloError {
    fn from(e: HelloError) -> Self {
        ReadHelloError::Hello(e)
    }
}

/// `10s`, `1.5s` or `200ms`: what a config file would say.
struct DisplayDuration(Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis < 1000 {
            write!(f, "{millis}ms")
        } else if millis.is_multiple_of(1000) {
            write!(f, "{}s", millis / 1000)
        } else {
            write!(f, "{}s", self.0.as_secs_f64())
        }
    }
}

/// Reads from `stream` until the hello is complete, the limit is passed, EOF, or `timeout`
/// passes (one deadline for the whole hello, not per read: a client trickling a byte a
/// second cannot hold the connection longer). Returns the [`Accepted`] and every byte read,
/// which may include bytes after the hello; with `limit` at most [`MAX_HELLO`] those are also
/// inside the `Accepted`.
///
/// Reads are sized to never pass `limit`, so a hello of exactly `limit` bytes is accepted and
/// nothing is read that the limit would refuse.
pub async fn read_client_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: usize,
    timeout: Duration,
) -> Result<(Accepted, Vec<u8>), ReadHelloError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reader = HelloReader::new(limit);
    // One typical hello fits one read; larger ones take a few.
    let mut chunk = [0u8; 4096];
    loop {
        let room = limit.saturating_sub(reader.buffered().len());
        if room == 0 {
            return Err(HelloError::TooLarge { limit }.into());
        }
        let want = room.min(chunk.len());
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await;
        let n = match read {
            Err(_elapsed) => {
                return Err(ReadHelloError::Timeout {
                    received: reader.buffered().len(),
                    after: timeout,
                });
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(ReadHelloError::Io(e)),
            Ok(Ok(0)) => {
                return Err(ReadHelloError::Eof {
                    received: reader.buffered().len(),
                });
            }
            Ok(Ok(n)) => n,
        };
        if let Some(accepted) = reader.push(&chunk[..n])? {
            return Ok((accepted, reader.into_buffered()));
        }
    }
}
