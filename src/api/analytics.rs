//! The analytics endpoints: the five of the original and the eight metrics it
//! only computed inside `/advanced`. Handlers parse and bound the query, then
//! ask the analytics service.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::query::Query;
use crate::analytics::{AdvancedParams, MetricError, UtilizationStatus};
use crate::metrics::models::*;
use crate::server::AppState;
use crate::store::StoreError;
use crate::time::Timestamp;

pub(super) fn metric_error(error: MetricError) -> ApiError {
    match error {
        MetricError::Store(StoreError::ReadersBusy) => readers_busy(),
        MetricError::Timeout(metric) => ApiError::Unavailable {
            message: format!("computing {metric} took longer than the metric timeout"),
            retry_after_s: 5,
        },
        MetricError::Store(e) if e.is_unavailable() => ApiError::Unavailable {
            message: format!("storage is unavailable: {e}"),
            retry_after_s: 5,
        },
        other => ApiError::Internal(other.to_string()),
    }
}

/// The answer while every reader is busy and the reads waiting fill the queue.
pub(super) fn readers_busy() -> ApiError {
    ApiError::Unavailable {
        message: "too many reads are waiting for the readers; retry after the Retry-After delay"
            .to_string(),
        retry_after_s: 1,
    }
}

fn json<T: serde::Serialize>(value: T) -> Response {
    Json(value).into_response()
}

/// Phrasings listed per topic with `phrasings=true`.
const RECENT_PHRASINGS: usize = 10;

/// The reads of one `/advanced` (its twelve metrics).
const ADVANCED_READS: usize = 12;

/// `assistant_id`, the query parameter every metric but sync and freshness takes.
const ASSISTANT: &str = "assistant_id";

#[utoipa::path(get, path = "/api/v1/analytics/advanced", tag = "analytics",
    params(
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant's interactions"),
        ("ttft_hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "TTFT window, hours (default 24)"),
        ("step_days" = Option<i64>, Query, minimum = 1, maximum = 90, description = "Steps, sessions and sync window, days (default 7)"),
        ("cache_hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "Cache and reranking window, hours (default 24)"),
        ("cost_hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "Cost window, hours (default 24)"),
        ("trending_limit" = Option<i64>, Query, minimum = 1, maximum = 50, description = "Trending topics listed (default 10)"),
    ),
    responses(
        (status = 200, description = "Every metric; `degraded` lists the ones that failed", body = AdvancedAnalyticsResponse),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail),
        (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy: retry after `Retry-After`", body = super::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn advanced(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = advanced_params(raw.as_deref())?;
    // Its twelve reads are admitted together or not at all: a half-queued
    // `/advanced` would come back as "degraded" for no fault of the data.
    if !state.store.readers_have_room(ADVANCED_READS) {
        return Err(readers_busy());
    }
    let now = Timestamp::now();
    Ok(json(state.analytics.advanced(params, now).await))
}

/// `<window>` (with its default and upper bound) then `assistant_id`: the
/// query of most single-metric endpoints.
fn window_and_assistant(
    raw: Option<&str>,
    name: &str,
    default: i64,
    le: i64,
) -> Result<(i64, Option<uuid::Uuid>), ApiError> {
    let mut q = Query::parse(raw);
    let window = q.int(name, default, 1, le);
    let assistant = q.uuid(ASSISTANT);
    q.finish()?;
    Ok((window, assistant))
}

/// The `/advanced` query, also used by the live feed's defaults.
pub fn advanced_params(raw: Option<&str>) -> Result<AdvancedParams, ApiError> {
    let mut q = Query::parse(raw);
    let params = AdvancedParams {
        assistant: q.uuid(ASSISTANT),
        ttft_hours: q.int("ttft_hours", 24, 1, 168),
        step_days: q.int("step_days", 7, 1, 90),
        cache_hours: q.int("cache_hours", 24, 1, 168),
        cost_hours: q.int("cost_hours", 24, 1, 168),
        trending_limit: q.int("trending_limit", 10, 1, 50),
    };
    q.finish()?;
    Ok(params)
}

#[utoipa::path(get, path = "/api/v1/analytics/ttft", tag = "analytics",
    params(
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "Window, hours (default 24)"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses((status = 200, description = "Zeros when there is no value (as the original)", body = TtftPercentiles),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn ttft(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (hours, assistant) = window_and_assistant(raw.as_deref(), "hours", 24, 168)?;
    let value = state
        .analytics
        .ttft(hours, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value.unwrap_or(TtftPercentiles {
        p50: 0.0,
        p95: 0.0,
        p99: 0.0,
        period_hours: hours,
    })))
}

#[utoipa::path(get, path = "/api/v1/analytics/trending", tag = "analytics",
    params(
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant's topics"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 50, description = "Topics listed (default 10)"),
        ("days" = Option<i64>, Query, minimum = 1, maximum = 365, description = "Only questions of the last N days, with `growth`; all time when absent"),
        ("phrasings" = Option<bool>, Query, description = "Also list each topic's 10 latest distinct phrasings (`recent_phrasings`)"),
    ),
    responses((status = 200, body = [TrendingTopic]),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn trending(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut q = Query::parse(raw.as_deref());
    let assistant = q.uuid(ASSISTANT);
    let limit = q.int("limit", 10, 1, 50);
    let days = q.optional_int("days", 1, 365);
    let phrasings = q.boolean("phrasings").unwrap_or(false);
    q.finish()?;
    let value = state
        .analytics
        .trending_with_phrasings(
            assistant,
            limit,
            days,
            Timestamp::now(),
            phrasings.then_some(RECENT_PHRASINGS),
        )
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/costs", tag = "analytics",
    params(
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "Window, hours (default 24)"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses((status = 200, description = "Per assistant. Unpriced models cost 0 and are listed at /api/v1/pricing/unpriced; add a price with --pricing-file.", body = [AssistantCost]),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn costs(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (hours, assistant) = window_and_assistant(raw.as_deref(), "hours", 24, 168)?;
    let value = state
        .analytics
        .costs(hours, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/freshness", tag = "analytics",
    responses((status = 200, body = [DocumentFreshness]), (status = 401, body = super::docs::Detail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn freshness(State(state): State<AppState>) -> Result<Response, ApiError> {
    let value = state
        .analytics
        .freshness(Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/steps", tag = "analytics",
    params(
        ("days" = Option<i64>, Query, minimum = 1, maximum = 90, description = "Window, days (default 7)"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses((status = 200, body = [StepBreakdown]),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn steps(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (days, assistant) = window_and_assistant(raw.as_deref(), "days", 7, 90)?;
    let value = state
        .analytics
        .steps(days, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/cache", tag = "analytics",
    params(
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "Window, hours (default 24)"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses((status = 200, description = "`null` when no interaction in the window", body = Option<CacheMetrics>),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn cache(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (hours, assistant) = window_and_assistant(raw.as_deref(), "hours", 24, 168)?;
    let value = state
        .analytics
        .cache(hours, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/sessions", tag = "analytics",
    params(
        ("days" = Option<i64>, Query, minimum = 1, maximum = 90, description = "Window, days (default 7)"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses((status = 200, body = [SessionDistribution]),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn sessions(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (days, assistant) = window_and_assistant(raw.as_deref(), "days", 7, 90)?;
    let value = state
        .analytics
        .sessions(days, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/diversity", tag = "analytics",
    params(
        ("days" = Option<i64>, Query, minimum = 1, maximum = 365, description = "Only questions of the last N days; all time when absent"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant's topics"),
    ),
    responses((status = 200, description = "`null` when no question", body = Option<TopicDiversity>),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn diversity(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut q = Query::parse(raw.as_deref());
    let days = q.optional_int("days", 1, 365);
    let assistant = q.uuid(ASSISTANT);
    q.finish()?;
    let value = state
        .analytics
        .diversity(days, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/utilization", tag = "analytics",
    params(
        ("days" = Option<i64>, Query, minimum = 1, maximum = 90, description = "Window, days (default 30)"),
        ("status" = Option<super::docs::StatusFilter>, Query, description = "`hot`, `warm` or `cold`; retrieved documents when absent"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Documents listed (default 50)"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant's retrievals"),
    ),
    responses((status = 200, body = [DocumentUtilization]),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn utilization(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut q = Query::parse(raw.as_deref());
    let days = q.int("days", 30, 1, 90);
    let status = q.choice("status", &["hot", "warm", "cold"]);
    let limit = q.int("limit", 50, 1, 500);
    let assistant = q.uuid(ASSISTANT);
    q.finish()?;
    let status = status.map(|s| match s {
        "hot" => UtilizationStatus::Hot,
        "warm" => UtilizationStatus::Warm,
        _ => UtilizationStatus::Cold,
    });
    let value = state
        .analytics
        .utilization(days, status, limit, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/users", tag = "analytics",
    params(
        ("days" = Option<i64>, Query, minimum = 1, maximum = 90, description = "Window, days (default 30)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Users listed (default 10)"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses((status = 200, body = [UserStat]),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn users(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut q = Query::parse(raw.as_deref());
    let days = q.int("days", 30, 1, 90);
    let limit = q.int("limit", 10, 1, 100);
    let assistant = q.uuid(ASSISTANT);
    q.finish()?;
    let value = state
        .analytics
        .users(days, limit, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/reranking", tag = "analytics",
    params(
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "Window, hours (default 24)"),
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant"),
    ),
    responses((status = 200, description = "`null` when no interaction carries rerank data", body = Option<RerankingImpact>),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn reranking(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (hours, assistant) = window_and_assistant(raw.as_deref(), "hours", 24, 168)?;
    let value = state
        .analytics
        .reranking(hours, assistant, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}

#[utoipa::path(get, path = "/api/v1/analytics/sync", tag = "analytics",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 90, description = "Window, days (default 7)")),
    responses((status = 200, body = [ConnectorSyncRate]),
        (status = 401, body = super::docs::Detail), (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The readers are busy (retry after `Retry-After`), or a metric took longer than the metric timeout", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn sync(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut q = Query::parse(raw.as_deref());
    let days = q.int("days", 7, 1, 90);
    q.finish()?;
    let value = state
        .analytics
        .sync(days, Timestamp::now())
        .await
        .map_err(metric_error)?;
    Ok(json(value))
}
