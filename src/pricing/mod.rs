//! Model pricing: owns the price catalogue (built-in list prices plus the user's override
//! file), model-name normalisation, and the exact integer cost of an interaction.
//!
//! Used by ingestion (`ingest.md`: an interaction without `cost_usd` is priced from the
//! catalogue by its model at its timestamp; a model without a price is stored at cost 0 and
//! reported as unpriced) and by the API's price listing.
//!
//! Units, chosen so that sums are exact and reproducible:
//! - prices are integer micro-dollars per million tokens (USD × 10⁶), converted from the
//!   decimal text of the TOML file without passing through binary floating point;
//! - costs are integer nano-dollars (USD × 10⁹), rounded half-to-even once per interaction.
//!
//! Matching a model name, most specific first (the first step that finds a name decides;
//! among entries for that name, the user's file wins over the built-ins, then the latest
//! `effective_from` not after the interaction's timestamp; none in effect → unpriced):
//! 1. the normalised name equals a canonical name or alias;
//! 2. it does after removing trailing dates / versions one at a time (`-2024-08-06`, `-latest`);
//! 3. the most specific `patterns` glob matches it (local runtimes, `:free` routes);
//! 4. the longest canonical name or alias that is a prefix of it ending at a `-`.

mod catalogue;
mod normalize;

use chrono::DateTime;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::fmt;
use std::path::PathBuf;

pub use catalogue::Catalogue;
pub use normalize::normalize_model_name;

/// Nano-dollars in one US dollar: costs are integer nano-dollars.
#[cfg(test)]
pub const NANO_USD_PER_USD: i64 = 1_000_000_000;

/// Micro-dollars in one US dollar: prices are integer micro-dollars per million tokens.
pub const MICRO_USD_PER_USD: i64 = 1_000_000;

/// Converts an integer nano-dollar amount to US dollars for display (API rounding is the
/// caller's business).
#[cfg(test)]
pub fn nusd_to_usd(nusd: i64) -> f64 {
    nusd as f64 / NANO_USD_PER_USD as f64
}

/// Where an entry comes from. User entries win over built-ins for the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// The user's override file (listed first: it has precedence).
    User,
    /// The catalogue compiled into the binary.
    Builtin,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::User => "user",
            Origin::Builtin => "builtin",
        }
    }
}

/// One price of one model, valid from `effective_from` until the next entry for the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEntry {
    /// Stable identifier, e.g. `openai/gpt-4o@2024-08-06`; a user entry with the same id
    /// replaces the built-in one.
    pub id: String,
    pub provider: String,
    /// Canonical model name as written in the catalogue.
    pub model: String,
    pub aliases: Vec<String>,
    pub patterns: Vec<String>,
    /// Unix microseconds (UTC midnight of the `effective_from` date).
    pub effective_from_micros: i64,
    pub input_per_m_micro_usd: i64,
    pub cached_input_per_m_micro_usd: i64,
    pub output_per_m_micro_usd: i64,
    pub origin: Origin,
}

impl PriceEntry {
    /// Cost in nano-dollars of `input` prompt tokens of which `cached_input` were read from
    /// the provider's cache, plus `output` completion tokens:
    /// `round_half_even((uncached × p_in + cached × p_cached + output × p_out) / 1000)`
    /// (tokens × micro-USD per 10⁶ tokens = 10⁻¹² USD, so / 1000 gives nano-USD).
    ///
    /// Ingestion validates counts; this function still stays total: negative counts count
    /// as 0, cached tokens are capped at `input`, and an amount beyond `i64` saturates.
    pub fn cost_nusd(&self, input: i64, cached_input: i64, output: i64) -> i64 {
        let input = i128::from(input.max(0));
        let cached = i128::from(cached_input.max(0)).min(input);
        let output = i128::from(output.max(0));
        let pico_usd = (input - cached) * i128::from(self.input_per_m_micro_usd)
            + cached * i128::from(self.cached_input_per_m_micro_usd)
            + output * i128::from(self.output_per_m_micro_usd);
        let nusd = div_round_half_even(pico_usd, 1000);
        i64::try_from(nusd).unwrap_or(if nusd < 0 { i64::MIN } else { i64::MAX })
    }

    /// The `effective_from` date as `YYYY-MM-DD`.
    pub fn effective_from_date(&self) -> String {
        DateTime::from_timestamp_micros(self.effective_from_micros)
            .map(|at| at.date_naive().format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    }
}

/// `n / d` rounded to the nearest integer, ties to even (banker's rounding, so that many
/// small costs do not drift upwards when summed). `d` must be positive.
fn div_round_half_even(n: i128, d: i128) -> i128 {
    let (quotient, remainder) = (n.div_euclid(d), n.rem_euclid(d));
    match (2 * remainder).cmp(&d) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient & 1),
    }
}

fn micro_to_usd(micro: i64) -> f64 {
    micro as f64 / MICRO_USD_PER_USD as f64
}

/// The API listing: same field names as the catalogue file (prices in USD per million
/// tokens as numbers), so a listed entry can be pasted into an override file.
impl Serialize for PriceEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("PriceEntry", 10)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("provider", &self.provider)?;
        s.serialize_field("model", &self.model)?;
        s.serialize_field("aliases", &self.aliases)?;
        s.serialize_field("patterns", &self.patterns)?;
        s.serialize_field("effective_from", &self.effective_from_date())?;
        s.serialize_field("input", &micro_to_usd(self.input_per_m_micro_usd))?;
        s.serialize_field(
            "cached_input",
            &micro_to_usd(self.cached_input_per_m_micro_usd),
        )?;
        s.serialize_field("output", &micro_to_usd(self.output_per_m_micro_usd))?;
        s.serialize_field("origin", self.origin.as_str())?;
        s.end()
    }
}

/// Which catalogue text an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogueSource {
    Builtin,
    File(PathBuf),
}

impl fmt::Display for CatalogueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogueSource::Builtin => f.write_str("built-in pricing catalogue"),
            CatalogueSource::File(path) => write!(f, "pricing file {}", path.display()),
        }
    }
}

/// Names one `[[price]]` entry in an error: 1-based position in its file, and its id when
/// it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    pub index: usize,
    pub id: Option<String>,
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "entry {} (id {id:?})", self.index),
            None => write!(f, "entry {} (no id)", self.index),
        }
    }
}

/// Why a catalogue could not be loaded. Every message names the file and, where it applies,
/// the entry, so a user can fix an override file from the message alone.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("{origin}: cannot read: {error}")]
    Read {
        origin: CatalogueSource,
        #[source]
        error: std::io::Error,
    },
    #[error("{origin}: not valid TOML: {message}")]
    Syntax {
        origin: CatalogueSource,
        message: String,
    },
    #[error("{origin}: {message}")]
    Document {
        origin: CatalogueSource,
        message: String,
    },
    #[error("{origin}: {entry}: {message}")]
    Entry {
        origin: CatalogueSource,
        entry: EntryRef,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p_in: i64, p_cached: i64, p_out: i64) -> PriceEntry {
        PriceEntry {
            id: "test/x@2024-01-01".into(),
            provider: "test".into(),
            model: "x".into(),
            aliases: vec![],
            patterns: vec![],
            effective_from_micros: 1_704_067_200_000_000,
            input_per_m_micro_usd: p_in,
            cached_input_per_m_micro_usd: p_cached,
            output_per_m_micro_usd: p_out,
            origin: Origin::Builtin,
        }
    }

    #[test]
    fn cost_exact_values() {
        // gpt-4o: $2.50 in, $1.25 cached, $10 out per million.
        let gpt4o = entry(2_500_000, 1_250_000, 10_000_000);
        // 1830 in, 212 out: 1830 × 2.5e-6 + 212 × 1e-5 = 0.004575 + 0.00212 = $0.006695.
        assert_eq!(gpt4o.cost_nusd(1830, 0, 212), 6_695_000);
        // 1000 cached of 1830: 830 × 2.5 + 1000 × 1.25 + 212 × 10 µ$ = 5_445_000 n$.
        assert_eq!(gpt4o.cost_nusd(1830, 1000, 212), 5_445_000);
        assert_eq!(gpt4o.cost_nusd(0, 0, 0), 0);
        // One million output tokens cost exactly the output price.
        assert_eq!(gpt4o.cost_nusd(0, 0, 1_000_000), 10 * NANO_USD_PER_USD);
    }

    #[test]
    fn cost_rounds_half_to_even() {
        // $0.0375 per million (gemini-1.5-flash-8b input): 1 token = 37.5 n$.
        let cheap = entry(37_500, 10_000, 150_000);
        assert_eq!(cheap.cost_nusd(1, 0, 0), 38); // 37.5 → 38 (even)
        assert_eq!(cheap.cost_nusd(2, 0, 0), 75);
        assert_eq!(cheap.cost_nusd(3, 0, 0), 112); // 112.5 → 112 (even)
        // 3 cached at $0.01 + 1 uncached + 1 output: 30 + 37.5 + 150 = 217.5 → 218.
        assert_eq!(cheap.cost_nusd(4, 3, 1), 218);
        let half = entry(500, 0, 0); // 1 token = 0.5 n$
        assert_eq!(half.cost_nusd(1, 0, 0), 0); // 0.5 → 0
        assert_eq!(half.cost_nusd(3, 0, 0), 2); // 1.5 → 2
        assert_eq!(half.cost_nusd(5, 0, 0), 2); // 2.5 → 2
        assert_eq!(half.cost_nusd(7, 0, 0), 4); // 3.5 → 4
        let odd = entry(1_501, 0, 0); // 1 token = 1.501 n$ → just above half
        assert_eq!(odd.cost_nusd(1, 0, 0), 2);
    }

    #[test]
    fn cost_is_total_on_bad_input() {
        let e = entry(1_000_000, 100_000, 2_000_000);
        assert_eq!(e.cost_nusd(-5, -1, -9), 0);
        // Cached above input is capped: 10 tokens all cached.
        assert_eq!(e.cost_nusd(10, 50, 0), e.cost_nusd(10, 10, 0));
        assert_eq!(e.cost_nusd(10, 10, 0), 1_000);
        // Saturates instead of wrapping.
        let huge = entry(1_000_000_000_000, 0, 1_000_000_000_000);
        assert_eq!(huge.cost_nusd(i64::MAX, 0, i64::MAX), i64::MAX);
    }

    #[test]
    fn div_round_half_even_table() {
        for (n, want) in [
            (0, 0),
            (499, 0),
            (500, 0),
            (501, 1),
            (1500, 2),
            (2500, 2),
            (2501, 3),
            (-500, 0),
            (-1500, -2),
            (-1501, -2),
            (-2500, -2),
        ] {
            assert_eq!(div_round_half_even(n, 1000), want, "{n}/1000");
        }
    }

    #[test]
    fn serializes_usd_per_million() {
        let mut e = entry(37_500, 10_000, 150_000);
        e.aliases = vec!["y".into()];
        let text = toml::to_string(&e).unwrap_or_else(|err| panic!("{err}"));
        assert!(text.contains("input = 0.0375"), "{text}");
        assert!(text.contains("cached_input = 0.01"), "{text}");
        assert!(text.contains("output = 0.15"), "{text}");
        assert!(text.contains("effective_from = \"2024-01-01\""), "{text}");
        assert!(text.contains("origin = \"builtin\""), "{text}");
    }

    #[test]
    fn error_messages_name_file_and_entry() {
        let err = PricingError::Entry {
            origin: CatalogueSource::File("/x/prices.toml".into()),
            entry: EntryRef {
                index: 3,
                id: Some("acme/foo".into()),
            },
            message: "input price must be a finite number >= 0".into(),
        };
        assert_eq!(
            err.to_string(),
            "pricing file /x/prices.toml: entry 3 (id \"acme/foo\"): input price must be a finite number >= 0"
        );
    }

    #[test]
    fn nusd_converts_to_usd() {
        assert_eq!(nusd_to_usd(6_695_000), 0.006695);
    }
}
