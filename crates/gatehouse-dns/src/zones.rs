//! The local zones, compiled from a [`DnsConfig`] into lookup tables, and what they answer:
//! exact names, wildcards (RFC 4592), CNAME chains followed within the zones, the reverse
//! (PTR) index of the zones' addresses, and health-aware address records. Pure: no IO, no
//! clock; the health of backends comes in as a function.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use gatehouse_config::{DnsConfig, DnsRecord, DnsZone, RecordData, RecordSource};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::warn;

/// The most CNAMEs followed within the local zones for one answer (a loop stops earlier).
const MAX_CNAME_CHAIN: usize = 8;

/// The types a minimal answer to ANY (RFC 8482) picks from, in order: the first one the name
/// has is the RRset answered.
const ANY_ORDER: [RecordType; 8] = [
    RecordType::SOA,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::A,
    RecordType::AAAA,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::PTR,
];

/// Every local zone, the reverse names no zone covers, and where other names go.
#[derive(Debug)]
pub(crate) struct Zones {
    /// Most specific first (more labels), config order among equals.
    pub(crate) zones: Vec<Zone>,
    /// PTR records for the zones' addresses whose reverse names no zone covers.
    orphan_ptr: HashMap<Name, Record>,
    /// `forward_zones`, most specific first.
    pub(crate) forward_zones: Vec<(Name, Vec<SocketAddr>)>,
    /// Where every other name goes.
    forwarders: Vec<SocketAddr>,
}

/// What a name resolves to.
#[derive(Debug, PartialEq)]
pub(crate) enum Resolution {
    /// An authoritative answer from the local zones.
    Local(Answer),
    /// The name is not ours: these resolvers, in turn (none: nobody to ask).
    Upstream(Vec<SocketAddr>),
}

/// An authoritative answer: its code and sections.
#[derive(Debug, PartialEq)]
pub(crate) struct Answer {
    /// NOERROR (an answer or NODATA) or NXDOMAIN.
    pub rcode: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section: the zone's SOA for a negative answer.
    pub authority: Vec<Record>,
}

/// One compiled zone.
#[derive(Debug)]
pub(crate) struct Zone {
    pub(crate) apex: Name,
    /// The SOA record as answered at the apex.
    pub(crate) soa: Record,
    /// The SOA record of negative answers: TTL `min(ttl, minimum)` (RFC 2308 section 3).
    pub(crate) negative_soa: Record,
    /// The NS records at the apex.
    pub(crate) ns: Vec<Record>,
    /// Records by owner name (wildcard owners included, as `*.x`).
    pub(crate) nodes: HashMap<Name, Vec<Entry>>,
    /// Every name that exists: owners and their ancestors down to the apex (empty
    /// non-terminals exist too: they get NODATA, never NXDOMAIN, and no wildcard).
    pub(crate) exists: HashSet<Name>,
}

/// One record of a zone.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) record: Record,
    /// The backends of an automatic record (`None` for a static one).
    pub(crate) backends: Option<Vec<String>>,
}

/// One step of a lookup inside a zone.
enum Step {
    /// The RRset asked for.
    Records(Vec<Record>),
    /// The name is an alias: its CNAME record and target.
    Cname(Box<(Record, Name)>),
    /// The name exists without the type asked for.
    NoData,
    /// The name does not exist.
    NxDomain,
}

impl Zones {
    /// Compiles the zones. Records that cannot be (a name that does not parse, an owner
    /// outside its zone) are skipped with a warning; the config compiler rejects them first.
    pub(crate) fn new(config: &DnsConfig) -> Zones {
        let mut zones: Vec<Zone> = config.zones.iter().filter_map(Zone::new).collect();
        zones.sort_by_key(|z| Reverse(label_count(&z.apex)));

        // The reverse index: every address of the zones' A and AAAA records points back to the
        // first name that has it.
        let mut reverse: Vec<(Name, Record)> = Vec::new();
        let mut seen: HashSet<Name> = HashSet::new();
        for record in config.zones.iter().flat_map(|z| &z.records) {
            let ip = match record.data {
                RecordData::A(ip) => IpAddr::V4(ip),
                RecordData::Aaaa(ip) => IpAddr::V6(ip),
                _ => continue,
            };
            if record.name.starts_with("*.") {
                continue;
            }
            let (Some(rev), Some(owner)) = (reverse_name(ip), parse_name(&record.name)) else {
                continue;
            };
            if seen.insert(rev.clone()) {
                let ptr = Record::from_rdata(rev.clone(), record.ttl, RData::PTR(PTR(owner)));
                reverse.push((rev, ptr));
            }
        }
        let mut orphan_ptr = HashMap::new();
        for (rev, ptr) in reverse {
            match zones.iter_mut().find(|z| z.apex.zone_of(&rev)) {
                // A static PTR at the name wins over the index.
                Some(zone) if zone.has_type(&rev, RecordType::PTR) => {}
                Some(zone) => zone.insert(
                    rev,
                    Entry {
                        record: ptr,
                        backends: None,
                    },
                ),
                None => {
                    orphan_ptr.insert(rev, ptr);
                }
            }
        }

        let mut forward_zones: Vec<(Name, Vec<SocketAddr>)> = config
            .forward_zones
            .iter()
            .filter_map(|f| Some((parse_name(&f.zone)?, f.to.clone())))
            .collect();
        forward_zones.sort_by_key(|(name, _)| Reverse(label_count(name)));

        Zones {
            zones,
            orphan_ptr,
            forward_zones,
            forwarders: config.forwarders.clone(),
        }
    }

    /// Whether any name can be forwarded at all.
    pub(crate) fn has_upstreams(&self) -> bool {
        !self.forwarders.is_empty() || self.forward_zones.iter().any(|(_, to)| !to.is_empty())
    }

    /// What `qname` (type `qtype`) resolves to. `health` says whether a backend has an
    /// endpoint up.
    ///
    /// A name under both a local zone and a forward zone goes to the more specific of the two
    /// (the local zone when they are the same); the reverse index answers PTR for names no
    /// local zone covers, before any forwarding.
    pub(crate) fn resolve(
        &self,
        qname: &Name,
        qtype: RecordType,
        health: &dyn Fn(&str) -> bool,
    ) -> Resolution {
        if let Some(zone) = self.local_zone(qname).and_then(|i| self.zones.get(i)) {
            return Resolution::Local(self.answer(zone, qname, qtype, health));
        }
        let forward = self.forward_zones.iter().find(|(z, _)| z.zone_of(qname));
        if matches!(qtype, RecordType::PTR | RecordType::ANY)
            && let Some(ptr) = self.orphan_ptr.get(qname)
        {
            return Resolution::Local(Answer {
                rcode: ResponseCode::NoError,
                answers: vec![ptr.clone()],
                authority: Vec::new(),
            });
        }
        Resolution::Upstream(forward.map_or_else(|| self.forwarders.clone(), |(_, to)| to.clone()))
    }

    /// The index in `zones` of the local zone that answers for `qname`: the most specific one
    /// holding it, unless a more specific forward zone holds it too.
    pub(crate) fn local_zone(&self, qname: &Name) -> Option<usize> {
        let (index, zone) = self
            .zones
            .iter()
            .enumerate()
            .find(|(_, z)| z.apex.zone_of(qname))?;
        let forward = self.forward_zones.iter().find(|(z, _)| z.zone_of(qname));
        let shadowed = forward.is_some_and(|(f, _)| label_count(f) > label_count(&zone.apex));
        (!shadowed).then_some(index)
    }

    /// The most specific local zone holding `name`.
    fn zone_for(&self, name: &Name) -> Option<&Zone> {
        self.zones.iter().find(|z| z.apex.zone_of(name))
    }

    /// The answer from `zone`, following CNAMEs into any local zone: each CNAME is answered,
    /// then what its target has (RFC 1034 section 4.3.2); the code is the last name's (RFC 6604).
    fn answer(
        &self,
        zone: &Zone,
        qname: &Name,
        qtype: RecordType,
        health: &dyn Fn(&str) -> bool,
    ) -> Answer {
        let mut out = Answer {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authority: Vec::new(),
        };
        let mut zone = zone;
        let mut name = qname.clone();
        let mut chain: Vec<Name> = Vec::new();
        for _ in 0..=MAX_CNAME_CHAIN {
            match zone.lookup(&name, qtype, health) {
                Step::Records(records) => out.answers.extend(records),
                Step::NoData => out.authority.push(zone.negative_soa.clone()),
                Step::NxDomain => {
                    out.rcode = ResponseCode::NXDomain;
                    out.authority.push(zone.negative_soa.clone());
                }
                Step::Cname(cname) => {
                    let (record, target) = *cname;
                    out.answers.push(record);
                    chain.push(name);
                    if chain.contains(&target) {
                        return out;
                    }
                    // A target outside the local zones is the client's to follow.
                    let Some(next) = self.zone_for(&target) else {
                        return out;
                    };
                    zone = next;
                    name = target;
                    continue;
                }
            }
            return out;
        }
        out
    }
}

impl Zone {
    fn new(config: &DnsZone) -> Option<Zone> {
        let Some(apex) = parse_name(&config.name) else {
            warn!(zone = %config.name, "DNS zone name does not parse; zone skipped");
            return None;
        };
        let (Some(mname), Some(rname)) =
            (parse_name(&config.soa.mname), parse_name(&config.soa.rname))
        else {
            warn!(zone = %config.name, "SOA names do not parse; zone skipped");
            return None;
        };
        let s = &config.soa;
        // SOA timers are 32-bit fields on the wire; hickory keeps three of them signed.
        let signed = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let soa_data = SOA::new(
            mname,
            rname,
            s.serial,
            signed(s.refresh),
            signed(s.retry),
            signed(s.expire),
            s.minimum,
        );
        let soa = Record::from_rdata(apex.clone(), config.ttl, RData::SOA(soa_data.clone()));
        let negative_soa = Record::from_rdata(
            apex.clone(),
            config.ttl.min(s.minimum),
            RData::SOA(soa_data),
        );
        let ns = config
            .ns
            .iter()
            .filter_map(|n| parse_name(n))
            .map(|n| Record::from_rdata(apex.clone(), config.ttl, RData::NS(NS(n))))
            .collect();
        let mut zone = Zone {
            exists: HashSet::from([apex.clone()]),
            apex,
            soa,
            negative_soa,
            ns,
            nodes: HashMap::new(),
        };
        for record in &config.records {
            match entry(record) {
                Some((owner, entry)) if zone.apex.zone_of(&owner) => zone.insert(owner, entry),
                _ => warn!(zone = %config.name, name = %record.name, "DNS record skipped"),
            }
        }
        Some(zone)
    }

    /// Adds a record, and its owner and the owner's ancestors to the names that exist.
    fn insert(&mut self, owner: Name, entry: Entry) {
        let mut name = owner.clone();
        while self.exists.insert(name.clone()) && name != self.apex && !name.is_root() {
            name = name.base_name();
        }
        self.nodes.entry(owner).or_default().push(entry);
    }

    fn has_type(&self, name: &Name, rtype: RecordType) -> bool {
        self.nodes
            .get(name)
            .is_some_and(|e| e.iter().any(|e| e.record.record_type() == rtype))
    }

    /// Looks `name` up in this zone alone.
    fn lookup(&self, name: &Name, qtype: RecordType, health: &dyn Fn(&str) -> bool) -> Step {
        let (entries, synthesized) = if self.exists.contains(name) {
            (self.nodes.get(name).map_or(&[][..], Vec::as_slice), false)
        } else {
            // RFC 4592 section 3.3.1: the closest encloser is the longest ancestor that
            // exists; its `*` child, if there is one, answers for the name.
            let mut encloser = name.base_name();
            while !self.exists.contains(&encloser) {
                if encloser.is_root() {
                    return Step::NxDomain;
                }
                encloser = encloser.base_name();
            }
            let wildcard = encloser.prepend_label("*").ok();
            match wildcard.and_then(|w| self.nodes.get(&w)) {
                Some(entries) => (entries.as_slice(), true),
                None => return Step::NxDomain,
            }
        };
        let apex = !synthesized && *name == self.apex;
        // Records synthesized from a wildcard carry the name asked for (RFC 4592 section 3.3.1).
        let rename = |mut record: Record| {
            if synthesized {
                record.name = name.clone();
            }
            record
        };
        let owned =
            |records: Vec<Record>| -> Vec<Record> { records.into_iter().map(rename).collect() };
        let rrset = |rtype: RecordType| -> Vec<Record> {
            match rtype {
                RecordType::SOA if apex => vec![self.soa.clone()],
                RecordType::NS if apex => self.ns.clone(),
                _ => select(entries, rtype, health),
            }
        };

        if qtype == RecordType::ANY {
            // RFC 8482 section 4.1: answer one RRset the name has, not all of them.
            return ANY_ORDER
                .iter()
                .map(|&t| rrset(t))
                .find(|r| !r.is_empty())
                .map_or(Step::NoData, |r| Step::Records(owned(r)));
        }
        let records = rrset(qtype);
        if !records.is_empty() {
            return Step::Records(owned(records));
        }
        if qtype != RecordType::CNAME
            && let Some(cname) = entries.iter().find_map(|e| match &e.record.data {
                RData::CNAME(CNAME(target)) => Some((e.record.clone(), target.clone())),
                _ => None,
            })
        {
            let (record, target) = cname;
            return Step::Cname(Box::new((rename(record), target)));
        }
        Step::NoData
    }
}

/// The records of `rtype` to answer, health-aware: static records always; automatic ones
/// whose backends have an endpoint up, or all of them when none has (an answer never goes
/// empty because of health). An automatic record without backends counts as up.
fn select(entries: &[Entry], rtype: RecordType, health: &dyn Fn(&str) -> bool) -> Vec<Record> {
    let mut fixed = Vec::new();
    let mut up = Vec::new();
    let mut down = Vec::new();
    for e in entries.iter().filter(|e| e.record.record_type() == rtype) {
        match &e.backends {
            None => fixed.push(e.record.clone()),
            Some(b) if b.is_empty() || b.iter().any(|b| health(b)) => up.push(e.record.clone()),
            Some(_) => down.push(e.record.clone()),
        }
    }
    fixed.extend(if up.is_empty() { down } else { up });
    fixed
}

/// A config record as a zone entry, with its owner name.
fn entry(record: &DnsRecord) -> Option<(Name, Entry)> {
    let owner = parse_name(&record.name)?;
    let data = match &record.data {
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        RecordData::Cname(target) => RData::CNAME(CNAME(parse_name(target)?)),
        RecordData::Txt(strings) => RData::TXT(TXT::new(strings.clone())),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, parse_name(target)?)),
        RecordData::Ptr(target) => RData::PTR(PTR(parse_name(target)?)),
    };
    let backends = match &record.source {
        RecordSource::Static => None,
        RecordSource::Auto { backends, .. } => Some(backends.clone()),
    };
    let record = Record::from_rdata(owner.clone(), record.ttl, data);
    Some((owner, Entry { record, backends }))
}

/// A config name (lower case, no trailing dot) as a fully qualified name.
pub(crate) fn parse_name(name: &str) -> Option<Name> {
    let mut parsed = Name::from_ascii(name).ok()?;
    parsed.set_fqdn(true);
    Some(parsed)
}

/// The number of labels (`*` included, unlike `Name::num_labels`).
fn label_count(name: &Name) -> usize {
    name.iter().count()
}

/// The reverse-lookup name of an address: `4.3.2.1.in-addr.arpa.`, or the 32 nibbles of an
/// IPv6 address under `ip6.arpa.` (RFC 1035 section 3.5, RFC 3596 section 2.5).
pub(crate) fn reverse_name(ip: IpAddr) -> Option<Name> {
    let text = match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(74);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    };
    Name::from_ascii(text).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use gatehouse_config::{ForwardZone, Soa};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn rec(name: &str, data: RecordData) -> DnsRecord {
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
                serial: 7,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: 60,
            },
            ns: vec![format!("ns1.{name}")],
            records,
        }
    }

    fn config() -> DnsConfig {
        DnsConfig {
            listen: vec![],
            zones: vec![
                zone(
                    "home.arpa",
                    vec![
                        rec("www.home.arpa", RecordData::A(Ipv4Addr::new(10, 0, 0, 1))),
                        rec("www.home.arpa", RecordData::Txt(vec!["hello".into()])),
                        rec("v6.home.arpa", RecordData::Aaaa(Ipv6Addr::LOCALHOST)),
                        rec("alias.home.arpa", RecordData::Cname("www.home.arpa".into())),
                        rec("ext.home.arpa", RecordData::Cname("example.org".into())),
                        rec(
                            "loop1.home.arpa",
                            RecordData::Cname("loop2.home.arpa".into()),
                        ),
                        rec(
                            "loop2.home.arpa",
                            RecordData::Cname("loop1.home.arpa".into()),
                        ),
                        rec(
                            "gone.home.arpa",
                            RecordData::Cname("nothing.home.arpa".into()),
                        ),
                        rec(
                            "deep.a.b.home.arpa",
                            RecordData::A(Ipv4Addr::new(10, 0, 0, 2)),
                        ),
                        rec(
                            "*.apps.home.arpa",
                            RecordData::A(Ipv4Addr::new(10, 0, 0, 3)),
                        ),
                        rec("own.apps.home.arpa", RecordData::Txt(vec!["own".into()])),
                        rec(
                            "www.lab.home.arpa",
                            RecordData::A(Ipv4Addr::new(10, 9, 9, 9)),
                        ),
                        auto("svc.home.arpa", [10, 1, 0, 1], "blue"),
                        auto("svc.home.arpa", [10, 1, 0, 2], "green"),
                    ],
                ),
                zone(
                    "lab.home.arpa",
                    vec![rec(
                        "www.lab.home.arpa",
                        RecordData::A(Ipv4Addr::new(10, 2, 0, 1)),
                    )],
                ),
                zone(
                    "0.0.10.in-addr.arpa",
                    vec![rec(
                        "1.0.0.10.in-addr.arpa",
                        RecordData::Ptr("static.home.arpa".into()),
                    )],
                ),
            ],
            forwarders: vec!["127.0.0.1:5353".parse().unwrap()],
            forward_zones: vec![ForwardZone {
                zone: "k8s.home.arpa".into(),
                to: vec!["127.0.0.1:5354".parse().unwrap()],
            }],
            recursion_allow: vec![],
            cache_size: 100,
        }
    }

    fn n(s: &str) -> Name {
        parse_name(s).unwrap()
    }

    fn all_up(_: &str) -> bool {
        true
    }

    /// The answer as text: rcode, then `name type data` per answer, then authority types.
    fn ask(zones: &Zones, name: &str, qtype: RecordType) -> String {
        ask_with(zones, name, qtype, &all_up)
    }

    fn ask_with(zones: &Zones, name: &str, qtype: RecordType, h: &dyn Fn(&str) -> bool) -> String {
        match zones.resolve(&n(name), qtype, h) {
            Resolution::Upstream(to) => format!("upstream {to:?}"),
            Resolution::Local(a) => {
                let mut s = format!("{}", a.rcode);
                for r in &a.answers {
                    s += &format!(" | {} {} {}", r.name, r.record_type(), r.data);
                }
                for r in &a.authority {
                    s += &format!(" || {} {} ttl={}", r.name, r.record_type(), r.ttl);
                }
                s
            }
        }
    }

    #[test]
    fn answers() {
        let z = Zones::new(&config());
        let table: &[(&str, RecordType, &str)] = &[
            (
                "www.home.arpa",
                RecordType::A,
                "No Error | www.home.arpa. A 10.0.0.1",
            ),
            (
                "WWW.Home.Arpa",
                RecordType::A,
                "No Error | www.home.arpa. A 10.0.0.1",
            ),
            (
                "www.home.arpa",
                RecordType::TXT,
                "No Error | www.home.arpa. TXT hello",
            ),
            (
                "v6.home.arpa",
                RecordType::AAAA,
                "No Error | v6.home.arpa. AAAA ::1",
            ),
            // NODATA: the name exists without the type.
            (
                "www.home.arpa",
                RecordType::AAAA,
                "No Error || home.arpa. SOA ttl=60",
            ),
            // NXDOMAIN with the SOA, its TTL the negative one.
            (
                "nope.home.arpa",
                RecordType::A,
                "Non-Existent Domain || home.arpa. SOA ttl=60",
            ),
            // CNAME followed within the zones.
            (
                "alias.home.arpa",
                RecordType::A,
                "No Error | alias.home.arpa. CNAME www.home.arpa. | www.home.arpa. A 10.0.0.1",
            ),
            (
                "alias.home.arpa",
                RecordType::CNAME,
                "No Error | alias.home.arpa. CNAME www.home.arpa.",
            ),
            (
                "ext.home.arpa",
                RecordType::A,
                "No Error | ext.home.arpa. CNAME example.org.",
            ),
            (
                "gone.home.arpa",
                RecordType::A,
                "Non-Existent Domain | gone.home.arpa. CNAME nothing.home.arpa. || home.arpa. SOA ttl=60",
            ),
            (
                "loop1.home.arpa",
                RecordType::A,
                "No Error | loop1.home.arpa. CNAME loop2.home.arpa. | loop2.home.arpa. CNAME loop1.home.arpa.",
            ),
            // Empty non-terminals exist.
            (
                "a.b.home.arpa",
                RecordType::A,
                "No Error || home.arpa. SOA ttl=60",
            ),
            (
                "b.home.arpa",
                RecordType::A,
                "No Error || home.arpa. SOA ttl=60",
            ),
            // Wildcards: synthesized under the name asked; not for names of their own.
            (
                "x.apps.home.arpa",
                RecordType::A,
                "No Error | x.apps.home.arpa. A 10.0.0.3",
            ),
            (
                "y.x.apps.home.arpa",
                RecordType::A,
                "No Error | y.x.apps.home.arpa. A 10.0.0.3",
            ),
            (
                "x.apps.home.arpa",
                RecordType::TXT,
                "No Error || home.arpa. SOA ttl=60",
            ),
            (
                "own.apps.home.arpa",
                RecordType::A,
                "No Error || home.arpa. SOA ttl=60",
            ),
            (
                "x.own.apps.home.arpa",
                RecordType::A,
                "Non-Existent Domain || home.arpa. SOA ttl=60",
            ),
            (
                "apps.home.arpa",
                RecordType::A,
                "No Error || home.arpa. SOA ttl=60",
            ),
            // The apex.
            (
                "home.arpa",
                RecordType::SOA,
                "No Error | home.arpa. SOA ns1.home.arpa. hostmaster.home.arpa. 7 3600 600 86400 60",
            ),
            (
                "home.arpa",
                RecordType::NS,
                "No Error | home.arpa. NS ns1.home.arpa.",
            ),
            (
                "home.arpa",
                RecordType::A,
                "No Error || home.arpa. SOA ttl=60",
            ),
            // The most specific zone wins.
            (
                "www.lab.home.arpa",
                RecordType::A,
                "No Error | www.lab.home.arpa. A 10.2.0.1",
            ),
            (
                "nope.lab.home.arpa",
                RecordType::A,
                "Non-Existent Domain || lab.home.arpa. SOA ttl=60",
            ),
            // ANY: one RRset.
            (
                "www.home.arpa",
                RecordType::ANY,
                "No Error | www.home.arpa. A 10.0.0.1",
            ),
            (
                "home.arpa",
                RecordType::ANY,
                "No Error | home.arpa. SOA ns1.home.arpa. hostmaster.home.arpa. 7 3600 600 86400 60",
            ),
            // Other names go upstream; a forward zone more specific than a local one wins.
            ("example.org", RecordType::A, "upstream [127.0.0.1:5353]"),
            (
                "x.k8s.home.arpa",
                RecordType::A,
                "upstream [127.0.0.1:5354]",
            ),
        ];
        for (name, qtype, want) in table {
            assert_eq!(ask(&z, name, *qtype), *want, "{name} {qtype}");
        }
    }

    #[test]
    fn reverse_index() {
        let z = Zones::new(&config());
        let table: &[(&str, &str)] = &[
            // No zone covers 10.1.0.1's reverse name: answered anyway, without an SOA.
            (
                "1.0.1.10.in-addr.arpa",
                "No Error | 1.0.1.10.in-addr.arpa. PTR svc.home.arpa.",
            ),
            // The zone covering 0.0.10.in-addr.arpa answers from the index too.
            (
                "2.0.0.10.in-addr.arpa",
                "No Error | 2.0.0.10.in-addr.arpa. PTR deep.a.b.home.arpa.",
            ),
            // A static PTR wins over the index.
            (
                "1.0.0.10.in-addr.arpa",
                "No Error | 1.0.0.10.in-addr.arpa. PTR static.home.arpa.",
            ),
            // Wildcard addresses are not indexed.
            (
                "3.0.0.10.in-addr.arpa",
                "Non-Existent Domain || 0.0.10.in-addr.arpa. SOA ttl=60",
            ),
            // The first owner of an address wins (www.lab.home.arpa in zone home.arpa).
            (
                "9.9.9.10.in-addr.arpa",
                "No Error | 9.9.9.10.in-addr.arpa. PTR www.lab.home.arpa.",
            ),
            (
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
                "No Error | 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. PTR v6.home.arpa.",
            ),
            ("7.7.7.7.in-addr.arpa", "upstream [127.0.0.1:5353]"),
        ];
        for (name, want) in table {
            assert_eq!(ask(&z, name, RecordType::PTR), *want, "{name}");
        }
        // Other types of an uncovered reverse name are not ours; of a covered one, NODATA.
        assert_eq!(
            ask(&z, "1.0.1.10.in-addr.arpa", RecordType::TXT),
            "upstream [127.0.0.1:5353]"
        );
        assert_eq!(
            ask(&z, "2.0.0.10.in-addr.arpa", RecordType::TXT),
            "No Error || 0.0.10.in-addr.arpa. SOA ttl=60"
        );
    }

    #[test]
    fn health_aware() {
        let z = Zones::new(&config());
        let both = "No Error | svc.home.arpa. A 10.1.0.1 | svc.home.arpa. A 10.1.0.2";
        assert_eq!(
            ask_with(&z, "svc.home.arpa", RecordType::A, &|_| true),
            both
        );
        assert_eq!(
            ask_with(&z, "svc.home.arpa", RecordType::A, &|b| b == "green"),
            "No Error | svc.home.arpa. A 10.1.0.2"
        );
        // None healthy: all of them, never an empty answer.
        assert_eq!(
            ask_with(&z, "svc.home.arpa", RecordType::A, &|_| false),
            both
        );
        // Static records ignore health.
        assert_eq!(
            ask_with(&z, "www.home.arpa", RecordType::A, &|_| false),
            "No Error | www.home.arpa. A 10.0.0.1"
        );
    }

    #[test]
    fn upstreams() {
        let mut c = config();
        assert!(Zones::new(&c).has_upstreams());
        c.forwarders.clear();
        assert!(Zones::new(&c).has_upstreams());
        assert_eq!(
            ask(&Zones::new(&c), "example.org", RecordType::A),
            "upstream []"
        );
        c.forward_zones.clear();
        assert!(!Zones::new(&c).has_upstreams());
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap())
                .unwrap()
                .to_ascii(),
            "1.2.0.192.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap())
                .unwrap()
                .to_ascii(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }
}
