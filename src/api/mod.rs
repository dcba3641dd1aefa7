//! The HTTP surface: routers per area composed into one, the auth layers, the
//! request span and latency metric, and FastAPI-shaped errors.

pub mod admin;
pub mod analytics;
pub mod assistants;
pub mod auth;
pub mod dashboard;
pub mod docs;
pub mod error;
pub mod health;
pub mod pricing;
pub mod query;
pub mod timeseries;
pub mod users;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::server::AppState;
use error::ApiError;

/// Plain requests may take this long; live streams are not under it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub fn router(state: AppState) -> Router {
    let auth = state.auth.clone();
    let analytics = Router::new()
        .route("/advanced", get(analytics::advanced))
        .route("/ttft", get(analytics::ttft))
        .route("/trending", get(analytics::trending))
        .route("/costs", get(analytics::costs))
        .route("/freshness", get(analytics::freshness))
        .route("/steps", get(analytics::steps))
        .route("/cache", get(analytics::cache))
        .route("/sessions", get(analytics::sessions))
        .route("/diversity", get(analytics::diversity))
        .route("/utilization", get(analytics::utilization))
        .route("/users", get(analytics::users))
        .route("/reranking", get(analytics::reranking))
        .route("/sync", get(analytics::sync));
    let admin = Router::new()
        .nest("/api/v1/analytics", analytics)
        .merge(dashboard_data())
        .route("/api/v1/pricing", get(pricing::catalogue))
        .route("/api/v1/pricing/unpriced", get(pricing::unpriced))
        .route(
            "/api/v1/pricing/reprice",
            post(pricing::reprice).get(pricing::reprice_status),
        )
        .route("/api/v1/admin/backup", post(admin::backup))
        .route("/api/v1/users/{user_id}", delete(users::erase))
        .route_layer(middleware::from_fn_with_state(
            auth.clone(),
            auth::admin_only,
        ));
    let ingest = Router::new()
        .route("/api/v1/ingest", post(crate::ingest::ingest))
        .route("/v1/traces", post(crate::otlp::receiver::traces))
        .route_layer(middleware::from_fn_with_state(auth, auth::ingest_only));
    let open = Router::new()
        .merge(dashboard::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", docs::ApiDoc::openapi()));
    // Live streams last as long as the client listens: outside the request timeout.
    let live = Router::new()
        .route("/api/v1/ws", get(crate::live::ws::handler))
        .route("/api/v1/analytics/stream", get(crate::live::sse::handler))
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::admin_header_or_query,
        ));
    let app = Router::new()
        .merge(admin)
        .merge(ingest)
        .merge(open)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .merge(live)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_common_layers(app, state)
}

/// Layers every route shares (live routes included): CORS, request metrics and spans.
pub fn with_common_layers(app: Router<AppState>, state: AppState) -> Router {
    let cors = cors(&state.settings.cors_origins);
    let app = app
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state);
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// `*` allows any origin (no credentials are ever allowed, so a page of
/// another origin still needs a token to read anything); otherwise the listed
/// origins, which [`crate::config`] has already validated.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let origins: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        if origins.is_empty() {
            return None;
        }
        AllowOrigin::list(origins)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::header::CONTENT_ENCODING,
            ]),
    )
}

/// A span and a latency sample per request, keyed by the matched route, never
/// by the raw URI: the URI may carry `?token=`.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    let span = tracing::info_span!("request", %method, route = %route);
    let started = Instant::now();
    let response = {
        let _enter = span.enter();
        tracing::debug!("started");
        drop(_enter);
        next.run(request).await
    };
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .telemetry
        .requests
        .get_or_create(&crate::telemetry::RouteLabel {
            method: method_label(&method).to_string(),
            route: route.clone(),
            status,
        })
        .observe(elapsed.as_secs_f64());
    tracing::info!(parent: &span, status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "finished");
    response
}

/// The method as a metric label: one of the standard methods, else `other`.
/// A client chooses the method string freely, so labelling the raw string
/// would let anyone add a histogram series per request, for ever.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".to_string())
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({"detail": "Method Not Allowed"})),
    )
        .into_response()
}

/// The reads only the dashboard needed: its charts' series and the assistant
/// list of its scope selector (admin token, like every read).
fn dashboard_data() -> Router<AppState> {
    Router::new()
        .route("/api/v1/analytics/timeseries", get(timeseries::timeseries))
        .route("/api/v1/assistants", get(assistants::assistants))
}
