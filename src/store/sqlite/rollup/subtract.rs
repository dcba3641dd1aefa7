//! Taking erased interactions out of the rollups. Each erased chunk's
//! contribution is subtracted from the hour and day states it touched, in
//! the chunk's own transaction: the rollups match the raw rows after every
//! commit, and the work follows the erased rows, not the size of the store.
//!
//! - A bucket (hour or day, of one assistant) left without interactions
//!   loses its rows, as if it had never had any.
//! - Otherwise each metric's state takes the erased part out (counts and
//!   sums subtract; values, documents, steps, topics and phrasings no
//!   longer there go; a first or last time the erased rows may have set is
//!   read again from the bucket's remaining rows); the erased users' tallies
//!   go whole.
//! - Sessions are tallied per bucket on their span over all time, so every
//!   bucket of an erased row's session is recounted from the session's new
//!   span: the same state a store that never had the erased rows holds.
//!
//! Day rows are corrected alike for the sealed days that have them; a dirty
//! day is sealed again from its hours anyway.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::write::{COUNTED_COLUMNS, Counted, RollupState, put};
use super::{Level, Metric, bump_past_version, decode, dirty_days, sealed_day};
use crate::metrics::cache::CacheState;
use crate::metrics::costs::CostsState;
use crate::metrics::reranking::RerankingState;
use crate::metrics::sessions::SessionsState;
use crate::metrics::steps::{StepSample, StepsState};
use crate::metrics::trending::TrendingState;
use crate::metrics::ttft::TtftState;
use crate::metrics::users::UsersState;
use crate::metrics::utilization::UtilizationState;
use crate::store::sqlite::details::{self, PackedStep};

type SqlResult<T> = Result<T, rusqlite::Error>;

/// (level, bucket, assistant) of one state.
type Slot = (Level, i64, i64);

/// What rollups counted of one interaction about to be erased.
#[derive(Debug, Clone)]
pub struct Fact {
    counted: Counted,
    steps: Vec<PackedStep>,
    documents: Vec<i64>,
}

/// Reads the rollup inputs of interactions `(key, ts)` before they are
/// deleted; a key no longer stored is skipped.
pub fn facts(conn: &Connection, rows: &[(i64, i64)]) -> SqlResult<Vec<Fact>> {
    let mut row_stmt = conn.prepare_cached(&format!(
        "SELECT {COUNTED_COLUMNS} FROM interactions WHERE key = ?1"
    ))?;
    let mut details_stmt = conn.prepare_cached(
        "SELECT steps, documents FROM interaction_details WHERE ts = ?1 AND interaction = ?2",
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for &(key, ts) in rows {
        let fact = row_stmt
            .query_row([key], |r| {
                Ok(Fact {
                    counted: Counted::read(r, 0)?,
                    steps: Vec::new(),
                    documents: Vec::new(),
                })
            })
            .optional()?;
        let Some(mut fact) = fact else {
            continue;
        };
        let details: Option<(Vec<PackedStep>, Vec<i64>)> = details_stmt
            .query_row(params![ts, key], |r| {
                Ok((details::column(r, 0)?, details::column(r, 1)?))
            })
            .optional()?;
        if let Some((steps, documents)) = details {
            fact.steps = steps;
            fact.documents = documents;
        }
        out.push(fact);
    }
    Ok(out)
}

/// The erased part of one bucket, per metric.
#[derive(Default)]
struct Part {
    ttft: TtftState,
    cache: CacheState,
    costs: CostsState,
    reranking: RerankingState,
    steps: StepsState,
    utilization: UtilizationState,
    trending: TrendingState,
    users: HashSet<i64>,
    has_ttft: bool,
    has_rerank: bool,
    has_steps: bool,
    has_documents: bool,
    has_topics: bool,
}

impl Part {
    fn add(&mut self, f: &Fact, names: &HashMap<i64, String>) {
        if let Some(ttft) = f.counted.ttft_us {
            self.ttft.add(ttft);
            self.has_ttft = true;
        }
        self.cache.add(f.counted.cache_hit);
        self.costs.add(
            f.counted.assistant,
            f.counted.input_tokens,
            f.counted.output_tokens,
            f.counted.cost_nusd,
        );
        if let Some((improvement, position)) = f.counted.rerank {
            self.reranking.add(improvement, position);
            self.has_rerank = true;
        }
        if !f.steps.is_empty() {
            let samples: Vec<StepSample<'_>> = f
                .steps
                .iter()
                .map(|step| StepSample {
                    name: names.get(&step.name).map_or("", String::as_str),
                    duration_us: step.duration_us,
                    first_index: step.first_index,
                    tokens: step.tokens,
                })
                .collect();
            self.steps.add_interaction(&samples);
            self.has_steps = true;
        }
        if let Some(user) = f.counted.user {
            self.users.insert(user);
        }
        if !f.documents.is_empty() {
            self.utilization.add_interaction(&f.documents);
            self.has_documents = true;
        }
        if let Some(topic) = f.counted.topic {
            self.trending
                .add(topic, f.counted.phrasing, 1, f.counted.ts, f.counted.ts);
            self.has_topics = true;
        }
    }
}

/// The buckets whose rows a correction may change: every hour, and the
/// days that have day rows (sealed and not dirty).
struct Buckets {
    sealed: i64,
    dirty: HashSet<i64>,
}

impl Buckets {
    fn read(conn: &Connection) -> SqlResult<Self> {
        Ok(Self {
            sealed: sealed_day(conn)?,
            dirty: dirty_days(conn)?.into_iter().collect(),
        })
    }

    /// The slots of an interaction at `ts` of `assistant`.
    fn slots(&self, ts: i64, assistant: i64) -> impl Iterator<Item = Slot> + use<> {
        let day = Level::Day.bucket(ts);
        let with_day = day < self.sealed && !self.dirty.contains(&day);
        std::iter::once((Level::Hour, Level::Hour.bucket(ts), assistant))
            .chain(with_day.then_some((Level::Day, day, assistant)))
    }
}

/// The instants of a slot's bucket, `[from, to)`.
fn range(slot: Slot) -> (i64, i64) {
    let from = slot.1.saturating_mul(slot.0.micros());
    (from, from.saturating_add(slot.0.micros()))
}

/// Takes the erased interactions `facts` (already deleted, in this
/// transaction) out of the rollups. Each of their sessions must have lost
/// all its erased interactions in this transaction (chunks group whole
/// sessions); `cutoff` is the retention cutoff, if any.
pub fn subtract(conn: &Connection, facts: &[Fact], cutoff: Option<i64>) -> SqlResult<()> {
    if facts.is_empty() {
        return Ok(());
    }
    let buckets = Buckets::read(conn)?;
    let names = step_names(conn)?;
    let mut parts: HashMap<Slot, Part> = HashMap::new();
    for fact in facts {
        for slot in buckets.slots(fact.counted.ts, fact.counted.assistant) {
            parts.entry(slot).or_default().add(fact, &names);
        }
    }
    let mut emptied = HashSet::new();
    for (slot, part) in &parts {
        if holds_interactions(conn, *slot)? {
            correct_slot(conn, *slot, part)?;
        } else {
            drop_slot(conn, *slot)?;
            emptied.insert(*slot);
        }
    }
    sessions(conn, facts, &buckets, &emptied, cutoff)?;
    bump_past_version(conn)
}

fn step_names(conn: &Connection) -> SqlResult<HashMap<i64, String>> {
    let mut stmt = conn.prepare_cached("SELECT key, name FROM step_names")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

fn holds_interactions(conn: &Connection, slot: Slot) -> SqlResult<bool> {
    let (from, to) = range(slot);
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM interactions WHERE assistant = ?1 AND ts >= ?2 AND ts < ?3)",
    )?
    .query_row(params![slot.2, from, to], |r| r.get(0))
}

/// A bucket without interactions any more: its rows of every metric that
/// interactions feed go (syncs have rows of their own). The metrics are
/// listed, so each delete is a few probes of the slot's unique key.
fn drop_slot(conn: &Connection, slot: Slot) -> SqlResult<()> {
    conn.prepare_cached(&format!(
        "DELETE FROM rollups WHERE metric IN ({INTERACTION_METRICS}) AND level = ?1 AND bucket = ?2
         AND assistant = ?3"
    ))?
    .execute(params![slot.0 as i64, slot.1, slot.2])?;
    if slot.0 == Level::Hour {
        conn.prepare_cached(&format!(
            "DELETE FROM rollup_deltas WHERE metric IN ({INTERACTION_METRICS}) AND bucket = ?1
             AND assistant = ?2"
        ))?
        .execute(params![slot.1, slot.2])?;
    }
    Ok(())
}

/// The metrics interactions feed (every one but syncs), as SQL.
const INTERACTION_METRICS: &str = "0, 1, 2, 3, 4, 5, 6, 7, 8";

fn correct_slot(conn: &Connection, slot: Slot, part: &Part) -> SqlResult<()> {
    if part.has_ttft {
        correct(conn, Metric::Ttft, slot, |s: &mut TtftState| {
            s.subtract(&part.ttft);
            Ok(())
        })?;
    }
    correct(conn, Metric::Cache, slot, |s: &mut CacheState| {
        s.subtract(&part.cache);
        Ok(())
    })?;
    correct(conn, Metric::Costs, slot, |s: &mut CostsState| {
        s.subtract(&part.costs);
        Ok(())
    })?;
    if part.has_rerank {
        correct(conn, Metric::Reranking, slot, |s: &mut RerankingState| {
            s.subtract(&part.reranking);
            Ok(())
        })?;
    }
    if part.has_steps {
        correct(conn, Metric::Steps, slot, |s: &mut StepsState| {
            s.subtract(&part.steps);
            Ok(())
        })?;
    }
    if !part.users.is_empty() {
        correct(conn, Metric::Users, slot, |s: &mut UsersState| {
            for &user in &part.users {
                s.forget(user);
            }
            Ok(())
        })?;
    }
    if part.has_documents {
        correct(
            conn,
            Metric::Utilization,
            slot,
            |s: &mut UtilizationState| {
                s.subtract(&part.utilization);
                Ok(())
            },
        )?;
    }
    if part.has_topics {
        correct(conn, Metric::Trending, slot, |s: &mut TrendingState| {
            s.subtract(&part.trending, |topic, phrasing| {
                topic_bounds(conn, slot, topic, phrasing)
            })
        })?;
    }
    Ok(())
}

/// The (first, last) times of the remaining interactions of a topic (of
/// one of its phrasings) in a slot: read only when an erased row was at
/// one end of them.
fn topic_bounds(
    conn: &Connection,
    slot: Slot,
    topic: i64,
    phrasing: Option<i64>,
) -> SqlResult<Option<(i64, i64)>> {
    let (from, to) = range(slot);
    let found: (Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT min(ts), max(ts) FROM interactions
             WHERE assistant = ?1 AND ts >= ?2 AND ts < ?3 AND topic = ?4
               AND (?5 IS NULL OR phrasing = ?5)",
        )?
        .query_row(params![slot.2, from, to, topic, phrasing], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(found.0.zip(found.1))
}

/// Loads a slot's state of `metric` (its row merged with its deltas),
/// applies `change` and stores it back as the row alone, or no row when
/// nothing is left in it (as a store that never had the erased rows). A
/// slot without a state is left alone.
fn correct<T: RollupState + PartialEq>(
    conn: &Connection,
    metric: Metric,
    slot: Slot,
    change: impl FnOnce(&mut T) -> SqlResult<()>,
) -> SqlResult<()> {
    let mut state: Option<T> = conn
        .prepare_cached(
            "SELECT state FROM rollups WHERE metric = ?1 AND level = ?2 AND bucket = ?3 AND assistant = ?4",
        )?
        .query_row(params![metric as i64, slot.0 as i64, slot.1, slot.2], |r| {
            decode(r.get_ref(0)?.as_blob()?)
        })
        .optional()?;
    if slot.0 == Level::Hour {
        let mut stmt = conn.prepare_cached(
            "DELETE FROM rollup_deltas WHERE metric = ?1 AND bucket = ?2 AND assistant = ?3
             RETURNING state",
        )?;
        let mut rows = stmt.query(params![metric as i64, slot.1, slot.2])?;
        while let Some(row) = rows.next()? {
            let delta: T = decode(row.get_ref(0)?.as_blob()?)?;
            match state.as_mut() {
                Some(s) => s.merge_from(delta),
                None => state = Some(delta),
            }
        }
    }
    let Some(mut state) = state else {
        return Ok(());
    };
    change(&mut state)?;
    if state == T::default() {
        conn.prepare_cached(
            "DELETE FROM rollups WHERE metric = ?1 AND level = ?2 AND bucket = ?3 AND assistant = ?4",
        )?
        .execute(params![metric as i64, slot.0 as i64, slot.1, slot.2])?;
        return Ok(());
    }
    put(conn, metric, slot, &state)
}

/// A session's span over all time, as `session_spans` keeps it.
#[derive(Debug, Clone, Copy)]
struct Span {
    first_ts: i64,
    last_ts: i64,
    assistant: Option<i64>,
    interactions: i64,
}

impl Span {
    /// Whether the session lies wholly in this slot's bucket and assistant:
    /// the slot then counts it in its settled counters.
    fn settled_in(&self, slot: Slot) -> bool {
        self.assistant == Some(slot.2)
            && slot.0.bucket(self.first_ts) == slot.1
            && slot.0.bucket(self.last_ts) == slot.1
    }
}

/// One session's change in one slot: it had `before` interactions there
/// and keeps `after`, under its new span.
struct Recount {
    session: i64,
    before: u64,
    after: u64,
    span: Option<Span>,
}

/// Recounts every bucket of the erased rows' sessions from their new spans,
/// each bucket's state read and written once, and stores the spans (a
/// session left without interactions goes, with its registry entry).
fn sessions(
    conn: &Connection,
    facts: &[Fact],
    buckets: &Buckets,
    emptied: &HashSet<Slot>,
    cutoff: Option<i64>,
) -> SqlResult<()> {
    let mut erased: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for fact in facts {
        erased
            .entry(fact.counted.session)
            .or_default()
            .push((fact.counted.ts, fact.counted.assistant));
    }
    let mut by_slot: HashMap<Slot, Vec<Recount>> = HashMap::new();
    for (session, gone) in erased {
        let Some(old) = span(conn, session)? else {
            continue;
        };
        let remaining = if old.interactions > gone.len() as i64 {
            remaining_of(conn, session, old)?
        } else {
            Vec::new()
        };
        let new = new_span(old, gone.len() as i64, &remaining, cutoff);
        // Old and new counts per slot; the new rows are a subset of the old.
        let mut counts: HashMap<Slot, (u64, u64)> = HashMap::new();
        for &(ts, assistant) in &gone {
            for slot in buckets.slots(ts, assistant) {
                counts.entry(slot).or_default().0 += 1;
            }
        }
        for &(ts, assistant) in &remaining {
            for slot in buckets.slots(ts, assistant) {
                let entry = counts.entry(slot).or_default();
                entry.0 += 1;
                entry.1 += 1;
            }
        }
        for (slot, (before, after)) in counts {
            if !emptied.contains(&slot) {
                by_slot.entry(slot).or_default().push(Recount {
                    session,
                    before,
                    after,
                    span: new,
                });
            }
        }
        store_span(conn, session, new)?;
    }
    for (slot, recounts) in by_slot {
        recount(conn, slot, &recounts)?;
    }
    Ok(())
}

fn span(conn: &Connection, session: i64) -> SqlResult<Option<Span>> {
    conn.prepare_cached(
        "SELECT first_ts, last_ts, assistant, interactions FROM session_spans WHERE session = ?1",
    )?
    .query_row([session], |r| {
        Ok(Span {
            first_ts: r.get(0)?,
            last_ts: r.get(1)?,
            assistant: r.get(2)?,
            interactions: r.get(3)?,
        })
    })
    .optional()
}

/// The interactions the session keeps (others' in a shared session): a
/// walk of the time index over the span.
fn remaining_of(conn: &Connection, session: i64, old: Span) -> SqlResult<Vec<(i64, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts, assistant FROM interactions WHERE ts >= ?1 AND ts <= ?2 AND session = ?3",
    )?;
    let rows = stmt.query_map(params![old.first_ts, old.last_ts, session], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    rows.collect()
}

/// The span once `gone` interactions went and `remaining` are what is left
/// of it in the raw rows; `None` when nothing is. A session that began
/// before the retention cutoff keeps its start (its older rows live on in
/// the rollups kept before the cutoff), and its count of them.
fn new_span(old: Span, gone: i64, remaining: &[(i64, i64)], cutoff: Option<i64>) -> Option<Span> {
    let before_cutoff = cutoff.is_some_and(|c| old.first_ts < c);
    if remaining.is_empty() && !before_cutoff {
        return None;
    }
    let mut assistants = remaining.iter().map(|&(_, a)| a);
    let first_assistant = assistants.next();
    let one_assistant = first_assistant.filter(|&a| assistants.all(|b| b == a));
    let first = remaining.iter().map(|&(ts, _)| ts).min();
    let last = remaining.iter().map(|&(ts, _)| ts).max();
    Some(if before_cutoff {
        Span {
            first_ts: old.first_ts,
            last_ts: last.unwrap_or(old.first_ts).max(old.first_ts),
            assistant: old
                .assistant
                .filter(|&a| one_assistant.is_none_or(|b| b == a)),
            interactions: (old.interactions - gone).max(0),
        }
    } else {
        Span {
            first_ts: first.unwrap_or(old.first_ts),
            last_ts: last.unwrap_or(old.last_ts),
            assistant: one_assistant,
            interactions: remaining.len() as i64,
        }
    })
}

/// Recounts sessions in one slot: each loses its count there and takes
/// the count it keeps, settled when its new span lies wholly in the slot.
fn recount(conn: &Connection, slot: Slot, recounts: &[Recount]) -> SqlResult<()> {
    correct(conn, Metric::Sessions, slot, |s: &mut SessionsState| {
        for r in recounts {
            if s.remove(r.session).is_none() {
                s.resettle(r.before, 0);
            }
            if r.after > 0 {
                match r.span {
                    Some(span) if span.settled_in(slot) => s.resettle(0, r.after),
                    _ => s.add_n(r.session, r.after),
                }
            }
        }
        Ok(())
    })
}

fn store_span(conn: &Connection, session: i64, span: Option<Span>) -> SqlResult<()> {
    match span {
        Some(span) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO session_spans (session, first_ts, last_ts, assistant, interactions)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                session,
                span.first_ts,
                span.last_ts,
                span.assistant,
                span.interactions
            ])?;
        }
        None => {
            conn.prepare_cached("DELETE FROM session_spans WHERE session = ?1")?
                .execute([session])?;
            conn.prepare_cached("DELETE FROM sessions WHERE key = ?1")?
                .execute([session])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_interactions_feed_are_every_metric_but_syncs() {
        let listed: Vec<i64> = INTERACTION_METRICS
            .split(", ")
            .map(|m| m.parse().expect("a number"))
            .collect();
        let all = [
            Metric::Ttft,
            Metric::Cache,
            Metric::Costs,
            Metric::Reranking,
            Metric::Steps,
            Metric::Sessions,
            Metric::Users,
            Metric::Utilization,
            Metric::Trending,
        ];
        assert_eq!(listed, all.map(|m| m as i64));
        assert!(!listed.contains(&(Metric::Sync as i64)));
    }

    #[test]
    fn dropping_a_slot_reads_it_by_its_key() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE rollups (metric INTEGER NOT NULL, level INTEGER NOT NULL,
                bucket INTEGER NOT NULL, assistant INTEGER NOT NULL, state BLOB NOT NULL,
                UNIQUE (metric, level, bucket, assistant));
             CREATE TABLE rollup_deltas (id INTEGER PRIMARY KEY, metric INTEGER NOT NULL,
                bucket INTEGER NOT NULL, assistant INTEGER NOT NULL, state BLOB NOT NULL);
             CREATE INDEX rollup_deltas_by_slot ON rollup_deltas (metric, bucket, assistant);",
        )
        .expect("schema");
        for (table, sql) in [
            (
                "rollups",
                format!(
                    "DELETE FROM rollups WHERE metric IN ({INTERACTION_METRICS}) AND level = 0 AND bucket = 1 AND assistant = 2"
                ),
            ),
            (
                "rollup_deltas",
                format!(
                    "DELETE FROM rollup_deltas WHERE metric IN ({INTERACTION_METRICS}) AND bucket = 1 AND assistant = 2"
                ),
            ),
        ] {
            let plan: String = conn
                .query_row(&format!("EXPLAIN QUERY PLAN {sql}"), [], |r| r.get(3))
                .expect("plan");
            assert!(plan.contains("USING INDEX"), "{table}: {plan}");
        }
    }
}
