//! Document utilization: retrievals per document in the window, hot/warm/cold
//! status, and the listings (default, per status, cold documents).

use std::cmp::{Ordering, Reverse};
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DocumentDirectory, KeyMap, count_i64, keep_contenders};
use crate::metrics::models::DocumentUtilization;
use crate::time::Timestamp;

/// How much a document is used in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// More than 10 retrievals.
    Hot,
    /// 1 to 10 retrievals.
    Warm,
    /// None.
    Cold,
}

impl Status {
    pub fn of(retrievals: u64) -> Self {
        match retrievals {
            0 => Self::Cold,
            1..=10 => Self::Warm,
            _ => Self::Hot,
        }
    }

    /// The wire name: `hot`, `warm` or `cold`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hot => "hot",
            Self::Warm => "warm",
            Self::Cold => "cold",
        }
    }
}

/// Retrievals per document key; only documents retrieved at least once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtilizationState {
    retrievals: KeyMap<u64>,
}

/// A row chosen for the response, before its `last_retrieved` is known.
struct Pick {
    key: i64,
    count: u64,
    uuid: Uuid,
    file_name: String,
    connector_name: String,
}

impl Pick {
    /// File name (uuid text when unregistered), then uuid: both listings end so.
    fn cmp_by_name(&self, other: &Self) -> Ordering {
        self.file_name
            .cmp(&other.file_name)
            .then(self.uuid.cmp(&other.uuid))
    }

    fn into_model(self, last_retrieved: Option<i64>) -> DocumentUtilization {
        DocumentUtilization {
            file_name: self.file_name,
            connector_name: self.connector_name,
            retrieval_count: count_i64(self.count),
            last_retrieved: last_retrieved.map(Timestamp),
            status: Status::of(self.count).as_str().to_owned(),
        }
    }
}

impl UtilizationState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction's retrieved documents; repeats count once.
    pub fn add_interaction(&mut self, documents: &[i64]) {
        let unique: HashSet<i64> = documents.iter().copied().collect();
        for doc in unique {
            self.add_retrieval(doc);
        }
    }

    /// One interaction retrieved `document`. The caller guarantees each
    /// (interaction, document) pair comes once, as the store's key does; the
    /// scan then needs no per-interaction grouping.
    pub fn add_retrieval(&mut self, document: i64) {
        *self.retrievals.entry(document).or_default() += 1;
    }

    /// How many of `live` (current documents' keys) no interaction of the
    /// window retrieved: the cold documents, counted without listing them.
    pub fn count_cold(&self, live: &[i64]) -> u64 {
        live.iter()
            .filter(|key| !self.retrievals.contains_key(key))
            .count() as u64
    }

    pub fn merge(&mut self, other: Self) {
        for (doc, n) in other.retrievals {
            *self.retrievals.entry(doc).or_default() += n;
        }
    }

    /// Takes out a part merged in before (an erasure): a document no
    /// remaining interaction retrieved goes.
    pub fn subtract(&mut self, part: &Self) {
        for (doc, n) in &part.retrievals {
            if let Some(mine) = self.retrievals.get_mut(doc) {
                *mine = mine.saturating_sub(*n);
                if *mine == 0 {
                    self.retrievals.remove(doc);
                }
            }
        }
    }

    /// `None`: retrieved documents by count desc, file name, uuid. `Hot`/`Warm`:
    /// the same, filtered. `Cold`: live documents never retrieved in the window,
    /// by file name, uuid. At most `limit` rows; `last_retrieved` is asked for
    /// those rows only.
    ///
    /// # Errors
    /// Whatever the directory returns.
    pub fn finish<D: DocumentDirectory>(
        &self,
        status: Option<Status>,
        limit: usize,
        directory: &D,
    ) -> Result<Vec<DocumentUtilization>, D::Error> {
        let picks = match status {
            Some(Status::Cold) => self.cold(limit, directory)?,
            filter => self.retrieved(filter, limit, directory)?,
        };
        let keys: Vec<i64> = picks.iter().map(|p| p.key).collect();
        let last = directory.last_retrieved(&keys)?;
        Ok(picks
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.into_model(last.get(i).copied().flatten()))
            .collect())
    }

    fn retrieved<D: DocumentDirectory>(
        &self,
        filter: Option<Status>,
        limit: usize,
        directory: &D,
    ) -> Result<Vec<Pick>, D::Error> {
        let counted: Vec<(i64, u64)> = self
            .retrievals
            .iter()
            .filter(|&(_, &n)| filter.is_none_or(|s| Status::of(n) == s))
            .map(|(&k, &n)| (k, n))
            .collect();
        let contenders = keep_contenders(counted, limit, |&(_, n)| Reverse(n));
        let mut picks = contenders
            .into_iter()
            .map(|(key, n)| pick(key, n, directory))
            .collect::<Result<Vec<_>, _>>()?;
        picks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cmp_by_name(b)));
        picks.truncate(limit);
        Ok(picks)
    }

    fn cold<D: DocumentDirectory>(
        &self,
        limit: usize,
        directory: &D,
    ) -> Result<Vec<Pick>, D::Error> {
        // In name order from the store, so only the first `limit` cold
        // documents are looked up, however many documents there are.
        let mut keys = Vec::with_capacity(limit.min(1_024));
        directory.live_documents_by_name(&mut |key| {
            if keys.len() >= limit {
                return false;
            }
            if !self.retrievals.contains_key(&key) {
                keys.push(key);
            }
            keys.len() < limit
        })?;
        let mut picks = keys
            .into_iter()
            .map(|key| pick(key, 0, directory))
            .collect::<Result<Vec<_>, _>>()?;
        picks.sort_by(Pick::cmp_by_name);
        Ok(picks)
    }
}

fn pick<D: DocumentDirectory>(key: i64, count: u64, directory: &D) -> Result<Pick, D::Error> {
    let meta = directory.document(key)?;
    Ok(Pick {
        key,
        count,
        file_name: meta.file_name.unwrap_or_else(|| meta.uuid.to_string()),
        connector_name: meta.connector_name.unwrap_or_default(),
        uuid: meta.uuid,
    })
}

impl crate::metrics::ApproxBytes for UtilizationState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>() + super::table_bytes(&self.retrievals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixture::MapDirectory;
    use proptest::prelude::*;

    fn fold(interactions: &[Vec<i64>]) -> UtilizationState {
        let mut s = UtilizationState::new();
        interactions.iter().for_each(|docs| s.add_interaction(docs));
        s
    }

    /// Document `key` retrieved `n` times, each by its own interaction.
    fn counts(pairs: &[(i64, usize)]) -> UtilizationState {
        let interactions: Vec<Vec<i64>> = pairs
            .iter()
            .flat_map(|&(k, n)| std::iter::repeat_n(vec![k], n))
            .collect();
        fold(&interactions)
    }

    fn directory(files: &[(i64, &str)]) -> MapDirectory {
        let mut d = MapDirectory::default();
        for &(k, name) in files {
            d.names.insert(k, name.to_owned());
            d.connector_names.insert(k, "Confluence".to_owned());
        }
        d
    }

    fn names(rows: &[DocumentUtilization]) -> Vec<(&str, i64, &str)> {
        rows.iter()
            .map(|r| (r.file_name.as_str(), r.retrieval_count, r.status.as_str()))
            .collect()
    }

    #[test]
    fn status_boundaries() {
        assert_eq!(Status::of(0), Status::Cold);
        assert_eq!(Status::of(1), Status::Warm);
        assert_eq!(Status::of(10), Status::Warm);
        assert_eq!(Status::of(11), Status::Hot);
    }

    #[test]
    fn cold_documents_are_the_live_ones_never_retrieved() {
        let s = fold(&[vec![1, 2], vec![2]]);
        assert_eq!(s.count_cold(&[1, 3, 4]), 2);
        assert_eq!(s.count_cold(&[]), 0);
    }

    #[test]
    fn repeats_within_one_interaction_count_once() {
        let s = fold(&[vec![1, 1, 2], vec![1]]);
        // Doc 1: two interactions; doc 2: one.
        assert_eq!(s, counts(&[(1, 2), (2, 1)]));
    }

    #[test]
    fn empty_window_lists_nothing_but_cold_documents() {
        let mut d = directory(&[(1, "a.pdf")]);
        d.live = vec![1];
        let s = UtilizationState::new();
        assert!(s.finish(None, 50, &d).unwrap().is_empty());
        assert!(s.finish(Some(Status::Hot), 50, &d).unwrap().is_empty());
        assert_eq!(
            names(&s.finish(Some(Status::Cold), 50, &d).unwrap()),
            [("a.pdf", 0, "cold")]
        );
    }

    #[test]
    fn default_listing_orders_by_count_then_file_name_then_uuid() {
        // 1: 11 (hot). 2 "b.pdf" and 3 "a.pdf": 3 each → "a.pdf" first. 4 and 5 are
        // unregistered with 1 each: their names are uuid texts, …04 before …05.
        let s = counts(&[(1, 11), (2, 3), (3, 3), (5, 1), (4, 1)]);
        let d = directory(&[(1, "z.pdf"), (2, "b.pdf"), (3, "a.pdf")]);
        let rows = s.finish(None, 50, &d).unwrap();
        assert_eq!(
            names(&rows),
            [
                ("z.pdf", 11, "hot"),
                ("a.pdf", 3, "warm"),
                ("b.pdf", 3, "warm"),
                ("00000000-0000-0000-0000-000000000004", 1, "warm"),
                ("00000000-0000-0000-0000-000000000005", 1, "warm"),
            ]
        );
        assert_eq!(rows[0].connector_name, "Confluence");
        assert_eq!(rows[3].connector_name, "");
    }

    #[test]
    fn same_file_name_ties_by_uuid() {
        let s = counts(&[(9, 2), (8, 2)]);
        let d = directory(&[(9, "same.md"), (8, "same.md")]);
        let rows = s.finish(None, 50, &d).unwrap();
        assert_eq!(
            names(&rows),
            [("same.md", 2, "warm"), ("same.md", 2, "warm")]
        );
        // Uuid …08 first: its last_retrieved is asked first.
        assert_eq!(*d.asked_last_retrieved.borrow(), vec![8, 9]);
    }

    #[test]
    fn status_filters_and_limit() {
        let s = counts(&[(1, 11), (2, 12), (3, 10), (4, 1)]);
        let d = directory(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
        assert_eq!(
            names(&s.finish(Some(Status::Hot), 50, &d).unwrap()),
            [("b", 12, "hot"), ("a", 11, "hot")]
        );
        assert_eq!(
            names(&s.finish(Some(Status::Warm), 1, &d).unwrap()),
            [("c", 10, "warm")]
        );
        assert_eq!(names(&s.finish(None, 2, &d).unwrap()).len(), 2);
    }

    #[test]
    fn cold_lists_live_unretrieved_documents_by_name() {
        // Live: 1 (retrieved → not cold), 2 "b", 3 "a", 4 unregistered name. 5 is
        // retrieved but deleted: it shows in the default listing, never in cold.
        let s = counts(&[(1, 1), (5, 2)]);
        let mut d = directory(&[(1, "x"), (2, "b"), (3, "a"), (5, "gone.pdf")]);
        d.live = vec![1, 2, 3, 4, 3];
        d.last_retrieved.insert(2, 1_000);
        let rows = s.finish(Some(Status::Cold), 2, &d).unwrap();
        // By name: "00000000-…-04" < "a" < "b" (digits sort before letters); limit 2.
        assert_eq!(
            names(&rows),
            [
                ("00000000-0000-0000-0000-000000000004", 0, "cold"),
                ("a", 0, "cold")
            ]
        );
        assert_eq!(
            names(&s.finish(None, 50, &d).unwrap()),
            [("gone.pdf", 2, "warm"), ("x", 1, "warm")]
        );
        let all_cold = s.finish(Some(Status::Cold), 50, &d).unwrap();
        // A cold document may have been retrieved before the window.
        assert_eq!(all_cold[2].last_retrieved, Some(Timestamp(1_000)));
        assert_eq!(all_cold[1].last_retrieved, None);
    }

    #[test]
    fn last_retrieved_is_asked_only_for_returned_rows() {
        let s = counts(&[(1, 5), (2, 4), (3, 3), (4, 2)]);
        let mut d = directory(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
        d.last_retrieved.insert(1, 42);
        let rows = s.finish(None, 2, &d).unwrap();
        assert_eq!(*d.asked_last_retrieved.borrow(), vec![1, 2]);
        assert_eq!(rows[0].last_retrieved, Some(Timestamp(42)));
        assert_eq!(rows[1].last_retrieved, None);
        // Metadata lookups also stop at the contenders: counts 5 and 4 only.
        let mut asked = d.asked_meta.borrow().clone();
        asked.sort_unstable();
        assert_eq!(asked, vec![1, 2]);
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            events in proptest::collection::vec(proptest::collection::vec(0i64..8, 0..4), 0..60),
            cut in 0usize..61,
            limit in 1usize..6,
        ) {
            let cut = cut.min(events.len());
            let mut left = fold(&events[..cut]);
            left.merge(fold(&events[cut..]));
            let whole = fold(&events);
            prop_assert_eq!(&left, &whole);
            let mut d = directory(&[(0, "same"), (1, "same"), (2, "b"), (3, "a")]);
            d.live = (0..10).collect();
            for status in [None, Some(Status::Hot), Some(Status::Warm), Some(Status::Cold)] {
                prop_assert_eq!(
                    left.finish(status, limit, &d).unwrap(),
                    whole.finish(status, limit, &d).unwrap()
                );
            }
        }

        #[test]
        fn limit_takes_a_prefix_of_the_full_listing(
            events in proptest::collection::vec(proptest::collection::vec(0i64..8, 0..4), 0..60),
            limit in 1usize..6,
        ) {
            let s = fold(&events);
            let d = directory(&[(0, "same"), (1, "same"), (2, "b")]);
            let full = s.finish(None, usize::MAX, &d).unwrap();
            let cut = s.finish(None, limit, &d).unwrap();
            prop_assert_eq!(&full[..limit.min(full.len())], &cut[..]);
        }
    }
}
