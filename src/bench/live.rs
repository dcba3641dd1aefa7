//! `ragpulse bench live`: the live feed under load. A real server process gets
//! a synthetic history, then the same ingest load runs twice: once with nobody
//! listening (phase A) and once while many WebSocket clients listen on several
//! scopes (phase B). Prints snapshot delivery latency, snapshots per client,
//! the ingest throughput of both phases, the server's CPU and peak RSS, with
//! the command that reproduces them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::procfs::{Sched, WRITER_THREAD, cpu_seconds, thread_count, thread_sched};
use super::{ADMIN, Server, build_dataset, ingest_all, ndjson, post};
use crate::cli::{BenchArgs, LiveBenchArgs};
use crate::demo::generate::{Generator, Shape};
use crate::demo::questions::QuestionMix;
use crate::time::Timestamp;

/// Days the history spans (as the core bench's default).
const HISTORY_DAYS: u32 = 30;
/// Seed of the dataset generator (as the core bench's default).
const SEED: u64 = 7;
/// Events per ingest request, in the history and in the measured load.
const BATCH: usize = 1_000;
/// Distinct load batches generated before timing; reused with fresh ids.
const POOL_BATCHES: usize = 100;
/// The load's timestamps spread over this many seconds before the pool is built.
const POOL_SPAN_S: i64 = 300;
/// How long phase A (ingest with nobody listening) runs.
const PHASE_A: Duration = Duration::from_secs(15);
/// WebSocket handshakes in flight at once while the clients connect.
const CONNECTING_AT_ONCE: usize = 64;
/// The live feed's targets: tick-to-client delivery p99, and ingest while
/// the clients listen against ingest with nobody listening.
const TARGET_P99_MS: f64 = 100.0;
const TARGET_INGEST_RATIO: f64 = 0.8;

#[allow(clippy::print_stdout)]
pub async fn run(args: LiveBenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.scopes == 0 || args.seconds == 0 || args.interval == 0 {
        bail!("--clients, --scopes, --seconds and --interval must each be at least 1");
    }
    let temp = tempfile::Builder::new()
        .prefix("ragpulse-bench-live-")
        .tempdir()?;
    let dataset_args = BenchArgs {
        interactions: args.history.max(1),
        days: HISTORY_DAYS,
        assistants: args.scopes.saturating_sub(1).max(10) as u32,
        batch: BATCH,
        clients: args.ingest_clients.max(1),
        calls: 0,
        scan_calls: 0,
        data_dir: None,
        seed: SEED,
        scenario: None,
        questions: vec![args.questions],
        rounds: 1,
    };
    println!(
        "building {} interactions over {HISTORY_DAYS} days for {} assistants, {} questions...",
        dataset_args.interactions,
        dataset_args.assistants,
        args.questions.name()
    );
    let shape = Shape {
        assistants: dataset_args.assistants as usize,
        users: 5_000,
        documents: 20_000,
        seed: SEED,
    };
    let mix = args.questions;
    let (dataset, pool) = tokio::task::spawn_blocking(move || {
        let dataset = build_dataset(&dataset_args, mix)?;
        let pool = Pool::build(&shape, mix)?;
        anyhow::Ok((dataset, pool))
    })
    .await??;
    let pool = Arc::new(pool);
    let interval = args.interval.to_string();
    let max_live = (args.clients + 16).max(1_000).to_string();
    let mut server = Server::start_with(
        temp.path(),
        &[
            "--broadcast-interval",
            &interval,
            "--max-live-clients",
            &max_live,
        ],
    )?;
    let pid = server.child.id();
    let url = server.url.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.ingest_clients.max(1))
        .build()?;
    for chunk in &dataset.registry {
        post(&http, &url, chunk).await?;
    }
    println!(
        "ingesting the history ({} batches of {BATCH} from {} clients)...",
        dataset.batches.len(),
        args.ingest_clients.max(1)
    );
    let history_time =
        ingest_all(&http, &url, Arc::new(dataset.batches), args.ingest_clients).await?;

    // Phase A: the ingest load with nobody listening.
    println!(
        "phase A: ingest for {} s with no listener...",
        PHASE_A.as_secs()
    );
    let next_use = Arc::new(AtomicUsize::new(0));
    let metrics_a0 = Metrics::scrape(&http, &url).await?;
    let cpu_a0 = cpu_seconds(pid);
    let writer_a0 = thread_sched(pid, WRITER_THREAD);
    let load_a = ingest_for(&http, &url, &pool, &next_use, args.ingest_clients, PHASE_A).await?;
    let cpu_a = cpu_seconds(pid).zip(cpu_a0).map(|(b, a)| b - a);
    let writer_a = thread_sched(pid, WRITER_THREAD)
        .zip(writer_a0)
        .map(|(b, a)| b - a);
    let metrics_a1 = Metrics::scrape(&http, &url).await?;

    // One quiet computation of each kind of scope, for scale: no listener, no ingest.
    let quiet_all = time_advanced(&http, &url, "").await?;
    let quiet_one = match dataset.assistants.first() {
        Some(id) => time_advanced(&http, &url, &format!("assistant_id={id}&")).await?,
        None => f64::NAN,
    };

    // Phase B: clients connect and subscribe, then listen while the same load runs.
    let scopes: Vec<Option<Uuid>> = std::iter::once(None)
        .chain(dataset.assistants.iter().copied().map(Some))
        .take(args.scopes)
        .collect();
    println!(
        "phase B: connecting {} WebSocket clients over {} scopes...",
        args.clients,
        scopes.len()
    );
    let ws_url = format!(
        "ws://{}/api/v1/ws?token={ADMIN}",
        url.strip_prefix("http://")
            .context("the server URL is not http://")?
    );
    let stop = CancellationToken::new();
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<(), String>>(args.clients);
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        clients.push(tokio::spawn(listen(
            ws_url.clone(),
            scopes[i % scopes.len()],
            connecting.clone(),
            ready_tx.clone(),
            stop.clone(),
        )));
    }
    drop(ready_tx);
    let connect_started = Instant::now();
    for _ in 0..args.clients {
        match tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(error))) => bail!("a live client could not connect: {error}"),
            Ok(None) => bail!("the live clients stopped before connecting"),
            Err(_) => bail!("the live clients did not connect within 120 s"),
        }
    }
    let connect_time = connect_started.elapsed();
    // Let every scope switch land and every scope task start before measuring.
    tokio::time::sleep(Duration::from_secs(args.interval) + Duration::from_millis(500)).await;
    let listening = Metrics::scrape(&http, &url).await?;
    println!(
        "phase B: {} clients connected in {:.1} s; listening for {} s while ingesting...",
        listening.get("ragpulse_ws_clients"),
        connect_time.as_secs_f64(),
        args.seconds
    );
    let window = Duration::from_secs(args.seconds);
    let cpu_b0 = cpu_seconds(pid);
    let writer_b0 = thread_sched(pid, WRITER_THREAD);
    let self_b0 = cpu_seconds(std::process::id());
    let window_start = Instant::now();
    let load_b = ingest_for(&http, &url, &pool, &next_use, args.ingest_clients, window).await?;
    let window_end = window_start + window;
    let wall_b = window_start.elapsed();
    let cpu_b = cpu_seconds(pid).zip(cpu_b0).map(|(b, a)| b - a);
    let writer_b = thread_sched(pid, WRITER_THREAD)
        .zip(writer_b0)
        .map(|(b, a)| b - a);
    let threads_b = thread_count(pid);
    let self_b = cpu_seconds(std::process::id())
        .zip(self_b0)
        .map(|(b, a)| b - a);
    let metrics_b1 = Metrics::scrape(&http, &url).await?;
    stop.cancel();
    let mut reports = Vec::with_capacity(clients.len());
    for client in clients {
        reports.push(client.await.context("a live client panicked")?);
    }
    // Phase A again, nobody listening: the store grew by phase B's events, and
    // ingest slows as it grows, so B is compared with A before and after it.
    println!(
        "phase A again: ingest for {} s with no listener...",
        PHASE_A.as_secs()
    );
    let metrics_a2 = Metrics::scrape(&http, &url).await?;
    let load_a2 = ingest_for(&http, &url, &pool, &next_use, args.ingest_clients, PHASE_A).await?;
    let metrics_a3 = Metrics::scrape(&http, &url).await?;
    let rss = server.peak_rss_kib();
    server.stop();

    // Figures. Each scope ticks on a fixed grid; its snapshots' `generated_at`
    // lie a little after their ticks (the wait for the scope's turn and for a
    // reader), so the grid's phase is where they cluster.
    let interval_us = args.interval as i64 * 1_000_000;
    let mut generated_by_scope: Vec<Vec<i64>> = vec![Vec::new(); scopes.len()];
    for (i, report) in reports.iter().enumerate() {
        generated_by_scope[i % scopes.len()].extend(
            report
                .deliveries
                .iter()
                .filter(|d| d.at >= window_start && d.at <= window_end)
                .map(|d| d.generated),
        );
    }
    let phases: Vec<i64> = generated_by_scope
        .iter()
        .map(|generated| tick_phase(generated, interval_us))
        .collect();
    let from_tick = |scope: usize, d: &Delivery| {
        let lag = (d.generated - phases[scope]).rem_euclid(interval_us);
        (d.received - (d.generated - lag)) as f64 / 1e3
    };
    let mut deliveries = Vec::new();
    let mut tick_latencies = Vec::new();
    let mut per_client = Vec::with_capacity(reports.len());
    let mut client_errors = Vec::new();
    // Per scope: snapshots per client and delivery latencies (clients are spread round-robin).
    let mut by_scope: Vec<(Vec<usize>, Vec<f64>)> = vec![Default::default(); scopes.len()];
    for (i, report) in reports.iter().enumerate() {
        let before = deliveries.len();
        deliveries.extend(
            report
                .deliveries
                .iter()
                .filter(|d| d.at >= window_start && d.at <= window_end),
        );
        per_client.push(deliveries.len() - before);
        let (counts, latencies) = &mut by_scope[i % scopes.len()];
        counts.push(deliveries.len() - before);
        let scope = i % scopes.len();
        let from_tick: Vec<f64> = deliveries[before..]
            .iter()
            .map(|d| from_tick(scope, d))
            .collect();
        latencies.extend(from_tick.iter().copied());
        tick_latencies.extend(from_tick);
        if let Some(error) = &report.error {
            client_errors.push(error.clone());
        }
    }
    let scope_figures: Vec<String> = by_scope
        .iter_mut()
        .enumerate()
        .map(|(k, (counts, latencies))| {
            counts.sort_unstable();
            latencies.sort_by(f64::total_cmp);
            format!(
                "{}: {} per client, p99 {:.0} ms",
                if k == 0 {
                    "all".to_string()
                } else {
                    format!("assistant {k}")
                },
                counts.get(counts.len() / 2).copied().unwrap_or(0),
                quantile(latencies, 0.99)
            )
        })
        .collect();
    let mut latencies: Vec<f64> = deliveries
        .iter()
        .map(|d| (d.received - d.generated) as f64 / 1e3)
        .collect();
    latencies.sort_by(f64::total_cmp);
    // Fan-out lag: how long after the first client each client got the same snapshot.
    let mut first_receipt: HashMap<i64, i64> = HashMap::new();
    for d in &deliveries {
        let first = first_receipt.entry(d.generated).or_insert(d.received);
        *first = (*first).min(d.received);
    }
    let mut fan_out: Vec<f64> = deliveries
        .iter()
        .map(|d| (d.received - first_receipt[&d.generated]) as f64 / 1e3)
        .collect();
    fan_out.sort_by(f64::total_cmp);
    per_client.sort_unstable();
    let expected = args.seconds / args.interval;
    let starved_below = expected.saturating_sub(2) as usize;
    let starved = per_client.iter().filter(|&&n| n < starved_below).count();
    tick_latencies.sort_by(f64::total_cmp);
    let p99 = quantile(&tick_latencies, 0.99);
    let rate_a1 = load_a.rate();
    let rate_a2 = load_a2.rate();
    let rate_a = (rate_a1 + rate_a2) / 2.0;
    let rate_b = load_b.rate();
    let ratio = rate_b / rate_a;
    let ticks = window.as_secs_f64() / args.interval as f64;
    let computations = metrics_b1.get(COMPUTATIONS) - listening.get(COMPUTATIONS);
    let compute_sum = metrics_b1.get("ragpulse_broadcast_seconds_sum");
    let compute_count = metrics_b1.get("ragpulse_broadcast_seconds_count");
    let cores = |cpu: Option<f64>, wall: Duration| {
        cpu.map_or("unknown".to_string(), |c| {
            format!("{:.2} cores", c / wall.as_secs_f64())
        })
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };

    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| history | {} interactions over {HISTORY_DAYS} days, {} assistants (ingested in {:.1} s) |",
        dataset.interactions,
        dataset.assistants.len(),
        history_time.as_secs_f64()
    );
    println!(
        "| live clients | {} WebSocket clients over {} scopes (all assistants + {} single assistants), broadcast every {} s, listening {} s |",
        args.clients,
        scopes.len(),
        scopes.len() - 1,
        args.interval,
        args.seconds
    );
    println!(
        "| delivery latency from the tick (receive − tick) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} deliveries; target p99 ≤ {TARGET_P99_MS:.0} ms: {} |",
        quantile(&tick_latencies, 0.5),
        p99,
        tick_latencies.last().copied().unwrap_or(f64::NAN),
        tick_latencies.len(),
        verdict(p99 <= TARGET_P99_MS)
    );
    println!(
        "| of which after the snapshot (receive − generated_at) | p50 {:.1} ms, p99 {:.1} ms |",
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
    );
    println!(
        "| fan-out lag (receive − first receipt of the same snapshot) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} snapshots |",
        quantile(&fan_out, 0.5),
        quantile(&fan_out, 0.99),
        fan_out.last().copied().unwrap_or(f64::NAN),
        first_receipt.len()
    );
    println!(
        "| one /advanced computation, quiet (before B) | {quiet_all:.0} ms all assistants, {quiet_one:.0} ms one assistant; 24 h window ≈ {} interactions |",
        load_a.events + dataset.interactions / u64::from(HISTORY_DAYS)
    );
    println!(
        "| broadcast computation (from /metrics) | mean {:.1} ms over {} computations; {:.2} per tick for {} scopes; {} failed |",
        if compute_count > 0.0 {
            compute_sum / compute_count * 1e3
        } else {
            f64::NAN
        },
        compute_count,
        computations / ticks,
        scopes.len(),
        metrics_b1.get("ragpulse_broadcast_failures_total")
    );
    println!(
        "| snapshots per client | min {}, median {}, max {} (expected {expected}); starved (< {starved_below}): {starved} clients: {} |",
        per_client.first().copied().unwrap_or(0),
        per_client.get(per_client.len() / 2).copied().unwrap_or(0),
        per_client.last().copied().unwrap_or(0),
        verdict(starved == 0)
    );
    println!(
        "| by scope (median snapshots, p99 latency) | {} |",
        scope_figures.join("; ")
    );
    println!(
        "| clients closed by the server | {} slow-client disconnects (1013); {} client errors |",
        metrics_b1.get("ragpulse_slow_client_disconnects_total"),
        client_errors.len()
    );
    println!(
        "| ingest, no listener (A, before B) | {:.0} interactions/s ({} in {:.1} s, {} clients, batches of {BATCH}); {} snapshot computations |",
        rate_a1,
        load_a.events,
        load_a.elapsed.as_secs_f64(),
        args.ingest_clients.max(1),
        metrics_a1.get(COMPUTATIONS) - metrics_a0.get(COMPUTATIONS)
    );
    println!(
        "| ingest, no listener (A, after B) | {:.0} interactions/s ({} in {:.1} s); {} snapshot computations |",
        rate_a2,
        load_a2.events,
        load_a2.elapsed.as_secs_f64(),
        metrics_a3.get(COMPUTATIONS) - metrics_a2.get(COMPUTATIONS)
    );
    println!(
        "| ingest while listening (B) | {:.0} interactions/s ({} in {:.1} s) |",
        rate_b,
        load_b.events,
        load_b.elapsed.as_secs_f64()
    );
    println!(
        "| ingest B / mean of the two A | {:.2}; target ≥ {TARGET_INGEST_RATIO:.2}: {} |",
        ratio,
        verdict(ratio >= TARGET_INGEST_RATIO)
    );
    println!(
        "| server CPU (utime + stime / wall) | A {}, B {} |",
        cores(cpu_a, load_a.elapsed),
        cores(cpu_b, wall_b)
    );
    let sched = |figures: Option<Sched>, wall: Duration| {
        figures.map_or("unknown".to_string(), |s| {
            format!(
                "on a CPU {:.2}, runnable but waiting for one {:.2}",
                s.on_cpu / wall.as_secs_f64(),
                s.waiting / wall.as_secs_f64()
            )
        })
    };
    println!(
        "| server writer thread (share of wall time, /proc schedstat) | A {}; B {} |",
        sched(writer_a, load_a.elapsed),
        sched(writer_b, wall_b)
    );
    println!(
        "| server threads at the end of B | {} |",
        threads_b.map_or("unknown".to_string(), |n| n.to_string())
    );
    println!(
        "| bench process CPU in B (same machine) | {} |",
        cores(self_b, wall_b)
    );
    println!(
        "| server peak RSS | {} |",
        rss.map_or("unknown".to_string(), |k| format!(
            "{:.0} MiB",
            k as f64 / 1024.0
        ))
    );
    for error in client_errors.iter().take(5) {
        println!("client error: {error}");
    }
    println!();
    println!(
        "ticks are inferred per scope: each scope ticks on a fixed grid, whose phase is taken where its snapshots' generated_at cluster (the earliest after a tick); latency from the tick therefore includes waiting for a turn, computing and fan-out, less the smallest wait seen."
    );
    println!(
        "reproduce: cargo run --release -- bench live --clients {} --scopes {} --seconds {} --interval {} --history {} --ingest-clients {} --questions {}",
        args.clients,
        args.scopes,
        args.seconds,
        args.interval,
        args.history,
        args.ingest_clients,
        args.questions.name()
    );
    drop(temp);
    Ok(())
}

const COMPUTATIONS: &str = "ragpulse_broadcast_computations_total";

/// The phase of a scope's tick grid (microseconds modulo `interval_us`): the
/// residue of a `generated_at` from which the others lag least in total. A
/// tick precedes its snapshot, so the grid sits at the start of the cluster;
/// starting later would wrap the earlier snapshots a whole interval round,
/// and starting at a stray off-grid snapshot (the one computed at once for a
/// new scope) would add its distance to every other lag.
fn tick_phase(generated: &[i64], interval_us: i64) -> i64 {
    let mut residues: Vec<i64> = generated
        .iter()
        .map(|g| g.rem_euclid(interval_us))
        .collect();
    residues.sort_unstable();
    residues.dedup();
    let total_lag = |phase: i64| -> i128 {
        residues
            .iter()
            .map(|r| i128::from((r - phase).rem_euclid(interval_us)))
            .sum()
    };
    residues
        .iter()
        .copied()
        .min_by_key(|&phase| (total_lag(phase), phase))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The ingest load
// ---------------------------------------------------------------------------

/// NDJSON batches of interactions generated before timing, each with the
/// offset of every event's id and timestamp, so a batch can be posted again
/// under fresh ids (the first 8 hex digits become the use's number) and at the
/// current time, as a platform sends them, without generating it anew.
struct Pool {
    batches: Vec<PoolBatch>,
}

struct PoolBatch {
    body: Vec<u8>,
    ids: Vec<usize>,
    timestamps: Vec<usize>,
    /// Where each question's text starts, when every use must ask new
    /// questions (the `unique` mix): its first 8 bytes become the use's number.
    questions: Vec<usize>,
}

impl PoolBatch {
    /// Finds the id and timestamp of every line of an NDJSON body, and its
    /// question when `unique_questions`.
    fn new(body: Vec<u8>, unique_questions: bool) -> anyhow::Result<Self> {
        let mut ids = Vec::new();
        let mut timestamps = Vec::new();
        let mut questions = Vec::new();
        let mut line_start = 0;
        for line in body.split(|&c| c == b'\n') {
            if !line.is_empty() {
                let at = find(line, br#""id":""#).context("a generated interaction has no id")?;
                ids.push(line_start + at + 6);
                let at = find(line, br#""timestamp":""#)
                    .context("a generated interaction has no timestamp")?;
                timestamps.push(line_start + at + 13);
                let question = find(line, br#""question":""#).map(|at| at + 12);
                if let Some(at) = question.filter(|_| unique_questions) {
                    // Only a plain 8-byte head is replaced, so the JSON stays valid.
                    let head = line.get(at..at + 8).unwrap_or(b"\"");
                    if head.iter().all(|c| c.is_ascii_alphanumeric() || *c == b' ') {
                        questions.push(line_start + at);
                    }
                }
            }
            line_start += line.len() + 1;
        }
        Ok(Self {
            body,
            ids,
            timestamps,
            questions,
        })
    }
}

/// A posted batch's events span this long before the moment it is sent.
const BATCH_SPAN_US: i64 = 50_000;

impl Pool {
    fn build(shape: &Shape, mix: QuestionMix) -> anyhow::Result<Self> {
        let now = Timestamp::now().micros();
        let span = POOL_SPAN_S * 1_000_000;
        let mut generator = Generator::new(shape, now).with_questions(mix, shape.seed);
        let total = POOL_BATCHES * BATCH;
        let mut batches = Vec::with_capacity(POOL_BATCHES);
        for b in 0..POOL_BATCHES {
            let events: Vec<serde_json::Value> = (0..BATCH)
                .map(|i| {
                    let n = (b * BATCH + i) as i64;
                    generator.interaction(now - span + span * n / total as i64)
                })
                .collect();
            batches.push(PoolBatch::new(
                ndjson(&events)?,
                mix == QuestionMix::Unique,
            )?);
        }
        Ok(Self { batches })
    }

    /// The body of use `n`: batch `n % len` with ids unique to this use and
    /// timestamps spread over the [`BATCH_SPAN_US`] before now.
    fn body(&self, n: usize) -> (Vec<u8>, usize) {
        let batch = &self.batches[n % self.batches.len()];
        let mut body = batch.body.clone();
        let prefix = format!("{:08x}", (n / self.batches.len() + 1) as u32);
        for &at in batch.ids.iter().chain(&batch.questions) {
            body[at..at + 8].copy_from_slice(prefix.as_bytes());
        }
        let now = Timestamp::now().micros();
        let count = batch.timestamps.len().max(1) as i64;
        for (i, &at) in batch.timestamps.iter().enumerate() {
            let ts = now - BATCH_SPAN_US + BATCH_SPAN_US * (i as i64 + 1) / count;
            let text = Timestamp(ts).to_rfc3339();
            // RFC 3339 with microseconds has a fixed width; the original stays otherwise.
            let fits = body.get(at + text.len()) == Some(&b'"')
                && body
                    .get(at..at + text.len())
                    .is_some_and(|old| !old.contains(&b'"'));
            if fits {
                body[at..at + text.len()].copy_from_slice(text.as_bytes());
            }
        }
        (body, batch.ids.len())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Load {
    events: u64,
    elapsed: Duration,
}

impl Load {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// `clients` concurrent posters of pool batches until `duration` has passed;
/// the batches in flight then finish and count.
async fn ingest_for(
    http: &reqwest::Client,
    url: &str,
    pool: &Arc<Pool>,
    next_use: &Arc<AtomicUsize>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Load> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, url, pool, next_use) = (
            http.clone(),
            url.to_string(),
            pool.clone(),
            next_use.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut events = 0u64;
            while Instant::now() < deadline {
                let (body, n) = pool.body(next_use.fetch_add(1, Ordering::Relaxed));
                post(&http, &url, &body).await?;
                events += n as u64;
            }
            anyhow::Ok(events)
        }));
    }
    let mut events = 0;
    for task in tasks {
        events += task.await??;
    }
    Ok(Load {
        events,
        elapsed: started.elapsed(),
    })
}

// ---------------------------------------------------------------------------
// Server figures
// ---------------------------------------------------------------------------

/// The median of three `/advanced` calls, milliseconds; each asks a different
/// `ttft_hours` so the one-second shared cache cannot answer.
async fn time_advanced(http: &reqwest::Client, url: &str, query: &str) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for hours in 25..28 {
        let started = Instant::now();
        let response = http
            .get(format!(
                "{url}/api/v1/analytics/advanced?{query}ttft_hours={hours}"
            ))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .error_for_status()?;
        response.bytes().await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[1])
}

/// One `/metrics` exposition.
struct Metrics(String);

impl Metrics {
    async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<Self> {
        let text = http
            .get(format!("{url}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Self(text))
    }

    /// The sum of the samples named exactly `name` (0 when absent).
    fn get(&self, name: &str) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let metric = series.split_once('{').map_or(series, |(m, _)| m);
                (metric == name)
                    .then(|| value.parse::<f64>().ok())
                    .flatten()
            })
            .sum()
    }
}

/// The nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------
// The WebSocket clients
// ---------------------------------------------------------------------------

/// One snapshot as a client saw it.
struct Delivery {
    at: Instant,
    /// The snapshot's `generated_at` (which identifies it), microseconds.
    generated: i64,
    /// The client's wall clock at receipt, microseconds.
    received: i64,
}

#[derive(Default)]
struct ClientReport {
    deliveries: Vec<Delivery>,
    error: Option<String>,
}

/// Connects (at most [`CONNECTING_AT_ONCE`] handshakes at a time), subscribes
/// to `scope`, reports ready, then records every snapshot until `stop`.
async fn listen(
    url: String,
    scope: Option<Uuid>,
    connecting: Arc<Semaphore>,
    ready: mpsc::Sender<Result<(), String>>,
    stop: CancellationToken,
) -> ClientReport {
    let opened = async {
        let _permit = connecting.acquire().await?;
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .context("the WebSocket upgrade failed")?;
        if let Some(id) = scope {
            let subscribe = serde_json::json!({"type": "subscribe", "assistant_id": id});
            socket.send(Message::text(subscribe.to_string())).await?;
        }
        anyhow::Ok(socket)
    }
    .await;
    let mut socket = match opened {
        Ok(socket) => socket,
        Err(error) => {
            let _ = ready.send(Err(format!("{error:#}"))).await;
            return ClientReport {
                error: Some(format!("{error:#}")),
                ..Default::default()
            };
        }
    };
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let mut report = ClientReport::default();
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                return report;
            }
            message = socket.next() => message,
        };
        // Pings are answered by the WebSocket library as it reads.
        match message {
            Some(Ok(Message::Text(text))) => {
                let at = Instant::now();
                let received = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as i64);
                if let Some(generated) = generated_at(text.as_bytes()) {
                    report.deliveries.push(Delivery {
                        at,
                        generated,
                        received,
                    });
                }
            }
            Some(Ok(Message::Close(frame))) => {
                if !stop.is_cancelled() {
                    report.error = Some(format!("closed by the server: {frame:?}"));
                }
                return report;
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                if !stop.is_cancelled() {
                    report.error = Some(format!("socket error: {error}"));
                }
                return report;
            }
            None => {
                if !stop.is_cancelled() {
                    report.error = Some("the socket ended without a close frame".to_string());
                }
                return report;
            }
        }
    }
}

/// The snapshot's `generated_at` in microseconds, found without parsing the
/// whole message (it is the only key of that name in a snapshot).
fn generated_at(message: &[u8]) -> Option<i64> {
    const KEY: &[u8] = br#""generated_at":""#;
    let at = message.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let end = at + message.get(at..)?.iter().position(|&c| c == b'"')?;
    let text = std::str::from_utf8(&message[at..end]).ok()?;
    Timestamp::parse_rfc3339(text).map(Timestamp::micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_at_is_found_without_parsing_the_snapshot() {
        let message = br#"{"type":"ADVANCED_ANALYTICS_STATS","data":{"x":[],"generated_at":"2026-11-28T18:00:00.123456Z"}}"#;
        let expected =
            Timestamp::parse_rfc3339("2026-11-28T18:00:00.123456Z").map(Timestamp::micros);
        assert_eq!(generated_at(message), expected);
        assert_eq!(generated_at(br#"{"type":"error"}"#), None);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), 50.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&values, 1.0), 100.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn pool_batches_get_fresh_ids_per_use() {
        let shape = Shape {
            assistants: 2,
            users: 10,
            documents: 10,
            seed: 1,
        };
        let mut generator = Generator::new(&shape, Timestamp::now().micros());
        let events: Vec<serde_json::Value> = (0..3)
            .map(|i| generator.interaction(Timestamp::now().micros() - i))
            .collect();
        let pool = Pool {
            batches: vec![PoolBatch::new(ndjson(&events).unwrap(), false).unwrap()],
        };
        let sent = Timestamp::now().micros();
        let ids = |n: usize| -> Vec<String> {
            let (body, count) = pool.body(n);
            assert_eq!(count, 3);
            body.split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                    let id = v["id"].as_str().unwrap().to_string();
                    // Timestamps are rewritten to the moment of sending.
                    let ts = Timestamp::parse_rfc3339(v["timestamp"].as_str().unwrap())
                        .unwrap()
                        .micros();
                    assert!(ts > sent - BATCH_SPAN_US && ts <= Timestamp::now().micros());
                    assert!(Uuid::parse_str(&id).is_ok(), "{id}");
                    id
                })
                .collect()
        };
        let (first, second) = (ids(0), ids(1));
        assert!(first.iter().all(|id| id.starts_with("00000001")));
        assert!(second.iter().all(|id| id.starts_with("00000002")));
        assert!(first.iter().zip(&second).all(|(a, b)| a[8..] == b[8..]));
    }

    #[test]
    fn the_tick_phase_is_where_the_snapshots_cluster() {
        let second = 1_000_000;
        // Waits of 0.1, 0.2 and 0.9 ms after ticks at phase 0.
        assert_eq!(
            tick_phase(&[second + 200, 2 * second + 100, 3 * second + 900], second),
            100
        );
        // A cluster across the wrap: ticks at 0.999 s past each second.
        assert_eq!(
            tick_phase(
                &[5 * second + 100, 6 * second + 150, 6 * second + 999_000],
                second
            ),
            999_000
        );
        assert_eq!(tick_phase(&[], second), 0);
        // One off-grid snapshot 200 ms before the cluster does not move it.
        let mut generated: Vec<i64> = (1..20).map(|k| k * second + 300_000 + k).collect();
        generated.push(100_000);
        assert_eq!(tick_phase(&generated, second), 300_001);
    }
}
