//! The embedded backend: one SQLite database in WAL mode, `synchronous=FULL`, in the data directory.
//!
//! Each commit is one `BEGIN IMMEDIATE` transaction, fsynced before it is acknowledged, so a `kill -9`
//! at any moment loses nothing that was acknowledged. Documents (definitions, states, audit records)
//! are stored as JSON text next to the columns queries filter on. The blocking SQLite calls run on
//! tokio's blocking pool; one connection writes, another reads, which WAL lets happen side by side.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use vexil_core::audit::GENESIS_HASH;
use vexil_core::{AuditRecord, EnvKey, FlagDefinition, FlagName, FlagState};

use crate::{
    AuditPage, AuditQuery, Catalog, ChainReport, Change, ChangesSince, Committed, MetricCount, MetricRow, Store, StoreError, StoreResult,
    TokenRecord, User, Write,
};

/// How many change records each environment keeps for resuming clients, unless configured.
pub const DEFAULT_CHANGE_RETENTION: u64 = 10_000;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS definitions (name TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS states (
    environment TEXT NOT NULL, flag TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (environment, flag));
CREATE TABLE IF NOT EXISTS revisions (environment TEXT PRIMARY KEY, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    environment TEXT NOT NULL, revision INTEGER NOT NULL, flag TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (environment, revision));
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, flag TEXT, action TEXT NOT NULL, environment TEXT, user TEXT NOT NULL,
    timestamp TEXT NOT NULL, doc TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_flag ON audit (flag, id);
CREATE INDEX IF NOT EXISTS audit_by_user ON audit (user, id);
CREATE INDEX IF NOT EXISTS audit_by_environment ON audit (environment, id);
CREATE TABLE IF NOT EXISTS users (email TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (
    environment TEXT NOT NULL, flag TEXT NOT NULL, variant TEXT NOT NULL, bucket INTEGER NOT NULL,
    evaluations INTEGER NOT NULL, errors INTEGER NOT NULL,
    PRIMARY KEY (environment, flag, bucket, variant));
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, created INTEGER NOT NULL, doc TEXT NOT NULL, response TEXT);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (created);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '1');
"#;

/// The embedded SQLite store.
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    environments: Arc<Vec<EnvKey>>,
    retention: u64,
    path: PathBuf,
    // Held for the life of the store: a second server on the same directory would diverge from this one.
    _lock: File,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `directory` for these environments.
    pub fn open(directory: &Path, environments: &[EnvKey]) -> StoreResult<Self> {
        Self::open_with_retention(directory, environments, DEFAULT_CHANGE_RETENTION)
    }

    /// Like [`SqliteStore::open`], keeping `retention` change records per environment.
    pub fn open_with_retention(directory: &Path, environments: &[EnvKey], retention: u64) -> StoreResult<Self> {
        std::fs::create_dir_all(directory)
            .map_err(|error| StoreError::Unavailable(format!("cannot create data directory {}: {error}", directory.display())))?;
        let lock_path = directory.join("vexil.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| StoreError::Unavailable(format!("cannot open {}: {error}", lock_path.display())))?;
        lock.try_lock()
            .map_err(|_| StoreError::Unavailable(format!("data directory {} is in use by another vexil server", directory.display())))?;
        let path = directory.join("vexil.db");
        let writer = connect(&path)?;
        writer.execute_batch(SCHEMA).map_err(sql)?;
        for environment in environments {
            writer
                .execute("INSERT OR IGNORE INTO revisions (environment, revision) VALUES (?1, 0)", params![environment.as_str()])
                .map_err(sql)?;
        }
        let reader = connect(&path)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            environments: Arc::new(environments.to_vec()),
            retention: retention.max(1),
            path,
            _lock: lock,
        })
    }

    async fn with_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let connection = self.writer.clone();
        run_blocking(move || work(&mut connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))).await
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let connection = self.reader.clone();
        run_blocking(move || work(&mut connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))).await
    }
}

async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(|error| StoreError::Unavailable(format!("store worker failed: {error}")))?
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path).map_err(|error| StoreError::Unavailable(format!("cannot open {}: {error}", path.display())))?;
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
        .map_err(sql)?;
    Ok(connection)
}

fn sql(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {error}"))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("{what}: {error}")))
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain types always serialize")
}

#[async_trait]
impl Store for SqliteStore {
    async fn load(&self) -> StoreResult<Catalog> {
        self.with_reader(|connection| {
            let mut catalog = Catalog::default();
            let mut statement = connection.prepare("SELECT doc FROM definitions").map_err(sql)?;
            for row in statement.query_map([], |row| row.get::<_, String>(0)).map_err(sql)? {
                let definition: FlagDefinition = decode("definition", &row.map_err(sql)?)?;
                catalog.definitions.insert(definition.name.clone(), definition);
            }
            let mut statement = connection.prepare("SELECT environment, flag, doc FROM states").map_err(sql)?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)))
                .map_err(sql)?;
            for row in rows {
                let (environment, flag, doc) = row.map_err(sql)?;
                let environment = EnvKey::parse(&environment).map_err(|error| StoreError::Corrupt(error.message))?;
                let flag = FlagName::parse(&flag).map_err(|error| StoreError::Corrupt(error.message))?;
                catalog.states.entry(environment).or_default().insert(flag, decode("state", &doc)?);
            }
            let mut statement = connection.prepare("SELECT environment, revision FROM revisions").map_err(sql)?;
            for row in statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))).map_err(sql)? {
                let (environment, revision) = row.map_err(sql)?;
                let environment = EnvKey::parse(&environment).map_err(|error| StoreError::Corrupt(error.message))?;
                catalog.revisions.insert(environment, revision as u64);
            }
            Ok(catalog)
        })
        .await
    }

    async fn commit(&self, write: Write) -> StoreResult<Committed> {
        let environments = self.environments.clone();
        let retention = self.retention;
        self.with_writer(move |connection| commit(connection, &environments, write, retention)).await
    }

    async fn changes_since(&self, environment: &EnvKey, revision: u64, limit: u32) -> StoreResult<ChangesSince> {
        let environment = environment.clone();
        self.with_reader(move |connection| {
            let transaction = connection.transaction().map_err(sql)?;
            let current: Option<i64> = transaction
                .query_row("SELECT revision FROM revisions WHERE environment = ?1", params![environment.as_str()], |row| row.get(0))
                .optional()
                .map_err(sql)?;
            let Some(current) = current.map(|revision| revision as u64) else {
                return Err(StoreError::Invalid(format!("environment `{environment}` is not known to the store")));
            };
            if revision >= current {
                return Ok(ChangesSince::Changes(Vec::new()));
            }
            let oldest: Option<i64> = transaction
                .query_row("SELECT MIN(revision) FROM changes WHERE environment = ?1", params![environment.as_str()], |row| row.get(0))
                .map_err(sql)?;
            match oldest {
                Some(oldest) if oldest as u64 <= revision + 1 => {}
                _ => return Ok(ChangesSince::Gone),
            }
            let mut statement = transaction
                .prepare("SELECT doc FROM changes WHERE environment = ?1 AND revision > ?2 ORDER BY revision LIMIT ?3")
                .map_err(sql)?;
            let mut changes = Vec::new();
            for row in
                statement.query_map(params![environment.as_str(), revision as i64, limit], |row| row.get::<_, String>(0)).map_err(sql)?
            {
                changes.push(decode::<Change>("change", &row.map_err(sql)?)?);
            }
            Ok(ChangesSince::Changes(changes))
        })
        .await
    }

    async fn audit(&self, query: AuditQuery) -> StoreResult<AuditPage> {
        self.with_reader(move |connection| {
            let mut conditions = vec!["1 = 1".to_owned()];
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            let mut add = |condition: &str, value: rusqlite::types::Value| {
                values.push(value);
                conditions.push(format!("{condition} ?{}", values.len()));
            };
            if let Some(flag) = &query.flag {
                add("flag =", flag.clone().into());
            }
            if let Some(environment) = &query.environment {
                add("environment =", environment.clone().into());
            }
            if let Some(user) = &query.user {
                add("user =", user.clone().into());
            }
            if let Some(action) = query.action {
                add("action =", action.as_str().to_owned().into());
            }
            if let Some(since) = &query.since {
                add("timestamp >=", since.clone().into());
            }
            if let Some(until) = &query.until {
                add("timestamp <", until.clone().into());
            }
            if let Some(before_id) = query.before_id {
                add("id <", (before_id as i64).into());
            }
            if query.definitions_only {
                conditions.push("environment IS NULL".to_owned());
            }
            let limit = query.limit.clamp(1, 1000);
            let text = format!("SELECT doc FROM audit WHERE {} ORDER BY id DESC LIMIT {}", conditions.join(" AND "), limit + 1);
            let mut statement = connection.prepare(&text).map_err(sql)?;
            let mut entries = Vec::new();
            for row in statement.query_map(rusqlite::params_from_iter(values), |row| row.get::<_, String>(0)).map_err(sql)? {
                entries.push(decode::<AuditRecord>("audit record", &row.map_err(sql)?)?);
            }
            let next = if entries.len() > limit as usize {
                entries.truncate(limit as usize);
                entries.last().map(|record| record.id)
            } else {
                None
            };
            Ok(AuditPage { entries, next })
        })
        .await
    }

    async fn verify_audit(&self) -> StoreResult<ChainReport> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare("SELECT id, doc, hash FROM audit ORDER BY id").map_err(sql)?;
            let mut rows = statement.query([]).map_err(sql)?;
            let mut previous_hash = GENESIS_HASH.to_owned();
            let mut expected_id = 1u64;
            let mut records = 0u64;
            while let Some(row) = rows.next().map_err(sql)? {
                let id: i64 = row.get(0).map_err(sql)?;
                let doc: String = row.get(1).map_err(sql)?;
                let hash: String = row.get(2).map_err(sql)?;
                records += 1;
                let broken = |problem: String| Ok(ChainReport { records, intact: false, problem: Some(problem) });
                let record: AuditRecord = match serde_json::from_str(&doc) {
                    Ok(record) => record,
                    Err(error) => return broken(format!("record {id} cannot be read: {error}")),
                };
                if id as u64 != expected_id || record.id != id as u64 {
                    return broken(format!("record {expected_id} is missing (found {id} in its place)"));
                }
                if record.prev_hash != previous_hash {
                    return broken(format!("record {id} does not chain to record {}", id - 1));
                }
                if !record.hash_is_valid() || record.hash != hash {
                    return broken(format!("record {id} was altered after it was written"));
                }
                previous_hash = record.hash;
                expected_id += 1;
            }
            Ok(ChainReport { records, intact: true, problem: None })
        })
        .await
    }

    async fn user(&self, email: &str) -> StoreResult<Option<User>> {
        let email = email.to_owned();
        self.with_reader(move |connection| {
            let doc: Option<String> =
                connection.query_row("SELECT doc FROM users WHERE email = ?1", params![email], |row| row.get(0)).optional().map_err(sql)?;
            doc.map(|doc| decode("user", &doc)).transpose()
        })
        .await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare("SELECT doc FROM users ORDER BY email").map_err(sql)?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0)).map_err(sql)?;
            rows.map(|row| decode("user", &row.map_err(sql)?)).collect()
        })
        .await
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let hash = hash.to_owned();
        self.with_reader(move |connection| {
            let doc: Option<String> =
                connection.query_row("SELECT doc FROM tokens WHERE hash = ?1", params![hash], |row| row.get(0)).optional().map_err(sql)?;
            doc.map(|doc| decode("token", &doc)).transpose()
        })
        .await
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare("SELECT doc FROM tokens ORDER BY id").map_err(sql)?;
            let rows = statement.query_map([], |row| row.get::<_, String>(0)).map_err(sql)?;
            rows.map(|row| decode("token", &row.map_err(sql)?)).collect()
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with_reader(|connection| connection.query_row("SELECT 1", [], |_| Ok(())).map_err(sql)).await
    }

    async fn remembered(&self, key: &str) -> StoreResult<Option<crate::Remembered>> {
        let key = key.to_owned();
        self.with_reader(move |connection| {
            let oldest = unix_seconds() - crate::IDEMPOTENCY_SECONDS as i64;
            let row: Option<(String, Option<String>)> = connection
                .query_row("SELECT doc, response FROM idempotency WHERE key = ?1 AND created >= ?2", params![key, oldest], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
                .map_err(sql)?;
            row.map(|(doc, response)| {
                decode::<crate::Remembered>("idempotency record", &doc).map(|remembered| crate::Remembered { response, ..remembered })
            })
            .transpose()
        })
        .await
    }

    async fn remember_response(&self, key: &str, response: &str) -> StoreResult<()> {
        let (key, response) = (key.to_owned(), response.to_owned());
        self.with_writer(move |connection| {
            connection.execute("UPDATE idempotency SET response = ?2 WHERE key = ?1", params![key, response]).map(drop).map_err(sql)
        })
        .await
    }

    async fn revisions(&self) -> StoreResult<BTreeMap<EnvKey, u64>> {
        self.with_reader(|connection| {
            let mut statement = connection.prepare("SELECT environment, revision FROM revisions").map_err(sql)?;
            let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))).map_err(sql)?;
            let mut revisions = BTreeMap::new();
            for row in rows {
                let (environment, revision) = row.map_err(sql)?;
                if let Ok(environment) = EnvKey::parse(&environment) {
                    revisions.insert(environment, revision as u64);
                }
            }
            Ok(revisions)
        })
        .await
    }

    async fn change_at(&self, environment: &EnvKey, revision: u64) -> StoreResult<Option<Change>> {
        let environment = environment.clone();
        self.with_reader(move |connection| {
            let doc: Option<String> = connection
                .query_row(
                    "SELECT doc FROM changes WHERE environment = ?1 AND revision = ?2",
                    params![environment.as_str(), revision as i64],
                    |row| row.get(0),
                )
                .optional()
                .map_err(sql)?;
            doc.map(|doc| decode::<Change>("change", &doc)).transpose()
        })
        .await
    }

    async fn deployment(&self) -> StoreResult<Option<String>> {
        self.with_reader(|connection| {
            connection.query_row("SELECT value FROM meta WHERE key = 'deployment'", [], |row| row.get(0)).optional().map_err(sql)
        })
        .await
    }

    async fn claim_deployment(&self, id: &str) -> StoreResult<String> {
        let id = id.to_owned();
        self.with_writer(move |connection| {
            connection.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('deployment', ?1)", params![id]).map_err(sql)?;
            connection.query_row("SELECT value FROM meta WHERE key = 'deployment'", [], |row| row.get(0)).map_err(sql)
        })
        .await
    }

    async fn ping_write(&self) -> StoreResult<()> {
        self.with_writer(|connection| {
            let probe = format!("{:?}", std::time::SystemTime::now());
            connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?1)", params![probe]).map(drop).map_err(sql)
        })
        .await
    }

    async fn add_metrics(&self, environment: &EnvKey, bucket: u64, counts: &[MetricCount]) -> StoreResult<()> {
        let environment = environment.clone();
        let counts = counts.to_vec();
        self.with_writer(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
            for count in &counts {
                transaction
                    .execute(
                        "INSERT INTO metrics (environment, flag, variant, bucket, evaluations, errors) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (environment, flag, bucket, variant)
                         DO UPDATE SET evaluations = evaluations + excluded.evaluations, errors = errors + excluded.errors",
                        params![
                            environment.as_str(),
                            count.flag,
                            count.variant,
                            bucket as i64,
                            count.evaluations as i64,
                            count.errors as i64
                        ],
                    )
                    .map_err(sql)?;
            }
            // Metrics matter for a rollout's watch, not forever: a week is kept.
            transaction
                .execute(
                    "DELETE FROM metrics WHERE environment = ?1 AND bucket < ?2",
                    params![environment.as_str(), bucket as i64 - 7 * 24 * 60],
                )
                .map_err(sql)?;
            transaction.commit().map_err(sql)
        })
        .await
    }

    async fn metrics(&self, environment: &EnvKey, flag: &str, since_bucket: u64) -> StoreResult<Vec<MetricRow>> {
        let environment = environment.clone();
        let flag = flag.to_owned();
        self.with_reader(move |connection| {
            let mut statement = connection
                .prepare(
                    "SELECT bucket, variant, evaluations, errors FROM metrics WHERE environment = ?1 AND flag = ?2 AND bucket >= ?3
                     ORDER BY bucket, variant",
                )
                .map_err(sql)?;
            let rows = statement
                .query_map(params![environment.as_str(), flag, since_bucket as i64], |row| {
                    Ok(MetricRow {
                        bucket: row.get::<_, i64>(0)? as u64,
                        variant: row.get(1)?,
                        evaluations: row.get::<_, i64>(2)? as u64,
                        errors: row.get::<_, i64>(3)? as u64,
                    })
                })
                .map_err(sql)?;
            rows.map(|row| row.map_err(sql)).collect()
        })
        .await
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs() as i64).unwrap_or(0)
}

fn commit(connection: &mut Connection, environments: &[EnvKey], write: Write, retention: u64) -> StoreResult<Committed> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
    if let Some(idempotency) = &write.idempotency {
        let oldest = unix_seconds() - crate::IDEMPOTENCY_SECONDS as i64;
        transaction.execute("DELETE FROM idempotency WHERE created < ?1", params![oldest]).map_err(sql)?;
        let used = transaction
            .query_row("SELECT 1 FROM idempotency WHERE key = ?1", params![idempotency.key], |_| Ok(()))
            .optional()
            .map_err(sql)?;
        if used.is_some() {
            return Err(StoreError::Duplicate(idempotency.key.clone()));
        }
    }
    let idempotency = write.idempotency.clone();
    let mut definitions: HashMap<FlagName, FlagDefinition> = HashMap::new();
    let mut states: HashMap<(EnvKey, FlagName), FlagState> = HashMap::new();
    // Which flags each environment saw change, in the order the write touched them.
    let mut touched: BTreeMap<EnvKey, Vec<FlagName>> = BTreeMap::new();
    let mut touch = |environment: &EnvKey, flag: &FlagName| {
        let list = touched.entry(environment.clone()).or_default();
        if !list.contains(flag) {
            list.push(flag.clone());
        }
    };

    for read in &write.reads {
        let (target, expected, actual) = match read {
            crate::Read::Definition { flag, version } => {
                let actual: Option<i64> = transaction
                    .query_row("SELECT version FROM definitions WHERE name = ?1", params![flag.as_str()], |row| row.get(0))
                    .optional()
                    .map_err(sql)?;
                (format!("flag {flag}"), *version, actual.unwrap_or(0) as u64)
            }
            crate::Read::State { environment, flag, version } => {
                let actual: Option<i64> = transaction
                    .query_row(
                        "SELECT version FROM states WHERE environment = ?1 AND flag = ?2",
                        params![environment.as_str(), flag.as_str()],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sql)?;
                (format!("{flag} in {environment}"), *version, actual.unwrap_or(0) as u64)
            }
            crate::Read::Token { id, now } => {
                let doc: Option<String> =
                    transaction.query_row("SELECT doc FROM tokens WHERE id = ?1", params![id], |row| row.get(0)).optional().map_err(sql)?;
                let token = doc.map(|doc| decode::<TokenRecord>("token", &doc)).transpose()?;
                let usable = token.is_some_and(|token| token.revoked_at.is_none() && token.expires_at.is_none_or(|expires| expires > *now));
                if !usable {
                    return Err(StoreError::Conflict { target: format!("token {id}"), expected: 0, actual: 1 });
                }
                continue;
            }
            crate::Read::User { email, user } => {
                let doc: Option<String> = transaction
                    .query_row("SELECT doc FROM users WHERE email = ?1", params![email], |row| row.get(0))
                    .optional()
                    .map_err(sql)?;
                let stored = doc.map(|doc| decode::<User>("user", &doc)).transpose()?;
                if &stored != user {
                    return Err(StoreError::Conflict { target: format!("user {email}"), expected: 0, actual: 1 });
                }
                continue;
            }
        };
        if actual != expected {
            return Err(StoreError::Conflict { target, expected, actual });
        }
    }

    for mut definition_write in write.definitions {
        let name = definition_write.definition.name.clone();
        let actual: Option<i64> = transaction
            .query_row("SELECT version FROM definitions WHERE name = ?1", params![name.as_str()], |row| row.get(0))
            .optional()
            .map_err(sql)?;
        let actual = actual.unwrap_or(0) as u64;
        if actual != definition_write.expected_version {
            return Err(StoreError::Conflict { target: format!("flag {name}"), expected: definition_write.expected_version, actual });
        }
        definition_write.definition.version = definition_write.expected_version + 1;
        transaction
            .execute(
                "INSERT OR REPLACE INTO definitions (name, version, doc) VALUES (?1, ?2, ?3)",
                params![name.as_str(), definition_write.definition.version as i64, encode(&definition_write.definition)],
            )
            .map_err(sql)?;
        for environment in environments {
            touch(environment, &name);
        }
        definitions.insert(name, definition_write.definition);
    }

    for mut state_write in write.states {
        if !environments.contains(&state_write.environment) {
            return Err(StoreError::Invalid(format!("environment `{}` is not known to the store", state_write.environment)));
        }
        let defined = definitions.contains_key(&state_write.flag)
            || transaction
                .query_row("SELECT 1 FROM definitions WHERE name = ?1", params![state_write.flag.as_str()], |_| Ok(()))
                .optional()
                .map_err(sql)?
                .is_some();
        if !defined {
            return Err(StoreError::Invalid(format!("flag `{}` is not defined", state_write.flag)));
        }
        let actual: Option<i64> = transaction
            .query_row(
                "SELECT version FROM states WHERE environment = ?1 AND flag = ?2",
                params![state_write.environment.as_str(), state_write.flag.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql)?;
        let actual = actual.unwrap_or(0) as u64;
        if actual != state_write.expected_version {
            return Err(StoreError::Conflict {
                target: format!("{} in {}", state_write.flag, state_write.environment),
                expected: state_write.expected_version,
                actual,
            });
        }
        state_write.state.version = state_write.expected_version + 1;
        transaction
            .execute(
                "INSERT OR REPLACE INTO states (environment, flag, version, doc) VALUES (?1, ?2, ?3, ?4)",
                params![
                    state_write.environment.as_str(),
                    state_write.flag.as_str(),
                    state_write.state.version as i64,
                    encode(&state_write.state)
                ],
            )
            .map_err(sql)?;
        touch(&state_write.environment, &state_write.flag);
        states.insert((state_write.environment, state_write.flag), state_write.state);
    }

    for user in write.users {
        transaction
            .execute("INSERT OR REPLACE INTO users (email, doc) VALUES (?1, ?2)", params![user.email, encode(&user)])
            .map_err(sql)?;
    }
    for token in write.tokens {
        transaction
            .execute("INSERT OR REPLACE INTO tokens (id, hash, doc) VALUES (?1, ?2, ?3)", params![token.id, token.hash, encode(&token)])
            .map_err(sql)?;
    }

    let mut committed = Committed::default();
    for environment in environments {
        let Some(flags) = touched.get(environment) else { continue };
        let mut revision: i64 = transaction
            .query_row("SELECT revision FROM revisions WHERE environment = ?1", params![environment.as_str()], |row| row.get(0))
            .map_err(sql)?;
        for flag in flags {
            let definition = match definitions.get(flag) {
                Some(definition) => definition.clone(),
                None => {
                    let doc: String = transaction
                        .query_row("SELECT doc FROM definitions WHERE name = ?1", params![flag.as_str()], |row| row.get(0))
                        .map_err(sql)?;
                    decode("definition", &doc)?
                }
            };
            let state = match states.get(&(environment.clone(), flag.clone())) {
                Some(state) => state.clone(),
                None => {
                    let doc: Option<String> = transaction
                        .query_row(
                            "SELECT doc FROM states WHERE environment = ?1 AND flag = ?2",
                            params![environment.as_str(), flag.as_str()],
                            |row| row.get(0),
                        )
                        .optional()
                        .map_err(sql)?;
                    // A definition written without a state in this environment has nothing to announce there.
                    let Some(doc) = doc else { continue };
                    decode("state", &doc)?
                }
            };
            revision += 1;
            let change = Change { environment: environment.clone(), revision: revision as u64, definition, state };
            transaction
                .execute(
                    "INSERT INTO changes (environment, revision, flag, doc) VALUES (?1, ?2, ?3, ?4)",
                    params![environment.as_str(), revision, flag.as_str(), encode(&change)],
                )
                .map_err(sql)?;
            committed.changes.push(change);
        }
        transaction
            .execute("UPDATE revisions SET revision = ?1 WHERE environment = ?2", params![revision, environment.as_str()])
            .map_err(sql)?;
        transaction
            .execute(
                "DELETE FROM changes WHERE environment = ?1 AND revision <= ?2",
                params![environment.as_str(), revision - retention as i64],
            )
            .map_err(sql)?;
    }

    if !write.audit.is_empty() {
        let tip: Option<(i64, String)> = transaction
            .query_row("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(sql)?;
        let (mut id, mut previous_hash) = tip.map(|(id, hash)| (id as u64, hash)).unwrap_or((0, GENESIS_HASH.to_owned()));
        for draft in write.audit {
            id += 1;
            let record = AuditRecord::seal(id, &previous_hash, draft);
            transaction
                .execute(
                    "INSERT INTO audit (id, flag, action, environment, user, timestamp, doc, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        id as i64,
                        record.flag,
                        record.action.as_str(),
                        record.environment,
                        record.user,
                        record.timestamp,
                        encode(&record),
                        record.hash
                    ],
                )
                .map_err(sql)?;
            previous_hash = record.hash.clone();
            committed.audit.push(record);
        }
    }

    if let Some(idempotency) = idempotency {
        let remembered = crate::Remembered {
            fingerprint: idempotency.fingerprint,
            audit: committed.audit.iter().map(|record| record.id).collect(),
            response: None,
        };
        transaction
            .execute(
                "INSERT INTO idempotency (key, created, doc) VALUES (?1, ?2, ?3)",
                params![idempotency.key, unix_seconds(), encode(&remembered)],
            )
            .map_err(sql)?;
    }

    transaction.commit().map_err(sql)?;
    Ok(committed)
}
