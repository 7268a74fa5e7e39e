//! SDK metrics: batches of evaluations and errors per flag and variant, aggregated for the guard and the panel.

mod common;

use common::{ADMIN_TOKEN, Server};
use serde_json::json;
use vexil_store::conformance::RedisServer;

#[test]
fn batches_in_the_documented_shape_add_up_per_variant() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let key = common::sdk_key_for(&server, "staging");
    let sdk = server.http().with_token(Some(&key));
    let batch = json!({"flags": {
        "ui.new_feature": {"variants": {"true": {"evaluations": 120, "errors": 12}, "false": {"evaluations": 880, "errors": 9}}},
        "ui.unknown": {"variants": {"true": {"evaluations": 5, "errors": 0}}}
    }});
    let accepted = sdk.post("/api/feature-flags/metrics", &batch);
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    assert_eq!(accepted.body["ignored"], json!(["ui.unknown"]));
    assert_eq!(sdk.post("/api/feature-flags/metrics", &batch).status, 202);

    let read = server.http().get("/api/flags/ui.new_feature/environments/staging/metrics?since=10m").body;
    assert_eq!(read["totals"]["true"]["evaluations"], 240);
    assert_eq!(read["totals"]["true"]["errors"], 24);
    assert_eq!(read["totals"]["true"]["error_rate"], 0.1);
    assert_eq!(read["totals"]["false"]["evaluations"], 1760);
    let other = server.http().get("/api/flags/ui.new_feature/environments/prod/metrics").body;
    assert!(other["totals"].as_object().unwrap().is_empty(), "the key's environment is where the counts go");

    // Refused whole: bad shapes, hostile variant names, user tokens, no credentials.
    let refused = sdk.post("/api/feature-flags/metrics", &json!({"flags": {"ui.new_feature": {"variants": {"a\nb": {"evaluations": 1}}}}}));
    assert_eq!(refused.status, 422);
    assert_eq!(
        sdk.post("/api/feature-flags/metrics", &json!({"flags": {"ui.new_feature": {"variants": {"true": {"evaluations": -1}}}}})).status,
        400
    );
    assert_eq!(sdk.post("/api/feature-flags/metrics", &json!({"flags": {"ui.new_feature": {"counts": 3}}})).status, 400);
    assert_eq!(server.http().with_token(Some(ADMIN_TOKEN)).post("/api/feature-flags/metrics", &batch).status, 403);
    assert_eq!(server.http().with_token(None).post("/api/feature-flags/metrics", &batch).status, 401);
    let read = server.http().get("/api/flags/ui.new_feature/environments/staging/metrics?since=10m").body;
    assert_eq!(read["totals"]["true"]["evaluations"], 240, "refused batches added nothing");
}

#[test]
fn counts_sent_to_different_instances_add_up_in_redis() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let first = Server::start_configured(&config);
    let second = Server::start_configured(&config);
    first.cli(&["define", "ui.new_feature"]).ok();
    let key = common::sdk_key_for(&first, "prod");
    let batch = json!({"flags": {"ui.new_feature": {"variants": {"true": {"evaluations": 10, "errors": 1}}}}});
    assert_eq!(first.http().with_token(Some(&key)).post("/api/feature-flags/metrics", &batch).status, 202);
    assert_eq!(second.http().with_token(Some(&key)).post("/api/feature-flags/metrics", &batch).status, 202);
    let read = second.http().get("/api/flags/ui.new_feature/environments/prod/metrics").body;
    assert_eq!(read["totals"]["true"]["evaluations"], 20);
    assert_eq!(read["totals"]["true"]["errors"], 2);
}
