//! `GET /api/v1/analytics/users` (`api.md`, UserStat).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Clock, TestApp, id, interaction, new_id, user, with};

fn row(user: Uuid, email: &str, full_name: &str, tokens: i64, count: i64, last: &str) -> Value {
    json!({
        "user_id": user,
        "email": email,
        "full_name": full_name,
        "total_tokens": tokens,
        "interaction_count": count,
        "last_active": last,
    })
}

#[tokio::test]
async fn users_rank_by_tokens_then_interactions_then_id_with_registry_fallbacks() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let ada = new_id();
    let grace = id("20000000-0000-4000-8000-000000000000");
    let stranger = id("10000000-0000-4000-8000-000000000000"); // never registered
    let veteran = new_id();
    let by = |assistant, person: Option<Uuid>, ts: String, input: i64, output: i64| {
        with(
            interaction(assistant, "s", &ts),
            json!({"user_id": person, "input_tokens": input, "output_tokens": output}),
        )
    };
    app.ingest_ok(json!([
        user(ada, "ada@example.com", "Ada Lovelace"),
        {"type": "user", "id": grace, "email": "grace@example.com"},
        user(veteran, "old@example.com", "Old Timer"),
        // Ada: 150 + 200 = 350 tokens in 2 interactions, last 1 h ago.
        by(a, Some(ada), clock.ago_h(1), 100, 50),
        by(a, Some(ada), clock.ago_h(3), 200, 0),
        // Grace: 350 tokens in 1 → after Ada (fewer interactions); full_name unknown → "".
        by(b, Some(grace), clock.ago_h(2), 300, 50),
        // The stranger: 350 in 1, like Grace → by id, "10000000-…" before "20000000-…".
        by(a, Some(stranger), clock.ago_h(5), 350, 0),
        // 40 days ago: outside the default 30 days.
        by(a, Some(veteran), clock.ago_d(40), 10_000, 0),
        // No user: not counted.
        by(a, None, clock.ago_h(1), 99_999, 0),
    ]))
    .await;
    let ada_row = row(
        ada,
        "ada@example.com",
        "Ada Lovelace",
        350,
        2,
        &clock.ago_h(1),
    );
    let grace_row = row(grace, "grace@example.com", "", 350, 1, &clock.ago_h(2));
    let stranger_row = row(stranger, "", "", 350, 1, &clock.ago_h(5));
    let veteran_row = row(
        veteran,
        "old@example.com",
        "Old Timer",
        10_000,
        1,
        &clock.ago_d(40),
    );
    let cases = [
        (
            String::new(),
            json!([ada_row, stranger_row, grace_row]),
            "every assistant, 30 days",
        ),
        (String::from("?limit=1"), json!([ada_row]), "limit 1"),
        (
            format!("?assistant_id={a}"),
            json!([ada_row, stranger_row]),
            "assistant A",
        ),
        (
            format!("?assistant_id={b}"),
            json!([grace_row]),
            "assistant B",
        ),
        (
            String::from("?days=60"),
            json!([veteran_row, ada_row, stranger_row, grace_row]),
            "60 days",
        ),
        (
            String::from("?days=1&limit=2"),
            json!([ada_row, stranger_row]),
            "1 day, limit 2",
        ),
        (
            format!("?assistant_id={}", new_id()),
            json!([]),
            "an assistant never seen",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let got = app.analytics(&format!("/users{query}")).await;

        // Assert
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn users_without_any_interaction_in_the_window_are_an_empty_list() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    app.ingest_ok(json!([with(
        interaction(new_id(), "s", &clock.ago_d(2)),
        json!({"user_id": new_id(), "input_tokens": 5})
    )]))
    .await;

    // Act
    let got = app.analytics("/users?days=1").await;

    // Assert
    assert_eq!(got, json!([]));
}
