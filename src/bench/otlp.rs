//! `ragpulse bench otlp`: OTLP/HTTP protobuf exports of LlamaIndex-shaped
//! traces (12 spans each, with the attributes OpenInference writes: inputs,
//! retrieved documents with metadata, the prompt template's variables,
//! token counts, a first-token event) from concurrent clients against a real
//! server process. Reports the spans accepted per second, the traces turned
//! into interactions per second once the settle period has passed, the
//! pending spans over time (memory of their index and bytes on disk) and the
//! server's peak RSS.
//!
//! Request bodies are encoded once as templates; a client copies one and
//! writes fresh trace ids and question numbers into it in place, so the
//! clients spend little CPU beside the server's. Most questions are asked
//! once (a unique reference number); one in five recurs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Event};
use prost::Message;

use super::procfs::{WRITER_THREAD, cpu_seconds, thread_sched};
use super::{INGEST, Server, pct};
use crate::cli::OtlpBenchArgs;

const QUESTIONS: &[&str] = &[
    "How do I reset my password",
    "Where can I download my invoice",
    "Which plans include single sign-on",
    "How do I add a teammate to my workspace",
    "Why was my card declined",
    "How do I export my data to CSV",
    "Can I change the billing email",
    "What are the API rate limits",
];
/// Digits of a question's reference number (patched in place).
const REF_DIGITS: usize = 10;

/// One encoded request and where its per-trace fields are.
struct Template {
    body: Vec<u8>,
    /// Per trace: the offsets of its trace id and of its question's reference number.
    traces: Vec<(Vec<usize>, Vec<usize>)>,
    spans: usize,
}

#[allow(clippy::print_stdout)]
pub async fn run(args: OtlpBenchArgs) -> anyhow::Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("ragpulse-bench-otlp-")
        .tempdir()?;
    let settle = format!("{}", args.settle);
    let mut server = Server::start_with(temp.path(), &["--otlp-settle", &settle])?;
    let started_at = crate::time::Timestamp::now().micros() as u64 * 1_000 - 30_000_000_000;
    let templates: Arc<Vec<Template>> = Arc::new(
        (0..args.templates.max(1))
            .map(|t| template(t, args.traces_per_request.max(1), started_at))
            .collect(),
    );
    let spans_per_request = templates[0].spans;
    let body_bytes = templates[0].body.len();
    println!(
        "sending {}-span traces, {} per request ({} spans, {} KiB), from {} clients for {} s (settle {} s)...",
        spans_per_request / args.traces_per_request.max(1),
        args.traces_per_request,
        spans_per_request,
        body_bytes / 1024,
        args.clients,
        args.seconds,
        args.settle
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let pid = server.child.id();
    let cpu_before = (cpu_seconds(pid), thread_sched(pid, WRITER_THREAD));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sequence = Arc::new(AtomicU64::new(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients.max(1) {
        let (client, url, templates) = (client.clone(), server.url.clone(), templates.clone());
        let (accepted, refused, stop, sequence) = (
            accepted.clone(),
            refused.clone(),
            stop.clone(),
            sequence.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let template = &templates[i % templates.len()];
                i += 1;
                let body = patch(template, &sequence);
                loop {
                    let response = client
                        .post(format!("{url}/v1/traces"))
                        .bearer_auth(INGEST)
                        .header("content-type", "application/x-protobuf")
                        .body(body.clone())
                        .send()
                        .await?;
                    match response.status().as_u16() {
                        200 => {
                            accepted.fetch_add(template.spans as u64, Ordering::Relaxed);
                            break;
                        }
                        429 | 503 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        status => bail!("export answered {status}: {}", response.text().await?),
                    }
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let mut samples = Vec::new();
    let deadline = started + Duration::from_secs(args.seconds);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(sample(&client, &server.url, started).await?);
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let sending = started.elapsed().as_secs_f64();
    let sent_spans = accepted.load(Ordering::Relaxed);
    // Drain: every pending trace finalised.
    let drain_started = Instant::now();
    loop {
        let s = sample(&client, &server.url, started).await?;
        samples.push(s);
        if s.pending_spans == 0.0
            || drain_started.elapsed() > Duration::from_secs(args.settle as u64 * 4 + 60)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained = drain_started.elapsed().as_secs_f64();
    let cpu_after = (cpu_seconds(pid), thread_sched(pid, WRITER_THREAD));
    let rss = server.peak_rss_kib();
    server.stop();
    let last = samples.last().copied().context("no sample of /metrics")?;
    let traces_per_request = args.traces_per_request.max(1) as f64;
    let sent_traces = sent_spans as f64 / spans_per_request as f64 * traces_per_request;
    // Steady state: from one settle period (and a second) after the start
    // to the end of sending.
    let steady: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at > args.settle + 1.0 && s.at <= sending)
        .collect();
    let finalize_rate = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if b.at > a.at => (b.traces - a.traces) / (b.at - a.at),
        _ => f64::NAN,
    };
    let accept_rate_steady = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if b.at > a.at => {
            (b.received - a.received) / (b.at - a.at) / spans_per_request as f64
                * traces_per_request
        }
        _ => f64::NAN,
    };
    let max_pending = samples.iter().map(|s| s.pending_spans).fold(0.0, f64::max);
    let max_index = samples.iter().map(|s| s.index_bytes).fold(0.0, f64::max);
    let max_bytes = samples.iter().map(|s| s.pending_bytes).fold(0.0, f64::max);
    let pending_end: Vec<f64> = steady.iter().map(|s| s.pending_spans).collect();
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| spans accepted | {:.0} spans/s ({} spans, {:.0} traces in {:.1} s; {} requests answered 429/503) |",
        sent_spans as f64 / sending,
        sent_spans,
        sent_traces,
        sending,
        refused.load(Ordering::Relaxed)
    );
    println!(
        "| steady state (after one settle period) | {:.0} traces/s accepted, {:.0} traces/s finalised ({:.0} spans/s) |",
        accept_rate_steady,
        finalize_rate,
        finalize_rate * spans_per_request as f64 / traces_per_request
    );
    println!(
        "| pending spans in steady state | p50 {:.0}, max {:.0} (bound {}) |",
        pct(&pending_end, 0.5),
        max_pending,
        2_000_000
    );
    println!(
        "| pending-span memory | index {:.1} MiB max; facts on disk {:.1} MiB max ({:.0} bytes per span) |",
        max_index / 1048576.0,
        max_bytes / 1048576.0,
        if max_pending > 0.0 {
            max_bytes / max_pending
        } else {
            f64::NAN
        }
    );
    println!(
        "| drained after sending | {:.1} s; {:.0} interactions, {:.0} traces finalised in all |",
        drained, last.interactions, last.traces
    );
    // Every accepted span was finalised by the end of the drain, so the
    // server's CPU time over sending and draining is what a span costs to
    // accept and to turn into an interaction: a figure the machine's load
    // changes less than the rates.
    if let Some((before, after)) = cpu_before.0.zip(cpu_after.0) {
        let cpu = after - before;
        println!(
            "| server CPU (all threads, sending and draining) | {:.1} s: {:.2} µs per span accepted and finalised (2 cores: {:.0} spans/s at most) |",
            cpu,
            cpu / sent_spans.max(1) as f64 * 1e6,
            2.0 * sent_spans as f64 / cpu
        );
    }
    if let Some((before, after)) = cpu_before.1.zip(cpu_after.1) {
        let writer = after - before;
        println!(
            "| writer thread | on a CPU {:.1} s ({:.2} µs per span), waiting for a CPU {:.1} s |",
            writer.on_cpu,
            writer.on_cpu / sent_spans.max(1) as f64 * 1e6,
            writer.waiting
        );
    }
    println!(
        "| server peak RSS | {} |",
        rss.map_or("unknown".to_string(), |k| format!(
            "{:.0} MiB",
            k as f64 / 1024.0
        ))
    );
    println!();
    println!(
        "reproduce: cargo run --release -- bench otlp --seconds {} --clients {} --traces-per-request {} --settle {} --templates {}",
        args.seconds, args.clients, args.traces_per_request, args.settle, args.templates
    );
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    received: f64,
    traces: f64,
    interactions: f64,
    pending_spans: f64,
    pending_bytes: f64,
    index_bytes: f64,
}

async fn sample(client: &reqwest::Client, url: &str, started: Instant) -> anyhow::Result<Sample> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, v) = l.rsplit_once(' ')?;
                let metric = series.split('{').next()?;
                (metric == name).then(|| v.parse::<f64>().ok()).flatten()
            })
            .sum()
    };
    Ok(Sample {
        at: started.elapsed().as_secs_f64(),
        received: value("ragpulse_otlp_spans_received_total"),
        traces: value("ragpulse_otlp_traces_total"),
        interactions: value("ragpulse_otlp_interactions_total"),
        pending_spans: value("ragpulse_otlp_pending_spans"),
        pending_bytes: value("ragpulse_otlp_pending_bytes"),
        index_bytes: value("ragpulse_otlp_pending_index_bytes"),
    })
}

/// A copy of the template with fresh trace ids and question numbers.
fn patch(template: &Template, sequence: &AtomicU64) -> Vec<u8> {
    let mut body = template.body.clone();
    for (ids, refs) in &template.traces {
        let n = sequence.fetch_add(1, Ordering::Relaxed);
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&n.to_be_bytes());
        trace[8..].copy_from_slice(&0x5241_4750_554c_5345u64.to_be_bytes());
        for &at in ids {
            body[at..at + 16].copy_from_slice(&trace);
        }
        // One question in five recurs (reference 0); the rest are asked once.
        let reference = if n.is_multiple_of(5) { 0 } else { n };
        let digits = format!("{reference:0width$}", width = REF_DIGITS);
        for &at in refs {
            body[at..at + REF_DIGITS].copy_from_slice(digits.as_bytes());
        }
    }
    body
}

/// Offsets of every occurrence of `needle`.
fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn template(index: usize, traces: usize, t0: u64) -> Template {
    let mut spans = Vec::new();
    let mut markers = Vec::new();
    for t in 0..traces {
        let mut trace = [0u8; 16];
        trace[..4].copy_from_slice(b"TRID");
        trace[4..8].copy_from_slice(&(index as u32).to_be_bytes());
        trace[8..12].copy_from_slice(&(t as u32).to_be_bytes());
        trace[12..].copy_from_slice(b"MARK");
        let reference = format!("{:02}{:04}{:04}", 99, index % 10_000, t);
        let question = format!(
            "{} (ref {reference})?",
            QUESTIONS[(index * traces + t) % QUESTIONS.len()]
        );
        spans.extend(llamaindex_trace(
            trace,
            &question,
            t0 + t as u64 * 1_000_000,
        ));
        markers.push((trace, reference));
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    s(&format!("bench-assistant-{}", index % 4)),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let body = request.encode_to_vec();
    let traces = markers
        .iter()
        .map(|(trace, reference)| {
            (
                find_all(&body, trace),
                find_all(&body, reference.as_bytes()),
            )
        })
        .collect();
    Template {
        spans: request.resource_spans[0].scope_spans[0].spans.len(),
        body,
        traces,
    }
}

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

/// The 12 spans OpenInference writes for a LlamaIndex query with a vector
/// retriever and a reranker (times in ms after `t0`).
fn llamaindex_trace(trace: [u8; 16], question: &str, t0: u64) -> Vec<Span> {
    let ms = |m: f64| t0 + (m * 1e6) as u64;
    let id = |n: u8| [0x42, 0, 0, 0, 0, 0, 0, n];
    let make =
        |n: u8, parent: Option<u8>, name: &str, (a, b): (f64, f64), attributes: Vec<KeyValue>| {
            Span {
                trace_id: trace.to_vec(),
                span_id: id(n).to_vec(),
                parent_span_id: parent.map(|p| id(p).to_vec()).unwrap_or_default(),
                name: name.to_string(),
                kind: 1,
                start_time_unix_nano: ms(a),
                end_time_unix_nano: ms(b),
                attributes,
                ..Default::default()
            }
        };
    let kind = |k: &str| kv("openinference.span.kind", s(k));
    let passage = "Open Settings, choose Security, then Reset password; a link valid for one hour is sent to the account's e-mail address. ".repeat(2);
    let documents: Vec<KeyValue> = (0..4)
        .flat_map(|i| {
            vec![
                kv(&format!("retrieval.documents.{i}.document.id"), s(&format!("9b0c4a2e-0000-4000-8000-00000000{i:04}"))),
                kv(&format!("retrieval.documents.{i}.document.score"), Value::DoubleValue(0.8 - i as f64 * 0.05)),
                kv(&format!("retrieval.documents.{i}.document.content"), s(&passage)),
                kv(
                    &format!("retrieval.documents.{i}.document.metadata"),
                    s(&format!("{{\"document_id\": \"5d1c7e2a-0000-4000-8000-0000000{:05}\", \"file_name\": \"handbook-{i}.pdf\"}}", (i * 37) % 20_000)),
                ),
            ]
        })
        .collect();
    let rerank: Vec<KeyValue> = (0..4)
        .flat_map(|i| {
            vec![
                kv(
                    &format!("reranker.input_documents.{i}.document.id"),
                    s(&format!("9b0c4a2e-0000-4000-8000-00000000{i:04}")),
                ),
                kv(
                    &format!("reranker.input_documents.{i}.document.score"),
                    Value::DoubleValue(0.8 - i as f64 * 0.05),
                ),
            ]
        })
        .chain((0..2).flat_map(|i| {
            vec![
                kv(
                    &format!("reranker.output_documents.{i}.document.id"),
                    s(&format!("9b0c4a2e-0000-4000-8000-00000000{:04}", 1 - i)),
                ),
                kv(
                    &format!("reranker.output_documents.{i}.document.score"),
                    Value::DoubleValue(0.95 - i as f64 * 0.1),
                ),
            ]
        }))
        .collect();
    let context = passage.repeat(4);
    let mut llm = make(
        11,
        Some(10),
        "OpenAI.chat",
        (140.0, 1900.0),
        vec![
            kind("LLM"),
            kv("llm.model_name", s("gpt-4o-mini")),
            kv("llm.provider", s("openai")),
            kv("llm.input_messages.0.message.role", s("user")),
            kv(
                "llm.input_messages.0.message.content",
                s(&format!(
                    "Context information is below.\n{context}\nQuery: {question}\nAnswer:"
                )),
            ),
            kv("llm.output_messages.0.message.content", s(&passage)),
            kv("llm.token_count.prompt", Value::IntValue(1830)),
            kv("llm.token_count.completion", Value::IntValue(212)),
            kv("llm.token_count.total", Value::IntValue(2042)),
        ],
    );
    llm.events.push(Event {
        time_unix_nano: ms(620.0),
        name: "First Token Stream Event".to_string(),
        ..Default::default()
    });
    vec![
        make(
            1,
            None,
            "RetrieverQueryEngine.query",
            (0.0, 1950.0),
            vec![
                kind("CHAIN"),
                kv("input.value", s(question)),
                kv("session.id", s("web-7f3a")),
                kv("user.id", s("ada@example.com")),
            ],
        ),
        make(
            2,
            Some(1),
            "RetrieverQueryEngine._query",
            (1.0, 1949.0),
            vec![kind("CHAIN"), kv("input.value", s(question))],
        ),
        make(
            3,
            Some(2),
            "VectorIndexRetriever.retrieve",
            (2.0, 92.0),
            [
                vec![kind("RETRIEVER"), kv("input.value", s(question))],
                documents,
            ]
            .concat(),
        ),
        make(
            4,
            Some(3),
            "OpenAIEmbedding.get_query_embedding",
            (3.0, 40.0),
            vec![
                kind("EMBEDDING"),
                kv("embedding.model_name", s("text-embedding-3-small")),
                kv("embedding.embeddings.0.embedding.text", s(question)),
            ],
        ),
        make(
            5,
            Some(4),
            "OpenAIEmbedding._get_query_embedding",
            (4.0, 39.0),
            vec![kind("EMBEDDING")],
        ),
        make(
            6,
            Some(2),
            "SentenceTransformerRerank._postprocess_nodes",
            (93.0, 130.0),
            [
                vec![
                    kind("RERANKER"),
                    kv("reranker.query", s(question)),
                    kv("reranker.top_k", Value::IntValue(2)),
                ],
                rerank,
            ]
            .concat(),
        ),
        make(
            7,
            Some(2),
            "CompactAndRefine.synthesize",
            (131.0, 1948.0),
            vec![kind("CHAIN"), kv("input.value", s(question))],
        ),
        make(
            8,
            Some(7),
            "CompactAndRefine.get_response",
            (132.0, 1947.0),
            vec![kind("CHAIN"), kv("input.value", s(question))],
        ),
        make(
            9,
            Some(8),
            "TokenTextSplitter.split_text",
            (133.0, 136.0),
            vec![kind("CHAIN")],
        ),
        make(
            10,
            Some(8),
            "OpenAI.predict",
            (137.0, 1946.0),
            vec![
                kind("LLM"),
                kv("llm.model_name", s("gpt-4o-mini")),
                kv(
                    "llm.prompt_template.variables",
                    s(
                        &serde_json::json!({"context_str": context, "query_str": question})
                            .to_string(),
                    ),
                ),
            ],
        ),
        llm,
        make(
            12,
            Some(8),
            "CompactAndRefine._give_response_single",
            (1900.0, 1946.0),
            vec![kind("CHAIN")],
        ),
    ]
}
