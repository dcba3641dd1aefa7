//! `ragpulse bench rollups`: what rollups cost at ingest and what they save at
//! read time, measured side by side in one run.
//!
//! 1. Ingest comparison: the same `--compare` interactions go into two fresh
//!    stores, one keeping rollups and one not, in process (validation and the
//!    writer, no HTTP), from `--clients` concurrent tasks.
//! 2. The large store (`--interactions` over `--days`, 10 assistants by
//!    default) is built the same way, with rollups, or reused from
//!    `--data-dir` when a complete one is there.
//! 3. `/advanced` is timed over HTTP against a real server on the large store:
//!    defaults, `assistant_id`, `step_days=90`, each from rollups and from the
//!    raw scan (`--read-path scan`). Every call computes (the parameters vary
//!    within a call set so the one-second answer cache never hits).
//! 4. Shifting windows: `/advanced` where every call's windows start an hour
//!    (TTFT, cache, costs) and a day (steps) apart from the call before, with
//!    the merge cache (`--merge-cache-mib`, default) and without it (0), in
//!    alternating rounds; p50 and the server's peak RSS of each.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{ADMIN, Server, TopicReads, dir_size, pct};
use crate::cli::RollupBenchArgs;
use crate::demo::generate::{Generator, Shape};
use crate::demo::questions::QuestionMix;
use crate::ingest::ingest_values;
use crate::ingest::validate::EventLimits;
use crate::pricing::Catalogue;
use crate::store::sqlite::{SqliteStore, StoreOptions};
use crate::telemetry::Telemetry;
use crate::time::{MICROS_PER_DAY, Timestamp};

/// Written into the large store's directory once it is complete.
pub(super) const COMPLETE_MARKER: &str = "bench-complete";

#[allow(clippy::print_stdout)]
pub async fn run(args: RollupBenchArgs) -> anyhow::Result<()> {
    println!(
        "ingest comparison: {} interactions over {} days into a store with rollups and one without...",
        args.compare, args.compare_days
    );
    let compare = RollupBenchArgs {
        days: args.compare_days,
        ..args.clone()
    };
    // Alternating rounds, so a noisy neighbour weighs on both sides alike.
    let (mut with_runs, mut without_runs) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds.max(1) {
        with_runs.push(ingest_fresh(&compare, args.compare, true).await?);
        without_runs.push(ingest_fresh(&compare, args.compare, false).await?);
    }
    let (with, without) = (median(&with_runs), median(&without_runs));
    let temp = tempfile::Builder::new()
        .prefix("ragpulse-bench-rollups-")
        .tempdir()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let marker = data_dir.join(COMPLETE_MARKER);
    let mix = args.questions.name();
    let build = if std::fs::read_to_string(&marker).is_ok_and(|m| m == mix) {
        println!(
            "reusing the store in {} ({mix} questions)",
            data_dir.display()
        );
        None
    } else {
        println!(
            "building the large store: {} interactions over {} days, {} assistants, {mix} questions...",
            args.interactions, args.days, args.assistants
        );
        let rate = ingest_into(&args, &data_dir, args.interactions, true).await?;
        std::fs::write(&marker, mix)?;
        Some(rate)
    };
    let size = dir_size(&data_dir);
    let assistant = first_assistant(&args);
    let variants = [
        ("defaults", String::new()),
        ("assistant_id", format!("assistant_id={assistant}&")),
        ("step_days=90", "step_days=90&".to_string()),
    ];
    println!("timing /advanced from rollups...");
    let mut server = Server::start_with(&data_dir, &["--metric-timeout", "3600"])?;
    let client = reqwest::Client::new();
    let mut fast = Vec::new();
    for (_, query) in &variants {
        fast.push(time_advanced(&client, &server.url, query, args.calls).await?);
    }
    let topic_reads = TopicReads::time(&client, &server.url, args.calls).await?;
    let rss = server.peak_rss_kib();
    server.stop();
    println!("timing /advanced with shifting windows, with and without the merge cache...");
    let shifting = Shifting::time(&client, &data_dir, args.calls, args.rounds).await?;
    println!("timing /advanced from the raw scan (slow)...");
    let mut server = Server::start_with(
        &data_dir,
        &["--metric-timeout", "3600", "--read-path", "scan"],
    )?;
    let mut slow = Vec::new();
    for (_, query) in &variants {
        slow.push(time_advanced(&client, &server.url, query, args.scan_calls).await?);
    }
    let scan_topic_reads = TopicReads::time(&client, &server.url, args.scan_calls).await?;
    let scan_rss = server.peak_rss_kib();
    server.stop();

    println!();
    println!("| figure | rollups | raw scan | ratio |\n|---|---|---|---|");
    println!(
        "| ingest, {} interactions over {} days, median of {} alternating rounds | {:.0}/s | {:.0}/s (no rollups) | {:.2} |",
        args.compare,
        args.compare_days,
        args.rounds.max(1),
        with,
        without,
        with / without
    );
    for ((name, _), (f, s)) in variants.iter().zip(fast.iter().zip(&slow)) {
        println!(
            "| /advanced {name} | p50 {:.1} ms, p95 {:.1} ms | p50 {:.0} ms, p95 {:.0} ms | {:.0}× |",
            pct(f, 0.5),
            pct(f, 0.95),
            pct(s, 0.5),
            pct(s, 0.95),
            pct(s, 0.5) / pct(f, 0.5)
        );
    }
    for ((name, f), (_, s)) in topic_reads
        .medians()
        .into_iter()
        .zip(scan_topic_reads.medians())
    {
        println!("| {name} | p50 {f:.1} ms | p50 {s:.0} ms | {:.0}× |", s / f);
    }
    let mib = |k: Option<u64>| {
        k.map_or("unknown".to_string(), |k| {
            format!("{:.0} MiB", k as f64 / 1024.0)
        })
    };
    println!("| server peak RSS | {} | {} | |", mib(rss), mib(scan_rss));
    println!();
    shifting.print(args.calls, args.rounds, &mib);
    println!();
    if let Some(rate) = build {
        println!(
            "large store: {} interactions built at {:.0}/s with rollups",
            args.interactions, rate
        );
    }
    println!(
        "data directory: {:.0} MiB for {} interactions over {} days",
        size as f64 / 1048576.0,
        args.interactions,
        args.days
    );
    println!(
        "calls: {} per variant from rollups, {} from the scan; HTTP on loopback, every call computed",
        args.calls, args.scan_calls
    );
    println!(
        "reproduce: cargo run --release -- bench rollups --questions {mix} --interactions {} --days {} --assistants {} --compare {} --compare-days {} --rounds {} --calls {} --scan-calls {} --clients {} --batch {} --seed {}",
        args.interactions,
        args.days,
        args.assistants,
        args.compare,
        args.compare_days,
        args.rounds,
        args.calls,
        args.scan_calls,
        args.clients,
        args.batch,
        args.seed
    );
    drop(temp);
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Ingest rate (interactions/s) into a fresh temporary store.
async fn ingest_fresh(args: &RollupBenchArgs, n: u64, rollups: bool) -> anyhow::Result<f64> {
    let dir = tempfile::Builder::new()
        .prefix("ragpulse-bench-ingest-")
        .tempdir()?;
    ingest_into(args, dir.path(), n, rollups).await
}

fn shape(args: &RollupBenchArgs) -> Shape {
    Shape {
        assistants: args.assistants.max(1) as usize,
        users: 5_000,
        documents: 20_000,
        seed: args.seed,
    }
}

fn first_assistant(args: &RollupBenchArgs) -> String {
    Generator::new(&shape(args), 0)
        .assistant_ids()
        .first()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// Generates `n` interactions spread over the last `days` (one sync per
/// thousand) on a producer thread and stores them from concurrent tasks;
/// returns interactions per second, timed from the first batch to the last commit.
pub(super) async fn ingest_into(
    args: &RollupBenchArgs,
    data_dir: &Path,
    n: u64,
    rollups: bool,
) -> anyhow::Result<f64> {
    let catalogue = Arc::new(Catalogue::load(None)?);
    let store = Arc::new(SqliteStore::open(
        data_dir,
        catalogue,
        Arc::new(Telemetry::new()),
        StoreOptions {
            max_queued_events: 1 << 30,
            topic_threshold: crate::config::DEFAULT_TOPIC_THRESHOLD,
            rollups,
            rag_series: true,
            merge_cache_bytes: crate::store::sqlite::rollup::cache::DEFAULT_BUDGET_BYTES,
        },
    )?);
    let (tx, rx) = mpsc::channel::<Vec<Value>>(16);
    let producer = {
        let (shape, days, batch) = (shape(args), args.days, args.batch.max(1));
        let mix = args.questions;
        std::thread::spawn(move || produce(&shape, mix, days, batch, n, &tx))
    };
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (rx, store) = (rx.clone(), store.clone());
        tasks.push(tokio::spawn(async move {
            let limits = EventLimits::default();
            loop {
                let Some(batch) = rx.lock().await.recv().await else {
                    return Ok::<(), anyhow::Error>(());
                };
                let values = batch.into_iter().enumerate().collect();
                let outcome = ingest_values(store.as_ref(), values, &limits).await?;
                if !outcome.rejected.is_empty() {
                    bail!("the store rejected events: {:?}", outcome.rejected.first());
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the generator thread panicked"))?;
    store.close().await;
    Ok(n as f64 / elapsed.max(Duration::from_millis(1)).as_secs_f64())
}

/// The registry first, then interactions in time order, in batches.
fn produce(
    shape: &Shape,
    mix: QuestionMix,
    days: u32,
    batch: usize,
    n: u64,
    tx: &mpsc::Sender<Vec<Value>>,
) {
    let now = Timestamp::now().micros() - 60_000_000;
    let span = i64::from(days.max(1)) * MICROS_PER_DAY;
    let mut generator = Generator::new(shape, now).with_questions(mix, shape.seed);
    if tx.blocking_send(generator.registry_events()).is_err() {
        return;
    }
    let mut events = Vec::with_capacity(batch);
    for i in 0..n {
        let ts = now - span + (span as f64 * (i as f64 + 0.5) / n.max(1) as f64) as i64;
        events.push(generator.interaction(ts));
        if i % 1_000 == 999 {
            events.push(generator.sync(ts));
        }
        if events.len() >= batch && tx.blocking_send(std::mem::take(&mut events)).is_err() {
            return;
        }
    }
    if !events.is_empty() {
        let _ = tx.blocking_send(events);
    }
}

/// Sleeps until the wall clock's next whole second.
async fn next_second() {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(Duration::ZERO, |d| {
            Duration::from_nanos(u64::from(d.subsec_nanos()))
        });
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(into) + Duration::from_millis(1))
        .await;
}

/// `/advanced` with windows that move at every call, against servers with the
/// default merge cache and with none.
struct Shifting {
    /// Per round: (cached call times, uncached call times).
    rounds: Vec<(Vec<f64>, Vec<f64>)>,
    /// Peak RSS, KiB, of the cached and the uncached servers (highest round).
    rss: (Option<u64>, Option<u64>),
}

/// TTFT, cache and costs over `{h}` hours (120..167), steps over `{d}` days
/// (1..90): every call of a set asks windows no call before it asked.
const SHIFTING_QUERY: &str = "ttft_hours={h}&cache_hours={h}&cost_hours={h}&step_days={d}&";

impl Shifting {
    async fn time(
        client: &reqwest::Client,
        data_dir: &Path,
        calls: usize,
        rounds: usize,
    ) -> anyhow::Result<Self> {
        let mut out = Shifting {
            rounds: Vec::new(),
            rss: (None, None),
        };
        for _ in 0..rounds.max(1) {
            let one = |budget: &str| -> anyhow::Result<Server> {
                Server::start_with(
                    data_dir,
                    &["--metric-timeout", "3600", "--merge-cache-mib", budget],
                )
            };
            let mut server = one("64")?;
            let cached = time_advanced(client, &server.url, SHIFTING_QUERY, calls).await?;
            out.rss.0 = out.rss.0.max(server.peak_rss_kib());
            server.stop();
            let mut server = one("0")?;
            let uncached = time_advanced(client, &server.url, SHIFTING_QUERY, calls).await?;
            out.rss.1 = out.rss.1.max(server.peak_rss_kib());
            server.stop();
            out.rounds.push((cached, uncached));
        }
        Ok(out)
    }

    #[allow(clippy::print_stdout)]
    fn print(&self, calls: usize, rounds: usize, mib: &dyn Fn(Option<u64>) -> String) {
        let cached: Vec<f64> = self.rounds.iter().map(|r| pct(&r.0, 0.5)).collect();
        let uncached: Vec<f64> = self.rounds.iter().map(|r| pct(&r.1, 0.5)).collect();
        let (cached, uncached) = (median(&cached), median(&uncached));
        println!(
            "| /advanced, shifting windows ({calls} calls, median of {} alternating rounds) | merge cache 64 MiB | none (0) | ratio |\n|---|---|---|---|",
            rounds.max(1)
        );
        println!(
            "| p50 | {cached:.1} ms | {uncached:.1} ms | {:.1}× |",
            uncached / cached
        );
        println!(
            "| server peak RSS | {} | {} | |",
            mib(self.rss.0),
            mib(self.rss.1)
        );
    }
}

/// Milliseconds per `/advanced` call (after 2 warm-up calls); `{h}` and `{d}`
/// in `query` become hours and days that change at every call.
async fn time_advanced(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    calls: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls.max(1) + 2 {
        // trending_limit varies so no two calls in a second share the answer cache.
        if i > 0 && i % 40 == 0 {
            // trending_limit starts over: wait for a new second, so that no
            // call meets an earlier one's answer in the one-second cache.
            next_second().await;
        }
        let query = query
            .replace("{h}", &(120 + i % 48).to_string())
            .replace("{d}", &(1 + i % 90).to_string());
        let target = format!(
            "{url}/api/v1/analytics/advanced?{query}trending_limit={}",
            10 + i % 40
        );
        let started = Instant::now();
        let response = client
            .get(&target)
            .bearer_auth(ADMIN)
            .send()
            .await
            .context("/advanced")?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() || body.get("degraded").is_some_and(|d| !d.is_null()) {
            bail!("/advanced answered {status}: {body}");
        }
        if i >= 2 {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}
