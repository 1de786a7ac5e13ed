//! Virtual addresses end to end: the real binary on two gateways in network namespaces on one
//! bridged LAN (192.0.2.0/24, 2001:db8::/64, no route out), a client probing the VIP every
//! 10 ms. Each gateway proxies VIP:80 to a tiny python backend on its own 127.0.0.1:8080 that
//! answers with the gateway's name, so the client sees who holds the address.
//!
//! Needs root (`ip netns`) and `python3`; the keepalived test needs `/usr/sbin/keepalived` and
//! says SKIPPED without it. The scenarios run one at a time (they measure takeover times) and
//! print the figures an operator would ask about.

use std::net::{IpAddr, SocketAddr};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use gatehouse_testkit::{Gatehouse, Keepalived, Lan, LanHost, Prober, PyBackend, field};

use crate::{BIN, WAIT, sleep};

const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";
/// The VIP's port, served by Gatehouse (or, on a keepalived node, by the backend itself).
const PORT: u16 = 80;
/// Where each gateway's backend listens.
const BACKEND: &str = "127.0.0.1:8080";
/// Gatehouse's default advertInterval, which these configs keep.
const INTERVAL: Duration = Duration::from_millis(200);

/// One scenario at a time (shared with the other namespace tests).
fn serial() -> MutexGuard<'static, ()> {
    crate::netns_serial()
}

/// RFC 5798 Skew_Time for `priority` at `interval`.
fn skew(priority: u8, interval: Duration) -> Duration {
    interval * (256 - u32::from(priority)) / 256
}

/// RFC 5798 Master_Down_Interval for `priority` at `interval`.
fn master_down(priority: u8, interval: Duration) -> Duration {
    interval * 3 + skew(priority, interval)
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// A gateway's config: VIP:80 -> the local backend, one VRRP instance for the VIP on `eth0`
/// with `priority`. `backend_extra` goes under the backend (indented 4), `vrrp_extra` under
/// the instance (indented 4).
fn config(vip: IpAddr, priority: u8, backend_extra: &str, vrrp_extra: &str) -> String {
    let prefix = if vip.is_ipv4() { 24 } else { 64 };
    format!(
        "gateways:
  - name: web
    addresses: [\"{vip}\"]
    listeners:
      - name: http
        port: {PORT}
        backend: local
backends:
  - name: local
    endpoints: [\"{BACKEND}\"]
{backend_extra}settings:
  drainTimeout: 1s          # a stopped node does not wait for the prober's connections
vrrp:
  - name: lan
    interface: eth0
    vrid: 51
    priority: {priority}
    addresses: [\"{vip}/{prefix}\"]
{vrrp_extra}"
    )
}

/// The LAN (`gw1`, `gw2`, `client`), a backend on each gateway, the client's prober. Fields
/// drop in order: the prober, the backends, then the namespaces.
struct Site {
    prober: Prober,
    backends: Vec<Option<PyBackend>>,
    vip: IpAddr,
    lan: Lan,
}

impl Site {
    fn new(vip: &str) -> Site {
        let vip: IpAddr = vip.parse().unwrap();
        let lan = Lan::new(&["gw1", "gw2", "client"]);
        let backends = ["gw1", "gw2"]
            .iter()
            .map(|name| Some(backend(lan.host(name))))
            .collect();
        let prober = Prober::start(&lan.host("client").ns, SocketAddr::new(vip, PORT));
        Site {
            prober,
            backends,
            vip,
            lan,
        }
    }

    fn host(&self, label: &str) -> &LanHost {
        self.lan.host(label)
    }

    fn start(&self, label: &str, yaml: &str) -> Gatehouse {
        Gatehouse::start_in(self.host(label).ns.name(), BIN, yaml)
    }

    /// Waits until the client gets 5 answers in a row from `name`, counting from `since`;
    /// returns the first of them (when it ended).
    fn answers(&self, name: &str, since: Instant, context: &str) -> Instant {
        match self.prober.wait_steady(name, 5, since, WAIT) {
            Some(s) => s.done,
            None => panic!(
                "{context}: the client never got steady answers from {name}; probes: {}\n{}",
                self.prober.summary(since, Instant::now()),
                self.addresses()
            ),
        }
    }

    /// Who holds what, for failure messages.
    fn addresses(&self) -> String {
        let lines: Vec<String> = ["gw1", "gw2"]
            .iter()
            .map(|h| format!("{h}: {}", self.host(h).addresses()))
            .collect();
        lines.join("\n")
    }

    /// The client's neighbour entry for the VIP, checked to point at `label`'s MAC.
    fn assert_neighbour(&self, label: &str) -> String {
        let entry = self.host("client").ns.neighbour(self.vip);
        let mac = self.host(label).mac();
        assert!(
            entry.contains(&mac),
            "the client's neighbour entry for {} is {entry:?}, not {label}'s MAC {mac}",
            self.vip
        );
        entry
    }

    /// Which gateways hold the VIP.
    fn holders(&self) -> Vec<&'static str> {
        ["gw1", "gw2"]
            .into_iter()
            .filter(|h| self.host(h).holds(self.vip))
            .collect()
    }
}

/// The python backend of a gateway, named after it.
fn backend(host: &LanHost) -> PyBackend {
    PyBackend::start(&host.ns, BACKEND.parse().unwrap(), &host.label, false)
}

/// Waits for `what` until [`WAIT`] runs out.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(10));
    }
}

/// The log line in which `g`'s instance became master, after log index `mark`.
fn became_master(g: &Gatehouse, mark: usize) -> String {
    g.wait_for("-> master", mark, WAIT)
        .unwrap_or_else(|| panic!("the instance never became master; log:\n{}", g.logs()))
}

/// Crash, restart and preemption, clean stop, link down, over IPv4 or IPv6 (`label` says
/// which); the client's neighbour entry follows every takeover (gratuitous ARP or unsolicited
/// neighbour advertisement).
fn failover(vip: &str, label: &str, link_down: bool) {
    let _serial = serial();
    let site = Site::new(vip);
    let vip = site.vip;
    let (gw1_yaml, gw2_yaml) = (config(vip, 150, "", ""), config(vip, 100, "", ""));
    let mut gw1 = site.start("gw1", &gw1_yaml);
    site.answers("gw1", Instant::now(), "gw1 at start");
    let gw2 = site.start("gw2", &gw2_yaml);
    gw2.wait_for("-> backup", 0, WAIT)
        .expect("gw2 follows gw1 as backup");
    assert_eq!(site.holders(), ["gw1"]);

    // SIGKILL: nothing is handed over; gw2 takes over after Master_Down_Interval.
    let killed = Instant::now();
    gw1.kill();
    let answered = site.answers("gw2", killed, "after SIGKILL of gw1");
    let neighbour = site.assert_neighbour("gw2");
    let takeover = answered - killed;
    println!(
        "{label}: takeover after SIGKILL: {} (advertInterval {}, Master_Down_Interval {}); \
         client: {}; neighbour entry: {neighbour}",
        ms(takeover),
        ms(INTERVAL),
        ms(master_down(100, INTERVAL)),
        site.prober.summary(killed, answered)
    );
    assert!(
        takeover < Duration::from_secs(1),
        "takeover after SIGKILL took {}",
        ms(takeover)
    );

    // gw1 restarts: it drops the address the crash left behind, follows gw2 as backup, then
    // preempts it (priority 150 > 100).
    let restarted = Instant::now();
    let mut gw1 = site.start("gw1", &gw1_yaml);
    let line = became_master(&gw1, 0);
    let back = site.answers("gw1", restarted, "after gw1's restart");
    site.assert_neighbour("gw1");
    println!(
        "{label}: gw1 restarted, preempted gw2: the client reached gw1 again {} after the \
         restart ({})",
        ms(back - restarted),
        field(&line, "reason").unwrap_or_default()
    );
    wait_until("gw2 gave the VIP back", || site.holders() == ["gw1"]);

    // SIGTERM: gw1 sends priority 0 first; gw2 takes over after its Skew_Time.
    let mark = gw2.mark();
    let stopped = Instant::now();
    gw1.signal("TERM");
    let answered = site.answers("gw2", stopped, "after SIGTERM of gw1");
    let line = became_master(&gw2, mark);
    assert!(
        line.contains("priority 0 from master"),
        "gw2 took over for another reason: {line}"
    );
    site.assert_neighbour("gw2");
    println!(
        "{label}: handover after SIGTERM: {} (Skew_Time {}); longest time without an \
         answer: {}",
        ms(answered - stopped),
        ms(skew(100, INTERVAL)),
        ms(site
            .prober
            .longest_silence(stopped - Duration::from_millis(100), answered))
    );
    assert!(
        gw1.wait_exit(WAIT).is_some_and(|s| s.success()),
        "gw1 did not exit cleanly; log:\n{}",
        gw1.logs()
    );
    assert!(!site.host("gw1").holds(vip), "gw1 left the VIP behind");

    if !link_down {
        return;
    }
    let restarted = Instant::now();
    let gw1 = site.start("gw1", &gw1_yaml);
    site.answers("gw1", restarted, "after gw1's second restart");

    // gw1's own link goes down: its instance is in fault and gives the VIP up; gw2 hears
    // no more adverts and takes over.
    let mark = gw1.mark();
    let cut = Instant::now();
    site.lan.link_down("gw1");
    let answered = site.answers("gw2", cut, "after gw1's link went down");
    site.assert_neighbour("gw2");
    assert!(
        gw1.wait_for("-> fault", mark, WAIT).is_some(),
        "gw1 did not notice its link went down; log:\n{}",
        gw1.logs()
    );
    println!(
        "{label}: takeover after gw1's link went down: {}",
        ms(answered - cut)
    );
    wait_until("gw1 gave the VIP up", || site.holders() == ["gw2"]);

    let mended = Instant::now();
    site.lan.link_up("gw1");
    let back = site.answers("gw1", mended, "after gw1's link came back");
    site.assert_neighbour("gw1");
    println!(
        "{label}: gw1's link back up: the client reached gw1 again after {}",
        ms(back - mended)
    );
    wait_until("gw2 gave the VIP back", || site.holders() == ["gw1"]);
}

#[test]
fn ipv4_crash_restart_clean_stop_and_link_down() {
    failover(VIP4, "IPv4", true);
}

#[test]
fn ipv6_crash_restart_and_clean_stop() {
    failover(VIP6, "IPv6", false);
}

#[test]
fn failing_backend_moves_the_vip_and_its_recovery_brings_it_back() {
    let _serial = serial();
    let mut site = Site::new(VIP4);
    let vip = site.vip;
    let check = "    healthCheck: {interval: 100ms, fall: 1}
    passive: {maxFails: 0}
";
    let track = "    track: [{backend: local, weight: 100}]\n";
    let gw1 = site.start("gw1", &config(vip, 150, check, track));
    site.answers("gw1", Instant::now(), "gw1 at start");
    let gw2 = site.start("gw2", &config(vip, 100, check, track));
    gw2.wait_for("-> backup", 0, WAIT)
        .expect("gw2 follows gw1 as backup");

    // gw1's backend stops: its priority drops to 50, below gw2's 100, which preempts.
    let mark = gw1.mark();
    let stopped = Instant::now();
    site.backends[0] = None;
    let answered = site.answers("gw2", stopped, "after gw1's backend stopped");
    let line = gw1
        .wait_for("tracking changed the priority", mark, WAIT)
        .unwrap_or_else(|| panic!("no tracking line; log:\n{}", gw1.logs()));
    assert!(
        line.contains("priority=50"),
        "the priority should drop to 150 - 100: {line}"
    );
    gw1.wait_for("-> backup", mark, WAIT)
        .expect("gw1 follows gw2 as backup");
    println!(
        "health: gw1's backend stopped, the client reached gw2 {} later ({})",
        ms(answered - stopped),
        site.prober.summary(stopped, answered)
    );
    wait_until("gw1 gave the VIP up", || site.holders() == ["gw2"]);

    // It comes back (rise 2 x 100ms): priority 150 again, gw1 preempts.
    let mended = Instant::now();
    site.backends[0] = Some(backend(site.host("gw1")));
    let back = site.answers("gw1", mended, "after gw1's backend came back");
    println!(
        "health: gw1's backend back, the client reached gw1 again {} later",
        ms(back - mended)
    );
    wait_until("gw2 gave the VIP back", || site.holders() == ["gw1"]);
}

/// Checks for `period` that exactly one gateway holds the VIP, and returns it.
fn exactly_one_for(site: &Site, period: Duration) -> &'static str {
    let until = Instant::now() + period;
    let first = site.holders();
    assert_eq!(first.len(), 1, "holders: {first:?}\n{}", site.addresses());
    let mut checks = 0;
    while Instant::now() < until {
        let now = site.holders();
        assert_eq!(now, first, "holders changed\n{}", site.addresses());
        checks += 1;
        sleep(Duration::from_millis(20));
    }
    // Each check runs `ip` in two namespaces: a loaded machine manages only a few.
    assert!(checks >= 3, "only {checks} checks in {period:?}");
    first[0]
}

#[test]
fn a_partition_heals_to_exactly_one_master() {
    let _serial = serial();
    let site = Site::new(VIP4);
    let vip = site.vip;
    // No second burst of gratuitous ARPs 2 s after becoming master: what the client does
    // after the partition heals must not depend on when that burst falls.
    let announce = "    announce: {repeatAfter: 0s}\n";
    let gw1 = site.start("gw1", &config(vip, 150, "", announce));
    site.answers("gw1", Instant::now(), "gw1 at start");
    let gw2 = site.start("gw2", &config(vip, 100, "", announce));
    gw2.wait_for("-> backup", 0, WAIT)
        .expect("gw2 follows gw1 as backup");

    // gw1's port leaves the bridge, both links stay up: neither hears the other, and both
    // are master (gw2 also answers the client, which is still on the bridge).
    let mark1 = gw1.mark();
    let cut = Instant::now();
    site.lan.detach("gw1");
    wait_until("gw2 took over during the partition", || {
        site.host("gw2").holds(vip)
    });
    site.answers("gw2", cut, "during the partition");
    assert!(site.host("gw1").holds(vip), "gw1, alone, stays master");
    println!(
        "partition: gw2 master too after {} (both hold the VIP while cut off)",
        ms(cut.elapsed())
    );

    // Healed: gw2 hears gw1's higher priority and steps down; gw1 never stopped being master.
    let mark2 = gw2.mark();
    let healed = Instant::now();
    site.lan.attach("gw1");
    wait_until("only one holds the VIP", || site.holders().len() == 1);
    let settled = healed.elapsed();
    let holder = exactly_one_for(&site, Duration::from_secs(1));
    assert_eq!(holder, "gw1");
    assert!(gw2.wait_for("-> backup", mark2, WAIT).is_some());
    assert!(
        gw1.lines_with("-> ", mark1).is_empty(),
        "gw1 changed state: {:?}",
        gw1.lines_with("-> ", mark1)
    );
    println!(
        "partition healed: one master (gw1) after {}, steady for 1 s of checks",
        ms(settled)
    );
    // The client followed gw2's gratuitous ARPs during the partition. gw1 hears gw2's
    // advert of lower priority when the partition heals, advertises at once and announces
    // the address again: the client comes back to gw1 without waiting for its ARP entry to
    // expire.
    let back = site
        .prober
        .wait_for("gw1", healed, Duration::from_secs(3))
        .unwrap_or_else(|| {
            panic!(
                "the client did not reach gw1 within 3 s of the heal ({}); its neighbour entry: {}",
                site.prober.summary(healed, Instant::now()),
                site.host("client").ns.neighbour(vip)
            )
        });
    println!(
        "partition healed: the client reached gw1 again after {}",
        ms(back.done - healed)
    );
    assert!(
        gw1.wait_for("announcing the addresses again", mark1, WAIT)
            .is_some(),
        "gw1 did not announce again"
    );

    // The same with a cut that takes gw1's carrier away: gw1 is in fault (no VIP), gw2
    // master; never both.
    let cut = Instant::now();
    site.lan.port_down("gw1");
    wait_until("gw2 took over from gw1 without carrier", || {
        site.holders() == ["gw2"]
    });
    println!(
        "port down: gw2 alone holds the VIP after {}",
        ms(cut.elapsed())
    );
    assert_eq!(exactly_one_for(&site, Duration::from_millis(500)), "gw2");
    site.lan.port_up("gw1");
    wait_until("gw1 took the VIP back", || site.holders() == ["gw1"]);
    assert_eq!(exactly_one_for(&site, Duration::from_secs(1)), "gw1");
}

/// keepalived's config for the same instance as [`config`]'s.
fn keepalived_config(vip: IpAddr, priority: u8) -> String {
    format!(
        "global_defs {{
    router_id gw2
    vrrp_version 3
}}
vrrp_instance lan {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {interval}
    virtual_ipaddress {{
        {vip}/24
    }}
}}
",
        interval = INTERVAL.as_secs_f64()
    )
}

/// What interop with keepalived 2.2.7 over IPv4 needs: the checksum over the pseudo-header, as
/// RFC 5798 says (Gatehouse's default, written out here). With `noPseudoHeader` keepalived
/// drops Gatehouse's adverts and takes the VIP too (checked by hand: both hold it).
const CHECKSUM: &str = "    checksum: rfc5798\n";

/// Gatehouse (gw1) and keepalived (gw2) in one VRID, IPv4, each master in turn: each accepts
/// the other's adverts (no dual master while one is backup), hands over on a clean stop
/// (priority 0) and takes over after a crash.
#[test]
fn keepalived_and_gatehouse_take_turns() {
    if !Keepalived::available() {
        eprintln!("SKIPPED: {} is not installed", Keepalived::PATH);
        return;
    }
    let _serial = serial();
    let mut site = Site::new(VIP4);
    let vip = site.vip;
    // keepalived's node serves the VIP's port itself.
    site.backends[1] = None;
    let _k_backend = PyBackend::start(
        &site.host("gw2").ns,
        SocketAddr::new("0.0.0.0".parse().unwrap(), PORT),
        "gw2",
        false,
    );
    let gw1 = site.start("gw1", &config(vip, 150, "", CHECKSUM));
    site.answers("gw1", Instant::now(), "gw1 at start");
    let mut k = Keepalived::start(&site.host("gw2").ns, &keepalived_config(vip, 100));
    assert!(
        k.wait_log("Entering BACKUP STATE", 0, WAIT),
        "keepalived:\n{}",
        k.log()
    );
    // keepalived must accept Gatehouse's adverts: otherwise it takes over after its
    // Master_Down_Interval (721 ms) and both hold the VIP.
    assert_eq!(exactly_one_for(&site, Duration::from_millis(1500)), "gw1");
    assert!(!k.log().contains("Entering MASTER STATE"), "{}", k.log());

    // Gatehouse stops cleanly: keepalived takes over after its skew time.
    let stopped = Instant::now();
    drop_with_term(gw1);
    let answered = site.answers("gw2", stopped, "after SIGTERM of Gatehouse");
    println!(
        "keepalived: Gatehouse stopped (SIGTERM), keepalived answered after {}",
        ms(answered - stopped)
    );

    // Gatehouse back at 150: it preempts keepalived (it decodes keepalived's adverts, sees a
    // lower priority, waits its Master_Down_Interval).
    let restarted = Instant::now();
    let k_log = k.log().len();
    let gw1 = site.start("gw1", &config(vip, 150, "", CHECKSUM));
    let line = became_master(&gw1, 0);
    let back = site.answers("gw1", restarted, "after Gatehouse's restart");
    assert!(
        k.wait_log("Entering BACKUP STATE", k_log, WAIT),
        "keepalived:\n{}",
        k.log()
    );
    println!(
        "keepalived: Gatehouse restarted, preempted keepalived: answering after {} ({})",
        ms(back - restarted),
        field(&line, "reason").unwrap_or_default()
    );
    wait_until("keepalived gave the VIP back", || site.holders() == ["gw1"]);
    assert!(
        gw1.lines_with("checksum", 0).is_empty(),
        "Gatehouse complained about keepalived's checksums: {:?}",
        gw1.lines_with("checksum", 0)
    );

    // Gatehouse crashes: keepalived takes over after its Master_Down_Interval.
    let mut gw1 = gw1;
    let killed = Instant::now();
    gw1.kill();
    let answered = site.answers("gw2", killed, "after SIGKILL of Gatehouse");
    println!(
        "keepalived: Gatehouse killed (SIGKILL), keepalived answered after {}",
        ms(answered - killed)
    );

    // Gatehouse back at 50: a backup under keepalived, steadily.
    let gw1 = site.start("gw1", &config(vip, 50, "", CHECKSUM));
    gw1.wait_for("-> backup", 0, WAIT)
        .unwrap_or_else(|| panic!("Gatehouse is not a backup; log:\n{}", gw1.logs()));
    wait_until("Gatehouse dropped the address its crash left", || {
        site.holders() == ["gw2"]
    });
    assert_eq!(exactly_one_for(&site, Duration::from_millis(1500)), "gw2");

    // keepalived stops cleanly: Gatehouse takes over after its skew time.
    let mark = gw1.mark();
    let stopped = Instant::now();
    k.stop();
    let answered = site.answers("gw1", stopped, "after SIGTERM of keepalived");
    let line = became_master(&gw1, mark);
    assert!(
        line.contains("priority 0 from master"),
        "Gatehouse took over for another reason: {line}"
    );
    println!(
        "keepalived: keepalived stopped (SIGTERM), Gatehouse answered after {} (Skew_Time \
         at 50: {})",
        ms(answered - stopped),
        ms(skew(50, INTERVAL))
    );
}

/// SIGTERM, then wait for the exit.
fn drop_with_term(mut g: Gatehouse) {
    g.signal("TERM");
    assert!(g.wait_exit(WAIT).is_some(), "log:\n{}", g.logs());
}
