//! Who is calling: the user's OIDC ID token (`Authorization: Bearer`), verified against the identity
//! provider's JWKS. Components keep nothing between requests, so the provider's keys are cached in
//! Postgres (`provider_keys`) and refreshed under the core's JWKS cache policy: an unknown `kid` causes
//! at most one refetch per cooldown, and stale keys keep working while the provider is down.
//!
//! Configuration: `oidc_issuer`, `oidc_audience` (the client id; for Firebase the project id) and
//! `oidc_jwks_url`.

use crate::db::{col, text, Db};
use crate::outbound::{self, Call};
use crate::platform::now;
use crate::reply::{self, ApiError, ErrorCode};
use crate::request::bearer;
use crate::settings;
use core::time::Duration;
use edgeshell_core::ids::Kid;
use edgeshell_core::jwks::cache::{CachePolicy, CacheTimes, JwksCache, Lookup};
use edgeshell_core::jwks::{KeySet, MAX_JWKS_BYTES};
use edgeshell_core::oidc::{verify_id_token, Identity, OidcProvider};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{TokenError, UntrustedToken};
use edgeshell_keys::{now_or_never, MontgomeryRs256};
use spin_sdk::pg4::ParameterValue;

/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Verifies the caller's ID token; any problem is a 401 whose message says what was wrong.
pub fn authenticate(req: &crate::request::Request, db: &Db) -> Result<Identity, ApiError> {
    let unauthorized = |reason: String| ApiError::new(ErrorCode::InvalidIdToken, reason);
    let token = bearer(req).ok_or_else(|| {
        ApiError::new(ErrorCode::MissingIdToken, "send the ID token of the signed-in user as Authorization: Bearer")
    })?;
    let token = token.as_str();
    let untrusted = UntrustedToken::parse(token).map_err(|e| unauthorized(e.to_string()))?;
    let provider = OidcProvider::new(settings::required("oidc_issuer")?, settings::required("oidc_audience")?);
    let jwks_url = settings::required("oidc_jwks_url")?;
    let keys = provider_keys(db, &jwks_url, untrusted.kid())?;
    let verified = now_or_never(verify_id_token(token, &provider, &keys, &MontgomeryRs256, now()));
    match verified {
        Ok(identity) => Ok(identity),
        Err(TokenError::UnknownKid(kid)) => Err(unauthorized(format!("no key {kid} at the identity provider"))),
        Err(e) => Err(unauthorized(e.to_string())),
    }
}

/// The provider's keys, from the table or fetched as the cache policy decides.
fn provider_keys(db: &Db, url: &str, kid: &Kid) -> Result<KeySet, ApiError> {
    let now = now();
    let mut cache = load(db, url)?;
    for _ in 0..2 {
        match cache.lookup(kid, now) {
            Lookup::Key(_) => {
                let keys = cache.keys().cloned().ok_or_else(|| reply::internal("cache lost its keys"))?;
                if cache.poll_refresh(now) {
                    // A due refresh: whatever happens, this request uses the keys it has.
                    let _ = fetch_and_store(db, url, &mut cache, now, false);
                }
                return Ok(keys);
            }
            Lookup::Fetch => fetch_and_store(db, url, &mut cache, now, true)?,
            // Fetches are not tracked across requests, so nothing is ever in flight here.
            Lookup::Wait | Lookup::Unknown => break,
            Lookup::Unavailable => {
                return Err(ApiError::new(
                    ErrorCode::IdentityProviderUnavailable,
                    "the identity provider's keys cannot be fetched; try again shortly",
                ))
            }
        }
    }
    Err(ApiError::new(ErrorCode::InvalidIdToken, format!("no key {kid} at the identity provider")))
}

fn load(db: &Db, url: &str) -> Result<JwksCache, ApiError> {
    let row = db.query_opt(
        "SELECT jwks, (extract(epoch FROM fetched_at) * 1000)::int8,
                (extract(epoch FROM last_unknown_kid) * 1000)::int8, (extract(epoch FROM last_failure) * 1000)::int8
         FROM provider_keys WHERE jwks_url = $1",
        &[text(url)],
    )?;
    let Some(row) = row else { return Ok(JwksCache::new(CachePolicy::default())) };
    let ms = |i| -> Result<Option<Timestamp>, ApiError> {
        Ok(col::<Option<i64>>(&row, i)?.map(|v| Timestamp::from_millis(v.max(0) as u64)))
    };
    let times = CacheTimes {
        fetched_at: ms(1)?.unwrap_or(Timestamp::EPOCH),
        last_unknown_kid_fetch: ms(2)?,
        last_failure: ms(3)?,
    };
    let keys = KeySet::from_json(col::<String>(&row, 0)?.as_bytes()).ok();
    Ok(JwksCache::restore(CachePolicy::default(), keys, times))
}

/// Fetches the JWKS, records the outcome in the cache and the table. With `required`, a failure to
/// record is an error; a failed fetch is not (the cache decides what it means).
fn fetch_and_store(db: &Db, url: &str, cache: &mut JwksCache, now: Timestamp, required: bool) -> Result<(), ApiError> {
    let call = Call { post: false, url, headers: &[], body: &[], timeout: FETCH_TIMEOUT, max_body: MAX_JWKS_BYTES };
    let fetched = outbound::send(&call).map_err(|e| e.to_string()).and_then(|answer| {
        if answer.status != 200 {
            return Err(format!("status {}", answer.status));
        }
        let keys = KeySet::from_json(&answer.body).map_err(|e| e.to_string())?;
        Ok((keys, answer.body))
    });
    let stored = match &fetched {
        Ok((keys, body)) => {
            cache.on_fetch(Ok(keys.clone()), now);
            store(db, url, cache, Some(body))
        }
        Err(reason) => {
            eprintln!("identity: fetching {url}: {reason}");
            cache.on_fetch(Err(edgeshell_core::jwks::JwksError::Malformed(reason.clone())), now);
            store(db, url, cache, None)
        }
    };
    match stored {
        Err(e) if required => Err(e),
        _ => Ok(()),
    }
}

fn store(db: &Db, url: &str, cache: &JwksCache, body: Option<&[u8]>) -> Result<(), ApiError> {
    let t = cache.times();
    let secs = |t: Option<Timestamp>| {
        t.map_or(ParameterValue::DbNull, |t| ParameterValue::Floating64(t.as_millis() as f64 / 1000.0))
    };
    let (unknown_kid, failed) = (secs(t.last_unknown_kid_fetch), secs(t.last_failure));
    match body {
        Some(body) => db.execute(
            "INSERT INTO provider_keys (jwks_url, jwks, fetched_at, last_unknown_kid, last_failure)
             VALUES ($1, $2, to_timestamp($3), to_timestamp($4), to_timestamp($5))
             ON CONFLICT (jwks_url) DO UPDATE SET jwks = EXCLUDED.jwks, fetched_at = EXCLUDED.fetched_at,
                 last_unknown_kid = EXCLUDED.last_unknown_kid, last_failure = EXCLUDED.last_failure",
            &[text(url), text(String::from_utf8_lossy(body)), secs(Some(t.fetched_at)), unknown_kid, failed],
        )?,
        // A failure is recorded even when no keys were ever fetched (a row with no key set), so the
        // next requests back off instead of each asking the provider again.
        None => db.execute(
            "INSERT INTO provider_keys (jwks_url, jwks, fetched_at, last_unknown_kid, last_failure)
             VALUES ($1, '', to_timestamp(0), to_timestamp($2), to_timestamp($3))
             ON CONFLICT (jwks_url) DO UPDATE SET last_unknown_kid = EXCLUDED.last_unknown_kid,
                 last_failure = EXCLUDED.last_failure",
            &[text(url), unknown_kid, failed],
        )?,
    };
    Ok(())
}
