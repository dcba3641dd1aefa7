//! The RAG series of `/metrics`: what the platform's assistants do (traffic,
//! latency, steps, tokens, cost, reranking, connector syncs), per assistant
//! and per connector, plus gauges over documents, sessions and topics.
//!
//! The writer folds every committed event into a [`state::SeriesState`] and,
//! after each commit, publishes the rows it changed here; a scrape encodes
//! the published rows (see `encode`) and never touches the store. Gauges
//! that need a scan (document freshness, cold documents, sessions, topic
//! diversity) and readiness are computed in the background (`crate::probes`)
//! and only read here, so a scrape stays fast whatever the store's size.

pub mod buckets;
mod encode;
pub mod state;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI8, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

pub use encode::{Escaped, RagCollector};
use state::{AssistantSeries, Changes, ConnectorSeries, OTHER, SeriesState, truncate};

/// The labels of an assistant's or a connector's series: its id and its
/// name (the id as text while it has none, as the API shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityLabel {
    pub id: String,
    pub name: String,
}

impl EntityLabel {
    pub fn new(id: Uuid, name: Option<&str>) -> Self {
        let id = id.to_string();
        let name = name.map_or_else(|| id.clone(), |n| truncate(n).to_string());
        Self { id, name }
    }

    /// The row of everything beyond a cap: `other` for both labels.
    pub fn other() -> Self {
        Self {
            id: OTHER.to_string(),
            name: OTHER.to_string(),
        }
    }
}

/// A published row: its labels and its series, shared with scrapes.
#[derive(Debug, Clone)]
pub struct Published<T> {
    pub label: Arc<EntityLabel>,
    pub series: Arc<T>,
}

/// What a scrape encodes: the rows as of the latest commit.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub assistants: BTreeMap<i64, Published<AssistantSeries>>,
    pub connectors: BTreeMap<i64, Published<ConnectorSeries>>,
    pub models: Arc<Vec<String>>,
    pub steps: Arc<Vec<String>>,
}

/// Gauges computed over windows in the background; see `crate::probes`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowGauges {
    /// When they were computed, µs since the epoch.
    pub computed_at_us: i64,
    /// Live documents: fresh (< 30 d), aging (30–90 d), stale.
    pub freshness: [u64; 3],
    /// Live documents no interaction retrieved in the last 30 days.
    pub cold_documents: u64,
    /// Sessions active in the last 7 days: 1 question, 2–5, 6 or more.
    pub sessions: [u64; 3],
    /// Topic diversity over all time, when any question has a topic.
    pub diversity: Option<Diversity>,
}

/// The all-time topic diversity, as `/diversity` reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diversity {
    pub score: f64,
    pub topics: u64,
    /// Percent of the questions in the largest topic.
    pub dominant_share: f64,
}

/// The RAG series of one server, registered in its [`super::Telemetry`].
#[derive(Debug, Default)]
pub struct RagSeries {
    view: Mutex<View>,
    windows: Mutex<Option<WindowGauges>>,
    /// -1 unknown (no probe yet), 0 not ready, 1 ready.
    ready: AtomicI8Default,
}

#[derive(Debug)]
struct AtomicI8Default(AtomicI8);

impl Default for AtomicI8Default {
    fn default() -> Self {
        Self(AtomicI8::new(-1))
    }
}

/// Rows changed by one commit, to publish.
#[derive(Debug, Default)]
pub struct Update {
    pub assistants: Vec<(i64, Published<AssistantSeries>)>,
    pub connectors: Vec<(i64, Published<ConnectorSeries>)>,
    /// New label lists, when an admission changed them.
    pub models: Option<Vec<String>>,
    pub steps: Option<Vec<String>>,
}

impl Update {
    /// The rows `changes` names, copied from `state`, with the labels
    /// `assistant` and `connector` give their keys.
    pub fn of(
        state: &SeriesState,
        changes: &Changes,
        assistant: impl Fn(i64) -> Arc<EntityLabel>,
        connector: impl Fn(i64) -> Arc<EntityLabel>,
    ) -> Self {
        let assistants = published(&changes.assistants, &state.assistants, assistant);
        let connectors = published(&changes.connectors, &state.connectors, connector);
        Self {
            assistants,
            connectors,
            models: changes.labels.then(|| state.models.names().to_vec()),
            steps: changes.labels.then(|| state.steps.names().to_vec()),
        }
    }
}

/// Copies of the rows `keys` names, with their labels.
fn published<T: Clone>(
    keys: &std::collections::BTreeSet<i64>,
    rows: &BTreeMap<i64, T>,
    label: impl Fn(i64) -> Arc<EntityLabel>,
) -> Vec<(i64, Published<T>)> {
    keys.iter()
        .filter_map(|&key| {
            let series = Arc::new(rows.get(&key)?.clone());
            Some((
                key,
                Published {
                    label: label(key),
                    series,
                },
            ))
        })
        .collect()
}

impl RagSeries {
    /// Replaces or adds the rows of `update` (and the label lists it carries).
    pub fn publish(&self, update: Update) {
        let Ok(mut view) = self.view.lock() else {
            return;
        };
        view.assistants.extend(update.assistants);
        view.connectors.extend(update.connectors);
        if let Some(models) = update.models {
            view.models = Arc::new(models);
        }
        if let Some(steps) = update.steps {
            view.steps = Arc::new(steps);
        }
    }

    /// Drops every published row (before a state is loaded afresh).
    pub fn clear(&self) {
        if let Ok(mut view) = self.view.lock() {
            *view = View::default();
        }
    }

    /// A copy of the published rows: their `Arc`s, so the lock is held for
    /// a few pointer copies and a scrape never delays a commit.
    pub fn view(&self) -> View {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn set_windows(&self, gauges: WindowGauges) {
        if let Ok(mut windows) = self.windows.lock() {
            *windows = Some(gauges);
        }
    }

    pub fn windows(&self) -> Option<WindowGauges> {
        self.windows.lock().ok().and_then(|w| w.clone())
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.0.store(i8::from(ready), Ordering::Relaxed);
    }

    /// `None` until the first readiness probe.
    pub fn ready(&self) -> Option<bool> {
        match self.ready.0.load(Ordering::Relaxed) {
            -1 => None,
            v => Some(v == 1),
        }
    }
}
