//! Splits a window `(from, to]` into the rollup buckets that lie wholly inside
//! it and the raw time ranges left at its two ends.

use std::ops::Range;

use super::Level;

/// How one window is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Raw time ranges `(from_exclusive, to_inclusive]` to scan.
    pub raw: Vec<(i64, i64)>,
    /// Whole sealed days, merged from day rows.
    pub days: Vec<Range<i64>>,
    /// Whole hours outside `days`, merged from hour rows.
    pub hours: Vec<Range<i64>>,
}

impl Plan {
    /// Everything from raw rows: the reference path.
    pub fn scan(from_exclusive: i64, to_inclusive: i64) -> Self {
        Self {
            raw: nonempty(from_exclusive, to_inclusive).into_iter().collect(),
            days: Vec::new(),
            hours: Vec::new(),
        }
    }

    /// Whole hours and sealed days from rollups; days before `sealed_day` have
    /// day rows, except the `dirty` ones (ascending), read from their hours.
    pub fn new(from_exclusive: i64, to_inclusive: i64, sealed_day: i64, dirty: &[i64]) -> Self {
        let hour = Level::Hour.micros();
        // Hour b holds [b·H, (b+1)·H); it is inside (from, to] when b·H > from
        // and (b+1)·H − 1 ≤ to.
        let first_hour = from_exclusive.div_euclid(hour).saturating_add(1);
        let end_hour = to_inclusive.saturating_add(1).div_euclid(hour);
        if first_hour >= end_hour {
            return Self::scan(from_exclusive, to_inclusive);
        }
        let head_end = first_hour * hour - 1;
        let tail_start = end_hour * hour - 1;
        let raw = [
            nonempty(from_exclusive, head_end),
            nonempty(tail_start, to_inclusive),
        ]
        .into_iter()
        .flatten()
        .collect();
        let first_day = first_hour.div_euclid(24) + i64::from(first_hour.rem_euclid(24) != 0);
        let end_day = end_hour.div_euclid(24).min(sealed_day);
        let (days, hours) = if first_day < end_day {
            let mut hours = Vec::new();
            if first_hour < first_day * 24 {
                hours.push(first_hour..first_day * 24);
            }
            let mut days = Vec::new();
            let mut start = first_day;
            for &day in dirty.iter().filter(|d| (first_day..end_day).contains(d)) {
                if start < day {
                    days.push(start..day);
                }
                hours.push(day * 24..day * 24 + 24);
                start = day + 1;
            }
            if start < end_day {
                days.push(start..end_day);
            }
            if end_day * 24 < end_hour {
                hours.push(end_day * 24..end_hour);
            }
            (days, hours)
        } else {
            (Vec::new(), std::iter::once(first_hour..end_hour).collect())
        };
        Self { raw, days, hours }
    }
}

/// Splits the raw range `(from_exclusive, to_inclusive]` at hour boundaries:
/// `(hour, (from_exclusive, to_inclusive))` for each hour it touches.
pub fn by_hour(from_exclusive: i64, to_inclusive: i64) -> Vec<(i64, (i64, i64))> {
    let hour = Level::Hour.micros();
    let mut pieces = Vec::new();
    let mut start = from_exclusive;
    while start < to_inclusive {
        let bucket = Level::Hour.bucket(start.saturating_add(1));
        let end = bucket
            .saturating_add(1)
            .saturating_mul(hour)
            .saturating_sub(1)
            .min(to_inclusive);
        pieces.push((bucket, (start, end)));
        start = end;
    }
    pieces
}

fn nonempty(from_exclusive: i64, to_inclusive: i64) -> Option<(i64, i64)> {
    (from_exclusive < to_inclusive).then_some((from_exclusive, to_inclusive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MICROS_PER_DAY as D, MICROS_PER_HOUR as H};
    use proptest::prelude::*;

    #[test]
    fn a_window_inside_one_hour_is_all_raw() {
        let plan = Plan::new(10 * H + 5, 10 * H + 900, i64::MAX, &[]);
        assert_eq!(plan, Plan::scan(10 * H + 5, 10 * H + 900));
    }

    #[test]
    fn the_last_24_hours_are_two_partial_hours_and_23_whole_ones() {
        let now = 100 * D + 5 * H + 17;
        let plan = Plan::new(now - 24 * H, now, 100, &[]);
        assert_eq!(
            plan.raw,
            vec![
                (now - 24 * H, 99 * D + 6 * H - 1),
                (100 * D + 5 * H - 1, now)
            ]
        );
        // Hours 99d+6h .. 100d+5h: no whole day inside.
        assert!(plan.days.is_empty());
        assert_eq!(
            plan.hours,
            vec![Range {
                start: 99 * 24 + 6,
                end: 100 * 24 + 5
            }]
        );
    }

    #[test]
    fn whole_sealed_days_come_from_day_rows() {
        let now = 100 * D + 5 * H + 17;
        let plan = Plan::new(now - 7 * D, now, 100, &[]);
        assert_eq!(plan.days, vec![94..100]);
        assert_eq!(
            plan.hours,
            vec![(93 * 24 + 6)..(94 * 24), (100 * 24)..(100 * 24 + 5)]
        );
    }

    #[test]
    fn unsealed_days_fall_back_to_hours() {
        let now = 100 * D + 5 * H + 17;
        let plan = Plan::new(now - 7 * D, now, 98, &[]);
        assert_eq!(plan.days, vec![94..98]);
        assert_eq!(
            plan.hours,
            vec![(93 * 24 + 6)..(94 * 24), (98 * 24)..(100 * 24 + 5)]
        );
    }

    #[test]
    fn an_hour_that_starts_at_the_exclusive_bound_is_scanned() {
        // (10H, 12H]: hour 10 starts at the excluded instant, hour 11 is whole,
        // and the instant 12H itself belongs to hour 12.
        let plan = Plan::new(10 * H, 12 * H, i64::MAX, &[]);
        assert_eq!(plan.raw, vec![(10 * H, 11 * H - 1), (12 * H - 1, 12 * H)]);
        assert_eq!(plan.hours, vec![Range { start: 11, end: 12 }]);
    }

    #[test]
    fn dirty_days_are_read_from_their_hours() {
        let now = 100 * D + 5 * H + 17;
        let plan = Plan::new(now - 7 * D, now, 100, &[90, 95, 97, 99]);
        assert_eq!(plan.days, vec![94..95, 96..97, 98..99]);
        assert_eq!(
            plan.hours,
            vec![
                (93 * 24 + 6)..(94 * 24),
                (95 * 24)..(96 * 24),
                (97 * 24)..(98 * 24),
                (99 * 24)..(100 * 24),
                (100 * 24)..(100 * 24 + 5)
            ]
        );
    }

    /// Which part of the plan covers `ts`; exactly one must, for ts in the window.
    fn covers(plan: &Plan, ts: i64) -> usize {
        let raw = plan.raw.iter().filter(|&&(a, b)| a < ts && ts <= b).count();
        let day = plan
            .days
            .iter()
            .filter(|r| r.contains(&ts.div_euclid(D)))
            .count();
        let hours = plan
            .hours
            .iter()
            .filter(|r| r.contains(&ts.div_euclid(H)))
            .count();
        raw + day + hours
    }

    #[test]
    fn raw_ranges_split_at_hour_boundaries() {
        assert_eq!(
            by_hour(10 * H + 5, 12 * H + 7),
            vec![
                (10, (10 * H + 5, 11 * H - 1)),
                (11, (11 * H - 1, 12 * H - 1)),
                (12, (12 * H - 1, 12 * H + 7)),
            ]
        );
        // The excluded instant 11H − 1 ends hour 10, so only hour 11 is touched.
        assert_eq!(
            by_hour(11 * H - 1, 11 * H + 3),
            vec![(11, (11 * H - 1, 11 * H + 3))]
        );
        assert!(by_hour(5, 5).is_empty());
    }

    proptest! {
        #[test]
        fn hour_pieces_partition_the_range(from in -3 * D..3 * D, length in 0..3 * D) {
            let to = from + length;
            let pieces = by_hour(from, to);
            let mut next = from;
            for &(hour, (a, b)) in &pieces {
                prop_assert_eq!(a, next);
                prop_assert!(a < b);
                prop_assert_eq!(Level::Hour.bucket(a + 1), hour);
                prop_assert_eq!(Level::Hour.bucket(b), hour);
                next = b;
            }
            prop_assert_eq!(next, to);
        }

        #[test]
        fn every_instant_of_the_window_is_covered_exactly_once(
            from in -3 * D..30 * D,
            length in 0..20 * D,
            sealed in -2i64..40,
            dirty in proptest::collection::btree_set(-2i64..40, 0..6),
            probes in proptest::collection::vec(0.0f64..1.0, 1..40),
        ) {
            let to = from + length;
            let dirty: Vec<i64> = dirty.into_iter().collect();
            let plan = Plan::new(from, to, sealed, &dirty);
            for p in probes {
                let ts = from + 1 + ((length as f64) * p) as i64;
                if ts <= to {
                    prop_assert_eq!(covers(&plan, ts), 1, "ts {} in {:?}", ts, plan);
                }
            }
            // Boundaries: just outside is never covered, the edges are.
            prop_assert_eq!(covers(&plan, from), 0);
            prop_assert_eq!(covers(&plan, to + 1), 0);
            if length > 0 {
                prop_assert_eq!(covers(&plan, from + 1), 1);
                prop_assert_eq!(covers(&plan, to), 1);
            }
            for day in plan.days.iter().flat_map(|r| r.clone()) {
                prop_assert!(day < sealed && !dirty.contains(&day));
            }
        }
    }
}
