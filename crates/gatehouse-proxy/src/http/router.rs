//! Which rule serves an HTTP request: Gateway API HTTPRoute matching and precedence for the
//! HTTP (or HTTPS) listeners that share one socket. Pure data, built once per config
//! ([`Router::build`]) and shared by every request.
//!
//! # How a request is routed
//!
//! 1. **Listener**, by the request's host (the `Host` header or `:authority`, without port,
//!    lower case, no trailing dot; the caller normalizes): the listener whose `hostname` is
//!    exactly that name, else the one with the longest matching wildcard (`*.a.example.com`
//!    before `*.example.com`), else the one without a hostname. Only that listener's routes
//!    are considered: a request for `abc.foo.example.com` is never served by the routes of a
//!    less specific listener, even when none of its own listener's rules match (Gateway API
//!    listener isolation). Non-HTTP listeners are ignored; when two listeners have the same
//!    hostname, the first wins.
//! 2. **Candidates**: every match of every rule of every route of that listener whose
//!    hostnames (already intersected with the listener's by the config compiler) match the
//!    host. A route without hostnames matches every host. No candidate: `None` (404).
//! 3. **Precedence**, the first difference deciding, best first (Gateway API v1
//!    `HTTPRouteRule.matches`, "across all rules specified on applicable Routes"):
//!    1. an `Exact` path, longer first; then a `RegularExpression` path, longer pattern first
//!       (implementation-specific in Gateway API; the order Envoy Gateway uses); then a
//!       `PathPrefix`, longer prefix first (a trailing `/` not counted: `/api/` and `/api`
//!       are the same prefix). A rule without matches is `PathPrefix /`.
//!    2. a method match;
//!    3. more header matches;
//!    4. more query parameter matches;
//!    5. the route's most specific hostname matching the host: more characters in an exact
//!       hostname, then more characters in a hostname (`*.a.example.com` before
//!       `*.example.com` before a route without hostnames);
//!    6. config order: route, then rule, then match (Gateway API: oldest route, then name;
//!       the compiler keeps routes in config order).
//!
//!    The first candidate in that order that matches the request wins.
//!
//! Hostname specificity comes after the match criteria, not before: a request for
//! `example.com/v2` goes to a `*.com` route's `PathPrefix /v2` rule rather than to an
//! `example.com` route's `PathPrefix /` rule. That is what the Gateway API conformance test
//! `HTTPRouteMatchingAcrossRoutes` requires (and so what conformant implementations do); the
//! `HTTPRouteSpec.hostnames` text ("precedence must be given to rules from the HTTPRoute
//! with the largest number of characters in a matching non-wildcard hostname") is honoured
//! wherever the matches themselves tie. It also means a request falls through: when the
//! exact-host route has no rule matching `a.example.com/other`, the `*.example.com` route's
//! rule (or a route without hostnames) serves it.
//!
//! # Matching
//!
//! - **Path**: the path as received (percent-encoded, no query), compared byte for byte.
//!   `Exact` compares the whole path. `PathPrefix` compares whole segments: `/api` matches
//!   `/api`, `/api/` and `/api/v1`, not `/apiv1`; `/` matches every path. A
//!   `RegularExpression` (the `regex-lite` dialect) must match the whole path. The router
//!   normalizes nothing (dot segments, `%2F`, double slashes): a caller that wants
//!   `/public/../admin` to be routed as `/admin` normalizes (or refuses) it first.
//! - **Method**: compared exactly (upper case).
//! - **Headers**: names case-insensitive; values case-sensitive, exactly or by a regular
//!   expression matching the whole value. A header sent several times is matched as its
//!   values joined with `,` in order (RFC 9110 §5.3; Gateway API leaves repeated headers to
//!   the implementation, and Envoy does the same). A value that is not UTF-8 never matches a
//!   regular expression. When a match names a header twice, only the first condition counts
//!   (Gateway API), for matching and for precedence.
//! - **Query parameters**: names compared exactly, against the first occurrence of the
//!   parameter (as Gateway API recommends); `?flag` has the empty value. Names and values are
//!   compared raw, as received, without percent-decoding and without reading `+` as a space:
//!   write the encoded form in the config (`a%20b`). Duplicate conditions: the first counts.
//!
//! Regular expressions are compiled once, in [`Router::build`], anchored to the whole
//! subject (`^(?:...)$`). One that does not compile (the config compiler rejects those, so
//! this is unexpected) makes its match never match; nothing here panics.
//!
//! # Cost per request
//!
//! Candidates are sorted at build time per host key of each listener (each exact route
//! hostname, each wildcard suffix, the catch-all), so routing is a hash lookup for the
//! listener, one for the candidate list, and a linear scan of that list that stops at the
//! first match. Nothing is allocated unless a header condition meets a header sent several
//! times.

use std::cmp::Reverse;
use std::sync::Arc;

use gatehouse_config::{
    Access, HostMatch, HostPattern, HttpMatch, HttpRule, Listener, PathMatch, Protocol,
    StringMatch, WeightedBackend,
};
use http::{HeaderMap, HeaderName, Method};
use regex_lite::Regex;

use crate::hosts::HostTable;

/// The routing table of one socket's HTTP listeners. Built once per config.
#[derive(Debug)]
pub struct Router {
    listeners: HostTable<ListenerRoutes>,
}

/// What [`Router::route`] chose for a request.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    /// The listener whose hostname the request's host selected.
    pub listener: &'a Arc<Listener>,
    /// The route's name.
    pub route: &'a str,
    /// The route's own access list.
    pub access: &'a Access,
    /// The rule that matched.
    pub rule: &'a HttpRule,
    /// The rule's position in its route (from 0).
    pub rule_index: usize,
    /// For a `PathPrefix` match: the prefix as configured (a rule without matches gives `/`);
    /// what `ReplacePrefixMatch` replaces. `None` for `Exact` and regular expression matches.
    pub prefix: Option<&'a str>,
}

/// One listener's routes, compiled.
#[derive(Debug)]
struct ListenerRoutes {
    listener: Arc<Listener>,
    /// Every match of every rule of every route, in config order.
    matches: Vec<CompiledMatch>,
    /// Per host key: indexes into `matches`, best first.
    candidates: HostTable<Box<[u32]>>,
}

/// One `HttpMatch` (or the implied `PathPrefix /` of a rule without matches), ready to test.
#[derive(Debug)]
struct CompiledMatch {
    /// Index of the route in the listener's `http_routes`.
    route: usize,
    /// Index of the rule in the route.
    rule: usize,
    path: PathCond,
    method: Option<String>,
    headers: Vec<HeaderCond>,
    query: Vec<QueryCond>,
}

#[derive(Debug)]
enum PathCond {
    Exact(String),
    Prefix {
        /// As configured (what `Matched::prefix` reports).
        value: String,
        /// Length of `value` without trailing slashes: the part compared.
        len: usize,
    },
    Regex {
        /// Length of the pattern as configured (for precedence).
        len: usize,
        /// `None` when the pattern did not compile: never matches.
        re: Option<Regex>,
    },
}

#[derive(Debug)]
struct HeaderCond {
    /// `None` when the name is not a valid header name: never matches.
    name: Option<HeaderName>,
    value: ValueCond,
}

#[derive(Debug)]
struct QueryCond {
    name: String,
    value: ValueCond,
}

#[derive(Debug)]
enum ValueCond {
    Exact(String),
    /// `None` when the pattern did not compile: never matches.
    Regex(Option<Regex>),
}

/// The implied match of a rule without matches.
const DEFAULT_PREFIX: &str = "/";

impl Router {
    /// Compiles the routes of `listeners` (the HTTP or HTTPS listeners sharing one socket,
    /// in config order).
    pub fn build(listeners: &[Arc<Listener>]) -> Router {
        let mut table = HostTable::default();
        for listener in listeners {
            if !matches!(listener.protocol, Protocol::Http | Protocol::Https) {
                continue;
            }
            let key = match &listener.hostname {
                Some(p) => HostMatch::Pattern(p.clone()),
                None => HostMatch::Any,
            };
            table.insert(&key, ListenerRoutes::build(Arc::clone(listener)));
        }
        Router { listeners: table }
    }

    /// The rule for a request, or `None` (answer 404) when no listener or no rule serves it.
    ///
    /// `host` is the request's host without port, lower case, without a trailing dot (the
    /// caller normalizes; an empty host matches only listeners and routes without
    /// hostnames); `path` the raw path (percent-encoded as received, no query); `query` the
    /// raw query string, if any.
    pub fn route<'a>(
        &'a self,
        host: &str,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Matched<'a>> {
        let site = self.listeners.get(Some(host))?;
        let list = site.candidates.get(Some(host))?;
        for &i in list.iter() {
            let Some(m) = site.matches.get(i as usize) else {
                continue;
            };
            if !m.matches(method, path, query, headers) {
                continue;
            }
            let Some(entry) = site.listener.http_routes.get(m.route) else {
                continue;
            };
            let Some(rule) = entry.rules.get(m.rule) else {
                continue;
            };
            return Some(Matched {
                listener: &site.listener,
                route: &entry.route,
                access: &entry.access,
                rule,
                rule_index: m.rule,
                prefix: match &m.path {
                    PathCond::Prefix { value, .. } => Some(value.as_str()),
                    _ => None,
                },
            });
        }
        None
    }
}

impl ListenerRoutes {
    fn build(listener: Arc<Listener>) -> ListenerRoutes {
        let mut matches = Vec::new();
        for (route, entry) in listener.http_routes.iter().enumerate() {
            for (rule, r) in entry.rules.iter().enumerate() {
                if r.matches.is_empty() {
                    matches.push(CompiledMatch::default_for(route, rule));
                }
                for m in &r.matches {
                    matches.push(CompiledMatch::compile(route, rule, m));
                }
            }
        }

        // The host keys: every exact name and wildcard suffix a route names, and the
        // catch-all if a route has no hostnames.
        let mut keys: Vec<HostMatch> = Vec::new();
        for entry in &listener.http_routes {
            for h in &entry.hosts {
                if !keys.contains(h) {
                    keys.push(h.clone());
                }
            }
        }

        let mut candidates = HostTable::default();
        for key in &keys {
            // How well each route's hostnames fit the names that reach this key; `None`: the
            // route serves none of them.
            let fits: Vec<Option<(usize, usize)>> = listener
                .http_routes
                .iter()
                .map(|entry| entry.hosts.iter().filter_map(|h| host_fit(h, key)).max())
                .collect();
            let mut list: Vec<(Rank, u32)> = Vec::new();
            for (i, m) in matches.iter().enumerate() {
                let (Some(Some(fit)), Ok(index)) = (fits.get(m.route), u32::try_from(i)) else {
                    continue;
                };
                list.push((m.rank(*fit, i), index));
            }
            list.sort();
            let list: Box<[u32]> = list.into_iter().map(|(_, i)| i).collect();
            candidates.insert(key, list);
        }

        ListenerRoutes {
            listener,
            matches,
            candidates,
        }
    }
}

/// Whether a route hostname `h` matches every request host that the lookup sends to `key`,
/// and if so how specific it is: (characters in an exact hostname, characters in the
/// hostname), more being more specific. Hosts reach an exact key only when equal to it; a
/// wildcard key `*.S` only when no exact key and no longer wildcard suffix fits; the
/// catch-all only when nothing else does.
fn host_fit(h: &HostMatch, key: &HostMatch) -> Option<(usize, usize)> {
    use HostPattern::{Exact, Wildcard};
    match (h, key) {
        (HostMatch::Any, _) => Some((0, 0)),
        (HostMatch::Pattern(Exact(e)), HostMatch::Pattern(Exact(k))) => {
            (e == k).then_some((e.len(), e.len()))
        }
        (HostMatch::Pattern(w @ Wildcard(s)), HostMatch::Pattern(Exact(k))) => {
            w.matches(k).then_some((0, s.len() + 2))
        }
        (HostMatch::Pattern(w @ Wildcard(s)), HostMatch::Pattern(Wildcard(k))) => {
            (s == k || w.matches(k)).then_some((0, s.len() + 2))
        }
        (HostMatch::Pattern(Exact(_)), HostMatch::Pattern(Wildcard(_)) | HostMatch::Any)
        | (HostMatch::Pattern(Wildcard(_)), HostMatch::Any) => None,
    }
}

/// Precedence, ascending = better.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// 0 exact, 1 regular expression, 2 prefix; then longer first.
    path: (u8, Reverse<usize>),
    method: Reverse<bool>,
    headers: Reverse<usize>,
    query: Reverse<usize>,
    host: Reverse<(usize, usize)>,
    /// Config order: route, rule, match.
    order: usize,
}

impl CompiledMatch {
    fn default_for(route: usize, rule: usize) -> CompiledMatch {
        CompiledMatch {
            route,
            rule,
            path: PathCond::Prefix {
                value: DEFAULT_PREFIX.to_owned(),
                len: 0,
            },
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        }
    }

    fn compile(route: usize, rule: usize, m: &HttpMatch) -> CompiledMatch {
        let path = match &m.path {
            PathMatch::Exact(p) => PathCond::Exact(p.clone()),
            PathMatch::Prefix(p) => PathCond::Prefix {
                value: p.clone(),
                len: p.trim_end_matches('/').len(),
            },
            PathMatch::Regex(r) => PathCond::Regex {
                len: r.len(),
                re: anchored(r),
            },
        };
        let mut headers: Vec<HeaderCond> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for h in &m.headers {
            let lower = h.name.to_ascii_lowercase();
            if seen.contains(&lower) {
                continue;
            }
            headers.push(HeaderCond {
                name: HeaderName::from_bytes(lower.as_bytes()).ok(),
                value: ValueCond::compile(&h.value),
            });
            seen.push(lower);
        }
        let mut query: Vec<QueryCond> = Vec::new();
        for q in &m.query {
            if query.iter().any(|c| c.name == q.name) {
                continue;
            }
            query.push(QueryCond {
                name: q.name.clone(),
                value: ValueCond::compile(&q.value),
            });
        }
        CompiledMatch {
            route,
            rule,
            path,
            method: m.method.clone(),
            headers,
            query,
        }
    }

    fn rank(&self, host: (usize, usize), order: usize) -> Rank {
        let path = match &self.path {
            PathCond::Exact(p) => (0, Reverse(p.len())),
            PathCond::Regex { len, .. } => (1, Reverse(*len)),
            PathCond::Prefix { len, .. } => (2, Reverse(*len)),
        };
        Rank {
            path,
            method: Reverse(self.method.is_some()),
            headers: Reverse(self.headers.len()),
            query: Reverse(self.query.len()),
            host: Reverse(host),
            order,
        }
    }

    fn matches(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> bool {
        let path_ok = match &self.path {
            PathCond::Exact(p) => p == path,
            PathCond::Prefix { value, len } => {
                prefix_matches(value.get(..*len).unwrap_or(""), path)
            }
            PathCond::Regex { re, .. } => re.as_ref().is_some_and(|re| re.is_match(path)),
        };
        path_ok
            && self.method.as_deref().is_none_or(|m| m == method.as_str())
            && self.headers.iter().all(|h| h.matches(headers))
            && self.query.iter().all(|q| q.matches(query))
    }
}

/// Whether `path` starts with the path segments of `prefix` (given without trailing slash;
/// empty for `/`, which matches everything).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A pattern compiled to match whole subjects; `None` if it does not compile.
fn anchored(pattern: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{pattern})$")).ok()
}

impl ValueCond {
    fn compile(m: &StringMatch) -> ValueCond {
        match m {
            StringMatch::Exact(v) => ValueCond::Exact(v.clone()),
            StringMatch::Regex(r) => ValueCond::Regex(anchored(r)),
        }
    }

    fn matches_str(&self, value: &str) -> bool {
        match self {
            ValueCond::Exact(v) => v == value,
            ValueCond::Regex(re) => re.as_ref().is_some_and(|re| re.is_match(value)),
        }
    }

    fn matches_bytes(&self, value: &[u8]) -> bool {
        match self {
            ValueCond::Exact(v) => v.as_bytes() == value,
            ValueCond::Regex(_) => std::str::from_utf8(value).is_ok_and(|s| self.matches_str(s)),
        }
    }
}

impl HeaderCond {
    fn matches(&self, headers: &HeaderMap) -> bool {
        let Some(name) = &self.name else {
            return false;
        };
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else {
            return false;
        };
        let Some(second) = values.next() else {
            return self.value.matches_bytes(first.as_bytes());
        };
        // Sent several times: match the values joined, as one field.
        let mut joined = Vec::with_capacity(first.len() + second.len() + 1);
        joined.extend_from_slice(first.as_bytes());
        for v in std::iter::once(second).chain(values) {
            joined.push(b',');
            joined.extend_from_slice(v.as_bytes());
        }
        self.value.matches_bytes(&joined)
    }
}

impl QueryCond {
    fn matches(&self, query: Option<&str>) -> bool {
        query
            .and_then(|q| query_param(q, &self.name))
            .is_some_and(|v| self.value.matches_str(v))
    }
}

/// The raw value of the first parameter called `name` in a raw query string.
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (n == name).then_some(v)
    })
}

/// A backend of `rule` by weight: over any `T` consecutive counters (`T` the sum of the
/// weights reduced by their greatest common divisor) each backend is chosen exactly in
/// proportion to its weight, spread evenly (the counter's position in the cycle times a
/// golden-ratio stride coprime with `T`, looked up in the cumulative weights: weights
/// `[5, 1, 1]` give `a a a b a c a`, `[1, 1]` alternate). A weight of 0 is never chosen;
/// `None` when no backend has a weight. The caller keeps the counter (an atomic per rule or
/// per site, or a random number per request).
pub fn pick_backend(rule: &HttpRule, counter: u64) -> Option<&WeightedBackend> {
    let divisor = rule
        .backends
        .iter()
        .fold(0u64, |g, b| gcd(g, u64::from(b.weight)));
    if divisor == 0 {
        return None;
    }
    let total: u64 = rule
        .backends
        .iter()
        .map(|b| u64::from(b.weight) / divisor)
        .sum();
    let slot = u128::from(counter % total) * u128::from(stride(total)) % u128::from(total);
    let mut end = 0u128;
    for b in &rule.backends {
        end += u128::from(u64::from(b.weight) / divisor);
        if slot < end {
            return Some(b);
        }
    }
    None
}

/// A step through `0..total` that visits every slot once per cycle and spreads consecutive
/// counters apart: the first number from `total / φ` on that is coprime with `total`.
fn stride(total: u64) -> u64 {
    // 1/φ ≈ 0.618033988749895, in fixed point.
    let guess =
        (u128::from(total) * 618_033_988_749_895 + 500_000_000_000_000) / 1_000_000_000_000_000;
    let mut k = u64::try_from(guess).unwrap_or(1).max(1);
    while gcd(k, total) != 1 {
        k += 1;
    }
    k
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_config::{HeaderMatch, HttpRouteEntry, HttpTimeouts, QueryMatch};
    use std::time::Duration;

    // ---- builders ----

    fn host(p: &str) -> HostMatch {
        match p {
            "*" => HostMatch::Any,
            _ => HostMatch::Pattern(gatehouse_config::parse_host_pattern(p).unwrap()),
        }
    }

    fn listener(name: &str, hostname: Option<&str>, routes: Vec<HttpRouteEntry>) -> Arc<Listener> {
        Arc::new(Listener {
            name: name.to_owned(),
            bind: "127.0.0.1:0".parse().unwrap(),
            protocol: Protocol::Http,
            routes: vec![],
            hostname: hostname.map(|h| gatehouse_config::parse_host_pattern(h).unwrap()),
            tls: None,
            http_routes: routes,
            http: None,
            max_connections: 100,
            idle_timeout: Duration::from_secs(60),
            access: Default::default(),
            accept_proxy: None,
            udp: None,
        })
    }

    fn route(name: &str, hosts: &[&str], rules: Vec<HttpRule>) -> HttpRouteEntry {
        HttpRouteEntry {
            route: name.to_owned(),
            hosts: hosts.iter().map(|h| host(h)).collect(),
            rules: Arc::new(rules),
            access: Default::default(),
        }
    }

    /// A rule sending to `backend` (so tests can tell rules apart by backend name).
    fn rule(backend: &str, matches: Vec<HttpMatch>) -> HttpRule {
        HttpRule {
            matches,
            filters: vec![],
            backends: vec![WeightedBackend {
                backend: backend.to_owned(),
                weight: 1,
            }],
            timeouts: HttpTimeouts::default(),
        }
    }

    fn m(path: PathMatch) -> HttpMatch {
        HttpMatch {
            path,
            headers: vec![],
            query: vec![],
            method: None,
        }
    }

    fn prefix(p: &str) -> HttpMatch {
        m(PathMatch::Prefix(p.to_owned()))
    }

    fn exact(p: &str) -> HttpMatch {
        m(PathMatch::Exact(p.to_owned()))
    }

    fn regex(p: &str) -> HttpMatch {
        m(PathMatch::Regex(p.to_owned()))
    }

    fn with_header(mut x: HttpMatch, name: &str, value: &str) -> HttpMatch {
        x.headers.push(HeaderMatch {
            name: name.to_owned(),
            value: StringMatch::Exact(value.to_owned()),
        });
        x
    }

    fn with_header_regex(mut x: HttpMatch, name: &str, re: &str) -> HttpMatch {
        x.headers.push(HeaderMatch {
            name: name.to_owned(),
            value: StringMatch::Regex(re.to_owned()),
        });
        x
    }

    fn with_query(mut x: HttpMatch, name: &str, value: &str) -> HttpMatch {
        x.query.push(QueryMatch {
            name: name.to_owned(),
            value: StringMatch::Exact(value.to_owned()),
        });
        x
    }

    fn with_query_regex(mut x: HttpMatch, name: &str, re: &str) -> HttpMatch {
        x.query.push(QueryMatch {
            name: name.to_owned(),
            value: StringMatch::Regex(re.to_owned()),
        });
        x
    }

    fn with_method(mut x: HttpMatch, method: &str) -> HttpMatch {
        x.method = Some(method.to_owned());
        x
    }

    /// A request: host, method, path with optional `?query`, headers.
    struct Req<'a> {
        host: &'a str,
        method: &'a str,
        target: &'a str,
        headers: &'a [(&'a str, &'a str)],
    }

    fn req<'a>(host: &'a str, target: &'a str) -> Req<'a> {
        Req {
            host,
            method: "GET",
            target,
            headers: &[],
        }
    }

    fn run<'r>(router: &'r Router, r: &Req<'_>) -> Option<Matched<'r>> {
        let (path, query) = match r.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (r.target, None),
        };
        let mut headers = HeaderMap::new();
        for (n, v) in r.headers {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        router.route(r.host, &method, path, query, &headers)
    }

    /// The backend of the rule that serves the request, or "404".
    fn backend(router: &Router, r: &Req<'_>) -> String {
        run(router, r).map_or("404".to_owned(), |m| m.rule.backends[0].backend.clone())
    }

    fn check(router: &Router, cases: &[(Req<'_>, &str)]) {
        for (r, want) in cases {
            assert_eq!(
                backend(router, r),
                *want,
                "{} {} {}{:?}",
                r.method,
                r.host,
                r.target,
                r.headers
            );
        }
    }

    fn single(routes: Vec<HttpRouteEntry>) -> Router {
        Router::build(&[listener("gw/http", None, routes)])
    }

    // ---- paths ----

    #[test]
    fn path_prefix_is_element_wise() {
        // (prefix, path, matches)
        let cases = [
            ("/api", "/api", true),
            ("/api", "/api/", true),
            ("/api", "/api/v1", true),
            ("/api", "/api/v1/x", true),
            ("/api", "/apiv1", false),
            ("/api", "/ap", false),
            ("/api", "/", false),
            ("/api", "/API", false),
            ("/api", "/x/api", false),
            ("/api/", "/api", true),
            ("/api/", "/api/", true),
            ("/api/", "/api/v1", true),
            ("/api/", "/apiv1", false),
            ("/", "/", true),
            ("/", "/anything/at/all", true),
            ("/", "*", true),
            ("/a/b", "/a/b/c", true),
            ("/a/b", "/a/bc", false),
            ("/a/b", "/a", false),
            ("/a%20b", "/a%20b/c", true),
            ("/a%20b", "/a b/c", false),
        ];
        for (p, path, want) in cases {
            let r = single(vec![route("r", &["*"], vec![rule("hit", vec![prefix(p)])])]);
            let got = backend(&r, &req("x", path)) == "hit";
            assert_eq!(got, want, "prefix {p} path {path}");
        }
    }

    #[test]
    fn exact_path_is_whole_and_case_sensitive() {
        let cases = [
            ("/abc", "/abc", true),
            ("/abc", "/abc/", false),
            ("/abc", "/Abc", false),
            ("/abc", "/abcd", false),
            ("/abc", "/ab", false),
            ("/", "/", true),
            ("/", "/a", false),
        ];
        for (p, path, want) in cases {
            let r = single(vec![route("r", &["*"], vec![rule("hit", vec![exact(p)])])]);
            assert_eq!(
                backend(&r, &req("x", path)) == "hit",
                want,
                "exact {p} path {path}"
            );
        }
    }

    #[test]
    fn regex_path_matches_the_whole_path() {
        let r = single(vec![route(
            "r",
            &["*"],
            vec![rule("hit", vec![regex(r"/users/[0-9]+")])],
        )]);
        check(
            &r,
            &[
                (req("x", "/users/42"), "hit"),
                (req("x", "/users/42?x=1"), "hit"),
                (req("x", "/users/42/edit"), "404"),
                (req("x", "/v1/users/42"), "404"),
                (req("x", "/users/"), "404"),
            ],
        );
        // Alternation is anchored as a whole, not per branch.
        let r = single(vec![route(
            "r",
            &["*"],
            vec![rule("hit", vec![regex("/a|/b")])],
        )]);
        check(
            &r,
            &[
                (req("x", "/a"), "hit"),
                (req("x", "/b"), "hit"),
                (req("x", "/ab"), "404"),
                (req("x", "/a/x"), "404"),
                (req("x", "/x/b"), "404"),
            ],
        );
    }

    #[test]
    fn invalid_regex_never_matches_and_never_panics() {
        let mut bad_header = prefix("/");
        bad_header = with_header_regex(bad_header, "x", "(unclosed");
        let bad_query = with_query_regex(prefix("/"), "q", "[z-a]");
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("bad-path", vec![regex("(unclosed")]),
                rule("bad-header", vec![bad_header]),
                rule("bad-query", vec![bad_query]),
                rule("fallback", vec![]),
            ],
        )]);
        check(
            &r,
            &[
                (req("x", "/(unclosed"), "fallback"),
                (
                    Req {
                        headers: &[("x", "(unclosed")],
                        ..req("x", "/?q=z")
                    },
                    "fallback",
                ),
            ],
        );
    }

    #[test]
    fn rule_without_matches_is_prefix_slash() {
        let r = single(vec![route("r", &["*"], vec![rule("all", vec![])])]);
        for path in ["/", "/x", "/x/y/z", "*"] {
            let got = run(&r, &req("any.host", path)).unwrap();
            assert_eq!(got.rule.backends[0].backend, "all");
            assert_eq!(got.prefix, Some("/"));
            assert_eq!(got.route, "r");
            assert_eq!(got.rule_index, 0);
        }
    }

    #[test]
    fn prefix_reported_only_for_prefix_matches() {
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("e", vec![exact("/e")]),
                rule("x", vec![regex("/x.*")]),
                rule("p", vec![prefix("/p/")]),
            ],
        )]);
        assert_eq!(run(&r, &req("h", "/e")).unwrap().prefix, None);
        assert_eq!(run(&r, &req("h", "/xyz")).unwrap().prefix, None);
        let p = run(&r, &req("h", "/p/q")).unwrap();
        assert_eq!(p.prefix, Some("/p/"));
        assert_eq!(p.rule_index, 2);
    }

    // ---- precedence ----

    /// Gateway API conformance `HTTPRoutePathMatchOrder`.
    #[test]
    fn conformance_path_match_order() {
        let r = single(vec![route(
            "path-matching-order",
            &["*"],
            vec![
                rule("v1", vec![exact("/match")]),
                rule("v2", vec![exact("/match/exact")]),
                rule("v3", vec![exact("/match/exact/one")]),
                rule("v3", vec![prefix("/match/")]),
                rule("v1", vec![prefix("/match/prefix/")]),
                rule("v2", vec![prefix("/match/prefix/one")]),
            ],
        )]);
        check(
            &r,
            &[
                (req("h", "/match/exact/one"), "v3"),
                (req("h", "/match/exact"), "v2"),
                (req("h", "/match"), "v1"),
                (req("h", "/match/prefix/one/any"), "v2"),
                (req("h", "/match/prefix/any"), "v1"),
                (req("h", "/match/any"), "v3"),
            ],
        );
    }

    /// Gateway API conformance `HTTPRouteMatchingAcrossRoutes`: the match criteria decide
    /// before hostname specificity.
    #[test]
    fn conformance_matching_across_routes() {
        let r = single(vec![
            route(
                "matching-part1",
                &["example.com", "example.net"],
                vec![rule(
                    "v1",
                    vec![prefix("/"), with_header(prefix("/"), "version", "one")],
                )],
            ),
            route(
                "matching-part2",
                &["*.com"],
                vec![rule(
                    "v2",
                    vec![prefix("/v2"), with_header(prefix("/"), "version", "two")],
                )],
            ),
        ]);
        check(
            &r,
            &[
                (req("example.com", "/"), "v1"),
                (req("example.com", "/example"), "v1"),
                (req("example.net", "/example"), "v1"),
                (
                    Req {
                        headers: &[("Version", "one")],
                        ..req("example.com", "/example")
                    },
                    "v1",
                ),
                (req("example.com", "/v2"), "v2"),
                (req("example.net", "/v2"), "v1"),
                (req("example.com", "/v2/example"), "v2"),
                (
                    Req {
                        headers: &[("Version", "two")],
                        ..req("example.com", "/")
                    },
                    "v2",
                ),
                // Only the wildcard route serves other .com names.
                (req("other.com", "/v2"), "v2"),
                (req("other.com", "/"), "404"),
                (req("example.org", "/"), "404"),
            ],
        );
    }

    #[test]
    fn path_kind_then_length() {
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("prefix-root", vec![prefix("/")]),
                rule("prefix-a", vec![prefix("/a")]),
                rule("prefix-a-b", vec![prefix("/a/b")]),
                rule("regex-short", vec![regex("/a/.*")]),
                rule("regex-long", vec![regex("/a/b/[0-9]+")]),
                rule("exact-short", vec![exact("/a")]),
                rule("exact-long", vec![exact("/a/b/1")]),
            ],
        )]);
        check(
            &r,
            &[
                // Exact beats everything, whatever the lengths.
                (req("h", "/a"), "exact-short"),
                (req("h", "/a/b/1"), "exact-long"),
                // Then regular expressions, longer pattern first.
                (req("h", "/a/b/2"), "regex-long"),
                (req("h", "/a/b/x"), "regex-short"),
                (req("h", "/a/x"), "regex-short"),
                // Then the longest prefix.
                (req("h", "/a/"), "regex-short"),
                (req("h", "/a"), "exact-short"),
                (req("h", "/b"), "prefix-root"),
            ],
        );
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("short", vec![prefix("/a")]),
                rule("long", vec![prefix("/a/b")]),
            ],
        )]);
        check(
            &r,
            &[
                (req("h", "/a/b"), "long"),
                (req("h", "/a/b/c"), "long"),
                (req("h", "/a/bc"), "short"),
                (req("h", "/a"), "short"),
            ],
        );
    }

    #[test]
    fn trailing_slash_does_not_make_a_prefix_longer() {
        // `/a/` and `/a` are the same prefix: config order decides.
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("first", vec![prefix("/a")]),
                rule("second", vec![prefix("/a/")]),
            ],
        )]);
        check(&r, &[(req("h", "/a/x"), "first")]);
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("first", vec![prefix("/a/")]),
                rule("second", vec![prefix("/a")]),
            ],
        )]);
        check(&r, &[(req("h", "/a/x"), "first")]);
    }

    #[test]
    fn method_then_headers_then_query() {
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("plain", vec![prefix("/")]),
                rule(
                    "two-query",
                    vec![with_query(with_query(prefix("/"), "a", "1"), "b", "2")],
                ),
                rule("one-query", vec![with_query(prefix("/"), "a", "1")]),
                rule(
                    "two-headers",
                    vec![with_header(with_header(prefix("/"), "x", "1"), "y", "2")],
                ),
                rule(
                    "header-and-query",
                    vec![with_query(with_header(prefix("/"), "x", "1"), "a", "1")],
                ),
                rule("one-header", vec![with_header(prefix("/"), "x", "1")]),
                rule("method", vec![with_method(prefix("/"), "POST")]),
            ],
        )]);
        let post = |target: &'static str, headers: &'static [(&'static str, &'static str)]| Req {
            host: "h",
            method: "POST",
            target,
            headers,
        };
        let get = |target: &'static str, headers: &'static [(&'static str, &'static str)]| Req {
            host: "h",
            method: "GET",
            target,
            headers,
        };
        check(
            &r,
            &[
                // A method match beats any number of header and query matches.
                (post("/?a=1&b=2", &[("x", "1"), ("y", "2")]), "method"),
                // More headers beat fewer, whatever the query matches.
                (get("/?a=1&b=2", &[("x", "1"), ("y", "2")]), "two-headers"),
                (get("/?a=1&b=2", &[("x", "1")]), "header-and-query"),
                (get("/?b=2", &[("x", "1")]), "one-header"),
                // Then more query matches.
                (get("/?a=1&b=2", &[]), "two-query"),
                (get("/?a=1", &[]), "one-query"),
                (get("/", &[]), "plain"),
            ],
        );
        // The path still comes first: a longer prefix beats a method match.
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("method", vec![with_method(prefix("/"), "GET")]),
                rule("longer", vec![prefix("/a")]),
            ],
        )]);
        check(
            &r,
            &[(req("h", "/a"), "longer"), (req("h", "/b"), "method")],
        );
    }

    #[test]
    fn ties_go_to_route_then_rule_then_match_order() {
        let r = single(vec![
            route(
                "first",
                &["*"],
                vec![
                    rule("first-0", vec![prefix("/x")]),
                    rule("first-1", vec![prefix("/y"), prefix("/x")]),
                ],
            ),
            route("second", &["*"], vec![rule("second-0", vec![prefix("/x")])]),
        ]);
        check(
            &r,
            &[(req("h", "/x"), "first-0"), (req("h", "/y"), "first-1")],
        );
        let got = run(&r, &req("h", "/y")).unwrap();
        assert_eq!((got.route, got.rule_index), ("first", 1));

        let r = single(vec![
            route("a", &["*"], vec![rule("a", vec![prefix("/")])]),
            route("b", &["*"], vec![rule("b", vec![prefix("/")])]),
        ]);
        check(&r, &[(req("h", "/"), "a")]);
        let r = single(vec![
            route("b", &["*"], vec![rule("b", vec![prefix("/")])]),
            route("a", &["*"], vec![rule("a", vec![prefix("/")])]),
        ]);
        check(&r, &[(req("h", "/"), "b")]);
    }

    // ---- hostnames ----

    #[test]
    fn hostname_specificity_breaks_ties_between_equal_matches() {
        // Same match everywhere: the exact host, then the longer wildcard, then the route
        // without hostnames, whatever the config order.
        let r = single(vec![
            route("any", &["*"], vec![rule("any", vec![prefix("/")])]),
            route(
                "wild",
                &["*.example.com"],
                vec![rule("wild", vec![prefix("/")])],
            ),
            route(
                "wild-a",
                &["*.a.example.com"],
                vec![rule("wild-a", vec![prefix("/")])],
            ),
            route(
                "exact",
                &["x.a.example.com"],
                vec![rule("exact", vec![prefix("/")])],
            ),
        ]);
        check(
            &r,
            &[
                (req("x.a.example.com", "/"), "exact"),
                (req("y.a.example.com", "/"), "wild-a"),
                (req("z.y.a.example.com", "/"), "wild-a"),
                (req("a.example.com", "/"), "wild"),
                (req("b.example.com", "/"), "wild"),
                (req("example.com", "/"), "any"),
                (req("other.org", "/"), "any"),
                (req("", "/"), "any"),
            ],
        );
    }

    #[test]
    fn a_route_counts_its_most_specific_matching_hostname() {
        let r = single(vec![
            route(
                "wild",
                &["*.example.com"],
                vec![rule("wild", vec![prefix("/")])],
            ),
            route(
                "both",
                &["*.com", "a.example.com"],
                vec![rule("both", vec![prefix("/")])],
            ),
        ]);
        check(
            &r,
            &[
                (req("a.example.com", "/"), "both"),
                (req("b.example.com", "/"), "wild"),
                (req("b.com", "/"), "both"),
            ],
        );
    }

    #[test]
    fn wildcard_host_fallthrough() {
        // The exact-host route has no rule for `/other`: the wildcard route serves it, and
        // the route without hostnames serves what neither matches.
        let r = single(vec![
            route(
                "exact",
                &["a.example.com"],
                vec![rule("exact-api", vec![prefix("/api")])],
            ),
            route(
                "wild",
                &["*.example.com"],
                vec![rule("wild-web", vec![prefix("/web")])],
            ),
            route("default", &["*"], vec![rule("default", vec![prefix("/")])]),
        ]);
        check(
            &r,
            &[
                (req("a.example.com", "/api/x"), "exact-api"),
                (req("a.example.com", "/web"), "wild-web"),
                (req("a.example.com", "/other"), "default"),
                (req("b.example.com", "/api/x"), "default"),
                (req("b.example.com", "/web/x"), "wild-web"),
                (req("other.org", "/web"), "default"),
            ],
        );
        // Without a catch-all route, what nothing matches is a 404.
        let r = single(vec![
            route(
                "exact",
                &["a.example.com"],
                vec![rule("exact-api", vec![prefix("/api")])],
            ),
            route(
                "wild",
                &["*.example.com"],
                vec![rule("wild-root", vec![prefix("/")])],
            ),
        ]);
        check(
            &r,
            &[
                (req("a.example.com", "/api"), "exact-api"),
                (req("a.example.com", "/other"), "wild-root"),
                (req("example.com", "/other"), "404"),
                (req("other.org", "/"), "404"),
            ],
        );
    }

    #[test]
    fn wildcard_needs_a_label_and_matches_several() {
        let r = single(vec![route(
            "wild",
            &["*.example.com"],
            vec![rule("wild", vec![])],
        )]);
        check(
            &r,
            &[
                (req("a.example.com", "/"), "wild"),
                (req("a.b.example.com", "/"), "wild"),
                (req("example.com", "/"), "404"),
                (req(".example.com", "/"), "404"),
                (req("aexample.com", "/"), "404"),
                (req("", "/"), "404"),
            ],
        );
    }

    /// Gateway API conformance `HTTPRouteHostnameIntersection`, with the route hostnames as
    /// the config compiler intersects them with each listener's.
    #[test]
    fn conformance_hostname_intersection() {
        let r = Router::build(&[
            listener(
                "gw/listener-1",
                Some("very.specific.com"),
                vec![
                    route(
                        "specific-host-matches-listener-specific-host",
                        &["very.specific.com"],
                        vec![rule("v1", vec![prefix("/s1")])],
                    ),
                    route(
                        "wildcard-host-matches-listener-specific-host",
                        &["very.specific.com"],
                        vec![rule("v3", vec![prefix("/s3")])],
                    ),
                ],
            ),
            listener(
                "gw/listener-2",
                Some("*.wildcard.io"),
                vec![route(
                    "specific-host-matches-listener-wildcard-host",
                    &["foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"],
                    vec![rule("v2", vec![prefix("/s2")])],
                )],
            ),
            listener(
                "gw/listener-3",
                Some("*.anotherwildcard.io"),
                vec![route(
                    "wildcard-host-matches-listener-wildcard-host",
                    &["*.anotherwildcard.io"],
                    vec![rule("v1", vec![prefix("/s4")])],
                )],
            ),
        ]);
        check(
            &r,
            &[
                (req("very.specific.com", "/s1"), "v1"),
                (req("non.matching.com", "/s1"), "404"),
                (req("foo.nonmatchingwildcard.io", "/s1"), "404"),
                (req("foo.wildcard.io", "/s1"), "404"),
                (req("very.specific.com", "/non-matching-prefix"), "404"),
                (req("foo.wildcard.io", "/s2"), "v2"),
                (req("bar.wildcard.io", "/s2"), "v2"),
                (req("foo.bar.wildcard.io", "/s2"), "v2"),
                (req("non.matching.com", "/s2"), "404"),
                (req("wildcard.io", "/s2"), "404"),
                (req("very.specific.com", "/s2"), "404"),
                (req("foo.wildcard.io", "/non-matching-prefix"), "404"),
                (req("baz.wildcard.io", "/s2"), "404"),
                (req("very.specific.com", "/s3"), "v3"),
                (req("non.matching.com", "/s3"), "404"),
                (req("foo.specific.com", "/s3"), "404"),
                (req("foo.wildcard.io", "/s3"), "404"),
                (req("very.specific.com", "/non-matching-prefix"), "404"),
                (req("foo.anotherwildcard.io", "/s4"), "v1"),
                (req("bar.anotherwildcard.io", "/s4"), "v1"),
                (req("foo.bar.anotherwildcard.io", "/s4"), "v1"),
                (req("anotherwildcard.io", "/s4"), "404"),
                (req("foo.wildcard.io", "/s4"), "404"),
                (req("very.specific.com", "/s4"), "404"),
                (req("foo.anotherwildcard.io", "/non-matching-prefix"), "404"),
            ],
        );
    }

    /// Gateway API conformance `GatewayHTTPListenerIsolation`: the most specific listener
    /// takes the request, and only its routes are considered.
    #[test]
    fn conformance_listener_isolation() {
        let r = Router::build(&[
            listener(
                "gw/empty-hostname",
                None,
                vec![route(
                    "r0",
                    &["*"],
                    vec![rule("empty", vec![prefix("/empty-hostname")])],
                )],
            ),
            listener(
                "gw/wildcard-example-com",
                Some("*.example.com"),
                vec![route(
                    "r1",
                    &["*.example.com"],
                    vec![rule("wild", vec![prefix("/wildcard-example-com")])],
                )],
            ),
            listener(
                "gw/wildcard-foo-example-com",
                Some("*.foo.example.com"),
                vec![route(
                    "r2",
                    &["*.foo.example.com"],
                    vec![rule("wild-foo", vec![prefix("/wildcard-foo-example-com")])],
                )],
            ),
            listener(
                "gw/abc-foo-example-com",
                Some("abc.foo.example.com"),
                vec![route(
                    "r3",
                    &["abc.foo.example.com"],
                    vec![rule("abc", vec![prefix("/abc-foo-example-com")])],
                )],
            ),
        ]);
        let paths = [
            ("/empty-hostname", "empty"),
            ("/wildcard-example-com", "wild"),
            ("/wildcard-foo-example-com", "wild-foo"),
            ("/abc-foo-example-com", "abc"),
        ];
        let hosts = [
            ("bar.com", "empty", "gw/empty-hostname"),
            ("example.com", "empty", "gw/empty-hostname"),
            ("bar.example.com", "wild", "gw/wildcard-example-com"),
            ("foo.example.com", "wild", "gw/wildcard-example-com"),
            (
                "bar.foo.example.com",
                "wild-foo",
                "gw/wildcard-foo-example-com",
            ),
            (
                "x.abc.foo.example.com",
                "wild-foo",
                "gw/wildcard-foo-example-com",
            ),
            ("abc.foo.example.com", "abc", "gw/abc-foo-example-com"),
        ];
        for (h, served, listener_name) in hosts {
            for (p, owner) in paths {
                let want = if owner == served { owner } else { "404" };
                assert_eq!(backend(&r, &req(h, p)), want, "{h}{p}");
            }
            let (p, _) = paths.iter().find(|(_, o)| *o == served).unwrap();
            assert_eq!(run(&r, &req(h, p)).unwrap().listener.name, listener_name);
        }
    }

    #[test]
    fn first_listener_wins_for_a_duplicate_hostname_and_other_protocols_are_ignored() {
        let mut tls = (*listener(
            "gw/tls",
            Some("a.example.com"),
            vec![route("t", &["a.example.com"], vec![rule("tls", vec![])])],
        ))
        .clone();
        tls.protocol = Protocol::Tls;
        let r = Router::build(&[
            Arc::new(tls),
            listener(
                "gw/one",
                Some("a.example.com"),
                vec![route("r1", &["a.example.com"], vec![rule("one", vec![])])],
            ),
            listener(
                "gw/two",
                Some("a.example.com"),
                vec![route("r2", &["a.example.com"], vec![rule("two", vec![])])],
            ),
        ]);
        check(
            &r,
            &[
                (req("a.example.com", "/"), "one"),
                (req("b.example.com", "/"), "404"),
            ],
        );
    }

    #[test]
    fn empty_router_and_routes() {
        let r = Router::build(&[]);
        check(&r, &[(req("a", "/"), "404")]);
        let r = single(vec![]);
        check(&r, &[(req("a", "/"), "404")]);
        let r = single(vec![route("no-rules", &["*"], vec![])]);
        check(&r, &[(req("a", "/"), "404")]);
        let r = single(vec![route("no-hosts", &[], vec![rule("x", vec![])])]);
        check(&r, &[(req("a", "/"), "404")]);
    }

    // ---- headers, query, method ----

    #[test]
    fn headers() {
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("exact", vec![with_header(prefix("/e"), "X-Env", "Canary")]),
                rule(
                    "regex",
                    vec![with_header_regex(prefix("/r"), "x-version", "v[0-9]+")],
                ),
                rule(
                    "two",
                    vec![with_header(with_header(prefix("/t"), "a", "1"), "b", "2")],
                ),
                rule(
                    "dup",
                    vec![with_header(with_header(prefix("/d"), "a", "1"), "A", "2")],
                ),
            ],
        )]);
        let h = |target: &'static str, headers: &'static [(&'static str, &'static str)]| Req {
            headers,
            ..req("h", target)
        };
        check(
            &r,
            &[
                // Names are case-insensitive, values are not.
                (h("/e", &[("x-env", "Canary")]), "exact"),
                (h("/e", &[("X-ENV", "Canary")]), "exact"),
                (h("/e", &[("x-env", "canary")]), "404"),
                (h("/e", &[("x-env", "Canary ")]), "404"),
                (h("/e", &[]), "404"),
                (h("/e", &[("x-other", "Canary")]), "404"),
                // Several times: the values joined with a comma.
                (h("/e", &[("x-env", "Canary"), ("x-env", "Stable")]), "404"),
                (h("/r", &[("x-version", "v2")]), "regex"),
                (h("/r", &[("x-version", "v22")]), "regex"),
                (h("/r", &[("x-version", "v2-beta")]), "404"),
                (h("/r", &[("x-version", "xv2")]), "404"),
                (h("/r", &[("x-version", "v1"), ("x-version", "v2")]), "404"),
                // All conditions must hold.
                (h("/t", &[("a", "1"), ("b", "2")]), "two"),
                (h("/t", &[("a", "1")]), "404"),
                (h("/t", &[("b", "2")]), "404"),
                // A name given twice: only the first condition counts.
                (h("/d", &[("a", "1")]), "dup"),
                (h("/d", &[("a", "2")]), "404"),
            ],
        );
        // The joined value can be matched.
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("joined", vec![with_header(prefix("/"), "x", "a,b")]),
                rule(
                    "joined-re",
                    vec![with_header_regex(prefix("/re"), "x", "(?:v[0-9],?)+")],
                ),
            ],
        )]);
        check(
            &r,
            &[
                (h("/", &[("x", "a"), ("x", "b")]), "joined"),
                (h("/", &[("x", "a,b")]), "joined"),
                (h("/", &[("x", "b"), ("x", "a")]), "404"),
                (h("/re", &[("x", "v1"), ("x", "v2")]), "joined-re"),
            ],
        );
        // The duplicate name does not count towards precedence either.
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule(
                    "dup",
                    vec![with_header(with_header(prefix("/"), "a", "1"), "a", "1")],
                ),
                rule(
                    "two",
                    vec![with_header(with_header(prefix("/"), "a", "1"), "b", "2")],
                ),
            ],
        )]);
        check(&r, &[(h("/", &[("a", "1"), ("b", "2")]), "two")]);
    }

    #[test]
    fn non_utf8_header_values() {
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("re", vec![with_header_regex(prefix("/re"), "x", ".*")]),
                rule("exact", vec![with_header(prefix("/e"), "x", "é")]),
            ],
        )]);
        let mut headers = HeaderMap::new();
        headers.insert("x", http::HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        let got = r.route("h", &Method::GET, "/re", None, &headers);
        assert!(got.is_none());
        // Bytes compare exactly, whatever they are.
        let mut headers = HeaderMap::new();
        headers.insert("x", http::HeaderValue::from_bytes("é".as_bytes()).unwrap());
        let got = r.route("h", &Method::GET, "/e", None, &headers).unwrap();
        assert_eq!(got.rule.backends[0].backend, "exact");
        let got = r.route("h", &Method::GET, "/re", None, &headers).unwrap();
        assert_eq!(got.rule.backends[0].backend, "re");
    }

    #[test]
    fn query_params() {
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("exact", vec![with_query(prefix("/e"), "animal", "whale")]),
                rule(
                    "regex",
                    vec![with_query_regex(prefix("/r"), "id", "[0-9]+")],
                ),
                rule("encoded", vec![with_query(prefix("/enc"), "q", "a%20b")]),
                rule(
                    "two",
                    vec![with_query(with_query(prefix("/t"), "a", "1"), "b", "2")],
                ),
                rule("empty-name", vec![with_query(prefix("/n"), "flag", "")]),
            ],
        )]);
        check(
            &r,
            &[
                (req("h", "/e?animal=whale"), "exact"),
                (req("h", "/e?x=1&animal=whale&y=2"), "exact"),
                (req("h", "/e?animal=Whale"), "404"),
                (req("h", "/e?Animal=whale"), "404"),
                (req("h", "/e?animal=whale2"), "404"),
                (req("h", "/e?animals=whale"), "404"),
                (req("h", "/e"), "404"),
                (req("h", "/e?"), "404"),
                // The first occurrence counts.
                (req("h", "/e?animal=whale&animal=dolphin"), "exact"),
                (req("h", "/e?animal=dolphin&animal=whale"), "404"),
                (req("h", "/r?id=42"), "regex"),
                (req("h", "/r?id=42a"), "404"),
                (req("h", "/r?id="), "404"),
                // Raw comparison: no percent-decoding, `+` is not a space.
                (req("h", "/enc?q=a%20b"), "encoded"),
                (req("h", "/enc?q=a+b"), "404"),
                (req("h", "/enc?q=a%20B"), "404"),
                (req("h", "/t?b=2&a=1"), "two"),
                (req("h", "/t?a=1"), "404"),
                // A parameter without `=` has the empty value.
                (req("h", "/n?flag"), "empty-name"),
                (req("h", "/n?flag="), "empty-name"),
                (req("h", "/n?flag=1"), "404"),
            ],
        );
        assert_eq!(query_param("a=1&b=2&a=3", "a"), Some("1"));
        assert_eq!(query_param("a=1=2", "a"), Some("1=2"));
        assert_eq!(query_param("&&a", "a"), Some(""));
        assert_eq!(query_param("", "a"), None);
    }

    #[test]
    fn methods() {
        let r = single(vec![route(
            "r",
            &["*"],
            vec![
                rule("post", vec![with_method(prefix("/"), "POST")]),
                rule(
                    "get-or-head",
                    vec![
                        with_method(prefix("/"), "GET"),
                        with_method(prefix("/"), "HEAD"),
                    ],
                ),
                rule("other", vec![prefix("/")]),
            ],
        )]);
        for (method, want) in [
            ("POST", "post"),
            ("GET", "get-or-head"),
            ("HEAD", "get-or-head"),
            ("PUT", "other"),
            ("DELETE", "other"),
            ("PATCH", "other"),
        ] {
            let r2 = Req {
                method,
                ..req("h", "/")
            };
            assert_eq!(backend(&r, &r2), want, "{method}");
        }
    }

    #[test]
    fn matched_borrows_the_config() {
        let l = listener(
            "gw/l",
            None,
            vec![route(
                "web",
                &["*"],
                vec![rule("b0", vec![]), rule("b1", vec![exact("/x")])],
            )],
        );
        let r = Router::build(&[Arc::clone(&l)]);
        let got = run(&r, &req("h", "/x")).unwrap();
        assert!(Arc::ptr_eq(got.listener, &l));
        assert!(std::ptr::eq(got.rule, &l.http_routes[0].rules[1]));
        assert_eq!(got.route, "web");
        assert_eq!(got.rule_index, 1);
        assert!(format!("{r:?}").contains("Router"));
    }

    // ---- weights ----

    fn weighted(weights: &[u32]) -> HttpRule {
        HttpRule {
            matches: vec![],
            filters: vec![],
            backends: weights
                .iter()
                .enumerate()
                .map(|(i, w)| WeightedBackend {
                    backend: ((b'a' + i as u8) as char).to_string(),
                    weight: *w,
                })
                .collect(),
            timeouts: HttpTimeouts::default(),
        }
    }

    fn sequence(rule: &HttpRule, from: u64, n: u64) -> String {
        (from..from + n)
            .map(|c| pick_backend(rule, c).map_or("-".to_owned(), |b| b.backend.clone()))
            .collect()
    }

    #[test]
    fn every_cycle_follows_the_weights() {
        let cases: &[&[u32]] = &[
            &[1],
            &[1, 1],
            &[3, 1],
            &[5, 1, 1],
            &[90, 10],
            &[1, 0, 1],
            &[0, 7],
            &[2, 3, 5, 7, 11],
            &[1000, 1, 1],
            &[u32::MAX, u32::MAX - 1],
        ];
        for weights in cases {
            let rule = weighted(weights);
            let divisor = weights.iter().fold(0u64, |g, w| gcd(g, u64::from(*w)));
            let total: u64 = weights.iter().map(|w| u64::from(*w) / divisor).sum();
            if total > 10_000 {
                // Too long to walk: check a window stays in range and never picks weight 0.
                let seq = sequence(&rule, 0, 1000);
                assert!(!seq.contains('-'));
                continue;
            }
            // Any window of one cycle, wherever it starts (also near the counter's end).
            for start in [0, 1, total / 2 + 3, 12_345, u64::MAX - 3 * total] {
                let seq = sequence(&rule, start, total);
                for (i, w) in weights.iter().enumerate() {
                    let name = (b'a' + i as u8) as char;
                    let count = seq.chars().filter(|c| *c == name).count() as u64;
                    assert_eq!(
                        count,
                        u64::from(*w) / divisor,
                        "{weights:?} from {start}: {seq}"
                    );
                }
            }
        }
    }

    #[test]
    fn picks_are_spread() {
        assert_eq!(sequence(&weighted(&[1, 1]), 0, 6), "ababab");
        assert_eq!(sequence(&weighted(&[50, 50]), 0, 4), "abab");
        assert_eq!(sequence(&weighted(&[5, 1, 1]), 0, 7), "aaabaca");
        assert_eq!(sequence(&weighted(&[1, 1, 1]), 0, 3).len(), 3);
        // 90/10: the rare backend is not bunched; 50 picks hold 5 of them, none adjacent.
        let seq = sequence(&weighted(&[90, 10]), 0, 50);
        assert_eq!(seq.matches('b').count(), 5, "{seq}");
        assert!(!seq.contains("bb"), "{seq}");
        // Three equal backends: every run of three has all three.
        let seq = sequence(&weighted(&[4, 4, 4]), 0, 30);
        for w in seq.as_bytes().windows(3).step_by(3) {
            let mut w = w.to_vec();
            w.sort_unstable();
            assert_eq!(w, b"abc", "{seq}");
        }
    }

    #[test]
    fn zero_weights_and_no_backends() {
        assert!(pick_backend(&weighted(&[]), 0).is_none());
        assert!(pick_backend(&weighted(&[0]), 5).is_none());
        assert!(pick_backend(&weighted(&[0, 0, 0]), 5).is_none());
        for c in 0..100 {
            assert_eq!(pick_backend(&weighted(&[0, 3, 0]), c).unwrap().backend, "b");
        }
        assert_eq!(
            pick_backend(&weighted(&[1]), u64::MAX).unwrap().backend,
            "a"
        );
    }

    #[test]
    fn stride_is_coprime() {
        for total in 1..500u64 {
            let k = stride(total);
            assert!(k >= 1);
            assert_eq!(gcd(k, total), 1, "total {total}");
        }
        assert_eq!(
            gcd(stride(u64::from(u32::MAX) * 16), u64::from(u32::MAX) * 16),
            1
        );
    }
}
