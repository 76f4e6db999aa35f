//! Attacks on RS256 verification, held against all three backends (`MontgomeryRs256`, `ring`,
//! `jwt-compact` + `rsa`): signatures of malformed PKCS#1 v1.5 blocks made with the real private key
//! (the forgeries lax parsers accept), out-of-range and wrong-length signatures, flipped bits, and a
//! modulus whose length is not a whole number of limbs. Every backend must refuse every one, and
//! accept the honest signature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edgeshell_core::ids::Kid;
use edgeshell_core::jwks::VerifyingKey;
use edgeshell_core::tokens::{Alg, SignatureVerifier, TokenSigner};
use edgeshell_keys::{now_or_never, JwtCompactRs256, MontgomeryRs256, PrivateJwk, RingVerifier, RsaSigner};
use proptest::prelude::*;
use rsa::BigUint;
use sha2::{Digest, Sha256};

const DIGEST_INFO: [u8; 19] =
    [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

/// A private key that can sign any block, not only well-formed ones.
struct RawKey {
    key: VerifyingKey,
    n: BigUint,
    d: BigUint,
    k: usize,
}

impl RawKey {
    fn new(n: &BigUint, e: &BigUint, d: &BigUint) -> RawKey {
        let key = VerifyingKey::rsa(Kid::new("raw").unwrap(), Alg::Rs256, &n.to_bytes_be(), &e.to_bytes_be()).unwrap();
        let k = n.to_bytes_be().len();
        RawKey { key, n: n.clone(), d: d.clone(), k }
    }

    fn from_jwk(jwk: &PrivateJwk) -> RawKey {
        let int = |s: &str| BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(s).unwrap());
        RawKey::new(&int(&jwk.n), &int(&jwk.e), &int(&jwk.d))
    }

    fn pyjwt_jwk() -> PrivateJwk {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/pyjwt-rs256.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        serde_json::from_value(v["jwk"].clone()).unwrap()
    }

    fn pyjwt() -> RawKey {
        RawKey::from_jwk(&RawKey::pyjwt_jwk())
    }

    fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The honest RS256 signature of `input`.
    fn sign(&self, input: &[u8]) -> Vec<u8> {
        self.sign_block(&block(self.k, 1, &DIGEST_INFO, &Sha256::digest(input), &[]))
    }

    /// `block^d mod n` as `k` bytes: a "signature" of any block.
    fn sign_block(&self, block: &[u8]) -> Vec<u8> {
        self.pad(BigUint::from_bytes_be(block).modpow(&self.d, &self.n))
    }

    fn pad(&self, value: BigUint) -> Vec<u8> {
        let bytes = value.to_bytes_be();
        let mut out = vec![0; self.k - bytes.len()];
        out.extend_from_slice(&bytes);
        out
    }
}

/// `00 01 FF.. 00 <digest info> <hash>` with `ff` padding bytes, then `tail`; `k` bytes in total when
/// the lengths add up.
fn block(k: usize, kind: u8, digest_info: &[u8], hash: &[u8], tail: &[u8]) -> Vec<u8> {
    let ff = k - 3 - digest_info.len() - hash.len() - tail.len();
    let mut b = vec![0x00, kind];
    b.extend(std::iter::repeat_n(0xff, ff));
    b.push(0x00);
    b.extend_from_slice(digest_info);
    b.extend_from_slice(hash);
    b.extend_from_slice(tail);
    b
}

/// What each backend says; they must agree.
fn verdict(key: &VerifyingKey, input: &[u8], signature: &[u8]) -> bool {
    let results = [
        now_or_never(MontgomeryRs256.verify(key, input, signature)).is_ok(),
        now_or_never(RingVerifier.verify(key, input, signature)).is_ok(),
        now_or_never(JwtCompactRs256.verify(key, input, signature)).is_ok(),
    ];
    assert!(results.iter().all(|&r| r == results[0]), "backends disagree: {results:?}");
    results[0]
}

#[test]
fn malformed_blocks_signed_with_the_real_key_are_refused() {
    forgeries_are_refused(&RawKey::pyjwt(), Some(RsaSigner::from_jwk(None, &RawKey::pyjwt_jwk()).unwrap()));
}

#[test]
fn with_exponent_3_where_bleichenbacher_forges_without_the_key_forgeries_are_refused_too() {
    let key = rsa::RsaPrivateKey::new_with_exp(&mut rand::rngs::OsRng, 2048, &BigUint::from(3u8)).unwrap();
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    forgeries_are_refused(&RawKey::new(key.n(), key.e(), key.d()), None);
}

/// Every malformed block signed with `raw` is refused by every backend; the honest one verifies (and is
/// what `signer`, when given, makes).
fn forgeries_are_refused(raw: &RawKey, signer: Option<RsaSigner>) {
    let input = b"header.payload";
    let hash = Sha256::digest(input);
    let k = raw.k;
    let honest = block(k, 1, &DIGEST_INFO, &hash, &[]);
    assert!(verdict(raw.key(), input, &raw.sign_block(&honest)), "the well-formed block verifies");
    if let Some(signer) = signer {
        assert_eq!(raw.sign_block(&honest), signer.sign(input).unwrap(), "and is what the signer makes");
    }

    let without_null: Vec<u8> = [&[0x30, 0x2f, 0x30, 0x0b][..], &DIGEST_INFO[4..15], &DIGEST_INFO[17..]].concat();
    let mut wrong_type = DIGEST_INFO;
    wrong_type[14] = 0x02; // SHA-384's OID arc
    let other_hash = Sha256::digest(b"header.other");
    let forgeries: Vec<(&str, Vec<u8>)> = vec![
        ("garbage after the hash (Bleichenbacher 2006)", block(k, 1, &DIGEST_INFO, &hash, &[0xab; 40])),
        ("block type 2", block(k, 2, &DIGEST_INFO, &hash, &[])),
        ("block type 0", block(k, 0, &DIGEST_INFO, &hash, &[])),
        ("digest info without NULL parameters", block(k, 1, &without_null, &hash, &[])),
        ("another hash algorithm's OID", block(k, 1, &wrong_type, &hash, &[])),
        ("no digest info", block(k, 1, &[], &hash, &[])),
        ("the hash of another input", block(k, 1, &DIGEST_INFO, &other_hash, &[])),
        ("a truncated hash", block(k, 1, &DIGEST_INFO, &hash[..31], &[])),
    ];
    for (name, forged) in forgeries {
        assert_eq!(forged.len(), k, "{name}");
        assert!(!verdict(raw.key(), input, &raw.sign_block(&forged)), "accepted: {name}");
    }

    // Padding shorter than eight FF bytes, the rest moved into the hash's place.
    let mut short = vec![0x00, 0x01, 0xff, 0xff, 0x00];
    short.extend_from_slice(&DIGEST_INFO);
    short.extend_from_slice(&hash);
    short.resize(k, 0);
    assert!(!verdict(raw.key(), input, &raw.sign_block(&short)), "accepted: short padding");
    // A leading byte other than zero (a block at least as large as the modulus cannot be signed).
    let mut leading = honest.clone();
    leading[0] = 0x01;
    if BigUint::from_bytes_be(&leading) < raw.n {
        assert!(!verdict(raw.key(), input, &raw.sign_block(&leading)), "accepted: leading 01");
    }
}

#[test]
fn out_of_range_and_wrong_length_signatures_are_refused() {
    let raw = RawKey::pyjwt();
    let input = b"header.payload";
    let good = raw.sign(input);
    let s = BigUint::from_bytes_be(&good);
    // s + n is the same value mod n: the modulus must bound the signature, or two signatures verify.
    let plus_n = &s + &raw.n;
    if plus_n.to_bytes_be().len() <= raw.k {
        assert!(!verdict(raw.key(), input, &raw.pad(plus_n)), "s + n accepted");
    }
    let n = raw.pad(raw.n.clone());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero", vec![0; raw.k]),
        ("one", raw.pad(BigUint::from(1u8))),
        ("n - 1", raw.pad(&raw.n - 1u8)),
        ("n", n),
        ("all ones", vec![0xff; raw.k]),
        ("one byte short", good[1..].to_vec()),
        ("one byte long", [&[0u8][..], &good].concat()),
        ("empty", Vec::new()),
    ];
    for (name, signature) in cases {
        assert!(!verdict(raw.key(), input, &signature), "accepted: {name}");
    }
}

#[test]
fn a_modulus_of_no_whole_limb_count_verifies_and_refuses_alike() {
    // 2056 bits: 257 bytes, which is neither a whole number of 32- nor of 64-bit limbs (`ring` signs only
    // multiples of 512 bits, so the raw key signs; `ring` still verifies).
    let jwk = PrivateJwk::generate("odd-size", 2056, &mut rand::rngs::OsRng).unwrap();
    let raw = RawKey::from_jwk(&jwk);
    assert_eq!(raw.k, 257);
    let signature = raw.sign(b"input");
    assert!(verdict(raw.key(), b"input", &signature));
    assert!(!verdict(raw.key(), b"other", &signature));
    let mut flipped = signature.clone();
    flipped[200] ^= 0x10;
    assert!(!verdict(raw.key(), b"input", &flipped));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_flipped_bit_or_other_input_is_refused(
        input in proptest::collection::vec(any::<u8>(), 0..300),
        byte in 0usize..256,
        bit in 0u8..8,
        other in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let raw = RawKey::pyjwt();
        let signature = raw.sign(&input);
        prop_assert!(verdict(raw.key(), &input, &signature));
        let mut flipped = signature.clone();
        flipped[byte % raw.k] ^= 1 << bit;
        prop_assert!(!verdict(raw.key(), &input, &flipped));
        if other != input {
            prop_assert!(!verdict(raw.key(), &other, &signature));
        }
    }
}
