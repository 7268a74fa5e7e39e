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

#[test]
fn what_one_key_can_report_is_bounded_to_servable_labels_a_per_minute_budget_and_a_short_backdate() {
    let server = Server::start_configured("metrics_key_evaluations_per_minute = 5000\nmetrics_max_backdate_minutes = 10\n");
    server.cli(&["define", "ui.new_feature"]).ok();
    let key = common::sdk_key_for(&server, "prod");
    let sdk = server.http().with_token(Some(&key));
    let totals = || server.http().get("/api/flags/ui.new_feature/environments/prod/metrics?since=1h").body["totals"].clone();

    // Labels must be ones the flag can serve: no inventing rows.
    let invented = json!({"flags": {"ui.new_feature": {"variants": {
        "true": {"evaluations": 10}, "variant-0001": {"evaluations": 1}, "variant-0002": {"evaluations": 1}}}}});
    let refused = sdk.post("/api/feature-flags/metrics", &invented);
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`variant-0001` of ui.new_feature (it can serve: true, false)"), "{message}");
    assert!(totals().as_object().unwrap().is_empty(), "nothing of a refused batch is counted");
    // Errors are failed evaluations, never more.
    let implausible = json!({"flags": {"ui.new_feature": {"variants": {"true": {"evaluations": 10, "errors": 11}}}}});
    assert_eq!(sdk.post("/api/feature-flags/metrics", &implausible).status, 422);

    // At most 5 000 evaluations per key and minute of arrival, back-dated ones included: a key cannot drown a regression.
    let clean = |evaluations: u64| json!({"flags": {"ui.new_feature": {"variants": {"true": {"evaluations": evaluations}}}}});
    let three_minutes_ago =
        || (time::OffsetDateTime::now_utc() - time::Duration::minutes(3)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let over = sdk.post("/api/feature-flags/metrics", &clean(1_000_000_000));
    assert_eq!(over.status, 429, "{:?}", over.body);
    assert!(over.body["error"]["message"].as_str().unwrap().contains("at most 5000 per key and minute"), "{:?}", over.body);
    let minute = || time::OffsetDateTime::now_utc().unix_timestamp() / 60;
    let mut accepted = 0;
    // Two batches in one minute: the second one overdraws. A minute that turns between them is tried again.
    for _ in 0..3 {
        let before = minute();
        assert_eq!(sdk.post("/api/feature-flags/metrics", &clean(4000)).status, 202);
        accepted += 4000;
        let mut backdated = clean(2000);
        backdated["start"] = json!(three_minutes_ago());
        let second = sdk.post("/api/feature-flags/metrics", &backdated).status;
        if minute() == before {
            assert_eq!(second, 429, "back-dating does not open a new budget");
            break;
        }
        if second == 202 {
            accepted += 2000;
        }
    }
    assert_eq!(totals()["true"]["evaluations"], accepted, "only accepted batches count");
    // And no further back than ten minutes: an old "clean baseline" cannot be written.
    let mut old = clean(10);
    old["start"] = json!(
        (time::OffsetDateTime::now_utc() - time::Duration::minutes(30)).format(&time::format_description::well_known::Rfc3339).unwrap()
    );
    let refused = sdk.post("/api/feature-flags/metrics", &old);
    assert_eq!(refused.status, 422);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("last 10 minutes"), "{:?}", refused.body);
}
