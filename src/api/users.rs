//! `DELETE /api/v1/users/{user_id}`: erases a person's data (see
//! `store::sqlite::erase`) on the writer, between ingest commits. The log
//! line says what was removed, never whose.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::ingest::event::UserId;
use crate::server::AppState;
use crate::store::StoreError;
use crate::store::interface::EraseReport;

#[utoipa::path(delete, path = "/api/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user's id as sent in events (a UUID in any case)")),
    responses(
        (status = 200, description = "Every interaction of the user, the question texts only they asked and their registry entry (name, e-mail) are deleted, and every metric is recomputed without them", body = EraseReport),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail),
        (status = 404, description = "The store knows no such user", body = super::docs::Detail),
        (status = 503, description = "The store is unavailable: retry after `Retry-After`", body = super::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn erase(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<Response, ApiError> {
    let Ok(user) = UserId::parse(&user_id) else {
        return Err(unknown());
    };
    // The erasure belongs to the server, not to this request: it finishes
    // if the client leaves.
    let store = state.store.clone();
    let telemetry = state.telemetry.clone();
    let job = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let report = store.erase_user(user.as_str().to_string()).await;
        if let Ok(Some(report)) = &report {
            telemetry.erasures.inc();
            tracing::info!(
                interactions = report.interactions,
                phrasings = report.phrasings,
                topics = report.topics,
                registry_entries = report.registry_entries,
                seconds = started.elapsed().as_secs_f64(),
                "erased a user's data"
            );
        }
        report
    });
    match job.await {
        Ok(Ok(Some(report))) => Ok(Json(report).into_response()),
        Ok(Ok(None)) => Err(unknown()),
        Ok(Err(error)) => Err(store_error(error)),
        Err(error) => Err(ApiError::Internal(format!(
            "the erasure task failed: {error}"
        ))),
    }
}

fn unknown() -> ApiError {
    ApiError::NotFound("no such user".to_string())
}

fn store_error(e: StoreError) -> ApiError {
    if e.is_unavailable() {
        ApiError::Unavailable {
            message: e.to_string(),
            retry_after_s: 5,
        }
    } else {
        ApiError::Internal(e.to_string())
    }
}
