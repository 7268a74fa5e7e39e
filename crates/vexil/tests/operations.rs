//! What operators get: Prometheus metrics that `promtool` accepts, and JSON logs.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{ADMIN_TOKEN, Server, Stream};
use serde_json::{Value, json};

fn scrape(server: &Server) -> String {
    let response = reqwest::blocking::get(format!("{}/metrics", server.url)).unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().unwrap()
}

fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs the Debian package prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The value of the series whose line starts with `series` (name and labels as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find(|line| line.starts_with(series)).and_then(|line| line.rsplit(' ').next()).and_then(|value| value.parse().ok())
}

#[test]
fn prometheus_metrics_say_what_the_server_is_doing_and_promtool_accepts_them() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    let key = common::sdk_key_for(&server, "dev");
    for _ in 0..3 {
        server.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags/ui.new_feature", &json!({"context": {}}));
    }
    assert_eq!(server.http().get("/api/flags/nothing.here").status, 404);
    let stream = Stream::open(&server, "env=dev", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    server.cli(&["disable", "ui.new_feature", "--env", "dev"]).ok();
    assert_eq!(stream.next().name, "change");

    let text = scrape(&server);
    promtool_accepts(&text);
    let ofrep = r#"vexil_http_requests_total{route="/ofrep/v1/evaluate/flags/{key}",method="POST",status="200"}"#;
    assert_eq!(value(&text, ofrep), Some(3.0), "{text}");
    assert_eq!(value(&text, r#"vexil_http_requests_total{route="/api/flags/{flag}",method="GET",status="404"}"#), Some(1.0), "{text}");
    assert!(!text.contains("nothing.here") && !text.contains("ui.new_feature"), "no flag name becomes a label");
    assert_eq!(value(&text, r#"vexil_stream_clients{environment="dev"}"#), Some(1.0), "{text}");
    assert!(value(&text, r#"vexil_stream_deliveries_total{environment="dev"}"#).unwrap() >= 1.0, "{text}");
    assert!(value(&text, "vexil_store_commit_duration_seconds_count").unwrap() >= 3.0, "{text}");
    assert!(value(&text, r#"vexil_credential_lookups_total{kind="cache"}"#).unwrap() >= 1.0, "{text}");
    assert!(value(&text, "vexil_connections").unwrap() >= 1.0, "{text}");
    drop(stream);
}

#[test]
fn with_vexil_log_format_json_every_log_line_is_a_json_object() {
    let directory = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data"])
        .arg(directory.path().join("data"))
        .env("VEXIL_BOOTSTRAP_TOKEN", ADMIN_TOKEN)
        .env("VEXIL_BOOTSTRAP_PASSWORD", "correct horse battery")
        .env("VEXIL_LOG", "info")
        .env("VEXIL_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let url = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.strip_prefix("vexil: listening on ").map(|rest| rest.split_whitespace().next().unwrap().to_owned()))
        .unwrap();
    // Starting and stopping log at info; one request on the way.
    let _ = reqwest::blocking::get(format!("{url}/healthz"));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let lines: Vec<String> = stderr.lines().map(Result::unwrap).filter(|line| !line.trim().is_empty()).collect();
    child.wait().unwrap();
    assert!(!lines.is_empty(), "the server logged something");
    for line in &lines {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(record["timestamp"].is_string() && record["level"].is_string(), "{line}");
    }

    let refused = Command::new(env!("CARGO_BIN_EXE_vexil")).args(["flags"]).env("VEXIL_LOG_FORMAT", "jsn").output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("accepted: text (the default), json"));
}
