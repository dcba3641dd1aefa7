//! Real OpenTelemetry clients (tests/otlp/clients.py) against the real
//! server: a LlamaIndex query engine instrumented by OpenInference
//! (streaming) and by OpenLLMetry (with a local OpenAI-compatible server, so
//! the OpenAI instrumentation records model and tokens; streamed and not),
//! and GenAI spans by hand with exact timings. The clients are configured the
//! zero-code way (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`)
//! and print the spans they recorded, from which the expectations are
//! computed.
//!
//! The Python environment comes from PyPI (`.ci/run` builds it in its cache)
//! and is found as `$RAGPULSE_OTEL_PYTHON`. The tests are ignored by a plain
//! `cargo test`; `.ci/run` runs them with `--ignored`, and there a missing
//! environment is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::helpers::{INGEST_TOKEN, TestApp, metric_sum, percentile_cont, test_prices};
use crate::otlp::wait_for_traces;

/// The Python with the OpenTelemetry clients.
fn python() -> PathBuf {
    match std::env::var_os("RAGPULSE_OTEL_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "RAGPULSE_OTEL_PYTHON is not set: it names a Python with the OpenTelemetry clients (.ci/run installs them)"
        ),
    }
}

/// A server with a short settle period, the test prices, and gpt-4o-mini
/// priced like the test model (input 1.00, cached 0.50, output 2.00 USD per
/// million tokens).
async fn spawn() -> TestApp {
    spawn_holding(None).await
}

/// [`spawn`], holding a trace that nothing begins at most `max_hold` seconds.
async fn spawn_holding(max_hold: Option<f64>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("otlp-prices.toml");
    std::fs::write(
        &prices,
        format!(
            "{}\n[[price]]\nid = \"openai/gpt-4o-mini@2024-07-18\"\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\neffective_from = 2024-07-18\ninput = 1.00\ncached_input = 0.50\noutput = 2.00\n",
            test_prices()
        ),
    )
    .unwrap();
    TestApp::spawn_in(dir, |a| {
        a.otlp_settle = Some(0.5);
        a.otlp_max_hold = max_hold;
        a.pricing_file = Some(prices);
    })
    .await
}

/// A span as the client recorded it.
#[derive(Debug, Clone)]
struct Recorded {
    name: String,
    trace: String,
    parent: Option<String>,
    start: u64,
    end: u64,
    attributes: Value,
    events: Vec<(String, u64)>,
}

/// Runs a scenario of clients.py against `app`; the spans it recorded.
async fn run(app: &TestApp, python: PathBuf, scenario: &str) -> Vec<Recorded> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let address = app.address.clone();
    let scenario = scenario.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(root.join("tests/otlp/clients.py"))
            .arg(&scenario)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", address)
            .env(
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("Authorization=Bearer%20{INGEST_TOKEN}"),
            )
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .output()
            .expect("failed to run the Python clients")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the clients failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Recorded {
                name: v["name"].as_str().unwrap().to_string(),
                trace: v["trace_id"].as_str().unwrap().to_string(),
                parent: v["parent_id"].as_str().map(str::to_string),
                start: v["start"].as_u64().unwrap(),
                end: v["end"].as_u64().unwrap(),
                attributes: v["attributes"].clone(),
                events: v["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        (
                            e["name"].as_str().unwrap().to_string(),
                            e["time"].as_u64().unwrap(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

fn traces(spans: &[Recorded]) -> BTreeMap<String, Vec<Recorded>> {
    let mut out: BTreeMap<String, Vec<Recorded>> = BTreeMap::new();
    for s in spans {
        out.entry(s.trace.clone()).or_default().push(s.clone());
    }
    out
}

/// Seconds between two instants in ns, as stored: whole microseconds.
fn stored_seconds(from: u64, to: u64) -> f64 {
    ((to - from) as f64 / 1e3).round() / 1e6
}

async fn finalised(app: &TestApp, outcome: &str) -> f64 {
    let (_, text, _) = app.get_text("/metrics").await;
    metric_sum(
        &text,
        "ragpulse_otlp_traces_total",
        &[&format!("outcome=\"{outcome}\"")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the OpenTelemetry Python clients: .ci/run installs them and runs this with --ignored"]
async fn llamaindex_with_openinference_streaming_gives_one_interaction_per_query() {
    let python = python();
    // Arrange
    let app = spawn().await;

    // Act
    let spans = run(&app, python, "openinference").await;
    let by_trace = traces(&spans);
    wait_for_traces(&app, by_trace.len() as f64).await;

    // Assert: the two queries are interactions; index building is not.
    let queries: Vec<&Vec<Recorded>> = by_trace
        .values()
        .filter(|t| t.iter().any(|s| s.name == "RetrieverQueryEngine.query"))
        .collect();
    assert_eq!(queries.len(), 2);
    assert_eq!(finalised(&app, "interaction").await, 2.0);
    assert_eq!(
        finalised(&app, "no_interaction").await,
        (by_trace.len() - 2) as f64,
        "index building made interactions"
    );
    let cache = app.analytics("/cache?hours=1").await;
    assert_eq!(cache["total_requests"], 2);

    // TTFT: the first token's instant (OpenInference's span event) minus the
    // query's start, retrieval included.
    let mut ttfts: Vec<f64> = queries
        .iter()
        .map(|trace| {
            let root = trace.iter().find(|s| s.parent.is_none()).unwrap();
            let first = trace
                .iter()
                .flat_map(|s| &s.events)
                .filter(|(name, _)| name == "First Token Stream Event")
                .map(|(_, t)| *t)
                .min()
                .expect("a first-token event");
            stored_seconds(root.start, first)
        })
        .collect();
    ttfts.sort_by(f64::total_cmp);
    let ttft = app.analytics("/ttft?hours=1").await;
    assert_eq!(
        ttft,
        json!({"p50": percentile_cont(&ttfts, 0.5), "p95": percentile_cont(&ttfts, 0.95),
               "p99": percentile_cont(&ttfts, 0.99), "period_hours": 1})
    );
    for value in &ttfts {
        assert!(
            *value >= 0.2,
            "the local model waits 0.2 s before its first chunk: {value}"
        );
    }

    // Tokens from the local model's usage, priced by the test's gpt-4o-mini
    // price (OpenInference names the requested model).
    let costs = app.analytics("/costs?hours=1").await;
    assert_eq!(costs[0]["assistant_name"], "docs-bot");
    assert_eq!(
        (&costs[0]["input_tokens"], &costs[0]["output_tokens"]),
        (&json!(240), &json!(6))
    );
    assert_eq!(costs[0]["estimated_cost_usd"], json!(0.000252));

    // Session and user from OpenInference's context attributes.
    let sessions = app.analytics("/sessions?days=1").await;
    assert_eq!(
        sessions[1],
        json!({"session_type": "Normal (2-5)", "session_count": 1, "percentage": 100.0})
    );
    let users = app.analytics("/users?days=1").await;
    assert_eq!(
        (
            &users[0]["user_id"],
            &users[0]["interaction_count"],
            &users[0]["total_tokens"]
        ),
        (&json!("ada@example.com"), &json!(2), &json!(246))
    );
    let trending = app.analytics("/trending").await;
    let questions: BTreeSet<&str> = trending
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["canonical_text"].as_str().unwrap())
        .collect();
    assert_eq!(
        questions,
        BTreeSet::from(["How do I reset my password?", "When are invoices sent?"])
    );

    // Steps: the query embedding is its own step inside retrieval; the
    // streamed answer lasts until the query's end.
    let steps = app.analytics("/steps?days=1").await;
    let names: BTreeSet<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["embedding", "retrieval", "synthesis"])
    );
    let synthesis: Vec<f64> = queries
        .iter()
        .map(|trace| {
            let llm = trace
                .iter()
                .filter(|s| s.attributes["openinference.span.kind"] == "LLM")
                .min_by_key(|s| s.start)
                .unwrap();
            let end = trace.iter().map(|s| s.end).max().unwrap();
            stored_seconds(llm.start, end)
        })
        .collect();
    let step = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_name"] == "synthesis")
        .unwrap();
    let expected = (synthesis[0] + synthesis[1]) / 2.0;
    assert!(
        (step["avg_duration"].as_f64().unwrap() - expected).abs() < 1e-6,
        "synthesis {step} against {expected}"
    );
    assert_eq!(step["avg_tokens"], json!({"input": 120.0, "output": 3.0}));

    // Retrieved documents: the ids in the nodes' metadata, twice each.
    let utilization = app.analytics("/utilization?days=1").await;
    let counts: Vec<i64> = utilization
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["retrieval_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the OpenTelemetry Python clients: .ci/run installs them and runs this with --ignored"]
async fn llamaindex_with_openllmetry_records_the_model_and_tokens_of_the_openai_call() {
    let python = python();
    // Arrange
    let app = spawn().await;

    // Act
    let spans = run(&app, python, "openllmetry").await;
    let by_trace = traces(&spans);
    wait_for_traces(&app, by_trace.len() as f64).await;

    // Assert
    assert_eq!(finalised(&app, "interaction").await, 1.0);
    let chat = spans
        .iter()
        .find(|s| s.name == "openai.chat")
        .expect("an openai.chat span");
    let costs = app.analytics("/costs?hours=1").await;
    // The response's model (ragpulse-test-model): 120 × 1.00 + 3 × 2.00 per million.
    assert_eq!(
        costs,
        json!([{"assistant_id": costs[0]["assistant_id"], "assistant_name": "billing-bot",
                "total_tokens": 123, "input_tokens": 120, "output_tokens": 3,
                "estimated_cost_usd": 0.000126}])
    );
    // Not streamed: no first token.
    let ttft = app.analytics("/ttft?hours=1").await;
    assert_eq!(ttft["p50"], 0.0);
    let steps = app.analytics("/steps?days=1").await;
    let step = |name: &str| {
        steps
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step_name"] == name)
            .unwrap_or_else(|| panic!("no {name} step in {steps}"))
            .clone()
    };
    assert_eq!(
        step("synthesis")["avg_duration"],
        json!(stored_seconds(chat.start, chat.end))
    );
    assert_eq!(
        step("synthesis")["avg_tokens"],
        json!({"input": 120.0, "output": 3.0})
    );
    // The retriever's outer task minus the query embedding inside it.
    let retriever = spans
        .iter()
        .filter(|s| s.name == "VectorIndexRetriever.task")
        .min_by_key(|s| s.start)
        .unwrap();
    let embedding = spans
        .iter()
        .filter(|s| s.attributes["gen_ai.operation.name"] == "embeddings" && s.trace == chat.trace)
        .min_by_key(|s| s.start)
        .unwrap();
    let retrieval = stored_seconds(
        0,
        (retriever.end - retriever.start) - (embedding.end - embedding.start),
    );
    assert_eq!(step("retrieval")["avg_duration"], json!(retrieval));
    let trending = app.analytics("/trending").await;
    assert_eq!(trending[0]["canonical_text"], "When are invoices sent?");
    let utilization = app.analytics("/utilization?days=1").await;
    assert_eq!(utilization.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the OpenTelemetry Python clients: .ci/run installs them and runs this with --ignored"]
async fn a_streamed_openllmetry_query_whose_query_span_is_never_exported_is_one_interaction() {
    let python = python();
    // Arrange: the trace has no root, so it waits for the maximum hold.
    let app = spawn_holding(Some(3.0)).await;

    // Act
    let spans = run(&app, python, "openllmetry-streaming").await;
    let by_trace = traces(&spans);
    wait_for_traces(&app, by_trace.len() as f64).await;

    // Assert: the retrieval and the answer are one interaction.
    let chat = spans
        .iter()
        .find(|s| s.name == "openai.chat")
        .expect("an openai.chat span");
    let query = &by_trace[&chat.trace];
    assert!(
        query.iter().all(|s| s.parent.is_some()),
        "a span of the query trace has no parent: the rootless case is not exercised"
    );
    assert_eq!(finalised(&app, "interaction").await, 1.0);
    let cache = app.analytics("/cache?hours=1").await;
    assert_eq!(cache["total_requests"], 1);
    let costs = app.analytics("/costs?hours=1").await;
    assert_eq!(
        (&costs[0]["input_tokens"], &costs[0]["output_tokens"]),
        (&json!(120), &json!(3))
    );
    // TTFT: the first chunk event minus the earliest exported span's start
    // (the retriever's), retrieval included.
    let start = query.iter().map(|s| s.start).min().unwrap();
    let first = chat
        .events
        .iter()
        .filter(|(name, _)| name == "gen_ai.content.completion.chunk")
        .map(|(_, t)| *t)
        .min()
        .expect("a chunk event");
    let ttft = stored_seconds(start, first);
    assert_eq!(
        app.analytics("/ttft?hours=1").await,
        json!({"p50": ttft, "p95": ttft, "p99": ttft, "period_hours": 1})
    );
    let trending = app.analytics("/trending").await;
    assert_eq!(trending[0]["canonical_text"], "When are invoices sent?");
    let steps = app.analytics("/steps?days=1").await;
    let names: BTreeSet<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["embedding", "retrieval", "synthesis"])
    );
    let utilization = app.analytics("/utilization?days=1").await;
    assert_eq!(utilization.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the OpenTelemetry Python clients: .ci/run installs them and runs this with --ignored"]
async fn hand_written_genai_spans_split_resent_and_out_of_order_count_once() {
    let python = python();
    // Arrange
    let app = spawn().await;

    // Act
    let spans = run(&app, python, "semconv").await;
    wait_for_traces(&app, traces(&spans).len() as f64).await;

    // Assert: one interaction; the index build is not one.
    assert_eq!(finalised(&app, "interaction").await, 1.0);
    assert_eq!(finalised(&app, "no_interaction").await, 1.0);
    let ttft = app.analytics("/ttft?hours=1").await;
    assert_eq!(
        ttft,
        json!({"p50": 0.75, "p95": 0.75, "p99": 0.75, "period_hours": 1})
    );
    let steps = app.analytics("/steps?days=1").await;
    assert_eq!(
        steps,
        json!([
            {"step_name": "retrieval", "avg_duration": 0.25, "step_count": 1, "avg_tokens": null},
            {"step_name": "synthesis", "avg_duration": 1.5, "step_count": 1,
             "avg_tokens": {"input": 800.0, "output": 50.0}},
        ])
    );
    let costs = app.analytics("/costs?hours=1").await;
    assert_eq!(costs[0]["estimated_cost_usd"], json!(0.0009));
    let users = app.analytics("/users?days=1").await;
    assert_eq!(users[0]["user_id"], "u-42");
    let trending = app.analytics("/trending").await;
    assert_eq!(trending[0]["canonical_text"], "Can I change my plan?");
    assert_eq!(trending.as_array().unwrap().len(), 1);
    let sessions = app.analytics("/sessions?days=1").await;
    assert_eq!(sessions[0]["session_count"], 1);
}
