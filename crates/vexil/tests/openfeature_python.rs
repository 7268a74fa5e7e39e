//! The official OpenFeature Python SDK with its OFREP provider (from PyPI, installed by scripts/test.sh into
//! target/python) evaluates every kind of flag against the real server.

mod common;

use std::process::Command;

use common::Server;
use serde_json::{Value, json};

fn python() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/python/bin/python");
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh creates it (python3 -m venv, pip install -r tests/python/requirements.txt)",
        path.display()
    );
    path
}

#[test]
fn the_official_python_ofrep_provider_evaluates_every_kind_of_flag() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    server.cli(&["define", "backend.rag_max_results", "--type", "number", "--default", "5"]).ok();
    server.cli(&["set", "backend.rag_max_results", "--env", "dev", "--value", "20", "--enabled", "true"]).ok();
    server.cli(&["define", "ui.theme", "--type", "string", "--default", "light"]).ok();
    server.cli(&["set", "ui.theme", "--env", "dev", "--value", "dark", "--enabled", "true"]).ok();
    let created = server.http().post("/api/flags", &json!({"name": "ui.layout", "type": "json", "default": {"columns": 1}}));
    assert_eq!(created.status, 201, "{:?}", created.body);
    let key = common::sdk_key_for(&server, "dev");

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/ofrep_client.py");
    let output = Command::new(python()).arg(script).arg(&server.url).arg(&key).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answers: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((answers["boolean"]["value"].clone(), answers["boolean"]["error"].clone()), (json!(true), Value::Null), "{answers}");
    assert_eq!(answers["boolean"]["variant"], "true");
    assert_eq!((answers["number"]["value"].clone(), answers["number"]["error"].clone()), (json!(20), Value::Null), "{answers}");
    assert_eq!((answers["string"]["value"].clone(), answers["string"]["error"].clone()), (json!("dark"), Value::Null), "{answers}");
    assert_eq!((answers["object"]["value"].clone(), answers["object"]["error"].clone()), (json!({"columns": 1}), Value::Null), "{answers}");
    assert_eq!(
        (answers["missing"]["value"].clone(), answers["missing"]["error"].clone()),
        (json!(true), json!("FLAG_NOT_FOUND")),
        "{answers}"
    );
}
