//! Spans of OpenTelemetry traces that are not complete yet. The writer
//! stores each request's spans of a trace as one `otlp_pending` row (their
//! facts, encoded by the OTLP module; opaque here) in the same group commit
//! as ingest, so an OTLP `200` means the spans are on disk. This module
//! keeps an in-memory index of the pending traces (first and last arrival,
//! span count, bytes), loaded from the table at start, updated by the writer
//! after each commit, and asked by the finalizer which traces are due. The
//! finalizer reads a due trace's rows on its own connection, maps them, and
//! hands the writer a [`Finalization`]: its interactions are stored, its rows
//! deleted and the trace remembered in `otlp_done`, in one transaction,
//! unless a span of the trace was committed meanwhile (then nothing happens
//! and the trace waits again).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::ingest::event::Event;
use crate::store::{AppendOutcome, StoreError};

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// Finalised traces remembered to recognise late and resent spans: the
/// most recent this many (about 40 bytes plus 8 per span each).
pub const RETAINED_DONE_TRACES: i64 = 200_000;

/// What one pending trace costs in the index's memory, about: a map entry
/// and two ordered-set entries with their allocator overhead.
pub const INDEX_BYTES_PER_TRACE: usize = 160;

/// The spans of one trace from one request, as the writer stores them.
#[derive(Debug, Clone)]
pub struct SpanGroup {
    pub trace_id: TraceId,
    pub span_ids: Vec<SpanId>,
    /// Whether a span of the group begins the trace in this service (no
    /// parent, or a remote one): until one has arrived the trace is not
    /// complete before its maximum hold.
    pub has_root: bool,
    /// The spans' facts, encoded by the caller; read back by the finalizer.
    pub facts: Vec<u8>,
}

/// The spans of one OTLP request, received at `received_us`.
#[derive(Debug, Clone)]
pub struct SpanAppend {
    pub groups: Vec<SpanGroup>,
    pub received_us: i64,
}

/// What became of the spans of one request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpanOutcome {
    /// Stored as pending.
    pub stored: usize,
    /// Of a trace already finalised, and not among its spans: counted, not kept.
    pub late: usize,
    /// Of a trace already finalised and among its spans: an exporter's resend.
    pub resent: usize,
}

/// A due trace, mapped: the writer stores `events`, deletes the trace's
/// rows and remembers it, provided its newest row is still `max_seq`.
#[derive(Debug)]
pub struct Finalization {
    pub trace_id: TraceId,
    pub max_seq: i64,
    /// Every distinct span id of the trace (remembered in `otlp_done`).
    pub span_ids: Vec<SpanId>,
    /// Validated events (assistants registered on first sight, interactions).
    pub events: Vec<(usize, Event)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FinalOutcome {
    /// Stored (the outcome of its events), rows deleted, trace remembered.
    Finalized(AppendOutcome),
    /// A span arrived after the finalizer read the trace: left pending.
    Changed,
}

/// One pending trace in the index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    first: i64,
    last: i64,
    spans: usize,
    bytes: usize,
    has_root: bool,
}

#[derive(Default)]
struct Inner {
    /// Trace ids come from clients: foldhash seeded per process, several
    /// times faster than SipHash on every export and finaliser round.
    traces: HashMap<TraceId, Entry, foldhash::fast::RandomState>,
    by_last: BTreeSet<(i64, TraceId)>,
    by_first: BTreeSet<(i64, TraceId)>,
    spans: usize,
    bytes: usize,
}

/// Totals of the pending traces.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PendingStats {
    pub traces: usize,
    pub spans: usize,
    /// Encoded facts on disk.
    pub bytes: usize,
}

impl PendingStats {
    /// The index's memory, about.
    pub fn index_bytes(&self) -> usize {
        self.traces * INDEX_BYTES_PER_TRACE
    }
}

/// The in-memory index of pending traces. A `std` mutex: every critical
/// section is a few map operations and never crosses an `.await`.
#[derive(Default)]
pub struct PendingIndex {
    inner: Mutex<Inner>,
}

/// One stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub trace: TraceId,
    pub received: i64,
    pub spans: usize,
    pub bytes: usize,
    pub has_root: bool,
}

impl PendingIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it left plain counters behind: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds committed rows.
    pub fn record(&self, rows: &[Recorded]) {
        let mut inner = self.lock();
        for &Recorded {
            trace,
            received,
            spans,
            bytes,
            has_root,
        } in rows
        {
            inner.spans += spans;
            inner.bytes += bytes;
            let entry = match inner.traces.get(&trace).copied() {
                Some(mut entry) => {
                    if received > entry.last {
                        inner.by_last.remove(&(entry.last, trace));
                        entry.last = received;
                        inner.by_last.insert((entry.last, trace));
                    }
                    if received < entry.first {
                        inner.by_first.remove(&(entry.first, trace));
                        entry.first = received;
                        inner.by_first.insert((entry.first, trace));
                    }
                    entry.spans += spans;
                    entry.bytes += bytes;
                    entry.has_root |= has_root;
                    entry
                }
                None => {
                    inner.by_last.insert((received, trace));
                    inner.by_first.insert((received, trace));
                    Entry {
                        first: received,
                        last: received,
                        spans,
                        bytes,
                        has_root,
                    }
                }
            };
            inner.traces.insert(trace, entry);
        }
    }

    /// Forgets finalised traces.
    pub fn remove(&self, traces: &[TraceId]) {
        let mut inner = self.lock();
        for trace in traces {
            if let Some(entry) = inner.traces.remove(trace) {
                inner.by_last.remove(&(entry.last, *trace));
                inner.by_first.remove(&(entry.first, *trace));
                inner.spans -= entry.spans;
                inner.bytes -= entry.bytes;
            }
        }
    }

    /// Up to `limit` traces whose root has arrived and whose last span
    /// arrived at or before `settled_before`, or whose first arrived at or
    /// before `held_since`; the longest-waiting first. Traces in `busy`
    /// (being finalised) are passed over.
    pub fn due(
        &self,
        settled_before: i64,
        held_since: i64,
        limit: usize,
        busy: &HashSet<TraceId>,
    ) -> Vec<TraceId> {
        let inner = self.lock();
        let mut due: Vec<TraceId> = inner
            .by_first
            .iter()
            .take_while(|(first, _)| *first <= held_since)
            .filter(|(_, trace)| !busy.contains(trace))
            .take(limit)
            .map(|(_, trace)| *trace)
            .collect();
        for (last, trace) in &inner.by_last {
            if due.len() >= limit || *last > settled_before {
                break;
            }
            if busy.contains(trace) {
                continue;
            }
            let (held, rooted) = inner
                .traces
                .get(trace)
                .map_or((false, false), |e| (e.first <= held_since, e.has_root));
            if rooted && !held {
                due.push(*trace);
            }
        }
        due
    }

    pub fn stats(&self) -> PendingStats {
        let inner = self.lock();
        PendingStats {
            traces: inner.traces.len(),
            spans: inner.spans,
            bytes: inner.bytes,
        }
    }

    /// Spans pending for `trace` (0 when none).
    pub fn trace_spans(&self, trace: &TraceId) -> usize {
        self.lock().traces.get(trace).map_or(0, |e| e.spans)
    }

    /// The index of the rows already in the table (at start).
    pub fn load(conn: &Connection) -> Result<Self, rusqlite::Error> {
        let index = Self::default();
        let mut stmt = conn.prepare(
            "SELECT trace_id, received, spans, length(facts), roots FROM otlp_pending ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Recorded {
                trace: trace_id(&r.get::<_, Vec<u8>>(0)?),
                received: r.get::<_, i64>(1)?,
                spans: r.get::<_, i64>(2)? as usize,
                bytes: r.get::<_, i64>(3)? as usize,
                has_root: r.get::<_, i64>(4)? > 0,
            })
        })?;
        let rows = rows.collect::<Result<Vec<_>, _>>()?;
        index.record(&rows);
        Ok(index)
    }
}

/// A trace id from a stored blob (zero-padded if the blob is short, which
/// the writer never stores).
fn trace_id(bytes: &[u8]) -> TraceId {
    let mut id = [0u8; 16];
    let n = bytes.len().min(16);
    id[..n].copy_from_slice(&bytes[..n]);
    id
}

/// A trace's newest row sequence number and its rows' encoded facts.
pub type PendingRows = (i64, Vec<Vec<u8>>);

/// The finalizer's read connection.
pub struct PendingReader {
    conn: Connection,
}

impl PendingReader {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            conn: super::open_reader(path)?,
        })
    }

    /// The rows of `trace` (their encoded facts) and the newest row's
    /// sequence number; `None` when nothing of it is pending.
    pub fn rows(&self, trace: &TraceId) -> Result<Option<PendingRows>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, facts FROM otlp_pending WHERE trace_id = ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([trace.as_slice()])?;
        let mut max_seq = None;
        let mut facts = Vec::new();
        while let Some(row) = rows.next()? {
            max_seq = Some(row.get::<_, i64>(0)?);
            facts.push(row.get::<_, Vec<u8>>(1)?);
        }
        Ok(max_seq.map(|seq| (seq, facts)))
    }

    /// Whether the assistant is registered (an `assistant` event named it).
    pub fn assistant_registered(&self, id: Uuid) -> Result<bool, StoreError> {
        let registered: Option<i64> = self
            .conn
            .prepare_cached("SELECT registered FROM assistants WHERE id = ?1")?
            .query_row([id.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        Ok(registered == Some(1))
    }
}

/// Stores the spans of one request inside the writer's transaction: a row
/// per trace, unless the trace was finalised already (late or resent spans).
pub(super) fn append(
    tx: &rusqlite::Transaction<'_>,
    append: &SpanAppend,
    recorded: &mut Vec<Recorded>,
) -> Result<SpanOutcome, rusqlite::Error> {
    let mut outcome = SpanOutcome::default();
    let mut done = tx.prepare_cached("SELECT span_ids FROM otlp_done WHERE trace_id = ?1")?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO otlp_pending (trace_id, received, spans, roots, facts) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for group in &append.groups {
        let finalized: Option<Vec<u8>> = done
            .query_row([group.trace_id.as_slice()], |r| r.get(0))
            .optional()?;
        if let Some(known) = finalized {
            let resent = group
                .span_ids
                .iter()
                .filter(|id| known.chunks_exact(8).any(|k| k == id.as_slice()))
                .count();
            outcome.resent += resent;
            outcome.late += group.span_ids.len() - resent;
            continue;
        }
        insert.execute(params![
            group.trace_id.as_slice(),
            append.received_us,
            group.span_ids.len() as i64,
            i64::from(group.has_root),
            group.facts
        ])?;
        outcome.stored += group.span_ids.len();
        recorded.push(Recorded {
            trace: group.trace_id,
            received: append.received_us,
            spans: group.span_ids.len(),
            bytes: group.facts.len(),
            has_root: group.has_root,
        });
    }
    Ok(outcome)
}

/// Whether the trace's newest pending row is still `max_seq`.
pub(super) fn unchanged(
    tx: &rusqlite::Transaction<'_>,
    trace: &TraceId,
    max_seq: i64,
) -> Result<bool, rusqlite::Error> {
    let newest: Option<i64> = tx
        .prepare_cached("SELECT max(seq) FROM otlp_pending WHERE trace_id = ?1")?
        .query_row([trace.as_slice()], |r| r.get(0))?;
    Ok(newest == Some(max_seq))
}

/// Deletes the trace's rows and remembers it as finalised at `now_us`.
pub(super) fn retire(
    tx: &rusqlite::Transaction<'_>,
    finalization: &Finalization,
    now_us: i64,
) -> Result<(), rusqlite::Error> {
    let trace = finalization.trace_id.as_slice();
    tx.prepare_cached("DELETE FROM otlp_pending WHERE trace_id = ?1")?
        .execute([trace])?;
    let span_ids: Vec<u8> = finalization.span_ids.concat();
    tx.prepare_cached(
        "INSERT OR REPLACE INTO otlp_done (trace_id, finalized, span_ids) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![trace, now_us, span_ids])?;
    Ok(())
}

/// Keeps the newest [`RETAINED_DONE_TRACES`] finalised traces.
pub(super) fn forget_old_done(tx: &rusqlite::Transaction<'_>) -> Result<(), rusqlite::Error> {
    tx.prepare_cached("DELETE FROM otlp_done WHERE seq <= (SELECT max(seq) FROM otlp_done) - ?1")?
        .execute([RETAINED_DONE_TRACES])?;
    Ok(())
}

impl super::SqliteStore {
    /// The pending OTLP traces.
    pub fn pending(&self) -> &PendingIndex {
        &self.pending
    }

    /// A read connection for the finalizer.
    pub fn pending_reader(&self) -> Result<PendingReader, StoreError> {
        PendingReader::open(&self.path)
    }

    /// Stores the spans of one OTLP request as pending and waits until they
    /// are committed; refused at once when the writer's queue is full.
    pub async fn append_spans(&self, append: SpanAppend) -> Result<SpanOutcome, StoreError> {
        let spans: usize = append.groups.iter().map(|g| g.span_ids.len()).sum();
        let permit = self.queue_permit(spans, false).await?;
        let result = self
            .writer_job(|reply| {
                super::writer::Job::Spans(super::writer::SpansRequest { append, reply })
            })
            .await;
        drop(permit);
        result
    }

    /// Stores the interactions of finalised traces and retires their spans,
    /// waiting for room in the writer's queue.
    pub async fn finalize_traces(
        &self,
        traces: Vec<Finalization>,
    ) -> Result<Vec<FinalOutcome>, StoreError> {
        let events: usize = traces.iter().map(|t| t.events.len().max(1)).sum();
        let permit = self.queue_permit(events, true).await?;
        let result = self
            .writer_job(|reply| {
                super::writer::Job::Finalize(super::writer::FinalizeRequest { traces, reply })
            })
            .await;
        drop(permit);
        result
    }

    /// Permits of the writer's queue bound for `n` events: at once or
    /// refused, or (`wait`) when there is room.
    async fn queue_permit(
        &self,
        n: usize,
        wait: bool,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
        use std::sync::atomic::Ordering;
        if self.closing.load(Ordering::Acquire) {
            return Err(StoreError::ShuttingDown);
        }
        let n = n.clamp(1, self.max_queued_events) as u32;
        let queue = self.queued_events.clone();
        if wait {
            queue
                .acquire_many_owned(n)
                .await
                .map_err(|_| StoreError::ShuttingDown)
        } else {
            queue
                .try_acquire_many_owned(n)
                .map_err(|_| StoreError::QueueFull)
        }
    }

    async fn writer_job<T>(
        &self,
        make: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, StoreError>>) -> super::writer::Job,
    ) -> Result<T, StoreError> {
        let sender = match self.sender.lock() {
            Ok(guard) => guard.clone().ok_or(StoreError::ShuttingDown)?,
            Err(_) => return Err(StoreError::ShuttingDown),
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        sender.try_send(make(reply)).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => StoreError::QueueFull,
            tokio::sync::mpsc::error::TrySendError::Closed(_) => StoreError::ShuttingDown,
        })?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u8) -> TraceId {
        [n; 16]
    }

    fn row(trace: TraceId, received: i64, spans: usize, bytes: usize) -> Recorded {
        Recorded {
            trace,
            received,
            spans,
            bytes,
            has_root: true,
        }
    }

    #[test]
    fn due_traces_are_settled_or_held_too_long_oldest_first() {
        let index = PendingIndex::default();
        let none = HashSet::new();
        // trace 1: 100..=900; trace 2: at 500 only; trace 3: at 950.
        index.record(&[
            row(t(1), 100, 3, 30),
            row(t(2), 500, 1, 10),
            row(t(1), 900, 2, 20),
        ]);
        index.record(&[row(t(3), 950, 1, 10)]);
        assert_eq!(
            index.stats(),
            PendingStats {
                traces: 3,
                spans: 7,
                bytes: 70
            }
        );
        assert_eq!(index.trace_spans(&t(1)), 5);
        // Settled before 600: only trace 2 (trace 1 had a span at 900).
        assert_eq!(index.due(600, 0, 10, &none), vec![t(2)]);
        // Held since 100: trace 1 as well, first since it waited longest.
        assert_eq!(index.due(600, 100, 10, &none), vec![t(1), t(2)]);
        assert_eq!(index.due(1000, 100, 2, &none), vec![t(1), t(2)]);
        index.remove(&[t(1), t(2)]);
        assert_eq!(index.due(1000, 1000, 10, &none), vec![t(3)]);
        // A trace whose root has not arrived waits for its maximum hold.
        index.record(&[Recorded {
            has_root: false,
            ..row(t(4), 960, 1, 10)
        }]);
        assert_eq!(index.due(2000, 0, 10, &none), vec![t(3)]);
        assert_eq!(index.due(2000, 960, 10, &none), vec![t(3), t(4)]);
        // Traces being finalised are passed over.
        assert_eq!(index.due(2000, 960, 10, &HashSet::from([t(3)])), vec![t(4)]);
        index.remove(&[t(4)]);
        assert_eq!(
            index.stats(),
            PendingStats {
                traces: 1,
                spans: 1,
                bytes: 10
            }
        );
    }
}
