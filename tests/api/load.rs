//! Load: the real binary under mixed load from this second process
//! on loopback (ingest clients, `/advanced` readers, WebSocket clients), then
//! overloaded with more ingest than its writer takes. Reports throughput,
//! latency percentiles, errors and peak RSS; asserts no error but deliberate
//! 503s (each with `Retry-After`), bounded memory, and that every
//! acknowledged event is stored. An `/advanced` answer with a `degraded` list
//! (a metric over its timeout, as the contract reports it) is counted and
//! printed, not failed: it measures the scan path's speed, not a fault.
//!
//! CI runs 20 s of mixed load and 15 s of overload; the documented full run:
//! `RAGPULSE_LOAD_SECONDS=180 RAGPULSE_OVERLOAD_SECONDS=60 cargo test --release --test api load -- --nocapture`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::helpers::{ADMIN_TOKEN, Clock, INGEST_TOKEN, new_id, parse_json_exact};
use crate::process::{Process, data_dir, start_with};

const MIB: u64 = 1024 * 1024;

fn seconds(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// Latencies and outcomes of one kind of request.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    ok: u64,
    refused_503: u64,
    /// 503s without a Retry-After header: must stay 0.
    refused_without_retry_after: u64,
    errors: Vec<String>,
    events_acknowledged: u64,
    /// `/advanced` answers with a `degraded` list: a metric over its timeout
    /// (the scan path under load), reported as the contract says, not an error.
    degraded: u64,
}

impl Tally {
    fn percentile(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index].as_secs_f64() * 1e3
    }

    fn line(&self, name: &str, elapsed: Duration) -> String {
        format!(
            "{name}: {} ok ({:.0}/s), p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} × 503, {} degraded, {} errors",
            self.ok,
            self.ok as f64 / elapsed.as_secs_f64(),
            self.percentile(0.50),
            self.percentile(0.95),
            self.percentile(0.99),
            self.percentile(1.0),
            self.refused_503,
            self.degraded,
            self.errors.len()
        )
    }
}

fn batch(clock: &Clock, assistants: &[Uuid], size: usize, seed: u64) -> Value {
    let events: Vec<Value> = (0..size)
        .map(|i| {
            let n = seed as usize * size + i;
            json!({
                "type": "interaction", "id": new_id(),
                "timestamp": clock.ago_s((n % 3600) as i64 + 1),
                "assistant_id": assistants[n % assistants.len()],
                "session_id": format!("load-{}", n % 500),
                "question": format!("how do I configure feature {}?", n % 40),
                "ttft_s": 0.3 + (n % 10) as f64 * 0.05, "total_duration_s": 2.0,
                "cache_hit": n.is_multiple_of(4), "input_tokens": 900, "output_tokens": 120,
                "model": "gpt-4o-mini",
                "steps": [{"name": "retrieval", "duration_s": 0.2}, {"name": "synthesis", "duration_s": 1.5}],
            })
        })
        .collect();
    json!({ "events": events })
}

async fn ingest_client(
    address: String,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    clock: Clock,
    assistants: Arc<Vec<Uuid>>,
    size: usize,
    id: u64,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut n = id * 1_000_000;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = batch(&clock, &assistants, size, n);
        let started = Instant::now();
        let sent = client
            .post(format!("{address}/api/v1/ingest"))
            .bearer_auth(INGEST_TOKEN)
            .json(&body)
            .send()
            .await;
        let elapsed = started.elapsed();
        let mut tally = tally.lock().await;
        match sent {
            Ok(response) if response.status() == StatusCode::OK => {
                let answer = response.text().await.unwrap_or_default();
                let answer = parse_json_exact(&answer).unwrap_or(Value::Null);
                tally.ok += 1;
                tally.events_acknowledged += answer["accepted"].as_u64().unwrap_or(0);
                tally.latencies.push(elapsed);
            }
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                tally.refused_503 += 1;
                let retry = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if retry.is_none() {
                    tally.refused_without_retry_after += 1;
                }
                drop(tally);
                // Back off as told (capped at 1 s, so the run keeps its pace).
                let wait = retry.unwrap_or(1).min(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            Ok(response) => tally
                .errors
                .push(format!("ingest answered {}", response.status())),
            Err(error) => tally.errors.push(format!("ingest failed: {error}")),
        }
    }
}

async fn advanced_reader(
    address: String,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    scope: Option<Uuid>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let scope = scope
        .map(|a| format!("&assistant_id={a}"))
        .unwrap_or_default();
    // Identical requests in one second share one computation: every call asks
    // different windows so that each one is computed.
    let mut call = 0u64;
    while !stop.load(Ordering::Relaxed) {
        call += 1;
        let query = format!(
            "?ttft_hours={}&cost_hours={}{scope}",
            1 + call % 168,
            1 + (call / 168) % 168
        );
        let started = Instant::now();
        let sent = client
            .get(format!("{address}/api/v1/analytics/advanced{query}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await;
        let outcome = match sent {
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let degraded = body.contains("\"degraded\"");
                match status {
                    StatusCode::OK => Ok(degraded),
                    status => Err(format!("/advanced answered {status}")),
                }
            }
            Err(error) => Err(format!("/advanced failed: {error}")),
        };
        let mut tally = tally.lock().await;
        match outcome {
            Ok(degraded) => {
                tally.ok += 1;
                tally.degraded += u64::from(degraded);
                tally.latencies.push(started.elapsed());
            }
            Err(error) => tally.errors.push(error),
        }
    }
}

/// A WebSocket client that reads every snapshot; counts snapshots.
async fn websocket_client(address: String, tally: Arc<Mutex<Tally>>, stop: Arc<AtomicBool>) {
    let url = format!(
        "{}/api/v1/ws?token={ADMIN_TOKEN}",
        address.replacen("http://", "ws://", 1)
    );
    let (mut socket, _) = match tokio_tungstenite::connect_async(&url).await {
        Ok(pair) => pair,
        Err(error) => {
            tally
                .lock()
                .await
                .errors
                .push(format!("websocket refused: {error}"));
            return;
        }
    };
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(message))) => {
                if message.is_text() {
                    let mut tally = tally.lock().await;
                    tally.ok += 1;
                    tally.latencies.push(last.elapsed());
                    last = Instant::now();
                }
            }
            Ok(Some(Err(error))) => {
                tally
                    .lock()
                    .await
                    .errors
                    .push(format!("websocket error: {error}"));
                return;
            }
            Ok(None) => {
                tally
                    .lock()
                    .await
                    .errors
                    .push("websocket closed by the server".to_string());
                return;
            }
        }
    }
    let _ = socket.close(None).await;
}

/// Samples the server's RSS every 100 ms; the peak.
fn rss_sampler(
    server: &Process,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(0));
    let status = format!("/proc/{}/status", server.pid());
    let task = tokio::spawn({
        let peak = peak.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&status)
                    && let Some(kb) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|r| r.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kb * 1024, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    (peak, task)
}

async fn stored_interactions(server: &Process) -> u64 {
    let (status, cache) = server
        .get(
            &reqwest::Client::new(),
            "/api/v1/analytics/cache?hours=168",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cache}");
    cache["total_requests"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_has_no_errors_and_overload_is_refused_with_503_without_losing_acknowledged_events()
 {
    // Arrange
    let mixed_for = seconds("RAGPULSE_LOAD_SECONDS", 20);
    let overload_for = seconds("RAGPULSE_OVERLOAD_SECONDS", 15);
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    // A small writer queue so the overload phase reaches it on any machine.
    let server = start_with(
        &dir,
        Some((ADMIN_TOKEN, INGEST_TOKEN)),
        &["--broadcast-interval", "1", "--max-queued-events", "20000"],
        &[("RUST_LOG", "warn")],
    )
    .unwrap_or_else(|e| panic!("the server did not start: {e:?}"));
    let clock = Clock::new();
    let assistants: Arc<Vec<Uuid>> = Arc::new((0..5).map(|_| new_id()).collect());
    let address = server.address.clone();

    // Act 1: mixed load.
    let stop = Arc::new(AtomicBool::new(false));
    let (peak_mixed, sampler) = rss_sampler(&server, stop.clone());
    let (ingest, reads, sockets) = (
        Arc::new(Mutex::new(Tally::default())),
        Arc::new(Mutex::new(Tally::default())),
        Arc::new(Mutex::new(Tally::default())),
    );
    let mut tasks = Vec::new();
    for c in 0..4 {
        tasks.push(tokio::spawn(ingest_client(
            address.clone(),
            ingest.clone(),
            stop.clone(),
            clock,
            assistants.clone(),
            100,
            c,
        )));
    }
    for r in 0..2 {
        let scope = (r == 1).then(|| assistants[0]);
        tasks.push(tokio::spawn(advanced_reader(
            address.clone(),
            reads.clone(),
            stop.clone(),
            scope,
        )));
    }
    for _ in 0..50 {
        tasks.push(tokio::spawn(websocket_client(
            address.clone(),
            sockets.clone(),
            stop.clone(),
        )));
    }
    let started = Instant::now();
    tokio::time::sleep(mixed_for).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks.drain(..) {
        task.await.expect("a load client panicked");
    }
    sampler.await.unwrap();
    let mixed_elapsed = started.elapsed();

    // Act 2: overload: 24 clients of 2,000-event batches, more than the writer
    // commits, against the 20,000-event queue.
    let stop = Arc::new(AtomicBool::new(false));
    let (peak_overload, sampler) = rss_sampler(&server, stop.clone());
    let overload = Arc::new(Mutex::new(Tally::default()));
    for c in 0..24 {
        tasks.push(tokio::spawn(ingest_client(
            address.clone(),
            overload.clone(),
            stop.clone(),
            clock,
            assistants.clone(),
            2_000,
            100 + c,
        )));
    }
    let started = Instant::now();
    tokio::time::sleep(overload_for).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks.drain(..) {
        task.await.expect("an overload client panicked");
    }
    sampler.await.unwrap();
    let overload_elapsed = started.elapsed();
    let stored = stored_interactions(&server).await;
    let (status, _, stderr) = server.terminate(Duration::from_secs(60));

    // Assert
    let (ingest, reads, sockets, overload) = (
        ingest.lock().await,
        reads.lock().await,
        sockets.lock().await,
        overload.lock().await,
    );
    let acknowledged = ingest.events_acknowledged + overload.events_acknowledged;
    let report = [
        format!("mixed load for {:.0} s:", mixed_elapsed.as_secs_f64()),
        format!(
            "  {} ({:.0} events/s)",
            ingest.line("ingest (4 clients × 100 events)", mixed_elapsed),
            ingest.events_acknowledged as f64 / mixed_elapsed.as_secs_f64()
        ),
        format!("  {}", reads.line("/advanced (2 readers)", mixed_elapsed)),
        format!(
            "  {}",
            sockets.line(
                "websocket snapshots (50 clients, 1 s ticks; latency = gap between snapshots)",
                mixed_elapsed
            )
        ),
        format!(
            "  peak RSS {} MiB",
            peak_mixed.load(Ordering::Relaxed) / MIB
        ),
        format!("overload for {:.0} s:", overload_elapsed.as_secs_f64()),
        format!(
            "  {} ({:.0} events/s)",
            overload.line("ingest (24 clients × 2,000 events)", overload_elapsed),
            overload.events_acknowledged as f64 / overload_elapsed.as_secs_f64()
        ),
        format!(
            "  peak RSS {} MiB",
            peak_overload.load(Ordering::Relaxed) / MIB
        ),
        format!(
            "events acknowledged {acknowledged}, stored {stored}, lost {}",
            acknowledged.saturating_sub(stored)
        ),
    ]
    .join("\n");
    println!("{report}");
    for (name, tally) in [
        ("ingest", &*ingest),
        ("/advanced", &*reads),
        ("websocket", &*sockets),
        ("overload", &*overload),
    ] {
        assert!(
            tally.errors.is_empty(),
            "{name} errors: {:?}\n{report}",
            &tally.errors[..tally.errors.len().min(5)]
        );
        assert_eq!(
            tally.refused_without_retry_after, 0,
            "{name}: a 503 without Retry-After\n{report}"
        );
        assert!(tally.ok > 0, "{name}: nothing succeeded\n{report}");
    }
    assert_eq!(
        ingest.refused_503, 0,
        "the mixed load is not an overload\n{report}"
    );
    assert!(
        overload.refused_503 > 0,
        "the overload never reached the queue limit\n{report}"
    );
    assert_eq!(
        stored, acknowledged,
        "acknowledged events are missing (or extra)\n{report}"
    );
    assert!(
        peak_overload.load(Ordering::Relaxed) < 1024 * MIB,
        "memory is not bounded under overload\n{report}"
    );
    assert!(status.success(), "{status}\n{stderr}");
}
