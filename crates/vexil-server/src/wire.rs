//! Request and response bodies of the HTTP API (format version 1).
//!
//! These are the shapes clients depend on; the domain types in `vexil-core` may change without
//! changing them. Request bodies refuse unknown fields, so a typo (`"enable": true`) is an error, not a silent no-op.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vexil_core::{Criticality, Environment, FieldChange, FlagDefinition, FlagState, Rule, Serve, Split, StateSpec, Target, Variant};

/// The export document's format name.
pub const EXPORT_FORMAT: &str = "vexil.states";

/// `POST /api/flags`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFlagRequest {
    /// `<category>.<snake_case>`.
    pub name: String,
    /// boolean, string, number or json.
    #[serde(rename = "type")]
    pub flag_type: String,
    /// Defaults to the first variant's value for a string, number or json flag with variants, else false, "", 0 or {}
    /// by type.
    pub default: Option<Value>,
    #[allow(missing_docs)]
    pub description: Option<String>,
    #[allow(missing_docs)]
    pub owner: Option<String>,
    #[allow(missing_docs)]
    pub tags: Option<Vec<String>>,
    #[allow(missing_docs)]
    pub criticality: Option<Criticality>,
    #[allow(missing_docs)]
    pub variants: Option<Vec<Variant>>,
    #[allow(missing_docs)]
    pub allowed_values: Option<Vec<String>>,
    #[allow(missing_docs)]
    pub min: Option<f64>,
    #[allow(missing_docs)]
    pub max: Option<f64>,
    #[allow(missing_docs)]
    pub deprecated: Option<bool>,
}

/// `PATCH /api/flags/{flag}`: only the fields given change. The type cannot change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct UpdateFlagRequest {
    pub default: Option<Value>,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Option<Vec<String>>,
    pub criticality: Option<Criticality>,
    pub variants: Option<Vec<Variant>>,
    pub allowed_values: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub deprecated: Option<bool>,
    pub reason: Option<String>,
    /// Answer which environments the edit would change what they serve in, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// One flag of a registry applied (`POST /api/flags/apply`): a new flag's whole definition, or the fields of an
/// existing one that change (others stay as they are).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ApplyEntry {
    pub name: String,
    /// boolean, string, number or json; a flag's type cannot change.
    #[serde(rename = "type")]
    pub flag_type: String,
    pub default: Option<Value>,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Option<Vec<String>>,
    pub criticality: Option<Criticality>,
    pub variants: Option<Vec<Variant>>,
    pub allowed_values: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub deprecated: Option<bool>,
    /// The definition's version the entry was computed against (0 or absent for a new flag): a different one
    /// refuses the whole apply. An archived flag listed is unarchived.
    pub version: Option<u64>,
}

/// `POST /api/flags/apply`: a registry's definitions, created, updated and archived in one write.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The flags to create or update.
    pub flags: Vec<ApplyEntry>,
    /// Flags to archive (`vexil apply --prune`: those the registry no longer lists), with their versions.
    #[serde(default)]
    pub archive: BTreeMap<String, u64>,
    /// Why: it goes with the edits of the flags in `confirmed`, which need it where they change what a protected
    /// environment serves.
    pub reason: Option<String>,
    /// The flags whose protected changes the person confirmed (what the dry run showed). Any other edit that turns
    /// out to change a protected environment is refused for want of a reason, never given this one.
    #[serde(default)]
    pub confirmed: Vec<String>,
    /// Answer what would change where, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// An environment whose serving or state an applied edit changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplyAffected {
    /// Its key.
    pub environment: String,
    /// Whether it is protected (then the edit needs the admin role and a reason).
    pub protected: bool,
    /// `serving` or `state`.
    pub effect: String,
}

/// What applying a registry did (or would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplyResponse {
    /// Flags defined.
    pub created: Vec<String>,
    /// Flags whose definition changed, with the environments each change reaches.
    pub updated: BTreeMap<String, Vec<ApplyAffected>>,
    /// Flags listed whose definition is already as given.
    pub unchanged: Vec<String>,
    /// Flags archived.
    pub archived: Vec<String>,
    /// Whether it was committed (false for a dry run).
    pub applied: bool,
}

/// A body that only carries a reason (enable, disable, archive).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why; required in protected environments.
    pub reason: Option<String>,
}

/// `POST /api/flags/{flag}/environments/{env}/rollback`: undo the change that produced the current state.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Why; required in protected environments.
    pub reason: Option<String>,
    /// Answer what would be restored and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The state's version the caller saw (with a dry run's answer): a different one refuses the rollback (412).
    pub expected_version: Option<u64>,
}

/// What a rollback restores, and whether it was made.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollbackResponse {
    /// The flag.
    pub flag: String,
    /// The environment's key.
    pub environment: String,
    /// The audit record of the change undone.
    pub undoes: u64,
    /// What that change was (`update`, `promote`, `rollback`, …), by whom.
    pub undoes_action: String,
    /// Who made it.
    pub undoes_user: String,
    /// What changes, line by line, in words (`vexil_core::describe`).
    pub described: Vec<String>,
    /// The state's version the rollback was computed against.
    pub target_version: u64,
    /// Whether it was made (false for a dry run).
    pub applied: bool,
    /// What the state serves after it (or, for a dry run, now), in words.
    pub summary: String,
    /// The state after it (or, for a dry run, now).
    pub state: vexil_core::FlagState,
}

/// `PUT /api/flags/{flag}/environments/{env}`: the whole new state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SetStateRequest {
    pub enabled: bool,
    pub serve: Serve,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub split: Option<Split>,
    pub reason: Option<String>,
}

impl SetStateRequest {
    /// The state content asked for.
    pub fn spec(&self) -> StateSpec {
        StateSpec {
            enabled: self.enabled,
            serve: self.serve.clone(),
            targets: self.targets.clone(),
            rules: self.rules.clone(),
            split: self.split.clone(),
        }
    }
}

/// `POST /api/flags/{flag}/promote`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Source environment (key or long name).
    pub from: String,
    /// Target environment.
    pub to: String,
    /// Allow skipping environments in the promotion order.
    #[serde(default)]
    pub skip: bool,
    /// Why; required for protected targets.
    pub reason: Option<String>,
    /// The target's version when the diff was shown; a different version refuses the promotion.
    pub expected_version: Option<u64>,
    /// The source's version when the diff was shown: what was approved is what is promoted.
    pub expected_source_version: Option<u64>,
    /// The definition's version when the diff was shown: the variants it names still mean what they meant.
    pub expected_definition_version: Option<u64>,
    /// Only compute the diff.
    #[serde(default)]
    pub dry_run: bool,
    /// Promote as a gradual rollout instead of all at once (boolean flags).
    pub rollout: Option<RolloutRequest>,
}

/// A rollout asked for with a promotion: percentages and the time between steps.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// Growing percentages, such as `[10, 50, 100]`.
    pub steps: Vec<f64>,
    /// `4s`, `30m`, `2h`, `1d`.
    pub every: String,
}

/// `POST /api/flags/copy`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// Source environment.
    pub from: String,
    /// Target environment.
    pub to: String,
    /// Which flags (all when absent).
    pub flags: Option<Vec<String>>,
    /// Why; required for protected targets.
    pub reason: Option<String>,
    /// Target versions as shown with the diff, by flag.
    pub expected_versions: Option<BTreeMap<String, u64>>,
    /// Source versions as shown with the diff, by flag.
    pub expected_source_versions: Option<BTreeMap<String, u64>>,
    /// Definition versions as shown with the diff, by flag.
    pub expected_definition_versions: Option<BTreeMap<String, u64>>,
    /// Only compute the diff.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /api/flags/bulk`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// `enable` or `disable`.
    pub action: String,
    /// The environment.
    pub environment: String,
    /// These flags…
    pub flags: Option<Vec<String>>,
    /// …or every unarchived flag with this tag.
    pub tag: Option<String>,
    /// Why; required for protected environments.
    pub reason: Option<String>,
}

/// An environment's flag states, as `vexil export` writes and `vexil import` reads them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportDocument {
    /// Always `vexil.states`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// The environment exported (key).
    pub environment: String,
    /// When.
    #[serde(default)]
    pub exported_at: String,
    /// The environment's revision at export.
    #[serde(default)]
    pub revision: u64,
    /// Each flag's state content.
    pub flags: BTreeMap<String, StateSpec>,
}

/// `POST /api/environments/{env}/import`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The document to import.
    pub document: ExportDocument,
    /// Why; required for protected environments.
    pub reason: Option<String>,
    /// Target versions as shown with the diff, by flag: with them, what the diff showed is what is imported.
    pub expected_versions: Option<BTreeMap<String, u64>>,
    /// Definition versions as shown with the diff, by flag.
    pub expected_definition_versions: Option<BTreeMap<String, u64>>,
    /// Only compute the diff.
    #[serde(default)]
    pub dry_run: bool,
}

/// An environment, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvironmentView {
    /// Short key.
    pub key: String,
    /// Long name.
    pub name: String,
    /// Display title.
    pub title: String,
    /// Application URL.
    pub url: Option<String>,
    /// Needs admin, confirmation and reason.
    pub protected: bool,
    /// Current revision.
    pub revision: u64,
    /// How long the guard watches a change here (0: only rollouts are watched).
    pub guard_window_seconds: u64,
}

impl EnvironmentView {
    /// The view of `environment` at `revision`, on a server whose guard watches protected changes for `guard_window`.
    pub fn new(environment: &Environment, revision: u64, guard_window: std::time::Duration) -> Self {
        Self {
            key: environment.key.to_string(),
            name: environment.name.clone(),
            title: environment.title.clone(),
            url: environment.url.clone(),
            protected: environment.protected,
            revision,
            guard_window_seconds: if environment.protected { guard_window.as_secs() } else { 0 },
        }
    }
}

/// A flag with its state in every environment.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagView {
    /// The definition's fields.
    #[serde(flatten)]
    pub definition: FlagDefinition,
    /// The category (the part of the name before the dot).
    pub category: String,
    /// State by environment key, in promotion order.
    #[schema(value_type = BTreeMap<String, FlagState>)]
    pub environments: EnvironmentStates,
    /// What each environment's state serves, in words, by environment key (`vexil_core::describe`).
    #[schema(value_type = BTreeMap<String, String>)]
    pub summaries: Summaries,
    /// Each environment's state explained line by line (targets, rules, everyone else, off), by environment key: on
    /// `GET /api/flags/{flag}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, vexil_core::describe::Explanation>>)]
    pub explained: Option<ByEnvironment<vexil_core::describe::Explanation>>,
}

/// Values by environment key, in promotion order, serialised as a JSON object straight from the list.
#[derive(Debug)]
pub struct ByEnvironment<T>(pub Vec<(String, T)>);

impl<T> Default for ByEnvironment<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Serialize> Serialize for ByEnvironment<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (environment, value) in &self.0 {
            map.serialize_entry(environment, value)?;
        }
        map.end()
    }
}

/// A flag's state by environment key.
pub type EnvironmentStates = ByEnvironment<FlagState>;

/// What each environment's state serves, in words, by environment key.
pub type Summaries = ByEnvironment<String>;

/// `GET /api/flags`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagsResponse {
    /// Environments in promotion order.
    pub environments: Vec<EnvironmentView>,
    /// Flags by name.
    pub flags: Vec<FlagView>,
}

/// A flag's state in one environment, after a read or a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateResponse {
    /// The flag.
    pub flag: String,
    /// The environment's key.
    pub environment: String,
    /// Whether this request changed anything (false when the state already was as asked).
    pub changed: bool,
    /// What the state serves, in words (`Enabled · rolled out to 30 %`; `vexil_core::describe`, `spec/summary.json`).
    pub summary: String,
    /// The state.
    pub state: FlagState,
}

/// A promotion's diff, and whether it was applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromoteResponse {
    /// The flag.
    pub flag: String,
    /// Source environment key.
    pub from: String,
    /// Target environment key.
    pub to: String,
    /// Whether the target is protected (the CLI asks for confirmation).
    pub protected: bool,
    /// What changes in the target.
    pub changes: Vec<FieldChange>,
    /// The same in words, line by line (`vexil_core::describe`, pinned by `spec/changes.json`).
    pub described: Vec<String>,
    /// The source's version.
    pub source_version: u64,
    /// The target's version the diff was computed against.
    pub target_version: u64,
    /// The definition's version the diff was computed against.
    pub definition_version: u64,
    /// Whether the promotion was made (false for a dry run or an empty diff).
    pub applied: bool,
}

/// One flag of a copy or import diff.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagDiff {
    /// The flag.
    pub flag: String,
    /// What changes.
    pub changes: Vec<FieldChange>,
    /// The same in words, line by line (`vexil_core::describe`, pinned by `spec/changes.json`).
    pub described: Vec<String>,
    /// The target's version the diff was computed against.
    pub target_version: u64,
    /// For a copy: the source's version the diff was computed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_version: Option<u64>,
    /// The definition's version the diff was computed against.
    pub definition_version: u64,
}

/// A copy's or import's diff, and whether it was applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchDiffResponse {
    /// Source environment key (or the document's environment for imports).
    pub from: String,
    /// Target environment key.
    pub to: String,
    /// Whether the target is protected.
    pub protected: bool,
    /// Flags whose state would change.
    pub flags: Vec<FlagDiff>,
    /// Flags already identical.
    pub unchanged: Vec<String>,
    /// Whether it was applied.
    pub applied: bool,
}

/// `POST /api/flags/bulk`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    /// The environment key.
    pub environment: String,
    /// Flags changed.
    pub changed: Vec<String>,
    /// Flags already in the asked state.
    pub unchanged: Vec<String>,
}
