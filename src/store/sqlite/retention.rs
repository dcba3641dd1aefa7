//! Retention: raw interactions older than a cutoff (a day's start) are
//! deleted with their steps and retrieved documents, in small batches on the
//! writer so ingest commits between them; then the question texts asked
//! only before the cutoff. Rollups stay: windows reaching past the cutoff
//! are still answered from their whole hours and days. The cutoff is kept
//! in `meta`, so a rollup rebuild leaves the buckets before it alone.

use rusqlite::{Connection, params};

use super::rollup;

type SqlResult<T> = Result<T, rusqlite::Error>;

/// `meta` key of the latest retention cutoff (µs, the start of a UTC day):
/// raw rows before it are gone.
pub const CUTOFF_KEY: &str = "retention_cutoff";

/// A question topic whose texts retention deleted: it keeps its key and
/// counters (rollups and all-time trending count it), and no lookup finds
/// it again (see `erase::KIND_ERASED`, the same kind).
const KIND_EXPIRED: i64 = 3;

/// Where a retention run is: interactions first, then phrasings, then
/// question topics, each text walk in key order from `after`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub phase: Phase,
    pub after: i64,
    /// The last key the walk of the phase visits: the largest when it
    /// began. Rows added since were asked after the cutoff, and a walk that
    /// chased them would not end while ingest adds new questions.
    pub end: Option<i64>,
}

impl Cursor {
    /// The beginning of `phase`'s walk.
    pub fn start(phase: Phase) -> Self {
        Self {
            phase,
            after: i64::MIN,
            end: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Interactions,
    Phrasings,
    Topics,
    Done,
}

/// What one batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetainBatch {
    pub interactions: u64,
    pub phrasings: u64,
    pub topics: u64,
    /// Where the next batch resumes.
    pub next: Cursor,
    /// The writer's time on it (its transaction, not the wait in the queue).
    pub work: std::time::Duration,
}

/// One batch of a retention run at `cutoff`, in one transaction: up to
/// `limit` interactions older than the cutoff (with their details), or up
/// to `limit` phrasings or question topics examined for a last asking
/// before it.
pub fn retain_batch(
    conn: &mut Connection,
    cutoff: i64,
    limit: usize,
    cursor: Cursor,
) -> SqlResult<RetainBatch> {
    let started = std::time::Instant::now();
    // Deleted texts and freed pages are overwritten (see `schema::configure`).
    conn.pragma_update(None, "secure_delete", "ON")?;
    let result = retain_in_transaction(conn, cutoff, limit, cursor);
    conn.pragma_update(None, "secure_delete", "FAST")?;
    let mut batch = result?;
    batch.work = started.elapsed();
    Ok(batch)
}

fn retain_in_transaction(
    conn: &mut Connection,
    cutoff: i64,
    limit: usize,
    cursor: Cursor,
) -> SqlResult<RetainBatch> {
    // Immediate: the write lock first, so the read below never has to be
    // upgraded to a write behind another connection's (a health probe's).
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let stored = rollup::meta(&tx, CUTOFF_KEY)?.unwrap_or(i64::MIN);
    if cutoff > stored {
        rollup::set_meta(&tx, CUTOFF_KEY, cutoff)?;
    }
    let mut batch = RetainBatch {
        next: cursor,
        ..RetainBatch::default()
    };
    match cursor.phase {
        Phase::Interactions => {
            batch.interactions = delete_interactions(&tx, cutoff, limit)?;
            if batch.interactions == 0 {
                batch.next = Cursor::start(Phase::Phrasings);
            }
        }
        Phase::Phrasings => expire_phrasings(&tx, cutoff, limit, &mut batch)?,
        Phase::Topics => expire_topics(&tx, cutoff, limit, &mut batch)?,
        Phase::Done => {}
    }
    tx.commit()?;
    Ok(batch)
}

fn delete_interactions(conn: &Connection, cutoff: i64, limit: usize) -> SqlResult<u64> {
    let rows: Vec<(i64, i64)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT key, ts FROM interactions WHERE ts < ?1 ORDER BY ts LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![cutoff, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<SqlResult<_>>()?
    };
    let mut interaction = conn.prepare_cached("DELETE FROM interactions WHERE key = ?1")?;
    let mut details =
        conn.prepare_cached("DELETE FROM interaction_details WHERE ts = ?1 AND interaction = ?2")?;
    for &(key, ts) in &rows {
        interaction.execute([key])?;
        details.execute(params![ts, key])?;
    }
    Ok(rows.len() as u64)
}

/// The last key of the next `limit` rows of `table` after the cursor's
/// `after` and up to its `end` (set on the phase's first batch), if any.
fn walk_upper(
    conn: &Connection,
    table: &str,
    cursor: &mut Cursor,
    limit: usize,
) -> SqlResult<Option<i64>> {
    let end = match cursor.end {
        Some(end) => end,
        None => {
            let end: Option<i64> =
                conn.query_row(&format!("SELECT max(key) FROM {table}"), [], |r| r.get(0))?;
            let end = end.unwrap_or(i64::MIN);
            cursor.end = Some(end);
            end
        }
    };
    let after = cursor.after;
    conn.query_row(
        &format!(
            "SELECT max(key) FROM (SELECT key FROM {table} WHERE key > ?1 AND key <= ?3 ORDER BY key LIMIT ?2)"
        ),
        params![after, limit as i64, end],
        |r| r.get(0),
    )
}

/// Phrasings last asked before the cutoff: no kept interaction asks them.
fn expire_phrasings(
    conn: &Connection,
    cutoff: i64,
    limit: usize,
    batch: &mut RetainBatch,
) -> SqlResult<()> {
    let after = batch.next.after;
    let Some(upper) = walk_upper(conn, "phrasings", &mut batch.next, limit)? else {
        batch.next = Cursor::start(Phase::Topics);
        return Ok(());
    };
    batch.phrasings = conn.execute(
        "DELETE FROM phrasings WHERE key > ?1 AND key <= ?2 AND last_ts < ?3",
        params![after, upper, cutoff],
    )? as u64;
    batch.next.after = upper;
    Ok(())
}

/// Question topics last asked before the cutoff lose their text (the
/// normalised question) and aliases; their counters stay.
fn expire_topics(
    conn: &Connection,
    cutoff: i64,
    limit: usize,
    batch: &mut RetainBatch,
) -> SqlResult<()> {
    let after = batch.next.after;
    let Some(upper) = walk_upper(conn, "topics", &mut batch.next, limit)? else {
        batch.next = Cursor::start(Phase::Done);
        return Ok(());
    };
    const EXPIRED: &str =
        "SELECT key FROM topics WHERE key > ?1 AND key <= ?2 AND kind = 1 AND last_ts < ?3";
    conn.execute(
        &format!("DELETE FROM topic_aliases WHERE topic IN ({EXPIRED})"),
        params![after, upper, cutoff],
    )?;
    let topics = conn.execute(
        &format!("UPDATE topics SET kind = ?4, norm = CAST(key AS TEXT) WHERE key IN ({EXPIRED})"),
        params![after, upper, cutoff, KIND_EXPIRED],
    )?;
    batch.topics = topics as u64;
    batch.next.after = upper;
    Ok(())
}
