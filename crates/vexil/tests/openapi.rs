//! The OpenAPI document at `/api/openapi.json` describes the whole API, and Schemathesis (from PyPI, installed by
//! scripts/test.sh into target/python) fuzzes the real server from it as an admin, as a developer and with an SDK
//! key: no 5xx, no dropped connection, and every answer (status, content type, headers, body) matches the document.

mod common;

use std::process::Command;

use common::{ADMIN_TOKEN, Server};
use serde_json::{Value, json};

fn schemathesis() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/python/bin/schemathesis");
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh creates it (python3 -m venv, pip install -r tests/python/requirements.txt)",
        path.display()
    );
    path
}

/// A server with a flag (the document's example for path parameters), a developer and their token, and a dev SDK key.
fn seeded() -> (Server, String, String) {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    let http = server.http();
    let added = http.post("/api/users", &json!({"email": "dev@example.com", "role": "developer", "password": "a long password"}));
    assert_eq!(added.status, 201, "{:?}", added.body);
    let token = http.post("/api/tokens", &json!({"user": "dev@example.com", "name": "fuzzing"}));
    assert_eq!(token.status, 201, "{:?}", token.body);
    let developer = token.body["token"].as_str().unwrap().to_owned();
    let key = common::sdk_key_for(&server, "dev");
    (server, developer, key)
}

/// Runs Schemathesis against the server with this credential; panics with its report unless every check passed.
fn fuzz(server: &Server, who: &str, credential: &str, only: &[&str]) {
    let report = tempfile::tempdir().unwrap();
    let mut command = Command::new(schemathesis());
    command
        .arg("run")
        .arg(format!("{}/api/openapi.json", server.url))
        .args(["--header", &format!("Authorization: Bearer {credential}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "40", "--seed", "20261201", "--workers", "1"])
        .args(["--request-timeout", "10", "--no-color"])
        // An event stream never ends: its frames are checked by the stream tests.
        .args(["--exclude-path", "/api/feature-flags/stream", "--exclude-path", "/ofrep/v1/events"])
        .current_dir(report.path());
    for pattern in only {
        command.args(["--include-path-regex", pattern]);
    }
    let output = command.output().expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Schemathesis as {who} found answers that break the document:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed"), "Schemathesis as {who} ran no test case:\n{stdout}");
}

#[test]
fn the_document_describes_every_endpoint_as_openapi_3_1() {
    let server = Server::start();
    let document = server.http().with_token(None).get("/api/openapi.json");
    assert_eq!(document.status, 200, "served without credentials, like the health endpoints");
    assert_eq!(document.body["openapi"], "3.1.0");
    let paths = document.body["paths"].as_object().unwrap();
    // The seed's paths and every resource the CLI uses are described, with the methods they answer.
    for (path, method) in [
        ("/api/flags", "get"),
        ("/api/flags", "post"),
        ("/api/flags/{flag}", "patch"),
        ("/api/flags/{flag}/environments/{environment}", "put"),
        ("/api/flags/{flag}/environments/{environment}/disable", "post"),
        ("/api/flags/{flag}/promote", "post"),
        ("/api/flags/audit", "get"),
        ("/api/feature-flags/stream", "get"),
        ("/api/environments/{environment}/import", "post"),
        ("/api/tokens/{id}", "delete"),
        ("/ofrep/v1/evaluate/flags", "post"),
        ("/readyz", "get"),
    ] {
        assert!(paths.get(path).and_then(|item| item.get(method)).is_some(), "{method} {path} is not in the document");
    }
    // Every operation says what its errors look like and who may call it.
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            assert!(operation["responses"].get("default").is_some(), "{method} {path} does not describe its errors");
        }
    }
    let schemes = document.body["components"]["securitySchemes"].as_object().unwrap();
    assert!(["bearer", "sdk_key", "session"].iter().all(|scheme| schemes.contains_key(*scheme)), "{schemes:?}");
    assert_eq!(document.body["components"]["schemas"]["ErrorBody"]["required"], json!(["error"]));
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document_as_admin() {
    let (server, _, _) = seeded();
    fuzz(&server, "the admin", ADMIN_TOKEN, &[]);
    // The server is still whole: it answers, and the audit trail's chain is intact after thousands of requests.
    let verified = server.http().get("/api/flags/audit/verify");
    assert_eq!((verified.status, verified.body["intact"].clone()), (200, Value::Bool(true)), "{:?}", verified.body);
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document_as_developer_and_sdk_key() {
    let (server, developer, key) = seeded();
    fuzz(&server, "a developer", &developer, &[]);
    fuzz(&server, "a dev SDK key", &key, &["^/ofrep/", "^/api/feature-flags/metrics$"]);
    // A developer's fuzzing never reached production: nothing in prod's audit trail is theirs.
    let prod = common::audit_entries(&server, "env=prod");
    assert!(prod.iter().all(|entry| entry["user"] != "dev@example.com"), "{prod:?}");
}
