//! The live feed: one broadcaster task per scope (all assistants, or one)
//! that has at least one listener, computing the `/advanced` snapshot at a
//! fixed rate and publishing it through a `watch` channel, so every listener
//! of a scope shares one computation and a slow listener only ever sees the
//! latest snapshot. The WebSocket (`ws`) and SSE (`sse`) handlers only forward.

pub mod sse;
pub mod ws;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::analytics::{AdvancedParams, Analytics};
use crate::telemetry::Telemetry;
use crate::time::Timestamp;

/// The message type of every snapshot, on both transports.
pub const SNAPSHOT_TYPE: &str = "ADVANCED_ANALYTICS_STATS";
/// How long shutdown waits for broadcaster tasks before aborting them.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `None` is every assistant.
pub type Scope = Option<Uuid>;

/// One computed snapshot, serialised once for every listener.
#[derive(Debug)]
pub struct Snapshot {
    /// The `/advanced` JSON (the SSE event's data).
    pub data: String,
    /// `{"type":"ADVANCED_ANALYTICS_STATS","data":...}` (the WebSocket message),
    /// reference-counted: sending it to a thousand sockets copies no text.
    pub message: axum::extract::ws::Utf8Bytes,
}

type Latest = Option<Arc<Snapshot>>;

struct ScopeEntry {
    sender: watch::Sender<Latest>,
    listeners: usize,
    stop: CancellationToken,
}

/// Owns the per-scope tasks and the live-client limit.
pub struct Broadcaster {
    analytics: Arc<Analytics>,
    telemetry: Arc<Telemetry>,
    interval: Duration,
    scopes: Mutex<HashMap<Scope, ScopeEntry>>,
    clients: Arc<Semaphore>,
    /// One snapshot computation at a time across scopes: scopes then take
    /// turns instead of multiplying the read load on the machine.
    computing: Arc<tokio::sync::Mutex<()>>,
    tasks: TaskTracker,
    /// The WebSocket connections, so shutdown can wait for their close frames.
    pub(crate) connections: TaskTracker,
    shutdown: CancellationToken,
}

/// A listener of one scope; dropping it stops the scope's task when it was the last.
pub struct Subscription {
    broadcaster: Arc<Broadcaster>,
    scope: Scope,
    pub receiver: watch::Receiver<Latest>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.broadcaster.unsubscribe(self.scope);
    }
}

impl Broadcaster {
    pub fn new(
        analytics: Arc<Analytics>,
        telemetry: Arc<Telemetry>,
        interval: Duration,
        max_clients: usize,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            analytics,
            telemetry,
            interval: interval.max(Duration::from_secs(1)),
            scopes: Mutex::new(HashMap::new()),
            clients: Arc::new(Semaphore::new(max_clients.min(Semaphore::MAX_PERMITS))),
            computing: Arc::new(tokio::sync::Mutex::new(())),
            tasks: TaskTracker::new(),
            connections: TaskTracker::new(),
            shutdown,
        })
    }

    /// A place for one more live client, or `None` at the limit.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.clients.clone().try_acquire_owned().ok()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Listens to `scope`, starting its task when it is the first listener.
    pub fn subscribe(self: &Arc<Self>, scope: Scope) -> Subscription {
        let receiver = {
            let Ok(mut scopes) = self.scopes.lock() else {
                // A poisoned lock means a panic elsewhere; an idle channel keeps the client alive.
                return Subscription {
                    broadcaster: self.clone(),
                    scope,
                    receiver: watch::channel(None).1,
                };
            };
            let entry = scopes.entry(scope).or_insert_with(|| self.start(scope));
            entry.listeners += 1;
            entry.sender.subscribe()
        };
        Subscription {
            broadcaster: self.clone(),
            scope,
            receiver,
        }
    }

    fn unsubscribe(&self, scope: Scope) {
        let Ok(mut scopes) = self.scopes.lock() else {
            return;
        };
        if let Some(entry) = scopes.get_mut(&scope) {
            entry.listeners = entry.listeners.saturating_sub(1);
            if entry.listeners == 0 {
                entry.stop.cancel();
                scopes.remove(&scope);
            }
        }
    }

    fn start(self: &Arc<Self>, scope: Scope) -> ScopeEntry {
        let (sender, _) = watch::channel(None);
        let stop = self.shutdown.child_token();
        let task = ScopeTask {
            analytics: self.analytics.clone(),
            telemetry: self.telemetry.clone(),
            sender: sender.clone(),
            scope,
            interval: self.interval,
            stop: stop.clone(),
            computing: self.computing.clone(),
        };
        self.tasks.spawn(task.run());
        ScopeEntry {
            sender,
            listeners: 0,
            stop,
        }
    }

    /// Stops every scope task: they get [`STOP_GRACE`] to finish, then are aborted.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        // Sockets send their 1001 close frames first (each within its send deadline).
        self.connections.close();
        if tokio::time::timeout(STOP_GRACE, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("live sockets did not close in time");
        }
        self.tasks.close();
        if tokio::time::timeout(STOP_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("broadcaster tasks did not stop in time; abandoning them");
        }
    }
}

/// Computes one scope's snapshot at a fixed rate until stopped.
struct ScopeTask {
    analytics: Arc<Analytics>,
    telemetry: Arc<Telemetry>,
    sender: watch::Sender<Latest>,
    scope: Scope,
    interval: Duration,
    stop: CancellationToken,
    computing: Arc<tokio::sync::Mutex<()>>,
}

impl ScopeTask {
    async fn run(self) {
        let mut ticks = tokio::time::interval(self.interval);
        // Fixed rate: a slow computation skips ticks instead of bunching them up.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let computation = self.compute();
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = computation => {}
            }
        }
    }

    async fn compute(&self) {
        let _turn = self.computing.lock().await;
        let started = Instant::now();
        let params = AdvancedParams {
            assistant: self.scope,
            ..AdvancedParams::default()
        };
        self.telemetry.broadcast_computations.inc();
        // A computation that takes over 30 s (or the interval, when longer) is a
        // failure: the last good snapshot stays.
        let result = tokio::time::timeout(
            self.interval.max(Duration::from_secs(30)),
            self.analytics.advanced(params, Timestamp::now()),
        )
        .await;
        self.telemetry
            .broadcast_seconds
            .observe(started.elapsed().as_secs_f64());
        let response = match result {
            Ok(response) => response,
            Err(_) => {
                self.telemetry.broadcast_failures.inc();
                tracing::error!(scope = ?self.scope, "live snapshot computation timed out; keeping the last one");
                return;
            }
        };
        match serde_json::to_string(&response) {
            Ok(data) => {
                let message = format!(r#"{{"type":"{SNAPSHOT_TYPE}","data":{data}}}"#).into();
                self.sender
                    .send_replace(Some(Arc::new(Snapshot { data, message })));
            }
            Err(error) => {
                self.telemetry.broadcast_failures.inc();
                tracing::error!(%error, "live snapshot could not be serialised; keeping the last one");
            }
        }
    }
}
