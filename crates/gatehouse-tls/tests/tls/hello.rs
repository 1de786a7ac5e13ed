//! `HelloReader` on real ClientHellos from a rustls client: every way of cutting the bytes
//! gives the same answer, and bad input is an error, never a panic.

use gatehouse_tls::hello::{HelloError, HelloInfo, HelloReader, MAX_HELLO, info};

use crate::common::{Rng, client_hello, large_hello, refragment, replace, small_hello};

/// Pushes `chunks` in order; the hello must complete exactly at the last one.
fn read_in(chunks: &[&[u8]]) -> HelloInfo {
    let mut reader = HelloReader::new(MAX_HELLO);
    let (last, init) = chunks.split_last().unwrap();
    for chunk in init {
        assert!(reader.push(chunk).unwrap().is_none());
    }
    let accepted = reader.push(last).unwrap().expect("hello complete");
    assert!(reader.unfed().is_empty());
    assert_eq!(reader.buffered(), chunks.concat());
    info(&accepted)
}

fn read_whole(hello: &[u8]) -> HelloInfo {
    read_in(&[hello])
}

fn git_info(alpn: &[&[u8]]) -> HelloInfo {
    HelloInfo {
        server_name: Some("git.example.com".into()),
        alpn: alpn.iter().map(|p| p.to_vec()).collect(),
    }
}

/// The hellos every property is checked on: small, large (> 2 KiB), and both re-fragmented
/// into 3 records.
fn hellos() -> Vec<(&'static str, Vec<u8>, HelloInfo)> {
    let small = small_hello();
    let (large, large_alpn) = large_hello();
    let large_refs: Vec<&[u8]> = large_alpn.iter().map(Vec::as_slice).collect();
    let small_info = git_info(&[b"h2", b"http/1.1"]);
    let large_info = git_info(&large_refs);
    vec![
        ("small", small.clone(), small_info.clone()),
        ("small in 3 records", refragment(&small, 3), small_info),
        ("large", large.clone(), large_info.clone()),
        ("large in 3 records", refragment(&large, 3), large_info),
    ]
}

#[test]
fn reads_sni_and_alpn() {
    assert_eq!(read_whole(&small_hello()), git_info(&[b"h2", b"http/1.1"]));

    let no_sni = client_hello(None, &[]);
    assert_eq!(
        read_whole(&no_sni),
        HelloInfo {
            server_name: None,
            alpn: vec![]
        }
    );
}

#[test]
fn refragmented_hellos_really_have_three_records() {
    for (name, hello, _) in hellos() {
        let records = if name.ends_with("3 records") { 3 } else { 1 };
        let mut count = 0;
        let mut rest = hello.as_slice();
        while !rest.is_empty() {
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            rest = &rest[5 + len..];
            count += 1;
        }
        assert_eq!(count, records, "{name}");
    }
}

#[test]
fn sni_is_lower_case_without_a_trailing_dot() {
    // Patched in place (same length), so no length field changes.
    let hello = small_hello();
    let upper = replace(&hello, b"git.example.com", b"GIT.Example.CoM");
    assert_eq!(
        read_whole(&upper).server_name.as_deref(),
        Some("git.example.com")
    );
    let dotted = replace(&hello, b"git.example.com", b"git.example.co.");
    assert_eq!(
        read_whole(&dotted).server_name.as_deref(),
        Some("git.example.co")
    );
}

#[test]
fn every_split_point_gives_the_same_answer() {
    for (name, hello, expected) in hellos() {
        for i in 0..hello.len() {
            let (a, b) = hello.split_at(i);
            assert_eq!(read_in(&[a, b]), expected, "{name}, split at {i}");
        }
    }
}

#[test]
fn one_byte_at_a_time() {
    for (name, hello, expected) in hellos() {
        let bytes: Vec<&[u8]> = hello.chunks(1).collect();
        assert_eq!(read_in(&bytes), expected, "{name}");
    }
}

#[test]
fn random_chunkings() {
    for (name, hello, expected) in hellos() {
        for seed in 1..=50 {
            let mut rng = Rng::new(seed);
            let mut chunks = Vec::new();
            let mut rest = hello.as_slice();
            while !rest.is_empty() {
                // Mostly small chunks, sometimes a big one.
                let max = if rng.below(4) == 0 { 2000 } else { 40 };
                let (chunk, tail) = rest.split_at((1 + rng.below(max)).min(rest.len()));
                chunks.push(chunk);
                rest = tail;
            }
            assert_eq!(read_in(&chunks), expected, "{name}, seed {seed}");
        }
    }
}

#[test]
fn bytes_after_the_hello_are_buffered_too() {
    for (name, hello, expected) in hellos() {
        let mut bytes = hello.clone();
        let after = [
            0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03, 0x00, 0x02, 0xaa,
        ];
        bytes.extend_from_slice(&after);
        // Whatever the cut, the hello completes in the push that holds its last byte; the
        // rest of that push is kept.
        for cut in [hello.len() - 1, hello.len(), hello.len() + 3] {
            let mut reader = HelloReader::new(MAX_HELLO);
            let (a, b) = bytes.split_at(cut);
            let accepted = match reader.push(a).unwrap() {
                Some(accepted) => accepted,
                None => reader.push(b).unwrap().unwrap(),
            };
            assert_eq!(info(&accepted), expected, "{name}");
            assert!(reader.unfed().is_empty(), "{name}");
            let buffered = if cut >= hello.len() { a } else { &bytes[..] };
            assert_eq!(reader.buffered(), buffered, "{name}, cut at {cut}");
        }
    }
}

#[test]
fn pushing_after_the_end_is_an_error_not_a_panic() {
    let hello = small_hello();
    let mut reader = HelloReader::new(MAX_HELLO);
    assert!(reader.push(&hello).unwrap().is_some());
    assert!(matches!(
        reader.push(b"more"),
        Err(HelloError::Malformed(_))
    ));
    assert!(matches!(reader.push(b""), Err(HelloError::Malformed(_))));
    assert_eq!(reader.into_buffered(), hello);

    let mut reader = HelloReader::new(MAX_HELLO);
    assert!(reader.push(b"GET / HTTP/1.1\r\n").is_err());
    assert!(matches!(reader.push(&hello), Err(HelloError::Malformed(_))));
}

#[test]
fn truncated_hello_needs_more() {
    for (name, hello, _) in hellos() {
        let mut reader = HelloReader::new(MAX_HELLO);
        assert!(
            reader.push(&hello[..hello.len() - 1]).unwrap().is_none(),
            "{name}"
        );
        assert!(reader.push(&[]).unwrap().is_none(), "{name}");
    }
    assert!(HelloReader::new(MAX_HELLO).push(&[]).unwrap().is_none());
}

#[test]
fn plaintext_http_is_not_tls() {
    let err = HelloReader::new(MAX_HELLO)
        .push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap_err();
    assert_eq!(
        err,
        HelloError::NotTls {
            first_bytes: b"GET / HT".to_vec()
        }
    );
    assert!(err.looks_like_http());
    assert_eq!(err.to_string(), "not TLS (looks like plaintext HTTP)");

    // Decided on the first byte, without waiting for more.
    let err = HelloReader::new(MAX_HELLO).push(b"P").unwrap_err();
    assert!(err.looks_like_http());
    let err = HelloReader::new(MAX_HELLO)
        .push(b"PRI * HTTP/2.0\r\n")
        .unwrap_err();
    assert!(err.looks_like_http());

    for not_http in [
        &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
        b"\x00\x01",
        b"get / HTTP/1.1",
        b"Garbage",
    ] {
        let err = HelloReader::new(MAX_HELLO).push(not_http).unwrap_err();
        assert!(matches!(err, HelloError::NotTls { .. }), "{err:?}");
        assert!(!err.looks_like_http(), "{not_http:?}");
        assert!(
            err.to_string().starts_with("not TLS (first bytes "),
            "{err}"
        );
    }
    assert_eq!(
        HelloReader::new(MAX_HELLO)
            .push(b"\x00\x01")
            .unwrap_err()
            .to_string(),
        "not TLS (first bytes 00 01)"
    );
}

#[test]
fn sslv2_hello_is_refused() {
    // SSL 2.0 CLIENT-HELLO in a 2-byte header (0x80 | length), as old clients sent for
    // compatibility: type 1, version 3.1, cipher specs...
    let v2 = [
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, 0x01, 0x00, 0x80,
    ];
    let err = HelloReader::new(MAX_HELLO).push(&v2).unwrap_err();
    assert_eq!(err, HelloError::SslV2);
    assert_eq!(err.to_string(), "SSL 2.0 ClientHello refused");

    // One byte at a time: undecided until the message type arrives.
    let mut reader = HelloReader::new(MAX_HELLO);
    assert!(reader.push(&v2[..1]).unwrap().is_none());
    assert!(reader.push(&v2[1..2]).unwrap().is_none());
    assert_eq!(reader.push(&v2[2..]).unwrap_err(), HelloError::SslV2);

    // High bit set but not a CLIENT-HELLO: just not TLS.
    let err = HelloReader::new(MAX_HELLO)
        .push(&[0x80, 0x2e, 0x04])
        .unwrap_err();
    assert!(matches!(err, HelloError::NotTls { .. }), "{err:?}");
}

#[test]
fn more_than_the_limit_without_a_hello_is_too_large() {
    // A handshake record announcing 16 KiB, holding the start of a 64 KiB ClientHello.
    let mut bytes = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xff, 0xff];
    bytes.resize(MAX_HELLO, 0);
    let mut reader = HelloReader::new(MAX_HELLO);
    assert!(reader.push(&bytes).unwrap().is_none());
    let err = reader.push(&[0]).unwrap_err();
    assert_eq!(err, HelloError::TooLarge { limit: MAX_HELLO });
    assert_eq!(err.to_string(), "ClientHello larger than 16384 bytes");
    assert_eq!(reader.buffered().len(), MAX_HELLO);

    // The limit counts every byte pushed, even when the push would complete the hello.
    let hello = small_hello();
    let mut reader = HelloReader::new(hello.len() - 1);
    assert_eq!(
        reader.push(&hello).unwrap_err(),
        HelloError::TooLarge {
            limit: hello.len() - 1
        }
    );
    // Exactly at the limit is fine.
    let mut reader = HelloReader::new(hello.len());
    assert!(reader.push(&hello).unwrap().is_some());
}

#[test]
fn malformed_hellos_carry_the_rustls_reason() {
    // A complete handshake record holding something that is not a ClientHello.
    let server_hello = [0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00];
    let err = HelloReader::new(MAX_HELLO).push(&server_hello).unwrap_err();
    assert!(matches!(err, HelloError::Malformed(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("malformed ClientHello: "),
        "{err}"
    );

    // An oversized record.
    let err = HelloReader::new(MAX_HELLO)
        .push(&[0x16, 0x03, 0x01, 0xff, 0xff])
        .unwrap_err();
    assert!(matches!(err, HelloError::Malformed(_)), "{err:?}");

    // The hello with its SNI corrupted: the name is invalid.
    let bad_sni = replace(&small_hello(), b"git.example.com", b"git.exa\0ple.com");
    let err = HelloReader::new(MAX_HELLO).push(&bad_sni).unwrap_err();
    assert!(matches!(err, HelloError::Malformed(_)), "{err:?}");
}

#[test]
fn random_garbage_never_panics() {
    let hello = small_hello();
    let mut rng = Rng::new(0x5eed);
    for round in 0..10_000 {
        let mut bytes = match round % 3 {
            // Pure noise, starting like a handshake record half the time.
            0 => {
                let len = rng.below(600);
                let mut bytes = rng.bytes(len);
                if rng.below(2) == 0 && !bytes.is_empty() {
                    bytes[0] = 0x16;
                }
                bytes
            }
            // A real hello with a few bytes changed.
            1 => {
                let mut bytes = hello.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next_u64() as u8;
                }
                bytes
            }
            // A real hello cut short, with noise after.
            _ => {
                let mut bytes = hello[..rng.below(hello.len())].to_vec();
                let len = rng.below(64);
                bytes.extend(rng.bytes(len));
                bytes
            }
        };
        if round % 7 == 0 {
            bytes.truncate(rng.below(bytes.len() + 1));
        }
        let mut reader = HelloReader::new(if round % 5 == 0 { 256 } else { MAX_HELLO });
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at((1 + rng.below(100)).min(rest.len()));
            rest = tail;
            match reader.push(chunk) {
                Ok(None) => {}
                Ok(Some(accepted)) => {
                    let _ = info(&accepted);
                    break;
                }
                Err(e) => {
                    let _ = e.to_string();
                    break;
                }
            }
        }
    }
}

#[test]
fn hellos_from_openssl() {
    let tls13 = crate::common::fixture("openssl-tls13-hello.bin");
    assert_eq!(read_whole(&tls13), git_info(&[b"h2", b"http/1.1"]));
    for i in 0..tls13.len() {
        let (a, b) = tls13.split_at(i);
        assert_eq!(
            read_in(&[a, b]),
            git_info(&[b"h2", b"http/1.1"]),
            "split at {i}"
        );
    }

    // A TLS 1.0 hello has no signature_algorithms extension, which rustls requires even
    // before any version is negotiated: such a client cannot be routed by SNI at all.
    let tls10 = crate::common::fixture("openssl-tls10-hello.bin");
    let err = HelloReader::new(MAX_HELLO).push(&tls10).unwrap_err();
    assert!(
        err.to_string()
            .contains("SignatureAlgorithmsExtensionRequired"),
        "{err}"
    );
}
