//! Connector sync rates: per connector, syncs by status and their mean duration;
//! every registered connector is listed, with zeros when it had no sync.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::round::{SECONDS, percentage, round_dp, scaled_mean};
use super::{ConnectorDirectory, ConnectorMeta, count_i64};
use crate::metrics::models::ConnectorSyncRate;

/// Outcome of one sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncStatus {
    Success,
    /// Counts in the total only.
    Partial,
    Failure,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SyncAcc {
    total: u64,
    successful: u64,
    failed: u64,
    partial: u64,
    duration_us: i128,
    /// Syncs that reported a duration.
    durations: u64,
}

impl SyncAcc {
    fn merge(&mut self, other: &Self) {
        self.total += other.total;
        self.successful += other.successful;
        self.failed += other.failed;
        self.partial += other.partial;
        self.duration_us += other.duration_us;
        self.durations += other.durations;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    connectors: HashMap<i64, SyncAcc>,
}

impl SyncState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one sync whose `started_at` is in the window.
    pub fn add(&mut self, connector: i64, status: SyncStatus, duration_us: Option<i64>) {
        let acc = self.connectors.entry(connector).or_default();
        acc.total += 1;
        match status {
            SyncStatus::Success => acc.successful += 1,
            SyncStatus::Failure => acc.failed += 1,
            SyncStatus::Partial => acc.partial += 1,
        }
        if let Some(us) = duration_us {
            acc.durations += 1;
            acc.duration_us += i128::from(us);
        }
    }

    pub fn merge(&mut self, other: Self) {
        for (connector, acc) in other.connectors {
            self.connectors.entry(connector).or_default().merge(&acc);
        }
    }

    /// Every registered connector plus every connector with a sync, by name
    /// (uuid text when unregistered), then uuid.
    ///
    /// # Errors
    /// Whatever the directory returns.
    pub fn finish<D: ConnectorDirectory>(
        &self,
        directory: &D,
    ) -> Result<Vec<ConnectorSyncRate>, D::Error> {
        let mut keys: HashSet<i64> = directory.registered_connectors()?.into_iter().collect();
        keys.extend(self.connectors.keys().copied());
        let mut rows = keys
            .into_iter()
            .map(|key| {
                let acc = self.connectors.get(&key).copied().unwrap_or_default();
                Ok(row(directory.connector(key)?, &acc))
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        rows.sort_by(|a, b| {
            a.connector_name
                .cmp(&b.connector_name)
                .then(a.connector_id.cmp(&b.connector_id))
        });
        Ok(rows)
    }
}

fn row(meta: ConnectorMeta, acc: &SyncAcc) -> ConnectorSyncRate {
    ConnectorSyncRate {
        connector_name: meta.name.unwrap_or_else(|| meta.uuid.to_string()),
        connector_id: meta.uuid,
        success_rate: percentage(acc.successful, acc.total),
        total_syncs: count_i64(acc.total),
        successful_syncs: count_i64(acc.successful),
        failed_syncs: count_i64(acc.failed),
        avg_sync_duration: scaled_mean(acc.duration_us, acc.durations, SECONDS)
            .map(|s| round_dp(s, 2)),
    }
}

impl crate::metrics::ApproxBytes for SyncState {
    fn approx_bytes(&self) -> usize {
        size_of::<Self>() + super::table_bytes(&self.connectors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixture::{MapDirectory, uuid_of};
    use proptest::prelude::*;

    fn fold(events: &[(i64, SyncStatus, Option<i64>)]) -> SyncState {
        let mut s = SyncState::new();
        for &(c, status, d) in events {
            s.add(c, status, d);
        }
        s
    }

    fn directory(registered: &[(i64, &str)]) -> MapDirectory {
        let mut d = MapDirectory::default();
        for &(k, name) in registered {
            d.names.insert(k, name.to_owned());
            d.registered_connectors.push(k);
        }
        d
    }

    use SyncStatus::{Failure, Partial, Success};

    #[test]
    fn nothing_registered_and_no_syncs_gives_no_rows() {
        assert!(SyncState::new().finish(&directory(&[])).unwrap().is_empty());
    }

    #[test]
    fn counts_by_status_with_partial_in_the_total_only() {
        // 3 syncs: success 12.5 s, partial 10 s, failure without duration.
        // success_rate 1/3 × 100 = 33.33; mean duration (12.5 + 10) / 2 = 11.25 s.
        let s = fold(&[
            (1, Success, Some(12_500_000)),
            (1, Partial, Some(10_000_000)),
            (1, Failure, None),
        ]);
        let got = s.finish(&directory(&[(1, "Confluence")])).unwrap();
        assert_eq!(
            got,
            vec![ConnectorSyncRate {
                connector_id: uuid_of(1),
                connector_name: "Confluence".to_owned(),
                success_rate: 33.33,
                total_syncs: 3,
                successful_syncs: 1,
                failed_syncs: 1,
                avg_sync_duration: Some(11.25),
            }]
        );
    }

    #[test]
    fn registered_connectors_without_syncs_show_zeros() {
        let got = SyncState::new()
            .finish(&directory(&[(2, "Drive")]))
            .unwrap();
        assert_eq!(
            got,
            vec![ConnectorSyncRate {
                connector_id: uuid_of(2),
                connector_name: "Drive".to_owned(),
                success_rate: 0.0,
                total_syncs: 0,
                successful_syncs: 0,
                failed_syncs: 0,
                avg_sync_duration: None,
            }]
        );
    }

    #[test]
    fn unregistered_connectors_with_syncs_are_named_by_uuid_and_ordered_by_name() {
        // Registered: 3 "Slack", 2 "Drive", 4 "Drive" (same name → uuid order).
        // Unregistered 9 synced: its uuid text "00000000-…09" sorts before letters.
        let s = fold(&[(9, Success, None)]);
        let got = s
            .finish(&directory(&[(3, "Slack"), (4, "Drive"), (2, "Drive")]))
            .unwrap();
        let ids: Vec<_> = got.iter().map(|r| r.connector_id).collect();
        assert_eq!(ids, [9, 2, 4, 3].map(uuid_of));
        assert_eq!(
            got[0].connector_name,
            "00000000-0000-0000-0000-000000000009"
        );
        assert_eq!(got[0].success_rate, 100.0);
        assert_eq!(got[0].avg_sync_duration, None);
    }

    #[test]
    fn mean_duration_rounds_to_two_decimals_ties_to_even() {
        // (0.125 + 0.125) / 2 = 0.125 s exactly: 2 dp tie → even 0.12.
        let s = fold(&[(1, Success, Some(125_000)), (1, Success, Some(125_000))]);
        let got = s.finish(&directory(&[])).unwrap();
        assert_eq!(got[0].avg_sync_duration, Some(0.12));
        // 2 of 3 successful: 66.666… → 66.67.
        let s = fold(&[(1, Success, None), (1, Success, None), (1, Partial, None)]);
        assert_eq!(s.finish(&directory(&[])).unwrap()[0].success_rate, 66.67);
    }

    fn arb_status() -> impl Strategy<Value = SyncStatus> {
        prop_oneof![Just(Success), Just(Partial), Just(Failure)]
    }

    proptest! {
        #[test]
        fn split_and_merge_equals_one_fold(
            events in proptest::collection::vec(
                (0i64..5, arb_status(), proptest::option::of(0i64..100_000_000)),
                0..50,
            ),
            cut in 0usize..51,
        ) {
            let cut = cut.min(events.len());
            let mut left = fold(&events[..cut]);
            left.merge(fold(&events[cut..]));
            let whole = fold(&events);
            prop_assert_eq!(&left, &whole);
            let d = directory(&[(1, "same"), (2, "same"), (7, "never synced")]);
            prop_assert_eq!(left.finish(&d).unwrap(), whole.finish(&d).unwrap());
        }
    }
}
