//! The raw VRRP socket (IP protocol 112) of one instance on one interface.
//!
//! RFC 5798 on the wire, and how this socket gets there:
//! - advertisements go to 224.0.0.18 / ff02::12 (or to each unicast peer), with TTL / hop
//!   limit 255 (receivers drop anything else, so an advertisement never crossed a router);
//! - the IPv4 source is the interface's primary address, the IPv6 source its link-local
//!   address. The socket is *not* bound to that address: a raw socket bound to an address only
//!   receives packets sent to it, which would exclude the group. The source is set per message
//!   instead (`IP_PKTINFO` / `IPV6_PKTINFO`), which also pins the outgoing interface;
//! - `SO_BINDTODEVICE` keeps other interfaces' advertisements out, `IP_MULTICAST_ALL` /
//!   `IPV6_MULTICAST_ALL` off keeps out groups joined by other sockets of the host (a unicast
//!   instance then receives unicast only), multicast loop off keeps our own out;
//! - IPv4 raw sockets deliver the IP header, which [`VrrpSocket::recv`] validates and strips
//!   (the TTL and destination are read from it); IPv6 ones do not, the hop limit and destination
//!   come as `IPV6_HOPLIMIT` / `IPV6_PKTINFO` control messages.
//!
//! The checksum is not the kernel's business here: `packet` computes it (with
//! [`VrrpSocket::local_address`] in the pseudo-header) and checks it.
//!
//! The socket is registered with Tokio's reactor through a `tokio::net::UdpSocket`, used only as
//! a safe holder of a non-blocking descriptor (`AsyncFd::new` is deprecated for I/O-safety
//! reasons and its replacement is `unsafe`, which this workspace forbids); every read and write
//! goes through `nix` inside `async_io`, so no UDP semantics are involved.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::libc;
use nix::net::if_::if_nametoindex;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, recv, recvmsg, sendmsg,
    setsockopt, sockopt,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::Interest;

use super::{Family, context, failure, netlink};

/// The IP protocol number of VRRP.
pub const VRRP_PROTOCOL: u8 = 112;
/// The IPv4 VRRP multicast group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 VRRP multicast group.
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The TTL / hop limit VRRP sends with and requires (RFC 5798 section 5.1.1.3 / 5.1.2.3).
pub const VRRP_TTL: u8 = 255;

/// DSCP class selector 6 (network control), as keepalived and routers send VRRP.
const TOS_NETWORK_CONTROL: u32 = 0xc0;

/// The raw VRRP socket (IP protocol 112) of one instance on one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    /// The raw socket (see the module documentation for why a `UdpSocket`).
    socket: tokio::net::UdpSocket,
    family: Family,
    interface: String,
    index: u32,
    local: IpAddr,
    /// The group, or the unicast peers.
    destinations: Vec<IpAddr>,
}

/// One VRRP message received by [`VrrpSocket::recv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The sender's address (IPv6: without scope; it came in on the socket's interface).
    pub source: IpAddr,
    /// Where it was sent: the group or this node's unicast address; `None` if the kernel did not
    /// say (it always does on Linux).
    pub destination: Option<IpAddr>,
    /// The TTL (IPv4) or hop limit (IPv6) it arrived with. RFC 5798: discard unless 255.
    pub ttl: u8,
    /// The VRRP message is `buf[..len]` (for IPv4, the IP header has been stripped and the
    /// message moved to the start of the buffer).
    pub len: usize,
}

impl VrrpSocket {
    /// Opens it: bound to the interface (`SO_BINDTODEVICE`), the group 224.0.0.18 / ff02::12
    /// joined on that interface (unless `unicast_peers` is non-empty: then messages go to each
    /// peer and only unicast is received), outgoing TTL / hop limit 255, multicast loop off,
    /// source the interface's primary IPv4 address / its IPv6 link-local address (looked up now:
    /// reopen the socket if it changes). Needs `CAP_NET_RAW` and a Tokio runtime with I/O
    /// enabled.
    ///
    /// Fails, among other reasons, when the interface does not exist, has no IPv4 address, or
    /// has no usable IPv6 link-local address yet (still tentative during duplicate address
    /// detection, the first second or two after the link comes up): the caller retries.
    pub fn open(
        family: Family,
        interface: &str,
        unicast_peers: &[IpAddr],
    ) -> io::Result<VrrpSocket> {
        let what = format!("opening the {family} VRRP socket on {interface}");
        if let Some(peer) = unicast_peers.iter().find(|p| Family::of(p) != family) {
            return Err(failure(
                io::ErrorKind::InvalidInput,
                format!("{what}: unicast peer {peer} is not an {family} address"),
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(failure(
                io::ErrorKind::Other,
                format!("{what}: not called from a Tokio runtime"),
            ));
        }
        let index = if_nametoindex(interface).map_err(|e| context(&what, e))?;
        let local = netlink::source_address(family, index, interface)?;
        let joined = unicast_peers.is_empty();
        let socket = match family {
            Family::V4 => socket_v4(interface, index, joined),
            Family::V6 => socket_v6(interface, index, joined),
        }
        .map_err(|e| context(&what, e))?;
        let socket = tokio::net::UdpSocket::from_std(socket.into())
            .map_err(|e| context(format!("{what}: registering it with the Tokio reactor"), e))?;
        let destinations = if joined {
            vec![match family {
                Family::V4 => IpAddr::V4(GROUP_V4),
                Family::V6 => IpAddr::V6(GROUP_V6),
            }]
        } else {
            unicast_peers.to_vec()
        };
        Ok(VrrpSocket {
            socket,
            family,
            interface: interface.to_owned(),
            index,
            local,
            destinations,
        })
    }

    /// The source address used (the checksum pseudo-header and the master election tie-break
    /// need it): the interface's primary IPv4 address or its IPv6 link-local address.
    pub fn local_address(&self) -> IpAddr {
        self.local
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The interface it is bound to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Sends one VRRP message (the VRRP part only; the kernel adds the IP header) to the group
    /// or to each unicast peer. With several peers, a failure for one does not stop the others;
    /// the first failure is returned.
    pub async fn send(&self, message: &[u8]) -> io::Result<()> {
        let mut first_error = None;
        for &destination in &self.destinations {
            if let Err(e) = self.send_to(message, destination).await {
                let what = format!(
                    "sending a VRRP message from {} to {destination} on {}",
                    self.local, self.interface
                );
                first_error.get_or_insert(context(what, e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn send_to(&self, message: &[u8], destination: IpAddr) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        let iov = [IoSlice::new(message)];
        let sent = self
            .socket
            .async_io(Interest::WRITABLE, || {
                let sent = match (self.local, destination) {
                    (IpAddr::V4(local), IpAddr::V4(destination)) => {
                        let info = libc::in_pktinfo {
                            ipi_ifindex: i32::try_from(self.index).unwrap_or(0),
                            ipi_spec_dst: libc::in_addr {
                                s_addr: u32::from(local).to_be(),
                            },
                            ipi_addr: libc::in_addr { s_addr: 0 },
                        };
                        let to = SockaddrIn::from(SocketAddrV4::new(destination, 0));
                        sendmsg(
                            fd,
                            &iov,
                            &[ControlMessage::Ipv4PacketInfo(&info)],
                            MsgFlags::empty(),
                            Some(&to),
                        )
                    }
                    (IpAddr::V6(local), IpAddr::V6(destination)) => {
                        let info = libc::in6_pktinfo {
                            ipi6_addr: libc::in6_addr {
                                s6_addr: local.octets(),
                            },
                            ipi6_ifindex: self.index,
                        };
                        let scope =
                            if destination.is_multicast() || destination.is_unicast_link_local() {
                                self.index
                            } else {
                                0
                            };
                        let to = SockaddrIn6::from(SocketAddrV6::new(destination, 0, 0, scope));
                        sendmsg(
                            fd,
                            &iov,
                            &[ControlMessage::Ipv6PacketInfo(&info)],
                            MsgFlags::empty(),
                            Some(&to),
                        )
                    }
                    _ => Err(Errno::EAFNOSUPPORT),
                };
                sent.map_err(io::Error::from)
            })
            .await?;
        if sent != message.len() {
            return Err(failure(
                io::ErrorKind::WriteZero,
                format!("only {sent} of {} bytes sent", message.len()),
            ));
        }
        Ok(())
    }

    /// Receives one VRRP message into `buf` (1500 bytes is plenty): its source, destination,
    /// TTL / hop limit, and length (the message is `buf[..len]`, without the IPv4 header).
    ///
    /// What cannot be a VRRP message is dropped here and the wait goes on (logged at debug):
    /// a message longer than `buf`, an IPv4 packet whose header lengths do not add up, an IPv6
    /// one without its hop limit. An error is the socket's.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.socket.as_raw_fd();
        loop {
            let received = self
                .socket
                .async_io(Interest::READABLE, || match self.family {
                    Family::V4 => receive_v4(fd, buf),
                    Family::V6 => receive_v6(fd, buf),
                })
                .await
                .map_err(|e| {
                    context(
                        format!("receiving on the VRRP socket of {}", self.interface),
                        e,
                    )
                })?;
            match received {
                Ok(received) => return Ok(received),
                Err(reason) => {
                    tracing::debug!(interface = %self.interface, "dropping a packet: {reason}");
                }
            }
        }
    }
}

/// The IPv4 raw socket, configured; `joined`: the group joined.
fn socket_v4(interface: &str, index: u32, joined: bool) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(VRRP_PROTOCOL))),
    )
    .map_err(|e| context("creating a raw IPv4 socket for protocol 112", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| context("O_NONBLOCK", e))?;
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(|e| context("SO_BINDTODEVICE", e))?;
    socket
        .set_multicast_ttl_v4(u32::from(VRRP_TTL))
        .map_err(|e| context("IP_MULTICAST_TTL", e))?;
    socket
        .set_ttl_v4(u32::from(VRRP_TTL))
        .map_err(|e| context("IP_TTL", e))?;
    socket
        .set_multicast_loop_v4(false)
        .map_err(|e| context("IP_MULTICAST_LOOP", e))?;
    socket
        .set_multicast_all_v4(false)
        .map_err(|e| context("IP_MULTICAST_ALL", e))?;
    socket
        .set_tos_v4(TOS_NETWORK_CONTROL)
        .map_err(|e| context("IP_TOS", e))?;
    if joined {
        socket
            .join_multicast_v4_n(&GROUP_V4, &InterfaceIndexOrAddress::Index(index))
            .map_err(|e| context(format!("joining {GROUP_V4}"), e))?;
    }
    Ok(socket)
}

/// The IPv6 raw socket, configured; `joined`: the group joined.
fn socket_v6(interface: &str, index: u32, joined: bool) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::IPV6,
        Type::RAW,
        Some(Protocol::from(i32::from(VRRP_PROTOCOL))),
    )
    .map_err(|e| context("creating a raw IPv6 socket for protocol 112", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| context("O_NONBLOCK", e))?;
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(|e| context("SO_BINDTODEVICE", e))?;
    socket
        .set_multicast_if_v6(index)
        .map_err(|e| context("IPV6_MULTICAST_IF", e))?;
    socket
        .set_multicast_hops_v6(u32::from(VRRP_TTL))
        .map_err(|e| context("IPV6_MULTICAST_HOPS", e))?;
    socket
        .set_unicast_hops_v6(u32::from(VRRP_TTL))
        .map_err(|e| context("IPV6_UNICAST_HOPS", e))?;
    socket
        .set_multicast_loop_v6(false)
        .map_err(|e| context("IPV6_MULTICAST_LOOP", e))?;
    // Linux 4.20 and later; without it, groups other sockets joined on the interface also
    // arrive (harmless: `Received::destination` tells them apart).
    if let Err(e) = socket.set_multicast_all_v6(false) {
        tracing::debug!(interface, "IPV6_MULTICAST_ALL not available: {e}");
    }
    socket
        .set_tclass_v6(TOS_NETWORK_CONTROL)
        .map_err(|e| context("IPV6_TCLASS", e))?;
    socket
        .set_recv_hoplimit_v6(true)
        .map_err(|e| context("IPV6_RECVHOPLIMIT", e))?;
    setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
        .map_err(|e| context("IPV6_RECVPKTINFO", e))?;
    if joined {
        socket
            .join_multicast_v6(&GROUP_V6, index)
            .map_err(|e| context(format!("joining {GROUP_V6}"), e))?;
    }
    Ok(socket)
}

/// Why a received packet was dropped.
type Dropped = String;

/// One `recv` on the IPv4 socket: `Ok(Err(_))` for a packet that is dropped.
fn receive_v4(fd: i32, buf: &mut [u8]) -> io::Result<Result<Received, Dropped>> {
    let length = recv(fd, buf, MsgFlags::MSG_TRUNC)?;
    if length > buf.len() {
        return Ok(Err(format!(
            "a {length}-byte packet does not fit the {}-byte buffer",
            buf.len()
        )));
    }
    Ok(strip_ipv4_header(buf, length))
}

/// Validates the IPv4 header of the packet in `buf[..length]` (as an IPv4 raw socket delivers
/// it), reads the addresses and TTL from it and moves the VRRP message to the start of `buf`.
pub(crate) fn strip_ipv4_header(buf: &mut [u8], length: usize) -> Result<Received, Dropped> {
    let packet = buf
        .get(..length)
        .ok_or_else(|| "length beyond the buffer".to_owned())?;
    if packet.len() < 20 {
        return Err(format!("{length} bytes is shorter than an IPv4 header"));
    }
    if packet[0] >> 4 != 4 {
        return Err(format!("IP version {}, not 4", packet[0] >> 4));
    }
    let header = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if header < 20 || header > total || total > length {
        return Err(format!(
            "inconsistent IPv4 lengths (header {header}, total {total}, received {length})"
        ));
    }
    if packet[9] != VRRP_PROTOCOL {
        return Err(format!("IP protocol {}, not VRRP", packet[9]));
    }
    let ttl = packet[8];
    let source = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let destination = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    buf.copy_within(header..total, 0);
    Ok(Received {
        source: IpAddr::V4(source),
        destination: Some(IpAddr::V4(destination)),
        ttl,
        len: total - header,
    })
}

/// One `recvmsg` on the IPv6 socket: `Ok(Err(_))` for a packet that is dropped.
fn receive_v6(fd: i32, buf: &mut [u8]) -> io::Result<Result<Received, Dropped>> {
    let capacity = buf.len();
    let mut control = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut control), MsgFlags::empty())?;
    if message.flags.contains(MsgFlags::MSG_TRUNC) {
        return Ok(Err(format!(
            "a packet does not fit the {capacity}-byte buffer"
        )));
    }
    let Some(source) = message.address.map(|a| a.ip()) else {
        return Ok(Err("no source address".to_owned()));
    };
    let mut ttl = None;
    let mut destination = None;
    if let Ok(messages) = message.cmsgs() {
        for control in messages {
            match control {
                ControlMessageOwned::Ipv6HopLimit(hops) => ttl = u8::try_from(hops).ok(),
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
                _ => {}
            }
        }
    }
    let Some(ttl) = ttl else {
        return Ok(Err(format!("no hop limit for a packet from {source}")));
    };
    Ok(Ok(Received {
        source: IpAddr::V6(source),
        destination,
        ttl,
        len: message.bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_packet(ttl: u8, payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).unwrap_or(u16::MAX);
        let mut packet = vec![0x45, 0xc0];
        packet.extend_from_slice(&total.to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 0, ttl, VRRP_PROTOCOL, 0, 0]);
        packet.extend_from_slice(&[192, 0, 2, 1, 224, 0, 0, 18]);
        packet.extend_from_slice(payload);
        packet
    }

    /// Type-checked, never run: the instance runner spawns these on a multi-threaded runtime.
    #[allow(dead_code)]
    fn futures_are_send(socket: &VrrpSocket, buf: &mut [u8]) {
        fn is_send<T: Send>(_: &T) {}
        is_send(&socket.send(&[]));
        is_send(&socket.recv(buf));
        is_send(&crate::net::add_address(
            "lo",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            8,
        ));
        is_send(&crate::net::remove_address(
            "lo",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            8,
        ));
    }

    #[test]
    fn strips_a_valid_header() {
        let mut buf = ipv4_packet(255, b"vrrp!");
        buf.resize(64, 0);
        let length = 25;
        let received = strip_ipv4_header(&mut buf, length);
        assert_eq!(
            received,
            Ok(Received {
                source: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                destination: Some(IpAddr::V4(GROUP_V4)),
                ttl: 255,
                len: 5,
            })
        );
        assert_eq!(&buf[..5], b"vrrp!");
    }

    #[test]
    fn honours_options_and_total_length() {
        // IHL 6 (one option word), and two bytes of trailing garbage beyond the total length.
        let mut buf = ipv4_packet(64, &[0, 0, 0, 0, 1, 2, 3]);
        buf[0] = 0x46;
        buf[3] = 24 + 3;
        buf.extend_from_slice(&[9, 9]);
        let length = buf.len();
        let received = strip_ipv4_header(&mut buf, length);
        assert_eq!(received.map(|r| (r.ttl, r.len)), Ok((64, 3)));
        assert_eq!(&buf[..3], &[1, 2, 3]);
    }

    #[test]
    fn rejects_inconsistent_headers() {
        type Mangle = fn(&mut Vec<u8>);
        let cases: [(&str, Mangle); 7] = [
            ("short", |p| p.truncate(19)),
            ("version", |p| p[0] = 0x65),
            ("ihl below 5", |p| p[0] = 0x44),
            ("ihl beyond total", |p| p[0] = 0x4f),
            ("total beyond received", |p| p[3] = 200),
            ("total below header", |p| p[3] = 10),
            ("protocol", |p| p[9] = 17),
        ];
        for (name, mangle) in cases {
            let mut packet = ipv4_packet(255, b"abcd");
            mangle(&mut packet);
            let length = packet.len();
            assert!(strip_ipv4_header(&mut packet, length).is_err(), "{name}");
        }
    }
}
