//! `GET /api/v1/analytics/timeseries`: the dashboard's charts (requests,
//! TTFT p50/p95 and cache hit rate over time), bounded like every endpoint.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::analytics::metric_error;
use super::error::ApiError;
use super::query::Query;
use crate::analytics::timeseries::{MAX_BUCKETS, Timeseries, auto_bucket_minutes};
use crate::server::AppState;
use crate::time::Timestamp;

#[utoipa::path(get, path = "/api/v1/analytics/timeseries", tag = "analytics",
    params(
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 720, description = "Window, hours (default 24)"),
        ("bucket_minutes" = Option<i64>, Query, minimum = 1, maximum = 1440, description = "Bucket size, minutes; automatic when absent (the smallest of 1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440 giving at most 60 buckets). At most 2,000 buckets per window."),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses(
        (status = 200, description = "Every bucket of the window, empty ones included; percentiles and hit rate `null` where unknown", body = Timeseries),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail),
        (status = 422, body = super::docs::ValidationDetail),
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
    if let Some(minutes) = bucket {
        // One more than the quotient: an unaligned window starts mid-bucket.
        let buckets = (hours * 60 + minutes - 1) / minutes + 1;
        if buckets > MAX_BUCKETS {
            let raw = q.raw("bucket_minutes").unwrap_or_default().to_string();
            q.value_error(
                "bucket_minutes",
                &raw,
                &format!(
                    "{hours} hours in {minutes}-minute buckets is {buckets} buckets; at most {MAX_BUCKETS} are served, choose larger buckets"
                ),
            );
        }
    }
    q.finish()?;
    let bucket_minutes = bucket.unwrap_or_else(|| auto_bucket_minutes(hours));
    let series: Timeseries = state
        .analytics
        .timeseries(hours, bucket_minutes, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(Json(series).into_response())
}
