//! What the admin endpoint reports besides live state: counters and latency histograms fed by
//! the access-log events, the last warnings and errors, the stream of access records behind
//! `gatehouse observe`, and the outcome of the last reload.
//!
//! The proxy does no work of its own for metrics: it logs one event per connection, request or
//! UDP flow, as it always did, and the binary's tracing layer (`crates/gatehouse/src/metrics.rs`)
//! hands the event's fields to the `record` methods here, on the thread that logged it. Each
//! call builds its label key in a reused thread-local buffer, finds its series under a read
//! lock (allocating only the first time a label set is seen) and adds to a few atomics. Access
//! records are only built while someone observes.
//!
//! Label values come from the config (listener, route and backend names, which the compiler
//! keeps plain) and from closed sets (outcome classes, status codes, directions); free text
//! such as an error message is cut to its class first (`backend error: connection reset` ->
//! `backend error`). A family never holds more than [`MAX_SERIES`] label sets: beyond that,
//! new ones are counted under `_other`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

/// Most label sets per metric family.
pub const MAX_SERIES: usize = 10_000;
/// Warnings and errors kept for the status page.
pub const RECENT: usize = 50;
/// Access records waiting for slow observers; beyond this they lose the oldest.
const STREAM_BUFFER: usize = 4096;

/// Upper bounds (ms) of the request duration buckets.
const REQUEST_BUCKETS_MS: [u64; 14] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];
/// Upper bounds (ms) of the connection (and flow) duration buckets: connections live longer.
const CONNECTION_BUCKETS_MS: [u64; 11] = [
    5, 25, 100, 500, 1_000, 5_000, 30_000, 60_000, 300_000, 1_800_000, 3_600_000,
];
const REQUEST_SLOTS: usize = REQUEST_BUCKETS_MS.len() + 1;
const CONNECTION_SLOTS: usize = CONNECTION_BUCKETS_MS.len() + 1;

/// Separates label values in a series key.
const SEP: char = '\u{1f}';

/// Counters, histograms, recent problems, the access stream and reload state of one process.
pub struct Telemetry {
    /// Whether anything reads it (an admin endpoint runs): the layer does nothing otherwise.
    enabled: AtomicBool,
    connections: Family<ConnectionSeries>,
    requests: Family<RequestSeries>,
    flows: Family<ConnectionSeries>,
    refused: Family<AtomicU64>,
    vrrp_transitions: Family<AtomicU64>,
    recent: Mutex<VecDeque<Notable>>,
    observers: AtomicUsize,
    stream: broadcast::Sender<Arc<AccessRecord>>,
    config: Mutex<ConfigState>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    started: SystemTime,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

/// A `connection closed` event (TCP and TLS listeners).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionClosed<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Backend name (empty when the connection never reached a backend).
    pub backend: &'a str,
    /// The `outcome` field as logged; only its class becomes a label.
    pub outcome: &'a str,
    /// Client to backend.
    pub bytes_up: u64,
    /// Backend to client.
    pub bytes_down: u64,
    /// How long it lasted.
    pub duration_ms: u64,
}

/// A `request` event (HTTP and HTTPS listeners).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestDone<'a> {
    /// Listener name.
    pub listener: &'a str,
    /// Route name (empty when none matched).
    pub route: &'a str,
    /// Backend name (empty when none was picked).
    pub backend: &'a str,
    /// Response status.
    pub status: u16,
    /// Response body bytes.
    pub bytes: u64,
    /// From the request head to the end of the response body.
    pub duration_ms: u64,
}

/// One warning or error, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notable {
    /// When it was logged.
    pub time: SystemTime,
    /// `WARN` or `ERROR`.
    pub level: &'static str,
    /// The log message.
    pub message: String,
    /// Its other fields, `key=value` separated by spaces.
    pub fields: String,
}

/// One access record as `/observe` streams it.
#[derive(Debug)]
pub struct AccessRecord {
    listener: Box<str>,
    route: Option<Box<str>>,
    backend: Option<Box<str>>,
    client: Option<IpAddr>,
    /// The JSON object and a newline.
    line: bytes::Bytes,
}

impl AccessRecord {
    /// Whether it passes `filter` (every condition set must hold).
    pub fn matches(&self, filter: &ObserveFilter) -> bool {
        filter
            .listener
            .as_deref()
            .is_none_or(|l| *l == *self.listener)
            && filter
                .route
                .as_deref()
                .is_none_or(|r| self.route.as_deref() == Some(r))
            && filter
                .backend
                .as_deref()
                .is_none_or(|b| self.backend.as_deref() == Some(b))
            && filter.client.is_none_or(|c| self.client == Some(c))
    }

    /// The JSON line.
    pub fn line(&self) -> &bytes::Bytes {
        &self.line
    }
}

/// What an observer wants to see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserveFilter {
    /// Only this listener.
    pub listener: Option<String>,
    /// Only this route.
    pub route: Option<String>,
    /// Only this client address.
    pub client: Option<IpAddr>,
    /// Only this backend.
    pub backend: Option<String>,
}

/// Builds an [`AccessRecord`] from an event's fields, in the order they come.
pub struct RecordBuilder {
    fields: serde_json::Map<String, serde_json::Value>,
}

impl RecordBuilder {
    /// Starts a record for an event at `level`, stamped now.
    pub fn new(level: &str) -> RecordBuilder {
        let mut fields = serde_json::Map::new();
        fields.insert("time".into(), rfc3339(SystemTime::now()).into());
        fields.insert("level".into(), level.into());
        RecordBuilder { fields }
    }

    /// A text field.
    pub fn text(&mut self, name: &str, value: &str) {
        self.fields.insert(name.into(), value.into());
    }

    /// A number field.
    pub fn number(&mut self, name: &str, value: u64) {
        self.fields.insert(name.into(), value.into());
    }

    /// A signed number field.
    pub fn signed(&mut self, name: &str, value: i64) {
        self.fields.insert(name.into(), value.into());
    }

    /// A boolean field.
    pub fn flag(&mut self, name: &str, value: bool) {
        self.fields.insert(name.into(), value.into());
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(|v| v.as_str())
    }

    /// The record of the event `message`, with the fields observers filter on taken out for
    /// quick matching.
    pub fn finish(mut self, message: &str) -> AccessRecord {
        self.fields.insert("event".into(), message.into());
        let client = self.field("client").and_then(|c| {
            c.parse::<std::net::SocketAddr>()
                .map(|a| a.ip())
                .ok()
                .or_else(|| c.parse::<IpAddr>().ok())
        });
        let owned = |name: &str| self.field(name).map(Box::<str>::from);
        let listener = owned("listener").unwrap_or_default();
        let route = owned("route");
        let backend = owned("backend");
        let mut line = serde_json::Value::Object(self.fields).to_string();
        line.push('\n');
        AccessRecord {
            listener,
            route,
            backend,
            client,
            line: bytes::Bytes::from(line),
        }
    }
}

#[derive(Default)]
struct ConfigState {
    file: Option<PathBuf>,
    loaded: Option<SystemTime>,
    last_reload: Option<ReloadRecord>,
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRecord {
    /// When it was attempted.
    pub time: SystemTime,
    /// `SIGHUP` or `file changed`.
    pub trigger: String,
    /// Why it failed (the running config stayed), or `None` when it was applied.
    pub error: Option<String>,
}

/// The config file, when it was last loaded, and the last reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigInfo {
    /// The file `gatehouse run` serves.
    pub file: Option<PathBuf>,
    /// When the config running now was loaded (at start or by the last successful reload).
    pub loaded: Option<SystemTime>,
    /// The last reload attempt, if any.
    pub last_reload: Option<ReloadRecord>,
}

impl Telemetry {
    /// Empty counters, started now.
    pub fn new() -> Telemetry {
        Telemetry {
            enabled: AtomicBool::new(false),
            connections: Family::default(),
            requests: Family::default(),
            flows: Family::default(),
            refused: Family::default(),
            vrrp_transitions: Family::default(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            observers: AtomicUsize::new(0),
            stream: broadcast::channel(STREAM_BUFFER).0,
            config: Mutex::new(ConfigState::default()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            started: SystemTime::now(),
        }
    }

    /// Whether anything reads the counters: the supervisor turns this on while an admin
    /// endpoint runs, and the tracing layer skips every event while it is off.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// See [`Telemetry::enabled`].
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }

    /// When the process started serving.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Counts a `connection closed` event.
    pub fn connection_closed(&self, c: &ConnectionClosed<'_>) {
        Self::closed(&self.connections, c);
    }

    /// Counts a `flow closed` event (UDP).
    pub fn flow_closed(&self, c: &ConnectionClosed<'_>) {
        Self::closed(&self.flows, c);
    }

    /// A connection or flow that ended, into `family`.
    fn closed(family: &Family<ConnectionSeries>, c: &ConnectionClosed<'_>) {
        family.with(
            |k| {
                push(k, c.listener);
                push(k, c.backend);
                last(k, outcome_class(c.outcome));
            },
            |s| {
                s.add(
                    c.bytes_up,
                    c.bytes_down,
                    c.duration_ms,
                    &CONNECTION_BUCKETS_MS,
                )
            },
        );
    }

    /// Counts a `request` event.
    pub fn request(&self, r: &RequestDone<'_>) {
        self.requests.with(
            |k| {
                push(k, r.listener);
                push(k, r.route);
                push(k, r.backend);
                let _ = write!(k, "{}", r.status);
            },
            |s| {
                s.count.fetch_add(1, Relaxed);
                s.bytes.fetch_add(r.bytes, Relaxed);
                s.duration.observe(r.duration_ms, &REQUEST_BUCKETS_MS);
            },
        );
    }

    /// Counts a `connection refused` event; `outcome` is its `outcome` field.
    pub fn refused(&self, listener: &str, outcome: &str) {
        self.refused.with(
            |k| {
                push(k, listener);
                last(k, refusal_reason(outcome));
            },
            |c| {
                c.fetch_add(1, Relaxed);
            },
        );
    }

    /// Counts a state change of VRRP instance `instance`.
    pub fn vrrp_transition(&self, instance: &str) {
        self.vrrp_transitions.with(
            |k| last(k, instance),
            |c| {
                c.fetch_add(1, Relaxed);
            },
        );
    }

    /// Keeps a warning or error for the status page (the oldest goes beyond [`RECENT`]).
    pub fn notable(&self, event: Notable) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() >= RECENT {
                recent.pop_front();
            }
            recent.push_back(event);
        }
    }

    /// The warnings and errors kept, oldest first.
    pub fn recent(&self) -> Vec<Notable> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether anyone observes the access stream (records are only built then).
    pub fn observed(&self) -> bool {
        self.observers.load(Relaxed) > 0
    }

    /// Sends a record to the observers; never waits (a slow observer loses records).
    pub fn publish(&self, record: AccessRecord) {
        let _ = self.stream.send(Arc::new(record));
    }

    /// A new observer: receives what is published from now on, until the guard is dropped.
    pub fn observe(&self) -> (broadcast::Receiver<Arc<AccessRecord>>, ObserverGuard<'_>) {
        self.observers.fetch_add(1, Relaxed);
        (
            self.stream.subscribe(),
            ObserverGuard {
                observers: &self.observers,
            },
        )
    }

    /// Records the config file the process serves (made absolute, symlinks left as they
    /// are), loaded now.
    pub fn config_loaded(&self, file: &Path) {
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        if let Ok(mut c) = self.config.lock() {
            c.file = Some(file);
            c.loaded = Some(SystemTime::now());
        }
    }

    /// Records a reload attempt: applied (`Ok`), or refused with the running config kept.
    pub fn reload_done(&self, trigger: &str, outcome: Result<(), &str>) {
        let now = SystemTime::now();
        match outcome {
            Ok(()) => self.reloads_ok.fetch_add(1, Relaxed),
            Err(_) => self.reloads_failed.fetch_add(1, Relaxed),
        };
        if let Ok(mut c) = self.config.lock() {
            if outcome.is_ok() {
                c.loaded = Some(now);
            }
            c.last_reload = Some(ReloadRecord {
                time: now,
                trigger: trigger.to_owned(),
                error: outcome.err().map(str::to_owned),
            });
        }
    }

    /// The config file and its reloads.
    pub fn config_info(&self) -> ConfigInfo {
        self.config
            .lock()
            .map(|c| ConfigInfo {
                file: c.file.clone(),
                loaded: c.loaded,
                last_reload: c.last_reload.clone(),
            })
            .unwrap_or_default()
    }

    /// Appends the counters and histograms in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        self.render_connections(out);
        self.render_requests(out);
        self.render_bytes(out);
        self.render_flows(out);
        let refused = self.refused.snapshot();
        family(
            out,
            "gatehouse_refused_total",
            "counter",
            "Connections closed before reaching a backend, by listener and reason.",
        );
        for (key, c) in &refused {
            sample(
                out,
                "gatehouse_refused_total",
                &labels(&["listener", "reason"], key),
                c.load(Relaxed),
            );
        }
        family(
            out,
            "gatehouse_vrrp_transitions_total",
            "counter",
            "VRRP state changes, by instance.",
        );
        for (key, c) in &self.vrrp_transitions.snapshot() {
            sample(
                out,
                "gatehouse_vrrp_transitions_total",
                &labels(&["instance"], key),
                c.load(Relaxed),
            );
        }
        family(
            out,
            "gatehouse_reloads_total",
            "counter",
            "Config reloads, by outcome (failed: the running config stayed).",
        );
        sample(
            out,
            "gatehouse_reloads_total",
            "outcome=\"ok\"",
            self.reloads_ok.load(Relaxed),
        );
        sample(
            out,
            "gatehouse_reloads_total",
            "outcome=\"failed\"",
            self.reloads_failed.load(Relaxed),
        );
        let info = self.config_info();
        if let Some(loaded) = info.loaded {
            family(
                out,
                "gatehouse_config_loaded_timestamp_seconds",
                "gauge",
                "When the running config was loaded (Unix time).",
            );
            let _ = writeln!(
                out,
                "gatehouse_config_loaded_timestamp_seconds {}",
                unix_seconds(loaded)
            );
        }
        family(
            out,
            "gatehouse_start_time_seconds",
            "gauge",
            "When the process started (Unix time).",
        );
        let _ = writeln!(
            out,
            "gatehouse_start_time_seconds {}",
            unix_seconds(self.started)
        );
    }

    fn render_connections(&self, out: &mut String) {
        let series = self.connections.snapshot();
        family(
            out,
            "gatehouse_connections_total",
            "counter",
            "TCP and TLS connections that ended, by listener, backend and outcome.",
        );
        for (key, s) in &series {
            sample(
                out,
                "gatehouse_connections_total",
                &labels(&["listener", "backend", "outcome"], key),
                s.count.load(Relaxed),
            );
        }
        let mut by_listener: BTreeMap<&str, Sum<CONNECTION_SLOTS>> = BTreeMap::new();
        for (key, s) in &series {
            let listener = key.split(SEP).next().unwrap_or("");
            by_listener.entry(listener).or_default().add(&s.duration);
        }
        histogram(
            out,
            "gatehouse_connection_duration_seconds",
            "How long TCP and TLS connections lasted, by listener.",
            &CONNECTION_BUCKETS_MS,
            by_listener
                .iter()
                .map(|(l, sum)| (format!("listener=\"{}\"", escape(l)), sum)),
        );
    }

    fn render_requests(&self, out: &mut String) {
        let series = self.requests.snapshot();
        family(
            out,
            "gatehouse_requests_total",
            "counter",
            "HTTP requests answered, by listener, route, backend and status code.",
        );
        for (key, s) in &series {
            sample(
                out,
                "gatehouse_requests_total",
                &labels(&["listener", "route", "backend", "code"], key),
                s.count.load(Relaxed),
            );
        }
        let mut by_route: BTreeMap<(&str, &str), Sum<REQUEST_SLOTS>> = BTreeMap::new();
        for (key, s) in &series {
            let mut parts = key.split(SEP);
            let listener = parts.next().unwrap_or("");
            let route = parts.next().unwrap_or("");
            by_route
                .entry((listener, route))
                .or_default()
                .add(&s.duration);
        }
        histogram(
            out,
            "gatehouse_request_duration_seconds",
            "HTTP request durations, from the request head to the end of the response body, by listener and route.",
            &REQUEST_BUCKETS_MS,
            by_route.iter().map(|((l, r), sum)| {
                (
                    format!("listener=\"{}\",route=\"{}\"", escape(l), escape(r)),
                    sum,
                )
            }),
        );
    }

    fn render_bytes(&self, out: &mut String) {
        let mut by_listener: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let first = |key: &str| key.split(SEP).next().unwrap_or("").to_owned();
        for (key, s) in self
            .connections
            .snapshot()
            .iter()
            .chain(self.flows.snapshot().iter())
        {
            let e = by_listener.entry(first(key)).or_default();
            e.0 += s.bytes_up.load(Relaxed);
            e.1 += s.bytes_down.load(Relaxed);
        }
        for (key, s) in &self.requests.snapshot() {
            by_listener.entry(first(key)).or_default().1 += s.bytes.load(Relaxed);
        }
        family(
            out,
            "gatehouse_bytes_total",
            "counter",
            "Bytes proxied, by listener and direction (up: client to backend; down: backend to client; HTTP: response bodies, down only).",
        );
        for (listener, (up, down)) in &by_listener {
            for (direction, n) in [("up", up), ("down", down)] {
                sample(
                    out,
                    "gatehouse_bytes_total",
                    &format!(
                        "listener=\"{}\",direction=\"{direction}\"",
                        escape(listener)
                    ),
                    *n,
                );
            }
        }
    }

    fn render_flows(&self, out: &mut String) {
        let series = self.flows.snapshot();
        family(
            out,
            "gatehouse_udp_flows_total",
            "counter",
            "UDP flows that ended, by listener, backend and outcome.",
        );
        for (key, s) in &series {
            sample(
                out,
                "gatehouse_udp_flows_total",
                &labels(&["listener", "backend", "outcome"], key),
                s.count.load(Relaxed),
            );
        }
    }
}

/// Counts an observer for as long as it lives.
pub struct ObserverGuard<'a> {
    observers: &'a AtomicUsize,
}

impl Drop for ObserverGuard<'_> {
    fn drop(&mut self) {
        self.observers.fetch_sub(1, Relaxed);
    }
}

/// The class of an `outcome`: the text before its details (`backend error: reset` ->
/// `backend error`, `connect failed (3 attempts...)` -> `connect failed`).
pub fn outcome_class(outcome: &str) -> &str {
    let end = outcome.find([':', '(']).unwrap_or(outcome.len()).min(64);
    let mut end = end;
    while !outcome.is_char_boundary(end) {
        end -= 1;
    }
    outcome[..end].trim()
}

/// The reason of a refusal, from its `outcome` (`refused: TLS handshake failed: ...` ->
/// `TLS handshake failed`).
pub fn refusal_reason(outcome: &str) -> &str {
    outcome_class(outcome.strip_prefix("refused: ").unwrap_or(outcome))
}

/// One label set's counters of a connection or flow family.
#[derive(Default)]
struct ConnectionSeries {
    count: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    duration: Histogram<CONNECTION_SLOTS>,
}

impl ConnectionSeries {
    fn add(&self, up: u64, down: u64, duration_ms: u64, bounds: &[u64]) {
        self.count.fetch_add(1, Relaxed);
        if up > 0 {
            self.bytes_up.fetch_add(up, Relaxed);
        }
        if down > 0 {
            self.bytes_down.fetch_add(down, Relaxed);
        }
        self.duration.observe(duration_ms, bounds);
    }
}

/// One label set's counters of the request family.
#[derive(Default)]
struct RequestSeries {
    count: AtomicU64,
    bytes: AtomicU64,
    duration: Histogram<REQUEST_SLOTS>,
}

/// Fixed buckets (per bucket, not cumulative; the last is +Inf) and the sum in ms.
struct Histogram<const N: usize> {
    buckets: [AtomicU64; N],
    sum_ms: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ms: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn observe(&self, ms: u64, bounds: &[u64]) {
        let slot = bounds.partition_point(|b| *b < ms).min(N - 1);
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_ms.fetch_add(ms, Relaxed);
    }
}

/// Histograms added together for rendering.
struct Sum<const N: usize> {
    buckets: [u64; N],
    sum_ms: u64,
}

impl<const N: usize> Default for Sum<N> {
    fn default() -> Self {
        Sum {
            buckets: [0; N],
            sum_ms: 0,
        }
    }
}

impl<const N: usize> Sum<N> {
    fn add(&mut self, h: &Histogram<N>) {
        for (total, b) in self.buckets.iter_mut().zip(&h.buckets) {
            *total += b.load(Relaxed);
        }
        self.sum_ms += h.sum_ms.load(Relaxed);
    }
}

/// FNV-1a: label keys are short, and SipHash's DoS resistance buys nothing for names from
/// the config.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type SeriesMap<T> = HashMap<Box<str>, Arc<T>, BuildHasherDefault<Fnv>>;

/// The series of one metric, by label key (the label values joined by [`SEP`]).
struct Family<T> {
    map: RwLock<SeriesMap<T>>,
}

impl<T> Default for Family<T> {
    fn default() -> Self {
        Family {
            map: RwLock::new(HashMap::default()),
        }
    }
}

thread_local! {
    /// The label key being built, reused: no allocation per event.
    static KEY: RefCell<String> = RefCell::new(String::with_capacity(128));
}

impl<T: Default> Family<T> {
    /// Runs `f` on the series whose key `key` writes, creating it if needed.
    fn with(&self, key: impl FnOnce(&mut String), f: impl FnOnce(&T)) {
        KEY.with(|k| {
            let Ok(mut k) = k.try_borrow_mut() else {
                return;
            };
            k.clear();
            key(&mut k);
            if let Ok(map) = self.map.read()
                && let Some(series) = map.get(k.as_str())
            {
                f(series);
                return;
            }
            let Ok(mut map) = self.map.write() else {
                return;
            };
            if map.len() >= MAX_SERIES && !map.contains_key(k.as_str()) {
                let fields = k.matches(SEP).count() + 1;
                k.clear();
                for i in 0..fields {
                    if i > 0 {
                        k.push(SEP);
                    }
                    k.push_str("_other");
                }
            }
            f(map.entry(Box::from(k.as_str())).or_default());
        });
    }

    /// Every series, sorted by key.
    fn snapshot(&self) -> Vec<(Box<str>, Arc<T>)> {
        let mut v: Vec<(Box<str>, Arc<T>)> = self
            .map
            .read()
            .map(|m| m.iter().map(|(k, s)| (k.clone(), Arc::clone(s))).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Appends one label value and a separator.
fn push(key: &mut String, value: &str) {
    if value.contains(SEP) {
        key.push_str(&value.replace(SEP, "?"));
    } else {
        key.push_str(value);
    }
    key.push(SEP);
}

/// Appends the last label value.
fn last(key: &mut String, value: &str) {
    if value.contains(SEP) {
        key.push_str(&value.replace(SEP, "?"));
    } else {
        key.push_str(value);
    }
}

/// `# HELP` and `# TYPE` lines.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line; `labels` is `a="x",b="y"` (escaped), or empty.
pub(crate) fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// `a="x",b="y"` from label names and a series key.
fn labels(names: &[&str], key: &str) -> String {
    let mut out = String::new();
    for (i, (name, value)) in names.iter().zip(key.split(SEP)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape(value));
    }
    out
}

/// A label value escaped for the text format: backslash, double quote and line feed.
pub(crate) fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

fn histogram<'a, const N: usize>(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[u64],
    series: impl Iterator<Item = (String, &'a Sum<N>)>,
) {
    family(out, name, "histogram", help);
    for (labels, sum) in series {
        let mut cumulative = 0;
        for (i, n) in sum.buckets.iter().enumerate() {
            cumulative += n;
            let le = match bounds.get(i) {
                Some(ms) => seconds(*ms),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(sum.sum_ms));
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Milliseconds as seconds, without trailing zeros (`0.005`, `1`, `2.5`).
fn seconds(ms: u64) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        s.to_string()
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}", f.trim_end_matches('0'))
    }
}

fn unix_seconds(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    seconds(ms)
}

/// `2024-05-01T12:03:04.123Z` (UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Reads what [`rfc3339`] writes (also without the milliseconds).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let t = text.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, millis) = match time.split_once('.') {
        Some((hms, ms)) => (hms, ms.get(..3)?.parse::<u64>().ok()?),
        None => (time, 0),
    };
    let mut h = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, day)).ok()?;
    Some(
        UNIX_EPOCH
            + Duration::from_millis((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000 + millis),
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rendered(t: &Telemetry) -> String {
        let mut out = String::new();
        t.render(&mut out);
        out
    }

    #[test]
    fn outcomes_and_refusals_are_cut_to_their_class() {
        let cases = [
            ("closed", "closed"),
            (
                "backend error: Connection reset by peer (os error 104)",
                "backend error",
            ),
            (
                "connect failed (3 attempts, last: refused)",
                "connect failed",
            ),
            ("no healthy endpoint", "no healthy endpoint"),
            ("cut at shutdown deadline", "cut at shutdown deadline"),
        ];
        for (outcome, class) in cases {
            assert_eq!(outcome_class(outcome), class);
        }
        let refusals = [
            ("refused: connection limit", "connection limit"),
            (
                "refused: TLS handshake failed: bad cert",
                "TLS handshake failed",
            ),
            ("refused: not TLS (first bytes 16 03)", "not TLS"),
            ("refused: PROXY header: malformed", "PROXY header"),
        ];
        for (outcome, reason) in refusals {
            assert_eq!(refusal_reason(outcome), reason);
        }
    }

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let t = Telemetry::new();
        for ms in [3, 7, 2_000] {
            t.request(&RequestDone {
                listener: "web/http",
                route: "app",
                backend: "pool",
                status: 200,
                bytes: 10,
                duration_ms: ms,
            });
        }
        t.request(&RequestDone {
            listener: "web/http",
            status: 404,
            ..RequestDone::default()
        });
        t.connection_closed(&ConnectionClosed {
            listener: "t/in",
            backend: "pool",
            outcome: "backend error: reset",
            bytes_up: 5,
            bytes_down: 7,
            duration_ms: 40,
        });
        t.refused("t/in", "refused: client address not allowed");
        t.reload_done("SIGHUP", Err("1 error(s)"));
        let out = rendered(&t);
        for line in [
            "gatehouse_requests_total{listener=\"web/http\",route=\"app\",backend=\"pool\",code=\"200\"} 3",
            "gatehouse_requests_total{listener=\"web/http\",route=\"\",backend=\"\",code=\"404\"} 1",
            "gatehouse_request_duration_seconds_bucket{listener=\"web/http\",route=\"app\",le=\"0.005\"} 1",
            "gatehouse_request_duration_seconds_bucket{listener=\"web/http\",route=\"app\",le=\"0.01\"} 2",
            "gatehouse_request_duration_seconds_bucket{listener=\"web/http\",route=\"app\",le=\"+Inf\"} 3",
            "gatehouse_request_duration_seconds_sum{listener=\"web/http\",route=\"app\"} 2.01",
            "gatehouse_request_duration_seconds_count{listener=\"web/http\",route=\"app\"} 3",
            "gatehouse_connections_total{listener=\"t/in\",backend=\"pool\",outcome=\"backend error\"} 1",
            "gatehouse_connection_duration_seconds_bucket{listener=\"t/in\",le=\"0.1\"} 1",
            "gatehouse_bytes_total{listener=\"t/in\",direction=\"up\"} 5",
            "gatehouse_bytes_total{listener=\"t/in\",direction=\"down\"} 7",
            "gatehouse_bytes_total{listener=\"web/http\",direction=\"down\"} 30",
            "gatehouse_refused_total{listener=\"t/in\",reason=\"client address not allowed\"} 1",
            "gatehouse_reloads_total{outcome=\"failed\"} 1",
            "# TYPE gatehouse_request_duration_seconds histogram",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
        let t = Telemetry::new();
        t.vrrp_transition("odd\"name");
        assert!(
            rendered(&t).contains("gatehouse_vrrp_transitions_total{instance=\"odd\\\"name\"} 1")
        );
    }

    #[test]
    fn a_family_stops_growing_at_its_limit() {
        let f: Family<AtomicU64> = Family::default();
        for i in 0..MAX_SERIES + 5 {
            f.with(
                |k| {
                    push(k, &i.to_string());
                    k.push('x');
                },
                |c| {
                    c.fetch_add(1, Relaxed);
                },
            );
        }
        let snap = f.snapshot();
        assert_eq!(snap.len(), MAX_SERIES + 1);
        let other = snap
            .iter()
            .find(|(k, _)| &**k == "_other\u{1f}_other")
            .unwrap();
        assert_eq!(other.1.load(Relaxed), 5);
    }

    #[test]
    fn times_are_written_and_read_back() {
        let t = UNIX_EPOCH + Duration::from_millis(1_714_565_000_123);
        assert_eq!(rfc3339(t), "2024-05-01T12:03:20.123Z");
        assert_eq!(parse_rfc3339("2024-05-01T12:03:20.123Z"), Some(t));
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn observers_see_records_that_pass_their_filter() {
        let t = Telemetry::new();
        assert!(!t.observed());
        let (mut rx, guard) = t.observe();
        assert!(t.observed());
        let mut b = RecordBuilder::new("INFO");
        b.text("listener", "web/http");
        b.text("client", "127.0.0.9:5000");
        b.text("route", "app");
        b.number("status", 200);
        t.publish(b.finish("request"));
        let record = rx.try_recv().unwrap();
        let json: serde_json::Value = serde_json::from_slice(record.line()).unwrap();
        assert_eq!(json["status"], 200);
        assert_eq!(json["event"], "request");
        let want = |f: ObserveFilter| record.matches(&f);
        assert!(want(ObserveFilter::default()));
        assert!(want(ObserveFilter {
            client: Some("127.0.0.9".parse().unwrap()),
            route: Some("app".into()),
            ..ObserveFilter::default()
        }));
        assert!(!want(ObserveFilter {
            backend: Some("pool".into()),
            ..ObserveFilter::default()
        }));
        drop(guard);
        assert!(!t.observed());
    }
}
