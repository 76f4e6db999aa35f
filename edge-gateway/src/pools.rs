//! The pool routes: pool agents dial out to their region's `PoolRoom` here, and the control plane
//! submits commands to it here. Nothing connects in to a pool.
//!
//! | route | who | auth |
//! |---|---|---|
//! | `GET /pools/{region}/connect` (WebSocket) | a pool agent of `region` | its pool key as `Bearer`, checked with the control plane (stored there only as SHA-256) |
//! | `POST /internal/pools/{region}/commands` | the control plane | the internal key; the command's own `pool:command` token is verified in the room |
//!
//! The pool key is checked once per connection (an agent connects rarely, unlike a browser's attach,
//! which never waits for the database; a value not shaped like a pool key costs no lookup); the room
//! checks it again every `POOL_KEY_RECHECK_SECS` (60), so a revoked key's connection is closed within
//! that.

use crate::config::EdgeConfig;
use crate::control_api;
use crate::http::{error, ApiError, ErrorCode};
use crate::upgrade::is_websocket;
use edgeshell_core::ids::RegionId;
use edgeshell_core::pool_api::{api_key_hash, check_agent_name, is_api_key_shaped, AGENT_HEADER};
use serde::{Deserialize, Serialize};
use worker::{Env, Headers, Method, Request, RequestInit, Response, Result};

/// The binding of the pool rooms' namespace.
pub const POOLS_BINDING: &str = "POOL_ROOMS";

/// The control plane's route that checks a pool key.
pub const KEY_CHECK_PATH: &str = "/internal/pools/keys/check";

/// Headers the Worker hands the room.
pub(crate) const REGION: &str = "x-edgeshell-region";
pub(crate) const KEY_ID: &str = "x-edgeshell-key-id";
pub(crate) const KEY_SHA256: &str = "x-edgeshell-key-sha256";

/// Paths the room answers.
pub(crate) const ROOM_CONNECT: &str = "/connect";
pub(crate) const ROOM_COMMANDS: &str = "/commands";

/// The largest command request accepted (a start's body is well under 4 KiB).
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// What the control plane's key check is asked.
#[derive(Serialize)]
pub(crate) struct KeyCheck<'a> {
    /// The SHA-256 of the presented key, hex (the key itself never leaves the edge).
    pub key_sha256: &'a str,
    /// The region the agent asks to serve.
    pub region: &'a str,
}

/// Its answer.
#[derive(Deserialize)]
pub(crate) struct KeyOwner {
    /// The key's id, for logs and revocation.
    pub key_id: String,
}

/// The region of a connect route, if `path` is one.
pub fn connect_route(path: &str) -> Option<&str> {
    path.strip_prefix("/pools/")?.strip_suffix("/connect").filter(|r| !r.contains('/'))
}

/// The region of a commands route, if `path` is one.
pub fn commands_route(path: &str) -> Option<&str> {
    path.strip_prefix("/internal/pools/")?.strip_suffix("/commands").filter(|r| !r.contains('/'))
}

fn region_of(name: &str) -> std::result::Result<RegionId, ApiError> {
    RegionId::new(name).map_err(|e| ApiError::new(ErrorCode::BadRegion, e.to_string()))
}

fn config(env: &Env) -> std::result::Result<EdgeConfig, ApiError> {
    EdgeConfig::from_env(env).map_err(|e| ApiError::new(ErrorCode::Misconfigured, e.to_string()))
}

/// The region's room, placed near the region's hint.
fn room(env: &Env, config: &EdgeConfig, region: &RegionId) -> Result<worker::Stub> {
    let rooms = env.durable_object(POOLS_BINDING)?;
    let name = format!("pool/{region}");
    match config.location_hint(region) {
        Some(hint) => rooms.get_by_name_with_location_hint(&name, hint),
        None => rooms.get_by_name(&name),
    }
}

/// Checks a pool key with the control plane: the key's id, or the refusal (401 unknown or revoked,
/// 403 another region's).
pub(crate) async fn check_key(
    env: &Env,
    config: &EdgeConfig,
    key_sha256: &str,
    region: &RegionId,
) -> std::result::Result<KeyOwner, ApiError> {
    let body = serde_json::to_value(KeyCheck { key_sha256, region: region.as_str() })
        .map_err(|e| crate::http::internal(e.to_string()))?;
    control_api::internal(env, config, KEY_CHECK_PATH, &body).await
}

/// `GET /pools/{region}/connect`: an agent's WebSocket, handed to the region's room once its key checks
/// out. Agents read HTTP statuses, so a refusal is a plain error answer, not a close code.
pub async fn connect(req: Request, env: &Env, region: &str) -> Result<Response> {
    match connect_checked(req, env, region).await {
        Ok(response) => Ok(response),
        Err(refused) => error(&refused),
    }
}

async fn connect_checked(req: Request, env: &Env, region: &str) -> std::result::Result<Response, ApiError> {
    if !is_websocket(&req) {
        return Err(ApiError::new(ErrorCode::UpgradeRequired, "agents connect with a WebSocket upgrade"));
    }
    let region = region_of(region)?;
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let agent = header(AGENT_HEADER).unwrap_or_default();
    check_agent_name(&agent).map_err(|e| ApiError::new(ErrorCode::BadRequest, e))?;
    let key = header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::new(ErrorCode::MissingApiKey, "send the pool key as Bearer"))?;
    // Refused here, before it costs the control plane a lookup.
    if !is_api_key_shaped(&key) {
        return Err(ApiError::new(ErrorCode::InvalidApiKey, "not a pool key (esp_<id>_<secret>)"));
    }
    let config = config(env)?;
    let key_sha256 = edgeshell_core::bundles::hex(&api_key_hash(&key));
    let owner = check_key(env, &config, &key_sha256, &region).await?;
    let internal = |e: worker::Error| crate::http::internal(format!("the pool room: {e}"));
    let headers = Headers::new();
    for (name, value) in [
        ("upgrade", "websocket"),
        (REGION, region.as_str()),
        (AGENT_HEADER, agent.as_str()),
        (KEY_ID, owner.key_id.as_str()),
        (KEY_SHA256, key_sha256.as_str()),
    ] {
        headers.set(name, value).map_err(internal)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let request = Request::new_with_init(&format!("https://pool.internal{ROOM_CONNECT}"), &init).map_err(internal)?;
    room(env, &config, &region).map_err(internal)?.fetch_with_request(request).await.map_err(internal)
}

/// `POST /internal/pools/{region}/commands`: the control plane's command, passed to the region's room,
/// which answers with the agent's answer or why there is none.
pub async fn commands(mut req: Request, env: &Env, region: &str) -> Result<Response> {
    if let Err(refused) = crate::http::require_internal(&req, env) {
        return error(&refused);
    }
    if req.method() != Method::Post {
        return error(&ApiError::new(ErrorCode::MethodNotAllowed, "commands are submitted with POST"));
    }
    let region = match region_of(region) {
        Ok(r) => r,
        Err(e) => return error(&e),
    };
    let config = match config(env) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let body = req.bytes().await?;
    if body.len() > MAX_COMMAND_BYTES {
        return error(&ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("a command request is at most {MAX_COMMAND_BYTES} bytes"),
        ));
    }
    let headers = Headers::new();
    headers.set(REGION, region.as_str())?;
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    let request = Request::new_with_init(&format!("https://pool.internal{ROOM_COMMANDS}"), &init)?;
    room(env, &config, &region)?.fetch_with_request(request).await
}
