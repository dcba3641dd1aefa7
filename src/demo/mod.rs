//! `ragpulse demo`: a server on synthetic history with live synthetic traffic,
//! so a new user sees every metric populated within seconds. The live traffic
//! continues the history at its rate; started again on its data directory the
//! demo adds the traffic it missed and carries on with new ids.

pub mod generate;
pub mod questions;
pub mod traffic;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::Value;

use crate::cli::DemoArgs;
use crate::config::Settings;
use crate::ingest::ingest_values;
use crate::server::{self, AppState};
use crate::time::{MICROS_PER_DAY, Timestamp};
use generate::{Generator, Shape};
use traffic::Curve;

/// Events per stored batch while loading the history.
const HISTORY_BATCH: usize = 5_000;

pub async fn run(args: DemoArgs, config: Option<&Path>) -> anyhow::Result<()> {
    // Without --data-dir the demo lives in a temporary directory, removed on exit.
    let temp = match args.server.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("ragpulse-demo-")
                .tempdir()?,
        ),
    };
    let mut server_args = args.server.clone();
    if let Some(temp) = &temp {
        server_args.data_dir = Some(temp.path().to_path_buf());
    }
    let settings = Settings::load(server_args, config)?;
    let state = AppState::build(settings).context("failed to start the demo server")?;
    let now = Timestamp::now().micros();
    let mut generator = Generator::new(
        &Shape {
            seed: args.seed,
            ..Shape::default()
        },
        now,
    );
    let curve = Curve::new(f64::from(args.per_day), args.days, now);
    let history_start = now - i64::from(args.days) * MICROS_PER_DAY;
    // A time-seeded stream for what is new in this run: its ids never repeat a
    // run's before on the same data directory.
    let fresh_seed = args.seed ^ now as u64;
    let mut timing = SmallRng::seed_from_u64(args.seed);
    let from = match latest_stored(&state).await? {
        None => {
            tracing::info!(
                days = args.days,
                per_day = args.per_day,
                "generating synthetic history"
            );
            history_start
        }
        Some(latest) => {
            generator.reseed_traffic(fresh_seed);
            timing = SmallRng::seed_from_u64(fresh_seed);
            tracing::info!(
                since = %Timestamp(latest).to_rfc3339(),
                "the data directory holds the demo's data already: adding only the traffic since its latest interaction"
            );
            latest.max(history_start)
        }
    };
    let started = std::time::Instant::now();
    let stored = load_history(&state, &mut generator, &curve, &mut timing, from, now).await?;
    tracing::info!(
        interactions = stored,
        seconds = started.elapsed().as_secs_f64(),
        "history stored"
    );
    let listener = server::bind(&state.settings)
        .await
        .with_context(|| format!("failed to listen on {}", state.settings.listen))?;
    let addr = listener.local_addr()?;
    print_welcome(&addr.to_string(), &state, &generator);
    let live_rate = args
        .live_rate
        .map_or(LiveRate::FollowHistory(curve), LiveRate::Fixed);
    if !matches!(live_rate, LiveRate::Fixed(r) if r <= 0.0) {
        generator.reseed_traffic(fresh_seed.rotate_left(17));
        let rng = SmallRng::seed_from_u64(fresh_seed.rotate_left(31));
        tokio::spawn(live_traffic(state.clone(), generator, live_rate, rng));
    }
    server::serve(listener, state, server::shutdown_signal()).await?;
    drop(temp);
    Ok(())
}

/// Time of the latest stored interaction (µs), `None` on an empty store.
async fn latest_stored(state: &AppState) -> anyhow::Result<Option<i64>> {
    let assistants = state
        .analytics
        .assistants()
        .await
        .context("failed to read the stored assistants")?;
    Ok(assistants
        .iter()
        .filter_map(|a| a.last_active)
        .map(Timestamp::micros)
        .max())
}

/// Stores the registry, then the interactions and syncs of `[from, to)` in
/// time order, as traffic arrives (conversations then hold together). Each
/// batch is stored while the next one is generated. Returns the number of
/// interactions.
async fn load_history(
    state: &AppState,
    generator: &mut Generator,
    curve: &Curve,
    timing: &mut SmallRng,
    from: i64,
    to: i64,
) -> anyhow::Result<usize> {
    let limits = state.settings.event_limits.clone();
    store_events(state, generator.registry_events(), &limits).await?;
    let times = curve.arrivals(timing, from, to);
    let mut syncs = traffic::sync_times(from, to).peekable();
    let mut pending: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
    for chunk in times.chunks(HISTORY_BATCH) {
        let mut batch: Vec<Value> = Vec::with_capacity(chunk.len() + 8);
        for &ts in chunk {
            while let Some(sync) = syncs.next_if(|&s| s <= ts) {
                batch.push(generator.sync(sync));
            }
            batch.push(generator.interaction(ts));
        }
        if let Some(previous) = pending.take() {
            previous.await??;
        }
        let (state, limits) = (state.clone(), limits.clone());
        pending = Some(tokio::spawn(async move {
            store_events(&state, batch, &limits).await
        }));
    }
    if let Some(previous) = pending.take() {
        previous.await??;
    }
    let rest: Vec<Value> = syncs.map(|ts| generator.sync(ts)).collect();
    store_events(state, rest, &limits).await?;
    Ok(times.len())
}

async fn store_events(
    state: &AppState,
    events: Vec<Value>,
    limits: &crate::ingest::validate::EventLimits,
) -> anyhow::Result<()> {
    let mut events = events.into_iter();
    loop {
        let values: Vec<(usize, Value)> = events.by_ref().take(HISTORY_BATCH).enumerate().collect();
        if values.is_empty() {
            return Ok(());
        }
        let answer = ingest_values(state.store.as_ref(), values, limits).await?;
        if let Some(first) = answer.rejected.first() {
            anyhow::bail!(
                "the demo generator produced an invalid event: {}",
                first.error
            );
        }
    }
}

/// How fast the live traffic flows.
#[derive(Debug, Clone, Copy)]
enum LiveRate {
    /// As the history at this hour of the day (the default).
    FollowHistory(Curve),
    /// A fixed number of interactions per second (`--live-rate`).
    Fixed(f64),
}

/// At most this long between two looks at the rate: an hour's rate change is
/// never missed by a long draw (the process is memoryless, so a draw cut short
/// and drawn again keeps the same statistics).
const MAX_LIVE_WAIT_S: f64 = 60.0;

/// Synthetic interactions as a Poisson process at the live rate, and a
/// connector sync every three hours, until the server shuts down.
async fn live_traffic(
    state: AppState,
    mut generator: Generator,
    rate: LiveRate,
    mut rng: SmallRng,
) {
    let limits = state.settings.event_limits.clone();
    let mut last_sync_check = Timestamp::now().micros();
    loop {
        let now = Timestamp::now().micros();
        let per_second = match rate {
            LiveRate::FollowHistory(curve) => curve.per_second(now),
            LiveRate::Fixed(r) => r.clamp(0.0, 1_000.0),
        };
        let gap = traffic::gap_seconds(&mut rng, per_second);
        let due = gap <= MAX_LIVE_WAIT_S;
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs_f64(gap.min(MAX_LIVE_WAIT_S))) => {}
        }
        let now = Timestamp::now().micros();
        let mut events: Vec<Value> = traffic::sync_times(last_sync_check, now)
            .map(|ts| generator.sync(ts))
            .collect();
        last_sync_check = now;
        if due {
            events.push(generator.interaction(now));
        }
        if events.is_empty() {
            continue;
        }
        let values = events.into_iter().enumerate().collect();
        if let Err(error) = ingest_values(state.store.as_ref(), values, &limits).await {
            tracing::warn!(%error, "live demo traffic could not be stored");
        }
    }
}

/// The demo's output for a person: where to look. The token is printed on
/// purpose here: the demo's data is synthetic and its directory temporary.
#[allow(clippy::print_stdout)]
fn print_welcome(addr: &str, state: &AppState, generator: &Generator) {
    let token = state.auth.admin.expose();
    let assistant = generator
        .assistant_ids()
        .first()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("ragpulse listening on http://{addr}");
    println!();
    // The page stores the token and removes it from the address bar at once.
    println!("  Dashboard      http://{addr}/?token={token}");
    println!("  API docs       http://{addr}/docs");
    println!(
        "  All metrics    curl -H 'Authorization: Bearer {token}' http://{addr}/api/v1/analytics/advanced"
    );
    println!(
        "  One assistant  curl -H 'Authorization: Bearer {token}' 'http://{addr}/api/v1/analytics/advanced?assistant_id={assistant}'"
    );
    println!("  Ingest token   {}", state.auth.ingest.expose());
    println!("  Data directory {}", state.settings.data_dir.display());
    println!();
    println!("Live synthetic traffic keeps flowing; press Ctrl-C to stop.");
}
