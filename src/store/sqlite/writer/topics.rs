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
                    self.tx
                        .prepare_cached(
                            "INSERT INTO topics (assistant, kind, norm, label) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![assistant, kind, key.norm, e.topic])?;
                    let topic = self.tx.last_insert_rowid();
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
                self.tx
                    .prepare_cached("INSERT INTO phrasings (topic, text) VALUES (?1, ?2)")?
                    .execute(params![topic, question])?;
                self.tx.last_insert_rowid()
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
                self.tx
                    .prepare_cached(
                        "INSERT INTO topics (assistant, kind, norm) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![
                        assistant,
                        TopicKind::Embedding as i64,
                        id.to_string()
                    ])?;
                let topic = self.tx.last_insert_rowid();
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
    /// Σf, Σf² and number of asked topics.
    pub(super) fn flush_topic_counts(&mut self) -> SqlResult<()> {
        let touched = self.flush_phrasing_counts()?;
        let mut totals: Map<i64, Totals> = Map::default();
        for (topic, (count, last)) in std::mem::take(&mut self.topic_counts) {
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

    /// Writes the phrasing counters; per topic, how many of its phrasings
    /// were asked for the first time and the best of them by the canonical rule.
    fn flush_phrasing_counts(&mut self) -> SqlResult<Map<i64, TouchedPhrasings>> {
        let mut touched: Map<i64, TouchedPhrasings> = Map::default();
        let mut stmt = self.tx.prepare_cached(
            "UPDATE phrasings SET count = count + ?2,
                first_ts = min(coalesce(first_ts, ?3), ?3),
                last_ts = max(coalesce(last_ts, ?4), ?4) WHERE key = ?1
             RETURNING topic, count, first_ts",
        )?;
        for (phrasing, (count, first, last)) in std::mem::take(&mut self.phrasing_counts) {
            let (topic, total, first): (i64, i64, i64) = stmt
                .query_row(params![phrasing, count, first, last], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            let entry = touched.entry(topic).or_default();
            entry.new += i64::from(total == count);
            let candidate = Canonical {
                key: phrasing,
                count: total,
                first,
            };
            if entry.best.is_none_or(|b| candidate.rank() < b.rank()) {
                entry.best = Some(candidate);
            }
        }
        Ok(touched)
    }
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
