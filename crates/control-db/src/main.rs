//! `edgeshell-db`: applies migrations, shows the schema version, and runs the cleanup job.
//!
//! ```text
//! edgeshell-db migrate            apply pending migrations
//! edgeshell-db status             list applied versions
//! edgeshell-db cleanup [SECONDS]  one cleanup pass, or one every SECONDS until stopped
//! edgeshell-db pool-key add REGION    create a pool API key (printed once, stored hashed)
//! edgeshell-db pool-key revoke KEY_ID revoke one
//! edgeshell-db pool-key list          list live keys (ids and regions only)
//! ```
//! The database comes from `DATABASE_URL`.

use anyhow::{bail, Context, Result};
use edgeshell_control_db::{cleanup, migrate, pool_keys};
use std::io::Write;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let settings = edgeshell_core::settings::Reader::new(edgeshell_core::settings::Program::Dev, &env);
    let url = settings.text("DATABASE_URL")?.context("DATABASE_URL is not set")?;
    let (mut client, connection) =
        tokio_postgres::connect(&url, tokio_postgres::NoTls).await.context("connecting to DATABASE_URL")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("edgeshell-db: connection: {e}");
        }
    });
    match args.first().map(String::as_str) {
        Some("migrate") => {
            let applied = migrate::migrate(&mut client).await?;
            eprintln!("edgeshell-db: applied {applied:?}; now at {:?}", migrate::applied_versions(&client).await?);
        }
        Some("status") => eprintln!("edgeshell-db: applied {:?}", migrate::applied_versions(&client).await?),
        Some("cleanup") => {
            let every = args.get(1).map(|s| s.parse::<u64>()).transpose().context("SECONDS must be a number")?;
            loop {
                eprintln!("edgeshell-db: cleanup {:?}", cleanup::cleanup(&client).await?);
                match every {
                    Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
                    None => break,
                }
            }
        }
        Some("pool-key") => match (args.get(1).map(String::as_str), args.get(2)) {
            (Some("add"), Some(region)) => {
                edgeshell_core::ids::RegionId::new(region.as_str()).context("REGION")?;
                let (key_id, key) = pool_keys::add(&client, region).await?;
                eprintln!("edgeshell-db: pool key {key_id} for region {region}; it is shown only now:");
                writeln!(std::io::stdout(), "{key}")?;
            }
            (Some("revoke"), Some(key_id)) => {
                if !pool_keys::revoke(&client, key_id).await? {
                    bail!("no live key {key_id}");
                }
                eprintln!("edgeshell-db: revoked {key_id}");
            }
            (Some("rotate"), Some(key_id)) => {
                let grace = match (args.get(3).map(String::as_str), args.get(4)) {
                    (None, _) => 3600,
                    (Some("--grace"), Some(secs)) => secs.parse().context("--grace SECONDS")?,
                    _ => bail!("usage: edgeshell-db pool-key rotate KEY_ID [--grace SECONDS]"),
                };
                let Some((region, new_id, key)) = pool_keys::rotate(&client, key_id, grace).await? else {
                    bail!("no live key {key_id}");
                };
                eprintln!(
                    "edgeshell-db: pool key {new_id} for region {region} replaces {key_id}, which stays valid {grace} s; the new key is shown only now:"
                );
                writeln!(std::io::stdout(), "{key}")?;
            }
            (Some("list"), None) => {
                for (id, region, created) in pool_keys::list(&client).await? {
                    writeln!(std::io::stdout(), "{id}\t{region}\t{created}")?;
                }
            }
            _ => bail!(
                "usage: edgeshell-db pool-key <add REGION | rotate KEY_ID [--grace SECONDS] | revoke KEY_ID | list>"
            ),
        },
        _ => bail!("usage: edgeshell-db <migrate | status | cleanup [SECONDS] | pool-key ...>"),
    }
    Ok(())
}
