//! Each environment's compiled snapshot and its stream of changes.
//!
//! After every commit the server publishes the committed changes here: the environment's snapshot is
//! replaced by a new one (an `Arc` swap; readers keep the one they hold), and each change is
//! serialised once into an SSE frame and broadcast to every connected client of that environment.
//! Evaluation (OFREP) and streaming read snapshots only; they never wait on the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;
use vexil_core::{CompiledFlag, EnvKey, Environment, FlagDefinition, FlagName, FlagState};
use vexil_store::{Catalog, Change};

/// How many frames a client may fall behind, by default, before it is disconnected (it then resumes by `Last-Event-ID`).
pub const CLIENT_BUFFER: usize = 1024;

/// One flag in a snapshot: what was committed, and its compiled form.
#[derive(Debug)]
pub struct SnapshotFlag {
    /// The definition.
    pub definition: FlagDefinition,
    /// The state in this environment.
    pub state: FlagState,
    /// Ready to evaluate.
    pub compiled: CompiledFlag,
    /// Its OFREP answers, one per label it can serve, serialised on first use (see `routes::ofrep`).
    pub answers: Vec<OnceLock<crate::routes::ofrep::Answer>>,
    /// Its OFREP answer to a context without the targeting key its split needs, serialised on first use.
    pub missing_key: OnceLock<Bytes>,
}

impl SnapshotFlag {
    /// What its state serves, in words.
    pub fn summary(&self) -> String {
        vexil_core::describe::summary(&self.definition, &self.state)
    }
}

/// One environment at one revision. Immutable; replaced whole on every change.
#[derive(Debug)]
pub struct EnvironmentSnapshot {
    /// The environment.
    pub environment: Environment,
    /// Its revision.
    pub revision: u64,
    /// Every flag, by name: a persistent map, so the next revision shares every flag a change leaves alone (a write
    /// costs the same at 10 000 flags as at 100; cloning a `BTreeMap` of them made it twice as slow).
    pub flags: imbl::OrdMap<FlagName, Arc<SnapshotFlag>>,
    snapshot_frame: OnceLock<Bytes>,
    /// Prepared responses (OFREP bulk), computed at most once per snapshot.
    pub prepared: OnceLock<Option<(Bytes, String)>>,
}

impl EnvironmentSnapshot {
    /// The `snapshot` SSE frame of this revision, serialised on first use.
    pub fn snapshot_frame(&self) -> Bytes {
        self.snapshot_frame
            .get_or_init(|| {
                let flags: Vec<FlagEntry<'_>> = self
                    .flags
                    .values()
                    .map(|flag| FlagEntry { definition: &flag.definition, state: &flag.state, summary: flag.summary() })
                    .collect();
                let data = SnapshotData { version: 1, environment: self.environment.key.as_str(), revision: self.revision, flags };
                frame(Some(self.revision), "snapshot", &data)
            })
            .clone()
    }
}

/// A serialised SSE frame with the revision it carries.
#[derive(Debug)]
pub struct Frame {
    /// The revision (`id:`) of the frame.
    pub revision: u64,
    /// The bytes on the wire.
    pub bytes: Bytes,
}

#[derive(Serialize)]
struct FlagEntry<'a> {
    definition: &'a FlagDefinition,
    state: &'a FlagState,
    /// What the state serves, in words (`vexil_core::describe`), for clients that show it (the panel).
    summary: String,
}

#[derive(Serialize)]
struct SnapshotData<'a> {
    version: u32,
    environment: &'a str,
    revision: u64,
    flags: Vec<FlagEntry<'a>>,
}

#[derive(Serialize)]
struct ChangeData<'a> {
    version: u32,
    environment: &'a str,
    revision: u64,
    flag: &'a str,
    definition: &'a FlagDefinition,
    state: &'a FlagState,
    summary: String,
}

#[derive(Serialize)]
struct HeartbeatData<'a> {
    version: u32,
    environment: &'a str,
    revision: u64,
}

fn frame<T: Serialize>(id: Option<u64>, event: &str, data: &T) -> Bytes {
    let json = serde_json::to_string(data).expect("stream payloads serialise");
    let mut text = String::with_capacity(json.len() + 48);
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str(&format!("event: {event}\ndata: {json}\n\n"));
    Bytes::from(text)
}

/// The `change` frame of one committed change; live and replayed changes use this same function.
pub fn change_frame(change: &Change) -> Bytes {
    let data = ChangeData {
        version: 1,
        environment: change.environment.as_str(),
        revision: change.revision,
        flag: change.definition.name.as_str(),
        definition: &change.definition,
        state: &change.state,
        summary: vexil_core::describe::summary(&change.definition, &change.state),
    };
    frame(Some(change.revision), "change", &data)
}

/// A `heartbeat` frame (no id, so it does not move `Last-Event-ID`).
pub fn heartbeat_frame(environment: &EnvKey, revision: u64) -> Bytes {
    frame(None, "heartbeat", &HeartbeatData { version: 1, environment: environment.as_str(), revision })
}

struct Channel {
    snapshot: RwLock<Arc<EnvironmentSnapshot>>,
    sender: broadcast::Sender<Arc<Frame>>,
}

/// Every environment's snapshot and change broadcast.
pub struct Hub {
    channels: HashMap<EnvKey, Channel>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("environments", &self.channels.len()).finish()
    }
}

impl Hub {
    /// Builds every environment's snapshot from the catalog.
    pub fn new(environments: &[Environment], catalog: &Catalog, client_buffer: usize) -> Self {
        let channels = environments
            .iter()
            .map(|environment| {
                let mut flags = imbl::OrdMap::new();
                if let Some(states) = catalog.states.get(&environment.key) {
                    for (name, state) in states {
                        if let Some(definition) = catalog.definitions.get(name) {
                            flags.insert(name.clone(), Arc::new(compile(definition.clone(), state.clone())));
                        }
                    }
                }
                let snapshot = EnvironmentSnapshot {
                    environment: environment.clone(),
                    revision: catalog.revisions.get(&environment.key).copied().unwrap_or(0),
                    flags,
                    snapshot_frame: OnceLock::new(),
                    prepared: OnceLock::new(),
                };
                let (sender, _) = broadcast::channel(client_buffer.max(1));
                (environment.key.clone(), Channel { snapshot: RwLock::new(Arc::new(snapshot)), sender })
            })
            .collect();
        Self { channels }
    }

    /// The current snapshot of an environment.
    pub fn snapshot(&self, environment: &EnvKey) -> Option<Arc<EnvironmentSnapshot>> {
        self.channels.get(environment).map(|channel| channel.snapshot.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }

    /// Subscribes to an environment's changes; subscribe before reading the snapshot so nothing falls between.
    pub fn subscribe(&self, environment: &EnvKey) -> Option<broadcast::Receiver<Arc<Frame>>> {
        self.channels.get(environment).map(|channel| channel.sender.subscribe())
    }

    /// Applies committed changes: new snapshots first, then one broadcast frame per change, in order.
    ///
    /// Callers publish in commit order (the server's write lock), so every client sees revisions ascending.
    pub fn publish(&self, changes: &[Change]) {
        let mut by_environment: BTreeMap<&EnvKey, Vec<&Change>> = BTreeMap::new();
        for change in changes {
            by_environment.entry(&change.environment).or_default().push(change);
        }
        for (environment, changes) in by_environment {
            let Some(channel) = self.channels.get(environment) else { continue };
            let fresh: Vec<&Change> = {
                let mut current = channel.snapshot.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                // A change at or below the snapshot's revision was published already (a follower sees its own writes).
                let fresh: Vec<&Change> = changes.into_iter().filter(|change| change.revision > current.revision).collect();
                if fresh.is_empty() {
                    continue;
                }
                let mut flags = current.flags.clone();
                for change in &fresh {
                    flags.insert(change.definition.name.clone(), Arc::new(compile(change.definition.clone(), change.state.clone())));
                }
                let revision = fresh.iter().map(|change| change.revision).max().unwrap_or(current.revision);
                *current = Arc::new(EnvironmentSnapshot {
                    environment: current.environment.clone(),
                    revision,
                    flags,
                    snapshot_frame: OnceLock::new(),
                    prepared: OnceLock::new(),
                });
                fresh
            };
            for change in fresh {
                // No receivers is fine: nobody is listening to this environment right now.
                let _ = channel.sender.send(Arc::new(Frame { revision: change.revision, bytes: change_frame(change) }));
            }
        }
    }

    /// Replaces every environment's snapshot with one built from `catalog`, used when changes were lost to the store's
    /// retention; each environment that moved sends its connected clients the new snapshot.
    pub fn reset(&self, catalog: &Catalog) {
        for (key, channel) in &self.channels {
            let mut current = channel.snapshot.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut flags = imbl::OrdMap::new();
            if let Some(states) = catalog.states.get(key) {
                for (name, state) in states {
                    if let Some(definition) = catalog.definitions.get(name) {
                        flags.insert(name.clone(), Arc::new(compile(definition.clone(), state.clone())));
                    }
                }
            }
            let previous = current.revision;
            *current = Arc::new(EnvironmentSnapshot {
                environment: current.environment.clone(),
                revision: catalog.revisions.get(key).copied().unwrap_or(0),
                flags,
                snapshot_frame: OnceLock::new(),
                prepared: OnceLock::new(),
            });
            // Connected clients missed the changes in between (that is why there was a reset): they get the whole
            // snapshot, which they take in place of what they had, as after a resume past retention.
            if current.revision > previous {
                let _ = channel.sender.send(Arc::new(Frame { revision: current.revision, bytes: current.snapshot_frame() }));
            }
        }
    }
}

fn compile(definition: FlagDefinition, state: FlagState) -> SnapshotFlag {
    let compiled = CompiledFlag::compile(&definition, &state);
    let answers = compiled.labels().iter().map(|_| OnceLock::new()).collect();
    SnapshotFlag { definition, state, compiled, answers, missing_key: OnceLock::new() }
}
