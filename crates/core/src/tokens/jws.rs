//! Compact JWS serialization (RFC 7515 section 7.1): parsing untrusted text and producing signed tokens.

use super::signature::{Alg, SignatureError, TokenSigner};
use super::TokenError;
use crate::base64url;
use crate::ids::Kid;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// The longest token accepted. Ours are about 900 bytes; OIDC ID tokens stay well under 4 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The JOSE header we write and the parts of one we read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The algorithm the header claims. Only compared with the key's pinned algorithm, never trusted.
    pub alg: String,
    /// The signing key's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Media type, `JWT` for ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    // Whether each parameter is present, whatever its value: `"crit": null` is a `crit` too.
    #[serde(default, skip_serializing, deserialize_with = "present")]
    crit: bool,
    // Key-carrying parameters let a token name its own key; a token that tries is refused outright.
    #[serde(default, skip_serializing, deserialize_with = "present")]
    jku: bool,
    #[serde(default, skip_serializing, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, skip_serializing, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, skip_serializing, deserialize_with = "present")]
    x5c: bool,
}

/// True for a header parameter that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d)?;
    Ok(true)
}

/// Parses a JOSE header or a claims set, which RFC 7515 (5.2) and RFC 7519 (7.2) require to be a JSON
/// object: serde would also read a struct from an array, so anything but an object is refused first.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, TokenError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(TokenError::Malformed(format!("{what} is not a JSON object")));
    }
    serde_json::from_slice(bytes).map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
}

impl Header {
    /// The header of a token signed with `alg` by key `kid`.
    pub fn new(alg: Alg, kid: &Kid) -> Header {
        Header {
            alg: alg.name().to_owned(),
            kid: Some(kid.as_str().to_owned()),
            typ: Some("JWT".to_owned()),
            crit: false,
            jku: false,
            jwk: false,
            x5u: false,
            x5c: false,
        }
    }
}

/// A token that parsed but whose signature and claims have not been checked.
#[derive(Debug, Clone)]
pub struct UntrustedToken<'a> {
    header: Header,
    kid: Kid,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> UntrustedToken<'a> {
    /// Splits and decodes a compact JWS. Rejects oversize input, bad base64, unaccepted algorithms,
    /// `crit`, embedded keys, and a missing or invalid `kid` before any cryptography runs.
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge { len: token.len(), max: MAX_TOKEN_BYTES });
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed("expected three dot-separated parts".into()));
        };
        let header_json = base64url::decode(h).map_err(|e| TokenError::Malformed(format!("header base64: {e}")))?;
        let header: Header = json_object(&header_json, "header")?;
        if Alg::from_name(&header.alg).is_none() {
            return Err(TokenError::UnsupportedAlgorithm(header.alg));
        }
        if header.crit {
            return Err(TokenError::CriticalHeader);
        }
        if header.jku || header.jwk || header.x5u || header.x5c {
            return Err(TokenError::Malformed("header names its own key (jku/jwk/x5u/x5c)".into()));
        }
        let kid = header.kid.as_deref().ok_or(TokenError::MissingKid)?;
        let kid = Kid::new(kid).map_err(TokenError::BadKid)?;
        if kid.is_dot_segment() {
            return Err(TokenError::Malformed("kid is a dot segment".into()));
        }
        let payload = base64url::decode(p).map_err(|e| TokenError::Malformed(format!("payload base64: {e}")))?;
        let signature = base64url::decode(s).map_err(|e| TokenError::Malformed(format!("signature base64: {e}")))?;
        if signature.is_empty() {
            return Err(TokenError::Malformed("empty signature".into()));
        }
        let signing_input = &token[..h.len() + 1 + p.len()];
        Ok(UntrustedToken { header, kid, signing_input, payload, signature })
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The validated key id.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// `BASE64URL(header) '.' BASE64URL(payload)`, the bytes the signature covers.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded payload, not yet trusted.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// Serializes `claims` and signs them with `signer`, giving a compact JWS.
pub fn sign<C: Serialize, S: TokenSigner + ?Sized>(claims: &C, signer: &S) -> Result<String, SignatureError> {
    let header = Header::new(signer.alg(), signer.kid());
    let header = serde_json::to_vec(&header).map_err(|e| SignatureError::Backend(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| SignatureError::Backend(e.to_string()))?;
    let mut token = base64url::encode(&header);
    token.push('.');
    token.push_str(&base64url::encode(&payload));
    let signature = signer.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&base64url::encode(&signature));
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            base64url::encode(header.as_bytes()),
            base64url::encode(payload.as_bytes()),
            base64url::encode(sig)
        )
    }

    fn check(input: &str, expected: Result<(), &str>) {
        let got = UntrustedToken::parse(input).map(|_| ()).map_err(|e| e.to_string());
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => {
                assert!(got.contains(want), "{input:?}: got {got:?}, want {want:?}")
            }
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parse_rules() {
        let ok_header = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;
        check(&token(ok_header, "{}", b"sig"), Ok(()));
        check(&token(r#"{"alg":"none","kid":"k1"}"#, "{}", b"sig"), Err("\"none\" is not accepted"));
        check(&token(r#"{"alg":"HS256","kid":"k1"}"#, "{}", b"sig"), Err("\"HS256\" is not accepted"));
        check(&token(r#"{"alg":"rs256","kid":"k1"}"#, "{}", b"sig"), Err("not accepted"));
        check(&token(r#"{"alg":"RS256"}"#, "{}", b"sig"), Err("no kid"));
        check(&token(r#"{"alg":"RS256","kid":"../../etc/passwd"}"#, "{}", b"sig"), Err("kid is invalid"));
        check(&token(r#"{"alg":"RS256","kid":"k' OR 1=1 --"}"#, "{}", b"sig"), Err("kid is invalid"));
        check(&token(r#"{"alg":"RS256","kid":".."}"#, "{}", b"sig"), Err("dot segment"));
        check(&token(r#"{"alg":"RS256","kid":"k1","crit":["exp"]}"#, "{}", b"sig"), Err("critical"));
        // A `null` parameter is present all the same, and a header must be an object (RFC 7515 5.2).
        check(&token(r#"{"alg":"RS256","kid":"k1","crit":null}"#, "{}", b"sig"), Err("critical"));
        check(&token(r#"{"alg":"RS256","kid":"k1","x5u":null}"#, "{}", b"sig"), Err("its own key"));
        check(&token(r#"["RS256","k1","JWT"]"#, "{}", b"sig"), Err("header is not a JSON object"));
        check(&token(r#"{"alg":"RS256","kid":"k1","jku":"https://evil"}"#, "{}", b"sig"), Err("its own key"));
        check(&token(r#"{"alg":"RS256","kid":"k1","jwk":{}}"#, "{}", b"sig"), Err("its own key"));
        check(&token(r#"{"alg":"RS256","alg":"none","kid":"k1"}"#, "{}", b"sig"), Err("duplicate field"));
        check(&token(ok_header, "{}", b""), Err("empty signature"));
        check("a.b", Err("three"));
        check("a.b.c.d", Err("three"));
        check("!!.e30.c2ln", Err("header base64"));
        check(&format!("{}.e30=.c2ln", base64url::encode(ok_header.as_bytes())), Err("payload base64"));
        check(&"a".repeat(MAX_TOKEN_BYTES + 1), Err("more than"));
    }

    #[test]
    fn signing_input_is_the_first_two_parts() {
        let t = token(r#"{"alg":"RS256","kid":"k1"}"#, r#"{"a":1}"#, b"xyz");
        let parsed = UntrustedToken::parse(&t).unwrap();
        let expected = t.rsplit_once('.').unwrap().0;
        assert_eq!(parsed.signing_input(), expected.as_bytes());
        assert_eq!(parsed.signature(), b"xyz");
        assert_eq!(parsed.payload(), br#"{"a":1}"#);
    }
}
