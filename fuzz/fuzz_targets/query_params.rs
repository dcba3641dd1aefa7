//! Query-string parsing on arbitrary query strings, read the way every
//! analytics handler reads its parameters. Any panic is a finding; a query
//! that passes must give values inside their bounds, and a refused one
//! FastAPI-shaped 422 entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ragpulse::internals::api::advanced_params;
use ragpulse::internals::api::ApiError;
use ragpulse::internals::api::Query;

fn check_entries(error: ApiError) {
    let ApiError::Validation(entries) = error else {
        panic!("a query error that is not a 422: {error:?}");
    };
    assert!(!entries.is_empty());
    for entry in entries {
        assert!(entry["type"].is_string() && entry["msg"].is_string(), "{entry}");
        assert_eq!(entry["loc"][0], "query", "{entry}");
        assert!(entry["input"].is_string(), "{entry}");
    }
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    match advanced_params(Some(&raw)) {
        Ok(p) => {
            assert!((1..=168).contains(&p.ttft_hours));
            assert!((1..=90).contains(&p.step_days));
            assert!((1..=168).contains(&p.cache_hours));
            assert!((1..=168).contains(&p.cost_hours));
            assert!((1..=50).contains(&p.trending_limit));
        }
        Err(e) => check_entries(e),
    }
    // The shapes of the other handlers: bounded ints, optional ints, an enum,
    // a boolean and a UUID.
    let mut q = Query::parse(Some(&raw));
    let days = q.int("days", 30, 1, 90);
    let optional = q.optional_int("days", 1, 365);
    let status = q.choice("status", &["hot", "warm", "cold"]);
    let limit = q.int("limit", 50, 1, 500);
    let phrasings = q.boolean("phrasings");
    let assistant = q.uuid("assistant_id");
    let _ = (phrasings, assistant, status);
    match q.finish() {
        Ok(()) => {
            assert!((1..=90).contains(&days));
            assert!((1..=500).contains(&limit));
            assert!(optional.is_none_or(|d| (1..=365).contains(&d)));
        }
        Err(e) => check_entries(e),
    }
});
