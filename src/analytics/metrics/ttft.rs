//! Time-to-first-token percentiles: the exact path, which keeps every value and
//! computes PostgreSQL's `percentile_cont` on them.

use serde::{Deserialize, Serialize};

use crate::analytics::models::TtftPercentiles;

/// Every TTFT of the window, in microseconds. Exactness needs all values; merging
/// is concatenation because percentiles ignore order until `finish` sorts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TtftState {
    values_us: Vec<i64>,
}

impl TtftState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction's TTFT (only interactions whose `ttft_s` is not null).
    pub fn add(&mut self, ttft_us: i64) {
        self.values_us.push(ttft_us);
    }

    pub fn merge(&mut self, other: Self) {
        self.values_us.extend(other.values_us);
    }

    /// p50, p95 and p99 in seconds, unrounded; `None` when no value was added.
    /// Consumes the state so the values are reordered in place rather than
    /// copied. Each percentile needs only two order statistics, found by
    /// selection in linear time instead of a full sort (a live snapshot of a
    /// busy day holds hundreds of thousands of values).
    pub fn finish(mut self, period_hours: i64) -> Option<TtftPercentiles> {
        if self.values_us.is_empty() {
            return None;
        }
        let values = &mut self.values_us;
        // Each selection leaves everything from its rank on at least as large
        // as everything before, so the next (higher) rank is selected within
        // that upper part only: n + n/2 + n/20 steps instead of 3n.
        let (p50, k50) = percentile_cont_unsorted(values, 0, 0.5);
        let (p95, k95) = percentile_cont_unsorted(values, k50, 0.95);
        let (p99, _) = percentile_cont_unsorted(values, k95, 0.99);
        Some(TtftPercentiles {
            p50,
            p95,
            p99,
            period_hours,
        })
    }
}

/// PostgreSQL's `percentile_cont(q)` of the values (µs, any order; they are
/// reordered), in seconds, and the rank k it selected: with h = q·(n−1) and
/// k = ⌊h⌋, x[k] + (h − k)·(x[k+1] − x[k]), or x[k] when k = n−1, x sorted;
/// `q` is clamped to [0, 1]. Dividing by 1e6 is monotone, so the k-th value
/// converted is the k-th converted value. `from` is a rank already selected
/// at or below the one `q` needs: everything from it on is at least as large
/// as everything before, so only that part is searched.
fn percentile_cont_unsorted(values_us: &mut [i64], from: usize, q: f64) -> (f64, usize) {
    let Some(last) = values_us.len().checked_sub(1) else {
        return (0.0, 0);
    };
    let h = q.clamp(0.0, 1.0) * last as f64;
    let k = (h.floor() as usize).min(last).max(from.min(last));
    let upper = &mut values_us[from.min(last)..];
    let (_, &mut low, above) = upper.select_nth_unstable(k - from.min(last));
    // After selection everything above rank k is ≥ the k-th value, so the
    // (k+1)-th smallest is their minimum.
    let low = low as f64 / 1e6;
    let value = match above.iter().min() {
        Some(&high) => {
            let high = high as f64 / 1e6;
            low + (h - k as f64) * (high - low)
        }
        None => low,
    };
    (value, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: PostgreSQL's `percentile_cont(q)` over ascending `sorted_seconds`:
    /// h = q·(n−1), k = ⌊h⌋, x[k] + (h − k)·(x[k+1] − x[k]), or x[k] when k = n−1.
    /// `q` is clamped to [0, 1]; an empty slice gives 0.0 (callers report "no data"
    /// before asking).
    fn percentile_cont(sorted_seconds: &[f64], q: f64) -> f64 {
        let Some(last) = sorted_seconds.len().checked_sub(1) else {
            return 0.0;
        };
        let h = q.clamp(0.0, 1.0) * last as f64;
        // h ≤ last, so k ≤ last; the `min` only documents it for the indexing.
        let k = (h.floor() as usize).min(last);
        let low = sorted_seconds[k];
        match sorted_seconds.get(k + 1) {
            Some(&high) => low + (h - k as f64) * (high - low),
            None => low,
        }
    }

    fn state(values_us: &[i64]) -> TtftState {
        let mut s = TtftState::new();
        values_us.iter().for_each(|&v| s.add(v));
        s
    }

    #[test]
    fn empty_state_has_no_percentiles() {
        assert_eq!(TtftState::new().finish(24), None);
    }

    #[test]
    fn one_value_is_every_percentile() {
        let got = state(&[840_000]).finish(24).unwrap();
        assert_eq!(
            got,
            TtftPercentiles {
                p50: 0.84,
                p95: 0.84,
                p99: 0.84,
                period_hours: 24
            }
        );
    }

    #[test]
    fn interpolates_between_neighbours() {
        // Seconds sorted: [1, 2, 3, 4] (inserted out of order). n − 1 = 3.
        // p50: h = 1.5, k = 1 → 2 + 0.5·(3 − 2) = 2.5.
        // p95: h = 0.95·3 = 2.85, k = 2 → 3 + (h − 2)·(4 − 3); as floats h is
        //      2.8499999999999996, so the result is 3 + (h − 2), not the literal 3.85.
        // p99: h = 0.99·3 = 2.97, k = 2 → 3 + (h − 2)·1.
        let got = state(&[4_000_000, 1_000_000, 3_000_000, 2_000_000])
            .finish(6)
            .unwrap();
        assert_eq!(got.p50, 2.5);
        assert_eq!(got.p95, 3.0 + (0.95 * 3.0 - 2.0));
        assert_eq!(got.p99, 3.0 + (0.99 * 3.0 - 2.0));
        assert_eq!(got.period_hours, 6);
    }

    #[test]
    fn two_values() {
        // [0.1, 0.3]: p50 h = 0.5 → 0.1 + 0.5·(0.3 − 0.1).
        let got = state(&[300_000, 100_000]).finish(1).unwrap();
        assert_eq!(got.p50, 0.1 + 0.5 * (0.3 - 0.1));
        assert_eq!(got.p99, 0.1 + 0.99 * (0.3 - 0.1));
    }

    #[test]
    fn percentile_at_the_ends() {
        let xs = [1.0, 5.0, 9.0];
        assert_eq!(percentile_cont(&xs, 0.0), 1.0);
        assert_eq!(percentile_cont(&xs, 1.0), 9.0);
        // h = 1 exactly: k = 1, weight 0 → x[1].
        assert_eq!(percentile_cont(&xs, 0.5), 5.0);
        assert_eq!(percentile_cont(&[], 0.5), 0.0);
        assert_eq!(percentile_cont(&xs, 7.0), 9.0);
    }

    #[test]
    fn equal_values_do_not_interpolate_away() {
        let got = state(&[500_000, 500_000, 500_000]).finish(24).unwrap();
        assert_eq!((got.p50, got.p95, got.p99), (0.5, 0.5, 0.5));
    }

    /// The reference: sort, convert, interpolate.
    fn sorted_reference(values_us: &[i64]) -> Option<(f64, f64, f64)> {
        let mut sorted = values_us.to_vec();
        sorted.sort_unstable();
        let seconds: Vec<f64> = sorted.iter().map(|&us| us as f64 / 1e6).collect();
        (!seconds.is_empty()).then(|| {
            (
                percentile_cont(&seconds, 0.5),
                percentile_cont(&seconds, 0.95),
                percentile_cont(&seconds, 0.99),
            )
        })
    }

    proptest! {
        #[test]
        fn selection_equals_the_sorted_reference_to_the_bit(
            values in proptest::collection::vec(
                prop_oneof![0i64..60_000_000, 0i64..5],
                0..400,
            ),
        ) {
            let got = state(&values).finish(24).map(|p| (p.p50, p.p95, p.p99));
            let want = sorted_reference(&values);
            prop_assert_eq!(
                got.map(|(a, b, c)| (a.to_bits(), b.to_bits(), c.to_bits())),
                want.map(|(a, b, c)| (a.to_bits(), b.to_bits(), c.to_bits()))
            );
        }

        #[test]
        fn split_and_merge_equals_one_fold(
            values in proptest::collection::vec(0i64..60_000_000, 0..60),
            cut in 0usize..61,
        ) {
            let cut = cut.min(values.len());
            let mut left = state(&values[..cut]);
            left.merge(state(&values[cut..]));
            prop_assert_eq!(left.finish(24), state(&values).finish(24));
        }
    }
}
