//! `ragpulse bench`: builds a synthetic dataset, ingests it over HTTP into a
//! real server process from concurrent clients, then times `/advanced`. Prints
//! ingest events/s, latency percentiles, the server's peak RSS and the data
//! directory size, with the command that reproduces them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cli::BenchArgs;
use crate::demo::generate::{Generator, Shape};
use crate::demo::questions::QuestionMix;
use crate::time::{MICROS_PER_DAY, Timestamp};

pub(crate) const ADMIN: &str = "bench-admin-token-0123456789";
pub(crate) const INGEST: &str = "bench-ingest-token-0123456789";

mod backup;
mod bounds;
mod lifecycle;
pub mod live;
pub mod otlp;
mod procfs;
pub mod prometheus;
pub mod rollups;
mod topic_reads;
pub mod topics;

use topic_reads::TopicReads;

use crate::cli::BenchScenario;

/// Runs the scenario the command line names (ingest + `/advanced` by default).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match &args.scenario {
        Some(BenchScenario::Live(live)) => live::run(live.clone()).await,
        Some(BenchScenario::Topics(topics)) => topics::run(topics.clone()),
        Some(BenchScenario::Rollups(rollups)) => rollups::run(rollups.clone()).await,
        Some(BenchScenario::Otlp(otlp)) => otlp::run(otlp.clone()).await,
        Some(BenchScenario::Reprice(reprice)) => bounds::reprice(reprice.clone()).await,
        Some(BenchScenario::Cold(cold)) => bounds::cold(cold.clone()).await,
        Some(BenchScenario::Prometheus(args)) => prometheus::run(args.clone()).await,
        Some(BenchScenario::Backup(args)) => backup::run(args.clone()).await,
        Some(BenchScenario::Lifecycle(args)) => lifecycle::run(args.clone()).await,
        None => core(args).await,
    }
}

/// Runs the core bench for each question mix, in `--rounds` alternating
/// rounds, then sets the mixes' medians side by side.
#[allow(clippy::print_stdout)]
async fn core(args: BenchArgs) -> anyhow::Result<()> {
    let mixes = if args.questions.is_empty() {
        vec![QuestionMix::default()]
    } else {
        args.questions.clone()
    };
    let names: Vec<&str> = mixes.iter().map(|m| m.name()).collect();
    println!(
        "questions: {} ({} alternating round(s)); {} interactions over {} days, {} assistants, {} clients",
        names.join(", "),
        args.rounds.max(1),
        args.interactions,
        args.days,
        args.assistants,
        args.clients
    );
    let runs = mixes.len() * args.rounds.max(1);
    if runs > 1 && args.data_dir.is_some() {
        bail!("--data-dir keeps one store: run one mix and one round with it");
    }
    let mut figures: Vec<(QuestionMix, Figures)> = Vec::new();
    for round in 0..args.rounds.max(1) {
        for &mix in &mixes {
            println!();
            println!("## round {}: {} questions", round + 1, mix.name());
            figures.push((mix, core_once(&args, mix).await?));
        }
    }
    if runs > 1 {
        print_summary(&mixes, &figures);
    }
    println!();
    println!(
        "reproduce: cargo run --release -- bench --questions {} --rounds {} --interactions {} --days {} --assistants {} --batch {} --clients {} --calls {} --scan-calls {} --seed {}",
        names.join(","),
        args.rounds.max(1),
        args.interactions,
        args.days,
        args.assistants,
        args.batch,
        args.clients,
        args.calls,
        args.scan_calls,
        args.seed
    );
    Ok(())
}

/// The medians of one run.
struct Figures {
    ingest: f64,
    advanced: f64,
    step_days_90: f64,
    topics: Vec<(&'static str, f64)>,
    rss_mib: Option<f64>,
}

impl Figures {
    /// `(name, value)` of each figure, in a fixed order.
    fn rows(&self) -> Vec<(String, f64)> {
        let mut rows = vec![
            ("ingest, interactions/s".to_string(), self.ingest),
            ("/advanced defaults p50, ms".to_string(), self.advanced),
            (
                "/advanced step_days=90 p50, ms".to_string(),
                self.step_days_90,
            ),
            (
                "server peak RSS, MiB".to_string(),
                self.rss_mib.unwrap_or(f64::NAN),
            ),
        ];
        rows.extend(
            self.topics
                .iter()
                .map(|(n, v)| (format!("{n} p50, ms"), *v)),
        );
        rows
    }
}

/// Per mix, the median over its rounds of each figure, and its ratio to the first mix's.
#[allow(clippy::print_stdout)]
fn print_summary(mixes: &[QuestionMix], figures: &[(QuestionMix, Figures)]) {
    let medians: Vec<Vec<(String, f64)>> = mixes
        .iter()
        .map(|&mix| {
            let runs: Vec<Vec<(String, f64)>> = figures
                .iter()
                .filter(|(m, _)| *m == mix)
                .map(|(_, f)| f.rows())
                .collect();
            let names = runs.first().cloned().unwrap_or_default();
            names
                .into_iter()
                .enumerate()
                .map(|(i, (name, _))| {
                    let values: Vec<f64> = runs.iter().map(|r| r[i].1).collect();
                    (name, pct(&values, 0.5))
                })
                .collect()
        })
        .collect();
    println!();
    println!(
        "medians over the rounds; ratio: against {}",
        mixes[0].name()
    );
    let header: Vec<String> = mixes
        .iter()
        .map(|m| format!("{} | ratio", m.name()))
        .collect();
    println!("| figure | {} |", header.join(" | "));
    println!("|---|{}", "---|---|".repeat(mixes.len()));
    for (i, (name, base)) in medians[0].iter().enumerate() {
        let cells: Vec<String> = medians
            .iter()
            .map(|m| format!("{:.1} | {:.2}", m[i].1, m[i].1 / base))
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
}

/// One run of the core bench on `mix`: build, ingest over HTTP, time the reads.
#[allow(clippy::print_stdout)]
async fn core_once(args: &BenchArgs, mix: QuestionMix) -> anyhow::Result<Figures> {
    let temp = tempfile::Builder::new()
        .prefix("ragpulse-bench-")
        .tempdir()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    println!(
        "building {} interactions over {} days for {} assistants, {} questions...",
        args.interactions,
        args.days,
        args.assistants,
        mix.name()
    );
    let dataset = tokio::task::spawn_blocking({
        let args = BenchArgs {
            data_dir: None,
            scenario: None,
            ..args.clone()
        };
        move || build_dataset(&args, mix)
    })
    .await??;
    let mut server = Server::start(&data_dir)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    for chunk in &dataset.registry {
        post(&client, &server.url, chunk).await?;
    }
    println!(
        "ingesting {} batches of {} from {} clients...",
        dataset.batches.len(),
        args.batch,
        args.clients
    );
    let pid = server.child.id();
    let before = (
        procfs::cpu_seconds(pid),
        procfs::thread_sched(pid, procfs::WRITER_THREAD),
    );
    let ingest = ingest_all(
        &client,
        &server.url,
        Arc::new(dataset.batches),
        args.clients,
    )
    .await?;
    let rate = dataset.interactions as f64 / ingest.as_secs_f64();
    let cpu = IngestCpu {
        process: procfs::cpu_seconds(pid)
            .zip(before.0)
            .map(|(now, then)| now - then),
        writer: procfs::thread_sched(pid, procfs::WRITER_THREAD)
            .zip(before.1)
            .map(|(now, then)| now - then),
        interactions: dataset.interactions,
        wall: ingest,
    };
    let first = dataset
        .assistants
        .first()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let rollups = time_variants(&client, &server.url, &first, args.calls).await?;
    let step_days_90 = time_calls(&client, &server.url, "?step_days=90", args.calls).await?;
    let topic_reads = TopicReads::time(&client, &server.url, args.calls).await?;
    let rss = server.peak_rss_kib();
    server.stop();
    let scan = if args.scan_calls > 0 {
        println!("timing /advanced on the raw scan path...");
        let mut server = Server::start_with(
            &data_dir,
            &["--metric-timeout", "3600", "--read-path", "scan"],
        )?;
        let timed = time_variants(&client, &server.url, &first, args.scan_calls).await?;
        server.stop();
        Some(timed)
    } else {
        None
    };
    let size = dir_size(&data_dir);
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| interactions | {} over {} days, {} assistants, {} questions |",
        dataset.interactions,
        args.days,
        args.assistants,
        mix.name()
    );
    println!(
        "| ingest | {:.0} interactions/s ({:.1} s, batches of {}, {} clients, HTTP, fsync per group commit) |",
        rate,
        ingest.as_secs_f64(),
        args.batch,
        args.clients
    );
    cpu.print();
    rollups.print("rollups");
    println!(
        "| /advanced step_days=90, rollups | p50 {:.1} ms, p95 {:.1} ms ({} calls) |",
        pct(&step_days_90, 0.5),
        pct(&step_days_90, 0.95),
        step_days_90.len()
    );
    topic_reads.print();
    if let Some(scan) = &scan {
        scan.print("raw scan");
    }
    println!(
        "| server peak RSS | {} |",
        rss.map_or("unknown".to_string(), |k| format!(
            "{:.0} MiB",
            k as f64 / 1024.0
        ))
    );
    println!("| data directory | {:.0} MiB |", size as f64 / 1048576.0);
    rollups.print_breakdown("rollups");
    if let Some(scan) = &scan {
        scan.print_breakdown("raw scan");
    }
    drop(temp);
    Ok(Figures {
        ingest: rate,
        advanced: pct(&rollups.defaults, 0.5),
        step_days_90: pct(&step_days_90, 0.5),
        topics: topic_reads.medians(),
        rss_mib: rss.map(|k| k as f64 / 1024.0),
    })
}

/// The server's CPU over the ingest: steadier than the rate on a shared
/// machine, and it says whether the writer thread had a core to itself.
struct IngestCpu {
    process: Option<f64>,
    writer: Option<procfs::Sched>,
    interactions: u64,
    wall: Duration,
}

impl IngestCpu {
    #[allow(clippy::print_stdout)]
    fn print(&self) {
        let per_interaction = |seconds: f64| seconds * 1e6 / self.interactions.max(1) as f64;
        let wall = self.wall.as_secs_f64();
        println!(
            "| server CPU during ingest | {} |",
            self.process.map_or("unknown".to_string(), |s| format!(
                "{:.1} µs per interaction, {:.2} cores",
                per_interaction(s),
                s / wall
            ))
        );
        println!(
            "| server writer thread during ingest | {} |",
            self.writer.map_or("unknown".to_string(), |w| format!(
                "{:.1} µs per interaction; on a CPU {:.2} of the time, runnable but waiting for one {:.2}",
                per_interaction(w.on_cpu),
                w.on_cpu / wall,
                w.waiting / wall
            ))
        );
    }
}

/// `/advanced` timed with defaults and with an `assistant_id` on one server.
struct Timed {
    defaults: Vec<f64>,
    scoped: Vec<f64>,
    breakdown: Vec<(String, f64)>,
}

impl Timed {
    #[allow(clippy::print_stdout)]
    fn print(&self, path: &str) {
        for (variant, ms) in [("defaults", &self.defaults), ("assistant_id", &self.scoped)] {
            println!(
                "| /advanced {variant}, {path} | p50 {:.1} ms, p95 {:.1} ms ({} calls) |",
                pct(ms, 0.5),
                pct(ms, 0.95),
                ms.len()
            );
        }
    }

    #[allow(clippy::print_stdout)]
    fn print_breakdown(&self, path: &str) {
        println!();
        println!(
            "where /advanced spends its time, {path} (mean per metric over every call, from /metrics):"
        );
        for (metric, mean_ms) in &self.breakdown {
            println!("  {metric:<24} {mean_ms:>8.1} ms");
        }
    }
}

async fn time_variants(
    client: &reqwest::Client,
    url: &str,
    assistant: &str,
    calls: usize,
) -> anyhow::Result<Timed> {
    Ok(Timed {
        defaults: time_calls(client, url, "", calls).await?,
        scoped: time_calls(client, url, &format!("?assistant_id={assistant}"), calls).await?,
        breakdown: metric_breakdown(client, url).await?,
    })
}

struct Dataset {
    registry: Vec<Vec<u8>>,
    batches: Vec<Vec<u8>>,
    interactions: u64,
    assistants: Vec<uuid::Uuid>,
}

/// NDJSON bodies, built before timing so the clients measure the server only.
fn build_dataset(args: &BenchArgs, mix: QuestionMix) -> anyhow::Result<Dataset> {
    let now = Timestamp::now().micros() - 60_000_000;
    let span = i64::from(args.days.max(1)) * MICROS_PER_DAY;
    let shape = Shape {
        assistants: args.assistants.max(1) as usize,
        users: 5_000,
        documents: 20_000,
        seed: args.seed,
    };
    let mut generator = Generator::new(&shape, now).with_questions(mix, args.seed);
    let registry = generator
        .registry_events()
        .chunks(args.batch.max(1))
        .map(ndjson)
        .collect::<anyhow::Result<_>>()?;
    let n = args.interactions.max(1);
    let mut batches = Vec::new();
    let mut batch = Vec::with_capacity(args.batch);
    for i in 0..n {
        let ts = now - span + (span as f64 * (i as f64 + 0.5) / n as f64) as i64;
        batch.push(generator.interaction(ts));
        if i % 1_000 == 999 {
            batch.push(generator.sync(ts));
        }
        if batch.len() >= args.batch {
            batches.push(ndjson(&batch)?);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        batches.push(ndjson(&batch)?);
    }
    Ok(Dataset {
        registry,
        batches,
        interactions: n,
        assistants: generator.assistant_ids(),
    })
}

fn ndjson(events: &[serde_json::Value]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.push(b'\n');
    }
    Ok(out)
}

async fn post(client: &reqwest::Client, url: &str, body: &[u8]) -> anyhow::Result<()> {
    loop {
        let response = client
            .post(format!("{url}/api/v1/ingest"))
            .bearer_auth(INGEST)
            .header("content-type", "application/x-ndjson")
            .body(body.to_vec())
            .send()
            .await?;
        match response.status().as_u16() {
            200 => return Ok(()),
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            status => bail!(
                "ingest answered {status}: {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
}

async fn ingest_all(
    client: &reqwest::Client,
    url: &str,
    batches: Arc<Vec<Vec<u8>>>,
    clients: usize,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, url, batches, next) = (
            client.clone(),
            url.to_string(),
            batches.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = batches.get(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                post(&client, &url, body).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

pub(crate) async fn time_calls(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    calls: usize,
) -> anyhow::Result<Vec<f64>> {
    let target = format!("{url}/api/v1/analytics/advanced{query}");
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls.max(1) + 3 {
        // Different ttft_hours per call defeat the one-second shared cache: each call computes.
        let call = format!(
            "{target}{}ttft_hours={}",
            if query.is_empty() { "?" } else { "&" },
            24 + (i % 100)
        );
        let ms = timed_get(client, &call).await?;
        if i >= 3 {
            times.push(ms);
        }
    }
    Ok(times)
}

/// Milliseconds an authorised GET of `url` took, body included; an error
/// unless it succeeded.
pub(crate) async fn timed_get(client: &reqwest::Client, url: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let response = client.get(url).bearer_auth(ADMIN).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// Mean seconds per metric from the server's `ragpulse_metric_seconds` histogram.
pub(crate) async fn metric_breakdown(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<Vec<(String, f64)>> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut sums: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("ragpulse_metric_seconds_") else {
            continue;
        };
        let (kind, rest) = rest.split_once('{').unwrap_or(("", ""));
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Some(metric) = labels
            .strip_prefix("metric=\"")
            .and_then(|l| l.strip_suffix('"'))
        else {
            continue;
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        let entry = sums.entry(metric.to_string()).or_default();
        match kind {
            "sum" => entry.0 = value,
            "count" => entry.1 = value,
            _ => {}
        }
    }
    let mut out: Vec<(String, f64)> = sums
        .into_iter()
        .filter(|(_, (_, n))| *n > 0.0)
        .map(|(m, (s, n))| (m, s / n * 1e3))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}

pub(crate) fn pct(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The server under test, a child process of this binary.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
}

impl Server {
    fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(data_dir, &[])
    }

    /// With extra `serve` flags (for example `--broadcast-interval 1`).
    pub(crate) fn start_with(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the ragpulse binary")?;
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-token",
                ADMIN,
                "--ingest-token",
                INGEST,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the server")?;
        let stdout = child.stdout.take().context("no stdout from the server")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("ragpulse listening on ")
            .with_context(|| format!("unexpected first line from the server: {line:?}"))?
            .to_string();
        Ok(Self { child, url })
    }

    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bench that fails half-way must not leave its server running.
impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
