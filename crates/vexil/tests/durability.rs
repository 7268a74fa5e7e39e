//! Durability: a restart keeps everything, and `kill -9` in the middle of writes loses nothing acknowledged.

mod common;

use common::{ADMIN_TOKEN, Server};
use serde_json::json;

#[test]
fn a_restart_keeps_flags_states_users_and_the_audit_trail() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    assert!(
        server.first_start_output.iter().any(|line| line.contains("email:    admin@localhost")),
        "the first start prints the admin: {:?}",
        server.first_start_output
    );
    assert!(server.first_start_output.iter().any(|line| line.contains(ADMIN_TOKEN)));
    server.cli(&["define", "backend.rag_max_results", "--type", "number", "--default", "5", "--min", "1", "--max", "50"]).ok();
    server.cli(&["set", "backend.rag_max_results", "--env", "staging", "--value", "20", "--enabled", "true"]).ok();
    server.cli(&["user", "add", "viewer@example.com", "--role", "viewer"]).ok();
    let before = server.http().get("/api/flags").body;
    let audit_before = server.http().get("/api/flags/audit").body;
    assert!(server.terminate(), "SIGTERM shuts the server down cleanly (exit 0)");

    let server = Server::start_on(&data);
    assert!(server.first_start_output.is_empty(), "credentials are printed only once: {:?}", server.first_start_output);
    assert_eq!(server.http().get("/api/flags").body, before);
    assert_eq!(server.http().get("/api/flags/audit").body, audit_before);
    let users = server.cli(&["user", "list", "--output", "json"]).ok().json();
    assert!(users.as_array().unwrap().iter().any(|user| user["email"] == "viewer@example.com" && user["role"] == "viewer"));
    let state = server.cli(&["get", "backend.rag_max_results", "--env", "staging", "--output", "json"]).ok().json();
    assert_eq!(state["state"]["serve"]["value"], 20);
    assert_eq!(state["state"]["enabled"], true);
}

#[test]
fn kill_9_during_writes_loses_no_acknowledged_write_or_audit_record() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    server.cli(&["define", "ops.counter", "--type", "number", "--default", "0"]).ok();
    let http = server.http();
    let (acknowledged_sender, acknowledged) = std::sync::mpsc::channel::<u64>();
    let writer = std::thread::spawn(move || {
        let mut value = 0u64;
        loop {
            value += 1;
            let response = http
                .client
                .put(format!("{}/api/flags/ops.counter/environments/dev", http.url))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"enabled": true, "serve": {"value": value}}))
                .send();
            match response {
                Ok(response) if response.status().is_success() => {
                    if acknowledged_sender.send(value).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    // Let a good number of writes be acknowledged, then kill the server without warning.
    let mut last_acknowledged = 0;
    for _ in 0..150 {
        last_acknowledged = acknowledged.recv().expect("the writer keeps writing");
    }
    server.kill();
    while let Ok(value) = acknowledged.recv() {
        last_acknowledged = value;
    }
    writer.join().unwrap();

    let server = Server::start_on(&data);
    let state = server.http().get("/api/flags/ops.counter/environments/dev").body;
    let stored = state["state"]["serve"]["value"].as_u64().unwrap();
    assert!(stored >= last_acknowledged, "acknowledged value {last_acknowledged} survived (stored {stored})");
    assert!(stored <= last_acknowledged + 1, "at most the one unacknowledged write in flight landed (stored {stored})");
    // Every acknowledged write has its audit record, and the chain is intact.
    let records = common::audit_entries(&server, "flag=ops.counter&env=dev").len() as u64;
    assert_eq!(records, stored + 1, "one audit record per stored write, after the flag's creation in dev");
    let report = server.http().get("/api/flags/audit/verify").body;
    assert_eq!(report["intact"], true, "{report}");
}

#[test]
fn audit_verify_detects_a_record_edited_behind_the_servers_back() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "prod", "--yes", "--reason", "Rollout approved by PM"]).ok();
    server.cli(&["disable", "ui.new_feature", "--env=prod", "--reason=Incident #123"]).ok();
    assert!(server.cli(&["audit", "verify"]).ok().stdout.contains("intact: 8 records"));
    assert!(server.terminate());

    // Someone with access to the database rewrites history.
    let database = rusqlite::Connection::open(data.join("vexil.db")).unwrap();
    let doc: String = database.query_row("SELECT doc FROM audit WHERE id = 7", [], |row| row.get(0)).unwrap();
    assert!(doc.contains("Rollout approved by PM"));
    database.execute("UPDATE audit SET doc = ?1 WHERE id = 7", [doc.replace("Rollout approved by PM", "Approved by the CEO")]).unwrap();
    drop(database);

    let server = Server::start_on(&data);
    let broken = server.cli(&["audit", "verify"]).expect_code(1);
    assert!(broken.stdout.contains("audit trail BROKEN: record 7 was altered after it was written"), "{}", broken.stdout);
}

#[test]
fn health_and_readiness_answer_without_credentials() {
    let server = Server::start();
    let anonymous = server.http().with_token(None);
    assert_eq!(anonymous.get("/healthz").body["status"], "ok");
    let ready = anonymous.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(anonymous.get("/api/flags").status, 401);
}
