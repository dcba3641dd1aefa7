//! Validated events: what the rest of ragpulse sees of a client's telemetry.
//! Everything here has passed `validate`, so the store never has to doubt it.

use uuid::Uuid;

/// How an entity event treats one optional field: an absent field keeps the
/// stored value, an explicit `null` clears it, a value replaces it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// The value to write when the entity is new or updated: `None` for keep.
    pub fn as_update(&self) -> Option<Option<&T>> {
        match self {
            Patch::Keep => None,
            Patch::Clear => Some(None),
            Patch::Set(v) => Some(Some(v)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssistantEvent {
    pub id: Uuid,
    pub name: Patch<String>,
    pub model: Patch<String>,
}

/// A user id: any non-empty string of at most [`UserId::MAX_CHARS`]
/// characters, since platforms (and OpenTelemetry's `user.id`) name users
/// their own way. A string that parses as a UUID is kept in the UUID's
/// canonical form, so `5D1C…` and `5d1c…` are one user, as before ids were free.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub const MAX_CHARS: usize = 256;

    /// The id, or what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(uuid) = Uuid::parse_str(text) {
            return Ok(Self(uuid.to_string()));
        }
        let chars = text.chars().count();
        if chars == 0 || chars > Self::MAX_CHARS {
            return Err(format!(
                "must be 1 to {} characters, got {chars}",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserEvent {
    pub id: UserId,
    pub email: Patch<String>,
    pub full_name: Patch<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorEvent {
    pub id: Uuid,
    pub name: Patch<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentEvent {
    pub id: Uuid,
    pub connector_id: Patch<Uuid>,
    pub file_name: Patch<String>,
    /// Microseconds; when the content last changed at the source.
    pub updated_at: Patch<i64>,
    /// `Clear` (explicit null) means not deleted, the default.
    pub deleted: Patch<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    Success,
    Partial,
    Failure,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Success => "success",
            SyncStatus::Partial => "partial",
            SyncStatus::Failure => "failure",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(SyncStatus::Success),
            "partial" => Some(SyncStatus::Partial),
            "failure" => Some(SyncStatus::Failure),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncEvent {
    pub id: Uuid,
    pub connector_id: Uuid,
    pub status: SyncStatus,
    pub started_at: i64,
    pub duration_us: Option<i64>,
    pub documents_synced: Option<i64>,
    pub error: Option<String>,
}

/// One step name of an interaction, its repeats already summed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepEvent {
    pub name: String,
    /// Index of the name's first occurrence in the interaction's `steps` list.
    pub first_index: u32,
    pub occurrences: u32,
    pub duration_us: i64,
    /// `Some` when any occurrence reported tokens (the absent side counts 0).
    pub tokens: Option<(i64, i64)>,
}

/// Rerank data; `improvement_n` and `position_n` are in units of 1e-9 so sums
/// are exact whatever the order of addition.
#[derive(Debug, Clone, PartialEq)]
pub struct RerankEvent {
    pub score_before: Option<f64>,
    pub score_after: Option<f64>,
    pub improvement_n: Option<i64>,
    pub position_n: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InteractionEvent {
    pub id: Uuid,
    pub timestamp: i64,
    pub assistant_id: Uuid,
    pub session_id: String,
    pub user_id: Option<UserId>,
    /// The raw question, trimmed; `None` when absent or blank.
    pub question: Option<String>,
    /// Unit length; used at ingest for topic assignment only, never stored per interaction.
    pub question_embedding: Option<Vec<f32>>,
    /// The client's topic label, trimmed; `None` when absent or blank.
    pub topic: Option<String>,
    /// Which topic the interaction joins, computed at validation (off the writer).
    pub topic_key: Option<crate::topics::TopicKey>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub ttft_us: Option<i64>,
    pub total_duration_us: Option<i64>,
    pub cache_hit: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    /// Client-supplied cost in nano-dollars; wins over the catalogue.
    pub cost_nusd: Option<i64>,
    pub steps: Vec<StepEvent>,
    /// Distinct, in first-seen order.
    pub retrieved_document_ids: Vec<Uuid>,
    pub rerank: Option<RerankEvent>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Assistant(AssistantEvent),
    User(UserEvent),
    Connector(ConnectorEvent),
    Document(DocumentEvent),
    ConnectorSync(SyncEvent),
    Interaction(Box<InteractionEvent>),
}

impl Event {
    /// The event `type` as clients spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Assistant(_) => "assistant",
            Event::User(_) => "user",
            Event::Connector(_) => "connector",
            Event::Document(_) => "document",
            Event::ConnectorSync(_) => "connector_sync",
            Event::Interaction(_) => "interaction",
        }
    }
}
