//! `kubernetes.cacheFile`: the objects last seen, on disk, so that a Gatehouse that starts
//! while the API server is unreachable (a power cut that restarted everything, say) serves the
//! cluster as it last was instead of nothing.
//!
//! The file holds the watched objects, TLS Secrets included, as JSON; it is written with mode
//! 0600 (write to a temporary file, then rename), at most every [`WRITE_EVERY`], and only from
//! a complete view (every kind listed). It is read once, at start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};

use crate::snapshot::{Key, RouteKind, Snapshot};

/// The most often the file is written.
pub(crate) const WRITE_EVERY: Duration = Duration::from_secs(5);

/// What the file holds: each kind as a list (keys are rebuilt from the objects). Written
/// from references into the snapshot (`CacheFile<&T>`, no object copied), read as owned.
#[derive(Serialize, Deserialize)]
struct CacheFile<S, E, N, T, D> {
    services: Vec<S>,
    slices: Vec<E>,
    nodes: Vec<N>,
    secrets: Vec<T>,
    classes: Vec<D>,
    gateways: Vec<D>,
    grants: Vec<D>,
    routes: Vec<(RouteKind, D)>,
}

/// The file as read.
type Owned = CacheFile<Service, EndpointSlice, Node, Secret, DynamicObject>;

fn values<K>(map: &BTreeMap<Key, Arc<K>>) -> Vec<&K> {
    map.values().map(|k| &**k).collect()
}

fn keyed<K: Resource>(list: Vec<K>) -> BTreeMap<Key, Arc<K>> {
    list.into_iter()
        .map(|k| {
            let key = (
                k.meta().namespace.clone().unwrap_or_default(),
                k.meta().name.clone().unwrap_or_default(),
            );
            (key, Arc::new(k))
        })
        .collect()
}

/// Writes `snapshot` to `path` (mode 0600, atomically).
pub(crate) fn write(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let file = CacheFile {
        services: values(&snapshot.services),
        slices: values(&snapshot.slices),
        nodes: values(&snapshot.nodes),
        secrets: values(&snapshot.secrets),
        classes: values(&snapshot.classes),
        gateways: values(&snapshot.gateways),
        grants: values(&snapshot.grants),
        routes: snapshot
            .routes
            .iter()
            .flat_map(|(kind, m)| m.values().map(|r| (*kind, &**r)))
            .collect(),
    };
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads the file at `path`: `Ok(None)` when there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Snapshot>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: Owned =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut routes: BTreeMap<RouteKind, BTreeMap<Key, Arc<DynamicObject>>> = BTreeMap::new();
    for (kind, r) in file.routes {
        let key = (
            r.metadata.namespace.clone().unwrap_or_default(),
            r.metadata.name.clone().unwrap_or_default(),
        );
        routes.entry(kind).or_default().insert(key, Arc::new(r));
    }
    Ok(Some(Snapshot {
        services: keyed(file.services),
        slices: keyed(file.slices),
        nodes: keyed(file.nodes),
        secrets: keyed(file.secrets),
        classes: keyed(file.classes),
        gateways: keyed(file.gateways),
        grants: keyed(file.grants),
        routes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_the_file() {
        let dir = std::env::temp_dir().join(format!("gatehouse-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.json");
        assert!(read(&path).unwrap().is_none());
        let mut s = Snapshot::default();
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        }))
        .unwrap();
        s.services
            .insert(("apps".into(), "web".into()), Arc::new(svc));
        let route: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "apps"},
            "spec": {"hostnames": ["a.test"]},
        }))
        .unwrap();
        s.routes
            .entry(RouteKind::Http)
            .or_default()
            .insert(("apps".into(), "r".into()), Arc::new(route));
        write(&path, &s).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = read(&path).unwrap().unwrap();
        assert_eq!(back.counts(), s.counts());
        assert_eq!(
            back.routes[&RouteKind::Http][&("apps".to_owned(), "r".to_owned())].data["spec"],
            serde_json::json!({"hostnames": ["a.test"]})
        );
        std::fs::write(&path, b"{not json").unwrap();
        assert!(read(&path).unwrap_err().contains("cache.json"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
