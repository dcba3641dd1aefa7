//! Reads an ingest body: gzip, JSON `{"events": [...]}` or NDJSON, within the
//! body limits. Produces one slot per event position so rejections keep the
//! index the client knows (array position, or NDJSON line with blanks counted).

use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

/// Body-level limits; over them the whole request is refused.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// After decompression.
    pub max_body_bytes: usize,
    pub max_events: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_events: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
}

impl Format {
    /// From a `Content-Type` header value, parameters (`; charset=utf-8`) ignored.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Format::Json),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
                Some(Format::Ndjson)
            }
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("{0}")]
    BadBody(String),
    #[error("{0}")]
    TooLarge(String),
}

/// One position of the batch: a parsed value, or why that line could not be read.
pub type Slot = Result<Value, String>;

/// Decompresses (when `gzip`) and splits the body into event slots.
pub fn decode(
    body: &[u8],
    gzip: bool,
    format: Format,
    limits: &BodyLimits,
) -> Result<Vec<Slot>, DecodeError> {
    let inflated;
    let bytes = if gzip {
        inflated = gunzip(body, limits.max_body_bytes)?;
        &inflated[..]
    } else {
        if body.len() > limits.max_body_bytes {
            return Err(too_large_body(limits));
        }
        body
    };
    let slots = match format {
        Format::Json => json_events(bytes)?,
        Format::Ndjson => ndjson_events(bytes),
    };
    let events = slots
        .iter()
        .filter(|s| !matches!(s, Err(e) if e.is_empty()))
        .count();
    if events > limits.max_events {
        return Err(DecodeError::TooLarge(format!(
            "the batch has {events} events, more than the limit of {}; split it into smaller requests",
            limits.max_events
        )));
    }
    Ok(slots)
}

fn too_large_body(limits: &BodyLimits) -> DecodeError {
    DecodeError::TooLarge(format!(
        "the body is larger than the limit of {} bytes (after decompression)",
        limits.max_body_bytes
    ))
}

fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    // Read one byte past the limit: a bomb stops there instead of filling memory.
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(max as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::BadBody(format!("the body is not valid gzip: {e}")))?;
    if out.len() > max {
        return Err(too_large_body(&BodyLimits {
            max_body_bytes: max,
            max_events: 0,
        }));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct JsonBody {
    events: Vec<Value>,
}

fn json_events(bytes: &[u8]) -> Result<Vec<Slot>, DecodeError> {
    let body: JsonBody = serde_json::from_slice(bytes).map_err(|e| {
        DecodeError::BadBody(format!(
            "the body must be a JSON object with an \"events\" array: {e}"
        ))
    })?;
    Ok(body.events.into_iter().map(Ok).collect())
}

/// Blank lines keep their index but are marked with an empty error and skipped later.
fn ndjson_events(bytes: &[u8]) -> Vec<Slot> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|line| {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Err(String::new());
            }
            match serde_json::from_slice::<Value>(line) {
                Ok(value @ Value::Object(_)) => Ok(value),
                Ok(_) => Err("line is not a JSON object".to_string()),
                Err(e) => Err(format!("line is not valid JSON: {e}")),
            }
        })
        .collect()
}

/// True for the placeholder of a blank NDJSON line.
pub fn is_blank(slot: &Slot) -> bool {
    matches!(slot, Err(e) if e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn ndjson_counts_blank_lines_in_indices() {
        let body = b"{\"type\":\"a\"}\n\n[1]\n  \nnot json\n{\"type\":\"b\"}\n";
        let slots = decode(body, false, Format::Ndjson, &BodyLimits::default()).unwrap();
        assert_eq!(slots.len(), 6);
        assert!(slots[0].is_ok());
        assert!(is_blank(&slots[1]));
        assert_eq!(slots[2], Err("line is not a JSON object".to_string()));
        assert!(is_blank(&slots[3]));
        assert!(
            slots[4]
                .as_ref()
                .unwrap_err()
                .starts_with("line is not valid JSON")
        );
        assert!(slots[5].is_ok());
    }

    #[test]
    fn json_body_without_events_array_is_a_bad_body() {
        for body in [&b"[]"[..], b"{}", b"{\"events\": 3}", b"nope"] {
            let err = decode(body, false, Format::Json, &BodyLimits::default()).unwrap_err();
            assert!(matches!(err, DecodeError::BadBody(_)), "{body:?}");
        }
    }

    #[test]
    fn gzip_bodies_are_inflated_and_bombs_refused() {
        let body = gz(br#"{"events":[{"type":"user"}]}"#);
        let slots = decode(&body, true, Format::Json, &BodyLimits::default()).unwrap();
        assert_eq!(slots.len(), 1);

        let bomb = gz(&vec![b' '; 2048]);
        let limits = BodyLimits {
            max_body_bytes: 1024,
            max_events: 10,
        };
        assert!(matches!(
            decode(&bomb, true, Format::Json, &limits),
            Err(DecodeError::TooLarge(_))
        ));
        assert!(matches!(
            decode(b"garbage", true, Format::Json, &limits),
            Err(DecodeError::BadBody(_))
        ));
    }

    #[test]
    fn too_many_events_is_too_large_but_blank_lines_do_not_count() {
        let limits = BodyLimits {
            max_body_bytes: 1 << 20,
            max_events: 2,
        };
        let ok = decode(b"{}\n\n\n{}\n", false, Format::Ndjson, &limits).unwrap();
        assert_eq!(ok.len(), 4);
        let err = decode(b"{}\n{}\n{}\n", false, Format::Ndjson, &limits).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge(_)));
    }

    #[test]
    fn content_types_are_matched_on_their_essence() {
        assert_eq!(
            Format::from_content_type("application/json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type("Application/X-NDJSON"),
            Some(Format::Ndjson)
        );
        assert_eq!(Format::from_content_type("text/plain"), None);
    }
}
