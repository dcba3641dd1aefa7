//! `GET /api/v1/analytics/freshness` (`api.md`, DocumentFreshness).

use serde_json::json;

use crate::helpers::{Clock, TestApp, document, interaction, new_id, with};

#[tokio::test]
async fn freshness_buckets_current_documents_by_their_update_time() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let wiki = new_id();
    app.ingest_ok(json!([
        // Fresh (< 30 days): 3.
        document(new_id(), wiki, "one-day.pdf", &clock.ago_d(1)),
        document(new_id(), wiki, "two-days.pdf", &clock.ago_d(2)),
        document(new_id(), wiki, "29-days.pdf", &clock.ago_d(29)),
        // Aging (30–90 days): 2.
        document(new_id(), wiki, "31-days.pdf", &clock.ago_d(31)),
        document(new_id(), wiki, "89-days.pdf", &clock.ago_d(89)),
        // Stale (> 90 days or unknown): 2.
        document(new_id(), wiki, "91-days.pdf", &clock.ago_d(91)),
        {"type": "document", "id": new_id(), "connector_id": wiki, "file_name": "undated.pdf"},
        // Deleted: not current, not counted.
        with(document(new_id(), wiki, "deleted.pdf", &clock.ago_d(1)), json!({"deleted": true})),
        // Known only from a retrieval (never registered): not counted.
        with(interaction(new_id(), "s", &clock.ago_min(5)), json!({"retrieved_document_ids": [new_id()]})),
    ]))
    .await;

    // Act
    let got = app.analytics("/freshness").await;

    // Assert: 3/7 = 42.857… → 42.86; 2/7 = 28.571… → 28.57.
    assert_eq!(
        got,
        json!([
            {"freshness_category": "Fresh (<30d)", "doc_count": 3, "percentage": 42.86},
            {"freshness_category": "Aging (30-90d)", "doc_count": 2, "percentage": 28.57},
            {"freshness_category": "Stale (>90d)", "doc_count": 2, "percentage": 28.57},
        ])
    );
}

#[tokio::test]
async fn freshness_lists_all_three_rows_even_when_some_are_empty() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    app.ingest_ok(json!([document(
        new_id(),
        new_id(),
        "only.pdf",
        &clock.ago_d(40)
    )]))
    .await;

    // Act
    let got = app.analytics("/freshness").await;

    // Assert
    assert_eq!(
        got,
        json!([
            {"freshness_category": "Fresh (<30d)", "doc_count": 0, "percentage": 0.0},
            {"freshness_category": "Aging (30-90d)", "doc_count": 1, "percentage": 100.0},
            {"freshness_category": "Stale (>90d)", "doc_count": 0, "percentage": 0.0},
        ])
    );
}

#[tokio::test]
async fn freshness_without_any_document_is_an_empty_list() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let got = app.analytics("/freshness").await;

    // Assert
    assert_eq!(got, json!([]));
}
