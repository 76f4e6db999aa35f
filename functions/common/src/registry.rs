//! The pool registry as placement sees it: each region's status, the sum of its agents' reports, read
//! once for the sessions component (placement) and the pools component (the public region list).

use crate::db::{col, Db};
use crate::reply::ApiError;
use edgeshell_core::ids::RegionId;
use edgeshell_core::placement::RegionStatus;
use edgeshell_core::templates::{common_offers, TemplateOffer};
use edgeshell_core::time::Timestamp;

/// One region's pool.
#[derive(Debug, Clone)]
pub struct Pool {
    /// What placement needs.
    pub status: RegionStatus,
    /// The templates all its agents heard from within the health TTL offer.
    pub offers: Vec<TemplateOffer>,
    /// The reports of its agents not heard from within the health TTL.
    pub stale: Vec<Vec<TemplateOffer>>,
}

/// Every region whose agents have reported, by region: the capacity and load of its agents heard from
/// within `health_ttl` (draining ones add no capacity), draining when none of them takes sessions, and
/// its latest report.
pub fn load(db: &Db, health_ttl: core::time::Duration) -> Result<Vec<Pool>, ApiError> {
    let rows = db.query(
        "SELECT region,
                coalesce(sum(capacity) FILTER (WHERE fresh AND NOT draining), 0)::int4,
                coalesce(sum(load) FILTER (WHERE fresh), 0)::int4,
                coalesce(bool_and(draining) FILTER (WHERE fresh), true),
                (extract(epoch FROM max(last_heartbeat)) * 1000)::int8,
                coalesce(jsonb_agg(templates ORDER BY agent) FILTER (WHERE fresh AND NOT draining), '[]')::text,
                coalesce(jsonb_agg(templates ORDER BY agent) FILTER (WHERE NOT fresh OR draining), '[]')::text
         FROM (SELECT *, last_heartbeat > now() - make_interval(secs => $1::int8) AS fresh FROM pool_agents) a
         GROUP BY region ORDER BY region",
        &[crate::db::int(i64::try_from(health_ttl.as_secs()).unwrap_or(i64::MAX))],
    )?;
    let mut pools = Vec::with_capacity(rows.len());
    for row in rows {
        let Ok(region) = RegionId::new(col::<String>(&row, 0)?) else { continue };
        // Each report was checked when it was stored; one unreadable now offers nothing.
        let reports: Vec<Vec<TemplateOffer>> = serde_json::from_str(&col::<String>(&row, 5)?).unwrap_or_default();
        pools.push(Pool {
            offers: common_offers(&reports),
            stale: serde_json::from_str(&col::<String>(&row, 6)?).unwrap_or_default(),
            status: RegionStatus {
                region,
                capacity: u32::try_from(col::<i32>(&row, 1)?).unwrap_or(0),
                load: u32::try_from(col::<i32>(&row, 2)?).unwrap_or(u32::MAX),
                draining: col(&row, 3)?,
                last_heartbeat: Timestamp::from_millis(u64::try_from(col::<i64>(&row, 4)?).unwrap_or(0)),
            },
        });
    }
    Ok(pools)
}

/// A live pool key's `(key_id, region)` by its SHA-256 (a rotated key lives until its grace ends); 401
/// `invalid_api_key` for an unknown or revoked one.
pub fn key_owner(db: &Db, sha256: &[u8]) -> Result<(String, String), ApiError> {
    use crate::reply::ErrorCode;
    let row = db
        .query_opt(
            "SELECT key_id, region FROM pool_api_keys
             WHERE key_sha256 = $1 AND (revoked_at IS NULL OR revoked_at > now())",
            &[spin_sdk::pg4::ParameterValue::Binary(sha256.to_vec())],
        )?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidApiKey, "unknown or revoked pool key"))?;
    Ok((col(&row, 0)?, col(&row, 1)?))
}
