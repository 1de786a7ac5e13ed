//! Re-resolution of endpoints given by name: at start, then every `resolveInterval`. A name
//! that fails to resolve keeps its previous addresses (a DNS hiccup must not empty a pool).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::Target;
use tokio_util::sync::CancellationToken;

use crate::pool::Pool;

/// Longest wait for one name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(pool: Arc<Pool>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(pool.spec().resolve_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first resolution happened before the pool started
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => resolve_all(&pool).await,
        }
    }
}

pub(crate) async fn resolve_all(pool: &Pool) {
    for (index, spec) in pool.spec().endpoints.iter().enumerate() {
        let Target::Host { host, port } = &spec.target else {
            continue;
        };
        let looked_up = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), *port)),
        )
        .await;
        let addrs: Vec<SocketAddr> = match looked_up {
            Ok(Ok(addrs)) => {
                let mut v: Vec<SocketAddr> = addrs.collect();
                v.sort_unstable();
                v.dedup();
                v
            }
            Ok(Err(e)) => {
                tracing::warn!(backend = pool.name(), endpoint = %spec.target, error = %e, "cannot resolve endpoint; keeping its previous addresses");
                continue;
            }
            Err(_) => {
                tracing::warn!(backend = pool.name(), endpoint = %spec.target, "resolving endpoint timed out; keeping its previous addresses");
                continue;
            }
        };
        if let Ok(mut resolved) = pool.resolved.lock()
            && let Some(slot) = resolved.get_mut(index)
            && *slot != addrs
        {
            tracing::info!(backend = pool.name(), endpoint = %spec.target, addresses = ?addrs, "endpoint resolved");
            *slot = addrs;
        }
    }
    pool.rebuild(None);
}
