//! `GET /api/v1/analytics/utilization` (`api.md`, DocumentUtilization).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Clock, TestApp, connector, document, id, interaction, new_id, with};

fn row(
    file_name: &str,
    connector_name: &str,
    count: i64,
    last: Option<&str>,
    status: &str,
) -> Value {
    json!({
        "file_name": file_name,
        "connector_name": connector_name,
        "retrieval_count": count,
        "last_retrieved": last,
        "status": status,
    })
}

fn retrieving(assistant: Uuid, ts: &str, documents: &[Uuid]) -> Value {
    with(
        interaction(assistant, "s", ts),
        json!({"retrieved_document_ids": documents}),
    )
}

#[tokio::test]
async fn utilization_counts_retrievals_per_document_with_status_listings_and_assistant_scope() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let (wiki, drive) = (new_id(), new_id()); // drive is never registered
    let hot = new_id();
    let ten = new_id();
    let a_warm = new_id();
    let b_warm = new_id();
    let unregistered = id("10000000-0000-4000-8000-000000000000");
    let deleted = new_id();
    let c_cold = new_id();
    let z_cold = new_id();
    let old = new_id();
    let gone = new_id();
    let mut events = vec![
        connector(wiki, "Confluence"),
        document(hot, wiki, "hot.pdf", &clock.ago_d(1)),
        document(ten, wiki, "ten.pdf", &clock.ago_d(1)),
        json!({"type": "document", "id": a_warm, "file_name": "a-warm.pdf"}),
        document(b_warm, drive, "b-warm.pdf", &clock.ago_d(1)),
        with(
            document(deleted, wiki, "deleted.pdf", &clock.ago_d(1)),
            json!({"deleted": true}),
        ),
        document(c_cold, wiki, "c-cold.pdf", &clock.ago_d(1)),
        document(z_cold, wiki, "z-cold.pdf", &clock.ago_d(1)),
        document(old, wiki, "old.pdf", &clock.ago_d(1)),
        with(
            document(gone, wiki, "gone.pdf", &clock.ago_d(1)),
            json!({"deleted": true}),
        ),
    ];
    // hot: 11 retrievals by A (1 h … 11 h ago) → "hot" (> 10); ten: the first 10 of them →
    // "warm" (10 is not > 10).
    for hour in 1..=11 {
        let docs = if hour <= 10 {
            vec![hot, ten]
        } else {
            vec![hot]
        };
        events.push(retrieving(a, &clock.ago_h(hour), &docs));
    }
    events.extend([
        // a-warm: A ×3, once listed twice in the same interaction (counts once).
        retrieving(a, &clock.ago_h(2), &[a_warm, a_warm]),
        retrieving(a, &clock.ago_h(3), &[a_warm]),
        retrieving(a, &clock.ago_h(4), &[a_warm]),
        // b-warm: A ×2, B ×1 (the latest).
        retrieving(a, &clock.ago_h(5), &[b_warm]),
        retrieving(a, &clock.ago_h(6), &[b_warm]),
        retrieving(b, &clock.ago_min(30), &[b_warm]),
        // A document never registered, by A.
        retrieving(a, &clock.ago_h(7), &[unregistered]),
        // A deleted document retrieved in the window, by B.
        retrieving(b, &clock.ago_h(8), &[deleted]),
        // old.pdf: only 40 days ago, by A.
        retrieving(a, &clock.ago_d(40), &[old]),
    ]);
    app.ingest_ok(json!(events)).await;

    let (h1, h2, h5, h7, h8) = (
        clock.ago_h(1),
        clock.ago_h(2),
        clock.ago_h(5),
        clock.ago_h(7),
        clock.ago_h(8),
    );
    let (m30, d40) = (clock.ago_min(30), clock.ago_d(40));
    let unregistered_name = unregistered.to_string();
    let drive_name = drive.to_string();
    let hot_row = row("hot.pdf", "Confluence", 11, Some(&h1), "hot");
    let ten_row = row("ten.pdf", "Confluence", 10, Some(&h1), "warm");
    let a_warm_row = row("a-warm.pdf", "", 3, Some(&h2), "warm");
    // b-warm's connector is not registered: its id as text.
    let b_warm_row = row("b-warm.pdf", &drive_name, 3, Some(&m30), "warm");
    // An unregistered document: its id as text, connector "".
    let unregistered_row = row(&unregistered_name, "", 1, Some(&h7), "warm");
    let deleted_row = row("deleted.pdf", "Confluence", 1, Some(&h8), "warm");
    let c_cold_row = row("c-cold.pdf", "Confluence", 0, None, "cold");
    let old_cold_row = row("old.pdf", "Confluence", 0, Some(&d40), "cold");
    let z_cold_row = row("z-cold.pdf", "Confluence", 0, None, "cold");
    let cases = [
        // Count desc, then file name ("10000000-…" < "deleted.pdf"); deleted documents
        // retrieved in the window are listed.
        (
            String::new(),
            json!([
                hot_row,
                ten_row,
                a_warm_row,
                b_warm_row,
                unregistered_row,
                deleted_row
            ]),
            "default listing, 30 days",
        ),
        (String::from("?status=hot"), json!([hot_row]), "hot only"),
        (
            String::from("?status=warm"),
            json!([
                ten_row,
                a_warm_row,
                b_warm_row,
                unregistered_row,
                deleted_row
            ]),
            "warm only",
        ),
        // Registered, current, not retrieved in the window; by file name. old.pdf's
        // last_retrieved is its retrieval of 40 days ago; gone.pdf is deleted.
        (
            String::from("?status=cold"),
            json!([c_cold_row, old_cold_row, z_cold_row]),
            "cold",
        ),
        (
            String::from("?limit=2"),
            json!([hot_row, ten_row]),
            "limit 2",
        ),
        (
            String::from("?status=cold&limit=1"),
            json!([c_cold_row]),
            "cold, limit 1",
        ),
        (
            String::from("?days=60"),
            json!([
                hot_row,
                ten_row,
                a_warm_row,
                b_warm_row,
                unregistered_row,
                deleted_row,
                row("old.pdf", "Confluence", 1, Some(&d40), "warm"),
            ]),
            "60 days",
        ),
        // A's retrievals only: b-warm 2 (last by A 5 h ago); deleted.pdf was B's.
        (
            format!("?assistant_id={a}"),
            json!([
                hot_row,
                ten_row,
                a_warm_row,
                row("b-warm.pdf", &drive_name, 2, Some(&h5), "warm"),
                unregistered_row
            ]),
            "assistant A",
        ),
        (
            format!("?assistant_id={a}&status=cold"),
            json!([c_cold_row, old_cold_row, z_cold_row]),
            "assistant A, cold",
        ),
        (
            format!("?assistant_id={b}"),
            json!([
                row("b-warm.pdf", &drive_name, 1, Some(&m30), "warm"),
                deleted_row
            ]),
            "assistant B",
        ),
        // Cold for B: every current document B did not retrieve, last_retrieved by B (never).
        (
            format!("?status=cold&assistant_id={b}"),
            json!([
                row("a-warm.pdf", "", 0, None, "cold"),
                c_cold_row,
                row("hot.pdf", "Confluence", 0, None, "cold"),
                row("old.pdf", "Confluence", 0, None, "cold"),
                row("ten.pdf", "Confluence", 0, None, "cold"),
                z_cold_row,
            ]),
            "assistant B, cold",
        ),
        (
            format!("?assistant_id={b}&status=hot"),
            json!([]),
            "assistant B, hot: none",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/utilization{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn utilization_groups_by_document_id_not_by_file_name() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let wiki = new_id();
    let first = id("00000000-0000-4000-8000-000000000001");
    let second = id("00000000-0000-4000-8000-000000000002");
    app.ingest_ok(json!([
        connector(wiki, "Confluence"),
        document(second, wiki, "dup.pdf", &clock.ago_d(1)),
        document(first, wiki, "dup.pdf", &clock.ago_d(1)),
        retrieving(new_id(), &clock.ago_h(1), &[second]),
        retrieving(new_id(), &clock.ago_h(2), &[first]),
    ]))
    .await;

    // Act
    let got = app.analytics("/utilization").await;

    // Assert: two rows of 1, not one of 2; same count and name → by id.
    assert_eq!(
        got,
        json!([
            row("dup.pdf", "Confluence", 1, Some(&clock.ago_h(2)), "warm"),
            row("dup.pdf", "Confluence", 1, Some(&clock.ago_h(1)), "warm"),
        ])
    );
}

#[tokio::test]
async fn utilization_without_retrievals_is_an_empty_list_and_cold_lists_registered_documents() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let wiki = new_id();
    app.ingest_ok(json!([document(
        new_id(),
        wiki,
        "idle.pdf",
        &clock.ago_d(3)
    )]))
    .await;

    // Act
    let default = app.analytics("/utilization").await;
    let cold = app.analytics("/utilization?status=cold").await;

    // Assert: the connector was never registered → its id as text.
    assert_eq!(default, json!([]));
    assert_eq!(
        cold,
        json!([row("idle.pdf", &wiki.to_string(), 0, None, "cold")])
    );
}
