//! The CLI's other operations: set, copy with its preview, export/import, bulk, the registry, login.

mod common;

use common::Server;
use serde_json::json;

#[test]
fn set_changes_value_rollout_and_rules() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["set", "ui.new_feature", "--env", "staging", "--enabled", "true", "--rollout", "30"]).ok();
    let state = server.cli(&["get", "ui.new_feature", "--env", "staging", "-o", "json"]).ok().json();
    assert_eq!(state["state"]["split"]["buckets"][0], json!({"serve": {"value": true}, "weight": 30000}));
    let matrix = server.cli(&["flags"]).ok().stdout;
    assert!(matrix.contains("✓ Enabled · rolled out to 30 %"), "{matrix}");

    let directory = tempfile::tempdir().unwrap();
    let rules = directory.path().join("rules.json");
    std::fs::write(&rules, json!({"rules": [{"description": "beta testers", "conditions": [{"attribute": "plan", "operator": "in", "values": ["beta", "pro"]}], "serve": {"value": true}}]}).to_string()).unwrap();
    server.cli(&["set", "ui.new_feature", "--env", "staging", "--rules", rules.to_str().unwrap()]).ok();
    let state = server.cli(&["get", "ui.new_feature", "--env", "staging", "-o", "json"]).ok().json();
    assert_eq!(state["state"]["rules"][0]["conditions"][0]["values"], json!(["beta", "pro"]));
    assert_eq!(state["state"]["split"]["buckets"][0]["weight"], 30000, "--rules keeps the rollout");

    let refused = server.cli(&["set", "ui.new_feature", "--env", "staging", "--rollout", "130"]).expect_code(2);
    assert!(refused.stderr.contains("0 to 100"), "{}", refused.stderr);
    let refused = server.cli(&["set", "ui.new_feature", "--env", "prod", "--enabled", "true"]).expect_code(3);
    assert!(refused.stderr.contains("needs a reason (--reason) and confirmation (--yes)"), "{}", refused.stderr);
}

#[test]
fn copy_shows_its_diff_first_and_applies_only_when_asked() {
    let server = Server::start();
    for flag in ["ui.a", "ui.b", "ui.c"] {
        server.cli(&["define", flag]).ok();
    }
    server.cli(&["enable", "ui.a", "ui.b", "--env", "dev"]).ok();
    let preview = server.cli(&["copy", "--from", "dev", "--to", "staging", "--dry-run"]).ok();
    assert!(preview.stderr.contains("ui.a:\n  turned on"), "the diff in words: {}", preview.stderr);
    assert!(preview.stdout.contains("would copy 2 flags into staging (1 already identical); nothing was changed"), "{}", preview.stdout);
    let staging = server.http().get("/api/flags/ui.a/environments/staging").body;
    assert_eq!(staging["state"]["enabled"], false, "a dry run changes nothing");

    server.cli(&["copy", "--from", "dev", "--to", "staging", "ui.a"]).ok();
    let flags = server.http().get("/api/flags").body;
    let enabled_in_staging: Vec<&str> = flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|flag| flag["environments"]["staging"]["enabled"] == true)
        .map(|flag| flag["name"].as_str().unwrap())
        .collect();
    assert_eq!(enabled_in_staging, ["ui.a"]);
    let audit = server.http().get("/api/flags/audit?action=copy").body;
    assert_eq!(audit["entries"][0]["from_environment"], "development");
    assert_eq!(audit["entries"][0]["environment"], "staging");

    // Copy into production is protected like any production change.
    server.cli(&["copy", "--from", "dev", "--to", "prod"]).expect_code(3);
    server.cli(&["copy", "--from", "dev", "--to", "prod", "--yes", "--reason", "sync for launch"]).ok();
    let prod = server.http().get("/api/flags/ui.b/environments/prod").body;
    assert_eq!(prod["state"]["enabled"], true);
}

#[test]
fn export_then_import_round_trips_an_environment() {
    let server = Server::start();
    server.cli(&["define", "ui.theme", "--type", "string", "--default", "light"]).ok();
    server.cli(&["define", "ui.a"]).ok();
    server.cli(&["set", "ui.theme", "--env", "staging", "--enabled", "true", "--value", "dark"]).ok();
    server.cli(&["enable", "ui.a", "--env", "staging"]).ok();
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("staging.json");
    server.cli(&["export", "--env", "staging", "--out", file.to_str().unwrap()]).ok();
    let document: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(document["format"], "vexil.states");
    assert_eq!(document["environment"], "staging");
    assert_eq!(document["flags"]["ui.theme"]["serve"]["value"], "dark");

    let preview = server.cli(&["import", "--env", "dev", file.to_str().unwrap(), "--dry-run"]).ok();
    assert!(preview.stdout.contains("would import 2 flags into dev"), "{}", preview.stdout);
    assert_eq!(server.http().get("/api/flags/ui.theme/environments/dev").body["state"]["enabled"], false);
    server.cli(&["import", "--env", "dev", file.to_str().unwrap()]).ok();
    let dev = server.http().get("/api/flags/ui.theme/environments/dev").body;
    assert_eq!(dev["state"]["serve"]["value"], "dark");
    assert_eq!(dev["state"]["enabled"], true);
    let again = server.cli(&["import", "--env", "dev", file.to_str().unwrap()]).ok();
    assert!(again.stdout.contains("(2 already identical)"), "{}", again.stdout);
    let audit = server.http().get("/api/flags/audit?action=import").body;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
}

#[test]
fn bulk_disable_by_list_and_by_tag() {
    let server = Server::start();
    for (flag, tag) in [("ui.a", "checkout"), ("ui.b", "checkout"), ("ui.c", "search")] {
        server.cli(&["define", flag, "--tag", tag]).ok();
    }
    server.cli(&["enable", "ui.a", "ui.b", "ui.c", "--env", "prod", "--yes", "--reason", "launch"]).ok();
    let output = server.cli(&["disable", "--tag", "checkout", "--env", "prod", "--reason", "Incident #7"]).ok().stdout;
    assert!(output.contains("disabled in prod: ui.a, ui.b"), "{output}");
    let flags = server.http().get("/api/flags").body;
    let prod: Vec<(&str, bool)> = flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flag| (flag["name"].as_str().unwrap(), flag["environments"]["prod"]["enabled"].as_bool().unwrap()))
        .collect();
    assert_eq!(prod, [("ui.a", false), ("ui.b", false), ("ui.c", true)]);
    let audit = server.http().get("/api/flags/audit?action=disable&env=production").body;
    assert!(audit["entries"].as_array().unwrap().iter().all(|entry| entry["reason"] == "Incident #7"));
}

#[test]
fn apply_creates_updates_reports_and_prunes() {
    let server = Server::start();
    server.cli(&["define", "ops.legacy_mode"]).ok();
    let directory = tempfile::tempdir().unwrap();
    let registry = directory.path().join("flags.toml");
    std::fs::write(
        &registry,
        r#"
[[flag]]
name = "ui.new_feature"
type = "boolean"
description = "The new feature"
owner = "team-ui"
tags = ["ui", "launch"]

[[flag]]
name = "experiment.voice_v2"
type = "string"
default = "control"
variants = [{ name = "control", value = "control" }, { name = "treatment", value = "voice-v2" }]
"#,
    )
    .unwrap();
    let first = server.cli(&["apply", registry.to_str().unwrap()]).ok().stdout;
    assert!(first.contains("created (2):\n  ui.new_feature\n  experiment.voice_v2\n"), "one per line: {first}");
    assert!(first.contains("not in the file (archive them with --prune): ops.legacy_mode"), "{first}");
    let again = server.cli(&["apply", registry.to_str().unwrap()]).ok().stdout;
    assert!(again.contains("unchanged: 2 flags"), "{again}");

    std::fs::write(&registry, std::fs::read_to_string(&registry).unwrap().replace("The new feature", "The shiny new feature")).unwrap();
    let updated = server.cli(&["apply", registry.to_str().unwrap(), "--prune"]).ok().stdout;
    assert!(updated.contains("updated: ui.new_feature (description)"), "{updated}");
    assert!(updated.contains("archived (not in the file): ops.legacy_mode"), "{updated}");
    let flag = server.http().get("/api/flags/ui.new_feature").body;
    assert_eq!(flag["description"], "The shiny new feature");
    assert_eq!(server.http().get("/api/flags/ops.legacy_mode").body["archived"], true);
    let listed = server.http().get("/api/flags").body;
    assert!(
        listed["flags"].as_array().unwrap().iter().all(|flag| flag["name"] != "ops.legacy_mode"),
        "archived flags are hidden by default"
    );
    let variant = server.http().put(
        "/api/flags/experiment.voice_v2/environments/dev",
        &json!({"enabled": true, "serve": {"variant": "treatment"}}),
        None,
    );
    assert_eq!(variant.status, 200, "{:?}", variant.body);
}

#[test]
fn login_saves_a_token_that_later_commands_use() {
    let server = Server::start();
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"));
        command.args(args).env("VEXIL_CONFIG_DIR", config.path()).env_remove("VEXIL_TOKEN").env_remove("VEXIL_SERVER");
        command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let wrong = run(&["login", "--server", &server.url, "--email", "admin@localhost", "--password-stdin"], Some("wrong password\n"));
    assert_eq!(wrong.status.code(), Some(4), "{}", String::from_utf8_lossy(&wrong.stderr));
    let login = run(&["login", "--server", &server.url, "--email", "admin@localhost", "--password-stdin"], Some("correct horse battery\n"));
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let saved = std::fs::read_to_string(config.path().join("credentials.toml")).unwrap();
    assert!(saved.contains(&server.url) && saved.contains("vxl_"), "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.path().join("credentials.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the saved token is readable only by its owner");
    }
    let defined = run(&["define", "ui.after_login"], None);
    assert!(defined.status.success(), "{}", String::from_utf8_lossy(&defined.stderr));
    let audit = server.http().get("/api/flags/audit?flag=ui.after_login").body;
    assert_eq!(audit["entries"][0]["user"], "admin@localhost");
}

#[test]
fn apply_takes_thousands_of_flags_in_one_write_and_is_all_or_nothing() {
    let server = Server::start();
    let directory = tempfile::tempdir().unwrap();
    let registry = directory.path().join("flags.toml");
    let mut text: String =
        (0..2000).map(|index| format!("[[flag]]\nname = \"backend.flag_{index:04}\"\ndescription = \"flag {index}\"\n\n")).collect();
    // The last entry is invalid: nothing of the file may be applied.
    text.push_str("[[flag]]\nname = \"backend.broken\"\ntype = \"number\"\ndefault = 5\nmin = 10\n");
    std::fs::write(&registry, &text).unwrap();
    let refused = server.cli(&["apply", registry.to_str().unwrap()]).expect_code(2);
    assert!(refused.stderr.contains("below the minimum"), "{}", refused.stderr);
    assert_eq!(server.http().get("/api/flags").body["flags"].as_array().unwrap().len(), 0, "nothing was created");

    std::fs::write(&registry, text.replace("min = 10", "min = 1")).unwrap();
    let applied = server.cli(&["apply", registry.to_str().unwrap()]).ok().stdout;
    assert!(applied.contains("created (2001):\n  backend.flag_0000\n  backend.flag_0001\n"), "{}", &applied[..200.min(applied.len())]);
    assert_eq!(server.http().get("/api/flags").body["flags"].as_array().unwrap().len(), 2001);
    // Two writes (2 000 flags per request, so the kill switch never waits behind more): the records carry two moments
    // at most.
    let entries = common::audit_entries(&server, "action=create");
    assert_eq!(entries.len(), 2001 * 4, "a definition record and one per environment for each flag");
    let moments: std::collections::BTreeSet<&str> = entries.iter().filter_map(|entry| entry["timestamp"].as_str()).collect();
    assert!(moments.len() <= 2, "{} writes", moments.len());
    let verified = server.cli(&["audit", "verify"]).ok().stdout;
    assert!(verified.contains("intact"), "{verified}");
}

#[test]
fn one_apply_request_names_at_most_2000_flags_so_the_kill_switch_never_waits_behind_more() {
    let server = Server::start();
    let flags: Vec<_> = (0..2001).map(|index| json!({"name": format!("backend.flag_{index:04}"), "type": "boolean"})).collect();
    let refused = server.http().post("/api/flags/apply", &json!({"flags": flags}));
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("at most 2000"), "{:?}", refused.body);
    assert_eq!(server.http().get("/api/flags").body["flags"].as_array().unwrap().len(), 0);
}
