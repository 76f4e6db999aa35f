//! `GET /.well-known/jwks.json`: publishes the public halves of the current signing key, the next one
//! and the previous one (when set). Verifiers learn a key before it signs anything (`next`), and tokens
//! signed before a promotion keep verifying until they expire (`previous`), so rotation needs no
//! downtime. With a signer service (`signer_url`), the set is the one the signer publishes, checked
//! before it is passed on; otherwise keys come from the secret variables `signing_key`,
//! `next_signing_key` and `previous_signing_key` (a private JWK or a PEM; without a `kid`, the RFC 7638
//! thumbprint is used).

use core::time::Duration;
use edgeshell_core::jwks::{KeySet, MAX_JWKS_BYTES};
use edgeshell_fn::outbound::{self, Call};
use edgeshell_fn::reply::{self, ApiError, ErrorCode};
use edgeshell_fn::settings;
use edgeshell_fn::wasi_http::send;
use edgeshell_keys::KeyRing;
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};
use spin_sdk::http_component;

/// Verifiers may cache for 5 minutes, then revalidate; on an issuer outage they may keep the set a day.
const CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400";

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    send(out, answer(&req.method()));
}

fn answer(method: &Method) -> Response {
    if !matches!(method, Method::Get | Method::Head) {
        return reply::error_response(&ApiError::new(ErrorCode::MethodNotAllowed, "use GET"));
    }
    match key_set() {
        Ok(json) => Response::builder()
            .status(200)
            .header("content-type", "application/jwk-set+json")
            .header("cache-control", CACHE_CONTROL)
            .body(if matches!(method, Method::Head) { Vec::new() } else { json })
            .build(),
        Err(failure) => reply::error_response(&failure),
    }
}

fn key_set() -> Result<Vec<u8>, ApiError> {
    let unusable = |message: String| {
        eprintln!("jwks: {message}");
        ApiError::new(ErrorCode::SigningKeyUnusable, "the signing keys are not configured correctly")
    };
    let get = |name: &str| settings::read(|s| s.text(name)).map(Option::unwrap_or_default);
    if let Some(signer_url) = settings::read(|s| s.text("signer_url"))? {
        return from_signer(signer_url.trim_end_matches('/')).map_err(|message| {
            eprintln!("jwks: {message}");
            ApiError::new(ErrorCode::SignerUnavailable, "the signing keys cannot be read now; retry shortly")
        });
    }
    let ring = KeyRing::from_secrets(&get("signing_key")?, &get("next_signing_key")?, &get("previous_signing_key")?)
        .map_err(|e| unusable(e.to_string()))?;
    Ok(ring.jwks_json())
}

/// The signer's published set, parsed (so nothing but a well-formed key set is ever served) and
/// re-serialized.
fn from_signer(base: &str) -> Result<Vec<u8>, String> {
    let url = format!("{base}/v1/jwks");
    let call = Call {
        post: false,
        url: &url,
        headers: &[],
        body: &[],
        timeout: Duration::from_secs(2),
        max_body: MAX_JWKS_BYTES,
    };
    let answer = outbound::send(&call).map_err(|e| format!("{url}: {e}"))?;
    if answer.status != 200 {
        return Err(format!("{url}: HTTP {}", answer.status));
    }
    let set = KeySet::from_json(&answer.body).map_err(|e| format!("{url}: {e}"))?;
    if set.keys().is_empty() {
        return Err(format!("{url}: no usable key"));
    }
    serde_json::to_vec(&set.to_jwk_set()).map_err(|e| e.to_string())
}
