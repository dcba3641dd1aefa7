//! What ragpulse keeps of a span: the facts the mapping needs, read once
//! when the span arrives (its role in a RAG pipeline, ids, times, the
//! question candidates, model and tokens, first-token instant, retrieved
//! documents, rerank scores, `ragpulse.*` overrides). Prompts, answers,
//! document texts and vectors are not kept. Facts are what the pending-spans
//! table stores, so they are small and serialisable (postcard).

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use uuid::Uuid;

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::attrs::{any_to_json, as_bool, as_f64, as_i64, as_str, json_of};
use super::members::string_members;

/// Longest text kept (a question candidate, a session or user id): the
/// ingest limit on strings; a longer one is cut at a character boundary.
pub const MAX_TEXT_BYTES: usize = 8 * 1024;
/// Highest index read from a flattened list (`retrieval.documents.N...`).
const MAX_LIST_INDEX: usize = 1024;

/// A span's part in a RAG pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Role {
    /// A container with no step of its own (HTTP server span, task, ...).
    #[default]
    Other,
    /// A chain, agent or workflow: where an interaction may begin.
    Pipeline,
    /// An LLM call.
    Generation,
    Retrieval,
    Reranking,
    Embedding,
    Tool,
    Guardrail,
}

/// Where a question candidate comes from, in the order the mapping prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Source {
    /// `ragpulse.question`.
    Ragpulse,
    /// The last user text of `gen_ai.input.messages` on an agent or workflow span.
    AgentMessages,
    /// `input.value` (plain text, or the query of a JSON input).
    Input,
    /// `gen_ai.retrieval.query.text`.
    RetrievalQuery,
    /// `reranker.query`.
    RerankerQuery,
    /// `query_str` of `llm.prompt_template.variables`.
    TemplateQuery,
    /// The query of `traceloop.entity.input` (a known key).
    EntityInput,
    /// The only string of a `traceloop.entity.input` object.
    EntityInputSingle,
    /// The user text of `gen_ai.input.messages` on a rerank span.
    RerankMessages,
}

/// Model, provider and token counts of an LLM call span.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub model: Option<String>,
    pub provider: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
}

impl Generation {
    pub fn has_tokens(&self) -> bool {
        self.input_tokens.is_some() || self.output_tokens.is_some()
    }
}

/// Rerank scores of an OpenInference RERANKER span, over the documents it kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rerank {
    pub score_before: Option<f64>,
    pub score_after: Option<f64>,
    pub position_change: Option<f64>,
}

/// The facts of one span.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanFacts {
    pub span_id: [u8; 8],
    /// `None` for a root span.
    pub parent: Option<[u8; 8]>,
    /// The parent is in another process (W3C context from a caller): the
    /// span begins the trace in this service.
    pub remote_parent: bool,
    pub start_ns: u64,
    /// Never before `start_ns`.
    pub end_ns: u64,
    pub role: Role,
    /// `ragpulse.step`: the span is a step of this name whatever its role.
    pub step: Option<String>,
    /// `ragpulse.interaction`: true marks an interaction, false excludes the span's subtree.
    pub interaction: Option<bool>,
    pub questions: Vec<(Source, String)>,
    pub session: Option<String>,
    pub user: Option<String>,
    /// `ragpulse.assistant_id`.
    pub assistant_id: Option<[u8; 16]>,
    /// `ragpulse.cache_hit`.
    pub cache_hit: Option<bool>,
    /// `ragpulse.topic`.
    pub topic: Option<String>,
    pub generation: Option<Generation>,
    /// When the first chunk of a streamed answer arrived, if the span says.
    pub first_token_ns: Option<u64>,
    /// Retrieved documents resolved to ragpulse document ids, in rank order.
    pub documents: Vec<[u8; 16]>,
    /// Retrieved documents whose id could not be resolved to a UUID.
    pub unresolved_documents: u32,
    pub rerank: Option<Rerank>,
}

/// What every span of a resource shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceFacts {
    /// `service.name`: the assistant's name when no `ragpulse.assistant_id` says otherwise.
    pub service_name: Option<String>,
    pub assistant_id: Option<[u8; 16]>,
    pub session: Option<String>,
    pub user: Option<String>,
}

/// The spans of one trace from one resource of one request: what one
/// pending row holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceRow {
    pub resource: ResourceFacts,
    pub spans: Vec<SpanFacts>,
}

/// Why a span was refused (it is counted in the answer's `partial_success`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::enum_variant_names,
    reason = "`SpanProblem::BadTraceId` names the problem; `TraceId` alone would read as an id"
)]
pub enum SpanProblem {
    BadTraceId,
    BadSpanId,
    BadAssistantId(String),
}

impl SpanProblem {
    /// A short label for `/metrics`.
    pub fn reason(&self) -> &'static str {
        match self {
            SpanProblem::BadTraceId => "trace_id",
            SpanProblem::BadSpanId => "span_id",
            SpanProblem::BadAssistantId(_) => "assistant_id",
        }
    }

    pub fn message(&self) -> String {
        match self {
            SpanProblem::BadTraceId => {
                "a span's trace id is not 16 bytes, or is all zeros".to_string()
            }
            SpanProblem::BadSpanId => {
                "a span's span id is not 8 bytes, or is all zeros".to_string()
            }
            SpanProblem::BadAssistantId(value) => format!(
                "ragpulse.assistant_id {value:?} is not a UUID; remove it to name the assistant by service.name"
            ),
        }
    }
}

/// The trace id of a span, if valid.
pub fn trace_id(span: &Span) -> Result<[u8; 16], SpanProblem> {
    let id: [u8; 16] = span
        .trace_id
        .as_slice()
        .try_into()
        .map_err(|_| SpanProblem::BadTraceId)?;
    if id == [0; 16] {
        return Err(SpanProblem::BadTraceId);
    }
    Ok(id)
}

fn span_id(bytes: &[u8]) -> Option<[u8; 8]> {
    let id: [u8; 8] = bytes.try_into().ok()?;
    (id != [0; 8]).then_some(id)
}

/// The facts of a resource's attributes.
pub fn resource_facts(attributes: &[KeyValue]) -> Result<ResourceFacts, SpanProblem> {
    let mut facts = ResourceFacts::default();
    for kv in attributes {
        let Some(value) = value_of(kv) else { continue };
        match kv.key.as_str() {
            "service.name" => facts.service_name = as_str(value).map(clip),
            "ragpulse.assistant_id" => facts.assistant_id = Some(assistant_id(value)?),
            key => {
                if let Some(rank) = session_rank(key) {
                    keep_ranked(&mut facts.session, value, rank, &mut [0; 1]);
                }
                if let Some(rank) = user_rank(key) {
                    keep_ranked(&mut facts.user, value, rank, &mut [0; 1]);
                }
            }
        }
    }
    Ok(facts)
}

/// The facts of one span, or why it is refused.
pub fn span_facts(span: &Span) -> Result<SpanFacts, SpanProblem> {
    let span_id = span_id(&span.span_id).ok_or(SpanProblem::BadSpanId)?;
    // An empty parent is a root; a malformed one is treated as a root too
    // (the span is still usable).
    let parent = span_id_or_root(&span.parent_span_id);
    let start_ns = span.start_time_unix_nano;
    // Span flags bits 8 and 9: whether the parent is known to be remote, and is.
    let remote_parent = span.flags & 0x300 == 0x300;
    let mut facts = SpanFacts {
        span_id,
        parent,
        remote_parent,
        start_ns,
        end_ns: span.end_time_unix_nano.max(start_ns),
        ..Default::default()
    };
    let mut read = Reader::default();
    for kv in &span.attributes {
        if let Some(value) = value_of(kv) {
            read.attribute(&kv.key, value, &mut facts)?;
        }
    }
    facts.role = read.role(&span.name);
    facts.questions = read.questions(facts.role);
    if facts.role == Role::Generation || read.generation.has_tokens() {
        facts.generation = Some(std::mem::take(&mut read.generation));
    }
    facts.first_token_ns = read.first_token(span);
    let (documents, unresolved) = read.documents(span, facts.role);
    facts.documents = documents;
    facts.unresolved_documents = unresolved;
    if facts.role == Role::Reranking {
        facts.rerank = read.rerank();
    }
    Ok(facts)
}

fn span_id_or_root(bytes: &[u8]) -> Option<[u8; 8]> {
    span_id(bytes)
}

fn value_of(kv: &KeyValue) -> Option<&Value> {
    kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref())
}

fn assistant_id(value: &Value) -> Result<[u8; 16], SpanProblem> {
    let text = as_str(value).unwrap_or_default();
    Uuid::parse_str(text.trim())
        .map(|id| *id.as_bytes())
        .map_err(|_| SpanProblem::BadAssistantId(text.chars().take(80).collect()))
}

/// Session attributes, best first.
fn session_rank(key: &str) -> Option<usize> {
    match key {
        "gen_ai.conversation.id" => Some(0),
        "session.id" => Some(1),
        "traceloop.association.properties.session_id" => Some(2),
        "langfuse.session.id" => Some(3),
        _ => None,
    }
}

/// User attributes, best first.
fn user_rank(key: &str) -> Option<usize> {
    match key {
        "user.id" => Some(0),
        "enduser.id" => Some(1),
        "enduser.pseudo.id" => Some(2),
        "traceloop.association.properties.user_id" => Some(3),
        "langfuse.user.id" => Some(4),
        _ => None,
    }
}

/// Keeps `value` in `slot` when it ranks better than what is there
/// (`best[0]` holds the rank of the kept value plus one, 0 for none).
fn keep_ranked(slot: &mut Option<String>, value: &Value, rank: usize, best: &mut [usize; 1]) {
    if !(best[0] == 0 || rank + 1 < best[0]) {
        return;
    }
    let Some(text) = text_of(value) else { return };
    *slot = Some(clip(&text));
    best[0] = rank + 1;
}

/// A string or an integer id as text; blank is absent.
fn text_of(value: &Value) -> Option<Cow<'_, str>> {
    let text = match value {
        Value::StringValue(s) => Cow::Borrowed(s.trim()),
        Value::IntValue(i) => Cow::Owned(i.to_string()),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// `text` cut to [`MAX_TEXT_BYTES`] at a character boundary.
pub fn clip(text: &str) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_string();
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A redacted value (OpenInference's privacy settings) counts as absent.
fn unredacted(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty() && text != "__REDACTED__").then_some(text)
}

/// A flattened list entry: `prefix.{i}.{field}`.
fn list_entry<'k>(key: &'k str, prefix: &str) -> Option<(usize, &'k str)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('.')?;
    let (index, field) = rest.split_once('.')?;
    let index: usize = index.parse().ok()?;
    (index < MAX_LIST_INDEX).then_some((index, field))
}

/// One flattened document (`...documents.{i}.document.*`).
#[derive(Default)]
struct DocEntry<'s> {
    id: Option<Cow<'s, str>>,
    score: Option<f64>,
    /// The document ids its metadata holds ([`METADATA_IDS`]).
    metadata: Option<MetadataIds<'s>>,
}

/// Retrieved documents as they are resolved.
#[derive(Default)]
struct Resolved {
    candidates: usize,
    ids: Vec<[u8; 16]>,
    unresolved: u32,
}

impl Resolved {
    fn add(&mut self, doc: &DocEntry) {
        self.candidates += 1;
        match resolve_document(doc) {
            Some(id) => self.ids.push(id),
            None => self.unresolved += 1,
        }
    }
}

/// Metadata keys of a ragpulse document id, in the order they are tried.
const METADATA_IDS: [&str; 4] = [
    "ragpulse_document_id",
    "document_id",
    "doc_id",
    "ref_doc_id",
];

/// The string values of [`METADATA_IDS`] in a document's metadata.
type MetadataIds<'s> = [Option<Cow<'s, str>>; 4];

/// The ids of metadata given as JSON text or as a structured value; `None`
/// when the text is not JSON.
fn metadata_ids(value: &Value) -> Option<MetadataIds<'_>> {
    match value {
        Value::StringValue(text) => string_members(text, METADATA_IDS),
        other => Some(ids_in_json(&any_to_json(other, 0))),
    }
}

fn ids_in_json(metadata: &Json) -> MetadataIds<'static> {
    METADATA_IDS.map(|key| {
        metadata
            .get(key)
            .and_then(Json::as_str)
            .map(|id| Cow::Owned(id.to_string()))
    })
}

/// The attributes of one span as the mapping reads them, borrowed from the
/// span until the facts are taken.
#[derive(Default)]
struct Reader<'s> {
    openinference_kind: Option<&'s str>,
    operation: Option<&'s str>,
    request_type: Option<&'s str>,
    traceloop_kind: Option<&'s str>,
    has_model: bool,
    streaming: bool,
    generation: Generation,
    model_rank: usize,
    provider_rank: usize,
    input_rank: usize,
    output_rank: usize,
    cached_rank: usize,
    session_rank: [usize; 1],
    user_rank: [usize; 1],
    time_to_first_chunk_s: Option<f64>,
    server_ttft_s: Option<f64>,
    completion_start: Option<&'s str>,
    ms_to_first_chunk: Option<f64>,
    question: Option<&'s str>,
    input: Option<&'s str>,
    retrieval_query: Option<&'s str>,
    reranker_query: Option<&'s str>,
    template_variables: Option<&'s str>,
    entity_input: Option<&'s str>,
    entity_output: Option<&'s str>,
    /// Read as JSON where the mapping needs it.
    input_messages: Option<&'s Value>,
    documents: BTreeMap<usize, DocEntry<'s>>,
    genai_documents: Option<&'s Value>,
    rerank_in: BTreeMap<usize, DocEntry<'s>>,
    rerank_out: BTreeMap<usize, DocEntry<'s>>,
}

/// Keeps `value` in `slot` if `rank` beats `best` (0 = nothing yet).
fn ranked<T>(slot: &mut Option<T>, best: &mut usize, rank: usize, value: Option<T>) {
    if let Some(value) = value
        && (*best == 0 || rank + 1 < *best)
    {
        *slot = Some(value);
        *best = rank + 1;
    }
}

impl<'s> Reader<'s> {
    fn attribute(
        &mut self,
        key: &str,
        value: &'s Value,
        facts: &mut SpanFacts,
    ) -> Result<(), SpanProblem> {
        let text = || as_str(value);
        match key {
            "openinference.span.kind" => self.openinference_kind = text(),
            "gen_ai.operation.name" => self.operation = text(),
            "llm.request.type" => self.request_type = text(),
            "traceloop.span.kind" => self.traceloop_kind = text(),
            "ragpulse.step" => facts.step = as_str(value).map(|s| s.trim().to_string()),
            "ragpulse.interaction" => facts.interaction = as_bool(value),
            "ragpulse.assistant_id" => facts.assistant_id = Some(assistant_id(value)?),
            "ragpulse.cache_hit" => facts.cache_hit = as_bool(value),
            "ragpulse.topic" => facts.topic = as_str(value).and_then(unredacted).map(clip),
            "ragpulse.question" => self.question = as_str(value).and_then(unredacted),
            "gen_ai.request.stream" | "gen_ai.is_streaming" | "llm.is_streaming" => {
                self.streaming |= as_bool(value) == Some(true);
            }
            "gen_ai.response.time_to_first_chunk" => self.time_to_first_chunk_s = as_f64(value),
            "gen_ai.server.time_to_first_token" => self.server_ttft_s = as_f64(value),
            "langfuse.observation.completion_start_time" => self.completion_start = text(),
            "ai.response.msToFirstChunk" | "ai.stream.msToFirstChunk" => {
                self.ms_to_first_chunk = as_f64(value);
            }
            "input.value" => {
                if let Some(s) = as_str(value) {
                    self.input = Some(s);
                }
            }
            "gen_ai.retrieval.query.text" => self.retrieval_query = text(),
            "reranker.query" => self.reranker_query = text(),
            "llm.prompt_template.variables" => self.template_variables = text(),
            "traceloop.entity.input" => self.entity_input = text(),
            "traceloop.entity.output" => self.entity_output = text(),
            "gen_ai.input.messages" => self.input_messages = Some(value),
            "gen_ai.retrieval.documents" => self.genai_documents = Some(value),
            _ => self.other_attribute(key, value, facts),
        }
        Ok(())
    }

    fn other_attribute(&mut self, key: &str, value: &'s Value, facts: &mut SpanFacts) {
        if let Some(rank) = session_rank(key) {
            keep_ranked(&mut facts.session, value, rank, &mut self.session_rank);
            return;
        }
        if let Some(rank) = user_rank(key) {
            keep_ranked(&mut facts.user, value, rank, &mut self.user_rank);
            return;
        }
        if let Some(rank) = model_rank(key) {
            self.has_model = true;
            let model = as_str(value).and_then(unredacted).map(clip);
            ranked(
                &mut self.generation.model,
                &mut self.model_rank,
                rank,
                model,
            );
            return;
        }
        let g = &mut self.generation;
        match key {
            "gen_ai.provider.name" | "gen_ai.system" | "llm.provider" | "llm.system" => {
                let rank = [
                    "gen_ai.provider.name",
                    "gen_ai.system",
                    "llm.provider",
                    "llm.system",
                ]
                .iter()
                .position(|k| *k == key)
                .unwrap_or(0);
                let provider = as_str(value).and_then(unredacted).map(clip);
                ranked(&mut g.provider, &mut self.provider_rank, rank, provider);
            }
            "gen_ai.usage.input_tokens" => {
                ranked(&mut g.input_tokens, &mut self.input_rank, 0, as_i64(value))
            }
            "gen_ai.usage.prompt_tokens" => {
                ranked(&mut g.input_tokens, &mut self.input_rank, 1, as_i64(value))
            }
            "llm.token_count.prompt" => {
                ranked(&mut g.input_tokens, &mut self.input_rank, 2, as_i64(value))
            }
            "gen_ai.usage.output_tokens" => ranked(
                &mut g.output_tokens,
                &mut self.output_rank,
                0,
                as_i64(value),
            ),
            "gen_ai.usage.completion_tokens" => ranked(
                &mut g.output_tokens,
                &mut self.output_rank,
                1,
                as_i64(value),
            ),
            "llm.token_count.completion" => ranked(
                &mut g.output_tokens,
                &mut self.output_rank,
                2,
                as_i64(value),
            ),
            "gen_ai.usage.cache_read.input_tokens" => ranked(
                &mut g.cached_input_tokens,
                &mut self.cached_rank,
                0,
                as_i64(value),
            ),
            "gen_ai.usage.cache_read_input_tokens" => ranked(
                &mut g.cached_input_tokens,
                &mut self.cached_rank,
                1,
                as_i64(value),
            ),
            "llm.token_count.prompt_details.cache_read" => ranked(
                &mut g.cached_input_tokens,
                &mut self.cached_rank,
                2,
                as_i64(value),
            ),
            _ => {
                if let Some((i, field)) = list_entry(key, "retrieval.documents") {
                    doc_field(self.documents.entry(i).or_default(), field, value);
                } else if let Some((i, field)) = list_entry(key, "reranker.input_documents") {
                    doc_field(self.rerank_in.entry(i).or_default(), field, value);
                } else if let Some((i, field)) = list_entry(key, "reranker.output_documents") {
                    doc_field(self.rerank_out.entry(i).or_default(), field, value);
                }
            }
        }
    }

    fn role(&self, name: &str) -> Role {
        if let Some(kind) = self.openinference_kind {
            let role = match kind {
                "LLM" => Role::Generation,
                "EMBEDDING" => Role::Embedding,
                "RETRIEVER" => Role::Retrieval,
                "RERANKER" => Role::Reranking,
                "TOOL" => Role::Tool,
                "GUARDRAIL" => Role::Guardrail,
                "CHAIN" | "AGENT" => Role::Pipeline,
                _ => Role::Other,
            };
            return role;
        }
        if let Some(operation) = self.operation {
            match operation {
                "chat" | "text_completion" | "generate_content" => return Role::Generation,
                "embeddings" => return Role::Embedding,
                "retrieval" | "vector_db_retrieve" => return Role::Retrieval,
                "rerank" => return Role::Reranking,
                "execute_tool" => return Role::Tool,
                "invoke_workflow" | "invoke_agent" => return Role::Pipeline,
                _ => {}
            }
        }
        if matches!(self.request_type, Some("chat" | "completion")) {
            return Role::Generation;
        }
        match self.traceloop_kind {
            Some("workflow" | "agent") => return Role::Pipeline,
            Some("tool") => return Role::Tool,
            // OpenLLMetry names LlamaIndex spans `{Class}.task`: retrievers
            // carry nothing else that says what they are.
            Some("task") if class_of(name).ends_with("Retriever") => return Role::Retrieval,
            Some(_) => return Role::Other,
            None => {}
        }
        if self.has_model {
            return Role::Generation;
        }
        Role::Other
    }

    fn questions(&mut self, role: Role) -> Vec<(Source, String)> {
        let mut out = Vec::new();
        let mut push = |source, text: Option<&str>| {
            if let Some(text) = text.and_then(unredacted) {
                out.push((source, clip(text)));
            }
        };
        // Clipped before it is trimmed again, as every candidate is.
        push(Source::Ragpulse, self.question.map(clip).as_deref());
        if matches!(self.operation, Some("invoke_agent" | "invoke_workflow")) {
            let messages = self.input_messages.and_then(json_of);
            push(
                Source::AgentMessages,
                messages.as_ref().and_then(last_user_text).as_deref(),
            );
        }
        // A model's input is its prompt (context included), never the question.
        if !matches!(role, Role::Generation | Role::Embedding)
            && let Some(text) = self.input
        {
            if text.trim_start().starts_with('{') {
                let question = serde_json::from_str::<Json>(text)
                    .ok()
                    .and_then(|v| question_in(&v, 0));
                push(Source::Input, question.as_deref());
            } else {
                push(Source::Input, Some(text));
            }
        }
        push(Source::RetrievalQuery, self.retrieval_query);
        push(Source::RerankerQuery, self.reranker_query);
        let template = self
            .template_variables
            .and_then(|t| string_members(t, ["query_str"]))
            .and_then(|[query]| query);
        push(Source::TemplateQuery, template.as_deref());
        if let Some(input) = self.entity_input
            && let Ok(value) = serde_json::from_str::<Json>(input)
        {
            match question_in(&value, 0) {
                Some(q) => push(Source::EntityInput, Some(&q)),
                None => push(Source::EntityInputSingle, single_string(&value).as_deref()),
            }
        }
        if matches!(self.operation, Some("rerank")) {
            let messages = self.input_messages.and_then(json_of);
            push(
                Source::RerankMessages,
                messages.as_ref().and_then(last_user_text).as_deref(),
            );
        }
        out
    }

    fn first_token(&self, span: &Span) -> Option<u64> {
        let start = span.start_time_unix_nano;
        // Times come from the client: past the end of u64 is no instant.
        let after = |seconds: f64| {
            let ns = (seconds * 1e9).round();
            if !(ns.is_finite() && ns >= 0.0 && ns < u64::MAX as f64) {
                return None;
            }
            start.checked_add(ns as u64)
        };
        if let Some(t) = self.time_to_first_chunk_s.and_then(after) {
            return Some(t);
        }
        let earliest = |names: &[&str]| {
            span.events
                .iter()
                .filter(|e| names.contains(&e.name.as_str()))
                .map(|e| e.time_unix_nano)
                .min()
        };
        if let Some(t) = earliest(&["First Token Stream Event"]) {
            return Some(t);
        }
        if let Some(t) = earliest(&[
            "gen_ai.content.completion.chunk",
            "llm.content.completion.chunk",
        ]) {
            return Some(t);
        }
        if self.streaming
            && let Some(t) = self.server_ttft_s.and_then(after)
        {
            return Some(t);
        }
        if let Some(t) = self
            .completion_start
            .and_then(|s| crate::time::Timestamp::parse_rfc3339(s.trim_matches('"')))
            .and_then(|ts| u64::try_from(ts.0).ok())
            .and_then(|micros| micros.checked_mul(1_000))
        {
            return Some(t);
        }
        self.ms_to_first_chunk.and_then(|ms| after(ms / 1e3))
    }

    /// Retrieved documents, resolved, in rank order; and how many could not be.
    fn documents(&self, span: &Span, role: Role) -> (Vec<[u8; 16]>, u32) {
        let mut found = Resolved::default();
        self.documents.values().for_each(|doc| found.add(doc));
        let genai = self.genai_documents.and_then(json_of);
        if let Some(Json::Array(items)) = &genai {
            for item in items {
                found.add(&DocEntry {
                    id: item.get("id").and_then(id_text).map(Cow::Owned),
                    ..Default::default()
                });
            }
        }
        for event in span.events.iter().filter(|e| e.name == "db.query.result") {
            let mut doc = DocEntry::default();
            for kv in &event.attributes {
                let Some(value) = value_of(kv) else { continue };
                match kv.key.as_str() {
                    "db.query.result.id" => doc.id = text_of(value),
                    "db.query.result.metadata" => doc.metadata = metadata_ids(value),
                    _ => {}
                }
            }
            found.add(&doc);
        }
        if found.candidates == 0
            && role == Role::Retrieval
            && let Some(output) = self.entity_output
        {
            entity_output_nodes(output)
                .iter()
                .for_each(|doc| found.add(doc));
        }
        (found.ids, found.unresolved)
    }

    fn rerank(&self) -> Option<Rerank> {
        fn rank_of<'d>(docs: &'d BTreeMap<usize, DocEntry<'_>>) -> Vec<(&'d str, Option<f64>)> {
            docs.values()
                .filter_map(|d| d.id.as_deref().map(|id| (id, d.score)))
                .collect()
        }
        let input = rank_of(&self.rerank_in);
        let output = rank_of(&self.rerank_out);
        let kept: Vec<(usize, usize)> = output
            .iter()
            .enumerate()
            .filter_map(|(out_rank, (id, _))| {
                input
                    .iter()
                    .position(|(other, _)| other == id)
                    .map(|in_rank| (in_rank, out_rank))
            })
            .collect();
        if kept.is_empty() {
            return None;
        }
        let mean = |values: Vec<Option<f64>>| -> Option<f64> {
            let values: Option<Vec<f64>> = values.into_iter().collect();
            let values = values?;
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        let n = kept.len() as f64;
        Some(Rerank {
            score_before: mean(kept.iter().map(|(i, _)| input[*i].1).collect()),
            score_after: mean(kept.iter().map(|(_, o)| output[*o].1).collect()),
            position_change: Some(
                kept.iter()
                    .map(|(i, o)| (*i as f64 - *o as f64).abs())
                    .sum::<f64>()
                    / n,
            ),
        })
    }
}

/// Model attributes, best first: the response model (what was priced).
fn model_rank(key: &str) -> Option<usize> {
    match key {
        "gen_ai.response.model" => Some(0),
        "gen_ai.request.model" => Some(1),
        "llm.response.model_name" => Some(2),
        "llm.model_name" => Some(3),
        "llm.request.model_name" => Some(4),
        _ => None,
    }
}

/// `VectorIndexRetriever` of `VectorIndexRetriever.task`.
fn class_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

fn doc_field<'s>(doc: &mut DocEntry<'s>, field: &str, value: &'s Value) {
    match field {
        "document.id" => doc.id = text_of(value),
        "document.score" => doc.score = as_f64(value),
        "document.metadata" => doc.metadata = metadata_ids(value),
        _ => {}
    }
}

fn id_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The ragpulse id of a retrieved document: a UUID in its metadata
/// (`ragpulse_document_id`, `document_id`, `doc_id`, `ref_doc_id`), else its
/// own id when that is a UUID.
fn resolve_document(doc: &DocEntry) -> Option<[u8; 16]> {
    let parse = |text: &str| Uuid::parse_str(text.trim()).ok().map(|u| *u.as_bytes());
    if let Some(ids) = &doc.metadata
        && let Some(id) = ids.iter().flatten().find_map(|id| parse(id))
    {
        return Some(id);
    }
    doc.id.as_deref().and_then(parse)
}

/// The nodes of OpenLLMetry's `traceloop.entity.output` of a retriever: a
/// JSON array of NodeWithScore objects, each possibly a JSON string itself.
fn entity_output_nodes(output: &str) -> Vec<DocEntry<'static>> {
    let Ok(Json::Array(items)) = serde_json::from_str::<Json>(output) else {
        return Vec::new();
    };
    items
        .iter()
        .take(MAX_LIST_INDEX)
        .filter_map(|item| {
            let owned;
            let item = match item {
                Json::String(s) => {
                    owned = serde_json::from_str::<Json>(s).ok()?;
                    &owned
                }
                other => other,
            };
            let node = item.get("node").unwrap_or(item);
            Some(DocEntry {
                id: node
                    .get("id_")
                    .or_else(|| node.get("id"))
                    .and_then(id_text)
                    .map(Cow::Owned),
                score: item.get("score").and_then(Json::as_f64),
                metadata: node.get("metadata").map(ids_in_json),
            })
        })
        .collect()
}

/// The question in a JSON input: the value of a known key (recursively, as
/// in LlamaIndex's `{"query_bundle": {"query_str": ...}}` or the
/// `{"args": [...], "kwargs": {...}}` shape of traceloop's SDK).
pub fn question_in(value: &Json, depth: usize) -> Option<String> {
    if depth > 4 {
        return None;
    }
    match value {
        Json::String(s) => unredacted(s).map(str::to_string),
        Json::Object(map) => {
            for key in [
                "query_str",
                "str_or_query_bundle",
                "query_bundle",
                "question",
                "query",
                "input",
                "kwargs",
            ] {
                if let Some(q) = map.get(key).and_then(|v| question_in(v, depth + 1)) {
                    return Some(q);
                }
            }
            match map.get("args") {
                Some(Json::Array(args)) => args.first().and_then(|v| question_in(v, depth + 1)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The only string value of a JSON object.
fn single_string(value: &Json) -> Option<String> {
    let Json::Object(map) = value else {
        return None;
    };
    let mut strings = map.values().filter_map(Json::as_str);
    let first = strings.next()?;
    strings.next().is_none().then(|| first.to_string())
}

/// The last user text of GenAI messages (`[{"role": "user", "parts":
/// [{"type": "text", "content": ...}]}]`, or the older `"content"` string).
fn last_user_text(messages: &Json) -> Option<String> {
    let Json::Array(messages) = messages else {
        return None;
    };
    messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Json::as_str) == Some("user"))
        .find_map(|m| {
            if let Some(content) = m.get("content").and_then(Json::as_str) {
                return Some(content.to_string());
            }
            let parts = m.get("parts")?.as_array()?;
            let text: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Json::as_str) == Some("text"))
                .filter_map(|p| p.get("content").and_then(Json::as_str))
                .collect();
            (!text.is_empty()).then(|| text.join("\n"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// A span starting `start` ns after the epoch whose first chunk came
    /// `ttfc` seconds later (`gen_ai.response.time_to_first_chunk`).
    fn streamed(start: u64, ttfc: f64) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: start,
            end_time_unix_nano: start,
            attributes: vec![
                kv("gen_ai.operation.name", Value::StringValue("chat".into())),
                kv(
                    "gen_ai.response.time_to_first_chunk",
                    Value::DoubleValue(ttfc),
                ),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_first_chunk_past_the_end_of_time_is_no_first_token() {
        // Found by the otlp_decode fuzz target: start + delay overflowed.
        let facts = span_facts(&streamed(u64::MAX - 10, 1.0)).unwrap();
        assert_eq!(facts.first_token_ns, None);
        let facts = span_facts(&streamed(0, 1e300)).unwrap();
        assert_eq!(facts.first_token_ns, None);
        let facts = span_facts(&streamed(1_000, 0.25)).unwrap();
        assert_eq!(facts.first_token_ns, Some(250_001_000));
    }
}
