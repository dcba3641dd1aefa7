//! Property: every windowed metric answered from rollups equals the raw scan,
//! on a real store, for random events (late ones and a midnight seal
//! included), random windows and every assistant scope. Then: a rebuild from
//! the raw events gives the same rollups the writer kept.

use proptest::prelude::*;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ingest::ingest_values;
use crate::ingest::validate::EventLimits;
use crate::metrics::utilization::Status;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::read::{self, ReadCtx, TrendingQuery};
use crate::store::{ReadPath, StoreError, Window};
use crate::time::{MICROS_PER_DAY, MICROS_PER_SECOND, Timestamp};

const STEPS: [&str; 3] = ["retrieval", "rerank", "synthesis"];
const TOPICS: [&str; 2] = ["Billing", "Onboarding"];
/// Phrasings of recurring questions: the first two normalise alike, the
/// third is a lexical near-duplicate of them; past these, every question
/// index is a distinct question of its own (see [`question_text`]).
const QUESTIONS: [&str; 5] = [
    "How do I reset my password?",
    "how do i reset my password",
    "Reset my password please",
    "Where are the logs?",
    "refund?",
];
/// Question indexes drawn: most of them are asked by few interactions.
const QUESTION_INDEXES: usize = 40;

/// The text of question `q`: a recurring phrasing, or one of many distinct
/// questions that share words but never join one another's topic.
fn question_text(q: usize) -> String {
    QUESTIONS.get(q).map_or_else(
        || format!("error code {q} after the upgrade"),
        |t| t.to_string(),
    )
}
/// Spread of the generated timestamps: the last 4 days.
const SPAN_MINUTES: i64 = 4 * 24 * 60;

fn uuid(n: u128, kind: u128) -> Uuid {
    Uuid::from_u128((kind << 64) | (n + 1))
}

#[derive(Debug, Clone)]
enum Gen {
    Interaction {
        assistant: u128,
        session: u8,
        user: Option<u128>,
        minutes_ago: i64,
        ttft_ms: Option<u32>,
        cache_hit: bool,
        tokens: (u32, u32),
        cost_micros: u32,
        steps: u8,
        docs: u8,
        topic: Option<usize>,
        question: Option<usize>,
        rerank: Option<(u8, u8, u8)>,
    },
    Sync {
        connector: u128,
        status: usize,
        minutes_ago: i64,
        duration_s: Option<u16>,
    },
}

fn gen_event() -> impl Strategy<Value = Gen> {
    let interaction = (
        (
            0..3u128,
            0..30u8,
            prop::option::of(0..4u128),
            // A tenth of the interactions in the last three minutes: topics
            // asked equally often at the same second tie on both numeric keys.
            prop_oneof![9 => 0..SPAN_MINUTES, 1 => 0..3i64],
        ),
        (
            prop::option::of(1..5_000u32),
            any::<bool>(),
            (0..2_000u32, 0..500u32),
            0..5_000u32,
        ),
        (
            0..8u8,
            0..16u8,
            prop::option::of(0..2usize),
            prop::option::of(0..QUESTION_INDEXES),
        ),
        prop::option::of((0..100u8, 0..100u8, 0..50u8)),
    )
        .prop_map(
            |(
                (assistant, session, user, minutes_ago),
                (ttft_ms, cache_hit, tokens, cost_micros),
                (steps, docs, topic, question),
                rerank,
            )| {
                Gen::Interaction {
                    assistant,
                    session,
                    user,
                    minutes_ago,
                    ttft_ms,
                    cache_hit,
                    tokens,
                    cost_micros,
                    steps,
                    docs,
                    topic,
                    question,
                    rerank,
                }
            },
        );
    let sync = (
        0..2u128,
        0..3usize,
        0..SPAN_MINUTES,
        prop::option::of(0..600u16),
    )
        .prop_map(|(connector, status, minutes_ago, duration_s)| Gen::Sync {
            connector,
            status,
            minutes_ago,
            duration_s,
        });
    prop_oneof![9 => interaction, 1 => sync]
}

fn rfc3339(now: i64, minutes_ago: i64, salt: i64) -> String {
    // A few seconds of salt so events of one minute are not all simultaneous
    // (but some are).
    Timestamp(now - minutes_ago * 60 * MICROS_PER_SECOND - salt % 5 * MICROS_PER_SECOND)
        .to_rfc3339()
}

fn to_json(g: &Gen, now: i64, salt: i64) -> Value {
    match g {
        Gen::Interaction {
            assistant,
            session,
            user,
            minutes_ago,
            ttft_ms,
            cache_hit,
            tokens,
            cost_micros,
            steps,
            docs,
            topic,
            question,
            rerank,
        } => {
            let steps: Vec<Value> = STEPS
                .iter()
                .enumerate()
                .filter(|(i, _)| steps & (1 << i) != 0)
                .map(|(i, name)| {
                    let mut step = json!({"name": name, "duration_s": 0.1 + i as f64 * 0.25});
                    if i == 2 {
                        step["input_tokens"] = json!(tokens.0);
                    }
                    step
                })
                .collect();
            let docs: Vec<Uuid> = (0..4)
                .filter(|i| docs & (1 << i) != 0)
                .map(|i| uuid(i, 3))
                .collect();
            let mut v = json!({
                "type": "interaction",
                "id": Uuid::new_v4(),
                "timestamp": rfc3339(now, *minutes_ago, salt),
                "assistant_id": uuid(*assistant, 1),
                "session_id": format!("s{session}"),
                "user_id": user.map(|u| uuid(u, 2)),
                "cache_hit": cache_hit,
                "input_tokens": tokens.0,
                "output_tokens": tokens.1,
                "cost_usd": *cost_micros as f64 / 1e6,
                "steps": steps,
                "retrieved_document_ids": docs,
            });
            if let Some(ms) = ttft_ms {
                v["ttft_s"] = json!(*ms as f64 / 1000.0);
            }
            if let Some(t) = topic {
                v["topic"] = json!(TOPICS[*t]);
            }
            if let Some(q) = question {
                v["question"] = json!(question_text(*q));
            }
            if let Some((before, after, position)) = rerank {
                v["rerank"] = json!({
                    "score_before": *before as f64 / 100.0,
                    "score_after": *after as f64 / 100.0,
                    "position_change": *position as f64 / 10.0,
                });
            }
            v
        }
        Gen::Sync {
            connector,
            status,
            minutes_ago,
            duration_s,
        } => {
            let status = ["success", "partial", "failure"][*status];
            json!({
                "type": "connector_sync",
                "id": Uuid::new_v4(),
                "connector_id": uuid(*connector, 4),
                "status": status,
                "started_at": rfc3339(now, *minutes_ago, salt),
                "duration_s": duration_s,
            })
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// An interaction of `assistant` in session 1 with nothing optional but a TTFT.
fn plain(assistant: u128, minutes_ago: i64, ttft_ms: Option<u32>) -> Gen {
    Gen::Interaction {
        assistant,
        session: 1,
        user: None,
        minutes_ago,
        ttft_ms,
        cache_hit: false,
        tokens: (1, 1),
        cost_micros: 0,
        steps: 0,
        docs: 0,
        topic: None,
        question: None,
        rerank: None,
    }
}

fn open(dir: &std::path::Path) -> SqliteStore {
    crate::store::sqlite::open_for_test(dir)
}

async fn ingest(store: &SqliteStore, events: &[Gen], now: i64, cuts: &[usize]) {
    let values: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, g)| to_json(g, now, i as i64))
        .collect();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (values.len() + 1)).collect();
    bounds.push(values.len());
    bounds.sort_unstable();
    for end in bounds {
        if end > start {
            let batch: Vec<(usize, Value)> =
                values[start..end].iter().cloned().enumerate().collect();
            let outcome = ingest_values(store, batch, &EventLimits::default())
                .await
                .expect("ingest");
            assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
            start = end;
        }
    }
}

/// Every windowed metric of `w` through one read path, as comparable text.
fn answers(conn: &Connection, w: &Window, path: &ReadCtx) -> Result<Vec<String>, StoreError> {
    let days = ((w.to_inclusive - w.from_exclusive) / MICROS_PER_DAY).max(1);
    let trending = TrendingQuery {
        assistant: w.assistant,
        days: Some(days),
        now: w.to_inclusive,
        limit: 50,
        recent_phrasings: Some(10),
    };
    let all_time = TrendingQuery {
        days: None,
        ..trending
    };
    // A short list cuts through ties of frequency and time.
    let all_time_top = TrendingQuery {
        limit: 3,
        recent_phrasings: Some(2),
        ..all_time
    };
    Ok(vec![
        format!("{:?}", read::ttft(conn, w, path, 1)?),
        format!("{:?}", read::cache(conn, w, path, 1)?),
        format!("{:?}", read::steps(conn, w, path)?),
        format!("{:?}", read::sessions(conn, w, path)?),
        format!("{:?}", read::costs(conn, w, path)?),
        format!("{:?}", read::users(conn, w, path, 50)?),
        format!("{:?}", read::reranking(conn, w, path)?),
        format!("{:?}", read::utilization(conn, w, path, None, 50)?),
        format!(
            "{:?}",
            read::utilization(conn, w, path, Some(Status::Cold), 50)?
        ),
        format!("{:?}", read::sync(conn, w, path)?),
        format!("{:?}", read::trending(conn, &trending, path)?),
        format!(
            "{:?}",
            read::diversity(conn, w.assistant, Some(days), w.to_inclusive, path)?
        ),
        // All time: the state kept at ingest against every raw interaction.
        format!("{:?}", read::trending(conn, &all_time, path)?),
        format!("{:?}", read::trending(conn, &all_time_top, path)?),
        format!(
            "{:?}",
            read::diversity(conn, w.assistant, None, w.to_inclusive, path)?
        ),
    ])
}

type WindowGen = (i64, i64, usize);

/// Shifts of each generated window, hours earlier: one hour (the window of
/// the hour before, which shares all but its edge buckets with it) and a day
/// and an hour (across a day boundary).
const SHIFTS_HOURS: [i64; 3] = [0, 1, 25];

/// A merge cache so small that most of its entries are evicted between and
/// within reads.
const TINY_BUDGET: usize = 4 << 10;

/// Asserts that every window, and its shifts, gives the same answers from
/// rollups (with the store's merge cache and with a tiny one) and from the scan.
async fn compare(store: &SqliteStore, now: i64, windows: &[WindowGen]) {
    let tiny = std::sync::Arc::new(
        crate::store::sqlite::rollup::cache::MergeCache::with_budget(TINY_BUDGET),
    );
    for &(from_min, len_min, scope) in windows {
        for shift in SHIFTS_HOURS {
            let shift = shift * 60 * 60 * MICROS_PER_SECOND;
            compare_one(store, now, (from_min, len_min, scope), shift, tiny.clone()).await;
        }
    }
    let (bytes, _) = tiny.usage();
    assert!(bytes <= TINY_BUDGET, "tiny cache holds {bytes} bytes");
}

async fn compare_one(
    store: &SqliteStore,
    now: i64,
    (from_min, len_min, scope): WindowGen,
    shift: i64,
    tiny: std::sync::Arc<crate::store::sqlite::rollup::cache::MergeCache>,
) {
    let assistant = (scope < 3).then(|| uuid(scope as u128, 1));
    let from_exclusive = now - from_min * 60 * MICROS_PER_SECOND - 7 - shift;
    let to_inclusive = (from_exclusive + len_min * 60 * MICROS_PER_SECOND).min(now);
    let w = Window {
        from_exclusive,
        to_inclusive,
        assistant,
    };
    let fast_ctx = ReadCtx {
        path: ReadPath::Rollups,
        cache: store.merge_cache(),
    };
    let tiny_ctx = ReadCtx {
        path: ReadPath::Rollups,
        cache: tiny,
    };
    let (fast, slow) = store
        .read(move |conn| {
            // Twice from rollups: the second answer comes from the merge cache.
            let first = answers(conn, &w, &fast_ctx)?;
            let again = answers(conn, &w, &fast_ctx)?;
            assert_eq!(first, again, "cached merge differs, window {w:?}");
            let evicted = answers(conn, &w, &tiny_ctx)?;
            assert_eq!(first, evicted, "tiny merge cache differs, window {w:?}");
            Ok((first, answers(conn, &w, &ReadCtx::scan())?))
        })
        .await
        .expect("read");
    for (a, b) in fast.iter().zip(&slow) {
        assert_eq!(a, b, "window {w:?}");
    }
    if shift == 0 {
        let (got, want) = store
            .read(move |conn| last_retrievals(conn, &w))
            .await
            .expect("read");
        assert_eq!(got, want, "last retrievals, window {w:?}");
    }
}

/// Per document key, in key order.
type LastRetrievals = Vec<Option<i64>>;

/// Every document's last retrieval up to the window's end in its scope: from
/// the directory (the writer's table, searching back when needed) and from its
/// definition over the raw retrievals.
fn last_retrievals(
    conn: &Connection,
    w: &Window,
) -> Result<(LastRetrievals, LastRetrievals), StoreError> {
    use crate::metrics::DocumentDirectory;
    let keys: Vec<i64> = conn
        .prepare("SELECT key FROM documents ORDER BY key")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let got = read::Directory::new(conn, w).last_retrieved(&keys)?;
    let assistant: Option<i64> = match w.assistant {
        None => None,
        Some(id) => conn
            .query_row(
                "SELECT key FROM assistants WHERE id = ?1",
                [id.as_bytes()],
                |r| r.get(0),
            )
            .optional()?
            .or(Some(-1)),
    };
    // The definition: the latest interaction up to the window's end that
    // retrieved the document, over every stored interaction.
    let mut latest: std::collections::HashMap<i64, i64> = Default::default();
    let mut stmt = conn.prepare(
        "SELECT ts, documents FROM interaction_details WHERE ts <= ?1 AND (?2 IS NULL OR assistant = ?2)",
    )?;
    let mut rows = stmt.query(rusqlite::params![w.to_inclusive, assistant])?;
    while let Some(r) = rows.next()? {
        let ts: i64 = r.get(0)?;
        for doc in crate::store::sqlite::details::column::<i64>(r, 1)? {
            let slot = latest.entry(doc).or_insert(ts);
            *slot = (*slot).max(ts);
        }
    }
    let want = keys.iter().map(|doc| latest.get(doc).copied()).collect();
    Ok((got, want))
}

fn check(events: Vec<Gen>, late: Vec<Gen>, cuts: Vec<usize>, seal: bool, windows: Vec<WindowGen>) {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now().0;
    runtime.block_on(async {
        let store = open(dir.path());
        ingest(&store, &events, now, &cuts).await;
        // Answers now fill the merge cache; the late events and the seal below
        // must invalidate what they change.
        compare(&store, now, &windows).await;
        if seal {
            // Midnight passes: today's hours become a sealed day, and the late
            // events that follow update hour and day rows together.
            store
                .seal_rollups(now.div_euclid(MICROS_PER_DAY) + 1)
                .await
                .expect("seal");
        }
        ingest(&store, &late, now, &cuts).await;
        compare(&store, now, &windows).await;
        store.close().await;
        drop(store);
        // A rebuild from the raw events gives rollups that answer the same.
        super::super::rebuild_rollups(dir.path(), &mut |_, _| {}).expect("rebuild");
        let store = open(dir.path());
        compare(&store, now, &windows).await;
        store.close().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn rollups_answer_exactly_what_the_raw_scan_answers(
        events in prop::collection::vec(gen_event(), 1..60),
        late in prop::collection::vec(gen_event(), 0..20),
        cuts in prop::collection::vec(0usize..80, 0..4),
        seal in any::<bool>(),
        windows in prop::collection::vec((0..SPAN_MINUTES + 120, 1..SPAN_MINUTES + 200, 0..4usize), 1..6),
    ) {
        check(events, late, cuts, seal, windows);
    }
}

/// A session that spans two hours of one sealed day is settled in that day's
/// row; a later interaction in another day must undo that.
#[test]
fn a_day_settled_session_that_continues_the_next_day_counts_once() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now().0;
    let today = now.div_euclid(MICROS_PER_DAY);
    let minutes_before = |ts: i64| (now - ts) / (60 * MICROS_PER_SECOND);
    let yesterday_at = |hour: i64| (today - 1) * MICROS_PER_DAY + hour * 3_600 * MICROS_PER_SECOND;
    let at = |minutes_ago: i64| plain(0, minutes_ago, None);
    let earlier = [
        at(minutes_before(yesterday_at(10))),
        at(minutes_before(yesterday_at(11))),
    ];
    runtime.block_on(async {
        let store = open(dir.path());
        ingest(&store, &earlier, now, &[1]).await;
        // Yesterday is sealed again without being written to: the session is
        // settled in its day row.
        store.seal_rollups(today).await.expect("seal");
        ingest(&store, &[at(1)], now, &[]).await;
        let window = (minutes_before(yesterday_at(0)) + 1, 2 * 24 * 60, 3);
        compare(&store, now, &[window]).await;
        store.close().await;
    });
}

/// The partial hour at a window's end is read from its hour rows exactly when
/// nothing of the window's scope lies in that hour outside the window.
#[test]
fn a_partial_hour_is_read_from_its_rows_only_when_nothing_else_is_in_it() {
    use crate::store::sqlite::rollup::{Metric, hour_holds_only};
    use crate::time::MICROS_PER_HOUR;

    let runtime = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now().0;
    let second = MICROS_PER_SECOND;
    if (now - second).div_euclid(MICROS_PER_HOUR) != now.div_euclid(MICROS_PER_HOUR) {
        return; // The hour began within the last second: the two events would straddle it.
    }
    let at = |assistant: u128| plain(assistant, 0, Some(100));
    runtime.block_on(async {
        let store = open(dir.path());
        // Salted by position: assistant 1 at `now`, assistant 0 a second before.
        ingest(&store, &[at(1), at(0)], now, &[]).await;
        let hour = now.div_euclid(MICROS_PER_HOUR);
        let before = hour * MICROS_PER_HOUR - 1;
        let earlier = now - second;
        let answers = store
            .read(move |conn| {
                let key: i64 = conn.query_row(
                    "SELECT key FROM assistants WHERE id = ?1",
                    [uuid(0, 1).as_bytes()],
                    |r| r.get(0),
                )?;
                let holds = |metric, scope, from, to| {
                    hour_holds_only(conn, metric, scope, hour, from, to).map_err(StoreError::from)
                };
                Ok([
                    holds(Metric::Ttft, None, before, earlier)?,
                    holds(Metric::Ttft, Some(key), before, earlier)?,
                    holds(Metric::Ttft, None, before, now)?,
                    holds(Metric::Ttft, None, earlier, now)?,
                    holds(Metric::Ttft, Some(key), earlier - 1, now)?,
                    holds(Metric::Sync, Some(0), before, earlier)?,
                ])
            })
            .await
            .expect("read");
        // All scope up to `earlier`: assistant 1's event at `now` lies outside.
        // Assistant 0 alone has nothing after `earlier`. The whole hour so far
        // holds everything. From `earlier` (exclusive) on, assistant 0's event
        // lies outside; one microsecond earlier it is inside. No syncs at all.
        assert_eq!(answers, [false, true, true, false, true, true]);
        store.close().await;
    });
}

/// Two phrasings of one topic asked once each at the same instant, in two
/// transactions: the canonical phrasing kept at ingest is the one stored
/// first (the smaller key), as the raw definition says, and stays so until
/// the other is asked more often.
#[test]
fn a_canonical_tie_goes_to_the_smaller_phrasing_key_across_transactions() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now().0;
    let asked = |q: usize| {
        let mut event = plain(0, 10, None);
        if let Gen::Interaction { question, .. } = &mut event {
            *question = Some(q);
        }
        event
    };
    // Events 0 and 5 share their second of salt: the same timestamp.
    let mut events = vec![asked(0)];
    events.extend((1..5).map(|m| plain(0, 100 + m, None)));
    events.push(asked(1));
    let window = (60, 120, 3);
    runtime.block_on(async {
        let store = open(dir.path());
        ingest(&store, &events, now, &[5]).await;
        compare(&store, now, &[window]).await;
        ingest(&store, &[asked(1)], now, &[]).await;
        compare(&store, now, &[window]).await;
        store.close().await;
    });
}

/// Every rollup state of `metric`, hour rows merged with their deltas, by
/// (level, bucket, assistant).
fn states<T: super::write::RollupState>(
    conn: &Connection,
    metric: super::Metric,
) -> std::collections::HashMap<(i64, i64, i64), T> {
    let mut out: std::collections::HashMap<(i64, i64, i64), T> = Default::default();
    let mut merge = |key: (i64, i64, i64), bytes: &[u8]| {
        let state: T = super::decode(bytes).expect("decode");
        match out.get_mut(&key) {
            Some(mine) => mine.merge_from(state),
            None => {
                out.insert(key, state);
            }
        }
    };
    let mut stmt = conn
        .prepare("SELECT level, bucket, assistant, state FROM rollups WHERE metric = ?1")
        .expect("prepare");
    let mut rows = stmt.query([metric as i64]).expect("query");
    while let Some(r) = rows.next().expect("row") {
        let key = (
            r.get(0).expect("level"),
            r.get(1).expect("bucket"),
            r.get(2).expect("assistant"),
        );
        merge(key, r.get_ref(3).expect("state").as_blob().expect("blob"));
    }
    let mut stmt = conn
        .prepare("SELECT bucket, assistant, state FROM rollup_deltas WHERE metric = ?1")
        .expect("prepare");
    let mut rows = stmt.query([metric as i64]).expect("query");
    while let Some(r) = rows.next().expect("row") {
        let key = (0, r.get(0).expect("bucket"), r.get(1).expect("assistant"));
        merge(key, r.get_ref(2).expect("state").as_blob().expect("blob"));
    }
    out
}

/// The states of `metric` in two stores are equal: every hour, and every day
/// that has a day row in both (which days are sealed differs by when it ran).
fn same_states<T: super::write::RollupState + PartialEq + std::fmt::Debug>(
    corrected: &Connection,
    rebuilt: &Connection,
    metric: super::Metric,
    normalise: impl Fn(&mut T),
) {
    let mut a = states::<T>(corrected, metric);
    let mut b = states::<T>(rebuilt, metric);
    a.values_mut().for_each(&normalise);
    b.values_mut().for_each(&normalise);
    let day = super::Level::Day as i64;
    let days_in_both: Vec<(i64, i64, i64)> = a
        .keys()
        .filter(|k| k.0 == day && b.contains_key(k))
        .copied()
        .collect();
    for key in days_in_both {
        assert_eq!(a.remove(&key), b.remove(&key), "{metric:?} day {key:?}");
    }
    a.retain(|k, _| k.0 != day);
    b.retain(|k, _| k.0 != day);
    let mut keys: Vec<_> = a.keys().chain(b.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        assert_eq!(a.get(&key), b.get(&key), "{metric:?} hour {key:?}");
    }
}

/// Session spans and every metric's rollups, compared between two stores.
fn same_rollups(corrected: &Connection, rebuilt: &Connection) {
    use super::Metric;
    use crate::metrics::{
        cache::CacheState, costs::CostsState, reranking::RerankingState, sessions::SessionsState,
        steps::StepsState, sync::SyncState, trending::TrendingState, ttft::TtftState,
        users::UsersState, utilization::UtilizationState,
    };
    same_states::<TtftState>(corrected, rebuilt, Metric::Ttft, TtftState::sort);
    same_states::<CacheState>(corrected, rebuilt, Metric::Cache, |_| {});
    same_states::<CostsState>(corrected, rebuilt, Metric::Costs, |_| {});
    same_states::<RerankingState>(corrected, rebuilt, Metric::Reranking, |_| {});
    same_states::<StepsState>(corrected, rebuilt, Metric::Steps, |_| {});
    same_states::<SessionsState>(corrected, rebuilt, Metric::Sessions, |_| {});
    same_states::<UsersState>(corrected, rebuilt, Metric::Users, |_| {});
    same_states::<UtilizationState>(corrected, rebuilt, Metric::Utilization, |_| {});
    same_states::<TrendingState>(corrected, rebuilt, Metric::Trending, |_| {});
    same_states::<SyncState>(corrected, rebuilt, Metric::Sync, |_| {});
    let spans = |conn: &Connection| -> Vec<(i64, i64, i64, Option<i64>, i64)> {
        let mut stmt = conn
            .prepare("SELECT session, first_ts, last_ts, assistant, interactions FROM session_spans ORDER BY session")
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .expect("query");
        rows.collect::<Result<_, _>>().expect("spans")
    };
    assert_eq!(spans(corrected), spans(rebuilt), "session spans");
}

fn copy_database(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    let source = Connection::open(from.join(crate::store::sqlite::DATABASE_FILE)).expect("open");
    source
        .execute(
            "VACUUM INTO ?1",
            [to.join(crate::store::sqlite::DATABASE_FILE)
                .to_string_lossy()],
        )
        .expect("copy");
}

/// An erasure takes the user's rows out of the rollups bucket by bucket;
/// the rollups it leaves equal a rebuild from the rows that remain.
fn check_erasure(events: Vec<Gen>, late: Vec<Gen>, cuts: Vec<usize>, seal: bool, erased: u128) {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Timestamp::now().0;
    runtime.block_on(async {
        let store = open(dir.path());
        ingest(&store, &events, now, &cuts).await;
        if seal {
            store
                .seal_rollups(now.div_euclid(MICROS_PER_DAY) + 1)
                .await
                .expect("seal");
        }
        ingest(&store, &late, now, &cuts).await;
        store
            .erase_user(uuid(erased, 2).to_string())
            .await
            .expect("erase");
        store.close().await;
    });
    let rebuilt = dir.path().join("rebuilt");
    copy_database(dir.path(), &rebuilt);
    super::super::rebuild_rollups(&rebuilt, &mut |_, _| {}).expect("rebuild");
    let db = |d: &std::path::Path| {
        Connection::open(d.join(crate::store::sqlite::DATABASE_FILE)).expect("open")
    };
    same_rollups(&db(dir.path()), &db(&rebuilt));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn an_erasure_leaves_the_rollups_a_rebuild_computes(
        events in prop::collection::vec(gen_event(), 1..80),
        late in prop::collection::vec(gen_event(), 0..20),
        cuts in prop::collection::vec(0usize..100, 0..4),
        seal in any::<bool>(),
        erased in 0..4u128,
    ) {
        check_erasure(events, late, cuts, seal, erased);
    }
}
