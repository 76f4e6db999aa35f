//! Data keys, stored only wrapped by the deployment's key-encryption keys (`crate::vault` of the
//! core): each user's (their secrets) and each session's (its artifacts' content). Loaded and unwrapped,
//! created on first use, and wrapped again with the current KEK when an earlier one wrapped it;
//! [`rewrap_all`] does the same for every key, so a rotated-out KEK can be dropped once it reports none
//! left.

use crate::db::{col, int, text, Db};
use crate::platform::entropy;
use crate::reply::{self, ApiError, ErrorCode};
use crate::settings;
use edgeshell_core::vault::{DataKey, KekRing, WrappedKey, NONCE_LEN};
use spin_sdk::pg4::ParameterValue;

/// Whose data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A user's (`user_keys`), by subject.
    User,
    /// A session's (`session_keys`), by id.
    Session,
}

impl Holder {
    /// Its table and id column.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Holder::User => ("user_keys", "owner"),
            Holder::Session => ("session_keys", "session_id"),
        }
    }

    /// What the wrapping binds the key to (the AEAD's associated data): distinct for users and sessions.
    fn bound_to(self, id: &str) -> String {
        match self {
            Holder::User => id.to_owned(),
            Holder::Session => format!("session\0{id}"),
        }
    }
}

/// The deployment's key-encryption keys.
pub fn ring() -> Result<KekRing, ApiError> {
    let (current, previous) =
        settings::read(|s| Ok((s.required("secrets_kek")?, s.text("previous_secrets_kek")?.unwrap_or_default())))?;
    KekRing::parse(&current, &previous)
        .map_err(|e| ApiError::new(ErrorCode::Misconfigured, format!("secrets_kek: {e}")))
}

/// 12 random bytes for a nonce.
pub fn nonce() -> [u8; NONCE_LEN] {
    let bytes = entropy();
    let mut out = [0; NONCE_LEN];
    out.copy_from_slice(&bytes[..NONCE_LEN]);
    out
}

fn random_key() -> DataKey {
    let (a, b) = (entropy(), entropy());
    let mut bytes = [0; 32];
    bytes[..16].copy_from_slice(&a);
    bytes[16..].copy_from_slice(&b);
    DataKey::from_random(bytes)
}

/// The data key of `holder` `id`, if it has one; rewrapped with the current KEK when an earlier one
/// wrapped it.
pub fn existing(db: &Db, ring: &KekRing, holder: Holder, id: &str) -> Result<Option<DataKey>, ApiError> {
    let (table, column) = holder.table();
    let select = format!("SELECT kek_id, wrapped FROM {table} WHERE {column} = $1");
    let Some(row) = db.query_opt(&select, &[text(id)])? else {
        return Ok(None);
    };
    let wrapped = WrappedKey { kek_id: col(&row, 0)?, sealed: col(&row, 1)? };
    let bound = holder.bound_to(id);
    let key = ring.unwrap(&bound, &wrapped).map_err(|e| reply::internal(format!("a data key: {e}")))?;
    if ring.needs_rewrap(&wrapped) {
        let again = ring.wrap(&bound, &key, nonce());
        // Only if nobody rewrapped it meanwhile: the same key either way.
        let update = format!(
            "UPDATE {table} SET kek_id = $2, wrapped = $3, rewrapped_at = now() WHERE {column} = $1 AND kek_id = $4"
        );
        db.execute(
            &update,
            &[text(id), text(again.kek_id), ParameterValue::Binary(again.sealed), text(wrapped.kek_id)],
        )?;
    }
    Ok(Some(key))
}

/// The data key of `holder` `id`, made and stored (wrapped) on first use. Two first uses at once keep
/// one key.
pub fn for_holder(db: &Db, ring: &KekRing, holder: Holder, id: &str) -> Result<DataKey, ApiError> {
    if let Some(key) = existing(db, ring, holder, id)? {
        return Ok(key);
    }
    let key = random_key();
    let wrapped = ring.wrap(&holder.bound_to(id), &key, nonce());
    let (table, column) = holder.table();
    let insert = format!(
        "INSERT INTO {table} ({column}, kek_id, wrapped) VALUES ($1, $2, $3) ON CONFLICT ({column}) DO NOTHING"
    );
    let inserted = db.execute(&insert, &[text(id), text(wrapped.kek_id), ParameterValue::Binary(wrapped.sealed)])?;
    if inserted == 1 {
        return Ok(key);
    }
    existing(db, ring, holder, id)?.ok_or_else(|| reply::internal("a data key vanished"))
}

/// Rewraps up to `batch` data keys (users' first, then sessions') an earlier KEK wrapped; answers
/// (rewrapped, still on earlier KEKs).
pub fn rewrap_all(db: &Db, ring: &KekRing, batch: i64) -> Result<(u64, u64), ApiError> {
    let mut done = 0;
    let mut left = 0;
    for holder in [Holder::User, Holder::Session] {
        let (table, column) = holder.table();
        let select = format!("SELECT {column} FROM {table} WHERE kek_id <> $1 ORDER BY {column} LIMIT $2");
        let rows = db.query(&select, &[text(ring.current_id()), int(batch - done as i64)])?;
        for row in rows {
            let id: String = col(&row, 0)?;
            existing(db, ring, holder, &id)?;
            done += 1;
        }
        let count = format!("SELECT count(*) FROM {table} WHERE kek_id <> $1");
        left += db
            .query_opt(&count, &[text(ring.current_id())])?
            .map(|r| col::<i64>(&r, 0))
            .transpose()?
            .map_or(0, |n| u64::try_from(n).unwrap_or(0));
    }
    Ok((done, left))
}
