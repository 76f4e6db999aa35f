//! Talking to regional pools, which dial out to the edge: the registry as placement sees it, and signed
//! start and stop commands, each submitted with one request to the region's pool room at the edge
//! (`POST {edge_origin}/internal/pools/{region}/commands`, internal key). The room hands the command to
//! one of the region's connected agents and answers with the agent's answer, or at once when no agent
//! can take it. Each command is a `pool:command` token bound to the exact body it authorizes.

use core::time::Duration;
use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::placement::{AttemptOutcome, RegionStatus};
use edgeshell_core::pool_api::{pool_commands_path, CommandRequest, PoolCommand};
use edgeshell_core::templates::Offers;
use edgeshell_fn::db::Db;
use edgeshell_fn::outbound::{self, Call, OutboundError};
use edgeshell_fn::platform::{entropy, now};
use edgeshell_fn::registry;
use edgeshell_fn::reply::{self, ApiError};
use edgeshell_fn::signing::Signing;

/// Stop commands are best effort and must not hold a request long.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// A stop after a start given up on: the pool room delivers it whether or not the mint waits for the
/// answer (it resends a stop until an agent answers), so the mint only waits to see it handed out.
pub(crate) const FAILOVER_STOP_WAIT: Duration = Duration::from_millis(300);
/// The edge's own time on top of the agent's wait (its answer must arrive before we give up).
const EDGE_MARGIN: Duration = Duration::from_millis(500);

/// Registered pools: their status for placement, and the templates they offer.
pub(crate) struct Registry {
    pub(crate) status: Vec<RegionStatus>,
    pub(crate) offers: Offers,
}

impl Registry {
    pub(crate) fn load(db: &Db, health_ttl: Duration) -> Result<Registry, ApiError> {
        let pools = registry::load(db, health_ttl)?;
        let stale: Vec<_> = pools.iter().flat_map(|p| p.stale.iter().cloned()).collect();
        let offers =
            Offers::new(pools.iter().map(|p| (p.status.region.clone(), p.offers.clone())).collect()).with_stale(&stale);
        Ok(Registry { status: pools.into_iter().map(|p| p.status).collect(), offers })
    }

    /// Only the regions in `allowed` (those offering the session's template).
    pub(crate) fn only(mut self, allowed: &[RegionId]) -> Registry {
        self.status.retain(|s| allowed.contains(&s.region));
        self
    }
}

/// Sends a start command; says what became of it.
pub(crate) fn start(signing: &Signing, command: &PoolCommand, timeout: Duration) -> Result<AttemptOutcome, ApiError> {
    let region = match command {
        PoolCommand::Start(s) => s.region.clone(),
        PoolCommand::Stop { .. } | PoolCommand::Extend { .. } => {
            return Err(reply::internal("start called with another command"))
        }
    };
    let outcome = match send(signing, &region, command, timeout)? {
        Ok(200..=299) => AttemptOutcome::Started,
        // The agent may have carried it out (lost, timed out, or an edge failure mid-wait): stop it
        // before going on. A 503 is a clean refusal (no agent with room, at capacity, draining).
        Ok(status @ (500..=502 | 504..=599)) => {
            eprintln!("sessions: pool {region} lost the start of {} ({status})", command.session());
            AttemptOutcome::TimedOut
        }
        // The agent or the room answered no: nothing was started.
        Ok(status) => {
            eprintln!("sessions: pool {region} refused the start of {} with {status}", command.session());
            AttemptOutcome::Refused
        }
        Err(OutboundError::NotConnected(m)) => {
            eprintln!("sessions: the edge is unreachable for pool {region}: {m}");
            AttemptOutcome::Refused
        }
        Err(OutboundError::Denied) => {
            eprintln!("sessions: edge_origin is not in allowed_outbound_hosts");
            AttemptOutcome::Refused
        }
        // It may have started the runner: the plan stops it before trying elsewhere.
        Err(e) => {
            eprintln!("sessions: pool {region} did not answer the start of {}: {e}", command.session());
            AttemptOutcome::TimedOut
        }
    };
    Ok(outcome)
}

/// Tells a pool to stop a session's runner; true when an agent confirmed, or the stop waits at the edge
/// for the agent holding the runner (202).
pub(crate) fn stop(signing: &Signing, region: &RegionId, session: &SessionId, reason: &str) -> bool {
    stop_within(signing, region, session, reason, STOP_TIMEOUT)
}

/// Tells a pool a session's runner's new deadline; true when an agent confirmed, or the command waits
/// at the edge for the agent holding the runner (202).
pub(crate) fn extend(signing: &Signing, region: &RegionId, session: &SessionId, deadline: u64) -> bool {
    let command = PoolCommand::Extend { session_id: session.clone(), deadline };
    match send(signing, region, &command, STOP_TIMEOUT) {
        Ok(Ok(200..=299)) => true,
        other => {
            eprintln!("sessions: extending {session} in {region} failed: {other:?}");
            false
        }
    }
}

/// [`stop`], waiting at most `wait` for the agent's answer.
pub(crate) fn stop_within(
    signing: &Signing,
    region: &RegionId,
    session: &SessionId,
    reason: &str,
    wait: Duration,
) -> bool {
    let command = PoolCommand::Stop { session_id: session.clone(), reason: reason.to_owned() };
    match send(signing, region, &command, wait) {
        Ok(Ok(200..=299)) => true,
        other => {
            eprintln!("sessions: stopping {session} in {region} failed: {other:?}");
            false
        }
    }
}

fn send(
    signing: &Signing,
    region: &RegionId,
    command: &PoolCommand,
    wait: Duration,
) -> Result<Result<u16, OutboundError>, ApiError> {
    let (origin, key) =
        edgeshell_fn::settings::read(|s| Ok((s.required("edge_origin")?, s.bearer_key("internal_api_key")?)))?;
    let body = serde_json::to_string(command).map_err(|e| reply::internal(format!("encoding a command: {e}")))?;
    let claims = signing.issuer.pool_command(command.session(), region, body.as_bytes(), entropy(), now());
    let token = signing.sign(&claims)?;
    let request = CommandRequest { token: token.into(), body, wait_ms: wait.as_millis() as u64 };
    let request = serde_json::to_vec(&request).map_err(|e| reply::internal(format!("encoding a command: {e}")))?;
    let url = format!("{}{}", origin.trim_end_matches('/'), pool_commands_path(region));
    let authorization = format!("Bearer {key}");
    let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    let call = Call {
        post: true,
        url: &url,
        headers: &headers,
        body: &request,
        timeout: wait + EDGE_MARGIN,
        max_body: 64 * 1024,
    };
    Ok(outbound::send(&call).map(|answer| answer.status))
}
