//! A deterministic generator of realistic RAG telemetry, for the demo and the
//! benchmark: assistants on different models, users, connectors and documents
//! of all ages, sessions of all sizes, recurring questions with paraphrases,
//! log-normal first-token latencies, cache hits, pipeline steps, reranking and
//! connector syncs. The same seed gives the same events.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

use super::questions::{QuestionMix, Questions, Sender};
use crate::time::{MICROS_PER_DAY, Timestamp};

const ASSISTANTS: &[(&str, &str)] = &[
    ("Support bot", "gpt-4o-mini"),
    ("Sales assistant", "claude-3-5-sonnet-20241022"),
    ("HR helpdesk", "gemini-2.0-flash"),
    ("Engineering docs", "gpt-4.1"),
    ("Legal Q&A", "mistral-large-latest"),
    ("Onboarding guide", "ollama/llama3.1:8b"),
    ("Billing helper", "gpt-4o"),
    ("IT service desk", "claude-3-5-haiku-20241022"),
    ("Product FAQ", "gemini-2.5-flash"),
    ("Partner portal", "acme-internal-llm-v2"),
];

const CONNECTORS: &[&str] = &[
    "Confluence",
    "Google Drive",
    "SharePoint",
    "Notion",
    "Zendesk",
];
const FIRST_NAMES: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
    "Radia", "Leslie",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Ritchie", "Perlman", "Lamport",
];
const EXTENSIONS: &[&str] = &["pdf", "docx", "md", "html", "pptx"];

/// Shape of a generated world.
#[derive(Debug, Clone)]
pub struct Shape {
    pub assistants: usize,
    pub users: usize,
    pub documents: usize,
    pub seed: u64,
}

impl Shape {
    /// The world the store benchmarks fill: 10 assistants, 5,000 users and
    /// 20,000 documents, a platform of moderate size.
    pub fn bench(seed: u64) -> Self {
        Self {
            assistants: 10,
            users: 5_000,
            documents: 20_000,
            seed,
        }
    }
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            assistants: 6,
            users: 120,
            documents: 400,
            seed: 42,
        }
    }
}

struct Assistant {
    id: Uuid,
    name: String,
    model: String,
    reranks: bool,
    /// Whether this assistant's platform sends question embeddings.
    embeds: bool,
    /// Median first-token latency, seconds.
    ttft_median: f64,
    cache_rate: f64,
}

struct Session {
    id: String,
    user: Option<Uuid>,
    assistant: usize,
    remaining: u32,
    /// When it was last asked something, µs.
    last_ts: i64,
}

/// A conversation idle this long is over: its remaining questions are never asked.
const SESSION_IDLE_US: i64 = 30 * 60 * 1_000_000;

/// The generated world and the random state that produces its events.
pub struct Generator {
    rng: SmallRng,
    assistants: Vec<Assistant>,
    users: Vec<(Uuid, String, String)>,
    connectors: Vec<(Uuid, String)>,
    documents: Vec<(Uuid, usize, String, Option<i64>, bool)>,
    sessions: Vec<Session>,
    session_counter: u64,
    event_counter: u64,
    namespace: Uuid,
    pick_assistant: Zipf,
    pick_document: Zipf,
    questions: Questions,
}

impl Generator {
    /// A world whose document ages are relative to `now`.
    pub fn new(shape: &Shape, now: i64) -> Self {
        let mut rng = SmallRng::seed_from_u64(shape.seed);
        let namespace = Uuid::from_u128(rng.random());
        let assistants: Vec<Assistant> = (0..shape.assistants.max(1))
            .map(|i| {
                let (name, model) = ASSISTANTS[i % ASSISTANTS.len()];
                let name = if i < ASSISTANTS.len() {
                    name.to_string()
                } else {
                    format!("{name} {}", i / ASSISTANTS.len() + 1)
                };
                Assistant {
                    id: random_uuid(&mut rng),
                    name,
                    model: model.to_string(),
                    reranks: i % 3 != 2,
                    embeds: i % 2 == 0,
                    ttft_median: rng.random_range(0.45..1.6),
                    cache_rate: rng.random_range(0.08..0.4),
                }
            })
            .collect();
        let users = (0..shape.users)
            .map(|i| {
                let first = FIRST_NAMES[i % FIRST_NAMES.len()];
                let last = LAST_NAMES[(i / FIRST_NAMES.len() + i) % LAST_NAMES.len()];
                (
                    random_uuid(&mut rng),
                    format!(
                        "{}.{}{}@example.com",
                        first.to_lowercase(),
                        last.to_lowercase(),
                        i
                    ),
                    format!("{first} {last}"),
                )
            })
            .collect();
        let connectors: Vec<(Uuid, String)> = CONNECTORS
            .iter()
            .map(|name| (random_uuid(&mut rng), name.to_string()))
            .collect();
        let documents: Vec<(Uuid, usize, String, Option<i64>, bool)> = (0..shape.documents.max(1))
            .map(|i| {
                // Ages from hours to a year, skewed young; a few unknown.
                let age_days = rng.random::<f64>().powi(2) * 365.0;
                let updated = (rng.random::<f64>() > 0.03)
                    .then(|| now - (age_days * MICROS_PER_DAY as f64) as i64);
                let ext = EXTENSIONS[i % EXTENSIONS.len()];
                (
                    random_uuid(&mut rng),
                    i % connectors.len(),
                    format!("{}-{i:04}.{ext}", topic_slug(i)),
                    updated,
                    rng.random::<f64>() < 0.02,
                )
            })
            .collect();
        Self {
            rng,
            pick_assistant: Zipf::new(assistants.len(), 0.8),
            pick_document: Zipf::new(documents.len(), 1.0),
            questions: Questions::new(QuestionMix::default(), shape.seed),
            assistants,
            users,
            connectors,
            documents,
            sessions: Vec::new(),
            session_counter: 0,
            event_counter: 0,
            namespace,
        }
    }

    /// The same world asking the questions of `mix` (realistic by default).
    pub fn with_questions(mut self, mix: QuestionMix, seed: u64) -> Self {
        self.questions = Questions::new(mix, seed);
        self
    }

    /// Continues the traffic with a fresh random stream: new event and session
    /// ids, so a demo restarted on its own data directory adds interactions
    /// instead of replaying the ones it stored before (dropped as duplicates).
    /// The world (assistants, users, connectors, documents) stays the same;
    /// the questions are drawn anew from the same mix.
    pub fn reseed_traffic(&mut self, seed: u64) {
        self.rng = SmallRng::seed_from_u64(seed);
        self.namespace = Uuid::from_u128(self.rng.random());
        self.sessions.clear();
        self.questions = Questions::new(self.questions.mix(), seed);
    }

    pub fn assistant_ids(&self) -> Vec<Uuid> {
        self.assistants.iter().map(|a| a.id).collect()
    }

    /// Registry events: assistants, users (a few left unregistered), connectors, documents.
    pub fn registry_events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for a in &self.assistants {
            events.push(json!({"type": "assistant", "id": a.id, "name": a.name, "model": a.model}));
        }
        for (i, (id, email, name)) in self.users.iter().enumerate() {
            if i % 17 != 16 {
                events.push(json!({"type": "user", "id": id, "email": email, "full_name": name}));
            }
        }
        for (id, name) in &self.connectors {
            events.push(json!({"type": "connector", "id": id, "name": name}));
        }
        for (id, connector, file, updated, deleted) in &self.documents {
            let updated = updated.map(|t| Timestamp(t).to_rfc3339());
            events.push(
                json!({"type": "document", "id": id, "connector_id": self.connectors[*connector].0,
                "file_name": file, "updated_at": updated, "deleted": deleted}),
            );
        }
        events
    }

    fn next_id(&mut self, kind: &str) -> Uuid {
        let _ = kind;
        self.event_counter += 1;
        random_uuid(&mut self.rng)
    }

    /// Picks a session: usually a continuing one, sometimes a new one whose
    /// length follows a long-tailed distribution (many single questions, a few power users).
    fn session(&mut self, ts: i64) -> usize {
        // Conversations last minutes, as in real traffic: idle ones are closed.
        self.sessions
            .retain(|s| (ts - s.last_ts).abs() <= SESSION_IDLE_US);
        if !self.sessions.is_empty() && self.rng.random::<f64>() < 0.6 {
            return self.rng.random_range(0..self.sessions.len());
        }
        let remaining = match self.rng.random::<f64>() {
            x if x < 0.45 => 1,
            x if x < 0.85 => self.rng.random_range(2..=5),
            _ => self.rng.random_range(6..=25),
        };
        self.session_counter += 1;
        let user = (self.rng.random::<f64>() < 0.9).then(|| {
            // A few heavy users ask much more than the rest.
            let n = self.users.len().max(1);
            let pick = (self.rng.random::<f64>().powi(3) * n as f64) as usize;
            self.users.get(pick.min(n - 1)).map(|u| u.0)
        });
        let assistant = self.pick_assistant.pick(&mut self.rng);
        self.sessions.push(Session {
            id: format!(
                "web-{:x}-{}",
                self.namespace.as_u128() as u32,
                self.session_counter
            ),
            user: user.flatten(),
            assistant,
            remaining,
            last_ts: ts,
        });
        self.sessions.len() - 1
    }

    /// One interaction at `ts` (microseconds).
    pub fn interaction(&mut self, ts: i64) -> Value {
        let s = self.session(ts);
        let (session_id, user, assistant_index) = {
            let session = &mut self.sessions[s];
            session.remaining = session.remaining.saturating_sub(1);
            session.last_ts = ts;
            (session.id.clone(), session.user, session.assistant)
        };
        if self.sessions[s].remaining == 0 {
            self.sessions.swap_remove(s);
        }
        let id = self.next_id("interaction");
        let a = &self.assistants[assistant_index];
        let (assistant_id, model, reranks, median, cache_rate) = (
            a.id,
            a.model.clone(),
            a.reranks,
            a.ttft_median,
            a.cache_rate,
        );
        let question = self.questions.next(Sender {
            labels: assistant_index % 3 == 1,
            embeddings: a.embeds,
        });
        let cache_hit = self.rng.random::<f64>() < cache_rate;
        let input_tokens: i64 = self.rng.random_range(600..4200);
        let cached = if self.rng.random::<f64>() < 0.3 {
            input_tokens / 2
        } else {
            0
        };
        let output_tokens: i64 = self.rng.random_range(40..900);
        let mut steps = Vec::new();
        let embed = self.rng.random_range(0.008..0.04);
        let retrieval = lognormal(&mut self.rng, 0.18, 0.45);
        steps.push(json!({"name": "embedding", "duration_s": round6(embed)}));
        steps.push(json!({"name": "retrieval", "duration_s": round6(retrieval)}));
        let mut elapsed = embed + retrieval;
        let mut rerank = Value::Null;
        if reranks {
            let rr = lognormal(&mut self.rng, 0.09, 0.4);
            elapsed += rr;
            steps.push(json!({"name": "reranking", "duration_s": round6(rr)}));
            let before: f64 = self.rng.random_range(0.25..0.65);
            let after = (before + self.rng.random_range(-0.05..0.32)).clamp(0.0, 1.0);
            rerank = json!({"score_before": round3(before), "score_after": round3(after),
                "position_change": round3(self.rng.random_range(0.0..4.5))});
        }
        let (ttft, total) = if cache_hit {
            (Value::Null, elapsed * 0.2 + 0.02)
        } else {
            let first = lognormal(&mut self.rng, median, 0.55).max(elapsed + 0.01);
            let generation = first + output_tokens as f64 * self.rng.random_range(0.004..0.012);
            steps.push(
                json!({"name": "synthesis", "duration_s": round6(generation - elapsed),
                "input_tokens": input_tokens, "output_tokens": output_tokens}),
            );
            (json!(round6(first)), generation)
        };
        if self.rng.random::<f64>() < 0.15 {
            steps.push(json!({"name": "guardrails", "duration_s": round6(self.rng.random_range(0.01..0.08))}));
        }
        let docs: Vec<Uuid> = (0..self.rng.random_range(2..6))
            .map(|_| self.documents[self.pick_document.pick(&mut self.rng)].0)
            .collect();
        json!({
            "type": "interaction", "id": id, "timestamp": Timestamp(ts).to_rfc3339(),
            "assistant_id": assistant_id, "session_id": session_id, "user_id": user,
            "question": question.text, "question_embedding": question.embedding,
            "topic": question.label, "model": model,
            "ttft_s": ttft, "total_duration_s": round6(total.max(ttft.as_f64().unwrap_or(0.0))),
            "cache_hit": cache_hit, "input_tokens": if cache_hit { 0 } else { input_tokens },
            "cached_input_tokens": if cache_hit { 0 } else { cached },
            "output_tokens": if cache_hit { 0 } else { output_tokens },
            "steps": if cache_hit { json!([]) } else { json!(steps) },
            "retrieved_document_ids": if cache_hit { json!([]) } else { json!(docs) },
            "rerank": if cache_hit { Value::Null } else { rerank },
        })
    }

    /// One connector sync starting at `ts`.
    pub fn sync(&mut self, ts: i64) -> Value {
        let connector = self.rng.random_range(0..self.connectors.len());
        // Each connector has its own reliability.
        let failure_rate = [0.02, 0.08, 0.25, 0.05, 0.12][connector % 5];
        let roll = self.rng.random::<f64>();
        let status = if roll < failure_rate {
            "failure"
        } else if roll < failure_rate + 0.05 {
            "partial"
        } else {
            "success"
        };
        let id = self.next_id("sync");
        json!({"type": "connector_sync", "id": id, "connector_id": self.connectors[connector].0,
            "status": status, "started_at": Timestamp(ts).to_rfc3339(),
            "duration_s": round3(lognormal(&mut self.rng, 40.0, 0.6)),
            "documents_synced": self.rng.random_range(0..200),
            "error": if status == "failure" { json!("upstream returned 503") } else { Value::Null }})
    }
}

pub(super) fn gaussian(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A version-4 UUID from the seeded generator: random-looking, yet reproducible.
fn random_uuid(rng: &mut SmallRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn topic_slug(i: usize) -> &'static str {
    const SLUGS: &[&str] = &[
        "handbook",
        "billing-faq",
        "security-policy",
        "api-reference",
        "onboarding",
        "release-notes",
        "sso-guide",
        "pricing",
        "runbook",
        "architecture",
    ];
    SLUGS[i % SLUGS.len()]
}

/// Indices in `0..n` with probability ∝ 1 / (i + 1)^s, drawn by binary search
/// over the precomputed cumulative weights.
pub(super) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(super) fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cdf = (1..=n.max(1))
            .map(|k| {
                total += 1.0 / (k as f64).powf(s);
                total
            })
            .collect();
        Self { cdf }
    }

    pub(super) fn pick(&self, rng: &mut SmallRng) -> usize {
        let total = self.cdf.last().copied().unwrap_or(0.0);
        let target = rng.random::<f64>() * total;
        self.cdf
            .partition_point(|&c| c < target)
            .min(self.cdf.len() - 1)
    }
}

/// Log-normal with the given median and shape (Box–Muller for the normal).
fn lognormal(rng: &mut SmallRng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    median * (sigma * z).exp()
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::validate::{EventLimits, validate};

    #[test]
    fn every_generated_event_passes_validation() {
        let now = Timestamp::now().micros();
        let mut g = Generator::new(&Shape::default(), now);
        let limits = EventLimits::default();
        let mut events = g.registry_events();
        for i in 0..2_000 {
            events.push(g.interaction(now - i * 1_000_000));
        }
        for i in 0..50 {
            events.push(g.sync(now - i * 60_000_000));
        }
        for event in &events {
            if let Err(e) = validate(&crate::ingest::json::Json::borrow(event), &limits, now) {
                panic!("{e}: {event}");
            }
        }
    }

    #[test]
    fn reseeded_traffic_has_new_ids_and_sessions_in_the_same_world() {
        let now = 1_800_000_000_000_000;
        let mut first = Generator::new(&Shape::default(), now);
        let mut again = Generator::new(&Shape::default(), now);
        again.reseed_traffic(99);
        assert_eq!(first.registry_events(), again.registry_events());
        let ids = |g: &mut Generator| -> Vec<(Value, Value)> {
            (0..200)
                .map(|i| {
                    let e = g.interaction(now + i * 1_000_000);
                    (e["id"].clone(), e["session_id"].clone())
                })
                .collect()
        };
        let (before, after) = (ids(&mut first), ids(&mut again));
        for (id, session) in &after {
            assert!(before.iter().all(|(i, _)| i != id), "id {id} replayed");
            assert!(
                before.iter().all(|(_, s)| s != session),
                "session {session} reused"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_events() {
        let now = 1_800_000_000_000_000;
        let mut a = Generator::new(&Shape::default(), now);
        let mut b = Generator::new(&Shape::default(), now);
        for i in 0..100 {
            assert_eq!(a.interaction(now - i), b.interaction(now - i));
        }
    }
}
