//! The black-box harness: a real ragpulse server on 127.0.0.1:0 with a fresh
//! temporary data directory per test, talked to over HTTP only, plus builders
//! for the events of `ingest.md` and the small pieces of arithmetic the tests
//! need to compute their expectations independently of the server.

use std::io::Write;
use std::sync::Once;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use ragpulse::config::{ServerArgs, Settings};
use ragpulse::server::{self, AppState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The admin token every test server runs with (>= 16 characters).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// The ingest token every test server runs with (>= 16 characters).
pub const INGEST_TOKEN: &str = "test-ingest-token-0123456789abcdef";
/// A token that is neither of the two.
pub const WRONG_TOKEN: &str = "test-wrong-token-0123456789abcdef";

/// A model priced by the test price file (USD per million tokens: input 1.00,
/// cached input 0.50, output 2.00), so cost expectations do not depend on the
/// built-in catalogue's list prices.
pub const TEST_MODEL: &str = "ragpulse-test-model";

/// A model of the test price file whose input price changed two days ago (UTC
/// midnight): 1.00 USD per million input tokens before, 3.00 since; output free.
pub const REPRICED_MODEL: &str = "ragpulse-repriced-model";

/// The price file every test server gets (see [`TEST_MODEL`] and [`REPRICED_MODEL`]).
pub fn test_prices() -> String {
    let changed = (Utc::now() - TimeDelta::days(2)).date_naive();
    format!(
        r#"
[[price]]
id = "test/ragpulse-test-model@2000-01-01"
provider = "test"
model = "{TEST_MODEL}"
effective_from = 2000-01-01
input = 1.00
cached_input = 0.50
output = 2.00

[[price]]
id = "test/ragpulse-repriced-model@2000-01-01"
provider = "test"
model = "{REPRICED_MODEL}"
effective_from = 2000-01-01
input = 1.00
output = 0

[[price]]
id = "test/ragpulse-repriced-model@{changed}"
provider = "test"
model = "{REPRICED_MODEL}"
effective_from = {changed}
input = 3.00
output = 0
"#
    )
}

static TRACING: Once = Once::new();

/// `TEST_LOG=1 cargo test --test api` shows the servers' logs.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            ragpulse::init_tracing(false);
        }
    });
}

/// A running server and a client for it. Dropping it asks the server to stop.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub client: reqwest::Client,
    /// Kept for the life of the test; removed on drop.
    pub data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// A server with the default limits.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A server whose [`ServerArgs`] the caller may adjust (limits, for instance)
    /// before they are validated into [`Settings`].
    pub async fn spawn_with(configure: impl FnOnce(&mut ServerArgs)) -> TestApp {
        let data_dir = tempfile::tempdir().expect("failed to create a temporary data directory");
        Self::spawn_in(data_dir, configure).await
    }

    /// A server on an existing directory (the data directory is its `data`
    /// subdirectory), for instance the one a stopped server left.
    pub async fn spawn_in(data_dir: TempDir, configure: impl FnOnce(&mut ServerArgs)) -> TestApp {
        init_tracing();
        let prices = data_dir.path().join("test-prices.toml");
        std::fs::write(&prices, test_prices()).expect("failed to write the test price file");
        let mut args = ServerArgs {
            data_dir: Some(data_dir.path().join("data")),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            ingest_token: Some(INGEST_TOKEN.to_string()),
            pricing_file: Some(prices),
            ..Default::default()
        };
        configure(&mut args);
        let settings = Settings::from_args(args).expect("the test settings are invalid");
        // 127.0.0.1:0 unless `configure` chose an address (a restart on the same port).
        let listen = settings.listen;
        let state = AppState::build(settings).expect("failed to build the app state");
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| panic!("failed to bind {listen}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(listener, state, async move {
            let _ = signal.await;
        }));
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap(),
            data_dir,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// Stops the server gracefully, waits for it (writer drained, store closed)
    /// and hands back its directory.
    pub async fn stop(mut self) -> TempDir {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task panicked")
                .expect("the server failed");
        }
        let placeholder = tempfile::tempdir().expect("failed to create a temporary directory");
        std::mem::replace(&mut self.data_dir, placeholder)
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.address, path_and_query)
    }

    /// `POST /api/v1/ingest` of `{"events": events}` with the ingest token.
    pub async fn ingest_json(&self, events: Value) -> (StatusCode, Value) {
        let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
        self.ingest_raw(Some("application/json"), None, body, Some(INGEST_TOKEN))
            .await
    }

    /// `POST /api/v1/ingest` of an NDJSON body with the ingest token.
    pub async fn ingest_ndjson(&self, body: &str) -> (StatusCode, Value) {
        self.ingest_raw(
            Some("application/x-ndjson"),
            None,
            body.as_bytes().to_vec(),
            Some(INGEST_TOKEN),
        )
        .await
    }

    /// Ingests `events`, asserting the answer is a 200 with every event accepted.
    pub async fn ingest_ok(&self, events: Value) {
        let n = events.as_array().map_or(0, Vec::len);
        let (status, body) = self.ingest_json(events).await;
        assert_eq!(status, StatusCode::OK, "ingest failed: {body}");
        assert_eq!(
            body,
            json!({"accepted": n, "duplicates": 0, "rejected": []}),
            "not every event of the arrange step was accepted"
        );
    }

    /// Any ingest request: content type, content encoding, raw body and token
    /// are the caller's. The answer's body is parsed as JSON (`Value::Null` when
    /// it is not JSON).
    pub async fn ingest_raw(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url("/api/v1/ingest")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        if let Some(encoding) = content_encoding {
            request = request.header("Content-Encoding", encoding);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("ingest request failed");
        json_of(response).await
    }

    /// `GET` with the admin token.
    pub async fn get(&self, path_and_query: &str) -> (StatusCode, Value) {
        self.get_with_token(path_and_query, Some(ADMIN_TOKEN)).await
    }

    /// `GET /api/v1/analytics{path_and_query}` with the admin token, asserting 200.
    pub async fn analytics(&self, path_and_query: &str) -> Value {
        let (status, body) = self
            .get(&format!("/api/v1/analytics{path_and_query}"))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "GET /api/v1/analytics{path_and_query} answered {status}: {body}"
        );
        body
    }

    /// `GET` with the given bearer token (or none).
    pub async fn get_with_token(
        &self,
        path_and_query: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.get(self.url(path_and_query));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET request failed");
        json_of(response).await
    }

    /// `GET` without a token, returning the body as text and the content type.
    pub async fn get_text(&self, path: &str) -> (StatusCode, String, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("GET request failed");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, response.text().await.unwrap(), content_type)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("failed to read the body");
    let body = std::str::from_utf8(&bytes)
        .ok()
        .and_then(parse_json_exact)
        .unwrap_or(Value::Null);
    (status, body)
}

/// Parses JSON with every float read exactly as the nearest double to its text.
///
/// serde_json's default float parser (without its `float_roundtrip` feature,
/// which this crate does not enable) may land one ulp away from the nearest
/// double, so "95.08000000000001" could compare equal to 95.08 or not depending
/// on the digits. The contract's numbers are exact, so the tests re-read every
/// float token with `str::parse::<f64>` (correctly rounded). Number tokens
/// appear in the text in the same order as the number leaves of a document-order
/// walk of the value (objects keep their order: `preserve_order`).
pub fn parse_json_exact(text: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    let mut tokens = number_tokens(text).into_iter();
    fix_floats(&mut value, &mut tokens);
    Some(value)
}

fn number_tokens(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
        } else if b == b'"' {
            in_string = true;
            i += 1;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                i += 1;
            }
            tokens.push(&text[start..i]);
        } else {
            i += 1;
        }
    }
    tokens
}

fn fix_floats<'a>(value: &mut Value, tokens: &mut impl Iterator<Item = &'a str>) {
    match value {
        Value::Number(_) => {
            let token = tokens.next().expect("fewer number tokens than numbers");
            if token.contains(['.', 'e', 'E'])
                && let Some(exact) = token
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
            {
                *value = Value::Number(exact);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| fix_floats(item, tokens)),
        Value::Object(map) => map.values_mut().for_each(|item| fix_floats(item, tokens)),
        _ => {}
    }
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

/// A fixed "now" for building a dataset, at whole microseconds so what the
/// server echoes back can be predicted exactly.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: DateTime<Utc>,
}

impl Clock {
    pub fn new() -> Self {
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
        Self { now }
    }

    pub fn at(&self, delta: TimeDelta) -> DateTime<Utc> {
        self.now + delta
    }

    /// RFC 3339, six fraction digits, `Z`: `seconds` before now.
    pub fn ago_s(&self, seconds: i64) -> String {
        rfc3339(self.now - TimeDelta::seconds(seconds))
    }

    pub fn ago_min(&self, minutes: i64) -> String {
        self.ago_s(minutes * 60)
    }

    pub fn ago_h(&self, hours: i64) -> String {
        self.ago_s(hours * 3600)
    }

    pub fn ago_d(&self, days: i64) -> String {
        self.ago_s(days * 86_400)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The wire format of `api.md`: `2026-11-28T18:00:00.123456Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// True for `YYYY-MM-DDTHH:MM:SS.ffffffZ` exactly.
pub fn is_wire_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 27
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..26)
        && b[26] == b'Z'
        && DateTime::parse_from_rfc3339(text).is_ok()
}

// ---------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------

/// A fresh random id.
pub fn new_id() -> Uuid {
    Uuid::new_v4()
}

/// A fixed id from its text (for tests whose orderings depend on ids).
pub fn id(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

// ---------------------------------------------------------------------------
// Events (`ingest.md`)
// ---------------------------------------------------------------------------

/// `base` with the keys of `extra` added or replaced (top level only).
pub fn with(mut base: Value, extra: Value) -> Value {
    let (Value::Object(target), Value::Object(extra)) = (&mut base, extra) else {
        panic!("with() takes two JSON objects");
    };
    for (key, value) in extra {
        target.insert(key, value);
    }
    base
}

/// `base` without `key`.
pub fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

/// A minimal valid interaction: the four required fields only.
pub fn interaction(assistant: Uuid, session: &str, timestamp: &str) -> Value {
    json!({
        "type": "interaction",
        "id": new_id(),
        "timestamp": timestamp,
        "assistant_id": assistant,
        "session_id": session,
    })
}

pub fn assistant(id: Uuid, name: &str) -> Value {
    json!({"type": "assistant", "id": id, "name": name})
}

pub fn user(id: Uuid, email: &str, full_name: &str) -> Value {
    json!({"type": "user", "id": id, "email": email, "full_name": full_name})
}

pub fn connector(id: Uuid, name: &str) -> Value {
    json!({"type": "connector", "id": id, "name": name})
}

pub fn document(id: Uuid, connector: Uuid, file_name: &str, updated_at: &str) -> Value {
    json!({
        "type": "document",
        "id": id,
        "connector_id": connector,
        "file_name": file_name,
        "updated_at": updated_at,
    })
}

pub fn sync(connector: Uuid, status: &str, started_at: &str, duration_s: Option<f64>) -> Value {
    json!({
        "type": "connector_sync",
        "id": new_id(),
        "connector_id": connector,
        "status": status,
        "started_at": started_at,
        "duration_s": duration_s,
    })
}

// ---------------------------------------------------------------------------
// Independent arithmetic
// ---------------------------------------------------------------------------

/// PostgreSQL `percentile_cont` as `api.md` defines it, on ascending values:
/// h = q·(n−1), k = ⌊h⌋, x[k] + (h − k)·(x[k+1] − x[k]), x[k] when k = n−1.
pub fn percentile_cont(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let k = h.floor() as usize;
    if k + 1 >= sorted.len() {
        sorted[k]
    } else {
        sorted[k] + (h - k as f64) * (sorted[k + 1] - sorted[k])
    }
}

/// The value of one Prometheus metric family in a text exposition: the sum of
/// its samples whose labels contain every `label="value"` pair of `labels`.
pub fn metric_sum(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest),
                None => (series, ""),
            };
            (metric == name && labels.iter().all(|l| label_text.contains(l)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Every read endpoint's answer over the widest windows each allows, for
/// all assistants and for `scope`: two stores holding the same events give
/// equal lists.
pub async fn every_answer(app: &TestApp, scope: Option<Uuid>) -> Vec<(String, Value)> {
    let mut paths = vec![
        "/api/v1/analytics/advanced?ttft_hours=168&step_days=90&cache_hours=168&cost_hours=168&trending_limit=50".to_string(),
        "/api/v1/analytics/ttft?hours=168".to_string(),
        "/api/v1/analytics/trending?limit=50&phrasings=true".to_string(),
        "/api/v1/analytics/trending?limit=50&days=365".to_string(),
        "/api/v1/analytics/costs?hours=168".to_string(),
        "/api/v1/analytics/freshness".to_string(),
        "/api/v1/analytics/steps?days=90".to_string(),
        "/api/v1/analytics/cache?hours=168".to_string(),
        "/api/v1/analytics/sessions?days=90".to_string(),
        "/api/v1/analytics/diversity".to_string(),
        "/api/v1/analytics/diversity?days=365".to_string(),
        "/api/v1/analytics/utilization?days=90&limit=500".to_string(),
        "/api/v1/analytics/users?days=90&limit=100".to_string(),
        "/api/v1/analytics/reranking?hours=168".to_string(),
        "/api/v1/analytics/sync?days=90".to_string(),
        "/api/v1/analytics/timeseries?hours=720".to_string(),
        "/api/v1/assistants".to_string(),
        "/api/v1/pricing/unpriced".to_string(),
    ];
    if let Some(assistant) = scope {
        let scoped: Vec<String> = paths
            .iter()
            .filter(|p| {
                p.starts_with("/api/v1/analytics/")
                    && !p.contains("freshness")
                    && !p.contains("sync")
            })
            .map(|p| {
                let separator = if p.contains('?') { '&' } else { '?' };
                format!("{p}{separator}assistant_id={assistant}")
            })
            .collect();
        paths.extend(scoped);
    }
    let mut answers = Vec::new();
    for path in paths {
        let (status, mut body) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        // When the answer was computed, not what it says about the events.
        if let Some(object) = body.as_object_mut() {
            for clock_field in ["generated_at", "from", "to"] {
                object.remove(clock_field);
            }
        }
        answers.push((path, body));
    }
    answers
}

/// Asserts that two stores answer every endpoint alike, naming the first
/// endpoint that differs.
pub fn assert_same_answers(left: &[(String, Value)], right: &[(String, Value)]) {
    assert_eq!(left.len(), right.len());
    for ((path, a), (_, b)) in left.iter().zip(right) {
        assert_eq!(a, b, "{path} differs");
    }
}
