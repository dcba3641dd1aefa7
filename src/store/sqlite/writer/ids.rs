//! Which interaction ids are stored: idempotent ingest without a global index
//! on random ids.
//!
//! A unique index on `id` alone put every new interaction on a random page of
//! a large B-tree, so each commit rewrote most of that index: a third of the
//! ingest time at a million interactions (measured: 36.7k against 49.0k/s
//! without it). Schema v6 keeps the ids unique per day of their timestamp
//! instead (`interactions_by_day_id`), whose pages a commit of recent or
//! time-ordered events shares. A retry, which repeats the event, meets its
//! copy there. An id sent again with a timestamp on another day must be a
//! duplicate too: a Bloom filter of every stored id, in the writer's memory,
//! says which ids can have been stored at all, and only those are looked up
//! in the other days. The filter never misses a stored id, so the answers
//! stay exact; a false positive costs one lookup per stored day.

use std::collections::BTreeSet;

use fastbloom::BloomFilter;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::time::MICROS_PER_DAY;

/// The day an interaction's id is unique in. The SQL of
/// `interactions_by_day_id` (schema v6) computes the same, and a lookup must
/// write it the same way for SQLite to use that index.
pub(super) fn day_of(ts: i64) -> i64 {
    // SQLite's integer division truncates towards zero, as Rust's does.
    ts / MICROS_PER_DAY
}

/// SQL that finds an interaction by (day, id) through `interactions_by_day_id`.
const FIND: &str = "SELECT 1 FROM interactions WHERE ts / 86400000000 = ?1 AND id = ?2";

/// Chance that an id never stored still passes the filter.
const FALSE_POSITIVES: f64 = 0.001;
/// Ids the first filter is sized for, at the least.
const MIN_CAPACITY: usize = if cfg!(test) { 1 << 10 } else { 1 << 20 };

/// Every stored interaction id (as a filter) and the days that hold one.
pub(super) struct StoredIds {
    /// Each full filter is followed by one twice its size, so the filter
    /// grows without rereading the store (a scalable Bloom filter).
    filters: Vec<Filter>,
    /// Ids the last filter was sized for, and how many it holds.
    capacity: usize,
    in_last: usize,
    recorded: usize,
    days: BTreeSet<i64>,
}

impl StoredIds {
    /// Reads every stored id, in the order of the day index.
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Self> {
        // Keys only grow, so the largest is the count without a scan to count.
        let count: i64 =
            conn.query_row("SELECT coalesce(max(key), 0) FROM interactions", [], |r| {
                r.get(0)
            })?;
        let mut ids = Self::with_capacity((count.max(0) as usize).saturating_mul(2));
        let mut stmt = conn.prepare(
            "SELECT ts / 86400000000, id FROM interactions INDEXED BY interactions_by_day_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id = Uuid::from_slice(r.get_ref(1)?.as_blob()?).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, e.into())
            })?;
            ids.insert(id, r.get(0)?);
        }
        Ok(ids)
    }

    fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(MIN_CAPACITY);
        Self {
            filters: vec![filter(capacity)],
            capacity,
            in_last: 0,
            recorded: 0,
            days: BTreeSet::new(),
        }
    }

    /// Ids recorded (a rolled-back one included).
    pub(super) fn len(&self) -> usize {
        self.recorded
    }

    /// Records an id written in the open transaction. If that transaction
    /// rolls back the id stays: a false positive, never a wrong answer.
    pub(super) fn insert(&mut self, id: Uuid, day: i64) {
        if self.in_last >= self.capacity {
            self.capacity = self.capacity.saturating_mul(2);
            self.filters.push(filter(self.capacity));
            self.in_last = 0;
        }
        if let Some(last) = self.filters.last_mut() {
            last.insert(&id);
        }
        self.in_last += 1;
        self.recorded += 1;
        self.days.insert(day);
    }

    /// Whether an interaction with this id is stored, on any day. `ts` is the
    /// incoming event's time: a retry's copy is on that day, looked at first.
    pub(super) fn stored(&self, conn: &Connection, id: Uuid, ts: i64) -> rusqlite::Result<bool> {
        if !self.filters.iter().any(|f| f.contains(&id)) {
            return Ok(false);
        }
        let day = day_of(ts);
        let mut find = conn.prepare_cached(FIND)?;
        for day in std::iter::once(day).chain(self.days.iter().copied().filter(|&d| d != day)) {
            if find
                .query_row(params![day, id.as_bytes()], |_| Ok(()))
                .optional()?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// foldhash rather than the crate's default SipHash: loading ten million ids
/// at start is mostly hashing.
pub(super) type Filter = BloomFilter<foldhash::fast::RandomState>;

pub(super) fn filter(capacity: usize) -> Filter {
    BloomFilter::with_false_pos(FALSE_POSITIVES)
        .hasher(foldhash::fast::RandomState::default())
        .expected_items(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_truncate_like_sqlite_integer_division() {
        let conn = Connection::open_in_memory().expect("memory database");
        for ts in [
            0,
            1,
            MICROS_PER_DAY - 1,
            MICROS_PER_DAY,
            -1,
            -MICROS_PER_DAY - 1,
            i64::MAX,
            i64::MIN + 1,
        ] {
            let sql: i64 = conn
                .query_row("SELECT ?1 / 86400000000", [ts], |r| r.get(0))
                .expect("division");
            assert_eq!(day_of(ts), sql, "ts {ts}");
        }
    }

    #[test]
    fn the_filter_grows_past_its_capacity_and_forgets_nothing() {
        let mut ids = StoredIds::with_capacity(0);
        let first = ids.capacity;
        let all: Vec<Uuid> = (0..first + 10).map(|_| Uuid::new_v4()).collect();
        for id in &all {
            ids.insert(*id, 1);
        }
        assert_eq!(ids.filters.len(), 2);
        assert_eq!(ids.capacity, first * 2);
        assert!(
            all.iter()
                .all(|id| ids.filters.iter().any(|f| f.contains(id)))
        );
    }

    #[test]
    fn a_lookup_by_day_and_id_uses_the_day_index() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        crate::store::sqlite::schema::migrate(&mut conn).expect("schema");
        let plan: String = conn
            .query_row(
                &format!("EXPLAIN QUERY PLAN {FIND}"),
                params![1, [0u8; 16]],
                |r| r.get(3),
            )
            .expect("plan");
        assert!(
            plan.contains("USING INDEX interactions_by_day_id"),
            "{plan}"
        );
    }
}

/// Property: on a real store, an interaction id counts as a duplicate exactly
/// when it was stored before, whatever days its copies carry, across batches,
/// groups and a restart (which reloads the filter from the store).
#[cfg(test)]
mod property {
    use std::collections::HashSet;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::ingest::ingest_values;
    use crate::ingest::validate::EventLimits;
    use crate::store::sqlite::open_for_test;
    use crate::time::Timestamp;

    /// Interaction `id` (of a pool of 8) dated `day` days and `minute` minutes ago.
    fn event(now: i64, id: u8, day: i64, minute: i64) -> Value {
        json!({
            "type": "interaction",
            "id": Uuid::from_u128(u128::from(id) + 1),
            "timestamp": Timestamp(now - day * MICROS_PER_DAY - minute * 60_000_000).to_rfc3339(),
            "assistant_id": Uuid::from_u128(1 << 64),
            "session_id": "s",
            "cache_hit": false,
            "input_tokens": 1,
            "output_tokens": 1,
            "question": "How do I reset my password?",
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn an_id_is_a_duplicate_exactly_when_stored_before(
            events in proptest::collection::vec((0u8..8, 0i64..4, 0i64..1440), 1..40),
            batch in 1usize..8,
            restart in 0usize..40,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let dir = tempfile::tempdir().expect("tempdir");
            let now = Timestamp::now().0;
            let mut seen = HashSet::new();
            let mut store = open_for_test(dir.path());
            for (n, chunk) in events.chunks(batch).enumerate() {
                if n * batch >= restart && n * batch < restart + batch {
                    runtime.block_on(store.close());
                    drop(store);
                    store = open_for_test(dir.path());
                }
                let values: Vec<(usize, Value)> = chunk
                    .iter()
                    .map(|&(id, day, minute)| event(now, id, day, minute))
                    .enumerate()
                    .collect();
                let fresh = chunk.iter().filter(|(id, _, _)| seen.insert(*id)).count();
                let outcome = runtime
                    .block_on(ingest_values(&store, values, &EventLimits::default()))
                    .expect("ingest");
                prop_assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
                prop_assert_eq!(outcome.accepted, fresh);
                prop_assert_eq!(outcome.duplicates, chunk.len() - fresh);
            }
            runtime.block_on(store.close());
            let conn = Connection::open(dir.path().join(crate::store::sqlite::DATABASE_FILE)).expect("database");
            let stored: i64 = conn.query_row("SELECT count(*) FROM interactions", [], |r| r.get(0)).expect("count");
            prop_assert_eq!(stored as usize, seen.len());
        }
    }
}
