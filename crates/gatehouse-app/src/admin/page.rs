//! The status page: the [`StatusDoc`] as one HTML page, rendered on the server with a small
//! inline stylesheet and no script; it reloads itself every 5 seconds
//! (`<meta http-equiv="refresh">`).

use std::fmt::Write as _;

use super::StatusDoc;
use super::client::{ago, short_time};

/// Text made safe for HTML (element content and quoted attributes).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2329; background: #fafbfc; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.6em 0 .4em; }
.meta { color: #57606a; }
table { border-collapse: collapse; background: #fff; min-width: 40em; }
th, td { text-align: left; padding: .3em .8em; border-bottom: 1px solid #d8dee4; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
td.num { text-align: right; }
code { font: 13px ui-monospace, monospace; }
.badge { display: inline-block; padding: 0 .5em; border-radius: .8em; font-weight: 600; }
.up, .master, .ok, .ready { background: #d3f5dc; color: #116329; }
.down, .fault, .failed, .ERROR, .not-ready { background: #ffd8d3; color: #a40e26; }
.ejected, .backup, .init, .WARN { background: #fff1c2; color: #7a4d00; }
.none { color: #57606a; }
.when { white-space: nowrap; }
";

/// A badge whose class is its text (`up`, `down`, `master`...).
fn badge(text: &str) -> String {
    let class: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

/// `12:03:04Z (5m ago)`, with the full time as a tooltip.
fn when(t: &str, now: &str) -> String {
    if t.is_empty() {
        return "<span class=\"none\">-</span>".to_owned();
    }
    format!(
        "<span class=\"when\" title=\"{}\">{} ({})</span>",
        esc(t),
        esc(&short_time(t)),
        esc(&ago(t, now))
    )
}

fn table(out: &mut String, head: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        let _ = writeln!(out, "<p class=\"none\">{}</p>", esc(empty));
        return;
    }
    out.push_str("<table>\n<tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The page.
pub(crate) fn render(doc: &StatusDoc) -> String {
    let now = &doc.now;
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"refresh\" content=\"5\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Gatehouse status</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    let _ = writeln!(
        out,
        "<h1>Gatehouse {} {}</h1>",
        esc(&doc.version),
        badge(if doc.ready { "ready" } else { "not ready" })
    );
    let mut meta = format!("Running since {}", when(&doc.started, now));
    if let Some(file) = &doc.config.file {
        let _ = write!(meta, " · config <code>{}</code>", esc(file));
    }
    if let Some(loaded) = &doc.config.loaded {
        let _ = write!(meta, " loaded {}", when(loaded, now));
    }
    if let Some(r) = &doc.config.last_reload {
        let _ = write!(
            meta,
            " · last reload ({}) {} {}",
            esc(&r.trigger),
            when(&r.time, now),
            badge(&r.outcome)
        );
        if let Some(e) = &r.error {
            let _ = write!(meta, " <code>{}</code>", esc(e));
        }
    }
    let _ = writeln!(out, "<p class=\"meta\">{meta}</p>");

    out.push_str("<h2>Virtual addresses</h2>\n");
    let rows: Vec<Vec<String>> = doc
        .vips
        .iter()
        .map(|v| {
            vec![
                esc(&v.instance),
                format!("<code>{}</code>", esc(&v.addresses.join(", "))),
                format!("<strong>{}</strong>", esc(&v.holder)),
                badge(&v.state),
                format!("{} (configured {})", v.priority, v.configured_priority),
                when(&v.since, now),
                esc(&v.reason),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "Instance",
            "Addresses",
            "Held by",
            "State",
            "Priority",
            "Since",
            "Why",
        ],
        &rows,
        "No VRRP instances in the config.",
    );

    out.push_str("<h2>Listeners</h2>\n");
    let rows: Vec<Vec<String>> = doc
        .listeners
        .iter()
        .map(|l| {
            vec![
                esc(&l.name),
                esc(&l.protocol),
                format!("<code>{}</code>", esc(&l.address)),
                format!("{}", l.open_connections),
                esc(&l.backends.join(", ")),
            ]
        })
        .collect();
    table(
        &mut out,
        &["Listener", "Protocol", "Address", "Open", "Backends"],
        &rows,
        "No listeners.",
    );

    out.push_str("<h2>Routes</h2>\n");
    let rows: Vec<Vec<String>> = doc
        .routes
        .iter()
        .map(|r| {
            vec![
                esc(&r.listener),
                esc(&r.route),
                esc(&r.hosts.join(", ")),
                format!("<code>{}</code>", esc(&r.rule)),
            ]
        })
        .collect();
    table(
        &mut out,
        &["Listener", "Route", "Hosts", "Rule"],
        &rows,
        "No routes.",
    );

    out.push_str("<h2>Backends</h2>\n");
    let mut rows = Vec::new();
    for b in &doc.backends {
        if b.endpoints.is_empty() {
            rows.push(vec![
                esc(&b.name),
                "<span class=\"none\">no endpoint resolved</span>".to_owned(),
                badge("down"),
                String::new(),
                String::new(),
                esc(&b.health_check),
            ]);
        }
        for e in &b.endpoints {
            let target = if e.target == e.address {
                format!("<code>{}</code>", esc(&e.address))
            } else {
                format!("<code>{}</code> ({})", esc(&e.address), esc(&e.target))
            };
            rows.push(vec![
                esc(&b.name),
                target,
                badge(&e.health),
                format!("{}", e.active_connections),
                when(&e.last_change, now),
                esc(&b.health_check),
            ]);
        }
    }
    table(
        &mut out,
        &[
            "Backend",
            "Endpoint",
            "Health",
            "Connections",
            "Last change",
            "Health check",
        ],
        &rows,
        "No backends.",
    );

    if let Some(dns) = &doc.dns {
        out.push_str("<h2>DNS</h2>\n");
        let zones: Vec<String> = dns
            .zones
            .iter()
            .map(|z| format!("{} ({} records)", esc(&z.name), z.records))
            .collect();
        let answered: u64 = dns.answers.iter().map(|a| a.count).sum();
        let _ = writeln!(
            out,
            "<p>Answering on <code>{}</code>; zones: {}; {answered} queries answered, {} dropped.</p>",
            esc(&dns.listen.join(", ")),
            if zones.is_empty() {
                "none".to_owned()
            } else {
                zones.join(", ")
            },
            dns.dropped
        );
    }

    if let Some(k) = &doc.kubernetes {
        out.push_str("<h2>Kubernetes</h2>\n");
        let state = if k.connected {
            "API server reachable".to_owned()
        } else {
            "<strong>API server unreachable</strong>: serving the last known state".to_owned()
        };
        let _ = writeln!(
            out,
            "<p>{state}{}; {}; this node {} status.{}</p>",
            k.since
                .as_deref()
                .map(|s| format!(" since {}", when(s, now)))
                .unwrap_or_default(),
            esc(&k.objects_summary()),
            k.writes(),
            k.last_error
                .as_deref()
                .map(|e| format!(" Last error: <code>{}</code>", esc(e)))
                .unwrap_or_default(),
        );
        let rows: Vec<Vec<String>> = k
            .services
            .iter()
            .map(|(name, ips)| vec![esc(name), format!("<code>{}</code>", esc(&ips.join(", ")))])
            .chain(k.rejected.iter().map(|r| {
                vec![
                    esc(&r.object),
                    format!("{} {}", badge("LEFT OUT"), esc(&r.errors.join("; "))),
                ]
            }))
            .collect();
        table(
            &mut out,
            &["Object", "Addresses, or why it is left out"],
            &rows,
            "No LoadBalancer Services.",
        );
    }

    out.push_str("<h2>Recent warnings and errors</h2>\n");
    let rows: Vec<Vec<String>> = doc
        .recent
        .iter()
        .rev()
        .map(|r| {
            vec![
                when(&r.time, now),
                badge(&r.level),
                esc(&r.message),
                format!("<code>{}</code>", esc(&r.fields)),
            ]
        })
        .collect();
    table(
        &mut out,
        &["When", "Level", "What", "Details"],
        &rows,
        "None since the start.",
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">Generated {} · refreshes every 5 s · JSON: <a href=\"/status\">/status</a> · <a href=\"/metrics\">/metrics</a></p>\n</body>\n</html>",
        esc(&short_time(now))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{BackendDoc, EndpointDoc, VipDoc};

    #[test]
    fn the_page_shows_holders_and_health_and_escapes_text() {
        let doc = StatusDoc {
            version: "0.1.0".into(),
            now: "2024-05-01T12:00:10.000Z".into(),
            started: "2024-05-01T12:00:00.000Z".into(),
            ready: true,
            vips: vec![VipDoc {
                instance: "lan".into(),
                addresses: vec!["192.0.2.10/24".into()],
                state: "backup".into(),
                holder: "192.0.2.2".into(),
                since: "2024-05-01T12:00:05.000Z".into(),
                reason: "higher priority <150>".into(),
                ..VipDoc::default()
            }],
            backends: vec![BackendDoc {
                name: "web".into(),
                endpoints: vec![EndpointDoc {
                    address: "127.0.0.1:9001".into(),
                    target: "127.0.0.1:9001".into(),
                    health: "down".into(),
                    last_change: "2024-05-01T12:00:07.000Z".into(),
                    ..EndpointDoc::default()
                }],
                ..BackendDoc::default()
            }],
            ..StatusDoc::default()
        };
        let html = render(&doc);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(html.contains("<strong>192.0.2.2</strong>"));
        assert!(html.contains("<span class=\"badge down\">down</span>"));
        assert!(html.contains("(3s ago)"), "{html}");
        assert!(html.contains("higher priority &lt;150&gt;"));
    }
}
