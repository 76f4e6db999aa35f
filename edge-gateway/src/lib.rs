//! The edgeshell edge gateway, a Cloudflare Worker. Today it serves `GET /healthz` (with the protocol
//! version it speaks); the attach and join routes, token checks against the cached JWKS and the
//! `SessionRoom` Durable Object follow the design in ARCHITECTURE.md.

use worker::{event, Context, Env, Request, Response, Result};

/// Routes one request.
#[event(fetch)]
async fn fetch(req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    match req.path().as_str() {
        "/healthz" => Response::from_json(&serde_json::json!({
            "ok": true,
            "protocol": edgeshell_core::protocol::SUBPROTOCOL,
        })),
        path => Response::from_json(&serde_json::json!({
            "error": "not_found",
            "message": format!("no route {path}"),
        }))
        .map(|r| r.with_status(404)),
    }
}
