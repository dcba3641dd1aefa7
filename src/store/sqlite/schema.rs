//! The SQLite schema and its migrations. `PRAGMA application_id` marks a
//! ragpulse file and `PRAGMA user_version` its schema version, so a foreign or
//! newer file is refused at start instead of being silently reset.

use rusqlite::Connection;

use crate::store::StoreError;

/// "RPLS": identifies a ragpulse database.
pub const APPLICATION_ID: i64 = 0x5250_4C53;

/// Migration N brings `user_version` from N to N + 1.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

const V1: &str = r#"
CREATE TABLE assistants (
    key INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    registered INTEGER NOT NULL DEFAULT 0,
    name TEXT,
    model TEXT
);
CREATE TABLE users (
    key INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    registered INTEGER NOT NULL DEFAULT 0,
    email TEXT,
    full_name TEXT
);
CREATE TABLE connectors (
    key INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    registered INTEGER NOT NULL DEFAULT 0,
    name TEXT
);
CREATE TABLE documents (
    key INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    registered INTEGER NOT NULL DEFAULT 0,
    connector INTEGER,
    file_name TEXT,
    updated_at INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    key INTEGER PRIMARY KEY,
    sid TEXT NOT NULL UNIQUE
);
CREATE TABLE step_names (
    key INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
-- kind: 0 = client label, 1 = question text. Counters are all-time totals kept at ingest.
CREATE TABLE topics (
    key INTEGER PRIMARY KEY,
    assistant INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    norm TEXT NOT NULL,
    label TEXT,
    frequency INTEGER NOT NULL DEFAULT 0,
    last_ts INTEGER,
    UNIQUE (assistant, kind, norm)
);
CREATE TABLE phrasings (
    key INTEGER PRIMARY KEY,
    topic INTEGER NOT NULL,
    text TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    first_ts INTEGER,
    last_ts INTEGER,
    UNIQUE (topic, text)
);
-- cost_source: 0 = client cost_usd, 1 = catalogue, 2 = unpriced (cost 0).
CREATE TABLE interactions (
    key INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    assistant INTEGER NOT NULL,
    session INTEGER NOT NULL,
    user INTEGER,
    topic INTEGER,
    phrasing INTEGER,
    model TEXT,
    provider TEXT,
    ttft_us INTEGER,
    total_us INTEGER,
    cache_hit INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cost_nusd INTEGER NOT NULL,
    cost_source INTEGER NOT NULL,
    price_id TEXT,
    -- The model name the interaction was priced by (its own, else its assistant's).
    priced_model TEXT,
    rerank_before REAL,
    rerank_after REAL,
    rerank_improvement_n INTEGER,
    rerank_position_n INTEGER
);
-- The time index also carries the columns of the widest windows (user stats and
-- sessions scan 30 and 7 days): those scans read the index alone, in time order.
CREATE INDEX interactions_by_ts ON interactions (ts, user, session, input_tokens, output_tokens);
CREATE INDEX interactions_by_assistant_ts ON interactions (assistant, ts);
-- One row per (interaction, step name), repeats summed; clustered by time for window scans.
CREATE TABLE steps (
    ts INTEGER NOT NULL,
    interaction INTEGER NOT NULL,
    name INTEGER NOT NULL,
    assistant INTEGER NOT NULL,
    first_index INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    PRIMARY KEY (ts, interaction, name)
) WITHOUT ROWID;
CREATE TABLE retrievals (
    ts INTEGER NOT NULL,
    interaction INTEGER NOT NULL,
    document INTEGER NOT NULL,
    assistant INTEGER NOT NULL,
    PRIMARY KEY (ts, interaction, document)
) WITHOUT ROWID;
CREATE INDEX retrievals_by_document ON retrievals (document, ts);
-- status: 0 = success, 1 = partial, 2 = failure.
CREATE TABLE syncs (
    key INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    connector INTEGER NOT NULL,
    status INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_us INTEGER,
    documents_synced INTEGER,
    error TEXT
);
CREATE INDEX syncs_by_started_at ON syncs (started_at);
-- Question phrasings that joined another phrasing's topic as near-duplicates.
CREATE TABLE topic_aliases (
    assistant INTEGER NOT NULL,
    norm TEXT NOT NULL,
    topic INTEGER NOT NULL,
    PRIMARY KEY (assistant, norm)
) WITHOUT ROWID;
-- Running mean of the unit embeddings of an embedding topic's questions (f32, little-endian).
CREATE TABLE topic_centroids (
    topic INTEGER PRIMARY KEY,
    assistant INTEGER NOT NULL,
    count INTEGER NOT NULL,
    mean BLOB NOT NULL
);
CREATE INDEX topic_centroids_by_assistant ON topic_centroids (assistant);
CREATE TABLE unpriced_models (
    model TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
"#;

/// Rollups (see `rollup`): metric states per bucket, the spans of sessions,
/// and small settings of the store.
const V2: &str = r#"
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- metric and level: see rollup::Metric and rollup::Level; bucket: hours or days
-- since the Unix epoch; state: the metric's state, postcard-encoded.
CREATE TABLE rollups (
    metric INTEGER NOT NULL,
    level INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    assistant INTEGER NOT NULL,
    state BLOB NOT NULL,
    UNIQUE (metric, level, bucket, assistant)
);
-- Sealed days whose day rows were dropped by a late write: read from their
-- hours until the writer seals them again.
CREATE TABLE rollup_dirty_days (
    day INTEGER PRIMARY KEY
);
-- assistant is NULL once a session has interactions of two assistants.
CREATE TABLE session_spans (
    session INTEGER PRIMARY KEY,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    assistant INTEGER,
    interactions INTEGER NOT NULL
);
"#;

/// Appended hour states (see `rollup::write`): an hour's state is its
/// `rollups` row merged with every delta of its (metric, bucket, assistant),
/// so a commit writes the state of its own events, not the whole hour's.
const V3: &str = r#"
CREATE TABLE rollup_deltas (
    id INTEGER PRIMARY KEY,
    metric INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    assistant INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE INDEX rollup_deltas_by_slot ON rollup_deltas (metric, bucket, assistant);
"#;

/// The last retrieval of each document per assistant, kept by the writer
/// (one upsert per document and assistant per transaction) instead of the
/// `retrievals (document, ts)` index, which cost a third of the ingest rate
/// (measured: 26–30k against 39k interactions/s without it).
const V4: &str = r#"
CREATE TABLE last_retrievals (
    document INTEGER NOT NULL,
    assistant INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (document, assistant)
) WITHOUT ROWID;
INSERT INTO last_retrievals (document, assistant, ts)
    SELECT document, assistant, max(ts) FROM retrievals GROUP BY document, assistant;
DROP INDEX retrievals_by_document;
"#;

/// Per-connection settings: WAL, fsync on every commit (a 2xx survives power loss).
pub fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // rusqlite keeps 16 prepared statements by default; the writer uses more
    // (one per multi-row shape too), and re-preparing costs more than the insert.
    conn.set_prepared_statement_cache_capacity(512);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 256 MiB of page cache for the writer: index inserts at random keys stay in memory.
    conn.pragma_update(None, "cache_size", -262_144)?;
    // A background thread (see `Checkpointer`) copies most WAL frames back; the
    // writer's own, rarer checkpoint then finds little left to copy and lets the
    // WAL restart from its beginning, so it cannot grow without bound.
    conn.pragma_update(None, "wal_autocheckpoint", 4_000)?;
    Ok(())
}

/// Refuses a file that is neither empty nor a ragpulse database, or one of a
/// newer schema, without writing to it.
pub fn check_identity(conn: &Connection) -> Result<(), StoreError> {
    let app_id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    if app_id != APPLICATION_ID && (app_id != 0 || objects > 0) {
        return Err(StoreError::Open(format!(
            "the database is not a ragpulse database (application_id {app_id:#x}, {objects} schema objects); \
             point --data-dir at an empty directory or a ragpulse data directory"
        )));
    }
    let latest = MIGRATIONS.len() as i64;
    if version > latest {
        return Err(StoreError::Open(format!(
            "the database has schema version {version}, newer than this ragpulse knows ({latest}); \
             run a newer ragpulse"
        )));
    }
    Ok(())
}

/// Applies the migrations the file lacks (after [`check_identity`]).
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    check_identity(conn)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before `last_retrievals` existed gets it filled from
    /// its retrievals, and loses the index it replaces.
    #[test]
    fn the_last_retrievals_are_filled_from_an_older_store() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).expect("older schema");
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .expect("application id");
        conn.pragma_update(None, "user_version", 3)
            .expect("version");
        // (ts, interaction, document, assistant)
        conn.execute_batch(
            "INSERT INTO retrievals VALUES (10, 1, 7, 1), (30, 2, 7, 1), (20, 3, 7, 2), (5, 4, 8, 1);",
        )
        .expect("retrievals");

        migrate(&mut conn).expect("migration");

        let rows: Vec<(i64, i64, i64)> = conn
            .prepare(
                "SELECT document, assistant, ts FROM last_retrievals ORDER BY document, assistant",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .expect("last retrievals");
        assert_eq!(rows, vec![(7, 1, 30), (7, 2, 20), (8, 1, 5)]);
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'retrievals_by_document'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(index, 0);
    }
}
