//! Host side of `spin:postgres/postgres@4.0.0` on `tokio-postgres`: connections come from a small pool
//! per address (so per-request instances do not pay a connection each), connecting gives up after one
//! second (callers answer 503 promptly when the database is down), and every address is checked against
//! the component's `allowed_outbound_hosts` (`postgres://host:port`).
//!
//! Values: booleans, integers, floats, text, bytea, jsonb, timestamps and NULL convert both ways; other
//! column types come back as `unsupported` with their raw bytes, other parameter types are refused.

// The `error` type is fixed by the WIT interface; boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

use crate::outbound::Allowlist;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls};
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
const MAX_IDLE_PER_ADDRESS: usize = 16;

/// Idle connections by address, shared by every request of the host.
#[derive(Default)]
pub struct PgPool {
    idle: Mutex<HashMap<String, Vec<Client>>>,
}

impl PgPool {
    async fn get(&self, address: &str) -> Result<Client, pg::Error> {
        loop {
            let client = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get_mut(address).and_then(Vec::pop);
            match client {
                Some(c) if !c.is_closed() => return Ok(c),
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
        Ok(client)
    }

    fn put(&self, address: String, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(address).or_default();
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push(client);
        }
    }
}

/// An open connection as the guest holds it.
pub struct PgConnection {
    address: String,
    client: Client,
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
        let client = &connection.client;
        let params = match to_sql_params(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = match client.query(&statement, &refs).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(query_error(e))),
        };
        let columns = match rows.first() {
            Some(r) => r.columns().iter().map(column).collect(),
            None => match client.prepare(&statement).await {
                Ok(s) => s.columns().iter().map(column).collect(),
                Err(e) => return Ok(Err(query_error(e))),
            },
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
        let client = &connection.client;
        let params = match to_sql_params(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        Ok(client.execute(&statement, &refs).await.map_err(query_error))
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
