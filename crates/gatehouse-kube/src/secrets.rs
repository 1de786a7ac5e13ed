//! TLS Secrets that stop holding a usable certificate keep their last good one.
//!
//! A Secret whose `tls.crt` and `tls.key` do not parse or do not match (a hand edit gone
//! wrong, a renewal written half) would make its Gateway fail to compile and be left out, with
//! every listener on it. Instead the last version that held a good pair is served, with a
//! warning, until a good one arrives. A Secret with no good version yet, or one that was
//! deleted, is not kept: that is the Gateway's own error.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;

use crate::snapshot::{Key, Snapshot};

/// One Secret as last seen.
struct Seen {
    /// The resourceVersion last checked.
    version: Option<String>,
    /// Whether that version holds a usable pair.
    good: bool,
    /// The last version that did.
    last_good: Option<Arc<Secret>>,
}

/// What was last seen of each Secret.
#[derive(Default)]
pub(crate) struct GoodSecrets {
    seen: BTreeMap<Key, Seen>,
}

impl GoodSecrets {
    /// Replaces, in `snapshot`, each Secret that holds no usable pair with its last good
    /// version, if it had one. Each Secret version is parsed once.
    pub(crate) fn apply(&mut self, snapshot: &mut Snapshot) {
        self.seen.retain(|k, _| snapshot.secrets.contains_key(k));
        for (key, secret) in &mut snapshot.secrets {
            let version = secret.metadata.resource_version.clone();
            let entry = self.seen.entry(key.clone()).or_insert(Seen {
                version: None,
                good: false,
                last_good: None,
            });
            if entry.version.is_none() || entry.version != version {
                let verdict = check(secret);
                entry.version = version;
                entry.good = verdict.is_ok();
                match verdict {
                    Ok(()) => entry.last_good = Some(Arc::clone(secret)),
                    Err(e) if entry.last_good.is_some() => tracing::warn!(
                        secret = %format!("{}/{}", key.0, key.1),
                        "kubernetes: the Secret holds no usable certificate ({e}); its previous version stays in use"
                    ),
                    Err(_) => {}
                }
            }
            if !entry.good
                && let Some(good) = &entry.last_good
            {
                *secret = Arc::clone(good);
            }
        }
    }
}

fn check(secret: &Secret) -> Result<(), String> {
    let data = secret.data.as_ref();
    let (Some(cert), Some(key)) = (
        data.and_then(|d| d.get("tls.crt")),
        data.and_then(|d| d.get("tls.key")),
    ) else {
        return Err("no `tls.crt` and `tls.key`".to_owned());
    };
    gatehouse_tls::certs::Certificate::from_pem(&cert.0, &key.0)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
