//! `POST /internal/verify-cost` (`Authorization: Bearer <INTERNAL_API_KEY>`): runs the attach path's
//! token check ([`keys::verify`]: parse, cached key, WebCrypto signature, claims) `n` times (1..=1000)
//! on one token inside this isolate, and answers how many passed. workerd's clock stands still while
//! code runs, so the benchmark times `n = 1` against `n = 201` from outside: the difference over 200 is
//! one check's cost, without the WebSocket, the proxy and the scheduling around an attach. Only a
//! holder of the internal key can spend the isolate's CPU this way.

use crate::config::EdgeConfig;
use crate::http::{error, ApiError, ErrorCode};
use crate::keys;
use edgeshell_core::ids::SessionId;
use edgeshell_core::tokens::{Expectation, Scope};
use serde::Deserialize;
use worker::{Context, Env, Request, Response, Result};

/// The route.
pub const PATH: &str = "/internal/verify-cost";
/// The most checks one request may run.
pub const MAX_CHECKS: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    /// An attach token.
    token: String,
    /// The session it must be for.
    session: String,
    /// How many times to check it.
    n: u32,
}

/// Serves the route.
pub async fn serve(mut req: Request, env: &Env, ctx: &Context) -> Result<Response> {
    if let Err(refused) = crate::http::require_internal(&req, env) {
        return error(&refused);
    }
    let ask: Ask = match req.json().await {
        Ok(ask) => ask,
        Err(e) => return error(&ApiError::new(ErrorCode::BadRequest, format!("expected {{token, session, n}}: {e}"))),
    };
    if !(1..=MAX_CHECKS).contains(&ask.n) {
        return error(&ApiError::new(ErrorCode::BadRequest, format!("n must be 1..={MAX_CHECKS}")));
    }
    let session = match SessionId::new(&ask.session) {
        Ok(s) => s,
        Err(e) => return error(&ApiError::new(ErrorCode::BadRequest, e.to_string())),
    };
    let config = match EdgeConfig::from_env(env) {
        Ok(c) => c,
        Err(e) => return error(&ApiError::new(ErrorCode::Misconfigured, e.to_string())),
    };
    let expect = Expectation { scope: Scope::Attach, session: Some(&session) };
    let mut passed = 0u32;
    let mut first_error = None;
    for _ in 0..ask.n {
        match keys::verify(&config, Some(ctx), &ask.token, expect).await {
            Ok(_) => passed += 1,
            Err(e) => first_error = first_error.or(Some(format!("{e:?}"))),
        }
    }
    Response::from_json(&serde_json::json!({ "checks": ask.n, "passed": passed, "error": first_error }))
}
