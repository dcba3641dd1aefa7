//! Session length distribution: interactions per session in the window, bucketed
//! into single-question, normal and power-user sessions.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::count_i64;
use super::round::percentage;
use crate::analytics::models::SessionDistribution;

/// Interactions per session key. Kept per session (not per bucket) because a
/// session spread over several rollup buckets must be bucketed on its total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsState {
    interactions: HashMap<i64, u64>,
}

/// The three rows, in response order, with the inclusive range of q each covers.
const BUCKETS: [(&str, u64, u64); 3] = [
    ("Single Question", 1, 1),
    ("Normal (2-5)", 2, 5),
    ("Power User (5+)", 6, u64::MAX),
];

impl SessionsState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction of the session.
    pub fn add(&mut self, session: i64) {
        *self.interactions.entry(session).or_default() += 1;
    }

    pub fn merge(&mut self, other: Self) {
        for (session, n) in other.interactions {
            *self.interactions.entry(session).or_default() += n;
        }
    }

    /// The three rows in their fixed order; `[]` when no session.
    pub fn finish(&self) -> Vec<SessionDistribution> {
        let total = self.interactions.len() as u64;
        if total == 0 {
            return Vec::new();
        }
        let mut counts = [0u64; 3];
        for &q in self.interactions.values() {
            if let Some(i) = BUCKETS
                .iter()
                .position(|&(_, lo, hi)| (lo..=hi).contains(&q))
            {
                counts[i] += 1;
            }
        }
        BUCKETS
            .iter()
            .zip(counts)
            .map(|(&(name, _, _), n)| SessionDistribution {
                session_type: name.to_owned(),
                session_count: count_i64(n),
                percentage: percentage(n, total),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fold(sessions: &[i64]) -> SessionsState {
        let mut s = SessionsState::new();
        sessions.iter().for_each(|&k| s.add(k));
        s
    }

    fn rows(s: &SessionsState) -> Vec<(String, i64, f64)> {
        s.finish()
            .into_iter()
            .map(|r| (r.session_type, r.session_count, r.percentage))
            .collect()
    }

    #[test]
    fn no_session_gives_no_rows() {
        assert!(SessionsState::new().finish().is_empty());
    }

    #[test]
    fn buckets_on_the_boundaries() {
        // Session 1: q = 1. Session 2: q = 2. Session 5: q = 5. Session 6: q = 6.
        let mut events = vec![1];
        events.extend([2; 2]);
        events.extend([5; 5]);
        events.extend([6; 6]);
        // 4 sessions: single 1 (25%), normal 2 (50%), power 1 (25%).
        assert_eq!(
            rows(&fold(&events)),
            vec![
                ("Single Question".to_owned(), 1, 25.0),
                ("Normal (2-5)".to_owned(), 2, 50.0),
                ("Power User (5+)".to_owned(), 1, 25.0),
            ]
        );
    }

    #[test]
    fn always_three_rows_even_when_buckets_are_empty() {
        // 3 single-question sessions: 100%, then two zero rows.
        assert_eq!(
            rows(&fold(&[7, 8, 9])),
            vec![
                ("Single Question".to_owned(), 3, 100.0),
                ("Normal (2-5)".to_owned(), 0, 0.0),
                ("Power User (5+)".to_owned(), 0, 0.0),
            ]
        );
    }

    #[test]
    fn a_session_split_across_merges_is_bucketed_on_its_total() {
        // Session 1 has 3 interactions in one half and 3 in the other: 6 → power user.
        let mut left = fold(&[1, 1, 1, 2]);
        left.merge(fold(&[1, 1, 1, 3]));
        // Sessions: 1 (q=6), 2 (q=1), 3 (q=1). 2/3 × 100 = 66.67, 1/3 → 33.33.
        assert_eq!(
            rows(&left),
            vec![
                ("Single Question".to_owned(), 2, 66.67),
                ("Normal (2-5)".to_owned(), 0, 0.0),
                ("Power User (5+)".to_owned(), 1, 33.33),
            ]
        );
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            events in proptest::collection::vec(0i64..12, 0..80),
            cut in 0usize..81,
        ) {
            let cut = cut.min(events.len());
            let mut left = fold(&events[..cut]);
            left.merge(fold(&events[cut..]));
            prop_assert_eq!(&left, &fold(&events));
            prop_assert_eq!(left.finish(), fold(&events).finish());
        }
    }
}
