//! Rollups: the metrics' mergeable states per (hour, assistant) and per
//! (day, assistant), and per hour for connector syncs, written at ingest in the
//! same transaction as the raw events. A window is answered by merging the
//! whole buckets inside it and folding the raw rows of the partial hours at its
//! two ends (`plan`), which gives the raw scan's exact answer in a fraction of
//! its time.
//!
//! Events only ever update hour rows. Day rows exist for the days before the
//! *sealed* watermark: when the writer's clock passes midnight it merges the
//! day's hours into day rows (`write::seal`). A later event for a sealed day
//! drops that day's rows and marks it dirty; the writer seals it again once a
//! commit no longer touches it (a backfill in time order thus seals each day
//! once). A reader uses day rows for the clean sealed days of a window and
//! hour rows for the rest.

pub mod cache;
#[cfg(test)]
mod equivalence;
pub mod plan;
pub mod rebuild;
pub mod subtract;
pub mod write;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::time::{MICROS_PER_DAY, MICROS_PER_HOUR};

/// Which metric a rollup row holds. Stored as an integer: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Ttft = 0,
    Cache = 1,
    Costs = 2,
    Reranking = 3,
    Steps = 4,
    Sessions = 5,
    Users = 6,
    Utilization = 7,
    Trending = 8,
    Sync = 9,
}

/// The size of a bucket. Stored as an integer: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Hour = 0,
    Day = 1,
}

impl Level {
    pub fn micros(self) -> i64 {
        match self {
            Level::Hour => MICROS_PER_HOUR,
            Level::Day => MICROS_PER_DAY,
        }
    }

    /// The bucket number of an instant (buckets start at the Unix epoch, UTC).
    pub fn bucket(self, ts: i64) -> i64 {
        ts.div_euclid(self.micros())
    }
}

/// Rollup rows of syncs have no assistant: they are keyed by this one.
pub const NO_ASSISTANT: i64 = 0;

/// `meta` key of the first day that has no day rows yet (all days before it
/// are sealed).
pub(super) const SEALED_KEY: &str = "rollups_sealed_day";
/// `meta` key of the version of past buckets: bumped by every write to a row
/// of a bucket that may already be whole in some window (see `cache`).
pub(super) const PAST_VERSION_KEY: &str = "rollups_past_version";
/// `meta` key present once the rollups match the raw events.
pub(super) const BUILT_KEY: &str = "rollups_built";

/// A rollup state could not be decoded: the row is damaged or was written by
/// an incompatible version; `rebuild-rollups` recomputes it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> rusqlite::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            format!("rollup state cannot be decoded ({e}); run `ragpulse rebuild-rollups`").into(),
        )
    })
}

pub fn encode<T: Serialize>(state: &T) -> rusqlite::Result<Vec<u8>> {
    postcard::to_allocvec(state).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// The first unsealed day (day rows exist for every day before it).
pub fn sealed_day(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(meta(conn, SEALED_KEY)?.unwrap_or(i64::MIN))
}

pub(super) fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

pub(super) fn set_meta(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// The version of the rows of past buckets (see [`PAST_VERSION_KEY`]).
pub fn past_version(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(meta(conn, PAST_VERSION_KEY)?.unwrap_or(0))
}

pub(super) fn bump_past_version(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, 1) ON CONFLICT (key) DO UPDATE SET value = value + 1",
    )?
    .execute([PAST_VERSION_KEY])?;
    Ok(())
}

/// Sealed days whose day rows are being rebuilt (read from their hours), ascending.
pub fn dirty_days(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached("SELECT day FROM rollup_dirty_days ORDER BY day")?;
    let days = stmt.query_map([], |r| r.get(0))?;
    days.collect()
}

pub fn is_built(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(meta(conn, BUILT_KEY)?.is_some())
}

/// Marks the rollups as not matching the raw events (a store written without
/// them): reads scan, and the next open that wants them rebuilds them.
pub fn forget(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM meta WHERE key = ?1", [BUILT_KEY])?;
    Ok(())
}

/// True when hour `hour` holds no event of the scope (one assistant, or all)
/// outside `(from_exclusive, to_inclusive]`, a range inside it: its hour rows
/// then hold exactly that range's events, and can stand in for the raw scan.
/// This is what makes the current hour of a live window cost its rows instead
/// of every event ingested since the hour began. Two index probes.
pub fn hour_holds_only(
    conn: &Connection,
    metric: Metric,
    assistant: Option<i64>,
    hour: i64,
    from_exclusive: i64,
    to_inclusive: i64,
) -> rusqlite::Result<bool> {
    let start = hour * MICROS_PER_HOUR;
    let last = start + MICROS_PER_HOUR - 1;
    let sql = match (metric, assistant) {
        (Metric::Sync, _) => {
            "SELECT EXISTS (SELECT 1 FROM syncs WHERE started_at >= ?1 AND started_at <= ?2 AND ?3 IS NOT NULL)"
        }
        (_, Some(_)) => {
            "SELECT EXISTS (SELECT 1 FROM interactions WHERE assistant = ?3 AND ts >= ?1 AND ts <= ?2)"
        }
        (_, None) => {
            "SELECT EXISTS (SELECT 1 FROM interactions WHERE ts >= ?1 AND ts <= ?2 AND ?3 IS NULL)"
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    for (lo, hi) in [(start, from_exclusive), (to_inclusive + 1, last)] {
        if lo <= hi && stmt.query_row(params![lo, hi, assistant], |r| r.get::<_, bool>(0))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Folds the states of `metric` in buckets `[first, end)` of `level` (of one
/// assistant, or all) into `f`.
pub fn fold<T: DeserializeOwned>(
    conn: &Connection,
    metric: Metric,
    level: Level,
    buckets: std::ops::Range<i64>,
    assistant: Option<i64>,
    mut f: impl FnMut(T),
) -> rusqlite::Result<()> {
    visit(conn, metric, level, buckets, assistant, |_, _, bytes| {
        f(decode(bytes)?);
        Ok(())
    })
}

/// Visits the stored states of `metric` in buckets `[first, end)` of `level`
/// (of one assistant, or all) as (bucket, assistant, encoded state): the
/// rows and, for hours, their deltas. The state of a bucket is the merge of
/// everything visited for it, in any order.
pub fn visit(
    conn: &Connection,
    metric: Metric,
    level: Level,
    buckets: std::ops::Range<i64>,
    assistant: Option<i64>,
    mut f: impl FnMut(i64, i64, &[u8]) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    if buckets.is_empty() {
        return Ok(());
    }
    let rows = (
        "SELECT bucket, assistant, state FROM rollups
         WHERE metric = ?1 AND level = ?2 AND bucket >= ?3 AND bucket < ?4 AND (?5 IS NULL OR assistant = ?5)",
        params![metric as i64, level as i64, buckets.start, buckets.end, assistant],
    );
    let mut stmt = conn.prepare_cached(rows.0)?;
    each_state(stmt.query(rows.1)?, &mut f)?;
    if level == Level::Hour {
        let mut stmt = conn.prepare_cached(
            "SELECT bucket, assistant, state FROM rollup_deltas
             WHERE metric = ?1 AND bucket >= ?2 AND bucket < ?3 AND (?4 IS NULL OR assistant = ?4)",
        )?;
        each_state(
            stmt.query(params![
                metric as i64,
                buckets.start,
                buckets.end,
                assistant
            ])?,
            &mut f,
        )?;
    }
    Ok(())
}

fn each_state(
    mut rows: rusqlite::Rows<'_>,
    f: &mut impl FnMut(i64, i64, &[u8]) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    while let Some(row) = rows.next()? {
        f(row.get(0)?, row.get(1)?, row.get_ref(2)?.as_blob()?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_from_the_epoch_in_utc() {
        assert_eq!(Level::Hour.bucket(0), 0);
        assert_eq!(Level::Hour.bucket(MICROS_PER_HOUR - 1), 0);
        assert_eq!(Level::Hour.bucket(MICROS_PER_HOUR), 1);
        assert_eq!(Level::Day.bucket(MICROS_PER_DAY * 3 + 5), 3);
        // Before the epoch buckets still hold [b·size, (b+1)·size).
        assert_eq!(Level::Hour.bucket(-1), -1);
    }
}
