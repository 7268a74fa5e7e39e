//! `vexil serve --redis`: the seed's key layout, read directly from Redis, and a restart that keeps everything.

mod common;

use std::process::Command;

use common::{MOMENT, Server, Stream};
use serde_json::{Value, json};
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

fn sdk_key(server: &Server, environment: &str) -> String {
    common::sdk_key_for(server, environment)
}

#[test]
fn a_change_through_one_instance_reaches_stream_clients_of_the_others() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let first = Server::start_configured(&config);
    let second = Server::start_configured(&config);
    let third = Server::start_configured(&config);
    assert!(second.first_start_output.is_empty() && third.first_start_output.is_empty(), "one admin for the whole Redis");
    first.cli(&["define", "ui.new_feature"]).ok();
    let key = sdk_key(&first, "staging");
    let on_second = Stream::open(&second, "env=staging", &key, None).unwrap();
    let on_third = Stream::open(&third, "env=staging", &key, None).unwrap();
    let snapshot = on_second.next();
    assert_eq!(snapshot.name, "snapshot");
    assert_eq!(snapshot.data["flags"][0]["definition"]["name"], "ui.new_feature", "a flag defined through another instance");
    assert_eq!(on_third.next().name, "snapshot");

    first.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    for stream in [&on_second, &on_third] {
        let change = stream.next();
        assert_eq!(change.name, "change");
        assert_eq!(change.data["state"]["enabled"], true);
        assert_eq!(change.id, Some(snapshot.id.unwrap() + 1));
    }
    // Reads and evaluation on any instance see it too.
    assert_eq!(third.http().get("/api/flags/ui.new_feature/environments/staging").body["state"]["enabled"], true);
    let evaluation = third.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags/ui.new_feature", &json!({"context": {}}));
    assert_eq!(evaluation.body["value"], true);

    // Last-Event-ID resumes on any instance: changes made through the second are replayed by the third.
    let last = snapshot.id.unwrap() + 1;
    drop(on_third);
    second.cli(&["set", "ui.new_feature", "--env", "staging", "--rollout", "20"]).ok();
    second.cli(&["set", "ui.new_feature", "--env", "staging", "--rollout", "40"]).ok();
    let resumed = Stream::open(&third, "env=staging", &key, Some(last)).unwrap();
    assert_eq!(resumed.next().data["state"]["split"]["buckets"][0]["weight"], 20000);
    assert_eq!(resumed.next().data["state"]["split"]["buckets"][0]["weight"], 40000);
}

#[test]
fn concurrent_writers_on_different_instances_lose_nothing() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let instances = [Server::start_configured(&config), Server::start_configured(&config)];
    instances[0].cli(&["define", "ops.counter", "--type", "number", "--default", "0"]).ok();
    let writers = 4;
    let increments = 10;
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let http = instances[writer % 2].http();
            std::thread::spawn(move || {
                let path = "/api/flags/ops.counter/environments/dev";
                let mut done = 0;
                let mut refused = 0;
                while done < increments {
                    let current = http.get(path);
                    let value = current.body["state"]["serve"]["value"].as_u64().unwrap();
                    let response = http.put(path, &json!({"enabled": true, "serve": {"value": value + 1}}), Some(&current.etag.unwrap()));
                    match response.status {
                        200 => done += 1,
                        // 412: this instance saw the stale version; 409: the store refused it (the other instance was first).
                        412 | 409 => refused += 1,
                        other => panic!("unexpected {other}: {:?}", response.body),
                    }
                }
                refused
            })
        })
        .collect();
    let refused: u64 = threads.into_iter().map(|thread| thread.join().unwrap()).sum();
    for instance in &instances {
        let state = instance.http().get("/api/flags/ops.counter/environments/dev").body;
        assert_eq!(state["state"]["serve"]["value"], writers as u64 * increments, "every increment landed once, seen from both instances");
    }
    eprintln!("{refused} stale writes were refused");
}

#[test]
fn through_a_redis_outage_reads_and_streams_go_on_and_writes_fail_clearly() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let first = Server::start_configured(&config);
    let second = Server::start_configured(&config);
    first.cli(&["define", "ui.new_feature"]).ok();
    let key = sdk_key(&first, "dev");
    let stream = Stream::open(&first, "env=dev", &key, None).unwrap();
    let snapshot = stream.next();
    // Use the key once so the instance knows it before the outage.
    assert_eq!(first.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags/ui.new_feature", &json!({})).status, 200);
    first.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    assert_eq!(stream.next().id, Some(snapshot.id.unwrap() + 1));

    let mut redis = redis;
    redis.stop();
    let refused = first.http().post("/api/flags/ui.new_feature/environments/dev/disable", &json!({}));
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    // Refused before it was sent (nothing changed), or sent without an answer (it says it cannot know): never "done".
    let message = refused.body["error"]["message"].as_str().unwrap();
    match refused.body["error"]["code"].as_str().unwrap() {
        "store_unavailable" => assert!(message.contains("nothing was changed"), "{message}"),
        "outcome_unknown" => assert!(message.contains("may or may not have been made"), "{message}"),
        other => panic!("unexpected code {other}: {message}"),
    }
    let ready = first.http().get("/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["status"], "not_ready");
    // Evaluation and reads go on from memory.
    let evaluation = first.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags/ui.new_feature", &json!({}));
    assert_eq!((evaluation.status, evaluation.body["value"].clone()), (200, json!(true)));
    assert_eq!(first.http().get("/api/flags/ui.new_feature").body["environments"]["dev"]["enabled"], true);

    // Redis comes back (same port, its append-only file): writes work again, with no restart of Vexil,
    // and the stream that stayed open through the outage gets every change, also those made through the other instance.
    let redis = redis.restart();
    let deadline = std::time::Instant::now() + MOMENT;
    loop {
        if first.http().get("/readyz").status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the instance reconnects by itself");
        std::thread::yield_now();
    }
    let mut written = 0;
    while written < 2 {
        let through = if written == 0 { &second } else { &first };
        let action = if written == 0 { "disable" } else { "enable" };
        let response = through.http().post(&format!("/api/flags/ui.new_feature/environments/dev/{action}"), &json!({}));
        if response.status == 200 {
            written += 1;
        } else {
            assert_eq!(response.status, 503, "only 'unavailable' while reconnecting: {:?}", response.body);
            assert!(std::time::Instant::now() < deadline, "writes recover by themselves");
        }
    }
    let after_disable = stream.next();
    assert_eq!(after_disable.id, Some(snapshot.id.unwrap() + 2));
    assert_eq!(after_disable.data["state"]["enabled"], false);
    let after_enable = stream.next();
    assert_eq!(after_enable.id, Some(snapshot.id.unwrap() + 3));
    assert_eq!(after_enable.data["state"]["enabled"], true);
    drop(redis);
}

#[test]
fn with_two_instances_each_rollout_step_happens_once() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\nrollout_without_evidence = \"advance\"\n", redis.url());
    let first = Server::start_configured(&config);
    let second = Server::start_configured(&config);
    first.cli(&["define", "ui.checkout_v2"]).ok();
    let key = sdk_key(&first, "staging");
    let stream = Stream::open(&second, "env=staging", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    first.cli(&["rollout", "ui.checkout_v2", "--env", "staging", "--steps", "10,20,30,100", "--every", "1s"]).ok();
    // Wait for the plan to complete, as seen by a client of the other instance.
    loop {
        let event = stream.next();
        if event.data["state"]["rollout"].is_null() {
            break;
        }
    }
    let audit = second.http().get("/api/flags/audit?flag=ui.checkout_v2&action=rollout_step").body;
    let reasons: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|entry| entry["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 4, "one record per step, however many schedulers: {reasons:?}");
    assert_eq!(&reasons[..3], ["rollout step 4/4: 100 %", "rollout step 3/4: 30 %", "rollout step 2/4: 20 %"]);
}

#[test]
fn with_two_instances_the_guard_undoes_a_bad_production_change_once() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\nguard_check_seconds = 1\nguard_min_evaluations = 200\n", redis.url());
    let first = Server::start_configured(&config);
    let second = Server::start_configured(&config);
    first.cli(&["define", "ui.search_v2"]).ok();
    first.cli(&["set", "ui.search_v2", "--env", "prod", "--rollout", "50", "--enabled", "true", "--yes", "--reason", "try it"]).ok();
    let key = sdk_key(&first, "prod");
    let stream = Stream::open(&first, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    // Counts sent to the other instance reach the same totals in Redis, which both guards read.
    let batch = serde_json::json!({"flags": {"ui.search_v2": {"variants": {
        "true": {"evaluations": 500, "errors": 50}, "false": {"evaluations": 500, "errors": 5}}}}});
    assert_eq!(second.http().with_token(Some(&key)).post("/api/feature-flags/metrics", &batch).status, 202);
    let rolled_back = stream.next();
    assert_eq!(rolled_back.data["state"]["updated_by"], "system:guard");
    assert_eq!(rolled_back.data["state"]["enabled"], false);
    // Both guards look again after the rollback (and say it is not to be undone) before the trail is counted.
    for server in [&first, &second] {
        let deadline = std::time::Instant::now() + common::MOMENT;
        while server.http().get("/api/flags/ui.search_v2/environments/prod/guard").body["report"]["decision"]
            != "a rollback is never rolled back"
        {
            assert!(std::time::Instant::now() < deadline, "the guard of {} did not look within a moment", server.url);
            std::thread::park_timeout(std::time::Duration::from_millis(100));
        }
    }
    let audit = second.http().get("/api/flags/audit?flag=ui.search_v2&action=rollback").body;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "one rollback, however many guards: {audit}");
}

#[test]
fn an_instance_that_fell_behind_the_retention_reloads_and_sends_its_clients_a_snapshot() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\nchange_retention = 3\n", redis.url());
    let first = Server::start_configured(&config);
    let second = Server::start_configured(&config);
    first.cli(&["define", "ui.new_feature"]).ok();
    let key = sdk_key(&first, "dev");
    let stream = Stream::open(&second, "env=dev", &key, None).unwrap();
    let snapshot = stream.next();
    assert_eq!(snapshot.name, "snapshot");
    let start = snapshot.id.unwrap();

    // The second instance stops reading (frozen) while the first makes more changes than the feed retains.
    let pid = second.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    for round in 0..10 {
        first.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
        if round < 9 {
            first.cli(&["disable", "ui.new_feature", "--env", "dev"]).ok();
        }
    }
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());

    // Whatever the feed still had arrives first; then the reload's snapshot, with the latest state.
    let latest = start + 19;
    let snapshot = loop {
        let event = stream.next();
        if event.name == "snapshot" {
            break event;
        }
        assert_eq!(event.name, "change", "{event:?}");
        assert!(event.id.unwrap() <= latest);
    };
    assert_eq!(snapshot.id, Some(latest), "the snapshot is at the latest revision");
    let flags = snapshot.data["flags"].as_array().unwrap();
    assert_eq!(flags[0]["state"]["enabled"], true, "{snapshot:?}");
    assert_eq!(second.http().get("/api/flags/ui.new_feature/environments/dev").body["state"]["enabled"], true);
}

#[test]
fn a_definition_edit_that_changes_production_is_a_production_change_on_every_instance() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let first = Server::start_configured(&config);
    let second = Server::start_configured(&config);
    let variants = |treatment: &str| json!([{"name": "control", "value": "grey"}, {"name": "treatment", "value": treatment}]);
    let created = first
        .http()
        .post("/api/flags", &json!({"name": "ui.button_colour", "type": "string", "default": "grey", "variants": variants("blue")}));
    assert_eq!(created.status, 201, "{:?}", created.body);
    let body = json!({"enabled": true, "serve": {"variant": "treatment"}, "reason": "treatment wins"});
    assert_eq!(first.http().put("/api/flags/ui.button_colour/environments/prod", &body, None).status, 200);
    let key = sdk_key(&first, "prod");
    let stream = Stream::open(&second, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    let before: Value = serde_json::from_str(&redis_cli(&redis, &["GET", "flags:prod:ui.button_colour"])).unwrap();

    let edit = json!({"variants": variants("red"), "reason": "rebrand"});
    let done = first.http().send("PATCH", "/api/flags/ui.button_colour", Some(edit.to_string()), &[]);
    assert_eq!(done.status, 200, "{:?}", done.body);
    // The other instance streams it as production's change, with the state's new version, and serves the new value.
    let change = stream.next();
    assert_eq!(change.data["state"]["version"], before["version"].as_u64().unwrap() + 1);
    assert_eq!(change.data["definition"]["variants"][1]["value"], "red");
    let served =
        second.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags/ui.button_colour", &json!({"context": {"targetingKey": "u1"}}));
    assert_eq!(served.body["value"], "red");
    let stored: Value = serde_json::from_str(&redis_cli(&redis, &["GET", "flags:prod:ui.button_colour"])).unwrap();
    assert_eq!(stored["version"], change.data["state"]["version"]);
    let audit = second.http().get("/api/flags/audit?flag=ui.button_colour&env=prod").body;
    assert_eq!((audit["entries"][0]["action"].as_str(), audit["entries"][0]["reason"].as_str()), (Some("update"), Some("rebrand")));
}

#[test]
fn a_failed_token_change_during_an_outage_locks_nobody_out() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let server = Server::start_configured(&config);
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    let key = sdk_key(&server, "dev");
    let sdk = server.http().with_token(Some(&key));
    assert_eq!(sdk.post("/ofrep/v1/evaluate/flags/ui.new_feature", &json!({})).status, 200);

    let mut redis = redis;
    redis.stop();
    // An operator tries to create a key (or revoke one) while Redis is down: it fails, and says so.
    let failed = server.cli(&["token", "create", "--sdk", "--env", "dev"]);
    assert_ne!(failed.code, 0, "{failed:?}");
    // Everyone the server knew goes on: the admin's reads, the SDK key's evaluations and new streams.
    for _ in 0..3 {
        assert_eq!(server.http().get("/api/flags/ui.new_feature").status, 200);
        let evaluation = sdk.post("/ofrep/v1/evaluate/flags/ui.new_feature", &json!({}));
        assert_eq!((evaluation.status, evaluation.body["value"].clone()), (200, json!(true)));
    }
    let stream = Stream::open(&server, "env=dev", &key, None).expect("a stream opens from memory through the outage");
    assert_eq!(stream.next().name, "snapshot");

    // A credential the server never saw cannot be checked: a stream request gets an answer EventSource retries on
    // (200, `retry:` advice, then the end of the stream), never a status that makes a browser give up for good.
    let unknown = reqwest::blocking::Client::new()
        .get(format!("{}/api/feature-flags/stream?env=dev", server.url))
        .bearer_auth("vxs_never_seen_before_0000000000")
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 200);
    assert_eq!(unknown.headers()["content-type"], "text/event-stream");
    let body = unknown.text().unwrap();
    assert!(body.starts_with("retry: "), "{body}");
    assert!(body.contains("store unavailable"), "{body}");
    drop(redis);
}

#[test]
fn the_kill_switch_on_one_instance_is_never_refused_while_another_instance_changes_the_flag() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let (first, second) = (Server::start_configured(&config), Server::start_configured(&config));
    first.cli(&["define", "ui.kill"]).ok();
    let url = first.url.clone();
    let writer = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        for round in 0..120u32 {
            let share = 1000 * (1 + round % 99);
            let body = json!({"enabled": true, "serve": {"value": true}, "reason": "widen", "split": {"buckets": [
                {"serve": {"value": true}, "weight": share}, {"serve": {"value": false}, "weight": 100_000 - share}]}});
            let status = client
                .put(format!("{url}/api/flags/ui.kill/environments/prod"))
                .bearer_auth(common::ADMIN_TOKEN)
                .json(&body)
                .send()
                .unwrap()
                .status()
                .as_u16();
            // The writer has no such promise: its state write may lose to a disable committed through the other instance.
            assert!(status == 200 || status == 409, "{status}");
        }
    });
    let mut refused = Vec::new();
    for _ in 0..80 {
        let answer = second.http().post("/api/flags/ui.kill/environments/prod/disable", &json!({"reason": "INCIDENT"}));
        if answer.status != 200 {
            refused.push((answer.status, answer.body));
        }
    }
    writer.join().unwrap();
    assert!(refused.is_empty(), "the kill switch was refused {} times: {:?}", refused.len(), refused.first());
}

#[test]
fn a_definition_edit_on_one_instance_is_judged_on_the_production_state_another_instance_commits() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let (admin_side, developer_side) = (Server::start_configured(&config), Server::start_configured(&config));
    admin_side.cli(&["user", "add", "dev@example.com", "--role", "developer"]).ok();
    let developer = admin_side.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned();
    let key = sdk_key(&admin_side, "prod");
    for round in 0..40 {
        let flag = format!("ui.race_{round}");
        let created = admin_side.http().post(
            "/api/flags",
            &json!({"name": flag, "type": "string", "default": "grey", "variants": [
                {"name": "control", "value": "grey"}, {"name": "treatment", "value": "blue"}]}),
        );
        assert_eq!(created.status, 201);
        let prod = format!("/api/flags/{flag}/environments/prod");
        let on = admin_side.http().put(&prod, &json!({"enabled": true, "serve": {"variant": "control"}, "reason": "on"}), None);
        assert_eq!(on.status, 200);
        // Both instances know the flag as it is now before the race starts.
        let deadline = std::time::Instant::now() + MOMENT;
        while developer_side.http().get(&prod).body["state"]["version"] != on.body["state"]["version"] {
            assert!(std::time::Instant::now() < deadline);
        }
        let definition = developer_side.http().get(&format!("/api/flags/{flag}"));
        let version = definition.body["version"].to_string();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let admin = {
            let (http, barrier, prod) = (admin_side.http(), barrier.clone(), prod.clone());
            std::thread::spawn(move || {
                barrier.wait();
                http.put(&prod, &json!({"enabled": true, "serve": {"variant": "treatment"}, "reason": "launch blue"}), None).status
            })
        };
        let edit = {
            let (http, barrier, flag) = (developer_side.http().with_token(Some(&developer)), barrier.clone(), flag.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let body = json!({"variants": [{"name": "control", "value": "grey"}, {"name": "treatment", "value": "red"}]});
                http.send("PATCH", &format!("/api/flags/{flag}"), Some(body.to_string()), &[("if-match", &version)]).status
            })
        };
        let (admin_status, edit_status) = (admin.join().unwrap(), edit.join().unwrap());
        assert!([200, 409].contains(&admin_status), "round {round}: admin {admin_status}");
        assert!([200, 403, 409, 412].contains(&edit_status), "round {round}: developer {edit_status}");
        // Whatever interleaving happened, production serves red only through a production change an admin made after
        // the developer's edit (so the admin chose it knowing the value), never through the developer's edit.
        let served = served_value(&admin_side, &key, &flag);
        if served == json!("red") {
            let records = admin_side.http().get(&format!("/api/flags/audit?flag={flag}&limit=100")).body;
            let entries = records["entries"].as_array().unwrap();
            let edit_id = entries.iter().find(|entry| entry["user"] == "dev@example.com").map(|entry| entry["id"].as_u64().unwrap());
            let last_prod_by_admin = entries
                .iter()
                .filter(|entry| entry["environment"] == "production" && entry["user"] == "admin@localhost")
                .map(|entry| entry["id"].as_u64().unwrap())
                .max();
            assert!(
                edit_id.is_some() && last_prod_by_admin > edit_id,
                "round {round}: production serves the developer's value without an admin's production change after it: {records}"
            );
        }
    }
}

fn served_value(server: &Server, key: &str, flag: &str) -> Value {
    server.http().with_token(Some(key)).post(&format!("/ofrep/v1/evaluate/flags/{flag}"), &json!({"context": {}})).body["value"].clone()
}

#[test]
fn a_write_whose_outcome_is_unknown_says_so_and_its_retry_with_the_same_key_is_done_once() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let server = Server::start_configured(&config);
    server.cli(&["define", "ui.paused"]).ok();
    let http = server.http();
    let path = "/api/flags/ui.paused/environments/dev/enable";
    // What a failover does: Redis holds writes for longer than the server waits for an answer.
    redis_cli(&redis, &["CLIENT", "PAUSE", "4000", "WRITE"]);
    let first = http.send("POST", path, Some("{}".to_owned()), &[("idempotency-key", "enable-after-pause")]);
    assert_eq!(first.status, 503, "{:?}", first.body);
    assert_eq!(first.body["error"]["code"], "outcome_unknown", "{:?}", first.body);
    assert!(first.body["error"]["message"].as_str().unwrap().contains("may or may not"), "{:?}", first.body);
    // The write lands when Redis resumes; the server learns it from the change feed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http.get("/api/flags/ui.paused/environments/dev").body["state"]["enabled"] != true {
        assert!(std::time::Instant::now() < deadline, "the paused write landed");
    }
    let retry = http.send("POST", path, Some("{}".to_owned()), &[("idempotency-key", "enable-after-pause")]);
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(retry.body["outcome"], "done", "{:?}", retry.body);
    let audit = http.get("/api/flags/audit?flag=ui.paused&env=dev&action=enable").body;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "done exactly once: {audit}");
    assert_eq!(retry.body["audit"], json!([entries[0]["id"]]));
}

#[test]
fn the_cli_retries_a_write_whose_outcome_is_unknown_and_it_is_done_once() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let server = Server::start_configured(&config);
    server.cli(&["define", "ui.paused"]).ok();
    redis_cli(&redis, &["CLIENT", "PAUSE", "3000", "WRITE"]);
    let enabled = server.cli(&["enable", "ui.paused", "--env", "dev"]);
    assert_eq!(enabled.code, 0, "{enabled:?}");
    let audit = server.http().get("/api/flags/audit?flag=ui.paused&env=dev&action=enable").body;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "done exactly once: {audit}");
    assert_eq!(server.http().get("/api/flags/ui.paused/environments/dev").body["state"]["enabled"], true);
}

#[test]
fn a_wiped_redis_stops_writes_everywhere_and_is_not_bootstrapped_over_by_accident() {
    let redis = RedisServer::start();
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("vexil.toml");
    std::fs::write(&config, format!("redis = \"{}\"\n", redis.url())).unwrap();
    let (first_data, second_data) = (directory.path().join("first"), directory.path().join("second"));
    let first = Server::start_with(&first_data, Some(&config));
    let second = Server::start_with(&second_data, Some(&config));
    first.cli(&["define", "ui.new_feature"]).ok();
    assert_eq!(second.http().get("/readyz").status, 200);

    redis_cli(&redis, &["FLUSHALL"]);
    for server in [&first, &second] {
        let ready = server.http().get("/readyz");
        assert_eq!(ready.status, 503, "{:?}", ready.body);
        assert!(ready.body["store"].as_str().unwrap().contains("wiped"), "{:?}", ready.body);
        let write = server.http().post("/api/flags/ui.new_feature/environments/dev/enable", &json!({}));
        assert_eq!(write.status, 503, "{:?}", write.body);
        assert_eq!(write.body["error"]["code"], "store_replaced", "{:?}", write.body);
    }
    assert_eq!(redis_cli(&redis, &["DBSIZE"]), "0", "nothing was written into the wiped store");

    // A server that belonged to the deployment refuses to start a new one on the empty store by itself.
    drop(first);
    let refused = Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&first_data)
        .env("VEXIL_LOG", "error")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("wiped or replaced") && message.contains("--bootstrap"), "{message}");
    assert_eq!(redis_cli(&redis, &["DBSIZE"]), "0");

    // With --bootstrap it begins a new deployment; the server still running on the old one says the store is foreign.
    let mut command_line = Command::new(env!("CARGO_BIN_EXE_vexil"));
    command_line.args(["serve", "--bootstrap", "--bind", "127.0.0.1:0", "--config"]).arg(&config).arg("--data").arg(&first_data);
    let fresh = common::Server::launch_command(command_line, &first_data);
    assert_eq!(fresh.http().get("/readyz").status, 200);
    assert!(fresh.first_start_output.iter().any(|line| line.contains("created the first admin")), "{:?}", fresh.first_start_output);
    let ready = second.http().get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.body["store"].as_str().unwrap().contains("belongs to deployment"), "{:?}", ready.body);
}

fn admin_token(server: &Server, email: &str) -> String {
    server.cli(&["user", "add", email, "--role", "admin"]).ok();
    server.cli(&["token", "create", "--user", email]).ok().stdout.trim().to_owned()
}

#[test]
fn accounts_changed_through_two_instances_at_once_never_lose_the_last_admin_or_a_disable() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let (first, second) = (Server::start_configured(&config), Server::start_configured(&config));
    let other = admin_token(&first, "second@example.com");
    for round in 0..15 {
        // Two admins demote each other through different instances at the same moment.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let patch = |server: &Server, token: String, whom: &'static str, body: Value| {
            let (http, barrier) = (server.http().with_token(Some(&token)), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                http.send("PATCH", &format!("/api/users/{whom}"), Some(body.to_string()), &[]).status
            })
        };
        let one = patch(&first, common::ADMIN_TOKEN.to_owned(), "second@example.com", json!({"role": "developer"}));
        let two = patch(&second, other.clone(), "admin@localhost", json!({"role": "developer"}));
        let statuses = [one.join().unwrap(), two.join().unwrap()];
        let users: Vec<Value> =
            redis_cli(&redis, &["HVALS", "vexil:users"]).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let admins = users.iter().filter(|user| user["role"] == "admin" && user["disabled"] == false).count();
        assert!(admins >= 1, "round {round}: {statuses:?} left no admin");
        // Restore both as admins, as whoever still is one.
        let token = if statuses[0] == 200 { common::ADMIN_TOKEN.to_owned() } else { other.clone() };
        for whom in ["second@example.com", "admin@localhost"] {
            let body = json!({"role": "admin"}).to_string();
            let restored = first.http().with_token(Some(&token)).send("PATCH", &format!("/api/users/{whom}"), Some(body), &[]);
            assert_eq!(restored.status, 200, "round {round}: {:?}", restored.body);
        }
    }

    // A password change through one instance never undoes a disable made through the other (five rounds: the budget
    // of password changes from one address).
    for round in 0..5 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let changer = {
            let (http, barrier) = (second.http().with_token(Some(&other)), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let body = json!({"password": format!("a new password {round}")}).to_string();
                http.send("PATCH", "/api/users/second@example.com", Some(body), &[]).status
            })
        };
        barrier.wait();
        let disable = first.http().send("PATCH", "/api/users/second@example.com", Some(json!({"disabled": true}).to_string()), &[]);
        changer.join().unwrap();
        let stored: Value = serde_json::from_str(&redis_cli(&redis, &["HGET", "vexil:users", "second@example.com"])).unwrap();
        if disable.status == 200 {
            assert_eq!(stored["disabled"], true, "round {round}: the disable was answered 200 and then undone");
        }
        let enabled = first.http().send("PATCH", "/api/users/second@example.com", Some(json!({"disabled": false}).to_string()), &[]);
        assert_eq!(enabled.status, 200);
    }
}

#[test]
fn an_admin_disabled_through_one_instance_can_do_nothing_more_through_another() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let (first, second) = (Server::start_configured(&config), Server::start_configured(&config));
    let other = admin_token(&first, "second@example.com");
    first.cli(&["define", "ui.new_feature"]).ok();
    // The second instance knows (and caches) the admin's credential.
    assert_eq!(second.http().with_token(Some(&other)).get("/api/users").status, 200);
    let disabled = first.http().send("PATCH", "/api/users/second@example.com", Some(json!({"disabled": true}).to_string()), &[]);
    assert_eq!(disabled.status, 200);
    // Within the credential cache's lifetime on the other instance, every write is still refused.
    let as_other = second.http().with_token(Some(&other));
    let grab = [
        as_other.post("/api/users", &json!({"email": "evil@example.com", "role": "admin", "password": "evil evil evil"})),
        as_other.post("/api/tokens", &json!({"user": "admin@localhost"})),
        as_other.post("/api/flags/ui.new_feature/environments/prod/enable", &json!({"reason": "mine now"})),
    ];
    for response in &grab {
        assert!(response.status == 403 || response.status == 401, "{:?}", response.body);
    }
    assert_eq!(redis_cli(&redis, &["HEXISTS", "vexil:users", "evil@example.com"]), "0");
    assert_eq!(first.http().get("/api/flags/ui.new_feature/environments/prod").body["state"]["enabled"], false);
}

/// Two Redis replicas and a Sentinel watching a primary, started for one test and stopped with it. Two, so that after a
/// failover the new primary still has a replica to confirm writes (`WAIT 1`).
struct Sentinel {
    replicas: Vec<std::process::Child>,
    sentinel: std::process::Child,
    port: u16,
    _directory: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Sentinel {
    fn watch(primary: &RedisServer) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let replica_ports = [free_port(), free_port()];
        let replicas = replica_ports
            .iter()
            .map(|port| {
                let data = directory.path().join(format!("replica-{port}"));
                std::fs::create_dir(&data).unwrap();
                Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir"])
                    .arg(&data)
                    .args(["--replicaof", "127.0.0.1", &primary.port.to_string()])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("redis-server runs")
            })
            .collect();
        let port = free_port();
        let config = directory.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor vexil 127.0.0.1 {} 1\nsentinel down-after-milliseconds vexil 1000\nsentinel failover-timeout vexil 5000\n",
                directory.path().display(),
                primary.port
            ),
        )
        .unwrap();
        let sentinel = Command::new("redis-server").arg(&config).arg("--sentinel").stdout(std::process::Stdio::null()).spawn().unwrap();
        let watching = Self { replicas, sentinel, port, _directory: directory };
        // Ready when the sentinel knows the primary and both replicas, and they are in sync.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let known = Command::new("redis-cli").args(["-p", &port.to_string(), "SENTINEL", "replicas", "vexil"]).output();
            let known = known.map(|output| String::from_utf8_lossy(&output.stdout).into_owned()).unwrap_or_default();
            let ready = replica_ports.iter().all(|replica| {
                let synced = Command::new("redis-cli").args(["-p", &replica.to_string(), "INFO", "replication"]).output();
                known.contains(&replica.to_string())
                    && synced.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("master_link_status:up"))
            });
            if ready {
                return watching;
            }
            assert!(std::time::Instant::now() < deadline, "sentinel and replica came up");
            std::thread::yield_now();
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        for child in self.replicas.iter_mut().chain([&mut self.sentinel]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_sentinel_failover_during_writes_loses_no_acknowledged_write() {
    let mut primary = RedisServer::start();
    let sentinel = Sentinel::watch(&primary);
    let config = format!("redis = \"redis+sentinel://127.0.0.1:{}/vexil\"\n", sentinel.port);
    let server = Server::start_configured(&config);
    server.cli(&["define", "ops.counter", "--type", "number", "--default", "0"]).ok();
    let http = server.http();
    let path = "/api/flags/ops.counter/environments/dev";
    let mut acknowledged = Vec::new();
    let mut failed_over = false;
    let mut value = 0u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acknowledged.len() < 60 {
        assert!(std::time::Instant::now() < deadline, "writes resume after the failover ({} acknowledged)", acknowledged.len());
        value += 1;
        if acknowledged.len() == 20 && !failed_over {
            // The primary dies without warning; the sentinel promotes the replica.
            primary.stop();
            failed_over = true;
        }
        let response = http.put(path, &json!({"enabled": true, "serve": {"value": value}}), None);
        match response.status {
            200 => acknowledged.push(value),
            // During the failover: refused (nothing changed) or unknown, never a wrong "done".
            503 => assert!(
                ["store_unavailable", "outcome_unknown"].contains(&response.body["error"]["code"].as_str().unwrap_or_default()),
                "{:?}",
                response.body
            ),
            other => panic!("unexpected {other}: {:?}", response.body),
        }
    }
    // Every acknowledged write is in the new primary's audit trail, once.
    let audited = audited_counter_values(&server);
    for written in &acknowledged {
        assert_eq!(audited.get(written), Some(&1), "acknowledged write {written} is audited once: {audited:?}");
    }
    assert_eq!(http.get(path).body["state"]["serve"]["value"], json!(acknowledged.last().unwrap()));
    drop(sentinel);
}

/// Writes `ops.counter` values through `server` until told to stop; returns the values acknowledged with 200, and
/// counts the writes that were not in `failed`.
fn keep_writing(
    server: &Server,
    start: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::thread::JoinHandle<Vec<u64>> {
    let url = server.url.clone();
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
        let mut acknowledged = Vec::new();
        let mut value = start;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            value += 1;
            let response = client
                .put(format!("{url}/api/flags/ops.counter/environments/dev"))
                .bearer_auth(common::ADMIN_TOKEN)
                .json(&json!({"enabled": true, "serve": {"value": value}}))
                .send();
            match response.map(|response| response.status().as_u16()) {
                Ok(200) => acknowledged.push(value),
                Ok(409 | 503) | Err(_) => {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(other) => panic!("a write was answered {other}"),
            }
        }
        acknowledged
    })
}

#[test]
fn chaos_kill_and_freeze_redis_and_freeze_a_server_during_writes_and_everything_acknowledged_is_there_once() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let (first, second) = (Server::start_configured(&config), Server::start_configured(&config));
    first.cli(&["define", "ops.counter", "--type", "number", "--default", "0"]).ok();
    let key = sdk_key(&first, "dev");
    let streams = [Stream::open(&first, "env=dev", &key, None).unwrap(), Stream::open(&second, "env=dev", &key, None).unwrap()];
    for stream in &streams {
        assert_eq!(stream.next().name, "snapshot");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers = [keep_writing(&first, 0, stop.clone(), failed.clone()), keep_writing(&second, 1_000_000, stop.clone(), failed.clone())];
    let wait_for_writes = |count: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let start = first.http().get("/api/flags/ops.counter/environments/dev").body["state"]["version"].as_u64().unwrap_or(0);
        while first.http().get("/api/flags/ops.counter/environments/dev").body["state"]["version"].as_u64().unwrap_or(0)
            < start + count as u64
        {
            assert!(std::time::Instant::now() < deadline, "writes go on");
        }
    };
    wait_for_writes(20);
    // Redis dies without warning (kill -9) mid-write, and comes back from its append-only file.
    let redis = redis.restart();
    wait_for_writes(20);
    // One server freezes (SIGSTOP) for a while: its requests hang, the other goes on; then it thaws.
    Command::new("kill").args(["-STOP", &second.child.id().to_string()]).status().unwrap();
    wait_for_writes(20);
    Command::new("kill").args(["-CONT", &second.child.id().to_string()]).status().unwrap();
    wait_for_writes(20);
    // Redis itself freezes (SIGSTOP, a stalled host): writes sent meanwhile time out (their outcome unknown) and run
    // when it thaws; none is lost and none is done twice.
    let before = failed.load(std::sync::atomic::Ordering::Relaxed);
    Command::new("kill").args(["-STOP", &redis.pid().to_string()]).status().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while failed.load(std::sync::atomic::Ordering::Relaxed) < before + 2 {
        assert!(std::time::Instant::now() < deadline, "writes fail while Redis is frozen");
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    }
    Command::new("kill").args(["-CONT", &redis.pid().to_string()]).status().unwrap();
    wait_for_writes(20);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged: Vec<u64> = writers.into_iter().flat_map(|writer| writer.join().unwrap()).collect();
    assert!(acknowledged.len() >= 40, "{} writes acknowledged", acknowledged.len());

    // Every acknowledged write has exactly one audit record; the chain is intact.
    let audited = audited_counter_values(&first);
    for written in &acknowledged {
        assert_eq!(audited.get(written), Some(&1), "acknowledged write {written} audited once");
    }
    assert_eq!(first.http().get("/api/flags/audit/verify").body["intact"], true);
    // Memory equals the store on both servers, and both streams converged on the last state.
    let stored: Value = serde_json::from_str(&redis_cli(&redis, &["GET", "flags:dev:ops.counter"])).unwrap();
    for server in [&first, &second] {
        let deadline = std::time::Instant::now() + MOMENT;
        while server.http().get("/api/flags/ops.counter/environments/dev").body["state"]["version"] != stored["version"] {
            assert!(std::time::Instant::now() < deadline, "memory catches up with the store");
        }
    }
    // A client that fell behind is disconnected and resumes by Last-Event-ID, as SDKs do; either way it ends on the
    // stored state.
    for (server, stream) in [&first, &second].into_iter().zip(streams) {
        let deadline = std::time::Instant::now() + MOMENT;
        let (mut stream, mut last_id) = (stream, None);
        loop {
            assert!(std::time::Instant::now() < deadline, "the stream converges on the stored state");
            let Some(event) = stream.events.recv_timeout(MOMENT).expect("an event") else {
                stream = Stream::open(server, "env=dev", &key, last_id).unwrap();
                continue;
            };
            last_id = event.id.or(last_id);
            let state = if event.name == "snapshot" { &event.data["flags"][0]["state"] } else { &event.data["state"] };
            if state["version"] == stored["version"] {
                break;
            }
        }
    }
}

#[test]
fn a_token_revoked_through_one_instance_writes_nothing_through_another() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let (first, second) = (Server::start_configured(&config), Server::start_configured(&config));
    first.cli(&["define", "ui.new_feature"]).ok();
    let created = first.cli(&["token", "create", "--output", "json"]).ok().json();
    let (id, token) = (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned());
    // The second instance knows (and caches) the token; then it is revoked through the first.
    let on_second = second.http().with_token(Some(&token));
    assert_eq!(on_second.get("/api/flags").status, 200);
    first.cli(&["token", "revoke", &id]).ok();
    let attempts = [
        on_second.post("/api/tokens", &json!({"name": "persist"})),
        on_second.post("/api/users", &json!({"email": "evil@example.com", "role": "admin", "password": "evil evil evil"})),
        on_second.post("/api/flags/ui.new_feature/environments/prod/enable", &json!({"reason": "mine now"})),
    ];
    for attempt in &attempts {
        assert_eq!(attempt.status, 401, "{:?}", attempt.body);
    }
    assert_eq!(redis_cli(&redis, &["HEXISTS", "vexil:users", "evil@example.com"]), "0");
    assert_eq!(first.http().get("/api/flags/ui.new_feature/environments/prod").body["state"]["enabled"], false);
}

#[test]
fn after_redis_is_restored_from_an_older_copy_the_kill_switch_reaches_every_client() {
    let redis = RedisServer::start();
    let config = format!("redis = \"{}\"\n", redis.url());
    let (first, second) = (Server::start_configured(&config), Server::start_configured(&config));
    first.cli(&["define", "ui.restored"]).ok();
    first.cli(&["define", "ui.other"]).ok();
    first.cli(&["enable", "ui.restored", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let key = sdk_key(&first, "prod");
    // A copy of Redis's data now (its append-only files), then more production changes.
    let backup = tempfile::tempdir().unwrap();
    redis_cli(&redis, &["BGREWRITEAOF"]);
    let deadline = std::time::Instant::now() + MOMENT;
    while redis_cli(&redis, &["INFO", "persistence"]).contains("aof_rewrite_in_progress:1") {
        assert!(std::time::Instant::now() < deadline);
    }
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        assert!(Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(to).status().unwrap().success());
    };
    copy(redis.directory(), backup.path());
    // One change after the copy: once restored, the store is one revision behind, and the next write numbers the
    // same revision as that lost change (the same numbers, another history).
    first.cli(&["set", "ui.other", "--env", "prod", "--enabled", "true", "--yes", "--reason", "after the copy"]).ok();
    // Redis is restored from the older copy.
    let mut redis = redis;
    redis.stop();
    for entry in std::fs::read_dir(redis.directory()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { std::fs::remove_dir_all(&path).unwrap() } else { std::fs::remove_file(&path).unwrap() }
    }
    copy(backup.path(), redis.directory());
    let _redis = redis.restart();
    let deadline = std::time::Instant::now() + MOMENT;
    while first.http().get("/readyz").status != 200 || second.http().get("/readyz").status != 200 {
        assert!(std::time::Instant::now() < deadline, "both servers reconnect");
    }
    // The kill switch through one server reaches the SDKs of both.
    let disabled = first.http().post("/api/flags/ui.restored/environments/prod/disable", &json!({"reason": "INCIDENT"}));
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    for server in [&first, &second] {
        let deadline = std::time::Instant::now() + MOMENT;
        loop {
            let served = server.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags/ui.restored", &json!({"context": {}}));
            if served.body["value"] == false {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the disable reaches {}: {:?}", server.url, served.body);
        }
    }
}

/// How many audit records set `ops.counter` in dev to each value, over every page of the trail.
fn audited_counter_values(server: &Server) -> std::collections::BTreeMap<u64, u32> {
    let mut audited = std::collections::BTreeMap::new();
    for entry in common::audit_entries(server, "flag=ops.counter&env=dev") {
        if let Some(written) = entry["after"]["serve"]["value"].as_u64() {
            *audited.entry(written).or_default() += 1;
        }
    }
    audited
}
