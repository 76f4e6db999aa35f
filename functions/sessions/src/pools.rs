//! Talking to regional pool agents: the registry as placement sees it, and signed start and stop
//! commands. Each command is a `pool:command` token bound to the exact body it authorizes.

use core::time::Duration;
use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::placement::{AttemptOutcome, RegionStatus};
use edgeshell_core::pool_api::{stop_path, PoolCommand, START_PATH};
use edgeshell_fn::db::Db;
use edgeshell_fn::outbound::{self, Call, OutboundError};
use edgeshell_fn::platform::{entropy, now};
use edgeshell_fn::registry;
use edgeshell_fn::reply::{self, ApiError};
use edgeshell_fn::signing::Signing;
use std::collections::BTreeMap;

/// Stop commands are best effort and must not hold a request long.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Registered pools: their status for placement, and where to reach them.
pub(crate) struct Registry {
    pub(crate) status: Vec<RegionStatus>,
    endpoints: BTreeMap<RegionId, String>,
}

impl Registry {
    pub(crate) fn load(db: &Db) -> Result<Registry, ApiError> {
        let pools = registry::load(db)?;
        let endpoints = pools.iter().map(|p| (p.status.region.clone(), p.endpoint.clone())).collect();
        Ok(Registry { status: pools.into_iter().map(|p| p.status).collect(), endpoints })
    }

    pub(crate) fn endpoint(&self, region: &RegionId) -> Option<&str> {
        self.endpoints.get(region).map(String::as_str)
    }
}

/// Sends a start command; says what became of it.
pub(crate) fn start(
    signing: &Signing,
    endpoint: &str,
    command: &PoolCommand,
    timeout: Duration,
) -> Result<AttemptOutcome, ApiError> {
    let region = match command {
        PoolCommand::Start(s) => s.region.clone(),
        PoolCommand::Stop { .. } => return Err(reply::internal("start called with a stop command")),
    };
    let outcome = match send(signing, endpoint, &region, START_PATH, command, timeout)? {
        Ok(200..=299) => AttemptOutcome::Started,
        // The pool answered no: nothing was started.
        Ok(status) => {
            eprintln!("sessions: pool {region} refused the start of {} with {status}", command.session());
            AttemptOutcome::Refused
        }
        Err(OutboundError::NotConnected(m)) => {
            eprintln!("sessions: pool {region} unreachable: {m}");
            AttemptOutcome::Refused
        }
        Err(OutboundError::Denied) => {
            eprintln!("sessions: pool {region} at {endpoint} is not in allowed_outbound_hosts");
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

/// Tells a pool to stop a session's runner; true when the pool confirmed.
pub(crate) fn stop(signing: &Signing, endpoint: &str, region: &RegionId, session: &SessionId, reason: &str) -> bool {
    let command = PoolCommand::Stop { session_id: session.clone(), reason: reason.to_owned() };
    match send(signing, endpoint, region, &stop_path(session), &command, STOP_TIMEOUT) {
        Ok(Ok(200..=299)) => true,
        other => {
            eprintln!("sessions: stopping {session} in {region} failed: {other:?}");
            false
        }
    }
}

fn send(
    signing: &Signing,
    endpoint: &str,
    region: &RegionId,
    path: &str,
    command: &PoolCommand,
    timeout: Duration,
) -> Result<Result<u16, OutboundError>, ApiError> {
    let body = serde_json::to_vec(command).map_err(|e| reply::internal(format!("encoding a command: {e}")))?;
    let claims = signing.issuer.pool_command(command.session(), region, &body, entropy(), now());
    let authorization = format!("Bearer {}", signing.sign(&claims)?);
    let url = format!("{endpoint}{path}");
    let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    let call = Call { post: true, url: &url, headers: &headers, body: &body, timeout, max_body: 64 * 1024 };
    Ok(outbound::send(&call).map(|answer| answer.status))
}
