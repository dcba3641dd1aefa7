//! The writer's side of rollups: folds each stored interaction and sync into
//! the states of its hour (and of its day, once sealed), tracks every session's
//! span so short sessions can be kept as settled counters, and writes the
//! touched states back before the transaction commits.

use std::collections::HashMap;
use std::hash::Hash;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Level, Metric, NO_ASSISTANT, SEALED_KEY, bump_past_version, decode, encode, meta, set_meta,
};
use crate::metrics::ApproxBytes;
use crate::metrics::cache::CacheState;
use crate::metrics::costs::CostsState;
use crate::metrics::reranking::RerankingState;
use crate::metrics::sessions::SessionsState;
use crate::metrics::steps::{StepSample, StepsState};
use crate::metrics::sync::{SyncState, SyncStatus};
use crate::metrics::trending::TrendingState;
use crate::metrics::trending::window::WindowTopics;
use crate::metrics::ttft::TtftState;
use crate::metrics::users::UsersState;
use crate::metrics::utilization::UtilizationState;
use crate::time::{MICROS_PER_SECOND, Timestamp};

type SqlResult<T> = Result<T, rusqlite::Error>;

/// A metric state that rollups can store and merge. Merging is commutative
/// and associative (see `metrics`), so a window's buckets can be
/// merged in any grouping: the merge cache keeps per-bucket merges.
pub trait RollupState: Default + Clone + Serialize + DeserializeOwned + ApproxBytes {
    fn merge_from(&mut self, other: Self);

    /// Merges a shared state (one the merge cache keeps) into `self`, the
    /// larger side (a window's merge of its buckets).
    fn merge_ref(&mut self, other: &Self) {
        self.merge_from(other.clone());
    }

    /// As [`merge_ref`](Self::merge_ref) when `self` is the smaller side (a
    /// window's partial hours): by default the shared state is copied once
    /// and `self` merged into the copy.
    fn merge_onto(&mut self, shared: &Self) {
        let mut out = shared.clone();
        out.merge_from(std::mem::take(self));
        *self = out;
    }
}

macro_rules! rollup_states {
    ($($ty:ty),* $(,)?) => {$(
        impl RollupState for $ty {
            fn merge_from(&mut self, other: Self) {
                self.merge(other);
            }
        }
    )*};
}

/// Values are concatenated: copied once from the shared state, no clone.
impl RollupState for TtftState {
    fn merge_from(&mut self, other: Self) {
        self.merge(other);
    }

    fn merge_ref(&mut self, other: &Self) {
        self.extend_from(other);
    }

    fn merge_onto(&mut self, shared: &Self) {
        self.extend_from(shared);
    }
}

rollup_states!(
    CacheState,
    CostsState,
    RerankingState,
    StepsState,
    SessionsState,
    UsersState,
    UtilizationState,
    TrendingState,
    SyncState,
);

/// Merged unsettled: the reader settles the merge of a window's buckets once.
impl RollupState for WindowTopics {
    fn merge_from(&mut self, other: Self) {
        self.append(other);
    }

    fn merge_ref(&mut self, other: &Self) {
        self.append_from(other);
    }

    fn merge_onto(&mut self, shared: &Self) {
        self.append_from(shared);
    }
}

/// What rollups need of one stored interaction.
#[derive(Debug, Clone)]
pub struct Interaction<'a> {
    pub ts: i64,
    pub assistant: i64,
    pub session: i64,
    pub user: Option<i64>,
    pub topic: Option<i64>,
    pub phrasing: Option<i64>,
    pub ttft_us: Option<i64>,
    pub cache_hit: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nusd: i64,
    /// (improvement, position change), both ×1e9, when the interaction was reranked.
    pub rerank: Option<(i64, Option<i64>)>,
    pub steps: &'a [StepSample<'a>],
    /// Distinct retrieved documents.
    pub documents: &'a [i64],
}

/// The columns of `interactions` that rollups count, in the order
/// [`Counted::read`] reads them.
pub const COUNTED_COLUMNS: &str = "ts, assistant, session, user, topic, phrasing, ttft_us, \
     cache_hit, input_tokens, output_tokens, cost_nusd, rerank_improvement_n, rerank_position_n";

/// What rollups count of one stored interaction, its details aside: read
/// once here for every path that folds stored interactions (rebuild, erasure).
#[derive(Debug, Clone)]
pub struct Counted {
    pub ts: i64,
    pub assistant: i64,
    pub session: i64,
    pub user: Option<i64>,
    pub topic: Option<i64>,
    pub phrasing: Option<i64>,
    pub ttft_us: Option<i64>,
    pub cache_hit: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nusd: i64,
    pub rerank: Option<(i64, Option<i64>)>,
}

impl Counted {
    /// Reads [`COUNTED_COLUMNS`] from column `at` of `r` on.
    pub fn read(r: &rusqlite::Row<'_>, at: usize) -> SqlResult<Self> {
        let improvement: Option<i64> = r.get(at + 11)?;
        Ok(Self {
            ts: r.get(at)?,
            assistant: r.get(at + 1)?,
            session: r.get(at + 2)?,
            user: r.get(at + 3)?,
            topic: r.get(at + 4)?,
            phrasing: r.get(at + 5)?,
            ttft_us: r.get(at + 6)?,
            cache_hit: r.get(at + 7)?,
            input_tokens: r.get(at + 8)?,
            output_tokens: r.get(at + 9)?,
            cost_nusd: r.get(at + 10)?,
            rerank: match improvement {
                Some(i) => Some((i, r.get(at + 12)?)),
                None => None,
            },
        })
    }

    /// The interaction as rollups fold it, with its details.
    pub fn with<'a>(&self, steps: &'a [StepSample<'a>], documents: &'a [i64]) -> Interaction<'a> {
        Interaction {
            ts: self.ts,
            assistant: self.assistant,
            session: self.session,
            user: self.user,
            topic: self.topic,
            phrasing: self.phrasing,
            ttft_us: self.ttft_us,
            cache_hit: self.cache_hit,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_nusd: self.cost_nusd,
            rerank: self.rerank,
            steps,
            documents,
        }
    }
}

/// (level, bucket, assistant) of one state.
type Slot = (Level, i64, i64);

/// How a metric's changed states reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// The slot's whole state is read, changed and written back. Sessions need
    /// it: a later interaction can move a session out of an older bucket's
    /// settled counters, which is not a merge.
    Replace,
    /// Each commit appends the state of its own events as a delta row, and
    /// every [`COMPACT_AT`] deltas the slot's row absorbs them. A commit then
    /// costs its own events, not the size of the hour so far: rewriting a busy
    /// current hour on every commit made ingest slow down as the hour filled.
    Append,
}

/// Delta rows a slot gathers before they are merged into its row: bounds both
/// the rows a reader merges and how often the hour's row is rewritten. Unit
/// tests compact every second commit, so their few commits meet both states.
const COMPACT_AT: u32 = if cfg!(test) { 2 } else { 16 };

struct Entry<T> {
    state: T,
    dirty: bool,
    /// Touched since the last commit: kept for the next one (a backfill in
    /// time order keeps hitting the same day).
    touched: bool,
}

/// The states of one metric that the writer holds.
struct States<T> {
    metric: Metric,
    writes: Writes,
    entries: HashMap<Slot, Entry<T>>,
    /// Delta rows stored per slot ([`Writes::Append`]), counted on first use.
    deltas: HashMap<Slot, u32>,
}

impl<T: RollupState> States<T> {
    fn new(metric: Metric) -> Self {
        Self {
            metric,
            writes: match metric {
                Metric::Sessions => Writes::Replace,
                _ => Writes::Append,
            },
            entries: HashMap::new(),
            deltas: HashMap::new(),
        }
    }

    /// The state of a slot: read from the database on first use, or (when
    /// appending) empty, to collect this commit's events.
    fn get(&mut self, conn: &Connection, slot: Slot) -> SqlResult<&mut T> {
        let (metric, writes) = (self.metric, self.writes);
        let entry = match self.entries.entry(slot) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let state = match writes {
                    Writes::Append => T::default(),
                    Writes::Replace => load(conn, metric, slot)?.unwrap_or_default(),
                };
                e.insert(Entry {
                    state,
                    dirty: false,
                    touched: false,
                })
            }
        };
        entry.dirty = true;
        entry.touched = true;
        Ok(&mut entry.state)
    }

    /// Writes the touched states; true when one of them is a past bucket's
    /// (a day, or an hour before `current_hour`).
    fn flush(&mut self, conn: &Connection, current_hour: i64) -> SqlResult<bool> {
        let mut past = false;
        for (slot, entry) in &mut self.entries {
            if !entry.dirty {
                continue;
            }
            match self.writes {
                Writes::Append if slot.0 == Level::Hour => {
                    append(conn, self.metric, *slot, &entry.state)?;
                    let count = match self.deltas.entry(*slot) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(count_deltas(conn, self.metric, *slot)?)
                        }
                    };
                    *count += 1;
                    if *count >= COMPACT_AT {
                        compact::<T>(conn, self.metric, *slot)?;
                        *count = 0;
                    }
                }
                _ => put(conn, self.metric, *slot, &entry.state)?,
            }
            entry.dirty = false;
            past |= slot.0 == Level::Day || slot.1 < current_hour;
        }
        if self.writes == Writes::Append {
            // Stored: the next commit collects its own events afresh.
            self.entries.clear();
        }
        Ok(past)
    }

    /// Keeps only the states the next commits are likely to touch: those of
    /// the hours around `hour` and those the last commit touched.
    fn retain_recent(&mut self, hour: i64) {
        let recent = |slot: &Slot| slot.0 == Level::Hour && (hour - 1..=hour + 1).contains(&slot.1);
        self.entries
            .retain(|slot, entry| std::mem::take(&mut entry.touched) || recent(slot));
        self.deltas.retain(|slot, _| recent(slot));
    }
}

/// The stored row of a slot (without its deltas).
fn load<T: DeserializeOwned>(
    conn: &Connection,
    metric: Metric,
    slot: Slot,
) -> SqlResult<Option<T>> {
    let stored: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT state FROM rollups WHERE metric = ?1 AND level = ?2 AND bucket = ?3 AND assistant = ?4",
        )?
        .query_row(params![metric as i64, slot.0 as i64, slot.1, slot.2], |r| {
            r.get(0)
        })
        .optional()?;
    stored.map(|bytes| decode(&bytes)).transpose()
}

fn append<T: Serialize>(conn: &Connection, metric: Metric, slot: Slot, state: &T) -> SqlResult<()> {
    conn.prepare_cached(
        "INSERT INTO rollup_deltas (metric, bucket, assistant, state) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![metric as i64, slot.1, slot.2, encode(state)?])?;
    Ok(())
}

fn count_deltas(conn: &Connection, metric: Metric, slot: Slot) -> SqlResult<u32> {
    conn.prepare_cached(
        "SELECT count(*) FROM rollup_deltas WHERE metric = ?1 AND bucket = ?2 AND assistant = ?3",
    )?
    .query_row(params![metric as i64, slot.1, slot.2], |r| r.get(0))
}

/// Merges a slot's deltas into its row and deletes them.
fn compact<T: RollupState>(conn: &Connection, metric: Metric, slot: Slot) -> SqlResult<()> {
    let mut state: T = load(conn, metric, slot)?.unwrap_or_default();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT state FROM rollup_deltas WHERE metric = ?1 AND bucket = ?2 AND assistant = ?3",
        )?;
        let mut rows = stmt.query(params![metric as i64, slot.1, slot.2])?;
        while let Some(row) = rows.next()? {
            state.merge_from(decode(row.get_ref(0)?.as_blob()?)?);
        }
    }
    put(conn, metric, slot, &state)?;
    conn.prepare_cached(
        "DELETE FROM rollup_deltas WHERE metric = ?1 AND bucket = ?2 AND assistant = ?3",
    )?
    .execute(params![metric as i64, slot.1, slot.2])?;
    Ok(())
}

pub(super) fn put<T: Serialize>(
    conn: &Connection,
    metric: Metric,
    slot: Slot,
    state: &T,
) -> SqlResult<()> {
    conn.prepare_cached(
        "INSERT INTO rollups (metric, level, bucket, assistant, state) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (metric, level, bucket, assistant) DO UPDATE SET state = excluded.state",
    )?
    .execute(params![
        metric as i64,
        slot.0 as i64,
        slot.1,
        slot.2,
        encode(state)?
    ])?;
    Ok(())
}

/// Runs `$body` with `$states` bound to each metric's [`States`] in turn.
macro_rules! each_states {
    ($rollups:ident, |$states:ident| $body:expr) => {{
        {
            let $states = &mut $rollups.ttft;
            $body;
        }
        {
            let $states = &mut $rollups.cache;
            $body;
        }
        {
            let $states = &mut $rollups.costs;
            $body;
        }
        {
            let $states = &mut $rollups.reranking;
            $body;
        }
        {
            let $states = &mut $rollups.steps;
            $body;
        }
        {
            let $states = &mut $rollups.sessions;
            $body;
        }
        {
            let $states = &mut $rollups.users;
            $body;
        }
        {
            let $states = &mut $rollups.utilization;
            $body;
        }
        {
            let $states = &mut $rollups.trending;
            $body;
        }
        {
            let $states = &mut $rollups.sync;
            $body;
        }
    }};
}

/// Where a session's interactions lie, over all time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    first_ts: i64,
    last_ts: i64,
    /// `None` once the session has interactions of two assistants.
    assistant: Option<i64>,
    interactions: u64,
}

impl Span {
    fn new(ts: i64, assistant: i64) -> Self {
        Self {
            first_ts: ts,
            last_ts: ts,
            assistant: Some(assistant),
            interactions: 1,
        }
    }

    fn with(self, ts: i64, assistant: i64) -> Self {
        Self {
            first_ts: self.first_ts.min(ts),
            last_ts: self.last_ts.max(ts),
            assistant: self.assistant.filter(|&a| a == assistant),
            interactions: self.interactions + 1,
        }
    }

    /// Settled at this level: one assistant, one bucket.
    fn settled(&self, level: Level) -> Option<(i64, i64)> {
        let bucket = level.bucket(self.first_ts);
        let assistant = self.assistant?;
        (bucket == level.bucket(self.last_ts)).then_some((bucket, assistant))
    }
}

/// The rollup states the writer keeps between commits, and the spans of the
/// sessions touched by the open transaction.
pub struct Rollups {
    sealed_day: i64,
    ttft: States<TtftState>,
    cache: States<CacheState>,
    costs: States<CostsState>,
    reranking: States<RerankingState>,
    steps: States<StepsState>,
    sessions: States<SessionsState>,
    users: States<UsersState>,
    utilization: States<UtilizationState>,
    trending: States<TrendingState>,
    sync: States<SyncState>,
    spans: HashMap<i64, (Span, bool)>,
    /// Sealed days this transaction wrote to: their day rows go, and they are
    /// sealed again once a later commit no longer touches them.
    dirty_days: std::collections::BTreeSet<i64>,
}

impl Rollups {
    /// Reads the sealed watermark; a store without one starts it at `today`
    /// or at its earliest hour with rollups, whichever is earlier.
    pub fn open(conn: &Connection, today: i64) -> SqlResult<Self> {
        let sealed_day = match meta(conn, SEALED_KEY)? {
            Some(day) => day,
            None => {
                let first_hour: Option<i64> = conn.query_row(
                    "SELECT min(b) FROM (SELECT min(bucket) AS b FROM rollups WHERE level = ?1
                     UNION ALL SELECT min(bucket) FROM rollup_deltas)",
                    [Level::Hour as i64],
                    |r| r.get(0),
                )?;
                let day = first_hour.map_or(today, |h| h.div_euclid(24).min(today));
                set_meta(conn, SEALED_KEY, day)?;
                day
            }
        };
        Ok(Self {
            sealed_day,
            ttft: States::new(Metric::Ttft),
            cache: States::new(Metric::Cache),
            costs: States::new(Metric::Costs),
            reranking: States::new(Metric::Reranking),
            steps: States::new(Metric::Steps),
            sessions: States::new(Metric::Sessions),
            users: States::new(Metric::Users),
            utilization: States::new(Metric::Utilization),
            trending: States::new(Metric::Trending),
            sync: States::new(Metric::Sync),
            spans: HashMap::new(),
            dirty_days: Default::default(),
        })
    }

    /// Writes go to hour rows only; a write to a sealed day marks the day dirty.
    fn touch(&mut self, ts: i64) {
        let day = Level::Day.bucket(ts);
        if day < self.sealed_day {
            self.dirty_days.insert(day);
        }
    }

    pub fn interaction(&mut self, conn: &Connection, i: &Interaction<'_>) -> SqlResult<()> {
        self.touch(i.ts);
        {
            let slot = (Level::Hour, Level::Hour.bucket(i.ts), i.assistant);
            if let Some(ttft) = i.ttft_us {
                self.ttft.get(conn, slot)?.add(ttft);
            }
            self.cache.get(conn, slot)?.add(i.cache_hit);
            self.costs.get(conn, slot)?.add(
                i.assistant,
                i.input_tokens,
                i.output_tokens,
                i.cost_nusd,
            );
            if let Some((improvement, position)) = i.rerank {
                self.reranking.get(conn, slot)?.add(improvement, position);
            }
            if !i.steps.is_empty() {
                self.steps.get(conn, slot)?.add_interaction(i.steps);
            }
            if let Some(user) = i.user {
                self.users
                    .get(conn, slot)?
                    .add(user, i.input_tokens, i.output_tokens, i.ts);
            }
            if !i.documents.is_empty() {
                self.utilization
                    .get(conn, slot)?
                    .add_interaction(i.documents);
            }
            if let Some(topic) = i.topic {
                self.trending
                    .get(conn, slot)?
                    .add(topic, i.phrasing, 1, i.ts, i.ts);
            }
        }
        self.session(conn, i.session, i.assistant, i.ts)
    }

    /// Counts the interaction in its session's buckets. A session stays
    /// *settled* (three counters per bucket, see `SessionsState`) while all its
    /// interactions share one bucket and one assistant; the interaction that
    /// breaks that moves it to per-key tallies in its old bucket.
    fn session(
        &mut self,
        conn: &Connection,
        session: i64,
        assistant: i64,
        ts: i64,
    ) -> SqlResult<()> {
        let old = self.span(conn, session)?;
        let new = old.map_or(Span::new(ts, assistant), |o| o.with(ts, assistant));
        // A day row may count the session as settled (`settle_day_local`):
        // leaving its day or assistant dirties that day.
        if let Some(o) = old
            && o.settled(Level::Day).is_some()
            && new.settled(Level::Day).is_none()
        {
            self.touch(o.first_ts);
        }
        let level = Level::Hour;
        if let Some(o) = old
            && let Some((bucket, owner)) = o.settled(level)
            && new.settled(level).is_none()
        {
            // The old hour's day row counts the session as settled too.
            self.touch(o.first_ts);
            let state = self.sessions.get(conn, (level, bucket, owner))?;
            if !state.tracks(session) {
                state.unsettle(session, o.interactions);
            }
        }
        let state = self
            .sessions
            .get(conn, (level, level.bucket(ts), assistant))?;
        if new.settled(level).is_some() && !state.tracks(session) {
            state.resettle(old.map_or(0, |o| o.interactions), new.interactions);
        } else {
            state.add(session);
        }
        self.spans.insert(session, (new, true));
        Ok(())
    }

    fn span(&mut self, conn: &Connection, session: i64) -> SqlResult<Option<Span>> {
        if let Some((span, _)) = self.spans.get(&session) {
            return Ok(Some(*span));
        }
        let span = conn
            .prepare_cached(
                "SELECT first_ts, last_ts, assistant, interactions FROM session_spans WHERE session = ?1",
            )?
            .query_row([session], |r| {
                Ok(Span {
                    first_ts: r.get(0)?,
                    last_ts: r.get(1)?,
                    assistant: r.get(2)?,
                    interactions: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })
            .optional()?;
        if let Some(span) = span {
            self.spans.insert(session, (span, false));
        }
        Ok(span)
    }

    pub fn sync(
        &mut self,
        conn: &Connection,
        connector: i64,
        status: SyncStatus,
        duration_us: Option<i64>,
        started_at: i64,
    ) -> SqlResult<()> {
        self.touch(started_at);
        let slot = (Level::Hour, Level::Hour.bucket(started_at), NO_ASSISTANT);
        self.sync
            .get(conn, slot)?
            .add(connector, status, duration_us);
        Ok(())
    }

    /// Writes every state and span touched since the last flush. A write to
    /// a past bucket bumps the past version, so merged past buckets cached by
    /// readers are recomputed.
    pub fn flush(&mut self, conn: &Connection) -> SqlResult<()> {
        // The hour counts as past a minute before it ends: a reader whose window
        // already holds it whole must not cache it while this commit is on its way.
        let current = Level::Hour.bucket(Timestamp::now().0 + 60 * MICROS_PER_SECOND);
        let mut past = false;
        each_states!(self, |states| past |= states.flush(conn, current)?);
        for &day in &self.dirty_days {
            conn.prepare_cached("DELETE FROM rollups WHERE level = ?1 AND bucket = ?2")?
                .execute(params![Level::Day as i64, day])?;
            conn.prepare_cached("INSERT OR IGNORE INTO rollup_dirty_days (day) VALUES (?1)")?
                .execute([day])?;
        }
        if past || !self.dirty_days.is_empty() {
            bump_past_version(conn)?;
        }
        let mut stmt = conn.prepare_cached(
            "INSERT OR REPLACE INTO session_spans (session, first_ts, last_ts, assistant, interactions)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (session, (span, dirty)) in self.spans.drain() {
            if dirty {
                stmt.execute(params![
                    session,
                    span.first_ts,
                    span.last_ts,
                    span.assistant,
                    span.interactions as i64
                ])?;
            }
        }
        Ok(())
    }

    /// After a commit: keeps the states of the current hours, drops the rest,
    /// so memory stays bounded whatever the timestamps sent.
    pub fn committed(&mut self, now: i64) {
        let hour = Level::Hour.bucket(now);
        each_states!(self, |states| states.retain_recent(hour));
    }

    /// Seals the days before `today` (merges their hour rows into day rows),
    /// and seals again the dirty days this transaction did not write to (a
    /// backfill in time order seals each day once, after moving past it).
    /// Call after [`flush`](Self::flush), in the same transaction.
    pub fn seal(&mut self, conn: &Connection, today: i64) -> SqlResult<()> {
        let written = std::mem::take(&mut self.dirty_days);
        let dirty: Vec<i64> = {
            let mut stmt = conn.prepare_cached("SELECT day FROM rollup_dirty_days")?;
            let days = stmt.query_map([], |r| r.get(0))?;
            days.collect::<SqlResult<_>>()?
        };
        let mut resealed = false;
        for day in dirty.into_iter().filter(|d| !written.contains(d)) {
            seal_days(conn, day..day + 1)?;
            conn.prepare_cached("DELETE FROM rollup_dirty_days WHERE day = ?1")?
                .execute([day])?;
            resealed = true;
        }
        if resealed {
            bump_past_version(conn)?;
        }
        if today <= self.sealed_day {
            return Ok(());
        }
        seal_days(conn, self.sealed_day..today)?;
        conn.prepare_cached("DELETE FROM rollup_dirty_days WHERE day < ?1")?
            .execute([today])?;
        set_meta(conn, SEALED_KEY, today)?;
        bump_past_version(conn)?;
        self.sealed_day = today;
        Ok(())
    }

    /// Seals the days before `today` and every dirty day, those written
    /// since the last seal included: the writer's seal, run in a transaction
    /// of its own at most every second or so, so a day that keeps getting
    /// late events is merged once per seal, not once per commit.
    pub fn seal_all(&mut self, conn: &Connection, today: i64) -> SqlResult<()> {
        self.dirty_days.clear();
        self.seal(conn, today)
    }

    /// Seals every dirty day now (the end of a rebuild).
    pub fn seal_dirty(&mut self, conn: &Connection) -> SqlResult<()> {
        self.dirty_days.clear();
        self.seal(conn, i64::MIN)
    }
}

/// Merges the hour rows of `days` into their day rows, replacing any.
fn seal_days(conn: &Connection, days: std::ops::Range<i64>) -> SqlResult<()> {
    if days.is_empty() {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM rollups WHERE level = ?1 AND bucket >= ?2 AND bucket < ?3")?
        .execute(params![Level::Day as i64, days.start, days.end])?;
    let hours = days.start.saturating_mul(24)..days.end.saturating_mul(24);
    seal_metric::<TtftState>(conn, Metric::Ttft, hours.clone())?;
    seal_metric::<CacheState>(conn, Metric::Cache, hours.clone())?;
    seal_metric::<CostsState>(conn, Metric::Costs, hours.clone())?;
    seal_metric::<RerankingState>(conn, Metric::Reranking, hours.clone())?;
    seal_metric::<StepsState>(conn, Metric::Steps, hours.clone())?;
    seal_metric_with::<SessionsState>(conn, Metric::Sessions, hours.clone(), settle_day_local)?;
    seal_metric::<UsersState>(conn, Metric::Users, hours.clone())?;
    seal_metric::<UtilizationState>(conn, Metric::Utilization, hours.clone())?;
    seal_metric::<TrendingState>(conn, Metric::Trending, hours.clone())?;
    seal_metric::<SyncState>(conn, Metric::Sync, hours)
}

/// Merges the hour rows in `hours` of one metric into day rows.
fn seal_metric<T: RollupState>(
    conn: &Connection,
    metric: Metric,
    hours: std::ops::Range<i64>,
) -> SqlResult<()> {
    seal_metric_with::<T>(conn, metric, hours, |_, _, _, _| Ok(()))
}

/// A day's sessions that crossed an hour but not the day (nor an assistant)
/// are settled in the day row: long windows then merge counters, not keys.
/// A later interaction that breaks this marks the day dirty (`session`).
fn settle_day_local(
    conn: &Connection,
    day: i64,
    assistant: i64,
    state: &mut SessionsState,
) -> SqlResult<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_ts, last_ts, assistant FROM session_spans WHERE session = ?1",
    )?;
    for session in state.tracked() {
        let span: Option<(i64, i64, Option<i64>)> = stmt
            .query_row([session], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((first, last, owner)) = span
            && owner == Some(assistant)
            && Level::Day.bucket(first) == day
            && Level::Day.bucket(last) == day
        {
            state.settle(session);
        }
    }
    Ok(())
}

/// As [`seal_metric`], with `finish` applied to each day state before it is stored.
fn seal_metric_with<T: RollupState>(
    conn: &Connection,
    metric: Metric,
    hours: std::ops::Range<i64>,
    mut finish: impl FnMut(&Connection, i64, i64, &mut T) -> SqlResult<()>,
) -> SqlResult<()> {
    let mut days: HashMap<(i64, i64), T> = HashMap::new();
    super::visit(
        conn,
        metric,
        Level::Hour,
        hours,
        None,
        |hour, assistant, bytes| {
            merge_into(&mut days, (hour.div_euclid(24), assistant), decode(bytes)?);
            Ok(())
        },
    )?;
    for ((day, assistant), mut state) in days {
        finish(conn, day, assistant, &mut state)?;
        put(conn, metric, (Level::Day, day, assistant), &state)?;
    }
    Ok(())
}

fn merge_into<K: Hash + Eq, T: RollupState>(map: &mut HashMap<K, T>, key: K, state: T) {
    match map.get_mut(&key) {
        Some(mine) => mine.merge_from(state),
        None => {
            map.insert(key, state);
        }
    }
}
