//! The dashboard's HTTP side: the embedded page and assets (no
//! token, strict CSP, revalidation) and `GET /api/v1/assistants`. The page's
//! behaviour in a real browser is tested by `tests/browser`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, Clock, INGEST_TOKEN, TestApp, assistant, id, interaction, new_id, with,
};

#[tokio::test]
async fn the_page_and_its_assets_are_served_without_a_token_with_a_strict_policy() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [
        ("/", "text/html; charset=utf-8", "<title>ragpulse"),
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            "/api/v1/ws",
        ),
        ("/dashboard/style.css", "text/css; charset=utf-8", ":root"),
        ("/dashboard/favicon.svg", "image/svg+xml", "<svg"),
    ];

    for (path, content_type, marker) in cases {
        // Act
        let response = app.client.get(app.url(path)).send().await.unwrap();

        // Assert
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(header("content-type"), content_type, "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self' ws: wss:",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let etag = header("etag");
        assert!(etag.starts_with('"'), "{path}: a strong ETag, got {etag:?}");
        let body = response.text().await.unwrap();
        assert!(body.contains(marker), "{path} does not contain {marker:?}");

        let again = app
            .client
            .get(app.url(path))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
}

#[tokio::test]
async fn the_page_reads_no_data_without_the_token() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (_, html, _) = app.get_text("/").await;

    // Assert: a static page; every number comes from the authenticated API.
    assert!(html.contains(r#"<script src="/dashboard/app.js" defer></script>"#));
    assert!(!html.contains(ADMIN_TOKEN));
    let (status, _) = app.get_with_token("/api/v1/assistants", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .get_with_token("/api/v1/assistants", Some(INGEST_TOKEN))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn assistants_are_listed_by_name_with_unregistered_ones_under_their_id() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let beta = id("00000000-0000-4000-8000-00000000000b");
    let alpha = id("00000000-0000-4000-8000-00000000000a");
    let idle = id("00000000-0000-4000-8000-00000000000c");
    let unregistered = new_id();
    let latest = clock.ago_min(5);
    app.ingest_ok(json!([
        with(assistant(beta, "beta bot"), json!({"model": "gpt-4o-mini"})),
        assistant(alpha, "Alpha bot"),
        assistant(idle, "Idle bot"),
        interaction(alpha, "s1", &clock.ago_h(3)),
        interaction(alpha, "s1", &latest),
        interaction(beta, "s2", &clock.ago_h(1)),
        interaction(unregistered, "s3", &clock.ago_h(2)),
    ]))
    .await;

    // Act
    let (status, body) = app.get("/api/v1/assistants").await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["assistant_name"].as_str().unwrap())
        .collect();
    let unregistered_name = unregistered.to_string();
    let mut expected = vec![
        "Alpha bot",
        "beta bot",
        "Idle bot",
        unregistered_name.as_str(),
    ];
    // Case-insensitive by name: the id text sorts among the names by its digits.
    expected.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, expected);
    let by_name = |name: &str| -> Value {
        body.as_array()
            .unwrap()
            .iter()
            .find(|a| a["assistant_name"] == json!(name))
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_name("Alpha bot"),
        json!({"assistant_id": alpha, "assistant_name": "Alpha bot", "model": null,
               "registered": true, "last_active": latest})
    );
    assert_eq!(by_name("beta bot")["model"], json!("gpt-4o-mini"));
    assert_eq!(by_name("Idle bot")["last_active"], Value::Null);
    assert_eq!(
        by_name(&unregistered_name)["registered"],
        json!(false),
        "an assistant known only from interactions"
    );
}
