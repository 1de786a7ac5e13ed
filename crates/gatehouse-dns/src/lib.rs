//! Gatehouse's DNS server: authoritative answers for the zones of the config (address records
//! of listeners follow the health of their backends), and forwarding of every other name to
//! upstream resolvers, with a cache, for the clients allowed to recurse.
//!
//! ```text
//! packet ──► fast::answer ──► the common query, from a local zone: answer written directly
//!   │
//!   └─► anything else: answer::respond ──► zones::Zones::resolve ──► local answer (AA)
//!         (hygiene: QR, opcode,                    │
//!          EDNS, class, sizes)                     └─► not ours ──► forward::Cache ──► hit (RA)
//!                                                                     └─► miss: upstreams
//! ```
//!
//! The fast path (`fast`) takes the common query (one question, class IN, an optional plain
//! OPT record, a name a local zone answers without a CNAME to follow, an answer that fits):
//! it reads the header, question and OPT by hand, finds the name in byte-keyed tables built
//! with the zones, and writes precompiled records into a reused buffer. Its answer is the
//! general path's, byte for byte (differential tests and the fuzz target check it); for
//! anything else it steps aside.
//!
//! Over UDP, the queries waiting on a socket are taken in one `recvmmsg` (up to 32) and their
//! local answers sent in one `sendmmsg` (`udp`, through nix's safe wrappers); a forwarded one
//! goes to a task of its own and holds up none of the others.
//!
//! # Why not hickory-server's `ServerFuture`
//!
//! The wire format is hickory-proto's (`Message`, `Edns`, `Record`...), but the socket loops
//! are ours (`serve`), and so is the one function that turns a packet into an answer
//! ([`Dns::answer_local`], which the fuzz target calls; it tries the fast path, then the
//! general one, as the server does). hickory-server 0.26's `Server` makes
//! three requirements impossible:
//! - it caps a UDP answer at the payload size of the answer's *own* OPT record, so it cannot
//!   both advertise our 1232 bytes and fit a client that said 512; and when an answer is too
//!   big it sends as many records as fit (a partial RRset, possibly without the OPT record)
//!   instead of an empty truncated answer;
//! - it checks QR only after parsing the whole message, so a malformed packet with QR=1 gets
//!   a FORMERR back instead of silence;
//! - it parses and encodes inside its own tasks, so a fuzz target could not exercise the code
//!   that the server actually runs.
//!
//! No crypto: no DNSSEC (the DO bit is accepted and copied; we have no signatures), no DoT or
//! DoH.
//!
//! # Choices where the RFCs leave one
//!
//! - ANY (RFC 8482): one RRset of the name (the SOA at an apex; else the first of CNAME, A,
//!   AAAA, TXT, SRV, PTR it has), over UDP and TCP alike; forwarded names go upstream as asked.
//! - Classes other than IN, and zone transfers (AXFR, IXFR): REFUSED.
//! - An empty `recursion_allow` lets nobody recurse. RA is set on forwarded answers, and on
//!   local ones for clients that may recurse when there is an upstream; never on REFUSED.
//! - A name under both a local zone and a more specific `forward_zones` entry is forwarded;
//!   local zones win ties.
//! - Automatic address records: static ones always answer; automatic ones whose backends have
//!   an endpoint up (one without backends counts as up), or all of them when none has.
//! - Answers do not fill the additional section (no glue for SRV or NS targets): minimal
//!   responses.
//!
//! Reloads swap the compiled zones in an `ArcSwap`: a query sees one snapshot. The cache
//! survives a reload unless the upstreams changed.

mod answer;
mod fast;
mod forward;
pub mod stats;
mod udp;
mod zones;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use gatehouse_config::{DnsConfig, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::answer::{Outcome, Pending};
use crate::forward::Cache;
use crate::zones::Zones;

/// Backend name -> whether it has at least one endpoint up.
pub type Health = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A TCP client gets this long to send each query (RFC 7766 section 6.2.3: seconds, not
/// minutes).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writing one answer to a TCP client may take this long.
const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most TCP connections served at once; more are closed on accept.
const MAX_TCP_CONNECTIONS: usize = 512;

/// Most queries waiting for an upstream at once; more UDP queries are dropped (the client
/// asks again).
const MAX_FORWARDS: usize = 1024;

/// The DNS server. Cheap to share: [`Dns::new`] returns it in an `Arc`.
pub struct Dns {
    state: ArcSwap<State>,
    cache: Cache,
    health: Health,
    stats: stats::Stats,
}

/// One compiled config.
pub(crate) struct State {
    /// The config as given.
    pub config: Arc<DnsConfig>,
    /// Its zones and upstreams, ready for lookups.
    pub zones: Zones,
    /// The zones again, for the fast path.
    pub fast: fast::Index,
}

impl State {
    fn new(config: Arc<DnsConfig>) -> State {
        let zones = Zones::new(&config);
        State {
            fast: fast::Index::new(&zones),
            zones,
            config,
        }
    }
}

/// What [`Dns::answer_into`] makes of one query.
#[derive(Debug)]
enum Handled {
    /// Send nothing.
    Drop,
    /// Send the buffer.
    Reply,
    /// Ask an upstream.
    Forward(Box<Pending>),
}

/// What [`Dns::answer_local`] makes of one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// Send these bytes back to the client.
    Reply(Vec<u8>),
    /// Send nothing: shorter than a DNS header, or a response rather than a query.
    Drop,
    /// The name is forwarded and the cache has no answer: [`Dns::serve`] asks upstream.
    Forward,
}

impl Dns {
    /// A server for `config`; `health` tells whether a backend has an endpoint up.
    pub fn new(config: Arc<DnsConfig>, health: Health) -> Arc<Dns> {
        Arc::new(Dns {
            cache: Cache::new(config.cache_size),
            state: ArcSwap::from_pointee(State::new(config)),
            health,
            stats: stats::Stats::default(),
        })
    }

    /// Answers sent by question type and response code, and queries dropped, since this
    /// server started (counted by [`Dns::serve`]'s loops, not by [`Dns::answer_local`]).
    pub fn stats(&self) -> &stats::Stats {
        &self.stats
    }

    /// A reload: new zones, records and forwarders answer from now on; the cache is kept if
    /// the forwarders (and forward zones) did not change.
    pub fn update(&self, config: Arc<DnsConfig>) {
        let old = self.state.load();
        if old.config.forwarders != config.forwarders
            || old.config.forward_zones != config.forward_zones
        {
            self.cache.clear();
        }
        self.cache.set_capacity(config.cache_size);
        self.state.store(Arc::new(State::new(config)));
    }

    /// The answer to one query packet from `client`, as far as it can be given without
    /// waiting: local names, refusals, errors and cached forwarded answers. `transport` sets
    /// the size limit (UDP: the client's EDNS size, at most 1232, or 512 without EDNS).
    /// Never panics, whatever the bytes.
    ///
    /// Like the server, it tries the fast path first (the common query, answered from a local
    /// zone without hickory's `Message`), then the general one.
    pub fn answer_local(&self, packet: &[u8], client: SocketAddr, transport: Transport) -> Local {
        let state = self.state.load();
        let mut out = Vec::new();
        let health = self.health.as_ref();
        if fast::answer(&state, health, packet, client.ip(), transport, &mut out) {
            return Local::Reply(out);
        }
        match self.respond(&state, packet, client.ip(), transport) {
            Outcome::Drop => Local::Drop,
            Outcome::Reply(bytes) => Local::Reply(bytes),
            Outcome::Forward(_) => Local::Forward,
        }
    }

    /// [`Dns::answer_local`] by the general path alone, for the differential tests and the
    /// fuzz target.
    #[doc(hidden)]
    pub fn answer_general(&self, packet: &[u8], client: SocketAddr, transport: Transport) -> Local {
        match self.respond(&self.state.load(), packet, client.ip(), transport) {
            Outcome::Drop => Local::Drop,
            Outcome::Reply(bytes) => Local::Reply(bytes),
            Outcome::Forward(_) => Local::Forward,
        }
    }

    /// The fast path's answer alone, if it gives one (it must be the general path's, byte for
    /// byte), for the differential tests and the fuzz target.
    #[doc(hidden)]
    pub fn answer_fast(
        &self,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let health = self.health.as_ref();
        fast::answer(
            &self.state.load(),
            health,
            packet,
            client.ip(),
            transport,
            &mut out,
        )
        .then_some(out)
    }

    /// One query, as the UDP and TCP loops handle it: the fast path writes its answer into
    /// `out`, a buffer kept from one query to the next; else the general path's answer
    /// replaces it.
    fn answer_into(
        &self,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Handled {
        let state = self.state.load();
        let health = self.health.as_ref();
        if fast::answer(&state, health, packet, client, transport, out) {
            return Handled::Reply;
        }
        match self.respond(&state, packet, client, transport) {
            Outcome::Drop => Handled::Drop,
            Outcome::Reply(bytes) => {
                *out = bytes;
                Handled::Reply
            }
            Outcome::Forward(pending) => Handled::Forward(pending),
        }
    }

    /// The general path.
    fn respond(
        &self,
        state: &State,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
    ) -> Outcome {
        answer::respond(
            state,
            &self.cache,
            self.health.as_ref(),
            packet,
            client,
            transport,
            Instant::now(),
        )
    }

    /// Asks the upstreams for a pending query, caches what they say, and returns the answer
    /// (SERVFAIL when none answered).
    async fn forward(&self, pending: Box<Pending>) -> Vec<u8> {
        let generation = self.cache.generation();
        match forward::ask_upstreams(&pending.upstreams, &pending.key).await {
            Some(upstream) => {
                let bytes = pending.asked.forwarded(&upstream);
                let Pending { key, .. } = *pending;
                self.cache.insert(key, upstream, generation, Instant::now());
                bytes
            }
            None => pending.asked.upstream_failed(),
        }
    }

    /// Serves until `stop` is cancelled, on already-bound sockets (the supervisor binds them,
    /// with FREEBIND, so a VIP not held yet can be listened on). Returns when every task it
    /// started has ended.
    pub async fn serve(
        self: Arc<Self>,
        udp: Vec<UdpSocket>,
        tcp: Vec<TcpListener>,
        stop: CancellationToken,
    ) {
        let tasks = TaskTracker::new();
        let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
        for socket in udp {
            tasks.spawn(Arc::clone(&self).serve_udp(
                Arc::new(socket),
                stop.clone(),
                tasks.clone(),
                Arc::clone(&forwards),
            ));
        }
        let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
        for listener in tcp {
            tasks.spawn(Arc::clone(&self).serve_tcp(
                listener,
                stop.clone(),
                tasks.clone(),
                Arc::clone(&connections),
            ));
        }
        tasks.close();
        tasks.wait().await;
    }

    /// One UDP socket: the datagrams waiting are taken together ([`udp::Inbox`]), local
    /// answers are sent together ([`udp::Outbox`]); forwarded queries each get a task.
    async fn serve_udp(
        self: Arc<Self>,
        socket: Arc<UdpSocket>,
        stop: CancellationToken,
        tasks: TaskTracker,
        forwards: Arc<Semaphore>,
    ) {
        let local = socket.local_addr().ok();
        let ipv6 = local.is_some_and(|a| a.is_ipv6());
        let mut inbox = udp::Inbox::new(ipv6);
        let mut outbox = udp::Outbox::new(ipv6);
        // Once for the loop, not per datagram: polled first, so that a constant load does not
        // delay the stop.
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        loop {
            let ready = tokio::select! {
                biased;
                () = &mut stopped => return,
                r = socket.readable() => r,
            };
            if let Err(error) = ready {
                // The runtime is going away.
                debug!(?local, %error, "DNS UDP socket closed");
                return;
            }
            match inbox.receive(&socket) {
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => {
                    // Errors here are about one datagram (an ICMP error for an earlier
                    // answer); the socket goes on.
                    debug!(?local, %error, "DNS UDP receive failed");
                    continue;
                }
            }
            for (packet, client, address) in inbox.datagrams() {
                if client.port() == 0 {
                    continue;
                }
                let kind = stats::type_index(packet);
                let out = outbox.buffer();
                match self.answer_into(packet, client.ip(), Transport::Udp, out) {
                    Handled::Drop => self.stats.dropped(),
                    Handled::Reply => {
                        self.stats.answered(kind, out);
                        outbox.queue(client, address);
                    }
                    Handled::Forward(pending) => {
                        let Ok(permit) = Arc::clone(&forwards).try_acquire_owned() else {
                            debug!(%client, "too many DNS queries waiting for upstreams; dropped");
                            self.stats.dropped();
                            continue;
                        };
                        let dns = Arc::clone(&self);
                        let socket = Arc::clone(&socket);
                        let stop = stop.clone();
                        tasks.spawn(async move {
                            let _permit = permit;
                            let bytes = tokio::select! {
                                bytes = dns.forward(pending) => bytes,
                                () = stop.cancelled() => return,
                            };
                            dns.stats.answered(kind, &bytes);
                            if let Err(error) = socket.send_to(&bytes, client).await {
                                debug!(%client, %error, "DNS UDP send failed");
                            }
                        });
                    }
                }
            }
            outbox.flush(&socket).await;
        }
    }

    /// One TCP listener: a task per connection.
    async fn serve_tcp(
        self: Arc<Self>,
        listener: TcpListener,
        stop: CancellationToken,
        tasks: TaskTracker,
        connections: Arc<Semaphore>,
    ) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = stop.cancelled() => return,
            };
            let (stream, client) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    warn!(%error, "DNS TCP accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = stop.cancelled() => return,
                    }
                }
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                debug!(%client, "too many DNS TCP connections; closed");
                continue;
            };
            let dns = Arc::clone(&self);
            let stop = stop.clone();
            tasks.spawn(async move {
                let _permit = permit;
                tokio::select! {
                    () = dns.serve_connection(stream, client) => {}
                    () = stop.cancelled() => {}
                }
            });
        }
    }

    /// Queries on one TCP connection, each a two-byte length and a message (RFC 1035 section
    /// 4.2.2), answered in order. The connection ends at the client's close, after
    /// [`TCP_IDLE_TIMEOUT`] without a query, or on a message shorter than a header.
    async fn serve_connection(&self, mut stream: TcpStream, client: SocketAddr) {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut framed = Vec::new();
        loop {
            let Ok(Ok(len)) = timeout(TCP_IDLE_TIMEOUT, stream.read_u16()).await else {
                return;
            };
            buf.resize(usize::from(len), 0);
            if !matches!(
                timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut buf)).await,
                Ok(Ok(_))
            ) {
                return;
            }
            let kind = stats::type_index(&buf);
            match self.answer_into(&buf, client.ip(), Transport::Tcp, &mut out) {
                Handled::Drop if buf.len() < 12 => {
                    self.stats.dropped();
                    return;
                }
                Handled::Drop => {
                    self.stats.dropped();
                    continue;
                }
                Handled::Reply => {}
                Handled::Forward(pending) => out = self.forward(pending).await,
            }
            self.stats.answered(kind, &out);
            let Ok(len) = u16::try_from(out.len()) else {
                continue;
            };
            framed.clear();
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&out);
            if !matches!(
                timeout(TCP_WRITE_TIMEOUT, stream.write_all(&framed)).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use gatehouse_config::{Cidr, DnsRecord, DnsZone, RecordData, RecordSource, Soa};
    use hickory_proto::op::Message;
    use std::net::Ipv4Addr;

    fn config() -> DnsConfig {
        let record = |name: &str, data| DnsRecord {
            name: name.into(),
            ttl: 300,
            data,
            source: RecordSource::Static,
        };
        DnsConfig {
            listen: vec![],
            zones: vec![DnsZone {
                name: "home.arpa".into(),
                ttl: 3600,
                soa: Soa {
                    mname: "ns1.home.arpa".into(),
                    rname: "hostmaster.home.arpa".into(),
                    serial: 1,
                    refresh: 3600,
                    retry: 600,
                    expire: 86400,
                    minimum: 60,
                },
                ns: vec!["ns1.home.arpa".into()],
                records: vec![
                    record("www.home.arpa", RecordData::A(Ipv4Addr::new(10, 0, 0, 1))),
                    record("alias.home.arpa", RecordData::Cname("www.home.arpa".into())),
                ],
            }],
            forwarders: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5353))],
            forward_zones: vec![],
            recursion_allow: vec![Cidr {
                addr: Ipv4Addr::LOCALHOST.into(),
                prefix: 32,
            }],
            cache_size: 10,
        }
    }

    /// The fuzz target's seeds (`fuzz/seeds/answer/`, first byte: bit 0 TCP, bit 1 a client
    /// outside `recursion_allow`) are all queries: each gets an answer that parses, with its
    /// id, or goes upstream.
    #[test]
    fn fuzz_seeds_are_answered() {
        let dns = Dns::new(Arc::new(config()), Arc::new(|_: &str| true));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/answer");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let (selector, packet) = data.split_first().unwrap();
            let transport = if selector & 1 == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            };
            let client: IpAddr = if selector & 2 == 0 {
                Ipv4Addr::LOCALHOST.into()
            } else {
                Ipv4Addr::new(192, 0, 2, 1).into()
            };
            match dns.answer_local(packet, SocketAddr::new(client, 4000), transport) {
                Local::Reply(reply) => {
                    let message = Message::from_vec(&reply).unwrap();
                    assert_eq!(reply[..2], packet[..2], "{path:?}");
                    assert!(message.queries.len() <= 1, "{path:?}");
                }
                Local::Forward => assert!(path.ends_with("udp-forward-allowed")),
                Local::Drop => panic!("{path:?} dropped"),
            }
            seen += 1;
        }
        assert!(seen >= 10);
    }

    #[test]
    fn update_keeps_the_cache_only_for_the_same_upstreams() {
        let dns = Dns::new(Arc::new(config()), Arc::new(|_: &str| true));
        let key = forward::Key {
            name: hickory_proto::rr::Name::from_ascii("x.test.").unwrap(),
            qtype: hickory_proto::rr::RecordType::A,
            dnssec_ok: false,
            checking_disabled: false,
        };
        let answer = forward::Upstream {
            rcode: hickory_proto::op::ResponseCode::NoError,
            authentic_data: false,
            answers: vec![hickory_proto::rr::Record::from_rdata(
                key.name.clone(),
                60,
                hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
            )],
            authorities: vec![],
            additionals: vec![],
        };
        let now = Instant::now();
        dns.cache
            .insert(key.clone(), answer, dns.cache.generation(), now);

        let mut same = config();
        same.zones[0].records.clear();
        dns.update(Arc::new(same));
        assert!(dns.cache.get(&key, now).is_some());

        let mut other = config();
        other.forwarders = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5300))];
        dns.update(Arc::new(other));
        assert!(dns.cache.get(&key, now).is_none());
    }
}
