//! The dev issuer over HTTP: discovery, a JWKS that verifies its ID tokens with the core's OIDC rules,
//! `POST /token`, and the authorization-code flow: the page hands codes only to loopback redirect URIs,
//! a code needs its PKCE verifier, refresh tokens rotate, and a reused one revokes its sign-in, also
//! when raced.

use edgeshell_core::jwks::KeySet;
use edgeshell_core::oidc::{verify_id_token, OidcProvider};
use edgeshell_core::time::Timestamp;
use edgeshell_dev_oidc::DevIssuer;
use edgeshell_keys::RingVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.0 exchange: (status, head, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str, ctype: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nhost: {addr}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), head.to_owned(), body.to_owned())
}

fn now() -> Timestamp {
    Timestamp::from_secs(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
}

#[tokio::test]
async fn tokens_verify_with_the_published_keys() {
    let issuer = DevIssuer::start("127.0.0.1:0", "edgeshell-dev").await.unwrap();
    let addr = issuer.addr();
    let (status, _, discovery) = http(addr, "GET", "/.well-known/openid-configuration", "", "text/plain").await;
    assert_eq!(status, 200);
    let d: serde_json::Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(d["issuer"], issuer.issuer());
    assert_eq!(d["jwks_uri"], issuer.jwks_url());

    let (status, _, jwks) = http(addr, "GET", "/jwks.json", "", "text/plain").await;
    assert_eq!(status, 200);
    let keys = KeySet::from_json(jwks.as_bytes()).unwrap();
    let (status, _, body) = http(addr, "POST", "/token", r#"{"user":"alice"}"#, "application/json").await;
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id_token"].as_str().unwrap().to_owned();
    let provider = OidcProvider::new(issuer.issuer(), "edgeshell-dev");
    let identity = verify_id_token(&token, &provider, &keys, &RingVerifier, now()).await.unwrap();
    assert_eq!(identity.subject.as_str(), "dev:alice");
    assert!(identity.email_verified);

    for bad in [r#"{"user":""}"#, r#"{"user":"a b"}"#, r#"{"user":"x","admin":true}"#, "nope"] {
        let (status, _, body) = http(addr, "POST", "/token", bad, "application/json").await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// The RFC 7636 example pair.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const FORM: &str = "application/x-www-form-urlencoded";
const SIGN_IN: &str = "client_id=edgeshell-dev&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A8787%2F\
&state=s%3C1&nonce=n1&scope=openid%20offline_access&code_challenge_method=S256\
&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Signs `user` in at the page: the code from the redirect.
async fn code_for(addr: std::net::SocketAddr, user: &str) -> String {
    let (status, head, _) = http(addr, "POST", "/authorize", &format!("{SIGN_IN}&user={user}"), FORM).await;
    assert_eq!(status, 303);
    let location = head.lines().find_map(|l| l.strip_prefix("location: ")).unwrap();
    assert!(location.starts_with("http://127.0.0.1:8787/?code="), "{location}");
    assert!(location.ends_with("&state=s%3C1"), "{location}");
    let query = location.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "code").unwrap().1.into_owned()
}

async fn token(addr: std::net::SocketAddr, form: &str) -> (u16, serde_json::Value) {
    let (status, head, body) = http(addr, "POST", "/token", form, FORM).await;
    assert!(head.to_ascii_lowercase().contains("access-control-allow-origin: *"), "{head}");
    (status, serde_json::from_str(&body).unwrap())
}

fn redeem(code: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id=edgeshell-dev&code={code}&code_verifier={verifier}\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A8787%2F"
    )
}

fn refresh(token: &str) -> String {
    format!("grant_type=refresh_token&client_id=edgeshell-dev&refresh_token={token}")
}

async fn verify(issuer: &DevIssuer, token: &str) -> serde_json::Value {
    let (_, _, jwks) = http(issuer.addr(), "GET", "/jwks.json", "", "text/plain").await;
    let keys = KeySet::from_json(jwks.as_bytes()).unwrap();
    let provider = OidcProvider::new(issuer.issuer(), "edgeshell-dev");
    verify_id_token(token, &provider, &keys, &RingVerifier, now()).await.expect("the ID token verifies");
    let payload = edgeshell_core::base64url::decode(token.split('.').nth(1).unwrap()).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[tokio::test]
async fn the_code_flow_with_pkce_gives_renewable_sign_ins() {
    let issuer = DevIssuer::start("127.0.0.1:0", "edgeshell-dev").await.unwrap();
    issuer.set_id_token_secs(120);
    let addr = issuer.addr();
    let (_, _, discovery) = http(addr, "GET", "/.well-known/openid-configuration", "", "text/plain").await;
    let d: serde_json::Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["token_endpoint"], format!("{}/token", issuer.issuer()));

    // A code redeemed with the wrong verifier is refused; with the right one it gives an ID token of the
    // set lifetime, carrying the nonce, and a refresh token (offline_access was asked for).
    let code = code_for(addr, "carol").await;
    let wrong = "x".repeat(43);
    let (status, refused) = token(addr, &redeem(&code, &wrong)).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")), "{refused}");
    let (status, first) = token(addr, &redeem(&code, VERIFIER)).await;
    assert_eq!(status, 200, "{first}");
    let claims = verify(&issuer, first["id_token"].as_str().unwrap()).await;
    assert_eq!((claims["sub"].as_str(), claims["nonce"].as_str()), (Some("dev:carol"), Some("n1")));
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 120);
    assert_eq!(first["expires_in"], 120);

    // Refreshing gives a new ID token of the same sign-in (same auth_time, no nonce) and a new refresh
    // token; the old one is spent.
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = token(addr, &refresh(&r1)).await;
    assert_eq!(status, 200, "{second}");
    let renewed = verify(&issuer, second["id_token"].as_str().unwrap()).await;
    assert_eq!(renewed["auth_time"], claims["auth_time"]);
    assert!(renewed.get("nonce").is_none());
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(issuer.refreshes(), (1, 0));

    // A stolen, already used refresh token: refused, and the owner's current one stops working too.
    assert_eq!(token(addr, &refresh(&r1)).await.0, 400);
    let (status, revoked) = token(addr, &refresh(&r2)).await;
    assert_eq!(status, 400, "{revoked}");
    assert_eq!(issuer.refreshes(), (1, 1));

    // Revocation (sign-out) ends a sign-in; other grants and clients are refused.
    let code = code_for(addr, "dave").await;
    let (_, signed_in) = token(addr, &redeem(&code, VERIFIER)).await;
    let r = signed_in["refresh_token"].as_str().unwrap();
    assert_eq!(http(addr, "POST", "/revoke", &format!("token={r}"), FORM).await.0, 200);
    assert_eq!(token(addr, &refresh(r)).await.0, 400);
    let (status, e) = token(addr, "grant_type=password&client_id=edgeshell-dev").await;
    assert_eq!((status, e["error"].as_str()), (400, Some("unsupported_grant_type")));
    assert_eq!(token(addr, &refresh(r).replace("edgeshell-dev", "other")).await.0, 401);
}

/// Two tabs (or a tab and a thief) present the same refresh token at once: exactly one gets a successor,
/// and the reuse revokes the sign-in, so no two live copies of one sign-in ever exist.
#[tokio::test]
async fn a_refresh_token_raced_twice_is_spent_once_and_revokes() {
    let issuer = DevIssuer::start("127.0.0.1:0", "edgeshell-dev").await.unwrap();
    let addr = issuer.addr();
    for round in 0..5 {
        let code = code_for(addr, "erin").await;
        let (_, signed_in) = token(addr, &redeem(&code, VERIFIER)).await;
        let r = signed_in["refresh_token"].as_str().unwrap().to_owned();
        let attempts = (0..8).map(|_| {
            let form = refresh(&r);
            async move { token(addr, &form).await }
        });
        let answers = futures_join(attempts).await;
        let granted: Vec<_> = answers.iter().filter(|(status, _)| *status == 200).collect();
        assert_eq!(granted.len(), 1, "round {round}: {answers:?}");
        let successor = granted[0].1["refresh_token"].as_str().unwrap();
        assert_eq!(token(addr, &refresh(successor)).await.0, 400, "round {round}: the reuse revoked the sign-in");
    }
    assert_eq!(issuer.refreshes().0, 5);
}

async fn futures_join<F: std::future::Future<Output = (u16, serde_json::Value)> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<(u16, serde_json::Value)> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_sign_in_page_redirects_to_loopback_only() {
    let issuer = DevIssuer::start("127.0.0.1:0", "edgeshell-dev").await.unwrap();
    let addr = issuer.addr();
    let (status, _, page) = http(addr, "GET", &format!("/authorize?{SIGN_IN}"), "", "text/plain").await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in to edgeshell") && page.contains("value=\"s&lt;1\""), "state is escaped");
    assert!(page.contains(CHALLENGE));
    code_for(addr, "carol").await;

    for bad in [
        SIGN_IN.replace("127.0.0.1", "evil.example"),
        SIGN_IN.replace("client_id=edgeshell-dev", "client_id=other"),
        SIGN_IN.replace("response_type=code", "response_type=id_token"),
        SIGN_IN.replace("code_challenge_method=S256", "code_challenge_method=plain"),
        SIGN_IN.replace(CHALLENGE, "short"),
        SIGN_IN.replace("scope=openid%20", "scope="),
    ] {
        assert_eq!(http(addr, "GET", &format!("/authorize?{bad}"), "", "text/plain").await.0, 400, "{bad}");
        let form = format!("{bad}&user=carol");
        assert_eq!(http(addr, "POST", "/authorize", &form, FORM).await.0, 400, "{bad}");
    }
}
