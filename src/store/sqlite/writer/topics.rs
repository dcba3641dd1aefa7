//! Which topic an interaction joins: the client's label, the nearest
//! embedding centroid, or its normalised text and lexical near-duplicates;
//! and the topic and phrasing counters written once per transaction.

use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::Map;
use super::apply::{Apply, SqlResult};
use crate::ingest::event::*;
use crate::topics::centroids::{Assignment, CentroidIndex, from_bytes, to_bytes};
use crate::topics::lexical::LexicalIndex;
use crate::topics::{TopicKey, TopicKind};

/// Which topic an interaction joins, or why it cannot be stored.
pub(super) enum TopicChoice {
    None,
    Topic(i64),
    Rejected(String),
}

impl Apply<'_> {
    pub(super) fn topic(&mut self, assistant: i64, e: &InteractionEvent) -> SqlResult<TopicChoice> {
        let Some(key) = &e.topic_key else {
            return match (&e.question_embedding, &e.question) {
                (Some(unit), Some(_)) => self.embedding_topic(assistant, unit, e.id),
                _ => Ok(TopicChoice::None),
            };
        };
        let cache_key = (assistant, key.clone());
        if let Some(&topic) = self.caches.topics.get(&cache_key) {
            return Ok(TopicChoice::Topic(topic));
        }
        let (assistant, key) = cache_key;
        let kind = key.kind as i64;
        // Most questions are new: their text is in no topic or alias, which
        // the filter of the assistant's question texts tells without a lookup.
        let maybe_stored =
            key.kind != TopicKind::Question || self.maybe_stored(assistant, &key.norm)?;
        let found: Option<i64> = if maybe_stored {
            self.tx
                .prepare_cached(
                    "SELECT key FROM topics WHERE assistant = ?1 AND kind = ?2 AND norm = ?3",
                )?
                .query_row(params![assistant, kind, key.norm], |r| r.get(0))
                .optional()?
        } else {
            None
        };
        let topic = match found {
            Some(topic) => topic,
            None => match self.near_duplicate(assistant, &key, maybe_stored)? {
                Some(topic) => topic,
                None => {
                    let topic = self.new_rows.topic_key(self.tx)?;
                    self.new_rows.topics.insert(
                        topic,
                        NewTopic {
                            assistant,
                            kind,
                            norm: key.norm.clone(),
                            label: e.topic.clone(),
                        },
                    );
                    if key.kind == TopicKind::Question {
                        self.lexical(assistant)?.insert(topic, &key.norm);
                        self.record_norm(assistant, &key.norm);
                    }
                    self.caches.fresh_topics.insert(topic);
                    topic
                }
            },
        };
        self.caches.topics.insert((assistant, key), topic);
        Ok(TopicChoice::Topic(topic))
    }

    /// The question topic a new phrasing joins as a near-duplicate, if any. A
    /// decision is stored as an alias, so the same phrasing always lands in the
    /// same topic, whatever topics are created later. `maybe_stored` false:
    /// the text is known to have no alias.
    pub(super) fn near_duplicate(
        &mut self,
        assistant: i64,
        key: &TopicKey,
        maybe_stored: bool,
    ) -> SqlResult<Option<i64>> {
        if key.kind != TopicKind::Question {
            return Ok(None);
        }
        if maybe_stored {
            let alias: Option<i64> = self
                .tx
                .prepare_cached(
                    "SELECT topic FROM topic_aliases WHERE assistant = ?1 AND norm = ?2",
                )?
                .query_row(params![assistant, key.norm], |r| r.get(0))
                .optional()?;
            if alias.is_some() {
                return Ok(alias);
            }
        }
        let Some(topic) = self.lexical(assistant)?.assign(&key.norm) else {
            return Ok(None);
        };
        self.tx
            .prepare_cached(
                "INSERT INTO topic_aliases (assistant, norm, topic) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![assistant, key.norm, topic])?;
        self.record_norm(assistant, &key.norm);
        Ok(Some(topic))
    }

    /// Whether `norm` may be the text of one of the assistant's question
    /// topics or aliases (false: it is surely not).
    fn maybe_stored(&mut self, assistant: i64, norm: &str) -> SqlResult<bool> {
        self.lexical(assistant)?;
        Ok(self
            .caches
            .question_norms
            .get(&assistant)
            .is_none_or(|norms| norms.contains(norm)))
    }

    fn record_norm(&mut self, assistant: i64, norm: &str) {
        if let Some(norms) = self.caches.question_norms.get_mut(&assistant) {
            norms.insert(norm);
        }
    }

    /// The lexical index of an assistant's question topics (their first
    /// phrasings), rebuilt from the topics table on first use.
    pub(super) fn lexical(&mut self, assistant: i64) -> SqlResult<&mut LexicalIndex> {
        if !self.caches.lexical.contains_key(&assistant) {
            let mut index = LexicalIndex::new();
            let mut stmt = self.tx.prepare_cached(
                "SELECT key, norm FROM topics WHERE assistant = ?1 AND kind = ?2 ORDER BY key",
            )?;
            let mut rows = stmt.query(params![assistant, TopicKind::Question as i64])?;
            let mut norms = Norms::default();
            while let Some(row) = rows.next()? {
                let norm = row.get::<_, String>(1)?;
                index.insert(row.get(0)?, &norm);
                norms.insert(&norm);
            }
            let mut stmt = self
                .tx
                .prepare_cached("SELECT norm FROM topic_aliases WHERE assistant = ?1")?;
            let mut rows = stmt.query([assistant])?;
            while let Some(row) = rows.next()? {
                norms.insert(row.get_ref(0)?.as_str()?);
            }
            self.caches.lexical.insert(assistant, index);
            self.caches.question_norms.insert(assistant, norms);
        }
        Ok(self.caches.lexical.entry(assistant).or_default())
    }

    pub(super) fn phrasing(&mut self, topic: i64, question: &str) -> SqlResult<i64> {
        let cache_key = (topic, question.to_string());
        if let Some(&key) = self.caches.phrasings.get(&cache_key) {
            return Ok(key);
        }
        // A topic created by this transaction has no phrasing to find.
        let found: Option<i64> = if self.caches.fresh_topics.remove(&topic) {
            None
        } else {
            self.tx
                .prepare_cached("SELECT key FROM phrasings WHERE topic = ?1 AND text = ?2")?
                .query_row(params![topic, question], |r| r.get(0))
                .optional()?
        };
        let key = match found {
            Some(key) => key,
            None => {
                let key = self.new_rows.phrasing_key(self.tx)?;
                self.new_rows.phrasings.insert(
                    key,
                    NewPhrasing {
                        topic,
                        text: question.to_string(),
                    },
                );
                key
            }
        };
        self.caches.phrasings.insert(cache_key, key);
        Ok(key)
    }

    /// The centroid index of an assistant's embedding topics, loaded on first use.
    pub(super) fn centroids(
        &mut self,
        assistant: i64,
        dims: usize,
    ) -> SqlResult<Result<&mut CentroidIndex, String>> {
        if !self.caches.centroids.contains_key(&assistant) {
            let index = self.load_centroids(assistant)?;
            self.caches.centroids.insert(assistant, index);
        }
        let Some(index) = self.caches.centroids.get_mut(&assistant) else {
            return Ok(Err("internal: centroid index missing".to_string()));
        };
        if index.is_empty() && index.dims() != dims {
            *index = CentroidIndex::new(dims);
        }
        if index.dims() != dims {
            return Ok(Err(format!(
                "question_embedding: has {dims} dimensions, but this assistant's embeddings have {}; \
                 one assistant's questions must be embedded by one model",
                index.dims()
            )));
        }
        Ok(Ok(index))
    }

    pub(super) fn load_centroids(&mut self, assistant: i64) -> SqlResult<CentroidIndex> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT topic, count, mean FROM topic_centroids WHERE assistant = ?1 ORDER BY topic",
        )?;
        let mut rows = stmt.query([assistant])?;
        let mut index: Option<CentroidIndex> = None;
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(2)?;
            let Some(mean) = from_bytes(&bytes) else {
                continue;
            };
            let index = index.get_or_insert_with(|| CentroidIndex::new(mean.len()));
            if mean.len() == index.dims() {
                index.push(row.get(0)?, &mean, row.get::<_, i64>(1)?.max(1) as u64);
            }
        }
        Ok(index.unwrap_or_else(|| CentroidIndex::new(0)))
    }

    /// Joins the nearest similar embedding topic of the assistant, or starts one.
    pub(super) fn embedding_topic(
        &mut self,
        assistant: i64,
        unit: &[f32],
        id: Uuid,
    ) -> SqlResult<TopicChoice> {
        let threshold = self.topic_threshold;
        let index = match self.centroids(assistant, unit.len())? {
            Ok(index) => index,
            Err(message) => return Ok(TopicChoice::Rejected(message)),
        };
        match index.assign(unit, threshold) {
            Assignment::Join { row, .. } => {
                index.update(row, unit);
                let topic = index.topic(row);
                self.moved_centroids.insert(topic, (assistant, row));
                Ok(TopicChoice::Topic(topic))
            }
            Assignment::New => {
                // Embedding topics have no text key; the first interaction's id keeps `norm` unique.
                let topic = self.new_rows.topic_key(self.tx)?;
                self.tx
                    .prepare_cached(
                        "INSERT INTO topics (key, assistant, kind, norm) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        topic,
                        assistant,
                        TopicKind::Embedding as i64,
                        id.to_string()
                    ])?;
                self.tx
                    .prepare_cached(
                        "INSERT INTO topic_centroids (topic, assistant, count, mean) VALUES (?1, ?2, 1, ?3)",
                    )?
                    .execute(params![topic, assistant, to_bytes(unit)])?;
                if let Some(index) = self.caches.centroids.get_mut(&assistant) {
                    index.push(topic, unit, 1);
                }
                Ok(TopicChoice::Topic(topic))
            }
        }
    }

    /// All-time topic and phrasing totals, so all-time trending needs no scan.
    /// Gathered in memory and written once per transaction: a popular topic is
    /// then one row update per group commit, not one per interaction.
    pub(super) fn count_topic(
        &mut self,
        topic: Option<i64>,
        phrasing: Option<i64>,
        ts: i64,
    ) -> SqlResult<()> {
        if let Some(topic) = topic {
            let entry = self.topic_counts.entry(topic).or_insert((0, ts));
            entry.0 += 1;
            entry.1 = entry.1.max(ts);
        }
        if let Some(phrasing) = phrasing {
            let entry = self.phrasing_counts.entry(phrasing).or_insert((0, ts, ts));
            entry.0 += 1;
            entry.1 = entry.1.min(ts);
            entry.2 = entry.2.max(ts);
        }
        Ok(())
    }

    /// Writes the centroids that moved in this transaction, once each: a
    /// popular topic would otherwise rewrite its row for every question.
    pub(super) fn flush_centroids(&mut self) -> SqlResult<()> {
        let mut stmt = self
            .tx
            .prepare_cached("UPDATE topic_centroids SET count = ?2, mean = ?3 WHERE topic = ?1")?;
        for (topic, (assistant, row)) in self.moved_centroids.drain() {
            // Caches are dropped only between transactions: the index that
            // moved the centroid is still here.
            let Some(index) = self.caches.centroids.get(&assistant) else {
                continue;
            };
            let (mean, count) = index.row(row);
            stmt.execute(params![topic, count as i64, to_bytes(mean)])?;
        }
        Ok(())
    }

    /// Writes this transaction's topic and phrasing counters, and keeps what
    /// all-time trending and diversity read up to date with them: each
    /// topic's phrasings asked and canonical phrasing, and its assistant's
    /// Σf, Σf² and number of asked topics. A topic created by this
    /// transaction is inserted here with its counters: one row write instead
    /// of an insert and an update.
    pub(super) fn flush_topic_counts(&mut self) -> SqlResult<()> {
        let touched = self.flush_phrasing_counts()?;
        let mut counts = std::mem::take(&mut self.topic_counts);
        let mut totals: Map<i64, Totals> = Map::default();
        let mut insert = self.tx.prepare_cached(INSERT_TOPIC)?;
        for (topic, new) in self.new_rows.take_topics() {
            let counted = counts.remove(&topic);
            let phrasings = touched.get(&topic);
            let best = phrasings.and_then(|t| t.best);
            insert.execute(params![
                topic,
                new.assistant,
                new.kind,
                new.norm,
                new.label,
                counted.map_or(0, |c| c.0),
                counted.map(|c| c.1),
                phrasings.map_or(0, |t| t.new),
                best.map(|b| b.key),
                best.map(|b| b.count),
                best.map(|b| b.first)
            ])?;
            if let Some((count, _)) = counted {
                totals.entry(new.assistant).or_default().add(0, count);
            }
        }
        for (topic, (count, last)) in counts {
            let phrasings = touched.get(&topic);
            let best = phrasings.and_then(|t| t.best);
            let (assistant, frequency): (i64, i64) =
                self.tx.prepare_cached(UPDATE_TOPIC)?.query_row(
                    params![
                        topic,
                        count,
                        last,
                        phrasings.map_or(0, |t| t.new),
                        best.map(|b| b.key),
                        best.map(|b| b.count),
                        best.map(|b| b.first)
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
            totals
                .entry(assistant)
                .or_default()
                .add(frequency - count, frequency);
        }
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO topic_totals (assistant, topics, total, squares) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (assistant) DO UPDATE SET topics = topics + ?2, total = total + ?3,
                squares = squares + ?4",
        )?;
        for (assistant, t) in totals {
            stmt.execute(params![assistant, t.topics, t.total, t.squares])?;
        }
        Ok(())
    }

    /// Writes the phrasing counters (a phrasing created by this transaction
    /// is inserted with them); per topic, how many of its phrasings were
    /// asked for the first time and the best of them by the canonical rule.
    fn flush_phrasing_counts(&mut self) -> SqlResult<Map<i64, TouchedPhrasings>> {
        let mut touched: Map<i64, TouchedPhrasings> = Map::default();
        let mut counts = std::mem::take(&mut self.phrasing_counts);
        let mut insert = self.tx.prepare_cached(
            "INSERT INTO phrasings (key, topic, text, count, first_ts, last_ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (phrasing, new) in self.new_rows.take_phrasings() {
            let counted = counts.remove(&phrasing);
            insert.execute(params![
                phrasing,
                new.topic,
                new.text,
                counted.map_or(0, |c| c.0),
                counted.map(|c| c.1),
                counted.map(|c| c.2)
            ])?;
            if let Some((count, first, _)) = counted {
                touched
                    .entry(new.topic)
                    .or_default()
                    .add(phrasing, count, count, first);
            }
        }
        let mut stmt = self.tx.prepare_cached(
            "UPDATE phrasings SET count = count + ?2,
                first_ts = min(coalesce(first_ts, ?3), ?3),
                last_ts = max(coalesce(last_ts, ?4), ?4) WHERE key = ?1
             RETURNING topic, count, first_ts",
        )?;
        for (phrasing, (count, first, last)) in counts {
            let (topic, total, first): (i64, i64, i64) = stmt
                .query_row(params![phrasing, count, first, last], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            touched
                .entry(topic)
                .or_default()
                .add(phrasing, count, total, first);
        }
        Ok(touched)
    }
}

/// Topics and phrasings created by the open transaction, inserted when it
/// ends with their counters (see [`Apply::flush_topic_counts`]), and the
/// keys they get. The writer is the only one to insert into these tables
/// and keys are handed out above the largest stored one, as SQLite would.
#[derive(Default)]
pub(super) struct NewRows {
    topics: Map<i64, NewTopic>,
    phrasings: Map<i64, NewPhrasing>,
    next_topic: Option<i64>,
    next_phrasing: Option<i64>,
}

pub(super) struct NewTopic {
    assistant: i64,
    kind: i64,
    norm: String,
    label: Option<String>,
}

pub(super) struct NewPhrasing {
    topic: i64,
    text: String,
}

impl NewRows {
    /// The key of the next topic row, inserted now or at the end.
    fn topic_key(&mut self, tx: &rusqlite::Transaction<'_>) -> SqlResult<i64> {
        next_key(tx, &mut self.next_topic, "topics")
    }

    fn phrasing_key(&mut self, tx: &rusqlite::Transaction<'_>) -> SqlResult<i64> {
        next_key(tx, &mut self.next_phrasing, "phrasings")
    }

    /// The new topics, by key: inserted in key order, each row lands at the
    /// end of the table's B-tree.
    fn take_topics(&mut self) -> Vec<(i64, NewTopic)> {
        let mut rows: Vec<_> = self.topics.drain().collect();
        rows.sort_unstable_by_key(|(key, _)| *key);
        rows
    }

    fn take_phrasings(&mut self) -> Vec<(i64, NewPhrasing)> {
        let mut rows: Vec<_> = self.phrasings.drain().collect();
        rows.sort_unstable_by_key(|(key, _)| *key);
        rows
    }
}

/// Hands out `next`, read on first use as one past the table's largest key.
fn next_key(tx: &rusqlite::Transaction<'_>, next: &mut Option<i64>, table: &str) -> SqlResult<i64> {
    let key = match *next {
        Some(key) => key,
        None => tx
            .prepare_cached(&format!("SELECT coalesce(max(key), 0) + 1 FROM {table}"))?
            .query_row([], |r| r.get(0))?,
    };
    *next = Some(key.saturating_add(1));
    Ok(key)
}

/// A phrasing by the keys of the canonical rule.
#[derive(Debug, Clone, Copy)]
struct Canonical {
    key: i64,
    count: i64,
    first: i64,
}

impl Canonical {
    /// Most asked, then first asked earliest, then the smaller key: the least rank wins.
    fn rank(&self) -> (std::cmp::Reverse<i64>, i64, i64) {
        (std::cmp::Reverse(self.count), self.first, self.key)
    }
}

/// Adds a transaction's counts to a topic (?1: key, ?2: interactions, ?3:
/// latest, ?4: phrasings asked for the first time) and makes ?5 its canonical
/// phrasing (?6: its count, ?7: its first time) when ?5 now ranks first by
/// the canonical rule (most asked, first asked earliest, smaller key). ?5 is
/// the best of the phrasings of the topic this transaction touched. Counts
/// only grow and first times only move earlier, so the untouched phrasings
/// keep their ranks and the canonical phrasing is the better of the stored
/// one (whose stored keys can only understate it) and ?5; ?5 being the
/// stored one refreshes its keys. Each SET reads the row as it was before.
const UPDATE_TOPIC: &str = "UPDATE topics SET frequency = frequency + ?2,
        last_ts = max(coalesce(last_ts, ?3), ?3),
        variations = variations + ?4,
        canonical = CASE WHEN (?5 IS NOT NULL AND (canonical IS NULL OR canonical = ?5 OR ?6 > canonical_count OR (?6 = canonical_count AND (?7 < canonical_first OR (?7 = canonical_first AND ?5 < canonical))))) THEN ?5 ELSE canonical END,
        canonical_count = CASE WHEN (?5 IS NOT NULL AND (canonical IS NULL OR canonical = ?5 OR ?6 > canonical_count OR (?6 = canonical_count AND (?7 < canonical_first OR (?7 = canonical_first AND ?5 < canonical))))) THEN ?6 ELSE canonical_count END,
        canonical_first = CASE WHEN (?5 IS NOT NULL AND (canonical IS NULL OR canonical = ?5 OR ?6 > canonical_count OR (?6 = canonical_count AND (?7 < canonical_first OR (?7 = canonical_first AND ?5 < canonical))))) THEN ?7 ELSE canonical_first END
    WHERE key = ?1 RETURNING assistant, frequency";

/// A topic's phrasings written by one transaction.
#[derive(Debug, Default)]
struct TouchedPhrasings {
    /// Asked for the first time.
    new: i64,
    best: Option<Canonical>,
}

impl TouchedPhrasings {
    /// Phrasing `key` was asked `count` more times, `total` in all, first at `first`.
    fn add(&mut self, key: i64, count: i64, total: i64, first: i64) {
        self.new += i64::from(total == count);
        let candidate = Canonical {
            key,
            count: total,
            first,
        };
        if self.best.is_none_or(|b| candidate.rank() < b.rank()) {
            self.best = Some(candidate);
        }
    }
}

/// Inserts a topic created by this transaction with its counters (see
/// [`UPDATE_TOPIC`] for what they mean): ?1 key, ?2 assistant, ?3 kind, ?4
/// norm, ?5 label, ?6 frequency, ?7 last asked, ?8 phrasings asked, ?9–?11
/// its canonical phrasing, that phrasing's count and first time.
const INSERT_TOPIC: &str = "INSERT INTO topics (key, assistant, kind, norm, label, frequency,
        last_ts, variations, canonical, canonical_count, canonical_first)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// Changes to one assistant's diversity totals.
#[derive(Debug, Default)]
struct Totals {
    topics: i64,
    total: i64,
    squares: i64,
}

impl Totals {
    /// A topic's frequency went from `before` to `after`.
    fn add(&mut self, before: i64, after: i64) {
        self.topics += i64::from(before == 0 && after > 0);
        self.total += after - before;
        self.squares += after * after - before * before;
    }
}

/// The normalised texts of an assistant's question topics and aliases, as
/// Bloom filters (each full one followed by one twice its size): a text the
/// filters do not hold is in neither table, so a new question costs no
/// lookup there. The filters never miss a text they were given, so answers
/// stay exact; a false positive costs the two lookups.
pub(super) struct Norms {
    filters: Vec<super::ids::Filter>,
    capacity: usize,
    in_last: usize,
}

/// Texts the first filter of an assistant is sized for.
const NORMS_CAPACITY: usize = if cfg!(test) { 16 } else { 1 << 14 };

impl Default for Norms {
    fn default() -> Self {
        Self {
            filters: vec![super::ids::filter(NORMS_CAPACITY)],
            capacity: NORMS_CAPACITY,
            in_last: 0,
        }
    }
}

impl Norms {
    pub(super) fn insert(&mut self, norm: &str) {
        if self.in_last >= self.capacity {
            self.capacity = self.capacity.saturating_mul(2);
            self.filters.push(super::ids::filter(self.capacity));
            self.in_last = 0;
        }
        if let Some(last) = self.filters.last_mut() {
            last.insert(norm);
        }
        self.in_last += 1;
    }

    pub(super) fn contains(&self, norm: &str) -> bool {
        self.filters.iter().any(|f| f.contains(norm))
    }
}

#[cfg(test)]
mod norms_tests {
    use super::*;

    #[test]
    fn the_filters_grow_and_forget_no_text() {
        let mut norms = Norms::default();
        let texts: Vec<String> = (0..NORMS_CAPACITY * 5)
            .map(|i| format!("question {i}"))
            .collect();
        for t in &texts {
            norms.insert(t);
        }
        assert!(norms.filters.len() >= 3);
        assert!(texts.iter().all(|t| norms.contains(t)));
    }
}

/// Property: topics and phrasings created inside a transaction (inserted
/// at its end, under keys the writer hands out) and embedding topics
/// (inserted at once, from the same keys) end up with exactly the counters
/// a scan of the stored interactions gives, whatever the batches and
/// assistants, and with every interaction naming rows that exist.
#[cfg(test)]
mod new_rows_property {
    use proptest::prelude::*;
    use rusqlite::Connection;
    use serde_json::{Value, json};

    use crate::ingest::ingest_values;
    use crate::ingest::validate::EventLimits;
    use crate::store::sqlite::open_for_test;
    use crate::time::{MICROS_PER_DAY, Timestamp};

    /// Texts of which some are near-duplicates of others.
    const QUESTIONS: [&str; 6] = [
        "How do I reset my password?",
        "how can i reset my password",
        "Reset my forgotten password",
        "Where is invoice 42?",
        "Invoice 42 where",
        "Sync fails for the Drive connector",
    ];
    const EMBEDDINGS: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.0, 0.0, 1.0]];

    /// (assistant, question, how: 0 text only, 1 labelled, 2 with an embedding, minutes ago).
    type Gen = (u8, usize, u8, usize, i64);

    fn event(now: i64, n: usize, (assistant, question, how, embedding, minutes): Gen) -> Value {
        let mut e = json!({
            "type": "interaction",
            "id": uuid::Uuid::from_u128(n as u128 + 1),
            "timestamp": Timestamp(now - minutes * 60_000_000).to_rfc3339(),
            "assistant_id": uuid::Uuid::from_u128((u128::from(assistant) + 1) << 64),
            "session_id": "s",
            "cache_hit": false,
            "input_tokens": 1,
            "output_tokens": 1,
            "question": QUESTIONS[question],
        });
        match how {
            1 => e["topic"] = json!(if question < 3 { "Passwords" } else { "Billing" }),
            2 => e["question_embedding"] = json!(EMBEDDINGS[embedding]),
            _ => {}
        }
        e
    }

    /// Rows whose stored counters differ from a scan of the interactions.
    const MISMATCHES: &str = "
        SELECT (SELECT count(*) FROM interactions i WHERE i.topic IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM topics t WHERE t.key = i.topic))
             + (SELECT count(*) FROM interactions i WHERE i.phrasing IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM phrasings p WHERE p.key = i.phrasing AND p.topic = i.topic))
             + (SELECT count(*) FROM topics t WHERE t.frequency !=
                    (SELECT count(*) FROM interactions i WHERE i.topic = t.key)
                 OR t.last_ts IS NOT (SELECT max(ts) FROM interactions i WHERE i.topic = t.key)
                 OR t.variations != (SELECT count(*) FROM phrasings p WHERE p.topic = t.key AND p.count > 0)
                 OR t.canonical IS NOT (SELECT p.key FROM phrasings p WHERE p.topic = t.key AND p.count > 0
                                        ORDER BY p.count DESC, p.first_ts, p.key LIMIT 1))
             + (SELECT count(*) FROM phrasings p WHERE p.count !=
                    (SELECT count(*) FROM interactions i WHERE i.phrasing = p.key)
                 OR p.first_ts IS NOT (SELECT min(ts) FROM interactions i WHERE i.phrasing = p.key)
                 OR p.last_ts IS NOT (SELECT max(ts) FROM interactions i WHERE i.phrasing = p.key))
             + (SELECT count(*) FROM (SELECT assistant, count(*) AS topics, sum(frequency) AS total,
                        sum(frequency * frequency) AS squares
                    FROM topics WHERE frequency > 0 GROUP BY assistant) s
                 WHERE NOT EXISTS (SELECT 1 FROM topic_totals x WHERE x.assistant = s.assistant
                    AND x.topics = s.topics AND x.total = s.total AND x.squares = s.squares))";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn new_topics_and_phrasings_get_the_counters_of_a_full_scan(
            events in proptest::collection::vec((0u8..2, 0usize..6, 0u8..3, 0usize..3, 0i64..3000), 1..50),
            batch in 1usize..12,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let dir = tempfile::tempdir().expect("tempdir");
            let now = Timestamp::now().0 - MICROS_PER_DAY;
            let store = open_for_test(dir.path());
            for (b, chunk) in events.chunks(batch).enumerate() {
                let values: Vec<(usize, Value)> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, &g)| (i, event(now, b * batch + i, g)))
                    .collect();
                let outcome = runtime
                    .block_on(ingest_values(&store, values, &EventLimits::default()))
                    .expect("ingest");
                prop_assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
                prop_assert_eq!(outcome.accepted, chunk.len());
            }
            runtime.block_on(store.close());
            let conn = Connection::open(dir.path().join(crate::store::sqlite::DATABASE_FILE)).expect("database");
            let mismatches: i64 = conn.query_row(MISMATCHES, [], |r| r.get(0)).expect("scan");
            prop_assert_eq!(mismatches, 0);
            let stored: i64 = conn.query_row("SELECT count(*) FROM interactions", [], |r| r.get(0)).expect("count");
            prop_assert_eq!(stored as usize, events.len());
        }
    }
}
