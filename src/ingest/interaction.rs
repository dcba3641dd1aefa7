//! The rules of an interaction (those of `docs/ingest.md`), applied to its
//! fields once they are read: from a JSON event by `validate`, or built
//! typed by the OTLP finaliser from a mapped trace. Each field arrives as
//! read (its value, or why it is not of the right type) and is checked in
//! the order of the documented fields, so a JSON event with several faults
//! is refused for the first of them, and both sources share one set of rules.

use std::borrow::Cow;

use uuid::Uuid;

use super::event::{InteractionEvent, RerankEvent, StepEvent, UserId};
use super::validate::{EventLimits, Rejection, quote, reject};
use crate::time::{MICROS_PER_DAY, Timestamp};

type Result<T> = std::result::Result<T, Rejection>;

/// A field as read from its source: its value, or the rejection of its type.
pub type Read<T> = Result<T>;

const MAX_SESSION_ID_CHARS: usize = 200;
const MAX_STEP_NAME_CHARS: usize = 64;

/// An instant as read: microseconds since the epoch, and the client's text
/// when it came as text (messages quote it; otherwise they show the instant).
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp<'a> {
    pub micros: i64,
    pub text: Option<&'a str>,
}

/// One entry of `steps`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepParts<'a> {
    pub name: Read<Cow<'a, str>>,
    /// Seconds, finite.
    pub duration_s: Read<f64>,
    pub input_tokens: Read<Option<i64>>,
    pub output_tokens: Read<Option<i64>>,
}

/// `rerank`; every score finite.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankParts {
    pub score_before: Read<Option<f64>>,
    pub score_after: Read<Option<f64>>,
    pub score_improvement: Read<Option<f64>>,
    pub position_change: Read<Option<f64>>,
}

/// The fields of an interaction as read, `None` for absent (or null). Seconds
/// and dollars are finite numbers, counts whole numbers >= 0.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractionParts<'a> {
    pub id: Read<Uuid>,
    pub timestamp: Read<Stamp<'a>>,
    pub assistant_id: Read<Uuid>,
    pub session_id: Read<Cow<'a, str>>,
    pub ttft_s: Read<Option<f64>>,
    pub total_duration_s: Read<Option<f64>>,
    pub input_tokens: Read<Option<i64>>,
    pub cached_input_tokens: Read<Option<i64>>,
    pub question: Read<Option<Cow<'a, str>>>,
    pub topic: Read<Option<Cow<'a, str>>>,
    /// Unit length (the reader checks the vector).
    pub question_embedding: Read<Option<Vec<f32>>>,
    pub user_id: Read<Option<Cow<'a, str>>>,
    pub model: Read<Option<Cow<'a, str>>>,
    pub provider: Read<Option<Cow<'a, str>>>,
    pub cache_hit: Read<Option<bool>>,
    pub output_tokens: Read<Option<i64>>,
    pub cost_usd: Read<Option<f64>>,
    /// Each entry read, or why it is not an object.
    pub steps: Read<Option<Vec<Read<StepParts<'a>>>>>,
    /// Each id read, or why it is not a UUID (with its path).
    pub retrieved_document_ids: Read<Option<Vec<Read<Uuid>>>>,
    pub rerank: Read<Option<RerankParts>>,
}

/// The interaction of `parts`, or the first of its faults.
pub fn interaction(
    parts: InteractionParts<'_>,
    limits: &EventLimits,
    now_us: i64,
) -> Result<InteractionEvent> {
    let id = parts.id?;
    let timestamp = recent_timestamp("timestamp", parts.timestamp?, limits, now_us)?;
    let assistant_id = parts.assistant_id?;
    let session_id = string("session_id", parts.session_id?, limits)?;
    let session_chars = session_id.chars().count();
    if session_chars == 0 || session_chars > MAX_SESSION_ID_CHARS {
        return reject(
            "session_id",
            format!("must be 1 to {MAX_SESSION_ID_CHARS} characters, got {session_chars}"),
        );
    }
    let ttft_us = parts.ttft_s?.map(|s| duration("ttft_s", s)).transpose()?;
    let total_duration_us = parts
        .total_duration_s?
        .map(|s| duration("total_duration_s", s))
        .transpose()?;
    if let (Some(ttft), Some(total)) = (ttft_us, total_duration_us)
        && ttft > total
    {
        return reject(
            "ttft_s",
            format!(
                "{} s exceeds total_duration_s {} s",
                seconds(ttft),
                seconds(total)
            ),
        );
    }
    let input_tokens = parts.input_tokens?.unwrap_or(0);
    let cached_input_tokens = parts.cached_input_tokens?.unwrap_or(0);
    if cached_input_tokens > input_tokens {
        return reject(
            "cached_input_tokens",
            format!("{cached_input_tokens} exceeds input_tokens {input_tokens}"),
        );
    }
    let question = text("question", parts.question?, limits)?;
    let topic = text("topic", parts.topic?, limits)?;
    let question_embedding = parts.question_embedding?;
    let user_id = match parts.user_id? {
        Some(id) => Some(UserId::parse(&id).or_else(|message| reject("user_id", message))?),
        None => None,
    };
    Ok(InteractionEvent {
        id,
        timestamp,
        assistant_id,
        session_id,
        user_id,
        topic_key: crate::topics::topic_key(
            topic.as_deref(),
            question.as_deref(),
            question_embedding.is_some(),
        ),
        question,
        question_embedding,
        topic,
        model: text("model", parts.model?, limits)?,
        provider: text("provider", parts.provider?, limits)?,
        ttft_us,
        total_duration_us,
        cache_hit: parts.cache_hit?.unwrap_or(false),
        input_tokens,
        output_tokens: parts.output_tokens?.unwrap_or(0),
        cached_input_tokens,
        cost_nusd: parts.cost_usd?.map(cost).transpose()?,
        steps: steps(parts.steps?, limits)?,
        retrieved_document_ids: retrieved(parts.retrieved_document_ids?, limits)?,
        rerank: parts.rerank?.map(rerank).transpose()?,
    })
}

/// A string within the length limit.
pub fn string(path: &str, text: Cow<'_, str>, limits: &EventLimits) -> Result<String> {
    check_length(path, &text, limits)?;
    Ok(text.into_owned())
}

pub fn check_length(path: &str, text: &str, limits: &EventLimits) -> Result<()> {
    if text.len() > limits.max_string_bytes {
        return reject(
            path,
            format!(
                "is {} bytes long, more than the limit of {} bytes",
                text.len(),
                limits.max_string_bytes
            ),
        );
    }
    Ok(())
}

/// A trimmed string; blank counts as absent.
fn text(path: &str, text: Option<Cow<'_, str>>, limits: &EventLimits) -> Result<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    check_length(path, &text, limits)?;
    let trimmed = text.trim();
    if trimmed.len() == text.len() {
        // Kept as it is (an owned text is not copied).
        return Ok((!text.is_empty()).then(|| text.into_owned()));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

/// An instant at most [`EventLimits::max_future_us`] ahead of `now_us`.
pub fn timestamp(path: &str, stamp: Stamp<'_>, limits: &EventLimits, now_us: i64) -> Result<i64> {
    if stamp.micros > now_us.saturating_add(limits.max_future_us) {
        let text = match stamp.text {
            Some(text) => quote(text),
            None => quote(&Timestamp(stamp.micros).to_rfc3339()),
        };
        return reject(path, format!("{text} is more than 5 minutes in the future"));
    }
    Ok(stamp.micros)
}

/// The instant of something that happens now (an interaction, a sync): at
/// most [`EventLimits::max_age_days`] old. A client clock at epoch 0 would
/// otherwise reopen a long-sealed day with every batch.
pub fn recent_timestamp(
    path: &str,
    stamp: Stamp<'_>,
    limits: &EventLimits,
    now_us: i64,
) -> Result<i64> {
    let ts = timestamp(path, stamp, limits, now_us)?;
    let days = limits.max_age_days;
    let oldest = now_us.saturating_sub(i64::from(days).saturating_mul(MICROS_PER_DAY));
    if ts < oldest {
        return reject(
            path,
            format!(
                "{} is more than {days} days in the past (the server's --max-event-age-days); \
                 load older history with `ragpulse import --max-event-age-days N`",
                Timestamp(ts).to_rfc3339()
            ),
        );
    }
    Ok(ts)
}

/// Seconds between 0 and 1e12, kept as whole microseconds.
pub fn duration(path: &str, seconds: f64) -> Result<i64> {
    duration_at(seconds, || path.to_string())
}

/// [`duration`], naming the field only when it is refused.
fn duration_at(seconds: f64, path: impl Fn() -> String) -> Result<i64> {
    // 10^12 s is 31,000 years: anything above is a unit mistake, not a duration.
    if !(0.0..=1e12).contains(&seconds) {
        return reject(
            &path(),
            format!("must be seconds between 0 and 1e12, got {seconds}"),
        );
    }
    Ok((seconds * 1e6).round() as i64)
}

fn cost(usd: f64) -> Result<i64> {
    if !(0.0..=1e9).contains(&usd) {
        return reject(
            "cost_usd",
            format!("must be US dollars between 0 and 1e9, got {usd}"),
        );
    }
    Ok((usd * 1e9).round() as i64)
}

fn steps(items: Option<Vec<Read<StepParts<'_>>>>, limits: &EventLimits) -> Result<Vec<StepEvent>> {
    let Some(items) = items else {
        return Ok(Vec::new());
    };
    if items.len() > limits.max_steps {
        return reject(
            "steps",
            format!(
                "has {} steps, more than the limit of {}",
                items.len(),
                limits.max_steps
            ),
        );
    }
    let mut out: Vec<StepEvent> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let step = item?;
        let path = |field: &str| format!("steps[{index}].{field}");
        let name = step.name?;
        check_length_lazy(&name, limits, || path("name"))?;
        check_step_name(&name, || path("name"))?;
        let duration_us = duration_at(step.duration_s?, || path("duration_s"))?;
        let input = step.input_tokens?;
        let output = step.output_tokens?;
        let tokens = (input.is_some() || output.is_some())
            .then(|| (input.unwrap_or(0), output.unwrap_or(0)));
        merge_step(
            &mut out,
            name.into_owned(),
            index as u32,
            duration_us,
            tokens,
        );
    }
    Ok(out)
}

fn check_length_lazy(text: &str, limits: &EventLimits, path: impl Fn() -> String) -> Result<()> {
    if text.len() > limits.max_string_bytes {
        return check_length(&path(), text, limits);
    }
    Ok(())
}

/// Repeats of a step name add up, keeping the index of the first occurrence.
fn merge_step(
    out: &mut Vec<StepEvent>,
    name: String,
    index: u32,
    duration_us: i64,
    tokens: Option<(i64, i64)>,
) {
    if let Some(existing) = out.iter_mut().find(|s| s.name == name) {
        existing.occurrences += 1;
        existing.duration_us = existing.duration_us.saturating_add(duration_us);
        existing.tokens = match (existing.tokens, tokens) {
            (Some((a, b)), Some((c, d))) => Some((a.saturating_add(c), b.saturating_add(d))),
            (a, b) => a.or(b),
        };
    } else {
        out.push(StepEvent {
            name,
            first_index: index,
            occurrences: 1,
            duration_us,
            tokens,
        });
    }
}

fn check_step_name(name: &str, path: impl Fn() -> String) -> Result<()> {
    let len = name.chars().count();
    if len == 0 || len > MAX_STEP_NAME_CHARS {
        return reject(
            &path(),
            format!("must be 1 to {MAX_STEP_NAME_CHARS} characters, got {len}"),
        );
    }
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return reject(
            &path(),
            format!(
                "{} may only contain a-z, 0-9, '_', '.' and '-'",
                quote(name)
            ),
        );
    }
    Ok(())
}

fn retrieved(items: Option<Vec<Read<Uuid>>>, limits: &EventLimits) -> Result<Vec<Uuid>> {
    let Some(items) = items else {
        return Ok(Vec::new());
    };
    let max = limits.max_retrieved_documents;
    if items.len() > max {
        return reject(
            "retrieved_document_ids",
            format!("has {} ids, more than the limit of {max}", items.len()),
        );
    }
    let mut out: Vec<Uuid> = Vec::with_capacity(items.len());
    for item in items {
        let id = item?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn rerank(parts: RerankParts) -> Result<RerankEvent> {
    let score_before = parts.score_before?;
    let score_after = parts.score_after?;
    let direct = parts.score_improvement?;
    let improvement = direct.or(match (score_before, score_after) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    });
    let position = parts.position_change?;
    if let Some(p) = position
        && p < 0.0
    {
        return reject(
            "rerank.position_change",
            format!("is a mean absolute rank shift and must be >= 0, got {p}"),
        );
    }
    Ok(RerankEvent {
        score_before,
        score_after,
        improvement_n: improvement
            .map(|v| nano_units("rerank.score_improvement", v))
            .transpose()?,
        position_n: position
            .map(|v| nano_units("rerank.position_change", v))
            .transpose()?,
    })
}

/// Scores in units of 1e-9: exact sums in any order, and float noise such as
/// `0.67 - 0.41 = 0.26000000000000006` rounds away.
fn nano_units(path: &str, value: f64) -> Result<i64> {
    let scaled = (value * 1e9).round();
    if scaled.abs() >= 9.2e18 {
        return reject(path, format!("{value} is out of range"));
    }
    Ok(scaled as i64)
}

fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}
