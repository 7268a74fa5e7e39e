//! The Vexil domain: what a flag is, where it lives and what a valid change looks like.
//!
//! Everything here is plain data and pure functions. This crate has no async runtime and does no I/O:
//! the store persists these types, the server moves them over HTTP, the CLI prints them. Keeping the
//! rules in one place means the API, the CLI, the panel and every storage backend refuse the same bad
//! input with the same message.
//!
//! - [`name`]: validated [`FlagName`] (`<category>.<snake_case>`) and [`EnvKey`].
//! - [`environment`]: [`Environment`]s in promotion order, looked up by key or long name.
//! - [`definition`]: a flag defined once for every environment, with its type and constraints.
//! - [`state`]: a flag's state in one environment (kill switch, served value, targeting, split) and its validation.
//! - [`describe`]: a state in words (`Enabled · 50 % treatment / 50 % control · 1 rule`), pinned by `spec/summary.json`.
//! - [`diff`]: the structural difference of two states, shown before promotion, copy and import.
//! - [`overrides`]: the `FF_<FLAG_NAME>` mapping, typed parsing of override values and `.env.local` files.
//! - [`access`]: roles and what each may do.
//! - [`serving`]: what a flag serves, compared over every context at once; the exposure rule.
//! - [`gate`]: who may make a write, decided by what it changes in what each environment serves.
//! - [`audit`]: audit records and the hash chain that makes tampering detectable.
//! - [`evaluation`]: compiled flags and the evaluation engine (targets, rules, splits, reasons); no allocation when evaluating.
//! - [`guard`]: the statistics behind automatic rollback (a one-sided two-proportion z-test with a look budget).
//! - [`bucketing`]: sticky bucketing, murmur3 of `<flag>/<targetingKey>`, pinned by `spec/bucketing.json`.
//! - [`request`]: an OFREP evaluation request read straight into a context, borrowing from the body.
//! - [`semver`]: the small, non-allocating semantic-version parser used by rule conditions.

pub mod access;
pub mod audit;
mod backtracking;
pub mod bucketing;
pub mod definition;
pub mod describe;
pub mod diff;
pub mod environment;
pub mod error;
pub mod evaluation;
pub mod gate;
pub mod guard;
pub mod name;
pub mod overrides;
pub mod request;
pub mod semver;
pub mod serving;
pub mod state;
pub mod text;

pub use access::Role;
pub use audit::{AuditAction, AuditDraft, AuditRecord, Source};
pub use definition::{Criticality, FlagDefinition, FlagType, Variant};
pub use diff::{FieldChange, diff_specs};
pub use environment::{Environment, Environments};
pub use error::ValidationError;
pub use evaluation::{CompiledFlag, Context, Evaluation, EvaluationContext, Reason};
pub use name::{Categories, EnvKey, FlagName};
pub use state::{Condition, FlagState, Operator, RolloutPlan, Rule, RuleServe, Serve, Split, SplitBucket, StateSpec, Target};
