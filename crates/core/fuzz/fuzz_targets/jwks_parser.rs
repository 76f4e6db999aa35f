//! Untrusted JWKS documents from the network: parsing must never panic.
#![no_main]

use edgeshell_core::jwks::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = KeySet::from_json(data);
});
