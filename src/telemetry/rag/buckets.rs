//! Histogram bucket boundaries of the RAG series, in integer microseconds so
//! that an observation lands in its bucket exactly (no float comparison) and
//! sums stay exact. Chosen for LLM latencies: first tokens from tens of
//! milliseconds (a small local model) to a minute (a reasoning model under
//! load), answers up to five minutes, pipeline steps from milliseconds.
//!
//! Changing a list changes [`LAYOUT`], which makes the store rebuild the
//! series from its events at the next start.

/// Time to first token.
pub const TTFT_US: &[i64] = &[
    50_000, 100_000, 250_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000,
    4_000_000, 5_000_000, 7_500_000, 10_000_000, 15_000_000, 20_000_000, 30_000_000, 60_000_000,
];

/// Total duration of an interaction.
pub const TOTAL_US: &[i64] = &[
    250_000,
    500_000,
    1_000_000,
    2_000_000,
    3_000_000,
    5_000_000,
    7_500_000,
    10_000_000,
    15_000_000,
    20_000_000,
    30_000_000,
    45_000_000,
    60_000_000,
    90_000_000,
    120_000_000,
    300_000_000,
];

/// One pipeline step of an interaction (its repeats summed).
pub const STEP_US: &[i64] = &[
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000,
];

/// One connector sync.
pub const SYNC_US: &[i64] = &[
    1_000_000,
    5_000_000,
    15_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
    600_000_000,
    1_200_000_000,
    1_800_000_000,
    3_600_000_000,
    7_200_000_000,
    14_400_000_000,
];

/// The version of the persisted series' shape: bucket lists, label caps and
/// the state encoding. Bump it whenever one of them changes.
pub const LAYOUT: i64 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_rises_strictly() {
        for list in [TTFT_US, TOTAL_US, STEP_US, SYNC_US] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
            assert!(list[0] > 0);
        }
    }
}
