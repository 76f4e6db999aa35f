//! The pool registry.
//!
//! - `POST /api/pools/heartbeat`: a pool agent reports (`region`, its `agent` name, `capacity`, `load`,
//!   `draining`, its `runners`) with `Authorization: Bearer <pool key>`. Keys are stored only as
//!   SHA-256 and bound to one region: 401 for a bad or revoked key, 403 for another region's, 429 for
//!   heartbeats of one agent closer together than [`MIN_INTERVAL_MS`]. The answer names runners whose
//!   session ended or is unknown, which the agent stops. A region's status for placement is the sum of
//!   its agents'; agents that stop heartbeating drop out after the health TTL (commands never wait for
//!   that: the edge's pool room refuses a start at once when no connected agent can take it).
//! - `POST /internal/pools/keys/check` (internal key): the edge checks a connecting agent's key
//!   (`key_sha256`, hex, and the `region` it asks for): `{key_id}`, 401 or 403.
//!   The agent's `templates` (their public part) are stored with its row; a region offers what all
//!   its fresh agents offer (`registry`).
//! - `GET /api/regions`: the regions and whether they take sessions now, for clients choosing one.

use edgeshell_core::placement::{is_available, PlacementPolicy};
use edgeshell_core::pool_api::{api_key_hash, check_agent_name, Heartbeat, HeartbeatAnswer};
use edgeshell_core::templates::{TemplateOffer, MAX_TEMPLATES};
use edgeshell_core::time::Timestamp;
use edgeshell_fn::db::{col, int, text, Db};
use edgeshell_fn::platform::now;
use edgeshell_fn::registry::{self, key_owner};
use edgeshell_fn::reply::{self, finish, json, ApiError, ErrorCode};
use edgeshell_fn::request::{bearer, json_body, require_internal, Request};
use edgeshell_fn::settings;
use edgeshell_fn::wasi_http::send;
use edgeshell_fn::Reply;
use spin_sdk::http::{IncomingRequest, Method, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;

/// Heartbeats of one pool closer together than this are refused with 429.
const MIN_INTERVAL_MS: u64 = 200;
/// How often agents should report.
const HEARTBEAT_EVERY_MS: u64 = 1000;
/// Largest heartbeat body (a pool with thousands of runners fits).
const MAX_BODY: usize = 256 * 1024;
/// Sanity bound on capacity and load.
const MAX_RUNNERS: u32 = 1_000_000;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let req = Request::new(req);
    send(out, finish(route(&req)));
}

fn route(req: &Request) -> Reply {
    if matches!(req.path(), "/api/pools/heartbeat" | "/api/regions") {
        // Before the key is looked up: a token of the caller's address.
        edgeshell_fn::ratelimit::admit(req, &Db::open()?)?;
    }
    match (req.method(), req.path()) {
        (Method::Post, "/api/pools/heartbeat") => heartbeat(req),
        (Method::Get, "/api/regions") => regions(),
        (Method::Post, KEY_CHECK_PATH) => {
            require_internal(req)?;
            check_key(req)
        }
        (_, "/api/pools/heartbeat" | "/api/regions" | KEY_CHECK_PATH) => {
            Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here"))
        }
        _ => Err(ApiError::new(ErrorCode::NotFound, "no such route")),
    }
}

/// The edge's key check of a connecting agent.
const KEY_CHECK_PATH: &str = "/internal/pools/keys/check";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyCheck {
    key_sha256: String,
    region: String,
}

fn check_key(req: &Request) -> Reply {
    let check: KeyCheck = json_body(req, 1024)?;
    let sha256 = edgeshell_core::bundles::parse_hex32(&check.key_sha256)
        .ok_or_else(|| ApiError::new(ErrorCode::BadSha256, "key_sha256 is 64 hex digits"))?;
    let (key_id, region) = key_owner(&Db::open()?, &sha256)?;
    if region != check.region {
        return Err(ApiError::new(ErrorCode::WrongRegion, format!("this key belongs to region {region}")));
    }
    json(200, &serde_json::json!({ "key_id": key_id, "region": region }))
}

fn heartbeat(req: &Request) -> Reply {
    let key = bearer(req).ok_or_else(|| ApiError::new(ErrorCode::MissingApiKey, "send the pool key as Bearer"))?;
    let db = Db::open()?;
    let (_, key_region) = key_owner(&db, &api_key_hash(&key))?;
    let hb: Heartbeat = json_body(req, MAX_BODY)?;
    if hb.region.as_str() != key_region {
        return Err(ApiError::new(ErrorCode::WrongRegion, format!("this key belongs to region {key_region}")));
    }
    check_agent_name(&hb.agent).map_err(|e| ApiError::new(ErrorCode::BadRequest, e))?;
    if hb.capacity > MAX_RUNNERS || hb.load > MAX_RUNNERS {
        return Err(ApiError::new(ErrorCode::BadCapacity, format!("capacity and load are at most {MAX_RUNNERS}")));
    }
    // What users are shown and mints are checked against: the core's rules, before it is stored.
    if hb.templates.len() > MAX_TEMPLATES {
        return Err(ApiError::new(ErrorCode::BadRequest, format!("at most {MAX_TEMPLATES} templates")));
    }
    hb.templates.iter().try_for_each(TemplateOffer::check).map_err(|e| ApiError::new(ErrorCode::BadRequest, e))?;
    let templates = serde_json::to_string(&hb.templates).map_err(|e| reply::internal(e.to_string()))?;
    let updated = db.transaction(|tx| {
        tx.execute("SET LOCAL synchronous_commit = off", &[])?;
        tx.execute(
            "INSERT INTO pool_agents (region, agent, capacity, load, draining, last_heartbeat, templates)
             VALUES ($1, $2, $3, $4, $5, now(), ($7::text)::jsonb)
             ON CONFLICT (region, agent) DO UPDATE SET capacity = EXCLUDED.capacity,
                 load = EXCLUDED.load, draining = EXCLUDED.draining, last_heartbeat = now(),
                 templates = EXCLUDED.templates
             WHERE pool_agents.last_heartbeat <= now() - make_interval(secs => $6::int8 / 1000.0)",
            &[
                text(hb.region.as_str()),
                text(hb.agent.as_str()),
                ParameterValue::Int32(hb.capacity as i32),
                ParameterValue::Int32(hb.load as i32),
                ParameterValue::Boolean(hb.draining),
                int(MIN_INTERVAL_MS as i64),
                text(templates),
            ],
        )
    })?;
    if updated == 0 {
        return Err(ApiError::new(ErrorCode::RateLimited, "heartbeats come too often"));
    }
    let runners = serde_json::to_string(&hb.runners).map_err(|e| reply::internal(e.to_string()))?;
    let rows = db.query(
        "SELECT r FROM jsonb_array_elements_text(($1::text)::jsonb) AS r
         WHERE NOT EXISTS (SELECT 1 FROM sessions s
                           WHERE s.id = r AND s.region = $2 AND s.state <> 'ended' AND s.expires_at > now())",
        &[text(runners), text(hb.region.as_str())],
    )?;
    let stop = rows
        .iter()
        .map(|r| col::<String>(r, 0))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter_map(|id| edgeshell_core::ids::SessionId::new(id).ok())
        .collect();
    json(200, &HeartbeatAnswer { stop, next_heartbeat_ms: HEARTBEAT_EVERY_MS })
}

fn regions() -> Reply {
    let db = Db::open()?;
    let policy = PlacementPolicy {
        health_ttl: settings::read(|s| s.secs("pool_health_ttl_secs"))?,
        ..PlacementPolicy::default()
    };
    let now: Timestamp = now();
    let regions: Vec<_> = registry::load(&db, policy.health_ttl)?
        .into_iter()
        .map(|pool| {
            let s = pool.status;
            serde_json::json!({
                "region": s.region,
                "available": is_available(&s, &policy, now),
                "capacity": s.capacity,
                "load": s.load,
                "draining": s.draining,
            })
        })
        .collect();
    json(200, &serde_json::json!({ "regions": regions }))
}
