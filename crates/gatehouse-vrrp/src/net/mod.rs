//! The host side of VRRP, on Linux: everything here talks to the kernel, nothing decides.
//!
//! - [`VrrpSocket`] (`socket.rs`): the raw IP protocol 112 socket of one instance on one
//!   interface: bound to the device, the group joined (or unicast peers), TTL / hop limit 255,
//!   source the interface's primary IPv4 address or its IPv6 link-local address.
//! - [`add_address`], [`remove_address`] (`netlink.rs`): the virtual addresses, through
//!   rtnetlink (`RTM_NEWADDR` / `RTM_DELADDR`), idempotent.
//! - [`announce`] (`announce.rs`): gratuitous ARP (AF_PACKET) and unsolicited neighbour
//!   advertisements (raw ICMPv6) on becoming master.
//! - [`interfaces`], [`link_up`] (`link.rs`): which interfaces exist and whether they carry
//!   traffic.
//!
//! Everything acts in the network namespace of the *calling thread*: sockets (netlink ones
//! included) are created on it and no work is handed to other threads, so a thread that entered
//! a namespace with `setns` sees that namespace (the tests rely on it).
//!
//! Every error says what failed and where ("adding 192.0.2.100/24 to veth0: Operation not
//! permitted"); its [`io::ErrorKind`] is the underlying one. Nothing here panics.

mod announce;
mod link;
mod netlink;
mod socket;

use std::fmt::Display;
use std::io;
use std::net::IpAddr;

pub use announce::announce;
pub use link::{interfaces, link_up};
pub use netlink::{add_address, remove_address};
pub use socket::{GROUP_V4, GROUP_V6, Received, VRRP_PROTOCOL, VRRP_TTL, VrrpSocket};

/// The address family of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: advertisements to 224.0.0.18, gratuitous ARP.
    V4,
    /// IPv6: advertisements to ff02::12 from the link-local address, neighbour advertisements.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// `err`, prefixed with what was being done: "adding 192.0.2.100/24 to veth0: ...". Keeps the
/// kind.
pub(crate) fn context(what: impl Display, err: impl Into<io::Error>) -> io::Error {
    let err = err.into();
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

/// An error of `kind` saying `message` (already in the "what failed: why" form).
pub(crate) fn failure(kind: io::ErrorKind, message: impl Display) -> io::Error {
    io::Error::new(kind, message.to_string())
}
