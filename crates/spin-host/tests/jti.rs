//! The real `jti` component in the host against a real PostgreSQL: 100 concurrent consumers of one id get
//! exactly one first use; the internal key, the input and the method are checked; a stopped database
//! answers 503 promptly and the function recovers when it is back; the allowlist keeps the component
//! from any other database.

use local_postgres::LocalPostgres;
use support::{send, start, vector_jwk, TestHost};

mod support;

const KEY: &str = "a-long-internal-key-for-tests-0123456789";

fn env(url: &str, database_host: &str) -> String {
    format!(
        "SPIN_VARIABLE_SIGNING_KEY='{}'\nSPIN_VARIABLE_DATABASE_URL={url}\nSPIN_VARIABLE_DATABASE_HOST={database_host}\nSPIN_VARIABLE_INTERNAL_API_KEY={KEY}\n",
        vector_jwk("pyjwt-rs256.json")
    )
}

fn in_an_hour() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600
}

async fn consume(host: &TestHost, key: &str, body: String) -> (u16, String) {
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let (status, _, body) = send(&host.url, "POST", "/internal/jti/consume", &headers, body.into_bytes()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn body(jti: &str, expires_at: u64) -> String {
    serde_json::json!({ "jti": jti, "expires_at": expires_at }).to_string()
}

async fn migrated() -> (LocalPostgres, String) {
    let (pg, url, _) = support::migrated_postgres().await;
    (pg, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn one_time_use_under_100_concurrent_consumers() {
    let (pg, url) = migrated().await;
    let host = std::sync::Arc::new(start(&env(&url, &format!("127.0.0.1:{}", pg.port()))).await);
    let expires = in_an_hour();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { consume(&host, KEY, body("attack-jti", expires)).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let firsts = statuses.iter().filter(|(s, _)| *s == 200).count();
    let replays = statuses.iter().filter(|(s, b)| *s == 409 && b.contains("replayed_token")).count();
    assert_eq!((firsts, replays), (1, 99), "{:?}", statuses.iter().map(|s| s.0).collect::<Vec<_>>());
    let (status, text) = consume(&host, KEY, body("another", expires)).await;
    assert_eq!((status, text.as_str()), (200, r#"{"first_use":true}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn bad_requests_are_refused_with_reasons() {
    let (pg, url) = migrated().await;
    let host = start(&env(&url, &format!("127.0.0.1:{}", pg.port()))).await;
    let expires = in_an_hour();
    let check = |(status, text): (u16, String), want: (u16, &str)| {
        assert_eq!(status, want.0, "{text}");
        assert!(text.contains(&format!("\"code\":\"{}\"", want.1)), "{text}");
    };
    check(consume(&host, "wrong-key", body("j1", expires)).await, (401, "unauthorized"));
    check(consume(&host, "", body("j1", expires)).await, (401, "unauthorized"));
    check(consume(&host, KEY, "{\"jti\":\"j1\"}".into()).await, (400, "bad_request"));
    check(consume(&host, KEY, body("j1", expires) + "x").await, (400, "bad_request"));
    check(consume(&host, KEY, body("../../etc", expires)).await, (400, "bad_jti"));
    check(consume(&host, KEY, body("j1", 1_000)).await, (400, "bad_expiry"));
    check(consume(&host, KEY, body("j1", expires + 2 * 86_400)).await, (400, "bad_expiry"));
    check(
        consume(&host, KEY, format!("{{\"jti\":\"{}\",\"expires_at\":1}}", "x".repeat(2000))).await,
        (413, "body_too_large"),
    );
    let (status, _, text) = send(&host.url, "GET", "/internal/jti/consume", &[], Vec::new()).await;
    assert_eq!(status, 405, "{}", String::from_utf8_lossy(&text));
    // None of the refused requests consumed anything.
    let (status, text) = consume(&host, KEY, body("j1", expires)).await;
    assert_eq!((status, text.as_str()), (200, r#"{"first_use":true}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn database_outage_answers_503_and_recovers() {
    let (mut pg, url) = migrated().await;
    let host = start(&env(&url, &format!("127.0.0.1:{}", pg.port()))).await;
    assert_eq!(consume(&host, KEY, body("before", in_an_hour())).await.0, 200);
    pg.stop().unwrap();
    let started = std::time::Instant::now();
    let (status, text) = consume(&host, KEY, body("during", in_an_hour())).await;
    eprintln!("503 after {:?}", started.elapsed());
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("database_unavailable"), "{text}");
    // A guard against hanging, not a performance figure: the connect timeout is one second.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    pg.restart().unwrap();
    assert_eq!(consume(&host, KEY, body("after", in_an_hour())).await.0, 200, "recovers without a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn the_allowlist_keeps_the_component_from_other_databases() {
    let (_pg, url) = migrated().await;
    // The manifest allows only `database_host`; point it elsewhere and the real database is off limits.
    let host = start(&env(&url, "10.255.255.1:5432")).await;
    let (status, text) = consume(&host, KEY, body("j", in_an_hour())).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("not allowed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_short_internal_key_opens_nothing() {
    // An operator's guessable key: even presented exactly, no internal route answers but
    // `misconfigured`, so the weakness is found at once rather than by an attacker.
    let (pg, url) = migrated().await;
    let short = "letmein-2026";
    let config = env(&url, &format!("127.0.0.1:{}", pg.port())).replace(KEY, short);
    let host = start(&config).await;
    let (status, text) = consume(&host, short, body("j1", in_an_hour())).await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("misconfigured") && text.contains("at least 32"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_stuck_guest_is_ended_at_its_deadline_and_big_bodies_never_reach_one() {
    use edgeshell_spin_host::server::GuestLimits;
    let (pg, url, _) = support::migrated_postgres().await;
    let limits = GuestLimits { max_body_bytes: 1024 * 1024, deadline: std::time::Duration::from_secs(2) };
    let host = support::start_with_limits(&env(&url, &format!("127.0.0.1:{}", pg.port())), limits).await;

    // A body over the host's limit is refused by the host, before the guest (which would have said
    // 401 for the wrong key) runs at all.
    // Its head alone is sent: the host answers on the declared length and closes, so a client still
    // writing the body would meet a closed socket (hyper's client then loses the answer).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = host.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let head = format!(
        "POST /internal/jti/consume HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer wrong\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let mut parsed = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut parsed);
    let Ok(httparse::Status::Complete(at)) = response.parse(&answer) else {
        panic!("no answer: {}", String::from_utf8_lossy(&answer))
    };
    let mut headers = http::HeaderMap::new();
    for h in response.headers.iter() {
        let name = http::header::HeaderName::from_bytes(h.name.as_bytes()).unwrap();
        headers.insert(name, http::HeaderValue::from_bytes(h.value).unwrap());
    }
    let status = response.code.unwrap_or(0);
    let len = headers.get("content-length").and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let text = &answer[at..at + len.unwrap_or(answer.len() - at).min(answer.len() - at)];
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(text));
    support::assert_error_of_the_table(status, &headers, text);
    assert!(String::from_utf8_lossy(text).contains("body_too_large"));

    // The guest's insert waits on a lock nobody releases: at its deadline it is ended and answered.
    let (locker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    locker.batch_execute("BEGIN; LOCK TABLE token_jtis IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let started = std::time::Instant::now();
    let stuck = tokio::time::timeout(std::time::Duration::from_secs(20), consume(&host, KEY, body("j1", in_an_hour())));
    let (status, text) = stuck.await.expect("the stuck guest was never ended");
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("deadline"), "{text}");
    assert!(started.elapsed() >= limits.deadline);
    locker.batch_execute("ROLLBACK").await.unwrap();
    // The host serves on.
    assert_eq!(consume(&host, KEY, body("j2", in_an_hour())).await.0, 200);
}
