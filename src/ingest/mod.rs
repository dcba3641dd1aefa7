//! `POST /api/v1/ingest`: decode the body, validate every event, hand the valid
//! ones to the store's writer and answer only once they are committed.

pub mod body;
pub mod decode;
pub mod event;
pub mod interaction;
pub mod json;
pub mod validate;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::ApiError;
use crate::server::AppState;
use crate::store::{Batch, StoreError};
use crate::time::Timestamp;
use decode::{BodyLimits, DecodeError, Format};
use event::Event;
use validate::{EventLimits, Rejection};

/// One refused event: its position and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RejectedEvent {
    pub index: usize,
    pub error: String,
}

/// The answer to an ingest request (200 when nothing was rejected, else 207).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IngestResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<RejectedEvent>,
}

/// The events of a body that passed validation, and the rest.
pub struct Checked {
    pub valid: Vec<(usize, Event)>,
    pub rejected: Vec<RejectedEvent>,
}

/// Decodes and validates a whole body (CPU work: run it off the async threads).
pub fn check_body(
    body: &[u8],
    gzip: bool,
    format: Format,
    body_limits: &BodyLimits,
    event_limits: &EventLimits,
    now_us: i64,
) -> Result<Checked, DecodeError> {
    let mut checked = Checked {
        valid: Vec::new(),
        rejected: Vec::new(),
    };
    // Each event is validated as soon as it is read, so only one parsed
    // value is alive at a time (see `decode`).
    decode::decode_each(body, gzip, format, body_limits, |index, slot| {
        if decode::is_blank(&slot) {
            return;
        }
        let result = slot
            .map_err(Rejection)
            .and_then(|value| validate::validate(&value, event_limits, now_us));
        match result {
            Ok(event) => checked.valid.push((index, event)),
            Err(Rejection(error)) => checked.rejected.push(RejectedEvent { index, error }),
        }
    })?;
    Ok(checked)
}

/// Decodes and validates one NDJSON line exactly as a line of an ingest body
/// is (`import` reads files with it); `None` for a blank line.
pub fn check_line(
    line: &[u8],
    event_limits: &EventLimits,
    now_us: i64,
) -> Option<Result<Event, String>> {
    let slot = decode::ndjson_event(line);
    if decode::is_blank(&slot) {
        return None;
    }
    Some(slot.and_then(|json| {
        validate::validate(&json, event_limits, now_us).map_err(|Rejection(error)| error)
    }))
}

/// Validates already-parsed events and stores the valid ones, without HTTP:
/// the path of the demo's generator.
pub async fn ingest_values(
    store: &dyn crate::store::Store,
    values: Vec<(usize, serde_json::Value)>,
    limits: &EventLimits,
) -> Result<IngestResponse, StoreError> {
    let now = Timestamp::now().micros();
    let mut valid = Vec::with_capacity(values.len());
    let mut rejected = Vec::new();
    for (index, value) in values {
        match validate::validate(&json::Json::borrow(&value), limits, now) {
            Ok(event) => valid.push((index, event)),
            Err(Rejection(error)) => rejected.push(RejectedEvent { index, error }),
        }
    }
    let outcome = if valid.is_empty() {
        Default::default()
    } else {
        store.append(Batch { events: valid }).await?
    };
    Ok(IngestResponse {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        rejected,
    })
}

/// A short, bounded label for `/metrics`: the field path without indices.
pub fn rejection_reason(message: &str) -> String {
    let field = message.split(':').next().unwrap_or("event");
    if field.contains(' ') {
        return "event".to_string();
    }
    let mut reason = String::with_capacity(field.len());
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            c if !in_index => reason.push(c),
            _ => {}
        }
    }
    reason
}

#[utoipa::path(
    post,
    path = "/api/v1/ingest",
    tag = "ingest",
    request_body(
        description = "`application/json` `{\"events\": [...]}` or `application/x-ndjson` (one event object per line), optionally `Content-Encoding: gzip`. See docs/ingest.md.",
        content(
            (crate::api::docs::IngestRequest = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "Every event valid and committed", body = IngestResponse),
        (status = 207, description = "Some events rejected; the valid ones are committed", body = IngestResponse),
        (status = 400, description = "The body cannot be read", body = crate::api::docs::Detail),
        (status = 408, description = "The body arrived slower than 64 KiB/s after its first 5 s", body = crate::api::docs::Detail),
        (status = 401, description = "Missing or wrong token", body = crate::api::docs::Detail),
        (status = 413, description = "Body or event count over the limit", body = crate::api::docs::Detail),
        (status = 415, description = "Unsupported content type or encoding", body = crate::api::docs::Detail),
        (status = 503, description = "Write queue full or shutting down; retry after `Retry-After` seconds", body = crate::api::docs::Detail),
    ),
    security(("bearer" = []))
)]
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = content_format(&headers)?;
    let gzip = content_gzip(&headers)?;
    let limit = state.settings.body_limits.max_body_bytes;
    // A declared length over the limit is refused before any of the body is
    // read: a client that sent `Expect: 100-continue` then sends none of it.
    if content_length(&headers).is_some_and(|length| length > limit as u64) {
        return Err(body::too_large(limit));
    }
    // The body first, at a minimum rate and within the shared byte budget,
    // then a decode slot: a slow sender never holds a slot. The slot bounds
    // the parsed values (many times the text) while they are in memory, and
    // is released before the wait for the writer (whose queue has its own bound).
    let declared = content_length(&headers);
    let (bytes, _budget) = body::read(body, declared, limit, &state.ingest_bytes).await?;
    let slot = state
        .ingest_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Unavailable {
            message: "the server is shutting down; retry against the restarted server".to_string(),
            retry_after_s: 5,
        })?;
    let settings = state.settings.clone();
    let now = Timestamp::now().micros();
    let checked = tokio::task::spawn_blocking(move || {
        check_body(
            &bytes,
            gzip,
            format,
            &settings.body_limits,
            &settings.event_limits,
            now,
        )
    })
    .await
    .map_err(|e| ApiError::Internal(format!("validation task failed: {e}")))?
    .map_err(|e| match e {
        DecodeError::BadBody(m) => ApiError::BadRequest(m),
        DecodeError::TooLarge(m) => ApiError::PayloadTooLarge(m),
    })?;
    drop(slot);
    respond(&state, checked).await
}

async fn respond(state: &AppState, checked: Checked) -> Result<Response, ApiError> {
    for rejection in &checked.rejected {
        state
            .telemetry
            .count_rejection(&rejection_reason(&rejection.error));
    }
    let mut answer = IngestResponse {
        accepted: 0,
        duplicates: 0,
        rejected: checked.rejected,
    };
    if !checked.valid.is_empty() {
        let outcome = state
            .store
            .append(Batch {
                events: checked.valid,
            })
            .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => return Err(store_error(state, error).await),
        };
        answer.accepted = outcome.accepted;
        answer.duplicates = outcome.duplicates;
        answer.rejected.extend(
            outcome
                .rejected
                .into_iter()
                .map(|(index, error)| RejectedEvent { index, error }),
        );
        answer.rejected.sort_by_key(|r| r.index);
    }
    let status = if answer.rejected.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, axum::Json(answer)).into_response())
}

async fn store_error(state: &AppState, error: StoreError) -> ApiError {
    match error {
        StoreError::QueueFull => {
            state.telemetry.ingest_overloaded.inc();
            ApiError::Unavailable {
                message: "the write queue is full; retry after the Retry-After delay".to_string(),
                retry_after_s: 1,
            }
        }
        StoreError::ShuttingDown => ApiError::Unavailable {
            message: "the server is shutting down; retry against the restarted server".to_string(),
            retry_after_s: 5,
        },
        e if e.is_unavailable() => {
            // Name the cause (full disk, read-only file system, a lock held by
            // another process) so the operator knows what to fix.
            let store = state.store.clone();
            let cause = tokio::task::spawn_blocking(move || store.write_fault())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| e.to_string());
            ApiError::Unavailable {
                message: format!(
                    "storage is unavailable: {cause}; nothing of this batch was stored"
                ),
                retry_after_s: 5,
            }
        }
        e => ApiError::Internal(e.to_string()),
    }
}

fn content_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Format::from_content_type(value).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "unsupported content type {value:?}; send application/json or application/x-ndjson"
        ))
    })
}

fn content_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    let value = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match value.as_str() {
        "gzip" | "x-gzip" => Ok(true),
        "identity" | "" => Ok(false),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported content encoding {other:?}; send gzip or no encoding"
        ))),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_reasons_drop_indices_and_are_bounded() {
        assert_eq!(rejection_reason("steps[3].name: bad"), "steps.name");
        assert_eq!(rejection_reason("timestamp: bad"), "timestamp");
        assert_eq!(
            rejection_reason("event must be a JSON object, got a number"),
            "event"
        );
        assert_eq!(rejection_reason("line is not valid JSON: x"), "event");
    }
}
