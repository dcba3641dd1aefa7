//! Query-string parsing with FastAPI's semantics: the last of a repeated
//! parameter counts, integers parse as pydantic parses them, and every bad
//! parameter becomes one 422 entry, in the order the parameters are declared.

use std::collections::HashMap;

use serde_json::{Value, json};
use uuid::Uuid;

use super::error::ApiError;

/// Collects parameters and the errors of the ones already read.
pub struct Query {
    values: HashMap<String, String>,
    errors: Vec<Value>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let values = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        Self {
            values,
            errors: Vec::new(),
        }
    }

    /// A bounded integer with a default.
    pub fn int(&mut self, name: &str, default: i64, ge: i64, le: i64) -> i64 {
        self.optional_int(name, ge, le).unwrap_or(default)
    }

    /// A bounded integer, `None` when absent (or invalid: the error is recorded).
    pub fn optional_int(&mut self, name: &str, ge: i64, le: i64) -> Option<i64> {
        let raw = self.values.get(name)?.clone();
        let value = match parse_int(&raw) {
            Some(value) => value,
            None => {
                self.error(json!({
                    "type": "int_parsing",
                    "loc": ["query", name],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "input": raw,
                }));
                return None;
            }
        };
        if value < i128::from(ge) {
            self.error(json!({
                "type": "greater_than_equal",
                "loc": ["query", name],
                "msg": format!("Input should be greater than or equal to {ge}"),
                "input": raw,
                "ctx": {"ge": ge},
            }));
            return None;
        }
        if value > i128::from(le) {
            self.error(json!({
                "type": "less_than_equal",
                "loc": ["query", name],
                "msg": format!("Input should be less than or equal to {le}"),
                "input": raw,
                "ctx": {"le": le},
            }));
            return None;
        }
        i64::try_from(value).ok()
    }

    /// A boolean as pydantic reads one from a string (`true`/`false`, `1`/`0`,
    /// `yes`/`no`, `on`/`off`, any case), `None` when absent.
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        let raw = self.values.get(name)?.clone();
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
            _ => {
                self.error(json!({
                    "type": "bool_parsing",
                    "loc": ["query", name],
                    "msg": "Input should be a valid boolean, unable to interpret input",
                    "input": raw,
                }));
                None
            }
        }
    }

    pub fn uuid(&mut self, name: &str) -> Option<Uuid> {
        let raw = self.values.get(name)?.clone();
        match Uuid::parse_str(raw.trim()) {
            Ok(id) => Some(id),
            Err(e) => {
                self.error(json!({
                    "type": "uuid_parsing",
                    "loc": ["query", name],
                    "msg": format!("Input should be a valid UUID, {e}"),
                    "input": raw,
                    "ctx": {"error": e.to_string()},
                }));
                None
            }
        }
    }

    /// One of `choices`, `None` when absent.
    pub fn choice(&mut self, name: &str, choices: &[&'static str]) -> Option<&'static str> {
        let raw = self.values.get(name)?.clone();
        if let Some(found) = choices.iter().find(|c| **c == raw) {
            return Some(found);
        }
        let expected = enum_expected(choices);
        self.error(json!({
            "type": "enum",
            "loc": ["query", name],
            "msg": format!("Input should be {expected}"),
            "input": raw,
            "ctx": {"expected": expected},
        }));
        None
    }

    /// A parameter that parsed but breaks a rule involving others: pydantic's
    /// `value_error` entry, with `msg` prefixed "Value error, " as it does.
    pub fn value_error(&mut self, name: &str, input: &str, msg: &str) {
        self.error(json!({
            "type": "value_error",
            "loc": ["query", name],
            "msg": format!("Value error, {msg}"),
            "input": input,
            "ctx": {"error": msg},
        }));
    }

    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn error(&mut self, entry: Value) {
        self.errors.push(entry);
    }

    /// `Err` with every recorded entry when any parameter was bad.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// `'hot', 'warm' or 'cold'`, as pydantic words it.
fn enum_expected(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// Pydantic's lax str→int: surrounding whitespace, a sign, digits (with `_`
/// between them) and an optional fraction of zeros (`"24.0"` is 24). Values
/// beyond i64 still parse (as i128 or a saturated sign) so they fail the
/// bounds check rather than the parse, as in Python.
fn parse_int(raw: &str) -> Option<i128> {
    let text = raw.trim();
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let digits = match digits.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => digits,
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    let magnitude = cleaned.parse::<i128>().unwrap_or(i128::MAX);
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(q: Query) -> Vec<Value> {
        match q.finish() {
            Err(ApiError::Validation(entries)) => entries,
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn parses_integers_like_pydantic() {
        assert_eq!(parse_int("24"), Some(24));
        assert_eq!(parse_int(" 24 "), Some(24));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("24.0"), Some(24));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int("24.5"), None);
        assert_eq!(parse_int("abc"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("1e3"), None);
        assert_eq!(
            parse_int("99999999999999999999999999999999999999999"),
            Some(i128::MAX)
        );
    }

    #[test]
    fn out_of_bounds_gives_the_fastapi_entry() {
        let mut q = Query::parse(Some("ttft_hours=169"));
        assert_eq!(q.int("ttft_hours", 24, 1, 168), 24);
        assert_eq!(
            detail(q),
            vec![
                json!({"type":"less_than_equal","loc":["query","ttft_hours"],
                "msg":"Input should be less than or equal to 168","input":"169","ctx":{"le":168}})
            ]
        );
        let mut q = Query::parse(Some("hours=0"));
        q.int("hours", 24, 1, 168);
        assert_eq!(
            detail(q),
            vec![json!({"type":"greater_than_equal","loc":["query","hours"],
                "msg":"Input should be greater than or equal to 1","input":"0","ctx":{"ge":1}})]
        );
    }

    #[test]
    fn the_last_repeated_parameter_counts_and_errors_keep_declaration_order() {
        let mut q = Query::parse(Some("limit=x&days=3&days=500&limit=7"));
        assert_eq!(q.int("days", 30, 1, 90), 30);
        assert_eq!(q.int("limit", 10, 1, 100), 7);
        let entries = detail(q);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["loc"], json!(["query", "days"]));
        assert_eq!(entries[0]["input"], json!("500"));
    }

    #[test]
    fn enum_and_uuid_errors_name_the_problem() {
        let mut q = Query::parse(Some("status=frozen&assistant_id=nope"));
        assert_eq!(q.choice("status", &["hot", "warm", "cold"]), None);
        assert_eq!(q.uuid("assistant_id"), None);
        let entries = detail(q);
        assert_eq!(
            entries[0]["msg"],
            json!("Input should be 'hot', 'warm' or 'cold'")
        );
        assert_eq!(
            entries[0]["ctx"],
            json!({"expected": "'hot', 'warm' or 'cold'"})
        );
        assert_eq!(entries[1]["type"], json!("uuid_parsing"));
        let msg = entries[1]["msg"].as_str().unwrap();
        assert!(msg.starts_with("Input should be a valid UUID, "), "{msg}");
    }

    #[test]
    fn booleans_read_as_pydantic_reads_them() {
        let mut q = Query::parse(Some("a=TRUE&b=0&c=yes&d=maybe"));
        assert_eq!(q.boolean("a"), Some(true));
        assert_eq!(q.boolean("b"), Some(false));
        assert_eq!(q.boolean("c"), Some(true));
        assert_eq!(q.boolean("d"), None);
        assert_eq!(q.boolean("absent"), None);
        assert_eq!(detail(q)[0]["type"], json!("bool_parsing"));
    }

    #[test]
    fn absent_and_valid_parameters_pass() {
        let mut q = Query::parse(Some("assistant_id=5D1C7E2A-0000-4000-8000-000000000001"));
        assert_eq!(
            q.uuid("assistant_id").map(|u| u.to_string()),
            Some("5d1c7e2a-0000-4000-8000-000000000001".to_string())
        );
        assert_eq!(q.optional_int("days", 1, 365), None);
        assert!(q.finish().is_ok());
    }
}
