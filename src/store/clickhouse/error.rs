//! ClickHouse's failures as one typed error: the server's exception (its code
//! and message, parsed from the body, whose shape differs between 18.x and
//! current versions), a node that cannot be reached, and HTTP answers that
//! carry no exception. [`ClickHouseError::kind`] says which of them mean
//! "come back later", so that they reach the API as `503` with `Retry-After`
//! through [`StoreError`].

use crate::store::{BackendError, FailureKind, StoreError};

/// What went wrong talking to one ClickHouse node.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// The server answered with an exception (on a non-2xx status, or at the
    /// end of a `200` body it had begun to stream).
    #[error("ClickHouse error {code} (HTTP {status}): {message}")]
    Server {
        code: u32,
        message: String,
        status: u16,
    },
    /// No answer: connection refused or reset, DNS, or the request timed out.
    #[error("ClickHouse at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// A non-2xx answer without a ClickHouse exception (a proxy, say).
    #[error("ClickHouse answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// A `2xx` answer that does not parse as what was asked for.
    #[error("unexpected answer from ClickHouse: {0}")]
    Protocol(String),
    /// Settings that cannot work (a bad URL, an invalid database name).
    #[error("{0}")]
    Config(String),
}

/// Exception codes that say the cluster is busy or partly unreachable, not
/// that the query is wrong: 202 too many simultaneous queries, 209 socket
/// timeout, 210 network error (a shard down under `insert_distributed_sync`),
/// 252 too many parts, 279 all connection tries failed (a shard down on read).
const UNAVAILABLE_CODES: [u32; 5] = [202, 209, 210, 252, 279];
/// 159 timeout exceeded (`max_execution_time`), 394 query was cancelled.
const INTERRUPTED_CODES: [u32; 2] = [159, 394];

impl ClickHouseError {
    /// How callers treat this failure.
    pub fn kind(&self) -> FailureKind {
        match self {
            ClickHouseError::Unreachable { .. } => FailureKind::Unavailable,
            ClickHouseError::Http {
                status: 502..=504, ..
            } => FailureKind::Unavailable,
            ClickHouseError::Server { code, .. } if UNAVAILABLE_CODES.contains(code) => {
                FailureKind::Unavailable
            }
            ClickHouseError::Server { code, .. } if INTERRUPTED_CODES.contains(code) => {
                FailureKind::Interrupted
            }
            _ => FailureKind::Other,
        }
    }

    /// The exception code, when the server sent one.
    pub fn code(&self) -> Option<u32> {
        match self {
            ClickHouseError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The error of a non-2xx answer with `body`.
    pub fn from_status(status: u16, body: &str) -> Self {
        match parse_exception(body) {
            Some((code, message)) => ClickHouseError::Server {
                code,
                message,
                status,
            },
            None => ClickHouseError::Http {
                status,
                body: body.trim().chars().take(500).collect(),
            },
        }
    }
}

impl From<ClickHouseError> for StoreError {
    fn from(e: ClickHouseError) -> Self {
        StoreError::Backend(BackendError::new(e.kind(), e))
    }
}

/// The code and message of an exception body. 18.16 writes
/// `Code: 60, e.displayText() = DB::Exception: Table rp.t doesn't exist., e.what() = DB::Exception`;
/// current versions `Code: 60. DB::Exception: Table rp.t does not exist. (UNKNOWN_TABLE) (version 24.8.1.1)`.
pub fn parse_exception(text: &str) -> Option<(u32, String)> {
    let rest = text.trim_start().strip_prefix("Code: ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let code = rest[..digits].parse().ok()?;
    let after = &rest[digits..];
    if !(after.starts_with(',') || after.starts_with('.')) {
        return None;
    }
    let mut message = after[1..].trim();
    message = message
        .strip_prefix("e.displayText() = ")
        .unwrap_or(message);
    // DB::Exception, DB::NetException, ...: the class name adds nothing.
    if let Some(rest) = message.strip_prefix("DB::")
        && let Some(colon) = rest.find(": ")
        && rest[..colon].ends_with("Exception")
    {
        message = &rest[colon + 2..];
    }
    if let Some(cut) = message.rfind(", e.what() = ") {
        message = &message[..cut];
    }
    if let Some(cut) = message.rfind(" (version ") {
        message = &message[..cut];
    }
    Some((code, message.trim().to_string()))
}

/// The exception a server appended to a `200` body when a query failed after
/// its first block was sent: the last `Code: N` of the body, when nothing but
/// that one exception line follows it.
pub fn trailing_exception(body: &str) -> Option<(u32, String)> {
    let trimmed = body.trim_end();
    let start = trimmed.rfind("Code: ")?;
    let tail = &trimmed[start..];
    if tail.contains('\n') || !tail.contains("Exception") {
        return None;
    }
    parse_exception(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_18_16_exception_gives_its_code_and_message() {
        let body = "Code: 60, e.displayText() = DB::Exception: Table rp.nope doesn't exist., e.what() = DB::Exception\n";
        assert_eq!(
            parse_exception(body),
            Some((60, "Table rp.nope doesn't exist.".to_string()))
        );
    }

    #[test]
    fn a_current_exception_gives_its_code_and_message_without_the_version() {
        let body = "Code: 60. DB::Exception: Table rp.nope does not exist. (UNKNOWN_TABLE) (version 24.8.4.13 (official build))\n";
        assert_eq!(
            parse_exception(body),
            Some((
                60,
                "Table rp.nope does not exist. (UNKNOWN_TABLE)".to_string()
            ))
        );
    }

    #[test]
    fn text_that_is_not_an_exception_gives_none() {
        assert_eq!(parse_exception("Ok.\n"), None);
        assert_eq!(parse_exception("Code: x, nothing"), None);
        assert_eq!(parse_exception("Code: 12 no separator"), None);
        assert_eq!(parse_exception(""), None);
    }

    #[test]
    fn an_exception_appended_to_a_200_body_is_found() {
        let body = "1\tone\n2\ttw\nCode: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded, e.what() = DB::Exception\n";
        assert_eq!(
            trailing_exception(body),
            Some((241, "Memory limit (for query) exceeded".to_string()))
        );
        let cut_mid_row = "{\"a\":1}\n{\"a\":Code: 159. DB::Exception: Timeout exceeded (TIMEOUT_EXCEEDED) (version 25.3.1.1)";
        assert_eq!(trailing_exception(cut_mid_row).map(|(c, _)| c), Some(159));
    }

    #[test]
    fn data_that_mentions_code_is_not_an_exception() {
        assert_eq!(trailing_exception("{\"q\":\"Code: 5, why?\"}\n"), None);
        assert_eq!(
            trailing_exception("Code: 1, e.displayText() = DB::Exception: x\n{\"row\":2}\n"),
            None
        );
        assert_eq!(trailing_exception("{\"a\":1}\n"), None);
    }

    #[test]
    fn a_non_2xx_answer_without_an_exception_keeps_its_status() {
        let e = ClickHouseError::from_status(502, "<html>Bad Gateway</html>");
        assert!(matches!(e, ClickHouseError::Http { status: 502, .. }));
        assert_eq!(e.kind(), FailureKind::Unavailable);
        assert_eq!(e.code(), None);
    }

    #[test]
    fn unreachable_nodes_and_down_shards_are_unavailable_to_the_api() {
        let unreachable = ClickHouseError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert!(StoreError::from(unreachable).is_unavailable());
        let shard_down = ClickHouseError::from_status(
            500,
            "Code: 210, e.displayText() = DB::NetException: Connection refused (127.0.0.1:29000), e.what() = DB::NetException\n",
        );
        assert_eq!(shard_down.code(), Some(210));
        assert!(
            shard_down
                .to_string()
                .ends_with(": Connection refused (127.0.0.1:29000)")
        );
        assert!(StoreError::from(shard_down).is_unavailable());
    }

    #[test]
    fn a_wrong_query_is_neither_unavailable_nor_interrupted() {
        let e = ClickHouseError::from_status(
            400,
            "Code: 62, e.displayText() = DB::Exception: Syntax error, e.what() = DB::Exception\n",
        );
        let store = StoreError::from(e);
        assert!(!store.is_unavailable());
        assert!(!store.is_interrupted());
        let timeout = ClickHouseError::from_status(
            500,
            "Code: 159. DB::Exception: Timeout exceeded: elapsed 1.0 seconds (TIMEOUT_EXCEEDED) (version 25.3.1.1)",
        );
        assert!(StoreError::from(timeout).is_interrupted());
    }
}
