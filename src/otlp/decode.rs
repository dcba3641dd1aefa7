//! Reads an OTLP/HTTP trace export body: decompression (gzip, or zlib
//! `deflate` as the Python exporter offers) within the size limit, then
//! protobuf or OTLP/JSON into the generated `ExportTraceServiceRequest`.

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// The request's (and so the response's) encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From a `Content-Type`, leniently (parameters such as a charset are ignored).
    pub fn from_content_type(value: &str) -> Option<Self> {
        let media = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// A body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Deflate,
}

impl Compression {
    pub fn from_header(value: Option<&str>) -> Option<Self> {
        match value
            .unwrap_or("identity")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "identity" => Some(Compression::None),
            "gzip" | "x-gzip" => Some(Compression::Gzip),
            "deflate" => Some(Compression::Deflate),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    BadBody(String),
    #[error("{0}")]
    TooLarge(String),
}

/// The body decompressed, refused once it passes `max` bytes.
pub fn inflate(body: &[u8], compression: Compression, max: usize) -> Result<Vec<u8>, DecodeError> {
    let too_large = || {
        DecodeError::TooLarge(format!(
            "the body is larger than the limit of {max} bytes after decompression"
        ))
    };
    let reader: Box<dyn Read + '_> = match compression {
        Compression::None => {
            if body.len() > max {
                return Err(too_large());
            }
            return Ok(body.to_vec());
        }
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Compression::Deflate => Box::new(flate2::read::ZlibDecoder::new(body)),
    };
    let mut out = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::BadBody(format!("the body could not be decompressed: {e}")))?;
    if out.len() > max {
        return Err(too_large());
    }
    Ok(out)
}

const NOT_TRACES: &str = "OTLP logs and metrics go to /v1/logs and /v1/metrics, which ragpulse does not accept; send traces to /v1/traces";

/// The export request in `bytes`.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, DecodeError> {
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(bytes).map_err(|e| {
            DecodeError::BadBody(format!(
                "the body is not an OTLP ExportTraceServiceRequest in protobuf: {e}; {NOT_TRACES}"
            ))
        })?,
        Encoding::Json => {
            serde_json::from_slice::<ExportTraceServiceRequest>(bytes).map_err(|e| {
                DecodeError::BadBody(format!(
                    "the body is not an OTLP ExportTraceServiceRequest in OTLP/JSON: {e}"
                ))
            })?
        }
    };
    if encoding == Encoding::Json && request.resource_spans.is_empty() {
        // Unknown fields are ignored, so a logs or metrics body reads as an empty export.
        let text = String::from_utf8_lossy(bytes);
        if text.contains("\"resourceLogs\"") || text.contains("\"resourceMetrics\"") {
            return Err(DecodeError::BadBody(format!(
                "the body holds OTLP logs or metrics, not traces; {NOT_TRACES}"
            )));
        }
    }
    Ok(request)
}

/// A hint for a request none of whose spans has valid ids: OTLP logs posted
/// to the traces path decode as id-less spans.
pub fn no_valid_span_hint() -> String {
    format!(
        "no span of the request has a valid trace and span id; is this OTLP logs or metrics? {NOT_TRACES}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_match_leniently() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        assert_eq!(
            Compression::from_header(Some("GZIP")),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::from_header(Some("br")), None);
    }

    #[test]
    fn a_logs_body_in_json_is_refused_with_a_hint() {
        let err = decode(br#"{"resourceLogs": []}"#, Encoding::Json).unwrap_err();
        assert!(err.to_string().contains("/v1/logs"), "{err}");
        assert!(
            decode(b"{}", Encoding::Json)
                .unwrap()
                .resource_spans
                .is_empty()
        );
    }

    #[test]
    fn inflation_stops_at_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[0u8; 10_000]).unwrap();
        let body = gz.finish().unwrap();
        assert_eq!(
            inflate(&body, Compression::Gzip, 10_000).unwrap().len(),
            10_000
        );
        assert!(matches!(
            inflate(&body, Compression::Gzip, 9_999),
            Err(DecodeError::TooLarge(_))
        ));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"abc").unwrap();
        assert_eq!(
            inflate(&z.finish().unwrap(), Compression::Deflate, 10).unwrap(),
            b"abc"
        );
    }
}
