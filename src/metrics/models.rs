//! The response models of the analytics API: field names and types exactly as
//! `docs/api.md` (the product contract) lists them. Serialisation only; the
//! math that fills them lives in the metric modules.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::time::Timestamp;

/// Time-to-first-token percentiles in seconds (PostgreSQL `percentile_cont`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TtftPercentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub period_hours: i64,
}

/// Mean input/output tokens of a step over the interactions that reported them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StepTokens {
    pub input: f64,
    pub output: f64,
}

/// One pipeline step, in pipeline order.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StepBreakdown {
    pub step_name: String,
    /// Mean per-interaction summed duration, seconds.
    pub avg_duration: f64,
    /// Interactions that have this step.
    pub step_count: i64,
    pub avg_tokens: Option<StepTokens>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CacheMetrics {
    /// hits / total × 100, 2 decimals.
    pub hit_rate: f64,
    pub total_requests: i64,
    pub cache_hits: i64,
    pub cache_misses: i64,
    pub period_hours: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SessionDistribution {
    /// `Single Question`, `Normal (2-5)` or `Power User (5+)`.
    pub session_type: String,
    pub session_count: i64,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TrendingTopic {
    pub topic: String,
    pub canonical_text: String,
    pub frequency: i64,
    pub variation_count: i64,
    pub last_asked: Timestamp,
    /// Growth against the previous window of the same length, percent; only with `days`.
    pub growth: Option<f64>,
    /// The assistant the topic belongs to: without `assistant_id` in the
    /// request, the same question can be listed once per assistant.
    pub assistant_id: Uuid,
    /// Up to the 10 latest distinct phrasings, latest first; only with `phrasings=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_phrasings: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopicDiversity {
    pub diversity_score: f64,
    pub total_topics: i64,
    pub dominant_topic_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AssistantCost {
    pub assistant_id: Uuid,
    pub assistant_name: String,
    pub total_tokens: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub estimated_cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DocumentFreshness {
    pub freshness_category: String,
    pub doc_count: i64,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DocumentUtilization {
    pub file_name: String,
    pub connector_name: String,
    pub retrieval_count: i64,
    pub last_retrieved: Option<Timestamp>,
    /// `hot` (> 10), `warm` (1..=10) or `cold` (0).
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserStat {
    /// Any non-empty string of at most 256 characters; a UUID in its canonical form.
    pub user_id: String,
    pub email: String,
    pub full_name: String,
    pub total_tokens: i64,
    pub interaction_count: i64,
    pub last_active: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RerankingImpact {
    pub avg_score_improvement: f64,
    pub reranking_enabled_count: i64,
    pub avg_position_change: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConnectorSyncRate {
    pub connector_id: Uuid,
    pub connector_name: String,
    pub success_rate: f64,
    pub total_syncs: i64,
    pub successful_syncs: i64,
    pub failed_syncs: i64,
    pub avg_sync_duration: Option<f64>,
}

/// Everything `/advanced` returns. `degraded` is present only when a metric failed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AdvancedAnalyticsResponse {
    pub ttft_percentiles: Option<TtftPercentiles>,
    pub step_breakdown: Vec<StepBreakdown>,
    pub cache_metrics: Option<CacheMetrics>,
    pub session_distribution: Vec<SessionDistribution>,
    pub trending_topics: Vec<TrendingTopic>,
    pub topic_diversity: Option<TopicDiversity>,
    pub assistant_costs: Vec<AssistantCost>,
    pub document_utilization: Vec<DocumentUtilization>,
    pub user_stats: Vec<UserStat>,
    pub document_freshness: Vec<DocumentFreshness>,
    pub reranking_impact: Option<RerankingImpact>,
    pub connector_sync_rates: Vec<ConnectorSyncRate>,
    pub generated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<Vec<String>>,
}

/// One assistant: registered, or named by at least one stored interaction.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AssistantSummary {
    pub assistant_id: Uuid,
    /// The registered name, else the id as text (as everywhere in the API).
    pub assistant_name: String,
    /// The registered default model, `null` when none.
    pub model: Option<String>,
    /// False for an assistant only known from interactions.
    pub registered: bool,
    /// Time of its latest interaction, `null` if none.
    pub last_active: Option<Timestamp>,
}

/// A model seen in interactions that the catalogue could not price.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnpricedModel {
    /// The model as sent (or the assistant's registered model); `(none)` when neither named one.
    pub model: String,
    /// Interactions stored with cost 0 for lack of a price.
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}
