//! Fuzzes `HelloReader`: the input after its first byte is pushed in chunks (the first byte
//! chooses the chunk size, 1 to 256), and a completed hello is read with `info()`.
//!
//! Beyond "no panic", it checks what callers rely on: every byte pushed is buffered in order,
//! nothing is left unfed, a push after the end is an error, and the SNI is normalized.

#![no_main]

use gatehouse_tls::hello::{HelloError, HelloReader, MAX_HELLO, info};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first) + 1;
    let mut reader = HelloReader::new(MAX_HELLO);
    let mut pushed = 0;
    for piece in input.chunks(chunk) {
        let result = reader.push(piece);
        if !matches!(result, Err(HelloError::TooLarge { .. })) {
            pushed += piece.len();
        }
        match result {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                let hello = info(&accepted);
                if let Some(name) = &hello.server_name {
                    assert!(!name.ends_with('.'), "{name:?}");
                    assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
                }
                assert!(hello.alpn.iter().all(|p| !p.is_empty()));
                assert!(reader.unfed().is_empty());
                assert!(reader.push(b"x").is_err());
                break;
            }
            Err(e) => {
                let _ = e.to_string();
                assert!(reader.push(b"x").is_err());
                break;
            }
        }
    }
    assert_eq!(reader.buffered(), &input[..pushed]);
});
