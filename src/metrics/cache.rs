//! Response cache hit rate: two counters.

use serde::{Deserialize, Serialize};

use super::count_i64;
use super::round::percentage;
use crate::metrics::models::CacheMetrics;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheState {
    total: u64,
    hits: u64,
}

impl CacheState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction of the window.
    pub fn add(&mut self, cache_hit: bool) {
        self.total += 1;
        self.hits += u64::from(cache_hit);
    }

    pub fn merge(&mut self, other: Self) {
        self.total += other.total;
        self.hits += other.hits;
    }

    /// Takes out a part merged in before (an erasure).
    pub fn subtract(&mut self, part: &Self) {
        self.total = self.total.saturating_sub(part.total);
        self.hits = self.hits.saturating_sub(part.hits);
    }

    /// `None` when the window has no interaction.
    pub fn finish(&self, period_hours: i64) -> Option<CacheMetrics> {
        if self.total == 0 {
            return None;
        }
        Some(CacheMetrics {
            hit_rate: percentage(self.hits, self.total),
            total_requests: count_i64(self.total),
            cache_hits: count_i64(self.hits),
            cache_misses: count_i64(self.total - self.hits),
            period_hours,
        })
    }
}

impl crate::metrics::ApproxBytes for CacheState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fold(hits: &[bool]) -> CacheState {
        let mut s = CacheState::new();
        hits.iter().for_each(|&h| s.add(h));
        s
    }

    #[test]
    fn empty_window_is_null() {
        assert_eq!(CacheState::new().finish(24), None);
    }

    #[test]
    fn counts_hits_and_misses() {
        // 1 hit of 3: 1/3 × 100 = 33.333… → 33.33.
        let got = fold(&[true, false, false]).finish(12).unwrap();
        assert_eq!(
            got,
            CacheMetrics {
                hit_rate: 33.33,
                total_requests: 3,
                cache_hits: 1,
                cache_misses: 2,
                period_hours: 12
            }
        );
    }

    #[test]
    fn all_misses_and_all_hits() {
        assert_eq!(fold(&[false]).finish(1).unwrap().hit_rate, 0.0);
        assert_eq!(fold(&[true, true]).finish(1).unwrap().hit_rate, 100.0);
    }

    #[test]
    fn hit_rate_rounds_a_tie_to_even() {
        // 1 of 800: (1/800)·100 is the float 0.125 exactly → 0.12 (0.13 if ties went up).
        let mut hits = vec![false; 799];
        hits.push(true);
        assert_eq!(fold(&hits).finish(1).unwrap().hit_rate, 0.12);
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            hits in proptest::collection::vec(any::<bool>(), 0..100),
            cut in 0usize..101,
        ) {
            let cut = cut.min(hits.len());
            let mut left = fold(&hits[..cut]);
            left.merge(fold(&hits[cut..]));
            prop_assert_eq!(left, fold(&hits));
            prop_assert_eq!(left.finish(24), fold(&hits).finish(24));
        }
    }
}
