//! How a pool room's ledger is stored: as rows, one per command, token id, placement and gone agent,
//! plus its counters. The ledger hands its host only what changed since the last write
//! ([`Ledger::take_changes`]), token ids first; a restarted room applies the rows it reads back
//! ([`Changes::from_rows`], [`Ledger::apply`]). A ledger stored whole, as rooms stored it before rows,
//! still loads, and [`Ledger::everything`] moves it to rows.

use super::{CommandId, Entry, Ledger};
use crate::ids::SessionId;
use crate::time::Timestamp;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole ledger as stored before it was stored by rows (and as tests store it).
#[derive(Deserialize)]
pub(super) struct LedgerData {
    next: u64,
    connections: u64,
    entries: BTreeMap<CommandId, Entry>,
    used: BTreeMap<String, Timestamp>,
    placed: BTreeMap<SessionId, String>,
    #[serde(default)]
    gone: BTreeMap<String, Timestamp>,
    queue_ttl: Duration,
    keep: Duration,
}

impl From<LedgerData> for Ledger {
    fn from(d: LedgerData) -> Ledger {
        let mut ledger = Ledger::new(d.queue_ttl, d.keep);
        let LedgerData { next, connections, entries, used, placed, gone, .. } = d;
        ledger.apply(Changes {
            counters: Some(Counters { next, connections }),
            commands: entries.into_iter().map(|(id, e)| (id, Some(e))).collect(),
            used: used.into_iter().map(|(jti, at)| (jti, Some(at))).collect(),
            placed: placed.into_iter().map(|(s, a)| (s, Some(a))).collect(),
            gone: gone.into_iter().map(|(a, at)| (a, Some(at))).collect(),
        });
        ledger
    }
}

/// The ledger's counters (command ids and agent connections are never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The next command id.
    pub next: u64,
    /// Agent connections numbered so far.
    pub connections: u64,
}

/// What changed in a ledger: each key with its new value, or `None` where it was removed. The host
/// writes these (as [`Row`]s) and a ledger is restored by applying them ([`Ledger::apply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The counters, when they may have changed.
    pub counters: Option<Counters>,
    /// Commands.
    pub commands: Vec<(CommandId, Option<Entry>)>,
    /// Token ids taken, with when they may be forgotten.
    pub used: Vec<(String, Option<Timestamp>)>,
    /// Sessions' agents.
    pub placed: Vec<(SessionId, Option<String>)>,
    /// Agents gone, since when.
    pub gone: Vec<(String, Option<Timestamp>)>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.counters.is_none()
            && self.commands.is_empty()
            && self.used.is_empty()
            && self.placed.is_empty()
            && self.gone.is_empty()
    }

    /// The rows to write (a value) or delete (`None`), token ids first: should a host's write stop
    /// half-way, a command is never stored without its token id.
    pub fn into_rows(self) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut push = |kind: RowKind, key: String, value: Option<String>| rows.push(Row { kind, key, value });
        for (jti, at) in self.used {
            push(RowKind::Used, jti, at.map(|t| t.as_millis().to_string()));
        }
        if let Some(counters) = self.counters {
            push(RowKind::Counters, "ledger".into(), serde_json::to_string(&counters).ok());
        }
        for (id, entry) in self.commands {
            push(RowKind::Command, id.0.to_string(), entry.and_then(|e| serde_json::to_string(&e).ok()));
        }
        for (session, agent) in self.placed {
            push(RowKind::Placed, session.as_str().to_owned(), agent);
        }
        for (agent, since) in self.gone {
            push(RowKind::Gone, agent, since.map(|t| t.as_millis().to_string()));
        }
        rows
    }

    /// The changes that rebuild a ledger from its stored rows (kind, key, value).
    pub fn from_rows<I, S>(rows: I) -> Result<Changes, RowError>
    where
        I: IntoIterator<Item = (S, S, S)>,
        S: AsRef<str>,
    {
        let mut changes = Changes::default();
        for (kind, key, value) in rows {
            let (kind, key, value) = (kind.as_ref(), key.as_ref(), value.as_ref());
            let bad = |why: &str| RowError(format!("{kind} row {key:?}: {why}"));
            let millis = || value.parse::<u64>().map(Timestamp::from_millis).map_err(|_| bad("not a time"));
            match RowKind::from_name(kind).ok_or_else(|| bad("unknown kind"))? {
                RowKind::Counters => {
                    changes.counters = Some(serde_json::from_str(value).map_err(|e| bad(&e.to_string()))?);
                }
                RowKind::Command => {
                    let id = CommandId(key.parse().map_err(|_| bad("not a command id"))?);
                    let entry: Entry = serde_json::from_str(value).map_err(|e| bad(&e.to_string()))?;
                    changes.commands.push((id, Some(entry)));
                }
                RowKind::Used => changes.used.push((key.to_owned(), Some(millis()?))),
                RowKind::Placed => {
                    let session = SessionId::new(key).map_err(|e| bad(&e.to_string()))?;
                    changes.placed.push((session, Some(value.to_owned())));
                }
                RowKind::Gone => changes.gone.push((key.to_owned(), Some(millis()?))),
            }
        }
        Ok(changes)
    }
}

/// What a stored row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// The counters (one row).
    Counters,
    /// A command, its JSON.
    Command,
    /// A token id, when it may be forgotten (milliseconds).
    Used,
    /// A session, its agent.
    Placed,
    /// An agent gone, since when (milliseconds).
    Gone,
}

impl RowKind {
    /// Its name in storage.
    pub fn name(self) -> &'static str {
        match self {
            RowKind::Counters => "counters",
            RowKind::Command => "command",
            RowKind::Used => "used",
            RowKind::Placed => "placed",
            RowKind::Gone => "gone",
        }
    }

    fn from_name(name: &str) -> Option<RowKind> {
        [RowKind::Counters, RowKind::Command, RowKind::Used, RowKind::Placed, RowKind::Gone]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// One row to write (`value`) or delete (`None`). A queued command's row holds its signed token, so its
/// `Debug` shows only sizes.
#[derive(Clone, PartialEq, Eq)]
pub struct Row {
    /// What it holds.
    pub kind: RowKind,
    /// Its key within its kind.
    pub key: String,
    /// Its value, or `None` to delete it.
    pub value: Option<String>,
}

impl core::fmt::Debug for Row {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Row")
            .field("kind", &self.kind)
            .field("key_bytes", &self.key.len())
            .field("value_bytes", &self.value.as_ref().map(String::len))
            .finish()
    }
}

/// A stored row that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored ledger: {0}")]
pub struct RowError(String);

impl Ledger {
    /// What changed since the last call, for the host to store; nothing is marked changed after it.
    pub fn take_changes(&mut self) -> Changes {
        let index = &mut self.index;
        Changes {
            counters: Some(Counters { next: self.next, connections: self.connections }),
            commands: now_of(std::mem::take(&mut index.changed_commands), &self.entries),
            used: now_of(std::mem::take(&mut index.changed_used), &self.used),
            placed: now_of(std::mem::take(&mut index.changed_placed), &self.placed),
            gone: now_of(std::mem::take(&mut index.changed_gone), &self.gone),
        }
    }

    /// Everything the ledger holds, as changes: for a host moving a ledger stored whole to rows.
    pub fn everything(&self) -> Changes {
        Changes {
            counters: Some(Counters { next: self.next, connections: self.connections }),
            commands: self.entries.iter().map(|(id, e)| (*id, Some(e.clone()))).collect(),
            used: self.used.iter().map(|(jti, at)| (jti.clone(), Some(*at))).collect(),
            placed: self.placed.iter().map(|(s, a)| (s.clone(), Some(a.clone()))).collect(),
            gone: self.gone.iter().map(|(a, at)| (a.clone(), Some(*at))).collect(),
        }
    }

    /// Applies stored changes (a host's rows, read back): what a restored ledger starts from. Applied
    /// changes are not marked as changed again.
    pub fn apply(&mut self, changes: Changes) {
        if let Some(Counters { next, connections }) = changes.counters {
            self.next = next;
            self.connections = connections;
        }
        for (id, entry) in changes.commands {
            if let Some(old) = self.entries.remove(&id) {
                self.index.remove(id, &old);
            }
            if let Some(entry) = entry {
                self.index.add(id, &entry);
                self.entries.insert(id, entry);
            }
        }
        for (jti, at) in changes.used {
            if let Some(old) = self.used.remove(&jti) {
                self.index.expiring.remove(&(old, jti.clone()));
            }
            if let Some(at) = at {
                self.index.expiring.insert((at, jti.clone()));
                self.used.insert(jti, at);
            }
        }
        for (session, agent) in changes.placed {
            match agent {
                Some(agent) => self.placed.insert(session, agent),
                None => self.placed.remove(&session),
            };
        }
        for (agent, since) in changes.gone {
            match since {
                Some(since) => self.gone.insert(agent, since),
                None => self.gone.remove(&agent),
            };
        }
    }
}

/// Each changed key with its value now (`None`: removed).
fn now_of<K: Ord, V: Clone>(keys: std::collections::BTreeSet<K>, map: &BTreeMap<K, V>) -> Vec<(K, Option<V>)> {
    keys.into_iter()
        .map(|k| {
            let value = map.get(&k).cloned();
            (k, value)
        })
        .collect()
}
