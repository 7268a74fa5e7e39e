//! The CLI's conventions, as a newcomer meets them: the mistakes they make, each answered with what to do in CLI
//! terms and one exit code from the documented table (0 done, 1 failed, 2 usage or unknown name, 3 refused by
//! policy, 4 not authenticated); the same failures as JSON under `--output json`; colour only on a terminal and
//! never with `NO_COLOR`; shell completion that loads; the commands a flag's life needs.

mod common;

use common::{ADMIN_TOKEN, Outcome, Server};
use serde_json::Value;

/// One mistake: who makes it, what they type, and what they must be told.
struct Mistake {
    what: &'static str,
    token: Who,
    args: Vec<String>,
    stdin: Option<&'static str>,
    exit: i32,
    says: Vec<&'static str>,
}

#[derive(Clone, Copy)]
enum Who {
    Admin,
    Developer,
    Viewer,
    Nobody,
    Unknown,
    Revoked,
    Disabled,
}

fn mistake(what: &'static str, token: Who, args: &str, exit: i32, says: &[&'static str]) -> Mistake {
    Mistake { what, token, args: args.split_whitespace().map(str::to_owned).collect(), stdin: None, exit, says: says.to_vec() }
}

/// A server with `ui.new_feature` (boolean), `ui.theme` (string) and people of every role, and the tokens for each.
fn setting() -> (Server, Vec<(Who, Option<String>)>) {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature", "--description", "The new feature"]).ok();
    server.cli(&["define", "ui.theme", "--type", "string", "--default", "light"]).ok();
    let mut tokens =
        vec![(Who::Admin, Some(ADMIN_TOKEN.to_owned())), (Who::Nobody, None), (Who::Unknown, Some("vxl_not_a_real_token".into()))];
    for (who, email, role) in [
        (Who::Developer, "dev@example.com", "developer"),
        (Who::Viewer, "viewer@example.com", "viewer"),
        (Who::Disabled, "gone@example.com", "developer"),
    ] {
        common::cli(&server.url, Some(ADMIN_TOKEN), &["user", "add", email, "--role", role, "--password-stdin"], Some("a long password\n"))
            .ok();
        let token = server.cli(&["token", "create", "--user", email]).ok().stdout.trim().to_owned();
        tokens.push((who, Some(token)));
    }
    server.cli(&["user", "disable", "gone@example.com"]).ok();
    let revoked = server.cli(&["token", "create", "--name", "soon revoked"]).ok().stdout.trim().to_owned();
    let id = server.http().get("/api/tokens").body.as_array().unwrap().iter().find(|token| token["name"] == "soon revoked").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.cli(&["token", "revoke", &id]).ok();
    tokens.push((Who::Revoked, Some(revoked)));
    (server, tokens)
}

fn run(server_url: &str, tokens: &[(Who, Option<String>)], mistake: &Mistake, json: bool) -> Outcome {
    let token = tokens.iter().find(|(who, _)| std::mem::discriminant(who) == std::mem::discriminant(&mistake.token)).unwrap().1.clone();
    let mut args: Vec<&str> = mistake.args.iter().map(String::as_str).collect();
    if json {
        args.splice(0..0, ["--output", "json"]);
    }
    let url = args.iter().position(|arg| *arg == "--server").map(|_| "").unwrap_or(server_url);
    common::cli(url, token.as_deref(), &args, mistake.stdin)
}

#[test]
fn thirty_mistakes_a_newcomer_makes_get_one_clear_answer_and_the_documented_exit_code() {
    let (server, tokens) = setting();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{address}")
    };
    let tls = server.url.replacen("http://", "https://", 1);
    let missing = "/nonexistent/flags.json";
    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), "{ not json").unwrap();
    let garbage = garbage.path().display().to_string();
    let misspelt = tempfile::NamedTempFile::with_suffix(".json").unwrap();
    std::fs::write(
        misspelt.path(),
        r#"{"rules": [{"conditions": [{"attribute": "email", "operator": "endswith", "values": ["@x.io"]}], "serve": {"value": true}}]}"#,
    )
    .unwrap();
    let misspelt = misspelt.path().display().to_string();
    let mistakes = vec![
        mistake("a misspelt command", Who::Admin, "flgs", 2, &["flags"]),
        mistake("a misspelt flag", Who::Admin, "get ui.new_featur", 2, &["did you mean ui.new_feature?"]),
        mistake("a misspelt flag when enabling", Who::Admin, "enable ui.new_featur --env dev", 2, &["did you mean ui.new_feature?"]),
        mistake("a misspelt environment", Who::Admin, "enable ui.new_feature --env prd", 2, &["did you mean prod?"]),
        mistake("a misspelt environment when reading", Who::Admin, "get ui.new_feature --env stagin", 2, &["did you mean staging?"]),
        mistake("an unknown environment in an export", Who::Admin, "export --env qa", 2, &["known: dev"]),
        mistake("a flag that does not exist at all", Who::Admin, "get ui.something_else", 2, &["vexil define ui.something_else"]),
        mistake("no environment given", Who::Admin, "enable ui.new_feature", 2, &["--env"]),
        mistake("a name that breaks the naming rule", Who::Admin, "define NewFeature", 2, &["<category>.<snake_case>"]),
        mistake("a flag defined twice", Who::Admin, "define ui.new_feature", 1, &["already defined", "vexil set"]),
        mistake("an unknown type", Who::Admin, "define ui.other --type date", 2, &["boolean"]),
        mistake("a rollout over 100 %", Who::Admin, "set ui.new_feature --env dev --rollout 150", 2, &["0 to 100"]),
        mistake("a rollout of a string flag", Who::Admin, "set ui.theme --env dev --rollout 50", 2, &["boolean"]),
        mistake("a value of the wrong type", Who::Admin, "set ui.new_feature --env dev --value maybe", 2, &["true", "false"]),
        mistake("a promotion that skips staging", Who::Admin, "promote ui.new_feature --from dev --to prod", 2, &["--skip"]),
        mistake("a production change without a reason", Who::Admin, "enable ui.new_feature --env prod --yes", 3, &["--reason"]),
        mistake("a production change without confirmation", Who::Admin, "enable ui.new_feature --env prod --reason launch", 3, &["--yes"]),
        mistake("a developer changing production", Who::Developer, "enable ui.new_feature --env prod --reason launch --yes", 3, &["admin"]),
        mistake("a viewer defining a flag", Who::Viewer, "define ui.viewer_flag", 3, &["developer"]),
        mistake("a viewer adding a user", Who::Viewer, "user add x@example.com --role viewer", 3, &["admin"]),
        mistake("not logged in", Who::Nobody, "flags", 4, &["not logged in", "vexil login"]),
        mistake("a made-up token", Who::Unknown, "flags", 4, &["does not accept your token", "vexil login"]),
        mistake("a revoked token", Who::Revoked, "flags", 4, &["does not accept your token"]),
        mistake("a disabled account", Who::Disabled, "flags", 4, &["is disabled", "vexil user enable gone@example.com"]),
        Mistake {
            what: "a wrong password at login",
            token: Who::Nobody,
            args: ["login", "--email", "admin@localhost", "--password-stdin"].map(str::to_owned).to_vec(),
            stdin: Some("not the password\n"),
            exit: 4,
            says: vec!["email or password is wrong", "vexil user set-password"],
        },
        Mistake {
            what: "the right password of a disabled account",
            token: Who::Nobody,
            args: ["login", "--email", "gone@example.com", "--password-stdin"].map(str::to_owned).to_vec(),
            stdin: Some("a long password\n"),
            exit: 4,
            says: vec!["is disabled", "vexil user enable"],
        },
        mistake(
            "a server that is not running",
            Who::Admin,
            &format!("--server {closed} flags"),
            1,
            &["nothing is listening", "vexil serve"],
        ),
        mistake("https against the plain-HTTP server", Who::Admin, &format!("--server {tls} flags"), 1, &["TLS", "http://"]),
        mistake("an import of a file that is not there", Who::Admin, &format!("import --env dev {missing}"), 2, &["cannot read"]),
        mistake("an import of a file that is not JSON", Who::Admin, &format!("import --env dev {garbage}"), 2, &["not valid JSON"]),
        mistake("a registry that is not there", Who::Admin, &format!("apply {missing}"), 2, &["cannot read"]),
        mistake("an audit page of nothing", Who::Admin, "audit --limit 0", 2, &["1 to 1000"]),
        mistake("an audit since a time it cannot read", Who::Admin, "audit --since lastweek", 2, &["30m"]),
        mistake("a user added twice", Who::Admin, "user add dev@example.com --role viewer", 1, &["vexil user set-role dev@example.com"]),
        mistake("an unknown role", Who::Admin, "user add new@example.com --role superuser", 2, &["viewer", "admin"]),
        mistake("an SDK key without an environment", Who::Admin, "token create --sdk", 2, &["--env"]),
        mistake("a rollback with nothing to undo", Who::Admin, "rollback ui.theme --env dev", 1, &["nothing earlier"]),
        mistake("a rollout of a string flag", Who::Admin, "rollout ui.theme --env dev --steps 10,50,100 --every 1h", 2, &["boolean"]),
        mistake("resolving a misspelt flag", Who::Admin, "resolve ui.new_featur --env dev", 2, &["did you mean ui.new_feature?"]),
        mistake(
            "a misspelt operator in a rules file",
            Who::Admin,
            &format!("set ui.new_feature --env dev --rules {misspelt}"),
            2,
            &["did you mean `ends_with`?", ".json: unknown value `endswith`"],
        ),
        mistake(
            "the kill switch without a reason",
            Who::Admin,
            "disable ui.new_feature --env prod",
            3,
            &["needs a reason (--reason), and"],
        ),
        mistake(
            "a mistyped tag at the kill switch",
            Who::Admin,
            "disable --tag nothing --env prod --reason x",
            2,
            &["no flag is tagged `nothing`"],
        ),
        mistake("demoting yourself", Who::Admin, "user set-role admin@localhost viewer", 3, &["your own role", "--yes"]),
        mistake("a password without a terminal", Who::Admin, "user set-password dev@example.com", 2, &["--password-stdin"]),
        mistake("filters no flag matches", Who::Admin, "flags --tag nothing", 0, &["no flag matches"]),
        mistake("a tag no flag has", Who::Admin, "enable --tag nothing --env dev", 2, &["no flag is tagged `nothing`"]),
        mistake("a promotion backwards", Who::Admin, "promote ui.new_feature --from prod --to dev", 2, &["prod"]),
        mistake("a rollout with too many decimals", Who::Admin, "set ui.new_feature --env dev --rollout 12.3456", 2, &["three decimals"]),
    ];
    assert!(mistakes.len() >= 30);
    let mut wrong = Vec::new();
    for mistake in &mistakes {
        let outcome = run(&server.url, &tokens, mistake, false);
        let told = format!("{}{}", outcome.stdout, outcome.stderr);
        let missing: Vec<&&str> = mistake.says.iter().filter(|words| !told.contains(**words)).collect();
        if outcome.code != mistake.exit || !missing.is_empty() {
            wrong.push(format!(
                "{} (`vexil {}`): exit {} (expected {}), missing {missing:?}:\n{told}",
                mistake.what,
                mistake.args.join(" "),
                outcome.code,
                mistake.exit
            ));
            continue;
        }
        // Said once, not twice in other words.
        assert!(told.matches("error:").count() <= 1, "{}: {told}", mistake.what);
        // Under --output json: the same exit code, and the failure as JSON on standard output.
        if mistake.exit == 0 {
            continue;
        }
        let as_json = run(&server.url, &tokens, mistake, true);
        let parsed: Result<Value, _> = serde_json::from_str(as_json.stdout.trim());
        match parsed {
            Ok(error) if error["error"]["code"].is_string() && error["error"]["message"].is_string() && as_json.code == mistake.exit => {}
            _ => wrong.push(format!("{} under --output json: exit {}, stdout {:?}", mistake.what, as_json.code, as_json.stdout)),
        }
    }
    assert!(wrong.is_empty(), "{} of {} mistakes were answered wrongly:\n\n{}", wrong.len(), mistakes.len(), wrong.join("\n\n"));
    // The kill switch never asks for a confirmation it does not need.
    let disable = common::cli(&server.url, Some(ADMIN_TOKEN), &["disable", "ui.new_feature", "--env", "prod"], None);
    assert!(!disable.stderr.contains("--yes"), "{disable:?}");
    // A secret given for a token's id is not printed back.
    let secret = tokens.iter().find(|(who, _)| matches!(who, Who::Developer)).unwrap().1.clone().unwrap();
    let revoke = common::cli(&server.url, Some(ADMIN_TOKEN), &["token", "revoke", &secret], None);
    assert_eq!(revoke.code, 2, "{revoke:?}");
    assert!(!revoke.stderr.contains(&secret) && revoke.stderr.contains("vexil token list"), "{revoke:?}");
    // Nothing any of them tried changed a state.
    for environment in ["dev", "staging", "prod"] {
        let state = server.http().get(&format!("/api/flags/ui.new_feature/environments/{environment}")).body;
        assert_eq!(state["state"]["version"], 1, "{environment}: {state}");
    }
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    // Piped: no escape codes, whatever the command.
    for args in
        [vec!["flags"], vec!["get", "ui.new_feature"], vec!["get", "ui.new_feature", "--env", "dev"], vec!["audit"], vec!["token", "list"]]
    {
        let piped = server.cli(&args).ok();
        assert!(!piped.stdout.contains('\x1b') && !piped.stderr.contains('\x1b'), "{args:?}: {piped:?}");
    }
    // On a terminal: ✓ in green; with NO_COLOR, not.
    let on_terminal = common::cli_on_terminal(&server.url, ADMIN_TOKEN, &["flags"], "");
    assert!(on_terminal.stdout.contains("\x1b[32m✓ Enabled"), "{on_terminal:?}");
    let plain = terminal_with_no_color(&server, &["flags"]);
    assert!(plain.contains("✓ Enabled") && !plain.contains('\x1b'), "{plain:?}");
}

/// `vexil ARGS` on a terminal with `NO_COLOR=1`.
fn terminal_with_no_color(server: &Server, args: &[&str]) -> String {
    let command = std::iter::once(env!("CARGO_BIN_EXE_vexil")).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let output = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("VEXIL_SERVER", &server.url)
        .env("VEXIL_TOKEN", ADMIN_TOKEN)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).replace('\r', "")
}

#[test]
fn completion_scripts_load_and_complete_commands() {
    let vexil = env!("CARGO_BIN_EXE_vexil");
    // bash: the script loads, registers the completion, and completes `vexil pro` to promote.
    let check = format!(
        r#"source <('{vexil}' completion bash) && complete -p vexil >/dev/null && COMP_WORDS=(vexil pro) COMP_CWORD=1 COMP_LINE="vexil pro" COMP_POINT=9 && _vexil vexil pro vexil && printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    let output = std::process::Command::new("bash").args(["-c", &check]).output().unwrap();
    let completed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{completed} {}", String::from_utf8_lossy(&output.stderr));
    assert!(completed.lines().any(|line| line == "promote"), "{completed}");
    for shell in ["zsh", "fish"] {
        let script = common::cli("http://127.0.0.1:1", None, &["completion", shell], None).ok();
        assert!(script.stdout.contains("promote") && script.stdout.contains("rollback"), "{shell}: {}", script.stdout);
    }
    let unknown = common::cli("http://127.0.0.1:1", None, &["completion", "tcsh"], None);
    assert_eq!(unknown.code, 2, "{unknown:?}");
}

#[test]
fn global_options_are_described_once_in_the_main_help_and_commands_point_there() {
    let main = common::cli("http://127.0.0.1:1", None, &["--help"], None).ok().stdout;
    assert!(main.contains("--server <URL>") && main.contains("Exit codes: 0 done, 1 failed"), "{main}");
    let get = common::cli("http://127.0.0.1:1", None, &["get", "--help"], None).ok().stdout;
    assert!(!get.contains("--server <"), "{get}");
    assert!(get.contains("see `vexil --help`"), "{get}");
    let nested = common::cli("http://127.0.0.1:1", None, &["user", "enable", "--help"], None).ok().stdout;
    assert!(nested.contains("see `vexil --help`") && !nested.contains("--token <"), "{nested}");
}

#[test]
fn a_flags_life_from_the_terminal_rollback_archive_users_and_keys() {
    let server = Server::start();
    let define = r#"{"name": "ui.checkout", "type": "string", "owner": "checkout-team@example.com", "tags": ["checkout"],
        "variants": [{"name": "control", "value": "control"}, {"name": "treatment", "value": "treatment"}]}"#;
    assert_eq!(server.http().send("POST", "/api/flags", Some(define.to_owned()), &[]).status, 201);
    let rules = tempfile::NamedTempFile::with_suffix(".json").unwrap();
    std::fs::write(
        rules.path(),
        r#"{"targets": [{"keys": ["alice"], "serve": {"variant": "treatment"}}],
            "rules": [{"conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}], "serve": {"variant": "treatment"}}],
            "split": {"buckets": [{"serve": {"variant": "treatment"}, "weight": 50000}, {"serve": {"variant": "control"}, "weight": 50000}]}}"#,
    )
    .unwrap();
    let path = rules.path().display().to_string();
    // What `set` says is what the server says the state serves, not a guess.
    let set = server.cli(&["set", "ui.checkout", "--env", "dev", "--enabled", "true", "--rules", &path]).ok();
    assert!(set.stdout.contains("✓ Enabled · 50 % treatment / 50 % control · 1 rule · 1 target"), "{}", set.stdout);
    // `get FLAG`: the tree in the same words, and what the flag is.
    let tree = server.cli(&["get", "ui.checkout"]).ok().stdout;
    for line in [
        "├── Dev:     ✓ Enabled · 50 % treatment / 50 % control · 1 rule · 1 target",
        "type:     string",
        "control = \"control\"",
        "owner:    checkout-team@example.com",
        "tags:     checkout",
    ] {
        assert!(tree.contains(line), "`{line}` in:\n{tree}");
    }
    // `get FLAG --env E`: every part of the state, readably, never cut JSON.
    let detail = server.cli(&["get", "ui.checkout", "--env", "dev"]).ok().stdout;
    for line in [
        "targets:",
        "alice → treatment",
        "1. email ends with \"@example.com\" → treatment",
        "everyone else: 50 % treatment / 50 % control",
        "when off:",
    ] {
        assert!(detail.contains(line), "`{line}` in:\n{detail}");
    }
    assert!(!detail.contains("{\"") && !detail.contains('…'), "{detail}");
    // A disabled flag says what it serves while off.
    let disabled = server.cli(&["disable", "ui.checkout", "--env", "dev"]).ok().stdout;
    assert!(disabled.contains("✗ Disabled (serves control)"), "{disabled}");

    // Rollback undoes the last change (the disable), on the record as a rollback by the person.
    let rolled_back = server.cli(&["rollback", "ui.checkout", "--env", "dev"]).ok();
    assert!(rolled_back.stdout.contains("✓ Enabled · 50 % treatment / 50 % control"), "{rolled_back:?}");
    assert!(rolled_back.stderr.contains("undoes audit record"), "{rolled_back:?}");
    let audit = common::audit_entries(&server, "flag=ui.checkout&action=rollback");
    assert_eq!((audit[0]["user"].as_str(), audit.len()), (Some("admin@localhost"), 1), "{audit:?}");
    // In production it asks like any change: without a terminal, a reason and --yes.
    server.cli(&["enable", "ui.checkout", "--env", "prod", "--reason", "launch", "--yes"]).ok();
    server.cli(&["rollback", "ui.checkout", "--env", "prod"]).expect_code(3);
    server.cli(&["rollback", "ui.checkout", "--env", "prod", "--reason", "too early", "--yes"]).ok();
    assert_eq!(server.http().get("/api/flags/ui.checkout/environments/prod").body["state"]["enabled"], false);

    // Archive and unarchive.
    server.cli(&["archive", "ui.checkout", "--reason", "done"]).ok();
    assert!(!server.cli(&["flags"]).ok().stdout.contains("ui.checkout"));
    assert!(server.cli(&["flags", "--archived"]).ok().stdout.contains("ui.checkout (archived)"));
    server.cli(&["unarchive", "ui.checkout"]).ok();
    assert!(server.cli(&["flags"]).ok().stdout.contains("ui.checkout"));

    // Users: disable, enable, a new password.
    common::cli(
        &server.url,
        Some(ADMIN_TOKEN),
        &["user", "add", "dev@example.com", "--role", "developer", "--password-stdin"],
        Some("first password\n"),
    )
    .ok();
    server.cli(&["user", "disable", "dev@example.com"]).ok();
    let login =
        |password: &str| common::cli(&server.url, None, &["login", "--email", "dev@example.com", "--password-stdin"], Some(password));
    assert_eq!(login("first password\n").code, 4);
    server.cli(&["user", "enable", "dev@example.com"]).ok();
    login("first password\n").ok();
    common::cli(
        &server.url,
        Some(ADMIN_TOKEN),
        &["user", "set-password", "dev@example.com", "--password-stdin"],
        Some("second password\n"),
    )
    .ok();
    assert_eq!(login("first password\n").code, 4);
    login("second password\n").ok();

    // Keys: their kind and environment in the list.
    server.cli(&["token", "create", "--sdk", "--env", "staging", "--name", "backend"]).ok();
    server.cli(&["token", "create", "--client", "--env", "prod", "--name", "web"]).ok();
    let tokens = server.cli(&["token", "list"]).ok().stdout;
    let row = |name: &str| tokens.lines().find(|line| line.contains(name)).unwrap_or_default().to_owned();
    assert!(row("backend").contains("SDK key (server)") && row("backend").contains("staging"), "{tokens}");
    assert!(row("web").contains("client-side key") && row("web").contains("prod"), "{tokens}");
    assert!(row("bootstrap").contains("personal token"), "{tokens}");

    // The flags a page at a time.
    server.cli(&["define", "ui.another"]).ok();
    let page = server.cli(&["flags", "--limit", "1"]).ok();
    assert!(page.stdout.contains("ui.another") && !page.stdout.contains("ui.checkout"), "{page:?}");
    assert!(page.stderr.contains("--cursor ui.another"), "{page:?}");
    let rest = server.cli(&["flags", "--cursor", "ui.another"]).ok().stdout;
    assert!(rest.contains("ui.checkout") && !rest.contains("ui.another"), "{rest}");

    // The audit trail a page at a time, and all of it.
    let first = server.cli(&["audit", "--limit", "2"]).ok();
    assert_eq!(first.stdout.lines().count(), 3, "a heading and two records: {}", first.stdout);
    let cursor = first.stderr.split("--cursor ").nth(1).and_then(|rest| rest.split('`').next()).expect("the next page's cursor").to_owned();
    let second = server.cli(&["audit", "--limit", "2", "--cursor", &cursor]).ok();
    assert_ne!(first.stdout, second.stdout);
    let all = server.cli(&["-o", "json", "audit", "--limit", "2", "--all"]).ok().json();
    let total = common::audit_entries(&server, "").len();
    assert_eq!(all["entries"].as_array().unwrap().len(), total, "{all}");
}

#[test]
fn every_command_under_output_json_prints_json() {
    let server = Server::start();
    let directory = tempfile::tempdir().unwrap();
    let registry = directory.path().join("flags.toml");
    std::fs::write(&registry, "[[flag]]\nname = \"ui.from_registry\"\ndescription = \"from the file\"\n").unwrap();
    let export = directory.path().join("dev.json");
    let registry = registry.display().to_string();
    let export_path = export.display().to_string();
    let json = |args: &[&str]| -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let outcome = server.cli(&all);
        assert_eq!(outcome.code, 0, "{args:?}: {outcome:?}");
        serde_json::from_str(outcome.stdout.trim())
            .unwrap_or_else(|error| panic!("{args:?} printed no JSON ({error}): {:?}", outcome.stdout))
    };
    json(&["define", "ui.new_feature"]);
    json(&["apply", &registry]);
    json(&["flags"]);
    json(&["get", "ui.new_feature"]);
    json(&["get", "ui.new_feature", "--env", "dev"]);
    json(&["enable", "ui.new_feature", "--env", "dev"]);
    json(&["set", "ui.new_feature", "--env", "dev", "--rollout", "40"]);
    json(&["disable", "ui.new_feature", "--env", "dev"]);
    json(&["enable", "ui.new_feature", "ui.from_registry", "--env", "dev"]);
    json(&["promote", "ui.new_feature", "--from", "dev", "--to", "staging"]);
    json(&["copy", "--from", "dev", "--to", "staging", "--dry-run"]);
    let exported = server.cli(&["export", "--env", "dev", "--out", &export_path]).ok();
    assert!(exported.stdout.is_empty(), "{exported:?}");
    json(&["export", "--env", "dev"]);
    json(&["import", "--env", "staging", &export_path, "--dry-run"]);
    json(&["rollout", "ui.new_feature", "--env", "staging", "--steps", "10,50,100", "--every", "1h"]);
    json(&["rollout", "status", "ui.new_feature", "--env", "staging"]);
    json(&["rollout", "pause", "ui.new_feature", "--env", "staging"]);
    json(&["rollout", "resume", "ui.new_feature", "--env", "staging"]);
    json(&["rollout", "abort", "ui.new_feature", "--env", "staging"]);
    json(&["rollback", "ui.new_feature", "--env", "dev"]);
    json(&["archive", "ui.from_registry"]);
    json(&["unarchive", "ui.from_registry"]);
    json(&["resolve", "ui.new_feature", "--env", "dev"]);
    json(&["audit"]);
    json(&["audit", "verify"]);
    json(&["user", "add", "dev@example.com", "--role", "developer"]);
    json(&["user", "set-role", "dev@example.com", "viewer"]);
    json(&["user", "disable", "dev@example.com"]);
    json(&["user", "enable", "dev@example.com"]);
    json(&["user", "list"]);
    let created = json(&["token", "create", "--sdk", "--env", "dev"]);
    json(&["token", "list"]);
    json(&["token", "revoke", created["id"].as_str().unwrap()]);
    let trigger = json(&["trigger", "create", "ui.new_feature", "--env", "dev"]);
    json(&["trigger", "list"]);
    json(&["trigger", "revoke", trigger["id"].as_str().unwrap()]);
}

#[test]
fn output_cut_short_by_its_reader_and_a_taken_port_end_quietly() {
    let server = Server::start();
    for index in 0..40 {
        server.cli(&["define", &format!("ui.flag_{index:02}"), "--description", &"a long description ".repeat(20)]).ok();
    }
    // `| head`: the reader stops, vexil stops, without a panic or an exit code outside the table.
    let vexil = env!("CARGO_BIN_EXE_vexil");
    let piped = std::process::Command::new("bash")
        .args(["-c", &format!("set -o pipefail; '{vexil}' -o json audit --limit 200 | head -c 100 >/dev/null")])
        .env("VEXIL_SERVER", &server.url)
        .env("VEXIL_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(piped.status.code(), Some(0), "{stderr}");

    // A second server on a taken port fails before it creates (and prints, once) a first admin.
    let data = tempfile::tempdir().unwrap();
    let address = server.url.trim_start_matches("http://").to_owned();
    let second = std::process::Command::new(vexil)
        .args(["serve", "--bind", &address, "--data"])
        .arg(data.path().join("data"))
        .env("VEXIL_LOG", "warn")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&second.stdout), String::from_utf8_lossy(&second.stderr));
    assert_eq!(second.status.code(), Some(1), "{said}");
    assert!(said.contains("cannot listen on") && !said.contains("password"), "{said}");
    assert!(!data.path().join("data").exists(), "nothing was created: {said}");
}

#[test]
fn what_a_change_will_not_show_and_what_answered_are_said() {
    let server = Server::start();
    let define =
        r#"{"name": "ui.theme", "type": "string", "variants": [{"name": "dark", "value": "dark"}, {"name": "light", "value": "light"}]}"#;
    assert_eq!(server.http().send("POST", "/api/flags", Some(define.to_owned()), &[]).status, 201);
    let split = tempfile::NamedTempFile::with_suffix(".json").unwrap();
    std::fs::write(
        split.path(),
        r#"{"split": {"buckets": [{"serve": {"variant": "dark"}, "weight": 50000}, {"serve": {"variant": "light"}, "weight": 50000}]}}"#,
    )
    .unwrap();
    server.cli(&["set", "ui.theme", "--env", "dev", "--enabled", "true", "--rules", &split.path().display().to_string()]).ok();
    // A value under a split: said, not silently kept out of sight.
    let set = server.cli(&["set", "ui.theme", "--env", "dev", "--value", "purple"]).ok();
    assert!(set.stderr.contains("has a split") && set.stderr.contains("\"split\": null"), "{set:?}");
    // Without a key a split cannot choose: resolve says so, and what a key gets.
    let without = server.cli(&["resolve", "ui.theme", "--env", "dev"]).ok();
    assert!(without.stdout.contains("no targeting key was given (--key USER)"), "{without:?}");
    let with = server.cli(&["resolve", "ui.theme", "--env", "dev", "--key", "user-1"]).ok();
    assert!(with.stdout.contains("the split chose it for this key"), "{with:?}");
    // A promotion can be looked at first.
    let dry = server.cli(&["promote", "ui.theme", "--from", "dev", "--to", "staging", "--dry-run"]).ok();
    assert!(dry.stdout.contains("would promote") && dry.stderr.contains("turned on"), "{dry:?}");
    assert_eq!(server.http().get("/api/flags/ui.theme/environments/staging").body["state"]["enabled"], false);
    // A rollback undoes the last change, so a second one undoes the first, and says so before it does.
    server.cli(&["set", "ui.theme", "--env", "staging", "--value", "light"]).ok();
    server.cli(&["rollback", "ui.theme", "--env", "staging"]).ok();
    let again = server.cli(&["rollback", "ui.theme", "--env", "staging"]).ok();
    assert!(again.stderr.contains("(rollback by admin@localhost)") && again.stderr.contains("light (was dark)"), "{again:?}");
    // A flag with a single state has nothing to undo.
    server.cli(&["define", "ui.untouched"]).ok();
    let nothing = server.cli(&["rollback", "ui.untouched", "--env", "dev"]);
    assert_eq!(nothing.code, 1, "{nothing:?}");
    assert!(nothing.stderr.contains("nothing earlier to restore"), "{nothing:?}");
}

#[test]
fn a_rollout_is_not_ended_by_a_change_that_changes_nothing_and_says_what_it_waits_for() {
    let server = Server::start();
    server.cli(&["define", "ops.slow"]).ok();
    let started = server.cli(&["rollout", "ops.slow", "--env", "staging", "--steps", "10,50,100", "--every", "1h"]).ok();
    assert!(started.stdout.contains("rolling out: step 1 of 3, 10 %"), "{started:?}");
    assert!(started.stderr.contains("each step waits until the guard has seen 500 evaluations"), "{started:?}");
    // An enable of the enabled flag, a set that sets nothing new: no change, the plan goes on.
    server.cli(&["enable", "ops.slow", "--env", "staging"]).ok();
    server.cli(&["set", "ops.slow", "--env", "staging", "--enabled", "true"]).ok();
    let status = server.http().get("/api/flags/ops.slow/environments/staging/rollout").body;
    assert!(status["plan"].is_object(), "the plan still runs: {status}");
    // A real change ends it, as any change by a person does.
    server.cli(&["set", "ops.slow", "--env", "staging", "--rollout", "20"]).ok();
    let status = server.http().get("/api/flags/ops.slow/environments/staging/rollout").body;
    assert!(status["plan"].is_null(), "{status}");
    // A rollback can be looked at first.
    let dry = server.cli(&["rollback", "ops.slow", "--env", "staging", "--dry-run"]).ok();
    assert!(dry.stdout.contains("would roll back") && dry.stderr.contains("undoes audit record"), "{dry:?}");
    assert_eq!(server.http().get("/api/flags/ops.slow/environments/staging").body["state"]["split"]["buckets"][0]["weight"], 20000);
}

#[test]
fn on_a_narrow_terminal_the_matrix_becomes_one_tree_per_flag() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["set", "ui.new_feature", "--env", "dev", "--enabled", "true", "--rollout", "10"]).ok();
    server.cli(&["rollout", "ui.new_feature", "--env", "staging", "--steps", "10,50,100", "--every", "1h"]).ok();
    let vexil = env!("CARGO_BIN_EXE_vexil");
    let on_terminal = |columns: u16, command: &str| {
        let output = std::process::Command::new("script")
            .args(["-q", "-e", "-c", &format!("stty rows 40 cols {columns}; '{vexil}' {command}"), "/dev/null"])
            .env("VEXIL_SERVER", &server.url)
            .env("VEXIL_TOKEN", ADMIN_TOKEN)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).replace('\r', "")
    };
    let wide = on_terminal(200, "flags");
    assert!(wide.contains("FLAG") && wide.contains("DEV"), "{wide}");
    let narrow = on_terminal(60, "flags");
    assert!(!narrow.contains("FLAG "), "{narrow}");
    assert!(narrow.contains("├── Dev:     ✓ Enabled · rolled out to 10 %"), "{narrow}");
    assert!(narrow.lines().all(|line| line.chars().count() <= 60), "{narrow}");
    // The audit trail likewise: a record a heading, what it changed and why beneath, whole.
    server
        .cli(&[
            "enable",
            "ui.new_feature",
            "--env",
            "prod",
            "--yes",
            "--reason",
            "a reason long enough to need more than one line on a narrow terminal",
        ])
        .ok();
    let audit = on_terminal(80, "audit");
    assert!(!audit.contains("TIME "), "{audit}");
    assert!(
        audit.contains("admin@localhost enable ui.new_feature in prod") || audit.contains("admin@localhost update ui.new_feature in prod"),
        "{audit}"
    );
    assert!(audit.contains("    reason: a reason long enough"), "{audit}");
    assert!(audit.lines().all(|line| line.chars().count() <= 80), "{audit}");
}

#[test]
fn turning_a_protected_flag_on_at_a_terminal_first_says_what_it_will_serve() {
    let server = Server::start();
    server.cli(&["define", "ui.armed"]).ok();
    // Armed: a 30 % rollout set while off, so the switch is the whole launch.
    server.cli(&["set", "ui.armed", "--env", "prod", "--rollout", "30", "--reason", "prepare the launch", "--yes"]).ok();
    let enabled = common::cli_on_terminal(&server.url, ADMIN_TOKEN, &["enable", "ui.armed", "--env", "prod"], "launch\nprod\n").ok();
    let said_at = enabled.stdout.find("ui.armed in prod: Disabled · when enabled: rolled out to 30 %").expect("what it will serve is said");
    let asked_at = enabled.stdout.find("Type `prod` to confirm").expect("confirmation asked");
    assert!(said_at < asked_at, "{}", enabled.stdout);
    assert_eq!(server.http().get("/api/flags/ui.armed/environments/prod").body["summary"], "Enabled · rolled out to 30 %");
}
