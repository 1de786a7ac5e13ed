//! Interfaces: which exist, whether they are up, their index and Ethernet address.
//!
//! All from `getifaddrs(3)`, whose AF_PACKET entries list every link (with or without
//! addresses, up or down) of the calling thread's network namespace: glibc asks rtnetlink.

use std::io;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::LinkAddr;

use gatehouse_config::InterfaceMatch;

use super::{context, failure};

/// `ARPHRD_ETHER`: the hardware type of Ethernet-like links (Ethernet, veth, bridges, bonds,
/// VLANs, macvlan...), the ones ARP and NDP announcements make sense on.
const ARPHRD_ETHER: u16 = 1;

/// One link, as `getifaddrs` reports it.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// Its `IFF_*` flags.
    pub flags: InterfaceFlags,
    /// Its AF_PACKET address: the interface index (what a SOCK_RAW packet socket sends
    /// through), hardware type and hardware address.
    pub packet: LinkAddr,
}

impl Link {
    /// Its Ethernet (MAC) address, if it is an Ethernet-like link.
    pub fn mac(&self) -> Option<[u8; 6]> {
        if self.packet.hatype() != ARPHRD_ETHER {
            return None;
        }
        self.packet.addr()
    }

    /// Up and carrying traffic: administratively up (`IFF_UP`) and operationally up
    /// (`IFF_RUNNING`, which the kernel sets from the carrier and the operational state).
    pub fn up(&self) -> bool {
        self.flags
            .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING)
    }
}

/// Every link of the namespace, with its name.
fn links() -> io::Result<Vec<(String, Link)>> {
    let entries = getifaddrs().map_err(|e| context("listing network interfaces", e))?;
    let mut links = Vec::new();
    for entry in entries {
        let Some(packet) = entry.address.as_ref().and_then(|a| a.as_link_addr()) else {
            continue;
        };
        links.push((
            entry.interface_name,
            Link {
                flags: entry.flags,
                packet: *packet,
            },
        ));
    }
    Ok(links)
}

/// The link named `name`, if it exists.
pub(crate) fn find(name: &str) -> io::Result<Option<Link>> {
    Ok(links()?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, link)| link))
}

/// The link named `name`, or an error saying `what` needed it and it does not exist.
pub(crate) fn require(name: &str, what: impl std::fmt::Display) -> io::Result<Link> {
    match find(name).map_err(|e| context(&what, e))? {
        Some(link) => Ok(link),
        None => Err(failure(
            io::ErrorKind::NotFound,
            format!("{what}: no interface named {name:?}"),
        )),
    }
}

/// Interface names matching `m` (Name: that one if it exists; Pattern: every interface whose
/// name matches the regular expression, sorted by name). None matching: an empty list.
pub fn interfaces(m: &InterfaceMatch) -> io::Result<Vec<String>> {
    match m {
        InterfaceMatch::Name(name) => {
            let exists = find(name)
                .map_err(|e| context(format!("looking for interface {name:?}"), e))?
                .is_some();
            Ok(if exists {
                vec![name.clone()]
            } else {
                Vec::new()
            })
        }
        InterfaceMatch::Pattern(pattern) => {
            let regex = regex_lite::Regex::new(pattern).map_err(|e| {
                failure(
                    io::ErrorKind::InvalidInput,
                    format!("interface pattern {pattern:?} is not a valid regular expression: {e}"),
                )
            })?;
            let mut names: Vec<String> = links()
                .map_err(|e| context(format!("matching interfaces against {pattern:?}"), e))?
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| regex.is_match(name))
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        }
    }
}

/// Whether the interface exists and is up: administratively up (`IFF_UP`) and with a carrier /
/// operationally up (`IFF_RUNNING`). An interface that does not exist is not up (`Ok(false)`);
/// an error means the kernel could not be asked.
pub fn link_up(interface: &str) -> io::Result<bool> {
    Ok(find(interface)
        .map_err(|e| context(format!("checking whether {interface} is up"), e))?
        .is_some_and(|link| link.up()))
}
