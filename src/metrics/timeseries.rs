//! The time series behind the dashboard's charts: a window cut into equal,
//! epoch-aligned buckets, each with its interaction count, TTFT p50/p95 and
//! cache hit rate. The bucketing math lives here, free of storage, so it is
//! unit-tested without a database; each backend feeds it rows.

use serde::Serialize;
use utoipa::ToSchema;

use crate::metrics::round::percentage;
use crate::metrics::ttft::TtftState;
use crate::time::{MICROS_PER_SECOND, Timestamp};

/// Bucket sizes the automatic choice picks from, in minutes: round numbers a
/// chart axis can label.
const AUTO_BUCKET_MINUTES: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];
/// The automatic choice keeps a chart at or under this many buckets.
const AUTO_MAX_BUCKETS: i64 = 60;
/// An explicit `bucket_minutes` may not cut a window into more buckets than
/// this (a 30-day window in 1-minute buckets would be 43,200 points).
pub const MAX_BUCKETS: i64 = 2_000;

/// The smallest round bucket size that cuts `hours` into at most
/// [`AUTO_MAX_BUCKETS`] buckets (a day: 30 minutes; a week: 3 hours).
pub fn auto_bucket_minutes(hours: i64) -> i64 {
    let minutes = hours.max(1) * 60;
    AUTO_BUCKET_MINUTES
        .iter()
        .copied()
        .find(|b| ceil_div(minutes, *b) <= AUTO_MAX_BUCKETS)
        .unwrap_or(1440)
}

/// `requested`, or the smallest bucket size above it that cuts `hours` into at
/// most [`MAX_BUCKETS`] buckets (counting the partial one an unaligned window
/// starts with).
pub fn fit_bucket_minutes(hours: i64, requested: i64) -> i64 {
    let minutes = hours.max(1) * 60;
    let count = |b: i64| ceil_div(minutes, b) + 1;
    if count(requested) <= MAX_BUCKETS {
        return requested;
    }
    // count is monotone in b, so the first fit is the smallest.
    (requested..=1440)
        .find(|&b| count(b) <= MAX_BUCKETS)
        .unwrap_or(1440)
}

/// How many buckets the window `(from_exclusive, to_inclusive]` spans with
/// epoch-aligned buckets of `bucket_us` (the first and last may be partial).
pub fn bucket_count(from_exclusive: i64, to_inclusive: i64, bucket_us: i64) -> i64 {
    if to_inclusive <= from_exclusive {
        return 0;
    }
    let first = (from_exclusive + 1).div_euclid(bucket_us);
    let last = to_inclusive.div_euclid(bucket_us);
    last - first + 1
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// One bucket as the API returns it: `null` where no value exists (never 0,
/// which would read as "instant" or "never hits").
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TimeseriesBucket {
    /// Start of the bucket (inclusive); buckets are aligned to multiples of
    /// their size since the Unix epoch, so the first one may start before the window.
    pub bucket_start: Timestamp,
    /// Interactions of the window in the bucket.
    pub count: i64,
    /// TTFT median in seconds (PostgreSQL `percentile_cont`, as `/ttft`); `null` without a TTFT.
    pub ttft_p50: Option<f64>,
    /// TTFT 95th percentile in seconds; `null` without a TTFT.
    pub ttft_p95: Option<f64>,
    /// Cache hits / count × 100, 2 decimals; `null` when count is 0.
    pub cache_hit_rate: Option<f64>,
}

/// `GET /api/v1/analytics/timeseries`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Timeseries {
    pub hours: i64,
    pub bucket_minutes: i64,
    /// The window is `from < timestamp <= to`.
    pub from: Timestamp,
    pub to: Timestamp,
    /// Every bucket of the window in time order, empty ones included.
    pub buckets: Vec<TimeseriesBucket>,
}

#[derive(Debug, Default)]
struct BucketState {
    count: u64,
    hits: u64,
    ttft: TtftState,
}

/// Folds the interactions of one window into its buckets.
#[derive(Debug)]
pub struct Buckets {
    from_exclusive: i64,
    to_inclusive: i64,
    bucket_us: i64,
    first_index: i64,
    states: Vec<BucketState>,
}

impl Buckets {
    /// Empty buckets for `(from_exclusive, to_inclusive]`; `bucket_us` ≥ 1.
    pub fn new(from_exclusive: i64, to_inclusive: i64, bucket_us: i64) -> Self {
        let bucket_us = bucket_us.max(1);
        let n = bucket_count(from_exclusive, to_inclusive, bucket_us);
        Self {
            from_exclusive,
            to_inclusive,
            bucket_us,
            first_index: (from_exclusive + 1).div_euclid(bucket_us),
            states: (0..n).map(|_| BucketState::default()).collect(),
        }
    }

    /// Folds one interaction; one outside the window is ignored.
    pub fn add(&mut self, ts: i64, ttft_us: Option<i64>, cache_hit: bool) {
        if ts <= self.from_exclusive || ts > self.to_inclusive {
            return;
        }
        let index = ts.div_euclid(self.bucket_us) - self.first_index;
        let Some(state) = usize::try_from(index)
            .ok()
            .and_then(|i| self.states.get_mut(i))
        else {
            return;
        };
        state.count += 1;
        state.hits += u64::from(cache_hit);
        if let Some(ttft) = ttft_us {
            state.ttft.add(ttft);
        }
    }

    pub fn finish(self, hours: i64) -> Timeseries {
        let bucket_us = self.bucket_us;
        let first_index = self.first_index;
        let buckets = self
            .states
            .into_iter()
            .enumerate()
            .map(|(i, state)| {
                let start = (first_index + i as i64) * bucket_us;
                let percentiles = state.ttft.finish(hours);
                TimeseriesBucket {
                    bucket_start: Timestamp(start),
                    count: state.count as i64,
                    ttft_p50: percentiles.as_ref().map(|p| p.p50),
                    ttft_p95: percentiles.as_ref().map(|p| p.p95),
                    cache_hit_rate: (state.count > 0).then(|| percentage(state.hits, state.count)),
                }
            })
            .collect();
        Timeseries {
            hours,
            bucket_minutes: bucket_us / (60 * MICROS_PER_SECOND),
            from: Timestamp(self.from_exclusive),
            to: Timestamp(self.to_inclusive),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * MICROS_PER_SECOND;

    #[test]
    fn an_oversized_request_is_widened_to_the_smallest_size_that_fits() {
        // 720 h = 43,200 min: 22-minute buckets give 1,964 + 1 ≤ 2,000; 21 give 2,058.
        assert_eq!(fit_bucket_minutes(720, 1), 22);
        assert_eq!(fit_bucket_minutes(720, 21), 22);
        assert_eq!(fit_bucket_minutes(720, 22), 22);
        assert_eq!(fit_bucket_minutes(720, 60), 60);
        assert_eq!(fit_bucket_minutes(24, 1), 1);
    }

    #[test]
    fn automatic_buckets_are_round_and_at_most_sixty() {
        let cases = [
            (1, 1),
            (2, 2),
            (6, 10),
            (12, 15),
            (24, 30),
            (48, 60),
            (168, 180),
            (720, 720),
        ];
        for (hours, expected) in cases {
            let got = auto_bucket_minutes(hours);
            assert_eq!(got, expected, "hours = {hours}");
            assert!(
                ceil_div(hours * 60, got) <= AUTO_MAX_BUCKETS,
                "hours = {hours}"
            );
        }
    }

    #[test]
    fn an_aligned_window_has_exactly_its_buckets_and_a_misaligned_one_one_more() {
        // (0, 60 min] in 30-minute buckets: [0, 30), [30, 60) and [60, 90) holding ts = 60 min.
        assert_eq!(bucket_count(0, 60 * MIN, 30 * MIN), 3);
        // (-1 µs, 60 min − 1 µs]: exactly [0, 30) and [30, 60).
        assert_eq!(bucket_count(-1, 60 * MIN - 1, 30 * MIN), 2);
        // (10 min, 70 min]: [0, 30) partially, [30, 60), [60, 90) partially.
        assert_eq!(bucket_count(10 * MIN, 70 * MIN, 30 * MIN), 3);
        assert_eq!(bucket_count(5, 5, 30 * MIN), 0);
    }

    #[test]
    fn interactions_land_in_their_epoch_aligned_bucket() {
        let mut b = Buckets::new(10 * MIN, 70 * MIN, 30 * MIN);
        // At the window start exactly: excluded, as every window (`from < ts`).
        b.add(10 * MIN, Some(9_000_000), true);
        b.add(10 * MIN + 1, Some(1_000_000), true);
        b.add(29 * MIN, Some(3_000_000), false);
        b.add(30 * MIN, None, true);
        // At the window end exactly: included.
        b.add(70 * MIN, Some(2_000_000), false);
        b.add(70 * MIN + 1, Some(2_000_000), false);
        let got = b.finish(1);
        assert_eq!(got.bucket_minutes, 30);
        let starts: Vec<i64> = got.buckets.iter().map(|x| x.bucket_start.0).collect();
        assert_eq!(starts, vec![0, 30 * MIN, 60 * MIN]);
        let counts: Vec<i64> = got.buckets.iter().map(|x| x.count).collect();
        assert_eq!(counts, vec![2, 1, 1]);
        // [1 s, 3 s]: p50 = 2, p95 = 1 + 0.95 · 2.
        assert_eq!(got.buckets[0].ttft_p50, Some(2.0));
        assert_eq!(got.buckets[0].ttft_p95, Some(1.0 + 0.95 * 2.0));
        assert_eq!(got.buckets[0].cache_hit_rate, Some(50.0));
        // A bucket with interactions but no TTFT: percentiles unknown, rate known.
        assert_eq!(got.buckets[1].ttft_p50, None);
        assert_eq!(got.buckets[1].cache_hit_rate, Some(100.0));
        assert_eq!(got.buckets[2].ttft_p95, Some(2.0));
        assert_eq!(got.buckets[2].cache_hit_rate, Some(0.0));
    }

    #[test]
    fn empty_buckets_are_listed_with_nulls_not_zeros() {
        let got = Buckets::new(0, 90 * MIN, 30 * MIN).finish(2);
        assert_eq!(got.buckets.len(), 4);
        for bucket in &got.buckets {
            assert_eq!(bucket.count, 0);
            assert_eq!(bucket.ttft_p50, None);
            assert_eq!(bucket.ttft_p95, None);
            assert_eq!(bucket.cache_hit_rate, None);
        }
    }

    #[test]
    fn the_hit_rate_is_rounded_like_the_cache_metric() {
        let mut b = Buckets::new(0, 30 * MIN, 60 * MIN);
        for i in 0..3 {
            b.add(MIN + i, None, i == 0);
        }
        // 1 / 3 × 100 = 33.333… → 33.33.
        assert_eq!(b.finish(1).buckets[0].cache_hit_rate, Some(33.33));
    }
}
