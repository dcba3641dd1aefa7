//! `GET /api/v1/analytics/costs` (`api.md`, AssistantCost; `ingest.md`, pricing).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Clock, REPRICED_MODEL, TEST_MODEL, TestApp, assistant, id, interaction, new_id, with,
};

fn row(assistant: Uuid, name: &str, input: i64, output: i64, cost: f64) -> Value {
    json!({
        "assistant_id": assistant,
        "assistant_name": name,
        "total_tokens": input + output,
        "input_tokens": input,
        "output_tokens": output,
        "estimated_cost_usd": cost,
    })
}

#[tokio::test]
async fn costs_sum_tokens_and_costs_per_assistant_ordered_by_cost_then_name_then_id() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    let b = id("00000000-0000-4000-8000-00000000000b"); // unregistered
    let c = new_id();
    let d = id("ffffffff-ffff-4fff-8fff-ffffffffffff"); // unregistered
    let e = new_id(); // unregistered
    let f = new_id();
    let tokens =
        |assistant, ts: String, extra: Value| with(interaction(assistant, "s", &ts), extra);
    app.ingest_ok(json!([
        {"type": "assistant", "id": a, "name": "Support bot", "model": TEST_MODEL},
        assistant(c, "Alpha"),
        assistant(f, "Fox"),
        // A: the client's cost, 0.0125.
        tokens(a, clock.ago_h(1), json!({"input_tokens": 100, "output_tokens": 50, "cost_usd": 0.0125})),
        // A: no cost and no model → the assistant's model from the test catalogue:
        // 800 uncached × 1.00 + 200 cached × 0.50 + 500 output × 2.00 = 1,900 µUSD per
        // million tokens → 0.0019 USD.
        tokens(a, clock.ago_h(2), json!({"input_tokens": 1000, "cached_input_tokens": 200, "output_tokens": 500})),
        // A, 25 hours ago: outside 24 h.
        tokens(a, clock.ago_h(25), json!({"input_tokens": 10, "cost_usd": 5.0})),
        // B: 0.0144, the same as A's total (0.0125 + 0.0019): the name decides, and B's
        // name is its id "00000000-…", which sorts before "Support bot".
        tokens(b, clock.ago_h(3), json!({"input_tokens": 10, "cost_usd": 0.0144})),
        // C: a model without a price → cost 0 (counted as unpriced).
        tokens(c, clock.ago_h(4), json!({"input_tokens": 7, "output_tokens": 3, "model": "unknown-model-xyz"})),
        // D: no model anywhere → cost 0; "Alpha" < "ffffffff-…".
        tokens(d, clock.ago_h(5), json!({})),
        // E: 1,600 nano-dollars → 0.0000016 rounded to 6 decimals → 0.000002.
        tokens(e, clock.ago_h(6), json!({"cost_usd": 0.0000016})),
        // F: the client's cost wins over the catalogue (which would say 1.00 USD).
        tokens(f, clock.ago_h(7), json!({"input_tokens": 1_000_000, "model": TEST_MODEL, "cost_usd": 0.001})),
    ]))
    .await;
    let cases = [
        (
            String::new(),
            json!([
                row(b, &b.to_string(), 10, 0, 0.0144),
                row(a, "Support bot", 1100, 550, 0.0144),
                row(f, "Fox", 1_000_000, 0, 0.001),
                row(e, &e.to_string(), 0, 0, 0.000002),
                row(c, "Alpha", 7, 3, 0.0),
                row(d, &d.to_string(), 0, 0, 0.0),
            ]),
            "every assistant, 24 h",
        ),
        (
            format!("?assistant_id={a}"),
            json!([row(a, "Support bot", 1100, 550, 0.0144)]),
            "assistant A",
        ),
        // 48 h adds the 5.0 of 25 hours ago: 5.0144.
        (
            format!("?hours=48&assistant_id={a}"),
            json!([row(a, "Support bot", 1110, 550, 5.0144)]),
            "assistant A, 48 h",
        ),
        (
            format!("?assistant_id={c}&hours=1"),
            json!([]),
            "assistant C, 1 h: nothing",
        ),
        (
            format!("?assistant_id={}", new_id()),
            json!([]),
            "an assistant never seen",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/costs{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn costs_tie_on_cost_and_name_is_broken_by_assistant_id() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let low = id("10000000-0000-4000-8000-000000000000");
    let high = id("20000000-0000-4000-8000-000000000000");
    app.ingest_ok(json!([
        assistant(high, "Twin"),
        assistant(low, "Twin"),
        with(
            interaction(high, "s", &clock.ago_h(1)),
            json!({"cost_usd": 0.5})
        ),
        with(
            interaction(low, "s", &clock.ago_h(1)),
            json!({"cost_usd": 0.5})
        ),
    ]))
    .await;

    // Act
    let got = app.analytics("/costs").await;

    // Assert
    assert_eq!(
        got,
        json!([row(low, "Twin", 0, 0, 0.5), row(high, "Twin", 0, 0, 0.5)])
    );
}

#[tokio::test]
async fn costs_use_the_price_in_effect_at_the_interactions_timestamp() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        // 5 days ago the price was 1.00 per million input tokens → 1.0 USD.
        with(
            interaction(a, "s", &clock.ago_d(5)),
            json!({"model": REPRICED_MODEL, "input_tokens": 1_000_000})
        ),
        // Since two days ago (UTC midnight) it is 3.00 → 3.0 USD.
        with(
            interaction(a, "s", &clock.ago_h(1)),
            json!({"model": REPRICED_MODEL, "input_tokens": 1_000_000})
        ),
    ]))
    .await;
    let name = a.to_string();
    let cases = [
        (
            "?hours=168",
            row(a, &name, 2_000_000, 0, 4.0),
            "a week: both prices",
        ),
        (
            "?hours=24",
            row(a, &name, 1_000_000, 0, 3.0),
            "a day: the new price only",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/costs{query}")).await;

        // Assert
        assert_eq!(got, json!([expected]), "{case}");
    }
}

#[tokio::test]
async fn an_unpriced_model_is_reported_rather_than_silently_costing_zero() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        with(
            interaction(a, "s", &clock.ago_h(1)),
            json!({"model": "unknown-model-xyz", "input_tokens": 5})
        ),
        with(
            interaction(a, "s", &clock.ago_h(2)),
            json!({"model": "unknown-model-xyz", "input_tokens": 5})
        ),
    ]))
    .await;

    // Act
    let (status, unpriced) = app.get("/api/v1/pricing/unpriced").await;

    // Assert
    assert_eq!(status, reqwest::StatusCode::OK, "{unpriced}");
    let entry = unpriced
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["model"] == json!("unknown-model-xyz"))
        })
        .unwrap_or_else(|| panic!("unknown-model-xyz is not reported: {unpriced}"));
    assert_eq!(entry["count"], json!(2), "{unpriced}");
    assert_eq!(
        app.analytics("/costs").await[0]["estimated_cost_usd"],
        json!(0.0)
    );
}
