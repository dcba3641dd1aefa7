//! Faults of the data directory, on the real binary: a full disk
//! (a small tmpfs), a read-only file system, the database locked by another
//! process, and a damaged database file at start. Ingest answers 503 with a
//! message naming the cause and stores nothing, reads keep working, `/readyz`
//! turns red, and the server recovers by itself once the fault is gone.
//!
//! The read-only file system comes twice. A loop-mounted ext4 that the kernel
//! turns read-only on an error (errors=remount-ro) is the real fault, but ext4
//! stays read-only until it is unmounted, so that test ends with a restart.
//! Healing in place is shown on a FUSE mirror that the test switches
//! read-only and writable again while the server keeps its database files
//! open (`switchable_fs` says why no in-kernel file system can do that here).
//!
//! The mount tests need root (CI runs as root): without it they skip with a
//! message, except under `CI=true`, where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{ADMIN_TOKEN, Clock, INGEST_TOKEN, interaction, new_id, with};
use crate::process::{Process, data_dir, start};
use crate::switchable_fs;

/// A file system mounted for one test, unmounted (lazily) when dropped.
struct Mounted {
    point: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

/// Skips (returns `None` after saying why), or fails under `CI=true`.
fn skip<T>(why: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true, but this fault test cannot run: {why}");
    }
    eprintln!("SKIPPED: {why} (CI=true makes this a failure)");
    None
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs of `mib` MiB on `point`.
fn mount_tmpfs(point: &Path, mib: u32) -> Option<Mounted> {
    if !is_root() {
        return skip("mounting a tmpfs needs root");
    }
    std::fs::create_dir_all(point).unwrap();
    let p = point.to_str().unwrap();
    match run(
        "mount",
        &["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs", p],
    ) {
        Ok(()) => Some(Mounted {
            point: point.to_path_buf(),
        }),
        Err(e) => skip(&format!("cannot mount a tmpfs: {e}")),
    }
}

/// A fresh ext4 file system in `image`, loop-mounted on `point` with
/// `errors=remount-ro`.
fn mount_ext4(image: &Path, point: &Path) -> Option<Mounted> {
    if !is_root() {
        return skip("loop-mounting an ext4 image needs root");
    }
    std::fs::create_dir_all(point).unwrap();
    let (i, p) = (image.to_str().unwrap(), point.to_str().unwrap());
    let made = run("truncate", &["-s", "64M", i])
        .and_then(|()| run("mkfs.ext4", &["-q", "-F", i]))
        .and_then(|()| run("mount", &["-o", "loop,errors=remount-ro", i, p]));
    match made {
        Ok(()) => Some(Mounted {
            point: point.to_path_buf(),
        }),
        Err(e) => skip(&format!("cannot loop-mount an ext4 image: {e}")),
    }
}

/// A mirror of `backing` on `point` that the test can switch read-only and
/// writable again while the server's files stay open (a FUSE file system: see
/// `switchable_fs` for why no in-kernel one can do this here).
fn mount_switchable(backing: &Path, point: &Path) -> Option<switchable_fs::Mounted> {
    if !is_root() {
        return skip("mounting a FUSE file system needs root");
    }
    std::fs::create_dir_all(backing).unwrap();
    std::fs::create_dir_all(point).unwrap();
    match switchable_fs::mount(backing, point) {
        Ok(mounted) => Some(mounted),
        Err(e) => skip(&format!(
            "cannot mount a FUSE file system (is /dev/fuse there?): {e}"
        )),
    }
}

/// `n` interactions of one assistant, `question_bytes` long questions.
fn interactions(clock: &Clock, bot: Uuid, n: usize, question_bytes: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            with(
                interaction(
                    bot,
                    &format!("s{}", i % 20),
                    &clock.ago_s(60 + i as i64 % 600),
                ),
                json!({"question": format!("{i} {}", "x".repeat(question_bytes))}),
            )
        })
        .collect()
}

/// The real server on `dir` with `before` = (interactions, question bytes)
/// of one assistant stored, and the interactions of the same assistant to
/// send `during` the fault.
async fn started_with_stored(
    dir: &Path,
    before: (usize, usize),
    during: (usize, usize),
) -> (Process, Vec<Value>) {
    let server = start(dir, Some((ADMIN_TOKEN, INGEST_TOKEN)))
        .unwrap_or_else(|e| panic!("the server did not start: {e:?}"));
    let clock = Clock::new();
    let bot = new_id();
    let stored = interactions(&clock, bot, before.0, before.1);
    assert_eq!(ingest(&server, &stored).await.0, StatusCode::OK);
    (server, interactions(&clock, bot, during.0, during.1))
}

/// An ingest request: status, `Retry-After`, body.
async fn ingest(server: &Process, events: &[Value]) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/ingest", server.address))
        .bearer_auth(INGEST_TOKEN)
        .json(&json!({ "events": events }))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the ingest request failed");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn readyz(server: &Process) -> (StatusCode, Value) {
    server
        .get(&reqwest::Client::new(), "/readyz", ADMIN_TOKEN)
        .await
}

async fn stored_interactions(server: &Process) -> Value {
    let (status, cache) = server
        .get(
            &reqwest::Client::new(),
            "/api/v1/analytics/cache",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a read failed during the fault: {cache}"
    );
    cache["total_requests"].clone()
}

/// Polls `/readyz` until it answers `want`; panics after `within`.
async fn wait_ready(server: &Process, want: StatusCode, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = readyz(server).await;
        if status == want {
            return body;
        }
        if started.elapsed() > within {
            panic!("/readyz still answers {status} after {within:?}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asserts a 503 whose message names the cause (every word of `cause`).
fn assert_refused(answer: &(StatusCode, Option<String>, Value), cause: &[&str], case: &str) {
    let (status, retry_after, body) = answer;
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{case}: {body}");
    assert!(retry_after.is_some(), "{case}: the 503 has no Retry-After");
    let detail = body["detail"].as_str().unwrap_or_default();
    for word in cause {
        assert!(
            detail.contains(word),
            "{case}: the message does not say {word:?}: {detail}"
        );
    }
    assert!(
        detail.contains("nothing of this batch was stored"),
        "{case}: {detail}"
    );
}

#[tokio::test]
#[ignore = "mounts a file system (root): .ci/run runs it with --ignored"]
async fn a_full_disk_answers_503_keeps_reads_and_readyz_red_until_space_returns() {
    // Arrange
    let root = tempfile::tempdir().unwrap();
    let point = root.path().join("mnt");
    let Some(_mounted) = mount_tmpfs(&point, 48) else {
        return;
    };
    let dir = point.join("data");
    let (server, during) = started_with_stored(&dir, (50, 10), (2_000, 2_000)).await;
    assert_eq!(readyz(&server).await.0, StatusCode::OK);

    // Act: fill the disk.
    let filler = point.join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&[0u8; 512]).is_ok() {}
        let _ = file.sync_all();
    }
    let refused = ingest(&server, &during).await;
    let not_ready = readyz(&server).await;
    let read = stored_interactions(&server).await;
    // Remove the fault: the server must notice by itself.
    std::fs::remove_file(&filler).unwrap();
    let ready_again = wait_ready(&server, StatusCode::OK, Duration::from_secs(15)).await;
    let retried = ingest(&server, &during).await;
    let after = stored_interactions(&server).await;
    let (_, stderr) = server.kill();

    // Assert
    assert_refused(&refused, &["disk", "full"], "ingest on a full disk");
    assert_eq!(
        not_ready.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        not_ready.1
    );
    assert!(
        not_ready.1["detail"].as_str().unwrap().contains("full"),
        "{}",
        not_ready.1
    );
    assert_eq!(read, json!(50), "reads must keep working on a full disk");
    assert_eq!(ready_again, json!({"status": "ready"}));
    assert_eq!(retried.0, StatusCode::OK, "{}", retried.2);
    // The refused batch left nothing behind: its retry is all new.
    assert_eq!(
        retried.2,
        json!({"accepted": 2000, "duplicates": 0, "rejected": []})
    );
    assert_eq!(after, json!(2050));
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn a_lock_held_by_another_process_answers_503_keeps_reads_and_readyz_red_until_released() {
    // Arrange
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let (server, during) = started_with_stored(&dir, (30, 10), (20, 10)).await;

    // Act: this test process is the other process; it takes the write lock.
    let other = rusqlite::Connection::open(dir.join("ragpulse.db")).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let refused = ingest(&server, &during).await;
    let not_ready = readyz(&server).await;
    let read = stored_interactions(&server).await;
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    let ready_again = wait_ready(&server, StatusCode::OK, Duration::from_secs(10)).await;
    let retried = ingest(&server, &during).await;
    let after = stored_interactions(&server).await;
    let (_, stderr) = server.kill();

    // Assert
    assert_refused(
        &refused,
        &["locked by another process"],
        "ingest under a lock",
    );
    assert_eq!(
        not_ready.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        not_ready.1
    );
    assert!(
        not_ready.1["detail"]
            .as_str()
            .unwrap()
            .contains("locked by another process"),
        "{}",
        not_ready.1
    );
    assert_eq!(
        read,
        json!(30),
        "reads must keep working under a write lock"
    );
    assert_eq!(ready_again, json!({"status": "ready"}));
    assert_eq!(
        retried.2,
        json!({"accepted": 20, "duplicates": 0, "rejected": []})
    );
    assert_eq!(after, json!(50));
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The `/sys/fs/ext4/<device>` directory of the file system mounted on `point`.
fn ext4_sysfs(point: &Path) -> PathBuf {
    let output = Command::new("findmnt")
        .args(["-n", "-o", "SOURCE"])
        .arg(point)
        .output()
        .expect("findmnt failed");
    let source = String::from_utf8(output.stdout).unwrap();
    let device = Path::new(source.trim()).file_name().unwrap().to_owned();
    Path::new("/sys/fs/ext4").join(device)
}

#[tokio::test]
#[ignore = "mounts a file system (root): .ci/run runs it with --ignored"]
async fn a_file_system_turned_read_only_answers_503_keeps_reads_and_loses_nothing_acknowledged() {
    // Arrange: Linux refuses `mount -o remount,ro` while files are open for
    // writing (the database is), so the fault is the kernel's own: ext4 with
    // errors=remount-ro, and an error triggered through sysfs.
    let root = tempfile::tempdir().unwrap();
    let (image, point) = (root.path().join("fs.img"), root.path().join("mnt"));
    let Some(mounted) = mount_ext4(&image, &point) else {
        return;
    };
    let dir = point.join("data");
    let (server, during) = started_with_stored(&dir, (40, 10), (10, 10)).await;

    // Act
    std::fs::write(
        ext4_sysfs(&point).join("trigger_fs_error"),
        "ragpulse fault test",
    )
    .expect("cannot trigger an ext4 error");
    let refused = ingest(&server, &during).await;
    let not_ready = readyz(&server).await;
    let read = stored_interactions(&server).await;
    let (status, _, stderr) = server.terminate(Duration::from_secs(30));
    // An error-triggered read-only ext4 stays read-only until it is unmounted
    // and checked: that is the operator's repair, then a restart.
    drop(mounted);
    std::thread::sleep(Duration::from_millis(500));
    run("e2fsck", &["-f", "-y", image.to_str().unwrap()]).ok();
    let remounted = mount_ext4_existing(&image, &point);
    let restarted = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)))
        .unwrap_or_else(|e| panic!("the server did not restart: {e:?}"));
    let retried = ingest(&restarted, &during).await;
    let after = stored_interactions(&restarted).await;
    let _ = restarted.kill();
    drop(remounted);

    // Assert
    assert_read_only_answers(&refused, &not_ready, &read);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        status.code().is_some(),
        "the server was killed by a signal: {status}"
    );
    assert_eq!(
        retried.2,
        json!({"accepted": 10, "duplicates": 0, "rejected": []})
    );
    assert_eq!(after, json!(50), "an acknowledged event was lost");
}

#[tokio::test]
#[ignore = "mounts a file system (root): .ci/run runs it with --ignored"]
async fn a_read_only_file_system_that_becomes_writable_again_heals_by_itself() {
    // Arrange
    let root = tempfile::tempdir().unwrap();
    let (backing, point) = (root.path().join("backing"), root.path().join("mnt"));
    let Some(mounted) = mount_switchable(&backing, &point) else {
        return;
    };
    let dir = point.join("data");
    let (server, during) = started_with_stored(&dir, (40, 10), (10, 10)).await;
    assert_eq!(readyz(&server).await.0, StatusCode::OK);

    // Act: the file system turns read-only under the running server, whose
    // database files stay open for writing...
    mounted.switch.set_read_only(true);
    let refused = ingest(&server, &during).await;
    let not_ready = readyz(&server).await;
    let read = stored_interactions(&server).await;
    // ...and writable again, with no restart: the server must notice by itself.
    mounted.switch.set_read_only(false);
    let ready_again = wait_ready(&server, StatusCode::OK, Duration::from_secs(15)).await;
    let retried = ingest(&server, &during).await;
    let after = stored_interactions(&server).await;
    let (status, _, stderr) = server.terminate(Duration::from_secs(30));
    // What was acknowledged is on disk: a new server reads all of it back.
    let restarted = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)))
        .unwrap_or_else(|e| panic!("the server did not restart: {e:?}"));
    let after_restart = stored_interactions(&restarted).await;
    let _ = restarted.terminate(Duration::from_secs(30));
    drop(mounted);
    let integrity: String = rusqlite::Connection::open(backing.join("data/ragpulse.db"))
        .and_then(|db| db.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .unwrap();

    // Assert
    assert_read_only_answers(&refused, &not_ready, &read);
    assert_eq!(ready_again, json!({"status": "ready"}));
    assert_eq!(retried.0, StatusCode::OK, "{}", retried.2);
    // The refused batch left nothing behind: its retry is all new.
    assert_eq!(
        retried.2,
        json!({"accepted": 10, "duplicates": 0, "rejected": []})
    );
    assert_eq!(after, json!(50));
    assert!(
        status.success(),
        "the server did not stop cleanly: {status}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(after_restart, json!(50), "an acknowledged event was lost");
    assert_eq!(integrity, "ok");
}

/// On a read-only file system: ingest refused with 503 naming it, `/readyz`
/// red saying so, and the 40 interactions stored before still readable.
fn assert_read_only_answers(
    refused: &(StatusCode, Option<String>, Value),
    not_ready: &(StatusCode, Value),
    read: &Value,
) {
    assert_refused(
        refused,
        &["read-only file system"],
        "ingest on a read-only file system",
    );
    assert_eq!(
        not_ready.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        not_ready.1
    );
    assert!(
        not_ready.1["detail"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{}",
        not_ready.1
    );
    assert_eq!(
        read,
        &json!(40),
        "reads must keep working on a read-only file system"
    );
}

fn mount_ext4_existing(image: &Path, point: &Path) -> Mounted {
    run(
        "mount",
        &[
            "-o",
            "loop",
            image.to_str().unwrap(),
            point.to_str().unwrap(),
        ],
    )
    .expect("cannot mount the checked image again");
    Mounted {
        point: point.to_path_buf(),
    }
}

#[tokio::test]
async fn a_damaged_database_makes_serve_exit_non_zero_with_a_clear_message() {
    // Arrange: a real ragpulse database with data, stopped cleanly (so every
    // page is in the main file), then a few pages overwritten.
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let server = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)))
        .unwrap_or_else(|e| panic!("the server did not start: {e:?}"));
    let clock = Clock::new();
    let events = interactions(&clock, new_id(), 2_000, 200);
    assert_eq!(ingest(&server, &events).await.0, StatusCode::OK);
    let (status, _, _) = server.terminate(Duration::from_secs(30));
    assert!(status.success());
    let database = dir.join("ragpulse.db");
    let mut bytes = std::fs::read(&database).unwrap();
    assert!(
        bytes.len() > 64 * 4096,
        "the database is too small to damage"
    );
    let middle = bytes.len() / 2 / 4096 * 4096;
    for byte in &mut bytes[middle..middle + 4 * 4096] {
        *byte = 0xA5;
    }
    std::fs::write(&database, &bytes).unwrap();

    // Act
    let outcome = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)));

    // Assert
    let exited = match outcome {
        Ok(process) => {
            let address = process.address.clone();
            drop(process);
            panic!("serve started on {address} with a damaged database");
        }
        Err(exited) => exited,
    };
    assert!(!exited.status.success(), "{}", exited.status);
    assert!(
        exited.stderr.contains("ragpulse.db") && exited.stderr.contains("damaged"),
        "the message does not say which file is damaged:\n{}",
        exited.stderr
    );
    assert_eq!(
        std::fs::read(&database).unwrap(),
        bytes,
        "the damaged file was modified"
    );
}
