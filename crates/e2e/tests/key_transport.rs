//! How the edge gets its keys, attacked: the control plane's JWKS answering with a redirect to an
//! attacker's key set is a failed fetch, so a token the attacker signed never attaches (following the
//! redirect would have verified it); and a cold edge's concurrent attaches all wait for one slow fetch
//! instead of giving up before it ends (a spurious `internal_error`).

use edgeshell_core::ids::{RegionId, Subject};
use edgeshell_core::issue::Issuer;
use edgeshell_core::protocol::{CloseCode, Credential};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::sign;
use edgeshell_e2e::{vector_jwk, Stack, StackOptions, TOKEN_ISSUER};
use edgeshell_keys::{KeyRing, RsaSigner};
use edgeshell_room_host::browser::{AttachError, Browser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One stack at a time: the tests of this file run in parallel threads, and two `wrangler dev`s starting
/// together on this 2-core machine can make one exit before it serves.
static ONE_STACK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn attacker_jwk() -> String {
    let mut jwk: serde_json::Value = serde_json::from_str(&vector_jwk("rfc7515-a2.json").unwrap()).unwrap();
    jwk["kid"] = "attacker-1".into();
    jwk.to_string()
}

/// Serves `body` as JSON to every request on a loopback port; the URL.
async fn serve(body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/attacker/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn a_redirected_jwks_is_never_followed() {
    let _one = ONE_STACK.lock().await;
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let jwk = attacker_jwk();
    let attacker_keys = serve(KeyRing::from_secrets(&jwk, "", "").unwrap().jwks_json()).await;
    stack.jwks.redirect_to(Some(&attacker_keys));
    // The pool room verifies the control plane's commands with the same keys: none came from the
    // configured origin, so no start is taken and no session can be minted.
    let (status, body) =
        stack.call(reqwest::Method::POST, "/api/sessions", "alice", serde_json::json!({})).await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("no_region_available")), "{body}");
    let session_id = edgeshell_core::issue::session_id(rand::random());
    let ws_url = format!("{}{}", stack.edge_ws(), edgeshell_core::pool_api::attach_path(&session_id));
    let now =
        Timestamp::from_secs(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let claims = Issuer::new(TOKEN_ISSUER).attach(
        &Subject::new("alice").unwrap(),
        (&session_id, &RegionId::new("eu").unwrap()),
        edgeshell_core::lifetime::Terms::lasting(now, 3600),
        rand::random(),
        now,
    );
    let forged = sign(&claims, &RsaSigner::from_secret(&jwk).unwrap()).unwrap();
    let refused = Browser::attach(&ws_url, &Credential::Token(forged)).await;
    match refused {
        Err(AttachError::Closed(code, _)) => {
            assert!(matches!(code, CloseCode::Unauthorized | CloseCode::InternalError), "{code:?}")
        }
        other => panic!("a token signed with the keys behind the redirect attached: {:?}", other.map(|_| ())),
    }
    assert!(stack.jwks.requests() >= 1, "the edge asked for its keys");
    // The issuer's own token cannot attach either: no keys came from the configured origin.
    let genuine = stack.sign(&claims).unwrap();
    let waiting = Browser::attach(&ws_url, &Credential::Token(genuine.into_exposed())).await;
    assert!(waiting.is_err(), "no keys came from the configured origin");
    stack.jwks.redirect_to(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn concurrent_cold_attaches_wait_for_one_slow_fetch() {
    let _one = ONE_STACK.lock().await;
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    // The issuer answers its keys after 3.5 s: slower than the 2 s the edge used to wait for another
    // request's fetch, within the fetch timeout. Nothing has asked the edge for keys yet: its isolate and
    // the Cache API are cold. The session's runner joins at once and starts the one fetch; the browsers
    // arrive while it is in flight, and every one of them must wait for it.
    stack.jwks.set_delay(std::time::Duration::from_millis(3_500));
    let session = stack.mint("alice").await.unwrap();
    let mut tokens = vec![session.token.expose().to_owned()];
    // As many browsers as a session seats.
    for _ in 1..edgeshell_core::room::RoomConfig::DEFAULT.max_browsers {
        tokens.push(stack.attach_token("alice", &session.id).await.unwrap());
    }
    let attaches = tokens.into_iter().map(|token| {
        let url = session.ws_url.clone();
        tokio::spawn(async move { Browser::attach(&url, &Credential::Token(token)).await.map(|_| ()) })
    });
    let results: Vec<_> = futures_util::future::join_all(attaches).await.into_iter().map(Result::unwrap).collect();
    for result in &results {
        assert!(result.is_ok(), "a concurrent cold attach failed: {result:?}");
    }
    assert_eq!(stack.jwks.requests(), 1, "one fetch for the runner and all the browsers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn stale_keys_are_not_served_when_turned_off() {
    // An operator who would rather refuse than trust keys the issuer may have revoked: with
    // JWKS_SERVE_STALE=off, a failed refresh retires the cached keys at once.
    let options = StackOptions {
        edge_vars: vec![("JWKS_REFRESH_SECS", "1".to_owned()), ("JWKS_SERVE_STALE", "off".to_owned())],
        ..StackOptions::default()
    };
    let _one = ONE_STACK.lock().await;
    let stack = Stack::start(options).await.unwrap();
    let session = stack.mint("alice").await.unwrap();
    let attached = Browser::attach(&session.ws_url, &Credential::Token(session.token.expose().to_owned())).await;
    assert!(attached.is_ok(), "keys fetched while the issuer is up");
    stack.jwks.set_down(true);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    // The first attach after the refresh is due may still use the keys (it starts the refresh, which
    // fails); after that, nothing verifies.
    let mut refused = None;
    for _ in 0..5 {
        let token = stack.attach_token("alice", &session.id).await.unwrap();
        match Browser::attach(&session.ws_url, &Credential::Token(token)).await {
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(300)).await,
            Err(AttachError::Closed(code, _)) => {
                refused = Some(code);
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, Some(CloseCode::InternalError), "stale keys were served");
    stack.jwks.set_down(false);
}
