//! Topic diversity: one minus the Herfindahl index of the topic frequencies, the
//! number of topics and the dominant topic's share. Computed from the trending
//! state's frequencies ([`TrendingState::frequencies`](super::trending::TrendingState::frequencies)),
//! or from [`Totals`] a store keeps up to date at ingest.

use super::count_i64;
use super::round::round_dp;
use crate::metrics::models::TopicDiversity;

/// `None` when the frequencies sum to 0.
pub fn diversity(freqs: impl IntoIterator<Item = u64>) -> Option<TopicDiversity> {
    let mut totals = Totals::default();
    for f in freqs {
        totals.add(f);
    }
    totals.finish()
}

/// What diversity needs of a set of topic frequencies: their number, sum,
/// sum of squares and largest. A store can keep these up to date as
/// frequencies grow instead of reading every topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Topics with a frequency above 0.
    pub topics: u64,
    /// F = Σfᵢ.
    pub total: u128,
    /// Σfᵢ².
    pub squares: u128,
    /// The largest fᵢ.
    pub max: u64,
}

impl Totals {
    /// Counts one topic of frequency `f` (a 0 is no topic).
    pub fn add(&mut self, f: u64) {
        if f == 0 {
            return;
        }
        self.topics += 1;
        self.total += u128::from(f);
        self.squares += u128::from(f) * u128::from(f);
        self.max = self.max.max(f);
    }

    /// Adds another disjoint set of topics (another assistant's).
    pub fn merge(&mut self, other: Totals) {
        self.topics += other.topics;
        self.total += other.total;
        self.squares += other.squares;
        self.max = self.max.max(other.max);
    }

    /// `None` when the frequencies sum to 0.
    ///
    /// 1 − Σ(fᵢ/F)² is evaluated as the single exact fraction (F² − Σfᵢ²) / F² in
    /// integers, so the score does not depend on the order of the topics.
    pub fn finish(&self) -> Option<TopicDiversity> {
        let Totals {
            topics,
            total,
            squares,
            max,
        } = *self;
        if total == 0 {
            return None;
        }
        // F < 2^64 for any real count of interactions, so F² fits; saturating keeps
        // an impossible input from panicking.
        let total_sq = total.saturating_mul(total);
        Some(TopicDiversity {
            diversity_score: round_dp(total_sq.saturating_sub(squares) as f64 / total_sq as f64, 3),
            total_topics: count_i64(topics),
            dominant_topic_share: round_dp((max as f64 / total as f64) * 100.0, 2),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn triple(d: TopicDiversity) -> (f64, i64, f64) {
        (d.diversity_score, d.total_topics, d.dominant_topic_share)
    }

    #[test]
    fn the_contract_example() {
        // F = 20, S = 200: (400 − 200)/400 = 0.5; two topics; 10/20 × 100 = 50.
        assert_eq!(diversity([10, 10]).map(triple), Some((0.5, 2, 50.0)));
    }

    #[test]
    fn no_frequency_is_null() {
        assert_eq!(diversity([]), None);
        assert_eq!(diversity([0, 0]), None);
    }

    #[test]
    fn one_topic_has_no_diversity() {
        // F = 7, S = 49: 0/49 = 0; share 100.
        assert_eq!(diversity([7]).map(triple), Some((0.0, 1, 100.0)));
    }

    #[test]
    fn zero_frequencies_are_not_topics() {
        assert_eq!(diversity([0, 3, 0, 1]).map(triple).map(|t| t.1), Some(2));
    }

    #[test]
    fn rounds_score_to_three_and_share_to_two_decimals() {
        // [1, 2]: F = 3, S = 5, (9 − 5)/9 = 0.444… → 0.444; share 2/3 × 100 = 66.67.
        assert_eq!(diversity([1, 2]).map(triple), Some((0.444, 2, 66.67)));
        // [1, 1, 1]: (9 − 3)/9 = 0.666… → 0.667; share 33.33.
        assert_eq!(diversity([1, 1, 1]).map(triple), Some((0.667, 3, 33.33)));
    }

    #[test]
    fn score_rounds_exact_ties_to_even() {
        // [2, 2, 1, 1, 1, 1]: F = 8, S = 4+4+1+1+1+1 = 12, (64 − 12)/64 = 0.8125,
        // exact in binary: a true tie between 0.812 and 0.813 → even 0.812.
        // Share 2/8 × 100 = 25.
        assert_eq!(
            diversity([2, 2, 1, 1, 1, 1]).map(triple),
            Some((0.812, 6, 25.0))
        );
        // [5, 1, 1, 1]: F = 8, S = 25+3 = 28, 36/64 = 0.5625 → 0.562; share 62.5.
        assert_eq!(diversity([5, 1, 1, 1]).map(triple), Some((0.562, 4, 62.5)));
        // [1; 16]: (256 − 16)/256 = 0.9375 → tie, even is up here: 0.938.
        assert_eq!(diversity([1u64; 16]).map(triple), Some((0.938, 16, 6.25)));
    }

    #[test]
    fn reads_the_trending_state_after_merges() {
        use crate::metrics::trending::TrendingState;
        // Topic 1: 3 questions over two states; topic 2: 1. F = 4, S = 9 + 1 = 10,
        // (16 − 10)/16 = 0.375 → 0.375; share 3/4 × 100 = 75.
        let mut a = TrendingState::new();
        a.add(1, Some(1), 2, 10, 20);
        let mut b = TrendingState::new();
        b.add(1, Some(2), 1, 30, 30);
        b.add(2, None, 1, 5, 5);
        a.merge(b);
        assert_eq!(
            diversity(a.frequencies()).map(triple),
            Some((0.375, 2, 75.0))
        );
    }

    proptest! {
        #[test]
        fn topic_order_does_not_matter_and_results_stay_in_range(freqs in proptest::collection::vec(0u64..1000, 0..40)) {
            let mut reversed = freqs.clone();
            reversed.reverse();
            prop_assert_eq!(diversity(freqs.clone()), diversity(reversed));
            if let Some(d) = diversity(freqs) {
                prop_assert!((0.0..=1.0).contains(&d.diversity_score));
                prop_assert!(d.dominant_topic_share > 0.0 && d.dominant_topic_share <= 100.0);
            }
        }
    }
}
