//! Every `spin:postgres@4.0.0` type against a real PostgreSQL, both ways, with Spin's conversions and
//! error texts.

use super::super::guests::Guests;
use super::super::pg;
use pg::{DbDataType as T, DbValue as V, ParameterValue as P, RangeBoundKind as K};

/// The binding types have no `PartialEq`: compared by their `Debug` form, which shows every field.
macro_rules! same {
    ($got:expr, $want:expr $(, $($msg:tt)+)?) => {
        assert_eq!(format!("{:?}", $got), format!("{:?}", $want) $(, $($msg)+)?)
    };
}

const TABLE: &str = "CREATE TABLE every (id int, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, s text, \
    v varchar(10), c char(5), by bytea, d date, tm time, ts timestamp, u uuid, j jsonb, n numeric, r4 int4range, \
    r8 int8range, rn numrange, a4 int4[], a8 int8[], an numeric[], at text[], iv interval, ch \"char\")";

fn every() -> Vec<P> {
    vec![
        P::Int32(1),
        P::Boolean(true),
        P::Int16(-2),
        P::Int32(3),
        P::Int64(-4_000_000_000),
        P::Floating32(1.5),
        P::Floating64(-2.25),
        P::Str("text ü".into()),
        P::Str("varchar".into()),
        P::Str("ab".into()),
        P::Binary(vec![0, 1, 255]),
        P::Date((1901, 1, 2)),
        P::Time((14, 15, 16, 17_000_000)),
        P::Datetime((1999, 7, 12, 4, 3, 2, 1_000_000)),
        P::Uuid("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8".into()),
        P::Jsonb(br#"{ "a": [1, 2], "b": null }"#.to_vec()),
        P::Decimal("-123.4500".into()),
        P::RangeInt32((Some((1, K::Inclusive)), Some((10, K::Inclusive)))),
        P::RangeInt64((None, Some((5_000_000_000, K::Exclusive)))),
        P::RangeDecimal((Some(("1.5".into(), K::Exclusive)), Some(("2.25".into(), K::Inclusive)))),
        P::ArrayInt32(vec![Some(1), None, Some(3)]),
        P::ArrayInt64(vec![Some(-1)]),
        P::ArrayDecimal(vec![Some("0.10".into()), None]),
        P::ArrayStr(vec![Some("x".into()), None, Some("".into())]),
        P::Interval(pg::Interval { micros: 123_456, days: 10, months: 200 }),
        P::Int8(65),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo xtask test"]
async fn every_type_round_trips_with_spins_conversions() {
    let mut g = Guests::start().await;
    let c = g.open().await;
    g.execute(&c, TABLE).await.unwrap();
    // One positional parameter per column: `$1, $2, ...`.
    let params: Vec<String> = (1..=every().len()).map(|i| format!("${i}")).collect();
    let insert = format!("INSERT INTO every VALUES ({})", params.join(", "));
    same!(g.execute_with(&c, &insert, every()).await, Ok::<u64, ()>(1));
    // Written by SQL: what Postgres holds is read back exactly, fractions of seconds included.
    let literal = "INSERT INTO every (id, tm, ts, iv, n, r4) VALUES (2, '04:05:06.789', '1989-11-24 01:02:03.5', \
                   'P1Y2M3DT4H5M6.7S', 0.000001, '(0,3]')";
    same!(g.execute(&c, literal).await, Ok::<u64, ()>(1));
    let rows = g.query_with(&c, "SELECT * FROM every ORDER BY id", vec![]).await.unwrap();

    let types: Vec<&T> = rows.columns.iter().map(|c| &c.data_type).collect();
    let expected = [
        T::Int32,
        T::Boolean,
        T::Int16,
        T::Int32,
        T::Int64,
        T::Floating32,
        T::Floating64,
        T::Str,
        T::Str,
        T::Str,
        T::Binary,
        T::Date,
        T::Time,
        T::Datetime,
        T::Uuid,
        T::Jsonb,
        T::Decimal,
        T::RangeInt32,
        T::RangeInt64,
        T::RangeDecimal,
        T::ArrayInt32,
        T::ArrayInt64,
        T::ArrayDecimal,
        T::ArrayStr,
        T::Interval,
        T::Other("char".into()),
    ];
    same!(types, expected.iter().collect::<Vec<_>>());

    let first = &rows.rows[0];
    let want = [
        V::Int32(1),
        V::Boolean(true),
        V::Int16(-2),
        V::Int32(3),
        V::Int64(-4_000_000_000),
        V::Floating32(1.5),
        V::Floating64(-2.25),
        V::Str("text ü".into()),
        V::Str("varchar".into()),
        V::Str("ab   ".into()),
        V::Binary(vec![0, 1, 255]),
        V::Date((1901, 1, 2)),
        V::Time((14, 15, 16, 17_000_000)),
        V::Datetime((1999, 7, 12, 4, 3, 2, 1_000_000)),
        V::Uuid("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8".into()),
        // Re-serialized, as Spin does.
        V::Jsonb(br#"{"a":[1,2],"b":null}"#.to_vec()),
        V::Decimal("-123.4500".into()),
        // Postgres normalizes discrete ranges to [lower, upper).
        V::RangeInt32((Some((1, K::Inclusive)), Some((11, K::Exclusive)))),
        V::RangeInt64((None, Some((5_000_000_000, K::Exclusive)))),
        V::RangeDecimal((Some(("1.5".into(), K::Exclusive)), Some(("2.25".into(), K::Inclusive)))),
        V::ArrayInt32(vec![Some(1), None, Some(3)]),
        V::ArrayInt64(vec![Some(-1)]),
        V::ArrayDecimal(vec![Some("0.10".into()), None]),
        V::ArrayStr(vec![Some("x".into()), None, Some("".into())]),
        V::Interval(pg::Interval { micros: 123_456, days: 10, months: 200 }),
        V::Unsupported(vec![65]),
    ];
    for (i, (got, want)) in first.iter().zip(want.iter()).enumerate() {
        same!(got, want, "column {}", rows.columns[i].name);
    }

    let second = &rows.rows[1];
    let column = |name: &str| rows.columns.iter().position(|c| c.name == name).unwrap();
    same!(second[column("tm")], V::Time((4, 5, 6, 789_000_000)));
    same!(second[column("ts")], V::Datetime((1989, 11, 24, 1, 2, 3, 500_000_000)), "no lost fraction");
    let micros = (4 * 3600 + 5 * 60 + 6) * 1_000_000 + 700_000;
    same!(second[column("iv")], V::Interval(pg::Interval { micros, days: 3, months: 14 }));
    same!(second[column("n")], V::Decimal("0.000001".into()));
    same!(second[column("r4")], V::RangeInt32((Some((1, K::Inclusive)), Some((4, K::Exclusive)))));
    same!(second[column("b")], V::DbNull);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo xtask test"]
async fn timestamps_are_epoch_seconds_in_and_a_zoned_column_does_not_convert_out() {
    let mut g = Guests::start().await;
    let c = g.open().await;
    g.execute(&c, "CREATE TABLE stamps (at timestamptz)").await.unwrap();
    let at = 1_700_000_000i64;
    same!(g.execute_with(&c, "INSERT INTO stamps VALUES ($1)", vec![P::Timestamp(at)]).await, Ok::<u64, ()>(1));
    let rows = g.query_with(&c, "SELECT extract(epoch FROM at)::int8 FROM stamps", vec![]).await.unwrap();
    same!(rows.rows[0][0], V::Int64(at));
    // Declared a datetime, but its value fails to convert, as on Spin: read it as `timestamp`.
    let zoned = g.query_with(&c, "SELECT at FROM stamps", vec![]).await;
    assert!(
        matches!(&zoned, Err(pg::Error::QueryFailed(pg::QueryError::Text(why))) if why.contains("timestamptz")),
        "{zoned:?}"
    );
    let naive = g.query_with(&c, "SELECT at AT TIME ZONE 'UTC' FROM stamps", vec![]).await.unwrap();
    same!(naive.rows[0][0], V::Datetime((2023, 11, 14, 22, 13, 20, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo xtask test"]
async fn parameters_that_do_not_convert_are_refused_with_spins_errors() {
    let mut g = Guests::start().await;
    let c = g.open().await;
    let bad = [
        (P::Uuid("not-a-uuid".into()), "invalid UUID not-a-uuid"),
        (P::Decimal("1.2.3".into()), "invalid decimal 1.2.3"),
        (P::Date((2023, 2, 30)), "invalid date y=2023, m=2, d=30"),
        (P::Time((25, 0, 0, 0)), "invalid time 25:0:0:0"),
        (P::Jsonb(b"{nope".to_vec()), "invalid JSON {nope"),
        (P::ArrayDecimal(vec![None, Some("x".into())]), "invalid decimal x"),
    ];
    for (param, why) in bad {
        // A query says bad-parameter; an execute, value-conversion-failed.
        let queried = g.query_with(&c, "SELECT $1", vec![param.clone()]).await;
        assert!(matches!(&queried, Err(pg::Error::BadParameter(e)) if e.contains(why)), "{queried:?}");
        let executed = g.execute_with(&c, "SELECT $1", vec![param]).await;
        assert!(matches!(&executed, Err(pg::Error::ValueConversionFailed(e)) if e.contains(why)), "{executed:?}");
    }
    // Another type's column: its raw bytes.
    let rows = g.query_with(&c, "SELECT 'x'::name", vec![]).await.unwrap();
    same!(rows.columns[0].data_type, T::Other("name".into()));
    same!(rows.rows[0][0], V::Unsupported(b"x".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: cargo xtask test"]
async fn opening_connects_and_says_why_it_cannot() {
    use super::super::pg::HostConnection;
    let mut g = Guests::start().await;
    let nowhere = g.url.rsplit_once('/').map(|(base, _)| format!("{base}/no_such_database")).unwrap();
    let opened = g.view().open(nowhere).await.unwrap();
    assert!(
        matches!(&opened, Err(pg::Error::ConnectionFailed(why)) if why.contains("\"no_such_database\" does not exist")),
        "{:?}",
        opened.map(|_| ())
    );
    let url = g.url.clone();
    assert!(g.view().open(url).await.unwrap().is_ok());
}
