//! The terminating side: which certificate a handshake gets, and the listener's `ServerConfig`.
//!
//! [`CertResolver`] is built once per (re)load from the listener's certificates, in
//! configuration order, and indexes their SAN names so a handshake costs one or two hash
//! lookups. The session-ticket key ([`ticketer`]) is made once per listener and outlives
//! reloads, so a client resumes across a certificate change.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certs::Certificate;
use crate::provider;

/// Chooses the certificate for a handshake by SNI.
///
/// In order of preference:
///
/// 1. a certificate with the server name itself in its SAN;
/// 2. a certificate with a wildcard SAN covering the name: `*.example.com` covers exactly one
///    more label (`a.example.com`, neither `example.com` nor `a.b.example.com`);
/// 3. the default: the first certificate.
///
/// Names compare case-insensitively; a trailing dot in the SNI is ignored.
///
/// Several certificates may match one name (an RSA and an ECDSA one, say). Within a step the
/// first, in configuration order, whose key can sign with one of the client's signature
/// schemes wins; when none of a step's certificates can, the next step is tried (an exact
/// RSA-only match loses to an ECDSA wildcard for an ECDSA-only client, since it would fail
/// the handshake). With no SNI and no name match, the first certificate that can sign is the
/// default. When no certificate at all can sign, the most specific match is returned anyway
/// and the handshake fails with rustls's own error.
#[derive(Debug)]
pub struct CertResolver {
    certs: Vec<Arc<Certificate>>,
    /// Lower-case name -> indexes into `certs`, in configuration order.
    exact: HashMap<String, Vec<usize>>,
    /// `"example.com"` for a SAN `"*.example.com"` -> indexes into `certs`, in order.
    wildcard: HashMap<String, Vec<usize>>,
}

impl CertResolver {
    /// A resolver over `certs`, the first being the default; `None` if `certs` is empty.
    pub fn new(certs: Vec<Arc<Certificate>>) -> Option<CertResolver> {
        if certs.is_empty() {
            return None;
        }
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, cert) in certs.iter().enumerate() {
            // `names()` is already lower case and free of duplicates.
            for name in cert.names() {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_default().push(index),
                    None => exact.entry(name.clone()).or_default().push(index),
                }
            }
        }
        Some(CertResolver {
            certs,
            exact,
            wildcard,
        })
    }

    /// The certificates, in the order given to [`CertResolver::new`].
    pub fn certs(&self) -> &[Arc<Certificate>] {
        &self.certs
    }

    /// Index (into the list given to [`CertResolver::new`]) of the certificate chosen for
    /// this server name and these signature schemes.
    pub fn choose(&self, server_name: Option<&str>, schemes: &[SignatureScheme]) -> usize {
        let name = server_name.map(normalize).filter(|name| !name.is_empty());
        let exact = name
            .as_deref()
            .and_then(|name| self.exact.get(name))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let wildcard = name
            .as_deref()
            .and_then(parent_for_wildcard)
            .and_then(|parent| self.wildcard.get(parent))
            .map(Vec::as_slice)
            .unwrap_or_default();

        // Indexes come from `new`, so they are in bounds.
        let can_sign = |index: usize| {
            self.certs[index]
                .certified_key()
                .key
                .choose_scheme(schemes)
                .is_some()
        };
        let first_signing = |step: &[usize]| step.iter().copied().find(|&i| can_sign(i));
        first_signing(exact)
            .or_else(|| first_signing(wildcard))
            .or_else(|| (0..self.certs.len()).find(|&i| can_sign(i)))
            .or_else(|| exact.first().or(wildcard.first()).copied())
            .unwrap_or(0)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let index = self.choose(client_hello.server_name(), client_hello.signature_schemes());
        self.certs
            .get(index)
            .map(|cert| Arc::clone(cert.certified_key()))
    }
}

/// Lower case, without one trailing dot. Borrows when the name already is (rustls hands us
/// lower-case SNI, so usually no allocation).
fn normalize(name: &str) -> Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// `"example.com"` for `"a.example.com"`: what a `*.` SAN must name to cover it. `None` when
/// there is no dot, either side of it is empty, or the first label is itself a wildcard.
fn parent_for_wildcard(name: &str) -> Option<&str> {
    let (first, parent) = name.split_once('.')?;
    (!first.is_empty() && !first.contains('*') && !parent.is_empty()).then_some(parent)
}

/// A session-ticket key rotator (aws-lc-rs `Ticketer`). Create one per listener and keep it
/// across certificate reloads so resumption survives a reload.
pub fn ticketer() -> Result<Arc<dyn ProducesTickets>, rustls::Error> {
    rustls::crypto::aws_lc_rs::Ticketer::new()
}

/// Settings of a terminating listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// ALPN protocols in the server's preference order (e.g. `h2`, then `http/1.1`); empty
    /// for no ALPN.
    pub alpn: Vec<Vec<u8>>,
    /// Refuse TLS 1.2.
    pub tls13_only: bool,
}

/// A `ServerConfig`: aws-lc-rs, TLS 1.2 and 1.3 (1.3 only if `tls13_only`), no client auth,
/// the given resolver, ALPN protocols in preference order, session tickets from `ticketer`
/// plus the default in-memory session cache (stateful resumption), `ignore_client_order`
/// false.
///
/// Fails only if the provider lacks cipher suites for the versions, which aws-lc-rs does not;
/// the `Result` is there because rustls's builder returns one and we do not unwrap.
pub fn server_config(
    resolver: Arc<CertResolver>,
    options: &ServerOptions,
    ticketer: Arc<dyn ProducesTickets>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = if options.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = options.alpn.clone();
    config.ticketer = ticketer;
    // One TLS 1.3 ticket per handshake (rustls sends two by default): each costs an
    // encryption here and a session copy at the client, and one is what a client resumes with.
    config.send_tls13_tickets = 1;
    config.ignore_client_order = false;
    // `session_storage` keeps its default: an in-memory cache of 256 sessions.
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_names() {
        assert_eq!(normalize("Git.Example.COM."), "git.example.com");
        assert_eq!(normalize("git.example.com"), "git.example.com");
        assert!(matches!(normalize("git.example.com"), Cow::Borrowed(_)));
        assert_eq!(normalize("."), "");
    }

    #[test]
    fn wildcard_parent() {
        assert_eq!(parent_for_wildcard("a.example.com"), Some("example.com"));
        assert_eq!(
            parent_for_wildcard("a.b.example.com"),
            Some("b.example.com")
        );
        assert_eq!(parent_for_wildcard("example"), None);
        assert_eq!(parent_for_wildcard(".example.com"), None);
        assert_eq!(parent_for_wildcard("a."), None);
        assert_eq!(parent_for_wildcard("*.example.com"), None);
    }
}
