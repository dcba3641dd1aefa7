//! The real binary (`ragpulse serve`) as a child process: a 2xx survives a
//! SIGKILL, a foreign database file is refused, generated tokens stay secret.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Clock, INGEST_TOKEN, assistant, connector, interaction, new_id, sync, with,
};
use crate::process::{data_dir, start};

#[tokio::test]
async fn every_event_acknowledged_before_a_sigkill_is_there_after_a_restart() {
    // Arrange
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let client = reqwest::Client::new();
    let clock = Clock::new();
    let (bot, wiki) = (new_id(), new_id());
    let first_batch: Vec<Value> = std::iter::once(assistant(bot, "Durable bot"))
        .chain((0..50).map(|i| {
            with(
                interaction(bot, &format!("s{}", i % 10), &clock.ago_s(600 + i)),
                json!({"input_tokens": 10, "output_tokens": 1}),
            )
        }))
        .collect();
    let second_batch: Vec<Value> = std::iter::once(connector(wiki, "Wiki"))
        .chain((0..5).map(|i| sync(wiki, "success", &clock.ago_s(3600 + i), Some(1.0))))
        .chain((0..30).map(|i| {
            with(
                interaction(bot, "s-second", &clock.ago_s(1200 + i)),
                json!({"input_tokens": 10, "output_tokens": 1}),
            )
        }))
        .collect();
    let third_batch: Vec<Value> = (0..20)
        .map(|i| {
            with(
                interaction(bot, "s-third", &clock.ago_s(1800 + i)),
                json!({"input_tokens": 10, "output_tokens": 1, "cache_hit": true}),
            )
        })
        .collect();
    let server = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN))).expect("the server did not start");
    for (batch, accepted) in [(&first_batch, 51), (&second_batch, 36), (&third_batch, 20)] {
        let (status, body) = server.ingest(&client, json!(batch)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"accepted": accepted, "duplicates": 0, "rejected": []})
        );
    }

    // Act: SIGKILL right after the last 2xx, then start again on the same directory.
    server.kill();
    let restarted =
        start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN))).expect("the server did not restart");

    // Assert
    let (status, cache) = restarted
        .get(&client, "/api/v1/analytics/cache", ADMIN_TOKEN)
        .await;
    assert_eq!(status, StatusCode::OK, "{cache}");
    assert_eq!(
        cache,
        json!({"hit_rate": 20.0, "total_requests": 100, "cache_hits": 20, "cache_misses": 80, "period_hours": 24})
    );
    let (_, costs) = restarted
        .get(&client, "/api/v1/analytics/costs", ADMIN_TOKEN)
        .await;
    assert_eq!(
        costs,
        json!([{"assistant_id": bot, "assistant_name": "Durable bot", "total_tokens": 1100,
                "input_tokens": 1000, "output_tokens": 100, "estimated_cost_usd": 0.0}])
    );
    let (_, syncs) = restarted
        .get(&client, "/api/v1/analytics/sync", ADMIN_TOKEN)
        .await;
    assert_eq!(syncs[0]["connector_name"], json!("Wiki"), "{syncs}");
    assert_eq!(syncs[0]["total_syncs"], json!(5), "{syncs}");
    // A retry of an acknowledged batch is all duplicates (the assistant is an upsert).
    let (status, retry) = restarted.ingest(&client, json!(first_batch)).await;
    assert_eq!(status, StatusCode::OK, "{retry}");
    assert_eq!(
        retry,
        json!({"accepted": 1, "duplicates": 50, "rejected": []})
    );
}

/// A file that is not SQLite at all.
fn not_sqlite(path: &Path) {
    std::fs::write(path, b"this is a spreadsheet, not a database\n".repeat(200)).unwrap();
}

/// Another application's SQLite database (rollback journal, one table).
fn other_sqlite(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL);
         INSERT INTO orders (total) VALUES (9.5);",
    )
    .unwrap();
}

type MakeFile = fn(&Path);

const FOREIGN_FILES: [(MakeFile, &str); 2] = [
    (not_sqlite, "a file that is not SQLite"),
    (other_sqlite, "another application's SQLite database"),
];

#[tokio::test]
async fn a_foreign_file_as_the_database_makes_serve_exit_non_zero_with_a_clear_message() {
    for (make, case) in FOREIGN_FILES {
        // Arrange
        let root = tempfile::tempdir().unwrap();
        let dir = data_dir(&root);
        std::fs::create_dir_all(&dir).unwrap();
        make(&dir.join("ragpulse.db"));

        // Act
        let outcome = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)));

        // Assert
        let exited = match outcome {
            Ok(process) => {
                let address = process.address.clone();
                drop(process);
                panic!("{case}: serve started on {address} instead of refusing the file");
            }
            Err(exited) => exited,
        };
        assert!(
            !exited.status.success(),
            "{case}: exit status {}",
            exited.status
        );
        let message = exited.stderr.to_lowercase();
        assert!(
            message.contains("ragpulse.db")
                && message.contains("not a")
                && message.contains("database"),
            "{case}: the message does not say which file is not a (ragpulse) database:\n{}",
            exited.stderr
        );
        assert!(
            !exited.stdout.contains("listening"),
            "{case}: it printed {:?}",
            exited.stdout
        );
    }
}

#[tokio::test]
async fn serve_leaves_a_foreign_database_file_untouched_when_it_refuses_it() {
    for (make, case) in FOREIGN_FILES {
        // Arrange
        let root = tempfile::tempdir().unwrap();
        let dir = data_dir(&root);
        std::fs::create_dir_all(&dir).unwrap();
        let database = dir.join("ragpulse.db");
        make(&database);
        let before = std::fs::read(&database).unwrap();

        // Act
        let outcome = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)));

        // Assert
        assert!(outcome.is_err(), "{case}: serve accepted the file");
        let after = std::fs::read(&database).unwrap();
        let first_difference = before.iter().zip(&after).position(|(x, y)| x != y);
        assert!(
            before == after,
            "{case}: the refused file was modified (length {} → {}, first differing byte at {:?}; \
             bytes 18–19 of an SQLite header are the journal mode: {:?} → {:?})",
            before.len(),
            after.len(),
            first_difference,
            before.get(18..20),
            after.get(18..20),
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with("-wal") || n.ends_with("-shm")),
            "{case}: WAL files were created next to the refused file: {names:?}"
        );
    }
}

#[tokio::test]
async fn generated_tokens_are_stored_with_mode_0600_and_never_printed() {
    // Arrange
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let client = reqwest::Client::new();

    // Act
    let server = start(&dir, None).expect("the server did not start");
    let file = dir.join(ragpulse::server::TOKEN_FILE);
    let text = std::fs::read_to_string(&file).expect("no token file was written");
    let tokens: Vec<String> = serde_json::from_str::<Value>(&text)
        .expect("the token file is not JSON")
        .as_object()
        .expect("the token file is not a JSON object")
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut statuses = Vec::new();
    for token in &tokens {
        statuses.push(server.get(&client, "/api/v1/analytics/ttft", token).await.0);
    }
    let (stdout, stderr) = server.kill();

    // Assert
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token file has mode {mode:o}");
    }
    assert_eq!(
        tokens.len(),
        2,
        "expected an admin and an ingest token: {text}"
    );
    for token in &tokens {
        assert!(
            token.len() >= 16,
            "a generated token is weak: {} characters",
            token.len()
        );
        assert!(
            !stdout.contains(token.as_str()),
            "a token was printed on stdout:\n{stdout}"
        );
        assert!(
            !stderr.contains(token.as_str()),
            "a token was printed on stderr:\n{stderr}"
        );
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        vec![StatusCode::OK, StatusCode::FORBIDDEN],
        "one generated token must read (admin), the other must not (ingest)"
    );

    // And a restart keeps the same tokens.
    let restarted = start(&dir, None).expect("the server did not restart");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "the token file changed"
    );
    let mut statuses = Vec::new();
    for token in &tokens {
        statuses.push(
            restarted
                .get(&client, "/api/v1/analytics/ttft", token)
                .await
                .0,
        );
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![StatusCode::OK, StatusCode::FORBIDDEN]);
    let (stdout, stderr) = restarted.kill();
    for token in &tokens {
        assert!(
            !stdout.contains(token.as_str()) && !stderr.contains(token.as_str()),
            "a token was printed after the restart"
        );
    }
}

#[tokio::test]
async fn a_graceful_stop_keeps_every_acknowledged_event_for_the_next_start() {
    // Arrange
    let app = crate::helpers::TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let events: Vec<Value> = (0..25)
        .map(|i| {
            with(
                interaction(bot, "s", &clock.ago_s(60 + i)),
                json!({"ttft_s": 0.25}),
            )
        })
        .collect();
    app.ingest_ok(json!(events)).await;

    // Act
    let dir = app.stop().await;
    let restarted = crate::helpers::TestApp::spawn_in(dir, |_| {}).await;

    // Assert
    assert_eq!(
        restarted.analytics("/ttft").await,
        json!({"p50": 0.25, "p95": 0.25, "p99": 0.25, "period_hours": 24})
    );
    assert_eq!(
        restarted.analytics("/cache").await["total_requests"],
        json!(25)
    );
}
