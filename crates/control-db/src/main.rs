//! `edgeshell-db`: applies migrations, shows the schema version, and runs the cleanup job.
//!
//! ```text
//! edgeshell-db migrate            apply pending migrations
//! edgeshell-db status             list applied versions
//! edgeshell-db cleanup [SECONDS]  one cleanup pass, or one every SECONDS until stopped
//! edgeshell-db pool-key add REGION    create a pool API key (printed once, stored hashed)
//! edgeshell-db pool-key rotate KEY_ID [--grace SECONDS]  replace one (the old stays valid 1 h)
//! edgeshell-db pool-key revoke KEY_ID revoke one
//! edgeshell-db pool-key list          list live keys (ids and regions only)
//! ```
//! The database comes from `DATABASE_URL`. Arguments are parsed by `clap` (`--help` lists them).

use anyhow::{bail, Context, Result};
use edgeshell_control_db::{cleanup, migrate, pool_keys};
use std::io::Write;
use std::time::Duration;

/// The control plane's database tool. The database comes from `DATABASE_URL`.
#[derive(Debug, clap::Parser)]
#[command(name = "edgeshell-db", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Apply pending migrations.
    Migrate,
    /// List applied versions.
    Status,
    /// One cleanup pass, or one every SECONDS until stopped.
    Cleanup {
        /// Seconds between passes.
        seconds: Option<u64>,
    },
    /// Pool API keys (shown once, stored hashed).
    #[command(subcommand)]
    PoolKey(PoolKey),
}

#[derive(Debug, clap::Subcommand)]
enum PoolKey {
    /// Create a key for REGION.
    Add {
        /// The region.
        region: String,
    },
    /// Replace KEY_ID with a new key for its region; the old one stays valid for the grace period.
    Rotate {
        /// The key to replace.
        key_id: String,
        /// Seconds the old key stays valid.
        #[arg(long, default_value_t = 3600)]
        grace: u64,
    },
    /// Revoke KEY_ID.
    Revoke {
        /// The key.
        key_id: String,
    },
    /// List live keys (ids and regions only).
    List,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    // The command line first: a usage error or `--help` needs no database.
    let args = <Args as clap::Parser>::parse();
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
    match args.command {
        Command::Migrate => {
            let applied = migrate::migrate(&mut client).await?;
            eprintln!("edgeshell-db: applied {applied:?}; now at {:?}", migrate::applied_versions(&client).await?);
        }
        Command::Status => eprintln!("edgeshell-db: applied {:?}", migrate::applied_versions(&client).await?),
        Command::Cleanup { seconds } => loop {
            eprintln!("edgeshell-db: cleanup {:?}", cleanup::cleanup(&client).await?);
            match seconds {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs.max(1))).await,
                None => break,
            }
        },
        Command::PoolKey(PoolKey::Add { region }) => {
            edgeshell_core::ids::RegionId::new(region.as_str()).context("REGION")?;
            let (key_id, key) = pool_keys::add(&client, &region).await?;
            eprintln!("edgeshell-db: pool key {key_id} for region {region}; it is shown only now:");
            writeln!(std::io::stdout(), "{key}")?;
        }
        Command::PoolKey(PoolKey::Revoke { key_id }) => {
            if !pool_keys::revoke(&client, &key_id).await? {
                bail!("no live key {key_id}");
            }
            eprintln!("edgeshell-db: revoked {key_id}");
        }
        Command::PoolKey(PoolKey::Rotate { key_id, grace }) => {
            let Some((region, new_id, key)) = pool_keys::rotate(&client, &key_id, grace).await? else {
                bail!("no live key {key_id}");
            };
            eprintln!(
                "edgeshell-db: pool key {new_id} for region {region} replaces {key_id}, which stays valid {grace} s; the new key is shown only now:"
            );
            writeln!(std::io::stdout(), "{key}")?;
        }
        Command::PoolKey(PoolKey::List) => {
            for (id, region, created) in pool_keys::list(&client).await? {
                writeln!(std::io::stdout(), "{id}\t{region}\t{created}")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_command_line_reads_as_documented() {
        <Args as clap::CommandFactory>::command().debug_assert();
        let parse = |line: &[&str]| Args::try_parse_from(std::iter::once("edgeshell-db").chain(line.iter().copied()));
        assert!(matches!(parse(&["cleanup", "30"]).unwrap().command, Command::Cleanup { seconds: Some(30) }));
        assert!(matches!(parse(&["cleanup"]).unwrap().command, Command::Cleanup { seconds: None }));
        let rotate = parse(&["pool-key", "rotate", "pk_1"]).unwrap().command;
        assert!(matches!(rotate, Command::PoolKey(PoolKey::Rotate { ref key_id, grace: 3600 }) if key_id == "pk_1"));
        let rotate = parse(&["pool-key", "rotate", "pk_1", "--grace", "60"]).unwrap().command;
        assert!(matches!(rotate, Command::PoolKey(PoolKey::Rotate { grace: 60, .. })));
        for bad in [&["cleanup", "soon"][..], &["pool-key", "add"], &["pool-key", "rotate", "pk", "--grace"], &["drop"]]
        {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
