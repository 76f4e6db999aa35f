//! A test's guests of the Postgres interface: connections opened through the host's `PgView` against a
//! real PostgreSQL (`local-postgres`), with a table `t (a int)`.

use super::pg::HostConnection;
use super::*;

pub(crate) struct Guests {
    pub(crate) access: PgAccess,
    table: ResourceTable,
    pub(crate) url: String,
    _pg: local_postgres::LocalPostgres,
}

impl Guests {
    pub(crate) async fn start() -> Guests {
        let pg = local_postgres::LocalPostgres::start().unwrap();
        let allowlist = Allowlist::new(&[format!("postgres://127.0.0.1:{}", pg.port())]).unwrap();
        let access = PgAccess { pool: Arc::new(PgPool::default()), allowlist: Arc::new(allowlist) };
        let url = pg.url("postgres");
        let mut guests = Guests { access, table: ResourceTable::new(), url, _pg: pg };
        let c = guests.open().await;
        guests.execute(&c, "CREATE TABLE t (a int)").await.unwrap();
        guests.close(c).await;
        guests
    }

    pub(crate) fn view(&mut self) -> PgView<'_> {
        PgView { access: &self.access, table: &mut self.table }
    }

    pub(crate) async fn open(&mut self) -> Resource<PgConnection> {
        let url = self.url.clone();
        self.view().open(url).await.unwrap().unwrap()
    }

    pub(crate) async fn execute(&mut self, c: &Resource<PgConnection>, sql: &str) -> Result<u64, pg::Error> {
        let c = Resource::new_borrow(c.rep());
        self.view().execute(c, sql.to_owned(), Vec::new()).await.unwrap()
    }

    /// The first column of the first row, as text.
    pub(crate) async fn text(&mut self, c: &Resource<PgConnection>, sql: &str) -> String {
        let c = Resource::new_borrow(c.rep());
        let rows = self.view().query(c, sql.to_owned(), Vec::new()).await.unwrap().unwrap().rows;
        match &rows[0][0] {
            pg::DbValue::Str(s) => s.clone(),
            pg::DbValue::Int64(n) => n.to_string(),
            pg::DbValue::Int32(n) => n.to_string(),
            other => panic!("{other:?}"),
        }
    }

    pub(crate) async fn close(&mut self, c: Resource<PgConnection>) {
        self.view().drop(c).await.unwrap();
    }

    /// The server, to stop and restart.
    pub(crate) fn pg(&mut self) -> &mut local_postgres::LocalPostgres {
        &mut self._pg
    }

    pub(crate) fn idle(&self) -> usize {
        self.access.pool.idle_of(&self.url)
    }
}

impl Guests {
    /// Runs `sql` with `params` as a guest's query.
    pub(crate) async fn query_with(
        &mut self,
        c: &Resource<PgConnection>,
        sql: &str,
        params: Vec<pg::ParameterValue>,
    ) -> Result<pg::RowSet, pg::Error> {
        let c = Resource::new_borrow(c.rep());
        self.view().query(c, sql.to_owned(), params).await.unwrap()
    }

    /// Runs `sql` with `params` as a guest's execute.
    pub(crate) async fn execute_with(
        &mut self,
        c: &Resource<PgConnection>,
        sql: &str,
        params: Vec<pg::ParameterValue>,
    ) -> Result<u64, pg::Error> {
        let c = Resource::new_borrow(c.rep());
        self.view().execute(c, sql.to_owned(), params).await.unwrap()
    }
}
