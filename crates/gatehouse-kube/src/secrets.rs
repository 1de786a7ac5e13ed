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

/// What was last seen of each Secret.
#[derive(Default)]
pub(crate) struct GoodSecrets {
    /// Per Secret: the resourceVersion last checked, whether it was good, and the last good
    /// version.
    seen: BTreeMap<Key, (Option<String>, bool, Option<Arc<Secret>>)>,
}

impl GoodSecrets {
    /// Replaces, in `snapshot`, each Secret that holds no usable pair with its last good
    /// version, if it had one. Each Secret version is parsed once.
    pub(crate) fn apply(&mut self, snapshot: &mut Snapshot) {
        self.seen.retain(|k, _| snapshot.secrets.contains_key(k));
        for (key, secret) in &mut snapshot.secrets {
            let version = secret.metadata.resource_version.clone();
            let entry = self.seen.entry(key.clone()).or_insert((None, false, None));
            if entry.0.is_none() || entry.0 != version {
                let verdict = check(secret);
                entry.0 = version;
                entry.1 = verdict.is_ok();
                match verdict {
                    Ok(()) => entry.2 = Some(Arc::clone(secret)),
                    Err(e) if entry.2.is_some() => tracing::warn!(
                        secret = %format!("{}/{}", key.0, key.1),
                        "kubernetes: the Secret holds no usable certificate ({e}); its previous version stays in use"
                    ),
                    Err(_) => {}
                }
            }
            if !entry.1
                && let Some(good) = &entry.2
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
