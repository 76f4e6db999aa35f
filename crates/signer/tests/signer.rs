//! The signer over real HTTP on loopback: tokens it signs verify against the keys it publishes, and
//! every attack on it fails — no key, a wrong key (many at once), a key asking beyond its grant (many at
//! once), claims it must not sign, bad bodies;
//! with an ES256 key, each kind of token is signed with the algorithm its scope allows.

use edgeshell_core::grants::{SignerClient, SignerClients, FUNCTIONS_AUDIENCES, FUNCTIONS_SCOPES};
use edgeshell_core::ids::{RegionId, Subject};
use edgeshell_core::issue::{session_id, Issuer};
use edgeshell_core::jwks::KeySet;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{
    Alg, Claims, Expectation, Scope, TokenSigner, UntrustedToken, ValidationOptions, Validator,
};
use edgeshell_keys::{now_or_never, PrivateJwk, RingVerifier};
use edgeshell_signer::{Signer, SignerConfig};
use std::collections::HashMap;

/// The functions' key: their grant (attach, join, pool commands, artifact links; no uploads).
const API_KEY: &str = "test-signer-key-0123456789abcdef0123";
/// A client that may only have join tokens for the edge signed.
const JOIN_ONLY_KEY: &str = "test-join-only-key-0123456789abcdef";
const ISSUER: &str = "edgeshell-control";

/// The clients every test signer serves.
fn clients() -> String {
    SignerClients::from_clients(vec![
        SignerClient::new("functions", API_KEY, &FUNCTIONS_SCOPES, &FUNCTIONS_AUDIENCES),
        SignerClient::new("join-only", JOIN_ONLY_KEY, &[Scope::Join], &["edgeshell-edge"]),
    ])
    .to_json()
}

fn now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    Timestamp::from_millis(since.as_millis() as u64)
}

fn secret(kid: &str) -> String {
    serde_json::to_string(&PrivateJwk::generate(kid, 2048, &mut rand::rngs::OsRng).unwrap()).unwrap()
}

async fn start(next: Option<&str>) -> Signer {
    let mut vars = HashMap::from([
        ("EDGESHELL_SIGNER_LISTEN", "127.0.0.1:0".to_owned()),
        ("EDGESHELL_SIGNER_CLIENTS", clients()),
        ("EDGESHELL_SIGNING_KEY", secret("current")),
    ]);
    if let Some(kid) = next {
        vars.insert("EDGESHELL_NEXT_SIGNING_KEY", secret(kid));
    }
    let config = SignerConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
    Signer::start(config).await.unwrap()
}

fn attach_claims() -> Claims {
    Issuer::new(ISSUER).attach(
        &Subject::new("alice").unwrap(),
        (&session_id(rand::random()), &RegionId::new("eu").unwrap()),
        edgeshell_core::lifetime::Terms::lasting(now(), 3600),
        rand::random(),
        now(),
    )
}

async fn sign(signer: &Signer, key: Option<&str>, body: String) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().post(format!("http://{}/v1/sign", signer.addr())).body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn body(claims: &Claims) -> String {
    serde_json::json!({ "claims": claims }).to_string()
}

async fn jwks(signer: &Signer) -> KeySet {
    let bytes = reqwest::get(format!("http://{}/v1/jwks", signer.addr())).await.unwrap().bytes().await.unwrap();
    KeySet::from_json(&bytes).unwrap()
}

#[tokio::test]
async fn a_signed_token_verifies_against_the_published_keys_which_include_the_next_key() {
    let signer = start(Some("next")).await;
    let claims = attach_claims();
    let (status, answer) = sign(&signer, Some(API_KEY), body(&claims)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["kid"], "current");
    let keys = jwks(&signer).await;
    let kids: Vec<_> = keys.keys().iter().map(|k| k.kid().as_str().to_owned()).collect();
    assert_eq!(kids, ["current", "next"]);
    let validator = Validator::new(ValidationOptions::new(ISSUER, "edgeshell-edge"));
    let expect = Expectation { scope: Scope::Attach, session: Some(&claims.sid) };
    let token = answer["token"].as_str().unwrap();
    let verified = now_or_never(validator.verify(token, &keys, &RingVerifier, expect, now())).unwrap();
    assert_eq!(verified.claims(), &claims);
    assert_eq!(signer.signed(), 1);
}

#[tokio::test]
async fn with_an_es256_key_join_and_pool_command_tokens_are_es256_and_attach_tokens_stay_rs256() {
    let (es, pem) = edgeshell_keys::Es256Signer::generate().unwrap();
    let vars = HashMap::from([
        ("EDGESHELL_SIGNER_LISTEN", "127.0.0.1:0".to_owned()),
        ("EDGESHELL_SIGNER_CLIENTS", clients()),
        ("EDGESHELL_SIGNING_KEY", secret("current")),
        ("EDGESHELL_ES256_KEY", pem),
    ]);
    let signer = Signer::start(SignerConfig::from_lookup(|name| vars.get(name).cloned()).unwrap()).await.unwrap();
    let keys = jwks(&signer).await;
    let algs: Vec<_> = keys.keys().iter().map(|k| (k.kid().as_str().to_owned(), k.alg())).collect();
    assert_eq!(algs, [("current".to_owned(), Alg::Rs256), (es.kid().as_str().to_owned(), Alg::Es256)]);
    let issuer = Issuer::new(ISSUER);
    let (sid, region) = (session_id(rand::random()), RegionId::new("eu").unwrap());
    let join =
        issuer.join((&sid, &region), edgeshell_core::lifetime::Terms::lasting(now(), 3600), rand::random(), now());
    let command = issuer.pool_command(&sid, &region, b"{}", rand::random(), now());
    let attach = attach_claims();
    for (claims, kid, alg) in
        [(&join, es.kid().as_str(), "ES256"), (&command, es.kid().as_str(), "ES256"), (&attach, "current", "RS256")]
    {
        let (status, answer) = sign(&signer, Some(API_KEY), body(claims)).await;
        assert_eq!((status, answer["kid"].as_str().unwrap()), (200, kid), "{answer}");
        let token = answer["token"].as_str().unwrap();
        let header = UntrustedToken::parse(token).unwrap().header().alg.clone();
        assert_eq!(header, alg, "{:?}", claims.scope);
        let validator = Validator::new(ValidationOptions::new(ISSUER, &claims.aud));
        let expect = Expectation { scope: claims.scope, session: Some(&claims.sid) };
        let verified = now_or_never(validator.verify(token, &keys, &RingVerifier, expect, now())).unwrap();
        assert_eq!(verified.claims(), claims);
    }
    let bad = HashMap::from([
        ("EDGESHELL_SIGNER_CLIENTS", clients()),
        ("EDGESHELL_SIGNING_KEY", secret("k")),
        ("EDGESHELL_ES256_KEY", "not a key".to_owned()),
    ]);
    let e = SignerConfig::from_lookup(|name| bad.get(name).cloned()).err().unwrap();
    assert!(e.to_string().contains("current ES256 signing key"), "{e}");
}

#[tokio::test]
async fn no_key_or_a_wrong_key_is_refused_even_two_hundred_at_once() {
    let signer = start(None).await;
    let claims = attach_claims();
    assert_eq!(sign(&signer, None, body(&claims)).await.0, 401);
    let wrong = format!("{API_KEY}x");
    let near: String = API_KEY.chars().rev().collect();
    let attacks = (0..200).map(|i| {
        let key = match i % 3 {
            0 => wrong.as_str(),
            1 => near.as_str(),
            _ => "",
        };
        sign(&signer, Some(key), body(&claims))
    });
    let answers = futures_util::future::join_all(attacks).await;
    assert!(answers.iter().all(|(status, answer)| *status == 401 && answer["error"]["code"] == "unauthorized"));
    assert_eq!(signer.signed(), 0);
}

#[tokio::test]
async fn claims_a_verifier_would_refuse_are_never_signed() {
    let signer = start(None).await;
    let refused = |mutate: fn(&mut Claims)| {
        let mut claims = attach_claims();
        mutate(&mut claims);
        body(&claims)
    };
    type Case = (&'static str, fn(&mut Claims), &'static str);
    let cases: [Case; 5] = [
        ("another issuer", |c| c.iss = "someone-else".into(), "claims_refused"),
        ("a month long", |c| c.exp = c.nbf + 30 * 24 * 3600, "claims_refused"),
        ("expired", |c| c.exp = c.nbf, "claims_refused"),
        (
            "back-dated an hour",
            |c| {
                c.iat -= 3600;
                c.nbf -= 3600;
                c.exp -= 3600;
            },
            "not_issued_now",
        ),
        ("issued in an hour", |c| c.iat += 3600, "not_issued_now"),
    ];
    for (what, mutate, code) in cases {
        let (status, answer) = sign(&signer, Some(API_KEY), refused(mutate)).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(code)), "{what}: {answer}");
    }
    assert_eq!(signer.signed(), 0);
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused_with_a_reason() {
    let signer = start(None).await;
    let mut with_extra = serde_json::to_value(attach_claims()).unwrap();
    with_extra["admin"] = true.into();
    let cases = [
        ("not JSON".to_owned(), 400),
        (serde_json::json!({ "claims": with_extra }).to_string(), 400),
        (serde_json::json!({ "claims": attach_claims(), "also": 1 }).to_string(), 400),
        ("x".repeat(20 * 1024), 413),
    ];
    for (text, expected) in cases {
        let (status, answer) = sign(&signer, Some(API_KEY), text).await;
        assert_eq!(status, expected, "{answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let wrong_method = reqwest::get(format!("http://{}/v1/sign", signer.addr())).await.unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_eq!(signer.signed(), 0);
}

#[tokio::test]
async fn a_key_signs_only_its_grant_even_under_a_concurrent_flood() {
    let signer = start(None).await;
    let issuer = Issuer::new(ISSUER);
    let (sid, region) = (session_id(rand::random()), RegionId::new("eu").unwrap());
    let command = issuer.pool_command(&sid, &region, b"{}", rand::random(), now());
    let join =
        issuer.join((&sid, &region), edgeshell_core::lifetime::Terms::lasting(now(), 3600), rand::random(), now());
    let upload =
        issuer.artifact_put((&sid, &region), now() + std::time::Duration::from_secs(60), rand::random(), now());
    // A key without pool:command cannot have a pool command signed: 403, whatever else it may do.
    let (status, answer) = sign(&signer, Some(JOIN_ONLY_KEY), body(&command)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");
    assert_eq!(sign(&signer, Some(JOIN_ONLY_KEY), body(&join)).await.0, 200);
    // The narrow key cannot have a runner's upload token signed either.
    let (status, answer) = sign(&signer, Some(JOIN_ONLY_KEY), body(&upload)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");
    // A pool command for a region's agent, yes; the same kind for another audience, no.
    assert_eq!(sign(&signer, Some(API_KEY), body(&command)).await.0, 200);
    let mut elsewhere = command.clone();
    elsewhere.aud = "someone-else".into();
    assert_eq!(sign(&signer, Some(API_KEY), body(&elsewhere)).await.0, 403);
    // Two hundred tries at once with the narrow key: every one refused, none signed.
    let before = signer.signed();
    let attacks = (0..200).map(|i| {
        let claims = if i % 2 == 0 { &command } else { &upload };
        sign(&signer, Some(JOIN_ONLY_KEY), body(claims))
    });
    let answers = futures_util::future::join_all(attacks).await;
    assert!(answers.iter().all(|(status, _)| *status == 403), "every out-of-grant request is refused");
    assert_eq!(signer.signed(), before);
}

#[test]
fn settings_are_checked_with_the_variable_named() {
    let junk = HashMap::from([("EDGESHELL_SIGNER_CLIENTS", "[{\"name\": \"x\"}]".to_owned())]);
    let e = SignerConfig::from_lookup(|n| junk.get(n).cloned()).err().unwrap();
    assert!(e.to_string().starts_with("EDGESHELL_SIGNER_CLIENTS"), "{e}");
    let no_key = HashMap::from([("EDGESHELL_SIGNER_CLIENTS", clients())]);
    let e = SignerConfig::from_lookup(|n| no_key.get(n).cloned()).err().unwrap();
    assert!(e.to_string().contains("EDGESHELL_SIGNING_KEY"), "{e}");
    let missing_file = HashMap::from([
        ("EDGESHELL_SIGNER_CLIENTS_FILE", "/nonexistent/signer-key".to_owned()),
        ("EDGESHELL_SIGNING_KEY", secret("k")),
    ]);
    let e = SignerConfig::from_lookup(|n| missing_file.get(n).cloned()).err().unwrap();
    assert!(e.to_string().contains("/nonexistent/signer-key"), "{e}");
}
