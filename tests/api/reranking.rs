//! `GET /api/v1/analytics/reranking` (`api.md`, RerankingImpact; `ingest.md`, rerank).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Clock, TestApp, interaction, new_id, with};

fn reranked(assistant: Uuid, ts: &str, rerank: Value) -> Value {
    with(interaction(assistant, "s", ts), json!({"rerank": rerank}))
}

#[tokio::test]
async fn reranking_averages_score_improvement_and_position_change_over_interactions_with_rerank_data()
 {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b, c) = (new_id(), new_id(), new_id());
    app.ingest_ok(json!([
        // A: after − before = 0.67 − 0.41 = 0.26, position 2.5.
        reranked(
            a,
            &clock.ago_h(1),
            json!({"score_before": 0.41, "score_after": 0.67, "position_change": 2.5})
        ),
        // A: a direct improvement 0.1, no position.
        reranked(a, &clock.ago_h(2), json!({"score_improvement": 0.1})),
        // A: the direct improvement (0.03) wins over after − before (1.0).
        reranked(
            a,
            &clock.ago_h(3),
            json!({"score_before": 0.0, "score_after": 1.0, "score_improvement": 0.03})
        ),
        // A: no improvement → stored, not counted.
        reranked(a, &clock.ago_h(4), json!({"position_change": 1.0})),
        reranked(a, &clock.ago_h(4), json!({"score_before": 0.5})),
        // A, 25 hours ago: outside 24 h.
        reranked(
            a,
            &clock.ago_h(25),
            json!({"score_improvement": 0.9, "position_change": 9.0})
        ),
        // B: a negative improvement, position 0.5.
        reranked(
            b,
            &clock.ago_h(5),
            json!({"score_improvement": -0.05, "position_change": 0.5})
        ),
        // C: rerank data without an improvement only.
        reranked(c, &clock.ago_h(1), json!({"position_change": 3.0})),
        // No rerank object at all.
        interaction(a, "s", &clock.ago_h(1)),
    ]))
    .await;
    let cases = [
        // A: (0.26 + 0.1 + 0.03)/3 = 0.13; positions: 2.5 only.
        (
            format!("?assistant_id={a}"),
            json!({"avg_score_improvement": 0.13, "reranking_enabled_count": 3, "avg_position_change": 2.5}),
            "assistant A",
        ),
        // All: (0.26 + 0.1 + 0.03 − 0.05)/4 = 0.085; positions (2.5 + 0.5)/2 = 1.5.
        (
            String::new(),
            json!({"avg_score_improvement": 0.085, "reranking_enabled_count": 4, "avg_position_change": 1.5}),
            "every assistant",
        ),
        // A, 48 h: (0.39 + 0.9)/4 = 0.3225 → 0.323 (0.3225 is not exact in binary; the
        // quotient 1.29/4 lies above it); positions (2.5 + 9)/2 = 5.75.
        (
            format!("?hours=48&assistant_id={a}"),
            json!({"avg_score_improvement": 0.323, "reranking_enabled_count": 4, "avg_position_change": 5.75}),
            "assistant A, 48 h",
        ),
        // B: one, without rounding trouble.
        (
            format!("?assistant_id={b}"),
            json!({"avg_score_improvement": -0.05, "reranking_enabled_count": 1, "avg_position_change": 0.5}),
            "assistant B",
        ),
        // A, 1 h: the newest was asked exactly 1 h before the dataset's clock, so at or
        // before the request's now − 1 h: the cutoff is exclusive → nothing.
        (
            format!("?assistant_id={a}&hours=1"),
            Value::Null,
            "assistant A, 1 h: an event at now − W is excluded",
        ),
        (
            format!("?assistant_id={c}"),
            Value::Null,
            "assistant C: rerank data without improvement",
        ),
        (
            format!("?assistant_id={}", new_id()),
            Value::Null,
            "an assistant never seen",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/reranking{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn reranking_rounds_means_to_three_decimals_and_reports_null_position_when_none() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        reranked(a, &clock.ago_min(10), json!({"score_improvement": 0.1})),
        reranked(a, &clock.ago_min(20), json!({"score_improvement": 0.1})),
        reranked(a, &clock.ago_min(30), json!({"score_improvement": 0.2})),
    ]))
    .await;

    // Act
    let got = app.analytics("/reranking").await;

    // Assert: 0.4/3 = 0.1333… → 0.133; no position change reported → null.
    assert_eq!(
        got,
        json!({"avg_score_improvement": 0.133, "reranking_enabled_count": 3, "avg_position_change": null})
    );
}
