//! Opening sockets: listening ones (TCP and UDP), and the connected UDP sockets that talk to
//! one endpoint.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket};

/// Backlog of pending connections per listening socket.
const BACKLOG: i32 = 1024;

/// Receive buffer asked for on UDP sockets: room for bursts while the receive loop is busy.
/// The kernel caps it at `net.core.rmem_max`, which is fine.
const UDP_RECV_BUFFER: usize = 4 << 20;

/// Binds a TCP listening socket on `addr`.
///
/// - `SO_REUSEADDR`, so a restart does not wait for TIME_WAIT sockets;
/// - `IP_FREEBIND` / `IPV6_FREEBIND`, so a virtual IP that another node holds right now can be
///   listened on already, with no `net.ipv4.ip_nonlocal_bind` sysctl;
/// - `IPV6_V6ONLY` on IPv6 sockets, so `::` and `0.0.0.0` are two separate listeners, as in
///   nginx.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    set_options(&socket, addr, true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Binds a UDP socket on `addr`: `IP_FREEBIND` and `IPV6_V6ONLY` as [`bind_tcp`], and a
/// larger receive buffer (4 MiB asked, best effort).
///
/// No `SO_REUSEADDR`: UDP has no TIME_WAIT to wait out, and on Linux two UDP sockets with it
/// may bind the same address and port, the newer one silently taking the datagrams. Without
/// it, a second Gatehouse on the same port fails with "address in use" as it should.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    set_options(&socket, addr, false)?;
    // Best effort: without it the default buffer only drops more datagrams under bursts.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

fn set_options(socket: &Socket, addr: SocketAddr, reuse_address: bool) -> io::Result<()> {
    if reuse_address {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_nonblocking(true)
}

/// A UDP socket for talking to `peer` alone: bound to the unspecified address of its family
/// (port chosen by the kernel) and `connect()`ed to it, so that only `peer`'s datagrams arrive
/// on it and an ICMP "port unreachable" from it is reported as `ECONNREFUSED`. None of these
/// calls waits on the network.
pub(crate) fn connect_udp(peer: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = match peer {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
    socket.connect(peer)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Waits until a connected UDP socket has a datagram to read, or returns its pending error (an
/// ICMP "port unreachable" is `ECONNREFUSED`). `readable()` alone would not wake for the error:
/// epoll reports it as `EPOLLERR`, not as readable.
pub(crate) async fn readable_or_error(socket: &UdpSocket) -> io::Result<()> {
    loop {
        let ready = socket.ready(Interest::READABLE | Interest::ERROR).await?;
        if ready.is_error() {
            if let Some(e) = socket.take_error()? {
                return Err(e);
            }
            // Already taken (a send returned it): clear tokio's error readiness, or every
            // wait from now on would return at once.
            let _ = socket.try_io(Interest::ERROR, || {
                Err::<(), _>(ErrorKind::WouldBlock.into())
            });
        }
        if ready.is_readable() {
            return Ok(());
        }
    }
}
