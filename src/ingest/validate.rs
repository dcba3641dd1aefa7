//! Turns one JSON event into a validated [`Event`], or a message that names
//! the offending field. The rules are those of `docs/ingest.md`; an
//! interaction's are in [`interaction`], which the OTLP finaliser applies to
//! the interactions it maps without writing them as JSON.

use std::borrow::Cow;

use uuid::Uuid;

use super::event::*;
use super::interaction::{self, InteractionParts, Read, RerankParts, Stamp, StepParts};
use super::json::{Json, Object};
use crate::time::{MICROS_PER_SECOND, Timestamp};

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

/// Largest integer a JSON float carries exactly; token counts beyond it are nonsense anyway.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Why an event was rejected, naming the field (`steps[2].name: ...`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

type Result<T> = std::result::Result<T, Rejection>;

pub(super) fn reject<T>(field: &str, message: impl std::fmt::Display) -> Result<T> {
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
    interaction::interaction(read_interaction(f), f.limits, f.now_us)
}

/// An interaction event's fields, each read with its type checked; the
/// rules are applied by [`interaction::interaction`].
fn read_interaction<'a>(f: &Fields<'a>) -> InteractionParts<'a> {
    InteractionParts {
        id: f.uuid("id"),
        timestamp: f.stamp("timestamp"),
        assistant_id: f.uuid("assistant_id"),
        session_id: f.str("session_id"),
        ttft_s: f.optional(&"ttft_s", |f, k| f.finite(k)),
        total_duration_s: f.optional(&"total_duration_s", |f, k| f.finite(k)),
        input_tokens: f.optional(&"input_tokens", |f, k| f.count(k)),
        cached_input_tokens: f.optional(&"cached_input_tokens", |f, k| f.count(k)),
        question: f.optional(&"question", |f, k| f.str(k)),
        topic: f.optional(&"topic", |f, k| f.str(k)),
        question_embedding: f.optional(&"question_embedding", |f, k| f.embedding(k)),
        user_id: f.optional(&"user_id", |f, k| f.str(k)),
        model: f.optional(&"model", |f, k| f.str(k)),
        provider: f.optional(&"provider", |f, k| f.str(k)),
        cache_hit: f.optional(&"cache_hit", |f, k| f.boolean(k)),
        output_tokens: f.optional(&"output_tokens", |f, k| f.count(k)),
        cost_usd: f.optional(&"cost_usd", |f, k| f.finite(k)),
        steps: f.optional(&"steps", |f, k| {
            let items = f.array(k)?;
            Ok(items
                .iter()
                .enumerate()
                .map(|(index, item)| read_step(f, index, item))
                .collect())
        }),
        retrieved_document_ids: f.optional(&"retrieved_document_ids", |f, k| {
            let items = f.array(k)?;
            Ok(items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    parse_uuid(item)
                        .or_else(|message| reject(&format!("{}[{index}]", f.path(k)), message))
                })
                .collect())
        }),
        rerank: f.optional(&"rerank", |f, k| {
            let r = f.child(k)?;
            Ok(RerankParts {
                score_before: r.optional(&"score_before", |f, k| f.finite(k)),
                score_after: r.optional(&"score_after", |f, k| f.finite(k)),
                score_improvement: r.optional(&"score_improvement", |f, k| f.finite(k)),
                position_change: r.optional(&"position_change", |f, k| f.finite(k)),
            })
        }),
    }
}

fn read_step<'a>(f: &Fields<'a>, index: usize, item: &'a Json<'a>) -> Read<StepParts<'a>> {
    let step = f.element("steps", index, item)?;
    Ok(StepParts {
        name: step.str("name"),
        duration_s: step.finite("duration_s"),
        input_tokens: step.optional(&"input_tokens", |f, k| f.count(k)),
        output_tokens: step.optional(&"output_tokens", |f, k| f.count(k)),
    })
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
        interaction::string(&self.path(key), self.str(key)?, self.limits)
    }

    /// A string, borrowed; its length is checked by the rules that take it.
    fn str(&self, key: &str) -> Result<Cow<'a, str>> {
        match self.present(key)? {
            Json::String(s) => Ok(Cow::Borrowed(s.as_ref())),
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
        interaction::timestamp(&self.path(key), self.stamp(key)?, self.limits, self.now_us)
    }

    /// An RFC 3339 instant, not yet held to the limits of the future and the past.
    fn stamp(&self, key: &str) -> Result<Stamp<'a>> {
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
        Ok(Stamp {
            micros: ts.0,
            text: Some(text.as_ref()),
        })
    }

    /// See [`interaction::recent_timestamp`].
    fn recent_timestamp(&self, key: &str) -> Result<i64> {
        interaction::recent_timestamp(&self.path(key), self.stamp(key)?, self.limits, self.now_us)
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
        interaction::duration(&self.path(key), self.finite(key)?)
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
pub(super) fn quote(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MICROS_PER_DAY;
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
