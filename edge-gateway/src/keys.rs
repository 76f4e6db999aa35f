//! Token checks at the edge without a database: the control plane's JWKS cached in the isolate (and in
//! the Cache API, so a fresh isolate in the same colo starts warm) under the core's cache policy,
//! signatures verified with WebCrypto, claims checked by the core's validator.
//!
//! A warm isolate verifies a token with no network call at all. An unknown `kid` refetches the JWKS at
//! most once per cooldown; while the issuer is down, the keys held keep working up to `max_stale`.

use crate::config::EdgeConfig;
use crate::webcrypto::WebCryptoVerifier;
use edgeshell_core::jwks::cache::{CachePolicy, JwksCache, Lookup};
use edgeshell_core::jwks::{JwksError, KeySet, MAX_JWKS_BYTES};
use edgeshell_core::protocol::{CloseCode, UpgradeRefused};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{Expectation, TokenError, UntrustedToken, Validator, Verified};
use futures_util::future::{select, Either};
use std::cell::{Cell, RefCell};
use std::time::Duration;
use worker::{Cache, Context, Date, Delay, Fetch, Headers, Response};

/// How long one JWKS fetch may take: the cache's own bound on a fetch in flight.
fn fetch_timeout() -> Duration {
    CachePolicy::DEFAULT.fetch_timeout
}
/// The header recording when a JWKS in the Cache API was fetched (milliseconds since the epoch).
const FETCHED_AT: &str = "x-edgeshell-fetched-at";

thread_local! {
    static CACHE: RefCell<Option<JwksCache>> = const { RefCell::new(None) };
    static NETWORK_FETCHES: Cell<u64> = const { Cell::new(0) };
}

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::from_millis(Date::now().as_millis())
}

/// Why a token could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The token is refused.
    Token(TokenError),
    /// No usable keys can be had now (issuer down and nothing cached); the token was not judged.
    KeysUnavailable,
}

impl From<TokenError> for VerifyError {
    fn from(e: TokenError) -> VerifyError {
        VerifyError::Token(e)
    }
}

impl From<VerifyError> for UpgradeRefused {
    fn from(e: VerifyError) -> UpgradeRefused {
        match e {
            VerifyError::Token(e) => e.into(),
            VerifyError::KeysUnavailable => {
                UpgradeRefused::new(CloseCode::InternalError, "the signing keys cannot be fetched now; retry shortly")
            }
        }
    }
}

fn unavailable() -> VerifyError {
    VerifyError::KeysUnavailable
}

/// The isolate's cache counters, for `/healthz`.
pub fn metrics() -> serde_json::Value {
    let network_fetches = NETWORK_FETCHES.with(Cell::get);
    CACHE.with(|c| match c.borrow().as_ref() {
        Some(cache) => {
            let m = cache.metrics();
            serde_json::json!({
                "hits": m.hits, "stale_hits": m.stale_hits, "misses": m.misses, "refetches": m.refetches,
                "refreshes": m.refreshes, "cooldown_refusals": m.cooldown_refusals,
                "fetch_errors": m.fetch_errors, "network_fetches": network_fetches,
            })
        }
        None => serde_json::json!({ "network_fetches": network_fetches }),
    })
}

/// Verifies `token` for `expect`: parse, key by `kid` from the cache (fetching per the policy),
/// signature with WebCrypto, claims with the core. `ctx` lets a due background refresh outlive the
/// request; without it (inside the room) the refresh runs on the object's own event loop.
pub async fn verify(
    config: &EdgeConfig,
    ctx: Option<&Context>,
    token: &str,
    expect: Expectation<'_>,
) -> Result<Verified, VerifyError> {
    verify_with(config, ctx, &config.validator(), token, expect).await
}

/// [`verify`] for another audience than the edge's (a region's `pool:command` tokens, in its pool room).
pub async fn verify_with(
    config: &EdgeConfig,
    ctx: Option<&Context>,
    validator: &Validator,
    token: &str,
    expect: Expectation<'_>,
) -> Result<Verified, VerifyError> {
    let untrusted = UntrustedToken::parse(token)?;
    let keys = keys_for(config, &untrusted).await?;
    maybe_refresh(config, ctx);
    Ok(validator.verify(token, &keys, &WebCryptoVerifier, expect, now()).await?)
}

async fn load_cache(config: &EdgeConfig) {
    if CACHE.with(|c| c.borrow().is_some()) {
        return;
    }
    let restored = from_cache_api(config).await;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(match restored {
                Some((keys, at)) => JwksCache::with_keys(config.jwks_policy, keys, at),
                None => JwksCache::new(config.jwks_policy),
            });
        }
    });
}

/// What a cache lookup asks of the request.
enum Step {
    Use(KeySet),
    Fetch,
    Wait,
}

async fn keys_for(config: &EdgeConfig, token: &UntrustedToken<'_>) -> Result<KeySet, VerifyError> {
    load_cache(config).await;
    // A cold isolate's concurrent attaches all wait for the one fetch, never time out first.
    let deadline = now().as_millis() + config.jwks_policy.max_wait().as_millis() as u64;
    while now().as_millis() < deadline {
        let step = CACHE.with(|c| {
            let mut c = c.borrow_mut();
            let cache = c.as_mut().ok_or_else(unavailable)?;
            match cache.lookup(token.kid(), now()) {
                Lookup::Key(_) => Ok(Step::Use(cache.keys().cloned().ok_or_else(unavailable)?)),
                Lookup::Fetch => Ok(Step::Fetch),
                Lookup::Wait => Ok(Step::Wait),
                Lookup::Unknown => Err(VerifyError::Token(TokenError::UnknownKid(token.kid().clone()))),
                Lookup::Unavailable => Err(unavailable()),
            }
        })?;
        match step {
            Step::Use(keys) => return Ok(keys),
            Step::Fetch => fetch_into_cache(config).await,
            // Another request of this isolate is fetching: wait for it.
            Step::Wait => Delay::from(Duration::from_millis(20)).await,
        }
    }
    Err(unavailable())
}

fn maybe_refresh(config: &EdgeConfig, ctx: Option<&Context>) {
    let due = CACHE.with(|c| c.borrow_mut().as_mut().is_some_and(|cache| cache.poll_refresh(now())));
    if !due {
        return;
    }
    let config = config.clone();
    let refresh = async move { fetch_into_cache(&config).await };
    match ctx {
        Some(ctx) => ctx.wait_until(refresh),
        None => wasm_bindgen_futures::spawn_local(refresh),
    }
}

/// Fetches the JWKS, reports the outcome to the cache, and keeps a good one in the Cache API.
async fn fetch_into_cache(config: &EdgeConfig) {
    NETWORK_FETCHES.with(|n| n.set(n.get() + 1));
    let fetched = fetch(config).await;
    if let Err(e) = &fetched {
        worker::console_warn!(
            "{}",
            serde_json::json!({"event": "jwks_fetch_failed", "url": config.jwks_url, "error": e.to_string()})
        );
    }
    let at = now();
    if let Ok((_, body)) = &fetched {
        store_in_cache_api(config, body, at).await;
    }
    CACHE.with(|c| {
        if let Some(cache) = c.borrow_mut().as_mut() {
            cache.on_fetch(fetched.map(|(keys, _)| keys), at);
        }
    });
}

async fn fetch(config: &EdgeConfig) -> Result<(KeySet, Vec<u8>), JwksError> {
    // The keys come from JWKS_URL's origin or not at all: a redirect is a failed fetch.
    let mut init = worker::RequestInit::new();
    init.with_redirect(worker::RequestRedirect::Manual);
    let request =
        worker::Request::new_with_init(&config.jwks_url, &init).map_err(|e| JwksError::Fetch(e.to_string()))?;
    let request = Fetch::Request(request);
    let sent = Box::pin(request.send());
    let timeout = Box::pin(Delay::from(fetch_timeout()));
    let mut response = match select(sent, timeout).await {
        Either::Left((response, _)) => response.map_err(|e| JwksError::Fetch(e.to_string()))?,
        Either::Right(_) => return Err(JwksError::Fetch(format!("no answer within {:?}", fetch_timeout()))),
    };
    if response.status_code() != 200 {
        return Err(JwksError::Fetch(format!("HTTP {}", response.status_code())));
    }
    let body = response.bytes().await.map_err(|e| JwksError::Fetch(e.to_string()))?;
    if body.len() > MAX_JWKS_BYTES {
        return Err(JwksError::Fetch(format!("the JWKS is {} bytes, more than {MAX_JWKS_BYTES}", body.len())));
    }
    Ok((KeySet::from_json(&body)?, body))
}

async fn from_cache_api(config: &EdgeConfig) -> Option<(KeySet, Timestamp)> {
    let mut response = Cache::default().get(config.jwks_url.as_str(), false).await.ok()??;
    let at: u64 = response.headers().get(FETCHED_AT).ok()??.parse().ok()?;
    let body = response.bytes().await.ok()?;
    let keys = KeySet::from_json(&body).ok()?;
    Some((keys, Timestamp::from_millis(at)))
}

async fn store_in_cache_api(config: &EdgeConfig, body: &[u8], at: Timestamp) {
    let headers = Headers::new();
    let max_age = config.jwks_policy.max_stale.as_secs();
    let stored = headers.set(FETCHED_AT, &at.as_millis().to_string()).is_ok()
        && headers.set("cache-control", &format!("max-age={max_age}")).is_ok()
        && headers.set("content-type", "application/json").is_ok();
    if !stored {
        return;
    }
    if let Ok(response) = Response::from_bytes(body.to_vec()).map(|r| r.with_headers(headers)) {
        if let Err(e) = Cache::default().put(config.jwks_url.as_str(), response).await {
            worker::console_warn!("{}", serde_json::json!({"event": "jwks_cache_put_failed", "error": e.to_string()}));
        }
    }
}
