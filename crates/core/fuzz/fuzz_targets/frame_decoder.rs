//! Untrusted frames: decoding must never panic, and whatever decodes must re-encode to the same bytes.
#![no_main]

use edgeshell_core::protocol::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(frame.encode(), data);
    }
});
