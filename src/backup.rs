//! `ragpulse backup` and `ragpulse restore`: the command-line side of the
//! store's online copies (see `store::sqlite::backup`), with a progress bar.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{BackupArgs, RestoreArgs};
use crate::config::ServerArgs;
use crate::import::{offline_settings, progress_bar};
use crate::store::backend as backup;

/// The data directory an offline command works on: its flag, else the
/// config file's, else the default.
fn data_dir(flag: Option<PathBuf>, config: Option<&Path>) -> anyhow::Result<PathBuf> {
    Ok(offline_settings(
        ServerArgs {
            data_dir: flag,
            ..ServerArgs::default()
        },
        config,
    )?
    .data_dir)
}

#[allow(clippy::print_stdout)]
pub async fn backup(args: BackupArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let data_dir = data_dir(args.data_dir, config)?;
    let bar = progress_bar(args.quiet, "{bar:40} {percent}% of the pages ({eta} left)");
    let (dir, to, progress) = (data_dir.clone(), args.to.clone(), bar.clone());
    let report = tokio::task::spawn_blocking(move || {
        backup::backup(&dir, &to, args.force, &mut |done, total| {
            progress.set_length(total);
            progress.set_position(done);
        })
    })
    .await
    .context("the backup task failed")?
    .with_context(|| format!("failed to back up {}", data_dir.display()))?;
    bar.finish_and_clear();
    println!(
        "backed up {} to {}: {} bytes in {:.1} s",
        data_dir.display(),
        args.to.display(),
        report.bytes,
        report.duration.as_secs_f64()
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
pub async fn restore(args: RestoreArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let data_dir = data_dir(args.data_dir, config)?;
    let bar = progress_bar(
        args.quiet,
        "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    );
    let (dir, from, progress) = (data_dir.clone(), args.from.clone(), bar.clone());
    let report = tokio::task::spawn_blocking(move || {
        backup::restore(&from, &dir, args.force, &mut |done, total| {
            progress.set_length(total);
            progress.set_position(done);
        })
    })
    .await
    .context("the restore task failed")?
    .with_context(|| {
        format!(
            "failed to restore {} into {}",
            args.from.display(),
            data_dir.display()
        )
    })?;
    bar.finish_and_clear();
    println!(
        "restored {} into {}: {} bytes in {:.1} s",
        args.from.display(),
        data_dir.display(),
        report.bytes,
        report.duration.as_secs_f64()
    );
    Ok(())
}
