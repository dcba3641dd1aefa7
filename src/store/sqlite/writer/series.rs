//! The writer's side of the RAG series: every event the writer stores (from
//! the ingest API, an import or any other source) is folded here inside its
//! transaction; the changed rows are written before the commit and published
//! to `/metrics` after it, so a scrape only ever sees committed events.

use std::collections::BTreeSet;
use std::sync::Arc;

use rusqlite::{Connection, Transaction};
use uuid::Uuid;

use super::Map;
use crate::ingest::event::{InteractionEvent, Patch, SyncEvent, SyncStatus};
use crate::store::sqlite::series;
use crate::telemetry::rag::state::{
    Changes, InteractionFacts, OTHER_KEY, SeriesState, SyncOutcome,
};
use crate::telemetry::rag::{EntityLabel, RagSeries, Update};

type SqlResult<T> = Result<T, rusqlite::Error>;

pub(in crate::store::sqlite) struct Series {
    state: SeriesState,
    /// Labels of the rows, by row key.
    assistants: Map<i64, Arc<EntityLabel>>,
    connectors: Map<i64, Arc<EntityLabel>>,
    /// Rows whose labels changed in this transaction.
    relabeled: (BTreeSet<i64>, BTreeSet<i64>),
    published: Arc<RagSeries>,
    /// A transaction rolled back after folding events in: reload first.
    stale: bool,
}

/// Rows to publish once the transaction that wrote them has committed.
pub(in crate::store::sqlite) struct Pending(Changes);

impl Series {
    /// Resumes from `state` (see `series::prepare`) and publishes all of it.
    pub(super) fn open(
        conn: &Connection,
        state: SeriesState,
        published: Arc<RagSeries>,
    ) -> SqlResult<Self> {
        let mut series = Self {
            state,
            assistants: Map::default(),
            connectors: Map::default(),
            relabeled: Default::default(),
            published,
            stale: false,
        };
        series.label_all(conn)?;
        series.publish_all();
        Ok(series)
    }

    fn label_all(&mut self, conn: &Connection) -> SqlResult<()> {
        let assistants: Vec<i64> = self.state.assistants.keys().copied().collect();
        for key in assistants {
            let label = label_of(conn, "assistants", key)?;
            self.assistants.insert(key, Arc::new(label));
        }
        let connectors: Vec<i64> = self.state.connectors.keys().copied().collect();
        for key in connectors {
            let label = label_of(conn, "connectors", key)?;
            self.connectors.insert(key, Arc::new(label));
        }
        Ok(())
    }

    fn publish_all(&mut self) {
        self.published.clear();
        let changes = Changes {
            assistants: self.state.assistants.keys().copied().collect(),
            connectors: self.state.connectors.keys().copied().collect(),
            labels: true,
        };
        self.publish(changes);
    }

    /// Folds a stored interaction, priced at `cost_nusd` by `model`.
    pub(super) fn interaction(
        &mut self,
        tx: &Transaction<'_>,
        e: &InteractionEvent,
        assistant: i64,
        model: Option<&str>,
        cost_nusd: i64,
    ) -> SqlResult<()> {
        let rerank = e.rerank.as_ref();
        let row = self.state.interaction(&InteractionFacts {
            assistant,
            model,
            cache_hit: e.cache_hit,
            ttft_us: e.ttft_us,
            total_us: e.total_duration_us,
            input_tokens: e.input_tokens,
            output_tokens: e.output_tokens,
            cached_input_tokens: e.cached_input_tokens,
            cost_nusd,
            rerank_improvement_n: rerank.and_then(|r| r.improvement_n),
            rerank_position_n: rerank.and_then(|r| r.position_n),
        });
        for step in &e.steps {
            self.state.step(row.key, &step.name, step.duration_us);
        }
        if row.admitted {
            let label = label_of(tx, "assistants", assistant)?;
            self.assistants.insert(assistant, Arc::new(label));
        }
        Ok(())
    }

    /// Folds a stored connector sync.
    pub(super) fn sync(
        &mut self,
        tx: &Transaction<'_>,
        e: &SyncEvent,
        connector: i64,
    ) -> SqlResult<()> {
        let outcome = match e.status {
            SyncStatus::Success => SyncOutcome::Success,
            SyncStatus::Partial => SyncOutcome::Partial,
            SyncStatus::Failure => SyncOutcome::Failure,
        };
        let row = self
            .state
            .sync(connector, outcome, e.started_at, e.duration_us);
        if row.admitted {
            let label = label_of(tx, "connectors", connector)?;
            self.connectors.insert(connector, Arc::new(label));
        }
        Ok(())
    }

    /// An assistant event: a new name relabels its row, if it has one.
    pub(super) fn assistant_named(&mut self, key: i64, id: Uuid, name: &Patch<String>) {
        if let Some(label) = relabel(&mut self.assistants, key, id, name) {
            self.assistants.insert(key, label);
            self.relabeled.0.insert(key);
        }
    }

    /// A connector event: a new name relabels its row, if it has one.
    pub(super) fn connector_named(&mut self, key: i64, id: Uuid, name: &Patch<String>) {
        if let Some(label) = relabel(&mut self.connectors, key, id, name) {
            self.connectors.insert(key, label);
            self.relabeled.1.insert(key);
        }
    }

    /// Writes the rows this transaction changed; publish them with
    /// [`Self::committed`] once it has committed.
    pub(super) fn save(&mut self, tx: &Transaction<'_>) -> SqlResult<Pending> {
        let mut changes = self.state.take_changes();
        series::save(tx, &self.state, &changes)?;
        let (assistants, connectors) = std::mem::take(&mut self.relabeled);
        changes.assistants.extend(assistants);
        changes.connectors.extend(connectors);
        Ok(Pending(changes))
    }

    pub(super) fn committed(&mut self, pending: Pending) {
        self.publish(pending.0);
    }

    /// The transaction rolled back: what it folded in must go. The state is
    /// read back from the store (which holds the last committed one) at the
    /// start of the next write, see [`Self::resume`].
    pub(super) fn rolled_back(&mut self) {
        self.stale = true;
    }

    /// Reloads the state after a rollback, inside the next transaction.
    pub(super) fn resume(&mut self, tx: &Transaction<'_>) -> SqlResult<()> {
        if !self.stale {
            return Ok(());
        }
        self.state = series::load(tx)?;
        self.assistants.clear();
        self.connectors.clear();
        self.relabeled = Default::default();
        self.label_all(tx)?;
        self.stale = false;
        self.publish_all();
        Ok(())
    }

    fn publish(&self, changes: Changes) {
        let label = |labels: &Map<i64, Arc<EntityLabel>>, key: i64| {
            labels
                .get(&key)
                .cloned()
                .unwrap_or_else(|| Arc::new(EntityLabel::other()))
        };
        self.published.publish(Update::of(
            &self.state,
            &changes,
            |key| label(&self.assistants, key),
            |key| label(&self.connectors, key),
        ));
    }
}

/// The label an entity's row has: `other` for the row beyond the cap.
fn label_of(conn: &Connection, table: &str, key: i64) -> SqlResult<EntityLabel> {
    if key == OTHER_KEY {
        return Ok(EntityLabel::other());
    }
    let Some((id, name)) = series::entity(conn, table, key)? else {
        return Ok(EntityLabel::other());
    };
    let id = Uuid::from_slice(&id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    Ok(EntityLabel::new(id, name.as_deref()))
}

/// The new label of row `key` after a name patch, when it has a row.
fn relabel(
    labels: &mut Map<i64, Arc<EntityLabel>>,
    key: i64,
    id: Uuid,
    name: &Patch<String>,
) -> Option<Arc<EntityLabel>> {
    labels.get(&key)?;
    match name {
        Patch::Keep => None,
        Patch::Clear => Some(Arc::new(EntityLabel::new(id, None))),
        Patch::Set(name) => Some(Arc::new(EntityLabel::new(id, Some(name)))),
    }
}
