//! `CertResolver::choose`: exact > wildcard (one label) > default, and key type by the
//! client's signature schemes.

use std::sync::Arc;

use gatehouse_tls::certs::Certificate;
use gatehouse_tls::rustls::SignatureScheme;
use gatehouse_tls::server::CertResolver;

use crate::common::cert;

const ECDSA: &[SignatureScheme] = &[SignatureScheme::ECDSA_NISTP256_SHA256];
const RSA: &[SignatureScheme] = &[
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PKCS1_SHA256,
];
/// What a current browser offers, roughly.
const ANY: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::ED25519,
];

fn ecdsa(names: &[&str]) -> Arc<Certificate> {
    cert(&rcgen::PKCS_ECDSA_P256_SHA256, names)
}

fn rsa(names: &[&str]) -> Arc<Certificate> {
    cert(&rcgen::PKCS_RSA_SHA256, names)
}

#[test]
fn empty_list_has_no_resolver() {
    assert!(CertResolver::new(Vec::new()).is_none());
}

#[test]
fn exact_then_wildcard_of_one_label_then_default() {
    let resolver = CertResolver::new(vec![
        ecdsa(&["default.example.net"]),
        ecdsa(&["git.example.com"]),
        ecdsa(&["*.example.com"]),
        ecdsa(&["*.apps.example.com", "apps.example.com"]),
    ])
    .unwrap();
    let table: &[(Option<&str>, usize)] = &[
        (None, 0),
        (Some("default.example.net"), 0),
        (Some("git.example.com"), 1),
        (Some("wiki.example.com"), 2),
        // A wildcard covers exactly one label: not the bare parent, not two labels.
        (Some("example.com"), 0),
        (Some("a.b.example.com"), 0),
        (Some("x.apps.example.com"), 3),
        (Some("apps.example.com"), 3),
        (Some("y.x.apps.example.com"), 0),
        // Case-insensitive; a trailing dot is ignored.
        (Some("GIT.Example.COM"), 1),
        (Some("git.example.com."), 1),
        (Some("Wiki.EXAMPLE.com."), 2),
        (Some("unknown.test"), 0),
        (Some(""), 0),
        (Some("."), 0),
        (Some(".example.com"), 0),
        (Some("*.example.com"), 0),
    ];
    for &(name, expected) in table {
        assert_eq!(resolver.choose(name, ANY), expected, "{name:?}");
    }
}

#[test]
fn exact_beats_wildcard_whatever_the_order() {
    let resolver =
        CertResolver::new(vec![ecdsa(&["*.example.com"]), ecdsa(&["git.example.com"])]).unwrap();
    assert_eq!(resolver.choose(Some("git.example.com"), ANY), 1);
    assert_eq!(resolver.choose(Some("wiki.example.com"), ANY), 0);
}

#[test]
fn same_name_rsa_and_ecdsa_by_signature_schemes() {
    let names = &["both.example.com", "*.both.example.com"];
    let rsa_first = CertResolver::new(vec![rsa(names), ecdsa(names)]).unwrap();
    for name in ["both.example.com", "a.both.example.com"] {
        assert_eq!(rsa_first.choose(Some(name), ECDSA), 1, "{name}");
        assert_eq!(rsa_first.choose(Some(name), RSA), 0, "{name}");
        // Both usable: configuration order.
        assert_eq!(rsa_first.choose(Some(name), ANY), 0, "{name}");
    }

    let ecdsa_first = CertResolver::new(vec![ecdsa(names), rsa(names)]).unwrap();
    assert_eq!(ecdsa_first.choose(Some("both.example.com"), ANY), 0);
    assert_eq!(ecdsa_first.choose(Some("both.example.com"), RSA), 1);
}

#[test]
fn a_match_that_cannot_sign_gives_way() {
    let resolver = CertResolver::new(vec![
        rsa(&["default.example.net"]),
        rsa(&["git.example.com"]),
        ecdsa(&["*.example.com"]),
        ecdsa(&["other.example.net"]),
    ])
    .unwrap();
    // The exact match is RSA; an ECDSA-only client gets the ECDSA wildcard.
    assert_eq!(resolver.choose(Some("git.example.com"), ECDSA), 2);
    assert_eq!(resolver.choose(Some("git.example.com"), RSA), 1);
    // No name match: the first certificate that can sign.
    assert_eq!(resolver.choose(None, ECDSA), 2);
    assert_eq!(resolver.choose(None, RSA), 0);
    assert_eq!(resolver.choose(Some("a.b.example.com"), ECDSA), 2);
    // Nothing can sign: the most specific match, so rustls reports the failure.
    assert_eq!(resolver.choose(Some("git.example.com"), &[]), 1);
    assert_eq!(resolver.choose(Some("wiki.example.com"), &[]), 2);
    assert_eq!(resolver.choose(None, &[]), 0);
    assert_eq!(
        resolver.choose(Some("git.example.com"), &[SignatureScheme::ED448]),
        1
    );
}

#[test]
fn certs_are_kept_in_order() {
    let a = ecdsa(&["a.example.com"]);
    let b = ecdsa(&["b.example.com"]);
    let resolver = CertResolver::new(vec![a.clone(), b.clone()]).unwrap();
    assert!(Arc::ptr_eq(&resolver.certs()[0], &a));
    assert!(Arc::ptr_eq(&resolver.certs()[1], &b));
}
