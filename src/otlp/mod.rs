//! OpenTelemetry trace ingestion: instrumented RAG apps export spans to
//! `POST /v1/traces` (OTLP/HTTP), and ragpulse turns each complete trace
//! into interactions. The flow: `receiver` (HTTP, limits, answers) →
//! `decode` (body → OTLP request) → `facts` (each span reduced to what the
//! mapping reads) → the store's pending spans (same group commit as ingest)
//! → `finalizer` (complete traces) → `assemble` (facts → interaction
//! events) → the validation and writer of `/api/v1/ingest`.

pub mod assemble;
pub mod attrs;
pub mod decode;
pub mod facts;
pub mod finalizer;
mod members;
pub mod receiver;
pub mod telemetry;

#[cfg(test)]
mod interaction_tests;
#[cfg(test)]
mod mapping_tests;

use std::time::Duration;

/// How traces are held and bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OtlpSettings {
    /// A trace is complete once no span of it arrived for this long.
    pub settle: Duration,
    /// ... or once it has been pending this long.
    pub max_hold: Duration,
    /// Pending spans at most; beyond, exports are answered 429.
    pub max_pending_spans: usize,
    /// Spans of one trace at most; beyond, its new spans are refused.
    pub max_trace_spans: usize,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(15),
            max_hold: Duration::from_secs(120),
            max_pending_spans: 2_000_000,
            max_trace_spans: 10_000,
        }
    }
}
