//! What a reload changes: listeners to bind, to close and to keep, and backends whose pools
//! must be rebuilt. Pure: the supervisor applies it.

use std::collections::BTreeSet;

use crate::types::{Config, ListenerKey};

/// The difference between the running snapshot and a new one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Sockets to open.
    pub bind: Vec<ListenerKey>,
    /// Sockets to close (their established connections carry on).
    pub close: Vec<ListenerKey>,
    /// Sockets kept open whose settings (routes, TLS, limits, timeouts, names) changed.
    pub update: Vec<ListenerKey>,
    /// Sockets kept exactly as they were.
    pub keep: Vec<ListenerKey>,
    /// Backend pools that are new.
    pub backends_added: Vec<String>,
    /// Backend pools that are gone.
    pub backends_removed: Vec<String>,
    /// Backend pools whose definition changed.
    pub backends_changed: Vec<String>,
}

impl ConfigDiff {
    /// Whether the reload changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.bind.is_empty()
            && self.close.is_empty()
            && self.update.is_empty()
            && self.backends_added.is_empty()
            && self.backends_removed.is_empty()
            && self.backends_changed.is_empty()
    }
}

/// Compares two snapshots.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let old_l = old.sockets();
    let new_l = new.sockets();
    let mut d = ConfigDiff::default();
    for (key, l) in &new_l {
        match old_l.get(key) {
            None => d.bind.push(key.clone()),
            Some(o) if o == l => d.keep.push(key.clone()),
            Some(_) => d.update.push(key.clone()),
        }
    }
    d.close = old_l
        .keys()
        .filter(|k| !new_l.contains_key(*k))
        .cloned()
        .collect();
    let names: BTreeSet<&String> = old.backends.keys().chain(new.backends.keys()).collect();
    for name in names {
        match (old.backends.get(name), new.backends.get(name)) {
            (None, Some(_)) => d.backends_added.push(name.clone()),
            (Some(_), None) => d.backends_removed.push(name.clone()),
            (Some(a), Some(b)) if a != b => d.backends_changed.push(name.clone()),
            _ => {}
        }
    }
    d
}
