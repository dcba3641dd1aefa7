//! A complete trace's span facts → ragpulse interaction events. Finds the
//! spans that are interactions (`ragpulse.interaction`, else the top-most
//! pipeline span whose subtree holds an LLM call, else a root whose subtree
//! did LLM or retrieval work), then reads each one's fields from its
//! subtree: question, session, user, assistant, model, tokens, TTFT from the
//! interaction's start, total duration, steps by self-time, retrieved
//! documents and rerank scores. A trace that nothing begins (its top spans'
//! parents were never exported) gets a virtual root over its subtrees, so
//! they are one interaction. docs/otlp.md states every rule.

/// Span ids come from clients: a hasher seeded per process, and foldhash
/// is several times faster than SipHash on them.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use serde_json::{Value as Json, json};
use uuid::Uuid;

use std::borrow::Cow;

use super::facts::{Rerank, ResourceFacts, Role, Source, SpanFacts, TraceRow};
use crate::ingest::interaction::{InteractionParts, RerankParts, Stamp, StepParts};
use crate::time::Timestamp;

/// The namespace of the UUIDv5 ids of assistants named by `service.name`:
/// UUIDv5(URL namespace, "urn:ragpulse:assistant"). In Python:
/// `uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, "urn:ragpulse:assistant"), name)`.
pub fn assistant_namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:ragpulse:assistant")
}

/// The id of the assistant named `name` by a resource's `service.name`.
pub fn assistant_for_service(name: &str) -> Uuid {
    Uuid::new_v5(&assistant_namespace(), name.as_bytes())
}

/// OpenTelemetry's `service.name` when the SDK was given none.
const UNKNOWN_SERVICE: &str = "unknown_service";
const MAX_SESSION_CHARS: usize = 200;
const MAX_USER_CHARS: usize = 256;
const MAX_DOCUMENTS: usize = 1024;
const MAX_STEPS: usize = 256;

/// One interaction of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub interaction: Interaction,
    /// The interaction as the ingest event it stands for (what
    /// docs/otlp.md documents; the finaliser builds the event directly).
    #[cfg(test)]
    pub event: Json,
    pub assistant: Uuid,
    /// The `service.name` that named the assistant (to register it on first
    /// sight); `None` when `ragpulse.assistant_id` chose it.
    pub service_name: Option<String>,
}

/// What a trace yields.
#[derive(Debug, Default)]
pub struct Mapped {
    pub interactions: Vec<Draft>,
    /// Every distinct span id.
    pub span_ids: Vec<[u8; 8]>,
    /// Spans received more than once (exporter retries).
    pub duplicate_spans: usize,
    /// Retrieved documents whose id did not resolve to a UUID.
    pub unresolved_documents: u64,
}

/// The fields of an interaction event, as mapped from a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub id: Uuid,
    /// The interaction span's start, microseconds.
    pub start_us: i64,
    pub assistant_id: Uuid,
    pub session_id: String,
    pub user_id: Option<String>,
    pub question: Option<String>,
    pub topic: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub ttft_s: Option<f64>,
    pub total_duration_s: f64,
    pub cache_hit: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub steps: Vec<Step>,
    pub retrieved_document_ids: Vec<Uuid>,
    pub rerank: Option<Rerank>,
}

/// One step of an interaction: its name, self-time and the tokens of its LLM calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub duration_s: f64,
    /// (input, output), when a call of the step reported tokens.
    pub tokens: Option<(i64, i64)>,
}

impl Interaction {
    /// The ingest event this interaction stands for.
    pub fn to_json(&self) -> Json {
        let steps: Vec<Json> = self.steps.iter().map(Step::to_json).collect();
        let mut event = json!({
            "type": "interaction",
            "id": self.id.to_string(),
            "timestamp": Timestamp(self.start_us).to_rfc3339(),
            "assistant_id": self.assistant_id.to_string(),
            "session_id": self.session_id,
            "total_duration_s": self.total_duration_s,
            "cache_hit": self.cache_hit,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "steps": steps,
        });
        let Some(fields) = event.as_object_mut() else {
            return event;
        };
        let mut put = |key: &str, value: Option<Json>| {
            if let Some(value) = value {
                fields.insert(key.to_string(), value);
            }
        };
        put("user_id", self.user_id.clone().map(Json::String));
        put("question", self.question.clone().map(Json::String));
        put("topic", self.topic.clone().map(Json::String));
        put("model", self.model.clone().map(Json::String));
        put("provider", self.provider.clone().map(Json::String));
        put("ttft_s", self.ttft_s.map(Json::from));
        let documents: Vec<String> = self
            .retrieved_document_ids
            .iter()
            .map(Uuid::to_string)
            .collect();
        put("retrieved_document_ids", Some(json!(documents)));
        put(
            "rerank",
            self.rerank.map(|r| {
                json!({
                    "score_before": r.score_before,
                    "score_after": r.score_after,
                    "position_change": r.position_change,
                })
            }),
        );
        event
    }

    /// The fields as ingest's rules take them: what [`Interaction::to_json`]
    /// reads back as, without the JSON (a number JSON cannot hold, such as an
    /// infinite mean score, is null there, so absent here).
    pub fn into_parts(self) -> InteractionParts<'static> {
        let finite = |v: Option<f64>| Ok(v.filter(|v| v.is_finite()));
        InteractionParts {
            id: Ok(self.id),
            timestamp: Ok(Stamp {
                micros: self.start_us,
                text: None,
            }),
            assistant_id: Ok(self.assistant_id),
            session_id: Ok(Cow::Owned(self.session_id)),
            ttft_s: finite(self.ttft_s),
            total_duration_s: finite(Some(self.total_duration_s)),
            input_tokens: Ok(Some(self.input_tokens)),
            cached_input_tokens: Ok(Some(self.cached_input_tokens)),
            question: Ok(self.question.map(Cow::Owned)),
            topic: Ok(self.topic.map(Cow::Owned)),
            question_embedding: Ok(None),
            user_id: Ok(self.user_id.map(Cow::Owned)),
            model: Ok(self.model.map(Cow::Owned)),
            provider: Ok(self.provider.map(Cow::Owned)),
            cache_hit: Ok(Some(self.cache_hit)),
            output_tokens: Ok(Some(self.output_tokens)),
            cost_usd: Ok(None),
            steps: Ok(Some(
                self.steps
                    .into_iter()
                    .map(|step| {
                        Ok(StepParts {
                            name: Ok(Cow::Owned(step.name)),
                            duration_s: Ok(step.duration_s),
                            input_tokens: Ok(step.tokens.map(|t| t.0)),
                            output_tokens: Ok(step.tokens.map(|t| t.1)),
                        })
                    })
                    .collect(),
            )),
            retrieved_document_ids: Ok(Some(
                self.retrieved_document_ids.into_iter().map(Ok).collect(),
            )),
            rerank: Ok(self.rerank.map(|r| RerankParts {
                score_before: finite(r.score_before),
                score_after: finite(r.score_after),
                score_improvement: Ok(None),
                position_change: finite(r.position_change),
            })),
        }
    }
}

impl Step {
    fn to_json(&self) -> Json {
        let mut step = json!({"name": self.name, "duration_s": self.duration_s});
        if let Some((input, output)) = self.tokens {
            step["input_tokens"] = json!(input);
            step["output_tokens"] = json!(output);
        }
        step
    }
}

struct Node<'a> {
    span: &'a SpanFacts,
    resource: &'a ResourceFacts,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// Maps the rows of one trace.
pub fn map_trace(trace_id: &[u8; 16], rows: &[TraceRow]) -> Mapped {
    let mut mapped = Mapped::default();
    let mut index: HashMap<[u8; 8], usize> = HashMap::default();
    let mut nodes: Vec<Node<'_>> = Vec::new();
    for row in rows {
        for span in &row.spans {
            if index.contains_key(&span.span_id) {
                mapped.duplicate_spans += 1;
                continue;
            }
            index.insert(span.span_id, nodes.len());
            mapped.span_ids.push(span.span_id);
            nodes.push(Node {
                span,
                resource: &row.resource,
                parent: None,
                children: Vec::new(),
            });
        }
    }
    for i in 0..nodes.len() {
        let parent = nodes[i].span.parent.and_then(|p| index.get(&p).copied());
        // A span that names itself as its parent is a root.
        let parent = parent.filter(|&p| p != i);
        nodes[i].parent = parent;
        if let Some(p) = parent {
            nodes[p].children.push(i);
        }
    }
    let virtual_root = rootless_top(&nodes).map(|tops| (virtual_span(&nodes, &tops), tops));
    if let Some((span, tops)) = &virtual_root {
        adopt(&mut nodes, span, tops);
    }
    for i in 0..nodes.len() {
        let mut children = std::mem::take(&mut nodes[i].children);
        children.sort_by_key(|&c| (nodes[c].span.start_ns, c));
        nodes[i].children = children;
    }
    let mut tree = Tree::new(nodes);
    tree.virtual_root = virtual_root.is_some().then(|| tree.nodes.len() - 1);
    let roots = tree.interaction_roots();
    let single = roots.len() == 1;
    for root in roots {
        let id = if single {
            Uuid::from_bytes(*trace_id)
        } else {
            let mut name = trace_id.to_vec();
            name.extend_from_slice(&tree.nodes[root].span.span_id);
            Uuid::new_v5(&assistant_namespace(), &name)
        };
        let (draft, unresolved) = tree.interaction(root, id, trace_id);
        mapped.unresolved_documents += unresolved;
        mapped.interactions.push(draft);
    }
    mapped
}

/// The top spans of a trace that nothing begins, when there are several:
/// no span without parent, none with a remote parent, none naming itself as
/// its parent; every top span's parent is missing (a producer that never
/// ended it, so never exported it). Subtrees excluded by
/// `ragpulse.interaction=false` stay apart.
fn rootless_top(nodes: &[Node<'_>]) -> Option<Vec<usize>> {
    let begins = |s: &SpanFacts| s.parent.is_none_or(|p| p == s.span_id) || s.remote_parent;
    if nodes.iter().any(|n| begins(n.span)) {
        return None;
    }
    let tops: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].parent.is_none() && nodes[i].span.interaction != Some(false))
        .collect();
    (tops.len() > 1).then_some(tops)
}

/// The span that stands for a rootless trace's missing beginning: a
/// container (no role, no attribute) from the earliest start to the latest
/// end of `tops`, never stored (its id is all zeros, which no span has).
fn virtual_span(nodes: &[Node<'_>], tops: &[usize]) -> SpanFacts {
    let start_ns = tops.iter().map(|&i| nodes[i].span.start_ns).min();
    let end_ns = tops.iter().map(|&i| nodes[i].span.end_ns).max();
    SpanFacts {
        start_ns: start_ns.unwrap_or(0),
        end_ns: end_ns.unwrap_or(0),
        ..Default::default()
    }
}

/// Adds the virtual span as the parent of `tops`, on the resource of the
/// earliest of them.
fn adopt<'a>(nodes: &mut Vec<Node<'a>>, span: &'a SpanFacts, tops: &[usize]) {
    let first = tops
        .iter()
        .copied()
        .min_by_key(|&i| (nodes[i].span.start_ns, i));
    let Some(first) = first else { return };
    let index = nodes.len();
    let resource = nodes[first].resource;
    for &i in tops {
        nodes[i].parent = Some(index);
    }
    nodes.push(Node {
        span,
        resource,
        parent: None,
        children: tops.to_vec(),
    });
}

/// The spans of a trace as a forest, with what the rules ask of subtrees.
struct Tree<'a> {
    nodes: Vec<Node<'a>>,
    /// Preorder over every root (orphans included: a span whose parent never
    /// arrived is a root).
    order: Vec<usize>,
    has_generation: Vec<bool>,
    has_work: Vec<bool>,
    excluded: Vec<bool>,
    pipeline_above: Vec<bool>,
    marked_above: Vec<bool>,
    /// The node standing for a rootless trace's missing beginning.
    virtual_root: Option<usize>,
}

impl<'a> Tree<'a> {
    fn new(nodes: Vec<Node<'a>>) -> Self {
        let n = nodes.len();
        let mut roots: Vec<usize> = (0..n).filter(|&i| nodes[i].parent.is_none()).collect();
        roots.sort_by_key(|&i| (nodes[i].span.start_ns, i));
        let mut order = Vec::with_capacity(n);
        let mut excluded = vec![false; n];
        let mut pipeline_above = vec![false; n];
        let mut marked_above = vec![false; n];
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        while let Some(i) = stack.pop() {
            order.push(i);
            let span = nodes[i].span;
            let exclude = excluded[i] || span.interaction == Some(false);
            excluded[i] = exclude;
            for &c in nodes[i].children.iter().rev() {
                excluded[c] = exclude;
                pipeline_above[c] = pipeline_above[i] || span.role == Role::Pipeline;
                marked_above[c] = marked_above[i] || span.interaction == Some(true);
                stack.push(c);
            }
        }
        let mut has_generation = vec![false; n];
        let mut has_work = vec![false; n];
        for &i in order.iter().rev() {
            let span = nodes[i].span;
            has_generation[i] |= span.role == Role::Generation;
            has_work[i] |= matches!(span.role, Role::Generation | Role::Retrieval)
                || span.cache_hit == Some(true);
            if let Some(p) = nodes[i].parent {
                has_generation[p] |= has_generation[i];
                has_work[p] |= has_work[i];
            }
        }
        Self {
            nodes,
            order,
            has_generation,
            has_work,
            excluded,
            pipeline_above,
            marked_above,
            virtual_root: None,
        }
    }

    fn interaction_roots(&self) -> Vec<usize> {
        let eligible = |i: &&usize| !self.excluded[**i];
        let marked: Vec<usize> = self
            .order
            .iter()
            .filter(eligible)
            .filter(|&&i| self.nodes[i].span.interaction == Some(true) && !self.marked_above[i])
            .copied()
            .collect();
        if !marked.is_empty() {
            return marked;
        }
        let pipelines: Vec<usize> = self
            .order
            .iter()
            .filter(eligible)
            .filter(|&&i| {
                self.nodes[i].span.role == Role::Pipeline
                    && self.has_generation[i]
                    && !self.pipeline_above[i]
            })
            .copied()
            .collect();
        if !pipelines.is_empty() {
            return pipelines;
        }
        self.order
            .iter()
            .filter(eligible)
            .filter(|&&i| self.nodes[i].parent.is_none() && self.has_work[i])
            .copied()
            .collect()
    }

    /// The subtree of `root` in preorder.
    fn subtree(&self, root: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            out.push(i);
            stack.extend(self.nodes[i].children.iter().rev());
        }
        out
    }

    fn interaction(&self, root: usize, id: Uuid, trace_id: &[u8; 16]) -> (Draft, u64) {
        let subtree = self.subtree(root);
        let spans: Vec<&SpanFacts> = subtree.iter().map(|&i| self.nodes[i].span).collect();
        let resources: Vec<&ResourceFacts> =
            subtree.iter().map(|&i| self.nodes[i].resource).collect();
        let start = spans[0].start_ns;
        let end = spans
            .iter()
            .map(|s| s.end_ns.max(s.first_token_ns.unwrap_or(0)))
            .max()
            .unwrap_or(start);
        let timing = self.steps(&subtree, end);
        let total_ns = end.saturating_sub(start);
        let ttft = timing
            .first_token_ns
            .filter(|&t| t >= start && t - start <= total_ns)
            .map(|t| seconds(t - start));

        let (assistant, service_name) = assistant(&spans, &resources);
        // What only the interaction span may give is read, for a rootless
        // trace, on the top span of each of its subtrees, earliest first;
        // not a lone string of a traceloop input there (a text splitter's
        // text is no question).
        let (tops, single) = if self.virtual_root == Some(root) {
            let children = &self.nodes[root].children;
            let tops = children.iter().map(|&c| self.nodes[c].span).collect();
            (tops, None)
        } else {
            (vec![spans[0]], Some(spans[0]))
        };
        let mut documents: Vec<Uuid> = Vec::new();
        let mut unresolved = 0u64;
        for span in &spans {
            unresolved += u64::from(span.unresolved_documents);
            for doc in &span.documents {
                let doc = Uuid::from_bytes(*doc);
                if documents.len() < MAX_DOCUMENTS && !documents.contains(&doc) {
                    documents.push(doc);
                }
            }
        }
        let interaction = Interaction {
            id,
            start_us: i64::try_from(start / 1_000).unwrap_or(i64::MAX),
            assistant_id: assistant,
            session_id: first_text(&spans, &resources, |s| &s.session, |r| &r.session)
                .map(|s| truncate_chars(&s, MAX_SESSION_CHARS))
                .unwrap_or_else(|| format!("otel-{}", hex::encode(trace_id))),
            user_id: first_text(&spans, &resources, |s| &s.user, |r| &r.user)
                .filter(|u| u.chars().count() <= MAX_USER_CHARS),
            question: question(&spans, &tops, single),
            topic: spans.iter().find_map(|s| s.topic.clone()),
            model: timing.model,
            provider: timing.provider,
            ttft_s: ttft,
            total_duration_s: seconds(total_ns),
            cache_hit: spans.iter().any(|s| s.cache_hit == Some(true)),
            input_tokens: timing.tokens.0,
            output_tokens: timing.tokens.1,
            cached_input_tokens: timing.tokens.2,
            steps: timing.steps,
            retrieved_document_ids: documents,
            rerank: spans.iter().find_map(|s| s.rerank),
        };
        let draft = Draft {
            #[cfg(test)]
            event: interaction.to_json(),
            interaction,
            assistant,
            service_name,
        };
        (draft, unresolved)
    }

    /// Steps by self-time, the LLM calls' tokens, the answer's model and
    /// first token. `end` is the interaction's end.
    fn steps(&self, subtree: &[usize], end: u64) -> Timing {
        let mut roots: Vec<StepRoot> = Vec::new();
        // By node: the step it begins, and the step it is part of.
        let n = self.nodes.len();
        let mut root_of: Vec<Option<usize>> = vec![None; n];
        let mut context: Vec<Option<usize>> = vec![None; n];
        // Preorder: a node's context (the step root it belongs to) is known
        // before its children's.
        for &i in subtree {
            let ctx = context[i];
            let category = category(self.nodes[i].span);
            let own = match (category, ctx.map(|r| &roots[r].category)) {
                (None, _) => ctx,
                (Some(c), Some(outer)) if belongs(&c, outer) => ctx,
                (Some(c), _) => {
                    root_of[i] = Some(roots.len());
                    roots.push(StepRoot {
                        node: i,
                        category: c,
                        parent: ctx,
                        calls: Vec::new(),
                    });
                    Some(roots.len() - 1)
                }
            };
            for &c in &self.nodes[i].children {
                context[c] = own;
            }
        }
        // LLM calls: generation spans with no generation span above them in
        // the interaction; each belongs to its step.
        let mut calls: Vec<Call> = Vec::new();
        let mut in_call: Vec<bool> = vec![false; n];
        for &i in subtree {
            // Nodes outside the subtree (the interaction span's parent) stay false.
            let above = self.nodes[i].parent.is_some_and(|p| in_call[p]);
            let is_generation = self.nodes[i].span.role == Role::Generation;
            in_call[i] = above || is_generation;
            if is_generation && !above {
                let step = root_of[i].or(context[i]);
                calls.push(self.call(i, step));
            }
        }
        for (index, call) in calls.iter().enumerate() {
            if let Some(step) = call.step {
                roots[step].calls.push(index);
            }
        }
        // The answer: the last-ending call that is a step of its own.
        let answer = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.step.is_some_and(|s| roots[s].node == c.node))
            .max_by_key(|(_, c)| (c.end_ns, c.start_ns))
            .map(|(i, _)| i);
        let mut durations: Vec<u64> = roots
            .iter()
            .map(|r| {
                let span = self.nodes[r.node].span;
                span.end_ns - span.start_ns
            })
            .collect();
        if let Some(a) = answer {
            let call = &calls[a];
            if let Some(step) = call.step {
                // A streamed answer lasts until the interaction ends:
                // OpenInference ends a streaming LLM span when the stream is
                // handed over, before its first token.
                let end_ns = if call.first_token_ns.is_some() {
                    call.end_ns.max(end)
                } else {
                    call.end_ns
                };
                durations[step] = end_ns.saturating_sub(call.start_ns);
            }
        }
        let mut own = durations.clone();
        for (index, root) in roots.iter().enumerate() {
            if let Some(parent) = root.parent {
                own[parent] = own[parent].saturating_sub(durations[index]);
            }
        }
        let mut steps: Vec<Step> = Vec::new();
        for (index, root) in roots.iter().enumerate().take(MAX_STEPS) {
            let name = match &root.category {
                Category::Named(name) => name.clone(),
                Category::Generation if Some(index) == answer.and_then(|a| calls[a].step) => {
                    "synthesis".to_string()
                }
                Category::Generation => "llm".to_string(),
                other => other.name().to_string(),
            };
            let with_tokens: Vec<&Call> = root
                .calls
                .iter()
                .map(|&c| &calls[c])
                .filter(|c| c.tokens.is_some())
                .collect();
            let tokens = (!with_tokens.is_empty()).then(|| {
                let (i, o, _) = sum_tokens(with_tokens.iter().map(|c| c.tokens));
                (i, o)
            });
            steps.push(Step {
                name,
                duration_s: seconds(own[index]),
                tokens,
            });
        }
        let (model, provider) = match answer.or_else(|| {
            calls
                .iter()
                .enumerate()
                .max_by_key(|(_, c)| (c.end_ns, c.start_ns))
                .map(|(i, _)| i)
        }) {
            Some(a) => (calls[a].model.clone(), calls[a].provider.clone()),
            None => (None, None),
        };
        Timing {
            steps,
            tokens: sum_tokens(calls.iter().map(|c| c.tokens)),
            model,
            provider,
            first_token_ns: answer.and_then(|a| calls[a].first_token_ns),
        }
    }

    /// One LLM call: its outermost span's times, and the tokens and model
    /// of its deepest span that reports them (nested spans of one call, such
    /// as a framework's LLM span over a client library's, count once).
    fn call(&self, root: usize, step: Option<usize>) -> Call {
        let span = self.nodes[root].span;
        let mut call = Call {
            node: root,
            step,
            start_ns: span.start_ns,
            end_ns: span.end_ns,
            first_token_ns: None,
            tokens: None,
            model: None,
            provider: None,
        };
        let mut stack = vec![(root, 0usize)];
        let (mut tokens_depth, mut model_depth, mut provider_depth) = (None, None, None);
        while let Some((i, depth)) = stack.pop() {
            let s = self.nodes[i].span;
            if let Some(t) = s.first_token_ns {
                call.first_token_ns = Some(call.first_token_ns.map_or(t, |f: u64| f.min(t)));
            }
            if let Some(g) = &s.generation {
                let deeper = |best: Option<usize>| best.is_none_or(|b| depth >= b);
                if g.has_tokens() && deeper(tokens_depth) {
                    tokens_depth = Some(depth);
                    let input = g.input_tokens.unwrap_or(0);
                    let cached = g.cached_input_tokens.unwrap_or(0);
                    // A producer that reports input without its cached part.
                    let input = if cached > input {
                        input.saturating_add(cached)
                    } else {
                        input
                    };
                    call.tokens = Some((input, g.output_tokens.unwrap_or(0), cached));
                }
                if g.model.is_some() && deeper(model_depth) {
                    model_depth = Some(depth);
                    call.model = g.model.clone();
                }
                if g.provider.is_some() && deeper(provider_depth) {
                    provider_depth = Some(depth);
                    call.provider = g.provider.clone();
                }
            }
            for &c in &self.nodes[i].children {
                if self.nodes[c].span.role == Role::Generation {
                    stack.push((c, depth + 1));
                }
            }
        }
        call
    }
}

/// A step's category.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Category {
    Named(String),
    Retrieval,
    Reranking,
    Embedding,
    Tool,
    Guardrails,
    Generation,
}

impl Category {
    fn name(&self) -> &str {
        match self {
            Category::Named(name) => name,
            Category::Retrieval => "retrieval",
            Category::Reranking => "reranking",
            Category::Embedding => "embedding",
            Category::Tool => "tool",
            Category::Guardrails => "guardrails",
            Category::Generation => "llm",
        }
    }
}

fn category(span: &SpanFacts) -> Option<Category> {
    if let Some(name) = span.step.as_deref().filter(|n| valid_step_name(n)) {
        return Some(Category::Named(name.to_string()));
    }
    match span.role {
        Role::Retrieval => Some(Category::Retrieval),
        Role::Reranking => Some(Category::Reranking),
        Role::Embedding => Some(Category::Embedding),
        Role::Tool => Some(Category::Tool),
        Role::Guardrail => Some(Category::Guardrails),
        Role::Generation => Some(Category::Generation),
        Role::Pipeline | Role::Other => None,
    }
}

/// Whether a span of category `inner` is part of the step `outer` it is
/// nested in: the same category (nested spans of one step), or an LLM call
/// made by a retriever or a reranker.
fn belongs(inner: &Category, outer: &Category) -> bool {
    inner == outer
        || (*inner == Category::Generation
            && matches!(outer, Category::Retrieval | Category::Reranking))
}

fn valid_step_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

struct StepRoot {
    node: usize,
    category: Category,
    /// The step this one is nested in.
    parent: Option<usize>,
    /// The LLM calls counted in this step.
    calls: Vec<usize>,
}

struct Call {
    node: usize,
    step: Option<usize>,
    start_ns: u64,
    end_ns: u64,
    first_token_ns: Option<u64>,
    /// (input, output, cached input).
    tokens: Option<(i64, i64, i64)>,
    model: Option<String>,
    provider: Option<String>,
}

struct Timing {
    steps: Vec<Step>,
    tokens: (i64, i64, i64),
    model: Option<String>,
    provider: Option<String>,
    first_token_ns: Option<u64>,
}

fn sum_tokens(tokens: impl Iterator<Item = Option<(i64, i64, i64)>>) -> (i64, i64, i64) {
    tokens.flatten().fold((0, 0, 0), |a, t| {
        (
            a.0.saturating_add(t.0),
            a.1.saturating_add(t.1),
            a.2.saturating_add(t.2),
        )
    })
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The first value on the interaction span, then on its subtree, then on
/// the interaction span's resource, then on any resource of the subtree.
fn first_text(
    spans: &[&SpanFacts],
    resources: &[&ResourceFacts],
    of_span: impl Fn(&SpanFacts) -> &Option<String>,
    of_resource: impl Fn(&ResourceFacts) -> &Option<String>,
) -> Option<String> {
    spans
        .iter()
        .find_map(|s| of_span(s).clone())
        .or_else(|| resources.iter().find_map(|r| of_resource(r).clone()))
}

/// `ragpulse.assistant_id` (span, subtree, resource), else the assistant
/// named by the resource's `service.name`.
fn assistant(spans: &[&SpanFacts], resources: &[&ResourceFacts]) -> (Uuid, Option<String>) {
    let explicit = spans
        .iter()
        .find_map(|s| s.assistant_id)
        .or_else(|| resources.iter().find_map(|r| r.assistant_id));
    if let Some(id) = explicit {
        return (Uuid::from_bytes(id), None);
    }
    let name = resources
        .iter()
        .find_map(|r| r.service_name.clone())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
    (assistant_for_service(&name), Some(name))
}

/// The question, by source: see [`Source`] for the order. Sources that
/// only the interaction span may give (its input, an agent's messages, a
/// lone string of its traceloop input) are read there only (`tops`, and
/// `single` for the lone string); the others on any span of the subtree,
/// earliest first. Retrievers' inputs count after the retrieval and rerank
/// queries.
fn question(
    spans: &[&SpanFacts],
    tops: &[&SpanFacts],
    single: Option<&SpanFacts>,
) -> Option<String> {
    let on_root = |source: Source| {
        tops.iter().find_map(|root| {
            root.questions
                .iter()
                .find(|(s, _)| *s == source)
                .map(|(_, q)| q.clone())
        })
    };
    let anywhere = |source: Source, filter: &dyn Fn(&SpanFacts) -> bool| {
        spans.iter().filter(|s| filter(s)).find_map(|s| {
            s.questions
                .iter()
                .find(|(src, _)| *src == source)
                .map(|(_, q)| q.clone())
        })
    };
    let any = |_: &SpanFacts| true;
    anywhere(Source::Ragpulse, &any)
        .or_else(|| on_root(Source::AgentMessages))
        .or_else(|| on_root(Source::Input))
        .or_else(|| anywhere(Source::RetrievalQuery, &any))
        .or_else(|| anywhere(Source::RerankerQuery, &any))
        .or_else(|| anywhere(Source::Input, &|s| s.role == Role::Retrieval))
        .or_else(|| anywhere(Source::TemplateQuery, &any))
        .or_else(|| on_root(Source::EntityInput))
        .or_else(|| {
            let root = single?;
            root.questions
                .iter()
                .find(|(s, _)| *s == Source::EntityInputSingle)
                .map(|(_, q)| q.clone())
        })
        .or_else(|| anywhere(Source::EntityInput, &any))
        .or_else(|| anywhere(Source::RerankMessages, &any))
}
