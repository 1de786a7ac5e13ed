//! Certificate chains and private keys from PEM, and CA bundles.
//!
//! A [`Certificate`] is loaded once per (re)load and shared (`Arc`) by every handshake that
//! chooses it. Loading checks what a handshake would otherwise find out too late: that there is
//! a chain, that the key is a kind aws-lc-rs can sign with, and that it belongs to the leaf.
//!
//! The few leaf fields we show (names, notAfter, common name) are read from the DER here:
//! webpki parses the SAN; the validity and subject name need a dozen lines of DER walking
//! (module `der` below), which is cheaper than an X.509 parser dependency.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::provider;

/// A certificate chain and its private key, loaded from PEM, ready to serve.
pub struct Certificate {
    certified: Arc<CertifiedKey>,
    /// Kept only to tell a changed key file on reload (see the `PartialEq` impl).
    key_der: PrivateKeyDer<'static>,
    names: Vec<String>,
    key_type: &'static str,
    not_after: i64,
    common_name: Option<String>,
}

impl Certificate {
    /// Parses a PEM chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC;
    /// RSA, ECDSA P-256/P-384, Ed25519) and checks that the key matches the leaf
    /// ([`CertifiedKey::keys_match`]).
    ///
    /// Sections of other kinds are skipped, so `cert_pem` and `key_pem` may be the same
    /// combined file. A leaf without DNS names is accepted (a default certificate may have
    /// none).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Certificate, CertError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(CertError::from_pem)?;
        let Some(leaf) = chain.first() else {
            return Err(CertError::NoCertificate);
        };

        let parsed = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| CertError::InvalidCertificate(format!("the leaf: {e}")))?;
        let mut names: Vec<String> = Vec::new();
        for name in parsed.valid_dns_names() {
            // SNI never has a trailing dot, so a SAN with one would never match otherwise.
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let common_name = der::common_name(parsed.subject());
        let not_after = der::not_after(leaf.as_ref()).ok_or_else(|| {
            CertError::InvalidCertificate("the leaf: cannot read its notAfter date".into())
        })?;

        let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            pem::Error::NoItemsFound => no_key_error(key_pem),
            e => CertError::from_pem(e),
        })?;
        let key = provider()
            .key_provider
            .load_private_key(key_der.clone_key())
            .map_err(|e| CertError::UnsupportedKey(e.to_string()))?;
        let key_type = match key.algorithm() {
            rustls::SignatureAlgorithm::RSA => "RSA",
            rustls::SignatureAlgorithm::ECDSA => "ECDSA",
            rustls::SignatureAlgorithm::ED25519 => "Ed25519",
            other => return Err(CertError::UnsupportedKey(format!("{other:?}"))),
        };

        let certified = CertifiedKey::new(chain, key);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(CertError::KeyMismatch);
            }
            Err(e) => return Err(CertError::InvalidCertificate(e.to_string())),
        }

        Ok(Certificate {
            certified: Arc::new(certified),
            key_der,
            names,
            key_type,
            not_after,
            common_name,
        })
    }

    /// The DNS names of the leaf's subjectAltName, lower case, without a trailing dot,
    /// wildcards as `"*.example.com"`, in certificate order without duplicates.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `"RSA"`, `"ECDSA"` or `"Ed25519"`.
    pub fn key_type(&self) -> &'static str {
        self.key_type
    }

    /// The leaf's notAfter, in seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The leaf's subject common name, if it has one in a string type we read (UTF8String,
    /// PrintableString, IA5String, BMPString).
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The chain and signing key, as a handshake uses them.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }
}

/// Equal when the chain DER and the key DER bytes are equal, so a reload can tell whether a
/// file changed.
impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.certified.cert == other.certified.cert
            && self.key_der.secret_der() == other.key_der.secret_der()
    }
}

impl Eq for Certificate {}

/// Shows what an operator needs; never the key.
impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("names", &self.names)
            .field("common_name", &self.common_name)
            .field("key_type", &self.key_type)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.certified.cert.len())
            .finish_non_exhaustive()
    }
}

/// Reads a CA bundle (PEM, one or more certificates) into a root store; an error if it holds
/// no certificate or one does not parse as a trust anchor.
pub fn load_roots(pem: &[u8]) -> Result<rustls::RootCertStore, CertError> {
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(CertError::from_pem)?;
        roots.add(cert).map_err(|e| {
            CertError::InvalidCertificate(format!("certificate {} in the bundle: {e}", i + 1))
        })?;
    }
    if roots.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(roots)
}

/// Why a certificate, key or CA bundle could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    /// The PEM data holds no `CERTIFICATE` section.
    NoCertificate,
    /// The PEM data holds no private key section of a kind we read.
    NoPrivateKey,
    /// The private key is not the one the leaf certificate was issued for.
    KeyMismatch,
    /// The key is of a kind aws-lc-rs cannot sign with, is encrypted, or does not parse.
    UnsupportedKey(String),
    /// The PEM framing or base64 is broken.
    InvalidPem(String),
    /// A certificate's DER does not parse.
    InvalidCertificate(String),
}

impl CertError {
    fn from_pem(e: pem::Error) -> CertError {
        CertError::InvalidPem(e.to_string())
    }
}

/// `NoPrivateKey`, unless the PEM holds a key we recognise but do not read: then say which.
fn no_key_error(key_pem: &[u8]) -> CertError {
    let has = |label: &str| {
        let marker = format!("-----BEGIN {label}-----");
        key_pem
            .windows(marker.len())
            .any(|w| w == marker.as_bytes())
    };
    if has("ENCRYPTED PRIVATE KEY") {
        CertError::UnsupportedKey(
            "encrypted PKCS#8 (decrypt it first, e.g. `openssl pkey -in key.pem -out plain.pem`)"
                .into(),
        )
    } else if has("OPENSSH PRIVATE KEY") {
        CertError::UnsupportedKey("an OpenSSH key, not an X.509 private key".into())
    } else {
        CertError::NoPrivateKey
    }
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::NoCertificate => f.write_str("no certificate found in the PEM data"),
            CertError::NoPrivateKey => f.write_str(
                "no private key found in the PEM data \
                 (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            ),
            CertError::KeyMismatch => f.write_str("the private key does not match the certificate"),
            CertError::UnsupportedKey(what) => write!(f, "unsupported private key type: {what}"),
            CertError::InvalidPem(why) => write!(f, "invalid PEM: {why}"),
            CertError::InvalidCertificate(why) => write!(f, "invalid certificate: {why}"),
        }
    }
}

impl std::error::Error for CertError {}

/// Just enough DER reading for the leaf's notAfter and subject common name.
///
/// Every function returns `None` on anything unexpected; nothing here can panic on bad input
/// (slices are only taken after a length check).
mod der {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    /// `[0] EXPLICIT Version` in a TBSCertificate.
    const VERSION: u8 = 0xa0;
    /// id-at-commonName, 2.5.4.3.
    const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

    /// Splits one element off `input`: (tag, contents, rest). Low tag numbers only (all we
    /// read), definite lengths of up to 4 length bytes.
    fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (len_bytes, rest) = rest.split_at(n);
            let len = len_bytes
                .iter()
                .fold(0usize, |len, &b| (len << 8) | usize::from(b));
            (len, rest)
        };
        if rest.len() < len {
            return None;
        }
        let (contents, rest) = rest.split_at(len);
        Some((tag, contents, rest))
    }

    /// Like [`next`], but the tag must be `tag`.
    fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        match next(input)? {
            (t, contents, rest) if t == tag => Some((contents, rest)),
            _ => None,
        }
    }

    /// notAfter of an X.509 certificate, in seconds since the Unix epoch.
    ///
    /// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    /// serialNumber, signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... } ... }`
    pub(super) fn not_after(cert: &[u8]) -> Option<i64> {
        let (cert, _) = expect(cert, SEQUENCE)?;
        let (tbs, _) = expect(cert, SEQUENCE)?;
        let (tag, _, mut rest) = next(tbs)?;
        if tag != VERSION {
            // No version field: what we read was the serial number.
            rest = tbs;
        }
        let (_, _serial, rest) = next(rest)?;
        let (_signature, rest) = expect(rest, SEQUENCE)?;
        let (_issuer, rest) = expect(rest, SEQUENCE)?;
        let (validity, _) = expect(rest, SEQUENCE)?;
        let (_, _not_before, validity) = next(validity)?;
        let (tag, time, _) = next(validity)?;
        match tag {
            UTC_TIME => parse_time(time, false),
            GENERALIZED_TIME => parse_time(time, true),
            _ => None,
        }
    }

    /// `YYMMDDHHMMSSZ` (UTCTime; YY < 50 is 20YY) or `YYYYMMDDHHMMSSZ` (GeneralizedTime), the
    /// forms RFC 5280 allows in certificates.
    fn parse_time(text: &[u8], four_digit_year: bool) -> Option<i64> {
        let (year, rest) = if four_digit_year {
            (digits(text.get(..4)?)?, text.get(4..)?)
        } else {
            let yy = digits(text.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
        };
        if rest.len() != 11 || rest[10] != b'Z' {
            return None;
        }
        let month = digits(&rest[0..2])?;
        let day = digits(&rest[2..4])?;
        let hour = digits(&rest[4..6])?;
        let minute = digits(&rest[6..8])?;
        let second = digits(&rest[8..10])?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
    }

    fn digits(text: &[u8]) -> Option<i64> {
        text.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    }

    /// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
    /// `days_from_civil`).
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let month_from_march = (month + 9) % 12;
        let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    /// The first common name in a Name's contents (`RDNSequence`: SETs of
    /// `SEQUENCE { OID, value }`).
    pub(super) fn common_name(mut rdns: &[u8]) -> Option<String> {
        while !rdns.is_empty() {
            let (mut set, rest) = expect(rdns, SET)?;
            rdns = rest;
            while !set.is_empty() {
                let (attribute, rest) = expect(set, SEQUENCE)?;
                set = rest;
                let (oid, value) = expect(attribute, OID)?;
                if oid == CN_OID {
                    let (tag, text, _) = next(value)?;
                    return string(tag, text);
                }
            }
        }
        None
    }

    fn string(tag: u8, text: &[u8]) -> Option<String> {
        match tag {
            // UTF8String, PrintableString, IA5String.
            0x0c | 0x13 | 0x16 => String::from_utf8(text.to_vec()).ok(),
            // BMPString: UTF-16BE.
            0x1e if text.len().is_multiple_of(2) => char::decode_utf16(
                text.chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
            )
            .collect::<Result<String, _>>()
            .ok(),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn times() {
            assert_eq!(parse_time(b"700101000000Z", false), Some(0));
            assert_eq!(parse_time(b"000301000000Z", false), Some(951_868_800));
            assert_eq!(parse_time(b"491231235959Z", false), Some(2_524_607_999));
            assert_eq!(parse_time(b"500101000000Z", false), Some(-631_152_000));
            assert_eq!(parse_time(b"20500101000000Z", true), Some(2_524_608_000));
            assert_eq!(parse_time(b"20240229120000Z", true), Some(1_709_208_000));
            assert_eq!(parse_time(b"99991231235959Z", true), Some(253_402_300_799));
            for bad in [
                &b""[..],
                b"7001010000Z",
                b"700101000000",
                b"701301000000Z",
                b"700100000000Z",
                b"700101240000Z",
                b"70010100000aZ",
                b"700101000000+0100",
            ] {
                assert_eq!(
                    parse_time(bad, false),
                    None,
                    "{:?}",
                    String::from_utf8_lossy(bad)
                );
            }
        }

        #[test]
        fn truncated_der_is_none_not_a_panic() {
            let cert = [0x30, 0x82, 0xff, 0xff, 0x30];
            for i in 0..=cert.len() {
                assert_eq!(not_after(&cert[..i]), None);
                assert_eq!(common_name(&cert[..i]), None);
            }
            assert_eq!(next(&[0x1f, 0x00]), None);
            assert_eq!(next(&[0x04, 0x85, 1, 2, 3, 4, 5]), None);
            assert_eq!(next(&[0x04, 0x80]), None);
        }

        #[test]
        fn bmp_string_common_name() {
            // SET { SEQUENCE { OID 2.5.4.3, BMPString "hé" } }
            let name = [
                0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x04, 0x00, b'h', 0x00,
                0xe9,
            ];
            assert_eq!(common_name(&name).as_deref(), Some("hé"));
        }
    }
}
