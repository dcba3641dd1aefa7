//! The retention task of `--retention-days`: once at start, then every
//! [`RUN_EVERY`], deletes the raw interactions older than the cutoff (the
//! start of the UTC day N days before today) in small batches on the writer
//! (see `store::sqlite::retention`), pausing between them so that ingest's
//! commits keep their pace. `/metrics` counts the rows deleted and shows
//! when the last run ended.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::interface::{RetentionCursor as Cursor, RetentionPhase as Phase};
use crate::store::{Store, StoreError};
use crate::telemetry::Telemetry;
use crate::time::{MICROS_PER_DAY, Timestamp};

/// Between runs: the cutoff moves by a day at a time.
pub const RUN_EVERY: Duration = Duration::from_secs(3600);
/// Interactions deleted per transaction: a few milliseconds of the writer.
const INTERACTIONS_PER_BATCH: usize = 1_000;
/// Phrasings or topics examined per transaction (most are kept).
const TEXTS_PER_BATCH: usize = 10_000;
/// Between two batches the task waits this many times the writer's time on
/// the last one (at least [`MIN_PAUSE`]): retention takes at most a fifth
/// of the writer, and ingest queued meanwhile is committed in between.
const PAUSE_FACTOR: u32 = 4;
const MIN_PAUSE: Duration = Duration::from_millis(5);
/// Busy write locks in a row before a run gives up until the next one.
const MAX_RETRIES: u32 = 30;

/// Starts the task when retention is on; it ends when `shutdown` is cancelled.
pub fn start(
    store: Arc<dyn Store>,
    telemetry: Arc<Telemetry>,
    days: Option<u32>,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let days = i64::from(days?);
    Some(tokio::spawn(async move {
        loop {
            let cutoff = cutoff(Timestamp::now().0, days);
            match run(store.as_ref(), &telemetry, cutoff, &shutdown).await {
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "retention run failed; it is retried later"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RUN_EVERY) => {}
            }
        }
    }))
}

/// The first instant kept: the start of the UTC day `days` before today.
pub fn cutoff(now: i64, days: i64) -> i64 {
    (now.div_euclid(MICROS_PER_DAY) - days).saturating_mul(MICROS_PER_DAY)
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunReport {
    /// Interactions, phrasings and topics deleted.
    pub deleted: [u64; 3],
    /// The writer's time on the run's batches (not the pauses between them).
    pub writer_time: Duration,
}

/// One run: every batch until nothing older than `cutoff` is left.
pub async fn run(
    store: &dyn Store,
    telemetry: &Telemetry,
    cutoff: i64,
    shutdown: &CancellationToken,
) -> Result<RunReport, StoreError> {
    let mut cursor = Cursor::default();
    let mut deleted = [0u64; 3];
    let mut writer_time = Duration::ZERO;
    let mut retries = 0;
    while cursor.phase != Phase::Done {
        if shutdown.is_cancelled() {
            return Ok(RunReport {
                deleted,
                writer_time,
            });
        }
        let limit = match cursor.phase {
            Phase::Interactions => INTERACTIONS_PER_BATCH,
            _ => TEXTS_PER_BATCH,
        };
        let batch = match store.retain_batch(cutoff, limit, cursor).await {
            Ok(batch) => batch,
            // The write lock was busy (a probe, a checkpoint): the batch is
            // tried again after a pause; nothing of it was written.
            Err(error) if error.is_unavailable() && retries < MAX_RETRIES => {
                retries += 1;
                tracing::debug!(%error, "retention batch postponed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        retries = 0;
        for (i, (table, rows)) in [
            ("interactions", batch.interactions),
            ("phrasings", batch.phrasings),
            ("topics", batch.topics),
        ]
        .into_iter()
        .enumerate()
        {
            if rows > 0 {
                telemetry.count_retained(table, rows);
                deleted[i] += rows;
            }
        }
        cursor = batch.next;
        writer_time += batch.work;
        tokio::time::sleep((batch.work * PAUSE_FACTOR).max(MIN_PAUSE)).await;
    }
    telemetry
        .retention_last_run
        .set(Timestamp::now().0.div_euclid(1_000_000));
    tracing::info!(
        cutoff = %Timestamp(cutoff),
        interactions = deleted[0],
        phrasings = deleted[1],
        topics = deleted[2],
        "retention run done"
    );
    Ok(RunReport {
        deleted,
        writer_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_start_of_the_day_n_days_ago() {
        let day = MICROS_PER_DAY;
        assert_eq!(cutoff(10 * day + 5, 3), 7 * day);
        assert_eq!(cutoff(10 * day, 3), 7 * day);
        assert_eq!(cutoff(10 * day - 1, 3), 6 * day);
    }
}
