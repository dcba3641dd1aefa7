//! The real binary (`ragpulse serve`) as a child process, for the tests that
//! need what an in-process server cannot give: SIGKILL, exit codes, everything
//! the process prints, a database file another process can lock.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{INGEST_TOKEN, parse_json_exact};

/// A `ragpulse serve` (or `demo`) child process and what it printed.
pub struct Process {
    child: Child,
    pub address: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// How a child that never started listening ended.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Starts `ragpulse serve` on `data_dir` and port 0 and waits for its
/// "ragpulse listening on http://ADDR" line; `Err` when it exits first.
pub fn start(data_dir: &Path, tokens: Option<(&str, &str)>) -> Result<Process, Exited> {
    start_with(data_dir, tokens, &[], &[])
}

/// [`start`] with extra command-line flags for `serve` and extra environment
/// variables (`RUST_LOG`, say).
pub fn start_with(
    data_dir: &Path,
    tokens: Option<(&str, &str)>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Process, Exited> {
    start_command("serve", data_dir, tokens, extra, env)
}

/// `ragpulse demo` on `data_dir` and port 0 with extra flags, as [`start`].
pub fn start_demo(
    data_dir: &Path,
    tokens: Option<(&str, &str)>,
    extra: &[&str],
) -> Result<Process, Exited> {
    start_command("demo", data_dir, tokens, extra, &[])
}

fn start_command(
    subcommand: &str,
    data_dir: &Path,
    tokens: Option<(&str, &str)>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Process, Exited> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ragpulse"));
    command
        .arg(subcommand)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        // No ./ragpulse.toml can be picked up from here.
        .current_dir(data_dir.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RAGPULSE_") {
            command.env_remove(key);
        }
    }
    if let Some((admin, ingest)) = tokens {
        command.args(["--admin-token", admin, "--ingest-token", ingest]);
    }
    command.args(extra);
    command.envs(env.iter().copied());
    let mut child = command
        .spawn()
        .expect("failed to start the ragpulse binary");
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let (first_line, first) = mpsc::channel::<String>();
    {
        let pipe = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                if !sent {
                    let _ = first_line.send(line);
                    sent = true;
                }
            }
        });
    }
    {
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
    }
    match first.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => {
            let address = line
                .strip_prefix("ragpulse listening on ")
                .unwrap_or_else(|| panic!("unexpected first stdout line {line:?}"))
                .to_string();
            assert!(address.starts_with("http://127.0.0.1:"), "{line:?}");
            Ok(Process {
                child,
                address,
                stdout,
                stderr,
            })
        }
        Err(_) => {
            let status = wait_for_exit(&mut child, Duration::from_secs(30))
                .expect("the server neither printed its address nor exited");
            // Let the reader threads drain the pipes.
            std::thread::sleep(Duration::from_millis(200));
            let stdout = stdout.lock().unwrap().clone();
            let stderr = stderr.lock().unwrap().clone();
            Err(Exited {
                status,
                stdout,
                stderr,
            })
        }
    }
}

fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait failed") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Process {
    /// SIGKILL: no shutdown hook runs.
    pub fn kill(mut self) -> (String, String) {
        self.child.kill().expect("failed to kill the server");
        self.child.wait().expect("failed to reap the server");
        std::thread::sleep(Duration::from_millis(200));
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        (stdout, stderr)
    }

    pub async fn ingest(&self, client: &reqwest::Client, events: Value) -> (StatusCode, Value) {
        let response = client
            .post(format!("{}/api/v1/ingest", self.address))
            .bearer_auth(INGEST_TOKEN)
            .json(&json!({"events": events}))
            .send()
            .await
            .expect("ingest request failed");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, parse_json_exact(&text).unwrap_or(Value::Null))
    }

    pub async fn get(
        &self,
        client: &reqwest::Client,
        path: &str,
        token: &str,
    ) -> (StatusCode, Value) {
        let response = client
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET request failed");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, parse_json_exact(&text).unwrap_or(Value::Null))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// The child's process id (for /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kB` line of /proc/PID/status (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("failed to read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
            * 1024
    }

    /// What the child printed so far: (stdout, stderr).
    pub fn output(&self) -> (String, String) {
        (
            self.stdout.lock().unwrap().clone(),
            self.stderr.lock().unwrap().clone(),
        )
    }

    /// SIGTERM, then waits for a graceful exit (panics after `within`):
    /// the exit status and everything printed.
    pub fn terminate(mut self, within: Duration) -> (ExitStatus, String, String) {
        // SAFETY: a plain kill(2) on our own child's pid.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "failed to send SIGTERM to the server");
        let status = wait_for_exit(&mut self.child, within)
            .unwrap_or_else(|| panic!("the server did not stop within {within:?} of SIGTERM"));
        std::thread::sleep(Duration::from_millis(200));
        let (stdout, stderr) = self.output();
        (status, stdout, stderr)
    }
}

/// The data directory a test uses: `data` under a temporary root.
pub fn data_dir(root: &tempfile::TempDir) -> PathBuf {
    root.path().join("data")
}
