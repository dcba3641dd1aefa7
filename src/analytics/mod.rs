//! The analytics service: computes each metric for a window by folding the
//! store's events into the metric's state, each with its own timeout and
//! failure isolation, and assembles `/advanced` from all twelve at once.

pub mod assistants;
pub mod metrics;
pub mod models;
pub mod timeseries;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::store::sqlite::{SqliteStore, read};
use crate::store::{ReadPath, StoreError, Window};
use crate::telemetry::{MetricLabel, Telemetry};
use crate::time::{MICROS_PER_DAY, MICROS_PER_HOUR, Timestamp};
pub use metrics::utilization::Status as UtilizationStatus;
use models::*;

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
    store: Arc<SqliteStore>,
    telemetry: Arc<Telemetry>,
    timeout: Duration,
    ctx: read::ReadCtx,
    shared: Mutex<HashMap<SharedKey, Arc<OnceCell<AdvancedAnalyticsResponse>>>>,
}

impl Analytics {
    pub fn new(
        store: Arc<SqliteStore>,
        telemetry: Arc<Telemetry>,
        timeout: Duration,
        path: ReadPath,
    ) -> Self {
        let ctx = read::ReadCtx {
            path,
            cache: store.merge_cache(),
        };
        Self {
            store,
            telemetry,
            timeout,
            ctx,
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one metric on a read connection, under the metric timeout, in one
    /// read transaction: its rollups and raw rows come from the same snapshot.
    /// The deadline also interrupts the SQL, so a timed-out query stops working.
    async fn run<T, F>(&self, metric: &'static str, f: F) -> Result<T, MetricError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &read::ReadCtx) -> Result<T, StoreError> + Send + 'static,
    {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let ctx = self.ctx.clone();
        let work = self.store.read(move |conn| {
            conn.progress_handler(10_000, Some(move || Instant::now() > deadline));
            let result = conn
                .unchecked_transaction()
                .map_err(StoreError::from)
                .and_then(|tx| f(&tx, &ctx));
            conn.progress_handler(0, None::<fn() -> bool>);
            result
        });
        let result = match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))))
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                Err(MetricError::Timeout(metric))
            }
            Ok(Err(e)) => Err(MetricError::Store(e)),
            Err(_) => Err(MetricError::Timeout(metric)),
        };
        let label = MetricLabel {
            metric: metric.to_string(),
        };
        self.telemetry
            .metric_seconds
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            self.telemetry.metric_failures.get_or_create(&label).inc();
            tracing::error!(metric, %error, "metric failed");
        }
        result
    }

    pub async fn ttft(
        &self,
        hours: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Option<TtftPercentiles>, MetricError> {
        let w = Window::last(now.0, hours * MICROS_PER_HOUR, assistant);
        self.run("ttft_percentiles", move |c, p| read::ttft(c, &w, p, hours))
            .await
    }

    pub async fn steps(
        &self,
        days: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<StepBreakdown>, MetricError> {
        let w = Window::last(now.0, days * MICROS_PER_DAY, assistant);
        self.run("step_breakdown", move |c, p| read::steps(c, &w, p))
            .await
    }

    pub async fn cache(
        &self,
        hours: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Option<CacheMetrics>, MetricError> {
        let w = Window::last(now.0, hours * MICROS_PER_HOUR, assistant);
        self.run("cache_metrics", move |c, p| read::cache(c, &w, p, hours))
            .await
    }

    pub async fn sessions(
        &self,
        days: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<SessionDistribution>, MetricError> {
        let w = Window::last(now.0, days * MICROS_PER_DAY, assistant);
        self.run("session_distribution", move |c, p| read::sessions(c, &w, p))
            .await
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
        self.run("trending_topics", move |c, p| {
            let query = read::TrendingQuery {
                assistant,
                days,
                now: now.0,
                limit: limit as usize,
                recent_phrasings: recent,
            };
            read::trending(c, &query, p)
        })
        .await
    }

    pub async fn diversity(
        &self,
        days: Option<i64>,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Option<TopicDiversity>, MetricError> {
        self.run("topic_diversity", move |c, p| {
            read::diversity(c, assistant, days, now.0, p)
        })
        .await
    }

    pub async fn costs(
        &self,
        hours: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<AssistantCost>, MetricError> {
        let w = Window::last(now.0, hours * MICROS_PER_HOUR, assistant);
        self.run("assistant_costs", move |c, p| read::costs(c, &w, p))
            .await
    }

    pub async fn utilization(
        &self,
        days: i64,
        status: Option<UtilizationStatus>,
        limit: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<DocumentUtilization>, MetricError> {
        let w = Window::last(now.0, days * MICROS_PER_DAY, assistant);
        self.run("document_utilization", move |c, p| {
            read::utilization(c, &w, p, status, limit as usize)
        })
        .await
    }

    pub async fn users(
        &self,
        days: i64,
        limit: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<UserStat>, MetricError> {
        let w = Window::last(now.0, days * MICROS_PER_DAY, assistant);
        self.run("user_stats", move |c, p| {
            read::users(c, &w, p, limit as usize)
        })
        .await
    }

    pub async fn reranking(
        &self,
        hours: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Option<RerankingImpact>, MetricError> {
        let w = Window::last(now.0, hours * MICROS_PER_HOUR, assistant);
        self.run("reranking_impact", move |c, p| read::reranking(c, &w, p))
            .await
    }

    pub async fn sync(
        &self,
        days: i64,
        now: Timestamp,
    ) -> Result<Vec<ConnectorSyncRate>, MetricError> {
        let w = Window::last(now.0, days * MICROS_PER_DAY, None);
        self.run("connector_sync_rates", move |c, p| read::sync(c, &w, p))
            .await
    }

    pub async fn freshness(&self, now: Timestamp) -> Result<Vec<DocumentFreshness>, MetricError> {
        self.run("document_freshness", move |c, _| read::freshness(c, now.0))
            .await
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
        let mut degraded = Vec::new();
        let mut take = |key: &str, failed: bool| {
            if failed {
                degraded.push(key.to_string());
            }
        };
        take("ttft_percentiles", ttft.is_err());
        take("step_breakdown", steps.is_err());
        take("cache_metrics", cache.is_err());
        take("session_distribution", sessions.is_err());
        take("trending_topics", trending.is_err());
        take("topic_diversity", diversity.is_err());
        take("assistant_costs", costs.is_err());
        take("document_utilization", utilization.is_err());
        take("user_stats", users.is_err());
        take("document_freshness", freshness.is_err());
        take("reranking_impact", reranking.is_err());
        take("connector_sync_rates", sync.is_err());
        AdvancedAnalyticsResponse {
            ttft_percentiles: ttft.unwrap_or_default(),
            step_breakdown: steps.unwrap_or_default(),
            cache_metrics: cache.unwrap_or_default(),
            session_distribution: sessions.unwrap_or_default(),
            trending_topics: trending.unwrap_or_default(),
            topic_diversity: diversity.unwrap_or_default(),
            assistant_costs: costs.unwrap_or_default(),
            document_utilization: utilization.unwrap_or_default(),
            user_stats: users.unwrap_or_default(),
            document_freshness: freshness.unwrap_or_default(),
            reranking_impact: reranking.unwrap_or_default(),
            connector_sync_rates: sync.unwrap_or_default(),
            generated_at: now,
            degraded: (!degraded.is_empty()).then_some(degraded),
        }
    }
}
