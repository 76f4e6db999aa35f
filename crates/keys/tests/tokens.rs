//! Token verification against real RS256 backends: the RFC 7515 and PyJWT vectors, and a negative corpus
//! where every attack must be refused for the stated reason by all three native backends.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use edgeshell_core::ids::{Jti, Kid, RegionId, SessionId, Subject};
use edgeshell_core::jwks::{KeySet, VerifyingKey};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{
    sign, Claims, Expectation, Scope, SignatureVerifier, TokenError, TokenSigner, ValidationOptions, Validator,
    Verified,
};
use edgeshell_keys::{now_or_never, JwtCompactRs256, MontgomeryRs256, PrivateJwk, RingVerifier, RsaSigner};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn signer_from(v: &Value) -> RsaSigner {
    let jwk: PrivateJwk = serde_json::from_value(v["jwk"].clone()).unwrap();
    RsaSigner::from_jwk(None, &jwk).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn rfc7515_a2_signs_and_verifies_byte_for_byte() {
    let v = vector("rfc7515-a2.json");
    let signer = signer_from(&v);
    let input = v["signing_input"].as_str().unwrap().as_bytes();
    let expected = URL_SAFE_NO_PAD.decode(v["signature"].as_str().unwrap()).unwrap();
    assert_eq!(signer.sign(input).unwrap(), expected, "deterministic RS256 reproduces the RFC's signature");
    let key = signer.verifying_key();
    now_or_never(JwtCompactRs256.verify(key, input, &expected)).unwrap();
    now_or_never(RingVerifier.verify(key, input, &expected)).unwrap();
    now_or_never(MontgomeryRs256.verify(key, input, &expected)).unwrap();
    let mut bad = expected.clone();
    bad[10] ^= 1;
    assert!(now_or_never(JwtCompactRs256.verify(key, input, &bad)).is_err());
    assert!(now_or_never(RingVerifier.verify(key, input, &bad)).is_err());
    assert!(now_or_never(MontgomeryRs256.verify(key, input, &bad)).is_err());
}

struct Fixture {
    signer: RsaSigner,
    keys: KeySet,
    validator: Validator,
    now: Timestamp,
    session: SessionId,
}

fn fixture() -> Fixture {
    let v = vector("pyjwt-rs256.json");
    let signer = signer_from(&v);
    let jwks = serde_json::json!({"keys": [signer.verifying_key().to_jwk()]});
    let keys = KeySet::from_json(jwks.to_string().as_bytes()).unwrap();
    Fixture {
        signer,
        keys,
        validator: Validator::new(ValidationOptions::new("https://control.test", "edgeshell-edge")),
        now: Timestamp::from_secs(v["now"].as_u64().unwrap() + 60),
        session: SessionId::new("s_pyjwt").unwrap(),
    }
}

impl Fixture {
    fn claims(&self) -> Claims {
        let now = self.now.as_secs() - 60;
        Claims {
            iss: "https://control.test".into(),
            aud: "edgeshell-edge".into(),
            sub: Subject::new("alice").unwrap(),
            sid: self.session.clone(),
            region: RegionId::new("eu-west").unwrap(),
            jti: Jti::new("j1").unwrap(),
            iat: now,
            nbf: now,
            exp: now + 600,
            scope: Scope::Attach,
            art: None,
            bh: None,
            ses: Some(edgeshell_core::lifetime::Terms::lasting(Timestamp::from_secs(now), 3600)),
        }
    }

    /// Verifies with the three native backends; they must agree.
    fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let expect = Expectation { scope: Scope::Attach, session: Some(&self.session) };
        let a = now_or_never(self.validator.verify(token, &self.keys, &JwtCompactRs256, expect, self.now));
        let b = now_or_never(self.validator.verify(token, &self.keys, &RingVerifier, expect, self.now));
        let c = now_or_never(self.validator.verify(token, &self.keys, &MontgomeryRs256, expect, self.now));
        assert_eq!(a, b, "backends disagree on {token}");
        assert_eq!(a, c, "backends disagree on {token}");
        a
    }

    fn token(&self, claims: &Claims) -> String {
        sign(claims, &self.signer).unwrap()
    }

    /// Signs arbitrary header and payload JSON, to craft tokens our types would never produce.
    fn raw(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = self.signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(&sig))
    }
}

#[test]
fn pyjwt_token_verifies_and_our_signature_matches_theirs() {
    let v = vector("pyjwt-rs256.json");
    let f = fixture();
    let token = v["valid_attach"].as_str().unwrap();
    let verified = f.verify(token).expect("PyJWT's token verifies");
    assert_eq!(verified.claims().jti.as_str(), "j-pyjwt-1");
    let (input, sig) = token.rsplit_once('.').unwrap();
    assert_eq!(b64(&f.signer.sign(input.as_bytes()).unwrap()), sig, "same key, same input, same signature");
}

fn check(f: &Fixture, token: &str, expected: &str) {
    let got = f.verify(token).map(|_| ()).map_err(|e| e.to_string());
    match got {
        Err(msg) => assert!(msg.contains(expected), "want {expected:?}, got {msg:?} for {token}"),
        Ok(()) => panic!("accepted, want {expected:?}: {token}"),
    }
}

#[test]
fn negative_corpus() {
    let v = vector("pyjwt-rs256.json");
    let f = fixture();
    let good = f.claims();
    assert!(f.verify(&f.token(&good)).is_ok());

    // Algorithm attacks.
    check(&f, v["alg_none"].as_str().unwrap(), "\"none\" is not accepted");
    check(&f, v["hs256_with_public_key_as_secret"].as_str().unwrap(), "\"HS256\" is not accepted");
    let claims_json = serde_json::to_string(&good).unwrap();
    check(&f, &f.raw(r#"{"alg":"PS256","kid":"pyjwt-1"}"#, &claims_json), "not accepted");

    // Key selection attacks.
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"other","typ":"JWT"}"#, &claims_json), "no key with kid other");
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"../../../../dev/null","typ":"JWT"}"#, &claims_json), "kid is invalid");
    check(
        &f,
        &f.raw(r#"{"alg":"RS256","kid":"x' UNION SELECT key FROM keys--","typ":"JWT"}"#, &claims_json),
        "kid is invalid",
    );
    check(&f, &f.raw(r#"{"alg":"RS256","typ":"JWT"}"#, &claims_json), "no kid");
    check(
        &f,
        &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT","jwk":{"kty":"RSA"}}"#, &claims_json),
        "its own key",
    );

    // Time.
    let mut c = good.clone();
    c.exp = f.now.as_secs() - 31;
    c.nbf = c.exp - 600;
    c.iat = c.nbf;
    check(&f, &f.token(&c), "expired");
    c.exp = f.now.as_secs() - 29; // within the 30 s leeway
    c.nbf = c.exp - 600;
    assert!(f.verify(&f.token(&c)).is_ok());
    let mut c = good.clone();
    c.nbf = f.now.as_secs() + 31;
    c.exp = c.nbf + 60;
    check(&f, &f.token(&c), "not valid before");
    let mut c = good.clone();
    c.exp = c.nbf + 601;
    check(&f, &f.token(&c), "lifetime 601s exceeds");

    // Claims.
    let mut c = good.clone();
    c.aud = "someone-else".into();
    check(&f, &f.token(&c), "audience");
    let mut c = good.clone();
    c.iss = "https://evil.test".into();
    check(&f, &f.token(&c), "issuer");
    let mut c = good.clone();
    c.sid = SessionId::new("s_other").unwrap();
    check(&f, &f.token(&c), "another session");
    let mut c = good.clone();
    c.scope = Scope::Join;
    check(&f, &f.token(&c), "scope session:join");
    let dup = claims_json.replacen("\"sid\":\"s_pyjwt\"", "\"sid\":\"s_pyjwt\",\"sid\":\"s_other\"", 1);
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT"}"#, &dup), "duplicate field `sid`");
    let missing = claims_json.replacen("\"jti\":\"j1\",", "", 1);
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT"}"#, &missing), "missing field `jti`");
    let extra = claims_json.replacen('{', "{\"admin\":true,", 1);
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT"}"#, &extra), "unknown field `admin`");
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT"}"#, "[]"), "claims");

    // Header and claims shapes (RFC 7515 5.2, RFC 7519 7.2): objects only; `null` parameters count as
    // present; ours are `typ: JWT`.
    let header = r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT"}"#;
    check(&f, &f.raw(r#"["RS256","pyjwt-1","JWT"]"#, &claims_json), "header is not a JSON object");
    check(
        &f,
        &f.raw(header, &serde_json::to_string(&claims_as_array(&claims_json)).unwrap()),
        "claims is not a JSON object",
    );
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT","crit":null}"#, &claims_json), "critical");
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT","jku":null}"#, &claims_json), "its own key");
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1"}"#, &claims_json), "typ None is not JWT");
    check(&f, &f.raw(r#"{"alg":"RS256","kid":"pyjwt-1","typ":"JOSE"}"#, &claims_json), "typ Some(\"JOSE\")");

    // Tampering.
    let token = f.token(&good);
    let (h, rest) = token.split_once('.').unwrap();
    let (_, s) = rest.split_once('.').unwrap();
    let mut other = good.clone();
    other.sid = SessionId::new("s_pyjwt").unwrap();
    other.sub = Subject::new("mallory").unwrap();
    let forged_payload = b64(serde_json::to_string(&other).unwrap().as_bytes());
    check(&f, &format!("{h}.{forged_payload}.{s}"), "signature verification failed");
    let mut sig = URL_SAFE_NO_PAD.decode(s).unwrap();
    sig[0] ^= 0x80;
    check(&f, &format!("{h}.{}.{}", rest.split_once('.').unwrap().0, b64(&sig)), "signature verification failed");
    check(
        &f,
        &format!("{h}.{}.{}", rest.split_once('.').unwrap().0, b64(&sig[..200])),
        "signature verification failed",
    );
    check(&f, &format!("{token}x"), "signature base64");
    check(&f, &token.replace('.', "!"), "three");
    check(&f, &format!("{h}.{}", "A".repeat(9000)), "more than");

    // A different key under the same kid (key substitution).
    let rfc = signer_from(&vector("rfc7515-a2.json"));
    let input = format!("{}.{}", b64(br#"{"alg":"RS256","kid":"pyjwt-1","typ":"JWT"}"#), b64(claims_json.as_bytes()));
    let sig = rfc.sign(input.as_bytes()).unwrap();
    check(&f, &format!("{input}.{}", b64(&sig)), "signature verification failed");
}

/// The claims' values in an array, in field order: what a struct deserializer would also accept.
fn claims_as_array(claims_json: &str) -> serde_json::Value {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(claims_json).unwrap();
    serde_json::Value::Array(object.into_iter().map(|(_, v)| v).collect())
}

#[test]
fn key_loading_refuses_weak_and_broken_keys() {
    let rfc = vector("rfc7515-a2.json");
    let mut jwk: PrivateJwk = serde_json::from_value(rfc["jwk"].clone()).unwrap();
    jwk.d = jwk.p.clone();
    assert!(RsaSigner::from_jwk(None, &jwk).is_err(), "inconsistent key");
    jwk.kty = "EC".into();
    assert!(RsaSigner::from_jwk(None, &jwk).is_err());
    assert!(RsaSigner::from_pem(
        Kid::new("k").unwrap(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
    )
    .is_err());
    let small = VerifyingKey::rsa(Kid::new("k").unwrap(), edgeshell_core::tokens::Alg::Rs256, &[0xff; 128], &[1, 0, 1]);
    assert!(small.is_err(), "1024-bit keys are refused");
    let dbg = format!("{:?} {:?}", jwk, signer_from(&rfc));
    assert!(!dbg.contains(rfc["jwk"]["d"].as_str().unwrap()), "private members never printed: {dbg}");
}

#[test]
fn artifact_links_are_signed_bound_and_single_use_under_concurrency() {
    use edgeshell_core::artifacts::{check_link, link_claims, ArtifactLimits, ArtifactPath, LinkRequest};
    use edgeshell_core::jti::{Consumed, JtiStore, MemoryJtiStore};
    use edgeshell_core::tokens::Method;

    let f = fixture();
    let owner = Subject::new("alice").unwrap();
    let region = RegionId::new("eu-west").unwrap();
    let path = ArtifactPath::new("out/report.html").unwrap();
    let req = LinkRequest {
        issuer: "https://control.test",
        audience: "edgeshell-edge",
        owner: &owner,
        session: &f.session,
        region: &region,
        path: &path,
        method: Method::Get,
        jti: Jti::new("link-1").unwrap(),
    };
    let claims = link_claims(req, &ArtifactLimits::default(), Timestamp::from_secs(f.now.as_secs() - 10));
    let link = sign(&claims, &f.signer).unwrap();
    let expect = Expectation { scope: Scope::ArtifactGet, session: Some(&f.session) };
    let verified = now_or_never(f.validator.verify(&link, &f.keys, &RingVerifier, expect, f.now)).unwrap();
    check_link(&verified, &f.session, &path, Method::Get).unwrap();
    assert!(check_link(&verified, &f.session, &ArtifactPath::new("other").unwrap(), Method::Get).is_err());
    // An attach endpoint refuses the link, and the link refuses to be an attach token.
    let attach = Expectation { scope: Scope::Attach, session: Some(&f.session) };
    assert!(matches!(
        now_or_never(f.validator.verify(&link, &f.keys, &RingVerifier, attach, f.now)),
        Err(TokenError::WrongScope { .. })
    ));

    // 100 concurrent uses of the same link: exactly one first use.
    let store = MemoryJtiStore::default();
    let expires = Timestamp::from_secs(verified.claims().exp);
    let firsts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|_| s.spawn(|| now_or_never(store.consume_once(&verified.claims().jti, expires, f.now)).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(firsts.iter().filter(|c| **c == Consumed::First).count(), 1);
    assert_eq!(firsts.iter().filter(|c| **c == Consumed::Replayed).count(), 99);
}

#[test]
fn keys_load_from_secret_variables_as_jwk_or_pem() {
    use rsa::pkcs8::EncodePrivateKey;
    let v = vector("rfc7515-a2.json");
    let with_kid = RsaSigner::from_secret(&v["jwk"].to_string()).unwrap();
    assert_eq!(with_kid.kid().as_str(), "rfc7515-a2");
    let mut anonymous = v["jwk"].clone();
    anonymous.as_object_mut().unwrap().remove("kid");
    let by_thumbprint = RsaSigner::from_secret(&anonymous.to_string()).unwrap();
    assert_eq!(by_thumbprint.kid().as_str(), with_kid.verifying_key().thumbprint());

    // The same key as PKCS#8 PEM gets the same thumbprint kid and signs identically.
    let jwk: PrivateJwk = serde_json::from_value(v["jwk"].clone()).unwrap();
    let n = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(&jwk.n).unwrap());
    let e = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(&jwk.e).unwrap());
    let d = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(&jwk.d).unwrap());
    let p = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(&jwk.p).unwrap());
    let q = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(&jwk.q).unwrap());
    let key = rsa::RsaPrivateKey::from_components(n, e, d, vec![p, q]).unwrap();
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let from_pem = RsaSigner::from_secret(&pem).unwrap();
    assert_eq!(from_pem.kid(), by_thumbprint.kid());
    assert_eq!(from_pem.sign(b"x").unwrap(), with_kid.sign(b"x").unwrap());

    for bad in ["", "not a key", "{\"kty\":\"RSA\"}", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"] {
        assert!(RsaSigner::from_secret(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_generated_key_round_trips_as_a_jwk_and_verifies_with_every_backend() {
    let jwk = PrivateJwk::generate("dev-1", 2048, &mut rand::rngs::OsRng).unwrap();
    let text = serde_json::to_string(&jwk).unwrap();
    assert!(!format!("{jwk:?}").contains(&jwk.d), "Debug must not print private members");
    let parsed: PrivateJwk = serde_json::from_str(&text).unwrap();
    let signer = RsaSigner::from_jwk(None, &parsed).unwrap();
    assert_eq!(signer.kid().as_str(), "dev-1");
    let signature = signer.sign(b"signing input").unwrap();
    now_or_never(JwtCompactRs256.verify(signer.verifying_key(), b"signing input", &signature)).unwrap();
    now_or_never(RingVerifier.verify(signer.verifying_key(), b"signing input", &signature)).unwrap();
    now_or_never(MontgomeryRs256.verify(signer.verifying_key(), b"signing input", &signature)).unwrap();
    let other = PrivateJwk::generate("dev-2", 2048, &mut rand::rngs::OsRng).unwrap();
    assert_ne!(other.n, jwk.n, "each generation is a new key");
}

#[test]
fn ring_signs_keys_from_every_form_and_computes_missing_crt_members() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    // A JWK with its CRT members (as `generate` writes it) and the same key without them: the members
    // computed here give the very signatures the given ones give (PKCS#1 v1.5 is deterministic).
    let full = PrivateJwk::generate("crt", 2048, &mut rand::rngs::OsRng).unwrap();
    assert!(full.dp.is_some() && full.dq.is_some() && full.qi.is_some());
    let bare = PrivateJwk { dp: None, dq: None, qi: None, ..full.clone() };
    let (with, without) = (RsaSigner::from_jwk(None, &full).unwrap(), RsaSigner::from_jwk(None, &bare).unwrap());
    assert_eq!(with.sign(b"input").unwrap(), without.sign(b"input").unwrap());
    // The p and q of a JWK may come in either order: qInv is reduced first.
    let swapped = PrivateJwk { p: bare.q.clone(), q: bare.p.clone(), ..bare.clone() };
    assert_eq!(RsaSigner::from_jwk(None, &swapped).unwrap().sign(b"input").unwrap(), with.sign(b"input").unwrap());
    let partial = PrivateJwk { qi: None, ..full.clone() };
    let why = RsaSigner::from_jwk(None, &partial).unwrap_err().to_string();
    assert!(why.contains("dp, dq and qi"), "{why}");

    // PKCS#1 and PKCS#8 PEM of one key: the same kid, the same signatures.
    let b = |v: &str| rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(v).unwrap());
    let key =
        rsa::RsaPrivateKey::from_components(b(&full.n), b(&full.e), b(&full.d), vec![b(&full.p), b(&full.q)]).unwrap();
    let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let pkcs8 = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    for pem in [pkcs1.as_str(), pkcs8.as_str()] {
        let signer = RsaSigner::from_secret(pem).unwrap();
        assert_eq!(signer.kid().as_str(), with.verifying_key().thumbprint());
        assert_eq!(signer.sign(b"input").unwrap(), with.sign(b"input").unwrap());
    }
    // Under 2048 bits, and PEMs of other things, are refused with the reason.
    let weak = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024)
        .unwrap()
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    assert!(matches!(RsaSigner::from_secret(&weak), Err(edgeshell_keys::KeyError::Refused(_))));
    let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
    let why = RsaSigner::from_secret(cert).unwrap_err().to_string();
    assert!(why.contains("CERTIFICATE"), "{why}");
}

#[test]
fn es256_tokens_verify_natively_and_resist_algorithm_confusion() {
    let f = fixture();
    let (es, _) = edgeshell_keys::Es256Signer::generate().unwrap();
    let jwks = serde_json::json!({"keys": [f.signer.verifying_key().to_jwk(), es.verifying_key().to_jwk()]});
    let keys = KeySet::from_json(jwks.to_string().as_bytes()).unwrap();
    // ES256 is for the kinds only our services verify (join, pool commands): a join token verifies...
    let mut claims = f.claims();
    claims.scope = Scope::Join;
    let expect = Expectation { scope: Scope::Join, session: Some(&f.session) };
    let token = sign(&claims, &es).unwrap();
    let verified = now_or_never(f.validator.verify(&token, &keys, &RingVerifier, expect, f.now)).unwrap();
    assert_eq!(verified.kid(), es.kid());
    // ...an attach token signed by the same key does not: the algorithm is pinned per kind as well.
    let attach = sign(&f.claims(), &es).unwrap();
    let attach_expect = Expectation { scope: Scope::Attach, session: Some(&f.session) };
    let err = now_or_never(f.validator.verify(&attach, &keys, &RingVerifier, attach_expect, f.now)).unwrap_err();
    assert!(matches!(err, TokenError::AlgorithmNotForScope { scope: Scope::Attach, .. }), "{err}");
    // The wasm-side RSA verifiers do not pretend to check ES256.
    let refused = now_or_never(f.validator.verify(&token, &keys, &MontgomeryRs256, expect, f.now));
    assert!(refused.unwrap_err().to_string().contains("ES256"), "MontgomeryRs256 refuses ES256 as a bad key");
    // The EC key's kid under an RS256 header, and the RSA key's kid under an ES256 header: refused before
    // any signature check, whatever the signature is.
    let (_, payload_and_sig) = token.split_once('.').unwrap();
    for (alg, kid) in [("RS256", es.kid().as_str()), ("ES256", f.signer.kid().as_str())] {
        let header = b64(format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"JWT"}}"#).as_bytes());
        let forged = format!("{header}.{payload_and_sig}");
        let err = now_or_never(f.validator.verify(&forged, &keys, &RingVerifier, expect, f.now)).unwrap_err();
        assert!(matches!(err, TokenError::AlgorithmMismatch { .. }), "{alg} with {kid}: {err}");
    }
    // A flipped bit in the ES256 signature is refused.
    let mut bad = token.into_bytes();
    let last = bad.len() - 2;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert!(now_or_never(f.validator.verify(&bad, &keys, &RingVerifier, expect, f.now)).is_err());
}
