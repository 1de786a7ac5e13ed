//! Interface addresses through rtnetlink: add and remove the virtual addresses, and list an
//! interface's own addresses (to pick the VRRP source address).
//!
//! Messages are built and parsed with `netlink-packet-route`; the socket is a plain
//! `AF_NETLINK`/`NETLINK_ROUTE` one from `nix`. rtnetlink handles a request inside the
//! `sendmsg` call that carries it (under the kernel's `rtnl_lock`), so the answer is queued
//! before the send returns and a request is one send and one or a few receives. The waiting that
//! can happen (for the lock, if another process is busy reconfiguring the network) is in the
//! send, which a non-blocking socket would not avoid: [`add_address`] and [`remove_address`]
//! therefore run the exchange on Tokio's blocking pool. The socket itself is opened on the
//! calling thread, so it belongs to that thread's network namespace.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily as NlFamily, RouteNetlinkMessage};
use nix::errno::Errno;
use nix::net::if_::if_nametoindex;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::{Family, context, failure};

/// How long a request waits for the kernel's answer.
const ANSWER_TIMEOUT_SECONDS: i64 = 5;

/// Receive buffer: rtnetlink dump parts are at most 32 KiB.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Adds `addr/prefix` to the interface (IPv6: with `IFA_F_NODAD`, so it is usable at once, not
/// "tentative" for a second of duplicate address detection). Already present: `Ok`.
pub async fn add_address(interface: &str, addr: IpAddr, prefix: u8) -> io::Result<()> {
    let what = format!("adding {addr}/{prefix} to {interface}");
    let message = address_message(interface, addr, prefix).map_err(|e| context(&what, e))?;
    let socket = Rtnetlink::open().map_err(|e| context(&what, e))?;
    let request = RouteNetlinkMessage::NewAddress(message);
    match run(socket, request, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).await {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(Errno::EEXIST as i32) => Ok(()),
        Err(e) => Err(context(&what, e)),
    }
}

/// Removes `addr/prefix` from the interface. Not present (or no such interface any more): `Ok`.
pub async fn remove_address(interface: &str, addr: IpAddr, prefix: u8) -> io::Result<()> {
    let what = format!("removing {addr}/{prefix} from {interface}");
    let message = match address_message(interface, addr, prefix) {
        Ok(message) => message,
        Err(e) if e.raw_os_error() == Some(Errno::ENODEV as i32) => return Ok(()),
        Err(e) => return Err(context(&what, e)),
    };
    let socket = Rtnetlink::open().map_err(|e| context(&what, e))?;
    match run(socket, RouteNetlinkMessage::DelAddress(message), NLM_F_ACK).await {
        Ok(_) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(Errno::EADDRNOTAVAIL as i32)
                || e.raw_os_error() == Some(Errno::ENODEV as i32) =>
        {
            Ok(())
        }
        Err(e) => Err(context(&what, e)),
    }
}

/// The `RTM_NEWADDR` / `RTM_DELADDR` body for `addr/prefix` on `interface`. Errors are bare
/// (the caller says what was being done): `ENODEV` for a missing interface.
fn address_message(interface: &str, addr: IpAddr, prefix: u8) -> io::Result<AddressMessage> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(failure(
            io::ErrorKind::InvalidInput,
            format!("prefix length {prefix} is more than {max}"),
        ));
    }
    let index = if_nametoindex(interface)?;
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.prefix_len = prefix;
    message.header.scope = AddressScope::Universe;
    match addr {
        IpAddr::V4(_) => {
            message.header.family = NlFamily::Inet;
            message.attributes.push(AddressAttribute::Local(addr));
            message.attributes.push(AddressAttribute::Address(addr));
        }
        IpAddr::V6(_) => {
            message.header.family = NlFamily::Inet6;
            message.header.flags = AddressHeaderFlags::Nodad;
            message.attributes.push(AddressAttribute::Address(addr));
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    Ok(message)
}

/// Runs one request: on the blocking pool inside a Tokio runtime, inline outside one.
async fn run(
    socket: Rtnetlink,
    request: RouteNetlinkMessage,
    flags: u16,
) -> io::Result<Vec<RouteNetlinkMessage>> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(move || socket.request(request, flags))
            .await
            .map_err(|e| io::Error::other(format!("the netlink request did not finish: {e}")))?,
        Err(_) => socket.request(request, flags),
    }
}

/// The address `VrrpSocket`s send from on the interface with index `index`:
/// - IPv4: its primary address (the first that is not `IFA_F_SECONDARY`, in the kernel's
///   order, which puts an interface's primaries first, oldest first);
/// - IPv6: its link-local address (fe80::/10) that has passed duplicate address detection.
pub(crate) fn source_address(family: Family, index: u32, interface: &str) -> io::Result<IpAddr> {
    let what = format!("finding the {family} source address of {interface}");
    let socket = Rtnetlink::open().map_err(|e| context(&what, e))?;
    let mut query = AddressMessage::default();
    query.header.family = match family {
        Family::V4 => NlFamily::Inet,
        Family::V6 => NlFamily::Inet6,
    };
    let answers = socket
        .request(RouteNetlinkMessage::GetAddress(query), NLM_F_DUMP)
        .map_err(|e| context(&what, e))?;
    let mut tentative = None;
    for answer in answers {
        let RouteNetlinkMessage::NewAddress(message) = answer else {
            continue;
        };
        if message.header.index != index {
            continue;
        }
        let mut flags = AddressFlags::from_bits_retain(u32::from(message.header.flags.bits()));
        let mut local = None;
        let mut address = None;
        for attribute in &message.attributes {
            match attribute {
                AddressAttribute::Flags(f) => flags = *f,
                AddressAttribute::Local(a) => local = Some(*a),
                AddressAttribute::Address(a) => address = Some(*a),
                _ => {}
            }
        }
        match (family, local.or(address)) {
            (Family::V4, Some(a @ IpAddr::V4(_))) if !flags.contains(AddressFlags::Secondary) => {
                return Ok(a);
            }
            (Family::V6, Some(IpAddr::V6(a))) if a.is_unicast_link_local() => {
                if flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed) {
                    tentative = Some((a, flags.contains(AddressFlags::Dadfailed)));
                } else {
                    return Ok(IpAddr::V6(a));
                }
            }
            _ => {}
        }
    }
    Err(failure(
        io::ErrorKind::AddrNotAvailable,
        match (family, tentative) {
            (Family::V4, _) => format!("{what}: it has no IPv4 address"),
            (Family::V6, None) => format!("{what}: it has no IPv6 link-local address"),
            (Family::V6, Some((a, false))) => format!(
                "{what}: its link-local address {a} is still tentative (duplicate address \
                 detection is running; try again in a few seconds)"
            ),
            (Family::V6, Some((a, true))) => format!(
                "{what}: its link-local address {a} failed duplicate address detection (another \
                 host on the link uses it)"
            ),
        },
    ))
}

/// An rtnetlink socket, opened in the calling thread's network namespace.
struct Rtnetlink {
    fd: OwnedFd,
}

impl Rtnetlink {
    fn open() -> io::Result<Rtnetlink> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| context("opening a netlink socket", e))?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::new(ANSWER_TIMEOUT_SECONDS, 0),
        )
        .map_err(|e| context("setting the netlink socket's receive timeout", e))?;
        Ok(Rtnetlink { fd })
    }

    /// Sends `message` with `NLM_F_REQUEST | flags` and collects the answer: for a dump, every
    /// message up to `NLMSG_DONE`; for a request with `NLM_F_ACK`, nothing (the acknowledgement
    /// ends it). A negative acknowledgement is returned as the OS error it carries (bare, without
    /// context, so callers can tell `EEXIST` and `EADDRNOTAVAIL`).
    fn request(
        self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        // One socket per request, so any sequence number identifies our answer.
        const SEQUENCE: u32 = 1;
        let mut packet =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = SEQUENCE;
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        sendto(
            self.fd.as_raw_fd(),
            &bytes,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;

        let mut answers = Vec::new();
        let mut buffer = vec![0; RECEIVE_BUFFER];
        loop {
            let received = match recv(self.fd.as_raw_fd(), &mut buffer, MsgFlags::MSG_TRUNC) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => {
                    return Err(failure(
                        io::ErrorKind::TimedOut,
                        format!("the kernel did not answer within {ANSWER_TIMEOUT_SECONDS} s"),
                    ));
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if received > buffer.len() {
                return Err(failure(
                    io::ErrorKind::InvalidData,
                    format!("netlink answer of {received} bytes does not fit in {RECEIVE_BUFFER}"),
                ));
            }
            let mut rest = &buffer[..received];
            while !rest.is_empty() {
                let header = NetlinkBuffer::new_checked(rest).map_err(|e| {
                    failure(
                        io::ErrorKind::InvalidData,
                        format!("malformed netlink answer: {e}"),
                    )
                })?;
                let length = header.length() as usize;
                let ours = header.sequence_number() == SEQUENCE;
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..length]);
                rest = rest.get(length.next_multiple_of(4)..).unwrap_or_default();
                if !ours {
                    continue;
                }
                match parsed {
                    Ok(message) => match message.payload {
                        NetlinkPayload::Error(error) => {
                            return match error.code {
                                None => Ok(answers),
                                Some(code) => Err(io::Error::from_raw_os_error(code.get().abs())),
                            };
                        }
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                        _ => {}
                    },
                    // A message this version of netlink-packet-route cannot read (a newer
                    // kernel's): not one we need.
                    Err(e) => tracing::debug!("skipping a netlink message: {e}"),
                }
            }
        }
    }
}
