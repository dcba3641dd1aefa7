//! The store's bounds under stress: the write queue counts what the writer
//! still holds, whoever still waits for it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{SqliteStore, StoreOptions};
use crate::ingest::json::Json;
use crate::ingest::validate::{EventLimits, validate};
use crate::pricing::Catalogue;
use crate::store::{Batch, StoreError};
use crate::telemetry::Telemetry;
use crate::time::Timestamp;

fn store_with(dir: &std::path::Path, max_queued_events: usize) -> SqliteStore {
    SqliteStore::open(
        dir,
        Arc::new(Catalogue::load(None).expect("built-in catalogue")),
        Arc::new(Telemetry::new()),
        StoreOptions {
            max_queued_events,
            topic_threshold: 0.9,
            rollups: true,
            rag_series: true,
            merge_cache_bytes: crate::store::sqlite::rollup::cache::DEFAULT_BUDGET_BYTES,
        },
    )
    .expect("store opens")
}

/// `n` valid interactions of a minute ago.
fn batch(n: usize) -> Batch {
    let now = Timestamp::now().0;
    let events = (0..n)
        .map(|i| {
            let value = json!({
                "type": "interaction",
                "id": uuid::Uuid::new_v4(),
                "timestamp": Timestamp(now - 60_000_000).to_rfc3339(),
                "assistant_id": uuid::Uuid::from_u128(7),
                "session_id": format!("s{i}"),
            });
            let event = validate(&Json::borrow(&value), &EventLimits::default(), now)
                .map_err(|e| e.0)
                .expect("a valid event");
            (i, event)
        })
        .collect();
    Batch { events }
}

#[tokio::test]
async fn a_cancelled_append_counts_against_the_queue_bound_until_its_batch_is_committed() {
    // Arrange: room for 100 events and a writer that does not move.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_with(dir.path(), 100));
    let release = store.stall_writer().await;

    // Act: ten clients queue ten events each and give up waiting.
    for _ in 0..10 {
        let waited = tokio::time::timeout(Duration::from_millis(20), store.append(batch(10))).await;
        assert!(waited.is_err(), "the writer is stalled: nothing can commit");
    }
    let queued_while_stalled = store.queued_events();
    let one_more = store.append(batch(1)).await;
    drop(release);
    let mut queued_after = store.queued_events();
    for _ in 0..200 {
        if queued_after == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        queued_after = store.queued_events();
    }
    let later = store.append(batch(1)).await;
    store.close().await;

    // Assert
    assert_eq!(
        queued_while_stalled, 100,
        "the abandoned batches still wait"
    );
    assert!(
        matches!(one_more, Err(StoreError::QueueFull)),
        "{one_more:?}"
    );
    assert_eq!(queued_after, 0, "the committed batches released the bound");
    assert_eq!(later.map(|o| o.accepted).ok(), Some(1));
    let conn = rusqlite::Connection::open(dir.path().join(super::DATABASE_FILE)).unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM interactions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        stored, 101,
        "the abandoned batches were committed all the same"
    );
}

/// Spawns `n` dashboard reads that each hold a reader until `gate` opens.
fn blocked_reads(
    store: &Arc<SqliteStore>,
    gate: &Arc<std::sync::RwLock<()>>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<(), StoreError>>> {
    (0..n)
        .map(|_| {
            let (store, gate) = (store.clone(), gate.clone());
            tokio::spawn(async move {
                store
                    .read(move |_| {
                        drop(gate.read());
                        Ok(())
                    })
                    .await
            })
        })
        .collect()
}

// The guard is the gate the reader threads wait on, not a lock of this task.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_reader_queue_refuses_reads_at_once_and_readiness_still_answers_at_once() {
    // Arrange: every reader held, and the queue behind them full.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_with(dir.path(), 100));
    let gate = Arc::new(std::sync::RwLock::new(()));
    let closed = gate.write().unwrap();
    let mut held = blocked_reads(&store, &gate, super::READERS);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Running, not waiting: the queue is empty again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    while !store.readers_have_room(super::READ_QUEUE) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held.extend(blocked_reads(&store, &gate, super::READ_QUEUE));
    while store.readers_have_room(1) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act
    let started = std::time::Instant::now();
    let refused = store.read(|_| Ok(())).await;
    let refused_in = started.elapsed();
    let started = std::time::Instant::now();
    let ready = store.readiness();
    let ready_in = started.elapsed();
    drop(closed);
    let finished = futures::future::join_all(held).await;

    // Assert
    assert!(
        matches!(refused, Err(StoreError::ReadersBusy)),
        "{refused:?}"
    );
    assert!(refused_in < Duration::from_millis(100), "{refused_in:?}");
    assert_eq!(ready, Ok(()));
    assert!(ready_in < Duration::from_millis(100), "{ready_in:?}");
    assert!(finished.into_iter().all(|r| r.unwrap().is_ok()));
    assert!(store.readers_have_room(super::READ_QUEUE));
    store.close().await;
}

#[tokio::test]
async fn a_panicking_read_reports_its_message_and_every_reader_keeps_serving() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 100);

    // Act: more panics than there are reader threads, then a real read.
    let mut panics = Vec::new();
    for n in 0..super::READERS * 2 {
        let result = store
            .read(move |_| -> Result<(), StoreError> { panic!("assertion {n} failed") })
            .await;
        panics.push(result);
    }
    let after = tokio::time::timeout(
        Duration::from_secs(10),
        store.read(|conn| Ok(conn.query_row("SELECT 6 * 7", [], |r| r.get::<_, i64>(0))?)),
    )
    .await;
    store.close().await;

    // Assert
    for (n, result) in panics.iter().enumerate() {
        let Err(StoreError::Task(message)) = result else {
            panic!("read {n}: {result:?}");
        };
        assert_eq!(message, &format!("a read panicked: assertion {n} failed"));
    }
    assert_eq!(after.expect("the readers are gone").ok(), Some(42));
}

// The guard is the gate the reader threads wait on, not a lock of this task.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_caller_gave_up_is_skipped() {
    // Arrange: every reader held, so the next read waits in the queue.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_with(dir.path(), 100));
    let gate = Arc::new(std::sync::RwLock::new(()));
    let closed = gate.write().unwrap();
    let held = blocked_reads(&store, &gate, super::READERS);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Act: a caller that gives up while its read waits.
    let flag = ran.clone();
    let waited = tokio::time::timeout(
        Duration::from_millis(50),
        store.read(move |_| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }),
    )
    .await;
    drop(closed);
    futures::future::join_all(held).await;
    store.read(|_| Ok(())).await.unwrap();
    store.close().await;

    // Assert
    assert!(waited.is_err());
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "the abandoned read ran"
    );
}

#[tokio::test]
async fn a_dead_writer_turns_readiness_red_and_is_not_called_a_shutdown() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), 100);
    assert_eq!(store.readiness(), Ok(()));

    // Act
    store.crash_writer().await;
    let mut ready = store.readiness();
    for _ in 0..200 {
        if ready.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        ready = store.readiness();
    }
    let appended = store.append(batch(1)).await;

    // Assert
    assert_eq!(
        ready,
        Err("the writer thread stopped; restart the server".to_string())
    );
    assert!(
        matches!(appended, Err(StoreError::WriterStopped)),
        "{appended:?}"
    );
}

#[test]
fn the_heartbeat_says_how_long_the_writer_has_been_busy() {
    let beat = super::health::Heartbeat::default();
    assert_eq!(beat.busy_for(), None);
    beat.busy();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        beat.busy_for()
            .is_some_and(|d| d >= Duration::from_millis(20))
    );
    beat.idle();
    assert_eq!(beat.busy_for(), None);
}

/// `n` interactions of the test model, one a day, ending a minute ago.
fn daily(n: i64) -> Batch {
    let now = Timestamp::now().0;
    let events = (0..n)
        .map(|day| {
            let value = json!({
                "type": "interaction",
                "id": uuid::Uuid::new_v4(),
                "timestamp": Timestamp(now - 60_000_000 - day * crate::time::MICROS_PER_DAY).to_rfc3339(),
                "assistant_id": uuid::Uuid::from_u128(7),
                "session_id": format!("s{day}"),
                "model": "gpt-4o-mini",
                "input_tokens": 1000,
                "output_tokens": 100,
            });
            let event = validate(&Json::borrow(&value), &EventLimits::default(), now)
                .map_err(|e| e.0)
                .expect("a valid event");
            (day as usize, event)
        })
        .collect();
    Batch { events }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reprice_runs_one_day_per_writer_job_reports_progress_and_runs_alone() {
    use super::reprice::{RepriceRequest, RepriceState};
    // Arrange: ten days of interactions, and a writer held still.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_with(dir.path(), 100_000));
    store.append(daily(10)).await.unwrap();
    let request = RepriceRequest {
        since: 0,
        model: None,
    };
    let release = store.stall_writer().await;

    // Act
    let running = tokio::spawn({
        let (store, request) = (store.clone(), request.clone());
        async move { store.reprice(request).await }
    });
    let mut status = store.reprice_status();
    for _ in 0..200 {
        if status.days_total > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = store.reprice_status();
    }
    let second = store.reprice(request).await;
    // An ingest queued behind the first day commits before the last one.
    let ingest = tokio::spawn({
        let store = store.clone();
        async move { store.append(batch(1)).await }
    });
    while store.queued_events() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(release);
    let report = running.await.unwrap().unwrap();
    ingest.await.unwrap().unwrap();
    let done = store.reprice_status();
    store.close().await;

    // Assert
    assert_eq!(status.state, RepriceState::Running);
    assert_eq!((status.days_total, status.days_done), (10, 0));
    assert!(
        matches!(second, Err(StoreError::RepriceRunning)),
        "{second:?}"
    );
    assert_eq!(done.state, RepriceState::Done);
    assert_eq!((done.days_total, done.days_done), (10, 10));
    // The interaction sent during the reprice was committed after its first
    // day and before its last (today), which then repriced it too.
    assert_eq!(report.interactions_examined, 11);
    assert_eq!(done.report, Some(report));
}

/// Days marked dirty (late events in sealed days) and not yet sealed again.
fn dirty_days(dir: &std::path::Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(dir.join(super::DATABASE_FILE)).unwrap();
    let mut stmt = conn
        .prepare("SELECT day FROM rollup_dirty_days ORDER BY day")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_events_are_sealed_outside_the_ingest_commit_and_coalesced() {
    // Arrange: three days of history, sealed.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_with(dir.path(), 100_000));
    store.append(daily(3)).await.unwrap();
    let today = Timestamp::now().0.div_euclid(crate::time::MICROS_PER_DAY);
    store.seal_rollups(today).await.unwrap();
    assert_eq!(dirty_days(dir.path()), Vec::<i64>::new());

    // Act: late events for the two sealed days, in two commits, while the
    // writer has more work queued (a stall behind them).
    let late = |days: i64| {
        let mut b = daily(days + 1);
        b.events.drain(..days as usize);
        b
    };
    let first = store.append(late(1));
    let release = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.stall_writer().await
        })
    };
    first.await.unwrap();
    let release = release.await.unwrap();
    let after_commit = dirty_days(dir.path());
    drop(release);
    store.append(late(2)).await.unwrap();
    // The next commit after a second, with nothing queued behind it, seals.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    store.append(batch(1)).await.unwrap();
    let mut sealed = dirty_days(dir.path());
    for _ in 0..100 {
        if sealed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        sealed = dirty_days(dir.path());
    }
    store.close().await;

    // Assert: the commit left its day dirty (no seal inside it); a later
    // seal merged both late days at once.
    assert_eq!(after_commit, vec![today - 1]);
    assert_eq!(sealed, Vec::<i64>::new());
}
