//! The stored events written back out as NDJSON lines of the ingest format
//! (docs/ingest.md), so that importing them into an empty store rebuilds the
//! same answers: the registries (assistants, users, connectors, documents)
//! as their last state, then syncs, then interactions in the order they were
//! stored (topic assignment depends on it). Reads one snapshot through a
//! read-only connection and takes no directory lock, so it runs beside
//! `serve`.
//!
//! What ingest derives is given back in the form that derives it again:
//! repeated steps as their repeats, a labelled topic as its first-seen label,
//! an embedding topic as its centroid (a question of that topic joins it
//! again, the nearest centroid being itself), a client's cost as `cost_usd`
//! (catalogue costs are recomputed from the tokens and model).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, Row, params};
use serde::Serialize;
use uuid::Uuid;

use super::details::{PackedStep, column};
use super::{DATABASE_FILE, schema};
use crate::store::StoreError;
use crate::time::Timestamp;

/// Which events to write: interactions and syncs with `since <= time < until`,
/// interactions of one assistant only (with that assistant's registry entry
/// and the users its interactions name).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportFilter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub assistant: Option<Uuid>,
}

/// Lines written, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    pub registry: u64,
    pub syncs: u64,
    pub interactions: u64,
}

/// Writes the events of the store in `data_dir` selected by `filter` to
/// `out`; `progress(done, total)` over the interactions' storage keys.
pub fn export(
    data_dir: &Path,
    filter: &ExportFilter,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportCounts, StoreError> {
    let path = data_dir.join(DATABASE_FILE);
    if !path.is_file() {
        return Err(StoreError::Open(format!(
            "no ragpulse database at {}",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    schema::check_identity(&conn)?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    // One snapshot for every table read below.
    conn.execute_batch("BEGIN")?;
    let mut writer = Lines { out, written: 0 };
    let keys = Keys::load(&conn)?;
    let assistant = match filter.assistant {
        Some(id) => Some(keys.assistant_key(&conn, id)?.unwrap_or(-1)),
        None => None,
    };
    let range = (
        filter.since.unwrap_or(i64::MIN),
        filter.until.unwrap_or(i64::MAX),
    );
    registries(&conn, &keys, assistant, range, &mut writer)?;
    let registry = writer.written;
    syncs(&conn, &keys, range, &mut writer)?;
    let syncs = writer.written - registry;
    interactions(&conn, &keys, assistant, range, &mut writer, progress)?;
    writer.out.flush().map_err(write_error)?;
    Ok(ExportCounts {
        registry,
        syncs,
        interactions: writer.written - registry - syncs,
    })
}

struct Lines<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl Lines<'_> {
    fn line(&mut self, value: &impl Serialize) -> Result<(), StoreError> {
        serde_json::to_writer(&mut *self.out, value)
            .map_err(|e| StoreError::Open(format!("cannot write the export: {e}")))?;
        self.out.write_all(b"\n").map_err(write_error)?;
        self.written += 1;
        Ok(())
    }
}

fn write_error(e: std::io::Error) -> StoreError {
    StoreError::Open(format!("cannot write the export: {e}"))
}

/// Storage keys to public ids, and the topics an interaction names by more
/// than its question.
struct Keys {
    assistants: HashMap<i64, Uuid>,
    connectors: HashMap<i64, Uuid>,
    documents: HashMap<i64, Uuid>,
    step_names: HashMap<i64, String>,
    topics: HashMap<i64, TopicHint>,
}

enum TopicHint {
    Label(String),
    Centroid(Vec<f32>),
}

impl Keys {
    fn load(conn: &Connection) -> Result<Self, StoreError> {
        Ok(Self {
            assistants: uuid_map(conn, "SELECT key, id FROM assistants")?,
            connectors: uuid_map(conn, "SELECT key, id FROM connectors")?,
            documents: uuid_map(conn, "SELECT key, id FROM documents")?,
            step_names: conn
                .prepare("SELECT key, name FROM step_names")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?,
            topics: topic_hints(conn)?,
        })
    }

    fn assistant_key(&self, conn: &Connection, id: Uuid) -> Result<Option<i64>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(conn
            .query_row(
                "SELECT key FROM assistants WHERE id = ?1",
                [id.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn uuid(map: &HashMap<i64, Uuid>, key: i64) -> Uuid {
        map.get(&key).copied().unwrap_or_default()
    }
}

fn uuid_map(conn: &Connection, sql: &str) -> Result<HashMap<i64, Uuid>, StoreError> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map([], |r| Ok((r.get::<_, i64>(0)?, uuid_at(r, 1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(index)?;
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// Labelled topics by their first-seen label, embedding topics by their
/// centroid made unit length; question topics need nothing (the question
/// finds its topic again).
fn topic_hints(conn: &Connection) -> Result<HashMap<i64, TopicHint>, StoreError> {
    let mut hints = HashMap::new();
    let mut labels =
        conn.prepare("SELECT key, coalesce(label, norm) FROM topics WHERE kind = 0")?;
    for row in labels.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
        let (key, label) = row?;
        hints.insert(key, TopicHint::Label(label));
    }
    let mut centroids = conn.prepare("SELECT topic, mean FROM topic_centroids")?;
    for row in centroids.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))? {
        let (key, mean) = row?;
        hints.insert(key, TopicHint::Centroid(unit(&mean)));
    }
    Ok(hints)
}

/// The little-endian f32 vector of `bytes`, scaled to unit length.
fn unit(bytes: &[u8]) -> Vec<f32> {
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let norm = values
        .iter()
        .map(|v| f64::from(*v).powi(2))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return values;
    }
    values
        .iter()
        .map(|v| (f64::from(*v) / norm) as f32)
        .collect()
}

#[derive(Serialize)]
struct AssistantLine {
    r#type: &'static str,
    id: Uuid,
    name: Option<String>,
    model: Option<String>,
}

#[derive(Serialize)]
struct UserLine {
    r#type: &'static str,
    id: String,
    email: Option<String>,
    full_name: Option<String>,
}

#[derive(Serialize)]
struct ConnectorLine {
    r#type: &'static str,
    id: Uuid,
    name: Option<String>,
}

#[derive(Serialize)]
struct DocumentLine {
    r#type: &'static str,
    id: Uuid,
    connector_id: Option<Uuid>,
    file_name: Option<String>,
    updated_at: Option<Timestamp>,
    deleted: bool,
}

/// The registry entries (their last state), registered ones only: an entity
/// only ever referenced is referenced again by the events that follow.
fn registries(
    conn: &Connection,
    keys: &Keys,
    assistant: Option<i64>,
    (since, until): (i64, i64),
    out: &mut Lines<'_>,
) -> Result<(), StoreError> {
    let mut statement = conn.prepare(
        "SELECT id, name, model FROM assistants
         WHERE registered = 1 AND (?1 IS NULL OR key = ?1) ORDER BY key",
    )?;
    let mut rows = statement.query([assistant])?;
    while let Some(r) = rows.next()? {
        out.line(&AssistantLine {
            r#type: "assistant",
            id: uuid_at(r, 0)?,
            name: r.get(1)?,
            model: r.get(2)?,
        })?;
    }
    let mut statement = conn.prepare(
        "SELECT id, email, full_name FROM users u
         WHERE registered = 1 AND (?1 IS NULL OR EXISTS (
             SELECT 1 FROM interactions i
             WHERE i.user = u.key AND i.assistant = ?1 AND i.ts >= ?2 AND i.ts < ?3))
         ORDER BY key",
    )?;
    let mut rows = statement.query(params![assistant, since, until])?;
    while let Some(r) = rows.next()? {
        out.line(&UserLine {
            r#type: "user",
            id: r.get(0)?,
            email: r.get(1)?,
            full_name: r.get(2)?,
        })?;
    }
    let mut statement =
        conn.prepare("SELECT id, name FROM connectors WHERE registered = 1 ORDER BY key")?;
    let mut rows = statement.query([])?;
    while let Some(r) = rows.next()? {
        out.line(&ConnectorLine {
            r#type: "connector",
            id: uuid_at(r, 0)?,
            name: r.get(1)?,
        })?;
    }
    let mut statement = conn.prepare(
        "SELECT id, connector, file_name, updated_at, deleted FROM documents
         WHERE registered = 1 ORDER BY key",
    )?;
    let mut rows = statement.query([])?;
    while let Some(r) = rows.next()? {
        let connector: Option<i64> = r.get(1)?;
        out.line(&DocumentLine {
            r#type: "document",
            id: uuid_at(r, 0)?,
            connector_id: connector.map(|k| Keys::uuid(&keys.connectors, k)),
            file_name: r.get(2)?,
            updated_at: r.get::<_, Option<i64>>(3)?.map(Timestamp),
            deleted: r.get::<_, i64>(4)? != 0,
        })?;
    }
    Ok(())
}

#[derive(Serialize)]
struct SyncLine {
    r#type: &'static str,
    id: Uuid,
    connector_id: Uuid,
    status: &'static str,
    started_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    documents_synced: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn syncs(
    conn: &Connection,
    keys: &Keys,
    (since, until): (i64, i64),
    out: &mut Lines<'_>,
) -> Result<(), StoreError> {
    let mut statement = conn.prepare(
        "SELECT id, connector, status, started_at, duration_us, documents_synced, error
         FROM syncs WHERE started_at >= ?1 AND started_at < ?2 ORDER BY key",
    )?;
    let mut rows = statement.query([since, until])?;
    while let Some(r) = rows.next()? {
        let status = match r.get::<_, i64>(2)? {
            0 => "success",
            1 => "partial",
            _ => "failure",
        };
        out.line(&SyncLine {
            r#type: "connector_sync",
            id: uuid_at(r, 0)?,
            connector_id: Keys::uuid(&keys.connectors, r.get(1)?),
            status,
            started_at: Timestamp(r.get(3)?),
            duration_s: r.get::<_, Option<i64>>(4)?.map(seconds),
            documents_synced: r.get(5)?,
            error: r.get(6)?,
        })?;
    }
    Ok(())
}

fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

fn nano(units: i64) -> f64 {
    units as f64 / 1e9
}

#[derive(Serialize)]
struct InteractionLine<'a> {
    r#type: &'static str,
    id: Uuid,
    timestamp: Timestamp,
    assistant_id: Uuid,
    session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    question: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    question_embedding: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_duration_s: Option<f64>,
    cache_hit: bool,
    input_tokens: i64,
    output_tokens: i64,
    cached_input_tokens: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    steps: Vec<StepLine<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    retrieved_document_ids: Vec<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rerank: Option<RerankLine>,
}

#[derive(Debug, PartialEq, Serialize)]
struct StepLine<'a> {
    name: &'a str,
    duration_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens: Option<i64>,
}

#[derive(Serialize)]
struct RerankLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    score_before: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score_after: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score_improvement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position_change: Option<f64>,
}

/// Interactions report progress every this many rows.
const PROGRESS_EVERY: u64 = 4_096;

fn interactions(
    conn: &Connection,
    keys: &Keys,
    assistant: Option<i64>,
    (since, until): (i64, i64),
    out: &mut Lines<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), StoreError> {
    let last: i64 = conn.query_row("SELECT coalesce(max(key), 0) FROM interactions", [], |r| {
        r.get(0)
    })?;
    let total = u64::try_from(last).unwrap_or(0);
    let mut statement = conn.prepare(
        "SELECT i.key, i.id, i.ts, i.assistant, s.sid, u.id, p.text, i.topic, i.model,
                i.provider, i.ttft_us, i.total_us, i.cache_hit, i.input_tokens,
                i.output_tokens, i.cached_input_tokens, i.cost_nusd, i.cost_source,
                i.rerank_before, i.rerank_after, i.rerank_improvement_n, i.rerank_position_n,
                d.steps, d.documents
         FROM interactions i
         JOIN sessions s ON s.key = i.session
         LEFT JOIN users u ON u.key = i.user
         LEFT JOIN phrasings p ON p.key = i.phrasing
         LEFT JOIN interaction_details d ON d.ts = i.ts AND d.interaction = i.key
         WHERE i.ts >= ?1 AND i.ts < ?2 AND (?3 IS NULL OR i.assistant = ?3)
         ORDER BY i.key",
    )?;
    let mut rows = statement.query(params![since, until, assistant])?;
    let mut seen = 0u64;
    while let Some(r) = rows.next()? {
        let key: i64 = r.get(0)?;
        let packed: Vec<PackedStep> = column(r, 22)?;
        let documents: Vec<i64> = column(r, 23)?;
        let topic = r
            .get::<_, Option<i64>>(7)?
            .and_then(|t| keys.topics.get(&t));
        let rerank = rerank(r)?;
        out.line(&InteractionLine {
            r#type: "interaction",
            id: uuid_at(r, 1)?,
            timestamp: Timestamp(r.get(2)?),
            assistant_id: Keys::uuid(&keys.assistants, r.get(3)?),
            session_id: r.get(4)?,
            user_id: r.get(5)?,
            question: r.get(6)?,
            question_embedding: match topic {
                Some(TopicHint::Centroid(centroid)) => Some(centroid.as_slice()),
                _ => None,
            },
            topic: match topic {
                Some(TopicHint::Label(label)) => Some(label.as_str()),
                _ => None,
            },
            model: r.get(8)?,
            provider: r.get(9)?,
            ttft_s: r.get::<_, Option<i64>>(10)?.map(seconds),
            total_duration_s: r.get::<_, Option<i64>>(11)?.map(seconds),
            cache_hit: r.get::<_, i64>(12)? != 0,
            input_tokens: r.get(13)?,
            output_tokens: r.get(14)?,
            cached_input_tokens: r.get(15)?,
            // Only a client's cost is kept as such; the catalogue's is recomputed.
            cost_usd: (r.get::<_, i64>(17)? == 0)
                .then(|| r.get::<_, i64>(16).map(nano))
                .transpose()?,
            steps: step_list(&packed, &keys.step_names),
            retrieved_document_ids: documents
                .iter()
                .map(|d| Keys::uuid(&keys.documents, *d))
                .collect(),
            rerank,
        })?;
        seen += 1;
        if seen.is_multiple_of(PROGRESS_EVERY) {
            progress(u64::try_from(key).unwrap_or(0), total);
        }
    }
    progress(total, total);
    Ok(())
}

fn rerank(r: &Row<'_>) -> rusqlite::Result<Option<RerankLine>> {
    let line = RerankLine {
        score_before: r.get(18)?,
        score_after: r.get(19)?,
        score_improvement: r.get::<_, Option<i64>>(20)?.map(nano),
        position_change: r.get::<_, Option<i64>>(21)?.map(nano),
    };
    let any = line.score_before.is_some()
        || line.score_after.is_some()
        || line.score_improvement.is_some()
        || line.position_change.is_some();
    Ok(any.then_some(line))
}

/// The `steps` list that ingest sums back into `packed`: each name at the
/// index of its first occurrence with its whole duration and tokens, its
/// other occurrences (0 s, no tokens) in the free places after it.
fn step_list<'a>(packed: &[PackedStep], names: &'a HashMap<i64, String>) -> Vec<StepLine<'a>> {
    let name = |key: i64| names.get(&key).map_or("unknown", String::as_str);
    let length: usize = packed.iter().map(|s| s.occurrences.max(1) as usize).sum();
    let mut slots: Vec<Option<StepLine<'a>>> = (0..length).map(|_| None).collect();
    let mut order: Vec<&PackedStep> = packed.iter().collect();
    order.sort_by_key(|s| s.first_index);
    let mut misplaced = Vec::new();
    for step in &order {
        let first = StepLine {
            name: name(step.name),
            duration_s: seconds(step.duration_us),
            input_tokens: step.tokens.map(|t| t.0),
            output_tokens: step.tokens.map(|t| t.1),
        };
        match slots.get_mut(step.first_index as usize) {
            Some(slot @ None) => *slot = Some(first),
            _ => misplaced.push(first),
        }
    }
    // Repeats, each into a free place after its name's first occurrence
    // (eligible places only grow along the list, so filling in order works).
    let mut repeats: Vec<(u32, &str, u32)> = order
        .iter()
        .map(|s| (s.first_index, name(s.name), s.occurrences.saturating_sub(1)))
        .collect();
    let mut out = Vec::with_capacity(length);
    for (index, slot) in slots.into_iter().enumerate() {
        if let Some(step) = slot {
            out.push(step);
            continue;
        }
        if let Some(step) = misplaced.pop() {
            out.push(step);
            continue;
        }
        if let Some(repeat) = repeats
            .iter_mut()
            .find(|(first, _, left)| *left > 0 && (*first as usize) < index)
        {
            repeat.2 -= 1;
            out.push(StepLine {
                name: repeat.1,
                duration_s: 0.0,
                input_tokens: None,
                output_tokens: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(name: i64, first_index: u32, occurrences: u32, duration_us: i64) -> PackedStep {
        PackedStep {
            name,
            first_index,
            occurrences,
            duration_us,
            tokens: None,
        }
    }

    #[test]
    fn repeated_steps_come_back_after_their_first_occurrence() {
        // retrieval, synthesis, retrieval, retrieval: retrieval 3 times from 0.
        let names = HashMap::from([(1, "retrieval".to_string()), (2, "synthesis".to_string())]);
        let list = step_list(
            &[packed(1, 0, 3, 600_000), packed(2, 1, 1, 2_000_000)],
            &names,
        );
        let got: Vec<(&str, f64)> = list.iter().map(|s| (s.name, s.duration_s)).collect();
        assert_eq!(
            got,
            [
                ("retrieval", 0.6),
                ("synthesis", 2.0),
                ("retrieval", 0.0),
                ("retrieval", 0.0)
            ]
        );
    }

    #[test]
    fn a_step_list_sums_back_to_what_was_stored() {
        // synthesis first, then a retrieval repeated once, reported with tokens.
        let names = HashMap::from([(1, "retrieval".to_string()), (2, "synthesis".to_string())]);
        let mut retrieval = packed(1, 1, 2, 1_500_000);
        retrieval.tokens = Some((10, 0));
        let list = step_list(&[retrieval, packed(2, 0, 1, 250_000)], &names);
        assert_eq!(
            list,
            [
                StepLine {
                    name: "synthesis",
                    duration_s: 0.25,
                    input_tokens: None,
                    output_tokens: None
                },
                StepLine {
                    name: "retrieval",
                    duration_s: 1.5,
                    input_tokens: Some(10),
                    output_tokens: Some(0)
                },
                StepLine {
                    name: "retrieval",
                    duration_s: 0.0,
                    input_tokens: None,
                    output_tokens: None
                },
            ]
        );
    }

    #[test]
    fn a_centroid_is_written_at_unit_length() {
        let bytes: Vec<u8> = [3.0f32, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(unit(&bytes), [0.6, 0.8]);
    }
}
