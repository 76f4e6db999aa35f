//! The schema against a real PostgreSQL started for this test: migrations apply once (also when four
//! deploys race), edited history is refused, the ephemeral tables are UNLOGGED, the one-time JTI check
//! holds under 100 concurrent consumers on separate connections, and cleanup removes what expired.

use edgeshell_control_db::{cleanup, jti, migrate, DbError};
use local_postgres::LocalPostgres;
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn database(pg: &LocalPostgres, name: &str) -> String {
    pg.create_database(name).unwrap();
    pg.url(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo xtask test"]
async fn schema_migrations_jti_and_cleanup() {
    let pg = LocalPostgres::start().expect("a private PostgreSQL cluster starts");

    // Four deploys race to migrate the same database: one applies, the others find it done.
    let url = database(&pg, "race");
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { migrate::migrate(&mut connect(&url).await).await.unwrap() })
        })
        .collect();
    let mut applied = Vec::new();
    for r in racers {
        applied.push(r.await.unwrap());
    }
    assert_eq!(applied.iter().filter(|a| a.as_slice() == all_versions().as_slice()).count(), 1, "{applied:?}");
    assert_eq!(applied.iter().filter(|a| a.is_empty()).count(), 3, "{applied:?}");

    let mut client = connect(&url).await;
    assert!(migrate::migrate(&mut client).await.unwrap().is_empty(), "idempotent");
    assert_eq!(migrate::applied_versions(&client).await.unwrap(), all_versions());

    // UNLOGGED exactly where documented.
    let rows = client
        .query(
            "SELECT relname::text, relpersistence::text FROM pg_class
             WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname",
            &[],
        )
        .await
        .unwrap();
    let persistence: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (table, p) in &persistence {
        let ephemeral =
            matches!(table.as_str(), "sessions" | "token_jtis" | "mint_windows" | "provider_keys" | "rate_buckets");
        assert_eq!(p, if ephemeral { "u" } else { "p" }, "{table}");
    }
    assert_eq!(persistence.len(), 13, "{persistence:?}");

    // 100 consumers of one JTI, each on its own connection, released at once: exactly one first use.
    let exp = 4_102_444_800i64; // 2100-01-01
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (url, barrier) = (url.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let c = connect(&url).await;
            barrier.wait().await;
            jti::consume_once(&c, "attack-jti", exp).await.unwrap()
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1, "exactly one of 100 concurrent consumers wins");
    assert!(!jti::consume_once(&client, "attack-jti", exp).await.unwrap());
    assert!(jti::consume_once(&client, "other-jti", exp).await.unwrap());

    // Cleanup: expired JTIs go, live ones stay; expired sessions end.
    assert!(jti::consume_once(&client, "dead-jti", 1_000_000_000).await.unwrap());
    client
        .execute(
            "INSERT INTO sessions (id, owner, state, expires_at) VALUES
             ('s-old', 'alice', 'running', now() - interval '1 minute'),
             ('s-new', 'alice', 'running', now() + interval '1 hour')",
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO artifacts (session_id, path, owner, size_bytes, object_key, expires_at) VALUES
             ('s-old', 'a.txt', 'alice', 1, 'k-old', now() - interval '1 second'),
             ('s-new', 'a.txt', 'alice', 1, 'k-new', now() + interval '7 days')",
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO artifacts (session_id, path, owner, size_bytes, object_key, expires_at, created_at) VALUES
             ('s-new', 'lost.txt', 'alice', 1, 'k-lost', now() + interval '7 days', now() - interval '2 hours'),
             ('s-new', 'streaming.txt', 'alice', 1, 'k-streaming', now() + interval '7 days', now())",
            &[],
        )
        .await
        .unwrap();
    // Sessions' data keys: one whose session and artifacts are gone, one of a live session.
    client
        .execute(
            "INSERT INTO session_keys (session_id, kek_id, wrapped) VALUES ('s-gone', 'k1', '\\x00'), ('s-new', 'k1', '\\x00')",
            &[],
        )
        .await
        .unwrap();
    let cleaned = cleanup::cleanup(&client).await.unwrap();
    assert_eq!((cleaned.jtis, cleaned.sessions_expired, cleaned.artifacts_expired), (1, 1, 1), "{cleaned:?}");
    assert_eq!(cleaned.session_keys, 1, "the key of a session with nothing left goes; a live one's stays");
    assert_eq!(cleaned.uploads_abandoned, 1, "an upload pending for an hour is released, one streaming now is not");
    let live: i64 = client.query_one("SELECT count(*) FROM token_jtis", &[]).await.unwrap().get(0);
    assert_eq!(live, 2);
    let state: String = client.query_one("SELECT state FROM sessions WHERE id = 's-old'", &[]).await.unwrap().get(0);
    assert_eq!(state, "ended");

    // Edited history is refused.
    client.execute("UPDATE schema_migrations SET sha256 = '\\x00' WHERE version = 1", &[]).await.unwrap();
    assert!(matches!(migrate::migrate(&mut client).await, Err(DbError::ChecksumMismatch { version: 1, .. })));
    client
        .execute("INSERT INTO schema_migrations (version, name, sha256) VALUES (99, 'future', '\\x00')", &[])
        .await
        .unwrap();
    client.execute("DELETE FROM schema_migrations WHERE version = 1", &[]).await.unwrap();
    assert!(matches!(migrate::migrate(&mut client).await, Err(DbError::UnknownVersion(99))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo xtask test"]
async fn stop_and_restart_keep_the_url() {
    let mut pg = LocalPostgres::start().unwrap();
    let url = database(&pg, "restart");
    migrate::migrate(&mut connect(&url).await).await.unwrap();
    pg.stop().unwrap();
    assert!(tokio_postgres::connect(&url, NoTls).await.is_err(), "stopped");
    pg.restart().unwrap();
    let client = connect(&url).await;
    // Logged tables survive a clean restart.
    assert_eq!(migrate::applied_versions(&client).await.unwrap(), all_versions());
}

/// Every migration's version, in order: 1 to the newest, without gaps.
fn all_versions() -> Vec<i32> {
    let versions: Vec<i32> = migrate::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(versions, (1..=versions.len() as i32).collect::<Vec<_>>(), "versions count up without gaps");
    versions
}
