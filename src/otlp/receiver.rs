//! `POST /v1/traces`: OTLP/HTTP trace exports (protobuf or JSON, gzip or
//! deflate), answered as the OTLP specification says: `200` once the spans
//! are committed as pending, with `partial_success` counting the spans
//! refused one by one; `400` for an undecodable body, `413` over the body or
//! span limit, `415` for another content type or encoding, `429` while the
//! pending spans are at their bound and `503` while the writer's queue is
//! full (both with `Retry-After`). The answer uses the request's encoding.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::decode::{self, Compression, DecodeError, Encoding};
use super::facts::{self, SpanProblem, TraceRow};
use super::telemetry::OtlpMetrics;
use crate::server::AppState;
use crate::store::StoreError;
use crate::store::interface::{SpanAppend, SpanGroup, TraceId};
use crate::time::Timestamp;

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A pending row being built: its span ids and facts.
type Row = (Vec<[u8; 8]>, TraceRow);

/// The spans of a request, read and reduced to their facts.
#[derive(Debug, Default)]
pub struct Prepared {
    pub groups: Vec<SpanGroup>,
    /// Spans with valid ids.
    pub spans: usize,
    /// Spans refused, with the first message of each kind.
    pub rejected: usize,
    pub problems: Vec<String>,
    /// Refused spans by reason (a label of `/metrics`).
    pub rejected_by: Vec<(&'static str, usize)>,
}

/// Decodes a body and reduces its spans to facts (CPU work: run it off the
/// async threads). `max_spans` bounds the spans of one request.
pub fn prepare(
    body: &[u8],
    encoding: Encoding,
    compression: Compression,
    max_body_bytes: usize,
    max_spans: usize,
) -> Result<Prepared, DecodeError> {
    let bytes = decode::inflate(body, compression, max_body_bytes)?;
    let request = decode::decode(&bytes, encoding)?;
    drop(bytes);
    let total: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    if total > max_spans {
        return Err(DecodeError::TooLarge(format!(
            "the request has {total} spans, more than the limit of {max_spans}; export smaller batches"
        )));
    }
    let mut prepared = Prepared::default();
    // (trace, resource) → its row; a request's spans of one trace and
    // resource become one pending row.
    let mut rows: foldhash::HashMap<(TraceId, usize), Row> = foldhash::HashMap::default();
    let mut order: Vec<(TraceId, usize)> = Vec::new();
    for (r, resource_spans) in request.resource_spans.iter().enumerate() {
        let resource = match facts::resource_facts(
            resource_spans
                .resource
                .as_ref()
                .map_or(&[][..], |r| &r.attributes[..]),
        ) {
            Ok(resource) => resource,
            Err(problem) => {
                let n = resource_spans
                    .scope_spans
                    .iter()
                    .map(|s| s.spans.len())
                    .sum();
                prepared.refuse(&problem, n);
                continue;
            }
        };
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            let facts = facts::trace_id(span).and_then(|t| Ok((t, facts::span_facts(span)?)));
            let (trace, facts) = match facts {
                Ok(ok) => ok,
                Err(problem) => {
                    prepared.refuse(&problem, 1);
                    continue;
                }
            };
            prepared.spans += 1;
            let entry = rows.entry((trace, r)).or_insert_with(|| {
                order.push((trace, r));
                (
                    Vec::new(),
                    TraceRow {
                        resource: resource.clone(),
                        spans: Vec::new(),
                    },
                )
            });
            entry.0.push(facts.span_id);
            entry.1.spans.push(facts);
        }
    }
    let all_bad_ids = prepared.spans == 0
        && prepared.rejected > 0
        && prepared
            .rejected_by
            .iter()
            .all(|(reason, _)| matches!(*reason, "trace_id" | "span_id"));
    if all_bad_ids {
        return Err(DecodeError::BadBody(decode::no_valid_span_hint()));
    }
    for key in order {
        if let Some((span_ids, row)) = rows.remove(&key) {
            let facts = postcard::to_allocvec(&row)
                .map_err(|e| DecodeError::BadBody(format!("span facts: {e}")))?;
            let has_root = row
                .spans
                .iter()
                .any(|s| s.parent.is_none() || s.remote_parent);
            prepared.groups.push(SpanGroup {
                trace_id: key.0,
                span_ids,
                has_root,
                facts,
            });
        }
    }
    Ok(prepared)
}

impl Prepared {
    fn refuse(&mut self, problem: &SpanProblem, n: usize) {
        self.count(problem.reason(), n);
        let message = problem.message();
        if !self.problems.contains(&message) && self.problems.len() < 5 {
            self.problems.push(message);
        }
    }

    fn count(&mut self, reason: &'static str, n: usize) {
        self.rejected += n;
        match self.rejected_by.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += n,
            None => self.rejected_by.push((reason, n)),
        }
    }
}

/// An OTLP error answer.
#[derive(Debug)]
pub struct OtlpError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after_s: Option<u32>,
    pub encoding: Encoding,
}

impl OtlpError {
    fn new(status: StatusCode, message: impl Into<String>, encoding: Encoding) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_s: None,
            encoding,
        }
    }

    fn retry(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }
}

impl IntoResponse for OtlpError {
    fn into_response(self) -> Response {
        let body = match self.encoding {
            Encoding::Protobuf => Status {
                code: grpc_code(self.status),
                message: self.message,
            }
            .encode_to_vec(),
            Encoding::Json => serde_json::to_vec(&serde_json::json!({
                "code": grpc_code(self.status),
                "message": self.message,
            }))
            .unwrap_or_default(),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.encoding.content_type()),
        );
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The gRPC code of an HTTP status, for `google.rpc.Status.code`.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => 3,  // INVALID_ARGUMENT
        413 => 8,  // RESOURCE_EXHAUSTED
        415 => 3,  // INVALID_ARGUMENT
        429 => 8,  // RESOURCE_EXHAUSTED
        503 => 14, // UNAVAILABLE
        _ => 13,   // INTERNAL
    }
}

/// The success answer, with `partial_success` when spans were refused.
fn success(encoding: Encoding, rejected: usize, message: String) -> Response {
    let partial = (rejected > 0 || !message.is_empty()).then_some(ExportTracePartialSuccess {
        rejected_spans: rejected as i64,
        error_message: message,
    });
    let body = match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        // By hand: OTLP/JSON writes 64-bit integers as strings.
        Encoding::Json => {
            let value = match partial {
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedSpans": p.rejected_spans.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            serde_json::to_vec(&value).unwrap_or_default()
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}

#[utoipa::path(
    post,
    path = "/v1/traces",
    tag = "ingest",
    request_body(
        description = "An OTLP/HTTP ExportTraceServiceRequest: `application/x-protobuf`, or OTLP/JSON as `application/json`; optionally `Content-Encoding: gzip` (or `deflate`). See docs/otlp.md.",
        content(
            (crate::api::docs::OtlpTraces = "application/json"),
            (Vec<u8> = "application/x-protobuf"),
        )
    ),
    responses(
        (status = 200, description = "Every valid span committed as pending; `partialSuccess` counts the spans refused, with a message", body = crate::api::docs::OtlpResponse, content_type = "application/json"),
        (status = 400, description = "The body is not an OTLP trace export", body = crate::api::docs::OtlpStatus, content_type = "application/json"),
        (status = 401, description = "Missing or wrong token", body = crate::api::docs::Detail),
        (status = 413, description = "Body or span count over the limit", body = crate::api::docs::OtlpStatus, content_type = "application/json"),
        (status = 415, description = "Unsupported content type or encoding", body = crate::api::docs::Detail),
        (status = 429, description = "Too many pending spans; retry after `Retry-After` seconds", body = crate::api::docs::OtlpStatus, content_type = "application/json"),
        (status = 503, description = "Write queue full or shutting down; retry after `Retry-After` seconds", body = crate::api::docs::OtlpStatus, content_type = "application/json"),
    ),
    security(("bearer" = []))
)]
pub async fn traces(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match receive(&state, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn receive(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return Err(crate::api::error::ApiError::UnsupportedMediaType(format!(
            "unsupported content type {content_type:?}; send application/x-protobuf or application/json"
        ))
        .into_response());
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let Some(compression) = Compression::from_header(content_encoding) else {
        return Err(crate::api::error::ApiError::UnsupportedMediaType(format!(
            "unsupported content encoding {:?}; send gzip, deflate or no encoding",
            content_encoding.unwrap_or("")
        ))
        .into_response());
    };
    let fail = |status, message: String| OtlpError::new(status, message, encoding).into_response();
    let limit = state.settings.body_limits.max_body_bytes;
    let too_large = || format!("the body is larger than the limit of {limit} bytes");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(fail(StatusCode::PAYLOAD_TOO_LARGE, too_large()));
    }
    let Ok(slot) = state.ingest_slots.clone().acquire_owned().await else {
        return Err(shutting_down(encoding));
    };
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let is_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if is_limit {
            fail(StatusCode::PAYLOAD_TOO_LARGE, too_large())
        } else {
            fail(
                StatusCode::BAD_REQUEST,
                format!("could not read the body: {e}"),
            )
        }
    })?;
    let max_spans = state.settings.body_limits.max_events;
    let prepared = tokio::task::spawn_blocking(move || {
        prepare(&bytes, encoding, compression, limit, max_spans)
    })
    .await
    .map_err(|e| {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("decoding failed: {e}"),
        )
    })?
    .map_err(|e| match e {
        DecodeError::BadBody(m) => fail(StatusCode::BAD_REQUEST, m),
        DecodeError::TooLarge(m) => fail(StatusCode::PAYLOAD_TOO_LARGE, m),
    })?;
    drop(slot);
    store(state, prepared, encoding).await
}

async fn store(
    state: &AppState,
    mut prepared: Prepared,
    encoding: Encoding,
) -> Result<Response, Response> {
    let metrics: &OtlpMetrics = &state.telemetry.otlp;
    let otlp = &state.settings.otlp;
    let pending = state.store.pending();
    // Traces over their span bound: their new spans are refused.
    let mut over_trace_limit = 0;
    prepared.groups.retain(|group| {
        let keep =
            pending.trace_spans(&group.trace_id) + group.span_ids.len() <= otlp.max_trace_spans;
        if !keep {
            over_trace_limit += group.span_ids.len();
        }
        keep
    });
    if over_trace_limit > 0 {
        prepared.count("trace_spans", over_trace_limit);
        prepared.spans -= over_trace_limit;
        prepared.problems.push(format!(
            "{over_trace_limit} spans belong to traces over the limit of {} spans per trace",
            otlp.max_trace_spans
        ));
    }
    for (reason, n) in &prepared.rejected_by {
        metrics.count_rejected_spans(reason, *n as u64);
    }
    let incoming = prepared.spans;
    if incoming > 0 && pending.stats().spans + incoming > otlp.max_pending_spans {
        metrics.count_refused("pending_spans");
        let wait = otlp.settle.as_secs_f64().ceil().clamp(1.0, 60.0) as u32;
        return Err(OtlpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} spans are waiting for their traces to complete (the limit is {}); retry after {wait} s",
                pending.stats().spans,
                otlp.max_pending_spans
            ),
            encoding,
        )
        .retry(wait)
        .into_response());
    }
    let message = prepared.problems.join("; ");
    if !prepared.groups.is_empty() {
        let append = SpanAppend {
            groups: prepared.groups,
            received_us: Timestamp::now().micros(),
        };
        match state.store.append_spans(append).await {
            Ok(outcome) => {
                metrics.spans_received.inc_by(outcome.stored as u64);
                metrics.spans_late.inc_by(outcome.late as u64);
                metrics.spans_resent.inc_by(outcome.resent as u64);
            }
            Err(error) => return Err(store_error(state, error, encoding)),
        }
    }
    Ok(success(encoding, prepared.rejected, message))
}

fn shutting_down(encoding: Encoding) -> Response {
    OtlpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down; retry against the restarted server",
        encoding,
    )
    .retry(5)
    .into_response()
}

fn store_error(state: &AppState, error: StoreError, encoding: Encoding) -> Response {
    let metrics = &state.telemetry.otlp;
    match error {
        StoreError::QueueFull => {
            metrics.count_refused("queue_full");
            OtlpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the write queue is full; retry after the Retry-After delay",
                encoding,
            )
            .retry(1)
            .into_response()
        }
        StoreError::ShuttingDown => shutting_down(encoding),
        e if e.is_unavailable() => {
            metrics.count_refused("storage");
            OtlpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("storage is unavailable: {e}; nothing of this request was stored"),
                encoding,
            )
            .retry(5)
            .into_response()
        }
        e => {
            tracing::error!(error = %e, "storing OTLP spans failed");
            OtlpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
                encoding,
            )
            .into_response()
        }
    }
}
