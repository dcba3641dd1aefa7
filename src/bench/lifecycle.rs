//! `ragpulse bench lifecycle`: the cost of forgetting, in process (the
//! writer, no HTTP) on a store shaped like real traffic (the demo's
//! generator).
//!
//! - Erasure: the time to erase one user with `--user-interactions`
//!   interactions spread over the history, in a store of `--interactions`.
//! - Retention: the ingest rate (interactions/s acknowledged to several
//!   concurrent clients) while a retention run deletes the history older
//!   than `--retention-days`, against the same load just before and just
//!   after it.

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
    one_user(&store, &shape, args.user_interactions, args.days).await?;

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

    let before = rate(&store, &shape, &args, async {}).await?;
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
    let during = rate(&store, &shape, &args, async {
        let _ = done_rx.await;
    })
    .await?;
    let (deleted, took) = retention.await?;
    let deleted = deleted?;
    let after = rate(&store, &shape, &args, async {}).await?;
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

/// `n` interactions of the bench user, spread over the last `days`.
async fn one_user(
    store: &crate::store::sqlite::SqliteStore,
    shape: &Shape,
    n: u64,
    days: u32,
) -> anyhow::Result<()> {
    let now = Timestamp::now().micros() - 60_000_000;
    let span = i64::from(days.max(1)) * MICROS_PER_DAY;
    let mut generator = Generator::new(
        &Shape {
            seed: shape.seed + 100,
            ..shape.clone()
        },
        now,
    );
    store_values(
        store,
        vec![json!({"type": "user", "id": ERASED, "email": "bench@example.com", "full_name": "Bench User"})],
    )
    .await?;
    let mut batch: Vec<Value> = Vec::with_capacity(5_000);
    for i in 0..n {
        let ts = now - span + (span as f64 * (i as f64 + 0.3) / n.max(1) as f64) as i64;
        let mut event = generator.interaction(ts);
        event["user_id"] = json!(ERASED);
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
