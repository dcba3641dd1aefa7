//! Prometheus counters and histograms served at `/metrics`. One registry per
//! server instance (not a global), so several servers in one test process
//! keep separate counts. Label values that come from clients are capped.
//! This module holds ragpulse's own health; `rag` the platform's series.

pub mod rag;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::AppendOutcome;

/// At most this many distinct client-supplied label values; the rest are `other`.
const MAX_CLIENT_LABELS: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: ClientText,
}

/// A label value a client chose (a model name): escaped when encoded, since
/// prometheus-client writes label values as given and a quote or a newline
/// would otherwise end the line and let the client write series of its own.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ClientText(pub String);

impl prometheus_client::encoding::EncodeLabelValue for ClientText {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        rag::Escaped(&self.0).encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetricLabel {
    pub metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

pub struct Telemetry {
    registry: Registry,
    pub events_accepted: Counter,
    pub events_duplicate: Counter,
    pub events_rejected: Family<ReasonLabel, Counter>,
    pub unpriced: Family<ModelLabel, Counter>,
    unpriced_seen: Mutex<HashSet<String>>,
    pub writer_queue_depth: Gauge,
    pub commit_seconds: Histogram,
    pub commit_failures: Counter,
    pub metric_failures: Family<MetricLabel, Counter>,
    pub metric_seconds: Family<MetricLabel, Histogram>,
    pub requests: Family<RouteLabel, Histogram>,
    pub ingest_overloaded: Counter,
    pub ws_clients: Gauge,
    pub sse_clients: Gauge,
    pub snapshots_sent: Counter,
    pub slow_client_disconnects: Counter,
    pub broadcast_computations: Counter,
    pub broadcast_failures: Counter,
    pub broadcast_seconds: Histogram,
    /// Rows deleted by retention, by table (`interactions`, `phrasings`, `topics`).
    pub retention_deleted: Family<TableLabel, Counter>,
    /// When the last retention run ended (seconds since the Unix epoch; 0: none yet).
    pub retention_last_run: Gauge,
    /// Users erased.
    pub erasures: Counter,
    /// OTLP trace ingestion (`ragpulse_otlp_*`).
    pub otlp: crate::otlp::telemetry::OtlpMetrics,
    /// The RAG series (assistants, connectors, documents), fed by the writer.
    pub rag: Arc<rag::RagSeries>,
    /// The size of the last exposition: the next one is written into a
    /// buffer that large, instead of one that doubles (and copies) its way
    /// up to a megabyte with many assistants.
    last_render_bytes: AtomicUsize,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ragpulse");
        let t = Self {
            events_accepted: Counter::default(),
            events_duplicate: Counter::default(),
            events_rejected: Family::default(),
            unpriced: Family::default(),
            unpriced_seen: Mutex::new(HashSet::new()),
            writer_queue_depth: Gauge::default(),
            commit_seconds: latency_histogram(),
            commit_failures: Counter::default(),
            metric_failures: Family::default(),
            metric_seconds: Family::new_with_constructor(latency_histogram),
            requests: Family::new_with_constructor(latency_histogram),
            ingest_overloaded: Counter::default(),
            ws_clients: Gauge::default(),
            sse_clients: Gauge::default(),
            snapshots_sent: Counter::default(),
            slow_client_disconnects: Counter::default(),
            broadcast_computations: Counter::default(),
            broadcast_failures: Counter::default(),
            broadcast_seconds: latency_histogram(),
            retention_deleted: Family::default(),
            retention_last_run: Gauge::default(),
            erasures: Counter::default(),
            otlp: Default::default(),
            rag: Arc::new(rag::RagSeries::default()),
            last_render_bytes: AtomicUsize::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "events_accepted",
            "Events stored or upserted",
            t.events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Interactions and syncs skipped as already stored",
            t.events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Events rejected, by reason",
            t.events_rejected.clone(),
        );
        registry.register(
            "unpriced_interactions",
            "Interactions stored with cost 0 because their model has no price",
            t.unpriced.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Events waiting for the writer (queued or being committed)",
            t.writer_queue_depth.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to write and fsync one group of batches",
            t.commit_seconds.clone(),
        );
        registry.register(
            "commit_failures",
            "Groups of batches whose commit failed",
            t.commit_failures.clone(),
        );
        registry.register(
            "metric_failures",
            "Metric computations that failed or timed out",
            t.metric_failures.clone(),
        );
        registry.register(
            "metric_seconds",
            "Time to compute one metric",
            t.metric_seconds.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency by matched route",
            t.requests.clone(),
        );
        registry.register(
            "ingest_overloaded",
            "Ingest requests refused with 503 because the write queue was full",
            t.ingest_overloaded.clone(),
        );
        registry.register(
            "ws_clients",
            "Connected WebSocket clients",
            t.ws_clients.clone(),
        );
        registry.register(
            "sse_clients",
            "Connected SSE clients",
            t.sse_clients.clone(),
        );
        registry.register(
            "snapshots_sent",
            "Live snapshots sent to clients",
            t.snapshots_sent.clone(),
        );
        registry.register(
            "slow_client_disconnects",
            "Live clients closed with 1013 (no pong, or a frame not accepted in time)",
            t.slow_client_disconnects.clone(),
        );
        registry.register(
            "broadcast_computations",
            "Live snapshot computations (one per tick per listened scope)",
            t.broadcast_computations.clone(),
        );
        registry.register(
            "broadcast_failures",
            "Live snapshot computations that failed (the last good snapshot was kept)",
            t.broadcast_failures.clone(),
        );
        registry.register(
            "broadcast_seconds",
            "Time to compute one live snapshot",
            t.broadcast_seconds.clone(),
        );
        registry.register(
            "retention_deleted_rows",
            "Rows deleted by retention, by table (interactions with their details, phrasings, topic texts)",
            t.retention_deleted.clone(),
        );
        registry.register(
            "retention_last_run_timestamp_seconds",
            "When the last retention run ended (Unix time; 0 before the first)",
            t.retention_last_run.clone(),
        );
        registry.register(
            "erasures",
            "Users whose data was erased",
            t.erasures.clone(),
        );
        t.otlp.register(&mut registry);
        registry.register_collector(Box::new(rag::RagCollector(t.rag.clone())));
        Self { registry, ..t }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let hint = self.last_render_bytes.load(Ordering::Relaxed);
        let mut out = String::with_capacity(hint + hint / 8);
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "could not encode metrics");
        }
        self.last_render_bytes.store(out.len(), Ordering::Relaxed);
        out
    }

    pub fn count_outcome(&self, outcome: &AppendOutcome) {
        self.events_accepted.inc_by(outcome.accepted as u64);
        self.events_duplicate.inc_by(outcome.duplicates as u64);
    }

    pub fn count_retained(&self, table: &str, rows: u64) {
        self.retention_deleted
            .get_or_create(&TableLabel {
                table: table.to_string(),
            })
            .inc_by(rows);
    }

    pub fn count_rejection(&self, reason: &str) {
        self.events_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn count_unpriced(&self, model: &str) {
        let label = self.capped(model);
        self.unpriced
            .get_or_create(&ModelLabel {
                model: ClientText(label),
            })
            .inc();
    }

    fn capped(&self, model: &str) -> String {
        let Ok(mut seen) = self.unpriced_seen.lock() else {
            return "other".to_string();
        };
        if seen.contains(model) {
            return model.to_string();
        }
        if seen.len() < MAX_CLIENT_LABELS {
            seen.insert(model.to_string());
            return model.to_string();
        }
        "other".to_string()
    }
}
