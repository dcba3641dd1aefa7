//! Reranking impact: how many interactions carried rerank data, and the mean
//! score improvement and position change in nano units.

use serde::{Deserialize, Serialize};

use super::count_i64;
use super::round::{NANOS, round_dp, scaled_mean};
use crate::metrics::models::RerankingImpact;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerankingState {
    /// Interactions with a score improvement.
    count: u64,
    improvement_nano: i128,
    /// Those of them that also reported a position change.
    positions: u64,
    position_nano: i128,
}

impl RerankingState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction that carries a score improvement (the caller skips
    /// interactions without one: they carry no rerank data).
    pub fn add(&mut self, improvement_nano: i64, position_change_nano: Option<i64>) {
        self.count += 1;
        self.improvement_nano += i128::from(improvement_nano);
        if let Some(position) = position_change_nano {
            self.positions += 1;
            self.position_nano += i128::from(position);
        }
    }

    pub fn merge(&mut self, other: Self) {
        self.count += other.count;
        self.improvement_nano += other.improvement_nano;
        self.positions += other.positions;
        self.position_nano += other.position_nano;
    }

    /// Takes out a part merged in before (an erasure).
    pub fn subtract(&mut self, part: &Self) {
        self.count = self.count.saturating_sub(part.count);
        self.improvement_nano -= part.improvement_nano;
        self.positions = self.positions.saturating_sub(part.positions);
        self.position_nano -= part.position_nano;
    }

    /// `None` when no interaction carried rerank data.
    pub fn finish(&self) -> Option<RerankingImpact> {
        let improvement = scaled_mean(self.improvement_nano, self.count, NANOS)?;
        Some(RerankingImpact {
            avg_score_improvement: round_dp(improvement, 3),
            reranking_enabled_count: count_i64(self.count),
            avg_position_change: scaled_mean(self.position_nano, self.positions, NANOS)
                .map(|p| round_dp(p, 3)),
        })
    }
}

impl crate::metrics::ApproxBytes for RerankingState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fold(events: &[(i64, Option<i64>)]) -> RerankingState {
        let mut s = RerankingState::new();
        events.iter().for_each(|&(i, p)| s.add(i, p));
        s
    }

    #[test]
    fn no_rerank_data_is_null() {
        assert_eq!(RerankingState::new().finish(), None);
    }

    #[test]
    fn means_over_the_reporting_interactions() {
        // Improvements 0.26 and 0.1 → 0.36e9 / (2 · 1e9) = 0.18.
        // Only one position (2.5) → 2.5.
        let got = fold(&[(260_000_000, Some(2_500_000_000)), (100_000_000, None)])
            .finish()
            .unwrap();
        assert_eq!(
            got,
            RerankingImpact {
                avg_score_improvement: 0.18,
                reranking_enabled_count: 2,
                avg_position_change: Some(2.5),
            }
        );
    }

    #[test]
    fn position_is_null_when_none_reported() {
        let got = fold(&[(-50_000_000, None)]).finish().unwrap();
        assert_eq!(got.avg_score_improvement, -0.05);
        assert_eq!(got.avg_position_change, None);
    }

    #[test]
    fn rounds_to_three_decimals_ties_to_even() {
        // 62_500_000 / 1e9 is the float 0.0625 exactly: a 3 dp tie → even 0.062
        // (half-up would say 0.063). 0.1875 likewise ties → even 0.188.
        let got = fold(&[(62_500_000, Some(187_500_000))]).finish().unwrap();
        assert_eq!(got.avg_score_improvement, 0.062);
        assert_eq!(got.avg_position_change, Some(0.188));
        // 1/3: (1e9 / (3 · 1e9)) = 0.333… → 0.333.
        let third = fold(&[(1_000_000_000, None), (0, None), (0, None)])
            .finish()
            .unwrap();
        assert_eq!(third.avg_score_improvement, 0.333);
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            events in proptest::collection::vec(
                (-2_000_000_000i64..2_000_000_000, proptest::option::of(-5_000_000_000i64..5_000_000_000)),
                0..50,
            ),
            cut in 0usize..51,
        ) {
            let cut = cut.min(events.len());
            let mut left = fold(&events[..cut]);
            left.merge(fold(&events[cut..]));
            prop_assert_eq!(left, fold(&events));
            prop_assert_eq!(left.finish(), fold(&events).finish());
        }
    }
}
