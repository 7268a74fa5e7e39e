//! Audit records and their hash chain.
//!
//! Every committed write appends records in the same atomic commit as the state change. Each record
//! carries the hash of the one before it, `sha256(previous hash ‖ canonical JSON of the record)`, so a
//! record edited, removed or inserted behind the server's back breaks the chain and `vexil audit verify` says where.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ValidationError;
use crate::text::check_text;

/// The hash the first record chains from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum AuditAction {
    Create,
    Update,
    Enable,
    Disable,
    Promote,
    Copy,
    Import,
    Archive,
    Unarchive,
    Delete,
    RolloutStep,
    Rollback,
    UserAdd,
    UserUpdate,
    TokenCreate,
    TokenRevoke,
}

impl AuditAction {
    /// The name used on the wire and in filters.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Update => "update",
            AuditAction::Enable => "enable",
            AuditAction::Disable => "disable",
            AuditAction::Promote => "promote",
            AuditAction::Copy => "copy",
            AuditAction::Import => "import",
            AuditAction::Archive => "archive",
            AuditAction::Unarchive => "unarchive",
            AuditAction::Delete => "delete",
            AuditAction::RolloutStep => "rollout_step",
            AuditAction::Rollback => "rollback",
            AuditAction::UserAdd => "user_add",
            AuditAction::UserUpdate => "user_update",
            AuditAction::TokenCreate => "token_create",
            AuditAction::TokenRevoke => "token_revoke",
        }
    }

    /// Every action, for error messages and filters.
    pub const ALL: [AuditAction; 16] = [
        AuditAction::Create,
        AuditAction::Update,
        AuditAction::Enable,
        AuditAction::Disable,
        AuditAction::Promote,
        AuditAction::Copy,
        AuditAction::Import,
        AuditAction::Archive,
        AuditAction::Unarchive,
        AuditAction::Delete,
        AuditAction::RolloutStep,
        AuditAction::Rollback,
        AuditAction::UserAdd,
        AuditAction::UserUpdate,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
    ];

    /// Parses an action name.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        Self::ALL.into_iter().find(|action| action.as_str() == input).ok_or_else(|| {
            ValidationError::new(
                "action",
                format!(
                    "action `{}` is unknown; known: {}",
                    crate::name::printable(input),
                    Self::ALL.map(|action| action.as_str()).join(", ")
                ),
            )
        })
    }
}

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The `vexil` command line.
    Cli,
    /// Any other HTTP client.
    #[default]
    Api,
    /// The admin panel.
    Panel,
    /// Vexil itself (rollouts, the guard, bootstrap).
    System,
}

impl Source {
    /// Parses `cli`, `api`, `panel` or `system`.
    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "cli" => Some(Source::Cli),
            "api" => Some(Source::Api),
            "panel" => Some(Source::Panel),
            "system" => Some(Source::System),
            _ => None,
        }
    }
}

/// A record before the store has given it an id and a place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditDraft {
    /// The flag concerned, if any (`ui.new_feature`).
    pub flag: Option<String>,
    /// What happened.
    pub action: AuditAction,
    /// The environment's long name (`production`), if any.
    pub environment: Option<String>,
    /// The actor's email, or `system:<component>`.
    pub user: String,
    /// RFC 3339 UTC, seconds precision (`2025-12-04T10:30:00Z`).
    pub timestamp: String,
    /// Why, as the actor gave it.
    pub reason: Option<String>,
    /// For promote, copy and import: the environment the state came from (long name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_environment: Option<String>,
    /// The state (or definition) before.
    pub before: Option<Value>,
    /// The state (or definition) after.
    pub after: Option<Value>,
    /// Where the change came from.
    pub source: Source,
    /// For an environment's record of a definition change that altered what the environment serves (its state
    /// is the same, the values it resolves to are not): the definition before and after, `{"before", "after"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Position in the trail, from 1, without gaps.
    pub id: u64,
    /// The flag concerned, if any.
    pub flag: Option<String>,
    /// What happened.
    pub action: AuditAction,
    /// The environment's long name, if any.
    pub environment: Option<String>,
    /// The actor's email, or `system:<component>`.
    pub user: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// Why.
    pub reason: Option<String>,
    /// For promote, copy and import: where the state came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_environment: Option<String>,
    /// Before.
    pub before: Option<Value>,
    /// After.
    pub after: Option<Value>,
    /// Where the change came from.
    pub source: Source,
    /// For a definition change that altered what this environment serves: the definition before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
    /// The hash of the previous record ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// `sha256(prev_hash ‖ canonical record)`, hex.
    pub hash: String,
}

impl AuditRecord {
    /// Seals a draft as record `id`, chained after `prev_hash`.
    pub fn seal(id: u64, prev_hash: &str, draft: AuditDraft) -> Self {
        let hash = chain_hash(id, prev_hash, &draft);
        Self {
            id,
            flag: draft.flag,
            action: draft.action,
            environment: draft.environment,
            user: draft.user,
            timestamp: draft.timestamp,
            reason: draft.reason,
            from_environment: draft.from_environment,
            before: draft.before,
            after: draft.after,
            source: draft.source,
            definition: draft.definition,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }

    /// The draft this record was sealed from.
    pub fn draft(&self) -> AuditDraft {
        AuditDraft {
            flag: self.flag.clone(),
            action: self.action,
            environment: self.environment.clone(),
            user: self.user.clone(),
            timestamp: self.timestamp.clone(),
            reason: self.reason.clone(),
            from_environment: self.from_environment.clone(),
            before: self.before.clone(),
            after: self.after.clone(),
            source: self.source,
            definition: self.definition.clone(),
        }
    }

    /// Whether the stored hash matches the record's content and its stated predecessor.
    pub fn hash_is_valid(&self) -> bool {
        chain_hash(self.id, &self.prev_hash, &self.draft()) == self.hash
    }
}

/// Checks a reason given by a person: one printable line of at most [`MAX_REASON_CHARS`].
pub fn check_reason(reason: &str) -> Result<(), ValidationError> {
    if !crate::text::has_visible_text(reason) {
        return Err(ValidationError::new(
            "reason",
            "reason is empty: it has no letter or digit, only spaces or invisible characters; say why the change is made",
        ));
    }
    check_text("reason", reason, MAX_REASON_CHARS, false)
}

fn chain_hash(id: u64, prev_hash: &str, draft: &AuditDraft) -> String {
    let body = serde_json::json!({
        "id": id,
        "flag": draft.flag,
        "action": draft.action,
        "environment": draft.environment,
        "user": draft.user,
        "timestamp": draft.timestamp,
        "reason": draft.reason,
        "from_environment": draft.from_environment,
        "before": draft.before,
        "after": draft.after,
        "source": draft.source,
    });
    let mut body = body;
    // Only records that have it hash it, so every record sealed before the field existed still verifies.
    if let Some(definition) = &draft.definition {
        body["definition"] = definition.clone();
    }
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    write_canonical(&body, &mut hasher);
    hex::encode(hasher.finalize())
}

/// Feeds JSON with object keys sorted, so the hash does not depend on how a backend ordered them.
fn write_canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    hasher.update(b",");
                }
                hasher.update(serde_json::to_string(key).unwrap_or_default().as_bytes());
                hasher.update(b":");
                write_canonical(&map[key], hasher);
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    hasher.update(b",");
                }
                write_canonical(item, hasher);
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn draft(reason: &str) -> AuditDraft {
        AuditDraft {
            flag: Some("ui.new_feature".into()),
            action: AuditAction::Enable,
            environment: Some("production".into()),
            user: "admin@asimo.io".into(),
            timestamp: "2025-12-04T10:30:00Z".into(),
            reason: Some(reason.into()),
            from_environment: None,
            before: Some(json!({"enabled": false, "b": 1, "a": 2})),
            after: Some(json!({"enabled": true})),
            source: Source::Cli,
            definition: None,
        }
    }

    #[test]
    fn any_edit_breaks_the_hash() {
        let record = AuditRecord::seal(1, GENESIS_HASH, draft("Rollout approved by PM"));
        assert!(record.hash_is_valid());
        let mut edited = record.clone();
        edited.reason = Some("nothing to see".into());
        assert!(!edited.hash_is_valid());
        let mut moved = record.clone();
        moved.id = 2;
        assert!(!moved.hash_is_valid());
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let mut reordered = draft("x");
        reordered.before = Some(json!({"a": 2, "enabled": false, "b": 1}));
        assert_eq!(AuditRecord::seal(1, GENESIS_HASH, draft("x")).hash, AuditRecord::seal(1, GENESIS_HASH, reordered).hash);
    }

    #[test]
    fn reasons_are_one_printable_line() {
        assert!(check_reason("Incident #123").is_ok());
        assert!(check_reason("a\nuser: root").is_err());
        assert!(check_reason("   ").is_err());
        assert!(check_reason(&"x".repeat(501)).is_err());
    }
}
