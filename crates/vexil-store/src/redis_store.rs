//! The Redis backend, in the seed's layout: the state of flag F in environment E is the JSON document at
//! `flags:<E>:<F>` (E the short key), readable with `redis-cli GET flags:prod:ui.new_feature`.
//!
//! Everything else lives under `vexil:` so that `SCAN … MATCH flags:prod:*` returns exactly production's states:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `flags:<env>:<flag>` | string | the flag's state in that environment (JSON) |
//! | `vexil:definitions` | hash | flag name → definition (JSON) |
//! | `vexil:revisions` | hash | environment key → revision |
//! | `vexil:changes:<env>` | stream | one entry per change, id `0-<revision>`, field `doc`; trimmed to the retention |
//! | `vexil:audit` | hash | record id → audit record (JSON) |
//! | `vexil:audit:all`, `vexil:audit:{flag,environment,user,action}:<value>` | sorted sets | record ids, for queries |
//! | `vexil:audit:meta` | hash | `tip` (last id) and `hash` (its hash) |
//! | `vexil:users` | hash | email → user (JSON) |
//! | `vexil:tokens`, `vexil:token_hashes` | hashes | id → token (JSON); SHA-256 of the secret → id |
//!
//! A write is one Lua script (`commit.lua`): every version check first, then every key, so nothing partial is
//! ever visible. The audit chain is sealed here from the tip read before the script; the script refuses when the
//! tip moved (another writer got there first) and the write is sealed again and retried.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde_json::Value;
use vexil_core::audit::GENESIS_HASH;
use vexil_core::{AuditRecord, EnvKey, FlagDefinition, FlagName, FlagState};

use crate::{
    AuditPage, AuditQuery, Catalog, ChainReport, Change, ChangesSince, Committed, MetricCount, MetricRow, Store, StoreError, StoreResult,
    TokenRecord, User, Write,
};

/// How often a write is sealed again when other writers keep moving the audit tip.
const SEAL_ATTEMPTS: usize = 20;

/// The Redis store.
#[derive(Clone)]
pub struct RedisStore {
    /// The primary's client and connection; replaced when Sentinel names a new primary.
    primary: std::sync::Arc<std::sync::RwLock<Primary>>,
    /// The follower's own connection: a blocking `XREAD` must not hold up other commands.
    follower: std::sync::Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
    environments: Vec<EnvKey>,
    retention: u64,
    script: redis::Script,
    /// Replicas a commit must reach (`WAIT`) before it is acknowledged, and how long to wait for them.
    replicas: (u32, std::time::Duration),
}

/// Where writes go.
struct Primary {
    client: redis::Client,
    connection: ConnectionManager,
    /// `host:port`, for logs and for noticing a failover.
    address: String,
}

/// How a `RedisStore` reaches its primary: a fixed URL, or Sentinel naming it.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// `redis://host:port[/db]`.
    Direct(String),
    /// `redis+sentinel://host:port[,host:port…]/<master name>[/db]`.
    Sentinel {
        /// The sentinels.
        sentinels: Vec<String>,
        /// The name the sentinels monitor the primary under.
        master: String,
        /// The database number.
        db: i64,
        /// The password for the primary and replicas, if any.
        password: Option<String>,
    },
}

impl RedisTarget {
    /// Reads `redis://…` or `redis+sentinel://…`; the message says what is accepted.
    pub fn parse(url: &str) -> StoreResult<Self> {
        let Some(rest) = url.strip_prefix("redis+sentinel://") else { return Ok(Self::Direct(url.to_owned())) };
        let explain = || {
            StoreError::Unavailable(format!(
                "redis URL `{url}` is not a Sentinel URL such as redis+sentinel://host1:26379,host2:26379/mymaster[/db]"
            ))
        };
        let (password, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (Some(credentials.rsplit(':').next().unwrap_or(credentials).to_owned()), rest),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/').ok_or_else(explain)?;
        let mut segments = path.split('/');
        let master = segments.next().filter(|master| !master.is_empty()).ok_or_else(explain)?.to_owned();
        let db = match segments.next() {
            Some(db) if !db.is_empty() => db.parse().map_err(|_| explain())?,
            _ => 0,
        };
        let sentinels: Vec<String> = hosts.split(',').filter(|host| !host.is_empty()).map(str::to_owned).collect();
        if sentinels.is_empty() {
            return Err(explain());
        }
        Ok(Self::Sentinel { sentinels, master, db, password })
    }
}
impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("environments", &self.environments).finish()
    }
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("{what}: {error}")))
}

fn encode<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain types always serialise")
}

#[derive(Serialize)]
struct Plan<'a> {
    definitions: Vec<PlannedDocument<'a>>,
    states: Vec<PlannedState<'a>>,
    users: Vec<PlannedUser<'a>>,
    tokens: Vec<PlannedToken<'a>>,
    audit: Vec<PlannedAudit<'a>>,
    audit_tip: u64,
    environments: Vec<&'a str>,
    retention: u64,
    /// Versions the write relied on: `env` absent for a definition.
    reads: Vec<PlannedRead<'a>>,
    /// User records the write relied on.
    user_reads: Vec<PlannedUserRead<'a>>,
    /// Tokens that must be usable: `[id, now]`.
    token_reads: Vec<(&'a str, &'a str)>,
    /// The idempotency key, and what to remember under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency: Option<PlannedIdempotency<'a>>,
}

#[derive(Serialize)]
struct PlannedIdempotency<'a> {
    key: String,
    name: &'a str,
    doc: String,
    seconds: u64,
}

fn idempotency_key(key: &str) -> String {
    use sha2::Digest;
    format!("vexil:idempotency:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

#[derive(Serialize)]
struct PlannedRead<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a str>,
    flag: &'a str,
    expected: u64,
}

/// A user record the write relied on, as its document text (`doc` absent: no such user).
#[derive(Serialize)]
struct PlannedUserRead<'a> {
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<String>,
}

#[derive(Serialize)]
struct PlannedDocument<'a> {
    name: &'a str,
    expected: u64,
    doc: String,
}

#[derive(Serialize)]
struct PlannedState<'a> {
    env: &'a str,
    flag: &'a str,
    expected: u64,
    doc: String,
}

#[derive(Serialize)]
struct PlannedUser<'a> {
    email: &'a str,
    doc: String,
}

#[derive(Serialize)]
struct PlannedToken<'a> {
    id: &'a str,
    hash: &'a str,
    doc: String,
}

#[derive(Serialize)]
struct PlannedAudit<'a> {
    id: u64,
    hash: &'a str,
    flag: Option<&'a str>,
    environment: Option<&'a str>,
    user: &'a str,
    action: &'a str,
    doc: String,
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port[/db]`, or `redis+sentinel://…`, see [`RedisTarget`]); writes nothing.
    pub async fn open(url: &str, environments: &[EnvKey], retention: u64) -> StoreResult<Self> {
        Self::open_with(url, environments, retention, None).await
    }

    /// [`RedisStore::open`], with the number of replicas each commit must reach before it is acknowledged (`WAIT`)
    /// and how long to wait for them; `None`: one replica through Sentinel, none with a direct URL.
    pub async fn open_with(
        url: &str,
        environments: &[EnvKey],
        retention: u64,
        replicas: Option<(u32, std::time::Duration)>,
    ) -> StoreResult<Self> {
        let target = RedisTarget::parse(url)?;
        let default_replicas = match target {
            RedisTarget::Direct(_) => 0,
            RedisTarget::Sentinel { .. } => 1,
        };
        let primary = connect(&target).await?;
        let store = Self {
            primary: std::sync::Arc::new(std::sync::RwLock::new(primary)),
            follower: Default::default(),
            environments: environments.to_vec(),
            retention: retention.max(1),
            script: redis::Script::new(include_str!("commit.lua")),
            replicas: replicas.unwrap_or((default_replicas, std::time::Duration::from_secs(1))),
        };
        if let RedisTarget::Sentinel { .. } = target {
            tokio::spawn(follow_failovers(target, std::sync::Arc::downgrade(&store.primary), store.follower.clone()));
        }
        Ok(store)
    }

    /// The primary's connection (a cheap clone of a multiplexed connection).
    fn connection(&self) -> ConnectionManager {
        self.primary.read().unwrap_or_else(|poisoned| poisoned.into_inner()).connection.clone()
    }

    fn client(&self) -> redis::Client {
        self.primary.read().unwrap_or_else(|poisoned| poisoned.into_inner()).client.clone()
    }

    async fn audit_tip(&self) -> StoreResult<(u64, String)> {
        let mut connection = self.connection();
        let (tip, hash): (Option<u64>, Option<String>) =
            redis::cmd("HMGET").arg("vexil:audit:meta").arg("tip").arg("hash").query_async(&mut connection).await.map_err(unavailable)?;
        Ok((tip.unwrap_or(0), hash.unwrap_or_else(|| GENESIS_HASH.to_owned())))
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn load(&self) -> StoreResult<Catalog> {
        let mut connection = self.connection();
        let mut catalog = Catalog::default();
        let definitions: BTreeMap<String, String> = connection.hgetall("vexil:definitions").await.map_err(unavailable)?;
        for (name, doc) in &definitions {
            let definition: FlagDefinition = decode("definition", doc)?;
            catalog.definitions.insert(definition.name.clone(), definition);
            let _ = name;
        }
        let names: Vec<&FlagName> = catalog.definitions.keys().collect();
        for environment in &self.environments {
            let states = catalog.states.entry(environment.clone()).or_default();
            if names.is_empty() {
                continue;
            }
            let keys: Vec<String> = names.iter().map(|name| format!("flags:{environment}:{name}")).collect();
            let documents: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut connection).await.map_err(unavailable)?;
            for (name, document) in names.iter().zip(documents) {
                if let Some(document) = document {
                    states.insert((*name).clone(), decode::<FlagState>("state", &document)?);
                }
            }
        }
        let revisions: BTreeMap<String, u64> = connection.hgetall("vexil:revisions").await.map_err(unavailable)?;
        for (environment, revision) in revisions {
            if let Ok(environment) = EnvKey::parse(&environment) {
                catalog.revisions.insert(environment, revision);
            }
        }
        Ok(catalog)
    }

    async fn commit(&self, write: Write) -> StoreResult<Committed> {
        let mut connection = self.connection();
        for _ in 0..SEAL_ATTEMPTS {
            let (tip, tip_hash) = if write.audit.is_empty() { (0, String::new()) } else { self.audit_tip().await? };
            let mut previous_hash = tip_hash;
            let mut sealed = Vec::with_capacity(write.audit.len());
            for (offset, draft) in write.audit.iter().enumerate() {
                let record = AuditRecord::seal(tip + 1 + offset as u64, &previous_hash, draft.clone());
                previous_hash = record.hash.clone();
                sealed.push(record);
            }
            let plan = Plan {
                definitions: write
                    .definitions
                    .iter()
                    .map(|planned| {
                        let mut definition = planned.definition.clone();
                        definition.version = planned.expected_version + 1;
                        PlannedDocument {
                            name: planned.definition.name.as_str(),
                            expected: planned.expected_version,
                            doc: encode(&definition),
                        }
                    })
                    .collect(),
                states: write
                    .states
                    .iter()
                    .map(|planned| {
                        let mut state = planned.state.clone();
                        state.version = planned.expected_version + 1;
                        PlannedState {
                            env: planned.environment.as_str(),
                            flag: planned.flag.as_str(),
                            expected: planned.expected_version,
                            doc: encode(&state),
                        }
                    })
                    .collect(),
                users: write.users.iter().map(|user| PlannedUser { email: &user.email, doc: encode(user) }).collect(),
                tokens: write.tokens.iter().map(|token| PlannedToken { id: &token.id, hash: &token.hash, doc: encode(token) }).collect(),
                audit: sealed
                    .iter()
                    .map(|record| PlannedAudit {
                        id: record.id,
                        hash: &record.hash,
                        flag: record.flag.as_deref(),
                        environment: record.environment.as_deref(),
                        user: &record.user,
                        action: record.action.as_str(),
                        doc: encode(record),
                    })
                    .collect(),
                audit_tip: tip,
                environments: self.environments.iter().map(EnvKey::as_str).collect(),
                retention: self.retention,
                reads: write
                    .reads
                    .iter()
                    .filter_map(|read| match read {
                        crate::Read::Definition { flag, version } => {
                            Some(PlannedRead { env: None, flag: flag.as_str(), expected: *version })
                        }
                        crate::Read::State { environment, flag, version } => {
                            Some(PlannedRead { env: Some(environment.as_str()), flag: flag.as_str(), expected: *version })
                        }
                        crate::Read::User { .. } | crate::Read::Token { .. } => None,
                    })
                    .collect(),
                token_reads: write
                    .reads
                    .iter()
                    .filter_map(|read| match read {
                        crate::Read::Token { id, now } => Some((id.as_str(), now.as_str())),
                        _ => None,
                    })
                    .collect(),
                user_reads: write
                    .reads
                    .iter()
                    .filter_map(|read| match read {
                        crate::Read::User { email, user } => Some(PlannedUserRead { email, doc: user.as_ref().map(encode) }),
                        _ => None,
                    })
                    .collect(),
                idempotency: write.idempotency.as_ref().map(|idempotency| PlannedIdempotency {
                    key: idempotency_key(&idempotency.key),
                    name: &idempotency.key,
                    doc: encode(&crate::Remembered {
                        fingerprint: idempotency.fingerprint.clone(),
                        audit: sealed.iter().map(|record| record.id).collect(),
                        response: None,
                    }),
                    seconds: crate::IDEMPOTENCY_SECONDS,
                }),
            };
            let answer: String = self.script.arg(encode(&plan)).invoke_async(&mut connection).await.map_err(|error| {
                // Refused before anything was sent: nothing changed. Any other failure came after the script was sent.
                if error.is_connection_refusal() { unavailable(error) } else { StoreError::Unknown(format!("redis: {error}")) }
            })?;
            let answer: Value = decode("script answer", &answer)?;
            if answer.get("retry").is_some() {
                continue;
            }
            if let Some(target) = answer.get("conflict").and_then(Value::as_str) {
                return Err(StoreError::Conflict {
                    target: target.to_owned(),
                    expected: answer["expected"].as_u64().unwrap_or(0),
                    actual: answer["actual"].as_u64().unwrap_or(0),
                });
            }
            if let Some(key) = answer.get("duplicate").and_then(Value::as_str) {
                return Err(StoreError::Duplicate(key.to_owned()));
            }
            if let Some(message) = answer.get("invalid").and_then(Value::as_str) {
                return Err(StoreError::Invalid(message.to_owned()));
            }
            // cjson writes an empty list as `{}`.
            let changes = match answer.get("changes") {
                Some(Value::Array(documents)) => documents
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|document| decode::<Change>("change", document))
                    .collect::<StoreResult<Vec<_>>>()?,
                _ => Vec::new(),
            };
            // Acknowledged once enough replicas have it, so a failover cannot lose it. Too few within the time: the
            // primary has it, but it may not survive a failover, so nobody is told it is safely done.
            let (needed, within) = self.replicas;
            if needed > 0 {
                let reached: u32 = redis::cmd("WAIT")
                    .arg(needed)
                    .arg(within.as_millis() as u64)
                    .query_async(&mut connection)
                    .await
                    .map_err(|error| StoreError::Unknown(format!("redis: WAIT after the commit: {error}")))?;
                if reached < needed {
                    return Err(StoreError::Unknown(format!(
                        "the primary committed it but {reached} of {needed} replicas confirmed it within {} ms, so a failover may lose it",
                        within.as_millis()
                    )));
                }
            }
            return Ok(Committed { changes, audit: sealed });
        }
        Err(StoreError::Unavailable("the audit trail kept moving under concurrent writers; retry".to_owned()))
    }

    async fn changes_since(&self, environment: &EnvKey, revision: u64, limit: u32) -> StoreResult<ChangesSince> {
        let mut connection = self.connection();
        let current: Option<u64> = connection.hget("vexil:revisions", environment.as_str()).await.map_err(unavailable)?;
        let Some(current) = current else {
            return Err(StoreError::Invalid(format!("environment `{environment}` is not known to the store")));
        };
        if revision >= current {
            return Ok(ChangesSince::Changes(Vec::new()));
        }
        let stream = format!("vexil:changes:{environment}");
        let oldest: redis::streams::StreamRangeReply = connection.xrange_count(&stream, "-", "+", 1).await.map_err(unavailable)?;
        let oldest_revision =
            oldest.ids.first().and_then(|entry| entry.id.split_once('-')).and_then(|(_, sequence)| sequence.parse::<u64>().ok());
        match oldest_revision {
            Some(oldest) if oldest <= revision + 1 => {}
            _ => return Ok(ChangesSince::Gone),
        }
        let range: redis::streams::StreamRangeReply =
            connection.xrange_count(&stream, format!("(0-{revision}"), "+", limit as usize).await.map_err(unavailable)?;
        let mut changes = Vec::with_capacity(range.ids.len());
        for entry in range.ids {
            let document: String = entry.get("doc").ok_or_else(|| StoreError::Corrupt(format!("change {} has no doc", entry.id)))?;
            changes.push(decode::<Change>("change", &document)?);
        }
        Ok(ChangesSince::Changes(changes))
    }

    async fn audit(&self, query: AuditQuery) -> StoreResult<AuditPage> {
        let mut connection = self.connection();
        let limit = query.limit.clamp(1, 1000) as usize;
        // Walk the most selective index newest first; the other filters are checked on the records.
        let index = if let Some(flag) = &query.flag {
            format!("vexil:audit:flag:{flag}")
        } else if let Some(environment) = &query.environment {
            format!("vexil:audit:environment:{environment}")
        } else if let Some(user) = &query.user {
            format!("vexil:audit:user:{user}")
        } else if let Some(action) = query.action {
            format!("vexil:audit:action:{}", action.as_str())
        } else {
            "vexil:audit:all".to_owned()
        };
        let mut upper = query.before_id.map(|id| id.saturating_sub(1)).unwrap_or(u64::MAX);
        let batch = (limit * 2).max(200);
        let mut entries = Vec::new();
        while entries.len() <= limit && upper > 0 {
            let maximum = if upper == u64::MAX { "+inf".to_owned() } else { upper.to_string() };
            let ids: Vec<u64> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(&index)
                .arg(&maximum)
                .arg("-inf")
                .arg("LIMIT")
                .arg(0)
                .arg(batch)
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if ids.is_empty() {
                break;
            }
            let documents: Vec<Option<String>> =
                redis::cmd("HMGET").arg("vexil:audit").arg(&ids).query_async(&mut connection).await.map_err(unavailable)?;
            for document in documents.into_iter().flatten() {
                let record: AuditRecord = decode("audit record", &document)?;
                let keep = query.flag.as_ref().is_none_or(|flag| record.flag.as_ref() == Some(flag))
                    && query.environment.as_ref().is_none_or(|environment| record.environment.as_ref() == Some(environment))
                    && (!query.definitions_only || record.environment.is_none())
                    && query.user.as_ref().is_none_or(|user| &record.user == user)
                    && query.action.is_none_or(|action| record.action == action)
                    && query.since.as_ref().is_none_or(|since| &record.timestamp >= since)
                    && query.until.as_ref().is_none_or(|until| &record.timestamp < until);
                if keep {
                    entries.push(record);
                    if entries.len() > limit {
                        break;
                    }
                }
            }
            upper = ids.last().copied().unwrap_or(1).saturating_sub(1);
            if ids.len() < batch {
                break;
            }
        }
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|record| record.id)
        } else {
            None
        };
        Ok(AuditPage { entries, next })
    }

    async fn verify_audit(&self) -> StoreResult<ChainReport> {
        let mut connection = self.connection();
        let (tip, _) = self.audit_tip().await?;
        let mut previous_hash = GENESIS_HASH.to_owned();
        let mut start = 1u64;
        while start <= tip {
            let end = (start + 999).min(tip);
            let ids: Vec<u64> = (start..=end).collect();
            let documents: Vec<Option<String>> =
                redis::cmd("HMGET").arg("vexil:audit").arg(&ids).query_async(&mut connection).await.map_err(unavailable)?;
            for (id, document) in ids.into_iter().zip(documents) {
                let broken = |problem: String| Ok(ChainReport { records: id, intact: false, problem: Some(problem) });
                let Some(document) = document else { return broken(format!("record {id} is missing")) };
                let record: AuditRecord = match serde_json::from_str(&document) {
                    Ok(record) => record,
                    Err(error) => return broken(format!("record {id} cannot be read: {error}")),
                };
                if record.id != id {
                    return broken(format!("record {id} is missing (found {} in its place)", record.id));
                }
                if record.prev_hash != previous_hash {
                    return broken(format!("record {id} does not chain to record {}", id - 1));
                }
                if !record.hash_is_valid() {
                    return broken(format!("record {id} was altered after it was written"));
                }
                previous_hash = record.hash;
            }
            start = end + 1;
        }
        Ok(ChainReport { records: tip, intact: true, problem: None })
    }

    async fn user(&self, email: &str) -> StoreResult<Option<User>> {
        let mut connection = self.connection();
        let document: Option<String> = connection.hget("vexil:users", email).await.map_err(unavailable)?;
        document.map(|document| decode("user", &document)).transpose()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let mut connection = self.connection();
        let documents: BTreeMap<String, String> = connection.hgetall("vexil:users").await.map_err(unavailable)?;
        documents.values().map(|document| decode("user", document)).collect()
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let mut connection = self.connection();
        let id: Option<String> = connection.hget("vexil:token_hashes", hash).await.map_err(unavailable)?;
        let Some(id) = id else { return Ok(None) };
        let document: Option<String> = connection.hget("vexil:tokens", &id).await.map_err(unavailable)?;
        document.map(|document| decode("token", &document)).transpose()
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let mut connection = self.connection();
        let documents: BTreeMap<String, String> = connection.hgetall("vexil:tokens").await.map_err(unavailable)?;
        documents.values().map(|document| decode("token", document)).collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut connection = self.connection();
        let _: String = redis::cmd("PING").query_async(&mut connection).await.map_err(unavailable)?;
        Ok(())
    }

    async fn remembered(&self, key: &str) -> StoreResult<Option<crate::Remembered>> {
        let mut connection = self.connection();
        let record = idempotency_key(key);
        let (doc, response): (Option<String>, Option<String>) =
            redis::pipe().get(&record).get(format!("{record}:response")).query_async(&mut connection).await.map_err(unavailable)?;
        doc.map(|doc| {
            decode::<crate::Remembered>("idempotency record", &doc).map(|remembered| crate::Remembered { response, ..remembered })
        })
        .transpose()
    }

    async fn remember_response(&self, key: &str, response: &str) -> StoreResult<()> {
        let mut connection = self.connection();
        let record = format!("{}:response", idempotency_key(key));
        let _: () = connection.set_ex(record, response, crate::IDEMPOTENCY_SECONDS).await.map_err(unavailable)?;
        Ok(())
    }

    async fn prepare(&self) -> StoreResult<()> {
        let mut connection = self.connection();
        for environment in &self.environments {
            let _: bool = connection.hset_nx("vexil:revisions", environment.as_str(), 0).await.map_err(unavailable)?;
        }
        let _: bool = connection.hset_nx("vexil:meta", "layout", 1).await.map_err(unavailable)?;
        Ok(())
    }

    async fn revisions(&self) -> StoreResult<BTreeMap<EnvKey, u64>> {
        let mut connection = self.connection();
        let stored: std::collections::HashMap<String, u64> = connection.hgetall("vexil:revisions").await.map_err(unavailable)?;
        Ok(stored.into_iter().filter_map(|(environment, revision)| Some((EnvKey::parse(&environment).ok()?, revision))).collect())
    }

    async fn change_at(&self, environment: &EnvKey, revision: u64) -> StoreResult<Option<Change>> {
        let mut connection = self.connection();
        let id = format!("0-{revision}");
        let reply: redis::streams::StreamRangeReply =
            connection.xrange(format!("vexil:changes:{environment}"), &id, &id).await.map_err(unavailable)?;
        let Some(entry) = reply.ids.into_iter().next() else { return Ok(None) };
        let document: String = entry.get("doc").ok_or_else(|| StoreError::Corrupt(format!("change {} has no doc", entry.id)))?;
        decode::<Change>("change", &document).map(Some)
    }

    async fn deployment(&self) -> StoreResult<Option<String>> {
        let mut connection = self.connection();
        connection.hget("vexil:meta", "deployment").await.map_err(unavailable)
    }

    async fn claim_deployment(&self, id: &str) -> StoreResult<String> {
        let mut connection = self.connection();
        let (_, held): (bool, String) = redis::pipe()
            .hset_nx("vexil:meta", "deployment", id)
            .hget("vexil:meta", "deployment")
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(held)
    }

    async fn ping_write(&self) -> StoreResult<()> {
        let mut connection = self.connection();
        let _: () = redis::cmd("SET")
            .arg("vexil:write_probe")
            .arg(format!("{:?}", std::time::SystemTime::now()))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn add_metrics(&self, environment: &EnvKey, bucket: u64, counts: &[MetricCount]) -> StoreResult<()> {
        let mut connection = self.connection();
        let key = format!("vexil:metrics:{environment}:{bucket}");
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for count in counts {
            let field = encode(&(count.flag.as_str(), count.variant.as_str()));
            pipeline.cmd("HINCRBY").arg(&key).arg(format!("e{field}")).arg(count.evaluations).ignore();
            pipeline.cmd("HINCRBY").arg(&key).arg(format!("x{field}")).arg(count.errors).ignore();
        }
        // Metrics matter for a rollout's watch, not forever: a week is kept.
        pipeline.cmd("EXPIRE").arg(&key).arg(7 * 24 * 3600).ignore();
        let _: () = pipeline.query_async(&mut connection).await.map_err(unavailable)?;
        Ok(())
    }

    async fn metrics(&self, environment: &EnvKey, flag: &str, since_bucket: u64) -> StoreResult<Vec<MetricRow>> {
        let mut connection = self.connection();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs() / 60).unwrap_or(0);
        // One hash per minute; a watch looks back hours at most, so the range is bounded to a day.
        let first = since_bucket.max(now.saturating_sub(24 * 60));
        let mut rows = Vec::new();
        for bucket in first..=now.max(first) {
            let fields: BTreeMap<String, u64> =
                connection.hgetall(format!("vexil:metrics:{environment}:{bucket}")).await.map_err(unavailable)?;
            let mut by_variant: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for (field, value) in fields {
                let (kind, key) = field.split_at(1);
                let Ok((flag_name, variant)) = serde_json::from_str::<(String, String)>(key) else { continue };
                if flag_name != flag {
                    continue;
                }
                let slot = by_variant.entry(variant).or_default();
                if kind == "e" { slot.0 += value } else { slot.1 += value }
            }
            rows.extend(by_variant.into_iter().map(|(variant, (evaluations, errors))| MetricRow { bucket, variant, evaluations, errors }));
        }
        Ok(rows)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn follow(&self, positions: &BTreeMap<EnvKey, u64>, block: std::time::Duration) -> StoreResult<Vec<Change>> {
        let mut slot = self.follower.lock().await;
        if slot.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(std::time::Duration::from_secs(2))
                .set_response_timeout(block + std::time::Duration::from_secs(5));
            *slot = Some(self.client().get_multiplexed_async_connection_with_config(&config).await.map_err(unavailable)?);
        }
        let connection = slot.as_mut().expect("connected above");
        let keys: Vec<String> = positions.keys().map(|environment| format!("vexil:changes:{environment}")).collect();
        let ids: Vec<String> = positions.values().map(|revision| format!("0-{revision}")).collect();
        let reply: Result<Option<redis::streams::StreamReadReply>, _> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&keys)
            .arg(&ids)
            .query_async(connection)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                // Reconnect on the next call.
                *slot = None;
                return Err(unavailable(error));
            }
        };
        let mut changes = Vec::new();
        for key in reply.map(|reply| reply.keys).unwrap_or_default() {
            for entry in key.ids {
                let document: String = entry.get("doc").ok_or_else(|| StoreError::Corrupt(format!("change {} has no doc", entry.id)))?;
                changes.push(decode::<Change>("change", &document)?);
            }
        }
        Ok(changes)
    }
}

const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Connects to the primary: the URL's, or the one the first answering sentinel names.
async fn connect(target: &RedisTarget) -> StoreResult<Primary> {
    let (url, address) = match target {
        RedisTarget::Direct(url) => (url.clone(), url.clone()),
        RedisTarget::Sentinel { password, db, .. } => {
            let address = primary_address(target).await?;
            let credentials = password.as_ref().map(|password| format!(":{password}@")).unwrap_or_default();
            (format!("redis://{credentials}{address}/{db}"), address)
        }
    };
    let client = redis::Client::open(url.as_str()).map_err(|error| StoreError::Unavailable(format!("redis URL: {error}")))?;
    // Short timeouts: while Redis is away a request must fail fast (503), not hang; the manager reconnects by itself.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(REDIS_TIMEOUT)
        .set_response_timeout(REDIS_TIMEOUT)
        .set_number_of_retries(1)
        .set_max_delay(500);
    let connection = client.get_connection_manager_with_config(config).await.map_err(unavailable)?;
    Ok(Primary { client, connection, address })
}

/// `host:port` of the primary, as the first sentinel that answers names it.
async fn primary_address(target: &RedisTarget) -> StoreResult<String> {
    let RedisTarget::Sentinel { sentinels, master, .. } = target else {
        return Err(StoreError::Unavailable("not a Sentinel target".into()));
    };
    let mut last = String::from("no sentinel answered");
    for sentinel in sentinels {
        let asked = async {
            let client = redis::Client::open(format!("redis://{sentinel}/"))?;
            let config = redis::AsyncConnectionConfig::new().set_connection_timeout(REDIS_TIMEOUT).set_response_timeout(REDIS_TIMEOUT);
            let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(master).query_async::<Option<(String, u16)>>(&mut connection).await
        };
        match asked.await {
            Ok(Some((host, port))) => return Ok(format!("{host}:{port}")),
            Ok(None) => last = format!("sentinel {sentinel} does not know a primary named `{master}`"),
            Err(error) => last = format!("sentinel {sentinel}: {error}"),
        }
    }
    Err(StoreError::Unavailable(format!("redis sentinel: {last}")))
}

/// Asks the sentinels for the primary twice a second and, when they name another one (a failover), moves writes and
/// the change follower to it. Ends when the store is dropped.
async fn follow_failovers(
    target: RedisTarget,
    primary: std::sync::Weak<std::sync::RwLock<Primary>>,
    follower: std::sync::Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let Some(current) = primary.upgrade() else { return };
        let known = current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).address.clone();
        match primary_address(&target).await {
            Ok(address) if address != known => match connect(&target).await {
                Ok(next) => {
                    tracing::warn!(from = %known, to = %next.address, "redis sentinel failed over; writing to the new primary");
                    *current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
                    *follower.lock().await = None;
                }
                Err(error) => tracing::warn!(%error, "cannot connect to the new redis primary yet"),
            },
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "sentinels not answering"),
        }
    }
}
