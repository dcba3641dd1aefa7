//! `ragpulse bench backup`: on a store shaped like real traffic (the demo's
//! generator), the export rate (events written per second to a file), and
//! in alternating rounds the ingest rate of concurrent clients alone and
//! while an online backup of the store runs, with the backup's time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bounds::{fill, load, open};
use super::pct;
use crate::cli::BackupBenchArgs;
use crate::demo::generate::Shape;
use crate::store::sqlite::{backup, export};

#[allow(clippy::print_stdout)]
pub async fn run(args: BackupBenchArgs) -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let dir = root.path().join("data");
    let shape = Shape {
        assistants: 10,
        users: 5_000,
        documents: 20_000,
        seed: 7,
    };
    println!(
        "storing {} interactions over {} days...",
        args.interactions, args.days
    );
    let store = Arc::new(open(&dir, None)?);
    fill(&store, &shape, args.interactions, args.days).await?;

    let out = root.path().join("export.ndjson");
    let (export_dir, export_out) = (dir.clone(), out.clone());
    let (counts, took) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let started = Instant::now();
        let mut file =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&export_out)?);
        let counts = export::export(&export_dir, &Default::default(), &mut file, &mut |_, _| {})?;
        Ok((counts, started.elapsed()))
    })
    .await??;
    let lines = counts.registry + counts.syncs + counts.interactions;
    println!(
        "export: {} events ({} interactions, {} MiB) in {:.2} s: {:.0} events/s",
        lines,
        counts.interactions,
        std::fs::metadata(&out)?.len() >> 20,
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64()
    );
    std::fs::remove_file(&out)?;

    let mut ratios = Vec::new();
    for round in 0..args.rounds.max(1) {
        let started = Instant::now();
        let alone = load(
            &store,
            &shape,
            args.clients,
            args.batch,
            Duration::from_secs(10),
            async {},
        )
        .await?;
        let alone_rate = (alone.len() * args.batch) as f64 / started.elapsed().as_secs_f64();
        let file = root.path().join(format!("backup-{round}.db"));
        let (source, target) = (dir.clone(), file.clone());
        let copy = tokio::task::spawn_blocking(move || {
            backup::backup(&source, &target, true, &mut |_, _| {})
        });
        let started = Instant::now();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let watcher = tokio::spawn(async move {
            let report = copy.await;
            let _ = done_tx.send(());
            report
        });
        let during = load(
            &store,
            &shape,
            args.clients,
            args.batch,
            Duration::ZERO,
            async {
                let _ = done_rx.await;
            },
        )
        .await?;
        let during_rate = (during.len() * args.batch) as f64 / started.elapsed().as_secs_f64();
        let report = watcher.await??;
        let report = report?;
        std::fs::remove_file(&file)?;
        let ratio = during_rate / alone_rate;
        println!(
            "round {}: ingest alone {:.0} interactions/s; during a backup of {} MiB ({:.2} s) {:.0} interactions/s; ratio {:.2}",
            round + 1,
            alone_rate,
            report.bytes >> 20,
            report.duration.as_secs_f64(),
            during_rate,
            ratio
        );
        ratios.push(ratio);
    }
    store.close().await;
    println!(
        "median ingest rate during / without a backup over {} rounds: {:.2}",
        ratios.len(),
        pct(&ratios, 0.5)
    );
    println!(
        "reproduce: cargo run --release -- bench backup --interactions {} --days {} --clients {} --batch {} --rounds {}",
        args.interactions, args.days, args.clients, args.batch, args.rounds
    );
    Ok(())
}
