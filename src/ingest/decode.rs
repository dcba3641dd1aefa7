//! Reads an ingest body: gzip, JSON `{"events": [...]}` or NDJSON, within the
//! body limits. Produces one slot per event position so rejections keep the
//! index the client knows (array position, or NDJSON line with blanks counted).
//!
//! Memory: a parsed JSON value is many times larger than its text (the two
//! bytes `0,` become a value of tens of bytes), so events are handed over one
//! at a time as they are read (see [`decode_each`]), an event is refused past
//! [`MAX_EVENT_VALUES`] values, and an over-long batch is refused while it is
//! counted, before its events are built.

use std::io::Read;

use std::borrow::Cow;

use super::json::{CowStr, Json, Object};

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
pub type Slot<'a> = Result<Json<'a>, String>;

/// The most JSON values (objects, arrays, strings, numbers, ...) one event may
/// have. The largest valid event (a 4,096-dimension embedding, 256 steps,
/// 1,024 retrieved documents) has under 7,000; past this, the event is
/// rejected and the rest of it skipped without being built.
pub const MAX_EVENT_VALUES: usize = 16_384;

/// Decompresses (when `gzip`) and hands each event slot to `each` with its
/// index as soon as it is read, so a caller that converts it keeps one value
/// alive at a time. On `Err`, `each` may have seen some slots already: the
/// caller must then drop what it made of them.
pub fn decode_each(
    body: &[u8],
    gzip: bool,
    format: Format,
    limits: &BodyLimits,
    mut each: impl FnMut(usize, Slot<'_>),
) -> Result<(), DecodeError> {
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
    match format {
        Format::Json => json_events(bytes, limits.max_events, &mut each),
        Format::Ndjson => {
            // Counted before parsing: a body of millions of tiny lines is
            // refused without building millions of values.
            let events = ndjson_lines(bytes)
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                .count();
            if events > limits.max_events {
                return Err(too_many_events(events, limits.max_events));
            }
            for (index, line) in ndjson_lines(bytes).enumerate() {
                each(index, ndjson_event(line));
            }
            Ok(())
        }
    }
}

fn too_many_events(events: impl std::fmt::Display, max: usize) -> DecodeError {
    DecodeError::TooLarge(format!(
        "the batch has {events} events, more than the limit of {max}; split it into smaller requests"
    ))
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

/// `{"events": [...]}` with at most `max` events, each handed to `each` as
/// soon as it is read.
fn json_events<'b>(
    bytes: &'b [u8],
    max: usize,
    each: &mut dyn FnMut(usize, Slot<'b>),
) -> Result<(), DecodeError> {
    let over = std::cell::Cell::new(false);
    let seed = BodySeed {
        max,
        over: &over,
        each,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::de::DeserializeSeed::deserialize(seed, &mut deserializer)
        .and_then(|()| deserializer.end());
    match parsed {
        Ok(()) => Ok(()),
        Err(_) if over.get() => Err(too_many_events(format!("over {max}"), max)),
        Err(e) => Err(DecodeError::BadBody(format!(
            "the body must be a JSON object with an \"events\" array: {e}"
        ))),
    }
}

/// The body object: its `events` array, other keys ignored.
struct BodySeed<'a, 'f, 'de> {
    max: usize,
    /// Set when the array had more than `max` elements.
    over: &'a std::cell::Cell<bool>,
    each: &'a mut (dyn FnMut(usize, Slot<'de>) + 'f),
}

impl<'de> serde::de::DeserializeSeed<'de> for BodySeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BodySeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with an \"events\" array")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key_seed(CowStr)? {
            if key != "events" {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            if seen {
                return Err(serde::de::Error::duplicate_field("events"));
            }
            seen = true;
            map.next_value_seed(EventsSeed {
                max: self.max,
                over: self.over,
                each: &mut *self.each,
            })?;
        }
        if seen {
            Ok(())
        } else {
            Err(serde::de::Error::missing_field("events"))
        }
    }
}

/// The `events` array, refused past `max` elements.
struct EventsSeed<'a, 'f, 'de> {
    max: usize,
    over: &'a std::cell::Cell<bool>,
    each: &'a mut (dyn FnMut(usize, Slot<'de>) + 'f),
}

impl<'de> serde::de::DeserializeSeed<'de> for EventsSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EventsSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let left = std::cell::Cell::new(MAX_EVENT_VALUES);
            let Some(value) = seq.next_element_seed(Budgeted { left: &left })? else {
                return Ok(());
            };
            if index == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many events"));
            }
            (self.each)(index, budget_checked(value, &left));
            index += 1;
        }
    }
}

/// `Err` for an event that went over [`MAX_EVENT_VALUES`].
fn budget_checked<'a>(value: Json<'a>, left: &std::cell::Cell<usize>) -> Slot<'a> {
    if left.get() == 0 {
        Err(format!(
            "event has more than {MAX_EVENT_VALUES} JSON values; it is not a valid event \
             (arrays are limited: question_embedding 4096, steps 256, retrieved_document_ids 1024)"
        ))
    } else {
        Ok(value)
    }
}

/// A JSON value built within a budget of values shared by the whole event:
/// once it is spent, the rest is skipped (read but not built) and the value
/// is left incomplete, for [`budget_checked`] to refuse.
struct Budgeted<'a> {
    left: &'a std::cell::Cell<usize>,
}

impl Budgeted<'_> {
    /// Takes one value from the budget; `false` when there was none left.
    fn take(&self) -> bool {
        match self.left.get() {
            0 => false,
            n => {
                self.left.set(n - 1);
                true
            }
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Budgeted<'_> {
    type Value = Json<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Budgeted<'_> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        self.take();
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        self.take();
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        self.take();
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        self.take();
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        self.take();
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        self.take();
        Ok(Json::String(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        self.take();
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        self.take();
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        self.take();
        Ok(Json::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        if self.take() {
            while let Some(item) = seq.next_element_seed(Budgeted { left: self.left })? {
                if self.left.get() == 0 {
                    break;
                }
                items.push(item);
            }
        }
        // Over budget: read the rest without building it.
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Json::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        if self.take() {
            while let Some(key) = map.next_key_seed(CowStr)? {
                let value = map.next_value_seed(Budgeted { left: self.left })?;
                if self.left.get() == 0 {
                    break;
                }
                members.push((key, value));
            }
        }
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Json::Object(Object(members)))
    }
}

/// The lines of an NDJSON body; a final newline ends the last line rather
/// than starting an empty one.
fn ndjson_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    (!bytes.is_empty())
        .then(|| body.split(|&b| b == b'\n'))
        .into_iter()
        .flatten()
}

/// One NDJSON line; a blank one is marked with an empty error and skipped later.
pub fn ndjson_event(line: &[u8]) -> Slot<'_> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(String::new());
    }
    let left = std::cell::Cell::new(MAX_EVENT_VALUES);
    let mut deserializer = serde_json::Deserializer::from_slice(line);
    let parsed =
        serde::de::DeserializeSeed::deserialize(Budgeted { left: &left }, &mut deserializer)
            .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value @ Json::Object(_)) => budget_checked(value, &left),
        Ok(_) => Err("line is not a JSON object".to_string()),
        Err(e) => Err(format!("line is not valid JSON: {e}")),
    }
}

/// True for the placeholder of a blank NDJSON line.
pub fn is_blank(slot: &Slot<'_>) -> bool {
    matches!(slot, Err(e) if e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every slot of a body, as `serde_json` values (blank lines as `Err("")`).
    fn decode(
        body: &[u8],
        gzip: bool,
        format: Format,
        limits: &BodyLimits,
    ) -> Result<Vec<Result<serde_json::Value, String>>, DecodeError> {
        let mut slots = Vec::new();
        decode_each(body, gzip, format, limits, |_, slot| {
            slots.push(slot.map(|json| json.to_value()));
        })?;
        Ok(slots)
    }

    fn is_blank(slot: &Result<serde_json::Value, String>) -> bool {
        matches!(slot, Err(e) if e.is_empty())
    }

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
    fn an_event_over_the_value_budget_is_one_rejection_and_the_next_is_read() {
        let embedding = vec!["0.5"; 4096].join(",");
        let big = vec!["0"; MAX_EVENT_VALUES].join(",");
        let json = format!(
            r#"{{"events":[{{"e":[{embedding}]}},{{"x":[{big}]}},{{"x":{{"a":[{big}]}}}},{{"type":"user"}}]}}"#
        );
        let slots = decode(json.as_bytes(), false, Format::Json, &BodyLimits::default()).unwrap();
        assert_eq!(slots.len(), 4);
        assert_eq!(
            slots[0].as_ref().unwrap()["e"].as_array().unwrap().len(),
            4096
        );
        for slot in &slots[1..3] {
            assert!(
                slot.as_ref()
                    .unwrap_err()
                    .starts_with("event has more than 16384 JSON values")
            );
        }
        assert_eq!(slots[3], Ok(serde_json::json!({"type": "user"})));
        let ndjson = format!("{{\"x\":[{big}]}}\n{{\"type\":\"user\"}}\n");
        let slots = decode(
            ndjson.as_bytes(),
            false,
            Format::Ndjson,
            &BodyLimits::default(),
        )
        .unwrap();
        assert!(
            slots[0]
                .as_ref()
                .unwrap_err()
                .starts_with("event has more than")
        );
        assert!(slots[1].is_ok());
    }

    #[test]
    fn an_over_long_json_array_is_too_large_and_a_second_events_key_a_bad_body() {
        let limits = BodyLimits {
            max_body_bytes: 1 << 20,
            max_events: 2,
        };
        assert!(decode(br#"{"events":[{},{}]}"#, false, Format::Json, &limits).is_ok());
        let err = decode(br#"{"events":[{},{},{}]}"#, false, Format::Json, &limits).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge(_)), "{err:?}");
        let err = decode(
            br#"{"events":[],"events":[]}"#,
            false,
            Format::Json,
            &limits,
        )
        .unwrap_err();
        assert!(matches!(err, DecodeError::BadBody(_)), "{err:?}");
        let err = decode(br#"{"events":[]} x"#, false, Format::Json, &limits).unwrap_err();
        assert!(matches!(err, DecodeError::BadBody(_)), "{err:?}");
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

    mod property {
        use super::*;
        use proptest::prelude::*;

        /// JSON text of any shape, objects with duplicate names and strings
        /// with escapes included (written by hand: a `Value` cannot hold
        /// duplicates).
        fn text() -> impl Strategy<Value = String> {
            let string =
                "[a-z\"\\\\é\\n\u{1F600} ]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap());
            let leaf = prop_oneof![
                Just("null".to_string()),
                any::<bool>().prop_map(|b| b.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                (-1e300f64..1e300).prop_map(|f| serde_json::to_string(&f).unwrap()),
                string.clone(),
            ];
            leaf.prop_recursive(4, 48, 6, move |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6)
                        .prop_map(|items| format!("[{}]", items.join(","))),
                    proptest::collection::vec(("[a-c]", inner), 0..6).prop_map(|members| {
                        let members: Vec<String> = members
                            .iter()
                            .map(|(k, v)| format!("\"{k}\":{v}"))
                            .collect();
                        format!("{{{}}}", members.join(","))
                    }),
                ]
            })
        }

        /// Each event as a value, and what a lookup of each name gives.
        type Read = (serde_json::Value, Vec<Option<serde_json::Value>>);

        const NAMES: [&str; 5] = ["e", "e2", "a", "b", "c"];

        fn read_all(body: &[u8], format: Format) -> Vec<Read> {
            let mut out = Vec::new();
            decode_each(body, false, format, &BodyLimits::default(), |_, slot| {
                let json = slot.unwrap();
                let Json::Object(object) = &json else {
                    panic!("not an object")
                };
                let found = NAMES
                    .iter()
                    .map(|k| object.get(k).map(Json::to_value))
                    .collect();
                out.push((json.to_value(), found));
            })
            .unwrap();
            out
        }

        proptest! {
            /// The borrowed parse reads every event as `serde_json::Value`
            /// does, and a lookup finds what `Value` keeps (the last of
            /// duplicate names), in both formats.
            #[test]
            fn events_parse_as_serde_json_values_do(values in proptest::collection::vec(text(), 1..5)) {
                let events: Vec<String> = values
                    .iter()
                    .map(|v| format!("{{\"e\":{v},\"e2\":{v},\"e\":[{v}]}}"))
                    .collect();
                let expected: Vec<Read> = events
                    .iter()
                    .map(|e| {
                        let value: serde_json::Value = serde_json::from_str(e).unwrap();
                        let found = NAMES.iter().map(|k| value.get(k).cloned()).collect();
                        (value, found)
                    })
                    .collect();
                prop_assert_eq!(read_all(events.join("\n").as_bytes(), Format::Ndjson), expected.clone());
                let json = format!("{{\"events\":[{}]}}", events.join(","));
                prop_assert_eq!(read_all(json.as_bytes(), Format::Json), expected);
            }
        }
    }
}
