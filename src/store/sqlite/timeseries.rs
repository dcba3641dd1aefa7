//! The scan behind `/api/v1/analytics/timeseries`: the raw interactions of a
//! window (three narrow columns) folded into epoch-aligned buckets. Kept out
//! of `read.rs` so the rollup work there and this feature do not collide.

use rusqlite::{Connection, OptionalExtension};

use crate::metrics::timeseries::{Buckets, Timeseries};
use crate::store::{StoreError, Window};

/// The buckets of `w` (`bucket_us` long each) for `hours`' series.
pub fn timeseries(
    conn: &Connection,
    w: &Window,
    bucket_us: i64,
    hours: i64,
) -> Result<Timeseries, StoreError> {
    let mut buckets = Buckets::new(w.from_exclusive, w.to_inclusive, bucket_us);
    let assistant = match w.assistant {
        None => None,
        Some(id) => {
            let key: Option<i64> = conn
                .prepare_cached("SELECT key FROM assistants WHERE id = ?1")?
                .query_row([id.as_bytes()], |r| r.get(0))
                .optional()?;
            match key {
                Some(key) => Some(key),
                // Never seen: every bucket is empty, but the buckets are still listed.
                None => return Ok(buckets.finish(hours)),
            }
        }
    };
    let mut fold = |r: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
        let cache_hit: i64 = r.get(2)?;
        buckets.add(r.get(0)?, r.get(1)?, cache_hit != 0);
        Ok(())
    };
    match assistant {
        Some(key) => {
            let mut stmt = conn.prepare_cached(
                "SELECT ts, ttft_us, cache_hit FROM interactions
                 WHERE assistant = ?3 AND ts > ?1 AND ts <= ?2",
            )?;
            let mut rows = stmt.query(rusqlite::params![w.from_exclusive, w.to_inclusive, key])?;
            while let Some(r) = rows.next()? {
                fold(r)?;
            }
        }
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT ts, ttft_us, cache_hit FROM interactions WHERE ts > ?1 AND ts <= ?2",
            )?;
            let mut rows = stmt.query(rusqlite::params![w.from_exclusive, w.to_inclusive])?;
            while let Some(r) = rows.next()? {
                fold(r)?;
            }
        }
    }
    Ok(buckets.finish(hours))
}
