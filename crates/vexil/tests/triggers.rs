//! Monitoring triggers: a secret URL that rolls a flag back when an alert fires.

mod common;

use common::Server;
use serde_json::{Value, json};

fn post(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::blocking::Client::new().post(url).json(body).send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

#[test]
fn an_alertmanager_webhook_rolls_the_flag_back_and_the_audit_says_which_alert() {
    let server = Server::start();
    server.cli(&["define", "ui.checkout_v2"]).ok();
    server
        .cli(&["set", "ui.checkout_v2", "--env", "prod", "--enabled", "true", "--rollout", "10", "--yes", "--reason", "start the rollout"])
        .ok();
    server.cli(&["set", "ui.checkout_v2", "--env", "prod", "--rollout", "50", "--yes", "--reason", "widen the rollout"]).ok();
    let url =
        server.cli(&["trigger", "create", "ui.checkout_v2", "--env", "prod", "--name", "checkout errors"]).ok().stdout.trim().to_owned();
    assert!(url.starts_with(&format!("{}/api/triggers/vxt_", server.url)), "{url}");

    // A resolved notification changes nothing.
    let (status, answer) = post(&url, &json!({"status": "resolved", "commonLabels": {"alertname": "CheckoutErrorRate"}}));
    assert_eq!((status, answer["rolled_back"].clone()), (200, json!(false)));

    // A firing one restores the state from before the last change: back to 10 %.
    let alert = json!({"version": "4", "status": "firing", "receiver": "vexil",
        "commonLabels": {"alertname": "CheckoutErrorRate", "severity": "page"},
        "alerts": [{"status": "firing", "labels": {"alertname": "CheckoutErrorRate"}}]});
    let (status, answer) = post(&url, &alert);
    assert_eq!((status, answer["rolled_back"].clone()), (200, json!(true)), "{answer}");
    let state = server.http().get("/api/flags/ui.checkout_v2/environments/prod").body;
    assert_eq!(state["state"]["split"]["buckets"][0]["weight"], 10000);
    let audit = server.http().get("/api/flags/audit?flag=ui.checkout_v2&action=rollback").body;
    let entry = &audit["entries"][0];
    assert_eq!(entry["user"], "system:trigger");
    assert_eq!(entry["source"], "system");
    assert_eq!(entry["environment"], "production");
    assert_eq!(entry["reason"], "monitoring trigger \"checkout errors\" fired: CheckoutErrorRate");

    // Alerts repeat while they fire (and any JSON is accepted): a flag already rolled back stays as it is.
    let (status, answer) = post(&url, &json!({"title": "Sentry: checkout exceptions"}));
    assert_eq!((status, answer["rolled_back"].clone()), (200, json!(false)), "{answer}");
    let state = server.http().get("/api/flags/ui.checkout_v2/environments/prod").body;
    assert_eq!(state["state"]["split"]["buckets"][0]["weight"], 10000, "the rollback was not undone");
    // A new change is rolled back by the next firing: here, back to off.
    server.cli(&["define", "ui.fresh"]).ok();
    server.cli(&["enable", "ui.fresh", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let fresh = server.cli(&["trigger", "create", "ui.fresh", "--env", "prod"]).ok().stdout.trim().to_owned();
    assert_eq!(post(&fresh, &json!({})).1["rolled_back"], json!(true));
    assert_eq!(server.http().get("/api/flags/ui.fresh/environments/prod").body["state"]["enabled"], false);

    // Triggers are listed and revoked; a revoked or unknown URL answers 404 and changes nothing.
    let listed = server.cli(&["trigger", "list", "-o", "json"]).ok().json();
    let checkout = listed.as_array().unwrap().iter().find(|trigger| trigger["flag"] == "ui.checkout_v2").expect("listed");
    let id = checkout["id"].as_str().unwrap().to_owned();
    assert_eq!(checkout["name"], "checkout errors");
    server.cli(&["trigger", "revoke", &id]).ok();
    assert_eq!(post(&url, &alert).0, 404);
    assert_eq!(post(&format!("{}/api/triggers/vxt_guessed", server.url), &alert).0, 404);
    // The secret is no credential anywhere else.
    let secret = url.rsplit('/').next().unwrap();
    assert_eq!(server.http().with_token(Some(secret)).get("/api/flags").status, 401);
}

#[test]
fn creating_a_production_trigger_needs_the_right_to_change_production() {
    let server = Server::start();
    server.cli(&["define", "ui.a"]).ok();
    server.cli(&["user", "add", "dev@example.com", "--role", "developer"]).ok();
    let developer = server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned();
    server.cli_as(&developer, &["trigger", "create", "ui.a", "--env", "staging"]).ok();
    let refused = server.cli_as(&developer, &["trigger", "create", "ui.a", "--env", "prod"]).expect_code(3);
    assert!(refused.stderr.contains("needs the admin role"), "{}", refused.stderr);
}
