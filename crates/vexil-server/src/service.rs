//! The application state and the one path every change takes.
//!
//! A change is planned by a handler (which flag, which environment, what new state, what action and
//! reason), then [`AppState::commit_states`] checks it against the current state, validates it against
//! the flag's definition, commits state and audit records in one store write with the versions it saw,
//! and applies what the store committed to memory. Writes are serialised by one lock per server so
//! memory is updated in commit order; the store's version check catches writers elsewhere.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;
use vexil_core::gate::{EnvironmentChange, Refusal, Writer, decide, may_address};
use vexil_core::serving::Side;
use vexil_core::{AuditAction, AuditDraft, EnvKey, Environment, FlagDefinition, FlagName, FlagState, StateSpec, audit::check_reason};
use vexil_store::{Change, DefinitionWrite, Read, StateWrite, Store, StoreError, Write};

use crate::auth::Actor;
use crate::catalog::SharedCatalog;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The shared parts of [`AppState`].
pub struct Inner {
    /// The persistence backend.
    pub store: Arc<dyn Store>,
    /// Environments, categories, limits.
    pub config: ServerConfig,
    /// Every definition and state, in memory.
    pub catalog: SharedCatalog,
    /// Failed logins per account, for rate limiting.
    pub login_limiter: crate::auth::LoginLimiter,
    /// Password changes per account and address, for rate limiting.
    pub password_changes: crate::auth::LoginLimiter,
    /// Recently used credentials.
    pub credentials: crate::auth::CredentialCache,
    /// Places for Argon2 work (logins, password changes): [`crate::auth::PASSWORD_CHECKS`].
    pub password_checks: tokio::sync::Semaphore,
    /// The memory large answers hold while clients read them (`response_memory_mb`).
    pub answers: crate::answers::AnswerBudget,
    /// Evaluations each SDK key reported this minute, against `metrics_key_evaluations_per_minute`.
    pub metrics_budget: crate::routes::metrics::KeyBudget,
    /// What each client network counted this hour under client-side keys, against `guard_client_networks`.
    pub network_shares: crate::routes::metrics::NetworkShares,
    /// What the guard watches and what its last looks saw.
    pub guard: crate::guard::Guard,
    /// Each environment's compiled snapshot and change broadcast.
    pub hub: crate::hub::Hub,
    /// Prometheus metrics.
    pub telemetry: crate::telemetry::Telemetry,
    /// Flips to true when the server begins shutting down, so open streams end.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The revision applied to memory, per environment; commits on a shared store wait on it.
    applied: tokio::sync::watch::Sender<BTreeMap<EnvKey, u64>>,
    /// The last change applied per environment, to tell the store's history from another with the same numbers.
    last_applied: std::sync::Mutex<BTreeMap<EnvKey, Change>>,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Where writers other than the kill switch wait for the write lock (see [`AppState::serialised`]).
    lane: tokio::sync::Mutex<()>,
    /// The last write that failed for the store's sake (unreachable, disk full, no answer), until one succeeds.
    pub write_failure: std::sync::Mutex<Option<String>>,
    /// The deployment this server serves, and whether the store still carries it.
    identity: std::sync::RwLock<Identity>,
}

/// The store's identity as this server knows it.
#[derive(Debug, Default, Clone)]
struct Identity {
    /// The deployment id this server joined.
    deployment: Option<String>,
    /// Why the store no longer looks like that deployment (wiped, replaced), while it does not.
    lost: Option<String>,
}

/// The server's write lock, held: writes that read memory to decide (states, definitions, users) hold it from
/// the read to the end of [`AppState::commit_holding`], which keeps it until memory shows the commit.
#[derive(Debug)]
pub struct WriteGuard(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>);

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What a planned change does to the flag's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Replace the state's content with this.
    Replace(StateSpec),
    /// Replace the state's content with a state carried over from one the store accepted: a promote's or copy's
    /// source (or a rollout's first step towards it), the earlier state a rollback restores. Validated as `Replace`
    /// is, except that its regex patterns were judged when that state was written and are not refused again for
    /// backtracking ([`StateSpec::validate_new`]): states stored before that check keep moving.
    Carry(StateSpec),
    /// Set the kill switch on whatever the state is when the write lock is held, so a toggle never overwrites a
    /// change that landed since it was asked for, and a disable never fails on a race.
    SetEnabled(bool),
}

/// One planned state change.
#[derive(Debug, Clone)]
pub struct PlannedChange {
    /// Where.
    pub environment: Environment,
    /// Which flag.
    pub flag: FlagName,
    /// The new content.
    pub edit: Edit,
    /// The version the caller saw, when it sent one (`If-Match`, or the version shown with a diff). A disable
    /// ([`Edit::SetEnabled`]`(false)`) ignores it: the kill switch is never refused for a version.
    pub expected_version: Option<u64>,
    /// What the audit trail calls it.
    pub action: AuditAction,
    /// Why.
    pub reason: Option<String>,
    /// For promote, copy and import: where the state came from (long name).
    pub from_environment: Option<String>,
    /// The definition's version the caller saw with a diff: a change to the definition since (a variant's value, say)
    /// refuses the write, so an approval of variant names is an approval of their values.
    pub expected_definition_version: Option<u64>,
    /// What the server says of the change (`rollout started: 10 % → 50 % every 1h`), put before the reason in the
    /// audit record. The gate never takes it for a reason: a person's protected change needs `reason` from them.
    pub summary: Option<String>,
    /// The rollout the new state carries: `None` ends any plan in progress (any change by a person does).
    pub rollout: Option<vexil_core::RolloutPlan>,
}

/// What an automatic action (a monitoring trigger, the guard) does to a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// The kill switch: serve the off value to everyone.
    Disable,
    /// Restore the last state a person set before the change that produced the current one.
    Rollback,
}

/// The answer to a remedy: what was committed, or why nothing was.
#[derive(Debug)]
pub enum RemedyOutcome {
    /// Committed.
    Done(Vec<Change>),
    /// Nothing changed, and why (already off, already rolled back, nothing earlier to restore).
    Nothing(String),
    /// Not done: the rollback would serve something to contexts that do not get it now (the exposure rule).
    WidensExposure(String),
    /// Not done: the earlier state no longer fits the definition (a variant it served was removed, a constraint
    /// narrowed), so it cannot be restored; the kill switch still can be used.
    Unrestorable(String),
}

/// What undoing the change `record` made to `current` restores: the state before the plan `current` is inside, or
/// else the state the record replaced (before its own plan, when it was one's); `None` when the record has no earlier
/// state (the flag's first). The one reading of "the state before" for the guard's, triggers' and people's rollbacks.
pub fn state_before(current: &FlagState, record: &vexil_core::AuditRecord) -> Option<StateSpec> {
    if let Some(before) = current.rollout.as_ref().and_then(|plan| plan.before.as_deref()) {
        return Some(before.clone());
    }
    let before = serde_json::from_value::<FlagState>(record.before.clone()?).ok()?;
    Some(before.rollout.as_ref().and_then(|plan| plan.before.as_deref()).cloned().unwrap_or(before.spec))
}

/// A refusal of the gate as an API error.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Forbidden(message) => ApiError::forbidden(message),
        Refusal::ReasonRequired(environment) => ApiError::reason_required(&environment),
        Refusal::WidensExposure(message) => ApiError::conflict("widens_exposure", message),
    }
}

impl AppState {
    /// Whether `actor`'s role lets them write to `environment` at all: asked before a write is prepared, so a write
    /// that turns out to change nothing there (a bulk enable of flags already on) is refused all the same.
    pub fn may_address(&self, actor: &Actor, environment: &Environment) -> ApiResult<()> {
        may_address(actor.writer(), environment).map_err(refused)
    }

    /// Loads the catalog and gives every defined flag a state in every configured environment.
    pub async fn open(config: ServerConfig, store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let mut catalog = store.load().await?;
        fill_missing_states(&config, store.as_ref(), &mut catalog).await?;
        let hub = crate::hub::Hub::new(config.environments.as_slice(), &catalog, config.stream_buffer);
        let applied = tokio::sync::watch::Sender::new(catalog.revisions.clone());
        let shared = store.is_shared();
        let response_memory = config.response_memory;
        let state = Self(Arc::new(Inner {
            store,
            config,
            catalog: SharedCatalog::new(catalog),
            login_limiter: Default::default(),
            password_changes: Default::default(),
            credentials: Default::default(),
            password_checks: tokio::sync::Semaphore::new(crate::auth::PASSWORD_CHECKS),
            answers: crate::answers::AnswerBudget::new(response_memory),
            metrics_budget: Default::default(),
            network_shares: Default::default(),
            guard: Default::default(),
            hub,
            telemetry: Default::default(),
            shutdown: tokio::sync::watch::Sender::new(false),
            applied,
            last_applied: Default::default(),
            write_lock: Default::default(),
            lane: Default::default(),
            write_failure: Default::default(),
            identity: Default::default(),
        }));
        if shared {
            tokio::spawn(crate::follower::follow(state.clone()));
            tokio::spawn(watch_identity(state.clone()));
        }
        tokio::spawn(crate::rollout::schedule(state.clone()));
        Ok(state)
    }

    /// Finds an environment by key or long name.
    pub fn environment(&self, input: &str) -> ApiResult<Environment> {
        self.config.environments.resolve(input).cloned().map_err(|error| {
            let names = self.config.environments.iter().flat_map(|environment| [environment.key.as_str(), environment.name.as_str()]);
            let message = match vexil_core::name::nearest(input, names) {
                Some(near) => format!("{}; did you mean {near}?", error.message),
                None => error.message,
            };
            ApiError::new(StatusCode::NOT_FOUND, "unknown_environment", message)
        })
    }

    /// Parses a flag name and finds its definition.
    pub fn definition(&self, input: &str) -> ApiResult<FlagDefinition> {
        let name = FlagName::parse(input)?;
        self.catalog.definition(&name).ok_or_else(|| {
            let near = vexil_core::name::nearest(name.as_str(), self.catalog.read().definitions.keys().map(FlagName::as_str));
            let message = match near {
                Some(near) => format!("flag `{name}` is not defined; did you mean {near}?"),
                None => format!("flag `{name}` is not defined; define it first (vexil define {name} --type boolean)"),
            };
            ApiError::new(StatusCode::NOT_FOUND, "unknown_flag", message)
        })
    }

    /// Commits planned state changes atomically; changes that would not change anything are left out.
    ///
    /// Each change passes the gate ([`vexil_core::gate::decide`]) against the state current under the write lock:
    /// who may change what that environment serves, with which reason. Returns the committed changes (empty when
    /// nothing differed).
    pub async fn commit_states(&self, actor: &Actor, planned: Vec<PlannedChange>) -> ApiResult<Vec<Change>> {
        Ok(self.commit_states_seen(actor, planned).await?.0)
    }

    /// Commits one planned change and answers with the state it produced (or, when it changed nothing, the state it
    /// found under the write lock): never a later state another writer made meanwhile.
    pub async fn commit_state(&self, actor: &Actor, planned: PlannedChange) -> ApiResult<(bool, FlagState)> {
        let (mut changes, mut unchanged) = self.commit_states_seen(actor, vec![planned]).await?;
        match (changes.pop(), unchanged.pop()) {
            (Some(change), _) => Ok((true, change.state)),
            (None, Some(state)) => Ok((false, state)),
            (None, None) => Err(ApiError::internal("a planned change produced no state")),
        }
    }

    /// [`AppState::commit_states`], with the states of the changes that changed nothing as they were under the lock.
    ///
    /// A kill switch is never refused because another server wrote first: on a shared store, a disable that meets
    /// a newer version in the store waits for this server to apply what it missed and is applied again to that.
    async fn commit_states_seen(&self, actor: &Actor, planned: Vec<PlannedChange>) -> ApiResult<(Vec<Change>, Vec<FlagState>)> {
        // Retried for as long as another server keeps winning, up to this long.
        const PERSISTENCE: std::time::Duration = std::time::Duration::from_secs(10);
        let kill_switch = planned.iter().all(|change| change.edit == Edit::SetEnabled(false));
        // The fast lane is for the kill switch in protected environments, by someone who may use it there: a flood of
        // disables elsewhere (or by someone refused anyway) queues like any other write.
        let writer = actor.writer();
        let first =
            kill_switch && planned.iter().all(|change| change.environment.protected && may_address(writer, &change.environment).is_ok());
        let deadline = tokio::time::Instant::now() + PERSISTENCE;
        loop {
            let mut applied = self.applied.subscribe();
            applied.borrow_and_update();
            match self.commit_states_once(actor, planned.clone(), first).await {
                Err(error)
                    if kill_switch
                        && error.code == "version_conflict"
                        && error.status == StatusCode::CONFLICT
                        && tokio::time::Instant::now() < deadline =>
                {
                    // The store has a change this server has not applied yet: wait until the follower brings one in.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), applied.changed()).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn commit_states_once(
        &self,
        actor: &Actor,
        planned: Vec<PlannedChange>,
        first: bool,
    ) -> ApiResult<(Vec<Change>, Vec<FlagState>)> {
        let guard = if first { self.serialised_first().await } else { self.serialised().await };
        let mut unchanged = Vec::new();
        // A flag named twice in one write (`disable a b a`) is one change: a second, different edit of it is refused
        // (it would be judged against the state before the first), an identical one is left out.
        let mut named: std::collections::HashMap<(EnvKey, FlagName), Edit> = std::collections::HashMap::new();
        let now = crate::time::now();
        let writer = actor.writer();
        let mut write = Write::default();
        for change in planned {
            let definition = self
                .catalog
                .definition(&change.flag)
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_flag", format!("flag `{}` is not defined", change.flag)))?;
            // The role first: nobody makes the server compare states (under the write lock) for a change they may not make.
            may_address(writer, &change.environment).map_err(refused)?;
            match named.entry((change.environment.key.clone(), change.flag.clone())) {
                std::collections::hash_map::Entry::Occupied(first) if *first.get() == change.edit => continue,
                std::collections::hash_map::Entry::Occupied(_) => {
                    return Err(ApiError::bad_request(format!(
                        "`{}` in {} is named twice with different changes; name each flag once",
                        change.flag, change.environment.key
                    )));
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(change.edit.clone());
                }
            }
            if let (Writer::Person(_), Some(reason)) = (writer, &change.reason) {
                check_reason(reason)?;
            }
            let current = self
                .catalog
                .state(&change.environment.key, &change.flag)
                .ok_or_else(|| ApiError::internal(format!("flag {} has no state in {}", change.flag, change.environment.key)))?;
            let kill_switch = change.edit == Edit::SetEnabled(false);
            // An enable of a flag that is on changes nothing: a running plan goes on (any real change by a person ends it).
            let rollout = match change.edit {
                Edit::SetEnabled(true) if current.spec.enabled => current.rollout.clone(),
                _ => change.rollout.clone(),
            };
            let (spec, carried) = match change.edit {
                Edit::Replace(spec) => (spec, false),
                Edit::Carry(spec) => (spec, true),
                Edit::SetEnabled(enabled) => (StateSpec { enabled, ..current.spec.clone() }, false),
            };
            // Only the kill switch reaches an archived flag's frozen state: nothing may ever block turning a flag off.
            // Turns the flag off and changes nothing else (whether asked as a disable or as a state that only differs so).
            let only_disables = spec == StateSpec { enabled: false, ..current.spec.clone() };
            if definition.archived && !only_disables {
                return Err(ApiError::conflict(
                    "flag_archived",
                    format!("flag `{}` is archived; unarchive it before changing its state (disabling it always works)", change.flag),
                ));
            }
            // The kill switch is never refused for what the rest of the state says: a disabled state serves the off
            // value whatever it names (and enabling it again is validated like any change).
            if !only_disables {
                // Only a regex pattern new in the write is judged for backtracking: one the state being replaced holds
                // (or, carried over, its source held) was accepted when that state was written.
                let accepted: &[&StateSpec] = if carried { &[&current.spec, &spec] } else { &[&current.spec] };
                spec.validate_new(&definition, accepted)?;
                self.check_environment_regexes(&change.environment, &change.flag, &spec, &write)?;
            }
            if let Some(expected) = change.expected_definition_version
                && expected != definition.version
            {
                return Err(ApiError::precondition_failed(format!(
                    "the definition of `{}` is at version {}, not {expected}: it changed since the diff was shown (variants may mean other values now); look at it and try again",
                    change.flag, definition.version
                )));
            }
            if let Some(expected) = change.expected_version
                && expected != current.version
                && !kill_switch
            {
                return Err(ApiError::precondition_failed(format!(
                    "`{}` in {} is at version {}, not {expected}: it changed since you read it; review the new state and retry",
                    change.flag, change.environment.key, current.version
                )));
            }
            let side = EnvironmentChange {
                environment: &change.environment,
                before: Side::new(&definition, &current.spec),
                after: Side::new(&definition, &spec),
                plan_changed: current.rollout != rollout,
                plan_running: current.rollout.is_some(),
                addressed: true,
                restorable: None,
            };
            let audit_reason = match (&change.summary, &change.reason) {
                (Some(summary), Some(reason)) => Some(format!("{summary} ({reason})")),
                (Some(summary), None) => Some(summary.clone()),
                (None, reason) => reason.clone(),
            };
            // A person's reason is theirs alone; an automatic action's is what it says of itself.
            let gate_reason = match writer {
                Writer::Person(_) => change.reason.as_deref(),
                Writer::Automatic(_) => audit_reason.as_deref(),
            };
            decide(writer, false, &[side], gate_reason).map_err(refused)?;
            if current.spec == spec && current.rollout == rollout {
                unchanged.push(current);
                continue;
            }
            let mut after = new_state(spec, &actor.email);
            after.rollout = rollout;
            after.updated_at = now.clone();
            after.version = current.version + 1;
            write.audit.push(AuditDraft {
                flag: Some(change.flag.to_string()),
                action: change.action,
                environment: Some(change.environment.name.clone()),
                user: actor.email.clone(),
                timestamp: now.clone(),
                reason: audit_reason,
                from_environment: change.from_environment.clone(),
                before: Some(to_json(&current)),
                after: Some(to_json(&after)),
                source: actor.source,
                definition: None,
            });
            write.states.push(StateWrite {
                environment: change.environment.key.clone(),
                flag: change.flag.clone(),
                state: after,
                expected_version: current.version,
            });
            // Judged against this definition: an edit of it committed elsewhere meanwhile refuses the write.
            let read = Read::Definition { flag: change.flag, version: definition.version };
            if !write.reads.contains(&read) {
                write.reads.push(read);
            }
        }
        if write.states.is_empty() {
            return Ok((Vec::new(), unchanged));
        }
        Ok((self.commit_holding(guard, actor, write).await?, unchanged))
    }

    /// Refuses a state that would take its environment over [`vexil_core::state::MAX_ENVIRONMENT_REGEX_PATTERNS`]
    /// (counting the states already planned in this write).
    fn check_environment_regexes(&self, environment: &Environment, flag: &FlagName, spec: &StateSpec, write: &Write) -> ApiResult<()> {
        let adding = spec.regex_patterns();
        if adding == 0 {
            return Ok(());
        }
        let planned: Vec<&FlagName> =
            write.states.iter().filter(|state| state.environment == environment.key).map(|state| &state.flag).collect();
        let catalog = self.catalog.read();
        let elsewhere: usize = catalog
            .states
            .get(&environment.key)
            .map(|states| {
                states
                    .iter()
                    .filter(|(name, _)| *name != flag && !planned.contains(name))
                    .map(|(_, state)| state.spec.regex_patterns())
                    .sum()
            })
            .unwrap_or(0);
        let in_write: usize =
            write.states.iter().filter(|state| state.environment == environment.key).map(|state| state.state.spec.regex_patterns()).sum();
        let total = elsewhere + in_write + adding;
        let limit = vexil_core::state::MAX_ENVIRONMENT_REGEX_PATTERNS;
        if total > limit {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
                format!(
                    "{} would hold {total} regex patterns across its flags; at most {limit} are accepted: use fewer regex conditions",
                    environment.key
                ),
            ));
        }
        Ok(())
    }

    /// The audit record of the change that produced `version` of `flag`'s state in `environment`, looked for among
    /// the flag's latest 50 records there; `None` when it is older than that (or the state was never changed).
    pub async fn producing_record(
        &self,
        environment: &Environment,
        flag: &FlagName,
        version: u64,
    ) -> ApiResult<Option<vexil_core::AuditRecord>> {
        let page = self
            .store
            .audit(vexil_store::AuditQuery {
                flag: Some(flag.to_string()),
                environment: Some(environment.name.clone()),
                limit: 50,
                ..Default::default()
            })
            .await?;
        Ok(page
            .entries
            .into_iter()
            .find(|record| record.after.as_ref().and_then(|after| after.get("version")).and_then(Value::as_u64) == Some(version)))
    }

    /// What a rollback of `current` restores: the last state a person set before the change that produced it, with
    /// the id of the audit record of that change (when the state was replaced). For a state inside a rollout plan, or
    /// the one its last step left, that is the state before the plan started.
    /// `Err` with why when there is nothing to restore (the current state is a rollback's, or its origin is unknown).
    pub async fn rollback_target(
        &self,
        environment: &Environment,
        flag: &FlagName,
        current: &FlagState,
    ) -> ApiResult<Result<(StateSpec, Option<u64>), String>> {
        if let Some(before) = current.rollout.as_ref().and_then(|plan| plan.before.as_deref()) {
            return Ok(Ok((before.clone(), None)));
        }
        let Some(record) = self.producing_record(environment, flag, current.version).await? else {
            return Ok(Err("the change that produced the current state is not in the flag's recent history".to_owned()));
        };
        // Alerts repeat while they fire: rolling back a rollback would put the bad state back.
        if record.action == AuditAction::Rollback {
            return Ok(Err("the flag is already rolled back; a repeated alert changes nothing".to_owned()));
        }
        let Some(before) = state_before(current, &record) else {
            return Ok(Err("the current state is the flag's first; there is no earlier state to restore".to_owned()));
        };
        Ok(Ok((before, Some(record.id))))
    }

    /// The flag's definition as it was when audit record `id` was written: the `before` of the first definition
    /// record after it, or today's when none came since. Only the definition's own records are read (however many
    /// records of its states came since), newest first, until one at or before `id`; `None` when more than a
    /// million definition records came since.
    pub async fn definition_when(&self, flag: &FlagName, id: u64) -> ApiResult<Option<FlagDefinition>> {
        const PAGE: u32 = 1000;
        const PAGES: usize = 1000;
        let mut first_since: Option<vexil_core::AuditRecord> = None;
        let mut before_id = None;
        for _ in 0..PAGES {
            let query = vexil_store::AuditQuery {
                flag: Some(flag.to_string()),
                definitions_only: true,
                before_id,
                limit: PAGE,
                ..Default::default()
            };
            let page = self.store.audit(query).await?;
            // Newest first: the last record after `id` is the first one written after it.
            if let Some(record) = page.entries.iter().rfind(|record| record.id > id) {
                first_since = Some(record.clone());
            }
            let reached = page.entries.last().is_none_or(|oldest| oldest.id <= id);
            if reached || page.next.is_none() {
                return Ok(match first_since {
                    None => self.catalog.definition(flag),
                    Some(record) => record.before.and_then(|before| serde_json::from_value::<FlagDefinition>(before).ok()),
                });
            }
            before_id = page.next;
        }
        Ok(None)
    }

    /// An automatic action on a flag in one environment, by `actor` (the guard or a trigger), under the exposure rule:
    /// a rollback that would serve anything to a context that does not get it now is not made
    /// (`RemedyOutcome::WidensExposure`), nor one whose earlier state no longer fits the definition
    /// (`Unrestorable`); a disable of a flag already off changes nothing. The gate checks the rule again on commit.
    ///
    /// What it restores is judged against the definition it read, and the commit is pinned to that definition: an
    /// edit that lands meanwhile makes it judge again (a few times), never restore through a definition it did not see.
    pub async fn remedy(
        &self,
        actor: &Actor,
        environment: &Environment,
        flag: &FlagName,
        remedy: Remedy,
        reason: String,
    ) -> ApiResult<RemedyOutcome> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.remedy_once(actor, environment, flag, remedy, reason.clone()).await {
                Err(error) if error.status == StatusCode::PRECONDITION_FAILED && attempts < 5 => continue,
                outcome => return outcome,
            }
        }
    }

    async fn remedy_once(
        &self,
        actor: &Actor,
        environment: &Environment,
        flag: &FlagName,
        remedy: Remedy,
        reason: String,
    ) -> ApiResult<RemedyOutcome> {
        let current = self.catalog.state(&environment.key, flag).ok_or_else(|| ApiError::internal("state missing"))?;
        let definition = self.catalog.definition(flag).ok_or_else(|| ApiError::internal("definition missing"))?;
        let (edit, action) = match remedy {
            Remedy::Disable if !current.spec.enabled && current.rollout.is_none() => {
                return Ok(RemedyOutcome::Nothing("the flag is already off".to_owned()));
            }
            Remedy::Disable => (Edit::SetEnabled(false), AuditAction::Disable),
            Remedy::Rollback => {
                let (target, replaced_by) = match self.rollback_target(environment, flag, &current).await? {
                    Ok(target) => target,
                    Err(why) => return Ok(RemedyOutcome::Nothing(why)),
                };
                // The earlier state must still mean what it meant: restored through a definition edited since (a
                // variant it names given a new value by someone who could edit it because this environment did not
                // name it then), it would serve, on or when next enabled, what no person here approved.
                if let Some(id) = replaced_by {
                    let then = self.definition_when(flag, id).await?;
                    let unchanged = then.as_ref().is_some_and(|then| {
                        let moment = vexil_core::gate::EnvironmentChange {
                            environment,
                            before: Side::new(then, &target),
                            after: Side::new(&definition, &target),
                            plan_changed: false,
                            plan_running: false,
                            addressed: false,
                            restorable: None,
                        };
                        vexil_core::gate::effect(&moment) != Some(vexil_core::gate::Effect::Serving)
                    });
                    if !unchanged {
                        return Ok(RemedyOutcome::Unrestorable(
                            "the flag's definition changed since the earlier state was in force, so restoring it would not serve what it served then".to_owned(),
                        ));
                    }
                }
                // The earlier state was accepted here when it was written: its regex patterns are not judged again.
                if let Err(error) = target.validate_new(&definition, &[&target]) {
                    return Ok(RemedyOutcome::Unrestorable(format!(
                        "the earlier state no longer fits the flag's definition ({}), so it cannot be restored",
                        error.message
                    )));
                }
                if target == current.spec && current.rollout.is_none() {
                    return Ok(RemedyOutcome::Nothing(
                        "restoring the earlier state changes nothing (the change was to the definition; disable the flag instead)"
                            .to_owned(),
                    ));
                }
                if !vexil_core::serving::only_reduces_exposure(Side::new(&definition, &current.spec), Side::new(&definition, &target)) {
                    return Ok(RemedyOutcome::WidensExposure(
                        "restoring the earlier state would serve something to users who do not get it now (it would undo a disable or widen a rollout); automatic actions only ever reduce exposure".to_owned(),
                    ));
                }
                (Edit::Carry(target), AuditAction::Rollback)
            }
        };
        let change = PlannedChange {
            environment: environment.clone(),
            flag: flag.clone(),
            edit,
            expected_version: Some(current.version),
            action,
            reason: Some(reason),
            from_environment: None,
            // A rollback's target was judged against this definition; a disable means the same under any.
            expected_definition_version: (remedy == Remedy::Rollback).then_some(definition.version),
            summary: None,
            rollout: None,
        };
        Ok(RemedyOutcome::Done(self.commit_states(actor, vec![change]).await?))
    }

    /// The environments where replacing `previous` by `definition` changes what the flag serves (or its state),
    /// whoever asks: what a definition edit's dry run shows, so a client can confirm before a protected change.
    pub fn definition_impact(
        &self,
        previous: &FlagDefinition,
        definition: &FlagDefinition,
    ) -> Vec<(Environment, vexil_core::gate::Effect)> {
        self.config
            .environments
            .iter()
            .filter_map(|environment| {
                let state = self.catalog.state(&environment.key, &definition.name)?;
                let side = EnvironmentChange::definition_edit(environment, previous, definition, &state);
                vexil_core::gate::effect(&side).map(|effect| (environment.clone(), effect))
            })
            .collect()
    }

    /// Commits a definition write (create, update, archive) with its audit record.
    ///
    /// An edit passes the gate with every environment's state: where the new definition changes what the state
    /// serves (a variant's value, a disabled flag's default), that environment's policy applies, and the write
    /// also bumps the state's version there with an audit record of that environment (carrying both definitions),
    /// so the change is streamed, listed by `audit --env` and watched by the guard like any other.
    pub async fn commit_definition(
        &self,
        actor: &Actor,
        definition: FlagDefinition,
        expected_version: u64,
        action: AuditAction,
        reason: Option<String>,
    ) -> ApiResult<Vec<Change>> {
        let guard = self.serialised().await;
        let now = crate::time::now();
        let mut write = Write::default();
        self.plan_definition(actor, definition, expected_version, action, reason, &now, &mut write)?;
        self.commit_holding(guard, actor, write).await
    }

    /// Commits several definition writes (a registry applied) as one write: each, with its own reason, is judged as
    /// [`AppState::commit_definition`] judges one, under one lock, and all of them are committed, or none. A refusal
    /// names the flag it is about.
    pub async fn commit_definitions(
        &self,
        actor: &Actor,
        definitions: Vec<(FlagDefinition, u64, AuditAction, Option<String>)>,
    ) -> ApiResult<Vec<Change>> {
        let guard = self.serialised().await;
        let now = crate::time::now();
        let mut write = Write::default();
        for (definition, expected_version, action, reason) in definitions {
            let name = definition.name.clone();
            self.plan_definition(actor, definition, expected_version, action, reason, &now, &mut write).map_err(|mut error| {
                error.message = format!("{name}: {}", error.message);
                error
            })?;
        }
        self.commit_holding(guard, actor, write).await
    }

    /// Adds one definition write, judged by the gate, to `write` (with its audit records and the states it bumps).
    #[allow(clippy::too_many_arguments)]
    fn plan_definition(
        &self,
        actor: &Actor,
        definition: FlagDefinition,
        expected_version: u64,
        action: AuditAction,
        reason: Option<String>,
        now: &str,
        write: &mut Write,
    ) -> ApiResult<()> {
        let now = now.to_owned();
        let writer = actor.writer();
        let before = self.catalog.definition(&definition.name);
        let actual = before.as_ref().map(|definition| definition.version).unwrap_or(0);
        if actual != expected_version {
            return Err(if expected_version == 0 {
                ApiError::conflict(
                    "flag_exists",
                    format!(
                        "flag `{}` is already defined; change its state with `vexil set`, its description, owner or tags with `vexil apply`",
                        definition.name
                    ),
                )
            } else {
                ApiError::precondition_failed(format!(
                    "flag `{}` is at version {actual}, not {expected_version}: it changed since you read it; review it and retry",
                    definition.name
                ))
            });
        }
        let mut definition = definition;
        definition.updated_at = now.clone();
        definition.updated_by = actor.email.clone();
        if expected_version == 0 {
            definition.created_at = now.clone();
        }
        definition.version = expected_version + 1;
        // This definition's records, its own first, then each environment's.
        let mut audit = Vec::new();
        // One record shape: `environment: None` for the definition itself, an environment's long name for what it serves.
        let name = definition.name.to_string();
        let record = |environment: Option<String>, before: Option<Value>, after: Value, definitions: Option<Value>| AuditDraft {
            flag: Some(name.clone()),
            action,
            environment,
            user: actor.email.clone(),
            timestamp: now.clone(),
            reason: reason.clone(),
            from_environment: None,
            before,
            after: Some(after),
            source: actor.source,
            definition: definitions,
        };
        match &before {
            None => {
                decide(writer, true, &[], reason.as_deref()).map_err(refused)?;
                for environment in self.config.environments.iter() {
                    let mut state = new_state(StateSpec::initial(&definition), &actor.email);
                    state.updated_at = now.clone();
                    state.version = 1;
                    // From now on each environment serves the flag's off value (false, or its default): on its record too.
                    audit.push(record(Some(environment.name.clone()), None, to_json(&state), None));
                    write.states.push(StateWrite {
                        environment: environment.key.clone(),
                        flag: definition.name.clone(),
                        state,
                        expected_version: 0,
                    });
                }
            }
            Some(previous) => {
                let states: Vec<(&Environment, FlagState)> = self
                    .config
                    .environments
                    .iter()
                    .filter_map(|environment| self.catalog.state(&environment.key, &definition.name).map(|state| (environment, state)))
                    .collect();
                // Archiving freezes a flag; one still serving in a protected environment must be switched off there
                // first, on the record. Checked here, under the write lock, against the states the commit then checks.
                if definition.archived && !previous.archived {
                    let live: Vec<String> = states
                        .iter()
                        .filter(|(environment, state)| environment.protected && state.spec.enabled)
                        .map(|(environment, _)| environment.key.to_string())
                        .collect();
                    if !live.is_empty() {
                        return Err(ApiError::conflict(
                            "flag_enabled",
                            format!(
                                "flag `{}` is still enabled in {}; disable it there before archiving",
                                definition.name,
                                live.join(", ")
                            ),
                        ));
                    }
                }
                // A definition may not pull the rug from under a state: every environment must still be valid.
                // (Each state is kept as it is: its regex patterns were judged when it was written.)
                for (environment, state) in &states {
                    state.spec.validate_new(&definition, &[&state.spec]).map_err(|error| {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid_value",
                            format!(
                                "the new definition does not fit the state in {}: {}; change that state first",
                                environment.key, error.message
                            ),
                        )
                    })?;
                }
                let sides: Vec<EnvironmentChange<'_>> = states
                    .iter()
                    .map(|(environment, state)| EnvironmentChange::definition_edit(environment, previous, &definition, state))
                    .collect();
                let affected = decide(writer, true, &sides, reason.as_deref()).map_err(refused)?;
                let definitions = serde_json::json!({"before": to_json(previous), "after": to_json(&definition)});
                for (environment, current) in &states {
                    if !affected.iter().any(|affected| affected.environment == environment.key) {
                        // Judged as unaffected on this state: another server must not change it before this commits.
                        write.reads.push(Read::State {
                            environment: environment.key.clone(),
                            flag: definition.name.clone(),
                            version: current.version,
                        });
                        continue;
                    }
                    let after = FlagState {
                        version: current.version + 1,
                        updated_by: actor.email.clone(),
                        updated_at: now.clone(),
                        ..current.clone()
                    };
                    audit.push(record(Some(environment.name.clone()), Some(to_json(current)), to_json(&after), Some(definitions.clone())));
                    write.states.push(StateWrite {
                        environment: environment.key.clone(),
                        flag: definition.name.clone(),
                        state: after,
                        expected_version: current.version,
                    });
                }
            }
        }
        audit.insert(0, record(None, before.as_ref().map(to_json), to_json(&definition), None));
        write.audit.extend(audit);
        write.definitions.push(DefinitionWrite { definition, expected_version });
        Ok(())
    }

    /// Commits a write that needs no lock and no caller recheck (a login's new token, bootstrap), applies it to
    /// memory and publishes it to the streams.
    pub async fn commit(&self, write: Write) -> ApiResult<Vec<Change>> {
        self.commit_inner(None, None, write).await
    }

    /// Commits a write `by` a person, decided without the lock (a new token, a trigger): their record must still
    /// give them the role the request was authenticated with when it commits.
    pub async fn commit_as(&self, by: &Actor, write: Write) -> ApiResult<Vec<Change>> {
        self.commit_inner(None, Some(by), write).await
    }

    /// Commits a write decided under the write lock `by` a person (or one of Vexil's components), keeping the lock
    /// until memory shows it.
    pub async fn commit_holding(&self, guard: WriteGuard, by: &Actor, write: Write) -> ApiResult<Vec<Change>> {
        self.commit_inner(Some(guard), Some(by), write).await
    }

    /// The caller's record as the store has it now, which must still give them the role their request was
    /// authenticated with (a user disabled or demoted while the request waited changes nothing), as a read the
    /// commit checks again, so a disable committed through another server in between refuses the write too.
    async fn recheck(&self, by: &Actor) -> ApiResult<Vec<Read>> {
        if by.source == vexil_core::Source::System {
            return Ok(Vec::new());
        }
        let user = self.store.user(&by.email).await?;
        match &user {
            Some(user) if !user.disabled && user.role == by.role => {}
            Some(user) if user.disabled => {
                return Err(ApiError::forbidden("your account was disabled while this request waited; nothing was changed"));
            }
            Some(user) => {
                return Err(ApiError::forbidden(format!(
                    "your role changed from {} to {} while this request waited; nothing was changed: send it again",
                    by.role.as_str(),
                    user.role.as_str()
                )));
            }
            None => return Err(ApiError::forbidden("your account no longer exists; nothing was changed")),
        }
        // And the token the request came with is still good where it commits: a revocation (or a logout) made through
        // another server refuses the write even while this server's credential cache still trusts it.
        Ok(vec![Read::User { email: by.email.clone(), user }, Read::Token { id: by.token_id.clone(), now: crate::time::now() }])
    }

    /// The store's commit and what follows it (memory, streams, the credential cache) run as one task that the
    /// request only awaits: a client that hangs up mid-commit cannot leave the store ahead of memory (the next
    /// write to that flag would then be refused for a version memory never saw), nor the streams without the change.
    async fn commit_inner(&self, guard: Option<WriteGuard>, by: Option<&Actor>, mut write: Write) -> ApiResult<Vec<Change>> {
        if let Some(lost) = self.identity_lost() {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_replaced", format!("nothing was changed: {lost}")));
        }
        if let Some(by) = by {
            for read in self.recheck(by).await? {
                if !write.reads.contains(&read) {
                    write.reads.push(read);
                }
            }
        }
        write.idempotency = crate::idempotency::take();
        let key = write.idempotency.clone();
        let state = self.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            let credentials = crate::auth::CredentialsTouched::of(&write);
            // What memory had applied before the commit: a change numbered at or below it means the store went back.
            let applied = state.applied();
            let started = std::time::Instant::now();
            let committed = state.store.commit(write).await;
            state.telemetry.commit_seconds.observe(started.elapsed().as_secs_f64());
            if let Err(error) = &committed {
                let kind = match error {
                    StoreError::Conflict { .. } => "conflict",
                    StoreError::Invalid(_) => "invalid",
                    StoreError::Unavailable(_) => "unavailable",
                    StoreError::Unknown(_) => "unknown",
                    StoreError::Duplicate(_) => "duplicate",
                    StoreError::Corrupt(_) => "corrupt",
                };
                state.telemetry.store_errors.get_or_create(&crate::telemetry::Kind { kind }).inc();
            }
            // Done whether or not the commit succeeded: a failed commit may still have landed. Only the credentials the
            // write names are forgotten; the rest are merely rechecked, so a failed change during an outage locks no one out.
            state.credentials.forget(&credentials);
            match &committed {
                Err(error @ (StoreError::Unavailable(_) | StoreError::Unknown(_))) => state.write_failed(Some(error.to_string())),
                Ok(_) => state.write_failed(None),
                Err(_) => {}
            }
            let committed = committed?;
            let went_back =
                committed.changes.iter().any(|change| applied.get(&change.environment).is_some_and(|done| change.revision <= *done));
            if state.store.is_shared() && went_back {
                // The store numbered this change at or below what this server applied: its history went back (an older
                // backup restored). The follower would skip it; reload what the store holds, ours included, instead.
                tracing::error!("the store went back in time (restored from an older backup?); reloading what it holds");
                state.reload_from_store().await;
            } else if state.store.is_shared() {
                // The follower applies every change, ours included, in the store's order; answer once it has ours.
                state.wait_applied(&committed.changes).await;
            } else {
                state.apply(&committed.changes);
            }
            Ok(committed.changes)
        });
        let outcome: ApiResult<Vec<Change>> = task.await.map_err(|error| ApiError::internal(format!("the commit task failed: {error}")))?;
        // Refused whole (a version conflict, say): nothing was stored under the key, so a retry of this request uses it.
        if let (Err(error), Some(key)) = (&outcome, key)
            && matches!(error.status, StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY)
            && error.code != "idempotency_duplicate"
        {
            crate::idempotency::restore(key);
        }
        outcome
    }

    /// The deployment this server serves (set by `vexil serve` after checking the store's id).
    pub fn adopt_deployment(&self, id: String) {
        *self.identity.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Identity { deployment: Some(id), lost: None };
    }

    /// Asks the store whether it still carries this server's deployment; answers why not, when it does not. A store
    /// that cannot be asked answers nothing new (an outage is not a wipe).
    pub async fn check_identity(&self) -> Option<String> {
        let known = self.identity.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let deployment = known.deployment?;
        let held = match self.store.deployment().await {
            Ok(held) => held,
            Err(_) => return known.lost,
        };
        let lost = match held {
            Some(held) if held == deployment => None,
            Some(other) => Some(format!(
                "the store belongs to deployment {other}, not to this server's {deployment}: it was replaced; this server refuses writes until it is pointed at its own store again or restarted"
            )),
            None => Some(format!(
                "the store no longer carries deployment {deployment}: it was wiped (FLUSHALL) or replaced; this server refuses writes until it is restored, or until a server is started with `vexil serve --bootstrap` to begin a new deployment"
            )),
        };
        if lost.is_some() && known.lost.is_none() {
            tracing::error!(reason = lost.as_deref().unwrap_or_default(), "store identity lost");
        }
        self.identity.write().unwrap_or_else(|poisoned| poisoned.into_inner()).lost = lost.clone();
        lost
    }

    /// Reloads everything when the store's revisions went back behind what this server applied (Redis restored from
    /// an older backup of the same deployment): from then on memory and the streams show what the store holds, and
    /// writes are judged against it, instead of answering a change that the streams then never carry.
    pub async fn check_history(&self) {
        let Ok(stored) = self.store.revisions().await else { return };
        let applied = self.applied();
        let behind: Vec<String> = applied
            .iter()
            .filter_map(|(environment, revision)| {
                let held = stored.get(environment).copied().unwrap_or(0);
                (held < *revision).then(|| format!("{environment} at {held}, this server at {revision}"))
            })
            .collect();
        // The same numbers can hide another history: changes lost (a restore, `appendfsync everysec`) and as many new
        // ones written since. The change this server applied last must still be the store's change at that revision.
        let mut diverged = Vec::new();
        if behind.is_empty() {
            let last: Vec<Change> = self.last_applied.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned().collect();
            for change in last {
                if let Ok(Some(held)) = self.store.change_at(&change.environment, change.revision).await
                    && held != change
                {
                    diverged
                        .push(format!("{} revision {} is another change than this server applied", change.environment, change.revision));
                }
            }
        }
        if behind.is_empty() && diverged.is_empty() {
            return;
        }
        let behind = if behind.is_empty() { diverged } else { behind };
        tracing::error!(behind = %behind.join("; "), "the store went back in time (restored from an older backup?); reloading what it holds");
        let _guard = self.serialised_first().await;
        self.reload_from_store().await;
    }

    /// Replaces memory with what the store holds and sends every stream a snapshot; call it holding the write lock.
    async fn reload_from_store(&self) {
        match self.store.load().await {
            Ok(catalog) => self.reset(catalog),
            Err(error) => tracing::error!(%error, "reload after the store went back failed; will retry"),
        }
    }

    /// Why the store no longer carries this server's deployment, while it does not.
    pub fn identity_lost(&self) -> Option<String> {
        self.identity.read().unwrap_or_else(|poisoned| poisoned.into_inner()).lost.clone()
    }

    /// Records that writes fail (`Some(why)`) or work again (`None`), for readiness.
    pub fn write_failed(&self, why: Option<String>) {
        *self.write_failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = why;
    }

    /// Applies committed changes to memory and the streams, and records how far each environment got.
    pub(crate) fn apply(&self, changes: &[Change]) {
        self.catalog.apply(changes);
        self.hub.publish(changes);
        {
            let mut last = self.last_applied.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for change in changes {
                if last.get(&change.environment).is_none_or(|known| known.revision < change.revision) {
                    last.insert(change.environment.clone(), change.clone());
                }
            }
        }
        self.applied.send_modify(|applied| {
            for change in changes {
                let revision = applied.entry(change.environment.clone()).or_default();
                *revision = (*revision).max(change.revision);
            }
        });
    }

    /// What memory has applied, per environment.
    pub(crate) fn applied(&self) -> BTreeMap<EnvKey, u64> {
        self.applied.borrow().clone()
    }

    /// After reloading everything from the store (changes were lost to retention), memory starts over from it.
    pub(crate) fn reset(&self, catalog: vexil_store::Catalog) {
        self.last_applied.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        self.hub.reset(&catalog);
        self.applied.send_replace(catalog.revisions.clone());
        self.catalog.replace(catalog);
    }

    async fn wait_applied(&self, changes: &[Change]) {
        let mut targets: BTreeMap<&EnvKey, u64> = BTreeMap::new();
        for change in changes {
            let target = targets.entry(&change.environment).or_default();
            *target = (*target).max(change.revision);
        }
        let mut applied = self.applied.subscribe();
        let reached = applied.wait_for(|applied| {
            targets.iter().all(|(environment, revision)| applied.get(*environment).is_some_and(|done| done >= revision))
        });
        if tokio::time::timeout(std::time::Duration::from_secs(10), reached).await.is_err() {
            // The write is committed; memory will show it when the follower catches up.
            tracing::warn!("a committed change took more than 10 s to come back through the change feed");
        }
    }

    /// Ends every open stream: graceful shutdown waits for connections, and streams never end by themselves.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that changes when the server begins shutting down.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Takes the write lock: writes made outside [`AppState::commit_states`] (users, tokens) that read before they write.
    ///
    /// Writers queue in two lanes: everyone but the kill switch first waits in `lane`, so at most one of them waits on
    /// the write lock itself at any time, and a disable ([`AppState::serialised_first`]) is served after at most the
    /// holder and that one, however many writers flood the server.
    pub async fn serialised(&self) -> WriteGuard {
        queue_behind(&self.lane, &self.write_lock).await
    }

    /// The write lock for the kill switch, ahead of every other writer waiting (see [`AppState::serialised`]).
    pub async fn serialised_first(&self) -> WriteGuard {
        WriteGuard(self.write_lock.clone().lock_owned().await)
    }
}

/// The normal lane: wait in `lane` first, so at most one writer of this lane waits on `write_lock` itself.
async fn queue_behind(lane: &tokio::sync::Mutex<()>, write_lock: &Arc<tokio::sync::Mutex<()>>) -> WriteGuard {
    let lane = lane.lock().await;
    let guard = WriteGuard(write_lock.clone().lock_owned().await);
    drop(lane);
    guard
}

/// Checks the shared store's identity every few seconds, so a wiped or replaced Redis stops writes and readiness on
/// every server, not only on the one that happens to be asked.
async fn watch_identity(state: AppState) {
    let mut shutdown = state.shutdown_signal();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {
                if state.check_identity().await.is_none() {
                    state.check_history().await;
                }
            }
        }
    }
}

/// An environment added to the configuration gets every flag, disabled, as "staging mirrors production structure" asks.
async fn fill_missing_states(config: &ServerConfig, store: &dyn Store, catalog: &mut vexil_store::Catalog) -> Result<(), StoreError> {
    let mut write = Write::default();
    for environment in config.environments.iter() {
        for definition in catalog.definitions.values() {
            let missing = catalog.states.get(&environment.key).is_none_or(|states| !states.contains_key(&definition.name));
            if missing {
                write.states.push(StateWrite {
                    environment: environment.key.clone(),
                    flag: definition.name.clone(),
                    state: new_state(StateSpec::initial(definition), "system:config"),
                    expected_version: 0,
                });
            }
        }
    }
    if !write.states.is_empty() {
        let committed = store.commit(write).await?;
        crate::catalog::apply_changes(catalog, &committed.changes);
    }
    Ok(())
}

/// A state with no version yet, changed by `by`.
pub fn new_state(spec: StateSpec, by: &str) -> FlagState {
    FlagState { spec, version: 0, updated_by: by.to_owned(), updated_at: crate::time::now(), rollout: None }
}

/// Any domain value as JSON, for audit records.
pub fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::{WriteGuard, queue_behind};

    #[tokio::test]
    async fn the_kill_switch_waits_behind_at_most_the_holder_and_one_writer_whatever_the_flood() {
        let lane = Arc::new(tokio::sync::Mutex::new(()));
        let write_lock = Arc::new(tokio::sync::Mutex::new(()));
        let order = Arc::new(Mutex::new(Vec::new()));
        let holder = queue_behind(&lane, &write_lock).await;
        let mut waiting = Vec::new();
        for writer in 0..50 {
            let (lane, write_lock, order) = (lane.clone(), write_lock.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _guard = queue_behind(&lane, &write_lock).await;
                order.lock().unwrap().push(format!("writer {writer}"));
            }));
        }
        // Let every writer queue (one current-thread runtime: the spawned tasks run while this one yields).
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let kill_switch = {
            let (write_lock, order) = (write_lock.clone(), order.clone());
            tokio::spawn(async move {
                let _guard = WriteGuard(write_lock.lock_owned().await);
                order.lock().unwrap().push("kill switch".to_owned());
            })
        };
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        drop(holder);
        kill_switch.await.unwrap();
        for writer in waiting {
            writer.await.unwrap();
        }
        let order = order.lock().unwrap();
        let position = order.iter().position(|who| who == "kill switch").unwrap();
        assert!(position <= 1, "the kill switch came {position}th of {}: {order:?}", order.len());
    }
}
