//! The OpenAPI document (utoipa) served at `/openapi.json`, and the Swagger UI
//! page at `/docs` whose assets are embedded in the binary.

use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// FastAPI's error body: `{"detail": "<message>"}`.
#[derive(Serialize, ToSchema)]
pub struct Detail {
    pub detail: String,
}

/// One entry of a 422 answer, as FastAPI writes it.
#[derive(Serialize, ToSchema)]
pub struct ValidationEntry {
    /// `less_than_equal`, `greater_than_equal`, `int_parsing`, `uuid_parsing` or `enum`.
    #[schema(example = "less_than_equal")]
    pub r#type: String,
    /// `["query", "<parameter>"]`.
    pub loc: Vec<String>,
    pub msg: String,
    /// The parameter's raw text.
    pub input: String,
    /// `{"le": 168}`, `{"ge": 1}`, `{"expected": "..."}` or `{"error": "..."}`.
    #[schema(value_type = Option<Object>)]
    pub ctx: Option<serde_json::Value>,
}

/// A 422 answer.
#[derive(Serialize, ToSchema)]
pub struct ValidationDetail {
    pub detail: Vec<ValidationEntry>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ragpulse",
        description = "Analytics for RAG assistant platforms: ingest telemetry, read every metric of the admin dashboard. Reads need the admin token; ingestion the ingest (or admin) token, as `Authorization: Bearer <token>`."
    ),
    paths(
        crate::ingest::ingest,
        crate::api::analytics::advanced,
        crate::api::analytics::ttft,
        crate::api::analytics::trending,
        crate::api::analytics::costs,
        crate::api::analytics::freshness,
        crate::api::analytics::steps,
        crate::api::analytics::cache,
        crate::api::analytics::sessions,
        crate::api::analytics::diversity,
        crate::api::analytics::utilization,
        crate::api::analytics::users,
        crate::api::analytics::reranking,
        crate::api::analytics::sync,
        crate::api::timeseries::timeseries,
        crate::api::assistants::assistants,
        crate::live::ws::handler,
        crate::live::sse::handler,
        crate::api::pricing::catalogue,
        crate::api::pricing::unpriced,
        crate::api::pricing::reprice,
        crate::api::health::healthz,
        crate::api::health::readyz,
        crate::api::health::metrics,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "ingest", description = "Telemetry from RAG platforms"),
        (name = "analytics", description = "The dashboard's metrics"),
        (name = "live", description = "Live snapshots over WebSocket and Server-Sent Events"),
        (name = "pricing", description = "The price catalogue and unpriced models"),
        (name = "operations", description = "Health, readiness and Prometheus metrics"),
    )
)]
pub struct ApiDoc;
