//! The ClickHouse backend's foundation against a real two-shard cluster:
//! `ragpulse migrate` creates the same tables on every node and changes
//! nothing when run again, rows written through a Distributed table are read
//! from either node, and ClickHouse's failures come back typed.
//!
//! The nodes are `$RAGPULSE_CLICKHOUSE_URLS` (comma-separated HTTP URLs of a
//! cluster named `ragpulse`; `scripts/clickhouse-cluster.sh start` runs one,
//! `.ci/run` starts it before these tests). Without it they skip with a
//! message, except under `CI=true`. Each test uses its own database.

use std::process::Command;

use ragpulse::internals::clickhouse::{
    ClickHouseError, Client, Connection, FailureKind, StoreError, expected_tables,
};
use serde::Deserialize;

const IGNORE: &str = "SKIPPED: RAGPULSE_CLICKHOUSE_URLS is not set (scripts/clickhouse-cluster.sh start; CI=true makes this a failure)";

/// The cluster's node URLs, or `None` (outside CI) to skip.
fn urls() -> Option<Vec<String>> {
    match std::env::var("RAGPULSE_CLICKHOUSE_URLS") {
        Ok(urls) if !urls.trim().is_empty() => {
            Some(urls.split(',').map(|u| u.trim().to_string()).collect())
        }
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true, but RAGPULSE_CLICKHOUSE_URLS is not set (.ci/run starts the cluster)"
                );
            }
            eprintln!("{IGNORE}");
            None
        }
    }
}

/// A database name of its own for one test, dropped on every node first.
async fn fresh_database(urls: &[String], test: &str) -> Connection {
    let database = format!("ragpulse_test_{test}");
    let connection = connection(urls, &database);
    let client = Client::new(&connection).unwrap();
    for node in 0..urls.len() {
        client
            .execute(node, &format!("DROP DATABASE IF EXISTS {database}"))
            .await
            .unwrap();
    }
    connection
}

fn connection(urls: &[String], database: &str) -> Connection {
    Connection {
        urls: urls.to_vec(),
        database: database.to_string(),
        cluster: "ragpulse".into(),
        user: None,
        password: None,
    }
}

/// `ragpulse migrate` on `connection`: its exit success and its stdout.
fn migrate(connection: &Connection) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ragpulse"))
        .args(["migrate", "--clickhouse-url", &connection.urls.join(",")])
        .args(["--clickhouse-database", &connection.database])
        .args(["--clickhouse-cluster", &connection.cluster])
        .env_remove("RAGPULSE_CLICKHOUSE_USER")
        .env_remove("RAGPULSE_CLICKHOUSE_PASSWORD")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[derive(Debug, Deserialize, PartialEq)]
struct Table {
    name: String,
    engine: String,
}

async fn tables(client: &Client, node: usize) -> Vec<Table> {
    let sql = format!(
        "SELECT name, engine FROM system.tables WHERE database = '{}' ORDER BY name",
        client.database()
    );
    client.system_rows(node, &sql).await.unwrap()
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn migrate_creates_the_same_tables_on_every_node_and_again_changes_nothing() {
    // Arrange
    let Some(urls) = urls() else { return };
    assert_eq!(urls.len(), 2, "the tests expect the two-node cluster");
    let connection = fresh_database(&urls, "migrate").await;
    let client = Client::new(&connection).unwrap();

    // Act
    let (first_ok, first, first_err) = migrate(&connection);
    let after_first = [tables(&client, 0).await, tables(&client, 1).await];
    let (second_ok, second, second_err) = migrate(&connection);
    let after_second = [tables(&client, 0).await, tables(&client, 1).await];

    // Assert
    assert!(first_ok, "{first_err}");
    assert!(second_ok, "{second_err}");
    let names = |t: &[Table]| t.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    let mut expected: Vec<&str> = [
        "assistants",
        "connectors",
        "documents",
        "interactions",
        "retrievals",
        "rollup_dirty",
        "rollups",
        "syncs",
        "users",
    ]
    .to_vec();
    expected.extend(
        expected
            .clone()
            .into_iter()
            .map(|n| Box::leak(format!("{n}_local").into_boxed_str()) as &str),
    );
    expected.push("schema_version");
    expected.sort();
    assert_eq!(names(&after_first[0]), expected);
    assert_eq!(expected_tables(), expected);
    assert_eq!(after_first[0], after_first[1]);
    assert_eq!(after_second, after_first);
    for table in &after_first[0] {
        let engine = if table.name == "schema_version" || table.name.ends_with("_local") {
            "ReplacingMergeTree"
        } else {
            "Distributed"
        };
        assert_eq!(table.engine, engine, "{}", table.name);
    }
    let list = expected.join(", ");
    let created = |url: &str| {
        format!(
            "{url} (2 shards): database ragpulse_test_migrate created; schema 0 -> 1; created 19 tables: {list}\n"
        )
    };
    assert_eq!(first, format!("{}{}", created(&urls[0]), created(&urls[1])));
    let nothing = |url: &str| format!("{url} (2 shards): schema at version 1, nothing to do\n");
    assert_eq!(
        second,
        format!("{}{}", nothing(&urls[0]), nothing(&urls[1]))
    );
}

#[derive(Debug, serde::Serialize, Deserialize, PartialEq)]
struct Sync {
    sync_id: String,
    connector_id: String,
    status: u8,
    started_at_us: i64,
    duration_us: Option<i64>,
    documents_synced: Option<i64>,
    error: Option<String>,
    version: u64,
}

fn sync(n: u32) -> Sync {
    Sync {
        sync_id: format!("00000000-0000-4000-8000-{n:012}"),
        connector_id: "11111111-1111-4111-8111-111111111111".into(),
        status: (n % 3) as u8,
        started_at_us: 1_765_000_000_000_000 + i64::from(n),
        duration_us: n.is_multiple_of(2).then_some(i64::from(n) * 1000),
        documents_synced: Some(i64::from(n)),
        error: (n % 3 == 2).then(|| format!("failure {n}")),
        version: 1,
    }
}

#[derive(Debug, Deserialize)]
struct Count {
    n: u64,
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn rows_inserted_through_a_distributed_table_are_read_from_either_node_once() {
    // Arrange
    let Some(urls) = urls() else { return };
    let connection = fresh_database(&urls, "distributed").await;
    let (ok, _, err) = migrate(&connection);
    assert!(ok, "{err}");
    let client = Client::new(&connection).unwrap();
    let rows: Vec<Sync> = (1..=200).map(sync).collect();

    // Act: the batch, then the same batch again (a retry) through the other node
    client.insert(0, "syncs", &rows).await.unwrap();
    client.insert(1, "syncs", &rows).await.unwrap();
    let sql = "SELECT sync_id, connector_id, status, started_at_us, duration_us, documents_synced, \
               error, version FROM syncs FINAL ORDER BY sync_id";
    let from_first: Vec<Sync> = client.rows(0, sql).await.unwrap();
    let from_second: Vec<Sync> = client.rows(1, sql).await.unwrap();
    let local = "SELECT count() AS n FROM syncs_local";
    let on_first: Vec<Count> = client.rows(0, local).await.unwrap();
    let on_second: Vec<Count> = client.rows(1, local).await.unwrap();

    // Assert: every row once from either node, each row's copies on one shard
    assert_eq!(from_first, rows);
    assert_eq!(from_second, rows);
    let (a, b) = (on_first[0].n, on_second[0].n);
    assert_eq!(a + b, 400, "both copies of every row are stored");
    assert!(a > 0 && b > 0, "both shards hold rows: {a} and {b}");
    assert!(a.is_multiple_of(2));
    let distinct = "SELECT uniqExact(sync_id) AS n FROM syncs_local";
    let distinct_first: Vec<Count> = client.rows(0, distinct).await.unwrap();
    let distinct_second: Vec<Count> = client.rows(1, distinct).await.unwrap();
    assert_eq!(
        distinct_first[0].n * 2,
        a,
        "a shard holds both copies of its rows"
    );
    assert_eq!(distinct_first[0].n + distinct_second[0].n, 200);
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn an_error_from_clickhouse_comes_back_typed_with_its_code() {
    // Arrange
    let Some(urls) = urls() else { return };
    let connection = fresh_database(&urls, "errors").await;
    let (ok, _, err) = migrate(&connection);
    assert!(ok, "{err}");
    let client = Client::new(&connection).unwrap();

    // Act
    let unknown_table = client
        .rows::<Count>(0, "SELECT count() AS n FROM nope")
        .await;
    let syntax = client.rows::<Count>(1, "SELEKT 1").await;

    // Assert
    match unknown_table {
        Err(ClickHouseError::Server {
            code,
            message,
            status,
        }) => {
            assert_eq!((code, status), (60, 404));
            assert!(message.contains("ragpulse_test_errors.nope"), "{message}");
            assert!(!message.starts_with("DB::Exception"), "{message}");
        }
        other => panic!("expected exception 60, got {other:?}"),
    }
    let syntax = syntax.unwrap_err();
    assert_eq!(syntax.code(), Some(62));
    assert_eq!(syntax.kind(), FailureKind::Other);
    assert!(!StoreError::from(syntax).is_unavailable());
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn an_unreachable_node_is_unavailable() {
    // Arrange: a port nothing listens on (bound, then released)
    let Some(urls) = urls() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let connection = connection(
        &[urls[0].clone(), dead.clone()],
        "ragpulse_test_unreachable",
    );
    let client = Client::new(&connection).unwrap();

    // Act
    let error = client
        .system_rows::<Count>(1, "SELECT 1 AS n")
        .await
        .unwrap_err();
    let (ok, _, stderr) = migrate(&connection);

    // Assert
    assert!(
        matches!(&error, ClickHouseError::Unreachable { url, .. } if *url == dead),
        "{error:?}"
    );
    assert_eq!(error.kind(), FailureKind::Unavailable);
    assert!(StoreError::from(error).is_unavailable());
    assert!(!ok);
    assert!(
        stderr.contains(&format!("ClickHouse at {dead} is unreachable")),
        "{stderr}"
    );
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn a_shard_that_cannot_be_reached_is_unavailable() {
    // Arrange: a remote shard on a port nothing listens on
    let Some(urls) = urls() else { return };
    let client = Client::new(&connection(&urls, "default")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // Act
    let sql = format!("SELECT dummy AS n FROM remote('127.0.0.1:{port}', system.one)");
    let error = client.system_rows::<Count>(0, &sql).await.unwrap_err();

    // Assert: "all connection tries failed", which the API answers 503
    assert_eq!(error.code(), Some(279), "{error:?}");
    assert_eq!(error.kind(), FailureKind::Unavailable);
    assert!(
        error.to_string().contains("All connection tries failed"),
        "{error}"
    );
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn migrate_logs_in_with_the_given_user_and_refuses_a_wrong_password() {
    // Arrange: scripts/clickhouse-cluster.sh defines the user ragpulse/ragpulse_pw
    let Some(urls) = urls() else { return };
    let mut connection = fresh_database(&urls, "login").await;
    connection.user = Some("ragpulse".into());
    let run = |password: &str| {
        Command::new(env!("CARGO_BIN_EXE_ragpulse"))
            .args(["migrate", "--clickhouse-url", &connection.urls.join(",")])
            .args(["--clickhouse-database", &connection.database])
            .env("RAGPULSE_CLICKHOUSE_USER", "ragpulse")
            .env("RAGPULSE_CLICKHOUSE_PASSWORD", password)
            .output()
            .unwrap()
    };

    // Act
    let refused = run("wrong");
    let accepted = run("ragpulse_pw");

    // Assert
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("ClickHouse error 193 (HTTP 401): Wrong password for user ragpulse"),
        "{stderr}"
    );
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    connection.password = Some("ragpulse_pw".into());
    let client = Client::new(&connection).unwrap();
    assert_eq!(tables(&client, 1).await.len(), expected_tables().len());
}

#[derive(Debug, serde::Serialize, Deserialize, PartialEq)]
struct Interaction {
    event_id: String,
    ts_us: i64,
    assistant_id: String,
    session_id: String,
    user_id: Option<String>,
    question: Option<String>,
    ttft_us: Option<i64>,
    cost_nusd: i64,
    step_names: Vec<String>,
    step_duration_us: Vec<i64>,
    document_ids: Vec<String>,
    rerank_before: Option<f64>,
    version: u64,
}

fn interaction(n: u64) -> Interaction {
    Interaction {
        event_id: format!("22222222-0000-4000-8000-{n:012}"),
        ts_us: 1_765_000_000_000_000 + n as i64 * 1_000_003,
        assistant_id: format!("33333333-3333-4333-8333-{:012}", n % 3),
        session_id: format!("session-{}", n / 4),
        user_id: (!n.is_multiple_of(5)).then(|| format!("user-{}", n % 7)),
        question: Some(format!(
            "How do I configure connector {n} for the region eu-{}?",
            n % 9
        )),
        ttft_us: (!n.is_multiple_of(4)).then_some(n as i64 * 17),
        // Beyond 2^53: must come back exact (JSON numbers, not doubles).
        cost_nusd: 9_007_199_254_740_993 + n as i64,
        step_names: vec!["retrieve".into(), "generate".into()],
        step_duration_us: vec![n as i64, 2 * n as i64],
        document_ids: (0..n % 4)
            .map(|d| format!("44444444-4444-4444-8444-{d:012}"))
            .collect(),
        rerank_before: (n % 2 == 1).then_some(n as f64 / 8.0),
        version: 7,
    }
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn a_large_compressed_batch_of_interactions_keeps_every_field() {
    // Arrange: about 600 KB of rows, sent gzip-compressed
    let Some(urls) = urls() else { return };
    let connection = fresh_database(&urls, "interactions").await;
    let (ok, _, err) = migrate(&connection);
    assert!(ok, "{err}");
    let client = Client::new(&connection).unwrap();
    let rows: Vec<Interaction> = (1..=3000).map(interaction).collect();

    // Act
    client.insert(1, "interactions", &rows).await.unwrap();
    let sql = "SELECT event_id, ts_us, assistant_id, session_id, user_id, question, ttft_us, \
               cost_nusd, step_names, step_duration_us, document_ids, rerank_before, version \
               FROM interactions FINAL ORDER BY event_id";
    let read: Vec<Interaction> = client.rows(0, sql).await.unwrap();

    // Assert
    assert_eq!(read.len(), rows.len());
    assert_eq!(read, rows);
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn migrate_completes_a_node_left_halfway_and_a_node_added_later() {
    // Arrange: node 1 has the database and one table (a migration stopped
    // halfway); node 2 has nothing
    let Some(urls) = urls() else { return };
    let connection = fresh_database(&urls, "halfway").await;
    let client = Client::new(&connection).unwrap();
    let database = &connection.database;
    client
        .execute(0, &format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    client
        .execute(
            0,
            &format!(
                "CREATE TABLE {database}.syncs_local (sync_id UUID, connector_id UUID, \
                 status UInt8, started_at_us Int64, duration_us Nullable(Int64), \
                 documents_synced Nullable(Int64), error Nullable(String), version UInt64) \
                 ENGINE = ReplacingMergeTree(version) ORDER BY (sync_id)"
            ),
        )
        .await
        .unwrap();
    let first_node_only = Connection {
        urls: vec![urls[0].clone()],
        ..connection.clone()
    };

    // Act
    let (first_ok, first, first_err) = migrate(&first_node_only);
    let (second_ok, second, second_err) = migrate(&connection);

    // Assert
    assert!(first_ok, "{first_err}");
    assert!(second_ok, "{second_err}");
    assert!(
        first_err.contains(
            "warning: cluster ragpulse has 2 shards and 1 URL(s) were migrated: \
             run migrate with the URL of every node"
        ),
        "{first_err}"
    );
    assert!(!second_err.contains("warning"), "{second_err}");
    let all = expected_tables();
    let without_syncs: Vec<String> = all
        .iter()
        .filter(|t| *t != "syncs_local")
        .cloned()
        .collect();
    assert_eq!(
        first,
        format!(
            "{} (2 shards): schema 0 -> 1; created 18 tables: {}\n",
            urls[0],
            without_syncs.join(", ")
        )
    );
    assert_eq!(
        second,
        format!(
            "{} (2 shards): schema at version 1, nothing to do\n\
             {} (2 shards): database {database} created; schema 0 -> 1; created 19 tables: {}\n",
            urls[0],
            urls[1],
            all.join(", ")
        )
    );
    let names = |t: Vec<Table>| t.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(names(tables(&client, 0).await), all);
    assert_eq!(names(tables(&client, 1).await), all);
}

#[tokio::test]
#[ignore = "needs ClickHouse: .ci/run starts a two-shard cluster and runs this with --ignored"]
async fn migrate_leaves_a_newer_schema_alone() {
    // Arrange: node 2 records a schema version this binary does not know
    let Some(urls) = urls() else { return };
    let connection = fresh_database(&urls, "newer").await;
    let (ok, _, err) = migrate(&connection);
    assert!(ok, "{err}");
    let client = Client::new(&connection).unwrap();
    let database = &connection.database;
    client
        .execute(
            1,
            &format!("INSERT INTO {database}.schema_version (version, applied_us) VALUES (99, 1)"),
        )
        .await
        .unwrap();
    client
        .execute(1, &format!("DROP TABLE {database}.users"))
        .await
        .unwrap();

    // Act
    let (ok, stdout, stderr) = migrate(&connection);

    // Assert: the first node done, the newer one refused and untouched
    assert!(!ok);
    assert_eq!(
        stdout,
        format!(
            "{} (2 shards): schema at version 1, nothing to do\n",
            urls[0]
        )
    );
    assert!(
        stderr.contains(&format!(
            "{} holds schema version 99, newer than this ragpulse's 1: upgrade ragpulse",
            urls[1]
        )),
        "{stderr}"
    );
    let names: Vec<String> = tables(&client, 1)
        .await
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(!names.contains(&"users".to_string()), "{names:?}");
}
