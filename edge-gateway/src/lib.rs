//! The edgeshell edge gateway, a Cloudflare Worker: browsers attach and runners join their session's
//! `SessionRoom` Durable Object over WebSockets, after their token was verified here against the
//! control plane's cached JWKS (no database); artifacts stream from and to R2 behind signed links.
//! The web client's static assets are served by the platform from `[assets]` before this code runs,
//! except the document itself, which this code serves with its security policy.
//!
//! | route | module |
//! |---|---|
//! | `GET /`, `/index.html` | [`page`]: the page's document with its Content-Security-Policy |
//! | `GET /healthz` | here: liveness, protocol version, the isolate's JWKS cache counters |
//! | `GET /sessions/{sid}/attach`, `/sessions/{sid}/join` (WebSocket) | [`upgrade`], then [`session_room`] |
//! | `GET`, `PUT /artifacts/{sid}/{path}` | [`artifacts`] |
//! | `/api/sessions/...`, `/api/regions`, `/api/artifacts/...` | [`public_api`]: passed to the control plane |
//! | `GET /client-config.json` | [`public_api`]: the page's sign-in settings |
//! | `GET /probe/{region}` | [`probe`]: a round trip to where the region's rooms live |
//! | `POST /internal/sessions/{sid}/end`, `/extend` | [`end_room`]: the control plane ends or extends a room at once (internal key) |
//! | `GET /pools/{region}/connect` (WebSocket) | [`pools`], then [`pool_room`]: a pool agent dials out (pool key) |
//! | `POST /internal/pools/{region}/commands` | [`pools`], then [`pool_room`]: the control plane's command to a region's agents (internal key) |
//! | `POST /internal/verify-cost` | [`verify_cost`]: the token check run `n` times, for the benchmark (internal key) |

pub mod artifacts;
pub mod config;
pub mod control_api;
pub mod end_room;
pub mod http;
pub mod keys;
pub mod page;
pub mod pool_room;
pub mod pools;
pub mod probe;
pub mod public_api;
pub mod room_link;
pub mod room_store;
pub mod session_room;
pub mod upgrade;
pub mod verify_cost;
pub mod webcrypto;

use http::{error, ApiError, ErrorCode};
use worker::{event, Context, Env, Request, Response, Result};

/// One JSON log line of an event (`{"event": ..., fields...}`), as the rooms write them.
pub(crate) fn log(event: &str, fields: serde_json::Value) {
    let mut line = serde_json::json!({ "event": event });
    if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    worker::console_log!("{line}");
}

/// Routes one request.
#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let path = req.path();
    if path == "/healthz" {
        return Response::from_json(&serde_json::json!({
            "ok": true,
            "protocol": edgeshell_core::protocol::SUBPROTOCOL,
            "jwks": keys::metrics(),
        }));
    }
    if page::is_page(&path) {
        return page::serve(&req, &env).await;
    }
    if path.starts_with("/sessions/") {
        if !upgrade::is_websocket(&req) {
            return error(&ApiError::new(ErrorCode::UpgradeRequired, "session routes are WebSocket endpoints"));
        }
        return upgrade::serve(req, &env, &ctx).await;
    }
    if public_api::is_public_api(&path) {
        return public_api::proxy(req, &env).await;
    }
    if path == "/client-config.json" {
        return public_api::client_config(&env);
    }
    if path.starts_with("/probe/") {
        return probe::serve(&req, &env).await;
    }
    if let Some(region) = pools::connect_route(&path) {
        return pools::connect(req, &env, region).await;
    }
    if let Some(region) = pools::commands_route(&path) {
        return pools::commands(req, &env, region).await;
    }
    if let Some(route) = end_room::route(&path) {
        return end_room::serve(req, &env, route).await;
    }
    if path == verify_cost::PATH && req.method() == worker::Method::Post {
        return verify_cost::serve(req, &env, &ctx).await;
    }
    if path.starts_with("/artifacts/") {
        return artifacts::serve(req, &env, &ctx).await;
    }
    error(&ApiError::new(ErrorCode::NotFound, format!("no route {path}")))
}
