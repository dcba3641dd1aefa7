//! The OTLP receiver's and finalizer's Prometheus series, registered into
//! the server's registry under `ragpulse_otlp_*`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Default)]
pub struct OtlpMetrics {
    pub spans_received: Counter,
    pub spans_rejected: Family<ReasonLabel, Counter>,
    pub spans_late: Counter,
    pub spans_resent: Counter,
    pub spans_duplicate: Counter,
    pub requests_refused: Family<ReasonLabel, Counter>,
    pub traces: Family<OutcomeLabel, Counter>,
    pub interactions: Counter,
    pub interactions_rejected: Counter,
    pub documents_unresolved: Counter,
    pub pending_spans: Gauge,
    pub pending_traces: Gauge,
    pub pending_bytes: Gauge,
    pub pending_index_bytes: Gauge,
}

impl OtlpMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register(
            "otlp_spans_received",
            "OTLP spans received with valid ids",
            self.spans_received.clone(),
        );
        r.register(
            "otlp_spans_rejected",
            "OTLP spans refused in partial_success, by reason",
            self.spans_rejected.clone(),
        );
        r.register(
            "otlp_spans_late",
            "OTLP spans that arrived after their trace was finalised (not stored)",
            self.spans_late.clone(),
        );
        r.register(
            "otlp_spans_resent",
            "OTLP spans of a finalised trace received again (exporter retries)",
            self.spans_resent.clone(),
        );
        r.register(
            "otlp_spans_duplicate",
            "OTLP spans stored twice while pending, counted once at finalisation",
            self.spans_duplicate.clone(),
        );
        r.register(
            "otlp_requests_refused",
            "OTLP requests answered 429 or 503, by reason",
            self.requests_refused.clone(),
        );
        r.register(
            "otlp_traces",
            "Finalised OTLP traces, by outcome (interaction, no_interaction, rejected)",
            self.traces.clone(),
        );
        r.register(
            "otlp_interactions",
            "Interactions stored from OTLP traces",
            self.interactions.clone(),
        );
        r.register(
            "otlp_interactions_rejected",
            "Interactions of OTLP traces refused by validation (logged)",
            self.interactions_rejected.clone(),
        );
        r.register(
            "otlp_documents_unresolved",
            "Retrieved documents of OTLP spans whose id is not a UUID",
            self.documents_unresolved.clone(),
        );
        r.register(
            "otlp_pending_spans",
            "OTLP spans waiting for their trace to complete",
            self.pending_spans.clone(),
        );
        r.register(
            "otlp_pending_traces",
            "OTLP traces waiting to complete",
            self.pending_traces.clone(),
        );
        r.register(
            "otlp_pending_bytes",
            "Bytes of pending span facts on disk",
            self.pending_bytes.clone(),
        );
        r.register(
            "otlp_pending_index_bytes",
            "Memory of the index of pending traces, about",
            self.pending_index_bytes.clone(),
        );
    }

    pub fn count_trace(&self, outcome: &str) {
        self.traces
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn count_rejected_spans(&self, reason: &str, n: u64) {
        self.spans_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(n);
    }

    pub fn count_refused(&self, reason: &str) {
        self.requests_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn set_pending(&self, stats: crate::store::interface::PendingStats) {
        self.pending_spans.set(stats.spans as i64);
        self.pending_traces.set(stats.traces as i64);
        self.pending_bytes.set(stats.bytes as i64);
        self.pending_index_bytes.set(stats.index_bytes() as i64);
    }
}
