//! The single writer: one thread owns the write connection and commits the
//! batches handed to it in groups, one transaction (one fsync) per group, so
//! concurrent requests share the cost of durability. A request is answered
//! only after its group committed.

mod apply;
mod ids;
mod series;
mod statements;
mod topics;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use apply::Apply;
use ids::StoredIds;
use series::Series;

use super::erase::{self, Progress, truncate_wal};
use super::pending::{self, FinalOutcome, Finalization, PendingIndex, SpanAppend, SpanOutcome};
use super::reprice::{RepriceRequest, Tally, finish as finish_reprice, reprice_range};
use super::retention::{Cursor, RetainBatch, retain_batch};
use super::rollup::write::Rollups;
use crate::pricing::Catalogue;
use crate::store::{AppendOutcome, Batch, StoreError};
use crate::telemetry::Telemetry;
use crate::telemetry::rag::state::SeriesState;
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
/// Sealing (days' hour rows merged into day rows, dirty days merged again)
/// runs in its own transaction, after a commit, when the queue is empty and
/// this long has passed since the last seal, or after [`SEAL_AT_MOST_EVERY`]
/// however busy the queue is. Meanwhile dirty days accumulate and are
/// merged once; reads stay exact, as they read unsealed and dirty days from
/// their hour rows.
const SEAL_WHEN_IDLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const SEAL_AT_MOST_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Key caches are dropped past this size: memory stays bounded, lookups fall back to SQL.
const CACHE_MAX_ENTRIES: usize = 1_000_000;

pub struct WriteRequest {
    pub batch: Batch,
    pub reply: oneshot::Sender<Reply>,
    /// The batch's share of the write-queue bound. It travels with the batch
    /// and is released only once the batch is committed (or failed), even if
    /// the request that sent it was cancelled meanwhile: the bound counts
    /// what the writer still holds, not who still waits.
    pub permit: tokio::sync::OwnedSemaphorePermit,
}

/// The outcome, and the batch handed back so that freeing its memory happens
/// on the requester's thread rather than the writer's.
pub struct Reply {
    pub result: Result<AppendOutcome, StoreError>,
    pub batch: Batch,
    /// Dropped with the batch, by the requester or, when it is gone, here.
    pub permit: tokio::sync::OwnedSemaphorePermit,
}

/// Cost provenance stored with each interaction.
pub(super) const COST_CLIENT: i64 = 0;
pub(super) const COST_CATALOGUE: i64 = 1;
pub(super) const COST_UNPRICED: i64 = 2;

/// The spans of one OTLP request, stored as pending (see `pending`).
pub struct SpansRequest {
    pub append: SpanAppend,
    pub reply: oneshot::Sender<Result<SpanOutcome, StoreError>>,
}

/// Due traces, mapped: their interactions stored and their spans retired.
pub struct FinalizeRequest {
    pub traces: Vec<Finalization>,
    pub reply: oneshot::Sender<Result<Vec<FinalOutcome>, StoreError>>,
}

/// One job for the writer: a batch of events, OTLP spans or finalised
/// traces (all three committed together in groups), or a reprice.
pub enum Job {
    Write(WriteRequest),
    Spans(SpansRequest),
    Finalize(FinalizeRequest),
    /// One day (`from <= ts < to`) of a reprice, in its own transaction.
    RepriceDay {
        request: RepriceRequest,
        from: i64,
        to: i64,
        reply: oneshot::Sender<Result<Tally, StoreError>>,
    },
    /// The end of a reprice: the unpriced-model summary.
    RepriceFinish {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// One step of a user's erasure (see `erase`), in transactions of its
    /// own: `None` when the store knows no such user.
    Erase {
        job: EraseJob,
        reply: oneshot::Sender<Result<Option<Progress>, StoreError>>,
    },
    /// One batch of a retention run (see `retention`), in its own transaction.
    Retain {
        cutoff: i64,
        limit: usize,
        cursor: Cursor,
        reply: oneshot::Sender<Result<RetainBatch, StoreError>>,
    },
    /// Holds the writer until the sender is dropped (tests: a stalled disk).
    #[cfg(test)]
    Stall(std::sync::mpsc::Receiver<()>),
    /// Ends the writer thread with a panic (tests: a bug in the writer).
    #[cfg(test)]
    Crash,
    /// Seals the rollup days before `today` as if the clock had passed midnight.
    #[cfg(test)]
    Seal {
        today: i64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// An erasure's next step: its start, or the step after a previous one.
pub enum EraseJob {
    Begin(String),
    Continue(Box<erase::Erasure>),
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
    /// Pending OTLP traces: updated after each commit that changes them.
    pending: Arc<PendingIndex>,
    heartbeat: Arc<super::health::Heartbeat>,
    last_seal: std::time::Instant,
    /// `None` when the Prometheus series are off.
    series: Option<Series>,
}

/// The jobs committed in one transaction.
#[derive(Default)]
struct Group {
    writes: Vec<WriteRequest>,
    spans: Vec<SpansRequest>,
    finals: Vec<FinalizeRequest>,
}

impl Group {
    /// Adds a job that joins groups; hands back one that does not.
    fn push(&mut self, job: Job) -> Option<Job> {
        match job {
            Job::Write(request) => self.writes.push(request),
            Job::Spans(request) => self.spans.push(request),
            Job::Finalize(request) => self.finals.push(request),
            other => return Some(other),
        }
        None
    }

    fn events(&self) -> usize {
        self.writes
            .iter()
            .map(|r| r.batch.events.len())
            .sum::<usize>()
            + self
                .spans
                .iter()
                .map(|r| r.append.groups.len())
                .sum::<usize>()
            + self.finals.iter().map(|r| r.traces.len()).sum::<usize>()
    }
}

/// What one transaction did, per job of its group.
struct Written {
    outcomes: Vec<AppendOutcome>,
    unpriced: Vec<String>,
    spans: Vec<SpanOutcome>,
    finals: Vec<Vec<FinalOutcome>>,
    recorded: Vec<pending::Recorded>,
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

/// Surrogate keys already resolved, and the topic indexes. Only valid for
/// committed rows, so they are cleared whenever a transaction rolls back; past
/// [`CACHE_MAX_ENTRIES`] keys, the keys alone are dropped.
#[derive(Default)]
struct Caches {
    assistants: Map<Uuid, i64>,
    users: Map<String, i64>,
    connectors: Map<Uuid, i64>,
    documents: Map<Uuid, i64>,
    sessions: Map<String, i64>,
    step_names: Map<String, i64>,
    topics: Map<(i64, TopicKey), i64>,
    /// Topics this writer created that have no phrasing yet: their first
    /// phrasing needs no lookup.
    fresh_topics: foldhash::HashSet<i64>,
    phrasings: Map<(i64, String), i64>,
    assistant_models: Map<i64, Option<String>>,
    centroids: Map<i64, CentroidIndex>,
    lexical: Map<i64, LexicalIndex>,
    /// Per assistant, the texts its question topics and aliases hold.
    question_norms: Map<i64, topics::Norms>,
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
            + self.fresh_topics.len()
            + self.phrasings.len()
            + self.assistant_models.len()
    }
}

/// Registry tables share one shape: `key`, `id` (16-byte UUID), `registered`.
#[derive(Clone, Copy)]
enum Registry {
    Assistants,
    Connectors,
    Documents,
}

/// Tables that intern a text (`key`, text column) the way registries intern
/// ids. Users are a registry whose ids are text.
#[derive(Clone, Copy)]
#[allow(clippy::enum_variant_names)]
enum Names {
    Sessions,
    StepNames,
    Users,
}

impl Names {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Names::Sessions => ("sessions", "sid"),
            Names::StepNames => ("step_names", "name"),
            Names::Users => ("users", "id"),
        }
    }

    fn cache(self, caches: &mut Caches) -> &mut Map<String, i64> {
        match self {
            Names::Sessions => &mut caches.sessions,
            Names::StepNames => &mut caches.step_names,
            Names::Users => &mut caches.users,
        }
    }
}

impl Registry {
    fn table(self) -> &'static str {
        match self {
            Registry::Assistants => "assistants",
            Registry::Connectors => "connectors",
            Registry::Documents => "documents",
        }
    }

    fn cache(self, caches: &mut Caches) -> &mut Map<Uuid, i64> {
        match self {
            Registry::Assistants => &mut caches.assistants,
            Registry::Connectors => &mut caches.connectors,
            Registry::Documents => &mut caches.documents,
        }
    }
}

/// What the writer shares with the store, or keeps on its behalf.
pub struct WriterHooks {
    /// Pending OTLP traces, updated after each commit that changes them.
    pub pending: Arc<PendingIndex>,
    /// The writer's current job, for readiness.
    pub heartbeat: Arc<super::health::Heartbeat>,
    /// The Prometheus series' stored state; `None` when they are off.
    pub series: Option<SeriesState>,
}

impl Writer {
    pub fn new(
        conn: Connection,
        catalogue: Arc<Catalogue>,
        telemetry: Arc<Telemetry>,
        data_version: Arc<AtomicU64>,
        options: &super::StoreOptions,
        hooks: WriterHooks,
    ) -> rusqlite::Result<Self> {
        let started = std::time::Instant::now();
        let ids = StoredIds::load(&conn)?;
        tracing::info!(
            ids = ids.len(),
            seconds = started.elapsed().as_secs_f64(),
            "loaded the filter of stored interaction ids"
        );
        let WriterHooks {
            pending,
            heartbeat,
            series,
        } = hooks;
        let series = series
            .map(|state| Series::open(&conn, state, telemetry.rag.clone()))
            .transpose()?;
        Ok(Self {
            series,
            conn,
            catalogue,
            telemetry,
            data_version,
            topic_threshold: options.topic_threshold,
            caches: Caches::default(),
            ids,
            rollups: if options.rollups {
                RollupMode::Stale
            } else {
                RollupMode::Off
            },
            pending,
            heartbeat,
            last_seal: std::time::Instant::now(),
        })
    }

    /// Runs until every sender is gone, then returns (the channel drains first).
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut held: Option<Job> = None;
        loop {
            self.heartbeat.idle();
            let first = match held.take() {
                Some(job) => job,
                None => match rx.blocking_recv() {
                    Some(job) => job,
                    None => break,
                },
            };
            self.heartbeat.busy();
            let mut group = Group::default();
            match group.push(first) {
                None => {}
                Some(Job::RepriceDay {
                    request,
                    from,
                    to,
                    reply,
                }) => {
                    let _ = reply.send(self.reprice_day(&request, from, to));
                    continue;
                }
                Some(Job::RepriceFinish { reply }) => {
                    let _ = reply.send(finish_reprice(&mut self.conn).map_err(StoreError::from));
                    continue;
                }
                Some(Job::Erase { job, reply }) => {
                    let _ = reply.send(self.erase(job));
                    continue;
                }
                Some(Job::Retain {
                    cutoff,
                    limit,
                    cursor,
                    reply,
                }) => {
                    let _ = reply.send(self.retain(cutoff, limit, cursor));
                    continue;
                }
                #[cfg(test)]
                Some(Job::Seal { today, reply }) => {
                    let _ = reply.send(self.seal(today));
                    continue;
                }
                #[cfg(test)]
                Some(Job::Stall(until)) => {
                    let _ = until.recv();
                    continue;
                }
                #[cfg(test)]
                Some(Job::Crash) => panic!("the writer crashed on purpose"),
                Some(_) => continue,
            }
            while group.events() < GROUP_MAX_EVENTS {
                match rx.try_recv() {
                    // A reprice waits for the group gathered before it.
                    Ok(next) => {
                        if let Some(other) = group.push(next) {
                            held = Some(other);
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group);
            let since = self.last_seal.elapsed();
            if (rx.is_empty() && since >= SEAL_WHEN_IDLE_EVERY) || since >= SEAL_AT_MOST_EVERY {
                self.seal_in_background();
            }
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

    /// Seals what is due in a transaction of its own, outside every ingest
    /// commit. A failure is logged; the next seal retries it.
    fn seal_in_background(&mut self) {
        self.last_seal = std::time::Instant::now();
        let RollupMode::Ready(rollups) = &mut self.rollups else {
            return;
        };
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            rollups.seal_all(&tx, today())?;
            tx.commit()
        })();
        if let Err(error) = result {
            tracing::warn!(%error, "sealing rollup days failed; it will be retried");
            self.rollups = RollupMode::Stale;
        }
    }

    fn reprice_day(
        &mut self,
        request: &RepriceRequest,
        from: i64,
        to: i64,
    ) -> Result<Tally, StoreError> {
        let tally = reprice_range(&mut self.conn, &self.catalogue, request, from, to)?;
        if tally.changed > 0 {
            // The day's cost rollups were rewritten behind the cached states.
            if !matches!(self.rollups, RollupMode::Off) {
                self.rollups = RollupMode::Stale;
            }
            // Costs are part of every cached answer.
            self.data_version.fetch_add(1, Ordering::Release);
        }
        Ok(tally)
    }

    /// Runs one step of an erasure between ingest commits. What the writer
    /// holds in memory about committed rows is dropped after it: after a
    /// chunk the session keys and rollup states (the chunk deleted sessions
    /// and rewrote rollup rows), after the other steps every cache (topics,
    /// phrasings and texts went). Cached answers are invalidated, and at the
    /// end the WAL is truncated so the erased rows' pages leave the disk.
    fn erase(&mut self, job: EraseJob) -> Result<Option<Progress>, StoreError> {
        let correct = !matches!(self.rollups, RollupMode::Off);
        let (chunk, result) = match job {
            EraseJob::Begin(user) => (true, erase::begin(&mut self.conn, &user, correct)),
            EraseJob::Continue(erasure) => (
                erasure.deleting(),
                erase::step(&mut self.conn, erasure).map(Some),
            ),
        };
        if chunk {
            self.caches.sessions = Default::default();
            if correct {
                self.rollups = RollupMode::Stale;
            }
            self.data_version.fetch_add(1, Ordering::Release);
        } else {
            self.forget_cached_state();
        }
        let progress = result?;
        if matches!(progress, Some(Progress::Done(_))) && !truncate_wal(&self.conn)? {
            tracing::warn!("the WAL could not be truncated after an erasure: a reader held it");
        }
        Ok(progress)
    }

    fn retain(
        &mut self,
        cutoff: i64,
        limit: usize,
        cursor: Cursor,
    ) -> Result<RetainBatch, StoreError> {
        let result = retain_batch(&mut self.conn, cutoff, limit, cursor);
        if let Ok(batch) = &result
            && batch.interactions + batch.phrasings + batch.topics > 0
        {
            // Cached keys may name deleted phrasings; topic indexes expired
            // texts. Deleted interactions leave every cache true: dropping
            // them after each of those batches made every ingest commit
            // between two of them reload its keys and topic indexes.
            if batch.phrasings + batch.topics > 0 {
                self.caches = Caches::default();
            }
            self.data_version.fetch_add(1, Ordering::Release);
        }
        Ok(result?)
    }

    /// After rows were deleted behind the writer's back: nothing it holds
    /// in memory about committed rows is trusted any more.
    fn forget_cached_state(&mut self) {
        self.caches = Caches::default();
        if !matches!(self.rollups, RollupMode::Off) {
            self.rollups = RollupMode::Stale;
        }
        self.data_version.fetch_add(1, Ordering::Release);
    }

    fn commit_group(&mut self, group: Group) {
        let started = std::time::Instant::now();
        let result = self.write(&group);
        self.telemetry
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(written) => {
                self.data_version.fetch_add(1, Ordering::Release);
                for model in written.unpriced {
                    self.telemetry.count_unpriced(&model);
                }
                self.pending.record(&written.recorded);
                for (request, outcome) in group.writes.into_iter().zip(written.outcomes) {
                    self.telemetry.count_outcome(&outcome);
                    let _ = request.reply.send(Reply {
                        result: Ok(outcome),
                        batch: request.batch,
                        permit: request.permit,
                    });
                }
                for (request, outcome) in group.spans.into_iter().zip(written.spans) {
                    let _ = request.reply.send(Ok(outcome));
                }
                for (request, outcomes) in group.finals.into_iter().zip(written.finals) {
                    let retired: Vec<pending::TraceId> = request
                        .traces
                        .iter()
                        .zip(&outcomes)
                        .filter(|(_, o)| matches!(o, FinalOutcome::Finalized(_)))
                        .map(|(t, _)| t.trace_id)
                        .collect();
                    self.pending.remove(&retired);
                    for outcome in &outcomes {
                        if let FinalOutcome::Finalized(outcome) = outcome {
                            self.telemetry.count_outcome(outcome);
                        }
                    }
                    let _ = request.reply.send(Ok(outcomes));
                }
            }
            Err(error) => {
                // Keys cached during the failed transaction point at rolled-back rows.
                self.caches = Caches::default();
                if !matches!(self.rollups, RollupMode::Off) {
                    self.rollups = RollupMode::Stale;
                }
                if let Some(series) = self.series.as_mut() {
                    series.rolled_back();
                }
                tracing::error!(%error, "ingest commit failed; the group was rolled back");
                let unavailable = StoreError::from(error).is_unavailable();
                self.telemetry.commit_failures.inc();
                for request in group.writes {
                    let _ = request.reply.send(Reply {
                        result: Err(StoreError::Commit { unavailable }),
                        batch: request.batch,
                        permit: request.permit,
                    });
                }
                for request in group.spans {
                    let _ = request.reply.send(Err(StoreError::Commit { unavailable }));
                }
                for request in group.finals {
                    let _ = request.reply.send(Err(StoreError::Commit { unavailable }));
                }
            }
        }
        if self.caches.len() > CACHE_MAX_ENTRIES {
            // The topic indexes are not caches: rebuilding one reads every
            // topic of its assistant, so with millions of distinct questions a
            // reload after each clear cost more than all the lookups it saved.
            let indexes = Caches {
                centroids: std::mem::take(&mut self.caches.centroids),
                lexical: std::mem::take(&mut self.caches.lexical),
                question_norms: std::mem::take(&mut self.caches.question_norms),
                ..Caches::default()
            };
            self.caches = indexes;
        }
    }

    /// One transaction for the whole group.
    fn write(&mut self, group: &Group) -> Result<Written, rusqlite::Error> {
        let batches: Vec<&Batch> = group.writes.iter().map(|r| &r.batch).collect();
        let tx = self.conn.transaction()?;
        let today = today();
        if matches!(self.rollups, RollupMode::Stale) {
            self.rollups = RollupMode::Ready(Box::new(Rollups::open(&tx, today)?));
        }
        let rollups = match &mut self.rollups {
            RollupMode::Ready(rollups) => Some(rollups.as_mut()),
            _ => None,
        };
        if let Some(series) = self.series.as_mut() {
            series.resume(&tx)?;
        }
        let mut apply = Apply {
            tx: &tx,
            caches: &mut self.caches,
            ids: &mut self.ids,
            rollups,
            catalogue: &self.catalogue,
            series: self.series.as_mut(),
            topic_threshold: self.topic_threshold,
            unpriced: Vec::new(),
            topic_counts: Map::default(),
            phrasing_counts: Map::default(),
            last_retrievals: Map::default(),
            moved_centroids: Map::default(),
            new_rows: Default::default(),
            statements: Default::default(),
        };
        let mut outcomes = Vec::with_capacity(batches.len());
        for batch in &batches {
            outcomes.push(apply.events(&batch.events)?);
        }
        let mut recorded = Vec::new();
        let mut spans = Vec::with_capacity(group.spans.len());
        for request in &group.spans {
            spans.push(pending::append(&tx, &request.append, &mut recorded)?);
        }
        let mut finals = Vec::with_capacity(group.finals.len());
        for request in &group.finals {
            finals.push(apply.finalize(&request.traces)?);
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
        }
        let series = self.series.as_mut().map(|s| s.save(&tx)).transpose()?;
        tx.commit()?;
        if let (Some(published), Some(pending)) = (self.series.as_mut(), series) {
            published.committed(pending);
        }
        if let RollupMode::Ready(rollups) = &mut self.rollups {
            rollups.committed(Timestamp::now().0);
        }
        Ok(Written {
            outcomes,
            unpriced,
            spans,
            finals,
            recorded,
        })
    }
}
