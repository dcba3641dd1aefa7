//! `GET /api/v1/analytics/sessions` (`api.md`, SessionDistribution).

use serde_json::{Value, json};

use crate::helpers::{Clock, TestApp, interaction, new_id};

fn rows(single: (i64, f64), normal: (i64, f64), power: (i64, f64)) -> Value {
    json!([
        {"session_type": "Single Question", "session_count": single.0, "percentage": single.1},
        {"session_type": "Normal (2-5)", "session_count": normal.0, "percentage": normal.1},
        {"session_type": "Power User (5+)", "session_count": power.0, "percentage": power.1},
    ])
}

#[tokio::test]
async fn sessions_are_bucketed_by_their_interactions_in_the_window_per_assistant() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let mut events = Vec::new();
    let mut add = |assistant, session: &str, n: usize, days_ago: i64| {
        for i in 0..n {
            events.push(interaction(
                assistant,
                session,
                &clock.ago_s(days_ago * 86_400 + 60 + i as i64),
            ));
        }
    };
    add(a, "s1", 1, 0); // A: 1 → Single
    add(b, "s1", 1, 1); // the same session id under B: sessions are ids alone
    add(a, "s2", 2, 1); // 2 → Normal (lower bound)
    add(a, "s3", 5, 2); // 5 → Normal (upper bound)
    add(a, "s4", 6, 3); // 6 → Power (lower bound)
    add(a, "s5", 4, 0); // 4 in the window ...
    add(a, "s5", 3, 8); // ... and 3 more 8 days ago
    add(b, "s6", 1, 0); // B: 1 → Single
    app.ingest_ok(json!(events)).await;
    let cases = [
        // A, 7 days: s1 (1), s2 (2), s3 (5), s4 (6), s5 (4) → 5 sessions: 1/5, 3/5, 1/5.
        (
            format!("?assistant_id={a}"),
            rows((1, 20.0), (3, 60.0), (1, 20.0)),
            "assistant A, 7 days",
        ),
        // All, 7 days: s1 (2), s2, s3, s4, s5 (4), s6 (1) → 6 sessions:
        // Single 1/6 = 16.666… → 16.67, Normal 4/6 = 66.666… → 66.67, Power 1/6 → 16.67.
        (
            String::new(),
            rows((1, 16.67), (4, 66.67), (1, 16.67)),
            "all assistants, 7 days",
        ),
        // A, 9 days: s5 now has 7 → Power: Single 1/5, Normal 2/5, Power 2/5.
        (
            format!("?days=9&assistant_id={a}"),
            rows((1, 20.0), (2, 40.0), (2, 40.0)),
            "assistant A, 9 days",
        ),
        // B, 1 day: s6 only (B's s1 interaction is a day and a minute old).
        (
            format!("?assistant_id={b}&days=1"),
            rows((1, 100.0), (0, 0.0), (0, 0.0)),
            "assistant B, 1 day",
        ),
        (
            format!("?assistant_id={}", new_id()),
            json!([]),
            "an assistant never seen",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/sessions{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn sessions_of_an_empty_window_are_an_empty_list() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let got = app.analytics("/sessions").await;

    // Assert
    assert_eq!(got, json!([]));
}
