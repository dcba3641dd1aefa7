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
    /// Where in each interval this scope ticks, from the broadcaster's epoch.
    phase: Duration,
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
    /// The origin of every scope's tick grid (see [`spread_phase`]).
    epoch: tokio::time::Instant,
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
            epoch: tokio::time::Instant::now(),
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
            if !scopes.contains_key(&scope) {
                let used: Vec<Duration> = scopes.values().map(|e| e.phase).collect();
                let entry = self.start(scope, spread_phase(&used, self.interval));
                scopes.insert(scope, entry);
            }
            let Some(entry) = scopes.get_mut(&scope) else {
                return Subscription {
                    broadcaster: self.clone(),
                    scope,
                    receiver: watch::channel(None).1,
                };
            };
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

    fn start(self: &Arc<Self>, scope: Scope, phase: Duration) -> ScopeEntry {
        let (sender, _) = watch::channel(None);
        let stop = self.shutdown.child_token();
        let task = ScopeTask {
            analytics: self.analytics.clone(),
            telemetry: self.telemetry.clone(),
            sender: sender.clone(),
            scope,
            interval: self.interval,
            first_tick: next_tick(
                self.epoch,
                phase,
                self.interval,
                tokio::time::Instant::now(),
            ),
            stop: stop.clone(),
            computing: self.computing.clone(),
        };
        self.tasks.spawn(task.run());
        ScopeEntry {
            sender,
            listeners: 0,
            stop,
            phase,
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
    /// The first tick of this scope's grid after its start.
    first_tick: tokio::time::Instant,
    stop: CancellationToken,
    computing: Arc<tokio::sync::Mutex<()>>,
}

impl ScopeTask {
    async fn run(self) {
        // The first listener gets a snapshot at once; then the grid's ticks.
        tokio::select! {
            _ = self.stop.cancelled() => return,
            _ = self.compute() => {}
        }
        let mut ticks = tokio::time::interval_at(self.first_tick, self.interval);
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
            self.analytics.snapshot(params),
        )
        .await;
        self.telemetry
            .broadcast_seconds
            .observe(started.elapsed().as_secs_f64());
        let response = match result {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                self.telemetry.broadcast_failures.inc();
                tracing::error!(scope = ?self.scope, %error, "live snapshot computation failed; keeping the last one");
                return;
            }
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

/// The phase for a new scope's ticks: the middle of the widest gap between
/// the phases in use, on the circle of one interval. Scopes' computations take
/// turns, so scopes that tick together make each other's snapshots late;
/// spread out, each is computed the moment it ticks (until computations fill
/// the interval).
fn spread_phase(used: &[Duration], interval: Duration) -> Duration {
    let period = interval.as_nanos().max(1);
    let mut phases: Vec<u128> = used.iter().map(|p| p.as_nanos() % period).collect();
    phases.sort_unstable();
    let (Some(&first), Some(&last)) = (phases.first(), phases.last()) else {
        return Duration::ZERO;
    };
    // (gap, start of the gap); the wrap-around gap first.
    let mut widest = (first + period - last, last);
    for pair in phases.windows(2) {
        widest = widest.max((pair[1] - pair[0], pair[0]));
    }
    let middle = (widest.1 + widest.0 / 2) % period;
    Duration::from_nanos(u64::try_from(middle).unwrap_or(0))
}

/// The first instant at or after `now` on the grid `epoch + phase + k·interval`.
fn next_tick(
    epoch: tokio::time::Instant,
    phase: Duration,
    interval: Duration,
    now: tokio::time::Instant,
) -> tokio::time::Instant {
    let start = epoch + phase;
    if now <= start {
        return start;
    }
    let period = interval.as_nanos().max(1);
    let periods = (now - start).as_nanos().div_ceil(period);
    let offset = periods.saturating_mul(period);
    start + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn new_scopes_tick_in_the_middle_of_the_widest_gap() {
        assert_eq!(spread_phase(&[], SECOND), Duration::ZERO);
        assert_eq!(spread_phase(&[ms(0)], SECOND), ms(500));
        // Equal gaps: the later one.
        assert_eq!(spread_phase(&[ms(0), ms(500)], SECOND), ms(750));
        assert_eq!(spread_phase(&[ms(0), ms(500), ms(750)], SECOND), ms(250));
        // The widest gap wraps around the end of the interval.
        assert_eq!(spread_phase(&[ms(300), ms(400)], SECOND), ms(850));
        // Five scopes started together end up at least an eighth apart.
        let mut used = Vec::new();
        for _ in 0..5 {
            used.push(spread_phase(&used, SECOND));
        }
        used.sort();
        let closest = used
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain([SECOND + used[0] - used[4]])
            .min();
        assert_eq!(closest, Some(ms(125)), "{used:?}");
    }

    #[test]
    fn the_first_tick_is_the_next_one_on_the_grid() {
        let epoch = tokio::time::Instant::now();
        assert_eq!(next_tick(epoch, ms(300), SECOND, epoch), epoch + ms(300));
        assert_eq!(
            next_tick(epoch, ms(300), SECOND, epoch + ms(300)),
            epoch + ms(300)
        );
        assert_eq!(
            next_tick(epoch, ms(300), SECOND, epoch + ms(301)),
            epoch + ms(1_300)
        );
        assert_eq!(
            next_tick(epoch, ms(300), SECOND, epoch + ms(5_000)),
            epoch + ms(5_300)
        );
    }
}
