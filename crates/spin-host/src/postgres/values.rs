//! Values between the guest's `spin:postgres` types and `tokio-postgres`: booleans, integers, floats,
//! text, bytea, jsonb, timestamps and NULL convert both ways; other column types come back as
//! `unsupported` with their raw bytes, other parameter types are refused.

use super::pg;
use std::time::{Duration, UNIX_EPOCH};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

/// NULL for a parameter of any type (the server infers the type from the statement).
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

/// JSON text sent as `jsonb` (version byte 1, then the text).
#[derive(Debug)]
struct Jsonb(Vec<u8>);

impl ToSql for Jsonb {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
    tokio_postgres::types::to_sql_checked!();
}

pub(super) fn to_sql_params(params: Vec<pg::ParameterValue>) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, pg::Error> {
    use pg::ParameterValue as P;
    params
        .into_iter()
        .map(|p| -> Result<Box<dyn ToSql + Sync + Send>, pg::Error> {
            Ok(match p {
                P::Boolean(v) => Box::new(v),
                P::Int8(v) => Box::new(i16::from(v)),
                P::Int16(v) => Box::new(v),
                P::Int32(v) => Box::new(v),
                P::Int64(v) => Box::new(v),
                P::Floating32(v) => Box::new(v),
                P::Floating64(v) => Box::new(v),
                P::Str(v) => Box::new(v),
                P::Binary(v) => Box::new(v),
                P::Timestamp(secs) => {
                    let t = if secs >= 0 {
                        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
                    } else {
                        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                    };
                    Box::new(t)
                }
                P::Jsonb(v) => Box::new(Jsonb(v)),
                P::DbNull => Box::new(Null),
                other => {
                    return Err(pg::Error::BadParameter(format!(
                        "parameter type not supported by this host: {other:?}"
                    )))
                }
            })
        })
        .collect()
}

pub(super) fn column(c: &tokio_postgres::Column) -> pg::Column {
    use pg::DbDataType as T;
    let data_type = match *c.type_() {
        Type::BOOL => T::Boolean,
        Type::INT2 => T::Int16,
        Type::INT4 => T::Int32,
        Type::INT8 => T::Int64,
        Type::FLOAT4 => T::Floating32,
        Type::FLOAT8 => T::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => T::Str,
        Type::BYTEA => T::Binary,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => T::Timestamp,
        Type::JSONB => T::Jsonb,
        ref other => T::Other(other.name().to_owned()),
    };
    pg::Column { name: c.name().to_owned(), data_type }
}

/// Any column's raw bytes (for `unsupported`).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `jsonb` from the wire: drop the version byte.
struct JsonbOut(Vec<u8>);

impl<'a> FromSql<'a> for JsonbOut {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonbOut(raw.get(1..).unwrap_or_default().to_vec()))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
}

pub(super) fn value(row: &tokio_postgres::Row, i: usize) -> pg::DbValue {
    use pg::DbValue as V;
    fn get<'a, T: FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize, f: impl Fn(T) -> V) -> V {
        match row.try_get::<_, Option<T>>(i) {
            Ok(Some(v)) => f(v),
            Ok(None) => V::DbNull,
            Err(e) => V::Unsupported(e.to_string().into_bytes()),
        }
    }
    match *row.columns()[i].type_() {
        Type::BOOL => get(row, i, V::Boolean),
        Type::INT2 => get(row, i, V::Int16),
        Type::INT4 => get(row, i, V::Int32),
        Type::INT8 => get(row, i, V::Int64),
        Type::FLOAT4 => get(row, i, V::Floating32),
        Type::FLOAT8 => get(row, i, V::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => get(row, i, V::Str),
        Type::BYTEA => get(row, i, V::Binary),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get(row, i, |t: std::time::SystemTime| {
            V::Timestamp(match t.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            })
        }),
        Type::JSONB => get(row, i, |j: JsonbOut| V::Jsonb(j.0)),
        _ => get(row, i, |r: Raw| V::Unsupported(r.0)),
    }
}
