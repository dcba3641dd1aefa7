//! Every `curl` example of the README and the docs runs, as written, against
//! a real server: `ragpulse demo` (a day of synthetic history, no live
//! traffic) on port 0 with known tokens.
//!
//! A fenced code block whose text calls `curl` is run whole by `bash` with
//! `set -euo pipefail`, in a scratch directory that holds an `events.ndjson`
//! of valid events (the file the ingest examples send), with
//! `http://127.0.0.1:8080` replaced by the demo's address and
//! `$ADMIN_TOKEN` and `$INGEST_TOKEN` set to its tokens. `curl` is a shell
//! function there that calls the real curl, keeps each answer's status and
//! body, and the check is: the block exits 0, calls curl at least once, and
//! every answer is a 2xx (an ingest answer also with no rejected event).
//!
//! Examples that cannot run against a lone local server (through a reverse
//! proxy, on another host) are fenced with `no-test` after the language,
//! as in "```sh no-test"; GitHub still highlights them as shell.
//! Without curl or bash the test skips with a message, except under
//! `CI=true`, where that is a failure.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::markdown::{Doc, code_blocks, documents};

const ADMIN_TOKEN: &str = "docs-admin-token-0123456789abcdef";
const INGEST_TOKEN: &str = "docs-ingest-token-0123456789abcdef";
/// The address the examples are written for.
const DOCUMENTED_ADDRESS: &str = "http://127.0.0.1:8080";

/// Stops the demo when the test ends, however it ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ragpulse demo` on port 0 in `dir`; its address once it listens.
fn start_demo(dir: &Path) -> (Demo, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ragpulse"));
    command
        .arg("demo")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
        .args(["--ingest-token", INGEST_TOKEN])
        .args(["--days", "1", "--per-day", "400", "--live-rate", "0"])
        .args(["--backup-dir", "backups"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAGPULSE_") {
            command.env_remove(key);
        }
    }
    let mut child = command.spawn().expect("failed to start ragpulse demo");
    let stdout = child.stdout.take().expect("the demo's stdout is piped");
    let demo = Demo(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("ragpulse listening on ") {
                let _ = tx.send(address.trim().to_string());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(180))
        .expect("the demo did not start listening within 180 s");
    (demo, address)
}

/// Whether `tool` runs here; if not, skip (or fail under `CI=true`).
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let why = format!("{tool} is not installed: the documentation's curl examples are not run");
        let under_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!under_ci, "CI=true, but {why}");
        eprintln!("SKIPPED: {why} (CI=true makes this a failure)");
    }
    found
}

/// The curl wrapper every example runs with: the real curl, each answer's
/// status into `$RP_OUT/N.status` and body into `$RP_OUT/N.body`.
const PRELUDE: &str = r#"set -euo pipefail
curl() {
    local n
    n=$(( $(cat "$RP_OUT/count") + 1 ))
    echo "$n" > "$RP_OUT/count"
    command curl --silent --show-error --max-time 60 \
        --output "$RP_OUT/$n.body" --write-out '%{http_code}' "$@" > "$RP_OUT/$n.status"
}
"#;

/// The events.ndjson the ingest examples send: an assistant and an
/// interaction of a minute ago.
fn events_file(dir: &Path) {
    let now = chrono::Utc::now() - chrono::TimeDelta::minutes(1);
    let assistant = "5d1c7e2a-0000-4000-8000-0000000000aa";
    let lines = [
        json!({"type": "assistant", "id": assistant, "name": "Docs bot", "model": "gpt-4o-mini"}),
        json!({"type": "interaction", "id": uuid::Uuid::new_v4().to_string(),
               "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
               "assistant_id": assistant, "session_id": "docs-1",
               "question": "Where is the handbook?", "ttft_s": 0.5}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("events.ndjson"), text).expect("failed to write events.ndjson");
}

/// Runs one example; `Err` says what went wrong.
fn run(body: &str, address: &str, scratch: &Path) -> Result<usize, String> {
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(out.path().join("count"), "0").map_err(|e| e.to_string())?;
    let script = format!("{PRELUDE}{}", body.replace(DOCUMENTED_ADDRESS, address));
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(scratch)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("INGEST_TOKEN", INGEST_TOKEN)
        .env("RP_OUT", out.path())
        .output()
        .map_err(|e| format!("bash did not run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the block exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let read = |name: String| std::fs::read_to_string(out.path().join(name)).unwrap_or_default();
    let calls: usize = read("count".into()).trim().parse().unwrap_or(0);
    if calls == 0 {
        return Err("the block never called curl".into());
    }
    for n in 1..=calls {
        let status = read(format!("{n}.status"));
        let body = read(format!("{n}.body"));
        if !status.starts_with('2') {
            return Err(format!("curl call {n} answered {status}: {body}"));
        }
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if parsed["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
            return Err(format!("curl call {n}: events were rejected: {body}"));
        }
    }
    Ok(calls)
}

/// Whether a block is a curl example the test runs.
fn is_example(info: &str, body: &str) -> bool {
    let runs_curl = body
        .split(|c: char| c.is_whitespace() || c == '|' || c == ';' || c == '(')
        .any(|word| word == "curl");
    runs_curl && !info.split_whitespace().any(|word| word == "no-test")
}

#[test]
fn every_curl_example_of_the_readme_and_the_docs_answers_2xx() {
    if !have("curl") || !have("bash") {
        return;
    }
    let root = tempfile::tempdir().expect("failed to create a temporary directory");
    let (_demo, address) = start_demo(root.path());
    let scratch = root.path().join("scratch");
    std::fs::create_dir(&scratch).expect("failed to create the scratch directory");
    events_file(&scratch);
    let mut failures = Vec::new();
    let mut examples = 0;
    for doc in documents() {
        for block in code_blocks(&doc.text) {
            if !is_example(&block.info, &block.body) {
                continue;
            }
            examples += 1;
            if let Err(why) = run(&block.body, &address, &scratch) {
                failures.push(format!("{}: {why}\n{}", doc.at(block.offset), block.body));
            }
        }
    }
    let readme = Doc::read("README.md");
    assert!(
        code_blocks(&readme.text)
            .iter()
            .any(|b| is_example(&b.info, &b.body)),
        "the README has no curl example"
    );
    assert!(examples >= 5, "only {examples} curl examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A server that answers every request on one connection with `response`.
fn answering(response: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    address
}

#[test]
fn a_failing_example_is_reported_not_passed() {
    // The check itself must be able to fail: a refused connection, a 401, a
    // 207 with a rejected event and a block without curl are all errors.
    if !have("curl") || !have("bash") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let example = format!("curl -H 'Authorization: Bearer $ADMIN_TOKEN' {DOCUMENTED_ADDRESS}/x\n");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    assert!(
        run(&example, &refused, scratch.path()).is_err(),
        "a refused connection passed"
    );
    let unauthorised =
        answering("HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
    assert!(
        run(&example, &unauthorised, scratch.path()).is_err(),
        "a 401 passed"
    );
    let rejected = answering(
        "HTTP/1.1 207 Multi-Status\r\ncontent-length: 66\r\nconnection: close\r\n\r\n\
         {\"accepted\":0,\"duplicates\":0,\"rejected\":[{\"index\":0,\"error\":\"x\"}]}",
    );
    assert!(
        run(&example, &rejected, scratch.path()).is_err(),
        "a rejected event passed"
    );
    let fine = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}");
    assert_eq!(run(&example, &fine, scratch.path()), Ok(1));
    assert!(run("echo no curl here\n", &fine, scratch.path()).is_err());
    assert!(is_example("sh", "gzip -c x | curl -H a http://h"));
    assert!(!is_example("sh no-test", "curl http://h"));
    assert!(!is_example("toml", "url = 1"));
}
