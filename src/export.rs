//! `ragpulse export`: the stored events as NDJSON in the ingest format (see
//! `store::sqlite::export`), to a file or standard output, with a progress
//! bar; `ragpulse import` loads them into another store.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::ExportArgs;
use crate::config::ServerArgs;
use crate::import::{offline_settings, progress_bar};
use crate::store::backend::{ExportFilter, export};

#[allow(clippy::print_stderr)]
pub async fn run(args: ExportArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let data_dir = offline_settings(
        ServerArgs {
            data_dir: args.data_dir.clone(),
            ..ServerArgs::default()
        },
        config,
    )?
    .data_dir;
    let filter = ExportFilter {
        since: args
            .since
            .as_deref()
            .map(|t| time(t, "since"))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| time(t, "until"))
            .transpose()?,
        assistant: args.assistant,
    };
    let bar = progress_bar(
        args.quiet,
        "{bar:40} {percent}% of the interactions ({eta} left)",
    );
    let (dir, out, progress) = (data_dir.clone(), args.out.clone(), bar.clone());
    let counts = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut sink: Box<dyn Write> = match &out {
            Some(path) => Box::new(
                std::fs::File::create(path)
                    .with_context(|| format!("failed to create {}", path.display()))?,
            ),
            None => Box::new(std::io::stdout().lock()),
        };
        let mut sink = std::io::BufWriter::with_capacity(1 << 20, &mut sink);
        let counts = export(&dir, &filter, &mut sink, &mut |done, total| {
            progress.set_length(total);
            progress.set_position(done);
        })?;
        sink.flush().context("failed to write the export")?;
        Ok(counts)
    })
    .await
    .context("the export task failed")?
    .with_context(|| format!("failed to export {}", data_dir.display()))?;
    bar.finish_and_clear();
    // Standard output may be the export itself: the summary goes to stderr.
    eprintln!(
        "exported {} registry entries, {} syncs and {} interactions from {}",
        counts.registry,
        counts.syncs,
        counts.interactions,
        data_dir.display()
    );
    Ok(())
}

/// A `--since`/`--until` value: a date (midnight UTC) or an RFC 3339 time.
fn time(text: &str, flag: &str) -> anyhow::Result<i64> {
    crate::api::pricing::parse_since(text).with_context(|| {
        format!("--{flag} {text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time")
    })
}
