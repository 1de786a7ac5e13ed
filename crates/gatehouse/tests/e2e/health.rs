//! Active health checks and passive ejection, against backends the test breaks and mends.

use std::time::{Duration, Instant};

use gatehouse_testkit::{Backend, Gatehouse, ask};

use crate::{BIN, WAIT, one_listener, sleep};

const HTTP_CHECK: &str = "    healthCheck:
      protocol: HTTP
      path: /healthz
      interval: 100ms
      timeout: 80ms
      fall: 3
      rise: 2
";

#[test]
fn failing_backend_gets_no_connections_after_fall_and_returns_after_rise() {
    let good = Backend::start("good");
    let sick = Backend::start("sick");
    let g = Gatehouse::start(BIN, &one_listener(&[good.addr(), sick.addr()], HTTP_CHECK));
    let gw = g.addr("t/in");
    let both: std::collections::HashSet<String> = (0..6).map(|_| ask(gw).unwrap()).collect();
    assert_eq!(both.len(), 2, "both backends serve while healthy");

    // The backend still accepts connections, but its health check answers 500.
    let mark = g.mark();
    sick.set_health_status(500);
    let down = g.wait_for_all(&["endpoint down", &sick.addr().to_string()], mark, WAIT);
    assert!(
        down.is_some(),
        "no `endpoint down` for the failing backend; log:\n{}",
        g.logs()
    );
    assert!(down.unwrap().contains("status 500"), "the log says why");
    // fall x interval (+ a timeout) after the first failure, it receives nothing new.
    let before = sick.served();
    for _ in 0..10 {
        assert_eq!(ask(gw).unwrap(), "good");
    }
    assert_eq!(sick.served(), before, "a down endpoint got a connection");

    // Mend it: after rise x interval it takes connections again.
    let mark = g.mark();
    let mended = Instant::now();
    sick.set_health_status(200);
    assert!(
        g.wait_for_all(&["endpoint up", &sick.addr().to_string()], mark, WAIT)
            .is_some()
    );
    assert!(
        mended.elapsed() >= Duration::from_millis(100),
        "rise = 2 needs two passing checks"
    );
    let names: Vec<String> = (0..6).map(|_| ask(gw).unwrap()).collect();
    assert!(
        names.iter().any(|n| n == "sick"),
        "the mended endpoint serves again: {names:?}"
    );
}

#[test]
fn killed_backend_is_marked_down_by_tcp_checks_and_returns_when_restarted() {
    let good = Backend::start("good");
    let flaky = Backend::start("flaky");
    let port_of_flaky = flaky.addr();
    let check = "    healthCheck: { interval: 100ms, timeout: 80ms, fall: 2, rise: 2 }\n";
    let g = Gatehouse::start(BIN, &one_listener(&[good.addr(), flaky.addr()], check));
    let gw = g.addr("t/in");

    let mark = g.mark();
    flaky.stop();
    assert!(
        g.wait_for_all(&["endpoint down", &port_of_flaky.to_string()], mark, WAIT)
            .is_some(),
        "log:\n{}",
        g.logs()
    );
    // Every connection succeeds meanwhile, on the live backend.
    for _ in 0..6 {
        assert_eq!(ask(gw).unwrap(), "good");
    }
    let mark = g.mark();
    let restarted = Backend::start_on("flaky", port_of_flaky);
    assert!(
        g.wait_for_all(&["endpoint up", &port_of_flaky.to_string()], mark, WAIT)
            .is_some()
    );
    let names: Vec<String> = (0..6).map(|_| ask(gw).unwrap()).collect();
    assert!(names.iter().any(|n| n == "flaky"), "{names:?}");
    assert!(restarted.served() > 0);
}

#[test]
fn refused_connect_is_retried_on_the_next_endpoint_and_ejects_it() {
    let live = Backend::start("live");
    let dead = Backend::start("dead");
    let dead_addr = dead.addr();
    dead.stop();
    let g = Gatehouse::start(
        BIN,
        &one_listener(
            &[dead_addr, live.addr()],
            "    passive: { maxFails: 1, failTimeout: 1m }\n",
        ),
    );
    let gw = g.addr("t/in");
    let mark = g.mark();
    // No health checks: the first connection that lands on the dead endpoint is retried.
    for _ in 0..10 {
        assert_eq!(
            ask(gw).unwrap(),
            "live",
            "every client is served despite a dead endpoint"
        );
    }
    // Log lines are written in batches: wait until all ten connections are logged.
    for _ in 0..200 {
        if g.lines_with("connection closed", mark).len() >= 10 {
            break;
        }
        crate::sleep(Duration::from_millis(10));
    }
    let failures = g.lines_with("connect to endpoint failed", mark);
    assert_eq!(
        failures.len(),
        1,
        "ejected after one failure, then skipped: {failures:#?}"
    );
    assert!(failures[0].contains(&dead_addr.to_string()) && failures[0].contains("trying another"));
    assert!(
        failures[0].contains("ejected_for=Some(60s)"),
        "{}",
        failures[0]
    );
}

#[test]
fn no_healthy_endpoint_closes_the_connection_and_says_why() {
    let dead = Backend::start("dead");
    let addr = dead.addr();
    dead.stop();
    let check = "    healthCheck: { interval: 50ms, timeout: 40ms, fall: 1, rise: 1 }\n";
    let g = Gatehouse::start(BIN, &one_listener(&[addr], check));
    let gw = g.addr("t/in");
    assert!(g.wait_for("endpoint down", 0, WAIT).is_some());
    sleep(Duration::from_millis(100));
    let mark = g.mark();
    assert!(ask(gw).is_err(), "the client sees a closed connection");
    let line = g.wait_for("connection closed", mark, WAIT).unwrap();
    assert!(line.contains("no healthy endpoint"), "{line}");
}
