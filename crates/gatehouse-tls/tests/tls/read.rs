//! `read_client_hello` over in-memory pipes and TCP: complete, timeout (one deadline for the
//! whole hello), EOF, limits, and bytes after the hello.

use std::time::{Duration, Instant};

use gatehouse_tls::hello::{HelloError, MAX_HELLO, ReadHelloError, info, read_client_hello};
use tokio::io::{AsyncWriteExt, duplex};

use crate::common::{large_hello, small_hello};

const LONG: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(200);

#[tokio::test]
async fn reads_a_hello_and_what_came_after_it() {
    let hello = small_hello();
    let (mut client, mut server) = duplex(64 * 1024);
    let mut sent = hello.clone();
    sent.extend_from_slice(b"\x14\x03\x03\x00\x01\x01");
    client.write_all(&sent).await.unwrap();

    let (accepted, bytes) = read_client_hello(&mut server, MAX_HELLO, LONG)
        .await
        .unwrap();
    assert_eq!(bytes, sent);
    assert_eq!(
        info(&accepted).server_name.as_deref(),
        Some("git.example.com")
    );
}

#[tokio::test]
async fn reads_a_large_hello_in_pieces_over_tcp() {
    let (hello, _) = large_hello();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let send = async {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.set_nodelay(true).unwrap();
        for piece in hello.chunks(700) {
            socket.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        socket
    };
    let receive = async {
        let (mut socket, _) = listener.accept().await.unwrap();
        read_client_hello(&mut socket, MAX_HELLO, LONG).await
    };
    let (_socket, read) = tokio::join!(send, receive);
    let (accepted, bytes) = read.unwrap();
    assert_eq!(bytes, hello);
    assert_eq!(info(&accepted).alpn.len(), 31);
}

#[tokio::test]
async fn times_out_on_a_partial_hello() {
    let hello = small_hello();
    let (mut client, mut server) = duplex(64 * 1024);
    client.write_all(&hello[..37]).await.unwrap();

    let started = Instant::now();
    let err = read_client_hello(&mut server, MAX_HELLO, SHORT)
        .await
        .unwrap_err();
    assert!(started.elapsed() >= SHORT);
    assert!(
        matches!(err, ReadHelloError::Timeout { received: 37, after } if after == SHORT),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "ClientHello not complete after 200ms (37 bytes received)"
    );
    drop(client);
}

#[tokio::test]
async fn one_deadline_for_the_whole_hello_not_per_read() {
    // A client trickling a byte every 20 ms never lets a single read wait 200 ms, but the
    // hello as a whole is still cut off at 200 ms.
    let hello = small_hello();
    let (mut client, mut server) = duplex(64 * 1024);
    let trickle = async move {
        for byte in hello.iter().take(100) {
            if client.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let started = Instant::now();
    let read = async {
        let result = read_client_hello(&mut server, MAX_HELLO, SHORT).await;
        (result, started.elapsed())
    };
    let ((result, elapsed), ()) = tokio::join!(read, trickle);
    let err = result.unwrap_err();
    assert!(
        matches!(err, ReadHelloError::Timeout { received, .. } if received > 1 && received < 100),
        "{err:?}"
    );
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
}

#[tokio::test]
async fn eof_before_a_complete_hello() {
    let hello = small_hello();
    let (mut client, mut server) = duplex(64 * 1024);
    client.write_all(&hello[..12]).await.unwrap();
    drop(client);

    let err = read_client_hello(&mut server, MAX_HELLO, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReadHelloError::Eof { received: 12 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "client closed before a complete ClientHello (12 bytes)"
    );

    let (client, mut server) = duplex(1024);
    drop(client);
    let err = read_client_hello(&mut server, MAX_HELLO, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReadHelloError::Eof { received: 0 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn not_tls_and_too_large() {
    let (mut client, mut server) = duplex(64 * 1024);
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let err = read_client_hello(&mut server, MAX_HELLO, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReadHelloError::Hello(HelloError::NotTls { .. })),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "not TLS (looks like plaintext HTTP)");
    assert!(std::error::Error::source(&err).is_some());

    // A hello larger than the limit; the reader never reads past the limit.
    let (hello, _) = large_hello();
    let (mut client, mut server) = duplex(64 * 1024);
    client.write_all(&hello).await.unwrap();
    let err = read_client_hello(&mut server, 1000, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReadHelloError::Hello(HelloError::TooLarge { limit: 1000 })
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "ClientHello larger than 1000 bytes");

    // A hello of exactly the limit fits.
    let (mut client, mut server) = duplex(64 * 1024);
    client.write_all(&hello).await.unwrap();
    client.write_all(b"after").await.unwrap();
    let (_, bytes) = read_client_hello(&mut server, hello.len(), LONG)
        .await
        .unwrap();
    assert_eq!(bytes, hello);
}
