//! The user's data key: loaded and unwrapped, created on first use, and wrapped again with the
//! current key-encryption key when an earlier one wrapped it; `rewrap_all` does the same for every
//! user, so a rotated-out KEK can be dropped once it reports none left.

use edgeshell_core::vault::{DataKey, KekRing, WrappedKey, NONCE_LEN};
use edgeshell_fn::db::{col, text, Db};
use edgeshell_fn::platform::entropy;
use edgeshell_fn::reply::{self, ApiError, ErrorCode};
use edgeshell_fn::settings;
use spin_sdk::pg4::ParameterValue;

/// The deployment's key-encryption keys.
pub(crate) fn ring() -> Result<KekRing, ApiError> {
    let (current, previous) =
        settings::read(|s| Ok((s.required("secrets_kek")?, s.text("previous_secrets_kek")?.unwrap_or_default())))?;
    KekRing::parse(&current, &previous)
        .map_err(|e| ApiError::new(ErrorCode::Misconfigured, format!("secrets_kek: {e}")))
}

/// 12 random bytes for a nonce.
pub(crate) fn nonce() -> [u8; NONCE_LEN] {
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

/// `owner`'s data key, if they have one; rewrapped with the current KEK when an earlier one wrapped it.
pub(crate) fn existing(db: &Db, ring: &KekRing, owner: &str) -> Result<Option<DataKey>, ApiError> {
    let Some(row) = db.query_opt("SELECT kek_id, wrapped FROM user_keys WHERE owner = $1", &[text(owner)])? else {
        return Ok(None);
    };
    let wrapped = WrappedKey { kek_id: col(&row, 0)?, sealed: col(&row, 1)? };
    let key = ring.unwrap(owner, &wrapped).map_err(|e| reply::internal(format!("the data key of a user: {e}")))?;
    if ring.needs_rewrap(&wrapped) {
        let again = ring.wrap(owner, &key, nonce());
        // Only if nobody rewrapped it meanwhile: the same key either way.
        db.execute(
            "UPDATE user_keys SET kek_id = $2, wrapped = $3, rewrapped_at = now() WHERE owner = $1 AND kek_id = $4",
            &[text(owner), text(again.kek_id), ParameterValue::Binary(again.sealed), text(wrapped.kek_id)],
        )?;
    }
    Ok(Some(key))
}

/// `owner`'s data key, made and stored (wrapped) on first use. Two first uses at once keep one key.
pub(crate) fn for_owner(db: &Db, ring: &KekRing, owner: &str) -> Result<DataKey, ApiError> {
    if let Some(key) = existing(db, ring, owner)? {
        return Ok(key);
    }
    let key = random_key();
    let wrapped = ring.wrap(owner, &key, nonce());
    let inserted = db.execute(
        "INSERT INTO user_keys (owner, kek_id, wrapped) VALUES ($1, $2, $3) ON CONFLICT (owner) DO NOTHING",
        &[text(owner), text(wrapped.kek_id), ParameterValue::Binary(wrapped.sealed)],
    )?;
    if inserted == 1 {
        return Ok(key);
    }
    existing(db, ring, owner)?.ok_or_else(|| reply::internal("a user's data key vanished"))
}

/// Rewraps up to `batch` data keys an earlier KEK wrapped; answers (rewrapped, still on earlier KEKs).
pub(crate) fn rewrap_all(db: &Db, ring: &KekRing, batch: i64) -> Result<(u64, u64), ApiError> {
    let rows = db.query(
        "SELECT owner FROM user_keys WHERE kek_id <> $1 ORDER BY owner LIMIT $2",
        &[text(ring.current_id()), edgeshell_fn::db::int(batch)],
    )?;
    let mut done = 0;
    for row in rows {
        let owner: String = col(&row, 0)?;
        existing(db, ring, &owner)?;
        done += 1;
    }
    let left = db
        .query_opt("SELECT count(*) FROM user_keys WHERE kek_id <> $1", &[text(ring.current_id())])?
        .map(|r| col::<i64>(&r, 0))
        .transpose()?
        .unwrap_or(0);
    Ok((done, u64::try_from(left).unwrap_or(0)))
}
