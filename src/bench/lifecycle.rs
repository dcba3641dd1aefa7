//! `ragpulse bench lifecycle`: the cost of forgetting, in process (the
//! writer, no HTTP) on a store shaped like real traffic (the demo's
//! generator).
//!
//! - Erasure: the time to erase one user with `--user-interactions`
//!   interactions spread over the history, in a store of `--interactions`;
//!   then a second such user while the clients ingest, with the ingest rate
//!   and p99 during that erasure.
//! - Retention: the ingest rate (interactions/s acknowledged to several
//!   concurrent clients) while a retention run deletes the history older
//!   than `--retention-days`, against the same load just before and just
//!   after it. Where the writer's time goes in each of the three periods is
//!   printed too: the writer and checkpointer threads' CPU and run-queue
//!   time, the bytes written to disk, and the WAL's size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::bounds::{fill, load, open, store_values};
use super::pct;
use crate::cli::LifecycleBenchArgs;
use crate::demo::generate::{Generator, Shape};
use crate::telemetry::Telemetry;
use crate::time::{MICROS_PER_DAY, Timestamp};

const ERASED: &str = "bench-erased-user";
/// The user erased while the clients ingest.
const ERASED_UNDER_LOAD: &str = "bench-erased-user-2";

#[allow(clippy::print_stdout)]
pub async fn run(args: LifecycleBenchArgs) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("data");
    let shape = Shape::bench(11);
    println!(
        "storing {} interactions over {} days, {} of them by one user...",
        args.interactions, args.days, args.user_interactions
    );
    let store = Arc::new(open(&dir, None)?);
    fill(&store, &shape, args.interactions, args.days).await?;
    one_user(
        &store,
        &shape,
        ERASED,
        100,
        args.user_interactions,
        args.days,
    )
    .await?;
    one_user(
        &store,
        &shape,
        ERASED_UNDER_LOAD,
        200,
        args.user_interactions,
        args.days,
    )
    .await?;

    let started = Instant::now();
    let report = store
        .erase_user(ERASED.to_string())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the bench user was not stored"))?;
    let erase_s = started.elapsed().as_secs_f64();
    println!(
        "erasure: {} interactions, {} phrasings, {} topics in {:.2} s",
        report.interactions, report.phrasings, report.topics, erase_s
    );

    let usage = Usage::now(&dir);
    let quiet = rate(&store, &shape, &args, async {}).await?;
    let erasing_store = store.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let erasure = tokio::spawn(async move {
        let started = Instant::now();
        let report = erasing_store
            .erase_user(ERASED_UNDER_LOAD.to_string())
            .await;
        let _ = done_tx.send(());
        (report, started.elapsed())
    });
    let erasing = rate(&store, &shape, &args, async {
        let _ = done_rx.await;
    })
    .await?;
    let (report, took) = erasure.await?;
    let report = report?.ok_or_else(|| anyhow::anyhow!("the second bench user was not stored"))?;
    println!(
        "erasure while ingesting: {} interactions in {:.2} s; ingest before {:.0}/s (p99 {:.1} ms), during {:.0}/s (p99 {:.1} ms)",
        report.interactions,
        took.as_secs_f64(),
        quiet.0,
        quiet.1,
        erasing.0,
        erasing.1
    );

    let before = rate(&store, &shape, &args, async {}).await?;
    let before_usage = Usage::now(&dir).since(&usage);
    let telemetry = Telemetry::new();
    let cutoff = (Timestamp::now().0.div_euclid(MICROS_PER_DAY) - i64::from(args.retention_days))
        * MICROS_PER_DAY;
    let retention_store = store.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let retention = tokio::spawn(async move {
        let started = Instant::now();
        let deleted = crate::retention::run(
            retention_store.as_ref(),
            &telemetry,
            cutoff,
            &CancellationToken::new(),
        )
        .await;
        let _ = done_tx.send(());
        (deleted, started.elapsed())
    });
    let usage = Usage::now(&dir);
    let during = rate(&store, &shape, &args, async {
        let _ = done_rx.await;
    })
    .await?;
    let during_usage = Usage::now(&dir).since(&usage);
    let (deleted, took) = retention.await?;
    let run = deleted?;
    let deleted = run.deleted;
    let usage = Usage::now(&dir);
    let after = rate(&store, &shape, &args, async {}).await?;
    let after_usage = Usage::now(&dir).since(&usage);
    store.close().await;
    let baseline = (before.0 + after.0) / 2.0;
    println!(
        "retention: {} interactions, {} phrasings, {} topic texts deleted in {:.1} s",
        deleted[0],
        deleted[1],
        deleted[2],
        took.as_secs_f64()
    );
    println!(
        "ingest before {:.0}/s (p99 {:.1} ms), during retention {:.0}/s (p99 {:.1} ms), after {:.0}/s (p99 {:.1} ms); rate during / around: {:.2}",
        before.0,
        before.1,
        during.0,
        during.1,
        after.0,
        after.1,
        during.0 / baseline
    );
    println!(
        "retention's batches held the writer {:.1} s of the {:.1} s run ({:.0}%); ingest's writer time per 1,000 interactions during the run, without it: {:.1} ms",
        run.writer_time.as_secs_f64(),
        took.as_secs_f64(),
        run.writer_time.as_secs_f64() * 100.0 / took.as_secs_f64().max(1e-9),
        (during_usage.writer.0 + during_usage.writer.1 - run.writer_time.as_secs_f64()).max(0.0)
            * 1e6
            / (during.0 * during_usage.seconds).max(1.0)
    );
    for (name, usage, rate) in [
        ("before", before_usage, before),
        ("during", during_usage, during),
        ("after", after_usage, after),
    ] {
        usage.print(name, rate.0);
    }
    println!(
        "reproduce: cargo run --release -- bench lifecycle --interactions {} --days {} --user-interactions {} --retention-days {} --clients {} --batch {} --seconds {}",
        args.interactions,
        args.days,
        args.user_interactions,
        args.retention_days,
        args.clients,
        args.batch,
        args.seconds.as_secs()
    );
    Ok(())
}

/// `n` interactions of the bench user `id`, spread over the last `days`
/// (`seed` varies their content).
async fn one_user(
    store: &crate::store::sqlite::SqliteStore,
    shape: &Shape,
    id: &str,
    seed: u64,
    n: u64,
    days: u32,
) -> anyhow::Result<()> {
    let now = Timestamp::now().micros() - 60_000_000;
    let span = i64::from(days.max(1)) * MICROS_PER_DAY;
    let mut generator = Generator::new(
        &Shape {
            seed: shape.seed + seed,
            ..shape.clone()
        },
        now,
    );
    store_values(
        store,
        vec![json!({"type": "user", "id": id, "email": format!("{id}@example.com"), "full_name": "Bench User"})],
    )
    .await?;
    let mut batch: Vec<Value> = Vec::with_capacity(5_000);
    for i in 0..n {
        let ts = now - span + (span as f64 * (i as f64 + 0.3) / n.max(1) as f64) as i64;
        let mut event = generator.interaction(ts);
        event["user_id"] = json!(id);
        batch.push(event);
        if batch.len() == 5_000 {
            store_values(store, std::mem::take(&mut batch)).await?;
        }
    }
    store_values(store, batch).await
}

/// Interactions acknowledged per second, and the p99 batch latency (ms),
/// while `until` runs (at least `--seconds`).
async fn rate(
    store: &Arc<crate::store::sqlite::SqliteStore>,
    shape: &Shape,
    args: &LifecycleBenchArgs,
    until: impl std::future::Future<Output = ()>,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let times = load(
        store,
        shape,
        args.clients,
        args.batch,
        args.seconds.max(Duration::from_secs(1)),
        until,
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok((
        (times.len() * args.batch) as f64 / seconds,
        pct(&times, 0.99),
    ))
}

/// What the process used over a period: the writer's and the WAL
/// checkpointer's threads (seconds on a CPU, seconds runnable but waiting
/// for one), the whole process's CPU, bytes written to disk, and the WAL's
/// size at the end.
#[derive(Clone, Copy, Default)]
struct Usage {
    seconds: f64,
    writer: (f64, f64),
    checkpointer: (f64, f64),
    process_cpu: f64,
    written_bytes: f64,
    wal_bytes: f64,
}

impl Usage {
    fn now(dir: &std::path::Path) -> Self {
        let pid = std::process::id();
        let sched = |name: &str| {
            super::procfs::thread_sched(pid, name).map_or((0.0, 0.0), |s| (s.on_cpu, s.waiting))
        };
        let written_bytes = std::fs::read_to_string("/proc/self/io")
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("write_bytes:"))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0.0);
        let wal = dir.join(format!("{}-wal", crate::store::sqlite::DATABASE_FILE));
        Self {
            seconds: START.elapsed().as_secs_f64(),
            writer: sched(super::procfs::WRITER_THREAD),
            // Thread names are cut to 15 bytes.
            checkpointer: sched("ragpulse-checkp"),
            process_cpu: super::procfs::cpu_seconds(pid).unwrap_or(0.0),
            written_bytes,
            wal_bytes: std::fs::metadata(wal).map_or(0.0, |m| m.len() as f64),
        }
    }

    fn since(&self, earlier: &Self) -> Self {
        let minus = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0, a.1 - b.1);
        Self {
            seconds: self.seconds - earlier.seconds,
            writer: minus(self.writer, earlier.writer),
            checkpointer: minus(self.checkpointer, earlier.checkpointer),
            process_cpu: self.process_cpu - earlier.process_cpu,
            written_bytes: self.written_bytes - earlier.written_bytes,
            wal_bytes: self.wal_bytes,
        }
    }

    #[allow(clippy::print_stdout)]
    fn print(&self, period: &str, rate: f64) {
        let per_s = |x: f64| x / self.seconds.max(1e-9);
        // The writer's time on a CPU or in the run queue per 1,000 ingested
        // interactions (retention's share included).
        let per_1000 = (self.writer.0 + self.writer.1) * 1e6 / (rate * self.seconds).max(1.0);
        println!(
            "{period}: writer {:.0}% on a CPU + {:.0}% waiting for one ({per_1000:.1} ms per 1,000 ingested), \
             checkpointer {:.0}% + {:.0}%, process CPU {:.2} cores, disk writes {:.1} MB/s, WAL {:.1} MB",
            per_s(self.writer.0) * 100.0,
            per_s(self.writer.1) * 100.0,
            per_s(self.checkpointer.0) * 100.0,
            per_s(self.checkpointer.1) * 100.0,
            per_s(self.process_cpu),
            per_s(self.written_bytes) / 1e6,
            self.wal_bytes / 1e6,
        );
    }
}

/// The bench's own clock, for the periods' lengths.
static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
