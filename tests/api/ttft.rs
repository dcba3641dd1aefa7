//! `GET /api/v1/analytics/ttft` (`api.md`, TTFTPercentiles).

use serde_json::{Value, json};

use crate::helpers::{Clock, TestApp, interaction, new_id, percentile_cont, with};

/// The expected answer for ascending `values` (seconds): `percentile_cont` at
/// 0.5, 0.95 and 0.99 as `api.md` defines it.
fn percentiles(sorted: &[f64], period_hours: i64) -> Value {
    json!({
        "p50": percentile_cont(sorted, 0.5),
        "p95": percentile_cont(sorted, 0.95),
        "p99": percentile_cont(sorted, 0.99),
        "period_hours": period_hours,
    })
}

fn zeros(period_hours: i64) -> Value {
    json!({"p50": 0.0, "p95": 0.0, "p99": 0.0, "period_hours": period_hours})
}

#[tokio::test]
async fn ttft_is_percentile_cont_over_the_window_per_assistant_ignoring_null_ttft() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let at = |assistant, ts: String, ttft: Value| {
        with(
            interaction(assistant, "s", &ts),
            json!({"ttft_s": ttft, "total_duration_s": 200.0}),
        )
    };
    app.ingest_ok(json!([
        at(a, clock.ago_min(10), json!(0.1)),
        at(a, clock.ago_h(2), json!(0.2)),
        at(a, clock.ago_h(3), json!(0.4)),
        at(a, clock.ago_h(4), json!(0.8)),
        at(a, clock.ago_h(5), json!(1.6)),
        // A cache hit without a first token: not a value.
        with(
            at(a, clock.ago_h(6), Value::Null),
            json!({"cache_hit": true})
        ),
        // Outside 24 h, inside 48 h.
        at(a, clock.ago_h(25), json!(9.9)),
        at(b, clock.ago_min(90), json!(100.0)),
    ]))
    .await;
    let unknown = new_id();
    let cases = [
        // All assistants, 24 h: [0.1, 0.2, 0.4, 0.8, 1.6, 100]; n − 1 = 5, so
        // p50: h = 2.5 → 0.4 + 0.5·(0.8 − 0.4); p95: h = 4.75 → 1.6 + 0.75·(100 − 1.6).
        (
            String::new(),
            percentiles(&[0.1, 0.2, 0.4, 0.8, 1.6, 100.0], 24),
            "all assistants, 24 h",
        ),
        // A, 24 h: [0.1, 0.2, 0.4, 0.8, 1.6]; p50: h = 2 → x[2] = 0.4 exactly;
        // p95: h = 3.8 → 0.8 + 0.8·(1.6 − 0.8); p99: h = 3.96 → 0.8 + 0.96·0.8.
        (
            format!("?assistant_id={a}"),
            percentiles(&[0.1, 0.2, 0.4, 0.8, 1.6], 24),
            "assistant A, 24 h",
        ),
        (
            format!("?assistant_id={a}&hours=1"),
            percentiles(&[0.1], 1),
            "assistant A, 1 h: one value is every percentile",
        ),
        (
            format!("?hours=48&assistant_id={a}"),
            percentiles(&[0.1, 0.2, 0.4, 0.8, 1.6, 9.9], 48),
            "assistant A, 48 h",
        ),
        (
            format!("?assistant_id={b}"),
            percentiles(&[100.0], 24),
            "assistant B",
        ),
        (
            format!("?assistant_id={b}&hours=1"),
            zeros(1),
            "assistant B, 1 h: no value → zeros",
        ),
        (
            format!("?assistant_id={unknown}"),
            zeros(24),
            "an assistant never seen → zeros",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/ttft{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
    // The hand-computed values the helper must agree with.
    assert_eq!(
        app.analytics(&format!("/ttft?assistant_id={a}")).await["p50"],
        json!(0.4)
    );
}

#[tokio::test]
async fn ttft_without_any_interaction_is_zeros_with_the_period() {
    // Arrange
    let app = TestApp::spawn().await;

    for hours in [1, 24, 168] {
        // Act
        let got = app.analytics(&format!("/ttft?hours={hours}")).await;

        // Assert
        assert_eq!(got, zeros(hours), "hours={hours}");
    }
    assert_eq!(app.analytics("/ttft").await, zeros(24), "default hours");
}

#[tokio::test]
async fn ttft_window_includes_an_event_just_inside_and_excludes_one_just_outside() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        // 59 min ago: inside the last hour (a minute of slack for the request's now).
        with(
            interaction(a, "s", &clock.ago_min(59)),
            json!({"ttft_s": 0.123456})
        ),
        // 61 min ago: outside it.
        with(
            interaction(a, "s", &clock.ago_min(61)),
            json!({"ttft_s": 7.0})
        ),
    ]))
    .await;

    // Act
    let got = app.analytics("/ttft?hours=1").await;

    // Assert: the microsecond value comes back exactly.
    assert_eq!(
        got,
        json!({"p50": 0.123456, "p95": 0.123456, "p99": 0.123456, "period_hours": 1})
    );
}

#[tokio::test]
async fn ttft_interpolates_between_two_values() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        with(
            interaction(a, "s", &clock.ago_min(3)),
            json!({"ttft_s": 0.3})
        ),
        with(
            interaction(a, "s", &clock.ago_min(2)),
            json!({"ttft_s": 0.1})
        ),
    ]))
    .await;

    // Act
    let got = app.analytics("/ttft").await;

    // Assert: [0.1, 0.3], n − 1 = 1: p50 = 0.1 + 0.5·0.2, p95 = 0.1 + 0.95·0.2, p99 = 0.1 + 0.99·0.2.
    assert_eq!(
        got,
        json!({
            "p50": 0.1 + 0.5 * (0.3 - 0.1),
            "p95": 0.1 + 0.95 * (0.3 - 0.1),
            "p99": 0.1 + 0.99 * (0.3 - 0.1),
            "period_hours": 24,
        })
    );
}
