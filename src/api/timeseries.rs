//! `GET /api/v1/analytics/timeseries`: the dashboard's charts (requests,
//! TTFT p50/p95 and cache hit rate over time), bounded like every endpoint.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::analytics::metric_error;
use super::error::ApiError;
use super::query::Query;
use crate::metrics::timeseries::{Timeseries, auto_bucket_minutes, fit_bucket_minutes};
use crate::server::AppState;
use crate::time::Timestamp;

#[utoipa::path(get, path = "/api/v1/analytics/timeseries", tag = "analytics",
    params(
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 720, description = "Window, hours (default 24)"),
        ("bucket_minutes" = Option<i64>, Query, minimum = 1, maximum = 1440, description = "Bucket size, minutes; automatic when absent (the smallest of 1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440 giving at most 60 buckets). A size that would make more than 2,000 buckets is widened to the smallest that makes at most 2,000 (the answer's `bucket_minutes` is the size used)."),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses(
        (status = 200, description = "Every bucket of the window, empty ones included; percentiles and hit rate `null` where unknown", body = Timeseries),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail),
        (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or the read took longer than the metric timeout", body = super::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn timeseries(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut q = Query::parse(raw.as_deref());
    let hours = q.int("hours", 24, 1, 720);
    let bucket = q.optional_int("bucket_minutes", 1, 1440);
    let assistant = q.uuid("assistant_id");
    q.finish()?;
    // A schema-valid request is served: a size that would cut the window into
    // more than MAX_BUCKETS is widened, and the answer says which size it used.
    let bucket_minutes = match bucket {
        Some(minutes) => fit_bucket_minutes(hours, minutes),
        None => auto_bucket_minutes(hours),
    };
    let series: Timeseries = state
        .analytics
        .timeseries(hours, bucket_minutes, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(Json(series).into_response())
}
