//! Host side of `spin:postgres/postgres@4.0.0` on `tokio-postgres`: connections come from a small pool
//! per address (so per-request instances do not pay a connection each), connecting gives up after one
//! second (callers answer 503 promptly when the database is down), and every address is checked against
//! the component's `allowed_outbound_hosts` (`postgres://host:port`). Each pooled connection keeps the
//! statements it prepared, so a statement run again costs one round trip instead of two (parse, then
//! execute); a statement the server no longer accepts (its plan changed with the schema) is prepared
//! again once.
//!
//! Values: booleans, integers, floats, text, bytea, jsonb, timestamps and NULL convert both ways; other
//! column types come back as `unsupported` with their raw bytes, other parameter types are refused.

// The `error` type is fixed by the WIT interface; boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

use crate::outbound::Allowlist;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, Error as PgError, NoTls, Row, Statement};
use wasmtime::component::{Resource, ResourceTable};

/// The interface, declared here as the contract the host implements.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        inline: r#"
            package spin:postgres@4.0.0;

            interface postgres {
                variant error {
                    connection-failed(string),
                    bad-parameter(string),
                    query-failed(query-error),
                    value-conversion-failed(string),
                    other(string)
                }
                variant query-error { text(string), db-error(db-error) }
                record db-error {
                    as-text: string,
                    severity: string,
                    code: string,
                    message: string,
                    detail: option<string>,
                    extras: list<tuple<string, string>>,
                }
                variant db-data-type {
                    boolean, int8, int16, int32, int64, floating32, floating64, str, binary, date, time,
                    datetime, timestamp, uuid, jsonb, decimal, range-int32, range-int64, range-decimal,
                    array-int32, array-int64, array-decimal, array-str, interval, other(string),
                }
                variant db-value {
                    boolean(bool), int8(s8), int16(s16), int32(s32), int64(s64), floating32(f32),
                    floating64(f64), str(string), binary(list<u8>), date(tuple<s32, u8, u8>),
                    time(tuple<u8, u8, u8, u32>), datetime(tuple<s32, u8, u8, u8, u8, u8, u32>),
                    timestamp(s64), uuid(string), jsonb(list<u8>), decimal(string),
                    range-int32(tuple<option<tuple<s32, range-bound-kind>>, option<tuple<s32, range-bound-kind>>>),
                    range-int64(tuple<option<tuple<s64, range-bound-kind>>, option<tuple<s64, range-bound-kind>>>),
                    range-decimal(tuple<option<tuple<string, range-bound-kind>>, option<tuple<string, range-bound-kind>>>),
                    array-int32(list<option<s32>>), array-int64(list<option<s64>>),
                    array-decimal(list<option<string>>), array-str(list<option<string>>),
                    interval(interval), db-null, unsupported(list<u8>),
                }
                variant parameter-value {
                    boolean(bool), int8(s8), int16(s16), int32(s32), int64(s64), floating32(f32),
                    floating64(f64), str(string), binary(list<u8>), date(tuple<s32, u8, u8>),
                    time(tuple<u8, u8, u8, u32>), datetime(tuple<s32, u8, u8, u8, u8, u8, u32>),
                    timestamp(s64), uuid(string), jsonb(list<u8>), decimal(string),
                    range-int32(tuple<option<tuple<s32, range-bound-kind>>, option<tuple<s32, range-bound-kind>>>),
                    range-int64(tuple<option<tuple<s64, range-bound-kind>>, option<tuple<s64, range-bound-kind>>>),
                    range-decimal(tuple<option<tuple<string, range-bound-kind>>, option<tuple<string, range-bound-kind>>>),
                    array-int32(list<option<s32>>), array-int64(list<option<s64>>),
                    array-decimal(list<option<string>>), array-str(list<option<string>>),
                    interval(interval), db-null,
                }
                record interval { micros: s64, days: s32, months: s32 }
                record column { name: string, data-type: db-data-type }
                type row = list<db-value>;
                record row-set { columns: list<column>, rows: list<row> }
                enum range-bound-kind { inclusive, exclusive }
                resource connection {
                    open: static func(address: string) -> result<connection, error>;
                    query: func(statement: string, params: list<parameter-value>) -> result<row-set, error>;
                    execute: func(statement: string, params: list<parameter-value>) -> result<u64, error>;
                }
            }

            world host {
                import postgres;
            }
        "#,
        world: "host",
        imports: { default: async | trappable },
        with: { "spin:postgres/postgres.connection": super::PgConnection },
    });
}

use bindings::spin::postgres::postgres as pg;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections kept per address. Above the requests a host runs at once on this machine: a request's
/// connection goes back to the pool only when its instance is dropped, after the response has left, so
/// a client that sends its next request at once briefly needs one more connection than it has requests
/// in flight. With a cap of 16 at 16 in flight, bursts opened a new connection (a new server process,
/// tens of milliseconds) and the pool then closed one.
const MAX_IDLE_PER_ADDRESS: usize = 64;
/// An idle connection older than this is closed instead of used, so a burst does not hold server
/// processes for good.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Prepared statements a connection keeps (the functions run a few dozen distinct ones).
const MAX_STATEMENTS: usize = 128;

/// Idle connections by address, shared by every request of the host.
pub struct PgPool {
    idle: Mutex<HashMap<String, Vec<Pooled>>>,
    idle_timeout: Duration,
}

impl Default for PgPool {
    fn default() -> PgPool {
        PgPool { idle: Mutex::default(), idle_timeout: IDLE_TIMEOUT }
    }
}

/// A connection and the statements prepared on it.
struct Pooled {
    client: Client,
    statements: HashMap<String, Statement>,
    /// When it was last given back to the pool.
    idle_since: Instant,
}

impl Pooled {
    /// The prepared form of `sql`, from the cache or the server.
    async fn statement(&mut self, sql: &str) -> Result<Statement, PgError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs the prepared `sql` for its rows (and its prepared form, which names the columns).
    async fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<(Vec<Row>, Statement), PgError> {
        let statement = self.statement(sql).await?;
        match self.client.query(&statement, params).await {
            Err(e) if stale_statement(&e) => {
                let statement = self.prepare_again(sql).await?;
                Ok((self.client.query(&statement, params).await?, statement))
            }
            result => Ok((result?, statement)),
        }
    }

    /// Runs the prepared `sql` for the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, PgError> {
        let statement = self.statement(sql).await?;
        match self.client.execute(&statement, params).await {
            Err(e) if stale_statement(&e) => {
                let statement = self.prepare_again(sql).await?;
                self.client.execute(&statement, params).await
            }
            result => result,
        }
    }

    /// The server refused the cached statement: forget it and prepare it anew.
    async fn prepare_again(&mut self, sql: &str) -> Result<Statement, PgError> {
        self.statements.remove(sql);
        self.statement(sql).await
    }
}

/// The server's answer to a prepared statement it can no longer run as prepared: `0A000` ("cached plan
/// must not change result type") or `26000` (no such prepared statement).
fn stale_statement(e: &PgError) -> bool {
    e.code().is_some_and(|c| matches!(c.code(), "0A000" | "26000"))
}

impl PgPool {
    async fn get(&self, address: &str) -> Result<Pooled, pg::Error> {
        loop {
            let client = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get_mut(address).and_then(Vec::pop);
            match client {
                Some(c) if !c.client.is_closed() && c.idle_since.elapsed() < self.idle_timeout => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let connect = tokio_postgres::connect(address, NoTls);
        let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| pg::Error::ConnectionFailed("timed out connecting to the database".into()))?
            .map_err(|e| pg::Error::ConnectionFailed(e.to_string()))?;
        tokio::spawn(connection);
        Ok(Pooled { client, statements: HashMap::new(), idle_since: Instant::now() })
    }

    fn put(&self, address: String, mut client: Pooled) {
        if client.client.is_closed() {
            return;
        }
        client.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(address).or_default();
        // The oldest are first (the newest are used first): whatever idled too long goes.
        list.retain(|c| c.idle_since.elapsed() < self.idle_timeout && !c.client.is_closed());
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push(client);
        }
    }
}

/// An open connection as the guest holds it.
pub struct PgConnection {
    address: String,
    client: Pooled,
    /// True between `BEGIN` and `COMMIT`/`ROLLBACK`: a connection dropped then is closed (the server
    /// rolls back) instead of being pooled with a transaction still open.
    in_transaction: bool,
}

impl PgConnection {
    fn track(&mut self, statement: &str) {
        let head: String = statement
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect::<String>()
            .to_ascii_uppercase();
        match head.as_str() {
            "BEGIN" | "START" => self.in_transaction = true,
            "COMMIT" | "ROLLBACK" | "END" | "ABORT" => self.in_transaction = false,
            _ => {}
        }
    }
}

/// What a request's store needs for Postgres.
pub struct PgAccess {
    pub(crate) pool: Arc<PgPool>,
    pub(crate) allowlist: Arc<Allowlist>,
}

/// The view the generated traits are implemented for.
pub struct PgView<'a> {
    pub(crate) access: &'a PgAccess,
    pub(crate) table: &'a mut ResourceTable,
}

impl pg::Host for PgView<'_> {}

impl pg::HostConnection for PgView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
        let config: tokio_postgres::Config = match address.parse() {
            Ok(c) => c,
            Err(e) => return Ok(Err(pg::Error::ConnectionFailed(format!("bad address: {e}")))),
        };
        let allowed = config.get_hosts().iter().zip(config.get_ports().iter().chain(std::iter::repeat(&5432))).all(
            |(host, port)| match host {
                tokio_postgres::config::Host::Tcp(h) => self.access.allowlist.allows("postgres", h, *port),
                #[allow(unreachable_patterns)]
                _ => false,
            },
        );
        if !allowed || config.get_hosts().is_empty() {
            return Ok(Err(pg::Error::ConnectionFailed("destination not allowed by allowed_outbound_hosts".into())));
        }
        let client = match self.access.pool.get(&address).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(PgConnection { address, client, in_transaction: false })?))
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<pg::RowSet, pg::Error>> {
        let connection = self.table.get_mut(&conn)?;
        connection.track(&statement);
        let params = match to_sql_params(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let (rows, prepared) = match connection.client.query(&statement, &refs).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(query_error(e))),
        };
        let columns = match rows.first() {
            Some(r) => r.columns().iter().map(column).collect(),
            None => prepared.columns().iter().map(column).collect(),
        };
        let rows = rows.iter().map(|r| (0..r.len()).map(|i| value(r, i)).collect()).collect();
        Ok(Ok(pg::RowSet { columns, rows }))
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        let connection = self.table.get_mut(&conn)?;
        connection.track(&statement);
        let params = match to_sql_params(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(connection.client.execute(&statement, &refs).await.map_err(query_error))
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        let conn = self.table.delete(conn)?;
        if !conn.in_transaction {
            self.access.pool.put(conn.address, conn.client);
        }
        Ok(())
    }
}

fn query_error(e: tokio_postgres::Error) -> pg::Error {
    match e.as_db_error() {
        Some(db) => pg::Error::QueryFailed(pg::QueryError::DbError(pg::DbError {
            as_text: db.to_string(),
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras: Vec::new(),
        })),
        None if e.is_closed() => pg::Error::ConnectionFailed(e.to_string()),
        None => pg::Error::QueryFailed(pg::QueryError::Text(e.to_string())),
    }
}

/// NULL for a parameter of any type (the server infers the type from the statement).
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

/// JSON text sent as `jsonb` (version byte 1, then the text).
#[derive(Debug)]
struct Jsonb(Vec<u8>);

impl ToSql for Jsonb {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
    tokio_postgres::types::to_sql_checked!();
}

fn to_sql_params(params: Vec<pg::ParameterValue>) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, pg::Error> {
    use pg::ParameterValue as P;
    params
        .into_iter()
        .map(|p| -> Result<Box<dyn ToSql + Sync + Send>, pg::Error> {
            Ok(match p {
                P::Boolean(v) => Box::new(v),
                P::Int8(v) => Box::new(i16::from(v)),
                P::Int16(v) => Box::new(v),
                P::Int32(v) => Box::new(v),
                P::Int64(v) => Box::new(v),
                P::Floating32(v) => Box::new(v),
                P::Floating64(v) => Box::new(v),
                P::Str(v) => Box::new(v),
                P::Binary(v) => Box::new(v),
                P::Timestamp(secs) => {
                    let t = if secs >= 0 {
                        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
                    } else {
                        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                    };
                    Box::new(t)
                }
                P::Jsonb(v) => Box::new(Jsonb(v)),
                P::DbNull => Box::new(Null),
                other => {
                    return Err(pg::Error::BadParameter(format!(
                        "parameter type not supported by this host: {other:?}"
                    )))
                }
            })
        })
        .collect()
}

fn column(c: &tokio_postgres::Column) -> pg::Column {
    use pg::DbDataType as T;
    let data_type = match *c.type_() {
        Type::BOOL => T::Boolean,
        Type::INT2 => T::Int16,
        Type::INT4 => T::Int32,
        Type::INT8 => T::Int64,
        Type::FLOAT4 => T::Floating32,
        Type::FLOAT8 => T::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => T::Str,
        Type::BYTEA => T::Binary,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => T::Timestamp,
        Type::JSONB => T::Jsonb,
        ref other => T::Other(other.name().to_owned()),
    };
    pg::Column { name: c.name().to_owned(), data_type }
}

/// Any column's raw bytes (for `unsupported`).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `jsonb` from the wire: drop the version byte.
struct JsonbOut(Vec<u8>);

impl<'a> FromSql<'a> for JsonbOut {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonbOut(raw.get(1..).unwrap_or_default().to_vec()))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
}

fn value(row: &tokio_postgres::Row, i: usize) -> pg::DbValue {
    use pg::DbValue as V;
    fn get<'a, T: FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize, f: impl Fn(T) -> V) -> V {
        match row.try_get::<_, Option<T>>(i) {
            Ok(Some(v)) => f(v),
            Ok(None) => V::DbNull,
            Err(e) => V::Unsupported(e.to_string().into_bytes()),
        }
    }
    match *row.columns()[i].type_() {
        Type::BOOL => get(row, i, V::Boolean),
        Type::INT2 => get(row, i, V::Int16),
        Type::INT4 => get(row, i, V::Int32),
        Type::INT8 => get(row, i, V::Int64),
        Type::FLOAT4 => get(row, i, V::Floating32),
        Type::FLOAT8 => get(row, i, V::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => get(row, i, V::Str),
        Type::BYTEA => get(row, i, V::Binary),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get(row, i, |t: std::time::SystemTime| {
            V::Timestamp(match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            })
        }),
        Type::JSONB => get(row, i, |j: JsonbOut| V::Jsonb(j.0)),
        _ => get(row, i, |r: Raw| V::Unsupported(r.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn statements_are_prepared_once_per_connection_and_again_when_the_schema_changes() {
        let pg = local_postgres::LocalPostgres::start().unwrap();
        let pool = PgPool::default();
        let mut conn = pool.get(&pg.url("postgres")).await.unwrap();
        conn.execute("CREATE TABLE t (a int)", &[]).await.unwrap();
        let insert = "INSERT INTO t (a) VALUES ($1)";
        for a in 0..3i32 {
            assert_eq!(conn.execute(insert, &[&a]).await.unwrap(), 1);
        }
        let select = "SELECT * FROM t ORDER BY a";
        let (rows, _) = conn.query(select, &[]).await.unwrap();
        assert_eq!((rows.len(), rows[0].len()), (3, 1));
        assert_eq!(conn.statements.len(), 3, "each distinct statement prepared once");
        // The pooled connection keeps its statements for the next request.
        pool.put(pg.url("postgres"), conn);
        let mut conn = pool.get(&pg.url("postgres")).await.unwrap();
        let cached = conn.statements[select].clone();
        // The schema changes under the cached statement: the server refuses it, it is prepared again.
        conn.execute("ALTER TABLE t ADD COLUMN b text DEFAULT 'x'", &[]).await.unwrap();
        let (rows, prepared) = conn.query(select, &[]).await.unwrap();
        assert_eq!(rows[0].len(), 2, "the new column is there");
        assert_eq!((cached.columns().len(), prepared.columns().len()), (1, 2), "prepared afresh");
        let b: &str = rows[2].get(1);
        assert_eq!(b, "x");
    }

    /// The backend process behind a connection: the same pid means the same connection.
    async fn backend(conn: &mut Pooled) -> i32 {
        conn.query("SELECT pg_backend_pid()", &[]).await.unwrap().0[0].get(0)
    }

    #[tokio::test]
    async fn a_burst_of_connections_is_kept_and_connections_idle_too_long_are_closed() {
        let pg = local_postgres::LocalPostgres::start().unwrap();
        let url = pg.url("postgres");
        let pool = PgPool::default();
        // More requests at once than the old cap of 16: every connection goes back to the pool, and the
        // next burst opens none.
        let mut burst = Vec::new();
        for _ in 0..40 {
            burst.push(pool.get(&url).await.unwrap());
        }
        let mut first = Vec::new();
        for conn in &mut burst {
            first.push(backend(conn).await);
        }
        for conn in burst {
            pool.put(url.clone(), conn);
        }
        let (mut again, mut held) = (Vec::new(), Vec::new());
        for _ in 0..40 {
            let mut conn = pool.get(&url).await.unwrap();
            again.push(backend(&mut conn).await);
            held.push(conn);
        }
        first.sort_unstable();
        again.sort_unstable();
        assert_eq!(first, again, "the second burst reused the first one's connections");

        let pool = PgPool { idle_timeout: Duration::from_millis(200), ..PgPool::default() };
        let mut conn = pool.get(&url).await.unwrap();
        let pid = backend(&mut conn).await;
        pool.put(url.clone(), conn);
        let mut conn = pool.get(&url).await.unwrap();
        assert_eq!(backend(&mut conn).await, pid, "a connection idle for a moment is reused");
        pool.put(url.clone(), conn);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut conn = pool.get(&url).await.unwrap();
        assert_ne!(backend(&mut conn).await, pid, "one idle beyond the timeout is closed, a new one opened");
        assert!(pool.idle.lock().unwrap()[&url].is_empty());
    }
}
