//! The control database: a private Postgres cluster, or one given by URL, with the control plane's schema
//! applied.

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

/// Connects to an existing database and applies the migrations it lacks.
pub async fn migrate_existing(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (mut client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the database URL: {e}"))?;
    tokio::spawn(conn);
    edgeshell_control_db::migrate::migrate(&mut client).await?;
    Ok(client)
}

/// `host:port` of a `postgres://` URL (port 5432 when not given).
pub fn host_of(url: &str) -> anyhow::Result<String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| anyhow::anyhow!("database URL: {e}"))?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => anyhow::bail!("the database URL must name a TCP host"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    Ok(format!("{host}:{port}"))
}
