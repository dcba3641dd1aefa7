//! The OTLP receiver's decoding on arbitrary bodies: protobuf or OTLP/JSON,
//! plain, gzip as sent, or gzip of the input; then the mapping of the spans
//! it accepted, as the finalizer would run it. Any panic, hang or runaway
//! allocation is a finding; the counts of the answer are checked too.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use ragpulse::internals::otlp::map_trace;
use ragpulse::internals::otlp::{Compression, DecodeError, Encoding};
use ragpulse::internals::otlp::TraceRow;
use ragpulse::internals::otlp::prepare;
use ragpulse::internals::otlp::{validate_draft, validate_interaction};
use ragpulse::internals::ingest::EventLimits;
use ragpulse::internals::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let encoding = if mode & 1 == 0 { Encoding::Protobuf } else { Encoding::Json };
    let compressed;
    let (body, compression) = match (mode >> 1) & 3 {
        1 => (body, Compression::Gzip),
        2 => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = encoder.write_all(body);
            compressed = encoder.finish().unwrap_or_default();
            (&compressed[..], Compression::Gzip)
        }
        3 => (body, Compression::Deflate),
        _ => (body, Compression::None),
    };
    match prepare(body, encoding, compression, 1 << 20, 256) {
        Ok(prepared) => {
            let grouped: usize = prepared.groups.iter().map(|g| g.span_ids.len()).sum();
            assert_eq!(grouped, prepared.spans, "every accepted span is in one group");
            for group in &prepared.groups {
                let row: TraceRow = postcard::from_bytes(&group.facts).expect("facts read back");
                let mapped = map_trace(&group.trace_id, &[row]);
                assert!(mapped.span_ids.len() <= group.span_ids.len());
                for draft in &mapped.interactions {
                    let event = draft.interaction.to_json();
                    assert!(event.is_object());
                    // The event built directly equals the one validated from its JSON.
                    let limits = EventLimits::default();
                    let now = Timestamp::now().micros();
                    assert_eq!(
                        validate_interaction(draft.interaction.clone(), &limits, now),
                        validate_draft(&event, &limits, now)
                    );
                }
            }
        }
        Err(DecodeError::BadBody(message) | DecodeError::TooLarge(message)) => {
            assert!(!message.is_empty(), "an empty body error");
        }
    }
});
