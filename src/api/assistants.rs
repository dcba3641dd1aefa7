//! `GET /api/v1/assistants`: which assistants exist, for the dashboard's
//! scope selector (no metric lists assistants without activity in a window).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::analytics::metric_error;
use super::error::ApiError;
pub use crate::metrics::models::AssistantSummary;
use crate::server::AppState;

#[utoipa::path(get, path = "/api/v1/assistants", tag = "analytics",
    responses(
        (status = 200, description = "Every registered assistant and every assistant named by an interaction, by name then id", body = [AssistantSummary]),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or the read took longer than the metric timeout", body = super::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn assistants(State(state): State<AppState>) -> Result<Response, ApiError> {
    let list = state.analytics.assistants().await.map_err(metric_error)?;
    Ok(Json(list).into_response())
}
