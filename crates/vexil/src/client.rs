//! The HTTP client every command uses, and the failures a command can end with.
//!
//! A failure carries its exit code, one table for every command (docs in README.md, "Exit codes"):
//! 0 done, 1 failed, 2 usage or unknown name, 3 refused by policy (a role, a confirmation, a reason), 4 not
//! authenticated. The mapping from the server's answers lives here, in one place ([`Client::send`]).

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
    /// The command was used wrongly, or named something that does not exist (exit 2).
    Usage(String),
    /// Refused by policy: a role, a protected environment without confirmation or reason (exit 3).
    Refused(String),
    /// Anything else (exit 1).
    Failed(String),
    /// The server's refusal, with its stable code (`unknown_flag`, `version_conflict`, …) and the exit code it maps to.
    Api { exit: i32, code: String, message: String },
    /// The change was made by an earlier attempt of this command whose answer was lost (exit 0).
    AlreadyDone(String),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::AlreadyDone(_) => 0,
            Failure::Failed(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Refused(_) => 3,
            Failure::Api { exit, .. } => *exit,
        }
    }

    /// The stable code of `{"error": {"code", "message"}}` under `--output json`: the server's, or the kind of failure.
    pub fn code(&self) -> &str {
        match self {
            Failure::AlreadyDone(_) => "already_done",
            Failure::Failed(_) => "failed",
            Failure::Usage(_) => "usage",
            Failure::Refused(_) => "refused",
            Failure::Api { code, .. } => code,
        }
    }

    /// The exit code of a server's answer: what the table says for its status and code.
    fn exit_for(status: StatusCode, code: &str) -> i32 {
        match (status.as_u16(), code) {
            (401, _) => 4,
            (403, _) | (_, "reason_required" | "confirmation_required") => 3,
            (_, "promotion_order") => 2,
            (400 | 404 | 405 | 422, _) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message)
            | Failure::Refused(message)
            | Failure::Failed(message)
            | Failure::AlreadyDone(message)
            | Failure::Api { message, .. } => f.write_str(message),
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
    /// Logging in: a 401 is about the email and password sent, not a missing login.
    logging_in: bool,
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
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("vexil-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Failure::Failed(format!("cannot start the HTTP client: {error}")))?;
        let streaming = Http::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("vexil-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Failure::Failed(format!("cannot start the HTTP client: {error}")))?;
        // An empty VEXIL_TOKEN is no token.
        let token = token.filter(|token| !token.trim().is_empty());
        Ok(Self { http, streaming, server, token, logging_in: false })
    }

    /// A client for `vexil login`: no token, and a refusal speaks of the email and password.
    pub fn for_login(server: &str) -> CommandResult<Self> {
        Ok(Self { logging_in: true, ..Self::new(server, None)? })
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
        let response = builder.send().map_err(|error| self.unreachable(&error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        Err(self.refusal(status, &body))
    }

    /// What went wrong reaching the server, said so that the next step is clear.
    fn unreachable(&self, error: &reqwest::Error) -> Failure {
        let cause = root_cause(error);
        let lowered = cause.to_ascii_lowercase();
        let where_ = "(--server or VEXIL_SERVER)";
        let tls = ["tls", "handshake", "eof", "closed", "reset", "certificate", "invalid peer"];
        let message = if self.server.starts_with("https://") && tls.iter().any(|word| lowered.contains(word)) {
            let plain = self.server.replacen("https://", "http://", 1);
            format!("{} did not complete a TLS handshake ({cause}): if the server serves plain HTTP, use --server {plain}", self.server)
        } else if lowered.contains("refused") {
            format!("nothing is listening at {} (connection refused): is `vexil serve` running there? {where_}", self.server)
        } else if error.is_timeout() || lowered.contains("timed out") {
            format!("{} did not answer in time ({cause}): check the address and port {where_}", self.server)
        } else if lowered.contains("dns") || lowered.contains("resolve") || lowered.contains("name or service") {
            format!("cannot find the host of {} ({cause}) {where_}", self.server)
        } else {
            format!("cannot reach the server at {}: {cause}; is `vexil serve` running there? {where_}", self.server)
        };
        Failure::Failed(message)
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
                Err(Failure::Api { code, .. }) => code == "outcome_unknown",
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
        let response = builder.send().map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let text = response.text().map_err(|error| Failure::Failed(format!("the server's reply could not be read: {error}")))?;
        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(Reply { body });
        }
        Err(self.refusal(status, &body))
    }

    /// What a refused request tells the user: the server's message in CLI terms, with its code and exit code.
    fn refusal(&self, status: StatusCode, body: &Value) -> Failure {
        let Some(code) = body.pointer("/error/code").and_then(Value::as_str) else {
            // Not Vexil's error shape: most likely something else listens there (a proxy, another service).
            if status == StatusCode::UNAUTHORIZED && self.token.is_some() {
                return Failure::Api {
                    exit: 4,
                    code: "unauthenticated".to_owned(),
                    message: format!(
                        "{} does not accept your token: log in again with `vexil login --server {}`",
                        self.server, self.server
                    ),
                };
            }
            return Failure::Failed(format!(
                "{} answered {status}, which is not how a Vexil server answers: is this the right address? (--server or VEXIL_SERVER)",
                self.server
            ));
        };
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server at {} answered {status}", self.server));
        let message = match (status, code) {
            // The server speaks HTTP; the person at the terminal needs the command.
            (StatusCode::UNAUTHORIZED, "account_disabled") => message,
            (StatusCode::UNAUTHORIZED, _) if self.logging_in => {
                format!("{message} for {}; try again (an admin can set a new password: vexil user set-password EMAIL)", self.server)
            }
            (StatusCode::UNAUTHORIZED, _) if self.token.is_none() => {
                format!("not logged in to {}: run `vexil login --server {}` (or set VEXIL_TOKEN)", self.server, self.server)
            }
            (StatusCode::UNAUTHORIZED, _) => format!(
                "{} does not accept your token (unknown, revoked or expired): log in again with `vexil login --server {}`, or pass another with --token / VEXIL_TOKEN",
                self.server, self.server
            ),
            _ => message,
        };
        Failure::Api { exit: Failure::exit_for(status, code), code: code.to_owned(), message }
    }
}

/// How long connecting (and a TLS handshake) may take: a wrong address fails in a moment, not after the request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

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
