//! `ragpulse backup` / `restore` and `POST /api/v1/admin/backup`: a backup
//! taken while a client keeps ingesting holds every event acknowledged
//! before it started and restores into a server that answers like one given
//! the same events; restore refuses what it must; a killed backup leaves the
//! store intact and no file under the backup's name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Clock, INGEST_TOKEN, TEST_MODEL, TestApp, assert_same_answers, assistant,
    every_answer, interaction, with,
};

const BATCH: usize = 200;
const QUESTIONS: [&str; 4] = [
    "How do I reset my password?",
    "What is the refund policy?",
    "Where are the audit logs?",
    "Can I export my invoices?",
];

fn bot() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xb0)
}

/// Batch `n` of the ingesting client: varied, deterministic but for the ids.
fn batch(n: usize, clock: &Clock) -> Vec<Value> {
    (0..BATCH)
        .map(|i| {
            let k = n * BATCH + i;
            with(
                interaction(
                    bot(),
                    &format!("s{}", k % 50),
                    &clock.ago_min((k % 9_000) as i64 + 1),
                ),
                json!({
                    "question": QUESTIONS[k % 4], "model": TEST_MODEL,
                    "user_id": format!("user-{}", k % 30),
                    "ttft_s": 0.1 + (k % 17) as f64 / 10.0, "total_duration_s": 3.0,
                    "input_tokens": 100 + k % 1000, "output_tokens": 50,
                    "steps": [{"name": "retrieval", "duration_s": 0.2}],
                }),
            )
        })
        .collect()
}

fn ragpulse(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ragpulse"));
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    command.output().expect("failed to run ragpulse")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn integrity(file: &Path) -> String {
    let conn = rusqlite::Connection::open(file).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn interactions_in(file: &Path) -> usize {
    let conn = rusqlite::Connection::open(file).unwrap();
    conn.query_row("SELECT count(*) FROM interactions", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap() as usize
}

fn data(app: &TestApp) -> PathBuf {
    app.data_dir.path().join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_sustained_ingest_holds_every_acknowledged_event_and_restores_alike() {
    // Arrange: a server and a client that keeps posting batches.
    let clock = Arc::new(Clock::new());
    let source = TestApp::spawn().await;
    source.ingest_ok(json!([assistant(bot(), "Support")])).await;
    let acked: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (url, http) = (source.url("/api/v1/ingest"), source.client.clone());
        let (acked, stop, clock) = (acked.clone(), stop.clone(), clock.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let events = batch(n, &clock);
                let response = http
                    .post(&url)
                    .bearer_auth(INGEST_TOKEN)
                    .json(&json!({"events": events}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                acked.lock().unwrap().push(events);
                n += 1;
            }
        })
    };
    while acked.lock().unwrap().len() < 10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("ragpulse.backup");

    // Act: the backup, while the client goes on.
    let acked_before = acked.lock().unwrap().len();
    let dir = data(&source);
    let output = {
        let (dir, file) = (dir.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            ragpulse(
                &["backup", "--quiet"],
                &[("--data-dir", &dir), ("--to", &file)],
            )
        })
        .await
        .unwrap()
    };
    while acked.lock().unwrap().len() < acked_before + 10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Release);
    client.await.unwrap();

    // Assert: an intact file holding whole batches, at least those
    // acknowledged before the backup started.
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(integrity(&file), "ok");
    let stored = interactions_in(&file);
    assert_eq!(
        stored % BATCH,
        0,
        "a batch is in a backup whole or not at all"
    );
    let batches = stored / BATCH;
    let sent = acked.lock().unwrap().clone();
    assert!(
        batches >= acked_before,
        "{batches} batches, {acked_before} acknowledged before"
    );
    assert!(batches <= sent.len());

    // Assert: restored, it answers as a store given those batches, and holds
    // each event acknowledged before the backup.
    let restored_root = tempfile::tempdir().unwrap();
    let output = ragpulse(
        &["restore", "--quiet"],
        &[
            ("--from", &file),
            ("--data-dir", &restored_root.path().join("data")),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let restored = TestApp::spawn_in(restored_root, |_| {}).await;
    let reference = TestApp::spawn().await;
    reference
        .ingest_ok(json!([assistant(bot(), "Support")]))
        .await;
    for events in &sent[..batches] {
        reference.ingest_ok(Value::Array(events.clone())).await;
    }
    assert_same_answers(
        &every_answer(&reference, Some(bot())).await,
        &every_answer(&restored, Some(bot())).await,
    );
    let before: Vec<Value> = sent[..acked_before].concat();
    let (status, body) = restored.ingest_json(Value::Array(before.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["duplicates"], json!(before.len()), "{body}");
}

/// A stopped store of one batch, and a backup of it.
async fn backed_up(root: &Path) -> (TestApp, PathBuf) {
    let app = TestApp::spawn().await;
    app.ingest_ok(Value::Array(batch(0, &Clock::new()))).await;
    let file = root.join("store.backup");
    let output = ragpulse(
        &["backup", "--quiet"],
        &[("--data-dir", &data(&app)), ("--to", &file)],
    );
    assert!(output.status.success(), "{}", text(&output));
    (app, file)
}

#[tokio::test]
async fn restore_refuses_a_used_directory_a_damaged_file_and_a_foreign_one() {
    let root = tempfile::tempdir().unwrap();
    let (source, file) = backed_up(root.path()).await;

    // A backup does not replace an existing file unless told to.
    let again = ragpulse(
        &["backup", "--quiet"],
        &[("--data-dir", &data(&source)), ("--to", &file)],
    );
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already exists; choose another file or pass --force"),
        "{}",
        text(&again)
    );
    let forced = ragpulse(
        &["backup", "--quiet", "--force"],
        &[("--data-dir", &data(&source)), ("--to", &file)],
    );
    assert!(forced.status.success(), "{}", text(&forced));

    // A directory a server runs on: its lock.
    let running = ragpulse(
        &["restore", "--quiet", "--force"],
        &[("--from", &file), ("--data-dir", &data(&source))],
    );
    assert!(!running.status.success());
    assert!(
        text(&running).contains("is in use by another ragpulse process"),
        "{}",
        text(&running)
    );

    // A directory that holds something.
    let used = root.path().join("used");
    std::fs::create_dir_all(&used).unwrap();
    std::fs::write(used.join("notes.txt"), "keep me").unwrap();
    let refused = ragpulse(
        &["restore", "--quiet"],
        &[("--from", &file), ("--data-dir", &used)],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains(
            "is not empty (it holds notes.txt); restore into an empty directory, or pass --force"
        ),
        "{}",
        text(&refused)
    );
    assert!(!used.join("ragpulse.db").exists());
    let forced = ragpulse(
        &["restore", "--quiet", "--force"],
        &[("--from", &file), ("--data-dir", &used)],
    );
    assert!(forced.status.success(), "{}", text(&forced));
    assert_eq!(
        std::fs::read_to_string(used.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(interactions_in(&used.join("ragpulse.db")), BATCH);

    // A damaged file: a page in the middle overwritten.
    let damaged = root.path().join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2 / 16_384 * 16_384;
    bytes[middle..middle + 16_384].fill(0x5a);
    std::fs::write(&damaged, &bytes).unwrap();
    let output = ragpulse(
        &["restore", "--quiet"],
        &[
            ("--from", &damaged),
            ("--data-dir", &root.path().join("d1")),
        ],
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("damaged.backup is damaged"),
        "{}",
        text(&output)
    );

    // Files that are not ragpulse stores.
    let foreign = root.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE notes (text TEXT)")
        .unwrap();
    let plain = root.path().join("plain.txt");
    std::fs::write(
        &plain,
        "not a database at all, just some text to fill a page",
    )
    .unwrap();
    for (name, path) in [("foreign.db", &foreign), ("plain.txt", &plain)] {
        let output = ragpulse(
            &["restore", "--quiet"],
            &[("--from", path), ("--data-dir", &root.path().join("d2"))],
        );
        assert!(!output.status.success());
        assert!(
            text(&output).contains(&format!("{name} is not a ragpulse backup")),
            "{}",
            text(&output)
        );
        assert!(!root.path().join("d2").join("ragpulse.db").exists());
    }
}

#[tokio::test]
async fn the_admin_backup_endpoint_takes_the_admin_token_and_writes_a_restorable_file() {
    // Arrange
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("nightly");
    let app = TestApp::spawn_with(|args| args.backup_dir = Some(dir.clone())).await;
    app.ingest_ok(Value::Array(batch(0, &Clock::new()))).await;
    let post = |token: Option<&'static str>| {
        let request = app.client.post(app.url("/api/v1/admin/backup"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };

    // Act
    let (anonymous, _) = post(None).await;
    let (ingest, _) = post(Some(INGEST_TOKEN)).await;
    let (status, body) = post(Some(ADMIN_TOKEN)).await;

    // Assert: the tokens, then the file it names, whole and restorable.
    assert_eq!(anonymous, StatusCode::UNAUTHORIZED);
    assert_eq!(ingest, StatusCode::FORBIDDEN);
    assert_eq!(status, StatusCode::OK, "{body}");
    let name = body["file"].as_str().unwrap();
    assert!(
        name.starts_with("ragpulse-backup-") && name.ends_with("Z.db"),
        "{name}"
    );
    let file = dir.join(name);
    assert_eq!(
        body["bytes"],
        json!(std::fs::metadata(&file).unwrap().len())
    );
    assert!(body["duration_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no partial file left"
    );
    assert_eq!(integrity(&file), "ok");
    assert_eq!(interactions_in(&file), BATCH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_backup_endpoint_runs_one_backup_at_a_time() {
    // Arrange: a store large enough that a copy takes a while.
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_path_buf();
    let app = TestApp::spawn_with(|args| args.backup_dir = Some(dir.clone())).await;
    let clock = Clock::new();
    for n in 0..60 {
        app.ingest_ok(Value::Array(batch(n, &clock))).await;
    }
    let post = || {
        app.client
            .post(app.url("/api/v1/admin/backup"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };

    // Act: three requests at once.
    let (a, b, c) = tokio::join!(post(), post(), post());

    // Assert: one copies, the others are told one is running.
    let mut statuses = Vec::new();
    for response in [a, b, c] {
        let response = response.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status == StatusCode::CONFLICT {
            assert_eq!(
                body["detail"],
                "a backup is already running; try again when it has finished"
            );
        }
        statuses.push(status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409, 409]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[tokio::test]
async fn the_admin_backup_endpoint_says_when_backups_are_not_configured() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/api/v1/admin/backup"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["detail"],
        "backups are not configured: start the server with --backup-dir DIR \
         (RAGPULSE_BACKUP_DIR, backup_dir in ragpulse.toml)"
    );
}

#[tokio::test]
async fn a_backup_killed_midway_leaves_the_store_intact_and_no_file_under_its_name() {
    // Arrange: a store of some size, its answers before.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    for n in 0..100 {
        app.ingest_ok(Value::Array(batch(n, &clock))).await;
    }
    let before = every_answer(&app, Some(bot())).await;
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("killed.backup");

    // Act: SIGKILL once the backup has begun writing its temporary file.
    let mut killed_midway = false;
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ragpulse"))
            .args(["backup", "--quiet", "--force", "--data-dir"])
            .arg(data(&app))
            .arg("--to")
            .arg(&file)
            .spawn()
            .unwrap();
        let partial = loop {
            if let Some(partial) = partial_file(root.path()) {
                break Some(partial);
            }
            if child.try_wait().unwrap().is_some() {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        if partial.is_some() && !file.exists() {
            killed_midway = true;
            break;
        }
        let _ = std::fs::remove_file(&file);
    }

    // Assert: only a temporary name holds the cut copy; the store answers as before.
    assert!(killed_midway, "the backup was never caught before it ended");
    assert!(!file.exists());
    let partial = partial_file(root.path()).unwrap();
    assert!(
        partial.starts_with(".killed.backup.") && partial.ends_with(".partial"),
        "{partial}"
    );
    assert_same_answers(&before, &every_answer(&app, Some(bot())).await);
    let output = ragpulse(
        &["backup", "--quiet"],
        &[("--data-dir", &data(&app)), ("--to", &file)],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(integrity(&file), "ok");
    assert_eq!(interactions_in(&file), 100 * BATCH);
}

fn partial_file(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with(".partial"))
}
