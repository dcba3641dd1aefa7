//! Pricing: the unpriced-model report and repricing after a catalogue change
//! (`ingest.md`, Cost).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Clock, TEST_MODEL, TestApp, interaction, new_id, test_prices, with,
};

const NEW_MODEL: &str = "acme-new-model";

/// The test prices plus a price for [`NEW_MODEL`].
fn priced_later_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("later-prices.toml");
    let added = format!(
        r#"
[[price]]
id = "acme/{NEW_MODEL}@2000-01-01"
provider = "acme"
model = "{NEW_MODEL}"
effective_from = 2000-01-01
input = 2.00
output = 4.00
"#
    );
    std::fs::write(&path, test_prices() + &added).unwrap();
    path
}

async fn reprice(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/pricing/reprice"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_unknown_model_is_reported_unpriced_and_repricing_after_adding_it_moves_exactly_its_cost()
 {
    // Arrange: one unpriced interaction (1,000,000 in + 500,000 out tokens), one
    // with a client cost of the same model, one of the priced test model.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let assistant = new_id();
    let tokens = json!({"model": NEW_MODEL, "input_tokens": 1_000_000, "output_tokens": 500_000});
    app.ingest_ok(json!([
        with(
            interaction(assistant, "s1", &clock.ago_h(2)),
            tokens.clone()
        ),
        with(
            with(interaction(assistant, "s2", &clock.ago_h(2)), tokens),
            json!({"cost_usd": 0.5})
        ),
        with(
            interaction(assistant, "s3", &clock.ago_h(1)),
            json!({"model": TEST_MODEL, "input_tokens": 1000, "output_tokens": 1000})
        ),
    ]))
    .await;
    let (status, unpriced) = app.get("/api/v1/pricing/unpriced").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unpriced.as_array().map(Vec::len), Some(1), "{unpriced}");
    assert_eq!(unpriced[0]["model"], json!(NEW_MODEL));
    assert_eq!(
        unpriced[0]["count"],
        json!(1),
        "a client cost is not unpriced"
    );
    // Test model: 1000 × 1.00 / 1e6 + 1000 × 2.00 / 1e6 = 0.003; client 0.5; unpriced 0.
    let costs = app.analytics("/costs").await;
    assert_eq!(costs[0]["estimated_cost_usd"], json!(0.503));

    // Act: restart with a price for the new model, then reprice everything.
    let dir = app.stop().await;
    let prices = priced_later_file(dir.path());
    let app = TestApp::spawn_in(dir, |args| args.pricing_file = Some(prices)).await;
    let (status, report) = reprice(&app, json!({"since": "2000-01-01"})).await;

    // Assert: 1,000,000 × 2.00 / 1e6 + 500,000 × 4.00 / 1e6 = 4.0 USD more; the
    // client's 0.5 is neither examined nor changed.
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report,
        json!({
            "interactions_examined": 2,
            "interactions_changed": 1,
            "newly_priced": 1,
            "newly_unpriced": 0,
            "cost_before_usd": 0.003,
            "cost_after_usd": 4.003,
            "delta_usd": 4.0,
        })
    );
    let costs = app.analytics("/costs").await;
    assert_eq!(costs[0]["estimated_cost_usd"], json!(4.503));
    let (_, unpriced) = app.get("/api/v1/pricing/unpriced").await;
    assert_eq!(unpriced, json!([]));

    // A second reprice finds nothing to change.
    let (_, again) = reprice(&app, json!({"since": "2000-01-01"})).await;
    assert_eq!(again["interactions_changed"], json!(0));
}

#[tokio::test]
async fn repricing_can_be_limited_to_one_model_and_a_start_date() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let assistant = new_id();
    app.ingest_ok(json!([
        with(
            interaction(assistant, "s1", &clock.ago_d(10)),
            json!({"model": NEW_MODEL, "input_tokens": 10})
        ),
        with(
            interaction(assistant, "s2", &clock.ago_h(1)),
            json!({"model": NEW_MODEL, "input_tokens": 10})
        ),
        with(
            interaction(assistant, "s3", &clock.ago_h(1)),
            json!({"model": TEST_MODEL, "input_tokens": 10})
        ),
    ]))
    .await;

    // Act
    let since = (chrono::Utc::now() - chrono::TimeDelta::days(1)).to_rfc3339();
    let (status, by_model) =
        reprice(&app, json!({"since": since, "model": "Acme-New-Model"})).await;
    let (_, other) = reprice(&app, json!({"since": since, "model": "no-such-model"})).await;

    // Assert: only the recent acme interaction is examined (the other is 10 days old).
    assert_eq!(status, StatusCode::OK, "{by_model}");
    assert_eq!(by_model["interactions_examined"], json!(1), "{by_model}");
    assert_eq!(other["interactions_examined"], json!(0), "{other}");
}

#[tokio::test]
async fn a_bad_reprice_request_is_refused_and_needs_the_admin_token() {
    let app = TestApp::spawn().await;
    let (status, body) = reprice(&app, json!({"since": "last tuesday"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "since"]));
    let (status, _) = reprice(&app, json!({"model": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "since is required");
    let response = app
        .client
        .post(app.url("/api/v1/pricing/reprice"))
        .bearer_auth(crate::helpers::INGEST_TOKEN)
        .json(&json!({"since": "2000-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_catalogue_lists_built_in_and_file_entries() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/v1/pricing").await;
    assert_eq!(status, StatusCode::OK);
    let entries = body["entries"].as_array().expect("entries");
    let test = entries
        .iter()
        .find(|e| e["model"] == json!(TEST_MODEL))
        .expect("the test price file's model is listed");
    assert_eq!(test["input"], json!(1.0));
    assert_eq!(test["output"], json!(2.0));
    assert!(
        entries.iter().any(|e| e["model"] == json!("gpt-4o-mini")),
        "built-in entries are listed too"
    );
}
