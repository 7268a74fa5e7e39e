//! The in-memory copy of every definition, state and revision, which answers every read.
//!
//! It is only ever changed by applying what the store committed, so it never holds anything the store
//! does not. Changes are applied by version: an older copy never overwrites a newer one, whatever order
//! commits finish in.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use vexil_core::{EnvKey, FlagDefinition, FlagName, FlagState};
use vexil_store::{Catalog, Change};

/// A shared, lock-protected [`Catalog`].
#[derive(Clone, Default)]
pub struct SharedCatalog(Arc<RwLock<Catalog>>);

impl SharedCatalog {
    /// Wraps a catalog loaded from the store.
    pub fn new(catalog: Catalog) -> Self {
        Self(Arc::new(RwLock::new(catalog)))
    }

    /// Reads the catalog; keep the guard short-lived.
    pub fn read(&self) -> RwLockReadGuard<'_, Catalog> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies committed changes.
    pub fn apply(&self, changes: &[Change]) {
        apply_changes(&mut self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()), changes);
    }

    /// Replaces the whole catalog (after reloading it from the store).
    pub fn replace(&self, catalog: Catalog) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = catalog;
    }

    /// A flag's definition.
    pub fn definition(&self, flag: &FlagName) -> Option<FlagDefinition> {
        self.read().definitions.get(flag).cloned()
    }

    /// A flag's state in one environment.
    pub fn state(&self, environment: &EnvKey, flag: &FlagName) -> Option<FlagState> {
        self.read().states.get(environment).and_then(|states| states.get(flag)).cloned()
    }

    /// An environment's revision.
    pub fn revision(&self, environment: &EnvKey) -> u64 {
        self.read().revisions.get(environment).copied().unwrap_or(0)
    }
}

/// Applies committed changes to a catalog, newer versions only.
pub fn apply_changes(catalog: &mut Catalog, changes: &[Change]) {
    for change in changes {
        let name = change.definition.name.clone();
        let newer_definition = catalog.definitions.get(&name).is_none_or(|current| current.version <= change.definition.version);
        if newer_definition {
            catalog.definitions.insert(name.clone(), change.definition.clone());
        }
        let states = catalog.states.entry(change.environment.clone()).or_default();
        if states.get(&name).is_none_or(|current| current.version <= change.state.version) {
            states.insert(name, change.state.clone());
        }
        let revision = catalog.revisions.entry(change.environment.clone()).or_default();
        *revision = (*revision).max(change.revision);
    }
}
