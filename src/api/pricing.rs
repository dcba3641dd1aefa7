//! `/api/v1/pricing`: the effective price catalogue, and the models that
//! arrived without a price (so their cost of 0 is never silent).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::error::ApiError;
pub use crate::metrics::models::UnpricedModel;
use crate::server::AppState;
use crate::store::interface::RepriceState;
use crate::store::{Lane, ReadOptions, ReadPath, StoreError};
use crate::time::Timestamp;

/// Registry reads: no window, so no read path applies and no deadline.
const UNTIMED: ReadOptions = ReadOptions {
    path: ReadPath::Rollups,
    deadline: None,
};

#[utoipa::path(get, path = "/api/v1/pricing", tag = "pricing",
    responses((status = 200, description = "Every price entry in effect (built-in and --pricing-file), USD per million tokens", body = Object),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn catalogue(State(state): State<AppState>) -> Response {
    let entries: Vec<_> = state.catalogue.entries().collect();
    Json(serde_json::json!({ "entries": entries })).into_response()
}

#[utoipa::path(get, path = "/api/v1/pricing/unpriced", tag = "pricing",
    responses((status = 200, description = "Models stored with cost 0 because no price matched; add them to a --pricing-file", body = [UnpricedModel]),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail),
        (status = 503, description = "The readers are busy: retry after `Retry-After`", body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn unpriced(State(state): State<AppState>) -> Result<Response, ApiError> {
    let models = state
        .store
        .read_with(Lane::Dashboard, UNTIMED, |view| view.unpriced_models())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::ReadersBusy => super::analytics::readers_busy(),
            e => ApiError::Internal(e.to_string()),
        })?;
    Ok(Json(models).into_response())
}

/// The body of a reprice request.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
pub struct RepriceBody {
    /// `YYYY-MM-DD` (UTC midnight) or an RFC 3339 timestamp: interactions from then on.
    #[schema(schema_with = date_or_timestamp, example = "2026-11-01")]
    pub since: String,
    /// Only this model (compared after name normalisation).
    pub model: Option<String>,
}

/// `since` in the API document: exactly what [`parse_since`] takes.
fn date_or_timestamp() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    OneOfBuilder::new()
        .item(string(KnownFormat::Date))
        .item(string(KnownFormat::DateTime))
        .build()
        .into()
}

/// A date (UTC midnight) or an RFC 3339 timestamp, in microseconds.
pub fn parse_since(text: &str) -> Option<i64> {
    if let Some(ts) = Timestamp::parse_rfc3339(text) {
        return Some(ts.0);
    }
    let date = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// How long `POST /api/v1/pricing/reprice` waits for the reprice to end
/// before it answers 202 and lets it go on in the background.
const REPRICE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[utoipa::path(post, path = "/api/v1/pricing/reprice", tag = "pricing",
    request_body = RepriceBody,
    responses(
        (status = 200, description = "Catalogue costs recomputed with the prices now in effect; client-sent costs untouched", body = crate::store::interface::RepriceReport),
        (status = 202, description = "Still running after 20 s: it goes on in the background, one day per transaction; follow it at GET /api/v1/pricing/reprice", body = crate::store::interface::RepriceStatus),
        (status = 400, body = super::docs::Detail),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail),
        (status = 409, description = "A reprice is already running", body = super::docs::Detail),
        (status = 422, body = super::docs::ValidationDetail),
        (status = 503, description = "The store is unavailable or the readers are busy: retry after `Retry-After`", body = super::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn reprice(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: RepriceBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"since\": \"YYYY-MM-DD\", \"model\": optional}}: {e}"
        ))
    })?;
    let Some(since) = parse_since(&body.since) else {
        return Err(ApiError::Validation(vec![serde_json::json!({
            "type": "datetime_parsing",
            "loc": ["body", "since"],
            "msg": "Input should be a valid date (YYYY-MM-DD) or RFC 3339 timestamp",
            "input": body.since,
        })]));
    };
    if state.store.reprice_status().state == RepriceState::Running {
        return Err(reprice_error(StoreError::RepriceRunning));
    }
    let request = crate::store::interface::RepriceRequest {
        since,
        model: body.model,
    };
    // The reprice belongs to the server, not to this request: it goes on if
    // the client leaves or the wait below ends.
    let store = state.store.clone();
    let mut job = tokio::spawn(async move {
        let report = store.reprice(request).await;
        if let Ok(report) = &report {
            tracing::info!(
                changed = report.interactions_changed,
                delta_usd = report.delta_usd,
                "repriced"
            );
        }
        report
    });
    match tokio::time::timeout(REPRICE_WAIT, &mut job).await {
        Ok(Ok(report)) => Ok(Json(report.map_err(reprice_error)?).into_response()),
        Ok(Err(error)) => Err(ApiError::Internal(format!(
            "the reprice task failed: {error}"
        ))),
        Err(_) => Ok((
            axum::http::StatusCode::ACCEPTED,
            Json(state.store.reprice_status()),
        )
            .into_response()),
    }
}

fn reprice_error(e: StoreError) -> ApiError {
    match e {
        StoreError::RepriceRunning => ApiError::Conflict(e.to_string()),
        StoreError::ReadersBusy => super::analytics::readers_busy(),
        e if e.is_unavailable() => ApiError::Unavailable {
            message: e.to_string(),
            retry_after_s: 5,
        },
        e => ApiError::Internal(e.to_string()),
    }
}

#[utoipa::path(get, path = "/api/v1/pricing/reprice", tag = "pricing",
    responses(
        (status = 200, description = "The running or last reprice: its state, its days done of the days in its range, and what moved so far", body = crate::store::interface::RepriceStatus),
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn reprice_status(State(state): State<AppState>) -> Response {
    Json(state.store.reprice_status()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_a_timestamp() {
        assert_eq!(
            parse_since("2026-11-01"),
            Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").map(|t| t.0)
        );
        assert_eq!(
            parse_since("2026-11-01T02:00:00+02:00"),
            Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").map(|t| t.0)
        );
        assert_eq!(parse_since("yesterday"), None);
    }
}
