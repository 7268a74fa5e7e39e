//! Test support: start the real `vexil` binary on a free port and talk to it like a user would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The admin token every test server is bootstrapped with.
pub const ADMIN_TOKEN: &str = "vxl_test_admin_token_0123456789";

/// A running `vexil serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data: PathBuf,
    pub first_start_output: Vec<String>,
    _directory: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut server = Self::start_on(&directory.path().join("data"));
        server._directory = Some(directory);
        server
    }

    /// Starts a server on `data` (kept by the caller), on a free port.
    pub fn start_on(data: &Path) -> Self {
        Self::start_with(data, None)
    }

    /// Starts a server on a fresh data directory with this configuration file content (TOML).
    pub fn start_configured(config: &str) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("vexil.toml");
        std::fs::write(&path, config).expect("configuration is writable");
        let mut server = Self::start_with(&directory.path().join("data"), Some(&path));
        server._directory = Some(directory);
        server
    }

    /// Starts a server on `data`, with a configuration file when given, on a free port.
    pub fn start_with(data: &Path, config: Option<&Path>) -> Self {
        Self::launch(data, config, "127.0.0.1:0")
    }

    /// Starts `vexil serve` on `data` listening on `bind`, and waits until it says where it listens.
    pub fn launch(data: &Path, config: Option<&Path>, bind: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vexil"));
        command.arg("serve");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command.args(["--bind", bind, "--data"]).arg(data);
        Self::launch_command(command, data)
    }

    /// Starts a `vexil serve` command line (with the test admin's bootstrap credentials) and waits for its address.
    pub fn launch_command(mut command: Command, data: &Path) -> Self {
        let mut child = command
            .env("VEXIL_BOOTSTRAP_TOKEN", ADMIN_TOKEN)
            .env("VEXIL_BOOTSTRAP_PASSWORD", "correct horse battery")
            .env("VEXIL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vexil serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut output = Vec::new();
        let url = loop {
            let line = lines.next().expect("vexil serve printed its address before exiting").expect("stdout is readable");
            if let Some(rest) = line.strip_prefix("vexil: listening on ") {
                break rest.split_whitespace().next().expect("an address").to_owned();
            }
            output.push(line);
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url, data: data.to_owned(), first_start_output: output, _directory: None }
    }

    /// Runs `vexil <args>` against this server as the admin, with no terminal.
    pub fn cli(&self, args: &[&str]) -> Outcome {
        self.cli_as(ADMIN_TOKEN, args)
    }

    /// Runs `vexil <args>` against this server with `token`, with no terminal.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Outcome {
        cli(&self.url, Some(token), args, None)
    }

    /// A blocking HTTP client.
    pub fn http(&self) -> Http {
        Http { url: self.url.clone(), client: reqwest::blocking::Client::new(), token: Some(ADMIN_TOKEN.to_owned()) }
    }

    /// Sends SIGTERM and waits; returns whether the process exited successfully.
    pub fn terminate(mut self) -> bool {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        self.child.wait().expect("server exits").success()
    }

    /// `kill -9`.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("server is reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a CLI run did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics with the output unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code}\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Panics unless the command succeeded.
    pub fn ok(self) -> Self {
        self.expect_code(0)
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.stdout))
    }
}

/// Runs the CLI with standard input from `stdin` (or closed), never a terminal.
pub fn cli(url: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Outcome {
    let config = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(env!("CARGO_BIN_EXE_vexil"));
    command.args(args).env("VEXIL_SERVER", url).env("VEXIL_CONFIG_DIR", config.path()).env_remove("VEXIL_TOKEN").env("VEXIL_LOG", "warn");
    if let Some(token) = token {
        command.env("VEXIL_TOKEN", token);
    }
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("vexil runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()).expect("stdin is writable");
    }
    let output = child.wait_with_output().expect("vexil finishes");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A small JSON HTTP client for tests.
pub struct Http {
    pub url: String,
    pub client: reqwest::blocking::Client,
    pub token: Option<String>,
}

/// A response: status, ETag and JSON body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Value,
}

impl Http {
    /// The same server with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Http {
        Http { url: self.url.clone(), client: self.client.clone(), token: token.map(str::to_owned) }
    }

    /// Sends a request with an optional raw body and headers.
    pub fn send(&self, method: &str, path: &str, body: Option<String>, headers: &[(&str, &str)]) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().expect("the server answers");
        let status = response.status().as_u16();
        let etag = response.headers().get("etag").map(|value| value.to_str().unwrap_or_default().to_owned());
        let text = response.text().unwrap_or_default();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Response { status, etag, body }
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.send("POST", path, Some(body.to_string()), &[])
    }

    pub fn put(&self, path: &str, body: &Value, if_match: Option<&str>) -> Response {
        match if_match {
            Some(version) => self.send("PUT", path, Some(body.to_string()), &[("if-match", version)]),
            None => self.send("PUT", path, Some(body.to_string()), &[]),
        }
    }
}

/// Runs the CLI on a pseudo-terminal (util-linux `script`), typing `input`; stdout and stderr arrive together.
pub fn cli_on_terminal(url: &str, token: &str, args: &[&str], input: &str) -> Outcome {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_vexil"))
        .chain(args.iter().copied())
        .map(|arg| format!("'{}'", arg.replace('\'', "'\\''")))
        .collect();
    let config = tempfile::tempdir().expect("temporary directory");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &quoted.join(" "), "/dev/null"])
        .env("VEXIL_SERVER", url)
        .env("VEXIL_TOKEN", token)
        .env("VEXIL_CONFIG_DIR", config.path())
        .env("VEXIL_LOG", "warn")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs (it provides the terminal)");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()).expect("stdin is writable");
    }
    let output = child.wait_with_output().expect("script finishes");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).replace('\r', ""),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Starts a server on `data` listening on `address` (`127.0.0.1:PORT`): a restart where clients that hold the
/// old URL, such as an SDK reconnecting by itself, find the server again.
pub fn start_on_address(data: &Path, address: &str) -> Server {
    Server::launch(data, None, address)
}

/// Creates an SDK key for `environment` with the CLI (`vexil token create --sdk`) and returns it.
pub fn sdk_key_for(server: &Server, environment: &str) -> String {
    let key = server.cli(&["token", "create", "--sdk", "--env", environment]).ok().stdout.trim().to_owned();
    assert!(key.starts_with("vxs_") && !key.contains(char::is_whitespace), "an SDK key: {key:?}");
    key
}

/// How long a test waits for an event that should come "within a moment".
pub const MOMENT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<u64>,
    pub name: String,
    pub data: Value,
}

/// An SSE client on its own thread; events arrive on a channel, `None` when the server closes the stream.
pub struct Stream {
    pub events: std::sync::mpsc::Receiver<Option<Event>>,
}

impl Stream {
    pub fn open(server: &Server, query: &str, token: &str, last_event_id: Option<u64>) -> Result<Stream, u16> {
        Self::open_at(server, &format!("/api/feature-flags/stream?{query}"), Some(token), last_event_id)
    }

    /// A stream at any path (OFREP's change notices: `/ofrep/v1/events?ticket=…`), with or without a bearer key.
    pub fn open_at(server: &Server, path: &str, token: Option<&str>, last_event_id: Option<u64>) -> Result<Stream, u16> {
        let client = reqwest::blocking::Client::builder().timeout(None).build().unwrap();
        let mut request = client.get(format!("{}{path}", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().expect("the server answers");
        if !response.status().is_success() {
            return Err(response.status().as_u16());
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let (sender, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut event = Event { id: None, name: String::new(), data: Value::Null };
            let mut data = String::new();
            for line in BufReader::new(response).lines() {
                let Ok(line) = line else { break };
                if line.is_empty() {
                    if !data.is_empty() {
                        event.data = serde_json::from_str(&data).expect("events carry JSON");
                        if sender.send(Some(event.clone())).is_err() {
                            return;
                        }
                    }
                    event = Event { id: None, name: String::new(), data: Value::Null };
                    data.clear();
                } else if let Some(id) = line.strip_prefix("id: ") {
                    event.id = Some(id.parse().unwrap());
                } else if let Some(name) = line.strip_prefix("event: ") {
                    event.name = name.to_owned();
                } else if let Some(text) = line.strip_prefix("data: ") {
                    data.push_str(text);
                }
            }
            let _ = sender.send(None);
        });
        Ok(Stream { events })
    }

    /// The next event that is not a heartbeat.
    pub fn next(&self) -> Event {
        loop {
            let event = self.events.recv_timeout(MOMENT).expect("an event arrives within a moment").expect("the stream is open");
            if event.name != "heartbeat" {
                return event;
            }
        }
    }

    pub fn next_any(&self) -> Event {
        self.events.recv_timeout(MOMENT).expect("an event arrives within a moment").expect("the stream is open")
    }
}

/// Every audit record matching `filters` (`flag=…&env=…`), following `next` over all pages, newest first.
pub fn audit_entries(server: &Server, filters: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/flags/audit?{filters}&limit=1000&cursor={cursor}"),
            None => format!("/api/flags/audit?{filters}&limit=1000"),
        };
        let page = server.http().get(&path).body;
        entries.extend(page["entries"].as_array().expect("an audit page").iter().cloned());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return entries,
        }
    }
}
