//! The pool registry as placement sees it: each registered pool's status and endpoint, read once
//! for the sessions component (placement) and the pools component (the public region list).

use crate::db::{col, text, Db};
use crate::reply::ApiError;
use edgeshell_core::ids::RegionId;
use edgeshell_core::placement::RegionStatus;
use edgeshell_core::time::Timestamp;

/// One registered pool.
#[derive(Debug, Clone)]
pub struct Pool {
    /// What placement needs.
    pub status: RegionStatus,
    /// Where its agent takes commands.
    pub endpoint: String,
}

/// Every pool that has heartbeated at least once, by region.
pub fn load(db: &Db) -> Result<Vec<Pool>, ApiError> {
    let rows = db.query(
        "SELECT region, endpoint, capacity, load, draining, (extract(epoch FROM last_heartbeat) * 1000)::int8
         FROM pools WHERE last_heartbeat IS NOT NULL ORDER BY region",
        &[],
    )?;
    let mut pools = Vec::with_capacity(rows.len());
    for row in rows {
        let Ok(region) = RegionId::new(col::<String>(&row, 0)?) else { continue };
        pools.push(Pool {
            endpoint: col(&row, 1)?,
            status: RegionStatus {
                region,
                capacity: u32::try_from(col::<i32>(&row, 2)?).unwrap_or(0),
                load: u32::try_from(col::<i32>(&row, 3)?).unwrap_or(u32::MAX),
                draining: col(&row, 4)?,
                last_heartbeat: Timestamp::from_millis(u64::try_from(col::<i64>(&row, 5)?).unwrap_or(0)),
            },
        });
    }
    Ok(pools)
}

/// The endpoint of one region's pool, if registered.
pub fn endpoint_of(db: &Db, region: &str) -> Result<Option<String>, ApiError> {
    match db.query_opt("SELECT endpoint FROM pools WHERE region = $1", &[text(region)])? {
        Some(row) => Ok(Some(col(&row, 0)?)),
        None => Ok(None),
    }
}
