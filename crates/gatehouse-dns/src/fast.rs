//! The fast path: the answer to the common query written straight into a reused buffer, with
//! no hickory `Message` parsed, built or encoded, and no `Name` built.
//!
//! The common query: opcode QUERY, QR clear, one question of class IN whose name has no
//! compression pointer, no answer or authority records, at most one additional record and
//! that one an OPT record of EDNS version 0 without the options hickory parses (NSID, DAU,
//! client subnet), nothing after it; a type other than ANY, OPT, AXFR and IXFR; a name that a
//! local zone answers with records of that type (exact or from a wildcard), NODATA or
//! NXDOMAIN, without a CNAME to follow; and an answer that fits the client's size. For every
//! other packet [`answer`] returns `false`, and the general path (`answer::respond`) answers.
//!
//! When the fast path answers, its bytes are the general path's, byte for byte (the
//! differential tests below and the fuzz target check it): the header as `Asked::message` and
//! `answer::respond` set it, the question as the query had it, the records in the general
//! path's order and the OPT record; names are compressed the way hickory's `BinEncoder`
//! compresses them: a name's suffixes, longest first, are matched case-sensitively against
//! the suffixes of the names written before it, earliest first, at most 64 of them, and only
//! below offset 0x3FFF; SRV targets are never compressed but are remembered.
//!
//! The lookup: an [`Index`], built with the zones, maps the lower-cased wire form of every name
//! where a lookup can stop (the names that exist in each zone, the apexes, the forward zones)
//! to what the general path does for that name and for the names under it that are not in
//! the map: answered by a zone (its own records, or the wildcard of its closest encloser, or
//! NXDOMAIN), or not by a local zone. A query walks its name's suffixes by byte offset,
//! longest first, and the first one in the map decides. Health is asked at query time for each
//! automatic record, as the general path does, so health changes apply at once.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;

use gatehouse_config::Transport;
use hickory_proto::rr::rdata::{CNAME, NS, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::State;
use crate::answer::{OUR_PAYLOAD, PLAIN_UDP_MAX, TCP_MAX};
use crate::zones::{Entry, Zone, Zones};

/// Name suffixes the fast path remembers for compression without allocating; more (up to
/// hickory's 64) go to a `Vec`.
const INLINE: usize = 16;

/// hickory's limit on the name suffixes remembered for compression
/// (`COMPRESSION_CANDIDATE_LIMIT`).
const HICKORY_CANDIDATES: usize = 64;

/// hickory compresses at most this many names per message (`COMPRESSED_NAME_LIMIT`).
const HICKORY_COMPRESSED_NAMES: usize = 120;

/// hickory remembers a suffix only when the name ends below this offset.
const POINTER_LIMIT: usize = 0x3FFF;

/// Most automatic records in one RRset the fast path chooses from (a bit each in a `u64`).
const MAX_AUTO: usize = 64;

/// The names of the zones, ready for the fast path.
pub(crate) struct Index {
    /// Lower-cased wire form (labels without the final zero) -> what a lookup stopping there
    /// does.
    names: HashMap<Box<[u8]>, Target, Seeded>,
    /// The nodes [`Target::Local`] points at.
    nodes: Vec<Node>,
    /// The SOA and NS records of each zone, in `Zones::zones` order.
    zones: Vec<ZoneRecords>,
    /// `Zones::has_upstreams`.
    has_upstreams: bool,
    /// `false` when a name could not be indexed: then the general path answers everything.
    usable: bool,
}

/// What the general path does for a name in the map, and for the names under it that are not.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// No local zone answers (forwarded, the reverse index, refused): the general path.
    Elsewhere,
    /// `Zones::zones[zone]` answers.
    Local {
        /// The zone's index.
        zone: usize,
        /// The name's own node, if it exists in that zone.
        exact: Option<usize>,
        /// The wildcard (`*`) child of the name's closest encloser in that zone, if it has
        /// records: it answers for the names under this one, and for this one if it does not
        /// exist.
        wildcard: Option<usize>,
    },
}

/// The records of one name.
struct Node {
    /// The name is its zone's apex (SOA and NS come from the zone).
    apex: bool,
    /// By type.
    rrsets: Vec<RrSet>,
    /// It has a CNAME: asked for another type, the general path follows it.
    has_cname: bool,
}

/// The records of one name and type, in the config's order.
struct RrSet {
    rtype: u16,
    /// Static records: always answered.
    fixed: Vec<Rr>,
    /// Automatic records, with their backends.
    auto: Vec<(Rr, Vec<String>)>,
    /// Every record converted (else the general path answers, with its SERVFAIL).
    usable: bool,
}

/// A zone's own records, `None` where one could not be converted.
struct ZoneRecords {
    soa: Option<Rr>,
    negative_soa: Option<Rr>,
    ns: Option<Vec<Rr>>,
}

/// One resource record, precompiled.
struct Rr {
    /// The owner, wire labels without the final zero, its case as configured.
    owner: Box<[u8]>,
    /// Type, class and TTL.
    head: [u8; 8],
    rdata: Rdata,
}

/// Record data: bytes, with the names apart (they are compressed where they are written).
enum Rdata {
    /// No names: A, AAAA, TXT.
    Bytes(Box<[u8]>),
    /// One name, compressed: CNAME, NS, PTR.
    Name(Box<[u8]>),
    /// Priority, weight and port, then the target (never compressed).
    Srv([u8; 6], Box<[u8]>),
    /// MNAME and RNAME (compressed), then the five numbers.
    Soa(Box<[u8]>, Box<[u8]>, [u8; 20]),
}

impl Index {
    /// Indexes `zones`.
    pub(crate) fn new(zones: &Zones) -> Index {
        let mut index = Index {
            names: HashMap::with_hasher(Seeded::random()),
            nodes: Vec::new(),
            zones: zones.zones.iter().map(ZoneRecords::new).collect(),
            has_upstreams: zones.has_upstreams(),
            usable: true,
        };
        let mut node_ids: HashMap<(usize, Box<[u8]>), usize> = HashMap::new();
        let names = zones
            .zones
            .iter()
            .flat_map(|z| z.exists.iter())
            .chain(zones.forward_zones.iter().map(|(name, _)| name));
        for name in names {
            let Some(key) = key(name) else {
                index.usable = false;
                continue;
            };
            if index.names.contains_key(&key) {
                continue;
            }
            let target = match zones.local_zone(name) {
                None => Target::Elsewhere,
                Some(z) => match zones.zones.get(z) {
                    Some(zone) => Target::Local {
                        zone: z,
                        exact: index.node(&mut node_ids, z, zone, name, false),
                        wildcard: closest_encloser(zone, name)
                            .and_then(|e| e.prepend_label("*").ok())
                            .and_then(|w| index.node(&mut node_ids, z, zone, &w, true)),
                    },
                    None => Target::Elsewhere,
                },
            };
            index.names.insert(key, target);
        }
        index
    }

    /// The node of `name` in zone `z`, added if new; `None` if the name does not exist there,
    /// or, with `records`, has no records (a wildcard answers only then).
    fn node(
        &mut self,
        ids: &mut HashMap<(usize, Box<[u8]>), usize>,
        z: usize,
        zone: &Zone,
        name: &Name,
        records: bool,
    ) -> Option<usize> {
        let entries = match zone.nodes.get(name) {
            Some(entries) => entries.as_slice(),
            None if !records && zone.exists.contains(name) => &[],
            None => return None,
        };
        let Some(key) = key(name) else {
            self.usable = false;
            return None;
        };
        // A wildcard is looked up as a child of the closest encloser, and also exists as a
        // name of its own: one node serves both.
        if let Some(&id) = ids.get(&(z, key.clone())) {
            return Some(id);
        }
        let id = self.nodes.len();
        self.nodes.push(Node::new(entries, *name == zone.apex));
        ids.insert((z, key), id);
        Some(id)
    }
}

/// The longest suffix of `name` (itself included) that exists in `zone`, as
/// `Zone::lookup` finds it.
fn closest_encloser(zone: &Zone, name: &Name) -> Option<Name> {
    let mut encloser = name.clone();
    while !zone.exists.contains(&encloser) {
        if encloser.is_root() {
            return None;
        }
        encloser = encloser.base_name();
    }
    Some(encloser)
}

impl Node {
    fn new(entries: &[Entry], apex: bool) -> Node {
        let mut rrsets: Vec<RrSet> = Vec::new();
        for entry in entries {
            let rtype = u16::from(entry.record.record_type());
            let set = match rrsets.iter().position(|s| s.rtype == rtype) {
                Some(i) => &mut rrsets[i],
                None => {
                    rrsets.push(RrSet {
                        rtype,
                        fixed: Vec::new(),
                        auto: Vec::new(),
                        usable: true,
                    });
                    let last = rrsets.len() - 1;
                    &mut rrsets[last]
                }
            };
            let Some(rr) = Rr::new(&entry.record) else {
                set.usable = false;
                continue;
            };
            match &entry.backends {
                None => set.fixed.push(rr),
                Some(backends) => {
                    set.auto.push((rr, backends.clone()));
                    if set.auto.len() > MAX_AUTO {
                        set.usable = false;
                    }
                }
            }
        }
        Node {
            apex,
            has_cname: entries
                .iter()
                .any(|e| matches!(e.record.data, RData::CNAME(_))),
            rrsets,
        }
    }
}

impl ZoneRecords {
    fn new(zone: &Zone) -> ZoneRecords {
        ZoneRecords {
            soa: Rr::new(&zone.soa),
            negative_soa: Rr::new(&zone.negative_soa),
            ns: zone.ns.iter().map(Rr::new).collect(),
        }
    }
}

impl Rr {
    /// `record` precompiled; `None` for data the fast path does not write, or that hickory
    /// would not encode.
    fn new(record: &Record) -> Option<Rr> {
        let mut head = [0u8; 8];
        head[..2].copy_from_slice(&u16::from(record.record_type()).to_be_bytes());
        head[2..4].copy_from_slice(&u16::from(record.dns_class).to_be_bytes());
        head[4..].copy_from_slice(&record.ttl.to_be_bytes());
        let rdata = match &record.data {
            RData::A(_) | RData::AAAA(_) | RData::TXT(_) => {
                let mut bytes = Vec::new();
                record.data.emit(&mut BinEncoder::new(&mut bytes)).ok()?;
                Rdata::Bytes(bytes.into())
            }
            RData::CNAME(CNAME(name)) | RData::NS(NS(name)) | RData::PTR(PTR(name)) => {
                Rdata::Name(wire(name)?)
            }
            RData::SRV(srv) => {
                let mut fixed = [0u8; 6];
                fixed[..2].copy_from_slice(&srv.priority.to_be_bytes());
                fixed[2..4].copy_from_slice(&srv.weight.to_be_bytes());
                fixed[4..].copy_from_slice(&srv.port.to_be_bytes());
                Rdata::Srv(fixed, wire(&srv.target)?)
            }
            RData::SOA(soa) => {
                let mut numbers = [0u8; 20];
                numbers[..4].copy_from_slice(&soa.serial.to_be_bytes());
                numbers[4..8].copy_from_slice(&soa.refresh.to_be_bytes());
                numbers[8..12].copy_from_slice(&soa.retry.to_be_bytes());
                numbers[12..16].copy_from_slice(&soa.expire.to_be_bytes());
                numbers[16..].copy_from_slice(&soa.minimum.to_be_bytes());
                Rdata::Soa(wire(&soa.mname)?, wire(&soa.rname)?, numbers)
            }
            _ => return None,
        };
        Some(Rr {
            owner: wire(&record.name)?,
            head,
            rdata,
        })
    }
}

/// A name's wire form: its labels, each with its length, without the final zero; `None` when
/// hickory would not encode it (an empty label, one over 63 bytes, over 255 bytes in all).
fn wire(name: &Name) -> Option<Box<[u8]>> {
    let mut out = Vec::with_capacity(64);
    for label in name.iter() {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(u8::try_from(label.len()).ok()?);
        out.extend_from_slice(label);
    }
    (out.len() < 255).then(|| out.into())
}

/// The map key of a name: its wire form, lower-cased as hickory compares names (ASCII).
fn key(name: &Name) -> Option<Box<[u8]>> {
    let mut key = wire(name)?;
    key.make_ascii_lowercase();
    Some(key)
}

/// What the fast path needs of a query.
struct Query<'p> {
    /// The header.
    header: &'p [u8],
    /// The question's name: wire labels without the final zero, as sent.
    name: &'p [u8],
    /// The question's type and class, as sent.
    type_class: &'p [u8],
    /// The question's type.
    qtype: u16,
    /// `Some(DO bit)` when the query had an OPT record.
    edns: Option<bool>,
    /// The largest answer the client takes.
    limit: usize,
}

impl<'p> Query<'p> {
    /// The query, if it is a common one (see the module's documentation).
    fn parse(packet: &'p [u8], transport: Transport) -> Option<Query<'p>> {
        let header = packet.get(..12)?;
        // QR clear, opcode QUERY; the other flags do not change the answer.
        if header.get(2)? & 0xf8 != 0 {
            return None;
        }
        let additional = match header.get(4..)? {
            [0, 1, 0, 0, 0, 0, 0, n @ (0 | 1)] => *n,
            _ => return None,
        };
        let mut end = 12;
        loop {
            let len = *packet.get(end)?;
            if len == 0 {
                break;
            }
            // A pointer (or a reserved label type): the general path.
            if len > 63 {
                return None;
            }
            end += 1 + usize::from(len);
        }
        let name = packet.get(12..end)?;
        // With the final zero, at most 255 bytes (hickory's limit).
        if name.len() >= 255 {
            return None;
        }
        let type_class = packet.get(end + 1..end + 5)?;
        let &[t1, t2, 0, 1] = type_class else {
            return None;
        };
        let qtype = u16::from_be_bytes([t1, t2]);
        if !plain_type(qtype) {
            return None;
        }
        let rest = packet.get(end + 5..)?;
        let udp = transport == Transport::Udp;
        let (edns, limit) = if additional == 0 {
            if !rest.is_empty() {
                return None;
            }
            (None, if udp { PLAIN_UDP_MAX } else { TCP_MAX })
        } else {
            // Root name, type OPT, payload size, extended RCODE, version 0, flags, length.
            let (opt, options) = rest.split_at_checked(11)?;
            let &[0, 0, 41, p1, p2, _, 0, flags, _, l1, l2] = opt else {
                return None;
            };
            if usize::from(u16::from_be_bytes([l1, l2])) != options.len() || !plain_options(options)
            {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes([p1, p2]));
            let limit = if udp {
                payload.clamp(PLAIN_UDP_MAX, usize::from(OUR_PAYLOAD))
            } else {
                TCP_MAX
            };
            (Some(flags & 0x80 != 0), limit)
        };
        Some(Query {
            header,
            name,
            type_class,
            qtype,
            edns,
            limit,
        })
    }
}

/// A question type the fast path answers: not a meta type the general path treats apart (ANY,
/// OPT, AXFR, IXFR), and one hickory gives back as it read it.
fn plain_type(qtype: u16) -> bool {
    let rtype = RecordType::from(qtype);
    !matches!(
        rtype,
        RecordType::ANY | RecordType::OPT | RecordType::AXFR | RecordType::IXFR
    ) && u16::from(rtype) == qtype
}

/// Whether EDNS options are well formed (code, length, data; nothing left over) and none is
/// one that hickory parses and may reject: NSID (3), DAU (5), client subnet (8).
fn plain_options(mut options: &[u8]) -> bool {
    while !options.is_empty() {
        let Some((&[c1, c2, l1, l2], rest)) = options.split_first_chunk::<4>() else {
            return false;
        };
        if matches!(u16::from_be_bytes([c1, c2]), 3 | 5 | 8) {
            return false;
        }
        match rest.get(usize::from(u16::from_be_bytes([l1, l2]))..) {
            Some(rest) => options = rest,
            None => return false,
        }
    }
    true
}

/// Writes the answer to `packet` into `out` if the fast path can give it (see the module's
/// documentation), and says whether it did; `out` is cleared either way first.
pub(crate) fn answer(
    state: &State,
    health: &dyn Fn(&str) -> bool,
    packet: &[u8],
    client: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    if !state.fast.usable {
        return false;
    }
    let done = write(state, health, packet, client, transport, out).is_some();
    if !done {
        out.clear();
    }
    done
}

fn write(
    state: &State,
    health: &dyn Fn(&str) -> bool,
    packet: &[u8],
    client: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<()> {
    let index = &state.fast;
    let query = Query::parse(packet, transport)?;

    let mut lower = [0u8; 255];
    let lower = lower.get_mut(..query.name.len())?;
    lower.copy_from_slice(query.name);
    lower.make_ascii_lowercase();
    // The longest suffix in the map decides; none (the root is not there): not ours.
    let mut at = 0;
    let (target, whole) = loop {
        let suffix = lower.get(at..)?;
        if let Some(target) = index.names.get(suffix) {
            break (*target, at == 0);
        }
        at += 1 + usize::from(*suffix.first()?);
    };
    let Target::Local {
        zone,
        exact,
        wildcard,
    } = target
    else {
        return None;
    };
    let records = index.zones.get(zone)?;
    // The node answering, and whether it is a wildcard's (the records take the name asked).
    let node = match (whole, exact) {
        (true, Some(node)) => Some((node, false)),
        _ => wildcard.map(|node| (node, true)),
    };

    let may_recurse = index.has_upstreams
        && state
            .config
            .recursion_allow
            .iter()
            .any(|net| net.contains(client));
    let &[id1, id2, flags1, flags2, ..] = query.header else {
        return None;
    };
    // QR, AA and the query's RD; RA, and the query's CD. Counts and RCODE are set at the end.
    out.extend_from_slice(&[
        id1,
        id2,
        0x84 | (flags1 & 0x01),
        (u8::from(may_recurse) << 7) | (flags2 & 0x10),
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    let mut w = Writer::new(out);
    w.question(query.name);
    w.out.extend_from_slice(query.type_class);

    let mut rcode = 0;
    let mut answers = 0;
    let mut negative = false;
    match node {
        None => {
            rcode = 3;
            negative = true;
        }
        Some((id, synthesized)) => {
            let node = index.nodes.get(id)?;
            let owner = synthesized.then_some(query.name);
            let apex = !synthesized && node.apex;
            if apex && query.qtype == u16::from(RecordType::SOA) {
                w.rr(records.soa.as_ref()?, owner)?;
                answers = 1;
            } else if apex && query.qtype == u16::from(RecordType::NS) {
                for rr in records.ns.as_ref()? {
                    w.rr(rr, owner)?;
                    answers += 1;
                }
            } else if let Some(set) = node.rrsets.iter().find(|s| s.rtype == query.qtype) {
                answers = w.rrset(set, owner, health)?;
            }
            if answers == 0 {
                // The general path follows a CNAME.
                if node.has_cname && query.qtype != u16::from(RecordType::CNAME) {
                    return None;
                }
                negative = true;
            }
        }
    }
    if negative {
        w.rr(records.negative_soa.as_ref()?, None)?;
    }
    if let Some(dnssec_ok) = query.edns {
        // Root, OPT, our size, version 0, DO as asked, no options.
        let [s1, s2] = OUR_PAYLOAD.to_be_bytes();
        let flags = if dnssec_ok { 0x80 } else { 0 };
        w.out
            .extend_from_slice(&[0, 0, 41, s1, s2, 0, 0, flags, 0, 0, 0]);
    }
    if out.len() > query.limit {
        // TC: the general path.
        return None;
    }
    let [a1, a2] = u16::try_from(answers).ok()?.to_be_bytes();
    let header = out.get_mut(..12)?;
    header[3] |= rcode;
    header[6] = a1;
    header[7] = a2;
    header[9] = u8::from(negative);
    header[11] = u8::from(query.edns.is_some());
    Some(())
}

/// Writes records and names into an answer as hickory's `BinEncoder` would.
struct Writer<'o, 'a> {
    out: &'o mut Vec<u8>,
    /// The first name suffixes written (decompressed), where they start.
    table: [(usize, &'a [u8]); INLINE],
    /// The others, up to hickory's limit.
    more: Vec<(usize, &'a [u8])>,
    /// How many are in `table` and `more`.
    stored: usize,
    /// Names written with compression.
    compressed: usize,
}

impl<'o, 'a> Writer<'o, 'a> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        Writer {
            out,
            table: [(0, &[][..]); INLINE],
            more: Vec::new(),
            stored: 0,
            compressed: 0,
        }
    }

    /// The question's name, the first name of the message: written whole, its suffixes
    /// remembered (what [`Writer::name`] does with an empty table, quicker).
    fn question(&mut self, name: &'a [u8]) {
        let start = self.out.len();
        self.compressed = 1;
        let mut at = 0;
        while let (Some(&len), Some(suffix)) = (name.get(at), name.get(at..)) {
            // At most 127 labels: 64 fit.
            if self.stored < HICKORY_CANDIDATES {
                match self.table.get_mut(self.stored) {
                    Some(slot) => *slot = (start + at, suffix),
                    None => self.more.push((start + at, suffix)),
                }
                self.stored += 1;
            }
            at += 1 + usize::from(len);
        }
        self.out.extend_from_slice(name);
        self.out.push(0);
    }

    /// A name (wire labels without the final zero), compressed (or not, like an SRV target),
    /// its suffixes remembered.
    fn name(&mut self, name: &'a [u8], compress: bool) -> Option<()> {
        let start = self.out.len();
        let end = start + name.len();
        let compress = compress && self.compressed < HICKORY_COMPRESSED_NAMES;
        if compress {
            self.compressed += 1;
        }
        let mut at = 0;
        while let Some(&len) = name.get(at) {
            let suffix = name.get(at..)?;
            if compress && let Some(pointer) = self.find(suffix) {
                self.out.extend_from_slice(name.get(..at)?);
                let pointer = 0xc000 | u16::try_from(pointer).ok()?;
                self.out.extend_from_slice(&pointer.to_be_bytes());
                return Some(());
            }
            if end < POINTER_LIMIT && self.stored < HICKORY_CANDIDATES {
                match self.table.get_mut(self.stored) {
                    Some(slot) => *slot = (start + at, suffix),
                    None => self.more.push((start + at, suffix)),
                }
                self.stored += 1;
            }
            at += 1 + usize::from(len);
        }
        self.out.extend_from_slice(name);
        self.out.push(0);
        Some(())
    }

    /// Where `suffix` was written first, if it was.
    fn find(&self, suffix: &[u8]) -> Option<usize> {
        self.table
            .iter()
            .take(self.stored)
            .chain(&self.more)
            // A wildcard's records take the question's very name: no need to compare.
            .find(|(_, s)| std::ptr::eq(*s, suffix) || *s == suffix)
            .map(|&(at, _)| at)
    }

    /// One record, its owner `owner` if given (a wildcard's records take the name asked).
    fn rr(&mut self, rr: &'a Rr, owner: Option<&'a [u8]>) -> Option<()> {
        self.name(owner.unwrap_or(&rr.owner), true)?;
        self.out.extend_from_slice(&rr.head);
        let length_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        match &rr.rdata {
            Rdata::Bytes(bytes) => self.out.extend_from_slice(bytes),
            Rdata::Name(name) => self.name(name, true)?,
            Rdata::Srv(fixed, target) => {
                self.out.extend_from_slice(fixed);
                self.name(target, false)?;
            }
            Rdata::Soa(mname, rname, numbers) => {
                self.name(mname, true)?;
                self.name(rname, true)?;
                self.out.extend_from_slice(numbers);
            }
        }
        let length = u16::try_from(self.out.len() - length_at - 2).ok()?;
        self.out
            .get_mut(length_at..length_at + 2)?
            .copy_from_slice(&length.to_be_bytes());
        Some(())
    }

    /// The records of `set` to answer, as `zones::select` picks them: static ones, then the
    /// automatic ones whose backends have an endpoint up (one without backends is up), or all
    /// of them when none is. Returns how many.
    fn rrset(
        &mut self,
        set: &'a RrSet,
        owner: Option<&'a [u8]>,
        health: &dyn Fn(&str) -> bool,
    ) -> Option<usize> {
        if !set.usable {
            return None;
        }
        for rr in &set.fixed {
            self.rr(rr, owner)?;
        }
        let mut up = 0u64;
        for (i, (_, backends)) in set.auto.iter().enumerate() {
            if backends.is_empty() || backends.iter().any(|b| health(b)) {
                up |= 1 << i;
            }
        }
        let mut written = set.fixed.len();
        for (i, (rr, _)) in set.auto.iter().enumerate() {
            if up == 0 || up & (1 << i) != 0 {
                self.rr(rr, owner)?;
                written += 1;
            }
        }
        Some(written)
    }
}

/// The map's hasher: a multiply-rotate hash of 8 bytes at a time (names are short; SipHash
/// was a visible part of the lookup), seeded at random per index.
#[derive(Clone, Copy)]
struct Seeded(u64);

impl Seeded {
    fn random() -> Seeded {
        Seeded(RandomState::new().hash_one(0x6761_7465_686f_7573_u64))
    }
}

impl BuildHasher for Seeded {
    type Hasher = Folding;

    fn build_hasher(&self) -> Folding {
        Folding(self.0)
    }
}

/// The hasher [`Seeded`] builds.
struct Folding(u64);

/// An odd constant with well-spread bits (rustc-hash's).
const MULTIPLIER: u64 = 0xf135_7aea_2e62_a9c5;

impl Folding {
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(MULTIPLIER).rotate_left(23);
    }
}

impl Hasher for Folding {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            if let Ok(word) = <[u8; 8]>::try_from(chunk) {
                self.add(u64::from_le_bytes(word));
            }
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // Spread the high bits down: hashbrown takes the bucket from the low bits and the
        // tag from the top seven.
        let h = self.0;
        (h ^ (h >> 32)).wrapping_mul(MULTIPLIER) ^ (h >> 29)
    }
}

#[cfg(test)]
mod tests {
    //! The differential tests: wherever the fast path answers, its bytes are the general
    //! path's. And the callgrind bench (ignored).
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    use gatehouse_config::{
        Cidr, DnsConfig, DnsRecord, DnsZone, ForwardZone, RecordData, RecordSource, Soa, Transport,
    };

    use super::OUR_PAYLOAD;
    use crate::{Dns, Local};

    fn record(name: &str, data: RecordData) -> DnsRecord {
        DnsRecord {
            name: name.into(),
            ttl: 300,
            data,
            source: RecordSource::Static,
        }
    }

    fn auto(name: &str, ip: [u8; 4], backends: &[&str]) -> DnsRecord {
        DnsRecord {
            name: name.into(),
            ttl: 5,
            data: RecordData::A(Ipv4Addr::from(ip)),
            source: RecordSource::Auto {
                listener: "gw/web".into(),
                backends: backends.iter().map(|b| (*b).to_owned()).collect(),
            },
        }
    }

    fn zone(name: &str, soa: (&str, &str), ns: &[&str], records: Vec<DnsRecord>) -> DnsZone {
        DnsZone {
            name: name.into(),
            ttl: 3600,
            soa: Soa {
                mname: soa.0.into(),
                rname: soa.1.into(),
                serial: 2024,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: 60,
            },
            ns: ns.iter().map(|n| (*n).to_owned()).collect(),
            records,
        }
    }

    fn txt(total: usize) -> RecordData {
        RecordData::Txt(
            (0..total / 250)
                .map(|i| format!("{i}").repeat(250))
                .collect(),
        )
    }

    /// Every kind of name and record, nested zones, a forward zone inside a local one, and
    /// names whose case differs from the queries' (compression is case-sensitive).
    fn config() -> DnsConfig {
        let a = |n: &str, ip: [u8; 4]| record(n, RecordData::A(Ipv4Addr::from(ip)));
        let home = vec![
            a("www.home.arpa", [10, 0, 0, 1]),
            record("www.home.arpa", RecordData::Txt(vec!["hello world".into()])),
            record(
                "v6.home.arpa",
                RecordData::Aaaa("2001:db8::1".parse().unwrap()),
            ),
            record("alias.home.arpa", RecordData::Cname("www.home.arpa".into())),
            record("out.home.arpa", RecordData::Cname("example.org".into())),
            record(
                "_http._tcp.home.arpa",
                RecordData::Srv {
                    priority: 10,
                    weight: 5,
                    port: 8080,
                    target: "www.home.arpa".into(),
                },
            ),
            record(
                "_http._tcp.home.arpa",
                RecordData::Srv {
                    priority: 20,
                    weight: 5,
                    port: 8080,
                    target: "_http._tcp.home.arpa".into(),
                },
            ),
            a("*.apps.home.arpa", [10, 0, 0, 3]),
            a("*.apps.home.arpa", [10, 0, 0, 4]),
            record("own.apps.home.arpa", RecordData::Txt(vec!["own".into()])),
            a("deep.a.b.home.arpa", [10, 0, 0, 5]),
            a("x.*.w.home.arpa", [10, 0, 0, 6]),
            auto("svc.home.arpa", [10, 1, 0, 1], &["blue"]),
            auto("svc.home.arpa", [10, 1, 0, 2], &["green"]),
            auto("svc.home.arpa", [10, 1, 0, 3], &[]),
            a("svc.home.arpa", [10, 1, 0, 9]),
            auto("pool.home.arpa", [10, 1, 1, 1], &["blue", "green"]),
            auto("pool.home.arpa", [10, 1, 1, 2], &["green"]),
            record("big.home.arpa", txt(1500)),
            record("mid.home.arpa", txt(750)),
            record("small.home.arpa", txt(500)),
            a("MiXed.Home.arpa", [10, 0, 0, 7]),
            a("mixed.home.arpa", [10, 0, 0, 8]),
            record("ptr.home.arpa", RecordData::Ptr("WWW.home.arpa".into())),
            a("www.lab.home.arpa", [10, 9, 9, 9]),
            a("www.k8s.home.arpa", [10, 8, 8, 8]),
            // An SRV target remembered for the next owner (the same name in another case).
            record(
                "_sip._udp.home.arpa",
                RecordData::Srv {
                    priority: 1,
                    weight: 1,
                    port: 5060,
                    target: "_SIP._udp.home.arpa".into(),
                },
            ),
            record(
                "_SIP._udp.home.arpa",
                RecordData::Srv {
                    priority: 2,
                    weight: 1,
                    port: 5060,
                    target: "www.home.arpa".into(),
                },
            ),
        ];
        // More names than hickory compresses (120): the last owners are written in full.
        let mut home = home;
        for i in 0..150u8 {
            let owner = if i % 2 == 0 {
                "many.home.arpa"
            } else {
                "MANY.home.arpa"
            };
            home.push(a(owner, [10, 5, 0, i]));
        }
        // More suffixes than hickory remembers (64), then an owner that would match one past
        // the limit.
        for i in 0..30 {
            let owner = if i < 25 {
                "_srv._tcp.home.arpa"
            } else {
                "_SRV._tcp.home.arpa"
            };
            let target = format!("t{i}.home.arpa");
            home.push(record(
                owner,
                RecordData::Srv {
                    priority: 1,
                    weight: 1,
                    port: 1,
                    target,
                },
            ));
        }
        // Past offset 0x3FFF, where hickory remembers no suffix.
        for i in 0..70 {
            let owner = if i < 66 {
                "bigtxt.home.arpa"
            } else {
                "BIGTXT.home.arpa"
            };
            home.push(record(owner, RecordData::Txt(vec!["x".repeat(250)])));
        }
        DnsConfig {
            listen: vec![],
            zones: vec![
                zone(
                    "home.arpa",
                    ("ns1.home.arpa", "hostmaster.home.arpa"),
                    &["ns1.home.arpa", "ns2.elsewhere.test"],
                    home,
                ),
                zone(
                    "lab.home.arpa",
                    ("ns1.lab.home.arpa", "hostmaster.home.arpa"),
                    &["ns1.lab.home.arpa"],
                    vec![a("www.lab.home.arpa", [10, 2, 0, 1])],
                ),
                zone(
                    "wild.test",
                    ("ns.example.net", "admin.example.org"),
                    &[],
                    vec![
                        a("wild.test", [10, 3, 0, 1]),
                        a("*.wild.test", [10, 3, 0, 2]),
                        record("*.wild.test", RecordData::Txt(vec!["any".into()])),
                        auto("*.svc.wild.test", [10, 3, 1, 1], &["blue"]),
                        auto("*.svc.wild.test", [10, 3, 1, 2], &["green"]),
                        record("*.cn.wild.test", RecordData::Cname("wild.test".into())),
                        record("Upper.wild.test", RecordData::Cname("WILD.test".into())),
                    ],
                ),
                zone(
                    "Case.Test",
                    ("NS.Case.Test", "Admin.CASE.test"),
                    &["NS.Case.Test"],
                    vec![
                        a("WWW.Case.Test", [10, 4, 0, 1]),
                        a("*.Case.Test", [10, 4, 0, 2]),
                    ],
                ),
                zone(
                    "10.in-addr.arpa",
                    ("ns1.home.arpa", "hostmaster.home.arpa"),
                    &["ns1.home.arpa"],
                    vec![record(
                        "99.0.0.10.in-addr.arpa",
                        RecordData::Ptr("printer.home.arpa".into()),
                    )],
                ),
            ],
            forwarders: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5353))],
            forward_zones: vec![ForwardZone {
                zone: "k8s.home.arpa".into(),
                to: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5354))],
            }],
            recursion_allow: vec![Cidr {
                addr: Ipv4Addr::LOCALHOST.into(),
                prefix: 32,
            }],
            cache_size: 10,
        }
    }

    /// A query: header (`flags`, one question), the question, and an OPT record if given.
    fn query(id: u16, flags: u16, name: &str, qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        if let Some(opt) = opt {
            p.extend_from_slice(opt);
        }
        p
    }

    /// An OPT record: payload size, version, DO, options.
    fn opt(payload: u16, version: u8, dnssec_ok: bool, options: &[(u16, &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        for (code, value) in options {
            data.extend_from_slice(&code.to_be_bytes());
            data.extend_from_slice(&(value.len() as u16).to_be_bytes());
            data.extend_from_slice(value);
        }
        let mut o = vec![0, 0, 41];
        o.extend_from_slice(&payload.to_be_bytes());
        o.extend_from_slice(&[0, version, if dnssec_ok { 0x80 } else { 0 }, 0x10]);
        o.extend_from_slice(&(data.len() as u16).to_be_bytes());
        o.extend_from_slice(&data);
        o
    }

    /// Health the tests set: bit 0 blue up, bit 1 green up.
    struct Server {
        dns: Arc<Dns>,
        health: Arc<AtomicU8>,
    }

    fn server(config: DnsConfig) -> Server {
        let health = Arc::new(AtomicU8::new(3));
        let h = Arc::clone(&health);
        let dns = Dns::new(
            Arc::new(config),
            Arc::new(move |backend: &str| {
                let bits = h.load(Ordering::Relaxed);
                match backend {
                    "blue" => bits & 1 != 0,
                    "green" => bits & 2 != 0,
                    _ => false,
                }
            }),
        );
        Server { dns, health }
    }

    /// Counts of what the comparisons saw.
    #[derive(Default, Debug)]
    struct Seen {
        compared: usize,
        fast: usize,
    }

    /// Asks both paths; where the fast one answers, the answers must be equal. Returns whether
    /// the fast path answered.
    fn compare(
        s: &Server,
        packet: &[u8],
        transport: Transport,
        allowed: bool,
        seen: &mut Seen,
    ) -> bool {
        let ip = if allowed {
            Ipv4Addr::LOCALHOST
        } else {
            Ipv4Addr::new(192, 0, 2, 1)
        };
        let client = SocketAddr::from((ip, 4000));
        let general = s.dns.answer_general(packet, client, transport);
        let fast = s.dns.answer_fast(packet, client, transport);
        seen.compared += 1;
        match fast {
            Some(fast) => {
                seen.fast += 1;
                assert_eq!(
                    Local::Reply(fast.clone()),
                    general,
                    "fast path differs for {packet:02x?} ({transport:?}, allowed {allowed}):\nfast    {fast:02x?}"
                );
                assert_eq!(s.dns.answer_local(packet, client, transport), general);
                true
            }
            None => false,
        }
    }

    const A: u16 = 1;
    const NS: u16 = 2;
    const CNAME: u16 = 5;
    const SOA: u16 = 6;
    const PTR: u16 = 12;
    const MX: u16 = 15;
    const TXT: u16 = 16;
    const AAAA: u16 = 28;
    const SRV: u16 = 33;

    fn names() -> Vec<String> {
        let mut names: Vec<String> = [
            "www.home.arpa",
            "WWW.home.arpa",
            "wWw.HoMe.ArPa",
            "www.HOME.ARPA",
            "home.arpa",
            "HOME.arpa",
            "v6.home.arpa",
            "alias.home.arpa",
            "out.home.arpa",
            "_http._tcp.home.arpa",
            "_HTTP._tcp.home.arpa",
            "x.apps.home.arpa",
            "X.Apps.home.arpa",
            "y.x.apps.home.arpa",
            "*.apps.home.arpa",
            "apps.home.arpa",
            "own.apps.home.arpa",
            "z.own.apps.home.arpa",
            "deep.a.b.home.arpa",
            "a.b.home.arpa",
            "b.home.arpa",
            "c.b.home.arpa",
            "*.w.home.arpa",
            "q.w.home.arpa",
            "x.*.w.home.arpa",
            "svc.home.arpa",
            "pool.home.arpa",
            "big.home.arpa",
            "mid.home.arpa",
            "small.home.arpa",
            "mixed.home.arpa",
            "_sip._udp.home.arpa",
            "_srv._tcp.home.arpa",
            "bigtxt.home.arpa",
            "many.home.arpa",
            "Many.home.arpa",
            "MiXed.Home.arpa",
            "MIXED.HOME.ARPA",
            "ptr.home.arpa",
            "nothing.home.arpa",
            "NoThInG.home.arpa",
            "www.lab.home.arpa",
            "lab.home.arpa",
            "nope.lab.home.arpa",
            "k8s.home.arpa",
            "www.k8s.home.arpa",
            "x.k8s.home.arpa",
            "wild.test",
            "WILD.TEST",
            "anything.wild.test",
            "a.b.c.wild.test",
            "AnyThing.Wild.Test",
            "x.svc.wild.test",
            "svc.wild.test",
            "x.cn.wild.test",
            "upper.wild.test",
            "case.test",
            "Case.Test",
            "www.case.test",
            "WWW.Case.Test",
            "other.CASE.TEST",
            "99.0.0.10.in-addr.arpa",
            "1.0.0.10.in-addr.arpa",
            "5.0.0.10.in-addr.arpa",
            "10.in-addr.arpa",
            "1.0.1.10.in-addr.arpa",
            "example.org",
            "arpa",
            "",
            "test",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Many labels: past the fast path's inline compression table (16), and hickory's (64);
        // near 255 bytes.
        names.push(format!("{}apps.home.arpa", "a.".repeat(40)));
        names.push(format!("{}wild.test", "b.".repeat(20)));
        names.push(format!("{}.x.wild.test", "c".repeat(63)));
        names.push(format!("{}wild.test", "abcdefghi.".repeat(24)));
        names.push(format!("{}wild.test", "abcdefghij.".repeat(22)));
        // 254, 255 and 256 bytes on the wire: hickory takes at most 255.
        for last in 50..53 {
            let long = "d".repeat(63);
            names.push(format!(
                "{long}.{long}.{long}.{}.wild.test",
                "e".repeat(last)
            ));
        }
        names
    }

    #[test]
    fn fast_path_answers_as_the_general_path() {
        let mut alone = config();
        alone.forwarders.clear();
        alone.forward_zones.clear();
        for config in [config(), alone] {
            differential(config);
        }
    }

    fn differential(config: DnsConfig) {
        let s = server(config);
        let mut seen = Seen::default();
        let types = [
            A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, 255, 41, 252, 251, 0, 65, 65535,
        ];
        let cookie: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
        let opts = [
            opt(1232, 0, false, &[]),
            opt(512, 0, true, &[]),
            opt(0, 0, false, &[]),
            opt(511, 0, false, &[]),
            opt(1000, 0, true, &[(10, cookie)]),
            opt(4096, 0, false, &[(65000, &[0xab, 0xcd])]),
            opt(65535, 0, true, &[(10, cookie), (12, &[])]),
            opt(1232, 0, false, &[(3, &[])]),
            opt(1232, 0, false, &[(8, &[0, 1, 24, 0, 192, 0, 2])]),
            opt(1232, 1, false, &[]),
        ];
        let mut id = 0u16;
        for name in names() {
            for &qtype in &types {
                for flags in [
                    0x0100, 0x0000, 0x0110, 0x0020, 0x0040, 0x0600, 0x8100, 0x1100,
                ] {
                    id = id.wrapping_add(7919);
                    let packet = query(id, flags, &name, qtype, None);
                    for transport in [Transport::Udp, Transport::Tcp] {
                        for allowed in [true, false] {
                            compare(&s, &packet, transport, allowed, &mut seen);
                        }
                    }
                }
                for o in &opts {
                    id = id.wrapping_add(7919);
                    let packet = query(id, 0x0100, &name, qtype, Some(o));
                    compare(&s, &packet, Transport::Udp, true, &mut seen);
                    compare(&s, &packet, Transport::Tcp, false, &mut seen);
                }
            }
        }
        // Health: every state, for the names with automatic records.
        for bits in 0..4 {
            s.health.store(bits, Ordering::Relaxed);
            for name in [
                "svc.home.arpa",
                "pool.home.arpa",
                "x.svc.wild.test",
                "SVC.home.arpa",
            ] {
                for o in [None, Some(opt(1232, 0, false, &[]))] {
                    let packet = query(9, 0x0100, name, A, o.as_deref());
                    assert!(
                        compare(&s, &packet, Transport::Udp, true, &mut seen),
                        "{name}"
                    );
                }
            }
        }
        s.health.store(3, Ordering::Relaxed);
        assert!(seen.fast > seen.compared / 4, "{seen:?}");
    }

    /// The cases the fast path is for do take it.
    #[test]
    fn common_queries_take_the_fast_path() {
        let s = server(config());
        let mut seen = Seen::default();
        let edns = opt(1232, 0, false, &[(10, &[1, 2, 3, 4, 5, 6, 7, 8])]);
        for (name, qtype) in [
            ("www.home.arpa", A),
            ("WWW.Home.ARPA", A),
            ("www.home.arpa", TXT),
            ("v6.home.arpa", AAAA),
            ("_http._tcp.home.arpa", SRV),
            ("_sip._udp.home.arpa", SRV),
            ("x.apps.home.arpa", A),
            ("Y.X.Apps.home.arpa", A),
            ("anything.wild.test", TXT),
            ("www.home.arpa", AAAA),
            ("nothing.home.arpa", A),
            ("a.b.home.arpa", A),
            ("home.arpa", SOA),
            ("home.arpa", NS),
            ("alias.home.arpa", CNAME),
            ("99.0.0.10.in-addr.arpa", PTR),
            ("1.0.0.10.in-addr.arpa", PTR),
            ("svc.home.arpa", A),
            ("nope.lab.home.arpa", A),
            ("other.case.test", A),
            ("x.svc.wild.test", A),
        ] {
            for o in [None, Some(edns.as_slice())] {
                let packet = query(4242, 0x0100, name, qtype, o);
                for transport in [Transport::Udp, Transport::Tcp] {
                    assert!(
                        compare(&s, &packet, transport, true, &mut seen),
                        "{name} {qtype} {transport:?} took the general path"
                    );
                }
            }
        }
        // Over TCP, past hickory's limits.
        for (name, qtype) in [
            ("many.home.arpa", A),
            ("_srv._tcp.home.arpa", SRV),
            ("bigtxt.home.arpa", TXT),
        ] {
            let packet = query(4243, 0x0100, name, qtype, None);
            assert!(
                compare(&s, &packet, Transport::Tcp, true, &mut seen),
                "{name}"
            );
        }
        // And the ones it is not for do not.
        for (name, qtype) in [
            ("alias.home.arpa", A),
            ("www.home.arpa", 255),
            ("x.k8s.home.arpa", A),
            ("example.org", A),
            // The reverse index, for an address no zone covers.
            (
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                PTR,
            ),
            ("big.home.arpa", TXT),
        ] {
            let packet = query(1, 0x0100, name, qtype, None);
            assert!(
                !compare(&s, &packet, Transport::Udp, true, &mut seen),
                "{name}"
            );
        }
    }

    /// Broken and odd packets: every truncation, trailing bytes, and random changes of valid
    /// queries; wherever the fast path answers, it answers as the general path.
    #[test]
    fn mangled_packets() {
        let s = server(config());
        let mut seen = Seen::default();
        let edns = opt(1232, 0, true, &[(10, &[1, 2, 3, 4, 5, 6, 7, 8])]);
        let bases: Vec<Vec<u8>> = [
            ("www.home.arpa", A),
            ("x.apps.home.arpa", A),
            ("nothing.home.arpa", A),
            ("_http._tcp.home.arpa", SRV),
            ("home.arpa", SOA),
            ("svc.home.arpa", A),
        ]
        .iter()
        .flat_map(|&(name, qtype)| {
            [
                query(77, 0x0100, name, qtype, None),
                query(78, 0x0100, name, qtype, Some(&edns)),
            ]
        })
        .collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for base in &bases {
            for len in 0..base.len() {
                compare(&s, &base[..len], Transport::Udp, true, &mut seen);
            }
            for extra in [&[0u8][..], &[0, 0, 0, 0], &[0xc0, 0x0c]] {
                let mut longer = base.clone();
                longer.extend_from_slice(extra);
                compare(&s, &longer, Transport::Udp, true, &mut seen);
            }
            for _ in 0..3000 {
                let mut packet = base.clone();
                for _ in 0..1 + next() % 3 {
                    let at = (next() % packet.len() as u64) as usize;
                    packet[at] = match next() % 4 {
                        0 => 0,
                        1 => packet[at] ^ (1 << (next() % 8)),
                        2 => packet[at].wrapping_add(1),
                        _ => next() as u8,
                    };
                }
                let transport = if next() % 4 == 0 {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                compare(&s, &packet, transport, next() % 2 == 0, &mut seen);
            }
        }
        assert!(seen.fast > 1000, "{seen:?}");
    }

    /// The bench's zone, as `bench/dns.sh` configures it: four exact names and a wildcard.
    fn bench_config() -> DnsConfig {
        let a = |n: &str, ip: [u8; 4]| record(n, RecordData::A(Ipv4Addr::from(ip)));
        DnsConfig {
            listen: vec![],
            zones: vec![zone(
                "bench.test",
                ("ns1.bench.test", "hostmaster.bench.test"),
                &["ns1.bench.test"],
                vec![
                    a("ns.bench.test", [127, 0, 0, 1]),
                    a("www.bench.test", [127, 0, 0, 43]),
                    a("mail.bench.test", [127, 0, 0, 44]),
                    a("api.bench.test", [127, 0, 0, 45]),
                    a("*.bench.test", [127, 0, 0, 42]),
                ],
            )],
            forwarders: vec![],
            forward_zones: vec![],
            recursion_allow: vec![
                Cidr {
                    addr: Ipv4Addr::new(127, 0, 0, 0).into(),
                    prefix: 8,
                },
                Cidr {
                    addr: std::net::Ipv6Addr::LOCALHOST.into(),
                    prefix: 128,
                },
            ],
            cache_size: 10_000,
        }
    }

    /// The user-space cost per query, for callgrind: `DNS_BENCH=PATH:MIX:N` answers N queries
    /// of MIX by PATH, through the function the UDP loop calls, without the sockets.
    ///
    /// MIX: `exact`, `wildcard`, `nodata` (AAAA under the wildcard: NODATA with the SOA) or
    /// `mixed` (9 in 10 under the wildcard, as `bench/dns.sh` has dnsperf send them); A
    /// queries with RD and no EDNS, like dnsperf's. PATH: `new` is what the UDP loop does
    /// (`Dns::answer_into`: the fast path first, into a reused buffer), `old` what it did
    /// before the fast path (`answer::respond` alone, a new `Vec` per answer); both count the
    /// answer in the stats, as the loop does. Instructions do not depend on the machine's
    /// load; run it for two values of N and divide the difference:
    ///
    /// ```text
    /// cargo test --release -p gatehouse-dns --lib --no-run    # prints the binary, BIN
    /// for n in 10000 60000; do
    ///   DNS_BENCH=new:wildcard:$n valgrind --tool=callgrind --callgrind-out-file=cg.$n \
    ///     BIN --ignored --exact fast::tests::callgrind_per_query
    /// done
    /// # (Ir of cg.60000 - Ir of cg.10000) / 50000, Ir from `callgrind_annotate` or the
    /// # files' `summary:` line
    /// ```
    #[test]
    #[ignore = "a benchmark for callgrind; set DNS_BENCH=old|new:exact|wildcard|nodata|mixed:N"]
    fn callgrind_per_query() {
        use crate::Handled;
        use crate::answer::Outcome;
        use crate::stats::type_index;
        use std::hint::black_box;

        let spec = std::env::var("DNS_BENCH").unwrap_or_else(|_| "new:mixed:1000".into());
        let parts: Vec<&str> = spec.split(':').collect();
        let [path, mix, n] = parts[..] else {
            panic!("DNS_BENCH={spec}: want PATH:MIX:N");
        };
        let n: usize = n.parse().unwrap();
        let exact = ["ns", "www", "mail", "api"];
        let packets: Vec<Vec<u8>> = (0..1000u16)
            .map(|i| {
                let name = match mix {
                    "exact" => format!("{}.bench.test", exact[usize::from(i) % 4]),
                    "wildcard" => format!("h{i:07}.bench.test"),
                    "nodata" => format!("h{i:07}.bench.test"),
                    "mixed" if i % 10 == 9 => {
                        format!("{}.bench.test", exact[usize::from(i / 10) % 4])
                    }
                    "mixed" => format!("h{i:07}.bench.test"),
                    other => panic!("unknown mix {other}"),
                };
                let qtype = if mix == "nodata" { AAAA } else { A };
                query(i, 0x0100, &name, qtype, None)
            })
            .collect();
        let dns = Dns::new(Arc::new(bench_config()), Arc::new(|_: &str| true));
        let client = IpAddr::from(Ipv4Addr::LOCALHOST);
        let mut out = Vec::with_capacity(usize::from(OUR_PAYLOAD));
        for packet in packets.iter().cycle().take(n) {
            let kind = type_index(packet);
            match path {
                "new" => {
                    if let Handled::Reply =
                        dns.answer_into(packet, client, Transport::Udp, &mut out)
                    {
                        dns.stats.answered(kind, &out);
                        black_box(&out);
                    }
                }
                "old" => {
                    if let Outcome::Reply(bytes) =
                        dns.respond(&dns.state.load(), packet, client, Transport::Udp)
                    {
                        dns.stats.answered(kind, &bytes);
                        black_box(&bytes);
                    }
                }
                other => panic!("unknown path {other}"),
            }
        }
        let answered: u64 = dns.stats.answers().iter().map(|c| c.2).sum();
        assert_eq!(answered, n as u64);
    }

    /// A reload swaps the index with the zones.
    #[test]
    fn reload_swaps_the_index() {
        let s = server(config());
        let packet = query(5, 0x0100, "new.home.arpa", A, None);
        let client = SocketAddr::from((Ipv4Addr::LOCALHOST, 4000));
        let before = s.dns.answer_fast(&packet, client, Transport::Udp).unwrap();
        assert_eq!(before[3] & 0x0f, 3, "NXDOMAIN");
        let mut next = config();
        next.zones[0].records.push(record(
            "new.home.arpa",
            RecordData::A(Ipv4Addr::new(10, 0, 0, 77)),
        ));
        s.dns.update(Arc::new(next));
        let after = s.dns.answer_fast(&packet, client, Transport::Udp).unwrap();
        assert_eq!(after[3] & 0x0f, 0);
        assert!(after.ends_with(&[10, 0, 0, 77]));
        let mut seen = Seen::default();
        assert!(compare(&s, &packet, Transport::Udp, true, &mut seen));
    }
}
