//! `GET /api/v1/analytics/trending` and `/diversity` (`api.md`, TrendingTopic,
//! TopicDiversity; `ingest.md`, topics).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Clock, TestApp, id, interaction, new_id, with};

fn asked(assistant: Uuid, ts: &str, question: Option<&str>, topic: Option<&str>) -> Value {
    with(
        interaction(assistant, "s", ts),
        json!({"question": question, "topic": topic}),
    )
}

fn topic(
    assistant: Uuid,
    name: &str,
    canonical: &str,
    frequency: i64,
    variations: i64,
    last: &str,
    growth: Value,
) -> Value {
    json!({
        "topic": name,
        "canonical_text": canonical,
        "frequency": frequency,
        "variation_count": variations,
        "last_asked": last,
        "growth": growth,
        "assistant_id": assistant,
    })
}

const PASSWORD: &str = "How do I reset my password?";
const PASSWORD_LOWER: &str = "how do i reset my password";

/// The dataset shared by the trending and diversity tests; see the comments
/// for each topic's all-time and last-day figures.
struct Topics {
    app: TestApp,
    clock: Clock,
    a: Uuid,
    b: Uuid,
}

async fn topics() -> Topics {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    app.ingest_ok(json!([
        // Password topic of A. Last day: lower-case ×2 (3 h, 1 h), capitalised ×1 (2 h).
        // Day before: capitalised ×2 (30 h, 36 h). All time: capitalised 3, lower 2.
        asked(a, &clock.ago_h(3), Some(PASSWORD_LOWER), None),
        asked(a, &clock.ago_h(2), Some(PASSWORD), None),
        asked(a, &clock.ago_h(1), Some(PASSWORD_LOWER), None),
        asked(a, &clock.ago_h(30), Some(PASSWORD), None),
        asked(a, &clock.ago_h(36), Some(PASSWORD), None),
        // Billing label of A, spelt three ways; two phrasings asked once each (the
        // earlier, "Where is my invoice?", is canonical) and one without a question.
        asked(
            a,
            &clock.ago_h(5),
            Some("Where is my invoice?"),
            Some("Billing")
        ),
        asked(
            a,
            &clock.ago_h(4),
            Some("Can I pay by card?"),
            Some("  billing  ")
        ),
        asked(a, &clock.ago_min(30), None, Some("BILLING")),
        // Refund topic of A, 10 days ago.
        asked(
            a,
            &clock.ago_d(10),
            Some("What is the refund policy?"),
            None
        ),
        // Neither question nor topic: no topic.
        interaction(a, "s", &clock.ago_min(20)),
        // Password topic of B (never merged with A's): 1 in the last day, 3 the day before.
        asked(b, &clock.ago_h(6), Some(PASSWORD), None),
        asked(b, &clock.ago_h(40), Some(PASSWORD), None),
        asked(b, &clock.ago_h(41), Some(PASSWORD), None),
        asked(b, &clock.ago_h(42), Some(PASSWORD), None),
        // Onboarding label of B without any question: label as canonical text, 0 variations.
        asked(b, &clock.ago_h(7), None, Some("Onboarding")),
    ]))
    .await;
    Topics { app, clock, a, b }
}

#[tokio::test]
async fn trending_lists_topics_by_frequency_then_last_asked_with_canonical_text_and_variations() {
    // Arrange
    let Topics { app, clock, a, b } = topics().await;
    let password_a = topic(a, PASSWORD, PASSWORD, 5, 2, &clock.ago_h(1), Value::Null);
    let password_b = topic(b, PASSWORD, PASSWORD, 4, 1, &clock.ago_h(6), Value::Null);
    let billing = topic(
        a,
        "Billing",
        "Where is my invoice?",
        3,
        2,
        &clock.ago_min(30),
        Value::Null,
    );
    let onboarding = topic(
        b,
        "Onboarding",
        "Onboarding",
        1,
        0,
        &clock.ago_h(7),
        Value::Null,
    );
    let refund = topic(
        a,
        "What is the refund policy?",
        "What is the refund policy?",
        1,
        1,
        &clock.ago_d(10),
        Value::Null,
    );
    let cases = [
        (
            String::new(),
            json!([password_a, password_b, billing, onboarding, refund]),
            "all time, every assistant (frequency desc, then last_asked desc)",
        ),
        (
            String::from("?limit=2"),
            json!([password_a, password_b]),
            "limit 2",
        ),
        (
            format!("?assistant_id={a}"),
            json!([password_a, billing, refund]),
            "assistant A",
        ),
        (
            format!("?assistant_id={b}&limit=50"),
            json!([password_b, onboarding]),
            "assistant B",
        ),
        (
            format!("?assistant_id={}", new_id()),
            json!([]),
            "an assistant never seen",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/trending{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn trending_with_days_counts_only_the_window_and_reports_growth_against_the_previous_one() {
    // Arrange
    let Topics { app, clock, a, b } = topics().await;
    // Last day: Billing 3 (last 30 min), password A 3 (last 1 h): tie on frequency, Billing
    // asked later comes first. In the window the lower-case phrasing leads 2 to 1, so it is
    // the canonical text (and the topic, which has no label).
    // Growth: Billing had none the day before → null; password A 2 → (3 − 2)/2 × 100 = 50.0;
    // password B 3 → (1 − 3)/3 × 100 = −66.666… → −66.67; Onboarding none → null.
    let billing = topic(
        a,
        "Billing",
        "Where is my invoice?",
        3,
        2,
        &clock.ago_min(30),
        Value::Null,
    );
    let password_a = topic(
        a,
        PASSWORD_LOWER,
        PASSWORD_LOWER,
        3,
        2,
        &clock.ago_h(1),
        json!(50.0),
    );
    let password_b = topic(b, PASSWORD, PASSWORD, 1, 1, &clock.ago_h(6), json!(-66.67));
    let onboarding = topic(
        b,
        "Onboarding",
        "Onboarding",
        1,
        0,
        &clock.ago_h(7),
        Value::Null,
    );
    // Two days: everything but the refund; the two days before hold nothing → growth null.
    let two_days = json!([
        topic(a, PASSWORD, PASSWORD, 5, 2, &clock.ago_h(1), Value::Null),
        topic(b, PASSWORD, PASSWORD, 4, 1, &clock.ago_h(6), Value::Null),
        topic(
            a,
            "Billing",
            "Where is my invoice?",
            3,
            2,
            &clock.ago_min(30),
            Value::Null
        ),
        topic(
            b,
            "Onboarding",
            "Onboarding",
            1,
            0,
            &clock.ago_h(7),
            Value::Null
        ),
    ]);
    let cases = [
        (
            String::from("?days=1"),
            json!([billing, password_a, password_b, onboarding]),
            "every assistant, last day",
        ),
        (
            format!("?days=1&assistant_id={a}"),
            json!([billing, password_a]),
            "assistant A, last day",
        ),
        (
            format!("?assistant_id={b}&days=1&limit=1"),
            json!([password_b]),
            "assistant B, last day, limit 1",
        ),
        (
            String::from("?days=2"),
            two_days,
            "every assistant, two days",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/trending{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn trending_breaks_ties_by_topic_then_assistant_id() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let low = id("00000000-0000-4000-8000-000000000001");
    let high = id("00000000-0000-4000-8000-000000000002");
    let at = clock.ago_h(1);
    app.ingest_ok(json!([
        // Same frequency and last_asked everywhere.
        asked(high, &at, Some("Zebra question"), None),
        asked(high, &at, Some("Same question"), None),
        asked(low, &at, Some("Same question"), None),
        asked(low, &at, Some("Apple question"), None),
    ]))
    .await;

    // Act
    let got = app.analytics("/trending").await;

    // Assert: topic asc ("Apple" < "Same" < "Zebra"); the two "Same question" topics by
    // assistant id asc, each row naming its assistant.
    let rows: Vec<(&str, &str)> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap(),
                t["assistant_id"].as_str().unwrap(),
            )
        })
        .collect();
    let (low_id, high_id) = (low.to_string(), high.to_string());
    assert_eq!(
        rows,
        vec![
            ("Apple question", low_id.as_str()),
            ("Same question", low_id.as_str()),
            ("Same question", high_id.as_str()),
            ("Zebra question", high_id.as_str()),
        ],
        "{got}"
    );
    let low_only = app
        .analytics(&format!("/trending?assistant_id={low}"))
        .await;
    assert_eq!(low_only.as_array().unwrap().len(), 2, "{low_only}");
}

#[tokio::test]
async fn questions_equal_after_normalisation_share_a_topic_and_others_stay_apart() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        asked(a, &clock.ago_h(5), Some("Reset password?"), None),
        // NFKC (full-width letters), case, punctuation and spaces fold away.
        asked(a, &clock.ago_h(4), Some("  ＲＥＳＥＴ   password!! "), None),
        // A different subject stays apart.
        asked(a, &clock.ago_h(3), Some("Reset router?"), None),
        // A label equal to the question text is still a separate (labelled) topic.
        asked(a, &clock.ago_h(2), None, Some("reset password")),
    ]))
    .await;

    // Act
    let got = app.analytics("/trending").await;

    // Assert: phrasings are the raw texts, trimmed.
    assert_eq!(
        got,
        json!([
            topic(
                a,
                "Reset password?",
                "Reset password?",
                2,
                2,
                &clock.ago_h(4),
                Value::Null
            ),
            topic(
                a,
                "reset password",
                "reset password",
                1,
                0,
                &clock.ago_h(2),
                Value::Null
            ),
            topic(
                a,
                "Reset router?",
                "Reset router?",
                1,
                1,
                &clock.ago_h(3),
                Value::Null
            ),
        ])
    );
}

#[tokio::test]
async fn questions_with_similar_embeddings_join_one_topic() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    let embedded = |ts: String, question: &str, embedding: Value| {
        with(
            asked(a, &ts, Some(question), None),
            json!({"question_embedding": embedding}),
        )
    };
    app.ingest_ok(json!([
        embedded(
            clock.ago_h(3),
            "How can I change my email address?",
            json!([1.0, 0.0, 0.0])
        ),
        // cos([1,0,0], [0.99,0.1,0]) = 0.99/√0.9901 ≈ 0.995 ≥ 0.90 → same topic.
        embedded(
            clock.ago_h(2),
            "Update the e-mail on my account",
            json!([0.99, 0.1, 0.0])
        ),
        // cos with either ≈ 0.1 or less → a new topic.
        embedded(
            clock.ago_h(1),
            "What are your opening hours?",
            json!([0.0, 1.0, 0.0])
        ),
    ]))
    .await;

    // Act
    let got = app.analytics("/trending").await;

    // Assert: the two e-mail phrasings tie 1–1, the earlier one is canonical.
    assert_eq!(
        got,
        json!([
            topic(
                a,
                "How can I change my email address?",
                "How can I change my email address?",
                2,
                2,
                &clock.ago_h(2),
                Value::Null
            ),
            topic(
                a,
                "What are your opening hours?",
                "What are your opening hours?",
                1,
                1,
                &clock.ago_h(1),
                Value::Null
            ),
        ])
    );
}

#[tokio::test]
async fn trending_of_an_empty_store_is_an_empty_list() {
    // Arrange
    let app = TestApp::spawn().await;

    for query in ["", "?days=30"] {
        // Act
        let got = app.analytics(&format!("/trending{query}")).await;

        // Assert
        assert_eq!(got, json!([]), "query {query:?}");
    }
}

#[tokio::test]
async fn diversity_is_one_minus_the_herfindahl_index_of_the_topic_frequencies() {
    // Arrange
    let Topics { app, a, b, .. } = topics().await;
    let cases = [
        // [5, 4, 3, 1, 1]: F = 14, Σf² = 52 → 1 − 52/196 = 0.73469… → 0.735;
        // dominant 5/14 × 100 = 35.714… → 35.71.
        (
            String::new(),
            json!({"diversity_score": 0.735, "total_topics": 5, "dominant_topic_share": 35.71}),
            "all time, every assistant",
        ),
        // A: [5, 3, 1]: F = 9, Σf² = 35 → 46/81 = 0.5679… → 0.568; 5/9 → 55.56.
        (
            format!("?assistant_id={a}"),
            json!({"diversity_score": 0.568, "total_topics": 3, "dominant_topic_share": 55.56}),
            "assistant A",
        ),
        // B: [4, 1]: F = 5, Σf² = 17 → 8/25 = 0.32; 4/5 → 80.0.
        (
            format!("?assistant_id={b}"),
            json!({"diversity_score": 0.32, "total_topics": 2, "dominant_topic_share": 80.0}),
            "assistant B",
        ),
        // Last day: [3, 3, 1, 1]: F = 8, Σf² = 20 → 44/64 = 0.6875 exactly, a tie → to even
        // → 0.688; dominant 3/8 → 37.5.
        (
            String::from("?days=1"),
            json!({"diversity_score": 0.688, "total_topics": 4, "dominant_topic_share": 37.5}),
            "last day",
        ),
        // B, last day: [1, 1] → 0.5, 2, 50.0 (the contract's example ratio).
        (
            format!("?days=1&assistant_id={b}"),
            json!({"diversity_score": 0.5, "total_topics": 2, "dominant_topic_share": 50.0}),
            "assistant B, last day",
        ),
        (
            format!("?assistant_id={}", new_id()),
            Value::Null,
            "an assistant never seen",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/diversity{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn diversity_without_any_question_is_null() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    app.ingest_ok(json!([interaction(new_id(), "s", &clock.ago_min(1))]))
        .await;

    for query in ["", "?days=1"] {
        // Act
        let got = app.analytics(&format!("/diversity{query}")).await;

        // Assert
        assert_eq!(got, Value::Null, "query {query:?}");
    }
}
