//! Faults a production server meets: clients that hang up mid-write, malformed and hostile input, slow or idle
//! connections. Each test runs the real binary and checks what a user would see afterwards: memory equals the
//! store, streams converged, and every write is answered truthfully.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{ADMIN_TOKEN, Server, Stream};
use serde_json::json;

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Sends a PUT of `value` to `flag` in dev and hangs up after `wait` without reading the answer.
fn abandoned_put(server: &Server, flag: &str, value: u64, wait: Duration) {
    let body = json!({"enabled": true, "serve": {"value": value}}).to_string();
    let mut socket = TcpStream::connect(address(server)).unwrap();
    let request = format!(
        "PUT /api/flags/{flag}/environments/dev HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).unwrap();
    // The fault itself: the client gives up at some point while the server works on the write.
    std::thread::sleep(wait);
    drop(socket);
}

#[test]
fn a_client_that_hangs_up_mid_write_leaves_memory_the_streams_and_the_store_in_step() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    server.cli(&["define", "ops.counter", "--type", "number", "--default", "0"]).ok();
    let stream = Stream::open(&server, "env=dev", ADMIN_TOKEN, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");

    for value in 1..=200u64 {
        abandoned_put(&server, "ops.counter", value, Duration::from_micros(value % 7 * 700));
    }
    // A write after all of them is accepted (memory knows the version the store has) and answered with its own state.
    let http = server.http();
    let last = http.put("/api/flags/ops.counter/environments/dev", &json!({"enabled": true, "serve": {"value": 1000}}), None);
    assert_eq!(last.status, 200, "{:?}", last.body);
    assert_eq!(last.body["state"]["serve"]["value"], 1000);
    let version = last.body["state"]["version"].as_u64().unwrap();

    // The stream saw every revision up to that write, in order, ending with it.
    let mut seen = Vec::new();
    loop {
        let event = stream.next();
        assert_eq!(event.name, "change", "{event:?}");
        let value = event.data["state"]["serve"]["value"].as_u64().unwrap();
        seen.push(event.data["state"]["version"].as_u64().unwrap());
        if value == 1000 {
            break;
        }
    }
    let expected: Vec<u64> = (version + 1 - seen.len() as u64..=version).collect();
    assert_eq!(seen, expected, "one change per committed version, none missed");

    // What memory serves is what the store holds: the same answer after a restart, with one audit record per version.
    let before = http.get("/api/flags/ops.counter/environments/dev").body;
    assert!(server.terminate());
    let server = Server::start_on(&data);
    let after = server.http().get("/api/flags/ops.counter/environments/dev").body;
    assert_eq!(before, after);
    let audit = server.http().get("/api/flags/audit?flag=ops.counter&env=dev&limit=1000").body;
    assert_eq!(audit["entries"].as_array().unwrap().len() as u64, version, "the creation and one record per write");
}

/// Reads from `socket` until the server closes it; `Err` if it is still open at the safety deadline.
fn read_until_closed(socket: &mut TcpStream) -> Result<String, String> {
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match socket.read(&mut chunk) {
            Ok(0) => return Ok(String::from_utf8_lossy(&received).into_owned()),
            Ok(read) => received.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return Ok(String::from_utf8_lossy(&received).into_owned()),
            Err(error) => return Err(format!("still open after 20 s ({error}); received {:?}", String::from_utf8_lossy(&received))),
        }
    }
}

const SHORT_HEADS: &str = "header_timeout_seconds = 1\n";

#[test]
fn a_slow_or_idle_client_loses_its_connection_on_every_request_not_only_the_first() {
    let server = Server::start_configured(SHORT_HEADS);
    // Slowloris on the second request of a keep-alive connection: the first is answered, the second never finishes.
    let mut socket = TcpStream::connect(address(&server)).unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ").unwrap();
    let received = read_until_closed(&mut socket).expect("the server cuts a head that does not arrive");
    assert!(received.starts_with("HTTP/1.1 200"), "the first request was answered: {received}");
    assert_eq!(received.matches("HTTP/1.1").count(), 1, "{received}");

    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(address(&server)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let received = read_until_closed(&mut idle).expect("an idle keep-alive connection is closed");
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");

    // A connection that never sends anything is closed as well.
    let mut silent = TcpStream::connect(address(&server)).unwrap();
    assert_eq!(read_until_closed(&mut silent).expect("a silent connection is closed"), "");
}

/// A body that stops arriving is answered `408 request_timeout` after `body_timeout`, whatever the endpoint, and writes
/// nothing: an unkeyed write, a keyed one (read by the idempotency layer) and an evaluation.
#[test]
fn a_body_that_stops_arriving_is_answered_408_and_changes_nothing() {
    let server = Server::start_configured("body_timeout_seconds = 1\n");
    let key = common::sdk_key_for(&server, "dev");
    for (path, credential, extra) in [
        ("/api/flags", ADMIN_TOKEN, ""),
        ("/api/flags", ADMIN_TOKEN, "idempotency-key: slow-1\r\n"),
        ("/ofrep/v1/evaluate/flags", key.as_str(), ""),
    ] {
        let mut socket = TcpStream::connect(address(&server)).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {credential}\r\ncontent-type: application/json\r\n{extra}content-length: 200\r\nconnection: close\r\n\r\n{{\"name\": \"ui.slow\""
        );
        socket.write_all(head.as_bytes()).unwrap();
        let received = read_until_closed(&mut socket).expect("the server answers and closes");
        assert!(received.starts_with("HTTP/1.1 408"), "{path} {extra}: {received}");
        assert!(received.contains(r#""code":"request_timeout""#) && received.contains("body_timeout"), "{received}");
    }
    let flags = server.http().get("/api/flags");
    assert!(!flags.body.to_string().contains("ui.slow"), "nothing was defined: {}", flags.body);
}

#[test]
fn heads_with_bare_line_feeds_are_answered_and_only_the_stream_route_streams() {
    let server = Server::start();
    let mut socket = TcpStream::connect(address(&server)).unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\nhost: x\nconnection: close\n\n").unwrap();
    let received = read_until_closed(&mut socket).unwrap();
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");

    for path in ["/api/feature-flags/streamX?env=dev", "/api/feature-flags/stream/../../api/flags?env=dev"] {
        let mut socket = TcpStream::connect(address(&server)).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN_TOKEN}\r\nconnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).unwrap();
        let received = read_until_closed(&mut socket).unwrap();
        assert!(received.starts_with("HTTP/1.1 404"), "{path}: {received}");
        assert!(!received.contains("text/event-stream"), "{path}: {received}");
    }
}

#[test]
fn over_the_connection_cap_a_client_gets_a_clear_refusal_and_others_still_get_in() {
    let server = Server::start_configured("max_connections = 40\nmax_connections_per_address = 8\n");
    let held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut socket = TcpStream::connect(address(&server)).unwrap();
            // A complete request keeps the connection busy and proves it was admitted.
            socket.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let mut answer = [0u8; 12];
            socket.read_exact(&mut answer).unwrap();
            assert_eq!(&answer, b"HTTP/1.1 200");
            socket
        })
        .collect();
    let mut refused = TcpStream::connect(address(&server)).unwrap();
    refused.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let answer = read_until_closed(&mut refused).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1") && answer.contains("too_many_connections"), "{answer}");
    drop(held);
    // The places are given back when connections close.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = server.http().get("/healthz");
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 503);
        assert!(std::time::Instant::now() < deadline, "closed connections free their places");
    }
}

#[test]
fn sigterm_does_not_wait_for_a_client_that_stops_reading() {
    let server = Server::start_configured("shutdown_grace_seconds = 1\nwrite_stall_seconds = 120\n");
    for index in 0..40 {
        server.cli(&["define", &format!("ops.flag_{index}"), "--description", &"padding ".repeat(120)]).ok();
    }
    // A client asks for the audit trail and never reads the answer.
    let mut stalled = TcpStream::connect(address(&server)).unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    for _ in 0..40 {
        let request = format!("GET /api/flags/audit?limit=1000 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\r\n");
        stalled.write_all(request.as_bytes()).unwrap();
    }
    let started = std::time::Instant::now();
    let mut server = server;
    std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // Without the grace it would wait for the write stall (120 s); the bound is generous against a busy machine.
    assert!(started.elapsed() < Duration::from_secs(30), "shut down in {:?}", started.elapsed());
}

#[test]
fn browsers_on_another_origin_pass_the_preflight_for_ofrep_and_the_stream() {
    let server = Server::start();
    let client = reqwest::blocking::Client::new();
    for path in ["/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/ui.x", "/api/feature-flags/stream?env=dev"] {
        let preflight = client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.url))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", if path.contains("stream") { "GET" } else { "POST" })
            .header("access-control-request-headers", "authorization,content-type")
            .send()
            .unwrap();
        assert!(preflight.status().is_success(), "{path}: {}", preflight.status());
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{path}: {allowed}");
    }

    // With configured origins, only those get the header.
    let server = Server::start_configured("cors_origins = [\"https://app.example.com\"]\n");
    let key = common::sdk_key_for(&server, "dev");
    for (origin, allowed) in [("https://app.example.com", true), ("https://evil.example", false)] {
        let preflight = client
            .request(reqwest::Method::OPTIONS, format!("{}/ofrep/v1/evaluate/flags", server.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
            .unwrap();
        assert_eq!(preflight.headers().get("access-control-allow-origin").map(|value| value.to_str().unwrap()), allowed.then_some(origin));
        let stream = client
            .get(format!("{}/api/feature-flags/stream?env=dev", server.url))
            .header("origin", origin)
            .bearer_auth(&key)
            .send()
            .unwrap();
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers().get("access-control-allow-origin").map(|value| value.to_str().unwrap()), allowed.then_some(origin));
    }
}

#[test]
fn ofrep_answers_as_the_protocol_and_its_official_clients_expect() {
    let server = Server::start();
    server.cli(&["define", "backend.rag_max_results", "--type", "number", "--default", "5"]).ok();
    server.cli(&["set", "backend.rag_max_results", "--env", "dev", "--value", "20", "--enabled", "true"]).ok();
    let key = common::sdk_key_for(&server, "dev");
    let sdk = server.http().with_token(Some(&key));
    // Every success names a variant (the official Python provider reads it unconditionally).
    let single = sdk.post("/ofrep/v1/evaluate/flags/backend.rag_max_results", &json!({"context": {}}));
    assert_eq!((single.status, single.body["value"].clone(), single.body["variant"].clone()), (200, json!(20), json!("(value)")));
    let bulk = sdk.post("/ofrep/v1/evaluate/flags", &json!({"context": {}}));
    assert!(bulk.body["flags"].as_array().unwrap().iter().all(|flag| flag["variant"].is_string()), "{:?}", bulk.body);
    // A body that is no object is a parse error.
    for body in ["[]", "\"context\"", "42"] {
        let response = sdk.send("POST", "/ofrep/v1/evaluate/flags/backend.rag_max_results", Some(body.to_owned()), &[]);
        assert_eq!((response.status, response.body["errorCode"].clone()), (400, json!("PARSE_ERROR")), "{body}");
    }
    // 401 says how to authenticate.
    let anonymous =
        reqwest::blocking::Client::new().post(format!("{}/ofrep/v1/evaluate/flags", server.url)).json(&json!({})).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
}

fn login_from(server: &Server, source: &str, email: &str, password: &str) -> u16 {
    let client = reqwest::blocking::Client::builder().local_address(source.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    client
        .post(format!("{}/api/auth/login", server.url))
        .json(&json!({"email": email, "password": password}))
        .send()
        .expect("the server answers")
        .status()
        .as_u16()
}

#[test]
fn concurrent_guesses_get_the_budget_and_no_more_and_the_owner_still_logs_in_from_elsewhere() {
    let server = Server::start();
    let url = server.url.clone();
    let guesses: Vec<_> = (0..40)
        .map(|index| {
            let server_url = url.clone();
            std::thread::spawn(move || {
                let client =
                    reqwest::blocking::Client::builder().local_address("127.0.0.9".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
                let body = json!({"email": "admin@localhost", "password": format!("guess number {index}")});
                client.post(format!("{server_url}/api/auth/login")).json(&body).send().unwrap().status().as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = guesses.into_iter().map(|guess| guess.join().unwrap()).collect();
    let checked = statuses.iter().filter(|status| **status == 401).count();
    assert!(checked <= 5, "{checked} of 40 concurrent guesses were checked: {statuses:?}");
    assert!(statuses.iter().all(|status| [401, 429].contains(status)), "{statuses:?}");
    assert_eq!(login_from(&server, "127.0.0.9", "admin@localhost", "correct horse battery"), 429, "the guesser stays locked out");
    // The admin, from another address, is not locked out by someone else's guesses.
    assert_eq!(login_from(&server, "127.0.0.10", "admin@localhost", "correct horse battery"), 200);
}

fn peak_memory_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_flood_of_logins_costs_bounded_memory() {
    let server = Server::start();
    let url = server.url.clone();
    let floods: Vec<_> = (0..100)
        .map(|index| {
            let server_url = url.clone();
            std::thread::spawn(move || {
                // From many addresses, so the login limiter does not stop them: only the bound on password checks does.
                let source: std::net::IpAddr = format!("127.0.1.{}", index + 1).parse().unwrap();
                let client = reqwest::blocking::Client::builder().local_address(source).build().unwrap();
                let body = json!({"email": format!("nobody{index}@example.com"), "password": "whatever it is"});
                client.post(format!("{server_url}/api/auth/login")).json(&body).send().unwrap().status().as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = floods.into_iter().map(|flood| flood.join().unwrap()).collect();
    assert!(statuses.iter().all(|status| [401, 503].contains(status)), "{statuses:?}");
    // Each Argon2 check holds ~19 MiB; unbounded, 100 at once took the server to 2.5 GB.
    let peak = peak_memory_kib(&server);
    assert!(peak < 200 * 1024, "peak memory {} MiB", peak / 1024);
    eprintln!("peak memory after 100 concurrent logins: {} MiB", peak / 1024);
}

fn regex_rules(patterns: usize) -> serde_json::Value {
    let values: Vec<String> = (0..patterns).map(|index| format!("^user-{index}-[a-z]+$")).collect();
    json!({"enabled": true, "serve": {"value": false}, "rules": [
        {"conditions": [{"attribute": "targetingKey", "operator": "regex", "values": values}], "serve": {"value": true}}]})
}

#[test]
fn regex_conditions_have_a_budget_per_state_and_per_environment() {
    let server = Server::start();
    let http = server.http();
    server.cli(&["define", "ui.greedy"]).ok();
    let refused = http.put("/api/flags/ui.greedy/environments/dev", &regex_rules(33), None);
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("at most 32"), "{:?}", refused.body);
    let blowup = json!({"enabled": true, "serve": {"value": false}, "rules": [
        {"conditions": [{"attribute": "email", "operator": "regex", "values": ["\\w{1000}"]}], "serve": {"value": true}}]});
    let refused = http.put("/api/flags/ui.greedy/environments/dev", &blowup, None);
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("does not compile"), "{:?}", refused.body);

    // 16 flags of 32 patterns fill an environment; the 17th is refused there, and fits in another environment.
    for index in 0..17 {
        server.cli(&["define", &format!("ui.regex_{index}")]).ok();
    }
    for index in 0..16 {
        let accepted = http.put(&format!("/api/flags/ui.regex_{index}/environments/dev"), &regex_rules(32), None);
        assert_eq!(accepted.status, 200, "{index}: {:?}", accepted.body);
    }
    let over = http.put("/api/flags/ui.regex_16/environments/dev", &regex_rules(32), None);
    assert_eq!(over.status, 422, "{:?}", over.body);
    assert!(over.body["error"]["message"].as_str().unwrap().contains("at most 512"), "{:?}", over.body);
    assert_eq!(http.put("/api/flags/ui.regex_16/environments/staging", &regex_rules(32), None).status, 200);
    // Replacing a flag's own patterns counts them once.
    assert_eq!(http.put("/api/flags/ui.regex_0/environments/dev", &regex_rules(32), None).status, 200);
}

/// A small tmpfs mounted for the test, unmounted when dropped (the suite runs as root, as scripts/test.sh requires).
struct SmallDisk {
    path: std::path::PathBuf,
    _directory: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}M"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(mounted.success(), "mounting a tmpfs needs root (the test suite runs as root)");
        Self { path, _directory: directory }
    }

    /// Fills what is left with a file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.write_all(&[0u8; 1024]);
        while file.write_all(&[0u8; 1]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_takes_the_server_out_of_rotation_refuses_writes_truthfully_and_recovers() {
    let disk = SmallDisk::mount(8);
    let server = Server::start_on(&disk.path.join("data"));
    server.cli(&["define", "ui.new_feature"]).ok();
    let http = server.http();
    let filler = disk.fill();
    // Writes fail (the disk is full), and say nothing was changed; the state is what it was.
    let mut failed = None;
    for round in 0..50 {
        let body = json!({"enabled": true, "serve": {"value": true}, "rules": [{"description": "x".repeat(400), "conditions": [
            {"attribute": "round", "operator": "equals", "values": [format!("{round}-{}", "y".repeat(900))]}], "serve": {"value": false}}]});
        let response = http.put("/api/flags/ui.new_feature/environments/dev", &body, None);
        if response.status != 200 {
            failed = Some(response);
            break;
        }
    }
    let failed = failed.expect("a write fails once the disk is full");
    assert_eq!(failed.status, 503, "{:?}", failed.body);
    assert!(failed.body["error"]["message"].as_str().unwrap().contains("nothing was changed"), "{:?}", failed.body);
    let ready = http.get("/readyz");
    assert_eq!(ready.status, 503, "a server that cannot write is not ready: {:?}", ready.body);
    assert!(ready.body["writes"].as_str().unwrap().contains("full"), "{:?}", ready.body);
    // Reads and evaluation go on meanwhile.
    assert_eq!(http.get("/api/flags/ui.new_feature").status, 200);

    std::fs::remove_file(filler).unwrap();
    assert_eq!(http.get("/readyz").status, 200, "ready again once a write works");
    assert_eq!(http.post("/api/flags/ui.new_feature/environments/dev/disable", &json!({})).status, 200);
    drop(server);
}

#[test]
fn a_write_retried_with_its_idempotency_key_is_done_once_and_answered_as_the_first_time() {
    let server = Server::start();
    server.cli(&["define", "ops.counter", "--type", "number", "--default", "0"]).ok();
    let http = server.http();
    let path = "/api/flags/ops.counter/environments/dev";
    let body = json!({"enabled": true, "serve": {"value": 7}}).to_string();
    let first = http.send("PUT", path, Some(body.clone()), &[("idempotency-key", "retry-0001")]);
    assert_eq!(first.status, 200, "{:?}", first.body);
    // Someone else changes it meanwhile; the retry must not overwrite that.
    http.put(path, &json!({"enabled": true, "serve": {"value": 8}}), None);
    let retry = http.send("PUT", path, Some(body.clone()), &[("idempotency-key", "retry-0001")]);
    assert_eq!((retry.status, &retry.body), (200, &first.body), "the first answer, again");
    assert_eq!(http.get(path).body["state"]["serve"]["value"], 8, "the retry changed nothing");
    let audit = http.get("/api/flags/audit?flag=ops.counter&env=dev&action=update").body;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2, "one record for the keyed write, one for the other: {audit}");
    // The same key for another request is refused, and changes nothing.
    let other =
        http.send("PUT", path, Some(json!({"enabled": false, "serve": {"value": 1}}).to_string()), &[("idempotency-key", "retry-0001")]);
    assert_eq!((other.status, other.body["error"]["code"].clone()), (422, json!("idempotency_key_reused")));
    assert_eq!(http.get(path).body["state"]["serve"]["value"], 8);
    // A refused first attempt stores nothing: the retry is carried out.
    let stale = http.send(
        "PUT",
        path,
        Some(json!({"enabled": true, "serve": {"value": 9}}).to_string()),
        &[("idempotency-key", "retry-0002"), ("if-match", "\"1\"")],
    );
    assert_eq!(stale.status, 412);
    let again =
        http.send("PUT", path, Some(json!({"enabled": true, "serve": {"value": 9}}).to_string()), &[("idempotency-key", "retry-0002")]);
    assert_eq!((again.status, again.body["state"]["serve"]["value"].clone()), (200, json!(9)));
    let bad = http.send("PUT", path, Some(body.clone()), &[("idempotency-key", "")]);
    assert_eq!(bad.status, 400);

    // Another user (or nobody) sending the same request with the same key gets no replay of the admin's answer: keys
    // are each user's own, so the viewer's request is judged as theirs.
    server.cli(&["user", "add", "viewer@example.com", "--role", "viewer"]).ok();
    let viewer = server.cli(&["token", "create", "--user", "viewer@example.com"]).ok().stdout.trim().to_owned();
    let as_viewer = http.with_token(Some(&viewer)).send("PUT", path, Some(body.clone()), &[("idempotency-key", "retry-0001")]);
    assert_eq!(as_viewer.status, 403, "{:?}", as_viewer.body);
    let anonymous = http.with_token(None).send("PUT", path, Some(body), &[("idempotency-key", "retry-0001"), ("x-api-key", ADMIN_TOKEN)]);
    assert_eq!(anonymous.status, 401, "{:?}", anonymous.body);
}

/// A client that asks for a large answer and then reads nothing: its receive window is a few KiB, so the server
/// cannot hand the answer to the kernel and must hold it.
fn stalled_reader(server: &Server, path: &str) -> socket2::Socket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address: std::net::SocketAddr = address(server).parse().unwrap();
    socket.connect(&address.into()).unwrap();
    let mut stream: TcpStream = socket.try_clone().unwrap().into();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: vexil\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the large answer started");
    socket
}

/// Twenty JSON flags of seven 32 KB values each: `GET /api/flags` is about 6.4 MiB. Returns its size.
fn big_listing(server: &Server) -> usize {
    let big = |seed: usize| json!({"blob": format!("{seed:0>32000}")});
    for index in 0..20 {
        let variants: Vec<_> = (0..6).map(|variant| json!({"name": format!("v{variant}"), "value": big(variant)})).collect();
        let created = server
            .http()
            .post("/api/flags", &json!({"name": format!("ui.flag_{index}"), "type": "json", "default": big(index), "variants": variants}));
        assert_eq!(created.status, 201, "flag {index}: {}", created.status);
    }
    let listing = reqwest::blocking::Client::new().get(format!("{}/api/flags", server.url)).bearer_auth(ADMIN_TOKEN).send().unwrap();
    let size = listing.bytes().unwrap().len();
    assert!((6 << 20..8 << 20).contains(&size), "the listing is {size} bytes");
    size
}

#[test]
fn one_address_reading_slowly_leaves_the_others_their_large_answers_and_writes_are_always_answered() {
    // 32 MiB: one address may hold a quarter (one 6.4 MiB listing), so a second from it is refused while another
    // address still gets its answer.
    let server = Server::start_configured("response_memory_mb = 32\n");
    big_listing(&server);
    let stalled = stalled_reader(&server, "/api/flags");
    let again = server.http().send("GET", "/api/flags", None, &[]);
    assert_eq!((again.status, again.body["error"]["code"].as_str()), (503, Some("busy")), "a second one from the same address");
    let elsewhere = reqwest::blocking::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let other = elsewhere.get(format!("{}/api/flags", server.url)).bearer_auth(ADMIN_TOKEN).send().unwrap();
    assert_eq!(other.status(), 200, "another address is not kept from its answer");
    drop(stalled);
}

#[test]
fn large_answers_read_slowly_hold_bounded_memory_and_the_rest_are_told_to_retry() {
    // 8 MiB for answers of 64 KiB and more; the flag listing below is ~6.5 MiB, so one fits and a second does not,
    // and it is larger than what the kernel buffers for a client that reads nothing (4 MiB here at most).
    let server = Server::start_configured("response_memory_mb = 8\n");
    let size = big_listing(&server);

    let stalled = stalled_reader(&server, "/api/flags");
    // While it holds its share, another large answer is refused at once, saying so, and small ones still flow.
    let refused = server.http().send("GET", "/api/flags", None, &[]);
    assert_eq!(refused.status, 503, "a second large answer would pass the budget");
    assert_eq!(refused.body["error"]["code"], "busy");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("response_memory_mb"), "{:?}", refused.body["error"]);
    assert_eq!(server.http().get("/api/flags/ui.flag_7/environments/prod").status, 200);
    // A write with a large answer (a state with many targets) is answered whatever the budget holds: it is done.
    let keys: Vec<String> = (0..8000).map(|index| format!("customer-{index:05}")).collect();
    server.cli(&["define", "ui.targeted"]).ok();
    let set = server.http().put(
        "/api/flags/ui.targeted/environments/dev",
        &json!({"enabled": true, "serve": {"value": false}, "targets": [{"keys": keys, "serve": {"value": true}}]}),
        None,
    );
    assert_eq!(set.status, 200, "{:?}", set.body["error"]);
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.url)).unwrap().text().unwrap();
    assert!(metrics.contains("vexil_answers_refused_total 1"), "no refusal counted");

    // Gone, it gives its share back: the next listing is whole, with its length said up front.
    drop(stalled);
    let deadline = std::time::Instant::now() + common::MOMENT;
    loop {
        let response = reqwest::blocking::Client::new().get(format!("{}/api/flags", server.url)).bearer_auth(ADMIN_TOKEN).send().unwrap();
        if response.status() == 200 {
            let length = response.content_length();
            let bytes = response.bytes().unwrap();
            assert_eq!(length, Some(bytes.len() as u64));
            assert!(bytes.len() > size, "the whole listing, the new flag included");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stalled reader's share was never given back");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn a_bulk_answer_is_each_flag_s_single_answer_and_its_etag_follows_what_the_context_is_served() {
    let server = Server::start();
    server.cli(&["define", "ui.split"]).ok();
    server.cli(&["set", "ui.split", "--env", "dev", "--enabled", "true", "--rollout", "50"]).ok();
    let colours = server.http().post(
        "/api/flags",
        &json!({"name": "ui.colour", "type": "string", "default": "grey", "variants": [{"name": "control", "value": "grey"}, {"name": "treatment", "value": "blue"}]}),
    );
    assert_eq!(colours.status, 201);
    let rule = server.http().put(
        "/api/flags/ui.colour/environments/dev",
        &json!({"enabled": true, "serve": {"variant": "control"}, "rules": [{"conditions": [{"attribute": "plan", "operator": "equals", "values": ["pro"]}], "serve": {"variant": "treatment"}}]}),
        None,
    );
    assert_eq!(rule.status, 200);
    server.cli(&["define", "ui.off"]).ok();
    let key = common::sdk_key_for(&server, "dev");
    let sdk = server.http().with_token(Some(&key));
    let contexts = [json!({"targetingKey": "user-1", "plan": "pro"}), json!({"targetingKey": "user-2"}), json!({"plan": "pro"})];
    let mut etags = Vec::new();
    for context in &contexts {
        let bulk = sdk.post("/ofrep/v1/evaluate/flags", &json!({"context": context}));
        assert_eq!(bulk.status, 200);
        for entry in bulk.body["flags"].as_array().unwrap() {
            let flag = entry["key"].as_str().unwrap();
            let single = sdk.post(&format!("/ofrep/v1/evaluate/flags/{flag}"), &json!({"context": context}));
            assert_eq!(&single.body, entry, "{flag} for {context}");
        }
        let etag = bulk.etag.clone().expect("a bulk answer has an ETag");
        let again =
            sdk.send("POST", "/ofrep/v1/evaluate/flags", Some(json!({"context": context}).to_string()), &[("if-none-match", &etag)]);
        assert_eq!(again.status, 304, "same context, same answer");
        etags.push(etag);
    }
    // A context without a targeting key gets the split's failure in place of its answer, and its own ETag.
    assert_eq!(etags.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "{etags:?}");
    let keyless = sdk.post("/ofrep/v1/evaluate/flags", &json!({"context": {"plan": "pro"}}));
    let split = keyless.body["flags"].as_array().unwrap().iter().find(|entry| entry["key"] == "ui.split").unwrap().clone();
    assert_eq!(split["errorCode"], "TARGETING_KEY_MISSING", "{split}");
}

#[test]
fn an_idempotent_write_whose_answer_is_too_large_to_keep_is_answered_and_its_retry_learns_it_was_done() {
    // Round 13: an answer over the 1 MiB kept for replays made the write answer 500 although it was committed.
    let server = Server::start();
    let keys: Vec<String> = (0..9000).map(|index| format!("customer-{index:05}")).collect();
    let mut flags = serde_json::Map::new();
    for index in 0..8 {
        let flag = format!("ui.big_{index}");
        server.cli(&["define", &flag]).ok();
        flags.insert(flag, json!({"enabled": true, "serve": {"value": false}, "targets": [{"keys": keys, "serve": {"value": true}}]}));
    }
    let document = json!({"format": "vexil.states", "version": 1, "environment": "staging", "flags": flags});
    let body = json!({"document": document}).to_string();
    let http = server.http();
    let first = http.send("POST", "/api/environments/dev/import", Some(body.clone()), &[("idempotency-key", "big-import-1")]);
    assert_eq!((first.status, first.body["applied"].as_bool()), (200, Some(true)), "{:?}", first.body.get("error"));
    assert!(serde_json::to_vec(&first.body).unwrap().len() > 1 << 20, "the answer is larger than what is kept");
    let retry = http.send("POST", "/api/environments/dev/import", Some(body), &[("idempotency-key", "big-import-1")]);
    assert_eq!((retry.status, retry.body["outcome"].as_str()), (200, Some("done")), "{:?}", retry.body);
    assert_eq!(common::audit_entries(&server, "action=import").len(), 8, "done once");
}
