//! Bad input gets a clear 4xx error and changes nothing.

mod common;

use common::Server;
use serde_json::{Value, json};

struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    body: Option<String>,
    status: u16,
    /// A part of the message that says what was wrong or what is accepted.
    explains: &'static str,
}

fn case(what: &'static str, method: &'static str, path: &str, body: Option<Value>, status: u16, explains: &'static str) -> Case {
    Case { what, method, path: path.to_owned(), body: body.map(|body| body.to_string()), status, explains }
}

fn raw(what: &'static str, method: &'static str, path: &str, body: &str, status: u16, explains: &'static str) -> Case {
    Case { what, method, path: path.to_owned(), body: Some(body.to_owned()), status, explains }
}

#[test]
fn every_bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature", "--type", "boolean"]).ok();
    server
        .cli(&["define", "ui.theme", "--type", "string", "--default", "light", "--allowed-value", "light", "--allowed-value", "dark"])
        .ok();
    server.cli(&["define", "backend.rag_max_results", "--type", "number", "--default", "5", "--min", "1", "--max", "50"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    let http = server.http();
    let flags_before = http.get("/api/flags?archived=true").body;
    let audit_before = http.get("/api/flags/audit?limit=1000").body;

    let state = "/api/flags/ui.new_feature/environments/dev";
    let huge = format!("{{\"name\": \"ui.x\", \"type\": \"boolean\", \"description\": \"{}\"}}", "x".repeat(300 * 1024));
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases = vec![
        case(
            "name without a category",
            "POST",
            "/api/flags",
            Some(json!({"name": "newfeature", "type": "boolean"})),
            422,
            "<category>.<snake_case>",
        ),
        case("upper-case name", "POST", "/api/flags", Some(json!({"name": "UI.NewFeature", "type": "boolean"})), 422, "snake"),
        case(
            "name with a colon",
            "POST",
            "/api/flags",
            Some(json!({"name": "ui:new_feature", "type": "boolean"})),
            422,
            "<category>.<snake_case>",
        ),
        case("name with a newline", "POST", "/api/flags", Some(json!({"name": "ui.new\nfeature", "type": "boolean"})), 422, "snake"),
        case(
            "name with a control character",
            "POST",
            "/api/flags",
            Some(json!({"name": "ui.new\u{1b}[2J", "type": "boolean"})),
            422,
            "snake",
        ),
        case("name with two dots", "POST", "/api/flags", Some(json!({"name": "ui.a.b", "type": "boolean"})), 422, "more than one dot"),
        case(
            "name too long",
            "POST",
            "/api/flags",
            Some(json!({"name": format!("ui.{}", "a".repeat(120)), "type": "boolean"})),
            422,
            "at most 100",
        ),
        case(
            "unknown category",
            "POST",
            "/api/flags",
            Some(json!({"name": "misc.thing", "type": "boolean"})),
            422,
            "known categories: ui, backend",
        ),
        case(
            "unknown type",
            "POST",
            "/api/flags",
            Some(json!({"name": "ui.x", "type": "bool3"})),
            422,
            "accepted: boolean, string, number, json",
        ),
        case(
            "default of the wrong type",
            "POST",
            "/api/flags",
            Some(json!({"name": "ui.x", "type": "boolean", "default": "yes"})),
            422,
            "must be a boolean",
        ),
        case("duplicate flag", "POST", "/api/flags", Some(json!({"name": "ui.new_feature", "type": "boolean"})), 409, "already defined"),
        case(
            "unknown field",
            "POST",
            "/api/flags",
            Some(json!({"name": "ui.x", "type": "boolean", "enable": true})),
            400,
            "unknown field `enable`",
        ),
        case(
            "description with control characters",
            "POST",
            "/api/flags",
            Some(json!({"name": "ui.x", "type": "boolean", "description": "a\u{7}b"})),
            422,
            "control character",
        ),
        case(
            "tag with a colon",
            "POST",
            "/api/flags",
            Some(json!({"name": "ui.x", "type": "boolean", "tags": ["a:b"]})),
            422,
            "tag `a:b` is invalid",
        ),
        raw("malformed JSON", "POST", "/api/flags", "{\"name\": \"ui.x\",", 400, "not valid"),
        raw("JSON that is not an object", "POST", "/api/flags", "[1, 2, 3]", 400, "not valid"),
        raw("empty body", "POST", "/api/flags", "", 400, "empty"),
        raw("deeply nested JSON", "POST", "/api/flags", &deep, 400, "not valid"),
        raw("oversized body", "POST", "/api/flags", &huge, 413, "larger than"),
        case(
            "unknown environment",
            "POST",
            "/api/flags/ui.new_feature/environments/prd/enable",
            Some(json!({})),
            404,
            "known: dev (development), staging, prod (production)",
        ),
        case(
            "environment with a newline",
            "POST",
            "/api/flags/ui.new_feature/environments/pr%0Ad/enable",
            Some(json!({})),
            404,
            "does not exist",
        ),
        case("unknown flag", "POST", "/api/flags/ui.missing/environments/dev/enable", Some(json!({})), 404, "not defined"),
        case("invalid flag name in the path", "GET", "/api/flags/UI..x", None, 422, "<category>.<snake_case>"),
        case(
            "reason with a newline",
            "POST",
            "/api/flags/ui.new_feature/environments/dev/disable",
            Some(json!({"reason": "ok\nuser: root"})),
            422,
            "one line",
        ),
        case(
            "reason with an escape sequence",
            "POST",
            "/api/flags/ui.new_feature/environments/dev/disable",
            Some(json!({"reason": "\u{1b}[31mred"})),
            422,
            "control character",
        ),
        case(
            "reason too long",
            "POST",
            "/api/flags/ui.new_feature/environments/dev/disable",
            Some(json!({"reason": "x".repeat(501)})),
            422,
            "at most 500",
        ),
        case(
            "empty reason in production",
            "POST",
            "/api/flags/ui.new_feature/environments/prod/enable",
            Some(json!({"reason": "  "})),
            422,
            "reason is empty",
        ),
        case(
            "missing reason in production",
            "POST",
            "/api/flags/ui.new_feature/environments/prod/enable",
            Some(json!({})),
            422,
            "needs a reason",
        ),
        case("value of the wrong type", "PUT", state, Some(json!({"enabled": true, "serve": {"value": "true"}})), 422, "must be a boolean"),
        case(
            "number above max",
            "PUT",
            "/api/flags/backend.rag_max_results/environments/dev",
            Some(json!({"enabled": true, "serve": {"value": 51}})),
            422,
            "above the maximum 50",
        ),
        case(
            "string not allowed",
            "PUT",
            "/api/flags/ui.theme/environments/dev",
            Some(json!({"enabled": true, "serve": {"value": "blue"}})),
            422,
            "allowed: light, dark",
        ),
        case("unknown variant", "PUT", state, Some(json!({"enabled": true, "serve": {"variant": "on"}})), 422, "has no variants"),
        case(
            "split not adding up",
            "PUT",
            state,
            Some(json!({"enabled": true, "serve": {"value": true}, "split": {"buckets": [{"serve": {"value": true}, "weight": 30}]}})),
            422,
            "must add up to 100000",
        ),
        case(
            "invalid regex in a rule",
            "PUT",
            state,
            Some(
                json!({"enabled": true, "serve": {"value": true}, "rules": [{"conditions": [{"attribute": "email", "operator": "regex", "values": ["(unclosed"]}], "serve": {"value": true}}]}),
            ),
            422,
            "does not compile",
        ),
        case(
            "regex a backtracking engine could take seconds on",
            "PUT",
            state,
            Some(
                json!({"enabled": true, "serve": {"value": true}, "rules": [{"conditions": [{"attribute": "email", "operator": "regex", "values": ["^(a+)+$"]}], "serve": {"value": true}}]}),
            ),
            422,
            "repeats `a+`, which can go on with a character it starts with",
        ),
        case(
            "unknown operator",
            "PUT",
            state,
            Some(
                json!({"enabled": true, "serve": {"value": true}, "rules": [{"conditions": [{"attribute": "a", "operator": "like", "values": ["x"]}], "serve": {"value": true}}]}),
            ),
            400,
            "unknown value `like`",
        ),
        case("missing enabled", "PUT", state, Some(json!({"serve": {"value": true}})), 400, "missing field `enabled`"),
        case("malformed If-Match", "PUT", state, None, 400, "If-Match"),
        case(
            "promotion backwards",
            "POST",
            "/api/flags/ui.new_feature/promote",
            Some(json!({"from": "prod", "to": "dev"})),
            409,
            "use copy",
        ),
        case(
            "promotion skipping staging",
            "POST",
            "/api/flags/ui.new_feature/promote",
            Some(json!({"from": "dev", "to": "prod", "reason": "x"})),
            409,
            "skips staging",
        ),
        case("copy onto itself", "POST", "/api/flags/copy", Some(json!({"from": "dev", "to": "development"})), 400, "onto itself"),
        case(
            "bulk with an unknown action",
            "POST",
            "/api/flags/bulk",
            Some(json!({"action": "toggle", "environment": "dev", "flags": ["ui.new_feature"]})),
            400,
            "accepted: enable, disable",
        ),
        case(
            "bulk with an unknown flag",
            "POST",
            "/api/flags/bulk",
            Some(json!({"action": "disable", "environment": "dev", "flags": ["ui.new_feature", "ui.nope"]})),
            404,
            "not defined",
        ),
        case(
            "import of a foreign document",
            "POST",
            "/api/environments/dev/import",
            Some(json!({"document": {"format": "other", "version": 1, "environment": "dev", "flags": {}}})),
            400,
            "expected `vexil.states`",
        ),
        case(
            "import with an undefined flag",
            "POST",
            "/api/environments/dev/import",
            Some(
                json!({"document": {"format": "vexil.states", "version": 1, "environment": "dev", "flags": {"ui.ghost": {"enabled": true, "serve": {"value": true}}}}}),
            ),
            422,
            "not defined here: ui.ghost",
        ),
        case("audit with an unknown action", "GET", "/api/flags/audit?action=explode", None, 422, "known: create, update"),
        case("audit with a bad time", "GET", "/api/flags/audit?since=yesterday", None, 400, "RFC 3339"),
        case("audit with a bad limit", "GET", "/api/flags/audit?limit=0", None, 400, "1 to 1000"),
        case(
            "user with a hostile email",
            "POST",
            "/api/users",
            Some(json!({"email": "a\nb@x", "role": "admin"})),
            422,
            "not an email address",
        ),
        case(
            "user with an unknown role",
            "POST",
            "/api/users",
            Some(json!({"email": "a@x.io", "role": "root"})),
            422,
            "accepted: viewer, developer, admin",
        ),
        case("an audit age beyond the calendar", "GET", "/api/flags/audit?since=99999999999999999d", None, 400, "further back"),
        case("an age that overflows seconds", "GET", "/api/flags/audit?until=9223372036854775807s", None, 400, "further back"),
        case(
            "a metrics window beyond the calendar",
            "GET",
            "/api/flags/ui.new_feature/environments/dev/metrics?since=5000000000w",
            None,
            400,
            "further back",
        ),
        case(
            "a rollout interval of millennia",
            "POST",
            "/api/flags/ui.new_feature/environments/staging/rollout",
            Some(json!({"steps": [10, 100], "every": "5000000d"})),
            422,
            "longest interval",
        ),
        case(
            "a rollout interval that wraps around",
            "POST",
            "/api/flags/ui.new_feature/environments/staging/rollout",
            Some(json!({"steps": [10, 100], "every": "18446744073709551615s"})),
            422,
            "longest interval",
        ),
        case("unknown endpoint", "GET", "/api/nothing", None, 404, "no such endpoint"),
        case("wrong method", "DELETE", "/api/flags", None, 405, "does not accept"),
    ];
    assert!(cases.len() >= 30);
    for case in &cases {
        let headers: &[(&str, &str)] = if case.what == "malformed If-Match" { &[("if-match", "version-two")] } else { &[] };
        let body = if case.what == "malformed If-Match" {
            Some(json!({"enabled": false, "serve": {"value": true}}).to_string())
        } else {
            case.body.clone()
        };
        let response = http.send(case.method, &case.path, body, headers);
        assert_eq!(response.status, case.status, "{}: {:?}", case.what, response.body);
        let message =
            response.body["error"]["message"].as_str().unwrap_or_else(|| panic!("{}: no error message in {:?}", case.what, response.body));
        assert!(response.body["error"]["code"].is_string(), "{}: no error code", case.what);
        assert!(message.contains(case.explains), "{}: `{message}` should mention `{}`", case.what, case.explains);
        assert!(
            !message.contains('\n') && !message.contains('\u{1b}'),
            "{}: the message echoes hostile characters: {message:?}",
            case.what
        );
    }
    assert_eq!(http.get("/api/flags?archived=true").body, flags_before, "no bad input changed a flag");
    assert_eq!(http.get("/api/flags/audit?limit=1000").body, audit_before, "no bad input added an audit record");
}

#[test]
fn the_cli_refuses_bad_input_with_usage_errors() {
    let server = Server::start();
    let unknown = server.cli(&["enable", "ui.x", "--env", "prd"]).expect_code(2);
    assert!(
        unknown
            .stderr
            .contains("environment `prd` does not exist; did you mean prod? (known: dev (development), staging, prod (production))"),
        "{}",
        unknown.stderr
    );
    server.cli(&["promote", "ui.x"]).expect_code(2);
    server.cli(&["frobnicate"]).expect_code(2);
    let bad_name = server.cli(&["define", "NewFeature"]).expect_code(2);
    assert!(bad_name.stderr.contains("<category>.<snake_case>"), "{}", bad_name.stderr);
    let unreachable = common::cli("http://127.0.0.1:9", Some("x"), &["flags"], None).expect_code(1);
    assert!(unreachable.stderr.contains("nothing is listening at http://127.0.0.1:9"), "{}", unreachable.stderr);
    let no_token = common::cli(&server.url, None, &["flags"], None).expect_code(4);
    assert!(no_token.stderr.contains("vexil login"), "{}", no_token.stderr);
}

#[test]
fn a_configuration_out_of_range_stops_the_server_at_start_and_says_what_is_accepted() {
    let directory = tempfile::tempdir().unwrap();
    for (line, expected) in [
        ("guard_false_positive_budget = 0.5", "accepted: above 0 and at most 0.2"),
        ("guard_window_seconds = 99999999", "accepted: 0 (off) to 604800"),
        ("heartbeat_seconds = 60", "accepted: 1 to 15"),
        ("guard_window_seconds = \"soon\"", "guard_window_seconds"),
    ] {
        let path = directory.path().join("vexil.toml");
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"))
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&path)
            .arg("--data")
            .arg(directory.path().join("data"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{line}: the server must not start");
        assert!(stderr.contains(expected), "{line}: {stderr}");
        assert!(!directory.path().join("data").exists(), "{line}: nothing is created");
    }
}

/// A refused value names its field, so a form can show the message beside it; and a multivariate flag defined without
/// a default serves its first variant while off, not an empty string no variant names.
#[test]
fn a_refused_value_names_its_field_and_a_variant_flag_defaults_to_its_first_variant() {
    let server = Server::start();
    let http = server.http();
    let define =
        json!({"name": "ui.theme", "type": "string", "variants": [{"name": "light", "value": "light"}, {"name": "dark", "value": "dark"}]});
    let created = http.send("POST", "/api/flags", Some(define.to_string()), &[]);
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["default"], "light");
    assert_eq!(created.body["summaries"]["prod"], "Disabled (serves light)");
    let bad_rule = json!({"enabled": true, "serve": {"variant": "light"}, "rules": [
        {"conditions": [{"attribute": "email", "operator": "regex", "values": ["(unclosed"]}], "serve": {"variant": "dark"}}]});
    let refused = http.send("PUT", "/api/flags/ui.theme/environments/dev", Some(bad_rule.to_string()), &[]);
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["error"]["field"], "rules[0].conditions[0].values", "{:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("does not compile"));
    let unknown = http.send(
        "PUT",
        "/api/flags/ui.theme/environments/dev",
        Some(json!({"enabled": true, "serve": {"variant": "blue"}}).to_string()),
        &[],
    );
    assert_eq!((unknown.status, unknown.body["error"]["field"].as_str()), (422, Some("serve")), "{:?}", unknown.body);
    // Errors that are not about one value name none.
    let missing = http.get("/api/flags/ui.nothing");
    assert_eq!(missing.status, 404);
    assert!(missing.body["error"].get("field").is_none(), "{:?}", missing.body);
    assert_eq!(http.get("/api/flags/ui.theme/environments/dev").body["state"]["enabled"], false, "nothing changed");
}

/// A state with `email` matching `pattern` (in its second condition) serving `true`, `false` otherwise.
fn regex_rule(pattern: &str) -> Value {
    json!({"enabled": true, "serve": {"value": false}, "rules": [{"conditions": [
        {"attribute": "plan", "operator": "in", "values": ["pro", "team"]},
        {"attribute": "email", "operator": "regex", "values": [pattern]}], "serve": {"value": true}}]})
}

/// `^(a+)+$` takes the regex crate microseconds, JavaScript's RegExp seconds on 30 `a`s and a `!`: a state naming it
/// could freeze every application using the JavaScript SDK, so it is refused where it is written.
#[test]
fn a_regex_that_backtracks_catastrophically_is_refused_with_its_field_and_changes_nothing() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let http = server.http();
    let path = "/api/flags/ui.new_feature/environments/dev";
    assert_eq!(http.put(path, &regex_rule(r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$"), None).status, 200);
    let before = http.get(path).body;
    let audit_before = http.get("/api/flags/audit?limit=1000").body;

    let refused = http.put(path, &regex_rule("^(a+)+$"), None);
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "invalid_value");
    assert_eq!(refused.body["error"]["field"], "rules[0].conditions[1].values", "{:?}", refused.body);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("regex `^(a+)+$` can take seconds to fail on a long text in a backtracking engine such as the JavaScript SDK's: `(a+)+` repeats `a+`"),
        "{message}"
    );
    assert!(
        message.contains("a part that varies, repeated by `*`, `+` or `{n,}` (or by `{n,m}` in more than 1000 ways), must split one way"),
        "{message}"
    );
    for shape in ["(a|ab)*", r"(\w+\s?)*", "(a{1,10}){1,10}"] {
        let refused = http.put(path, &regex_rule(shape), None);
        assert_eq!((refused.status, refused.body["error"]["field"].as_str()), (422, Some("rules[0].conditions[1].values")), "{shape}");
    }

    assert_eq!(http.get(path).body, before, "the state is unchanged");
    assert_eq!(http.get("/api/flags/audit?limit=1000").body, audit_before, "no audit record was added");
}

/// What an older server accepted: `flag`'s state in `environment` (stored with `^(a)+$`, the server stopped), with
/// the pattern the server now refuses written straight into SQLite.
fn stored_before_the_check(data: &std::path::Path, flag: &str, environment: &str) {
    let database = rusqlite::Connection::open(data.join("vexil.db")).unwrap();
    let changed = database
        .execute(
            "UPDATE states SET doc = replace(doc, '\"^(a)+$\"', '\"^(a+)+$\"') WHERE environment = ?1 AND flag = ?2",
            [environment, flag],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

/// States stored before such patterns were refused keep loading and serving as they did (the server's engine is
/// linear), and their kill switch works; writing the pattern where the state did not hold it is refused.
#[test]
fn a_state_stored_with_such_a_regex_before_it_was_refused_still_loads_serves_and_turns_off() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    server.cli(&["define", "ui.new_feature"]).ok();
    let path = "/api/flags/ui.new_feature/environments/dev";
    assert_eq!(server.http().put(path, &regex_rule("^(a)+$"), None).status, 200);
    assert!(server.terminate());

    stored_before_the_check(&data, "ui.new_feature", "dev");

    let server = Server::start_on(&data);
    let http = server.http();
    let stored = http.get(path).body;
    assert_eq!(stored["state"]["rules"][0]["conditions"][1]["values"][0], "^(a+)+$", "{stored}");
    let sdk = http.with_token(Some(&common::sdk_key_for(&server, "dev")));
    let evaluate = |email: String| {
        let answer =
            sdk.post("/ofrep/v1/evaluate/flags/ui.new_feature", &json!({"context": {"targetingKey": "u1", "plan": "pro", "email": email}}));
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        (answer.body["value"].clone(), answer.body["reason"].clone())
    };
    assert_eq!(evaluate("aaaa".into()), (json!(true), json!("TARGETING_MATCH")));
    assert_eq!(evaluate(format!("{}!", "a".repeat(10_000))), (json!(false), json!("DEFAULT")));

    let off = http.post("/api/flags/ui.new_feature/environments/dev/disable", &json!({}));
    assert_eq!(off.status, 200, "the kill switch works whatever the state names: {:?}", off.body);
    assert_eq!(http.get(path).body["state"]["enabled"], false);
    let elsewhere = http.put("/api/flags/ui.new_feature/environments/staging", &regex_rule("^(a+)+$"), None);
    assert_eq!(
        (elsewhere.status, elsewhere.body["error"]["field"].as_str()),
        (422, Some("rules[0].conditions[1].values")),
        "{:?}",
        elsewhere.body
    );
}

/// The check judges only what a write adds: a state stored with `^(a+)+$` before it existed can still be turned off
/// and on, re-saved by an edit of its flag's definition, promoted, rolled out and rolled back to; writing the pattern
/// where it is not yet (another environment, another flag) or adding another such pattern is refused.
#[test]
fn a_regex_a_state_already_holds_is_not_refused_when_the_state_is_saved_again() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["define", "ui.other"]).ok();
    let dev = "/api/flags/ui.new_feature/environments/dev";
    assert_eq!(server.http().put(dev, &regex_rule("^(a)+$"), None).status, 200);
    assert!(server.terminate());
    stored_before_the_check(&data, "ui.new_feature", "dev");

    let server = Server::start_on(&data);
    let http = server.http();
    let pattern = |path: &str| http.get(path).body["state"]["rules"][0]["conditions"][1]["values"][0].clone();
    assert_eq!(pattern(dev), "^(a+)+$");
    let ok = |what: &str, answer: common::Response| {
        assert_eq!(answer.status, 200, "{what}: {:?}", answer.body);
        answer.body
    };

    // Off and on again: enabling re-validates the state, whose pattern is not new.
    ok("disable", http.post(&format!("{dev}/disable"), &json!({})));
    ok("enable", http.post(&format!("{dev}/enable"), &json!({})));
    assert_eq!((http.get(dev).body["state"]["enabled"].clone(), pattern(dev)), (json!(true), json!("^(a+)+$")));

    // A definition edit re-validates every environment's state.
    let edited =
        ok("description", http.send("PATCH", "/api/flags/ui.new_feature", Some(json!({"description": "new checkout"}).to_string()), &[]));
    assert_eq!(http.get("/api/flags/ui.new_feature").body["description"], "new checkout", "{edited}");

    // Promoted, the state carries its pattern to the next environment; rolled out there, paused, resumed, aborted.
    let staging = "/api/flags/ui.new_feature/environments/staging";
    let promoted = ok("promote", http.post("/api/flags/ui.new_feature/promote", &json!({"from": "dev", "to": "staging"})));
    assert_eq!((promoted["applied"].clone(), pattern(staging)), (json!(true), json!("^(a+)+$")), "{promoted}");
    ok("rollout", http.post(&format!("{staging}/rollout"), &json!({"steps": [10, 50, 100], "every": "1h"})));
    for action in ["pause", "resume", "abort"] {
        ok(action, http.post(&format!("{staging}/rollout/{action}"), &json!({})));
    }
    assert_eq!(pattern(staging), "^(a+)+$");

    // A rollback trigger restores the earlier state, pattern and all, after a change that dropped it.
    ok("serve everyone", http.put(dev, &json!({"enabled": true, "serve": {"value": true}}), None));
    let url = server
        .cli(&["trigger", "create", "ui.new_feature", "--env", "dev", "--name", "errors", "--action", "rollback"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let alert = json!({"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "Errors"}}]});
    let fired = ok("trigger", http.with_token(None).post(url.strip_prefix(&server.url).unwrap(), &alert));
    assert_eq!((fired["acted"].clone(), fired["action"].clone()), (json!(true), json!("rollback")), "{fired}");
    assert_eq!(pattern(dev), "^(a+)+$");

    // Written where it is new, the pattern is refused: in another environment, for another flag, or as an addition.
    let refused = |path: &str, state: &Value| {
        let answer = http.put(path, state, None);
        assert_eq!(
            (answer.status, answer.body["error"]["field"].as_str()),
            (422, Some("rules[0].conditions[1].values")),
            "{path}: {:?}",
            answer.body
        );
        answer.body["error"]["message"].as_str().unwrap().to_owned()
    };
    let prod = "/api/flags/ui.new_feature/environments/prod";
    let prod_before = http.get(prod).body;
    let mut by_hand = regex_rule("^(a+)+$");
    by_hand["reason"] = json!("the same rule as dev");
    assert!(refused(prod, &by_hand).starts_with("regex `^(a+)+$` can take seconds"));
    assert_eq!(http.get(prod).body, prod_before);
    assert!(refused("/api/flags/ui.other/environments/dev", &regex_rule("^(a+)+$")).starts_with("regex `^(a+)+$` can take seconds"));
    let mut added = regex_rule("^(a+)+$");
    added["rules"][0]["conditions"][1]["values"] = json!(["^(a+)+$", "^(b+)+$"]);
    assert!(refused(dev, &added).starts_with("regex `^(b+)+$` can take seconds"));
    assert_eq!(pattern(dev), "^(a+)+$", "nothing changed");
}
