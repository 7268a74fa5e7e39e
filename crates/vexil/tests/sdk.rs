//! The Rust SDK against the real server: changes made with the CLI reach the SDK's cache, the override table holds
//! on a real snapshot, a restarted server is found again and the stream resumes by `Last-Event-ID`, and a bootstrap
//! file carries an application through a server that is down.
//!
//! Nothing here sleeps to synchronise: each step waits for the event it expects (a change notification, a status),
//! with a generous timeout that only matters when something is broken.

mod common;

use std::time::Duration;

use common::{Server, sdk_key_for, start_on_address};
use tokio::sync::broadcast;
use vexil_sdk::{Context, ErrorKind, FlagEvent, FlagName, OverrideLayer, Reason, SdkError, Source, Status, VexilClient};

/// How long a test waits for something that should happen "within a moment".
const MOMENT: Duration = Duration::from_secs(15);

/// Runs the CLI from async code: the call blocks on a child process, so tell the runtime to move other tasks away.
fn cli(server: &Server, args: &[&str]) -> common::Outcome {
    tokio::task::block_in_place(|| server.cli(args)).ok()
}

/// An SDK key for `environment`, made with the CLI.
fn sdk_key(server: &Server, environment: &str) -> String {
    tokio::task::block_in_place(|| sdk_key_for(server, environment))
}

/// A client of `environment` with no `FF_` overrides from the test process or its directory.
fn client(server: &Server, environment: &str, key: &str) -> VexilClient {
    VexilClient::builder(&server.url, environment, key)
        .environment_variables(Vec::<(String, String)>::new())
        .without_dotenv()
        .build()
        .expect("the client builds")
}

/// The next notification that concerns `flag`.
async fn next_event_for(events: &mut broadcast::Receiver<FlagEvent>, flag: &str) -> FlagEvent {
    tokio::time::timeout(MOMENT, async {
        loop {
            let event = events.recv().await.expect("the client is alive and this test keeps up");
            if event.concerns(flag) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no change of {flag} reached the SDK within {MOMENT:?}"))
}

/// Waits until the client's status is `wanted`.
async fn wait_for_status(client: &VexilClient, wanted: Status) {
    let mut updates = client.status_updates();
    tokio::time::timeout(MOMENT, updates.wait_for(|status| *status == wanted))
        .await
        .unwrap_or_else(|_| panic!("the client did not become {wanted} (it is {})", client.status()))
        .expect("the client is alive");
}

fn flag(name: &str) -> FlagName {
    FlagName::parse(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_with_the_cli_reaches_the_sdk_cache() {
    let server = Server::start();
    cli(&server, &["define", "ui.new_feature", "--type", "boolean"]);
    let key = sdk_key(&server, "staging");
    let client = client(&server, "staging", &key);
    client.wait_ready(MOMENT).await.expect("the SDK receives the initial snapshot");
    assert_eq!(client.flag_names(), [flag("ui.new_feature")]);
    assert_eq!(client.environment(), "staging");
    let context = Context::new("user-1");
    let details = client.bool_details("ui.new_feature", &context, true);
    assert_eq!((details.value, details.source, details.reason), (false, Source::StoredState, Reason::Disabled));
    let revision = client.revision().expect("a revision once ready");
    // A handle read before the change must not keep answering from what it cached then.
    let handle = client.flag::<bool>("ui.new_feature");
    assert!(!handle.value(&context, true));

    let mut events = client.subscribe();
    cli(&server, &["enable", "ui.new_feature", "--env", "staging"]);
    let event = next_event_for(&mut events, "ui.new_feature").await;
    assert_eq!(event, FlagEvent::Changed { flag: flag("ui.new_feature"), revision: revision + 1 });
    let details = client.bool_details("ui.new_feature", &context, false);
    assert_eq!((details.value, details.reason, details.variant.as_deref()), (true, Reason::Static, Some("true")));
    assert!(handle.value(&context, false), "the handle sees the change");
    assert_eq!(handle.details(&context, false).reason, Reason::Static);
    assert_eq!(client.revision(), Some(revision + 1));

    // A rollout is evaluated locally by the engine: sticky per targeting key, and a mix over many keys.
    cli(&server, &["set", "ui.new_feature", "--env", "staging", "--rollout", "50"]);
    next_event_for(&mut events, "ui.new_feature").await;
    let answers: Vec<bool> =
        (0..200).map(|user| client.bool_value("ui.new_feature", &Context::new(format!("user-{user}")), false)).collect();
    assert!(answers.iter().any(|on| *on) && answers.iter().any(|on| !*on), "a 50 % rollout serves both values");
    assert_eq!(client.bool_details("ui.new_feature", &Context::new("user-7"), false).reason, Reason::Split);
    let again: Vec<bool> = (0..200).map(|user| client.bool_value("ui.new_feature", &Context::new(format!("user-{user}")), false)).collect();
    assert_eq!(answers, again, "splits are sticky");

    // A flag defined after the client connected arrives as a change too, with its registry default served while disabled.
    cli(&server, &["define", "backend.rag_max_results", "--type", "number", "--default", "10"]);
    assert!(matches!(next_event_for(&mut events, "backend.rag_max_results").await, FlagEvent::Changed { .. }));
    let details = client.number_details("backend.rag_max_results", &context, 0.0);
    assert_eq!((details.value, details.source, details.reason), (10.0, Source::StoredState, Reason::Disabled));
    cli(&server, &["set", "backend.rag_max_results", "--env", "staging", "--value", "25", "--enabled", "true"]);
    next_event_for(&mut events, "backend.rag_max_results").await;
    assert_eq!(client.number_value("backend.rag_max_results", &context, 0.0), 25.0);

    // A change in another environment is not this client's business.
    cli(&server, &["disable", "ui.new_feature", "--env", "dev"]);
    cli(&server, &["disable", "ui.new_feature", "--env", "staging"]);
    let event = next_event_for(&mut events, "ui.new_feature").await;
    assert!(matches!(event, FlagEvent::Changed { .. }));
    assert_eq!(client.bool_details("ui.new_feature", &context, true).reason, Reason::Disabled);
    assert_eq!(client.status(), Status::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_table_holds_on_a_real_snapshot() {
    let server = Server::start();
    cli(&server, &["define", "backend.rag_max_results", "--type", "number", "--default", "4"]);
    cli(&server, &["set", "backend.rag_max_results", "--env", "staging", "--value", "3", "--enabled", "true"]);
    let key = sdk_key(&server, "staging");
    const VARIABLE: &str = "FF_BACKEND_RAG_MAX_RESULTS";
    // (process variable, .env.local value, flag asked) → (value, source, layers reported and ignored).
    type Row = (Option<&'static str>, Option<&'static str>, &'static str, f64, Source, &'static [OverrideLayer]);
    let table: &[Row] = &[
        (Some("1"), Some("2"), "backend.rag_max_results", 1.0, Source::EnvironmentVariable, &[]),
        (None, Some("2"), "backend.rag_max_results", 2.0, Source::DotEnvLocal, &[]),
        (None, None, "backend.rag_max_results", 3.0, Source::StoredState, &[]),
        (None, None, "backend.absent", 5.0, Source::Fallback, &[]),
        (Some("lots"), Some("2"), "backend.rag_max_results", 2.0, Source::DotEnvLocal, &[OverrideLayer::EnvironmentVariable]),
        (
            Some("lots"),
            Some("many"),
            "backend.rag_max_results",
            3.0,
            Source::StoredState,
            &[OverrideLayer::EnvironmentVariable, OverrideLayer::DotEnvLocal],
        ),
        (Some(" 1.5 "), Some("many"), "backend.rag_max_results", 1.5, Source::EnvironmentVariable, &[]),
    ];
    for (row, (variable, dotenv, asked, value, source, ignored)) in table.iter().enumerate() {
        let directory = tempfile::tempdir().unwrap();
        let dotenv_path = directory.path().join(".env.local");
        if let Some(dotenv) = dotenv {
            std::fs::write(&dotenv_path, format!("{VARIABLE}={dotenv}\n")).unwrap();
        }
        let variables: Vec<(&str, &str)> = variable.map(|value| (VARIABLE, value)).into_iter().collect();
        let client =
            VexilClient::builder(&server.url, "staging", &key).environment_variables(variables).dotenv_path(&dotenv_path).build().unwrap();
        client.wait_ready(MOMENT).await.unwrap();
        let label = format!("row {row}: variable {variable:?}, .env.local {dotenv:?}, {asked}");
        let details = client.number_details(asked, &Context::default(), 5.0);
        assert_eq!((details.value, details.source), (*value, *source), "{label}: {details:?}");
        if *source == Source::Fallback {
            assert_eq!(details.error.map(|error| error.kind), Some(ErrorKind::FlagNotFound), "{label}");
        }
        let reported: Vec<(String, OverrideLayer)> =
            client.override_warnings().into_iter().map(|warning| (warning.variable, warning.layer)).collect();
        let expected: Vec<(String, OverrideLayer)> = ignored.iter().map(|layer| (VARIABLE.to_owned(), *layer)).collect();
        assert_eq!(reported, expected, "{label}");
        client.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_reconnects_after_the_server_restarts_and_resumes_by_last_event_id() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    cli(&server, &["define", "ui.new_feature"]);
    let key = sdk_key(&server, "dev");
    let client = client(&server, "dev", &key);
    client.wait_ready(MOMENT).await.unwrap();
    let revision = client.revision().unwrap();
    let mut events = client.subscribe();

    let address = server.url.strip_prefix("http://").expect("an http URL").to_owned();
    assert!(tokio::task::block_in_place(|| server.terminate()), "the server stops cleanly with an SDK connected");
    wait_for_status(&client, Status::Stale).await;
    assert!(client.last_connection_error().is_some());
    let stale = client.bool_details("ui.new_feature", &Context::default(), true);
    assert_eq!((stale.value, stale.source), (false, Source::StoredState), "a stale client still answers from its cache");

    let server = tokio::task::block_in_place(|| start_on_address(&data, &address));
    // Whether this change lands before the SDK is back (then it is replayed after Last-Event-ID) or after (then it
    // is live), the SDK must receive it as a change: a snapshot would mean the stream did not resume.
    cli(&server, &["enable", "ui.new_feature", "--env", "dev"]);
    let event = tokio::time::timeout(MOMENT, events.recv()).await.expect("the SDK reconnects within a moment").unwrap();
    assert_eq!(event, FlagEvent::Changed { flag: flag("ui.new_feature"), revision: revision + 1 }, "resumed, not restarted");
    wait_for_status(&client, Status::Ready).await;
    assert!(client.bool_value("ui.new_feature", &Context::default(), false));
    assert_eq!(client.last_connection_error(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_file_carries_the_application_until_the_server_is_back() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let bootstrap = directory.path().join("flags.json");
    let server = Server::start_on(&data);
    cli(&server, &["define", "ui.new_feature"]);
    cli(&server, &["enable", "ui.new_feature", "--env", "dev"]);
    let key = sdk_key(&server, "dev");
    let first = client(&server, "dev", &key);
    first.wait_ready(MOMENT).await.unwrap();
    first.save_bootstrap(&bootstrap).unwrap();
    first.close();
    let address = server.url.strip_prefix("http://").expect("an http URL").to_owned();
    let url = server.url.clone();
    assert!(tokio::task::block_in_place(|| server.terminate()));

    // The server is down: the application starts from the file, stale, and keeps trying.
    let client = VexilClient::builder(&url, "dev", &key)
        .environment_variables(Vec::<(String, String)>::new())
        .without_dotenv()
        .bootstrap_file(&bootstrap)
        .backoff(Duration::from_millis(200), Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(client.wait_for_flags(MOMENT).await.unwrap(), Status::Stale);
    let details = client.bool_details("ui.new_feature", &Context::default(), false);
    assert_eq!((details.value, details.source), (true, Source::StoredState), "served from the bootstrap file");
    let error = client.wait_ready(Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(error, SdkError::Timeout { status: Status::Stale, last_error: Some(_), .. }), "{error}");

    // Back up, with a change made meanwhile: the client takes the server's snapshot in place of the file.
    let mut events = client.subscribe();
    let server = tokio::task::block_in_place(|| start_on_address(&data, &address));
    cli(&server, &["disable", "ui.new_feature", "--env", "dev"]);
    client.wait_ready(MOMENT).await.unwrap();
    let event = next_event_for(&mut events, "ui.new_feature").await;
    assert!(
        matches!(&event, FlagEvent::SnapshotReplaced { .. } | FlagEvent::Changed { .. }),
        "the server's data replaces the file's: {event:?}"
    );
    let details = client.bool_details("ui.new_feature", &Context::default(), true);
    assert_eq!((details.value, details.reason), (false, Reason::Disabled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_environment_is_refused_and_said_so() {
    let server = Server::start();
    let key = sdk_key(&server, "staging");
    let client = client(&server, "prod", &key);
    let error = client.wait_ready(Duration::from_secs(2)).await.unwrap_err();
    let SdkError::Timeout { status, last_error, .. } = &error else { panic!("{error}") };
    assert_eq!(*status, Status::Connecting);
    let last_error = last_error.as_deref().expect("the refusal is kept");
    assert!(last_error.contains("403"), "{last_error}");
    assert_eq!(client.bool_details("ui.anything", &Context::default(), true).error.map(|error| error.kind), Some(ErrorKind::NotReady));
}

/// The totals the server holds for `flag` in `environment` over the last ten minutes: variant → (evaluations, errors).
fn metric_totals(server: &Server, flag: &str, environment: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    let read =
        tokio::task::block_in_place(|| server.http().get(&format!("/api/flags/{flag}/environments/{environment}/metrics?since=10m")));
    assert_eq!(read.status, 200, "{:?}", read.body);
    read.body["totals"]
        .as_object()
        .expect("totals")
        .iter()
        .map(|(variant, totals)| (variant.clone(), (totals["evaluations"].as_u64().unwrap(), totals["errors"].as_u64().unwrap())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_counts_evaluations_and_reported_errors_per_variant_and_sends_them() {
    let server = Server::start();
    cli(&server, &["define", "ui.new_feature"]);
    cli(&server, &["define", "ui.dark_mode"]);
    cli(&server, &["enable", "ui.new_feature", "--env", "staging"]);
    cli(&server, &["set", "ui.new_feature", "--env", "staging", "--rollout", "30"]);
    cli(&server, &["enable", "ui.dark_mode", "--env", "staging"]);
    let key = sdk_key(&server, "staging");
    // A long interval, so the counts move only when the test says so.
    let client = VexilClient::builder(&server.url, "staging", &key)
        .environment_variables([("FF_UI_DARK_MODE", "false")])
        .without_dotenv()
        .metrics_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    client.wait_ready(MOMENT).await.unwrap();

    // Getters: 400 users, each served its sticky variant; every fourth user served `true` has an error.
    let mut expected: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for user in 0u32..400 {
        let context = Context::new(format!("user-{user}"));
        let served = client.bool_value("ui.new_feature", &context, false);
        let counts = expected.entry(served.to_string()).or_default();
        counts.0 += 1;
        if served && user.is_multiple_of(4) {
            assert!(client.report_error("ui.new_feature", &context), "an error of a served flag is counted");
            counts.1 += 1;
        }
    }
    assert!(expected["true"].0 > 60 && expected["false"].0 > 200, "a 30 % split serves both: {expected:?}");
    // Details getters count too; a handle counts in its own cells and hands them over when dropped.
    let details = client.bool_details("ui.new_feature", &Context::new("user-1"), false);
    expected.get_mut(&details.value.to_string()).unwrap().0 += 1;
    let handle = client.flag::<bool>("ui.new_feature");
    let handle_user = Context::new("user-2");
    let handle_variant = handle.value(&handle_user, false).to_string();
    for _ in 1..250 {
        handle.value(&handle_user, false);
    }
    expected.get_mut(&handle_variant).unwrap().0 += 250;
    drop(handle);
    // An overridden flag is the developer's decision, not the stored state's: neither counted nor attributable.
    assert!(!client.bool_value("ui.dark_mode", &Context::new("user-1"), true));
    assert!(!client.report_error("ui.dark_mode", &Context::new("user-1")));
    assert!(!client.report_error("ui.unknown", &Context::new("user-1")));

    client.flush_metrics().await.expect("the server accepts the batch");
    assert_eq!(metric_totals(&server, "ui.new_feature", "staging"), expected);
    assert!(metric_totals(&server, "ui.dark_mode", "staging").is_empty());
    // Nothing is sent twice.
    client.flush_metrics().await.unwrap();
    assert_eq!(metric_totals(&server, "ui.new_feature", "staging"), expected);

    // A handle that lives on hands its counts over on its first read after a send, so they go with the next one.
    let handle = client.flag::<bool>("ui.new_feature");
    for _ in 0..10 {
        handle.value(&handle_user, false);
    }
    client.flush_metrics().await.unwrap();
    assert_eq!(metric_totals(&server, "ui.new_feature", "staging"), expected, "still in the handle");
    handle.value(&handle_user, false);
    client.flush_metrics().await.unwrap();
    expected.get_mut(&handle_variant).unwrap().0 += 10;
    assert_eq!(metric_totals(&server, "ui.new_feature", "staging"), expected, "handed over by the read after the send");
    drop(handle);
    client.flush_metrics().await.unwrap();
    expected.get_mut(&handle_variant).unwrap().0 += 1;
    assert_eq!(metric_totals(&server, "ui.new_feature", "staging"), expected, "handed over when dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_the_server_did_not_take_are_sent_when_it_is_back() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = Server::start_on(&data);
    cli(&server, &["define", "ui.new_feature"]);
    cli(&server, &["enable", "ui.new_feature", "--env", "dev"]);
    let key = sdk_key(&server, "dev");
    let client = VexilClient::builder(&server.url, "dev", &key)
        .environment_variables(Vec::<(String, String)>::new())
        .without_dotenv()
        .metrics_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    client.wait_ready(MOMENT).await.unwrap();
    for user in 0..30 {
        client.bool_value("ui.new_feature", &Context::new(format!("user-{user}")), false);
    }
    client.report_error("ui.new_feature", &Context::new("user-1"));

    let address = server.url.strip_prefix("http://").unwrap().to_owned();
    assert!(tokio::task::block_in_place(|| server.terminate()));
    let error = client.flush_metrics().await.unwrap_err();
    assert!(matches!(error, SdkError::MetricsNotSent { kept: true, .. }), "{error}");
    // Served from the cache while the server is away, and counted with the rest.
    for user in 30..50 {
        client.bool_value("ui.new_feature", &Context::new(format!("user-{user}")), false);
    }
    let server = tokio::task::block_in_place(|| start_on_address(&data, &address));
    client.flush_metrics().await.expect("sent once the server is back");
    assert_eq!(metric_totals(&server, "ui.new_feature", "dev"), [("true".to_owned(), (50, 1))].into());

    // Closing sends what was counted since, without waiting for the interval.
    for user in 50..57 {
        client.bool_value("ui.new_feature", &Context::new(format!("user-{user}")), false);
    }
    client.close();
    let deadline = tokio::time::Instant::now() + MOMENT;
    while metric_totals(&server, "ui.new_feature", "dev") != [("true".to_owned(), (57, 1))].into() {
        assert!(tokio::time::Instant::now() < deadline, "the counts counted before close did not arrive");
        tokio::task::yield_now().await;
    }

    // A batch refused for good (here: the key was revoked) is dropped, not retried forever.
    let key = sdk_key(&server, "dev");
    let client = VexilClient::builder(&server.url, "dev", &key)
        .environment_variables(Vec::<(String, String)>::new())
        .without_dotenv()
        .metrics_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    client.wait_ready(MOMENT).await.unwrap();
    client.bool_value("ui.new_feature", &Context::new("user-1"), false);
    let tokens = tokio::task::block_in_place(|| server.http().get("/api/tokens").body);
    for token in tokens.as_array().unwrap().iter().filter(|token| token["kind"] == "sdk") {
        cli(&server, &["token", "revoke", token["id"].as_str().unwrap()]);
    }
    let error = client.flush_metrics().await.unwrap_err();
    assert!(matches!(&error, SdkError::MetricsNotSent { kept: false, reason } if reason.contains("401")), "{error}");
    client.flush_metrics().await.expect("nothing is left to send");
    assert_eq!(metric_totals(&server, "ui.new_feature", "dev"), [("true".to_owned(), (57, 1))].into());

    // A client that does not send says so rather than pretending.
    let offline = VexilClient::offline(client.snapshot().unwrap()).without_dotenv().build().unwrap();
    assert!(matches!(offline.flush_metrics().await, Err(SdkError::MetricsOff)));
}
