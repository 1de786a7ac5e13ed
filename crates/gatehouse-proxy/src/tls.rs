//! TLS listeners: read the ClientHello without answering it, choose the listener and route by
//! its server name, then either pass every byte through to the backend (which terminates) or
//! complete the handshake here and proxy the plain stream.
//!
//! All TLS listeners on one address and port share a socket and one [`SniTable`]; which of
//! them serves a connection is decided by the server name alone, with Gateway API precedence:
//! the most specific listener hostname first, then, within it, an exact route hostname before
//! a wildcard (longest suffix first) before a route that takes every name.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_config::{AcceptProxy, Access, HostMatch, HostPattern, Listener, Protocol, TlsMode};
use gatehouse_tls::hello::{MAX_HELLO, info, read_client_hello};
use gatehouse_tls::rustls::ServerConfig;
use gatehouse_tls::rustls::server::ProducesTickets;
use gatehouse_tls::server::{CertResolver, ServerOptions, server_config, ticketer};
use tokio_rustls::StartHandshake;
use tokio_util::sync::CancellationToken;

use crate::front::{ClientStream, Origin};
use crate::hosts::HostTable;
use crate::http::HttpSite;
use crate::pool::Pool;
use crate::tcp::{Conn, Route, access_log, forward, refuse_address, shared_limit, shared_name};

/// One TLS or HTTPS listener sharing the socket.
#[derive(Debug)]
struct Vhost {
    listener: Arc<Listener>,
    /// The handshake config when this listener terminates; `None` for passthrough.
    terminate: Option<Arc<ServerConfig>>,
}

/// Where a server name leads.
#[derive(Debug)]
enum Target {
    /// A TLS listener's route to a backend.
    Route {
        vhost: usize,
        route: String,
        /// The route's own access list.
        access: Access,
        to: Route,
    },
    /// An HTTPS listener: terminate, then serve HTTP (routes chosen per request).
    Http { vhost: usize },
}

/// The routing table of one TLS socket.
#[derive(Debug)]
pub struct SniTable {
    name: String,
    vhosts: Vec<Vhost>,
    hosts: HostTable<Target>,
    max_connections: usize,
    hello_timeout: Duration,
    /// Session-ticket keys, kept across reloads so that resumption survives them.
    tickets: Option<Arc<dyn ProducesTickets>>,
    /// The HTTP side of the HTTPS listeners on this socket, if any.
    http: Option<Arc<HttpSite>>,
    /// PROXY headers accepted (the listeners on one socket agree on it).
    accept_proxy: Option<AcceptProxy>,
}

impl SniTable {
    /// Builds the table for the TLS `listeners` sharing one socket. A listener whose TLS
    /// settings `previous` already serves keeps its handshake config (and so its session
    /// cache); the ticket keys always carry over.
    pub fn build(
        listeners: &[Arc<Listener>],
        pools: &HashMap<String, Arc<Pool>>,
        previous: Option<&SniTable>,
    ) -> SniTable {
        let tickets = match previous {
            Some(p) => p.tickets.clone(),
            None => match ticketer() {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "no TLS session tickets: the ticket key could not be made");
                    None
                }
            },
        };
        // The most specific listener hostname first: exact, then longer wildcard suffixes,
        // then listeners that take any name.
        let mut ordered: Vec<&Arc<Listener>> = listeners.iter().collect();
        ordered.sort_by_key(|l| match &l.hostname {
            Some(HostPattern::Exact(_)) => (0, 0),
            Some(HostPattern::Wildcard(s)) => (1, usize::MAX - s.len()),
            None => (2, 0),
        });
        let mut vhosts = Vec::new();
        let mut hosts = HostTable::default();
        for listener in ordered {
            let terminate = match listener.tls.as_ref().map(|t| &t.mode) {
                Some(TlsMode::Terminate(t)) => {
                    let reused = previous.and_then(|p| {
                        p.vhosts
                            .iter()
                            .find(|v| v.listener.tls == listener.tls && v.terminate.is_some())
                            .and_then(|v| v.terminate.clone())
                    });
                    match reused.or_else(|| handshake_config(listener, t, tickets.clone())) {
                        Some(config) => Some(config),
                        // Cannot happen for a compiled config (it has certificates); skip the
                        // listener rather than serve it without them.
                        None => continue,
                    }
                }
                _ => None,
            };
            let vhost = vhosts.len();
            if listener.protocol == Protocol::Https {
                let host = match &listener.hostname {
                    Some(h) => HostMatch::Pattern(h.clone()),
                    None => HostMatch::Any,
                };
                hosts.insert(&host, Target::Http { vhost });
            }
            for entry in &listener.routes {
                let Some(pool) = pools.get(&entry.backend) else {
                    continue;
                };
                for host in &entry.hosts {
                    hosts.insert(
                        host,
                        Target::Route {
                            vhost,
                            route: entry.route.clone(),
                            access: entry.access.clone(),
                            to: Route {
                                listener: Arc::clone(listener),
                                pool: Arc::clone(pool),
                            },
                        },
                    );
                }
            }
            vhosts.push(Vhost {
                listener: Arc::clone(listener),
                terminate,
            });
        }
        let https: Vec<Arc<Listener>> = listeners
            .iter()
            .filter(|l| l.protocol == Protocol::Https)
            .cloned()
            .collect();
        let http = (!https.is_empty()).then(|| {
            let previous = previous.and_then(|p| p.http.as_deref());
            Arc::new(HttpSite::build(&https, pools, true, previous))
        });
        SniTable {
            name: shared_name(listeners),
            max_connections: shared_limit(listeners),
            hello_timeout: listeners
                .iter()
                .filter_map(|l| l.tls.as_ref().map(|t| t.handshake_timeout))
                .max()
                .unwrap_or(gatehouse_config::DEFAULT_HANDSHAKE_TIMEOUT),
            accept_proxy: listeners.first().and_then(|l| l.accept_proxy.clone()),
            vhosts,
            hosts,
            tickets,
            http,
        }
    }

    /// The listeners' names, comma-separated.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connections allowed on the socket: the largest limit of its listeners.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// PROXY headers accepted on the socket.
    pub fn accept_proxy(&self) -> Option<&AcceptProxy> {
        self.accept_proxy.as_ref()
    }
}

/// The handshake config of a terminating listener.
fn handshake_config(
    listener: &Listener,
    t: &gatehouse_config::Terminate,
    tickets: Option<Arc<dyn ProducesTickets>>,
) -> Option<Arc<ServerConfig>> {
    let certs = t
        .certificates
        .iter()
        .map(|c| Arc::clone(&c.loaded))
        .collect();
    let resolver = Arc::new(CertResolver::new(certs)?);
    let options = ServerOptions {
        alpn: t.alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
        tls13_only: t.tls13_only,
    };
    match tickets.map(|tickets| server_config(resolver, &options, tickets)) {
        Some(Ok(config)) => Some(config),
        Some(Err(e)) => {
            tracing::error!(listener = %listener.name, error = %e, "TLS settings refused; this listener's names are not served");
            None
        }
        None => {
            tracing::error!(listener = %listener.name, "no TLS session-ticket key; this listener's names are not served");
            None
        }
    }
}

/// Serves one connection on a TLS socket.
pub(crate) async fn handle(
    mut client: ClientStream,
    mut origin: Origin,
    table: &SniTable,
    drain: &CancellationToken,
    cut: &CancellationToken,
    started: Instant,
) {
    let deadline = started + table.hello_timeout;
    let peer = origin.client;
    let refused = |sni: Option<&str>, outcome: &str| {
        let conn = Conn {
            started,
            route: None,
            sni,
            tls: None,
            replay: &[],
        };
        access_log!(info, table.name, peer, conn, "connection refused"; outcome = %outcome,);
    };
    let hello = tokio::select! {
        hello = read_client_hello(&mut client, MAX_HELLO, table.hello_timeout) => hello,
        () = cut.cancelled() => return,
    };
    let (accepted, bytes) = match hello {
        Ok(pair) => pair,
        Err(e) => {
            refused(None, &format!("refused: {e}"));
            return;
        }
    };
    let sni = info(&accepted).server_name;
    let Some(target) = table.hosts.get(sni.as_deref()) else {
        let outcome = match &sni {
            Some(_) => "refused: no route for this server name",
            None => "refused: no server name, and no route takes every name",
        };
        refused(sni.as_deref(), outcome);
        return;
    };
    let (vhost, route, access) = match target {
        Target::Route {
            vhost,
            route,
            access,
            to,
        } => (&table.vhosts[*vhost], Some((route, to)), Some(access)),
        Target::Http { vhost } => (&table.vhosts[*vhost], None, None),
    };
    // An HTTPS listener answers a refused address with 403, per request.
    if route.is_some()
        && !(vhost.listener.access.allows(peer.ip()) && access.is_none_or(|a| a.allows(peer.ip())))
    {
        let conn = Conn {
            started,
            route: route.map(|(name, _)| name.as_str()),
            sni: sni.as_deref(),
            tls: None,
            replay: &[],
        };
        refuse_address(&vhost.listener.name, &origin, &conn);
        return;
    }
    if origin.authority.is_none() {
        origin.authority.clone_from(&sni);
    }
    let conn = Conn {
        started,
        route: route.map(|(name, _)| name.as_str()),
        sni: sni.as_deref(),
        tls: Some("passthrough"),
        replay: &bytes,
    };
    // Passthrough: the backend gets every byte read so far, then the rest.
    let Some(config) = &vhost.terminate else {
        if let Some((_, to)) = route {
            forward(&mut client, &origin, to, cut, conn).await;
        }
        return;
    };
    let handshake = StartHandshake::from_parts(accepted, client).into_stream(Arc::clone(config));
    let remaining = deadline.saturating_duration_since(Instant::now());
    let mut stream = tokio::select! {
        done = tokio::time::timeout(remaining, handshake) => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                refused(sni.as_deref(), &format!("refused: TLS handshake failed: {e}"));
                return;
            }
            Err(_) => {
                refused(sni.as_deref(), "refused: TLS handshake not complete in time");
                return;
            }
        },
        () = cut.cancelled() => return,
    };
    match (route, &table.http) {
        // TLS termination in front of a TCP backend.
        (Some((_, to)), _) => {
            let conn = Conn {
                tls: Some("terminate"),
                replay: &[],
                ..conn
            };
            forward(&mut stream, &origin, to, cut, conn).await;
        }
        // HTTPS: each request is routed and logged on its own.
        (None, Some(site)) => {
            crate::http::serve(stream, origin, Arc::clone(site), drain, cut).await;
        }
        (None, None) => {}
    }
}
