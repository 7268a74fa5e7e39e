//! Production is safe by construction, on a running server: the gate judges every write by what it changes in what
//! each environment serves (so a definition edit can be a production change), archiving never changes what is
//! served, the kill switch always works, and open streams lose a credential that was revoked.

mod common;

use common::{ADMIN_TOKEN, Server, Stream};
use serde_json::{Value, json};

/// A developer's personal token.
fn developer(server: &Server) -> String {
    server.cli(&["user", "add", "dev@example.com", "--role", "developer"]).ok();
    server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned()
}

/// `ui.button_colour`: a string flag with variants control (grey, also the default) and treatment (blue); production
/// serves the treatment, staging is off.
fn colour_flag(server: &Server) {
    let created = server.http().post(
        "/api/flags",
        &json!({"name": "ui.button_colour", "type": "string", "default": "grey", "variants": [
            {"name": "control", "value": "grey"}, {"name": "treatment", "value": "blue"}]}),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    let set = server.http().put(
        "/api/flags/ui.button_colour/environments/prod",
        &json!({"enabled": true, "serve": {"variant": "treatment"}, "reason": "treatment wins"}),
        None,
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
}

fn recolour(treatment: &str, reason: Option<&str>) -> Value {
    let mut body = json!({"variants": [{"name": "control", "value": "grey"}, {"name": "treatment", "value": treatment}]});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    body
}

/// The next change of `flag` on `stream`, past changes of other flags.
fn next_change_of(stream: &Stream, flag: &str) -> common::Event {
    loop {
        let event = stream.next();
        if event.data["flag"] == flag {
            return event;
        }
    }
}

/// What production's OFREP answers for one flag.
fn served_in_prod(server: &Server, key: &str, flag: &str) -> Value {
    let answer =
        server.http().with_token(Some(key)).post(&format!("/ofrep/v1/evaluate/flags/{flag}"), &json!({"context": {"targetingKey": "u1"}}));
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["value"].clone()
}

#[test]
fn a_definition_change_that_alters_what_production_serves_is_a_production_change() {
    let server = Server::start_configured("guard_check_seconds = 1\n");
    colour_flag(&server);
    let developer = developer(&server);
    let key = common::sdk_key_for(&server, "prod");
    let stream = Stream::open(&server, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    let version = server.http().get("/api/flags/ui.button_colour/environments/prod").body["state"]["version"].as_u64().unwrap();

    // A developer cannot change a value production serves through the definition.
    let as_developer = server.http().with_token(Some(&developer));
    let refused = as_developer.send("PATCH", "/api/flags/ui.button_colour", Some(recolour("red", Some("rebrand")).to_string()), &[]);
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("alters what production serves") && message.contains("needs the admin role"), "{message}");
    assert_eq!(served_in_prod(&server, &key, "ui.button_colour"), "blue", "nothing changed");
    // Metadata stays developer-level.
    let described =
        as_developer.send("PATCH", "/api/flags/ui.button_colour", Some(json!({"description": "the buy button"}).to_string()), &[]);
    assert_eq!(described.status, 200, "{:?}", described.body);
    assert_eq!(next_change_of(&stream, "ui.button_colour").data["definition"]["description"], "the buy button");
    // A disabled string flag serves its default, so its default is production's too.
    server.http().post("/api/flags", &json!({"name": "ui.theme", "type": "string", "default": "light"}));
    let refused = as_developer.send("PATCH", "/api/flags/ui.theme", Some(json!({"default": "dark"}).to_string()), &[]);
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(served_in_prod(&server, &key, "ui.theme"), "light");

    // An admin needs a reason, as for any production change; a dry run says what would change where.
    let admin = server.http();
    let without_reason = admin.send("PATCH", "/api/flags/ui.button_colour", Some(recolour("red", None).to_string()), &[]);
    assert_eq!((without_reason.status, without_reason.body["error"]["code"].as_str()), (422, Some("reason_required")));
    let mut dry_run = recolour("red", None);
    dry_run["dry_run"] = json!(true);
    let impact = admin.send("PATCH", "/api/flags/ui.button_colour", Some(dry_run.to_string()), &[]).body;
    assert_eq!(impact["affects"], json!([{"environment": "prod", "name": "production", "protected": true, "effect": "serving"}]));
    let done = admin.send("PATCH", "/api/flags/ui.button_colour", Some(recolour("red", Some("rebrand: red buttons")).to_string()), &[]);
    assert_eq!(done.status, 200, "{:?}", done.body);

    // Production sees it as a change of its own: a new state version, streamed, served, audited there, watched.
    let change = next_change_of(&stream, "ui.button_colour");
    assert_eq!(change.data["state"]["version"].as_u64(), Some(version + 1));
    assert_eq!(change.data["state"]["updated_by"], "admin@localhost");
    assert_eq!(served_in_prod(&server, &key, "ui.button_colour"), "red");
    let audit = server.cli(&["audit", "--env", "prod", "--flag", "ui.button_colour", "-o", "json"]).ok().json();
    let entry = &audit["entries"][0];
    assert_eq!((entry["action"].as_str(), entry["environment"].as_str()), (Some("update"), Some("production")));
    assert_eq!(entry["reason"], "rebrand: red buttons");
    assert_eq!(entry["definition"]["before"]["variants"][1]["value"], "blue");
    assert_eq!(entry["definition"]["after"]["variants"][1]["value"], "red");
    assert_eq!(entry["after"]["version"].as_u64(), Some(version + 1));
    // As a person reads it: every change to what production serves, whatever made it, with what changed.
    let text = server.cli(&["audit", "--env", "prod", "--flag", "ui.button_colour"]).ok().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("CHANGE"), "{text}");
    assert!(
        lines[1].contains("update")
            && lines[1].contains(r#"variant treatment: "red" (was "blue")"#)
            && lines[1].contains("rebrand: red buttons"),
        "{text}"
    );
    assert!(lines.iter().any(|line| line.contains("turned on; everyone else: treatment (was control)")), "{text}");
    let staging = server.cli(&["audit", "--env", "staging", "--flag", "ui.button_colour", "-o", "json"]).ok().json();
    assert!(staging["entries"].as_array().unwrap().iter().all(|entry| entry["action"] != "update"), "staging serves control: untouched");
    // The guard watches it like any production change (it looks every second; asking again is the wait).
    let deadline = std::time::Instant::now() + common::MOMENT;
    loop {
        let guard = server.http().get("/api/flags/ui.button_colour/environments/prod/guard").body;
        if guard["report"]["version"].as_u64() == Some(version + 1) {
            assert_eq!(guard["report"]["watching"], "change", "{guard}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the guard never watched the change: {guard}");
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    }
    assert!(server.cli(&["audit", "verify"]).ok().stdout.contains("intact"));
}

#[test]
fn apply_of_a_registry_that_changes_what_production_serves_needs_the_admin_a_reason_and_confirmation() {
    let server = Server::start();
    colour_flag(&server);
    let developer = developer(&server);
    let directory = tempfile::tempdir().unwrap();
    let registry = directory.path().join("flags.toml");
    std::fs::write(
        &registry,
        "[[flag]]\nname = \"ui.button_colour\"\ntype = \"string\"\ndefault = \"grey\"\nvariants = [\n  { name = \"control\", value = \"grey\" },\n  { name = \"treatment\", value = \"green\" },\n]\n",
    )
    .unwrap();
    let file = registry.to_str().unwrap();
    let preview = server.cli(&["apply", file, "--dry-run"]).ok();
    assert!(preview.stdout.contains("changes what prod serves"), "{}", preview.stdout);

    let refused = server.cli_as(&developer, &["apply", file, "--reason", "green", "--yes"]).expect_code(3);
    assert!(refused.stderr.contains("alters what production serves"), "{}", refused.stderr);
    let refused = server.cli(&["apply", file]).expect_code(3);
    assert!(refused.stderr.contains("--reason") && refused.stderr.contains("--yes"), "{}", refused.stderr);
    let key = common::sdk_key_for(&server, "prod");
    assert_eq!(served_in_prod(&server, &key, "ui.button_colour"), "blue", "nothing changed");

    server.cli(&["apply", file, "--reason", "green buttons", "--yes"]).ok();
    assert_eq!(served_in_prod(&server, &key, "ui.button_colour"), "green");
    let audit = server.cli(&["audit", "--env", "prod", "-o", "json"]).ok().json();
    assert_eq!(audit["entries"][0]["reason"], "green buttons");
}

#[test]
fn apply_never_sends_a_reason_nobody_gave_so_a_change_that_reaches_production_meanwhile_is_refused() {
    // The colour flag's treatment is unserved in production (it serves control there), so the dry run names no
    // protected environment. Round 10 found apply then sent the edit with a reason it wrote itself: an edit that came
    // to change production between the dry run and the write (another admin switching production to treatment) was
    // accepted with that reason. Apply now sends no reason unless a person confirmed a protected change, and pins
    // the definition the dry run judged.
    let server = Server::start();
    colour_flag(&server);
    let set = server.http().put(
        "/api/flags/ui.button_colour/environments/prod",
        &json!({"enabled": true, "serve": {"variant": "control"}, "reason": "back to control"}),
        None,
    );
    assert_eq!(set.status, 200, "{:?}", set.body);
    let directory = tempfile::tempdir().unwrap();
    let registry = directory.path().join("flags.toml");
    std::fs::write(
        &registry,
        "[[flag]]\nname = \"ui.button_colour\"\ntype = \"string\"\ndefault = \"grey\"\nvariants = [\n  { name = \"control\", value = \"grey\" },\n  { name = \"treatment\", value = \"green\" },\n]\n",
    )
    .unwrap();
    server.cli(&["apply", registry.to_str().unwrap()]).ok();
    let audit = server.cli(&["audit", "--flag", "ui.button_colour", "-o", "json"]).ok().json();
    let update = &audit["entries"][0];
    assert_eq!((update["action"].as_str(), update["environment"].as_str()), (Some("update"), None), "{update}");
    assert_eq!(update["reason"], Value::Null, "the record carries no reason the person did not give: {update}");
    // What the server does with such an edit once production depends on it: refused for want of a reason.
    server.http().put(
        "/api/flags/ui.button_colour/environments/prod",
        &json!({"enabled": true, "serve": {"variant": "treatment"}, "reason": "treatment again"}),
        None,
    );
    let refused = server.http().send("PATCH", "/api/flags/ui.button_colour", Some(recolour("red", None).to_string()), &[]);
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (422, Some("reason_required")), "{:?}", refused.body);
}

#[test]
fn archiving_changes_nothing_served_and_never_blocks_the_kill_switch() {
    let server = Server::start();
    let developer = developer(&server);
    let as_developer = server.http().with_token(Some(&developer));
    server.http().post("/api/flags", &json!({"name": "ui.theme", "type": "string", "default": "light"}));
    server.cli(&["define", "ui.banner"]).ok();
    server.cli(&["enable", "ui.banner", "--env", "staging"]).ok();
    server.cli(&["define", "ui.checkout_v2"]).ok();
    server.cli(&["enable", "ui.checkout_v2", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let key = common::sdk_key_for(&server, "prod");

    // A flag that serves something in production cannot be archived.
    let refused = as_developer.post("/api/flags/ui.checkout_v2/archive", &json!({}));
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (409, Some("flag_enabled")), "{:?}", refused.body);
    // One that is off there can, and it goes on serving what it served, through single and bulk evaluation alike.
    for flag in ["ui.theme", "ui.banner"] {
        assert_eq!(as_developer.post(&format!("/api/flags/{flag}/archive"), &json!({})).status, 200);
    }
    assert_eq!(served_in_prod(&server, &key, "ui.theme"), "light");
    let bulk = server.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags", &json!({"context": {"targetingKey": "u1"}})).body;
    let theme = bulk["flags"].as_array().unwrap().iter().find(|flag| flag["key"] == "ui.theme").cloned();
    assert_eq!(theme.map(|flag| flag["value"].clone()), Some(json!("light")), "{bulk}");

    // The kill switch works on an archived flag; turning one on does not.
    let disabled = server.http().post("/api/flags/ui.banner/environments/staging/disable", &json!({}));
    assert_eq!((disabled.status, disabled.body["state"]["enabled"].as_bool()), (200, Some(false)), "{:?}", disabled.body);
    let enabled = server.http().post("/api/flags/ui.banner/environments/staging/enable", &json!({}));
    assert_eq!((enabled.status, enabled.body["error"]["code"].as_str()), (409, Some("flag_archived")));
}

#[test]
fn the_emergency_disable_is_never_refused_while_another_writer_changes_the_flag() {
    let server = Server::start();
    server.cli(&["define", "ui.checkout_v2"]).ok();
    let url = server.url.clone();
    let writer = std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        for round in 0..150u32 {
            let share = 1000 * (1 + round % 99);
            let body = json!({"enabled": true, "serve": {"value": true}, "reason": "widen", "split": {"buckets": [
                {"serve": {"value": true}, "weight": share}, {"serve": {"value": false}, "weight": 100_000 - share}]}});
            let answer =
                client.put(format!("{url}/api/flags/ui.checkout_v2/environments/prod")).bearer_auth(ADMIN_TOKEN).json(&body).send();
            assert_eq!(answer.unwrap().status().as_u16(), 200);
        }
    });
    let admin = server.http();
    let mut refused = Vec::new();
    for _ in 0..100 {
        let answer = admin.post("/api/flags/ui.checkout_v2/environments/prod/disable", &json!({"reason": "INCIDENT"}));
        if answer.status != 200 {
            refused.push((answer.status, answer.body));
        }
    }
    writer.join().unwrap();
    assert!(refused.is_empty(), "the kill switch was refused {} times: {:?}", refused.len(), refused.first());
    // Each disable turned off whatever was current: the writer's split survives in the disabled state.
    let disable = admin.post("/api/flags/ui.checkout_v2/environments/prod/disable", &json!({"reason": "INCIDENT"}));
    assert_eq!(disable.body["state"]["enabled"], false);
    assert!(disable.body["state"]["split"].is_object(), "a disable keeps the rest of the state: {:?}", disable.body);
}

/// Waits for the stream to end, skipping what arrives before (heartbeats keep coming while it is open).
fn ends(stream: &Stream) {
    let deadline = std::time::Instant::now() + common::MOMENT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match stream.events.recv_timeout(left) {
            Ok(None) => return,
            Ok(Some(_)) => continue,
            Err(_) => panic!("the stream was still open a moment after its credential was withdrawn"),
        }
    }
}

#[test]
fn a_revoked_key_and_a_disabled_user_lose_their_open_streams() {
    let server = Server::start_configured("heartbeat_seconds = 1\n");
    server.cli(&["define", "ui.a"]).ok();
    let key = common::sdk_key_for(&server, "staging");
    let developer = developer(&server);
    let by_key = Stream::open(&server, "env=staging", &key, None).unwrap();
    let by_user = Stream::open(&server, "env=staging", &developer, None).unwrap();
    let kept = Stream::open(&server, "env=staging", ADMIN_TOKEN, None).unwrap();
    for stream in [&by_key, &by_user, &kept] {
        assert_eq!(stream.next().name, "snapshot");
    }

    let tokens = server.cli(&["token", "list", "-o", "json"]).ok().json();
    let id = tokens.as_array().unwrap().iter().find(|token| token["kind"] == "sdk").unwrap()["id"].as_str().unwrap().to_owned();
    server.cli(&["token", "revoke", &id]).ok();
    ends(&by_key);
    server.cli(&["user", "disable", "dev@example.com"]).ok();
    ends(&by_user);

    // A stream whose credential still holds goes on, and gets the next change.
    server.cli(&["enable", "ui.a", "--env", "staging"]).ok();
    assert_eq!(kept.next().data["state"]["enabled"], true);
}

#[test]
fn what_the_kill_switch_would_serve_and_the_labels_production_reports_are_production_changes_too() {
    let server = Server::start();
    let developer = developer(&server);
    let as_developer = server.http().with_token(Some(&developer));
    let key = common::sdk_key_for(&server, "prod");

    // Defining is developer-level, and every environment's trail says what it now serves.
    let created = as_developer.post(
        "/api/flags",
        &json!({"name": "ui.mode", "type": "string", "default": "safe", "variants": [
        {"name": "safe", "value": "safe"}, {"name": "risky", "value": "risky"}]}),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    let audit = server.http().get("/api/flags/audit?flag=ui.mode&env=prod").body;
    assert_eq!(audit["entries"][0]["action"], "create", "{audit}");
    assert_eq!(audit["entries"][0]["after"]["enabled"], false);

    // An enabled flag's default is what production serves the moment anyone (or any trigger) turns it off.
    let set = server.http().put(
        "/api/flags/ui.mode/environments/prod",
        &json!({"enabled": true, "serve": {"value": "safe"}, "reason": "on"}),
        None,
    );
    assert_eq!(set.status, 200);
    let refused = as_developer.send("PATCH", "/api/flags/ui.mode", Some(json!({"default": "risky"}).to_string()), &[]);
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("alters what production serves"), "{:?}", refused.body);
    // A variant renamed where production serves its value changes the label OFREP reports (and the guard counts).
    let renamed = as_developer.send(
        "PATCH",
        "/api/flags/ui.mode",
        Some(json!({"variants": [{"name": "attacker_label", "value": "safe"}, {"name": "risky", "value": "risky"}]}).to_string()),
        &[],
    );
    assert_eq!(renamed.status, 403, "{:?}", renamed.body);
    let answer = server.http().with_token(Some(&key)).post("/ofrep/v1/evaluate/flags/ui.mode", &json!({"context": {"targetingKey": "u1"}}));
    assert_eq!((answer.body["value"].as_str(), answer.body["variant"].as_str()), (Some("safe"), Some("safe")));

    // The kill switch reads no If-Match at all: stale, wildcard or garbage, it disables.
    for header in ["\"1\"", "*", "W/\"abc\"", "\"5\", \"6\"", "12345678901234567890123"] {
        server.cli(&["enable", "ui.mode", "--env", "prod", "--yes", "--reason", "again"]).ok();
        let disabled = server.http().send(
            "POST",
            "/api/flags/ui.mode/environments/prod/disable",
            Some(json!({"reason": "x"}).to_string()),
            &[("if-match", header)],
        );
        assert_eq!(
            (disabled.status, disabled.body["state"]["enabled"].as_bool()),
            (200, Some(false)),
            "If-Match {header}: {:?}",
            disabled.body
        );
    }
}

#[test]
fn a_production_rollout_needs_a_persons_reason_to_start_pause_resume_or_abort() {
    let server = Server::start();
    server.cli(&["define", "ui.roll"]).ok();
    let path = "/api/flags/ui.roll/environments/prod/rollout";
    let start = server.http().post(path, &json!({"steps": [10, 50, 100], "every": "1h"}));
    assert_eq!((start.status, start.body["error"]["code"].as_str()), (422, Some("reason_required")), "{:?}", start.body);
    assert_eq!(server.http().get("/api/flags/ui.roll/environments/prod").body["state"]["enabled"], false, "nothing changed");
    assert_eq!(server.http().post(path, &json!({"steps": [10, 50, 100], "every": "1h", "reason": "launch"})).status, 200);
    for action in ["pause", "abort"] {
        let refused = server.http().post(&format!("{path}/{action}"), &json!({}));
        assert_eq!(
            (refused.status, refused.body["error"]["code"].as_str()),
            (422, Some("reason_required")),
            "{action}: {:?}",
            refused.body
        );
    }
    assert_eq!(server.http().post(&format!("{path}/pause"), &json!({"reason": "looking into errors"})).status, 200);
    let audit = server.http().get("/api/flags/audit?flag=ui.roll&env=prod").body;
    assert_eq!(audit["entries"][0]["reason"], "rollout paused (looking into errors)");
    assert!(audit["entries"][1]["reason"].as_str().unwrap().starts_with("rollout started: 10 % → 50 % → 100 % every 1h"), "{audit}");
}

#[test]
fn a_bulk_change_by_tag_in_production_confirms_and_sends_exactly_the_flags_it_names() {
    let server = Server::start();
    for flag in ["ui.a", "ui.b", "ui.untagged"] {
        server.cli(&["define", flag]).ok();
    }
    for flag in ["ui.a", "ui.b"] {
        let tagged = server.http().send("PATCH", &format!("/api/flags/{flag}"), Some(json!({"tags": ["release"]}).to_string()), &[]);
        assert_eq!(tagged.status, 200);
    }
    server.cli(&["enable", "ui.b", "--env", "prod", "--yes", "--reason", "early"]).ok();
    let run =
        common::cli_on_terminal(&server.url, ADMIN_TOKEN, &["enable", "--tag", "release", "--env", "prod", "--reason", "launch"], "prod\n");
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("enabling ui.a (the flags tagged release that are not yet enabled)"), "{}", run.stdout);
    let bulk = server.http().get("/api/flags/audit?env=prod&action=enable").body;
    let enabled: Vec<&str> = bulk["entries"].as_array().unwrap().iter().filter_map(|entry| entry["flag"].as_str()).collect();
    assert_eq!(enabled, ["ui.a", "ui.b"], "ui.a now, ui.b before; nothing else");
}

#[test]
fn a_promotion_applies_exactly_what_its_diff_showed_or_nothing() {
    let server = Server::start();
    let developer = developer(&server);
    let as_developer = server.http().with_token(Some(&developer));
    let created = server.http().post(
        "/api/flags",
        &json!({"name": "ui.banner", "type": "string", "default": "plain", "variants": [
        {"name": "plain", "value": "plain"}, {"name": "new", "value": "shiny"}]}),
    );
    assert_eq!(created.status, 201);
    let staged =
        as_developer.put("/api/flags/ui.banner/environments/staging", &json!({"enabled": true, "serve": {"variant": "new"}}), None);
    assert_eq!(staged.status, 200);
    let promote = |body: Value| server.http().post("/api/flags/ui.banner/promote", &body);
    // What the CLI and the panel send once a person approved a dry run's diff.
    let approval = |preview: &Value| {
        json!({"from": "staging", "to": "prod", "reason": "approved", "expected_version": preview["target_version"],
               "expected_source_version": preview["source_version"], "expected_definition_version": preview["definition_version"]})
    };
    let preview = promote(json!({"from": "staging", "to": "prod", "dry_run": true})).body;

    // After the admin saw the diff ("serve: variant new"), a developer changes what `new` means (staging is theirs).
    let recoloured = as_developer.send(
        "PATCH",
        "/api/flags/ui.banner",
        Some(json!({"variants": [{"name": "plain", "value": "plain"}, {"name": "new", "value": "<script>"}]}).to_string()),
        &[],
    );
    assert_eq!(recoloured.status, 200, "{:?}", recoloured.body);
    let refused = promote(approval(&preview));
    assert_eq!(refused.status, 412, "{:?}", refused.body);
    // (The edit changed what staging serves, so staging's state moved too; either pin refuses it.)
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("since the diff"), "{:?}", refused.body);

    // Or changes the source state itself.
    let preview = promote(json!({"from": "staging", "to": "prod", "dry_run": true})).body;
    let changed =
        as_developer.put("/api/flags/ui.banner/environments/staging", &json!({"enabled": true, "serve": {"value": "surprise"}}), None);
    assert_eq!(changed.status, 200);
    let refused = promote(approval(&preview));
    assert_eq!(refused.status, 412, "{:?}", refused.body);
    assert_eq!(server.http().get("/api/flags/ui.banner/environments/prod").body["state"]["enabled"], false, "prod untouched");

    // What was approved goes through.
    let preview = promote(json!({"from": "staging", "to": "prod", "dry_run": true})).body;
    assert_eq!(promote(approval(&preview)).status, 200);
    assert_eq!(server.http().get("/api/flags/ui.banner/environments/prod").body["state"]["serve"]["value"], "surprise");
}

#[test]
fn approved_batches_apply_what_their_diff_showed_and_an_armed_state_is_production_s() {
    let server = Server::start();
    let developer = developer(&server);
    let as_developer = server.http().with_token(Some(&developer));

    // A disabled production state that names a variant serves it on the next enable: its value is production's.
    colour_flag(&server);
    let armed = server.http().put(
        "/api/flags/ui.button_colour/environments/prod",
        &json!({"enabled": false, "serve": {"variant": "treatment"}, "reason": "armed for launch"}),
        None,
    );
    assert_eq!(armed.status, 200);
    let refused = as_developer.send("PATCH", "/api/flags/ui.button_colour", Some(recolour("<evil>", None).to_string()), &[]);
    assert_eq!(refused.status, 403, "{:?}", refused.body);

    // Copy: a flag that differs now but was not in the confirmed diff is not swept in.
    for flag in ["ui.c1", "ui.c2"] {
        server.cli(&["define", flag]).ok();
    }
    server.cli_as(&developer, &["enable", "ui.c1", "--env", "staging"]).ok();
    let preview =
        server.http().post("/api/flags/copy", &json!({"from": "staging", "to": "prod", "flags": ["ui.c1", "ui.c2"], "dry_run": true})).body;
    let pins = |field: &str| -> serde_json::Map<String, Value> {
        preview["flags"].as_array().unwrap().iter().map(|flag| (flag["flag"].as_str().unwrap().to_owned(), flag[field].clone())).collect()
    };
    server.cli_as(&developer, &["enable", "ui.c2", "--env", "staging"]).ok();
    let copy = server.http().post(
        "/api/flags/copy",
        &json!({"from": "staging", "to": "prod", "flags": ["ui.c1", "ui.c2"], "reason": "sync",
        "expected_versions": pins("target_version"), "expected_source_versions": pins("source_version"),
        "expected_definition_versions": pins("definition_version")}),
    );
    assert_eq!(copy.status, 412, "{:?}", copy.body);
    assert!(copy.body["error"]["message"].as_str().unwrap().contains("ui.c2 was not in the diff you confirmed"), "{:?}", copy.body);
    assert_eq!(server.http().get("/api/flags/ui.c1/environments/prod").body["state"]["enabled"], false, "all or nothing");

    // Import: a disable made after the dry run is not undone by the approved import.
    server.cli(&["define", "ui.imported"]).ok();
    let document = json!({"format": "vexil.states", "version": 1, "environment": "staging", "exported_at": "2026-12-01T00:00:00Z", "revision": 1,
        "flags": {"ui.imported": {"enabled": true, "serve": {"value": true}}}});
    server.cli(&["enable", "ui.imported", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let document_off = {
        let mut document = document.clone();
        document["flags"]["ui.imported"]["serve"] = json!({"value": false});
        document
    };
    let path = "/api/environments/prod/import";
    let preview = server.http().post(path, &json!({"document": document_off, "dry_run": true})).body;
    let pins = |field: &str| -> serde_json::Map<String, Value> {
        preview["flags"].as_array().unwrap().iter().map(|flag| (flag["flag"].as_str().unwrap().to_owned(), flag[field].clone())).collect()
    };
    server.cli(&["disable", "ui.imported", "--env=prod", "--reason=INCIDENT"]).ok();
    let import = server.http().post(
        path,
        &json!({"document": document_off, "reason": "sync",
        "expected_versions": pins("target_version"), "expected_definition_versions": pins("definition_version")}),
    );
    assert_eq!(import.status, 412, "{:?}", import.body);
    assert_eq!(server.http().get("/api/flags/ui.imported/environments/prod").body["state"]["enabled"], false, "the disable stands");

    // Promote as a rollout ends at the source's state, so only a source that serves true to everyone it does not target.
    server.cli(&["define", "ui.off2"]).ok();
    let staged = as_developer.put("/api/flags/ui.off2/environments/staging", &json!({"enabled": false, "serve": {"value": false}}), None);
    assert_eq!(staged.status, 200);
    let refused = server.cli(&[
        "promote",
        "ui.off2",
        "--from",
        "staging",
        "--to",
        "prod",
        "--rollout",
        "50,100",
        "--every",
        "1h",
        "--reason",
        "sync",
        "--yes",
    ]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("must be on and serve true"), "{}", refused.stderr);
    assert_eq!(server.http().get("/api/flags/ui.off2/environments/prod").body["state"]["enabled"], false);
}

#[test]
fn a_kill_switch_that_names_a_flag_twice_still_turns_everything_off() {
    let server = Server::start();
    for flag in ["ui.dup", "ui.other"] {
        server.cli(&["define", flag]).ok();
        server.cli(&["enable", flag, "--env", "prod", "--yes", "--reason", "launch"]).ok();
    }
    server.cli(&["disable", "ui.dup", "ui.other", "ui.dup", "--env=prod", "--reason=Incident #9"]).ok();
    for flag in ["ui.dup", "ui.other"] {
        assert_eq!(server.http().get(&format!("/api/flags/{flag}/environments/prod")).body["state"]["enabled"], false, "{flag}");
    }
    // Any batch may name a flag twice with the same change: it is one change.
    let bulk = server.http().post("/api/flags/bulk", &json!({"action": "enable", "environment": "dev", "flags": ["ui.dup", "ui.dup"]}));
    assert_eq!(bulk.status, 200, "the same change twice is one change: {:?}", bulk.body);
    assert_eq!(server.http().get("/api/flags/ui.dup/environments/dev").body["state"]["enabled"], true);
}

#[test]
fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let server = Server::start();
    server.cli(&["user", "add", "second@example.com", "--role", "admin"]).ok();
    let second = server.cli(&["token", "create", "--user", "second@example.com"]).ok().stdout.trim().to_owned();
    for round in 0..10 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let demote = |token: String, whom: &'static str| {
            let http = server.http().with_token(Some(&token));
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                http.send("PATCH", &format!("/api/users/{whom}"), Some(json!({"role": "developer"}).to_string()), &[]).status
            })
        };
        let first = demote(ADMIN_TOKEN.to_owned(), "second@example.com");
        let other = demote(second.clone(), "admin@localhost");
        let statuses = [first.join().unwrap(), other.join().unwrap()];
        let users = server.cli_as(ADMIN_TOKEN, &["user", "list", "--output", "json"]);
        let users = if users.code == 0 { users.json() } else { server.cli_as(&second, &["user", "list", "--output", "json"]).ok().json() };
        let admins = users.as_array().unwrap().iter().filter(|user| user["role"] == "admin" && user["disabled"] != true).count();
        assert_eq!(admins, 1, "round {round}: {statuses:?} left {admins} admins");
        assert!(statuses.contains(&200), "round {round}: one of them went through: {statuses:?}");
        // Make both admins again for the next round, as whoever is still the admin.
        let still_admin = |email: &str| users.as_array().unwrap().iter().any(|user| user["email"] == email && user["role"] == "admin");
        let admin = if still_admin("admin@localhost") { ADMIN_TOKEN.to_owned() } else { second.clone() };
        for whom in ["second@example.com", "admin@localhost"] {
            let restored = server.http().with_token(Some(&admin)).send(
                "PATCH",
                &format!("/api/users/{whom}"),
                Some(json!({"role": "admin"}).to_string()),
                &[],
            );
            assert_eq!(restored.status, 200, "{:?}", restored.body);
        }
    }
}

#[test]
fn enabling_by_tag_in_production_needs_the_flags_named_and_a_write_that_changes_nothing_still_needs_the_role() {
    // Round 10: a bulk enable by tag in production enabled whatever a developer had tagged just before (tags are
    // metadata), and a viewer's bulk enable of flags already on answered 200 without a role check.
    let server = Server::start();
    let developer = developer(&server);
    for flag in ["ui.a", "ui.b"] {
        server.cli(&["define", flag]).ok();
    }
    let tagged =
        server.http().with_token(Some(&developer)).send("PATCH", "/api/flags/ui.b", Some(json!({"tags": ["launch"]}).to_string()), &[]);
    assert_eq!(tagged.status, 200, "{:?}", tagged.body);
    let by_tag = json!({"action": "enable", "environment": "prod", "tag": "launch", "reason": "launch"});
    let refused = server.http().post("/api/flags/bulk", &by_tag);
    assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (422, Some("flags_required")), "{:?}", refused.body);
    assert_eq!(server.http().get("/api/flags/ui.b/environments/prod").body["state"]["enabled"], false);
    // Named, it is the admin's own list; and off by tag stays the kill switch it is.
    let named =
        server.http().post("/api/flags/bulk", &json!({"action": "enable", "environment": "prod", "flags": ["ui.b"], "reason": "launch"}));
    assert_eq!((named.status, named.body["changed"].clone()), (200, json!(["ui.b"])), "{:?}", named.body);
    let off =
        server.http().post("/api/flags/bulk", &json!({"action": "disable", "environment": "prod", "tag": "launch", "reason": "incident"}));
    assert_eq!((off.status, off.body["changed"].clone()), (200, json!(["ui.b"])), "{:?}", off.body);

    server.cli(&["user", "add", "viewer@example.com", "--role", "viewer"]).ok();
    let viewer = server.cli(&["token", "create", "--user", "viewer@example.com"]).ok().stdout.trim().to_owned();
    let as_viewer = server.http().with_token(Some(&viewer));
    let nothing = as_viewer.post("/api/flags/bulk", &json!({"action": "disable", "environment": "prod", "flags": ["ui.a"], "reason": "x"}));
    assert_eq!(nothing.status, 403, "a write that would change nothing is still refused to a viewer: {:?}", nothing.body);
    let copy = as_viewer.post("/api/flags/copy", &json!({"from": "staging", "to": "prod", "flags": ["ui.a"], "reason": "x"}));
    assert_eq!(copy.status, 403, "{:?}", copy.body);
    let preview = as_viewer.post("/api/flags/copy", &json!({"from": "staging", "to": "prod", "flags": ["ui.a"], "dry_run": true}));
    assert_eq!(preview.status, 200, "a dry run only reads: {:?}", preview.body);
}

#[test]
fn a_reason_must_show_something_and_no_text_may_reverse_how_it_is_displayed() {
    // Round 10: a zero-width space passed as production's reason (the audit showed a blank), and right-to-left
    // overrides were accepted in reasons, descriptions and trigger names.
    let server = Server::start();
    server.cli(&["define", "ui.a"]).ok();
    for reason in ["\u{200b}", " \u{feff} ", "\u{2060}"] {
        let refused = server.http().post("/api/flags/ui.a/environments/prod/enable", &json!({"reason": reason}));
        assert_eq!(refused.status, 422, "{reason:?}: {:?}", refused.body);
    }
    let spoofed = server.http().post("/api/flags/ui.a/environments/prod/enable", &json!({"reason": "approved \u{202e}dekcolb\u{202c}"}));
    assert_eq!(spoofed.status, 422, "{:?}", spoofed.body);
    assert!(spoofed.body["error"]["message"].as_str().unwrap().contains("direction override"), "{:?}", spoofed.body);
    assert_eq!(server.http().get("/api/flags/ui.a/environments/prod").body["state"]["enabled"], false, "nothing changed");
    let description = server.http().send("PATCH", "/api/flags/ui.a", Some(json!({"description": "\u{2067}x\u{2069}"}).to_string()), &[]);
    assert_eq!(description.status, 422, "{:?}", description.body);
    let trigger = server.http().post("/api/triggers", &json!({"flag": "ui.a", "environment": "dev", "name": "a\u{202e}b"}));
    assert_eq!(trigger.status, 422, "{:?}", trigger.body);
    // Right-to-left text itself is welcome.
    let arabic = server.http().post("/api/flags/ui.a/environments/prod/enable", &json!({"reason": "إطلاق الميزة"}));
    assert_eq!(arabic.status, 200, "{:?}", arabic.body);
}

#[test]
fn an_apply_s_reason_goes_only_with_the_edits_the_person_confirmed() {
    // Round 13: one reason covered a whole apply, so an entry that came to change production between the dry run and
    // the write went through with the reason given for another flag.
    let server = Server::start();
    colour_flag(&server);
    server.cli(&["define", "ui.other"]).ok();
    let version = server.http().get("/api/flags/ui.button_colour").body["version"].clone();
    let entries = json!([{"name": "ui.button_colour", "type": "string", "version": version,
        "variants": [{"name": "control", "value": "grey"}, {"name": "treatment", "value": "red"}]}]);
    let unconfirmed =
        server.http().post("/api/flags/apply", &json!({"flags": entries, "reason": "for ui.other", "confirmed": ["ui.other"]}));
    assert_eq!((unconfirmed.status, unconfirmed.body["error"]["code"].as_str()), (422, Some("reason_required")), "{:?}", unconfirmed.body);
    assert!(unconfirmed.body["error"]["message"].as_str().unwrap().starts_with("ui.button_colour: "), "the refusal names the flag");
    let confirmed =
        server.http().post("/api/flags/apply", &json!({"flags": entries, "reason": "red buttons", "confirmed": ["ui.button_colour"]}));
    assert_eq!((confirmed.status, confirmed.body["applied"].as_bool()), (200, Some(true)), "{:?}", confirmed.body);

    // Unarchived and edited at once is an update, in production's trail too when it changes what production serves.
    server.http().put(
        "/api/flags/ui.button_colour/environments/prod",
        &json!({"enabled": false, "serve": {"variant": "control"}, "reason": "off"}),
        None,
    );
    let archived = server.http().post("/api/flags/ui.button_colour/archive", &json!({}));
    assert_eq!(archived.status, 200, "{:?}", archived.body);
    let version = server.http().get("/api/flags/ui.button_colour").body["version"].clone();
    let edit = json!([{"name": "ui.button_colour", "type": "string", "version": version, "default": "white"}]);
    let applied =
        server.http().post("/api/flags/apply", &json!({"flags": edit, "reason": "white by default", "confirmed": ["ui.button_colour"]}));
    assert_eq!(applied.status, 200, "{:?}", applied.body);
    let latest = &common::audit_entries(&server, "flag=ui.button_colour&env=prod")[0];
    assert_eq!((latest["action"].as_str(), latest["reason"].as_str()), (Some("update"), Some("white by default")), "{latest}");
}
