//! Question text as people write it, for the demo and the benchmarks.
//!
//! Real users rarely type the same string twice: most questions are asked
//! once (words with names of things and numbers: ticket ids, invoice numbers,
//! error codes), over a core of recurring topics asked again and again in a
//! few phrasings each, with Zipf-like popularity. Some platforms label each
//! question with a topic, some send an embedding, most send neither.
//! [`QuestionMix`] chooses the mix; the same seed gives the same questions.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::generate::{Zipf, gaussian};

/// Which questions are asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum QuestionMix {
    /// 60 % questions asked once (words, names and numbers) over about 1,000
    /// recurring topics of five phrasings each, Zipf-distributed; a third of
    /// the assistants label their questions with a topic, half send embeddings.
    #[default]
    Realistic,
    /// Every question distinct (each carries its own number), with no topic
    /// label and no embedding: the most topic bookkeeping per interaction.
    Unique,
    /// 60 phrasings of 25 recurring topics, embeddings where the assistant
    /// sends them: the least bookkeeping.
    Repeated,
}

impl QuestionMix {
    /// As the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            QuestionMix::Realistic => "realistic",
            QuestionMix::Unique => "unique",
            QuestionMix::Repeated => "repeated",
        }
    }
}

/// Dimensions of the synthetic question embeddings.
pub const EMBEDDING_DIMS: usize = 48;

/// Share of the realistic mix's questions that are asked once.
const TAIL_SHARE: f64 = 0.6;

/// One question of an interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub text: String,
    /// The client's topic label, when the assistant sends one.
    pub label: Option<String>,
    /// A question embedding, when the assistant sends one.
    pub embedding: Option<Vec<f64>>,
}

/// What an assistant's platform sends with its questions.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    pub labels: bool,
    pub embeddings: bool,
}

/// A recurring topic: its phrasings and where its embeddings lie.
struct Topic {
    label: String,
    phrasings: Vec<String>,
    direction: Vec<f32>,
}

/// Draws the questions of a mix.
pub struct Questions {
    mix: QuestionMix,
    rng: SmallRng,
    topics: Vec<Topic>,
    pick_topic: Zipf,
    pick_phrasing: Zipf,
    /// One direction per subject of the questions asked once: a question
    /// about an invoice lies near the others about invoices.
    subjects: Vec<Vec<f32>>,
    /// Questions asked so far: numbers every `unique` question apart.
    asked: u64,
}

impl Questions {
    pub fn new(mix: QuestionMix, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5155_4553_5449_4f4e);
        let mut topics: Vec<Topic> = GROUPS
            .iter()
            .map(|group| Topic {
                label: group[0].trim_end_matches('?').to_string(),
                phrasings: group.iter().map(|p| p.to_string()).collect(),
                direction: direction(&mut rng),
            })
            .collect();
        if mix == QuestionMix::Realistic {
            for action in ACTIONS {
                for object in OBJECTS {
                    topics.push(Topic {
                        label: format!("{} {object}", capitalise(action)),
                        phrasings: TEMPLATES
                            .iter()
                            .map(|t| t.replace("{a}", action).replace("{o}", object))
                            .map(|p| capitalise(&p))
                            .collect(),
                        direction: direction(&mut rng),
                    });
                }
            }
        }
        let subjects = TAIL.iter().map(|_| direction(&mut rng)).collect();
        Self {
            mix,
            pick_topic: Zipf::new(topics.len(), 1.0),
            pick_phrasing: Zipf::new(TEMPLATES.len(), 1.2),
            topics,
            subjects,
            rng,
            asked: 0,
        }
    }

    pub fn mix(&self) -> QuestionMix {
        self.mix
    }

    /// The next question, as an assistant that sends what `sender` says would send it.
    pub fn next(&mut self, sender: Sender) -> Question {
        self.asked += 1;
        let sender = match self.mix {
            QuestionMix::Realistic => sender,
            QuestionMix::Unique => Sender {
                labels: false,
                embeddings: false,
            },
            QuestionMix::Repeated => Sender {
                labels: false,
                ..sender
            },
        };
        let once = match self.mix {
            QuestionMix::Realistic => self.rng.random::<f64>() < TAIL_SHARE,
            QuestionMix::Unique => true,
            QuestionMix::Repeated => false,
        };
        if once {
            self.asked_once(sender)
        } else {
            self.recurring(sender)
        }
    }

    fn recurring(&mut self, sender: Sender) -> Question {
        let topic = &self.topics[self.pick_topic.pick(&mut self.rng)];
        let n = topic.phrasings.len();
        let phrasing = self.pick_phrasing.pick(&mut self.rng).min(n - 1);
        let mut text = topic.phrasings[phrasing].clone();
        if self.mix == QuestionMix::Realistic && self.rng.random::<f64>() < 0.1 {
            // Typed in a hurry: same words, another string.
            text = text.to_lowercase().trim_end_matches('?').to_string();
        }
        // Paraphrases lie near one another (cosine ≈ 0.97), far from other topics.
        let offset = 0.15 * (phrasing as f32 + 1.0) / n as f32;
        Question {
            label: sender.labels.then(|| topic.label.clone()),
            embedding: sender
                .embeddings
                .then(|| embedding(&mut self.rng, &topic.direction, offset)),
            text,
        }
    }

    /// A question nobody asked before in these words.
    fn asked_once(&mut self, sender: Sender) -> Question {
        let subject = self.rng.random_range(0..TAIL.len());
        let (label, template) = TAIL[subject];
        let number = match self.mix {
            QuestionMix::Unique => 100_000 + self.asked,
            _ => self.rng.random_range(10_000..10_000_000),
        };
        let mut text = String::with_capacity(96);
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            text.push_str(&rest[..start]);
            let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
            let slot = &rest[start + 1..end];
            match slot {
                "n" => text.push_str(&number.to_string()),
                "code" => text.push_str(&self.rng.random_range(400..600).to_string()),
                "v" => text.push_str(&format!(
                    "{}.{}",
                    self.rng.random_range(1..9),
                    self.rng.random_range(0..20)
                )),
                other => text.push_str(self.word(other)),
            }
            rest = rest.get(end + 1..).unwrap_or("");
        }
        text.push_str(rest);
        Question {
            label: sender.labels.then(|| label.to_string()),
            embedding: sender
                .embeddings
                .then(|| embedding(&mut self.rng, &self.subjects[subject], 0.3)),
            text,
        }
    }

    fn word(&mut self, slot: &str) -> &'static str {
        let list: &[&str] = match slot {
            "person" => PEOPLE,
            "company" => COMPANIES,
            "city" => CITIES,
            "product" => PRODUCTS,
            "feature" => FEATURES,
            "file" => FILES,
            "source" => SOURCES,
            "month" => MONTHS,
            _ => OBJECTS,
        };
        list[self.rng.random_range(0..list.len())]
    }
}

fn direction(rng: &mut SmallRng) -> Vec<f32> {
    (0..EMBEDDING_DIMS).map(|_| gaussian(rng) as f32).collect()
}

/// `direction` moved by `offset` (relative) and a little noise, rounded as a client would send it.
fn embedding(rng: &mut SmallRng, direction: &[f32], offset: f32) -> Vec<f64> {
    direction
        .iter()
        .map(|d| {
            let x = f64::from(d + offset * gaussian(rng) as f32) + 0.05 * gaussian(rng);
            (x * 1e3).round() / 1e3
        })
        .collect()
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// Hand-written groups of paraphrases: each group is one topic as a person
/// would see it. The `repeated` mix asks only these; the realistic mix's most
/// popular topics are these.
const GROUPS: &[&[&str]] = &[
    &[
        "How do I reset my password?",
        "how can i reset my password",
        "Reset password how?",
        "I forgot my password, how do I reset it?",
    ],
    &["How do I reset my router?", "Router reset steps?"],
    &[
        "What is the refund policy?",
        "Can I get a refund?",
        "refund policy",
    ],
    &[
        "How do I change my billing address?",
        "Update billing address",
        "Where do I change the address on my invoices?",
    ],
    &[
        "How do I export my data?",
        "Export data to CSV",
        "Can I download all my data?",
    ],
    &[
        "What are the API rate limits?",
        "API rate limit",
        "How many requests per minute can I make?",
    ],
    &[
        "How do I invite a teammate?",
        "Add a user to my workspace",
        "invite teammate",
    ],
    &[
        "How do I enable two-factor authentication?",
        "Turn on 2FA",
        "set up two factor auth",
    ],
    &[
        "What regions do you host data in?",
        "Where is my data stored?",
    ],
    &[
        "How do I cancel my subscription?",
        "Cancel subscription",
        "How can I stop my plan?",
    ],
    &["Is there an on-premise version?", "Can we self-host?"],
    &[
        "How do I connect Confluence?",
        "Confluence integration setup",
    ],
    &[
        "Why is my sync failing?",
        "Sync keeps failing",
        "connector sync error",
    ],
    &["What file types can I upload?", "Supported file formats?"],
    &["How do I rotate an API key?", "Regenerate API key"],
    &["What is the SLA?", "uptime guarantee?"],
    &[
        "How is usage billed?",
        "How does pricing work?",
        "What do I pay per seat?",
    ],
    &["How do I delete my account?", "Delete account permanently"],
    &[
        "Can I change my plan mid-cycle?",
        "Upgrade plan in the middle of the month",
    ],
    &[
        "How do I set up SSO with Okta?",
        "Okta SSO",
        "SAML single sign-on setup",
    ],
    &["Where are the audit logs?", "Show audit log"],
    &[
        "How do I restore a deleted document?",
        "Recover deleted file",
    ],
    &["What is the maximum file size?", "File size limit?"],
    &[
        "How do I change the assistant's tone?",
        "Make answers more formal",
    ],
    &["Does it support German?", "Which languages are supported?"],
];

/// What people do to things: with [`OBJECTS`], the realistic mix's
/// recurring topics beyond [`GROUPS`].
const ACTIONS: &[&str] = &[
    "reset",
    "change",
    "export",
    "import",
    "delete",
    "share",
    "rename",
    "archive",
    "restore",
    "configure",
    "enable",
    "update",
    "download",
    "upload",
    "sync",
    "merge",
    "move",
    "copy",
    "schedule",
    "approve",
];

const OBJECTS: &[&str] = &[
    "workspace",
    "dashboard",
    "invoice",
    "quarterly report",
    "API token",
    "webhook",
    "folder",
    "team",
    "project",
    "shared calendar",
    "notification settings",
    "payment method",
    "billing email",
    "SSO configuration",
    "audit trail",
    "retention policy",
    "custom domain",
    "integration",
    "user role",
    "knowledge base",
    "chat history",
    "saved search",
    "template",
    "email signature",
    "time zone",
    "language setting",
    "profile photo",
    "storage quota",
    "nightly snapshot",
    "access policy",
    "Slack channel",
    "Jira board",
    "Salesforce connection",
    "Zendesk macro",
    "support ticket",
    "contract",
    "purchase order",
    "expense report",
    "vacation request",
    "onboarding checklist",
    "training module",
    "device",
    "VPN profile",
    "printer",
    "laptop",
    "license",
    "seat",
    "subscription tier",
    "credit limit",
    "tax ID",
];

/// How people phrase a recurring question: every template keeps the same
/// content words, so a topic's phrasings are lexical near-duplicates.
const TEMPLATES: &[&str] = &[
    "How do I {a} the {o}?",
    "how to {a} {o}",
    "{a} {o}",
    "Is it possible to {a} my {o}?",
    "Can someone help me {a} our {o}",
];

/// Questions asked once: a subject (the label a labelling platform gives
/// it) and a template whose slots take names, numbers and codes.
const TAIL: &[(&str, &str)] = &[
    (
        "Invoices",
        "Why was invoice INV-{n} charged twice for {company}?",
    ),
    (
        "Tickets",
        "Ticket {n}: {person} cannot open {file} in {product}",
    ),
    (
        "Sync errors",
        "Error {code} when syncing {file} from {source} (job {n})",
    ),
    (
        "Orders",
        "What is the status of order #{n} shipped to {city}?",
    ),
    (
        "Compatibility",
        "Does {product} {v} support {feature} for {company}? Case {n}",
    ),
    (
        "Contracts",
        "{person} from {company} asks about renewal terms of contract {n}",
    ),
    (
        "Refunds",
        "Refund request {n} for {person}: charged in {month}, still pending",
    ),
    (
        "Access",
        "Can {person} get access to the {object} of {company} (request {n})?",
    ),
    (
        "Outages",
        "{product} returned {code} for {company} in {city} around {month} {n}",
    ),
    (
        "Data",
        "Where does {feature} store data for account {n} of {company}?",
    ),
];

const PEOPLE: &[&str] = &[
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
    "Margaret Hamilton",
    "Dennis Ritchie",
    "Radia Perlman",
    "Leslie Lamport",
    "Katherine Johnson",
    "John Backus",
    "Hedy Lamarr",
    "Tim Berners-Lee",
    "Sophie Wilson",
    "Linus Torvalds",
    "Anita Borg",
    "Niklaus Wirth",
];
const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Logistics",
    "Hooli",
    "Vehement Capital",
    "Soylent Foods",
    "Tyrell Systems",
    "Cyberdyne",
    "Massive Dynamic",
    "Wonka Industries",
    "Oscorp",
    "Aperture Labs",
    "Black Mesa",
    "Gringotts Bank",
    "Monsters Inc",
    "Dunder Mifflin",
    "Pied Piper",
    "Virtucon",
    "Nakatomi Trading",
    "Prestige Worldwide",
    "Sterling Cooper",
    "Vandelay Imports",
];
const CITIES: &[&str] = &[
    "Berlin",
    "Lyon",
    "Osaka",
    "Toronto",
    "Austin",
    "Nairobi",
    "Lisbon",
    "Krakow",
    "Seoul",
    "Melbourne",
    "Bogota",
    "Dublin",
    "Pune",
    "Oslo",
    "Cape Town",
    "Denver",
];
const PRODUCTS: &[&str] = &[
    "the desktop app",
    "the iOS app",
    "the Android app",
    "the web editor",
    "the CLI",
    "the Outlook add-in",
    "the REST API",
    "the browser extension",
    "the admin console",
    "the mobile SDK",
];
const FEATURES: &[&str] = &[
    "SCIM provisioning",
    "audit export",
    "offline mode",
    "data residency",
    "custom roles",
    "bulk upload",
    "webhooks",
    "version history",
    "e-signatures",
    "SAML",
    "IP allowlists",
    "usage alerts",
    "multi-currency",
    "read receipts",
    "smart search",
];
const FILES: &[&str] = &[
    "budget.xlsx",
    "handbook.pdf",
    "roadmap.pptx",
    "minutes.docx",
    "pricing.csv",
    "architecture.md",
    "contract.pdf",
    "invoice.pdf",
    "policy.docx",
    "release-notes.md",
];
const SOURCES: &[&str] = &[
    "Confluence",
    "Google Drive",
    "SharePoint",
    "Notion",
    "Zendesk",
];
const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const BOTH: Sender = Sender {
        labels: true,
        embeddings: true,
    };

    fn draw(mix: QuestionMix, n: usize) -> Vec<Question> {
        let mut q = Questions::new(mix, 7);
        (0..n).map(|_| q.next(BOTH)).collect()
    }

    fn distinct(questions: &[Question]) -> usize {
        questions
            .iter()
            .map(|q| &q.text)
            .collect::<HashSet<_>>()
            .len()
    }

    #[test]
    fn unique_questions_are_all_different_and_carry_nothing_else() {
        let qs = draw(QuestionMix::Unique, 5_000);
        assert_eq!(distinct(&qs), 5_000);
        assert!(
            qs.iter()
                .all(|q| q.label.is_none() && q.embedding.is_none())
        );
    }

    #[test]
    fn repeated_questions_come_from_the_fixed_phrasings() {
        let qs = draw(QuestionMix::Repeated, 5_000);
        let phrasings: usize = GROUPS.iter().map(|g| g.len()).sum();
        assert!(distinct(&qs) <= phrasings);
        assert!(qs.iter().all(|q| q.label.is_none()));
        assert!(
            qs.iter()
                .all(|q| q.embedding.as_ref().map(Vec::len) == Some(EMBEDDING_DIMS))
        );
    }

    #[test]
    fn realistic_questions_are_mostly_asked_once_over_a_recurring_core() {
        let qs = draw(QuestionMix::Realistic, 20_000);
        let mut counts: std::collections::HashMap<&str, usize> = Default::default();
        for q in &qs {
            *counts.entry(q.text.as_str()).or_default() += 1;
        }
        let once = counts.values().filter(|&&c| c == 1).count();
        // Most distinct questions are asked once; a few are asked very often.
        assert!(once * 10 > counts.len() * 8, "{once} of {}", counts.len());
        assert!(counts.values().any(|&c| c > 200));
        let labels: HashSet<_> = qs.iter().filter_map(|q| q.label.as_deref()).collect();
        assert!(labels.len() > 100, "{} labels", labels.len());
    }

    #[test]
    fn a_recurring_topic_has_several_near_duplicate_phrasings() {
        use crate::topics::{lexical::similarity, normalise_question};
        let q = Questions::new(QuestionMix::Realistic, 1);
        let topic = &q.topics[GROUPS.len()];
        let first = normalise_question(&topic.phrasings[0]);
        for p in &topic.phrasings {
            assert!(
                similarity(&first, &normalise_question(p)) >= 2.0 / 3.0,
                "{p}"
            );
        }
    }

    #[test]
    fn a_sender_without_labels_or_embeddings_gets_neither() {
        let mut q = Questions::new(QuestionMix::Realistic, 3);
        let none = Sender {
            labels: false,
            embeddings: false,
        };
        assert!(
            (0..500)
                .map(|_| q.next(none))
                .all(|q| q.label.is_none() && q.embedding.is_none())
        );
    }
}
