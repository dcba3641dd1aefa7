//! Repricing: recomputes the catalogue cost of stored interactions after a
//! price change, in one transaction on the writer's connection. A cost the
//! client sent is never touched. The unpriced-model summary is rebuilt from
//! the interactions in the same transaction, so it always matches them.

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

/// Reprices inside one transaction; nothing changes when it fails.
pub fn reprice(
    conn: &mut Connection,
    catalogue: &Catalogue,
    request: &RepriceRequest,
) -> Result<RepriceReport, rusqlite::Error> {
    let tx = conn.transaction()?;
    let wanted = request.model.as_deref().map(normalize_model_name);
    let rows = candidates(&tx, request.since)?;
    let (mut examined, mut changed, mut priced, mut unpriced) = (0, 0, 0, 0);
    let (mut before, mut after) = (0i128, 0i128);
    let mut first_changed: Option<i64> = None;
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
            examined += 1;
            let (cost, source, price_id) = price(catalogue, &row);
            before += i128::from(row.cost);
            after += i128::from(cost);
            if (cost, source, &price_id) == (row.cost, row.source, &row.price_id) {
                continue;
            }
            changed += 1;
            first_changed = Some(first_changed.map_or(row.ts, |t: i64| t.min(row.ts)));
            match (row.source, source) {
                (COST_UNPRICED, COST_CATALOGUE) => priced += 1,
                (COST_CATALOGUE, COST_UNPRICED) => unpriced += 1,
                _ => {}
            }
            update.execute(params![row.key, cost, source, price_id])?;
        }
    }
    rebuild_unpriced(&tx)?;
    if let Some(since) = first_changed {
        recompute_costs(&tx, since)?;
    }
    tx.commit()?;
    Ok(RepriceReport {
        interactions_examined: examined,
        interactions_changed: changed,
        newly_priced: priced,
        newly_unpriced: unpriced,
        cost_before_usd: usd(before),
        cost_after_usd: usd(after),
        delta_usd: usd(after - before),
    })
}

fn candidates(conn: &Connection, since: i64) -> Result<Vec<Row>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, ts, priced_model, input_tokens, cached_input_tokens, output_tokens,
                cost_nusd, cost_source, price_id
         FROM interactions WHERE ts >= ?1 AND cost_source <> 0",
    )?;
    let rows = stmt.query_map([since], |r| {
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
    crate::analytics::metrics::round::round_dp(nusd as f64 / 1e9, 9)
}
