//! The finalizer: a task that turns complete traces into interactions. A
//! trace is complete when no span of it arrived for the settle period, or
//! when it has been pending for the maximum hold. Each round reads the due
//! traces' span facts (its own read connection), maps them, validates the
//! interactions exactly as `/api/v1/ingest` does, and hands them to the
//! writer, which stores them and retires the spans in one transaction.
//! While a backlog lasts, rounds overlap: the next round's traces are read
//! and mapped while the writer commits the previous round's (the traces in
//! flight are not due again meanwhile), so mapping and storing run on two
//! cores instead of taking turns.
//! Stopped by the server's shutdown token; what is pending stays on disk and
//! is finalised after a restart (a settle period after it, so exporters can
//! deliver what they held meanwhile).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::OtlpSettings;
use super::assemble::{self, Interaction, Mapped};
use super::facts::TraceRow;
use crate::ingest::event::{AssistantEvent, Event, Patch};
use crate::ingest::interaction as ingest_interaction;
use crate::ingest::json::Json as Borrowed;
use crate::ingest::validate::{self, EventLimits, Rejection};
use crate::store::interface::{FinalOutcome, Finalization, TraceId};
use crate::store::{PendingSource, Store, StoreError};
use crate::telemetry::Telemetry;
use crate::time::Timestamp;

/// Traces finalised per round at most (one writer job).
const ROUND_TRACES: usize = 2_000;

/// Starts the finalizer; it ends when `shutdown` is cancelled.
pub fn spawn(
    store: Arc<dyn Store>,
    telemetry: Arc<Telemetry>,
    settings: OtlpSettings,
    limits: EventLimits,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut finalizer = Finalizer {
            store,
            telemetry,
            settings,
            limits,
            reader: None,
            registered: HashSet::new(),
            started_us: Timestamp::now().micros(),
            in_flight: None,
        };
        let tick =
            (settings.settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        loop {
            let busy = match finalizer.round().await {
                Ok(busy) => busy,
                Err(error) => {
                    tracing::warn!(%error, "finalising OTLP traces failed; retrying");
                    false
                }
            };
            finalizer
                .telemetry
                .otlp
                .set_pending(finalizer.store.pending().stats());
            if busy {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = shutdown.cancelled() => break,
            }
        }
        // The writer finishes a commit it was handed; its outcome is counted.
        if let Err(error) = finalizer.settle_in_flight().await {
            tracing::warn!(%error, "finalising OTLP traces failed at shutdown; they stay pending");
        }
    })
}

struct Finalizer {
    store: Arc<dyn Store>,
    telemetry: Arc<Telemetry>,
    settings: OtlpSettings,
    limits: EventLimits,
    reader: Option<Arc<std::sync::Mutex<Box<dyn PendingSource>>>>,
    /// Assistants known to be registered (not registered again).
    registered: HashSet<Uuid>,
    started_us: i64,
    /// The round the writer is committing, if any.
    in_flight: Option<InFlight>,
}

/// A round handed to the writer: its traces (not due again until it is
/// settled), what to count once it is stored, and the commit.
struct InFlight {
    traces: HashSet<TraceId>,
    notes: Vec<Notes>,
    commit: tokio::task::JoinHandle<Result<Vec<FinalOutcome>, StoreError>>,
}

/// Per trace: interactions, refusals, duplicate spans, unresolved documents,
/// assistants registered on first sight.
type Notes = (usize, Vec<String>, usize, u64, Vec<Uuid>);

/// One due trace, mapped and validated, before the writer has it.
struct Prepared {
    finalization: Finalization,
    interactions: usize,
    rejected: Vec<String>,
    duplicate_spans: usize,
    unresolved_documents: u64,
    new_assistants: Vec<Uuid>,
}

impl Finalizer {
    /// Finalises the traces due now; true when there may be more right
    /// away. With a full round, its commit is left running (in flight) and
    /// settled by the next round once that one's traces are mapped.
    async fn round(&mut self) -> Result<bool, StoreError> {
        let now = Timestamp::now().micros();
        let settle = micros(self.settings.settle);
        // After a restart, pending traces get a settle period first.
        if now < self.started_us + settle {
            return Ok(false);
        }
        let no_traces = HashSet::new();
        let due = self.store.pending().due(
            now - settle,
            now - micros(self.settings.max_hold),
            ROUND_TRACES,
            self.in_flight.as_ref().map_or(&no_traces, |f| &f.traces),
        );
        if due.is_empty() {
            self.settle_in_flight().await?;
            return Ok(false);
        }
        let busy = due.len() == ROUND_TRACES;
        let reader = self.reader()?;
        let registered = self.registered.clone();
        let limits = self.limits.clone();
        let traces: HashSet<TraceId> = due.iter().copied().collect();
        let prepared = tokio::task::spawn_blocking(move || {
            let reader = reader
                .lock()
                .map_err(|_| StoreError::Task("finalizer reader".into()))?;
            prepare_all(&**reader, &due, &registered, &limits)
        })
        .await
        .map_err(|e| StoreError::Task(format!("finalizer task: {e}")))??;
        // The previous round was committed meanwhile.
        self.settle_in_flight().await?;
        let mut finalizations = Vec::with_capacity(prepared.len());
        let mut notes = Vec::with_capacity(prepared.len());
        for p in prepared {
            notes.push((
                p.interactions,
                p.rejected,
                p.duplicate_spans,
                p.unresolved_documents,
                p.new_assistants,
            ));
            finalizations.push(p.finalization);
        }
        let store = self.store.clone();
        let commit = tokio::spawn(async move { store.finalize_traces(finalizations).await });
        self.in_flight = Some(InFlight {
            traces,
            notes,
            commit,
        });
        if !busy {
            self.settle_in_flight().await?;
        }
        Ok(busy)
    }

    /// Waits for the round in flight and counts what became of its traces.
    async fn settle_in_flight(&mut self) -> Result<(), StoreError> {
        let Some(InFlight { notes, commit, .. }) = self.in_flight.take() else {
            return Ok(());
        };
        let outcomes = commit
            .await
            .map_err(|e| StoreError::Task(format!("finalizer commit: {e}")))??;
        let metrics = &self.telemetry.otlp;
        for (outcome, (interactions, rejected, duplicates, unresolved, assistants)) in
            outcomes.into_iter().zip(notes)
        {
            let FinalOutcome::Finalized(stored) = outcome else {
                continue;
            };
            self.registered.extend(assistants);
            metrics.spans_duplicate.inc_by(duplicates as u64);
            metrics.documents_unresolved.inc_by(unresolved);
            metrics
                .interactions_rejected
                .inc_by((rejected.len() + stored.rejected.len()) as u64);
            for message in rejected
                .iter()
                .chain(stored.rejected.iter().map(|(_, m)| m))
            {
                tracing::warn!(error = %message, "an interaction of an OTLP trace was refused");
            }
            let kept = interactions.saturating_sub(stored.rejected.len());
            metrics.interactions.inc_by(kept as u64);
            metrics.count_trace(if kept > 0 {
                "interaction"
            } else if interactions > 0 || !rejected.is_empty() {
                "rejected"
            } else {
                "no_interaction"
            });
        }
        Ok(())
    }

    fn reader(&mut self) -> Result<Arc<std::sync::Mutex<Box<dyn PendingSource>>>, StoreError> {
        if let Some(reader) = &self.reader {
            return Ok(reader.clone());
        }
        let reader = Arc::new(std::sync::Mutex::new(self.store.pending_reader()?));
        self.reader = Some(reader.clone());
        Ok(reader)
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Reads, maps and validates the due traces.
fn prepare_all(
    reader: &dyn PendingSource,
    due: &[TraceId],
    registered: &HashSet<Uuid>,
    limits: &EventLimits,
) -> Result<Vec<Prepared>, StoreError> {
    let now = Timestamp::now().micros();
    let mut out = Vec::with_capacity(due.len());
    // Assistants registered by an earlier trace of this round.
    let mut new_here: HashSet<Uuid> = HashSet::new();
    for trace in due {
        let Some((max_seq, blobs)) = reader.rows(trace)? else {
            continue;
        };
        let rows: Vec<TraceRow> = blobs
            .iter()
            .filter_map(|blob| match postcard::from_bytes::<TraceRow>(blob) {
                Ok(row) => Some(row),
                Err(error) => {
                    tracing::warn!(%error, "a pending OTLP row could not be read; its spans are skipped");
                    None
                }
            })
            .collect();
        let mapped = assemble::map_trace(trace, &rows);
        out.push(prepare_trace(
            reader,
            *trace,
            max_seq,
            mapped,
            registered,
            &mut new_here,
            limits,
            now,
        )?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn prepare_trace(
    reader: &dyn PendingSource,
    trace_id: TraceId,
    max_seq: i64,
    mapped: Mapped,
    registered: &HashSet<Uuid>,
    new_here: &mut HashSet<Uuid>,
    limits: &EventLimits,
    now: i64,
) -> Result<Prepared, StoreError> {
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    let mut new_assistants = Vec::new();
    let interactions = mapped.interactions.len();
    for draft in mapped.interactions {
        if let Some(name) = &draft.service_name
            && !registered.contains(&draft.assistant)
            && !new_here.contains(&draft.assistant)
        {
            if !reader.assistant_registered(draft.assistant)? {
                events.push((
                    events.len(),
                    Event::Assistant(AssistantEvent {
                        id: draft.assistant,
                        name: Patch::Set(name.clone()),
                        model: Patch::Keep,
                    }),
                ));
            }
            new_here.insert(draft.assistant);
            new_assistants.push(draft.assistant);
        }
        tracing::debug!(interaction = ?draft.interaction, "an OTLP trace mapped to an interaction");
        match validate_interaction(draft.interaction, limits, now) {
            Ok(event) => events.push((events.len(), event)),
            Err(message) => rejected.push(message),
        }
    }
    Ok(Prepared {
        finalization: Finalization {
            trace_id,
            max_seq,
            span_ids: mapped.span_ids,
            events,
        },
        interactions: interactions - rejected.len(),
        rejected,
        duplicate_spans: mapped.duplicate_spans,
        unresolved_documents: mapped.unresolved_documents,
        new_assistants,
    })
}

/// A mapped interaction held to the rules of `/api/v1/ingest`, without
/// the JSON: the event that [`validate_draft`] makes of its JSON.
pub fn validate_interaction(
    interaction: Interaction,
    limits: &EventLimits,
    now: i64,
) -> Result<Event, String> {
    ingest_interaction::interaction(interaction.into_parts(), limits, now)
        .map(|event| Event::Interaction(Box::new(event)))
        .map_err(|Rejection(message)| message)
}

/// The validation of `/api/v1/ingest`, on a mapped interaction's JSON
/// ([`Interaction::to_json`]): the simple path the tests and the fuzz target
/// hold [`validate_interaction`] to.
pub fn validate_draft(event: &Json, limits: &EventLimits, now: i64) -> Result<Event, String> {
    validate::validate(&Borrowed::borrow(event), limits, now).map_err(|Rejection(message)| message)
}
