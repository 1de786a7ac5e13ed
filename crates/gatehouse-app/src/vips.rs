//! The running VRRP instances and the tracking that sets their priority: a tracked backend
//! with no endpoint up (or a listener whose backends all have none) lowers its instance's
//! priority by the track's weight, or to 0 (hand the addresses over) when it has no weight.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_config::{Config, TrackTarget, VrrpInstance};
use gatehouse_proxy::Pool;
use gatehouse_vrrp::instance::{InstanceHandle, Status, address_changes, list, spawn};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often tracked objects are looked at. Health checks change state at their own
/// interval; this only bounds how late the priority follows.
const TRACK_EVERY: Duration = Duration::from_millis(100);

/// How long a stop waits for the instances' clean hand-over (priority 0, addresses removed).
const HAND_OVER_WAIT: Duration = Duration::from_secs(2);

/// What tracking reads: the running config and pools.
pub(crate) struct Tracked {
    pub(crate) config: Arc<Config>,
    pub(crate) pools: HashMap<String, Arc<Pool>>,
}

struct Running {
    config: Arc<VrrpInstance>,
    handle: InstanceHandle,
    priority: watch::Sender<u8>,
    stop: CancellationToken,
    /// Tracks failing at the last look, to log changes once.
    failing: Vec<String>,
}

/// The VRRP side of the supervisor.
pub(crate) struct Vips {
    running: Arc<std::sync::Mutex<HashMap<String, Running>>>,
    tracked: Arc<ArcSwap<Tracked>>,
    tracker: Option<CancellationToken>,
}

impl Vips {
    pub(crate) fn new(tracked: Arc<ArcSwap<Tracked>>) -> Vips {
        Vips {
            running: Arc::default(),
            tracked,
            tracker: None,
        }
    }

    /// Starts new and changed instances, stops removed and changed ones (changed ones hand
    /// over cleanly first), leaves unchanged ones running. An instance whose addresses alone
    /// changed (same family, not empty: a pool handed out or took back an address) keeps
    /// running and takes the new list in place, without an election.
    pub(crate) async fn apply(&mut self, instances: &[Arc<VrrpInstance>]) {
        let mut stopping = Vec::new();
        if let Ok(mut running) = self.running.lock() {
            let names: Vec<String> = running.keys().cloned().collect();
            for name in names {
                let new = instances.iter().find(|i| i.name == name);
                let keep = match (running.get_mut(&name), new) {
                    (Some(r), Some(new)) => r.config == *new || change_in_place(r, new),
                    _ => false,
                };
                if !keep && let Some(r) = running.remove(&name) {
                    r.stop.cancel();
                    stopping.push(r.handle);
                }
            }
        }
        for handle in stopping {
            let _ = tokio::time::timeout(HAND_OVER_WAIT, handle.join()).await;
        }
        let tracked = self.tracked.load_full();
        if let Ok(mut running) = self.running.lock() {
            for inst in instances {
                if running.contains_key(&inst.name) {
                    continue;
                }
                let (priority, failing) = effective_priority(inst, |t| fails(&tracked, t));
                let (tx, rx) = watch::channel(priority);
                let stop = CancellationToken::new();
                let handle = spawn(Arc::clone(inst), rx, stop.clone());
                running.insert(
                    inst.name.clone(),
                    Running {
                        config: Arc::clone(inst),
                        handle,
                        priority: tx,
                        stop,
                        failing,
                    },
                );
            }
        }
        if self.tracker.is_none() && !instances.is_empty() {
            let stop = CancellationToken::new();
            tokio::spawn(track(
                Arc::clone(&self.running),
                Arc::clone(&self.tracked),
                stop.clone(),
            ));
            self.tracker = Some(stop);
        }
    }

    /// A reader of the instances' status, for the admin endpoint.
    pub(crate) fn statuses(&self) -> VipStatuses {
        VipStatuses(Arc::clone(&self.running))
    }

    /// Hands every address over (priority 0, addresses removed) and waits for it, so that a
    /// backup takes over at once while this node drains its connections.
    pub(crate) async fn stop(&mut self) {
        if let Some(t) = self.tracker.take() {
            t.cancel();
        }
        let handles: Vec<InstanceHandle> = match self.running.lock() {
            Ok(mut running) => running
                .drain()
                .map(|(_, r)| {
                    r.stop.cancel();
                    r.handle
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        for handle in handles {
            let _ = tokio::time::timeout(HAND_OVER_WAIT, handle.join()).await;
        }
    }
}

/// Gives `r` the addresses of `new` in place if they are all that changed and the instance can
/// take them (same family, not empty); `false`: it must be restarted.
fn change_in_place(r: &mut Running, new: &Arc<VrrpInstance>) -> bool {
    if !only_addresses_differ(&r.config, new) {
        return false;
    }
    if let Err(e) = r.handle.set_addresses(new.addresses.clone()) {
        tracing::info!(instance = %new.name, "VRRP addresses changed: restarting the instance ({e})");
        return false;
    }
    let changes = address_changes(&r.config.addresses, &new.addresses);
    tracing::info!(
        instance = %new.name,
        added = %list(&changes.added),
        removed = %list(&changes.removed),
        "VRRP addresses changed in place (no election)"
    );
    r.config = Arc::clone(new);
    true
}

/// Whether `old` and `new` are the same instance but for their addresses.
fn only_addresses_differ(old: &VrrpInstance, new: &VrrpInstance) -> bool {
    let same_but_addresses = VrrpInstance {
        addresses: new.addresses.clone(),
        ..old.clone()
    };
    same_but_addresses == *new && old.addresses != new.addresses
}

/// Reads the running instances' status without going through the supervisor.
#[derive(Clone)]
pub(crate) struct VipStatuses(Arc<std::sync::Mutex<HashMap<String, Running>>>);

impl VipStatuses {
    /// Each running instance's config and status, by name.
    pub(crate) fn read(&self) -> Vec<(Arc<VrrpInstance>, Status)> {
        let mut out: Vec<(Arc<VrrpInstance>, Status)> = match self.0.lock() {
            Ok(running) => running
                .values()
                .map(|r| (Arc::clone(&r.config), r.handle.status().borrow().clone()))
                .collect(),
            Err(_) => Vec::new(),
        };
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }
}

/// Recomputes every instance's priority every [`TRACK_EVERY`] until `stop`.
async fn track(
    running: Arc<std::sync::Mutex<HashMap<String, Running>>>,
    tracked: Arc<ArcSwap<Tracked>>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(TRACK_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let state = tracked.load();
        let Ok(mut running) = running.lock() else {
            return;
        };
        for r in running.values_mut() {
            let (priority, failing) = effective_priority(&r.config, |t| fails(&state, t));
            if failing != r.failing {
                tracing::info!(
                    instance = %r.config.name,
                    priority,
                    failing = %if failing.is_empty() { "none".to_owned() } else { failing.join(", ") },
                    "tracking changed the priority"
                );
                r.failing = failing;
            }
            r.priority.send_if_modified(|p| {
                let changed = *p != priority;
                *p = priority;
                changed
            });
        }
    }
}

/// Which interface each instance would run on on this node, one line each, for `check`.
pub fn interface_report(config: &Config) -> String {
    use gatehouse_config::InterfaceMatch;
    let mut out = String::new();
    for v in &config.vrrp {
        let found = gatehouse_vrrp::net::interfaces(&v.interface);
        let line = match (&v.interface, found) {
            (_, Ok(list)) if !list.is_empty() => {
                let up = match gatehouse_vrrp::net::link_up(&list[0]) {
                    Ok(true) => "up",
                    Ok(false) => "down",
                    Err(_) => "state unknown",
                };
                format!(
                    "vrrp {}: on this node, interface {} ({up})",
                    v.name, list[0]
                )
            }
            (InterfaceMatch::Name(n), _) => {
                format!("vrrp {}: WARNING: this node has no interface {n}", v.name)
            }
            (InterfaceMatch::Pattern(p), _) => {
                format!(
                    "vrrp {}: WARNING: no interface of this node matches {p}",
                    v.name
                )
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Whether a tracked object fails now.
fn fails(tracked: &Tracked, target: &TrackTarget) -> bool {
    let down = |backend: &str| {
        tracked
            .pools
            .get(backend)
            .is_none_or(|p| !p.endpoints().iter().any(|e| e.is_up()))
    };
    match target {
        TrackTarget::Backend(b) => down(b),
        TrackTarget::Listener(name) => {
            let backends: Vec<&str> = tracked
                .config
                .listeners
                .iter()
                .filter(|l| l.name == *name)
                .flat_map(|l| l.backends())
                .collect();
            backends.is_empty() || backends.iter().all(|b| down(b))
        }
    }
}

/// The priority `inst` runs with while the tracks `failing` says fail, and a description of
/// those (`backend web-pool (-50)`). A failing track without a weight gives 0.
pub(crate) fn effective_priority(
    inst: &VrrpInstance,
    failing: impl Fn(&TrackTarget) -> bool,
) -> (u8, Vec<String>) {
    let mut priority = i32::from(inst.priority);
    let mut give_up = false;
    let mut reasons = Vec::new();
    for t in &inst.track {
        if !failing(&t.target) {
            continue;
        }
        let what = match &t.target {
            TrackTarget::Backend(b) => format!("backend {b}"),
            TrackTarget::Listener(l) => format!("listener {l}"),
        };
        match t.weight {
            Some(w) => {
                priority -= i32::from(w);
                reasons.push(format!("{what} (-{w})"));
            }
            None => {
                give_up = true;
                reasons.push(format!("{what} (gives up)"));
            }
        }
    }
    let priority = if give_up {
        0
    } else {
        priority.clamp(1, 255) as u8
    };
    (priority, reasons)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gatehouse_config::{Announce, InterfaceMatch, Track, VrrpChecksum};

    fn instance(priority: u8, track: Vec<Track>) -> VrrpInstance {
        VrrpInstance {
            name: "lan".into(),
            interface: InterfaceMatch::Name("eth0".into()),
            vrid: 51,
            priority,
            advert_interval: Duration::from_millis(200),
            preempt: true,
            preempt_delay: Duration::ZERO,
            addresses: vec![("192.0.2.100".parse().unwrap(), 24)],
            unicast_peers: vec![],
            checksum: VrrpChecksum::Rfc5798,
            announce: Announce {
                count: 1,
                interval: Duration::from_millis(10),
                repeat_after: None,
            },
            track,
        }
    }

    #[test]
    fn only_a_change_of_addresses_is_applied_in_place() {
        let old = instance(150, vec![]);
        let mut new = old.clone();
        new.addresses.push(("192.0.2.101".parse().unwrap(), 24));
        assert!(only_addresses_differ(&old, &new));
        assert!(!only_addresses_differ(&old, &old));
        new.priority = 100;
        assert!(!only_addresses_differ(&old, &new));
        let mut new = old.clone();
        new.vrid = 52;
        assert!(!only_addresses_differ(&old, &new));
        assert_eq!(list(&[]), "none");
        assert_eq!(list(&new.addresses), "192.0.2.100/24");
    }

    #[tokio::test]
    async fn apply_changes_addresses_in_place_and_restarts_otherwise() {
        let tracked = Arc::new(ArcSwap::from_pointee(Tracked {
            config: Arc::new(Config::empty(Duration::from_secs(1))),
            pools: HashMap::new(),
        }));
        let mut vips = Vips::new(tracked);
        let mut first = instance(150, vec![]);
        // No such interface: the instance stays in Fault and touches nothing.
        first.interface = InterfaceMatch::Name("ghv-none0".into());
        let first = Arc::new(first);
        vips.apply(&[Arc::clone(&first)]).await;
        let status = |vips: &Vips| vips.statuses().read();
        while status(&vips)[0].1.state != gatehouse_vrrp::instance::InstanceState::Fault {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let since = status(&vips)[0].1.since;

        // Addresses only: the same instance (its status keeps its `since`), the new config.
        let mut grown = (*first).clone();
        grown.addresses.push(("192.0.2.101".parse().unwrap(), 24));
        let grown = Arc::new(grown);
        vips.apply(&[Arc::clone(&grown)]).await;
        let now = status(&vips);
        assert_eq!(now[0].0, grown);
        assert_eq!(now[0].1.since, since);

        // No address left: a new instance.
        let mut empty = (*grown).clone();
        empty.addresses.clear();
        let empty = Arc::new(empty);
        vips.apply(&[Arc::clone(&empty)]).await;
        let now = status(&vips);
        assert_eq!(now[0].0, empty);
        assert_ne!(now[0].1.since, since);
        let since = now[0].1.since;

        // Another family: a new instance.
        let mut v6 = (*grown).clone();
        v6.addresses = vec![("2001:db8::100".parse().unwrap(), 64)];
        let v6 = Arc::new(v6);
        vips.apply(&[Arc::clone(&v6)]).await;
        let now = status(&vips);
        assert_eq!(now[0].0, v6);
        assert_ne!(now[0].1.since, since);
        vips.stop().await;
    }

    #[test]
    fn failing_tracks_lower_the_priority_or_give_the_addresses_up() {
        let backend = |b: &str, weight| Track {
            target: TrackTarget::Backend(b.into()),
            weight,
        };
        let inst = instance(
            150,
            vec![backend("web", Some(60)), backend("api", Some(100))],
        );
        let none = |_: &TrackTarget| false;
        assert_eq!(effective_priority(&inst, none), (150, vec![]));
        let web = |t: &TrackTarget| *t == TrackTarget::Backend("web".into());
        assert_eq!(
            effective_priority(&inst, web),
            (90, vec!["backend web (-60)".into()])
        );
        // Never below 1: a node with every track failing still backs the others up.
        let all = |_: &TrackTarget| true;
        assert_eq!(effective_priority(&inst, all).0, 1);
        let inst = instance(150, vec![backend("web", Some(60)), backend("db", None)]);
        let db = |t: &TrackTarget| *t == TrackTarget::Backend("db".into());
        assert_eq!(
            effective_priority(&inst, db),
            (0, vec!["backend db (gives up)".into()])
        );
    }
}
