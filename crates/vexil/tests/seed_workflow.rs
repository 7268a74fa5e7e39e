//! The seed's control-plane workflow, through the CLI, against a fresh `vexil serve`.

mod common;

use common::Server;
use serde_json::Value;

#[test]
fn the_seed_sequence_works_and_lands_in_the_audit_trail() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature", "--type", "boolean", "--description", "The new feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env=dev"]).ok();
    server.cli(&["promote", "ui.new_feature", "--from=dev", "--to=staging"]).ok();

    // Production without confirmation: refused by policy, nothing changes.
    let refused = server.cli(&["promote", "ui.new_feature", "--from=staging", "--to=prod"]).expect_code(3);
    assert!(refused.stderr.contains("prod is protected"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "the refusal says how to confirm: {}", refused.stderr);
    let flag = server.cli(&["get", "ui.new_feature", "--output", "json"]).ok().json();
    assert_eq!(flag["environments"]["prod"]["enabled"], false);

    server.cli(&["promote", "ui.new_feature", "--from=staging", "--to=prod", "--yes", "--reason", "Rollout approved by PM"]).ok();
    let tree = server.cli(&["get", "ui.new_feature"]).ok().stdout;
    assert!(tree.contains("├── Dev:     ✓ Enabled\n├── Staging: ✓ Enabled\n└── Prod:    ✓ Enabled"), "{tree}");

    // The emergency disable runs at once, exactly as the seed writes it.
    server.cli(&["disable", "ui.new_feature", "--env=prod", "--reason=Incident #123"]).ok();
    let matrix = server.cli(&["flags"]).ok().stdout;
    assert!(matrix.contains("ui.new_feature  ✓ Enabled  ✓ Enabled  ✗ Disabled"), "{matrix}");

    let audit = server.http().get("/api/flags/audit?flag=ui.new_feature");
    assert_eq!(audit.status, 200);
    let entries = audit.body["entries"].as_array().expect("entries");
    let summary: Vec<(&str, Option<&str>, Option<&str>)> =
        entries.iter().map(|entry| (entry["action"].as_str().unwrap(), entry["environment"].as_str(), entry["reason"].as_str())).collect();
    assert_eq!(
        summary,
        [
            ("disable", Some("production"), Some("Incident #123")),
            ("promote", Some("production"), Some("Rollout approved by PM")),
            ("promote", Some("staging"), None),
            ("enable", Some("development"), None),
            ("create", Some("production"), None),
            ("create", Some("staging"), None),
            ("create", Some("development"), None),
            ("create", None, None),
        ]
    );
    for entry in entries {
        assert_eq!(entry["flag"], "ui.new_feature");
        assert_eq!(entry["user"], "admin@localhost");
        assert_eq!(entry["source"], "cli");
        let timestamp = entry["timestamp"].as_str().unwrap();
        assert!(timestamp.len() == 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T', "RFC 3339 UTC: {timestamp}");
    }
    assert_eq!(entries[0]["before"]["enabled"], true);
    assert_eq!(entries[0]["after"]["enabled"], false);
    assert_eq!(entries[1]["from_environment"], "staging");
    assert_eq!(audit.body["next"], Value::Null);
    let verified = server.cli(&["audit", "verify"]).ok().stdout;
    assert!(verified.contains("intact"), "{verified}");
}

#[test]
fn a_developer_changes_staging_but_not_production() {
    let server = Server::start();
    server.cli(&["define", "ui.checkout_v2", "--type", "boolean"]).ok();
    server.cli(&["user", "add", "dev@example.com", "--role", "developer"]).ok();
    let token = server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout;
    let token = token.trim();
    assert!(token.starts_with("vxl_") && !token.contains(' '), "token create prints only the token: {token:?}");

    server.cli_as(token, &["enable", "ui.checkout_v2", "--env", "staging"]).ok();
    let refused = server.cli_as(token, &["enable", "ui.checkout_v2", "--env", "prod", "--yes", "--reason", "ship it"]).expect_code(3);
    assert!(
        refused.stderr.contains("production is protected: changing it needs the admin role; your role is developer"),
        "{}",
        refused.stderr
    );
    let refused = server.cli_as(token, &["disable", "ui.checkout_v2", "--env=prod", "--reason=Incident #9"]).expect_code(3);
    assert!(refused.stderr.contains("needs the admin role"), "{}", refused.stderr);

    let flag = server.http().get("/api/flags/ui.checkout_v2").body;
    assert_eq!(flag["environments"]["staging"]["enabled"], true);
    assert_eq!(flag["environments"]["staging"]["updated_by"], "dev@example.com");
    assert_eq!(flag["environments"]["prod"]["enabled"], false);

    // Over HTTP: 401 without a token, 403 with the wrong role, both explained.
    let anonymous =
        server.http().with_token(None).post("/api/flags/ui.checkout_v2/environments/prod/enable", &serde_json::json!({"reason": "x"}));
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.body["error"]["code"], "unauthenticated");
    let developer = server
        .http()
        .with_token(Some(token))
        .post("/api/flags/ui.checkout_v2/environments/production/enable", &serde_json::json!({"reason": "x"}));
    assert_eq!(developer.status, 403);
    assert!(developer.body["error"]["message"].as_str().unwrap().contains("admin role"));
    // An admin without a reason is refused too.
    let no_reason = server.http().post("/api/flags/ui.checkout_v2/environments/prod/enable", &serde_json::json!({}));
    assert_eq!(no_reason.status, 422);
    assert_eq!(no_reason.body["error"]["code"], "reason_required");
    let audit = server.http().get("/api/flags/audit?flag=ui.checkout_v2&env=prod").body;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|entry| entry["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create"], "refused changes leave no trace but the refusal");
}

#[test]
fn on_a_terminal_production_changes_show_the_diff_and_ask() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    let promote = ["promote", "ui.new_feature", "--from=staging", "--to=prod"];

    let declined = common::cli_on_terminal(&server.url, common::ADMIN_TOKEN, &promote, "Rollout approved by PM\nno\n").expect_code(3);
    assert!(
        declined.stdout.contains("promote ui.new_feature from staging to prod:\n  turned on"),
        "the diff, in words, is shown before asking: {}",
        declined.stdout
    );
    assert!(
        declined.stdout.contains("not confirmed (the confirmation is the environment's key, `prod`); nothing was changed"),
        "{}",
        declined.stdout
    );
    assert_eq!(server.http().get("/api/flags/ui.new_feature/environments/prod").body["state"]["enabled"], false);

    let confirmed = common::cli_on_terminal(&server.url, common::ADMIN_TOKEN, &promote, "Rollout approved by PM\nprod\n").ok();
    let diff_at = confirmed.stdout.find("  turned on").expect("diff shown");
    let question_at = confirmed.stdout.find("Type `prod` to confirm").expect("confirmation asked");
    assert!(diff_at < question_at, "the diff comes before the question: {}", confirmed.stdout);
    let audit = server.http().get("/api/flags/audit?flag=ui.new_feature&env=prod").body;
    assert_eq!(audit["entries"][0]["action"], "promote");
    assert_eq!(audit["entries"][0]["reason"], "Rollout approved by PM");
}

#[test]
fn a_viewer_reads_everything_and_changes_nothing() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    server.cli(&["user", "add", "pm@example.com", "--role", "viewer"]).ok();
    let token = server.cli(&["token", "create", "--user", "pm@example.com"]).ok().stdout.trim().to_owned();
    assert!(server.cli_as(&token, &["flags"]).ok().stdout.contains("ui.new_feature"));
    let audit =
        server.cli_as(&token, &["audit", "--flag", "ui.new_feature", "--env", "development", "--since", "1h", "-o", "json"]).ok().json();
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().map(|entry| entry["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["enable", "create"]);
    for args in [
        vec!["enable", "ui.new_feature", "--env", "staging"],
        vec!["define", "ui.other"],
        vec!["user", "add", "x@example.com", "--role", "admin"],
        vec!["token", "create", "--user", "admin@localhost"],
    ] {
        let refused = server.cli_as(&token, &args).expect_code(3);
        assert!(refused.stderr.contains("your role is viewer"), "{args:?}: {}", refused.stderr);
    }
    // A viewer may still create a token for themselves.
    assert!(server.cli_as(&token, &["token", "create"]).ok().stdout.starts_with("vxl_"));
}

#[test]
fn failed_logins_are_rate_limited_per_account() {
    let server = Server::start();
    let anonymous = server.http().with_token(None);
    let attempt =
        |password: &str| anonymous.post("/api/auth/login", &serde_json::json!({"email": "admin@localhost", "password": password}));
    assert_eq!(attempt("correct horse battery").status, 200);
    for _ in 0..5 {
        let wrong = attempt("guess");
        assert_eq!(wrong.status, 401);
        assert_eq!(wrong.body["error"]["message"], "email or password is wrong");
    }
    let locked = attempt("correct horse battery");
    assert_eq!(locked.status, 429, "{:?}", locked.body);
    assert!(locked.body["error"]["message"].as_str().unwrap().contains("too many failed logins"));
    // Unknown accounts are refused with the same message.
    let unknown = anonymous.post("/api/auth/login", &serde_json::json!({"email": "nobody@localhost", "password": "x"}));
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.body["error"]["message"], "email or password is wrong");
}
