//! Composition: builds the store, the analytics service and the router from
//! [`Settings`], and serves them on an already-bound listener until a shutdown
//! signal, so production and tests start the server the same way.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::analytics::Analytics;
use crate::api::auth::{Auth, Token, generate_token};
use crate::config::Settings;
use crate::live::Broadcaster;
use crate::pricing::Catalogue;
use crate::store::backend::{self, StoreOptions};
use crate::store::{Lane, Store};
use crate::telemetry::Telemetry;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub analytics: Arc<Analytics>,
    pub auth: Arc<Auth>,
    pub telemetry: Arc<Telemetry>,
    pub catalogue: Arc<Catalogue>,
    pub live: Arc<Broadcaster>,
    /// Ingest bodies being decoded at once. See [`ingest_slots`].
    pub ingest_slots: Arc<tokio::sync::Semaphore>,
    /// Bytes of ingest bodies being read or decoded at once (as many full
    /// bodies as there are slots); a body waits for room with its remaining
    /// bytes unread (in the kernel, not in our memory).
    pub ingest_bytes: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Held while `POST /api/v1/admin/backup` copies the store (one at a time).
    pub backup: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("price catalogue: {0}")]
    Pricing(String),
    #[error("token file {path}: {message}")]
    Tokens { path: String, message: String },
}

/// The name of the file that keeps generated tokens, in the data directory.
pub const TOKEN_FILE: &str = "tokens.json";

impl AppState {
    pub fn build(settings: Settings) -> Result<Self, StartError> {
        let telemetry = Arc::new(Telemetry::new());
        let catalogue = Arc::new(
            Catalogue::load(settings.pricing_file.as_deref())
                .map_err(|e| StartError::Pricing(e.to_string()))?,
        );
        let store = backend::open(
            &settings.data_dir,
            catalogue.clone(),
            telemetry.clone(),
            StoreOptions {
                max_queued_events: settings.max_queued_events,
                topic_threshold: settings.topic_threshold,
                rollups: settings.rollups,
                rag_series: settings.rag_metrics,
                merge_cache_bytes: settings.merge_cache_bytes,
            },
        )?;
        let auth = Arc::new(resolve_tokens(&settings)?);
        let analytics = Arc::new(Analytics::new(
            store.clone(),
            telemetry.clone(),
            settings.metric_timeout,
            settings.read_path,
        ));
        let shutdown = CancellationToken::new();
        let ingest_bytes = crate::ingest::body::budget(
            ingest_slots().saturating_mul(settings.body_limits.max_body_bytes),
        );
        let live = Broadcaster::new(
            Arc::new(analytics.on_lane(Lane::Live)),
            telemetry.clone(),
            settings.broadcast_interval,
            settings.max_live_clients,
            shutdown.child_token(),
        );
        Ok(Self {
            settings: Arc::new(settings),
            store,
            analytics,
            auth,
            telemetry,
            catalogue,
            live,
            ingest_slots: Arc::new(tokio::sync::Semaphore::new(ingest_slots())),
            ingest_bytes,
            shutdown,
            backup: Arc::new(tokio::sync::Mutex::new(())),
        })
    }
}

/// Longest a client may take to send the headers of a request (the first one
/// or the next one on a kept-alive connection): a slowloris client that
/// trickles headers, or an idle connection, is cut off instead of holding a
/// socket and a task forever. hyper enforces this only when it has a timer,
/// which `axum::serve` does not give it, hence the accept loop below.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How many ingest bodies may be in memory (read, inflated, parsed) at once.
/// A parsed body can take many times its text (a 3-byte `{},` becomes a
/// value of about a hundred bytes), so without this bound concurrent large
/// bodies, not the body limit, decide the peak memory. Decoding is CPU work:
/// twice the cores lets reading one body from the network overlap decoding
/// another; more would only add memory.
pub fn ingest_slots() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .clamp(2, 16)
}

/// Serves until `signal` resolves, then drains: stops accepting, lets requests
/// finish, commits what the writer holds.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = crate::api::router(state.clone());
    let shutdown = state.shutdown.clone();
    let finalizer = crate::otlp::finalizer::spawn(
        state.store.clone(),
        state.telemetry.clone(),
        state.settings.otlp,
        state.settings.event_limits.clone(),
        shutdown.child_token(),
    );
    let probes = crate::probes::start(&state);
    let retention = crate::retention::start(
        state.store.clone(),
        state.telemetry.clone(),
        state.settings.retention_days,
        shutdown.child_token(),
    );
    let connections = TaskTracker::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let stop = shutdown.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    // Finish the request in flight, then close; an idle
                    // connection closes at once.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutdown requested");
    // Live streams end on this token; a drain would wait on SSE forever.
    shutdown.cancel();
    drop(listener);
    connections.close();
    connections.wait().await;
    // What it has not finalised stays pending on disk for the next start.
    let _ = finalizer.await;
    state.live.stop().await;
    probes.wait().await;
    if let Some(retention) = retention {
        let _ = retention.await;
    }
    state.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Per-connection accept errors are the client's business; others (out of
/// file descriptors, say) would spin the loop, so they wait a moment.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Tokens from the settings, else from the token file, else generated and
/// written there (mode 0600). The tokens themselves are never logged.
fn resolve_tokens(settings: &Settings) -> Result<Auth, StartError> {
    let path = settings.data_dir.join(TOKEN_FILE);
    let stored = read_token_file(&path)?;
    let mut changed = false;
    let mut pick = |name: &str, given: &Option<String>, stored: Option<String>, prefix: &str| {
        if let Some(token) = given {
            return Ok(Token::new(token.clone()));
        }
        if let Some(token) = stored {
            // Validated like a flag: an edited file may have gained a newline.
            return crate::config::token(name, &token)
                .map(Token::new)
                .map_err(|e| StartError::Tokens {
                    path: path.display().to_string(),
                    message: e.to_string(),
                });
        }
        changed = true;
        generate_token(prefix).map_err(|e| StartError::Tokens {
            path: path.display().to_string(),
            message: format!("cannot generate a random token: {e}"),
        })
    };
    let admin = pick(
        "admin",
        &settings.admin_token,
        stored.admin_token,
        "rp_admin_",
    )?;
    let ingest = pick(
        "ingest",
        &settings.ingest_token,
        stored.ingest_token,
        "rp_ingest_",
    )?;
    if admin.expose() == ingest.expose() {
        return Err(StartError::Tokens {
            path: path.display().to_string(),
            message: crate::config::SAME_TOKENS.to_string(),
        });
    }
    if changed {
        write_token_file(&path, &admin, &ingest)?;
        tracing::info!(file = %path.display(), "generated tokens; read them from this file");
    } else if settings.admin_token.is_none() || settings.ingest_token.is_none() {
        tracing::info!(file = %path.display(), "using tokens from the token file");
    }
    Ok(Auth { admin, ingest })
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct TokenFile {
    admin_token: Option<String>,
    ingest_token: Option<String>,
}

fn read_token_file(path: &Path) -> Result<TokenFile, StartError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| StartError::Tokens {
            path: path.display().to_string(),
            message: format!("not valid JSON: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(StartError::Tokens {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

fn write_token_file(path: &Path, admin: &Token, ingest: &Token) -> Result<(), StartError> {
    let body = TokenFile {
        admin_token: Some(admin.expose().to_string()),
        ingest_token: Some(ingest.expose().to_string()),
    };
    let text = serde_json::to_string_pretty(&body).map_err(|e| StartError::Tokens {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_private(path, text.as_bytes()).map_err(|e| StartError::Tokens {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Creates the file readable by its owner only, before any secret is in it.
#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Binds the listen address of the settings.
pub async fn bind(settings: &Settings) -> std::io::Result<TcpListener> {
    TcpListener::bind(settings.listen).await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
