//! VRRPv3 (RFC 5798) for Gatehouse: the virtual addresses a node holds while it is master of
//! an instance, with a priority that follows the health of what the instance tracks.
//!
//! - [`packet`]: the advertisement on the wire (encode, decode, both IPv4 checksum modes).
//! - [`state`]: the state machine, pure: events in, actions out, no sockets or clocks.
//! - [`net`]: the host side: the raw VRRP socket, virtual addresses through netlink, gratuitous
//!   ARP and unsolicited neighbour advertisements, interface lookup.
//! - [`instance`]: one running instance: timers, sockets and the state machine together.

pub mod instance;
pub mod net;
pub mod packet;
pub mod state;
