//! Reads a few named string members of a JSON object held in a span
//! attribute (a document's metadata, a prompt template's variables) without
//! building the document: the rest of the text is checked and skipped. It
//! answers as `serde_json::Value` would: a text `Value` refuses is refused
//! here (the same parser decides), the last of duplicate members wins, a
//! member that is not a string, or a text that is not an object, gives none.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::ingest::json::CowStr;

/// The string values of `keys` in the JSON object `text`, in the order of
/// `keys`; `None` when `text` is not JSON.
pub fn string_members<'t, const N: usize>(
    text: &'t str,
    keys: [&str; N],
) -> Option<[Option<Cow<'t, str>>; N]> {
    let mut de = serde_json::Deserializer::from_str(text);
    let found = Members { keys }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(found)
}

/// The members sought, as a seed for the top-level value.
struct Members<'k, const N: usize> {
    keys: [&'k str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Members<'_, N> {
    type Value = [Option<Cow<'de, str>>; N];

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Members<'_, N> {
    type Value = [Option<Cow<'de, str>>; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: Self::Value = std::array::from_fn(|_| None);
        while let Some(key) = map.next_key_seed(CowStr)? {
            match self.keys.iter().position(|k| *k == key.as_ref()) {
                Some(i) => found[i] = map.next_value_seed(MaybeText)?,
                None => map.next_value_seed(Skip)?,
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip.visit_seq(seq)?;
        Ok(std::array::from_fn(|_| None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(std::array::from_fn(|_| None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(std::array::from_fn(|_| None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(std::array::from_fn(|_| None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(std::array::from_fn(|_| None))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(std::array::from_fn(|_| None))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(std::array::from_fn(|_| None))
    }
}

/// A value: the string it is, or `None` for any other value (skipped).
struct MaybeText;

impl<'de> DeserializeSeed<'de> for MaybeText {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MaybeText {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Skip.visit_map(map).map(|()| None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip.visit_seq(seq).map(|()| None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Any value, read as `Value` would read it (strings unescaped and checked,
/// numbers parsed) and dropped.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(CowStr)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    const KEYS: [&str; 3] = ["document_id", "doc_id", "query_str"];

    /// What `Value` gives for the same question.
    fn by_value(text: &str) -> Option<[Option<String>; 3]> {
        let value: Value = serde_json::from_str(text).ok()?;
        Some(KEYS.map(|k| value.get(k).and_then(Value::as_str).map(str::to_string)))
    }

    fn by_members(text: &str) -> Option<[Option<String>; 3]> {
        string_members(text, KEYS).map(|found| found.map(|v| v.map(Cow::into_owned)))
    }

    #[test]
    fn members_are_read_as_value_reads_them() {
        for text in [
            r#"{"document_id": "a", "file_name": "x.pdf"}"#,
            r#"{"doc_id": "a", "doc_id": 3}"#,
            r#"{"doc_id": 3, "doc_id": "b\u00e9"}"#,
            r#"{"query_str": "q", "context_str": {"deep": [1, 2.5, null, true]}}"#,
            r#"["document_id", "a"]"#,
            r#""document_id""#,
            r#"{"query_str": "\ud800"}"#,
            r#"{"context_str": "\ud800", "query_str": "q"}"#,
            r#"{"query_str": "q"} trailing"#,
            r#"{"query_str": 1e400}"#,
            "{\"query_str\": \"a\u{1}\"}",
            r#"{"query_str": "a"#,
            "",
            "null",
        ] {
            assert_eq!(by_members(text), by_value(text), "{text}");
        }
    }

    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i32>().prop_map(|n| n.to_string()),
            Just("1.5e3".to_string()),
            "[a-z\\\\\"é ]{0,6}".prop_map(|s| format!("\"{s}\"")),
            Just("\"\\ud800\"".to_string()),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("document_id"),
                            Just("doc_id"),
                            Just("query_str"),
                            Just("other")
                        ],
                        inner
                    ),
                    0..5
                )
                .prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        });
        // Some texts cut short, so that malformed ones are tried too.
        (value, any::<bool>(), 0..8usize).prop_map(|(text, cut, n)| {
            if cut && !text.is_empty() {
                let end = text.len().saturating_sub(n);
                let mut end = end;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text[..end].to_string()
            } else {
                text
            }
        })
    }

    proptest! {
        #[test]
        fn any_text_reads_as_value_reads_it(text in json_text()) {
            prop_assert_eq!(by_members(&text), by_value(&text));
        }
    }
}
