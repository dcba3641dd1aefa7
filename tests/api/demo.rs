//! `ragpulse demo` as a person runs it (the real binary): started again on
//! its own data directory it keeps adding traffic instead of replaying the
//! ids it stored before, and its log is plain text when it is not a terminal.

use std::time::{Duration, Instant};

use crate::helpers::{ADMIN_TOKEN, INGEST_TOKEN};
use crate::process::{self, Process};

/// A small history and a brisk live rate, so the test is quick.
const FLAGS: &[&str] = &["--days", "1", "--per-day", "400", "--live-rate", "5"];

/// Interactions stored in the last two days, as the API counts them.
async fn stored(demo: &Process, client: &reqwest::Client) -> i64 {
    let (status, body) = demo
        .get(client, "/api/v1/analytics/cache?hours=48", ADMIN_TOKEN)
        .await;
    assert!(status.is_success(), "{status}: {body}");
    body["total_requests"]
        .as_i64()
        .unwrap_or_else(|| panic!("no total_requests in {body}"))
}

/// Polls until more than `than` interactions are stored; the time it took.
async fn wait_for_more(
    demo: &Process,
    client: &reqwest::Client,
    than: i64,
    what: &str,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = stored(demo, client).await;
        if now > than {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: still {now} interactions after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_restarted_demo_stores_new_interactions_within_ten_seconds() {
    // Arrange: a first run whose live traffic lasts longer than the ten
    // seconds allowed, so a replay of its ids would show.
    let root = tempfile::tempdir().unwrap();
    let dir = process::data_dir(&root);
    let tokens = Some((ADMIN_TOKEN, INGEST_TOKEN));
    let client = reqwest::Client::new();
    let first = process::start_demo(&dir, tokens, FLAGS).expect("the demo starts");
    let history = stored(&first, &client).await;
    assert!(history > 100, "the history is stored first: {history}");
    wait_for_more(&first, &client, history, "the first run's live traffic").await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (status, _, log) = first.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal:\n{log}"
    );

    // Act: the same command on the same directory.
    let second = process::start_demo(&dir, tokens, FLAGS).expect("the demo starts again");
    let at_start = stored(&second, &client).await;

    // Assert: new interactions within ten seconds, and no second history.
    let took = wait_for_more(&second, &client, at_start, "the restarted demo").await;
    assert!(
        took < Duration::from_secs(10),
        "the restarted demo stored nothing new for {took:?}"
    );
    let (_, log) = second.output();
    assert!(
        log.contains("adding only the traffic since its latest interaction"),
        "{log}"
    );
    assert!(
        at_start < history * 2,
        "the history was stored twice: {history} then {at_start}"
    );
}
