//! Concurrent writers: stale versions get 412 and no update is lost.

mod common;

use common::Server;
use serde_json::json;

#[test]
fn stale_if_match_gets_412_and_changes_nothing() {
    let server = Server::start();
    server.cli(&["define", "ui.banner", "--type", "string", "--default", "hello"]).ok();
    let http = server.http();
    let path = "/api/flags/ui.banner/environments/staging";
    let read = http.get(path);
    let etag = read.etag.clone().expect("states carry an ETag");
    assert_eq!(etag, "\"1\"");
    let first = http.put(path, &json!({"enabled": true, "serve": {"value": "first"}}), Some(&etag));
    assert_eq!(first.status, 200, "{:?}", first.body);
    let second = http.put(path, &json!({"enabled": true, "serve": {"value": "second"}}), Some(&etag));
    assert_eq!(second.status, 412);
    assert_eq!(second.body["error"]["code"], "version_conflict");
    assert!(second.body["error"]["message"].as_str().unwrap().contains("at version 2, not 1"));
    assert_eq!(http.get(path).body["state"]["serve"]["value"], "first");
}

#[test]
fn concurrent_read_modify_write_loses_no_update() {
    let server = Server::start();
    server.cli(&["define", "ops.counter", "--type", "number", "--default", "0"]).ok();
    let writers = 6;
    let increments = 15;
    let conflicts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let http = server.http();
            let conflicts = conflicts.clone();
            std::thread::spawn(move || {
                let path = "/api/flags/ops.counter/environments/dev";
                let mut done = 0;
                while done < increments {
                    let current = http.get(path);
                    let value = current.body["state"]["serve"]["value"].as_u64().unwrap();
                    let etag = current.etag.unwrap();
                    let response = http.put(path, &json!({"enabled": true, "serve": {"value": value + 1}}), Some(&etag));
                    match response.status {
                        200 => done += 1,
                        412 => {
                            conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        other => panic!("unexpected {other}: {:?}", response.body),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let state = server.http().get("/api/flags/ops.counter/environments/dev").body;
    assert_eq!(state["state"]["serve"]["value"], writers * increments, "every increment landed exactly once");
    assert_eq!(state["state"]["version"], writers * increments + 1);
    let audit = server.http().get("/api/flags/audit?flag=ops.counter&action=update&limit=1000").body;
    assert_eq!(audit["entries"].as_array().unwrap().len() as u64, writers * increments);
    eprintln!("{} stale writes were refused with 412", conflicts.load(std::sync::atomic::Ordering::Relaxed));
}

#[test]
fn promotion_refuses_when_the_target_moved_since_the_diff() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    let http = server.http();
    let preview = http.post("/api/flags/ui.new_feature/promote", &json!({"from": "dev", "to": "staging", "dry_run": true}));
    assert_eq!(preview.status, 200);
    assert_eq!(preview.body["changes"][0]["path"], "enabled");
    let seen = preview.body["target_version"].as_u64().unwrap();
    // Someone changes staging between the diff and the promotion.
    server.cli(&["set", "ui.new_feature", "--env", "staging", "--rollout", "5"]).ok();
    let promoted = http.post("/api/flags/ui.new_feature/promote", &json!({"from": "dev", "to": "staging", "expected_version": seen}));
    assert_eq!(promoted.status, 412, "{:?}", promoted.body);
    assert!(promoted.body["error"]["message"].as_str().unwrap().contains("since the diff was computed"));
    let staging = http.get("/api/flags/ui.new_feature/environments/staging").body;
    assert_eq!(staging["state"]["enabled"], false);
    assert_eq!(staging["state"]["split"]["buckets"][0]["weight"], 5000, "the other change stands");
}
