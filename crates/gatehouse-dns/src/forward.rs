//! Names that are not ours: the upstream resolvers (asked in turn, over UDP then TCP when the
//! answer is truncated) and the cache of their answers.
//!
//! The cache keeps positive answers for the smallest TTL among their records and negative
//! ones (NXDOMAIN, NODATA) for the SOA's negative TTL (RFC 2308 section 5), never longer than
//! [`MAX_CACHE_TTL`]; answers from it have their TTLs decremented by the time spent in it. It
//! is behind a mutex held for a map lookup or insert, never across an await.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tracing::debug;

/// How long one upstream gets to answer (and again over TCP after a truncated answer).
pub(crate) const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);

/// No answer is cached longer than this, whatever its TTL says.
pub(crate) const MAX_CACHE_TTL: u32 = 3600;

/// The UDP payload size we advertise upstream (the DNS flag day 2020 value).
const UPSTREAM_PAYLOAD: u16 = 1232;

/// What identifies a cached answer: the question and the bits of the query that change what
/// an upstream says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// The name asked (compared case-insensitively).
    pub name: Name,
    /// The type asked.
    pub qtype: RecordType,
    /// The client's EDNS DO bit, passed upstream.
    pub dnssec_ok: bool,
    /// The client's CD bit, passed upstream.
    pub checking_disabled: bool,
}

/// An upstream's answer, as cached and as served.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Upstream {
    /// NOERROR or NXDOMAIN (other codes are failures, never cached).
    pub rcode: ResponseCode,
    /// The upstream's AD bit.
    pub authentic_data: bool,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authorities: Vec<Record>,
    /// The additional section, without the upstream's OPT record.
    pub additionals: Vec<Record>,
}

impl Upstream {
    fn records(&self) -> impl Iterator<Item = &Record> {
        self.answers
            .iter()
            .chain(&self.authorities)
            .chain(&self.additionals)
    }

    fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        self.answers
            .iter_mut()
            .chain(&mut self.authorities)
            .chain(&mut self.additionals)
    }
}

/// How long an answer may be cached, if at all: the smallest TTL of a positive answer's
/// records; for a negative one (NXDOMAIN, or NOERROR with no answer), the smaller of its
/// SOA's TTL and `minimum` (none without an SOA: RFC 2308 section 5); at most
/// [`MAX_CACHE_TTL`]; `None` for zero.
pub(crate) fn cache_ttl(answer: &Upstream) -> Option<u32> {
    let negative = answer.rcode == ResponseCode::NXDomain || answer.answers.is_empty();
    let ttl = if negative {
        answer.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })?
    } else {
        answer.records().map(|r| r.ttl).min()?
    };
    Some(ttl.min(MAX_CACHE_TTL)).filter(|&t| t > 0)
}

/// The forwarding cache.
#[derive(Debug)]
pub(crate) struct Cache {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    /// Bumped by `clear`: answers asked for before it are not stored after it.
    generation: u64,
    entries: HashMap<Key, Slot>,
    /// Every entry by expiry (with a tie-breaker): the soonest to expire is the first evicted.
    by_expiry: BTreeMap<(Instant, u64), Key>,
    next_seq: u64,
}

#[derive(Debug)]
struct Slot {
    answer: Upstream,
    stored: Instant,
    expires: Instant,
    seq: u64,
}

impl Cache {
    /// An empty cache holding at most `capacity` answers (0: caches nothing).
    pub(crate) fn new(capacity: usize) -> Cache {
        Cache {
            inner: Mutex::new(Inner {
                capacity,
                generation: 0,
                entries: HashMap::new(),
                by_expiry: BTreeMap::new(),
                next_seq: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a plain map: a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current generation, to pass to [`Cache::insert`] once the upstream has answered.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The cached answer, its TTLs decremented by the whole seconds spent in the cache.
    pub(crate) fn get(&self, key: &Key, now: Instant) -> Option<Upstream> {
        let mut inner = self.lock();
        let slot = inner.entries.get(key)?;
        if slot.expires <= now {
            inner.remove(key);
            return None;
        }
        let elapsed = u32::try_from(now.duration_since(slot.stored).as_secs()).unwrap_or(u32::MAX);
        let left = u32::try_from(slot.expires.duration_since(now).as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        let mut answer = slot.answer.clone();
        drop(inner);
        for record in answer.records_mut() {
            record.ttl = record.ttl.saturating_sub(elapsed).min(left);
        }
        Some(answer)
    }

    /// Stores an answer for as long as [`cache_ttl`] says, unless the cache was cleared since
    /// `generation` was read. The entry closest to expiry makes room when the cache is full.
    pub(crate) fn insert(&self, key: Key, answer: Upstream, generation: u64, now: Instant) {
        let Some(ttl) = cache_ttl(&answer) else {
            return;
        };
        let mut inner = self.lock();
        if inner.capacity == 0 || inner.generation != generation {
            return;
        }
        inner.remove(&key);
        while inner.entries.len() >= inner.capacity {
            inner.evict_first();
        }
        let expires = now + Duration::from_secs(u64::from(ttl));
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.by_expiry.insert((expires, seq), key.clone());
        inner.entries.insert(
            key,
            Slot {
                answer,
                stored: now,
                expires,
                seq,
            },
        );
    }

    /// Forgets every answer (the upstreams changed).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
        inner.by_expiry.clear();
    }

    /// Changes the capacity, dropping the entries closest to expiry if there are too many.
    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut inner = self.lock();
        inner.capacity = capacity;
        while inner.entries.len() > capacity {
            inner.evict_first();
        }
    }

    /// How many answers are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Inner {
    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.entries.remove(key) {
            self.by_expiry.remove(&(slot.expires, slot.seq));
        }
    }

    fn evict_first(&mut self) {
        match self.by_expiry.pop_first() {
            Some((_, key)) => {
                self.entries.remove(&key);
            }
            // Cannot happen (both maps hold the same entries); never loop forever.
            None => self.entries.clear(),
        }
    }
}

/// Why an upstream gave no usable answer.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// No answer in time.
    Timeout,
    /// A socket error.
    Io(io::Error),
    /// The answer did not parse or did not match the query.
    Malformed,
    /// An answer with a code other than NOERROR or NXDOMAIN.
    Rcode(ResponseCode),
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Timeout => write!(f, "no answer within {UPSTREAM_TIMEOUT:?}"),
            UpstreamError::Io(e) => write!(f, "{e}"),
            UpstreamError::Malformed => f.write_str("answer malformed or not for our query"),
            UpstreamError::Rcode(rcode) => write!(f, "answered {rcode}"),
        }
    }
}

impl From<io::Error> for UpstreamError {
    fn from(e: io::Error) -> Self {
        UpstreamError::Io(e)
    }
}

/// Asks each upstream in turn; the first usable answer wins. `None` when all failed.
pub(crate) async fn ask_upstreams(upstreams: &[SocketAddr], key: &Key) -> Option<Upstream> {
    for &upstream in upstreams {
        match ask(upstream, key).await {
            Ok(answer) => return Some(answer),
            Err(error) => {
                debug!(%upstream, name = %key.name, qtype = %key.qtype, %error, "DNS upstream failed");
            }
        }
    }
    None
}

/// One upstream: UDP, then TCP if the UDP answer is truncated (RFC 7766 section 5), each with
/// [`UPSTREAM_TIMEOUT`].
pub(crate) async fn ask(upstream: SocketAddr, key: &Key) -> Result<Upstream, UpstreamError> {
    let id = random_id();
    let query = query_bytes(id, key).map_err(|_| UpstreamError::Malformed)?;
    let mut reply = timeout(UPSTREAM_TIMEOUT, udp_exchange(upstream, &query, id, key))
        .await
        .map_err(|_| UpstreamError::Timeout)??;
    if reply.metadata.truncation {
        reply = timeout(UPSTREAM_TIMEOUT, tcp_exchange(upstream, &query, id, key))
            .await
            .map_err(|_| UpstreamError::Timeout)??;
    }
    match reply.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(Upstream {
            rcode: reply.metadata.response_code,
            authentic_data: reply.metadata.authentic_data,
            answers: reply.answers,
            authorities: reply.authorities,
            additionals: reply.additionals,
        }),
        other => Err(UpstreamError::Rcode(other)),
    }
}

/// Our query to an upstream: a fresh id, RD, the client's CD and DO, EDNS with our size.
fn query_bytes(id: u16, key: &Key) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = key.checking_disabled;
    let mut query = Query::query(key.name.clone(), key.qtype);
    query.set_query_class(DNSClass::IN);
    message.add_query(query);
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD);
    edns.set_dnssec_ok(key.dnssec_ok);
    message.set_edns(edns);
    message.to_vec()
}

/// Whether `reply` answers our query `id` for `key` (RFC 5452 section 9.1: id and question).
fn matches(reply: &Message, id: u16, key: &Key) -> bool {
    reply.metadata.id == id
        && reply.metadata.message_type == MessageType::Response
        && reply.queries.len() == 1
        && reply.queries[0].name() == &key.name
        && reply.queries[0].query_type() == key.qtype
        && reply.queries[0].query_class() == DNSClass::IN
}

async fn udp_exchange(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    key: &Key,
) -> Result<Message, UpstreamError> {
    // A loopback upstream is asked from loopback; others from any address.
    let local: SocketAddr = match (upstream, upstream.ip().is_loopback()) {
        (SocketAddr::V4(_), true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (SocketAddr::V4(_), false) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (SocketAddr::V6(_), true) => (Ipv6Addr::LOCALHOST, 0).into(),
        (SocketAddr::V6(_), false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: datagrams from anyone but the upstream are filtered out by the kernel.
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buf).await?;
        let Some(packet) = buf.get(..n) else {
            continue;
        };
        // Anything else (a late answer to an earlier query, a forgery) is ignored.
        if let Ok(reply) = Message::from_vec(packet)
            && matches(&reply, id, key)
        {
            return Ok(reply);
        }
    }
}

async fn tcp_exchange(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    key: &Key,
) -> Result<Message, UpstreamError> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Malformed)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    match Message::from_vec(&buf) {
        Ok(reply) if matches(&reply, id, key) => Ok(reply),
        _ => Err(UpstreamError::Malformed),
    }
}

/// A query id nobody can guess (RFC 5452 section 4.3): a counter hashed with a random key.
fn random_id() -> u16 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let hash = RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hash & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn key(s: &str) -> Key {
        Key {
            name: name(s),
            qtype: RecordType::A,
            dnssec_ok: false,
            checking_disabled: false,
        }
    }

    fn a(ttl: u32) -> Record {
        Record::from_rdata(name("x.test."), ttl, RData::A(A::new(192, 0, 2, 1)))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let data = SOA::new(name("ns.test."), name("h.test."), 1, 2, 3, 4, minimum);
        Record::from_rdata(name("test."), ttl, RData::SOA(data))
    }

    fn upstream(rcode: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Upstream {
        Upstream {
            rcode,
            authentic_data: false,
            answers,
            authorities,
            additionals: vec![],
        }
    }

    #[test]
    fn ttls() {
        use ResponseCode::*;
        let table: &[(Upstream, Option<u32>)] = &[
            (upstream(NoError, vec![a(300), a(100)], vec![]), Some(100)),
            (
                upstream(NoError, vec![a(300)], vec![soa(50, 900)]),
                Some(50),
            ),
            (upstream(NoError, vec![a(0)], vec![]), None),
            (
                upstream(NoError, vec![a(86400)], vec![]),
                Some(MAX_CACHE_TTL),
            ),
            // Negative: min(SOA TTL, minimum), none without an SOA.
            (upstream(NXDomain, vec![], vec![soa(600, 30)]), Some(30)),
            (upstream(NXDomain, vec![], vec![soa(20, 30)]), Some(20)),
            (
                upstream(NoError, vec![], vec![soa(9000, 9000)]),
                Some(MAX_CACHE_TTL),
            ),
            (upstream(NXDomain, vec![], vec![]), None),
            (upstream(NoError, vec![], vec![]), None),
        ];
        for (answer, want) in table {
            assert_eq!(cache_ttl(answer), *want, "{answer:?}");
        }
    }

    #[test]
    fn decrements_and_expires() {
        let cache = Cache::new(10);
        let t0 = Instant::now();
        let answer = upstream(ResponseCode::NoError, vec![a(300), a(10)], vec![]);
        cache.insert(key("x.test."), answer, cache.generation(), t0);
        // Case does not matter.
        let got = cache
            .get(&key("X.Test."), t0 + Duration::from_secs(3))
            .unwrap();
        assert_eq!(
            got.answers.iter().map(|r| r.ttl).collect::<Vec<_>>(),
            [7, 7],
            "TTLs down by 3 s, and no longer than the entry lives"
        );
        assert!(
            cache
                .get(&key("x.test."), t0 + Duration::from_secs(10))
                .is_none()
        );
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn capacity_and_clear() {
        let cache = Cache::new(2);
        let t0 = Instant::now();
        let g = cache.generation();
        for (i, ttl) in [(1, 100), (2, 50), (3, 200)] {
            let answer = upstream(ResponseCode::NoError, vec![a(ttl)], vec![]);
            cache.insert(key(&format!("n{i}.test.")), answer, g, t0);
        }
        // The entry closest to expiry (n2) made room.
        assert!(cache.get(&key("n2.test."), t0).is_none());
        assert!(cache.get(&key("n1.test."), t0).is_some());
        assert!(cache.get(&key("n3.test."), t0).is_some());
        cache.set_capacity(1);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key("n3.test."), t0).is_some());

        // An answer asked for before a clear is not stored after it.
        cache.clear();
        let answer = upstream(ResponseCode::NoError, vec![a(100)], vec![]);
        cache.insert(key("late.test."), answer.clone(), g, t0);
        assert_eq!(cache.len(), 0);
        cache.insert(key("late.test."), answer, cache.generation(), t0);
        assert_eq!(cache.len(), 1);

        let none = Cache::new(0);
        let answer = upstream(ResponseCode::NoError, vec![a(100)], vec![]);
        none.insert(key("x.test."), answer, none.generation(), t0);
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn query_matching() {
        let k = key("x.test.");
        let bytes = query_bytes(42, &k).unwrap();
        let mut reply = Message::from_vec(&bytes).unwrap();
        assert!(!matches(&reply, 42, &k), "a query is not an answer");
        reply.metadata.message_type = MessageType::Response;
        assert!(matches(&reply, 42, &k));
        assert!(!matches(&reply, 43, &k));
        assert!(!matches(&reply, 42, &key("y.test.")));
        assert_eq!(reply.edns.as_ref().unwrap().max_payload(), UPSTREAM_PAYLOAD);
        assert!(reply.metadata.recursion_desired);
    }
}
