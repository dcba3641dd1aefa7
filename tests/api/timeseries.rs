//! `GET /api/v1/analytics/timeseries`: epoch-aligned buckets with
//! count, TTFT p50/p95 and cache hit rate, `null` where unknown; expectations
//! are computed here from the events, independently of the server.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Clock, INGEST_TOKEN, TestApp, assistant, interaction, new_id, percentile_cont, rfc3339, with,
};

const HOUR_US: i64 = 3_600_000_000;

/// The start of the epoch-aligned bucket of `bucket_us` holding `at`.
fn bucket_of(at: DateTime<Utc>, bucket_us: i64) -> i64 {
    at.timestamp_micros().div_euclid(bucket_us) * bucket_us
}

fn micros(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .timestamp_micros()
}

/// (ttft seconds or none, cache hit) of one interaction.
type Sample = (Option<f64>, bool);

/// What one bucket must hold, from its samples.
fn expected_bucket(samples: &[Sample]) -> Value {
    let mut ttfts: Vec<f64> = samples.iter().filter_map(|s| s.0).collect();
    ttfts.sort_by(f64::total_cmp);
    let hits = samples.iter().filter(|s| s.1).count();
    let (p50, p95) = if ttfts.is_empty() {
        (Value::Null, Value::Null)
    } else {
        (
            json!(percentile_cont(&ttfts, 0.5)),
            json!(percentile_cont(&ttfts, 0.95)),
        )
    };
    let rate: f64 = format!("{:.2}", hits as f64 / samples.len() as f64 * 100.0)
        .parse()
        .unwrap();
    json!({"count": samples.len(), "ttft_p50": p50, "ttft_p95": p95, "cache_hit_rate": rate})
}

/// Asserts the shape every answer has: the window, contiguous aligned buckets
/// covering it, and every bucket not in `filled` empty with nulls.
fn assert_series(body: &Value, hours: i64, bucket_minutes: i64, filled: &BTreeMap<i64, Value>) {
    assert_eq!(body["hours"], json!(hours), "{body}");
    assert_eq!(body["bucket_minutes"], json!(bucket_minutes), "{body}");
    let from = micros(body["from"].as_str().unwrap());
    let to = micros(body["to"].as_str().unwrap());
    assert_eq!(to - from, hours * HOUR_US, "the window is `hours` long");
    let bucket_us = bucket_minutes * 60_000_000;
    let buckets = body["buckets"].as_array().unwrap();
    let first = (from + 1).div_euclid(bucket_us) * bucket_us;
    let last = to.div_euclid(bucket_us) * bucket_us;
    assert_eq!(
        buckets.len() as i64,
        (last - first) / bucket_us + 1,
        "every bucket of the window is listed"
    );
    for (i, bucket) in buckets.iter().enumerate() {
        let start = micros(bucket["bucket_start"].as_str().unwrap());
        assert_eq!(start, first + i as i64 * bucket_us, "bucket {i} start");
        let got = json!({
            "count": bucket["count"],
            "ttft_p50": bucket["ttft_p50"],
            "ttft_p95": bucket["ttft_p95"],
            "cache_hit_rate": bucket["cache_hit_rate"],
        });
        let want = filled.get(&start).cloned().unwrap_or(
            json!({"count": 0, "ttft_p50": null, "ttft_p95": null, "cache_hit_rate": null}),
        );
        assert_eq!(got, want, "bucket starting {}", bucket["bucket_start"]);
    }
    for start in filled.keys() {
        assert!(
            (first..=last).contains(start),
            "the seeded bucket {start} is outside the answer's window"
        );
    }
}

/// Interactions of `assistant_id` at `at`, one per sample.
fn events(assistant_id: uuid::Uuid, at: &[DateTime<Utc>], samples: &[Sample]) -> Vec<Value> {
    at.iter()
        .zip(samples)
        .map(|(t, (ttft, hit))| {
            with(
                interaction(assistant_id, &format!("s-{}", new_id()), &rfc3339(*t)),
                json!({"ttft_s": ttft, "cache_hit": hit}),
            )
        })
        .collect()
}

#[tokio::test]
async fn buckets_hold_exact_counts_percentiles_and_hit_rates_with_nulls_where_unknown() {
    // Arrange: assistant A has a busy bucket two hours ago and a bucket four
    // hours ago whose interactions carry no TTFT; B has one interaction.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let busy = bucket_of(clock.at(TimeDelta::hours(-2)), HOUR_US);
    let quiet = bucket_of(clock.at(TimeDelta::hours(-4)), HOUR_US);
    let at = |start: i64, minute: i64| {
        DateTime::from_timestamp_micros(start + minute * 60_000_000).unwrap()
    };
    let busy_samples: Vec<Sample> = vec![
        (Some(0.5), true),
        (Some(4.0), false),
        (Some(1.0), false),
        (None, true),
        (Some(2.0), false),
    ];
    let quiet_samples: Vec<Sample> = vec![(None, false), (None, false), (None, true)];
    let b_samples: Vec<Sample> = vec![(Some(0.25), true)];
    let mut seed = vec![assistant(a, "Alpha"), assistant(b, "Beta")];
    seed.extend(events(
        a,
        &(1..=5).map(|m| at(busy, m)).collect::<Vec<_>>(),
        &busy_samples,
    ));
    seed.extend(events(
        a,
        &(10..=12).map(|m| at(quiet, m)).collect::<Vec<_>>(),
        &quiet_samples,
    ));
    seed.extend(events(b, &[at(busy, 30)], &b_samples));
    app.ingest_ok(Value::Array(seed)).await;

    // Act
    let only_a = app
        .analytics(&format!(
            "/timeseries?hours=6&bucket_minutes=60&assistant_id={a}"
        ))
        .await;
    let all = app.analytics("/timeseries?hours=6&bucket_minutes=60").await;
    let only_b = app
        .analytics(&format!(
            "/timeseries?hours=6&bucket_minutes=60&assistant_id={b}"
        ))
        .await;
    let unknown = app
        .analytics(&format!(
            "/timeseries?hours=6&bucket_minutes=60&assistant_id={}",
            new_id()
        ))
        .await;

    // Assert
    let mut want_a = BTreeMap::new();
    want_a.insert(busy, expected_bucket(&busy_samples));
    want_a.insert(quiet, expected_bucket(&quiet_samples));
    // Spelled out once, so the helper's arithmetic is pinned too: TTFTs
    // [0.5, 1, 2, 4] → p50 1.5, p95 2 + 0.85 · 2 (h = 2.85); 2 hits of 5 → 40 %.
    assert_eq!(want_a[&busy]["ttft_p50"], json!(1.5));
    assert_eq!(want_a[&busy]["cache_hit_rate"], json!(40.0));
    assert_series(&only_a, 6, 60, &want_a);

    let mut busy_all = busy_samples.clone();
    busy_all.extend(b_samples.iter().copied());
    let mut want_all = want_a.clone();
    want_all.insert(busy, expected_bucket(&busy_all));
    assert_series(&all, 6, 60, &want_all);

    let mut want_b = BTreeMap::new();
    want_b.insert(busy, expected_bucket(&b_samples));
    assert_series(&only_b, 6, 60, &want_b);

    assert_series(&unknown, 6, 60, &BTreeMap::new());
}

#[tokio::test]
async fn the_bucket_size_is_chosen_from_the_window_when_absent() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [(1, 1), (6, 10), (24, 30), (168, 180), (720, 720)];

    for (hours, minutes) in cases {
        // Act
        let body = app.analytics(&format!("/timeseries?hours={hours}")).await;

        // Assert
        assert_series(&body, hours, minutes, &BTreeMap::new());
        assert!(
            body["buckets"].as_array().unwrap().len() <= 61,
            "hours={hours}: at most 60 buckets (+1 when unaligned)"
        );
    }
    let default = app.analytics("/timeseries").await;
    assert_series(&default, 24, 30, &BTreeMap::new());
}

#[tokio::test]
async fn the_counts_add_up_to_the_cache_metrics_total_of_the_same_window() {
    // Arrange: interactions spread over the last day, none near its edges.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let a = new_id();
    let seed: Vec<Value> = (0..40)
        .map(|i| {
            with(
                interaction(a, "s", &clock.ago_min(20 + i * 31)),
                json!({"cache_hit": i % 3 == 0, "ttft_s": 0.1 + i as f64 / 100.0}),
            )
        })
        .collect();
    app.ingest_ok(Value::Array(seed)).await;

    // Act
    let series = app.analytics("/timeseries?hours=24").await;
    let cache = app.analytics("/cache?hours=24").await;

    // Assert
    let total: i64 = series["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(json!(total), cache["total_requests"]);
    assert_eq!(total, 40);
}

#[tokio::test]
async fn bad_parameters_are_answered_422_like_fastapi() {
    // Arrange
    let app = TestApp::spawn().await;
    let cases = [
        ("hours=0", "greater_than_equal", "hours"),
        ("hours=721", "less_than_equal", "hours"),
        ("hours=x", "int_parsing", "hours"),
        ("bucket_minutes=0", "greater_than_equal", "bucket_minutes"),
        ("bucket_minutes=1441", "less_than_equal", "bucket_minutes"),
        ("assistant_id=nope", "uuid_parsing", "assistant_id"),
    ];

    for (query, kind, parameter) in cases {
        // Act
        let (status, body) = app
            .get(&format!("/api/v1/analytics/timeseries?{query}"))
            .await;

        // Assert
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        let entries = body["detail"].as_array().expect("a FastAPI 422 body");
        assert_eq!(entries.len(), 1, "{query}: {body}");
        assert_eq!(entries[0]["type"], json!(kind), "{query}");
        assert_eq!(entries[0]["loc"], json!(["query", parameter]), "{query}");
    }
    // The largest window in the smallest buckets that stay under the cap is fine,
    // and smaller buckets are widened to that size rather than refused.
    for requested in [22, 1] {
        let (status, body) = app
            .get(&format!(
                "/api/v1/analytics/timeseries?hours=720&bucket_minutes={requested}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["bucket_minutes"], json!(22));
        let buckets = body["buckets"].as_array().expect("buckets").len();
        assert!((1_964..=1_965).contains(&buckets), "{buckets} buckets");
    }
}

#[tokio::test]
async fn the_series_needs_the_admin_token() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (none, _) = app
        .get_with_token("/api/v1/analytics/timeseries?hours=0", None)
        .await;
    let (ingest, _) = app
        .get_with_token("/api/v1/analytics/timeseries", Some(INGEST_TOKEN))
        .await;

    // Assert: the token is checked before the parameters.
    assert_eq!(none, StatusCode::UNAUTHORIZED);
    assert_eq!(ingest, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn openapi_documents_the_series_and_the_assistant_list() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let (_, doc) = app.get_with_token("/openapi.json", None).await;

    // Assert
    let series = &doc["paths"]["/api/v1/analytics/timeseries"]["get"];
    let mut names: Vec<&str> = series["parameters"]
        .as_array()
        .expect("the series route is documented with parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["assistant_id", "bucket_minutes", "hours"]);
    assert!(
        doc["paths"]["/api/v1/assistants"]["get"].is_object(),
        "GET /api/v1/assistants is documented"
    );
    for schema in ["Timeseries", "TimeseriesBucket", "AssistantSummary"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} is documented"
        );
    }
}
