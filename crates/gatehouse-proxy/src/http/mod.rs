//! The HTTP gateway: [`server`] serves and proxies, [`router`] chooses the rule for a request
//! (Gateway API HTTPRoute precedence), [`filters`] apply a rule's filters, `client` keeps
//! pooled connections to each backend.

mod client;
pub mod filters;
mod idle;
pub mod router;
pub mod server;

pub use server::{HttpSite, serve};
