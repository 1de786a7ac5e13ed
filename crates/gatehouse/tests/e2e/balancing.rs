//! How each algorithm spreads connections over real backends.

use std::collections::HashMap;
use std::net::IpAddr;

use gatehouse_testkit::{Backend, Gatehouse, ask, ask_from};

use crate::{BIN, one_listener};

fn tally(names: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n).or_default() += 1;
    }
    m
}

#[test]
fn round_robin_takes_turns() {
    let b: Vec<Backend> = ["a", "b", "c"].iter().map(|n| Backend::start(n)).collect();
    let addrs: Vec<_> = b.iter().map(Backend::addr).collect();
    let g = Gatehouse::start(BIN, &one_listener(&addrs, "    balance: RoundRobin\n"));
    let gw = g.addr("t/in");
    let names: Vec<String> = (0..30).map(|_| ask(gw).unwrap()).collect();
    let counts = tally(names.clone());
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|c| *c == 10),
        "each of 3 backends gets 10 of 30: {counts:?}"
    );
    // In turn: no backend twice in a row.
    assert!(names.windows(2).all(|w| w[0] != w[1]), "{names:?}");
}

#[test]
fn weights_set_the_share() {
    let a = Backend::start("heavy");
    let b = Backend::start("light");
    let weighted = format!(
        "      - {{ address: \"{}\", weight: 3 }}\n      - {{ address: \"{}\", weight: 1 }}\n",
        a.addr(),
        b.addr()
    );
    let yaml = one_listener(&[], &weighted);
    let g = Gatehouse::start(BIN, &yaml);
    let gw = g.addr("t/in");
    let counts = tally((0..40).map(|_| ask(gw).unwrap()));
    assert_eq!(counts.get("heavy"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("light"), Some(&10), "{counts:?}");
}

#[test]
fn least_connections_follows_open_connections() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let g = Gatehouse::start(
        BIN,
        &one_listener(&[a.addr(), b.addr()], "    balance: LeastConnections\n"),
    );
    let gw = g.addr("t/in");
    let open = |held: &mut Vec<(String, std::net::TcpStream)>| {
        let (name, s) = gatehouse_testkit::open(gw).unwrap();
        held.push((name.clone(), s));
        name
    };
    let count = |held: &[(String, std::net::TcpStream)], n: &str| {
        held.iter().filter(|(h, _)| h == n).count()
    };
    // Connections that stay open spread evenly: never more than one apart.
    let mut held = Vec::new();
    for _ in 0..4 {
        open(&mut held);
        let names: Vec<&String> = held.iter().map(|h| &h.0).collect();
        assert!(
            count(&held, "a").abs_diff(count(&held, "b")) <= 1,
            "uneven: {names:?}"
        );
    }
    // Close both of b's connections and wait until Gatehouse has seen them close.
    let mark = g.mark();
    held.retain(|(n, _)| n != "b");
    for _ in 0..100 {
        if g.lines_with("connection closed", mark).len() == 2 {
            break;
        }
        crate::sleep(std::time::Duration::from_millis(20));
    }
    // a holds 2, b holds 0: the next two open connections both go to b.
    assert_eq!(open(&mut held), "b");
    assert_eq!(open(&mut held), "b");
}

#[test]
fn consistent_hash_keeps_each_client_on_its_backend() {
    let b: Vec<Backend> = ["a", "b", "c"].iter().map(|n| Backend::start(n)).collect();
    let addrs: Vec<_> = b.iter().map(Backend::addr).collect();
    let g = Gatehouse::start(
        BIN,
        &one_listener(
            &addrs,
            "    balance: ConsistentHash\n    passive: { maxFails: 1, failTimeout: 1m }\n",
        ),
    );
    let gw = g.addr("t/in");
    let clients: Vec<IpAddr> = (2..40u8).map(|i| IpAddr::from([127, 0, 0, i])).collect();
    let first: Vec<String> = clients.iter().map(|c| ask_from(*c, gw).unwrap()).collect();
    for _ in 0..2 {
        let again: Vec<String> = clients.iter().map(|c| ask_from(*c, gw).unwrap()).collect();
        assert_eq!(
            first, again,
            "every client lands on the same backend each time"
        );
    }
    let counts = tally(first.clone());
    assert_eq!(counts.len(), 3, "38 clients use all 3 backends: {counts:?}");
    // Take `c` away: its clients move (retried, then `c` is ejected), the others stay put.
    b[2].stop();
    for (client, before) in clients.iter().zip(&first) {
        let now = ask_from(*client, gw).unwrap();
        if before == "c" {
            assert_ne!(now, "c");
        } else {
            assert_eq!(
                &now, before,
                "client {client} moved although its backend is up"
            );
        }
    }
}
