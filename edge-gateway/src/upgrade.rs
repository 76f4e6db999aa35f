//! The session WebSocket routes, `/sessions/{sid}/attach` (browsers) and `/sessions/{sid}/join`
//! (runners): the credential is read from `Sec-WebSocket-Protocol` (core `Upgrade::parse`), a token is
//! verified here at the edge (no database), and the upgrade is handed to the session's `SessionRoom`
//! with the verified claims. A resume ticket can only be checked by the room, so it is passed on as is.
//!
//! A refused upgrade is still accepted and then closed with the close code of the table (after a
//! `Closing` frame with the full reason): browsers cannot read the HTTP status of a failed upgrade, and
//! the close code is what tells the client its next step. The room is never involved in a refused.

use crate::config::EdgeConfig;
use crate::keys;
use crate::room_link;
use edgeshell_core::protocol::{
    answered_subprotocol, close_reason, CloseCode, Credential, Frame, Role, Upgrade, UpgradeRefused,
};
use edgeshell_core::tokens::{Expectation, Scope};
use worker::{Context, Env, Headers, Request, Response, Result, WebSocketPair};

/// True when the request asks for a WebSocket.
pub fn is_websocket(req: &Request) -> bool {
    req.headers().get("upgrade").ok().flatten().is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Serves an upgrade to a session route.
pub async fn serve(req: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let offered = req.headers().get("sec-websocket-protocol").ok().flatten().unwrap_or_default();
    match forward(req, env, ctx).await {
        Ok(response) => Ok(response),
        Err(refused) => refuse(&refused, &offered),
    }
}

async fn forward(req: Request, env: &Env, ctx: &Context) -> std::result::Result<Response, UpgradeRefused> {
    let url = req.url().map_err(|e| UpgradeRefused::new(CloseCode::ProtocolError, e.to_string()))?;
    let protocols = req.headers().get("sec-websocket-protocol").ok().flatten().unwrap_or_default();
    let upgrade = Upgrade::parse(url.path(), url.query(), &protocols)?;
    let config = EdgeConfig::from_env(env).map_err(|e| {
        worker::console_error!("{}", serde_json::json!({"event": "config_error", "error": e.to_string()}));
        UpgradeRefused::new(CloseCode::InternalError, "the gateway is misconfigured")
    })?;
    // Before the token: a page of another site, or a "runner" in a browser, gets nothing checked.
    let origin = req.headers().get("origin").ok().flatten();
    config.page_origins.check(upgrade.role, origin.as_deref(), &url.origin().ascii_serialization())?;
    let mut handoff = room_link::Handoff::new(&upgrade.session, upgrade.role);
    let mut hint = None;
    match &upgrade.credential {
        Credential::Token(token) => {
            let scope = match upgrade.role {
                Role::Browser => Scope::Attach,
                Role::Runner => Scope::Join,
            };
            let expect = Expectation { scope, session: Some(&upgrade.session) };
            let verified = keys::verify(&config, Some(ctx), token, expect).await?;
            hint = config.location_hint(&verified.claims().region).map(str::to_owned);
            handoff.verified(&verified);
        }
        Credential::Resume(ticket) => handoff.resume(ticket, upgrade.offset),
    }
    room_link::open(env, &upgrade.session, hint.as_deref(), handoff).await
}

/// Accepts the WebSocket only to close it with the refused's code, answering only a subprotocol the
/// client offered (`offered`: its `Sec-WebSocket-Protocol`; see `answered_subprotocol`).
pub fn refuse(refused: &UpgradeRefused, offered: &str) -> Result<Response> {
    let pair = WebSocketPair::new()?;
    pair.server.accept()?;
    let closing = Frame::Closing { code: refused.code, reason: refused.reason.clone() };
    pair.server.send_with_bytes(closing.encode())?;
    pair.server.close(Some(refused.code.code()), Some(close_reason(&refused.reason)))?;
    let headers = Headers::new();
    if let Some(protocol) = answered_subprotocol(offered) {
        headers.set("sec-websocket-protocol", protocol)?;
    }
    Ok(Response::from_websocket(pair.client)?.with_headers(headers))
}
