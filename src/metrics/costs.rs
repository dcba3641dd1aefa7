//! Cost per assistant: token sums and the summed cost in nano-dollars.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::round::{NANOS, round_dp};
use super::{AssistantDirectory, AssistantMeta, KeyMap, sum_i64};
use crate::metrics::models::AssistantCost;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CostAcc {
    input_tokens: i128,
    output_tokens: i128,
    cost_nusd: i128,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostsState {
    assistants: KeyMap<CostAcc>,
}

impl CostsState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction. An assistant gets a row as soon as it has one
    /// interaction, even one with no tokens and no cost.
    pub fn add(&mut self, assistant: i64, input_tokens: i64, output_tokens: i64, cost_nusd: i64) {
        let acc = self.assistants.entry(assistant).or_default();
        acc.input_tokens += i128::from(input_tokens);
        acc.output_tokens += i128::from(output_tokens);
        acc.cost_nusd += i128::from(cost_nusd);
    }

    pub fn merge(&mut self, other: Self) {
        for (assistant, theirs) in other.assistants {
            let acc = self.assistants.entry(assistant).or_default();
            acc.input_tokens += theirs.input_tokens;
            acc.output_tokens += theirs.output_tokens;
            acc.cost_nusd += theirs.cost_nusd;
        }
    }

    /// Takes out a part merged in before (an erasure). An assistant keeps
    /// its row: whether it still has an interaction is the caller's to know.
    pub fn subtract(&mut self, part: &Self) {
        for (assistant, theirs) in &part.assistants {
            if let Some(acc) = self.assistants.get_mut(assistant) {
                acc.input_tokens -= theirs.input_tokens;
                acc.output_tokens -= theirs.output_tokens;
                acc.cost_nusd -= theirs.cost_nusd;
            }
        }
    }

    /// One row per assistant: cost desc (exact nano-dollars), then name, then uuid.
    ///
    /// # Errors
    /// Whatever the directory returns.
    pub fn finish<D: AssistantDirectory>(
        &self,
        directory: &D,
    ) -> Result<Vec<AssistantCost>, D::Error> {
        let mut rows = self
            .assistants
            .iter()
            .map(|(&key, acc)| Ok((directory.assistant(key)?, *acc)))
            .collect::<Result<Vec<_>, D::Error>>()?;
        rows.sort_by(order);
        Ok(rows.into_iter().map(|(meta, acc)| row(meta, acc)).collect())
    }
}

/// Registered name, else the uuid as text (the contract's fallback).
fn display_name(meta: &AssistantMeta) -> String {
    meta.name.clone().unwrap_or_else(|| meta.uuid.to_string())
}

fn order(a: &(AssistantMeta, CostAcc), b: &(AssistantMeta, CostAcc)) -> Ordering {
    b.1.cost_nusd
        .cmp(&a.1.cost_nusd)
        .then_with(|| display_name(&a.0).cmp(&display_name(&b.0)))
        .then(a.0.uuid.cmp(&b.0.uuid))
}

fn row(meta: AssistantMeta, acc: CostAcc) -> AssistantCost {
    AssistantCost {
        assistant_name: display_name(&meta),
        assistant_id: meta.uuid,
        total_tokens: sum_i64(acc.input_tokens + acc.output_tokens),
        input_tokens: sum_i64(acc.input_tokens),
        output_tokens: sum_i64(acc.output_tokens),
        estimated_cost_usd: round_dp(acc.cost_nusd as f64 / NANOS, 6),
    }
}

impl crate::metrics::ApproxBytes for CostsState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>() + super::table_bytes(&self.assistants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixture::{MapDirectory, uuid_of};
    use proptest::prelude::*;

    /// (assistant, input, output, cost_nusd) per interaction.
    fn fold(events: &[(i64, i64, i64, i64)]) -> CostsState {
        let mut s = CostsState::new();
        for &(a, i, o, c) in events {
            s.add(a, i, o, c);
        }
        s
    }

    fn named(pairs: &[(i64, &str)]) -> MapDirectory {
        let mut d = MapDirectory::default();
        for &(k, name) in pairs {
            d.names.insert(k, name.to_owned());
        }
        d
    }

    #[test]
    fn empty_window_has_no_rows() {
        assert!(CostsState::new().finish(&named(&[])).unwrap().is_empty());
    }

    #[test]
    fn sums_tokens_and_converts_cost() {
        // 1830 + 170 input, 212 + 30 output; cost 412_500 + 87_500 = 500_000 nUSD
        // = 0.0005 USD.
        let s = fold(&[(1, 1830, 212, 412_500), (1, 170, 30, 87_500)]);
        let got = s.finish(&named(&[(1, "Support bot")])).unwrap();
        assert_eq!(
            got,
            vec![AssistantCost {
                assistant_id: uuid_of(1),
                assistant_name: "Support bot".to_owned(),
                total_tokens: 2242,
                input_tokens: 2000,
                output_tokens: 242,
                estimated_cost_usd: 0.0005,
            }]
        );
    }

    #[test]
    fn cost_rounds_to_six_decimals_ties_to_even() {
        // 2_500 nUSD = 0.0000025 USD: 6 dp tie between 0.000002 and 0.000003. The
        // float 2500/1e9 is 2.50000000000000015...e-6, above the tie → 0.000003.
        // 1_234_567_891 nUSD = 1.234567891 → 1.234568.
        let s = fold(&[(1, 0, 0, 2_500), (2, 0, 0, 1_234_567_891)]);
        let got = s.finish(&named(&[])).unwrap();
        assert_eq!(got[0].estimated_cost_usd, 1.234568);
        assert_eq!(got[1].estimated_cost_usd, 0.000003);
    }

    #[test]
    fn orders_by_cost_then_name_then_uuid() {
        // 3 costs most. 1 and 2 tie on cost: names "alpha" (2) < "beta" (1).
        // 4 and 5 tie on cost and both are unregistered: their names are their
        // uuids, …04 < …05. A zero-cost interaction still yields a row (6).
        let s = fold(&[
            (1, 0, 0, 10),
            (2, 0, 0, 10),
            (3, 0, 0, 11),
            (5, 0, 0, 1),
            (4, 0, 0, 1),
            (6, 0, 0, 0),
        ]);
        let d = named(&[(1, "beta"), (2, "alpha")]);
        let keys: Vec<_> = s
            .finish(&d)
            .unwrap()
            .into_iter()
            .map(|r| r.assistant_id)
            .collect();
        assert_eq!(keys, [3, 2, 1, 4, 5, 6].map(uuid_of));
    }

    #[test]
    fn cost_order_uses_exact_integers_not_rounded_dollars() {
        // 1 nUSD vs 2 nUSD both round to 0.0 USD, yet 2 sorts first.
        let s = fold(&[(1, 0, 0, 1), (2, 0, 0, 2)]);
        let got = s.finish(&named(&[(1, "a"), (2, "b")])).unwrap();
        assert_eq!(got[0].assistant_name, "b");
        assert_eq!(
            (got[0].estimated_cost_usd, got[1].estimated_cost_usd),
            (0.0, 0.0)
        );
    }

    #[test]
    fn unregistered_assistant_is_named_by_its_uuid() {
        let got = fold(&[(7, 1, 1, 0)]).finish(&named(&[])).unwrap();
        assert_eq!(
            got[0].assistant_name,
            "00000000-0000-0000-0000-000000000007"
        );
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            events in proptest::collection::vec((0i64..5, 0i64..10_000, 0i64..10_000, 0i64..3_000_000), 0..50),
            cut in 0usize..51,
        ) {
            let cut = cut.min(events.len());
            let mut left = fold(&events[..cut]);
            left.merge(fold(&events[cut..]));
            let whole = fold(&events);
            prop_assert_eq!(&left, &whole);
            let d = named(&[(0, "x"), (1, "x"), (2, "a")]);
            prop_assert_eq!(left.finish(&d).unwrap(), whole.finish(&d).unwrap());
        }
    }
}
