//! `ragpulse bench prometheus`: what the RAG series of `/metrics` cost.
//!
//! 1. Ingest: the core bench's dataset goes over HTTP into fresh servers
//!    with the series on and off (`--rag-metrics false`), in alternating
//!    rounds; the medians and their ratio are reported.
//! 2. Scrape: a server holding `--scrape-assistants` assistants that each
//!    used every one of `--scrape-models` models and five pipeline steps,
//!    and `--scrape-connectors` connectors with syncs of every outcome;
//!    `GET /metrics` is timed `--scrapes` times (each one encodes afresh:
//!    nothing is cached between scrapes).
//! 3. Start (with `--store DIR`, an existing data directory such as the one
//!    `bench rollups --data-dir` builds): the time to read the stored series'
//!    state, which is what a start adds, and the time a rebuild from every
//!    stored event takes (once, on a store that has no state yet), both
//!    read-only.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Server, build_dataset, ingest_all, ndjson, pct, post, procfs};
use crate::cli::{BenchArgs, PrometheusBenchArgs};
use crate::demo::questions::QuestionMix;
use crate::time::Timestamp;

#[allow(clippy::print_stdout)]
pub async fn run(args: PrometheusBenchArgs) -> anyhow::Result<()> {
    let dataset_args = BenchArgs {
        interactions: args.interactions,
        days: 1,
        assistants: args.assistants,
        batch: args.batch,
        clients: args.clients,
        calls: 0,
        scan_calls: 0,
        data_dir: None,
        seed: args.seed,
        questions: vec![QuestionMix::Realistic],
        rounds: 1,
        scenario: None,
    };
    println!(
        "building {} interactions for {} assistants...",
        args.interactions, args.assistants
    );
    let built =
        tokio::task::spawn_blocking(move || build_dataset(&dataset_args, QuestionMix::Realistic))
            .await??;
    let dataset = Corpus {
        registry: built.registry,
        batches: std::sync::Arc::new(built.batches),
        interactions: built.interactions,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    // Alternating rounds, so a noisy neighbour weighs on both sides alike.
    let (mut on, mut off) = (Ingest::default(), Ingest::default());
    for round in 1..=args.rounds.max(1) {
        for (series, runs) in [(true, &mut on), (false, &mut off)] {
            let run = ingest_once(&client, &dataset, series, args.clients).await?;
            println!(
                "round {round}: series {}: {:.0} interactions/s, writer {:.2} µs and server {:.2} µs of CPU per interaction",
                if series { "on " } else { "off" },
                run.0,
                run.1.unwrap_or(f64::NAN),
                run.2.unwrap_or(f64::NAN)
            );
            runs.push(run);
        }
    }
    println!("timing GET /metrics...");
    let scrape = time_scrapes(&client, &args).await?;
    if let Some(dir) = &args.store {
        build_store(dir, &args).await?;
    }
    let start = match &args.store {
        Some(dir) => Some(
            tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || time_start(&dir)
            })
            .await??,
        ),
        None => None,
    };

    println!();
    println!("| figure | value |\n|---|---|");
    for (name, runs) in [("on", &on), ("off", &off)] {
        println!(
            "| ingest, series {name} | {:.0} interactions/s (median of {} rounds: {}) |",
            median(&runs.rates),
            runs.rates.len(),
            list(&runs.rates)
        );
    }
    println!(
        "| ingest rate, on / off | {:.3} |",
        median(&on.rates) / median(&off.rates)
    );
    for (name, pick) in [
        (
            "writer thread CPU",
            (|r: &Ingest| &r.writer) as fn(&Ingest) -> &Vec<f64>,
        ),
        ("server CPU", |r: &Ingest| &r.process),
    ] {
        println!(
            "| {name} per interaction, on / off | {:.2} µs / {:.2} µs = {:.3} (medians) |",
            median(pick(&on)),
            median(pick(&off)),
            median(pick(&on)) / median(pick(&off))
        );
    }
    println!(
        "| GET /metrics, {} assistants × {} models, {} connectors | p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} scrapes; {} samples, {:.0} KiB) |",
        args.scrape_assistants,
        args.scrape_models,
        args.scrape_connectors,
        pct(&scrape.ms, 0.5),
        pct(&scrape.ms, 0.95),
        scrape.ms.iter().copied().fold(0.0, f64::max),
        scrape.ms.len(),
        scrape.samples,
        scrape.bytes as f64 / 1024.0
    );
    if let Some(start) = start {
        start.print();
    }
    println!();
    println!(
        "reproduce: cargo run --release -- bench prometheus --interactions {} --assistants {} --rounds {} --batch {} --clients {} --scrape-assistants {} --scrape-models {} --scrape-connectors {} --scrapes {} --seed {}{}",
        args.interactions,
        args.assistants,
        args.rounds,
        args.batch,
        args.clients,
        args.scrape_assistants,
        args.scrape_models,
        args.scrape_connectors,
        args.scrapes,
        args.seed,
        args.store
            .as_ref()
            .map(|d| format!(
                " --store {} --store-interactions {}",
                d.display(),
                args.store_interactions
            ))
            .unwrap_or_default()
    );
    Ok(())
}

/// The figures of one side's ingest rounds.
#[derive(Default)]
struct Ingest {
    rates: Vec<f64>,
    /// µs of CPU per interaction: the writer thread's, the whole server's.
    writer: Vec<f64>,
    process: Vec<f64>,
}

impl Ingest {
    fn push(&mut self, (rate, writer, process): (f64, Option<f64>, Option<f64>)) {
        self.rates.push(rate);
        self.writer.extend(writer);
        self.process.extend(process);
    }
}

fn median(values: &[f64]) -> f64 {
    pct(values, 0.5)
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The core bench's dataset, its batches shared by every round.
struct Corpus {
    registry: Vec<Vec<u8>>,
    batches: std::sync::Arc<Vec<Vec<u8>>>,
    interactions: u64,
}

/// Interactions per second into a fresh server, from the first batch to the
/// last answer, and the µs of CPU per interaction of its writer thread and
/// of the whole server (steadier than the rate on a shared machine).
async fn ingest_once(
    client: &reqwest::Client,
    dataset: &Corpus,
    series: bool,
    clients: usize,
) -> anyhow::Result<(f64, Option<f64>, Option<f64>)> {
    let dir = tempfile::Builder::new()
        .prefix("ragpulse-bench-prometheus-")
        .tempdir()?;
    let flag = if series { "true" } else { "false" };
    let mut server = Server::start_with(dir.path(), &["--rag-metrics", flag])?;
    for chunk in &dataset.registry {
        post(client, &server.url, chunk).await?;
    }
    let pid = server.child.id();
    let before = (
        procfs::thread_sched(pid, procfs::WRITER_THREAD),
        procfs::cpu_seconds(pid),
    );
    let elapsed = ingest_all(client, &server.url, dataset.batches.clone(), clients).await?;
    let per_interaction = |seconds: f64| seconds * 1e6 / dataset.interactions.max(1) as f64;
    let writer = procfs::thread_sched(pid, procfs::WRITER_THREAD)
        .zip(before.0)
        .map(|(now, then)| per_interaction((now - then).on_cpu));
    let process = procfs::cpu_seconds(pid)
        .zip(before.1)
        .map(|(now, then)| per_interaction(now - then));
    server.stop();
    let rate = dataset.interactions as f64 / elapsed.max(Duration::from_millis(1)).as_secs_f64();
    Ok((rate, writer, process))
}

struct Scrapes {
    ms: Vec<f64>,
    samples: usize,
    bytes: usize,
}

/// The scrape store's events: every assistant on every model, five steps,
/// rerank data; every connector with syncs of each outcome.
fn scrape_events(args: &PrometheusBenchArgs) -> Vec<Value> {
    let now = Timestamp::now().micros() - 60_000_000;
    let id = |kind: u128, n: usize| Uuid::from_u128((kind << 96) | (n as u128 + 1));
    let mut events = Vec::new();
    for a in 0..args.scrape_assistants {
        events.push(json!({"type": "assistant", "id": id(1, a), "name": format!("Assistant {a}")}));
    }
    for c in 0..args.scrape_connectors {
        events.push(json!({"type": "connector", "id": id(2, c), "name": format!("Connector {c}")}));
        for (s, status) in ["success", "partial", "failure", "failure"]
            .iter()
            .enumerate()
        {
            events.push(json!({
                "type": "connector_sync", "id": id(3, c * 4 + s), "connector_id": id(2, c),
                "status": status, "started_at": Timestamp(now - (4 - s as i64) * 60_000_000).to_rfc3339(),
                "duration_s": 30.0 + s as f64,
            }));
        }
    }
    let steps: Vec<Value> = ["embed", "retrieval", "rerank", "synthesis", "guardrail"]
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"name": s, "duration_s": 0.01 * (i + 1) as f64}))
        .collect();
    let mut n = 0;
    for a in 0..args.scrape_assistants {
        for m in 0..args.scrape_models {
            for repeat in 0..2 {
                n += 1;
                events.push(json!({
                    "type": "interaction", "id": id(4, n), "assistant_id": id(1, a),
                    "timestamp": Timestamp(now - n as i64 * 1_000).to_rfc3339(),
                    "session_id": format!("s{a}-{repeat}"), "model": format!("model-{m}"),
                    "ttft_s": 0.2 + (n % 40) as f64 * 0.1, "total_duration_s": 5.0,
                    "cache_hit": n % 5 == 0, "input_tokens": 1000, "output_tokens": 200,
                    "steps": steps,
                    "rerank": {"score_before": 0.4, "score_after": 0.5},
                }));
            }
        }
    }
    events
}

async fn time_scrapes(
    client: &reqwest::Client,
    args: &PrometheusBenchArgs,
) -> anyhow::Result<Scrapes> {
    let dir = tempfile::Builder::new()
        .prefix("ragpulse-bench-scrape-")
        .tempdir()?;
    let mut server = Server::start_with(dir.path(), &["--gauge-interval", "1"])?;
    for chunk in scrape_events(args).chunks(1_000) {
        post(client, &server.url, &ndjson(chunk)?).await?;
    }
    // The background gauges are computed once a second: wait for them too.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let url = format!("{}/metrics", server.url);
    let mut ms = Vec::with_capacity(args.scrapes);
    let mut last = String::new();
    for i in 0..args.scrapes.max(1) + 3 {
        let started = Instant::now();
        let response = client.get(&url).send().await.context("GET /metrics")?;
        if !response.status().is_success() {
            bail!("/metrics answered {}", response.status());
        }
        last = response.text().await?;
        if i >= 3 {
            ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    server.stop();
    let expected = format!("model=\"model-{}\"", args.scrape_models.saturating_sub(1));
    if !last.contains(&expected) || !last.contains("ragpulse_documents") {
        bail!("the scrape does not hold the series it was given");
    }
    Ok(Scrapes {
        ms,
        samples: last
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count(),
        bytes: last.len(),
    })
}

/// Builds the `--store` of `--store-interactions` over 90 days (in process,
/// as `bench rollups` builds its large store) unless a complete one is there.
async fn build_store(dir: &Path, args: &PrometheusBenchArgs) -> anyhow::Result<()> {
    use super::rollups::{COMPLETE_MARKER, ingest_into};
    if dir.join(COMPLETE_MARKER).exists() {
        println!("reusing the store in {}", dir.display());
        return Ok(());
    }
    println!(
        "building a store of {} interactions over 90 days in {}...",
        args.store_interactions,
        dir.display()
    );
    let build = crate::cli::RollupBenchArgs {
        interactions: args.store_interactions,
        days: 90,
        assistants: args.assistants,
        compare: 0,
        compare_days: 1,
        rounds: 0,
        calls: 0,
        scan_calls: 0,
        clients: args.clients,
        batch: 2_000,
        data_dir: None,
        seed: args.seed,
        questions: QuestionMix::Realistic,
    };
    ingest_into(&build, dir, args.store_interactions, true).await?;
    std::fs::write(dir.join(COMPLETE_MARKER), b"")?;
    Ok(())
}

struct Start {
    interactions: i64,
    load: Option<Duration>,
    rebuild: Duration,
}

impl Start {
    #[allow(clippy::print_stdout)]
    fn print(&self) {
        println!(
            "| start: reading the stored series' state, {} interactions | {} |",
            self.interactions,
            self.load
                .map_or("no stored state (the store has none)".to_string(), |d| {
                    format!("{:.1} ms", d.as_secs_f64() * 1e3)
                })
        );
        println!(
            "| start: one-time rebuild from every stored event, {} interactions | {:.1} s |",
            self.interactions,
            self.rebuild.as_secs_f64()
        );
    }
}

/// Reads a large store's state and rebuilds it from its events, read-only.
fn time_start(dir: &Path) -> anyhow::Result<Start> {
    use crate::store::sqlite::{DATABASE_FILE, series};
    let path = dir.join(DATABASE_FILE);
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", path.display()))?;
    let interactions: i64 =
        conn.query_row("SELECT count(*) FROM interactions", [], |r| r.get(0))?;
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM rag_series", [], |r| r.get(0))
        .unwrap_or(0);
    let load = if stored > 0 {
        let started = Instant::now();
        series::load(&conn)?;
        Some(started.elapsed())
    } else {
        None
    };
    println!("rebuilding the series' state from {interactions} interactions (read-only)...");
    let started = Instant::now();
    series::rebuild(&conn)?;
    Ok(Start {
        interactions,
        load,
        rebuild: started.elapsed(),
    })
}
