//! Reading a metric: the window's state is folded from the rollups of the
//! whole buckets inside it and the raw rows of the rest (all raw rows on the
//! scan path, the reference), then finished with registry data looked up
//! through [`Directory`]. Raw scans read only the columns a metric needs.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::analytics::metrics::cache::CacheState;
use crate::analytics::metrics::costs::CostsState;
use crate::analytics::metrics::diversity::diversity as diversity_of;
use crate::analytics::metrics::freshness::FreshnessState;
use crate::analytics::metrics::reranking::RerankingState;
use crate::analytics::metrics::sessions::SessionsState;
use crate::analytics::metrics::steps::{StepSample, StepsState};
use crate::analytics::metrics::sync::{SyncState, SyncStatus};
use crate::analytics::metrics::trending::TrendingState;
use crate::analytics::metrics::ttft::TtftState;
use crate::analytics::metrics::users::UsersState;
use crate::analytics::metrics::utilization::{Status, UtilizationState};
use crate::analytics::metrics::*;
use crate::analytics::models::*;
use crate::api::pricing::UnpricedModel;
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
fn fold_window<T: RollupState + Clone + Send + Sync + 'static>(
    conn: &Connection,
    w: &Window,
    path: &ReadCtx,
    metric: Metric,
    state: &mut T,
    mut raw: impl FnMut(&mut T, &Window) -> Result<()>,
) -> Result<()> {
    let assistant = match metric {
        Metric::Sync => Some(NO_ASSISTANT),
        _ => match scope(conn, w.assistant)? {
            Scope::All => None,
            Scope::Assistant(key) => Some(key),
            Scope::Unknown => return Ok(()),
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
        return Ok(());
    }
    let version = rollup::past_version(conn)?;
    let whole = path
        .cache
        .get_or_merge(metric, assistant, &plan, version, || {
            let mut whole = T::default();
            let mut merge = |other: T| whole.merge_from(other);
            for days in &plan.days {
                rollup::fold(
                    conn,
                    metric,
                    Level::Day,
                    days.clone(),
                    assistant,
                    &mut merge,
                )?;
            }
            for hours in &plan.hours {
                rollup::fold(
                    conn,
                    metric,
                    Level::Hour,
                    hours.clone(),
                    assistant,
                    &mut merge,
                )?;
            }
            Ok::<T, StoreError>(whole)
        })?;
    state.merge_from(T::clone(&whole));
    Ok(())
}

pub fn ttft(
    conn: &Connection,
    w: &Window,
    path: &ReadCtx,
    hours: i64,
) -> Result<Option<TtftPercentiles>> {
    let mut state = TtftState::new();
    fold_window(conn, w, path, Metric::Ttft, &mut state, |state, part| {
        scan(
            conn,
            part,
            "SELECT ttft_us FROM interactions WHERE ttft_us IS NOT NULL",
            |r| {
                state.add(r.get(0)?);
                Ok(())
            },
        )
    })?;
    Ok(state.finish(hours))
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
    state.finish(status, limit, &Directory::new(conn, w))
}

/// Topic totals of a scope: all time from the counters kept at ingest, or a
/// window from the interactions.
fn topic_state(
    conn: &Connection,
    assistant: Option<Uuid>,
    window: Option<Window>,
    path: &ReadCtx,
) -> Result<TrendingState> {
    let mut state = TrendingState::new();
    if let Some(w) = window {
        fold_window(
            conn,
            &w,
            path,
            Metric::Trending,
            &mut state,
            |state, part| {
                scan(
                    conn,
                    part,
                    "SELECT topic, phrasing, ts FROM interactions WHERE topic IS NOT NULL",
                    |r| {
                        let ts: i64 = r.get(2)?;
                        state.add(r.get(0)?, r.get(1)?, 1, ts, ts);
                        Ok(())
                    },
                )
            },
        )?;
        return Ok(state);
    }
    let filter = match scope(conn, assistant)? {
        Scope::All => String::new(),
        Scope::Assistant(key) => format!("AND t.assistant = {key}"),
        Scope::Unknown => return Ok(state),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT p.topic, p.key, p.count, p.first_ts, p.last_ts
         FROM phrasings p JOIN topics t ON t.key = p.topic
         WHERE p.count > 0 {filter}"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let count: i64 = r.get(2)?;
        state.add(
            r.get(0)?,
            Some(r.get(1)?),
            count as u64,
            r.get(3)?,
            r.get(4)?,
        );
    }
    // Interactions of labelled topics that carried no question.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.key, t.frequency - coalesce((SELECT sum(p.count) FROM phrasings p WHERE p.topic = t.key), 0),
                t.last_ts
         FROM topics t WHERE t.frequency > 0 {filter}"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let bare: i64 = r.get(1)?;
        if bare > 0 {
            let last: i64 = r.get(2)?;
            state.add(r.get(0)?, None, bare as u64, last, last);
        }
    }
    Ok(state)
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

    fn phrasing_text(&self, key: i64) -> Result<String> {
        self.row("SELECT text FROM phrasings WHERE key = ?1", key, |r| {
            r.get(0)
        })
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

    fn live_documents(&self) -> Result<Vec<i64>> {
        self.keys("SELECT key FROM documents WHERE registered = 1 AND deleted = 0")
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
                    uuid: uuid(r.get(0)?)?,
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
