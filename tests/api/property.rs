//! Property: the all-time trending and diversity answers, served from the
//! topic counters kept at ingest, equal the answers of a scan of every
//! interaction (a `days` window wide enough to hold them all).

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{Clock, TestApp, interaction, with};

const QUESTIONS: [&str; 5] = [
    "How do I reset my password?",
    "how do i reset my password",
    "What is the refund policy?",
    "Where are the audit logs?",
    "where are the audit logs",
];
const LABELS: [&str; 2] = ["Billing", "billing "];

#[derive(Debug, Clone)]
struct Event {
    assistant: usize,
    label: Option<usize>,
    question: Option<usize>,
    hours_ago: i64,
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (
            0..3usize,
            prop::option::of(0..2usize),
            prop::option::weighted(0.85, 0..5usize),
            1..2_000i64,
        )
            .prop_map(|(assistant, label, question, hours_ago)| Event {
                assistant,
                label,
                question,
                hours_ago,
            }),
        1..40,
    )
}

/// Drops `growth`, the one field only the windowed answer carries.
fn without_growth(mut topics: Value) -> Value {
    if let Some(list) = topics.as_array_mut() {
        for topic in list {
            if let Some(object) = topic.as_object_mut() {
                object.remove("growth");
            }
        }
    }
    topics
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn all_time_counters_equal_a_full_scan(events in events()) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let app = TestApp::spawn().await;
            let clock = Clock::new();
            let assistants = [uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2), uuid::Uuid::from_u128(3)];
            let batch: Vec<Value> = events
                .iter()
                .map(|e| {
                    let mut extra = serde_json::Map::new();
                    if let Some(l) = e.label {
                        extra.insert("topic".into(), json!(LABELS[l]));
                    }
                    if let Some(q) = e.question {
                        extra.insert("question".into(), json!(QUESTIONS[q]));
                    }
                    with(interaction(assistants[e.assistant], "s", &clock.ago_h(e.hours_ago)), Value::Object(extra))
                })
                .collect();
            app.ingest_ok(Value::Array(batch)).await;
            for scope in ["", "&assistant_id=00000000-0000-0000-0000-000000000002"] {
                let counters = app.analytics(&format!("/trending?limit=50{scope}")).await;
                let scanned = app.analytics(&format!("/trending?limit=50&days=365{scope}")).await;
                assert_eq!(without_growth(counters), without_growth(scanned), "trending{scope}");
                let counters = app.analytics(&format!("/diversity?x=1{scope}")).await;
                let scanned = app.analytics(&format!("/diversity?days=365{scope}")).await;
                assert_eq!(counters, scanned, "diversity{scope}");
            }
        });
    }
}
