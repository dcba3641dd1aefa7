//! A window's topics as flat arrays sorted by integer keys: what windowed
//! trending and diversity read on the rollups path. The whole buckets of a
//! window are merged once into one such value (and kept by the merge cache);
//! a request then merges it with the window's partial hours in one linear
//! pass, without hash maps and without copying it.

use std::cmp::Reverse;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{PhrasingAcc, TopicAcc, TopicSummary, TrendingState};
use crate::metrics::diversity::Totals;
use crate::metrics::keep_contenders;

/// One topic's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TopicRow {
    key: i64,
    frequency: u64,
    last_ts: i64,
}

/// One phrasing's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PhrasingRow {
    topic: i64,
    key: i64,
    count: u64,
    first_ts: i64,
    last_ts: i64,
}

/// Topics and phrasings of a window; sorted by key with one row per key once
/// [`settle`](Self::settle)d. Stored in rollups as a [`TrendingState`], so it
/// reads the rows the writer keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TrendingState", into = "TrendingState")]
pub struct WindowTopics {
    topics: Vec<TopicRow>,
    phrasings: Vec<PhrasingRow>,
}

impl WindowTopics {
    /// As [`TrendingState::add`]; call [`settle`](Self::settle) before reading.
    pub fn add(&mut self, topic: i64, phrasing: Option<i64>, count: u64, first: i64, last: i64) {
        if count == 0 {
            return;
        }
        self.topics.push(TopicRow {
            key: topic,
            frequency: count,
            last_ts: last,
        });
        if let Some(key) = phrasing {
            self.phrasings.push(PhrasingRow {
                topic,
                key,
                count,
                first_ts: first,
                last_ts: last,
            });
        }
    }

    /// Adds another window part's rows; call [`settle`](Self::settle) before reading.
    pub fn append(&mut self, other: Self) {
        self.topics.extend(other.topics);
        self.phrasings.extend(other.phrasings);
    }

    /// As [`append`](Self::append), from rows kept elsewhere.
    pub fn append_from(&mut self, other: &Self) {
        self.topics.extend_from_slice(&other.topics);
        self.phrasings.extend_from_slice(&other.phrasings);
    }

    /// Sorts the rows and folds those of one key together.
    pub fn settle(&mut self) {
        self.topics.sort_unstable_by_key(|t| t.key);
        self.topics.dedup_by(|next, kept| {
            let same = next.key == kept.key;
            if same {
                kept.frequency += next.frequency;
                kept.last_ts = kept.last_ts.max(next.last_ts);
            }
            same
        });
        self.phrasings.sort_unstable_by_key(|p| (p.topic, p.key));
        self.phrasings.dedup_by(|next, kept| {
            let same = (next.topic, next.key) == (kept.topic, kept.key);
            if same {
                fold_phrasing(kept, next);
            }
            same
        });
    }

    /// The phrasings of `topic` (settled).
    fn phrasings_of(&self, topic: i64) -> &[PhrasingRow] {
        let start = self.phrasings.partition_point(|p| p.topic < topic);
        let end = start + self.phrasings[start..].partition_point(|p| p.topic == topic);
        &self.phrasings[start..end]
    }

    fn frequency_of(&self, topic: i64) -> u64 {
        self.topics
            .binary_search_by_key(&topic, |t| t.key)
            .map_or(0, |i| self.topics[i].frequency)
    }
}

fn fold_phrasing(into: &mut PhrasingRow, other: &PhrasingRow) {
    into.count += other.count;
    into.first_ts = into.first_ts.min(other.first_ts);
    into.last_ts = into.last_ts.max(other.last_ts);
}

/// A window read as parts: the merged whole buckets (shared, settled) and the
/// partial hours (settled). Nothing is copied to join them.
pub struct WindowParts<'a> {
    pub whole: Option<&'a WindowTopics>,
    pub partial: &'a WindowTopics,
}

impl WindowParts<'_> {
    /// Every topic's totals in key order: a merge-join of the two parts.
    fn topics(&self) -> impl Iterator<Item = TopicRow> + '_ {
        let whole = self.whole.map_or(&[][..], |w| &w.topics[..]);
        merge_join(
            whole,
            &self.partial.topics,
            |t| t.key,
            |a, b| TopicRow {
                key: a.key,
                frequency: a.frequency + b.frequency,
                last_ts: a.last_ts.max(b.last_ts),
            },
        )
    }

    /// Diversity's totals over the window's topics.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for t in self.topics() {
            totals.add(t.frequency);
        }
        totals
    }

    /// Frequencies of `keys` in the window (0 when not asked in it).
    pub fn frequencies_of(&self, keys: impl IntoIterator<Item = i64>) -> HashMap<i64, u64> {
        keys.into_iter()
            .map(|k| {
                let whole = self.whole.map_or(0, |w| w.frequency_of(k));
                (k, whole + self.partial.frequency_of(k))
            })
            .filter(|&(_, f)| f > 0)
            .collect()
    }

    /// The contenders for the top `limit` (see [`keep_contenders`]), with
    /// their canonical phrasing and variations.
    pub fn contenders(&self, limit: usize) -> Vec<TopicSummary> {
        let all: Vec<TopicRow> = self.topics().collect();
        keep_contenders(all, limit, |t| (Reverse(t.frequency), Reverse(t.last_ts)))
            .into_iter()
            .map(|t| {
                let phrasings = self.phrasings_of(t.key);
                TopicSummary {
                    key: t.key,
                    frequency: t.frequency,
                    last_ts: t.last_ts,
                    canonical: phrasings
                        .iter()
                        .min_by_key(|p| (Reverse(p.count), p.first_ts, p.key))
                        .map(|p| p.key),
                    variations: phrasings.len() as u64,
                }
            })
            .collect()
    }

    /// A topic's phrasings with the two parts' rows of one phrasing folded.
    fn phrasings_of(&self, topic: i64) -> Vec<PhrasingRow> {
        let whole = self.whole.map_or(&[][..], |w| w.phrasings_of(topic));
        merge_join(
            whole,
            self.partial.phrasings_of(topic),
            |p| p.key,
            |a, b| {
                let mut a = *a;
                fold_phrasing(&mut a, b);
                a
            },
        )
        .collect()
    }

    /// A topic's `n` latest phrasings, latest first (ties: the larger key).
    pub fn recent_phrasings(&self, topic: i64, n: usize) -> Vec<i64> {
        let mut keys: Vec<(i64, i64)> = self
            .phrasings_of(topic)
            .iter()
            .map(|p| (p.last_ts, p.key))
            .collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.into_iter().take(n).map(|(_, k)| k).collect()
    }
}

/// Merges two slices sorted by a unique key, joining rows of one key with `join`.
fn merge_join<'a, T: Copy, K: Ord>(
    a: &'a [T],
    b: &'a [T],
    key: impl Fn(&T) -> K + 'a,
    join: impl Fn(&T, &T) -> T + 'a,
) -> impl Iterator<Item = T> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || match (a.get(i), b.get(j)) {
        (Some(x), Some(y)) => Some(match key(x).cmp(&key(y)) {
            std::cmp::Ordering::Less => {
                i += 1;
                *x
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                *y
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                join(x, y)
            }
        }),
        (Some(x), None) => {
            i += 1;
            Some(*x)
        }
        (None, Some(y)) => {
            j += 1;
            Some(*y)
        }
        (None, None) => None,
    })
}

impl From<TrendingState> for WindowTopics {
    fn from(state: TrendingState) -> Self {
        let mut out = WindowTopics {
            topics: Vec::with_capacity(state.topics.len()),
            phrasings: Vec::new(),
        };
        for (key, acc) in state.topics {
            out.topics.push(TopicRow {
                key,
                frequency: acc.frequency,
                last_ts: acc.last_ts,
            });
            out.phrasings
                .extend(acc.phrasings.into_iter().map(|(p, tally)| PhrasingRow {
                    topic: key,
                    key: p,
                    count: tally.count,
                    first_ts: tally.first_ts,
                    last_ts: tally.last_ts,
                }));
        }
        out.settle();
        out
    }
}

impl From<WindowTopics> for TrendingState {
    fn from(window: WindowTopics) -> Self {
        let mut topics: HashMap<i64, TopicAcc> = window
            .topics
            .into_iter()
            .map(|t| {
                let acc = TopicAcc {
                    frequency: t.frequency,
                    last_ts: t.last_ts,
                    phrasings: HashMap::new(),
                };
                (t.key, acc)
            })
            .collect();
        for p in window.phrasings {
            if let Some(acc) = topics.get_mut(&p.topic) {
                let tally = PhrasingAcc {
                    count: p.count,
                    first_ts: p.first_ts,
                    last_ts: p.last_ts,
                };
                acc.add_phrasing(p.key, tally);
            }
        }
        TrendingState { topics }
    }
}

impl crate::metrics::ApproxBytes for WindowTopics {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>()
            + crate::metrics::vec_bytes(&self.topics, self.topics.capacity())
            + crate::metrics::vec_bytes(&self.phrasings, self.phrasings.capacity())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use proptest::prelude::*;

    use super::*;
    use crate::metrics::diversity::diversity;
    use crate::metrics::fixture::MapDirectory;
    use crate::metrics::trending::rank_topics;

    fn directory() -> MapDirectory {
        let mut d = MapDirectory::default();
        for k in 1..6 {
            d.phrasings.insert(k, format!("phrasing {k}"));
        }
        d.labels.insert(0, "labelled".to_owned());
        d
    }

    proptest! {
        #[test]
        fn two_settled_parts_answer_what_one_state_answers(
            events in proptest::collection::vec((0i64..8, proptest::option::of(1i64..6), 0i64..30), 0..80),
            cut in 0usize..81,
            limit in 1usize..6,
        ) {
            let cut = cut.min(events.len());
            let (mut whole, mut partial, mut state) =
                (WindowTopics::default(), WindowTopics::default(), TrendingState::new());
            for (i, &(topic, phrasing, ts)) in events.iter().enumerate() {
                let part = if i < cut { &mut whole } else { &mut partial };
                part.add(topic, phrasing, 1, ts, ts);
                state.add(topic, phrasing, 1, ts, ts);
            }
            whole.settle();
            partial.settle();
            let parts = WindowParts { whole: Some(&whole), partial: &partial };
            prop_assert_eq!(parts.totals().finish(), diversity(state.frequencies()));
            let d = directory();
            let recent = |topic: i64| Ok::<_, Infallible>(parts.recent_phrasings(topic, 3));
            let got = rank_topics(parts.contenders(limit), limit, &d, None, Some(recent)).unwrap();
            let want = state.finish_with_phrasings(limit, &d, None, Some(3)).unwrap();
            prop_assert_eq!(got, want);
            // Through the rollup encoding and back, nothing changes.
            prop_assert_eq!(WindowTopics::from(TrendingState::from(whole.clone())), whole);
        }
    }
}
