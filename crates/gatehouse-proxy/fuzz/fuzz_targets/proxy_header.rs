//! Fuzzes the PROXY protocol parser: `parse` and `signature` on arbitrary bytes.
//!
//! Beyond "no panic", it checks what callers rely on: a header never claims more bytes than it
//! was given (nor more than `MAX_HEADER`), `parse` agrees with `signature`, every strict prefix
//! of a header (or of an incomplete one) is incomplete, and re-encoding what a header announces
//! parses back to the same addresses (and authority, for v2).

#![no_main]

use gatehouse_proxy::proxy_protocol::{
    MAX_HEADER, ParseError, Signature, Version, encode, encode_local, parse, signature,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sig = signature(data);
    match parse(data) {
        Ok((header, used)) => {
            assert!(used <= data.len() && used <= MAX_HEADER, "{used}");
            assert_eq!(sig, Signature::Yes);
            assert_eq!(parse(&data[..used]), Ok((header.clone(), used)));
            assert_eq!(parse(&data[..used - 1]), Err(ParseError::Incomplete));
            let again = match header.addresses {
                Some((src, dst)) => encode(header.version, src, dst, header.authority.as_deref()),
                None => encode_local(header.version),
            };
            let (back, n) = parse(&again).expect("a re-encoded header parses");
            assert_eq!(n, again.len());
            assert_eq!(
                (back.addresses, back.version),
                (header.addresses, header.version)
            );
            if header.version == Version::V2 && header.addresses.is_some() {
                assert_eq!(back.authority, header.authority);
            }
        }
        Err(ParseError::Incomplete) => {
            assert_ne!(sig, Signature::No);
            assert!(data.len() < MAX_HEADER);
            if let Some((_, shorter)) = data.split_last() {
                assert_eq!(parse(shorter), Err(ParseError::Incomplete));
            }
        }
        Err(ParseError::Invalid(why)) => assert!(!why.is_empty()),
    }
});
