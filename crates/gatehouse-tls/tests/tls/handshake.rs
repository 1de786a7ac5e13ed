//! Real handshakes: `server_config` behind `read_client_hello` + `StartHandshake::from_parts`
//! (the terminating proxy's path), against tokio-rustls clients from `client_config`.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_tls::certs::Certificate;
use gatehouse_tls::client::{Verify, client_config};
use gatehouse_tls::hello::{HelloReader, MAX_HELLO, info, read_client_hello};
use gatehouse_tls::rustls::pki_types::ServerName;
use gatehouse_tls::rustls::server::ProducesTickets;
use gatehouse_tls::rustls::{
    self, ClientConfig, HandshakeKind, ProtocolVersion, ServerConfig, version,
};
use gatehouse_tls::server::{CertResolver, ServerOptions, server_config, ticketer};
use gatehouse_tls::tokio_rustls::{StartHandshake, TlsConnector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, duplex};

use crate::common::{Ca, client_with_versions, self_signed};

const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";

/// What one connection negotiated, seen from both ends.
#[derive(Debug)]
struct Outcome {
    /// SNI as `read_client_hello` saw it.
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    version: ProtocolVersion,
    kind: HandshakeKind,
}

fn server(certs: Vec<Arc<Certificate>>, alpn: &[&[u8]], tls13_only: bool) -> Arc<ServerConfig> {
    server_with_ticketer(certs, alpn, tls13_only, ticketer().unwrap())
}

fn server_with_ticketer(
    certs: Vec<Arc<Certificate>>,
    alpn: &[&[u8]],
    tls13_only: bool,
    ticketer: Arc<dyn ProducesTickets>,
) -> Arc<ServerConfig> {
    let options = ServerOptions {
        alpn: alpn.iter().map(|p| p.to_vec()).collect(),
        tls13_only,
    };
    let resolver = Arc::new(CertResolver::new(certs).unwrap());
    server_config(resolver, &options, ticketer).unwrap()
}

/// The server half: the terminating proxy's path, then `ping` -> `pong`.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    config: Arc<ServerConfig>,
) -> Result<(Option<String>, Vec<u8>), String> {
    let (accepted, bytes) = read_client_hello(&mut io, MAX_HELLO, Duration::from_secs(5))
        .await
        .map_err(|e| format!("server: {e}"))?;
    let sni = info(&accepted).server_name;
    let mut tls = StartHandshake::from_parts(accepted, io)
        .into_stream(config)
        .await
        .map_err(|e| format!("server: {e}"))?;
    let mut ping = [0u8; 4];
    tls.read_exact(&mut ping)
        .await
        .map_err(|e| format!("server: {e}"))?;
    assert_eq!(&ping, b"ping");
    tls.write_all(b"pong").await.unwrap();
    // The client may be gone already; that is fine.
    let _ = tls.shutdown().await;
    Ok((sni, bytes))
}

/// The client half: handshake, `ping`, expect `pong`.
async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<(Option<Vec<u8>>, ProtocolVersion, HandshakeKind), String> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(|e| format!("client: {e}"))?;
    tls.write_all(b"ping").await.unwrap();
    tls.flush().await.unwrap();
    let mut pong = [0u8; 4];
    tls.read_exact(&mut pong)
        .await
        .map_err(|e| format!("client: {e}"))?;
    assert_eq!(&pong, b"pong");
    let (_, conn) = tls.get_ref();
    Ok((
        conn.alpn_protocol().map(<[u8]>::to_vec),
        conn.protocol_version().unwrap(),
        conn.handshake_kind().unwrap(),
    ))
}

/// One connection over an in-memory pipe. A client error wins over the server's (it says
/// why, the server only sees the alert).
async fn connect(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: &str,
) -> Result<Outcome, String> {
    let (client_io, server_io) = duplex(64 * 1024);
    let both = async { tokio::join!(serve(server_io, server), call(client_io, client, name)) };
    let (served, called) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("handshake hung");
    let (alpn, version, kind) = called?;
    let (sni, _) = served?;
    Ok(Outcome {
        sni,
        alpn,
        version,
        kind,
    })
}

fn roots_client(ca: &Ca, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    client_config(
        Verify::Roots(ca.roots()),
        alpn.iter().map(|p| p.to_vec()).collect(),
    )
    .unwrap()
}

#[tokio::test]
async fn terminates_over_tcp_after_read_client_hello() {
    let ca = Ca::new();
    let config = server(
        vec![ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["git.example.com"])],
        &[H2, HTTP11],
        false,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = async {
        let (socket, _) = listener.accept().await.unwrap();
        serve(socket, config).await
    };
    let dial = async {
        let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        call(socket, roots_client(&ca, &[H2, HTTP11]), "git.example.com").await
    };
    let (served, called) = tokio::join!(accept, dial);
    let (alpn, version, _) = called.unwrap();
    let (sni, bytes) = served.unwrap();
    assert_eq!(sni.as_deref(), Some("git.example.com"));
    assert_eq!(bytes[0], 0x16);
    assert_eq!(alpn.as_deref(), Some(H2));
    assert_eq!(version, ProtocolVersion::TLSv1_3);
}

#[tokio::test]
async fn alpn_follows_the_servers_preference() {
    let ca = Ca::new();
    let certs = || vec![ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["git.example.com"])];
    let both = server(certs(), &[H2, HTTP11], false);
    // (the client offers, the server chooses)
    type Case<'a> = (&'a [&'a [u8]], Option<&'a [u8]>);
    let cases: &[Case] = &[
        (&[H2, HTTP11], Some(H2)),
        (&[HTTP11, H2], Some(H2)),
        (&[HTTP11], Some(HTTP11)),
        (&[], None),
    ];
    for &(offered, expected) in cases {
        let out = connect(both.clone(), roots_client(&ca, offered), "git.example.com")
            .await
            .unwrap();
        assert_eq!(out.alpn.as_deref(), expected, "client offered {offered:?}");
    }

    // A server without ALPN ignores the client's offer.
    let none = server(certs(), &[], false);
    let out = connect(none, roots_client(&ca, &[H2]), "git.example.com")
        .await
        .unwrap();
    assert_eq!(out.alpn, None);

    // A client offering only protocols the server does not speak is refused (RFC 7301
    // no_application_protocol), not served without ALPN.
    let err = connect(both, roots_client(&ca, &[b"h3"]), "git.example.com")
        .await
        .unwrap_err();
    assert!(err.contains("NoApplicationProtocol"), "{err}");
}

#[tokio::test]
async fn tls12_and_tls13_with_each_key_type() {
    let ca = Ca::new();
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let config = server(
            vec![ca.leaf_cert(alg, &["git.example.com"])],
            &[H2, HTTP11],
            false,
        );
        for (versions, expected) in [
            (&[&version::TLS13], ProtocolVersion::TLSv1_3),
            (&[&version::TLS12], ProtocolVersion::TLSv1_2),
        ] {
            let client = client_with_versions(ca.roots(), versions, &[H2]);
            let out = connect(config.clone(), client, "git.example.com")
                .await
                .unwrap_or_else(|e| panic!("{alg:?} {expected:?}: {e}"));
            assert_eq!(out.version, expected, "{alg:?}");
            assert_eq!(out.alpn.as_deref(), Some(H2), "{alg:?}");
        }
    }
}

#[tokio::test]
async fn tls13_only_refuses_tls12() {
    let ca = Ca::new();
    let config = server(
        vec![ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["git.example.com"])],
        &[],
        true,
    );
    let tls12 = client_with_versions(ca.roots(), &[&version::TLS12], &[]);
    let err = connect(config.clone(), tls12, "git.example.com")
        .await
        .unwrap_err();
    assert!(err.contains("ProtocolVersion"), "{err}");

    let out = connect(config, roots_client(&ca, &[]), "git.example.com")
        .await
        .unwrap();
    assert_eq!(out.version, ProtocolVersion::TLSv1_3);
}

#[tokio::test]
async fn the_resolver_serves_the_certificate_for_the_sni() {
    // Verification with the CA checks the name, so each success proves which certificate
    // was served.
    let ca = Ca::new();
    let config = server(
        vec![
            ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["default.example.net"]),
            ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["git.example.com"]),
            ca.leaf_cert(&rcgen::PKCS_ED25519, &["*.example.com"]),
        ],
        &[],
        false,
    );
    let client = roots_client(&ca, &[]);
    for name in [
        "default.example.net",
        "git.example.com",
        "wiki.example.com",
        "GIT.example.COM",
    ] {
        let out = connect(config.clone(), client.clone(), name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.sni, Some(name.to_ascii_lowercase()));
    }
    // Not covered by any SAN: the default is served, and the client refuses it.
    let err = connect(config, client, "a.b.example.com")
        .await
        .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn roots_verify_the_chain_and_the_name() {
    let ca = Ca::new();
    let config = server(
        vec![ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["git.example.com"])],
        &[],
        false,
    );
    connect(config.clone(), roots_client(&ca, &[]), "git.example.com")
        .await
        .unwrap();

    let err = connect(config.clone(), roots_client(&ca, &[]), "other.example.com")
        .await
        .unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");

    let stranger = Ca::new();
    let err = connect(config, roots_client(&stranger, &[]), "git.example.com")
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn insecure_accepts_a_self_signed_certificate() {
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let pem = self_signed(alg, &["nas.lan"]);
        let cert = Certificate::from_pem(pem.cert.as_bytes(), pem.key.as_bytes()).unwrap();
        let config = server(vec![Arc::new(cert)], &[HTTP11], false);
        let client = client_config(Verify::Insecure, vec![HTTP11.to_vec()]).unwrap();
        // Any name: nothing about the certificate is checked.
        let out = connect(config.clone(), client, "backend.internal")
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(out.alpn.as_deref(), Some(HTTP11));

        // The same server is refused by a verifying client.
        let err = connect(config, roots_client(&Ca::new(), &[]), "nas.lan")
            .await
            .unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{alg:?}: {err}");
    }
}

#[tokio::test]
async fn resumption_survives_a_reload_with_the_same_ticketer() {
    let ca = Ca::new();
    let cert = ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["git.example.com"]);
    for versions in [&[&version::TLS13], &[&version::TLS12]] {
        let tickets = ticketer().unwrap();
        let before = server_with_ticketer(vec![cert.clone()], &[], false, tickets.clone());
        let client = client_with_versions(ca.roots(), versions, &[]);

        let first = connect(before.clone(), client.clone(), "git.example.com")
            .await
            .unwrap();
        assert_eq!(first.kind, HandshakeKind::Full);
        let again = connect(before, client.clone(), "git.example.com")
            .await
            .unwrap();
        assert_eq!(again.kind, HandshakeKind::Resumed, "{versions:?}");

        // A reload: a new resolver and config, the same ticketer.
        let reloaded = server_with_ticketer(vec![cert.clone()], &[], false, tickets);
        let after = connect(reloaded, client.clone(), "git.example.com")
            .await
            .unwrap();
        assert_eq!(after.kind, HandshakeKind::Resumed, "{versions:?}");

        // A new ticketer cannot open the old tickets: a full handshake, no error.
        let fresh = server(vec![cert.clone()], &[], false);
        let after = connect(fresh, client, "git.example.com").await.unwrap();
        assert_eq!(after.kind, HandshakeKind::Full, "{versions:?}");
    }
}

/// Connects through a relay that holds back the client's hello and forwards it with `extra`
/// appended in one write, so `read_client_hello` gets hello + `extra` in one read: the
/// `Accepted` must carry `extra` into the handshake.
async fn connect_with_bytes_after_hello(extra: &[u8]) -> Result<Outcome, String> {
    let ca = Ca::new();
    let config = server(
        vec![ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["git.example.com"])],
        &[],
        false,
    );
    let client = client_with_versions(ca.roots(), &[&version::TLS13], &[]);

    let (client_io, mut relay_client) = duplex(64 * 1024);
    let (mut relay_server, server_io) = duplex(64 * 1024);
    let relay = async {
        let mut reader = HelloReader::new(MAX_HELLO);
        let mut buf = [0u8; 4096];
        loop {
            let n = relay_client.read(&mut buf).await.unwrap();
            assert!(n > 0);
            if reader.push(&buf[..n]).unwrap().is_some() {
                break;
            }
        }
        let mut first = reader.into_buffered();
        let hello_len = first.len();
        first.extend_from_slice(extra);
        relay_server.write_all(&first).await.unwrap();
        // Errors here only mean one side hung up first.
        let _ = tokio::io::copy_bidirectional(&mut relay_client, &mut relay_server).await;
        hello_len
    };
    let all = async {
        tokio::join!(
            relay,
            serve(server_io, config),
            call(client_io, client, "git.example.com")
        )
    };
    let (hello_len, served, called) = tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("hung");
    // Here the server's error is the interesting one.
    let (sni, bytes) = served?;
    let (alpn, version, kind) = called?;
    assert_eq!(bytes.len(), hello_len + extra.len(), "read in one go");
    assert!(bytes.ends_with(extra));
    Ok(Outcome {
        sni,
        alpn,
        version,
        kind,
    })
}

#[tokio::test]
async fn bytes_after_the_hello_are_kept_in_the_accepted() {
    // A TLS 1.3 middlebox-compatibility ChangeCipherSpec record: valid right after the hello,
    // and dropped by rustls.
    let ccs = [0x14, 0x03, 0x03, 0x00, 0x01, 0x01];
    let out = connect_with_bytes_after_hello(&ccs).await.unwrap();
    assert_eq!(out.version, ProtocolVersion::TLSv1_3);

    // The same record with a bad value: the handshake fails on it, which shows the bytes
    // really reached the connection (rather than being dropped with the acceptor).
    let bad_ccs = [0x14, 0x03, 0x03, 0x00, 0x01, 0x02];
    let err = connect_with_bytes_after_hello(&bad_ccs).await.unwrap_err();
    assert!(err.contains("ChangeCipherSpec"), "{err}");
}

#[test]
fn server_config_settings() {
    let ca = Ca::new();
    let config = server(
        vec![ca.leaf_cert(&rcgen::PKCS_ECDSA_P256_SHA256, &["git.example.com"])],
        &[H2, HTTP11],
        false,
    );
    assert_eq!(config.alpn_protocols, vec![H2.to_vec(), HTTP11.to_vec()]);
    assert!(!config.ignore_client_order);
    assert!(config.ticketer.enabled());
    assert_eq!(config.max_early_data_size, 0);
    assert!(Arc::ptr_eq(
        config.crypto_provider(),
        &gatehouse_tls::provider()
    ));

    let client = client_config(Verify::Insecure, vec![H2.to_vec()]).unwrap();
    assert_eq!(client.alpn_protocols, vec![H2.to_vec()]);
    assert!(Arc::ptr_eq(
        client.crypto_provider(),
        &gatehouse_tls::provider()
    ));
    let _: &rustls::ClientConfig = &client;
}
