//! `POST /v1/traces` (docs/otlp.md): OTLP/HTTP exports built with the
//! protocol's own types, sent to a real server whose settle period is short,
//! and what they become, read through the analytics endpoints.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Any};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Event};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{ADMIN_TOKEN, INGEST_TOKEN, TEST_MODEL, TestApp, gzip, metric_sum};

/// Settle period of the test servers, seconds.
const SETTLE: f64 = 0.3;

pub async fn spawn() -> TestApp {
    TestApp::spawn_with(|a| a.otlp_settle = Some(SETTLE)).await
}

pub fn attr(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn s(text: &str) -> Any {
    Any::StringValue(text.to_string())
}

pub fn i(n: i64) -> Any {
    Any::IntValue(n)
}

pub fn f(x: f64) -> Any {
    Any::DoubleValue(x)
}

/// Nanoseconds since the epoch of "now minus `seconds_ago`", whole microseconds.
pub fn ns_ago(seconds_ago: f64) -> u64 {
    let now_us = chrono::Utc::now().timestamp_micros() as u64;
    (now_us - (seconds_ago * 1e6) as u64) * 1_000
}

/// One span: `id` and `parent` are small numbers made into 8-byte ids.
pub fn span(
    trace: [u8; 16],
    id: u8,
    parent: Option<u8>,
    name: &str,
    (start, end): (u64, u64),
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: span_id(id).to_vec(),
        parent_span_id: parent.map(|p| span_id(p).to_vec()).unwrap_or_default(),
        name: name.to_string(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        ..Default::default()
    }
}

pub fn span_id(n: u8) -> [u8; 8] {
    [0, 0, 0, 0, 0, 0, 1, n]
}

#[allow(dead_code)]
pub fn with_event(mut span: Span, name: &str, at: u64) -> Span {
    span.events.push(Event {
        time_unix_nano: at,
        name: name.to_string(),
        ..Default::default()
    });
    span
}

pub fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", s(service))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `POST /v1/traces`: (status, body bytes, content type, retry-after).
pub async fn post(
    app: &TestApp,
    body: Vec<u8>,
    content_type: &str,
    encoding: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, Vec<u8>, String, Option<String>) {
    let mut request = app
        .client
        .post(app.url("/v1/traces"))
        .header("Content-Type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("Content-Encoding", encoding);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the export failed");
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry = header("retry-after");
    (
        status,
        response.bytes().await.unwrap().to_vec(),
        content_type,
        retry,
    )
}

/// Exports `request` as protobuf with the ingest token, asserting a full success.
pub async fn send(app: &TestApp, request: &ExportTraceServiceRequest) {
    let (status, body, _, _) = post(
        app,
        request.encode_to_vec(),
        "application/x-protobuf",
        None,
        Some(INGEST_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer = ExportTraceServiceResponse::decode(&body[..]).expect("a protobuf answer");
    assert_eq!(answer.partial_success, None, "spans were refused");
}

/// Polls `/metrics` until `ragpulse_otlp_traces_total` reaches `n`.
pub async fn wait_for_traces(app: &TestApp, n: f64) {
    for _ in 0..200 {
        let (_, text, _) = app.get_text("/metrics").await;
        if metric_sum(&text, "ragpulse_otlp_traces_total", &[]) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} traces were not finalised within 10 s");
}

fn service_assistant(name: &str) -> Uuid {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:ragpulse:assistant");
    Uuid::new_v5(&namespace, name.as_bytes())
}

/// A RAG query by hand with the GenAI conventions, at exact times (seconds
/// after `t0`): workflow 0–3.0; retrieval 0.1–0.5 holding a query embedding
/// 0.1–0.15; chat 0.6–2.9 whose first chunk came 0.5 s after it started.
fn semconv_trace(trace: [u8; 16], t0: u64, question: &str, docs: &[Uuid]) -> Vec<Span> {
    let at = |s: f64| t0 + (s * 1e9) as u64;
    let documents = json!(
        docs.iter()
            .map(|d| json!({"id": d, "score": 0.9}))
            .collect::<Vec<_>>()
    );
    vec![
        span(trace, 1, None, "invoke_workflow rag", (at(0.0), at(3.0)), vec![
            attr("gen_ai.operation.name", s("invoke_workflow")),
            attr("gen_ai.conversation.id", s("conv-7")),
            attr("user.id", s("auth0|ada")),
            attr(
                "gen_ai.input.messages",
                s(&json!([{"role": "user", "parts": [{"type": "text", "content": question}]}]).to_string()),
            ),
        ]),
        span(trace, 2, Some(1), "retrieval kb", (at(0.1), at(0.5)), vec![
            attr("gen_ai.operation.name", s("retrieval")),
            attr("gen_ai.retrieval.documents", s(&documents.to_string())),
        ]),
        span(trace, 3, Some(2), "embeddings e5", (at(0.1), at(0.15)), vec![
            attr("gen_ai.operation.name", s("embeddings")),
            attr("gen_ai.request.model", s("e5")),
            attr("gen_ai.usage.input_tokens", i(9)),
        ]),
        span(trace, 4, Some(1), "chat gpt", (at(0.6), at(2.9)), vec![
            attr("gen_ai.operation.name", s("chat")),
            attr("gen_ai.provider.name", s("openai")),
            attr("gen_ai.request.model", s("gpt-4o")),
            attr("gen_ai.response.model", s(TEST_MODEL)),
            attr("gen_ai.usage.input_tokens", i(1000)),
            attr("gen_ai.usage.output_tokens", i(200)),
            attr("gen_ai.usage.cache_read.input_tokens", i(400)),
            attr("gen_ai.response.time_to_first_chunk", f(0.5)),
        ]),
    ]
}

#[tokio::test]
async fn a_genai_semconv_trace_becomes_one_interaction_with_exact_values() {
    // Arrange
    let app = spawn().await;
    let trace = [0x5a; 16];
    let docs = [Uuid::new_v4(), Uuid::new_v4()];
    let t0 = ns_ago(60.0);
    let spans = semconv_trace(trace, t0, "How do I reset my password?", &docs);

    // Act: children first, the root last, in two requests.
    send(&app, &export("support-bot", spans[1..].to_vec())).await;
    send(&app, &export("support-bot", spans[..1].to_vec())).await;
    wait_for_traces(&app, 1.0).await;

    // Assert
    let assistant = service_assistant("support-bot");
    let ttft = app.analytics("/ttft?hours=1").await;
    assert_eq!(
        ttft,
        json!({"p50": 1.1, "p95": 1.1, "p99": 1.1, "period_hours": 1})
    );
    let costs = app.analytics("/costs?hours=1").await;
    // (1000 − 400) × 1.00 + 400 × 0.50 + 200 × 2.00 per million.
    assert_eq!(
        costs,
        json!([{"assistant_id": assistant, "assistant_name": "support-bot", "total_tokens": 1200,
                "input_tokens": 1000, "output_tokens": 200, "estimated_cost_usd": 0.0012}])
    );
    let steps = app.analytics("/steps?days=1").await;
    assert_eq!(
        steps,
        json!([
            {"step_name": "retrieval", "avg_duration": 0.35, "step_count": 1, "avg_tokens": null},
            {"step_name": "embedding", "avg_duration": 0.05, "step_count": 1, "avg_tokens": null},
            {"step_name": "synthesis", "avg_duration": 2.4, "step_count": 1,
             "avg_tokens": {"input": 1000.0, "output": 200.0}},
        ])
    );
    let users = app.analytics("/users?days=1").await;
    assert_eq!(users[0]["user_id"], "auth0|ada");
    assert_eq!(users[0]["total_tokens"], 1200);
    let trending = app.analytics("/trending").await;
    assert_eq!(trending[0]["canonical_text"], "How do I reset my password?");
    let (_, assistants) = app.get("/api/v1/assistants").await;
    assert_eq!(assistants[0]["assistant_id"], json!(assistant));
    assert_eq!(assistants[0]["assistant_name"], "support-bot");
    assert_eq!(assistants[0]["registered"], true);
}

#[tokio::test]
async fn the_protocol_answers_as_otlp_says_in_the_requests_encoding() {
    // Arrange
    let app = spawn().await;
    let t0 = ns_ago(30.0);
    let good = span([7; 16], 1, None, "chat", (t0, t0 + 1_000), vec![]);
    let mut no_ids = good.clone();
    no_ids.trace_id = vec![0; 16];
    let mut bad_assistant = good.clone();
    bad_assistant.span_id = span_id(2).to_vec();
    bad_assistant
        .attributes
        .push(attr("ragpulse.assistant_id", s("not-a-uuid")));
    let request = export("svc", vec![good.clone(), no_ids.clone(), bad_assistant]);

    // Act + Assert: no token, then a wrong content type.
    let (status, ..) = post(
        &app,
        request.encode_to_vec(),
        "application/x-protobuf",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, ..) = post(&app, vec![], "text/plain", None, Some(INGEST_TOKEN)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Protobuf, gzip, admin token: a partial success counting the two bad spans.
    let (status, body, content_type, _) = post(
        &app,
        gzip(&request.encode_to_vec()),
        "application/x-protobuf",
        Some("gzip"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/x-protobuf")
    );
    let partial = ExportTraceServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("trace id"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("not-a-uuid"),
        "{}",
        partial.error_message
    );

    // OTLP/JSON in, OTLP/JSON out, with 64-bit integers as strings.
    let json_body = serde_json::to_vec(&export("svc", vec![no_ids])).unwrap();
    let (status, body, content_type, _) = post(
        &app,
        json_body,
        "application/json; charset=utf-8",
        None,
        Some(INGEST_TOKEN),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "every span lacks valid ids: {body:?}"
    );
    assert_eq!(content_type, "application/json");
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        answer["message"].as_str().unwrap().contains("/v1/logs"),
        "{answer}"
    );
    let json_body = serde_json::to_vec(&export("svc", vec![good])).unwrap();
    let (status, body, ..) = post(
        &app,
        json_body,
        "application/json",
        None,
        Some(INGEST_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({}));

    // Garbage, and a body over the limit.
    let (status, body, ..) = post(
        &app,
        b"\xff\xff\xff".to_vec(),
        "application/x-protobuf",
        None,
        Some(INGEST_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let status_message = crate::otlp::status_of(&body);
    assert!(
        status_message.contains("ExportTraceServiceRequest"),
        "{status_message}"
    );
    let small = TestApp::spawn_with(|a| a.max_body_bytes = Some(1_000)).await;
    let big = gzip(&vec![0u8; 5_000]);
    let (status, ..) = post(
        &small,
        big,
        "application/x-protobuf",
        Some("gzip"),
        Some(INGEST_TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// The message of a protobuf `google.rpc.Status` body.
pub fn status_of(body: &[u8]) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    Status::decode(body).map(|s| s.message).unwrap_or_default()
}

#[tokio::test]
async fn pending_spans_survive_a_restart_and_late_spans_are_counted() {
    // Arrange: the children of a trace arrive, then the server stops
    // before the trace is complete (a settle period of a minute).
    let app = TestApp::spawn_with(|a| a.otlp_settle = Some(60.0)).await;
    let trace = [0x11; 16];
    let spans = semconv_trace(trace, ns_ago(90.0), "Where is my invoice?", &[]);
    send(&app, &export("billing", spans[1..].to_vec())).await;
    let dir = app.stop().await;

    // Act: the root arrives at the restarted server; it settles; the root is
    // then resent (an exporter retry) and an unknown span of the trace arrives late.
    let app = TestApp::spawn_in(dir, |a| a.otlp_settle = Some(SETTLE)).await;
    send(&app, &export("billing", spans[..1].to_vec())).await;
    wait_for_traces(&app, 1.0).await;
    send(&app, &export("billing", spans[..1].to_vec())).await;
    let late = span(
        trace,
        9,
        Some(1),
        "late",
        (ns_ago(80.0), ns_ago(79.0)),
        vec![],
    );
    send(&app, &export("billing", vec![late])).await;

    // Assert: one interaction holding every span's facts.
    let steps = app.analytics("/steps?days=1").await;
    let names: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["retrieval", "embedding", "synthesis"]);
    let cache = app.analytics("/cache?hours=2").await;
    assert_eq!(cache["total_requests"], 1);
    let (_, text, _) = app.get_text("/metrics").await;
    assert_eq!(
        metric_sum(&text, "ragpulse_otlp_spans_late_total", &[]),
        1.0
    );
    assert_eq!(
        metric_sum(&text, "ragpulse_otlp_spans_resent_total", &[]),
        1.0
    );
    assert_eq!(metric_sum(&text, "ragpulse_otlp_pending_spans", &[]), 0.0);
}

#[tokio::test]
async fn a_trace_without_llm_or_retrieval_work_yields_no_interaction() {
    // Arrange: an index build (embeddings only) and a chain with no LLM call.
    let app = spawn().await;
    let t0 = ns_ago(20.0);
    let build = vec![
        span(
            [1; 16],
            1,
            None,
            "index build",
            (t0, t0 + 9_000),
            vec![attr("openinference.span.kind", s("CHAIN"))],
        ),
        span(
            [1; 16],
            2,
            Some(1),
            "embed",
            (t0 + 1_000, t0 + 8_000),
            vec![attr("openinference.span.kind", s("EMBEDDING"))],
        ),
    ];

    // Act
    send(&app, &export("indexer", build)).await;
    wait_for_traces(&app, 1.0).await;

    // Assert
    let (_, text, _) = app.get_text("/metrics").await;
    assert_eq!(
        metric_sum(
            &text,
            "ragpulse_otlp_traces_total",
            &["outcome=\"no_interaction\""]
        ),
        1.0
    );
    let cache = app.analytics("/cache?hours=1").await;
    assert_eq!(cache, Value::Null);
}

#[tokio::test]
async fn a_backlog_of_several_rounds_is_finalised_once_per_trace() {
    // Arrange: more traces than two finalisation rounds (2,000 traces each),
    // so rounds overlap: one is mapped while the writer stores the other.
    let app = spawn().await;
    let traces = 4_500u64;
    let t0 = ns_ago(60.0);
    let all: Vec<Vec<Span>> = (0..traces)
        .map(|n| {
            let mut trace = [0xab; 16];
            trace[..8].copy_from_slice(&(n + 1).to_be_bytes());
            semconv_trace(trace, t0, "How do I reset my password?", &[])
        })
        .collect();

    // Act
    for chunk in all.chunks(500) {
        send(&app, &export("support-bot", chunk.concat())).await;
    }
    wait_for_traces(&app, traces as f64).await;
    // The pending gauges are updated after each round.
    let mut text = String::new();
    for _ in 0..100 {
        text = app.get_text("/metrics").await.1;
        if metric_sum(&text, "ragpulse_otlp_pending_spans", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert: every trace stored once, as one interaction of 1,200 tokens.
    let metric = |name: &str, labels: &[&str]| metric_sum(&text, name, labels);
    assert_eq!(
        metric("ragpulse_otlp_traces_total", &["outcome=\"interaction\""]),
        traces as f64
    );
    assert_eq!(metric("ragpulse_otlp_traces_total", &[]), traces as f64);
    assert_eq!(
        metric("ragpulse_otlp_interactions_total", &[]),
        traces as f64
    );
    assert_eq!(metric("ragpulse_otlp_pending_spans", &[]), 0.0);
    let costs = app.analytics("/costs?hours=1").await;
    assert_eq!(costs[0]["total_tokens"], json!(traces * 1_200));
}
