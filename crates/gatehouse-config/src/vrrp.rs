//! Compiling `vrrp`: VRRPv3 instances, the virtual addresses each holds (written out, or every
//! address handed out from a pool), and what their priority tracks.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use crate::compile::{Compiler, pos};
use crate::diag::Pos;
use crate::model::{RawVrrp, S};
use crate::types::*;

/// Default advertisement interval: a backup takes over within about 0.8 s.
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_millis(200);

impl Compiler {
    /// Every instance; `listeners` and `backends` are what `track` may name.
    pub(crate) fn vrrp(
        &mut self,
        raw: &[S<RawVrrp>],
        pools: &BTreeMap<String, AddressPool>,
        listeners: &[Listener],
        backends: &BTreeMap<String, std::sync::Arc<Backend>>,
    ) -> Vec<VrrpInstance> {
        let mut out = Vec::new();
        let mut names: HashMap<String, Pos> = HashMap::new();
        let mut vrids: HashMap<(String, u8, bool), Pos> = HashMap::new();
        for v in raw {
            let r = &v.value;
            let name = r.name.value.clone();
            self.name_ok(&r.name, "VRRP instance");
            if let Some(first) = names.insert(name.clone(), pos(&r.name)) {
                self.error(
                    pos(&r.name),
                    format!("VRRP instance `{name}` is defined twice"),
                )
                .hint("give each instance a unique name")
                .note(first, "first defined");
                continue;
            }
            if let Some(inst) = self.instance(v, pools, listeners, backends) {
                let iface = match &inst.interface {
                    InterfaceMatch::Name(n) | InterfaceMatch::Pattern(n) => n.clone(),
                };
                let v4 = inst.addresses.first().is_some_and(|(ip, _)| ip.is_ipv4());
                if let Some(first) = vrids.insert((iface.clone(), inst.vrid, v4), pos(&r.vrid)) {
                    self.error(
                        pos(&r.vrid),
                        format!(
                            "two {} instances use VRID {} on `{iface}`",
                            if v4 { "IPv4" } else { "IPv6" },
                            inst.vrid
                        ),
                    )
                    .hint("a VRID names one virtual router on a link: give each instance its own")
                    .note(first, "first used");
                    continue;
                }
                out.push(inst);
            }
        }
        out
    }

    fn instance(
        &mut self,
        v: &S<RawVrrp>,
        pools: &BTreeMap<String, AddressPool>,
        listeners: &[Listener],
        backends: &BTreeMap<String, std::sync::Arc<Backend>>,
    ) -> Option<VrrpInstance> {
        let r = &v.value;
        let name = r.name.value.as_str();
        let interface = match (&r.interface, &r.interface_pattern) {
            (Some(i), None) => Some(InterfaceMatch::Name(i.value.clone())),
            (None, Some(p)) => match regex_lite::Regex::new(&p.value) {
                Ok(_) => Some(InterfaceMatch::Pattern(p.value.clone())),
                Err(e) => {
                    self.error(
                        pos(p),
                        format!("`{}` is not a regular expression: {e}", p.value),
                    );
                    None
                }
            },
            (Some(i), Some(_)) => {
                self.error(pos(i), "give `interface` or `interfacePattern`, not both");
                None
            }
            (None, None) => {
                self.error(pos(&r.name), format!("VRRP instance `{name}` has no `interface`"))
                    .hint("name the interface the virtual addresses live on (`interface: eth0`), or match one (`interfacePattern: \"^eth[0-9]+\"`)");
                None
            }
        };
        let vrid = self.int_in(&r.vrid, 1, 255, "vrid").map(|v| v as u8);
        let priority = r
            .priority
            .as_ref()
            .and_then(|p| self.int_in(p, 1, 255, "priority"))
            .map_or(100, |p| p as u8);
        let advert_interval = self.duration(
            &r.advert_interval,
            DEFAULT_ADVERT_INTERVAL,
            Duration::from_millis(10),
            "advertInterval",
        );
        if (advert_interval > Duration::from_millis(40_950)
            || !advert_interval.as_millis().is_multiple_of(10))
            && let Some(a) = &r.advert_interval
        {
            self.error(
                pos(a),
                "`advertInterval` is sent in centiseconds: a multiple of 10ms, at most 40.95s",
            );
        }
        let preempt_delay = self.duration(
            &r.preempt_delay,
            Duration::ZERO,
            Duration::ZERO,
            "preemptDelay",
        );
        let mut addresses: Vec<(IpAddr, u8)> = Vec::new();
        for a in &r.addresses {
            let text = a.value.0.trim();
            if let Some(pool) = text.strip_prefix("pool:") {
                match pools.get(pool) {
                    Some(p) => {
                        if p.allocated.is_empty() && self.provider_pool.as_deref() != Some(pool) {
                            self.warn(
                                pos(a),
                                format!("pool `{pool}` has handed out no address yet"),
                            )
                            .hint("gateways take addresses with `pool:NAME` in their `addresses`");
                        }
                        for (ip, _) in &p.allocated {
                            let prefix = p.prefix.unwrap_or(if ip.is_ipv4() { 32 } else { 128 });
                            addresses.push((*ip, prefix));
                        }
                    }
                    None => {
                        self.error(pos(a), format!("there is no pool `{pool}`"));
                    }
                }
                continue;
            }
            let (ip, prefix) = match text.split_once('/') {
                Some((ip, p)) => (ip.parse::<IpAddr>().ok(), p.parse::<u8>().ok()),
                None => (text.parse::<IpAddr>().ok(), None),
            };
            match ip {
                Some(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    match prefix {
                        Some(p) if p > max => {
                            self.error(
                                pos(a),
                                format!("`{text}`: the prefix length must be at most {max}"),
                            );
                        }
                        _ => addresses.push((ip, prefix.unwrap_or(max))),
                    }
                }
                None => {
                    self.error(pos(a), format!("`{text}` is not an address"))
                        .hint("write `ADDRESS/PREFIX` (`192.168.1.250/24`), an address, or `pool:NAME`");
                }
            }
        }
        if r.addresses.is_empty() {
            self.error(
                pos(&r.name),
                format!("VRRP instance `{name}` has no `addresses`"),
            )
            .hint("list the virtual addresses it holds while master");
        }
        if addresses.iter().any(|(ip, _)| ip.is_ipv4())
            && addresses.iter().any(|(ip, _)| ip.is_ipv6())
        {
            self.error(pos(&r.name), format!("VRRP instance `{name}` mixes IPv4 and IPv6 addresses"))
                .hint("VRRPv3 runs one instance per family: make a second instance (it may use the same VRID)");
        }
        addresses.sort();
        addresses.dedup();
        let mut unicast_peers = Vec::new();
        for p in &r.unicast_peers {
            match p.value.0.trim().parse::<IpAddr>() {
                Ok(ip) => unicast_peers.push(ip),
                Err(_) => {
                    self.error(
                        pos(p),
                        format!("`{}` is not an IP address", p.value.0.trim()),
                    );
                }
            }
        }
        let checksum = match r.checksum.as_ref().map(|c| c.value.as_str()) {
            None | Some("rfc5798") => VrrpChecksum::Rfc5798,
            Some("noPseudoHeader") => VrrpChecksum::NoPseudoHeader,
            Some(other) => {
                if let Some(c) = &r.checksum {
                    self.error(pos(c), format!("`{other}` is not a checksum mode"))
                        .hint("`rfc5798` (the default) or `noPseudoHeader` (what some peers send for IPv4)");
                }
                VrrpChecksum::Rfc5798
            }
        };
        let announce = match &r.announce {
            None => Announce {
                count: 3,
                interval: Duration::from_millis(50),
                repeat_after: Some(Duration::from_secs(2)),
            },
            Some(a) => Announce {
                count: a
                    .value
                    .count
                    .as_ref()
                    .and_then(|c| self.int_in(c, 0, 100, "count"))
                    .unwrap_or(3),
                interval: self.duration(
                    &a.value.interval,
                    Duration::from_millis(50),
                    Duration::from_millis(1),
                    "interval",
                ),
                repeat_after: match &a.value.repeat_after {
                    None => Some(Duration::from_secs(2)),
                    some => {
                        let d = self.duration(some, Duration::ZERO, Duration::ZERO, "repeatAfter");
                        (!d.is_zero()).then_some(d)
                    }
                },
            },
        };
        let mut track = Vec::new();
        for t in &r.track {
            let weight = match &t.value.weight {
                None => None,
                Some(w) => self.int_in(w, 1, 254, "weight").map(|w| w as u8),
            };
            let target = match (&t.value.backend, &t.value.listener) {
                (Some(b), None) => {
                    // An unknown name is reported with the other backend references.
                    if !backends.contains_key(&b.value) {
                        continue;
                    }
                    TrackTarget::Backend(b.value.clone())
                }
                (None, Some(l)) => {
                    if !listeners.iter().any(|x| x.name == l.value) {
                        self.error(
                            pos(l),
                            format!("there is no listener `{}` to track", l.value),
                        )
                        .hint("name it `GATEWAY/LISTENER`, e.g. `edge/web`");
                        continue;
                    }
                    TrackTarget::Listener(l.value.clone())
                }
                _ => {
                    self.error(
                        pos(t),
                        "a `track` entry names one `backend` or one `listener`",
                    );
                    continue;
                }
            };
            track.push(Track { target, weight });
        }
        Some(VrrpInstance {
            name: name.to_owned(),
            interface: interface?,
            vrid: vrid?,
            priority,
            advert_interval,
            preempt: r.preempt.as_ref().is_none_or(|p| p.value),
            preempt_delay,
            addresses,
            unicast_peers,
            checksum,
            announce,
            track,
        })
    }
}
