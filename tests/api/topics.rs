//! Topic grouping end to end: near-duplicate questions without embeddings,
//! embedding centroids that survive a restart, and the per-assistant
//! embedding dimension.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Clock, TestApp, interaction, new_id, with};

fn asked(assistant: uuid::Uuid, at: &str, question: &str, embedding: Option<Value>) -> Value {
    let mut extra = json!({"question": question});
    if let Some(e) = embedding {
        extra["question_embedding"] = e;
    }
    with(interaction(assistant, "s", at), extra)
}

/// (canonical text, frequency, variation count) of each listed topic.
fn summary(trending: &Value) -> Vec<(String, i64, i64)> {
    trending
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["canonical_text"].as_str().unwrap().to_string(),
                t["frequency"].as_i64().unwrap(),
                t["variation_count"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn paraphrases_without_embeddings_join_one_topic_and_a_different_subject_stays_apart() {
    // Arrange: three rewordings of one question, and a question on another
    // subject that shares most of its words.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        asked(a, &clock.ago_h(4), "how do i reset my password", None),
        asked(a, &clock.ago_h(3), "How can I reset my password?", None),
        asked(a, &clock.ago_h(2), "reset password how", None),
        asked(a, &clock.ago_h(1), "how do I reset my router", None),
    ]))
    .await;

    // Act
    let got = app.analytics("/trending").await;

    // Assert: three phrasings, one topic (its earliest phrasing is canonical: all tie at 1).
    assert_eq!(
        summary(&got),
        vec![
            ("how do i reset my password".to_string(), 3, 3),
            ("how do I reset my router".to_string(), 1, 1),
        ],
        "{got}"
    );
}

#[tokio::test]
async fn a_near_duplicate_keeps_its_topic_after_a_restart() {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        asked(a, &clock.ago_h(3), "how do i reset my password", None),
        asked(a, &clock.ago_h(2), "reset password how", None),
    ]))
    .await;
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, |_| {}).await;
    app.ingest_ok(json!([
        asked(a, &clock.ago_h(1), "reset password how", None),
        asked(a, &clock.ago_min(30), "How can I reset my password?", None),
    ]))
    .await;

    let got = app.analytics("/trending").await;
    assert_eq!(
        summary(&got),
        vec![("reset password how".to_string(), 4, 3)],
        "the most frequent phrasing (2) is canonical: {got}"
    );
}

#[tokio::test]
async fn embedding_centroids_are_restored_after_a_restart() {
    // Arrange: one topic from [1,0,0]; after a restart a close embedding must
    // join it, and an orthogonal one must not.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([asked(
        a,
        &clock.ago_h(3),
        "Change my e-mail",
        Some(json!([1.0, 0.0, 0.0]))
    )]))
    .await;
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, |_| {}).await;

    // Act: cos([1,0,0], [0.95,0.2,0]) = 0.95/√0.9425 ≈ 0.9786 ≥ 0.90.
    app.ingest_ok(json!([
        asked(
            a,
            &clock.ago_h(2),
            "Update my email address",
            Some(json!([0.95, 0.2, 0.0]))
        ),
        asked(
            a,
            &clock.ago_h(1),
            "Opening hours?",
            Some(json!([0.0, 0.0, 1.0]))
        ),
    ]))
    .await;

    // Assert
    let got = app.analytics("/trending").await;
    assert_eq!(
        summary(&got),
        vec![
            ("Change my e-mail".to_string(), 2, 2),
            ("Opening hours?".to_string(), 1, 1),
        ],
        "{got}"
    );
}

#[tokio::test]
async fn a_centroid_moved_within_one_batch_is_stored_where_it_moved() {
    // Arrange: one batch starts a topic at 0° and moves its centroid to 9.04°
    // with a question at 18.07° (the mean of the two unit vectors, at cosine
    // 0.9507 ≥ 0.90 from the first). The writer stores moved centroids once,
    // at the end of the transaction.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    app.ingest_ok(json!([
        asked(
            a,
            &clock.ago_h(3),
            "Change my e-mail",
            Some(json!([1.0, 0.0, 0.0]))
        ),
        asked(
            a,
            &clock.ago_h(2),
            "Update my email address",
            Some(json!([0.95, 0.31, 0.0]))
        ),
    ]))
    .await;
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, |_| {}).await;

    // Act: a question at 30° is at cosine 0.866 < 0.90 from the first
    // centroid, but 0.934 from the moved one (20.96° away): it joins only if
    // the move was stored.
    app.ingest_ok(json!([asked(
        a,
        &clock.ago_h(1),
        "How can I change my address?",
        Some(json!([0.866_025_4, 0.5, 0.0]))
    )]))
    .await;

    // Assert
    let got = app.analytics("/trending").await;
    assert_eq!(
        summary(&got),
        vec![("Change my e-mail".to_string(), 3, 3)],
        "{got}"
    );
}

#[tokio::test]
async fn an_embedding_of_another_dimension_is_refused_for_that_assistant_only() {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    app.ingest_ok(json!([asked(
        a,
        &clock.ago_h(2),
        "q1",
        Some(json!([1.0, 0.0, 0.0]))
    )]))
    .await;

    let (status, body) = app
        .ingest_json(json!([
            asked(a, &clock.ago_h(1), "q2", Some(json!([1.0, 0.0]))),
            asked(b, &clock.ago_h(1), "q3", Some(json!([1.0, 0.0]))),
        ]))
        .await;

    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(
        body["accepted"],
        json!(1),
        "the other assistant's 2-d embedding is fine"
    );
    assert_eq!(body["rejected"][0]["index"], json!(0));
    assert_eq!(
        body["rejected"][0]["error"],
        json!(
            "question_embedding: has 2 dimensions, but this assistant's embeddings have 3; one assistant's questions must be embedded by one model"
        )
    );
    // Nothing of the refused event was stored.
    let cache = app.analytics(&format!("/cache?assistant_id={a}")).await;
    assert_eq!(cache["total_requests"], json!(1));
}

#[tokio::test]
async fn trending_lists_the_ten_latest_phrasings_when_asked() {
    // Arrange: one labelled topic asked in 12 phrasings, an hour apart, the
    // phrasing "p3" asked again last of all.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    let mut events: Vec<Value> = (0..12)
        .map(|i| {
            with(
                interaction(a, "s", &clock.ago_h(20 - i)),
                json!({"topic": "Billing", "question": format!("p{i}")}),
            )
        })
        .collect();
    events.push(with(
        interaction(a, "s", &clock.ago_min(5)),
        json!({"topic": "Billing", "question": "p3"}),
    ));
    app.ingest_ok(Value::Array(events)).await;

    // Act
    let plain = app.analytics("/trending").await;
    let with_phrasings = app.analytics("/trending?phrasings=true").await;
    let windowed = app.analytics("/trending?phrasings=1&days=1").await;
    let (status, bad) = app.get("/api/v1/analytics/trending?phrasings=maybe").await;

    // Assert: latest first — p3 (5 min ago), then p11 (9 h ago) down to p3's
    // neighbours; p0 and p1 (the two oldest after p3 moved up) fall out: 10 listed.
    let expected = json!(["p3", "p11", "p10", "p9", "p8", "p7", "p6", "p5", "p4", "p2"]);
    assert!(
        plain[0].get("recent_phrasings").is_none(),
        "only on request: {plain}"
    );
    assert_eq!(with_phrasings[0]["recent_phrasings"], expected);
    assert_eq!(
        windowed[0]["recent_phrasings"], expected,
        "the windowed scan agrees"
    );
    assert_eq!(with_phrasings[0]["variation_count"], json!(12));
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["detail"][0]["type"], json!("bool_parsing"));
}
