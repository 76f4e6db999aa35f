//! Host side of `spin:postgres/postgres@4.0.0` on `tokio-postgres`. On Spin a guest connection is one
//! backend; here the guest sees exactly that, while its standalone statements run pipelined on
//! connections shared with every other request ([`pool`]) until it needs or could notice a backend of
//! its own: a transaction, session state, or a statement that reveals which backend runs it
//! ([`sharing`] says which, and why the shared statements answer as the guest's own backend would).
//! From then on it keeps an exclusive connection from a pool until it drops its connection. A shared
//! connection failing under a statement fails the guest connection for good, as its own backend going
//! away would on Spin. Every address is checked against the component's `allowed_outbound_hosts`
//! (`postgres://host:port`). Values convert as [`values`] says.

// The `error` type is fixed by the WIT interface; boxing it is not ours to choose.
#![allow(clippy::result_large_err)]

mod pool;
mod sharing;
mod values;

pub use pool::PgPool;

use crate::outbound::Allowlist;
use pool::Pooled;
use sharing::Sharing;
use std::sync::Arc;
use tokio_postgres::types::ToSql;
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

/// An open connection as the guest holds it: nothing of its own until a statement needs a session.
pub struct PgConnection {
    address: String,
    pinned: Option<Pinned>,
    /// Why the connection is gone: a shared connection failed under one of its statements. Every
    /// statement after fails with it, as on a backend that went away.
    broken: Option<String>,
}

impl PgConnection {
    /// Notes `e` of connecting for a statement: the server unreachable now means, on Spin, the guest's
    /// own backend gone, for good.
    fn failed(&mut self, e: pg::Error) -> pg::Error {
        if let pg::Error::ConnectionFailed(why) = &e {
            self.broken = Some(why.clone());
        }
        e
    }
}

/// The exclusive connection of a guest that needed a session.
struct Pinned {
    conn: Pooled,
    /// Between `BEGIN` and its end: a connection dropped then is closed (the server rolls back)
    /// instead of being pooled with a transaction still open.
    in_transaction: bool,
    /// Something outlives the statement in the session (a setting, a prepared statement, a temporary
    /// table...): the connection is closed when the guest is done, never handed to another request.
    session_state: bool,
}

impl Pinned {
    fn track(&mut self, statement: &str, sharing: Sharing) {
        match sharing {
            Sharing::Transaction => self.in_transaction = true,
            Sharing::Shared | Sharing::Observes => {}
            Sharing::Session if ends_transaction(statement) => self.in_transaction = false,
            Sharing::Session if self.in_transaction && scoped_to_transaction(statement) => {}
            Sharing::Session => self.session_state = true,
        }
    }
}

/// The first words of `statement`, upper case.
fn words(statement: &str, n: usize) -> Vec<String> {
    statement.split_whitespace().take(n).map(|w| w.trim_end_matches(';').to_ascii_uppercase()).collect()
}

/// `COMMIT`, `ROLLBACK` (but not `ROLLBACK TO`), `END`, `ABORT`.
fn ends_transaction(statement: &str) -> bool {
    match words(statement, 2).iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["ROLLBACK", "TO", ..] => false,
        [first, ..] => matches!(first, "COMMIT" | "ROLLBACK" | "END" | "ABORT"),
        [] => false,
    }
}

/// Statements whose effect ends with the transaction they run in.
fn scoped_to_transaction(statement: &str) -> bool {
    matches!(
        words(statement, 2).iter().map(String::as_str).collect::<Vec<_>>()[..],
        ["SET", "LOCAL" | "TRANSACTION", ..] | ["SAVEPOINT" | "RELEASE", ..] | ["ROLLBACK", "TO", ..]
    )
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

/// Where one statement runs.
enum Chosen<'a> {
    /// A place on a shared connection.
    Lane(pool::OnLane<'a>),
    /// Every lane was busy: an exclusive connection for this statement alone, pooled again after.
    Single(Box<Pooled>, String),
    /// The guest's own connection.
    Pinned(&'a pool::Connection),
}

impl Chosen<'_> {
    /// A connection for `statement` of `connection`: a lane while the guest may share one, else its own
    /// connection (taken from the pool the first time a statement needs it).
    async fn of<'a>(
        pool: &'a PgPool,
        connection: &'a mut PgConnection,
        statement: &str,
    ) -> Result<Chosen<'a>, pg::Error> {
        let sharing = Sharing::of(statement);
        if connection.pinned.is_none() && sharing == Sharing::Shared {
            return Ok(match pool.lane(&connection.address).await.map_err(|e| connection.failed(e))? {
                Some(place) => Chosen::Lane(place),
                None => {
                    let single = pool.get(&connection.address).await.map_err(|e| connection.failed(e))?;
                    Chosen::Single(Box::new(single), connection.address.clone())
                }
            });
        }
        if connection.pinned.is_none() {
            let conn = pool.get(&connection.address).await.map_err(|e| connection.failed(e))?;
            connection.pinned = Some(Pinned { conn, in_transaction: false, session_state: false });
        }
        let pinned = connection.pinned.as_mut().expect("pinned just above");
        pinned.track(statement, sharing);
        Ok(Chosen::Pinned(&pinned.conn.conn))
    }

    fn conn(&self) -> &pool::Connection {
        match self {
            Chosen::Lane(place) => place.conn(),
            Chosen::Single(single, _) => &single.conn,
            Chosen::Pinned(conn) => conn,
        }
    }

    /// The statement has run: a connection borrowed for it goes back to the pool.
    fn done(self, pool: &PgPool) {
        if let Chosen::Single(single, address) = self {
            pool.put(address, *single);
        }
    }
}

/// What a guest asks of a statement: its rows, or how many rows it changed.
enum Ask {
    Rows,
    Count,
}

/// A statement's outcome, as asked.
enum Ran {
    Rows(Vec<tokio_postgres::Row>, tokio_postgres::Statement),
    Count(u64),
}

impl PgView<'_> {
    /// Runs `statement` of the guest's `conn` with `params` where it may run (see [`Chosen`]).
    async fn run(
        &mut self,
        conn: Resource<PgConnection>,
        statement: &str,
        params: Vec<pg::ParameterValue>,
        ask: Ask,
    ) -> wasmtime::Result<Result<Ran, pg::Error>> {
        let asked = match ask {
            Ask::Rows => values::For::Query,
            Ask::Count => values::For::Execute,
        };
        let params = match values::to_sql_params(params, asked) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let pool = self.access.pool.clone();
        let guest = self.table.get_mut(&conn)?;
        if let Some(why) = &guest.broken {
            return Ok(Err(pg::Error::ConnectionFailed(why.clone())));
        }
        let chosen = match Chosen::of(&pool, guest, statement).await {
            Ok(chosen) => chosen,
            Err(e) => return Ok(Err(e)),
        };
        let shared = !matches!(chosen, Chosen::Pinned(_));
        let ran = match ask {
            Ask::Rows => chosen.conn().query(statement, &refs).await.map(|(rows, prepared)| Ran::Rows(rows, prepared)),
            Ask::Count => chosen.conn().execute(statement, &refs).await.map(Ran::Count),
        };
        chosen.done(&pool);
        let ran = ran.map_err(query_error);
        if let (true, Err(pg::Error::ConnectionFailed(why))) = (shared, &ran) {
            self.table.get_mut(&conn)?.broken = Some(why.clone());
        }
        Ok(ran)
    }
}

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
        // `hostaddr` is where libpq and tokio-postgres really connect (the host name is then only for TLS
        // and the password file): every one must be allowed in its own right.
        let ports = config.get_ports();
        let addrs_allowed = config.get_hostaddrs().iter().enumerate().all(|(i, ip)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            self.access.allowlist.allows("postgres", &ip.to_string(), port)
        });
        if !allowed || !addrs_allowed || config.get_hosts().is_empty() {
            return Ok(Err(pg::Error::ConnectionFailed("destination not allowed by allowed_outbound_hosts".into())));
        }
        // As on Spin, a wrong password or database fails here, with the server's reason.
        if let Err(e) = self.access.pool.ensure_reachable(&address).await {
            return Ok(Err(e));
        }
        Ok(Ok(self.table.push(PgConnection { address, pinned: None, broken: None })?))
    }

    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<pg::RowSet, pg::Error>> {
        let (rows, prepared) = match self.run(conn, &statement, params, Ask::Rows).await? {
            Ok(Ran::Rows(rows, prepared)) => (rows, prepared),
            Ok(Ran::Count(_)) => unreachable!("rows were asked for"),
            Err(e) => return Ok(Err(e)),
        };
        let columns = match rows.first() {
            Some(r) => r.columns().iter().map(values::column).collect(),
            None => prepared.columns().iter().map(values::column).collect(),
        };
        let rows = match rows.iter().map(values::row).collect::<Result<Vec<_>, _>>() {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(pg::RowSet { columns, rows }))
    }

    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        Ok(match self.run(conn, &statement, params, Ask::Count).await? {
            Ok(Ran::Count(changed)) => Ok(changed),
            Ok(Ran::Rows(..)) => unreachable!("a count was asked for"),
            Err(e) => Err(e),
        })
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        let conn = self.table.delete(conn)?;
        if let Some(pinned) = conn.pinned {
            if !pinned.in_transaction && !pinned.session_state {
                self.access.pool.put(conn.address, pinned.conn);
            }
        }
        Ok(())
    }
}

/// A failed statement as the guest sees it. The server going away under a connection (class `57P`:
/// shut down, crashed, not accepting connections; class `08`: connection exceptions) is the database
/// being unavailable, as a refused connection is, not a failed query: the guest answers 503 and a
/// retry reaches a new connection.
fn query_error(e: tokio_postgres::Error) -> pg::Error {
    match e.as_db_error() {
        Some(db) if db.code().code().starts_with("57P") || db.code().code().starts_with("08") => {
            pg::Error::ConnectionFailed(db.to_string())
        }
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

#[cfg(test)]
mod guests;

#[cfg(test)]
mod tests {
    //! The guest's view: what runs where, and that nothing of one request's session reaches another.

    use super::pg::HostConnection;
    use super::*;

    use super::guests::Guests;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn hostaddr_cannot_bypass_the_allowlist() {
        let mut guests = Guests::start().await;
        let port = guests.url.rsplit(':').next().unwrap().split('/').next().unwrap().to_owned();
        // The allowed host's name, but the address of another machine: refused before any connection.
        for address in [
            format!("postgres://postgres@127.0.0.1:{port}/postgres?hostaddr=192.0.2.1"),
            format!("host=127.0.0.1 hostaddr=192.0.2.1 port={port} user=postgres dbname=postgres"),
            format!("host=127.0.0.1 hostaddr=127.0.0.2 port={port} user=postgres dbname=postgres"),
        ] {
            let opened = guests.view().open(address.clone()).await.unwrap();
            assert!(
                matches!(&opened, Err(pg::Error::ConnectionFailed(why)) if why.contains("not allowed")),
                "{address}: {:?}",
                opened.map(|_| ())
            );
        }
        // The allowed address itself, named both ways, is fine (opening connects: the real user).
        let user = guests.url.trim_start_matches("postgres://").split('@').next().unwrap().to_owned();
        let same = format!("host=127.0.0.1 hostaddr=127.0.0.1 port={port} user={user} dbname=postgres");
        assert!(guests.view().open(same).await.unwrap().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn a_transaction_has_its_session_until_it_ends_and_its_connection_is_pooled_after() {
        let mut g = Guests::start().await;
        let (a, b) = (g.open().await, g.open().await);
        g.execute(&a, "BEGIN").await.unwrap();
        let pid = g.text(&a, "SELECT pg_backend_pid()::int8").await;
        g.execute(&a, "INSERT INTO t VALUES (1)").await.unwrap();
        g.execute(&a, "SAVEPOINT s").await.unwrap();
        g.execute(&a, "INSERT INTO t VALUES (2)").await.unwrap();
        g.execute(&a, "ROLLBACK TO SAVEPOINT s").await.unwrap();
        assert_eq!(g.text(&b, "SELECT count(*) FROM t").await, "0", "uncommitted rows are not seen elsewhere");
        assert_eq!(g.text(&a, "SELECT count(*) FROM t").await, "1", "the transaction sees its own row");
        assert_eq!(g.text(&a, "SELECT pg_backend_pid()::int8").await, pid, "on one session throughout");
        g.execute(&a, "COMMIT").await.unwrap();
        assert_eq!(g.text(&b, "SELECT count(*) FROM t").await, "1");
        assert_eq!(g.idle(), 0);
        g.close(a).await;
        assert_eq!(g.idle(), 1, "a connection whose transaction ended goes back to the pool");
        g.close(b).await;
        assert_eq!(g.idle(), 1, "a guest that only shared took no connection of its own");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn session_state_never_reaches_another_request() {
        let mut g = Guests::start().await;
        let a = g.open().await;
        g.execute(&a, "SET application_name = 'leak'").await.unwrap();
        assert_eq!(g.text(&a, "SELECT current_setting('application_name')").await, "leak", "kept for its guest");
        g.close(a).await;
        assert_eq!(g.idle(), 0, "a connection with session state is closed, not pooled");
        let b = g.open().await;
        assert_ne!(g.text(&b, "SELECT current_setting('application_name')").await, "leak");
        g.execute(&b, "BEGIN").await.unwrap();
        assert_ne!(g.text(&b, "SELECT current_setting('application_name')").await, "leak");
        g.execute(&b, "SET LOCAL statement_timeout = 1000").await.unwrap();
        g.execute(&b, "COMMIT").await.unwrap();
        g.close(b).await;
        assert_eq!(g.idle(), 1, "SET LOCAL ends with its transaction: this one is pooled");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn a_transaction_left_open_is_rolled_back_not_pooled() {
        let mut g = Guests::start().await;
        let a = g.open().await;
        g.execute(&a, "BEGIN").await.unwrap();
        g.execute(&a, "INSERT INTO t VALUES (1)").await.unwrap();
        g.close(a).await;
        assert_eq!(g.idle(), 0, "closed with its transaction open");
        let b = g.open().await;
        // The server rolls back when the connection closes; give it the moment that takes.
        let mut count = g.text(&b, "SELECT count(*) FROM t").await;
        for _ in 0..50 {
            if count == "0" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            count = g.text(&b, "SELECT count(*) FROM t").await;
        }
        assert_eq!(count, "0");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn a_statement_the_server_refuses_leaves_the_shared_connection_usable() {
        let mut g = Guests::start().await;
        let a = g.open().await;
        let e = g.execute(&a, "INSERT INTO missing VALUES (1)").await.unwrap_err();
        assert!(matches!(e, pg::Error::QueryFailed(_)), "{e:?}");
        assert_eq!(g.execute(&a, "INSERT INTO t VALUES (1)").await.unwrap(), 1);
        g.close(a).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn every_statement_of_a_guest_connection_runs_on_its_one_backend_under_load() {
        let g = Guests::start().await;
        let (pool, allowlist, url) = (g.access.pool.clone(), g.access.allowlist.clone(), g.url.clone());
        // 16 guests at once, each with 40 rounds of a standalone insert (pipelined on shared
        // connections) and a look at its backend, and a session setting read back at the end: each
        // sees one backend throughout, no two open guests share one, and what a guest set is there
        // for it alone. Before a statement that reveals the backend pinned, the look ran on whichever
        // shared connection was free.
        let guests: Vec<_> = (0..16)
            .map(|i| {
                let access = PgAccess { pool: pool.clone(), allowlist: allowlist.clone() };
                let url = url.clone();
                tokio::spawn(async move {
                    let mut table = ResourceTable::new();
                    let mut view = PgView { access: &access, table: &mut table };
                    let c = view.open(url).await.unwrap().unwrap();
                    let pid = |rows: pg::RowSet| match rows.rows[0][0] {
                        pg::DbValue::Int32(p) => p,
                        ref other => panic!("{other:?}"),
                    };
                    let mut pids = std::collections::BTreeSet::new();
                    for n in 0..40 {
                        let borrow = Resource::new_borrow(c.rep());
                        let rows =
                            view.query(borrow, "SELECT pg_backend_pid()".into(), Vec::new()).await.unwrap().unwrap();
                        pids.insert(pid(rows));
                        if n == 0 {
                            let borrow = Resource::new_borrow(c.rep());
                            let set = format!("SET application_name = 'guest-{i}'");
                            view.execute(borrow, set, Vec::new()).await.unwrap().unwrap();
                        }
                        let borrow = Resource::new_borrow(c.rep());
                        view.execute(borrow, "INSERT INTO t VALUES ($1)".into(), vec![pg::ParameterValue::Int32(n)])
                            .await
                            .unwrap()
                            .unwrap();
                    }
                    let borrow = Resource::new_borrow(c.rep());
                    let name = view
                        .query(borrow, "SELECT current_setting('application_name')".into(), Vec::new())
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(matches!(&name.rows[0][0], pg::DbValue::Str(s) if *s == format!("guest-{i}")), "{name:?}");
                    // Held until every guest has run, so that none of them hands its backend on.
                    (pids, c, table)
                })
            })
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        let mut held = Vec::new();
        for guest in guests {
            let (pids, c, table) = guest.await.unwrap();
            assert_eq!(pids.len(), 1, "one guest connection, one backend: {pids:?}");
            assert!(seen.insert(*pids.first().unwrap()), "two open guest connections shared a backend");
            held.push((c, table));
        }
        assert_eq!(seen.len(), 16);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn a_guest_whose_shared_connection_failed_stays_failed_as_on_its_own_backend() {
        let mut g = Guests::start().await;
        let a = g.open().await;
        assert_eq!(g.execute(&a, "INSERT INTO t VALUES (1)").await.unwrap(), 1, "on a shared connection");
        g.pg().stop().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let e = g.execute(&a, "INSERT INTO t VALUES (2)").await.unwrap_err();
        assert!(matches!(e, pg::Error::ConnectionFailed(_)), "{e:?}");
        g.pg().restart().unwrap();
        // The server is back, but this guest's backend would not be: the guest connection stays failed,
        // and a new one works.
        let again = g.execute(&a, "INSERT INTO t VALUES (3)").await.unwrap_err();
        assert!(matches!(again, pg::Error::ConnectionFailed(_)), "{again:?}");
        let b = g.open().await;
        assert_eq!(g.execute(&b, "INSERT INTO t VALUES (4)").await.unwrap(), 1);
    }
}
