//! Background probes behind the `/metrics` gauges that a scrape must not
//! compute itself: readiness (the verdict `/readyz` answers with) every
//! [`READINESS_EVERY`], and the window gauges
//! (document freshness, cold documents, sessions, topic diversity: scans of
//! the documents and folds over days of events) every `--gauge-interval`.
//! Each publishes into `telemetry::rag`; a scrape only reads the latest.

use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::analytics::{Analytics, MetricError};
use crate::server::AppState;
use crate::telemetry::rag::{Diversity, RagSeries, WindowGauges};
use crate::time::Timestamp;

/// How often readiness is probed for the `ragpulse_ready` gauge.
pub const READINESS_EVERY: Duration = Duration::from_secs(10);
/// The window of the cold-document gauge, as the dashboard's panel.
const COLD_DAYS: i64 = 30;
/// The window of the session gauges, as `/advanced`'s default.
const SESSION_DAYS: i64 = 7;

/// Starts the probes; they stop when the server's shutdown token is cancelled.
pub fn start(state: &AppState) -> TaskTracker {
    let tasks = TaskTracker::new();
    let rag = state.telemetry.rag.clone();
    let (store, shutdown) = (state.store.clone(), state.shutdown.clone());
    tasks.spawn(every(READINESS_EVERY, shutdown.clone(), {
        let rag = rag.clone();
        move || {
            let (store, rag) = (store.clone(), rag.clone());
            async move { rag.set_ready(store.readiness().is_ok()) }
        }
    }));
    if state.settings.rag_metrics {
        let analytics = state.analytics.clone();
        tasks.spawn(every(state.settings.gauge_interval, shutdown, move || {
            let (analytics, rag) = (analytics.clone(), rag.clone());
            async move { refresh_windows(&analytics, &rag).await }
        }));
    }
    tasks.close();
    tasks
}

/// Runs `probe` now and then every `interval` until `shutdown`.
async fn every<F, Fut>(interval: Duration, shutdown: CancellationToken, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = probe() => {}
        }
    }
}

/// Recomputes the window gauges; a failure keeps the last ones (their
/// timestamp then ages, which the docs tell operators to watch).
async fn refresh_windows(analytics: &Analytics, rag: &RagSeries) {
    match window_gauges(analytics, Timestamp::now()).await {
        Ok(gauges) => rag.set_windows(gauges),
        Err(error) => tracing::warn!(%error, "the window gauges of /metrics were not refreshed"),
    }
}

async fn window_gauges(analytics: &Analytics, now: Timestamp) -> Result<WindowGauges, MetricError> {
    let freshness = analytics.freshness(now).await?;
    let cold_documents = analytics.cold_documents(COLD_DAYS, now).await?;
    let sessions = analytics.sessions(SESSION_DAYS, None, now).await?;
    let diversity = analytics.diversity(None, None, now).await?;
    // Both lists have their rows in a fixed order, or none at all.
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut gauges = WindowGauges {
        computed_at_us: now.0,
        cold_documents,
        diversity: diversity.map(|d| Diversity {
            score: d.diversity_score,
            topics: count(d.total_topics),
            dominant_share: d.dominant_topic_share,
        }),
        ..WindowGauges::default()
    };
    for (slot, row) in gauges.freshness.iter_mut().zip(&freshness) {
        *slot = count(row.doc_count);
    }
    for (slot, row) in gauges.sessions.iter_mut().zip(&sessions) {
        *slot = count(row.session_count);
    }
    Ok(gauges)
}
