//! Lookup by server name: exact names, then wildcards from the most specific suffix, then a
//! catch-all. Pure data, built once per config and shared by every connection.

use std::collections::HashMap;

use gatehouse_config::{HostMatch, HostPattern};

/// What a server name selects. The first value inserted for a given match wins, so callers
/// insert in precedence order.
#[derive(Debug)]
pub struct HostTable<T> {
    exact: HashMap<String, T>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, T>,
    any: Option<T>,
}

impl<T> Default for HostTable<T> {
    fn default() -> Self {
        HostTable {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any: None,
        }
    }
}

impl<T> HostTable<T> {
    /// Adds `value` for `host` unless that match already has one; returns whether it was added.
    pub fn insert(&mut self, host: &HostMatch, value: T) -> bool {
        let slot = match host {
            HostMatch::Any => {
                if self.any.is_some() {
                    return false;
                }
                self.any = Some(value);
                return true;
            }
            HostMatch::Pattern(HostPattern::Exact(name)) => self.exact.entry(name.clone()),
            HostMatch::Pattern(HostPattern::Wildcard(suffix)) => {
                self.wildcard.entry(suffix.clone())
            }
        };
        match slot {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(value);
                true
            }
        }
    }

    /// The value for `name` (already lower case, no trailing dot): an exact match, else the
    /// wildcard with the longest suffix (`*.a.example.com` before `*.example.com`), else the
    /// catch-all. A hello without a server name gets only the catch-all.
    pub fn get(&self, name: Option<&str>) -> Option<&T> {
        let Some(name) = name else {
            return self.any.as_ref();
        };
        if let Some(v) = self.exact.get(name) {
            return Some(v);
        }
        if !self.wildcard.is_empty() {
            // Each suffix after a dot, longest first; the label before it must be non-empty.
            let mut rest = name;
            while let Some((label, suffix)) = rest.split_once('.') {
                if !label.is_empty()
                    && let Some(v) = self.wildcard.get(suffix)
                {
                    return Some(v);
                }
                rest = suffix;
            }
        }
        self.any.as_ref()
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.any.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> HostMatch {
        match p {
            "*" => HostMatch::Any,
            _ => HostMatch::Pattern(gatehouse_config::parse_host_pattern(p).unwrap()),
        }
    }

    fn table(entries: &[(&str, &'static str)]) -> HostTable<&'static str> {
        let mut t = HostTable::default();
        for (p, v) in entries {
            t.insert(&pattern(p), *v);
        }
        t
    }

    #[test]
    fn exact_beats_wildcard_beats_any() {
        let t = table(&[
            ("*", "any"),
            ("*.example.com", "wild"),
            ("git.example.com", "git"),
            ("*.int.example.com", "int"),
        ]);
        assert_eq!(t.get(Some("git.example.com")), Some(&"git"));
        assert_eq!(t.get(Some("wiki.example.com")), Some(&"wild"));
        assert_eq!(t.get(Some("a.b.example.com")), Some(&"wild"));
        assert_eq!(t.get(Some("x.int.example.com")), Some(&"int"));
        assert_eq!(t.get(Some("y.x.int.example.com")), Some(&"int"));
        assert_eq!(t.get(Some("int.example.com")), Some(&"wild"));
        assert_eq!(t.get(Some("example.com")), Some(&"any"));
        assert_eq!(t.get(Some("other.org")), Some(&"any"));
        assert_eq!(t.get(None), Some(&"any"));
    }

    #[test]
    fn no_catch_all_means_no_match() {
        let t = table(&[("*.example.com", "wild")]);
        assert_eq!(t.get(Some("example.com")), None);
        assert_eq!(t.get(Some(".example.com")), None);
        assert_eq!(t.get(None), None);
        assert!(!t.is_empty());
        assert!(HostTable::<u8>::default().is_empty());
    }

    #[test]
    fn first_insert_wins() {
        let mut t = HostTable::default();
        assert!(t.insert(&pattern("a.example.com"), 1));
        assert!(!t.insert(&pattern("a.example.com"), 2));
        assert!(t.insert(&pattern("*"), 3));
        assert!(!t.insert(&pattern("*"), 4));
        assert_eq!(t.get(Some("a.example.com")), Some(&1));
        assert_eq!(t.get(None), Some(&3));
    }
}
