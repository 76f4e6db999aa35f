//! Reading requests: bounded JSON bodies, bearer tokens, internal-route authentication, path segments.

use crate::reply::Failure;
use serde::de::DeserializeOwned;
use spin_sdk::http::Request;
use spin_sdk::variables;
use subtle::ConstantTimeEq;

/// The bearer token of `Authorization`, if any.
pub fn bearer(req: &Request) -> Option<&str> {
    bearer_of(req.header("authorization")?.as_str()?)
}

/// The token of an `Authorization: Bearer <token>` value.
pub fn bearer_of(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// Internal routes take `Authorization: Bearer <internal_api_key>`, compared in constant time.
pub fn require_internal(req: &Request) -> Result<(), Failure> {
    require_internal_key(bearer(req))
}

/// The internal-route check on the bearer token presented, if any.
pub fn require_internal_key(presented: Option<&str>) -> Result<(), Failure> {
    let expected = variables::get("internal_api_key").unwrap_or_default();
    let presented = presented.unwrap_or_default();
    if !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Failure::new(401, "unauthorized", "missing or wrong internal API key"))
    }
}

/// The body as JSON of type `T`, at most `max` bytes; an empty body reads as `{}`.
pub fn json_body<T: DeserializeOwned>(req: &Request, max: usize) -> Result<T, Failure> {
    parse_json(req.body(), max)
}

/// `body` as JSON of type `T`, at most `max` bytes; an empty body reads as `{}`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], max: usize) -> Result<T, Failure> {
    if body.len() > max {
        return Err(too_large(max));
    }
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| Failure::bad_request("bad_request", format!("invalid JSON body: {e}")))
}

/// 413 for a body over `max` bytes.
pub fn too_large(max: usize) -> Failure {
    Failure::new(413, "body_too_large", format!("the body may hold at most {max} bytes"))
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

/// A variable that must be set.
pub fn variable(name: &str) -> Result<String, Failure> {
    match variables::get(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(Failure::internal(format!("variable {name} is empty"))),
        Err(e) => Err(Failure::internal(format!("variable {name}: {e}"))),
    }
}

/// A numeric variable, or `default` when unset or empty.
pub fn number_variable(name: &str, default: u64) -> Result<u64, Failure> {
    match variables::get(name) {
        Ok(v) if v.trim().is_empty() => Ok(default),
        Ok(v) => v.trim().parse().map_err(|_| Failure::internal(format!("variable {name} is not a number: {v:?}"))),
        Err(_) => Ok(default),
    }
}
