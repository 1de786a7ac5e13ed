//! The PROXY protocol (HAProxy's, versions 1 and 2): a header a proxy sends before the
//! connection's own bytes, saying which client the connection is really from.
//!
//! [`parse`] reads a header at the start of a buffer, [`read_header`] reads one off a stream
//! with a deadline (`front::ClientStream` then serves whatever was read past the header
//! first). [`encode`] and [`encode_local`] build headers to send to backends.
//!
//! A header is only to be believed from a trusted peer: anyone else could claim any address.
//! [`signature`] lets a listener spot (and refuse) one from anyone else.
//!
//! Spec: <https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt>.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Most bytes a header may take; bigger ones are refused (v1 is at most 107 by the spec).
pub const MAX_HEADER: usize = 4096;

/// The longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses).
const V1_MAX: usize = 107;
const V1_START: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/protocol, 2-byte length.
const V2_FIXED: usize = 16;
const V2_PROXY: u8 = 0x21;
const V2_LOCAL: u8 = 0x20;
const STREAM: u8 = 0x1;
const DGRAM: u8 = 0x2;
const TLV_AUTHORITY: u8 = 0x02;

/// A PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text format: one line such as `PROXY TCP4 192.0.2.1 192.0.2.2 51000 443\r\n`.
    V1,
    /// The binary format, which can also carry TLVs (such as the authority).
    V2,
}

/// What a received header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The original client address and the address it connected to; None for v2 LOCAL, v1
    /// UNKNOWN, or an unsupported address family (AF_UNIX, unspecified): then the caller uses
    /// the real peer.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// The PP2_TYPE_AUTHORITY TLV (the SNI the front saw), when present and valid UTF-8.
    pub authority: Option<String>,
    /// Which version the header was written in.
    pub version: Version,
}

/// Why [`parse`] returned no header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The buffer is a valid start of a header; more bytes are needed.
    Incomplete,
    /// Not a valid header; says what is wrong in a short phrase.
    Invalid(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Incomplete => f.write_str("incomplete PROXY header"),
            ParseError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ParseError {}

fn invalid(why: &str) -> ParseError {
    ParseError::Invalid(why.to_owned())
}

fn no_addresses(version: Version) -> ProxyHeader {
    ProxyHeader {
        addresses: None,
        authority: None,
        version,
    }
}

/// Whether some first bytes of a connection are the start of a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// They start with a v1 or v2 signature.
    Yes,
    /// They cannot start a header.
    No,
    /// Too few bytes to tell: they are a strict prefix of a signature.
    Maybe,
}

/// Whether `buf` (the first bytes a client sent, possibly fewer than 12) could be, or is, the
/// start of a PROXY header: v1's `"PROXY "` or v2's 12-byte signature.
pub fn signature(buf: &[u8]) -> Signature {
    for sig in [V1_START, V2_SIGNATURE] {
        if buf.starts_with(sig) {
            return Signature::Yes;
        }
        if sig.starts_with(buf) {
            return Signature::Maybe;
        }
    }
    Signature::No
}

/// Parses a header at the start of `buf`, returning it and the number of bytes it took.
///
/// `Err(Incomplete)` when `buf` is a valid start of a header that needs more bytes;
/// `Err(Invalid)` for anything else that is not a complete, valid header.
pub fn parse(buf: &[u8]) -> Result<(ProxyHeader, usize), ParseError> {
    match signature(buf) {
        Signature::No => Err(invalid("not a PROXY protocol header")),
        Signature::Maybe => Err(ParseError::Incomplete),
        Signature::Yes if buf.starts_with(V2_SIGNATURE) => parse_v2(buf),
        Signature::Yes => parse_v1(buf),
    }
}

const V1_ERRORS: [&str; 5] = [
    "PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN",
    "PROXY v1 header: bad source address",
    "PROXY v1 header: bad destination address",
    "PROXY v1 header: bad source port",
    "PROXY v1 header: bad destination port",
];
const V1_FIELD_COUNT: &str = "PROXY v1 header: not 5 fields separated by single spaces";

/// `buf` starts with "PROXY ".
fn parse_v1(buf: &[u8]) -> Result<(ProxyHeader, usize), ParseError> {
    // The spec: no CRLF in the first 107 bytes makes the line invalid.
    let window = &buf[..buf.len().min(V1_MAX)];
    let rest = window.strip_prefix(V1_START).unwrap_or_default();
    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
        if buf.len() >= V1_MAX {
            return Err(invalid("PROXY v1 header: no CRLF within 107 bytes"));
        }
        // A final CR may be the first half of the CRLF: the fields before it are whole.
        match rest.strip_suffix(b"\r") {
            Some(line) => v1_fields(line, true),
            None => v1_fields(rest, false),
        }
        .map_err(invalid)?;
        return Err(ParseError::Incomplete);
    };
    // A lone LF must not end the line.
    let line = rest[..lf]
        .strip_suffix(b"\r")
        .ok_or_else(|| invalid("PROXY v1 header: line ends in LF without CR"))?;
    let addresses = v1_fields(line, true).map_err(invalid)?;
    let header = ProxyHeader {
        addresses,
        ..no_addresses(Version::V1)
    };
    Ok((header, V1_START.len() + lf + 1))
}

/// Parses what follows "PROXY ": the line up to the CRLF when `complete`; otherwise what has
/// arrived so far, whose last field may be cut short and is only checked for the characters
/// its kind allows. That refuses a line which can no longer become valid at once, rather than
/// after the read timeout. Returns the addresses of a complete TCP4 or TCP6 line.
fn v1_fields(
    text: &[u8],
    complete: bool,
) -> Result<Option<(SocketAddr, SocketAddr)>, &'static str> {
    let fields: Vec<&[u8]> = text.split(|&b| b == b' ').collect();
    let cut = if complete {
        usize::MAX
    } else {
        fields.len().saturating_sub(1)
    };
    let (mut v6, mut ips, mut ports) = (None, [None; 2], [None; 2]);
    for (i, &field) in fields.iter().enumerate() {
        let ok = match i {
            // After UNKNOWN the receiver must ignore anything up to the CRLF.
            0 if field == b"UNKNOWN" && i != cut => return Ok(None),
            0 if i == cut => [&b"TCP4"[..], b"TCP6", b"UNKNOWN"]
                .iter()
                .any(|w| w.starts_with(field)),
            0 => {
                v6 = v1_family(field);
                v6.is_some()
            }
            // Loose for addresses: IPv6 text is at most 45 characters (with an IPv4 tail).
            1 | 2 if i == cut => {
                field.len() <= 45
                    && field
                        .iter()
                        .all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
            }
            1 | 2 => {
                ips[i - 1] = v1_address(field, v6 == Some(true));
                ips[i - 1].is_some()
            }
            // Every prefix of a valid port is a valid port.
            3 | 4 if i == cut => field.is_empty() || v1_port(field).is_some(),
            3 | 4 => {
                ports[i - 3] = v1_port(field);
                ports[i - 3].is_some()
            }
            _ => return Err(V1_FIELD_COUNT),
        };
        if !ok {
            return Err(V1_ERRORS[i]);
        }
    }
    match (ips, ports) {
        _ if !complete => Ok(None),
        ([Some(src), Some(dst)], [Some(sport), Some(dport)]) => Ok(Some((
            SocketAddr::new(src, sport),
            SocketAddr::new(dst, dport),
        ))),
        _ => Err(V1_FIELD_COUNT),
    }
}

/// Whether the family word announces IPv6.
fn v1_family(word: &[u8]) -> Option<bool> {
    match word {
        b"TCP4" => Some(false),
        b"TCP6" => Some(true),
        _ => None,
    }
}

/// An address of the announced family (std's parser refuses IPv4 octets with leading zeros,
/// as the spec asks).
fn v1_address(field: &[u8], v6: bool) -> Option<IpAddr> {
    let text = std::str::from_utf8(field).ok()?;
    if v6 {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// Decimal digits only (no sign), no leading zero, at most 65535.
fn v1_port(field: &[u8]) -> Option<u16> {
    let leading_zero = field.len() > 1 && field.first() == Some(&b'0');
    if leading_zero || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// `buf` starts with the v2 signature. Each fixed byte is checked as soon as it is there.
fn parse_v2(buf: &[u8]) -> Result<(ProxyHeader, usize), ParseError> {
    // Version 2 in the high nibble; command LOCAL (0) or PROXY (1) in the low one.
    if let Some(&ver_cmd) = buf.get(12)
        && ver_cmd != V2_LOCAL
        && ver_cmd != V2_PROXY
    {
        return Err(ParseError::Invalid(format!(
            "PROXY v2 header: version/command {ver_cmd:#04x} is not 2/LOCAL or 2/PROXY"
        )));
    }
    // LOCAL ignores the family byte; PROXY knows families 0-3 (UNSPEC, INET, INET6, UNIX)
    // and transports 0-2 (UNSPEC, STREAM, DGRAM).
    if let Some(&[V2_PROXY, family]) = buf.get(12..14)
        && (family >> 4 > 3 || family & 0xf > 2)
    {
        return Err(ParseError::Invalid(format!(
            "PROXY v2 header: unknown address family/protocol {family:#04x}"
        )));
    }
    let Some(&[hi, lo]) = buf.get(14..V2_FIXED) else {
        return Err(ParseError::Incomplete);
    };
    let total = V2_FIXED + usize::from(u16::from_be_bytes([hi, lo]));
    if total > MAX_HEADER {
        return Err(ParseError::Invalid(format!(
            "PROXY v2 header: {total} bytes, over the {MAX_HEADER}-byte limit"
        )));
    }
    let Some(block) = buf.get(V2_FIXED..total) else {
        return Err(ParseError::Incomplete);
    };
    let header = match buf.get(12..14) {
        Some(&[V2_PROXY, family]) => v2_proxy(family, block)?,
        // LOCAL: the receiver discards the whole block.
        _ => no_addresses(Version::V2),
    };
    Ok((header, total))
}

/// The block after a PROXY command's 16 fixed bytes: addresses, then TLVs.
fn v2_proxy(family: u8, block: &[u8]) -> Result<ProxyHeader, ParseError> {
    let mut header = no_addresses(Version::V2);
    let (address_family, transport) = (family >> 4, family & 0xf);
    let address_len = match address_family {
        1 => 12,
        2 => 36,
        3 => 216,
        // AF_UNSPEC: the receiver should ignore the block.
        _ => return Ok(header),
    };
    let (addresses, mut tlvs) = block
        .split_at_checked(address_len)
        .ok_or_else(|| invalid("PROXY v2 header: address block too short for its family"))?;
    // AF_UNIX paths, or an unspecified transport, are of no use to the caller.
    if address_family != 3 && transport != 0 {
        header.addresses = v2_addresses(addresses, address_family == 2);
    }
    let mut authority = None;
    while let Some([kind, hi, lo]) = take::<3>(&mut tlvs) {
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let (value, rest) = tlvs
            .split_at_checked(len)
            .ok_or_else(|| invalid("PROXY v2 header: a TLV runs past the end"))?;
        if kind == TLV_AUTHORITY && authority.is_none() {
            authority = Some(value);
        }
        tlvs = rest;
    }
    if !tlvs.is_empty() {
        return Err(invalid("PROXY v2 header: a TLV runs past the end"));
    }
    header.authority = authority
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned);
    Ok(header)
}

fn v2_addresses(mut bytes: &[u8], v6: bool) -> Option<(SocketAddr, SocketAddr)> {
    let b = &mut bytes;
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (take::<16>(b)?.into(), take::<16>(b)?.into())
    } else {
        (take::<4>(b)?.into(), take::<4>(b)?.into())
    };
    let src_port = u16::from_be_bytes(take(b)?);
    let dst_port = u16::from_be_bytes(take(b)?);
    Some((
        SocketAddr::new(src, src_port),
        SocketAddr::new(dst, dst_port),
    ))
}

/// Takes the next `N` bytes off the front of `bytes`.
fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    *bytes = rest;
    Some(*head)
}

/// Encodes a header announcing a TCP connection from `source` to `destination`.
///
/// If one address is IPv4 and the other IPv6, the IPv4 one is sent IPv4-mapped
/// (`::ffff:a.b.c.d`) so both are IPv6. v2 carries `authority` as a PP2_TYPE_AUTHORITY TLV
/// (left out if it would make the header longer than [`MAX_HEADER`]; no host name is that
/// long); v1 has no place for it.
pub fn encode(
    version: Version,
    source: SocketAddr,
    destination: SocketAddr,
    authority: Option<&str>,
) -> Vec<u8> {
    match version {
        Version::V1 => encode_v1(source, destination),
        Version::V2 => encode_v2(source, destination, authority, STREAM),
    }
}

/// Like [`encode`], for a UDP flow (v2's DGRAM); None for v1, which has no UDP.
pub fn encode_dgram(
    version: Version,
    source: SocketAddr,
    destination: SocketAddr,
    authority: Option<&str>,
) -> Option<Vec<u8>> {
    match version {
        Version::V1 => None,
        Version::V2 => Some(encode_v2(source, destination, authority, DGRAM)),
    }
}

/// A header that carries no addresses, for health checks: v1 `PROXY UNKNOWN\r\n`, v2 the
/// LOCAL command with AF_UNSPEC and an empty block.
pub fn encode_local(version: Version) -> Vec<u8> {
    match version {
        Version::V1 => b"PROXY UNKNOWN\r\n".to_vec(),
        Version::V2 => [V2_SIGNATURE, &[V2_LOCAL, 0, 0, 0]].concat(),
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (sport, dport) = (src.port(), dst.port());
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => format!("PROXY TCP4 {s} {d} {sport} {dport}\r\n"),
        (s, d) => format!("PROXY TCP6 {} {} {sport} {dport}\r\n", as_v6(s), as_v6(d)),
    }
    .into_bytes()
}

fn encode_v2(src: SocketAddr, dst: SocketAddr, authority: Option<&str>, protocol: u8) -> Vec<u8> {
    let (family, ips) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (0x10, [s.octets(), d.octets()].concat()),
        (s, d) => (0x20, [as_v6(s).octets(), as_v6(d).octets()].concat()),
    };
    let address_len = ips.len() + 4;
    let authority = authority.filter(|a| V2_FIXED + address_len + 3 + a.len() <= MAX_HEADER);
    let len = address_len + authority.map_or(0, |a| 3 + a.len());
    let mut out = Vec::with_capacity(V2_FIXED + len);
    out.extend_from_slice(V2_SIGNATURE);
    // Both lengths are at most MAX_HEADER, so they fit in a u16.
    out.extend_from_slice(&[V2_PROXY, family | protocol]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&ips);
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    if let Some(authority) = authority {
        out.push(TLV_AUTHORITY);
        out.extend_from_slice(&(authority.len() as u16).to_be_bytes());
        out.extend_from_slice(authority.as_bytes());
    }
    out
}

/// Why [`read_header`] returned no header.
#[derive(Debug)]
pub enum ReadError {
    /// The deadline passed before a complete header arrived.
    Timeout {
        /// Bytes received by then.
        got: usize,
    },
    /// The peer closed the connection before a complete header arrived.
    Closed {
        /// Bytes received before the end.
        got: usize,
    },
    /// The bytes received are not a valid header (the phrase from [`ParseError::Invalid`]).
    Invalid(String),
    /// Reading failed.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Timeout { got } => {
                write!(
                    f,
                    "no complete PROXY header before the timeout ({got} bytes received)"
                )
            }
            ReadError::Closed { got } => {
                write!(
                    f,
                    "connection closed before a complete PROXY header ({got} bytes received)"
                )
            }
            ReadError::Invalid(why) => f.write_str(why),
            ReadError::Io(e) => write!(f, "reading the PROXY header: {e}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads a header from `stream`, giving up after `timeout`.
///
/// Reads in chunks, so it may read past the header: those bytes are returned with it and the
/// caller must treat them as the first bytes of the stream.
pub async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
    timeout: Duration,
) -> Result<(ProxyHeader, Vec<u8>), ReadError> {
    let mut buf = Vec::new();
    let outcome = tokio::time::timeout(timeout, read_until_parsed(stream, &mut buf)).await;
    outcome.unwrap_or(Err(ReadError::Timeout { got: buf.len() }))
}

async fn read_until_parsed<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(ProxyHeader, Vec<u8>), ReadError> {
    let mut chunk = [0; 512];
    loop {
        // `buf` stays under MAX_HEADER + one chunk: parse refuses anything longer.
        match parse(buf) {
            Ok((header, used)) => {
                return Ok((header, buf.get(used..).unwrap_or_default().to_vec()));
            }
            Err(ParseError::Invalid(why)) => return Err(ReadError::Invalid(why)),
            Err(ParseError::Incomplete) => {}
        }
        let n = stream.read(&mut chunk).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Closed { got: buf.len() });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncWriteExt, duplex};

    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A v2 header: signature, then the given version/command, family and block.
    fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let len = (block.len() as u16).to_be_bytes();
        [V2_SIGNATURE, &[ver_cmd, family, len[0], len[1]], block].concat()
    }

    /// A TCP over IPv4 block (192.0.2.1:51000 -> 192.0.2.2:443) followed by `tlvs`.
    fn v4_block(tlvs: &[u8]) -> Vec<u8> {
        [&[192, 0, 2, 1, 192, 0, 2, 2, 0xc7, 0x38, 0x01, 0xbb], tlvs].concat()
    }

    /// Parses `header` followed by other bytes, and checks what it announces.
    fn check(header: &[u8], addresses: Option<(&str, &str)>, authority: Option<&str>) {
        let (parsed, used) = parse(&[header, b"GET / HTTP/1.1\r\n"].concat()).unwrap();
        assert_eq!(used, header.len(), "{header:?}");
        assert_eq!(
            parsed.addresses,
            addresses.map(|(s, d)| (sa(s), sa(d))),
            "{header:?}"
        );
        assert_eq!(parsed.authority.as_deref(), authority, "{header:?}");
        let v1 = header.starts_with(b"PROXY");
        assert_eq!(parsed.version, if v1 { Version::V1 } else { Version::V2 });
    }

    fn is_invalid(buf: &[u8]) -> bool {
        matches!(parse(buf), Err(ParseError::Invalid(_)))
    }

    fn enc(version: Version, src: &str, dst: &str, authority: Option<&str>) -> Vec<u8> {
        encode(version, sa(src), sa(dst), authority)
    }

    async fn read(
        stream: &mut (impl AsyncRead + Unpin),
        secs: f64,
    ) -> Result<(ProxyHeader, Vec<u8>), ReadError> {
        read_header(stream, Duration::from_secs_f64(secs)).await
    }

    const FFFF: &str = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

    #[test]
    fn valid_headers() {
        // The spec's v1 example and its longest lines (104 and 107 bytes).
        let example = Some(("192.168.0.1:56324", "192.168.0.11:443"));
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
        check(line, example, None);
        let max6 = format!("[{FFFF}]:65535");
        let line = format!("PROXY TCP6 {FFFF} {FFFF} 65535 65535\r\n");
        check(line.as_bytes(), Some((&max6, &max6)), None);
        let mapped = Some(("[::ffff:1.2.3.4]:0", "[::1]:1"));
        check(b"PROXY TCP6 ::ffff:1.2.3.4 ::1 0 1\r\n", mapped, None);
        // UNKNOWN: anything may follow up to the CRLF.
        let line = format!("PROXY UNKNOWN {FFFF} {FFFF} 65535 65535\r\n");
        check(line.as_bytes(), None, None);
        check(b"PROXY UNKNOWN\r\n", None, None);
        check(b"PROXY UNKNOWN junk  \r here\r\n", None, None);
        // v2 as the spec lays it out: TCP over IPv4, then a NOOP TLV, the AUTHORITY TLV, a
        // second AUTHORITY (the first one wins) and an empty custom TLV.
        let v4 = Some(("192.0.2.1:51000", "192.0.2.2:443"));
        let tlvs = b"\x04\x00\x02\0\0\x02\x00\x0bexample.com\x02\x00\x01x\xe0\x00\x00";
        check(&v2(0x21, 0x11, &v4_block(tlvs)), v4, Some("example.com"));
        check(&v2(0x21, 0x12, &v4_block(&[])), v4, None);
        check(&v2(0x21, 0x11, &v4_block(b"\x02\x00\x01\xff")), v4, None); // not UTF-8
        let v6 = [&[0x20, 1, 0xd, 0xb8][..], &[0; 27], &[1, 0, 1, 0, 2]].concat();
        let want = Some(("[2001:db8::]:1", "[::1]:2"));
        check(&v2(0x21, 0x21, &v6), want, None);
        // LOCAL: the family byte and the block (even TLV-like junk) are ignored.
        check(&v2(0x20, 0x00, &[]), None, None);
        check(&v2(0x20, 0x11, &v4_block(b"\x02\x00\x01a")), None, None);
        check(&v2(0x20, 0xff, b"\x02\xff\xff"), None, None);
        // PROXY with AF_UNSPEC, AF_UNIX or an unspecified transport: no addresses.
        check(&v2(0x21, 0x00, b"whatever"), None, None);
        check(&v2(0x21, 0x31, &[0; 216]), None, None);
        check(&v2(0x21, 0x32, &[0; 216]), None, None);
        let unspec_transport = v2(0x21, 0x10, &v4_block(b"\x02\x00\x01a"));
        check(&unspec_transport, None, Some("a"));
    }

    #[test]
    fn round_trips() {
        let cases = [
            ("192.0.2.1:51000", "198.51.100.7:443", None),
            ("[2001:db8::1]:1", "[2001:db8::2]:65535", Some("a.example")),
            ("[2001:db8::1%3]:0", "[::]:80", Some("")),
            // Mixed families: the IPv4 side is sent IPv4-mapped.
            ("192.0.2.1:1234", "[2001:db8::2]:443", Some("a.example")),
            ("[2001:db8::1]:1234", "10.0.0.1:443", None),
        ];
        for (src, dst, authority) in cases {
            let (src, dst) = (sa(src), sa(dst));
            let both_v4 = src.is_ipv4() && dst.is_ipv4();
            let mapped = |a: SocketAddr| SocketAddr::new(as_v6(a.ip()).into(), a.port());
            let mapped = |a: SocketAddr| if both_v4 { a } else { mapped(a) };
            let want = Some((mapped(src), mapped(dst)));
            for version in [Version::V1, Version::V2] {
                let buf = encode(version, src, dst, authority);
                let (header, used) = parse(&buf).unwrap();
                assert_eq!((header.addresses, used), (want, buf.len()), "{buf:?}");
                let sent = authority.filter(|_| version == Version::V2);
                assert_eq!(header.authority.as_deref(), sent);
            }
            let buf = encode_dgram(Version::V2, src, dst, authority).unwrap();
            assert_eq!(buf[13] & 0xf, DGRAM);
            assert_eq!(parse(&buf).unwrap().0.addresses, want);
        }
        let (src, dst) = (sa("[::1]:1"), sa("[::1]:2"));
        assert_eq!(encode_dgram(Version::V1, src, dst, None), None);
        let long = "x".repeat(MAX_HEADER);
        let buf = encode(Version::V2, src, dst, Some(&long));
        assert_eq!(parse(&buf).unwrap().0.authority, None, "too long to send");
    }

    #[test]
    fn exact_encodings() {
        let buf = enc(Version::V1, "10.0.0.1:1234", "[2001:db8::1]:443", Some("x"));
        assert_eq!(buf, b"PROXY TCP6 ::ffff:10.0.0.1 2001:db8::1 1234 443\r\n");
        let buf = enc(Version::V2, "192.0.2.1:51000", "192.0.2.2:443", Some("a"));
        assert_eq!(buf, v2(0x21, 0x11, &v4_block(b"\x02\x00\x01a")));
        assert_eq!(encode_local(Version::V1), b"PROXY UNKNOWN\r\n");
        assert_eq!(encode_local(Version::V2), v2(0x20, 0x00, &[]));
        for version in [Version::V1, Version::V2] {
            let (header, _) = parse(&encode_local(version)).unwrap();
            assert_eq!(header, no_addresses(version));
        }
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let headers = [
            enc(Version::V1, "192.0.2.1:51000", "192.0.2.2:443", None),
            enc(
                Version::V1,
                "[2001:db8::1]:0",
                "[::ffff:1.2.3.4]:65535",
                None,
            ),
            format!("PROXY TCP6 {FFFF} {FFFF} 65535 65535\r\n").into_bytes(),
            b"PROXY UNKNOWN 1 2 3\r\n".to_vec(),
            enc(
                Version::V2,
                "192.0.2.1:51000",
                "[2001:db8::2]:443",
                Some("a.b"),
            ),
            encode_local(Version::V2),
            v2(0x21, 0x31, &[7; 216]),
        ];
        for header in headers {
            for n in 0..header.len() {
                let prefix = &header[..n];
                assert_eq!(parse(prefix), Err(ParseError::Incomplete), "{prefix:?}");
            }
        }
    }

    #[test]
    fn invalid_v1() {
        let cases: &[&[u8]] = &[
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP6 ::1 ::1%2 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
            b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
            b"PROXY\r\n",
            b"GET / HTTP/1.1\r\n",
            // Refused before the CRLF arrives: no valid header starts this way.
            b"PROXY TCP5",
            b"PROXY TCP4 1.2.3.4x",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r",
        ];
        for case in cases {
            assert!(is_invalid(case), "{:?}", String::from_utf8_lossy(case));
        }
        // 107 bytes without a CRLF, and a CRLF one byte too late.
        let long = format!("PROXY UNKNOWN {}", "x".repeat(93));
        assert!(is_invalid(long.as_bytes()));
        assert!(is_invalid(format!("{}\r\n", &long[..106]).as_bytes()));
        assert!(parse(format!("{}\r\n", &long[..105]).as_bytes()).is_ok());
        let bad_port = parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n");
        assert_eq!(bad_port, Err(invalid("PROXY v1 header: bad source port")));
    }

    #[test]
    fn invalid_v2() {
        let mut bad_signature = v2(0x21, 0x11, &v4_block(&[]));
        bad_signature[11] = b'\r';
        let too_long = [V2_SIGNATURE, &[0x21, 0x11], &4081u16.to_be_bytes()].concat();
        let cases = [
            bad_signature,
            v2(0x11, 0x11, &v4_block(&[])), // version 1
            v2(0x22, 0x11, &v4_block(&[])), // command 2
            v2(0x21, 0x41, &v4_block(&[])),
            v2(0x21, 0x13, &v4_block(&[])),
            too_long,
            v2(0x21, 0x11, &v4_block(&[])[..11]),
            v2(0x21, 0x21, &[0; 35]),
            v2(0x21, 0x31, &[0; 215]),
            v2(0x21, 0x11, &v4_block(b"\x02\x00\x05ab")), // TLV past the end
            v2(0x21, 0x11, &v4_block(b"\x02\x00")),
            v2(0x31, 0x11, &[])[..13].to_vec(), // refused as soon as the byte is there
        ];
        for case in cases {
            assert!(is_invalid(&case), "{case:?}");
        }
        let max = [V2_SIGNATURE, &[0x21, 0x11], &4080u16.to_be_bytes()].concat();
        assert_eq!(parse(&max), Err(ParseError::Incomplete));
    }

    #[test]
    fn signature_of_every_prefix() {
        for sig in [V1_START, V2_SIGNATURE] {
            for n in 0..sig.len() {
                assert_eq!(signature(&sig[..n]), Signature::Maybe);
            }
            assert_eq!(signature(sig), Signature::Yes);
            assert_eq!(signature(&[sig, b"more"].concat()), Signature::Yes);
        }
        let others: [&[u8]; 5] = [
            b"PROXY\r",
            b"GET ",
            b"\r\n\r\n\0\r\nQUIT\r",
            b"\x16\x03",
            b"proxy ",
        ];
        for buf in others {
            assert_eq!(signature(buf), Signature::No, "{buf:?}");
        }
    }

    /// The fuzz target's seeds are real headers (some followed by other bytes).
    #[test]
    fn fuzz_seeds_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/proxy_header");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let seed = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(parse(&seed).is_ok(), "{seed:?}");
            seen += 1;
        }
        assert!(seen >= 5);
    }

    const HEADER: &[u8] = b"PROXY TCP4 192.0.2.1 192.0.2.2 51000 443\r\n";

    #[tokio::test]
    async fn read_header_returns_the_bytes_read_past_it() {
        let (mut client, mut server) = duplex(1024);
        let sent = [HEADER, b"hello"].concat();
        client.write_all(&sent).await.unwrap();
        let (header, rest) = read(&mut server, 5.0).await.unwrap();
        assert_eq!(header.addresses.unwrap().0, sa("192.0.2.1:51000"));
        assert_eq!(rest, b"hello");
    }

    #[tokio::test]
    async fn read_header_split_across_writes() {
        let (mut client, mut server) = duplex(1024);
        let header = enc(Version::V2, "[::1]:1", "[::1]:2", Some("example.com"));
        let reader = tokio::spawn(async move { read(&mut server, 5.0).await });
        for piece in header.chunks(7) {
            client.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        let (parsed, rest) = reader.await.unwrap().unwrap();
        assert_eq!(parsed.authority.as_deref(), Some("example.com"));
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn read_header_timeout_closed_and_invalid() {
        // This crate's tokio has no test-util (paused time): a real 100 ms.
        let (mut client, mut server) = duplex(1024);
        client.write_all(&HEADER[..12]).await.unwrap();
        let err = read(&mut server, 0.1).await.unwrap_err();
        assert!(matches!(err, ReadError::Timeout { got: 12 }), "{err:?}");
        let want = "no complete PROXY header before the timeout (12 bytes received)";
        assert_eq!(err.to_string(), want);

        let (mut client, mut server) = duplex(1024);
        client.write_all(&HEADER[..20]).await.unwrap();
        drop(client);
        let err = read(&mut server, 5.0).await.unwrap_err();
        assert!(matches!(err, ReadError::Closed { got: 20 }), "{err:?}");

        let mut stream = &b"SSH-2.0-OpenSSH_9.6\r\n"[..];
        let err = read(&mut stream, 5.0).await.unwrap_err();
        assert_eq!(err.to_string(), "not a PROXY protocol header");
    }
}
