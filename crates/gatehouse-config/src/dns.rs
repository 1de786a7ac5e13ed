//! Compiling `dns`: local zones with static records, the records that fill themselves from
//! the listeners and routes (every name Gatehouse serves, at the address that serves it),
//! forwarding, and who may recurse.
//!
//! Names are kept lower case, fully qualified, without the trailing dot. In `records`, a name
//! without a trailing dot is relative to its zone (`nas` in `home.arpa` is `nas.home.arpa`;
//! `@` is the apex), as in a zone file; so are the targets of CNAME, SRV and PTR records.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::compile::{Compiler, ListenerOrigin, pos};
use crate::diag::Pos;
use crate::model::{RawDns, RawRecord, RawZone, S, Scalar};
use crate::parse::{closest, parse_cidr, parse_listen_address};
use crate::types::*;

/// Default TTL of a zone's static records, SOA and NS.
const DEFAULT_ZONE_TTL: Duration = Duration::from_secs(300);
/// Default TTL of automatic records: short, so health-aware answers take effect soon.
const DEFAULT_AUTO_TTL: Duration = Duration::from_secs(30);
/// The record types `records` takes.
const RECORD_TYPES: [&str; 6] = ["A", "AAAA", "CNAME", "TXT", "SRV", "PTR"];

/// A `dnsName` of a TCP or UDP listener, kept while gateways compile.
pub(crate) struct DnsName {
    pub(crate) listener: String,
    pub(crate) name: String,
    pub(crate) pos: Pos,
}

/// Where a record was defined, for conflict messages.
struct Placed {
    record: DnsRecord,
    pos: Pos,
}

impl Compiler {
    /// The `dns` section, with automatic records for `listeners` (their origins give the
    /// places conflicts are reported at).
    pub(crate) fn dns(
        &mut self,
        raw: &S<RawDns>,
        listeners: &[Listener],
        origins: &[ListenerOrigin],
        dns_names: &[DnsName],
    ) -> Option<DnsConfig> {
        let d = &raw.value;
        let errors_before = self.error_count();
        if d.listen.is_empty() {
            self.error(pos(raw), "`dns` has no `listen` addresses")
                .hint("say where to answer, e.g. `listen: [\"127.0.0.1:5353\"]` (port 53 for clients that cannot be told another)");
        }
        let listen: Vec<SocketAddr> = d
            .listen
            .iter()
            .filter_map(|a| self.dns_server_address(a, "listen"))
            .collect();
        let auto_ttl = self.ttl(&d.auto_ttl, DEFAULT_AUTO_TTL, "autoTtl");
        let mut zones = Vec::new();
        let mut zone_pos: HashMap<String, Pos> = HashMap::new();
        for z in &d.zones {
            let Some(name) = self.dns_name(&z.value.name, None) else {
                continue;
            };
            if let Some(first) = zone_pos.insert(name.clone(), pos(&z.value.name)) {
                self.error(
                    pos(&z.value.name),
                    format!("zone `{name}` is defined twice"),
                )
                .hint("put all of a zone's records under one entry")
                .note(first, "first defined");
                continue;
            }
            zones.push((name, z));
        }
        // The most specific zone first, so that a name goes to the zone that holds it.
        zones.sort_by_key(|(name, _)| std::cmp::Reverse(name.split('.').count()));
        let zone_names: Vec<String> = zones.iter().map(|(n, _)| n.clone()).collect();
        let mut placed: BTreeMap<String, Vec<Placed>> = BTreeMap::new();
        for (name, z) in &zones {
            let records = self.static_records(name, &z.value);
            placed.insert(name.clone(), records);
        }
        self.auto_records(
            &zones,
            &zone_names,
            listeners,
            origins,
            dns_names,
            auto_ttl,
            &mut placed,
        );
        let mut compiled = Vec::new();
        for (name, z) in &zones {
            let records = placed.remove(name).unwrap_or_default();
            compiled.push(self.zone(name, &z.value, records));
        }
        let forwarders: Vec<SocketAddr> = d
            .forwarders
            .iter()
            .filter_map(|a| self.dns_server_address(a, "forwarders"))
            .collect();
        let mut forward_zones = Vec::new();
        for f in &d.forward_zones {
            let Some(zone) = self.dns_name(&f.value.zone, None) else {
                continue;
            };
            if f.value.to.is_empty() {
                self.error(
                    pos(&f.value.zone),
                    format!("forward zone `{zone}` has no `to`"),
                )
                .hint("list the resolvers for it, e.g. `to: [\"10.96.0.10\"]`");
            }
            if let Some(local) = zone_names
                .iter()
                .find(|z| within(&zone, z) || within(z, &zone))
            {
                self.error(
                    pos(&f.value.zone),
                    format!("forward zone `{zone}` overlaps local zone `{local}`"),
                )
                .hint("a name is either answered here or forwarded: remove one of them");
            }
            let to = f
                .value
                .to
                .iter()
                .filter_map(|a| self.dns_server_address(a, "to"))
                .collect();
            forward_zones.push(ForwardZone { zone, to });
        }
        let recursion_allow = match &d.recursion {
            None => vec![
                Cidr {
                    addr: IpAddr::from([127, 0, 0, 0]),
                    prefix: 8,
                },
                Cidr {
                    addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
            Some(r) => r
                .value
                .allow
                .iter()
                .filter_map(|c| match parse_cidr(&c.value) {
                    Ok(c) => Some(c),
                    Err(msg) => {
                        self.error(pos(c), msg)
                            .hint("list networks such as `192.168.1.0/24` or addresses such as `10.0.0.5`");
                        None
                    }
                })
                .collect(),
        };
        let cache_size = d
            .cache_size
            .as_ref()
            .and_then(|c| self.int_in(c, 0, 10_000_000, "cacheSize"))
            .map_or(10_000, |v| v as usize);
        if self.error_count() > errors_before {
            return None;
        }
        Some(DnsConfig {
            listen,
            zones: compiled,
            forwarders,
            forward_zones,
            recursion_allow,
            cache_size,
        })
    }

    /// `ADDRESS` (port 53) or `ADDRESS:PORT`.
    fn dns_server_address(&mut self, a: &S<Scalar>, what: &str) -> Option<SocketAddr> {
        let text = a.value.0.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(addr);
        }
        match parse_listen_address(text) {
            Ok(ip) => Some(SocketAddr::new(ip, 53)),
            Err(_) => {
                self.error(pos(a), format!("`{text}` is not an address"))
                    .hint(format!("write `{what}` entries as `ADDRESS` (port 53) or `ADDRESS:PORT`: `127.0.0.1:5353`, `\"[::1]:53\"`"));
                None
            }
        }
    }

    /// A TTL: a duration in whole seconds.
    fn ttl(&mut self, v: &Option<S<Scalar>>, default: Duration, what: &str) -> u32 {
        let d = self.duration(v, default, Duration::ZERO, what);
        if d.subsec_nanos() != 0
            && let Some(v) = v
        {
            self.error(pos(v), format!("`{what}` must be whole seconds"));
        }
        u32::try_from(d.as_secs())
            .unwrap_or(u32::MAX)
            .min(i32::MAX as u32)
    }

    /// A domain name, checked and normalized; relative to `zone` unless it ends with a dot.
    fn dns_name(&mut self, s: &S<String>, zone: Option<&str>) -> Option<String> {
        match normalize(&s.value, zone) {
            Ok(n) => Some(n),
            Err(msg) => {
                self.error(pos(s), msg).hint(
                    "names are labels of letters, digits, `-` and `_` separated by dots (at most 63 characters a label, 253 in all)",
                );
                None
            }
        }
    }

    fn static_records(&mut self, zone: &str, z: &RawZone) -> Vec<Placed> {
        let ttl = self.ttl(&z.ttl, DEFAULT_ZONE_TTL, "ttl");
        let mut out: Vec<Placed> = Vec::new();
        for r in &z.records {
            let Some(record) = self.record(zone, &r.value, ttl) else {
                continue;
            };
            let here = pos(&r.value.name);
            if !within(record.name.trim_start_matches("*."), zone) {
                self.error(here, format!("`{}` is not in zone `{zone}`", record.name))
                    .hint("write names relative to the zone (`nas`, `@` for the apex), or put the record in its own zone");
                continue;
            }
            let clash = out.iter().find(|p| {
                p.record.name == record.name
                    && (p.record.data == record.data
                        || matches!(p.record.data, RecordData::Cname(_))
                        || matches!(record.data, RecordData::Cname(_)))
            });
            if let Some(first) = clash {
                let msg = if first.record.data == record.data {
                    format!(
                        "record `{}` {} is listed twice",
                        record.name,
                        type_name(&record.data)
                    )
                } else {
                    format!("`{}` has a CNAME and other records", record.name)
                };
                self.error(here, msg)
                    .hint("a CNAME is the only record its name may have (RFC 1034)")
                    .note(first.pos, "first defined");
                continue;
            }
            out.push(Placed { record, pos: here });
        }
        out
    }

    fn record(&mut self, zone: &str, r: &RawRecord, default_ttl: u32) -> Option<DnsRecord> {
        let name = self.dns_name(&r.name, Some(zone))?;
        let ttl = match &r.ttl {
            None => default_ttl,
            some => self.ttl(some, Duration::ZERO, "ttl"),
        };
        let value = r.value.value.0.trim();
        let at = pos(&r.value);
        let kind = r.kind.value.to_ascii_uppercase();
        let data = match kind.as_str() {
            "A" => match value.parse() {
                Ok(ip) => RecordData::A(ip),
                Err(_) => {
                    self.error(at, format!("`{value}` is not an IPv4 address"))
                        .hint("an A record holds an IPv4 address; use AAAA for IPv6");
                    return None;
                }
            },
            "AAAA" => match value.parse() {
                Ok(ip) => RecordData::Aaaa(ip),
                Err(_) => {
                    self.error(at, format!("`{value}` is not an IPv6 address"))
                        .hint("an AAAA record holds an IPv6 address; use A for IPv4");
                    return None;
                }
            },
            "CNAME" | "PTR" => {
                let target = match normalize(value, Some(zone)) {
                    Ok(t) => t,
                    Err(msg) => {
                        self.error(at, msg);
                        return None;
                    }
                };
                if kind == "CNAME" {
                    RecordData::Cname(target)
                } else {
                    RecordData::Ptr(target)
                }
            }
            "TXT" => {
                if value.is_empty() {
                    self.error(at, "a TXT record needs some text");
                    return None;
                }
                // Longer text is split into strings of at most 255 bytes, as DNS requires.
                let bytes = value.as_bytes();
                let strings = bytes
                    .chunks(255)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                RecordData::Txt(strings)
            }
            "SRV" => {
                let parts: Vec<&str> = value.split_whitespace().collect();
                let numbers: Vec<Option<u16>> =
                    parts.iter().take(3).map(|p| p.parse().ok()).collect();
                match (parts.len(), numbers.as_slice()) {
                    (4, [Some(priority), Some(weight), Some(port)]) => {
                        let target = match normalize(parts[3], Some(zone)) {
                            Ok(t) => t,
                            Err(msg) => {
                                self.error(at, msg);
                                return None;
                            }
                        };
                        RecordData::Srv {
                            priority: *priority,
                            weight: *weight,
                            port: *port,
                            target,
                        }
                    }
                    _ => {
                        self.error(at, format!("`{value}` is not SRV data"))
                            .hint("write `PRIORITY WEIGHT PORT TARGET`, e.g. `10 5 389 ldap`");
                        return None;
                    }
                }
            }
            other => {
                let hint = match closest(other, RECORD_TYPES) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("use one of: {}", RECORD_TYPES.join(", ")),
                };
                self.error(
                    pos(&r.kind),
                    format!(
                        "`{}` is not a record type this version serves",
                        r.kind.value
                    ),
                )
                .hint(hint);
                return None;
            }
        };
        Some(DnsRecord {
            name,
            ttl,
            data,
            source: RecordSource::Static,
        })
    }

    /// Records for every name a listener serves, at the listener's address, into the zone
    /// that holds the name. A static A, AAAA or CNAME record for the same name is an error.
    #[allow(clippy::too_many_arguments)]
    fn auto_records(
        &mut self,
        zones: &[(String, &S<RawZone>)],
        zone_names: &[String],
        listeners: &[Listener],
        origins: &[ListenerOrigin],
        dns_names: &[DnsName],
        ttl: u32,
        placed: &mut BTreeMap<String, Vec<Placed>>,
    ) {
        let auto_off: Vec<&str> = zones
            .iter()
            .filter(|(_, z)| z.value.auto.as_ref().is_some_and(|a| !a.value))
            .map(|(n, _)| n.as_str())
            .collect();
        for (l, origin) in listeners.iter().zip(origins) {
            for (name, backends, at) in served_names(l, origin.pos, dns_names) {
                let Some(zone) = zone_names
                    .iter()
                    .find(|z| within(name.trim_start_matches("*."), z))
                else {
                    continue;
                };
                if auto_off.contains(&zone.as_str()) {
                    continue;
                }
                let ip = l.bind.ip();
                if ip.is_unspecified() {
                    self.warn(
                        at,
                        format!(
                            "listener `{}` serves `{name}` in zone `{zone}` but listens on {ip}: no automatic record",
                            l.name
                        ),
                    )
                    .hint("give the listener (or its gateway) the address clients should use, or write a static record");
                    continue;
                }
                let data = match ip {
                    IpAddr::V4(v4) => RecordData::A(v4),
                    IpAddr::V6(v6) => RecordData::Aaaa(v6),
                };
                let list = placed.entry(zone.clone()).or_default();
                if let Some(other) = list.iter().find(|p| {
                    p.record.source == RecordSource::Static
                        && p.record.name == name
                        && matches!(
                            p.record.data,
                            RecordData::A(_) | RecordData::Aaaa(_) | RecordData::Cname(_)
                        )
                }) {
                    let other_pos = other.pos;
                    self.error(
                        other_pos,
                        format!(
                            "static record `{name}` {} conflicts with the automatic record for listener `{}`",
                            type_name(&other.record.data),
                            l.name
                        ),
                    )
                    .hint("Gatehouse answers for the names it serves: remove the static record, or set `auto: false` on the zone")
                    .note(at, format!("`{}` serves `{name}`", l.name));
                    continue;
                }
                // One record per name and address; several listeners on it share it.
                if let Some(existing) = list
                    .iter_mut()
                    .find(|p| p.record.name == name && p.record.data == data)
                {
                    if let RecordSource::Auto { backends: b, .. } = &mut existing.record.source {
                        for backend in backends {
                            if !b.contains(&backend) {
                                b.push(backend);
                            }
                        }
                    }
                    continue;
                }
                list.push(Placed {
                    record: DnsRecord {
                        name,
                        ttl,
                        data,
                        source: RecordSource::Auto {
                            listener: l.name.clone(),
                            backends,
                        },
                    },
                    pos: at,
                });
            }
        }
    }

    fn zone(&mut self, name: &str, z: &RawZone, placed: Vec<Placed>) -> DnsZone {
        let ttl = self.ttl(&z.ttl, DEFAULT_ZONE_TTL, "ttl");
        let ns: Vec<String> = if z.ns.is_empty() {
            vec![format!("ns.{name}")]
        } else {
            z.ns.iter()
                .filter_map(|n| self.dns_name(n, Some(name)))
                .collect()
        };
        let rname = match &z.hostmaster {
            Some(h) => self
                .dns_name(h, Some(name))
                .unwrap_or_else(|| format!("hostmaster.{name}")),
            None => format!("hostmaster.{name}"),
        };
        let records: Vec<DnsRecord> = placed.into_iter().map(|p| p.record).collect();
        let mut hasher = DefaultHasher::new();
        format!("{records:?}{ns:?}{rname}{ttl}").hash(&mut hasher);
        DnsZone {
            name: name.to_owned(),
            ttl,
            soa: Soa {
                mname: ns.first().cloned().unwrap_or_else(|| format!("ns.{name}")),
                rname,
                serial: hasher.finish() as u32,
                refresh: 3600,
                retry: 600,
                expire: 86_400,
                minimum: ttl,
            },
            ns,
            records,
        }
    }
}

/// The names a listener serves, with the backends behind each and where to point at it: route
/// hostnames (HTTP, HTTPS, TLS; a route for any name stands for the listener's own hostname),
/// or a TCP/UDP listener's `dnsName`.
fn served_names(l: &Listener, at: Pos, dns_names: &[DnsName]) -> Vec<(String, Vec<String>, Pos)> {
    let mut out: Vec<(String, Vec<String>, Pos)> = Vec::new();
    let mut add = |host: &HostMatch, backends: Vec<String>| {
        let name = match host {
            HostMatch::Pattern(p) => pattern_name(p),
            HostMatch::Any => match &l.hostname {
                Some(p) => pattern_name(p),
                None => return,
            },
        };
        match out.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, b, _)) => {
                for backend in backends {
                    if !b.contains(&backend) {
                        b.push(backend);
                    }
                }
            }
            None => out.push((name, backends, at)),
        }
    };
    for r in &l.routes {
        for h in &r.hosts {
            add(h, vec![r.backend.clone()]);
        }
    }
    for r in &l.http_routes {
        let mut backends: Vec<String> = Vec::new();
        for rule in r.rules.iter() {
            for b in &rule.backends {
                if !backends.contains(&b.backend) {
                    backends.push(b.backend.clone());
                }
            }
        }
        for h in &r.hosts {
            add(h, backends.clone());
        }
    }
    if matches!(l.protocol, Protocol::Tcp | Protocol::Udp) {
        out.clear();
        for d in dns_names.iter().filter(|d| d.listener == l.name) {
            let backends = l.routes.iter().map(|r| r.backend.clone()).collect();
            out.push((d.name.clone(), backends, d.pos));
        }
    }
    out
}

fn pattern_name(p: &HostPattern) -> String {
    match p {
        HostPattern::Exact(n) => n.clone(),
        HostPattern::Wildcard(suffix) => format!("*.{suffix}"),
    }
}

/// Whether `name` is `zone` or under it.
fn within(name: &str, zone: &str) -> bool {
    name == zone
        || (name.len() > zone.len()
            && name.ends_with(zone)
            && name.as_bytes()[name.len() - zone.len() - 1] == b'.')
}

fn type_name(d: &RecordData) -> &'static str {
    match d {
        RecordData::A(_) => "A",
        RecordData::Aaaa(_) => "AAAA",
        RecordData::Cname(_) => "CNAME",
        RecordData::Txt(_) => "TXT",
        RecordData::Srv { .. } => "SRV",
        RecordData::Ptr(_) => "PTR",
    }
}

/// Lower case, fully qualified, no trailing dot. Relative names (no trailing dot) are under
/// `zone` when one is given; `@` is the zone itself. A leading `*.` (wildcard) is kept.
pub(crate) fn normalize(text: &str, zone: Option<&str>) -> Result<String, String> {
    let t = text.trim().to_ascii_lowercase();
    let full = match (t.as_str(), zone) {
        ("@", Some(z)) => z.to_owned(),
        (abs, _) if abs.ends_with('.') => abs.trim_end_matches('.').to_owned(),
        (rel, Some(z)) => format!("{rel}.{z}"),
        (name, None) => name.to_owned(),
    };
    if full.is_empty() {
        return Err(format!("`{text}` is not a domain name"));
    }
    if full.len() > 253 {
        return Err(format!("`{text}` is longer than 253 characters"));
    }
    let body = full.strip_prefix("*.").unwrap_or(&full);
    for label in body.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!("`{text}` is not a valid domain name"));
        }
    }
    Ok(full)
}
