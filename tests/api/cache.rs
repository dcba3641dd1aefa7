//! `GET /api/v1/analytics/cache` (`api.md`, CacheMetrics).

use serde_json::{Value, json};

use crate::helpers::{Clock, TestApp, interaction, new_id, with};

fn hit(assistant: uuid::Uuid, ts: &str, cache_hit: bool) -> Value {
    with(
        interaction(assistant, "s", ts),
        json!({"cache_hit": cache_hit}),
    )
}

#[tokio::test]
async fn cache_counts_hits_and_misses_per_window_and_assistant() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    app.ingest_ok(json!([
        hit(a, &clock.ago_min(30), true),
        hit(a, &clock.ago_h(2), false),
        // cache_hit absent defaults to false.
        interaction(a, "s", &clock.ago_h(3)),
        hit(a, &clock.ago_h(25), true),
        hit(b, &clock.ago_h(5), true),
    ]))
    .await;
    let cases = [
        // A: 1 hit of 3 → 1/3 × 100 = 33.333… → 33.33.
        (
            format!("?assistant_id={a}"),
            json!({"hit_rate": 33.33, "total_requests": 3, "cache_hits": 1, "cache_misses": 2, "period_hours": 24}),
            "assistant A, 24 h",
        ),
        // All: 2 of 4 → 50.0.
        (
            String::new(),
            json!({"hit_rate": 50.0, "total_requests": 4, "cache_hits": 2, "cache_misses": 2, "period_hours": 24}),
            "all assistants, 24 h",
        ),
        // A, 48 h: 2 of 4 → 50.0.
        (
            format!("?hours=48&assistant_id={a}"),
            json!({"hit_rate": 50.0, "total_requests": 4, "cache_hits": 2, "cache_misses": 2, "period_hours": 48}),
            "assistant A, 48 h",
        ),
        // A, 1 h: 1 of 1 → 100.0.
        (
            format!("?assistant_id={a}&hours=1"),
            json!({"hit_rate": 100.0, "total_requests": 1, "cache_hits": 1, "cache_misses": 0, "period_hours": 1}),
            "assistant A, 1 h",
        ),
        // B, 1 h: nothing → null.
        (
            format!("?assistant_id={b}&hours=1"),
            Value::Null,
            "assistant B, 1 h: no interaction",
        ),
        (
            format!("?assistant_id={}", new_id()),
            Value::Null,
            "an assistant never seen",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/cache{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn cache_hit_rate_rounds_an_exact_tie_to_even() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let mut events = Vec::new();
    for i in 0..32 {
        // A: 1 hit of 32 → 3.125 exactly (a binary fraction) → ties to even → 3.12
        // ((x × 100).round() / 100 would give 3.13).
        events.push(hit(a, &clock.ago_s(60 + i), i == 0));
        // B: 3 hits of 32 → 9.375 exactly → ties to even → 9.38.
        events.push(hit(b, &clock.ago_s(60 + i), i < 3));
    }
    app.ingest_ok(json!(events)).await;
    let cases = [
        (
            a,
            json!({"hit_rate": 3.12, "total_requests": 32, "cache_hits": 1, "cache_misses": 31, "period_hours": 24}),
            "1/32",
        ),
        (
            b,
            json!({"hit_rate": 9.38, "total_requests": 32, "cache_hits": 3, "cache_misses": 29, "period_hours": 24}),
            "3/32",
        ),
    ];

    for (assistant, expected, case) in cases {
        // Act
        let got = app
            .analytics(&format!("/cache?assistant_id={assistant}"))
            .await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn cache_window_includes_an_event_just_inside_and_excludes_one_just_outside() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        hit(a, &clock.ago_min(59), true),
        hit(a, &clock.ago_min(61), false),
    ]))
    .await;

    // Act
    let got = app.analytics("/cache?hours=1").await;

    // Assert
    assert_eq!(
        got,
        json!({"hit_rate": 100.0, "total_requests": 1, "cache_hits": 1, "cache_misses": 0, "period_hours": 1})
    );
}
