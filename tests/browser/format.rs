//! The dashboard's number formatting (`src/api/dashboard/app.js`), rebuilt
//! from JavaScript's definitions so the test predicts every rendered text from
//! the API's JSON. The page formats with `Intl.NumberFormat` in the reader's
//! locale; the tests pin the browser to en-US. `Intl` and `Math.round` round
//! ties up (away from zero) on the exact binary value, not to even as Rust's
//! `format!` does: both are reproduced exactly here.

use serde_json::{Value, json};

/// Thousands separators: `1234567` → `1,234,567`.
pub fn group(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// JavaScript's `Math.round`: the nearest integer, ties towards +∞.
pub fn js_round(x: f64) -> f64 {
    let floor = x.floor();
    // x − ⌊x⌋ is exact for doubles of this magnitude.
    if x - floor >= 0.5 { floor + 1.0 } else { floor }
}

/// `Intl.NumberFormat` with `d` fraction digits, before grouping, as Chromium
/// does it: the double's shortest round-trip decimal (what `String(x)` and
/// Rust's `{}` print) rounded half away from zero, so 1.005 gives "1.01"
/// where `toFixed` would give "1.00".
pub fn intl_fixed(x: f64, d: usize) -> String {
    let negative = x.is_sign_negative();
    let shortest = format!("{}", x.abs());
    let (whole, fraction) = shortest.split_once('.').unwrap_or((&shortest, ""));
    let fraction = format!("{fraction:0<width$}", width = d + 1);
    let mut digits: Vec<u8> = whole.bytes().chain(fraction.bytes().take(d)).collect();
    let round_up = fraction.as_bytes()[d] >= b'5';
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let text = String::from_utf8(digits).unwrap();
    let split = text.len() - d;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&text[..split]);
    if d > 0 {
        out.push('.');
        out.push_str(&text[split..]);
    }
    out
}

pub fn fmt_int(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group(&n.unsigned_abs().to_string()))
}

pub fn fmt_fixed(x: f64, d: usize) -> String {
    let text = intl_fixed(x, d);
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    match text.split_once('.') {
        Some((whole, fraction)) => format!("{sign}{}.{fraction}", group(whole)),
        None => format!("{sign}{}", group(text)),
    }
}

pub fn fmt_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{} ms", fmt_int(js_round(seconds * 1000.0) as i64))
    } else {
        format!("{} s", fmt_fixed(seconds, 2))
    }
}

pub fn fmt_seconds(x: f64) -> String {
    format!("{} s", fmt_fixed(x, 2))
}

pub fn fmt_pct(x: f64) -> String {
    format!("{}%", fmt_fixed(x, 2))
}

/// Decimals shared by costs shown together: two, or enough to give the
/// smallest non-zero one two significant digits (six at most).
pub fn usd_digits(values: &[f64]) -> usize {
    let Some(least) = values.iter().copied().filter(|v| *v > 0.0).reduce(f64::min) else {
        return 2;
    };
    let mut digits = 2;
    for step in [0.1, 0.01, 0.001, 0.0001] {
        if least >= step {
            break;
        }
        digits += 1;
    }
    digits
}

pub fn fmt_usd(x: f64, digits: usize) -> String {
    format!("${}", fmt_fixed(x, digits))
}

/// The page's words for the API's session buckets.
pub fn session_label(api: &str) -> String {
    match api {
        "Single Question" => "Single question",
        "Normal (2-5)" => "Normal (2–5 questions)",
        "Power User (5+)" => "Power user (6+ questions)",
        other => other,
    }
    .to_string()
}

pub fn fmt_signed(x: f64, d: usize) -> String {
    let sign = if x >= 0.0 { "+" } else { "" };
    format!("{sign}{}", fmt_fixed(x, d))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn i(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{v} is not an integer"))
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a string"))
        .to_string()
}

/// A `<time>` field reads as its `datetime`; an absent time as "never".
fn time(v: &Value) -> Value {
    match v {
        Value::Null => json!("never"),
        other => json!(s(other)),
    }
}

fn section(state: &str, values: Value, rows: Vec<Value>) -> Value {
    json!({"state": state, "values": values, "rows": rows})
}

fn empty() -> Value {
    section("empty", json!({}), vec![])
}

fn is_empty(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

/// What every section of the page must show for these API answers: the
/// `/advanced` JSON, the `/timeseries` JSON, the cold-document listing and
/// `/assistants` (trending rows name their assistant when the page is not
/// scoped to one).
pub fn expected_page(
    advanced: &Value,
    series: &Value,
    cold: &Value,
    assistants: &Value,
    scoped: bool,
) -> Value {
    let degraded: Vec<String> = advanced["degraded"]
        .as_array()
        .map(|d| d.iter().map(s).collect())
        .unwrap_or_default();
    let of = |key: &str, render: &dyn Fn(&Value) -> Value| -> Value {
        if degraded.iter().any(|d| d == key) {
            return section("degraded", json!({}), vec![]);
        }
        let value = &advanced[key];
        if is_empty(value) {
            empty()
        } else {
            render(value)
        }
    };
    let rows = |value: &Value, row: &dyn Fn(usize, &Value) -> Value| -> Vec<Value> {
        value
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(n, v)| row(n, v))
            .collect()
    };
    let mut page = serde_json::Map::new();
    page.insert(
        "ttft".into(),
        of("ttft_percentiles", &|t| {
            section(
                "ok",
                json!({"p50": fmt_seconds(f(&t["p50"])), "p95": fmt_seconds(f(&t["p95"])),
                       "p99": fmt_seconds(f(&t["p99"]))}),
                vec![],
            )
        }),
    );
    page.insert(
        "cache".into(),
        of("cache_metrics", &|c| {
            section(
                "ok",
                json!({"rate": fmt_pct(f(&c["hit_rate"])), "hits": fmt_int(i(&c["cache_hits"])),
                       "total": fmt_int(i(&c["total_requests"]))}),
                vec![],
            )
        }),
    );
    page.insert(
        "cost".into(),
        of("assistant_costs", &|costs| {
            // In the page's order of addition, so the float sum is the same.
            let (mut total, mut tokens) = (0.0f64, 0i64);
            for c in costs.as_array().unwrap() {
                total += f(&c["estimated_cost_usd"]);
                tokens += i(&c["total_tokens"]);
            }
            section(
                "ok",
                json!({"total": fmt_usd(total, usd_digits(&[total])), "tokens": fmt_int(tokens)}),
                vec![],
            )
        }),
    );
    page.insert(
        "rerank".into(),
        of("reranking_impact", &|r| {
            let position = match &r["avg_position_change"] {
                Value::Null => "—".to_string(),
                p => fmt_fixed(f(p), 2),
            };
            section(
                "ok",
                json!({"improvement": fmt_signed(f(&r["avg_score_improvement"]), 3),
                       "count": fmt_int(i(&r["reranking_enabled_count"])), "position": position}),
                vec![],
            )
        }),
    );
    page.insert(
        "steps".into(),
        of("step_breakdown", &|steps| {
            section(
                "ok",
                json!({}),
                rows(steps, &|_, x| {
                    let mut row = json!({"name": s(&x["step_name"]),
                        "duration": fmt_duration(f(&x["avg_duration"])),
                        "count": fmt_int(i(&x["step_count"]))});
                    if !x["avg_tokens"].is_null() {
                        row["tokens"] = json!(format!(
                            "in {} · out {}",
                            fmt_int(js_round(f(&x["avg_tokens"]["input"])) as i64),
                            fmt_int(js_round(f(&x["avg_tokens"]["output"])) as i64)
                        ));
                    }
                    row
                }),
            )
        }),
    );
    page.insert(
        "trending".into(),
        of("trending_topics", &|topics| {
            section(
                "ok",
                json!({}),
                rows(topics, &|n, t| {
                    let mut row = json!({"rank": (n + 1).to_string(),
                        "question": s(&t["canonical_text"]),
                        "frequency": fmt_int(i(&t["frequency"])),
                        "variations": fmt_int(i(&t["variation_count"])),
                        "last_asked": time(&t["last_asked"])});
                    if t["topic"] != t["canonical_text"] {
                        row["topic"] = json!(s(&t["topic"]));
                    }
                    if !scoped {
                        let id = s(&t["assistant_id"]);
                        let name = assistants
                            .as_array()
                            .and_then(|list| list.iter().find(|a| a["assistant_id"] == id.as_str()))
                            .map_or(id.clone(), |a| s(&a["assistant_name"]));
                        row["assistant"] = json!(name);
                    }
                    row
                }),
            )
        }),
    );
    page.insert(
        "diversity".into(),
        of("topic_diversity", &|d| {
            section(
                "ok",
                json!({"score": fmt_fixed(f(&d["diversity_score"]), 3),
                       "topics": fmt_int(i(&d["total_topics"])),
                       "dominant": fmt_pct(f(&d["dominant_topic_share"]))}),
                vec![],
            )
        }),
    );
    page.insert(
        "costs".into(),
        of("assistant_costs", &|costs| {
            let all: Vec<f64> = costs
                .as_array()
                .unwrap()
                .iter()
                .map(|c| f(&c["estimated_cost_usd"]))
                .collect();
            let digits = usd_digits(&all);
            section(
                "ok",
                json!({}),
                rows(costs, &|_, c| {
                    json!({"assistant": s(&c["assistant_name"]),
                        "tokens": fmt_int(i(&c["total_tokens"])),
                        "input": fmt_int(i(&c["input_tokens"])),
                        "output": fmt_int(i(&c["output_tokens"])),
                        "cost": fmt_usd(f(&c["estimated_cost_usd"]), digits)})
                }),
            )
        }),
    );
    page.insert(
        "sessions".into(),
        of("session_distribution", &|sessions| {
            section(
                "ok",
                json!({}),
                rows(sessions, &|_, x| {
                    json!({"type": session_label(&s(&x["session_type"])), "count": fmt_int(i(&x["session_count"])),
                        "percentage": fmt_pct(f(&x["percentage"]))})
                }),
            )
        }),
    );
    page.insert(
        "users".into(),
        of("user_stats", &|users| {
            section(
                "ok",
                json!({}),
                rows(users, &|_, u| {
                    let name = [&u["full_name"], &u["email"], &u["user_id"]]
                        .into_iter()
                        .map(s)
                        .find(|x| !x.is_empty())
                        .unwrap_or_default();
                    json!({"name": name, "email": s(&u["email"]),
                        "interactions": fmt_int(i(&u["interaction_count"])),
                        "tokens": fmt_int(i(&u["total_tokens"])),
                        "last_active": time(&u["last_active"])})
                }),
            )
        }),
    );
    page.insert(
        "freshness".into(),
        of("document_freshness", &|rows_in| {
            section(
                "ok",
                json!({}),
                rows(rows_in, &|_, x| {
                    json!({"category": s(&x["freshness_category"]),
                        "count": fmt_int(i(&x["doc_count"])),
                        "percentage": fmt_pct(f(&x["percentage"]))})
                }),
            )
        }),
    );
    page.insert(
        "utilization".into(),
        of("document_utilization", &|docs| {
            let mut listed = rows(docs, &|_, d| {
                json!({"file": s(&d["file_name"]), "connector": s(&d["connector_name"]),
                    "count": fmt_int(i(&d["retrieval_count"])),
                    "last_retrieved": time(&d["last_retrieved"])})
            });
            // The page lists the ten most retrieved.
            listed.truncate(10);
            section("ok", json!({}), listed)
        }),
    );
    page.insert(
        "sync".into(),
        of("connector_sync_rates", &|rates| {
            section(
                "ok",
                json!({}),
                rows(rates, &|_, r| {
                    let duration = match &r["avg_sync_duration"] {
                        Value::Null => "—".to_string(),
                        d => fmt_duration(f(d)),
                    };
                    let partial =
                        i(&r["total_syncs"]) - i(&r["successful_syncs"]) - i(&r["failed_syncs"]);
                    json!({"connector": s(&r["connector_name"]),
                        "rate": fmt_pct(f(&r["success_rate"])),
                        "ok": fmt_int(i(&r["successful_syncs"])),
                        "partial": fmt_int(partial),
                        "failed": fmt_int(i(&r["failed_syncs"])),
                        "total": fmt_int(i(&r["total_syncs"])), "duration": duration})
                }),
            )
        }),
    );
    page.insert(
        "cold".into(),
        if is_empty(cold) {
            empty()
        } else {
            section(
                "ok",
                json!({}),
                cold.as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        json!({"file": s(&d["file_name"]), "connector": s(&d["connector_name"]),
                        "last_retrieved": time(&d["last_retrieved"])})
                    })
                    .collect(),
            )
        },
    );
    let buckets = series["buckets"].as_array().expect("a series has buckets");
    let total: i64 = buckets.iter().map(|b| i(&b["count"])).sum();
    page.insert(
        "requests-chart".into(),
        if total == 0 {
            empty()
        } else {
            section(
                "ok",
                json!({"total": fmt_int(total), "buckets": buckets.len().to_string()}),
                vec![],
            )
        },
    );
    let p95: Vec<f64> = buckets
        .iter()
        .filter(|b| !b["ttft_p95"].is_null())
        .map(|b| f(&b["ttft_p95"]))
        .collect();
    page.insert(
        "ttft-chart".into(),
        if p95.is_empty() {
            empty()
        } else {
            let peak = p95.iter().copied().fold(f64::MIN, f64::max);
            section(
                "ok",
                json!({"points": p95.len().to_string(), "peak": fmt_seconds(peak)}),
                vec![],
            )
        },
    );
    Value::Object(page)
}

#[test]
fn formatting_follows_javascript() {
    // Ties round away from zero as Intl does (Rust's format! would give 0.12 and 2).
    assert_eq!(intl_fixed(0.125, 2), "0.13");
    assert_eq!(intl_fixed(2.5, 0), "3");
    // A tie is read on the shortest decimal, not on the binary value just below it.
    assert_eq!(intl_fixed(1.005, 2), "1.01");
    assert_eq!(intl_fixed(7.925, 2), "7.93");
    assert_eq!(intl_fixed(0.045, 2), "0.05");
    assert_eq!(intl_fixed(9.999, 2), "10.00");
    assert_eq!(intl_fixed(-0.0001, 2), "-0.00");
    assert_eq!(intl_fixed(1e-7, 2), "0.00");
    assert_eq!(intl_fixed(123_456.785, 0), "123457");
    assert_eq!(fmt_fixed(1234567.891, 2), "1,234,567.89");
    assert_eq!(fmt_int(1234), "1,234");
    assert_eq!(fmt_int(999), "999");
    assert_eq!(js_round(0.5), 1.0);
    assert_eq!(js_round(0.49999999999999994), 0.0);
    assert_eq!(fmt_duration(0.8404), "840 ms");
    assert_eq!(fmt_duration(1.234), "1.23 s");
    assert_eq!(fmt_seconds(0.8404), "0.84 s");
    assert_eq!(usd_digits(&[0.01234, 12.5, 0.0]), 3);
    assert_eq!(usd_digits(&[0.5, 1234.5]), 2);
    assert_eq!(usd_digits(&[0.000_001]), 6);
    assert_eq!(usd_digits(&[0.0]), 2);
    assert_eq!(fmt_usd(0.01234, 3), "$0.012");
    assert_eq!(fmt_usd(1234.5, 2), "$1,234.50");
    assert_eq!(fmt_pct(12.5), "12.50%");
    assert_eq!(
        session_label("Power User (5+)"),
        "Power user (6+ questions)"
    );
    assert_eq!(fmt_signed(0.2, 3), "+0.200");
    assert_eq!(fmt_signed(-0.05, 3), "-0.050");
}
