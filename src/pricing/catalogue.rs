//! Loading, validating and indexing the price catalogue, and looking a model up in it.
//!
//! The file format (built-in `catalogue.toml` and user overrides alike) is a list of
//! `[[price]]` tables; see `catalogue.toml` for the fields. The TOML is walked by hand
//! (`toml::de::DeTable`) rather than through serde so that prices are read from their decimal
//! text (0.0375 is not representable in binary) and every error can name its entry.

use super::normalize::{self, NamePattern};
use super::{CatalogueSource, EntryRef, MICRO_USD_PER_USD, Origin, PriceEntry, PricingError};
use chrono::NaiveDate;
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// The built-in catalogue, compiled in so the server prices out of the box.
const BUILTIN_TOML: &str = include_str!("catalogue.toml");

/// Upper bound on a price ($1M per million tokens): far above any real price, and low enough
/// that `tokens × price` can never overflow the i128 cost arithmetic.
const MAX_PRICE_MICRO_USD: i64 = 1_000_000 * MICRO_USD_PER_USD;

/// Fields a `[[price]]` table may have; anything else is a typo worth reporting.
const FIELDS: &[&str] = &[
    "id",
    "provider",
    "model",
    "aliases",
    "patterns",
    "effective_from",
    "input",
    "cached_input",
    "output",
];

/// An immutable, indexed price catalogue. Build it once at start-up and share it (it is
/// `Send + Sync`); lookups take `&self` and cache nothing.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Sorted by provider, model, effective date, id (the listing order).
    entries: Vec<PriceEntry>,
    /// Normalised canonical names and aliases → indices into `entries`, in precedence order
    /// (user before built-in, then latest `effective_from` first): the first one in effect
    /// at a timestamp is the price.
    by_name: HashMap<String, Vec<usize>>,
    /// Most specific pattern first; candidates in the same precedence order as `by_name`.
    patterns: Vec<PatternGroup>,
}

#[derive(Debug, Clone)]
struct PatternGroup {
    pattern: NamePattern,
    candidates: Vec<usize>,
}

impl Catalogue {
    /// The built-in catalogue alone. An error here is a bug in `catalogue.toml` (a test
    /// loads it), but it is reported rather than panicking.
    pub fn builtin() -> Result<Self, PricingError> {
        Self::load(None)
    }

    /// The built-in catalogue plus, when given, the user's file in the same format: a user
    /// entry with a built-in id replaces it, a new id adds a price, and for the same name
    /// at the same time the user's entry wins.
    pub fn load(override_path: Option<&Path>) -> Result<Self, PricingError> {
        let user = match override_path {
            None => None,
            Some(path) => {
                let origin = CatalogueSource::File(path.to_path_buf());
                let text = std::fs::read_to_string(path).map_err(|error| PricingError::Read {
                    origin: origin.clone(),
                    error,
                })?;
                Some((text, origin))
            }
        };
        Self::from_texts(user.as_ref().map(|(text, origin)| (text.as_str(), origin)))
    }

    fn from_texts(user: Option<(&str, &CatalogueSource)>) -> Result<Self, PricingError> {
        let builtin = parse_source(BUILTIN_TOML, &CatalogueSource::Builtin, Origin::Builtin)?;
        let user = match user {
            Some((text, origin)) => parse_source(text, origin, Origin::User)?,
            None => Vec::new(),
        };
        Ok(Self::from_entries(merge(builtin, user)))
    }

    fn from_entries(mut entries: Vec<PriceEntry>) -> Self {
        entries.sort_by(|a, b| {
            (&a.provider, &a.model, a.effective_from_micros, &a.id).cmp(&(
                &b.provider,
                &b.model,
                b.effective_from_micros,
                &b.id,
            ))
        });
        let by_name = index_names(&entries);
        let patterns = index_patterns(&entries);
        Self {
            entries,
            by_name,
            patterns,
        }
    }

    /// The price of `model` in effect at `at_micros` (Unix microseconds, UTC), or `None`
    /// when the model is unknown or was not yet priced then. See the module documentation
    /// for the matching order; the first step that recognises the name decides, so a model
    /// is never silently billed at a shorter name's price.
    pub fn lookup(&self, model: &str, at_micros: i64) -> Option<&PriceEntry> {
        let key = normalize::clean(&normalize::lowered(model));
        if key.is_empty() {
            return None; // blank or only separators: nothing to recognise
        }
        let candidates = self.find_candidates(&key)?;
        candidates
            .iter()
            .map(|&i| &self.entries[i])
            .find(|entry| entry.effective_from_micros <= at_micros)
    }

    /// The entries of the most specific name, pattern or prefix that recognises `key`.
    fn find_candidates(&self, key: &str) -> Option<&[usize]> {
        let core = normalize::model_core(key);
        let exact_forms = std::iter::once(key)
            .chain((core != key).then_some(core))
            .chain(normalize::version_stripped_forms(core));
        if let Some(found) = exact_forms.filter_map(|form| self.by_name.get(form)).next() {
            return Some(found);
        }
        if let Some(group) = self.patterns.iter().find(|g| g.pattern.matches(key)) {
            return Some(&group.candidates);
        }
        normalize::boundary_prefixes(core)
            .filter_map(|prefix| self.by_name.get(prefix))
            .next()
            .map(Vec::as_slice)
    }

    /// Every entry, sorted by provider, model, effective date and id.
    pub fn entries(&self) -> impl Iterator<Item = &PriceEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// User entries replace built-ins with the same id and add the others.
fn merge(mut builtin: Vec<PriceEntry>, user: Vec<PriceEntry>) -> Vec<PriceEntry> {
    let replaced: HashSet<&str> = user.iter().map(|e| e.id.as_str()).collect();
    builtin.retain(|e| !replaced.contains(e.id.as_str()));
    builtin.extend(user);
    builtin
}

/// Precedence among entries of one name: user first, then the newest price first.
fn precedence(entries: &[PriceEntry]) -> impl Fn(&usize) -> (Origin, Reverse<i64>) + '_ {
    |&i| (entries[i].origin, Reverse(entries[i].effective_from_micros))
}

/// The normalised keys of an entry: its canonical name and aliases, without repeats.
fn entry_keys(entry: &PriceEntry) -> Vec<String> {
    let mut keys: Vec<String> = std::iter::once(&entry.model)
        .chain(&entry.aliases)
        .map(|name| normalize::clean(&normalize::lowered(name)))
        .filter(|key| !key.is_empty())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn entry_patterns(entry: &PriceEntry) -> Vec<NamePattern> {
    let mut patterns: Vec<NamePattern> = entry
        .patterns
        .iter()
        .filter_map(|p| NamePattern::new(p))
        .collect();
    patterns.dedup_by(|a, b| a.as_str() == b.as_str());
    patterns
}

fn index_names(entries: &[PriceEntry]) -> HashMap<String, Vec<usize>> {
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        for key in entry_keys(entry) {
            by_name.entry(key).or_default().push(i);
        }
    }
    for candidates in by_name.values_mut() {
        candidates.sort_by_key(precedence(entries));
    }
    by_name
}

fn index_patterns(entries: &[PriceEntry]) -> Vec<PatternGroup> {
    let mut groups: Vec<PatternGroup> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        for pattern in entry_patterns(entry) {
            match groups.iter_mut().find(|g| g.pattern == pattern) {
                Some(group) => group.candidates.push(i),
                None => groups.push(PatternGroup {
                    pattern,
                    candidates: vec![i],
                }),
            }
        }
    }
    for group in &mut groups {
        group.candidates.sort_by_key(precedence(entries));
    }
    // Most specific first; at equal specificity a pattern with user entries first, then by
    // text so the order never depends on file order.
    groups.sort_by(|a, b| {
        let rank = |g: &PatternGroup| {
            let user = g.candidates.first().map(|&i| entries[i].origin);
            (Reverse(g.pattern.specificity()), user)
        };
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.pattern.as_str().cmp(b.pattern.as_str()))
    });
    groups
}

// ---------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------

/// Parses and validates one catalogue text; errors name `origin` and the entry.
fn parse_source(
    text: &str,
    origin: &CatalogueSource,
    layer: Origin,
) -> Result<Vec<PriceEntry>, PricingError> {
    let doc = DeTable::parse(text).map_err(|error| PricingError::Syntax {
        origin: origin.clone(),
        message: error.to_string().trim_end().to_string(),
    })?;
    let document_error = |message: String| PricingError::Document {
        origin: origin.clone(),
        message,
    };
    let mut items: &[toml::Spanned<DeValue<'_>>] = &[];
    for (key, value) in doc.get_ref() {
        match (key.get_ref().as_ref(), value.get_ref()) {
            ("price", DeValue::Array(array)) => items = &array[..],
            ("price", _) => {
                return Err(document_error(
                    "`price` must be an array of tables (`[[price]]`)".into(),
                ));
            }
            (other, _) => {
                return Err(document_error(format!(
                    "unknown top-level key `{other}`; prices are `[[price]]` tables"
                )));
            }
        }
    }
    let entries = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            parse_entry(item.get_ref(), layer).map_err(|(id, message)| PricingError::Entry {
                origin: origin.clone(),
                entry: EntryRef { index: i + 1, id },
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_conflicts(&entries, origin)?;
    Ok(entries)
}

/// One `[[price]]` table; the error carries the id when it could be read.
fn parse_entry(
    value: &DeValue<'_>,
    origin: Origin,
) -> Result<PriceEntry, (Option<String>, String)> {
    let DeValue::Table(table) = value else {
        return Err((None, "must be a table".into()));
    };
    let id = optional_text(table, "id").map_err(|message| (None, message))?;
    build_entry(table, origin).map_err(|message| (id, message))
}

fn build_entry(table: &DeTable<'_>, origin: Origin) -> Result<PriceEntry, String> {
    reject_unknown_fields(table)?;
    let model = required_text(table, "model")?;
    if normalize::clean(&normalize::lowered(&model)).is_empty() {
        return Err(format!("model {model:?} is empty once normalised"));
    }
    let input = required_price(table, "input")?;
    Ok(PriceEntry {
        id: required_text(table, "id")?,
        provider: required_text(table, "provider")?,
        model,
        aliases: text_list(table, "aliases")?,
        patterns: pattern_list(table)?,
        effective_from_micros: effective_from(table)?,
        input_per_m_micro_usd: input,
        // No separate cached price means cached tokens cost the same as any input token.
        cached_input_per_m_micro_usd: price(table, "cached_input")?.unwrap_or(input),
        output_per_m_micro_usd: required_price(table, "output")?,
        origin,
    })
}

fn field<'a, 'i>(table: &'a DeTable<'i>, name: &str) -> Option<&'a DeValue<'i>> {
    table
        .iter()
        .find(|(key, _)| key.get_ref().as_ref() == name)
        .map(|(_, value)| value.get_ref())
}

fn reject_unknown_fields(table: &DeTable<'_>) -> Result<(), String> {
    match table
        .keys()
        .map(|key| key.get_ref().as_ref())
        .find(|key| !FIELDS.contains(key))
    {
        Some(unknown) => Err(format!(
            "unknown field `{unknown}` (expected one of: {})",
            FIELDS.join(", ")
        )),
        None => Ok(()),
    }
}

fn optional_text(table: &DeTable<'_>, name: &str) -> Result<Option<String>, String> {
    match field(table, name) {
        None => Ok(None),
        Some(DeValue::String(text)) if !text.trim().is_empty() => Ok(Some(text.trim().into())),
        Some(_) => Err(format!("`{name}` must be a non-empty string")),
    }
}

fn required_text(table: &DeTable<'_>, name: &str) -> Result<String, String> {
    optional_text(table, name)?.ok_or_else(|| format!("missing `{name}`"))
}

fn text_list(table: &DeTable<'_>, name: &str) -> Result<Vec<String>, String> {
    let Some(value) = field(table, name) else {
        return Ok(Vec::new());
    };
    let not_a_list = || format!("`{name}` must be a list of non-empty strings");
    let DeValue::Array(items) = value else {
        return Err(not_a_list());
    };
    items
        .iter()
        .map(|item| match item.get_ref() {
            DeValue::String(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
            _ => Err(not_a_list()),
        })
        .collect()
}

fn pattern_list(table: &DeTable<'_>) -> Result<Vec<String>, String> {
    let patterns = text_list(table, "patterns")?;
    match patterns.iter().find(|p| NamePattern::new(p).is_none()) {
        Some(bad) => Err(format!("pattern {bad:?} is empty once normalised")),
        None => Ok(patterns),
    }
}

/// `effective_from` as Unix microseconds of UTC midnight. Accepts a TOML date
/// (`2024-08-06`) or a string `"2024-08-06"`; a time of day would be ambiguous, so no.
fn effective_from(table: &DeTable<'_>) -> Result<i64, String> {
    const WANT: &str = "`effective_from` must be a date YYYY-MM-DD (UTC midnight)";
    let date = match field(table, "effective_from") {
        None => return Err(format!("missing {WANT}")),
        Some(DeValue::Datetime(at)) if at.time.is_none() && at.offset.is_none() => at
            .date
            .and_then(|d| NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())),
        Some(DeValue::String(text)) if text.trim().len() == "2024-08-06".len() => {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
        }
        Some(_) => None,
    };
    date.and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc().timestamp_micros())
        .ok_or_else(|| WANT.to_string())
}

fn required_price(table: &DeTable<'_>, name: &str) -> Result<i64, String> {
    price(table, name)?.ok_or_else(|| format!("missing `{name}` (USD per million tokens)"))
}

/// A price field in micro-dollars per million tokens, converted exactly from its text.
fn price(table: &DeTable<'_>, name: &str) -> Result<Option<i64>, String> {
    let label = format!("{name} price");
    let text = match field(table, name) {
        None => return Ok(None),
        Some(DeValue::Float(number)) => number.as_str(),
        Some(DeValue::Integer(number)) if number.radix() == 10 => number.as_str(),
        Some(_) => {
            return Err(format!(
                "{label} must be a decimal number (USD per million tokens)"
            ));
        }
    };
    match decimal_to_micros(text) {
        Ok(micros) => Ok(Some(micros)),
        Err(DecimalError::TooPrecise) => Err(format!(
            "{label} {text} has more than 6 decimal places (prices are kept in micro-dollars per million tokens)"
        )),
        Err(DecimalError::TooLarge) => Err(format!(
            "{label} {text} is above the maximum of 1000000 USD per million tokens"
        )),
        Err(DecimalError::Invalid) => Err(format!("{label} must be a finite number >= 0")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum DecimalError {
    /// Negative, infinite, NaN or not a number.
    Invalid,
    /// Finer than one micro-dollar per million tokens.
    TooPrecise,
    /// Above [`MAX_PRICE_MICRO_USD`].
    TooLarge,
}

/// Exact conversion of a decimal literal in USD (`2.50`, `0.0375`, `1_000`, `3.75e-2`) to
/// integer micro-USD, by shifting digits rather than multiplying a binary float.
fn decimal_to_micros(text: &str) -> Result<i64, DecimalError> {
    let text: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exp)) => (
            mantissa,
            exp.parse::<i32>().map_err(|_| DecimalError::Invalid)?,
        ),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.len() + frac_part.len() == 0 || !is_digits(int_part) || !is_digits(frac_part) {
        return Err(DecimalError::Invalid); // also inf / nan
    }
    // value = digits × 10^(exponent − fraction length); micros = value × 10^6.
    let digits = format!("{int_part}{frac_part}");
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return Ok(0); // 0, 0.0, -0.0
    }
    if negative {
        return Err(DecimalError::Invalid);
    }
    let trailing_zeros = digits.len() - digits.trim_end_matches('0').len();
    let shift = i64::from(exponent) - frac_part.len() as i64 + 6 + trailing_zeros as i64;
    if shift < 0 {
        return Err(DecimalError::TooPrecise);
    }
    // MAX has 13 digits; anything longer is too large (and would overflow below).
    if significant.len() as i64 + shift > 13 {
        return Err(DecimalError::TooLarge);
    }
    let mut micros: i64 = significant.parse().map_err(|_| DecimalError::Invalid)?;
    for _ in 0..shift {
        micros *= 10;
    }
    if micros > MAX_PRICE_MICRO_USD {
        return Err(DecimalError::TooLarge);
    }
    Ok(micros)
}

/// Within one file, two different entries may not price the same name (or pattern) from the
/// same date, and ids must be unique: either would make the price depend on file order.
fn check_conflicts(entries: &[PriceEntry], origin: &CatalogueSource) -> Result<(), PricingError> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut names: HashMap<(String, i64), usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let error = |message: String| PricingError::Entry {
            origin: origin.clone(),
            entry: EntryRef {
                index: i + 1,
                id: Some(entry.id.clone()),
            },
            message,
        };
        if let Some(first) = ids.insert(&entry.id, i) {
            return Err(error(format!(
                "duplicate id, already used by entry {}",
                first + 1
            )));
        }
        let keys = entry_keys(entry).into_iter().map(|k| (k, "name"));
        let patterns = entry_patterns(entry)
            .into_iter()
            .map(|p| (p.as_str().to_string(), "pattern"));
        for (key, kind) in keys.chain(patterns) {
            let slot = (format!("{kind}:{key}"), entry.effective_from_micros);
            if let Some(&other) = names.get(&slot) {
                return Err(error(format!(
                    "{kind} {key:?} is already priced from {} by entry {} (id {:?})",
                    entry.effective_from_date(),
                    other + 1,
                    entries[other].id
                )));
            }
            names.insert(slot, i);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDateTime};
    use std::path::PathBuf;

    /// Unix microseconds of a UTC date (`2025-12-01`) or date-time (`2025-12-01T10:00:00`).
    fn at(when: &str) -> i64 {
        let parsed = NaiveDateTime::parse_from_str(when, "%Y-%m-%dT%H:%M:%S%.f").or_else(|_| {
            NaiveDate::parse_from_str(when, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        });
        parsed
            .unwrap_or_else(|e| panic!("bad test time {when}: {e}"))
            .and_utc()
            .timestamp_micros()
    }

    fn builtin() -> Catalogue {
        Catalogue::builtin().unwrap_or_else(|e| panic!("built-in catalogue: {e}"))
    }

    fn with_user(text: &str) -> Result<Catalogue, PricingError> {
        let origin = CatalogueSource::File(PathBuf::from("/x/prices.toml"));
        Catalogue::from_texts(Some((text, &origin)))
    }

    fn user_error(text: &str) -> String {
        match with_user(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    fn id_of(catalogue: &Catalogue, model: &str, when: &str) -> Option<String> {
        catalogue.lookup(model, at(when)).map(|e| e.id.clone())
    }

    /// Model ids as they appear in the wild (SDK defaults, Azure deployments, Bedrock and
    /// Vertex ids, OpenRouter and LiteLLM routes, Ollama tags), priced at 2025-12-01.
    const WILD_IDS: &[(&str, Option<&str>)] = &[
        // OpenAI, direct and via routers / Azure
        ("gpt-4o", Some("openai/gpt-4o@2024-08-06")),
        ("gpt-4o-2024-08-06", Some("openai/gpt-4o@2024-08-06")),
        ("gpt-4o-2024-11-20", Some("openai/gpt-4o@2024-08-06")),
        (
            "gpt-4o-2024-05-13",
            Some("openai/gpt-4o-2024-05-13@2024-05-13"),
        ),
        (
            "chatgpt-4o-latest",
            Some("openai/chatgpt-4o-latest@2024-08-13"),
        ),
        ("GPT-4O-MINI", Some("openai/gpt-4o-mini@2024-07-18")),
        ("openai/gpt-4o-mini", Some("openai/gpt-4o-mini@2024-07-18")),
        (
            "gpt-4o-mini-2024-07-18",
            Some("openai/gpt-4o-mini@2024-07-18"),
        ),
        (
            "gpt-4o-mini-2024-07-18-ft-xyz",
            Some("openai/gpt-4o-mini@2024-07-18"),
        ),
        (
            "gpt-4o-mini-2024-07-18.ft-0a1b2c3d",
            Some("openai/gpt-4o-mini@2024-07-18"),
        ),
        (
            "ft:gpt-4o-mini-2024-07-18:acme-corp::9AbC123",
            Some("openai/gpt-4o-mini@2024-07-18"),
        ),
        (
            "azure/gpt-4o-mini-deployment",
            Some("openai/gpt-4o-mini@2024-07-18"),
        ),
        (
            "azure/gpt-35-turbo",
            Some("openai/gpt-3.5-turbo@2024-01-25"),
        ),
        ("gpt-35-turbo-16k", Some("openai/gpt-3.5-turbo@2024-01-25")),
        (
            "gpt-3.5-turbo-0125",
            Some("openai/gpt-3.5-turbo@2024-01-25"),
        ),
        ("gpt-4-0613", Some("openai/gpt-4@2023-03-14")),
        ("gpt-4-32k-0613", Some("openai/gpt-4-32k@2023-03-14")),
        ("gpt-4-1106-preview", Some("openai/gpt-4-turbo@2023-11-06")),
        (
            "gpt-4-turbo-2024-04-09",
            Some("openai/gpt-4-turbo@2023-11-06"),
        ),
        ("gpt-4.1", Some("openai/gpt-4.1@2025-04-14")),
        ("gpt-4.1-2025-04-14", Some("openai/gpt-4.1@2025-04-14")),
        (
            "gpt-4.1-mini-2025-04-14",
            Some("openai/gpt-4.1-mini@2025-04-14"),
        ),
        (
            "openrouter/openai/gpt-4.1-nano",
            Some("openai/gpt-4.1-nano@2025-04-14"),
        ),
        (
            "gpt-4.5-preview-2025-02-27",
            Some("openai/gpt-4.5-preview@2025-02-27"),
        ),
        ("o1-2024-12-17", Some("openai/o1@2024-09-12")),
        ("o1-preview-2024-09-12", Some("openai/o1@2024-09-12")),
        ("o1-pro-2025-03-19", Some("openai/o1-pro@2025-03-19")),
        ("o1-mini-2024-09-12", Some("openai/o1-mini@2025-01-31")),
        ("o3-2025-04-16", Some("openai/o3@2025-06-10")),
        ("o3-mini-2025-01-31", Some("openai/o3-mini@2025-01-31")),
        ("o3-pro", Some("openai/o3-pro@2025-06-10")),
        ("o4-mini-2025-04-16", Some("openai/o4-mini@2025-04-16")),
        ("gpt-5-2025-08-07", Some("openai/gpt-5@2025-08-07")),
        ("gpt-5-chat-latest", Some("openai/gpt-5@2025-08-07")),
        ("gpt-5-mini", Some("openai/gpt-5-mini@2025-08-07")),
        (
            "gpt-5-nano-2025-08-07",
            Some("openai/gpt-5-nano@2025-08-07"),
        ),
        ("gpt-5-pro-2025-10-06", Some("openai/gpt-5-pro@2025-10-06")),
        (
            "text-embedding-3-small",
            Some("openai/text-embedding-3-small@2024-01-25"),
        ),
        (
            "text-embedding-3-large",
            Some("openai/text-embedding-3-large@2024-01-25"),
        ),
        (
            "azure/text-embedding-ada-002",
            Some("openai/text-embedding-ada-002@2022-12-15"),
        ),
        // Anthropic: API, Bedrock, Vertex, OpenRouter, display names
        (
            "claude-3-5-sonnet-20241022",
            Some("anthropic/claude-3-5-sonnet@2024-06-20"),
        ),
        (
            "anthropic/claude-3.5-sonnet",
            Some("anthropic/claude-3-5-sonnet@2024-06-20"),
        ),
        (
            "Claude 3.5 Sonnet",
            Some("anthropic/claude-3-5-sonnet@2024-06-20"),
        ),
        (
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            Some("anthropic/claude-3-5-sonnet@2024-06-20"),
        ),
        (
            "claude-3-5-sonnet-v2@20241022",
            Some("anthropic/claude-3-5-sonnet@2024-06-20"),
        ),
        (
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            Some("anthropic/claude-3-7-sonnet@2025-02-24"),
        ),
        (
            "anthropic/claude-3.7-sonnet:thinking",
            Some("anthropic/claude-3-7-sonnet@2025-02-24"),
        ),
        (
            "bedrock/anthropic.claude-3-haiku-20240307-v1:0",
            Some("anthropic/claude-3-haiku@2024-03-07"),
        ),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
            Some("anthropic/claude-3-5-haiku@2024-11-04"),
        ),
        (
            "claude-3-5-haiku@20241022",
            Some("anthropic/claude-3-5-haiku@2024-11-04"),
        ),
        (
            "claude-3-5-haiku-latest",
            Some("anthropic/claude-3-5-haiku@2024-11-04"),
        ),
        (
            "claude-3-opus-20240229",
            Some("anthropic/claude-3-opus@2024-02-29"),
        ),
        (
            "claude-sonnet-4-20250514",
            Some("anthropic/claude-sonnet-4@2025-05-22"),
        ),
        (
            "claude-4-sonnet",
            Some("anthropic/claude-sonnet-4@2025-05-22"),
        ),
        (
            "vertex_ai/claude-sonnet-4@20250514",
            Some("anthropic/claude-sonnet-4@2025-05-22"),
        ),
        (
            "claude-opus-4-20250514",
            Some("anthropic/claude-opus-4@2025-05-22"),
        ),
        (
            "claude-opus-4-1-20250805",
            Some("anthropic/claude-opus-4-1@2025-08-05"),
        ),
        (
            "anthropic/claude-opus-4.1",
            Some("anthropic/claude-opus-4-1@2025-08-05"),
        ),
        (
            "claude-sonnet-4-5-20250929",
            Some("anthropic/claude-sonnet-4-5@2025-09-29"),
        ),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            Some("anthropic/claude-sonnet-4-5@2025-09-29"),
        ),
        (
            "claude-haiku-4-5-20251001",
            Some("anthropic/claude-haiku-4-5@2025-10-15"),
        ),
        (
            "claude-opus-4-5-20251101",
            Some("anthropic/claude-opus-4-5@2025-11-24"),
        ),
        ("claude-2.1", None),
        // Google: Gemini API, Vertex, LiteLLM, OpenRouter
        (
            "models/gemini-1.5-pro-002",
            Some("google/gemini-1.5-pro@2024-10-01"),
        ),
        (
            "gemini-1.5-flash-latest",
            Some("google/gemini-1.5-flash@2024-08-12"),
        ),
        (
            "gemini-1.5-flash-8b-001",
            Some("google/gemini-1.5-flash-8b@2024-10-03"),
        ),
        (
            "vertex_ai/gemini-2.0-flash-001",
            Some("google/gemini-2.0-flash@2025-02-05"),
        ),
        (
            "projects/acme/locations/us-central1/publishers/google/models/gemini-2.0-flash-lite-001",
            Some("google/gemini-2.0-flash-lite@2025-02-05"),
        ),
        (
            "google/gemini-2.5-pro",
            Some("google/gemini-2.5-pro@2025-04-04"),
        ),
        (
            "gemini-2.5-pro-preview-06-05",
            Some("google/gemini-2.5-pro@2025-04-04"),
        ),
        (
            "gemini-2.5-flash-preview-05-20",
            Some("google/gemini-2.5-flash@2025-06-17"),
        ),
        (
            "gemini-2.5-flash-lite",
            Some("google/gemini-2.5-flash-lite@2025-06-17"),
        ),
        (
            "gemini/gemini-2.5-flash-lite-preview-06-17",
            Some("google/gemini-2.5-flash-lite@2025-06-17"),
        ),
        (
            "gemini-3-pro-preview",
            Some("google/gemini-3-pro@2025-11-18"),
        ),
        (
            "gemini-2.0-flash-exp",
            Some("google/gemini-experimental@2023-12-06"),
        ),
        (
            "gemini-2.0-flash-thinking-exp-01-21",
            Some("google/gemini-experimental@2023-12-06"),
        ),
        (
            "models/text-embedding-004",
            Some("google/text-embedding-004@2024-05-14"),
        ),
        (
            "text-embedding-005",
            Some("google/text-embedding-004@2024-05-14"),
        ),
        // Mistral: La Plateforme, Bedrock, Azure, OpenRouter
        (
            "mistral-large-latest",
            Some("mistral/mistral-large@2024-09-17"),
        ),
        (
            "mistral/mistral-large-2411",
            Some("mistral/mistral-large@2024-09-17"),
        ),
        (
            "mistral.mistral-large-2402-v1:0",
            Some("mistral/mistral-large@2024-09-17"),
        ),
        (
            "azure_ai/mistral-large-2407",
            Some("mistral/mistral-large@2024-09-17"),
        ),
        (
            "mistral-medium-2505",
            Some("mistral/mistral-medium@2025-05-07"),
        ),
        (
            "mistral-small-latest",
            Some("mistral/mistral-small@2025-01-30"),
        ),
        (
            "mistralai/mistral-small-3.1-24b-instruct",
            Some("mistral/mistral-small@2025-01-30"),
        ),
        (
            "ministral-8b-latest",
            Some("mistral/ministral-8b@2024-10-16"),
        ),
        ("ministral-3b-2410", Some("mistral/ministral-3b@2024-10-16")),
        ("codestral-2501", Some("mistral/codestral@2025-01-13")),
        (
            "open-mistral-nemo-2407",
            Some("mistral/open-mistral-nemo@2024-09-17"),
        ),
        (
            "pixtral-large-latest",
            Some("mistral/pixtral-large@2024-11-18"),
        ),
        ("mistral-embed", Some("mistral/mistral-embed@2023-12-11")),
        // Local runtimes and open weights
        ("ollama/llama3.1:8b", Some("local/ollama@1970-01-01")),
        ("ollama/mistral-small:24b", Some("local/ollama@1970-01-01")),
        ("ollama_chat/qwen2.5:14b", Some("local/ollama@1970-01-01")),
        (
            "ollama/hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            Some("local/ollama@1970-01-01"),
        ),
        ("llama3.1:8b", Some("local/open-weights@1970-01-01")),
        ("mistral:7b", Some("local/open-weights@1970-01-01")),
        (
            "qwen2.5:7b-instruct-q4_K_M",
            Some("local/open-weights@1970-01-01"),
        ),
        ("gemma2:9b", Some("local/open-weights@1970-01-01")),
        ("phi3:mini", Some("local/open-weights@1970-01-01")),
        ("gpt-oss:20b", Some("local/open-weights@1970-01-01")),
        ("nomic-embed-text", Some("local/open-weights@1970-01-01")),
        (
            "lmstudio-community/Meta-Llama-3.1-8B-Instruct-GGUF",
            Some("local/lmstudio@1970-01-01"),
        ),
        (
            "llama.cpp/mistral-7b-instruct",
            Some("local/llama.cpp@1970-01-01"),
        ),
        (
            "mistral-7b-instruct-v0.2.Q4_K_M.gguf",
            Some("local/llama.cpp@1970-01-01"),
        ),
        ("local/my-model", Some("local/local@1970-01-01")),
        ("local/models/mistral-small", Some("local/local@1970-01-01")),
        (
            "meta-llama/llama-3.1-8b-instruct:free",
            Some("openrouter/openrouter-free@2023-01-01"),
        ),
        // Not priced: other vendors, bare family names, custom deployment names
        ("meta-llama/llama-3.1-70b-instruct", None),
        ("openai/gpt-oss-120b", None),
        ("deepseek-chat", None),
        ("mistral", None),
        ("llama3", None),
        ("my-company-gpt4o-prod", None),
        ("", None),
        ("   ", None),
        (" - . ", None),
    ];

    #[test]
    fn wild_model_ids() {
        let catalogue = builtin();
        let mut failures = Vec::new();
        for &(model, want) in WILD_IDS {
            let got = id_of(&catalogue, model, "2025-12-01");
            if got.as_deref() != want {
                failures.push(format!("{model:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(WILD_IDS.len() >= 40);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn price_in_effect_at_timestamp() {
        let c = builtin();
        let gpt4o = |when| id_of(&c, "gpt-4o", when);
        assert_eq!(gpt4o("2024-05-12T23:59:59.999999"), None);
        assert_eq!(
            gpt4o("2024-06-01").as_deref(),
            Some("openai/gpt-4o@2024-05-13")
        );
        assert_eq!(
            gpt4o("2024-08-05T23:59:59.999999").as_deref(),
            Some("openai/gpt-4o@2024-05-13")
        );
        // effective_from is inclusive, at UTC midnight.
        assert_eq!(
            gpt4o("2024-08-06").as_deref(),
            Some("openai/gpt-4o@2024-08-06")
        );
        assert_eq!(
            id_of(&c, "o3", "2025-05-01").as_deref(),
            Some("openai/o3@2025-04-16")
        );
        assert_eq!(
            id_of(&c, "o3", "2025-06-10").as_deref(),
            Some("openai/o3@2025-06-10")
        );
        assert_eq!(id_of(&c, "gpt-5", "2025-08-06"), None);
        assert_eq!(
            id_of(&c, "ollama/llama3", "1970-01-01").as_deref(),
            Some("local/ollama@1970-01-01")
        );
    }

    #[test]
    fn most_specific_name_decides_even_when_not_yet_priced() {
        let c = builtin();
        // Before gpt-4o-mini existed it is unpriced, not billed as gpt-4o.
        assert_eq!(id_of(&c, "gpt-4o-mini", "2024-07-17"), None);
        // Likewise gpt-4.1 before its launch is not gpt-4.
        assert_eq!(id_of(&c, "gpt-4.1", "2025-01-01"), None);
        assert_eq!(
            id_of(&c, "gpt-4", "2025-01-01").as_deref(),
            Some("openai/gpt-4@2023-03-14")
        );
    }

    #[test]
    fn builtin_prices_are_exact() {
        let c = builtin();
        let when = at("2025-12-01");
        let price = |model: &str| {
            c.lookup(model, when)
                .map(|e| {
                    (
                        e.input_per_m_micro_usd,
                        e.cached_input_per_m_micro_usd,
                        e.output_per_m_micro_usd,
                    )
                })
                .unwrap_or_else(|| panic!("{model} unpriced"))
        };
        assert_eq!(price("gpt-4o"), (2_500_000, 1_250_000, 10_000_000));
        assert_eq!(price("gpt-4.1-nano"), (100_000, 25_000, 400_000));
        assert_eq!(price("o4-mini"), (1_100_000, 275_000, 4_400_000));
        assert_eq!(price("gemini-1.5-flash-8b"), (37_500, 10_000, 150_000));
        assert_eq!(price("gemini-1.5-pro"), (1_250_000, 312_500, 5_000_000));
        assert_eq!(price("gemini-2.0-flash-lite"), (75_000, 18_750, 300_000));
        assert_eq!(price("gpt-5-nano"), (50_000, 5_000, 400_000));
        // No cached price given: cached input costs the input price.
        assert_eq!(price("mistral-large"), (2_000_000, 2_000_000, 6_000_000));
        assert_eq!(price("text-embedding-3-small"), (20_000, 20_000, 0));
        assert_eq!(price("ollama/llama3"), (0, 0, 0));
    }

    #[test]
    fn builtin_costs_exact() {
        let c = builtin();
        let cost = |model: &str, input, cached, output| {
            c.lookup(model, at("2025-12-01"))
                .map(|e| e.cost_nusd(input, cached, output))
                .unwrap_or_else(|| panic!("{model} unpriced"))
        };
        // 1830 × 2.50 + 212 × 10 µ$ per million tokens → 6_695_000 n$ = $0.006695.
        assert_eq!(cost("gpt-4o", 1830, 0, 212), 6_695_000);
        // 830 × 0.15 + 1000 × 0.075 + 212 × 0.60 = 124.5 + 75 + 127.2 µ$ → 326_700 n$.
        assert_eq!(cost("gpt-4o-mini", 1830, 1000, 212), 326_700);
        // Claude cache reads at 0.1×: 10_000 × 0.30 + 5_000 × 3 + 500 × 15 → 25_500_000 n$.
        assert_eq!(cost("claude-sonnet-4-5", 15_000, 10_000, 500), 25_500_000);
        // 3 tokens × $0.0375/M = 112.5 n$ → 112 (half to even).
        assert_eq!(cost("gemini-1.5-flash-8b", 3, 0, 0), 112);
        // Embeddings: input only.
        assert_eq!(cost("text-embedding-3-large", 1_000, 0, 0), 130_000);
        assert_eq!(cost("ollama/qwen2.5:14b", 50_000, 0, 9_000), 0);
    }

    /// The models the brief requires, each with a price today.
    const REQUIRED: &[&str] = &[
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o1-mini",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-4-turbo",
        "gpt-3.5-turbo",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "claude-3-haiku",
        "claude-3-5-haiku",
        "claude-3-5-sonnet",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "claude-opus-4-1",
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "claude-3-opus",
        "gemini-1.5-flash",
        "gemini-1.5-pro",
        "gemini-2.0-flash",
        "gemini-2.0-flash-lite",
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
        "text-embedding-004",
        "mistral-large",
        "mistral-medium",
        "mistral-small",
        "ministral-8b",
        "ministral-3b",
        "codestral",
        "open-mistral-nemo",
        "pixtral-large",
        "mistral-embed",
    ];

    #[test]
    fn required_models_are_priced_under_their_own_name() {
        let c = builtin();
        for model in REQUIRED {
            let entry = c.lookup(model, at("2025-12-01"));
            assert_eq!(entry.map(|e| e.model.as_str()), Some(*model), "{model}");
        }
    }

    #[test]
    fn every_builtin_name_resolves_to_its_own_model() {
        let c = builtin();
        for entry in c.entries() {
            for name in std::iter::once(&entry.model).chain(&entry.aliases) {
                let found = c.lookup(name, entry.effective_from_micros);
                assert_eq!(
                    found.map(|e| (&e.provider, &e.model)),
                    Some((&entry.provider, &entry.model)),
                    "{name:?} of {}",
                    entry.id
                );
            }
        }
    }

    #[test]
    fn builtin_ids_follow_the_convention() {
        let c = builtin();
        assert!(c.len() >= 70, "only {} entries", c.len());
        for e in c.entries() {
            let want = format!("{}/{}@{}", e.provider, e.model, e.effective_from_date());
            assert_eq!(e.id, want);
            assert_eq!(e.origin, Origin::Builtin);
            let embedding = e.model.contains("embed");
            assert!(!embedding || e.output_per_m_micro_usd == 0, "{}", e.id);
            assert!(
                e.cached_input_per_m_micro_usd <= e.input_per_m_micro_usd,
                "{}",
                e.id
            );
        }
    }

    #[test]
    fn entries_are_sorted_and_serializable() {
        let c = builtin();
        let keys: Vec<_> = c
            .entries()
            .map(|e| (&e.provider, &e.model, e.effective_from_micros))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        #[derive(serde::Serialize)]
        struct Listing<'a> {
            price: Vec<&'a PriceEntry>,
        }
        let text = toml::to_string(&Listing {
            price: c.entries().collect(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("id = \"google/gemini-1.5-flash-8b@2024-10-03\""));
        assert!(text.contains("input = 0.0375"));
    }

    #[test]
    fn user_entry_with_builtin_id_replaces_it() {
        let before = builtin();
        let c = with_user(
            r#"
            [[price]]
            id = "openai/gpt-4o@2024-08-06"
            provider = "openai"
            model = "gpt-4o"
            effective_from = 2024-08-06
            input = 1.5
            output = 6
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.len(), before.len());
        let e = c
            .lookup("gpt-4o-2024-11-20", at("2025-01-01"))
            .unwrap_or_else(|| panic!("unpriced"));
        assert_eq!(e.origin, Origin::User);
        assert_eq!(e.input_per_m_micro_usd, 1_500_000);
        assert_eq!(e.cached_input_per_m_micro_usd, 1_500_000);
        // The older built-in gpt-4o price still applies before.
        assert_eq!(
            id_of(&c, "gpt-4o", "2024-06-01").as_deref(),
            Some("openai/gpt-4o@2024-05-13")
        );
    }

    #[test]
    fn user_entry_adds_and_overrides_by_name() {
        let c = with_user(
            r#"
            # Our negotiated Azure price, from 2025.
            [[price]]
            id = "acme/gpt-4o@2025-01-01"
            provider = "azure"
            model = "gpt-4o"
            aliases = ["prod-gpt4o"]
            effective_from = "2025-01-01"
            input = 2.0
            cached_input = 1.0
            output = 8.0

            [[price]]
            id = "acme/foo@2025-03-01"
            provider = "acme"
            model = "acme-foo"
            patterns = ["acme-foo-*"]
            effective_from = 2025-03-01
            input = 0.0375
            output = 1_000
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            id_of(&c, "gpt-4o", "2025-06-01").as_deref(),
            Some("acme/gpt-4o@2025-01-01")
        );
        assert_eq!(
            id_of(&c, "azure/prod-gpt4o", "2025-06-01").as_deref(),
            Some("acme/gpt-4o@2025-01-01")
        );
        // Before the user's price starts, the built-in one applies.
        assert_eq!(
            id_of(&c, "gpt-4o", "2024-12-31").as_deref(),
            Some("openai/gpt-4o@2024-08-06")
        );
        let foo = c
            .lookup("acme-foo-large", at("2025-06-01"))
            .unwrap_or_else(|| panic!("unpriced"));
        assert_eq!(foo.id, "acme/foo@2025-03-01");
        assert_eq!(foo.input_per_m_micro_usd, 37_500);
        assert_eq!(foo.output_per_m_micro_usd, 1_000_000_000);
        assert_eq!(id_of(&c, "acme-foo", "2025-02-28"), None);
    }

    #[test]
    fn user_patterns_beat_builtin_patterns_of_equal_specificity() {
        let c = with_user(
            r#"
            [[price]]
            id = "acme/gpu-box@2024-01-01"
            provider = "acme"
            model = "gpu-box"
            patterns = ["ollama/*"]
            effective_from = 2024-01-01
            input = 0.01
            output = 0.01
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            id_of(&c, "ollama/llama3.1:8b", "2025-01-01").as_deref(),
            Some("acme/gpu-box@2024-01-01")
        );
        assert_eq!(
            id_of(&c, "ollama/llama3.1:8b", "2023-01-01").as_deref(),
            Some("local/ollama@1970-01-01")
        );
    }

    #[test]
    fn empty_user_file_is_builtin_only() {
        let c = with_user("# nothing yet\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.len(), builtin().len());
    }

    const GOOD_ENTRY: &str = r#"
        [[price]]
        id = "acme/ok"
        provider = "acme"
        model = "ok"
        effective_from = 2025-01-01
        input = 1
        output = 1
    "#;

    /// A user file whose third entry is `[[price]]` + `body`.
    fn third_entry(body: &str) -> String {
        format!(
            "{GOOD_ENTRY}{}\n[[price]]\n{body}\n",
            GOOD_ENTRY
                .replace("acme/ok", "acme/ok2")
                .replace("\"ok\"", "\"ok2\"")
        )
    }

    #[test]
    fn entry_errors_name_file_entry_and_field() {
        let base = "id = \"acme/foo\"\nprovider = \"acme\"\nmodel = \"foo\"\neffective_from = 2025-01-01\n";
        let cases = [
            (
                "input = -1\noutput = 1",
                "input price must be a finite number >= 0",
            ),
            (
                "input = inf\noutput = 1",
                "input price must be a finite number >= 0",
            ),
            (
                "input = nan\noutput = 1",
                "input price must be a finite number >= 0",
            ),
            (
                "input = 1\noutput = -0.5",
                "output price must be a finite number >= 0",
            ),
            (
                "input = 1\ncached_input = -2\noutput = 1",
                "cached_input price must be a finite number >= 0",
            ),
            (
                "input = \"1\"\noutput = 1",
                "input price must be a decimal number (USD per million tokens)",
            ),
            (
                "input = 0x10\noutput = 1",
                "input price must be a decimal number (USD per million tokens)",
            ),
            (
                "input = 0.0000001\noutput = 1",
                "input price 0.0000001 has more than 6 decimal places",
            ),
            (
                "input = 1e7\noutput = 1",
                "input price 1e7 is above the maximum of 1000000 USD per million tokens",
            ),
            ("output = 1", "missing `input` (USD per million tokens)"),
            (
                "input = 1\noutput = 1\ncached = 0.5",
                "unknown field `cached`",
            ),
        ];
        for (tail, want) in cases {
            let message = user_error(&third_entry(&format!("{base}{tail}")));
            let prefix = "pricing file /x/prices.toml: entry 3 (id \"acme/foo\"): ";
            assert!(message.starts_with(prefix), "{message}");
            assert!(
                message[prefix.len()..].starts_with(want),
                "{message}\nwant: {want}"
            );
        }
    }

    #[test]
    fn entry_errors_for_identity_and_dates() {
        let prices = "input = 1\noutput = 1\n";
        let cases = [
            (
                "provider = \"a\"\nmodel = \"m\"\neffective_from = 2025-01-01\n",
                "entry 3 (no id): missing `id`",
            ),
            (
                "id = \"\"\nprovider = \"a\"\nmodel = \"m\"\neffective_from = 2025-01-01\n",
                "entry 3 (no id): `id` must be a non-empty string",
            ),
            (
                "id = \"a/m\"\nmodel = \"m\"\neffective_from = 2025-01-01\n",
                "missing `provider`",
            ),
            (
                "id = \"a/m\"\nprovider = \"a\"\nmodel = \"--\"\neffective_from = 2025-01-01\n",
                "model \"--\" is empty once normalised",
            ),
            (
                "id = \"a/m\"\nprovider = \"a\"\nmodel = \"m\"\n",
                "missing `effective_from` must be a date",
            ),
            (
                "id = \"a/m\"\nprovider = \"a\"\nmodel = \"m\"\neffective_from = 2025-01-01T10:00:00Z\n",
                "`effective_from` must be a date YYYY-MM-DD (UTC midnight)",
            ),
            (
                "id = \"a/m\"\nprovider = \"a\"\nmodel = \"m\"\neffective_from = \"2025-02-30\"\n",
                "`effective_from` must be a date",
            ),
            (
                "id = \"a/m\"\nprovider = \"a\"\nmodel = \"m\"\neffective_from = \"1/2/2025\"\n",
                "`effective_from` must be a date",
            ),
            (
                "id = \"a/m\"\nprovider = \"a\"\nmodel = \"m\"\naliases = \"x\"\neffective_from = 2025-01-01\n",
                "`aliases` must be a list of non-empty strings",
            ),
            (
                "id = \"a/m\"\nprovider = \"a\"\nmodel = \"m\"\npatterns = [\" \"]\neffective_from = 2025-01-01\n",
                "`patterns` must be a list of non-empty strings",
            ),
        ];
        for (body, want) in cases {
            let message = user_error(&third_entry(&format!("{body}{prices}")));
            assert!(
                message.contains("pricing file /x/prices.toml: entry 3 "),
                "{message}"
            );
            assert!(message.contains(want), "{message}\nwant: {want}");
        }
    }

    #[test]
    fn conflicting_entries_are_rejected() {
        let duplicate_id = format!("{GOOD_ENTRY}{GOOD_ENTRY}");
        assert_eq!(
            user_error(&duplicate_id),
            "pricing file /x/prices.toml: entry 2 (id \"acme/ok\"): duplicate id, already used by entry 1"
        );
        let same_name_same_day = format!(
            "{GOOD_ENTRY}{}",
            GOOD_ENTRY
                .replace("acme/ok", "acme/other")
                .replace("model = \"ok\"", "model = \"other\"\naliases = [\"OK\"]")
        );
        assert_eq!(
            user_error(&same_name_same_day),
            "pricing file /x/prices.toml: entry 2 (id \"acme/other\"): name \"ok\" is already priced from 2025-01-01 by entry 1 (id \"acme/ok\")"
        );
        // The same name from another date is a price change, not a conflict.
        let later = GOOD_ENTRY
            .replace("acme/ok", "acme/ok-2026")
            .replace("2025-01-01", "2026-01-01");
        assert!(with_user(&format!("{GOOD_ENTRY}{later}")).is_ok());
    }

    #[test]
    fn document_errors() {
        let message = user_error("[[price]\nid = 1");
        assert!(
            message.starts_with("pricing file /x/prices.toml: not valid TOML: "),
            "{message}"
        );
        assert_eq!(
            user_error("[price]\nid = \"x\""),
            "pricing file /x/prices.toml: `price` must be an array of tables (`[[price]]`)"
        );
        assert_eq!(
            user_error("[[prices]]\nid = \"x\""),
            "pricing file /x/prices.toml: unknown top-level key `prices`; prices are `[[price]]` tables"
        );
        assert_eq!(
            user_error("price = [1]"),
            "pricing file /x/prices.toml: entry 1 (no id): must be a table"
        );
    }

    #[test]
    fn load_reads_the_override_file() {
        let path = std::env::temp_dir().join(format!("rp-pricing-{}.toml", std::process::id()));
        std::fs::write(&path, GOOD_ENTRY).unwrap_or_else(|e| panic!("{e}"));
        let loaded = Catalogue::load(Some(&path));
        let _ = std::fs::remove_file(&path);
        let c = loaded.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id_of(&c, "ok", "2025-06-01").as_deref(), Some("acme/ok"));
        assert_eq!(c.len(), builtin().len() + 1);

        let missing = path.with_extension("missing.toml");
        let message = match Catalogue::load(Some(&missing)) {
            Ok(_) => panic!("loaded a missing file"),
            Err(e) => e.to_string(),
        };
        let want = format!("pricing file {}: cannot read: ", missing.display());
        assert!(message.starts_with(&want), "{message}");
    }

    #[test]
    fn decimal_text_converts_exactly() {
        let ok = [
            ("0", 0),
            ("-0.0", 0),
            ("+2.50", 2_500_000),
            ("0.0375", 37_500),
            ("0.01875", 18_750),
            ("0.3125", 312_500),
            ("0.000001", 1),
            ("0.0000010", 1),
            ("1_000", 1_000_000_000),
            ("3.75e-2", 37_500),
            ("1E-6", 1),
            ("1e6", 1_000_000_000_000),
            ("1000000", 1_000_000_000_000),
            ("000.100", 100_000),
        ];
        for (text, want) in ok {
            assert_eq!(decimal_to_micros(text), Ok(want), "{text}");
        }
        let bad = [
            ("-1", DecimalError::Invalid),
            ("-0.000001", DecimalError::Invalid),
            ("inf", DecimalError::Invalid),
            ("+inf", DecimalError::Invalid),
            ("nan", DecimalError::Invalid),
            ("", DecimalError::Invalid),
            (".", DecimalError::Invalid),
            ("1e", DecimalError::Invalid),
            ("0.0000001", DecimalError::TooPrecise),
            ("1e-7", DecimalError::TooPrecise),
            ("1000000.000001", DecimalError::TooLarge),
            ("1e2000000000", DecimalError::TooLarge),
            ("99999999999999999999999", DecimalError::TooLarge),
        ];
        for (text, want) in bad {
            assert_eq!(decimal_to_micros(text), Err(want), "{text}");
        }
        // Every micro-dollar amount written with 6 decimals round-trips exactly.
        for micros in (0..2_000_000_i64).step_by(7_919).chain([999_999_999_999]) {
            let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
            assert_eq!(decimal_to_micros(&text), Ok(micros), "{text}");
        }
    }

    #[test]
    fn effective_dates_are_utc_midnight() {
        let c = builtin();
        let e = c
            .lookup("gpt-4o", at("2025-01-01"))
            .unwrap_or_else(|| panic!("unpriced"));
        let midnight = DateTime::from_timestamp_micros(e.effective_from_micros)
            .unwrap_or_else(|| panic!("bad micros"));
        assert_eq!(midnight.to_rfc3339(), "2024-08-06T00:00:00+00:00");
    }

    #[test]
    fn catalogue_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Catalogue>();
    }
}
