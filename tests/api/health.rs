//! Operations endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`)
//! and the answers for routes that do not exist.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, Clock, TestApp, interaction, metric_sum, new_id, with};

#[tokio::test]
async fn healthz_answers_200_without_a_token() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (status, _, _) = app.get_text("/healthz").await;

    // Assert
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_answers_200_without_a_token_when_the_store_answers() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (status, body, _) = app.get_text("/readyz").await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn metrics_is_prometheus_text_without_a_token_and_every_name_starts_with_ragpulse() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (status, text, content_type) = app.get_text("/metrics").await;

    // Assert
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/plain")
            || content_type.starts_with("application/openmetrics-text"),
        "unexpected content type {content_type:?}"
    );
    let mut names = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let name = if let Some(rest) = line.strip_prefix("# ") {
            // "# HELP name ...", "# TYPE name ...", "# UNIT name ..."; "# EOF" has no name.
            match rest.split_whitespace().nth(1) {
                Some(name) => name,
                None => continue,
            }
        } else {
            line.split(['{', ' ']).next().unwrap()
        };
        names += 1;
        assert!(
            name.starts_with("ragpulse_"),
            "metric {name:?} is not prefixed ragpulse_ (line {line:?})"
        );
    }
    assert!(names > 0, "/metrics exposes nothing:\n{text}");
}

#[tokio::test]
async fn ingest_counters_move_by_the_accepted_duplicate_and_rejected_events() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let assistant = new_id();
    let first = interaction(assistant, "s1", &clock.ago_min(5));
    let second = interaction(assistant, "s1", &clock.ago_min(4));
    let (_, before, _) = app.get_text("/metrics").await;

    // Act: 2 accepted, 1 duplicate (the first again), 2 rejected (bad type, bad uuid).
    let (status, body) = app
        .ingest_json(json!([
            first.clone(),
            second,
            first,
            {"type": "banana"},
            with(interaction(assistant, "s1", &clock.ago_min(3)), json!({"id": "nope"})),
        ]))
        .await;
    let (_, after, _) = app.get_text("/metrics").await;

    // Assert
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let delta = |name: &str| metric_sum(&after, name, &[]) - metric_sum(&before, name, &[]);
    assert_eq!(
        delta("ragpulse_events_accepted_total"),
        2.0,
        "accepted counter did not move by 2:\n{after}"
    );
    assert_eq!(
        delta("ragpulse_events_duplicate_total"),
        1.0,
        "duplicate counter did not move by 1:\n{after}"
    );
    assert_eq!(
        delta("ragpulse_events_rejected_total"),
        2.0,
        "rejected counter did not move by 2:\n{after}"
    );
}

#[tokio::test]
async fn unpriced_models_are_counted_in_metrics_with_their_model_label() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let assistant = new_id();

    // Act
    app.ingest_ok(json!([
        with(
            interaction(assistant, "s", &clock.ago_min(2)),
            json!({"model": "no-such-model-zz9", "input_tokens": 10})
        ),
        with(
            interaction(assistant, "s", &clock.ago_min(1)),
            json!({"model": "no-such-model-zz9", "input_tokens": 10})
        ),
    ]))
    .await;
    let (_, text, _) = app.get_text("/metrics").await;

    // Assert
    assert_eq!(
        metric_sum(
            &text,
            "ragpulse_unpriced_interactions_total",
            &["model=\"no-such-model-zz9\""]
        ),
        2.0,
        "{text}"
    );
}

#[tokio::test]
async fn openapi_json_lists_every_route_without_a_token() {
    // Arrange
    let app = TestApp::spawn().await;
    let expected = [
        ("/api/v1/ingest", "post"),
        ("/api/v1/analytics/advanced", "get"),
        ("/api/v1/analytics/ttft", "get"),
        ("/api/v1/analytics/trending", "get"),
        ("/api/v1/analytics/costs", "get"),
        ("/api/v1/analytics/freshness", "get"),
        ("/api/v1/analytics/steps", "get"),
        ("/api/v1/analytics/cache", "get"),
        ("/api/v1/analytics/sessions", "get"),
        ("/api/v1/analytics/diversity", "get"),
        ("/api/v1/analytics/utilization", "get"),
        ("/api/v1/analytics/users", "get"),
        ("/api/v1/analytics/reranking", "get"),
        ("/api/v1/analytics/sync", "get"),
        ("/api/v1/pricing", "get"),
        ("/api/v1/pricing/unpriced", "get"),
        ("/api/v1/admin/backup", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ];

    // Act
    let (status, doc) = app.get_with_token("/openapi.json", None).await;

    // Assert
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"]
        .as_object()
        .expect("openapi.json has no paths object");
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "openapi.json does not list {} {path}; it lists {:?}",
            method.to_uppercase(),
            paths.keys().collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn openapi_json_documents_the_query_parameters_of_each_analytics_route() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases: [(&str, &[&str]); 13] = [
        (
            "advanced",
            &[
                "assistant_id",
                "ttft_hours",
                "step_days",
                "cache_hours",
                "cost_hours",
                "trending_limit",
            ],
        ),
        ("ttft", &["hours", "assistant_id"]),
        ("trending", &["assistant_id", "limit", "days", "phrasings"]),
        ("costs", &["hours", "assistant_id"]),
        ("freshness", &[]),
        ("steps", &["days", "assistant_id"]),
        ("cache", &["hours", "assistant_id"]),
        ("sessions", &["days", "assistant_id"]),
        ("diversity", &["days", "assistant_id"]),
        ("utilization", &["days", "status", "limit", "assistant_id"]),
        ("users", &["days", "limit", "assistant_id"]),
        ("reranking", &["hours", "assistant_id"]),
        ("sync", &["days"]),
    ];

    // Act
    let (_, doc) = app.get_with_token("/openapi.json", None).await;

    // Assert
    for (route, params) in cases {
        let operation = &doc["paths"][format!("/api/v1/analytics/{route}")]["get"];
        let mut documented: Vec<&str> = operation["parameters"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        documented.sort_unstable();
        let mut wanted = params.to_vec();
        wanted.sort_unstable();
        assert_eq!(documented, wanted, "parameters of /{route} in openapi.json");
    }
}

#[tokio::test]
async fn an_unknown_route_is_a_404_with_fastapis_body() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [
        ("/nope", None, "an unknown top-level path without a token"),
        (
            "/api/v1/analytics/nope",
            Some(ADMIN_TOKEN),
            "an unknown analytics path with the admin token",
        ),
        (
            "/api/v1/analytics/nope",
            None,
            "an unknown analytics path without a token",
        ),
        ("/api/v2/ingest", None, "another API version"),
    ];

    for (path, token, case) in cases {
        // Act
        let (status, body) = app.get_with_token(path, token).await;

        // Assert
        assert_eq!(status, StatusCode::NOT_FOUND, "{case}: {path}");
        assert_eq!(body, json!({"detail": "Not Found"}), "{case}: {path}");
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_405_with_a_detail_message() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let response = app
        .client
        .post(app.url("/api/v1/analytics/ttft"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
}

#[tokio::test]
async fn client_label_values_in_metrics_are_capped_at_100_with_the_rest_under_other() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let assistant = new_id();
    let events: Vec<Value> = (0..105)
        .map(|i| {
            with(
                interaction(assistant, "s", &clock.ago_min(1)),
                json!({"model": format!("unpriced-model-{i:03}")}),
            )
        })
        .collect();

    // Act
    app.ingest_ok(json!(events)).await;
    let (_, text, _) = app.get_text("/metrics").await;

    // Assert
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ragpulse_unpriced_interactions_total{"))
        .collect();
    assert!(
        series.len() <= 101,
        "{} series: more than 100 client values and other",
        series.len()
    );
    assert_eq!(
        metric_sum(&text, "ragpulse_unpriced_interactions_total", &[]),
        105.0,
        "every unpriced interaction is counted"
    );
    assert_eq!(
        metric_sum(
            &text,
            "ragpulse_unpriced_interactions_total",
            &["model=\"other\""]
        ),
        5.0,
        "{text}"
    );
}
