//! Erasure (`DELETE /api/v1/users/{user_id}`) and retention
//! (`--retention-days`): after an erasure every endpoint answers as a store
//! that never received the user, and no file of the data directory holds
//! their name, e-mail, id or questions; after retention the raw rows are
//! gone while windows covered by rollups answer unchanged.

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    ADMIN_TOKEN, Clock, TEST_MODEL, TestApp, assistant, connector, document, id, interaction,
    rfc3339, sync, with,
};

const ERASED_ID: &str = "xavier-7f3a-erasable";
const ERASED_EMAIL: &str = "xavier.quasimodo@example.org";
const ERASED_NAME: &str = "Xavier Quasimodo";
/// Questions only the erased user asks.
const ERASED_QUESTIONS: [&str; 3] = [
    "Zephyrine invoice number 4471 for Quasimodo?",
    "Can Quasimodo see the vorpal ledger?",
    "Where is the Quasimodo medical form?",
];
/// Questions every user asks (the shared topics keep the others' counts).
const SHARED_QUESTIONS: [&str; 3] = [
    "How do I reset my password?",
    "What is the refund policy?",
    "Where are the audit logs?",
];

/// The dataset: two assistants, one connector with four documents, users
/// X (erased), Y and Z, and a hundred interactions over the last twelve
/// days, each half an hour off the hour so no window edge meets one. X and
/// Y share a session.
struct Dataset {
    clock: Clock,
    assistants: [Uuid; 2],
    connector: Uuid,
    documents: [Uuid; 4],
}

impl Dataset {
    fn new() -> Self {
        Self {
            clock: Clock::new(),
            assistants: [
                id("5d1c7e2a-0000-4000-8000-00000000a001"),
                id("5d1c7e2a-0000-4000-8000-00000000a002"),
            ],
            connector: id("5d1c7e2a-0000-4000-8000-00000000c001"),
            documents: [
                id("5d1c7e2a-0000-4000-8000-00000000d001"),
                id("5d1c7e2a-0000-4000-8000-00000000d002"),
                id("5d1c7e2a-0000-4000-8000-00000000d003"),
                id("5d1c7e2a-0000-4000-8000-00000000d004"),
            ],
        }
    }

    /// `hours` and a half before now.
    fn at(&self, hours: i64) -> String {
        rfc3339(self.clock.at(-TimeDelta::minutes(hours * 60 + 30)))
    }

    fn registry(&self, with_erased: bool) -> Vec<Value> {
        let mut events = vec![
            assistant(self.assistants[0], "Support bot"),
            assistant(self.assistants[1], "Sales bot"),
            connector(self.connector, "Confluence"),
        ];
        for (i, doc) in self.documents.iter().enumerate() {
            events.push(document(
                *doc,
                self.connector,
                &format!("handbook-{i}.pdf"),
                &self.clock.ago_d(3),
            ));
        }
        events.push(sync(self.connector, "success", &self.at(5), Some(12.5)));
        events.push(sync(self.connector, "failure", &self.at(50), None));
        let people = [
            ("y-user-01", "yara@example.com", "Yara Young"),
            (
                "5d1c7e2a-0000-4000-8000-0000000000bb",
                "zed@example.com",
                "Zed Zimmer",
            ),
        ];
        for (uid, email, name) in people {
            events.push(json!({"type": "user", "id": uid, "email": email, "full_name": name}));
        }
        if with_erased {
            events.push(json!({"type": "user", "id": ERASED_ID, "email": ERASED_EMAIL, "full_name": ERASED_NAME}));
        }
        events
    }

    /// Interaction `n` of the dataset, and whether the erased user sent it.
    fn interaction(&self, n: usize) -> (Value, bool) {
        let who = n % 3;
        let hours = ((n * 37) % 280) as i64;
        let erased = who == 0;
        let user_id = match who {
            0 => ERASED_ID,
            1 => "y-user-01",
            _ => "5D1C7E2A-0000-4000-8000-0000000000BB",
        };
        let session = match n % 5 {
            0 => "shared-session".to_string(),
            _ => format!("s-{who}-{}", n / 4),
        };
        let question = if erased && n.is_multiple_of(2) {
            ERASED_QUESTIONS[(n / 6) % 3].to_string()
        } else {
            SHARED_QUESTIONS[(n / 3) % 3].to_string()
        };
        let mut event = with(
            interaction(self.assistants[n % 2], &session, &self.at(hours)),
            json!({
                "id": Uuid::from_u128(0x1000 + n as u128),
                "user_id": user_id,
                "question": question,
                "model": if n.is_multiple_of(7) { "mystery-model-x" } else { TEST_MODEL },
                "ttft_s": 0.1 + (n % 11) as f64 * 0.07,
                "total_duration_s": 2.0 + (n % 5) as f64,
                "cache_hit": n.is_multiple_of(4),
                "input_tokens": 100 + n * 13,
                "output_tokens": 20 + n * 3,
                "steps": [
                    {"name": "retrieval", "duration_s": 0.1 + (n % 3) as f64 * 0.05},
                    {"name": "synthesis", "duration_s": 1.5, "input_tokens": 100 + n, "output_tokens": 20}
                ],
                "retrieved_document_ids": [self.documents[n % 4], self.documents[(n + who + 1) % 4]],
            }),
        );
        if n % 6 == 1 {
            event["topic"] = json!("Billing");
        }
        if n % 3 == 1 {
            event["rerank"] = json!({"score_before": 0.4, "score_after": 0.5 + (n % 4) as f64 * 0.1, "position_change": 1.5});
        }
        (event, erased)
    }

    /// Every interaction, or only those of the users kept.
    fn interactions(&self, with_erased: bool) -> Vec<Value> {
        (0..120)
            .map(|n| self.interaction(n))
            .filter(|(_, erased)| with_erased || !erased)
            .map(|(event, _)| event)
            .collect()
    }
}

/// Every analytics answer a dashboard or client reads.
fn endpoints(assistant: Uuid) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/api/v1/analytics/advanced?ttft_hours=168&step_days=90&cache_hours=168&cost_hours=168&trending_limit=50",
        "/api/v1/analytics/advanced",
        "/api/v1/analytics/ttft?hours=168",
        "/api/v1/analytics/ttft?hours=24",
        "/api/v1/analytics/trending?limit=50",
        "/api/v1/analytics/trending?limit=50&phrasings=true",
        "/api/v1/analytics/trending?days=30&limit=50&phrasings=true",
        "/api/v1/analytics/trending?days=3&limit=50",
        "/api/v1/analytics/costs?hours=168",
        "/api/v1/analytics/freshness",
        "/api/v1/analytics/steps?days=90",
        "/api/v1/analytics/cache?hours=168",
        "/api/v1/analytics/sessions?days=90",
        "/api/v1/analytics/sessions?days=2",
        "/api/v1/analytics/diversity",
        "/api/v1/analytics/diversity?days=30",
        "/api/v1/analytics/utilization?days=90",
        "/api/v1/analytics/users?days=90&limit=100",
        "/api/v1/analytics/users?days=1&limit=100",
        "/api/v1/analytics/reranking?hours=168",
        "/api/v1/analytics/sync?days=90",
        "/api/v1/analytics/timeseries?hours=720&bucket_minutes=60",
        "/api/v1/analytics/timeseries?hours=24",
        "/api/v1/assistants",
        "/api/v1/pricing/unpriced",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    for scoped in [
        "/api/v1/analytics/trending?limit=50&assistant_id=",
        "/api/v1/analytics/users?days=90&assistant_id=",
        "/api/v1/analytics/sessions?days=90&assistant_id=",
        "/api/v1/analytics/advanced?ttft_hours=168&assistant_id=",
    ] {
        paths.push(format!("{scoped}{assistant}"));
    }
    paths
}

/// An answer without the instants it was computed at (`generated_at`, a
/// timeseries' `from` and `to`): the fields two requests cannot share.
fn comparable(mut body: Value) -> Value {
    if let Some(object) = body.as_object_mut() {
        for key in ["generated_at", "from", "to"] {
            object.remove(key);
        }
    }
    body
}

async fn answers(app: &TestApp, paths: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for path in paths {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        out.push(comparable(body));
    }
    out
}

async fn erase(app: &TestApp, user_id: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/users/{user_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("DELETE request failed");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The needles that must be in no file after the erasure, as bytes.
fn erased_needles() -> Vec<&'static str> {
    let mut needles = vec![
        ERASED_ID,
        ERASED_EMAIL,
        ERASED_NAME,
        "Quasimodo",
        "quasimodo",
    ];
    needles.extend(ERASED_QUESTIONS);
    needles
}

/// Which needles some file under `dir` holds, with the file.
fn grep_dir(dir: &std::path::Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("data directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(grep_dir(&path, needles));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        for needle in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{} holds {needle:?}", path.display()));
            }
        }
    }
    found
}

#[tokio::test]
async fn an_erased_user_leaves_every_answer_as_if_they_had_never_sent_anything() {
    let data = Dataset::new();
    let erased_count = data.interactions(true).len() - data.interactions(false).len();
    let a = TestApp::spawn().await;
    let b = TestApp::spawn().await;
    a.ingest_ok(json!(data.registry(true))).await;
    a.ingest_ok(json!(data.interactions(true))).await;
    b.ingest_ok(json!(data.registry(false))).await;
    b.ingest_ok(json!(data.interactions(false))).await;
    // The needles are on disk before the erasure: the grep can find them.
    let before = grep_dir(a.data_dir.path(), &erased_needles());
    assert!(!before.is_empty(), "the dataset never reached the disk");

    let (status, report) = erase(&a, ERASED_ID).await;

    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["interactions"], json!(erased_count));
    assert_eq!(report["phrasings"], json!(ERASED_QUESTIONS.len()));
    assert_eq!(report["topics"], json!(ERASED_QUESTIONS.len()));
    assert_eq!(report["registry_entries"], json!(1));
    assert_eq!(report["rollups_rebuilt"], json!(true));
    let paths = endpoints(data.assistants[0]);
    let (after, never) = (answers(&a, &paths).await, answers(&b, &paths).await);
    for ((path, a), b) in paths.iter().zip(&after).zip(&never) {
        assert_eq!(
            a, b,
            "GET {path} differs from a store that never saw the user"
        );
    }
    let left = grep_dir(a.data_dir.path(), &erased_needles());
    assert!(left.is_empty(), "erased data left on disk: {left:?}");
    // Gone means gone: a second erasure finds no one.
    let (status, body) = erase(&a, ERASED_ID).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "no such user"}));
    // And the store goes on: ingest after the erasure counts as usual.
    let (more, _) = data.interaction(200);
    let more = with(more, json!({"user_id": "y-user-01"}));
    a.ingest_ok(json!([more.clone()])).await;
    b.ingest_ok(json!([more])).await;
    assert_eq!(answers(&a, &paths).await, answers(&b, &paths).await);
}

#[tokio::test]
async fn erasing_an_unknown_user_is_a_404_and_needs_the_admin_token() {
    let app = TestApp::spawn().await;
    let (status, body) = erase(&app, "nobody-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "no such user"}));
    let response = app
        .client
        .delete(app.url("/api/v1/users/nobody-here"))
        .bearer_auth(crate::helpers::INGEST_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

/// Questions asked only more than a week ago: retention deletes their texts.
const OLD_QUESTION: &str = "Where did the Yggdrasil archive go";

/// Interactions of `days_ago` days and a half-hour before now, `n` of them
/// spread over three hours; half of them ask the old-only question.
fn old_and_new(data: &Dataset, old: usize, new: usize) -> Vec<Value> {
    let mut events = Vec::new();
    for n in 0..old {
        let hours = 8 * 24 + (n % 48) as i64;
        let (event, _) = data.interaction(n);
        let mut event = with(
            event,
            json!({"timestamp": data.at(hours), "id": Uuid::from_u128(0x9_0000 + n as u128)}),
        );
        if n % 2 == 0 {
            event["question"] = json!(format!("{OLD_QUESTION} number {}?", n % 5));
        }
        events.push(event);
    }
    for n in 0..new {
        let (event, _) = data.interaction(n);
        events.push(with(event, json!({"timestamp": data.at((n % 20) as i64), "id": Uuid::from_u128(0xA_0000 + n as u128)})));
    }
    events
}

/// Answers that count or sum (no question text): whole days older than the
/// cutoff come from rollups, so retention leaves them as they were.
fn counted_endpoints() -> Vec<String> {
    [
        "/api/v1/analytics/users?days=30&limit=100",
        "/api/v1/analytics/sessions?days=30",
        "/api/v1/analytics/steps?days=30",
        "/api/v1/analytics/utilization?days=30",
        "/api/v1/analytics/diversity?days=30",
        "/api/v1/analytics/diversity",
        "/api/v1/analytics/sync?days=30",
        "/api/v1/analytics/advanced?ttft_hours=168&step_days=30&cache_hours=168&cost_hours=168",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect()
}

/// `value` with every text of an old-only question emptied: what retention
/// leaves of them.
fn without_old_texts(value: Value) -> Value {
    match value {
        Value::String(text) if text.contains("Yggdrasil") => Value::String(String::new()),
        Value::Array(items) => Value::Array(items.into_iter().map(without_old_texts).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_old_texts(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Frequencies and texts of a trending answer, in its order.
fn trending_counts(body: &Value) -> Vec<(String, Value)> {
    body.as_array()
        .expect("trending is a list")
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap_or("").to_string(),
                t["frequency"].clone(),
            )
        })
        .collect()
}

async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> f64 {
    let (_, text, _) = app.get_text("/metrics").await;
    crate::helpers::metric_sum(&text, name, labels)
}

fn database(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        app.data_dir.path().join("data").join("ragpulse.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the database opens read-only")
}

#[tokio::test]
async fn retention_deletes_old_raw_rows_and_long_windows_answer_unchanged_from_rollups() {
    let data = Dataset::new();
    let (old, new) = (1_500, 60);
    let app = TestApp::spawn().await;
    app.ingest_ok(json!(data.registry(true))).await;
    app.ingest_ok(json!(old_and_new(&data, old, new))).await;
    let paths = counted_endpoints();
    let before = answers(&app, &paths).await;
    let trending_path = "/api/v1/analytics/trending?days=30&limit=50";
    let trending_before = trending_counts(&app.analytics("/trending?days=30&limit=50").await);
    let dir = app.stop().await;

    let app = TestApp::spawn_in(dir, |args| args.retention_days = Some(5)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while metric(&app, "ragpulse_retention_last_run_timestamp_seconds", &[]).await == 0.0 {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    assert_eq!(
        metric(
            &app,
            "ragpulse_retention_deleted_rows_total",
            &["table=\"interactions\""]
        )
        .await,
        old as f64
    );
    let after = answers(&app, &paths).await;
    let before: Vec<Value> = before.into_iter().map(without_old_texts).collect();
    for ((path, a), b) in paths.iter().zip(&after).zip(&before) {
        assert_eq!(a, b, "GET {path} changed with retention");
    }
    // Trending counts the same; the old-only questions lost their texts.
    let trending_after = trending_counts(&app.get(trending_path).await.1);
    let expected: Vec<(String, Value)> = trending_before
        .into_iter()
        .map(|(text, f)| {
            if text.contains("Yggdrasil") {
                (String::new(), f)
            } else {
                (text, f)
            }
        })
        .collect();
    assert_eq!(trending_after, expected);
    let conn = database(&app);
    let cutoff = (chrono::Utc::now() - TimeDelta::days(5)).date_naive();
    let cutoff_us = cutoff
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [cutoff_us], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM interactions WHERE ts < ?1"), 0);
    assert_eq!(
        count("SELECT count(*) FROM interaction_details WHERE ts < ?1"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM interactions WHERE ts >= ?1"),
        new as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM phrasings WHERE last_ts < ?1"),
        0
    );
    let texts: i64 = conn
        .query_row(
            "SELECT count(*) FROM phrasings WHERE text LIKE '%Yggdrasil%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(texts, 0);
    // The freed pages are free for reuse: the file needs not grow for new rows.
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert!(free > 0, "no page was freed");
    drop(conn);

    // A rollup rebuild keeps the buckets before the cutoff: their raw rows are gone.
    let dir = app.stop().await;
    ragpulse::internals::store::rebuild_rollups(&dir.path().join("data"), &mut |_, _| {})
        .expect("rebuild");
    let app = TestApp::spawn_in(dir, |_| {}).await;
    assert_eq!(answers(&app, &paths).await, after);
}

#[tokio::test]
async fn erase_user_erases_offline_and_refuses_an_unknown_user() {
    let data = Dataset::new();
    let app = TestApp::spawn().await;
    app.ingest_ok(json!(data.registry(true))).await;
    app.ingest_ok(json!(data.interactions(true))).await;
    let dir = app.stop().await;
    let erase = |user: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ragpulse"))
            .args(["erase-user", user, "--data-dir"])
            .arg(dir.path().join("data"))
            .env_remove("RAGPULSE_DATA_DIR")
            .env_remove("RAGPULSE_CONFIG")
            .current_dir(dir.path())
            .output()
            .expect("ragpulse runs")
    };

    let done = erase(ERASED_ID);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let report: Value = serde_json::from_slice(&done.stdout).expect("JSON on stdout");
    let erased = data.interactions(true).len() - data.interactions(false).len();
    assert_eq!(report["interactions"], json!(erased));
    assert_eq!(report["registry_entries"], json!(1));
    let again = erase(ERASED_ID);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no such user"));
    let left = grep_dir(dir.path(), &erased_needles());
    assert!(left.is_empty(), "erased data left on disk: {left:?}");
}

#[tokio::test]
async fn a_kill_during_an_erasure_leaves_a_consistent_store_whose_retry_finishes_it() {
    use crate::process::{data_dir, start_with};
    let data = Dataset::new();
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let tokens = Some((ADMIN_TOKEN, crate::helpers::INGEST_TOKEN));
    let client = reqwest::Client::new();
    let prices = root.path().join("prices.toml");
    std::fs::write(&prices, crate::helpers::test_prices()).unwrap();
    let flags = ["--pricing-file", prices.to_str().unwrap()];
    let server = start_with(&dir, tokens, &flags, &[]).expect("server starts");
    let many: Vec<Value> = (0..30_000)
        .map(|n| {
            let (event, _) = data.interaction(n % 120);
            with(
                event,
                json!({"id": Uuid::from_u128(0x10_0000 + n as u128), "user_id": ERASED_ID,
                       "timestamp": rfc3339(data.clock.at(-TimeDelta::seconds(60 + (n as i64 * 37) % 900_000)))}),
            )
        })
        .collect();
    let b = TestApp::spawn().await;
    for events in [data.registry(true), data.interactions(true)] {
        let (status, body) = server.ingest(&client, json!(events)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for chunk in many.chunks(10_000) {
        let (status, body) = server.ingest(&client, json!(chunk)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    b.ingest_ok(json!(data.registry(false))).await;
    b.ingest_ok(json!(data.interactions(false))).await;

    let erase_url = format!("{}/api/v1/users/{ERASED_ID}", server.address);
    let pending = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .delete(erase_url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let finished_before_the_kill = pending.is_finished();
    let (_, log) = server.kill();
    eprintln!(
        "killed {} the erasure ended",
        if finished_before_the_kill {
            "after"
        } else {
            "before"
        }
    );
    let _ = log;
    let _ = pending.await;

    let integrity: String = rusqlite::Connection::open(dir.join("ragpulse.db"))
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let server = start_with(&dir, tokens, &flags, &[]).expect("server restarts");
    let retry = client
        .delete(format!("{}/api/v1/users/{ERASED_ID}", server.address))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        retry == StatusCode::OK || (finished_before_the_kill && retry == StatusCode::NOT_FOUND),
        "retry answered {retry}"
    );
    for path in endpoints(data.assistants[0]) {
        let (status, body) = server.get(&client, &path, ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        let never = comparable(b.get(&path).await.1);
        assert_eq!(
            comparable(body),
            never,
            "GET {path} after a killed erasure and its retry"
        );
    }
}

mod property {
    //! Property: for any events of three users, erasing one leaves every
    //! answer equal to that of a store that only ever received the other two.

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::{answers, endpoints, erase};
    use crate::helpers::{Clock, TestApp, interaction, with};

    /// Variants of one text share a topic; the rest are distinct questions.
    const QUESTIONS: [&str; 5] = [
        "How do I reset my password?",
        "how do i reset my password",
        "What is the refund policy?",
        "Where are the audit logs?",
        "Is the Quasimodo ledger open on Sundays?",
    ];
    const USERS: [&str; 3] = ["erased-user", "kept-user-1", "kept-user-2"];

    #[derive(Debug, Clone)]
    struct Event {
        user: usize,
        assistant: usize,
        question: Option<usize>,
        label: bool,
        half_hours_ago: i64,
        session: usize,
        cache_hit: bool,
        tokens: u32,
        ttft_ms: Option<u32>,
        document: Option<usize>,
    }

    fn events() -> impl Strategy<Value = Vec<Event>> {
        prop::collection::vec(
            (
                (
                    0..3usize,
                    0..2usize,
                    prop::option::of(0..5usize),
                    any::<bool>(),
                ),
                (0..400i64, 0..4usize, any::<bool>(), 0..5_000u32),
                (prop::option::of(1..3_000u32), prop::option::of(0..3usize)),
            )
                .prop_map(
                    |(
                        (user, assistant, question, label),
                        (half_hours, session, cache_hit, tokens),
                        (ttft_ms, document),
                    )| Event {
                        user,
                        assistant,
                        question,
                        label: label && question.is_none(),
                        // Half-hour steps, offset by a quarter: no window edge meets one.
                        half_hours_ago: half_hours,
                        session,
                        cache_hit,
                        tokens,
                        ttft_ms,
                        document,
                    },
                ),
            1..50,
        )
    }

    fn to_json(e: &Event, n: usize, clock: &Clock, assistants: &[uuid::Uuid; 2]) -> Value {
        let documents = [
            uuid::Uuid::from_u128(0xd1),
            uuid::Uuid::from_u128(0xd2),
            uuid::Uuid::from_u128(0xd3),
        ];
        let ts = clock.ago_s(e.half_hours_ago * 1800 + 900);
        let mut event = with(
            interaction(
                assistants[e.assistant],
                &format!("session-{}", e.session),
                &ts,
            ),
            json!({
                "id": uuid::Uuid::from_u128(0x5000 + n as u128),
                "user_id": USERS[e.user],
                "cache_hit": e.cache_hit,
                "input_tokens": e.tokens,
                "output_tokens": e.tokens / 3,
                "model": crate::helpers::TEST_MODEL,
                "steps": [{"name": "retrieval", "duration_s": f64::from(e.tokens % 7) / 10.0}],
            }),
        );
        if let Some(q) = e.question {
            event["question"] = json!(QUESTIONS[q]);
        }
        if e.label {
            event["topic"] = json!("Billing");
        }
        if let Some(ms) = e.ttft_ms {
            event["ttft_s"] = json!(f64::from(ms) / 1000.0);
        }
        if let Some(d) = e.document {
            event["retrieved_document_ids"] = json!([documents[d]]);
        }
        event
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        #[test]
        fn erasing_a_user_equals_never_having_stored_them(events in events()) {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let clock = Clock::new();
                let assistants = [uuid::Uuid::from_u128(0xa1), uuid::Uuid::from_u128(0xa2)];
                let users: Vec<Value> = USERS
                    .iter()
                    .map(|u| json!({"type": "user", "id": u, "email": format!("{u}@example.com")}))
                    .collect();
                let all: Vec<Value> = events
                    .iter()
                    .enumerate()
                    .map(|(n, e)| to_json(e, n, &clock, &assistants))
                    .collect();
                let kept: Vec<Value> = events
                    .iter()
                    .zip(&all)
                    .filter(|(e, _)| e.user != 0)
                    .map(|(_, v)| v.clone())
                    .collect();
                let (a, b) = (TestApp::spawn().await, TestApp::spawn().await);
                a.ingest_ok(json!(users)).await;
                a.ingest_ok(json!(all)).await;
                b.ingest_ok(json!(users[1..])).await;
                if !kept.is_empty() {
                    b.ingest_ok(json!(kept)).await;
                }
                let (status, _) = erase(&a, USERS[0]).await;
                assert_eq!(status.as_u16(), 200);
                let paths = endpoints(assistants[0]);
                let (after, never) = (answers(&a, &paths).await, answers(&b, &paths).await);
                for ((path, a), b) in paths.iter().zip(&after).zip(&never) {
                    assert_eq!(a, b, "GET {path}");
                }
            });
        }
    }
}
