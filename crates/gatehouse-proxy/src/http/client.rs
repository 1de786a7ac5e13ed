//! Connections to HTTP backends: one pooled hyper client per backend pool, whose connector
//! opens TCP (and TLS, when the backend has `tls`) to the endpoint the balancer picked. The
//! request URI carries the endpoint's address, so the client keeps idle connections per
//! endpoint and reuses them across requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::idle::Idle;
use crate::front::Origin;
use crate::pool::Pool;
use crate::upstream::{Upstream, open};

/// How long an idle pooled connection to an endpoint is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// A request body towards a backend: the client's, or none (a retry of a bodiless request).
pub(crate) type UpstreamBody = Either<Idle<Incoming>, Empty<Bytes>>;

/// The client for one backend pool.
pub(crate) type PoolClient = Client<Connector, UpstreamBody>;

/// Builds the pooled client of `pool`. A backend with `proxyProtocol` gets a client per client
/// connection (`origin`), so that its connections carry that client's PROXY header.
pub(crate) fn client_for(pool: &Arc<Pool>, origin: Option<Arc<Origin>>) -> PoolClient {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .set_host(false)
        .build(Connector {
            pool: Arc::clone(pool),
            origin,
        })
}

/// Opens connections to the endpoints of one pool.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    pool: Arc<Pool>,
    origin: Option<Arc<Origin>>,
}

/// Why a connect failed; the client wraps it, `is_connect()` tells it apart.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Upstream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let pool = Arc::clone(&self.pool);
        let origin = self.origin.clone();
        Box::pin(async move {
            let authority = uri.authority().ok_or("request URI without an endpoint")?;
            let addr: std::net::SocketAddr = authority.as_str().parse()?;
            let endpoint = pool
                .endpoints()
                .into_iter()
                .find(|e| e.addr == addr)
                .ok_or("the endpoint left the pool")?;
            let timeout = pool.spec().connect_timeout;
            match tokio::time::timeout(timeout, open(&pool, &endpoint, origin.as_deref())).await {
                Ok(Ok(stream)) => Ok(TokioIo::new(stream)),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(format!("timed out after {timeout:?}").into()),
            }
        })
    }
}
