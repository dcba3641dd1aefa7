//! The HTTP client of the ClickHouse nodes: one `reqwest` client with a
//! bounded pool (a semaphore caps requests in flight; idle connections close
//! before the server's keep-alive ends), connect and request timeouts, gzip
//! request bodies, and the settings every request carries. Only constructs
//! that 18.16 and current versions share: the database and settings as URL
//! parameters (18.16 ignores the headers), the format in the query text,
//! credentials in `X-ClickHouse-User`/`X-ClickHouse-Key`, and the exception
//! also looked for at the end of a `200` body.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::error::{ClickHouseError, trailing_exception};
use super::{Connection, valid_identifier};

/// Requests in flight to all nodes together; more wait for a permit.
pub const MAX_CONNECTIONS: usize = 32;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Below the server's `keep_alive_timeout` (3 s in Debian's config, 10 s by
/// default), so that the pool never reuses a connection the server closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bodies from this size are sent gzip-compressed (level 1: the research
/// measured the same insert rate at a quarter of the bytes).
const GZIP_FROM_BYTES: usize = 64 * 1024;

/// Settings sent with every request: errors as a 500 rather than at the end
/// of a streamed `200` (small results), and 64-bit integers as JSON numbers
/// (18.16 quotes them by default, 25.8 does not).
const COMMON_SETTINGS: [(&str, &str); 2] = [
    ("wait_end_of_query", "1"),
    ("output_format_json_quote_64bit_integers", "0"),
];

/// A client of the nodes of one ClickHouse cluster.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    nodes: Arc<[String]>,
    database: String,
    user: Option<String>,
    password: Option<String>,
    permits: Arc<Semaphore>,
}

impl Client {
    pub fn new(connection: &Connection) -> Result<Self, ClickHouseError> {
        if connection.urls.is_empty() {
            return Err(ClickHouseError::Config("no ClickHouse URL given".into()));
        }
        for url in &connection.urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ClickHouseError::Config(format!(
                    "ClickHouse URL {url} must start with http:// or https://"
                )));
            }
        }
        valid_identifier("database", &connection.database)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_CONNECTIONS)
            .build()
            .map_err(|e| ClickHouseError::Config(format!("HTTP client: {e}")))?;
        let nodes = connection
            .urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        Ok(Self {
            http,
            nodes,
            database: connection.database.clone(),
            user: connection.user.clone(),
            password: connection.password.clone(),
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        })
    }

    /// The nodes' base URLs, in the order given.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs `sql` (DDL, or a query whose answer is not needed) on `node`,
    /// without a default database (so that it can create it).
    pub async fn execute(&self, node: usize, sql: &str) -> Result<String, ClickHouseError> {
        self.post(node, &[], None, sql.as_bytes().to_vec()).await
    }

    /// Runs a SELECT on `node` in the database and parses its JSONEachRow rows.
    pub async fn rows<T: DeserializeOwned>(
        &self,
        node: usize,
        sql: &str,
    ) -> Result<Vec<T>, ClickHouseError> {
        self.select(node, sql, Some(&self.database)).await
    }

    /// [`Client::rows`] without a default database (for `system` tables,
    /// before the database exists).
    pub async fn system_rows<T: DeserializeOwned>(
        &self,
        node: usize,
        sql: &str,
    ) -> Result<Vec<T>, ClickHouseError> {
        self.select(node, sql, None).await
    }

    async fn select<T: DeserializeOwned>(
        &self,
        node: usize,
        sql: &str,
        database: Option<&str>,
    ) -> Result<Vec<T>, ClickHouseError> {
        let query = format!("{sql} FORMAT JSONEachRow");
        let body = self.post(node, &[], database, query.into_bytes()).await?;
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| {
                    ClickHouseError::Protocol(format!(
                        "{e} in row {}",
                        l.chars().take(200).collect::<String>()
                    ))
                })
            })
            .collect()
    }

    /// Inserts `rows` (JSONEachRow) into `table` of the database through
    /// `node`; answered when every shard acknowledged them
    /// (`insert_distributed_sync=1`: an unreachable shard fails the insert).
    pub async fn insert<T: serde::Serialize>(
        &self,
        node: usize,
        table: &str,
        rows: &[T],
    ) -> Result<(), ClickHouseError> {
        valid_identifier("table", table)?;
        let mut body = Vec::new();
        for row in rows {
            serde_json::to_writer(&mut body, row)
                .map_err(|e| ClickHouseError::Protocol(format!("row not serialisable: {e}")))?;
            body.push(b'\n');
        }
        let query = format!("INSERT INTO {table} FORMAT JSONEachRow");
        self.post(
            node,
            &[("query", &query), ("insert_distributed_sync", "1")],
            Some(&self.database),
            body,
        )
        .await
        .map(drop)
    }

    /// One POST to `node`: settings and the database in the URL, the body
    /// gzip-compressed when large; any failure becomes a [`ClickHouseError`].
    async fn post(
        &self,
        node: usize,
        params: &[(&str, &str)],
        database: Option<&str>,
        body: Vec<u8>,
    ) -> Result<String, ClickHouseError> {
        let base = self
            .nodes
            .get(node)
            .ok_or_else(|| ClickHouseError::Config(format!("no node {node}")))?;
        let mut url = format!("{base}/?");
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(COMMON_SETTINGS);
        query.extend_pairs(params);
        if let Some(database) = database {
            query.append_pair("database", database);
        }
        url.push_str(&query.finish());
        let mut request = self.http.post(&url);
        if let Some(user) = &self.user {
            request = request.header("X-ClickHouse-User", user);
        }
        if let Some(password) = &self.password {
            request = request.header("X-ClickHouse-Key", password);
        }
        request = if body.len() >= GZIP_FROM_BYTES {
            request
                .header(reqwest::header::CONTENT_ENCODING, "gzip")
                .body(gzip(&body)?)
        } else {
            request.body(body)
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ClickHouseError::Config("the client is closed".into()))?;
        let unreachable = |e: reqwest::Error| ClickHouseError::Unreachable {
            url: base.clone(),
            reason: error_chain(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(ClickHouseError::from_status(status.as_u16(), &text));
        }
        if let Some((code, message)) = trailing_exception(&text) {
            return Err(ClickHouseError::Server {
                code,
                message,
                status: status.as_u16(),
            });
        }
        Ok(text)
    }
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, ClickHouseError> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map_err(|e| ClickHouseError::Protocol(format!("gzip: {e}")))
}

/// reqwest's error with its causes ("error sending request: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_gzip_body_decompresses_to_the_rows() {
        let rows = "{\"a\":1}\n".repeat(10_000);
        let compressed = gzip(rows.as_bytes()).unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, rows);
        assert!(compressed.len() < rows.len() / 10);
    }

    #[test]
    fn a_client_refuses_urls_without_a_scheme_and_bad_database_names() {
        let connection = |url: &str, database: &str| Connection {
            urls: vec![url.into()],
            database: database.into(),
            cluster: "ragpulse".into(),
            user: None,
            password: None,
        };
        assert!(Client::new(&connection("http://127.0.0.1:8123/", "rp")).is_ok());
        let no_scheme = Client::new(&connection("127.0.0.1:8123", "rp")).err();
        assert!(matches!(no_scheme, Some(ClickHouseError::Config(_))));
        let bad_name = Client::new(&connection("http://127.0.0.1:8123", "rp; DROP")).err();
        assert!(matches!(bad_name, Some(ClickHouseError::Config(_))));
        let none = Client::new(&Connection {
            urls: Vec::new(),
            ..connection("http://x", "rp")
        })
        .err();
        assert!(matches!(none, Some(ClickHouseError::Config(_))));
    }
}
