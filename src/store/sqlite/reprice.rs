//! Repricing: recomputes the catalogue cost of stored interactions after a
//! price change, one day per transaction on the writer's connection, so
//! ingest commits between the days instead of waiting for the whole range.
//! A cost the client sent is never touched. Each day's cost rollups are
//! recomputed in that day's transaction; the unpriced-model summary is
//! rebuilt from the interactions once the last day is done.

use rusqlite::{Connection, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::rollup::rebuild::recompute_costs;
use super::writer::{COST_CATALOGUE, COST_UNPRICED};
use crate::pricing::{Catalogue, normalize_model_name};

/// What to reprice: interactions from `since` (µs), optionally of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct RepriceRequest {
    pub since: i64,
    /// Compared after model-name normalisation (`openai/gpt-4o-2024-08-06` = `gpt-4o`).
    pub model: Option<String>,
}

/// How much moved.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RepriceReport {
    /// Catalogue-priced or unpriced interactions in the range (client costs excluded).
    pub interactions_examined: i64,
    /// Those whose cost, price entry or priced/unpriced state changed.
    pub interactions_changed: i64,
    pub newly_priced: i64,
    pub newly_unpriced: i64,
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
    pub delta_usd: f64,
}

struct Row {
    key: i64,
    ts: i64,
    model: Option<String>,
    input: i64,
    cached: i64,
    output: i64,
    cost: i64,
    source: i64,
    price_id: Option<String>,
}

/// Where a reprice is: `GET /api/v1/pricing/reprice`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RepriceStatus {
    /// `idle` (none since the server started), `running`, `done` or `failed`.
    pub state: RepriceState,
    /// The request's `since` and `model`.
    pub since: Option<crate::time::Timestamp>,
    pub model: Option<String>,
    /// Days of stored interactions in the range, and those repriced so far
    /// (each day is one transaction, committed between ingest's).
    pub days_total: i64,
    pub days_done: i64,
    /// What moved so far (all of it once `done`).
    pub report: Option<RepriceReport>,
    /// Why it failed (`failed`); the days before it stay repriced.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepriceState {
    Idle,
    Running,
    Done,
    Failed,
}

impl RepriceStatus {
    pub fn idle() -> Self {
        Self {
            state: RepriceState::Idle,
            since: None,
            model: None,
            days_total: 0,
            days_done: 0,
            report: None,
            error: None,
        }
    }
}

/// What the days repriced so far moved, in exact units (nano-dollars).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub examined: i64,
    pub changed: i64,
    pub newly_priced: i64,
    pub newly_unpriced: i64,
    pub before_nusd: i128,
    pub after_nusd: i128,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.examined += other.examined;
        self.changed += other.changed;
        self.newly_priced += other.newly_priced;
        self.newly_unpriced += other.newly_unpriced;
        self.before_nusd += other.before_nusd;
        self.after_nusd += other.after_nusd;
    }

    pub fn report(&self) -> RepriceReport {
        RepriceReport {
            interactions_examined: self.examined,
            interactions_changed: self.changed,
            newly_priced: self.newly_priced,
            newly_unpriced: self.newly_unpriced,
            cost_before_usd: usd(self.before_nusd),
            cost_after_usd: usd(self.after_nusd),
            delta_usd: usd(self.after_nusd - self.before_nusd),
        }
    }
}

/// Reprices the interactions of `request` with `from <= ts < to` (one day of
/// the range) in one transaction, with the cost rollups of that day; nothing
/// changes when it fails.
pub fn reprice_range(
    conn: &mut Connection,
    catalogue: &Catalogue,
    request: &RepriceRequest,
    from: i64,
    to: i64,
) -> Result<Tally, rusqlite::Error> {
    let tx = conn.transaction()?;
    let wanted = request.model.as_deref().map(normalize_model_name);
    let rows = candidates(&tx, from.max(request.since), to)?;
    let mut tally = Tally::default();
    let mut changed_span: Option<(i64, i64)> = None;
    {
        let mut update = tx.prepare_cached(
            "UPDATE interactions SET cost_nusd = ?2, cost_source = ?3, price_id = ?4 WHERE key = ?1",
        )?;
        for row in rows {
            if let Some(wanted) = &wanted
                && row.model.as_deref().map(normalize_model_name).as_ref() != Some(wanted)
            {
                continue;
            }
            tally.examined += 1;
            let (cost, source, price_id) = price(catalogue, &row);
            tally.before_nusd += i128::from(row.cost);
            tally.after_nusd += i128::from(cost);
            if (cost, source, &price_id) == (row.cost, row.source, &row.price_id) {
                continue;
            }
            tally.changed += 1;
            changed_span = Some(
                changed_span.map_or((row.ts, row.ts), |(a, b)| (a.min(row.ts), b.max(row.ts))),
            );
            match (row.source, source) {
                (COST_UNPRICED, COST_CATALOGUE) => tally.newly_priced += 1,
                (COST_CATALOGUE, COST_UNPRICED) => tally.newly_unpriced += 1,
                _ => {}
            }
            update.execute(params![row.key, cost, source, price_id])?;
        }
    }
    if let Some((first, last)) = changed_span {
        recompute_costs(&tx, first, Some(last))?;
    }
    tx.commit()?;
    Ok(tally)
}

/// The last step of a reprice: the unpriced-model summary from the
/// interactions as they now are.
pub fn finish(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    rebuild_unpriced(&tx)?;
    tx.commit()
}

/// The first and last timestamps at or after `since`, if any: the days a
/// reprice walks.
pub fn span(conn: &Connection, since: i64) -> Result<Option<(i64, i64)>, rusqlite::Error> {
    conn.query_row(
        "SELECT min(ts), max(ts) FROM interactions WHERE ts >= ?1",
        [since],
        |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
    )
}

fn candidates(conn: &Connection, from: i64, to: i64) -> Result<Vec<Row>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, ts, priced_model, input_tokens, cached_input_tokens, output_tokens,
                cost_nusd, cost_source, price_id
         FROM interactions WHERE ts >= ?1 AND ts < ?2 AND cost_source <> 0",
    )?;
    let rows = stmt.query_map([from, to], |r| {
        Ok(Row {
            key: r.get(0)?,
            ts: r.get(1)?,
            model: r.get(2)?,
            input: r.get(3)?,
            cached: r.get(4)?,
            output: r.get(5)?,
            cost: r.get(6)?,
            source: r.get(7)?,
            price_id: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// The same rule as at ingest: the entry in effect at the interaction's time.
fn price(catalogue: &Catalogue, row: &Row) -> (i64, i64, Option<String>) {
    match row
        .model
        .as_deref()
        .and_then(|m| catalogue.lookup(m, row.ts))
    {
        Some(entry) => (
            entry.cost_nusd(row.input, row.cached, row.output),
            COST_CATALOGUE,
            Some(entry.id.clone()),
        ),
        None => (0, COST_UNPRICED, None),
    }
}

fn rebuild_unpriced(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.execute("DELETE FROM unpriced_models", [])?;
    conn.execute(
        "INSERT INTO unpriced_models (model, count, first_seen, last_seen)
         SELECT coalesce(priced_model, '(none)'), count(*), min(ts), max(ts)
         FROM interactions WHERE cost_source = 2 GROUP BY 1",
        [],
    )?;
    Ok(())
}

fn usd(nusd: i128) -> f64 {
    crate::metrics::round::round_dp(nusd as f64 / 1e9, 9)
}
