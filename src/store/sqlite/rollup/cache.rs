//! Merged rollups of past buckets, kept in memory. The whole buckets of a
//! window like "the last 30 days" are the same for every request of the hour,
//! and rows of past buckets change only when a late event, a seal, a reprice
//! or a rebuild bumps the store's past version; so they are merged once and
//! each request folds only its raw partial hours on top of a copy.

use std::any::Any;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::Metric;
use super::plan::Plan;

/// Entries kept before the cache is emptied (a bound on memory: entries are
/// per metric, scope and window length, so a dashboard needs a few dozen).
const MAX_ENTRIES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    metric: Metric,
    assistant: Option<i64>,
    days: Vec<Range<i64>>,
    hours: Vec<Range<i64>>,
    version: i64,
}

/// Shared by the reader threads of one store.
#[derive(Default)]
pub struct MergeCache {
    entries: Mutex<HashMap<Key, Arc<dyn Any + Send + Sync>>>,
}

impl MergeCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The merged whole buckets of `plan`, from the cache or from `merge`.
    pub fn get_or_merge<T, E>(
        &self,
        metric: Metric,
        assistant: Option<i64>,
        plan: &Plan,
        version: i64,
        merge: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
    {
        let key = Key {
            metric,
            assistant,
            days: plan.days.clone(),
            hours: plan.hours.clone(),
            version,
        };
        if let Some(found) = self.lookup(&key) {
            return Ok(found);
        }
        // Two readers may merge the same key at once; both results are equal.
        let merged = Arc::new(merge()?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            // Entries of older versions can never be hit again.
            entries.retain(|k, _| k.version >= version);
            entries.insert(key, merged.clone());
        }
        Ok(merged)
    }

    fn lookup<T: Send + Sync + 'static>(&self, key: &Key) -> Option<Arc<T>> {
        let entries = self.entries.lock().ok()?;
        entries.get(key)?.clone().downcast::<T>().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_is_reused_until_the_version_moves() {
        let cache = MergeCache::new();
        let plan = Plan::new(0, 10 * crate::time::MICROS_PER_HOUR, i64::MAX, &[]);
        let mut merges = 0;
        for version in [1, 1, 1, 2, 2] {
            let got: Arc<u64> = cache
                .get_or_merge::<u64, ()>(Metric::Cache, None, &plan, version, || {
                    merges += 1;
                    Ok(version as u64 * 10)
                })
                .unwrap_or_else(|()| Arc::new(0));
            assert_eq!(*got, version as u64 * 10);
        }
        assert_eq!(merges, 2);
    }

    #[test]
    fn scopes_and_metrics_do_not_share_entries() {
        let cache = MergeCache::new();
        let plan = Plan::new(0, 10 * crate::time::MICROS_PER_HOUR, i64::MAX, &[]);
        let a: Result<Arc<u64>, ()> = cache.get_or_merge(Metric::Cache, None, &plan, 1, || Ok(1));
        let b: Result<Arc<u64>, ()> =
            cache.get_or_merge(Metric::Cache, Some(3), &plan, 1, || Ok(2));
        let c: Result<Arc<u64>, ()> = cache.get_or_merge(Metric::Ttft, None, &plan, 1, || Ok(3));
        assert_eq!(
            (a.map(|x| *x), b.map(|x| *x), c.map(|x| *x)),
            (Ok(1), Ok(2), Ok(3))
        );
    }
}
