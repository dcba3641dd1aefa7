//! Instants as integer microseconds since the Unix epoch, UTC: the one
//! representation the store, the metrics and the wire format share.
//! On the wire they are RFC 3339 with exactly six fraction digits and `Z`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_HOUR: i64 = 3_600 * MICROS_PER_SECOND;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// A UTC instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-11-28T18:00:00.123456Z")]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 that carries an explicit UTC offset (`Z` or `±hh:mm`),
    /// truncating below the microsecond.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = DateTime::parse_from_rfc3339(text).ok()?;
        Some(Self(parsed.with_timezone(&Utc).timestamp_micros()))
    }

    /// `2026-11-28T18:00:00.123456Z`.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
            // Out of chrono's range cannot come from a validated event; show the raw value.
            None => format!("invalid-timestamp({})", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_fraction_digits_and_z() {
        let t = Timestamp::parse_rfc3339("2026-11-28T18:00:00.1234567+00:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T18:00:00.123456Z");
        let whole = Timestamp::parse_rfc3339("2026-11-28T18:00:00Z").unwrap();
        assert_eq!(whole.to_rfc3339(), "2026-11-28T18:00:00.000000Z");
    }

    #[test]
    fn converts_offsets_to_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-28T20:30:00+02:30").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-28T18:00:00.000000Z");
    }

    #[test]
    fn rejects_naive_times() {
        assert!(Timestamp::parse_rfc3339("2026-11-28T18:00:00").is_none());
        assert!(Timestamp::parse_rfc3339("2026-11-28").is_none());
    }
}
