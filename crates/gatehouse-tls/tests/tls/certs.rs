//! `Certificate::from_pem`, `load_roots` and what a loaded certificate tells.

use gatehouse_tls::certs::{CertError, Certificate, load_roots};
use rcgen::{CertificateParams, DnType, KeyPair};

use crate::common::{Ca, fixture, key, self_signed};

#[test]
fn loads_each_pkcs8_key_type_from_rcgen() {
    for (alg, key_type) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, "ECDSA"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA"),
        (&rcgen::PKCS_ED25519, "Ed25519"),
        (&rcgen::PKCS_RSA_SHA256, "RSA"),
    ] {
        let pem = self_signed(alg, &["a.example.com"]);
        assert!(pem.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let cert = Certificate::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap();
        assert_eq!(cert.key_type(), key_type);
        assert_eq!(cert.names(), ["a.example.com"]);
        assert_eq!(cert.certified_key().cert.len(), 1);
    }
}

#[test]
fn loads_pkcs1_rsa_and_sec1_ec_keys() {
    let rsa = Certificate::from_pem(&fixture("rsa-pkcs1.crt"), &fixture("rsa-pkcs1.key")).unwrap();
    assert_eq!(rsa.key_type(), "RSA");
    assert_eq!(rsa.names(), ["rsa.example.com", "*.rsa.example.com"]);
    assert_eq!(rsa.common_name(), Some("RSA Fixture"));
    // Oct 30 12:39:14 2126 GMT, a GeneralizedTime.
    assert_eq!(rsa.not_after(), 4_949_037_554);

    let ec =
        Certificate::from_pem(&fixture("ec-p384-sec1.crt"), &fixture("ec-p384-sec1.key")).unwrap();
    assert_eq!(ec.key_type(), "ECDSA");
    assert_eq!(ec.names(), ["p384.example.com"]);
    assert_eq!(ec.common_name(), Some("p384.example.com"));
}

#[test]
fn a_combined_file_serves_as_both_chain_and_key() {
    let pem = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, &["a.example.com"]);
    let combined = format!("{}{}", pem.key, pem.cert);
    let cert = Certificate::from_pem(combined.as_bytes(), combined.as_bytes()).unwrap();
    assert_eq!(cert.names(), ["a.example.com"]);
}

#[test]
fn chain_order_is_kept_leaf_first() {
    let ca = Ca::new();
    let leaf = ca.leaf(&["a.example.com"]);
    let chain = format!("{}{}", leaf.cert, ca.pem);
    let cert = Certificate::from_pem(chain.as_bytes(), leaf.key.as_bytes()).unwrap();
    assert_eq!(cert.certified_key().cert.len(), 2);
    assert_eq!(cert.names(), ["a.example.com"]);
}

#[test]
fn key_of_another_certificate_is_a_mismatch() {
    let a = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, &["a.example.com"]);
    let b = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, &["b.example.com"]);
    let err = Certificate::from_pem(a.cert.as_bytes(), b.key.as_bytes()).unwrap_err();
    assert_eq!(err, CertError::KeyMismatch);
    assert_eq!(
        err.to_string(),
        "the private key does not match the certificate"
    );

    // Same for a key of another type.
    let ed = self_signed(&rcgen::PKCS_ED25519, &["c.example.com"]);
    let err = Certificate::from_pem(a.cert.as_bytes(), ed.key.as_bytes()).unwrap_err();
    assert_eq!(err, CertError::KeyMismatch);

    // Two leaves of one CA, same names: each key matches only its own leaf.
    let ca = Ca::new();
    let leaf = ca.leaf(&["d.example.com"]);
    let other = ca.leaf(&["d.example.com"]);
    let err = Certificate::from_pem(leaf.cert.as_bytes(), other.key.as_bytes()).unwrap_err();
    assert_eq!(err, CertError::KeyMismatch);
}

#[test]
fn pem_errors_say_what_is_missing() {
    let good = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, &["a.example.com"]);

    let err = Certificate::from_pem(b"", good.key.as_bytes()).unwrap_err();
    assert_eq!(err, CertError::NoCertificate);
    assert_eq!(err.to_string(), "no certificate found in the PEM data");

    // A key file given as the chain: no CERTIFICATE section in it.
    let err = Certificate::from_pem(good.key.as_bytes(), good.key.as_bytes()).unwrap_err();
    assert_eq!(err, CertError::NoCertificate);

    let err = Certificate::from_pem(good.cert.as_bytes(), good.cert.as_bytes()).unwrap_err();
    assert_eq!(err, CertError::NoPrivateKey);
    assert!(err.to_string().starts_with("no private key found"), "{err}");

    let err = Certificate::from_pem(b"hello, world\n", good.key.as_bytes()).unwrap_err();
    assert_eq!(err, CertError::NoCertificate);

    let broken = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    let err = Certificate::from_pem(broken.as_bytes(), good.key.as_bytes()).unwrap_err();
    assert!(matches!(err, CertError::InvalidPem(_)), "{err:?}");
    assert!(err.to_string().starts_with("invalid PEM: "), "{err}");

    let unterminated = "-----BEGIN CERTIFICATE-----\nMIIB\n";
    let err = Certificate::from_pem(unterminated.as_bytes(), good.key.as_bytes()).unwrap_err();
    assert!(matches!(err, CertError::InvalidPem(_)), "{err:?}");

    // Valid base64, but not a certificate.
    let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let err = Certificate::from_pem(junk.as_bytes(), good.key.as_bytes()).unwrap_err();
    assert!(matches!(err, CertError::InvalidCertificate(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("invalid certificate: "),
        "{err}"
    );

    // A key section whose DER is junk.
    let junk_key = "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n";
    let err = Certificate::from_pem(good.cert.as_bytes(), junk_key.as_bytes()).unwrap_err();
    assert!(matches!(err, CertError::UnsupportedKey(_)), "{err:?}");
}

#[test]
fn unsupported_and_encrypted_keys_are_named() {
    let good = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, &["a.example.com"]);

    let err = Certificate::from_pem(good.cert.as_bytes(), &fixture("ed448.key")).unwrap_err();
    assert!(matches!(err, CertError::UnsupportedKey(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("unsupported private key type: "),
        "{err}"
    );

    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n\
                     -----END ENCRYPTED PRIVATE KEY-----\n";
    let err = Certificate::from_pem(good.cert.as_bytes(), encrypted.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("encrypted PKCS#8"), "{err}");

    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n\
                   -----END OPENSSH PRIVATE KEY-----\n";
    let err = Certificate::from_pem(good.cert.as_bytes(), openssh.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("OpenSSH"), "{err}");
}

#[test]
fn names_are_lower_case_with_wildcards_and_without_duplicates() {
    let pem = self_signed(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &[
            "Git.Example.COM",
            "*.Apps.example.com",
            "git.example.com",
            "192.168.1.10",
            "Dotted.example.com.",
        ],
    );
    let cert = Certificate::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap();
    assert_eq!(
        cert.names(),
        [
            "git.example.com",
            "*.apps.example.com",
            "dotted.example.com"
        ]
    );
}

#[test]
fn no_dns_names_is_not_an_error() {
    let pem = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, &[]);
    let cert = Certificate::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap();
    assert!(cert.names().is_empty());
}

#[test]
fn not_after_and_common_name_from_rcgen() {
    let key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    for ((y, m, d), expected) in [
        // UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280).
        ((2030, 1, 1), 1_893_456_000),
        ((2049, 12, 31), 2_524_521_600),
        ((2050, 1, 1), 2_524_608_000),
        ((2100, 3, 1), 4_107_542_400),
    ] {
        let mut params = CertificateParams::new(vec!["a.example.com".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(y, m, d);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Homelab");
        params
            .distinguished_name
            .push(DnType::CommonName, "Gatehouse Ünïcode");
        let cert = params.self_signed(&key).unwrap();
        let loaded =
            Certificate::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        assert_eq!(loaded.not_after(), expected, "{y}-{m}-{d}");
        assert_eq!(loaded.common_name(), Some("Gatehouse Ünïcode"));
    }

    // No common name at all.
    let mut params = CertificateParams::new(vec!["a.example.com".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let cert = params.self_signed(&key).unwrap();
    let loaded =
        Certificate::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    assert_eq!(loaded.common_name(), None);
}

#[test]
fn equal_when_chain_and_key_bytes_are_equal() {
    let a = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, &["a.example.com"]);
    let load = |cert: &str, key: &str| Certificate::from_pem(cert.as_bytes(), key.as_bytes());
    assert_eq!(
        load(&a.cert, &a.key).unwrap(),
        load(&a.cert, &a.key).unwrap()
    );

    // Same key, re-issued certificate: different.
    let key = KeyPair::from_pem(&a.key).unwrap();
    let reissued = CertificateParams::new(vec!["a.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    assert_ne!(
        load(&a.cert, &a.key).unwrap(),
        load(&reissued, &a.key).unwrap()
    );

    // Same chain and key, whitespace and order of sections changed: still equal.
    let combined = format!("\n{}\n\n{}", a.key, a.cert);
    assert_eq!(
        load(&a.cert, &a.key).unwrap(),
        load(&combined, &combined).unwrap()
    );
}

#[test]
fn debug_never_shows_the_key() {
    let a = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256, &["a.example.com"]);
    let cert = Certificate::from_pem(a.cert.as_bytes(), a.key.as_bytes()).unwrap();
    let debug = format!("{cert:?}");
    assert!(debug.contains("a.example.com"), "{debug}");
    let key_base64 = a.key.lines().nth(1).unwrap();
    assert!(!debug.contains(&key_base64[..16]), "{debug}");
}

#[test]
fn roots_from_a_bundle() {
    let (a, b) = (Ca::new(), Ca::new());
    let bundle = format!("{}\n{}", a.pem, b.pem);
    assert_eq!(load_roots(bundle.as_bytes()).unwrap().len(), 2);

    assert_eq!(load_roots(b"").unwrap_err(), CertError::NoCertificate);
    assert_eq!(
        load_roots(b"# just a comment\n").unwrap_err(),
        CertError::NoCertificate
    );

    let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let with_junk = format!("{}{junk}", a.pem);
    let err = load_roots(with_junk.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("certificate 2 in the bundle"),
        "{err}"
    );

    let broken = format!(
        "{}-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        a.pem
    );
    assert!(matches!(
        load_roots(broken.as_bytes()).unwrap_err(),
        CertError::InvalidPem(_)
    ));
}
