//! The guard's window after a change in a protected environment, on a running server: metrics in, rollback out
//! through the audit trail and the stream, and the report that explains each look.
//!
//! Metrics from before a change are posted with `"start"` a few minutes back (the API files them in that minute),
//! which is how these tests control the clock the guard reads. Waiting is on events and on the guard's own report
//! (its `checked_at` passing the moment the counts were posted), never on a fixed delay.

mod common;

use std::time::{Duration, Instant};

use common::{Server, Stream};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vexil_sdk::{Context, FlagEvent, VexilClient};

const CONFIG: &str = "guard_check_seconds = 1\nguard_min_evaluations = 200\nguard_window_seconds = 600\n";

/// Now, to the second as the server writes times, so comparing the texts compares the moments.
fn now_text() -> String {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

fn minutes_ago(minutes: i64) -> String {
    (OffsetDateTime::now_utc() - time::Duration::minutes(minutes)).format(&Rfc3339).unwrap()
}

fn post_metrics(server: &Server, key: &str, batch: &Value) {
    let answer = server.http().with_token(Some(key)).post("/api/feature-flags/metrics", batch);
    assert_eq!(answer.status, 202, "{:?}", answer.body);
}

/// The guard's report on `flag` in prod once it has looked after `after` (an RFC 3339 moment).
fn report_after(server: &Server, flag: &str, after: &str) -> Value {
    let deadline = Instant::now() + common::MOMENT;
    loop {
        let answer = server.http().get(&format!("/api/flags/{flag}/environments/prod/guard")).body;
        let checked = answer["report"]["checked_at"].as_str().unwrap_or("");
        if checked > after {
            return answer;
        }
        assert!(Instant::now() < deadline, "the guard did not look at {flag} within a moment: {answer}");
        // Asking again is the wait; the guard looks every second.
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// A server with `ui.search_v2` defined (off everywhere), an SDK key of prod, and prod's history: five minutes ago,
/// while the flag was off, 1 % of 2 000 requests failed.
fn server_with_history() -> (Server, String) {
    let server = Server::start_configured(CONFIG);
    server.cli(&["define", "ui.search_v2"]).ok();
    let key = common::sdk_key_for(&server, "prod");
    post_metrics(
        &server,
        &key,
        &json!({"start": minutes_ago(5), "flags": {"ui.search_v2": {"variants": {"false": {"evaluations": 2000, "errors": 20}}}}}),
    );
    (server, key)
}

#[test]
fn a_production_change_whose_new_variant_errors_more_than_before_is_undone_by_the_guard() {
    let (server, key) = server_with_history();
    let stream = Stream::open(&server, "env=prod", &key, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    server.cli(&["enable", "ui.search_v2", "--env", "prod", "--yes", "--reason", "launch search v2"]).ok();
    assert_eq!(stream.next().data["state"]["enabled"], true);

    // Since the change, the new variant fails 10 % of the time.
    post_metrics(&server, &key, &json!({"flags": {"ui.search_v2": {"variants": {"true": {"evaluations": 400, "errors": 40}}}}}));
    let rolled_back = stream.next();
    assert_eq!(rolled_back.data["state"]["updated_by"], "system:guard");
    assert_eq!(rolled_back.data["state"]["enabled"], false, "the state from before the change is back");

    let audit = server.http().get("/api/flags/audit?flag=ui.search_v2&environment=prod").body;
    let latest = &audit["entries"][0];
    assert_eq!((latest["action"].as_str(), latest["user"].as_str()), (Some("rollback"), Some("system:guard")));
    let reason = latest["reason"].as_str().unwrap();
    assert!(reason.contains("10.00 % (40/400)") && reason.contains("1.00 % (20/2000) before the change"), "{reason}");
    assert!(reason.contains("z = ") && reason.contains("z-test"), "{reason}");
    assert_eq!(latest["before"]["enabled"], true);
    assert_eq!(audit["entries"][1]["reason"], "launch search v2");
    let after = now_text();
    let report = report_after(&server, "ui.search_v2", &after);
    assert_eq!(report["report"]["decision"], "a rollback is never rolled back", "{report}");
}

#[test]
fn the_guard_explains_its_looks_and_leaves_healthy_changes_disables_and_other_environments_alone() {
    let (server, key) = server_with_history();
    // A flag just defined is off: the guard says so rather than that someone turned it off.
    let defined = report_after(&server, "ui.search_v2", &now_text());
    assert_eq!(defined["report"]["decision"], "the flag was just defined, off: it serves nothing new to judge", "{defined}");
    server.cli(&["enable", "ui.search_v2", "--env", "prod", "--yes", "--reason", "launch"]).ok();

    // Too few evaluations since the change: nothing is decided, and the report says it waits.
    post_metrics(&server, &key, &json!({"flags": {"ui.search_v2": {"variants": {"true": {"evaluations": 150, "errors": 60}}}}}));
    let posted = now_text();
    let waiting = report_after(&server, "ui.search_v2", &posted);
    assert_eq!(waiting["watched"], true);
    assert_eq!(waiting["report"]["watching"], "change");
    assert_eq!(waiting["report"]["candidate"], json!(["true"]));
    assert_eq!(waiting["report"]["decision"], "waiting for data", "{waiting}");

    // Enough of them, at the old rate: healthy, and the flag stays on.
    post_metrics(&server, &key, &json!({"flags": {"ui.search_v2": {"variants": {"true": {"evaluations": 3000, "errors": 0}}}}}));
    let posted = now_text();
    let healthy = report_after(&server, "ui.search_v2", &posted);
    assert_eq!(healthy["report"]["decision"], "healthy", "{healthy}");
    let before = &healthy["report"]["comparisons"][1];
    assert_eq!(before["against"], "before the change");
    assert_eq!((before["candidate"]["evaluations"].as_u64(), before["baseline"]["evaluations"].as_u64()), (Some(3150), Some(2000)));
    let state = server.http().get("/api/flags/ui.search_v2/environments/prod").body;
    assert_eq!((state["state"]["enabled"].as_bool(), state["state"]["version"].as_u64()), (Some(true), Some(2)), "{state}");

    // Turning a flag off is never undone, however bad the numbers look afterwards.
    server.cli(&["disable", "ui.search_v2", "--env", "prod", "--reason", "Incident #123"]).ok();
    post_metrics(&server, &key, &json!({"flags": {"ui.search_v2": {"variants": {"false": {"evaluations": 1000, "errors": 900}}}}}));
    let posted = now_text();
    let off = report_after(&server, "ui.search_v2", &posted);
    assert!(off["report"]["decision"].as_str().unwrap().contains("turned the flag off"), "{off}");
    assert_eq!(server.http().get("/api/flags/ui.search_v2/environments/prod").body["state"]["enabled"], false);

    // Outside protected environments only rollouts are watched.
    let staging = server.http().get("/api/flags/ui.search_v2/environments/staging/guard").body;
    assert_eq!((staging["watched"].as_bool(), staging["settings"]["window_seconds"].as_u64()), (Some(false), Some(0)));

    // Bad times are refused and change nothing.
    let refused = server.http().with_token(Some(&key)).post(
        "/api/feature-flags/metrics",
        &json!({"start": minutes_ago(600), "flags": {"ui.search_v2": {"variants": {"true": {"evaluations": 5}}}}}),
    );
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    let refused = server.http().with_token(Some(&key)).post(
        "/api/feature-flags/metrics",
        &json!({"start": "yesterday", "flags": {"ui.search_v2": {"variants": {"true": {"evaluations": 5}}}}}),
    );
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("RFC 3339"), "{:?}", refused.body);
}

/// The whole loop with the real SDK: the application counts and reports errors, the SDK sends them, the guard
/// undoes the change, and the SDK's cache gets the rollback like any change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_reported_through_the_sdk_make_the_guard_undo_a_production_change_and_the_sdk_sees_it() {
    let server = Server::start_configured(CONFIG);
    let cli = |args: &[&str]| tokio::task::block_in_place(|| server.cli(args).ok());
    cli(&["define", "ui.checkout_v2"]);
    cli(&[
        "set",
        "ui.checkout_v2",
        "--env",
        "prod",
        "--rollout",
        "20",
        "--enabled",
        "true",
        "--yes",
        "--reason",
        "try checkout v2 on 20 %",
    ]);
    let key = tokio::task::block_in_place(|| common::sdk_key_for(&server, "prod"));
    let client = VexilClient::builder(&server.url, "prod", &key)
        .environment_variables(Vec::<(String, String)>::new())
        .without_dotenv()
        .metrics_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    client.wait_ready(common::MOMENT).await.unwrap();
    let mut events = client.subscribe();

    // The application: every request evaluates the flag; v2 fails one request in five, v1 one in a hundred.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut request = 0u64;
    let rollback = loop {
        for _ in 0..200 {
            request += 1;
            let context = Context::new(format!("user-{request}"));
            let v2 = client.bool_value("ui.checkout_v2", &context, false);
            let fails = if v2 { request.is_multiple_of(5) } else { request.is_multiple_of(100) };
            if fails {
                client.report_error("ui.checkout_v2", &context);
            }
        }
        match tokio::time::timeout(Duration::from_millis(50), events.recv()).await {
            Ok(Ok(event @ FlagEvent::Changed { .. })) if event.concerns("ui.checkout_v2") => break event,
            Ok(_) | Err(_) => assert!(tokio::time::Instant::now() < deadline, "no rollback after {request} requests"),
        }
    };
    assert!(matches!(rollback, FlagEvent::Changed { .. }));
    let details = client.bool_details("ui.checkout_v2", &Context::new("user-1"), true);
    assert!(!details.value, "back to the state before the 20 % rollout");
    let audit =
        tokio::task::block_in_place(|| server.http().get("/api/flags/audit?flag=ui.checkout_v2&environment=prod&action=rollback").body);
    assert_eq!(audit["entries"][0]["user"], "system:guard");
    let reason = audit["entries"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("new variant (true)") && reason.contains("for the old one since the change"), "{reason}");
}

/// A client-side key is public, so its counts are a bounded vote per network: one place reporting thousands of
/// failures cannot undo a production change (nor could thousands of healthy evaluations from it release a held step),
/// while the same failure rate from enough distinct networks does undo it.
#[test]
fn client_side_counts_weigh_one_bounded_share_per_network_so_one_place_cannot_steer_the_guard() {
    // Behind a proxy the server trusts, so the test can speak for many networks; a share is 200 / 10 = 20 per hour.
    let config = format!("{CONFIG}guard_client_networks = 10\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]\n");
    let server = Server::start_configured(&config);
    server.cli(&["define", "ui.search_v2"]).ok();
    let sdk = common::sdk_key_for(&server, "prod");
    post_metrics(
        &server,
        &sdk,
        &json!({"start": minutes_ago(5), "flags": {"ui.search_v2": {"variants": {"false": {"evaluations": 2000, "errors": 20}}}}}),
    );
    let client = server.cli(&["token", "create", "--client", "--env", "prod"]).ok().stdout.trim().to_owned();
    let stream = Stream::open(&server, "env=prod", &sdk, None).unwrap();
    assert_eq!(stream.next().name, "snapshot");
    server.cli(&["enable", "ui.search_v2", "--env", "prod", "--yes", "--reason", "launch search v2"]).ok();
    assert_eq!(stream.next().data["state"]["enabled"], true);

    let report_from = |network: &str, evaluations: u64, errors: u64| {
        let batch = json!({"flags": {"ui.search_v2": {"variants": {"true": {"evaluations": evaluations, "errors": errors}}}}});
        let answer = server.http().with_token(Some(&client)).send(
            "POST",
            "/api/feature-flags/metrics",
            Some(batch.to_string()),
            &[("x-forwarded-for", network)],
        );
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        answer.body
    };
    // One network says half of 5 000 evaluations failed: 20 of them count, with their rate, and the guard waits.
    let answer = report_from("198.51.100.7", 5000, 2500);
    assert_eq!(answer["capped"], json!(["ui.search_v2/true"]), "{answer}");
    let again = report_from("198.51.100.7", 5000, 2500);
    assert_eq!((again["accepted"].as_u64(), &again["capped"]), (Some(0), &json!(["ui.search_v2/true"])), "{again}");
    let waiting = report_after(&server, "ui.search_v2", &now_text());
    assert_eq!(waiting["report"]["decision"], "waiting for data", "{waiting}");
    let counted = &waiting["report"]["comparisons"][1]["candidate"];
    assert_eq!((counted["evaluations"].as_u64(), counted["errors"].as_u64()), (Some(20), Some(10)), "{waiting}");
    let state = server.http().get("/api/flags/ui.search_v2/environments/prod").body;
    assert_eq!(state["state"]["enabled"], true, "one network cannot undo the change: {state}");

    // Nine more networks, an IPv6 /64 among them, with the same failure rate: ten votes, and the change is undone.
    for network in (1..=8).map(|host| format!("203.0.113.{host}")).chain(["2001:db8:7:1::1".to_owned()]) {
        let answer = report_from(&network, 100, 50);
        assert_eq!(answer["capped"], json!(["ui.search_v2/true"]), "{answer}");
    }
    // Another address of the same /64 is the same network: its share is spent.
    assert_eq!(report_from("2001:db8:7:1::2", 100, 50)["accepted"], 0);
    let rolled_back = stream.next();
    assert_eq!(rolled_back.data["state"]["updated_by"], "system:guard");
    let audit = server.http().get("/api/flags/audit?flag=ui.search_v2&environment=prod&action=rollback").body;
    let reason = audit["entries"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("50.00 % (100/200)"), "{reason}");
}
