//! Security review: every data route needs its token, found by
//! enumerating the routes rather than trusting a hand-kept list; tokens never
//! reach the logs, whatever the log level or format; the data directory and
//! every file in it are private to the server's user.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Clock, INGEST_TOKEN, TestApp, WRONG_TOKEN, interaction, new_id, with,
};
use crate::process::{data_dir, start_with};

/// Routes that need no token (`api.md`, Auth): operations, the API document,
/// the docs page and the landing page. Everything else must be refused
/// without a token.
const PUBLIC_ROUTES: [&str; 6] = [
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
];

/// The dashboard's static files are public too (`api.md`); its data comes from
/// the authenticated API.
const PUBLIC_STATIC_PREFIX: &str = "/dashboard/";

/// The routes the API document lists, as (path, method).
async fn documented_routes(app: &TestApp) -> Vec<(String, String)> {
    let (status, doc) = app.get_with_token("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("openapi.json has no paths") {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                routes.push((path.clone(), method.clone()));
            }
        }
    }
    assert!(routes.len() >= 20, "suspiciously few routes: {routes:?}");
    routes
}

/// Every path literal given to `.route(` in `src/`, with the file it is in.
fn route_literals_in_source() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let file = path.strip_prefix(&root).unwrap().display().to_string();
            let mut rest = text.as_str();
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let literal = rest.trim_start();
                if let Some(literal) = literal.strip_prefix('"') {
                    let end = literal.find('"').unwrap();
                    found.push((literal[..end].to_string(), file.clone()));
                }
            }
        }
    }
    found
}

fn is_public(path: &str) -> bool {
    PUBLIC_ROUTES.contains(&path) || path.starts_with(PUBLIC_STATIC_PREFIX)
}

#[tokio::test]
async fn every_route_in_the_source_is_documented_or_declared_public() {
    // Arrange
    let app = TestApp::spawn().await;
    let documented: BTreeSet<String> = documented_routes(&app)
        .await
        .into_iter()
        .map(|(p, _)| p)
        .collect();

    // Act
    let literals = route_literals_in_source();

    // Assert: a route literal is the documented path itself or its tail under a
    // `.nest` prefix; anything else is a route nobody checks the token of.
    assert!(
        literals.len() >= 20,
        "the source scan found too few routes: {literals:?}"
    );
    for (literal, file) in literals {
        let known = is_public(&literal)
            || documented
                .iter()
                .any(|path| path == &literal || (literal != "/" && path.ends_with(&literal)));
        assert!(
            known,
            "src/{file} routes {literal:?}, which openapi.json does not document and PUBLIC_ROUTES \
             (tests/api/security.rs) does not list: document it with its security, or declare it public"
        );
    }
}

#[tokio::test]
async fn every_documented_route_refuses_a_missing_or_wrong_token_and_says_so_in_the_document() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, doc) = app.get_with_token("/openapi.json", None).await;
    let routes = documented_routes(&app).await;
    let mut protected = 0;

    for (path, method) in routes {
        let case = format!("{} {path}", method.to_uppercase());
        let security = &doc["paths"][&path][&method]["security"];
        if is_public(&path) {
            assert!(
                security.is_null(),
                "{case} is public but documents {security}"
            );
            let response = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&path))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{case}: a public route answered {} without a token",
                response.status()
            );
            continue;
        }
        protected += 1;
        assert_eq!(
            security,
            &json!([{"bearer": []}]),
            "{case} does not document its bearer token"
        );
        // Act and assert: no token, then a wrong one.
        for token in [None, Some(WRONG_TOKEN)] {
            let mut request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{case} with token {token:?}"
            );
            let body: Value = response.json().await.unwrap();
            assert!(
                body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{case}: {body}"
            );
        }
        // The ingest token opens ingestion only.
        let response = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&path))
            .bearer_auth(INGEST_TOKEN)
            .send()
            .await
            .unwrap();
        if path == "/api/v1/ingest" || path == "/v1/traces" {
            assert!(
                ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&response.status()),
                "{case}: the ingest token was refused ({})",
                response.status()
            );
        } else {
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{case} with the ingest token"
            );
        }
    }
    assert!(
        protected >= 19,
        "only {protected} protected routes were checked"
    );
}

/// Everything a server printed while it was used with every kind of token
/// placement (header, query string), right and wrong.
async fn logs_of_a_busy_server(extra: &[&str]) -> String {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let server = start_with(
        &dir,
        Some((ADMIN_TOKEN, INGEST_TOKEN)),
        extra,
        &[("RUST_LOG", "trace")],
    )
    .unwrap_or_else(|e| panic!("the server did not start: {e:?}"));
    let client = reqwest::Client::new();
    let clock = Clock::new();
    let bot = new_id();
    let events = json!([with(
        interaction(bot, "s", &clock.ago_s(60)),
        json!({"question": "hi"})
    )]);
    let (status, _) = server.ingest(&client, events).await;
    assert_eq!(status, StatusCode::OK);
    for token in [ADMIN_TOKEN, INGEST_TOKEN, WRONG_TOKEN] {
        server
            .get(&client, "/api/v1/analytics/advanced", token)
            .await;
        server
            .get(&client, "/api/v1/analytics/ttft?hours=0", token)
            .await;
        let _ = client
            .post(format!("{}/api/v1/ingest", server.address))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        // The query-string token of the live routes.
        let sse = client
            .get(format!(
                "{}/api/v1/analytics/stream?token={token}",
                server.address
            ))
            .send()
            .await
            .unwrap();
        if sse.status().is_success() {
            let mut sse = sse;
            let _ = tokio::time::timeout(Duration::from_secs(5), sse.chunk()).await;
        }
        let ws = format!(
            "{}/api/v1/ws?token={token}",
            server.address.replacen("http://", "ws://", 1)
        );
        if let Ok((mut socket, _)) = tokio_tungstenite::connect_async(ws).await {
            let _ = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
            let _ = socket.close(None).await;
        }
    }
    let (status, stdout, stderr) = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{stderr}");
    format!("{stdout}{stderr}")
}

#[tokio::test]
async fn no_token_appears_in_the_logs_even_at_trace_level_in_either_format() {
    for (extra, format) in [(&[][..], "text"), (&["--log-json"][..], "JSON")] {
        // Act
        let logs = logs_of_a_busy_server(extra).await;

        // Assert: the logs are real (so an empty capture cannot pass) and clean.
        assert!(
            logs.contains("/api/v1/analytics/advanced"),
            "{format}: the request logs are missing:\n{logs}"
        );
        assert!(
            logs.lines().count() > 50,
            "{format}: trace logging did not happen:\n{logs}"
        );
        for token in [ADMIN_TOKEN, INGEST_TOKEN, WRONG_TOKEN] {
            // Any 12-character piece of a token is as bad as all of it.
            for piece in token
                .as_bytes()
                .windows(12)
                .map(|w| std::str::from_utf8(w).unwrap())
            {
                if piece.starts_with("test-") || piece.contains("-token-") {
                    continue; // the shared prefixes say nothing secret
                }
                assert!(
                    !logs.contains(piece),
                    "{format}: the logs contain {piece:?} of a token"
                );
            }
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_every_file_in_it_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    // Arrange: a directory that starts world-readable.
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Act: start (tokens generated), ingest, and look while it runs.
    let server = start_with(&dir, None, &[], &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let ingest_token = serde_json::from_str::<Value>(
        &std::fs::read_to_string(dir.join(ragpulse::server::TOKEN_FILE)).unwrap(),
    )
    .unwrap()["ingest_token"]
        .as_str()
        .unwrap()
        .to_string();
    let clock = Clock::new();
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/ingest", server.address))
        .bearer_auth(&ingest_token)
        .json(&json!({"events": [interaction(new_id(), "s", &clock.ago_s(5))]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut modes = vec![(
        "data directory".to_string(),
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
    )];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        modes.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.metadata().unwrap().permissions().mode() & 0o777,
        ));
    }
    let _ = server.kill();

    // Assert
    let names: BTreeSet<&str> = modes.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "data directory",
        "tokens.json",
        "ragpulse.db",
        "ragpulse.db-wal",
        "ragpulse.db-shm",
    ] {
        assert!(names.contains(expected), "{expected} is missing: {names:?}");
    }
    for (name, mode) in modes {
        let wanted = if name == "data directory" {
            0o700
        } else {
            0o600
        };
        assert_eq!(mode, wanted, "{name} has mode {mode:o}, not {wanted:o}");
    }
}
