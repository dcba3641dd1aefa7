//! The state behind the RAG series: counters and histograms per assistant
//! and per connector, folded from committed events. Pure: the writer feeds
//! it, the store persists it row by row, the encoder reads published copies.
//!
//! Label sets are bounded here. The first [`MAX_ASSISTANTS`] assistants to
//! have an interaction, the first [`MAX_CONNECTORS`] connectors to have a
//! sync, the first [`MAX_MODELS`] models and [`MAX_STEPS`] step names get
//! series of their own, in that order of arrival; everything after them is
//! folded into one `other` row or label, so a misbehaving client cannot grow
//! `/metrics` without end. The admitted names are part of the persisted
//! state, so a restart admits the same ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use foldhash::fast::RandomState;

use serde::{Deserialize, Serialize};

use super::buckets::{STEP_US, SYNC_US, TOTAL_US, TTFT_US};

/// Assistants with series of their own; the rest share the `other` row.
pub const MAX_ASSISTANTS: usize = 100;
/// Connectors with series of their own; the rest share the `other` row.
pub const MAX_CONNECTORS: usize = 50;
/// Model names with series of their own; the rest are `model="other"`.
pub const MAX_MODELS: usize = 20;
/// Step names with series of their own; the rest are `step="other"`.
pub const MAX_STEPS: usize = 20;
/// Longest label value taken from a client (names, models), in bytes; longer
/// ones are cut at a character boundary.
pub const MAX_LABEL_BYTES: usize = 128;
/// The label value of everything beyond a cap.
pub const OTHER: &str = "other";
/// The model label of an interaction whose model is unknown (none given and
/// none registered for its assistant).
pub const UNKNOWN_MODEL: &str = "unknown";
/// Row key of the `other` assistant or connector (store keys start at 1).
pub const OTHER_KEY: i64 = 0;
/// Label slot of `other` among the models or the steps.
pub const OTHER_SLOT: u16 = u16::MAX;
/// Failure start times a connector keeps for its consecutive-failure count.
const MAX_KEPT_FAILURES: usize = 1_024;

/// A histogram over integer microseconds: a bucket per bound, plus one above
/// every bound (`+Inf`). Counts are per bucket, not cumulative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    counts: Vec<u64>,
    sum_us: i64,
}

impl Histogram {
    pub fn new(bounds: &[i64]) -> Self {
        Self {
            counts: vec![0; bounds.len() + 1],
            sum_us: 0,
        }
    }

    /// Counts `value_us` in the first bucket whose bound is at or above it
    /// (Prometheus's `le`).
    pub fn observe(&mut self, bounds: &[i64], value_us: i64) {
        let bucket = bounds.partition_point(|&bound| bound < value_us);
        if let Some(count) = self.counts.get_mut(bucket) {
            *count += 1;
        }
        self.sum_us = self.sum_us.saturating_add(value_us);
    }

    /// Observations per bucket, the last one above every bound.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_us(&self) -> i64 {
        self.sum_us
    }

    /// True when it was built for `bounds` (a stored state of another layout is not).
    pub fn fits(&self, bounds: &[i64]) -> bool {
        self.counts.len() == bounds.len() + 1
    }
}

/// Tokens and cost of one (assistant, model).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    /// Nano-dollars: exact sums in any order.
    pub cost_nusd: u128,
}

/// Reranking of one assistant's interactions that carried a score improvement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rerank {
    pub interactions: u64,
    /// Sum of the positive improvements, in units of 1e-9.
    pub gain_n: u128,
    /// Sum of the magnitudes of the negative improvements, in units of 1e-9.
    pub loss_n: u128,
    /// Those interactions that also reported a position change, and its sum (1e-9).
    pub positions: u64,
    pub position_n: u128,
}

/// Every series of one assistant (or of the `other` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistantSeries {
    /// Interactions: [cache misses, cache hits].
    pub interactions: [u64; 2],
    pub ttft: Histogram,
    pub total: Histogram,
    /// By step label slot.
    pub steps: BTreeMap<u16, Histogram>,
    /// By model label slot.
    pub models: BTreeMap<u16, Usage>,
    pub rerank: Rerank,
}

impl Default for AssistantSeries {
    fn default() -> Self {
        Self {
            interactions: [0; 2],
            ttft: Histogram::new(TTFT_US),
            total: Histogram::new(TOTAL_US),
            steps: BTreeMap::new(),
            models: BTreeMap::new(),
            rerank: Rerank::default(),
        }
    }
}

impl AssistantSeries {
    /// True when every histogram has the current layout's buckets.
    pub fn fits(&self) -> bool {
        self.ttft.fits(TTFT_US)
            && self.total.fits(TOTAL_US)
            && self.steps.values().all(|h| h.fits(STEP_US))
    }
}

/// How a connector sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    Success = 0,
    Partial = 1,
    Failure = 2,
}

impl SyncOutcome {
    pub const ALL: [SyncOutcome; 3] = [Self::Success, Self::Partial, Self::Failure];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Failure => "failure",
        }
    }
}

/// Failed syncs that started after the connector's latest successful one.
/// Syncs may arrive in any order, so the start times of the latest failures
/// are kept: a success dated between them ends only the run before it.
/// Beyond [`MAX_KEPT_FAILURES`] the oldest are only counted; the count stays
/// exact unless a success then arrives dated before every kept failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRun {
    /// Ascending start times, µs.
    kept: Vec<i64>,
    /// Failures older than every kept one.
    older: u64,
}

impl FailureRun {
    pub fn count(&self) -> u64 {
        self.older + self.kept.len() as u64
    }

    fn failure(&mut self, started_at: i64) {
        let at = self.kept.partition_point(|&t| t <= started_at);
        self.kept.insert(at, started_at);
        if self.kept.len() > MAX_KEPT_FAILURES {
            self.kept.remove(0);
            self.older += 1;
        }
    }

    /// A success at `started_at`, the connector's latest: failures up to it end.
    fn success(&mut self, started_at: i64) {
        let ended = self.kept.partition_point(|&t| t <= started_at);
        if ended > 0 {
            self.older = 0;
            self.kept.drain(..ended);
        }
    }
}

/// Every series of one connector (or of the `other` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorSeries {
    /// Syncs by [`SyncOutcome`] order: success, partial, failure.
    pub syncs: [u64; 3],
    /// Syncs that reported a duration.
    pub duration: Histogram,
    /// Start of the latest successful sync, µs.
    pub last_success_us: Option<i64>,
    pub failures: FailureRun,
}

impl Default for ConnectorSeries {
    fn default() -> Self {
        Self {
            syncs: [0; 3],
            duration: Histogram::new(SYNC_US),
            last_success_us: None,
            failures: FailureRun::default(),
        }
    }
}

impl ConnectorSeries {
    fn sync(&mut self, outcome: SyncOutcome, started_at: i64, duration_us: Option<i64>) {
        self.syncs[outcome as usize] += 1;
        if let Some(duration) = duration_us {
            self.duration.observe(SYNC_US, duration);
        }
        let after_last_success = self.last_success_us.is_none_or(|s| started_at > s);
        match outcome {
            SyncOutcome::Success if after_last_success => {
                self.last_success_us = Some(started_at);
                self.failures.success(started_at);
            }
            SyncOutcome::Failure if after_last_success => self.failures.failure(started_at),
            _ => {}
        }
    }
}

/// Names admitted to a label, in order of arrival, up to a cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    names: Vec<String>,
    /// Looked up for every interaction and step: foldhash, not SipHash.
    slots: HashMap<String, u16, RandomState>,
    cap: usize,
}

impl Labels {
    pub fn new(cap: usize) -> Self {
        Self {
            names: Vec::new(),
            slots: HashMap::default(),
            cap: cap.min(usize::from(OTHER_SLOT)),
        }
    }

    /// Restores a persisted list (kept in its order, cut at the cap).
    pub fn with_names(cap: usize, names: Vec<String>) -> Self {
        let mut labels = Self::new(cap);
        for name in names {
            labels.slot(&name);
        }
        labels
    }

    /// The slot of `name`, admitting it while there is room; [`OTHER_SLOT`] after.
    pub fn slot(&mut self, name: &str) -> u16 {
        let name = truncate(name);
        if let Some(&slot) = self.slots.get(name) {
            return slot;
        }
        if self.names.len() >= self.cap || name == OTHER {
            return OTHER_SLOT;
        }
        let slot = self.names.len() as u16;
        self.names.push(name.to_string());
        self.slots.insert(name.to_string(), slot);
        slot
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The label value of a slot.
    pub fn name(&self, slot: u16) -> &str {
        self.names
            .get(usize::from(slot))
            .map_or(OTHER, String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// `text` cut to at most [`MAX_LABEL_BYTES`] at a character boundary.
pub fn truncate(text: &str) -> &str {
    if text.len() <= MAX_LABEL_BYTES {
        return text;
    }
    let mut end = MAX_LABEL_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What the series take from one stored interaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct InteractionFacts<'a> {
    pub assistant: i64,
    /// The model it was priced by (its own, else its assistant's).
    pub model: Option<&'a str>,
    pub cache_hit: bool,
    pub ttft_us: Option<i64>,
    pub total_us: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cost_nusd: i64,
    pub rerank_improvement_n: Option<i64>,
    pub rerank_position_n: Option<i64>,
}

/// Which rows changed since the last [`SeriesState::take_changes`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub assistants: BTreeSet<i64>,
    pub connectors: BTreeSet<i64>,
    pub labels: bool,
}

/// Every row of the RAG series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesState {
    /// By assistant key; [`OTHER_KEY`] holds the assistants beyond the cap.
    pub assistants: BTreeMap<i64, AssistantSeries>,
    /// By connector key; [`OTHER_KEY`] holds the connectors beyond the cap.
    pub connectors: BTreeMap<i64, ConnectorSeries>,
    pub models: Labels,
    pub steps: Labels,
    changed: ChangeSet,
}

/// Changes are compared by nobody: two states are equal when their series are.
#[derive(Debug, Clone, Default)]
struct ChangeSet {
    assistants: BTreeSet<i64>,
    connectors: BTreeSet<i64>,
    labels: bool,
}

impl PartialEq for ChangeSet {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ChangeSet {}

impl Default for SeriesState {
    fn default() -> Self {
        Self::new()
    }
}

/// A row that an event landed in, and whether the event admitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub key: i64,
    pub admitted: bool,
}

impl SeriesState {
    pub fn new() -> Self {
        Self {
            assistants: BTreeMap::new(),
            connectors: BTreeMap::new(),
            models: Labels::new(MAX_MODELS),
            steps: Labels::new(MAX_STEPS),
            changed: ChangeSet::default(),
        }
    }

    /// The row of `assistant`, admitting it while there is room.
    fn assistant_row(&mut self, assistant: i64) -> Row {
        admit(&mut self.assistants, assistant, MAX_ASSISTANTS)
    }

    /// The row an assistant's events land in, without admitting it.
    pub fn row_of_assistant(&self, assistant: i64) -> i64 {
        if self.assistants.contains_key(&assistant) {
            assistant
        } else {
            OTHER_KEY
        }
    }

    /// Folds one stored interaction (its steps follow through [`Self::step`]).
    pub fn interaction(&mut self, facts: &InteractionFacts<'_>) -> Row {
        let row = self.assistant_row(facts.assistant);
        let labels_before = self.models.len();
        let model = self.models.slot(facts.model.unwrap_or(UNKNOWN_MODEL));
        self.changed.labels |= self.models.len() != labels_before;
        self.changed.assistants.insert(row.key);
        let series = self.assistants.entry(row.key).or_default();
        series.interactions[usize::from(facts.cache_hit)] += 1;
        if let Some(ttft) = facts.ttft_us {
            series.ttft.observe(TTFT_US, ttft);
        }
        if let Some(total) = facts.total_us {
            series.total.observe(TOTAL_US, total);
        }
        let usage = series.models.entry(model).or_default();
        let tokens = |n: i64| u64::try_from(n).unwrap_or(0);
        usage.input_tokens = usage
            .input_tokens
            .saturating_add(tokens(facts.input_tokens));
        usage.output_tokens = usage
            .output_tokens
            .saturating_add(tokens(facts.output_tokens));
        usage.cached_input_tokens = usage
            .cached_input_tokens
            .saturating_add(tokens(facts.cached_input_tokens));
        usage.cost_nusd += u128::try_from(facts.cost_nusd).unwrap_or(0);
        if let Some(improvement) = facts.rerank_improvement_n {
            let rerank = &mut series.rerank;
            rerank.interactions += 1;
            if improvement >= 0 {
                rerank.gain_n += u128::from(improvement.unsigned_abs());
            } else {
                rerank.loss_n += u128::from(improvement.unsigned_abs());
            }
            if let Some(position) = facts.rerank_position_n {
                rerank.positions += 1;
                rerank.position_n += u128::from(position.unsigned_abs());
            }
        }
        row
    }

    /// Folds one step (its repeats summed) of an interaction that landed in
    /// `row`: the interaction marked the row changed already.
    pub fn step(&mut self, row: i64, name: &str, duration_us: i64) {
        let labels_before = self.steps.len();
        let slot = self.steps.slot(name);
        self.changed.labels |= self.steps.len() != labels_before;
        self.assistants
            .entry(row)
            .or_default()
            .steps
            .entry(slot)
            .or_insert_with(|| Histogram::new(STEP_US))
            .observe(STEP_US, duration_us);
    }

    /// Folds one stored connector sync.
    pub fn sync(
        &mut self,
        connector: i64,
        outcome: SyncOutcome,
        started_at: i64,
        duration_us: Option<i64>,
    ) -> Row {
        let row = admit(&mut self.connectors, connector, MAX_CONNECTORS);
        self.changed.connectors.insert(row.key);
        self.connectors
            .entry(row.key)
            .or_default()
            .sync(outcome, started_at, duration_us);
        row
    }

    /// The rows changed since the last call, which forgets them.
    pub fn take_changes(&mut self) -> Changes {
        let changed = std::mem::take(&mut self.changed);
        Changes {
            assistants: changed.assistants,
            connectors: changed.connectors,
            labels: changed.labels,
        }
    }
}

/// The row of `key` in `rows`: its own when it has one or there is room for
/// one more (beyond the `other` row), else [`OTHER_KEY`].
fn admit<T: Default>(rows: &mut BTreeMap<i64, T>, key: i64, cap: usize) -> Row {
    if rows.contains_key(&key) {
        return Row {
            key,
            admitted: false,
        };
    }
    let own = rows.len() - usize::from(rows.contains_key(&OTHER_KEY));
    if own < cap {
        rows.insert(key, T::default());
        return Row {
            key,
            admitted: true,
        };
    }
    Row {
        key: OTHER_KEY,
        admitted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_first_bucket_at_or_above_it() {
        let bounds = [10, 20, 30];
        let mut h = Histogram::new(&bounds);
        for v in [0, 10, 11, 20, 30, 31, 1_000] {
            h.observe(&bounds, v);
        }
        // le=10: 0, 10; le=20: 11, 20; le=30: 30; +Inf: 31, 1000.
        assert_eq!(h.counts(), &[2, 2, 1, 2]);
        assert_eq!(h.count(), 7);
        assert_eq!(h.sum_us(), 1_102);
    }

    #[test]
    fn labels_beyond_the_cap_are_other_and_admission_order_is_kept() {
        let mut labels = Labels::new(2);
        assert_eq!(labels.slot("b"), 0);
        assert_eq!(labels.slot("a"), 1);
        assert_eq!(labels.slot("c"), OTHER_SLOT);
        assert_eq!(labels.slot("a"), 1);
        assert_eq!(labels.names(), ["b", "a"]);
        assert_eq!(labels.name(OTHER_SLOT), "other");
        let restored = Labels::with_names(2, labels.names().to_vec());
        assert_eq!(restored, labels);
    }

    #[test]
    fn a_client_name_other_shares_the_overflow_label() {
        let mut labels = Labels::new(5);
        assert_eq!(labels.slot("other"), OTHER_SLOT);
        assert!(labels.is_empty());
    }

    #[test]
    fn long_label_values_are_cut_at_a_character_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate(&long);
        assert_eq!(cut.len(), 128);
        assert_eq!(cut, "é".repeat(64));
        assert_eq!(truncate("gpt-4o"), "gpt-4o");
    }

    fn facts(assistant: i64, model: &str) -> InteractionFacts<'_> {
        InteractionFacts {
            assistant,
            model: Some(model),
            ..Default::default()
        }
    }

    #[test]
    fn assistants_beyond_the_cap_share_the_other_row() {
        let mut state = SeriesState::new();
        for key in 1..=MAX_ASSISTANTS as i64 {
            assert!(state.interaction(&facts(key, "m")).admitted);
        }
        let late = state.interaction(&facts(10_000, "m"));
        assert_eq!(
            late,
            Row {
                key: OTHER_KEY,
                admitted: false
            }
        );
        // The other row does not take an admitted assistant's place.
        assert_eq!(state.interaction(&facts(10_001, "m")).key, OTHER_KEY);
        assert_eq!(state.assistants[&OTHER_KEY].interactions, [2, 0]);
        assert_eq!(state.row_of_assistant(10_000), OTHER_KEY);
        assert_eq!(state.row_of_assistant(1), 1);
    }

    #[test]
    fn an_interaction_folds_into_every_series_of_its_row() {
        let mut state = SeriesState::new();
        let row = state.interaction(&InteractionFacts {
            assistant: 7,
            model: None,
            cache_hit: true,
            ttft_us: Some(840_000),
            total_us: Some(3_200_000),
            input_tokens: 1_830,
            output_tokens: 212,
            cached_input_tokens: 30,
            cost_nusd: 1_500,
            rerank_improvement_n: Some(-250_000_000),
            rerank_position_n: Some(2_500_000_000),
        });
        state.step(row.key, "retrieval", 310_000);
        let series = &state.assistants[&7];
        assert_eq!(series.interactions, [0, 1]);
        // 0.84 s: le=1.0 is the sixth bound.
        assert_eq!(series.ttft.counts()[5], 1);
        assert_eq!(series.ttft.sum_us(), 840_000);
        assert_eq!(series.total.count(), 1);
        assert_eq!(state.models.names(), ["unknown"]);
        assert_eq!(
            series.models[&0],
            Usage {
                input_tokens: 1_830,
                output_tokens: 212,
                cached_input_tokens: 30,
                cost_nusd: 1_500
            }
        );
        assert_eq!(
            series.rerank,
            Rerank {
                interactions: 1,
                gain_n: 0,
                loss_n: 250_000_000,
                positions: 1,
                position_n: 2_500_000_000
            }
        );
        assert_eq!(series.steps[&0].counts()[6], 1, "0.31 s is under le=0.5");
        let changes = state.take_changes();
        assert_eq!(changes.assistants, BTreeSet::from([7]));
        assert!(changes.labels);
        assert_eq!(state.take_changes(), Changes::default());
    }

    #[test]
    fn consecutive_failures_count_failures_after_the_latest_success() {
        let mut c = ConnectorSeries::default();
        c.sync(SyncOutcome::Failure, 10, None);
        c.sync(SyncOutcome::Failure, 20, None);
        assert_eq!(c.failures.count(), 2);
        c.sync(SyncOutcome::Partial, 25, None);
        assert_eq!(
            c.failures.count(),
            2,
            "a partial sync neither fails nor ends a run"
        );
        // A success dated between the failures ends the run before it only.
        c.sync(SyncOutcome::Success, 15, None);
        assert_eq!(c.failures.count(), 1);
        assert_eq!(c.last_success_us, Some(15));
        // A failure dated before the latest success is not part of the run.
        c.sync(SyncOutcome::Failure, 12, None);
        assert_eq!(c.failures.count(), 1);
        // An older success changes nothing.
        c.sync(SyncOutcome::Success, 5, Some(2_000_000));
        assert_eq!(c.failures.count(), 1);
        assert_eq!(c.last_success_us, Some(15));
        c.sync(SyncOutcome::Success, 30, None);
        assert_eq!(c.failures.count(), 0);
        assert_eq!(c.syncs, [3, 1, 3]);
        assert_eq!(c.duration.count(), 1);
    }

    #[test]
    fn a_long_failure_run_keeps_counting_beyond_the_kept_times() {
        let mut c = ConnectorSeries::default();
        let n = MAX_KEPT_FAILURES as i64 + 10;
        for t in 0..n {
            c.sync(SyncOutcome::Failure, t, None);
        }
        assert_eq!(c.failures.count(), n as u64);
        c.sync(SyncOutcome::Success, n, None);
        assert_eq!(c.failures.count(), 0);
    }
}
