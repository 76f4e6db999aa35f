//! Values between the guest's `spin:postgres@4.0.0` types and `tokio-postgres`, converted as Spin
//! converts them (`spin-factor-outbound-pg`), type by type and error by error:
//!
//! - parameters: `int8` is Postgres's one-byte `"char"`, `date`/`time`/`datetime` are naive (no zone),
//!   `timestamp` is whole seconds since the epoch sent as `timestamptz`, `uuid` and `decimal` are
//!   parsed from text, `jsonb` must be JSON (it is sent re-serialized), ranges and arrays of
//!   `int4`/`int8`/`numeric`/text, `interval` as months, days and microseconds, `db-null` for any type;
//! - columns: `timestamp` and `timestamptz` are declared `datetime` (a `timestamptz` value then fails
//!   to convert, as on Spin), `numeric` is `decimal` text, `jsonb` comes back re-serialized, and any
//!   other type is `other(name)` with its raw bytes as `unsupported`.
//!
//! A parameter that does not convert fails the statement before it is sent (`bad-parameter` for a
//! query, `value-conversion-failed` for an execute); a column value that does not convert fails the
//! query (`query-failed`).

use super::pg;
use anyhow::{anyhow, Context};
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

/// `interval` on the wire: microseconds, days, months.
#[derive(Debug, Clone, Copy)]
struct Interval(pg::Interval);

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, mut raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::Buf;
        if raw.len() != 16 {
            return Err(format!("an interval is 16 bytes, not {}", raw.len()).into());
        }
        let micros = raw.get_i64();
        let days = raw.get_i32();
        let months = raw.get_i32();
        Ok(Interval(pg::Interval { micros, days, months }))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// A decimal that ranges can hold (`postgres_range` needs its bound types to be normalizable).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct RangeableDecimal(rust_decimal::Decimal);

impl ToSql for RangeableDecimal {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }
    fn accepts(ty: &Type) -> bool {
        <rust_decimal::Decimal as ToSql>::accepts(ty)
    }
    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for RangeableDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RangeableDecimal(<rust_decimal::Decimal as FromSql>::from_sql(ty, raw)?))
    }
    fn accepts(ty: &Type) -> bool {
        <rust_decimal::Decimal as FromSql>::accepts(ty)
    }
}

impl postgres_range::Normalizable for RangeableDecimal {
    fn normalize<S: postgres_range::BoundSided>(
        bound: postgres_range::RangeBound<S, RangeableDecimal>,
    ) -> postgres_range::RangeBound<S, RangeableDecimal> {
        bound
    }
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

/// What a statement is asked for: the parameter errors differ, as on Spin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum For {
    Query,
    Execute,
}

type Param = Box<dyn ToSql + Sync + Send>;
type WitRange<T> = (Option<(T, pg::RangeBoundKind)>, Option<(T, pg::RangeBoundKind)>);

fn bound_kind(kind: pg::RangeBoundKind) -> postgres_range::BoundType {
    match kind {
        pg::RangeBoundKind::Inclusive => postgres_range::BoundType::Inclusive,
        pg::RangeBoundKind::Exclusive => postgres_range::BoundType::Exclusive,
    }
}

fn wit_bound_kind(kind: postgres_range::BoundType) -> pg::RangeBoundKind {
    match kind {
        postgres_range::BoundType::Inclusive => pg::RangeBoundKind::Inclusive,
        postgres_range::BoundType::Exclusive => pg::RangeBoundKind::Exclusive,
    }
}

fn range<T: postgres_range::Normalizable + PartialOrd>((lower, upper): WitRange<T>) -> postgres_range::Range<T> {
    let lower = lower.map(|(v, k)| postgres_range::RangeBound::new(v, bound_kind(k)));
    let upper = upper.map(|(v, k)| postgres_range::RangeBound::new(v, bound_kind(k)));
    postgres_range::Range::new(lower, upper)
}

fn wit_range<T: Copy + postgres_range::Normalizable + PartialOrd, U>(
    value: postgres_range::Range<T>,
    f: impl Fn(T) -> U,
) -> WitRange<U> {
    let lower = value.lower().map(|b| (f(b.value), wit_bound_kind(b.type_)));
    let upper = value.upper().map(|b| (f(b.value), wit_bound_kind(b.type_)));
    (lower, upper)
}

fn decimal(text: &str) -> anyhow::Result<rust_decimal::Decimal> {
    rust_decimal::Decimal::from_str_exact(text).with_context(|| format!("invalid decimal {text}"))
}

fn date((y, m, d): (i32, u8, u8)) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into()).ok_or_else(|| anyhow!("invalid date y={y}, m={m}, d={d}"))
}

fn time((h, min, s, ns): (u8, u8, u8, u32)) -> anyhow::Result<chrono::NaiveTime> {
    chrono::NaiveTime::from_hms_nano_opt(h.into(), min.into(), s.into(), ns)
        .ok_or_else(|| anyhow!("invalid time {h}:{min}:{s}:{ns}"))
}

fn param(value: pg::ParameterValue) -> anyhow::Result<Param> {
    use pg::ParameterValue as P;
    Ok(match value {
        P::Boolean(v) => Box::new(v),
        P::Int8(v) => Box::new(v),
        P::Int16(v) => Box::new(v),
        P::Int32(v) => Box::new(v),
        P::Int64(v) => Box::new(v),
        P::Floating32(v) => Box::new(v),
        P::Floating64(v) => Box::new(v),
        P::Str(v) => Box::new(v),
        P::Binary(v) => Box::new(v),
        P::Date(v) => Box::new(date(v)?),
        P::Time(v) => Box::new(time(v)?),
        P::Datetime((y, mo, d, h, mi, s, ns)) => {
            Box::new(chrono::NaiveDateTime::new(date((y, mo, d))?, time((h, mi, s, ns))?))
        }
        P::Timestamp(secs) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
                .ok_or_else(|| anyhow!("invalid epoch timestamp {secs}"))?,
        ),
        P::Uuid(v) => Box::new(uuid::Uuid::parse_str(&v).with_context(|| format!("invalid UUID {v}"))?),
        P::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&v)
                .with_context(|| format!("invalid JSON {}", String::from_utf8_lossy(&v)))?,
        ),
        P::Decimal(v) => Box::new(decimal(&v)?),
        P::RangeInt32(v) => Box::new(range(v)),
        P::RangeInt64(v) => Box::new(range(v)),
        P::RangeDecimal((lower, upper)) => {
            let bound = |b: Option<(String, pg::RangeBoundKind)>| -> anyhow::Result<_> {
                b.map(|(v, k)| Ok((RangeableDecimal(decimal(&v)?), k))).transpose()
            };
            Box::new(range((bound(lower)?, bound(upper)?)))
        }
        P::ArrayInt32(v) => Box::new(v),
        P::ArrayInt64(v) => Box::new(v),
        P::ArrayDecimal(v) => {
            Box::new(v.iter().map(|d| d.as_deref().map(decimal).transpose()).collect::<anyhow::Result<Vec<_>>>()?)
        }
        P::ArrayStr(v) => Box::new(v),
        P::Interval(v) => Box::new(Interval(v)),
        P::DbNull => Box::new(Null),
    })
}

/// The statement's parameters, or the guest's error for the first that does not convert.
pub(super) fn to_sql_params(params: Vec<pg::ParameterValue>, asked: For) -> Result<Vec<Param>, pg::Error> {
    params.into_iter().map(param).collect::<anyhow::Result<Vec<_>>>().map_err(|e| match asked {
        For::Query => pg::Error::BadParameter(format!("{e:?}")),
        For::Execute => pg::Error::ValueConversionFailed(format!("{e:?}")),
    })
}

pub(super) fn column(c: &tokio_postgres::Column) -> pg::Column {
    use pg::DbDataType as T;
    let data_type = match *c.type_() {
        Type::BOOL => T::Boolean,
        Type::BYTEA => T::Binary,
        Type::FLOAT4 => T::Floating32,
        Type::FLOAT8 => T::Floating64,
        Type::INT2 => T::Int16,
        Type::INT4 => T::Int32,
        Type::INT8 => T::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => T::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => T::Datetime,
        Type::DATE => T::Date,
        Type::TIME => T::Time,
        Type::UUID => T::Uuid,
        Type::JSONB => T::Jsonb,
        Type::NUMERIC => T::Decimal,
        Type::INT4_RANGE => T::RangeInt32,
        Type::INT8_RANGE => T::RangeInt64,
        Type::NUM_RANGE => T::RangeDecimal,
        Type::INT4_ARRAY => T::ArrayInt32,
        Type::INT8_ARRAY => T::ArrayInt64,
        Type::NUMERIC_ARRAY => T::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => T::ArrayStr,
        Type::INTERVAL => T::Interval,
        ref other => T::Other(other.name().to_owned()),
    };
    pg::Column { name: c.name().to_owned(), data_type }
}

fn get<'a, T: FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    i: usize,
    f: impl Fn(T) -> anyhow::Result<pg::DbValue>,
) -> anyhow::Result<pg::DbValue> {
    match row.try_get::<_, Option<T>>(i)? {
        Some(v) => f(v),
        None => Ok(pg::DbValue::DbNull),
    }
}

fn value(row: &tokio_postgres::Row, i: usize) -> anyhow::Result<pg::DbValue> {
    use chrono::{Datelike, Timelike};
    use pg::DbValue as V;
    let small = |n: u32| -> anyhow::Result<u8> { Ok(u8::try_from(n)?) };
    match *row.columns()[i].type_() {
        Type::BOOL => get(row, i, |v| Ok(V::Boolean(v))),
        Type::BYTEA => get(row, i, |v| Ok(V::Binary(v))),
        Type::FLOAT4 => get(row, i, |v| Ok(V::Floating32(v))),
        Type::FLOAT8 => get(row, i, |v| Ok(V::Floating64(v))),
        Type::INT2 => get(row, i, |v| Ok(V::Int16(v))),
        Type::INT4 => get(row, i, |v| Ok(V::Int32(v))),
        Type::INT8 => get(row, i, |v| Ok(V::Int64(v))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, i, |v| Ok(V::Str(v))),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get(row, i, |v: chrono::NaiveDateTime| {
            let (d, t) = (v.date(), v.time());
            Ok(V::Datetime((
                d.year(),
                small(d.month())?,
                small(d.day())?,
                small(t.hour())?,
                small(t.minute())?,
                small(t.second())?,
                t.nanosecond(),
            )))
        }),
        Type::DATE => get(row, i, |d: chrono::NaiveDate| Ok(V::Date((d.year(), small(d.month())?, small(d.day())?)))),
        Type::TIME => get(row, i, |t: chrono::NaiveTime| {
            Ok(V::Time((small(t.hour())?, small(t.minute())?, small(t.second())?, t.nanosecond())))
        }),
        Type::UUID => get(row, i, |v: uuid::Uuid| Ok(V::Uuid(v.to_string()))),
        Type::JSONB => get(row, i, |v: serde_json::Value| {
            Ok(V::Jsonb(serde_json::to_vec(&v).context("invalid JSON from database")?))
        }),
        Type::NUMERIC => get(row, i, |v: rust_decimal::Decimal| Ok(V::Decimal(v.to_string()))),
        Type::INT4_RANGE => get(row, i, |v: postgres_range::Range<i32>| Ok(V::RangeInt32(wit_range(v, |x| x)))),
        Type::INT8_RANGE => get(row, i, |v: postgres_range::Range<i64>| Ok(V::RangeInt64(wit_range(v, |x| x)))),
        Type::NUM_RANGE => get(row, i, |v: postgres_range::Range<RangeableDecimal>| {
            Ok(V::RangeDecimal(wit_range(v, |d| d.0.to_string())))
        }),
        Type::INT4_ARRAY => get(row, i, |v| Ok(V::ArrayInt32(v))),
        Type::INT8_ARRAY => get(row, i, |v| Ok(V::ArrayInt64(v))),
        Type::NUMERIC_ARRAY => get(row, i, |v: Vec<Option<rust_decimal::Decimal>>| {
            Ok(V::ArrayDecimal(v.iter().map(|d| d.map(|d| d.to_string())).collect()))
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => get(row, i, |v| Ok(V::ArrayStr(v))),
        Type::INTERVAL => get(row, i, |v: Interval| Ok(V::Interval(v.0))),
        _ => get(row, i, |r: Raw| Ok(V::Unsupported(r.0))),
    }
}

/// A row as the guest gets it; a value that does not convert fails the query.
pub(super) fn row(row: &tokio_postgres::Row) -> Result<Vec<pg::DbValue>, pg::Error> {
    (0..row.len())
        .map(|i| value(row, i))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| pg::Error::QueryFailed(pg::QueryError::Text(format!("{e:?}"))))
}

#[cfg(test)]
mod tests;
