//! The mapping per convention: spans as each instrumentation writes them
//! (OpenInference, OpenLLMetry/Traceloop, the GenAI semantic conventions,
//! `ragpulse.*` overrides) go through the receiver's reduction to facts, the
//! pending row's encoding and the finaliser's assembly, and must give
//! exactly the interaction events written out here by hand.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::Event};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::assemble::{Mapped, assistant_for_service, map_trace};
use super::facts::{self, TraceRow};
use super::finalizer::validate_draft;
use crate::ingest::validate::EventLimits;

const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const TRACE_UUID: &str = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
/// 2023-11-14T22:13:20Z, in ns.
const T0: u64 = 1_700_000_000_000_000_000;
const T0_TEXT: &str = "2023-11-14T22:13:20.000000Z";
const DOC_1: &str = "5d1c7e2a-0000-4000-8000-00000000000a";
const DOC_2: &str = "5d1c7e2a-0000-4000-8000-00000000000b";

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(text: &str) -> Value {
    Value::StringValue(text.to_string())
}

fn int(n: i64) -> Value {
    Value::IntValue(n)
}

fn ms(m: u64) -> u64 {
    T0 + m * 1_000_000
}

/// A span of [`TRACE`]; ids are small numbers, times milliseconds after [`T0`].
fn span(id: u8, parent: Option<u8>, name: &str, (a, b): (u64, u64), attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: [0, 0, 0, 0, 0, 0, 0, id].to_vec(),
        parent_span_id: parent
            .map(|p| [0, 0, 0, 0, 0, 0, 0, p].to_vec())
            .unwrap_or_default(),
        name: name.to_string(),
        kind: 1,
        start_time_unix_nano: ms(a),
        end_time_unix_nano: ms(b),
        attributes: attrs,
        ..Default::default()
    }
}

/// The spans of one resource through the receiver's reduction, the pending
/// row's encoding and the finaliser's mapping.
fn map(resource: Vec<KeyValue>, spans: &[Span]) -> Mapped {
    let resource = facts::resource_facts(&resource).unwrap();
    let row = TraceRow {
        resource,
        spans: spans
            .iter()
            .map(|s| facts::span_facts(s).unwrap())
            .collect(),
    };
    let stored = postcard::to_allocvec(&row).unwrap();
    let row: TraceRow = postcard::from_bytes(&stored).unwrap();
    map_trace(&TRACE, &[row])
}

/// The one interaction of a trace, checked to pass ingest's validation.
fn only_interaction(mapped: &Mapped) -> Json {
    assert_eq!(mapped.interactions.len(), 1, "{:?}", mapped.interactions);
    let event = mapped.interactions[0].event.clone();
    let now = (T0 / 1_000) as i64 + 60_000_000;
    if let Err(message) = validate_draft(&event, &EventLimits::default(), now) {
        panic!("the interaction does not pass validation: {message}\n{event}");
    }
    event
}

#[test]
fn openinference_llamaindex_streaming_query() {
    // Arrange: a LlamaIndex query engine with a retriever (its query
    // embedding inside), a reranker and a streamed answer.
    let kind = |k: &str| kv("openinference.span.kind", s(k));
    let question = "How do I reset my password?";
    let mut llm = span(
        6,
        Some(5),
        "OpenAI.chat",
        (170, 400),
        vec![
            kind("LLM"),
            kv("llm.model_name", s("gpt-4o-mini")),
            kv("llm.provider", s("openai")),
            kv(
                "input.value",
                s("Context: ... Query: How do I reset my password?"),
            ),
            kv("llm.token_count.prompt", int(900)),
            kv("llm.token_count.completion", int(60)),
            kv("llm.token_count.total", int(960)),
        ],
    );
    llm.events.push(Event {
        time_unix_nano: ms(350),
        name: "First Token Stream Event".to_string(),
        ..Default::default()
    });
    let spans = vec![
        span(
            1,
            None,
            "RetrieverQueryEngine.query",
            (0, 2000),
            vec![
                kind("CHAIN"),
                kv("input.value", s(question)),
                kv("session.id", s("web-1")),
                kv("user.id", s("ada@example.com")),
            ],
        ),
        span(
            2,
            Some(1),
            "VectorIndexRetriever.retrieve",
            (10, 110),
            vec![
                kind("RETRIEVER"),
                kv("input.value", s(question)),
                kv("retrieval.documents.0.document.id", s("node-a")),
                kv(
                    "retrieval.documents.0.document.score",
                    Value::DoubleValue(0.8),
                ),
                kv(
                    "retrieval.documents.0.document.metadata",
                    s(&format!(
                        r#"{{"document_id": "{DOC_1}", "file_name": "a.pdf"}}"#
                    )),
                ),
                kv("retrieval.documents.1.document.id", s(DOC_2)),
            ],
        ),
        span(
            3,
            Some(2),
            "OpenAIEmbedding.get_query_embedding",
            (20, 60),
            vec![
                kind("EMBEDDING"),
                kv("embedding.model_name", s("text-embedding-3-small")),
            ],
        ),
        span(
            4,
            Some(1),
            "SentenceTransformerRerank._postprocess_nodes",
            (120, 150),
            vec![
                kind("RERANKER"),
                kv("reranker.query", s(question)),
                kv("reranker.input_documents.0.document.id", s("node-a")),
                kv(
                    "reranker.input_documents.0.document.score",
                    Value::DoubleValue(0.75),
                ),
                kv("reranker.input_documents.1.document.id", s("node-b")),
                kv(
                    "reranker.input_documents.1.document.score",
                    Value::DoubleValue(0.5),
                ),
                kv("reranker.output_documents.0.document.id", s("node-b")),
                kv(
                    "reranker.output_documents.0.document.score",
                    Value::DoubleValue(1.0),
                ),
                kv("reranker.output_documents.1.document.id", s("node-a")),
                kv(
                    "reranker.output_documents.1.document.score",
                    Value::DoubleValue(0.5),
                ),
            ],
        ),
        span(
            5,
            Some(1),
            "CompactAndRefine.synthesize",
            (160, 1990),
            vec![kind("CHAIN"), kv("input.value", s(question))],
        ),
        llm,
    ];

    // Act
    let mapped = map(vec![kv("service.name", s("docs-bot"))], &spans);

    // Assert: the answer streams until the query ends (2 s), so synthesis
    // lasts 2000 − 170 ms; the retrieval's own time excludes its embedding;
    // the rerank scores average over the two kept documents.
    let assistant = "a3fb7b88-8a97-537d-9e47-0cb370b296f5";
    assert_eq!(assistant_for_service("docs-bot").to_string(), assistant);
    assert_eq!(
        only_interaction(&mapped),
        json!({
            "type": "interaction",
            "id": TRACE_UUID,
            "timestamp": T0_TEXT,
            "assistant_id": assistant,
            "session_id": "web-1",
            "user_id": "ada@example.com",
            "question": question,
            "total_duration_s": 2.0,
            "ttft_s": 0.35,
            "cache_hit": false,
            "model": "gpt-4o-mini",
            "provider": "openai",
            "input_tokens": 900,
            "output_tokens": 60,
            "cached_input_tokens": 0,
            "steps": [
                {"name": "retrieval", "duration_s": 0.06},
                {"name": "embedding", "duration_s": 0.04},
                {"name": "reranking", "duration_s": 0.03},
                {"name": "synthesis", "duration_s": 1.83, "input_tokens": 900, "output_tokens": 60},
            ],
            "retrieved_document_ids": [DOC_1, DOC_2],
            "rerank": {"score_before": 0.625, "score_after": 0.75, "position_change": 1.0},
        })
    );
    assert_eq!(
        mapped.interactions[0].service_name.as_deref(),
        Some("docs-bot")
    );
    assert_eq!(mapped.span_ids.len(), 6);
    assert_eq!(
        (mapped.duplicate_spans, mapped.unresolved_documents),
        (0, 0)
    );
}

#[test]
fn openllmetry_llamaindex_query_with_the_openai_instrumentation() {
    // Arrange: traceloop's workflow/task spans around OpenAI client spans.
    let kind = |k: &str| kv("traceloop.span.kind", s(k));
    let node = json!([{"node": {"id_": "n-1", "metadata": {"document_id": DOC_1}}, "score": 0.8}]);
    let spans = vec![
        span(
            1,
            None,
            "RetrieverQueryEngine.workflow",
            (0, 1000),
            vec![
                kind("workflow"),
                kv(
                    "traceloop.entity.input",
                    s(
                        r#"{"args": [], "kwargs": {"str_or_query_bundle": "When are invoices sent?"}}"#,
                    ),
                ),
                kv("traceloop.association.properties.session_id", s("s-7")),
                kv("traceloop.association.properties.user_id", s("u-7")),
            ],
        ),
        span(
            2,
            Some(1),
            "VectorIndexRetriever.task",
            (10, 100),
            vec![
                kind("task"),
                // Each node a JSON string inside the array, as the SDK writes it.
                kv(
                    "traceloop.entity.output",
                    s(&json!([node[0].to_string()]).to_string()),
                ),
            ],
        ),
        span(
            3,
            Some(2),
            "openai.embeddings",
            (20, 50),
            vec![
                kv("gen_ai.operation.name", s("embeddings")),
                kv("gen_ai.system", s("openai")),
                kv("gen_ai.request.model", s("text-embedding-3-small")),
                kv("gen_ai.usage.input_tokens", int(7)),
            ],
        ),
        span(
            4,
            Some(1),
            "CompactAndRefine.task",
            (110, 990),
            vec![kind("task")],
        ),
        span(
            5,
            Some(4),
            "openai.chat",
            (120, 980),
            vec![
                kv("llm.request.type", s("chat")),
                kv("gen_ai.system", s("openai")),
                kv("gen_ai.request.model", s("gpt-4o-mini")),
                kv("gen_ai.response.model", s("gpt-4o-mini-2024-07-18")),
                kv("gen_ai.usage.prompt_tokens", int(120)),
                kv("gen_ai.usage.completion_tokens", int(3)),
                kv("gen_ai.usage.cache_read_input_tokens", int(100)),
            ],
        ),
    ];

    // Act
    let mapped = map(vec![kv("service.name", s("billing-bot"))], &spans);

    // Assert: the embedding's tokens are not the answer's; the response's
    // model is what was priced; nothing streamed, so no TTFT.
    assert_eq!(
        only_interaction(&mapped),
        json!({
            "type": "interaction",
            "id": TRACE_UUID,
            "timestamp": T0_TEXT,
            "assistant_id": "8e2d0052-2b94-5b88-b5f0-25487a35a701",
            "session_id": "s-7",
            "user_id": "u-7",
            "question": "When are invoices sent?",
            "total_duration_s": 1.0,
            "cache_hit": false,
            "model": "gpt-4o-mini-2024-07-18",
            "provider": "openai",
            "input_tokens": 120,
            "output_tokens": 3,
            "cached_input_tokens": 100,
            "steps": [
                {"name": "retrieval", "duration_s": 0.06},
                {"name": "embedding", "duration_s": 0.03},
                {"name": "synthesis", "duration_s": 0.86, "input_tokens": 120, "output_tokens": 3},
            ],
            "retrieved_document_ids": [DOC_1],
        })
    );
}

#[test]
fn genai_semconv_workflow_with_nested_chat_spans_and_an_index_build() {
    // Arrange: a workflow whose question is the user's last message, a
    // retrieval with one unresolvable document, a tool call, and a
    // framework's chat span over the client library's (whose tokens count).
    let op = |name: &str| kv("gen_ai.operation.name", s(name));
    let messages = json!([
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Can I change my plan?"}]},
    ]);
    let spans = vec![
        span(
            1,
            None,
            "invoke_workflow rag",
            (0, 2000),
            vec![
                op("invoke_workflow"),
                kv("gen_ai.conversation.id", s("thread-9")),
                kv("enduser.id", s("e-1")),
                kv("user.id", s("u-42")),
                kv("gen_ai.input.messages", s(&messages.to_string())),
            ],
        ),
        span(
            2,
            Some(1),
            "retrieval plans",
            (200, 450),
            vec![
                op("retrieval"),
                kv("gen_ai.retrieval.query.text", s("change plan")),
                kv(
                    "gen_ai.retrieval.documents",
                    s(&json!([{"id": DOC_1, "score": 0.7}, {"id": "chunk-17"}]).to_string()),
                ),
            ],
        ),
        span(
            3,
            Some(1),
            "execute_tool lookup_plan",
            (460, 500),
            vec![op("execute_tool")],
        ),
        span(
            4,
            Some(1),
            "chat gpt-4o-mini",
            (500, 1750),
            vec![
                op("chat"),
                kv("gen_ai.provider.name", s("openai")),
                kv("gen_ai.request.model", s("gpt-4o-mini")),
                kv("gen_ai.usage.input_tokens", int(999)),
                kv("gen_ai.usage.output_tokens", int(99)),
                kv(
                    "gen_ai.response.time_to_first_chunk",
                    Value::DoubleValue(0.25),
                ),
            ],
        ),
        span(
            5,
            Some(4),
            "chat gpt-4o-mini",
            (510, 1740),
            vec![
                op("chat"),
                kv("gen_ai.response.model", s("gpt-4o-mini-2024-07-18")),
                kv("gen_ai.usage.input_tokens", int(800)),
                kv("gen_ai.usage.output_tokens", int(50)),
                kv("gen_ai.usage.cache_read.input_tokens", int(200)),
            ],
        ),
    ];

    // Act
    let mapped = map(vec![kv("service.name", s("semconv-bot"))], &spans);
    let build = map(
        vec![kv("service.name", s("semconv-bot"))],
        &[span(
            9,
            None,
            "embeddings e5",
            (3000, 3500),
            vec![op("embeddings"), kv("gen_ai.request.model", s("e5"))],
        )],
    );

    // Assert: TTFT counts from the workflow's start (500 + 250 ms); the
    // streamed answer lasts until the workflow ends.
    assert_eq!(
        only_interaction(&mapped),
        json!({
            "type": "interaction",
            "id": TRACE_UUID,
            "timestamp": T0_TEXT,
            "assistant_id": "64ea58d9-1242-5a2b-9b57-d8189471f76f",
            "session_id": "thread-9",
            "user_id": "u-42",
            "question": "Can I change my plan?",
            "total_duration_s": 2.0,
            "ttft_s": 0.75,
            "cache_hit": false,
            "model": "gpt-4o-mini-2024-07-18",
            "provider": "openai",
            "input_tokens": 800,
            "output_tokens": 50,
            "cached_input_tokens": 200,
            "steps": [
                {"name": "retrieval", "duration_s": 0.25},
                {"name": "tool", "duration_s": 0.04},
                {"name": "synthesis", "duration_s": 1.5, "input_tokens": 800, "output_tokens": 50},
            ],
            "retrieved_document_ids": [DOC_1],
        })
    );
    assert_eq!(mapped.unresolved_documents, 1);
    assert!(build.interactions.is_empty(), "{:?}", build.interactions);
    assert_eq!(build.span_ids, vec![[0, 0, 0, 0, 0, 0, 0, 9]]);
}

#[test]
fn ragpulse_attributes_override_the_conventions() {
    // Arrange: a plain span marked as the interaction, with the assistant,
    // question, topic and cache hit said explicitly; a named step; and a
    // subtree excluded although it holds an LLM call.
    let assistant = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let spans = vec![
        span(
            1,
            None,
            "POST /ask",
            (0, 500),
            vec![
                kv("ragpulse.interaction", Value::BoolValue(true)),
                kv("ragpulse.question", s("How much is the pro plan?")),
                kv("ragpulse.topic", s("pricing")),
                kv("ragpulse.cache_hit", s("true")),
                kv("input.value", s("ignored: ragpulse.question wins")),
            ],
        ),
        span(
            2,
            Some(1),
            "check policy",
            (100, 300),
            vec![kv("ragpulse.step", s("policy-check"))],
        ),
        span(
            3,
            Some(1),
            "warm-up",
            (310, 400),
            vec![
                kv("ragpulse.interaction", Value::BoolValue(false)),
                kv("gen_ai.operation.name", s("chat")),
                kv("gen_ai.usage.input_tokens", int(5)),
            ],
        ),
        span(
            4,
            Some(3),
            "chat",
            (320, 390),
            vec![kv("openinference.span.kind", s("LLM"))],
        ),
    ];

    // Act
    let mapped = map(
        vec![
            kv("service.name", s("shop")),
            kv("ragpulse.assistant_id", s(assistant)),
        ],
        &spans,
    );

    // Assert: no session was given, so the trace is its own session. The
    // excluded subtree is not an interaction, but its time is the
    // interaction's (and its LLM call's tokens are counted).
    assert_eq!(
        only_interaction(&mapped),
        json!({
            "type": "interaction",
            "id": TRACE_UUID,
            "timestamp": T0_TEXT,
            "assistant_id": assistant,
            "session_id": format!("otel-{}", hex::encode(TRACE)),
            "question": "How much is the pro plan?",
            "topic": "pricing",
            "total_duration_s": 0.5,
            "cache_hit": true,
            "input_tokens": 5,
            "output_tokens": 0,
            "cached_input_tokens": 0,
            "steps": [
                {"name": "policy-check", "duration_s": 0.2},
                {"name": "synthesis", "duration_s": 0.09, "input_tokens": 5, "output_tokens": 0},
            ],
            "retrieved_document_ids": [],
        })
    );
    // `ragpulse.assistant_id` chose the assistant: nothing to register.
    assert_eq!(mapped.interactions[0].service_name, None);
    assert_eq!(
        mapped.interactions[0].assistant,
        Uuid::parse_str(assistant).unwrap()
    );
}

#[test]
fn a_resent_span_counts_once_and_an_excluded_root_gives_no_interaction() {
    // Arrange: a chain with an LLM call, its root marked as not an
    // interaction; the LLM span arrives twice (an exporter's retry).
    let kind = |k: &str| kv("openinference.span.kind", s(k));
    let spans = vec![
        span(
            1,
            None,
            "health check",
            (0, 100),
            vec![kind("CHAIN"), kv("ragpulse.interaction", s("false"))],
        ),
        span(2, Some(1), "llm", (10, 90), vec![kind("LLM")]),
        span(2, Some(1), "llm", (10, 90), vec![kind("LLM")]),
    ];

    // Act
    let mapped = map(vec![], &spans);

    // Assert
    assert!(mapped.interactions.is_empty(), "{:?}", mapped.interactions);
    assert_eq!(mapped.duplicate_spans, 1);
    assert_eq!(mapped.span_ids.len(), 2);
}

/// OpenLLMetry's spans of a streamed LlamaIndex query: the query and
/// synthesis spans are never ended, so never exported. `query` and
/// `synthesis` are the ids of those missing spans.
fn openllmetry_streaming_spans(query: u8, synthesis: u8) -> Vec<Span> {
    let task = || kv("traceloop.span.kind", s("task"));
    let node = json!({"node": {"id_": "n-1", "metadata": {"document_id": DOC_1}}, "score": 0.8});
    let mut chat = span(
        6,
        Some(synthesis),
        "openai.chat",
        (120, 980),
        vec![
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.system", s("openai")),
            kv("gen_ai.is_streaming", Value::BoolValue(true)),
            kv("gen_ai.request.model", s("gpt-4o-mini")),
            kv("gen_ai.response.model", s("gpt-4o-mini-2024-07-18")),
            kv("gen_ai.usage.input_tokens", int(120)),
            kv("gen_ai.usage.output_tokens", int(3)),
        ],
    );
    for at in [400, 450, 500] {
        chat.events.push(Event {
            time_unix_nano: ms(at),
            name: "gen_ai.content.completion.chunk".to_string(),
            ..Default::default()
        });
    }
    vec![
        span(
            2,
            Some(query),
            "VectorIndexRetriever.task",
            (10, 100),
            vec![
                task(),
                kv(
                    "traceloop.entity.input",
                    s(
                        r#"{"str_or_query_bundle": {"query_str": "When are invoices sent?", "embedding": null}}"#,
                    ),
                ),
                kv(
                    "traceloop.entity.output",
                    s(&json!([node.to_string()]).to_string()),
                ),
            ],
        ),
        span(
            3,
            Some(2),
            "MockEmbedding.task",
            (20, 50),
            vec![task(), kv("gen_ai.operation.name", s("embeddings"))],
        ),
        span(
            5,
            Some(synthesis),
            "TokenTextSplitter.task",
            (105, 110),
            vec![
                task(),
                kv(
                    "traceloop.entity.input",
                    s(r#"{"text": "Invoices are sent monthly."}"#),
                ),
            ],
        ),
        chat,
    ]
}

/// The one interaction of [`openllmetry_streaming_spans`]: from the
/// retrieval's start (10 ms) to the chat's end (980 ms); the first chunk at
/// 400 ms.
fn openllmetry_streaming_interaction() -> Json {
    json!({
        "type": "interaction",
        "id": TRACE_UUID,
        "timestamp": "2023-11-14T22:13:20.010000Z",
        "assistant_id": "8e2d0052-2b94-5b88-b5f0-25487a35a701",
        "session_id": "otel-4bf92f3577b34da6a3ce929d0e0e4736",
        "question": "When are invoices sent?",
        "total_duration_s": 0.97,
        "ttft_s": 0.39,
        "cache_hit": false,
        "model": "gpt-4o-mini-2024-07-18",
        "provider": "openai",
        "input_tokens": 120,
        "output_tokens": 3,
        "cached_input_tokens": 0,
        "steps": [
            {"name": "retrieval", "duration_s": 0.06},
            {"name": "embedding", "duration_s": 0.03},
            {"name": "synthesis", "duration_s": 0.86, "input_tokens": 120, "output_tokens": 3},
        ],
        "retrieved_document_ids": [DOC_1],
    })
}

#[test]
fn a_streamed_openllmetry_query_without_its_query_span_is_one_interaction() {
    // Arrange: the retriever's subtree and the OpenAI call both hang from
    // the query span that was never exported.
    let spans = openllmetry_streaming_spans(1, 1);

    // Act
    let mapped = map(vec![kv("service.name", s("billing-bot"))], &spans);

    // Assert
    assert_eq!(
        only_interaction(&mapped),
        openllmetry_streaming_interaction()
    );
    assert_eq!(mapped.span_ids.len(), 4);
}

#[test]
fn orphan_subtrees_under_different_missing_parents_are_one_interaction() {
    // Arrange: as OpenLLMetry exports a streamed query: the retriever under
    // the missing query span, the text splitter and the OpenAI call under
    // the missing synthesis span.
    let spans = openllmetry_streaming_spans(1, 4);

    // Act
    let mapped = map(vec![kv("service.name", s("billing-bot"))], &spans);

    // Assert: the same interaction; the splitter's text is no question.
    assert_eq!(
        only_interaction(&mapped),
        openllmetry_streaming_interaction()
    );
}

#[test]
fn subtrees_of_a_trace_with_a_beginning_stay_apart() {
    // Arrange: two LLM calls whose callers are in another service (remote
    // parents), and a retrieval whose parent is missing beside them.
    let llm = |id: u8, parent: u8, (a, b): (u64, u64)| {
        let mut call = span(
            id,
            Some(parent),
            "chat",
            (a, b),
            vec![kv("gen_ai.operation.name", s("chat"))],
        );
        call.flags = 0x300;
        call
    };
    let retrieval = span(
        3,
        Some(9),
        "retrieval",
        (300, 400),
        vec![kv("gen_ai.operation.name", s("retrieval"))],
    );
    let spans = vec![llm(1, 7, (0, 100)), llm(2, 8, (150, 250)), retrieval];

    // Act
    let mapped = map(vec![], &spans);

    // Assert: one interaction per subtree, each from its own span.
    let starts: Vec<Json> = mapped
        .interactions
        .iter()
        .map(|d| d.event["timestamp"].clone())
        .collect();
    assert_eq!(
        starts,
        vec![
            json!(T0_TEXT),
            json!("2023-11-14T22:13:20.150000Z"),
            json!("2023-11-14T22:13:20.300000Z"),
        ]
    );
}
