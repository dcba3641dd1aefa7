//! `/api/v1/pricing`: the effective price catalogue, and the models that
//! arrived without a price (so their cost of 0 is never silent).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::server::AppState;
use crate::time::Timestamp;

/// A model seen in interactions that the catalogue could not price.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnpricedModel {
    /// The model as sent (or the assistant's registered model); `(none)` when neither named one.
    pub model: String,
    /// Interactions stored with cost 0 for lack of a price.
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

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
        (status = 401, body = super::docs::Detail), (status = 403, body = super::docs::Detail)),
    security(("bearer" = [])))]
pub async fn unpriced(State(state): State<AppState>) -> Result<Response, ApiError> {
    let models = state
        .store
        .read(crate::store::sqlite::read::unpriced_models)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(models).into_response())
}
