//! Artifact routes: `GET /artifacts/{sid}/{path}` with a link's `artifact:get` token as
//! `Authorization: Bearer` streams an object from R2 to its owner once per link (a token in the query
//! string, where request logs keep it, is refused unread), and `PUT /artifacts/{sid}/{path}` with the
//! runner's `artifact:put` token streams an upload into R2, counting its bytes and SHA-256 on the way
//! (what is recorded is what was stored, never what was declared). An upload replaces the artifact
//! stored at its path unless it says `If-None-Match: *`; the replaced version's object is deleted once
//! the new one is recorded. Content is sealed as it streams in and opened as it streams out, under the
//! session's data key the control plane answers (`edgeshell_core::sealed_stream`): the bucket holds
//! only ciphertext, and the Worker holds no key beyond the request. Tokens are verified here (no database); what needs the database — the link's
//! one-time use, the upload limits, the audit log — is the control plane's internal artifacts routes.

use crate::config::EdgeConfig;
use crate::control_api;
use crate::http::{self, error, ApiError, ErrorCode};
use crate::keys::{self, VerifyError};
use edgeshell_core::artifacts::{check_link, parse_artifact_route, ArtifactPath};
use edgeshell_core::ids::SessionId;
use edgeshell_core::sealed_stream::{sealed_len, Opener, Sealer, NONCE_PREFIX};
use edgeshell_core::tokens::{Expectation, Method, Scope, TokenError, Verified};
use edgeshell_core::vault::DataKey;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{url, ByteStream, Context, Env, FixedLengthStream, Headers, Request, Response, Result};

/// The R2 bucket binding of artifacts (`wrangler.toml`).
pub const BUCKET_BINDING: &str = "ARTIFACTS";

/// The request's configuration, session and artifact.
fn target(req: &Request, env: &Env) -> std::result::Result<(EdgeConfig, url::Url, SessionId, ArtifactPath), ApiError> {
    let config = EdgeConfig::from_env(env).map_err(|e| {
        worker::console_error!("{}", serde_json::json!({"event": "config_error", "error": e.to_string()}));
        ApiError::new(ErrorCode::Misconfigured, "the gateway is misconfigured")
    })?;
    let url = req.url().map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let (session, path) = match parse_artifact_route(url.path()) {
        Some(Ok(target)) => target,
        Some(Err(e)) => return Err(ApiError::new(ErrorCode::BadPath, e.to_string())),
        None => return Err(ApiError::new(ErrorCode::NotFound, "no artifact named")),
    };
    Ok((config, url, session, path))
}

fn token_failure(e: VerifyError) -> ApiError {
    match e {
        VerifyError::Token(e) if e.is_forbidden() => ApiError::new(ErrorCode::Forbidden, e.to_string()),
        VerifyError::Token(e) => ApiError::new(ErrorCode::Unauthorized, e.to_string()),
        VerifyError::KeysUnavailable => ApiError::new(ErrorCode::KeysUnavailable, "signing keys cannot be fetched now"),
    }
}

async fn verify(
    config: &EdgeConfig,
    ctx: &Context,
    token: Option<String>,
    scope: Scope,
    session: &SessionId,
) -> std::result::Result<Verified, ApiError> {
    let token = token.ok_or_else(|| token_failure(VerifyError::Token(TokenError::Malformed("no token".into()))))?;
    keys::verify(config, Some(ctx), &token, Expectation { scope, session: Some(session) }).await.map_err(token_failure)
}

/// The request's `Authorization: Bearer` token, if any.
fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get("authorization").ok().flatten()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Serves an artifact route.
pub async fn serve(mut req: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let outcome = match req.method() {
        worker::Method::Get => download(&req, env, ctx).await,
        worker::Method::Put => upload(&mut req, env, ctx).await,
        _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "artifacts are read with GET and uploaded with PUT")),
    };
    outcome.or_else(|f| error(&f))
}

#[derive(Deserialize)]
struct Redeemed {
    object_key: String,
    /// Whether the object is sealed (every upload since sealing began), and its session's key.
    #[serde(default)]
    sealed: bool,
    #[serde(default)]
    data_key: Option<String>,
}

fn data_key(text: Option<&str>) -> std::result::Result<DataKey, ApiError> {
    text.and_then(|t| DataKey::from_transport(t).ok())
        .ok_or_else(|| ApiError::new(ErrorCode::BadControlAnswer, "the control plane gave no usable data key"))
}

async fn download(req: &Request, env: &Env, ctx: &Context) -> std::result::Result<Response, ApiError> {
    let (config, url, session, path) = target(req, env)?;
    if url.query_pairs().any(|(k, _)| k == "token") {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "send the link's token as Authorization: Bearer, never in the URL",
        ));
    }
    let link = verify(&config, ctx, bearer(req), Scope::ArtifactGet, &session).await?;
    check_link(&link, &session, &path, Method::Get).map_err(|e| ApiError::new(ErrorCode::Forbidden, e.to_string()))?;
    let c = link.claims();
    let body = serde_json::json!({
        "jti": c.jti.as_str(), "expires_at": c.exp, "session_id": session.as_str(),
        "path": path.as_str(), "owner": c.sub.as_str(),
    });
    let redeemed: Redeemed = control_api::internal(env, &config, "/internal/artifacts/redeem", &body).await?;
    let bucket = env.bucket(BUCKET_BINDING).map_err(|e| ApiError::new(ErrorCode::Misconfigured, e.to_string()))?;
    let object = bucket
        .get(redeemed.object_key.as_str())
        .execute()
        .await
        .map_err(|e| ApiError::new(ErrorCode::StorageUnavailable, e.to_string()))?
        .ok_or_else(|| ApiError::new(ErrorCode::ArtifactNotFound, "the artifact's content is gone"))?;
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| http::internal(e.to_string()));
    object.write_http_metadata(headers.clone()).map_err(|e| http::internal(e.to_string()))?;
    let opener = if redeemed.sealed {
        let key = data_key(redeemed.data_key.as_deref())?;
        let opener = Opener::new(&key, redeemed.object_key.as_bytes(), object.size())
            .map_err(|e| ApiError::new(ErrorCode::StorageUnavailable, format!("the stored artifact: {e}")))?;
        Some(opener)
    } else {
        None
    };
    let length = opener.as_ref().map_or(object.size(), Opener::plain_len);
    set("content-length", &length.to_string())?;
    set("cache-control", "private, no-store")?;
    set("x-content-type-options", "nosniff")?;
    let name = path.as_str().rsplit('/').next().unwrap_or("artifact");
    set("content-disposition", &format!("attachment; filename=\"{name}\""))?;
    let body = object.body().ok_or_else(|| http::internal("the object has no body"))?;
    let stream = body.stream().map_err(|e| http::internal(e.to_string()))?;
    let response = match opener {
        // A segment that does not open ends the response early: the download fails, nothing false is served.
        Some(opener) => Response::from_stream(opened(stream, opener)),
        None => Response::from_stream(stream),
    };
    response.map(|r| r.with_headers(headers)).map_err(|e| http::internal(e.to_string()))
}

/// The plaintext of a sealed stream, segment by segment.
fn opened(stream: ByteStream, opener: Opener) -> impl futures_util::Stream<Item = Result<Vec<u8>>> + 'static {
    let opener = Rc::new(RefCell::new(Some(opener)));
    let finishing = opener.clone();
    let fail = |e: edgeshell_core::sealed_stream::StreamError| worker::Error::RustError(e.to_string());
    stream
        .and_then(move |chunk| {
            let out = opener.borrow_mut().as_mut().map_or(Ok(Vec::new()), |o| o.push(&chunk)).map_err(fail);
            futures_util::future::ready(out)
        })
        .chain(futures_util::stream::once(async move {
            finishing.borrow_mut().take().map_or(Ok(Vec::new()), |o| o.finish().map_err(fail))
        }))
        .try_filter(|chunk| futures_util::future::ready(!chunk.is_empty()))
}

#[derive(Deserialize)]
struct Registered {
    object_key: String,
    /// The session's data key and this object's nonce prefix (base64url), to seal it with.
    data_key: String,
    nonce_prefix: String,
}

/// What streaming an upload counted.
#[derive(Default)]
struct Streamed {
    bytes: u64,
    sha256: Sha256,
}

/// The declared `x-content-sha256`, if any, checked to be 64 hex digits.
fn declared_sha256(req: &Request) -> std::result::Result<Option<String>, ApiError> {
    match req.headers().get("x-content-sha256").ok().flatten() {
        None => Ok(None),
        Some(v) => edgeshell_core::bundles::parse_hex32(&v)
            .map(|digest| Some(edgeshell_core::bundles::hex(&digest)))
            .ok_or_else(|| ApiError::new(ErrorCode::BadSha256, "x-content-sha256 must be 64 hex digits")),
    }
}

/// Registers the upload (its path and declared size reserved), streams it to R2 counting its bytes
/// and SHA-256 on the way, and completes the registration with what was counted: stored, or failed
/// (the path and quota released) when the stream broke, its length differs from `Content-Length`, or
/// its SHA-256 differs from the declared one (the object is then deleted). Streaming and completing
/// run under `wait_until`: an uploader that disconnects mid-body still gets its registration released.
async fn upload(req: &mut Request, env: &Env, ctx: &Context) -> std::result::Result<Response, ApiError> {
    let (config, _, session, path) = target(req, env)?;
    verify(&config, ctx, bearer(req), Scope::ArtifactPut, &session).await?;
    let size: u64 = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::new(ErrorCode::LengthRequired, "an upload needs a Content-Length"))?;
    let declared = declared_sha256(req)?;
    // `If-None-Match: *`: only if nothing is stored at the path (RFC 9110, 13.1.2).
    let replace = req.headers().get("if-none-match").ok().flatten().is_none_or(|v| v.trim() != "*");
    let body = serde_json::json!({
        "session_id": session.as_str(), "path": path.as_str(), "size": size, "sha256": declared,
        "replace": replace,
    });
    let registered: Registered = control_api::internal(env, &config, "/internal/artifacts", &body).await?;
    let stream = req.stream().map_err(|_| ApiError::new(ErrorCode::EmptyBody, "the upload has no body"))?;
    let mut answer = serde_json::json!({ "session_id": session.as_str(), "path": path.as_str() });
    let sealing = Sealing {
        key: data_key(Some(&registered.data_key))?,
        prefix: edgeshell_core::base64url::decode(&registered.nonce_prefix)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| ApiError::new(ErrorCode::BadControlAnswer, "the control plane gave no nonce prefix"))?,
    };
    let upload =
        Upload { env: env.clone(), config, session, path, key: registered.object_key, size, declared, sealing };
    let job = upload.run(stream).shared();
    ctx.wait_until(job.clone().map(|_| ()));
    let (bytes, sha256) = job.await?;
    answer["size"] = bytes.into();
    answer["sha256"] = sha256.into();
    Response::from_json(&answer).map(|r| r.with_status(201)).map_err(|e| http::internal(e.to_string()))
}

/// The control plane's answer to a completion.
#[derive(Deserialize)]
struct Completed {
    /// The object of the version this upload replaced.
    #[serde(default)]
    superseded: Option<String>,
}

/// A registered upload, owned so that it can outlive its request.
struct Upload {
    env: Env,
    config: EdgeConfig,
    session: SessionId,
    path: ArtifactPath,
    key: String,
    size: u64,
    declared: Option<String>,
    sealing: Sealing,
}

/// How an upload is sealed: its session's data key and its object's nonce prefix.
struct Sealing {
    key: DataKey,
    prefix: [u8; NONCE_PREFIX],
}

impl Upload {
    async fn run(self, stream: ByteStream) -> std::result::Result<(u64, String), ApiError> {
        let stored = store(&self.env, stream, (&self.key, &self.sealing), self.size, self.declared.as_deref()).await;
        let completion = match &stored {
            Ok((bytes, sha256)) => serde_json::json!({
                "session_id": self.session.as_str(), "path": self.path.as_str(), "outcome": "stored",
                "size": bytes, "sha256": sha256,
            }),
            Err(e) => serde_json::json!({
                "session_id": self.session.as_str(), "path": self.path.as_str(), "outcome": "failed",
                "reason": e.message,
            }),
        };
        let completed: std::result::Result<Completed, ApiError> =
            control_api::internal(&self.env, &self.config, "/internal/artifacts/complete", &completion).await;
        let stored = stored?;
        match completed {
            Err(e) => {
                // Not recorded as stored: nothing may stay in R2 (cleanup releases the pending record).
                if let Ok(bucket) = self.env.bucket(BUCKET_BINDING) {
                    let _ = bucket.delete(self.key.as_str()).await;
                }
                Err(e)
            }
            Ok(Completed { superseded: Some(old) }) => {
                // The version replaced; if this fails, the bucket's lifecycle rule deletes it.
                if let Ok(bucket) = self.env.bucket(BUCKET_BINDING) {
                    if let Err(e) = bucket.delete(old.as_str()).await {
                        worker::console_error!(
                            "{}",
                            serde_json::json!({"event": "artifact_delete_failed", "error": e.to_string()})
                        );
                    }
                }
                Ok(stored)
            }
            Ok(Completed { superseded: None }) => Ok(stored),
        }
    }
}

/// Streams the body to R2 under `key`, exactly `size` bytes, hashing and sealing it; returns the bytes
/// and their SHA-256 (of the plaintext). Nothing is left in R2 when it fails.
async fn store(
    env: &Env,
    body: ByteStream,
    (key, sealing): (&str, &Sealing),
    size: u64,
    declared: Option<&str>,
) -> std::result::Result<(u64, String), ApiError> {
    let bucket = env.bucket(BUCKET_BINDING).map_err(|e| ApiError::new(ErrorCode::Misconfigured, e.to_string()))?;
    let counted = Rc::new(RefCell::new(Streamed::default()));
    let counting = counted.clone();
    let hashed = body.map_ok(move |chunk| {
        let mut c = counting.borrow_mut();
        c.bytes += chunk.len() as u64;
        c.sha256.update(&chunk);
        chunk
    });
    let sealer = Sealer::new(&sealing.key, key.as_bytes(), sealing.prefix, size)
        .map_err(|e| ApiError::new(ErrorCode::ArtifactLimit, e.to_string()))?;
    let sealer = Rc::new(RefCell::new(Some(sealer)));
    let finishing = sealer.clone();
    let fail = |e: edgeshell_core::sealed_stream::StreamError| worker::Error::RustError(e.to_string());
    let sealed = hashed
        .and_then(move |chunk| {
            let out = sealer.borrow_mut().as_mut().map_or(Ok(Vec::new()), |s| s.push(&chunk)).map_err(fail);
            futures_util::future::ready(out)
        })
        .chain(futures_util::stream::once(async move {
            finishing.borrow_mut().take().map_or(Ok(Vec::new()), |s| s.finish().map_err(fail))
        }))
        .try_filter(|chunk| futures_util::future::ready(!chunk.is_empty()));
    // R2 takes a stream of known length; one that ends early or runs long fails the put (the sealer
    // refuses more or fewer bytes than declared, too).
    let put = bucket.put(key, FixedLengthStream::wrap(sealed, sealed_len(size))).execute().await;
    let streamed = counted.borrow().bytes;
    if let Err(e) = put {
        let _ = bucket.delete(key).await;
        if streamed != size {
            return Err(ApiError::new(
                ErrorCode::ContentMismatch,
                format!("the upload ended after {streamed} of its {size} bytes (Content-Length)"),
            ));
        }
        worker::console_error!("{}", serde_json::json!({"event": "artifact_store_failed", "error": e.to_string()}));
        return Err(ApiError::new(ErrorCode::StorageUnavailable, format!("the upload could not be stored: {e}")));
    }
    let sha256 = edgeshell_core::bundles::hex(&std::mem::take(&mut counted.borrow_mut().sha256).finalize());
    if declared.is_some_and(|d| d != sha256) {
        let _ = bucket.delete(key).await;
        return Err(ApiError::new(
            ErrorCode::ContentMismatch,
            format!("the upload's SHA-256 is {sha256}, not the declared x-content-sha256"),
        ));
    }
    Ok((streamed, sha256))
}
