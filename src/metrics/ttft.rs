//! Time-to-first-token percentiles: the exact path, which keeps every value and
//! computes PostgreSQL's `percentile_cont` on them.

use serde::{Deserialize, Serialize};

use crate::metrics::models::TtftPercentiles;

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

    /// Takes out a part merged in before (an erasure): one value per value
    /// of the part.
    pub fn subtract(&mut self, part: &Self) {
        let mut gone: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
        for &value in &part.values_us {
            *gone.entry(value).or_default() += 1;
        }
        self.values_us.retain(|value| match gone.get_mut(value) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        });
    }

    /// As [`merge`](Self::merge), from a state kept elsewhere.
    pub fn extend_from(&mut self, other: &Self) {
        self.values_us.extend_from_slice(&other.values_us);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.values_us.len()
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

impl TtftState {
    /// Sorts the values: a state kept sorted (a window's merged whole
    /// buckets, shared by the merge cache) is finished with
    /// [`finish_parts`](Self::finish_parts) without being copied.
    pub fn sort(&mut self) {
        radix_sort(&mut self.values_us);
    }

    /// As [`finish`](Self::finish) of the merge of `sorted` (a state after
    /// [`sort`](Self::sort)) and `rest`, without copying `sorted`: each order
    /// statistic of the union is found by binary search, after sorting `rest`
    /// (a window's partial hours, small).
    pub fn finish_parts(
        sorted: Option<&Self>,
        mut rest: Self,
        period_hours: i64,
    ) -> Option<TtftPercentiles> {
        let a = sorted.map_or(&[][..], |s| &s.values_us[..]);
        // The rest holds the current hour's values, which a busy hour makes
        // hundreds of thousands: a comparison sort of them was half of an
        // all-assistants live snapshot.
        radix_sort(&mut rest.values_us);
        let b = &rest.values_us[..];
        let last = (a.len() + b.len()).checked_sub(1)?;
        let percentile = |q: f64| {
            let h = q.clamp(0.0, 1.0) * last as f64;
            let k = (h.floor() as usize).min(last);
            let low = kth_of_two(a, b, k) as f64 / 1e6;
            if k == last {
                return low;
            }
            let high = kth_of_two(a, b, k + 1) as f64 / 1e6;
            low + (h - k as f64) * (high - low)
        };
        Some(TtftPercentiles {
            p50: percentile(0.5),
            p95: percentile(0.95),
            p99: percentile(0.99),
            period_hours,
        })
    }
}

/// Below this many values a comparison sort is faster than the radix passes.
const RADIX_FROM: usize = 512;

/// Sorts ascending in O(n) per byte that varies: an LSD radix sort over the
/// values' bytes (sign bit flipped, so the unsigned order is the signed one),
/// skipping each byte that every value shares. TTFTs in microseconds vary in
/// their low three or four bytes, so a sort is one counting pass and three or
/// four scatter passes instead of n·log n comparisons.
fn radix_sort(values: &mut Vec<i64>) {
    if values.len() < RADIX_FROM {
        values.sort_unstable();
        return;
    }
    let key = |v: i64| (v as u64) ^ (1 << 63);
    // The bits in which some value differs from the first: a byte without
    // any is shared by every value, and its pass would move nothing.
    let first = key(values[0]);
    let differing = values.iter().fold(0, |bits, &v| bits | (key(v) ^ first));
    let bytes: Vec<u32> = (0..8)
        .filter(|byte| (differing >> (8 * byte)) & 0xff != 0)
        .collect();
    let mut counts = vec![[0usize; 256]; bytes.len()];
    for &v in values.iter() {
        let k = key(v);
        for (&byte, count) in bytes.iter().zip(counts.iter_mut()) {
            count[((k >> (8 * byte)) & 0xff) as usize] += 1;
        }
    }
    let mut scratch = vec![0i64; values.len()];
    for (&byte, count) in bytes.iter().zip(counts.iter()) {
        let mut next = [0usize; 256];
        let mut at = 0;
        for (slot, &c) in next.iter_mut().zip(count.iter()) {
            *slot = at;
            at += c;
        }
        for &v in values.iter() {
            let digit = ((key(v) >> (8 * byte)) & 0xff) as usize;
            scratch[next[digit]] = v;
            next[digit] += 1;
        }
        std::mem::swap(values, &mut scratch);
    }
}

/// The `k`-th smallest (0-based) of the union of two ascending slices, `k`
/// below their total length: the number `i` of values taken from `a` is the
/// least one whose last taken value is not above `b`'s next one.
fn kth_of_two(a: &[i64], b: &[i64], k: usize) -> i64 {
    // i values from a and k + 1 − i from b form the k + 1 smallest.
    let (mut lo, mut hi) = ((k + 1).saturating_sub(b.len()), (k + 1).min(a.len()));
    while lo < hi {
        let i = lo + (hi - lo) / 2;
        let j = k + 1 - i;
        // Too few from a when a's next value is below b's last taken one.
        if j > 0 && a[i] < b[j - 1] {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    let (i, j) = (lo, k + 1 - lo);
    match (
        i.checked_sub(1).map(|x| a[x]),
        j.checked_sub(1).map(|y| b[y]),
    ) {
        (Some(x), Some(y)) => x.max(y),
        (Some(x), None) => x,
        (None, Some(y)) => y,
        (None, None) => i64::MIN,
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

impl crate::metrics::ApproxBytes for TtftState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>() + super::vec_bytes(&self.values_us, self.values_us.capacity())
    }
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
        fn the_radix_sort_equals_a_comparison_sort(
            values in proptest::collection::vec(
                prop_oneof![any::<i64>(), 0i64..60_000_000, -300i64..300, Just(i64::MIN), Just(i64::MAX)],
                0..3_000,
            ),
        ) {
            let mut got = values.clone();
            radix_sort(&mut got);
            let mut want = values;
            want.sort_unstable();
            prop_assert_eq!(got, want);
        }

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

        #[test]
        fn a_sorted_part_and_a_rest_finish_as_their_merge_to_the_bit(
            values in proptest::collection::vec(
                prop_oneof![0i64..60_000_000, 0i64..5],
                0..1_500,
            ),
            cut in 0usize..1_501,
            whole in any::<bool>(),
        ) {
            let cut = cut.min(values.len());
            let mut sorted = state(&values[..cut]);
            sorted.sort();
            let rest = state(&values[cut..]);
            let got = TtftState::finish_parts(whole.then_some(&sorted), rest.clone(), 24);
            let want = if whole { state(&values) } else { rest }.finish(24);
            let bits = |p: Option<TtftPercentiles>| p.map(|p| (p.p50.to_bits(), p.p95.to_bits(), p.p99.to_bits()));
            prop_assert_eq!(bits(got), bits(want));
        }
    }
}
