//! OIDC ID tokens signed for real (Firebase-shaped and generic), and every malformed or forged variant
//! refused with its reason.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edgeshell_core::jwks::KeySet;
use edgeshell_core::oidc::{verify_id_token, OidcProvider};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{TokenError, TokenSigner};
use edgeshell_keys::{now_or_never, PrivateJwk, RingVerifier, RsaSigner};
use serde_json::{json, Value};

const NOW: u64 = 1_800_000_000;

fn signer(file: &str) -> RsaSigner {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    RsaSigner::from_jwk(None, &serde_json::from_value::<PrivateJwk>(v["jwk"].clone()).unwrap()).unwrap()
}

fn token(s: &RsaSigner, header: Value, claims: Value) -> String {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(s.sign(input.as_bytes()).unwrap()))
}

fn firebase_claims() -> Value {
    json!({
        "iss": "https://securetoken.google.com/edgeshell-demo", "aud": "edgeshell-demo",
        "auth_time": NOW - 100, "user_id": "uid-123", "sub": "uid-123", "iat": NOW - 10, "exp": NOW + 3590,
        "email": "alice@example.com", "email_verified": true,
        "firebase": {"identities": {"email": ["alice@example.com"]}, "sign_in_provider": "password"}
    })
}

fn verify(t: &str, provider: &OidcProvider, keys: &KeySet) -> Result<String, TokenError> {
    now_or_never(verify_id_token(t, provider, keys, &RingVerifier, Timestamp::from_secs(NOW)))
        .map(|i| i.subject.to_string())
}

#[test]
fn id_tokens() {
    let s = signer("pyjwt-rs256.json");
    let keys = KeySet::from_keys(vec![s.verifying_key().clone()]).unwrap();
    let header = json!({"alg": "RS256", "kid": "pyjwt-1", "typ": "JWT"});
    let firebase = OidcProvider::firebase("edgeshell-demo");

    let ok = token(&s, header.clone(), firebase_claims());
    let identity =
        now_or_never(verify_id_token(&ok, &firebase, &keys, &RingVerifier, Timestamp::from_secs(NOW))).unwrap();
    assert_eq!(identity.subject.as_str(), "uid-123");
    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert!(identity.email_verified);

    let check = |claims: Value, want: &str| {
        let err = verify(&token(&s, header.clone(), claims), &firebase, &keys).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?}, got {err:?}");
    };
    let with = |key: &str, value: Value| {
        let mut c = firebase_claims();
        c[key] = value;
        c
    };
    check(with("iss", json!("https://securetoken.google.com/other")), "issuer");
    check(with("aud", json!("other-project")), "audience");
    check(with("aud", json!(["edgeshell-demo", "other"])), "azp");
    check(with("exp", json!(NOW - 61)), "expired");
    check(with("iat", json!(NOW + 120)), "not valid before");
    check(with("auth_time", json!(NOW + 120)), "not valid before");
    check(with("sub", json!("")), "sub");
    check(with("sub", json!("a\u{0}b")), "sub");
    check(with("exp", json!("soon")), "ID token claims");
    let mut missing = firebase_claims();
    missing.as_object_mut().unwrap().remove("sub");
    check(missing, "missing field `sub`");

    // Several audiences are fine when azp names us.
    let mut multi = with("aud", json!(["edgeshell-demo", "other"]));
    multi["azp"] = json!("edgeshell-demo");
    assert!(verify(&token(&s, header.clone(), multi), &firebase, &keys).is_ok());

    // Forged: signed by another key under the provider's kid; unknown kid; alg none; tampered payload.
    let other = signer("rfc7515-a2.json");
    let forged = token(&other, header.clone(), firebase_claims());
    assert_eq!(verify(&forged, &firebase, &keys), Err(TokenError::BadSignature));
    let unknown = token(&s, json!({"alg": "RS256", "kid": "nope"}), firebase_claims());
    assert!(matches!(verify(&unknown, &firebase, &keys), Err(TokenError::UnknownKid(_))));
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "pyjwt-1"}).to_string()),
        URL_SAFE_NO_PAD.encode(firebase_claims().to_string())
    );
    assert!(matches!(verify(&none, &firebase, &keys), Err(TokenError::UnsupportedAlgorithm(_))));
    let (h, rest) = ok.split_once('.').unwrap();
    let sig = rest.split_once('.').unwrap().1;
    let tampered = format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(with("sub", json!("admin")).to_string()));
    assert_eq!(verify(&tampered, &firebase, &keys), Err(TokenError::BadSignature));

    // Sign-in age limit.
    let mut strict = firebase.clone();
    strict.max_auth_age = Some(std::time::Duration::from_secs(60));
    assert!(verify(&ok, &strict, &keys).unwrap_err().to_string().contains("signed in too long ago"));
}
