//! Compiling `kubernetes`: which cluster the provider watches and what it takes from it.
//!
//! Only the settings are checked here (files, names, the pool, the DNS zone); what the
//! cluster holds arrives later as an [`crate::Overlay`] and is compiled with the file.

use std::collections::BTreeMap;

use crate::compile::{Compiler, pos};
use crate::model::{RawKubernetes, RawVrrp, S};
use crate::parse::closest;
use crate::types::*;

const ENDPOINT_MODES: [(&str, EndpointsMode); 2] = [
    ("pods", EndpointsMode::Pods),
    ("nodePorts", EndpointsMode::NodePorts),
];

impl Compiler {
    /// The `kubernetes` section; `pools` and `vrrp` say whether its pool exists and which
    /// instance holds it.
    pub(crate) fn kubernetes(
        &mut self,
        raw: &S<RawKubernetes>,
        pools: &BTreeMap<String, AddressPool>,
        vrrp: &[S<RawVrrp>],
        dns: Option<&DnsConfig>,
        dns_section: bool,
    ) -> Option<KubernetesConfig> {
        let k = &raw.value;
        let before = self.error_count();
        let kubeconfig = k.kubeconfig.as_ref().map(|f| {
            let path = self.path(&f.value);
            if !path.is_file() {
                self.error(
                    pos(f),
                    format!("kubeconfig `{}` does not exist", path.display()),
                )
                .hint("relative paths are relative to the config file's directory; leave `kubeconfig` out to use in-cluster credentials or $KUBECONFIG");
            }
            path
        });
        let cache_file = k.cache_file.as_ref().map(|f| {
            let path = self.path(&f.value);
            let dir_ok = path.parent().is_none_or(|d| d.as_os_str().is_empty() || d.is_dir());
            if !dir_ok || path.is_dir() {
                self.error(
                    pos(f),
                    format!("`cacheFile` `{}`: its directory does not exist", path.display()),
                )
                .hint("name a file in a directory Gatehouse may write to, e.g. /var/lib/gatehouse/kubernetes.json");
            }
            path
        });
        let mut namespaces = Vec::new();
        for n in &k.namespaces {
            if !is_dns_label(&n.value) {
                self.error(pos(n), format!("`{}` is not a namespace name", n.value))
                    .hint("namespace names are DNS labels: lowercase letters, digits and `-`");
            }
            namespaces.push(n.value.clone());
        }
        let label_selector = k.label_selector.as_ref().and_then(|s| {
            LabelSelector::parse(&s.value)
                .map_err(|e| {
                    self.error(pos(s), format!("`labelSelector`: {e}"))
                        .hint("write Kubernetes selector syntax, e.g. `gatehouse.dev/expose=true,tier!=test`");
                })
                .ok()
        });
        let pool = k.pool.as_ref().map(|p| {
            if !pools.contains_key(&p.value) {
                let hint = match closest(&p.value, pools.keys().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "define it under `pools:`, e.g. `- {name: lan, addresses: [192.168.1.240-192.168.1.250]}`".to_owned(),
                };
                self.error(pos(p), format!("pool `{}` is not defined", p.value))
                    .hint(hint);
            }
            p.value.clone()
        });
        if pool.is_none() {
            self.warn(
                pos(raw),
                "`kubernetes` has no `pool`: LoadBalancer Services and Gateways without addresses get none",
            )
            .hint("add `pool: NAME` naming one of `pools:`");
        }
        let endpoints = match &k.endpoints {
            None => EndpointsMode::Pods,
            Some(e) => match ENDPOINT_MODES.iter().find(|(n, _)| *n == e.value) {
                Some((_, m)) => *m,
                None => {
                    let names = ENDPOINT_MODES.map(|(n, _)| n);
                    let hint = match closest(&e.value, names) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => format!("use one of: {}", names.join(", ")),
                    };
                    self.error(pos(e), format!("`{}` is not an endpoints mode", e.value))
                        .hint(hint);
                    EndpointsMode::Pods
                }
            },
        };
        let dns_zone = k.dns_zone.as_ref().map(|z| {
            let zone = z.value.trim_end_matches('.').to_ascii_lowercase();
            if !zone.split('.').all(is_dns_label) {
                self.error(pos(z), format!("`{}` is not a DNS zone name", z.value));
            } else if let Some(d) = dns
                && !d
                    .zones
                    .iter()
                    .any(|local| zone == local.name || zone.ends_with(&format!(".{}", local.name)))
            {
                self.warn(
                    pos(z),
                    format!("`dnsZone` `{zone}` is not inside any zone of `dns.zones`"),
                )
                .hint(
                    "the DNS server only answers for its zones: add the zone, or one that holds it",
                );
            } else if dns.is_none() && !dns_section {
                self.warn(pos(z), "`dnsZone` is set but there is no `dns` section")
                    .hint("add `dns:` with a zone that holds it, or remove `dnsZone`");
            }
            zone
        });
        let status_instance = pool.as_ref().and_then(|p| {
            let held = format!("pool:{p}");
            vrrp.iter()
                .find(|v| v.value.addresses.iter().any(|a| a.value.0.trim() == held))
                .map(|v| v.value.name.value.clone())
        });
        (self.error_count() == before).then(|| KubernetesConfig {
            kubeconfig,
            context: k.context.as_ref().map(|c| c.value.clone()),
            namespaces,
            label_selector,
            load_balancer_class: k.load_balancer_class.as_ref().map(|c| c.value.clone()),
            pool,
            gateway_class_name: k
                .gateway_class_name
                .as_ref()
                .map_or_else(|| "gatehouse".to_owned(), |c| c.value.clone()),
            endpoints,
            dns_zone,
            status_instance,
            cache_file,
        })
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
/// `k notin (a,b)`, comma-joined), matched against an object's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl LabelSelector {
    /// Parses selector text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("the selector is empty".to_owned());
        }
        let key = |k: &str| -> Result<String, String> {
            let k = k.trim();
            let name = k.rsplit_once('/').map_or(k, |(_, n)| n);
            let ok = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if ok {
                Ok(k.to_owned())
            } else {
                Err(format!("`{k}` is not a label key"))
            }
        };
        let mut requirements = Vec::new();
        while !rest.is_empty() {
            // One requirement: up to the next comma outside parentheses.
            let mut depth = 0;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    c == ',' && depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let req = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim_start();
            let r = if let Some((k, v)) = req.split_once("!=") {
                Requirement::NotEquals(key(k)?, v.trim().to_owned())
            } else if let Some((k, v)) = req.split_once('=') {
                Requirement::Equals(key(k)?, v.trim_start_matches('=').trim().to_owned())
            } else if let Some((k, set, negate)) = req
                .split_once(" notin ")
                .map(|(k, s)| (k, s, true))
                .or_else(|| req.split_once(" in ").map(|(k, s)| (k, s, false)))
            {
                let set = set.trim();
                let Some(inner) = set.strip_prefix('(').and_then(|s| s.strip_suffix(')')) else {
                    return Err(format!("`{req}`: the set needs parentheses, e.g. `(a,b)`"));
                };
                let values = inner.split(',').map(|v| v.trim().to_owned()).collect();
                if negate {
                    Requirement::NotIn(key(k)?, values)
                } else {
                    Requirement::In(key(k)?, values)
                }
            } else if let Some(k) = req.strip_prefix('!') {
                Requirement::Absent(key(k)?)
            } else {
                Requirement::Exists(key(req)?)
            };
            requirements.push(r);
        }
        Ok(LabelSelector {
            text: text.trim().to_owned(),
            requirements,
        })
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
            Requirement::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
            Requirement::NotIn(k, set) => labels.get(k).is_none_or(|v| !set.contains(v)),
        })
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::LabelSelector;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selectors_match_as_kubernetes_does() {
        type Case = (&'static str, &'static [(&'static str, &'static str)], bool);
        let cases: &[Case] = &[
            ("a=b", &[("a", "b")], true),
            ("a==b", &[("a", "c")], false),
            (
                "gatehouse.dev/expose=true",
                &[("gatehouse.dev/expose", "true")],
                true,
            ),
            ("a!=b,c", &[("c", "1")], true),
            ("a!=b,c", &[("a", "b"), ("c", "1")], false),
            ("!c", &[("c", "1")], false),
            ("!c", &[], true),
            (
                "env in (prod, staging),tier notin (test)",
                &[("env", "prod")],
                true,
            ),
            (
                "env in (prod, staging),tier notin (test)",
                &[("env", "prod"), ("tier", "test")],
                false,
            ),
            ("env in (prod)", &[], false),
        ];
        for (text, l, want) in cases {
            let s = LabelSelector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(s.matches(&labels(l)), *want, "{text} on {l:?}");
        }
        for bad in ["", "a b=c", "env in prod", "=x"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
