//! Reading requests: bounded JSON bodies, bearer tokens, internal-route authentication, path segments.
//! Handlers authenticate from headers first and read a body after, through
//! [`Incoming`](crate::wasi_http::Incoming), which never reads more than the route's limit.

use crate::reply::{ApiError, ErrorCode};
pub use crate::wasi_http::Incoming as Request;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

/// The bearer token of `Authorization`, if any.
pub fn bearer(req: &Request) -> Option<String> {
    bearer_of(&req.header("authorization")?).map(str::to_owned)
}

/// The token of an `Authorization: Bearer <token>` value.
pub fn bearer_of(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// Internal routes take `Authorization: Bearer <internal_api_key>`, compared in constant time.
pub fn require_internal(req: &Request) -> Result<(), ApiError> {
    require_internal_key(bearer(req).as_deref())
}

/// The internal-route check on the bearer token presented, if any.
pub fn require_internal_key(presented: Option<&str>) -> Result<(), ApiError> {
    if matches_internal_key(presented.unwrap_or_default())? {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Unauthorized, "missing or wrong internal API key"))
    }
}

/// Whether `presented` is the internal key, compared in constant time.
pub fn matches_internal_key(presented: &str) -> Result<bool, ApiError> {
    // A key shorter than the minimum is a misconfiguration: no internal route answers until it is fixed.
    let expected = crate::settings::read(|s| s.bearer_key("internal_api_key"))?;
    Ok(!expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes())))
}

/// The body as JSON of type `T`, at most `max` bytes (see [`Request::body`]); an empty body reads as
/// `{}`. Call it after authenticating.
pub fn json_body<T: DeserializeOwned>(req: &Request, max: usize) -> Result<T, ApiError> {
    parse_json(&req.body(max)?, max)
}

/// `body` as JSON of type `T`, at most `max` bytes; an empty body reads as `{}`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], max: usize) -> Result<T, ApiError> {
    if body.len() > max {
        return Err(too_large(max));
    }
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    let invalid =
        |at: String, e: &serde_json::Error| ApiError::new(ErrorCode::BadRequest, format!("invalid JSON body{at}: {e}"));
    let mut json = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let at = match e.path().to_string() {
            path if path == "." => String::new(),
            path => format!(" at {path}"),
        };
        invalid(at, e.inner())
    })?;
    json.end().map_err(|e| invalid(String::new(), &e))?;
    Ok(value)
}

/// 413 for a body over `max` bytes.
pub fn too_large(max: usize) -> ApiError {
    ApiError::new(ErrorCode::BodyTooLarge, format!("the body may hold at most {max} bytes"))
}

/// The path's segments after `prefix` (which must match), without empty ones.
pub fn segments_after<'a>(req: &'a Request, prefix: &str) -> Option<Vec<&'a str>> {
    let path = req.path().strip_prefix(prefix)?;
    if !(path.is_empty() || path.starts_with('/')) {
        return None;
    }
    Some(path.split('/').filter(|s| !s.is_empty()).collect())
}

/// A query parameter's raw value.
pub fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query().split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}
