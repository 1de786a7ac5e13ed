//! Helpers shared by the test modules: certificates made with rcgen, ClientHellos made by a
//! real rustls client, and a tiny PRNG for the property-style tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use gatehouse_tls::certs::Certificate;
use gatehouse_tls::provider;
use gatehouse_tls::rustls::pki_types::ServerName;
use gatehouse_tls::rustls::{self, ClientConfig, ClientConnection, RootCertStore};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SignatureAlgorithm,
};

/// A certificate and its key, PEM.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A key of the given algorithm. RSA keys are slow to make in a debug build, so there is one
/// RSA key per test binary, shared.
pub fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
    if alg == &rcgen::PKCS_RSA_SHA256 {
        static RSA: OnceLock<String> = OnceLock::new();
        let pem = RSA.get_or_init(|| KeyPair::generate_for(alg).unwrap().serialize_pem());
        return KeyPair::from_pem(pem).unwrap();
    }
    KeyPair::generate_for(alg).unwrap()
}

/// A self-signed certificate for `names`, with a key of the given algorithm.
pub fn self_signed(alg: &'static SignatureAlgorithm, names: &[&str]) -> Pem {
    let key = key(alg);
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// [`self_signed`], loaded.
pub fn cert(alg: &'static SignatureAlgorithm, names: &[&str]) -> Arc<Certificate> {
    let pem = self_signed(alg, names);
    Arc::new(Certificate::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap())
}

/// A private CA that signs leaves.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A CA with a name of its own (webpki finds issuers by name: two CAs with one name
    /// would fail as a bad signature rather than an unknown issuer).
    pub fn new() -> Ca {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Gatehouse Test CA {n}"));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf (ECDSA P-256) for `names`; its PEM chain is the leaf alone.
    pub fn leaf(&self, names: &[&str]) -> Pem {
        self.leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, names)
    }

    /// A leaf with a key of the given algorithm.
    pub fn leaf_with(&self, alg: &'static SignatureAlgorithm, names: &[&str]) -> Pem {
        let key = key(alg);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// [`Ca::leaf_with`], loaded.
    pub fn leaf_cert(&self, alg: &'static SignatureAlgorithm, names: &[&str]) -> Arc<Certificate> {
        let pem = self.leaf_with(alg, names);
        Arc::new(Certificate::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap())
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        Arc::new(gatehouse_tls::certs::load_roots(self.pem.as_bytes()).unwrap())
    }
}

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The bytes a rustls client writes first: its ClientHello, in one record. `sni: None` turns
/// SNI off.
pub fn client_hello(sni: Option<&str>, alpn: &[&[u8]]) -> Vec<u8> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or("unused.example.com").to_owned()).unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// The standard test hello: SNI `git.example.com`, ALPN `h2`, `http/1.1`.
pub fn small_hello() -> Vec<u8> {
    client_hello(Some("git.example.com"), &[b"h2", b"http/1.1"])
}

/// A hello over 2 KiB: 30 made-up ALPN protocols of 100 bytes after `h2`.
pub fn large_hello() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut alpn: Vec<Vec<u8>> = vec![b"h2".to_vec()];
    alpn.extend((0..30u8).map(|i| vec![b'a' + i % 26; 100]));
    let refs: Vec<&[u8]> = alpn.iter().map(Vec::as_slice).collect();
    let hello = client_hello(Some("git.example.com"), &refs);
    assert!(hello.len() > 2048, "{}", hello.len());
    (hello, alpn)
}

/// The handshake payload of `records` (TLS records of type 0x16) re-split into `parts`
/// records, as a client or middlebox that fragments differently would send it.
pub fn refragment(records: &[u8], parts: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut version = [0x03, 0x01];
    let mut rest = records;
    while !rest.is_empty() {
        assert_eq!(rest[0], 0x16);
        version = [rest[1], rest[2]];
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        payload.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    let size = payload.len().div_ceil(parts);
    let mut out = Vec::new();
    for piece in payload.chunks(size) {
        out.push(0x16);
        out.extend_from_slice(&version);
        out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out
}

/// `bytes` with the first occurrence of `from` replaced by `to` (same length, so no length
/// field changes).
pub fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern not found");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

/// xorshift64*: small, deterministic, good enough to choose chunk sizes and garbage.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// A client config that verifies against `roots` but speaks only the given versions.
pub fn client_with_versions(
    roots: Arc<RootCertStore>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}
