//! The VRRPv3 state machine of RFC 5798 section 6.4, pure: events in, actions out. No clock
//! (the caller passes `now`), no sockets, no timers (it asks for them).
//!
//! ```text
//! Init   --Startup, priority 255------------------------------------------> Master
//! Init   --Startup----------------------------------------------------------> Backup
//! Backup --Master_Down_Timer fires (Master_Down_Interval, or Skew_Time after
//!          the master sent priority 0)-------------------------------------> Master
//! Master --advert with a higher priority, or ours from a higher address,
//!          or our own priority drops to 0-----------------------------------> Backup
//! either --Shutdown (a master first sends priority 0)------------------------> Init
//! ```
//!
//! The timers of the RFC:
//!
//! - `Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256`
//! - `Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time`
//!
//! computed with the precision of [`Duration`] rather than in whole centiseconds.
//! `Master_Adver_Interval` starts as our own interval and, in Backup, is learnt from the
//! master's adverts.
//!
//! Beyond the RFC:
//!
//! - **Effective priority 0** (tracking gave the addresses up): the node never becomes master;
//!   a master whose priority drops to 0 sends one advert with priority 0 (so a backup takes
//!   over after its skew time) and becomes backup. Any other priority change is advertised
//!   at once by a master, and changes a backup's timers from the next advert on.
//! - **Preempt delay**: until `preempt_delay` has passed since startup, a backup behaves as
//!   if preemption were off (it accepts a lower-priority master's adverts). It still becomes
//!   master when the master goes quiet: that is not preemption.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What the machine is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The priority at startup (the effective one: tracking may already have lowered it).
    pub priority: u8,
    /// Our advertisement interval.
    pub advert_interval: Duration,
    /// Whether a higher-priority backup takes over from a lower-priority master.
    pub preempt: bool,
    /// No preempting before this long after startup.
    pub preempt_delay: Duration,
    /// Our address on the interface: the tie-break between equal priorities.
    pub local_address: IpAddr,
}

/// The states of RFC 5798 section 6.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running.
    Init,
    /// Watching the master.
    Backup,
    /// Holding the addresses.
    Master,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Init => "init",
            Self::Backup => "backup",
            Self::Master => "master",
        })
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The instance starts.
    Startup,
    /// The instance stops.
    Shutdown,
    /// A valid advert for our VRID (the caller checked TTL, checksum, addresses).
    AdvertReceived {
        /// Its priority.
        priority: u8,
        /// Its sender (the IP source address).
        source: IpAddr,
        /// Its maximum advertisement interval.
        max_advert_interval: Duration,
    },
    /// The timer set by [`Action::SetMasterDownTimer`] expired.
    MasterDownTimerFired,
    /// The timer set by [`Action::SetAdvertTimer`] expired.
    AdvertTimerFired,
    /// Our effective priority changed (tracking).
    PriorityChanged(u8),
}

/// What the caller must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority.
    SendAdvert {
        /// The priority to advertise (0 when handing over).
        priority: u8,
    },
    /// Enter Master: add the virtual addresses and announce them (gratuitous ARP,
    /// unsolicited neighbour advertisements).
    BecomeMaster(Reason),
    /// Enter Backup: make sure the virtual addresses are not held.
    BecomeBackup(Reason),
    /// Enter Init (shutdown): make sure the virtual addresses are not held.
    BecomeInit(Reason),
    /// (Re)start the master down timer with this duration.
    SetMasterDownTimer(Duration),
    /// (Re)start the advert timer with this duration.
    SetAdvertTimer(Duration),
    /// Stop the master down timer.
    CancelMasterDownTimer,
    /// Stop the advert timer.
    CancelAdvertTimer,
    /// Announce the addresses again (gratuitous ARP / unsolicited NA): another node believed
    /// it was master (a healed partition), so clients may still point at it.
    Reannounce,
}

/// Why a state changed, for logs and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Startup.
    Startup,
    /// Startup with priority 255: the address owner is master at once.
    Owner,
    /// No advert from the master for Master_Down_Interval.
    MasterDown,
    /// The master gave up (priority 0) and nobody else took over within the skew time.
    MasterResigned {
        /// The master that sent priority 0.
        from: IpAddr,
    },
    /// A higher-priority advert.
    HigherPriority {
        /// Its priority.
        priority: u8,
        /// Its sender.
        from: IpAddr,
    },
    /// An advert with our priority from a higher address.
    HigherAddress {
        /// Its priority (ours).
        priority: u8,
        /// Its sender.
        from: IpAddr,
    },
    /// Our effective priority dropped to 0: we give the addresses up entirely.
    PriorityZero,
    /// Shutdown.
    Shutdown,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Startup => f.write_str("startup"),
            Self::Owner => f.write_str("startup as address owner (priority 255)"),
            Self::MasterDown => f.write_str("master down timer expired"),
            Self::MasterResigned { from } => {
                write!(f, "priority 0 from master {from}, skew time expired")
            }
            Self::HigherPriority { priority, from } => {
                write!(f, "higher priority {priority} from {from}")
            }
            Self::HigherAddress { priority, from } => {
                write!(f, "equal priority {priority} from higher address {from}")
            }
            Self::PriorityZero => f.write_str("own priority dropped to 0 (handing over)"),
            Self::Shutdown => f.write_str("stopped"),
        }
    }
}

/// One virtual router's state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    params: Params,
    state: State,
    priority: u8,
    master_adver_interval: Duration,
    started: Option<Instant>,
    master: Option<IpAddr>,
    /// Set when the master down timer runs for a skew time after a priority 0 advert.
    resigned: Option<IpAddr>,
}

impl Machine {
    /// A machine in Init.
    pub fn new(params: Params) -> Machine {
        Machine {
            priority: params.priority,
            master_adver_interval: params.advert_interval,
            params,
            state: State::Init,
            started: None,
            master: None,
            resigned: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The current master's address, if known: ours in Master, the last accepted advert's
    /// sender in Backup.
    pub fn master(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.params.local_address),
            State::Backup => self.master,
            State::Init => None,
        }
    }

    /// Master_Adver_Interval: ours, or the master's once learnt.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Skew_Time at the current priority and Master_Adver_Interval.
    pub fn skew_time(&self) -> Duration {
        skew_time(self.priority, self.master_adver_interval)
    }

    /// Master_Down_Interval at the current priority and Master_Adver_Interval.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(self.priority, self.master_adver_interval)
    }

    fn may_preempt(&self, now: Instant) -> bool {
        self.params.preempt
            && self
                .started
                .is_none_or(|s| now.saturating_duration_since(s) >= self.params.preempt_delay)
    }

    /// Feeds an event; returns what to do, in order.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match (self.state, event) {
            (_, Event::PriorityChanged(p)) => self.priority_changed(p),

            (State::Init, Event::Startup) => {
                self.started = Some(now);
                self.master_adver_interval = self.params.advert_interval;
                self.master = None;
                self.resigned = None;
                if self.priority == 255 {
                    self.state = State::Master;
                    vec![
                        Action::SendAdvert { priority: 255 },
                        Action::BecomeMaster(Reason::Owner),
                        Action::SetAdvertTimer(self.params.advert_interval),
                    ]
                } else {
                    self.state = State::Backup;
                    let mut actions = vec![Action::BecomeBackup(Reason::Startup)];
                    if self.priority > 0 {
                        actions.push(Action::SetMasterDownTimer(self.master_down_interval()));
                    }
                    actions
                }
            }
            (State::Init, _) => Vec::new(),

            (State::Backup, Event::Shutdown) => {
                self.state = State::Init;
                vec![
                    Action::CancelMasterDownTimer,
                    Action::BecomeInit(Reason::Shutdown),
                ]
            }
            (State::Backup, Event::MasterDownTimerFired) => {
                if self.priority == 0 {
                    // Never master with priority 0 (the timer should not even run).
                    return vec![Action::CancelMasterDownTimer];
                }
                let reason = match self.resigned.take() {
                    Some(from) => Reason::MasterResigned { from },
                    None => Reason::MasterDown,
                };
                self.become_master(reason)
            }
            (
                State::Backup,
                Event::AdvertReceived {
                    priority,
                    source,
                    max_advert_interval,
                },
            ) => {
                if priority == 0 {
                    if self.priority == 0 {
                        return Vec::new();
                    }
                    self.resigned = Some(source);
                    return vec![Action::SetMasterDownTimer(self.skew_time())];
                }
                if !self.may_preempt(now) || priority >= self.priority {
                    self.master = Some(source);
                    self.resigned = None;
                    self.master_adver_interval = max_advert_interval;
                    if self.priority == 0 {
                        return Vec::new();
                    }
                    vec![Action::SetMasterDownTimer(self.master_down_interval())]
                } else {
                    // Preempting: let the master down timer run out.
                    Vec::new()
                }
            }
            (State::Backup, Event::AdvertTimerFired | Event::Startup) => Vec::new(),

            (State::Master, Event::Shutdown) => {
                self.state = State::Init;
                vec![
                    Action::CancelAdvertTimer,
                    Action::SendAdvert { priority: 0 },
                    Action::BecomeInit(Reason::Shutdown),
                ]
            }
            (State::Master, Event::AdvertTimerFired) => vec![
                Action::SendAdvert {
                    priority: self.priority,
                },
                Action::SetAdvertTimer(self.params.advert_interval),
            ],
            (
                State::Master,
                Event::AdvertReceived {
                    priority,
                    source,
                    max_advert_interval,
                },
            ) => {
                if priority == 0 {
                    // The sender held the addresses until now: clients may point at it.
                    return vec![
                        Action::SendAdvert {
                            priority: self.priority,
                        },
                        Action::SetAdvertTimer(self.params.advert_interval),
                        Action::Reannounce,
                    ];
                }
                let reason = if priority > self.priority {
                    Reason::HigherPriority {
                        priority,
                        from: source,
                    }
                } else if priority == self.priority && source > self.params.local_address {
                    Reason::HigherAddress {
                        priority,
                        from: source,
                    }
                } else {
                    // The RFC discards it. But a node that advertises is a node that thinks it
                    // is master: the two of us were cut off from each other, and clients may
                    // have followed it. Assert ourselves now (it yields on our advert) and
                    // announce again, as keepalived does.
                    return vec![
                        Action::SendAdvert {
                            priority: self.priority,
                        },
                        Action::SetAdvertTimer(self.params.advert_interval),
                        Action::Reannounce,
                    ];
                };
                self.state = State::Backup;
                self.master = Some(source);
                self.resigned = None;
                self.master_adver_interval = max_advert_interval;
                // A last advert with priority 0 says we resign, as a clean stop does: the new
                // master then announces the addresses again, so clients that followed us (a
                // healed partition) come back at once. (RFC 5798 sends nothing here; the new
                // master may not hear any advert of ours otherwise.)
                vec![
                    Action::SendAdvert { priority: 0 },
                    Action::CancelAdvertTimer,
                    Action::BecomeBackup(reason),
                    Action::SetMasterDownTimer(self.master_down_interval()),
                ]
            }
            (State::Master, Event::MasterDownTimerFired | Event::Startup) => Vec::new(),
        }
    }

    fn become_master(&mut self, reason: Reason) -> Vec<Action> {
        self.state = State::Master;
        self.master = None;
        self.resigned = None;
        vec![
            Action::SendAdvert {
                priority: self.priority,
            },
            Action::BecomeMaster(reason),
            Action::SetAdvertTimer(self.params.advert_interval),
        ]
    }

    fn priority_changed(&mut self, priority: u8) -> Vec<Action> {
        let old = self.priority;
        if old == priority {
            return Vec::new();
        }
        self.priority = priority;
        match self.state {
            State::Init => Vec::new(),
            State::Master if priority == 0 => {
                self.state = State::Backup;
                self.master = None;
                vec![
                    Action::CancelAdvertTimer,
                    Action::SendAdvert { priority: 0 },
                    Action::BecomeBackup(Reason::PriorityZero),
                ]
            }
            State::Master => vec![
                Action::SendAdvert { priority },
                Action::SetAdvertTimer(self.params.advert_interval),
            ],
            State::Backup if priority == 0 => vec![Action::CancelMasterDownTimer],
            State::Backup if old == 0 => {
                // Able to be master again: whoever is master now gets Master_Down_Interval
                // to show itself.
                vec![Action::SetMasterDownTimer(self.master_down_interval())]
            }
            State::Backup => Vec::new(),
        }
    }
}

/// `((256 - priority) * master_adver_interval) / 256`.
pub fn skew_time(priority: u8, master_adver_interval: Duration) -> Duration {
    master_adver_interval * (256 - u32::from(priority)) / 256
}

/// `3 * master_adver_interval + skew_time`.
pub fn master_down_interval(priority: u8, master_adver_interval: Duration) -> Duration {
    master_adver_interval * 3 + skew_time(priority, master_adver_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_formulas() {
        let s = Duration::from_secs(1);
        assert_eq!(skew_time(100, s), Duration::from_micros(609_375));
        assert_eq!(
            master_down_interval(100, s),
            Duration::from_micros(3_609_375)
        );
        assert_eq!(skew_time(255, s), Duration::from_nanos(3_906_250));
        assert_eq!(
            skew_time(1, Duration::from_millis(100)),
            Duration::from_nanos(99_609_375)
        );
    }
}
