//! Query-parameter validation (`api.md`): every bound of every parameter of
//! every analytics endpoint answers 422 with FastAPI's body, entries in the
//! order the parameters are declared, the last of a repeated parameter counts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

#[derive(Clone, Copy)]
enum Param {
    Int {
        name: &'static str,
        ge: i64,
        le: i64,
    },
    Uuid(&'static str),
    Status,
}

impl Param {
    fn name(self) -> &'static str {
        match self {
            Param::Int { name, .. } => name,
            Param::Uuid(name) => name,
            Param::Status => "status",
        }
    }
}

const fn int(name: &'static str, ge: i64, le: i64) -> Param {
    Param::Int { name, ge, le }
}

const ASSISTANT: Param = Param::Uuid("assistant_id");

/// Each endpoint with its parameters in declaration order (`api.md`'s tables;
/// `assistant_id` comes last where the table says "every one taking the
/// optional `assistant_id`").
const ENDPOINTS: [(&str, &[Param]); 13] = [
    (
        "advanced",
        &[
            ASSISTANT,
            int("ttft_hours", 1, 168),
            int("step_days", 1, 90),
            int("cache_hours", 1, 168),
            int("cost_hours", 1, 168),
            int("trending_limit", 1, 50),
        ],
    ),
    ("ttft", &[int("hours", 1, 168), ASSISTANT]),
    (
        "trending",
        &[ASSISTANT, int("limit", 1, 50), int("days", 1, 365)],
    ),
    ("costs", &[int("hours", 1, 168), ASSISTANT]),
    ("freshness", &[]),
    ("steps", &[int("days", 1, 90), ASSISTANT]),
    ("cache", &[int("hours", 1, 168), ASSISTANT]),
    ("sessions", &[int("days", 1, 90), ASSISTANT]),
    ("diversity", &[int("days", 1, 365), ASSISTANT]),
    (
        "utilization",
        &[
            int("days", 1, 90),
            Param::Status,
            int("limit", 1, 500),
            ASSISTANT,
        ],
    ),
    (
        "users",
        &[int("days", 1, 90), int("limit", 1, 100), ASSISTANT],
    ),
    ("reranking", &[int("hours", 1, 168), ASSISTANT]),
    ("sync", &[int("days", 1, 90)]),
];

fn ge_entry(name: &str, input: &str, ge: i64) -> Value {
    json!({
        "type": "greater_than_equal",
        "loc": ["query", name],
        "msg": format!("Input should be greater than or equal to {ge}"),
        "input": input,
        "ctx": {"ge": ge},
    })
}

fn le_entry(name: &str, input: &str, le: i64) -> Value {
    json!({
        "type": "less_than_equal",
        "loc": ["query", name],
        "msg": format!("Input should be less than or equal to {le}"),
        "input": input,
        "ctx": {"le": le},
    })
}

fn int_parsing_entry(name: &str, input: &str) -> Value {
    json!({
        "type": "int_parsing",
        "loc": ["query", name],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "input": input,
    })
}

fn enum_entry(input: &str) -> Value {
    json!({
        "type": "enum",
        "loc": ["query", "status"],
        "msg": "Input should be 'hot', 'warm' or 'cold'",
        "input": input,
        "ctx": {"expected": "'hot', 'warm' or 'cold'"},
    })
}

/// What one 422 entry must be: exactly a value, or a `uuid_parsing` entry whose
/// message starts as pydantic's and names the problem.
enum Expected {
    Exact(Value),
    Uuid { name: &'static str, input: String },
}

fn assert_422(status: StatusCode, body: &Value, expected: &[Expected], case: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {body}");
    let keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        vec!["detail"],
        "{case}: the body must be {{\"detail\": [...]}}: {body}"
    );
    let entries = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("{case}: detail is not an array: {body}"));
    assert_eq!(
        entries.len(),
        expected.len(),
        "{case}: wrong number of entries: {body}"
    );
    for (i, (entry, want)) in entries.iter().zip(expected).enumerate() {
        match want {
            Expected::Exact(value) => {
                assert_eq!(entry, value, "{case}: entry {i}");
            }
            Expected::Uuid { name, input } => {
                let object = entry.as_object().unwrap();
                for key in object.keys() {
                    assert!(
                        ["type", "loc", "msg", "input", "ctx"].contains(&key.as_str()),
                        "{case}: entry {i} has an unexpected key {key:?}: {entry}"
                    );
                }
                assert_eq!(entry["type"], json!("uuid_parsing"), "{case}: entry {i}");
                assert_eq!(entry["loc"], json!(["query", name]), "{case}: entry {i}");
                assert_eq!(entry["input"], json!(input), "{case}: entry {i}");
                let msg = entry["msg"].as_str().unwrap_or_default();
                let prefix = "Input should be a valid UUID, ";
                assert!(
                    msg.starts_with(prefix) && msg.len() > prefix.len(),
                    "{case}: entry {i}: the message must start with {prefix:?} and name the problem: {msg:?}"
                );
                if let Some(ctx) = object.get("ctx") {
                    assert!(ctx["error"].is_string(), "{case}: entry {i}: ctx {ctx}");
                }
            }
        }
    }
}

#[tokio::test]
async fn each_integer_parameter_one_below_its_lower_bound_is_a_422_greater_than_equal() {
    // Arrange
    let app = TestApp::spawn().await;

    for (endpoint, params) in ENDPOINTS {
        for &param in params {
            let Param::Int { name, ge, .. } = param else {
                continue;
            };
            let input = (ge - 1).to_string();
            let path = format!("/api/v1/analytics/{endpoint}?{name}={input}");

            // Act
            let (status, body) = app.get(&path).await;

            // Assert
            assert_422(
                status,
                &body,
                &[Expected::Exact(ge_entry(name, &input, ge))],
                &path,
            );
        }
    }
}

#[tokio::test]
async fn each_integer_parameter_one_above_its_upper_bound_is_a_422_less_than_equal() {
    // Arrange
    let app = TestApp::spawn().await;

    for (endpoint, params) in ENDPOINTS {
        for &param in params {
            let Param::Int { name, le, .. } = param else {
                continue;
            };
            let input = (le + 1).to_string();
            let path = format!("/api/v1/analytics/{endpoint}?{name}={input}");

            // Act
            let (status, body) = app.get(&path).await;

            // Assert
            assert_422(
                status,
                &body,
                &[Expected::Exact(le_entry(name, &input, le))],
                &path,
            );
        }
    }
}

#[tokio::test]
async fn a_negative_or_huge_integer_fails_the_bound_not_the_parse() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [
        (
            "/api/v1/analytics/ttft?hours=-5",
            ge_entry("hours", "-5", 1),
        ),
        (
            "/api/v1/analytics/ttft?hours=99999999999999999999999",
            le_entry("hours", "99999999999999999999999", 168),
        ),
    ];

    for (path, entry) in cases {
        // Act
        let (status, body) = app.get(path).await;

        // Assert
        assert_422(status, &body, &[Expected::Exact(entry)], path);
    }
}

#[tokio::test]
async fn each_integer_parameter_that_is_not_an_integer_is_a_422_int_parsing() {
    // Arrange
    let app = TestApp::spawn().await;

    for (endpoint, params) in ENDPOINTS {
        for &param in params {
            let Param::Int { name, .. } = param else {
                continue;
            };
            for input in ["abc", "1.5", "3x"] {
                let path = format!("/api/v1/analytics/{endpoint}?{name}={input}");

                // Act
                let (status, body) = app.get(&path).await;

                // Assert
                assert_422(
                    status,
                    &body,
                    &[Expected::Exact(int_parsing_entry(name, input))],
                    &path,
                );
            }
        }
    }
}

#[tokio::test]
async fn each_integer_parameter_accepts_both_of_its_inclusive_bounds() {
    // Arrange
    let app = TestApp::spawn().await;

    for (endpoint, params) in ENDPOINTS {
        for &param in params {
            let Param::Int { name, ge, le } = param else {
                continue;
            };
            for value in [ge, le] {
                let path = format!("/api/v1/analytics/{endpoint}?{name}={value}");

                // Act
                let (status, body) = app.get(&path).await;

                // Assert
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
            }
        }
    }
}

#[tokio::test]
async fn assistant_id_that_is_not_a_uuid_is_a_422_uuid_parsing_on_every_endpoint_that_takes_it() {
    // Arrange
    let app = TestApp::spawn().await;

    for (endpoint, params) in ENDPOINTS {
        if !params.iter().any(|p| matches!(p, Param::Uuid(_))) {
            continue;
        }
        for input in [
            "not-a-uuid",
            "12345",
            "5d1c7e2a-0000-4000-8000-00000000000g",
        ] {
            let path = format!("/api/v1/analytics/{endpoint}?assistant_id={input}");

            // Act
            let (status, body) = app.get(&path).await;

            // Assert
            assert_422(
                status,
                &body,
                &[Expected::Uuid {
                    name: "assistant_id",
                    input: input.to_string(),
                }],
                &path,
            );
        }
    }
}

#[tokio::test]
async fn an_uppercase_assistant_id_is_a_valid_uuid() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (status, body) = app
        .get("/api/v1/analytics/ttft?assistant_id=5D1C7E2A-0000-4000-8000-000000000001")
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_status_other_than_hot_warm_or_cold_is_a_422_enum() {
    // Arrange
    let app = TestApp::spawn().await;

    for input in ["frozen", "HOT", "Warm", "cold "] {
        let path = format!(
            "/api/v1/analytics/utilization?status={}",
            input.replace(' ', "%20")
        );

        // Act
        let (status, body) = app.get(&path).await;

        // Assert
        assert_422(status, &body, &[Expected::Exact(enum_entry(input))], &path);
    }
}

#[tokio::test]
async fn every_status_value_is_accepted() {
    // Arrange
    let app = TestApp::spawn().await;

    for input in ["hot", "warm", "cold"] {
        // Act
        let (status, body) = app
            .get(&format!("/api/v1/analytics/utilization?status={input}"))
            .await;

        // Assert
        assert_eq!(status, StatusCode::OK, "status={input}: {body}");
    }
}

#[tokio::test]
async fn several_bad_parameters_give_one_entry_each_in_declaration_order() {
    // Arrange
    let app = TestApp::spawn().await;

    for (endpoint, params) in ENDPOINTS {
        if params.len() < 2 {
            continue;
        }
        // Every parameter bad, written in the query in reverse declaration order.
        let mut query = Vec::new();
        let mut expected = Vec::new();
        for (i, &param) in params.iter().enumerate() {
            let (input, want) = match param {
                // Alternate the kinds of failure so each kind meets the others.
                Param::Int { name, ge, le } => match i % 3 {
                    0 => (
                        (ge - 1).to_string(),
                        Expected::Exact(ge_entry(name, &(ge - 1).to_string(), ge)),
                    ),
                    1 => (
                        (le + 1).to_string(),
                        Expected::Exact(le_entry(name, &(le + 1).to_string(), le)),
                    ),
                    _ => (
                        "x".to_string(),
                        Expected::Exact(int_parsing_entry(name, "x")),
                    ),
                },
                Param::Uuid(name) => (
                    "nope".to_string(),
                    Expected::Uuid {
                        name,
                        input: "nope".to_string(),
                    },
                ),
                Param::Status => (
                    "lukewarm".to_string(),
                    Expected::Exact(enum_entry("lukewarm")),
                ),
            };
            query.push(format!("{}={input}", param.name()));
            expected.push(want);
        }
        query.reverse();
        let path = format!("/api/v1/analytics/{endpoint}?{}", query.join("&"));

        // Act
        let (status, body) = app.get(&path).await;

        // Assert
        assert_422(status, &body, &expected, &path);
    }
}

#[tokio::test]
async fn a_bad_parameter_among_good_ones_gives_only_its_own_entry() {
    // Arrange
    let app = TestApp::spawn().await;
    let path =
        "/api/v1/analytics/advanced?ttft_hours=12&step_days=91&cache_hours=1&trending_limit=5";

    // Act
    let (status, body) = app.get(path).await;

    // Assert
    assert_422(
        status,
        &body,
        &[Expected::Exact(le_entry("step_days", "91", 90))],
        path,
    );
}

#[tokio::test]
async fn of_a_repeated_parameter_the_last_one_counts() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act: a bad value followed by a good one is accepted ...
    let (status, body) = app.get("/api/v1/analytics/ttft?hours=0&hours=5").await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"p50": 0.0, "p95": 0.0, "p99": 0.0, "period_hours": 5}),
        "the last hours (5) must be the one used"
    );

    // Act: ... and a good value followed by a bad one is refused with the bad input.
    let path = "/api/v1/analytics/ttft?hours=5&hours=169";
    let (status, body) = app.get(path).await;

    // Assert
    assert_422(
        status,
        &body,
        &[Expected::Exact(le_entry("hours", "169", 168))],
        path,
    );

    // And for an enum.
    let path = "/api/v1/analytics/utilization?status=hot&status=boiling";
    let (status, body) = app.get(path).await;
    assert_422(
        status,
        &body,
        &[Expected::Exact(enum_entry("boiling"))],
        path,
    );
}

#[tokio::test]
async fn unknown_query_parameters_are_ignored() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (status, body) = app
        .get("/api/v1/analytics/cache?hours=2&colour=blue&assistant=7")
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
}
