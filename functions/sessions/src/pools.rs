//! Talking to regional pool agents: the registry as placement sees it, and signed start and stop
//! commands. Each command is a `pool:command` token bound to the exact body it authorizes.

use core::time::Duration;
use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::placement::{AttemptOutcome, RegionStatus};
use edgeshell_core::pool_api::{stop_path, PoolCommand, START_PATH};
use edgeshell_core::time::Timestamp;
use edgeshell_fn::db::{col, text, Db};
use edgeshell_fn::outbound::{self, Call, OutboundError};
use edgeshell_fn::platform::{entropy, now};
use edgeshell_fn::reply::Failure;
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
    pub(crate) fn load(db: &Db) -> Result<Registry, Failure> {
        let rows = db.query(
            "SELECT region, endpoint, capacity, load, draining, (extract(epoch FROM last_heartbeat) * 1000)::int8
             FROM pools WHERE last_heartbeat IS NOT NULL",
            &[],
        )?;
        let mut registry = Registry { status: Vec::new(), endpoints: BTreeMap::new() };
        for row in rows {
            let Ok(region) = RegionId::new(col::<String>(&row, 0)?) else { continue };
            registry.endpoints.insert(region.clone(), col(&row, 1)?);
            registry.status.push(RegionStatus {
                region,
                capacity: u32::try_from(col::<i32>(&row, 2)?).unwrap_or(0),
                load: u32::try_from(col::<i32>(&row, 3)?).unwrap_or(u32::MAX),
                draining: col(&row, 4)?,
                last_heartbeat: Timestamp::from_millis(u64::try_from(col::<i64>(&row, 5)?).unwrap_or(0)),
            });
        }
        Ok(registry)
    }

    pub(crate) fn endpoint(&self, region: &RegionId) -> Option<&str> {
        self.endpoints.get(region).map(String::as_str)
    }

    /// The endpoint of one region, read on its own (for stops outside a mint).
    pub(crate) fn endpoint_of(db: &Db, region: &str) -> Result<Option<String>, Failure> {
        Ok(match db.query_opt("SELECT endpoint FROM pools WHERE region = $1", &[text(region)])? {
            Some(row) => Some(col(&row, 0)?),
            None => None,
        })
    }
}

/// Sends a start command; says what became of it.
pub(crate) fn start(
    signing: &Signing,
    endpoint: &str,
    command: &PoolCommand,
    timeout: Duration,
) -> Result<AttemptOutcome, Failure> {
    let region = match command {
        PoolCommand::Start(s) => s.region.clone(),
        PoolCommand::Stop { .. } => return Err(Failure::internal("start called with a stop command")),
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
) -> Result<Result<u16, OutboundError>, Failure> {
    let body = serde_json::to_vec(command).map_err(|e| Failure::internal(format!("encoding a command: {e}")))?;
    let claims = signing.issuer.pool_command(command.session(), region, &body, entropy(), now());
    let authorization = format!("Bearer {}", signing.sign(&claims)?);
    let url = format!("{endpoint}{path}");
    let headers = [("authorization", authorization.as_str()), ("content-type", "application/json")];
    let call = Call { post: true, url: &url, headers: &headers, body: &body, timeout, max_body: 64 * 1024 };
    Ok(outbound::send(&call).map(|answer| answer.status))
}
