//! Liveness, readiness and Prometheus metrics: no token, no data beyond counters.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::AppState;

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = Object)))]
pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers and accepts writes", body = Object),
        (status = 503, description = "Not ready: the reason is in `detail`", body = super::docs::Detail),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    // State kept current in the background: no read queue, no I/O here.
    match state.store.readiness() {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(reason) => not_ready(&reason),
    }
}

fn not_ready(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"detail": format!("not ready: {reason}")})),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state
        .telemetry
        .writer_queue_depth
        .set(state.store.queued_events() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.telemetry.render(),
    )
        .into_response()
}
