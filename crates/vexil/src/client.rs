//! The HTTP client every command uses, and the failures a command can end with.
//!
//! A failure carries its exit code: 1 failed, 2 usage, 3 refused by policy (permission, missing
//! reason or confirmation). The mapping from server error codes lives here, in one place.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client as Http, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The command was used wrongly (exit 2).
    Usage(String),
    /// Refused by policy: permissions, a protected environment without confirmation or reason (exit 3).
    Refused(String),
    /// Anything else (exit 1).
    Failed(String),
    /// The change was made by an earlier attempt of this command whose answer was lost (exit 0).
    AlreadyDone(String),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Failed(_) => 1,
            Failure::AlreadyDone(_) => 0,
            Failure::Usage(_) => 2,
            Failure::Refused(_) => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) | Failure::Refused(message) | Failure::Failed(message) | Failure::AlreadyDone(message) => {
                f.write_str(message)
            }
        }
    }
}

/// A command's result.
pub type CommandResult<T = ()> = Result<T, Failure>;

/// What `vexil login` saves.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    /// Server address.
    pub server: Option<String>,
    /// API token.
    pub token: Option<String>,
    /// Who logged in.
    pub email: Option<String>,
}

/// Where `vexil login` saves: `$VEXIL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/vexil`, else `~/.config/vexil`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(directory) = std::env::var_os("VEXIL_CONFIG_DIR") {
        return Some(PathBuf::from(directory));
    }
    if let Some(directory) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(directory).join("vexil"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config").join("vexil"))
}

/// Reads the saved login, if any.
pub fn load_saved() -> Saved {
    config_dir()
        .map(|directory| directory.join("credentials.toml"))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| toml::from_str(&text).ok())
        .unwrap_or_default()
}

/// Saves a login, readable only by the current user.
pub fn save(saved: &Saved) -> CommandResult<PathBuf> {
    let directory = config_dir().ok_or_else(|| Failure::Failed("cannot find a configuration directory; set VEXIL_CONFIG_DIR".into()))?;
    std::fs::create_dir_all(&directory).map_err(|error| Failure::Failed(format!("cannot create {}: {error}", directory.display())))?;
    let path = directory.join("credentials.toml");
    let text = toml::to_string(saved).map_err(|error| Failure::Failed(error.to_string()))?;
    write_private(&path, &text).map_err(|error| Failure::Failed(format!("cannot write {}: {error}", path.display())))?;
    Ok(path)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A connection to one Vexil server.
pub struct Client {
    http: Http,
    streaming: Http,
    /// The server's base address, without a trailing slash.
    pub server: String,
    token: Option<String>,
}

/// A successful response.
pub struct Reply {
    /// The JSON body.
    pub body: Value,
}

impl Client {
    /// A client for `server`, authenticating with `token` when given.
    pub fn new(server: &str, token: Option<String>) -> CommandResult<Self> {
        let server = server.trim_end_matches('/').to_owned();
        let server = if server.starts_with("http://") || server.starts_with("https://") { server } else { format!("http://{server}") };
        let http = Http::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("vexil-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Failure::Failed(format!("cannot start the HTTP client: {error}")))?;
        let streaming = Http::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("vexil-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Failure::Failed(format!("cannot start the HTTP client: {error}")))?;
        Ok(Self { http, streaming, server, token })
    }

    fn request(&self, builder: RequestBuilder) -> RequestBuilder {
        let builder = builder.header("X-Vexil-Source", "cli");
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> CommandResult<Reply> {
        self.send(self.request(self.http.get(self.url(path))))
    }

    /// `GET path` with query parameters.
    pub fn get_query(&self, path: &str, query: &[(&str, String)]) -> CommandResult<Reply> {
        self.send(self.request(self.http.get(self.url(path)).query(query)))
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> CommandResult<Reply> {
        self.send_write(self.request(self.http.post(self.url(path)).json(body)))
    }

    /// `PUT path` with a JSON body and an optional `If-Match` version.
    pub fn put(&self, path: &str, body: &Value, if_match: Option<u64>) -> CommandResult<Reply> {
        let mut builder = self.request(self.http.put(self.url(path)).json(body));
        if let Some(version) = if_match {
            builder = builder.header("If-Match", format!("\"{version}\""));
        }
        self.send_write(builder)
    }

    /// `PATCH path` with a JSON body.
    pub fn patch(&self, path: &str, body: &Value) -> CommandResult<Reply> {
        self.patch_if_match(path, body, None)
    }

    /// `PATCH path` with a JSON body and an optional `If-Match` version.
    pub fn patch_if_match(&self, path: &str, body: &Value, if_match: Option<u64>) -> CommandResult<Reply> {
        let mut builder = self.request(self.http.patch(self.url(path)).json(body));
        if let Some(version) = if_match {
            builder = builder.header("If-Match", format!("\"{version}\""));
        }
        self.send_write(builder)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> CommandResult<Reply> {
        self.send_write(self.request(self.http.delete(self.url(path))))
    }

    /// Opens a server-sent events stream (no overall timeout), resuming after `last_event_id` when given.
    pub fn open_stream(&self, path: &str, last_event_id: Option<u64>) -> CommandResult<reqwest::blocking::Response> {
        let mut builder = self.request(self.streaming.get(self.url(path))).header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            builder = builder.header("Last-Event-ID", id.to_string());
        }
        let response = builder.send().map_err(|error| {
            Failure::Failed(format!("cannot reach the server at {}: {}; is `vexil serve` running?", self.server, root_cause(&error)))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered {status}"));
        Err(if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            Failure::Refused(message)
        } else {
            Failure::Failed(message)
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// Sends a write with an `Idempotency-Key`, and sends it again (with the same key, so it is done at most once)
    /// when the server could not tell whether it was made (`503 outcome_unknown`).
    fn send_write(&self, builder: RequestBuilder) -> CommandResult<Reply> {
        const ATTEMPTS: u32 = 3;
        let builder = builder.header("Idempotency-Key", idempotency_key());
        let mut attempt = 1;
        loop {
            // Write bodies are JSON in memory, so a request can always be copied for the next attempt.
            let Some(request) = builder.try_clone() else { return self.send(builder) };
            let outcome = self.send(request);
            let unknown = match &outcome {
                Err(Failure::Failed(message)) => message.contains("may or may not have been made"),
                _ => false,
            };
            if !unknown || attempt >= ATTEMPTS {
                return match outcome {
                    Ok(reply) if reply.body.get("replayed") == Some(&Value::Bool(true)) => Err(Failure::AlreadyDone(format!(
                        "done: an earlier attempt of this command made the change (audit records {}); its answer was lost, `vexil audit` shows it",
                        reply.body["audit"]
                    ))),
                    other => other,
                };
            }
            std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
            attempt += 1;
        }
    }

    fn send(&self, builder: RequestBuilder) -> CommandResult<Reply> {
        let response = builder.send().map_err(|error| {
            Failure::Failed(format!(
                "cannot reach the server at {}: {}; is `vexil serve` running? (--server or VEXIL_SERVER)",
                self.server,
                root_cause(&error)
            ))
        })?;
        let status = response.status();
        let text = response.text().map_err(|error| Failure::Failed(format!("the server's reply could not be read: {error}")))?;
        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(Reply { body });
        }
        let code = body.pointer("/error/code").and_then(Value::as_str).unwrap_or("").to_owned();
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered {status}"));
        Err(match (status, code.as_str()) {
            (StatusCode::UNAUTHORIZED, _) => {
                Failure::Refused(format!("{message} (log in with `vexil login`, or pass --token / VEXIL_TOKEN)"))
            }
            (StatusCode::FORBIDDEN, _) | (_, "reason_required") => Failure::Refused(message),
            _ => Failure::Failed(message),
        })
    }
}

/// A random key for one write command (128 bits from the standard library's randomly seeded hasher).
fn idempotency_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher
            .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_nanos()).unwrap_or(0));
        hasher.finish()
    };
    format!("vexil-cli-{:016x}{:016x}", half(), half())
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Percent-encodes one path segment (flag names and environment keys are already safe; emails and ids may not be).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
