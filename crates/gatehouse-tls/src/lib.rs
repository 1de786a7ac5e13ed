//! TLS for Gatehouse, on rustls with the aws-lc-rs provider only.
//!
//! - [`hello`]: read a ClientHello without terminating TLS (bounded, every byte kept), for SNI
//!   routing and passthrough; the [`rustls::server::Accepted`] it yields can also continue into
//!   a terminated handshake.
//! - [`certs`]: certificate chains and keys from PEM, CA bundles.
//! - [`server`]: choosing a certificate by SNI, session tickets, the listener's `ServerConfig`.
//! - [`client`]: the `ClientConfig` for TLS from Gatehouse towards a backend.
//!
//! **API boundary:** every config is built with [`provider()`]; nothing here installs or reads
//! a process-default `CryptoProvider`, so the binary never has to pick one and a second
//! provider compiled in by some dependency cannot change what Gatehouse negotiates.

pub mod certs;
pub mod client;
pub mod hello;
pub mod server;

pub use rustls;
pub use tokio_rustls;

use std::sync::{Arc, OnceLock};

/// The one crypto provider: aws-lc-rs.
///
/// Built once and shared; every config in this crate is built with it.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_is_cached_and_has_tls12_and_tls13_suites() {
        assert!(Arc::ptr_eq(&provider(), &provider()));
        let suites = &provider().cipher_suites;
        assert!(suites.iter().any(|s| s.tls13().is_some()));
        assert!(
            suites
                .iter()
                .any(|s| s.version() == &rustls::version::TLS12)
        );
    }
}
