//! Document freshness: live documents bucketed by the age of their `updated_at`
//! relative to the request's `now`.

use serde::{Deserialize, Serialize};

use super::count_i64;
use super::round::percentage;
use crate::metrics::models::DocumentFreshness;
use crate::time::MICROS_PER_DAY;

/// Counts per bucket. Buckets depend on `now`, so states merged together must
/// have been folded with the same `now`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreshnessState {
    fresh: u64,
    aging: u64,
    stale: u64,
}

impl FreshnessState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one current (not deleted) document. Fresh: updated after now − 30 d;
    /// aging: after now − 90 d; otherwise, or when unknown, stale.
    pub fn add(&mut self, updated_at: Option<i64>, now: i64) {
        let after =
            |days: i64| updated_at.is_some_and(|t| t > now.saturating_sub(days * MICROS_PER_DAY));
        if after(30) {
            self.fresh += 1;
        } else if after(90) {
            self.aging += 1;
        } else {
            self.stale += 1;
        }
    }

    #[cfg(test)]
    pub fn merge(&mut self, other: Self) {
        self.fresh += other.fresh;
        self.aging += other.aging;
        self.stale += other.stale;
    }

    /// The three rows in their fixed order; `[]` when there is no document.
    pub fn finish(&self) -> Vec<DocumentFreshness> {
        let total = self.fresh + self.aging + self.stale;
        if total == 0 {
            return Vec::new();
        }
        [
            ("Fresh (<30d)", self.fresh),
            ("Aging (30-90d)", self.aging),
            ("Stale (>90d)", self.stale),
        ]
        .into_iter()
        .map(|(name, n)| DocumentFreshness {
            freshness_category: name.to_owned(),
            doc_count: count_i64(n),
            percentage: percentage(n, total),
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000_000;
    const DAY: i64 = MICROS_PER_DAY;

    fn fold(updated: &[Option<i64>]) -> FreshnessState {
        let mut s = FreshnessState::new();
        updated.iter().for_each(|&u| s.add(u, NOW));
        s
    }

    fn rows(s: &FreshnessState) -> Vec<(String, i64, f64)> {
        s.finish()
            .into_iter()
            .map(|r| (r.freshness_category, r.doc_count, r.percentage))
            .collect()
    }

    #[test]
    fn no_document_gives_no_rows() {
        assert!(FreshnessState::new().finish().is_empty());
    }

    #[test]
    fn boundaries_are_strictly_after_the_cutoffs() {
        let s = fold(&[
            Some(NOW),                // fresh
            Some(NOW - 30 * DAY + 1), // fresh: 1 µs after the 30 d cutoff
            Some(NOW - 30 * DAY),     // aging: exactly on the cutoff is not after it
            Some(NOW - 90 * DAY + 1), // aging
            Some(NOW - 90 * DAY),     // stale
            None,                     // stale: unknown
            Some(NOW + DAY),          // fresh: a future date is after every cutoff
        ]);
        // 7 documents: 3 fresh (3/7 × 100 = 42.857… → 42.86), 2 aging (28.571… →
        // 28.57), 2 stale (28.57).
        assert_eq!(
            rows(&s),
            vec![
                ("Fresh (<30d)".to_owned(), 3, 42.86),
                ("Aging (30-90d)".to_owned(), 2, 28.57),
                ("Stale (>90d)".to_owned(), 2, 28.57),
            ]
        );
    }

    #[test]
    fn three_rows_even_with_empty_buckets() {
        assert_eq!(
            rows(&fold(&[None])),
            vec![
                ("Fresh (<30d)".to_owned(), 0, 0.0),
                ("Aging (30-90d)".to_owned(), 0, 0.0),
                ("Stale (>90d)".to_owned(), 1, 100.0),
            ]
        );
    }

    #[test]
    fn extreme_now_does_not_overflow() {
        let mut s = FreshnessState::new();
        s.add(Some(i64::MIN), i64::MIN);
        assert_eq!(s.finish()[2].doc_count, 1);
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            updated in proptest::collection::vec(proptest::option::of(NOW - 200 * DAY..NOW), 0..60),
            cut in 0usize..61,
        ) {
            let cut = cut.min(updated.len());
            let mut left = fold(&updated[..cut]);
            left.merge(fold(&updated[cut..]));
            prop_assert_eq!(left, fold(&updated));
            prop_assert_eq!(left.finish(), fold(&updated).finish());
        }
    }
}
