//! Monitoring triggers: a secret URL that rolls a flag back when an alert fires.

mod common;

use common::Server;
use serde_json::{Value, json};

fn post(url: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::blocking::Client::new().post(url).json(body).send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn alertmanager(status: &str) -> Value {
    json!({"version": "4", "status": status, "receiver": "vexil",
        "commonLabels": {"alertname": "CheckoutErrorRate", "severity": "page"},
        "alerts": [{"status": status, "labels": {"alertname": "CheckoutErrorRate"}}]})
}

fn prod_state(server: &Server, flag: &str) -> Value {
    server.http().get(&format!("/api/flags/{flag}/environments/prod")).body["state"].clone()
}

#[test]
fn a_rollback_trigger_restores_the_state_before_the_last_change_and_the_audit_says_which_alert() {
    let server = Server::start();
    server.cli(&["define", "ui.checkout_v2"]).ok();
    server
        .cli(&["set", "ui.checkout_v2", "--env", "prod", "--enabled", "true", "--rollout", "10", "--yes", "--reason", "start the rollout"])
        .ok();
    server.cli(&["set", "ui.checkout_v2", "--env", "prod", "--rollout", "50", "--yes", "--reason", "widen the rollout"]).ok();
    let url = server
        .cli(&["trigger", "create", "ui.checkout_v2", "--env", "prod", "--name", "checkout errors", "--action", "rollback"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    assert!(url.starts_with(&format!("{}/api/triggers/vxt_", server.url)), "{url}");

    // A resolved notification changes nothing.
    let (status, answer) = post(&url, &alertmanager("resolved"));
    assert_eq!((status, answer["acted"].clone()), (200, json!(false)), "{answer}");

    // A firing one restores the state from before the last change: back to 10 %.
    let (status, answer) = post(&url, &alertmanager("firing"));
    assert_eq!((status, answer["acted"].clone(), answer["action"].clone()), (200, json!(true), json!("rollback")), "{answer}");
    assert_eq!(prod_state(&server, "ui.checkout_v2")["split"]["buckets"][0]["weight"], 10000);
    let audit = server.http().get("/api/flags/audit?flag=ui.checkout_v2&action=rollback").body;
    let entry = &audit["entries"][0];
    assert_eq!(entry["user"], "system:trigger");
    assert_eq!(entry["source"], "system");
    assert_eq!(entry["environment"], "production");
    assert_eq!(entry["reason"], "monitoring trigger \"checkout errors\" fired: CheckoutErrorRate");

    // Alerts repeat while they fire: a flag already rolled back stays as it is.
    let (status, answer) = post(&url, &alertmanager("firing"));
    assert_eq!((status, answer["acted"].clone()), (200, json!(false)), "{answer}");
    assert_eq!(prod_state(&server, "ui.checkout_v2")["split"]["buckets"][0]["weight"], 10000, "the rollback was not undone");

    // Triggers are listed with their action and revoked; a revoked or unknown URL answers 404 and changes nothing.
    let listed = server.cli(&["trigger", "list", "-o", "json"]).ok().json();
    let checkout = listed.as_array().unwrap().iter().find(|trigger| trigger["flag"] == "ui.checkout_v2").expect("listed");
    let id = checkout["id"].as_str().unwrap().to_owned();
    assert_eq!((checkout["name"].as_str(), checkout["action"].as_str()), (Some("checkout errors"), Some("rollback")));
    server.cli(&["trigger", "revoke", &id]).ok();
    assert_eq!(post(&url, &alertmanager("firing")).0, 404);
    assert_eq!(post(&format!("{}/api/triggers/vxt_guessed", server.url), &alertmanager("firing")).0, 404);
    // The secret is no credential anywhere else.
    let secret = url.rsplit('/').next().unwrap();
    assert_eq!(server.http().with_token(Some(secret)).get("/api/flags").status, 401);
}

#[test]
fn a_trigger_is_the_kill_switch_by_default_and_never_undoes_a_disable_or_widens_a_rollout() {
    let server = Server::start();
    server.cli(&["define", "ui.fresh"]).ok();
    server.cli(&["enable", "ui.fresh", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let kill = server.cli(&["trigger", "create", "ui.fresh", "--env", "prod"]).ok().stdout.trim().to_owned();
    let (status, answer) = post(&kill, &alertmanager("firing"));
    assert_eq!((status, answer["action"].clone(), answer["acted"].clone()), (200, json!("disable"), json!(true)), "{answer}");
    assert_eq!(prod_state(&server, "ui.fresh")["enabled"], false);
    let audit = server.http().get("/api/flags/audit?flag=ui.fresh&env=prod").body;
    assert_eq!((audit["entries"][0]["action"].as_str(), audit["entries"][0]["user"].as_str()), (Some("disable"), Some("system:trigger")));

    // A person's kill switch: enable, then disable for an incident; a rollback trigger must not turn it back on.
    server.cli(&["define", "ui.incident"]).ok();
    server.cli(&["enable", "ui.incident", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    server.cli(&["disable", "ui.incident", "--env=prod", "--reason=INCIDENT"]).ok();
    let rollback = server.cli(&["trigger", "create", "ui.incident", "--env", "prod", "--action", "rollback"]).ok().stdout.trim().to_owned();
    let (status, answer) = post(&rollback, &alertmanager("firing"));
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("only ever reduce exposure"), "{answer}");
    assert_eq!(prod_state(&server, "ui.incident")["enabled"], false, "the disable stands");

    // A rollout cut back from 100 % to 33 %: the alert does not put it back to 100 %.
    server.cli(&["define", "ui.cutback"]).ok();
    server.cli(&["enable", "ui.cutback", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    server.cli(&["set", "ui.cutback", "--env", "prod", "--rollout", "33", "--yes", "--reason", "errors: cut back"]).ok();
    let rollback = server.cli(&["trigger", "create", "ui.cutback", "--env", "prod", "--action", "rollback"]).ok().stdout.trim().to_owned();
    assert_eq!(post(&rollback, &alertmanager("firing")).0, 409);
    assert_eq!(prod_state(&server, "ui.cutback")["split"]["buckets"][0]["weight"], 33000);
    let rollbacks = server.http().get("/api/flags/audit?action=rollback").body;
    assert_eq!(rollbacks["entries"].as_array().unwrap().len(), 0, "nothing was rolled back: {rollbacks}");
}

#[test]
fn only_a_recognised_firing_notification_fires_and_anything_else_is_refused_with_what_is_expected() {
    let server = Server::start();
    server.cli(&["define", "ui.fresh"]).ok();
    server.cli(&["enable", "ui.fresh", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let url = server.cli(&["trigger", "create", "ui.fresh", "--env", "prod"]).ok().stdout.trim().to_owned();
    let refused = [
        json!({"status": "Resolved", "alerts": []}),
        json!({"status": "Resolved"}),
        json!({"title": "Sentry: checkout exceptions"}),
        json!({"state": "exploded"}),
        json!([1, 2]),
    ];
    for body in refused {
        let (status, answer) = post(&url, &body);
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("expected an Alertmanager"), "{answer}");
    }
    let quiet = [json!({"state": "ok", "ruleName": "checkout"}), json!({"action": "resolved", "data": {}}), alertmanager("resolved")];
    for body in quiet {
        let (status, answer) = post(&url, &body);
        assert_eq!((status, answer["acted"].clone()), (200, json!(false)), "{body}: {answer}");
    }
    assert_eq!(prod_state(&server, "ui.fresh")["enabled"], true, "nothing above fired");
    let (status, answer) = post(&url, &json!({"state": "alerting", "ruleName": "checkout latency"}));
    assert_eq!((status, answer["acted"].clone()), (200, json!(true)), "a Grafana alert fires: {answer}");
    let audit = server.http().get("/api/flags/audit?flag=ui.fresh&env=prod").body;
    assert!(audit["entries"][0]["reason"].as_str().unwrap().ends_with("fired: checkout latency"), "{audit}");
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

#[test]
fn a_rollback_never_restores_a_state_whose_variants_were_given_new_values_since() {
    // Round 10: production is off, armed with `risky`; an admin re-arms it with `safe`. `risky` is then named nowhere
    // in production, so a developer may give it a new value. A rollback trigger restoring "off, risky" would have
    // armed production with the developer's value, served by the admin's next plain enable.
    let server = Server::start();
    server.cli(&["user", "add", "dev@example.com", "--role", "developer"]).ok();
    let developer = server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned();
    let created = server.http().with_token(Some(&developer)).post(
        "/api/flags",
        &json!({"name": "ui.rearm", "type": "string", "default": "off", "variants": [
            {"name": "safe", "value": "v1"}, {"name": "risky", "value": "v2"}]}),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    for (variant, reason) in [("risky", "prepare"), ("safe", "risky is broken, use safe")] {
        let set = server.http().put(
            "/api/flags/ui.rearm/environments/prod",
            &json!({"enabled": false, "serve": {"variant": variant}, "reason": reason}),
            None,
        );
        assert_eq!(set.status, 200, "{:?}", set.body);
    }
    let edited = server.http().with_token(Some(&developer)).send(
        "PATCH",
        "/api/flags/ui.rearm",
        Some(json!({"variants": [{"name": "safe", "value": "v1"}, {"name": "risky", "value": "DEV-CHOSEN"}]}).to_string()),
        &[],
    );
    assert_eq!(edited.status, 200, "risky is named nowhere in production now: {:?}", edited.body);
    let url = server.cli(&["trigger", "create", "ui.rearm", "--env", "prod", "--action", "rollback"]).ok().stdout.trim().to_owned();

    let (status, answer) = post(&url, &alertmanager("firing"));
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("cannot_restore")), "{answer}");
    assert_eq!(prod_state(&server, "ui.rearm")["serve"], json!({"variant": "safe"}), "production stays armed as the admin left it");
    server.cli(&["enable", "ui.rearm", "--env", "prod", "--yes", "--reason", "go"]).ok();
    let key = common::sdk_key_for(&server, "prod");
    let served = reqwest::blocking::Client::new()
        .post(format!("{}/ofrep/v1/evaluate/flags/ui.rearm", server.url))
        .bearer_auth(&key)
        .json(&json!({"context": {"targetingKey": "user-1"}}))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(served["value"], "v1", "{served}");

    // A definition edit that changes nothing the earlier state serves does not stand in the way of a rollback: the
    // alert undoes the admin's enable.
    let described = server.http().with_token(Some(&developer)).send(
        "PATCH",
        "/api/flags/ui.rearm",
        Some(json!({"description": "the re-arm test flag"}).to_string()),
        &[],
    );
    assert_eq!(described.status, 200, "{:?}", described.body);
    let (status, answer) = post(&url, &alertmanager("firing"));
    assert_eq!((status, answer["acted"].as_bool()), (200, Some(true)), "{answer}");
    let state = prod_state(&server, "ui.rearm");
    assert_eq!((state["enabled"].clone(), state["serve"].clone()), (json!(false), json!({"variant": "safe"})), "{answer}");
}

#[test]
fn revoking_an_sdk_key_or_a_trigger_needs_the_right_that_created_it_and_is_audited_in_its_environment() {
    // Round 10: an admin demoted to viewer could still revoke the production SDK key and kill-switch trigger they
    // created (cutting production applications off, removing an automatic kill switch), and the record had no
    // environment, so `audit --env prod` did not show it.
    let server = Server::start();
    server.cli(&["define", "ui.a"]).ok();
    server.cli(&["user", "add", "ops@example.com", "--role", "admin"]).ok();
    let ops = server.cli(&["token", "create", "--user", "ops@example.com"]).ok().stdout.trim().to_owned();
    let as_ops = server.http().with_token(Some(&ops));
    let key = as_ops.post("/api/tokens", &json!({"kind": "sdk", "environment": "prod", "name": "prod app"}));
    assert_eq!(key.status, 201, "{:?}", key.body);
    let trigger = as_ops.post("/api/triggers", &json!({"flag": "ui.a", "environment": "prod", "name": "kill switch"}));
    assert_eq!(trigger.status, 201, "{:?}", trigger.body);
    server.cli(&["user", "set-role", "ops@example.com", "viewer"]).ok();

    for id in [key.body["id"].as_str().unwrap(), trigger.body["id"].as_str().unwrap()] {
        let refused = as_ops.send("DELETE", &format!("/api/tokens/{id}"), None, &[]);
        assert_eq!(refused.status, 403, "{:?}", refused.body);
    }
    let evaluated = reqwest::blocking::Client::new()
        .post(format!("{}/ofrep/v1/evaluate/flags/ui.a", server.url))
        .bearer_auth(key.body["token"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(evaluated.status(), 200, "the production key still works");

    // An admin may, and production's trail shows it, with the flag for a trigger.
    for id in [key.body["id"].as_str().unwrap(), trigger.body["id"].as_str().unwrap()] {
        let revoked = server.http().send("DELETE", &format!("/api/tokens/{id}"), None, &[]);
        assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    }
    let prod = common::audit_entries(&server, "env=prod");
    let revokes: Vec<&Value> = prod.iter().filter(|entry| entry["action"] == "token_revoke").collect();
    assert_eq!(revokes.len(), 2, "{prod:?}");
    assert!(revokes.iter().any(|entry| entry["flag"] == "ui.a"), "{revokes:?}");
}

#[test]
fn during_a_rollout_the_state_it_would_restore_is_production_s_and_so_are_its_variants() {
    // Round 11: during a production plan a developer could edit a variant that only the pre-plan state named; a
    // rollback (trigger or guard) then restored that state with the developer's value, served at the next enable.
    let server = Server::start();
    server.cli(&["user", "add", "dev@example.com", "--role", "developer"]).ok();
    let developer = server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned();
    let created =
        server.http().post("/api/flags", &json!({"name": "ui.launch", "type": "boolean", "variants": [{"name": "go", "value": true}]}));
    assert_eq!(created.status, 201, "{:?}", created.body);
    let armed = server.http().put(
        "/api/flags/ui.launch/environments/prod",
        &json!({"enabled": false, "serve": {"variant": "go"}, "reason": "armed for launch"}),
        None,
    );
    assert_eq!(armed.status, 200, "{:?}", armed.body);
    let started = server
        .http()
        .post("/api/flags/ui.launch/environments/prod/rollout", &json!({"steps": [10, 50, 100], "every": "1h", "reason": "launch"}));
    assert_eq!(started.status, 200, "{:?}", started.body);

    let edit = json!({"variants": [{"name": "go", "value": false}]}).to_string();
    let refused = server.http().with_token(Some(&developer)).send("PATCH", "/api/flags/ui.launch", Some(edit.clone()), &[]);
    assert_eq!(refused.status, 403, "the pre-plan state names go: {:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("production"), "{:?}", refused.body);
    // An admin may, with a reason, and production's trail shows it.
    let approved = server.http().send(
        "PATCH",
        "/api/flags/ui.launch",
        Some(json!({"variants": [{"name": "go", "value": false}], "reason": "go means off now"}).to_string()),
        &[],
    );
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    let prod = common::audit_entries(&server, "env=prod&flag=ui.launch");
    assert!(prod.iter().any(|entry| entry["action"] == "update" && entry["reason"] == "go means off now"), "{prod:?}");
}

#[test]
fn json_values_and_import_documents_carry_no_direction_overrides_and_reasons_must_say_something() {
    let server = Server::start();
    let spoofed = server.http().post("/api/flags", &json!({"name": "ui.layout", "type": "json", "default": {"title": "a\u{202e}b"}}));
    assert_eq!(spoofed.status, 422, "{:?}", spoofed.body);
    let key = server.http().post("/api/flags", &json!({"name": "ui.layout", "type": "json", "default": {"\u{2067}k": 1}}));
    assert_eq!(key.status, 422, "{:?}", key.body);
    let fine = server
        .http()
        .post("/api/flags", &json!({"name": "ui.layout", "type": "json", "default": {"text": "line one\nline two\tand a tab"}}));
    assert_eq!(fine.status, 201, "{:?}", fine.body);
    let document = json!({"format": "vexil.states", "version": 1, "environment": "staging\u{202e}", "flags": {}});
    let import = server.http().post("/api/environments/dev/import", &json!({"document": document}));
    assert_eq!(import.status, 422, "{:?}", import.body);
    server.cli(&["define", "ui.a"]).ok();
    for reason in [
        "\u{2800}",
        "\u{e0041}\u{e0042}",
        "\u{fe0f}",
        "\u{206a}\u{206f}",
        "\u{1d173}",
        "\u{3164}",
        "\u{0345}\u{05b0}",
        "\u{0e31}",
        "\u{0670}",
    ] {
        let refused = server.http().post("/api/flags/ui.a/environments/prod/enable", &json!({"reason": reason}));
        assert_eq!(refused.status, 422, "{reason:?}: {:?}", refused.body);
    }
    let trigger = server.http().post("/api/triggers", &json!({"flag": "ui.a", "environment": "dev", "name": "\u{2800}"}));
    assert_eq!(trigger.status, 422, "{:?}", trigger.body);
    assert_eq!(server.http().get("/api/flags/ui.a/environments/prod").body["state"]["enabled"], false);
}
