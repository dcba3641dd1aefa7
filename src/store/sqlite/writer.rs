//! The single writer: one thread owns the write connection and commits the
//! batches handed to it in groups, one transaction (one fsync) per group, so
//! concurrent requests share the cost of durability. A request is answered
//! only after its group committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::reprice::{RepriceReport, RepriceRequest, reprice};
use super::rollup::write::{Interaction, Rollups};
use crate::analytics::metrics::steps::StepSample;
use crate::ingest::event::*;
use crate::pricing::Catalogue;
use crate::store::{AppendOutcome, Batch, StoreError};
use crate::telemetry::Telemetry;
use crate::time::{MICROS_PER_DAY, Timestamp};
use crate::topics::centroids::{Assignment, CentroidIndex, from_bytes, to_bytes};
use crate::topics::lexical::LexicalIndex;
use crate::topics::{TopicKey, TopicKind};

/// Stop gathering more batches into one transaction past this many events:
/// keeps the latency of the first request in a group bounded.
const GROUP_MAX_EVENTS: usize = 50_000;
/// Key caches are dropped past this size: memory stays bounded, lookups fall back to SQL.
const CACHE_MAX_ENTRIES: usize = 1_000_000;

pub struct WriteRequest {
    pub batch: Batch,
    pub reply: oneshot::Sender<Reply>,
}

/// The outcome, and the batch handed back so that freeing its memory happens
/// on the requester's thread rather than the writer's.
pub struct Reply {
    pub result: Result<AppendOutcome, StoreError>,
    pub batch: Batch,
}

/// Cost provenance stored with each interaction.
pub(super) const COST_CLIENT: i64 = 0;
pub(super) const COST_CATALOGUE: i64 = 1;
pub(super) const COST_UNPRICED: i64 = 2;

/// One job for the writer: a batch of events, or a reprice.
pub enum Job {
    Write(WriteRequest),
    Reprice {
        request: RepriceRequest,
        reply: oneshot::Sender<Result<RepriceReport, StoreError>>,
    },
    /// Seals the rollup days before `today` as if the clock had passed midnight.
    #[cfg(test)]
    Seal {
        today: i64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

pub struct Writer {
    conn: Connection,
    catalogue: Arc<Catalogue>,
    telemetry: Arc<Telemetry>,
    data_version: Arc<AtomicU64>,
    topic_threshold: f32,
    caches: Caches,
    rollups: RollupMode,
}

/// Whether and how the writer keeps rollups.
enum RollupMode {
    Off,
    /// In-memory states may not match the database (after a rollback or a
    /// reprice): reloaded at the next write.
    Stale,
    Ready(Box<Rollups>),
}

/// Today, as a day number since the epoch (UTC): days before it get sealed.
fn today() -> i64 {
    Timestamp::now().0.div_euclid(MICROS_PER_DAY)
}

/// Surrogate keys already resolved. Only valid for committed rows, so they are
/// cleared whenever a transaction rolls back.
#[derive(Default)]
struct Caches {
    assistants: HashMap<Uuid, i64>,
    users: HashMap<Uuid, i64>,
    connectors: HashMap<Uuid, i64>,
    documents: HashMap<Uuid, i64>,
    sessions: HashMap<String, i64>,
    step_names: HashMap<String, i64>,
    topics: HashMap<(i64, TopicKey), i64>,
    phrasings: HashMap<(i64, String), i64>,
    assistant_models: HashMap<i64, Option<String>>,
    centroids: HashMap<i64, CentroidIndex>,
    lexical: HashMap<i64, LexicalIndex>,
}

impl Caches {
    fn len(&self) -> usize {
        self.assistants.len()
            + self.users.len()
            + self.connectors.len()
            + self.documents.len()
            + self.sessions.len()
            + self.step_names.len()
            + self.topics.len()
            + self.phrasings.len()
            + self.assistant_models.len()
            + self
                .centroids
                .values()
                .map(CentroidIndex::len)
                .sum::<usize>()
            + self.lexical.values().map(LexicalIndex::len).sum::<usize>()
    }
}

/// Registry tables share one shape: `key`, `id` (16-byte UUID), `registered`.
#[derive(Clone, Copy)]
enum Registry {
    Assistants,
    Users,
    Connectors,
    Documents,
}

/// Tables that intern a text (`key`, text column) the way registries intern ids.
#[derive(Clone, Copy)]
enum Names {
    Sessions,
    StepNames,
}

impl Names {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Names::Sessions => ("sessions", "sid"),
            Names::StepNames => ("step_names", "name"),
        }
    }

    fn cache(self, caches: &mut Caches) -> &mut HashMap<String, i64> {
        match self {
            Names::Sessions => &mut caches.sessions,
            Names::StepNames => &mut caches.step_names,
        }
    }
}

impl Registry {
    fn table(self) -> &'static str {
        match self {
            Registry::Assistants => "assistants",
            Registry::Users => "users",
            Registry::Connectors => "connectors",
            Registry::Documents => "documents",
        }
    }

    fn cache(self, caches: &mut Caches) -> &mut HashMap<Uuid, i64> {
        match self {
            Registry::Assistants => &mut caches.assistants,
            Registry::Users => &mut caches.users,
            Registry::Connectors => &mut caches.connectors,
            Registry::Documents => &mut caches.documents,
        }
    }
}

impl Writer {
    pub fn new(
        conn: Connection,
        catalogue: Arc<Catalogue>,
        telemetry: Arc<Telemetry>,
        data_version: Arc<AtomicU64>,
        topic_threshold: f32,
        maintain_rollups: bool,
    ) -> Self {
        Self {
            conn,
            catalogue,
            telemetry,
            data_version,
            topic_threshold,
            caches: Caches::default(),
            rollups: if maintain_rollups {
                RollupMode::Stale
            } else {
                RollupMode::Off
            },
        }
    }

    /// Runs until every sender is gone, then returns (the channel drains first).
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut held: Option<Job> = None;
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match rx.blocking_recv() {
                    Some(job) => job,
                    None => break,
                },
            };
            let first = match first {
                Job::Write(request) => request,
                Job::Reprice { request, reply } => {
                    let _ = reply.send(self.reprice(&request));
                    continue;
                }
                #[cfg(test)]
                Job::Seal { today, reply } => {
                    let _ = reply.send(self.seal(today));
                    continue;
                }
            };
            let mut group = vec![first];
            let mut events = group[0].batch.events.len();
            while events < GROUP_MAX_EVENTS {
                match rx.try_recv() {
                    Ok(Job::Write(next)) => {
                        events += next.batch.events.len();
                        group.push(next);
                    }
                    // A reprice waits for the group gathered before it.
                    Ok(other) => {
                        held = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        tracing::info!("writer stopped: every queued batch is committed");
    }

    #[cfg(test)]
    fn seal(&mut self, today: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let mut rollups = Rollups::open(&tx, today)?;
        rollups.seal(&tx, today)?;
        tx.commit()?;
        self.rollups = RollupMode::Stale;
        Ok(())
    }

    fn reprice(&mut self, request: &RepriceRequest) -> Result<RepriceReport, StoreError> {
        let result = reprice(&mut self.conn, &self.catalogue, request);
        // The reprice rewrote cost rollups behind the cached states.
        if !matches!(self.rollups, RollupMode::Off) {
            self.rollups = RollupMode::Stale;
        }
        // Costs are part of every cached answer.
        self.data_version.fetch_add(1, Ordering::Release);
        result.map_err(StoreError::Sqlite)
    }

    fn commit_group(&mut self, group: Vec<WriteRequest>) {
        let started = std::time::Instant::now();
        let batches: Vec<&Batch> = group.iter().map(|r| &r.batch).collect();
        let result = self.write(&batches);
        self.telemetry
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok((outcomes, unpriced)) => {
                self.data_version.fetch_add(1, Ordering::Release);
                for model in unpriced {
                    self.telemetry.count_unpriced(&model);
                }
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    self.telemetry.count_outcome(&outcome);
                    let _ = request.reply.send(Reply {
                        result: Ok(outcome),
                        batch: request.batch,
                    });
                }
            }
            Err(error) => {
                // Keys cached during the failed transaction point at rolled-back rows.
                self.caches = Caches::default();
                if !matches!(self.rollups, RollupMode::Off) {
                    self.rollups = RollupMode::Stale;
                }
                tracing::error!(%error, "ingest commit failed; the group was rolled back");
                let unavailable = StoreError::Sqlite(error).is_unavailable();
                self.telemetry.commit_failures.inc();
                for request in group {
                    let _ = request.reply.send(Reply {
                        result: Err(StoreError::Commit { unavailable }),
                        batch: request.batch,
                    });
                }
            }
        }
        if self.caches.len() > CACHE_MAX_ENTRIES {
            self.caches = Caches::default();
        }
    }

    /// One transaction for the whole group.
    fn write(
        &mut self,
        batches: &[&Batch],
    ) -> Result<(Vec<AppendOutcome>, Vec<String>), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        let today = today();
        if matches!(self.rollups, RollupMode::Stale) {
            self.rollups = RollupMode::Ready(Box::new(Rollups::open(&tx, today)?));
        }
        let rollups = match &mut self.rollups {
            RollupMode::Ready(rollups) => Some(rollups.as_mut()),
            _ => None,
        };
        let mut apply = Apply {
            tx: &tx,
            caches: &mut self.caches,
            rollups,
            catalogue: &self.catalogue,
            topic_threshold: self.topic_threshold,
            unpriced: Vec::new(),
            topic_counts: HashMap::new(),
            phrasing_counts: HashMap::new(),
        };
        let mut outcomes = Vec::with_capacity(batches.len());
        for batch in batches {
            let mut outcome = AppendOutcome::default();
            for (index, event) in &batch.events {
                match apply.event(event)? {
                    Applied::Stored => outcome.accepted += 1,
                    Applied::Duplicate => outcome.duplicates += 1,
                    Applied::Rejected(message) => outcome.rejected.push((*index, message)),
                }
            }
            outcomes.push(outcome);
        }
        apply.flush_topic_counts()?;
        let unpriced = std::mem::take(&mut apply.unpriced);
        if let Some(rollups) = apply.rollups.as_mut() {
            rollups.flush(&tx)?;
            rollups.seal(&tx, today)?;
        }
        tx.commit()?;
        if let RollupMode::Ready(rollups) = &mut self.rollups {
            rollups.committed(Timestamp::now().0);
        }
        Ok((outcomes, unpriced))
    }
}

/// What became of one event.
enum Applied {
    Stored,
    Duplicate,
    /// Refused for a reason only the store can see (an embedding dimension mismatch).
    Rejected(String),
}

impl Applied {
    fn from_inserted(inserted: bool) -> Self {
        if inserted {
            Applied::Stored
        } else {
            Applied::Duplicate
        }
    }
}

/// The cost of an interaction and where it came from.
struct Priced {
    cost: i64,
    source: i64,
    price_id: Option<String>,
    /// The model it was priced by: its own, else its assistant's.
    model: Option<String>,
    unpriced: bool,
}

/// Which topic an interaction joins, or why it cannot be stored.
enum TopicChoice {
    None,
    Topic(i64),
    Rejected(String),
}

/// Applies events inside one open transaction.
struct Apply<'t> {
    tx: &'t Transaction<'t>,
    caches: &'t mut Caches,
    /// `None` when the store keeps no rollups.
    rollups: Option<&'t mut Rollups>,
    catalogue: &'t Catalogue,
    /// Cosine similarity from which a question joins an embedding topic.
    topic_threshold: f32,
    /// Models of unpriced interactions written in this transaction.
    unpriced: Vec<String>,
    /// Topic counters of this transaction: (interactions, latest ts), written once at the end.
    topic_counts: HashMap<i64, (i64, i64)>,
    /// Phrasing counters of this transaction: (interactions, earliest ts, latest ts).
    phrasing_counts: HashMap<i64, (i64, i64, i64)>,
}

type SqlResult<T> = Result<T, rusqlite::Error>;

impl Apply<'_> {
    /// True when stored or upserted, false for a duplicate.
    fn event(&mut self, event: &Event) -> SqlResult<Applied> {
        let stored = |_| Applied::Stored;
        match event {
            Event::Interaction(e) => self.interaction(e),
            Event::ConnectorSync(e) => self.sync(e).map(Applied::from_inserted),
            Event::Assistant(e) => self.assistant(e).map(stored),
            Event::User(e) => self.user(e).map(stored),
            Event::Connector(e) => self.connector(e).map(stored),
            Event::Document(e) => self.document(e).map(stored),
        }
    }

    /// The surrogate key of an entity id, registering a placeholder row when unseen.
    fn key(&mut self, registry: Registry, id: Uuid) -> SqlResult<i64> {
        if let Some(&key) = registry.cache(self.caches).get(&id) {
            return Ok(key);
        }
        let table = registry.table();
        let found: Option<i64> = self
            .tx
            .prepare_cached(&format!("SELECT key FROM {table} WHERE id = ?1"))?
            .query_row([id.as_bytes()], |r| r.get(0))
            .optional()?;
        let key = match found {
            Some(key) => key,
            None => {
                self.tx
                    .prepare_cached(&format!("INSERT INTO {table} (id) VALUES (?1)"))?
                    .execute([id.as_bytes()])?;
                self.tx.last_insert_rowid()
            }
        };
        registry.cache(self.caches).insert(id, key);
        Ok(key)
    }

    fn named_key(&mut self, names: Names, text: &str) -> SqlResult<i64> {
        if let Some(&key) = names.cache(self.caches).get(text) {
            return Ok(key);
        }
        let (table, column) = names.table();
        let found: Option<i64> = self
            .tx
            .prepare_cached(&format!("SELECT key FROM {table} WHERE {column} = ?1"))?
            .query_row([text], |r| r.get(0))
            .optional()?;
        let key = match found {
            Some(key) => key,
            None => {
                self.tx
                    .prepare_cached(&format!("INSERT INTO {table} ({column}) VALUES (?1)"))?
                    .execute([text])?;
                self.tx.last_insert_rowid()
            }
        };
        names.cache(self.caches).insert(text.to_string(), key);
        Ok(key)
    }

    /// Marks the entity registered and writes the fields the event carries.
    fn upsert(
        &mut self,
        registry: Registry,
        id: Uuid,
        fields: &[(&str, Option<rusqlite::types::Value>)],
    ) -> SqlResult<i64> {
        let key = self.key(registry, id)?;
        let mut sql = format!("UPDATE {} SET registered = 1", registry.table());
        let mut values: Vec<rusqlite::types::Value> = vec![key.into()];
        for (column, value) in fields {
            if let Some(value) = value {
                values.push(value.clone());
                sql.push_str(&format!(", {column} = ?{}", values.len()));
            }
        }
        sql.push_str(" WHERE key = ?1");
        self.tx
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values))?;
        Ok(key)
    }

    fn assistant(&mut self, e: &AssistantEvent) -> SqlResult<()> {
        let key = self.upsert(
            Registry::Assistants,
            e.id,
            &[
                ("name", text_patch(&e.name)),
                ("model", text_patch(&e.model)),
            ],
        )?;
        self.caches.assistant_models.remove(&key);
        Ok(())
    }

    fn user(&mut self, e: &UserEvent) -> SqlResult<()> {
        self.upsert(
            Registry::Users,
            e.id,
            &[
                ("email", text_patch(&e.email)),
                ("full_name", text_patch(&e.full_name)),
            ],
        )
        .map(drop)
    }

    fn connector(&mut self, e: &ConnectorEvent) -> SqlResult<()> {
        self.upsert(Registry::Connectors, e.id, &[("name", text_patch(&e.name))])
            .map(drop)
    }

    fn document(&mut self, e: &DocumentEvent) -> SqlResult<()> {
        let connector = match &e.connector_id {
            Patch::Keep => None,
            Patch::Clear => Some(rusqlite::types::Value::Null),
            Patch::Set(id) => Some(self.key(Registry::Connectors, *id)?.into()),
        };
        let updated_at = e
            .updated_at
            .as_update()
            .map(|v| v.map_or(rusqlite::types::Value::Null, |t| (*t).into()));
        let deleted = e
            .deleted
            .as_update()
            .map(|v| rusqlite::types::Value::from(i64::from(v.copied().unwrap_or(false))));
        self.upsert(
            Registry::Documents,
            e.id,
            &[
                ("connector", connector),
                ("file_name", text_patch(&e.file_name)),
                ("updated_at", updated_at),
                ("deleted", deleted),
            ],
        )
        .map(drop)
    }

    fn sync(&mut self, e: &SyncEvent) -> SqlResult<bool> {
        let connector = self.key(Registry::Connectors, e.connector_id)?;
        let status = match e.status {
            SyncStatus::Success => 0,
            SyncStatus::Partial => 1,
            SyncStatus::Failure => 2,
        };
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO syncs (id, connector, status, started_at, duration_us, documents_synced, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                e.id.as_bytes(),
                connector,
                status,
                e.started_at,
                e.duration_us,
                e.documents_synced,
                e.error
            ])?;
        if inserted == 1
            && let Some(rollups) = self.rollups.as_mut()
        {
            let status = match e.status {
                SyncStatus::Success => crate::analytics::metrics::sync::SyncStatus::Success,
                SyncStatus::Partial => crate::analytics::metrics::sync::SyncStatus::Partial,
                SyncStatus::Failure => crate::analytics::metrics::sync::SyncStatus::Failure,
            };
            rollups.sync(self.tx, connector, status, e.duration_us, e.started_at)?;
        }
        Ok(inserted == 1)
    }

    fn assistant_model(&mut self, assistant: i64) -> SqlResult<Option<String>> {
        if let Some(model) = self.caches.assistant_models.get(&assistant) {
            return Ok(model.clone());
        }
        let model: Option<String> = self
            .tx
            .prepare_cached("SELECT model FROM assistants WHERE key = ?1")?
            .query_row([assistant], |r| r.get(0))
            .optional()?
            .flatten();
        self.caches
            .assistant_models
            .insert(assistant, model.clone());
        Ok(model)
    }

    fn price(&mut self, e: &InteractionEvent, assistant: i64) -> SqlResult<Priced> {
        let model = match &e.model {
            Some(model) => Some(model.clone()),
            None => self.assistant_model(assistant)?,
        };
        if let Some(cost) = e.cost_nusd {
            return Ok(Priced {
                cost,
                source: COST_CLIENT,
                price_id: None,
                model,
                unpriced: false,
            });
        }
        let entry = model
            .as_deref()
            .and_then(|m| self.catalogue.lookup(m, e.timestamp));
        Ok(match entry {
            Some(entry) => Priced {
                cost: entry.cost_nusd(e.input_tokens, e.cached_input_tokens, e.output_tokens),
                source: COST_CATALOGUE,
                price_id: Some(entry.id.clone()),
                model,
                unpriced: false,
            },
            None => Priced {
                cost: 0,
                source: COST_UNPRICED,
                price_id: None,
                model,
                unpriced: true,
            },
        })
    }

    fn topic(&mut self, assistant: i64, e: &InteractionEvent) -> SqlResult<TopicChoice> {
        let Some(key) = &e.topic_key else {
            return match (&e.question_embedding, &e.question) {
                (Some(unit), Some(_)) => self.embedding_topic(assistant, unit, e.id),
                _ => Ok(TopicChoice::None),
            };
        };
        let cache_key = (assistant, key.clone());
        if let Some(&topic) = self.caches.topics.get(&cache_key) {
            return Ok(TopicChoice::Topic(topic));
        }
        let (assistant, key) = cache_key;
        let kind = key.kind as i64;
        let found: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT key FROM topics WHERE assistant = ?1 AND kind = ?2 AND norm = ?3",
            )?
            .query_row(params![assistant, kind, key.norm], |r| r.get(0))
            .optional()?;
        let topic = match found {
            Some(topic) => topic,
            None => match self.near_duplicate(assistant, &key)? {
                Some(topic) => topic,
                None => {
                    self.tx
                        .prepare_cached(
                            "INSERT INTO topics (assistant, kind, norm, label) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![assistant, kind, key.norm, e.topic])?;
                    let topic = self.tx.last_insert_rowid();
                    if key.kind == TopicKind::Question {
                        self.lexical(assistant)?.insert(topic, &key.norm);
                    }
                    topic
                }
            },
        };
        self.caches.topics.insert((assistant, key), topic);
        Ok(TopicChoice::Topic(topic))
    }

    /// The question topic a new phrasing joins as a near-duplicate, if any. A
    /// decision is stored as an alias, so the same phrasing always lands in the
    /// same topic, whatever topics are created later.
    fn near_duplicate(&mut self, assistant: i64, key: &TopicKey) -> SqlResult<Option<i64>> {
        if key.kind != TopicKind::Question {
            return Ok(None);
        }
        let alias: Option<i64> = self
            .tx
            .prepare_cached("SELECT topic FROM topic_aliases WHERE assistant = ?1 AND norm = ?2")?
            .query_row(params![assistant, key.norm], |r| r.get(0))
            .optional()?;
        if alias.is_some() {
            return Ok(alias);
        }
        let Some(topic) = self.lexical(assistant)?.assign(&key.norm) else {
            return Ok(None);
        };
        self.tx
            .prepare_cached(
                "INSERT INTO topic_aliases (assistant, norm, topic) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![assistant, key.norm, topic])?;
        Ok(Some(topic))
    }

    /// The lexical index of an assistant's question topics (their first
    /// phrasings), rebuilt from the topics table on first use.
    fn lexical(&mut self, assistant: i64) -> SqlResult<&mut LexicalIndex> {
        if !self.caches.lexical.contains_key(&assistant) {
            let mut index = LexicalIndex::new();
            let mut stmt = self.tx.prepare_cached(
                "SELECT key, norm FROM topics WHERE assistant = ?1 AND kind = ?2 ORDER BY key",
            )?;
            let mut rows = stmt.query(params![assistant, TopicKind::Question as i64])?;
            while let Some(row) = rows.next()? {
                index.insert(row.get(0)?, &row.get::<_, String>(1)?);
            }
            self.caches.lexical.insert(assistant, index);
        }
        Ok(self.caches.lexical.entry(assistant).or_default())
    }

    fn phrasing(&mut self, topic: i64, question: &str) -> SqlResult<i64> {
        let cache_key = (topic, question.to_string());
        if let Some(&key) = self.caches.phrasings.get(&cache_key) {
            return Ok(key);
        }
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT key FROM phrasings WHERE topic = ?1 AND text = ?2")?
            .query_row(params![topic, question], |r| r.get(0))
            .optional()?;
        let key = match found {
            Some(key) => key,
            None => {
                self.tx
                    .prepare_cached("INSERT INTO phrasings (topic, text) VALUES (?1, ?2)")?
                    .execute(params![topic, question])?;
                self.tx.last_insert_rowid()
            }
        };
        self.caches.phrasings.insert(cache_key, key);
        Ok(key)
    }

    fn interaction(&mut self, e: &InteractionEvent) -> SqlResult<Applied> {
        // An embedding moves a centroid: a duplicate must be caught before that.
        if e.topic_key.is_none() && e.question_embedding.is_some() && self.stored(e.id)? {
            return Ok(Applied::Duplicate);
        }
        let assistant = self.key(Registry::Assistants, e.assistant_id)?;
        let session = self.named_key(Names::Sessions, &e.session_id)?;
        let user = e
            .user_id
            .map(|id| self.key(Registry::Users, id))
            .transpose()?;
        let topic = match self.topic(assistant, e)? {
            TopicChoice::None => None,
            TopicChoice::Topic(topic) => Some(topic),
            TopicChoice::Rejected(message) => return Ok(Applied::Rejected(message)),
        };
        let phrasing = match (topic, &e.question) {
            (Some(topic), Some(question)) => Some(self.phrasing(topic, question)?),
            _ => None,
        };
        let priced = self.price(e, assistant)?;
        let rerank = e.rerank.as_ref();
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO interactions (
                    id, ts, assistant, session, user, topic, phrasing, model, provider,
                    ttft_us, total_us, cache_hit, input_tokens, output_tokens, cached_input_tokens,
                    cost_nusd, cost_source, price_id, priced_model,
                    rerank_before, rerank_after, rerank_improvement_n, rerank_position_n)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
            )?
            .execute(params![
                e.id.as_bytes(),
                e.timestamp,
                assistant,
                session,
                user,
                topic,
                phrasing,
                e.model,
                e.provider,
                e.ttft_us,
                e.total_duration_us,
                e.cache_hit,
                e.input_tokens,
                e.output_tokens,
                e.cached_input_tokens,
                priced.cost,
                priced.source,
                priced.price_id,
                priced.model,
                rerank.and_then(|r| r.score_before),
                rerank.and_then(|r| r.score_after),
                rerank.and_then(|r| r.improvement_n),
                rerank.and_then(|r| r.position_n),
            ])?;
        if inserted == 0 {
            return Ok(Applied::Duplicate);
        }
        let key = self.tx.last_insert_rowid();
        let documents = self.children(key, assistant, e)?;
        if let Some(rollups) = self.rollups.as_mut() {
            let steps: Vec<StepSample<'_>> = e
                .steps
                .iter()
                .map(|step| StepSample {
                    name: &step.name,
                    duration_us: step.duration_us,
                    first_index: step.first_index,
                    tokens: step.tokens,
                })
                .collect();
            let facts = Interaction {
                ts: e.timestamp,
                assistant,
                session,
                user,
                topic,
                phrasing,
                ttft_us: e.ttft_us,
                cache_hit: e.cache_hit,
                input_tokens: e.input_tokens,
                output_tokens: e.output_tokens,
                cost_nusd: priced.cost,
                rerank: rerank.and_then(|r| r.improvement_n.map(|i| (i, r.position_n))),
                steps: &steps,
                documents: &documents,
            };
            rollups.interaction(self.tx, &facts)?;
        }
        self.count_topic(topic, phrasing, e.timestamp)?;
        if priced.unpriced {
            let model = priced.model.as_deref().unwrap_or("(none)");
            self.record_unpriced(model, e.timestamp)?;
        }
        Ok(Applied::Stored)
    }

    fn stored(&mut self, id: Uuid) -> SqlResult<bool> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM interactions WHERE id = ?1")?
            .query_row([id.as_bytes()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The centroid index of an assistant's embedding topics, loaded on first use.
    fn centroids(
        &mut self,
        assistant: i64,
        dims: usize,
    ) -> SqlResult<Result<&mut CentroidIndex, String>> {
        if !self.caches.centroids.contains_key(&assistant) {
            let index = self.load_centroids(assistant)?;
            self.caches.centroids.insert(assistant, index);
        }
        let Some(index) = self.caches.centroids.get_mut(&assistant) else {
            return Ok(Err("internal: centroid index missing".to_string()));
        };
        if index.is_empty() && index.dims() != dims {
            *index = CentroidIndex::new(dims);
        }
        if index.dims() != dims {
            return Ok(Err(format!(
                "question_embedding: has {dims} dimensions, but this assistant's embeddings have {}; \
                 one assistant's questions must be embedded by one model",
                index.dims()
            )));
        }
        Ok(Ok(index))
    }

    fn load_centroids(&mut self, assistant: i64) -> SqlResult<CentroidIndex> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT topic, count, mean FROM topic_centroids WHERE assistant = ?1 ORDER BY topic",
        )?;
        let mut rows = stmt.query([assistant])?;
        let mut index: Option<CentroidIndex> = None;
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(2)?;
            let Some(mean) = from_bytes(&bytes) else {
                continue;
            };
            let index = index.get_or_insert_with(|| CentroidIndex::new(mean.len()));
            if mean.len() == index.dims() {
                index.push(row.get(0)?, &mean, row.get::<_, i64>(1)?.max(1) as u64);
            }
        }
        Ok(index.unwrap_or_else(|| CentroidIndex::new(0)))
    }

    /// Joins the nearest similar embedding topic of the assistant, or starts one.
    fn embedding_topic(
        &mut self,
        assistant: i64,
        unit: &[f32],
        id: Uuid,
    ) -> SqlResult<TopicChoice> {
        let threshold = self.topic_threshold;
        let index = match self.centroids(assistant, unit.len())? {
            Ok(index) => index,
            Err(message) => return Ok(TopicChoice::Rejected(message)),
        };
        match index.assign(unit, threshold) {
            Assignment::Join { row, .. } => {
                index.update(row, unit);
                let topic = index.topic(row);
                let (mean, count) = index.row(row);
                let (bytes, count) = (to_bytes(mean), count as i64);
                self.tx
                    .prepare_cached(
                        "UPDATE topic_centroids SET count = ?2, mean = ?3 WHERE topic = ?1",
                    )?
                    .execute(params![topic, count, bytes])?;
                Ok(TopicChoice::Topic(topic))
            }
            Assignment::New => {
                // Embedding topics have no text key; the first interaction's id keeps `norm` unique.
                self.tx
                    .prepare_cached(
                        "INSERT INTO topics (assistant, kind, norm) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![
                        assistant,
                        TopicKind::Embedding as i64,
                        id.to_string()
                    ])?;
                let topic = self.tx.last_insert_rowid();
                self.tx
                    .prepare_cached(
                        "INSERT INTO topic_centroids (topic, assistant, count, mean) VALUES (?1, ?2, 1, ?3)",
                    )?
                    .execute(params![topic, assistant, to_bytes(unit)])?;
                if let Some(index) = self.caches.centroids.get_mut(&assistant) {
                    index.push(topic, unit, 1);
                }
                Ok(TopicChoice::Topic(topic))
            }
        }
    }

    /// Steps and retrieved documents, with the interaction's time and assistant
    /// copied in so window scans need no join. Returns the documents' keys.
    fn children(
        &mut self,
        interaction: i64,
        assistant: i64,
        e: &InteractionEvent,
    ) -> SqlResult<Vec<i64>> {
        use rusqlite::types::Value;
        // One multi-row INSERT per child table and interaction: the per-statement
        // cost (bind, step, reset) is paid once instead of once per row.
        let mut values: Vec<Value> = Vec::with_capacity(e.steps.len() * 9);
        for step in &e.steps {
            let name = self.named_key(Names::StepNames, &step.name)?;
            values.extend([
                Value::Integer(e.timestamp),
                Value::Integer(interaction),
                Value::Integer(name),
                Value::Integer(assistant),
                Value::Integer(i64::from(step.first_index)),
                Value::Integer(i64::from(step.occurrences)),
                Value::Integer(step.duration_us),
                step.tokens.map_or(Value::Null, |t| Value::Integer(t.0)),
                step.tokens.map_or(Value::Null, |t| Value::Integer(t.1)),
            ]);
        }
        self.insert_rows(
            "steps (ts, interaction, name, assistant, first_index, occurrences, duration_us, input_tokens, output_tokens)",
            9,
            values,
        )?;
        let mut values: Vec<Value> = Vec::with_capacity(e.retrieved_document_ids.len() * 4);
        let mut documents = Vec::with_capacity(e.retrieved_document_ids.len());
        for document in &e.retrieved_document_ids {
            let document = self.key(Registry::Documents, *document)?;
            documents.push(document);
            values.extend([
                Value::Integer(e.timestamp),
                Value::Integer(interaction),
                Value::Integer(document),
                Value::Integer(assistant),
            ]);
        }
        self.insert_rows(
            "retrievals (ts, interaction, document, assistant)",
            4,
            values,
        )?;
        Ok(documents)
    }

    /// `INSERT INTO <target> VALUES (...), (...)` with `values.len() / width` rows.
    fn insert_rows(
        &mut self,
        target: &str,
        width: usize,
        values: Vec<rusqlite::types::Value>,
    ) -> SqlResult<()> {
        let rows = values.len() / width;
        if rows == 0 {
            return Ok(());
        }
        let row = format!("({})", vec!["?"; width].join(", "));
        let sql = format!("INSERT INTO {target} VALUES {}", vec![row; rows].join(", "));
        self.tx
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values))?;
        Ok(())
    }

    /// All-time topic and phrasing totals, so all-time trending needs no scan.
    /// Gathered in memory and written once per transaction: a popular topic is
    /// then one row update per group commit, not one per interaction.
    fn count_topic(&mut self, topic: Option<i64>, phrasing: Option<i64>, ts: i64) -> SqlResult<()> {
        if let Some(topic) = topic {
            let entry = self.topic_counts.entry(topic).or_insert((0, ts));
            entry.0 += 1;
            entry.1 = entry.1.max(ts);
        }
        if let Some(phrasing) = phrasing {
            let entry = self.phrasing_counts.entry(phrasing).or_insert((0, ts, ts));
            entry.0 += 1;
            entry.1 = entry.1.min(ts);
            entry.2 = entry.2.max(ts);
        }
        Ok(())
    }

    fn flush_topic_counts(&mut self) -> SqlResult<()> {
        for (topic, (count, last)) in std::mem::take(&mut self.topic_counts) {
            self.tx
                .prepare_cached(
                    "UPDATE topics SET frequency = frequency + ?2,
                        last_ts = max(coalesce(last_ts, ?3), ?3) WHERE key = ?1",
                )?
                .execute(params![topic, count, last])?;
        }
        for (phrasing, (count, first, last)) in std::mem::take(&mut self.phrasing_counts) {
            self.tx
                .prepare_cached(
                    "UPDATE phrasings SET count = count + ?2,
                        first_ts = min(coalesce(first_ts, ?3), ?3),
                        last_ts = max(coalesce(last_ts, ?4), ?4) WHERE key = ?1",
                )?
                .execute(params![phrasing, count, first, last])?;
        }
        Ok(())
    }

    fn record_unpriced(&mut self, model: &str, ts: i64) -> SqlResult<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO unpriced_models (model, count, first_seen, last_seen) VALUES (?1, 1, ?2, ?2)
                 ON CONFLICT (model) DO UPDATE SET count = count + 1,
                    first_seen = min(first_seen, excluded.first_seen),
                    last_seen = max(last_seen, excluded.last_seen)",
            )?
            .execute(params![model, ts])?;
        self.unpriced.push(model.to_string());
        Ok(())
    }
}

fn text_patch(patch: &Patch<String>) -> Option<rusqlite::types::Value> {
    patch
        .as_update()
        .map(|v| v.map_or(rusqlite::types::Value::Null, |s| s.clone().into()))
}
