//! The reads behind the analytics endpoints, one per metric, as closures over
//! a view of the store with the window already fixed: `/advanced` runs each on
//! its own reader, a live snapshot runs all of them in one view.

use uuid::Uuid;

use super::UtilizationStatus;
use crate::metrics::models::*;
use crate::store::interface::TrendingQuery;
use crate::store::{Snapshot, StoreError, Window};
use crate::time::{MICROS_PER_DAY, MICROS_PER_HOUR, Timestamp};

/// One metric's read, named as the metric's key in `/advanced`.
pub struct Query<F> {
    pub name: &'static str,
    pub read: F,
}

/// What a query's closure is.
pub trait Read<T>: FnOnce(&dyn Snapshot) -> Result<T, StoreError> + Send + 'static {}
impl<T, F: FnOnce(&dyn Snapshot) -> Result<T, StoreError> + Send + 'static> Read<T> for F {}

fn query<T, F: Read<T>>(name: &'static str, read: F) -> Query<F> {
    Query { name, read }
}

fn hours(now: Timestamp, hours: i64, assistant: Option<Uuid>) -> Window {
    Window::last(now.0, hours * MICROS_PER_HOUR, assistant)
}

fn days(now: Timestamp, days: i64, assistant: Option<Uuid>) -> Window {
    Window::last(now.0, days * MICROS_PER_DAY, assistant)
}

pub fn ttft(h: i64, a: Option<Uuid>, now: Timestamp) -> Query<impl Read<Option<TtftPercentiles>>> {
    let w = hours(now, h, a);
    query("ttft_percentiles", move |v| v.ttft(&w, h))
}

pub fn steps(d: i64, a: Option<Uuid>, now: Timestamp) -> Query<impl Read<Vec<StepBreakdown>>> {
    let w = days(now, d, a);
    query("step_breakdown", move |v| v.steps(&w))
}

pub fn cache(h: i64, a: Option<Uuid>, now: Timestamp) -> Query<impl Read<Option<CacheMetrics>>> {
    let w = hours(now, h, a);
    query("cache_metrics", move |v| v.cache(&w, h))
}

pub fn sessions(
    d: i64,
    a: Option<Uuid>,
    now: Timestamp,
) -> Query<impl Read<Vec<SessionDistribution>>> {
    let w = days(now, d, a);
    query("session_distribution", move |v| v.sessions(&w))
}

/// Trending topics, each with its `recent` latest phrasings when asked.
pub fn trending(
    a: Option<Uuid>,
    limit: i64,
    d: Option<i64>,
    now: Timestamp,
    recent: Option<usize>,
) -> Query<impl Read<Vec<TrendingTopic>>> {
    query("trending_topics", move |v| {
        let query = TrendingQuery {
            assistant: a,
            days: d,
            now: now.0,
            limit: limit as usize,
            recent_phrasings: recent,
        };
        v.trending(&query)
    })
}

pub fn diversity(
    d: Option<i64>,
    a: Option<Uuid>,
    now: Timestamp,
) -> Query<impl Read<Option<TopicDiversity>>> {
    query("topic_diversity", move |v| v.diversity(a, d, now.0))
}

pub fn costs(h: i64, a: Option<Uuid>, now: Timestamp) -> Query<impl Read<Vec<AssistantCost>>> {
    let w = hours(now, h, a);
    query("assistant_costs", move |v| v.costs(&w))
}

pub fn utilization(
    d: i64,
    status: Option<UtilizationStatus>,
    limit: i64,
    a: Option<Uuid>,
    now: Timestamp,
) -> Query<impl Read<Vec<DocumentUtilization>>> {
    let w = days(now, d, a);
    query("document_utilization", move |v| {
        v.utilization(&w, status, limit as usize)
    })
}

/// Cold documents counted, not listed (for the `/metrics` gauge).
pub fn cold_documents(d: i64, now: Timestamp) -> Query<impl Read<u64>> {
    let w = days(now, d, None);
    query("cold_documents", move |v| v.cold_documents(&w))
}

pub fn users(
    d: i64,
    limit: i64,
    a: Option<Uuid>,
    now: Timestamp,
) -> Query<impl Read<Vec<UserStat>>> {
    let w = days(now, d, a);
    query("user_stats", move |v| v.users(&w, limit as usize))
}

pub fn reranking(
    h: i64,
    a: Option<Uuid>,
    now: Timestamp,
) -> Query<impl Read<Option<RerankingImpact>>> {
    let w = hours(now, h, a);
    query("reranking_impact", move |v| v.reranking(&w))
}

pub fn sync(d: i64, now: Timestamp) -> Query<impl Read<Vec<ConnectorSyncRate>>> {
    let w = days(now, d, None);
    query("connector_sync_rates", move |v| v.sync(&w))
}

pub fn freshness(now: Timestamp) -> Query<impl Read<Vec<DocumentFreshness>>> {
    query("document_freshness", move |v| v.freshness(now.0))
}
