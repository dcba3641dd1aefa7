//! `ragpulse bench backup`: on a store shaped like real traffic (the demo's
//! generator), the export rate (events written per second to a file), and
//! in alternating rounds of equal length the ingest rate of concurrent
//! clients alone and while online backups of the store run back to back,
//! with the backups' time.

use std::io::Write;
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
    let shape = Shape::bench(7);
    println!(
        "storing {} interactions over {} days...",
        args.interactions, args.days
    );
    let store = Arc::new(open(&dir, None)?);
    fill(&store, &shape, args.interactions, args.days).await?;

    let out = root.path().join("export.ndjson");
    let (export_dir, export_out) = (dir.clone(), out.clone());
    let (counts, took, cpu) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let (started, cpu_before) = (Instant::now(), thread_cpu_seconds());
        let mut file =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&export_out)?);
        let counts = export::export(&export_dir, &Default::default(), &mut file, &mut |_, _| {})?;
        file.flush()?;
        Ok((counts, started.elapsed(), thread_cpu_seconds() - cpu_before))
    })
    .await??;
    let lines = counts.registry + counts.syncs + counts.interactions;
    println!(
        "export: {} events ({} interactions, {} MiB) in {:.2} s: {:.0} events/s; {:.2} s of CPU: {:.0} events per CPU-second",
        lines,
        counts.interactions,
        std::fs::metadata(&out)?.len() >> 20,
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64(),
        cpu,
        lines as f64 / cpu
    );
    std::fs::remove_file(&out)?;

    let mut ratios = Vec::new();
    let seconds = Duration::from_secs(args.seconds);
    for round in 0..args.rounds.max(1) {
        let started = Instant::now();
        let alone = load(&store, &shape, args.clients, args.batch, seconds, async {}).await?;
        let alone_rate = (alone.len() * args.batch) as f64 / started.elapsed().as_secs_f64();
        // Backups back to back for as long as ingest ran alone.
        let (source, target) = (dir.clone(), root.path().join("backup.db"));
        let copies = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(u64, f64)>> {
            let started = Instant::now();
            let mut copies = Vec::new();
            while copies.is_empty() || started.elapsed() < seconds {
                let report = backup::backup(&source, &target, true, &mut |_, _| {})?;
                copies.push((report.bytes, report.duration.as_secs_f64()));
            }
            std::fs::remove_file(&target)?;
            Ok(copies)
        });
        let started = Instant::now();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let watcher = tokio::spawn(async move {
            let copies = copies.await;
            let _ = done_tx.send(());
            copies
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
        let copies = watcher.await???;
        let times: Vec<f64> = copies.iter().map(|c| c.1).collect();
        let ratio = during_rate / alone_rate;
        println!(
            "round {}: ingest alone {:.0} interactions/s; during {} back-to-back backups of {} MiB (median {:.2} s each) {:.0} interactions/s; ratio {:.2}",
            round + 1,
            alone_rate,
            copies.len(),
            copies.last().map_or(0, |c| c.0 >> 20),
            pct(&times, 0.5),
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
        "reproduce: cargo run --release -- bench backup --interactions {} --days {} --clients {} --batch {} --seconds {} --rounds {}",
        args.interactions, args.days, args.clients, args.batch, args.seconds, args.rounds
    );
    Ok(())
}

/// CPU time of the calling thread, seconds: what a busy machine disturbs far
/// less than the wall clock.
fn thread_cpu_seconds() -> f64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec this function owns.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}
