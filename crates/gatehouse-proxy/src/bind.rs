//! Opening listening sockets.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Backlog of pending connections per listening socket.
const BACKLOG: i32 = 1024;

/// Binds a TCP listening socket on `addr`.
///
/// - `SO_REUSEADDR`, so a restart does not wait for TIME_WAIT sockets;
/// - `IP_FREEBIND` / `IPV6_FREEBIND`, so a virtual IP that another node holds right now can be
///   listened on already, with no `net.ipv4.ip_nonlocal_bind` sysctl;
/// - `IPV6_V6ONLY` on IPv6 sockets, so `::` and `0.0.0.0` are two separate listeners, as in
///   nginx.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}
