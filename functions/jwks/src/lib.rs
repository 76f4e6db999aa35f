//! `GET /.well-known/jwks.json`: publishes the public halves of the current signing key, the next one
//! and the previous one (when set). Verifiers learn a key before it signs anything (`next`), and tokens
//! signed before a promotion keep verifying until they expire (`previous`), so rotation needs no
//! downtime. Keys come from the secret variables `signing_key`, `next_signing_key` and
//! `previous_signing_key` (a private JWK or a PEM; without a `kid`, the RFC 7638 thumbprint is used).

use edgeshell_core::jwks::KeySet;
use edgeshell_fn::Failure;
use edgeshell_keys::RsaSigner;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::{http_component, variables};

/// Verifiers may cache for 5 minutes, then revalidate; on an issuer outage they may keep the set a day.
const CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400";

#[http_component]
fn handle(req: Request) -> Response {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Failure::new(405, "method_not_allowed", "use GET").into_response();
    }
    match key_set() {
        Ok(json) => Response::builder()
            .status(200)
            .header("content-type", "application/jwk-set+json")
            .header("cache-control", CACHE_CONTROL)
            .body(if matches!(req.method(), Method::Head) { Vec::new() } else { json })
            .build(),
        Err(message) => {
            eprintln!("jwks: {message}");
            Failure::new(500, "signing_key_unusable", "the signing keys are not configured correctly").into_response()
        }
    }
}

fn key_set() -> Result<Vec<u8>, String> {
    let mut keys = Vec::new();
    for name in ["signing_key", "next_signing_key", "previous_signing_key"] {
        let value = variables::get(name).map_err(|e| format!("variable {name}: {e}"))?;
        if value.trim().is_empty() {
            if name == "signing_key" {
                return Err("signing_key is empty".into());
            }
            continue;
        }
        let signer = RsaSigner::from_secret(&value).map_err(|e| format!("{name}: {e}"))?;
        keys.push(signer.verifying_key().clone());
    }
    let set = KeySet::from_keys(keys).map_err(|e| e.to_string())?;
    serde_json::to_vec(&set.to_jwk_set()).map_err(|e| e.to_string())
}
