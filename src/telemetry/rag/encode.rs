//! Encodes the published RAG series into the exposition, as a
//! prometheus-client [`Collector`] of the server's registry (so its names
//! get the registry's `ragpulse_` prefix). prometheus-client writes label
//! values as given; names come from clients, so [`Escaped`] escapes them.

use std::fmt::{self, Write};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelValue, LabelValueEncoder, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use super::buckets::{STEP_US, SYNC_US, TOTAL_US, TTFT_US};
use super::state::{AssistantSeries, ConnectorSeries, Histogram, SyncOutcome, Usage};
use super::{EntityLabel, RagSeries, View, WindowGauges};

const MICROS: f64 = 1e6;
const NANOS: f64 = 1e9;
/// More buckets than any histogram here has (with +Inf).
const MAX_BUCKETS: usize = 24;

/// The collector of a server's RAG series.
#[derive(Debug)]
pub struct RagCollector(pub Arc<RagSeries>);

impl Collector for RagCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let view = self.0.view();
        assistants(&mut encoder, &view)?;
        connectors(&mut encoder, &view)?;
        if let Some(windows) = self.0.windows() {
            window_gauges(&mut encoder, &windows)?;
        }
        if let Some(ready) = self.0.ready() {
            let mut family = encoder.encode_descriptor(
                "ready",
                "1 when the last readiness probe passed (the checks of /readyz), else 0.",
                None,
                MetricType::Gauge,
            )?;
            family.encode_gauge(&i64::from(ready))?;
        }
        Ok(())
    }
}

/// A label value with `\`, `"` and newlines escaped as the text format wants.
pub struct Escaped<'a>(pub &'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..at])?;
            encoder.write_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[at + 1..];
        }
        encoder.write_str(rest)
    }
}

type Pair<'a> = (&'static str, Escaped<'a>);

fn assistant_labels<'a>(label: &'a EntityLabel, extra: Pair<'a>) -> [Pair<'a>; 3] {
    [
        ("assistant", Escaped(&label.name)),
        ("assistant_id", Escaped(&label.id)),
        extra,
    ]
}

fn assistant_pair(label: &EntityLabel) -> [Pair<'_>; 2] {
    [
        ("assistant", Escaped(&label.name)),
        ("assistant_id", Escaped(&label.id)),
    ]
}

fn connector_pair(label: &EntityLabel) -> [Pair<'_>; 2] {
    [
        ("connector", Escaped(&label.name)),
        ("connector_id", Escaped(&label.id)),
    ]
}

fn counter(encoder: &mut MetricEncoder<'_>, value: u64) -> fmt::Result {
    encoder.encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// A counter's value: counts stay integers in the exposition.
#[derive(Clone, Copy)]
enum Value {
    Count(u64),
    Amount(f64),
}

fn counter_value(encoder: &mut MetricEncoder<'_>, value: Value) -> fmt::Result {
    match value {
        Value::Count(n) => counter(encoder, n),
        Value::Amount(x) => encoder.encode_counter::<NoLabelSet, f64, f64>(&x, None),
    }
}

fn histogram(encoder: &mut MetricEncoder<'_>, bounds: &[i64], h: &Histogram) -> fmt::Result {
    // On the stack: a scrape encodes thousands of histograms.
    let mut buckets = [(0.0, 0); MAX_BUCKETS];
    let n = bounds.len() + 1;
    let Some(slots) = buckets.get_mut(..n) else {
        return Err(fmt::Error);
    };
    let uppers = bounds
        .iter()
        .map(|&b| b as f64 / MICROS)
        .chain(std::iter::once(f64::MAX));
    for ((slot, upper), &count) in slots.iter_mut().zip(uppers).zip(h.counts()) {
        *slot = (upper, count);
    }
    encoder.encode_histogram::<NoLabelSet>(h.sum_us() as f64 / MICROS, h.count(), slots, None)
}

fn assistants(encoder: &mut DescriptorEncoder<'_>, view: &View) -> fmt::Result {
    if view.assistants.is_empty() {
        return Ok(());
    }
    let rows: Vec<(&EntityLabel, &AssistantSeries)> = view
        .assistants
        .values()
        .map(|p| (p.label.as_ref(), p.series.as_ref()))
        .collect();
    {
        let mut family = encoder.encode_descriptor(
            "interactions",
            "Interactions stored, by assistant and cache outcome.",
            None,
            MetricType::Counter,
        )?;
        for (label, series) in &rows {
            for (cache, n) in [
                ("miss", series.interactions[0]),
                ("hit", series.interactions[1]),
            ] {
                let labels = assistant_labels(label, ("cache", Escaped(cache)));
                counter(&mut family.encode_family(&labels)?, n)?;
            }
        }
    }
    for (name, help, bounds, pick) in [
        (
            "ttft_seconds",
            "Time to first token of interactions that streamed one.",
            TTFT_US,
            (|s: &AssistantSeries| &s.ttft) as fn(&AssistantSeries) -> &Histogram,
        ),
        (
            "interaction_duration_seconds",
            "Total duration of interactions that reported one.",
            TOTAL_US,
            |s: &AssistantSeries| &s.total,
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (label, series) in &rows {
            let labels = assistant_pair(label);
            histogram(&mut family.encode_family(&labels)?, bounds, pick(series))?;
        }
    }
    steps(encoder, view, &rows)?;
    usage(encoder, view, &rows)?;
    rerank(encoder, &rows)
}

fn steps(
    encoder: &mut DescriptorEncoder<'_>,
    view: &View,
    rows: &[(&EntityLabel, &AssistantSeries)],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        "step_duration_seconds",
        "Duration of a pipeline step in an interaction (repeats of a step summed).",
        None,
        MetricType::Histogram,
    )?;
    for (label, series) in rows {
        for (&slot, h) in &series.steps {
            let step = view
                .steps
                .get(usize::from(slot))
                .map_or(super::OTHER, String::as_str);
            let labels = assistant_labels(label, ("step", Escaped(step)));
            histogram(&mut family.encode_family(&labels)?, STEP_US, h)?;
        }
    }
    Ok(())
}

type UsageValue = fn(&Usage) -> Value;

fn usage(
    encoder: &mut DescriptorEncoder<'_>,
    view: &View,
    rows: &[(&EntityLabel, &AssistantSeries)],
) -> fmt::Result {
    let families: [(&str, &str, UsageValue); 4] = [
        (
            "input_tokens",
            "Input tokens (cached ones included), by model.",
            |u| Value::Count(u.input_tokens),
        ),
        ("output_tokens", "Output tokens, by model.", |u| {
            Value::Count(u.output_tokens)
        }),
        (
            "cached_input_tokens",
            "Input tokens served from the provider's prompt cache, by model.",
            |u| Value::Count(u.cached_input_tokens),
        ),
        (
            "cost_usd",
            "Cost in US dollars as priced at ingest (the client's cost_usd, else the catalogue's).",
            |u| Value::Amount(u.cost_nusd as f64 / NANOS),
        ),
    ];
    for (name, help, value) in families {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (label, series) in rows {
            for (&slot, u) in &series.models {
                let model = view
                    .models
                    .get(usize::from(slot))
                    .map_or(super::OTHER, String::as_str);
                let labels = assistant_labels(label, ("model", Escaped(model)));
                counter_value(&mut family.encode_family(&labels)?, value(u))?;
            }
        }
    }
    Ok(())
}

type RerankValue = fn(&super::state::Rerank) -> Value;

fn rerank(
    encoder: &mut DescriptorEncoder<'_>,
    rows: &[(&EntityLabel, &AssistantSeries)],
) -> fmt::Result {
    let families: [(&str, &str, RerankValue); 5] = [
        (
            "reranked_interactions",
            "Interactions that carried a rerank score improvement.",
            |r| Value::Count(r.interactions),
        ),
        (
            "rerank_score_gain",
            "Sum of the positive rerank score improvements.",
            |r| Value::Amount(r.gain_n as f64 / NANOS),
        ),
        (
            "rerank_score_loss",
            "Sum of the magnitudes of the negative rerank score improvements.",
            |r| Value::Amount(r.loss_n as f64 / NANOS),
        ),
        (
            "rerank_position_reports",
            "Reranked interactions that also reported a position change.",
            |r| Value::Count(r.positions),
        ),
        (
            "rerank_position_change",
            "Sum of the reported position changes (mean absolute rank shifts).",
            |r| Value::Amount(r.position_n as f64 / NANOS),
        ),
    ];
    for (name, help, value) in families {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (label, series) in rows {
            let labels = assistant_pair(label);
            counter_value(&mut family.encode_family(&labels)?, value(&series.rerank))?;
        }
    }
    Ok(())
}

fn connectors(encoder: &mut DescriptorEncoder<'_>, view: &View) -> fmt::Result {
    if view.connectors.is_empty() {
        return Ok(());
    }
    let rows: Vec<(i64, &EntityLabel, &ConnectorSeries)> = view
        .connectors
        .iter()
        .map(|(&key, p)| (key, p.label.as_ref(), p.series.as_ref()))
        .collect();
    {
        let mut family = encoder.encode_descriptor(
            "connector_syncs",
            "Connector syncs stored, by outcome.",
            None,
            MetricType::Counter,
        )?;
        for (_, label, series) in &rows {
            for outcome in SyncOutcome::ALL {
                let [name, id] = connector_pair(label);
                let labels = [name, id, ("status", Escaped(outcome.as_str()))];
                counter(
                    &mut family.encode_family(&labels)?,
                    series.syncs[outcome as usize],
                )?;
            }
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "connector_sync_duration_seconds",
            "Duration of connector syncs that reported one.",
            None,
            MetricType::Histogram,
        )?;
        for (_, label, series) in &rows {
            let labels = connector_pair(label);
            histogram(
                &mut family.encode_family(&labels)?,
                SYNC_US,
                &series.duration,
            )?;
        }
    }
    // Runs and last successes are a connector's own: the `other` row has none.
    let own = || {
        rows.iter()
            .filter(|(key, _, _)| *key != super::state::OTHER_KEY)
    };
    {
        let mut family = encoder.encode_descriptor(
            "connector_consecutive_failures",
            "Failed syncs started after the connector's latest successful one.",
            None,
            MetricType::Gauge,
        )?;
        for (_, label, series) in own() {
            let labels = connector_pair(label);
            family
                .encode_family(&labels)?
                .encode_gauge(&(series.failures.count() as i64))?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "connector_last_success_timestamp_seconds",
        "Start of the connector's latest successful sync, Unix seconds.",
        None,
        MetricType::Gauge,
    )?;
    for (_, label, series) in own() {
        if let Some(at) = series.last_success_us {
            let labels = connector_pair(label);
            family
                .encode_family(&labels)?
                .encode_gauge(&(at as f64 / MICROS))?;
        }
    }
    Ok(())
}

fn window_gauges(encoder: &mut DescriptorEncoder<'_>, w: &WindowGauges) -> fmt::Result {
    {
        let mut family = encoder.encode_descriptor(
            "documents",
            "Live documents by the age of their content: fresh (< 30 d), aging (30-90 d), stale (> 90 d or unknown).",
            None,
            MetricType::Gauge,
        )?;
        for (category, n) in ["fresh", "aging", "stale"].into_iter().zip(w.freshness) {
            let labels = [("freshness", Escaped(category))];
            family.encode_family(&labels)?.encode_gauge(&n)?;
        }
    }
    gauge(
        encoder,
        "cold_documents",
        "Live documents no interaction retrieved in the last 30 days.",
        w.cold_documents,
    )?;
    {
        let mut family = encoder.encode_descriptor(
            "sessions",
            "Sessions with interactions in the last 7 days, by their interactions there: single (1), normal (2-5), power (6+).",
            None,
            MetricType::Gauge,
        )?;
        for (size, n) in ["single", "normal", "power"].into_iter().zip(w.sessions) {
            let labels = [("size", Escaped(size))];
            family.encode_family(&labels)?.encode_gauge(&n)?;
        }
    }
    if let Some(d) = w.diversity {
        gauge(
            encoder,
            "topic_diversity_score",
            "One minus the Herfindahl index of the topics' frequencies, all time (as /diversity).",
            d.score,
        )?;
        gauge(
            encoder,
            "topics",
            "Topics with at least one question, all time.",
            d.topics,
        )?;
        gauge(
            encoder,
            "dominant_topic_share_percent",
            "Percent of the questions in the largest topic, all time.",
            d.dominant_share,
        )?;
    }
    gauge(
        encoder,
        "window_gauges_timestamp_seconds",
        "When the document, session and topic gauges were last computed, Unix seconds.",
        w.computed_at_us as f64 / MICROS,
    )
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

#[cfg(test)]
mod tests {
    use super::super::state::{InteractionFacts, MAX_MODELS, OTHER_KEY, SeriesState};
    use super::super::{Diversity, EntityLabel, Update};
    use super::*;
    use crate::telemetry::Telemetry;

    const A: &str = "5d1c7e2a-0000-4000-8000-000000000001";
    const C: &str = "5d1c7e2a-0000-4000-8000-0000000000c1";

    fn label(id: &str, name: &str) -> Arc<EntityLabel> {
        Arc::new(EntityLabel::new(id.parse().unwrap(), Some(name)))
    }

    /// The exposition of a server whose writer folded `state`.
    fn exposition(state: &mut SeriesState, assistant: &str, connector: &str) -> String {
        let telemetry = Telemetry::new();
        let changes = state.take_changes();
        let (a, c) = (label(A, assistant), label(C, connector));
        telemetry.rag.publish(Update::of(
            state,
            &changes,
            |key| {
                if key == OTHER_KEY {
                    Arc::new(EntityLabel::other())
                } else {
                    a.clone()
                }
            },
            |_| c.clone(),
        ));
        telemetry.render()
    }

    fn interaction(ttft_ms: i64, cache_hit: bool) -> InteractionFacts<'static> {
        InteractionFacts {
            assistant: 1,
            model: Some("gpt-4o-mini"),
            cache_hit,
            ttft_us: Some(ttft_ms * 1_000),
            total_us: Some(ttft_ms * 4_000),
            input_tokens: 1_000,
            output_tokens: 200,
            cached_input_tokens: 100,
            cost_nusd: 1_234_567,
            rerank_improvement_n: None,
            rerank_position_n: None,
        }
    }

    fn has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line\n  {line}\nin\n{text}"
        );
    }

    const AL: &str =
        r#"assistant="Support bot",assistant_id="5d1c7e2a-0000-4000-8000-000000000001""#;

    #[test]
    fn interactions_are_counted_per_assistant_and_cache_outcome() {
        let mut state = SeriesState::new();
        for hit in [false, true, true] {
            state.interaction(&interaction(800, hit));
        }
        let text = exposition(&mut state, "Support bot", "Confluence");
        has(&text, "# TYPE ragpulse_interactions counter");
        has(
            &text,
            &format!("ragpulse_interactions_total{{{AL},cache=\"miss\"}} 1"),
        );
        has(
            &text,
            &format!("ragpulse_interactions_total{{{AL},cache=\"hit\"}} 2"),
        );
    }

    #[test]
    fn ttft_buckets_are_cumulative_with_the_boundary_inside_le() {
        let mut state = SeriesState::new();
        // 0.05 s and 1 s lie exactly on bounds; 90 s is above every bound.
        for ms in [50, 900, 1_000, 1_001, 90_000] {
            state.interaction(&interaction(ms, false));
        }
        let text = exposition(&mut state, "Support bot", "Confluence");
        has(&text, "# TYPE ragpulse_ttft_seconds histogram");
        let bucket =
            |le: &str, n: u64| format!("ragpulse_ttft_seconds_bucket{{le=\"{le}\",{AL}}} {n}");
        for (le, n) in [
            ("0.05", 1),
            ("0.1", 1),
            ("0.75", 1),
            ("1.0", 3),
            ("1.5", 4),
            ("60.0", 4),
            ("+Inf", 5),
        ] {
            has(&text, &bucket(le, n));
        }
        has(&text, &format!("ragpulse_ttft_seconds_count{{{AL}}} 5"));
        // 0.05 + 0.9 + 1 + 1.001 + 90 = 92.951 s
        has(&text, &format!("ragpulse_ttft_seconds_sum{{{AL}}} 92.951"));
        // Total durations are 4 × the TTFT: 0.2 s is under le=0.25.
        has(
            &text,
            &format!("ragpulse_interaction_duration_seconds_bucket{{le=\"0.25\",{AL}}} 1"),
        );
    }

    #[test]
    fn every_bucket_list_is_exposed_as_it_is_declared() {
        let mut state = SeriesState::new();
        let row = state.interaction(&interaction(800, false));
        state.step(row.key, "retrieval", 300_000);
        state.sync(3, SyncOutcome::Success, 0, Some(1_000_000));
        let text = exposition(&mut state, "Support bot", "Confluence");
        for (family, bounds) in [
            ("ttft_seconds", TTFT_US),
            ("interaction_duration_seconds", TOTAL_US),
            ("step_duration_seconds", STEP_US),
            ("connector_sync_duration_seconds", SYNC_US),
        ] {
            let prefix = format!("ragpulse_{family}_bucket{{le=\"");
            let les: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix(prefix.as_str()))
                .filter_map(|l| l.split('"').next())
                .collect();
            let expected: Vec<String> = bounds
                .iter()
                .map(|&b| format!("{:?}", b as f64 / 1e6))
                .chain(std::iter::once("+Inf".to_string()))
                .collect();
            assert_eq!(les, expected, "{family}");
        }
    }

    #[test]
    fn tokens_and_cost_are_counted_per_model_with_models_beyond_the_cap_as_other() {
        let mut state = SeriesState::new();
        let models: Vec<String> = (0..=MAX_MODELS).map(|i| format!("model-{i}")).collect();
        for model in &models {
            state.interaction(&InteractionFacts {
                model: Some(model),
                ..interaction(500, false)
            });
        }
        state.interaction(&InteractionFacts {
            model: None,
            ..interaction(500, false)
        });
        let text = exposition(&mut state, "Support bot", "Confluence");
        has(
            &text,
            &format!("ragpulse_input_tokens_total{{{AL},model=\"model-0\"}} 1000"),
        );
        has(
            &text,
            &format!("ragpulse_output_tokens_total{{{AL},model=\"model-0\"}} 200"),
        );
        has(
            &text,
            &format!("ragpulse_cached_input_tokens_total{{{AL},model=\"model-0\"}} 100"),
        );
        // 1,234,567 nano-dollars.
        has(
            &text,
            &format!("ragpulse_cost_usd_total{{{AL},model=\"model-0\"}} 0.001234567"),
        );
        // The model after the cap, and the interaction without a model (whose
        // `unknown` finds no room either), share `other`.
        has(
            &text,
            &format!("ragpulse_input_tokens_total{{{AL},model=\"other\"}} 2000"),
        );
        assert!(!text.contains("model=\"unknown\""));
        assert!(!text.contains(&format!("model=\"model-{MAX_MODELS}\"")));
    }

    #[test]
    fn steps_are_labelled_by_name() {
        let mut state = SeriesState::new();
        let row = state.interaction(&interaction(500, false));
        state.step(row.key, "retrieval", 10_000);
        state.step(row.key, "synthesis", 2_600_000);
        let text = exposition(&mut state, "Support bot", "Confluence");
        has(
            &text,
            &format!(
                "ragpulse_step_duration_seconds_bucket{{le=\"0.01\",{AL},step=\"retrieval\"}} 1"
            ),
        );
        has(
            &text,
            &format!(
                "ragpulse_step_duration_seconds_bucket{{le=\"2.5\",{AL},step=\"synthesis\"}} 0"
            ),
        );
        has(
            &text,
            &format!("ragpulse_step_duration_seconds_sum{{{AL},step=\"synthesis\"}} 2.6"),
        );
    }

    #[test]
    fn rerank_gains_and_losses_are_separate_counters() {
        let mut state = SeriesState::new();
        for (improvement, position) in [(260_000_000, Some(2_500_000_000)), (-100_000_000, None)] {
            state.interaction(&InteractionFacts {
                rerank_improvement_n: Some(improvement),
                rerank_position_n: position,
                ..interaction(500, false)
            });
        }
        let text = exposition(&mut state, "Support bot", "Confluence");
        has(
            &text,
            &format!("ragpulse_reranked_interactions_total{{{AL}}} 2"),
        );
        has(
            &text,
            &format!("ragpulse_rerank_score_gain_total{{{AL}}} 0.26"),
        );
        has(
            &text,
            &format!("ragpulse_rerank_score_loss_total{{{AL}}} 0.1"),
        );
        has(
            &text,
            &format!("ragpulse_rerank_position_reports_total{{{AL}}} 1"),
        );
        has(
            &text,
            &format!("ragpulse_rerank_position_change_total{{{AL}}} 2.5"),
        );
    }

    #[test]
    fn connector_syncs_count_by_status_with_the_failure_run_and_last_success() {
        let mut state = SeriesState::new();
        state.sync(
            3,
            SyncOutcome::Success,
            1_700_000_000_000_000,
            Some(12_500_000),
        );
        state.sync(3, SyncOutcome::Failure, 1_700_000_100_000_000, None);
        state.sync(
            3,
            SyncOutcome::Failure,
            1_700_000_200_000_000,
            Some(3_000_000),
        );
        let text = exposition(&mut state, "Support bot", "Confluence");
        let cl = r#"connector="Confluence",connector_id="5d1c7e2a-0000-4000-8000-0000000000c1""#;
        has(
            &text,
            &format!("ragpulse_connector_syncs_total{{{cl},status=\"success\"}} 1"),
        );
        has(
            &text,
            &format!("ragpulse_connector_syncs_total{{{cl},status=\"partial\"}} 0"),
        );
        has(
            &text,
            &format!("ragpulse_connector_syncs_total{{{cl},status=\"failure\"}} 2"),
        );
        has(
            &text,
            &format!("ragpulse_connector_sync_duration_seconds_count{{{cl}}} 2"),
        );
        has(
            &text,
            &format!("ragpulse_connector_sync_duration_seconds_sum{{{cl}}} 15.5"),
        );
        has(
            &text,
            &format!("ragpulse_connector_consecutive_failures{{{cl}}} 2"),
        );
        has(
            &text,
            &format!("ragpulse_connector_last_success_timestamp_seconds{{{cl}}} 1700000000.0"),
        );
    }

    #[test]
    fn client_names_are_escaped_in_label_values() {
        let mut state = SeriesState::new();
        state.interaction(&interaction(500, false));
        let text = exposition(&mut state, "a \"quoted\"\nname \\ here", "Confluence");
        has(
            &text,
            &format!(
                "ragpulse_interactions_total{{assistant=\"a \\\"quoted\\\"\\nname \\\\ here\",assistant_id=\"{A}\",cache=\"hit\"}} 0"
            ),
        );
        // The injected newline stays inside the label value.
        assert!(!text.lines().any(|l| l.starts_with("name ")));
    }

    #[test]
    fn window_gauges_and_readiness_appear_once_computed() {
        let telemetry = Telemetry::new();
        let before = telemetry.render();
        assert!(!before.contains("ragpulse_documents"));
        assert!(!before.contains("ragpulse_ready"));
        telemetry.rag.set_ready(false);
        telemetry.rag.set_windows(WindowGauges {
            computed_at_us: 1_700_000_000_500_000,
            freshness: [3, 2, 1],
            cold_documents: 4,
            sessions: [5, 6, 7],
            diversity: Some(Diversity {
                score: 0.5,
                topics: 2,
                dominant_share: 50.0,
            }),
        });
        let text = telemetry.render();
        for line in [
            "ragpulse_ready 0",
            "ragpulse_documents{freshness=\"fresh\"} 3",
            "ragpulse_documents{freshness=\"aging\"} 2",
            "ragpulse_documents{freshness=\"stale\"} 1",
            "ragpulse_cold_documents 4",
            "ragpulse_sessions{size=\"single\"} 5",
            "ragpulse_sessions{size=\"power\"} 7",
            "ragpulse_topic_diversity_score 0.5",
            "ragpulse_topics 2",
            "ragpulse_dominant_topic_share_percent 50.0",
            "ragpulse_window_gauges_timestamp_seconds 1700000000.5",
        ] {
            has(&text, line);
        }
    }

    #[test]
    fn every_histogram_fits_the_bucket_buffer() {
        for bounds in [TTFT_US, TOTAL_US, STEP_US, SYNC_US] {
            assert!(bounds.len() < MAX_BUCKETS);
        }
    }

    #[test]
    fn nothing_is_exposed_while_no_event_was_folded() {
        let text = Telemetry::new().render();
        assert!(!text.contains("ragpulse_interactions"));
        assert!(!text.contains("ragpulse_connector_syncs"));
        assert!(text.ends_with("# EOF\n"));
    }
}
