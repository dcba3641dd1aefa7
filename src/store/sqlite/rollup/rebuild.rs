//! Recomputing rollups from the raw events: the whole of them (after an
//! upgrade, or to repair), or the costs from a time on (after a reprice).

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::write::{COUNTED_COLUMNS, Counted, Rollups};
use super::{
    BUILT_KEY, Level, Metric, SEALED_KEY, bump_past_version, is_built, sealed_day, set_meta,
};
use crate::metrics::costs::CostsState;
use crate::metrics::steps::StepSample;
use crate::metrics::sync::SyncStatus;
use crate::store::sqlite::details::{self, PackedStep};

type SqlResult<T> = Result<T, rusqlite::Error>;

/// Interactions per transaction while rebuilding.
const CHUNK: i64 = 20_000;

/// One stored interaction's rollup inputs.
struct Row {
    key: i64,
    counted: Counted,
}

/// The packed steps and documents of a chunk's interactions, by interaction key.
type Details = HashMap<i64, (Vec<PackedStep>, Vec<i64>)>;

/// Drops every rollup and recomputes them from the raw events, in chunks of
/// [`CHUNK`] interactions (one transaction each, in time order). The store
/// counts as built only once the last chunk is in, so an interrupted rebuild
/// is redone at the next start. `progress` gets (interactions done, total).
///
/// Once retention has deleted the raw rows before its cutoff (a day's
/// start), the rollups of the days before it are all that is left of them:
/// they stay, with the spans of the sessions that began before it, and only
/// the buckets from the cutoff on are recomputed.
pub fn rebuild(
    conn: &mut Connection,
    today: i64,
    progress: &mut dyn FnMut(u64, u64),
) -> SqlResult<()> {
    rebuild_from(conn, today, None, progress)
}

/// [`rebuild`] of the buckets from day `from_day` on (a later retention
/// cutoff wins): the days before it keep their rollups, and the sessions
/// that began before it their spans. A session that began before and goes
/// on after it is tallied by key in every bucket it touches (its span
/// crosses buckets), so the recomputed buckets add up with the kept ones.
/// An erasure rebuilds from the erased user's first day.
pub fn rebuild_from(
    conn: &mut Connection,
    today: i64,
    from_day: Option<i64>,
    progress: &mut dyn FnMut(u64, u64),
) -> SqlResult<()> {
    let cutoff = super::meta(conn, crate::store::sqlite::retention::CUTOFF_KEY)?
        .map(|ts| Level::Day.bucket(ts));
    let first_day = match (cutoff, from_day) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let from = first_day.map_or(i64::MIN, |day| day.saturating_mul(Level::Day.micros()));
    let first_day = first_day.unwrap_or(i64::MIN / Level::Day.micros());
    {
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM rollups WHERE (level = ?1 AND bucket >= ?2) OR (level = ?3 AND bucket >= ?4)",
            params![
                Level::Hour as i64,
                first_day.saturating_mul(24),
                Level::Day as i64,
                first_day
            ],
        )?;
        tx.execute(
            "DELETE FROM rollup_deltas WHERE bucket >= ?1",
            [first_day.saturating_mul(24)],
        )?;
        tx.execute("DELETE FROM session_spans WHERE first_ts >= ?1", [from])?;
        tx.execute("DELETE FROM rollup_dirty_days WHERE day >= ?1", [first_day])?;
        tx.execute("DELETE FROM meta WHERE key = ?1", [BUILT_KEY])?;
        // Every day before today is sealed once its events have streamed in.
        set_meta(&tx, SEALED_KEY, today)?;
        bump_past_version(&tx)?;
        tx.commit()?;
    }
    let total: i64 = conn.query_row(
        "SELECT count(*) FROM interactions WHERE ts >= ?1",
        [from],
        |r| r.get(0),
    )?;
    let names = step_names(conn)?;
    let mut rollups = Rollups::open(conn, today)?;
    // Syncs first: few, and the days they mark are sealed as the interactions pass.
    {
        let tx = conn.transaction()?;
        syncs(&tx, &mut rollups, from)?;
        rollups.flush(&tx)?;
        tx.commit()?;
        rollups.committed(i64::MIN);
    }
    let mut after = from.saturating_sub(1);
    let mut done = 0u64;
    progress(0, total as u64);
    loop {
        let tx = conn.transaction()?;
        let upper: Option<i64> = tx
            .query_row(
                "SELECT ts FROM interactions WHERE ts > ?1 ORDER BY ts LIMIT 1 OFFSET ?2",
                params![after, CHUNK - 1],
                |r| r.get(0),
            )
            .or_else(none_if_no_rows)?;
        let upper = upper.unwrap_or(i64::MAX);
        let rows = interactions(&tx, after, upper)?;
        if rows.is_empty() {
            break;
        }
        let mut details = details(&tx, after, upper)?;
        for row in &rows {
            let (steps, docs) = details.remove(&row.key).unwrap_or_default();
            let samples: Vec<StepSample<'_>> = steps
                .into_iter()
                .map(|step| StepSample {
                    name: names.get(&step.name).map_or("", String::as_str),
                    duration_us: step.duration_us,
                    first_index: step.first_index,
                    tokens: step.tokens,
                })
                .collect();
            rollups.interaction(&tx, &row.counted.with(&samples, &docs))?;
        }
        rollups.flush(&tx)?;
        rollups.seal(&tx, today)?;
        tx.commit()?;
        rollups.committed(i64::MIN);
        done += rows.len() as u64;
        progress(done, total as u64);
        if upper == i64::MAX {
            break;
        }
        after = upper;
    }
    let tx = conn.transaction()?;
    rollups.seal_dirty(&tx)?;
    set_meta(&tx, BUILT_KEY, 1)?;
    tx.commit()
}

fn none_if_no_rows(e: rusqlite::Error) -> SqlResult<Option<i64>> {
    match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        other => Err(other),
    }
}

fn step_names(conn: &Connection) -> SqlResult<HashMap<i64, String>> {
    let mut stmt = conn.prepare("SELECT key, name FROM step_names")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

fn interactions(conn: &Connection, after: i64, upper: i64) -> SqlResult<Vec<Row>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT key, {COUNTED_COLUMNS} FROM interactions WHERE ts > ?1 AND ts <= ?2 ORDER BY ts"
    ))?;
    let rows = stmt.query_map(params![after, upper], |r| {
        Ok(Row {
            key: r.get(0)?,
            counted: Counted::read(r, 1)?,
        })
    })?;
    rows.collect()
}

fn details(conn: &Connection, after: i64, upper: i64) -> SqlResult<Details> {
    let mut stmt = conn.prepare_cached(
        "SELECT interaction, steps, documents FROM interaction_details WHERE ts > ?1 AND ts <= ?2",
    )?;
    let mut rows = stmt.query(params![after, upper])?;
    let mut out = Details::new();
    while let Some(r) = rows.next()? {
        out.insert(r.get(0)?, (details::column(r, 1)?, details::column(r, 2)?));
    }
    Ok(out)
}

fn syncs(conn: &Connection, rollups: &mut Rollups, from: i64) -> SqlResult<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT connector, status, duration_us, started_at FROM syncs WHERE started_at >= ?1",
    )?;
    let mut rows = stmt.query([from])?;
    while let Some(r) = rows.next()? {
        let status = match r.get::<_, i64>(1)? {
            0 => SyncStatus::Success,
            1 => SyncStatus::Partial,
            _ => SyncStatus::Failure,
        };
        rollups.sync(conn, r.get(0)?, status, r.get(2)?, r.get(3)?)?;
    }
    Ok(())
}

/// Recomputes the cost states of the days from `since`'s day to `until`'s
/// (every later day when `None`), after a reprice changed interaction costs
/// (in the same transaction).
pub fn recompute_costs(conn: &Connection, since: i64, until: Option<i64>) -> SqlResult<()> {
    if !is_built(conn)? {
        return Ok(());
    }
    let sealed = sealed_day(conn)?;
    let dirty = super::dirty_days(conn)?;
    let first_day = Level::Day.bucket(since);
    let end_day = until.map_or(i64::MAX / Level::Day.micros(), |t| Level::Day.bucket(t) + 1);
    let from = first_day.saturating_mul(Level::Day.micros());
    let to = end_day.saturating_mul(Level::Day.micros());
    conn.execute(
        "DELETE FROM rollups WHERE metric = ?1
         AND ((level = ?2 AND bucket >= ?3 AND bucket < ?4) OR (level = ?5 AND bucket >= ?6 AND bucket < ?7))",
        params![
            Metric::Costs as i64,
            Level::Hour as i64,
            first_day.saturating_mul(24),
            end_day.saturating_mul(24),
            Level::Day as i64,
            first_day,
            end_day
        ],
    )?;
    conn.execute(
        "DELETE FROM rollup_deltas WHERE metric = ?1 AND bucket >= ?2 AND bucket < ?3",
        params![
            Metric::Costs as i64,
            first_day.saturating_mul(24),
            end_day.saturating_mul(24)
        ],
    )?;
    let mut states: HashMap<(Level, i64, i64), CostsState> = HashMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT ts, assistant, input_tokens, output_tokens, cost_nusd FROM interactions WHERE ts >= ?1 AND ts < ?2",
        )?;
        let mut rows = stmt.query([from, to])?;
        while let Some(r) = rows.next()? {
            let ts: i64 = r.get(0)?;
            let assistant: i64 = r.get(1)?;
            let (input, output, cost): (i64, i64, i64) = (r.get(2)?, r.get(3)?, r.get(4)?);
            let day = Level::Day.bucket(ts);
            let mut levels = vec![(Level::Hour, Level::Hour.bucket(ts))];
            if day < sealed && dirty.binary_search(&day).is_err() {
                levels.push((Level::Day, day));
            }
            for (level, bucket) in levels {
                states
                    .entry((level, bucket, assistant))
                    .or_default()
                    .add(assistant, input, output, cost);
            }
        }
    }
    for (slot, state) in states {
        super::write::put(conn, Metric::Costs, slot, &state)?;
    }
    bump_past_version(conn)
}
