//! The state machine against RFC 5798 section 6.4, as tables: each row is a machine in a
//! state, an event, the actions it must answer with and the state it must end in. Then a
//! small discrete-event simulation of several machines on one link (virtual time, adverts
//! delivered at once) for the behaviours that need more than one node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use gatehouse_vrrp::state::{
    Action, Event, Machine, Params, Reason, State, master_down_interval, skew_time,
};

const SEC: Duration = Duration::from_secs(1);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn params(priority: u8, preempt: bool, preempt_delay: Duration) -> Params {
    Params {
        priority,
        advert_interval: SEC,
        preempt,
        preempt_delay,
        local_address: ip("192.0.2.10"),
    }
}

fn advert(priority: u8, source: &str, interval: Duration) -> Event {
    Event::AdvertReceived {
        priority,
        source: ip(source),
        max_advert_interval: interval,
    }
}

/// How a row's machine gets to its starting state.
#[derive(Clone, Copy, Debug)]
enum Start {
    Init,
    /// Startup (Backup unless priority 255).
    Started,
    /// Startup then the master down timer: Master.
    Master,
}

struct Row {
    name: &'static str,
    params: Params,
    start: Start,
    /// Time of the event after startup.
    at: Duration,
    event: Event,
    actions: Vec<Action>,
    state: State,
}

fn machine_in(p: &Params, start: Start, t0: Instant) -> Machine {
    let mut m = Machine::new(p.clone());
    match start {
        Start::Init => {}
        Start::Started => {
            m.handle(Event::Startup, t0);
        }
        Start::Master => {
            m.handle(Event::Startup, t0);
            m.handle(Event::MasterDownTimerFired, t0);
            assert_eq!(m.state(), State::Master);
        }
    }
    m
}

#[test]
fn rfc_5798_section_6_4_transitions() {
    use Action::*;
    let mdi100 = master_down_interval(100, SEC);
    let skew100 = skew_time(100, SEC);
    let two = 2 * SEC;
    let p100 = params(100, true, Duration::ZERO);
    let rows = vec![
        // 6.4.1 Initialize.
        Row {
            name: "init: startup, priority 255 -> master at once",
            params: params(255, true, Duration::ZERO),
            start: Start::Init,
            at: Duration::ZERO,
            event: Event::Startup,
            actions: vec![
                SendAdvert { priority: 255 },
                BecomeMaster(Reason::Owner),
                SetAdvertTimer(SEC),
            ],
            state: State::Master,
        },
        Row {
            name: "init: startup -> backup, master down timer = Master_Down_Interval",
            params: p100.clone(),
            start: Start::Init,
            at: Duration::ZERO,
            event: Event::Startup,
            actions: vec![BecomeBackup(Reason::Startup), SetMasterDownTimer(mdi100)],
            state: State::Backup,
        },
        Row {
            name: "init: startup with effective priority 0 -> backup without a timer",
            params: params(0, true, Duration::ZERO),
            start: Start::Init,
            at: Duration::ZERO,
            event: Event::Startup,
            actions: vec![BecomeBackup(Reason::Startup)],
            state: State::Backup,
        },
        Row {
            name: "init: adverts are ignored",
            params: p100.clone(),
            start: Start::Init,
            at: Duration::ZERO,
            event: advert(200, "192.0.2.2", SEC),
            actions: vec![],
            state: State::Init,
        },
        // 6.4.2 Backup.
        Row {
            name: "backup: shutdown -> init",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: Event::Shutdown,
            actions: vec![CancelMasterDownTimer, BecomeInit(Reason::Shutdown)],
            state: State::Init,
        },
        Row {
            name: "backup: master down timer -> master",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: Event::MasterDownTimerFired,
            actions: vec![
                SendAdvert { priority: 100 },
                BecomeMaster(Reason::MasterDown),
                SetAdvertTimer(SEC),
            ],
            state: State::Master,
        },
        Row {
            name: "backup: priority 0 advert -> master down timer = Skew_Time",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: advert(0, "192.0.2.2", SEC),
            actions: vec![SetMasterDownTimer(skew100)],
            state: State::Backup,
        },
        Row {
            name: "backup: higher priority -> learn the interval, reset the timer",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: advert(150, "192.0.2.2", two),
            actions: vec![SetMasterDownTimer(master_down_interval(100, two))],
            state: State::Backup,
        },
        Row {
            name: "backup: equal priority is accepted (no preemption on a tie)",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: advert(100, "192.0.2.200", SEC),
            actions: vec![SetMasterDownTimer(mdi100)],
            state: State::Backup,
        },
        Row {
            name: "backup, preempt: lower priority is discarded (the timer runs out)",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: advert(50, "192.0.2.2", SEC),
            actions: vec![],
            state: State::Backup,
        },
        Row {
            name: "backup, no preempt: lower priority is accepted",
            params: params(100, false, Duration::ZERO),
            start: Start::Started,
            at: SEC,
            event: advert(50, "192.0.2.2", two),
            actions: vec![SetMasterDownTimer(master_down_interval(100, two))],
            state: State::Backup,
        },
        Row {
            name: "backup, preempt delay not over: lower priority is accepted",
            params: params(100, true, 10 * SEC),
            start: Start::Started,
            at: 9 * SEC,
            event: advert(50, "192.0.2.2", SEC),
            actions: vec![SetMasterDownTimer(mdi100)],
            state: State::Backup,
        },
        Row {
            name: "backup, preempt delay over: lower priority is discarded",
            params: params(100, true, 10 * SEC),
            start: Start::Started,
            at: 10 * SEC,
            event: advert(50, "192.0.2.2", SEC),
            actions: vec![],
            state: State::Backup,
        },
        Row {
            name: "backup: advert timer is stale",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: Event::AdvertTimerFired,
            actions: vec![],
            state: State::Backup,
        },
        Row {
            name: "backup: priority drops to 0 -> no master down timer",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: Event::PriorityChanged(0),
            actions: vec![CancelMasterDownTimer],
            state: State::Backup,
        },
        Row {
            name: "backup, priority 0: master down timer does not make it master",
            params: params(0, true, Duration::ZERO),
            start: Start::Started,
            at: SEC,
            event: Event::MasterDownTimerFired,
            actions: vec![CancelMasterDownTimer],
            state: State::Backup,
        },
        Row {
            name: "backup, priority 0: priority 0 from the master changes nothing",
            params: params(0, true, Duration::ZERO),
            start: Start::Started,
            at: SEC,
            event: advert(0, "192.0.2.2", SEC),
            actions: vec![],
            state: State::Backup,
        },
        Row {
            name: "backup: priority back from 0 -> master down timer again",
            params: params(0, true, Duration::ZERO),
            start: Start::Started,
            at: SEC,
            event: Event::PriorityChanged(100),
            actions: vec![SetMasterDownTimer(mdi100)],
            state: State::Backup,
        },
        Row {
            name: "backup: other priority changes wait for the next advert",
            params: p100.clone(),
            start: Start::Started,
            at: SEC,
            event: Event::PriorityChanged(120),
            actions: vec![],
            state: State::Backup,
        },
        // 6.4.3 Master.
        Row {
            name: "master: shutdown -> priority 0, init",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: Event::Shutdown,
            actions: vec![
                CancelAdvertTimer,
                SendAdvert { priority: 0 },
                BecomeInit(Reason::Shutdown),
            ],
            state: State::Init,
        },
        Row {
            name: "master: advert timer -> advert, timer again",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: Event::AdvertTimerFired,
            actions: vec![SendAdvert { priority: 100 }, SetAdvertTimer(SEC)],
            state: State::Master,
        },
        Row {
            name: "master: priority 0 advert -> advert at once",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: advert(0, "192.0.2.2", SEC),
            actions: vec![
                SendAdvert { priority: 100 },
                SetAdvertTimer(SEC),
                Action::Reannounce,
            ],
            state: State::Master,
        },
        Row {
            name: "master: higher priority -> backup, learn the interval",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: advert(150, "192.0.2.2", two),
            actions: vec![
                SendAdvert { priority: 0 },
                CancelAdvertTimer,
                BecomeBackup(Reason::HigherPriority {
                    priority: 150,
                    from: ip("192.0.2.2"),
                }),
                SetMasterDownTimer(master_down_interval(100, two)),
            ],
            state: State::Backup,
        },
        Row {
            name: "master: equal priority from a higher address -> backup",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: advert(100, "192.0.2.200", SEC),
            actions: vec![
                SendAdvert { priority: 0 },
                CancelAdvertTimer,
                BecomeBackup(Reason::HigherAddress {
                    priority: 100,
                    from: ip("192.0.2.200"),
                }),
                SetMasterDownTimer(mdi100),
            ],
            state: State::Backup,
        },
        Row {
            name: "master: equal priority from a lower address: assert ourselves, announce again",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: advert(100, "192.0.2.2", SEC),
            actions: vec![
                Action::SendAdvert { priority: 100 },
                Action::SetAdvertTimer(SEC),
                Action::Reannounce,
            ],
            state: State::Master,
        },
        Row {
            name: "master: lower priority (a healed partition): assert ourselves, announce again",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: advert(50, "192.0.2.200", SEC),
            actions: vec![
                Action::SendAdvert { priority: 100 },
                Action::SetAdvertTimer(SEC),
                Action::Reannounce,
            ],
            state: State::Master,
        },
        Row {
            name: "master: master down timer is stale",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: Event::MasterDownTimerFired,
            actions: vec![],
            state: State::Master,
        },
        Row {
            name: "master: priority drops to 0 -> priority 0 advert, backup",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: Event::PriorityChanged(0),
            actions: vec![
                CancelAdvertTimer,
                SendAdvert { priority: 0 },
                BecomeBackup(Reason::PriorityZero),
            ],
            state: State::Backup,
        },
        Row {
            name: "master: priority drops -> the new priority is advertised at once",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: Event::PriorityChanged(50),
            actions: vec![SendAdvert { priority: 50 }, SetAdvertTimer(SEC)],
            state: State::Master,
        },
        Row {
            name: "master: unchanged priority -> nothing",
            params: p100.clone(),
            start: Start::Master,
            at: SEC,
            event: Event::PriorityChanged(100),
            actions: vec![],
            state: State::Master,
        },
    ];
    let t0 = Instant::now();
    let mut failures = Vec::new();
    for row in rows {
        let mut m = machine_in(&row.params, row.start, t0);
        let actions = m.handle(row.event, t0 + row.at);
        if actions != row.actions || m.state() != row.state {
            failures.push(format!(
                "{}:\n  got {:?} -> {:?}\n  want {:?} -> {:?}",
                row.name,
                actions,
                m.state(),
                row.actions,
                row.state
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn priority_zero_from_master_then_skew_expiry_names_the_master() {
    let t0 = Instant::now();
    let mut m = machine_in(&params(100, true, Duration::ZERO), Start::Started, t0);
    m.handle(advert(150, "192.0.2.2", SEC), t0);
    assert_eq!(m.master(), Some(ip("192.0.2.2")));
    m.handle(advert(0, "192.0.2.2", SEC), t0);
    let actions = m.handle(Event::MasterDownTimerFired, t0);
    assert_eq!(
        actions[1],
        Action::BecomeMaster(Reason::MasterResigned {
            from: ip("192.0.2.2")
        })
    );
    assert_eq!(
        Reason::MasterResigned {
            from: ip("192.0.2.2")
        }
        .to_string(),
        "priority 0 from master 192.0.2.2, skew time expired"
    );
    assert_eq!(m.master(), Some(ip("192.0.2.10")));
}

#[test]
fn a_restarted_machine_forgets_the_learnt_interval() {
    let t0 = Instant::now();
    let mut m = machine_in(&params(100, true, Duration::ZERO), Start::Started, t0);
    m.handle(advert(150, "192.0.2.2", 3 * SEC), t0);
    assert_eq!(m.master_adver_interval(), 3 * SEC);
    m.handle(Event::Shutdown, t0);
    let actions = m.handle(Event::Startup, t0);
    assert_eq!(
        actions,
        vec![
            Action::BecomeBackup(Reason::Startup),
            Action::SetMasterDownTimer(master_down_interval(100, SEC))
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Simulation: machines on one link, virtual time in milliseconds.

struct Node {
    name: &'static str,
    addr: IpAddr,
    machine: Machine,
    down_at: Option<Duration>,
    advert_at: Option<Duration>,
    alive: bool,
}

struct Link {
    t0: Instant,
    now: Duration,
    nodes: Vec<Node>,
    /// (time, node, state) of every state change.
    log: Vec<(Duration, &'static str, State)>,
}

impl Link {
    fn new(nodes: &[(&'static str, &str, u8, bool, Duration)]) -> Link {
        let nodes = nodes
            .iter()
            .map(|(name, addr, priority, preempt, delay)| Node {
                name,
                addr: ip(addr),
                machine: Machine::new(Params {
                    priority: *priority,
                    advert_interval: SEC,
                    preempt: *preempt,
                    preempt_delay: *delay,
                    local_address: ip(addr),
                }),
                down_at: None,
                advert_at: None,
                alive: false,
            })
            .collect();
        Link {
            t0: Instant::now(),
            now: Duration::ZERO,
            nodes,
            log: Vec::new(),
        }
    }

    fn index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap()
    }

    fn event(&mut self, i: usize, event: Event) {
        let actions = self.nodes[i].machine.handle(event, self.t0 + self.now);
        let mut sent = Vec::new();
        for action in actions {
            let node = &mut self.nodes[i];
            match action {
                Action::SendAdvert { priority } => sent.push(priority),
                Action::BecomeMaster(_) => self.log.push((self.now, node.name, State::Master)),
                Action::BecomeBackup(_) => self.log.push((self.now, node.name, State::Backup)),
                Action::BecomeInit(_) => self.log.push((self.now, node.name, State::Init)),
                Action::SetMasterDownTimer(d) => node.down_at = Some(self.now + d),
                Action::SetAdvertTimer(d) => node.advert_at = Some(self.now + d),
                Action::CancelMasterDownTimer => node.down_at = None,
                Action::CancelAdvertTimer => node.advert_at = None,
                Action::Reannounce => {}
            }
        }
        let source = self.nodes[i].addr;
        for priority in sent {
            for j in 0..self.nodes.len() {
                if j != i && self.nodes[j].alive {
                    self.event(
                        j,
                        Event::AdvertReceived {
                            priority,
                            source,
                            max_advert_interval: SEC,
                        },
                    );
                }
            }
        }
    }

    fn start(&mut self, name: &str) {
        let i = self.index(name);
        self.nodes[i].alive = true;
        self.event(i, Event::Startup);
    }

    fn stop(&mut self, name: &str) {
        let i = self.index(name);
        self.event(i, Event::Shutdown);
        self.nodes[i].alive = false;
    }

    /// Gone without a word.
    fn crash(&mut self, name: &str) {
        let i = self.index(name);
        let node = &mut self.nodes[i];
        node.alive = false;
        node.down_at = None;
        node.advert_at = None;
        node.machine = Machine::new(Params {
            priority: node.machine.priority(),
            advert_interval: SEC,
            preempt: true,
            preempt_delay: Duration::ZERO,
            local_address: node.addr,
        });
    }

    fn priority(&mut self, name: &str, p: u8) {
        let i = self.index(name);
        self.event(i, Event::PriorityChanged(p));
    }

    /// Runs timers until `until` (absolute virtual time).
    fn run_until(&mut self, until: Duration) {
        loop {
            let next = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.alive)
                .flat_map(|(i, n)| {
                    [(n.down_at, i, true), (n.advert_at, i, false)]
                        .into_iter()
                        .filter_map(|(at, i, down)| at.map(|at| (at, i, down)))
                })
                .min();
            match next {
                Some((at, i, down)) if at <= until => {
                    self.now = at;
                    if down {
                        self.nodes[i].down_at = None;
                        self.event(i, Event::MasterDownTimerFired);
                    } else {
                        self.nodes[i].advert_at = None;
                        self.event(i, Event::AdvertTimerFired);
                    }
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn masters(&self) -> Vec<&'static str> {
        self.nodes
            .iter()
            .filter(|n| n.alive && n.machine.state() == State::Master)
            .map(|n| n.name)
            .collect()
    }

    /// When `name` last became master.
    fn became_master(&self, name: &str) -> Duration {
        self.log
            .iter()
            .rev()
            .find(|(_, n, s)| *n == name && *s == State::Master)
            .map(|(t, _, _)| *t)
            .unwrap_or_else(|| panic!("{name} never became master: {:?}", self.log))
    }
}

const NO_DELAY: Duration = Duration::ZERO;

#[test]
fn simulation_the_higher_priority_wins_and_clean_stop_hands_over_after_skew() {
    let mut link = Link::new(&[
        ("a", "192.0.2.1", 150, true, NO_DELAY),
        ("b", "192.0.2.2", 100, true, NO_DELAY),
    ]);
    link.start("a");
    link.start("b");
    link.run_until(10 * SEC);
    assert_eq!(link.masters(), vec!["a"]);
    assert_eq!(link.became_master("a"), master_down_interval(150, SEC));

    // Clean stop: priority 0, b takes over after its skew time.
    let stop = link.now;
    link.stop("a");
    link.run_until(20 * SEC);
    assert_eq!(link.masters(), vec!["b"]);
    assert_eq!(link.became_master("b") - stop, skew_time(100, SEC));
}

#[test]
fn simulation_crash_takes_master_down_interval_and_preemption_brings_it_back() {
    let mut link = Link::new(&[
        ("a", "192.0.2.1", 150, true, NO_DELAY),
        ("b", "192.0.2.2", 100, true, NO_DELAY),
    ]);
    link.start("a");
    link.start("b");
    link.run_until(Duration::from_millis(10_500));
    assert_eq!(link.masters(), vec!["a"]);
    // a's last advert was at a whole second (it became master at 3.41 s and advertises every
    // second from then): find it from its timer.
    let last_advert = link.nodes[0].advert_at.unwrap() - SEC;
    link.crash("a");
    link.run_until(20 * SEC);
    assert_eq!(link.masters(), vec!["b"]);
    assert_eq!(
        link.became_master("b") - last_advert,
        master_down_interval(100, SEC)
    );

    // a comes back: it is a backup first, discards b's lower adverts and takes over when its
    // master down timer runs out; b goes back to backup on a's first advert.
    let back = link.now;
    link.start("a");
    link.run_until(30 * SEC);
    assert_eq!(link.masters(), vec!["a"]);
    assert_eq!(
        link.became_master("a") - back,
        master_down_interval(150, SEC)
    );
}

#[test]
fn simulation_no_preempt_keeps_the_current_master() {
    let mut link = Link::new(&[
        ("a", "192.0.2.1", 150, false, NO_DELAY),
        ("b", "192.0.2.2", 100, false, NO_DELAY),
    ]);
    link.start("b");
    link.run_until(10 * SEC);
    assert_eq!(link.masters(), vec!["b"]);
    link.start("a");
    link.run_until(30 * SEC);
    assert_eq!(link.masters(), vec!["b"]);
}

#[test]
fn simulation_preempt_delay_holds_a_returning_node_back() {
    let mut link = Link::new(&[
        ("a", "192.0.2.1", 150, true, 10 * SEC),
        ("b", "192.0.2.2", 100, true, NO_DELAY),
    ]);
    link.start("b");
    link.run_until(10 * SEC);
    assert_eq!(link.masters(), vec!["b"]);
    let start = link.now;
    link.start("a");
    link.run_until(start + 9 * SEC);
    assert_eq!(link.masters(), vec!["b"], "no preemption during the delay");
    link.run_until(start + 20 * SEC);
    assert_eq!(link.masters(), vec!["a"]);
    // After the delay, a discards b's adverts: master when its down timer runs out.
    let took = link.became_master("a") - start;
    assert!(
        took >= 10 * SEC && took <= 10 * SEC + master_down_interval(150, SEC),
        "{took:?}"
    );
}

#[test]
fn simulation_priority_zero_hands_over_and_never_comes_back() {
    let mut link = Link::new(&[
        ("a", "192.0.2.1", 150, true, NO_DELAY),
        ("b", "192.0.2.2", 100, true, NO_DELAY),
    ]);
    link.start("a");
    link.start("b");
    link.run_until(10 * SEC);
    let drop = link.now;
    link.priority("a", 0);
    link.run_until(20 * SEC);
    assert_eq!(link.masters(), vec!["b"]);
    assert_eq!(link.became_master("b") - drop, skew_time(100, SEC));

    // b goes away too: a still does not take over.
    link.crash("b");
    link.run_until(40 * SEC);
    assert!(link.masters().is_empty());

    // a recovers: master after Master_Down_Interval.
    let up = link.now;
    link.priority("a", 150);
    link.run_until(50 * SEC);
    assert_eq!(link.masters(), vec!["a"]);
    assert_eq!(link.became_master("a") - up, master_down_interval(150, SEC));
}

#[test]
fn simulation_lowered_master_is_preempted() {
    let mut link = Link::new(&[
        ("a", "192.0.2.1", 150, true, NO_DELAY),
        ("b", "192.0.2.2", 100, true, NO_DELAY),
    ]);
    link.start("a");
    link.start("b");
    link.run_until(10 * SEC);
    assert_eq!(link.masters(), vec!["a"]);
    // Tracking lowers a below b: a advertises 50, b (preempt) discards it and takes over
    // when its down timer runs out; a steps down on b's first advert.
    link.priority("a", 50);
    link.run_until(20 * SEC);
    assert_eq!(link.masters(), vec!["b"]);
}

#[test]
fn simulation_owner_is_master_at_once() {
    let mut link = Link::new(&[
        ("a", "192.0.2.1", 255, true, NO_DELAY),
        ("b", "192.0.2.2", 254, true, NO_DELAY),
    ]);
    link.start("b");
    link.run_until(10 * SEC);
    assert_eq!(link.masters(), vec!["b"]);
    let start = link.now;
    link.start("a");
    assert_eq!(link.masters(), vec!["a"]);
    assert_eq!(link.became_master("a"), start);
}
