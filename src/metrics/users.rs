//! Top users: per user key, tokens, interactions and latest activity in the window.

use std::cmp::{Ordering, Reverse};

use serde::{Deserialize, Serialize};

use super::{KeyMap, UserDirectory, UserMeta, count_i64, keep_contenders, sum_i64};
use crate::metrics::models::UserStat;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct UserAcc {
    /// Σ (input + output) tokens.
    tokens: i128,
    interactions: u64,
    last_ts: i64,
}

impl UserAcc {
    fn merge(&mut self, other: Self) {
        self.tokens += other.tokens;
        self.interactions += other.interactions;
        self.last_ts = self.last_ts.max(other.last_ts);
    }

    /// The numeric part of the order: tokens desc, then interactions desc.
    fn rank(&self) -> (Reverse<i128>, Reverse<u64>) {
        (Reverse(self.tokens), Reverse(self.interactions))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersState {
    users: KeyMap<UserAcc>,
}

impl UsersState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one interaction that names a user.
    pub fn add(&mut self, user: i64, input_tokens: i64, output_tokens: i64, ts: i64) {
        let tokens = i128::from(input_tokens) + i128::from(output_tokens);
        let acc = UserAcc {
            tokens,
            interactions: 1,
            last_ts: ts,
        };
        self.merge_user(user, acc);
    }

    /// Drops a user's tallies (an erasure); true when there were some.
    pub fn forget(&mut self, user: i64) -> bool {
        self.users.remove(&user).is_some()
    }

    pub fn merge(&mut self, other: Self) {
        for (user, acc) in other.users {
            self.merge_user(user, acc);
        }
    }

    fn merge_user(&mut self, user: i64, acc: UserAcc) {
        self.users
            .entry(user)
            .and_modify(|mine| mine.merge(acc))
            .or_insert(acc);
    }

    /// The top `limit` users: tokens desc, interactions desc, user id asc. Only
    /// users that can make the cut are looked up.
    ///
    /// # Errors
    /// Whatever the directory returns.
    pub fn finish<D: UserDirectory>(
        &self,
        limit: usize,
        directory: &D,
    ) -> Result<Vec<UserStat>, D::Error> {
        let all: Vec<(i64, UserAcc)> = self.users.iter().map(|(&k, &a)| (k, a)).collect();
        let contenders = keep_contenders(all, limit, |(_, acc)| acc.rank());
        let mut rows = contenders
            .into_iter()
            .map(|(key, acc)| Ok((directory.user(key)?, acc)))
            .collect::<Result<Vec<_>, D::Error>>()?;
        rows.sort_by(order);
        rows.truncate(limit);
        Ok(rows.into_iter().map(|(meta, acc)| row(meta, acc)).collect())
    }
}

fn order(a: &(UserMeta, UserAcc), b: &(UserMeta, UserAcc)) -> Ordering {
    a.1.rank()
        .cmp(&b.1.rank())
        .then_with(|| a.0.id.cmp(&b.0.id))
}

fn row(meta: UserMeta, acc: UserAcc) -> UserStat {
    UserStat {
        user_id: meta.id,
        email: meta.email.unwrap_or_default(),
        full_name: meta.full_name.unwrap_or_default(),
        total_tokens: sum_i64(acc.tokens),
        interaction_count: count_i64(acc.interactions),
        last_active: Some(Timestamp(acc.last_ts)),
    }
}

impl crate::metrics::ApproxBytes for UsersState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>() + super::table_bytes(&self.users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixture::{MapDirectory, uuid_of};
    use proptest::prelude::*;

    /// (user, input, output, ts) per interaction.
    fn fold(events: &[(i64, i64, i64, i64)]) -> UsersState {
        let mut s = UsersState::new();
        for &(u, i, o, ts) in events {
            s.add(u, i, o, ts);
        }
        s
    }

    fn ids(rows: &[UserStat]) -> Vec<String> {
        rows.iter().map(|r| r.user_id.clone()).collect()
    }

    fn id_of(key: i64) -> String {
        uuid_of(key).to_string()
    }

    #[test]
    fn empty_window_has_no_users() {
        let d = MapDirectory::default();
        assert!(UsersState::new().finish(10, &d).unwrap().is_empty());
    }

    #[test]
    fn sums_tokens_counts_and_keeps_the_latest_time() {
        let mut d = MapDirectory::default();
        d.emails.insert(1, "ada@example.com".to_owned());
        d.names.insert(1, "Ada".to_owned());
        // (100 + 20) + (5 + 0) = 125 tokens over 2 interactions; latest ts 900.
        let s = fold(&[(1, 100, 20, 900), (1, 5, 0, 300)]);
        assert_eq!(
            s.finish(10, &d).unwrap(),
            vec![UserStat {
                user_id: id_of(1),
                email: "ada@example.com".to_owned(),
                full_name: "Ada".to_owned(),
                total_tokens: 125,
                interaction_count: 2,
                last_active: Some(Timestamp(900)),
            }]
        );
    }

    #[test]
    fn unknown_user_has_empty_email_and_name() {
        let got = fold(&[(3, 1, 1, 1)])
            .finish(10, &MapDirectory::default())
            .unwrap();
        assert_eq!((got[0].email.as_str(), got[0].full_name.as_str()), ("", ""));
    }

    #[test]
    fn orders_by_tokens_then_interactions_then_uuid() {
        // 1: 100 tokens in 1. 2: 100 tokens in 2 → before 1. 3: 500 → first.
        // 5 and 4: 10 tokens in 1 each → uuid …04 before …05.
        let s = fold(&[
            (1, 100, 0, 1),
            (2, 50, 0, 1),
            (2, 0, 50, 1),
            (3, 250, 250, 1),
            (5, 10, 0, 1),
            (4, 0, 10, 1),
        ]);
        let got = s.finish(10, &MapDirectory::default()).unwrap();
        assert_eq!(ids(&got), [3, 2, 1, 4, 5].map(id_of));
    }

    #[test]
    fn limit_looks_up_only_contenders() {
        let d = MapDirectory::default();
        // Limit 2: 3 (500) and then a tie at 10 tokens/1 interaction between 4 and 5;
        // 6 (1 token) cannot make it and is never looked up.
        let s = fold(&[(3, 500, 0, 1), (5, 10, 0, 1), (4, 10, 0, 1), (6, 1, 0, 1)]);
        let got = s.finish(2, &d).unwrap();
        assert_eq!(ids(&got), [3, 4].map(id_of));
        let mut asked = d.asked_meta.borrow().clone();
        asked.sort_unstable();
        assert_eq!(asked, vec![3, 4, 5]);
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            events in proptest::collection::vec((0i64..6, 0i64..50, 0i64..50, 0i64..1000), 0..50),
            cut in 0usize..51,
            limit in 1usize..7,
        ) {
            let cut = cut.min(events.len());
            let mut left = fold(&events[..cut]);
            left.merge(fold(&events[cut..]));
            let whole = fold(&events);
            prop_assert_eq!(&left, &whole);
            let d = MapDirectory::default();
            prop_assert_eq!(left.finish(limit, &d).unwrap(), whole.finish(limit, &d).unwrap());
            let full = whole.finish(usize::MAX, &d).unwrap();
            let cut_rows = whole.finish(limit, &d).unwrap();
            prop_assert_eq!(&full[..limit.min(full.len())], &cut_rows[..]);
        }
    }
}
