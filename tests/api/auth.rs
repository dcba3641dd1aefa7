//! Bearer tokens (`api.md`, Auth): reads need the admin token, ingestion the
//! ingest or the admin token; the token is checked before the parameters.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Clock, INGEST_TOKEN, TestApp, WRONG_TOKEN, interaction, new_id};

/// Every read route of the contract.
const READ_ROUTES: [&str; 15] = [
    "/api/v1/analytics/advanced",
    "/api/v1/analytics/ttft",
    "/api/v1/analytics/trending",
    "/api/v1/analytics/costs",
    "/api/v1/analytics/freshness",
    "/api/v1/analytics/steps",
    "/api/v1/analytics/cache",
    "/api/v1/analytics/sessions",
    "/api/v1/analytics/diversity",
    "/api/v1/analytics/utilization",
    "/api/v1/analytics/users",
    "/api/v1/analytics/reranking",
    "/api/v1/analytics/sync",
    "/api/v1/pricing",
    "/api/v1/pricing/unpriced",
];

/// `{"detail": "<non-empty message>"}` and nothing else.
fn assert_detail_body(body: &Value, case: &str) {
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("{case}: the body is not a JSON object: {body}"));
    assert_eq!(
        object.len(),
        1,
        "{case}: the body has other keys than detail: {body}"
    );
    let detail = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: detail is not a string: {body}"));
    assert!(!detail.is_empty(), "{case}: detail is empty");
}

#[tokio::test]
async fn every_read_route_answers_401_without_a_token() {
    // Arrange
    let app = TestApp::spawn().await;

    for route in READ_ROUTES {
        // Act
        let (status, body) = app.get_with_token(route, None).await;

        // Assert
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "GET {route} without a token"
        );
        assert_detail_body(&body, route);
    }
}

#[tokio::test]
async fn every_read_route_answers_401_for_a_wrong_token() {
    // Arrange
    let app = TestApp::spawn().await;

    for route in READ_ROUTES {
        // Act
        let (status, body) = app.get_with_token(route, Some(WRONG_TOKEN)).await;

        // Assert
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "GET {route} with a wrong token"
        );
        assert_detail_body(&body, route);
    }
}

#[tokio::test]
async fn a_token_that_is_a_prefix_or_extension_of_the_admin_token_is_refused() {
    // Arrange
    let app = TestApp::spawn().await;
    let almost = [
        &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1],
        &format!("{ADMIN_TOKEN}x"),
        &ADMIN_TOKEN.to_uppercase(),
    ]
    .map(str::to_string);

    for token in &almost {
        // Act
        let (status, _) = app
            .get_with_token("/api/v1/analytics/ttft", Some(token))
            .await;

        // Assert
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
}

#[tokio::test]
async fn every_read_route_answers_403_for_the_ingest_token() {
    // Arrange
    let app = TestApp::spawn().await;

    for route in READ_ROUTES {
        // Act
        let (status, body) = app.get_with_token(route, Some(INGEST_TOKEN)).await;

        // Assert
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "GET {route} with the ingest token"
        );
        assert_detail_body(&body, route);
    }
}

#[tokio::test]
async fn every_read_route_answers_200_for_the_admin_token() {
    // Arrange
    let app = TestApp::spawn().await;

    for route in READ_ROUTES {
        // Act
        let (status, body) = app.get_with_token(route, Some(ADMIN_TOKEN)).await;

        // Assert
        assert_eq!(
            status,
            StatusCode::OK,
            "GET {route} with the admin token: {body}"
        );
    }
}

#[tokio::test]
async fn the_token_is_checked_before_the_parameters() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [
        (
            "/api/v1/analytics/ttft?hours=0",
            None,
            StatusCode::UNAUTHORIZED,
            "no token, hours out of bounds",
        ),
        (
            "/api/v1/analytics/ttft?hours=abc",
            Some(WRONG_TOKEN),
            StatusCode::UNAUTHORIZED,
            "wrong token, hours not an integer",
        ),
        (
            "/api/v1/analytics/advanced?assistant_id=nope&ttft_hours=999",
            Some(WRONG_TOKEN),
            StatusCode::UNAUTHORIZED,
            "wrong token, several bad parameters",
        ),
        (
            "/api/v1/analytics/utilization?status=frozen",
            None,
            StatusCode::UNAUTHORIZED,
            "no token, bad enum",
        ),
        (
            "/api/v1/analytics/users?limit=0",
            Some(INGEST_TOKEN),
            StatusCode::FORBIDDEN,
            "ingest token, bad limit",
        ),
    ];

    for (path, token, expected, case) in cases {
        // Act
        let (status, body) = app.get_with_token(path, token).await;

        // Assert
        assert_eq!(status, expected, "{case}: {path}");
        assert_detail_body(&body, case);
    }
}

#[tokio::test]
async fn ingest_answers_401_without_a_token_or_with_a_wrong_one() {
    // Arrange
    let app = TestApp::spawn().await;
    let body = serde_json::to_vec(&json!({"events": []})).unwrap();
    let cases = [(None, "no token"), (Some(WRONG_TOKEN), "a wrong token")];

    for (token, case) in cases {
        // Act
        let (status, answer) = app
            .ingest_raw(Some("application/json"), None, body.clone(), token)
            .await;

        // Assert
        assert_eq!(status, StatusCode::UNAUTHORIZED, "ingest with {case}");
        assert_detail_body(&answer, case);
    }
}

#[tokio::test]
async fn ingest_checks_the_token_before_the_body() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act: an unsupported content type and an unreadable body, with no token.
    let (status, body) = app
        .ingest_raw(Some("text/plain"), None, b"not json".to_vec(), None)
        .await;

    // Assert
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn the_ingest_token_and_the_admin_token_may_both_ingest() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let assistant = new_id();

    for (token, case) in [(INGEST_TOKEN, "ingest token"), (ADMIN_TOKEN, "admin token")] {
        let body = serde_json::to_vec(&json!({
            "events": [interaction(assistant, "s", &clock.ago_min(1))]
        }))
        .unwrap();

        // Act
        let (status, answer) = app
            .ingest_raw(Some("application/json"), None, body, Some(token))
            .await;

        // Assert
        assert_eq!(status, StatusCode::OK, "ingest with the {case}: {answer}");
        assert_eq!(
            answer,
            json!({"accepted": 1, "duplicates": 0, "rejected": []}),
            "ingest with the {case}"
        );
    }
    let cache = app.analytics("/cache").await;
    assert_eq!(cache["total_requests"], json!(2));
}

#[tokio::test]
async fn a_token_in_the_query_string_is_not_accepted_on_the_analytics_routes() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (status, body) = app
        .get_with_token(&format!("/api/v1/analytics/ttft?token={ADMIN_TOKEN}"), None)
        .await;

    // Assert: only the live feed takes `?token=`.
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    // Arrange
    let closed = TestApp::spawn().await;
    let open = TestApp::spawn_with(|args| {
        args.cors_origins = Some(vec!["http://dashboard.example".to_string()]);
    })
    .await;
    let allow_origin = |app: &TestApp, origin: &'static str| {
        let request = app
            .client
            .get(app.url("/api/v1/analytics/ttft"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Origin", origin);
        async move {
            let response = request.send().await.unwrap();
            response
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_string())
        }
    };
    let cases = [
        (
            &closed,
            "http://dashboard.example",
            None,
            "no origins configured",
        ),
        (
            &open,
            "http://dashboard.example",
            Some("http://dashboard.example"),
            "a configured origin",
        ),
        (&open, "http://evil.example", None, "another origin"),
    ];

    for (app, origin, expected, case) in cases {
        // Act
        let got = allow_origin(app, origin).await;

        // Assert
        assert_eq!(got.as_deref(), expected, "{case}");
    }
}
