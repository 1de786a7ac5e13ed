//! The Kubernetes provider as `gatehouse run` sees it: started, restarted and stopped as the
//! config's `kubernetes` section comes and goes, and its renderings compiled with the file.
//!
//! The file and the cluster are compiled together ([`gatehouse_config::load_with`]): a reload
//! of the file keeps the cluster's objects, and a change in the cluster keeps the file as it
//! was last loaded (not as it is on disk now: that is a reload's business). An object with
//! errors is left out and logged; the rest is applied.

use std::collections::BTreeSet;
use std::sync::Arc;

use gatehouse_config::{Config, Diagnostics, Loaded, Overlay, Rejected, Source, load_with};
use gatehouse_kube::{Applied, Leader, Provider, Rendered};
use gatehouse_vrrp::instance::InstanceState;
use tokio::sync::watch;

use crate::supervisor::Supervisor;

/// The provider, if the config has one, and the last rendering taken from it.
#[derive(Default)]
pub(crate) struct Cluster {
    provider: Option<Provider>,
    updates: Option<watch::Receiver<Option<Arc<Rendered>>>>,
    current: Option<Arc<Rendered>>,
    /// Documents left out by the last load, so each is logged when it starts being left out.
    rejected: BTreeSet<String>,
}

/// Compiles `source` with the cluster's overlay, if any.
pub(crate) fn load(
    source: &Source,
    overlay: Option<&Overlay>,
) -> Result<(Loaded, Vec<Rejected>), Diagnostics> {
    match overlay {
        Some(o) => load_with(source, o),
        None => gatehouse_config::compile(source).map(|l| (l, Vec::new())),
    }
}

impl Cluster {
    /// The overlay to compile the file with.
    pub(crate) fn overlay(&self) -> Option<&Overlay> {
        self.current.as_ref().map(|r| &r.overlay)
    }

    /// Compiles `source` with the overlay, unless `source` no longer has a `kubernetes`
    /// section: then without it, so that removing the section removes the cluster's objects
    /// at once.
    pub(crate) fn load(&self, source: &Source) -> Result<(Loaded, Vec<Rejected>), Diagnostics> {
        let with = load(source, self.overlay())?;
        if self.overlay().is_some() && with.0.config.kubernetes.is_none() {
            return load(source, None);
        }
        Ok(with)
    }

    /// After a config is applied: starts, restarts or stops the provider to match its
    /// `kubernetes` section, and hands it the pools.
    pub(crate) fn follow(&mut self, supervisor: &Supervisor) {
        let config = supervisor.config();
        let wanted = config.kubernetes.as_ref();
        let running = self.provider.as_ref().map(|p| p.settings());
        if wanted.map(|w| &**w) != running.map(|r| &**r) {
            if self.provider.take().is_some() {
                tracing::info!("kubernetes: provider stopped (settings changed)");
            }
            self.updates = None;
            // New settings: the last rendering stays in use until the new provider's first
            // (the last known state, as during an outage); no settings: nothing of it stays.
            if wanted.is_none() {
                self.current = None;
                self.rejected.clear();
            }
            supervisor.set_kubernetes_reporter(None);
            if let Some(settings) = wanted {
                let leader = leader(supervisor, settings.status_instance.clone());
                let p = Provider::start(Arc::clone(settings), config.pools.clone(), leader);
                supervisor.set_kubernetes_reporter(Some(p.reporter()));
                self.updates = Some(p.updates());
                self.provider = Some(p);
            }
        }
        if let Some(p) = &self.provider {
            p.set_pools(&config.pools);
        }
    }

    /// The next rendering; pending forever without a provider.
    pub(crate) async fn changed(&mut self) -> Arc<Rendered> {
        loop {
            let Some(rx) = self.updates.as_mut() else {
                return std::future::pending().await;
            };
            if rx.changed().await.is_err() {
                self.updates = None;
                continue;
            }
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
        }
    }

    /// Takes a rendering as the current one (whatever becomes of applying it: the next file
    /// reload compiles with it too).
    pub(crate) fn take(&mut self, rendered: Arc<Rendered>) {
        self.current = Some(rendered);
    }

    /// A config compiled with the current rendering is running: logs what was left out and
    /// tells the provider, which writes status.
    pub(crate) fn applied(&mut self, config: &Arc<Config>, rejected: Vec<Rejected>) {
        let now: BTreeSet<String> = rejected.iter().map(|r| r.document.clone()).collect();
        for r in &rejected {
            if !self.rejected.contains(&r.document) {
                tracing::warn!(
                    object = %r.document,
                    "kubernetes: left out of the running config: {}",
                    r.errors.join("; ")
                );
            }
        }
        for gone in self.rejected.difference(&now) {
            tracing::info!(object = %gone, "kubernetes: served again");
        }
        self.rejected = now;
        if let (Some(p), Some(r)) = (&self.provider, &self.current) {
            p.applied(Applied {
                rendered: Arc::clone(r),
                config: Arc::clone(config),
                rejected,
            });
        }
    }
}

/// Whether this node writes status: master of `instance`, or always without one.
fn leader(supervisor: &Supervisor, instance: Option<String>) -> Leader {
    let vips = supervisor.vip_statuses();
    Arc::new(move || match &instance {
        None => true,
        Some(name) => vips
            .read()
            .iter()
            .any(|(i, st)| i.name == *name && st.state == InstanceState::Master),
    })
}
