//! Cross-cutting rules of every windowed metric (`api.md`): the window is
//! `now − W < timestamp <= now`, and every metric built from interactions
//! honours `assistant_id`.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Clock, TestApp, connector, document, interaction, new_id, sync, with};

/// One interaction that feeds every interaction metric.
fn everything(assistant: Uuid, ts: &str, n: i64, doc: Uuid) -> Value {
    with(
        interaction(assistant, &format!("session-{n}-{}", new_id()), ts),
        json!({
            "user_id": new_id(),
            "question": "How do I export a report?",
            "ttft_s": n as f64,
            "total_duration_s": 100.0,
            "cache_hit": true,
            "input_tokens": 10 * n,
            "output_tokens": n,
            "cost_usd": 0.001 * n as f64,
            "steps": [{"name": "retrieval", "duration_s": 0.5}],
            "retrieved_document_ids": [doc],
            "rerank": {"score_improvement": 0.1, "position_change": 1.0},
        }),
    )
}

#[tokio::test]
async fn every_windowed_metric_includes_events_just_inside_and_excludes_events_just_outside() {
    // Arrange: events one minute inside and one minute outside a 1-hour and a
    // 1-day window (a minute of slack for the request's own clock).
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, wiki, doc) = (new_id(), new_id(), new_id());
    let inside_hour = clock.ago_min(59);
    let outside_hour = clock.ago_min(61);
    let inside_day = clock.ago_min(24 * 60 - 1);
    let outside_day = clock.ago_min(24 * 60 + 1);
    app.ingest_ok(json!([
        connector(wiki, "Wiki"),
        document(doc, wiki, "report.pdf", &clock.ago_d(1)),
        everything(a, &inside_hour, 1, doc),
        everything(a, &outside_hour, 2, doc),
        everything(a, &inside_day, 3, doc),
        everything(a, &outside_day, 4, doc),
        sync(wiki, "success", &inside_hour, Some(1.0)),
        sync(wiki, "success", &outside_hour, Some(1.0)),
        sync(wiki, "success", &inside_day, Some(1.0)),
        sync(wiki, "success", &outside_day, Some(1.0)),
    ]))
    .await;
    // 1-hour windows see event 1 only; 1-day windows see events 1, 2 and 3.
    let cases: Vec<(&str, &str, Value)> = vec![
        ("/ttft?hours=1", "/p50", json!(1.0)),
        ("/cache?hours=1", "/total_requests", json!(1)),
        ("/costs?hours=1", "/0/input_tokens", json!(10)),
        ("/reranking?hours=1", "/reranking_enabled_count", json!(1)),
        (
            "/advanced?ttft_hours=1&cache_hours=1&cost_hours=1",
            "/cache_metrics/total_requests",
            json!(1),
        ),
        ("/steps?days=1", "/0/step_count", json!(3)),
        ("/sessions?days=1", "/0/session_count", json!(3)),
        ("/users?days=1", "/2/interaction_count", json!(1)),
        ("/users?days=1&limit=100", "/3", Value::Null),
        ("/utilization?days=1", "/0/retrieval_count", json!(3)),
        ("/sync?days=1", "/0/total_syncs", json!(3)),
        ("/trending?days=1", "/0/frequency", json!(3)),
        (
            "/advanced?step_days=1",
            "/step_breakdown/0/step_count",
            json!(3),
        ),
        (
            "/advanced?step_days=1",
            "/connector_sync_rates/0/total_syncs",
            json!(3),
        ),
    ];

    for (query, pointer, expected) in cases {
        // Act
        let got = app.analytics(query).await;

        // Assert
        assert_eq!(
            got.pointer(pointer).cloned().unwrap_or(Value::Null),
            expected,
            "{query} {pointer}: {got}"
        );
    }
}

#[tokio::test]
async fn every_interaction_metric_honours_assistant_id() {
    // Arrange: only assistant B has data; A is registered but silent.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b, doc) = (new_id(), new_id(), new_id());
    app.ingest_ok(json!([
        {"type": "assistant", "id": a, "name": "Silent"},
        document(doc, new_id(), "only-b.pdf", &clock.ago_d(1)),
        everything(b, &clock.ago_min(5), 1, doc),
    ]))
    .await;
    // Each endpoint with the empty value an assistant without interactions gets.
    let cases: Vec<(&str, Value)> = vec![
        (
            "/ttft",
            json!({"p50": 0.0, "p95": 0.0, "p99": 0.0, "period_hours": 24}),
        ),
        ("/steps", json!([])),
        ("/cache", Value::Null),
        ("/sessions", json!([])),
        ("/trending", json!([])),
        ("/trending?days=7", json!([])),
        ("/diversity", Value::Null),
        ("/diversity?days=7", Value::Null),
        ("/costs", json!([])),
        ("/utilization", json!([])),
        ("/users", json!([])),
        ("/reranking", Value::Null),
    ];

    for (path, empty) in &cases {
        let separator = if path.contains('?') { '&' } else { '?' };

        // Act
        let for_a = app
            .analytics(&format!("{path}{separator}assistant_id={a}"))
            .await;
        let for_b = app
            .analytics(&format!("{path}{separator}assistant_id={b}"))
            .await;

        // Assert
        assert_eq!(&for_a, empty, "{path} for the silent assistant");
        assert_ne!(&for_b, empty, "{path} for the assistant with data");
    }

    // And /advanced, key by key.
    let advanced = app.analytics(&format!("/advanced?assistant_id={a}")).await;
    let expected_empty = [
        ("ttft_percentiles", Value::Null),
        ("step_breakdown", json!([])),
        ("cache_metrics", Value::Null),
        ("session_distribution", json!([])),
        ("trending_topics", json!([])),
        ("topic_diversity", Value::Null),
        ("assistant_costs", json!([])),
        ("document_utilization", json!([])),
        ("user_stats", json!([])),
        ("reranking_impact", Value::Null),
    ];
    for (key, empty) in expected_empty {
        assert_eq!(
            advanced[key], empty,
            "/advanced?assistant_id=<silent> [{key}]"
        );
    }
    // Freshness and sync are not per assistant.
    assert_eq!(
        advanced["document_freshness"][0]["doc_count"],
        json!(1),
        "{advanced}"
    );
}
