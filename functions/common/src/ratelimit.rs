//! Rate limits in Postgres: one [`TokenBucket`] state per key in `rate_buckets`, taken under an
//! advisory lock so concurrent requests of one key count exactly. [`admit`] is the limit every public
//! route applies first, by client address, before it authenticates anyone or reads a body.
//!
//! The client address is the one the edge vouches for when it passes on a browser's call (it shows the
//! internal key in `x-edgeshell-edge-key` beside `x-edgeshell-client-ip`), else the one
//! `trusted_proxy_hops` load balancers put in `X-Forwarded-For`, else the connection's peer
//! (`spin-client-addr`).

use crate::db::{col, int, text, Db};
use crate::platform::now;
use crate::reply::{ApiError, ErrorCode};
use crate::request::{matches_internal_key, Request};
use crate::settings;
use edgeshell_core::ratelimit::{BucketState, ClientAddr, TokenBucket};
use edgeshell_core::time::Timestamp;

/// The header carrying the browser's address when the edge passes a call on.
pub const CLIENT_IP_HEADER: &str = "x-edgeshell-client-ip";
/// The header in which the edge shows the internal key, vouching for [`CLIENT_IP_HEADER`].
pub const EDGE_KEY_HEADER: &str = "x-edgeshell-edge-key";

/// Takes a token from `key`'s bucket; 429 with `Retry-After` when it is empty.
pub fn take(db: &Db, key: &str, bucket: &TokenBucket) -> Result<(), ApiError> {
    let now = now();
    db.transaction(|tx| {
        let state = lock_and_read(tx, key)?;
        let next = bucket.take(state, now).map_err(|limited| {
            ApiError::new(ErrorCode::RateLimited, limited.to_string()).retry_after(limited.retry_after_secs())
        })?;
        store(tx, key, next)
    })
}

/// Inside a transaction: locks `key`'s bucket until it ends and reads its state (`None`: never used).
pub fn lock_and_read(tx: &Db, key: &str) -> Result<Option<BucketState>, ApiError> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 11))", &[text(key)])?;
    let row = tx.query_opt("SELECT milli_tokens, at_ms FROM rate_buckets WHERE key = $1", &[text(key)])?;
    Ok(match row {
        Some(row) => Some(BucketState {
            milli_tokens: u64::try_from(col::<i64>(&row, 0)?).unwrap_or(0),
            at: Timestamp::from_millis(u64::try_from(col::<i64>(&row, 1)?).unwrap_or(0)),
        }),
        None => None,
    })
}

/// Inside the transaction of [`lock_and_read`]: stores `key`'s new state.
pub fn store(tx: &Db, key: &str, state: BucketState) -> Result<(), ApiError> {
    tx.execute(
        "INSERT INTO rate_buckets (key, milli_tokens, at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET milli_tokens = EXCLUDED.milli_tokens, at_ms = EXCLUDED.at_ms",
        &[text(key), int(state.milli_tokens as i64), int(state.at.as_millis() as i64)],
    )?;
    Ok(())
}

/// The limit on an authenticated user's calls to one group of routes (`route`): a token from their
/// bucket for it (`user_burst`, refilled at `user_per_minute`), or 429.
pub fn per_user(db: &Db, user: &str, route: &str) -> Result<(), ApiError> {
    let bucket = settings::read(|s| {
        Ok(TokenBucket { burst: s.number("user_burst")?, per_minute: s.number("user_per_minute")? })
    })?;
    take(db, &format!("user:{route}:{user}"), &bucket)
}

/// The caller's address (see the module documentation), if anything names one.
pub fn client_addr(req: &Request) -> Result<Option<ClientAddr>, ApiError> {
    let hops = settings::read(|s| s.number::<u64>("trusted_proxy_hops"))?;
    let vouched = match req.header(EDGE_KEY_HEADER) {
        Some(key) if matches_internal_key(&key)? => req.header(CLIENT_IP_HEADER),
        _ => None,
    };
    Ok(ClientAddr::resolve(
        vouched.as_deref(),
        req.header("x-forwarded-for").as_deref(),
        usize::try_from(hops).unwrap_or(usize::MAX),
        req.header("spin-client-addr").as_deref(),
    ))
}

/// The limit on unauthenticated work: a token from the caller's address's bucket, or 429.
pub fn admit(req: &Request, db: &Db) -> Result<(), ApiError> {
    let bucket = settings::read(|s| {
        Ok(TokenBucket { burst: s.number("preauth_burst")?, per_minute: s.number("preauth_per_minute")? })
    })?;
    let key = client_addr(req)?.map_or_else(|| "addr:unknown".to_owned(), |addr| addr.key());
    take(db, &key, &bucket)
}
