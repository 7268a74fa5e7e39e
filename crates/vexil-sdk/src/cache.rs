//! The client's copy of one environment: every flag's definition and state, compiled for evaluation.
//!
//! Everything that can be worked out once per change is worked out here, when a snapshot or a change is
//! applied, not when a flag is evaluated: the engine's [`CompiledFlag`], and the override that wins for the flag's
//! type together with its variant name. Evaluation then is one map look-up and the engine's own walk.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde_json::Value;
use vexil_core::{CompiledFlag, FlagDefinition, FlagName, FlagState, FlagType};

use crate::metrics::{FlagCounters, Metrics};
use crate::overrides::{Overrides, ResolvedOverride};
use crate::wire::{Change, STREAM_FORMAT_VERSION, Snapshot, SnapshotFlag};

/// A word-at-a-time multiplicative hash (FxHash's mixing): flag names are short and come from the server, not
/// from attackers choosing collisions, so SipHash's protection would only add time to every look-up. Hashing
/// eight bytes per step instead of one (as FNV does) keeps the dependent multiplications to one or two per name.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FlagNameHasher(u64);

impl FlagNameHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FlagNameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().expect("chunks of eight")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The cache's map, flag name → entry.
pub(crate) type FlagMap = HashMap<String, Arc<FlagEntry>, BuildHasherDefault<FlagNameHasher>>;

/// Where the cached flags came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheOrigin {
    /// Nothing received yet.
    Empty,
    /// The server's stream.
    Server,
    /// A bootstrap file or a snapshot given by the application.
    Bootstrap,
}

/// One flag, ready to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct FlagEntry {
    pub definition: FlagDefinition,
    pub state: Option<FlagState>,
    /// The engine's form of `state`; `None` when the server sent no state, so the registry default answers.
    pub compiled: Option<CompiledFlag>,
    /// The winning override for the flag's type, if any.
    pub override_value: Option<Arc<ResolvedOverride>>,
    /// The override's variant name: `true`/`false` for booleans, else the variant with that value.
    pub override_variant: Option<String>,
    /// Evaluations and errors per label of `compiled` (`crate::metrics`).
    pub counters: Arc<FlagCounters>,
}

impl FlagEntry {
    fn new(definition: FlagDefinition, state: Option<FlagState>, overrides: &Overrides, metrics: &Metrics) -> Self {
        let compiled = state.as_ref().map(|state| CompiledFlag::compile(&definition, state));
        let override_value = overrides.resolve(&definition.name, definition.flag_type);
        let override_variant = override_value.as_ref().and_then(|resolved| variant_of(&definition, &resolved.value));
        let counters = metrics.counters(definition.name.as_str(), compiled.as_ref().map(CompiledFlag::labels).unwrap_or_default());
        Self { definition, state, compiled, override_value, override_variant, counters }
    }
}

/// The variant name the engine would give `value`, so an override reports its variant like a served value does.
pub(crate) fn variant_of(definition: &FlagDefinition, value: &Value) -> Option<String> {
    match value {
        Value::Bool(flag) if definition.flag_type == FlagType::Boolean => Some(flag.to_string()),
        _ => definition.variants.iter().find(|variant| &variant.value == value).map(|variant| variant.name.clone()),
    }
}

/// One environment's flags.
#[derive(Debug, Clone)]
pub(crate) struct FlagCache {
    pub origin: CacheOrigin,
    pub environment: String,
    pub revision: u64,
    pub flags: FlagMap,
}

impl FlagCache {
    /// A cache with nothing in it: every flag answers from overrides or the caller's fallback.
    pub(crate) fn empty() -> Self {
        Self { origin: CacheOrigin::Empty, environment: String::new(), revision: 0, flags: FlagMap::default() }
    }

    /// Builds the cache of a snapshot; done outside any lock, since compiling every flag takes a while.
    pub(crate) fn from_snapshot(snapshot: Snapshot, origin: CacheOrigin, overrides: &Overrides, metrics: &Metrics) -> Self {
        let flags = snapshot
            .flags
            .into_iter()
            .map(|flag| {
                (flag.definition.name.as_str().to_owned(), Arc::new(FlagEntry::new(flag.definition, flag.state, overrides, metrics)))
            })
            .collect();
        Self { origin, environment: snapshot.environment, revision: snapshot.revision, flags }
    }

    /// Applies one change; returns `false` (and changes nothing) when it is not newer than what the cache holds.
    pub(crate) fn apply_change(&mut self, change: Change, overrides: &Overrides, metrics: &Metrics) -> bool {
        if change.revision <= self.revision {
            return false;
        }
        self.revision = change.revision;
        match change.definition {
            Some(definition) => {
                let entry = FlagEntry::new(definition, change.state, overrides, metrics);
                self.flags.insert(change.flag.as_str().to_owned(), Arc::new(entry));
            }
            None => {
                self.flags.remove(change.flag.as_str());
            }
        }
        true
    }

    /// The flags whose definition or state differ between `self` and `newer`, sorted by name.
    pub(crate) fn changed_flags(&self, newer: &FlagCache) -> Vec<FlagName> {
        let mut changed: Vec<FlagName> = newer
            .flags
            .iter()
            .filter(|(name, entry)| self.flags.get(*name).is_none_or(|old| old.definition != entry.definition || old.state != entry.state))
            .map(|(_, entry)| entry.definition.name.clone())
            .chain(self.flags.iter().filter(|(name, _)| !newer.flags.contains_key(*name)).map(|(_, entry)| entry.definition.name.clone()))
            .collect();
        changed.sort();
        changed
    }

    /// The cache as a snapshot (flags sorted by name), the format of bootstrap files.
    pub(crate) fn to_snapshot(&self) -> Snapshot {
        let mut flags: Vec<SnapshotFlag> =
            self.flags.values().map(|entry| SnapshotFlag { definition: entry.definition.clone(), state: entry.state.clone() }).collect();
        flags.sort_by(|left, right| left.definition.name.cmp(&right.definition.name));
        Snapshot { version: STREAM_FORMAT_VERSION, environment: self.environment.clone(), revision: self.revision, flags }
    }
}
