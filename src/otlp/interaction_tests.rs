//! The finaliser builds each interaction's event directly from the mapped
//! trace; these tests hold it to the simple path it replaces: the
//! interaction written as its ingest JSON and validated as `/api/v1/ingest`
//! validates it. Accepted or refused, with the same event or the same
//! message, under any limits.

use proptest::prelude::*;
use uuid::Uuid;

use super::assemble::{Interaction, Step};
use super::facts::Rerank;
use super::finalizer::{validate_draft, validate_interaction};
use crate::ingest::validate::EventLimits;

/// 2026-11-30T02:53:20Z.
const NOW: i64 = 1_796_000_000_000_000;
const DAY_US: i64 = 86_400_000_000;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 _.-]{0,12}",
        " *",
        "\\PC{0,40}",
        Just("5D1C9A7E-0000-4000-8000-00000000ABCD".to_string()),
    ]
}

/// Seconds as the mapping gives them (finite), and some no duration is.
fn seconds() -> impl Strategy<Value = f64> {
    prop_oneof![0.0..100.0f64, -10.0..0.0f64, Just(1e13), Just(0.0)]
}

/// Any float: JSON has no infinity or NaN, so those are absent there.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        -2.0..2.0f64,
        Just(f64::INFINITY),
        Just(f64::NAN),
        Just(1e30)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let name = prop_oneof![
        Just("retrieval".to_string()),
        Just("synthesis".to_string()),
        Just("llm".to_string()),
        "[a-z.]{0,3}",
        "[A-Za-z ]{1,8}",
    ];
    (
        name,
        seconds(),
        proptest::option::of((0..1_000i64, 0..1_000i64)),
    )
        .prop_map(|(name, duration_s, tokens)| Step {
            name,
            duration_s,
            tokens,
        })
}

fn rerank() -> impl Strategy<Value = Rerank> {
    (
        proptest::option::of(any_f64()),
        proptest::option::of(any_f64()),
        proptest::option::of(any_f64()),
    )
        .prop_map(|(score_before, score_after, position_change)| Rerank {
            score_before,
            score_after,
            position_change,
        })
}

prop_compose! {
    fn interaction()(
        id in any::<u128>(),
        start_us in prop_oneof![
            NOW - 500 * DAY_US..NOW + 3_600_000_000,
            0..(u64::MAX / 1_000) as i64,
        ],
        assistant in any::<u128>(),
        session_id in prop_oneof!["[a-z0-9-]{1,20}", "\\PC{0,210}"],
        user_id in proptest::option::of(prop_oneof![text(), "x{250,260}"]),
        question in proptest::option::of(text()),
        topic in proptest::option::of(text()),
        model in proptest::option::of(text()),
        provider in proptest::option::of(text()),
        ttft_s in proptest::option::of(prop_oneof![seconds(), any_f64()]),
        total_duration_s in prop_oneof![seconds(), any_f64()],
        cache_hit in any::<bool>(),
        tokens in (0..i64::MAX, 0..i64::MAX, prop_oneof![0..100i64, 0..i64::MAX]),
        steps in proptest::collection::vec(step(), 0..5),
        documents in proptest::collection::vec(0..4u128, 0..6),
        rerank in proptest::option::of(rerank()),
    ) -> Interaction {
        Interaction {
            id: Uuid::from_u128(id),
            start_us,
            assistant_id: Uuid::from_u128(assistant),
            session_id,
            user_id,
            question,
            topic,
            model,
            provider,
            ttft_s,
            total_duration_s,
            cache_hit,
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            cached_input_tokens: tokens.2,
            steps,
            retrieved_document_ids: documents.into_iter().map(Uuid::from_u128).collect(),
            rerank,
        }
    }
}

prop_compose! {
    fn limits()(
        max_string_bytes in prop_oneof![Just(8 * 1024), 1..40usize],
        max_steps in 0..6usize,
        max_retrieved_documents in 0..6usize,
        max_future_us in 0..10_000_000_000i64,
        max_age_days in 0..600u32,
    ) -> EventLimits {
        EventLimits {
            max_string_bytes,
            max_steps,
            max_retrieved_documents,
            max_future_us,
            max_age_days,
            ..EventLimits::default()
        }
    }
}

#[test]
fn the_event_built_directly_equals_the_one_validated_from_its_json() {
    // The strategy's nested types need more stack than a test thread has
    // in a debug build.
    let run = || {
        let config = proptest::test_runner::Config::with_cases(2_000);
        let mut runner = proptest::test_runner::TestRunner::new(config);
        runner
            .run(&(interaction(), limits()), |(interaction, limits)| {
                let json = interaction.to_json();
                let direct = validate_interaction(interaction, &limits, NOW);
                prop_assert_eq!(direct, validate_draft(&json, &limits, NOW), "{}", json);
                Ok(())
            })
            .map_err(|failure| failure.to_string())
    };
    let outcome = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[test]
fn a_mapped_interaction_within_the_limits_is_accepted_as_built() {
    let interaction = Interaction {
        id: Uuid::from_u128(7),
        start_us: NOW - 1_000_000,
        assistant_id: Uuid::from_u128(9),
        session_id: "s-1".into(),
        user_id: Some("alice".into()),
        question: Some("  How do I reset my password? ".into()),
        topic: None,
        model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        ttft_s: Some(0.25),
        total_duration_s: 1.5,
        cache_hit: false,
        input_tokens: 120,
        output_tokens: 30,
        cached_input_tokens: 20,
        steps: vec![
            Step {
                name: "retrieval".into(),
                duration_s: 0.2,
                tokens: None,
            },
            Step {
                name: "synthesis".into(),
                duration_s: 1.2,
                tokens: Some((120, 30)),
            },
        ],
        retrieved_document_ids: vec![Uuid::from_u128(1), Uuid::from_u128(2)],
        rerank: None,
    };
    let limits = EventLimits::default();
    let json = interaction.to_json();
    let direct = validate_interaction(interaction, &limits, NOW).unwrap();
    assert_eq!(Ok(direct.clone()), validate_draft(&json, &limits, NOW));
    let crate::ingest::event::Event::Interaction(event) = direct else {
        panic!("not an interaction: {direct:?}");
    };
    assert_eq!(
        event.question.as_deref(),
        Some("How do I reset my password?")
    );
    assert_eq!(event.user_id.as_ref().map(|u| u.as_str()), Some("alice"));
    assert_eq!(
        (event.ttft_us, event.total_duration_us),
        (Some(250_000), Some(1_500_000))
    );
    assert_eq!(event.steps.len(), 2);
    assert_eq!(event.steps[1].tokens, Some((120, 30)));
    assert_eq!(event.retrieved_document_ids.len(), 2);
}
