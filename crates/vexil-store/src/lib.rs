//! Vexil's persistence: one [`Store`] trait, its backends, and the conformance suite they all pass.
//!
//! The server never asks a backend for a single flag on a request path: it [`Store::load`]s everything
//! once into memory and then only sends [`Write`]s. A write is the unit of atomicity: the definitions,
//! states, users and tokens it carries, the environments' new revisions, one change record per touched
//! flag and environment, and the audit records are committed together or not at all, after every
//! expected version has been checked (optimistic concurrency).
//!
//! - [`sqlite`]: the embedded default, one SQLite file in WAL mode with a full fsync on every commit.
//! - [`redis_store`]: Redis in the seed's layout (`flags:<env>:<flag>`), one Lua script per write, shared by several servers.
//! - [`conformance`]: behaviour every backend must show, written once against the trait.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vexil_core::{AuditAction, AuditDraft, AuditRecord, EnvKey, FlagDefinition, FlagName, FlagState, Role};

pub mod conformance;
pub mod redis_store;
pub mod sqlite;

pub use redis_store::RedisStore;
pub use sqlite::SqliteStore;

/// Everything the server keeps in memory, as loaded from the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Every flag definition, archived ones included.
    pub definitions: BTreeMap<FlagName, FlagDefinition>,
    /// Each environment's flag states.
    pub states: BTreeMap<EnvKey, BTreeMap<FlagName, FlagState>>,
    /// Each environment's current revision (0 before the first change).
    pub revisions: BTreeMap<EnvKey, u64>,
}

/// A definition to store, created when `expected_version` is 0, replaced when it matches the stored version.
#[derive(Debug, Clone)]
pub struct DefinitionWrite {
    /// The new definition; the store sets its `version` to `expected_version + 1`.
    pub definition: FlagDefinition,
    /// The version the writer saw (0: the flag must not exist yet).
    pub expected_version: u64,
}

/// A state to store, created when `expected_version` is 0, replaced when it matches the stored version.
#[derive(Debug, Clone)]
pub struct StateWrite {
    /// The environment.
    pub environment: EnvKey,
    /// The flag; it must be defined (already, or by the same write).
    pub flag: FlagName,
    /// The new state; the store sets its `version` to `expected_version + 1`.
    pub state: FlagState,
    /// The version the writer saw (0: no state yet).
    pub expected_version: u64,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The user's email, their identity in the audit trail.
    pub email: String,
    /// What they may do.
    pub role: Role,
    /// An Argon2 PHC string, if the user can log in with a password.
    pub password_hash: Option<String>,
    /// When the account was created (RFC 3339 UTC).
    pub created_at: String,
    /// A disabled user's tokens stop working.
    pub disabled: bool,
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A personal API token: acts as its user.
    Personal,
    /// An SDK key: read-only, scoped to one environment.
    Sdk,
    /// A client-side key, for code that runs where anyone can read it (a browser bundle): it only evaluates flags for
    /// the context it sends, in one environment; it never reads the stream, which holds every rule and targeting key.
    Client,
    /// A monitoring trigger: its secret URL rolls one flag back in one environment.
    Trigger,
}

/// A stored token; the secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public identifier, shown in listings and audit records.
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// Personal token or SDK key.
    pub kind: TokenKind,
    /// The user a personal token acts as (for SDK keys, who created it).
    pub user: String,
    /// The environment an SDK key is scoped to.
    pub environment: Option<EnvKey>,
    /// A label chosen by its creator.
    pub name: String,
    /// When it was created (RFC 3339 UTC).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// For triggers: the flag it rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// When it stops working by itself (panel sessions), if ever (RFC 3339 UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// For triggers: what firing does, `disable` or `rollback` (absent on triggers made before actions existed,
    /// which roll back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For client-side keys: the web origins (`https://app.example.com`) whose pages may use the key; any when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
}

/// One atomic write.
#[derive(Debug, Clone, Default)]
pub struct Write {
    /// Definitions to create or replace.
    pub definitions: Vec<DefinitionWrite>,
    /// States to create or replace.
    pub states: Vec<StateWrite>,
    /// Users to create or replace (by email).
    pub users: Vec<User>,
    /// Tokens to create or replace (by id).
    pub tokens: Vec<TokenRecord>,
    /// Audit records to append, in order.
    pub audit: Vec<AuditDraft>,
    /// Versions the write was decided on but does not write (the definition a state write was judged against, the
    /// states a definition edit was judged against): the commit is refused as a conflict unless each still holds, so
    /// a writer elsewhere cannot slip a change between the decision and the commit.
    pub reads: Vec<Read>,
    /// The client's `Idempotency-Key` for this write: kept with it atomically for a day, and refused
    /// ([`StoreError::Duplicate`]) when a write with the same key was committed already, so a retry is never done twice.
    pub idempotency: Option<IdempotencyKey>,
}

/// An idempotency key and the fingerprint of the request it was sent with (who, what, with which body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey {
    /// The client's key.
    pub key: String,
    /// A hash of the request it came with: the same key with another request is refused, not replayed.
    pub fingerprint: String,
}

/// What the store remembers of a write committed under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// The request's fingerprint.
    pub fingerprint: String,
    /// The audit records the write appended.
    pub audit: Vec<u64>,
    /// The answer the server gave (`{"status", "body"}` as JSON text), once it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// How long idempotency keys are remembered.
pub const IDEMPOTENCY_SECONDS: u64 = 24 * 3600;

/// A version a write relied on, checked by the store in the same atomic step as the write.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// The flag's definition is at this version (0: not defined).
    Definition {
        /// The flag.
        flag: FlagName,
        /// Its definition's version.
        version: u64,
    },
    /// The user's record is exactly this (`None`: there is no such user): who may do what was decided on it (the
    /// caller's role, the admins counted before a demotion).
    User {
        /// The user's email.
        email: String,
        /// The record as it was read.
        user: Option<User>,
    },
    /// The token exists and is usable at `now` (not revoked, not expired): the credential a person's write was made
    /// with, so a revocation committed anywhere refuses their later writes at once.
    Token {
        /// The token's id.
        id: String,
        /// The commit's time (RFC 3339 UTC), compared with the token's expiry.
        now: String,
    },
    /// The flag's state in the environment is at this version (0: none).
    State {
        /// The environment.
        environment: EnvKey,
        /// The flag.
        flag: FlagName,
        /// Its state's version there.
        version: u64,
    },
}

/// One change record: the flag's definition and state in one environment after a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The environment.
    pub environment: EnvKey,
    /// The environment's revision after this change; each change has its own.
    pub revision: u64,
    /// The flag's definition after the commit.
    pub definition: FlagDefinition,
    /// The flag's state in the environment after the commit.
    pub state: FlagState,
}

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Committed {
    /// One change per touched flag and environment, in revision order per environment.
    pub changes: Vec<Change>,
    /// The audit records as stored (with ids and hashes).
    pub audit: Vec<AuditRecord>,
}

/// Changes after a revision, or the news that some are no longer retained.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangesSince {
    /// Every change after the revision asked for, in order.
    Changes(Vec<Change>),
    /// Some of the changes after that revision were pruned; the caller needs a fresh snapshot.
    Gone,
}

/// Audit filters; all are optional and combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Records about this flag.
    pub flag: Option<String>,
    /// Records in this environment (long name).
    pub environment: Option<String>,
    /// Records by this user (email or `system:…`).
    pub user: Option<String>,
    /// Records of this action.
    pub action: Option<AuditAction>,
    /// At or after this time (RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub since: Option<String>,
    /// Before this time (same format).
    pub until: Option<String>,
    /// Only records older than this id (the cursor of the previous page).
    pub before_id: Option<u64>,
    /// Only records of no environment: a definition's own (with `flag`: its definition's history).
    pub definitions_only: bool,
    /// Page size.
    pub limit: u32,
}

/// A page of audit records, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditPage {
    /// The records.
    pub entries: Vec<AuditRecord>,
    /// The cursor for the next (older) page, if there is one.
    pub next: Option<u64>,
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Records checked.
    pub records: u64,
    /// Whether the whole chain is intact.
    pub intact: bool,
    /// The first record that does not fit, and why.
    pub problem: Option<String>,
}

/// Counts an SDK reported for one flag and variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricCount {
    /// The flag.
    pub flag: String,
    /// The variant served (`true`/`false` for booleans).
    pub variant: String,
    /// Evaluations that served it.
    pub evaluations: u64,
    /// Errors the application attributed to it.
    pub errors: u64,
}

/// Aggregated counts of one variant in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricRow {
    /// The bucket: whole minutes since the Unix epoch.
    pub bucket: u64,
    /// The variant.
    pub variant: String,
    /// Evaluations in the bucket.
    pub evaluations: u64,
    /// Errors in the bucket.
    pub errors: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An expected version did not match: someone else wrote first.
    #[error("{target} is at version {actual}, not {expected}")]
    Conflict {
        /// What was written (`flag ui.x`, `ui.x in prod`).
        target: String,
        /// The version the writer expected.
        expected: u64,
        /// The version found.
        actual: u64,
    },
    /// The write refers to something that does not exist (a state of an undefined flag, an unknown environment).
    #[error("{0}")]
    Invalid(String),
    /// The backend cannot be reached; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A write was sent but no answer came back (a timeout, a connection lost mid-command, a failover): it may or may
    /// not have been applied.
    #[error("no answer from the store: {0}")]
    Unknown(String),
    /// A write with this idempotency key was committed already.
    #[error("idempotency key `{0}` was used by a committed write")]
    Duplicate(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A `Result` with a [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;

/// The persistence interface every backend implements.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every definition, state and revision.
    async fn load(&self) -> StoreResult<Catalog>;

    /// Commits a write atomically, or refuses it whole.
    async fn commit(&self, write: Write) -> StoreResult<Committed>;

    /// The changes of `environment` after `revision`, at most `limit` of them.
    async fn changes_since(&self, environment: &EnvKey, revision: u64, limit: u32) -> StoreResult<ChangesSince>;

    /// Audit records matching a query, newest first.
    async fn audit(&self, query: AuditQuery) -> StoreResult<AuditPage>;

    /// Walks the whole audit chain and reports the first break.
    async fn verify_audit(&self) -> StoreResult<ChainReport>;

    /// A user by email.
    async fn user(&self, email: &str) -> StoreResult<Option<User>>;

    /// Every user.
    async fn users(&self) -> StoreResult<Vec<User>>;

    /// A token by the SHA-256 of its secret.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;

    /// Every token (revoked ones included).
    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>>;

    /// Whether the backend answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Registers the configured environments (and anything else the backend keeps besides data) once the server has
    /// decided to use this store; opening a store writes nothing, so a server that refuses a store leaves it as it was.
    async fn prepare(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Each environment's current revision, as the store has it.
    async fn revisions(&self) -> StoreResult<BTreeMap<EnvKey, u64>>;

    /// The change record of `revision` in `environment`, while it is retained.
    async fn change_at(&self, environment: &EnvKey, revision: u64) -> StoreResult<Option<Change>>;

    /// The deployment this store belongs to: an id written once, when its first server set it up. `None` for a store
    /// that has none (new, wiped, or written before deployments had ids).
    async fn deployment(&self) -> StoreResult<Option<String>>;

    /// Writes `id` as the store's deployment unless it has one; answers the id the store holds afterwards.
    async fn claim_deployment(&self, id: &str) -> StoreResult<String>;

    /// What the store remembers of the write committed under `key`, within [`IDEMPOTENCY_SECONDS`].
    async fn remembered(&self, key: &str) -> StoreResult<Option<Remembered>>;

    /// Keeps the answer given to the write committed under `key`, for retries.
    async fn remember_response(&self, key: &str, response: &str) -> StoreResult<()>;

    /// Whether the backend takes a write (a probe that changes nothing anyone reads): asked by readiness after a
    /// write failed, so a full disk or a read-only replica keeps a server out of rotation until writes work again.
    async fn ping_write(&self) -> StoreResult<()> {
        self.ping().await
    }

    /// Adds SDK counts to one time bucket (minutes since the epoch) of an environment; every server adds to the same totals.
    async fn add_metrics(&self, environment: &EnvKey, bucket: u64, counts: &[MetricCount]) -> StoreResult<()>;

    /// A flag's counts in an environment from `since_bucket` on, by bucket and variant, oldest first.
    async fn metrics(&self, environment: &EnvKey, flag: &str, since_bucket: u64) -> StoreResult<Vec<MetricRow>>;

    /// Whether other servers may write to this store too. A server on a shared store learns of every change,
    /// its own included, by [`Store::follow`], and applies them in revision order.
    fn is_shared(&self) -> bool {
        false
    }

    /// Waits up to `block` for changes after `positions` (a revision per environment) and returns them in
    /// revision order per environment. Only shared stores have a feed to follow.
    async fn follow(&self, positions: &BTreeMap<EnvKey, u64>, block: std::time::Duration) -> StoreResult<Vec<Change>> {
        let _ = (positions, block);
        Ok(Vec::new())
    }
}
