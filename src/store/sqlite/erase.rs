//! Erasure of one user's data: every interaction they sent with its steps and
//! retrieved documents, the question texts only they asked, their registry
//! entry (name, e-mail), and every derived state that counted them.
//!
//! The writer runs it as a series of steps, each in transactions of its own
//! with ingest commits in between, in an order that leaves a consistent
//! store wherever it stops:
//!
//! 1. the erasure is recorded in `meta` (a crash is reported at the next
//!    start; erasing the user again finishes the work);
//! 2. the user's interactions go in chunks of whole sessions, each chunk in
//!    one transaction with the all-time counters it decrements (topic and
//!    phrasing totals, unpriced models) and its part of every rollup (see
//!    `rollup::subtract`: the rollups match the raw rows after every
//!    chunk), and it records what it touched in `erasure_touched`; the
//!    user's interactions stored while the erasure runs go the same way;
//! 3. what the touched counters derive (canonical phrasings, diversity
//!    totals, last retrievals, phrasings and topics no one asks any more)
//!    is recomputed from what remains, in one transaction;
//! 4. the user's registry entry goes last, so a retry after a crash still
//!    finds the user and finishes the work.
//!
//! A read while it runs sees the user partly erased: some of their
//! interactions gone (from the raw rows and the rollups alike), their
//! per-user tallies gone from the buckets already corrected, and question
//! texts, topics, canonical phrasings and last retrievals as they were
//! until step 3.
//!
//! Deleted content is overwritten (`secure_delete`, on during each step),
//! and the WAL is truncated afterwards, so the erased texts stay in no file.

use std::collections::{HashMap, HashSet, VecDeque};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::details;
use super::rollup::{self, Level, Metric};
use crate::metrics::users::UsersState;
use crate::topics::{TopicKind, topic_key};

type SqlResult<T> = Result<T, rusqlite::Error>;

/// Interactions deleted per transaction: bounds the WAL and the time the
/// writer holds the write lock in one go.
const CHUNK: usize = 2_000;

/// `erasure_touched.kind` of a topic (`a` = topic key).
const TOUCHED_TOPIC: i64 = 0;
/// `erasure_touched.kind` of a document's last retrieval (`a` = document, `b` = assistant).
const TOUCHED_RETRIEVAL: i64 = 1;
/// `erasure_touched.kind` of a session (`a` = session key).
const TOUCHED_SESSION: i64 = 2;

/// A topic whose every interaction was erased while rollups older than the
/// retention cutoff may still count it: it keeps its key, loses its texts,
/// and no lookup finds it again.
const KIND_ERASED: i64 = 3;

/// `meta` key of the user whose erasure is under way.
const ERASING_KEY: &str = "erasing_user";
/// `meta` key present while the erasure under way takes each chunk out of
/// the rollups in the chunk's transaction: the rollups then match the raw
/// rows wherever it stops.
const EXACT_KEY: &str = "erasing_user_exact";

/// What an erasure removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct EraseReport {
    /// The interactions of the user (with their steps and retrieved documents).
    pub interactions: u64,
    /// Question phrasings no one else asked.
    pub phrasings: u64,
    /// Topics no one else asked about.
    pub topics: u64,
    /// The user's registry entry (1, or 0 when the user was only ever named by interactions).
    pub registry_entries: u64,
    /// Rollups corrected to leave the user out (false when the store keeps none).
    pub rollups_rebuilt: bool,
}

/// An erasure under way: the writer runs it one [`step`] at a time, each in
/// transactions of its own, with ingest commits in between.
pub struct Erasure {
    user: i64,
    registered: bool,
    /// The rollups are kept: each chunk is taken out of them as it goes.
    correct: bool,
    /// The user's interactions still to delete, in chunks of whole sessions.
    pending: VecDeque<Vec<Row>>,
    /// Interactions with a greater key were stored after the erasure began:
    /// the user's among them are erased too.
    watermark: i64,
    phase: Phase,
    report: EraseReport,
    started: std::time::Instant,
    /// Seconds from the start to the end of the listing, of the deletions
    /// and of the settling (for the log; waits for ingest included).
    listed_s: f64,
    deleted_s: f64,
    settled_s: f64,
    /// Of the settling: the topic state's and the last retrievals' seconds.
    topics_s: f64,
    retrievals_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Delete,
    Settle,
    Finish,
}

/// Where an erasure stands after a step.
pub enum Progress {
    Running(Box<Erasure>),
    Done(EraseReport),
}

impl Erasure {
    /// True while the next step deletes a chunk of interactions (question
    /// texts and topics stay until the settling step).
    pub fn deleting(&self) -> bool {
        self.phase == Phase::Delete && !self.pending.is_empty()
    }
}

/// Erases the user `user_id` (its canonical form, see `UserId`) in one go;
/// `None` when the store knows no such user. `correct` is false when the
/// store keeps no rollups (or they are to be rebuilt anyway).
pub fn erase_user(
    conn: &mut Connection,
    user_id: &str,
    correct: bool,
) -> SqlResult<Option<EraseReport>> {
    let Some(mut progress) = begin(conn, user_id, correct)? else {
        return Ok(None);
    };
    loop {
        match progress {
            Progress::Done(report) => return Ok(Some(report)),
            Progress::Running(erasure) => progress = step(conn, erasure)?,
        }
    }
}

/// Records the erasure of `user_id` and lists the user's interactions;
/// `None` when the store knows no such user.
pub fn begin(conn: &mut Connection, user_id: &str, correct: bool) -> SqlResult<Option<Progress>> {
    let found: Option<(i64, i64)> = conn
        .query_row(
            "SELECT key, registered FROM users WHERE id = ?1",
            [user_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((user, registered)) = found else {
        return Ok(None);
    };
    let started = std::time::Instant::now();
    let tx = conn.transaction()?;
    rollup::set_meta(&tx, ERASING_KEY, user)?;
    if correct {
        rollup::set_meta(&tx, EXACT_KEY, 1)?;
    } else {
        tx.execute("DELETE FROM meta WHERE key = ?1", [EXACT_KEY])?;
    }
    // The greatest key of another user's row: a row stored later gets a greater one.
    let watermark: i64 = tx
        .query_row(
            "SELECT key FROM interactions WHERE user IS NOT ?1 ORDER BY key DESC LIMIT 1",
            [user],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let pending = chunks(user_interactions(&tx, user, None)?);
    tx.commit()?;
    Ok(Some(Progress::Running(Box::new(Erasure {
        user,
        registered: registered != 0,
        correct,
        pending,
        watermark,
        phase: Phase::Delete,
        report: EraseReport::default(),
        started,
        listed_s: started.elapsed().as_secs_f64(),
        deleted_s: 0.0,
        settled_s: 0.0,
        topics_s: 0.0,
        retrievals_s: 0.0,
    }))))
}

/// Runs the next step of an erasure in transactions of its own: one chunk
/// of interactions, or settling what the deleted ones touched, or the end.
pub fn step(conn: &mut Connection, mut e: Box<Erasure>) -> SqlResult<Progress> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    let result = step_inner(conn, &mut e);
    conn.pragma_update(None, "secure_delete", "FAST")?;
    Ok(match result? {
        true => Progress::Done(std::mem::take(&mut e.report)),
        false => Progress::Running(e),
    })
}

/// True when the erasure is done.
fn step_inner(conn: &mut Connection, e: &mut Erasure) -> SqlResult<bool> {
    match e.phase {
        Phase::Delete => {
            if let Some(chunk) = e.pending.pop_front() {
                let tx = conn.transaction()?;
                delete_chunk(&tx, &chunk, e.correct)?;
                tx.commit()?;
                e.report.interactions += chunk.len() as u64;
                return Ok(false);
            }
            // What was stored for the user while the erasure ran goes too.
            e.pending = chunks(user_interactions(conn, e.user, Some(e.watermark))?);
            if e.pending.is_empty() {
                e.phase = Phase::Settle;
                e.deleted_s = e.started.elapsed().as_secs_f64();
            }
            Ok(false)
        }
        Phase::Settle => {
            let tx = conn.transaction()?;
            let started = std::time::Instant::now();
            let (phrasings, topics) = settle_topics(&tx)?;
            e.report.phrasings = phrasings;
            e.report.topics = topics;
            e.topics_s = started.elapsed().as_secs_f64();
            settle_unpriced(&tx)?;
            let started = std::time::Instant::now();
            settle_last_retrievals(&tx)?;
            e.retrievals_s = started.elapsed().as_secs_f64();
            if !e.correct {
                settle_sessions(&tx)?;
            }
            tx.execute("DELETE FROM erasure_touched", [])?;
            tx.commit()?;
            e.report.rollups_rebuilt = e.correct && e.report.interactions > 0;
            e.phase = Phase::Finish;
            e.settled_s = e.started.elapsed().as_secs_f64();
            Ok(false)
        }
        Phase::Finish => {
            let tx = conn.transaction()?;
            forget_in_retained_rollups(&tx, e.user)?;
            tx.execute("DELETE FROM users WHERE key = ?1", [e.user])?;
            e.report.registry_entries = u64::from(e.registered);
            tx.execute(
                "DELETE FROM meta WHERE key IN (?1, ?2)",
                [ERASING_KEY, EXACT_KEY],
            )?;
            tx.commit()?;
            tracing::info!(
                interactions = e.report.interactions,
                listed_s = e.listed_s,
                deleted_s = e.deleted_s - e.listed_s,
                settled_s = e.settled_s - e.deleted_s,
                settled_topics_s = e.topics_s,
                settled_last_retrievals_s = e.retrievals_s,
                seconds = e.started.elapsed().as_secs_f64(),
                "erasure: rows deleted, rollups corrected"
            );
            Ok(true)
        }
    }
}

/// The user's interactions in chunks of about [`CHUNK`], each holding
/// whole sessions (a session's rows go, and its buckets are recounted, at
/// once), sessions in the order they began: a chunk then touches the
/// rollups of a few days, and each day's rows are rewritten about once.
fn chunks(rows: Vec<Row>) -> VecDeque<Vec<Row>> {
    let mut sessions: HashMap<i64, Vec<Row>> = HashMap::new();
    for row in rows {
        sessions.entry(row.session).or_default().push(row);
    }
    let mut sessions: Vec<Vec<Row>> = sessions.into_values().collect();
    for rows in &mut sessions {
        rows.sort_unstable_by_key(|r| (r.ts, r.key));
    }
    sessions.sort_unstable_by_key(|rows| rows.first().map(|r| (r.ts, r.key)));
    let mut out = VecDeque::new();
    let mut current: Vec<Row> = Vec::new();
    for rows in sessions {
        if current.len() + rows.len() > CHUNK && !current.is_empty() {
            out.push_back(std::mem::take(&mut current));
        }
        current.extend(rows);
    }
    if !current.is_empty() {
        out.push_back(current);
    }
    out
}

/// An erasure that a crash interrupted, if any (its user's key).
pub fn interrupted(conn: &Connection) -> SqlResult<Option<i64>> {
    rollup::meta(conn, ERASING_KEY)
}

/// At open: true when an erasure was interrupted (erasing the user again
/// finishes it). One that did not correct the rollups chunk by chunk may
/// have left them counting rows it deleted: they are marked for a rebuild.
pub fn recover(conn: &Connection) -> SqlResult<bool> {
    if interrupted(conn)?.is_none() {
        return Ok(false);
    }
    if rollup::meta(conn, EXACT_KEY)?.is_none() {
        rollup::forget(conn)?;
    }
    Ok(true)
}

/// Truncates the WAL, so the pages of erased rows written there are gone
/// from disk too. Readers between requests hold no snapshot; one that does
/// is waited for (busy timeout), a few times.
pub fn truncate_wal(conn: &Connection) -> SqlResult<bool> {
    for _ in 0..20 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(true);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(false)
}

/// One interaction of the user.
#[derive(Debug, Clone, Copy)]
struct Row {
    key: i64,
    ts: i64,
    session: i64,
}

/// The user's interactions (those with a key above `after`, when given).
fn user_interactions(conn: &Connection, user: i64, after: Option<i64>) -> SqlResult<Vec<Row>> {
    let read = |r: &rusqlite::Row<'_>| {
        Ok(Row {
            key: r.get(0)?,
            ts: r.get(1)?,
            session: r.get(2)?,
        })
    };
    match after {
        // The time index carries the user and the session: a covering scan.
        None => conn
            .prepare("SELECT key, ts, session FROM interactions INDEXED BY interactions_by_ts WHERE user = ?1")?
            .query_map([user], read)?
            .collect(),
        Some(key) => conn
            .prepare("SELECT key, ts, session FROM interactions WHERE key > ?1 AND user = ?2")?
            .query_map([key, user], read)?
            .collect(),
    }
}

/// Deletes one chunk of the user's interactions with their details, takes
/// them off the all-time counters (and off the rollups when `correct`), and
/// records what they touched.
fn delete_chunk(conn: &Connection, chunk: &[Row], correct: bool) -> SqlResult<()> {
    let facts = if correct {
        let rows: Vec<(i64, i64)> = chunk.iter().map(|r| (r.key, r.ts)).collect();
        rollup::subtract::facts(conn, &rows)?
    } else {
        Vec::new()
    };
    let mut topics: HashMap<i64, i64> = HashMap::new();
    let mut phrasings: HashMap<i64, i64> = HashMap::new();
    let mut unpriced: HashMap<String, i64> = HashMap::new();
    let mut retrievals: HashSet<(i64, i64)> = HashSet::new();
    let mut sessions: HashSet<i64> = HashSet::new();
    {
        let mut read = conn.prepare_cached(
            "DELETE FROM interactions WHERE key = ?1
             RETURNING topic, phrasing, cost_source, coalesce(priced_model, '(none)'), assistant,
                 session",
        )?;
        let mut details = conn.prepare_cached(
            "DELETE FROM interaction_details WHERE ts = ?1 AND interaction = ?2 RETURNING documents",
        )?;
        for &Row { key, ts, .. } in chunk {
            let found = read
                .query_row([key], |r| {
                    Ok((
                        r.get::<_, Option<i64>>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .optional()?;
            let Some((topic, phrasing, source, model, assistant, session)) = found else {
                continue;
            };
            sessions.insert(session);
            if let Some(topic) = topic {
                *topics.entry(topic).or_default() += 1;
            }
            if let Some(phrasing) = phrasing {
                *phrasings.entry(phrasing).or_default() += 1;
            }
            if source == super::writer::COST_UNPRICED {
                *unpriced.entry(model).or_default() += 1;
            }
            let documents: Option<Vec<i64>> = details
                .query_row(params![ts, key], |r| details::column(r, 0))
                .optional()?;
            for document in documents.unwrap_or_default() {
                retrievals.insert((document, assistant));
            }
        }
    }
    let mut touch = conn
        .prepare_cached("INSERT OR IGNORE INTO erasure_touched (kind, a, b) VALUES (?1, ?2, ?3)")?;
    let mut stmt =
        conn.prepare_cached("UPDATE topics SET frequency = frequency - ?2 WHERE key = ?1")?;
    for (topic, n) in topics {
        stmt.execute(params![topic, n])?;
        touch.execute(params![TOUCHED_TOPIC, topic, 0])?;
    }
    let mut stmt = conn.prepare_cached("UPDATE phrasings SET count = count - ?2 WHERE key = ?1")?;
    for (phrasing, n) in phrasings {
        stmt.execute(params![phrasing, n])?;
    }
    let mut stmt =
        conn.prepare_cached("UPDATE unpriced_models SET count = count - ?2 WHERE model = ?1")?;
    for (model, n) in unpriced {
        stmt.execute(params![model, n])?;
    }
    for (document, assistant) in retrievals {
        touch.execute(params![TOUCHED_RETRIEVAL, document, assistant])?;
    }
    if correct {
        rollup::subtract::subtract(conn, &facts, retention_cutoff(conn)?)?;
    } else {
        for session in sessions {
            touch.execute(params![TOUCHED_SESSION, session, 0])?;
        }
    }
    Ok(())
}

/// What remains of a phrasing or topic in the raw rows: (count, first, last).
type Remaining = HashMap<i64, (i64, i64, i64)>;

/// Recomputes the touched topics from their counters and remaining rows:
/// phrasings and topics no longer asked go (their texts with them), first
/// and last times come from the remaining rows when those hold every
/// asking (retention may have deleted older ones), and the canonical
/// phrasing, the number of phrasings and the assistant's diversity totals
/// follow. Returns (phrasings deleted, topics deleted).
fn settle_topics(conn: &Connection) -> SqlResult<(u64, u64)> {
    let touched: Vec<i64> = {
        let mut stmt = conn.prepare("SELECT a FROM erasure_touched WHERE kind = ?1")?;
        let rows = stmt.query_map([TOUCHED_TOPIC], |r| r.get(0))?;
        rows.collect::<SqlResult<_>>()?
    };
    if touched.is_empty() {
        return Ok((0, 0));
    }
    let (by_phrasing, by_topic) = remaining(conn)?;
    let mut aliases = touched_aliases(conn)?;
    let retained_rollups = retention_cutoff(conn)?.is_some();
    let mut deleted_phrasings = 0;
    let mut deleted_topics = 0;
    let mut assistants = HashSet::new();
    for topic in touched {
        let Some((assistant, kind, frequency)) = conn
            .query_row(
                "SELECT assistant, kind, frequency FROM topics WHERE key = ?1",
                [topic],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()?
        else {
            continue;
        };
        assistants.insert(assistant);
        deleted_phrasings += settle_phrasings(conn, topic, &by_phrasing)?;
        if frequency <= 0 {
            forget_topic(conn, topic, retained_rollups, aliases.remove(&topic))?;
            deleted_topics += 1;
            continue;
        }
        if let Some(&(count, _, last)) = by_topic.get(&topic)
            && count == frequency
        {
            conn.execute(
                "UPDATE topics SET last_ts = ?2 WHERE key = ?1",
                params![topic, last],
            )?;
        }
        conn.execute(SETTLE_CANONICAL, [topic])?;
        if kind == TopicKind::Question as i64 {
            settle_norm(conn, topic, aliases.remove(&topic))?;
        }
    }
    for assistant in assistants {
        conn.execute("DELETE FROM topic_totals WHERE assistant = ?1", [assistant])?;
        conn.execute(
            "INSERT INTO topic_totals (assistant, topics, total, squares)
             SELECT assistant, count(*), sum(frequency), sum(frequency * frequency)
             FROM topics WHERE assistant = ?1 AND frequency > 0 GROUP BY assistant",
            [assistant],
        )?;
    }
    Ok((deleted_phrasings, deleted_topics))
}

/// The counts and times of the touched topics' remaining interactions, per
/// phrasing and per topic: one pass over the interactions.
fn remaining(conn: &Connection) -> SqlResult<(Remaining, Remaining)> {
    let mut by_phrasing = Remaining::new();
    let mut by_topic = Remaining::new();
    let mut stmt = conn.prepare(
        "SELECT topic, phrasing, ts FROM interactions
         WHERE topic IN (SELECT a FROM erasure_touched WHERE kind = ?1)",
    )?;
    let mut rows = stmt.query([TOUCHED_TOPIC])?;
    let fold = |map: &mut Remaining, key: i64, ts: i64| {
        let entry = map.entry(key).or_insert((0, ts, ts));
        entry.0 += 1;
        entry.1 = entry.1.min(ts);
        entry.2 = entry.2.max(ts);
    };
    while let Some(r) = rows.next()? {
        let ts: i64 = r.get(2)?;
        fold(&mut by_topic, r.get(0)?, ts);
        if let Some(phrasing) = r.get::<_, Option<i64>>(1)? {
            fold(&mut by_phrasing, phrasing, ts);
        }
    }
    Ok((by_phrasing, by_topic))
}

/// A topic's phrasings: those no longer asked go, the others take their
/// first and last times from the remaining rows when those hold every asking.
fn settle_phrasings(conn: &Connection, topic: i64, remaining: &Remaining) -> SqlResult<u64> {
    let phrasings: Vec<(i64, i64)> = {
        let mut stmt = conn.prepare_cached("SELECT key, count FROM phrasings WHERE topic = ?1")?;
        let rows = stmt.query_map([topic], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<SqlResult<_>>()?
    };
    let mut deleted = 0;
    for (key, count) in phrasings {
        if count <= 0 {
            conn.execute("DELETE FROM phrasings WHERE key = ?1", [key])?;
            deleted += 1;
        } else if let Some(&(n, first, last)) = remaining.get(&key)
            && n == count
        {
            conn.execute(
                "UPDATE phrasings SET first_ts = ?2, last_ts = ?3 WHERE key = ?1",
                params![key, first, last],
            )?;
        }
    }
    Ok(deleted)
}

/// The canonical phrasing of topic ?1 by the canonical rule, and its number
/// of asked phrasings (as schema v10 computes them).
const SETTLE_CANONICAL: &str = "UPDATE topics SET
    variations = (SELECT count(*) FROM phrasings p WHERE p.topic = topics.key AND p.count > 0),
    canonical = (SELECT p.key FROM phrasings p WHERE p.topic = topics.key AND p.count > 0
                 ORDER BY p.count DESC, p.first_ts, p.key LIMIT 1),
    canonical_count = (SELECT p.count FROM phrasings p WHERE p.topic = topics.key AND p.count > 0
                 ORDER BY p.count DESC, p.first_ts, p.key LIMIT 1),
    canonical_first = (SELECT p.first_ts FROM phrasings p WHERE p.topic = topics.key AND p.count > 0
                 ORDER BY p.count DESC, p.first_ts, p.key LIMIT 1)
    WHERE key = ?1";

/// A topic no one asks any more: gone, with its aliases and centroid; or,
/// when rollups older than the retention cutoff may still count it, kept
/// as a key without texts that no lookup finds.
fn forget_topic(
    conn: &Connection,
    topic: i64,
    retained_rollups: bool,
    aliases: Option<Vec<(i64, String)>>,
) -> SqlResult<()> {
    for (assistant, norm) in aliases.unwrap_or_default() {
        delete_alias(conn, assistant, &norm)?;
    }
    conn.execute("DELETE FROM topic_centroids WHERE topic = ?1", [topic])?;
    conn.execute("DELETE FROM phrasings WHERE topic = ?1", [topic])?;
    if retained_rollups {
        conn.execute(
            "UPDATE topics SET kind = ?2, norm = CAST(key AS TEXT), label = NULL, frequency = 0,
                variations = 0, canonical = NULL, canonical_count = NULL, canonical_first = NULL
             WHERE key = ?1",
            params![topic, KIND_ERASED],
        )?;
    } else {
        conn.execute("DELETE FROM topics WHERE key = ?1", [topic])?;
    }
    Ok(())
}

/// A question topic keeps the normalised text of a phrasing still asked:
/// its own when one is, else its canonical phrasing's; and its aliases keep
/// only the texts still asked.
fn settle_norm(
    conn: &Connection,
    topic: i64,
    aliases: Option<Vec<(i64, String)>>,
) -> SqlResult<()> {
    let norms: HashSet<String> = {
        let mut stmt =
            conn.prepare_cached("SELECT text FROM phrasings WHERE topic = ?1 AND count > 0")?;
        let rows = stmt.query_map([topic], |r| r.get::<_, String>(0))?;
        rows.map(|text| text.map(|t| question_norm(&t)))
            .collect::<SqlResult<_>>()?
    };
    for (assistant, alias) in aliases.unwrap_or_default() {
        if !norms.contains(&alias) {
            delete_alias(conn, assistant, &alias)?;
        }
    }
    let norm: String = conn.query_row("SELECT norm FROM topics WHERE key = ?1", [topic], |r| {
        r.get(0)
    })?;
    if norms.contains(&norm) {
        return Ok(());
    }
    let canonical: Option<String> = conn
        .query_row(
            "SELECT p.text FROM topics t JOIN phrasings p ON p.key = t.canonical WHERE t.key = ?1",
            [topic],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(text) = canonical {
        // Another topic holding that text already would have taken its askings.
        conn.execute(
            "UPDATE OR IGNORE topics SET norm = ?2 WHERE key = ?1",
            params![topic, question_norm(&text)],
        )?;
    }
    Ok(())
}

/// The aliases of the touched topics, by topic: one pass over the aliases
/// (their key is the text, not the topic).
fn touched_aliases(conn: &Connection) -> SqlResult<HashMap<i64, Vec<(i64, String)>>> {
    let mut out: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT topic, assistant, norm FROM topic_aliases
         WHERE topic IN (SELECT a FROM erasure_touched WHERE kind = ?1)",
    )?;
    let mut rows = stmt.query([TOUCHED_TOPIC])?;
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?)
            .or_default()
            .push((r.get(1)?, r.get(2)?));
    }
    Ok(out)
}

fn delete_alias(conn: &Connection, assistant: i64, norm: &str) -> SqlResult<()> {
    conn.prepare_cached("DELETE FROM topic_aliases WHERE assistant = ?1 AND norm = ?2")?
        .execute(params![assistant, norm])?;
    Ok(())
}

fn question_norm(text: &str) -> String {
    topic_key(None, Some(text), false).map_or_else(String::new, |k| k.norm)
}

/// Unpriced models no longer seen go; the others take their first and last
/// times from the remaining rows when those hold every one.
fn settle_unpriced(conn: &Connection) -> SqlResult<()> {
    conn.execute("DELETE FROM unpriced_models WHERE count <= 0", [])?;
    conn.execute(
        "UPDATE unpriced_models SET
            first_seen = coalesce((SELECT min(ts) FROM interactions i
                WHERE i.cost_source = 2 AND coalesce(i.priced_model, '(none)') = unpriced_models.model), first_seen),
            last_seen = coalesce((SELECT max(ts) FROM interactions i
                WHERE i.cost_source = 2 AND coalesce(i.priced_model, '(none)') = unpriced_models.model), last_seen)
         WHERE count = (SELECT count(*) FROM interactions i
                WHERE i.cost_source = 2 AND coalesce(i.priced_model, '(none)') = unpriced_models.model)",
        [],
    )?;
    Ok(())
}

/// The last retrieval of each touched (document, assistant): the latest of
/// the remaining interactions' retrievals, found by walking each
/// assistant's details from the newest; a pair no remaining interaction
/// retrieved goes.
fn settle_last_retrievals(conn: &Connection) -> SqlResult<()> {
    let mut pending: HashMap<i64, HashSet<i64>> = HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT a, b FROM erasure_touched WHERE kind = ?1")?;
        let mut rows = stmt.query([TOUCHED_RETRIEVAL])?;
        while let Some(r) = rows.next()? {
            pending.entry(r.get(1)?).or_default().insert(r.get(0)?);
        }
    }
    let mut found: Vec<(i64, i64, i64)> = Vec::new();
    for (assistant, mut documents) in pending.clone() {
        let mut stmt = conn.prepare_cached(
            "SELECT ts, documents FROM interaction_details
             WHERE assistant = ?1 AND documents IS NOT NULL ORDER BY ts DESC",
        )?;
        let mut rows = stmt.query([assistant])?;
        while !documents.is_empty()
            && let Some(r) = rows.next()?
        {
            let ts: i64 = r.get(0)?;
            let retrieved: Vec<i64> = details::column(r, 1)?;
            for document in retrieved {
                if documents.remove(&document) {
                    found.push((document, assistant, ts));
                }
            }
        }
    }
    for (assistant, documents) in pending {
        for document in documents {
            conn.execute(
                "DELETE FROM last_retrievals WHERE document = ?1 AND assistant = ?2",
                params![document, assistant],
            )?;
        }
    }
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO last_retrievals (document, assistant, ts) VALUES (?1, ?2, ?3)",
    )?;
    for (document, assistant, ts) in found {
        stmt.execute(params![document, assistant, ts])?;
    }
    Ok(())
}

/// Sessions the user alone had go from the registry of session ids (one
/// pass over the time index, which carries the session).
fn settle_sessions(conn: &Connection) -> SqlResult<()> {
    conn.execute(
        "DELETE FROM sessions WHERE key IN (SELECT a FROM erasure_touched WHERE kind = ?1)
         AND key NOT IN (SELECT session FROM interactions
                         WHERE session IN (SELECT a FROM erasure_touched WHERE kind = ?1))",
        [TOUCHED_SESSION],
    )?;
    Ok(())
}

/// The first instant whose raw rows retention keeps (µs, a day's start),
/// once retention has run.
pub fn retention_cutoff(conn: &Connection) -> SqlResult<Option<i64>> {
    rollup::meta(conn, super::retention::CUTOFF_KEY)
}

/// Rollups older than the retention cutoff are not rebuilt (their raw rows
/// are gone): the user leaves their per-user states there. Their other,
/// anonymous counts stay.
fn forget_in_retained_rollups(conn: &Connection, user: i64) -> SqlResult<()> {
    let Some(cutoff) = retention_cutoff(conn)? else {
        return Ok(());
    };
    let day = Level::Day.bucket(cutoff);
    for (level, end) in [(Level::Hour, day * 24), (Level::Day, day)] {
        let mut changed = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT rowid, state FROM rollups WHERE metric = ?1 AND level = ?2 AND bucket < ?3",
            )?;
            let mut rows = stmt.query(params![Metric::Users as i64, level as i64, end])?;
            while let Some(r) = rows.next()? {
                let mut state: UsersState = rollup::decode(r.get_ref(1)?.as_blob()?)?;
                if state.forget(user) {
                    changed.push((r.get::<_, i64>(0)?, rollup::encode(&state)?));
                }
            }
        }
        for (rowid, state) in changed {
            conn.execute(
                "UPDATE rollups SET state = ?2 WHERE rowid = ?1",
                params![rowid, state],
            )?;
        }
    }
    let mut changed = Vec::new();
    {
        let mut stmt =
            conn.prepare("SELECT id, state FROM rollup_deltas WHERE metric = ?1 AND bucket < ?2")?;
        let mut rows = stmt.query(params![Metric::Users as i64, day * 24])?;
        while let Some(r) = rows.next()? {
            let mut state: UsersState = rollup::decode(r.get_ref(1)?.as_blob()?)?;
            if state.forget(user) {
                changed.push((r.get::<_, i64>(0)?, rollup::encode(&state)?));
            }
        }
    }
    for (id, state) in changed {
        conn.execute(
            "UPDATE rollup_deltas SET state = ?2 WHERE id = ?1",
            params![id, state],
        )?;
    }
    rollup::bump_past_version(conn)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ingest::ingest_values;
    use crate::ingest::validate::EventLimits;

    const USER: &str = "5f0c1a2e-0000-4000-8000-000000000001";

    /// A store holding `n` interactions of `USER` and one of another user.
    fn stored(dir: &std::path::Path, n: usize) -> Connection {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let store = crate::store::sqlite::open_for_test(dir);
            let now = crate::time::Timestamp::now().0;
            let events: Vec<(usize, serde_json::Value)> = (0..=n)
                .map(|i| {
                    let ts = crate::time::Timestamp(now - (i as i64 + 1) * 60_000_000);
                    let user = if i == n { "someone-else" } else { USER };
                    (
                        i,
                        json!({"type": "interaction", "id": uuid::Uuid::new_v4(),
                               "timestamp": ts.to_rfc3339(), "assistant_id": uuid::Uuid::from_u128(7),
                               "session_id": format!("s{i}"), "user_id": user,
                               "question": format!("question {i}"), "input_tokens": 3, "output_tokens": 4}),
                    )
                })
                .collect();
            let outcome = ingest_values(&store, events, &EventLimits::default())
                .await
                .expect("ingest");
            assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
            store.close().await;
        });
        Connection::open(dir.join(crate::store::sqlite::DATABASE_FILE)).expect("open")
    }

    fn rows_of(conn: &Connection, user: i64) -> i64 {
        conn.query_row(
            "SELECT count(*) FROM interactions WHERE user = ?1",
            [user],
            |r| r.get(0),
        )
        .expect("count")
    }

    /// Stores one more interaction of `user` (a copy of one of theirs), as
    /// ingest would between two steps of the erasure.
    fn store_another(conn: &Connection, user: i64) {
        conn.execute_batch(&format!(
            "CREATE TEMP TABLE copy AS SELECT * FROM interactions WHERE user = {user} LIMIT 1;
             UPDATE copy SET key = NULL, id = randomblob(16), ts = ts + 1;
             INSERT INTO interactions SELECT * FROM copy;
             DROP TABLE copy;"
        ))
        .expect("copy");
    }

    #[test]
    fn interactions_of_the_user_stored_while_the_erasure_runs_are_erased_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = stored(dir.path(), 5);
        let user: i64 = conn
            .query_row("SELECT key FROM users WHERE id = ?1", [USER], |r| r.get(0))
            .expect("user");
        let Some(mut progress) = begin(&mut conn, USER, false).expect("begin") else {
            panic!("the user is stored");
        };
        let mut steps = 0;
        let report = loop {
            match progress {
                Progress::Done(report) => break report,
                Progress::Running(erasure) => {
                    // Stored after the listing, before the first chunk went.
                    if steps == 0 {
                        store_another(&conn, user);
                    }
                    steps += 1;
                    progress = step(&mut conn, erasure).expect("step");
                }
            }
        };
        assert_eq!(report.interactions, 6);
        assert_eq!(rows_of(&conn, user), 0);
        let others: i64 = conn
            .query_row("SELECT count(*) FROM interactions", [], |r| r.get(0))
            .expect("count");
        assert_eq!(others, 1, "the other user's interaction stays");
        assert_eq!(interrupted(&conn).expect("meta"), None);
    }

    #[test]
    fn chunks_hold_whole_sessions_in_the_order_they_began() {
        let row = |key, ts, session| Row { key, ts, session };
        // Session 9 began first; session 1's rows come later in time.
        let mut rows = vec![row(1, 50, 1), row(2, 10, 9), row(3, 60, 1), row(4, 20, 9)];
        for key in 5..(5 + CHUNK as i64) {
            rows.push(row(key, 100 + key, 2));
        }
        let chunks = chunks(rows);
        let sessions: Vec<Vec<i64>> = chunks
            .iter()
            .map(|c| {
                let mut s: Vec<i64> = c.iter().map(|r| r.session).collect();
                s.dedup();
                s
            })
            .collect();
        assert_eq!(sessions, vec![vec![9, 1], vec![2]]);
        assert_eq!(
            chunks[0].iter().map(|r| r.ts).collect::<Vec<_>>(),
            [10, 20, 50, 60]
        );
    }
}
