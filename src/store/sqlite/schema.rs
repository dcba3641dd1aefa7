//! The SQLite schema and its migrations. `PRAGMA application_id` marks a
//! ragpulse file and `PRAGMA user_version` its schema version, so a foreign or
//! newer file is refused at start instead of being silently reset.

use rusqlite::{Connection, Transaction};

use crate::store::StoreError;

/// "RPLS": identifies a ragpulse database.
pub const APPLICATION_ID: i64 = 0x5250_4C53;

/// One schema step: SQL alone, or SQL then code that moves data.
struct Migration {
    sql: &'static str,
    then: Option<fn(&Transaction<'_>) -> rusqlite::Result<()>>,
}

const fn sql(sql: &'static str) -> Migration {
    Migration { sql, then: None }
}

/// Migration N brings `user_version` from N to N + 1.
const MIGRATIONS: &[Migration] = &[
    sql(V1),
    sql(V2),
    sql(V3),
    sql(V4),
    Migration {
        sql: V5,
        then: Some(pack_details),
    },
    sql(V6),
    sql(V7),
    sql(V8),
    sql(V9),
    sql(V10),
    sql(V11),
    sql(V12),
];

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

/// Steps and retrieved documents packed one row per interaction (see
/// `details`): the writer inserted about eight child rows per interaction
/// before, its largest cost. `pack_details` moves the old rows, then the
/// old tables go.
const V5: &str = r#"
CREATE TABLE interaction_details (
    ts INTEGER NOT NULL,
    interaction INTEGER NOT NULL,
    assistant INTEGER NOT NULL,
    steps BLOB,
    documents BLOB,
    PRIMARY KEY (ts, interaction)
) WITHOUT ROWID;
"#;

/// Interaction ids unique per day of their timestamp instead of over all
/// time (see `writer::ids`, which keeps the whole answer exact). SQLite drops
/// a column's UNIQUE only with its table, so the table is rebuilt.
const V6: &str = r#"
CREATE TABLE interactions_v6 (
    key INTEGER PRIMARY KEY,
    id BLOB NOT NULL,
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
    priced_model TEXT,
    rerank_before REAL,
    rerank_after REAL,
    rerank_improvement_n INTEGER,
    rerank_position_n INTEGER
);
INSERT INTO interactions_v6 SELECT * FROM interactions;
DROP TABLE interactions;
ALTER TABLE interactions_v6 RENAME TO interactions;
CREATE INDEX interactions_by_ts ON interactions (ts, user, session, input_tokens, output_tokens);
-- Covers the same columns for one assistant's windows (a scoped user-stats
-- scan of 30 days read each row from the table before: 139 against 177 ms
-- unscoped at 1M interactions, for a tenth of the rows).
CREATE INDEX interactions_by_assistant_ts ON interactions (assistant, ts, user, session, input_tokens, output_tokens);
-- The day is ts / 86400000000 (µs per day); lookups must spell it the same.
CREATE UNIQUE INDEX interactions_by_day_id ON interactions (ts / 86400000000, id);
"#;

/// User ids are free strings (a platform's own ids, OpenTelemetry's
/// `user.id`): the registry keeps them as text, a UUID in its canonical
/// lower-case form, so the users of an older store keep their identity.
const V7: &str = r#"
CREATE TABLE users_v7 (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    registered INTEGER NOT NULL DEFAULT 0,
    email TEXT,
    full_name TEXT
);
INSERT INTO users_v7 (key, id, registered, email, full_name)
    SELECT key,
           lower(substr(hex(id), 1, 8) || '-' || substr(hex(id), 9, 4) || '-' ||
                 substr(hex(id), 13, 4) || '-' || substr(hex(id), 17, 4) || '-' ||
                 substr(hex(id), 21)),
           registered, email, full_name
    FROM users;
DROP TABLE users;
ALTER TABLE users_v7 RENAME TO users;
"#;

/// OTLP trace ingestion (see `pending`): the span facts of traces not yet
/// complete, one row per trace and request, oldest first; and the traces
/// finalised lately, so that a span arriving after its trace was turned
/// into interactions is recognised (a late span, or a resent duplicate).
const V8: &str = r#"
CREATE TABLE otlp_pending (
    seq INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    received INTEGER NOT NULL,
    spans INTEGER NOT NULL,
    -- Spans of the row that begin the trace here (no parent, or a remote one).
    roots INTEGER NOT NULL,
    facts BLOB NOT NULL
);
CREATE INDEX otlp_pending_by_trace ON otlp_pending (trace_id);
CREATE TABLE otlp_done (
    seq INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL UNIQUE,
    finalized INTEGER NOT NULL,
    span_ids BLOB NOT NULL
);
"#;

/// The cold-document listing walks live documents in name order and stops at
/// its limit; without this index it read every document first.
const V9: &str = r#"
CREATE INDEX documents_live_by_name ON documents (file_name, id)
    WHERE registered = 1 AND deleted = 0;
"#;

/// What all-time trending and diversity read, kept at ingest so a request
/// costs the topics it lists, not every topic and phrasing ever stored: per
/// topic its phrasings asked (`variations`) and its canonical phrasing with
/// that phrasing's count and first time (the canonical rule's keys, so a
/// phrasing asked more often can take its place without reading the others);
/// an index ranking each assistant's asked topics by (frequency, last asked);
/// and per assistant the number of asked topics, Σf and Σf² (diversity).
/// Built here from the existing phrasing and topic counters.
const V10: &str = r#"
ALTER TABLE topics ADD COLUMN variations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topics ADD COLUMN canonical INTEGER;
ALTER TABLE topics ADD COLUMN canonical_count INTEGER;
ALTER TABLE topics ADD COLUMN canonical_first INTEGER;
UPDATE topics SET
    variations = (SELECT count(*) FROM phrasings p WHERE p.topic = topics.key AND p.count > 0),
    canonical = (SELECT p.key FROM phrasings p WHERE p.topic = topics.key AND p.count > 0
                 ORDER BY p.count DESC, p.first_ts, p.key LIMIT 1);
UPDATE topics SET
    canonical_count = (SELECT p.count FROM phrasings p WHERE p.key = topics.canonical),
    canonical_first = (SELECT p.first_ts FROM phrasings p WHERE p.key = topics.canonical)
WHERE canonical IS NOT NULL;
CREATE INDEX topics_by_rank ON topics (assistant, frequency DESC, last_ts DESC) WHERE frequency > 0;
CREATE TABLE topic_totals (
    assistant INTEGER PRIMARY KEY,
    topics INTEGER NOT NULL,
    total INTEGER NOT NULL,
    squares INTEGER NOT NULL
);
INSERT INTO topic_totals (assistant, topics, total, squares)
    SELECT assistant, count(*), sum(frequency), sum(frequency * frequency)
    FROM topics WHERE frequency > 0 GROUP BY assistant;
"#;

/// The state of the Prometheus series (see `series`): one row per assistant,
/// per connector and per label list, postcard-encoded.
const V11: &str = r#"
CREATE TABLE rag_series (
    kind INTEGER NOT NULL,
    key INTEGER NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"#;

/// What an erasure under way has touched (see `erase`): kept in the store
/// so that the work after its chunked deletes is redone in full by a retry
/// after a crash. kind 0: a topic (a); kind 1: a document's last retrieval
/// by an assistant (a, b).
const V12: &str = r#"
CREATE TABLE erasure_touched (
    kind INTEGER NOT NULL,
    a INTEGER NOT NULL,
    b INTEGER NOT NULL,
    PRIMARY KEY (kind, a, b)
) WITHOUT ROWID;
"#;

/// Packs the `steps` and `retrievals` rows of a store older than v5 into
/// `interaction_details`. Both tables are clustered by (ts, interaction), so
/// one ordered pass over each, merged, meets every interaction's rows
/// together, in memory one interaction at a time.
fn pack_details(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    use super::details::{PackedStep, encode};

    let mut steps = tx.prepare(
        "SELECT ts, interaction, assistant, name, first_index, occurrences, duration_us,
                input_tokens, output_tokens
         FROM steps ORDER BY ts, interaction, first_index",
    )?;
    let mut steps = steps
        .query_map([], |r| {
            let input: Option<i64> = r.get(7)?;
            let output: Option<i64> = r.get(8)?;
            let step = PackedStep {
                name: r.get(3)?,
                first_index: r.get(4)?,
                occurrences: r.get(5)?,
                duration_us: r.get(6)?,
                tokens: (input.is_some() || output.is_some())
                    .then(|| (input.unwrap_or(0), output.unwrap_or(0))),
            };
            Ok(((r.get(0)?, r.get(1)?), r.get(2)?, step))
        })?
        .peekable();
    let mut documents = tx.prepare(
        "SELECT ts, interaction, assistant, document FROM retrievals ORDER BY ts, interaction",
    )?;
    let mut documents = documents
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?, r.get(3)?)))?
        .peekable();
    let mut insert = tx.prepare(
        "INSERT INTO interaction_details (ts, interaction, assistant, steps, documents)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    loop {
        let key = match (peek_key(&mut steps)?, peek_key(&mut documents)?) {
            (Some(a), Some(b)) => a.min(b),
            (Some(key), None) | (None, Some(key)) => key,
            (None, None) => break,
        };
        let (assistant, packed_steps) = take_group(&mut steps, key)?;
        let (other, packed_documents) = take_group(&mut documents, key)?;
        insert.execute(rusqlite::params![
            key.0,
            key.1,
            assistant.or(other),
            encode::<PackedStep>(&packed_steps)?,
            encode::<i64>(&packed_documents)?
        ])?;
    }
    drop((steps, documents, insert));
    tx.execute_batch("DROP TABLE steps; DROP TABLE retrievals;")
}

type DetailKey = (i64, i64);

/// The key of the next row, or the error it holds.
fn peek_key<T>(
    rows: &mut std::iter::Peekable<impl Iterator<Item = rusqlite::Result<(DetailKey, i64, T)>>>,
) -> rusqlite::Result<Option<DetailKey>> {
    match rows.peek() {
        None => Ok(None),
        Some(Ok((key, _, _))) => Ok(Some(*key)),
        Some(Err(_)) => match rows.next() {
            Some(Err(error)) => Err(error),
            _ => Ok(None),
        },
    }
}

/// The rows of `key` at the front of `rows`: their assistant and items.
fn take_group<T>(
    rows: &mut std::iter::Peekable<impl Iterator<Item = rusqlite::Result<(DetailKey, i64, T)>>>,
    key: DetailKey,
) -> rusqlite::Result<(Option<i64>, Vec<T>)> {
    let mut assistant = None;
    let mut items = Vec::new();
    while peek_key(rows)? == Some(key) {
        if let Some(Ok((_, a, item))) = rows.next() {
            assistant = Some(a);
            items.push(item);
        }
    }
    Ok((assistant, items))
}

/// The page size of a new database. Against SQLite's 4 KiB, 16 KiB pages
/// split a quarter as often under appends, and every row and index entry
/// sits one B-tree level nearer the root: at 1M interactions, ingest ran
/// about 12 % faster than with 4 KiB pages in alternating runs, and
/// `/advanced` on the raw scan 11 % faster. A database keeps the size
/// it was created with.
const PAGE_SIZE: i64 = 16_384;

/// How large the WAL may grow before the writer copies it back itself.
const WAL_AUTOCHECKPOINT_BYTES: i64 = 64 << 20;

/// Per-connection settings: WAL, fsync on every commit (a 2xx survives power loss).
pub fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // rusqlite keeps 16 prepared statements by default; the writer uses more
    // (one per multi-row shape too), and re-preparing costs more than the insert.
    conn.set_prepared_statement_cache_capacity(512);
    // Before WAL mode: only an empty database takes a new page size.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A row rewritten or deleted leaves its old bytes in the page's free
    // space unless they are overwritten: a phrasing's text, updated at every
    // asking, would outlive its erasure there. FAST zeroes them within the
    // page at no extra I/O; erasure and retention switch to ON, which also
    // zeroes the pages they free.
    conn.pragma_update(None, "secure_delete", "FAST")?;
    // 256 MiB of page cache for the writer: index inserts at random keys stay in memory.
    conn.pragma_update(None, "cache_size", -262_144)?;
    // A background thread (see `Checkpointer`) copies the WAL back between
    // commits, and once it has copied all of it the next commit restarts the
    // WAL from its beginning. The writer checkpoints itself only when the WAL
    // outgrows 64 MiB anyway (readers holding old snapshots): a commit of a
    // large group writes megabytes, and at 16 MiB the writer's thread copied
    // them back after nearly every commit (6 % of it). In pages, as SQLite
    // counts, of whatever size this database has.
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        WAL_AUTOCHECKPOINT_BYTES / page_size.max(512),
    )?;
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
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        if version > 0 {
            // An existing store: moving its rows can take minutes when it is large.
            tracing::info!(
                from = index,
                to = index + 1,
                "migrating the database schema; on a large store this takes a while"
            );
        }
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql)?;
        if let Some(then) = migration.then {
            then(&tx)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty store of schema `version`, as an older ragpulse left it.
    fn store_at(version: usize) -> Connection {
        let conn = Connection::open_in_memory().expect("memory database");
        for migration in &MIGRATIONS[..version] {
            conn.execute_batch(migration.sql).expect("older schema");
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .expect("application id");
        conn.pragma_update(None, "user_version", version as i64)
            .expect("version");
        conn
    }

    /// A store written before `last_retrievals` existed gets it filled from
    /// its retrievals, and loses the index it replaces.
    #[test]
    fn the_last_retrievals_are_filled_from_an_older_store() {
        let mut conn = store_at(3);
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

    /// A v4 store's step and retrieval rows are packed one row per
    /// interaction, each interaction's own, and the old tables go.
    #[test]
    fn steps_and_retrievals_are_packed_per_interaction() {
        use crate::store::sqlite::details::{PackedStep, column};

        let mut conn = store_at(4);
        // steps: (ts, interaction, name, assistant, first_index, occurrences,
        // duration_us, input_tokens, output_tokens); retrievals: (ts,
        // interaction, document, assistant). Interaction 1 has both, 2 steps
        // only, 3 documents only, and 4 shares 1's time.
        conn.execute_batch(
            "INSERT INTO steps VALUES
                 (10, 1, 5, 1, 1, 1, 300, NULL, NULL), (10, 1, 4, 1, 0, 2, 200, 7, NULL),
                 (20, 2, 4, 2, 0, 1, 100, 1, 2), (10, 4, 4, 1, 0, 1, 50, NULL, NULL);
             INSERT INTO retrievals VALUES (10, 1, 9, 1), (10, 1, 8, 1), (30, 3, 9, 2);",
        )
        .expect("rows");

        migrate(&mut conn).expect("migration");

        type Row = (i64, i64, i64, Vec<PackedStep>, Vec<i64>);
        let rows: Vec<Row> = conn
            .prepare("SELECT ts, interaction, assistant, steps, documents FROM interaction_details")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        column(r, 3)?,
                        column(r, 4)?,
                    ))
                })?
                .collect()
            })
            .expect("details");
        let step = |name, first_index, occurrences, duration_us, tokens| PackedStep {
            name,
            first_index,
            occurrences,
            duration_us,
            tokens,
        };
        assert_eq!(
            rows,
            vec![
                (
                    10,
                    1,
                    1,
                    vec![step(4, 0, 2, 200, Some((7, 0))), step(5, 1, 1, 300, None)],
                    vec![8, 9]
                ),
                (10, 4, 1, vec![step(4, 0, 1, 50, None)], vec![]),
                (20, 2, 2, vec![step(4, 0, 1, 100, Some((1, 2)))], vec![]),
                (30, 3, 2, vec![], vec![9]),
            ]
        );
        let old: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('steps', 'retrievals')",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(old, 0);
    }

    /// A v6 store's users keep their keys, registry data and identity: each
    /// 16-byte id becomes the UUID's canonical text, which is how an event
    /// naming that UUID now finds it.
    #[test]
    fn user_ids_become_the_canonical_text_of_their_uuid() {
        let mut conn = store_at(6);
        let id = uuid::Uuid::parse_str("5d1c7e2a-0000-4000-8000-0000000000ab").expect("uuid");
        conn.execute(
            "INSERT INTO users (key, id, registered, email, full_name) VALUES (7, ?1, 1, 'a@b.c', 'Ada')",
            [id.as_bytes().as_slice()],
        )
        .expect("user");

        migrate(&mut conn).expect("migration");

        let row: (i64, String, i64, String, String) = conn
            .query_row(
                "SELECT key, id, registered, email, full_name FROM users",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .expect("user row");
        assert_eq!(
            row,
            (7, id.to_string(), 1, "a@b.c".to_string(), "Ada".to_string())
        );
    }

    /// A v5 store keeps every interaction row through the table's rebuild;
    /// ids are then unique per day and no longer over all time.
    #[test]
    fn interactions_keep_their_rows_and_ids_become_unique_per_day() {
        let mut conn = store_at(5);
        let insert = "INSERT INTO interactions (key, id, ts, assistant, session, cache_hit,
                          input_tokens, output_tokens, cached_input_tokens, cost_nusd, cost_source, model)
                      VALUES (?1, ?2, ?3, 1, 1, 0, 5, 6, 0, 7, 1, 'm')";
        let day = 86_400_000_000_i64;
        conn.execute(insert, rusqlite::params![3, [1u8; 16], 10])
            .expect("row");
        conn.execute(insert, rusqlite::params![4, [2u8; 16], day + 10])
            .expect("row");

        migrate(&mut conn).expect("migration");

        let rows: Vec<(i64, Vec<u8>, i64, String)> = conn
            .prepare("SELECT key, id, ts, model FROM interactions ORDER BY key")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .expect("rows");
        assert_eq!(
            rows,
            vec![
                (3, vec![1; 16], 10, "m".to_string()),
                (4, vec![2; 16], day + 10, "m".to_string())
            ]
        );
        // The same id on another day is the writer's to refuse; on the same day the index refuses it.
        conn.execute(insert, rusqlite::params![5, [1u8; 16], day + 20])
            .expect("another day");
        let same_day = conn.execute(insert, rusqlite::params![6, [1u8; 16], 20]);
        assert!(same_day.is_err(), "{same_day:?}");
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'interactions' ORDER BY name")
            .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
            .expect("indexes");
        assert_eq!(
            indexes,
            [
                "interactions_by_assistant_ts",
                "interactions_by_day_id",
                "interactions_by_ts"
            ]
        );
    }

    /// A v9 store gains what all-time trending and diversity read: per topic
    /// its asked phrasings and canonical phrasing, per assistant Σf, Σf² and
    /// its number of asked topics.
    #[test]
    fn topic_rankings_and_totals_are_built_from_an_older_store() {
        let mut conn = store_at(9);
        // Topic 1 (assistant 1): phrasings 10 (2×, first 50), 11 (2×, first
        // 40: earlier, so canonical), 12 (never asked). Topic 2 (assistant 1):
        // a label asked 3× without a question. Topic 3 (assistant 2): phrasing
        // 13 once. Topic 4: never asked.
        conn.execute_batch(
            "INSERT INTO topics (key, assistant, kind, norm, label, frequency, last_ts) VALUES
                 (1, 1, 1, 'a', NULL, 4, 90), (2, 1, 0, 'b', 'B', 3, 70),
                 (3, 2, 1, 'c', NULL, 1, 5), (4, 2, 1, 'd', NULL, 0, NULL);
             INSERT INTO phrasings (key, topic, text, count, first_ts, last_ts) VALUES
                 (10, 1, 'A?', 2, 50, 90), (11, 1, 'a', 2, 40, 60), (12, 1, 'a!', 0, NULL, NULL),
                 (13, 3, 'c', 1, 5, 5);",
        )
        .expect("rows");

        migrate(&mut conn).expect("migration");

        type Row = (i64, i64, Option<i64>, Option<i64>, Option<i64>);
        let topics: Vec<Row> = conn
            .prepare(
                "SELECT key, variations, canonical, canonical_count, canonical_first
                 FROM topics ORDER BY key",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect()
            })
            .expect("topics");
        assert_eq!(
            topics,
            vec![
                (1, 2, Some(11), Some(2), Some(40)),
                (2, 0, None, None, None),
                (3, 1, Some(13), Some(1), Some(5)),
                (4, 0, None, None, None),
            ]
        );
        let totals: Vec<(i64, i64, i64, i64)> = conn
            .prepare(
                "SELECT assistant, topics, total, squares FROM topic_totals ORDER BY assistant",
            )
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .expect("totals");
        // Assistant 1: topics 1 and 2, F = 4 + 3, Σf² = 16 + 9.
        assert_eq!(totals, vec![(1, 2, 7, 25), (2, 1, 1, 1)]);
    }
}
