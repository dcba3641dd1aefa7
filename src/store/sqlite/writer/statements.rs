//! The statements the writer runs for (nearly) every interaction, held for
//! a whole transaction instead of looked up in rusqlite's statement cache
//! at each use.

use rusqlite::{CachedStatement, Transaction};

use super::apply::SqlResult;
use super::{Names, Registry};

pub(super) const INSERT_INTERACTION: &str = "INSERT OR IGNORE INTO interactions (
    id, ts, assistant, session, user, topic, phrasing, model, provider,
    ttft_us, total_us, cache_hit, input_tokens, output_tokens, cached_input_tokens,
    cost_nusd, cost_source, price_id, priced_model,
    rerank_before, rerank_after, rerank_improvement_n, rerank_position_n)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)";

pub(super) const INSERT_DETAILS: &str =
    "INSERT INTO interaction_details (ts, interaction, assistant, steps, documents)
 VALUES (?1, ?2, ?3, ?4, ?5)";

/// The statements run for (nearly) every interaction, each taken from
/// rusqlite's statement cache once per transaction and held until it ends.
/// A cache lookup hashes the whole SQL text with SipHash, and again to put
/// the statement back: 6 % of the writer's time, for the same few statements.
#[derive(Default)]
pub(super) struct Statements<'t> {
    pub(super) interaction: Held<'t>,
    pub(super) details: Held<'t>,
    /// Insert, then select, per interning table (see [`Interned`]).
    pub(super) intern: [(Held<'t>, Held<'t>); Interned::COUNT],
}

/// A statement prepared at most once per transaction.
#[derive(Default)]
pub(super) struct Held<'t>(Option<CachedStatement<'t>>);

impl<'t> Held<'t> {
    pub(super) fn get(
        &mut self,
        tx: &'t Transaction<'t>,
        sql: impl FnOnce() -> String,
    ) -> SqlResult<&mut CachedStatement<'t>> {
        let statement = match self.0.take() {
            Some(statement) => statement,
            None => tx.prepare_cached(&sql())?,
        };
        Ok(self.0.insert(statement))
    }
}

/// The tables that give text or ids surrogate keys, by their slot in
/// [`Statements::intern`].
#[derive(Clone, Copy)]
pub(super) enum Interned {
    Registry(Registry),
    Names(Names),
}

impl Interned {
    const COUNT: usize = 6;

    pub(super) fn slot(self) -> usize {
        match self {
            Interned::Registry(Registry::Assistants) => 0,
            Interned::Names(Names::Users) => 1,
            Interned::Registry(Registry::Connectors) => 2,
            Interned::Registry(Registry::Documents) => 3,
            Interned::Names(Names::Sessions) => 4,
            Interned::Names(Names::StepNames) => 5,
        }
    }

    pub(super) fn table(self) -> (&'static str, &'static str) {
        match self {
            Interned::Registry(registry) => (registry.table(), "id"),
            Interned::Names(names) => names.table(),
        }
    }
}
