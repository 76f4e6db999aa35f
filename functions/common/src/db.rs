//! Postgres through Spin's `spin:postgres@4.0.0`: one connection per request (the host pools them),
//! errors mapped to stable codes (an unreachable database is `503 database_unavailable` with
//! `Retry-After`), transactions that roll back on any failure, and typed column access.

use crate::platform::Spent;
use crate::reply::{self, ApiError, ErrorCode};
use crate::settings;
use spin_sdk::pg4::{Connection, DbValue, Decode, ParameterValue, PgError};

/// An open connection.
pub struct Db {
    conn: Connection,
    /// Time spent in statements, for `Server-Timing`.
    pub spent: Spent,
}

/// Maps a Postgres error to what the client sees.
pub fn failure(e: PgError) -> ApiError {
    match e {
        PgError::ConnectionFailed(m) => {
            ApiError::new(ErrorCode::DatabaseUnavailable, format!("the database is unavailable: {m}"))
        }
        other => reply::internal(format!("postgres: {other:?}")),
    }
}

impl Db {
    /// Opens the database named by the `database_url` variable.
    pub fn open() -> Result<Db, ApiError> {
        let url = settings::required("database_url")?;
        Ok(Db { conn: Connection::open(&url).map_err(failure)?, spent: Spent::default() })
    }

    /// Runs a statement; returns the rows affected.
    pub fn execute(&self, sql: &str, params: &[ParameterValue]) -> Result<u64, ApiError> {
        self.spent.time(|| self.conn.execute(sql, params)).map_err(failure)
    }

    /// Runs a query; returns its rows.
    pub fn query(&self, sql: &str, params: &[ParameterValue]) -> Result<Vec<Vec<DbValue>>, ApiError> {
        Ok(self.spent.time(|| self.conn.query(sql, params)).map_err(failure)?.rows)
    }

    /// The first row, if any.
    pub fn query_opt(&self, sql: &str, params: &[ParameterValue]) -> Result<Option<Vec<DbValue>>, ApiError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    pub fn transaction<T>(&self, f: impl FnOnce(&Db) -> Result<T, ApiError>) -> Result<T, ApiError> {
        self.execute("BEGIN", &[])?;
        match f(self) {
            Ok(value) => {
                self.execute("COMMIT", &[])?;
                Ok(value)
            }
            Err(e) => {
                let _ = self.execute("ROLLBACK", &[]);
                Err(e)
            }
        }
    }
}

/// Column `i` of a row as `T`.
pub fn col<T: Decode>(row: &[DbValue], i: usize) -> Result<T, ApiError> {
    let value = row.get(i).ok_or_else(|| reply::internal(format!("row has no column {i}")))?;
    T::decode(value).map_err(|e| reply::internal(format!("column {i}: {e}")))
}

/// A text parameter.
pub fn text(s: impl Into<String>) -> ParameterValue {
    ParameterValue::Str(s.into())
}

/// A bigint parameter.
pub fn int(n: i64) -> ParameterValue {
    ParameterValue::Int64(n)
}
