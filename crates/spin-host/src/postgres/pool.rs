//! Connections to Postgres, by address: a few **shared** connections ("lanes") that pipeline the
//! standalone statements of every request, and **exclusive** ones, pooled, for guests that need a
//! session to themselves (a transaction; see [`sharing`](super::sharing)).
//!
//! Why lanes: a statement costs the server far more when its backend sleeps between statements and
//! is woken for each one (one wake-up, one `epoll_wait`, one scheduler round trip per statement) than
//! when statements queue on a busy backend. With one exclusive connection per request, a one-time JTI
//! check cost the server 95-145 us of CPU; pipelined on one shared connection, about a third of that.
//! A lane takes statements while few are in flight on it and it is moving; a lane with work pending and
//! nothing finished for [`LANE_STALL`] (a slow statement, a lock wait) is passed over, so a stuck
//! statement delays only what was already queued behind it.
//!
//! Connecting gives up after one second (callers answer 503 promptly when the database is down), and
//! each connection keeps the statements it prepared, so a statement run again costs one round trip
//! instead of two (parse, then execute); a statement the server no longer accepts (its plan changed
//! with the schema) is prepared again once.

use super::pg;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error as PgError, NoTls, Row, Statement};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle exclusive connections kept per address. Above the requests a host runs at once on this
/// machine: a request's connection goes back to the pool only when its instance is dropped, after the
/// response has left, so a client that sends its next request at once briefly needs one more
/// connection than it has requests in flight. With a cap of 16 at 16 in flight, bursts opened a new
/// connection (a new server process, tens of milliseconds) and the pool then closed one.
const MAX_IDLE_PER_ADDRESS: usize = 64;
/// An idle connection older than this is closed instead of used, so a burst does not hold server
/// processes for good.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Prepared statements a connection keeps (the functions run a few dozen distinct ones).
const MAX_STATEMENTS: usize = 128;
/// Shared connections per address at most. One backend runs one statement at a time, so a busy host
/// spreads over a few; beyond that, statements take exclusive connections.
const MAX_LANES: usize = 4;
/// Statements in flight on one lane before the next lane is used.
const LANE_DEPTH: usize = 32;
/// A lane with statements in flight and none finished for this long takes no more for now. Well above
/// a statement's time on this machine (a tenth of a millisecond) and its scheduling hiccups, so that a
/// busy lane is not taken for a stuck one.
const LANE_STALL: Duration = Duration::from_millis(20);

/// Why a connection could not be made, with its cause (the server's own words, or the socket's).
fn connect_error(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{}: {}", db.severity(), db.message()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

/// A connection and the statements prepared on it.
pub(super) struct Connection {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

impl Connection {
    async fn open(address: &str) -> Result<Connection, pg::Error> {
        let connect = tokio_postgres::connect(address, NoTls);
        let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| pg::Error::ConnectionFailed("timed out connecting to the database".into()))?
            .map_err(|e| pg::Error::ConnectionFailed(connect_error(&e)))?;
        tokio::spawn(connection);
        Ok(Connection { client, statements: Mutex::default() })
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.statements.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The prepared form of `sql`, from the cache or the server.
    async fn statement(&self, sql: &str) -> Result<Statement, PgError> {
        if let Some(statement) = self.cached().get(sql) {
            return Ok(statement.clone());
        }
        // Two requests may prepare the same statement at once on a lane: both work, one is kept.
        let statement = self.client.prepare(sql).await?;
        let mut cached = self.cached();
        if cached.len() >= MAX_STATEMENTS {
            cached.clear();
        }
        cached.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs the prepared `sql` for its rows (and its prepared form, which names the columns).
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(Vec<Row>, Statement), PgError> {
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
    pub(super) async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, PgError> {
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
    async fn prepare_again(&self, sql: &str) -> Result<Statement, PgError> {
        self.cached().remove(sql);
        self.statement(sql).await
    }
}

/// The server's answer to a prepared statement it can no longer run as prepared: `0A000` ("cached plan
/// must not change result type") or `26000` (no such prepared statement).
fn stale_statement(e: &PgError) -> bool {
    e.code().is_some_and(|c| matches!(c.code(), "0A000" | "26000"))
}

/// An exclusive connection: idle in the pool, or held by one guest.
pub(super) struct Pooled {
    pub(super) conn: Connection,
    /// When it was last given back to the pool.
    idle_since: Instant,
}

/// A shared connection and how busy it is.
pub(super) struct Lane {
    conn: Connection,
    in_flight: AtomicUsize,
    /// When a statement last finished on it, or work arrived while it was idle (nanoseconds since the
    /// pool was made).
    progress: AtomicU64,
}

impl Lane {
    /// Whether it takes another statement now.
    fn accepts(&self, now: u64, stall: Duration) -> bool {
        let in_flight = self.in_flight.load(Ordering::Acquire);
        let stalled = in_flight > 0 && now.saturating_sub(self.progress.load(Ordering::Acquire)) > nanos(stall);
        !self.conn.is_closed() && in_flight < LANE_DEPTH && !stalled
    }
}

/// One statement on a lane: counted in flight until it finishes or is abandoned.
pub(super) struct OnLane<'a> {
    lane: Arc<Lane>,
    pool: &'a PgPool,
}

impl OnLane<'_> {
    pub(super) fn conn(&self) -> &Connection {
        &self.lane.conn
    }
}

impl Drop for OnLane<'_> {
    fn drop(&mut self) {
        self.lane.progress.store(self.pool.now(), Ordering::Release);
        self.lane.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A lane being opened to an address; the mark goes when it is dropped (also if the request is).
struct Opening<'a> {
    pool: &'a PgPool,
    address: String,
}

impl Opening<'_> {
    fn start<'a>(pool: &'a PgPool, address: &str) -> Option<Opening<'a>> {
        let fresh = pool.opening.lock().unwrap_or_else(|p| p.into_inner()).insert(address.to_owned());
        fresh.then(|| Opening { pool, address: address.to_owned() })
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.pool.opening.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.address);
    }
}

/// Every request's connections, by address.
pub struct PgPool {
    idle: Mutex<HashMap<String, Vec<Pooled>>>,
    lanes: Mutex<HashMap<String, Vec<Arc<Lane>>>>,
    /// Addresses a lane is being opened to (one at a time each).
    opening: Mutex<std::collections::HashSet<String>>,
    idle_timeout: Duration,
    lane_stall: Duration,
    epoch: Instant,
}

impl Default for PgPool {
    fn default() -> PgPool {
        PgPool {
            idle: Mutex::default(),
            lanes: Mutex::default(),
            opening: Mutex::default(),
            idle_timeout: IDLE_TIMEOUT,
            lane_stall: LANE_STALL,
            epoch: Instant::now(),
        }
    }
}

impl PgPool {
    fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// An exclusive connection to `address`: an idle one, or a new one.
    pub(super) async fn get(&self, address: &str) -> Result<Pooled, pg::Error> {
        loop {
            let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get_mut(address).and_then(Vec::pop);
            match conn {
                Some(c) if !c.conn.is_closed() && c.idle_since.elapsed() < self.idle_timeout => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        Ok(Pooled { conn: Connection::open(address).await?, idle_since: Instant::now() })
    }

    /// Gives an exclusive connection back (one with nothing left in its session).
    pub(super) fn put(&self, address: String, mut conn: Pooled) {
        if conn.conn.is_closed() {
            return;
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(address).or_default();
        // The oldest are first (the newest are used first): whatever idled too long goes.
        list.retain(|c| c.idle_since.elapsed() < self.idle_timeout && !c.conn.is_closed());
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push(conn);
        }
    }

    /// A place on a shared connection to `address` for one statement: the first lane that takes one
    /// (so a light load stays on one busy backend), else a new lane while there may be more. `None`
    /// when every lane is full or stalled, or another request is opening one: the caller then runs the
    /// statement on an exclusive connection (as every statement did before lanes), instead of waiting.
    pub(super) async fn lane(&self, address: &str) -> Result<Option<OnLane<'_>>, pg::Error> {
        if let Some(place) = self.place(address, None) {
            return Ok(Some(place));
        }
        if self.lanes_of(address) >= MAX_LANES {
            return Ok(None);
        }
        let Some(_opening) = Opening::start(self, address) else { return Ok(None) };
        let conn = Connection::open(address).await?;
        let lane = Arc::new(Lane { conn, in_flight: AtomicUsize::new(0), progress: AtomicU64::new(self.now()) });
        Ok(self.place(address, Some(lane)))
    }

    /// Proves `address` reachable with its credentials before a guest uses it, as Spin connects at
    /// `open`: a live lane or idle connection to it already does; else one is opened now (and kept idle
    /// for the guest's first statement), its failure reported with its cause.
    pub(super) async fn ensure_reachable(&self, address: &str) -> Result<(), pg::Error> {
        let live = |list: Option<&Vec<Arc<Lane>>>| list.is_some_and(|l| l.iter().any(|lane| !lane.conn.is_closed()));
        if live(self.lanes.lock().unwrap_or_else(|p| p.into_inner()).get(address)) {
            return Ok(());
        }
        let idle_live = {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.get(address).is_some_and(|l| l.iter().any(|c| !c.conn.is_closed()))
        };
        if idle_live {
            return Ok(());
        }
        let conn = self.get(address).await?;
        self.put(address.to_owned(), conn);
        Ok(())
    }

    /// Idle exclusive connections to `address`.
    #[cfg(test)]
    pub(super) fn idle_of(&self, address: &str) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).get(address).map_or(0, Vec::len)
    }

    fn lanes_of(&self, address: &str) -> usize {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner()).get(address).map_or(0, Vec::len)
    }

    /// Takes a place on the first lane that accepts one, after adding `new` if there is room for it (a
    /// lane opened by a request that lost a race for the last place is dropped).
    fn place(&self, address: &str, new: Option<Arc<Lane>>) -> Option<OnLane<'_>> {
        let now = self.now();
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let list = lanes.entry(address.to_owned()).or_default();
        list.retain(|lane| !lane.conn.is_closed());
        if let Some(lane) = new {
            if list.len() < MAX_LANES {
                list.push(lane);
            }
        }
        let lane = list.iter().find(|lane| lane.accepts(now, self.lane_stall))?.clone();
        if lane.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            lane.progress.store(now, Ordering::Release);
        }
        Some(OnLane { lane, pool: self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn statements_are_prepared_once_per_connection_and_again_when_the_schema_changes() {
        let pg = local_postgres::LocalPostgres::start().unwrap();
        let pool = PgPool::default();
        let conn = pool.get(&pg.url("postgres")).await.unwrap();
        conn.conn.execute("CREATE TABLE t (a int)", &[]).await.unwrap();
        let insert = "INSERT INTO t (a) VALUES ($1)";
        for a in 0..3i32 {
            assert_eq!(conn.conn.execute(insert, &[&a]).await.unwrap(), 1);
        }
        let select = "SELECT * FROM t ORDER BY a";
        let (rows, _) = conn.conn.query(select, &[]).await.unwrap();
        assert_eq!((rows.len(), rows[0].len()), (3, 1));
        assert_eq!(conn.conn.cached().len(), 3, "each distinct statement prepared once");
        // The pooled connection keeps its statements for the next request.
        pool.put(pg.url("postgres"), conn);
        let conn = pool.get(&pg.url("postgres")).await.unwrap();
        let cached = conn.conn.cached()[select].clone();
        // The schema changes under the cached statement: the server refuses it, it is prepared again.
        conn.conn.execute("ALTER TABLE t ADD COLUMN b text DEFAULT 'x'", &[]).await.unwrap();
        let (rows, prepared) = conn.conn.query(select, &[]).await.unwrap();
        assert_eq!(rows[0].len(), 2, "the new column is there");
        assert_eq!((cached.columns().len(), prepared.columns().len()), (1, 2), "prepared afresh");
        let b: &str = rows[2].get(1);
        assert_eq!(b, "x");
    }

    /// The backend process behind a connection: the same pid means the same connection.
    async fn backend(conn: &Connection) -> i32 {
        conn.query("SELECT pg_backend_pid()", &[]).await.unwrap().0[0].get(0)
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
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
        for conn in &burst {
            first.push(backend(&conn.conn).await);
        }
        for conn in burst {
            pool.put(url.clone(), conn);
        }
        let (mut again, mut held) = (Vec::new(), Vec::new());
        for _ in 0..40 {
            let conn = pool.get(&url).await.unwrap();
            again.push(backend(&conn.conn).await);
            held.push(conn);
        }
        first.sort_unstable();
        again.sort_unstable();
        assert_eq!(first, again, "the second burst reused the first one's connections");

        let pool = PgPool { idle_timeout: Duration::from_millis(200), ..PgPool::default() };
        let conn = pool.get(&url).await.unwrap();
        let pid = backend(&conn.conn).await;
        pool.put(url.clone(), conn);
        let conn = pool.get(&url).await.unwrap();
        assert_eq!(backend(&conn.conn).await, pid, "a connection idle for a moment is reused");
        pool.put(url.clone(), conn);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let conn = pool.get(&url).await.unwrap();
        assert_ne!(backend(&conn.conn).await, pid, "one idle beyond the timeout is closed, a new one opened");
        assert!(pool.idle.lock().unwrap()[&url].is_empty());
    }

    /// A pool whose lanes count as stalled after `stall`.
    fn pool_stalling_after(stall: Duration) -> PgPool {
        PgPool { lane_stall: stall, ..PgPool::default() }
    }

    /// A statement on a lane; answers the backend it ran on.
    async fn on_lane(pool: &PgPool, url: &str, sql: &str) -> i32 {
        let place = pool.lane(url).await.unwrap().expect("a lane takes it");
        let pid = backend(place.conn()).await;
        place.conn().execute(sql, &[]).await.unwrap();
        pid
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn a_light_load_shares_one_backend() {
        let pg = local_postgres::LocalPostgres::start().unwrap();
        let url = pg.url("postgres");
        let pool = Arc::new(pool_stalling_after(Duration::from_secs(60)));
        // The first request opens the lane; while it is opening, others take exclusive connections.
        on_lane(&pool, &url, "SELECT 1").await;
        let tasks: Vec<_> = (0..LANE_DEPTH / 2)
            .map(|_| {
                let (pool, url) = (pool.clone(), url.clone());
                tokio::spawn(async move { on_lane(&pool, &url, "SELECT 1").await })
            })
            .collect();
        let mut pids = Vec::new();
        for t in tasks {
            pids.push(t.await.unwrap());
        }
        pids.dedup();
        assert_eq!(pids.len(), 1, "{} requests at once, pipelined on one connection", LANE_DEPTH / 2);
        assert_eq!(pool.lanes_of(&url), 1);
        assert!(pool.idle.lock().unwrap().is_empty(), "and no exclusive connection was taken");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn one_lane_opens_at_a_time() {
        let pg = local_postgres::LocalPostgres::start().unwrap();
        let url = pg.url("postgres");
        let pool = Arc::new(pool_stalling_after(Duration::from_secs(60)));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (pool, url) = (pool.clone(), url.clone());
                tokio::spawn(async move { pool.lane(&url).await.unwrap().is_some() })
            })
            .collect();
        let mut placed = 0;
        for t in tasks {
            placed += usize::from(t.await.unwrap());
        }
        assert!(placed >= 1, "the request that opened the lane has a place on it");
        assert_eq!(pool.lanes_of(&url), 1, "a burst on a cold pool opened one lane, not one each");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn a_stalled_lane_is_passed_over() {
        let pg = local_postgres::LocalPostgres::start().unwrap();
        let url = pg.url("postgres");
        let pool = Arc::new(pool_stalling_after(Duration::from_millis(50)));
        // A slow statement holds the first lane: once it has made no progress for the stall time, the
        // next statement goes to another lane and finishes long before the slow one.
        let slow = {
            let (pool, url) = (pool.clone(), url.clone());
            tokio::spawn(async move { on_lane(&pool, &url, "SELECT pg_sleep(1.5)").await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let other = on_lane(&pool, &url, "SELECT 1").await;
        assert!(started.elapsed() < Duration::from_millis(1000), "waited behind the slow statement");
        assert!(!slow.is_finished());
        assert_ne!(other, slow.await.unwrap(), "the stalled lane was passed over");
        assert_eq!(pool.lanes_of(&url), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn when_every_lane_is_full_statements_take_exclusive_connections() {
        let pg = local_postgres::LocalPostgres::start().unwrap();
        let url = pg.url("postgres");
        let pool = pool_stalling_after(Duration::from_secs(60));
        let mut held = Vec::new();
        for _ in 0..MAX_LANES * LANE_DEPTH {
            held.push(pool.lane(&url).await.unwrap().expect("room on a lane"));
        }
        assert_eq!(pool.lanes_of(&url), MAX_LANES);
        assert!(pool.lane(&url).await.unwrap().is_none(), "no room: the caller takes an exclusive connection");
        drop(held.pop());
        assert!(pool.lane(&url).await.unwrap().is_some(), "a place freed is taken again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL: cargo xtask test"]
    async fn a_lane_whose_server_went_away_is_replaced() {
        let mut pg = local_postgres::LocalPostgres::start().unwrap();
        let url = pg.url("postgres");
        let pool = PgPool::default();
        let before = on_lane(&pool, &url, "SELECT 1").await;
        pg.stop().unwrap();
        // The connection's task sees the server go.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let place = pool.lane(&url).await;
        assert!(matches!(place, Err(pg::Error::ConnectionFailed(_))), "the closed lane is dropped, no new one opens");
        assert_eq!(pool.lanes_of(&url), 0);
        pg.restart().unwrap();
        let after = on_lane(&pool, &url, "SELECT 1").await;
        assert_ne!(before, after, "a new connection after the restart");
        assert_eq!(pool.lanes_of(&url), 1);
    }
}
