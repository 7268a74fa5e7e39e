//! Client-side keys (`vexil token create --client --env E`), for code anyone can read (a browser bundle): they evaluate
//! flags for the context they send and report metrics, in one environment, and never see a rule, a targeting key,
//! another user's answer, an owner or who changed what.

mod common;

use common::{ADMIN_TOKEN, Server};
use serde_json::json;

/// The raw bytes of an answer, so nothing is missed by reading it as JSON.
fn raw(server: &Server, method: &str, path: &str, key: &str, body: Option<&serde_json::Value>) -> (u16, String) {
    let client = reqwest::blocking::Client::new();
    let mut request =
        client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", server.url)).bearer_auth(key);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().expect("the server answers");
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn a_client_key_evaluates_for_its_context_and_never_sees_rules_targets_or_people() {
    let server = Server::start();
    let http = server.http();
    let define = json!({"name": "ui.checkout", "type": "string", "owner": "owner-team@asimo.io",
        "variants": [{"name": "control", "value": "control"}, {"name": "treatment", "value": "treatment"}]});
    assert_eq!(http.send("POST", "/api/flags", Some(define.to_string()), &[]).status, 201);
    let state = json!({"enabled": true, "serve": {"variant": "control"},
        "targets": [{"keys": ["alice@customer.example", "tenant-4711"], "serve": {"variant": "treatment"}}],
        "rules": [{"description": "secret staff rule", "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@asimo.io"]}], "serve": {"variant": "treatment"}}],
        "split": {"buckets": [{"serve": {"variant": "treatment"}, "weight": 50000}, {"serve": {"variant": "control"}, "weight": 50000}]}});
    let put = http.send("PUT", "/api/flags/ui.checkout/environments/prod", Some(json!({"reason": "launch", "enabled": true, "serve": state["serve"], "targets": state["targets"], "rules": state["rules"], "split": state["split"]}).to_string()), &[]);
    assert_eq!(put.status, 200, "{:?}", put.body);

    let key = server.cli(&["token", "create", "--client", "--env", "prod", "--name", "web bundle"]).ok().stdout.trim().to_owned();
    assert!(key.starts_with("vxc_"), "a client-side key: {key}");
    let listed = http.get("/api/tokens").body;
    assert!(listed.as_array().unwrap().iter().any(|token| token["kind"] == "client" && token["environment"] == "prod"), "{listed}");

    // It evaluates for the context it sends, one flag or all of them.
    let context = json!({"context": {"targetingKey": "bob", "email": "bob@example.com"}});
    let (status, single) = raw(&server, "POST", "/ofrep/v1/evaluate/flags/ui.checkout", &key, Some(&context));
    assert_eq!(status, 200, "{single}");
    let (status, bulk) = raw(&server, "POST", "/ofrep/v1/evaluate/flags", &key, Some(&context));
    assert_eq!(status, 200, "{bulk}");
    let staff = json!({"context": {"targetingKey": "carol", "email": "carol@asimo.io"}});
    let (_, matched) = raw(&server, "POST", "/ofrep/v1/evaluate/flags/ui.checkout", &key, Some(&staff));
    assert!(matched.contains("\"treatment\""), "the rule applies to the context sent: {matched}");
    for answer in [&single, &bulk, &matched] {
        for secret in ["alice", "tenant-4711", "@asimo.io", "secret staff rule", "owner-team", "admin@localhost", "ends_with", "launch"] {
            assert!(!answer.contains(secret), "an answer to a client-side key names `{secret}`: {answer}");
        }
    }

    // It reports metrics (the guard sees browser traffic).
    let batch = json!({"flags": {"ui.checkout": {"variants": {"treatment": {"evaluations": 10, "errors": 1}}}}});
    assert_eq!(raw(&server, "POST", "/api/feature-flags/metrics", &key, Some(&batch)).0, 202);

    // It never reads the stream (every rule and targeting key), of its environment or another, nor the API.
    let (status, refusal) = raw(&server, "GET", "/api/feature-flags/stream?env=prod", &key, None);
    assert_eq!(status, 403, "{refusal}");
    assert!(refusal.contains("client-side key") && refusal.contains("vexil token create --sdk"), "{refusal}");
    assert_eq!(raw(&server, "GET", "/api/feature-flags/stream?env=staging", &key, None).0, 403);
    assert_eq!(raw(&server, "GET", "/api/feature-flags/stream?env=prod&token=ignored", &key, None).0, 403);
    for path in [
        "/api/flags",
        "/api/flags/ui.checkout",
        "/api/flags/audit",
        "/api/environments/prod/export",
        "/api/flags/ui.checkout/environments/prod",
    ] {
        let (status, body) = raw(&server, "GET", path, &key, None);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("alice"), "{path}: {body}");
    }
    // A server-side SDK key of the same environment still gets the full stream.
    let sdk = common::sdk_key_for(&server, "prod");
    assert!(common::Stream::open(&server, "env=prod", &sdk, None).is_ok());

    // Making one takes the right to change its environment, as for an SDK key: a developer may for dev, not for prod.
    common::cli(
        &server.url,
        Some(ADMIN_TOKEN),
        &["user", "add", "dev@example.com", "--role", "developer", "--password-stdin"],
        Some("developer password\n"),
    )
    .expect_code(0);
    let developer = server.cli(&["token", "create", "--user", "dev@example.com"]).ok().stdout.trim().to_owned();
    assert!(server.cli_as(&developer, &["token", "create", "--client", "--env", "dev"]).ok().stdout.trim().starts_with("vxc_"));
    let refused = server.cli_as(&developer, &["token", "create", "--client", "--env", "prod"]);
    assert_ne!(refused.code, 0, "{refused:?}");
}

/// An answer's status, headers and raw body, sending `headers` (an `Origin`, an `If-None-Match`).
fn exchange(
    server: &Server,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: &serde_json::Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::blocking::Client::new();
    let mut request = client.post(format!("{}{path}", server.url)).bearer_auth(key).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body.to_string()).send().expect("the server answers");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().unwrap())
}

#[test]
fn a_client_key_with_allowed_origins_answers_only_their_pages() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let key = server
        .cli(&["token", "create", "--client", "--env", "prod", "--origin", "https://shop.example.com", "--origin", "http://localhost:5173"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let listed = server.http().get("/api/tokens").body;
    let made = listed.as_array().unwrap().iter().find(|token| token["kind"] == "client").unwrap();
    assert_eq!(made["origins"], json!(["https://shop.example.com", "http://localhost:5173"]), "{listed}");
    let entry = &common::audit_entries(&server, "action=token_create")[0];
    assert_eq!(entry["after"]["origins"], json!(["https://shop.example.com", "http://localhost:5173"]), "{entry}");

    let context = json!({"context": {"targetingKey": "u1"}});
    let bulk = "/ofrep/v1/evaluate/flags";
    assert_eq!(exchange(&server, bulk, &key, &[("origin", "https://shop.example.com")], &context).0, 200);
    assert_eq!(exchange(&server, bulk, &key, &[("origin", "http://localhost:5173")], &context).0, 200);
    // A server or curl sends no Origin: an origin list limits where a key works in browsers.
    assert_eq!(exchange(&server, bulk, &key, &[], &context).0, 200);
    for path in [bulk, "/ofrep/v1/evaluate/flags/ui.new_feature"] {
        let (status, headers, body) = exchange(&server, path, &key, &[("origin", "https://copycat.example")], &context);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("origin_not_allowed") && body.contains("https://shop.example.com"), "{body}");
        assert!(!body.contains("ui.new_feature\""), "a refusal evaluates nothing: {body}");
        assert!(headers.get("access-control-allow-origin").is_none_or(|origin| origin == "*"), "{headers:?}");
    }
    let batch = json!({"flags": {"ui.new_feature": {"variants": {"false": {"evaluations": 3, "errors": 0}}}}});
    assert_eq!(exchange(&server, "/api/feature-flags/metrics", &key, &[("origin", "https://copycat.example")], &batch).0, 403);
    assert_eq!(exchange(&server, "/api/feature-flags/metrics", &key, &[("origin", "https://shop.example.com")], &batch).0, 202);

    // What an origin is, refused before anything is made.
    let before = server.http().get("/api/tokens").body.as_array().unwrap().len();
    for (origin, field) in
        [("https://shop.example.com/", "origins[0]"), ("shop.example.com", "origins[0]"), ("https://*.example.com", "origins[0]")]
    {
        let answer = server.http().post("/api/tokens", &json!({"kind": "client", "environment": "prod", "origins": [origin]}));
        assert_eq!(answer.status, 422, "{origin}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["field"], field, "{:?}", answer.body);
        assert!(answer.body["error"]["message"].as_str().unwrap().contains("https://app.example.com"), "{:?}", answer.body);
    }
    let sdk = server.http().post("/api/tokens", &json!({"kind": "sdk", "environment": "prod", "origins": ["https://shop.example.com"]}));
    assert_eq!(sdk.status, 400, "SDK keys do not go in pages: {:?}", sdk.body);
    assert_eq!(server.http().get("/api/tokens").body.as_array().unwrap().len(), before, "nothing was made");
    let refused = server.cli(&["token", "create", "--sdk", "--env", "prod", "--origin", "https://shop.example.com"]);
    assert_eq!(refused.code, 2, "{refused:?}");
}

#[test]
fn ofrep_change_notices_tell_a_client_key_to_fetch_again_and_name_nothing() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature", "--description", "the secret launch"]).ok();
    let key = server.cli(&["token", "create", "--client", "--env", "prod"]).ok().stdout.trim().to_owned();
    let context = json!({"context": {"targetingKey": "u1"}});

    // The bulk answer says where its change notices are (OFREP ADR-0008).
    let (status, headers, body) = exchange(&server, "/ofrep/v1/evaluate/flags", &key, &[], &context);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let streams = answer["eventStreams"].as_array().expect("eventStreams");
    assert_eq!(streams.len(), 1, "{answer}");
    assert_eq!(streams[0]["type"], "sse");
    assert_eq!(streams[0]["inactivityDelaySec"], 120);
    let uri = streams[0]["endpoint"]["requestUri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("/ofrep/v1/events?ticket="), "{uri}");
    assert!(!uri.contains(&key), "the URL does not carry the key itself: {uri}");
    assert_eq!(answer["flags"][0]["key"], "ui.new_feature", "{answer}");
    let etag = headers["etag"].to_str().unwrap().to_owned();

    // The stream opens with a notice of the current revision, then one per change; a notice names nothing.
    let notices = common::Stream::open_at(&server, &uri, None, None).expect("the ticket opens the notices");
    let first = notices.next();
    assert_eq!(first.data, json!({"type": "refetchEvaluation", "etag": format!("\"{}\"", first.id.unwrap())}));
    server.cli(&["enable", "ui.new_feature", "--env", "prod", "--reason", "launch", "--yes"]).ok();
    let notice = notices.next();
    assert!(notice.id.unwrap() > first.id.unwrap(), "{notice:?}");
    assert_eq!(notice.data["type"], "refetchEvaluation");
    assert_eq!(notice.data.as_object().unwrap().len(), 2, "a type and an etag, nothing else: {notice:?}");

    // Fetching again as told gets the change; asking again with the new ETag is 304.
    let refetch = format!("/ofrep/v1/evaluate/flags?flagConfigEtag={}", notice.data["etag"].as_str().unwrap().replace('"', "%22"));
    let (status, headers, body) = exchange(&server, &refetch, &key, &[("if-none-match", &etag)], &context);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"value\":true"), "{body}");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(exchange(&server, "/ofrep/v1/evaluate/flags", &key, &[("if-none-match", &etag)], &context).0, 304);

    // A change that serves this context nothing new (what a disabled flag would serve once turned on) is a notice, then a
    // bodyless 304.
    server.cli(&["define", "ui.other"]).ok();
    let (_, headers, _) = exchange(&server, "/ofrep/v1/evaluate/flags", &key, &[], &context);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let defined = notices.next();
    server.cli(&["set", "ui.other", "--env", "prod", "--value", "false", "--reason", "not yet", "--yes"]).ok();
    let armed = notices.next();
    assert!(armed.id > defined.id, "{armed:?}");
    let (status, _, body) = exchange(&server, "/ofrep/v1/evaluate/flags", &key, &[("if-none-match", &etag)], &context);
    assert_eq!(status, 304, "a disabled flag still serves false: {body}");
    let answer = server.http().get("/api/flags/ui.other/environments/prod").body;
    assert_eq!((answer["state"]["enabled"].clone(), answer["state"]["serve"]["value"].clone()), (json!(false), json!(false)), "{answer}");

    // A client that already heard of the current revision gets no notice on reconnecting: only the next change.
    let resumed = common::Stream::open_at(&server, &uri, None, armed.id).unwrap();
    server.cli(&["disable", "ui.new_feature", "--env", "prod", "--reason", "incident", "--yes"]).ok();
    let next = resumed.next();
    assert!(next.id.unwrap() > armed.id.unwrap(), "{next:?}");

    // The key itself opens the notices too (a client that sends headers), and neither names a flag or a person.
    let direct = common::Stream::open_at(&server, "/ofrep/v1/events", Some(&key), None).unwrap();
    assert_eq!(direct.next().data["type"], "refetchEvaluation");
    for secret in ["ui.new_feature", "secret launch", "admin@localhost", "incident"] {
        assert!(!format!("{first:?}{notice:?}{next:?}").contains(secret), "a notice names `{secret}`");
    }

    // A made-up ticket, a personal token's and a revoked key's open nothing.
    assert_eq!(common::Stream::open_at(&server, "/ofrep/v1/events?ticket=00ff", None, None).err(), Some(401));
    assert_eq!(common::Stream::open_at(&server, "/ofrep/v1/events", Some(ADMIN_TOKEN), None).err(), Some(403));
    let id = server.http().get("/api/tokens").body.as_array().unwrap().iter().find(|token| token["kind"] == "client").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.cli(&["token", "revoke", &id]).ok();
    assert_eq!(common::Stream::open_at(&server, &uri, None, None).err(), Some(401));
    // The open stream ends within a heartbeat.
    let ended = loop {
        match notices.events.recv_timeout(common::MOMENT * 4).expect("the stream ends") {
            None => break true,
            Some(_) => continue,
        }
    };
    assert!(ended);
}

#[test]
fn what_one_address_reports_with_a_client_side_key_is_bounded() {
    let server = Server::start_configured("metrics_client_evaluations_per_minute = 100\n");
    server.cli(&["define", "ui.new_feature"]).ok();
    let client = server.cli(&["token", "create", "--client", "--env", "dev"]).ok().stdout.trim().to_owned();
    let sdk = common::sdk_key_for(&server, "dev");
    let batch = |evaluations: u64| json!({"flags": {"ui.new_feature": {"variants": {"false": {"evaluations": evaluations, "errors": 0}}}}});
    let metrics = "/api/feature-flags/metrics";
    let (status, _, body) = exchange(&server, metrics, &client, &[], &batch(60));
    assert_eq!(status, 202, "{body}");
    // One network's vote: of its 60, the share of the hour counts (500 / 20 = 25, guard_client_networks).
    assert!(body.contains(r#""capped":["ui.new_feature/false"]"#), "{body}");
    let (status, _, body) = exchange(&server, metrics, &client, &[], &batch(60));
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("metrics_client_evaluations_per_minute") && body.contains("nothing was counted"), "{body}");
    // A server-side SDK key is not bounded by address: a service reports for all its users from one place.
    assert_eq!(exchange(&server, metrics, &sdk, &[], &batch(1000)).0, 202);
    let totals = server.http().get("/api/flags/ui.new_feature/environments/dev/metrics?since=10m").body;
    assert_eq!(totals["totals"]["false"]["evaluations"], 1025, "the refused batch counted nothing: {totals}");
}

/// A key in a URL ends up in proxies' and servers' logs: only the streams take one there (EventSource cannot send
/// headers), and the metrics a page's `sendBeacon` sends as it goes away, with its client-side key (public anyway);
/// evaluations want it in a header, and a server-side key is never read from a URL.
#[test]
fn keys_in_the_query_string_are_taken_only_by_the_streams() {
    let server = Server::start();
    server.cli(&["define", "ui.new_feature"]).ok();
    let client = server.cli(&["token", "create", "--client", "--env", "prod"]).ok().stdout.trim().to_owned();
    let sdk = common::sdk_key_for(&server, "prod");
    let http = server.http().with_token(None);
    let context = json!({"context": {"targetingKey": "u1"}}).to_string();
    for key in [&client, &sdk] {
        for path in ["/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/ui.new_feature"] {
            let answer = http.send("POST", &format!("{path}?token={key}"), Some(context.clone()), &[]);
            assert_eq!(answer.status, 401, "{path}: {:?}", answer.body);
        }
    }
    let batch = json!({"flags": {"ui.new_feature": {"variants": {"false": {"evaluations": 1}}}}}).to_string();
    let beacon = http.send("POST", &format!("/api/feature-flags/metrics?token={client}"), Some(batch.clone()), &[]);
    assert_eq!(beacon.status, 202, "{:?}", beacon.body);
    let refused = http.send("POST", &format!("/api/feature-flags/metrics?token={sdk}"), Some(batch), &[]);
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("Authorization: Bearer"), "{:?}", refused.body);
    // The streams still take it, for EventSource.
    assert!(common::Stream::open_at(&server, &format!("/api/feature-flags/stream?env=prod&token={sdk}"), None, None).is_ok());
    let events = reqwest::blocking::get(format!("{}/ofrep/v1/events?token={client}", server.url)).unwrap();
    assert_eq!(events.status().as_u16(), 200);
}
