//! Crash safety: several clients ingest concurrently while the real
//! binary is killed with SIGKILL at random moments, many times in a row, and
//! restarted each time. After every restart, a read-only connection of our own
//! (WAL lets a second process read beside the server) checks that every
//! acknowledged event is stored exactly once, that a batch whose answer never
//! came is stored whole or not at all, and that no interaction lacks its steps
//! or retrievals. Batches without an answer are retried after the restart and
//! must then be acknowledged (as accepted or duplicates).
//!
//! `RAGPULSE_CRASH_CYCLES` sets the number of kill cycles (default 20, the CI
//! count); `RAGPULSE_CRASH_SEED` replays a run (the seed is printed on failure).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{ADMIN_TOKEN, Clock, INGEST_TOKEN, new_id, parse_json_exact};
use crate::process::{Process, data_dir, start};

const DEFAULT_CYCLES: usize = 20;
const CLIENTS: usize = 4;
/// Step names an interaction draws from; each interaction has distinct ones.
const STEP_NAMES: [&str; 4] = ["retrieval", "reranking", "synthesis", "guardrail"];

/// One event we sent and what must be stored with it.
#[derive(Debug, Clone)]
struct Sent {
    id: Uuid,
    /// `None` for a connector sync.
    steps: Option<usize>,
    retrievals: usize,
}

/// One request body and the events in it.
#[derive(Debug, Clone)]
struct SentBatch {
    number: usize,
    events: Vec<Sent>,
    body: Value,
    /// Sent before, when a kill left it unanswered.
    retried: bool,
}

/// What every client knows: batches acknowledged (2xx) and batches whose answer
/// never came (killed in flight), to retry after the restart.
#[derive(Default)]
struct Ledger {
    acknowledged: Vec<SentBatch>,
    unanswered: Vec<SentBatch>,
    /// Interactions and syncs that came back as duplicates in a retry.
    retried_duplicates: usize,
    requests: usize,
    refused_503: usize,
}

fn batch(
    number: usize,
    rng: &mut SmallRng,
    clock: &Clock,
    assistant: Uuid,
    connector: Uuid,
    documents: &[Uuid],
) -> SentBatch {
    let size = rng.random_range(1..=40);
    let mut events = Vec::with_capacity(size);
    let mut body = Vec::with_capacity(size);
    for _ in 0..size {
        let id = new_id();
        if rng.random_ratio(1, 10) {
            body.push(json!({
                "type": "connector_sync", "id": id, "connector_id": connector,
                "status": "success", "started_at": clock.ago_s(rng.random_range(60..3600)),
                "duration_s": 1.5,
            }));
            events.push(Sent {
                id,
                steps: None,
                retrievals: 0,
            });
            continue;
        }
        let step_count = rng.random_range(1..=STEP_NAMES.len());
        let steps: Vec<Value> = STEP_NAMES[..step_count]
            .iter()
            .map(|name| json!({"name": name, "duration_s": 0.25}))
            .collect();
        let retrievals = rng.random_range(0..=documents.len().min(3));
        let retrieved: Vec<Uuid> = documents[..retrievals].to_vec();
        body.push(json!({
            "type": "interaction", "id": id,
            "timestamp": clock.ago_s(rng.random_range(60..3600)),
            "assistant_id": assistant,
            "session_id": format!("crash-{}", rng.random_range(0..50)),
            "question": "How do I reset my password?",
            "ttft_s": 0.5, "total_duration_s": 1.0,
            "input_tokens": 100, "output_tokens": 10,
            "steps": steps,
            "retrieved_document_ids": retrieved,
        }));
        events.push(Sent {
            id,
            steps: Some(step_count),
            retrievals,
        });
    }
    SentBatch {
        number,
        events,
        body: json!({"events": body}),
        retried: false,
    }
}

/// What one POST ended as.
enum Outcome {
    Acknowledged {
        accepted: usize,
        duplicates: usize,
    },
    Refused503,
    /// No answer: the server died under it (or was not there).
    NoAnswer,
}

async fn post(client: &reqwest::Client, address: &str, batch: &SentBatch) -> Outcome {
    let sent = client
        .post(format!("{address}/api/v1/ingest"))
        .bearer_auth(INGEST_TOKEN)
        .json(&batch.body)
        .send()
        .await;
    let Ok(response) = sent else {
        return Outcome::NoAnswer;
    };
    let status = response.status();
    let Ok(text) = response.text().await else {
        return Outcome::NoAnswer;
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return Outcome::Refused503;
    }
    let body = parse_json_exact(&text).unwrap_or(Value::Null);
    assert_eq!(
        status,
        StatusCode::OK,
        "batch {}: unexpected answer {body}",
        batch.number
    );
    assert_eq!(body["rejected"], json!([]), "batch {}", batch.number);
    Outcome::Acknowledged {
        accepted: body["accepted"].as_u64().unwrap() as usize,
        duplicates: body["duplicates"].as_u64().unwrap() as usize,
    }
}

/// One client for one server life: first the batches the last kill left
/// unanswered, then new ones, until the server stops answering.
async fn client_run(
    address: String,
    ledger: Arc<Mutex<Ledger>>,
    mut pending: Vec<SentBatch>,
    mut make: impl FnMut() -> SentBatch,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    loop {
        let batch = if pending.is_empty() {
            make()
        } else {
            pending.remove(0)
        };
        let outcome = post(&client, &address, &batch).await;
        // The lock is released before any await.
        let backoff = {
            let mut ledger = ledger.lock().unwrap();
            ledger.requests += 1;
            match outcome {
                Outcome::Acknowledged {
                    accepted,
                    duplicates,
                } => {
                    assert_eq!(
                        accepted + duplicates,
                        batch.events.len(),
                        "batch {}: every event must be accepted or a duplicate",
                        batch.number
                    );
                    ledger.retried_duplicates += duplicates;
                    ledger.acknowledged.push(batch);
                    false
                }
                Outcome::Refused503 => {
                    // Nothing stored; try the same batch again shortly.
                    ledger.refused_503 += 1;
                    pending.insert(0, batch);
                    true
                }
                Outcome::NoAnswer => {
                    ledger.unanswered.push(SentBatch {
                        retried: true,
                        ..batch
                    });
                    ledger.unanswered.append(&mut pending);
                    return;
                }
            }
        };
        if backoff {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The rows of the database, read by a connection of our own.
struct Stored {
    interactions: HashMap<Uuid, (usize, usize)>,
    interaction_rows: usize,
    syncs: HashSet<Uuid>,
    sync_rows: usize,
}

fn read_store(dir: &Path) -> Stored {
    let conn = Connection::open_with_flags(
        dir.join("ragpulse.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("failed to open the database read-only");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    // One read transaction: a consistent snapshot across the queries.
    conn.execute_batch("BEGIN").unwrap();
    // Steps and retrieved documents per interaction key, from their packed row.
    let mut steps: HashMap<i64, usize> = HashMap::new();
    let mut retrievals: HashMap<i64, usize> = HashMap::new();
    {
        use ragpulse::internals::store::{PackedStep, column};
        let mut statement = conn
            .prepare("SELECT interaction, steps, documents FROM interaction_details")
            .unwrap();
        let mut rows = statement.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let key: i64 = r.get(0).unwrap();
            steps.insert(key, column::<PackedStep>(r, 1).unwrap().len());
            retrievals.insert(key, column::<i64>(r, 2).unwrap().len());
        }
    }
    let mut interactions = HashMap::new();
    let mut interaction_rows = 0;
    {
        let mut statement = conn.prepare("SELECT key, id FROM interactions").unwrap();
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .unwrap();
        for row in rows {
            let (key, id) = row.unwrap();
            let id = Uuid::from_slice(&id).expect("an interaction id is not 16 bytes");
            interaction_rows += 1;
            interactions.insert(
                id,
                (
                    steps.get(&key).copied().unwrap_or(0),
                    retrievals.get(&key).copied().unwrap_or(0),
                ),
            );
        }
    }
    let mut syncs = HashSet::new();
    let mut sync_rows = 0;
    {
        let mut statement = conn.prepare("SELECT id FROM syncs").unwrap();
        for id in statement.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
            sync_rows += 1;
            syncs.insert(Uuid::from_slice(&id.unwrap()).unwrap());
        }
    }
    assert_rollups_match_raw(&conn);
    conn.execute_batch("COMMIT").unwrap();
    Stored {
        interactions,
        interaction_rows,
        syncs,
        sync_rows,
    }
}

/// In the open snapshot: every metric read over whole hours from the rollup
/// rows equals the same window scanned from the raw rows, so a crash never
/// leaves a rollup that disagrees with its events.
fn assert_rollups_match_raw(conn: &Connection) {
    use ragpulse::internals::store::MergeCache;
    use ragpulse::internals::store::{ReadCtx, read};
    use ragpulse::internals::store::{ReadPath, Window};

    let (first, last): (Option<i64>, Option<i64>) = conn
        .query_row("SELECT min(ts), max(ts) FROM interactions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let (Some(first), Some(last)) = (first, last) else {
        return;
    };
    assert!(
        ragpulse::internals::store::is_built(conn).unwrap(),
        "the rollups are not marked built"
    );
    const HOUR: i64 = 3_600_000_000;
    // Whole hours around every event: read from the rollups alone.
    let w = Window {
        from_exclusive: first.div_euclid(HOUR) * HOUR - 1,
        to_inclusive: (last.div_euclid(HOUR) + 1) * HOUR - 1,
        assistant: None,
    };
    let rollups = ReadCtx {
        path: ReadPath::Rollups,
        cache: Arc::new(MergeCache::new()),
    };
    let answers = |ctx: &ReadCtx| {
        vec![
            format!("{:?}", read::ttft(conn, &w, ctx, 1).unwrap()),
            format!("{:?}", read::cache(conn, &w, ctx, 1).unwrap()),
            format!("{:?}", read::steps(conn, &w, ctx).unwrap()),
            format!("{:?}", read::sessions(conn, &w, ctx).unwrap()),
            format!("{:?}", read::costs(conn, &w, ctx).unwrap()),
            format!("{:?}", read::users(conn, &w, ctx, 1_000).unwrap()),
            format!("{:?}", read::reranking(conn, &w, ctx).unwrap()),
            format!(
                "{:?}",
                read::utilization(conn, &w, ctx, None, 1_000).unwrap()
            ),
            format!("{:?}", read::sync(conn, &w, ctx).unwrap()),
        ]
    };
    assert_eq!(
        answers(&rollups),
        answers(&ReadCtx::scan()),
        "rollups disagree with the raw events"
    );
}

fn is_stored(stored: &Stored, sent: &Sent) -> bool {
    match sent.steps {
        Some(_) => stored.interactions.contains_key(&sent.id),
        None => stored.syncs.contains(&sent.id),
    }
}

/// The invariants of `ingest.md`'s durability rule, on a snapshot of the store.
fn check(stored: &Stored, ledger: &Ledger, cycle: usize, seed: u64) {
    let context = format!("cycle {cycle}, RAGPULSE_CRASH_SEED={seed}");
    assert_eq!(
        stored.interaction_rows,
        stored.interactions.len(),
        "{context}: an interaction id is stored twice"
    );
    assert_eq!(
        stored.sync_rows,
        stored.syncs.len(),
        "{context}: a sync id is stored twice"
    );
    let mut known = HashSet::new();
    for batch in ledger.acknowledged.iter().chain(&ledger.unanswered) {
        let present = batch.events.iter().filter(|e| is_stored(stored, e)).count();
        let acknowledged = ledger.acknowledged.iter().any(|b| b.number == batch.number);
        if acknowledged {
            assert_eq!(
                present,
                batch.events.len(),
                "{context}: batch {} was acknowledged but {} of its {} events are missing",
                batch.number,
                batch.events.len() - present,
                batch.events.len()
            );
        } else {
            assert!(
                present == 0 || present == batch.events.len(),
                "{context}: unanswered batch {} is half-written: {present} of {} events stored",
                batch.number,
                batch.events.len()
            );
        }
        for event in &batch.events {
            known.insert(event.id);
            if let (Some(steps), Some((stored_steps, stored_retrievals))) =
                (event.steps, stored.interactions.get(&event.id))
            {
                assert_eq!(
                    (*stored_steps, *stored_retrievals),
                    (steps, event.retrievals),
                    "{context}: interaction {} of batch {} is stored without all of its steps or retrievals",
                    event.id,
                    batch.number
                );
            }
        }
    }
    let phantoms = stored
        .interactions
        .keys()
        .chain(&stored.syncs)
        .filter(|id| !known.contains(id))
        .count();
    assert_eq!(phantoms, 0, "{context}: events nobody sent are stored");
}

fn cycles() -> usize {
    std::env::var("RAGPULSE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES)
}

fn start_server(dir: &Path) -> Process {
    start(dir, Some((ADMIN_TOKEN, INGEST_TOKEN)))
        .unwrap_or_else(|e| panic!("the server did not start: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_repeated_sigkills_exactly_once_and_nothing_is_half_written() {
    // Arrange
    let seed: u64 = std::env::var("RAGPULSE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    let cycles = cycles();
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let clock = Clock::new();
    let (assistant, connector) = (new_id(), new_id());
    let documents: Vec<Uuid> = (0..3).map(|_| new_id()).collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let numbers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = std::time::Instant::now();

    // Act and assert, once per cycle: run the clients, kill at a random moment,
    // restart, check the store before anyone writes again.
    for cycle in 0..=cycles {
        let server = start_server(&dir);
        let pending = std::mem::take(&mut ledger.lock().unwrap().unanswered);
        let mut per_client: Vec<Vec<SentBatch>> = vec![Vec::new(); CLIENTS];
        for (i, batch) in pending.into_iter().enumerate() {
            per_client[i % CLIENTS].push(batch);
        }
        let last = cycle == cycles;
        let mut tasks = Vec::new();
        for (c, pending) in per_client.into_iter().enumerate() {
            let mut client_rng = SmallRng::seed_from_u64(seed ^ ((cycle * CLIENTS + c) as u64 + 1));
            let numbers = numbers.clone();
            let documents = documents.clone();
            let make = move || {
                let number = numbers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                batch(
                    number,
                    &mut client_rng,
                    &clock,
                    assistant,
                    connector,
                    &documents,
                )
            };
            if last {
                // The final life only retries what the last kill left unanswered.
                let ledger = ledger.clone();
                let address = server.address.clone();
                tasks.push(tokio::spawn(async move {
                    retry_only(address, ledger, pending).await
                }));
            } else {
                tasks.push(tokio::spawn(client_run(
                    server.address.clone(),
                    ledger.clone(),
                    pending,
                    make,
                )));
            }
        }
        if last {
            for task in tasks {
                task.await.expect("a client panicked");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
        let _ = server.kill();
        for task in tasks {
            task.await.expect("a client panicked");
        }
        let stored = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || read_store(&dir)
        })
        .await
        .unwrap();
        check(&stored, &ledger.lock().unwrap(), cycle, seed);
    }

    // Assert: everything was acknowledged in the end, stored once, and the API
    // agrees with the raw rows.
    let server = start_server(&dir);
    let client = reqwest::Client::new();
    let (status, cache) = server
        .get(&client, "/api/v1/analytics/cache", ADMIN_TOKEN)
        .await;
    let (_, syncs) = server
        .get(&client, "/api/v1/analytics/sync", ADMIN_TOKEN)
        .await;
    let (status_end, _, stderr) = server.terminate(Duration::from_secs(30));
    assert!(
        status_end.success(),
        "the server did not stop cleanly: {status_end}\n{stderr}"
    );
    let stored = read_store(&dir);
    let ledger = ledger.lock().unwrap();
    check(&stored, &ledger, cycles, seed);
    assert!(
        ledger.unanswered.is_empty(),
        "batches were never acknowledged"
    );
    let sent_interactions = ledger
        .acknowledged
        .iter()
        .flat_map(|b| &b.events)
        .filter(|e| e.steps.is_some())
        .count();
    let sent_syncs = ledger
        .acknowledged
        .iter()
        .flat_map(|b| &b.events)
        .filter(|e| e.steps.is_none())
        .count();
    assert_eq!(
        stored.interactions.len(),
        sent_interactions,
        "RAGPULSE_CRASH_SEED={seed}"
    );
    assert_eq!(stored.syncs.len(), sent_syncs, "RAGPULSE_CRASH_SEED={seed}");
    assert_eq!(status, StatusCode::OK, "{cache}");
    assert_eq!(
        cache["total_requests"],
        json!(sent_interactions),
        "/cache disagrees with the raw rows: {cache}"
    );
    assert_eq!(
        syncs[0]["total_syncs"],
        json!(sent_syncs),
        "/sync disagrees with the raw rows: {syncs}"
    );
    assert!(
        sent_interactions > 0 && ledger.requests > cycles,
        "the clients barely ran: {} requests",
        ledger.requests
    );
    println!(
        "crash cycles: {cycles} SIGKILLs in {:.1} s, {} requests, {} events acknowledged ({sent_interactions} interactions, {sent_syncs} syncs), \
         {} batches retried after a kill ({} of their events already stored), {} answered 503, 0 lost, 0 duplicated, seed {seed}",
        started.elapsed().as_secs_f64(),
        ledger.requests,
        sent_interactions + sent_syncs,
        ledger.acknowledged.iter().filter(|b| b.retried).count(),
        ledger.retried_duplicates,
        ledger.refused_503,
    );
}

/// The final life: retry every unanswered batch until acknowledged.
async fn retry_only(address: String, ledger: Arc<Mutex<Ledger>>, batches: Vec<SentBatch>) {
    let client = reqwest::Client::new();
    for batch in batches {
        loop {
            match post(&client, &address, &batch).await {
                Outcome::Acknowledged {
                    accepted,
                    duplicates,
                } => {
                    assert_eq!(
                        accepted + duplicates,
                        batch.events.len(),
                        "batch {}",
                        batch.number
                    );
                    let mut ledger = ledger.lock().unwrap();
                    ledger.retried_duplicates += duplicates;
                    ledger.requests += 1;
                    ledger.acknowledged.push(batch);
                    break;
                }
                Outcome::Refused503 => tokio::time::sleep(Duration::from_millis(50)).await,
                Outcome::NoAnswer => panic!("the final server stopped answering"),
            }
        }
    }
}
