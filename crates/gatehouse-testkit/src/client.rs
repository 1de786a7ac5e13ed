//! Clients: connect through Gatehouse and learn which backend answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `addr` with timeouts set.
pub fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(s)
}

/// Connects to `addr` from the source address `from` (any 127.x address works on Linux).
pub fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&addr.into(), TIMEOUT)?;
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    Ok(s)
}

/// Reads one line (without the newline) from `s`, byte by byte so nothing after it is lost.
/// Works on any stream: a `TcpStream`, a [`crate::TlsStream`].
pub fn read_line(s: &mut impl Read) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte)? {
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ => line.push(byte[0]),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Opens a connection that stays open: connects, sends one byte (`1`), and returns the name of
/// the backend that answered with the stream. The backend's echo of `1` is the next byte to
/// read.
pub fn open(addr: SocketAddr) -> std::io::Result<(String, TcpStream)> {
    let mut s = connect(addr)?;
    s.write_all(b"1")?;
    let name = read_line(&mut s)?;
    Ok((name, s))
}

/// Connects, says hello, and returns the name of the backend that answered (an error if the
/// connection was closed without an answer).
pub fn ask(addr: SocketAddr) -> std::io::Result<String> {
    answer(connect(addr)?)
}

/// [`ask`] from a chosen source address.
pub fn ask_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<String> {
    answer(connect_from(from, addr)?)
}

fn answer(mut s: TcpStream) -> std::io::Result<String> {
    s.write_all(b"hello\n")?;
    let mut reader = BufReader::new(s);
    let mut name = String::new();
    reader.read_line(&mut name)?;
    if name.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed without an answer",
        ));
    }
    Ok(name.trim_end().to_owned())
}
