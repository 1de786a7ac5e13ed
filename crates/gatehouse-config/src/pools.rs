//! Address pools (IPAM): named ranges that gateways and listeners take addresses from.
//!
//! `pool:NAME` in a gateway's `addresses` (or a listener's `address`) takes one address of the
//! pool; `pool:NAME/ADDRESS` pins that address. Allocation is a pure function of the config:
//! pinned addresses are reserved first, then the requests, sorted by who asks (`GATEWAY` or
//! `GATEWAY/LISTENER`), take the lowest free addresses in pool order. Every node computes the
//! same answer with no coordination, and adding a gateway does not move the others unless it
//! sorts before them and the pool is full up to it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::compile::{Compiler, pos};
use crate::diag::Pos;
use crate::model::{RawConfig, RawGateway, RawPool, S, Scalar};
use crate::parse::parse_cidr;
use crate::types::{AddressPool, PoolRange};

/// What the `pool:` entries of the gateways resolved to.
#[derive(Default)]
pub(crate) struct Allocation {
    /// `(owner, entry text)` -> the address.
    pub(crate) addresses: HashMap<(String, String), IpAddr>,
}

impl Allocation {
    /// The address of the `pool:` entry `text` of `owner`, if it resolved.
    pub(crate) fn get(&self, owner: &str, text: &str) -> Option<IpAddr> {
        self.addresses
            .get(&(owner.to_owned(), text.trim().to_owned()))
            .copied()
    }
}

/// One `pool:` entry found in the config.
struct Request {
    owner: String,
    text: String,
    pool: String,
    pinned: Option<IpAddr>,
    pos: Pos,
}

impl Compiler {
    /// Compiles `pools` and resolves every `pool:` entry of the gateways (`gateways` from the
    /// config and the manifests, with their file index).
    pub(crate) fn pools(
        &mut self,
        raw: &RawConfig,
        gateways: &[(u32, &S<RawGateway>)],
    ) -> (BTreeMap<String, AddressPool>, Allocation) {
        let mut pools: BTreeMap<String, AddressPool> = BTreeMap::new();
        let mut pool_pos: HashMap<String, Pos> = HashMap::new();
        for p in &raw.pools {
            let name = p.value.name.value.clone();
            self.name_ok(&p.value.name, "pool");
            let Some(pool) = self.pool(p) else { continue };
            if let Some(first) = pool_pos.get(&name) {
                self.error(
                    pos(&p.value.name),
                    format!("pool `{name}` is defined twice"),
                )
                .hint("give each pool a unique name")
                .note(*first, "first defined");
                continue;
            }
            // Overlaps: an address in two pools would be handed out twice.
            for (other, o) in &pools {
                if let Some(ip) = overlap(&pool, o) {
                    self.error(
                        pos(&p.value.name),
                        format!("pools `{name}` and `{other}` overlap (both hold {ip})"),
                    )
                    .hint("give each cluster or site its own range")
                    .note(pool_pos[other], format!("`{other}` is defined"));
                }
            }
            pool_pos.insert(name.clone(), pos(&p.value.name));
            pools.insert(name, pool);
        }

        let mut requests = Vec::new();
        for (file, g) in gateways {
            let _file = crate::compile::InFile::new(*file);
            let gw = &g.value;
            let entries = gw
                .addresses
                .iter()
                .map(|a| (gw.name.value.clone(), a))
                .chain(gw.listeners.iter().filter_map(|l| {
                    let owner = format!("{}/{}", gw.name.value, l.value.name.value);
                    l.value.address.as_ref().map(|a| (owner, a))
                }));
            for (owner, a) in entries {
                if let Some(r) = self.request(&owner, a, &pools) {
                    requests.push(r);
                }
            }
        }
        let mut taken: HashMap<IpAddr, (String, Pos)> = HashMap::new();
        let mut alloc = Allocation::default();
        for r in requests.iter().filter(|r| r.pinned.is_some()) {
            let Some(ip) = r.pinned else { continue };
            if let Some((first, at)) = taken.get(&ip) {
                self.error(r.pos, format!("{ip} is pinned twice: by `{first}` and `{}`", r.owner))
                    .hint("an address of a pool belongs to one gateway; pin another address, or let `pool:NAME` choose")
                    .note(*at, format!("`{first}` pins it"));
                continue;
            }
            taken.insert(ip, (r.owner.clone(), r.pos));
            alloc
                .addresses
                .insert((r.owner.clone(), r.text.clone()), ip);
            if let Some(pool) = pools.get_mut(&r.pool) {
                pool.allocated.push((ip, r.owner.clone()));
            }
        }
        let mut allocated: Vec<(String, IpAddr, String)> = Vec::new();
        let mut open: Vec<&Request> = requests.iter().filter(|r| r.pinned.is_none()).collect();
        open.sort_by(|a, b| (&a.owner, &a.text).cmp(&(&b.owner, &b.text)));
        for r in open {
            let Some(pool) = pools.get(&r.pool) else {
                continue;
            };
            let free = pool
                .ranges
                .iter()
                .flat_map(Addresses::new)
                .find(|ip| !taken.contains_key(ip));
            match free {
                Some(ip) => {
                    taken.insert(ip, (r.owner.clone(), r.pos));
                    alloc
                        .addresses
                        .insert((r.owner.clone(), r.text.clone()), ip);
                    allocated.push((r.pool.clone(), ip, r.owner.clone()));
                }
                None => {
                    self.error(
                        r.pos,
                        format!(
                            "pool `{}` has no free address left for `{}`",
                            r.pool, r.owner
                        ),
                    )
                    .hint("add a range to the pool, or pin addresses");
                }
            }
        }
        for (pool, ip, owner) in allocated {
            if let Some(p) = pools.get_mut(&pool) {
                p.allocated.push((ip, owner));
            }
        }
        for p in pools.values_mut() {
            p.allocated.sort();
        }
        (pools, alloc)
    }

    fn pool(&mut self, p: &S<RawPool>) -> Option<AddressPool> {
        let raw = &p.value;
        if raw.addresses.is_empty() {
            self.error(pos(&raw.name), format!("pool `{}` has no addresses", raw.name.value))
                .hint("list ranges or networks: `addresses: [\"192.168.1.240-192.168.1.250\", \"10.0.0.0/28\"]`");
            return None;
        }
        let mut ranges = Vec::new();
        for a in &raw.addresses {
            match parse_range(&a.value.0) {
                Ok(r) => ranges.push(r),
                Err(msg) => {
                    self.error(pos(a), msg).hint(
                        "write a range `FIRST-LAST` (same family) or a network `ADDRESS/PREFIX`",
                    );
                }
            }
        }
        let prefix = raw
            .prefix
            .as_ref()
            .and_then(|p| self.int_in(p, 1, 128, "prefix"));
        Some(AddressPool {
            name: raw.name.value.clone(),
            ranges,
            prefix: prefix.map(|p| p as u8),
            allocated: Vec::new(),
        })
    }

    /// A `pool:NAME` or `pool:NAME/ADDRESS` entry; `None` for anything else (a plain address)
    /// or an error (reported).
    fn request(
        &mut self,
        owner: &str,
        a: &S<Scalar>,
        pools: &BTreeMap<String, AddressPool>,
    ) -> Option<Request> {
        let text = a.value.0.trim();
        let rest = text.strip_prefix("pool:")?;
        let (name, pinned) = match rest.split_once('/') {
            Some((n, ip)) => (n, Some(ip)),
            None => (rest, None),
        };
        let Some(pool) = pools.get(name) else {
            self.error(pos(a), format!("there is no pool `{name}`"))
                .hint("define it under `pools:`, or check the name");
            return None;
        };
        let pinned = match pinned {
            None => None,
            Some(ip) => match ip.parse::<IpAddr>() {
                Ok(ip) if pool.contains(ip) => Some(ip),
                Ok(ip) => {
                    self.error(pos(a), format!("{ip} is not in pool `{name}`"))
                        .hint("pin an address inside the pool's ranges, or use another pool");
                    return None;
                }
                Err(_) => {
                    self.error(pos(a), format!("`{ip}` is not an IP address"))
                        .hint("write `pool:NAME/ADDRESS`, e.g. `pool:lan/192.168.1.62`");
                    return None;
                }
            },
        };
        Some(Request {
            owner: owner.to_owned(),
            text: text.to_owned(),
            pool: name.to_owned(),
            pinned,
            pos: pos(a),
        })
    }
}

/// `FIRST-LAST`, `ADDRESS/PREFIX` or one address.
fn parse_range(text: &str) -> Result<PoolRange, String> {
    let t = text.trim();
    if let Some((first, last)) = t.split_once('-') {
        let (first, last): (IpAddr, IpAddr) = match (first.trim().parse(), last.trim().parse()) {
            (Ok(f), Ok(l)) => (f, l),
            _ => return Err(format!("`{t}` is not an address range")),
        };
        if first.is_ipv4() != last.is_ipv4() {
            return Err(format!("`{t}` mixes IPv4 and IPv6"));
        }
        if to_u128(first) > to_u128(last) {
            return Err(format!("`{t}`: the first address is after the last"));
        }
        return Ok(PoolRange { first, last });
    }
    let cidr = parse_cidr(t)?;
    let v4 = cidr.addr.is_ipv4();
    let bits = if v4 { 32 } else { 128 };
    let size = 1u128
        .checked_shl(u32::from(bits - cidr.prefix))
        .unwrap_or(u128::MAX);
    let mut first = to_u128(cidr.addr);
    let mut last = first.saturating_add(size.saturating_sub(1));
    // An IPv4 network's own address and its broadcast address are not handed out.
    if v4 && cidr.prefix <= 30 {
        first += 1;
        last -= 1;
    }
    Ok(PoolRange {
        first: from_u128(first, v4),
        last: from_u128(last, v4),
    })
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from(std::net::Ipv4Addr::from(
            u32::try_from(n).unwrap_or(u32::MAX),
        ))
    } else {
        IpAddr::from(std::net::Ipv6Addr::from(n))
    }
}

/// The first address two pools share, if any.
fn overlap(a: &AddressPool, b: &AddressPool) -> Option<IpAddr> {
    for x in &a.ranges {
        for y in &b.ranges {
            if x.first.is_ipv4() != y.first.is_ipv4() {
                continue;
            }
            let lo = to_u128(x.first).max(to_u128(y.first));
            let hi = to_u128(x.last).min(to_u128(y.last));
            if lo <= hi {
                return Some(from_u128(lo, x.first.is_ipv4()));
            }
        }
    }
    None
}

/// The addresses of a range, in order (bounded: a /64 is not walked to its end, the search
/// stops at the first free one).
struct Addresses {
    next: u128,
    last: u128,
    v4: bool,
    done: bool,
}

impl Addresses {
    fn new(r: &PoolRange) -> Addresses {
        Addresses {
            next: to_u128(r.first),
            last: to_u128(r.last),
            v4: r.first.is_ipv4(),
            done: false,
        }
    }
}

impl Iterator for Addresses {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        if self.done || self.next > self.last {
            return None;
        }
        let ip = from_u128(self.next, self.v4);
        match self.next.checked_add(1) {
            Some(n) => self.next = n,
            None => self.done = true,
        }
        Some(ip)
    }
}
