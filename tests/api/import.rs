//! `ragpulse import FILE`, the real binary: every line goes through the
//! ingest API's decoding and validation, the summary counts what happened to
//! each line, and a server started on the data directory then has the events.

use std::process::Command;

use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, Clock, INGEST_TOKEN, interaction, new_id, percentile_cont, with, without,
};
use crate::process::{data_dir, start};

#[tokio::test]
async fn import_stores_valid_lines_counts_duplicates_and_rejects_bad_lines_one_by_one() {
    // Arrange: three valid interactions (TTFT 1, 3 and 2 s), one of them sent
    // twice, a blank line, a line that is not JSON, an event without its
    // session, a line that is not UTF-8, and no newline after the last line.
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let clock = Clock::new();
    let bot = new_id();
    let at = |hours: i64, ttft: f64| {
        with(
            interaction(bot, "s1", &clock.ago_h(hours)),
            json!({"ttft_s": ttft, "total_duration_s": 10.0}),
        )
    };
    let first = at(3, 1.0);
    let mut file = Vec::new();
    for line in [
        first.to_string(),
        String::new(),
        "not json".to_string(),
        at(2, 3.0).to_string(),
        first.to_string(),
        without(at(1, 5.0), "session_id").to_string(),
    ] {
        file.extend_from_slice(line.as_bytes());
        file.push(b'\n');
    }
    file.extend_from_slice(b"{\"type\": \"user\", \"id\": \"\xff\"}\n");
    file.extend_from_slice(at(1, 2.0).to_string().as_bytes());
    let path = root.path().join("events.ndjson");
    std::fs::write(&path, &file).unwrap();

    // Act
    let output = Command::new(env!("CARGO_BIN_EXE_ragpulse"))
        .arg("import")
        .arg(&path)
        .arg("--data-dir")
        .arg(&dir)
        .arg("--quiet")
        .env("NO_COLOR", "1")
        .output()
        .expect("failed to run ragpulse import");

    // Assert: the summary, and each rejection named.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("3 accepted, 1 duplicates, 3 rejected"),
        "{stdout}"
    );
    for message in [
        "line is not valid JSON",
        "session_id: is required",
        "line is not valid JSON: invalid unicode code point",
    ] {
        assert!(
            stderr.contains(message),
            "{message} missing from:\n{stderr}"
        );
    }

    // Assert: a server on the directory has exactly the three interactions.
    let server = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)))
        .unwrap_or_else(|e| panic!("the server did not start: {e:?}"));
    let (status, got) = server
        .get(
            &reqwest::Client::new(),
            &format!("/api/v1/analytics/ttft?assistant_id={bot}"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{got}");
    let sorted = [1.0, 2.0, 3.0];
    assert_eq!(
        got,
        json!({
            "p50": percentile_cont(&sorted, 0.50),
            "p95": percentile_cont(&sorted, 0.95),
            "p99": percentile_cont(&sorted, 0.99),
            "period_hours": 24,
        })
    );
}

/// Runs the real binary in `dir` with no `RAGPULSE_*` variable of this
/// process; its stdout, or a panic with everything it printed.
fn offline(dir: &std::path::Path, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ragpulse"));
    command.args(args).current_dir(dir).env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAGPULSE_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("failed to run ragpulse");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn the_offline_commands_work_on_the_data_directory_and_horizon_of_the_config_file() {
    // Arrange: ./ragpulse.toml names a data directory and a horizon of 1,000
    // days, and the file holds an interaction 500 days old (refused under the
    // default horizon of 400).
    let root = tempfile::tempdir().unwrap();
    let configured = root.path().join("from-config");
    let config = format!(
        "data_dir = {:?}\nmax_event_age_days = 1000\n",
        configured.display().to_string()
    );
    std::fs::write(root.path().join("ragpulse.toml"), &config).unwrap();
    let old = interaction(new_id(), "s1", &Clock::new().ago_h(500 * 24));
    std::fs::write(root.path().join("events.ndjson"), format!("{old}\n")).unwrap();

    // Act: import reads ./ragpulse.toml; the others get it as --config from
    // another directory.
    let imported = offline(root.path(), &["import", "events.ndjson", "--quiet"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let config_path = root.path().join("ragpulse.toml");
    let config_arg = config_path.to_str().unwrap();
    let rebuilt = offline(
        elsewhere.path(),
        &["rebuild-rollups", "--quiet", "--config", config_arg],
    );
    let repriced = offline(
        elsewhere.path(),
        &["reprice", "--since", "2000-01-01", "--config", config_arg],
    );

    // Assert: all three worked on the configured directory, none in a
    // ./ragpulse-data of their own.
    assert!(
        imported.contains("1 accepted, 0 duplicates, 0 rejected"),
        "{imported}"
    );
    assert!(configured.join("ragpulse.db").is_file());
    assert!(rebuilt.contains("rollups of 1 interactions"), "{rebuilt}");
    assert!(repriced.contains("of 1 interactions"), "{repriced}");
    for dir in [root.path(), elsewhere.path()] {
        assert!(!dir.join("ragpulse-data").exists(), "{}", dir.display());
    }
}
