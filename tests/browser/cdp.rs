//! A minimal Chrome DevTools Protocol client over tokio-tungstenite (already a
//! dependency), enough to drive headless Chromium: open a page, evaluate
//! JavaScript, wait for a condition, take a screenshot. No browser-automation
//! crate: each would add minutes of compile time for these few commands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One DevTools command may take this long (a screenshot of a tall page included).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Chromium prints its DevTools address within this time, or the launch failed.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The flags the machine notes require: without the background-networking ones
/// Chromium keeps trying to reach Google's hosts on a closed network and can hang.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--password-store=basic",
    "--remote-debugging-port=0",
    "--window-size=1440,1000",
];

/// The Chromium binary: `$CHROMIUM` if set, else the first of the usual names on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

struct Connection {
    sink: Mutex<Sink>,
    pending: std::sync::Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    /// Page exceptions, console errors and log entries, for assertions.
    events: std::sync::Mutex<Vec<Value>>,
    next_id: AtomicU64,
}

impl Connection {
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (reply, answer) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, reply);
        self.sink
            .lock()
            .await
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("cannot send {method} to Chromium: {e}"));
        let answer = tokio::time::timeout(CALL_TIMEOUT, answer)
            .await
            .unwrap_or_else(|_| panic!("Chromium did not answer {method} within {CALL_TIMEOUT:?}"))
            .unwrap_or_else(|_| panic!("the DevTools connection closed during {method}"));
        if let Some(error) = answer.get("error") {
            panic!("{method} failed: {error}");
        }
        answer["result"].clone()
    }
}

/// A headless Chromium process with its own fresh profile; killed on drop.
pub struct Browser {
    connection: Arc<Connection>,
    _child: Child,
    _profile: TempDir,
    reader: JoinHandle<()>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Browser {
    pub async fn launch(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("cannot create a Chromium profile directory");
        let mut child = Command::new(binary)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("Chromium's stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let address = tokio::time::timeout(LAUNCH_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("DevTools listening on ").nth(1) {
                    return Some(rest.trim().to_string());
                }
                seen.push(line);
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "{} printed no DevTools address; its output:\n{}",
                binary.display(),
                seen.join("\n")
            )
        });
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(address.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to Chromium at {address}: {e}"));
        let (sink, mut stream) = socket.split();
        let connection = Arc::new(Connection {
            sink: Mutex::new(sink),
            pending: std::sync::Mutex::new(HashMap::new()),
            events: std::sync::Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        });
        let inbox = connection.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if let Some(id) = value.get("id").and_then(Value::as_u64) {
                    if let Some(reply) = inbox.pending.lock().unwrap().remove(&id) {
                        let _ = reply.send(value);
                    }
                } else if matches!(
                    value["method"].as_str(),
                    Some("Runtime.exceptionThrown" | "Runtime.consoleAPICalled" | "Log.entryAdded")
                ) {
                    inbox.events.lock().unwrap().push(value);
                }
            }
        });
        Browser {
            connection,
            _child: child,
            _profile: profile,
            reader,
        }
    }

    /// A new tab of `width` × `height` CSS pixels, attached with its own session.
    pub async fn new_page(&self, width: u32, height: u32) -> Page {
        let target = self
            .connection
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = self
            .connection
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        let page = Page {
            connection: self.connection.clone(),
            session: attached["sessionId"]
                .as_str()
                .expect("attachToTarget answers a sessionId")
                .to_string(),
        };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page.call("Log.enable", json!({})).await;
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        // The page formats numbers and times in the reader's locale: the
        // expectations are en-US's, whatever the machine's.
        page.call("Emulation.setLocaleOverride", json!({"locale": "en-US"}))
            .await;
        page
    }

    /// Exceptions thrown by pages, console errors and browser log errors so far.
    pub fn errors(&self) -> Vec<String> {
        self.connection
            .events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|event| {
                let params = &event["params"];
                match event["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(format!(
                        "exception: {}",
                        params["exceptionDetails"]["exception"]["description"]
                            .as_str()
                            .or(params["exceptionDetails"]["text"].as_str())
                            .unwrap_or("?")
                    )),
                    "Runtime.consoleAPICalled" if params["type"] == "error" => {
                        Some(format!("console.error: {}", params["args"]))
                    }
                    "Log.entryAdded" if params["entry"]["level"] == "error" => Some(format!(
                        "log ({}): {}",
                        params["entry"]["source"].as_str().unwrap_or("?"),
                        params["entry"]["text"].as_str().unwrap_or("?")
                    )),
                    _ => None,
                }
            })
            .collect()
    }
}

/// One tab.
pub struct Page {
    connection: Arc<Connection>,
    session: String,
}

impl Page {
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.connection
            .call(Some(&self.session), method, params)
            .await
    }

    /// Navigates and waits for the document's load event.
    pub async fn navigate(&self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(error) = result.get("errorText") {
            panic!("cannot open {url}: {error}");
        }
        self.wait_for(
            "the document to load",
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        )
        .await;
    }

    /// The value of a JavaScript expression (promises awaited); panics on an exception.
    pub async fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|details| panic!("evaluating {expression:?} threw: {details}"))
    }

    /// As [`Page::eval`], with the exception as an error (a page in the middle
    /// of loading has no `document.body` yet, for instance).
    pub async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(details) = result.get("exceptionDetails") {
            return Err(details["exception"]["description"]
                .as_str()
                .map_or_else(|| details.to_string(), str::to_string));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `expression` until it is truthy and returns its value; an
    /// exception counts as "not yet" (the page may be reloading).
    pub async fn wait_for(&self, what: &str, expression: &str, timeout: Duration) -> Value {
        let started = tokio::time::Instant::now();
        loop {
            let value = self
                .try_eval(expression)
                .await
                .unwrap_or_else(|error| json!({ "exception": error }));
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("")
                && value.get("exception").is_none();
            if truthy {
                return value;
            }
            if started.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {what}; last value {value}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the whole page (beyond the viewport), written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let (width, height) = (
            size["width"].as_f64().unwrap_or(1440.0),
            size["height"].as_f64().unwrap_or(1000.0),
        );
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }),
            )
            .await;
        let png = base64_decode(shot["data"].as_str().expect("a screenshot has data"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("cannot create the artifact directory");
        }
        std::fs::write(path, png).expect("cannot write the screenshot");
    }
}

/// Standard base64 (with padding), as DevTools sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes_padded_and_unpadded_text() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aA=="), b"h");
}
