//! Pipeline step breakdown: per step name, how many interactions ran it, their
//! mean duration and tokens, and the pipeline order as observed.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::count_i64;
use super::round::{SECONDS, scaled_mean};
use crate::metrics::models::{StepBreakdown, StepTokens};

/// One step name of one interaction, its repeats already summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSample<'a> {
    pub name: &'a str,
    /// Summed duration of the name's occurrences, µs.
    pub duration_us: i64,
    /// 0-based index of the name's first occurrence in the interaction's `steps`.
    pub first_index: u32,
    /// Summed (input, output) tokens; `None` when no occurrence reported tokens.
    pub tokens: Option<(i64, i64)>,
}

/// Sums and counts for one step name. Integers only, so merges are exact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct StepAcc {
    /// Interactions that have the step.
    interactions: u64,
    duration_us: i128,
    /// Σ first_index; with `interactions` it gives the mean position as a rational.
    index_sum: u64,
    /// Interactions that reported tokens for the step.
    token_reports: u64,
    input_tokens: i128,
    output_tokens: i128,
}

impl StepAcc {
    fn add(&mut self, sample: &StepSample<'_>) {
        self.interactions += 1;
        self.duration_us += i128::from(sample.duration_us);
        // Saturating: overflow needs > 4e9 interactions at index > 4e9.
        self.index_sum = self.index_sum.saturating_add(u64::from(sample.first_index));
        if let Some((input, output)) = sample.tokens {
            self.token_reports += 1;
            self.input_tokens += i128::from(input);
            self.output_tokens += i128::from(output);
        }
    }

    fn merge(&mut self, other: &Self) {
        self.interactions += other.interactions;
        self.duration_us += other.duration_us;
        self.index_sum = self.index_sum.saturating_add(other.index_sum);
        self.token_reports += other.token_reports;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }

    /// Compares mean first indexes exactly: a/b < c/d ⇔ a·d < c·b (b, d > 0).
    fn cmp_position(&self, other: &Self) -> Ordering {
        let left = u128::from(self.index_sum) * u128::from(other.interactions);
        let right = u128::from(other.index_sum) * u128::from(self.interactions);
        left.cmp(&right)
    }

    fn avg_tokens(&self) -> Option<StepTokens> {
        let n = self.token_reports;
        Some(StepTokens {
            input: scaled_mean(self.input_tokens, n, 1.0)?,
            output: scaled_mean(self.output_tokens, n, 1.0)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepsState {
    steps: HashMap<String, StepAcc>,
}

impl StepsState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction. Each name must appear at most once in `samples`
    /// (the caller sums repeats), since a name counts once per interaction.
    pub fn add_interaction(&mut self, samples: &[StepSample<'_>]) {
        for sample in samples {
            match self.steps.get_mut(sample.name) {
                Some(acc) => acc.add(sample),
                None => {
                    let mut acc = StepAcc::default();
                    acc.add(sample);
                    self.steps.insert(sample.name.to_owned(), acc);
                }
            }
        }
    }

    pub fn merge(&mut self, other: Self) {
        for (name, acc) in other.steps {
            self.steps.entry(name).or_default().merge(&acc);
        }
    }

    /// Takes out a part merged in before (an erasure): a step no remaining
    /// interaction has goes.
    pub fn subtract(&mut self, part: &Self) {
        for (name, theirs) in &part.steps {
            let Some(acc) = self.steps.get_mut(name) else {
                continue;
            };
            acc.interactions = acc.interactions.saturating_sub(theirs.interactions);
            acc.duration_us -= theirs.duration_us;
            acc.index_sum = acc.index_sum.saturating_sub(theirs.index_sum);
            acc.token_reports = acc.token_reports.saturating_sub(theirs.token_reports);
            acc.input_tokens -= theirs.input_tokens;
            acc.output_tokens -= theirs.output_tokens;
            if acc.interactions == 0 {
                self.steps.remove(name);
            }
        }
    }

    /// One row per step name, in observed pipeline order (mean first index), ties
    /// by name.
    pub fn finish(&self) -> Vec<StepBreakdown> {
        let mut rows: Vec<(&String, &StepAcc)> = self.steps.iter().collect();
        rows.sort_by(|(name_a, a), (name_b, b)| a.cmp_position(b).then_with(|| name_a.cmp(name_b)));
        rows.into_iter().map(|(name, acc)| row(name, acc)).collect()
    }
}

fn row(name: &str, acc: &StepAcc) -> StepBreakdown {
    StepBreakdown {
        step_name: name.to_owned(),
        // An accumulator exists only after an add, so `interactions` ≥ 1.
        avg_duration: scaled_mean(acc.duration_us, acc.interactions, SECONDS).unwrap_or(0.0),
        step_count: count_i64(acc.interactions),
        avg_tokens: acc.avg_tokens(),
    }
}

impl crate::metrics::ApproxBytes for StepsState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>()
            + super::table_bytes(&self.steps)
            + self.steps.keys().map(String::capacity).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(name: &str, duration_us: i64, first_index: u32) -> StepSample<'_> {
        StepSample {
            name,
            duration_us,
            first_index,
            tokens: None,
        }
    }

    #[test]
    fn empty_state_has_no_rows() {
        assert!(StepsState::new().finish().is_empty());
    }

    #[test]
    fn averages_durations_and_counts_interactions() {
        let mut s = StepsState::new();
        s.add_interaction(&[
            sample("retrieval", 300_000, 0),
            sample("synthesis", 2_600_000, 1),
        ]);
        s.add_interaction(&[sample("retrieval", 500_000, 0)]);
        let rows = s.finish();
        // retrieval: (0.3 + 0.5) s / 2 = 800_000 / 2e6 = 0.4; synthesis: 2.6 / 1.
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].step_name, "retrieval");
        assert_eq!(rows[0].avg_duration, 0.4);
        assert_eq!(rows[0].step_count, 2);
        assert_eq!(rows[0].avg_tokens, None);
        assert_eq!(rows[1].step_name, "synthesis");
        assert_eq!(rows[1].avg_duration, 2.6);
        assert_eq!(rows[1].step_count, 1);
    }

    #[test]
    fn tokens_average_only_over_reporting_interactions() {
        let mut s = StepsState::new();
        let with = |input, output| StepSample {
            tokens: Some((input, output)),
            ..sample("synthesis", 1_000_000, 0)
        };
        s.add_interaction(&[with(1000, 200)]);
        s.add_interaction(&[with(0, 101)]);
        s.add_interaction(&[sample("synthesis", 1_000_000, 0)]);
        let rows = s.finish();
        // Two reports: input (1000 + 0) / 2 = 500, output (200 + 101) / 2 = 150.5;
        // the third interaction counts for step_count but not for tokens.
        assert_eq!(rows[0].step_count, 3);
        assert_eq!(
            rows[0].avg_tokens,
            Some(StepTokens {
                input: 500.0,
                output: 150.5
            })
        );
    }

    #[test]
    fn orders_by_mean_first_index_as_exact_rationals() {
        let mut s = StepsState::new();
        // "a": indexes 1 and 2 → mean 3/2. "b": indexes 1, 1, 2 → mean 4/3 < 3/2.
        // "c": index 0 → first. Float means would agree here; the rationals are the
        // contract, compared as 3·3 = 9 vs 4·2 = 8.
        s.add_interaction(&[sample("c", 1, 0), sample("a", 1, 1), sample("b", 1, 2)]);
        s.add_interaction(&[sample("b", 1, 1), sample("a", 1, 2)]);
        s.add_interaction(&[sample("b", 1, 1)]);
        let names: Vec<_> = s.finish().into_iter().map(|r| r.step_name).collect();
        assert_eq!(names, ["c", "b", "a"]);
    }

    #[test]
    fn position_comparison_is_exact_where_floats_collide() {
        // Means (2^64 − 1)/(2^64 − 2) and (2^64 − 2)/(2^64 − 3) are both 1.0 as f64,
        // but the second is larger: cross products differ by exactly 1.
        let a = StepAcc {
            index_sum: u64::MAX,
            interactions: u64::MAX - 1,
            ..StepAcc::default()
        };
        let b = StepAcc {
            index_sum: u64::MAX - 1,
            interactions: u64::MAX - 2,
            ..StepAcc::default()
        };
        assert_eq!(
            a.index_sum as f64 / a.interactions as f64,
            b.index_sum as f64 / b.interactions as f64
        );
        assert_eq!(a.cmp_position(&b), Ordering::Less);
        assert_eq!(b.cmp_position(&a), Ordering::Greater);
        assert_eq!(a.cmp_position(&a.clone()), Ordering::Equal);
    }

    #[test]
    fn equal_mean_positions_tie_by_name() {
        let mut s = StepsState::new();
        // "zeta" mean (0 + 2)/2 = 1, "alpha" mean 1/1 = 1: tie → name order.
        s.add_interaction(&[sample("zeta", 1, 0)]);
        s.add_interaction(&[sample("zeta", 1, 2), sample("alpha", 1, 1)]);
        let names: Vec<_> = s.finish().into_iter().map(|r| r.step_name).collect();
        assert_eq!(names, ["alpha", "zeta"]);
    }

    #[test]
    fn sums_stay_exact_beyond_i64() {
        let mut s = StepsState::new();
        s.add_interaction(&[sample("slow", i64::MAX, 0)]);
        s.add_interaction(&[sample("slow", i64::MAX, 0)]);
        // Mean of two i64::MAX is i64::MAX µs; 9223372036854775807 / 1e6 as floats.
        let rows = s.finish();
        assert_eq!(rows[0].avg_duration, (2.0 * i64::MAX as f64) / 2e6);
    }

    /// One raw step: (index into `NAMES`, duration µs, tokens).
    type RawStep = (usize, i64, Option<(i64, i64)>);

    fn arb_interaction() -> impl Strategy<Value = Vec<RawStep>> {
        // Indexes into a small name pool; dedup happens in `fold`.
        proptest::collection::vec(
            (
                0usize..4,
                0i64..5_000_000,
                proptest::option::of((0i64..5000, 0i64..5000)),
            ),
            0..5,
        )
    }

    const NAMES: [&str; 4] = ["retrieval", "rerank", "synthesis", "guard"];

    fn fold(interactions: &[Vec<RawStep>]) -> StepsState {
        let mut s = StepsState::new();
        for steps in interactions {
            let mut samples: Vec<StepSample<'_>> = Vec::new();
            for (pos, &(name, duration_us, tokens)) in steps.iter().enumerate() {
                if samples.iter().all(|x| x.name != NAMES[name]) {
                    samples.push(StepSample {
                        name: NAMES[name],
                        duration_us,
                        first_index: pos as u32,
                        tokens,
                    });
                }
            }
            s.add_interaction(&samples);
        }
        s
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            events in proptest::collection::vec(arb_interaction(), 0..30),
            cut in 0usize..31,
        ) {
            let cut = cut.min(events.len());
            let mut left = fold(&events[..cut]);
            let right = fold(&events[cut..]);
            let mut swapped = right.clone();
            swapped.merge(left.clone());
            left.merge(right);
            let whole = fold(&events);
            prop_assert_eq!(&left, &whole);
            prop_assert_eq!(left.finish(), whole.finish());
            prop_assert_eq!(swapped.finish(), whole.finish());
        }
    }
}
