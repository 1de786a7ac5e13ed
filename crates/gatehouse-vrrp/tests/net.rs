//! `gatehouse_vrrp::net` against a real kernel: two network namespaces on a veth pair (see
//! `support`), addresses from 192.0.2.0/24 and 2001:db8::/64, no route out. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gatehouse_config::InterfaceMatch;
use gatehouse_vrrp::net::{self, Family, Received, VrrpSocket};
use support::{IF, Lan, Netns, join, sleep};

/// How long anything that should happen may take.
const PATIENCE: Duration = Duration::from_secs(5);

/// What the tests send: shaped like a VRRPv3 advertisement, but `net` does not look inside.
const MESSAGE: &[u8] = &[0x31, 7, 100, 1, 0, 100, 0xab, 0xcd, 192, 0, 2, 100];

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

/// What the receiving side saw.
#[derive(Debug)]
struct Seen {
    /// The receiver's own source address.
    local: IpAddr,
    /// Messages received, with their bytes.
    messages: Vec<(Received, Vec<u8>)>,
}

/// Opens a socket in `b` (with `b_peers`), then one in `a` (with `a_peers`) that sends
/// [`MESSAGE`] every 50 ms until `b` has received `wanted` messages (or [`PATIENCE`] runs out).
/// Returns `a`'s source address and what `b` saw.
fn exchange(
    lan: &Lan,
    family: Family,
    a_peers: Vec<IpAddr>,
    b_peers: Vec<IpAddr>,
    wanted: usize,
) -> (IpAddr, Seen) {
    let done = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = {
        let done = done.clone();
        lan.b.spawn(move || async move {
            let socket = VrrpSocket::open(family, IF, &b_peers).unwrap();
            ready_tx.send(()).unwrap();
            let mut seen = Seen {
                local: socket.local_address(),
                messages: Vec::new(),
            };
            let mut buf = [0u8; 1500];
            let deadline = tokio::time::Instant::now() + PATIENCE;
            while seen.messages.len() < wanted {
                match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                    Ok(received) => {
                        let received = received.unwrap();
                        seen.messages.push((received, buf[..received.len].to_vec()));
                    }
                    Err(_) => break,
                }
            }
            done.store(true, Ordering::SeqCst);
            seen
        })
    };
    ready_rx
        .recv_timeout(PATIENCE)
        .expect("the receiver opened its socket");
    let sender = lan.a.spawn(move || async move {
        let socket = VrrpSocket::open(family, IF, &a_peers).unwrap();
        let deadline = Instant::now() + PATIENCE;
        while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
            socket.send(MESSAGE).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        socket.local_address()
    });
    let seen = join(receiver);
    (join(sender), seen)
}

#[test]
fn multicast_v4() {
    let lan = Lan::pair();
    let (a_local, seen) = exchange(&lan, Family::V4, vec![], vec![], 1);
    assert_eq!(a_local, v4("192.0.2.1"));
    assert_eq!(seen.local, v4("192.0.2.2"));
    let (received, bytes) = seen.messages.first().expect("a message by multicast");
    assert_eq!(received.source, v4("192.0.2.1"));
    assert_eq!(received.destination, Some(v4("224.0.0.18")));
    assert_eq!(received.ttl, 255);
    assert_eq!(bytes, MESSAGE);
}

#[test]
fn unicast_v4() {
    let lan = Lan::pair();
    let (a_local, seen) = exchange(
        &lan,
        Family::V4,
        vec![v4("192.0.2.2")],
        vec![v4("192.0.2.1")],
        1,
    );
    assert_eq!(a_local, v4("192.0.2.1"));
    let (received, bytes) = seen.messages.first().expect("a message by unicast");
    assert_eq!(received.source, v4("192.0.2.1"));
    assert_eq!(received.destination, Some(v4("192.0.2.2")));
    assert_eq!(received.ttl, 255);
    assert_eq!(bytes, MESSAGE);
}

#[test]
fn multicast_v6_from_link_local() {
    let lan = Lan::pair();
    let a_link_local = IpAddr::V6(lan.a.link_local(IF));
    let (a_local, seen) = exchange(&lan, Family::V6, vec![], vec![], 1);
    assert_eq!(a_local, a_link_local);
    assert_eq!(seen.local, IpAddr::V6(lan.b.link_local(IF)));
    let (received, bytes) = seen.messages.first().expect("a message by multicast");
    assert_eq!(received.source, a_link_local);
    assert_eq!(received.destination, Some(v6("ff02::12")));
    assert_eq!(received.ttl, 255);
    assert_eq!(bytes, MESSAGE);
}

#[test]
fn unicast_v6_to_global_and_link_local_peers() {
    let lan = Lan::pair();
    let a_link_local = IpAddr::V6(lan.a.link_local(IF));
    let b_link_local = IpAddr::V6(lan.b.link_local(IF));
    // Two peers (both b, by two addresses): one send reaches both.
    let (a_local, seen) = exchange(
        &lan,
        Family::V6,
        vec![v6("2001:db8::2"), b_link_local],
        vec![a_link_local],
        2,
    );
    assert_eq!(a_local, a_link_local);
    let mut destinations: Vec<_> = seen.messages.iter().map(|(r, _)| r.destination).collect();
    destinations.sort();
    destinations.dedup();
    assert_eq!(
        destinations,
        vec![Some(v6("2001:db8::2")), Some(b_link_local)]
    );
    for (received, bytes) in &seen.messages {
        assert_eq!(received.source, a_link_local);
        assert_eq!(received.ttl, 255);
        assert_eq!(bytes, MESSAGE);
    }
}

#[test]
fn unicast_socket_ignores_the_group() {
    // b has a multicast socket (so the host is in the group) and a unicast one; a sends to the
    // group only: the unicast socket must see nothing, the multicast one the messages.
    let lan = Lan::pair();
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = lan.b.spawn(move || async move {
        let group = VrrpSocket::open(Family::V4, IF, &[]).unwrap();
        let unicast = VrrpSocket::open(Family::V4, IF, &[v4("192.0.2.1")]).unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 1500];
        let from_group = tokio::time::timeout(PATIENCE, group.recv(&mut buf)).await;
        let mut buf = [0u8; 1500];
        let on_unicast =
            tokio::time::timeout(Duration::from_millis(500), unicast.recv(&mut buf)).await;
        (from_group.is_ok(), on_unicast.map(|r| r.unwrap()).ok())
    });
    ready_rx.recv_timeout(PATIENCE).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        lan.a.spawn(move || async move {
            let socket = VrrpSocket::open(Family::V4, IF, &[]).unwrap();
            let deadline = Instant::now() + PATIENCE * 2;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                socket.send(MESSAGE).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (group_got_one, unicast_got) = join(receiver);
    stop.store(true, Ordering::SeqCst);
    join(sender);
    assert!(group_got_one, "the multicast socket received nothing");
    assert_eq!(
        unicast_got, None,
        "the unicast socket received a group message"
    );
}

#[test]
fn open_errors_say_what_and_where() {
    let lan = Lan::pair();
    // A second link with no IPv4 address (and no link-local yet: it is down).
    lan.a.ip(&[
        "link", "add", "bare0", "type", "veth", "peer", "name", "bare1",
    ]);
    let errors = lan.a.run(|| async {
        let missing = VrrpSocket::open(Family::V4, "nosuch0", &[]).unwrap_err();
        let no_v4 = VrrpSocket::open(Family::V4, "bare0", &[]).unwrap_err();
        let no_v6 = VrrpSocket::open(Family::V6, "bare0", &[]).unwrap_err();
        let peer = VrrpSocket::open(Family::V4, IF, &[v6("2001:db8::2")]).unwrap_err();
        [missing, no_v4, no_v6, peer].map(|e| (e.kind(), e.to_string()))
    });
    let [missing, no_v4, no_v6, peer] = errors;
    assert!(
        missing
            .1
            .starts_with("opening the IPv4 VRRP socket on nosuch0: "),
        "{missing:?}"
    );
    assert_eq!(no_v4.0, io::ErrorKind::AddrNotAvailable, "{no_v4:?}");
    assert!(
        no_v4.1.contains("bare0") && no_v4.1.contains("no IPv4 address"),
        "{no_v4:?}"
    );
    assert_eq!(no_v6.0, io::ErrorKind::AddrNotAvailable, "{no_v6:?}");
    assert!(no_v6.1.contains("no IPv6 link-local address"), "{no_v6:?}");
    assert_eq!(peer.0, io::ErrorKind::InvalidInput, "{peer:?}");
    assert!(peer.1.contains("2001:db8::2"), "{peer:?}");
}

#[test]
fn add_and_remove_addresses() {
    let lan = Lan::pair();
    let results = lan.a.run(|| async {
        let mut results = Vec::new();
        for _ in 0..2 {
            // The second time: already present, still Ok.
            results.push(net::add_address(IF, v4("192.0.2.100"), 24).await);
            results.push(net::add_address(IF, v6("2001:db8::100"), 64).await);
        }
        results
    });
    for result in results {
        result.unwrap();
    }
    let brief = lan.a.ip(&["-br", "addr", "show", "dev", IF]);
    assert!(brief.contains("192.0.2.100/24"), "{brief}");
    assert!(brief.contains("2001:db8::100/64"), "{brief}");
    let v6_detail = lan.a.ip(&["-6", "-o", "addr", "show", "dev", IF]);
    let line = v6_detail
        .lines()
        .find(|l| l.contains("2001:db8::100/64"))
        .unwrap();
    assert!(!line.contains("tentative"), "{line}");
    assert!(line.contains("nodad"), "{line}");

    let results = lan.a.run(|| async {
        let mut results = Vec::new();
        for _ in 0..2 {
            // The second time: not present, still Ok.
            results.push(net::remove_address(IF, v4("192.0.2.100"), 24).await);
            results.push(net::remove_address(IF, v6("2001:db8::100"), 64).await);
        }
        results
    });
    for result in results {
        result.unwrap();
    }
    let brief = lan.a.ip(&["-br", "addr", "show", "dev", IF]);
    assert!(!brief.contains("192.0.2.100"), "{brief}");
    assert!(!brief.contains("2001:db8::100"), "{brief}");
    assert!(
        brief.contains("192.0.2.1/24"),
        "the interface's own address stays: {brief}"
    );
}

#[test]
fn address_errors_say_what_and_where() {
    let lan = Lan::pair();
    let (missing, prefix, remove_missing) = lan.a.run(|| async {
        (
            net::add_address("nosuch0", v4("192.0.2.100"), 24).await,
            net::add_address(IF, v4("192.0.2.100"), 33).await,
            net::remove_address("nosuch0", v4("192.0.2.100"), 24).await,
        )
    });
    let missing = missing.unwrap_err().to_string();
    assert!(
        missing.starts_with("adding 192.0.2.100/24 to nosuch0: "),
        "{missing}"
    );
    let prefix = prefix.unwrap_err();
    assert_eq!(prefix.kind(), io::ErrorKind::InvalidInput);
    assert!(
        prefix
            .to_string()
            .starts_with("adding 192.0.2.100/33 to veth0: "),
        "{prefix}"
    );
    remove_missing.unwrap();
}

/// Seeds `observer`'s neighbour entry for `addr` with a wrong MAC, runs `announce` for it in
/// `announcer`, and waits until the entry shows the announcer's MAC.
fn announce_updates_neighbour(lan: &Lan, addr: IpAddr) {
    const WRONG: &str = "02:00:00:00:00:99";
    let family = if addr.is_ipv4() { "-4" } else { "-6" };
    let addr_text = addr.to_string();
    lan.b.ip(&[
        family, "neigh", "replace", &addr_text, "lladdr", WRONG, "dev", IF, "nud", "stale",
    ]);
    let before = lan.b.neighbour(IF, addr);
    assert!(before.contains(WRONG), "{before}");
    let mac = lan.a.mac(IF);
    let deadline = Instant::now() + PATIENCE;
    loop {
        lan.a
            .run(move || async move { net::announce(IF, &[addr]) })
            .unwrap();
        let now = lan.b.neighbour(IF, addr);
        if now.contains(&mac) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: still {now:?} after announcing {mac}"
        );
        sleep(Duration::from_millis(200));
    }
}

#[test]
fn gratuitous_arp_updates_the_neighbour() {
    let lan = Lan::pair();
    announce_updates_neighbour(&lan, v4("192.0.2.100"));
}

#[test]
fn neighbour_advertisement_updates_the_neighbour() {
    let lan = Lan::pair();
    announce_updates_neighbour(&lan, v6("2001:db8::100"));
}

#[test]
fn announce_errors_say_what_and_where() {
    let lan = Lan::pair();
    let (missing, loopback, nothing) = lan.a.run(|| async {
        (
            net::announce("nosuch0", &[v4("192.0.2.100")]),
            net::announce("lo", &[v4("127.0.0.2")]),
            net::announce("nosuch0", &[]),
        )
    });
    let missing = missing.unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    assert!(missing.to_string().contains("nosuch0"), "{missing}");
    let loopback = loopback.unwrap_err();
    assert_eq!(loopback.kind(), io::ErrorKind::Unsupported, "{loopback}");
    nothing.unwrap();
}

#[test]
fn interfaces_by_name_and_pattern() {
    let ns = Netns::new();
    for name in ["vrrp2", "vrrp10", "vrrp1"] {
        ns.ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ]);
    }
    let (pattern, name, missing, bad) = ns.run(|| async {
        (
            net::interfaces(&InterfaceMatch::Pattern("^vrrp[0-9]+$".to_owned())),
            net::interfaces(&InterfaceMatch::Name("vrrp10".to_owned())),
            net::interfaces(&InterfaceMatch::Name("eth0".to_owned())),
            net::interfaces(&InterfaceMatch::Pattern("vrrp(".to_owned())),
        )
    });
    assert_eq!(pattern.unwrap(), ["vrrp1", "vrrp10", "vrrp2"]);
    assert_eq!(name.unwrap(), ["vrrp10"]);
    assert_eq!(missing.unwrap(), Vec::<String>::new());
    let bad = bad.unwrap_err();
    assert_eq!(bad.kind(), io::ErrorKind::InvalidInput);
    assert!(bad.to_string().contains("vrrp("), "{bad}");
}

#[test]
fn link_up_follows_the_link() {
    let lan = Lan::pair();
    let up = |ns: &Netns| ns.run(|| async { net::link_up(IF).unwrap() });
    // Waits (the carrier follows the peer through the kernel's link watch) for `expected`.
    let wait_for = |ns: &Netns, expected: bool, why: &str| {
        let deadline = Instant::now() + PATIENCE;
        while up(ns) != expected {
            assert!(Instant::now() < deadline, "link_up is not {expected} {why}");
            sleep(Duration::from_millis(50));
        }
    };
    wait_for(&lan.a, true, "with both ends up");
    lan.a.ip(&["link", "set", IF, "down"]);
    wait_for(&lan.a, false, "after `ip link set veth0 down`");
    lan.a.ip(&["link", "set", IF, "up"]);
    wait_for(&lan.a, true, "after setting it up again");
    lan.b.ip(&["link", "set", IF, "down"]);
    wait_for(&lan.a, false, "when the other end is down (no carrier)");
    let missing = lan.a.run(|| async { net::link_up("nosuch0").unwrap() });
    assert!(!missing);
}
