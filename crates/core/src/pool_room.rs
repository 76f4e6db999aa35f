//! The pool room: one per region, where every pool agent of the region keeps one outbound connection
//! and the control plane's commands meet them. Pools dial out (docs/requirements.md#r-pools-dial-out):
//! nothing connects in to an agent, so a pool runs wherever it can reach the edge.
//!
//! The machine ([`StateMachine`]) takes what happens (an agent connected after the edge checked its
//! pool key, an agent's message, an agent gone, a command submitted by the control plane after the
//! edge verified its token, a submitter's wait over) and answers what to do: send a command to an
//! agent, answer a submitter, close an agent's connection, store the ledger. Its rules:
//!
//! - **Placement in the region.** A start goes to one agent that said hello, is not draining and has
//!   room, the least loaded first (its reported load, plus the starts it was handed since). No such
//!   agent: the start is refused at once ([`Reply::NoAgent`]), so the control plane tries the next
//!   region without waiting for a health TTL. An agent whose connection closed or went silent for
//!   [`PoolRoomConfig::silence`] takes nothing more.
//! - **Stops** go to the agent holding the session's runner (from its start's answer, or from what it
//!   reports), else to any ready agent; when that agent is not connected they wait for it
//!   ([`Reply::Queued`]) until [`PoolRoomConfig::queue_ttl`].
//! - **At most once, at least once.** The ledger ([`crate::pool_ledger`]) takes each signed command
//!   once per token id, hands a start out at most once (its agent gone before answering:
//!   [`Reply::AgentLost`], never resent) and a stop until it is answered.
//!
//! Every change to the ledger comes with [`Effect::Store`] before the effects it caused: the host writes
//! what changed ([`PoolRoom::take_changes`]) before anything leaves, so a restarted room never forgets
//! a command it handed out.

use crate::api_error::{ApiError, ErrorCode};
use crate::ids::{RegionId, SessionId};
use crate::issue::{check_body, pool_audience};
use crate::machine::StateMachine;
use crate::pool_api::{AgentMessage, AgentReport, PoolCommand, RoomMessage, MAX_REPORTED_RUNNERS};
use crate::pool_ledger::{CommandId, Holder, Kind, Ledger, LedgerError, Outcome, Payload, State};
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::tokens::{Expectation, Scope, ValidationOptions, Verified};
use core::time::Duration;
use std::collections::BTreeMap;

/// An agent's connection to the room, numbered by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentConn(pub u64);

/// A submitter waiting for its command's answer, numbered by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId(pub u64);

/// The room's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRoomConfig {
    /// An agent not heard from for this long is taken for gone (agents report every
    /// [`crate::pool_api::REPORT_EVERY`]).
    pub silence: Duration,
    /// How long a stop waits for its agent (under a `pool:command` token's lifetime: a later hand-out
    /// would be refused by the agent anyway).
    pub queue_ttl: Duration,
    /// How long an ended command is remembered.
    pub keep: Duration,
}

impl PoolRoomConfig {
    /// The defaults.
    pub const DEFAULT: PoolRoomConfig = PoolRoomConfig {
        silence: Duration::from_secs(10),
        queue_ttl: Duration::from_secs(50),
        keep: Duration::from_secs(120),
    };
}

/// A command the host verified: its `pool:command` token is the control plane's, for this region, for
/// this body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Start or stop.
    pub kind: Kind,
    /// The session it is about.
    pub session: SessionId,
    /// The token's id: taken once.
    pub jti: String,
    /// When the token can no longer verify (its `exp` plus the verifier's leeway).
    pub forget_after: Timestamp,
    /// The token and body, as the agent needs them.
    pub payload: Payload,
}

/// A command submitted to a region's room, read but not yet verified: what its `pool:command` token
/// must satisfy. Both hosts of the room (the edge's Durable Object and `room-host`) verify with their
/// own key cache and verifier, then make the [`Submission`] with [`Submitted::verified`].
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The command the body holds.
    pub command: PoolCommand,
    /// The token's issuer, audience (this region's pools) and leeway.
    pub options: ValidationOptions,
    body: String,
}

impl Submitted {
    /// Reads `body` as a pool command for `region`'s room, whose tokens `issuer` signs. Not a command:
    /// `bad_command`.
    pub fn read(issuer: &str, region: &RegionId, body: String) -> Result<Submitted, ApiError> {
        let command: PoolCommand = serde_json::from_str(&body)
            .map_err(|e| ApiError::new(ErrorCode::BadCommand, format!("not a pool command: {e}")))?;
        let options = ValidationOptions::new(issuer.to_owned(), pool_audience(region));
        Ok(Submitted { command, options, body })
    }

    /// What the token must be: a `pool:command` token for this command's session.
    pub fn expectation(&self) -> Expectation<'_> {
        Expectation { scope: Scope::PoolCommand, session: Some(self.command.session()) }
    }

    /// The command once its token (`token`, verified as [`Submitted::expectation`] says, with
    /// [`Submitted::options`]) is `verified`: the body must be the one the token was signed for (`bh`;
    /// else `forbidden`), and the room keeps its token id until the token can no longer verify (its
    /// `exp` plus the leeway, and a second).
    pub fn verified(self, verified: &Verified, token: Secret) -> Result<Submission, ApiError> {
        check_body(verified, self.body.as_bytes()).map_err(|e| ApiError::new(ErrorCode::Forbidden, e.to_string()))?;
        let claims = verified.claims();
        let kind = match self.command {
            PoolCommand::Start(_) => Kind::Start,
            PoolCommand::Stop { .. } | PoolCommand::Extend { .. } => Kind::ToHolder,
        };
        Ok(Submission {
            kind,
            session: self.command.session().clone(),
            jti: claims.jti.as_str().to_owned(),
            forget_after: Timestamp::from_secs(claims.exp) + self.options.leeway + Duration::from_secs(1),
            payload: Payload { token, body: self.body },
        })
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An agent connected (the edge checked its pool key for this region).
    Connected {
        /// Its connection.
        conn: AgentConn,
        /// Its name, unique in the region.
        agent: String,
    },
    /// An agent sent a message.
    Said {
        /// Its connection.
        conn: AgentConn,
        /// What it said.
        message: AgentMessage,
    },
    /// An agent's connection closed.
    Gone {
        /// Its connection.
        conn: AgentConn,
    },
    /// The control plane submitted a command and waits for its answer.
    Submit {
        /// Who waits.
        waiter: WaiterId,
        /// The command.
        command: Submission,
    },
    /// A submitter stopped waiting.
    WaitOver {
        /// Who waited.
        waiter: WaiterId,
    },
}

/// What a submitter is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The agent's answer: its status and JSON body (the core's error shape when it refused).
    Answered {
        /// The HTTP-style status (201 started, 200 stopped, 409, 503...).
        status: u16,
        /// The JSON body.
        body: String,
    },
    /// A stop waits for the agent holding the session.
    Queued,
    /// No connected agent can take the start.
    NoAgent(String),
    /// This command (its token id) was submitted before.
    Replayed,
    /// The agent went before answering: a start may have happened (stop it), a stop is queued again.
    AgentLost,
    /// The wait was over before an answer came.
    TimedOut,
}

impl Reply {
    /// The submitter's HTTP answer: the agent's own, `202 {"queued":true}` for a queued stop, else a row
    /// of the error table (`no_pool_agent`, `replayed_token`, `pool_agent_lost`, `pool_command_timeout`).
    pub fn into_http(self) -> (u16, String) {
        use crate::api_error::{ApiError, ErrorCode};
        let error = |code, message: &str| {
            let e = ApiError::new(code, message);
            (e.status(), String::from_utf8_lossy(&e.body()).into_owned())
        };
        match self {
            Reply::Answered { status, body } => (status, body),
            Reply::Queued => (202, r#"{"queued":true}"#.to_owned()),
            Reply::NoAgent(why) => error(ErrorCode::NoPoolAgent, &why),
            Reply::Replayed => error(ErrorCode::ReplayedToken, "this command was submitted before"),
            Reply::AgentLost => error(ErrorCode::PoolAgentLost, "the agent went before answering"),
            Reply::TimedOut => error(ErrorCode::PoolCommandTimeout, "the agent did not answer in time"),
        }
    }
}

/// What the host does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write what changed in the ledger ([`PoolRoom::take_changes`]) before any later effect leaves.
    Store,
    /// Send a message to an agent.
    Send {
        /// To whom.
        conn: AgentConn,
        /// What.
        message: RoomMessage,
    },
    /// Answer a submitter.
    Reply {
        /// Who.
        waiter: WaiterId,
        /// What.
        reply: Reply,
    },
    /// Close an agent's connection (superseded, silent, or its hello was refused).
    Close {
        /// Whose.
        conn: AgentConn,
        /// Why, for its log.
        reason: String,
    },
}

/// One connected agent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Agent {
    holder: Holder,
    /// Its last report; `None` until its hello.
    report: Option<AgentReport>,
    last_heard: Timestamp,
    /// Starts handed to it since its last report (its load counts them).
    started_since_report: u32,
}

impl Agent {
    fn ready(&self) -> Option<&AgentReport> {
        self.report.as_ref().filter(|r| !r.draining)
    }

    /// Runners held or starting, as far as the room knows.
    fn load(&self) -> u32 {
        self.report.as_ref().map_or(0, |r| r.load).saturating_add(self.started_since_report)
    }

    /// Whether it has room for one more.
    fn has_room(&self) -> bool {
        self.ready().is_some_and(|r| self.load() < r.capacity)
    }

    /// Its load as a share of its capacity, in thousandths (for the least loaded first).
    fn fill(&self) -> u64 {
        let capacity = self.report.as_ref().map_or(1, |r| r.capacity.max(1));
        u64::from(self.load()) * 1000 / u64::from(capacity)
    }
}

/// A region's pool room.
#[derive(Debug, Clone)]
pub struct PoolRoom {
    config: PoolRoomConfig,
    ledger: Ledger,
    agents: BTreeMap<AgentConn, Agent>,
    waiters: BTreeMap<WaiterId, CommandId>,
}

/// The most agents one room takes (a region's pool rarely has more than a handful).
pub const MAX_AGENTS: usize = 64;

impl PoolRoom {
    /// A room over `ledger` (a new one, or the one its host stored) at `now`: no connection of the
    /// stored ledger exists any more, so what was in flight is settled ([`Ledger::restored`]; the host
    /// stores that with the first event's changes).
    pub fn new(config: PoolRoomConfig, mut ledger: Ledger, now: Timestamp) -> PoolRoom {
        ledger.restored(now);
        PoolRoom { config, ledger, agents: BTreeMap::new(), waiters: BTreeMap::new() }
    }

    /// A new, empty ledger for this configuration.
    pub fn new_ledger(config: &PoolRoomConfig) -> Ledger {
        Ledger::new(config.queue_ttl, config.keep)
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// What changed in the ledger since the last call, for the host to write on [`Effect::Store`].
    pub fn take_changes(&mut self) -> crate::pool_ledger::Changes {
        self.ledger.take_changes()
    }

    /// The connected agents that said hello: name, capacity, load, draining.
    pub fn agents(&self) -> Vec<(String, AgentReport)> {
        self.agents
            .values()
            .filter_map(|a| {
                a.report.as_ref().map(|r| (a.holder.agent.clone(), AgentReport { load: a.load(), ..r.clone() }))
            })
            .collect()
    }

    fn conn_of(&self, agent: &str) -> Option<AgentConn> {
        self.agents.iter().find(|(_, a)| a.holder.agent == agent).map(|(c, _)| *c)
    }

    /// The ready agent with room that is least loaded (ties: by name, so placement is deterministic).
    fn least_loaded(&self, need_room: bool) -> Option<AgentConn> {
        self.agents
            .iter()
            .filter(|(_, a)| if need_room { a.has_room() } else { a.ready().is_some() })
            .min_by(|(_, a), (_, b)| a.fill().cmp(&b.fill()).then_with(|| a.holder.agent.cmp(&b.holder.agent)))
            .map(|(c, _)| *c)
    }

    fn send(&mut self, conn: AgentConn, id: CommandId, payload: Payload, kind: Kind, effects: &mut Vec<Effect>) {
        if kind == Kind::Start {
            if let Some(agent) = self.agents.get_mut(&conn) {
                agent.started_since_report += 1;
            }
        }
        effects.push(Effect::Send {
            conn,
            message: RoomMessage::Command { id: id.0, token: payload.token, body: payload.body },
        });
    }

    /// Hands `conn` every queued command meant for it.
    fn hand_queued(&mut self, conn: AgentConn, now: Timestamp, effects: &mut Vec<Effect>) {
        let Some(holder) = self.agents.get(&conn).map(|a| a.holder.clone()) else { return };
        while let Some((id, kind, _, payload)) = self.ledger.next_for(&holder, now) {
            self.send(conn, id, payload, kind, effects);
        }
    }

    fn submit(&mut self, waiter: WaiterId, command: Submission, now: Timestamp, effects: &mut Vec<Effect>) {
        let Submission { kind, session, jti, forget_after, payload } = command;
        let id = match self.ledger.submit(kind, session.clone(), &jti, forget_after, payload, now) {
            Ok(id) => id,
            Err(LedgerError::Replayed) => {
                effects.push(Effect::Reply { waiter, reply: Reply::Replayed });
                return;
            }
            Err(e) => {
                effects.push(Effect::Reply { waiter, reply: Reply::NoAgent(e.to_string()) });
                return;
            }
        };
        effects.push(Effect::Store);
        let to = match kind {
            Kind::Start => self.least_loaded(true),
            Kind::ToHolder => match self.ledger.holder_of(&session).map(str::to_owned) {
                Some(agent) => self.conn_of(&agent).filter(|c| self.agents.get(c).is_some_and(|a| a.report.is_some())),
                None => self.least_loaded(false),
            },
        };
        match (to, kind) {
            (Some(conn), _) => {
                let Some(holder) = self.agents.get(&conn).map(|a| a.holder.clone()) else { return };
                if let Some(payload) = self.ledger.hand(id, &holder, now) {
                    self.waiters.insert(waiter, id);
                    self.send(conn, id, payload, kind, effects);
                }
            }
            (None, Kind::Start) => {
                let why = if self.agents.values().any(|a| a.ready().is_some()) {
                    "every connected agent of this region is full"
                } else {
                    "no agent of this region is connected and ready"
                };
                self.ledger.refuse(id, why, now);
                effects.push(Effect::Reply { waiter, reply: Reply::NoAgent(why.to_owned()) });
            }
            (None, Kind::ToHolder) => effects.push(Effect::Reply { waiter, reply: Reply::Queued }),
        }
    }

    fn said(&mut self, conn: AgentConn, message: AgentMessage, now: Timestamp, effects: &mut Vec<Effect>) {
        let Some(agent) = self.agents.get_mut(&conn) else { return };
        agent.last_heard = now;
        match message {
            AgentMessage::Hello(report) | AgentMessage::Status(report)
                if report.runners.len() > MAX_REPORTED_RUNNERS =>
            {
                effects
                    .push(Effect::Close { conn, reason: format!("at most {MAX_REPORTED_RUNNERS} runners per report") });
                self.gone(conn, now, effects);
            }
            AgentMessage::Hello(report) => {
                let name = agent.holder.agent.clone();
                agent.report = Some(report.clone());
                agent.started_since_report = 0;
                self.ledger.placed_with(&name, &report.runners);
                effects.push(Effect::Store);
                self.hand_queued(conn, now, effects);
            }
            AgentMessage::Status(report) => {
                if agent.report.is_none() {
                    effects.push(Effect::Close { conn, reason: "a status before the hello".to_owned() });
                    self.gone(conn, now, effects);
                    return;
                }
                let name = agent.holder.agent.clone();
                agent.report = Some(report.clone());
                agent.started_since_report = 0;
                // Stored only when a placement changed: a status every 2 s costs no write otherwise.
                if self.ledger.placed_with(&name, &report.runners) {
                    effects.push(Effect::Store);
                }
                self.hand_queued(conn, now, effects);
            }
            AgentMessage::Answer { id, status, body } => {
                let holder = agent.holder.clone();
                let id = CommandId(id);
                let outcome = if (200..300).contains(&status) { Outcome::Done } else { Outcome::Refused(body.clone()) };
                if self.ledger.answer(&holder, id, outcome, now).is_err() {
                    // Not a command of this connection (a late answer after a reconnect): ignored.
                    return;
                }
                effects.push(Effect::Store);
                let waiting: Vec<WaiterId> = self.waiters.iter().filter(|(_, c)| **c == id).map(|(w, _)| *w).collect();
                for waiter in waiting {
                    self.waiters.remove(&waiter);
                    effects.push(Effect::Reply { waiter, reply: Reply::Answered { status, body: body.clone() } });
                }
            }
        }
    }

    fn gone(&mut self, conn: AgentConn, now: Timestamp, effects: &mut Vec<Effect>) {
        let Some(agent) = self.agents.remove(&conn) else { return };
        let handed: Vec<CommandId> = self
            .waiters
            .values()
            .copied()
            .filter(|id| matches!(self.ledger.state(*id), Some(State::Sent { holder, .. }) if *holder == agent.holder))
            .collect();
        let lost = self.ledger.agent_gone(&agent.holder, now);
        effects.push(Effect::Store);
        let waiting: Vec<(WaiterId, CommandId)> =
            self.waiters.iter().filter(|(_, c)| handed.contains(c)).map(|(w, c)| (*w, *c)).collect();
        for (waiter, id) in waiting {
            self.waiters.remove(&waiter);
            // A start may have happened; a stop waits for the next agent meant for it.
            let reply = if lost.contains(&id) { Reply::AgentLost } else { Reply::Queued };
            effects.push(Effect::Reply { waiter, reply });
        }
        // Stops it had in flight wait for the next agent meant for them; one may be here already.
        let others: Vec<AgentConn> = self.agents.iter().filter(|(_, a)| a.report.is_some()).map(|(c, _)| *c).collect();
        for other in others {
            self.hand_queued(other, now, effects);
        }
    }
}

impl StateMachine for PoolRoom {
    type Event = Event;
    type Effect = Effect;

    fn handle_event(&mut self, event: Event, now: Timestamp) -> Vec<Effect> {
        let mut effects = self.handle_timeout(now);
        match event {
            Event::Connected { conn, agent } => {
                if let Some(old) = self.conn_of(&agent) {
                    effects
                        .push(Effect::Close { conn: old, reason: "a newer connection of this agent took over".into() });
                    self.gone(old, now, &mut effects);
                } else if self.agents.len() >= MAX_AGENTS {
                    effects
                        .push(Effect::Close { conn, reason: format!("this room takes at most {MAX_AGENTS} agents") });
                    return coalesce_stores(effects);
                }
                self.ledger.agent_back(&agent);
                let holder = Holder { agent, connection: self.ledger.next_connection() };
                effects.push(Effect::Store);
                self.agents.insert(conn, Agent { holder, report: None, last_heard: now, started_since_report: 0 });
            }
            Event::Said { conn, message } => self.said(conn, message, now, &mut effects),
            Event::Gone { conn } => self.gone(conn, now, &mut effects),
            Event::Submit { waiter, command } => self.submit(waiter, command, now, &mut effects),
            Event::WaitOver { waiter } => {
                if self.waiters.remove(&waiter).is_some() {
                    effects.push(Effect::Reply { waiter, reply: Reply::TimedOut });
                }
            }
        }
        coalesce_stores(effects)
    }

    fn handle_timeout(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut effects = Vec::new();
        let silent: Vec<AgentConn> = self
            .agents
            .iter()
            .filter(|(_, a)| now.since(a.last_heard) >= self.config.silence)
            .map(|(c, _)| *c)
            .collect();
        for conn in silent {
            effects.push(Effect::Close { conn, reason: "no report within the silence limit".into() });
            self.gone(conn, now, &mut effects);
        }
        if self.ledger.next_tidy().is_some_and(|at| at <= now) {
            self.ledger.tidy(now);
            effects.push(Effect::Store);
        }
        coalesce_stores(effects)
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        let silence = self.agents.values().map(|a| a.last_heard + self.config.silence);
        silence.chain(self.ledger.next_tidy()).min()
    }
}

/// One store, first: the ledger is written once, before anything the event caused leaves.
fn coalesce_stores(effects: Vec<Effect>) -> Vec<Effect> {
    let store = effects.contains(&Effect::Store);
    let mut out: Vec<Effect> = Vec::with_capacity(effects.len());
    if store {
        out.push(Effect::Store);
    }
    out.extend(effects.into_iter().filter(|e| *e != Effect::Store));
    out
}

#[cfg(test)]
mod tests;
