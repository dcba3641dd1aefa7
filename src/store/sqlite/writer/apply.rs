//! Applying events inside the writer's open transaction: registries get
//! surrogate keys, interactions their price, topic, child rows and rollups.

use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::ids::{StoredIds, day_of};
use super::series::Series;
use super::statements::{INSERT_DETAILS, INSERT_INTERACTION, Interned, Statements};
use super::topics::{NewRows, TopicChoice};
use super::{COST_CATALOGUE, COST_CLIENT, COST_UNPRICED, Caches, Map, Names, Registry};
use crate::ingest::event::*;
use crate::metrics::steps::StepSample;
use crate::pricing::Catalogue;
use crate::store::AppendOutcome;
use crate::store::sqlite::details::{self, PackedStep};
use crate::store::sqlite::pending::{self, FinalOutcome, Finalization};
use crate::store::sqlite::rollup::write::{Interaction, Rollups};

/// What became of one event.
pub(super) enum Applied {
    Stored,
    Duplicate,
    /// Refused for a reason only the store can see (an embedding dimension mismatch).
    Rejected(String),
}

impl Applied {
    pub(super) fn from_inserted(inserted: bool) -> Self {
        if inserted {
            Applied::Stored
        } else {
            Applied::Duplicate
        }
    }
}

/// The cost of an interaction and where it came from.
pub(super) struct Priced {
    cost: i64,
    source: i64,
    price_id: Option<String>,
    /// The model it was priced by: its own, else its assistant's.
    model: Option<String>,
    unpriced: bool,
}

/// Applies events inside one open transaction.
pub(super) struct Apply<'t> {
    pub(super) tx: &'t Transaction<'t>,
    pub(super) caches: &'t mut Caches,
    /// Every stored interaction id; kept across rollbacks, unlike `caches`.
    pub(super) ids: &'t mut StoredIds,
    /// `None` when the store keeps no rollups.
    pub(super) rollups: Option<&'t mut Rollups>,
    pub(super) catalogue: &'t Catalogue,
    /// `None` when the Prometheus series are off.
    pub(super) series: Option<&'t mut Series>,
    /// Cosine similarity from which a question joins an embedding topic.
    pub(super) topic_threshold: f32,
    /// Models of unpriced interactions written in this transaction.
    pub(super) unpriced: Vec<String>,
    /// Topic counters of this transaction: (interactions, latest ts), written once at the end.
    pub(super) topic_counts: Map<i64, (i64, i64)>,
    /// Phrasing counters of this transaction: (interactions, earliest ts, latest ts).
    pub(super) phrasing_counts: Map<i64, (i64, i64, i64)>,
    /// Latest retrieval of this transaction per (document, assistant), written once at the end.
    pub(super) last_retrievals: Map<(i64, i64), i64>,
    /// Embedding topics whose centroid moved in this transaction: topic →
    /// (assistant, row of its centroid index), written once at the end.
    pub(super) moved_centroids: Map<i64, (i64, usize)>,
    /// Topics and phrasings created in this transaction, written once at the end.
    pub(super) new_rows: NewRows,
    pub(super) statements: Statements<'t>,
}

pub(super) type SqlResult<T> = Result<T, rusqlite::Error>;

impl Apply<'_> {
    /// True when stored or upserted, false for a duplicate.
    pub(super) fn event(&mut self, event: &Event) -> SqlResult<Applied> {
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

    /// Applies the events of one batch.
    pub(super) fn events(&mut self, events: &[(usize, Event)]) -> SqlResult<AppendOutcome> {
        let mut outcome = AppendOutcome::default();
        for (index, event) in events {
            match self.event(event)? {
                Applied::Stored => outcome.accepted += 1,
                Applied::Duplicate => outcome.duplicates += 1,
                Applied::Rejected(message) => outcome.rejected.push((*index, message)),
            }
        }
        Ok(outcome)
    }

    /// Stores the events of finalised OTLP traces and retires their spans;
    /// a trace that got a span since the finalizer read it is left as it is.
    pub(super) fn finalize(&mut self, traces: &[Finalization]) -> SqlResult<Vec<FinalOutcome>> {
        let now = crate::time::Timestamp::now().micros();
        let mut outcomes = Vec::with_capacity(traces.len());
        for trace in traces {
            if !pending::unchanged(self.tx, &trace.trace_id, trace.max_seq)? {
                outcomes.push(FinalOutcome::Changed);
                continue;
            }
            let outcome = self.events(&trace.events)?;
            pending::retire(self.tx, trace, now)?;
            outcomes.push(FinalOutcome::Finalized(outcome));
        }
        if !traces.is_empty() {
            pending::forget_old_done(self.tx)?;
        }
        Ok(outcomes)
    }

    /// The surrogate key of an entity id, registering a placeholder row when unseen.
    pub(super) fn key(&mut self, registry: Registry, id: Uuid) -> SqlResult<i64> {
        if let Some(&key) = registry.cache(self.caches).get(&id) {
            return Ok(key);
        }
        let key = self.intern(Interned::Registry(registry), &id.as_bytes())?;
        registry.cache(self.caches).insert(id, key);
        Ok(key)
    }

    pub(super) fn named_key(&mut self, names: Names, text: &str) -> SqlResult<i64> {
        if let Some(&key) = names.cache(self.caches).get(text) {
            return Ok(key);
        }
        let key = self.intern(Interned::Names(names), &text)?;
        names.cache(self.caches).insert(text.to_string(), key);
        Ok(key)
    }

    /// The key of the row whose unique `column` is `value`, inserted when
    /// missing. A value missing from the caches is most often new: insert first.
    fn intern(&mut self, interned: Interned, value: &dyn rusqlite::ToSql) -> SqlResult<i64> {
        let (table, column) = interned.table();
        let (insert, select) = &mut self.statements.intern[interned.slot()];
        let inserted = insert
            .get(self.tx, || {
                format!(
                    "INSERT INTO {table} ({column}) VALUES (?1) ON CONFLICT ({column}) DO NOTHING"
                )
            })?
            .execute([value])?;
        if inserted == 1 {
            return Ok(self.tx.last_insert_rowid());
        }
        select
            .get(self.tx, || {
                format!("SELECT key FROM {table} WHERE {column} = ?1")
            })?
            .query_row([value], |r| r.get(0))
    }

    /// Marks the entity registered and writes the fields the event carries.
    pub(super) fn upsert(
        &mut self,
        registry: Registry,
        id: Uuid,
        fields: &[(&str, Option<rusqlite::types::Value>)],
    ) -> SqlResult<i64> {
        let key = self.key(registry, id)?;
        self.register(registry.table(), key, fields)?;
        Ok(key)
    }

    /// Marks the row `key` of `table` registered and writes the fields given.
    fn register(
        &mut self,
        table: &str,
        key: i64,
        fields: &[(&str, Option<rusqlite::types::Value>)],
    ) -> SqlResult<()> {
        let mut sql = format!("UPDATE {table} SET registered = 1");
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
        Ok(())
    }

    pub(super) fn assistant(&mut self, e: &AssistantEvent) -> SqlResult<()> {
        let key = self.upsert(
            Registry::Assistants,
            e.id,
            &[
                ("name", text_patch(&e.name)),
                ("model", text_patch(&e.model)),
            ],
        )?;
        self.caches.assistant_models.remove(&key);
        if let Some(series) = self.series.as_deref_mut() {
            series.assistant_named(key, e.id, &e.name);
        }
        Ok(())
    }

    pub(super) fn user(&mut self, e: &UserEvent) -> SqlResult<()> {
        let key = self.named_key(Names::Users, e.id.as_str())?;
        self.register(
            "users",
            key,
            &[
                ("email", text_patch(&e.email)),
                ("full_name", text_patch(&e.full_name)),
            ],
        )
    }

    pub(super) fn connector(&mut self, e: &ConnectorEvent) -> SqlResult<()> {
        let key = self.upsert(Registry::Connectors, e.id, &[("name", text_patch(&e.name))])?;
        if let Some(series) = self.series.as_deref_mut() {
            series.connector_named(key, e.id, &e.name);
        }
        Ok(())
    }

    pub(super) fn document(&mut self, e: &DocumentEvent) -> SqlResult<()> {
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

    pub(super) fn sync(&mut self, e: &SyncEvent) -> SqlResult<bool> {
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
                SyncStatus::Success => crate::metrics::sync::SyncStatus::Success,
                SyncStatus::Partial => crate::metrics::sync::SyncStatus::Partial,
                SyncStatus::Failure => crate::metrics::sync::SyncStatus::Failure,
            };
            rollups.sync(self.tx, connector, status, e.duration_us, e.started_at)?;
        }
        if inserted == 1
            && let Some(series) = self.series.as_deref_mut()
        {
            series.sync(self.tx, e, connector)?;
        }
        Ok(inserted == 1)
    }

    pub(super) fn assistant_model(&mut self, assistant: i64) -> SqlResult<Option<String>> {
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

    pub(super) fn price(&mut self, e: &InteractionEvent, assistant: i64) -> SqlResult<Priced> {
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

    pub(super) fn interaction(&mut self, e: &InteractionEvent) -> SqlResult<Applied> {
        // Before anything changes: an embedding moves a centroid, a phrasing counts.
        if self.ids.stored(self.tx, e.id, e.timestamp)? {
            return Ok(Applied::Duplicate);
        }
        let assistant = self.key(Registry::Assistants, e.assistant_id)?;
        let session = self.named_key(Names::Sessions, &e.session_id)?;
        let user = e
            .user_id
            .as_ref()
            .map(|id| self.named_key(Names::Users, id.as_str()))
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
            .statements
            .interaction
            .get(self.tx, || INSERT_INTERACTION.to_string())?
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
        self.ids.insert(e.id, day_of(e.timestamp));
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
        if let Some(series) = self.series.as_deref_mut() {
            series.interaction(self.tx, e, assistant, priced.model.as_deref(), priced.cost)?;
        }
        Ok(Applied::Stored)
    }

    /// Steps and retrieved documents, packed into one `interaction_details`
    /// row (see `details`) with the interaction's time and assistant copied
    /// in, so window scans need no join. Returns the documents' keys.
    pub(super) fn children(
        &mut self,
        interaction: i64,
        assistant: i64,
        e: &InteractionEvent,
    ) -> SqlResult<Vec<i64>> {
        let mut steps = Vec::with_capacity(e.steps.len());
        for step in &e.steps {
            steps.push(PackedStep {
                name: self.named_key(Names::StepNames, &step.name)?,
                first_index: step.first_index,
                occurrences: step.occurrences,
                duration_us: step.duration_us,
                tokens: step.tokens,
            });
        }
        let mut documents = Vec::with_capacity(e.retrieved_document_ids.len());
        for document in &e.retrieved_document_ids {
            let document = self.key(Registry::Documents, *document)?;
            documents.push(document);
            let last = self
                .last_retrievals
                .entry((document, assistant))
                .or_insert(e.timestamp);
            *last = (*last).max(e.timestamp);
        }
        if steps.is_empty() && documents.is_empty() {
            return Ok(documents);
        }
        self.statements
            .details
            .get(self.tx, || INSERT_DETAILS.to_string())?
            .execute(params![
                e.timestamp,
                interaction,
                assistant,
                details::encode(&steps)?,
                details::encode(&documents)?
            ])?;
        Ok(documents)
    }

    /// Writes this transaction's last retrieval per (document, assistant),
    /// keeping a later one already stored.
    pub(super) fn flush_last_retrievals(&mut self) -> SqlResult<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO last_retrievals (document, assistant, ts) VALUES (?1, ?2, ?3)
             ON CONFLICT (document, assistant) DO UPDATE SET ts = max(ts, excluded.ts)",
        )?;
        for ((document, assistant), ts) in self.last_retrievals.drain() {
            stmt.execute(params![document, assistant, ts])?;
        }
        Ok(())
    }

    pub(super) fn record_unpriced(&mut self, model: &str, ts: i64) -> SqlResult<()> {
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
