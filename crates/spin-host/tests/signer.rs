//! The functions signing at the token signer (`signer_url`) instead of in wasm: a mint's four tokens
//! are signed there (the attach token RS256, the join, upload and pool-command tokens ES256) and verify against
//! the JWKS the functions serve (which is the signer's); the
//! components hold no private key; a signer that is down fails mints with 503 and leaves no session and
//! no runner, and mints work again once it is back.

use edgeshell_core::grants::{SignerClient, SignerClients, FUNCTIONS_AUDIENCES, FUNCTIONS_SCOPES};
use edgeshell_core::ids::SessionId;
use edgeshell_core::issue::EDGE_AUDIENCE;
use edgeshell_core::jwks::KeySet;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{Alg, Expectation, Scope, UntrustedToken, ValidationOptions, Validator};
use edgeshell_keys::{KeyRing, RingVerifier};
use edgeshell_signer::{Signer, SignerConfig};
use support::pool::Mode;
use support::stack::{Stack, TOKEN_ISSUER};
use support::{request, vector_jwk};

mod support;

fn now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    Timestamp::from_millis(since.as_millis() as u64)
}

async fn served(url: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = request(url, "GET", "/.well-known/jwks.json").await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_mint_signs_at_the_signer_and_its_tokens_verify_against_the_served_keys() {
    let stack = Stack::start_signed("").await;
    let eu = stack.add_pool("eu", Mode::Accept).await;
    let signer = stack.signer.as_ref().expect("a signer");

    let (status, minted) = stack.mint(&stack.id_token("alice"), serde_json::json!({})).await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(signer.signed(), 4, "attach, join, upload and pool command tokens all signed at the signer");
    let (status, body) = served(&stack.host.url).await;
    assert_eq!(status, 200);
    let keys = KeySet::from_json(&body).unwrap();
    let algs: Vec<_> = keys.keys().iter().map(|k| (k.kid().as_str(), k.alg())).collect();
    assert_eq!(algs.len(), 2, "{algs:?}");
    assert_eq!(algs[0], (signer.kid(), Alg::Rs256), "the functions publish the signer's keys");
    assert_eq!(algs[1].1, Alg::Es256, "its ES256 key too");

    let sid = SessionId::new(minted["session_id"].as_str().unwrap()).unwrap();
    let validator = Validator::new(ValidationOptions::new(TOKEN_ISSUER, EDGE_AUDIENCE));
    let expect = Expectation { scope: Scope::Attach, session: Some(&sid) };
    let token = minted["token"].as_str().unwrap();
    let attach = validator.verify(token, &keys, &RingVerifier, expect, now()).await.expect("attach token verifies");
    assert_eq!(attach.claims().sub.as_str(), "dev:alice");
    // The pool verified its command token and the join token it was given against the same keys.
    assert_eq!(eu.pool.started(), vec![sid]);
    assert!(eu.pool.with_log(|l| l.rejected.is_empty()), "every command verified");
    // One RSA signature per mint: the attach token. The pool command, join and upload tokens are ES256.
    assert_eq!(UntrustedToken::parse(token).unwrap().header().alg, "RS256");
    assert_eq!(eu.pool.with_log(|l| l.command_algs.clone()), ["ES256"]);
    let (join, upload) = eu.pool.with_log(|l| (l.starts[0].join_token.clone(), l.starts[0].upload_token.clone()));
    assert_eq!(UntrustedToken::parse(join.expose()).unwrap().header().alg, "ES256");
    let upload = upload.expect("an upload token with the start");
    assert_eq!(UntrustedToken::parse(upload.expose()).unwrap().header().alg, "ES256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_signer_that_is_down_fails_mints_cleanly_until_it_is_back() {
    let mut stack = Stack::start_signed("").await;
    let eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let addr = stack.signer.as_ref().unwrap().addr();
    drop(stack.signer.take());

    let auth = format!("Bearer {alice}");
    let (status, headers, body) =
        support::send(&stack.host.url, "POST", "/api/sessions", &[("authorization", &auth)], Vec::new()).await;
    let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, e["error"]["code"].as_str()), (503, Some("signer_unavailable")), "{e}");
    assert_eq!(headers["retry-after"], "1");
    assert!(stack.sessions().await.is_empty(), "the failed mint left no session row");
    assert!(eu.pool.started().is_empty(), "no runner was asked for");
    let (status, body) = served(&stack.host.url).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));

    // Back at the same address: mints work again, with no restart of the functions.
    let config = SignerConfig {
        listen: addr,
        issuer: TOKEN_ISSUER.into(),
        clients: SignerClients::from_clients(vec![SignerClient::new(
            "functions",
            edgeshell_stack::control::SIGNER_API_KEY,
            &FUNCTIONS_SCOPES,
            &FUNCTIONS_AUDIENCES,
        )]),
        keys: KeyRing::from_secrets(&vector_jwk("pyjwt-rs256.json"), "", "").unwrap(),
    };
    stack.signer = Some(Signer::start(config).await.unwrap());
    let (status, m) = stack.mint(&alice, serde_json::json!({})).await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(served(&stack.host.url).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_signer_refusing_the_functions_key_is_a_500_not_an_outage() {
    let stack = Stack::start_signed("SPIN_VARIABLE_SIGNER_API_KEY=not-the-signers-key-0123456789abcdef\n").await;
    stack.add_pool("eu", Mode::Accept).await;
    let (status, e) = stack.mint(&stack.id_token("alice"), serde_json::json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (500, Some("internal_error")), "{e}");
    assert!(stack.sessions().await.is_empty());
    assert_eq!(stack.signer.as_ref().unwrap().signed(), 0);
}
