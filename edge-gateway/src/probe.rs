//! `GET /probe/{region}`: an empty answer from a Durable Object placed where that region's session rooms
//! are placed (its `locationHint`), so the page measures the round trip its terminal traffic will take
//! (browser -> nearest edge -> the region's rooms) and sends it with the mint as `rtts`. The probe object
//! stores nothing and is named so no session id can collide with it.

use crate::config::EdgeConfig;
use crate::http::{error, ApiError, ErrorCode};
use crate::room_link::ROOMS_BINDING;
use edgeshell_core::ids::RegionId;
use worker::{Env, Method, Request, RequestInit, Response, Result};

/// The path the probe object answers.
pub const PROBE_PATH: &str = "/probe";

/// Answers a probe for the region named in the path.
pub async fn serve(req: &Request, env: &Env) -> Result<Response> {
    let path = req.path();
    let Some(name) = path.strip_prefix("/probe/") else {
        return error(&ApiError::new(ErrorCode::NotFound, "probe a region: /probe/{region}"));
    };
    let region = match RegionId::new(name) {
        Ok(r) => r,
        Err(e) => return error(&ApiError::new(ErrorCode::BadRegion, e.to_string())),
    };
    let config = match EdgeConfig::from_env(env) {
        Ok(c) => c,
        Err(e) => return error(&ApiError::new(ErrorCode::Misconfigured, e.to_string())),
    };
    let rooms = env.durable_object(ROOMS_BINDING)?;
    // Session ids never contain '/' (ids::SessionId), so this name is never a session's.
    let object_name = format!("probe/{}", region.as_str());
    let object = match config.location_hint(&region) {
        Some(hint) => rooms.get_by_name_with_location_hint(&object_name, hint)?,
        None => rooms.get_by_name(&object_name)?,
    };
    let mut init = RequestInit::new();
    init.with_method(Method::Get);
    let probe = Request::new_with_init(&format!("https://room.internal{PROBE_PATH}"), &init)?;
    let answer = object.fetch_with_request(probe).await?;
    let mut response = Response::empty()?.with_status(answer.status_code());
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}
