//! Merged rollups of past buckets, kept in memory within a byte budget.
//!
//! Rows of past buckets change only when a late event, a seal, a reprice or
//! a rebuild bumps the store's past version, so their merges can be kept.
//! Two kinds of entry, both keyed by metric and assistant scope:
//! - one per bucket (a sealed day, or an hour): the merge of its rows over
//!   the scope's assistants. A window shifted by an hour shares all its
//!   buckets but the edges with the window before, so only those are read.
//! - one per plan (the whole buckets of one window): the merge of its bucket
//!   entries, so the requests of an hour that ask the same window merge
//!   nothing at all.
//!
//! Entries are handed out as `Arc`s (never copied by the cache) and evicted
//! least recently used first once their estimated bytes pass the budget.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::plan::Plan;
use super::write::RollupState;
use super::{Level, Metric};

/// The default byte budget of a store's merge cache.
pub const DEFAULT_BUDGET_BYTES: usize = 64 << 20;

/// Bytes an entry costs besides its state: key, map slot and LRU node.
const ENTRY_OVERHEAD: usize = 160;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Span {
    Plan {
        days: Vec<Range<i64>>,
        hours: Vec<Range<i64>>,
    },
    Bucket(Level, i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    metric: Metric,
    assistant: Option<i64>,
    span: Span,
}

impl Key {
    fn bytes(&self) -> usize {
        ENTRY_OVERHEAD
            + match &self.span {
                Span::Plan { days, hours } => (days.len() + hours.len()) * size_of::<Range<i64>>(),
                Span::Bucket(..) => 0,
            }
    }
}

struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    bytes: usize,
    used: u64,
}

/// Entries of one past version, in least-recently-used order.
#[derive(Default)]
struct Entries {
    version: i64,
    map: HashMap<Key, Entry>,
    /// `used` tick → key, oldest first.
    order: BTreeMap<u64, Key>,
    bytes: usize,
    tick: u64,
}

impl Entries {
    fn get<T: Send + Sync + 'static>(&mut self, key: &Key, version: i64) -> Option<Arc<T>> {
        if version != self.version {
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let entry = self.map.get_mut(key)?;
        self.order.remove(&entry.used);
        entry.used = tick;
        self.order.insert(tick, key.clone());
        entry.value.clone().downcast::<T>().ok()
    }

    fn put(
        &mut self,
        key: Key,
        value: Arc<dyn Any + Send + Sync>,
        bytes: usize,
        version: i64,
        budget: usize,
    ) {
        if version < self.version || bytes > budget {
            // A reader that started before the version moved, or an entry
            // that alone would pass the budget: answered, not kept.
            return;
        }
        if version > self.version {
            // Entries of older versions can never be hit again.
            *self = Entries {
                version,
                ..Entries::default()
            };
        }
        self.tick += 1;
        if let Some(old) = self.map.remove(&key) {
            self.order.remove(&old.used);
            self.bytes -= old.bytes;
        }
        self.order.insert(self.tick, key.clone());
        self.map.insert(
            key,
            Entry {
                value,
                bytes,
                used: self.tick,
            },
        );
        self.bytes += bytes;
        while self.bytes > budget {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(gone) = self.map.remove(&oldest) {
                self.bytes -= gone.bytes;
            }
        }
    }
}

/// Shared by the reader threads of one store.
pub struct MergeCache {
    entries: Mutex<Entries>,
    budget: usize,
}

impl Default for MergeCache {
    fn default() -> Self {
        Self::with_budget(DEFAULT_BUDGET_BYTES)
    }
}

impl MergeCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache whose entries together stay within about `budget` bytes
    /// (0 keeps nothing: every window merges its buckets from the store).
    pub fn with_budget(budget: usize) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            budget,
        }
    }

    /// The estimated bytes of the entries kept now, and their number.
    pub fn usage(&self) -> (usize, usize) {
        self.entries
            .lock()
            .map_or((0, 0), |e| (e.bytes, e.map.len()))
    }

    /// The merged whole buckets of `plan`: from the plan's entry, or merged
    /// from the entries of its buckets, reading the missing ones through
    /// `read` (which hands each stored state of a run of buckets to its sink
    /// with its bucket; a bucket's states are merged in any order). `settle`
    /// is applied to each bucket's merge and to the plan's.
    pub fn get_or_merge<T, E>(
        &self,
        metric: Metric,
        assistant: Option<i64>,
        plan: &Plan,
        version: i64,
        mut read: impl FnMut(Level, Range<i64>, &mut dyn FnMut(i64, T)) -> Result<(), E>,
        settle: impl Fn(&mut T),
    ) -> Result<Arc<T>, E>
    where
        T: RollupState + Send + Sync + 'static,
    {
        let key = Key {
            metric,
            assistant,
            span: Span::Plan {
                days: plan.days.clone(),
                hours: plan.hours.clone(),
            },
        };
        if let Some(found) = self.lookup(&key, version) {
            return Ok(found);
        }
        let mut whole = T::default();
        let runs = plan.days.iter().map(|r| (Level::Day, r.clone()));
        let runs = runs.chain(plan.hours.iter().map(|r| (Level::Hour, r.clone())));
        for (level, buckets) in runs {
            for part in self.buckets(
                metric, assistant, level, buckets, version, &mut read, &settle,
            )? {
                whole.merge_ref(&part);
            }
        }
        settle(&mut whole);
        Ok(self.keep(key, whole, version))
    }

    /// The merge of each bucket of `buckets`, from entries or read (in runs
    /// of consecutive missing buckets, one read each) and kept.
    #[allow(clippy::too_many_arguments)]
    fn buckets<T, E>(
        &self,
        metric: Metric,
        assistant: Option<i64>,
        level: Level,
        buckets: Range<i64>,
        version: i64,
        read: &mut impl FnMut(Level, Range<i64>, &mut dyn FnMut(i64, T)) -> Result<(), E>,
        settle: &impl Fn(&mut T),
    ) -> Result<Vec<Arc<T>>, E>
    where
        T: RollupState + Send + Sync + 'static,
    {
        let key = |bucket| Key {
            metric,
            assistant,
            span: Span::Bucket(level, bucket),
        };
        let mut parts: Vec<Option<Arc<T>>> = buckets
            .clone()
            .map(|b| self.lookup(&key(b), version))
            .collect();
        let mut i = 0;
        while i < parts.len() {
            if parts[i].is_some() {
                i += 1;
                continue;
            }
            let end = (i..parts.len())
                .find(|&j| parts[j].is_some())
                .unwrap_or(parts.len());
            let first = buckets.start + i as i64;
            let mut read_states: Vec<T> = (i..end).map(|_| T::default()).collect();
            read(
                level,
                first..buckets.start + end as i64,
                &mut |bucket, state| {
                    if let Some(slot) = usize::try_from(bucket - first)
                        .ok()
                        .and_then(|k| read_states.get_mut(k))
                    {
                        slot.merge_from(state);
                    }
                },
            )?;
            for (k, mut state) in read_states.into_iter().enumerate() {
                settle(&mut state);
                parts[i + k] = Some(self.keep(key(first + k as i64), state, version));
            }
            i = end;
        }
        Ok(parts.into_iter().flatten().collect())
    }

    fn keep<T: RollupState + Send + Sync + 'static>(
        &self,
        key: Key,
        state: T,
        version: i64,
    ) -> Arc<T> {
        let bytes = key.bytes() + state.approx_bytes();
        let state = Arc::new(state);
        if let Ok(mut entries) = self.entries.lock() {
            entries.put(key, state.clone(), bytes, version, self.budget);
        }
        state
    }

    fn lookup<T: Send + Sync + 'static>(&self, key: &Key, version: i64) -> Option<Arc<T>> {
        self.entries.lock().ok()?.get(key, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ApproxBytes;
    use crate::metrics::ttft::TtftState;
    use crate::time::MICROS_PER_HOUR as H;

    type Sink<'a> = &'a mut dyn FnMut(i64, TtftState);

    /// A store stand-in: hour h holds the values h·10 + 0..n (a day, those of its hours).
    fn read_hours(
        n: i64,
        reads: &mut Vec<Range<i64>>,
    ) -> impl FnMut(Level, Range<i64>, Sink<'_>) -> Result<(), ()> + '_ {
        move |level, buckets, sink| {
            reads.push(buckets.clone());
            for b in buckets {
                let hours = match level {
                    Level::Hour => b..b + 1,
                    Level::Day => b * 24..b * 24 + 24,
                };
                let mut s = TtftState::new();
                hours.for_each(|h| (0..n).for_each(|v| s.add(h * 10 + v)));
                sink(b, s);
            }
            Ok(())
        }
    }

    fn merged(
        cache: &MergeCache,
        plan: &Plan,
        version: i64,
        reads: &mut Vec<Range<i64>>,
    ) -> TtftState {
        let got = cache
            .get_or_merge(
                Metric::Ttft,
                None,
                plan,
                version,
                read_hours(3, reads),
                |_| {},
            )
            .expect("infallible");
        TtftState::clone(&got)
    }

    #[test]
    fn a_merge_is_reused_until_the_version_moves() {
        let cache = MergeCache::new();
        let plan = Plan::new(0, 10 * H, i64::MAX, &[]);
        let mut reads = Vec::new();
        for version in [1, 1, 1, 2, 2] {
            let got = merged(&cache, &plan, version, &mut reads);
            assert_eq!(got.len(), 9 * 3);
        }
        assert_eq!(reads, vec![1..10, 1..10]);
    }

    #[test]
    fn a_window_shifted_by_an_hour_reads_only_its_new_edge() {
        let cache = MergeCache::new();
        let mut reads = Vec::new();
        merged(&cache, &Plan::new(0, 10 * H, i64::MAX, &[]), 1, &mut reads);
        let shifted = merged(&cache, &Plan::new(H, 11 * H, i64::MAX, &[]), 1, &mut reads);
        assert_eq!(reads, vec![1..10, 10..11]);
        let mut want = TtftState::new();
        (2..11).for_each(|h| (0..3).for_each(|v| want.add(h * 10 + v)));
        assert_eq!(shifted.finish(1), want.finish(1));
    }

    #[test]
    fn scopes_and_metrics_do_not_share_entries() {
        let cache = MergeCache::new();
        let plan = Plan::new(0, 10 * H, i64::MAX, &[]);
        let mut reads = 0;
        let mut read = |_, hours: Range<i64>, sink: &mut dyn FnMut(i64, TtftState)| {
            reads += 1;
            hours.for_each(|h| sink(h, TtftState::new()));
            Ok::<(), ()>(())
        };
        for (metric, assistant) in [
            (Metric::Ttft, None),
            (Metric::Ttft, Some(3)),
            (Metric::Cache, None),
        ] {
            cache
                .get_or_merge(metric, assistant, &plan, 1, &mut read, |_| {})
                .expect("infallible");
        }
        assert_eq!(reads, 3);
    }

    #[test]
    fn the_entries_stay_within_the_byte_budget() {
        let budget = 20_000;
        let cache = MergeCache::with_budget(budget);
        let mut reads = Vec::new();
        for start in 0..400 {
            for len in [3, 7, 30] {
                let plan = Plan::new(start * H, (start + len) * H, i64::MAX, &[]);
                let got = cache
                    .get_or_merge(
                        Metric::Ttft,
                        None,
                        &plan,
                        1,
                        read_hours(20, &mut reads),
                        |_| {},
                    )
                    .expect("infallible");
                assert_eq!(got.len() as i64, (len - 1) * 20);
                let (bytes, entries) = cache.usage();
                assert!(bytes <= budget, "{bytes} bytes in {entries} entries");
            }
        }
        // The estimate counts at least the values each entry holds.
        let mut one = TtftState::new();
        (0..20).for_each(|v| one.add(v));
        assert!(one.approx_bytes() >= 20 * size_of::<i64>());
    }

    #[test]
    fn least_recently_used_entries_go_first() {
        let cache = MergeCache::with_budget(3 * (ENTRY_OVERHEAD + 100));
        let mut reads = Vec::new();
        let plan = |h: i64| Plan::new(h * H - 1, (h + 1) * H - 1, i64::MAX, &[]);
        for h in [1, 2, 1, 3, 1, 4, 1] {
            merged(&cache, &plan(h), 1, &mut reads);
        }
        // Hour 1 is used between every other read, so it is never evicted.
        assert_eq!(reads.iter().filter(|r| **r == (1..2)).count(), 1);
    }

    #[test]
    fn a_budget_of_zero_keeps_nothing() {
        let cache = MergeCache::with_budget(0);
        let mut reads = Vec::new();
        let plan = Plan::new(0, 10 * H, i64::MAX, &[]);
        merged(&cache, &plan, 1, &mut reads);
        merged(&cache, &plan, 1, &mut reads);
        assert_eq!(reads.len(), 2);
        assert_eq!(cache.usage(), (0, 0));
    }
}
