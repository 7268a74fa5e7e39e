//! Flag handles: one flag's reads on a hot path, without the per-read map look-up.
//!
//! A handle keeps the flag's cache entry (an `Arc`) with the cache generation it was taken from. A read compares
//! that generation with the client's current one (one atomic load); only when the cache has changed since does
//! it look the flag up again. The answer is the same as the client's getters give: same overrides, same engine.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use vexil_core::EvaluationContext;

use crate::cache::{CacheOrigin, FlagEntry};
use crate::client::Shared;
use crate::details::{EvaluationDetails, FlagValue, details_of, resolve_entry, value_of};

/// A handle on one flag of type `T` (`bool`, `String`, `f64` or `serde_json::Value`), from [`VexilClient::flag`](crate::VexilClient::flag).
///
/// Cheap to create and to clone. It is `Send` but not `Sync`: give each thread its own (clone it), which is
/// what keeps its reads free of shared writes.
pub struct FlagHandle<T> {
    shared: Arc<Shared>,
    name: String,
    cached: RefCell<Cached>,
    _type: PhantomData<fn() -> T>,
}

struct Cached {
    generation: u64,
    entry: Option<Arc<FlagEntry>>,
    origin: CacheOrigin,
}

impl<T: FlagValue> Clone for FlagHandle<T> {
    fn clone(&self) -> Self {
        Self::new(self.shared.clone(), &self.name)
    }
}

impl<T> std::fmt::Debug for FlagHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagHandle").field("flag", &self.name).finish()
    }
}

impl<T: FlagValue> FlagHandle<T> {
    pub(crate) fn new(shared: Arc<Shared>, name: &str) -> Self {
        // u64::MAX never matches a real generation, so the first read looks the flag up.
        let cached = Cached { generation: u64::MAX, entry: None, origin: CacheOrigin::Empty };
        Self { shared, name: name.to_owned(), cached: RefCell::new(cached), _type: PhantomData }
    }

    /// The flag's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn current(&self) -> std::cell::Ref<'_, Cached> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if self.cached.borrow().generation != generation {
            let cache = self.shared.read_cache();
            *self.cached.borrow_mut() = Cached { generation, entry: cache.flags.get(&self.name).cloned(), origin: cache.origin };
        }
        self.cached.borrow()
    }

    /// The flag's value for `context`, or `fallback`: the same answer as the client's typed getter.
    pub fn value<C: EvaluationContext + ?Sized>(&self, context: &C, fallback: T) -> T {
        let cached = self.current();
        resolve_entry(cached.entry.as_deref(), cached.origin, &self.shared.overrides, &self.name, T::FLAG_TYPE, context, |resolution| {
            value_of(resolution, fallback)
        })
    }

    /// [`FlagHandle::value`] with where the value came from and why.
    pub fn details<C: EvaluationContext + ?Sized>(&self, context: &C, fallback: T) -> EvaluationDetails<T> {
        let cached = self.current();
        let cache = self.shared.read_cache();
        let environment = if cache.environment.is_empty() { &self.shared.configured_environment } else { &cache.environment };
        resolve_entry(cached.entry.as_deref(), cached.origin, &self.shared.overrides, &self.name, T::FLAG_TYPE, context, |resolution| {
            details_of(resolution, &self.name, environment, fallback)
        })
    }
}
