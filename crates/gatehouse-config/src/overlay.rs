//! What a provider adds to the config file from memory: the Kubernetes provider's view of the
//! cluster, as documents compiled together with the file.
//!
//! Each document is one object and its own "file" in diagnostics, named after the object
//! (`Service media/jellyfin`). One bad object must not stop the others: [`load_with`] drops
//! the documents that errors point into and compiles again, reporting what it dropped. An error
//! in the config file itself fails the whole load, as a reload does.

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::{Loaded, compile_inner};
use crate::diag::{Diagnostics, Pos, Severity, Source};

/// Certificate paths starting with this are read from [`Overlay::files`], not from disk.
pub const MEMORY_PREFIX: &str = "kubernetes:";

/// Documents and mappings from a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// The objects, in a stable order.
    pub documents: Vec<OverlayDocument>,
    /// `NAMESPACE/NAME:PORT` of a Service port -> the backend a fragment defines for it.
    pub services: BTreeMap<String, String>,
    /// `NAMESPACE/NAME` of a TLS Secret -> its certificate and key paths in `files`.
    pub secrets: BTreeMap<String, (String, String)>,
    /// `NAMESPACE/NAME` of a Gateway without `spec.addresses` -> its addresses (`pool:` entries).
    pub addresses: BTreeMap<String, Vec<String>>,
    /// In-memory files by path (each starting with [`MEMORY_PREFIX`]).
    pub files: BTreeMap<String, Vec<u8>>,
}

/// One object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDocument {
    /// Unique; names the object in diagnostics (`HTTPRoute media/sonarr`).
    pub name: String,
    /// How the text is read.
    pub kind: DocumentKind,
    /// YAML (or JSON, which is YAML).
    pub text: String,
}

/// How an overlay document is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A Gateway API object, read as a `gatewayApi.manifests` document is.
    Manifest,
    /// `backends` and `gateways` in the config's own shape.
    Fragment,
}

/// An overlay document left out of the running config, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// [`OverlayDocument::name`].
    pub document: String,
    /// The errors that pointed into it, one line each.
    pub errors: Vec<String>,
}

/// Compiles `source` with `overlay`, leaving out overlay documents that have errors.
///
/// Fails only when the config file (or a manifest file it names) has errors of its own.
pub fn load_with(
    source: &Source,
    overlay: &Overlay,
) -> Result<(Loaded, Vec<Rejected>), Diagnostics> {
    let mut overlay = overlay.clone();
    let mut rejected = Vec::new();
    loop {
        let diagnostics = match compile_inner(source, Some(&overlay)) {
            Ok(loaded) => return Ok((loaded, rejected)),
            Err(d) => d,
        };
        // The documents errors point into; an error outside them is the file's own.
        let mut bad: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut own = false;
        for d in diagnostics
            .items
            .iter()
            .filter(|d| d.severity == Severity::Error)
        {
            // An error in the file about something a document brought (a static DNS record
            // clashing with a Service's name) names the document in its related place.
            let blamed = std::iter::once(d.pos)
                .chain(d.related.as_ref().map(|(p, _)| *p))
                .find_map(|p| document_at(&overlay, &diagnostics, p));
            match blamed {
                Some(name) => bad
                    .entry(name)
                    .or_default()
                    .push(d.one_line(&diagnostics.source)),
                None => own = true,
            }
        }
        if own || bad.is_empty() {
            return Err(diagnostics);
        }
        let names: BTreeSet<String> = bad.keys().map(|n| (*n).to_owned()).collect();
        rejected.extend(bad.into_iter().map(|(name, errors)| Rejected {
            document: name.to_owned(),
            errors,
        }));
        overlay.documents.retain(|d| !names.contains(&d.name));
    }
}

/// The overlay document a position is in, if it is in one.
fn document_at<'a>(overlay: &'a Overlay, diagnostics: &Diagnostics, pos: Pos) -> Option<&'a str> {
    if pos.file == 0 {
        return None;
    }
    let file = diagnostics.source.file_of(pos);
    overlay
        .documents
        .iter()
        .find(|d| *d.name == *file.name)
        .map(|d| d.name.as_str())
}
