//! `ragpulse bench reprice` and `ragpulse bench cold`: the bounds that are
//! figures rather than rules, measured in process (validation and the writer,
//! no HTTP) on a store shaped like real traffic (the demo's generator).
//!
//! - `reprice`: ingest latency (one `append` of a batch, from several
//!   concurrent clients) while a reprice of the whole history runs, against
//!   the same load with no reprice, in alternating rounds. Each round's
//!   reprice changes every catalogue cost (the store is reopened with the
//!   other of two price files), so every day's transaction writes.
//! - `cold`: the cold-document listing (`/utilization?status=cold`, limit 50)
//!   on a store of many documents, most never retrieved.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::pct;
use crate::analytics::{Analytics, UtilizationStatus};
use crate::cli::{ColdBenchArgs, RepriceBenchArgs};
use crate::demo::generate::{Generator, Shape};
use crate::ingest::ingest_values;
use crate::ingest::validate::EventLimits;
use crate::pricing::Catalogue;
use crate::store::ReadPath;
use crate::store::sqlite::reprice::RepriceRequest;
use crate::store::sqlite::{SqliteStore, StoreOptions};
use crate::telemetry::Telemetry;
use crate::time::{MICROS_PER_DAY, Timestamp};

const MODELS: &[&str] = &[
    "gpt-4o-mini",
    "claude-3-5-sonnet-20241022",
    "gemini-2.0-flash",
    "gpt-4.1",
    "mistral-large-latest",
    "ollama/llama3.1:8b",
    "gpt-4o",
    "claude-3-5-haiku-20241022",
    "gemini-2.5-flash",
    "acme-internal-llm-v2",
];

pub(crate) fn open(dir: &Path, prices: Option<&Path>) -> anyhow::Result<SqliteStore> {
    Ok(SqliteStore::open(
        dir,
        Arc::new(Catalogue::load(prices)?),
        Arc::new(Telemetry::new()),
        StoreOptions {
            max_queued_events: 1 << 30,
            topic_threshold: crate::config::DEFAULT_TOPIC_THRESHOLD,
            rollups: true,
            rag_series: true,
            merge_cache_bytes: crate::store::sqlite::rollup::cache::DEFAULT_BUDGET_BYTES,
        },
    )?)
}

/// A price file giving every model of the generator `input` USD per million
/// input tokens from before the history on.
fn price_file(path: &Path, input: f64, days: u32) -> anyhow::Result<()> {
    let from = (chrono::Utc::now() - chrono::TimeDelta::days(i64::from(days) + 1)).date_naive();
    let mut text = String::new();
    for (i, model) in MODELS.iter().enumerate() {
        text.push_str(&format!(
            "[[price]]\nid = \"bench/{i}@{from}\"\nprovider = \"bench\"\nmodel = \"{model}\"\n\
             effective_from = {from}\ninput = {input}\noutput = {input}\n\n"
        ));
    }
    std::fs::write(path, text)?;
    Ok(())
}

pub(super) async fn store_values(store: &SqliteStore, values: Vec<Value>) -> anyhow::Result<()> {
    let values = values.into_iter().enumerate().collect();
    let outcome = ingest_values(store, values, &EventLimits::default()).await?;
    anyhow::ensure!(
        outcome.rejected.is_empty(),
        "rejected: {:?}",
        outcome.rejected.first()
    );
    Ok(())
}

/// `n` interactions spread over the last `days`, in batches of 5,000.
pub(crate) async fn fill(
    store: &SqliteStore,
    shape: &Shape,
    n: u64,
    days: u32,
) -> anyhow::Result<()> {
    let now = Timestamp::now().micros() - 60_000_000;
    let span = i64::from(days.max(1)) * MICROS_PER_DAY;
    let mut generator = Generator::new(shape, now);
    store_values(store, generator.registry_events()).await?;
    let mut batch = Vec::with_capacity(5_000);
    for i in 0..n {
        let ts = now - span + (span as f64 * (i as f64 + 0.5) / n.max(1) as f64) as i64;
        batch.push(generator.interaction(ts));
        if batch.len() == 5_000 {
            store_values(store, std::mem::take(&mut batch)).await?;
        }
    }
    store_values(store, batch).await
}

/// Latencies (ms) of `append` from `clients` tasks sending batches of
/// `batch` live interactions until `until` resolves and `at_least` passed.
pub(crate) async fn load(
    store: &Arc<SqliteStore>,
    shape: &Shape,
    clients: usize,
    batch: usize,
    at_least: Duration,
    until: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Vec<f64>> {
    // Each call sends interactions no earlier call sent: a replayed id is
    // dropped as a duplicate, which would make later calls look faster.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (store, stop) = (store.clone(), stop.clone());
        let shape = Shape {
            seed: shape.seed + 1 + c as u64,
            ..shape.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut generator = Generator::new(&shape, Timestamp::now().micros());
            generator.reseed_traffic((call << 32) | shape.seed);
            let mut times = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = Timestamp::now().micros() - 1_000_000;
                let values: Vec<Value> = (0..batch).map(|_| generator.interaction(now)).collect();
                let started = Instant::now();
                store_values(&store, values).await?;
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, anyhow::Error>(times)
        }));
    }
    let started = Instant::now();
    until.await;
    if let Some(rest) = at_least.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await??);
    }
    Ok(times)
}

#[allow(clippy::print_stdout)]
pub async fn reprice(args: RepriceBenchArgs) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("data");
    let prices = [root.path().join("a.toml"), root.path().join("b.toml")];
    price_file(&prices[0], 1.0, args.days)?;
    price_file(&prices[1], 2.0, args.days)?;
    let shape = Shape::bench(7);
    println!(
        "storing {} interactions over {} days...",
        args.interactions, args.days
    );
    let store = open(&dir, Some(&prices[0]))?;
    fill(&store, &shape, args.interactions, args.days).await?;
    store.close().await;
    drop(store);
    let since = Timestamp::now().micros() - i64::from(args.days + 1) * MICROS_PER_DAY;
    let mut rows = Vec::new();
    for round in 0..args.rounds.max(1) {
        // The other price file than the one the costs were last computed with.
        let store = Arc::new(open(&dir, Some(&prices[(round + 1) % 2]))?);
        let quiet = load(
            &store,
            &shape,
            args.clients,
            args.batch,
            args.seconds,
            async {},
        )
        .await?;
        let repricing = {
            let store = store.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let report = store.reprice(RepriceRequest { since, model: None }).await;
                (report, started.elapsed())
            })
        };
        let busy_store = store.clone();
        let during = load(
            &store,
            &shape,
            args.clients,
            args.batch,
            Duration::ZERO,
            async move {
                while busy_store.reprice_status().state
                    == crate::store::sqlite::reprice::RepriceState::Running
                    || busy_store.reprice_status().days_total == 0
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        )
        .await?;
        let (report, took) = repricing.await?;
        let report = report?;
        let status = store.reprice_status();
        store.close().await;
        let row = (
            pct(&quiet, 0.5),
            pct(&quiet, 0.99),
            pct(&during, 0.5),
            pct(&during, 0.99),
        );
        println!(
            "round {}: no reprice p50 {:.1} / p99 {:.1} ms ({} batches); during the reprice p50 {:.1} / p99 {:.1} ms ({} batches); p99 ratio {:.2}; reprice of {} days, {} interactions changed, {:.1} s",
            round + 1,
            row.0,
            row.1,
            quiet.len(),
            row.2,
            row.3,
            during.len(),
            row.3 / row.1,
            status.days_total,
            report.interactions_changed,
            took.as_secs_f64()
        );
        rows.push(row);
    }
    let ratios: Vec<f64> = rows.iter().map(|r| r.3 / r.1).collect();
    println!(
        "median p99 during / without a reprice over {} rounds: {:.2}",
        rows.len(),
        pct(&ratios, 0.5)
    );
    println!(
        "reproduce: cargo run --release -- bench reprice --interactions {} --days {} --clients {} --batch {} --seconds {} --rounds {}",
        args.interactions,
        args.days,
        args.clients,
        args.batch,
        args.seconds.as_secs(),
        args.rounds
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn cold(args: ColdBenchArgs) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("data");
    let store = Arc::new(open(&dir, None)?);
    println!(
        "storing {} documents and {} interactions...",
        args.documents, args.interactions
    );
    // The generator registers the documents, and its retrievals follow a
    // long tail (Zipf) over them.
    let shape = Shape {
        assistants: 10,
        users: 5_000,
        documents: args.documents as usize,
        seed: 7,
    };
    fill(&store, &shape, args.interactions, 30).await?;
    let analytics = Analytics::new(
        store.clone(),
        Arc::new(Telemetry::new()),
        Duration::from_secs(60),
        ReadPath::Rollups,
    );
    let mut times = Vec::new();
    for call in 0..args.calls + 2 {
        // A new `now` each call: nothing is answered from a cache of answers.
        let started = Instant::now();
        let rows = analytics
            .utilization(
                30,
                Some(UtilizationStatus::Cold),
                50,
                None,
                Timestamp::now(),
            )
            .await?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            rows.len() == 50,
            "expected 50 cold documents, got {}",
            rows.len()
        );
        if call >= 2 {
            times.push(ms);
        }
    }
    store.close().await;
    println!(
        "cold list (limit 50) at {} documents: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms over {} calls",
        args.documents,
        pct(&times, 0.5),
        pct(&times, 0.95),
        pct(&times, 1.0),
        times.len()
    );
    println!(
        "reproduce: cargo run --release -- bench cold --documents {} --interactions {} --calls {}",
        args.documents, args.interactions, args.calls
    );
    Ok(())
}
