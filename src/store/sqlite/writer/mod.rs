//! The single writer: one thread owns the write connection and commits the
//! batches handed to it in groups, one transaction (one fsync) per group, so
//! concurrent requests share the cost of durability. A request is answered
//! only after its group committed.

mod apply;
mod ids;
mod statements;
mod topics;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use apply::{Applied, Apply};
use ids::StoredIds;

use super::reprice::{RepriceReport, RepriceRequest, reprice};
use super::rollup::write::Rollups;
use crate::pricing::Catalogue;
use crate::store::{AppendOutcome, Batch, StoreError};
use crate::telemetry::Telemetry;
use crate::time::{MICROS_PER_DAY, Timestamp};
use crate::topics::TopicKey;
use crate::topics::centroids::CentroidIndex;
use crate::topics::lexical::LexicalIndex;

/// The writer's maps: its keys come from clients (session ids, documents),
/// so the hasher is seeded per process, and foldhash is several times
/// cheaper than SipHash on them (hashing was 3 % of the writer's time).
pub(super) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

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
    ids: StoredIds,
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
    assistants: Map<Uuid, i64>,
    users: Map<Uuid, i64>,
    connectors: Map<Uuid, i64>,
    documents: Map<Uuid, i64>,
    sessions: Map<String, i64>,
    step_names: Map<String, i64>,
    topics: Map<(i64, TopicKey), i64>,
    phrasings: Map<(i64, String), i64>,
    assistant_models: Map<i64, Option<String>>,
    centroids: Map<i64, CentroidIndex>,
    lexical: Map<i64, LexicalIndex>,
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

    fn cache(self, caches: &mut Caches) -> &mut Map<String, i64> {
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

    fn cache(self, caches: &mut Caches) -> &mut Map<Uuid, i64> {
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
    ) -> rusqlite::Result<Self> {
        let started = std::time::Instant::now();
        let ids = StoredIds::load(&conn)?;
        tracing::info!(
            ids = ids.len(),
            seconds = started.elapsed().as_secs_f64(),
            "loaded the filter of stored interaction ids"
        );
        Ok(Self {
            conn,
            catalogue,
            telemetry,
            data_version,
            topic_threshold,
            caches: Caches::default(),
            ids,
            rollups: if maintain_rollups {
                RollupMode::Stale
            } else {
                RollupMode::Off
            },
        })
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
            ids: &mut self.ids,
            rollups,
            catalogue: &self.catalogue,
            topic_threshold: self.topic_threshold,
            unpriced: Vec::new(),
            topic_counts: Map::default(),
            phrasing_counts: Map::default(),
            last_retrievals: Map::default(),
            moved_centroids: Map::default(),
            statements: Default::default(),
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
        apply.flush_centroids()?;
        apply.flush_topic_counts()?;
        apply.flush_last_retrievals()?;
        let unpriced = std::mem::take(&mut apply.unpriced);
        let rollups = apply.rollups.take();
        // Its held statements borrow the transaction.
        drop(apply);
        if let Some(rollups) = rollups {
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
