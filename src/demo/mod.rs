//! `ragpulse demo`: a server on synthetic history with live synthetic traffic,
//! so a new user sees every metric populated within seconds.

pub mod generate;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::cli::DemoArgs;
use crate::config::Settings;
use crate::ingest::ingest_values;
use crate::server::{self, AppState};
use crate::time::{MICROS_PER_DAY, Timestamp};
use generate::{Generator, Shape};

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
    tracing::info!(
        days = args.days,
        per_day = args.per_day,
        "generating synthetic history"
    );
    load_history(&state, &mut generator, args.days, args.per_day, now).await?;
    let listener = server::bind(&state.settings)
        .await
        .with_context(|| format!("failed to listen on {}", state.settings.listen))?;
    let addr = listener.local_addr()?;
    print_welcome(&addr.to_string(), &state, &generator);
    if args.live_rate > 0.0 {
        tokio::spawn(live_traffic(state.clone(), generator, args.live_rate));
    }
    server::serve(listener, state, server::shutdown_signal()).await?;
    drop(temp);
    Ok(())
}

async fn load_history(
    state: &AppState,
    generator: &mut Generator,
    days: u32,
    per_day: u32,
    now: i64,
) -> anyhow::Result<()> {
    let limits = state.settings.event_limits.clone();
    store_events(state, generator.registry_events(), &limits).await?;
    let mut batch: Vec<Value> = Vec::with_capacity(HISTORY_BATCH);
    for day in (0..days).rev() {
        let day_start = now - i64::from(day + 1) * MICROS_PER_DAY;
        // Traffic grows over the history, so trends have a direction.
        let growth = 0.6 + 0.4 * f64::from(days - day) / f64::from(days.max(1));
        let count = (f64::from(per_day) * growth) as u32;
        // In time order, as traffic arrives: conversations then hold together.
        let mut times: Vec<i64> = (0..count)
            .map(|_| generator.time_in_day(day_start).min(now))
            .collect();
        times.sort_unstable();
        for ts in times {
            batch.push(generator.interaction(ts));
        }
        for hour in 0..24 {
            let ts = day_start + hour * 3_600_000_000;
            if ts <= now && hour % 3 == 0 {
                batch.push(generator.sync(ts));
            }
        }
        if batch.len() >= HISTORY_BATCH {
            store_events(state, std::mem::take(&mut batch), &limits).await?;
        }
    }
    store_events(state, batch, &limits).await
}

async fn store_events(
    state: &AppState,
    events: Vec<Value>,
    limits: &crate::ingest::validate::EventLimits,
) -> anyhow::Result<()> {
    for chunk in events.chunks(HISTORY_BATCH) {
        let values = chunk.iter().cloned().enumerate().collect();
        let answer = ingest_values(&state.store, values, limits).await?;
        if let Some(first) = answer.rejected.first() {
            anyhow::bail!(
                "the demo generator produced an invalid event: {}",
                first.error
            );
        }
    }
    Ok(())
}

/// One synthetic interaction every 1/rate seconds (and a sync now and then)
/// until the server shuts down.
async fn live_traffic(state: AppState, mut generator: Generator, rate: f64) {
    let limits = state.settings.event_limits.clone();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.clamp(0.01, 1_000.0)));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        n += 1;
        let now = Timestamp::now().micros();
        let mut events = vec![generator.interaction(now)];
        if n.is_multiple_of(120) {
            events.push(generator.sync(now));
        }
        let values = events.into_iter().enumerate().collect();
        if let Err(error) = ingest_values(&state.store, values, &limits).await {
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
