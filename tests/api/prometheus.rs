//! The RAG series with a real Prometheus: Debian's `prometheus` package,
//! started by the test on a free port with a generated configuration,
//! scraping the real server every second while events are ingested; the
//! values are then read back through Prometheus's HTTP API. Also: the alert
//! rules pass `promtool check rules` and their unit tests, and every
//! expression of the Grafana dashboard parses and returns data.
//!
//! `prometheus` and `promtool` are found as `$RAGPULSE_PROMETHEUS` and
//! `$RAGPULSE_PROMTOOL`, else on the PATH; without them these tests skip
//! with a message, except under `CI=true` (`.ci/run` installs them).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Clock, TEST_MODEL, TestApp, assistant, connector, document, new_id, percentile_cont, sync, with,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The tool's path, or `None` (after saying why) when the test should skip.
fn tool(name: &str, variable: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path));
    }
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(PathBuf::from(name));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true, but {name} is not installed (.ci/run installs Debian's prometheus package)"
        );
    }
    eprintln!(
        "SKIPPED: {name} is not installed (apt-get install prometheus, or set {variable}; CI=true makes this a failure)"
    );
    None
}

fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
#[ignore = "needs Prometheus: .ci/run installs it and runs this with --ignored"]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool", "RAGPULSE_PROMTOOL") else {
        return;
    };
    let rules = repo("deploy/prometheus/rules.yml");
    let (ok, text) = run(&promtool, &["check", "rules", rules.to_str().unwrap()]);
    assert!(ok, "promtool check rules failed:\n{text}");
    let tests = repo("deploy/prometheus/rules_test.yml");
    let (ok, text) = run(&promtool, &["test", "rules", tests.to_str().unwrap()]);
    assert!(ok, "promtool test rules failed:\n{text}");
}

/// Every PromQL expression of the dashboard's panels.
fn dashboard_expressions() -> Vec<String> {
    let text = std::fs::read_to_string(repo("deploy/grafana/ragpulse.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(
                target["expr"]
                    .as_str()
                    .expect("a target without expr")
                    .to_string(),
            );
        }
    }
    out
}

/// An expression as Grafana sends it: its variables replaced.
fn substituted(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "15s")
        .replace("$assistant", ".*")
}

#[test]
#[ignore = "needs Prometheus: .ci/run installs it and runs this with --ignored"]
fn every_dashboard_expression_parses_and_the_datasource_is_a_variable() {
    let Some(promtool) = tool("promtool", "RAGPULSE_PROMTOOL") else {
        return;
    };
    let text = std::fs::read_to_string(repo("deploy/grafana/ragpulse.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
        "no datasource variable"
    );
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel.get("targets").is_some() {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
        }
    }
    let expressions = dashboard_expressions();
    assert!(expressions.len() >= 20, "{expressions:?}");
    // promtool parses recording rules: one per expression.
    let rules = json!({"groups": [{"name": "dashboard", "rules": expressions.iter().enumerate()
        .map(|(i, e)| json!({"record": format!("dashboard:expr_{i}"), "expr": substituted(e)}))
        .collect::<Vec<_>>()}]});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yml");
    // JSON is YAML.
    std::fs::write(&file, rules.to_string()).unwrap();
    let (ok, text) = run(&promtool, &["check", "rules", file.to_str().unwrap()]);
    assert!(ok, "a dashboard expression does not parse:\n{text}");
    assert!(
        text.contains(&format!("{} rules found", expressions.len())),
        "{text}"
    );
}

/// A Prometheus server of the test; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second as job `ragpulse`, with the
    /// alert rules loaded and evaluated every second.
    async fn start(program: &Path, target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: ragpulse\n    static_configs:\n      - targets: ['{target}']\n",
                repo("deploy/prometheus/rules.yml").display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start prometheus");
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _dir: dir,
        };
        prometheus
            .until("Prometheus to be ready", || async {
                let response = prometheus
                    .client
                    .get(format!("{}/-/ready", prometheus.url))
                    .send()
                    .await;
                response
                    .is_ok_and(|r| r.status().is_success())
                    .then_some(())
            })
            .await;
        prometheus
    }

    /// Polls `probe` until it gives a value (30 s at most).
    async fn until<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            assert!(Instant::now() < deadline, "waited 30 s for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An instant query's result vector (the query must succeed).
    async fn query(&self, promql: &str) -> Vec<Value> {
        let response: Value = self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .expect("query request")
            .json()
            .await
            .expect("query answer");
        assert_eq!(response["status"], "success", "{promql}: {response}");
        response["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The value of a query that yields exactly one sample, if it does.
    async fn scalar(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Waits until `promql` yields one sample equal to `expected`.
    async fn wait_for(&self, promql: &str, expected: f64) {
        let what = format!("{promql} == {expected}");
        self.until(&what, || async {
            self.scalar(promql).await.filter(|v| *v == expected)
        })
        .await;
    }
}

/// TTFT upper bounds of `ragpulse_ttft_seconds`, seconds (and +Inf).
const TTFT_BOUNDS: [f64; 17] = [
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0,
];

/// What `histogram_quantile` answers over these bounds for `values`,
/// computed here independently: the rank q·n falls in the first bucket whose
/// cumulative count reaches it, interpolated linearly inside that bucket.
fn bucket_quantile(q: f64, values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    let rank = q * n;
    let cumulative = |bound: f64| values.iter().filter(|&&v| v <= bound).count() as f64;
    let mut lower = 0.0;
    for &upper in &TTFT_BOUNDS {
        let (below, at) = (cumulative(lower), cumulative(upper));
        if at >= rank {
            let lower_bound = if upper == TTFT_BOUNDS[0] { 0.0 } else { lower };
            let result = lower_bound + (upper - lower_bound) * (rank - below) / (at - below);
            return (result, lower_bound, upper);
        }
        lower = upper;
    }
    (TTFT_BOUNDS[16], TTFT_BOUNDS[16], f64::INFINITY)
}

/// The test's traffic: interactions of one assistant with known first-token
/// times, tokens and cache outcomes, with steps, rerank data, questions and
/// retrieved documents, so that every series and every gauge gets samples.
struct Traffic {
    assistant: Uuid,
    documents: [Uuid; 3],
    ttfts_s: Vec<f64>,
    hits: u64,
    input_tokens: i64,
    /// Nano-dollars at the test price file's rates.
    cost_nusd: i64,
}

impl Traffic {
    fn new() -> Self {
        Self {
            assistant: new_id(),
            documents: [new_id(), new_id(), new_id()],
            ttfts_s: Vec::new(),
            hits: 0,
            input_tokens: 0,
            cost_nusd: 0,
        }
    }

    /// `batches` batches of ten interactions, 0.4 s apart (Prometheus
    /// scrapes every second in between).
    async fn send(&mut self, app: &TestApp, clock: &Clock, batches: usize) {
        for _ in 0..batches {
            let first = self.ttfts_s.len() as u64 + 1;
            let batch: Vec<Value> = (first..first + 10)
                .map(|i| self.interaction(i, clock))
                .collect();
            app.ingest_ok(Value::Array(batch)).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }

    /// Interaction `i` (the same `i` gives the same values).
    fn interaction(&mut self, i: u64, clock: &Clock) -> Value {
        let ttft_ms = 120 + (i * 373) % 4_700;
        let (input, cached, output) = (
            1_000 + (i % 7) as i64 * 10,
            (i % 3) as i64 * 50,
            100 + i as i64,
        );
        let hit = i.is_multiple_of(4);
        self.ttfts_s.push(ttft_ms as f64 / 1e3);
        self.hits += u64::from(hit);
        self.input_tokens += input;
        // Test model: input 1.00, cached input 0.50, output 2.00 USD per million tokens.
        self.cost_nusd += (input - cached) * 1_000 + cached * 500 + output * 2_000;
        let question =
            ["How do I reset my password?", "What is the refund policy?"][(i % 2) as usize];
        json!({
            "type": "interaction",
            "id": new_id(),
            "timestamp": clock.ago_s(5),
            "assistant_id": self.assistant,
            "session_id": format!("session-{}", i % 5),
            "question": question,
            "model": TEST_MODEL,
            "ttft_s": ttft_ms as f64 / 1e3,
            "total_duration_s": ttft_ms as f64 / 1e3 + 1.0,
            "cache_hit": hit,
            "input_tokens": input,
            "cached_input_tokens": cached,
            "output_tokens": output,
            "steps": [{"name": "retrieval", "duration_s": 0.2}, {"name": "synthesis", "duration_s": 1.1}],
            "retrieved_document_ids": [self.documents[0]],
            "rerank": {"score_before": 0.4, "score_after": 0.6, "position_change": 1.5},
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Prometheus: .ci/run installs it and runs this with --ignored"]
async fn prometheus_reads_the_exact_values_sent_and_sees_no_counter_reset_across_a_restart() {
    // Arrange: a server on a fixed port (the restart reuses it) and a
    // Prometheus scraping it every second.
    let Some(program) = tool("prometheus", "RAGPULSE_PROMETHEUS") else {
        return;
    };
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let configure = move |args: &mut ragpulse::config::ServerArgs| {
        args.listen = Some(listen);
        args.gauge_interval = Some(1);
    };
    let app = TestApp::spawn_with(configure).await;
    let prometheus = Prometheus::start(&program, &listen.to_string()).await;
    let clock = Clock::new();
    let mut traffic = Traffic::new();
    let a = traffic.assistant;
    let confluence = new_id();
    let [fresh, aging, stale] = traffic.documents;
    app.ingest_ok(json!([
        assistant(a, "Support bot"),
        connector(confluence, "Confluence"),
        document(fresh, confluence, "fresh.pdf", &clock.ago_d(1)),
        document(aging, confluence, "aging.pdf", &clock.ago_d(40)),
        document(stale, confluence, "stale.pdf", &clock.ago_d(100)),
        sync(confluence, "success", &clock.ago_min(50), Some(30.0)),
        sync(confluence, "failure", &clock.ago_min(40), Some(5.0)),
        sync(confluence, "failure", &clock.ago_min(30), None),
        sync(confluence, "failure", &clock.ago_min(20), Some(7.0)),
    ]))
    .await;
    // One invalid event, so the rejection series exists too.
    let (status, _) = app
        .ingest_json(json!([{"type": "interaction", "id": "not-a-uuid"}]))
        .await;
    assert_eq!(status, reqwest::StatusCode::MULTI_STATUS);

    // Act: ingest in small batches while Prometheus scrapes.
    traffic.send(&app, &clock, 6).await;
    let id = format!("assistant_id=\"{a}\"");
    let total = traffic.ttfts_s.len() as f64;
    prometheus
        .wait_for(&format!("sum(ragpulse_interactions_total{{{id}}})"), total)
        .await;

    // Assert: counters equal what was sent.
    let hits =
        format!("ragpulse_interactions_total{{{id},cache=\"hit\",assistant=\"Support bot\"}}");
    assert_eq!(prometheus.scalar(&hits).await, Some(traffic.hits as f64));
    let input = format!("sum(ragpulse_input_tokens_total{{{id},model=\"{TEST_MODEL}\"}})");
    assert_eq!(
        prometheus.scalar(&input).await,
        Some(traffic.input_tokens as f64)
    );
    let cost = format!("sum(ragpulse_cost_usd_total{{{id}}})");
    let expected_cost = traffic.cost_nusd as f64 / 1e9;
    let got = prometheus.scalar(&cost).await.unwrap();
    assert!(
        (got - expected_cost).abs() <= 1e-12 * expected_cost,
        "{got} != {expected_cost}"
    );
    let steps = format!("ragpulse_step_duration_seconds_count{{{id},step=\"synthesis\"}}");
    assert_eq!(prometheus.scalar(&steps).await, Some(total));
    let rerank = format!(
        "ragpulse_rerank_score_gain_total{{{id}}} / ragpulse_reranked_interactions_total{{{id}}}"
    );
    assert!((prometheus.scalar(&rerank).await.unwrap() - 0.2).abs() < 1e-9);

    // Assert: TTFT percentiles from the buckets, as computed here, and within
    // the bucket that holds the exact percentile.
    let mut sorted = traffic.ttfts_s.clone();
    sorted.sort_by(f64::total_cmp);
    for q in [0.5, 0.95, 0.99] {
        let promql =
            format!("histogram_quantile({q}, sum by (le) (ragpulse_ttft_seconds_bucket{{{id}}}))");
        let got = prometheus.scalar(&promql).await.unwrap();
        let (expected, lower, upper) = bucket_quantile(q, &sorted);
        assert!(
            (got - expected).abs() < 1e-9,
            "p{q}: Prometheus {got}, expected {expected}"
        );
        let exact = percentile_cont(&sorted, q);
        assert!(
            lower <= exact && exact <= upper && lower <= got && got <= upper,
            "p{q}: exact {exact} and {got} must share the bucket ({lower}, {upper}]"
        );
    }

    // Assert: connectors and the background gauges.
    let failures = "ragpulse_connector_consecutive_failures{connector=\"Confluence\"}";
    prometheus.wait_for(failures, 3.0).await;
    prometheus
        .wait_for(
            "ragpulse_connector_syncs_total{connector=\"Confluence\",status=\"failure\"}",
            3.0,
        )
        .await;
    for (freshness, n) in [("fresh", 1.0), ("aging", 1.0), ("stale", 1.0)] {
        prometheus
            .wait_for(
                &format!("ragpulse_documents{{freshness=\"{freshness}\"}}"),
                n,
            )
            .await;
    }
    // Only the fresh document was retrieved.
    prometheus.wait_for("ragpulse_cold_documents", 2.0).await;
    prometheus
        .wait_for("ragpulse_sessions{size=\"power\"}", 5.0)
        .await;
    prometheus.wait_for("ragpulse_topics", 2.0).await;
    prometheus.wait_for("ragpulse_ready", 1.0).await;
    // The connector alert (no `for`) fires from the real series.
    prometheus
        .until("RagpulseConnectorFailing to fire", || async {
            let alerts = prometheus
                .query("ALERTS{alertname=\"RagpulseConnectorFailing\",alertstate=\"firing\"}")
                .await;
            alerts
                .iter()
                .any(|a| a["metric"]["connector"] == "Confluence")
                .then_some(())
        })
        .await;

    // Act: restart the server on the same port (Prometheus sees it down for
    // a couple of scrapes), then ingest more.
    let dir = app.stop().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let app = TestApp::spawn_in(dir, configure).await;
    let _ = app
        .ingest_json(json!([{"type": "interaction", "id": "not-a-uuid"}]))
        .await;
    traffic.send(&app, &clock, 3).await;
    let total = traffic.ttfts_s.len() as f64;
    prometheus
        .wait_for(&format!("sum(ragpulse_interactions_total{{{id}}})"), total)
        .await;

    // Assert: the gap was seen, no counter went back, the totals hold both runs.
    assert_eq!(
        prometheus
            .scalar("min_over_time(up{job=\"ragpulse\"}[2m])")
            .await,
        Some(0.0)
    );
    for series in [
        format!("ragpulse_interactions_total{{{id}}}"),
        format!("ragpulse_ttft_seconds_bucket{{{id}}}"),
        format!("ragpulse_ttft_seconds_count{{{id}}}"),
        format!("ragpulse_cost_usd_total{{{id}}}"),
        format!("ragpulse_input_tokens_total{{{id}}}"),
        format!("ragpulse_step_duration_seconds_count{{{id}}}"),
        "ragpulse_connector_syncs_total".to_string(),
    ] {
        let resets = prometheus.query(&format!("resets({series}[2m]) > 0")).await;
        assert!(
            resets.is_empty(),
            "{series} was reset across the restart: {resets:?}"
        );
    }
    assert_eq!(prometheus.scalar(&hits).await, Some(traffic.hits as f64));
    let got = prometheus.scalar(&cost).await.unwrap();
    let expected_cost = traffic.cost_nusd as f64 / 1e9;
    assert!(
        (got - expected_cost).abs() <= 1e-12 * expected_cost,
        "{got} != {expected_cost}"
    );

    // Assert: every dashboard expression returns data from the real series,
    // and every rule evaluates without error.
    for expr in dashboard_expressions() {
        let promql = substituted(&expr);
        let result = prometheus.query(&promql).await;
        assert!(
            !result.is_empty(),
            "the dashboard's {promql} returns nothing"
        );
    }
    let rules: Value = prometheus
        .client
        .get(format!("{}/api/v1/rules", prometheus.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names = BTreeSet::new();
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "{rule}");
            names.insert(rule["name"].as_str().unwrap().to_string());
        }
    }
    assert!(names.contains("RagpulseTtftP95High"), "{names:?}");
    drop(app);
}

/// Every family `/metrics` exposes (RAG series included, after events of
/// every kind) is listed in docs/monitoring.md, and every `ragpulse_` name
/// the docs list exists.
#[tokio::test]
async fn every_series_on_metrics_is_documented_in_the_monitoring_guide() {
    let app = TestApp::spawn_with(|args| args.gauge_interval = Some(1)).await;
    let clock = Clock::new();
    let mut traffic = Traffic::new();
    let c = new_id();
    app.ingest_ok(json!([
        connector(c, "Confluence"),
        sync(c, "success", &clock.ago_min(5), Some(1.0)),
        traffic.interaction(1, &clock),
        with(
            traffic.interaction(2, &clock),
            json!({"model": "no-such-model"})
        ),
    ]))
    .await;
    let _ = app.ingest_json(json!([{"type": "nope"}])).await;
    let _ = app.get("/api/v1/analytics/advanced").await;
    let text = loop {
        let (_, text, _) = app.get_text("/metrics").await;
        if text.contains("ragpulse_ready") && text.contains("ragpulse_topic_diversity_score") {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let exposed: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(
            |name| match text.contains(&format!("# TYPE {name} counter")) {
                true => format!("{name}_total"),
                false => name.to_string(),
            },
        )
        .collect();
    let guide = std::fs::read_to_string(repo("docs/monitoring.md")).unwrap();
    let documented: BTreeSet<String> = guide
        .lines()
        .filter(|l| l.starts_with("| `ragpulse_"))
        .filter_map(|l| l.split('`').nth(1))
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = exposed.difference(&documented).collect();
    assert!(missing.is_empty(), "not in docs/monitoring.md: {missing:?}");
    // A family with labels appears with its first sample: a metric failure
    // cannot be caused from outside, the OTLP families by reason or outcome
    // need a refused span, a refused request or a finalised trace, and the
    // retention counter by table a retention run that deleted something.
    let only_after_a_sample = [
        "ragpulse_metric_failures_total",
        "ragpulse_retention_deleted_rows_total",
        "ragpulse_otlp_requests_refused_total",
        "ragpulse_otlp_spans_rejected_total",
        "ragpulse_otlp_traces_total",
    ];
    let stale: Vec<&String> = documented
        .difference(&exposed)
        .filter(|name| !only_after_a_sample.contains(&name.as_str()))
        .collect();
    assert!(stale.is_empty(), "documented but not exposed: {stale:?}");
}

/// Label values come from clients: a quote or a newline in a name stays
/// inside its label value and cannot add a series of its own.
#[tokio::test]
async fn names_sent_by_clients_cannot_write_lines_into_metrics() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    let forged = "x\"} 1\nragpulse_forged_total 42\n#";

    // Act
    app.ingest_ok(json!([
        assistant(a, forged),
        with(
            crate::helpers::interaction(a, "s", &clock.ago_s(5)),
            json!({"model": forged}),
        ),
    ]))
    .await;
    let (_, text, _) = app.get_text("/metrics").await;

    // Assert: the forged line is not one; both the RAG series and the
    // unpriced-model counter carry the name escaped.
    assert!(
        !text.lines().any(|l| l.starts_with("ragpulse_forged_total")),
        "{text}"
    );
    let escaped = r#"x\"} 1\nragpulse_forged_total 42\n#"#;
    assert!(
        text.contains(&format!(
            "ragpulse_unpriced_interactions_total{{model=\"{escaped}\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ragpulse_interactions_total{{assistant=\"{escaped}\""
        )),
        "{text}"
    );
}
