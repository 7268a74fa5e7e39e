//! Client-side keys (`vexil token create --client --env E`), for code anyone can read (a browser bundle): they evaluate
//! flags for the context they send and report metrics, in one environment, and never see a rule, a targeting key,
//! another user's answer, an owner or who changed what.

mod common;

use common::{ADMIN_TOKEN, Server};
use serde_json::json;

/// The raw bytes of an answer, so nothing is missed by reading it as JSON.
fn raw(server: &Server, method: &str, path: &str, key: &str, body: Option<&serde_json::Value>) -> (u16, String) {
    let client = reqwest::blocking::Client::new();
    let mut request =
        client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", server.url)).bearer_auth(key);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().expect("the server answers");
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn a_client_key_evaluates_for_its_context_and_never_sees_rules_targets_or_people() {
    let server = Server::start();
    let http = server.http();
    let define = json!({"name": "ui.checkout", "type": "string", "owner": "owner-team@asimo.io",
        "variants": [{"name": "control", "value": "control"}, {"name": "treatment", "value": "treatment"}]});
    assert_eq!(http.send("POST", "/api/flags", Some(define.to_string()), &[]).status, 201);
    let state = json!({"enabled": true, "serve": {"variant": "control"},
        "targets": [{"keys": ["alice@customer.example", "tenant-4711"], "serve": {"variant": "treatment"}}],
        "rules": [{"description": "secret staff rule", "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@asimo.io"]}], "serve": {"variant": "treatment"}}],
        "split": {"buckets": [{"serve": {"variant": "treatment"}, "weight": 50000}, {"serve": {"variant": "control"}, "weight": 50000}]}});
    let put = http.send("PUT", "/api/flags/ui.checkout/environments/prod", Some(json!({"reason": "launch", "enabled": true, "serve": state["serve"], "targets": state["targets"], "rules": state["rules"], "split": state["split"]}).to_string()), &[]);
    assert_eq!(put.status, 200, "{:?}", put.body);

    let key = server.cli(&["token", "create", "--client", "--env", "prod", "--name", "web bundle"]).ok().stdout.trim().to_owned();
    assert!(key.starts_with("vxc_"), "a client-side key: {key}");
    let listed = http.get("/api/tokens").body;
    assert!(listed.as_array().unwrap().iter().any(|token| token["kind"] == "client" && token["environment"] == "prod"), "{listed}");

    // It evaluates for the context it sends, one flag or all of them.
    let context = json!({"context": {"targetingKey": "bob", "email": "bob@example.com"}});
    let (status, single) = raw(&server, "POST", "/ofrep/v1/evaluate/flags/ui.checkout", &key, Some(&context));
    assert_eq!(status, 200, "{single}");
    let (status, bulk) = raw(&server, "POST", "/ofrep/v1/evaluate/flags", &key, Some(&context));
    assert_eq!(status, 200, "{bulk}");
    let staff = json!({"context": {"targetingKey": "carol", "email": "carol@asimo.io"}});
    let (_, matched) = raw(&server, "POST", "/ofrep/v1/evaluate/flags/ui.checkout", &key, Some(&staff));
    assert!(matched.contains("\"treatment\""), "the rule applies to the context sent: {matched}");
    for answer in [&single, &bulk, &matched] {
        for secret in ["alice", "tenant-4711", "@asimo.io", "secret staff rule", "owner-team", "admin@localhost", "ends_with", "launch"] {
            assert!(!answer.contains(secret), "an answer to a client-side key names `{secret}`: {answer}");
        }
    }

    // It reports metrics (the guard sees browser traffic).
    let batch = json!({"flags": {"ui.checkout": {"variants": {"treatment": {"evaluations": 10, "errors": 1}}}}});
    assert_eq!(raw(&server, "POST", "/api/feature-flags/metrics", &key, Some(&batch)).0, 202);

    // It never reads the stream (every rule and targeting key), of its environment or another, nor the API.
    let (status, refusal) = raw(&server, "GET", "/api/feature-flags/stream?env=prod", &key, None);
    assert_eq!(status, 403, "{refusal}");
    assert!(refusal.contains("client-side key") && refusal.contains("vexil token create --sdk"), "{refusal}");
    assert_eq!(raw(&server, "GET", "/api/feature-flags/stream?env=staging", &key, None).0, 403);
    assert_eq!(raw(&server, "GET", "/api/feature-flags/stream?env=prod&token=ignored", &key, None).0, 403);
    for path in [
        "/api/flags",
        "/api/flags/ui.checkout",
        "/api/flags/audit",
        "/api/environments/prod/export",
        "/api/flags/ui.checkout/environments/prod",
    ] {
        let (status, body) = raw(&server, "GET", path, &key, None);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("alice"), "{path}: {body}");
    }
    // A server-side SDK key of the same environment still gets the full stream.
    let sdk = common::sdk_key_for(&server, "prod");
    assert!(common::Stream::open(&server, "env=prod", &sdk, None).is_ok());

    // Making one takes the right to change its environment, as for an SDK key: a developer may for dev, not for prod.
    common::cli(
        &server.url,
        Some(ADMIN_TOKEN),
        &["user", "add", "dev@example.com", "--role", "developer", "--password-stdin"],
        Some("developer password\n"),
    )
    .expect_code(0);
    let developer = server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned();
    assert!(server.cli_as(&developer, &["token", "create", "--client", "--env", "dev"]).ok().stdout.trim().starts_with("vxc_"));
    let refused = server.cli_as(&developer, &["token", "create", "--client", "--env", "prod"]);
    assert_ne!(refused.code, 0, "{refused:?}");
}
