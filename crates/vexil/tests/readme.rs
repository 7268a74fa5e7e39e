//! README.md's command blocks, run as pasted, in order, on a fresh server, by a person at a terminal.
//!
//! Every ```bash block after the first (which starts the server and the test suite) is put into one script, in
//! README order, with three changes a reader's own machine makes for them: `cargo …` lines (installing the binary
//! the test already has) are left out, `http://127.0.0.1:7070` is the test server's address, and the two commands
//! that stream until Ctrl-C (`curl -N`, `vexil watch`) are stopped after a few seconds, which counts as success.
//! The script runs on a terminal (util-linux `script`) and is typed what the README says the person types: the
//! admin's email and password at `vexil login`, a reason and `prod` (the confirmation) at the production promotion.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Server;

/// The bash blocks of `markdown`, in order.
fn bash_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, fence) if fence.starts_with("```bash") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_blocks_run_as_pasted_in_order_on_a_fresh_server() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let blocks = bash_blocks(&readme);
    assert!(blocks.len() >= 3, "the set-up block, the seed's workflow and the streaming block: {blocks:?}");
    assert!(blocks[0].contains("cargo run --release -- serve"), "the first block starts the server: {}", blocks[0]);

    let server = Server::start();
    let commands: String = blocks[1..]
        .iter()
        .flat_map(|block| block.lines())
        .filter(|line| !line.trim_start().starts_with("cargo "))
        .map(|line| format!("{}\n", line.replace("http://127.0.0.1:7070", &server.url)))
        .collect();
    let vexil = env!("CARGO_BIN_EXE_vexil");
    let script = format!(
        r#"set -euo pipefail
# Streams run until Ctrl-C; here for three seconds, then stopped as a reader would.
curl() {{ timeout 3 curl "$@" || [ $? -eq 124 ]; }}
vexil() {{ if [ "$1" = watch ]; then timeout 3 '{vexil}' "$@" || [ $? -eq 124 ]; else '{vexil}' "$@"; fi; }}
{commands}
echo "README DONE"
"#
    );
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("readme.sh");
    std::fs::write(&path, &script).unwrap();
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &format!("bash {}", path.display()), "/dev/null"])
        .current_dir(directory.path())
        .env_remove("VEXIL_SERVER")
        .env_remove("VEXIL_TOKEN")
        .env("VEXIL_CONFIG_DIR", directory.path().join("config"))
        .env("VEXIL_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs (it provides the terminal)");
    // What the person types: the login's email and password, then the production promotion's reason and `prod` to confirm.
    child.stdin.take().unwrap().write_all(b"admin@localhost\ncorrect horse battery\nLaunch after a week in staging\nprod\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    assert_eq!(output.status.code(), Some(0), "the README's commands failed:\n{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("README DONE"), "{printed}");

    // What the comments promise is what was printed.
    for promised in
        ["logged in to", "├── Dev:     ✓ Enabled", "├── Staging: ✓ Enabled", "└── Prod:    ✗ Disabled", "promoted ui.new_feature"]
    {
        assert!(printed.contains(promised), "`{promised}` is not in what the README's commands printed:\n{printed}");
    }
    assert!(printed.contains("audit trail intact"), "{printed}");
    assert!(printed.contains("event: snapshot"), "the stream gave its snapshot: {printed}");
    assert!(printed.contains("watching staging"), "{printed}");
    assert!(printed.contains("vxc_"), "a client-side key was printed: {printed}");
    // Everything the README did is on the record, in production too.
    let disabled = common::audit_entries(&server, "flag=ui.problem_feature&action=disable");
    assert_eq!(disabled[0]["reason"], "Incident #123", "{disabled:?}");
    let promoted = common::audit_entries(&server, "flag=ui.new_feature&environment=prod&action=promote");
    assert_eq!(promoted[0]["reason"], "Launch after a week in staging", "{promoted:?}");
    let rolled_back = common::audit_entries(&server, "flag=ui.new_feature&environment=prod&action=rollback");
    assert_eq!(rolled_back[0]["user"], "admin@localhost", "{rolled_back:?}");
    let prod = server.http().get("/api/flags/ui.new_feature/environments/prod").body;
    assert_eq!(prod["state"]["enabled"], false, "the rollback undid the promotion: {prod}");
}
