//! `GET /api/v1/ws`: the WebSocket side of the live feed. One task per
//! socket forwards the scope's latest snapshot, pings every 5 s, and closes
//! with 1013 a client that stops answering or stops accepting frames.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::{Broadcaster, Scope, Subscription};
use crate::api::error::ApiError;
use crate::server::AppState;

const PING_EVERY: Duration = Duration::from_secs(5);
const PONG_DEADLINE: Duration = Duration::from_secs(10);
const SEND_DEADLINE: Duration = Duration::from_secs(2);
/// How often the socket task looks at its deadlines.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// "Try again later": the client should reconnect.
const CLOSE_TRY_AGAIN: u16 = 1013;
/// The largest message a client may send (a subscribe message is ~80 bytes).
const MAX_CLIENT_MESSAGE: usize = 4096;
/// "Going away": the server is shutting down.
const CLOSE_GOING_AWAY: u16 = 1001;
/// Scope changes a socket may make at once, and how fast that allowance comes
/// back: every change to a scope nobody watches starts a snapshot computation,
/// so a client alternating scopes in a loop would otherwise keep the live
/// readers busy for everyone.
const SUBSCRIBE_BURST: f64 = 10.0;
const SUBSCRIBES_PER_SECOND: f64 = 1.0;

#[utoipa::path(get, path = "/api/v1/ws", tag = "live",
    params(
        ("Sec-WebSocket-Protocol" = Option<String>, Header, description = "`ragpulse, bearer.<admin token>`: the admin token for browsers, which cannot set `Authorization`; the server selects `ragpulse` and never echoes the token"),
        ("token" = Option<String>, Query, description = "The admin token in the URL (proxies may log it: prefer the subprotocol)"),
    ),
    responses(
        (status = 101, description = "WebSocket: `{\"type\":\"ADVANCED_ANALYTICS_STATS\",\"data\":{...}}` at once and every tick; send `{\"type\":\"subscribe\",\"assistant_id\":\"<uuid>\"|null}` to change scope, `ping` for `pong`"),
        (status = 401, body = crate::api::docs::Detail), (status = 403, body = crate::api::docs::Detail),
        (status = 503, description = "Too many live clients", body = crate::api::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn handler(
    State(state): State<AppState>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let live = state.live.clone();
    let permit = live.admit().ok_or_else(too_many)?;
    // Clients only send `ping` and small subscribe messages, and we send one
    // snapshot per tick: tungstenite's defaults (128 KiB buffers each way, 64
    // MiB messages) would let a thousand idle sockets hold hundreds of MiB, or
    // one client make the server buffer a 64 MiB message.
    let upgrade = upgrade
        // Selected when offered; the `bearer.<token>` protocol never is.
        .protocols([crate::api::auth::WS_PROTOCOL])
        .read_buffer_size(MAX_CLIENT_MESSAGE)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    Ok(upgrade.on_upgrade(move |socket| {
        let tracker = live.connections.clone();
        tracker.track_future(connection(socket, live, permit))
    }))
}

pub(super) fn too_many() -> ApiError {
    ApiError::Unavailable {
        message: "too many live clients; retry later".to_string(),
        retry_after_s: 5,
    }
}

/// What the reading half tells the writing half.
enum Inbound {
    Pong,
    Reply(String),
    Subscribe(Scope),
    Closed,
}

/// Why the socket task ends.
enum End {
    Close(u16, &'static str),
    /// The client left; nothing to send.
    Gone,
}

async fn connection(socket: WebSocket, live: Arc<Broadcaster>, _permit: OwnedSemaphorePermit) {
    live.telemetry().ws_clients.inc();
    let (mut sink, stream) = socket.split();
    let (inbound, mut from_reader) = mpsc::channel::<Inbound>(32);
    let reader = tokio::spawn(read_loop(stream, inbound));
    let end = forward(&live, &mut sink, &mut from_reader).await;
    reader.abort();
    if let End::Close(code, reason) = end {
        if code == CLOSE_TRY_AGAIN {
            live.telemetry().slow_client_disconnects.inc();
        }
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = tokio::time::timeout(SEND_DEADLINE, sink.send(Message::Close(Some(frame)))).await;
    }
    live.telemetry().ws_clients.dec();
}

type Sink = SplitSink<WebSocket, Message>;

async fn forward(
    live: &Arc<Broadcaster>,
    sink: &mut Sink,
    from_reader: &mut mpsc::Receiver<Inbound>,
) -> End {
    let shutdown = live.shutdown_token();
    let mut subscription = live.subscribe(None);
    if send_latest(live, sink, &mut subscription).await.is_err() {
        return End::Close(CLOSE_TRY_AGAIN, "too slow");
    }
    let mut checks = tokio::time::interval(CHECK_EVERY);
    let mut budget = SubscribeBudget::new(Instant::now());
    let mut scope: Scope = None;
    let mut last_pong = Instant::now();
    let mut last_ping = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return End::Close(CLOSE_GOING_AWAY, "server shutting down"),
            changed = subscription.receiver.changed() => {
                if changed.is_err() {
                    return End::Close(CLOSE_GOING_AWAY, "server shutting down");
                }
                if send_latest(live, sink, &mut subscription).await.is_err() {
                    return End::Close(CLOSE_TRY_AGAIN, "too slow");
                }
            }
            _ = checks.tick() => {
                if last_pong.elapsed() > PONG_DEADLINE {
                    return End::Close(CLOSE_TRY_AGAIN, "no pong");
                }
                if last_ping.elapsed() >= PING_EVERY {
                    last_ping = Instant::now();
                    if send(sink, Message::Ping(Default::default())).await.is_err() {
                        return End::Close(CLOSE_TRY_AGAIN, "too slow");
                    }
                }
            }
            message = from_reader.recv() => match message {
                None | Some(Inbound::Closed) => return End::Gone,
                Some(Inbound::Pong) => last_pong = Instant::now(),
                Some(Inbound::Reply(text)) => {
                    if send(sink, Message::Text(text.into())).await.is_err() {
                        return End::Close(CLOSE_TRY_AGAIN, "too slow");
                    }
                }
                Some(Inbound::Subscribe(wanted)) => {
                    // The same scope costs no computation: its latest snapshot again.
                    if wanted != scope && !budget.take(Instant::now()) {
                        let refused = error(&format!(
                            "too many scope changes: at most {SUBSCRIBE_BURST} at once and \
                             {SUBSCRIBES_PER_SECOND} per second after that; this one was ignored"
                        ));
                        if send(sink, Message::Text(refused.into())).await.is_err() {
                            return End::Close(CLOSE_TRY_AGAIN, "too slow");
                        }
                        continue;
                    }
                    if wanted != scope {
                        // The new subscription first, so a shared scope task never stops in between.
                        subscription = live.subscribe(wanted);
                        scope = wanted;
                    } else {
                        subscription.receiver.mark_changed();
                    }
                    if send_latest(live, sink, &mut subscription).await.is_err() {
                        return End::Close(CLOSE_TRY_AGAIN, "too slow");
                    }
                }
            },
        }
    }
}

/// A token bucket of scope changes for one socket.
struct SubscribeBudget {
    tokens: f64,
    at: Instant,
}

impl SubscribeBudget {
    fn new(now: Instant) -> Self {
        Self {
            tokens: SUBSCRIBE_BURST,
            at: now,
        }
    }

    /// Takes one change if the budget has one.
    fn take(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * SUBSCRIBES_PER_SECOND;
        self.tokens = (self.tokens + earned).min(SUBSCRIBE_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sends the scope's current snapshot, if one was computed yet.
async fn send_latest(
    live: &Broadcaster,
    sink: &mut Sink,
    subscription: &mut Subscription,
) -> Result<(), ()> {
    let latest = subscription.receiver.borrow_and_update().clone();
    if let Some(snapshot) = latest {
        send(sink, Message::Text(snapshot.message.clone())).await?;
        live.telemetry().snapshots_sent.inc();
    }
    Ok(())
}

/// A frame the socket must accept within [`SEND_DEADLINE`].
async fn send(sink: &mut Sink, message: Message) -> Result<(), ()> {
    match tokio::time::timeout(SEND_DEADLINE, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn read_loop(
    mut stream: futures::stream::SplitStream<WebSocket>,
    inbound: mpsc::Sender<Inbound>,
) {
    while let Some(message) = stream.next().await {
        let forwarded = match message {
            Ok(Message::Pong(_)) => Inbound::Pong,
            Ok(Message::Text(text)) => client_text(text.as_str()),
            Ok(Message::Close(_)) | Err(_) => Inbound::Closed,
            // Pings are answered by the WebSocket layer itself; binary frames mean nothing here.
            Ok(Message::Ping(_)) => continue,
            Ok(Message::Binary(_)) => Inbound::Reply(error("binary messages are not understood")),
        };
        let closed = matches!(forwarded, Inbound::Closed);
        if inbound.send(forwarded).await.is_err() || closed {
            return;
        }
    }
    let _ = inbound.send(Inbound::Closed).await;
}

/// `ping`, or `{"type":"subscribe","assistant_id":"<uuid>"|null}`.
fn client_text(text: &str) -> Inbound {
    if text.trim() == "ping" {
        return Inbound::Reply("pong".to_string());
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => {
            return Inbound::Reply(error(
                "expected \"ping\" or {\"type\":\"subscribe\",\"assistant_id\":\"<uuid>\"|null}",
            ));
        }
    };
    match value.get("type").and_then(Value::as_str) {
        Some("subscribe") => match value.get("assistant_id") {
            None | Some(Value::Null) => Inbound::Subscribe(None),
            Some(Value::String(id)) => match uuid::Uuid::parse_str(id) {
                Ok(id) => Inbound::Subscribe(Some(id)),
                Err(e) => Inbound::Reply(error(&format!(
                    "assistant_id {id:?} is not a valid UUID: {e}"
                ))),
            },
            Some(_) => Inbound::Reply(error("assistant_id must be a UUID string or null")),
        },
        Some("ping") => Inbound::Reply(json!({"type": "pong"}).to_string()),
        _ => Inbound::Reply(error("unknown message type; expected \"subscribe\"")),
    }
}

fn error(detail: &str) -> String {
    json!({"type": "error", "detail": detail}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_changes_come_in_a_burst_then_one_per_second() {
        let start = Instant::now();
        let mut budget = SubscribeBudget::new(start);
        let burst = (0..20).filter(|_| budget.take(start)).count();
        assert_eq!(burst, 10);
        assert!(!budget.take(start + Duration::from_millis(900)));
        assert!(budget.take(start + Duration::from_millis(1_000)));
        assert!(!budget.take(start + Duration::from_millis(1_500)));
        let later = start + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| budget.take(later)).count(), 10);
    }

    #[test]
    fn client_messages_are_understood_or_answered_with_an_error() {
        assert!(matches!(client_text("ping"), Inbound::Reply(t) if t == "pong"));
        assert!(matches!(
            client_text(r#"{"type":"subscribe","assistant_id":null}"#),
            Inbound::Subscribe(None)
        ));
        let id = "5d1c7e2a-0000-4000-8000-000000000001";
        assert!(matches!(
            client_text(&format!(r#"{{"type":"subscribe","assistant_id":"{id}"}}"#)),
            Inbound::Subscribe(Some(u)) if u.to_string() == id
        ));
        for bad in [
            "{",
            r#"{"type":"subscribe","assistant_id":"x"}"#,
            r#"{"type":"nope"}"#,
            r#"{"type":"subscribe","assistant_id":3}"#,
        ] {
            match client_text(bad) {
                Inbound::Reply(text) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(v["type"], "error", "{bad}");
                }
                _ => panic!("{bad} should be answered with an error"),
            }
        }
    }
}
