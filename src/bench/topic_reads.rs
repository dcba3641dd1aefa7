//! Timed reads of the question analytics over HTTP: trending (limit 50) and
//! diversity, all time (what `/advanced` and the live feed read) and over the
//! last 7 days. These endpoints have no answer cache, so every call
//! computes; a windowed call merges the window's whole past buckets once per
//! hour and keeps that merge (the merge cache every reader shares).

use super::{pct, timed_get};

/// The reads, as `(name, path and query)`.
const READS: [(&str, &str); 4] = [
    ("trending limit=50, all time", "trending?limit=50"),
    ("diversity, all time", "diversity"),
    ("trending limit=50 days=7", "trending?limit=50&days=7"),
    ("diversity days=7", "diversity?days=7"),
];

/// Milliseconds per call of each read, in the order of [`READS`].
pub struct TopicReads(Vec<(&'static str, Vec<f64>)>);

impl TopicReads {
    pub async fn time(client: &reqwest::Client, url: &str, calls: usize) -> anyhow::Result<Self> {
        let mut out = Vec::new();
        for (name, path) in READS {
            let target = format!("{url}/api/v1/analytics/{path}");
            let mut times = Vec::with_capacity(calls);
            for i in 0..calls.max(1) + 2 {
                let ms = timed_get(client, &target).await?;
                // The first two calls warm the connection and the page cache.
                if i >= 2 {
                    times.push(ms);
                }
            }
            out.push((name, times));
        }
        Ok(Self(out))
    }

    /// `(name, p50 ms)` of each read.
    pub fn medians(&self) -> Vec<(&'static str, f64)> {
        self.0.iter().map(|(n, t)| (*n, pct(t, 0.5))).collect()
    }

    /// Table rows `| name | p50 …, p95 … |`.
    #[allow(clippy::print_stdout)]
    pub fn print(&self) {
        for (name, times) in &self.0 {
            println!(
                "| {name} | p50 {:.1} ms, p95 {:.1} ms ({} calls) |",
                pct(times, 0.5),
                pct(times, 0.95),
                times.len()
            );
        }
    }
}
