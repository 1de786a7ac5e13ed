//! Fuzzes `Dns::answer_local`, the function the server runs on every packet it receives. The
//! first input byte chooses the transport (bit 0: TCP, else UDP) and the client (bit 1: one
//! outside `recursion_allow`); the rest is the packet.
//!
//! Beyond "no panic", it checks what clients rely on: only packets shorter than a header and
//! responses are dropped; only well-formed queries from allowed clients are forwarded; an
//! answer keeps the query's id and opcode, has QR set, parses, has at most one question, and
//! fits UDP (1232 bytes with EDNS, 512 without).
//!
//! And it runs both of the server's paths apart: wherever the fast path (the common query,
//! answered without hickory's `Message`) answers, its bytes must be the general path's.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use gatehouse_config::{
    Cidr, DnsConfig, DnsRecord, DnsZone, ForwardZone, RecordData, RecordSource, Soa, Transport,
};
use gatehouse_dns::{Dns, Local};
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

static DNS: LazyLock<Arc<Dns>> = LazyLock::new(|| {
    Dns::new(
        Arc::new(config()),
        Arc::new(|backend: &str| backend == "blue"),
    )
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let udp = selector & 1 == 0;
    let transport = if udp { Transport::Udp } else { Transport::Tcp };
    let allowed = selector & 2 == 0;
    let client = if allowed {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::new(192, 0, 2, 1)
    };
    let client = SocketAddr::new(IpAddr::V4(client), 40000);

    let is_response = packet.get(2).is_some_and(|b| b & 0x80 != 0);
    match DNS.answer_local(packet, client, transport) {
        Local::Drop => assert!(packet.len() < 12 || is_response),
        Local::Forward => {
            assert!(allowed);
            assert!(packet.len() >= 12 && !is_response);
            assert_eq!(packet[2] & 0x78, 0, "only QUERY is forwarded");
        }
        Local::Reply(reply) => {
            assert!(packet.len() >= 12 && !is_response);
            assert!(reply.len() >= 12);
            assert_eq!(reply[..2], packet[..2], "id");
            assert_eq!(reply[2] & 0x80, 0x80, "QR");
            assert_eq!(reply[2] & 0x78, packet[2] & 0x78, "opcode");
            let parsed = Message::from_vec(&reply).expect("our answers parse");
            assert!(parsed.queries.len() <= 1);
            if udp {
                let limit = if parsed.edns.is_some() { 1232 } else { 512 };
                assert!(reply.len() <= limit, "{} bytes over UDP", reply.len());
            }
        }
    }

    if let Some(fast) = DNS.answer_fast(packet, client, transport) {
        assert_eq!(
            Local::Reply(fast),
            DNS.answer_general(packet, client, transport),
            "the fast path differs from the general path"
        );
    }
});

fn record(name: &str, data: RecordData) -> DnsRecord {
    DnsRecord {
        name: name.into(),
        ttl: 300,
        data,
        source: RecordSource::Static,
    }
}

fn auto(name: &str, ip: [u8; 4], backend: &str) -> DnsRecord {
    DnsRecord {
        name: name.into(),
        ttl: 5,
        data: RecordData::A(Ipv4Addr::from(ip)),
        source: RecordSource::Auto {
            listener: "gw/web".into(),
            backends: vec![backend.into()],
        },
    }
}

fn zone(name: &str, records: Vec<DnsRecord>) -> DnsZone {
    DnsZone {
        name: name.into(),
        ttl: 3600,
        soa: Soa {
            mname: format!("ns1.{name}"),
            rname: format!("hostmaster.{name}"),
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 60,
        },
        ns: vec![format!("ns1.{name}")],
        records,
    }
}

/// Every kind of record and name the zones know, and both kinds of forwarding.
fn config() -> DnsConfig {
    let big = (0..6).map(|i| format!("{i}").repeat(250)).collect();
    DnsConfig {
        listen: vec![],
        zones: vec![
            zone(
                "home.arpa",
                vec![
                    record("www.home.arpa", RecordData::A(Ipv4Addr::new(10, 0, 0, 1))),
                    record("www.home.arpa", RecordData::Txt(vec!["hello".into()])),
                    record(
                        "v6.home.arpa",
                        RecordData::Aaaa("2001:db8::1".parse().unwrap()),
                    ),
                    record("alias.home.arpa", RecordData::Cname("www.home.arpa".into())),
                    record("loop.home.arpa", RecordData::Cname("loop.home.arpa".into())),
                    record("out.home.arpa", RecordData::Cname("example.org".into())),
                    record(
                        "_http._tcp.home.arpa",
                        RecordData::Srv {
                            priority: 1,
                            weight: 1,
                            port: 80,
                            target: "www.home.arpa".into(),
                        },
                    ),
                    record(
                        "*.apps.home.arpa",
                        RecordData::A(Ipv4Addr::new(10, 0, 0, 3)),
                    ),
                    record("own.apps.home.arpa", RecordData::Txt(vec!["own".into()])),
                    record("big.home.arpa", RecordData::Txt(big)),
                    auto("svc.home.arpa", [10, 1, 0, 1], "blue"),
                    auto("svc.home.arpa", [10, 1, 0, 2], "green"),
                ],
            ),
            zone(
                "lab.home.arpa",
                vec![record(
                    "www.lab.home.arpa",
                    RecordData::A(Ipv4Addr::new(10, 2, 0, 1)),
                )],
            ),
            zone(
                "0.0.10.in-addr.arpa",
                vec![record(
                    "99.0.0.10.in-addr.arpa",
                    RecordData::Ptr("printer.home.arpa".into()),
                )],
            ),
        ],
        forwarders: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5353))],
        forward_zones: vec![ForwardZone {
            zone: "cluster.local".into(),
            to: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5354))],
        }],
        recursion_allow: vec![Cidr {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            prefix: 32,
        }],
        cache_size: 100,
    }
}
