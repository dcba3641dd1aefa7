//! When the demo's interactions happen: a working day's curve (UTC hours:
//! quiet nights, busy office hours) scaled to a number of interactions a day
//! and growing over the history, and the arrival times drawn from it. The
//! history and the live traffic follow the same curve, so the live rate is
//! the rate the history shows for that hour of the day and the charts look
//! like one platform's traffic, not a flat history with a live spike.

use rand::Rng;
use rand::rngs::SmallRng;

use crate::time::{MICROS_PER_DAY, MICROS_PER_HOUR};

/// Relative traffic of each UTC hour of the day.
const HOURLY_WEIGHT: [f64; 24] = [
    0.20, 0.15, 0.12, 0.12, 0.15, 0.25, 0.45, 0.75, 1.00, 1.00, 1.00, 0.90, 0.85, 1.00, 1.00, 0.95,
    0.85, 0.70, 0.55, 0.45, 0.40, 0.35, 0.30, 0.25,
];

/// Connector syncs run every this often, on the hour.
pub const SYNC_EVERY_US: i64 = 3 * MICROS_PER_HOUR;

/// The expected traffic at any time: `per_day` interactions on a full day at
/// the end of the history, 60 % of that at its start (traffic grows, so
/// trends have a direction), and as at the end from then on.
#[derive(Debug, Clone, Copy)]
pub struct Curve {
    per_day: f64,
    start: i64,
    end: i64,
}

impl Curve {
    /// A history of `days` days ending at `end` (µs).
    pub fn new(per_day: f64, days: u32, end: i64) -> Self {
        Self {
            per_day: per_day.max(0.0),
            start: end - i64::from(days) * MICROS_PER_DAY,
            end,
        }
    }

    fn growth(&self, ts: i64) -> f64 {
        if ts >= self.end || self.end <= self.start {
            return 1.0;
        }
        let elapsed = (ts - self.start).max(0) as f64 / (self.end - self.start) as f64;
        0.6 + 0.4 * elapsed
    }

    /// Expected interactions in the hour around `ts`.
    pub fn per_hour(&self, ts: i64) -> f64 {
        let total: f64 = HOURLY_WEIGHT.iter().sum();
        let hour = (ts.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR) as usize;
        self.per_day * self.growth(ts) * HOURLY_WEIGHT[hour] / total
    }

    /// Expected interactions per second at `ts`: the live rate.
    pub fn per_second(&self, ts: i64) -> f64 {
        self.per_hour(ts) / 3_600.0
    }

    /// Arrival times in `[from, to)`, sorted: a Poisson process that follows
    /// the curve hour by hour.
    pub fn arrivals(&self, rng: &mut SmallRng, from: i64, to: i64) -> Vec<i64> {
        let mut times = Vec::new();
        let mut hour = from - from.rem_euclid(MICROS_PER_HOUR);
        while hour < to {
            let (lo, hi) = (hour.max(from), (hour + MICROS_PER_HOUR).min(to));
            if lo < hi {
                let share = (hi - lo) as f64 / MICROS_PER_HOUR as f64;
                let count = poisson(rng, self.per_hour(hour) * share);
                times.extend((0..count).map(|_| rng.random_range(lo..hi)));
            }
            hour += MICROS_PER_HOUR;
        }
        times.sort_unstable();
        times
    }
}

/// The sync times in `(from, to]`: every [`SYNC_EVERY_US`], on the hour.
pub fn sync_times(from: i64, to: i64) -> impl Iterator<Item = i64> {
    let first = from - from.rem_euclid(SYNC_EVERY_US) + SYNC_EVERY_US;
    (0..)
        .map(move |k| first + k * SYNC_EVERY_US)
        .take_while(move |&ts| ts <= to)
}

/// Seconds until the next event of a Poisson process of `rate` per second.
pub fn gap_seconds(rng: &mut SmallRng, rate: f64) -> f64 {
    if rate <= 0.0 {
        return f64::INFINITY;
    }
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    -u.ln() / rate
}

/// A Poisson-distributed count of mean `mean`: Knuth's product of uniforms
/// for small means, the normal approximation (rounded, never negative) above.
fn poisson(rng: &mut SmallRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        return (mean + z * mean.sqrt()).round().max(0.0) as u64;
    }
    let limit = (-mean).exp();
    let mut product: f64 = rng.random();
    let mut count = 0;
    while product > limit {
        product *= rng.random::<f64>();
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A UTC midnight, so `END + h hours` is hour h of the day.
    const END: i64 = 20_833 * MICROS_PER_DAY;

    #[test]
    fn a_full_day_at_the_end_of_the_history_holds_per_day_interactions() {
        let curve = Curve::new(10_000.0, 14, END);
        let day: f64 = (0..24)
            .map(|h| curve.per_hour(END + h * MICROS_PER_HOUR))
            .sum();
        assert!((day - 10_000.0).abs() < 1e-6, "{day}");
        let first_day: f64 = (0..24)
            .map(|h| curve.per_hour(curve.start + h * MICROS_PER_HOUR))
            .sum();
        assert!(
            (5_990.0..6_200.0).contains(&first_day),
            "the history starts at 60 %: {first_day}"
        );
    }

    #[test]
    fn the_history_follows_the_curve_hour_by_hour() {
        // Arrange: the last week of a two-week history, drawn as the demo draws it.
        let curve = Curve::new(100_000.0, 14, END);
        let mut rng = SmallRng::seed_from_u64(7);
        let from = END - 7 * MICROS_PER_DAY;

        // Act: arrivals per UTC hour of the day over the week.
        let times = curve.arrivals(&mut rng, from, END);
        let mut per_hour = [0u64; 24];
        for ts in &times {
            per_hour[(ts.rem_euclid(MICROS_PER_DAY) / MICROS_PER_HOUR) as usize] += 1;
        }

        // Assert: each hour holds what the curve expects (Poisson noise < 5 %).
        for (hour, &count) in per_hour.iter().enumerate() {
            let expected: f64 = (0..7)
                .map(|day| {
                    curve.per_hour(from + day * MICROS_PER_DAY + hour as i64 * MICROS_PER_HOUR)
                })
                .sum();
            let ratio = count as f64 / expected;
            assert!(
                (0.95..1.05).contains(&ratio),
                "hour {hour}: {count} vs {expected:.0}"
            );
        }
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "sorted");
        assert!(times.iter().all(|&t| (from..END).contains(&t)));
    }

    #[test]
    fn the_live_rate_continues_the_historys_last_day() {
        let curve = Curve::new(10_000.0, 14, END);
        for hour in 0..24 {
            let live = curve.per_second(END + hour * MICROS_PER_HOUR) * 3_600.0;
            let last_day = curve.per_hour(END - MICROS_PER_DAY + hour * MICROS_PER_HOUR);
            // The same hour a day earlier, less one day of the history's growth.
            let ratio = live / last_day;
            assert!(
                (1.0..1.03).contains(&ratio),
                "hour {hour}: {live} vs {last_day}"
            );
        }
        // Office hours are busier than nights.
        assert!(
            curve.per_second(END + 10 * MICROS_PER_HOUR)
                > 5.0 * curve.per_second(END + 3 * MICROS_PER_HOUR)
        );
    }

    #[test]
    fn live_gaps_average_one_over_the_rate() {
        let mut rng = SmallRng::seed_from_u64(3);
        let n = 20_000;
        let mean = (0..n).map(|_| gap_seconds(&mut rng, 0.25)).sum::<f64>() / n as f64;
        assert!((mean - 4.0).abs() < 0.15, "{mean}");
        assert_eq!(gap_seconds(&mut rng, 0.0), f64::INFINITY);
    }

    #[test]
    fn poisson_counts_have_the_asked_mean() {
        let mut rng = SmallRng::seed_from_u64(11);
        for mean in [0.5, 4.0, 80.0] {
            let n = 20_000;
            let got = (0..n).map(|_| poisson(&mut rng, mean)).sum::<u64>() as f64 / n as f64;
            assert!((got - mean).abs() < mean * 0.03 + 0.02, "{mean}: {got}");
        }
    }

    #[test]
    fn syncs_fall_on_every_third_hour_after_the_start() {
        let from = 5 * MICROS_PER_HOUR + 17;
        let got: Vec<i64> = sync_times(from, 12 * MICROS_PER_HOUR).collect();
        assert_eq!(
            got,
            vec![
                6 * MICROS_PER_HOUR,
                9 * MICROS_PER_HOUR,
                12 * MICROS_PER_HOUR
            ]
        );
        assert_eq!(sync_times(from, from).count(), 0);
    }
}
