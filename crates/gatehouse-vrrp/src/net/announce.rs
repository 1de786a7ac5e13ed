//! Telling the link that this node now holds the virtual addresses: a gratuitous ARP per IPv4
//! address, an unsolicited neighbour advertisement per IPv6 address (RFC 5798 section 6.4.2,
//! RFC 4861 section 7.2.6). Neighbours and switches then send to this node's MAC address
//! at once instead of waiting for their entries for the old master to expire.
//!
//! - ARP: a request, broadcast, sender and target IP both the address, sender MAC the
//!   interface's, written as a whole Ethernet frame to an `AF_PACKET`/`SOCK_RAW` socket (protocol
//!   0, so it receives nothing). The destination is the interface's `sockaddr_ll` as
//!   `getifaddrs` reports it: for `SOCK_RAW` only its interface index matters.
//! - NA: ICMPv6 type 136 to ff02::1, hop limit 255, Override set, Solicited and Router clear,
//!   with the target link-layer address option; the raw ICMPv6 socket fills in the checksum.
//!   The kernel picks the source (the interface's link-local address).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, sendto, socket};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::link::{self, Link};
use super::{context, failure};

/// An Ethernet frame's minimum length without the FCS (the NIC would pad; veth does not).
const ETHERNET_MIN_FRAME: usize = 60;
/// The all-nodes multicast address, where unsolicited neighbour advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ICMPv6 neighbour advertisement.
const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// The Override flag of a neighbour advertisement (first byte of the flags word).
const NA_OVERRIDE: u8 = 0x20;
/// NDP option: target link-layer address.
const OPTION_TARGET_LINK_LAYER: u8 = 2;

/// Announces that this node now holds `addrs` on `interface`: per IPv4 address a gratuitous ARP
/// (request, broadcast), per IPv6 address an unsolicited neighbour advertisement to ff02::1.
/// One message per address per call (the caller repeats as `Announce` says). A failure for one
/// address does not stop the others; the first is returned.
pub fn announce(interface: &str, addrs: &[IpAddr]) -> io::Result<()> {
    if addrs.is_empty() {
        return Ok(());
    }
    let link = link::require(interface, format!("announcing addresses on {interface}"))?;
    let mac = link.mac().ok_or_else(|| {
        failure(
            io::ErrorKind::Unsupported,
            format!(
                "announcing addresses on {interface}: it is not an Ethernet interface (no MAC \
                 address to announce)"
            ),
        )
    })?;
    let mut arp = None;
    let mut icmp = None;
    let mut first_error = None;
    for &addr in addrs {
        let sent = match addr {
            IpAddr::V4(ip) => {
                let sent = opened(&mut arp, packet_socket)
                    .and_then(|socket| send_arp(socket, &link, mac, ip));
                sent.map_err(|e| {
                    context(
                        format!("sending a gratuitous ARP for {ip} on {interface}"),
                        e,
                    )
                })
            }
            IpAddr::V6(ip) => {
                let sent = opened(&mut icmp, || {
                    icmpv6_socket(interface, link.packet.ifindex())
                })
                .and_then(|socket| send_neighbour_advertisement(socket, &link, mac, ip));
                sent.map_err(|e| {
                    context(
                        format!("sending a neighbour advertisement for {ip} on {interface}"),
                        e,
                    )
                })
            }
        };
        if let Err(e) = sent {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The socket in `slot`, opened by `open` on first use (a failed open is retried next time).
fn opened<T>(slot: &mut Option<T>, open: impl FnOnce() -> io::Result<T>) -> io::Result<&T> {
    if slot.is_none() {
        *slot = Some(open()?);
    }
    slot.as_ref()
        .ok_or_else(|| io::Error::other("socket missing after opening it"))
}

/// A send-only `AF_PACKET`/`SOCK_RAW` socket.
fn packet_socket() -> io::Result<std::os::fd::OwnedFd> {
    socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None::<SockProtocol>,
    )
    .map_err(|e| context("opening an AF_PACKET socket", e))
}

fn send_arp(
    socket: &std::os::fd::OwnedFd,
    link: &Link,
    mac: [u8; 6],
    ip: Ipv4Addr,
) -> io::Result<()> {
    let frame = gratuitous_arp(mac, ip);
    let sent = sendto(socket.as_raw_fd(), &frame, &link.packet, MsgFlags::empty())?;
    if sent != frame.len() {
        return Err(failure(
            io::ErrorKind::WriteZero,
            format!("only {sent} of {} bytes sent", frame.len()),
        ));
    }
    Ok(())
}

/// A raw ICMPv6 socket sending from `interface` with hop limit 255.
fn icmpv6_socket(interface: &str, index: usize) -> io::Result<Socket> {
    let index = u32::try_from(index).map_err(|_| {
        failure(
            io::ErrorKind::InvalidData,
            format!("interface index {index} out of range"),
        )
    })?;
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
        .map_err(|e| context("opening a raw ICMPv6 socket", e))?;
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
        .set_multicast_hops_v6(255)
        .map_err(|e| context("IPV6_MULTICAST_HOPS", e))?;
    socket
        .set_multicast_loop_v6(false)
        .map_err(|e| context("IPV6_MULTICAST_LOOP", e))?;
    Ok(socket)
}

fn send_neighbour_advertisement(
    socket: &Socket,
    link: &Link,
    mac: [u8; 6],
    ip: Ipv6Addr,
) -> io::Result<()> {
    let message = neighbour_advertisement(mac, ip);
    let index = u32::try_from(link.packet.ifindex()).unwrap_or(0);
    let to = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, index));
    let sent = socket.send_to(&message, &to)?;
    if sent != message.len() {
        return Err(failure(
            io::ErrorKind::WriteZero,
            format!("only {sent} of {} bytes sent", message.len()),
        ));
    }
    Ok(())
}

/// The Ethernet frame of a gratuitous ARP request for `ip` from `mac`.
pub(crate) fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; ETHERNET_MIN_FRAME] {
    let mut frame = [0u8; ETHERNET_MIN_FRAME];
    // Ethernet: broadcast, from us, ARP.
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // ARP: Ethernet / IPv4, 6 / 4 address bytes, request.
    frame[14..16].copy_from_slice(&1u16.to_be_bytes());
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&1u16.to_be_bytes());
    // Sender: us, the address. Target hardware: unknown (zero). Target IP: the address again.
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    frame[38..42].copy_from_slice(&ip.octets());
    frame
}

/// The ICMPv6 body of an unsolicited neighbour advertisement for `target` at `mac` (checksum
/// zero: the kernel computes it).
pub(crate) fn neighbour_advertisement(mac: [u8; 6], target: Ipv6Addr) -> [u8; 32] {
    let mut message = [0u8; 32];
    message[0] = ICMPV6_NEIGHBOUR_ADVERTISEMENT;
    // code 0, checksum 0 (bytes 1..4)
    message[4] = NA_OVERRIDE;
    message[8..24].copy_from_slice(&target.octets());
    message[24] = OPTION_TARGET_LINK_LAYER;
    message[25] = 1; // length in units of 8 bytes
    message[26..32].copy_from_slice(&mac);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    #[test]
    fn gratuitous_arp_frame() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 100));
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08,
            0x06, //
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, //
            0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 192, 0, 2, 100, //
            0, 0, 0, 0, 0, 0, 192, 0, 2, 100,
        ];
        assert_eq!(frame[..42], expected);
        assert!(frame[42..].iter().all(|&b| b == 0));
    }

    #[test]
    fn neighbour_advertisement_message() {
        let target: Ipv6Addr = "2001:db8::100".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let message = neighbour_advertisement(MAC, target);
        assert_eq!(message[..8], [136, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(message[8..24], target.octets());
        assert_eq!(message[24..], [2, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    }
}
