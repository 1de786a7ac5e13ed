//! Gatehouse's data plane: listening sockets, backend pools, balancing, health checking and
//! proxying.
//!
//! The pieces, and who owns what:
//! - [`bind`] opens listening sockets (IP_FREEBIND, so an address this node does not hold yet
//!   can be listened on).
//! - [`Pool`] is the live state of one configured backend: its resolved [`Endpoint`]s, their
//!   health and open-connection counts. Picking an endpoint ([`Pool::pick`]) takes no lock.
//! - [`balance`] holds the algorithms as pure functions over a slice of endpoints.
//! - [`health`] runs the active checks; passive ejection happens where connects fail.
//! - [`tcp`] accepts connections and proxies them; each connection holds its own `Arc`s of the
//!   listener settings and endpoint it started with, so a reload never changes it mid-flight.
//! - [`tls`] routes TLS connections by the ClientHello's server name ([`hosts`] is the lookup),
//!   then passes them through or terminates them; `upstream` connects to endpoints, in TLS when
//!   the backend asks for it.
//! - [`udp`] relays datagrams per client flow, each flow on its own socket to one endpoint.
//! - [`proxy_protocol`] reads and writes PROXY protocol headers (HAProxy's v1 and v2).
//!
//! No function here reads a file or knows about reloads: the caller hands in compiled config
//! and cancellation tokens.

pub mod balance;
pub mod bind;
mod clock;
mod copy;
pub mod front;
pub mod health;
pub mod hosts;
pub mod http;
mod pool;
pub mod proxy_protocol;
mod resolve;
pub mod tcp;
pub mod tls;
pub mod udp;
mod upstream;

pub use pool::{Endpoint, EndpointGuard, Pool};
pub use upstream::UpstreamTls;
