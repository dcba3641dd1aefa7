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

/// The `status` filter of `/utilization`.
#[allow(
    dead_code,
    reason = "describes a request in the OpenAPI document; never built"
)]
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum StatusFilter {
    Hot,
    Warm,
    Cold,
}

/// The body of `POST /api/v1/ingest` as JSON: `{"events": [...]}`. Each
/// event should be an object whose `type` is one of docs/ingest.md's, but any
/// JSON value is taken at this level: an invalid event (even one that is not
/// an object) is rejected on its own in a 207, never the whole body.
#[allow(
    dead_code,
    reason = "describes a request in the OpenAPI document; never built"
)]
#[derive(ToSchema)]
pub struct IngestRequest {
    #[schema(value_type = Vec<Value>)]
    pub events: Vec<serde_json::Value>,
}

/// An OTLP/JSON `ExportTraceServiceRequest` (see the OpenTelemetry
/// protocol): `resourceSpans[].scopeSpans[].spans[]`, hex ids, 64-bit
/// integers as strings. Unknown fields are ignored.
#[allow(
    dead_code,
    reason = "describes a request in the OpenAPI document; never built"
)]
#[derive(ToSchema)]
pub struct OtlpTraces {
    #[serde(rename = "resourceSpans")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub resource_spans: Option<Vec<serde_json::Value>>,
}

/// The OTLP/JSON `ExportTracePartialSuccess`.
#[derive(Serialize, ToSchema)]
pub struct OtlpPartialSuccess {
    /// Spans refused, as a decimal string.
    #[serde(rename = "rejectedSpans")]
    pub rejected_spans: String,
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

/// The OTLP/JSON `ExportTraceServiceResponse`: `{}` when every span was
/// accepted.
#[derive(Serialize, ToSchema)]
pub struct OtlpResponse {
    #[serde(rename = "partialSuccess")]
    pub partial_success: Option<OtlpPartialSuccess>,
}

/// `google.rpc.Status` in OTLP/JSON: the body of an OTLP error answer.
#[derive(Serialize, ToSchema)]
pub struct OtlpStatus {
    pub code: i32,
    pub message: String,
}

/// Answers every route can give that the per-route annotations need not
/// repeat: the token errors of the protected routes, and the request timeout.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
        let detail = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                                "Detail",
                            ))))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if operation.security.is_some() {
                    responses
                        .entry("401".to_string())
                        .or_insert_with(|| detail("Missing or wrong token"));
                    if path != "/api/v1/ingest" && path != "/v1/traces" {
                        responses.entry("403".to_string()).or_insert_with(|| {
                            detail("The ingest token cannot read; use the admin token")
                        });
                    }
                }
                if path.starts_with("/api/v1/analytics/") {
                    responses.entry("503".to_string()).or_insert_with(|| {
                        detail("Storage unavailable or a metric over its timeout; retry after `Retry-After` seconds")
                    });
                }
                responses.entry("408".to_string()).or_insert_with(|| {
                    detail("The request took longer than the server's request timeout")
                });
            }
        }
    }
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
        crate::otlp::receiver::traces,
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
        crate::api::pricing::reprice_status,
        crate::api::admin::backup,
        crate::api::users::erase,
        crate::api::health::healthz,
        crate::api::health::readyz,
        crate::api::health::metrics,
    ),
    components(schemas(StatusFilter)),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "ingest", description = "Telemetry from RAG platforms"),
        (name = "analytics", description = "The dashboard's metrics"),
        (name = "live", description = "Live snapshots over WebSocket and Server-Sent Events"),
        (name = "pricing", description = "The price catalogue and unpriced models"),
        (name = "users", description = "Erasure of a person's data"),
        (name = "operations", description = "Health, readiness and Prometheus metrics"),
    )
)]
pub struct ApiDoc;
