//! The analytics service: computes each metric for a window by folding the
//! store's events into the metric's state, each with its own timeout and
//! failure isolation, and assembles `/advanced` from all twelve at once.

pub mod assistants;
pub mod queries;
pub mod timeseries;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::metrics::models::*;
pub use crate::metrics::utilization::Status as UtilizationStatus;
use crate::store::{Lane, ReadOptions, ReadPath, Snapshot, Store, StoreError};
use crate::telemetry::{MetricLabel, Telemetry};
use crate::time::Timestamp;
use queries::{Query, Read};

/// `/advanced`'s query, after bounds checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AdvancedParams {
    pub assistant: Option<Uuid>,
    pub ttft_hours: i64,
    pub step_days: i64,
    pub cache_hours: i64,
    pub cost_hours: i64,
    pub trending_limit: i64,
}

impl Default for AdvancedParams {
    /// The original's defaults, also the live feed's.
    fn default() -> Self {
        Self {
            assistant: None,
            ttft_hours: 24,
            step_days: 7,
            cache_hours: 24,
            cost_hours: 24,
            trending_limit: 10,
        }
    }
}

/// Windows of `/advanced` that the contract fixes rather than the query.
const UTILIZATION_DAYS: i64 = 30;
const UTILIZATION_LIMIT: i64 = 50;
const USERS_DAYS: i64 = 30;
const USERS_LIMIT: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Identical `/advanced` requests in the same second with the same data share
/// one computation.
type SharedKey = (AdvancedParams, u64, i64);

pub struct Analytics {
    store: Arc<dyn Store>,
    telemetry: Arc<Telemetry>,
    timeout: Duration,
    path: ReadPath,
    lane: Lane,
    shared: Mutex<HashMap<SharedKey, Arc<OnceCell<AdvancedAnalyticsResponse>>>>,
}

impl Analytics {
    pub fn new(
        store: Arc<dyn Store>,
        telemetry: Arc<Telemetry>,
        timeout: Duration,
        path: ReadPath,
    ) -> Self {
        Self {
            store,
            telemetry,
            timeout,
            path,
            lane: Lane::Dashboard,
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// The same analytics, read on the threads of `lane` (the live feed's own,
    /// see [`Lane::Live`]), sharing the merge cache but not the one-second
    /// shared answers.
    pub fn on_lane(&self, lane: Lane) -> Self {
        Self {
            store: self.store.clone(),
            telemetry: self.telemetry.clone(),
            timeout: self.timeout,
            path: self.path,
            lane,
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one metric on a reader, under the metric timeout, in one view of
    /// the store: its rollups and raw rows come from the same snapshot. The
    /// deadline also stops the store's queries, so a timed-out read stops working.
    async fn run<T: Send + 'static>(&self, q: Query<impl Read<T>>) -> Result<T, MetricError> {
        self.run_named(q.name, q.read).await
    }

    /// As [`run`](Self::run), for a read that is not one of `/advanced`'s metrics.
    async fn run_named<T: Send + 'static>(
        &self,
        name: &'static str,
        read: impl Read<T>,
    ) -> Result<T, MetricError> {
        let q = Query { name, read };
        let started = Instant::now();
        let options = ReadOptions {
            path: self.path,
            deadline: Some(started + self.timeout),
        };
        let work = self.store.read_with(self.lane, options, q.read);
        let result = match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result.map_err(|e| MetricError::of(q.name, e)),
            Err(_) => Err(MetricError::Timeout(q.name)),
        };
        record(&self.telemetry, q.name, started, &result);
        result
    }

    pub async fn ttft(
        &self,
        hours: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Option<TtftPercentiles>, MetricError> {
        self.run(queries::ttft(hours, assistant, now)).await
    }

    pub async fn steps(
        &self,
        days: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<StepBreakdown>, MetricError> {
        self.run(queries::steps(days, assistant, now)).await
    }

    pub async fn cache(
        &self,
        hours: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Option<CacheMetrics>, MetricError> {
        self.run(queries::cache(hours, assistant, now)).await
    }

    pub async fn sessions(
        &self,
        days: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<SessionDistribution>, MetricError> {
        self.run(queries::sessions(days, assistant, now)).await
    }

    pub async fn trending(
        &self,
        assistant: Option<Uuid>,
        limit: i64,
        days: Option<i64>,
        now: Timestamp,
    ) -> Result<Vec<TrendingTopic>, MetricError> {
        self.trending_with_phrasings(assistant, limit, days, now, None)
            .await
    }

    /// Trending topics, each with its `recent` latest phrasings when asked.
    pub async fn trending_with_phrasings(
        &self,
        assistant: Option<Uuid>,
        limit: i64,
        days: Option<i64>,
        now: Timestamp,
        recent: Option<usize>,
    ) -> Result<Vec<TrendingTopic>, MetricError> {
        self.run(queries::trending(assistant, limit, days, now, recent))
            .await
    }

    pub async fn diversity(
        &self,
        days: Option<i64>,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Option<TopicDiversity>, MetricError> {
        self.run(queries::diversity(days, assistant, now)).await
    }

    pub async fn costs(
        &self,
        hours: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<AssistantCost>, MetricError> {
        self.run(queries::costs(hours, assistant, now)).await
    }

    pub async fn utilization(
        &self,
        days: i64,
        status: Option<UtilizationStatus>,
        limit: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<DocumentUtilization>, MetricError> {
        self.run(queries::utilization(days, status, limit, assistant, now))
            .await
    }

    /// How many current documents no interaction retrieved in the last `days`.
    pub async fn cold_documents(&self, days: i64, now: Timestamp) -> Result<u64, MetricError> {
        self.run(queries::cold_documents(days, now)).await
    }

    pub async fn users(
        &self,
        days: i64,
        limit: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<UserStat>, MetricError> {
        self.run(queries::users(days, limit, assistant, now)).await
    }

    pub async fn reranking(
        &self,
        hours: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Option<RerankingImpact>, MetricError> {
        self.run(queries::reranking(hours, assistant, now)).await
    }

    pub async fn sync(
        &self,
        days: i64,
        now: Timestamp,
    ) -> Result<Vec<ConnectorSyncRate>, MetricError> {
        self.run(queries::sync(days, now)).await
    }

    pub async fn freshness(&self, now: Timestamp) -> Result<Vec<DocumentFreshness>, MetricError> {
        self.run(queries::freshness(now)).await
    }

    /// All twelve metrics, concurrently; identical requests within the same
    /// second and data version share one computation.
    pub async fn advanced(&self, p: AdvancedParams, now: Timestamp) -> AdvancedAnalyticsResponse {
        let key = (p, self.store.data_version(), now.0 / 1_000_000);
        let cell = self.shared_cell(key);
        cell.get_or_init(|| self.compute_advanced(p, now))
            .await
            .clone()
    }

    fn shared_cell(&self, key: SharedKey) -> Arc<OnceCell<AdvancedAnalyticsResponse>> {
        let Ok(mut shared) = self.shared.lock() else {
            return Arc::new(OnceCell::new());
        };
        // Entries of past seconds can never be hit again.
        shared.retain(|k, _| k.2 >= key.2);
        shared.entry(key).or_default().clone()
    }

    async fn compute_advanced(
        &self,
        p: AdvancedParams,
        now: Timestamp,
    ) -> AdvancedAnalyticsResponse {
        let a = p.assistant;
        // One join: the reader pool queues what it cannot start at once, so the
        // slowest metrics start first and the rest fill the gaps.
        let (
            utilization,
            users,
            freshness,
            ttft,
            steps,
            cache,
            sessions,
            trending,
            diversity,
            costs,
            reranking,
            sync,
        ) = tokio::join!(
            self.utilization(UTILIZATION_DAYS, None, UTILIZATION_LIMIT, a, now),
            self.users(USERS_DAYS, USERS_LIMIT, a, now),
            self.freshness(now),
            self.ttft(p.ttft_hours, a, now),
            self.steps(p.step_days, a, now),
            self.cache(p.cache_hours, a, now),
            self.sessions(p.step_days, a, now),
            self.trending(a, p.trending_limit, None, now),
            self.diversity(None, a, now),
            self.costs(p.cost_hours, a, now),
            self.reranking(p.cache_hours, a, now),
            self.sync(p.step_days, now),
        );
        Parts {
            ttft,
            steps,
            cache,
            sessions,
            trending,
            diversity,
            costs,
            utilization,
            users,
            freshness,
            reranking,
            sync,
        }
        .assemble(now)
    }

    /// `/advanced` as one consistent snapshot, for the live feed: the twelve
    /// metrics run one after the other in a single view of the store, and
    /// `generated_at` is taken once that view's snapshot exists. Every
    /// event the snapshot holds was then committed before `generated_at`, so
    /// events arriving in real time never lie beyond the window's end inside
    /// the current hour, and that hour is read from its rollups
    /// (`rollup::hour_holds_only`) instead of from every event since it began.
    /// An error before any metric ran (no reader) is returned: the caller
    /// keeps its last snapshot.
    pub async fn snapshot(
        &self,
        p: AdvancedParams,
    ) -> Result<AdvancedAnalyticsResponse, MetricError> {
        let telemetry = self.telemetry.clone();
        // One deadline for the whole snapshot, from the moment it is asked
        // for: twelve metrics in sequence under a deadline each could take
        // twelve times the metric timeout.
        let deadline = Instant::now() + self.timeout;
        let options = ReadOptions {
            path: self.path,
            deadline: Some(deadline),
        };
        let work = self.store.read_with(self.lane, options, move |view| {
            view.pin()?;
            let now = Timestamp::now();
            let one = Sequential {
                view,
                deadline,
                telemetry: &telemetry,
            };
            let a = p.assistant;
            let parts = Parts {
                ttft: one.run(queries::ttft(p.ttft_hours, a, now)),
                steps: one.run(queries::steps(p.step_days, a, now)),
                cache: one.run(queries::cache(p.cache_hours, a, now)),
                sessions: one.run(queries::sessions(p.step_days, a, now)),
                trending: one.run(queries::trending(a, p.trending_limit, None, now, None)),
                diversity: one.run(queries::diversity(None, a, now)),
                costs: one.run(queries::costs(p.cost_hours, a, now)),
                utilization: one.run(queries::utilization(
                    UTILIZATION_DAYS,
                    None,
                    UTILIZATION_LIMIT,
                    a,
                    now,
                )),
                users: one.run(queries::users(USERS_DAYS, USERS_LIMIT, a, now)),
                freshness: one.run(queries::freshness(now)),
                reranking: one.run(queries::reranking(p.cache_hours, a, now)),
                sync: one.run(queries::sync(p.step_days, now)),
            };
            Ok(parts.assemble(now))
        });
        work.await.map_err(|e| MetricError::of("snapshot", e))
    }
}

impl MetricError {
    /// A read the store stopped at its deadline is the metric's timeout.
    fn of(metric: &'static str, error: StoreError) -> Self {
        if error.is_interrupted() {
            MetricError::Timeout(metric)
        } else {
            MetricError::Store(error)
        }
    }
}

/// Counts a metric's time and failure in `/metrics` and logs the failure.
fn record<T>(
    telemetry: &Telemetry,
    metric: &'static str,
    started: Instant,
    result: &Result<T, MetricError>,
) {
    let label = MetricLabel {
        metric: metric.to_string(),
    };
    telemetry
        .metric_seconds
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    if let Err(error) = result {
        telemetry.metric_failures.get_or_create(&label).inc();
        tracing::error!(metric, %error, "metric failed");
    }
}

/// Runs metric queries one after the other inside one view of the store,
/// all under one deadline (the store stops the view's queries when it
/// passes): a metric that starts after it has passed is reported timed out
/// without running.
struct Sequential<'a> {
    view: &'a dyn Snapshot,
    deadline: Instant,
    telemetry: &'a Telemetry,
}

impl Sequential<'_> {
    fn run<T>(&self, q: Query<impl Read<T>>) -> Result<T, MetricError> {
        let started = Instant::now();
        let result = if started >= self.deadline {
            Err(MetricError::Timeout(q.name))
        } else {
            (q.read)(self.view).map_err(|e| MetricError::of(q.name, e))
        };
        record(self.telemetry, q.name, started, &result);
        result
    }
}

/// The twelve results of one `/advanced`.
struct Parts {
    ttft: Result<Option<TtftPercentiles>, MetricError>,
    steps: Result<Vec<StepBreakdown>, MetricError>,
    cache: Result<Option<CacheMetrics>, MetricError>,
    sessions: Result<Vec<SessionDistribution>, MetricError>,
    trending: Result<Vec<TrendingTopic>, MetricError>,
    diversity: Result<Option<TopicDiversity>, MetricError>,
    costs: Result<Vec<AssistantCost>, MetricError>,
    utilization: Result<Vec<DocumentUtilization>, MetricError>,
    users: Result<Vec<UserStat>, MetricError>,
    freshness: Result<Vec<DocumentFreshness>, MetricError>,
    reranking: Result<Option<RerankingImpact>, MetricError>,
    sync: Result<Vec<ConnectorSyncRate>, MetricError>,
}

impl Parts {
    /// The response: a failed metric gets its empty value and is named in `degraded`.
    fn assemble(self, now: Timestamp) -> AdvancedAnalyticsResponse {
        let mut degraded = Vec::new();
        let mut take = |key: &str, failed: bool| {
            if failed {
                degraded.push(key.to_string());
            }
        };
        take("ttft_percentiles", self.ttft.is_err());
        take("step_breakdown", self.steps.is_err());
        take("cache_metrics", self.cache.is_err());
        take("session_distribution", self.sessions.is_err());
        take("trending_topics", self.trending.is_err());
        take("topic_diversity", self.diversity.is_err());
        take("assistant_costs", self.costs.is_err());
        take("document_utilization", self.utilization.is_err());
        take("user_stats", self.users.is_err());
        take("document_freshness", self.freshness.is_err());
        take("reranking_impact", self.reranking.is_err());
        take("connector_sync_rates", self.sync.is_err());
        AdvancedAnalyticsResponse {
            ttft_percentiles: self.ttft.unwrap_or_default(),
            step_breakdown: self.steps.unwrap_or_default(),
            cache_metrics: self.cache.unwrap_or_default(),
            session_distribution: self.sessions.unwrap_or_default(),
            trending_topics: self.trending.unwrap_or_default(),
            topic_diversity: self.diversity.unwrap_or_default(),
            assistant_costs: self.costs.unwrap_or_default(),
            document_utilization: self.utilization.unwrap_or_default(),
            user_stats: self.users.unwrap_or_default(),
            document_freshness: self.freshness.unwrap_or_default(),
            reranking_impact: self.reranking.unwrap_or_default(),
            connector_sync_rates: self.sync.unwrap_or_default(),
            generated_at: now,
            degraded: (!degraded.is_empty()).then_some(degraded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BackendError, FailureKind};

    fn failure(kind: FailureKind) -> StoreError {
        StoreError::Backend(BackendError::new(kind, std::io::Error::other("stopped")))
    }

    #[test]
    fn a_read_stopped_at_its_deadline_is_the_metrics_timeout() {
        assert!(matches!(
            MetricError::of("ttft_percentiles", failure(FailureKind::Interrupted)),
            MetricError::Timeout("ttft_percentiles")
        ));
        assert!(matches!(
            MetricError::of("ttft_percentiles", failure(FailureKind::Unavailable)),
            MetricError::Store(_)
        ));
    }
}
