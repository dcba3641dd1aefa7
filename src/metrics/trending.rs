//! Trending topics: per topic its frequency, latest question and phrasings, the
//! canonical phrasing, growth against the previous window, and the ordering.
//! The same state feeds topic diversity through [`TrendingState::frequencies`].

use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::round::round_dp;
use super::{TopicDirectory, count_i64, keep_contenders};
use crate::metrics::models::TrendingTopic;
use crate::time::Timestamp;

pub mod window;

/// How often a phrasing was asked, and when first (for the canonical tie-break).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PhrasingAcc {
    count: u64,
    first_ts: i64,
    /// When it was last asked: the order of the recent phrasings shown.
    last_ts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TopicAcc {
    frequency: u64,
    last_ts: i64,
    /// Phrasing key → its tally; empty for a labelled topic asked without a question.
    phrasings: HashMap<i64, PhrasingAcc>,
}

impl TopicAcc {
    fn new(last_ts: i64) -> Self {
        Self {
            frequency: 0,
            last_ts,
            phrasings: HashMap::new(),
        }
    }

    fn add_phrasing(&mut self, phrasing: i64, tally: PhrasingAcc) {
        self.phrasings
            .entry(phrasing)
            .and_modify(|p| {
                p.count += tally.count;
                p.first_ts = p.first_ts.min(tally.first_ts);
                p.last_ts = p.last_ts.max(tally.last_ts);
            })
            .or_insert(tally);
    }

    fn merge(&mut self, other: Self) {
        self.frequency += other.frequency;
        self.last_ts = self.last_ts.max(other.last_ts);
        for (phrasing, tally) in other.phrasings {
            self.add_phrasing(phrasing, tally);
        }
    }

    /// Most frequent phrasing; ties to the earliest asked, then the smaller key so
    /// the choice never depends on hash order.
    fn canonical_phrasing(&self) -> Option<i64> {
        let rank = |(key, p): (&i64, &PhrasingAcc)| (Reverse(p.count), p.first_ts, *key);
        self.phrasings.iter().map(rank).min().map(|(_, _, key)| key)
    }

    /// Up to `n` phrasings, latest asked first (ties: the later stored first).
    fn recent_phrasings(&self, n: usize) -> Vec<i64> {
        let mut keys: Vec<(i64, i64)> = self
            .phrasings
            .iter()
            .map(|(k, p)| (p.last_ts, *k))
            .collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.into_iter().take(n).map(|(_, k)| k).collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendingState {
    topics: HashMap<i64, TopicAcc>,
}

/// A contender with its registry data resolved, ready for the full ordering.
struct Ranked {
    key: i64,
    frequency: u64,
    last_ts: i64,
    topic: String,
    canonical_text: String,
    assistant: Uuid,
    variations: usize,
    recent: Option<Vec<String>>,
}

impl Ranked {
    /// frequency desc, last_asked desc, topic asc, assistant asc; then the topic key,
    /// so two same-named topics of one assistant still order deterministically.
    fn order(&self, other: &Self) -> Ordering {
        other
            .frequency
            .cmp(&self.frequency)
            .then(other.last_ts.cmp(&self.last_ts))
            .then_with(|| self.topic.cmp(&other.topic))
            .then(self.assistant.cmp(&other.assistant))
            .then(self.key.cmp(&other.key))
    }

    fn into_model(self, previous: Option<&HashMap<i64, u64>>) -> TrendingTopic {
        let growth = previous.and_then(|prev| growth(self.frequency, prev.get(&self.key)));
        TrendingTopic {
            topic: self.topic,
            canonical_text: self.canonical_text,
            frequency: count_i64(self.frequency),
            variation_count: count_i64(self.variations as u64),
            last_asked: Timestamp(self.last_ts),
            growth,
            assistant_id: self.assistant,
            recent_phrasings: self.recent,
        }
    }
}

/// (f − f_prev) / f_prev × 100, 2 decimals; `None` when there was no previous use.
fn growth(frequency: u64, previous: Option<&u64>) -> Option<f64> {
    let prev = *previous.filter(|&&p| p > 0)?;
    // The integer difference is exact; one division, as the contract writes it.
    let diff = i128::from(frequency) - i128::from(prev);
    Some(round_dp((diff as f64 / prev as f64) * 100.0, 2))
}

impl TrendingState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds `count` questions of `topic` asked between `first_ts` and `last_ts`
    /// (one interaction: count 1, first = last = its timestamp; the store's
    /// all-time totals come in the same shape). `phrasing` is `None` for a labelled
    /// topic asked without a question text.
    pub fn add(
        &mut self,
        topic: i64,
        phrasing: Option<i64>,
        count: u64,
        first_ts: i64,
        last_ts: i64,
    ) {
        // A zero count must not make a topic appear.
        if count == 0 {
            return;
        }
        let acc = self
            .topics
            .entry(topic)
            .or_insert_with(|| TopicAcc::new(last_ts));
        acc.frequency += count;
        acc.last_ts = acc.last_ts.max(last_ts);
        if let Some(phrasing) = phrasing {
            acc.add_phrasing(
                phrasing,
                PhrasingAcc {
                    count,
                    first_ts,
                    last_ts,
                },
            );
        }
    }

    pub fn merge(&mut self, other: Self) {
        for (topic, acc) in other.topics {
            match self.topics.get_mut(&topic) {
                Some(mine) => mine.merge(acc),
                None => {
                    self.topics.insert(topic, acc);
                }
            }
        }
    }

    /// Takes out a part merged in before (an erasure). Counts subtract; a
    /// topic or phrasing no longer asked goes. A first or last time that the
    /// part may have set comes from `bounds(topic, phrasing)`: the (first,
    /// last) times of what remains of that phrasing (of the whole topic when
    /// `None`) in this state's bucket, unchanged when it finds none.
    ///
    /// # Errors
    /// Whatever `bounds` returns.
    pub fn subtract<E>(
        &mut self,
        part: &Self,
        mut bounds: impl FnMut(i64, Option<i64>) -> Result<Option<(i64, i64)>, E>,
    ) -> Result<(), E> {
        for (topic, theirs) in &part.topics {
            let Some(acc) = self.topics.get_mut(topic) else {
                continue;
            };
            acc.frequency = acc.frequency.saturating_sub(theirs.frequency);
            if acc.frequency == 0 {
                self.topics.remove(topic);
                continue;
            }
            for (phrasing, gone) in &theirs.phrasings {
                let Some(p) = acc.phrasings.get_mut(phrasing) else {
                    continue;
                };
                p.count = p.count.saturating_sub(gone.count);
                if p.count == 0 {
                    acc.phrasings.remove(phrasing);
                } else if (gone.first_ts <= p.first_ts || gone.last_ts >= p.last_ts)
                    && let Some(found) = bounds(*topic, Some(*phrasing))?
                {
                    (p.first_ts, p.last_ts) = found;
                }
            }
            if theirs.last_ts >= acc.last_ts
                && let Some((_, last)) = bounds(*topic, None)?
            {
                acc.last_ts = last;
            }
        }
        Ok(())
    }

    /// Frequency of every topic seen (all ≥ 1), for diversity.
    pub fn frequencies(&self) -> impl Iterator<Item = u64> + '_ {
        self.topics.values().map(|t| t.frequency)
    }

    /// Topic key → frequency: what `finish` takes as the previous window.
    pub fn frequencies_by_topic(&self) -> HashMap<i64, u64> {
        self.topics.iter().map(|(&k, t)| (k, t.frequency)).collect()
    }

    /// The top `limit` topics. `previous` is the previous window's
    /// [`frequencies_by_topic`](Self::frequencies_by_topic) when a `days` window is
    /// asked, `None` for all time (then `growth` is `None` everywhere).
    ///
    /// # Errors
    /// Whatever the directory returns; only contenders for the top `limit` are looked up.
    #[cfg(test)]
    pub fn finish<D: TopicDirectory>(
        &self,
        limit: usize,
        directory: &D,
        previous: Option<&HashMap<i64, u64>>,
    ) -> Result<Vec<TrendingTopic>, D::Error> {
        self.finish_with_phrasings(limit, directory, previous, None)
    }

    /// As [`finish`](Self::finish); with `recent = Some(n)` each topic also
    /// lists its `n` latest phrasings (looked up for the listed topics only).
    pub fn finish_with_phrasings<D: TopicDirectory>(
        &self,
        limit: usize,
        directory: &D,
        previous: Option<&HashMap<i64, u64>>,
        recent: Option<usize>,
    ) -> Result<Vec<TrendingTopic>, D::Error> {
        let all: Vec<(&i64, &TopicAcc)> = self.topics.iter().collect();
        let contenders = keep_contenders(all, limit, |(_, t)| {
            (Reverse(t.frequency), Reverse(t.last_ts))
        });
        let summaries = contenders
            .into_iter()
            .map(|(&key, acc)| TopicSummary {
                key,
                frequency: acc.frequency,
                last_ts: acc.last_ts,
                canonical: acc.canonical_phrasing(),
                variations: acc.phrasings.len() as u64,
            })
            .collect();
        let recent = recent.map(|n| {
            move |key: i64| {
                Ok(self
                    .topics
                    .get(&key)
                    .map(|acc| acc.recent_phrasings(n))
                    .unwrap_or_default())
            }
        });
        rank_topics(summaries, limit, directory, previous, recent)
    }
}

/// One topic's totals over a window or all time, however they were gathered:
/// all that the ordering and a listed row need besides registry data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSummary {
    pub key: i64,
    pub frequency: u64,
    pub last_ts: i64,
    /// The canonical phrasing (most asked, then first asked earliest, then
    /// the smaller key); `None` for a labelled topic asked without a question.
    pub canonical: Option<i64>,
    /// Distinct phrasings asked.
    pub variations: u64,
}

/// The top `limit` of `topics` in the trending order, with growth against
/// `previous` (a window's previous window; `None` for all time). `topics` may
/// be every topic or only the contenders: those ranked by (frequency,
/// last asked) at or before the `limit`-th, ties included (see
/// [`keep_contenders`]). `recent` gives a listed topic's latest phrasings,
/// latest first, when they are asked for.
///
/// # Errors
/// Whatever the directory or `recent` returns.
pub fn rank_topics<D: TopicDirectory>(
    topics: Vec<TopicSummary>,
    limit: usize,
    directory: &D,
    previous: Option<&HashMap<i64, u64>>,
    recent: Option<impl Fn(i64) -> Result<Vec<i64>, D::Error>>,
) -> Result<Vec<TrendingTopic>, D::Error> {
    let contenders = keep_contenders(topics, limit, |t| {
        (Reverse(t.frequency), Reverse(t.last_ts))
    });
    let mut ranked = contenders
        .iter()
        .map(|t| resolve(t, directory))
        .collect::<Result<Vec<_>, _>>()?;
    ranked.sort_by(Ranked::order);
    ranked.truncate(limit);
    if let Some(recent) = recent {
        for r in &mut ranked {
            let texts = recent(r.key)?
                .into_iter()
                .map(|k| directory.phrasing_text(k))
                .collect::<Result<Vec<_>, _>>()?;
            r.recent = Some(texts);
        }
    }
    Ok(ranked.into_iter().map(|r| r.into_model(previous)).collect())
}

fn resolve<D: TopicDirectory>(t: &TopicSummary, dir: &D) -> Result<Ranked, D::Error> {
    let meta = dir.topic(t.key)?;
    let canonical_text = match t.canonical {
        Some(phrasing) => dir.phrasing_text(phrasing)?,
        None => meta.label.clone().unwrap_or_default(),
    };
    Ok(Ranked {
        key: t.key,
        frequency: t.frequency,
        last_ts: t.last_ts,
        topic: meta.label.unwrap_or_else(|| canonical_text.clone()),
        canonical_text,
        assistant: meta.assistant,
        variations: t.variations as usize,
        recent: None,
    })
}

impl crate::metrics::ApproxBytes for TrendingState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>()
            + super::table_bytes(&self.topics)
            + self
                .topics
                .values()
                .map(|t| super::table_bytes(&t.phrasings))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixture::MapDirectory;
    use proptest::prelude::*;

    #[test]
    fn recent_phrasings_are_the_latest_asked_first_and_survive_a_merge() {
        // Phrasing 1 at ts 10 and 40, phrasing 2 at 30, phrasing 3 at 20: 1, 2, 3.
        let mut a = fold(&[(7, Some(1), 10), (7, Some(2), 30)]);
        let b = fold(&[(7, Some(3), 20), (7, Some(1), 40)]);
        a.merge(b);
        let rows = a
            .finish_with_phrasings(10, &directory(), None, Some(2))
            .unwrap();
        assert_eq!(
            rows[0].recent_phrasings,
            Some(vec![
                "How do I reset my password?".to_string(),
                "reset password".to_string()
            ])
        );
        let plain = a.finish(10, &directory(), None).unwrap();
        assert_eq!(plain[0].recent_phrasings, None);
    }

    /// (topic, phrasing, ts) per interaction.
    fn fold(events: &[(i64, Option<i64>, i64)]) -> TrendingState {
        let mut s = TrendingState::new();
        for &(topic, phrasing, ts) in events {
            s.add(topic, phrasing, 1, ts, ts);
        }
        s
    }

    fn directory() -> MapDirectory {
        let mut d = MapDirectory::default();
        for (k, text) in [
            (1, "How do I reset my password?"),
            (2, "reset password"),
            (3, "What is the refund policy?"),
            (4, "refund?"),
        ] {
            d.phrasings.insert(k, text.to_owned());
        }
        d
    }

    fn summary(rows: &[TrendingTopic]) -> Vec<(&str, &str, i64, i64, i64)> {
        rows.iter()
            .map(|r| {
                let t = (r.topic.as_str(), r.canonical_text.as_str());
                (t.0, t.1, r.frequency, r.variation_count, r.last_asked.0)
            })
            .collect()
    }

    #[test]
    fn empty_state_has_no_topics() {
        let got = TrendingState::new().finish(10, &directory(), None).unwrap();
        assert!(got.is_empty());
        assert_eq!(TrendingState::new().frequencies().count(), 0);
    }

    #[test]
    fn canonical_text_is_the_most_frequent_phrasing() {
        // Topic 10: phrasing 2 asked twice, phrasing 1 once → canonical "reset password".
        let s = fold(&[(10, Some(1), 100), (10, Some(2), 200), (10, Some(2), 300)]);
        let got = s.finish(10, &directory(), None).unwrap();
        assert_eq!(
            summary(&got),
            vec![("reset password", "reset password", 3, 2, 300)]
        );
        assert_eq!(got[0].growth, None);
    }

    #[test]
    fn canonical_ties_go_to_the_earliest_then_the_smaller_key() {
        // Phrasings 2 and 1 once each; 2 was asked first (ts 50) → 2 wins.
        let s = fold(&[(10, Some(1), 100), (10, Some(2), 50)]);
        let got = s.finish(10, &directory(), None).unwrap();
        assert_eq!(got[0].canonical_text, "reset password");
        // Same count and same first_ts: smaller key 1 wins.
        let s = fold(&[(10, Some(2), 100), (10, Some(1), 100)]);
        let got = s.finish(10, &directory(), None).unwrap();
        assert_eq!(got[0].canonical_text, "How do I reset my password?");
    }

    #[test]
    fn a_label_names_the_topic_but_not_the_canonical_text() {
        let mut d = directory();
        d.labels.insert(10, "Passwords".to_owned());
        let s = fold(&[(10, Some(1), 100)]);
        let got = s.finish(10, &d, None).unwrap();
        assert_eq!(
            summary(&got),
            vec![("Passwords", "How do I reset my password?", 1, 1, 100)]
        );
    }

    #[test]
    fn a_labelled_topic_without_questions_uses_its_label() {
        let mut d = directory();
        d.labels.insert(10, "Billing".to_owned());
        let s = fold(&[(10, None, 100), (10, None, 90)]);
        let got = s.finish(10, &d, None).unwrap();
        assert_eq!(summary(&got), vec![("Billing", "Billing", 2, 0, 100)]);
    }

    #[test]
    fn orders_by_frequency_then_recency_then_topic_then_assistant() {
        let mut d = directory();
        for (topic, label, assistant) in [(20, "b", 0), (21, "a", 0), (22, "a", 9), (23, "a", 5)] {
            d.labels.insert(topic, label.to_owned());
            d.topic_assistants.insert(topic, assistant);
        }
        let s = fold(&[
            // 24: frequency 2 → first, although its questions are the oldest.
            (24, Some(3), 1),
            (24, Some(3), 2),
            // 25: frequency 1, last 500 → before every frequency-1 topic at ts 100.
            (25, Some(4), 500),
            // 20..23: frequency 1 at ts 100: the "a"s before "b"; the "a"s by assistant
            // uuid …00 (21), …05 (23), …09 (22); their canonical texts tell them apart.
            (20, None, 100),
            (21, Some(1), 100),
            (22, Some(2), 100),
            (23, Some(4), 100),
        ]);
        let got = s.finish(10, &d, None).unwrap();
        let rows: Vec<_> = got
            .iter()
            .map(|r| (r.topic.as_str(), r.canonical_text.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("What is the refund policy?", "What is the refund policy?"),
                ("refund?", "refund?"),
                ("a", "How do I reset my password?"),
                ("a", "refund?"),
                ("a", "reset password"),
                ("b", "b"),
            ]
        );
    }

    #[test]
    fn identical_topic_and_assistant_tie_by_topic_key() {
        let mut d = directory();
        d.labels.insert(61, "same".to_owned());
        d.labels.insert(60, "same".to_owned());
        // Same frequency, time, label and assistant: key 60 before 61.
        let s = fold(&[(61, Some(2), 7), (60, Some(1), 7)]);
        let got = s.finish(10, &d, None).unwrap();
        let canonical: Vec<_> = got.iter().map(|r| r.canonical_text.as_str()).collect();
        assert_eq!(canonical, ["How do I reset my password?", "reset password"]);
    }

    #[test]
    fn limit_cuts_after_ordering_and_skips_lookups_of_hopeless_topics() {
        let d = directory();
        // Topic 30: 3 questions; 31: 2; 32 and 33: 1 each.
        let s = fold(&[
            (30, Some(1), 1),
            (30, Some(1), 2),
            (30, Some(1), 3),
            (31, Some(3), 1),
            (31, Some(3), 2),
            (32, Some(4), 9),
            (33, Some(2), 9),
        ]);
        let got = s.finish(2, &d, None).unwrap();
        assert_eq!(
            summary(&got),
            vec![
                (
                    "How do I reset my password?",
                    "How do I reset my password?",
                    3,
                    1,
                    3
                ),
                (
                    "What is the refund policy?",
                    "What is the refund policy?",
                    2,
                    1,
                    2
                ),
            ]
        );
        let mut asked = d.asked_meta.borrow().clone();
        asked.sort_unstable();
        assert_eq!(asked, vec![30, 31]);
    }

    #[test]
    fn limit_inside_a_tie_uses_the_topic_text() {
        let d = directory();
        // Both frequency 1 at ts 9: "refund?" < "reset password" ('f' < 's'), so the
        // topic text decides, and both had to be looked up to know it.
        let s = fold(&[(32, Some(4), 9), (33, Some(2), 9)]);
        let got = s.finish(1, &d, None).unwrap();
        assert_eq!(got[0].topic, "refund?");
        assert_eq!(d.asked_meta.borrow().len(), 2);
    }

    #[test]
    fn growth_against_the_previous_window() {
        let s = fold(&[
            (40, Some(1), 1),
            (40, Some(1), 2),
            (40, Some(1), 3),
            (41, Some(2), 1),
            (42, Some(3), 1),
        ]);
        // 40: f = 3, prev 2 → (3 − 2)/2 × 100 = 50.0.
        // 41: f = 1, prev 3 → (1 − 3)/3 × 100 = −66.666… → −66.67.
        // 42: no previous count → None; 43 only in the previous window is not listed.
        // 41 and 42 tie on frequency and time; 42's text "What is…" sorts before
        // 41's "reset password" (byte order: 'W' < 'r').
        let prev = HashMap::from([(40, 2), (41, 3), (43, 7)]);
        let got = s.finish(10, &directory(), Some(&prev)).unwrap();
        let growth: Vec<_> = got.iter().map(|r| (r.frequency, r.growth)).collect();
        assert_eq!(growth, vec![(3, Some(50.0)), (1, None), (1, Some(-66.67))]);
    }

    #[test]
    fn growth_is_none_for_a_zero_previous_frequency() {
        assert_eq!(growth(5, Some(&0)), None);
        assert_eq!(growth(5, None), None);
        // (1 − 8)/8 × 100 = −87.5 exactly.
        assert_eq!(growth(1, Some(&8)), Some(-87.5));
    }

    #[test]
    fn aggregated_adds_equal_single_interactions() {
        let mut bulk = TrendingState::new();
        bulk.add(50, Some(1), 2, 10, 20);
        bulk.add(50, Some(2), 1, 5, 5);
        bulk.add(50, Some(3), 0, 1, 99);
        let single = fold(&[(50, Some(1), 10), (50, Some(1), 20), (50, Some(2), 5)]);
        assert_eq!(bulk, single);
    }

    #[test]
    fn exposes_frequencies_for_diversity_and_growth() {
        let s = fold(&[(1, Some(1), 1), (1, Some(2), 2), (2, None, 3)]);
        let mut f: Vec<u64> = s.frequencies().collect();
        f.sort_unstable();
        assert_eq!(f, vec![1, 2]);
        assert_eq!(s.frequencies_by_topic(), HashMap::from([(1, 2), (2, 1)]));
    }

    fn arb_events() -> impl Strategy<Value = Vec<(i64, Option<i64>, i64)>> {
        proptest::collection::vec((0i64..6, proptest::option::of(1i64..5), 0i64..20), 0..60)
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(events in arb_events(), cut in 0usize..61, limit in 1usize..8) {
            let cut = cut.min(events.len());
            let mut left = fold(&events[..cut]);
            left.merge(fold(&events[cut..]));
            let whole = fold(&events);
            prop_assert_eq!(&left, &whole);
            let mut d = directory();
            d.labels.insert(0, "labelled".to_owned());
            d.topic_assistants.insert(1, 3);
            let prev = HashMap::from([(1, 2), (2, 5)]);
            prop_assert_eq!(
                left.finish(limit, &d, Some(&prev)).unwrap(),
                whole.finish(limit, &d, Some(&prev)).unwrap()
            );
        }

        #[test]
        fn limit_takes_a_prefix_of_the_full_order(events in arb_events(), limit in 1usize..8) {
            let s = fold(&events);
            let d = directory();
            let full = s.finish(usize::MAX, &d, None).unwrap();
            let cut = s.finish(limit, &d, None).unwrap();
            prop_assert_eq!(&full[..limit.min(full.len())], &cut[..]);
        }
    }
}
