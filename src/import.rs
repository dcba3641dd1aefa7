//! `ragpulse import FILE`: loads an NDJSON file of events into a data
//! directory through the same validation and writer as the HTTP API.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ImportArgs;
use crate::config::{ServerArgs, Settings};
use crate::ingest::check_line;
use crate::ingest::event::Event;
use crate::ingest::validate::EventLimits;
use crate::pricing::Catalogue;
use crate::store::backend::{self, StoreOptions};
use crate::store::{Batch, Store};
use crate::telemetry::Telemetry;
use crate::time::Timestamp;

/// Rejections printed in full; the rest are only counted.
const SHOWN_REJECTIONS: usize = 20;

#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
}

#[allow(clippy::print_stdout)]
pub async fn run(args: ImportArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let settings = offline_settings(
        ServerArgs {
            data_dir: args.data_dir.clone(),
            pricing_file: args.pricing_file.clone(),
            max_event_age_days: args.max_event_age_days,
            ..ServerArgs::default()
        },
        config,
    )?;
    let store = open_store(&settings)?;
    let (reader, size): (Box<dyn Read + Send>, u64) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), 0)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("failed to open {}", args.file.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(file), size)
    };
    let bar = progress(size, args.quiet);
    let limits = settings.event_limits.clone();
    let summary = import(reader, store.as_ref(), args.batch.max(1), &limits, &bar).await;
    bar.finish_and_clear();
    store.close().await;
    let summary = summary?;
    println!(
        "imported {}: {} accepted, {} duplicates, {} rejected",
        args.file.display(),
        summary.accepted,
        summary.duplicates,
        summary.rejected
    );
    Ok(())
}

fn progress(size: u64, quiet: bool) -> ProgressBar {
    if size == 0 {
        return ProgressBar::hidden();
    }
    let bar = progress_bar(
        quiet,
        "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    );
    bar.set_length(size);
    bar
}

/// The progress bar of an offline command (on standard error, hidden when
/// `quiet` or when standard error is not a terminal), in `template`'s style.
pub(crate) fn progress_bar(quiet: bool, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// `ragpulse reprice`: opens the data directory with the given catalogue and
/// reprices through the writer, printing what moved.
#[allow(clippy::print_stdout)]
pub async fn reprice(args: crate::cli::RepriceArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let since = crate::api::pricing::parse_since(&args.since).with_context(|| {
        format!(
            "--since {:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time",
            args.since
        )
    })?;
    let settings = offline_settings(
        ServerArgs {
            data_dir: args.data_dir.clone(),
            pricing_file: args.pricing_file.clone(),
            ..ServerArgs::default()
        },
        config,
    )?;
    let store = open_store(&settings)?;
    let report = store
        .reprice(crate::store::interface::RepriceRequest {
            since,
            model: args.model.clone(),
        })
        .await;
    store.close().await;
    let report = report?;
    println!(
        "repriced {} of {} interactions ({} newly priced, {} newly unpriced): ${:.6} -> ${:.6} ({:+.6})",
        report.interactions_changed,
        report.interactions_examined,
        report.newly_priced,
        report.newly_unpriced,
        report.cost_before_usd,
        report.cost_after_usd,
        report.delta_usd
    );
    Ok(())
}

/// `ragpulse rebuild-rollups`: recomputes every rollup from the raw events,
/// with a progress bar over the interactions.
#[allow(clippy::print_stdout)]
pub async fn rebuild_rollups(
    args: crate::cli::RebuildRollupsArgs,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    let data_dir = offline_settings(
        ServerArgs {
            data_dir: args.data_dir,
            ..ServerArgs::default()
        },
        config,
    )?
    .data_dir;
    let bar = progress_bar(
        args.quiet,
        "{bar:40} {pos}/{len} interactions ({per_sec}, {eta} left)",
    );
    let started = std::time::Instant::now();
    let dir = data_dir.clone();
    let progress_bar = bar.clone();
    let total = tokio::task::spawn_blocking(move || {
        let mut total = 0;
        backend::rebuild_rollups(&dir, &mut |done, all| {
            progress_bar.set_length(all);
            progress_bar.set_position(done);
            total = all;
        })
        .map(|()| total)
    })
    .await
    .context("the rebuild task failed")?
    .with_context(|| format!("failed to rebuild the rollups of {}", data_dir.display()))?;
    bar.finish_and_clear();
    println!(
        "rebuilt the rollups of {} interactions in {:.1} s",
        total,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `ragpulse erase-user`: erases a user's data from a stopped server's
/// data directory (see `store::sqlite::erase`) and prints what went, as
/// JSON, the same answer as `DELETE /api/v1/users/{user_id}`.
#[allow(clippy::print_stdout)]
pub async fn erase_user(
    args: crate::cli::EraseUserArgs,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    let data_dir = offline_settings(
        ServerArgs {
            data_dir: args.data_dir,
            ..ServerArgs::default()
        },
        config,
    )?
    .data_dir;
    let user = crate::ingest::event::UserId::parse(&args.user_id)
        .map_err(|message| anyhow::anyhow!("the user id {message}"))?;
    let dir = data_dir.clone();
    let report =
        tokio::task::spawn_blocking(move || backend::erase_user_offline(&dir, user.as_str()))
            .await
            .context("the erasure task failed")?
            .with_context(|| format!("failed to erase the user in {}", data_dir.display()))?;
    match report {
        Some(report) => {
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        None => anyhow::bail!("no such user in {}", data_dir.display()),
    }
}

/// The settings of an offline command: its flags (and their environment
/// variables) over the config file the server reads (`--config`, else
/// `./ragpulse.toml`) over the defaults, so that `import`, `reprice`,
/// `rebuild-rollups`, `backup`, `restore` and `export` work on the server's data directory with its prices,
/// timestamp horizon and topic threshold.
pub(crate) fn offline_settings(
    flags: ServerArgs,
    config: Option<&Path>,
) -> anyhow::Result<Settings> {
    Ok(Settings::load(flags, config)?)
}

/// The store of a data directory, for the offline commands.
fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let catalogue = Arc::new(Catalogue::load(settings.pricing_file.as_deref())?);
    backend::open(
        &settings.data_dir,
        catalogue,
        Arc::new(Telemetry::new()),
        StoreOptions {
            max_queued_events: usize::MAX >> 1,
            topic_threshold: settings.topic_threshold,
            rollups: true,
            rag_series: true,
            merge_cache_bytes: backend::DEFAULT_MERGE_CACHE_BYTES,
        },
    )
    .with_context(|| {
        format!(
            "failed to open data directory {}",
            settings.data_dir.display()
        )
    })
}

/// Reads lines, validates and stores them in batches; line numbers are 1-based
/// in messages (as editors show them). A line is read as bytes and decoded
/// as the ingest API decodes an NDJSON line, so a line that is not UTF-8 is
/// one rejection, not the end of the import.
pub async fn import(
    reader: impl Read,
    store: &dyn Store,
    batch_size: usize,
    limits: &EventLimits,
    bar: &ProgressBar,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut batch: Vec<(usize, Event)> = Vec::with_capacity(batch_size);
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    for number in 0.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("failed to read line {}", number + 1))?;
        if read == 0 {
            break;
        }
        bar.inc(read as u64);
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        match check_line(text, limits, Timestamp::now().micros()) {
            None => {}
            Some(Ok(event)) => batch.push((number, event)),
            Some(Err(error)) => reject(&mut summary, number, &error),
        }
        if batch.len() >= batch_size {
            flush(store, &mut batch, &mut summary).await?;
        }
    }
    flush(store, &mut batch, &mut summary).await?;
    Ok(summary)
}

async fn flush(
    store: &dyn Store,
    batch: &mut Vec<(usize, Event)>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let events = std::mem::take(batch);
    let outcome = store.append(Batch { events }).await?;
    summary.accepted += outcome.accepted;
    summary.duplicates += outcome.duplicates;
    for (line, error) in outcome.rejected {
        reject(summary, line, &error);
    }
    Ok(())
}

fn reject(summary: &mut Summary, line: usize, error: &str) {
    summary.rejected += 1;
    if summary.rejected <= SHOWN_REJECTIONS {
        tracing::warn!(line = line + 1, error, "rejected");
    } else if summary.rejected == SHOWN_REJECTIONS + 1 {
        tracing::warn!("more rejections follow; only their count is reported");
    }
}
