//! A room's storage in its Durable Object's SQLite database: `room_state` holds the checkpointed state
//! (one row), `room_output` the output chunks by offset (core `Room::checkpoint`). Writes are synchronous
//! and the runtime holds outgoing messages until they are durable, so a peer never hears of a change the
//! room could forget; output written in a later batch is the exception the protocol allows for (the
//! runner keeps it until a credit says it is stored).

use edgeshell_core::room::{Checkpoint, OutputChunk, Room, StoredOutput};
use worker::{SqlStorage, SqlStorageValue, Storage};

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS room_state (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS room_output (start_offset INTEGER PRIMARY KEY, end_offset INTEGER NOT NULL, data BLOB NOT NULL)",
];

/// A failure of the object's storage or of what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "room storage: {}", self.0)
    }
}

fn failed(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

fn offset(value: u64) -> Result<SqlStorageValue, StoreError> {
    i64::try_from(value).map_err(|_| StoreError(format!("offset {value} is out of range"))).map(SqlStorageValue::from)
}

fn as_u64(value: &SqlStorageValue) -> Result<u64, StoreError> {
    match value {
        SqlStorageValue::Integer(i) => u64::try_from(*i).map_err(|_| StoreError(format!("negative offset {i}"))),
        other => Err(StoreError(format!("expected an offset, found {other:?}"))),
    }
}

/// The storage of one room.
pub struct RoomStore {
    sql: SqlStorage,
}

impl RoomStore {
    /// The room's tables if a room was ever created here; reading creates nothing, so a request for
    /// a session that has no room (a junk resume) leaves no storage behind.
    pub fn existing(storage: &Storage) -> Result<Option<RoomStore>, StoreError> {
        let sql = storage.sql();
        let found = sql
            .exec("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'room_state'", None)
            .map_err(failed)?
            .raw()
            .next()
            .transpose()
            .map_err(failed)?
            .is_some_and(|row| matches!(row.first(), Some(SqlStorageValue::Integer(n)) if *n > 0));
        Ok(found.then_some(RoomStore { sql }))
    }

    /// Creates the room's tables: only for a room a verified token brings into being.
    pub fn create(storage: &Storage) -> Result<RoomStore, StoreError> {
        let sql = storage.sql();
        for statement in SCHEMA {
            sql.exec(statement, None).map_err(failed)?;
        }
        Ok(RoomStore { sql })
    }

    /// The stored room, if there is one.
    pub fn load(&self) -> Result<Option<(Room, StoredOutput)>, StoreError> {
        let mut state = None;
        for row in self.sql.exec("SELECT state FROM room_state WHERE id = 1", None).map_err(failed)?.raw() {
            match row.map_err(failed)?.into_iter().next() {
                Some(SqlStorageValue::Blob(bytes)) => state = Some(bytes),
                other => return Err(StoreError(format!("room_state holds {other:?}"))),
            }
        }
        let Some(state) = state else { return Ok(None) };
        let mut chunks = Vec::new();
        let rows = self.sql.exec("SELECT start_offset, data FROM room_output ORDER BY start_offset", None);
        for row in rows.map_err(failed)?.raw() {
            let row = row.map_err(failed)?;
            match row.as_slice() {
                [start, SqlStorageValue::Blob(data)] => {
                    chunks.push(OutputChunk { offset: as_u64(start)?, data: data.clone() })
                }
                other => return Err(StoreError(format!("room_output holds {other:?}"))),
            }
        }
        Room::restore(&state, &chunks).map(Some).map_err(|e| StoreError(e.to_string()))
    }

    /// Writes a checkpoint.
    pub fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        if let Some(chunk) = checkpoint.append {
            let end = offset(chunk.end())?;
            self.sql
                .exec(
                    "INSERT OR REPLACE INTO room_output (start_offset, end_offset, data) VALUES (?, ?, ?)",
                    vec![offset(chunk.offset)?, end, SqlStorageValue::Blob(chunk.data)],
                )
                .map_err(failed)?;
        }
        if let Some(before) = checkpoint.forget_before {
            self.sql.exec("DELETE FROM room_output WHERE end_offset <= ?", vec![offset(before)?]).map_err(failed)?;
        }
        self.sql
            .exec(
                "INSERT INTO room_state (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                vec![SqlStorageValue::Blob(checkpoint.state)],
            )
            .map_err(failed)?;
        Ok(())
    }
}
