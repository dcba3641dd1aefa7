//! Which topic an interaction joins: the client's label, the nearest
//! embedding centroid, or its normalised text and lexical near-duplicates;
//! and the topic and phrasing counters written once per transaction.

use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

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
        let found: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT key FROM topics WHERE assistant = ?1 AND kind = ?2 AND norm = ?3",
            )?
            .query_row(params![assistant, kind, key.norm], |r| r.get(0))
            .optional()?;
        let topic = match found {
            Some(topic) => topic,
            None => match self.near_duplicate(assistant, &key)? {
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
                    }
                    topic
                }
            },
        };
        self.caches.topics.insert((assistant, key), topic);
        Ok(TopicChoice::Topic(topic))
    }

    /// The question topic a new phrasing joins as a near-duplicate, if any. A
    /// decision is stored as an alias, so the same phrasing always lands in the
    /// same topic, whatever topics are created later.
    pub(super) fn near_duplicate(
        &mut self,
        assistant: i64,
        key: &TopicKey,
    ) -> SqlResult<Option<i64>> {
        if key.kind != TopicKind::Question {
            return Ok(None);
        }
        let alias: Option<i64> = self
            .tx
            .prepare_cached("SELECT topic FROM topic_aliases WHERE assistant = ?1 AND norm = ?2")?
            .query_row(params![assistant, key.norm], |r| r.get(0))
            .optional()?;
        if alias.is_some() {
            return Ok(alias);
        }
        let Some(topic) = self.lexical(assistant)?.assign(&key.norm) else {
            return Ok(None);
        };
        self.tx
            .prepare_cached(
                "INSERT INTO topic_aliases (assistant, norm, topic) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![assistant, key.norm, topic])?;
        Ok(Some(topic))
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
            while let Some(row) = rows.next()? {
                index.insert(row.get(0)?, &row.get::<_, String>(1)?);
            }
            self.caches.lexical.insert(assistant, index);
        }
        Ok(self.caches.lexical.entry(assistant).or_default())
    }

    pub(super) fn phrasing(&mut self, topic: i64, question: &str) -> SqlResult<i64> {
        let cache_key = (topic, question.to_string());
        if let Some(&key) = self.caches.phrasings.get(&cache_key) {
            return Ok(key);
        }
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT key FROM phrasings WHERE topic = ?1 AND text = ?2")?
            .query_row(params![topic, question], |r| r.get(0))
            .optional()?;
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

    pub(super) fn flush_topic_counts(&mut self) -> SqlResult<()> {
        for (topic, (count, last)) in std::mem::take(&mut self.topic_counts) {
            self.tx
                .prepare_cached(
                    "UPDATE topics SET frequency = frequency + ?2,
                        last_ts = max(coalesce(last_ts, ?3), ?3) WHERE key = ?1",
                )?
                .execute(params![topic, count, last])?;
        }
        for (phrasing, (count, first, last)) in std::mem::take(&mut self.phrasing_counts) {
            self.tx
                .prepare_cached(
                    "UPDATE phrasings SET count = count + ?2,
                        first_ts = min(coalesce(first_ts, ?3), ?3),
                        last_ts = max(coalesce(last_ts, ?4), ?4) WHERE key = ?1",
                )?
                .execute(params![phrasing, count, first, last])?;
        }
        Ok(())
    }
}
