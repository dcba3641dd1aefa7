//! The parsed form of one event: a JSON value that borrows its strings from
//! the request body and keeps an object's members in a vector, in order.
//! Validation reads each member once, so it needs no map: building
//! `serde_json::Value`s (a hashed map per object, a copy of every key and
//! string) took about half of the request threads' time at full ingest.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Number, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// An object's members in the order they were read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a>(pub Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    /// The member named `key`; of duplicate names the last, as `serde_json`
    /// (and the original platform's parser) keeps it.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'a> Json<'a> {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// A view of a `serde_json::Value` (events made in code: the demo, tests).
    pub fn borrow(value: &'a Value) -> Self {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::borrow).collect()),
            Value::Object(members) => Json::Object(Object(
                members
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::borrow(v)))
                    .collect(),
            )),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_string()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(Object(members)) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// As JSON text, exactly as `serde_json::Value` prints (used in messages).
impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_value().fmt(f)
    }
}

/// An object key or string, borrowed from the input when it has no escapes.
pub(crate) struct CowStr;

impl<'de> serde::de::DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_last_of_duplicate_members_wins_and_text_matches_serde_json() {
        let object = Object(vec![
            (Cow::Borrowed("a"), Json::Number(1.into())),
            (Cow::Borrowed("b"), Json::Null),
            (Cow::Borrowed("a"), Json::Number(2.into())),
        ]);
        assert_eq!(object.get("a"), Some(&Json::Number(2.into())));
        assert_eq!(object.get("c"), None);
        let value = json!({"x": [1, 2.5, "s\"q", null, true, {"y": -3}]});
        let text = Json::borrow(&value).to_string();
        assert_eq!(text, value.to_string());
        assert_eq!(Json::borrow(&value).to_value(), value);
    }
}
