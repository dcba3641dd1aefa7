//! Reading a metric: the window's state is folded from the rollups of the
//! whole buckets inside it and the raw rows of the rest (all raw rows on the
//! scan path, the reference), then finished with registry data looked up
//! through [`Directory`]. Raw scans read only the columns a metric needs.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::metrics::cache::CacheState;
use crate::metrics::costs::CostsState;
use crate::metrics::diversity::diversity as diversity_of;
use crate::metrics::freshness::FreshnessState;
use crate::metrics::models::*;
use crate::metrics::reranking::RerankingState;
use crate::metrics::sessions::SessionsState;
use crate::metrics::steps::{StepSample, StepsState};
use crate::metrics::sync::{SyncState, SyncStatus};
use crate::metrics::trending::TrendingState;
use crate::metrics::ttft::TtftState;
use crate::metrics::users::UsersState;
use crate::metrics::utilization::{Status, UtilizationState};
use crate::metrics::*;
use crate::store::sqlite::details::{self, PackedStep};
use crate::store::sqlite::rollup::cache::MergeCache;
use crate::store::sqlite::rollup::plan::{self, Plan};
use crate::store::sqlite::rollup::write::RollupState;
use crate::store::sqlite::rollup::{self, Level, Metric, NO_ASSISTANT};
use crate::store::{ReadPath, StoreError, Window};
use crate::time::{MICROS_PER_DAY, Timestamp};

type Result<T> = std::result::Result<T, StoreError>;

/// The assistant scope of a window as a surrogate key. `Err(())` means the
/// assistant was never seen, so the window holds nothing.
enum Scope {
    All,
    Assistant(i64),
    Unknown,
}

fn scope(conn: &Connection, assistant: Option<Uuid>) -> Result<Scope> {
    let Some(id) = assistant else {
        return Ok(Scope::All);
    };
    let key: Option<i64> = conn
        .prepare_cached("SELECT key FROM assistants WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| r.get(0))
        .optional()?;
    Ok(key.map_or(Scope::Unknown, Scope::Assistant))
}

/// Runs `sql` (which must end in a `WHERE` clause) for the window, adding the
/// time and assistant filters, and feeds each row to `row`.
fn scan(
    conn: &Connection,
    w: &Window,
    sql: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
) -> Result<()> {
    scan_ordered(conn, w, sql, "", row)
}

/// As [`scan`], with an `ORDER BY` (or other) suffix after the filters.
fn scan_ordered(
    conn: &Connection,
    w: &Window,
    sql: &str,
    suffix: &str,
    mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
) -> Result<()> {
    let assistant = match scope(conn, w.assistant)? {
        Scope::All => None,
        Scope::Assistant(key) => Some(key),
        Scope::Unknown => return Ok(()),
    };
    let (sql, values) = match assistant {
        Some(key) => (
            format!("{sql} AND ts > ?1 AND ts <= ?2 AND assistant = ?3 {suffix}"),
            vec![w.from_exclusive, w.to_inclusive, key],
        ),
        None => (
            format!("{sql} AND ts > ?1 AND ts <= ?2 {suffix}"),
            vec![w.from_exclusive, w.to_inclusive],
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(r) = rows.next()? {
        row(r)?;
    }
    Ok(())
}

/// How windows are read, and where merged past buckets are kept.
#[derive(Clone)]
pub struct ReadCtx {
    pub path: ReadPath,
    pub cache: Arc<MergeCache>,
}

impl ReadCtx {
    /// Every row of every window: the reference path.
    pub fn scan() -> Self {
        Self {
            path: ReadPath::Scan,
            cache: Arc::new(MergeCache::new()),
        }
    }
}

/// Folds window `w` into `state`: the raw ranges of its plan through `raw`,
/// the whole buckets from the rollups of `metric`. With the scan path, or a
/// store without rollups, all of it is raw.
fn fold_window<T: RollupState + Send + Sync + 'static>(
    conn: &Connection,
    w: &Window,
    path: &ReadCtx,
    metric: Metric,
    state: &mut T,
    raw: impl FnMut(&mut T, &Window) -> Result<()>,
) -> Result<()> {
    if let Some(whole) = fold_window_parts(conn, w, path, metric, state, raw, |_| {})? {
        state.merge_onto(&whole);
    }
    Ok(())
}

/// As [`fold_window`], but hands back the merge of the whole buckets
/// (shared with the merge cache, after `settle`) instead of merging it into
/// `state`, which then holds the raw and partial parts only.
fn fold_window_parts<T: RollupState + Send + Sync + 'static>(
    conn: &Connection,
    w: &Window,
    path: &ReadCtx,
    metric: Metric,
    state: &mut T,
    mut raw: impl FnMut(&mut T, &Window) -> Result<()>,
    settle: impl Fn(&mut T),
) -> Result<Option<Arc<T>>> {
    let assistant = match metric {
        Metric::Sync => Some(NO_ASSISTANT),
        _ => match scope(conn, w.assistant)? {
            Scope::All => None,
            Scope::Assistant(key) => Some(key),
            Scope::Unknown => return Ok(None),
        },
    };
    let rollups = path.path == ReadPath::Rollups && rollup::is_built(conn)?;
    let plan = if rollups {
        Plan::new(
            w.from_exclusive,
            w.to_inclusive,
            rollup::sealed_day(conn)?,
            &rollup::dirty_days(conn)?,
        )
    } else {
        Plan::scan(w.from_exclusive, w.to_inclusive)
    };
    for &(from_exclusive, to_inclusive) in &plan.raw {
        if !rollups {
            let part = Window {
                from_exclusive,
                to_inclusive,
                assistant: w.assistant,
            };
            raw(state, &part)?;
            continue;
        }
        for (hour, (from_exclusive, to_inclusive)) in plan::by_hour(from_exclusive, to_inclusive) {
            if rollup::hour_holds_only(conn, metric, assistant, hour, from_exclusive, to_inclusive)?
            {
                // Not cached: a partial hour is usually the current one, which every commit changes.
                rollup::fold(
                    conn,
                    metric,
                    Level::Hour,
                    hour..hour + 1,
                    assistant,
                    |other: T| state.merge_from(other),
                )?;
            } else {
                let part = Window {
                    from_exclusive,
                    to_inclusive,
                    assistant: w.assistant,
                };
                raw(state, &part)?;
            }
        }
    }
    if plan.days.is_empty() && plan.hours.is_empty() {
        return Ok(None);
    }
    let version = rollup::past_version(conn)?;
    let read = |level: Level, buckets: std::ops::Range<i64>, sink: &mut dyn FnMut(i64, T)| {
        rollup::visit(
            conn,
            metric,
            level,
            buckets,
            assistant,
            |bucket, _, bytes| {
                sink(bucket, rollup::decode(bytes)?);
                Ok(())
            },
        )
        .map_err(StoreError::from)
    };
    let whole = path
        .cache
        .get_or_merge(metric, assistant, &plan, version, read, settle)?;
    Ok(Some(whole))
}

pub fn ttft(
    conn: &Connection,
    w: &Window,
    path: &ReadCtx,
    hours: i64,
) -> Result<Option<TtftPercentiles>> {
    // The whole buckets' values stay in the merge cache, sorted: percentiles
    // are found in them by binary search, never copied.
    let mut partial = TtftState::new();
    let whole = fold_window_parts(
        conn,
        w,
        path,
        Metric::Ttft,
        &mut partial,
        |state, part| {
            scan(
                conn,
                part,
                "SELECT ttft_us FROM interactions WHERE ttft_us IS NOT NULL",
                |r| {
                    state.add(r.get(0)?);
                    Ok(())
                },
            )
        },
        TtftState::sort,
    )?;
    Ok(TtftState::finish_parts(whole.as_deref(), partial, hours))
}

pub fn cache(
    conn: &Connection,
    w: &Window,
    path: &ReadCtx,
    hours: i64,
) -> Result<Option<CacheMetrics>> {
    let mut state = CacheState::new();
    fold_window(conn, w, path, Metric::Cache, &mut state, |state, part| {
        scan(
            conn,
            part,
            "SELECT cache_hit FROM interactions WHERE 1",
            |r| {
                state.add(r.get(0)?);
                Ok(())
            },
        )
    })?;
    Ok(state.finish(hours))
}

pub fn steps(conn: &Connection, w: &Window, path: &ReadCtx) -> Result<Vec<StepBreakdown>> {
    let names = step_names(conn)?;
    let mut state = StepsState::new();
    fold_window(conn, w, path, Metric::Steps, &mut state, |state, part| {
        scan_steps(conn, part, &names, state)
    })?;
    Ok(state.finish())
}

/// Folds the packed steps of `w`, one interaction at a time.
fn scan_steps(
    conn: &Connection,
    w: &Window,
    names: &HashMap<i64, String>,
    state: &mut StepsState,
) -> Result<()> {
    let mut samples: Vec<StepSample<'_>> = Vec::new();
    scan(
        conn,
        w,
        "SELECT steps FROM interaction_details WHERE steps IS NOT NULL",
        |r| {
            let blob = details::blob(r, 0)?;
            samples.clear();
            details::decode(blob, |step: PackedStep| {
                samples.push(StepSample {
                    name: names.get(&step.name).map_or("", String::as_str),
                    duration_us: step.duration_us,
                    first_index: step.first_index,
                    tokens: step.tokens,
                });
            })?;
            state.add_interaction(&samples);
            Ok(())
        },
    )
}

fn step_names(conn: &Connection) -> Result<HashMap<i64, String>> {
    let mut stmt = conn.prepare_cached("SELECT key, name FROM step_names")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn sessions(conn: &Connection, w: &Window, path: &ReadCtx) -> Result<Vec<SessionDistribution>> {
    let mut state = SessionsState::new();
    fold_window(
        conn,
        w,
        path,
        Metric::Sessions,
        &mut state,
        |state, part| {
            scan(
                conn,
                part,
                "SELECT session FROM interactions WHERE 1",
                |r| {
                    state.add(r.get(0)?);
                    Ok(())
                },
            )
        },
    )?;
    Ok(state.finish())
}

pub fn costs(conn: &Connection, w: &Window, path: &ReadCtx) -> Result<Vec<AssistantCost>> {
    let mut state = CostsState::new();
    fold_window(conn, w, path, Metric::Costs, &mut state, |state, part| {
        scan(
            conn,
            part,
            "SELECT assistant, input_tokens, output_tokens, cost_nusd FROM interactions WHERE 1",
            |r| {
                state.add(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                Ok(())
            },
        )
    })?;
    state.finish(&Directory::new(conn, w))
}

pub fn users(conn: &Connection, w: &Window, path: &ReadCtx, limit: usize) -> Result<Vec<UserStat>> {
    let mut state = UsersState::new();
    fold_window(conn, w, path, Metric::Users, &mut state, |state, part| {
        scan(
            conn,
            part,
            "SELECT user, input_tokens, output_tokens, ts FROM interactions WHERE user IS NOT NULL",
            |r| {
                state.add(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                Ok(())
            },
        )
    })?;
    state.finish(limit, &Directory::new(conn, w))
}

pub fn reranking(conn: &Connection, w: &Window, path: &ReadCtx) -> Result<Option<RerankingImpact>> {
    let mut state = RerankingState::new();
    fold_window(
        conn,
        w,
        path,
        Metric::Reranking,
        &mut state,
        |state, part| {
            scan(
                conn,
                part,
                "SELECT rerank_improvement_n, rerank_position_n FROM interactions
             WHERE rerank_improvement_n IS NOT NULL",
                |r| {
                    state.add(r.get(0)?, r.get(1)?);
                    Ok(())
                },
            )
        },
    )?;
    Ok(state.finish())
}

pub fn utilization(
    conn: &Connection,
    w: &Window,
    path: &ReadCtx,
    status: Option<Status>,
    limit: usize,
) -> Result<Vec<DocumentUtilization>> {
    retrievals(conn, w, path)?.finish(status, limit, &Directory::new(conn, w))
}

/// Retrievals per document in the window.
fn retrievals(conn: &Connection, w: &Window, path: &ReadCtx) -> Result<UtilizationState> {
    let mut state = UtilizationState::new();
    fold_window(
        conn,
        w,
        path,
        Metric::Utilization,
        &mut state,
        |state, part| {
            // Ingest keeps an interaction's documents distinct: each pair comes once.
            scan(
                conn,
                part,
                "SELECT documents FROM interaction_details WHERE documents IS NOT NULL",
                |r| details::decode(details::blob(r, 0)?, |d| state.add_retrieval(d)),
            )
        },
    )?;
    Ok(state)
}

/// How many current documents no interaction of the window retrieved.
pub fn cold_documents(conn: &Connection, w: &Window, path: &ReadCtx) -> Result<u64> {
    let state = retrievals(conn, w, path)?;
    let mut stmt =
        conn.prepare_cached("SELECT key FROM documents WHERE registered = 1 AND deleted = 0")?;
    let live = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(state.count_cold(&live))
}

/// The columns a topic read folds, per interaction.
const TOPIC_ROWS: &str = "SELECT topic, phrasing, ts FROM interactions WHERE topic IS NOT NULL";

/// Topic totals of a window, or of all time, folded from the raw
/// interactions (the window's whole buckets from rollups on the rollups path).
/// All-time answers on the rollups path come from [`all_time`] instead.
fn topic_state(
    conn: &Connection,
    assistant: Option<Uuid>,
    window: Option<Window>,
    path: &ReadCtx,
) -> Result<TrendingState> {
    const ROWS: &str = TOPIC_ROWS;
    let mut state = TrendingState::new();
    let fold_row = |state: &mut TrendingState, r: &rusqlite::Row<'_>| {
        let ts: i64 = r.get(2)?;
        state.add(r.get(0)?, r.get(1)?, 1, ts, ts);
        Ok(())
    };
    let Some(w) = window else {
        let sql = match scope(conn, assistant)? {
            Scope::All => ROWS.to_string(),
            Scope::Assistant(key) => format!("{ROWS} AND assistant = {key}"),
            Scope::Unknown => return Ok(state),
        };
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            fold_row(&mut state, r)?;
        }
        return Ok(state);
    };
    fold_window(
        conn,
        &w,
        path,
        Metric::Trending,
        &mut state,
        |state, part| scan(conn, part, ROWS, |r| fold_row(state, r)),
    )?;
    Ok(state)
}

/// Windowed trending and diversity on the rollups path: the window's whole
/// buckets merged once into sorted arrays (kept by the merge cache) and its
/// partial hours, joined in one linear pass per request.
mod windowed {
    use super::*;
    use crate::metrics::trending::rank_topics;
    use crate::metrics::trending::window::{WindowParts, WindowTopics};

    /// The whole buckets and the partial hours of `w`.
    fn parts(
        conn: &Connection,
        path: &ReadCtx,
        w: &Window,
    ) -> Result<(Option<Arc<WindowTopics>>, WindowTopics)> {
        let mut partial = WindowTopics::default();
        let whole = fold_window_parts(
            conn,
            w,
            path,
            Metric::Trending,
            &mut partial,
            |state, part| {
                scan(conn, part, TOPIC_ROWS, |r| {
                    let ts: i64 = r.get(2)?;
                    state.add(r.get(0)?, r.get(1)?, 1, ts, ts);
                    Ok(())
                })
            },
            WindowTopics::settle,
        )?;
        partial.settle();
        Ok((whole, partial))
    }

    pub(super) fn trending(
        conn: &Connection,
        path: &ReadCtx,
        w: &Window,
        previous: &Window,
        limit: usize,
        recent: Option<usize>,
    ) -> Result<Vec<TrendingTopic>> {
        let (whole, partial) = parts(conn, path, w)?;
        let window = WindowParts {
            whole: whole.as_deref(),
            partial: &partial,
        };
        let contenders = window.contenders(limit);
        let (prev_whole, prev_partial) = parts(conn, path, previous)?;
        let before = WindowParts {
            whole: prev_whole.as_deref(),
            partial: &prev_partial,
        }
        .frequencies_of(contenders.iter().map(|t| t.key));
        let dir = Directory::new(conn, &Window::all_time(w.to_inclusive, w.assistant));
        let recent = recent.map(|n| {
            let window = &window;
            move |topic: i64| Ok(window.recent_phrasings(topic, n))
        });
        rank_topics(contenders, limit, &dir, Some(&before), recent)
    }

    pub(super) fn diversity(
        conn: &Connection,
        path: &ReadCtx,
        w: &Window,
    ) -> Result<Option<TopicDiversity>> {
        let (whole, partial) = parts(conn, path, w)?;
        Ok(WindowParts {
            whole: whole.as_deref(),
            partial: &partial,
        }
        .totals()
        .finish())
    }
}

/// All-time trending and diversity from what the writer keeps up to date
/// (see the `topics_by_rank` index and `topic_totals`): a request reads the
/// topics it can list and one row per assistant, however many topics and
/// phrasings the store holds.
mod all_time {
    use super::*;
    use crate::metrics::diversity::Totals;
    use crate::metrics::trending::{TopicSummary, rank_topics};

    const COLUMNS: &str = "SELECT key, frequency, last_ts, canonical, variations FROM topics";

    /// The assistants of a scope that have asked topics.
    fn assistants(conn: &Connection, assistant: Option<Uuid>) -> Result<Vec<i64>> {
        match scope(conn, assistant)? {
            Scope::All => {
                let mut stmt =
                    conn.prepare_cached("SELECT assistant FROM topic_totals WHERE topics > 0")?;
                let keys = stmt.query_map([], |r| r.get(0))?;
                Ok(keys.collect::<rusqlite::Result<_>>()?)
            }
            Scope::Assistant(key) => Ok(vec![key]),
            Scope::Unknown => Ok(Vec::new()),
        }
    }

    fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<TopicSummary> {
        Ok(TopicSummary {
            key: r.get(0)?,
            frequency: r.get::<_, i64>(1)?.max(0) as u64,
            last_ts: r.get(2)?,
            canonical: r.get(3)?,
            variations: r.get::<_, i64>(4)?.max(0) as u64,
        })
    }

    /// An assistant's contenders for the top `limit`: its first `limit`
    /// topics by (frequency, last asked), and every topic tied with the last.
    fn contenders(
        conn: &Connection,
        assistant: i64,
        limit: usize,
        out: &mut Vec<TopicSummary>,
    ) -> Result<()> {
        let mut stmt = conn.prepare_cached(&format!(
            "{COLUMNS} WHERE assistant = ?1 AND frequency > 0
             ORDER BY frequency DESC, last_ts DESC LIMIT ?2"
        ))?;
        let top: Vec<TopicSummary> = stmt
            .query_map(params![assistant, limit as i64], summary)?
            .collect::<rusqlite::Result<_>>()?;
        let cutoff = match top.last() {
            Some(last) if top.len() == limit => (last.frequency, last.last_ts),
            _ => {
                out.extend(top);
                return Ok(());
            }
        };
        out.extend(
            top.into_iter()
                .filter(|t| (t.frequency, t.last_ts) != cutoff),
        );
        let mut stmt = conn.prepare_cached(&format!(
            "{COLUMNS} WHERE assistant = ?1 AND frequency > 0 AND frequency = ?2 AND last_ts = ?3"
        ))?;
        let ties = stmt.query_map(params![assistant, cutoff.0 as i64, cutoff.1], summary)?;
        for t in ties {
            out.push(t?);
        }
        Ok(())
    }

    pub(super) fn trending(
        conn: &Connection,
        assistant: Option<Uuid>,
        now: i64,
        limit: usize,
        recent: Option<usize>,
    ) -> Result<Vec<TrendingTopic>> {
        let mut topics = Vec::new();
        if limit > 0 {
            for key in assistants(conn, assistant)? {
                contenders(conn, key, limit, &mut topics)?;
            }
        }
        let dir = Directory::new(conn, &Window::all_time(now, assistant));
        let recent = recent.map(|n| move |topic: i64| recent_phrasings(conn, topic, n));
        rank_topics(topics, limit, &dir, None, recent)
    }

    /// A topic's `n` latest asked phrasings, latest first (ties: the later stored).
    fn recent_phrasings(conn: &Connection, topic: i64, n: usize) -> Result<Vec<i64>> {
        let mut stmt = conn.prepare_cached(
            "SELECT key FROM phrasings WHERE topic = ?1 AND count > 0
             ORDER BY last_ts DESC, key DESC LIMIT ?2",
        )?;
        let keys = stmt.query_map(params![topic, n as i64], |r| r.get(0))?;
        Ok(keys.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn diversity(
        conn: &Connection,
        assistant: Option<Uuid>,
    ) -> Result<Option<TopicDiversity>> {
        let mut all = Totals::default();
        let mut totals = conn.prepare_cached(
            "SELECT topics, total, squares FROM topic_totals WHERE assistant = ?1",
        )?;
        let mut largest = conn.prepare_cached(
            "SELECT frequency FROM topics WHERE assistant = ?1 AND frequency > 0
             ORDER BY frequency DESC, last_ts DESC LIMIT 1",
        )?;
        for key in assistants(conn, assistant)? {
            let Some((topics, total, squares)) = totals
                .query_row([key], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()?
            else {
                continue;
            };
            let max: i64 = largest
                .query_row([key], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            all.merge(Totals {
                topics: topics.max(0) as u64,
                total: total.max(0) as u128,
                squares: squares.max(0) as u128,
                max: max.max(0) as u64,
            });
        }
        Ok(all.finish())
    }
}

fn days_window(now: i64, days: i64, assistant: Option<Uuid>) -> Window {
    Window::last(now, days * MICROS_PER_DAY, assistant)
}

/// The query of a trending listing.
#[derive(Debug, Clone, Copy)]
pub struct TrendingQuery {
    pub assistant: Option<Uuid>,
    pub days: Option<i64>,
    pub now: i64,
    pub limit: usize,
    pub recent_phrasings: Option<usize>,
}

pub fn trending(
    conn: &Connection,
    q: &TrendingQuery,
    path: &ReadCtx,
) -> Result<Vec<TrendingTopic>> {
    let TrendingQuery {
        assistant,
        days,
        now,
        limit,
        recent_phrasings,
    } = *q;
    let window = days.map(|d| days_window(now, d, assistant));
    if path.path == ReadPath::Rollups {
        return match (window, days) {
            (Some(w), Some(d)) => {
                let prev = days_window(now - d * MICROS_PER_DAY, d, assistant);
                windowed::trending(conn, path, &w, &prev, limit, recent_phrasings)
            }
            _ => all_time::trending(conn, assistant, now, limit, recent_phrasings),
        };
    }
    let state = topic_state(conn, assistant, window, path)?;
    let previous = match days {
        Some(d) => {
            let prev = days_window(now - d * MICROS_PER_DAY, d, assistant);
            Some(topic_state(conn, assistant, Some(prev), path)?.frequencies_by_topic())
        }
        None => None,
    };
    let dir = Directory::new(conn, &Window::all_time(now, assistant));
    state.finish_with_phrasings(limit, &dir, previous.as_ref(), recent_phrasings)
}

pub fn diversity(
    conn: &Connection,
    assistant: Option<Uuid>,
    days: Option<i64>,
    now: i64,
    path: &ReadCtx,
) -> Result<Option<TopicDiversity>> {
    let window = days.map(|d| days_window(now, d, assistant));
    if path.path == ReadPath::Rollups {
        return match window {
            Some(w) => windowed::diversity(conn, path, &w),
            None => all_time::diversity(conn, assistant),
        };
    }
    let state = topic_state(conn, assistant, window, path)?;
    Ok(diversity_of(state.frequencies()))
}

pub fn sync(conn: &Connection, w: &Window, path: &ReadCtx) -> Result<Vec<ConnectorSyncRate>> {
    let mut state = SyncState::new();
    fold_window(conn, w, path, Metric::Sync, &mut state, |state, part| {
        let mut stmt = conn.prepare_cached(
            "SELECT connector, status, duration_us FROM syncs WHERE started_at > ?1 AND started_at <= ?2",
        )?;
        let mut rows = stmt.query(params![part.from_exclusive, part.to_inclusive])?;
        while let Some(r) = rows.next()? {
            let status = match r.get::<_, i64>(1)? {
                0 => SyncStatus::Success,
                1 => SyncStatus::Partial,
                _ => SyncStatus::Failure,
            };
            state.add(r.get(0)?, status, r.get(2)?);
        }
        Ok(())
    })?;
    state.finish(&Directory::new(conn, w))
}

pub fn freshness(conn: &Connection, now: i64) -> Result<Vec<DocumentFreshness>> {
    let mut state = FreshnessState::new();
    let mut stmt = conn
        .prepare_cached("SELECT updated_at FROM documents WHERE registered = 1 AND deleted = 0")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        state.add(r.get(0)?, now);
    }
    Ok(state.finish())
}

pub fn unpriced_models(conn: &Connection) -> Result<Vec<UnpricedModel>> {
    let mut stmt = conn.prepare_cached(
        "SELECT model, count, first_seen, last_seen FROM unpriced_models ORDER BY count DESC, model",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(UnpricedModel {
            model: r.get(0)?,
            count: r.get(1)?,
            first_seen: Timestamp(r.get(2)?),
            last_seen: Timestamp(r.get(3)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Registry lookups for the `finish` step of the metrics, scoped like the
/// window that was scanned (for `last_retrieved`).
pub struct Directory<'c> {
    conn: &'c Connection,
    window: Window,
}

impl<'c> Directory<'c> {
    pub fn new(conn: &'c Connection, window: &Window) -> Self {
        Self {
            conn,
            window: *window,
        }
    }

    fn row<T>(
        &self,
        sql: &str,
        key: i64,
        map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        Ok(self.conn.prepare_cached(sql)?.query_row([key], map)?)
    }

    fn keys(&self, sql: &str) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn uuid(bytes: Vec<u8>) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// A registered entity's field; `None` for a placeholder row.
fn registered(flag: i64, value: Option<String>) -> Option<String> {
    if flag == 1 { value } else { None }
}

impl AssistantDirectory for Directory<'_> {
    type Error = StoreError;
    fn assistant(&self, key: i64) -> Result<AssistantMeta> {
        self.row(
            "SELECT id, registered, name FROM assistants WHERE key = ?1",
            key,
            |r| {
                Ok(AssistantMeta {
                    uuid: uuid(r.get(0)?)?,
                    name: registered(r.get(1)?, r.get(2)?),
                })
            },
        )
    }
}

impl TopicDirectory for Directory<'_> {
    type Error = StoreError;
    fn topic(&self, key: i64) -> Result<TopicMeta> {
        self.row(
            "SELECT t.label, a.id FROM topics t JOIN assistants a ON a.key = t.assistant WHERE t.key = ?1",
            key,
            |r| {
                Ok(TopicMeta {
                    label: r.get(0)?,
                    assistant: uuid(r.get(1)?)?,
                })
            },
        )
    }

    /// Retention deletes the texts of questions asked only before its
    /// cutoff, and an erasure those of its user, while rollups older than
    /// the cutoff still count their askings: such a phrasing reads as "".
    fn phrasing_text(&self, key: i64) -> Result<String> {
        Ok(self
            .conn
            .prepare_cached("SELECT text FROM phrasings WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }
}

impl DocumentDirectory for Directory<'_> {
    type Error = StoreError;
    fn document(&self, key: i64) -> Result<DocumentMeta> {
        self.row(
            "SELECT d.id, d.registered, d.file_name, c.id, c.registered, c.name
             FROM documents d LEFT JOIN connectors c ON c.key = d.connector WHERE d.key = ?1",
            key,
            |r| {
                let registered_doc: i64 = r.get(1)?;
                let connector_id: Option<Vec<u8>> = r.get(3)?;
                // An unregistered document shows "" as its connector; a registered
                // one whose connector is unregistered shows the connector's id.
                let connector_name = match (registered_doc, connector_id) {
                    (1, Some(id)) => Some(
                        registered(r.get::<_, Option<i64>>(4)?.unwrap_or(0), r.get(5)?)
                            .unwrap_or(uuid(id)?.to_string()),
                    ),
                    _ => None,
                };
                Ok(DocumentMeta {
                    uuid: uuid(r.get(0)?)?,
                    file_name: registered(registered_doc, r.get(2)?),
                    connector_name,
                })
            },
        )
    }

    /// Two ordered walks of the `documents_live_by_name` index, merged: the
    /// named documents by (file name, id), and the unnamed ones by id, whose
    /// text (the listing's name for them) sorts as the id's bytes do.
    fn live_documents_by_name(&self, visit: &mut dyn FnMut(i64) -> bool) -> Result<()> {
        let mut named = self.conn.prepare_cached(
            "SELECT key, file_name, id FROM documents
             WHERE registered = 1 AND deleted = 0 AND file_name IS NOT NULL
             ORDER BY file_name, id",
        )?;
        let mut unnamed = self.conn.prepare_cached(
            "SELECT key, id FROM documents
             WHERE registered = 1 AND deleted = 0 AND file_name IS NULL
             ORDER BY id",
        )?;
        let mut named = named
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    uuid(r.get(2)?)?,
                ))
            })?
            .peekable();
        let mut unnamed = unnamed
            .query_map([], |r| {
                let id = uuid(r.get(1)?)?;
                Ok((r.get::<_, i64>(0)?, id.to_string(), id))
            })?
            .peekable();
        loop {
            let take_named = match (named.peek(), unnamed.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Err(_)), _) => true,
                (_, Some(Err(_))) => false,
                (Some(Ok(a)), Some(Ok(b))) => (&a.1, a.2) <= (&b.1, b.2),
            };
            let next = if take_named {
                named.next()
            } else {
                unnamed.next()
            };
            let Some(row) = next else {
                return Ok(());
            };
            if !visit(row?.0) {
                return Ok(());
            }
        }
    }

    /// The last retrieval of each document up to the window's end. The
    /// writer keeps the latest of all time per (document, assistant); when
    /// that lies after the window's end (a retrieval stored since, or dated
    /// ahead), the interactions before the end are searched backwards, once
    /// for all such documents.
    fn last_retrieved(&self, keys: &[i64]) -> Result<Vec<Option<i64>>> {
        let assistant = match scope(self.conn, self.window.assistant)? {
            Scope::All => None,
            Scope::Assistant(key) => Some(key),
            Scope::Unknown => return Ok(vec![None; keys.len()]),
        };
        let end = self.window.to_inclusive;
        let mut latest = Vec::with_capacity(keys.len());
        let mut later: HashMap<i64, Option<i64>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT max(ts) FROM last_retrievals WHERE document = ?1 AND (?2 IS NULL OR assistant = ?2)",
        )?;
        for &doc in keys {
            let ts: Option<i64> = stmt.query_row(params![doc, assistant], |r| r.get(0))?;
            if ts.is_some_and(|ts| ts > end) {
                later.insert(doc, None);
            }
            latest.push(ts);
        }
        if !later.is_empty() {
            search_backwards(self.conn, end, assistant, &mut later)?;
        }
        Ok(keys
            .iter()
            .zip(latest)
            .map(|(doc, ts)| later.get(doc).copied().unwrap_or(ts))
            .collect())
    }
}

/// Fills `wanted` with each document's last retrieval at or before `end`,
/// reading interactions from `end` backwards until every one is found.
fn search_backwards(
    conn: &Connection,
    end: i64,
    assistant: Option<i64>,
    wanted: &mut HashMap<i64, Option<i64>>,
) -> Result<()> {
    let mut missing = wanted.len();
    let mut stmt = conn.prepare_cached(
        "SELECT ts, documents FROM interaction_details
         WHERE ts <= ?1 AND documents IS NOT NULL AND (?2 IS NULL OR assistant = ?2)
         ORDER BY ts DESC",
    )?;
    let mut rows = stmt.query(params![end, assistant])?;
    while missing > 0
        && let Some(r) = rows.next()?
    {
        let ts: i64 = r.get(0)?;
        details::decode(details::blob(r, 1)?, |doc: i64| {
            if let Some(slot @ None) = wanted.get_mut(&doc) {
                *slot = Some(ts);
                missing -= 1;
            }
        })?;
    }
    Ok(())
}

impl UserDirectory for Directory<'_> {
    type Error = StoreError;
    fn user(&self, key: i64) -> Result<UserMeta> {
        self.row(
            "SELECT id, registered, email, full_name FROM users WHERE key = ?1",
            key,
            |r| {
                let flag: i64 = r.get(1)?;
                Ok(UserMeta {
                    id: r.get(0)?,
                    email: registered(flag, r.get(2)?),
                    full_name: registered(flag, r.get(3)?),
                })
            },
        )
    }
}

impl ConnectorDirectory for Directory<'_> {
    type Error = StoreError;
    fn connector(&self, key: i64) -> Result<ConnectorMeta> {
        self.row(
            "SELECT id, registered, name FROM connectors WHERE key = ?1",
            key,
            |r| {
                Ok(ConnectorMeta {
                    uuid: uuid(r.get(0)?)?,
                    name: registered(r.get(1)?, r.get(2)?),
                })
            },
        )
    }

    fn registered_connectors(&self) -> Result<Vec<i64>> {
        self.keys("SELECT key FROM connectors WHERE registered = 1")
    }
}
