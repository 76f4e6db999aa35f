//! Every malformed or forged ID token is refused with 401 and a reason, creates nothing, and costs the
//! identity provider at most one JWKS refetch per cooldown; a valid one from the dev issuer signs in.

use edgeshell_core::base64url;
use edgeshell_keys::RsaSigner;
use serde_json::{json, Value};
use support::pool::Mode;
use support::stack::{Stack, CLIENT_ID};
use support::vector_jwk;

mod support;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims(stack: &Stack, overrides: Value) -> Value {
    let t = now();
    let mut c = json!({
        "iss": stack.issuer.issuer(), "aud": CLIENT_ID, "sub": "dev:mallory", "iat": t, "exp": t + 600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A token signed by a key the issuer never published, under `kid`.
fn forged(kid: &str, claims: &Value) -> String {
    let mut jwk: Value = serde_json::from_str(&vector_jwk("rfc7515-a2.json")).unwrap();
    jwk["kid"] = json!(kid);
    let signer = RsaSigner::from_secret(&jwk.to_string()).unwrap();
    edgeshell_core::tokens::sign(claims, &signer).unwrap()
}

fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        base64url::encode(header.to_string().as_bytes()),
        base64url::encode(claims.to_string().as_bytes())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn bad_id_tokens_get_401_with_a_reason() {
    let stack = Stack::start("").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let kid = stack.issuer.kid().to_owned();
    let good = stack.id_token("alice");
    let parts: Vec<&str> = good.split('.').collect();
    let other_payload = base64url::encode(claims(&stack, json!({ "sub": "dev:admin" })).to_string().as_bytes());
    let sign = |overrides: Value| stack.issuer.sign_claims(&claims(&stack, overrides)).unwrap();

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not-a-token".into(), "malformed"),
        ("bad base64", "a.b.c".into(), "malformed"),
        ("alg none", unsigned(json!({ "alg": "none", "kid": kid }), &claims(&stack, json!({}))), "algorithm"),
        ("HS256", unsigned(json!({ "alg": "HS256", "kid": kid }), &claims(&stack, json!({}))), "algorithm"),
        ("no kid", unsigned(json!({ "alg": "RS256" }), &claims(&stack, json!({}))), "kid"),
        ("forged with the issuer's kid", forged(&kid, &claims(&stack, json!({}))), "signature"),
        ("unknown kid", forged("someone-else", &claims(&stack, json!({}))), "no key"),
        ("payload swapped", format!("{}.{other_payload}.{}", parts[0], parts[2]), "signature"),
        ("expired", sign(json!({ "iat": now() - 7200, "exp": now() - 3600 })), "expired"),
        ("issued in the future", sign(json!({ "iat": now() + 3600, "exp": now() + 7200 })), "not valid before"),
        ("wrong issuer", sign(json!({ "iss": "https://evil.example" })), "issuer"),
        ("wrong audience", sign(json!({ "aud": "another-app" })), "audience"),
        ("audience list without azp", sign(json!({ "aud": [CLIENT_ID, "another-app"] })), "azp"),
        ("empty subject", sign(json!({ "sub": "" })), "sub"),
        ("no subject", sign(json!({ "sub": null })), "claims"),
        ("too large", format!("{}.{}.{}", parts[0], "A".repeat(9000), parts[2]), "bytes"),
    ];
    for (name, token, reason) in &cases {
        let (status, e) = stack.mint(token, json!({})).await;
        let message = e["error"]["message"].as_str().unwrap_or_default().to_ascii_lowercase();
        eprintln!("{name}: {status} {message}");
        assert_eq!((status, e["error"]["code"].as_str()), (401, Some("invalid_id_token")), "{name}: {e}");
        assert!(message.contains(reason), "{name}: {message:?} should mention {reason:?}");
    }
    let (status, e) = stack.call("POST", "/api/sessions", "", json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("missing_id_token")), "{e}");
    assert!(stack.sessions().await.is_empty(), "no refused token created anything");

    // Unknown kids cost the provider at most one refetch per 30 s cooldown, however many arrive.
    let fetched = stack.issuer.jwks_served();
    for i in 0..10 {
        let (status, _) = stack.mint(&forged(&format!("probe-{i}"), &claims(&stack, json!({}))), json!({})).await;
        assert_eq!(status, 401);
    }
    assert!(stack.issuer.jwks_served() - fetched <= 1, "{} refetches", stack.issuer.jwks_served() - fetched);

    // And the real thing signs in.
    assert_eq!(stack.mint(&good, json!({})).await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn provider_outage_keeps_cached_keys_working() {
    let mut stack = Stack::start("").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    assert_eq!(stack.mint(&alice, json!({})).await.0, 201, "keys fetched and cached");
    let fetched = stack.issuer.jwks_served();
    // The provider goes away: signing in keeps working from the cached keys.
    let token = stack.id_token("bob");
    stack.issuer = edgeshell_dev_oidc::DevIssuer::start("127.0.0.1:0", CLIENT_ID).await.unwrap();
    assert_eq!(stack.mint(&token, json!({})).await.0, 201);
    assert_eq!(stack.issuer.jwks_served(), 0);
    assert!(fetched >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_provider_down_from_the_start_is_asked_once_per_cooldown() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stack = Stack::start("").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    // Tokens the provider signed before it went away; its keys were never fetched.
    let tokens: Vec<String> = (0..10).map(|i| stack.id_token(&format!("user{i}"))).collect();
    let port = stack.issuer.jwks_url().split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    stack.issuer = edgeshell_dev_oidc::DevIssuer::start("127.0.0.1:0", CLIENT_ID).await.unwrap();
    // Its address now answers every key fetch with 503, counting them.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut listener = None;
    for _ in 0..100 {
        // The old issuer's listener goes away with its task, shortly after it is dropped.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        if let Ok(bound) = socket.bind(addr).and_then(|()| socket.listen(64)) {
            listener = Some(bound);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let listener = listener.expect("the provider's port is free again");
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let counting = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counting.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    for token in &tokens {
        let (status, body) = stack.mint(token, json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (503, Some("identity_provider_unavailable")), "{body}");
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "ten sign-ins within the backoff asked the provider once");
}
