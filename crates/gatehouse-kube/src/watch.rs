//! One watcher task per kind (and per namespace, when the config names namespaces), each
//! keeping its part of the shared [`Snapshot`] current.
//!
//! kube-runtime's watcher does the protocol: list, then watch from the list's
//! resourceVersion, bookmarks, and a relist when the server answers 410 Gone. A relist is
//! applied atomically (the `Init` ... `InitDone` objects replace the old ones at once), so
//! a render never sees half a list. Errors are retried with kube's default backoff; the last
//! known objects stay in the snapshot meanwhile.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::snapshot::{Key, Snapshot};

/// Where a watcher keeps its objects in the snapshot.
pub(crate) type Slot<K> = fn(&mut Snapshot) -> &mut BTreeMap<Key, Arc<K>>;

/// What watchers share with the provider.
pub(crate) struct Shared {
    pub(crate) snapshot: Mutex<Snapshot>,
    /// Woken on every change.
    pub(crate) changed: Notify,
    /// Per watcher: whether its first list is in.
    pub(crate) synced: Mutex<BTreeMap<String, bool>>,
    /// The last watch error, with the watcher's name.
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            snapshot: Mutex::new(Snapshot::default()),
            changed: Notify::new(),
            synced: Mutex::new(BTreeMap::new()),
            last_error: Mutex::new(None),
        }
    }

    /// Whether every watcher has its first list.
    pub(crate) fn all_synced(&self) -> bool {
        self.synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .all(|s| *s)
    }

    fn set_synced(&self, name: &str) {
        self.synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), true);
    }

    fn with_snapshot<R>(&self, f: impl FnOnce(&mut Snapshot) -> R) -> R {
        let r = f(&mut self.snapshot.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_one();
        r
    }
}

fn key_of<K: Resource>(k: &K) -> Key {
    (
        k.meta().namespace.clone().unwrap_or_default(),
        k.meta().name.clone().unwrap_or_default(),
    )
}

/// A typed API for `K` in `namespace` (`None`: every namespace, or cluster-scoped).
pub(crate) fn typed_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A dynamic API for a Gateway API kind.
pub(crate) fn dynamic_api(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Watches `api` into `slot` until the task is aborted. `name` identifies the watcher in
/// logs; `namespace` is the namespace it covers (`None`: all), so that a relist replaces only
/// its own objects.
pub(crate) async fn run<K>(
    name: String,
    api: Api<K>,
    config: watcher::Config,
    namespace: Option<String>,
    slot: Slot<K>,
    shared: Arc<Shared>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    shared
        .synced
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.clone(), false);
    let mut buffer: BTreeMap<Key, Arc<K>> = BTreeMap::new();
    let mut missing_reported = false;
    let mut stream = watcher(api, config).boxed();
    while let Some(item) = stream.next().await {
        match item {
            Ok(Event::Init) => buffer.clear(),
            Ok(Event::InitApply(k)) => {
                buffer.insert(key_of(&k), Arc::new(k));
            }
            Ok(Event::InitDone) => {
                let fresh = std::mem::take(&mut buffer);
                shared.with_snapshot(|s| {
                    let objects = slot(s);
                    match &namespace {
                        Some(ns) => objects.retain(|(n, _), _| n != ns),
                        None => objects.clear(),
                    }
                    objects.extend(fresh);
                });
                shared.set_synced(&name);
                tracing::debug!(watcher = %name, "listed");
            }
            Ok(Event::Apply(k)) => {
                shared.with_snapshot(|s| slot(s).insert(key_of(&k), Arc::new(k)));
            }
            Ok(Event::Delete(k)) => {
                shared.with_snapshot(|s| slot(s).remove(&key_of(&k)));
            }
            Err(e) => {
                if let Some(code) = refused(&e) {
                    // The kind's CRD is not installed (TCPRoute and UDPRoute are in the
                    // experimental channel), or RBAC does not let us read it (Secrets, when
                    // no certificate is served from the cluster): nothing to serve from it,
                    // which is a state, not a reason to serve nothing at all.
                    if !missing_reported {
                        if code == 404 {
                            tracing::info!(watcher = %name, "not served by the API server (CRD not installed?); retrying in the background");
                        } else {
                            tracing::warn!(watcher = %name, "forbidden by RBAC: taken as empty; retrying in the background");
                        }
                        missing_reported = true;
                    }
                    shared.set_synced(&name);
                    continue;
                }
                let message = format!("{name}: {e}");
                tracing::debug!("kubernetes watch error: {message}");
                *shared
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(message);
            }
        }
    }
}

fn watcher<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl futures_util::Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, config).default_backoff()
}

/// 404 or 403 on the first list: a kind this server does not have, or we may not read.
fn refused(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
            if status.code == 404 || status.code == 403 =>
        {
            Some(status.code)
        }
        _ => None,
    }
}
