//! Real-time delivery and evaluation against the real server: the SSE stream, SDK keys, OFREP, sticky splits.

mod common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::{ADMIN_TOKEN, MOMENT, Server, Stream};
use serde_json::{Value, json};

fn sdk_key(server: &Server, environment: &str) -> String {
    common::sdk_key_for(server, environment)
}

#[test]
fn snapshot_first_then_each_change_as_it_happens() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let key = sdk_key(&server, "staging");
    let stream = Stream::open(&server, "env=staging", &key, None).unwrap();
    let snapshot = stream.next();
    assert_eq!(snapshot.name, "snapshot");
    assert_eq!(snapshot.data["environment"], "staging");
    assert_eq!(snapshot.id, snapshot.data["revision"].as_u64());
    assert_eq!(snapshot.data["flags"][0]["definition"]["name"], "ui.new_feature");
    assert_eq!(snapshot.data["flags"][0]["state"]["enabled"], false);

    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    let change = stream.next();
    assert_eq!(change.name, "change");
    assert_eq!(change.id, Some(snapshot.id.unwrap() + 1));
    assert_eq!(change.data["flag"], "ui.new_feature");
    assert_eq!(change.data["state"]["enabled"], true);
    assert_eq!(change.data["state"]["updated_by"], "admin@localhost");

    // A change in another environment does not reach this stream; the next one here does.
    server.cli(&["enable", "ui.new_feature", "--env", "dev"]).ok();
    server.cli(&["set", "ui.new_feature", "--env", "staging", "--rollout", "25"]).ok();
    let change = stream.next();
    assert_eq!(change.data["environment"], "staging");
    assert_eq!(change.data["state"]["split"]["buckets"][0]["weight"], 25000);
}

#[test]
fn the_long_name_and_a_query_token_work_for_eventsource() {
    let server = Server::start();
    let key = sdk_key(&server, "prod");
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/api/feature-flags/stream?env=production&token={key}", server.url))
        .header("Origin", "http://localhost:3000")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[test]
fn resuming_after_1000_missed_changes_delivers_each_once_in_order() {
    let server = Server::start();
    let flags: Vec<String> = (0..50).map(|index| format!("ops.flag_{index}")).collect();
    for flag in &flags {
        server.cli(&["define", flag]).ok();
    }
    let key = sdk_key(&server, "dev");
    let stream = Stream::open(&server, "env=dev", &key, None).unwrap();
    let last_seen = stream.next().id.unwrap();
    drop(stream);
    // 20 bulk operations over 50 flags: 1000 changes while the client is away.
    let names: Vec<&str> = flags.iter().map(String::as_str).collect();
    for round in 0..20 {
        let action = if round % 2 == 0 { "enable" } else { "disable" };
        let response = server.http().post("/api/flags/bulk", &json!({"action": action, "environment": "dev", "flags": names}));
        assert_eq!(response.body["changed"].as_array().unwrap().len(), 50);
    }
    let resumed = Stream::open(&server, "env=dev", &key, Some(last_seen)).unwrap();
    let mut expected = last_seen;
    for _ in 0..1000 {
        let change = resumed.next();
        expected += 1;
        assert_eq!(change.name, "change", "a resume within retention replays changes, not a snapshot");
        assert_eq!(change.id, Some(expected), "in order, none missing, none twice");
    }
    // Live changes follow the replay seamlessly.
    server.cli(&["enable", "ops.flag_0", "--env", "dev"]).ok();
    let live = resumed.next();
    assert_eq!(live.id, Some(expected + 1));
    assert_eq!(live.data["flag"], "ops.flag_0");
}

#[test]
fn resuming_past_retention_gets_a_fresh_snapshot() {
    let server = Server::start_configured("change_retention = 5\n");
    server.cli(&["define", "ui.a"]).ok();
    let key = sdk_key(&server, "dev");
    for round in 0..10 {
        server.cli(&[if round % 2 == 0 { "enable" } else { "disable" }, "ui.a", "--env", "dev"]).ok();
    }
    let resumed = Stream::open(&server, "env=dev", &key, Some(1)).unwrap();
    let first = resumed.next();
    assert_eq!(first.name, "snapshot");
    assert_eq!(first.id, Some(11));
    let recent = Stream::open(&server, "env=dev", &key, Some(8)).unwrap();
    assert_eq!(recent.next().id, Some(9), "changes still retained are replayed");
}

#[test]
fn heartbeats_carry_the_current_revision() {
    let server = Server::start_configured("heartbeat_seconds = 1\n");
    let key = sdk_key(&server, "staging");
    let stream = Stream::open(&server, "env=staging", &key, None).unwrap();
    let snapshot = stream.next_any();
    assert_eq!(snapshot.name, "snapshot");
    let heartbeat = stream.next_any();
    assert_eq!(heartbeat.name, "heartbeat");
    assert_eq!(heartbeat.id, None, "heartbeats do not move Last-Event-ID");
    assert_eq!(heartbeat.data["revision"], snapshot.data["revision"]);
}

#[test]
fn a_stalled_client_is_dropped_without_delaying_the_others() {
    let server = Server::start_configured("stream_buffer = 16\nwrite_stall_seconds = 2\n");
    server.cli(&["define", "ops.payload", "--type", "json"]).ok();
    let key = sdk_key(&server, "dev");
    // The stalled client: connects, then never reads.
    let stalled = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    use std::io::Write;
    write!(&stalled, "GET /api/feature-flags/stream?env=dev&token={key} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let reader = Stream::open(&server, "env=dev", &key, None).unwrap();
    assert_eq!(reader.next().name, "snapshot");
    // Big changes fill the stalled client's socket buffers quickly.
    let big = "x".repeat(30_000);
    let writes = 400;
    for index in 0..writes {
        let response = server.http().put(
            "/api/flags/ops.payload/environments/dev",
            &json!({"enabled": true, "serve": {"value": {"n": index, "padding": big}}}),
            None,
        );
        assert_eq!(response.status, 200);
        let change = reader.next();
        assert_eq!(change.data["state"]["serve"]["value"]["n"], index, "the reading client keeps up, change by change");
    }
    // The stalled client was disconnected: reading its socket now ends instead of blocking forever.
    stalled.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut sink = Vec::new();
    let outcome = std::io::Read::read_to_end(&mut &stalled, &mut sink);
    assert!(outcome.is_ok(), "the server closed the stalled stream: {outcome:?}");
    assert!(sink.len() < writes * 30_000, "the stalled client did not receive everything: {} bytes", sink.len());
}

#[test]
fn sdk_keys_are_read_only_and_scoped_to_their_environment() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let key = sdk_key(&server, "staging");
    assert_eq!(Stream::open(&server, "env=prod", &key, None).err(), Some(403));
    assert_eq!(Stream::open(&server, "env=qa", &key, None).err(), Some(404));
    assert_eq!(Stream::open(&server, "env=staging", "vxs_not_a_key", None).err(), Some(401));
    let as_sdk = server.http().with_token(Some(&key));
    let write = as_sdk.post("/api/flags/ui.new_feature/environments/staging/enable", &json!({}));
    assert_eq!(write.status, 403);
    assert!(write.body["error"]["message"].as_str().unwrap().contains("SDK keys are read-only"));
    assert_eq!(as_sdk.get("/api/flags").status, 403);
    assert_eq!(as_sdk.post("/api/flags", &json!({"name": "ui.x", "type": "boolean"})).status, 403);
    // A developer may not mint a production key: production keys can steer production.
    server.cli(&["user", "add", "dev@example.com", "--role", "developer"]).ok();
    let developer = server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned();
    server.cli_as(&developer, &["token", "create", "--sdk", "--env", "staging"]).ok();
    server.cli_as(&developer, &["token", "create", "--sdk", "--env", "prod"]).expect_code(3);
    // Revoked keys stop working.
    let tokens = server.http().get("/api/tokens").body;
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["kind"] == "sdk" && token["environment"] == "staging" && token["user"] == "admin@localhost")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.cli(&["token", "revoke", &id]).ok();
    assert_eq!(Stream::open(&server, "env=staging", &key, None).err(), Some(401));
}

fn ofrep(server: &Server, key: Option<&str>, path: &str, body: &str, headers: &[(&str, &str)]) -> common::Response {
    let http = server.http().with_token(key);
    http.send("POST", path, Some(body.to_owned()), headers)
}

#[test]
fn ofrep_single_and_bulk_with_every_error_code() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["define", "ui.theme", "--type", "string", "--default", "light"]).ok();
    server.cli(&["set", "ui.theme", "--env", "staging", "--enabled", "true", "--value", "dark"]).ok();
    server.cli(&["set", "ui.new_feature", "--env", "staging", "--enabled", "true", "--rollout", "50"]).ok();
    let key = sdk_key(&server, "staging");
    let single = |flag: &str, body: &str| ofrep(&server, Some(&key), &format!("/ofrep/v1/evaluate/flags/{flag}"), body, &[]);

    let theme = single("ui.theme", r#"{"context": {"targetingKey": "user-1"}}"#);
    assert_eq!(theme.status, 200);
    assert_eq!(theme.body["key"], "ui.theme");
    assert_eq!(theme.body["value"], "dark");
    assert_eq!(theme.body["reason"], "STATIC");
    assert_eq!(theme.body["metadata"]["environment"], "staging");
    let split = single("ui.new_feature", r#"{"context": {"targetingKey": "user-1"}}"#);
    assert_eq!(split.body["reason"], "SPLIT");
    assert!(split.body["variant"] == "true" || split.body["variant"] == "false");

    let missing = single("ui.nope", r#"{"context": {}}"#);
    assert_eq!((missing.status, missing.body["errorCode"].as_str()), (404, Some("FLAG_NOT_FOUND")));
    assert_eq!(missing.body["key"], "ui.nope");
    let no_key = single("ui.new_feature", r#"{"context": {"plan": "pro"}}"#);
    assert_eq!((no_key.status, no_key.body["errorCode"].as_str()), (400, Some("TARGETING_KEY_MISSING")));
    let static_without_key = single("ui.theme", r#"{"context": {}}"#);
    assert_eq!(static_without_key.status, 200, "only flags that need a targeting key ask for one");
    let parse = single("ui.theme", r#"{"context": "#);
    assert_eq!((parse.status, parse.body["errorCode"].as_str()), (400, Some("PARSE_ERROR")));
    let invalid = single("ui.theme", r#"{"context": [1, 2]}"#);
    assert_eq!((invalid.status, invalid.body["errorCode"].as_str()), (400, Some("INVALID_CONTEXT")));
    let invalid_key = single("ui.theme", r#"{"context": {"targetingKey": 42}}"#);
    assert_eq!(invalid_key.body["errorCode"], "INVALID_CONTEXT");

    let unauthenticated = ofrep(&server, None, "/ofrep/v1/evaluate/flags/ui.theme", "{}", &[]);
    assert_eq!((unauthenticated.status, &unauthenticated.body), (401, &Value::Null), "401 without a body");
    let user_token = ofrep(&server, Some(ADMIN_TOKEN), "/ofrep/v1/evaluate/flags/ui.theme", "{}", &[]);
    assert_eq!((user_token.status, &user_token.body), (403, &Value::Null), "403 without a body");
    let by_api_key =
        server.http().with_token(None).send("POST", "/ofrep/v1/evaluate/flags/ui.theme", Some("{}".into()), &[("x-api-key", &key)]);
    assert_eq!(by_api_key.body["value"], "dark");

    let bulk = ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags", r#"{"context": {"targetingKey": "user-1"}}"#, &[]);
    assert_eq!(bulk.status, 200);
    let etag = bulk.etag.clone().expect("bulk answers carry an ETag");
    let keys: Vec<&str> = bulk.body["flags"].as_array().unwrap().iter().map(|flag| flag["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["ui.new_feature", "ui.theme"]);
    let unchanged =
        ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags", r#"{"context": {"targetingKey": "user-1"}}"#, &[("if-none-match", &etag)]);
    assert_eq!(unchanged.status, 304);
    let without_key = ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags", r#"{"context": {}}"#, &[]);
    let flags = without_key.body["flags"].as_array().unwrap();
    assert_eq!(flags[0]["errorCode"], "TARGETING_KEY_MISSING", "per-flag failures inside a bulk answer");
    assert_eq!(flags[1]["value"], "dark");
    server.cli(&["set", "ui.theme", "--env", "staging", "--value", "blue"]).ok();
    let changed =
        ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags", r#"{"context": {"targetingKey": "user-1"}}"#, &[("if-none-match", &etag)]);
    assert_eq!(changed.status, 200, "a change invalidates the ETag");
    assert_ne!(changed.etag.unwrap(), etag);
}

/// Sends `request` on a new connection and returns everything the server wrote until it closed it.
fn exchange(server: &Server, request: &[&[u8]]) -> String {
    use std::io::{Read, Write};
    let mut connection = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).expect("the server accepts");
    for part in request {
        connection.write_all(part).expect("the server reads");
        connection.flush().unwrap();
    }
    let mut answer = String::new();
    connection.read_to_string(&mut answer).expect("the server answers");
    answer
}

/// Evaluations are answered by the listener without the router (the hot path): what the router's middleware does for
/// every other request must hold for them too, and a request the router answers instead must get the same answer.
#[test]
fn evaluations_answered_beside_the_router_keep_its_rules() {
    let server = Server::start_configured("body_timeout_seconds = 1\ncors_origins = [\"https://app.example\"]\n");
    server.cli(&["define", "ui.theme", "--type", "string", "--default", "light"]).ok();
    server.cli(&["set", "ui.theme", "--env", "staging", "--enabled", "true", "--value", "dark"]).ok();
    let key = sdk_key(&server, "staging");
    let context = r#"{"context": {"targetingKey": "user-1"}}"#;

    // A key the router must decode is left to it, and answered the same.
    let direct = ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags/ui.theme", context, &[]);
    let decoded = ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags/ui%2Etheme", context, &[]);
    assert_eq!((direct.status, &direct.body), (decoded.status, &decoded.body));
    assert_eq!(direct.body["value"], "dark");

    // The size limit: refused with what is accepted, through either way in.
    let huge = format!(r#"{{"context": {{"targetingKey": "user-1", "padding": "{}"}}}}"#, "x".repeat(300 * 1024));
    for path in ["/ofrep/v1/evaluate/flags/ui.theme", "/ofrep/v1/evaluate/flags/ui%2Etheme", "/ofrep/v1/evaluate/flags"] {
        let refused = ofrep(&server, Some(&key), path, &huge, &[]);
        assert_eq!((refused.status, refused.body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{path}");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains("262144 bytes at most"), "{:?}", refused.body);
    }

    // A body sent in several chunks is read whole.
    let head = format!(
        "POST /ofrep/v1/evaluate/flags/ui.theme HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let (first, second) = context.split_at(12);
    let chunks = [format!("{:x}\r\n{first}\r\n", first.len()), format!("{:x}\r\n{second}\r\n0\r\n\r\n", second.len())];
    let answer = exchange(&server, &[head.as_bytes(), chunks[0].as_bytes(), chunks[1].as_bytes()]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""value":"dark""#), "{answer}");

    // The body deadline: a body that stops arriving is answered 408 after body_timeout, and the connection freed.
    let head = format!(
        "POST /ofrep/v1/evaluate/flags HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-length: 100\r\n\r\n{{\"context\""
    );
    let answer = exchange(&server, &[head.as_bytes()]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    // CORS for the configured origin, on answers and on errors.
    let client = reqwest::blocking::Client::new();
    for (path, status) in [("/ofrep/v1/evaluate/flags/ui.theme", 200), ("/ofrep/v1/evaluate/flags/ui.nope", 404)] {
        let response = client
            .post(format!("{}{path}", server.url))
            .bearer_auth(&key)
            .header("origin", "https://app.example")
            .body(context)
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example");
        assert_eq!(response.headers()["access-control-expose-headers"], "etag,www-authenticate");
        assert_eq!(response.headers()["vary"], "origin");
    }
    let elsewhere = client
        .post(format!("{}/ofrep/v1/evaluate/flags", server.url))
        .bearer_auth(&key)
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(elsewhere.status().as_u16(), 200);
    assert!(elsewhere.headers().get("access-control-allow-origin").is_none(), "another origin is not allowed");

    // Other methods on the same paths are still the router's.
    let get = client.get(format!("{}/ofrep/v1/evaluate/flags", server.url)).bearer_auth(&key).send().unwrap();
    assert_eq!(get.status().as_u16(), 405);
}

#[test]
fn a_context_free_bulk_answer_is_prepared_once_and_cached_by_etag() {
    let server = Server::start();
    server.cli(&["define", "ui.a"]).ok();
    server.cli(&["enable", "ui.a", "--env", "dev"]).ok();
    let key = sdk_key(&server, "dev");
    let first = ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags", r#"{"context": {"targetingKey": "a"}}"#, &[]);
    let second = ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags", r#"{"context": {"targetingKey": "b", "plan": "pro"}}"#, &[]);
    assert_eq!(first.etag, second.etag, "no flag depends on the context, so every context gets the same prepared answer");
    assert_eq!(first.body, second.body);
    assert_eq!(first.body["flags"][0]["value"], true);
}

#[test]
fn a_30_percent_split_serves_about_30_percent_and_users_keep_their_answer_as_it_grows() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["set", "ui.new_feature", "--env", "staging", "--enabled", "true", "--rollout", "30"]).ok();
    let key = sdk_key(&server, "staging");
    let evaluate_all = || -> Vec<bool> {
        (0..1500)
            .map(|user| {
                let body = format!(r#"{{"context": {{"targetingKey": "user-{user}"}}}}"#);
                let response = ofrep(&server, Some(&key), "/ofrep/v1/evaluate/flags/ui.new_feature", &body, &[]);
                response.body["value"].as_bool().unwrap()
            })
            .collect()
    };
    let at_30 = evaluate_all();
    let share = at_30.iter().filter(|on| **on).count() as f64 / 1500.0;
    assert!((0.27..=0.33).contains(&share), "30% rollout served {:.1}%", share * 100.0);
    assert_eq!(evaluate_all(), at_30, "each user keeps their answer");
    server.cli(&["set", "ui.new_feature", "--env", "staging", "--rollout", "60"]).ok();
    let at_60 = evaluate_all();
    let share = at_60.iter().filter(|on| **on).count() as f64 / 1500.0;
    assert!((0.57..=0.63).contains(&share), "60% rollout served {:.1}%", share * 100.0);
    assert!(at_30.iter().zip(&at_60).all(|(before, after)| !before || *after), "nobody who had the feature at 30% lost it at 60%");
}

#[test]
fn vexil_watch_prints_changes_live() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"))
        .args(["watch", "--env", "staging", "--count", "1", "-o", "json"])
        .env("VEXIL_SERVER", &server.url)
        .env("VEXIL_TOKEN", ADMIN_TOKEN)
        .env("VEXIL_CONFIG_DIR", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let snapshot: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(snapshot["event"], "snapshot");
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    let change: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(change["event"], "change");
    assert_eq!(change["data"]["state"]["enabled"], true);
    assert!(watch.wait().unwrap().success(), "--count 1 stops after one change");
}

#[test]
fn vexil_resolve_shows_which_layer_wins() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    server.cli(&["enable", "ui.new_feature", "--env", "staging"]).ok();
    let directory = tempfile::tempdir().unwrap();
    let resolve = |variable: Option<&str>, dotenv: Option<&str>| -> Value {
        if let Some(text) = dotenv {
            std::fs::write(directory.path().join(".env.local"), text).unwrap();
        } else {
            let _ = std::fs::remove_file(directory.path().join(".env.local"));
        }
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vexil"));
        command
            .args(["resolve", "ui.new_feature", "--env", "staging", "-o", "json", "--dir"])
            .arg(directory.path())
            .env("VEXIL_SERVER", &server.url)
            .env("VEXIL_TOKEN", ADMIN_TOKEN)
            .env_remove("FF_UI_NEW_FEATURE");
        if let Some(value) = variable {
            command.env("FF_UI_NEW_FEATURE", value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let stored = resolve(None, None);
    assert_eq!((stored["value"].clone(), stored["source"].clone()), (json!(true), json!("stored_state")));
    let dotenv = resolve(None, Some("FF_UI_NEW_FEATURE=false\n"));
    assert_eq!((dotenv["value"].clone(), dotenv["source"].clone()), (json!(false), json!("dotenv_local")));
    let variable = resolve(Some("on"), Some("FF_UI_NEW_FEATURE=false\n"));
    assert_eq!((variable["value"].clone(), variable["source"].clone()), (json!(true), json!("environment_variable")));
    let invalid = resolve(Some("maybe"), Some("FF_UI_NEW_FEATURE=off\n"));
    assert_eq!(
        (invalid["value"].clone(), invalid["source"].clone()),
        (json!(false), json!("dotenv_local")),
        "an invalid override is ignored"
    );
    assert!(invalid["warnings"][0].as_str().unwrap().contains("`maybe` is not a boolean"));
}

#[test]
fn stream_closes_cleanly_when_the_server_stops() {
    let server = Server::start();
    let key = sdk_key(&server, "dev");
    let stream = Stream::open(&server, "env=dev", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    assert!(server.terminate(), "SIGTERM with an open stream still shuts down cleanly");
    loop {
        match stream.events.recv_timeout(MOMENT) {
            Ok(Some(event)) if event.name == "heartbeat" => continue,
            Ok(None) => break,
            other => panic!("expected the stream to end, got {other:?}"),
        }
    }
}

#[test]
fn a_stream_requested_on_a_reused_connection_works_too() {
    use std::io::{Read, Write};
    let server = Server::start();
    let key = sdk_key(&server, "dev");
    let mut connection = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    connection.set_read_timeout(Some(MOMENT)).unwrap();
    // A first request makes this a keep-alive connection served by hyper; the stream request follows on it.
    write!(connection, "GET /healthz HTTP/1.1\r\nHost: vexil\r\n\r\n").unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains("\"status\":\"ok\"") {
        let read = connection.read(&mut buffer).unwrap();
        assert!(read > 0, "the connection stays open after /healthz");
        received.extend_from_slice(&buffer[..read]);
    }
    write!(connection, "GET /api/feature-flags/stream?env=dev&token={key} HTTP/1.1\r\nHost: vexil\r\n\r\n").unwrap();
    received.clear();
    while !String::from_utf8_lossy(&received).contains("event: snapshot") {
        let read = connection.read(&mut buffer).unwrap();
        assert!(read > 0, "the stream answers on the reused connection");
        received.extend_from_slice(&buffer[..read]);
    }
    assert!(String::from_utf8_lossy(&received).contains("text/event-stream"));
}
