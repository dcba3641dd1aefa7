//! `GET /api/v1/analytics/sync` (`api.md`, ConnectorSyncRate).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Clock, TestApp, connector, document, id, new_id, sync};

fn row(
    connector: Uuid,
    name: &str,
    rate: f64,
    total: i64,
    ok: i64,
    failed: i64,
    avg: Option<f64>,
) -> Value {
    json!({
        "connector_id": connector,
        "connector_name": name,
        "success_rate": rate,
        "total_syncs": total,
        "successful_syncs": ok,
        "failed_syncs": failed,
        "avg_sync_duration": avg,
    })
}

#[tokio::test]
async fn sync_rates_list_every_registered_connector_and_unregistered_ones_with_syncs_in_the_window()
{
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let confluence = new_id();
    let drive_b = id("b0000000-0000-4000-8000-000000000000");
    let drive_a = id("a0000000-0000-4000-8000-000000000000");
    let stranger = id("30000000-0000-4000-8000-000000000000"); // never registered
    let ancient = id("50000000-0000-4000-8000-000000000000"); // never registered, old syncs
    let mentioned = new_id(); // only named by a document
    app.ingest_ok(json!([
        connector(confluence, "Confluence"),
        connector(drive_b, "Drive"),
        connector(drive_a, "Drive"),
        document(new_id(), mentioned, "x.pdf", &clock.ago_d(1)),
        // Confluence, last 7 days: success 10.0 s, failure (no duration), partial 20.5 s.
        sync(confluence, "success", &clock.ago_h(1), Some(10.0)),
        sync(confluence, "failure", &clock.ago_h(2), None),
        sync(confluence, "partial", &clock.ago_h(3), Some(20.5)),
        // Confluence, 8 days ago.
        sync(confluence, "success", &clock.ago_d(8), Some(1.0)),
        // Drive (b…), 10 days ago only.
        sync(drive_b, "failure", &clock.ago_d(10), Some(3.0)),
        // The stranger: one success of 0.015 s → mean 0.015 → 2 decimals: 0.01 (the double
        // nearest 0.015 is below it; (x × 100).round() / 100 would give 0.02).
        sync(stranger, "success", &clock.ago_h(2), Some(0.015)),
        // The ancient stranger: 20 days ago only.
        sync(ancient, "success", &clock.ago_d(20), Some(2.0)),
    ]))
    .await;
    let stranger_row = row(stranger, &stranger.to_string(), 100.0, 1, 1, 0, Some(0.01));
    // 1 of 3 → 33.333… → 33.33; durations (10 + 20.5)/2 = 15.25.
    let confluence_7d = row(confluence, "Confluence", 33.33, 3, 1, 1, Some(15.25));
    // A connector whose syncs are all older than the window: zeros, rate 0, no duration.
    let drive_a_zero = row(drive_a, "Drive", 0.0, 0, 0, 0, None);
    let drive_b_zero = row(drive_b, "Drive", 0.0, 0, 0, 0, None);
    let cases = [
        // By name ("30000000-…" < "Confluence" < "Drive"), then id (a… < b…).
        (
            String::new(),
            json!([stranger_row, confluence_7d, drive_a_zero, drive_b_zero]),
            "7 days",
        ),
        (
            String::from("?days=1"),
            json!([stranger_row, confluence_7d, drive_a_zero, drive_b_zero]),
            "1 day",
        ),
        (
            String::from("?days=14"),
            json!([
                stranger_row,
                // 2 of 4 → 50.0; durations (10 + 20.5 + 1)/3 = 10.5.
                row(confluence, "Confluence", 50.0, 4, 2, 1, Some(10.5)),
                drive_a_zero,
                row(drive_b, "Drive", 0.0, 1, 0, 1, Some(3.0)),
            ]),
            "14 days",
        ),
        (
            String::from("?days=30"),
            json!([
                stranger_row,
                row(ancient, &ancient.to_string(), 100.0, 1, 1, 0, Some(2.0)),
                row(confluence, "Confluence", 50.0, 4, 2, 1, Some(10.5)),
                drive_a_zero,
                row(drive_b, "Drive", 0.0, 1, 0, 1, Some(3.0)),
            ]),
            "30 days",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/sync{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn sync_rates_without_connectors_are_an_empty_list() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let got = app.analytics("/sync").await;

    // Assert
    assert_eq!(got, json!([]));
}
