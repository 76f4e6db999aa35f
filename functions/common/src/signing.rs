//! Signing our tokens under our issuer name (`token_issuer`), with one of two backends:
//!
//! - **the signer service** when `signer_url` is set: claims go to its `POST /v1/sign` with the secret
//!   `signer_api_key`, and RS256 runs natively there (about 1 ms). The functions then hold no private key
//!   at all. The production setting.
//! - **in the component** otherwise, with the secret `signing_key`: RS256 in wasm costs 10-17 ms per
//!   token, which bounds mints to a few dozen per second per core. Kept for the smallest deployments.
//!
//! The next key is only published (by the jwks component, or by the signer) until it is promoted.

use crate::outbound::{self, Call, OutboundError};
use crate::platform::{now, Spent};
use crate::reply::{self, ApiError, ErrorCode};
use crate::settings;
use core::time::Duration;
use edgeshell_core::issue::Issuer;
use edgeshell_core::tokens::{sign, Claims};
use edgeshell_keys::RsaSigner;

/// How long the signer may take to answer one token.
const SIGNER_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read from the signer.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Where signatures are made.
enum Backend {
    /// In this component, with the private key from `signing_key`.
    Local(Box<RsaSigner>),
    /// At the signer service (`signer_url`).
    Remote {
        /// `{signer_url}/v1/sign`.
        url: String,
        /// `Bearer {signer_api_key}`.
        authorization: String,
    },
}

/// The signer and issuer of this request.
pub struct Signing {
    backend: Backend,
    /// Builds the claims of each token kind.
    pub issuer: Issuer,
    /// Time spent signing, for `Server-Timing`.
    pub spent: Spent,
}

impl Signing {
    /// The signer service when `signer_url` is set, else the key in `signing_key`.
    pub fn load() -> Result<Signing, ApiError> {
        let backend = match settings::read(|s| s.text("signer_url"))? {
            Some(base) => Backend::Remote {
                url: format!("{}/v1/sign", base.trim_end_matches('/')),
                authorization: format!("Bearer {}", settings::required("signer_api_key")?),
            },
            None => {
                let secret = settings::read(|s| s.text("signing_key"))?.ok_or_else(|| {
                    reply::internal("neither signer_url nor signing_key is set: tokens cannot be signed")
                })?;
                let signer =
                    RsaSigner::from_secret(&secret).map_err(|e| reply::internal(format!("signing_key: {e}")))?;
                Backend::Local(Box::new(signer))
            }
        };
        Ok(Signing { backend, issuer: Issuer::new(settings::required("token_issuer")?), spent: Spent::default() })
    }

    /// A compact JWS of `claims`; claims a verifier would refuse are never signed (a defect: 500).
    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        self.issuer.check_signable(claims, now()).map_err(|e| reply::internal(format!("not signable: {e}")))?;
        self.spent.time(|| match &self.backend {
            Backend::Local(signer) => {
                sign(claims, signer.as_ref()).map_err(|e| reply::internal(format!("signing: {e}")))
            }
            Backend::Remote { url, authorization } => remote(url, authorization, claims),
        })
    }
}

fn unavailable(why: impl core::fmt::Display) -> ApiError {
    eprintln!("signer: {why}");
    ApiError::new(ErrorCode::SignerUnavailable, "tokens cannot be signed now; retry shortly")
}

fn remote(url: &str, authorization: &str, claims: &Claims) -> Result<String, ApiError> {
    let body = serde_json::to_vec(&serde_json::json!({ "claims": claims }))
        .map_err(|e| reply::internal(format!("encoding claims: {e}")))?;
    let headers = [("authorization", authorization), ("content-type", "application/json")];
    let call =
        Call { post: true, url, headers: &headers, body: &body, timeout: SIGNER_TIMEOUT, max_body: MAX_ANSWER_BYTES };
    let answer = outbound::send(&call).map_err(|e| match e {
        OutboundError::Denied => reply::internal(format!("{url} is not in allowed_outbound_hosts (signer_origin)")),
        other => unavailable(format!("{url}: {other}")),
    })?;
    if answer.status != 200 {
        let text = String::from_utf8_lossy(&answer.body);
        // A refusal of our own claims or of our key is a defect or a misconfiguration, not an outage.
        return Err(match answer.status {
            401 | 400 | 422 => reply::internal(format!("the signer refused: HTTP {} {text}", answer.status)),
            _ => unavailable(format!("HTTP {} {text}", answer.status)),
        });
    }
    #[derive(serde::Deserialize)]
    struct Signed {
        token: String,
    }
    serde_json::from_slice::<Signed>(&answer.body)
        .map(|s| s.token)
        .map_err(|e| unavailable(format!("an unreadable answer: {e}")))
}
