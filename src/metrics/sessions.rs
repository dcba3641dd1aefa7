//! Session length distribution: interactions per session in the window, bucketed
//! into single-question, normal and power-user sessions.

use serde::{Deserialize, Serialize};

use super::KeyMap;
use super::count_i64;
use super::round::percentage;
use crate::metrics::models::SessionDistribution;

/// Interactions per session key. Kept per session (not per bucket) because a
/// session spread over several rollup buckets must be bucketed on its total.
///
/// A rollup bucket also holds `settled` sessions: those whose every interaction
/// (in every assistant) lies in that one bucket of that one assistant. No other
/// part of any window can add to them, so only their bucket row is kept, and a
/// day of short sessions costs three counters instead of a map entry each. The
/// store moves a session out of `settled` (see [`unsettle`](Self::unsettle))
/// the moment it gains an interaction elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsState {
    interactions: KeyMap<u64>,
    settled: [u64; 3],
}

/// The three rows, in response order, with the inclusive range of q each covers.
const BUCKETS: [(&str, u64, u64); 3] = [
    ("Single Question", 1, 1),
    ("Normal (2-5)", 2, 5),
    ("Power User (5+)", 6, u64::MAX),
];

/// The row a session of `q` interactions falls in; `None` for 0.
fn class_of(q: u64) -> Option<usize> {
    BUCKETS
        .iter()
        .position(|&(_, lo, hi)| (lo..=hi).contains(&q))
}

impl SessionsState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction of the session.
    pub fn add(&mut self, session: i64) {
        *self.interactions.entry(session).or_default() += 1;
    }

    /// Folds `n` interactions of a session at once.
    pub fn add_n(&mut self, session: i64, n: u64) {
        *self.interactions.entry(session).or_default() += n;
    }

    pub fn merge(&mut self, other: Self) {
        for (session, n) in other.interactions {
            self.add_n(session, n);
        }
        for (mine, theirs) in self.settled.iter_mut().zip(other.settled) {
            *mine += theirs;
        }
    }

    /// Whether the session is tallied by key here (not settled).
    pub fn tracks(&self, session: i64) -> bool {
        self.interactions.contains_key(&session)
    }

    /// Counts a settled session that had `from` interactions and now has `to`
    /// (`from` = 0 for a new one).
    pub fn resettle(&mut self, from: u64, to: u64) {
        if let Some(i) = class_of(from) {
            self.settled[i] = self.settled[i].saturating_sub(1);
        }
        if let Some(i) = class_of(to) {
            self.settled[i] += 1;
        }
    }

    /// A settled session of `count` interactions gained one in another bucket:
    /// from now on it is tallied by key, here with the `count` it has here.
    pub fn unsettle(&mut self, session: i64, count: u64) {
        self.resettle(count, 0);
        self.add_n(session, count);
    }

    /// Drops a session tallied by key; its count here, if it was.
    pub fn remove(&mut self, session: i64) -> Option<u64> {
        self.interactions.remove(&session)
    }

    /// Keys of the sessions tallied by key.
    pub fn tracked(&self) -> Vec<i64> {
        self.interactions.keys().copied().collect()
    }

    /// Moves a tallied session, known to lie wholly in this bucket and
    /// assistant, to the settled counters.
    pub fn settle(&mut self, session: i64) {
        if let Some(n) = self.interactions.remove(&session) {
            self.resettle(0, n);
        }
    }

    /// The three rows in their fixed order; `[]` when no session.
    pub fn finish(&self) -> Vec<SessionDistribution> {
        let total = self.interactions.len() as u64 + self.settled.iter().sum::<u64>();
        if total == 0 {
            return Vec::new();
        }
        let mut counts = self.settled;
        for &q in self.interactions.values() {
            if let Some(i) = class_of(q) {
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

impl crate::metrics::ApproxBytes for SessionsState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>() + super::table_bytes(&self.interactions)
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
