//! Strict unpadded base64url (RFC 7515 section 2): the only encoding tokens, keys and tickets use.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// Rejects padding and non-canonical trailing bits, so one value has exactly one encoding.
const STRICT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    STRICT.encode(bytes)
}

/// Decodes unpadded, canonical base64url; anything else is an error.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STRICT.decode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&[u8]>) {
        assert_eq!(decode(input).ok().as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn strictness() {
        check("AQAB", Some(&[1, 0, 1]));
        check("AQ", Some(&[1]));
        check("AQ==", None); // padding
        check("AR", None); // non-canonical trailing bits
        check("A+B/", None); // standard alphabet
        check("A B", None);
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }
}
