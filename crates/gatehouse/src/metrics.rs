//! Metrics from the events the proxy already logs: a `tracing_subscriber::Layer` beside the
//! log formatter, with a filter of its own ([`filter`]) so that it sees every access event
//! even when `--log` hides them.
//!
//! - `gatehouse::access` events (`connection closed`, `request`, `flow closed`, `connection
//!   refused`): their fields become counters and histograms in [`Telemetry`], and, while
//!   someone runs `gatehouse observe`, an access record for the `/observe` stream.
//! - VRRP state changes (`gatehouse_vrrp`, the events with `from`, `to` and `reason`):
//!   transition counters.
//! - Every WARN and ERROR (access, health, reload...): the status page's recent problems.
//!
//! It does nothing while no admin endpoint runs ([`Telemetry::enabled`]). Otherwise it runs
//! on the thread that logged, inside the event call, so it stays small: the fields
//! it needs are written into buffers reused by each thread, and [`Telemetry`] adds them up
//! with atomics under a read lock. Nothing here logs (an event from inside a layer would come
//! back to it).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::SystemTime;

use gatehouse_app::Telemetry;
use gatehouse_app::telemetry::{ConnectionClosed, Notable, RecordBuilder, RequestDone};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};

/// The access events' target.
const ACCESS: &str = "gatehouse::access";

/// What the layer looks at, whatever `--log` says: access events and VRRP state changes at
/// INFO, everything else from WARN.
pub fn filter() -> Targets {
    Targets::new()
        .with_default(Level::WARN)
        .with_target(ACCESS, Level::INFO)
        .with_target("gatehouse_vrrp", Level::INFO)
}

/// The layer: give it the process's [`Telemetry`].
pub struct MetricsLayer {
    telemetry: Arc<Telemetry>,
}

impl MetricsLayer {
    pub fn new(telemetry: Arc<Telemetry>) -> MetricsLayer {
        MetricsLayer { telemetry }
    }
}

/// One event's fields, in buffers kept by each thread between events.
#[derive(Default)]
struct Fields {
    message: String,
    listener: String,
    backend: String,
    route: String,
    outcome: String,
    instance: String,
    status: u64,
    bytes: u64,
    bytes_up: u64,
    bytes_down: u64,
    duration_ms: u64,
    has_from: bool,
    has_to: bool,
    has_reason: bool,
    /// `key=value ...` of every field but the message, for WARN and ERROR events.
    notable: Option<String>,
    /// Every field, while someone observes the access stream.
    record: Option<RecordBuilder>,
}

impl Fields {
    fn clear(&mut self) {
        for s in [
            &mut self.message,
            &mut self.listener,
            &mut self.backend,
            &mut self.route,
            &mut self.outcome,
            &mut self.instance,
        ] {
            s.clear();
        }
        self.status = 0;
        self.bytes = 0;
        self.bytes_up = 0;
        self.bytes_down = 0;
        self.duration_ms = 0;
        self.has_from = false;
        self.has_to = false;
        self.has_reason = false;
        self.notable = None;
        self.record = None;
    }

    /// The buffer a label field goes to, if it is one.
    fn label(&mut self, name: &str) -> Option<&mut String> {
        match name {
            "message" => Some(&mut self.message),
            "listener" => Some(&mut self.listener),
            "backend" => Some(&mut self.backend),
            "route" => Some(&mut self.route),
            "outcome" => Some(&mut self.outcome),
            "instance" => Some(&mut self.instance),
            "from" => {
                self.has_from = true;
                None
            }
            "to" => {
                self.has_to = true;
                None
            }
            "reason" => {
                self.has_reason = true;
                None
            }
            _ => None,
        }
    }

    fn number(&mut self, name: &str, value: u64) {
        match name {
            "status" => self.status = value,
            "bytes" => self.bytes = value,
            "bytes_up" => self.bytes_up = value,
            "bytes_down" => self.bytes_down = value,
            "duration_ms" => self.duration_ms = value,
            _ => {}
        }
    }

    fn extra(&mut self, name: &str, value: &dyn fmt::Display) {
        if name == "message" {
            return;
        }
        if let Some(n) = &mut self.notable {
            if !n.is_empty() {
                n.push(' ');
            }
            let _ = write!(n, "{name}={value}");
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if let Some(buf) = self.label(name) {
            buf.push_str(value);
        }
        if let Some(r) = &mut self.record
            && name != "message"
        {
            r.text(name, value);
        }
        self.extra(name, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if let Some(buf) = self.label(name) {
            let _ = write!(buf, "{value:?}");
        }
        if self.record.is_some() && name != "message" {
            let text = format!("{value:?}");
            if let Some(r) = &mut self.record {
                r.text(name, &text);
            }
        }
        if self.notable.is_some() && name != "message" {
            self.extra(name, &format_args!("{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let name = field.name();
        self.number(name, value);
        self.label(name);
        if let Some(r) = &mut self.record {
            r.number(name, value);
        }
        self.extra(name, &value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let name = field.name();
        self.number(name, u64::try_from(value).unwrap_or(0));
        self.label(name);
        if let Some(r) = &mut self.record {
            r.signed(name, value);
        }
        self.extra(name, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if let Some(r) = &mut self.record {
            r.flag(field.name(), value);
        }
        self.extra(field.name(), &value);
    }
}

thread_local! {
    static FIELDS: RefCell<Fields> = RefCell::new(Fields::default());
}

impl<S: Subscriber> Layer<S> for MetricsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !self.telemetry.enabled() {
            return;
        }
        FIELDS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut fields) => self.handle(event, &mut fields),
            // Only if a field's Display logged from inside this layer: rare, so allocate.
            Err(_) => self.handle(event, &mut Fields::default()),
        });
    }
}

impl MetricsLayer {
    fn handle(&self, event: &Event<'_>, f: &mut Fields) {
        let meta = event.metadata();
        let access = meta.target() == ACCESS;
        let level = *meta.level();
        let notable = level <= Level::WARN;
        f.clear();
        if notable {
            f.notable = Some(String::new());
        }
        if access && self.telemetry.observed() {
            f.record = Some(RecordBuilder::new(level.as_str()));
        }
        event.record(f);
        let t = &self.telemetry;
        if access {
            let closed = || ConnectionClosed {
                listener: &f.listener,
                backend: &f.backend,
                outcome: &f.outcome,
                bytes_up: f.bytes_up,
                bytes_down: f.bytes_down,
                duration_ms: f.duration_ms,
            };
            match f.message.as_str() {
                "connection closed" => t.connection_closed(&closed()),
                "request" => t.request(&RequestDone {
                    listener: &f.listener,
                    route: &f.route,
                    backend: &f.backend,
                    status: u16::try_from(f.status).unwrap_or(0),
                    bytes: f.bytes,
                    duration_ms: f.duration_ms,
                }),
                "flow closed" => t.flow_closed(&closed()),
                "connection refused" => t.refused(&f.listener, &f.outcome),
                _ => {}
            }
            if let Some(record) = f.record.take() {
                t.publish(record.finish(&f.message));
            }
        } else if meta.target().starts_with("gatehouse_vrrp")
            && f.has_from
            && f.has_to
            && f.has_reason
            && !f.instance.is_empty()
        {
            t.vrrp_transition(&f.instance);
        }
        if let Some(fields) = f.notable.take() {
            t.notable(Notable {
                time: SystemTime::now(),
                level: if level == Level::ERROR {
                    "ERROR"
                } else {
                    "WARN"
                },
                message: f.message.clone(),
                fields,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn rendered(t: &Telemetry) -> String {
        let mut out = String::new();
        t.render(&mut out);
        out
    }

    /// The events as the proxy writes them (the same field names and kinds), through a
    /// subscriber whose only layer is this one, with its own filter.
    #[test]
    fn access_events_become_counters_and_records() {
        let telemetry = Arc::new(Telemetry::new());
        telemetry.set_enabled(true);
        let subscriber = tracing_subscriber::registry()
            .with(MetricsLayer::new(Arc::clone(&telemetry)).with_filter(filter()));
        let (mut records, observing) = telemetry.observe();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                tracing::info!(
                    target: "gatehouse::access",
                    listener = %"web/http", client = %"127.0.0.1:5000", method = %"GET",
                    host = %"a.test", path = %"/x", route = Some(tracing::field::display("app")),
                    backend = Some(tracing::field::display("pool")),
                    endpoint = Some(tracing::field::display("127.0.0.1:9001")),
                    status = 200u16, bytes = 12u64, duration_ms = 3u64,
                    reason = None::<&str>.map(tracing::field::display),
                    "request"
                );
            }
            tracing::warn!(
                target: "gatehouse::access",
                listener = %"t/in", client = %"127.0.0.1:5001",
                backend = %"pool", bytes_up = 0u64, bytes_down = 0u64,
                outcome = %"connect failed (3 attempts, last: refused)",
                duration_ms = 2u64,
                "connection closed"
            );
            tracing::info!(
                target: "gatehouse::access",
                listener = %"t/in", client = %"127.0.0.1:5002",
                outcome = "refused: client address not allowed", duration_ms = 0u64,
                "connection refused"
            );
            tracing::info!(
                target: "gatehouse_vrrp::instance",
                instance = %"lan", from = %"backup", to = %"master", reason = "no advert",
                "VRRP backup -> master: no advert"
            );
            tracing::info!(
                target: "gatehouse_vrrp::instance",
                instance = %"lan", from = 100u64, to = 50u64,
                "VRRP effective priority 100 -> 50"
            );
            // Not seen: below the layer's filter.
            tracing::info!(target: "gatehouse_proxy::health", "endpoint up");
        });
        let out = rendered(&telemetry);
        for line in [
            "gatehouse_requests_total{listener=\"web/http\",route=\"app\",backend=\"pool\",code=\"200\"} 3",
            "gatehouse_connections_total{listener=\"t/in\",backend=\"pool\",outcome=\"connect failed\"} 1",
            "gatehouse_refused_total{listener=\"t/in\",reason=\"client address not allowed\"} 1",
            "gatehouse_vrrp_transitions_total{instance=\"lan\"} 1",
            "gatehouse_bytes_total{listener=\"web/http\",direction=\"down\"} 36",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
        }
        let first: serde_json::Value =
            serde_json::from_slice(records.try_recv().unwrap().line()).unwrap();
        assert_eq!(first["event"], "request");
        assert_eq!(first["route"], "app");
        assert_eq!(first["status"], 200);
        assert_eq!(first["host"], "a.test");
        let recent = telemetry.recent();
        assert_eq!(recent.len(), 1, "{recent:?}");
        assert_eq!(recent[0].message, "connection closed");
        assert!(
            recent[0].fields.contains("outcome=connect failed"),
            "{recent:?}"
        );
        drop(observing);
    }
}
