//! A user's own secrets: listed by name, set, deleted. Values go in and never come out.

use edgeshell_core::vault::{check_secret_name, check_secret_value, MAX_SECRETS_PER_USER, MAX_SECRET_VALUE};
use edgeshell_fn::data_keys as keys;
use edgeshell_fn::db::{col, text, Db};
use edgeshell_fn::identity::authenticate;
use edgeshell_fn::ratelimit;
use edgeshell_fn::reply::{json, ApiError, ErrorCode};
use edgeshell_fn::request::{json_body, Request};
use edgeshell_fn::Reply;
use spin_sdk::pg4::ParameterValue;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSecret {
    value: String,
}

fn bad(field: &str, why: String) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, format!("{field}: {why}"))
}

pub(crate) fn list(req: &Request) -> Reply {
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "secrets")?;
    let rows = db.query(
        "SELECT name, extract(epoch FROM set_at)::int8 FROM user_secrets WHERE owner = $1 ORDER BY name",
        &[text(user.subject.as_str())],
    )?;
    let secrets = rows
        .iter()
        .map(|r| Ok(serde_json::json!({ "name": col::<String>(r, 0)?, "set_at": col::<i64>(r, 1)? })))
        .collect::<Result<Vec<_>, ApiError>>()?;
    json(200, &serde_json::json!({ "secrets": secrets }))
}

pub(crate) fn set(req: &Request, name: &str) -> Reply {
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "secrets")?;
    check_secret_name(name).map_err(|e| bad("name", e))?;
    let input: SetSecret = json_body(req, MAX_SECRET_VALUE * 2 + 64)?;
    check_secret_value(&input.value).map_err(|e| bad("value", e))?;
    let owner = user.subject.as_str();
    let ring = keys::ring()?;
    let key = keys::for_holder(&db, &ring, keys::Holder::User, owner)?;
    let sealed = key.seal(owner, name, input.value.as_bytes(), keys::nonce());
    // Counted and written under the user's lock: concurrent sets cannot pass the limit together.
    let set_at = db.transaction(|tx| {
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 11))", &[text(owner)])?;
        let count = tx
            .query_opt("SELECT count(*) FROM user_secrets WHERE owner = $1 AND name <> $2", &[text(owner), text(name)])?
            .map(|r| col::<i64>(&r, 0))
            .transpose()?
            .unwrap_or(0);
        if count >= MAX_SECRETS_PER_USER as i64 {
            return Err(ApiError::new(
                ErrorCode::QuotaExceeded,
                format!("at most {MAX_SECRETS_PER_USER} secrets per user; delete one first"),
            ));
        }
        let row = tx
            .query_opt(
                "WITH stored AS (
                     INSERT INTO user_secrets (owner, name, sealed, set_at) VALUES ($1, $2, $3, now())
                     ON CONFLICT (owner, name) DO UPDATE SET sealed = EXCLUDED.sealed, set_at = now()
                     RETURNING set_at
                 ), audited AS (
                     INSERT INTO audit_log (actor, action, detail) VALUES ($1, 'secret.set', jsonb_build_object('name', $2::text))
                 )
                 SELECT extract(epoch FROM set_at)::int8 FROM stored",
                &[text(owner), text(name), ParameterValue::Binary(sealed)],
            )?
            .ok_or_else(|| edgeshell_fn::reply::internal("the secret was not stored"))?;
        col::<i64>(&row, 0)
    })?;
    json(200, &serde_json::json!({ "name": name, "set_at": set_at }))
}

pub(crate) fn delete(req: &Request, name: &str) -> Reply {
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "secrets")?;
    check_secret_name(name).map_err(|e| bad("name", e))?;
    let deleted = db.execute(
        "WITH gone AS (DELETE FROM user_secrets WHERE owner = $1 AND name = $2 RETURNING name)
         INSERT INTO audit_log (actor, action, detail) SELECT $1, 'secret.delete', jsonb_build_object('name', name) FROM gone",
        &[text(user.subject.as_str()), text(name)],
    )?;
    if deleted == 0 {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no secret {name}")));
    }
    json(200, &serde_json::json!({ "name": name, "deleted": true }))
}
