//! Compiling HTTP: an HTTP or HTTPS listener's `http` settings, and HTTPRoute rules: matches,
//! filters, backend references and timeouts. They are validated as Gateway API v1 validates
//! them (its schema and CEL rules), so that what a Kubernetes API server would refuse is
//! refused here too, at the line and column it was written; and a filter this version cannot
//! apply is refused, never skipped.
//!
//! How routes attach to listeners (`parentRefs`, `hostnames`) is shared with TLSRoutes, in
//! [`crate::routes`]. Precedence between rules is the proxy's business: rules stay in config
//! order.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::compile::{BackendRef, Compiler, pos};
use crate::diag::Pos;
use crate::model::{
    RawHeaderModifier, RawHttpFilter, RawHttpMatch, RawHttpRule, RawHttpTimeouts, RawListener,
    RawPathMatch, RawPathModifier, RawRedirect, RawRoute, RawUrlRewrite, RawValueMatch, S,
};
use crate::parse::{closest, parse_host_pattern};
use crate::types::*;

/// The methods a match may name (Gateway API `HTTPMethod`).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Every Gateway API filter type, each with the key that holds its settings.
const FILTERS: [(&str, &str); 8] = [
    ("RequestRedirect", "requestRedirect"),
    ("RequestHeaderModifier", "requestHeaderModifier"),
    ("ResponseHeaderModifier", "responseHeaderModifier"),
    ("URLRewrite", "urlRewrite"),
    ("RequestMirror", "requestMirror"),
    ("CORS", "cors"),
    ("ExternalAuth", "externalAuth"),
    ("ExtensionRef", "extensionRef"),
];

/// The path modifier types, each with the key that holds its value.
const PATH_MODIFIERS: [(&str, &str); 2] = [
    ("ReplaceFullPath", "replaceFullPath"),
    ("ReplacePrefixMatch", "replacePrefixMatch"),
];

/// Redirect statuses: Gateway API's core 301 and 302, and its extended 303, 307, 308.
const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Gateway API's limit on a path (match value or replacement).
const MAX_PATH: usize = 1024;

/// Gateway API's limit on a header name.
const MAX_HEADER_NAME: usize = 256;

const PATH_HINT: &str = "an `Exact` or `PathPrefix` path (and a replacement path) starts with `/` and holds URL path characters (letters, digits, `-._~!$&'()*+,;=:@/` or `%XX`), with no `//`, `.` or `..` segment, `%2F`, `?` or `#`";

const REGEX_HINT: &str = "regular expressions use the Rust `regex` syntax (as regex-lite implements it: no Unicode classes) and must match the whole value";

/// One rule that sends every request to `backend`: what `backend: NAME` (of a route, or of an
/// HTTP listener) stands for.
pub(crate) fn forward_all(backend: &str) -> HttpRule {
    HttpRule {
        matches: Vec::new(),
        filters: Vec::new(),
        backends: vec![WeightedBackend {
            backend: backend.to_owned(),
            weight: 1,
        }],
        timeouts: HttpTimeouts::default(),
    }
}

/// A header or a query parameter: what a value condition is about. Both have names in the
/// token syntax (Gateway API uses its header name type for both); header names compare
/// without case, so they are stored in lower case.
#[derive(Clone, Copy)]
enum Field {
    Header,
    Query,
}

impl Field {
    fn what(self) -> &'static str {
        match self {
            Field::Header => "header",
            Field::Query => "query parameter",
        }
    }

    /// Gateway API's limit on a value.
    fn max_value(self) -> usize {
        match self {
            Field::Header => 4096,
            Field::Query => 1024,
        }
    }

    /// Whether `v` can be sent or matched: a header value is printable ASCII, spaces and tabs
    /// only inside (what a proxy can put on the wire). A query value is compared as the client
    /// sent it (percent-encoded), so it holds nothing a raw query cannot: no space, control or
    /// non-ASCII character, no `#`, and no `&` (which separates parameters).
    fn value_ok(self, v: &str) -> bool {
        match self {
            Field::Header => {
                v.bytes()
                    .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
                    && v.trim_matches([' ', '\t']) == v
            }
            Field::Query => v
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'&'),
        }
    }

    fn value_hint(self) -> String {
        match self {
            Field::Header => format!(
                "write 1 to {} printable ASCII characters, no line breaks, no spaces at either end",
                self.max_value()
            ),
            Field::Query => format!(
                "query values are compared as sent, percent-encoded: write 1 to {} characters, with no space (`%20`), `&` or `#`",
                self.max_value()
            ),
        }
    }
}

impl Compiler {
    /// Errors reported so far: a part compiled without new ones is valid.
    fn errors(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == crate::diag::Severity::Error)
            .count()
    }

    /// A listener's `http` settings: the defaults, or what it sets, on HTTP and HTTPS
    /// listeners; `None` on others (where the key is an error).
    pub(crate) fn listener_http(
        &mut self,
        raw: &RawListener,
        protocol: Option<Protocol>,
    ) -> Option<HttpSettings> {
        let d = HttpSettings::default();
        if !matches!(protocol, Some(Protocol::Http | Protocol::Https)) {
            if let (Some(h), Some(_)) = (&raw.http, protocol) {
                self.error(pos(h), "`http` only applies to HTTP and HTTPS listeners")
                    .hint("add `protocol: HTTP` (or `HTTPS`) to the listener, or remove this key");
            }
            return None;
        }
        let Some(h) = &raw.http else {
            return Some(d);
        };
        let h = &h.value;
        let mut count = |v: &Option<S<i64>>, min, max, what, default: usize| {
            v.as_ref()
                .and_then(|v| self.int_in(v, min, max, what))
                .map_or(default, |v| v as usize)
        };
        let max_header_bytes = count(
            &h.max_header_bytes,
            1024,
            1_048_576,
            "maxHeaderBytes",
            d.max_header_bytes,
        );
        let max_headers = count(&h.max_headers, 1, 1000, "maxHeaders", d.max_headers);
        Some(HttpSettings {
            header_timeout: self.duration(
                &h.header_timeout,
                d.header_timeout,
                Duration::from_millis(1),
                "headerTimeout",
            ),
            max_header_bytes,
            max_headers,
            keepalive_timeout: self.duration(
                &h.keepalive_timeout,
                d.keepalive_timeout,
                Duration::from_millis(1),
                "keepaliveTimeout",
            ),
        })
    }

    /// An HTTPRoute's rules (`backend: NAME` is one rule sending every request to NAME).
    /// Every `backendRefs` name is recorded in `references`. `None` when the route has no
    /// rules to attach; a rule with an error is still returned, without the broken part (the
    /// config is refused anyway), so that its listeners are not also reported as empty.
    pub(crate) fn http_route<'a>(
        &mut self,
        r: &'a S<RawRoute>,
        references: &mut Vec<BackendRef<'a>>,
    ) -> Option<Arc<Vec<HttpRule>>> {
        let raw = &r.value;
        let name = raw.name.value.as_str();
        let rules = match (&raw.backend, &raw.rules) {
            (Some(b), None) => return Some(Arc::new(vec![forward_all(&b.value)])),
            (None, None) => {
                self.error(
                    pos(&raw.name),
                    format!("HTTPRoute `{name}` has no `backend` and no `rules`"),
                )
                .hint("send every request to one backend with `backend: NAME`, or list `rules:` with `matches` and `backendRefs`");
                return None;
            }
            (Some(_), Some(rules)) => {
                self.error(
                    pos(rules),
                    format!("HTTPRoute `{name}` has both `backend` and `rules`"),
                )
                .hint("`backend: NAME` is short for one rule sending every request to NAME: keep one of the two");
                rules
            }
            (None, Some(rules)) => rules,
        };
        if rules.value.is_empty() && raw.backend.is_none() {
            self.error(pos(rules), format!("HTTPRoute `{name}` has no rules"))
                .hint("add a rule with `backendRefs`, or replace `rules` with `backend: NAME`");
            return None;
        }
        let compiled = rules
            .value
            .iter()
            .enumerate()
            .map(|(i, rule)| self.http_rule(name, i + 1, rule, references))
            .collect();
        Some(Arc::new(compiled))
    }

    fn http_rule<'a>(
        &mut self,
        route: &str,
        index: usize,
        rule: &'a S<RawHttpRule>,
        references: &mut Vec<BackendRef<'a>>,
    ) -> HttpRule {
        let raw = &rule.value;
        let what = format!("rule {index} of HTTPRoute `{route}`");
        let matches = raw.matches.iter().map(|m| self.http_match(m)).collect();

        let mut filters = Vec::new();
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for f in &raw.filters {
            let kind = f.value.kind.value.as_str();
            if let Some(&first) = seen.get(kind) {
                self.error(
                    pos(&f.value.kind),
                    format!("{what} has two `{kind}` filters"),
                )
                .hint("each filter type may appear once in a rule (Gateway API): merge them")
                .note(first, "the first");
                continue;
            }
            seen.insert(kind, pos(&f.value.kind));
            filters.extend(self.http_filter(f));
        }
        let redirect = seen.get("RequestRedirect").copied();
        if let (Some(r), Some(w)) = (redirect, seen.get("URLRewrite").copied()) {
            let (first, second) = if (r.line, r.column) < (w.line, w.column) {
                (r, w)
            } else {
                (w, r)
            };
            self.error(second, format!("{what} both redirects and rewrites"))
                .hint("a `RequestRedirect` answers the request itself, so nothing is left to rewrite: keep one of the two filters, or split the rule")
                .note(first, "the other filter");
        }
        self.check_prefix_replacement(&what, raw);

        let mut backends = Vec::new();
        for b in &raw.backend_refs {
            let b = &b.value;
            references.push(BackendRef {
                owner: format!("HTTPRoute `{route}`"),
                backend: b.name.value.as_str(),
                pos: pos(&b.name),
            });
            if let Some(p) = &b.port {
                self.error(
                    pos(p),
                    "`port` is for Kubernetes Services; name a Gatehouse backend",
                )
                .hint("a Gatehouse backend lists its endpoints with their ports: remove `port`");
            }
            let weight = b
                .weight
                .as_ref()
                .and_then(|w| self.int_in(w, 0, 1_000_000, "weight"))
                .unwrap_or(1);
            backends.push(WeightedBackend {
                backend: b.name.value.clone(),
                weight,
            });
        }
        match (redirect, raw.backend_refs.first()) {
            (Some(r), Some(first)) => {
                self.error(pos(first), format!("{what} redirects, so it cannot have `backendRefs`"))
                    .hint("a `RequestRedirect` answers the request itself: remove `backendRefs`, or move the redirect to a rule of its own")
                    .note(r, "the redirect");
            }
            (Some(_), None) => {}
            (None, None) => {
                self.warn(pos(rule), format!("{what} has no `backendRefs`: requests it matches are answered with 500"))
                    .hint("add `backendRefs`, or a `RequestRedirect` filter (Gateway API answers 500 for a rule with nowhere to send a request)");
            }
            (None, Some(_)) => {
                if backends.iter().all(|b| b.weight == 0) {
                    self.warn(pos(rule), format!("every backendRef of {what} has weight 0: requests it matches are answered with 500"))
                        .hint("weight 0 takes no requests; give at least one backendRef a weight");
                }
            }
        }
        let timeouts = raw
            .timeouts
            .as_ref()
            .map(|t| self.http_timeouts(t))
            .unwrap_or_default();
        HttpRule {
            matches,
            filters,
            backends,
            timeouts,
        }
    }

    /// Gateway API (CEL on `HTTPRouteRule`): a `ReplacePrefixMatch` replaces what the rule's
    /// `PathPrefix` matched, so the rule needs exactly one match, with a `PathPrefix` path (a
    /// rule without matches has the default one, `PathPrefix /`).
    fn check_prefix_replacement(&mut self, what: &str, raw: &RawHttpRule) {
        let one_prefix = match raw.matches.as_slice() {
            [] => true,
            [m] => m
                .value
                .path
                .as_ref()
                .and_then(|p| p.value.kind.as_ref())
                .is_none_or(|k| k.value == "PathPrefix"),
            _ => false,
        };
        if one_prefix {
            return;
        }
        for f in &raw.filters {
            let f = &f.value;
            let modifier = match f.kind.value.as_str() {
                "RequestRedirect" => f
                    .request_redirect
                    .as_ref()
                    .and_then(|r| r.value.path.as_ref()),
                "URLRewrite" => f.url_rewrite.as_ref().and_then(|u| u.value.path.as_ref()),
                _ => None,
            };
            if let Some(m) = modifier
                && m.value.kind.value == "ReplacePrefixMatch"
            {
                self.error(
                    pos(&m.value.kind),
                    format!("`ReplacePrefixMatch` in {what} needs the rule to have exactly one match, with a `PathPrefix` path"),
                )
                .hint("it replaces the prefix that match found: give the rule a single `path: {type: PathPrefix, value: ...}` match, or use `ReplaceFullPath`");
            }
        }
    }

    fn http_match(&mut self, m: &S<RawHttpMatch>) -> HttpMatch {
        let raw = &m.value;
        let path = match &raw.path {
            None => PathMatch::Prefix("/".to_owned()),
            Some(p) => self.path_match(p),
        };
        let headers = self
            .value_matches(&raw.headers, Field::Header)
            .into_iter()
            .map(|(name, value)| HeaderMatch { name, value })
            .collect();
        let query = self
            .value_matches(&raw.query_params, Field::Query)
            .into_iter()
            .map(|(name, value)| QueryMatch { name, value })
            .collect();
        let method = raw.method.as_ref().and_then(|m| {
            if METHODS.contains(&m.value.as_str()) {
                return Some(m.value.clone());
            }
            let hint = match closest(&m.value, METHODS) {
                Some(best) => format!("did you mean `{best}`? (methods are upper case)"),
                None => format!("use one of {}", METHODS.join(", ")),
            };
            self.error(
                pos(m),
                format!("`{}` is not an HTTP method a route can match", m.value),
            )
            .hint(hint);
            None
        });
        HttpMatch {
            path,
            headers,
            query,
            method,
        }
    }

    /// A `path` condition; both keys default (`PathPrefix`, `/`).
    fn path_match(&mut self, p: &S<RawPathMatch>) -> PathMatch {
        let raw = &p.value;
        let value = raw.value.as_ref().map_or("/", |v| v.value.as_str());
        let at = raw.value.as_ref().map_or(pos(p), pos);
        let kind = raw.kind.as_ref().map_or("PathPrefix", |k| k.value.as_str());
        match kind {
            "Exact" | "PathPrefix" => {
                if let Some(problem) = path_problem(value) {
                    self.error(at, problem).hint(PATH_HINT);
                }
                if kind == "Exact" {
                    PathMatch::Exact(value.to_owned())
                } else {
                    PathMatch::Prefix(value.to_owned())
                }
            }
            "RegularExpression" => {
                self.regex(value, at);
                PathMatch::Regex(value.to_owned())
            }
            other => {
                let at = raw.kind.as_ref().map_or(at, pos);
                let kinds = ["Exact", "PathPrefix", "RegularExpression"];
                let hint = match closest(other, kinds) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("use {}", kinds.join(", ")),
                };
                self.error(at, format!("`{other}` is not a path match type"))
                    .hint(hint);
                PathMatch::Prefix("/".to_owned())
            }
        }
    }

    /// `headers` or `queryParams` conditions: names valid and each named once (Gateway API
    /// would silently use only the first), values valid for their type.
    fn value_matches(
        &mut self,
        list: &[S<RawValueMatch>],
        field: Field,
    ) -> Vec<(String, StringMatch)> {
        let what = field.what();
        let mut out = Vec::new();
        let mut seen: HashMap<String, Pos> = HashMap::new();
        for m in list {
            let raw = &m.value;
            let Some(name) = self.field_name(&raw.name, field) else {
                continue;
            };
            if let Some(&first) = seen.get(&name) {
                self.error(pos(&raw.name), format!("{what} `{name}` is matched twice in one match"))
                    .hint(format!("Gateway API would only use the first condition on a {what}: combine them (a `RegularExpression` can accept several values)"))
                    .note(first, "first matched");
                continue;
            }
            seen.insert(name.clone(), pos(&raw.name));
            let value = match raw.kind.as_ref().map_or("Exact", |k| k.value.as_str()) {
                "Exact" => {
                    self.field_value(&raw.value, field);
                    StringMatch::Exact(raw.value.value.clone())
                }
                "RegularExpression" => {
                    self.regex(&raw.value.value, pos(&raw.value));
                    StringMatch::Regex(raw.value.value.clone())
                }
                other => {
                    let kinds = ["Exact", "RegularExpression"];
                    let hint = match closest(other, kinds) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => "use `Exact` (the default) or `RegularExpression`".to_owned(),
                    };
                    let at = raw.kind.as_ref().map_or(pos(m), pos);
                    self.error(at, format!("`{other}` is not a {what} match type"))
                        .hint(hint);
                    continue;
                }
            };
            out.push((name, value));
        }
        out
    }

    /// A header or query parameter name (an HTTP token), lower case for headers.
    fn field_name(&mut self, n: &S<String>, field: Field) -> Option<String> {
        let v = &n.value;
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if v.is_empty() || v.len() > MAX_HEADER_NAME || !v.chars().all(token) {
            self.error(
                pos(n),
                format!("`{v}` is not a valid {} name", field.what()),
            )
            .hint("a name is 1 to 256 letters, digits or ``!#$%&'*+-.^_`|~`` (no spaces, no `:`)");
            return None;
        }
        Some(match field {
            Field::Header => v.to_ascii_lowercase(),
            Field::Query => v.clone(),
        })
    }

    /// A header or query parameter value to match or to set; errors say what is wrong.
    fn field_value(&mut self, v: &S<String>, field: Field) -> Option<String> {
        let text = &v.value;
        let what = field.what();
        let problem = if text.is_empty() {
            format!("the {what} value is empty")
        } else if text.len() > field.max_value() || !field.value_ok(text) {
            // Escaped, so that a line break in the value does not break the message.
            format!("`{}` is not a valid {what} value", text.escape_debug())
        } else {
            return Some(text.clone());
        };
        self.error(pos(v), problem).hint(field.value_hint());
        None
    }

    /// Checks a regular expression the proxy will compile (with regex-lite too).
    fn regex(&mut self, value: &str, at: Pos) {
        if let Err(e) = regex_lite::Regex::new(value) {
            self.error(
                at,
                format!("`{value}` is not a valid regular expression: {e}"),
            )
            .hint(REGEX_HINT);
        }
    }

    fn http_filter(&mut self, f: &S<RawHttpFilter>) -> Option<HttpFilter> {
        let raw = &f.value;
        let kind = raw.kind.value.as_str();
        let at = pos(&raw.kind);
        let present: [Option<Pos>; 8] = [
            raw.request_redirect.as_ref().map(pos),
            raw.request_header_modifier.as_ref().map(pos),
            raw.response_header_modifier.as_ref().map(pos),
            raw.url_rewrite.as_ref().map(pos),
            raw.request_mirror.as_ref().map(pos),
            raw.cors.as_ref().map(pos),
            raw.external_auth.as_ref().map(pos),
            raw.extension_ref.as_ref().map(pos),
        ];
        let Some(index) = FILTERS.iter().position(|(t, _)| *t == kind) else {
            let hint = match closest(kind, FILTERS.map(|(t, _)| t)) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "use `RequestRedirect`, `RequestHeaderModifier`, `ResponseHeaderModifier` or `URLRewrite`".to_owned(),
            };
            self.error(at, format!("`{kind}` is not an HTTPRoute filter type"))
                .hint(hint);
            return None;
        };
        if matches!(
            kind,
            "RequestMirror" | "CORS" | "ExternalAuth" | "ExtensionRef"
        ) {
            self.error(at, format!("filter type `{kind}` is not supported by this version"))
                .hint("this version applies `RequestRedirect`, `RequestHeaderModifier`, `ResponseHeaderModifier` and `URLRewrite`; a filter it cannot apply is refused rather than skipped");
            return None;
        }
        let key = FILTERS[index].1;
        for (i, p) in present.iter().enumerate() {
            if let Some(p) = p
                && i != index
            {
                self.error(
                    *p,
                    format!("`{}` does not belong in a `{kind}` filter", FILTERS[i].1),
                )
                .hint(format!(
                    "a filter's settings go under the key of its type: `{key}` here"
                ));
            }
        }
        let filter = match kind {
            "RequestRedirect" => raw
                .request_redirect
                .as_ref()
                .map(|r| HttpFilter::RequestRedirect(self.redirect(r))),
            "RequestHeaderModifier" => raw
                .request_header_modifier
                .as_ref()
                .map(|m| HttpFilter::RequestHeaderModifier(self.header_modifier(m))),
            "ResponseHeaderModifier" => raw
                .response_header_modifier
                .as_ref()
                .map(|m| HttpFilter::ResponseHeaderModifier(self.header_modifier(m))),
            _ => raw
                .url_rewrite
                .as_ref()
                .map(|u| HttpFilter::UrlRewrite(self.url_rewrite(u))),
        };
        if filter.is_none() {
            let example = match kind {
                "RequestRedirect" => "`requestRedirect: {scheme: https, statusCode: 301}`",
                "URLRewrite" => {
                    "`urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}`"
                }
                _ => "`set`, `add` or `remove` under it",
            };
            self.error(at, format!("a `{kind}` filter needs its `{key}` settings"))
                .hint(format!("add `{key}:`, e.g. {example}"));
        }
        filter
    }

    fn redirect(&mut self, r: &S<RawRedirect>) -> Redirect {
        let raw = &r.value;
        let scheme = raw.scheme.as_ref().and_then(|s| match s.value.as_str() {
            "http" | "https" => Some(s.value.clone()),
            other => {
                let hint = match closest(other, ["http", "https"]) {
                    Some(best) => format!("did you mean `{best}`? (schemes are lower case)"),
                    None => "use `http` or `https`".to_owned(),
                };
                self.error(pos(s), format!("`{other}` is not a redirect scheme"))
                    .hint(hint);
                None
            }
        });
        let status = match &raw.status_code {
            None => 302,
            Some(c) => match u16::try_from(c.value) {
                Ok(s) if REDIRECT_STATUSES.contains(&s) => s,
                _ => {
                    self.error(pos(c), format!("`{}` is not a redirect status code", c.value))
                        .hint("use 301 (permanent) or 302 (temporary, the default); 303, 307 and 308 work too");
                    302
                }
            },
        };
        if raw.scheme.is_none()
            && raw.hostname.is_none()
            && raw.port.is_none()
            && raw.path.is_none()
        {
            self.warn(
                pos(r),
                "this redirect sends clients back to the URL they asked for",
            )
            .hint("set at least one of `scheme`, `hostname`, `port` or `path`");
        }
        Redirect {
            scheme,
            hostname: raw.hostname.as_ref().and_then(|h| self.precise_hostname(h)),
            port: raw.port.as_ref().and_then(|p| self.port(p, false)),
            path: raw.path.as_ref().and_then(|p| self.path_modifier(p)),
            status,
        }
    }

    fn url_rewrite(&mut self, u: &S<RawUrlRewrite>) -> UrlRewrite {
        let raw = &u.value;
        UrlRewrite {
            hostname: raw.hostname.as_ref().and_then(|h| self.precise_hostname(h)),
            path: raw.path.as_ref().and_then(|p| self.path_modifier(p)),
        }
    }

    /// A redirect's or rewrite's host: one name (no wildcard), or an IPv4 address (Gateway API
    /// `PreciseHostname`). Lower case.
    fn precise_hostname(&mut self, h: &S<String>) -> Option<String> {
        if let Ok(ip) = h.value.parse::<Ipv4Addr>() {
            return Some(ip.to_string());
        }
        match parse_host_pattern(&h.value) {
            Ok(HostPattern::Exact(name)) => Some(name),
            Ok(HostPattern::Wildcard(_)) => {
                self.error(
                    pos(h),
                    format!("`{}` is a wildcard, not a host name", h.value),
                )
                .hint("a redirect or rewrite names one host, e.g. `app.example.com`");
                None
            }
            Err(msg) => {
                self.error(pos(h), msg)
                    .hint("write one host name, e.g. `app.example.com`");
                None
            }
        }
    }

    /// A `path` of a redirect or rewrite: its `type` and the one value key that type takes.
    fn path_modifier(&mut self, m: &S<RawPathModifier>) -> Option<PathModifier> {
        let raw = &m.value;
        let kind = raw.kind.value.as_str();
        let Some(index) = PATH_MODIFIERS.iter().position(|(t, _)| *t == kind) else {
            let hint = match closest(kind, PATH_MODIFIERS.map(|(t, _)| t)) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "use `ReplaceFullPath` or `ReplacePrefixMatch`".to_owned(),
            };
            self.error(
                pos(&raw.kind),
                format!("`{kind}` is not a path modifier type"),
            )
            .hint(hint);
            return None;
        };
        let values = [&raw.replace_full_path, &raw.replace_prefix_match];
        let key = PATH_MODIFIERS[index].1;
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v
                && i != index
            {
                let (other_type, other_key) = PATH_MODIFIERS[i];
                self.error(
                    pos(v),
                    format!("`{other_key}` does not go with `type: {kind}`"),
                )
                .hint(format!(
                    "set `{key}` instead, or change `type` to `{other_type}`"
                ));
            }
        }
        let Some(v) = values[index] else {
            self.error(pos(&raw.kind), format!("`type: {kind}` needs `{key}`"))
                .hint(format!("add the new path, e.g. `{key}: /app`"));
            return None;
        };
        let prefix = kind == "ReplacePrefixMatch";
        // Gateway API: an empty prefix replacement drops the matched prefix.
        if !(prefix && v.value.is_empty())
            && let Some(problem) = path_problem(&v.value)
        {
            self.error(pos(v), problem).hint(PATH_HINT);
        }
        Some(if prefix {
            PathModifier::ReplacePrefixMatch(v.value.clone())
        } else {
            PathModifier::ReplaceFullPath(v.value.clone())
        })
    }

    /// A header modifier: names valid (stored lower case), values sendable, and each name in
    /// one action only (Gateway API: "only one action for a given header name").
    fn header_modifier(&mut self, m: &S<RawHeaderModifier>) -> HeaderModifier {
        let raw = &m.value;
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut out = HeaderModifier::default();
        for h in &raw.set {
            if let Some(pair) = self.modified_header(&h.value.name, Some(&h.value.value), &mut seen)
            {
                out.set.push(pair);
            }
        }
        for h in &raw.add {
            if let Some(pair) = self.modified_header(&h.value.name, Some(&h.value.value), &mut seen)
            {
                out.add.push(pair);
            }
        }
        for n in &raw.remove {
            if let Some((name, _)) = self.modified_header(n, None, &mut seen) {
                out.remove.push(name);
            }
        }
        out
    }

    /// One `set`, `add` (with a value) or `remove` (without) entry of a header modifier.
    fn modified_header(
        &mut self,
        name: &S<String>,
        value: Option<&S<String>>,
        seen: &mut HashMap<String, Pos>,
    ) -> Option<(String, String)> {
        let n = self.field_name(name, Field::Header)?;
        if let Some(&first) = seen.get(&n) {
            self.error(pos(name), format!("header `{n}` is changed twice by one filter"))
                .hint("Gateway API allows one action per header name in a filter: keep one of `set`, `add` or `remove` for it (several values go in one, comma-separated)")
                .note(first, "first changed");
            return None;
        }
        seen.insert(n.clone(), pos(name));
        let v = match value {
            Some(v) => self.field_value(v, Field::Header)?,
            None => String::new(),
        };
        Some((n, v))
    }

    /// `timeouts`: `0s` turns one off (Gateway API); `backendRequest` may not exceed a
    /// `request` that is on.
    fn http_timeouts(&mut self, t: &S<RawHttpTimeouts>) -> HttpTimeouts {
        let raw = &t.value;
        let before = self.errors();
        let request = self.duration(&raw.request, Duration::ZERO, Duration::ZERO, "request");
        let backend = self.duration(
            &raw.backend_request,
            Duration::ZERO,
            Duration::ZERO,
            "backendRequest",
        );
        if self.errors() == before
            && !request.is_zero()
            && backend > request
            && let Some(b) = &raw.backend_request
        {
            self.error(
                pos(b),
                format!(
                    "`backendRequest` ({}) is longer than `request` ({})",
                    format_duration(backend),
                    format_duration(request)
                ),
            )
            .hint("`request` covers the whole exchange, every backend attempt included: make `backendRequest` at most `request` (`0s` turns a timeout off)");
        }
        let on = |d: Duration| (!d.is_zero()).then_some(d);
        HttpTimeouts {
            request: on(request),
            backend_request: on(backend),
        }
    }
}

/// What is wrong with an `Exact` or `PathPrefix` path, or a replacement path, by Gateway API's
/// rules (its CEL validation of `HTTPPathMatch`); `None` when nothing is.
fn path_problem(value: &str) -> Option<String> {
    let problem = if !value.starts_with('/') {
        "does not start with `/`"
    } else if value.len() > MAX_PATH {
        "is longer than 1024 characters"
    } else if value.contains('?') {
        "contains `?`: a query is not part of the path (match it with `queryParams`)"
    } else if value.contains('#') {
        "contains `#`: a fragment is never sent to a server"
    } else if value.contains("//") {
        "contains `//`"
    } else if value.contains("/./")
        || value.contains("/../")
        || value.ends_with("/.")
        || value.ends_with("/..")
    {
        "contains a `.` or `..` segment"
    } else if value.contains("%2f") || value.contains("%2F") {
        "contains an encoded `/` (`%2F`)"
    } else if let Some(c) = value
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "-/._~!$&'()*+,;=:@%".contains(c)))
    {
        return Some(format!(
            "the path `{value}` contains `{}`, which a URL path holds only percent-encoded",
            c.escape_default()
        ));
    } else if !percent_escapes_ok(value) {
        "has a `%` that does not start an escape such as `%20`"
    } else {
        return None;
    };
    Some(format!("the path `{value}` {problem}"))
}

/// Every `%` starts `%XX` with two hex digits.
fn percent_escapes_ok(value: &str) -> bool {
    let b = value.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_gateway_api_rules() {
        for good in [
            "/",
            "/api",
            "/api/",
            "/a-b_c.d~e",
            "/%20x",
            "/a:b@c",
            "/v1/*",
        ] {
            assert_eq!(path_problem(good), None, "{good}");
        }
        for (bad, problem) in [
            ("api", "does not start with `/`"),
            ("/a?b=1", "contains `?`"),
            ("/a#top", "contains `#`"),
            ("//a", "contains `//`"),
            ("/a/./b", "`.` or `..` segment"),
            ("/a/..", "`.` or `..` segment"),
            ("/a%2Fb", "encoded `/`"),
            ("/a b", "contains ` `"),
            ("/a%zz", "does not start an escape"),
            ("/a%2", "does not start an escape"),
        ] {
            let got = path_problem(bad).unwrap_or_default();
            assert!(got.contains(problem), "{bad}: {got}");
        }
        assert!(path_problem(&format!("/{}", "a".repeat(1024))).is_some());
    }

    #[test]
    fn header_values() {
        assert!(Field::Header.value_ok("text/html; q=0.9"));
        assert!(!Field::Header.value_ok(" x"));
        assert!(!Field::Header.value_ok("a\r\nb"));
        assert!(!Field::Header.value_ok("é"));
        assert!(Field::Query.value_ok("a%20b+c=d/e?f"));
        for bad in ["a b", "é", "a&b", "a#b", "a\nb"] {
            assert!(!Field::Query.value_ok(bad), "{bad:?}");
        }
    }
}
