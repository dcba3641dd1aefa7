//! The live feed (`api.md`, Live feed): `/api/v1/ws` and the SSE stream.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{ADMIN_TOKEN, Clock, INGEST_TOKEN, TestApp, interaction, new_id};

const KEYS: [&str; 13] = [
    "ttft_percentiles",
    "step_breakdown",
    "cache_metrics",
    "session_distribution",
    "trending_topics",
    "topic_diversity",
    "assistant_costs",
    "document_utilization",
    "user_stats",
    "document_freshness",
    "reranking_impact",
    "connector_sync_rates",
    "generated_at",
];

fn ws_url(app: &TestApp, query: &str) -> String {
    format!(
        "{}/api/v1/ws{query}",
        app.address.replacen("http://", "ws://", 1)
    )
}

fn assert_snapshot(message: &Value) {
    assert_eq!(
        message["type"],
        json!("ADVANCED_ANALYTICS_STATS"),
        "{message}"
    );
    for key in KEYS {
        assert!(
            message["data"].get(key).is_some(),
            "the snapshot has no {key}: {message}"
        );
    }
}

#[tokio::test]
async fn the_websocket_refuses_a_missing_or_non_admin_token() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [
        (String::new(), StatusCode::UNAUTHORIZED, "no token"),
        (
            String::from("?token=wrong-token-0123456789"),
            StatusCode::UNAUTHORIZED,
            "a wrong token",
        ),
        (
            format!("?token={INGEST_TOKEN}"),
            StatusCode::FORBIDDEN,
            "the ingest token",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let result = tokio_tungstenite::connect_async(ws_url(&app, &query)).await;

        // Assert
        match result {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), expected.as_u16(), "{case}");
            }
            Err(other) => panic!("{case}: unexpected error {other}"),
            Ok(_) => panic!("{case}: the socket was accepted"),
        }
    }
}

#[tokio::test]
async fn the_websocket_sends_a_snapshot_at_once_and_answers_ping_with_pong() {
    // Arrange
    let app = TestApp::spawn().await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws_url(&app, &format!("?token={ADMIN_TOKEN}")))
            .await
            .expect("the admin token must open the socket");

    // Act
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("no snapshot within 5 s of connecting")
        .expect("the socket closed")
        .expect("socket error");
    socket.send(Message::text("ping")).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message
                && text.as_str() == "pong"
            {
                return true;
            }
        }
        false
    })
    .await;

    // Assert
    let text = first.into_text().expect("the snapshot is not text");
    assert_snapshot(&serde_json::from_str(text.as_str()).expect("the snapshot is not JSON"));
    assert_eq!(pong, Ok(true), "no pong within 5 s");
}

#[tokio::test]
async fn a_websocket_subscription_scopes_the_snapshots_to_one_assistant() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    app.ingest_ok(json!([
        interaction(a, "s", &clock.ago_min(1)),
        interaction(b, "s", &clock.ago_min(1)),
        interaction(b, "s", &clock.ago_min(1)),
    ]))
    .await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws_url(&app, &format!("?token={ADMIN_TOKEN}")))
            .await
            .expect("the admin token must open the socket");

    // Act
    socket
        .send(Message::text(
            json!({"type": "subscribe", "assistant_id": a}).to_string(),
        ))
        .await
        .unwrap();
    let scoped = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if value["data"]["cache_metrics"]["total_requests"] == json!(1) {
                return Some(value);
            }
        }
        None
    })
    .await;

    // Assert
    let snapshot = scoped
        .ok()
        .flatten()
        .expect("no snapshot scoped to the assistant (1 interaction) within 10 s");
    assert_snapshot(&snapshot);
}

#[tokio::test]
async fn the_sse_stream_needs_the_admin_token_and_sends_named_snapshots() {
    // Arrange
    let app = TestApp::spawn().await;
    let (status, _) = app.get_with_token("/api/v1/analytics/stream", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the stream without a token"
    );

    // Act
    let mut response = app
        .client
        .get(app.url("/api/v1/analytics/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let first_event = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(end) = buffer.find("\n\n") {
                return Some(buffer[..end].to_string());
            }
        }
        None
    })
    .await;

    // Assert
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type:?}"
    );
    let event = first_event.ok().flatten().expect("no event within 5 s");
    assert!(
        event
            .lines()
            .any(|l| l == "event: ADVANCED_ANALYTICS_STATS"),
        "the event is not named ADVANCED_ANALYTICS_STATS: {event:?}"
    );
    let data: String = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    let data: Value = serde_json::from_str(&data).expect("the event data is not JSON");
    for key in KEYS {
        assert!(
            data.get(key).is_some(),
            "the event data has no {key}: {data}"
        );
    }
}
