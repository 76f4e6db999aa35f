//! A private Postgres cluster with the control plane's schema applied.

use local_postgres::LocalPostgres;

/// Starts a cluster, creates the `control` database and migrates it; returns the cluster (stopped on
/// drop), the database URL and a connected client.
pub async fn migrated() -> anyhow::Result<(LocalPostgres, String, tokio_postgres::Client)> {
    let pg = LocalPostgres::start()?;
    pg.create_database("control")?;
    let url = pg.url("control");
    let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    edgeshell_control_db::migrate::migrate(&mut client).await?;
    Ok((pg, url, client))
}
