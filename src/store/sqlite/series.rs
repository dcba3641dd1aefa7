//! The state of the RAG series (`crate::telemetry::rag`) kept in the store:
//! one `rag_series` row per assistant and per connector, and the admitted
//! label lists, written by the writer in the same transaction as the events
//! they count. A restart resumes every counter where the last commit left
//! it, so Prometheus sees no reset, for the price of reading a few rows.
//!
//! A store without a current state (written before the series existed, with
//! them switched off, or with another bucket layout) gets it rebuilt from
//! its events once, at open, in the order the events were stored: the same
//! names are then admitted under the label caps as at ingest.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::details::{self, PackedStep};
use super::rollup::{meta, set_meta};
use crate::telemetry::rag::buckets::LAYOUT;
use crate::telemetry::rag::state::{
    AssistantSeries, Changes, InteractionFacts, Labels, MAX_MODELS, MAX_STEPS, SeriesState,
    SyncOutcome,
};

type SqlResult<T> = Result<T, rusqlite::Error>;

/// `meta` key holding the [`LAYOUT`] the stored state was written with;
/// absent when there is no current state.
const LAYOUT_KEY: &str = "rag_series_layout";

/// What a `rag_series` row holds. Stored as an integer: never renumber.
#[derive(Clone, Copy)]
enum Kind {
    Assistant = 0,
    Connector = 1,
    /// key 0: the model names; key 1: the step names.
    Labels = 2,
}

const MODELS: i64 = 0;
const STEPS: i64 = 1;

/// The state to resume from when the series are wanted: the stored one when
/// it is current and readable, else one rebuilt from the events (and
/// stored). When they are not wanted the stored state is dropped: a state the
/// writer stopped updating must never be resumed.
pub fn prepare(conn: &mut Connection, wanted: bool) -> SqlResult<Option<SeriesState>> {
    if !wanted {
        forget(conn)?;
        return Ok(None);
    }
    if meta(conn, LAYOUT_KEY)? == Some(LAYOUT) {
        match load(conn) {
            Ok(state) => return Ok(Some(state)),
            Err(error) => {
                tracing::warn!(%error, "the Prometheus series' state cannot be read; rebuilding it")
            }
        }
    }
    let started = std::time::Instant::now();
    tracing::info!("building the Prometheus series' state from the stored events");
    let tx = conn.transaction()?;
    let mut state = rebuild(&tx)?;
    tx.execute("DELETE FROM rag_series", [])?;
    save_all(&tx, &mut state)?;
    set_meta(&tx, LAYOUT_KEY, LAYOUT)?;
    tx.commit()?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "built the Prometheus series' state"
    );
    Ok(Some(state))
}

/// Marks the state as not current and drops its rows.
pub fn forget(conn: &Connection) -> SqlResult<()> {
    conn.execute("DELETE FROM meta WHERE key = ?1", [LAYOUT_KEY])?;
    conn.execute("DELETE FROM rag_series", [])?;
    Ok(())
}

/// The stored state, as the last commit left it.
pub fn load(conn: &Connection) -> SqlResult<SeriesState> {
    let mut state = SeriesState::new();
    let mut stmt = conn.prepare("SELECT kind, key, state FROM rag_series")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (kind, key): (i64, i64) = (row.get(0)?, row.get(1)?);
        let bytes = details::blob(row, 2)?;
        match kind {
            k if k == Kind::Assistant as i64 => {
                let series: AssistantSeries = decode(bytes)?;
                if !series.fits() {
                    return Err(damaged("an assistant's histograms have another layout"));
                }
                state.assistants.insert(key, series);
            }
            k if k == Kind::Connector as i64 => {
                state.connectors.insert(key, decode(bytes)?);
            }
            _ if key == MODELS => state.models = Labels::with_names(MAX_MODELS, decode(bytes)?),
            _ => state.steps = Labels::with_names(MAX_STEPS, decode(bytes)?),
        }
    }
    state.take_changes();
    Ok(state)
}

/// Writes the rows `changes` names (from the state they changed in).
pub fn save(conn: &Connection, state: &SeriesState, changes: &Changes) -> SqlResult<()> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO rag_series (kind, key, state) VALUES (?1, ?2, ?3)
         ON CONFLICT (kind, key) DO UPDATE SET state = excluded.state",
    )?;
    for key in &changes.assistants {
        if let Some(series) = state.assistants.get(key) {
            upsert.execute(params![Kind::Assistant as i64, key, encode(series)?])?;
        }
    }
    for key in &changes.connectors {
        if let Some(series) = state.connectors.get(key) {
            upsert.execute(params![Kind::Connector as i64, key, encode(series)?])?;
        }
    }
    if changes.labels {
        upsert.execute(params![
            Kind::Labels as i64,
            MODELS,
            encode(&state.models.names())?
        ])?;
        upsert.execute(params![
            Kind::Labels as i64,
            STEPS,
            encode(&state.steps.names())?
        ])?;
    }
    Ok(())
}

fn save_all(conn: &Connection, state: &mut SeriesState) -> SqlResult<()> {
    state.take_changes();
    let changes = Changes {
        assistants: state.assistants.keys().copied().collect(),
        connectors: state.connectors.keys().copied().collect(),
        labels: true,
    };
    save(conn, state, &changes)
}

/// The state the stored events give, folded in the order they were stored.
pub fn rebuild(conn: &Connection) -> SqlResult<SeriesState> {
    let mut state = SeriesState::new();
    let mut stmt = conn.prepare(
        "SELECT assistant, priced_model, cache_hit, ttft_us, total_us, input_tokens,
                output_tokens, cached_input_tokens, cost_nusd, rerank_improvement_n, rerank_position_n
         FROM interactions ORDER BY key",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let model = r.get_ref(1)?.as_str_or_null()?;
        state.interaction(&InteractionFacts {
            assistant: r.get(0)?,
            model,
            cache_hit: r.get(2)?,
            ttft_us: r.get(3)?,
            total_us: r.get(4)?,
            input_tokens: r.get(5)?,
            output_tokens: r.get(6)?,
            cached_input_tokens: r.get(7)?,
            cost_nusd: r.get(8)?,
            rerank_improvement_n: r.get(9)?,
            rerank_position_n: r.get(10)?,
        });
    }
    steps(conn, &mut state)?;
    let mut stmt =
        conn.prepare("SELECT connector, status, started_at, duration_us FROM syncs ORDER BY key")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let outcome = match r.get::<_, i64>(1)? {
            0 => SyncOutcome::Success,
            1 => SyncOutcome::Partial,
            _ => SyncOutcome::Failure,
        };
        state.sync(r.get(0)?, outcome, r.get(2)?, r.get(3)?);
    }
    Ok(state)
}

/// Step names are admitted in the order they were first stored (their key
/// order, as the writer interned them), then every stored step is folded.
fn steps(conn: &Connection, state: &mut SeriesState) -> SqlResult<()> {
    let mut names = HashMap::new();
    let mut stmt = conn.prepare("SELECT key, name FROM step_names ORDER BY key")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (key, name): (i64, String) = (r.get(0)?, r.get(1)?);
        state.steps.slot(&name);
        names.insert(key, name);
    }
    let mut stmt =
        conn.prepare("SELECT assistant, steps FROM interaction_details WHERE steps IS NOT NULL")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let row = state.row_of_assistant(r.get(0)?);
        details::decode(details::blob(r, 1)?, |step: PackedStep| {
            let name = names.get(&step.name).map_or("", String::as_str);
            state.step(row, name, step.duration_us);
        })?;
    }
    Ok(())
}

/// The id and name of an assistant (`table` "assistants") or a connector.
pub fn entity(
    conn: &Connection,
    table: &str,
    key: i64,
) -> SqlResult<Option<(Vec<u8>, Option<String>)>> {
    conn.prepare_cached(&format!("SELECT id, name FROM {table} WHERE key = ?1"))?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

fn encode<T: Serialize + ?Sized>(value: &T) -> SqlResult<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> SqlResult<T> {
    postcard::from_bytes(bytes).map_err(|e| damaged(&e.to_string()))
}

fn damaged(why: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Blob,
        format!("a stored Prometheus series row cannot be decoded ({why})").into(),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;
    use crate::ingest::ingest_values;
    use crate::ingest::validate::EventLimits;
    use crate::store::sqlite::{DATABASE_FILE, SqliteStore, open_for_test};
    use crate::telemetry::rag::state::{MAX_ASSISTANTS, MAX_CONNECTORS, OTHER_KEY};
    use crate::time::Timestamp;

    fn id(kind: u128, n: u64) -> Uuid {
        Uuid::from_u128((kind << 64) | u128::from(n + 1))
    }

    fn ago(now: i64, minutes: i64) -> String {
        Timestamp(now - minutes * 60_000_000).to_rfc3339()
    }

    /// One generated event: an interaction, a sync, or an assistant's new name.
    #[derive(Debug, Clone)]
    enum Gen {
        Interaction {
            id: u64,
            assistant: u64,
            model: Option<u64>,
            steps: Vec<u64>,
            ttft_ms: Option<u32>,
            cache_hit: bool,
            cost_micros: Option<u32>,
            rerank: Option<(i32, Option<u16>)>,
        },
        Sync {
            id: u64,
            connector: u64,
            status: usize,
            minutes_ago: i64,
            duration_s: Option<u16>,
        },
        Rename {
            assistant: u64,
            name: u8,
        },
    }

    fn json_of(g: &Gen, now: i64) -> Value {
        match g {
            Gen::Interaction {
                id: n,
                assistant,
                model,
                steps,
                ttft_ms,
                cache_hit,
                cost_micros,
                rerank,
            } => json!({
                "type": "interaction",
                "id": id(1, *n),
                "timestamp": ago(now, 1),
                "assistant_id": id(2, *assistant),
                "session_id": "s",
                "model": model.map(|m| format!("model-{m}")),
                "ttft_s": ttft_ms.map(|t| f64::from(t) / 1e3),
                "cache_hit": cache_hit,
                "input_tokens": 100,
                "cached_input_tokens": 10,
                "output_tokens": 20,
                "cost_usd": cost_micros.map(|c| f64::from(c) / 1e6),
                "steps": steps.iter().map(|s| json!({"name": format!("step-{s}"), "duration_s": 0.01 * *s as f64})).collect::<Vec<_>>(),
                "rerank": rerank.map(|(improvement, position)| json!({
                    "score_improvement": f64::from(improvement) / 1e3,
                    "position_change": position.map(f64::from),
                })),
            }),
            Gen::Sync {
                id: n,
                connector,
                status,
                minutes_ago,
                duration_s,
            } => {
                let status = ["success", "partial", "failure"][*status];
                json!({
                    "type": "connector_sync",
                    "id": id(3, *n),
                    "connector_id": id(4, *connector),
                    "status": status,
                    "started_at": ago(now, *minutes_ago),
                    "duration_s": duration_s.map(f64::from),
                })
            }
            Gen::Rename { assistant, name } => json!({
                "type": "assistant",
                "id": id(2, *assistant),
                "name": format!("assistant {name}"),
            }),
        }
    }

    fn gen_event(assistants: u64, models: u64, steps: u64) -> impl Strategy<Value = Gen> {
        prop_oneof![
            6 => (
                (0u64..40, 0..assistants, proptest::option::of(0..models)),
                proptest::collection::vec(0..steps, 0..4),
                (proptest::option::of(0u32..70_000), any::<bool>(), proptest::option::of(0u32..5_000)),
                proptest::option::of((-500i32..500, proptest::option::of(0u16..9))),
            )
                .prop_map(|((id, assistant, model), mut steps, (ttft_ms, cache_hit, cost_micros), rerank)| {
                    steps.sort_unstable();
                    steps.dedup();
                    Gen::Interaction { id, assistant, model, steps, ttft_ms, cache_hit, cost_micros, rerank }
                }),
            2 => (0u64..15, 0u64..3, 0usize..3, 0i64..600, proptest::option::of(0u16..4_000))
                .prop_map(|(id, connector, status, minutes_ago, duration_s)| Gen::Sync {
                    id, connector, status, minutes_ago, duration_s
                }),
            1 => (0..assistants, 0u8..3).prop_map(|(assistant, name)| Gen::Rename { assistant, name }),
        ]
    }

    /// Ingests `batches` through the real writer (reopening the store before
    /// batch `restart`), then returns the stored state and the one its events give.
    fn stored_and_rebuilt(batches: &[Vec<Value>], restart: usize) -> (SeriesState, SeriesState) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store: SqliteStore = open_for_test(dir.path());
        for (n, batch) in batches.iter().enumerate() {
            if n == restart {
                runtime.block_on(store.close());
                drop(store);
                store = open_for_test(dir.path());
            }
            let values = batch.iter().cloned().enumerate().collect();
            let outcome = runtime
                .block_on(ingest_values(&store, values, &EventLimits::default()))
                .expect("ingest");
            assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
        }
        runtime.block_on(store.close());
        let conn = Connection::open(dir.path().join(DATABASE_FILE)).expect("database");
        (
            load(&conn).expect("stored state"),
            rebuild(&conn).expect("rebuilt state"),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// What the writer keeps commit by commit (duplicates, out-of-order
        /// syncs and restarts included) is what a rebuild from the stored
        /// events gives.
        #[test]
        fn the_state_kept_at_ingest_equals_the_one_rebuilt_from_the_events(
            events in proptest::collection::vec(gen_event(4, 3, 5), 1..60),
            batch in 1usize..12,
            restart in 0usize..8,
        ) {
            let now = Timestamp::now().0;
            let values: Vec<Value> = events.iter().map(|g| json_of(g, now)).collect();
            let batches: Vec<Vec<Value>> = values.chunks(batch).map(<[Value]>::to_vec).collect();
            let (stored, rebuilt) = stored_and_rebuilt(&batches, restart);
            prop_assert_eq!(stored, rebuilt);
        }
    }

    /// A group that fails after its events were folded in (a trigger refuses
    /// its sync) leaves nothing behind: neither in the published series nor
    /// in the stored state, and the next commit counts from the last good one.
    #[test]
    fn a_rolled_back_group_is_not_counted() {
        use std::sync::Arc;

        use crate::pricing::Catalogue;
        use crate::store::sqlite::StoreOptions;
        use crate::telemetry::Telemetry;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let telemetry = Arc::new(Telemetry::new());
        let store = SqliteStore::open(
            dir.path(),
            Arc::new(Catalogue::load(None).expect("catalogue")),
            telemetry.clone(),
            StoreOptions {
                max_queued_events: 1_000,
                topic_threshold: 0.9,
                rollups: true,
                rag_series: true,
                merge_cache_bytes: crate::store::sqlite::rollup::cache::DEFAULT_BUDGET_BYTES,
            },
        )
        .expect("store");
        let now = Timestamp::now().0;
        let interaction = |n: u64| {
            json_of(
                &Gen::Interaction {
                    id: n,
                    assistant: 0,
                    model: Some(0),
                    steps: vec![1],
                    ttft_ms: Some(700),
                    cache_hit: false,
                    cost_micros: Some(10),
                    rerank: None,
                },
                now,
            )
        };
        let refused = json_of(
            &Gen::Sync {
                id: 0,
                connector: 0,
                status: 2,
                minutes_ago: 1,
                duration_s: Some(999),
            },
            now,
        );
        let ingest = |values: Vec<Value>| {
            runtime.block_on(ingest_values(
                &store,
                values.into_iter().enumerate().collect(),
                &EventLimits::default(),
            ))
        };
        let counted = || {
            let text = telemetry.render();
            text.lines()
                .filter(|l| l.starts_with("ragpulse_interactions_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        };
        ingest(vec![interaction(1), interaction(2)]).expect("first batch");
        let conn = Connection::open(dir.path().join(DATABASE_FILE)).expect("database");
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON syncs WHEN NEW.duration_us = 999000000
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .expect("trigger");

        let failed = ingest(vec![interaction(3), interaction(4), refused]);
        assert!(failed.is_err(), "{failed:?}");
        assert_eq!(counted(), 2, "the failed group was published");
        conn.execute_batch("DROP TRIGGER refuse;").expect("drop");
        ingest(vec![interaction(5)]).expect("third batch");
        assert_eq!(counted(), 3);

        runtime.block_on(store.close());
        let stored = load(&conn).expect("stored");
        assert_eq!(stored, rebuild(&conn).expect("rebuilt"));
        assert_eq!(
            stored
                .assistants
                .values()
                .map(|a| a.interactions[0])
                .sum::<u64>(),
            3
        );
    }

    /// Beyond every cap, in arrival order: the stored state and the rebuild
    /// admit the same names and fold the rest into `other`.
    #[test]
    fn caps_admit_the_same_names_at_ingest_and_in_a_rebuild() {
        let now = Timestamp::now().0;
        let mut values = Vec::new();
        let assistants = MAX_ASSISTANTS as u64 + 7;
        for n in 0..assistants {
            values.push(json_of(
                &Gen::Interaction {
                    id: n,
                    // Assistants arrive in a scrambled order.
                    assistant: (n * 37) % assistants,
                    model: Some(n % (MAX_MODELS as u64 + 5)),
                    steps: vec![n % (MAX_STEPS as u64 + 3)],
                    ttft_ms: Some(500),
                    cache_hit: n % 3 == 0,
                    cost_micros: Some(7),
                    rerank: None,
                },
                now,
            ));
        }
        for n in 0..MAX_CONNECTORS as u64 + 4 {
            values.push(json_of(
                &Gen::Sync {
                    id: n,
                    connector: n,
                    status: (n % 3) as usize,
                    minutes_ago: 10,
                    duration_s: Some(3),
                },
                now,
            ));
        }
        let batches: Vec<Vec<Value>> = values.chunks(25).map(<[Value]>::to_vec).collect();
        let (stored, rebuilt) = stored_and_rebuilt(&batches, 2);
        assert_eq!(stored, rebuilt);
        assert_eq!(stored.assistants.len(), MAX_ASSISTANTS + 1);
        assert_eq!(
            stored.assistants[&OTHER_KEY]
                .interactions
                .iter()
                .sum::<u64>(),
            7
        );
        assert_eq!(stored.connectors.len(), MAX_CONNECTORS + 1);
        assert_eq!(stored.connectors[&OTHER_KEY].syncs.iter().sum::<u64>(), 4);
        assert_eq!(stored.models.len(), MAX_MODELS);
        assert_eq!(stored.steps.len(), MAX_STEPS);
    }
}
