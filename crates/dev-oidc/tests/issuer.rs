//! The dev issuer over HTTP: discovery, a JWKS that verifies its ID tokens with the core's OIDC rules,
//! `POST /token`, and the implicit-flow page, which hands tokens only to loopback redirect URIs.

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

#[tokio::test]
async fn the_sign_in_page_redirects_to_loopback_only() {
    let issuer = DevIssuer::start("127.0.0.1:0", "edgeshell-dev").await.unwrap();
    let addr = issuer.addr();
    let q = "client_id=edgeshell-dev&response_type=id_token&redirect_uri=http%3A%2F%2F127.0.0.1%3A8787%2F&state=s%3C1&nonce=n1";
    let (status, _, page) = http(addr, "GET", &format!("/authorize?{q}"), "", "text/plain").await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in to edgeshell") && page.contains("value=\"s&lt;1\""), "state is escaped");

    let (status, head, _) =
        http(addr, "POST", "/authorize", &format!("{q}&user=carol"), "application/x-www-form-urlencoded").await;
    assert_eq!(status, 303);
    let location = head.lines().find_map(|l| l.strip_prefix("location: ")).unwrap();
    assert!(location.starts_with("http://127.0.0.1:8787/#id_token="), "{location}");
    assert!(location.ends_with("&state=s%3C1"), "{location}");

    for bad in [
        q.replace("127.0.0.1", "evil.example"),
        q.replace("client_id=edgeshell-dev", "client_id=other"),
        q.replace("response_type=id_token", "response_type=code"),
    ] {
        assert_eq!(http(addr, "GET", &format!("/authorize?{bad}"), "", "text/plain").await.0, 400, "{bad}");
        let form = format!("{bad}&user=carol");
        assert_eq!(http(addr, "POST", "/authorize", &form, "application/x-www-form-urlencoded").await.0, 400, "{bad}");
    }
}
