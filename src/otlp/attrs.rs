//! Reading OTLP attribute values leniently: instrumentations disagree on
//! types (a token count as an int, a double or a string; a JSON document as
//! a string or as a structured array), so each reader takes every sensible
//! form and ignores the rest.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::Value as Json;

/// Nesting read from a structured value before the rest is dropped.
const MAX_DEPTH: usize = 16;

pub fn as_str(value: &Value) -> Option<&str> {
    match value {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// A whole number >= 0: an int, a double with no fraction, or such a string.
pub fn as_i64(value: &Value) -> Option<i64> {
    let n = match value {
        Value::IntValue(i) => *i,
        Value::DoubleValue(d) if d.is_finite() && d.fract() == 0.0 && d.abs() < 9e15 => *d as i64,
        Value::StringValue(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (n >= 0).then_some(n)
}

/// A finite number: a double, an int, or such a string.
pub fn as_f64(value: &Value) -> Option<f64> {
    let x = match value {
        Value::DoubleValue(d) => *d,
        Value::IntValue(i) => *i as f64,
        Value::StringValue(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::BoolValue(b) => Some(*b),
        Value::StringValue(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        Value::IntValue(1) => Some(true),
        Value::IntValue(0) => Some(false),
        _ => None,
    }
}

/// A JSON document: a string holding JSON, or a structured value.
pub fn json_of(value: &Value) -> Option<Json> {
    match value {
        Value::StringValue(s) => serde_json::from_str(s).ok(),
        other => Some(any_to_json(other, 0)),
    }
}

/// A structured value as JSON (kvlists become objects).
pub fn any_to_json(value: &Value, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Null;
    }
    let inner = |v: &opentelemetry_proto::tonic::common::v1::AnyValue| {
        v.value
            .as_ref()
            .map_or(Json::Null, |v| any_to_json(v, depth + 1))
    };
    match value {
        Value::StringValue(s) => Json::String(s.clone()),
        Value::BoolValue(b) => Json::Bool(*b),
        Value::IntValue(i) => Json::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Value::ArrayValue(array) => Json::Array(array.values.iter().map(inner).collect()),
        Value::KvlistValue(list) => Json::Object(
            list.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, inner)))
                .collect(),
        ),
        Value::BytesValue(_) => Json::Null,
        #[allow(unreachable_patterns)]
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_every_form_instrumentations_use() {
        assert_eq!(as_i64(&Value::IntValue(120)), Some(120));
        assert_eq!(as_i64(&Value::DoubleValue(120.0)), Some(120));
        assert_eq!(as_i64(&Value::DoubleValue(120.5)), None);
        assert_eq!(as_i64(&Value::StringValue(" 7 ".into())), Some(7));
        assert_eq!(as_i64(&Value::IntValue(-1)), None);
        assert_eq!(as_f64(&Value::StringValue("0.25".into())), Some(0.25));
        assert_eq!(as_bool(&Value::StringValue("True".into())), Some(true));
    }
}
