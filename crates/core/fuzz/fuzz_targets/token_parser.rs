//! Untrusted token text: parsing and claim decoding must never panic, and a parsed token's signing input
//! must be a prefix of the text.
#![no_main]

use edgeshell_core::tokens::{Claims, UntrustedToken};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(token) = UntrustedToken::parse(text) {
        assert!(text.as_bytes().starts_with(token.signing_input()));
        let _ = serde_json::from_slice::<Claims>(token.payload());
    }
});
