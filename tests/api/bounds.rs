//! The server's bounds under stress, hostile input and misuse: what a client
//! controls never grows the server's memory, and every limit holds.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::helpers::{ADMIN_TOKEN, Clock, INGEST_TOKEN, TestApp, interaction, metric_sum, new_id};
use crate::process::{data_dir, start, start_with};

async fn metrics_text(app: &TestApp) -> String {
    let (status, text, _) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text
}

#[tokio::test]
async fn made_up_http_methods_do_not_grow_the_metrics() {
    // Arrange: one made-up method and one scrape first, so their series exist.
    // The RAG series are off: their background gauges would add series of
    // their own between the two scrapes.
    let app = TestApp::spawn_with(|args| args.rag_metrics = Some(false)).await;
    let send = |method: String| {
        let request = app.client.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            app.url("/no-such-path"),
        );
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(send("WARMUP".to_string()).await, StatusCode::NOT_FOUND);
    metrics_text(&app).await;
    let before = metrics_text(&app).await;

    // Act: a thousand distinct methods, without a token.
    for n in 0..1_000 {
        assert_eq!(send(format!("X{n:04}Q")).await, StatusCode::NOT_FOUND);
    }
    let after = metrics_text(&app).await;

    // Assert: the counts moved, the exposition did not grow by a series.
    let other = |text: &str| {
        metric_sum(
            text,
            "ragpulse_http_request_seconds_count",
            &["method=\"other\"", "status=\"404\""],
        )
    };
    assert_eq!(other(&after) - other(&before), 1_000.0, "{after}");
    assert!(!after.contains("X0999Q"), "a raw method became a label");
    assert!(
        after.len() <= before.len() + 1_024,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
}

#[tokio::test]
async fn cors_origins_star_starts_and_allows_any_origin_while_a_bad_origin_is_refused() {
    // Arrange
    let root = tempfile::tempdir().unwrap();
    let tokens = Some((ADMIN_TOKEN, INGEST_TOKEN));

    // Act
    let server = start_with(&data_dir(&root), tokens, &["--cors-origins", "*"], &[])
        .unwrap_or_else(|e| panic!("`--cors-origins '*'` did not start: {e:?}"));
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/analytics/ttft", server.address))
        .bearer_auth(ADMIN_TOKEN)
        .header("Origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    let refused = start_with(&data_dir(&root), tokens, &["--cors-origins", "evil"], &[]);

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "*",
        "any origin is allowed"
    );
    let (status, _, stderr) = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{stderr}");
    let Err(refused) = refused else {
        panic!("a server started with an invalid CORS origin");
    };
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("\"evil\" is not an origin")
            && !refused.stderr.contains("panicked"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn equal_admin_and_ingest_tokens_are_refused_at_start() {
    // Arrange
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    std::fs::create_dir_all(&dir).unwrap();
    let same = "one-token-for-both-0123456789";
    std::fs::write(
        dir.join("tokens.json"),
        format!(r#"{{"admin_token": "{same}", "ingest_token": "{same}\n"}}"#),
    )
    .unwrap();

    // Act: the same value by flag, and in the token file (one with a newline).
    let by_flag = start_with(&dir, Some((same, same)), &[], &[]);
    let by_file = start_with(&dir, None, &[], &[]);

    // Assert
    for (how, result) in [("flags", by_flag), ("token file", by_file)] {
        let Err(exited) = result else {
            panic!("{how}: a server started with one token for both roles");
        };
        assert!(!exited.status.success(), "{how}");
        assert!(
            exited
                .stderr
                .contains("the admin and the ingest token are the same"),
            "{how}: {}",
            exited.stderr
        );
    }
}

#[tokio::test]
async fn a_token_given_with_a_trailing_newline_matches_the_token_without_it() {
    // Arrange: a token as read from a mounted secret file.
    let app = TestApp::spawn_with(|args| {
        args.admin_token = Some(format!("{ADMIN_TOKEN}\n"));
    })
    .await;

    // Act
    let (status, body) = app.get("/api/v1/analytics/ttft").await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Runs the binary with `args` (and no `RAGPULSE_*` from the test's environment).
fn run_binary(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ragpulse"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAGPULSE_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("failed to run ragpulse")
}

/// Interactions stored in the database, read beside the server.
fn stored_interactions(dir: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("ragpulse.db")).unwrap();
    conn.query_row("SELECT count(*) FROM interactions", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn import_reprice_and_a_second_server_refuse_a_served_data_directory() {
    // Arrange: a server with one interaction, and a file of two more.
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let server = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)))
        .unwrap_or_else(|e| panic!("the server did not start: {e:?}"));
    let clock = Clock::new();
    let bot = new_id();
    let (status, _) = server
        .ingest(
            &reqwest::Client::new(),
            json!([interaction(bot, "s", &clock.ago_h(1))]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let file = root.path().join("events.ndjson");
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n",
            interaction(bot, "s", &clock.ago_h(2)),
            interaction(bot, "s", &clock.ago_h(3))
        ),
    )
    .unwrap();
    let d = dir.as_os_str();

    // Act
    let import = run_binary(&[
        "import".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        d,
    ]);
    let reprice = run_binary(&[
        "reprice".as_ref(),
        "--since".as_ref(),
        "2000-01-01".as_ref(),
        "--data-dir".as_ref(),
        d,
    ]);
    let rebuild = run_binary(&["rebuild-rollups".as_ref(), "--data-dir".as_ref(), d]);
    let second = start(&dir, Some((ADMIN_TOKEN, INGEST_TOKEN)));
    let stored_while_served = stored_interactions(&dir);
    let (status, _, stderr) = server.terminate(Duration::from_secs(30));
    let import_after_stop = run_binary(&[
        "import".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        d,
    ]);

    // Assert
    let in_use = "is in use by another ragpulse process";
    for (command, output) in [
        ("import", &import),
        ("reprice", &reprice),
        ("rebuild-rollups", &rebuild),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{command} ran on a served directory"
        );
        assert!(stderr.contains(in_use), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    }
    let Err(second) = second else {
        panic!("a second server started on the same data directory");
    };
    assert!(second.stderr.contains(in_use), "{}", second.stderr);
    assert_eq!(
        stored_while_served, 1,
        "nothing was written behind the server"
    );
    assert!(status.success(), "{stderr}");
    assert!(
        import_after_stop.status.success(),
        "the lock is released when the server stops: {}",
        String::from_utf8_lossy(&import_after_stop.stderr)
    );
    assert_eq!(stored_interactions(&dir), 3);
}

/// A WebSocket request to `app`'s live feed offering `protocols`, no token in the URL.
fn ws_request(
    app: &TestApp,
    protocols: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/v1/ws", app.address.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    request
}

/// The next text message of `socket` as JSON, within 20 s.
async fn next_json<S>(socket: &mut S) -> serde_json::Value
where
    S: futures::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("no message within 20 s")
            .expect("the socket ended")
            .expect("socket error");
        if let WsMessage::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn the_live_feed_takes_the_admin_token_in_the_websocket_subprotocol_and_never_echoes_it() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (mut socket, response) = tokio_tungstenite::connect_async(ws_request(
        &app,
        &format!("ragpulse, bearer.{ADMIN_TOKEN}"),
    ))
    .await
    .expect("the subprotocol token must open the socket");
    let first = next_json(&mut socket).await;
    let wrong = tokio_tungstenite::connect_async(ws_request(
        &app,
        &format!("ragpulse, bearer.{INGEST_TOKEN}"),
    ))
    .await;

    // Assert
    assert_eq!(response.headers()["sec-websocket-protocol"], "ragpulse");
    assert_eq!(first["type"], "ADVANCED_ANALYTICS_STATS", "{first}");
    let Err(tokio_tungstenite::tungstenite::Error::Http(refused)) = wrong else {
        panic!("the ingest token opened the live feed");
    };
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_socket_that_keeps_changing_scope_is_refused_past_its_budget() {
    // Arrange
    let app = TestApp::spawn().await;
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(
        &app,
        &format!("ragpulse, bearer.{ADMIN_TOKEN}"),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_json(&mut socket).await["type"],
        "ADVANCED_ANALYTICS_STATS"
    );

    // Act: fifty changes to scopes nobody watches, as fast as it can.
    for _ in 0..50 {
        let subscribe = json!({"type": "subscribe", "assistant_id": new_id()});
        socket
            .send(WsMessage::Text(subscribe.to_string().into()))
            .await
            .unwrap();
    }
    let mut refused = 0;
    let mut snapshots = 0;
    while refused + snapshots < 50 {
        let message = next_json(&mut socket).await;
        match message["type"].as_str() {
            Some("error") => {
                assert!(
                    message["detail"]
                        .as_str()
                        .unwrap()
                        .contains("too many scope changes"),
                    "{message}"
                );
                refused += 1;
            }
            Some("ADVANCED_ANALYTICS_STATS") => snapshots += 1,
            _ => panic!("unexpected message {message}"),
        }
        if refused == 40 {
            break;
        }
    }

    // Assert: a burst of ten went through (at most a second's worth more).
    assert!(refused >= 39, "only {refused} of 50 changes were refused");
}

#[tokio::test]
async fn the_cold_list_is_in_name_order_whether_documents_are_named_or_not() {
    // Arrange: named documents and unnamed ones (listed by their id), whose
    // ids' texts fall between the names; one named document is retrieved.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let connector = new_id();
    let unnamed: Vec<uuid::Uuid> = ["2", "4", "b", "f"]
        .iter()
        .map(|first| {
            format!("{first}0000000-0000-4000-8000-00000000000{first}")
                .parse()
                .unwrap()
        })
        .collect();
    let mut events = vec![json!({"type": "connector", "id": connector, "name": "Wiki"})];
    let named = ["3.pdf", "c.pdf", "E.pdf", "a b", "retrieved.pdf"];
    let mut named_ids = Vec::new();
    for name in named {
        let id = new_id();
        named_ids.push(id);
        events.push(crate::helpers::document(
            id,
            connector,
            name,
            &clock.ago_d(1),
        ));
    }
    for &id in &unnamed {
        events.push(json!({"type": "document", "id": id, "connector_id": connector}));
    }
    let mut asked = interaction(new_id(), "s", &clock.ago_h(1));
    asked["retrieved_document_ids"] = json!([named_ids[4]]);
    events.push(asked);
    app.ingest_ok(json!(events)).await;
    let mut expected: Vec<(String, uuid::Uuid)> = named[..4]
        .iter()
        .zip(&named_ids)
        .map(|(name, id)| (name.to_string(), *id))
        .chain(unnamed.iter().map(|id| (id.to_string(), *id)))
        .collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(name, _)| name).collect();

    // Act
    let all = app.analytics("/utilization?status=cold&limit=50").await;
    let first_three = app.analytics("/utilization?status=cold&limit=3").await;

    // Assert
    let names = |rows: &serde_json::Value| -> Vec<String> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["file_name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&all), expected);
    assert_eq!(names(&first_three), expected[..3]);
}

#[tokio::test]
async fn epoch_zero_is_refused_per_event_and_import_takes_a_wider_horizon() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let old = interaction(bot, "s", &clock.ago_d(500));

    // Act: over HTTP, an epoch-0 event beside a good one.
    let (status, body) = app
        .ingest_json(json!([
            interaction(bot, "s", "1970-01-01T00:00:00Z"),
            interaction(bot, "s", &clock.ago_h(1)),
        ]))
        .await;
    let dir = app.stop().await;
    let data = dir.path().join("data");
    let file = dir.path().join("old.ndjson");
    std::fs::write(&file, format!("{old}\n")).unwrap();
    let import = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "import".as_ref(),
            file.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--quiet".as_ref(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        run_binary(&args)
    };
    let by_default = import(&[]);
    let widened = import(&["--max-event-age-days", "600"]);

    // Assert
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["rejected"][0]["index"], 0, "{body}");
    let error = body["rejected"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "timestamp: 1970-01-01T00:00:00.000000Z is more than 400 days in the past"
        ),
        "{error}"
    );
    let stdout = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        stdout(&by_default).contains("0 accepted, 0 duplicates, 1 rejected"),
        "{}",
        stdout(&by_default)
    );
    assert!(widened.status.success());
    assert!(
        stdout(&widened).contains("1 accepted, 0 duplicates, 0 rejected"),
        "{}",
        stdout(&widened)
    );
    assert_eq!(stored_interactions(&data), 2);
}

#[tokio::test]
async fn bodies_trickling_in_hold_no_decode_slot_and_are_cut_off_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Arrange: more trickling clients than the server has decode slots (two
    // per core), each sending a byte of its body every half second.
    let app = TestApp::spawn().await;
    let host = app.address.trim_start_matches("http://").to_string();
    let slots = ragpulse::server::ingest_slots();
    let mut tricklers = Vec::new();
    for _ in 0..slots * 2 {
        let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
        let head = format!(
            "POST /api/v1/ingest HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {INGEST_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        tricklers.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut answer = vec![0u8; 512];
            loop {
                tokio::select! {
                    read = stream.read(&mut answer) => {
                        let n = read.unwrap_or(0);
                        return (String::from_utf8_lossy(&answer[..n]).to_string(), started.elapsed());
                    }
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        if stream.write_all(b" ").await.is_err() {
                            return (String::new(), started.elapsed());
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let clock = Clock::new();

    // Act: a client that sends its body at once.
    let started = std::time::Instant::now();
    let (status, body) = app
        .ingest_json(json!([interaction(new_id(), "s", &clock.ago_s(5))]))
        .await;
    let served_in = started.elapsed();
    let answers = futures::future::join_all(tricklers).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        served_in < Duration::from_secs(3),
        "waited {served_in:?} behind trickling bodies"
    );
    for answer in answers {
        let (text, after) = answer.unwrap();
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("slower than 64 KiB/s"), "{text}");
        assert!(
            after < Duration::from_secs(15),
            "cut off only after {after:?}"
        );
    }
}

/// Another connection that holds SQLite's write lock for a moment (the
/// readiness probe does, as does any tool) must make the writer wait, never
/// fail a commit with "database is locked": the writer takes the write lock
/// when its transaction begins, where SQLite's busy wait applies, not halfway
/// through it, where SQLite gives up at once.
#[tokio::test]
async fn ingest_waits_out_a_write_lock_held_briefly_by_another_connection() {
    // Arrange: a thread that takes and releases the write lock again and again.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let database = app.data_dir.path().join("data").join("ragpulse.db");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&database).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut held = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                std::thread::sleep(Duration::from_millis(15));
                conn.execute_batch("ROLLBACK").unwrap();
                held += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            held
        })
    };

    // Act: batches sent one after another while the lock comes and goes.
    let mut statuses = Vec::new();
    for batch in 0..60 {
        let events: Vec<_> = (0..20)
            .map(|i| interaction(bot, &format!("s{i}"), &clock.ago_s(batch * 20 + i)))
            .collect();
        statuses.push(app.ingest_json(serde_json::Value::Array(events)).await.0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let held = holder.join().unwrap();

    // Assert: every batch stored, none refused.
    assert!(held > 10, "the lock was taken only {held} times");
    let refused: Vec<_> = statuses.iter().filter(|s| !s.is_success()).collect();
    assert!(refused.is_empty(), "batches refused: {refused:?}");
    let cache = app.analytics("/cache").await;
    assert_eq!(cache["total_requests"], 1200, "{cache}");
}
