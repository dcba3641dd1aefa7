//! `GET /api/v1/analytics/steps` (`api.md`, StepBreakdown).

use serde_json::{Value, json};

use crate::helpers::{Clock, TestApp, interaction, new_id, with};

fn step(name: &str, duration_s: f64) -> Value {
    json!({"name": name, "duration_s": duration_s})
}

fn step_tokens(name: &str, duration_s: f64, input: Option<i64>, output: Option<i64>) -> Value {
    let mut s = step(name, duration_s);
    if let Some(input) = input {
        s["input_tokens"] = json!(input);
    }
    if let Some(output) = output {
        s["output_tokens"] = json!(output);
    }
    s
}

#[tokio::test]
async fn steps_sum_repeats_average_per_interaction_and_follow_the_observed_pipeline_order() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let with_steps = |assistant, ts: String, steps: Vec<Value>| {
        with(interaction(assistant, "s", &ts), json!({"steps": steps}))
    };
    app.ingest_ok(json!([
        // I1 (A): retrieval@0, reranking@1 (no tokens), synthesis@2 (1000/200).
        with_steps(
            a,
            clock.ago_h(1),
            vec![
                step("retrieval", 0.3),
                step("reranking", 0.1),
                step_tokens("synthesis", 2.0, Some(1000), Some(200)),
            ]
        ),
        // I2 (A): retrieval@0 twice (0.5 + 0.25 = 0.75), reranking@1 reporting 0 tokens,
        // synthesis@2 (500/100).
        with_steps(
            a,
            clock.ago_h(2),
            vec![
                step("retrieval", 0.5),
                step_tokens("reranking", 0.2, Some(0), None),
                step_tokens("synthesis", 1.0, Some(500), Some(100)),
                step("retrieval", 0.25),
            ]
        ),
        // I3 (A): synthesis@0 with output tokens only (input counts 0).
        with_steps(
            a,
            clock.ago_h(3),
            vec![step_tokens("synthesis", 3.0, None, Some(300))]
        ),
        // I4 (B): guardrail@0.
        with_steps(b, clock.ago_h(4), vec![step("guardrail", 0.05)]),
        // I5 (A), 8 days ago: outside the default 7 days.
        with_steps(a, clock.ago_d(8), vec![step("retrieval", 100.0)]),
        // An interaction without steps adds nothing.
        interaction(a, "s", &clock.ago_h(5)),
    ]))
    .await;
    // retrieval: I1, I2 → count 2, mean (0.3 + 0.75)/2 = 0.525, mean index 0, no tokens.
    let retrieval = json!({"step_name": "retrieval", "avg_duration": 0.525, "step_count": 2, "avg_tokens": null});
    // reranking: I1, I2 → count 2, mean (0.1 + 0.2)/2 = 0.15, mean index 1; tokens reported
    // by I2 only (0 included) → {0, 0}.
    let reranking = json!({"step_name": "reranking", "avg_duration": 0.15, "step_count": 2,
        "avg_tokens": {"input": 0.0, "output": 0.0}});
    // synthesis: I1, I2, I3 → mean (2 + 1 + 3)/3 = 2.0, mean index (2 + 2 + 0)/3 = 4/3;
    // tokens: input (1000 + 500 + 0)/3 = 500, output (200 + 100 + 300)/3 = 200.
    let synthesis = json!({"step_name": "synthesis", "avg_duration": 2.0, "step_count": 3,
        "avg_tokens": {"input": 500.0, "output": 200.0}});
    // guardrail (B): mean index 0 ties retrieval's; by name, guardrail first.
    let guardrail = json!({"step_name": "guardrail", "avg_duration": 0.05, "step_count": 1, "avg_tokens": null});
    // With 9 days, I5 joins retrieval: (300,000 + 750,000 + 100,000,000) µs / 3, the exact
    // sum divided once at the end.
    let retrieval_9d = json!({"step_name": "retrieval", "avg_duration": 101_050_000.0 / 3_000_000.0, "step_count": 3, "avg_tokens": null});
    let cases = [
        (
            format!("?assistant_id={a}"),
            json!([retrieval, reranking, synthesis]),
            "assistant A, 7 days",
        ),
        (
            String::new(),
            json!([guardrail, retrieval, reranking, synthesis]),
            "all assistants: tie on index broken by name",
        ),
        (
            format!("?assistant_id={b}&days=1"),
            json!([guardrail]),
            "assistant B, 1 day",
        ),
        (
            format!("?days=9&assistant_id={a}"),
            json!([retrieval_9d, reranking, synthesis]),
            "assistant A, 9 days",
        ),
        (
            format!("?assistant_id={}", new_id()),
            json!([]),
            "an assistant never seen",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/steps{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn steps_of_an_empty_window_are_an_empty_list() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    app.ingest_ok(json!([with(
        interaction(new_id(), "s", &clock.ago_d(2)),
        json!({"steps": [step("retrieval", 1.0)]})
    )]))
    .await;

    // Act
    let got = app.analytics("/steps?days=1").await;

    // Assert
    assert_eq!(got, json!([]));
}

#[tokio::test]
async fn steps_mean_position_orders_a_step_seen_late_once_after_one_seen_early_twice() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        // "b-late": indices 2 and 0 → mean 1. "a-early": index 1 once → mean 1, name first.
        // "c-mid": indices 0 and 1 → mean 0.5.
        with(
            interaction(a, "s", &clock.ago_h(1)),
            json!({"steps": [
                step("c-mid", 1.0), step("a-early", 1.0), step("b-late", 1.0)
            ]})
        ),
        with(
            interaction(a, "s", &clock.ago_h(2)),
            json!({"steps": [
                step("b-late", 1.0), step("c-mid", 1.0)
            ]})
        ),
    ]))
    .await;

    // Act
    let got = app.analytics("/steps").await;

    // Assert
    let names: Vec<&str> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c-mid", "a-early", "b-late"], "{got}");
}
