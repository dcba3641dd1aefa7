//! The twelve analytics metrics as mergeable aggregates, plus the lookups their
//! `finish` steps need.
//!
//! Every metric is a state type with `add` (fold one event), `merge` (combine two
//! states, e.g. hourly rollups) and `finish` (build the response model). States
//! hold only integers, so merging in any order gives the same state and the same
//! answer; floats appear only in `finish`.
//!
//! Events name entities by the store's `i64` surrogate keys. Uuids, names and other
//! registry data are only needed when a response is built, so `finish` asks for
//! them through the small directory traits below, which the store implements.
//! Lookups may fail (they may hit the database), hence the associated `Error`.
//! Metrics with a `limit` only look up the entities that can still make the cut.

use uuid::Uuid;

/// States keyed by the store's surrogate keys. A scan folds every row of a
/// window into one, so the hasher matters: foldhash is several times cheaper
/// than the default SipHash on an `i64` (the keys are the store's own, not a
/// client's, but the hasher is seeded per process anyway).
pub type KeyMap<V> = std::collections::HashMap<i64, V, foldhash::fast::RandomState>;

/// An estimate of the heap and inline bytes a state holds, for caches that
/// bound their memory by bytes: the capacity of each table and vector times
/// its element size, plus the inline size. An estimate, not an allocator's
/// count (hash tables also keep control bytes, allocators round up).
pub trait ApproxBytes {
    fn approx_bytes(&self) -> usize;
}

/// Bytes of a hash table's slots: one key, one value and one control byte each.
pub fn table_bytes<K, V, S>(map: &std::collections::HashMap<K, V, S>) -> usize {
    map.capacity() * (size_of::<K>() + size_of::<V>() + 1)
}

/// Bytes of a vector's allocation.
pub fn vec_bytes<T>(v: &[T], capacity: usize) -> usize {
    capacity.max(v.len()) * size_of::<T>()
}

pub mod cache;
pub mod costs;
pub mod diversity;
pub mod freshness;
pub mod models;
pub mod reranking;
pub mod round;
pub mod sessions;
pub mod steps;
pub mod sync;
pub mod timeseries;
pub mod trending;
pub mod ttft;
pub mod users;
pub mod utilization;

/// Registry data of an assistant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantMeta {
    pub uuid: Uuid,
    /// `None` when the assistant was never registered.
    pub name: Option<String>,
}

/// Assistant lookups, for costs.
pub trait AssistantDirectory {
    type Error;
    fn assistant(&self, key: i64) -> Result<AssistantMeta, Self::Error>;
}

/// Registry data of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// The client's label (first-seen spelling); `None` for a topic built from questions.
    pub label: Option<String>,
    /// The assistant the topic belongs to.
    pub assistant: Uuid,
}

/// Topic and phrasing lookups, for trending.
pub trait TopicDirectory {
    type Error;
    fn topic(&self, key: i64) -> Result<TopicMeta, Self::Error>;
    /// The raw (trimmed) question text of a phrasing.
    fn phrasing_text(&self, key: i64) -> Result<String, Self::Error>;
}

/// Registry data of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentMeta {
    pub uuid: Uuid,
    /// `None` when the document was never registered.
    pub file_name: Option<String>,
    /// `None` when the document or its connector is unknown.
    pub connector_name: Option<String>,
}

/// Document lookups, for utilization.
pub trait DocumentDirectory {
    type Error;
    fn document(&self, key: i64) -> Result<DocumentMeta, Self::Error>;
    /// Visits the keys of the registered, not deleted documents (the
    /// candidates for `cold`) in the listing's order: file name (the id's
    /// text when it has none), then id; stops when `visit` returns `false`,
    /// so a listing reads only as far as its limit.
    fn live_documents_by_name(&self, visit: &mut dyn FnMut(i64) -> bool)
    -> Result<(), Self::Error>;
    /// Latest retrieval (µs since the epoch, up to now, in the request's scope) of each
    /// key, in the order given. Called once per `finish`, with only the rows returned,
    /// so the store never computes it for documents cut by the limit.
    fn last_retrieved(&self, keys: &[i64]) -> Result<Vec<Option<i64>>, Self::Error>;
}

/// Registry data of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMeta {
    /// The user id as clients send it (a UUID in its canonical form).
    pub id: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
}

/// User lookups, for user stats.
pub trait UserDirectory {
    type Error;
    fn user(&self, key: i64) -> Result<UserMeta, Self::Error>;
}

/// Registry data of a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorMeta {
    pub uuid: Uuid,
    /// `None` when the connector was never registered.
    pub name: Option<String>,
}

/// Connector lookups, for sync rates.
pub trait ConnectorDirectory {
    type Error;
    fn connector(&self, key: i64) -> Result<ConnectorMeta, Self::Error>;
    /// Keys of every registered connector: they are listed even without syncs.
    fn registered_connectors(&self) -> Result<Vec<i64>, Self::Error>;
}

/// Counts are `u64` inside the states; the models use `i64`. Saturates rather than
/// wraps: a count past `i64::MAX` cannot come from real traffic.
pub(crate) fn count_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Sums are `i128` inside the states so they never overflow while folding.
pub(crate) fn sum_i64(n: i128) -> i64 {
    // The clamp makes the cast lossless.
    n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Keeps the items that can still be among the first `limit` once sorted by an
/// order whose leading keys are `key` (the numeric ones): all items ranked at or
/// before the `limit`-th item's key, ties included. The survivors are the only ones
/// that need registry lookups to break ties by name or uuid.
pub(crate) fn keep_contenders<T, K: Ord>(
    mut items: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    if limit == 0 {
        return Vec::new();
    }
    if items.len() <= limit {
        return items;
    }
    items.select_nth_unstable_by_key(limit - 1, &key);
    let cutoff = key(&items[limit - 1]);
    items.retain(|item| key(item) <= cutoff);
    items
}

#[cfg(test)]
pub(crate) mod fixture {
    //! An in-memory directory for the metric tests: what a store preloads.

    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::convert::Infallible;

    use super::*;

    /// Deterministic uuid for a key: `00000000-0000-0000-0000-<key in hex>`.
    pub fn uuid_of(key: i64) -> Uuid {
        Uuid::from_u128(key as u128)
    }

    #[derive(Default)]
    pub struct MapDirectory {
        pub names: HashMap<i64, String>,
        pub labels: HashMap<i64, String>,
        /// Topic key → assistant key (uuid via `uuid_of`); absent = assistant 0.
        pub topic_assistants: HashMap<i64, i64>,
        pub phrasings: HashMap<i64, String>,
        pub connector_names: HashMap<i64, String>,
        pub emails: HashMap<i64, String>,
        pub live: Vec<i64>,
        pub registered_connectors: Vec<i64>,
        pub last_retrieved: HashMap<i64, i64>,
        /// Every key `last_retrieved` was asked about, to check the limit is applied first.
        pub asked_last_retrieved: RefCell<Vec<i64>>,
        /// Every key `document`/`user`/`topic` was asked about.
        pub asked_meta: RefCell<Vec<i64>>,
    }

    impl AssistantDirectory for MapDirectory {
        type Error = Infallible;
        fn assistant(&self, key: i64) -> Result<AssistantMeta, Infallible> {
            Ok(AssistantMeta {
                uuid: uuid_of(key),
                name: self.names.get(&key).cloned(),
            })
        }
    }

    impl TopicDirectory for MapDirectory {
        type Error = Infallible;
        fn topic(&self, key: i64) -> Result<TopicMeta, Infallible> {
            self.asked_meta.borrow_mut().push(key);
            let assistant = self.topic_assistants.get(&key).copied().unwrap_or(0);
            Ok(TopicMeta {
                label: self.labels.get(&key).cloned(),
                assistant: uuid_of(assistant),
            })
        }
        fn phrasing_text(&self, key: i64) -> Result<String, Infallible> {
            Ok(self.phrasings.get(&key).cloned().unwrap_or_default())
        }
    }

    impl DocumentDirectory for MapDirectory {
        type Error = Infallible;
        fn document(&self, key: i64) -> Result<DocumentMeta, Infallible> {
            self.asked_meta.borrow_mut().push(key);
            Ok(DocumentMeta {
                uuid: uuid_of(key),
                file_name: self.names.get(&key).cloned(),
                connector_name: self.connector_names.get(&key).cloned(),
            })
        }
        fn live_documents_by_name(
            &self,
            visit: &mut dyn FnMut(i64) -> bool,
        ) -> Result<(), Infallible> {
            // A store's keys are unique; the fixture's list may repeat one.
            let mut live = self.live.clone();
            live.sort_unstable();
            live.dedup();
            let name = |k: &i64| {
                let uuid = uuid_of(*k);
                let name = self.names.get(k).cloned();
                (name.unwrap_or_else(|| uuid.to_string()), uuid)
            };
            live.sort_by_key(name);
            for key in live {
                if !visit(key) {
                    break;
                }
            }
            Ok(())
        }
        fn last_retrieved(&self, keys: &[i64]) -> Result<Vec<Option<i64>>, Infallible> {
            self.asked_last_retrieved
                .borrow_mut()
                .extend_from_slice(keys);
            Ok(keys
                .iter()
                .map(|k| self.last_retrieved.get(k).copied())
                .collect())
        }
    }

    impl UserDirectory for MapDirectory {
        type Error = Infallible;
        fn user(&self, key: i64) -> Result<UserMeta, Infallible> {
            self.asked_meta.borrow_mut().push(key);
            Ok(UserMeta {
                id: uuid_of(key).to_string(),
                email: self.emails.get(&key).cloned(),
                full_name: self.names.get(&key).cloned(),
            })
        }
    }

    impl ConnectorDirectory for MapDirectory {
        type Error = Infallible;
        fn connector(&self, key: i64) -> Result<ConnectorMeta, Infallible> {
            Ok(ConnectorMeta {
                uuid: uuid_of(key),
                name: self.names.get(&key).cloned(),
            })
        }
        fn registered_connectors(&self) -> Result<Vec<i64>, Infallible> {
            Ok(self.registered_connectors.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_keep_every_tie_at_the_cutoff() {
        // Sorted descending: 9, 7, 7, 7, 3. The 2nd item is a 7, so all three 7s stay.
        let kept = keep_contenders(vec![7u64, 3, 9, 7, 7], 2, |x| std::cmp::Reverse(*x));
        let mut kept = kept;
        kept.sort_unstable();
        assert_eq!(kept, vec![7, 7, 7, 9]);
    }

    #[test]
    fn contenders_with_zero_limit_are_none() {
        assert!(keep_contenders(vec![1u64, 2], 0, |x| *x).is_empty());
    }

    #[test]
    fn contenders_under_the_limit_are_all_kept() {
        assert_eq!(keep_contenders(vec![1u64, 2], 5, |x| *x), vec![1, 2]);
    }

    #[test]
    fn conversions_saturate_instead_of_wrapping() {
        assert_eq!(count_i64(u64::MAX), i64::MAX);
        assert_eq!(count_i64(42), 42);
        assert_eq!(sum_i64(i128::MAX), i64::MAX);
        assert_eq!(sum_i64(i128::MIN), i64::MIN);
        assert_eq!(sum_i64(-5), -5);
    }
}
