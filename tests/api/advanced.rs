//! `GET /api/v1/analytics/advanced` (`api.md`, AdvancedAnalyticsResponse): every
//! metric at once, with the contract's windows, scoped by `assistant_id`, and
//! failures isolated in `degraded`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{
    Clock, TestApp, assistant, connector, document, interaction, is_wire_timestamp, metric_sum,
    new_id, percentile_cont, sync, user, with,
};

/// Removes `generated_at` after checking its format and that it is about now.
fn take_generated_at(body: &mut Value, clock: &Clock) {
    let generated = body
        .as_object_mut()
        .and_then(|o| o.remove("generated_at"))
        .unwrap_or_else(|| panic!("generated_at is missing: {body}"));
    let text = generated.as_str().unwrap_or_default();
    assert!(
        is_wire_timestamp(text),
        "generated_at {text:?} is not RFC 3339 with 6 digits and Z"
    );
    let at: DateTime<Utc> = text.parse().unwrap();
    let skew = (at - clock.now).num_seconds().abs();
    assert!(
        skew < 120,
        "generated_at {text} is not about now ({})",
        clock.now
    );
}

#[tokio::test]
async fn advanced_returns_every_metric_exactly_for_an_assistant_and_for_all() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let (ada, grace, wiki, guide) = (new_id(), new_id(), new_id(), new_id());
    app.ingest_ok(json!([
        assistant(a, "Bot"),
        user(ada, "ada@example.com", "Ada Lovelace"),
        connector(wiki, "Wiki"),
        document(guide, wiki, "guide.pdf", &clock.ago_d(2)),
        sync(wiki, "success", &clock.ago_h(1), Some(5.0)),
        with(interaction(a, "sa", &clock.ago_min(10)), json!({
            "user_id": ada, "question": "How do I reset my password?",
            "ttft_s": 0.5, "total_duration_s": 2.0, "cache_hit": true,
            "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01,
            "steps": [
                {"name": "retrieval", "duration_s": 0.2},
                {"name": "synthesis", "duration_s": 1.5, "input_tokens": 100, "output_tokens": 20}
            ],
            "retrieved_document_ids": [guide],
            "rerank": {"score_improvement": 0.2, "position_change": 1.0}
        })),
        with(interaction(b, "sb", &clock.ago_min(20)), json!({
            "user_id": grace, "question": "Where is my invoice?",
            "ttft_s": 1.5, "total_duration_s": 3.0, "cache_hit": false,
            "input_tokens": 300, "output_tokens": 30, "cost_usd": 0.03,
            "steps": [{"name": "guardrail", "duration_s": 0.1}],
            "retrieved_document_ids": [guide],
            "rerank": {"score_improvement": 0.4}
        })),
    ]))
    .await;
    let freshness = json!([
        {"freshness_category": "Fresh (<30d)", "doc_count": 1, "percentage": 100.0},
        {"freshness_category": "Aging (30-90d)", "doc_count": 0, "percentage": 0.0},
        {"freshness_category": "Stale (>90d)", "doc_count": 0, "percentage": 0.0},
    ]);
    let syncs = json!([{
        "connector_id": wiki, "connector_name": "Wiki", "success_rate": 100.0, "total_syncs": 1,
        "successful_syncs": 1, "failed_syncs": 0, "avg_sync_duration": 5.0,
    }]);
    let single_sessions = |n: i64| {
        json!([
            {"session_type": "Single Question", "session_count": n, "percentage": 100.0},
            {"session_type": "Normal (2-5)", "session_count": 0, "percentage": 0.0},
            {"session_type": "Power User (5+)", "session_count": 0, "percentage": 0.0},
        ])
    };
    let password_topic = json!({
        "topic": "How do I reset my password?", "canonical_text": "How do I reset my password?",
        "frequency": 1, "variation_count": 1, "last_asked": clock.ago_min(10), "growth": null,
        "assistant_id": a,
    });
    let invoice_topic = json!({
        "topic": "Where is my invoice?", "canonical_text": "Where is my invoice?",
        "frequency": 1, "variation_count": 1, "last_asked": clock.ago_min(20), "growth": null,
        "assistant_id": b,
    });
    let a_cost = json!({"assistant_id": a, "assistant_name": "Bot", "total_tokens": 120,
        "input_tokens": 100, "output_tokens": 20, "estimated_cost_usd": 0.01});
    let ada_stat = json!({"user_id": ada, "email": "ada@example.com", "full_name": "Ada Lovelace",
        "total_tokens": 120, "interaction_count": 1, "last_active": clock.ago_min(10)});
    let expected_a = json!({
        "ttft_percentiles": {"p50": 0.5, "p95": 0.5, "p99": 0.5, "period_hours": 24},
        "step_breakdown": [
            {"step_name": "retrieval", "avg_duration": 0.2, "step_count": 1, "avg_tokens": null},
            {"step_name": "synthesis", "avg_duration": 1.5, "step_count": 1, "avg_tokens": {"input": 100.0, "output": 20.0}},
        ],
        "cache_metrics": {"hit_rate": 100.0, "total_requests": 1, "cache_hits": 1, "cache_misses": 0, "period_hours": 24},
        "session_distribution": single_sessions(1),
        "trending_topics": [password_topic],
        "topic_diversity": {"diversity_score": 0.0, "total_topics": 1, "dominant_topic_share": 100.0},
        "assistant_costs": [a_cost],
        "document_utilization": [{"file_name": "guide.pdf", "connector_name": "Wiki", "retrieval_count": 1,
            "last_retrieved": clock.ago_min(10), "status": "warm"}],
        "user_stats": [ada_stat],
        "document_freshness": freshness,
        "reranking_impact": {"avg_score_improvement": 0.2, "reranking_enabled_count": 1, "avg_position_change": 1.0},
        "connector_sync_rates": syncs,
    });
    // Every assistant: TTFT [0.5, 1.5]; steps guardrail and retrieval tie on index 0 (by
    // name), synthesis at 1; 1 hit of 2; two single sessions; two topics of 1 (the later
    // first); diversity [1, 1]; B costs more (0.03); the guide retrieved twice; Grace
    // (330 tokens, unregistered) before Ada; rerank (0.2 + 0.4)/2 = 0.3, positions 1.0/1.
    let expected_all = json!({
        "ttft_percentiles": {
            "p50": percentile_cont(&[0.5, 1.5], 0.5),
            "p95": percentile_cont(&[0.5, 1.5], 0.95),
            "p99": percentile_cont(&[0.5, 1.5], 0.99),
            "period_hours": 24,
        },
        "step_breakdown": [
            {"step_name": "guardrail", "avg_duration": 0.1, "step_count": 1, "avg_tokens": null},
            {"step_name": "retrieval", "avg_duration": 0.2, "step_count": 1, "avg_tokens": null},
            {"step_name": "synthesis", "avg_duration": 1.5, "step_count": 1, "avg_tokens": {"input": 100.0, "output": 20.0}},
        ],
        "cache_metrics": {"hit_rate": 50.0, "total_requests": 2, "cache_hits": 1, "cache_misses": 1, "period_hours": 24},
        "session_distribution": single_sessions(2),
        "trending_topics": [password_topic, invoice_topic],
        "topic_diversity": {"diversity_score": 0.5, "total_topics": 2, "dominant_topic_share": 50.0},
        "assistant_costs": [
            {"assistant_id": b, "assistant_name": b.to_string(), "total_tokens": 330,
             "input_tokens": 300, "output_tokens": 30, "estimated_cost_usd": 0.03},
            a_cost,
        ],
        "document_utilization": [{"file_name": "guide.pdf", "connector_name": "Wiki", "retrieval_count": 2,
            "last_retrieved": clock.ago_min(10), "status": "warm"}],
        "user_stats": [
            {"user_id": grace, "email": "", "full_name": "", "total_tokens": 330,
             "interaction_count": 1, "last_active": clock.ago_min(20)},
            ada_stat,
        ],
        "document_freshness": freshness,
        "reranking_impact": {"avg_score_improvement": 0.3, "reranking_enabled_count": 2, "avg_position_change": 1.0},
        "connector_sync_rates": syncs,
    });
    let cases = [
        (format!("?assistant_id={a}"), expected_a, "assistant A"),
        (String::new(), expected_all, "every assistant"),
    ];

    for (query, expected, case) in cases {
        // Act
        let mut got = app.analytics(&format!("/advanced{query}")).await;

        // Assert (no `degraded` key when nothing failed)
        take_generated_at(&mut got, &clock);
        assert_eq!(got, expected, "{case}");
    }
}

#[tokio::test]
async fn advanced_of_an_empty_store_has_every_key_with_its_empty_value() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();

    // Act
    let mut got = app.analytics("/advanced").await;

    // Assert
    take_generated_at(&mut got, &clock);
    assert_eq!(
        got,
        json!({
            "ttft_percentiles": null,
            "step_breakdown": [],
            "cache_metrics": null,
            "session_distribution": [],
            "trending_topics": [],
            "topic_diversity": null,
            "assistant_costs": [],
            "document_utilization": [],
            "user_stats": [],
            "document_freshness": [],
            "reranking_impact": null,
            "connector_sync_rates": [],
        })
    );
}

#[tokio::test]
async fn advanced_uses_each_windows_parameter_for_its_metrics_as_the_single_endpoints_do() {
    // Arrange: events at many ages, each with every feature, for two assistants.
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let (a, b) = (new_id(), new_id());
    let wiki = new_id();
    let mut events = vec![connector(wiki, "Wiki"), assistant(a, "Alpha")];
    let ages_s = [
        600,         // 10 min
        3 * 3600,    // 3 h
        6 * 3600,    // 6 h
        26 * 3600,   // 26 h
        60 * 3600,   // 2.5 days
        4 * 86_400,  // 4 days
        20 * 86_400, // 20 days
        40 * 86_400, // 40 days
    ];
    for (i, age) in ages_s.into_iter().enumerate() {
        for (assistant_id, offset) in [(a, 0), (b, 7)] {
            let doc = new_id();
            events.push(document(
                doc,
                wiki,
                &format!("doc-{i}-{offset}.pdf"),
                &clock.ago_d(1),
            ));
            events.push(sync(
                wiki,
                if i % 2 == 0 { "success" } else { "failure" },
                &clock.ago_s(age),
                Some(1.0 + i as f64),
            ));
            events.push(with(interaction(assistant_id, &format!("session-{}", i % 3), &clock.ago_s(age + offset)), json!({
                "user_id": new_id(),
                "question": format!("Question number {}", i % 4),
                "ttft_s": 0.1 * (i + 1) as f64 + offset as f64,
                "total_duration_s": 100.0,
                "cache_hit": i % 2 == 1,
                "input_tokens": 100 * (i + 1), "output_tokens": 10 + offset, "cost_usd": 0.001 * (i + 1) as f64,
                "steps": [{"name": format!("step-{}", i % 2), "duration_s": 0.5}],
                "retrieved_document_ids": [doc],
                "rerank": {"score_improvement": 0.01 * (i + 1) as f64, "position_change": 1.0},
            })));
        }
    }
    app.ingest_ok(json!(events)).await;
    let scopes = [String::new(), format!("&assistant_id={a}")];

    for scope in scopes {
        // Act
        let query = format!(
            "?ttft_hours=2&step_days=3&cache_hours=5&cost_hours=30&trending_limit=2{scope}"
        );
        let advanced = app.analytics(&format!("/advanced{query}")).await;

        // Assert: each key equals its own endpoint with the window the contract maps to it.
        let singles = [
            ("ttft_percentiles", format!("/ttft?hours=2{scope}")),
            ("step_breakdown", format!("/steps?days=3{scope}")),
            ("session_distribution", format!("/sessions?days=3{scope}")),
            ("connector_sync_rates", String::from("/sync?days=3")),
            ("cache_metrics", format!("/cache?hours=5{scope}")),
            ("reranking_impact", format!("/reranking?hours=5{scope}")),
            ("assistant_costs", format!("/costs?hours=30{scope}")),
            (
                "document_utilization",
                format!("/utilization?days=30&limit=50{scope}"),
            ),
            ("user_stats", format!("/users?days=30&limit=10{scope}")),
            ("trending_topics", format!("/trending?limit=2{scope}")),
            ("topic_diversity", format!("/diversity?{scope}")),
            ("document_freshness", String::from("/freshness")),
        ];
        for (key, path) in singles {
            let single = app.analytics(&path).await;
            assert_eq!(advanced[key], single, "/advanced{query} [{key}] vs {path}");
        }
        assert!(advanced.get("degraded").is_none(), "{advanced}");
    }
}

#[tokio::test]
async fn a_failing_metric_is_reported_in_degraded_while_the_others_are_returned() {
    // Arrange
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    app.ingest_ok(json!([with(
        interaction(new_id(), "s", &clock.ago_min(5)),
        json!({"ttft_s": 0.5, "cache_hit": true, "steps": [{"name": "retrieval", "duration_s": 0.1}]})
    )]))
    .await;
    // Break the store under the running server: the packed steps cannot be decoded
    // and the step rollups (metric 4) cannot be decoded any more.
    let database = app.data_dir.path().join("data").join("ragpulse.db");
    let conn = rusqlite::Connection::open(&database).expect("cannot open the server's database");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute_batch(
        "UPDATE interaction_details SET steps = x'ff' WHERE steps IS NOT NULL;
         UPDATE rollups SET state = x'ff' WHERE metric = 4;
         UPDATE rollup_deltas SET state = x'ff' WHERE metric = 4;",
    )
    .expect("cannot break the steps");
    drop(conn);
    let (_, before, _) = app.get_text("/metrics").await;

    // Act
    let got = app.analytics("/advanced").await;

    // Assert
    assert_eq!(got["degraded"], json!(["step_breakdown"]), "{got}");
    assert_eq!(got["step_breakdown"], json!([]), "{got}");
    assert_eq!(got["cache_metrics"]["total_requests"], json!(1), "{got}");
    assert_eq!(got["ttft_percentiles"]["p50"], json!(0.5), "{got}");
    let (_, after, _) = app.get_text("/metrics").await;
    let failures = |text: &str| {
        metric_sum(
            text,
            "ragpulse_metric_failures_total",
            &["metric=\"step_breakdown\""],
        )
    };
    assert!(
        failures(&after) > failures(&before),
        "the failure is not counted in /metrics:\n{after}"
    );
}
