//! `POST /api/v1/ingest` (`ingest.md`): formats, per-event validation, body
//! errors, limits, idempotency, entity upserts and read-your-writes.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Clock, INGEST_TOKEN, TEST_MODEL, TestApp, assistant, connector, document, gzip, interaction,
    new_id, rfc3339, sync, user, with, without,
};

/// The interaction of `ingest.md`'s example, every field filled.
fn full_interaction(clock: &Clock, assistant: Uuid) -> Value {
    json!({
        "type": "interaction",
        "id": new_id(),
        "timestamp": clock.ago_min(10),
        "assistant_id": assistant,
        "session_id": "web-7f3a",
        "user_id": new_id(),
        "question": "How do I reset my password?",
        "question_embedding": [0.012, -0.2, 0.5],
        "topic": null,
        "model": TEST_MODEL,
        "provider": "openai",
        "ttft_s": 0.84,
        "total_duration_s": 3.2,
        "cache_hit": false,
        "input_tokens": 1830,
        "output_tokens": 212,
        "cached_input_tokens": 0,
        "cost_usd": null,
        "steps": [
            {"name": "retrieval", "duration_s": 0.31},
            {"name": "reranking", "duration_s": 0.12},
            {"name": "synthesis", "duration_s": 2.6, "input_tokens": 1830, "output_tokens": 212}
        ],
        "retrieved_document_ids": [new_id(), new_id()],
        "rerank": {"score_before": 0.41, "score_after": 0.67, "position_change": 2.5}
    })
}

/// True when `error` mentions `field` as a whole path (not as part of a longer name).
fn names_field(error: &str, field: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    error.match_indices(field).any(|(at, _)| {
        let before = error[..at].chars().next_back();
        let after = error[at + field.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Asserts a 207 whose only rejection is `index`, naming `field`.
fn assert_one_rejection(
    status: StatusCode,
    body: &Value,
    accepted: usize,
    index: usize,
    field: &str,
    case: &str,
) {
    assert_eq!(status, StatusCode::MULTI_STATUS, "{case}: {body}");
    assert_eq!(body["accepted"], json!(accepted), "{case}: {body}");
    assert_eq!(body["duplicates"], json!(0), "{case}: {body}");
    let rejected = body["rejected"]
        .as_array()
        .unwrap_or_else(|| panic!("{case}: {body}"));
    assert_eq!(rejected.len(), 1, "{case}: {body}");
    assert_eq!(rejected[0]["index"], json!(index), "{case}: {body}");
    let error = rejected[0]["error"].as_str().unwrap_or_default();
    assert!(
        names_field(error, field),
        "{case}: the error {error:?} does not name the field {field:?}"
    );
}

#[tokio::test]
async fn a_json_batch_with_every_event_type_is_accepted() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (bot, ada, wiki, doc) = (new_id(), new_id(), new_id(), new_id());
    let events = json!([
        {"type": "assistant", "id": bot, "name": "Support bot", "model": TEST_MODEL},
        {"type": "user", "id": ada, "email": "ada@example.com", "full_name": "Ada Lovelace"},
        {"type": "connector", "id": wiki, "name": "Confluence"},
        {"type": "document", "id": doc, "connector_id": wiki, "file_name": "handbook.pdf",
         "updated_at": clock.ago_d(3), "deleted": false},
        {"type": "connector_sync", "id": new_id(), "connector_id": wiki, "status": "success",
         "started_at": clock.ago_h(1), "duration_s": 12.5, "documents_synced": 40, "error": null},
        full_interaction(&clock, bot),
    ]);

    // Act
    let (status, body) = app.ingest_json(events).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 6, "duplicates": 0, "rejected": []})
    );
}

#[tokio::test]
async fn a_read_right_after_a_2xx_sees_the_events() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();

    for n in 1..=10 {
        // Act
        app.ingest_ok(json!([with(
            interaction(bot, &format!("s{n}"), &clock.ago_s(60 + n)),
            json!({"ttft_s": 0.5})
        )]))
        .await;
        let cache = app.analytics("/cache").await;
        let advanced = app.analytics("/advanced").await;

        // Assert
        assert_eq!(
            cache["total_requests"],
            json!(n),
            "/cache after ingest #{n}"
        );
        assert_eq!(
            advanced["cache_metrics"]["total_requests"],
            json!(n),
            "/advanced after ingest #{n} (a cached answer must not hide new data)"
        );
    }
}

#[tokio::test]
async fn an_ndjson_body_is_accepted_and_blank_lines_keep_their_line_index() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let lines = [
        interaction(bot, "s1", &clock.ago_min(3)).to_string(),
        String::new(),
        with(
            interaction(bot, "s1", &clock.ago_min(2)),
            json!({"id": "not-a-uuid"}),
        )
        .to_string(),
        "[1, 2]".to_string(),
        "not json at all".to_string(),
        "   \t".to_string(),
        sync(new_id(), "success", &clock.ago_h(1), Some(2.0)).to_string(),
    ];
    let body = format!("{}\n", lines.join("\n"));

    // Act
    let (status, answer) = app.ingest_ndjson(&body).await;

    // Assert
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert_eq!(answer["accepted"], json!(2), "{answer}");
    assert_eq!(answer["duplicates"], json!(0), "{answer}");
    let indices: Vec<&Value> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["index"])
        .collect();
    assert_eq!(indices, vec![&json!(2), &json!(3), &json!(4)], "{answer}");
    let first_error = answer["rejected"][0]["error"].as_str().unwrap();
    assert!(
        names_field(first_error, "id"),
        "{first_error:?} does not name id"
    );
    assert_eq!(app.analytics("/cache").await["total_requests"], json!(1));
}

#[tokio::test]
async fn an_ndjson_body_without_a_final_newline_is_read_whole() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let body = format!(
        "{}\n{}",
        interaction(bot, "a", &clock.ago_min(2)),
        interaction(bot, "b", &clock.ago_min(1))
    );

    // Act
    let (status, answer) = app.ingest_ndjson(&body).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 2, "duplicates": 0, "rejected": []})
    );
}

#[tokio::test]
async fn gzip_bodies_are_accepted_for_json_and_ndjson() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let json_body = json!({"events": [interaction(bot, "a", &clock.ago_min(2))]}).to_string();
    let ndjson_body = format!(
        "{}\n\n{}\n",
        interaction(bot, "b", &clock.ago_min(1)),
        interaction(bot, "c", &clock.ago_min(1))
    );
    let cases = [
        ("application/json", json_body, 1, "gzip JSON"),
        ("application/x-ndjson", ndjson_body, 2, "gzip NDJSON"),
    ];

    for (content_type, body, accepted, case) in cases {
        // Act
        let (status, answer) = app
            .ingest_raw(
                Some(content_type),
                Some("gzip"),
                gzip(body.as_bytes()),
                Some(INGEST_TOKEN),
            )
            .await;

        // Assert
        assert_eq!(status, StatusCode::OK, "{case}: {answer}");
        assert_eq!(
            answer,
            json!({"accepted": accepted, "duplicates": 0, "rejected": []}),
            "{case}"
        );
    }
    assert_eq!(app.analytics("/cache").await["total_requests"], json!(3));
}

#[tokio::test]
async fn a_content_type_with_parameters_is_matched_on_its_media_type() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let body = json!({"events": [interaction(new_id(), "a", &clock.ago_min(2))]}).to_string();

    // Act
    let (status, answer) = app
        .ingest_raw(
            Some("application/json; charset=utf-8"),
            None,
            body.into_bytes(),
            Some(INGEST_TOKEN),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_body_that_is_not_valid_gzip_is_a_400_and_nothing_is_stored() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let plain = json!({"events": [interaction(new_id(), "a", &clock.ago_min(2))]}).to_string();
    let mut truncated = gzip(plain.as_bytes());
    truncated.truncate(truncated.len() / 2);
    let cases = [
        (plain.clone().into_bytes(), "a plain body announced as gzip"),
        (truncated, "a truncated gzip stream"),
    ];

    for (body, case) in cases {
        // Act
        let (status, answer) = app
            .ingest_raw(
                Some("application/json"),
                Some("gzip"),
                body,
                Some(INGEST_TOKEN),
            )
            .await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
        assert!(answer["detail"].is_string(), "{case}: {answer}");
    }
    assert_eq!(
        app.analytics("/cache").await,
        Value::Null,
        "nothing may be stored"
    );
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_with_an_events_array_is_a_400_and_nothing_is_stored() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let valid = interaction(new_id(), "a", &clock.ago_min(2));
    let cases = [
        ("nope".to_string(), "not JSON"),
        (String::new(), "an empty body"),
        ("[]".to_string(), "an array"),
        ("{}".to_string(), "an object without events"),
        (r#"{"events": 3}"#.to_string(), "events is a number"),
        (r#"{"events": {}}"#.to_string(), "events is an object"),
        (r#"{"event": []}"#.to_string(), "a misspelt key"),
        (format!(r#"{{"events": [{valid}"#), "truncated JSON"),
        (
            format!(r#"{{"events": [{valid}]}} trailing"#),
            "trailing garbage after a valid batch",
        ),
    ];

    for (body, case) in cases {
        // Act
        let (status, answer) = app
            .ingest_raw(
                Some("application/json"),
                None,
                body.into_bytes(),
                Some(INGEST_TOKEN),
            )
            .await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {answer}");
        assert!(answer["detail"].is_string(), "{case}: {answer}");
    }
    assert_eq!(
        app.analytics("/cache").await,
        Value::Null,
        "nothing may be stored"
    );
}

#[tokio::test]
async fn more_events_than_the_maximum_is_a_413_and_nothing_is_stored() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.max_events = Some(3)).await;
    let clock = Clock::new();
    let bot = new_id();
    let events = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| interaction(bot, &format!("s{i}"), &clock.ago_min(1)))
            .collect()
    };
    let ndjson: String = events(4).iter().map(|e| format!("{e}\n")).collect();

    // Act
    let (json_status, json_answer) = app.ingest_json(json!(events(4))).await;
    let (ndjson_status, ndjson_answer) = app.ingest_ndjson(&ndjson).await;

    // Assert
    assert_eq!(
        json_status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "JSON: {json_answer}"
    );
    assert!(json_answer["detail"].is_string(), "{json_answer}");
    assert_eq!(
        ndjson_status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "NDJSON: {ndjson_answer}"
    );
    assert_eq!(
        app.analytics("/cache").await,
        Value::Null,
        "nothing may be stored"
    );

    // Exactly the maximum is fine.
    let (status, answer) = app.ingest_json(json!(events(3))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_body_over_the_byte_limit_is_a_413_also_after_decompression() {
    // Arrange
    let app = TestApp::spawn_with(|args| args.max_body_bytes = Some(4096)).await;
    let clock = Clock::new();
    let big = with(
        interaction(new_id(), "a", &clock.ago_min(2)),
        json!({"question": "x".repeat(5000)}),
    );
    let body = json!({"events": [big]}).to_string().into_bytes();
    let compressed = gzip(&body);
    assert!(
        compressed.len() < 4096,
        "the gzip body must be under the limit itself"
    );

    // Act
    let (plain_status, plain) = app
        .ingest_raw(Some("application/json"), None, body, Some(INGEST_TOKEN))
        .await;
    let (gzip_status, inflated) = app
        .ingest_raw(
            Some("application/json"),
            Some("gzip"),
            compressed,
            Some(INGEST_TOKEN),
        )
        .await;

    // Assert
    assert_eq!(
        plain_status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "plain: {plain}"
    );
    assert!(plain["detail"].is_string(), "{plain}");
    assert_eq!(
        gzip_status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "gzip: {inflated}"
    );
    assert_eq!(
        app.analytics("/cache").await,
        Value::Null,
        "nothing may be stored"
    );
}

#[tokio::test]
async fn other_content_types_are_a_415() {
    // Arrange
    let app = TestApp::spawn().await;
    let body = json!({"events": []}).to_string();
    let cases = [
        (Some("text/plain"), "text/plain"),
        (Some("application/xml"), "XML"),
        (Some("multipart/form-data; boundary=x"), "multipart"),
        (None, "no content type"),
    ];

    for (content_type, case) in cases {
        // Act
        let (status, answer) = app
            .ingest_raw(
                content_type,
                None,
                body.clone().into_bytes(),
                Some(INGEST_TOKEN),
            )
            .await;

        // Assert
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{case}: {answer}"
        );
        assert!(answer["detail"].is_string(), "{case}: {answer}");
    }
}

#[tokio::test]
async fn an_empty_events_array_is_a_200_with_nothing_accepted() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (status, answer) = app.ingest_json(json!([])).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 0, "duplicates": 0, "rejected": []})
    );
}

#[tokio::test]
async fn a_batch_whose_every_event_is_rejected_is_still_a_207() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (status, answer) = app
        .ingest_json(json!([{"type": "banana"}, 5, {"type": "interaction"}]))
        .await;

    // Assert
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert_eq!(answer["accepted"], json!(0));
    assert_eq!(answer["duplicates"], json!(0));
    let indices: Vec<u64> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![0, 1, 2], "{answer}");
    for rejection in answer["rejected"].as_array().unwrap() {
        assert!(
            !rejection["error"].as_str().unwrap_or_default().is_empty(),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn each_invalid_event_is_rejected_with_an_error_naming_its_field() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let base = || full_interaction(&clock, bot);
    let base_sync = || sync(new_id(), "success", &clock.ago_h(1), Some(1.0));
    let step = |name: &str| json!({"name": name, "duration_s": 0.1});
    let long_text = "é".repeat(4097); // 8,194 bytes of UTF-8
    let cases: Vec<(&str, Value, &str)> = vec![
        // Required fields of an interaction.
        ("interaction without id", without(base(), "id"), "id"),
        (
            "interaction with id null",
            with(base(), json!({"id": null})),
            "id",
        ),
        (
            "interaction without timestamp",
            without(base(), "timestamp"),
            "timestamp",
        ),
        (
            "interaction without assistant_id",
            without(base(), "assistant_id"),
            "assistant_id",
        ),
        (
            "interaction without session_id",
            without(base(), "session_id"),
            "session_id",
        ),
        (
            "empty session_id",
            with(base(), json!({"session_id": ""})),
            "session_id",
        ),
        (
            "session_id of 201 characters",
            with(base(), json!({"session_id": "s".repeat(201)})),
            "session_id",
        ),
        // UUIDs.
        (
            "id not a uuid",
            with(base(), json!({"id": "not-a-uuid"})),
            "id",
        ),
        (
            "assistant_id not a uuid",
            with(base(), json!({"assistant_id": "123"})),
            "assistant_id",
        ),
        (
            "assistant_id a number",
            with(base(), json!({"assistant_id": 7})),
            "assistant_id",
        ),
        (
            "user_id empty",
            with(base(), json!({"user_id": ""})),
            "user_id",
        ),
        (
            "a retrieved document id not a uuid",
            with(
                base(),
                json!({"retrieved_document_ids": [new_id(), "doc-2"]}),
            ),
            "retrieved_document_ids",
        ),
        // Timestamps.
        (
            "naive timestamp without offset",
            with(base(), json!({"timestamp": "2025-06-01T10:00:00"})),
            "timestamp",
        ),
        (
            "naive timestamp with fraction",
            with(base(), json!({"timestamp": "2025-06-01T10:00:00.123456"})),
            "timestamp",
        ),
        (
            "date without time",
            with(base(), json!({"timestamp": "2025-06-01"})),
            "timestamp",
        ),
        (
            "timestamp as a number",
            with(base(), json!({"timestamp": 1_750_000_000})),
            "timestamp",
        ),
        (
            "timestamp 10 minutes in the future",
            with(
                base(),
                json!({"timestamp": rfc3339(clock.at(chrono::TimeDelta::minutes(10)))}),
            ),
            "timestamp",
        ),
        // Durations.
        (
            "negative ttft_s",
            with(base(), json!({"ttft_s": -0.1})),
            "ttft_s",
        ),
        (
            "negative total_duration_s",
            with(base(), json!({"total_duration_s": -1.0})),
            "total_duration_s",
        ),
        (
            "ttft_s as a string",
            with(base(), json!({"ttft_s": "fast"})),
            "ttft_s",
        ),
        (
            "negative step duration",
            with(
                base(),
                json!({"steps": [{"name": "retrieval", "duration_s": -0.5}]}),
            ),
            "steps[0].duration_s",
        ),
        (
            "ttft_s over total_duration_s",
            with(base(), json!({"ttft_s": 5.0, "total_duration_s": 3.0})),
            "ttft_s",
        ),
        // Token counts.
        (
            "input_tokens with a fraction",
            with(
                base(),
                json!({"input_tokens": 1830.5, "cached_input_tokens": 0}),
            ),
            "input_tokens",
        ),
        (
            "negative input_tokens",
            with(
                base(),
                json!({"input_tokens": -1, "cached_input_tokens": 0}),
            ),
            "input_tokens",
        ),
        (
            "output_tokens as a string",
            with(base(), json!({"output_tokens": "12"})),
            "output_tokens",
        ),
        (
            "step tokens with a fraction",
            with(
                base(),
                json!({"steps": [{"name": "synthesis", "duration_s": 1.0, "output_tokens": 2.5}]}),
            ),
            "steps[0].output_tokens",
        ),
        (
            "cached_input_tokens over input_tokens",
            with(
                base(),
                json!({"input_tokens": 10, "cached_input_tokens": 11}),
            ),
            "cached_input_tokens",
        ),
        // Steps.
        (
            "step name with an uppercase letter",
            with(base(), json!({"steps": [step("Retrieval")]})),
            "steps[0].name",
        ),
        (
            "step name with a space",
            with(base(), json!({"steps": [step("re trieval")]})),
            "steps[0].name",
        ),
        (
            "step name with a non-ASCII letter",
            with(base(), json!({"steps": [step("naïve")]})),
            "steps[0].name",
        ),
        (
            "step name with a slash",
            with(base(), json!({"steps": [step("a/b")]})),
            "steps[0].name",
        ),
        (
            "empty step name",
            with(base(), json!({"steps": [step("")]})),
            "steps[0].name",
        ),
        (
            "step name of 65 characters",
            with(base(), json!({"steps": [step(&"a".repeat(65))]})),
            "steps[0].name",
        ),
        (
            "second step invalid",
            with(base(), json!({"steps": [step("ok"), step("Not ok")]})),
            "steps[1].name",
        ),
        (
            "step without duration",
            with(base(), json!({"steps": [{"name": "retrieval"}]})),
            "steps[0].duration_s",
        ),
        (
            "257 steps",
            with(base(), json!({"steps": vec![step("s"); 257]})),
            "steps",
        ),
        // Lists and sizes.
        (
            "1,025 retrieved documents",
            with(
                base(),
                json!({"retrieved_document_ids": (0..1025).map(|_| new_id()).collect::<Vec<_>>()}),
            ),
            "retrieved_document_ids",
        ),
        (
            "an embedding of 4,097 dimensions",
            with(base(), json!({"question_embedding": vec![0.1; 4097]})),
            "question_embedding",
        ),
        (
            "a question over 8 KiB",
            with(base(), json!({"question": long_text})),
            "question",
        ),
        (
            "cache_hit not a boolean",
            with(base(), json!({"cache_hit": "yes"})),
            "cache_hit",
        ),
        // Types.
        (
            "unknown type",
            json!({"type": "banana", "id": new_id()}),
            "type",
        ),
        ("no type", without(base(), "type"), "type"),
        (
            "type not a string",
            with(base(), json!({"type": 3})),
            "type",
        ),
        // Syncs.
        (
            "sync status not in the enum",
            with(base_sync(), json!({"status": "ok"})),
            "status",
        ),
        (
            "sync status in upper case",
            with(base_sync(), json!({"status": "SUCCESS"})),
            "status",
        ),
        (
            "sync without status",
            without(base_sync(), "status"),
            "status",
        ),
        (
            "sync without started_at",
            without(base_sync(), "started_at"),
            "started_at",
        ),
        (
            "sync with a naive started_at",
            with(base_sync(), json!({"started_at": "2025-06-01T10:00:00"})),
            "started_at",
        ),
        (
            "sync without connector_id",
            without(base_sync(), "connector_id"),
            "connector_id",
        ),
        ("sync without id", without(base_sync(), "id"), "id"),
        (
            "sync with a negative duration",
            with(base_sync(), json!({"duration_s": -3.0})),
            "duration_s",
        ),
        // Entities.
        (
            "assistant without id",
            json!({"type": "assistant", "name": "x"}),
            "id",
        ),
        (
            "assistant name over 8 KiB",
            json!({"type": "assistant", "id": new_id(), "name": "n".repeat(8193)}),
            "name",
        ),
        (
            "user id over 256 characters",
            json!({"type": "user", "id": "u".repeat(257)}),
            "id",
        ),
        (
            "user email as a number",
            json!({"type": "user", "id": new_id(), "email": 42}),
            "email",
        ),
        (
            "connector name over 8 KiB",
            json!({"type": "connector", "id": new_id(), "name": "c".repeat(8193)}),
            "name",
        ),
        (
            "document with a naive updated_at",
            json!({"type": "document", "id": new_id(), "updated_at": "2025-06-01T10:00:00"}),
            "updated_at",
        ),
        (
            "document connector_id not a uuid",
            json!({"type": "document", "id": new_id(), "connector_id": "wiki"}),
            "connector_id",
        ),
        (
            "document deleted not a boolean",
            json!({"type": "document", "id": new_id(), "deleted": "no"}),
            "deleted",
        ),
    ];

    for (case, event, field) in cases {
        // Act: one valid event, then the invalid one.
        let (status, body) = app.ingest_json(json!([base(), event])).await;

        // Assert
        assert_one_rejection(status, &body, 1, 1, field, case);
    }
}

#[tokio::test]
async fn an_event_that_is_not_an_object_is_rejected_at_its_index() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let valid = interaction(new_id(), "s", &clock.ago_min(1));

    // Act
    let (status, body) = app.ingest_json(json!([valid, 5, "event", null, [1]])).await;

    // Assert
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["accepted"], json!(1));
    let indices: Vec<u64> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![1, 2, 3, 4], "{body}");
}

#[tokio::test]
async fn values_at_the_edge_of_each_rule_are_accepted() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let base = || full_interaction(&clock, bot);
    // A recent day: the offsets move the instant by hours only.
    let day = clock.at(chrono::TimeDelta::days(-30)).format("%Y-%m-%d");
    let cases: Vec<(&str, Value)> = vec![
        (
            "token counts with a zero fraction",
            with(
                base(),
                json!({"input_tokens": 1830.0, "output_tokens": 212.0, "cached_input_tokens": 0.0}),
            ),
        ),
        (
            "step tokens with a zero fraction",
            with(
                base(),
                json!({"steps": [{"name": "synthesis", "duration_s": 1.0, "input_tokens": 10.0, "output_tokens": 0}]}),
            ),
        ),
        (
            "a timestamp 1 minute in the future",
            with(
                base(),
                json!({"timestamp": rfc3339(clock.at(chrono::TimeDelta::minutes(1)))}),
            ),
        ),
        (
            "a timestamp with a +02:00 offset",
            with(
                base(),
                json!({"timestamp": format!("{day}T12:00:00+02:00")}),
            ),
        ),
        (
            "a timestamp with a -05:30 offset",
            with(
                base(),
                json!({"timestamp": format!("{day}T12:00:00.5-05:30")}),
            ),
        ),
        (
            "a timestamp at the edge of the 400-day horizon",
            with(base(), json!({"timestamp": clock.ago_d(399)})),
        ),
        (
            "unknown fields",
            with(
                base(),
                json!({"colour": "blue", "nested": {"a": 1}, "steps": [{"name": "x", "duration_s": 0.1, "extra": true}]}),
            ),
        ),
        (
            "exactly 256 steps",
            with(
                base(),
                json!({"steps": vec![json!({"name": "s", "duration_s": 0.001}); 256]}),
            ),
        ),
        (
            "exactly 1,024 retrieved documents",
            with(
                base(),
                json!({"retrieved_document_ids": (0..1024).map(|_| new_id()).collect::<Vec<_>>()}),
            ),
        ),
        (
            // Its own assistant: an assistant's embedding dimension is fixed once
            // seen, and `base()` already carries 3-dimensional ones.
            "an embedding of exactly 4,096 dimensions",
            with(
                base(),
                json!({"assistant_id": new_id(), "question_embedding": vec![0.25; 4096]}),
            ),
        ),
        (
            "a question of exactly 8 KiB",
            with(base(), json!({"question": "q".repeat(8192)})),
        ),
        (
            "a session_id of 200 characters",
            with(base(), json!({"session_id": "s".repeat(200)})),
        ),
        (
            "a step name of 64 allowed characters",
            with(
                base(),
                json!({"steps": [{"name": format!("a-z.0_9{}", "x".repeat(57)), "duration_s": 0.0}]}),
            ),
        ),
        (
            "ttft_s equal to total_duration_s",
            with(base(), json!({"ttft_s": 3.2, "total_duration_s": 3.2})),
        ),
        (
            "cached_input_tokens equal to input_tokens",
            with(
                base(),
                json!({"input_tokens": 10, "cached_input_tokens": 10}),
            ),
        ),
        (
            "a cache hit without ttft",
            with(base(), json!({"cache_hit": true, "ttft_s": null})),
        ),
        (
            "only the required fields",
            interaction(bot, "minimal", &clock.ago_min(1)),
        ),
        (
            "a sync with status partial",
            sync(new_id(), "partial", &clock.ago_h(1), None),
        ),
        (
            "a sync with status failure",
            with(
                sync(new_id(), "failure", &clock.ago_h(1), Some(0.0)),
                json!({"error": "timeout"}),
            ),
        ),
        (
            "a document without updated_at",
            json!({"type": "document", "id": new_id(), "file_name": "a.pdf"}),
        ),
        (
            "a user with only an email",
            json!({"type": "user", "id": new_id(), "email": "x@example.com"}),
        ),
        (
            "an assistant with only its id",
            json!({"type": "assistant", "id": new_id()}),
        ),
    ];

    for (case, event) in cases {
        // Act
        let (status, body) = app.ingest_json(json!([event])).await;

        // Assert
        assert_eq!(status, StatusCode::OK, "{case}: {body}");
        assert_eq!(
            body,
            json!({"accepted": 1, "duplicates": 0, "rejected": []}),
            "{case}"
        );
    }
}

#[tokio::test]
async fn token_counts_with_a_zero_fraction_are_stored_as_integers() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();

    // Act
    app.ingest_ok(json!([with(
        interaction(bot, "s", &clock.ago_min(5)),
        json!({"input_tokens": 1830.0, "output_tokens": 212.0, "cost_usd": 0.5})
    )]))
    .await;

    // Assert
    assert_eq!(
        app.analytics("/costs").await,
        json!([{
            "assistant_id": bot,
            "assistant_name": bot.to_string(),
            "total_tokens": 2042,
            "input_tokens": 1830,
            "output_tokens": 212,
            "estimated_cost_usd": 0.5,
        }])
    );
}

#[tokio::test]
async fn a_timestamp_with_an_offset_is_converted_to_utc() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let person = new_id();
    // One hour ago, written in UTC+02:00 with six fraction digits.
    let at = clock.at(-chrono::TimeDelta::hours(1));
    let offset = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
    let local = at
        .with_timezone(&offset)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    assert!(local.ends_with("+02:00"), "{local}");

    // Act
    app.ingest_ok(json!([with(
        interaction(new_id(), "s", &local),
        json!({"user_id": person})
    )]))
    .await;

    // Assert
    let users = app.analytics("/users").await;
    assert_eq!(users[0]["last_active"], json!(rfc3339(at)), "{users}");
}

#[tokio::test]
async fn the_same_interaction_twice_in_one_batch_is_one_accepted_and_one_duplicate() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let event = with(
        interaction(new_id(), "s", &clock.ago_min(5)),
        json!({"ttft_s": 0.5, "question": "Where is my invoice?"}),
    );
    let mut twin = event.clone();
    twin["cache_hit"] = json!(true);
    twin["question"] = json!("A different question entirely");
    let sync_event = sync(new_id(), "success", &clock.ago_h(1), Some(1.0));

    // Act
    let (status, body) = app
        .ingest_json(json!([event, twin, sync_event.clone(), sync_event]))
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 2, "duplicates": 2, "rejected": []})
    );
    let cache = app.analytics("/cache").await;
    assert_eq!(
        (&cache["total_requests"], &cache["cache_hits"]),
        (&json!(1), &json!(0)),
        "the duplicate must change nothing: {cache}"
    );
    let syncs = app.analytics("/sync").await;
    assert_eq!(syncs[0]["total_syncs"], json!(1), "{syncs}");
    let topics = app.analytics("/trending").await;
    assert_eq!(
        topics.as_array().map(Vec::len),
        Some(1),
        "the duplicate's question must not count: {topics}"
    );
    assert_eq!(
        topics[0]["canonical_text"],
        json!("Where is my invoice?"),
        "{topics}"
    );
}

#[tokio::test]
async fn an_interaction_id_sent_again_dated_on_other_days_is_a_duplicate_and_changes_nothing() {
    // Arrange: ids are unique per day in the index; other days are the writer's to check.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let first = interaction(new_id(), "s", &clock.ago_min(5));
    let (status, body) = app.ingest_json(json!([first.clone()])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut earlier = first.clone();
    earlier["timestamp"] = json!(clock.ago_d(3));
    earlier["cache_hit"] = json!(true);
    let mut later_that_week = first.clone();
    later_that_week["timestamp"] = json!(clock.ago_d(5));

    // Act
    let (status, again) = app
        .ingest_json(json!([earlier, later_that_week, first]))
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again,
        json!({"accepted": 0, "duplicates": 3, "rejected": []})
    );
    let cache = app.analytics("/cache?hours=168").await;
    assert_eq!(
        (&cache["total_requests"], &cache["cache_hits"]),
        (&json!(1), &json!(0)),
        "the duplicates must change nothing: {cache}"
    );
}

#[tokio::test]
async fn a_retried_batch_counts_its_interactions_and_syncs_as_duplicates_and_changes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let wiki = new_id();
    let batch = json!([
        assistant(bot, "Support bot"),
        connector(wiki, "Confluence"),
        with(
            interaction(bot, "s", &clock.ago_min(5)),
            json!({"input_tokens": 100, "cost_usd": 0.25})
        ),
        sync(wiki, "success", &clock.ago_h(1), Some(1.0)),
    ]);
    let (status, first) = app.ingest_json(batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        first,
        json!({"accepted": 4, "duplicates": 0, "rejected": []})
    );

    // Act
    let (status, retry) = app.ingest_json(batch).await;

    // Assert: the two entity upserts are accepted again; the rest are duplicates.
    assert_eq!(status, StatusCode::OK, "{retry}");
    assert_eq!(
        retry,
        json!({"accepted": 2, "duplicates": 2, "rejected": []})
    );
    assert_eq!(
        app.analytics("/costs").await,
        json!([{
            "assistant_id": bot,
            "assistant_name": "Support bot",
            "total_tokens": 100,
            "input_tokens": 100,
            "output_tokens": 0,
            "estimated_cost_usd": 0.25,
        }])
    );
    assert_eq!(app.analytics("/sync").await[0]["total_syncs"], json!(1));
}

#[tokio::test]
async fn entity_upserts_keep_absent_fields_clear_null_fields_and_the_last_one_wins() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let ada = new_id();
    app.ingest_ok(json!([
        {"type": "assistant", "id": bot, "name": "Bot v1", "model": TEST_MODEL},
        user(ada, "ada@example.com", "Ada Lovelace"),
        with(interaction(bot, "s", &clock.ago_min(5)), json!({"user_id": ada, "cost_usd": 0.0})),
    ]))
    .await;
    let name = |costs: &Value| costs[0]["assistant_name"].clone();
    let person = |users: &Value| (users[0]["email"].clone(), users[0]["full_name"].clone());

    // Act + Assert: an absent field keeps its value.
    app.ingest_ok(json!([
        {"type": "assistant", "id": bot, "model": "other-model"},
        {"type": "user", "id": ada, "full_name": "Augusta Ada King"},
    ]))
    .await;
    assert_eq!(
        name(&app.analytics("/costs").await),
        json!("Bot v1"),
        "absent name keeps"
    );
    assert_eq!(
        person(&app.analytics("/users").await),
        (json!("ada@example.com"), json!("Augusta Ada King")),
        "absent email keeps, given full_name replaces"
    );

    // Act + Assert: the last of several upserts in one batch wins.
    app.ingest_ok(json!([assistant(bot, "First"), assistant(bot, "Second")]))
        .await;
    assert_eq!(
        name(&app.analytics("/costs").await),
        json!("Second"),
        "last one wins"
    );

    // Act + Assert: an explicit null clears.
    app.ingest_ok(json!([
        {"type": "assistant", "id": bot, "name": null},
        {"type": "user", "id": ada, "email": null},
    ]))
    .await;
    assert_eq!(
        name(&app.analytics("/costs").await),
        json!(bot.to_string()),
        "a cleared name falls back to the id as text"
    );
    assert_eq!(
        person(&app.analytics("/users").await),
        (json!(""), json!("Augusta Ada King")),
        "a cleared email is \"\""
    );
}

#[tokio::test]
async fn document_upserts_can_delete_restore_and_clear_the_update_time() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let wiki = new_id();
    let doc = new_id();
    app.ingest_ok(json!([document(
        doc,
        wiki,
        "handbook.pdf",
        &clock.ago_d(1)
    )]))
    .await;
    let counts = |rows: &Value| -> Vec<Value> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["doc_count"].clone())
            .collect()
    };
    assert_eq!(
        counts(&app.analytics("/freshness").await),
        vec![json!(1), json!(0), json!(0)]
    );

    // Act + Assert: deleted → no current document.
    app.ingest_ok(json!([{"type": "document", "id": doc, "deleted": true}]))
        .await;
    assert_eq!(
        app.analytics("/freshness").await,
        json!([]),
        "a deleted document is not current"
    );

    // Act + Assert: deleted false again, file name and date kept.
    app.ingest_ok(json!([{"type": "document", "id": doc, "deleted": false}]))
        .await;
    assert_eq!(
        counts(&app.analytics("/freshness").await),
        vec![json!(1), json!(0), json!(0)]
    );

    // Act + Assert: updated_at null → unknown age → stale.
    app.ingest_ok(json!([{"type": "document", "id": doc, "updated_at": null}]))
        .await;
    assert_eq!(
        counts(&app.analytics("/freshness").await),
        vec![json!(0), json!(0), json!(1)]
    );
}

#[tokio::test]
async fn a_connector_rename_shows_in_the_sync_rates() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let wiki = new_id();
    app.ingest_ok(json!([
        connector(wiki, "Confluence"),
        sync(wiki, "success", &clock.ago_h(2), Some(4.0)),
    ]))
    .await;

    // Act
    app.ingest_ok(json!([connector(wiki, "Confluence Cloud")]))
        .await;

    // Assert
    let rates = app.analytics("/sync").await;
    assert_eq!(
        rates[0]["connector_name"],
        json!("Confluence Cloud"),
        "{rates}"
    );
    assert_eq!(rates[0]["total_syncs"], json!(1), "{rates}");
}

#[tokio::test]
async fn a_line_of_ndjson_that_is_not_an_object_is_one_rejection_not_a_400() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let body = format!(
        "42\n{}\n\"text\"\n{{\"type\": \"interaction\"\n",
        interaction(new_id(), "s", &clock.ago_min(1))
    );

    // Act
    let (status, answer) = app.ingest_ndjson(&body).await;

    // Assert
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert_eq!(answer["accepted"], json!(1));
    let indices: Vec<u64> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![0, 2, 3], "{answer}");
}

#[tokio::test]
async fn an_ndjson_body_with_crlf_line_endings_is_read_line_by_line() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let body = format!(
        "{}\r\n\r\n{}\r\n",
        interaction(bot, "a", &clock.ago_min(2)),
        with(
            interaction(bot, "b", &clock.ago_min(1)),
            json!({"id": "bad"})
        )
    );

    // Act
    let (status, answer) = app.ingest_ndjson(&body).await;

    // Assert: line 1 is blank, line 2 is the bad one.
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert_eq!(answer["accepted"], json!(1), "{answer}");
    assert_eq!(answer["rejected"][0]["index"], json!(2), "{answer}");
}

#[tokio::test]
async fn uuids_in_upper_case_name_the_same_entity_and_come_back_lower_case() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let bot = new_id();
    let upper = bot.to_string().to_uppercase();

    // Act
    app.ingest_ok(json!([
        with(
            interaction(bot, "s", &clock.ago_min(2)),
            json!({"assistant_id": upper, "cost_usd": 0.25})
        ),
        with(
            interaction(bot, "s", &clock.ago_min(1)),
            json!({"cost_usd": 0.25})
        ),
    ]))
    .await;

    // Assert: one assistant, shown as lower-case hyphenated text.
    assert_eq!(
        app.analytics("/costs").await,
        json!([{
            "assistant_id": bot.to_string(),
            "assistant_name": bot.to_string(),
            "total_tokens": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "estimated_cost_usd": 0.5,
        }])
    );
}
