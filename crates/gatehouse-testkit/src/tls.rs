//! TLS for tests: a throwaway CA and its certificates, a TLS backend, and clients.
//!
//! - [`TestCa`] is a self-signed ECDSA P-256 CA made with rcgen; [`TestCa::issue`] signs leaf
//!   certificates ([`KeyType::Ecdsa`], [`KeyType::Rsa`] or [`KeyType::Ed25519`]) whose subject
//!   CN is the file stem, so a test can tell which certificate it was shown.
//! - [`TlsBackend`] is [`crate::Backend`] behind a TLS handshake (rustls, TLS 1.2 and 1.3,
//!   ALPN `h2` and `http/1.1`), with an HTTP mode for `curl`.
//! - [`s_client`] and [`curl_get`] drive the real `openssl s_client` and `curl` (Debian
//!   packages `openssl` and `curl`): a test fails with a message naming the package if one is
//!   missing.
//! - [`tls_connect`], [`tls_ask`], [`client_hello_bytes`], [`send_hello_slowly`] and
//!   [`finish_handshake`] are rustls clients, for checks the tools cannot make (a ClientHello
//!   split across segments, say).
//!
//! Only the aws-lc-rs provider is used, always passed explicitly: nothing here installs or
//! relies on a process-wide default provider.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, CommonState, DigitallySignedStruct, ProtocolVersion,
    RootCertStore, ServerConfig, ServerConnection, SignatureScheme, StreamOwned,
};

/// The aws-lc-rs provider, the only one Gatehouse uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// The key algorithm of an issued certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256 with SHA-256.
    Ecdsa,
    /// RSA 2048 (PKCS#1 v1.5 SHA-256 signature on the certificate; TLS may use PSS).
    Rsa,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    fn generate(self) -> KeyPair {
        let alg = match self {
            KeyType::Ecdsa => &rcgen::PKCS_ECDSA_P256_SHA256,
            // rcgen generates RSA keys with its aws_lc_rs backend (ring could not).
            KeyType::Rsa => &rcgen::PKCS_RSA_SHA256,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        };
        KeyPair::generate_for(alg).unwrap_or_else(|e| panic!("generate a {self:?} key: {e}"))
    }
}

/// A self-signed certificate authority (ECDSA P-256) for tests.
pub struct TestCa {
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA whose subject CN is `name`.
    pub fn new(name: &str) -> TestCa {
        let key = KeyType::Ecdsa.generate();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, key)
            .unwrap_or_else(|e| panic!("self-sign CA {name}: {e}"));
        TestCa {
            name: name.to_owned(),
            issuer,
        }
    }

    /// The CA's subject CN.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        self.issuer.der()
    }

    /// Writes the CA certificate as PEM to `path`: a file for `curl --cacert`,
    /// `openssl s_client -CAfile` or a Gatehouse backend `caFile`.
    pub fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.pem())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Issues a leaf certificate signed by this CA and writes `dir/stem.crt` (the leaf
    /// certificate alone, PEM: clients must trust the CA itself) and `dir/stem.key` (its
    /// PKCS#8 private key, PEM). The subject CN is `stem`.
    ///
    /// `names` become subject alternative names: DNS names (wildcards such as `*.example.com`
    /// allowed), or IP addresses for names that parse as one (`127.0.0.1`).
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str], key: KeyType) -> TestCert {
        self.issue_at(
            &dir.join(format!("{stem}.crt")),
            &dir.join(format!("{stem}.key")),
            stem,
            names,
            key,
        )
    }

    /// Like [`TestCa::issue`], with explicit file paths and CN. To replace a certificate the
    /// way a deployment would, issue to temporary paths and rename them over the live files.
    pub fn issue_at(
        &self,
        cert_path: &Path,
        key_path: &Path,
        cn: &str,
        names: &[&str],
        key: KeyType,
    ) -> TestCert {
        let key_pair = key.generate();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)
            .unwrap_or_else(|e| panic!("certificate names for {cn}: {e}"));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if key == KeyType::Rsa {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key_pair, &self.issuer)
            .unwrap_or_else(|e| panic!("sign certificate {cn}: {e}"));
        let issued = TestCert {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            cn: cn.to_owned(),
            key_type: key,
            cert_pem: cert.pem(),
            key_pem: key_pair.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key_pair.serialize_der(),
        };
        for (path, text) in [(cert_path, &issued.cert_pem), (key_path, &issued.key_pem)] {
            std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        issued
    }
}

/// A leaf certificate and its key, written to `cert_path` and `key_path`. The PEM and DER
/// accessors return what was issued, whatever happens to the files later.
#[derive(Clone, Debug)]
pub struct TestCert {
    /// The certificate file (the leaf alone, PEM).
    pub cert_path: PathBuf,
    /// The private key file (PKCS#8, PEM).
    pub key_path: PathBuf,
    /// The subject CN.
    pub cn: String,
    key_type: KeyType,
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl TestCert {
    /// The certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let chain = vec![CertificateDer::from(self.cert_der.clone())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap_or_else(|e| panic!("server config for {}: {e}", self.cn));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Reads one DER TLV at the start of `der`: its tag, its contents, and what follows it.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, &b| len << 8 | usize::from(b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The subject CN of a DER certificate (the last CN if there are several).
///
/// A plain search for the CN attribute OID (2.5.4.3, bytes `06 03 55 04 03`) is not enough:
/// in a TBSCertificate the issuer name comes before the subject name, so the first CN found
/// in a CA-issued leaf is the CA's. This walks the DER to the subject name instead:
/// Certificate → TBSCertificate → (version), serial, signature, issuer, validity, subject.
pub fn cn_of(der: &[u8]) -> Option<String> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let (tag, _, after_version) = tlv(tbs)?;
    let fields = if tag == 0xa0 { after_version } else { tbs };
    let (_, _, rest) = tlv(fields)?; // serialNumber
    let (_, _, rest) = tlv(rest)?; // signature
    let (_, _, rest) = tlv(rest)?; // issuer
    let (_, _, rest) = tlv(rest)?; // validity
    let (_, mut rdns, _) = tlv(rest)?; // subject: SEQUENCE OF SET OF AttributeTypeAndValue
    let mut cn = None;
    while !rdns.is_empty() {
        let (_, mut atvs, rest) = tlv(rdns)?;
        rdns = rest;
        while !atvs.is_empty() {
            let (_, atv, rest) = tlv(atvs)?;
            atvs = rest;
            let (tag, oid, value) = tlv(atv)?;
            if tag == 0x06 && oid == [0x55, 0x04, 0x03] {
                let (_, text, _) = tlv(value)?;
                cn = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    cn
}

// ---------------------------------------------------------------------------------------------
// Backend

/// What a [`TlsBackend`] saw in one handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The ALPN protocol negotiated.
    pub alpn: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: Option<String>,
}

struct TlsShared {
    name: String,
    config: Arc<ServerConfig>,
    stopped: AtomicBool,
    health_status: AtomicU16,
    served: AtomicUsize,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, TcpStream>>,
    handshakes: Mutex<Vec<Handshake>>,
}

/// A named echo backend on 127.0.0.1 that speaks TLS (rustls, TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1` offered; a client offering only other protocols is refused).
///
/// After the handshake, the client speaks first:
/// - `GET /healthz...`: answers with the health status (200 by default), `Content-Length: 0`,
///   and closes. Not counted as served.
/// - any other HTTP/1 request (its first bytes are a method and a space): answers
///   `200 OK` with body `{name}\n` and `Connection: close`, and closes.
/// - anything else: writes `{name}\n`, then echoes everything, starting with what the client
///   already sent (like [`crate::Backend`]). There is no HTTP/2: an `h2` client gets its
///   preface echoed.
pub struct TlsBackend {
    shared: Arc<TlsShared>,
    addr: SocketAddr,
}

impl TlsBackend {
    /// Starts a TLS backend presenting `cert` on a free port of 127.0.0.1.
    pub fn start(name: &str, cert: &TestCert) -> TlsBackend {
        TlsBackend::start_on(name, cert, "127.0.0.1:0".parse().unwrap())
    }

    /// Starts a TLS backend on `addr` (a port used before, to restart it).
    pub fn start_on(name: &str, cert: &TestCert, addr: SocketAddr) -> TlsBackend {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(TlsShared {
            name: name.to_owned(),
            config: cert.server_config(),
            stopped: AtomicBool::new(false),
            health_status: AtomicU16::new(200),
            served: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            handshakes: Mutex::new(Vec::new()),
        });
        crate::backend::accept_in_background(listener, &shared, |s| &s.stopped, serve_tracked);
        TlsBackend { shared, addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Connections served so far (echo and HTTP; health checks excluded).
    pub fn served(&self) -> usize {
        self.shared.served.load(SeqCst)
    }

    /// Every completed handshake so far, in order (health checks included).
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.shared.handshakes.lock().unwrap().clone()
    }

    /// The status `/healthz` answers with from now on.
    pub fn set_health_status(&self, status: u16) {
        self.shared.health_status.store(status, SeqCst);
    }

    /// Stops listening and resets every open connection.
    pub fn stop(&self) {
        if self.shared.stopped.swap(true, SeqCst) {
            return;
        }
        let open: Vec<TcpStream> = self
            .shared
            .open
            .lock()
            .unwrap()
            .drain()
            .map(|(_, s)| s)
            .collect();
        crate::backend::stop_listening(self.addr, open.into_iter());
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.stop();
    }
}

type ServerStream = StreamOwned<ServerConnection, TcpStream>;

fn serve_tracked(stream: TcpStream, shared: &TlsShared) {
    if shared.stopped.load(SeqCst) {
        return;
    }
    let id = shared.next_id.fetch_add(1, SeqCst);
    if let Ok(clone) = stream.try_clone() {
        shared.open.lock().unwrap().insert(id, clone);
    }
    serve_tls(stream, shared);
    shared.open.lock().unwrap().remove(&id);
}

fn serve_tls(tcp: TcpStream, shared: &TlsShared) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = ServerConnection::new(Arc::clone(&shared.config)) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        // On a handshake error rustls has already tried to send its alert.
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            return;
        }
    }
    shared.handshakes.lock().unwrap().push(Handshake {
        sni: tls.conn.server_name().map(str::to_owned),
        alpn: tls
            .conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        protocol: tls.conn.protocol_version().map(version_name),
    });
    let _ = crate::backend::converse(
        &mut tls,
        &shared.name,
        &shared.health_status,
        &shared.served,
        |t| {
            let _ = t.sock.set_read_timeout(Some(Duration::from_secs(120)));
        },
    );
    close(&mut tls);
}

/// Sends close_notify, shuts down writing, then drains what the peer still sends (briefly) so
/// the close does not turn into a reset that could destroy the reply.
fn close(tls: &mut ServerStream) {
    tls.conn.send_close_notify();
    while tls.conn.wants_write() {
        if tls.conn.write_tls(&mut tls.sock).is_err() {
            return;
        }
    }
    let _ = tls.sock.shutdown(Shutdown::Write);
    let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 4096];
    for _ in 0..256 {
        match tls.sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn version_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// rustls clients

/// A client TLS stream over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// What a client learnt from a handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: Option<String>,
    /// The ALPN protocol negotiated.
    pub alpn: Option<String>,
    /// The subject CN of the leaf certificate presented.
    pub peer_cn: Option<String>,
    /// The cipher suite, as rustls names it (`TLS13_AES_256_GCM_SHA384`).
    pub cipher_suite: Option<String>,
    /// The certificates presented, leaf first, DER.
    pub peer_chain: Vec<Vec<u8>>,
}

impl TlsInfo {
    /// Reads the negotiated parameters of a connection (a `ClientConnection` derefs to it).
    pub fn of(conn: &CommonState) -> TlsInfo {
        let peer_chain: Vec<Vec<u8>> = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_vec())
            .collect();
        TlsInfo {
            protocol: conn.protocol_version().map(version_name),
            alpn: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            peer_cn: peer_chain.first().and_then(|c| cn_of(c)),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite())),
            peer_chain,
        }
    }
}

/// Accepts any certificate (the test checks the CN itself), but still checks the handshake
/// signatures, so the server must hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config: TLS 1.2 and 1.3, `alpn` offered, certificates verified against `ca` (with
/// the server name) or not verified at all.
fn client_config(alpn: &[&str], ca: Option<&TestCa>) -> Arc<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap();
    let mut config = match ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der().clone()).unwrap();
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned()).map_err(|e| format!("server name {name:?}: {e}"))
}

/// Connects to `addr` with rustls and completes the handshake.
///
/// `servername` is sent as SNI (and verified, with `ca`); without it the name is `addr`'s IP
/// and no SNI is sent. `alpn` is offered as is (nothing if empty). With `ca`, the certificate
/// must chain to it and match the name; without, any certificate is accepted. The socket has
/// 5 s read and write timeouts.
pub fn tls_connect(
    addr: SocketAddr,
    servername: Option<&str>,
    alpn: &[&str],
    ca: Option<&TestCa>,
) -> Result<(TlsStream, TlsInfo), String> {
    let name = match servername {
        Some(name) => parse_server_name(name)?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let conn = ClientConnection::new(client_config(alpn, ca), name)
        .map_err(|e| format!("TLS client: {e}"))?;
    let tcp = crate::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    finish_handshake(conn, tcp)
}

/// The TLS [`crate::ask`]: connects with [`tls_connect`] (no ALPN, any certificate), says
/// hello, and returns the name of the backend that answered with the handshake's details.
pub fn tls_ask(addr: SocketAddr, servername: Option<&str>) -> Result<(String, TlsInfo), String> {
    let (mut tls, info) = tls_connect(addr, servername, &[], None)?;
    tls.write_all(b"hello\n")
        .map_err(|e| format!("write over TLS: {e}"))?;
    let name = crate::read_line(&mut tls).map_err(|e| format!("read over TLS: {e}"))?;
    if name.is_empty() {
        return Err("closed without an answer".to_owned());
    }
    Ok((name, info))
}

/// A real rustls ClientHello (with `server_name` as SNI unless it is an IP address, and
/// `alpn` offered), as the TLS records to send, and the connection that produced it.
///
/// To continue the handshake after sending the bytes by hand (with [`send_hello_slowly`],
/// say), pass the connection and the stream to [`finish_handshake`]. The server's certificate
/// is not verified.
pub fn client_hello_bytes(server_name: &str, alpn: &[&str]) -> (Vec<u8>, ClientConnection) {
    let name = parse_server_name(server_name).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = ClientConnection::new(client_config(alpn, None), name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    (hello, conn)
}

/// Connects to `addr` and writes `hello` in pieces of `chunk` bytes (each its own TCP segment:
/// Nagle is off) with `pause` between them, and returns the stream (5 s timeouts).
pub fn send_hello_slowly(
    addr: SocketAddr,
    hello: &[u8],
    chunk: usize,
    pause: Duration,
) -> std::io::Result<TcpStream> {
    let mut s = crate::connect(addr)?;
    s.set_nodelay(true)?;
    for (i, piece) in hello.chunks(chunk.max(1)).enumerate() {
        if i > 0 {
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(pause);
        }
        s.write_all(piece)?;
    }
    Ok(s)
}

/// Completes the handshake of `conn` over `tcp` and wraps them in a stream. Use it after
/// [`client_hello_bytes`] once the ClientHello was written to `tcp` by hand.
pub fn finish_handshake(
    mut conn: ClientConnection,
    mut tcp: TcpStream,
) -> Result<(TlsStream, TlsInfo), String> {
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut tcp)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    let info = TlsInfo::of(&conn);
    Ok((StreamOwned::new(conn, tcp), info))
}

// ---------------------------------------------------------------------------------------------
// Real tools

/// How long a tool may run before it is killed.
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `s_client` waits for the echo of its line before closing its input anyway.
const REPLY_WAIT: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Pipes {
    state: Mutex<PipesState>,
    changed: Condvar,
}

#[derive(Default)]
struct PipesState {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    closed: usize,
}

struct Ran {
    stdout: String,
    stderr: String,
    /// `None` when killed by a signal (our timeout, say).
    exit_code: Option<i32>,
    timed_out: bool,
}

fn drain(mut pipe: impl Read + Send + 'static, pipes: Arc<Pipes>, stdout: bool) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = pipe.read(&mut buf).unwrap_or(0);
            let mut state = pipes.state.lock().unwrap();
            if n == 0 {
                state.closed += 1;
                pipes.changed.notify_all();
                return;
            }
            let out = if stdout {
                &mut state.stdout
            } else {
                &mut state.stderr
            };
            out.extend_from_slice(&buf[..n]);
            pipes.changed.notify_all();
        }
    });
}

/// Runs `cmd` (from Debian package `package`) with stdout and stderr captured and a timeout.
///
/// With `input`, it is written to stdin, which stays open until stdout holds a copy of it
/// after a first line (the echo after a backend's name), the tool exits, or [`REPLY_WAIT`]
/// passes: tools such as `s_client` quit on end of input without waiting for a reply.
fn run_tool(mut cmd: Command, package: &str, input: Option<&[u8]>) -> Ran {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            panic!("`{program}` not found: install the Debian package `{package}`")
        }
        panic!("cannot run `{program}`: {e}")
    });
    let pipes = Arc::new(Pipes::default());
    drain(child.stdout.take().unwrap(), Arc::clone(&pipes), true);
    drain(child.stderr.take().unwrap(), Arc::clone(&pipes), false);

    let mut state = pipes.state.lock().unwrap();
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input).and_then(|()| stdin.flush());
        let deadline = start + REPLY_WAIT;
        loop {
            let echoed = state
                .stdout
                .iter()
                .position(|&b| b == b'\n')
                .is_some_and(|i| crate::backend::contains(&state.stdout[i + 1..], input));
            let now = Instant::now();
            if echoed || state.closed == 2 || now >= deadline {
                break;
            }
            state = pipes.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
        drop(stdin);
    }
    let deadline = start + TOOL_TIMEOUT;
    let mut timed_out = false;
    while state.closed < 2 {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        state = pipes.changed.wait_timeout(state, deadline - now).unwrap().0;
    }
    drop(state);
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    // After a kill, let the readers see the pipes close.
    let mut state = pipes.state.lock().unwrap();
    let until = Instant::now() + Duration::from_secs(1);
    while state.closed < 2 && Instant::now() < until {
        state = pipes
            .changed
            .wait_timeout(state, Duration::from_millis(50))
            .unwrap()
            .0;
    }
    Ran {
        stdout: String::from_utf8_lossy(&state.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&state.stderr).into_owned(),
        exit_code: status.code(),
        timed_out,
    }
}

/// The CN in a name as the tools print it: `CN = a`, `CN=a`, `O = x, CN = a`, `C=US; CN=a`.
fn cn_in_name(name: &str) -> Option<String> {
    name.split([',', ';', '/'])
        .filter_map(|part| {
            let value = part
                .trim()
                .strip_prefix("CN")?
                .trim_start()
                .strip_prefix('=')?;
            Some(value.trim().to_owned())
        })
        .next_back()
}

fn unique_temp_path(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, SeqCst);
    std::env::temp_dir().join(format!("gatehouse-{what}-{}-{n}", std::process::id()))
}

/// What `openssl s_client` reported.
#[derive(Clone, Debug)]
pub struct SClient {
    /// The handshake completed (`CONNECTION ESTABLISHED`).
    pub handshake_ok: bool,
    /// The subject CN of the leaf certificate presented.
    pub peer_cn: Option<String>,
    /// The ALPN protocol the server selected (offer some with `-alpn h2,http/1.1`).
    pub alpn: Option<String>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: Option<String>,
    /// `OK`, or the verification error (`self-signed certificate`...). Verification errors do
    /// not fail the handshake unless `-verify_return_error` is passed.
    pub verification: Option<String>,
    /// The application data received: for a backend, its name line and the echo.
    pub stdout: String,
    /// Exit code (`None` if killed).
    pub exit_code: Option<i32>,
    /// Everything s_client printed, stdout then stderr, for failure messages.
    pub raw: String,
}

/// Runs `openssl s_client` against `addr`, sends the line `hello\n`, and reports the handshake
/// and what came back.
///
/// The command is `openssl s_client -connect ADDR -brief -trace -msgfile TMP
/// (-servername NAME | -noservername) EXTRA...`: `-brief` keeps stdout to the application data
/// and puts a parseable summary on stderr; `-trace` (into a temporary file) is only there to
/// learn the ALPN protocol, which `-brief` does not print. Its input is closed once the line
/// comes back after a first line (an echo backend's name), or after 3 s; it is killed after
/// 10 s. Useful extras: `-alpn h2,http/1.1`, `-CAfile ca.pem`, `-verify_return_error`,
/// `-tls1_2`.
pub fn s_client(addr: SocketAddr, servername: Option<&str>, extra: &[&str]) -> SClient {
    let trace = unique_temp_path("s_client-trace");
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(["-brief", "-trace", "-msgfile"])
        .arg(&trace);
    match servername {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    cmd.args(extra).env_remove("OPENSSL_CONF");
    let ran = run_tool(cmd, "openssl", Some(b"hello\n"));
    let trace_text = std::fs::read(&trace)
        .map(|t| String::from_utf8_lossy(&t).into_owned())
        .unwrap_or_default();
    let _ = std::fs::remove_file(&trace);

    let summary = |key: &str| {
        ran.stderr
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
    };
    let verification = summary("Verification:").or_else(|| summary("Verification error:"));
    let mut raw = format!("{}{}", ran.stdout, ran.stderr);
    if ran.timed_out {
        raw.push_str("\n(killed after 10 s)");
    }
    SClient {
        handshake_ok: ran
            .stderr
            .lines()
            .any(|l| l.trim() == "CONNECTION ESTABLISHED"),
        peer_cn: summary("Peer certificate:").and_then(|n| cn_in_name(&n)),
        alpn: alpn_from_trace(&trace_text),
        protocol: summary("Protocol version:"),
        verification,
        stdout: ran.stdout,
        exit_code: ran.exit_code,
        raw,
    }
}

/// The ALPN protocol in the first ALPN extension the server sent (ServerHello in TLS 1.2,
/// EncryptedExtensions in TLS 1.3), from `s_client -trace` output: records start with an
/// unindented `Sent ...` or `Received ...` line, and the extension's line is followed by the
/// protocol names, one per line.
fn alpn_from_trace(trace: &str) -> Option<String> {
    let mut received = false;
    let mut lines = trace.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("Received") {
            received = true;
        } else if line.starts_with("Sent") {
            received = false;
        } else if received && line.contains("extension_type=application_layer_protocol_negotiation")
        {
            return lines
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned);
        }
    }
    None
}

/// What `curl` reported.
#[derive(Clone, Debug)]
pub struct Curl {
    /// The HTTP status (`None` when there was no response).
    pub status: Option<u16>,
    pub body: String,
    /// The subject CN of the server's certificate (from `-v`).
    pub peer_cn: Option<String>,
    /// `%{ssl_verify_result}`: 0 when the certificate was verified.
    pub verify_result: Option<i64>,
    /// curl's exit code (-1 if killed): 0, or 60 for an untrusted certificate, 35 for a failed
    /// handshake, 7 for a refused connection...
    pub exit_code: i32,
    /// The verbose log and errors.
    pub stderr: String,
}

const CURL_MARK: &str = "\n@@gatehouse-testkit@@ ";

/// Runs `curl` on `url` and reports the response and the server's certificate.
///
/// Each `(host, port, addr)` of `resolve` sends connections for `host:port` to `addr`
/// (`--connect-to host:port:IP:PORT`, so unlike `--resolve` the port can differ: the URL can
/// say `https://app.example.com/` while Gatehouse listens on a random port). With `cacert`,
/// the server certificate must chain to it; without, curl uses the system store, which fails
/// for test certificates: pass `-k` in `extra` to skip verification.
///
/// The command is `curl -q -sS -v --max-time 10 --noproxy * --http1.1 [--cacert FILE]
/// [--connect-to ...] -w MARK EXTRA... URL`. `--http1.1` because [`TlsBackend`] does not
/// speak HTTP/2 (a later `--http2` in `extra` overrides it); `-q` ignores `~/.curlrc`.
pub fn curl_get(
    url: &str,
    resolve: &[(&str, u16, SocketAddr)],
    cacert: Option<&Path>,
    extra: &[&str],
) -> Curl {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-q",
        "-sS",
        "-v",
        "--max-time",
        "10",
        "--noproxy",
        "*",
        "--http1.1",
    ]);
    if let Some(cacert) = cacert {
        cmd.arg("--cacert").arg(cacert);
    }
    for (host, port, addr) in resolve {
        let ip = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        cmd.arg("--connect-to")
            .arg(format!("{host}:{port}:{ip}:{}", addr.port()));
    }
    cmd.arg("-w")
        .arg(format!("{CURL_MARK}%{{http_code}} %{{ssl_verify_result}}"))
        .args(extra)
        .arg(url);
    let ran = run_tool(cmd, "curl", None);

    let (body, written) = match ran.stdout.rfind(CURL_MARK) {
        Some(i) => (&ran.stdout[..i], &ran.stdout[i + CURL_MARK.len()..]),
        None => (ran.stdout.as_str(), ""),
    };
    let mut written = written.split_whitespace();
    let status = written
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|&c| c != 0);
    let verify_result = written.next().and_then(|v| v.parse().ok());
    let peer_cn = ran
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix('*')?.trim_start().strip_prefix("subject:"))
        .and_then(cn_in_name);
    let mut stderr = ran.stderr;
    if ran.timed_out {
        stderr.push_str("\n(killed after 10 s)");
    }
    Curl {
        status,
        body: body.to_owned(),
        peer_cn,
        verify_result,
        exit_code: ran.exit_code.unwrap_or(-1),
        stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TempDir;

    fn setup(key: KeyType) -> (TempDir, TestCa, TestCert) {
        let dir = TempDir::new();
        let ca = TestCa::new("Testkit CA");
        let cert = ca.issue(dir.path(), "app-cert", &["app.test", "*.wild.test"], key);
        (dir, ca, cert)
    }

    #[test]
    fn cn_of_reads_the_subject_not_the_issuer() {
        let (_dir, ca, cert) = setup(KeyType::Ecdsa);
        assert_eq!(cn_of(cert.der()).as_deref(), Some("app-cert"));
        assert_eq!(cn_of(ca.der()).as_deref(), Some("Testkit CA"));
        assert_eq!(cn_of(b"\x30\x03\x02"), None);
        assert!(cert.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            std::fs::read_to_string(&cert.cert_path).unwrap(),
            cert.pem()
        );
        assert_eq!(
            std::fs::read_to_string(&cert.key_path).unwrap(),
            cert.key_pem()
        );
    }

    #[test]
    fn tls_connect_sees_name_cn_and_alpn() {
        for key in [KeyType::Ecdsa, KeyType::Rsa, KeyType::Ed25519] {
            let (_dir, ca, cert) = setup(key);
            let backend = TlsBackend::start("tls-a", &cert);
            let (mut tls, info) =
                tls_connect(backend.addr(), Some("x.wild.test"), &["h2"], Some(&ca))
                    .unwrap_or_else(|e| panic!("{key:?}: {e}"));
            assert_eq!(info.peer_cn.as_deref(), Some("app-cert"));
            assert_eq!(info.alpn.as_deref(), Some("h2"));
            assert_eq!(info.protocol.as_deref(), Some("TLSv1.3"));
            tls.write_all(b"hello\n").unwrap();
            assert_eq!(crate::read_line(&mut tls).unwrap(), "tls-a");
            assert_eq!(crate::read_line(&mut tls).unwrap(), "hello");
            assert_eq!(backend.served(), 1);
            assert_eq!(
                backend.handshakes(),
                vec![Handshake {
                    sni: Some("x.wild.test".to_owned()),
                    alpn: Some("h2".to_owned()),
                    protocol: Some("TLSv1.3".to_owned()),
                }]
            );
        }
    }

    #[test]
    fn tls_connect_verifies_names_with_a_ca() {
        let (_dir, ca, cert) = setup(KeyType::Ecdsa);
        let backend = TlsBackend::start("tls-a", &cert);
        let err = tls_connect(backend.addr(), Some("other.test"), &[], Some(&ca)).unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
        let (name, info) = tls_ask(backend.addr(), None).unwrap();
        assert_eq!(
            (name.as_str(), info.peer_cn.as_deref()),
            ("tls-a", Some("app-cert"))
        );
        // The refused handshake never completed: only the second is recorded.
        assert_eq!(backend.handshakes().len(), 1);
        assert_eq!(backend.handshakes()[0].sni, None);
    }

    #[test]
    fn split_client_hello_then_finish_by_hand() {
        let (_dir, _ca, cert) = setup(KeyType::Ecdsa);
        let backend = TlsBackend::start("tls-a", &cert);
        let (hello, conn) = client_hello_bytes("app.test", &["http/1.1"]);
        assert_eq!(hello[0], 0x16, "a handshake record");
        let tcp = send_hello_slowly(backend.addr(), &hello, 100, Duration::from_millis(2)).unwrap();
        let (mut tls, info) = finish_handshake(conn, tcp).unwrap();
        assert_eq!(info.alpn.as_deref(), Some("http/1.1"));
        tls.write_all(b"x\n").unwrap();
        assert_eq!(crate::read_line(&mut tls).unwrap(), "tls-a");
        assert_eq!(backend.handshakes()[0].sni.as_deref(), Some("app.test"));
    }

    #[test]
    fn stop_closes_open_connections() {
        let (_dir, _ca, cert) = setup(KeyType::Ecdsa);
        let backend = TlsBackend::start("tls-a", &cert);
        let (mut tls, _) = tls_connect(backend.addr(), None, &[], None).unwrap();
        tls.write_all(b"1").unwrap();
        assert_eq!(crate::read_line(&mut tls).unwrap(), "tls-a");
        let mut echo = [0u8; 1];
        tls.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"1");
        backend.stop();
        let mut rest = Vec::new();
        // Reset without close_notify: an error (or a bare end of stream), and no data.
        let _ = tls.read_to_end(&mut rest);
        assert!(rest.is_empty());
        assert!(crate::connect(backend.addr()).is_err());
    }

    #[test]
    fn s_client_shows_cn_alpn_and_echo() {
        let (dir, ca, cert) = setup(KeyType::Ecdsa);
        let ca_file = dir.path().join("ca.pem");
        ca.write_pem(&ca_file);
        let backend = TlsBackend::start("tls-a", &cert);
        let ca_arg = ca_file.to_str().unwrap();
        let out = s_client(
            backend.addr(),
            Some("app.test"),
            &["-alpn", "h2,http/1.1", "-CAfile", ca_arg],
        );
        assert!(out.handshake_ok, "{}", out.raw);
        assert_eq!(out.peer_cn.as_deref(), Some("app-cert"), "{}", out.raw);
        assert_eq!(out.alpn.as_deref(), Some("h2"), "{}", out.raw);
        assert_eq!(out.protocol.as_deref(), Some("TLSv1.3"), "{}", out.raw);
        assert_eq!(out.verification.as_deref(), Some("OK"), "{}", out.raw);
        assert_eq!(out.stdout, "tls-a\nhello\n", "{}", out.raw);

        // TLS 1.2 (ALPN in the ServerHello), an RSA certificate, no SNI, no CA.
        let rsa = ca.issue(dir.path(), "rsa-cert", &["app.test"], KeyType::Rsa);
        let backend = TlsBackend::start("tls-b", &rsa);
        let out = s_client(backend.addr(), None, &["-tls1_2", "-alpn", "http/1.1"]);
        assert!(out.handshake_ok, "{}", out.raw);
        assert_eq!(out.peer_cn.as_deref(), Some("rsa-cert"), "{}", out.raw);
        assert_eq!(out.alpn.as_deref(), Some("http/1.1"), "{}", out.raw);
        assert_eq!(out.protocol.as_deref(), Some("TLSv1.2"), "{}", out.raw);
        assert_ne!(out.verification.as_deref(), Some("OK"), "{}", out.raw);
        assert_eq!(out.stdout, "tls-b\nhello\n", "{}", out.raw);
        assert_eq!(backend.handshakes()[0].sni, None);
    }

    #[test]
    fn s_client_reports_a_failed_handshake() {
        let (_dir, _ca, cert) = setup(KeyType::Ecdsa);
        let backend = TlsBackend::start("tls-a", &cert);
        let out = s_client(backend.addr(), Some("app.test"), &["-alpn", "spdy/1"]);
        assert!(!out.handshake_ok, "{}", out.raw);
        assert_eq!(out.peer_cn, None);
        assert_eq!(backend.served(), 0);
    }

    #[test]
    fn curl_verifies_with_the_ca_and_gets_the_name() {
        let (dir, ca, cert) = setup(KeyType::Ecdsa);
        let ca_file = dir.path().join("ca.pem");
        ca.write_pem(&ca_file);
        let backend = TlsBackend::start("tls-a", &cert);
        let to = [("app.test", 443, backend.addr())];
        let out = curl_get("https://app.test/", &to, Some(&ca_file), &[]);
        assert_eq!(out.status, Some(200), "{}", out.stderr);
        assert_eq!(out.body, "tls-a\n");
        assert_eq!(out.peer_cn.as_deref(), Some("app-cert"));
        assert_eq!((out.verify_result, out.exit_code), (Some(0), 0));

        let out = curl_get("https://app.test/healthz", &to, Some(&ca_file), &[]);
        assert_eq!(
            (out.status, out.body.as_str()),
            (Some(200), ""),
            "{}",
            out.stderr
        );
        assert_eq!(backend.served(), 1);

        // Untrusted without the CA; -k gets through.
        let out = curl_get("https://app.test/", &to, None, &[]);
        assert_eq!((out.status, out.exit_code), (None, 60), "{}", out.stderr);
        let out = curl_get("https://app.test/", &to, None, &["-k"]);
        assert_eq!(out.status, Some(200), "{}", out.stderr);
        assert_ne!(out.verify_result, Some(0));
    }
}
