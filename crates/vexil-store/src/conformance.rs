//! The behaviour every [`Store`] backend must show, written once against the trait.
//!
//! A backend's test file calls [`conformance_tests!`](crate::conformance_tests) with an `async fn
//! open(retention: u64) -> (Arc<dyn Store>, Guard)` that opens a fresh, empty store for the seed's three
//! environments (`dev`, `staging`, `prod`); the guard keeps whatever backs it (a temporary directory,
//! a Redis process) alive for the test. Each check below becomes one `#[tokio::test]`.

use std::any::Any;
use std::sync::Arc;

use serde_json::json;
use vexil_core::{AuditAction, AuditDraft, EnvKey, FlagDefinition, FlagName, FlagState, FlagType, Role, Serve, Source, StateSpec};

use crate::{AuditQuery, ChangesSince, DefinitionWrite, StateWrite, Store, StoreError, TokenKind, TokenRecord, User, Write};

/// Keeps a test store's backing resources alive.
pub type Guard = Box<dyn Any + Send>;

/// A `redis-server` of a test's own, on a free port in a temporary directory, stopped when dropped.
///
/// Tests start their own so they can stop and restart it; `scripts/test.sh` installs `redis-server` when missing.
/// With `VEXIL_DEBUG_REDIS` set, its log goes to the test's standard error.
#[derive(Debug)]
pub struct RedisServer {
    child: std::process::Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    directory: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("an address").port();
        Self::start_on(directory, port)
    }

    fn start_on(directory: tempfile::TempDir, port: u16) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
            ])
            .arg(directory.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("redis-server said it is ready before exiting").expect("stdout is readable");
            if std::env::var_os("VEXIL_DEBUG_REDIS").is_some() {
                eprintln!("redis {port}: {line}");
            }
            if line.contains("Ready to accept connections") {
                break;
            }
        }
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if std::env::var_os("VEXIL_DEBUG_REDIS").is_some() {
                    eprintln!("redis {port}: {line}");
                }
            }
        });
        Self { child, port, directory }
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops it (SIGKILL) and starts it again on the same port and data (the append-only file).
    pub fn restart(mut self) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let directory = std::mem::replace(&mut self.directory, tempfile::tempdir().expect("temporary directory"));
        drop(self);
        Self::start_on(directory, port)
    }

    /// Its process id, for tests that freeze it (SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where it keeps its data (its append-only files), for tests that restore an older copy.
    pub fn directory(&self) -> &std::path::Path {
        self.directory.path()
    }

    /// Stops it (SIGKILL), keeping its data for [`RedisServer::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environments conformance stores are opened with.
pub fn environments() -> Vec<EnvKey> {
    ["dev", "staging", "prod"].into_iter().map(|key| EnvKey::parse(key).expect("valid key")).collect()
}

fn env(key: &str) -> EnvKey {
    EnvKey::parse(key).expect("valid key")
}

fn flag(name: &str) -> FlagName {
    FlagName::parse(name).expect("valid flag name")
}

fn definition(name: &str) -> FlagDefinition {
    let mut definition = FlagDefinition::new(flag(name), FlagType::Boolean, json!(false));
    definition.created_at = "2025-12-04T10:00:00Z".into();
    definition
}

fn state(enabled: bool, by: &str) -> FlagState {
    FlagState {
        spec: StateSpec { enabled, serve: Serve::Value(json!(true)), targets: vec![], rules: vec![], split: None },
        version: 0,
        updated_by: by.into(),
        updated_at: "2025-12-04T10:30:00Z".into(),
        rollout: None,
    }
}

fn draft(flag: &str, action: AuditAction, environment: Option<&str>, user: &str, timestamp: &str) -> AuditDraft {
    AuditDraft {
        flag: Some(flag.into()),
        action,
        environment: environment.map(Into::into),
        user: user.into(),
        timestamp: timestamp.into(),
        reason: Some(format!("{} by {user}", action.as_str())),
        from_environment: None,
        before: None,
        after: Some(json!({"enabled": true})),
        source: Source::Cli,
        definition: None,
    }
}

/// The write the server makes when a flag is created: the definition and a disabled state in every environment.
fn create(name: &str) -> Write {
    Write {
        definitions: vec![DefinitionWrite { definition: definition(name), expected_version: 0 }],
        states: environments()
            .into_iter()
            .map(|environment| StateWrite { environment, flag: flag(name), state: state(false, "admin@localhost"), expected_version: 0 })
            .collect(),
        audit: vec![draft(name, AuditAction::Create, None, "admin@localhost", "2025-12-04T10:00:00Z")],
        ..Write::default()
    }
}

fn set(environment: &str, name: &str, enabled: bool, expected_version: u64) -> Write {
    Write {
        states: vec![StateWrite { environment: env(environment), flag: flag(name), state: state(enabled, "dev@x"), expected_version }],
        audit: vec![draft(
            name,
            if enabled { AuditAction::Enable } else { AuditAction::Disable },
            Some(environment),
            "dev@x",
            "2025-12-04T11:00:00Z",
        )],
        ..Write::default()
    }
}

/// A new store is empty, with every environment at revision 0.
pub async fn empty_store_loads_empty(store: Arc<dyn Store>) {
    let catalog = store.load().await.unwrap();
    assert!(catalog.definitions.is_empty());
    assert!(catalog.states.values().all(|states| states.is_empty()));
    for environment in environments() {
        assert_eq!(catalog.revisions.get(&environment), Some(&0), "{environment}");
    }
    assert!(store.audit(AuditQuery { limit: 10, ..Default::default() }).await.unwrap().entries.is_empty());
    store.ping().await.unwrap();
}

/// A create commits the definition, every state, one change per environment and the audit record together.
pub async fn create_commits_everything_together(store: Arc<dyn Store>) {
    let committed = store.commit(create("ui.new_feature")).await.unwrap();
    assert_eq!(committed.changes.len(), 3);
    assert!(committed.changes.iter().all(|change| change.revision == 1 && change.state.version == 1 && change.definition.version == 1));
    assert_eq!(committed.audit.len(), 1);
    assert_eq!(committed.audit[0].id, 1);
    let catalog = store.load().await.unwrap();
    assert_eq!(catalog.definitions[&flag("ui.new_feature")].version, 1);
    for environment in environments() {
        assert_eq!(catalog.states[&environment][&flag("ui.new_feature")].version, 1);
        assert_eq!(catalog.revisions[&environment], 1);
    }
}

/// A stale expected version is refused with the versions involved, and nothing of the write lands.
pub async fn stale_versions_are_refused_whole(store: Arc<dyn Store>) {
    store.commit(create("ui.a")).await.unwrap();
    store.commit(create("ui.b")).await.unwrap();
    store.commit(set("dev", "ui.a", true, 1)).await.unwrap();
    let mut write = set("dev", "ui.b", true, 1);
    write.states.extend(set("dev", "ui.a", false, 1).states);
    match store.commit(write).await {
        Err(StoreError::Conflict { expected: 1, actual: 2, target }) => assert_eq!(target, "ui.a in dev"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let catalog = store.load().await.unwrap();
    assert!(!catalog.states[&env("dev")][&flag("ui.b")].spec.enabled, "the first state of a refused write must not land");
    assert!(catalog.states[&env("dev")][&flag("ui.a")].spec.enabled);
    assert_eq!(catalog.revisions[&env("dev")], 3);
    let audit = store.audit(AuditQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(audit.entries.len(), 3, "a refused write appends no audit record");
}

/// A write is refused whole when a version it was decided on (and does not write) moved: a state write judged
/// against a definition that another writer changed since, a definition edit judged against a state that changed.
pub async fn versions_a_write_relied_on_are_checked_with_it(store: Arc<dyn Store>) {
    use crate::Read;
    store.commit(create("ui.a")).await.unwrap();
    // A definition edit elsewhere (version 1 → 2) after a state write was judged against version 1.
    let mut edited = definition("ui.a");
    edited.description = "edited".into();
    store
        .commit(Write { definitions: vec![DefinitionWrite { definition: edited, expected_version: 1 }], ..Write::default() })
        .await
        .unwrap();
    let mut judged = set("prod", "ui.a", true, 1);
    judged.reads.push(Read::Definition { flag: flag("ui.a"), version: 1 });
    match store.commit(judged).await {
        Err(StoreError::Conflict { expected: 1, actual: 2, target }) => assert_eq!(target, "flag ui.a"),
        other => panic!("expected a conflict on the definition, got {other:?}"),
    }
    // A state change elsewhere (prod 1 → 2) after a definition edit was judged against prod at version 1.
    store.commit(set("prod", "ui.a", true, 1)).await.unwrap();
    let mut again = definition("ui.a");
    again.description = "again".into();
    let write = Write {
        definitions: vec![DefinitionWrite { definition: again, expected_version: 2 }],
        reads: vec![Read::State { environment: env("prod"), flag: flag("ui.a"), version: 1 }],
        ..Write::default()
    };
    match store.commit(write).await {
        Err(StoreError::Conflict { expected: 1, actual: 2, target }) => assert_eq!(target, "ui.a in prod"),
        other => panic!("expected a conflict on the state, got {other:?}"),
    }
    let catalog = store.load().await.unwrap();
    assert_eq!(catalog.definitions[&flag("ui.a")].description, "edited", "the refused edit did not land");
    assert_eq!(catalog.states[&env("prod")][&flag("ui.a")].version, 2, "the refused state write did not land");
    // Reads that hold let the write through.
    let mut holds = set("prod", "ui.a", false, 2);
    holds.reads.push(Read::Definition { flag: flag("ui.a"), version: 2 });
    store.commit(holds).await.unwrap();
}

/// A write under an idempotency key is stored with it; a second write under the key is refused whole, and what the
/// store remembers (fingerprint, audit records, the answer once kept) comes back.
pub async fn idempotency_keys_make_a_write_happen_once(store: Arc<dyn Store>) {
    use crate::{IdempotencyKey, Remembered};
    store.commit(create("ui.a")).await.unwrap();
    assert_eq!(store.remembered("k-1").await.unwrap(), None);
    let key = IdempotencyKey { key: "k-1".into(), fingerprint: "f".into() };
    let mut first = set("dev", "ui.a", true, 1);
    first.idempotency = Some(key.clone());
    let committed = store.commit(first).await.unwrap();
    let mut again = set("dev", "ui.a", false, 2);
    again.idempotency = Some(key);
    assert!(matches!(store.commit(again).await, Err(StoreError::Duplicate(used)) if used == "k-1"));
    let catalog = store.load().await.unwrap();
    assert!(catalog.states[&env("dev")][&flag("ui.a")].spec.enabled, "the second write under the key did not land");
    let remembered = store.remembered("k-1").await.unwrap().unwrap();
    assert_eq!(remembered, Remembered { fingerprint: "f".into(), audit: vec![committed.audit[0].id], response: None });
    store.remember_response("k-1", "{\"status\":200}").await.unwrap();
    assert_eq!(store.remembered("k-1").await.unwrap().unwrap().response.as_deref(), Some("{\"status\":200}"));
}

/// A store has no deployment until one is claimed, and keeps the first claim.
pub async fn the_first_deployment_claim_holds(store: Arc<dyn Store>) {
    assert_eq!(store.deployment().await.unwrap(), None);
    assert_eq!(store.claim_deployment("dep-one").await.unwrap(), "dep-one");
    assert_eq!(store.claim_deployment("dep-two").await.unwrap(), "dep-one", "a second claim does not replace the first");
    assert_eq!(store.deployment().await.unwrap().as_deref(), Some("dep-one"));
}

/// Creating a flag twice conflicts; a state of an undefined flag or unknown environment is invalid.
pub async fn creating_twice_and_dangling_states_are_refused(store: Arc<dyn Store>) {
    store.commit(create("ui.a")).await.unwrap();
    assert!(matches!(store.commit(create("ui.a")).await, Err(StoreError::Conflict { expected: 0, actual: 1, .. })));
    assert!(matches!(store.commit(set("dev", "ui.missing", true, 0)).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.commit(set("qa", "ui.a", true, 1)).await, Err(StoreError::Invalid(_))));
}

/// Each change gets its own revision; `changes_since` replays them in order, or says they are gone.
pub async fn changes_replay_in_order_until_pruned(store: Arc<dyn Store>) {
    store.commit(create("ui.a")).await.unwrap();
    for version in 1..=4 {
        store.commit(set("staging", "ui.a", version % 2 == 1, version)).await.unwrap();
    }
    let ChangesSince::Changes(changes) = store.changes_since(&env("staging"), 2, 100).await.unwrap() else {
        panic!("changes are retained")
    };
    assert_eq!(changes.iter().map(|change| change.revision).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(changes.iter().map(|change| change.state.version).collect::<Vec<_>>(), [3, 4, 5]);
    let ChangesSince::Changes(none) = store.changes_since(&env("staging"), 5, 100).await.unwrap() else { panic!() };
    assert!(none.is_empty());
    let ChangesSince::Changes(limited) = store.changes_since(&env("staging"), 0, 2).await.unwrap() else { panic!() };
    assert_eq!(limited.len(), 2);
}

/// With a retention of 3 changes, older revisions are reported gone.
pub async fn pruned_changes_are_reported_gone(store: Arc<dyn Store>) {
    store.commit(create("ui.a")).await.unwrap();
    for version in 1..=5 {
        store.commit(set("dev", "ui.a", version % 2 == 1, version)).await.unwrap();
    }
    assert_eq!(store.changes_since(&env("dev"), 1, 100).await.unwrap(), ChangesSince::Gone);
    let ChangesSince::Changes(changes) = store.changes_since(&env("dev"), 3, 100).await.unwrap() else { panic!("3 are retained") };
    assert_eq!(changes.len(), 3);
}

/// A definition update is announced in every environment with the new definition.
pub async fn definition_updates_reach_every_environment(store: Arc<dyn Store>) {
    store.commit(create("ui.a")).await.unwrap();
    let mut updated = definition("ui.a");
    updated.description = "now documented".into();
    let committed = store
        .commit(Write { definitions: vec![DefinitionWrite { definition: updated, expected_version: 1 }], ..Write::default() })
        .await
        .unwrap();
    assert_eq!(committed.changes.len(), 3);
    assert!(committed.changes.iter().all(|change| change.definition.description == "now documented" && change.definition.version == 2));
    assert!(committed.changes.iter().all(|change| change.revision == 2));
}

/// Audit queries filter by flag, environment, user, action and time, newest first, with a cursor.
pub async fn audit_filters_and_pages(store: Arc<dyn Store>) {
    store.commit(create("ui.a")).await.unwrap();
    store.commit(create("ui.b")).await.unwrap();
    for version in 1..=5 {
        let mut write = set("prod", "ui.a", version % 2 == 1, version);
        write.audit[0].environment = Some("production".into());
        write.audit[0].timestamp = format!("2025-12-0{}T10:00:00Z", version + 4);
        store.commit(write).await.unwrap();
    }
    let by_flag = store.audit(AuditQuery { flag: Some("ui.a".into()), limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(by_flag.entries.len(), 6);
    assert!(by_flag.entries.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first");
    let prod = store.audit(AuditQuery { environment: Some("production".into()), limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(prod.entries.len(), 5);
    let definition =
        store.audit(AuditQuery { flag: Some("ui.a".into()), definitions_only: true, limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(definition.entries.len(), 1, "the definition's own record, none of its states'");
    assert!(definition.entries.iter().all(|record| record.environment.is_none()));
    let enables = store.audit(AuditQuery { action: Some(AuditAction::Enable), limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(enables.entries.len(), 3);
    let by_user = store.audit(AuditQuery { user: Some("dev@x".into()), limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(by_user.entries.len(), 5);
    let window = store
        .audit(AuditQuery {
            since: Some("2025-12-06T00:00:00Z".into()),
            until: Some("2025-12-08T00:00:00Z".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        window.entries.iter().map(|record| record.timestamp.as_str()).collect::<Vec<_>>(),
        ["2025-12-07T10:00:00Z", "2025-12-06T10:00:00Z"]
    );
    let first = store.audit(AuditQuery { limit: 3, ..Default::default() }).await.unwrap();
    assert_eq!(first.entries.len(), 3);
    let second = store.audit(AuditQuery { limit: 3, before_id: first.next, ..Default::default() }).await.unwrap();
    let third = store.audit(AuditQuery { limit: 3, before_id: second.next, ..Default::default() }).await.unwrap();
    assert_eq!(third.next, None);
    let mut ids: Vec<u64> = [first, second, third].iter().flat_map(|page| page.entries.iter().map(|record| record.id)).collect();
    ids.dedup();
    assert_eq!(ids, (1..=7).rev().collect::<Vec<_>>(), "pages cover every record once");
}

/// The audit chain verifies, and every stored record chains to the one before.
pub async fn audit_chain_verifies(store: Arc<dyn Store>) {
    store.commit(create("ui.a")).await.unwrap();
    store.commit(set("dev", "ui.a", true, 1)).await.unwrap();
    let report = store.verify_audit().await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.records, 2);
    let page = store.audit(AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(page.entries[0].prev_hash, page.entries[1].hash);
    assert!(page.entries.iter().all(|record| record.hash_is_valid()));
}

/// Users and tokens are stored and found again; tokens by the hash of their secret.
pub async fn users_and_tokens_round_trip(store: Arc<dyn Store>) {
    let user = User {
        email: "dev@example.com".into(),
        role: Role::Developer,
        password_hash: None,
        created_at: "2025-12-04T10:00:00Z".into(),
        disabled: false,
    };
    let token = TokenRecord {
        id: "tok_1".into(),
        hash: "ab".repeat(32),
        kind: TokenKind::Personal,
        user: user.email.clone(),
        environment: None,
        name: "laptop".into(),
        created_at: "2025-12-04T10:00:00Z".into(),
        revoked_at: None,
        flag: None,
        expires_at: None,
        action: None,
        origins: vec!["https://app.example.com".into()],
    };
    store.commit(Write { users: vec![user.clone()], tokens: vec![token.clone()], ..Write::default() }).await.unwrap();
    assert_eq!(store.user("dev@example.com").await.unwrap(), Some(user.clone()));
    assert_eq!(store.user("nobody@example.com").await.unwrap(), None);
    assert_eq!(store.users().await.unwrap(), vec![user.clone()]);
    assert_eq!(store.token_by_hash(&"ab".repeat(32)).await.unwrap(), Some(token.clone()));
    let mut revoked = token.clone();
    revoked.revoked_at = Some("2025-12-05T10:00:00Z".into());
    let mut promoted = user.clone();
    promoted.role = Role::Admin;
    store.commit(Write { users: vec![promoted], tokens: vec![revoked.clone()], ..Write::default() }).await.unwrap();
    assert_eq!(store.user("dev@example.com").await.unwrap().unwrap().role, Role::Admin);
    assert_eq!(store.tokens().await.unwrap(), vec![revoked]);
}

/// SDK counts add up per time bucket and variant, every flag apart.
pub async fn metrics_add_up_per_bucket_and_variant(store: Arc<dyn Store>) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() / 60;
    let count = |flag: &str, variant: &str, evaluations: u64, errors: u64| crate::MetricCount {
        flag: flag.into(),
        variant: variant.into(),
        evaluations,
        errors,
    };
    let staging = env("staging");
    store
        .add_metrics(&staging, now - 2, &[count("ui.a", "true", 100, 1), count("ui.a", "false", 300, 3), count("ui.b", "true", 7, 7)])
        .await
        .unwrap();
    store.add_metrics(&staging, now - 2, &[count("ui.a", "true", 50, 10)]).await.unwrap();
    store.add_metrics(&staging, now - 1, &[count("ui.a", "true", 20, 0)]).await.unwrap();
    store.add_metrics(&env("prod"), now - 1, &[count("ui.a", "true", 999, 999)]).await.unwrap();
    let rows = store.metrics(&staging, "ui.a", now - 2).await.unwrap();
    let summary: Vec<(u64, &str, u64, u64)> =
        rows.iter().map(|row| (row.bucket, row.variant.as_str(), row.evaluations, row.errors)).collect();
    assert_eq!(summary, [(now - 2, "false", 300, 3), (now - 2, "true", 150, 11), (now - 1, "true", 20, 0)]);
    let recent = store.metrics(&staging, "ui.a", now - 1).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert!(store.metrics(&staging, "ui.missing", now - 2).await.unwrap().is_empty());
}

/// Declares one `#[tokio::test]` per conformance check, each on a fresh store from `$open`.
///
/// `$open` is an `async fn(retention: u64) -> (Arc<dyn Store>, conformance::Guard)`.
#[macro_export]
macro_rules! conformance_tests {
    ($open:path) => {
        $crate::conformance_tests!(@each $open, 10_000;
            empty_store_loads_empty, create_commits_everything_together, stale_versions_are_refused_whole,
            versions_a_write_relied_on_are_checked_with_it, idempotency_keys_make_a_write_happen_once,
            the_first_deployment_claim_holds,
            creating_twice_and_dangling_states_are_refused, changes_replay_in_order_until_pruned,
            definition_updates_reach_every_environment, audit_filters_and_pages, audit_chain_verifies,
            users_and_tokens_round_trip, metrics_add_up_per_bucket_and_variant);
        $crate::conformance_tests!(@each $open, 3; pruned_changes_are_reported_gone);
    };
    (@each $open:path, $retention:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (store, _guard) = $open($retention).await;
                $crate::conformance::$check(store).await;
            }
        )+
    };
}
