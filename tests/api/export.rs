//! `ragpulse export`: the stored events written back in the ingest format.
//! Importing an export into an empty store gives the same answer on every
//! endpoint (a property over random events), and the real binary exports a
//! store while its server runs.

use std::process::Command;

use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Clock, TEST_MODEL, TestApp, assert_same_answers, every_answer, interaction, test_prices, with,
};

const QUESTIONS: [&str; 6] = [
    "How do I reset my password?",
    "how do i reset my password",
    "What is the refund policy?",
    "Where are the audit logs?",
    "where are the audit logs kept",
    "Can I export my invoices?",
];
const LABELS: [&str; 3] = ["Billing", "billing ", "Security"];
const STEPS: [&str; 3] = ["retrieval", "reranking", "synthesis"];
const MODELS: [&str; 3] = [TEST_MODEL, "gpt-4o-mini", "acme-unpriced-model"];
const STATUSES: [&str; 3] = ["success", "partial", "failure"];

fn assistant_id(n: usize) -> Uuid {
    Uuid::from_u128(0xa000 + n as u128)
}

fn document_id(n: usize) -> Uuid {
    Uuid::from_u128(0xd000 + n as u128)
}

fn connector_id(n: usize) -> Uuid {
    Uuid::from_u128(0xc000 + n as u128)
}

/// An interaction with most of the fields ingest keeps, from random choices.
#[derive(Debug, Clone)]
struct Asked {
    assistant: usize,
    session: usize,
    user: Option<usize>,
    question: Option<usize>,
    label: Option<usize>,
    embedding: Option<usize>,
    model: Option<usize>,
    minutes_ago: i64,
    ttft_ms: Option<u32>,
    cache_hit: bool,
    tokens: (u32, u32, u32),
    cost_usd: Option<u32>,
    steps: Vec<(usize, u32, Option<u32>)>,
    documents: Vec<usize>,
    rerank: Option<(u8, u8, Option<u8>)>,
}

fn asked() -> impl Strategy<Value = Asked> {
    (
        (0..3usize, 0..5usize, prop::option::of(0..4usize)),
        (
            prop::option::weighted(0.8, 0..6usize),
            prop::option::weighted(0.2, 0..3usize),
            prop::option::weighted(0.2, 0..3usize),
            prop::option::of(0..3usize),
        ),
        (
            1..(60 * 24 * 20) as i64,
            prop::option::of(50..3_000u32),
            any::<bool>(),
        ),
        (
            (0..5_000u32, 0..800u32, 0..5_000u32),
            prop::option::weighted(0.2, 0..50_000u32),
        ),
        prop::collection::vec((0..3usize, 0..2_000u32, prop::option::of(0..900u32)), 0..5),
        prop::collection::vec(0..6usize, 0..4),
        prop::option::of((0..100u8, 0..100u8, prop::option::of(0..40u8))),
    )
        .prop_map(
            |(
                (assistant, session, user),
                (question, label, embedding, model),
                (minutes_ago, ttft_ms, cache_hit),
                (tokens, cost_usd),
                steps,
                documents,
                rerank,
            )| Asked {
                assistant,
                session,
                user,
                question,
                label,
                embedding,
                model,
                minutes_ago,
                ttft_ms,
                cache_hit,
                tokens,
                cost_usd,
                steps,
                documents,
                rerank,
            },
        )
}

fn to_event(a: &Asked, clock: &Clock, sequence: usize) -> Value {
    let mut extra = serde_json::Map::new();
    let mut set = |key: &str, value: Value| {
        extra.insert(key.to_string(), value);
    };
    if let Some(user) = a.user {
        set("user_id", json!(format!("user-{user}")));
    }
    if let Some(q) = a.question {
        set("question", json!(QUESTIONS[q]));
    }
    if let Some(l) = a.label {
        set("topic", json!(LABELS[l]));
    }
    if let Some(e) = a.embedding {
        // Three directions far apart, each a little off its axis per event.
        let mut vector = vec![0.05 * (sequence % 3) as f64; 4];
        vector[e] = 1.0;
        set("question_embedding", json!(vector));
    }
    if let Some(m) = a.model {
        set("model", json!(MODELS[m]));
    }
    if let Some(ttft) = a.ttft_ms {
        set("ttft_s", json!(f64::from(ttft) / 1000.0));
        set("total_duration_s", json!(f64::from(ttft) / 1000.0 + 1.25));
    }
    set("cache_hit", json!(a.cache_hit));
    let (input, output, cached) = a.tokens;
    set("input_tokens", json!(input));
    set("output_tokens", json!(output));
    set("cached_input_tokens", json!(cached.min(input)));
    if let Some(cost) = a.cost_usd {
        set("cost_usd", json!(f64::from(cost) / 1e6));
    }
    let steps: Vec<Value> = a
        .steps
        .iter()
        .map(|(name, ms, tokens)| {
            let mut step = json!({"name": STEPS[*name], "duration_s": f64::from(*ms) / 1000.0});
            if let Some(t) = tokens {
                step["output_tokens"] = json!(t);
            }
            step
        })
        .collect();
    set("steps", Value::Array(steps));
    let documents: Vec<Value> = a.documents.iter().map(|d| json!(document_id(*d))).collect();
    set("retrieved_document_ids", Value::Array(documents));
    if let Some((before, after, position)) = a.rerank {
        let mut rerank = json!({"score_before": f64::from(before) / 100.0, "score_after": f64::from(after) / 100.0});
        if let Some(p) = position {
            rerank["position_change"] = json!(f64::from(p) / 4.0);
        }
        set("rerank", rerank);
    }
    with(
        interaction(
            assistant_id(a.assistant),
            &format!("session-{}", a.session),
            &clock.ago_min(a.minutes_ago),
        ),
        Value::Object(extra),
    )
}

/// The registries, syncs and interactions of a test store.
fn events(asked: &[Asked], clock: &Clock) -> Vec<Value> {
    let mut events = vec![
        json!({"type": "assistant", "id": assistant_id(0), "name": "Support", "model": TEST_MODEL}),
        json!({"type": "assistant", "id": assistant_id(1), "name": "Sales"}),
        json!({"type": "user", "id": "user-0", "email": "ada@example.com", "full_name": "Ada"}),
        json!({"type": "user", "id": "user-2", "full_name": "Grace"}),
        json!({"type": "connector", "id": connector_id(0), "name": "Confluence"}),
    ];
    for d in 0..5 {
        events.push(json!({
            "type": "document", "id": document_id(d), "connector_id": connector_id(d % 2),
            "file_name": format!("doc-{d}.pdf"), "updated_at": clock.ago_d(d as i64 * 7),
            "deleted": d == 4,
        }));
    }
    for (n, status) in STATUSES.iter().enumerate() {
        events.push(json!({
            "type": "connector_sync", "id": Uuid::from_u128(0x5000 + n as u128),
            "connector_id": connector_id(n % 2), "status": status,
            "started_at": clock.ago_h(n as i64 * 5 + 1), "duration_s": 2.5 * n as f64,
            "documents_synced": n * 10, "error": (n == 2).then_some("timeout"),
        }));
    }
    events.extend(asked.iter().enumerate().map(|(n, a)| to_event(a, clock, n)));
    events
}

fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

/// The export of `app`'s store, through the library, while it runs.
fn export_of(app: &TestApp) -> String {
    let mut out = Vec::new();
    ragpulse::internals::store::export(
        &app.data_dir.path().join("data"),
        &Default::default(),
        &mut out,
        &mut |_, _| {},
    )
    .expect("the export failed");
    String::from_utf8(out).expect("the export is UTF-8")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn an_export_imported_into_an_empty_store_answers_every_endpoint_alike(
        asked in prop::collection::vec(asked(), 1..40)
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            // Arrange: the events in one store, in two requests.
            let clock = Clock::new();
            let all = events(&asked, &clock);
            let original = TestApp::spawn().await;
            let (half_a, half_b) = all.split_at(all.len() / 2);
            for half in [half_a, half_b] {
                let (status, body) = original.ingest_ndjson(&ndjson(half)).await;
                assert_eq!(status, reqwest::StatusCode::OK, "{body}");
            }

            // Act: export it, ingest the export into an empty store.
            let export = export_of(&original);
            let copy = TestApp::spawn().await;
            let (status, body) = copy.ingest_ndjson(&export).await;

            // Assert
            assert_eq!(status, reqwest::StatusCode::OK, "{body}");
            assert_same_answers(
                &every_answer(&original, Some(assistant_id(1))).await,
                &every_answer(&copy, Some(assistant_id(1))).await,
            );
        });
    }
}

#[tokio::test]
async fn the_binary_exports_a_running_store_and_import_rebuilds_it() {
    // Arrange: a running server with a bit of everything.
    let clock = Clock::new();
    let asked: Vec<Asked> = (0..200)
        .map(|n| Asked {
            assistant: n % 3,
            session: n % 7,
            user: (n % 4 != 3).then_some(n % 4),
            question: Some(n % 6),
            label: (n % 11 == 0).then_some(n % 3),
            embedding: (n % 13 == 0).then_some(n % 3),
            model: Some(n % 3),
            minutes_ago: (n as i64 * 97) % (60 * 24 * 20) + 1,
            ttft_ms: (n % 5 != 0).then_some(100 + n as u32),
            cache_hit: n % 9 == 0,
            tokens: (1_000 + n as u32, 100, n as u32),
            cost_usd: (n % 10 == 0).then_some(n as u32 * 7),
            steps: vec![(0, 300, None), (2, 900, Some(40)), (0, 50, None)],
            documents: vec![n % 6, (n + 1) % 6],
            rerank: (n % 3 == 0).then_some((40, 70, Some(3))),
        })
        .collect();
    let original = TestApp::spawn().await;
    let (status, body) = original
        .ingest_ndjson(&ndjson(&events(&asked, &clock)))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("events.ndjson");

    // Act: export beside the running server, import into an empty directory.
    let exported = Command::new(env!("CARGO_BIN_EXE_ragpulse"))
        .args(["export", "--quiet", "--data-dir"])
        .arg(original.data_dir.path().join("data"))
        .arg("--out")
        .arg(&file)
        .output()
        .expect("failed to run ragpulse export");
    let copy_root = tempfile::tempdir().unwrap();
    let prices = copy_root.path().join("prices.toml");
    std::fs::write(&prices, test_prices()).unwrap();
    let imported = Command::new(env!("CARGO_BIN_EXE_ragpulse"))
        .arg("import")
        .arg(&file)
        .args(["--quiet", "--data-dir"])
        .arg(copy_root.path().join("data"))
        .arg("--pricing-file")
        .arg(&prices)
        .output()
        .expect("failed to run ragpulse import");

    // Assert: the summaries, then every answer of a server on the copy.
    let stderr = String::from_utf8_lossy(&exported.stderr);
    assert!(exported.status.success(), "{stderr}");
    assert!(
        stderr.contains("exported 10 registry entries, 3 syncs and 200 interactions"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        stdout.contains("213 accepted, 0 duplicates, 0 rejected"),
        "{stdout}"
    );
    let copy = TestApp::spawn_in(copy_root, |_| {}).await;
    assert_same_answers(
        &every_answer(&original, Some(assistant_id(2))).await,
        &every_answer(&copy, Some(assistant_id(2))).await,
    );
}

#[tokio::test]
async fn an_export_of_one_assistant_since_a_date_holds_only_its_interactions() {
    // Arrange: two assistants, interactions 1 and 3 days old.
    let clock = Clock::new();
    let app = TestApp::spawn().await;
    let events: Vec<Value> = [(0, 1), (0, 3), (1, 1), (1, 3)]
        .iter()
        .map(|(a, days)| interaction(assistant_id(*a), "s", &clock.ago_d(*days)))
        .collect();
    app.ingest_ok(Value::Array(events.clone())).await;
    let since = (chrono::Utc::now() - chrono::TimeDelta::days(2)).to_rfc3339();

    // Act
    let mut out = Vec::new();
    let counts = ragpulse::internals::store::export(
        &app.data_dir.path().join("data"),
        &ragpulse::internals::store::ExportFilter {
            since: ragpulse::internals::Timestamp::parse_rfc3339(&since).map(|t| t.0),
            until: None,
            assistant: Some(assistant_id(1)),
        },
        &mut out,
        &mut |_, _| {},
    )
    .unwrap();

    // Assert: only assistant 1's interaction of yesterday, with its id.
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(counts.interactions, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["id"], events[2]["id"]);
    assert_eq!(lines[0]["assistant_id"], json!(assistant_id(1)));
}
