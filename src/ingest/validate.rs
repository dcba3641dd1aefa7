//! Turns one JSON event into a validated [`Event`], or a message that names
//! the offending field. The rules are those of `docs/ingest.md`.

use uuid::Uuid;

use super::event::*;
use super::json::{Json, Object};
use crate::time::{MICROS_PER_DAY, MICROS_PER_SECOND, Timestamp};

/// Per-event limits (the body-level ones live with the decoder).
#[derive(Debug, Clone)]
pub struct EventLimits {
    pub max_string_bytes: usize,
    pub max_embedding_dims: usize,
    pub max_steps: usize,
    pub max_retrieved_documents: usize,
    /// How far in the future a timestamp may be, microseconds.
    pub max_future_us: i64,
    /// How far in the past an interaction's `timestamp` or a sync's
    /// `started_at` may be, days. A document's `updated_at` may be any date.
    pub max_age_days: u32,
}

/// The default of [`EventLimits::max_age_days`]: a year and a month, so a
/// year-over-year comparison still finds last year's events.
pub const DEFAULT_MAX_EVENT_AGE_DAYS: u32 = 400;

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_string_bytes: 8 * 1024,
            max_embedding_dims: 4096,
            max_steps: 256,
            max_retrieved_documents: 1024,
            max_future_us: 5 * 60 * MICROS_PER_SECOND,
            max_age_days: DEFAULT_MAX_EVENT_AGE_DAYS,
        }
    }
}

const MAX_SESSION_ID_CHARS: usize = 200;
const MAX_STEP_NAME_CHARS: usize = 64;
/// Largest integer a JSON float carries exactly; token counts beyond it are nonsense anyway.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Why an event was rejected, naming the field (`steps[2].name: ...`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

type Result<T> = std::result::Result<T, Rejection>;

fn reject<T>(field: &str, message: impl std::fmt::Display) -> Result<T> {
    Err(Rejection(format!("{field}: {message}")))
}

/// Validates one event against the clock `now_us`.
pub fn validate(value: &Json<'_>, limits: &EventLimits, now_us: i64) -> Result<Event> {
    let Json::Object(obj) = value else {
        return Err(Rejection(format!(
            "event must be a JSON object, got {}",
            json_kind(value)
        )));
    };
    let fields = Fields {
        obj,
        prefix: String::new(),
        limits,
        now_us,
    };
    let kind = match obj.get("type") {
        Some(Json::String(kind)) => kind.as_ref(),
        Some(other) => {
            return reject(
                "type",
                format!("must be a string, got {}", json_kind(other)),
            );
        }
        None => return reject("type", "is required"),
    };
    match kind {
        "interaction" => interaction(&fields).map(|e| Event::Interaction(Box::new(e))),
        "assistant" => Ok(Event::Assistant(AssistantEvent {
            id: fields.uuid("id")?,
            name: fields.patch_string("name")?,
            model: fields.patch_string("model")?,
        })),
        "user" => Ok(Event::User(UserEvent {
            id: fields.user_id("id")?,
            email: fields.patch_string("email")?,
            full_name: fields.patch_string("full_name")?,
        })),
        "connector" => Ok(Event::Connector(ConnectorEvent {
            id: fields.uuid("id")?,
            name: fields.patch_string("name")?,
        })),
        "document" => document(&fields).map(Event::Document),
        "connector_sync" => sync(&fields).map(Event::ConnectorSync),
        other => reject(
            "type",
            format!(
                "unknown event type {}; expected one of interaction, assistant, user, connector, document, connector_sync",
                quote(other)
            ),
        ),
    }
}

fn document(f: &Fields) -> Result<DocumentEvent> {
    Ok(DocumentEvent {
        id: f.uuid("id")?,
        connector_id: f.patch(&"connector_id", |f, k| f.uuid(k))?,
        file_name: f.patch_string("file_name")?,
        updated_at: f.patch(&"updated_at", |f, k| f.timestamp(k))?,
        deleted: f.patch(&"deleted", |f, k| f.boolean(k))?,
    })
}

fn sync(f: &Fields) -> Result<SyncEvent> {
    let status_text = f.string("status")?;
    let Some(status) = SyncStatus::parse(&status_text) else {
        return reject(
            &f.path("status"),
            format!(
                "must be one of success, partial, failure, got {}",
                quote(&status_text)
            ),
        );
    };
    Ok(SyncEvent {
        id: f.uuid("id")?,
        connector_id: f.uuid("connector_id")?,
        status,
        started_at: f.recent_timestamp("started_at")?,
        duration_us: f.optional(&"duration_s", |f, k| f.duration(k))?,
        documents_synced: f.optional(&"documents_synced", |f, k| f.count(k))?,
        error: f.optional(&"error", |f, k| f.string(k))?,
    })
}

fn interaction(f: &Fields) -> Result<InteractionEvent> {
    let id = f.uuid("id")?;
    let timestamp = f.recent_timestamp("timestamp")?;
    let assistant_id = f.uuid("assistant_id")?;
    let session_id = f.string("session_id")?;
    let session_chars = session_id.chars().count();
    if session_chars == 0 || session_chars > MAX_SESSION_ID_CHARS {
        return reject(
            &f.path("session_id"),
            format!("must be 1 to {MAX_SESSION_ID_CHARS} characters, got {session_chars}"),
        );
    }
    let ttft_us = f.optional(&"ttft_s", |f, k| f.duration(k))?;
    let total_duration_us = f.optional(&"total_duration_s", |f, k| f.duration(k))?;
    if let (Some(ttft), Some(total)) = (ttft_us, total_duration_us)
        && ttft > total
    {
        return reject(
            &f.path("ttft_s"),
            format!(
                "{} s exceeds total_duration_s {} s",
                seconds(ttft),
                seconds(total)
            ),
        );
    }
    let input_tokens = f.optional(&"input_tokens", |f, k| f.count(k))?.unwrap_or(0);
    let cached_input_tokens = f
        .optional(&"cached_input_tokens", |f, k| f.count(k))?
        .unwrap_or(0);
    if cached_input_tokens > input_tokens {
        return reject(
            &f.path("cached_input_tokens"),
            format!("{cached_input_tokens} exceeds input_tokens {input_tokens}"),
        );
    }
    let question = f.optional_text("question")?;
    let topic = f.optional_text("topic")?;
    let question_embedding = f.optional(&"question_embedding", |f, k| f.embedding(k))?;
    Ok(InteractionEvent {
        id,
        timestamp,
        assistant_id,
        session_id,
        user_id: f.optional(&"user_id", |f, k| f.user_id(k))?,
        topic_key: crate::topics::topic_key(
            topic.as_deref(),
            question.as_deref(),
            question_embedding.is_some(),
        ),
        question,
        question_embedding,
        topic,
        model: f.optional_text("model")?,
        provider: f.optional_text("provider")?,
        ttft_us,
        total_duration_us,
        cache_hit: f
            .optional(&"cache_hit", |f, k| f.boolean(k))?
            .unwrap_or(false),
        input_tokens,
        output_tokens: f
            .optional(&"output_tokens", |f, k| f.count(k))?
            .unwrap_or(0),
        cached_input_tokens,
        cost_nusd: f.optional(&"cost_usd", |f, k| f.cost(k))?,
        steps: steps(f)?,
        retrieved_document_ids: retrieved(f)?,
        rerank: f.optional(&"rerank", |f, k| rerank(&f.child(k)?))?,
    })
}

fn steps(f: &Fields) -> Result<Vec<StepEvent>> {
    let Some(items) = f.optional(&"steps", |f, k| f.array(k))? else {
        return Ok(Vec::new());
    };
    if items.len() > f.limits.max_steps {
        return reject(
            &f.path("steps"),
            format!(
                "has {} steps, more than the limit of {}",
                items.len(),
                f.limits.max_steps
            ),
        );
    }
    let mut out: Vec<StepEvent> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let step = f.element("steps", index, item)?;
        let name = step.string("name")?;
        check_step_name(&step.path("name"), &name)?;
        let duration_us = step.duration("duration_s")?;
        let input = step.optional(&"input_tokens", |f, k| f.count(k))?;
        let output = step.optional(&"output_tokens", |f, k| f.count(k))?;
        let tokens = (input.is_some() || output.is_some())
            .then(|| (input.unwrap_or(0), output.unwrap_or(0)));
        merge_step(&mut out, name, index as u32, duration_us, tokens);
    }
    Ok(out)
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

fn check_step_name(path: &str, name: &str) -> Result<()> {
    let len = name.chars().count();
    if len == 0 || len > MAX_STEP_NAME_CHARS {
        return reject(
            path,
            format!("must be 1 to {MAX_STEP_NAME_CHARS} characters, got {len}"),
        );
    }
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return reject(
            path,
            format!(
                "{} may only contain a-z, 0-9, '_', '.' and '-'",
                quote(name)
            ),
        );
    }
    Ok(())
}

fn retrieved(f: &Fields) -> Result<Vec<Uuid>> {
    let Some(items) = f.optional(&"retrieved_document_ids", |f, k| f.array(k))? else {
        return Ok(Vec::new());
    };
    let max = f.limits.max_retrieved_documents;
    if items.len() > max {
        return reject(
            &f.path("retrieved_document_ids"),
            format!("has {} ids, more than the limit of {max}", items.len()),
        );
    }
    let mut out: Vec<Uuid> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let id = parse_uuid(item).or_else(|message| {
            reject(
                &format!("{}[{index}]", f.path("retrieved_document_ids")),
                message,
            )
        })?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn rerank(f: &Fields) -> Result<RerankEvent> {
    let score_before = f.optional(&"score_before", |f, k| f.finite(k))?;
    let score_after = f.optional(&"score_after", |f, k| f.finite(k))?;
    let direct = f.optional(&"score_improvement", |f, k| f.finite(k))?;
    let improvement = direct.or(match (score_before, score_after) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    });
    let position = f.optional(&"position_change", |f, k| f.finite(k))?;
    if let Some(p) = position
        && p < 0.0
    {
        return reject(
            &f.path("position_change"),
            format!("is a mean absolute rank shift and must be >= 0, got {p}"),
        );
    }
    Ok(RerankEvent {
        score_before,
        score_after,
        improvement_n: improvement
            .map(|v| nano_units(&f.path("score_improvement"), v))
            .transpose()?,
        position_n: position
            .map(|v| nano_units(&f.path("position_change"), v))
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

/// One JSON object being validated, with the path of its fields for messages.
struct Fields<'a> {
    obj: &'a Object<'a>,
    prefix: String,
    limits: &'a EventLimits,
    now_us: i64,
}

impl<'a> Fields<'a> {
    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn present(&self, key: &str) -> Result<&'a Json<'a>> {
        match self.obj.get(key) {
            None | Some(Json::Null) => reject(&self.path(key), "is required"),
            Some(v) => Ok(v),
        }
    }

    /// Absent or null is `None`; otherwise the parsed value.
    fn optional<T>(
        &self,
        key: &&str,
        parse: impl FnOnce(&Self, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.obj.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(_) => parse(self, key).map(Some),
        }
    }

    /// Absent keeps, null clears, a value sets.
    fn patch<T>(
        &self,
        key: &&str,
        parse: impl FnOnce(&Self, &str) -> Result<T>,
    ) -> Result<Patch<T>> {
        match self.obj.get(key) {
            None => Ok(Patch::Keep),
            Some(Json::Null) => Ok(Patch::Clear),
            Some(_) => parse(self, key).map(Patch::Set),
        }
    }

    fn patch_string(&self, key: &str) -> Result<Patch<String>> {
        self.patch(&key, |f, k| f.string(k))
    }

    /// A trimmed string; blank counts as absent.
    fn optional_text(&self, key: &str) -> Result<Option<String>> {
        let text = self.optional(&key, |f, k| f.string(k))?;
        Ok(text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
    }

    fn child(&self, key: &str) -> Result<Fields<'a>> {
        match self.present(key)? {
            Json::Object(obj) => Ok(Fields {
                obj,
                prefix: self.path(key),
                limits: self.limits,
                now_us: self.now_us,
            }),
            other => reject(
                &self.path(key),
                format!("must be an object, got {}", json_kind(other)),
            ),
        }
    }

    fn element(&self, key: &str, index: usize, item: &'a Json<'a>) -> Result<Fields<'a>> {
        let prefix = format!("{}[{index}]", self.path(key));
        match item {
            Json::Object(obj) => Ok(Fields {
                obj,
                prefix,
                limits: self.limits,
                now_us: self.now_us,
            }),
            other => reject(
                &prefix,
                format!("must be an object, got {}", json_kind(other)),
            ),
        }
    }

    fn string(&self, key: &str) -> Result<String> {
        match self.present(key)? {
            Json::String(s) if s.len() > self.limits.max_string_bytes => reject(
                &self.path(key),
                format!(
                    "is {} bytes long, more than the limit of {} bytes",
                    s.len(),
                    self.limits.max_string_bytes
                ),
            ),
            Json::String(s) => Ok(s.to_string()),
            other => reject(
                &self.path(key),
                format!("must be a string, got {}", json_kind(other)),
            ),
        }
    }

    fn uuid(&self, key: &str) -> Result<Uuid> {
        parse_uuid(self.present(key)?).or_else(|message| reject(&self.path(key), message))
    }

    fn user_id(&self, key: &str) -> Result<UserId> {
        match self.present(key)? {
            Json::String(s) => UserId::parse(s).or_else(|message| reject(&self.path(key), message)),
            other => reject(
                &self.path(key),
                format!("must be a string, got {}", json_kind(other)),
            ),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool> {
        match self.present(key)? {
            Json::Bool(b) => Ok(*b),
            other => reject(
                &self.path(key),
                format!("must be true or false, got {}", json_kind(other)),
            ),
        }
    }

    fn array(&self, key: &str) -> Result<&'a Vec<Json<'a>>> {
        match self.present(key)? {
            Json::Array(items) => Ok(items),
            other => reject(
                &self.path(key),
                format!("must be an array, got {}", json_kind(other)),
            ),
        }
    }

    fn timestamp(&self, key: &str) -> Result<i64> {
        let text = match self.present(key)? {
            Json::String(s) => s,
            other => {
                return reject(
                    &self.path(key),
                    format!("must be an RFC 3339 string, got {}", json_kind(other)),
                );
            }
        };
        let Some(ts) = Timestamp::parse_rfc3339(text) else {
            return reject(
                &self.path(key),
                format!(
                    "{} is not an RFC 3339 timestamp with a UTC offset (for example 2026-11-28T09:15:02.120Z)",
                    quote(text)
                ),
            );
        };
        if ts.0 > self.now_us.saturating_add(self.limits.max_future_us) {
            return reject(
                &self.path(key),
                format!("{} is more than 5 minutes in the future", quote(text)),
            );
        }
        Ok(ts.0)
    }

    /// A timestamp of something that happens now (an interaction, a sync):
    /// at most [`EventLimits::max_age_days`] old. A client clock at epoch 0
    /// would otherwise reopen a long-sealed day with every batch.
    fn recent_timestamp(&self, key: &str) -> Result<i64> {
        let ts = self.timestamp(key)?;
        let days = self.limits.max_age_days;
        let oldest = self
            .now_us
            .saturating_sub(i64::from(days).saturating_mul(MICROS_PER_DAY));
        if ts < oldest {
            return reject(
                &self.path(key),
                format!(
                    "{} is more than {days} days in the past (the server's --max-event-age-days); \
                     load older history with `ragpulse import --max-event-age-days N`",
                    Timestamp(ts).to_rfc3339()
                ),
            );
        }
        Ok(ts)
    }

    fn finite(&self, key: &str) -> Result<f64> {
        match self.present(key)? {
            Json::Number(n) => match n.as_f64() {
                Some(v) if v.is_finite() => Ok(v),
                _ => reject(&self.path(key), format!("{n} is not a finite number")),
            },
            other => reject(
                &self.path(key),
                format!("must be a number, got {}", json_kind(other)),
            ),
        }
    }

    /// Seconds, finite and >= 0, kept as whole microseconds.
    fn duration(&self, key: &str) -> Result<i64> {
        let seconds = self.finite(key)?;
        // 10^12 s is 31,000 years: anything above is a unit mistake, not a duration.
        if !(0.0..=1e12).contains(&seconds) {
            return reject(
                &self.path(key),
                format!("must be seconds between 0 and 1e12, got {seconds}"),
            );
        }
        Ok((seconds * 1e6).round() as i64)
    }

    /// A whole number >= 0; `1830.0` is accepted, `1830.5` is not.
    fn count(&self, key: &str) -> Result<i64> {
        let path = || self.path(key);
        match self.present(key)? {
            Json::Number(n) => {
                if let Some(v) = n.as_u64() {
                    return i64::try_from(v)
                        .or_else(|_| reject(&path(), format!("{v} is too large")));
                }
                match n.as_f64() {
                    Some(v) if v >= 0.0 && v.fract() == 0.0 && v <= MAX_EXACT_INT => Ok(v as i64),
                    Some(v) if v < 0.0 => reject(&path(), format!("must be >= 0, got {n}")),
                    _ => reject(&path(), format!("must be a whole number, got {n}")),
                }
            }
            other => reject(
                &path(),
                format!("must be a whole number, got {}", json_kind(other)),
            ),
        }
    }

    fn cost(&self, key: &str) -> Result<i64> {
        let usd = self.finite(key)?;
        if !(0.0..=1e9).contains(&usd) {
            return reject(
                &self.path(key),
                format!("must be US dollars between 0 and 1e9, got {usd}"),
            );
        }
        Ok((usd * 1e9).round() as i64)
    }

    fn embedding(&self, key: &str) -> Result<Vec<f32>> {
        let path = self.path(key);
        let items = self.array(key)?;
        let max = self.limits.max_embedding_dims;
        if items.is_empty() || items.len() > max {
            return reject(
                &path,
                format!("must have 1 to {max} dimensions, got {}", items.len()),
            );
        }
        let vector = items
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_f64() {
                Some(x) if x.is_finite() && (x as f32).is_finite() => Ok(x as f32),
                _ => reject(
                    &format!("{path}[{i}]"),
                    format!("must be a finite number, got {v}"),
                ),
            })
            .collect::<Result<Vec<f32>>>()?;
        // Kept as a unit vector: cosine similarity is then a dot product.
        crate::topics::centroids::unit(&vector).map_or_else(
            || reject(&path, "is a zero vector, which has no direction to compare"),
            Ok,
        )
    }
}

/// The UUID, or what is wrong with it (without the field's path, which
/// callers build only then).
fn parse_uuid(value: &Json<'_>) -> std::result::Result<Uuid, String> {
    match value {
        Json::String(s) => {
            Uuid::parse_str(s).map_err(|e| format!("{} is not a valid UUID: {e}", quote(s)))
        }
        other => Err(format!("must be a UUID string, got {}", json_kind(other))),
    }
}

fn json_kind(value: &Json<'_>) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Quotes a client value for a message, shortened so a huge value cannot flood it.
fn quote(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

fn seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    // 2026-11-30T02:53:20Z: after every timestamp the tests send.
    const NOW: i64 = 1_796_000_000_000_000;

    fn check(value: Value) -> Result<Event> {
        validate(&Json::borrow(&value), &EventLimits::default(), NOW)
    }

    fn interaction(extra: Value) -> Value {
        let mut base = json!({
            "type": "interaction",
            "id": "22222222-2222-4222-8222-222222222222",
            "timestamp": "2026-11-19T00:00:00Z",
            "assistant_id": "11111111-1111-4111-8111-111111111111",
            "session_id": "s1",
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        base
    }

    fn rejected(value: Value) -> String {
        match check(value) {
            Err(Rejection(message)) => message,
            Ok(event) => panic!("expected a rejection, got {event:?}"),
        }
    }

    fn accepted(value: Value) -> Box<InteractionEvent> {
        match check(value) {
            Ok(Event::Interaction(e)) => e,
            other => panic!("expected an interaction, got {other:?}"),
        }
    }

    #[test]
    fn interactions_and_syncs_older_than_the_horizon_are_refused_documents_are_not() {
        let epoch = rejected(interaction(json!({"timestamp": "1970-01-01T00:00:00Z"})));
        assert_eq!(
            epoch,
            "timestamp: 1970-01-01T00:00:00.000000Z is more than 400 days in the past \
             (the server's --max-event-age-days); load older history with \
             `ragpulse import --max-event-age-days N`"
        );
        // 400 days before NOW is the last instant accepted.
        let edge = Timestamp(NOW - 400 * MICROS_PER_DAY).to_rfc3339();
        accepted(interaction(json!({"timestamp": edge})));
        let before = Timestamp(NOW - 400 * MICROS_PER_DAY - 1).to_rfc3339();
        assert!(rejected(interaction(json!({"timestamp": before}))).contains("400 days"));
        let sync = json!({
            "type": "connector_sync", "id": "33333333-3333-4333-8333-333333333333",
            "connector_id": "44444444-4444-4444-8444-444444444444",
            "status": "success", "started_at": "2001-01-01T00:00:00Z",
        });
        assert!(rejected(sync).starts_with("started_at: 2001-01-01T00:00:00"));
        let document = json!({
            "type": "document", "id": "55555555-5555-4555-8555-555555555555",
            "updated_at": "1999-01-01T00:00:00Z",
        });
        assert!(check(document).is_ok(), "a document may be of any age");
        // A wider horizon, as `import --max-event-age-days` gives.
        let wide = EventLimits {
            max_age_days: 30_000,
            ..EventLimits::default()
        };
        let old = interaction(json!({"timestamp": "1970-01-01T00:00:00Z"}));
        assert!(validate(&Json::borrow(&old), &wide, NOW).is_ok());
    }

    #[test]
    fn a_minimal_interaction_gets_the_documented_defaults() {
        let e = accepted(interaction(json!({})));
        assert!(!e.cache_hit);
        assert_eq!(
            (e.input_tokens, e.output_tokens, e.cached_input_tokens),
            (0, 0, 0)
        );
        assert!(e.steps.is_empty() && e.retrieved_document_ids.is_empty());
        assert_eq!(e.ttft_us, None);
        assert_eq!(e.cost_nusd, None);
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("missing id", json!({"id": null}), "id: is required"),
            (
                "bad uuid",
                json!({"id": "nope"}),
                "id: \"nope\" is not a valid UUID",
            ),
            (
                "naive time",
                json!({"timestamp": "2026-11-19T00:00:00"}),
                "timestamp: \"2026-11-19T00:00:00\" is not an RFC 3339",
            ),
            (
                "future",
                json!({"timestamp": "2099-01-01T00:00:00Z"}),
                "more than 5 minutes in the future",
            ),
            (
                "empty session",
                json!({"session_id": ""}),
                "session_id: must be 1 to 200 characters, got 0",
            ),
            (
                "long session",
                json!({"session_id": "x".repeat(201)}),
                "session_id: must be 1 to 200 characters, got 201",
            ),
            (
                "negative ttft",
                json!({"ttft_s": -0.1}),
                "ttft_s: must be seconds between 0 and 1e12",
            ),
            (
                "ttft over total",
                json!({"ttft_s": 2.0, "total_duration_s": 1.0}),
                "ttft_s: 2 s exceeds total_duration_s 1 s",
            ),
            (
                "fractional tokens",
                json!({"input_tokens": 1830.5}),
                "input_tokens: must be a whole number, got 1830.5",
            ),
            (
                "negative tokens",
                json!({"output_tokens": -1}),
                "output_tokens: must be >= 0, got -1",
            ),
            (
                "cached over input",
                json!({"input_tokens": 10, "cached_input_tokens": 11}),
                "cached_input_tokens: 11 exceeds input_tokens 10",
            ),
            (
                "step name",
                json!({"steps": [{"name": "Retrieval", "duration_s": 1}]}),
                "steps[0].name: \"Retrieval\" may only contain",
            ),
            (
                "step duration",
                json!({"steps": [{"name": "a"}]}),
                "steps[0].duration_s: is required",
            ),
            (
                "doc id",
                json!({"retrieved_document_ids": ["x"]}),
                "retrieved_document_ids[0]: \"x\" is not a valid UUID",
            ),
            (
                "embedding",
                json!({"question_embedding": [1.0, "a"]}),
                "question_embedding[1]: must be a finite number",
            ),
            (
                "empty embedding",
                json!({"question_embedding": []}),
                "question_embedding: must have 1 to 4096 dimensions, got 0",
            ),
            (
                "cost",
                json!({"cost_usd": -1}),
                "cost_usd: must be US dollars between 0 and 1e9",
            ),
            (
                "cache flag",
                json!({"cache_hit": "yes"}),
                "cache_hit: must be true or false, got a string",
            ),
            (
                "rerank position",
                json!({"rerank": {"position_change": -1}}),
                "rerank.position_change: is a mean absolute rank shift",
            ),
            (
                "long question",
                json!({"question": "q".repeat(8193)}),
                "question: is 8193 bytes long, more than the limit of 8192 bytes",
            ),
        ];
        for (case, extra, expected) in cases {
            let message = rejected(interaction(extra));
            assert!(
                message.contains(expected),
                "{case}: {message:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn user_ids_are_free_strings_and_uuids_keep_their_canonical_form() {
        let e = accepted(interaction(json!({"user_id": "auth0|5f1c"})));
        assert_eq!(e.user_id.as_ref().map(UserId::as_str), Some("auth0|5f1c"));
        let e = accepted(interaction(
            json!({"user_id": "5D1C7E2A-0000-4000-8000-000000000002"}),
        ));
        assert_eq!(
            e.user_id.as_ref().map(UserId::as_str),
            Some("5d1c7e2a-0000-4000-8000-000000000002")
        );
        assert!(
            rejected(interaction(json!({"user_id": ""})))
                .starts_with("user_id: must be 1 to 256 characters, got 0")
        );
        assert!(
            rejected(interaction(json!({"user_id": "u".repeat(257)})))
                .starts_with("user_id: must be 1 to 256 characters, got 257")
        );
        assert!(
            rejected(interaction(json!({"user_id": 7})))
                .starts_with("user_id: must be a string, got a number")
        );
        let Ok(Event::User(user)) = check(json!({"type": "user", "id": "ada@example.com"})) else {
            panic!("a user event expected")
        };
        assert_eq!(user.id.as_str(), "ada@example.com");
    }

    #[test]
    fn whole_floats_are_token_counts() {
        let e = accepted(interaction(
            json!({"input_tokens": 1830.0, "output_tokens": 12}),
        ));
        assert_eq!(e.input_tokens, 1830);
    }

    #[test]
    fn repeated_steps_add_up_and_keep_their_first_index() {
        let e = accepted(interaction(json!({"steps": [
            {"name": "retrieval", "duration_s": 0.25},
            {"name": "synthesis", "duration_s": 1.0, "output_tokens": 5},
            {"name": "retrieval", "duration_s": 0.5, "input_tokens": 7},
        ]})));
        assert_eq!(
            e.steps,
            vec![
                StepEvent {
                    name: "retrieval".into(),
                    first_index: 0,
                    occurrences: 2,
                    duration_us: 750_000,
                    tokens: Some((7, 0))
                },
                StepEvent {
                    name: "synthesis".into(),
                    first_index: 1,
                    occurrences: 1,
                    duration_us: 1_000_000,
                    tokens: Some((0, 5))
                },
            ]
        );
    }

    #[test]
    fn repeated_documents_count_once() {
        let id = "33333333-3333-4333-8333-333333333333";
        let e = accepted(interaction(
            json!({"retrieved_document_ids": [id, id.to_uppercase()]}),
        ));
        assert_eq!(e.retrieved_document_ids.len(), 1);
    }

    #[test]
    fn rerank_improvement_is_derived_or_taken_as_sent() {
        let derived = accepted(interaction(
            json!({"rerank": {"score_before": 0.41, "score_after": 0.67}}),
        ));
        assert_eq!(derived.rerank.unwrap().improvement_n, Some(260_000_000));
        let direct = accepted(interaction(
            json!({"rerank": {"score_improvement": 0.1, "score_before": 0.0, "score_after": 0.9}}),
        ));
        assert_eq!(direct.rerank.unwrap().improvement_n, Some(100_000_000));
        let none = accepted(interaction(json!({"rerank": {"score_before": 0.4}})));
        assert_eq!(none.rerank.unwrap().improvement_n, None);
    }

    #[test]
    fn offsets_convert_to_utc_and_blank_texts_are_absent() {
        let e = accepted(interaction(
            json!({"timestamp": "2026-11-19T02:00:00+02:00", "question": "  ", "topic": " Billing "}),
        ));
        assert_eq!(
            e.timestamp,
            Timestamp::parse_rfc3339("2026-11-19T00:00:00Z").unwrap().0
        );
        assert_eq!(e.question, None);
        assert_eq!(e.topic.as_deref(), Some("Billing"));
    }

    #[test]
    fn entity_fields_keep_clear_or_set() {
        let Ok(Event::Document(d)) = check(
            json!({"type": "document", "id": "33333333-3333-4333-8333-333333333333",
            "file_name": null, "deleted": true}),
        ) else {
            panic!("document expected")
        };
        assert_eq!(d.file_name, Patch::Clear);
        assert_eq!(d.updated_at, Patch::Keep);
        assert_eq!(d.deleted, Patch::Set(true));
    }

    #[test]
    fn syncs_need_a_known_status_and_types_must_be_known() {
        let sync = json!({"type": "connector_sync", "id": "44444444-4444-4444-8444-444444444444",
            "connector_id": "55555555-5555-4555-8555-555555555555", "status": "ok", "started_at": "2026-11-19T00:00:00Z"});
        assert!(
            rejected(sync)
                .starts_with("status: must be one of success, partial, failure, got \"ok\"")
        );
        assert!(
            rejected(json!({"type": "interactions"}))
                .starts_with("type: unknown event type \"interactions\"")
        );
        assert_eq!(
            rejected(json!([1])),
            "event must be a JSON object, got an array"
        );
    }

    #[test]
    fn limits_on_lists_are_per_event() {
        let steps: Vec<Value> = (0..257)
            .map(|_| json!({"name": "a", "duration_s": 0}))
            .collect();
        assert!(rejected(interaction(json!({"steps": steps}))).starts_with("steps: has 257 steps"));
        let docs: Vec<String> = (0..1025)
            .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
            .collect();
        assert!(
            rejected(interaction(json!({"retrieved_document_ids": docs})))
                .starts_with("retrieved_document_ids: has 1025 ids")
        );
        let dims = vec![0.5; 4097];
        assert!(rejected(interaction(json!({"question_embedding": dims}))).contains("got 4097"));
    }
}
