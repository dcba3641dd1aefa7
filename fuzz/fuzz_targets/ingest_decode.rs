//! The ingest decoder and validator on arbitrary bodies: JSON or NDJSON,
//! plain, gzip as sent, or gzip of the input (so the inflated path sees the
//! fuzzer's bytes too). Any panic, hang or runaway allocation is a finding;
//! the answer's shape is checked too.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use ragpulse::internals::ingest::check_body;
use ragpulse::internals::ingest::{BodyLimits, DecodeError, Format};
use ragpulse::internals::ingest::EventLimits;

/// 2026-11-28T12:00:00Z: the seeds' timestamps are before it.
const NOW_US: i64 = 1_795_867_200_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let format = if mode & 1 == 0 { Format::Json } else { Format::Ndjson };
    let compressed;
    let (body, gzip) = match (mode >> 1) & 3 {
        1 => (body, true),
        2 => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = encoder.write_all(body);
            compressed = encoder.finish().unwrap_or_default();
            (&compressed[..], true)
        }
        _ => (body, false),
    };
    // Small limits, so the limit paths are reachable from small inputs.
    let body_limits = BodyLimits {
        max_body_bytes: 1 << 20,
        max_events: 64,
    };
    let event_limits = EventLimits::default();
    match check_body(body, gzip, format, &body_limits, &event_limits, NOW_US) {
        Ok(checked) => {
            let mut indices: Vec<usize> = checked
                .valid
                .iter()
                .map(|(i, _)| *i)
                .chain(checked.rejected.iter().map(|r| r.index))
                .collect();
            assert!(indices.len() <= body_limits.max_events);
            let n = indices.len();
            indices.sort_unstable();
            indices.dedup();
            assert_eq!(indices.len(), n, "an index is both valid and rejected, or twice");
            for rejection in &checked.rejected {
                assert!(!rejection.error.is_empty(), "an empty rejection message");
            }
        }
        Err(DecodeError::BadBody(message) | DecodeError::TooLarge(message)) => {
            assert!(!message.is_empty(), "an empty body error");
        }
    }
});
