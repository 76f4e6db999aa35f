//! `POST /api/sessions`: mint a session.
//!
//! 1. Authenticate the user's ID token. 2. Reserve: under a per-user advisory lock, check the quotas and
//!    record the session as `starting` (so concurrent mints cannot both pass the limit). 3. Place: the
//!    core orders healthy regions by the client's hint and RTTs; each candidate's pool is asked to start
//!    the runner with a signed command; a region that times out is told to stop before the next is tried.
//! 4. Record the session as `running` and answer the attach token.
//!
//! A mint that fails after the reservation deletes its row, so it leaves no half-made session; a runner
//! that may have started is stopped, so it leaves no orphan.

use crate::config::Config;
use crate::pools::{self, Registry};
use core::time::Duration;
use edgeshell_core::ids::{RegionId, SessionId, Subject};
use edgeshell_core::issue::session_id;
use edgeshell_core::lifetime::Terms;
use edgeshell_core::placement::{candidates, ClientLocation, FailoverPlan, PlacementError, Step};
use edgeshell_core::pool_api::{attach_path, join_path, PoolCommand, StartRunner};
use edgeshell_core::quotas::{QuotaPolicy, QuotaUsage};
use edgeshell_core::repo::RepoRequest;
use edgeshell_core::templates::{DEFAULT_TEMPLATE, MAX_ENV_TOTAL};
use edgeshell_core::time::Timestamp;
use edgeshell_fn::db::{col, text, Db};
use edgeshell_fn::identity::authenticate;
use edgeshell_fn::platform::{entropy, now, Spent};
use edgeshell_fn::ratelimit;
use edgeshell_fn::reply::{self, json_with, ApiError, ErrorCode};
use edgeshell_fn::request::json_body;
use edgeshell_fn::request::Request;
use edgeshell_fn::signing::Signing;
use edgeshell_fn::Reply;
use serde::{Deserialize, Serialize};
use spin_sdk::pg4::ParameterValue;
use std::collections::BTreeMap;

/// What the client may say about where it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    /// A region the user picked.
    #[serde(default)]
    region_hint: Option<String>,
    /// Measured round-trip times per region, in milliseconds.
    #[serde(default)]
    rtts: BTreeMap<String, u64>,
    /// How long the session should live, within the operator's longest (the default when absent).
    #[serde(default)]
    lifetime_secs: Option<u64>,
    /// The template to start (`GET /api/templates`); absent, `default`.
    #[serde(default)]
    template: Option<String>,
    /// Variables to set, each one the template lets users set.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// A repository to clone into the work directory, from a host the template allows.
    #[serde(default)]
    repo: Option<RepoRequest>,
}

/// The largest mint body: the variables' bounds and some room for the rest.
const MAX_MINT_BODY: usize = MAX_ENV_TOTAL + 8 * 1024;

/// The answer of a successful mint.
#[derive(Serialize)]
pub(crate) struct Minted {
    pub(crate) session_id: SessionId,
    pub(crate) region: RegionId,
    /// Where the browser attaches (WebSocket); the token goes in `Sec-WebSocket-Protocol`.
    pub(crate) ws_url: String,
    /// The attach token.
    pub(crate) token: String,
    /// When the attach token expires (seconds since the epoch).
    pub(crate) expires_at: u64,
    /// When the session ends at the latest.
    pub(crate) session_expires_at: u64,
}

pub(crate) fn mint(req: &Request) -> Reply {
    let total = Spent::default();
    let (minted, signing, db, placing, steps) = total.time(|| mint_timed(req))?;
    // Where the time went, for browsers' devtools and the benchmarks.
    let timing = [
        total.entry("total", "mint"),
        steps.0.entry("keys", "signing key loads"),
        steps.1.entry("identity", "ID token checks"),
        signing.spent.entry("sign", "RS256 signatures"),
        db.spent.entry("db", "statements"),
        placing.entry("place", "placements"),
    ]
    .join(", ");
    json_with(201, &minted, &[("server-timing", timing)])
}

/// Time spent loading the signing key and checking the ID token.
type Steps = (Spent, Spent);

fn mint_timed(req: &Request) -> Result<(Minted, Signing, Db, Spent, Steps), ApiError> {
    let config = Config::load()?;
    let steps: Steps = Default::default();
    let signing = steps.0.time(Signing::load)?;
    let db = Db::open()?;
    // Who is calling comes first: an unauthenticated caller's body is never read.
    let user = steps.1.time(|| authenticate(req, &db))?;
    let input: MintRequest = json_body(req, MAX_MINT_BODY)?;
    let bad = |what: &str, e: String| ApiError::new(ErrorCode::BadRequest, format!("{what}: {e}"));
    let hint = input.region_hint.map(RegionId::new).transpose().map_err(|e| bad("region_hint", e.to_string()))?;
    let rtts = input
        .rtts
        .into_iter()
        .map(|(region, ms)| {
            Ok((RegionId::new(region).map_err(|e| bad("rtts", e.to_string()))?, Duration::from_millis(ms)))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let now = now();
    let terms =
        config.lifetime.terms_at_mint(input.lifetime_secs, now).map_err(|e| bad("lifetime_secs", e.to_string()))?;
    // The template and its variables are checked before anything is reserved; placement then only
    // considers the regions offering it.
    let template = input.template.unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());
    let registry = Registry::load(&db, config.placement.health_ttl)?;
    let allowed = registry.offers.resolve(&template, &input.env, input.repo.as_ref()).map_err(|e| e.to_api_error())?;
    let registry = registry.only(&allowed);
    let program = Program { template, env: input.env, repo: input.repo };
    let mut sid = session_id(entropy());
    reserve(&db, (&user.subject, &sid, &program.template), terms.deadline(), &config.quota, now)?;
    let placing = Spent::default();
    let client = ClientLocation { hint: hint.as_ref(), rtts: &rtts };
    let placed = placing
        .time(|| place(&db, &signing, &config, (&mut sid, terms), (registry, &program), client, now))
        .and_then(|region| match record(&db, &user.subject, &sid, &region) {
            Ok(()) => Ok(region),
            Err(e) => {
                pools::stop(&signing, &region, &sid, "the mint failed");
                Err(e)
            }
        });
    let region = match placed {
        Ok(region) => region,
        Err(e) => {
            let _ = db.execute("DELETE FROM sessions WHERE id = $1", &[text(sid.as_str())]);
            return Err(e);
        }
    };
    let claims =
        signing.issuer.attach_for(&user.subject, (&sid, &region), terms, entropy(), now, config.attach_token_secs);
    let minted = Minted {
        ws_url: format!("{}{}", config.edge_url, attach_path(&sid)),
        token: signing.sign(&claims)?,
        expires_at: claims.exp,
        session_expires_at: terms.ends,
        session_id: sid,
        region,
    };
    Ok((minted, signing, db, placing, steps))
}

/// What the session runs: the template and the user's variables.
struct Program {
    template: String,
    env: BTreeMap<String, String>,
    repo: Option<RepoRequest>,
}

/// Checks the quotas and records the session as `starting`, atomically per user.
fn reserve(
    db: &Db,
    (owner, sid, template): (&Subject, &SessionId, &str),
    deadline: Timestamp,
    quota: &QuotaPolicy,
    now: Timestamp,
) -> Result<(), ApiError> {
    db.transaction(|tx| {
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", &[text(owner.as_str())])?;
        let bucket = format!("mint:{owner}");
        let mints = ratelimit::lock_and_read(tx, &bucket)?;
        let row = tx
            .query_opt(
                "SELECT count(*) FROM sessions WHERE owner = $1 AND state <> 'ended' AND expires_at > now()",
                &[text(owner.as_str())],
            )?
            .ok_or_else(|| reply::internal("quota query returned no row"))?;
        let usage = QuotaUsage { live_sessions: u32::try_from(col::<i64>(&row, 0)?).unwrap_or(u32::MAX), mints };
        let next = quota
            .check_mint(usage, now)
            .map_err(|e| ApiError::new(ErrorCode::QuotaExceeded, e.to_string()).retry_after(e.retry_after_secs()))?;
        ratelimit::store(tx, &bucket, next)?;
        // Created at the whole second the deadline counts from: the longest lifetime an extension may
        // reach counts from `created_at`, so both use the same clock.
        tx.execute(
            "INSERT INTO sessions (id, owner, state, created_at, expires_at, template)
             VALUES ($2, $1, 'starting', to_timestamp($4), to_timestamp($3), $5)",
            &[
                text(owner.as_str()),
                text(sid.as_str()),
                ParameterValue::Floating64(deadline.as_secs() as f64),
                ParameterValue::Floating64(now.as_secs() as f64),
                text(template),
            ],
        )?;
        Ok(())
    })
}

/// Places the session and starts its runner; returns the region and its pool's endpoint.
///
/// Each region tried after the first gets a new session id (the reserved row follows it): a start that
/// timed out may still reach its pool later, and the runner it starts then joins a room no browser will
/// attach to (it ends at the join timeout) instead of taking over the session, and its pool reaps it at
/// the next heartbeat because no live session of that id is in that region.
fn place(
    db: &Db,
    signing: &Signing,
    config: &Config,
    (sid, terms): (&mut SessionId, Terms),
    (registry, program): (Registry, &Program),
    client: ClientLocation<'_>,
    now: Timestamp,
) -> Result<RegionId, ApiError> {
    let unavailable = |e: PlacementError| ApiError::new(ErrorCode::NoRegionAvailable, e.to_string());
    let mut plan =
        FailoverPlan::new(candidates(&registry.status, client, &config.placement, now).map_err(unavailable)?);
    let mut tried: Vec<(RegionId, SessionId)> = Vec::new();
    loop {
        match plan.step() {
            Step::Start(region) => {
                let id = if tried.is_empty() { sid.clone() } else { session_id(entropy()) };
                db.execute(
                    "UPDATE sessions SET id = $2, region = $3 WHERE id = $1",
                    &[text(sid.as_str()), text(id.as_str()), text(region.as_str())],
                )?;
                *sid = id;
                tried.push((region.clone(), sid.clone()));
                let sid = &*sid;
                let join = signing.issuer.join((sid, &region), terms, entropy(), now);
                // Uploads need a live session as well: the token is of no use once it has ended.
                let upload =
                    signing.issuer.artifact_put((sid, &region), config.lifetime.latest_end(now), entropy(), now);
                let command = PoolCommand::Start(StartRunner {
                    session_id: sid.clone(),
                    region: region.clone(),
                    join_url: format!("{}{}", config.edge_url, join_path(sid)),
                    join_token: signing.sign(&join)?.into(),
                    upload_token: Some(signing.sign(&upload)?.into()),
                    deadline: terms.ends,
                    template: program.template.clone(),
                    env: program.env.clone(),
                    repo: program.repo.clone(),
                });
                plan.record(pools::start(signing, &command, config.pool_timeout)?);
            }
            Step::Stop(region) => {
                let attempt = tried.iter().rev().find(|(r, _)| *r == region).map(|(_, id)| id);
                if let Some(id) = attempt {
                    let wait = pools::FAILOVER_STOP_WAIT;
                    pools::stop_within(signing, &region, id, "start timed out; placed elsewhere", wait);
                }
            }
            Step::Placed(region) => return Ok(region),
            Step::Failed(e) => return Err(unavailable(e)),
        }
    }
}

/// Marks the session running and audits the start. One statement is atomic on its own: one round trip,
/// and no connection held for a transaction where the host shares connections. The audit row is
/// committed durably before the mint answers. A session that ended while its runner was starting
/// stays ended (`session_ended`).
fn record(db: &Db, owner: &Subject, sid: &SessionId, region: &RegionId) -> Result<(), ApiError> {
    let audited = db.execute(
        "WITH started AS (
             UPDATE sessions SET state = 'running', region = $2 WHERE id = $1 AND state = 'starting'
             RETURNING id, template
         )
         INSERT INTO audit_log (actor, action, session_id, detail)
         SELECT $3, 'session.start', id, jsonb_build_object('region', $2::text, 'template', template)
         FROM started",
        &[text(sid.as_str()), text(region.as_str()), text(owner.as_str())],
    )?;
    if audited != 1 {
        return Err(ApiError::new(ErrorCode::SessionEnded, "the session ended while it was starting"));
    }
    Ok(())
}

/// `GET /api/templates`: what the caller may start, in the operator's order, each with the regions
/// offering it now.
pub(crate) fn templates(req: &Request) -> Reply {
    let config = Config::load()?;
    let db = Db::open()?;
    authenticate(req, &db)?;
    let registry = Registry::load(&db, config.placement.health_ttl)?;
    reply::json(200, &serde_json::json!({ "templates": registry.offers.list(), "default": DEFAULT_TEMPLATE }))
}
