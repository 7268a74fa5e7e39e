//! `vexil serve --redis`: the seed's key layout, read directly from Redis, and a restart that keeps everything.

mod common;

use std::process::Command;

use common::Server;
use serde_json::Value;
use vexil_store::conformance::RedisServer;

fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let output = Command::new("redis-cli").arg("-p").arg(redis.port.to_string()).args(args).output().expect("redis-cli runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn flag_states_live_at_flags_env_flag_and_survive_a_restart() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let server = Server::start_configured(&config);
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["define", "ui.other"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env=dev"]).ok();
    server.cli(&["promote", "ui.new_feature", "--from=dev", "--to=staging"]).ok();
    server.cli(&["promote", "ui.new_feature", "--from=staging", "--to=prod", "--yes", "--reason", "Rollout approved by PM"]).ok();

    // Another process reads the state straight from Redis, as the seed shows.
    let state: Value = serde_json::from_str(&redis_cli(&redis, &["GET", "flags:prod:ui.new_feature"])).expect("a JSON state");
    assert_eq!(state["enabled"], true);
    assert_eq!(state["version"], 2);
    assert_eq!(state["updated_by"], "admin@localhost");
    let mut production: Vec<String> = redis_cli(&redis, &["--scan", "--pattern", "flags:prod:*"]).lines().map(str::to_owned).collect();
    production.sort();
    assert_eq!(production, ["flags:prod:ui.new_feature", "flags:prod:ui.other"], "SCAN flags:prod:* is exactly production's states");
    for environment in ["dev", "staging", "prod"] {
        for flag in ["ui.new_feature", "ui.other"] {
            assert_eq!(redis_cli(&redis, &["EXISTS", &format!("flags:{environment}:{flag}")]), "1", "{flag} has a state in {environment}");
        }
    }

    let flags = server.http().get("/api/flags").body;
    let audit = server.http().get("/api/flags/audit").body;
    assert!(server.terminate());
    let server = Server::start_configured(&config);
    assert!(server.first_start_output.is_empty(), "the admin is created once, in Redis: {:?}", server.first_start_output);
    assert_eq!(server.http().get("/api/flags").body, flags);
    assert_eq!(server.http().get("/api/flags/audit").body, audit);
    assert!(server.cli(&["audit", "verify"]).ok().stdout.contains("intact"));
    // The emergency path works on Redis too, and lands where the seed says.
    server.cli(&["disable", "ui.new_feature", "--env=prod", "--reason=Incident #123"]).ok();
    let state: Value = serde_json::from_str(&redis_cli(&redis, &["GET", "flags:prod:ui.new_feature"])).unwrap();
    assert_eq!(state["enabled"], false);
}
