//! The command ledger of a region's pool room: the durable record, kept by the one Durable Object that
//! every pool agent of a region dials out to, of which commands were handed to which agent and what
//! came of them. It is the dial-out pool channel's replay protection (issue: pools dial out):
//!
//! - a **start** is handed to an agent at most once, ever: if that agent goes before answering, the
//!   start ends as [`Outcome::Unknown`] and is never handed out again, to it or to another agent, even
//!   after the room itself restarts (the ledger is stored);
//! - a **stop** is handed out until an agent acknowledges it: one that was in flight when its agent
//!   went is queued again for the next agent that asks;
//! - an answer counts only from the agent the command was handed to, and only once.
//!
//! I/O-free like the rest of the core: the room stores the ledger (it is `serde`), feeds it what
//! happens, and sends what [`Ledger::next_for`] hands out.

use crate::ids::SessionId;
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
    /// Its connection, counted by the room.
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

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The agent did it (started the runner, or stopped it or found nothing to stop).
    Done,
    /// The agent refused, with its reason (no capacity, a bad command).
    Refused(String),
    /// A start whose agent went before answering: it may or may not have started, and is never handed
    /// out again. The control plane treats it as a failed start (its session's room reports a runner
    /// that never joins).
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
    /// When it was submitted.
    pub created_at: Timestamp,
    /// When it ended, once it has.
    pub ended_at: Option<Timestamp>,
}

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// No such command (never submitted, or forgotten after it ended).
    #[error("no command {0:?} in the ledger")]
    Unknown(CommandId),
    /// The command was not handed to this agent connection.
    #[error("command {0:?} was not handed to this agent")]
    NotYours(CommandId),
}

/// The ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    next: u64,
    entries: BTreeMap<CommandId, Entry>,
    /// How long a queued command waits for an agent before it expires.
    queue_ttl: Duration,
    /// How long an ended command is remembered (answers to it are then refused as unknown).
    keep: Duration,
}

impl Ledger {
    /// An empty ledger: queued commands wait `queue_ttl` for an agent; ended ones are kept `keep`.
    pub fn new(queue_ttl: Duration, keep: Duration) -> Ledger {
        Ledger { next: 1, entries: BTreeMap::new(), queue_ttl, keep }
    }

    /// Records a new command; it waits for an agent.
    pub fn submit(&mut self, kind: Kind, session: SessionId, now: Timestamp) -> CommandId {
        let id = CommandId(self.next);
        self.next += 1;
        self.entries.insert(id, Entry { kind, session, state: State::Queued, created_at: now, ended_at: None });
        id
    }

    /// The oldest queued command, now handed to `holder`; `None` when nothing waits.
    pub fn next_for(&mut self, holder: &Holder, now: Timestamp) -> Option<(CommandId, Kind, SessionId)> {
        let (id, entry) = self.entries.iter_mut().find(|(_, e)| e.state == State::Queued)?;
        entry.state = State::Sent { holder: holder.clone(), at: now };
        Some((*id, entry.kind, entry.session.clone()))
    }

    /// Takes `holder`'s answer to `id`. A second answer to an ended command is accepted and changes
    /// nothing; an answer from another agent connection is refused.
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
                entry.state = State::Ended(outcome);
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
                Kind::Stop => entry.state = State::Queued,
            }
        }
        unknown
    }

    /// Expires commands that waited too long for an agent, and forgets ended ones kept long enough.
    pub fn tidy(&mut self, now: Timestamp) {
        for entry in self.entries.values_mut() {
            if entry.state == State::Queued && now.since(entry.created_at) >= self.queue_ttl {
                entry.state = State::Ended(Outcome::Expired);
                entry.ended_at = Some(now);
            }
        }
        let keep = self.keep;
        self.entries.retain(|_, e| e.ended_at.is_none_or(|at| now.since(at) < keep));
    }

    /// A command's state, while the ledger remembers it.
    pub fn state(&self, id: CommandId) -> Option<&State> {
        self.entries.get(&id).map(|e| &e.state)
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
