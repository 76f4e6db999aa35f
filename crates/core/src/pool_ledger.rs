//! The command ledger of a region's pool room: the durable record, kept by the one Durable Object that
//! every pool agent of a region dials out to, of which commands were handed to which agent and what
//! came of them. It is the dial-out pool channel's replay protection:
//!
//! - a command is taken once per token id (`jti`): the same signed command submitted again, while its
//!   token could still verify, is refused ([`LedgerError::Replayed`]), even after the room restarted
//!   (the ledger is stored) and whatever became of the first;
//! - a **start** is handed to an agent at most once, ever: if that agent goes before answering, the
//!   start ends as [`Outcome::Unknown`] and is never handed out again, to it or to another agent;
//! - a **stop** is handed out until an agent acknowledges it: one that was in flight when its agent
//!   went is queued again, for the agent that holds the session's runner (or any, when none is known);
//! - an answer counts only from the agent connection the command was handed to, and only once.
//!
//! A command keeps what the agent needs to carry it out (its signed token and exact body): a start until
//! it is handed out (it is never queued, so a join token is not kept), a stop until it is answered.
//!
//! I/O-free like the rest of the core: the pool room ([`crate::pool_room`]) feeds it what happens and
//! its host stores it (it is `serde`).

use crate::ids::SessionId;
use crate::secret::Secret;
use crate::time::Timestamp;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A command's id, unique in its region's ledger and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommandId(pub u64);

/// Which agent connection a command went to: the agent's name and the number of its connection, so a
/// reconnected agent is a new holder (what it had in flight before is settled by [`Ledger::agent_gone`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Holder {
    /// The agent's name (unique in its region).
    pub agent: String,
    /// Its connection, counted by the ledger ([`Ledger::next_connection`]).
    pub connection: u64,
}

/// What a command asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Start the session's runner: at most once.
    Start,
    /// Stop the session's runner: at least once.
    Stop,
}

/// What an agent needs to carry a command out: the control plane's signed `pool:command` token and the
/// exact body it is bound to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The `pool:command` token.
    pub token: Secret,
    /// The command's JSON, byte for byte as signed.
    pub body: String,
}

impl core::fmt::Debug for Payload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Payload").field("token", &self.token).field("body_bytes", &self.body.len()).finish()
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The agent did it (started the runner, or stopped it or found nothing to stop).
    Done,
    /// The agent refused, with its reason (no capacity, a bad command); or no agent could take it.
    Refused(String),
    /// A start whose agent went before answering: it may or may not have started, and is never handed
    /// out again.
    Unknown,
    /// Nobody took it before it expired.
    Expired,
}

/// Where a command stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Waiting for an agent.
    Queued,
    /// Handed to `holder` at `at`, not answered yet.
    Sent {
        /// The agent connection it went to.
        holder: Holder,
        /// When.
        at: Timestamp,
    },
    /// Ended.
    Ended(Outcome),
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// What it asks.
    pub kind: Kind,
    /// About which session.
    pub session: SessionId,
    /// Where it stands.
    pub state: State,
    /// What the agent needs, while it is queued.
    pub payload: Option<Payload>,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When it ended, once it has.
    pub ended_at: Option<Timestamp>,
}

impl Entry {
    /// The payload as it leaves with a hand-out: a start's is taken (it carries the runner's join token and
    /// is never handed out again), a stop's is kept for the next agent should this one go.
    fn handed_payload(&mut self) -> Option<Payload> {
        match self.kind {
            Kind::Start => self.payload.take(),
            Kind::Stop => self.payload.clone(),
        }
    }
}

/// Why a submit or an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// No such command (never submitted, or forgotten after it ended).
    #[error("no command {0:?} in the ledger")]
    Unknown(CommandId),
    /// The command was not handed to this agent connection.
    #[error("command {0:?} was not handed to this agent")]
    NotYours(CommandId),
    /// A command with this token id was taken before.
    #[error("this command was submitted before (its token id was already used)")]
    Replayed,
}

/// The ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    next: u64,
    connections: u64,
    entries: BTreeMap<CommandId, Entry>,
    /// Token ids taken, with when they may be forgotten (their token can no longer verify).
    used: BTreeMap<String, Timestamp>,
    /// Which agent holds each session's runner (or was handed its start), as far as the room heard.
    placed: BTreeMap<SessionId, String>,
    /// Agents with no connection, since when: their placements are released after `keep`, so stops
    /// of their sessions go to any agent (on Kubernetes any agent of the region can stop any runner).
    #[serde(default)]
    gone: BTreeMap<String, Timestamp>,
    /// How long a queued command waits for an agent before it expires.
    queue_ttl: Duration,
    /// How long an ended command is remembered (answers to it are then refused as unknown).
    keep: Duration,
}

impl Ledger {
    /// An empty ledger: queued commands wait `queue_ttl` for an agent; ended ones are kept `keep`.
    pub fn new(queue_ttl: Duration, keep: Duration) -> Ledger {
        Ledger {
            next: 1,
            connections: 0,
            entries: BTreeMap::new(),
            used: BTreeMap::new(),
            placed: BTreeMap::new(),
            gone: BTreeMap::new(),
            queue_ttl,
            keep,
        }
    }

    /// The number of a new agent connection (never reused, also across restarts of the room).
    pub fn next_connection(&mut self) -> u64 {
        self.connections += 1;
        self.connections
    }

    /// Records a new command, taken once per token id `jti` (remembered until `forget_after`, when its
    /// token can no longer verify); it waits for an agent with its `payload`.
    pub fn submit(
        &mut self,
        kind: Kind,
        session: SessionId,
        jti: &str,
        forget_after: Timestamp,
        payload: Payload,
        now: Timestamp,
    ) -> Result<CommandId, LedgerError> {
        if self.used.contains_key(jti) {
            return Err(LedgerError::Replayed);
        }
        self.used.insert(jti.to_owned(), forget_after);
        let id = CommandId(self.next);
        self.next += 1;
        let entry =
            Entry { kind, session, state: State::Queued, payload: Some(payload), created_at: now, ended_at: None };
        self.entries.insert(id, entry);
        Ok(id)
    }

    /// Hands queued command `id` to `holder`; answers its payload (`None` when it is not queued). A start
    /// places its session with the agent at once (tentatively, until its answer), so a stop sent while
    /// it is in flight, or after it was lost, goes to the agent that may hold the runner.
    pub fn hand(&mut self, id: CommandId, holder: &Holder, now: Timestamp) -> Option<Payload> {
        let entry = self.entries.get_mut(&id).filter(|e| e.state == State::Queued && e.payload.is_some())?;
        entry.state = State::Sent { holder: holder.clone(), at: now };
        if entry.kind == Kind::Start {
            self.placed.insert(entry.session.clone(), holder.agent.clone());
        }
        entry.handed_payload()
    }

    /// The room restarted (its object was evicted, or its storage failed): every connection it handed
    /// commands to is gone. Unanswered starts end as [`Outcome::Unknown`], unanswered stops wait for
    /// the next agent, and every agent counts as gone from `now`. Returns the starts that ended so.
    pub fn restored(&mut self, now: Timestamp) -> Vec<CommandId> {
        let holders: Vec<Holder> = self
            .entries
            .values()
            .filter_map(|e| match &e.state {
                State::Sent { holder, .. } => Some(holder.clone()),
                _ => None,
            })
            .collect();
        let mut unknown = Vec::new();
        for holder in holders {
            unknown.extend(self.agent_gone(&holder, now));
        }
        let agents: Vec<String> = self.placed.values().cloned().collect();
        for agent in agents {
            self.gone.entry(agent).or_insert(now);
        }
        unknown
    }

    /// An agent connected: its placements stay.
    pub fn agent_back(&mut self, agent: &str) {
        self.gone.remove(agent);
    }

    /// Ends queued command `id` without handing it out (no agent could take it).
    pub fn refuse(&mut self, id: CommandId, why: &str, now: Timestamp) {
        if let Some(entry) = self.entries.get_mut(&id).filter(|e| e.state == State::Queued) {
            entry.state = State::Ended(Outcome::Refused(why.to_owned()));
            entry.payload = None;
            entry.ended_at = Some(now);
        }
    }

    /// The oldest queued command `holder` should carry out (one for a session it holds, or for a
    /// session nobody is known to hold), now handed to it.
    pub fn next_for(&mut self, holder: &Holder, now: Timestamp) -> Option<(CommandId, Kind, SessionId, Payload)> {
        let placed = &self.placed;
        let (id, entry) = self.entries.iter_mut().find(|(_, e)| {
            e.state == State::Queued
                && e.payload.is_some()
                && placed.get(&e.session).is_none_or(|agent| *agent == holder.agent)
        })?;
        entry.state = State::Sent { holder: holder.clone(), at: now };
        let payload = entry.handed_payload()?;
        Some((*id, entry.kind, entry.session.clone(), payload))
    }

    /// Takes `holder`'s answer to `id`. A second answer to an ended command is accepted and changes
    /// nothing; an answer from another agent connection is refused. A start done places the session with
    /// the agent; a stop done removes it.
    pub fn answer(
        &mut self,
        holder: &Holder,
        id: CommandId,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        let entry = self.entries.get_mut(&id).ok_or(LedgerError::Unknown(id))?;
        match &entry.state {
            State::Sent { holder: to, .. } if to == holder => {
                match (entry.kind, &outcome) {
                    (Kind::Start, Outcome::Done) => {
                        self.placed.insert(entry.session.clone(), holder.agent.clone());
                    }
                    // Refused: nothing was started there.
                    (Kind::Start, Outcome::Refused(_)) if self.placed.get(&entry.session) == Some(&holder.agent) => {
                        self.placed.remove(&entry.session);
                    }
                    (Kind::Stop, Outcome::Done) => {
                        self.placed.remove(&entry.session);
                    }
                    _ => {}
                }
                entry.state = State::Ended(outcome);
                entry.payload = None;
                entry.ended_at = Some(now);
                Ok(())
            }
            State::Ended(_) => Ok(()),
            State::Queued | State::Sent { .. } => Err(LedgerError::NotYours(id)),
        }
    }

    /// `holder`'s connection is gone: its unanswered starts end as [`Outcome::Unknown`] (never handed
    /// out again), its unanswered stops wait for the next agent. Returns the starts that ended so.
    pub fn agent_gone(&mut self, holder: &Holder, now: Timestamp) -> Vec<CommandId> {
        self.gone.entry(holder.agent.clone()).or_insert(now);
        let mut unknown = Vec::new();
        for (id, entry) in &mut self.entries {
            if !matches!(&entry.state, State::Sent { holder: to, .. } if to == holder) {
                continue;
            }
            match entry.kind {
                Kind::Start => {
                    entry.state = State::Ended(Outcome::Unknown);
                    entry.ended_at = Some(now);
                    unknown.push(*id);
                }
                // Its payload went with it; the agent's answer is what counts, so the stop waits until
                // the agent (or a sibling, for a session nobody holds) comes to ask.
                Kind::Stop => entry.state = State::Queued,
            }
        }
        unknown
    }

    /// The agent that holds `session`'s runner, as far as the room heard.
    pub fn holder_of(&self, session: &SessionId) -> Option<&str> {
        self.placed.get(session).map(String::as_str)
    }

    /// An agent reports holding `session`'s runner (its hello or status).
    pub fn place(&mut self, session: SessionId, agent: &str) {
        if self.placed.get(&session).is_none_or(|a| a != agent) {
            self.placed.insert(session, agent.to_owned());
        }
    }

    /// An agent reports exactly these sessions (and those it was handed a start for since, still in
    /// flight): those it no longer lists are no longer placed with it. True when anything changed.
    pub fn placed_with(&mut self, agent: &str, sessions: &[SessionId]) -> bool {
        let listed: std::collections::BTreeSet<&SessionId> = sessions.iter().collect();
        let in_flight: std::collections::BTreeSet<SessionId> = self
            .entries
            .values()
            .filter(|e| {
                e.kind == Kind::Start && matches!(&e.state, State::Sent { holder, .. } if holder.agent == agent)
            })
            .map(|e| e.session.clone())
            .collect();
        let before = self.placed.len();
        self.placed.retain(|s, a| a != agent || listed.contains(s) || in_flight.contains(s));
        let mut changed = self.placed.len() != before;
        for s in sessions {
            if self.placed.get(s).is_none_or(|a| a != agent) {
                self.placed.insert(s.clone(), agent.to_owned());
                changed = true;
            }
        }
        changed
    }

    /// Expires commands that waited too long for an agent, forgets ended ones kept long enough, and token
    /// ids whose tokens can no longer verify.
    pub fn tidy(&mut self, now: Timestamp) {
        for entry in self.entries.values_mut() {
            if entry.state == State::Queued && now.since(entry.created_at) >= self.queue_ttl {
                entry.state = State::Ended(Outcome::Expired);
                entry.payload = None;
                entry.ended_at = Some(now);
            }
        }
        let keep = self.keep;
        self.entries.retain(|_, e| e.ended_at.is_none_or(|at| now.since(at) < keep));
        self.used.retain(|_, forget_after| *forget_after > now);
        let released: Vec<String> =
            self.gone.iter().filter(|(_, since)| now.since(**since) >= keep).map(|(a, _)| a.clone()).collect();
        for agent in released {
            self.gone.remove(&agent);
            self.placed.retain(|_, a| *a != agent);
        }
    }

    /// When [`Ledger::tidy`] next has something to do.
    pub fn next_tidy(&self) -> Option<Timestamp> {
        let entries = self.entries.values().map(|e| match e.ended_at {
            Some(at) => at + self.keep,
            None if e.state == State::Queued => e.created_at + self.queue_ttl,
            None => Timestamp::from_millis(u64::MAX),
        });
        let used = self.used.values().copied();
        let gone = self.gone.values().map(|since| *since + self.keep);
        entries.chain(used).chain(gone).min().filter(|t| *t != Timestamp::from_millis(u64::MAX))
    }

    /// A command's state, while the ledger remembers it.
    pub fn state(&self, id: CommandId) -> Option<&State> {
        self.entries.get(&id).map(|e| &e.state)
    }

    /// A command, while the ledger remembers it.
    pub fn entry(&self, id: CommandId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// Commands remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it remembers nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
