//! The dashboard's time series as an analytics read: the bucketing math is in
//! `crate::metrics::timeseries`, the rows come from the store.

use uuid::Uuid;

use super::{Analytics, MetricError};
use crate::metrics::timeseries::Timeseries;
use crate::store::Window;
use crate::time::{MICROS_PER_HOUR, MICROS_PER_SECOND, Timestamp};

impl Analytics {
    /// The last `hours` in buckets of `bucket_minutes`, under the metric
    /// timeout like every metric.
    pub async fn timeseries(
        &self,
        hours: i64,
        bucket_minutes: i64,
        assistant: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Timeseries, MetricError> {
        let w = Window::last(now.0, hours * MICROS_PER_HOUR, assistant);
        let bucket_us = bucket_minutes * 60 * MICROS_PER_SECOND;
        // Always the raw scan, whatever the read path: buckets are finer than
        // the hourly rollups, and the percentiles must be exact.
        self.run_named("timeseries", move |view| {
            view.timeseries(&w, bucket_us, hours)
        })
        .await
    }
}
