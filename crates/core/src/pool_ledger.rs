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
//! its host stores what changed, as rows ([`Ledger::take_changes`], [`Changes::into_rows`]); a restarted
//! room reads the rows back ([`Changes::from_rows`], [`Ledger::apply`]).

use crate::ids::SessionId;
use crate::secret::Secret;
use crate::time::Timestamp;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

mod rows;
pub use rows::{Changes, Counters, Row, RowError, RowKind};

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
    /// A command for the agent holding the session's runner (stop, extend): idempotent, so at least
    /// once.
    ToHolder,
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
            Kind::ToHolder => self.payload.clone(),
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
///
/// Every operation costs a logarithm of its size, so a busy region's room stays cheap: commands waiting
/// or in flight, ended ones by when they are forgotten, and token ids by expiry are indexed, and
/// [`Ledger::take_changes`] hands the host only the rows that changed since its last write.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "rows::LedgerData")]
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
    gone: BTreeMap<String, Timestamp>,
    /// How long a queued command waits for an agent before it expires.
    queue_ttl: Duration,
    /// How long an ended command is remembered (answers to it are then refused as unknown).
    keep: Duration,
    /// Derived from the rest (never stored), and what changed since the host last stored.
    #[serde(skip)]
    index: Index,
}

/// Two ledgers are equal when they hold the same: their indexes follow, and what each has yet to store
/// is its host's business.
impl PartialEq for Ledger {
    fn eq(&self, other: &Ledger) -> bool {
        (self.next, self.connections, &self.entries, &self.used, &self.placed, &self.gone, self.queue_ttl, self.keep)
            == (
                other.next,
                other.connections,
                &other.entries,
                &other.used,
                &other.placed,
                &other.gone,
                other.queue_ttl,
                other.keep,
            )
    }
}

impl Eq for Ledger {}

/// What the ledger derives from its entries, and the keys changed since the last
/// [`Ledger::take_changes`].
#[derive(Debug, Clone, Default)]
struct Index {
    /// Commands waiting for an agent.
    queued: BTreeSet<CommandId>,
    /// Commands handed out and not answered.
    sent: BTreeSet<CommandId>,
    /// Ended commands, by when they ended.
    ended: BTreeSet<(Timestamp, CommandId)>,
    /// Token ids, by when they may be forgotten.
    expiring: BTreeSet<(Timestamp, String)>,
    changed_commands: BTreeSet<CommandId>,
    changed_used: BTreeSet<String>,
    changed_placed: BTreeSet<SessionId>,
    changed_gone: BTreeSet<String>,
}

impl Index {
    fn add(&mut self, id: CommandId, entry: &Entry) {
        match entry.state {
            State::Queued => {
                self.queued.insert(id);
            }
            State::Sent { .. } => {
                self.sent.insert(id);
            }
            State::Ended(_) => {}
        }
        if let Some(at) = entry.ended_at {
            self.ended.insert((at, id));
        }
    }

    fn remove(&mut self, id: CommandId, entry: &Entry) {
        self.queued.remove(&id);
        self.sent.remove(&id);
        if let Some(at) = entry.ended_at {
            self.ended.remove(&(at, id));
        }
    }
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
            index: Index::default(),
        }
    }

    /// Changes command `id` with `change`, keeping the indexes and marking it changed.
    fn update<R>(&mut self, id: CommandId, change: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let entry = self.entries.get_mut(&id)?;
        self.index.remove(id, entry);
        let result = change(entry);
        self.index.add(id, entry);
        self.index.changed_commands.insert(id);
        Some(result)
    }

    fn set_placed(&mut self, session: SessionId, agent: Option<String>) {
        let changed = match agent {
            Some(agent) => self.placed.insert(session.clone(), agent.clone()).is_none_or(|old| old != agent),
            None => self.placed.remove(&session).is_some(),
        };
        if changed {
            self.index.changed_placed.insert(session);
        }
    }

    fn set_gone(&mut self, agent: &str, since: Option<Timestamp>) {
        let changed = match since {
            Some(since) => self.gone.insert(agent.to_owned(), since) != Some(since),
            None => self.gone.remove(agent).is_some(),
        };
        if changed {
            self.index.changed_gone.insert(agent.to_owned());
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
        self.index.expiring.insert((forget_after, jti.to_owned()));
        self.index.changed_used.insert(jti.to_owned());
        let id = CommandId(self.next);
        self.next += 1;
        let entry =
            Entry { kind, session, state: State::Queued, payload: Some(payload), created_at: now, ended_at: None };
        self.index.add(id, &entry);
        self.index.changed_commands.insert(id);
        self.entries.insert(id, entry);
        Ok(id)
    }

    /// Hands queued command `id` to `holder`; answers its payload (`None` when it is not queued). A start
    /// places its session with the agent at once (tentatively, until its answer), so a stop sent while
    /// it is in flight, or after it was lost, goes to the agent that may hold the runner.
    pub fn hand(&mut self, id: CommandId, holder: &Holder, now: Timestamp) -> Option<Payload> {
        self.entries.get(&id).filter(|e| e.state == State::Queued && e.payload.is_some())?;
        let (kind, session, payload) = self.update(id, |entry| {
            entry.state = State::Sent { holder: holder.clone(), at: now };
            (entry.kind, entry.session.clone(), entry.handed_payload())
        })?;
        if kind == Kind::Start {
            self.set_placed(session, Some(holder.agent.clone()));
        }
        payload
    }

    /// The room restarted (its object was evicted, or its storage failed): every connection it handed
    /// commands to is gone. Unanswered starts end as [`Outcome::Unknown`], unanswered stops wait for
    /// the next agent, and every agent counts as gone from `now`. Returns the starts that ended so.
    pub fn restored(&mut self, now: Timestamp) -> Vec<CommandId> {
        let holders: BTreeSet<Holder> = self
            .index
            .sent
            .iter()
            .filter_map(|id| match &self.entries.get(id)?.state {
                State::Sent { holder, .. } => Some(holder.clone()),
                _ => None,
            })
            .collect();
        let mut unknown = Vec::new();
        for holder in holders {
            unknown.extend(self.agent_gone(&holder, now));
        }
        let agents: BTreeSet<String> = self.placed.values().cloned().collect();
        for agent in agents {
            if !self.gone.contains_key(&agent) {
                self.set_gone(&agent, Some(now));
            }
        }
        unknown
    }

    /// An agent connected: its placements stay.
    pub fn agent_back(&mut self, agent: &str) {
        self.set_gone(agent, None);
    }

    /// Ends queued command `id` without handing it out (no agent could take it).
    pub fn refuse(&mut self, id: CommandId, why: &str, now: Timestamp) {
        if self.entries.get(&id).is_some_and(|e| e.state == State::Queued) {
            self.update(id, |entry| {
                entry.state = State::Ended(Outcome::Refused(why.to_owned()));
                entry.payload = None;
                entry.ended_at = Some(now);
            });
        }
    }

    /// The oldest queued command `holder` should carry out (one for a session it holds, or for a
    /// session nobody is known to hold), now handed to it.
    pub fn next_for(&mut self, holder: &Holder, now: Timestamp) -> Option<(CommandId, Kind, SessionId, Payload)> {
        let id = self.index.queued.iter().copied().find(|id| {
            self.entries.get(id).is_some_and(|e| {
                e.payload.is_some() && self.placed.get(&e.session).is_none_or(|agent| *agent == holder.agent)
            })
        })?;
        let (kind, session, payload) = self.update(id, |entry| {
            entry.state = State::Sent { holder: holder.clone(), at: now };
            (entry.kind, entry.session.clone(), entry.handed_payload())
        })?;
        Some((id, kind, session, payload?))
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
        let entry = self.entries.get(&id).ok_or(LedgerError::Unknown(id))?;
        match &entry.state {
            State::Sent { holder: to, .. } if to == holder => {
                let (kind, session) = (entry.kind, entry.session.clone());
                match (kind, &outcome) {
                    (Kind::Start, Outcome::Done) => self.set_placed(session, Some(holder.agent.clone())),
                    // Refused: nothing was started there.
                    (Kind::Start, Outcome::Refused(_)) if self.placed.get(&session) == Some(&holder.agent) => {
                        self.set_placed(session, None);
                    }
                    (Kind::ToHolder, Outcome::Done) => self.set_placed(session, None),
                    _ => {}
                }
                self.update(id, |entry| {
                    entry.state = State::Ended(outcome);
                    entry.payload = None;
                    entry.ended_at = Some(now);
                });
                Ok(())
            }
            State::Ended(_) => Ok(()),
            State::Queued | State::Sent { .. } => Err(LedgerError::NotYours(id)),
        }
    }

    /// `holder`'s connection is gone: its unanswered starts end as [`Outcome::Unknown`] (never handed
    /// out again), its unanswered stops wait for the next agent. Returns the starts that ended so.
    pub fn agent_gone(&mut self, holder: &Holder, now: Timestamp) -> Vec<CommandId> {
        if !self.gone.contains_key(&holder.agent) {
            self.set_gone(&holder.agent, Some(now));
        }
        let held: Vec<CommandId> = self
            .index
            .sent
            .iter()
            .copied()
            .filter(|id| {
                self.entries.get(id).is_some_and(|e| matches!(&e.state, State::Sent { holder: to, .. } if to == holder))
            })
            .collect();
        let mut unknown = Vec::new();
        for id in held {
            self.update(id, |entry| match entry.kind {
                Kind::Start => {
                    entry.state = State::Ended(Outcome::Unknown);
                    entry.ended_at = Some(now);
                    unknown.push(id);
                }
                // Its payload went with it; the agent's answer is what counts, so the stop waits until
                // the agent (or a sibling, for a session nobody holds) comes to ask.
                Kind::ToHolder => entry.state = State::Queued,
            });
        }
        unknown
    }

    /// The agent that holds `session`'s runner, as far as the room heard.
    pub fn holder_of(&self, session: &SessionId) -> Option<&str> {
        self.placed.get(session).map(String::as_str)
    }

    /// An agent reports holding `session`'s runner (its hello or status).
    pub fn place(&mut self, session: SessionId, agent: &str) {
        self.set_placed(session, Some(agent.to_owned()));
    }

    /// An agent reports exactly these sessions (and those it was handed a start for since, still in
    /// flight): those it no longer lists are no longer placed with it. True when anything changed.
    pub fn placed_with(&mut self, agent: &str, sessions: &[SessionId]) -> bool {
        let listed: BTreeSet<&SessionId> = sessions.iter().collect();
        let in_flight: BTreeSet<SessionId> = self
            .index
            .sent
            .iter()
            .filter_map(|id| self.entries.get(id))
            .filter(|e| {
                e.kind == Kind::Start && matches!(&e.state, State::Sent { holder, .. } if holder.agent == agent)
            })
            .map(|e| e.session.clone())
            .collect();
        let dropped: Vec<SessionId> = self
            .placed
            .iter()
            .filter(|(s, a)| *a == agent && !listed.contains(s) && !in_flight.contains(*s))
            .map(|(s, _)| s.clone())
            .collect();
        let mut changed = !dropped.is_empty();
        for s in dropped {
            self.set_placed(s, None);
        }
        for s in sessions {
            if self.placed.get(s).is_none_or(|a| a != agent) {
                self.set_placed(s.clone(), Some(agent.to_owned()));
                changed = true;
            }
        }
        changed
    }

    /// Expires commands that waited too long for an agent, forgets ended ones kept long enough, and token
    /// ids whose tokens can no longer verify.
    pub fn tidy(&mut self, now: Timestamp) {
        let expired: Vec<CommandId> = self
            .index
            .queued
            .iter()
            .copied()
            .filter(|id| self.entries.get(id).is_some_and(|e| now.since(e.created_at) >= self.queue_ttl))
            .collect();
        for id in expired {
            self.update(id, |entry| {
                entry.state = State::Ended(Outcome::Expired);
                entry.payload = None;
                entry.ended_at = Some(now);
            });
        }
        while let Some(&(at, id)) = self.index.ended.first() {
            if now.since(at) < self.keep {
                break;
            }
            self.index.ended.pop_first();
            if let Some(entry) = self.entries.remove(&id) {
                self.index.remove(id, &entry);
            }
            self.index.changed_commands.insert(id);
        }
        while let Some((at, _)) = self.index.expiring.first() {
            if *at > now {
                break;
            }
            if let Some((_, jti)) = self.index.expiring.pop_first() {
                self.used.remove(&jti);
                self.index.changed_used.insert(jti);
            }
        }
        let released: Vec<String> =
            self.gone.iter().filter(|(_, since)| now.since(**since) >= self.keep).map(|(a, _)| a.clone()).collect();
        for agent in released {
            self.set_gone(&agent, None);
            let theirs: Vec<SessionId> =
                self.placed.iter().filter(|(_, a)| **a == agent).map(|(s, _)| s.clone()).collect();
            for session in theirs {
                self.set_placed(session, None);
            }
        }
    }

    /// When [`Ledger::tidy`] next has something to do.
    pub fn next_tidy(&self) -> Option<Timestamp> {
        let queued =
            self.index.queued.iter().filter_map(|id| self.entries.get(id)).map(|e| e.created_at + self.queue_ttl);
        let ended = self.index.ended.first().map(|(at, _)| *at + self.keep);
        let used = self.index.expiring.first().map(|(at, _)| *at);
        let gone = self.gone.values().map(|since| *since + self.keep);
        queued.chain(ended).chain(used).chain(gone).min()
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
