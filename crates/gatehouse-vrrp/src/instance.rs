//! One running VRRP instance: the [`state`](crate::state) machine driven by Tokio timers, the
//! raw socket, the virtual addresses and their announcements.
//!
//! [`spawn`] starts a task that goes through these phases, reporting each in [`Status`]:
//!
//! 1. **Interface.** The first interface [`net::interfaces`] matches. None: Fault, retried
//!    every second (logged once).
//! 2. **Link.** While [`net::link_up`] says down: Fault, checked as often as in 4.
//! 3. **Socket.** [`VrrpSocket::open`]; failing (no address on the interface yet, say): Fault,
//!    retried every second.
//! 4. **Running** (Init, then Backup or Master): adverts received are checked (TTL 255, VRID,
//!    [`packet::decode`], the address list) and fed to the machine with the effective priority
//!    from the `priority` watch; its actions are carried out: adverts sent, addresses added
//!    (with gratuitous ARP / unsolicited NA, `announce.count` times `announce.interval` apart,
//!    again after `announce.repeat_after`) or removed, timers set. The link is checked every
//!    advert interval (at least every second, at most every 100 ms): down means Fault, the
//!    addresses given up and no more adverts until it is up again (then Init, from 1).
//!
//! On `stop`, a master sends an advert with priority 0 and then removes the addresses: the
//! backup with the highest priority takes over after its skew time, not Master_Down_Interval.
//! Aborting the task instead ([`InstanceHandle::abort`]) is a crash: the addresses stay where
//! they are and the peers notice after Master_Down_Interval. A restarted instance removes
//! leftover addresses when it enters Backup.
//!
//! Every state change is logged at INFO with the instance name, the old and new state and why;
//! so is every change of the effective priority. Adverts for other VRIDs are ignored silently
//! (instances share the group); adverts with a TTL other than 255, or which do not decode, are
//! counted and logged at debug (the first of each kind of decoding error at WARN: a checksum
//! mode mismatch with a peer shows up there); an advert whose address list differs from ours
//! still counts (the check is optional in RFC 5798 section 7.1, and a list that changes with a
//! pool reaches the nodes at slightly different times: dropping would hand every address to a
//! backup meanwhile) and is logged at WARN once per peer until that peer's list agrees with ours
//! again (logged at INFO).
//!
//! The address list can change while the instance runs ([`InstanceHandle::set_addresses`]),
//! without a state change or an election: a master adds the new addresses (and announces them,
//! `announce.count` times as on becoming master), removes those no longer listed and sends an
//! advert with the new list at once; in any state the new list is what adverts carry and what
//! peers' adverts are compared with. The family cannot change that way (nor can the list
//! become empty): that is a new instance, to be stopped and started.
//!
//! Unicast peers: the checksum covers the destination, so each peer gets its own message,
//! through a socket of its own ([`VrrpSocket::send`] sends one message to every destination
//! of its socket); adverts are received on the first.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gatehouse_config::{VrrpChecksum, VrrpInstance};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinError, JoinHandle};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use crate::net::{self, Family, VrrpSocket};
use crate::packet::{self, Advert, PacketError};
use crate::state::{Action, Event, Machine, Params, State};

/// How often a missing interface or a socket that does not open is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// Bounds of the link check period (otherwise the advert interval).
const LINK_CHECK_MIN: Duration = Duration::from_millis(100);
const LINK_CHECK_MAX: Duration = Duration::from_secs(1);
/// The longest a send may take (the priority 0 advert on stop among others).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// Receive buffer: a VRRP message is at most 8 + 255 * 16 bytes.
const RECEIVE_BUFFER: usize = 8 + 255 * 16 + 64;

/// Where an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// Starting, or stopped.
    Init,
    /// Another node is master (or may be).
    Backup,
    /// This node holds the addresses.
    Master,
    /// It cannot run: no interface, link down, no socket. It holds no address.
    Fault,
}

impl From<State> for InstanceState {
    fn from(s: State) -> InstanceState {
        match s {
            State::Init => InstanceState::Init,
            State::Backup => InstanceState::Backup,
            State::Master => InstanceState::Master,
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Init => "init",
            Self::Backup => "backup",
            Self::Master => "master",
            Self::Fault => "fault",
        })
    }
}

/// Counters of an instance since it was spawned. They change without waking the status
/// watchers (read them with `borrow`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Adverts sent (per destination).
    pub sent: u64,
    /// Valid adverts for this VRID received and given to the state machine.
    pub received: u64,
    /// Dropped: TTL / hop limit not 255.
    pub bad_ttl: u64,
    /// Dropped: not a valid VRRPv3 advert (version, type, length, checksum...).
    pub invalid: u64,
    /// Dropped: the address list differs from ours.
    pub address_mismatch: u64,
}

/// What an instance is doing, for logs and status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The instance's name.
    pub name: String,
    /// Its state.
    pub state: InstanceState,
    /// Its effective priority (the latest value of the priority watch).
    pub priority: u8,
    /// The current master's address, if known: ours when master, the sender of the adverts
    /// we follow when backup.
    pub master: Option<IpAddr>,
    /// The interface it runs on, once found.
    pub interface: Option<String>,
    /// When it entered its state (monotonic).
    pub since: std::time::Instant,
    /// When it entered its state (wall clock).
    pub since_system: SystemTime,
    /// Why it is in its state ("higher priority 150 from 192.0.2.2", "link down"...).
    pub reason: String,
    /// Counters.
    pub counters: Counters,
}

/// A running instance.
#[derive(Debug)]
pub struct InstanceHandle {
    status: watch::Receiver<Status>,
    task: JoinHandle<()>,
    /// The address list, changed in place by `set_addresses`.
    addresses: watch::Sender<Vec<(IpAddr, u8)>>,
    /// Its family: the first address's at start (IPv4 if it started with none).
    family: Family,
}

/// Why [`InstanceHandle::set_addresses`] refused a list: the change needs a new instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressChangeError {
    /// The new list is empty.
    Empty,
    /// An address of the new list is not of the instance's family.
    Family {
        /// The instance's family.
        running: Family,
        /// The other family, found in the new list.
        new: Family,
    },
}

impl fmt::Display for AddressChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the new address list is empty"),
            Self::Family { running, new } => write!(
                f,
                "the instance is {running} and the new address list has {new} addresses"
            ),
        }
    }
}

impl std::error::Error for AddressChangeError {}

/// Whether an instance of `running` may take `new` in place.
fn check_addresses(running: Family, new: &[(IpAddr, u8)]) -> Result<(), AddressChangeError> {
    if new.is_empty() {
        return Err(AddressChangeError::Empty);
    }
    match new
        .iter()
        .map(|(a, _)| Family::of(a))
        .find(|f| *f != running)
    {
        Some(other) => Err(AddressChangeError::Family {
            running,
            new: other,
        }),
        None => Ok(()),
    }
}

/// How one address list differs from another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressChanges {
    /// In the new list and not in the old one, in the new list's order.
    pub added: Vec<(IpAddr, u8)>,
    /// In the old list and not in the new one, in the old list's order.
    pub removed: Vec<(IpAddr, u8)>,
}

/// What changes from `old` to `new`. An address whose prefix length changes is in both
/// `added` (with the new one) and `removed` (with the old one).
pub fn address_changes(old: &[(IpAddr, u8)], new: &[(IpAddr, u8)]) -> AddressChanges {
    let old_set: HashSet<&(IpAddr, u8)> = old.iter().collect();
    let new_set: HashSet<&(IpAddr, u8)> = new.iter().collect();
    AddressChanges {
        added: new
            .iter()
            .filter(|a| !old_set.contains(a))
            .copied()
            .collect(),
        removed: old
            .iter()
            .filter(|a| !new_set.contains(a))
            .copied()
            .collect(),
    }
}

impl InstanceHandle {
    /// Changes the virtual addresses in place, without a state change or an election: a
    /// master adds and announces the new ones and removes the others; in any state, adverts
    /// carry the new list (peers with another list are logged, not ignored). Duplicates are dropped, the order
    /// is kept (it is the order of the adverts). The same list again does nothing.
    ///
    /// # Errors
    ///
    /// When the change needs a new instance (stop this one, start another): the list is empty,
    /// or it has an address of the other family (an instance started without addresses is
    /// IPv4). Nothing changes then.
    pub fn set_addresses(&self, addresses: Vec<(IpAddr, u8)>) -> Result<(), AddressChangeError> {
        check_addresses(self.family, &addresses)?;
        let mut seen = HashSet::new();
        let mut addresses = addresses;
        addresses.retain(|a| seen.insert(*a));
        self.addresses.send_if_modified(|current| {
            if *current == addresses {
                return false;
            }
            *current = addresses;
            true
        });
        Ok(())
    }

    /// Its status, updated on every change of state, priority or master.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits for the task to end (after `stop` was cancelled: after the clean hand-over).
    pub async fn join(self) -> Result<(), JoinError> {
        self.task.await
    }

    /// Ends the task at once, without a hand-over: the addresses stay, nothing is sent, the
    /// peers take over after Master_Down_Interval, as after a crash. Prefer `stop`.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// A handle that can [`abort`](InstanceHandle::abort) the task while something else
    /// [`join`](InstanceHandle::join)s it.
    pub fn abort_handle(&self) -> AbortHandle {
        self.task.abort_handle()
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Starts running `config` with the effective priority from `priority` (the caller lowers it
/// as tracked objects fail; 0: hand the addresses over and never take them) until `stop` is
/// cancelled. The network calls act in the network namespace of the thread the task runs on.
/// Its addresses can change while it runs: [`InstanceHandle::set_addresses`].
///
/// # Panics
///
/// Outside a Tokio runtime (like `tokio::spawn`); the runtime needs I/O and time enabled.
pub fn spawn(
    config: Arc<VrrpInstance>,
    priority: watch::Receiver<u8>,
    stop: CancellationToken,
) -> InstanceHandle {
    let now = std::time::Instant::now();
    let initial = *priority.borrow();
    let (status_tx, status_rx) = watch::channel(Status {
        name: config.name.clone(),
        state: InstanceState::Init,
        priority: initial,
        master: None,
        interface: None,
        since: now,
        since_system: SystemTime::now(),
        reason: "starting".to_owned(),
        counters: Counters::default(),
    });
    let family = config
        .addresses
        .first()
        .map_or(Family::V4, |(a, _)| Family::of(a));
    let advert_interval =
        Duration::from_millis(u64::from(packet::centiseconds(config.advert_interval)) * 10);
    let (addresses_tx, addresses_rx) = watch::channel(config.addresses.clone());
    let runner = Runner {
        family,
        advert_interval,
        virtuals: config.addresses.clone(),
        addresses: config.addresses.iter().map(|(a, _)| *a).collect(),
        address_updates: addresses_rx,
        address_updates_open: true,
        config,
        priority,
        priority_open: true,
        stop,
        status: status_tx,
        state: InstanceState::Init,
        warned: HashSet::new(),
        mismatched: HashSet::new(),
        send_failing: HashSet::new(),
    };
    InstanceHandle {
        status: status_rx,
        task: tokio::spawn(runner.run()),
        addresses: addresses_tx,
        family,
    }
}

/// How the running phase ended.
enum Exit {
    Stopped,
    Fault(String),
}

/// The sockets of the running phase: where adverts go from, with the destination their
/// checksum is computed for.
struct Sockets {
    /// (socket, destination): one for the group, or one per unicast peer.
    send: Vec<(VrrpSocket, IpAddr)>,
    local: IpAddr,
}

impl Sockets {
    fn receiver(&self) -> Option<&VrrpSocket> {
        self.send.first().map(|(s, _)| s)
    }
}

/// The timers and announcements of the running phase.
#[derive(Default)]
struct Timers {
    master_down: Option<Instant>,
    advert: Option<Instant>,
    /// When to announce what, in time order.
    announce: VecDeque<(Instant, Announcement)>,
}

/// What one announcement is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Announcement {
    /// Every address (on becoming master, on `Reannounce`).
    All,
    /// These, added in place (those still listed when it is time).
    Added(Vec<IpAddr>),
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Runner {
    /// The configuration it started with; its `addresses` are `virtuals`' first value.
    config: Arc<VrrpInstance>,
    family: Family,
    /// The configured interval, rounded to what the wire carries.
    advert_interval: Duration,
    /// The virtual addresses with their prefix lengths: what a master holds.
    virtuals: Vec<(IpAddr, u8)>,
    /// `virtuals` without the prefix lengths: what adverts carry, in the same order.
    addresses: Vec<IpAddr>,
    /// New address lists from `InstanceHandle::set_addresses` (checked there).
    address_updates: watch::Receiver<Vec<(IpAddr, u8)>>,
    address_updates_open: bool,
    priority: watch::Receiver<u8>,
    priority_open: bool,
    stop: CancellationToken,
    status: watch::Sender<Status>,
    state: InstanceState,
    /// Things logged once.
    warned: HashSet<String>,
    /// Peers whose last advert had an address list other than ours (logged at WARN once per
    /// streak).
    mismatched: HashSet<IpAddr>,
    /// Destinations whose last send failed (logged at WARN once per streak).
    send_failing: HashSet<IpAddr>,
}

impl Runner {
    fn name(&self) -> &str {
        &self.config.name
    }

    /// Logs a state change (or a new reason for a fault) and publishes it.
    fn enter(&mut self, state: InstanceState, reason: &str, master: Option<IpAddr>) {
        let old = self.state;
        self.state = state;
        let new_fault = state == InstanceState::Fault && self.status.borrow().reason != reason;
        if old != state || new_fault {
            tracing::info!(
                instance = %self.config.name,
                from = %old,
                to = %state,
                reason,
                "VRRP {old} -> {state}: {reason}"
            );
        }
        self.status.send_modify(|s| {
            s.state = state;
            s.reason = reason.to_owned();
            s.master = master;
            s.since = std::time::Instant::now();
            s.since_system = SystemTime::now();
        });
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        self.status.send_if_modified(|s| {
            f(&mut s.counters);
            false
        });
    }

    /// Logs `message` at WARN the first time `key` is seen, at debug afterwards.
    fn warn_once(&mut self, key: String, message: impl fmt::Display) {
        if self.warned.insert(key) {
            tracing::warn!(instance = %self.config.name, "{message}");
        } else {
            tracing::debug!(instance = %self.config.name, "{message}");
        }
    }

    async fn run(mut self) {
        loop {
            let Some(interface) = self.find_interface().await else {
                break;
            };
            self.status
                .send_modify(|s| s.interface = Some(interface.clone()));
            if !self.wait_link_up(&interface).await {
                break;
            }
            let Some(sockets) = self.open(&interface).await else {
                break;
            };
            match self.running(&interface, &sockets).await {
                Exit::Stopped => break,
                Exit::Fault(reason) => {
                    self.enter(InstanceState::Fault, &reason, None);
                    // Not at once: a socket error would otherwise spin.
                    tokio::select! {
                        () = self.stop.cancelled() => break,
                        () = sleep(RETRY.min(self.advert_interval)) => {}
                    }
                }
            }
        }
        if self.state != InstanceState::Init {
            self.enter(InstanceState::Init, "stopped", None);
        }
    }

    /// The first interface matching the configuration, waiting for one; `None`: stopped.
    async fn find_interface(&mut self) -> Option<String> {
        loop {
            let problem = match net::interfaces(&self.config.interface) {
                Ok(names) => match names.into_iter().next() {
                    Some(name) => {
                        self.warned.remove("interface");
                        return Some(name);
                    }
                    None => format!("no interface matches {}", describe(&self.config.interface)),
                },
                Err(e) => format!("cannot list interfaces: {e}"),
            };
            if self.state != InstanceState::Fault || self.status.borrow().reason != problem {
                self.enter(InstanceState::Fault, &problem, None);
            }
            if self.warned.insert("interface".to_owned()) {
                tracing::warn!(instance = %self.config.name, "{problem}; trying again every second");
            }
            tokio::select! {
                () = self.stop.cancelled() => return None,
                () = sleep(RETRY) => {}
            }
        }
    }

    fn link_check_period(&self) -> Duration {
        self.advert_interval.clamp(LINK_CHECK_MIN, LINK_CHECK_MAX)
    }

    /// Waits for the link to be up; `false`: stopped.
    async fn wait_link_up(&mut self, interface: &str) -> bool {
        loop {
            match net::link_up(interface) {
                Ok(true) => return true,
                Ok(false) => {
                    if self.state != InstanceState::Fault {
                        self.enter(
                            InstanceState::Fault,
                            &format!("link {interface} down"),
                            None,
                        );
                    }
                }
                Err(e) => {
                    let problem = format!("cannot tell whether {interface} is up: {e}");
                    if self.status.borrow().reason != problem {
                        self.enter(InstanceState::Fault, &problem, None);
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return false,
                () = sleep(self.link_check_period()) => {}
            }
        }
    }

    /// Opens the sockets, waiting until they open; `None`: stopped.
    async fn open(&mut self, interface: &str) -> Option<Sockets> {
        loop {
            match self.try_open(interface) {
                Ok(sockets) => {
                    self.warned.remove("socket");
                    return Some(sockets);
                }
                Err(e) => {
                    let problem = e.to_string();
                    if self.state != InstanceState::Fault || self.status.borrow().reason != problem
                    {
                        self.enter(InstanceState::Fault, &problem, None);
                    }
                    if self.warned.insert("socket".to_owned()) {
                        tracing::warn!(instance = %self.config.name, "{problem}; trying again every second");
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return None,
                () = sleep(RETRY) => {}
            }
        }
    }

    fn try_open(&self, interface: &str) -> std::io::Result<Sockets> {
        let peers = &self.config.unicast_peers;
        let mut send = Vec::new();
        if peers.is_empty() {
            let socket = VrrpSocket::open(self.family, interface, &[])?;
            send.push((socket, packet::multicast_group(self.family)));
        } else {
            for peer in peers {
                send.push((VrrpSocket::open(self.family, interface, &[*peer])?, *peer));
            }
        }
        let local = send
            .first()
            .map_or(IpAddr::from([0, 0, 0, 0]), |(s, _)| s.local_address());
        Ok(Sockets { send, local })
    }

    /// Runs the state machine until stopped or a fault.
    async fn running(&mut self, interface: &str, sockets: &Sockets) -> Exit {
        let Some(receiver) = sockets.receiver() else {
            return Exit::Fault("no socket".to_owned());
        };
        let priority = *self.priority.borrow_and_update();
        self.status.send_modify(|s| s.priority = priority);
        // A list changed while there was nothing to run on: nothing is held, take it as is.
        let latest = self.address_updates.borrow_and_update().clone();
        if latest != self.virtuals {
            self.set_virtuals(latest);
        }
        let mut machine = Machine::new(Params {
            priority,
            advert_interval: self.advert_interval,
            preempt: self.config.preempt,
            preempt_delay: self.config.preempt_delay,
            local_address: sockets.local,
        });
        self.enter(
            InstanceState::Init,
            &format!("running on {interface} from {}", sockets.local),
            None,
        );
        let mut timers = Timers::default();
        let actions = machine.handle(Event::Startup, std::time::Instant::now());
        self.apply(actions, &machine, interface, sockets, &mut timers)
            .await;

        let mut buf = vec![0u8; RECEIVE_BUFFER];
        let mut link_check = tokio::time::interval(self.link_check_period());
        link_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                biased;
                () = self.stop.cancelled() => {
                    let actions = machine.handle(Event::Shutdown, std::time::Instant::now());
                    self.apply(actions, &machine, interface, sockets, &mut timers).await;
                    return Exit::Stopped;
                }
                changed = self.priority.changed(), if self.priority_open => {
                    if changed.is_err() {
                        // The sender is gone: keep the last priority.
                        self.priority_open = false;
                        continue;
                    }
                    let new = *self.priority.borrow_and_update();
                    let old = machine.priority();
                    if new == old {
                        continue;
                    }
                    tracing::info!(
                        instance = %self.config.name,
                        from = old,
                        to = new,
                        "VRRP effective priority {old} -> {new}"
                    );
                    self.status.send_modify(|s| s.priority = new);
                    Event::PriorityChanged(new)
                }
                changed = self.address_updates.changed(), if self.address_updates_open => {
                    if changed.is_err() {
                        // The handle is gone: keep the last list.
                        self.address_updates_open = false;
                        continue;
                    }
                    let new = self.address_updates.borrow_and_update().clone();
                    self.change_addresses(new, &machine, interface, sockets, &mut timers).await;
                    continue;
                }
                () = sleep_until_some(timers.master_down) => {
                    timers.master_down = None;
                    Event::MasterDownTimerFired
                }
                () = sleep_until_some(timers.advert) => {
                    timers.advert = None;
                    Event::AdvertTimerFired
                }
                () = sleep_until_some(timers.announce.front().map(|(at, _)| *at)) => {
                    if let Some((_, what)) = timers.announce.pop_front() {
                        self.announce(interface, &what);
                    }
                    continue;
                }
                _ = link_check.tick() => {
                    match net::link_up(interface) {
                        Ok(true) => continue,
                        Ok(false) => {
                            self.give_up(interface).await;
                            return Exit::Fault(format!("link {interface} down"));
                        }
                        Err(e) => {
                            self.give_up(interface).await;
                            return Exit::Fault(format!("cannot tell whether {interface} is up: {e}"));
                        }
                    }
                }
                received = receiver.recv(&mut buf) => {
                    match received {
                        Ok(r) => match self.check(&buf[..r.len.min(buf.len())], &r, sockets) {
                            Some(event) => event,
                            None => continue,
                        },
                        Err(e) => {
                            self.give_up(interface).await;
                            return Exit::Fault(format!("receiving adverts failed: {e}"));
                        }
                    }
                }
            };
            let actions = machine.handle(event, std::time::Instant::now());
            self.apply(actions, &machine, interface, sockets, &mut timers)
                .await;
            let master = machine.master();
            if self.status.borrow().master != master {
                self.status.send_modify(|s| s.master = master);
            }
        }
    }

    /// Checks a received message; `Some`: an advert for the machine.
    fn check(&mut self, message: &[u8], r: &net::Received, sockets: &Sockets) -> Option<Event> {
        if r.source == sockets.local {
            return None;
        }
        // Other instances share the group: their VRID is their business.
        if message.get(1).is_some_and(|vrid| *vrid != self.config.vrid) {
            return None;
        }
        if r.ttl != packet::TTL {
            self.count(|c| c.bad_ttl += 1);
            tracing::debug!(
                instance = %self.config.name,
                source = %r.source,
                ttl = r.ttl,
                "dropping an advert with TTL {} (must be 255: it crossed a router or was forged)",
                r.ttl
            );
            return None;
        }
        let destination = r.destination.unwrap_or_else(|| {
            if self.config.unicast_peers.is_empty() {
                packet::multicast_group(self.family)
            } else {
                sockets.local
            }
        });
        let advert = match packet::decode(
            message,
            self.family,
            self.config.checksum,
            r.source,
            destination,
        ) {
            Ok(advert) => advert,
            Err(e) => {
                self.count(|c| c.invalid += 1);
                let key = format!("decode {}", error_kind(&e));
                let hint = match (&e, self.config.checksum) {
                    (
                        PacketError::Checksum {
                            other_mode_matches: true,
                            ..
                        },
                        VrrpChecksum::Rfc5798,
                    ) => {
                        "; the peer leaves the IPv4 pseudo-header out: set `checksum: noPseudoHeader` on this instance"
                    }
                    (
                        PacketError::Checksum {
                            other_mode_matches: true,
                            ..
                        },
                        VrrpChecksum::NoPseudoHeader,
                    ) => {
                        "; the peer includes the IPv4 pseudo-header (keepalived does): set `checksum: rfc5798` on this instance"
                    }
                    _ => "",
                };
                self.warn_once(
                    key,
                    format_args!("dropping an advert from {}: {e}{hint}", r.source),
                );
                return None;
            }
        };
        if advert.priority != 255 && !self.same_addresses(&advert) {
            self.count(|c| c.address_mismatch += 1);
            let ours = self
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>();
            let theirs = advert
                .addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>();
            // The check is optional (RFC 5798 section 7.1, "MAY verify"), and dropping on a
            // mismatch would be worse than the mismatch: an instance holding a pool changes its
            // list whenever the pool hands out an address, nodes learn that at slightly
            // different times, and a backup that dropped the master's adverts meanwhile would
            // take every address over. So the advert counts; the mismatch is logged.
            let message = format!(
                "configuration mismatch with peer {}: it advertises VRID {} with addresses [{}], \
                     ours are [{}]; its adverts still count, but check both nodes' configs",
                r.source,
                self.config.vrid,
                theirs.join(", "),
                ours.join(", ")
            );
            if self.mismatched.insert(r.source) {
                tracing::warn!(instance = %self.config.name, "{message}");
            } else {
                tracing::debug!(instance = %self.config.name, "{message}");
            }
        } else if self.mismatched.remove(&r.source) {
            tracing::info!(
                instance = %self.config.name,
                peer = %r.source,
                "peer {} advertises the same addresses as we do again",
                r.source
            );
        }
        self.count(|c| c.received += 1);
        Some(Event::AdvertReceived {
            priority: advert.priority,
            source: r.source,
            max_advert_interval: advert.interval(),
        })
    }

    fn same_addresses(&self, advert: &Advert) -> bool {
        let ours: BTreeSet<IpAddr> = self.addresses.iter().copied().collect();
        let theirs: BTreeSet<IpAddr> = advert.addresses.iter().copied().collect();
        ours == theirs && advert.addresses.len() == self.addresses.len()
    }

    /// Carries the machine's actions out, in order.
    async fn apply(
        &mut self,
        actions: Vec<Action>,
        machine: &Machine,
        interface: &str,
        sockets: &Sockets,
        timers: &mut Timers,
    ) {
        let now = Instant::now();
        for action in actions {
            match action {
                Action::SendAdvert { priority } => self.send(priority, sockets).await,
                Action::BecomeMaster(reason) => {
                    self.enter(InstanceState::Master, &reason.to_string(), machine.master());
                    self.add_addresses(interface).await;
                    timers.announce = self.announcements(Instant::now(), &Announcement::All);
                }
                Action::BecomeBackup(reason) => {
                    timers.announce.clear();
                    self.enter(InstanceState::Backup, &reason.to_string(), machine.master());
                    self.remove_addresses(interface).await;
                }
                Action::BecomeInit(reason) => {
                    timers.announce.clear();
                    self.remove_addresses(interface).await;
                    self.enter(InstanceState::Init, &reason.to_string(), None);
                }
                Action::SetMasterDownTimer(d) => timers.master_down = Some(now + d),
                Action::SetAdvertTimer(d) => timers.advert = Some(now + d),
                Action::CancelMasterDownTimer => timers.master_down = None,
                Action::CancelAdvertTimer => timers.advert = None,
                Action::Reannounce => {
                    tracing::info!(
                        instance = %self.config.name,
                        "another node advertised as master with a lower priority: announcing the addresses again"
                    );
                    timers.announce = self.announcements(Instant::now(), &Announcement::All);
                }
            }
        }
    }

    /// When to announce, from becoming master at `start`: `count` times `interval` apart,
    /// and the same again after `repeat_after`.
    fn announce_schedule(&self, start: Instant) -> VecDeque<Instant> {
        let a = &self.config.announce;
        let burst = |from: Instant| (0..a.count).map(move |i| from + a.interval * i);
        let mut at: VecDeque<Instant> = burst(start).collect();
        if let Some(repeat) = a.repeat_after {
            at.extend(burst(start + repeat));
        }
        at
    }

    /// [`announce_schedule`](Runner::announce_schedule) from `start`, each for `what`.
    fn announcements(
        &self,
        start: Instant,
        what: &Announcement,
    ) -> VecDeque<(Instant, Announcement)> {
        self.announce_schedule(start)
            .into_iter()
            .map(|at| (at, what.clone()))
            .collect()
    }

    fn announce(&mut self, interface: &str, what: &Announcement) {
        let addresses: Vec<IpAddr> = match what {
            Announcement::All => self.addresses.clone(),
            Announcement::Added(added) => added
                .iter()
                .filter(|a| self.addresses.contains(a))
                .copied()
                .collect(),
        };
        match net::announce(interface, &addresses) {
            Ok(()) => {
                self.warned.remove("announce");
            }
            Err(e) => self.warn_once(
                "announce".to_owned(),
                format_args!("announcing the addresses: {e}"),
            ),
        }
    }

    async fn send(&mut self, priority: u8, sockets: &Sockets) {
        let advert = Advert {
            vrid: self.config.vrid,
            priority,
            max_advert_interval: packet::centiseconds(self.advert_interval),
            addresses: self.addresses.clone(),
        };
        for (socket, destination) in &sockets.send {
            let message = match packet::encode(
                &advert,
                self.family,
                self.config.checksum,
                sockets.local,
                *destination,
            ) {
                Ok(m) => m,
                Err(e) => {
                    self.warn_once(
                        "encode".to_owned(),
                        format_args!("cannot build an advert: {e}"),
                    );
                    return;
                }
            };
            match timeout(SEND_TIMEOUT, socket.send(&message)).await {
                Ok(Ok(())) => {
                    self.count(|c| c.sent += 1);
                    if self.send_failing.remove(destination) {
                        tracing::info!(instance = %self.config.name, "sending adverts to {destination} works again");
                    }
                }
                Ok(Err(e)) => self.send_failed(*destination, e.to_string()),
                Err(_) => self.send_failed(
                    *destination,
                    format!("sending an advert to {destination} timed out"),
                ),
            }
        }
    }

    fn send_failed(&mut self, destination: IpAddr, error: String) {
        if self.send_failing.insert(destination) {
            tracing::warn!(instance = %self.config.name, "{error}");
        } else {
            tracing::debug!(instance = %self.config.name, "{error}");
        }
    }

    async fn add_addresses(&mut self, interface: &str) {
        let all = self.virtuals.clone();
        self.add(interface, &all).await;
    }

    async fn remove_addresses(&mut self, interface: &str) {
        let all = self.virtuals.clone();
        self.remove(interface, &all).await;
    }

    async fn add(&self, interface: &str, addresses: &[(IpAddr, u8)]) {
        for &(addr, prefix) in addresses {
            if let Err(e) = net::add_address(interface, addr, prefix).await {
                tracing::warn!(instance = %self.config.name, "{e}");
            }
        }
    }

    async fn remove(&self, interface: &str, addresses: &[(IpAddr, u8)]) {
        for &(addr, prefix) in addresses {
            if let Err(e) = net::remove_address(interface, addr, prefix).await {
                tracing::warn!(instance = %self.config.name, "{e}");
            }
        }
    }

    /// Takes `new` as the address list (adverts, the peers' check); returns what was added and
    /// removed. No netlink.
    fn set_virtuals(&mut self, new: Vec<(IpAddr, u8)>) -> AddressChanges {
        let changes = address_changes(&self.virtuals, &new);
        self.addresses = new.iter().map(|(a, _)| *a).collect();
        self.virtuals = new;
        // Their verdicts were about the old list.
        self.mismatched.clear();
        changes
    }

    /// A new address list while running: no state change. A master adds the new addresses,
    /// removes the old ones, announces the new ones and advertises the new list at once.
    async fn change_addresses(
        &mut self,
        new: Vec<(IpAddr, u8)>,
        machine: &Machine,
        interface: &str,
        sockets: &Sockets,
        timers: &mut Timers,
    ) {
        if new == self.virtuals {
            return;
        }
        let AddressChanges { added, removed } = self.set_virtuals(new);
        tracing::debug!(
            instance = %self.config.name,
            state = %self.state,
            added = %list(&added),
            removed = %list(&removed),
            "VRRP address list changed in place"
        );
        if self.state != InstanceState::Master {
            return;
        }
        // Added first, so that a changed prefix length (in both lists) ends up added whatever
        // the kernel does with the same address under two prefixes.
        self.add(interface, &added).await;
        self.remove(interface, &removed).await;
        if !removed.is_empty() {
            // Without promote_secondaries, removing an IPv4 primary address removes the
            // secondaries of its subnet with it: put back whatever went.
            self.add_addresses(interface).await;
        }
        if !added.is_empty() {
            let announce = Announcement::Added(added.iter().map(|(a, _)| *a).collect());
            let more = self.announcements(Instant::now(), &announce);
            timers.announce.extend(more);
            timers.announce.make_contiguous().sort_by_key(|(at, _)| *at);
        }
        // Backups compare the lists: tell them at once, so a mismatch is logged briefly.
        self.send(machine.priority(), sockets).await;
        timers.advert = Some(Instant::now() + self.advert_interval);
    }

    /// Fault while running: the addresses go, nothing more is sent.
    async fn give_up(&mut self, interface: &str) {
        if self.state == InstanceState::Master {
            tracing::debug!(instance = %self.name(), "giving the addresses up");
        }
        self.remove_addresses(interface).await;
    }
}

/// `192.0.2.1/24, 192.0.2.2/24`, or `none`: an address list for logs.
pub fn list(addresses: &[(IpAddr, u8)]) -> String {
    if addresses.is_empty() {
        return "none".to_owned();
    }
    addresses
        .iter()
        .map(|(a, p)| format!("{a}/{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(m: &gatehouse_config::InterfaceMatch) -> String {
    match m {
        gatehouse_config::InterfaceMatch::Name(name) => format!("the name {name:?}"),
        gatehouse_config::InterfaceMatch::Pattern(p) => format!("the pattern {p:?}"),
    }
}

/// A short name per kind of decoding error, so each is logged at WARN once.
fn error_kind(e: &PacketError) -> &'static str {
    match e {
        PacketError::TooShort { .. } => "too short",
        PacketError::Version(_) => "version",
        PacketError::Type(_) => "type",
        PacketError::Length { .. } => "length",
        PacketError::Count { .. } => "count",
        PacketError::ZeroInterval => "interval",
        PacketError::Checksum { .. } => "checksum",
        PacketError::Family => "family",
        PacketError::TooManyAddresses(_) => "too many",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_config::{Announce, InterfaceMatch, VrrpChecksum};

    fn config(count: u32, repeat: Option<Duration>) -> VrrpInstance {
        VrrpInstance {
            name: "vip".to_owned(),
            interface: InterfaceMatch::Name("eth0".to_owned()),
            vrid: 51,
            priority: 100,
            advert_interval: Duration::from_millis(1004),
            preempt: true,
            preempt_delay: Duration::ZERO,
            addresses: vec![("192.0.2.100".parse().unwrap(), 24)],
            unicast_peers: vec![],
            checksum: VrrpChecksum::Rfc5798,
            announce: Announce {
                count,
                interval: Duration::from_millis(200),
                repeat_after: repeat,
            },
            track: vec![],
        }
    }

    fn runner(config: VrrpInstance) -> Runner {
        let (_tx, priority) = watch::channel(100);
        let handle_status = watch::channel(Status {
            name: String::new(),
            state: InstanceState::Init,
            priority: 100,
            master: None,
            interface: None,
            since: std::time::Instant::now(),
            since_system: SystemTime::now(),
            reason: String::new(),
            counters: Counters::default(),
        });
        let (_addresses_tx, address_updates) = watch::channel(config.addresses.clone());
        Runner {
            family: Family::V4,
            advert_interval: Duration::from_secs(1),
            virtuals: config.addresses.clone(),
            addresses: config.addresses.iter().map(|(a, _)| *a).collect(),
            address_updates,
            address_updates_open: true,
            config: Arc::new(config),
            priority,
            priority_open: true,
            stop: CancellationToken::new(),
            status: handle_status.0,
            state: InstanceState::Init,
            warned: HashSet::new(),
            mismatched: HashSet::new(),
            send_failing: HashSet::new(),
        }
    }

    #[test]
    fn announce_schedule() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let cases = [
            (0, None, vec![]),
            (1, None, vec![t]),
            (3, None, vec![t, t + ms(200), t + ms(400)]),
            (
                2,
                Some(ms(5000)),
                vec![t, t + ms(200), t + ms(5000), t + ms(5200)],
            ),
        ];
        for (count, repeat, want) in cases {
            let r = runner(config(count, repeat));
            assert_eq!(
                r.announce_schedule(t),
                VecDeque::from(want),
                "{count} {repeat:?}"
            );
        }
    }

    #[test]
    fn address_lists_compare_as_sets() {
        let mut c = config(1, None);
        c.addresses = vec![
            ("192.0.2.100".parse().unwrap(), 24),
            ("192.0.2.101".parse().unwrap(), 24),
        ];
        let r = runner(c);
        let advert = |addrs: &[&str]| Advert {
            vrid: 51,
            priority: 100,
            max_advert_interval: 100,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        assert!(r.same_addresses(&advert(&["192.0.2.100", "192.0.2.101"])));
        assert!(r.same_addresses(&advert(&["192.0.2.101", "192.0.2.100"])));
        assert!(!r.same_addresses(&advert(&["192.0.2.100"])));
        assert!(!r.same_addresses(&advert(&["192.0.2.100", "192.0.2.100"])));
        assert!(!r.same_addresses(&advert(&["192.0.2.100", "192.0.2.102"])));
    }

    fn a(s: &str, prefix: u8) -> (IpAddr, u8) {
        (s.parse().unwrap(), prefix)
    }

    #[test]
    fn in_place_changes_keep_the_family_and_are_never_empty() {
        let v4 = Family::V4;
        assert_eq!(check_addresses(v4, &[a("192.0.2.5", 32)]), Ok(()));
        assert_eq!(check_addresses(v4, &[]), Err(AddressChangeError::Empty));
        assert_eq!(
            check_addresses(v4, &[a("192.0.2.5", 32), a("2001:db8::5", 128)]),
            Err(AddressChangeError::Family {
                running: Family::V4,
                new: Family::V6
            })
        );
        assert_eq!(
            check_addresses(Family::V6, &[a("192.0.2.5", 32)]),
            Err(AddressChangeError::Family {
                running: Family::V6,
                new: Family::V4
            })
        );
        assert_eq!(
            AddressChangeError::Family {
                running: Family::V4,
                new: Family::V6
            }
            .to_string(),
            "the instance is IPv4 and the new address list has IPv6 addresses"
        );
    }

    #[test]
    fn address_changes_in_list_order() {
        let old = [a("192.0.2.1", 32), a("192.0.2.2", 32), a("192.0.2.3", 24)];
        let new = [
            a("192.0.2.9", 32),
            a("192.0.2.3", 32),
            a("192.0.2.1", 32),
            a("192.0.2.4", 32),
        ];
        let changes = address_changes(&old, &new);
        assert_eq!(
            changes.added,
            vec![a("192.0.2.9", 32), a("192.0.2.3", 32), a("192.0.2.4", 32)]
        );
        assert_eq!(
            changes.removed,
            vec![a("192.0.2.2", 32), a("192.0.2.3", 24)]
        );
        assert_eq!(address_changes(&old, &old), AddressChanges::default());
    }

    #[test]
    fn a_new_list_is_what_adverts_carry_and_peers_are_checked_against() {
        let mut r = runner(config(1, None));
        let advert = |addrs: &[&str]| Advert {
            vrid: 51,
            priority: 100,
            max_advert_interval: 100,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        r.mismatched.insert("192.0.2.2".parse().unwrap());
        let changes = r.set_virtuals(vec![a("192.0.2.100", 24), a("192.0.2.101", 24)]);
        assert_eq!(
            changes,
            AddressChanges {
                added: vec![a("192.0.2.101", 24)],
                removed: vec![]
            }
        );
        assert_eq!(
            r.addresses,
            vec![
                "192.0.2.100".parse::<IpAddr>().unwrap(),
                "192.0.2.101".parse().unwrap()
            ]
        );
        assert!(r.mismatched.is_empty());
        assert!(r.same_addresses(&advert(&["192.0.2.100", "192.0.2.101"])));
        assert!(!r.same_addresses(&advert(&["192.0.2.100"])));
        let changes = r.set_virtuals(vec![a("192.0.2.101", 24)]);
        assert_eq!(
            changes,
            AddressChanges {
                added: vec![],
                removed: vec![a("192.0.2.100", 24)]
            }
        );
        assert!(r.same_addresses(&advert(&["192.0.2.101"])));
    }

    #[tokio::test]
    async fn the_handle_refuses_lists_that_need_a_new_instance() {
        let (_priority_tx, priority) = watch::channel(100);
        let stop = CancellationToken::new();
        let mut c = config(1, None);
        // No such interface: the task stays in Fault, touching nothing.
        c.interface = InterfaceMatch::Name("ghv-none0".to_owned());
        let handle = spawn(Arc::new(c), priority, stop.clone());
        assert_eq!(handle.set_addresses(vec![]), Err(AddressChangeError::Empty));
        assert!(matches!(
            handle.set_addresses(vec![a("2001:db8::1", 64)]),
            Err(AddressChangeError::Family { .. })
        ));
        assert_eq!(*handle.addresses.borrow(), vec![a("192.0.2.100", 24)]);
        let new = vec![
            a("192.0.2.100", 24),
            a("192.0.2.101", 24),
            a("192.0.2.100", 24),
        ];
        assert_eq!(handle.set_addresses(new), Ok(()));
        assert_eq!(
            *handle.addresses.borrow(),
            vec![a("192.0.2.100", 24), a("192.0.2.101", 24)]
        );
        stop.cancel();
        handle.join().await.unwrap();

        let (_priority_tx, priority) = watch::channel(100);
        let mut c = config(1, None);
        c.interface = InterfaceMatch::Name("ghv-none0".to_owned());
        c.addresses = vec![];
        let stop = CancellationToken::new();
        let handle = spawn(Arc::new(c), priority, stop.clone());
        // It runs as IPv4, with nothing to advertise yet.
        assert!(matches!(
            handle.set_addresses(vec![a("2001:db8::1", 64)]),
            Err(AddressChangeError::Family { .. })
        ));
        assert_eq!(handle.set_addresses(vec![a("192.0.2.100", 24)]), Ok(()));
        stop.cancel();
        handle.join().await.unwrap();
    }
}
