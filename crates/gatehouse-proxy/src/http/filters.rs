//! Gateway API HTTPRoute filters as pure functions: the `Location` of a `RequestRedirect`,
//! the path of a redirect or `URLRewrite`, and header changes. No IO; nothing here panics on
//! any input.

use gatehouse_config::{HeaderModifier, PathModifier, Redirect};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The `Location` of a `RequestRedirect` (Gateway API `HTTPRequestRedirectFilter`).
///
/// Each part the filter leaves unset keeps the request's: `req_scheme` (`http` or `https`),
/// `req_host` (without port; an IPv6 address is bracketed if it is not already), `path` (raw,
/// as received), `query` (raw; kept as it is, an empty one dropped). `prefix` is the
/// `PathPrefix` the rule matched (see [`rewrite_path`]).
///
/// The port: the filter's if it has one; else, when the filter changes the scheme, that
/// scheme's well-known port (80 for `http`, 443 for `https`; another scheme keeps the
/// request's port); else the request's, `req_port` (the port the client addressed, from its
/// `Host` header, or the listener's). The port is left out when it is the scheme's default:
/// `http` and 80, `https` and 443, or none at all.
pub fn redirect_location(
    r: &Redirect,
    req_scheme: &str,
    req_host: &str,
    req_port: Option<u16>,
    path: &str,
    query: Option<&str>,
    prefix: Option<&str>,
) -> String {
    let scheme = r.scheme.as_deref().unwrap_or(req_scheme);
    let host = r.hostname.as_deref().unwrap_or(req_host);
    let port = match (r.port, r.scheme.as_deref()) {
        (Some(p), _) => Some(p),
        (None, Some(s)) => default_port(s).or(req_port),
        (None, None) => req_port,
    };
    let path = match &r.path {
        Some(m) => rewrite_path(m, path, prefix),
        None => path.to_owned(),
    };

    let mut out = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
    out.push_str(scheme);
    out.push_str("://");
    if host.contains(':') && !host.starts_with('[') {
        out.push('[');
        out.push_str(host);
        out.push(']');
    } else {
        out.push_str(host);
    }
    if let Some(p) = port
        && default_port(scheme) != Some(p)
    {
        out.push(':');
        out.push_str(&p.to_string());
    }
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&path);
    if let Some(q) = query
        && !q.is_empty()
    {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The well-known port of a scheme, if it has one.
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

/// The path after a path modifier (shared by `RequestRedirect` and `URLRewrite`).
///
/// `ReplaceFullPath` gives its value (`/` if empty). `ReplacePrefixMatch` replaces the part
/// of `path` that the rule's `PathPrefix` (`prefix`, as [`super::router::Matched`] reports
/// it) matched, element-wise and ignoring trailing slashes on both the prefix and the
/// replacement, as Gateway API's table says. With prefix `/foo`: `/foo/bar` becomes
/// `/xyz/bar` for a replacement `/xyz` or `/xyz/`, and `/bar` for an empty one or `/`;
/// `/foo/` becomes `/xyz/`; `/foo` becomes `/xyz`, or `/` for an empty replacement or `/`.
/// Prefix `/` puts the replacement in front: `/baz` becomes `/bar/baz`. The result always
/// starts with `/`. Without a prefix (an `Exact` or regular expression match, which the
/// config compiler refuses with `ReplacePrefixMatch`), or when `path` does not start with
/// it, the path is kept.
pub fn rewrite_path(m: &PathModifier, path: &str, prefix: Option<&str>) -> String {
    match m {
        PathModifier::ReplaceFullPath(p) if p.is_empty() => "/".to_owned(),
        PathModifier::ReplaceFullPath(p) => p.clone(),
        PathModifier::ReplacePrefixMatch(replacement) => {
            let Some(prefix) = prefix else {
                return path.to_owned();
            };
            let prefix = prefix.trim_end_matches('/');
            let Some(rest) = path.strip_prefix(prefix) else {
                return path.to_owned();
            };
            if !(prefix.is_empty() || rest.is_empty() || rest.starts_with('/')) {
                return path.to_owned();
            }
            let head = replacement.trim_end_matches('/');
            let mut out = String::with_capacity(head.len() + rest.len() + 1);
            out.push_str(head);
            out.push_str(rest);
            if !out.starts_with('/') {
                out.insert(0, '/');
            }
            out
        }
    }
}

/// Applies a `RequestHeaderModifier` or `ResponseHeaderModifier`: `set` replaces every value
/// of a header, `add` appends a value (keeping those there), `remove` deletes every value.
/// Names are matched case-insensitively. A name or value that is not valid in HTTP (the
/// config compiler refuses those) is skipped.
pub fn apply_header_modifier(m: &HeaderModifier, headers: &mut HeaderMap) {
    for (name, value) in &m.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.insert(n, v);
        }
    }
    for (name, value) in &m.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    for name in &m.remove {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(p: &str) -> PathModifier {
        PathModifier::ReplaceFullPath(p.to_owned())
    }

    fn prefix(p: &str) -> PathModifier {
        PathModifier::ReplacePrefixMatch(p.to_owned())
    }

    /// Gateway API `HTTPPathModifier.replacePrefixMatch` table, and more.
    #[test]
    fn replace_prefix_match() {
        // (request path, prefix match, replacement, result)
        let cases = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
            // The brief's examples and prefix `/`.
            ("/foo/baz", "/foo", "/bar", "/bar/baz"),
            ("/foo/baz", "/foo", "/", "/baz"),
            ("/baz", "/", "/bar", "/bar/baz"),
            ("/baz/x", "/", "/bar/", "/bar/baz/x"),
            ("/", "/", "/bar", "/bar/"),
            ("/baz", "/", "/", "/baz"),
            ("/", "/", "/", "/"),
            // Deeper prefixes and replacements.
            ("/a/b/c/d", "/a/b", "/x/y", "/x/y/c/d"),
            ("/api/v1/users", "/api/v1", "/v1", "/v1/users"),
            // Conformance HTTPRouteRewritePath / HTTPRouteRedirectPath.
            ("/prefix/one/two", "/prefix/one", "/one", "/one/two"),
            (
                "/original-prefix/lemon",
                "/original-prefix",
                "/replacement-prefix",
                "/replacement-prefix/lemon",
            ),
            (
                "/path-and-host",
                "/path-and-host",
                "/replacement-prefix",
                "/replacement-prefix",
            ),
            (
                "/prefix/rewrite-path-and-modify-headers/one",
                "/prefix/rewrite-path-and-modify-headers",
                "/prefix",
                "/prefix/one",
            ),
            // Percent-encoding is kept as received.
            ("/foo/a%2Fb", "/foo", "/x", "/x/a%2Fb"),
            // A replacement without a leading slash still gives an absolute path.
            ("/foo/bar", "/foo", "xyz", "/xyz/bar"),
            // Not a prefix of the path (cannot come from the router): unchanged.
            ("/other", "/foo", "/xyz", "/other"),
            ("/foobar", "/foo", "/xyz", "/foobar"),
        ];
        for (path, p, replacement, want) in cases {
            assert_eq!(
                rewrite_path(&prefix(replacement), path, Some(p)),
                want,
                "{path} with prefix {p} replaced by {replacement:?}"
            );
        }
        assert_eq!(rewrite_path(&prefix("/xyz"), "/foo/bar", None), "/foo/bar");
    }

    #[test]
    fn replace_full_path() {
        let cases = [
            ("/full/one/two", "/one", "/one"),
            (
                "/full/rewrite-path-and-modify-headers/test",
                "/test",
                "/test",
            ),
            ("/anything", "/", "/"),
            ("/anything", "", "/"),
            ("/a", "/b/", "/b/"),
        ];
        for (path, value, want) in cases {
            assert_eq!(rewrite_path(&full(value), path, Some("/full")), want);
            assert_eq!(rewrite_path(&full(value), path, None), want);
        }
    }

    fn redirect(
        scheme: Option<&str>,
        hostname: Option<&str>,
        port: Option<u16>,
        path: Option<PathModifier>,
    ) -> Redirect {
        Redirect {
            scheme: scheme.map(str::to_owned),
            hostname: hostname.map(str::to_owned),
            port,
            path,
            status: 302,
        }
    }

    /// Request scheme, request port, redirect scheme, redirect port, expected location.
    type PortCase<'a> = (&'a str, Option<u16>, Option<&'a str>, Option<u16>, &'a str);

    /// Redirect, request path, request query, matched prefix, expected location.
    type PathCase<'a> = (Redirect, &'a str, Option<&'a str>, Option<&'a str>, &'a str);

    /// Conformance `HTTPRouteRedirectPortAndScheme`: a redirect to `example.org` from
    /// listeners on ports 80, 8080 (HTTP) and 443 (HTTPS).
    #[test]
    fn redirect_port_and_scheme() {
        let cases: &[PortCase<'_>] = &[
            // HTTP on 80 (the client sent no port).
            ("http", None, None, None, "http://example.org/p"),
            ("http", None, None, Some(80), "http://example.org/p"),
            ("http", None, None, Some(8080), "http://example.org:8080/p"),
            ("http", None, Some("https"), None, "https://example.org/p"),
            (
                "http",
                None,
                Some("https"),
                Some(443),
                "https://example.org/p",
            ),
            (
                "http",
                None,
                Some("https"),
                Some(8443),
                "https://example.org:8443/p",
            ),
            // HTTP on 80, the client naming the port.
            ("http", Some(80), None, None, "http://example.org/p"),
            // HTTP on 8080.
            ("http", Some(8080), None, None, "http://example.org:8080/p"),
            ("http", Some(8080), None, Some(80), "http://example.org/p"),
            (
                "http",
                Some(8080),
                Some("https"),
                None,
                "https://example.org/p",
            ),
            // HTTPS on 443.
            ("https", None, None, None, "https://example.org/p"),
            ("https", Some(443), None, Some(443), "https://example.org/p"),
            (
                "https",
                None,
                None,
                Some(8443),
                "https://example.org:8443/p",
            ),
            ("https", None, Some("http"), None, "http://example.org/p"),
            (
                "https",
                None,
                Some("http"),
                Some(80),
                "http://example.org/p",
            ),
            (
                "https",
                None,
                Some("http"),
                Some(8080),
                "http://example.org:8080/p",
            ),
            // HTTPS on 8443: keeping the scheme keeps the port; changing it does not.
            (
                "https",
                Some(8443),
                None,
                None,
                "https://example.org:8443/p",
            ),
            (
                "https",
                Some(8443),
                Some("http"),
                None,
                "http://example.org/p",
            ),
            (
                "https",
                Some(8443),
                Some("https"),
                None,
                "https://example.org/p",
            ),
        ];
        for (req_scheme, req_port, scheme, port, want) in cases {
            let r = redirect(*scheme, Some("example.org"), *port, None);
            let got = redirect_location(&r, req_scheme, "gw.local", *req_port, "/p", None, None);
            assert_eq!(
                got, *want,
                "{req_scheme} port {req_port:?} -> scheme {scheme:?} port {port:?}"
            );
        }
    }

    /// Conformance `HTTPRouteRedirectPath` and `HTTPRouteRedirectHostAndStatus`, and the
    /// query.
    #[test]
    fn redirect_host_path_and_query() {
        let cases: &[PathCase<'_>] = &[
            (
                redirect(None, None, None, Some(prefix("/replacement-prefix"))),
                "/original-prefix/lemon",
                None,
                Some("/original-prefix"),
                "http://gw.local/replacement-prefix/lemon",
            ),
            (
                redirect(None, None, None, Some(full("/full-path-replacement"))),
                "/full/path/original",
                None,
                Some("/full"),
                "http://gw.local/full-path-replacement",
            ),
            (
                redirect(
                    None,
                    Some("example.org"),
                    None,
                    Some(prefix("/replacement-prefix")),
                ),
                "/path-and-host",
                None,
                Some("/path-and-host"),
                "http://example.org/replacement-prefix",
            ),
            (
                redirect(
                    None,
                    Some("example.org"),
                    None,
                    Some(full("/replacement-full")),
                ),
                "/full-path-and-host",
                None,
                None,
                "http://example.org/replacement-full",
            ),
            (
                redirect(None, Some("example.org"), None, None),
                "/hostname-redirect",
                None,
                Some("/hostname-redirect"),
                "http://example.org/hostname-redirect",
            ),
            // The query is kept, raw; an empty one is dropped.
            (
                redirect(Some("https"), None, None, None),
                "/a%20b",
                Some("x=1&y=%2F"),
                Some("/"),
                "https://gw.local/a%20b?x=1&y=%2F",
            ),
            (
                redirect(None, None, None, Some(prefix("/new"))),
                "/old/x",
                Some("q"),
                Some("/old"),
                "http://gw.local/new/x?q",
            ),
            (
                redirect(None, None, None, None),
                "/x",
                Some(""),
                None,
                "http://gw.local/x",
            ),
        ];
        for (r, path, query, p, want) in cases {
            let got = redirect_location(r, "http", "gw.local", None, path, *query, *p);
            assert_eq!(got, *want, "{r:?} {path} {query:?}");
        }
    }

    #[test]
    fn redirect_host_forms() {
        let r = redirect(Some("https"), None, None, None);
        assert_eq!(
            redirect_location(&r, "http", "::1", Some(8080), "/", None, None),
            "https://[::1]/"
        );
        let r = redirect(None, None, None, None);
        assert_eq!(
            redirect_location(&r, "http", "[::1]", Some(8080), "/x", None, None),
            "http://[::1]:8080/x"
        );
        assert_eq!(
            redirect_location(&r, "http", "10.0.0.1", Some(80), "/", None, None),
            "http://10.0.0.1/"
        );
        // A request target without a leading slash (`*`) still gives a valid location.
        assert_eq!(
            redirect_location(&r, "http", "h", None, "*", None, None),
            "http://h/*"
        );
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Conformance `HTTPRouteRequestHeaderModifier` / the header part of
    /// `HTTPRouteRewritePath`.
    #[test]
    fn header_modifier() {
        let m = HeaderModifier {
            set: pairs(&[("x-header-set", "set-overwrites-values")]),
            add: pairs(&[
                ("x-header-add", "header-val-1"),
                ("x-header-add-append", "header-val-2"),
            ]),
            remove: vec!["x-header-remove".to_owned()],
        };
        let mut h = map(&[
            ("X-Header-Remove", "remove-val"),
            ("X-Header-Add-Append", "append-val-1"),
            ("X-Header-Set", "set-val"),
            ("X-Header-Set", "set-val-2"),
            ("Other", "kept"),
        ]);
        apply_header_modifier(&m, &mut h);
        assert_eq!(values(&h, "x-header-set"), ["set-overwrites-values"]);
        assert_eq!(values(&h, "x-header-add"), ["header-val-1"]);
        assert_eq!(
            values(&h, "x-header-add-append"),
            ["append-val-1", "header-val-2"]
        );
        assert!(h.get("x-header-remove").is_none());
        assert_eq!(values(&h, "other"), ["kept"]);
        assert_eq!(h.len(), 5);
    }

    #[test]
    fn header_modifier_on_absent_headers_and_odd_input() {
        let m = HeaderModifier {
            set: pairs(&[("X-Set", "a"), ("bad name", "x"), ("x-bad-value", "a\nb")]),
            add: pairs(&[
                ("x-add", "1"),
                ("x-add", "2"),
                ("", "x"),
                ("x-bad-add", "\r"),
            ]),
            remove: vec![
                "x-absent".to_owned(),
                "Bad Name".to_owned(),
                "X-Remove".to_owned(),
            ],
        };
        let mut h = map(&[("x-remove", "1"), ("x-remove", "2")]);
        apply_header_modifier(&m, &mut h);
        assert_eq!(values(&h, "x-set"), ["a"]);
        assert_eq!(values(&h, "x-add"), ["1", "2"]);
        assert!(h.get("x-remove").is_none());
        assert!(h.get("x-bad-value").is_none());
        assert!(h.get("x-bad-add").is_none());
        assert_eq!(h.len(), 3);

        let mut empty = HeaderMap::new();
        apply_header_modifier(&HeaderModifier::default(), &mut empty);
        assert!(empty.is_empty());
    }
}
