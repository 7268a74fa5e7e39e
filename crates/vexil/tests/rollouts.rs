//! Gradual rollouts through the CLI and the API on a running server: steps on schedule, restarts, pause and abort,
//! and guarded steps (a step waits for the guard's evidence that the current one is healthy).

mod common;

use std::time::{Duration, Instant};

use common::{Server, Stream};
use serde_json::{Value, json};

/// Steps on schedule whatever the guard has seen: these tests are about the schedule's mechanics.
const ADVANCE: &str = "rollout_without_evidence = \"advance\"\n";

fn weight(event: &common::Event) -> Option<u64> {
    event.data["state"]["split"]["buckets"][0]["weight"].as_u64()
}

#[test]
fn a_plan_takes_its_steps_on_schedule_each_one_audited_by_system_rollout() {
    let server = Server::start_configured(ADVANCE);
    server.cli(&["define", "ui.checkout_v2"]).ok();
    let key = common::sdk_key_for(&server, "prod");
    let stream = Stream::open(&server, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    // Production: refused without confirmation and reason, like any production change.
    server.cli(&["rollout", "ui.checkout_v2", "--env", "prod", "--steps", "10,50,100", "--every", "1s"]).expect_code(3);
    server
        .cli(&[
            "rollout",
            "ui.checkout_v2",
            "--env",
            "prod",
            "--steps",
            "10,50,100",
            "--every",
            "1s",
            "--yes",
            "--reason",
            "checkout v2 launch",
        ])
        .ok();

    let first = stream.next();
    assert_eq!((first.data["state"]["enabled"].as_bool(), weight(&first)), (Some(true), Some(10_000)), "step 1 at once");
    assert_eq!(first.data["state"]["rollout"]["next_step"], 1);
    let second = stream.next();
    assert_eq!(weight(&second), Some(50_000));
    assert_eq!(second.data["state"]["updated_by"], "system:rollout");
    let last = stream.next();
    assert!(last.data["state"]["split"].is_null(), "100 % serves everyone: no split left");
    assert!(last.data["state"]["rollout"].is_null(), "the plan is complete");

    let audit = server.http().get("/api/flags/audit?flag=ui.checkout_v2&action=rollout_step").body;
    let steps: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["user"].as_str().unwrap(), entry["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(steps[0], ("system:rollout", "rollout step 3/3: 100 % (checkout v2 launch)"));
    assert_eq!(steps[1], ("system:rollout", "rollout step 2/3: 50 % (checkout v2 launch)"));
    assert!(steps[2].0 == "admin@localhost" && steps[2].1.starts_with("rollout started: 10 % → 50 % → 100 % every 1s"), "{steps:?}");
}

#[test]
fn a_plan_survives_a_restart_and_can_be_paused_and_aborted() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let config = directory.path().join("vexil.toml");
    std::fs::write(&config, ADVANCE).unwrap();
    let server = Server::start_with(&data, Some(&config));
    server.cli(&["define", "ui.search_v3"]).ok();
    server.cli(&["rollout", "ui.search_v3", "--env", "staging", "--steps", "5,20,60", "--every", "2s"]).ok();
    let status = server.cli(&["rollout", "status", "ui.search_v3", "--env", "staging", "-o", "json"]).ok().json();
    assert_eq!((status["percent"].as_f64(), status["plan"]["next_step"].as_u64()), (Some(5.0), Some(1)));
    assert!(server.terminate());

    // The plan is in the stored state: the restarted server takes the next step by itself.
    let server = Server::start_with(&data, Some(&config));
    let key = common::sdk_key_for(&server, "staging");
    let stream = Stream::open(&server, "env=staging", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    let step = stream.next();
    assert_eq!(weight(&step), Some(20_000));
    assert_eq!(step.data["state"]["updated_by"], "system:rollout");

    server.cli(&["rollout", "pause", "ui.search_v3", "--env", "staging"]).ok();
    assert_eq!(stream.next().data["state"]["rollout"]["paused"], true);
    server.cli(&["rollout", "abort", "ui.search_v3", "--env", "staging"]).ok();
    let aborted = stream.next();
    assert!(aborted.data["state"]["rollout"].is_null());
    assert_eq!(weight(&aborted), Some(20_000), "aborting keeps the current percentage");
    let refused = server.cli(&["rollout", "pause", "ui.search_v3", "--env", "staging"]).expect_code(1);
    assert!(refused.stderr.contains("no rollout in progress"), "{}", refused.stderr);
    // A change by a person ends a plan too.
    server.cli(&["rollout", "ui.search_v3", "--env", "staging", "--steps", "30,100", "--every", "1h"]).ok();
    server.cli(&["set", "ui.search_v3", "--env", "staging", "--rollout", "40"]).ok();
    let status = server.cli(&["rollout", "status", "ui.search_v3", "--env", "staging", "-o", "json"]).ok().json();
    assert!(status["plan"].is_null());
    assert_eq!(status["percent"].as_f64(), Some(40.0));
}

#[test]
fn bad_plans_are_refused_with_the_reason() {
    let server = Server::start();
    server.cli(&["define", "ui.a"]).ok();
    server.cli(&["define", "ui.theme", "--type", "string", "--default", "light"]).ok();
    for (args, explains) in [
        (vec!["ui.a", "--steps", "50,10", "--every", "1m"], "steps must grow"),
        (vec!["ui.a", "--steps", "0,10", "--every", "1m"], "out of range"),
        (vec!["ui.a", "--steps", "10,150", "--every", "1m"], "out of range"),
        (vec!["ui.a", "--steps", "10,100", "--every", "soon"], "not a duration"),
        (vec!["ui.theme", "--steps", "10,100", "--every", "1m"], "needs a boolean flag"),
    ] {
        let mut command = vec!["rollout"];
        command.extend(args.iter().copied());
        command.extend(["--env", "dev"]);
        let refused = server.cli(&command).expect_code(2);
        assert!(refused.stderr.contains(explains), "{command:?}: {}", refused.stderr);
    }
}

#[test]
fn the_guard_rolls_a_plan_back_when_the_new_variant_errors_more_and_says_why() {
    let server = Server::start_configured("guard_check_seconds = 1\nguard_min_evaluations = 200\n");
    server.cli(&["define", "ui.checkout_v2"]).ok();
    let key = common::sdk_key_for(&server, "prod");
    let stream = Stream::open(&server, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    server
        .cli(&["rollout", "ui.checkout_v2", "--env", "prod", "--steps", "10,50,100", "--every", "4s", "--yes", "--reason", "launch"])
        .ok();
    assert_eq!(weight(&stream.next()), Some(10_000));

    // An SDK reports: the new variant fails 10 % of the time, the old one 1 %.
    let batch = serde_json::json!({"flags": {"ui.checkout_v2": {"variants": {
        "true": {"evaluations": 400, "errors": 40}, "false": {"evaluations": 3600, "errors": 36}}}}});
    assert_eq!(server.http().with_token(Some(&key)).post("/api/feature-flags/metrics", &batch).status, 202);

    let rolled_back = stream.next();
    assert_eq!(rolled_back.data["state"]["updated_by"], "system:guard");
    assert_eq!(rolled_back.data["state"]["enabled"], false, "back to the state before the plan");
    assert!(rolled_back.data["state"]["rollout"].is_null(), "the plan is stopped");
    let audit = server.http().get("/api/flags/audit?flag=ui.checkout_v2&action=rollback").body;
    let reason = audit["entries"][0]["reason"].as_str().unwrap().to_owned();
    assert_eq!(audit["entries"][0]["user"], "system:guard");
    assert!(reason.contains("10.00 % (40/400)") && reason.contains("1.00 % (36/3600)") && reason.contains("z = "), "{reason}");
}

#[test]
fn promotion_into_production_can_start_a_rollout() {
    let server = Server::start_configured(ADVANCE);
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    let key = common::sdk_key_for(&server, "prod");
    let stream = Stream::open(&server, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    server
        .cli(&[
            "promote",
            "ui.new_feature",
            "--from=staging",
            "--to=prod",
            "--rollout",
            "10,100",
            "--every",
            "1s",
            "--yes",
            "--reason",
            "Rollout approved by PM",
        ])
        .ok();
    let first = stream.next();
    assert_eq!(weight(&first), Some(10_000), "the promotion lands at the first step");
    assert_eq!(first.data["state"]["rollout"]["next_step"], 1);
    let last = stream.next();
    assert!(last.data["state"]["split"].is_null() && last.data["state"]["rollout"].is_null() && last.data["state"]["enabled"] == true);
    let audit = server.http().get("/api/flags/audit?flag=ui.new_feature&env=prod").body;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|entry| entry["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["rollout_step", "promote", "create"]);
    assert_eq!(audit["entries"][1]["from_environment"], "staging");
    assert_eq!(audit["entries"][1]["reason"], "Rollout approved by PM");
}

fn rollout_status(server: &Server, flag: &str, environment: &str) -> Value {
    server.cli(&["rollout", "status", flag, "--env", environment, "-o", "json"]).ok().json()
}

/// The rollout status once `done` holds for it, asking again until it does (the guard looks every second).
fn status_when(server: &Server, flag: &str, environment: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + common::MOMENT;
    loop {
        let status = rollout_status(server, flag, environment);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within a moment: {status}");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn post_metrics(server: &Server, key: &str, flag: &str, variants: Value) {
    let batch = json!({"flags": {flag: {"variants": variants}}});
    let answer = server.http().with_token(Some(key)).post("/api/feature-flags/metrics", &batch);
    assert_eq!(answer.status, 202, "{:?}", answer.body);
}

#[test]
fn a_plan_that_completed_before_the_guard_saw_its_errors_is_rolled_back_to_the_state_before_the_plan() {
    let server = Server::start_configured(&format!("{ADVANCE}guard_check_seconds = 1\nguard_min_evaluations = 200\n"));
    server.cli(&["define", "ui.checkout_v2"]).ok();
    let key = common::sdk_key_for(&server, "prod");
    let stream = Stream::open(&server, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    server
        .cli(&["rollout", "ui.checkout_v2", "--env", "prod", "--steps", "20,50,100", "--every", "1s", "--yes", "--reason", "launch"])
        .ok();
    assert_eq!(weight(&stream.next()), Some(20_000));
    assert_eq!(weight(&stream.next()), Some(50_000));
    let complete = stream.next();
    assert!(complete.data["state"]["rollout"].is_null() && complete.data["state"]["split"].is_null(), "the plan is complete");

    // Only now does the guard get data: the new variant failed 10 % of the time during the plan, the old one 1 %.
    post_metrics(
        &server,
        &key,
        "ui.checkout_v2",
        json!({"true": {"evaluations": 400, "errors": 40}, "false": {"evaluations": 3600, "errors": 36}}),
    );
    let rolled_back = stream.next();
    assert_eq!(rolled_back.data["state"]["updated_by"], "system:guard");
    assert_eq!(rolled_back.data["state"]["enabled"], false, "the state before the plan (off), not the previous step (50 %)");
    let audit = server.http().get("/api/flags/audit?flag=ui.checkout_v2&action=rollback").body;
    let reason = audit["entries"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("since the rollout started") && reason.contains("its state before restored"), "{reason}");
}

#[test]
fn a_plan_holds_at_each_step_until_the_guard_has_seen_it_healthy_and_says_why() {
    let server = Server::start_configured("guard_check_seconds = 1\nguard_min_evaluations = 200\n");
    server.cli(&["define", "ui.search_v3"]).ok();
    let key = common::sdk_key_for(&server, "staging");
    let stream = Stream::open(&server, "env=staging", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    server.cli(&["rollout", "ui.search_v3", "--env", "staging", "--steps", "10,50,100", "--every", "1s"]).ok();
    let first = stream.next();
    assert_eq!(weight(&first), Some(10_000));
    let due = first.data["state"]["rollout"]["next_at"].as_str().unwrap().to_owned();

    // No metrics: the step is due, the guard has looked after that, and the plan still holds, saying why.
    let holding = status_when(&server, "ui.search_v3", "staging", "a look after the step was due", |status| {
        status["guard"]["checked_at"].as_str().is_some_and(|checked| checked > due.as_str()) && status["guard"]["step"].is_object()
    });
    assert_eq!(holding["percent"].as_f64(), Some(10.0), "no evidence, no next step: {holding}");
    let waiting = holding["waiting"].as_str().unwrap();
    assert!(waiting.contains("0 of 200 evaluations of the new variant"), "{waiting}");
    let text = server.cli(&["rollout", "status", "ui.search_v3", "--env", "staging"]).ok().stdout;
    assert!(text.contains("step 1 of 3") && text.contains("waiting for evidence at this step"), "{text}");

    // Healthy evidence at this step lets the plan go on, to the next step only.
    post_metrics(
        &server,
        &key,
        "ui.search_v3",
        json!({"true": {"evaluations": 300, "errors": 3}, "false": {"evaluations": 2700, "errors": 27}}),
    );
    let second = stream.next();
    assert_eq!(weight(&second), Some(50_000));
    assert_eq!(second.data["state"]["updated_by"], "system:rollout");
    let version = second.data["state"]["version"].as_u64().unwrap();
    // What was seen at step 1 does not count for step 2: it waits again.
    let holding = status_when(&server, "ui.search_v3", "staging", "the guard's first look at step 2", |status| {
        status["guard"]["step"]["version"].as_u64() == Some(version)
    });
    assert_eq!(holding["guard"]["step"]["candidate"]["evaluations"], 0, "{holding}");
    assert_eq!(holding["percent"].as_f64(), Some(50.0));
    post_metrics(
        &server,
        &key,
        "ui.search_v3",
        json!({"true": {"evaluations": 1500, "errors": 15}, "false": {"evaluations": 1500, "errors": 15}}),
    );
    let last = stream.next();
    assert!(last.data["state"]["split"].is_null() && last.data["state"]["rollout"].is_null(), "the plan is complete: {:?}", last.data);
}

#[test]
fn when_the_state_before_a_plan_no_longer_fits_the_definition_the_guard_turns_the_flag_off() {
    let server = Server::start_configured(&format!("{ADVANCE}guard_check_seconds = 1\nguard_min_evaluations = 200\n"));
    let created =
        server.http().post("/api/flags", &json!({"name": "ui.bv", "type": "boolean", "variants": [{"name": "on", "value": true}]}));
    assert_eq!(created.status, 201, "{:?}", created.body);
    let set = server.http().put(
        "/api/flags/ui.bv/environments/prod",
        &json!({"enabled": false, "serve": {"variant": "on"}, "reason": "ready"}),
        None,
    );
    assert_eq!(set.status, 200);
    let key = common::sdk_key_for(&server, "prod");
    let stream = Stream::open(&server, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    server.cli(&["rollout", "ui.bv", "--env", "prod", "--steps", "10,50,100", "--every", "1h", "--yes", "--reason", "launch"]).ok();
    assert_eq!(weight(&stream.next()), Some(10_000));
    // The variant the pre-plan state served is removed. That state is what production may serve next (a rollback
    // restores it), so a developer may not; an admin may, with a reason.
    server.cli(&["user", "add", "dev@example.com", "--role", "developer"]).ok();
    let developer = server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned();
    let refused =
        server.http().with_token(Some(&developer)).send("PATCH", "/api/flags/ui.bv", Some(json!({"variants": []}).to_string()), &[]);
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    let removed = server.http().send(
        "PATCH",
        "/api/flags/ui.bv",
        Some(json!({"variants": [], "reason": "the on variant is retired"}).to_string()),
        &[],
    );
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    let _definition_change = stream.next();

    post_metrics(
        &server,
        &key,
        "ui.bv",
        json!({"true": {"evaluations": 400, "errors": 200}, "false": {"evaluations": 3600, "errors": 36}}),
    );
    let stopped = stream.next();
    assert_eq!(stopped.data["state"]["updated_by"], "system:guard");
    assert_eq!(stopped.data["state"]["enabled"], false, "the kill switch, since the state before cannot be restored");
    assert!(stopped.data["state"]["rollout"].is_null(), "the plan is stopped");
    let audit = server.http().get("/api/flags/audit?flag=ui.bv&env=prod").body;
    let reason = audit["entries"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("turned off instead of restored") && reason.contains("no longer fits"), "{reason}");
}
