//! The live feed (`api.md`, Live feed): `/api/v1/ws` and the SSE stream.

use std::time::Duration;

use futures::{SinkExt, Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::helpers::{
    ADMIN_TOKEN, Clock, INGEST_TOKEN, TestApp, assistant, connector, document, interaction,
    metric_sum, new_id, parse_json_exact, sync, user, with,
};

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

// ---------------------------------------------------------------------------
// Harness for the tests below
// ---------------------------------------------------------------------------

/// The metric names of `telemetry.rs` as `/metrics` shows them.
const WS_CLIENTS: &str = "ragpulse_ws_clients";
const SSE_CLIENTS: &str = "ragpulse_sse_clients";
const COMPUTATIONS: &str = "ragpulse_broadcast_computations_total";
const SLOW_DISCONNECTS: &str = "ragpulse_slow_client_disconnects_total";
const SNAPSHOTS_SENT: &str = "ragpulse_snapshots_sent_total";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket with the admin token in the query, asserting the upgrade.
async fn connect(app: &TestApp) -> Socket {
    let (socket, response) =
        tokio_tungstenite::connect_async(ws_url(app, &format!("?token={ADMIN_TOKEN}")))
            .await
            .expect("the admin token must open the socket");
    assert_eq!(response.status().as_u16(), 101, "the upgrade was refused");
    socket
}

/// The next `ADVANCED_ANALYTICS_STATS` message within `within`, skipping other
/// messages (pongs, pings); panics naming `what` on timeout, close or error.
async fn next_snapshot<S>(socket: &mut S, within: Duration, what: &str) -> Value
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let deadline = Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: no snapshot within {within:?}"));
        match message {
            None => panic!("{what}: the socket ended"),
            Some(Err(error)) => panic!("{what}: socket error: {error}"),
            Some(Ok(Message::Close(frame))) => {
                panic!("{what}: the server closed the socket: {frame:?}")
            }
            Some(Ok(Message::Text(text))) => {
                let value = parse_json_exact(text.as_str())
                    .unwrap_or_else(|| panic!("{what}: a message is not JSON: {text}"));
                if value["type"] == json!("ADVANCED_ANALYTICS_STATS") {
                    assert_snapshot(&value);
                    return value;
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

/// The snapshot's `data` without `generated_at`, which differs from call to call.
fn data_without_generated_at(snapshot: &Value) -> Value {
    without_generated_at(snapshot["data"].clone())
}

fn without_generated_at(mut body: Value) -> Value {
    let removed = body
        .as_object_mut()
        .and_then(|object| object.remove("generated_at"));
    assert!(removed.is_some(), "generated_at is missing: {body}");
    body
}

/// `/advanced{query}` without `generated_at`.
async fn advanced(app: &TestApp, query: &str) -> Value {
    without_generated_at(app.analytics(&format!("/advanced{query}")).await)
}

/// The value of one metric on `/metrics`, asserting that the metric is exposed
/// (so a renamed metric fails instead of reading as 0).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let (status, text, _) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK, "GET /metrics answered {status}");
    assert!(
        text.lines().any(|line| line
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with([' ', '{']))),
        "/metrics has no {name}"
    );
    metric_sum(&text, name, &[])
}

/// Polls `name` until it equals `expected`; panics after `within` with the last value.
async fn wait_for_metric(app: &TestApp, name: &str, expected: f64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let value = metric(app, name).await;
        if value == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{name} is {value}, not {expected}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events whose every `/advanced` window stays the same while "now" moves by
/// minutes: interactions hours ago (inside 24 h, 7 d and 30 d), a document
/// updated days ago, a sync an hour ago. Assistant `a` has two interactions in
/// one session, `b` one, so the scopes differ in every metric.
fn stable_events(clock: &Clock, a: Uuid, b: Uuid) -> Value {
    let (ada, grace, wiki, guide) = (new_id(), new_id(), new_id(), new_id());
    json!([
        assistant(a, "Alpha"),
        assistant(b, "Beta"),
        user(ada, "ada@example.com", "Ada Lovelace"),
        user(grace, "grace@example.com", "Grace Hopper"),
        connector(wiki, "Wiki"),
        document(guide, wiki, "guide.pdf", &clock.ago_d(2)),
        sync(wiki, "success", &clock.ago_h(1), Some(5.0)),
        with(
            interaction(a, "sa", &clock.ago_h(3)),
            json!({
                "user_id": ada, "question": "How do I reset my password?",
                "ttft_s": 0.5, "total_duration_s": 2.0, "cache_hit": true,
                "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01,
                "steps": [
                    {"name": "retrieval", "duration_s": 0.2},
                    {"name": "synthesis", "duration_s": 1.5, "input_tokens": 100, "output_tokens": 20}
                ],
                "retrieved_document_ids": [guide],
                "rerank": {"score_improvement": 0.2, "position_change": 1.0}
            })
        ),
        with(
            interaction(a, "sa", &clock.ago_h(2)),
            json!({
                "user_id": ada, "question": "How can I reset my password?",
                "ttft_s": 0.7, "total_duration_s": 2.5, "cache_hit": false,
                "input_tokens": 150, "output_tokens": 25, "cost_usd": 0.02,
                "steps": [{"name": "retrieval", "duration_s": 0.3}],
            })
        ),
        with(
            interaction(b, "sb", &clock.ago_h(4)),
            json!({
                "user_id": grace, "question": "Where is my invoice?",
                "ttft_s": 1.5, "total_duration_s": 3.0, "cache_hit": false,
                "input_tokens": 300, "output_tokens": 30, "cost_usd": 0.03,
                "steps": [{"name": "guardrail", "duration_s": 0.1}],
                "retrieved_document_ids": [guide],
                "rerank": {"score_improvement": 0.4}
            })
        ),
    ])
}

/// Reads an SSE body: the next event's name and JSON data, skipping comments
/// (keep-alives); `buffer` keeps what arrived after it.
async fn next_sse_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    within: Duration,
    what: &str,
) -> (String, Value) {
    let deadline = Instant::now() + within;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim_start().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            if data.is_empty() {
                continue;
            }
            let value = parse_json_exact(&data)
                .unwrap_or_else(|| panic!("{what}: the event data is not JSON: {data}"));
            return (name, value);
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("{what}: no event within {within:?}"))
            .unwrap_or_else(|e| panic!("{what}: the stream failed: {e}"))
            .unwrap_or_else(|| panic!("{what}: the stream ended"));
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Opens the SSE stream with `query` (token and scope in the query), asserting 200.
async fn open_sse(app: &TestApp, query: &str) -> reqwest::Response {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/analytics/stream{query}")))
        .send()
        .await
        .expect("the SSE request failed");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the stream {query} was refused"
    );
    response
}

// ---------------------------------------------------------------------------
// Snapshots: at once, then one per tick, equal to /advanced
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_first_snapshot_comes_at_once_without_waiting_for_a_tick() {
    // Arrange: the default 10 s interval, so waiting for a tick would show.
    let app = TestApp::spawn().await;

    // Act
    let started = Instant::now();
    let mut first = connect(&app).await;
    next_snapshot(&mut first, Duration::from_secs(5), "the first client").await;
    let first_after = started.elapsed();
    // A second listener of the same scope gets the latest snapshot, not the next tick's.
    let joined = Instant::now();
    let mut second = connect(&app).await;
    next_snapshot(&mut second, Duration::from_secs(5), "the second client").await;
    let second_after = joined.elapsed();
    let computations = metric(&app, COMPUTATIONS).await;

    // Assert
    assert!(
        first_after < Duration::from_secs(3),
        "the first snapshot took {first_after:?} (the tick is 10 s)"
    );
    assert!(
        second_after < Duration::from_secs(2),
        "a client joining a listened scope waited {second_after:?} for the latest snapshot"
    );
    assert_eq!(
        computations, 1.0,
        "the second client must reuse the scope's snapshot, not compute another"
    );
}

#[tokio::test]
async fn snapshots_follow_the_broadcast_interval() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let mut socket = connect(&app).await;
    let first = next_snapshot(&mut socket, Duration::from_secs(5), "the first snapshot").await;

    // Act: listen for 3.5 s after the first snapshot.
    let window = Duration::from_millis(3_500);
    let until = Instant::now() + window;
    let mut generated = vec![first["data"]["generated_at"].as_str().unwrap().to_string()];
    while let Ok(snapshot) = tokio::time::timeout_at(
        until,
        next_snapshot(&mut socket, Duration::from_secs(10), "a tick"),
    )
    .await
    {
        generated.push(
            snapshot["data"]["generated_at"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    // Assert: about 3 more (one per 1 s tick), not a flood, each newer than the last.
    let further = generated.len() - 1;
    assert!(
        (2..=5).contains(&further),
        "{further} snapshots in {window:?} after the first at a 1 s interval: {generated:?}"
    );
    // Not strictly newer: two ticks that land in the same wall-clock second with
    // unchanged data share `/advanced`'s one-second cache, and so its generated_at.
    assert!(
        generated.windows(2).all(|w| w[0] <= w[1]),
        "a tick's snapshot is older than the one before: {generated:?}"
    );
}

#[tokio::test]
async fn a_snapshot_carries_the_advanced_response_of_its_scope() {
    // Arrange: data ingested first and never after, with stable windows.
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    app.ingest_ok(stable_events(&clock, a, b)).await;
    let expected_all = advanced(&app, "").await;
    let expected_a = advanced(&app, &format!("?assistant_id={a}")).await;
    assert_ne!(
        expected_all, expected_a,
        "the fixture must give the two scopes different data"
    );
    let mut socket = connect(&app).await;

    // Act 1: the default scope is every assistant.
    let all = next_snapshot(
        &mut socket,
        Duration::from_secs(5),
        "the all-scope snapshot",
    )
    .await;

    // Assert 1
    assert_eq!(
        data_without_generated_at(&all),
        expected_all,
        "the default snapshot must equal GET /advanced"
    );

    // Act 2: switch to assistant A. Snapshots of the old scope may still be in flight.
    socket
        .send(Message::text(
            json!({"type": "subscribe", "assistant_id": a}).to_string(),
        ))
        .await
        .unwrap();
    let switched_within = Duration::from_secs(5);
    let deadline = Instant::now() + switched_within;
    let mut last = Value::Null;
    while data_without_generated_at_or_null(&last) != expected_a {
        assert!(
            Instant::now() < deadline,
            "no snapshot equal to /advanced?assistant_id=A within {switched_within:?} of subscribing; the last was {last}"
        );
        last = next_snapshot(&mut socket, switched_within, "after subscribing to A").await;
    }
    // Once switched, every later snapshot is A's.
    let later = [
        next_snapshot(&mut socket, Duration::from_secs(5), "A's next tick").await,
        next_snapshot(&mut socket, Duration::from_secs(5), "A's tick after").await,
    ];

    // Assert 2
    for (i, snapshot) in later.iter().enumerate() {
        assert_eq!(
            data_without_generated_at(snapshot),
            expected_a,
            "snapshot {i} after the switch is not assistant A's"
        );
    }

    // Act 3: back to every assistant.
    socket
        .send(Message::text(
            json!({"type": "subscribe", "assistant_id": null}).to_string(),
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + switched_within;
    let mut last = Value::Null;
    while data_without_generated_at_or_null(&last) != expected_all {
        assert!(
            Instant::now() < deadline,
            "no all-scope snapshot within {switched_within:?} of subscribing to null; the last was {last}"
        );
        last = next_snapshot(&mut socket, switched_within, "after subscribing to null").await;
    }
}

fn data_without_generated_at_or_null(snapshot: &Value) -> Value {
    if snapshot.is_null() {
        Value::Null
    } else {
        data_without_generated_at(snapshot)
    }
}

// ---------------------------------------------------------------------------
// SSE
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_sse_stream_takes_the_query_token_and_scopes_by_assistant_id() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    app.ingest_ok(stable_events(&clock, a, b)).await;
    let expected_a = advanced(&app, &format!("?assistant_id={a}")).await;
    let expected_all = advanced(&app, "").await;

    // Act
    let mut scoped = open_sse(&app, &format!("?token={ADMIN_TOKEN}&assistant_id={a}")).await;
    let mut all = open_sse(&app, &format!("?token={ADMIN_TOKEN}")).await;
    let (mut scoped_buffer, mut all_buffer) = (String::new(), String::new());
    let mut scoped_events = Vec::new();
    for _ in 0..2 {
        scoped_events.push(
            next_sse_event(
                &mut scoped,
                &mut scoped_buffer,
                Duration::from_secs(5),
                "the scoped stream",
            )
            .await,
        );
    }
    let (all_name, all_data) = next_sse_event(
        &mut all,
        &mut all_buffer,
        Duration::from_secs(5),
        "the all-scope stream",
    )
    .await;

    // Assert: each event is named, and its data is /advanced of the stream's scope.
    for (i, (name, data)) in scoped_events.into_iter().enumerate() {
        assert_eq!(name, "ADVANCED_ANALYTICS_STATS", "scoped event {i}");
        assert_eq!(
            without_generated_at(data),
            expected_a,
            "scoped event {i} is not /advanced?assistant_id=A"
        );
    }
    assert_eq!(all_name, "ADVANCED_ANALYTICS_STATS");
    assert_eq!(
        without_generated_at(all_data),
        expected_all,
        "the unscoped stream is not /advanced"
    );
}

#[tokio::test]
async fn the_sse_stream_sends_one_event_per_tick() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let mut stream = open_sse(&app, &format!("?token={ADMIN_TOKEN}")).await;
    let mut buffer = String::new();
    let (_, first) = next_sse_event(
        &mut stream,
        &mut buffer,
        Duration::from_secs(5),
        "the stream",
    )
    .await;

    // Act: listen for 3.5 s after the first event.
    let window = Duration::from_millis(3_500);
    let until = Instant::now() + window;
    let mut generated = vec![first["generated_at"].clone()];
    while let Ok((_, data)) = tokio::time::timeout_at(
        until,
        next_sse_event(&mut stream, &mut buffer, Duration::from_secs(10), "a tick"),
    )
    .await
    {
        generated.push(data["generated_at"].clone());
        if generated.len() > 100 {
            break;
        }
    }

    // Assert: about 3 more (one per 1 s tick), in order; never a resend loop.
    let further = generated.len() - 1;
    assert!(
        (2..=5).contains(&further),
        "{further} events (counting stops past 100) in {window:?} after the first at a 1 s interval; the first generated_at values: {:?}",
        &generated[..generated.len().min(6)]
    );
    let generated: Vec<&str> = generated.iter().filter_map(Value::as_str).collect();
    assert!(
        generated.windows(2).all(|w| w[0] <= w[1]),
        "an event is older than the one before: {generated:?}"
    );
}

#[tokio::test]
async fn the_sse_stream_refuses_a_bad_assistant_id_or_token() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [
        (
            format!("?token={ADMIN_TOKEN}&assistant_id=not-a-uuid"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "an assistant_id that is not a UUID",
        ),
        (
            "?token=wrong-token-0123456789".to_string(),
            StatusCode::UNAUTHORIZED,
            "a wrong query token",
        ),
        (
            format!("?token={INGEST_TOKEN}"),
            StatusCode::FORBIDDEN,
            "the ingest token in the query",
        ),
        (
            "?assistant_id=not-a-uuid".to_string(),
            StatusCode::UNAUTHORIZED,
            "no token and a bad assistant_id (the token is checked first)",
        ),
    ];

    for (query, expected, case) in cases {
        // Act
        let (status, body) = app
            .get_with_token(&format!("/api/v1/analytics/stream{query}"), None)
            .await;

        // Assert
        assert_eq!(status, expected, "{case}: {body}");
        if expected == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(body["detail"][0]["type"], json!("uuid_parsing"), "{case}");
            assert_eq!(
                body["detail"][0]["loc"],
                json!(["query", "assistant_id"]),
                "{case}"
            );
        } else {
            assert!(body["detail"].is_string(), "{case}: {body}");
        }
    }
    assert_eq!(
        metric(&app, SSE_CLIENTS).await,
        0.0,
        "a refused stream must not count as a client"
    );
}

#[tokio::test]
async fn an_sse_client_that_leaves_stops_its_scope() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let mut stream = open_sse(&app, &format!("?token={ADMIN_TOKEN}")).await;
    let mut buffer = String::new();
    next_sse_event(
        &mut stream,
        &mut buffer,
        Duration::from_secs(5),
        "the stream",
    )
    .await;
    assert_eq!(metric(&app, SSE_CLIENTS).await, 1.0);

    // Act
    drop(stream);
    let noticed = wait_for_metric(&app, SSE_CLIENTS, 0.0, Duration::from_secs(5)).await;
    let at_leave = metric(&app, COMPUTATIONS).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = metric(&app, COMPUTATIONS).await;

    // Assert
    assert!(
        noticed < Duration::from_secs(5),
        "the server noticed after {noticed:?}"
    );
    assert!(
        after <= at_leave + 1.0,
        "computations went on with no listener: {at_leave} then {after} 3 s later"
    );
}

// ---------------------------------------------------------------------------
// Slow clients, computations, limits, shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_client_that_never_reads_is_closed_while_a_healthy_one_keeps_receiving() {
    // Arrange: a healthy client that reads (and so answers pings), and one that
    // completes the handshake on a raw TCP stream and is then never polled.
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let mut healthy = connect(&app).await;
    next_snapshot(&mut healthy, Duration::from_secs(5), "the healthy client").await;
    let address = app.address.trim_start_matches("http://").to_string();
    let tcp = TcpStream::connect(&address).await.unwrap();
    let (mut stalled, response) =
        tokio_tungstenite::client_async(ws_url(&app, &format!("?token={ADMIN_TOKEN}")), tcp)
            .await
            .expect("the stalled client's handshake failed");
    assert_eq!(response.status().as_u16(), 101);
    let connected = Instant::now();
    wait_for_metric(&app, WS_CLIENTS, 2.0, Duration::from_secs(5)).await;

    // Act: the healthy client reads in the background while the server deals with the other.
    let listen = Duration::from_secs(15);
    let reader = tokio::spawn(async move {
        let until = Instant::now() + listen;
        let mut arrivals = vec![Instant::now()];
        while let Ok(()) = tokio::time::timeout_at(until, async {
            next_snapshot(&mut healthy, Duration::from_secs(5), "the healthy client").await;
        })
        .await
        {
            arrivals.push(Instant::now());
        }
        (healthy, arrivals)
    });
    let mut closed_after = None;
    while connected.elapsed() < listen {
        if metric(&app, WS_CLIENTS).await == 1.0 {
            closed_after = Some(connected.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let slow_disconnects = metric(&app, SLOW_DISCONNECTS).await;
    let (_healthy, arrivals) = reader.await.expect("the healthy reader panicked");

    // Assert: the server side.
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!("the client that never reads was still connected after {listen:?}")
    });
    assert_eq!(
        slow_disconnects, 1.0,
        "ragpulse_slow_client_disconnects_total after closing the stalled client"
    );
    // The healthy client: a snapshot about every second the whole time.
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let longest = gaps.iter().max().copied().unwrap_or(listen);
    assert!(
        arrivals.len() >= 12,
        "the healthy client got {} snapshots in {listen:?} at a 1 s interval",
        arrivals.len() - 1
    );
    assert!(
        longest <= Duration::from_millis(2_500),
        "the healthy client waited {longest:?} between two snapshots (closed the other after {closed_after:?})"
    );
    assert_eq!(
        metric(&app, WS_CLIENTS).await,
        1.0,
        "the healthy client must still be connected"
    );
    // The stalled client, reading at last, finds a 1013 close after its backlog.
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Close(frame)) => return Some(frame),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the stalled client's backlog did not end within 5 s");
    let code = close.flatten().map(|frame| u16::from(frame.code));
    assert_eq!(
        code,
        Some(1013),
        "the stalled client must be closed with 1013 (try again later)"
    );
}

#[tokio::test]
async fn nothing_is_computed_while_nobody_listens() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;

    // Act 1: nobody listens for 3 s.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    let idle = metric(&app, COMPUTATIONS).await;

    // Act 2: one listener for 3 s.
    let mut socket = connect(&app).await;
    next_snapshot(&mut socket, Duration::from_secs(5), "the listener").await;
    let at_start = metric(&app, COMPUTATIONS).await;
    let until = Instant::now() + Duration::from_secs(3);
    while tokio::time::timeout_at(
        until,
        next_snapshot(&mut socket, Duration::from_secs(5), "the listener"),
    )
    .await
    .is_ok()
    {}
    let listened = metric(&app, COMPUTATIONS).await - at_start;

    // Act 3: the listener leaves.
    socket.close(None).await.unwrap();
    drop(socket);
    wait_for_metric(&app, WS_CLIENTS, 0.0, Duration::from_secs(5)).await;
    let at_leave = metric(&app, COMPUTATIONS).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_leave = metric(&app, COMPUTATIONS).await - at_leave;

    // Assert
    assert_eq!(idle, 0.0, "snapshots were computed with nobody listening");
    assert!(
        (2.0..=5.0).contains(&listened),
        "{listened} computations in 3 s with one listener at a 1 s interval"
    );
    assert!(
        after_leave <= 1.0,
        "{after_leave} computations in the 3 s after the last listener left (at most one in flight)"
    );
}

#[tokio::test]
async fn a_hundred_clients_of_one_scope_share_one_computation_per_tick() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let clients = 100;
    let mut sockets = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut socket = connect(&app).await;
        next_snapshot(&mut socket, Duration::from_secs(5), &format!("client {i}")).await;
        sockets.push(socket);
    }
    assert_eq!(metric(&app, WS_CLIENTS).await, clients as f64);
    let computations_before = metric(&app, COMPUTATIONS).await;
    let sent_before = metric(&app, SNAPSHOTS_SENT).await;

    // Act: every client listens for 3 s.
    let window = Duration::from_secs(3);
    let until = Instant::now() + window;
    let readers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, mut socket)| {
            tokio::spawn(async move {
                let mut received = 0;
                while tokio::time::timeout_at(
                    until,
                    next_snapshot(&mut socket, Duration::from_secs(5), &format!("client {i}")),
                )
                .await
                .is_ok()
                {
                    received += 1;
                }
                received
            })
        })
        .collect();
    let mut received = Vec::with_capacity(clients);
    for reader in readers {
        received.push(reader.await.expect("a client reader panicked"));
    }
    let computed = metric(&app, COMPUTATIONS).await - computations_before;
    let sent = metric(&app, SNAPSHOTS_SENT).await - sent_before;

    // Assert
    assert!(
        (2.0..=5.0).contains(&computed),
        "{computed} computations in {window:?} for {clients} clients of one scope (expected ~1 per tick)"
    );
    let fewest = received.iter().min().copied().unwrap_or(0);
    assert!(
        fewest >= 2,
        "a client got only {fewest} snapshots in {window:?}: {received:?}"
    );
    assert!(
        sent >= 2.0 * clients as f64,
        "ragpulse_snapshots_sent_total grew by {sent} for {clients} clients over {window:?}"
    );
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let mut socket = connect(&app).await;
    next_snapshot(&mut socket, Duration::from_secs(5), "the socket").await;

    // Act
    let started = Instant::now();
    let stopping = tokio::spawn(app.stop());
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(frame)) => return Ok(frame),
                Ok(_) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
        Err("the socket ended without a close frame".to_string())
    })
    .await
    .expect("no close frame within 10 s of shutdown");
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("the server did not stop within 15 s")
        .expect("stopping the server panicked");

    // Assert
    let frame = close
        .unwrap_or_else(|e| panic!("the socket failed instead of closing: {e}"))
        .expect("the close frame has no code");
    assert_eq!(
        u16::from(frame.code),
        1001,
        "the close code at shutdown: {frame:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown with one socket took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_ends_sse_streams() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.broadcast_interval = Some(1)).await;
    let mut stream = open_sse(&app, &format!("?token={ADMIN_TOKEN}")).await;
    let mut buffer = String::new();
    next_sse_event(
        &mut stream,
        &mut buffer,
        Duration::from_secs(5),
        "the stream",
    )
    .await;

    // Act
    let started = Instant::now();
    let stopping = tokio::spawn(app.stop());
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await;
    drop(stream);
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("the server did not stop within 15 s")
        .expect("stopping the server panicked");

    // Assert
    let end = end.expect("the SSE stream was still sending 10 s after shutdown began");
    assert_eq!(end, Ok(()), "the SSE stream must end cleanly at shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_client_past_the_live_limit_is_refused_with_503() {
    // Arrange: room for two live clients, one WebSocket and one SSE stream.
    let app = TestApp::spawn_with(|args| args.max_live_clients = Some(2)).await;
    let mut socket = connect(&app).await;
    next_snapshot(&mut socket, Duration::from_secs(5), "the first client").await;
    let _stream = open_sse(&app, &format!("?token={ADMIN_TOKEN}")).await;

    // Act
    let third_ws =
        tokio_tungstenite::connect_async(ws_url(&app, &format!("?token={ADMIN_TOKEN}"))).await;
    let third_sse = app
        .client
        .get(app.url("/api/v1/analytics/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();

    // Assert
    match third_ws {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503, "the third WebSocket");
            assert!(
                response.headers().get("retry-after").is_some(),
                "the 503 has no Retry-After"
            );
        }
        Err(other) => panic!("the third WebSocket: unexpected error {other}"),
        Ok(_) => panic!("the third WebSocket was accepted past a limit of 2"),
    }
    assert_eq!(
        third_sse.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the third client as an SSE stream"
    );

    // Act 2: a client leaves, so its place is free again.
    socket.close(None).await.unwrap();
    drop(socket);
    wait_for_metric(&app, WS_CLIENTS, 0.0, Duration::from_secs(5)).await;
    let again =
        tokio_tungstenite::connect_async(ws_url(&app, &format!("?token={ADMIN_TOKEN}"))).await;

    // Assert 2
    assert!(
        again.is_ok(),
        "a client was refused after another left: {:?}",
        again.err()
    );
}
