//! `GET /api/v1/analytics/stream`: the live feed as Server-Sent Events, for
//! clients that only need to listen. Same snapshots, same scopes.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::{Broadcaster, SNAPSHOT_TYPE, Subscription};
use crate::api::error::ApiError;
use crate::api::query::Query;
use crate::server::AppState;

#[utoipa::path(get, path = "/api/v1/analytics/stream", tag = "live",
    params(
        ("assistant_id" = Option<uuid::Uuid>, Query, description = "Only this assistant's snapshots"),
        ("token" = Option<String>, Query, description = "The admin token, for EventSource, which cannot set headers"),
    ),
    responses(
        (status = 200, description = "`text/event-stream` of events named `ADVANCED_ANALYTICS_STATS` whose data is the `/advanced` JSON", content_type = "text/event-stream", body = String),
        (status = 401, body = crate::api::docs::Detail), (status = 403, body = crate::api::docs::Detail),
        (status = 422, body = crate::api::docs::ValidationDetail),
        (status = 503, description = "Too many live clients", body = crate::api::docs::Detail),
    ),
    security(("bearer" = [])))]
pub async fn handler(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut q = Query::parse(raw.as_deref());
    let scope = q.uuid("assistant_id");
    q.finish()?;
    let live = state.live.clone();
    let permit = live.admit().ok_or_else(super::ws::too_many)?;
    let subscription = live.subscribe(scope);
    let stream = snapshots(Listener::new(live, subscription, permit));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One SSE client: its subscription, its place under the client limit, and
/// the gauge it counts in while it lasts.
struct Listener {
    live: Arc<Broadcaster>,
    subscription: Subscription,
    shutdown: CancellationToken,
    /// Whether the snapshot current at subscription time was looked at.
    started: bool,
    _permit: OwnedSemaphorePermit,
}

impl Listener {
    fn new(
        live: Arc<Broadcaster>,
        subscription: Subscription,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        live.telemetry().sse_clients.inc();
        Self {
            shutdown: live.shutdown_token(),
            live,
            subscription,
            started: false,
            _permit: permit,
        }
    }

    /// The current snapshot as an event, if any and not yet sent.
    fn take_latest(&mut self) -> Option<Event> {
        let latest = self.subscription.receiver.borrow_and_update().clone()?;
        self.live.telemetry().snapshots_sent.inc();
        Some(
            Event::default()
                .event(SNAPSHOT_TYPE)
                .data(latest.data.clone()),
        )
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.live.telemetry().sse_clients.dec();
    }
}

/// The latest snapshot at once (when there is one), then each new one; ends at shutdown.
fn snapshots(listener: Listener) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(listener, |mut listener| async move {
        if !listener.started {
            listener.started = true;
            if let Some(event) = listener.take_latest() {
                return Some((Ok(event), listener));
            }
        }
        loop {
            let shutdown = listener.shutdown.clone();
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                changed = listener.subscription.receiver.changed() => {
                    changed.ok()?;
                    if let Some(event) = listener.take_latest() {
                        return Some((Ok(event), listener));
                    }
                }
            }
        }
    })
}
